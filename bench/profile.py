#!/usr/bin/env python3
"""Profiles sealmail-imapd on one benchmark workload with `perf record` (cpu-clock,
DWARF call graphs) and prints the hottest functions of the server's processes.

  python3 bench/profile.py --build DIR WORKLOAD[,WORKLOAD...] [--messages N] [--seconds S]

WORKLOAD: fetch_body, fetch_envelope, search_subject, search_body, select, login_window,
append, lmtp, mixed. The mailbox is filled with `sealmail-vault import` (N messages,
default 10,000); the workload is repeated for --seconds while perf samples the whole
machine; only samples of this server's process tree (polled while the workload runs)
are reported. Needs perf (linux-perf); a VM without hardware counters
works with the cpu-clock software event used here. Output: perf report --no-children
(self time per symbol, with the source file from the debug info) and the call chains
of the top entries, in DIR/profile-WORKLOAD.txt as well as on stdout.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402
import proc  # noqa: E402
import servers  # noqa: E402
import workloads as W  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workload")
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--argon2", default="65536,3")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    if not shutil.which("perf"):
        print("profile: perf not installed (apt-get install linux-perf)", file=sys.stderr)
        return 2
    argon2 = tuple(int(x) for x in args.argon2.split(","))
    n = args.messages
    tmp = tempfile.mkdtemp(prefix="sm-profile-")
    users = ["ten", "win0", "app", "lmtp", "mix0"]
    dv = servers.DovecotServer("dovecot", users)   # only its Maildir writer is used
    sm = servers.SealmailServer("sealmail", users, args.build, argon2)
    try:
        servers.write_maildir(dv.peer.maildir("ten"), dv.peer.mail_uid, dv.peer.mail_gid,
                              2, 0, n)
        servers.write_maildir(dv.peer.maildir("mix0"), dv.peer.mail_uid, dv.peer.mail_gid,
                              10, 0, 200)
        print(sm.fill_import("ten", dv.peer.maildir("ten")))
        print(sm.fill_import("mix0", dv.peer.maildir("mix0")))
        dv.stop()
        for u in users:
            sm.unlock(u)
        W.fetch_envelope(sm, "ten", n, bench.Meter(sm.pid()))   # build message caches

        def once(w):
            m = bench.Meter(sm.pid())
            if w == "fetch_body":
                return W.fetch_body(sm, "ten", min(1000, n), m)
            if w == "fetch_envelope":
                return W.fetch_envelope(sm, "ten", n, m)
            if w == "search_subject":
                return W.search(sm, "ten", "subject", n, m)
            if w == "search_body":
                return W.search(sm, "ten", "body", n, m)
            if w == "select":
                return W.select(sm, "ten", n, m)
            if w == "login_window":
                return W.login_window(sm, ["win0"], 2, 3, m)
            if w == "append":
                return W.append(sm, "app", 100, m)
            if w == "lmtp":
                return W.lmtp(sm, "lmtp", 10, 20, m)
            if w == "mixed":
                return W.mixed(sm, ["mix0"], 3, m)
            raise SystemExit("unknown workload " + w)

        for w in args.workload.split(","):
            data = os.path.join(args.out or tmp, "perf-%s.data" % w)
            perf = subprocess.Popen(["perf", "record", "-a", "-e", "cpu-clock", "-F", "499",
                                     "--call-graph", "dwarf,16384", "-o", data],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(1)
            # the server's processes, polled while the workload runs (login and LMTP
            # processes come and go): the report keeps only their samples, not those
            # of other sealmail instances on the machine
            pids = set()
            stop = threading.Event()

            def poll():
                while not stop.is_set():
                    pids.update(proc.tree(sm.pid()))
                    time.sleep(0.05)
            th = threading.Thread(target=poll, daemon=True)
            th.start()
            t_end = time.time() + args.seconds
            k = 0
            vals = []
            while time.time() < t_end:
                r = once(w)
                vals.append(r.get("value"))
                k += 1
                if r.get("errors"):
                    print("workload error:", r.get("error"))
                    break
            perf.send_signal(2)
            perf.wait()
            stop.set()
            th.join()
            pidarg = "--pid=" + ",".join(str(p) for p in sorted(pids))
            rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio",
                                  pidarg, "--sort", "comm,dso,sym", "-g", "none",
                                  "--percent-limit", "0.7"],
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL).stdout.decode(errors="replace")
            session = subprocess.run(["perf", "report", "-i", data, "--no-children",
                                      "--stdio", pidarg, "--comms", "imapd-session",
                                      "--percentage", "relative", "--sort", "dso,sym",
                                      "-g", "none", "--percent-limit", "1"],
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL).stdout.decode(errors="replace")
            rep += "\n\n==== the session process alone (relative) ====\n" + session
            chains = subprocess.run(["perf", "report", "-i", data, "--children", "--stdio",
                                     pidarg, "--sort", "sym", "-g",
                                     "caller,0.5,callee,function,percent",
                                     "--percent-limit", "5"],
                                    stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL).stdout.decode(errors="replace")
            head = "%s: %d runs, values %s\n" % (w, k, ["%.4g" % v for v in vals[:8]
                                                       if isinstance(v, (int, float))])
            text = head + rep + "\n\n==== inclusive (children) with call chains ====\n" + \
                chains
            out = os.path.join(args.out or args.build, "profile-%s.txt" % w)
            with open(out, "w") as f:
                f.write(text)
            print(head + "\n".join(l for l in rep.splitlines() if l and not
                                   l.startswith("#"))[:3000])
            print("full report: %s\n" % out)
    finally:
        sm.stop()
        dv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
