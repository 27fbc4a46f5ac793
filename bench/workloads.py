"""The workloads: load generators run by bench.py against one server at a time.

Each workload returns a dict:
  value      the figure in `unit` (throughput or milliseconds)
  unit       e.g. "sessions/s", "MB/s", "ms"
  ops        operations in the measured window (for CPU seconds per operation)
  errors     failed operations (NO/BAD answers, wrong results, broken connections)
  error      the first error's text ("" when none)
  extra      other figures (commands/s, per-login milliseconds, ...)
and calls meter.start()/meter.stop() around exactly the measured part, so that the
server's CPU is taken over the same window (bench.py reads /proc before and after).

Concurrency is by processes (multiprocessing, fork): a worker connects, reports ready,
waits for the common start signal, runs until its deadline or its count, and reports
its counts and its own CPU time, so the harness can tell when the client, not the
server, is the bottleneck.
"""

import multiprocessing as mp
import os
import random
import re
import smtplib
import statistics
import time
import traceback

import imapc
import mailgen
import proc

_EXISTS = re.compile(rb"^\* (\d+) EXISTS", re.I)


class WorkloadError(Exception):
    pass


def _exists(res):
    for u in res.kept:
        m = _EXISTS.match(u)
        if m:
            return int(m.group(1))
    return None


def _cpu():
    t = os.times()
    return t.user + t.system


def _err(e):
    s = "%s: %s" % (type(e).__name__, e)
    return s[:400]


# -- worker plumbing -------------------------------------------------------------------

def _worker_main(fn, args, ready_q, go, out_q):
    try:
        state = fn("prepare", None, *args)
        ready_q.put(("ready", None))
    except BaseException as e:   # noqa: BLE001 - reported to the parent
        ready_q.put(("error", _err(e) + "\n" + traceback.format_exc()[-1500:]))
        return
    go.wait()
    c0 = _cpu()
    try:
        res = fn("run", state, *args)
    except BaseException as e:   # noqa: BLE001
        res = {"ops": 0, "errors": 1, "error": _err(e)}
    res["client_cpu"] = _cpu() - c0
    out_q.put(res)


def run_workers(fn, arglist, meter, timeout):
    """Starts one process per args tuple, waits until all are prepared, starts the
    meter and releases them together, collects their results, stops the meter."""
    ctx = mp.get_context("fork")
    ready_q, out_q, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    ps = [ctx.Process(target=_worker_main, args=(fn, a, ready_q, go, out_q), daemon=True)
          for a in arglist]
    for p in ps:
        p.start()
    prep_err = []
    for _ in ps:
        try:
            kind, txt = ready_q.get(timeout=timeout)
        except Exception:   # noqa: BLE001
            kind, txt = "error", "worker did not get ready in %ds" % timeout
        if kind == "error":
            prep_err.append(txt)
    if prep_err:
        go.set()
        for p in ps:
            p.join(5)
            if p.is_alive():
                p.kill()
        raise WorkloadError("client setup failed: " + prep_err[0])
    meter.start()
    go.set()
    results = []
    deadline = time.time() + timeout
    for _ in ps:
        try:
            results.append(out_q.get(timeout=max(1, deadline - time.time())))
        except Exception:   # noqa: BLE001
            results.append({"ops": 0, "errors": 1, "error": "worker timed out"})
    meter.stop()
    for p in ps:
        p.join(10)
        if p.is_alive():
            p.kill()
    return results


def _merge(results):
    errs = [r.get("error") for r in results if r.get("error")]
    return {
        "ops": sum(r.get("ops", 0) for r in results),
        "errors": sum(r.get("errors", 0) for r in results),
        "error": errs[0] if errs else "",
        "client_cpu": sum(r.get("client_cpu", 0.0) for r in results),
    }


# -- mixed load (imaptest-like) --------------------------------------------------------

def _mixed(phase, state, srv, user, password, seconds, seed):
    if phase == "prepare":
        msgs = [mailgen.message(900 + seed, i) for i in range(8)]
        return msgs
    msgs = state
    r = random.Random(seed)
    deadline = time.time() + seconds
    sessions = commands = errors = 0
    first_err = ""
    while time.time() < deadline:
        c = None
        try:
            c = imapc.Client(srv[0], srv[1])
            c.login(user, password)
            sel = c.cmd(b"SELECT INBOX", keep=True)
            n = _exists(sel)
            if n is None:
                raise imapc.ImapError("SELECT gave no EXISTS")
            commands += 2
            done = 0
            while done < 20:
                # Sequence numbers inside a pipelined group refer to the mailbox as it
                # was before the group: a server may run the group's commands in
                # parallel (RFC 9051 5.5), so an APPENDed message is not addressable
                # until its group is done, and EXPUNGE ends a group.
                group = []
                grow = 0
                while len(group) < 4 and done + len(group) < 20:
                    x = r.random()
                    if n < 6 or (0.75 <= x < 0.85):
                        m = msgs[r.randrange(len(msgs))]
                        group.append(b"APPEND INBOX (\\Seen) {%d+}\r\n" % len(m) + m)
                        grow += 1
                    elif x < 0.50:
                        a = r.randint(1, max(1, n - 9))
                        group.append(b"FETCH %d:%d (UID FLAGS ENVELOPE)" % (a, min(n, a + 9)))
                    elif x < 0.60:
                        group.append(b"FETCH %d BODY.PEEK[]" % r.randint(1, n))
                    elif x < 0.75:
                        a = r.randint(1, n - 4)
                        group.append(b"STORE %d:%d %sFLAGS (%s)" % (
                            a, a + r.randint(0, 4), r.choice([b"+", b"-"]),
                            r.choice([b"\\Seen", b"\\Flagged", b"$Label1"])))
                    elif x < 0.90:
                        a = r.randint(1, n - 1)
                        group.append(b"STORE %d:%d +FLAGS.SILENT (\\Deleted)" % (a, a + 1))
                        group.append(b"EXPUNGE")
                        grow -= 2
                        break
                    elif x < 0.95:
                        group.append(b"SEARCH UNSEEN")
                    else:
                        group.append(b"NOOP")
                c.pipeline(group)
                n += grow
                commands += len(group)
                done += len(group)
            c.logout()
            commands += 1
            c = None
            sessions += 1
        except (OSError, imapc.ImapError) as e:
            errors += 1
            if not first_err:
                first_err = "%s: %s" % (user, _err(e))
            if c is not None:
                c.close()
            if errors >= 20:
                break
    return {"ops": sessions, "commands": commands, "errors": errors, "error": first_err}


def mixed(srv, users, seconds, meter, seed=1):
    args = [((srv.host, srv.imap_port), u, srv.window_password(u), seconds, seed * 100 + i)
            for i, u in enumerate(users)]
    res = run_workers(_mixed, args, meter, timeout=seconds + 120)
    m = _merge(res)
    cmds = sum(r.get("commands", 0) for r in res)
    m.update(value=m["ops"] / meter.wall, unit="sessions/s",
             extra={"commands/s": round(cmds / meter.wall, 1), "clients": len(users),
                    "commands": cmds})
    return m


# -- logins ----------------------------------------------------------------------------

def _login_loop(phase, state, srv, user, password, seconds):
    if phase == "prepare":
        return None
    deadline = time.time() + seconds
    n = errors = 0
    first_err = ""
    lat = []
    while time.time() < deadline:
        t0 = time.perf_counter()
        try:
            c = imapc.Client(srv[0], srv[1])
            c.login(user, password)
            c.logout()
            n += 1
            lat.append(time.perf_counter() - t0)
        except (OSError, imapc.ImapError) as e:
            errors += 1
            first_err = first_err or _err(e)
            if errors >= 20:
                break
    return {"ops": n, "errors": errors, "error": first_err, "lat": lat}


def login_window(srv, users, clients, seconds, meter):
    """login+logout per second; sealmail: passphrase alone inside the unlock window."""
    args = [((srv.host, srv.imap_port), users[i % len(users)],
             srv.window_password(users[i % len(users)]), seconds) for i in range(clients)]
    res = run_workers(_login_loop, args, meter, timeout=seconds + 120)
    m = _merge(res)
    lat = sorted(x for r in res for x in r.get("lat", []))
    m.update(value=m["ops"] / meter.wall, unit="logins/s",
             extra={"clients": clients,
                    "login_ms_median": round(statistics.median(lat) * 1000, 2) if lat else None})
    return m


def login_first(srv, creds, meter):
    """One client, each (user, password) once: the first login of that user (sealmail:
    passphrase + OTP, no session yet; Dovecot: a user not in the auth cache).
    connect + LOGIN + LOGOUT, sequentially."""
    lat = []
    errors = 0
    first_err = ""
    meter.start()
    for user, pw in creds:
        t0 = time.perf_counter()
        try:
            c = imapc.Client(srv.host, srv.imap_port)
            c.login(user, pw)
            c.logout()
            lat.append(time.perf_counter() - t0)
        except (OSError, imapc.ImapError) as e:
            errors += 1
            first_err = first_err or "%s: %s" % (user, _err(e))
    meter.stop()
    ok = len(lat)
    return {"ops": ok, "errors": errors, "error": first_err,
            "value": ok / meter.wall if ok else 0.0, "unit": "logins/s",
            "client_cpu": meter.client_cpu,
            "extra": {"login_ms_median": round(statistics.median(lat) * 1000, 1) if lat
                      else None, "logins": ok}}


# -- APPEND and LMTP delivery ----------------------------------------------------------

def append(srv, user, count, meter, seed=500):
    msgs = [mailgen.message(seed, i) for i in range(min(count, 64))]
    c = imapc.Client(srv.host, srv.imap_port)
    try:
        c.login(user, srv.window_password(user))
        c.capability()
        meter.start()
        n = 0
        for i in range(count):
            c.append("INBOX", msgs[i % len(msgs)])   # one command, one durable commit
            n += 1
        meter.stop()
        c.logout()
    finally:
        c.close()
    return {"ops": n, "errors": 0, "error": "", "value": n / meter.wall, "unit": "msgs/s",
            "client_cpu": meter.client_cpu,
            "extra": {"MB/s": round(sum(len(msgs[i % len(msgs)]) for i in range(n))
                                    / meter.wall / 1e6, 2)}}


def _lmtp(phase, state, host, port, user, count, seed):
    if phase == "prepare":
        msgs = [mailgen.message(seed, i) for i in range(min(count, 32))]
        s = smtplib.LMTP(host, port, timeout=120)
        s.ehlo_or_helo_if_needed()
        return s, msgs
    s, msgs = state
    n = errors = 0
    first_err = ""
    for i in range(count):
        try:
            refused = s.sendmail("bench@sender.example", [user + "@localhost"],
                                 msgs[i % len(msgs)])
            if refused:
                raise smtplib.SMTPException("refused: %r" % refused)
            n += 1
        except (OSError, smtplib.SMTPException) as e:
            errors += 1
            first_err = first_err or _err(e)
            if errors >= 10:
                break
            try:
                s.close()
                s = smtplib.LMTP(host, port, timeout=120)
            except OSError:
                break
    try:
        s.quit()
    except (OSError, smtplib.SMTPException):
        pass
    return {"ops": n, "errors": errors, "error": first_err}


def lmtp(srv, user, clients, per_client, meter):
    if not srv.lmtp_ready():
        raise WorkloadError("%s: LMTP listener not answering on %s:%s" % (
            srv.label, srv.host, srv.lmtp_port))
    args = [(srv.host, srv.lmtp_port, user, per_client, 600 + i) for i in range(clients)]
    res = run_workers(_lmtp, args, meter, timeout=600)
    m = _merge(res)
    m.update(value=m["ops"] / meter.wall, unit="msgs/s", extra={"clients": clients})
    return m


# -- single big commands ---------------------------------------------------------------

def _one_command(srv, user, command, meter, examine=True, keep=False):
    c = imapc.Client(srv.host, srv.imap_port)
    try:
        c.login(user, srv.window_password(user))
        if examine:
            c.cmd(b"EXAMINE INBOX")
        c0 = proc.self_cpu()
        meter.start()
        r = c.cmd(command, keep=keep, ok=False)
        meter.stop()
        meter.client_cpu = proc.self_cpu() - c0
        c.logout()
    finally:
        c.close()
    return r


def fetch_body(srv, user, n, meter):
    r = _one_command(srv, user, b"FETCH 1:%d BODY.PEEK[]" % n, meter)
    errs, err = 0, ""
    if r.status != b"OK":
        errs, err = 1, "FETCH BODY[] -> %s %s" % (r.status, r.text[:200])
    elif r.untagged < n:
        errs, err = 1, "FETCH BODY[]: %d of %d messages" % (r.untagged, n)
    return {"ops": n, "errors": errs, "error": err, "value": r.literal_bytes / 1e6 / meter.wall,
            "unit": "MB/s", "client_cpu": meter.client_cpu,
            "extra": {"bytes": r.literal_bytes, "ms": round(meter.wall * 1000, 1)}}


def fetch_envelope(srv, user, n, meter):
    r = _one_command(srv, user, b"FETCH 1:%d (FLAGS UID RFC822.SIZE ENVELOPE)" % n, meter)
    errs, err = 0, ""
    if r.status != b"OK":
        errs, err = 1, "FETCH ENVELOPE -> %s %s" % (r.status, r.text[:200])
    elif r.untagged < n:
        errs, err = 1, "FETCH ENVELOPE: %d of %d messages" % (r.untagged, n)
    return {"ops": n, "errors": errs, "error": err, "value": meter.wall * 1000, "unit": "ms",
            "client_cpu": meter.client_cpu, "extra": {}}


def search(srv, user, what, n, meter):
    if what == "subject":
        cmd, want = b'SEARCH SUBJECT "%s"' % mailgen.SUBJECT_MARK.encode(), \
            mailgen.expected_subject_hits(n)
    else:
        cmd, want = b'SEARCH BODY "%s"' % mailgen.BODY_MARK.encode(), \
            mailgen.expected_body_hits(n)
    r = _one_command(srv, user, cmd, meter, keep=True)
    errs, err = 0, ""
    got = imapc.search_numbers(r)
    if r.status != b"OK":
        errs, err = 1, "%s -> %s %s" % (cmd.decode(), r.status, r.text[:200])
    elif len(got) != want:
        errs, err = 1, "%s: %d hits, expected %d" % (cmd.decode(), len(got), want)
    return {"ops": 1, "errors": errs, "error": err, "value": meter.wall * 1000, "unit": "ms",
            "client_cpu": meter.client_cpu, "extra": {"hits": len(got)}}


def select(srv, user, n, meter, password=None):
    c = imapc.Client(srv.host, srv.imap_port)
    try:
        c.login(user, password or srv.window_password(user))
        c0 = proc.self_cpu()
        meter.start()
        r = c.cmd(b"SELECT INBOX", keep=True, ok=False)
        meter.stop()
        meter.client_cpu = proc.self_cpu() - c0
        c.logout()
    finally:
        c.close()
    got = _exists(r)
    errs, err = 0, ""
    if r.status != b"OK":
        errs, err = 1, "SELECT -> %s %s" % (r.status, r.text[:200])
    elif got != n:
        errs, err = 1, "SELECT: %s EXISTS, expected %d" % (got, n)
    return {"ops": 1, "errors": errs, "error": err, "value": meter.wall * 1000, "unit": "ms",
            "client_cpu": meter.client_cpu, "extra": {"exists": got}}


# -- many idle connections -------------------------------------------------------------

def _hold(phase, state, host, port, creds, deadline, mem_floor, counter, release):
    if phase == "prepare":
        return None
    conns = []
    errors = 0
    first_err = ""
    for user, pw in creds:
        if time.time() >= deadline or proc.mem_available() < mem_floor:
            break
        try:
            c = imapc.Client(host, port, timeout=300)
            c.login(user, pw)
            conns.append(c)
            with counter.get_lock():
                counter.value += 1
        except (OSError, imapc.ImapError) as e:
            errors += 1
            first_err = first_err or "%s: %s" % (user, _err(e))
            if errors >= 20:
                break
    release.wait(900)
    for c in conns:
        c.close()
    return {"ops": len(conns), "errors": errors, "error": first_err}


def connections(srv, users, per_user, target, seconds, meter, workers=8,
                mem_floor=3 << 30, base=None, settle=2.0):
    """Opens up to `target` authenticated connections (per_user for each user, users in
    turn), bounded by `seconds` and by the machine's free memory (stops when
    MemAvailable < mem_floor); measures the server's memory while all are held idle.
    Returns held, the establish time, and Pss/Rss per connection (the increase of the
    server's process tree over `base` - its memory before these users' sessions were
    opened, when given - divided by the connections held)."""
    # user by user (all of a user's connections, then the next user's): when the time
    # bound stops the opening early, the held users have their full share, as in the
    # planned layout (sealmail shares one session process among a user's connections)
    # A user's first connection is a full login (sealmail: passphrase + OTP, which
    # starts the user's session process), the others log in inside the unlock window;
    # so only users that hold connections have a session, as in production.
    creds = []
    for u in users:
        if len(creds) >= target:
            break
        pw = srv.window_password(u)
        creds += [(u, srv.full_password(u))] + [(u, pw)] * (per_user - 1)
    creds = creds[:target]
    ctx = mp.get_context("fork")
    counter = ctx.Value("i", 0)
    release = ctx.Event()
    deadline = time.time() + seconds
    # whole users per worker (the full login must come before the window logins)
    shares = [[] for _ in range(workers)]
    for j in range(0, len(creds), per_user):
        shares[(j // per_user) % workers] += creds[j:j + per_user]
    if base is None:
        base = proc.memory(srv.pid())
    args = [(srv.host, srv.imap_port, s, deadline, mem_floor, counter, release)
            for s in shares if s]
    ready_q, out_q, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    ps = [ctx.Process(target=_worker_main, args=(_hold, a, ready_q, go, out_q), daemon=True)
          for a in args]
    for p in ps:
        p.start()
    for _ in ps:
        ready_q.get(timeout=60)
    meter.start()
    go.set()
    # wait until every worker has stopped opening (all held, deadline or memory floor)
    last, still = -1, 0
    while time.time() < deadline + 30:
        time.sleep(0.5)
        v = counter.value
        if v >= len(creds):
            break
        if time.time() >= deadline or proc.mem_available() < mem_floor:
            if v == last:
                still += 1
                if still >= 4:
                    break
            else:
                still = 0
        last = v
    establish = meter.elapsed()
    time.sleep(settle)   # let login processes finish handing over
    held = counter.value
    mem = proc.memory(srv.pid())
    meter.stop()
    release.set()
    results = []
    for _ in ps:
        try:
            results.append(out_q.get(timeout=120))
        except Exception:   # noqa: BLE001
            results.append({"ops": 0, "errors": 1, "error": "hold worker did not finish"})
    for p in ps:
        p.join(30)
        if p.is_alive():
            p.kill()
    # let the server's per-connection processes end before the next measurement
    # (until the count is near the base or stops falling: sealmail's session processes
    # stay for the unlock window)
    t_end = time.time() + 90
    prev, still = None, 0
    while time.time() < t_end:
        k = len(proc.tree(srv.pid()))
        if k <= base["procs"] + 50:
            break
        still = still + 1 if prev is not None and k >= prev else 0
        if still >= 3:
            break
        prev = k
        time.sleep(1)
    m = _merge(results)
    d_pss = mem["pss"] - base["pss"]
    d_rss = mem["rss"] - base["rss"]
    m.update(ops=held, value=(d_pss / held / 1024) if held else 0.0, unit="KiB Pss/conn",
             extra={"held": held, "target": target, "establish_s": round(establish, 1),
                    "conn_per_s": round(held / establish, 1) if establish else None,
                    "pss_total_MiB": round(mem["pss"] / 2**20, 1),
                    "rss_total_MiB": round(mem["rss"] / 2**20, 1),
                    "rss_delta_per_conn_KiB": round(d_rss / held / 1024, 1) if held else None,
                    "pss_total_per_conn_KiB": round(mem["pss"] / held / 1024, 1)
                    if held else None,
                    "processes": mem["procs"], "base_pss_MiB": round(base["pss"] / 2**20, 1)})
    return m
