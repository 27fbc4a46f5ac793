"""CPU time and memory of a server's whole process tree, from /proc.

CPU: the sum over every live process of the tree of utime+stime+cutime+cstime
(/proc/PID/stat fields 14-17). cutime/cstime hold the time of children that exited and
were waited for (with their own waited-for descendants), so a login or imap process
that came and went between two snapshots is still counted: its time moves from "live"
to its parent's cutime. The difference of two snapshots is the CPU the server spent in
between, whatever forked or exited.

Memory: Pss (proportional set size, /proc/PID/smaps_rollup) splits shared pages
(libraries, the master's copy-on-write pages) among the processes that map them, so the
sum over a tree is what the tree really costs; Rss is summed too, for reference (it
counts shared pages once per process).
"""

import os

CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat(pid):
    with open("/proc/%d/stat" % pid, "rb") as f:
        s = f.read()
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    rest = s[s.rindex(b")") + 2:].split()
    ppid = int(rest[1])
    ut, st, cut, cst = (int(x) for x in rest[11:15])
    rss_pages = int(rest[21])
    return ppid, ut + st, cut + cst, rss_pages


def _children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d, "rb") as f:
                s = f.read()
            ppid = int(s[s.rindex(b")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(root):
    """PIDs of root and all its live descendants."""
    kids = _children_map()
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, ()))
    return out


def _exec_ns(pid):
    """Precise CPU time of a live process (all its threads), from schedstat, in ns;
    None when schedstat is not there (kernel without CONFIG_SCHEDSTATS)."""
    total = 0
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return None
    for t in tids:
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t), "rb") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None
    return total


def cpu_seconds(root):
    """CPU seconds (user+system) spent so far by root's tree, exited children included.
    Live processes: schedstat (nanoseconds) where available, else utime+stime (clock
    ticks); exited, reaped children: their parents' cutime+cstime (clock ticks)."""
    total = 0.0
    for p in tree(root):
        try:
            _, own, children, _ = _stat(p)
        except (OSError, ValueError, IndexError):
            continue   # exited between the listing and the read
        ns = _exec_ns(p)
        total += (ns / 1e9 if ns is not None else own / CLK) + children / CLK
    return total


def memory(root):
    """{'pss': bytes, 'rss': bytes, 'procs': n} summed over root's live tree."""
    pss = rss = n = 0
    for p in tree(root):
        try:
            with open("/proc/%d/smaps_rollup" % p, "rb") as f:
                for line in f:
                    if line.startswith(b"Pss:"):
                        pss += int(line.split()[1]) * 1024
                    elif line.startswith(b"Rss:"):
                        rss += int(line.split()[1]) * 1024
            n += 1
        except (OSError, ValueError):
            continue
    return {"pss": pss, "rss": rss, "procs": n}


def self_cpu():
    """CPU seconds of this process (the load generator's own share; worker processes
    report theirs separately, and reaped children of earlier phases must not count)."""
    t = os.times()
    return t.user + t.system


def mem_available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])
