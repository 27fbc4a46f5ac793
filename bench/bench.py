#!/usr/bin/env python3
"""sealmail against Dovecot, side by side in one run (issue 8). Started by bench/run.sh.

  bench/run.sh [--smoke] [--rounds N] [--only W1,W2] [--build DIR] [--out DIR]

Servers: sealmail-imapd (fresh vault, the Argon2id defaults that `sealmail-vault init`
writes, durable commits), Dovecot with its default login service, and Dovecot with
`service_count = 0` (its high-performance login mode; used for the login workloads).
All on loopback; clients speak plain IMAP on the STARTTLS port (LOGIN without TLS is
allowed on loopback by both), so TLS is not part of any figure.

Each workload runs against each server in alternation (A B, then B A, ...), for
--rounds rounds; the table gives medians, the speed ratio, and the server's CPU
seconds per operation (whole process tree, from /proc), which a shared machine
disturbs far less than wall time.

Speed ratio: sealmail speed / Dovecot speed, so > 1 always means sealmail is faster:
for throughputs (x/s, MB/s) it is sealmail/Dovecot, for times (ms) Dovecot/sealmail.
For memory per connection it is Dovecot/sealmail (> 1: sealmail uses less).
"""

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import chart  # noqa: E402
import mailgen  # noqa: E402
import proc  # noqa: E402
import servers  # noqa: E402
import workloads as W  # noqa: E402

OWASP_MIN = (19456, 2)

# name, unit kind ("up": bigger is better, "down": smaller is better), target ratio
# (speed ratio, see the module doc) or None, what the physical limit column shows
WORKLOADS = [
    ("mixed", "up", 1.0),
    ("login_first", "up", None),
    ("login_window", "up", 1.0),
    ("append", "up", 1.0),
    ("lmtp_1", "up", 1.0),
    ("lmtp_10", "up", 1.0),
    ("fetch_body_1k", "up", 1.0),
    ("fetch_envelope_10k", "down", 1.0),
    ("search_subject_10k", "down", 1.0),
    ("search_body_10k", "down", 1.0),
    ("select_100k_first", "down", 1.0),
    ("select_100k_warm", "down", 1.0),
    ("idle_conn_1k", "down", 1.0),
    ("hold_10k", "down", None),
]
KIND = {w[0]: w[1] for w in WORKLOADS}
TARGET = {w[0]: w[2] for w in WORKLOADS}

# Figures of shared/LIMITS.md, used when the in-run probe (bench/limits.c) cannot be
# built; labelled as such in the output.
LIMITS_MD = {"aes256gcm_20k_open_us": 4.6, "aes256gcm_MBps": 4457, "xchacha_20k_open_us": 16,
             "xchacha_MBps": 1272, "box_seal_open_us": 46, "fsync_ms": 0.25,
             "argon2id_ms": {(19456, 2): 11.6, (65536, 2): 63, (262144, 3): 535}}


def log(*a):
    print("[%s]" % time.strftime("%H:%M:%S"), *a, flush=True)


class Meter:
    """Brackets the measured part of a workload: wall time, the server tree's CPU
    seconds, and this process's CPU (workers report theirs separately)."""

    def __init__(self, pid):
        self.pid = pid
        self.wall = self.cpu = self.client_cpu = 0.0
        self._on = False

    def start(self):
        self.c0 = proc.cpu_seconds(self.pid)
        self.cl0 = proc.self_cpu()
        self._on = True
        self.t0 = time.perf_counter()

    def elapsed(self):
        return time.perf_counter() - self.t0

    def stop(self):
        self.wall = time.perf_counter() - self.t0
        self.cpu = proc.cpu_seconds(self.pid) - self.c0
        self.client_cpu = proc.self_cpu() - self.cl0
        self._on = False


class Plan:
    def __init__(self, smoke, rounds):
        self.smoke = smoke
        self.rounds = rounds if rounds else (1 if smoke else 3)
        if smoke:
            self.big, self.ten, self.body_n, self.mix_msgs = 300, 120, 50, 30
            self.mix_clients, self.mix_seconds = 2, 1.0
            self.win_clients, self.win_seconds = 2, 1.0
            self.first_per_round = 1
            self.append_n, self.lmtp1_n, self.lmtp10_n = 10, 10, 3
            self.conn_users, self.conn_per_user, self.conn_seconds = 1, 3, 20
            self.hold_users, self.hold_per_user, self.hold_seconds = 1, 3, 20
        else:
            self.big, self.ten, self.body_n, self.mix_msgs = 100000, 10000, 1000, 200
            self.mix_clients, self.mix_seconds = 8, 10.0
            self.win_clients, self.win_seconds = 4, 6.0
            self.first_per_round = 3
            self.append_n, self.lmtp1_n, self.lmtp10_n = 200, 200, 40
            self.conn_users, self.conn_per_user, self.conn_seconds = 50, 20, 120
            # 100 users x 100 connections (max_user_connections = 100 on sealmail for
            # this): 500 users x 20 would need 500 enrolments and unlocks, minutes here
            self.hold_users, self.hold_per_user, self.hold_seconds = 100, 100, 100
        self.conn_target = self.conn_users * self.conn_per_user
        self.hold_target = self.hold_users * self.hold_per_user
        self.body_n = min(self.body_n, self.ten)

    def users(self):
        u = {
            "mix": ["mix%d" % i for i in range(self.mix_clients)],
            "win": ["win%d" % i for i in range(max(2, self.win_clients))],
            "first": ["first%d-%d" % (r, k) for r in range(self.rounds)
                      for k in range(self.first_per_round)],
            "single": ["app", "lmtp", "ten", "big"],
            "conn": ["conn%d" % i for i in range(self.conn_users)],
            "hold": ["hold%d" % i for i in range(self.hold_users)],
        }
        return u


def run_one(name, srv, fn, results, round_no):
    """Runs one workload against one server; records the figure or the error."""
    meter = Meter(srv.pid())
    t0 = time.time()
    try:
        r = fn(meter)
    except Exception as e:   # noqa: BLE001 - a broken workload is reported, not hidden
        r = {"ops": 0, "errors": 1, "value": None, "unit": "",
             "error": "%s: %s" % (type(e).__name__, str(e)[:500]),
             "trace": traceback.format_exc()[-2000:]}
    if meter.wall:
        r["wall_s"] = round(meter.wall, 4)
        r["server_cpu_s"] = round(meter.cpu, 4)
        r["cpu_per_op_ms"] = round(meter.cpu / r["ops"] * 1000, 4) if r.get("ops") else None
        r["client_cpu_s"] = round(r.get("client_cpu", meter.client_cpu), 3)
    r["round"] = round_no
    r["load"] = proc.loadavg()
    results.setdefault(name, {}).setdefault(srv.label, []).append(r)
    v = r.get("value")
    msg = "%-20s %-12s %s %s" % (name, srv.label,
                                 ("%.4g" % v) if isinstance(v, (int, float)) else "-",
                                 r.get("unit", ""))
    if r.get("cpu_per_op_ms") is not None:
        msg += "  cpu/op %.4g ms" % r["cpu_per_op_ms"]
    if r.get("extra"):
        msg += "  " + " ".join("%s=%s" % kv for kv in r["extra"].items())
    if r.get("errors"):
        msg += "  ERRORS=%d: %s" % (r["errors"], r.get("error", ""))
    msg += "  (%.1fs)" % (time.time() - t0)
    log(msg)
    return r


def fill_boxes(plan, users):
    """(user, seed, messages) of the mailboxes the wanted workloads read."""
    boxes = []
    if plan.need_big:
        boxes.append(("big", 1, plan.big))
    if plan.need_ten:
        boxes.append(("ten", 2, plan.ten))
    if plan.need_mix:
        boxes += [(u, 10 + i, plan.mix_msgs) for i, u in enumerate(users["mix"])]
    return boxes


def fill(sm, dv, plan, users, method):
    """Same messages into both. Dovecot: Maildir files written directly (two processes);
    Dovecot indexes them on its first SELECT. sealmail: `sealmail-vault import` of
    that same Maildir (the migration path; same bytes, order and internal dates), or
    its LMTP listener, or IMAP APPEND, or `sealmail-vault deliver`; durable = no for
    the fill phase only."""
    boxes = fill_boxes(plan, users)
    t = time.time()
    chunks = []
    for user, seed, n in boxes:
        for s in range(0, n, 2000):
            chunks.append((dv.peer.maildir(user), dv.peer.mail_uid, dv.peer.mail_gid,
                           seed, s, min(n, s + 2000)))
    with mp.get_context("fork").Pool(2, initializer=signal.signal,
                                     initargs=(signal.SIGTERM, signal.SIG_DFL)) as pool:
        done = 0
        for k in pool.starmap(servers.write_maildir, chunks, chunksize=1):
            done += k
    for user, _, _ in boxes:
        dv.chown_home(user)
    d_time = time.time() - t
    log("  dovecot Maildirs written: %d messages (%.0fs)" % (done, d_time))
    t = time.time()
    if method == "import":
        from concurrent.futures import ThreadPoolExecutor
        # two imports at a time (sealing runs in parallel, LMDB serialises commits)
        with ThreadPoolExecutor(2) as ex:
            outs = list(ex.map(lambda b: sm.fill_import(b[0], dv.peer.maildir(b[0])),
                               boxes))
        for o in outs[:2]:
            log("  " + o.splitlines()[-1] if o else "  (import printed nothing)")
    else:
        fn = {"append": sm.fill_append, "lmtp": sm.fill_lmtp,
              "deliver": sm.fill_deliver}[method]
        for user, seed, n in boxes:
            t1 = time.time()
            fn(user, seed, n, progress=lambda k, u=user, n=n, t1=t1: log(
                "  sealmail fill %s: %d/%d (%.0f msgs/s)" % (u, k, n,
                                                            k / (time.time() - t1))))
    return time.time() - t, d_time


def measure_limits(plan, build_dir, probe, argon2, datadir):
    lim = {"source": "measured in this run (bench/limits.c)"}
    try:
        if not probe or not os.access(probe, os.X_OK):
            raise RuntimeError("probe not built")
        out = subprocess.run([probe, str(argon2[0]), str(argon2[1]), datadir],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120,
                             check=True).stdout
        lim.update(json.loads(out))
    except (OSError, RuntimeError, subprocess.SubprocessError, ValueError) as e:
        lim = dict(LIMITS_MD)
        a = LIMITS_MD["argon2id_ms"].get(tuple(argon2))
        lim["argon2id_ms"] = a
        lim["argon2id_kib"], lim["argon2id_passes"] = argon2
        lim["source"] = "shared/LIMITS.md (probe unavailable: %s)" % e
    lim["cores"] = os.cpu_count()
    return lim


def limit_text(name, lim, plan):
    """The physical limit that applies to a workload, as text (one core unless said)."""
    if not lim:
        return ""
    gcm = lim.get("aes256gcm_20k_open_us")
    xch = lim.get("xchacha_20k_open_us")
    so = lim.get("box_seal_open_us")
    fs = lim.get("fsync_ms")
    a = lim.get("argon2id_ms")
    ac = lim.get("argon2id_cpu_ms", a)
    if name == "fetch_body_1k" and gcm:
        return "AEAD 20K: AES-GCM %.0f MB/s, XChaCha %.0f MB/s" % (
            lim["aes256gcm_MBps"], lim["xchacha_MBps"])
    if name == "fetch_envelope_10k" and gcm:
        return "%d x AES-GCM open(20K) = %.0f ms (if bodies were decrypted)" % (
            plan.ten, plan.ten * gcm / 1000)
    if name.startswith("search_body") and gcm:
        return "decrypt 10k bodies: AES-GCM %.0f ms, XChaCha %.0f ms" % (
            plan.ten * gcm / 1000, plan.ten * xch / 1000)
    if name.startswith("select_100k_first") and so:
        return "%d x box_seal_open = %.0f ms (if unwrapped)" % (plan.big, plan.big * so / 1000)
    if name in ("append", "lmtp_1") and fs:
        return "fsync %.2f ms: <= %.0f durable commits/s (2 syncs each)" % (fs, 1000 / fs / 2)
    if name == "lmtp_10" and fs:
        return "fsync %.2f ms" % fs
    if name == "login_first" and a:
        return "2 x Argon2id = %.0f ms (%.0f ms CPU)" % (2 * a, 2 * ac)
    if name in ("login_window", "mixed") and a:
        return "1 Argon2id %.0f ms CPU: <= %.1f logins/s on %d cores" % (
            ac, lim["cores"] * 1000 / ac, lim["cores"])
    return ""


def median(xs):
    xs = [x for x in xs if isinstance(x, (int, float))]
    return statistics.median(xs) if xs else None


def summarize(results, labels, lim, plan):
    """Per workload: medians per server, speed ratio (see module doc), CPU/op."""
    rows = []
    for name, kind, target in WORKLOADS:
        if name not in results:
            continue
        per = results[name]
        row = {"workload": name, "kind": kind, "target": target, "servers": {},
               "limit": limit_text(name, lim, plan)}
        for lab in labels:
            runs = per.get(lab)
            if not runs:
                continue
            ok = [r for r in runs if not r.get("errors")]
            row["servers"][lab] = {
                "median": median([r.get("value") for r in ok]),
                "unit": next((r.get("unit") for r in runs if r.get("unit")), ""),
                "cpu_per_op_ms": median([r.get("cpu_per_op_ms") for r in ok]),
                "runs": len(runs),
                "errors": sum(r.get("errors", 0) for r in runs),
                "error": next((r.get("error") for r in runs if r.get("error")), ""),
                "client_cpu_share": median([
                    r["client_cpu_s"] / r["wall_s"] for r in runs
                    if r.get("wall_s") and r.get("client_cpu_s") is not None]),
                "extra": runs[-1].get("extra", {}),
            }
        hits = {lab: x["extra"].get("hits") for lab, x in row["servers"].items()
                if x["extra"].get("hits") is not None}
        if len(set(hits.values())) > 1:
            row["hits_differ"] = hits
        s = row["servers"].get("sealmail", {}).get("median")
        ref = "dovecot-sc0" if name == "login_window" else "dovecot"
        row["reference"] = ref
        d = row["servers"].get(ref, {}).get("median")
        ratio = None
        if s and d:
            ratio = s / d if kind == "up" else d / s
        row["ratio"] = ratio
        if name == "login_window" and row["servers"].get("dovecot", {}).get("median") and s:
            row["ratio_vs_default"] = s / row["servers"]["dovecot"]["median"]
        if target is None or ratio is None:
            row["status"] = "n/a" if target is None else "ERROR"
        else:
            row["status"] = "holds" if ratio >= target else "MISSES"
        sc = row["servers"].get("sealmail", {}).get("cpu_per_op_ms")
        dc = row["servers"].get(ref, {}).get("cpu_per_op_ms")
        row["cpu_ratio"] = dc / sc if sc and dc else None
        rows.append(row)
    return rows


def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 100:
        return "%.0f" % v
    if abs(v) >= 10:
        return "%.1f" % v
    if abs(v) >= 1:
        return "%.2f" % v
    return "%.3g" % v


def print_table(rows, lim):
    hdr = ("workload", "unit", "sealmail", "dovecot", "dv-sc0", "speed ratio", "target",
           "cpu ms/op sm", "cpu ms/op dv", "physical limit")
    lines = []
    for r in rows:
        s = r["servers"]
        unit = next((x["unit"] for x in s.values() if x.get("unit")), "")

        def cell(lab):
            x = s.get(lab)
            if not x:
                return ""
            if x["median"] is None:
                return "ERROR" if x["errors"] else "-"
            return fmt(x["median"]) + ("*" if x["errors"] else "")

        ratio = "-" if r["ratio"] is None else "%.3g" % r["ratio"]
        if r["workload"] == "login_window" and r.get("ratio_vs_default"):
            ratio += " (%.3g vs default)" % r["ratio_vs_default"]
        tgt = "-" if r["target"] is None else ">=%.1f %s" % (r["target"], r["status"])
        lines.append((r["workload"], unit, cell("sealmail"), cell("dovecot"),
                      cell("dovecot-sc0"), ratio, tgt,
                      fmt(s.get("sealmail", {}).get("cpu_per_op_ms")),
                      fmt(s.get(r["reference"], {}).get("cpu_per_op_ms")), r["limit"]))
    w = [max(len(h), *(len(str(l[i])) for l in lines)) if lines else len(h)
         for i, h in enumerate(hdr)]
    out = []
    out.append("  ".join(h.ljust(w[i]) for i, h in enumerate(hdr)))
    out.append("  ".join("-" * w[i] for i in range(len(hdr))))
    for l in lines:
        out.append("  ".join(str(c).ljust(w[i]) for i, c in enumerate(l)))
    print("\n".join(out))
    print("speed ratio > 1: sealmail faster (throughput sealmail/Dovecot; time and memory "
          "Dovecot/sealmail). Reference for login_window: Dovecot service_count = 0.\n"
          "cpu ms/op: server CPU (whole process tree, user+system) per operation; "
          "'*': some rounds had errors (median of the clean ones).\n"
          "physical limits: %s" % lim.get("source", ""))
    for r in rows:
        if r.get("hits_differ"):
            print("RESULTS DIFFER: %s: %s" % (r["workload"], r["hits_differ"]))
    errs = [(r["workload"], lab, x["error"]) for r in rows for lab, x in r["servers"].items()
            if x["errors"]]
    if errs:
        print("\nERRORS:")
        for w_, lab, e in errs:
            print("  %s on %s: %s" % (w_, lab, e))
    return "\n".join(out)


def _sigterm(signum, frame):
    raise KeyboardInterrupt   # stop the servers on the way out (meson's timeout, kill)


def main():
    signal.signal(signal.SIGTERM, _sigterm)
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.environ.get("SEALMAIL_BUILD",
                                                      os.path.join(HERE, "..", "build")))
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, 1 round (~30 s)")
    ap.add_argument("--rounds", type=int, default=0)
    ap.add_argument("--only", default="", help="comma-separated workload names")
    ap.add_argument("--skip", default="", help="comma-separated workload names")
    ap.add_argument("--fill", default="import",
                    choices=["import", "append", "lmtp", "deliver"],
                    help="how sealmail is filled (default: sealmail-vault import of the "
                    "Maildir written for Dovecot)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--name", default="",
                    help="base name of the result files (default latest, smoke with --smoke)")
    ap.add_argument("--probe", default="", help="bench/limits.c binary")
    ap.add_argument("--keep", action="store_true", help="keep the servers' directories")
    args = ap.parse_args()

    t_start = time.time()
    plan = Plan(args.smoke, args.rounds)
    only = set(x for x in args.only.split(",") if x)
    skip = set(x for x in args.skip.split(",") if x)
    names = [w[0] for w in WORKLOADS]
    bad = (only | skip) - set(names)
    if bad:
        ap.error("unknown workloads: %s (known: %s)" % (", ".join(sorted(bad)),
                                                        ", ".join(names)))

    def want(n):
        return (not only or n in only) and n not in skip

    missing = servers.sealmail.missing_programs(args.build, "imapd")
    if missing:
        print("bench: sealmail programs not built: %s (meson compile -C %s)" % (
            ", ".join(missing), args.build), file=sys.stderr)
        return 2
    if not servers.dovecot.available():
        print("bench: dovecot is not installed (apt-get install dovecot-imapd "
              "dovecot-lmtpd)", file=sys.stderr)
        return 2

    plan.need_big = want("select_100k_first") or want("select_100k_warm")
    plan.need_ten = any(want(n) for n in names if n.endswith("_10k") or n == "fetch_body_1k")
    plan.need_mix = want("mixed")
    argon2 = servers.sealmail_defaults(args.build)[:2]
    if plan.smoke:
        argon2 = OWASP_MIN    # 30 seconds are too short for production Argon2id logins
    users = plan.users()
    all_users = [u for k in ("single", "mix", "win", "first", "conn", "hold")
                 for u in users[k]]
    log("plan: %s, %d round(s); sealmail Argon2id %d KiB t=%d; load %.1f on %d cores" % (
        "smoke" if plan.smoke else "full", plan.rounds, argon2[0], argon2[1],
        proc.loadavg(), os.cpu_count()))

    results = {}
    meta = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "smoke": plan.smoke,
            "rounds": plan.rounds, "host": platform.node(), "cores": os.cpu_count(),
            "python": platform.python_version(), "notes": []}
    sm = dv = dv0 = None
    code = 0
    try:
        t = time.time()
        dv = servers.DovecotServer("dovecot", all_users)
        dv0 = servers.DovecotServer("dovecot-sc0", users["win"] + users["first"] + ["app"],
                                    service_count=0)
        hold = str(max(20, plan.hold_per_user))
        # All of a user's connections come from 127.0.0.1: the per-source cap too.
        sm_conf = {"max_user_connections": hold, "max_user_source_connections": hold}
        if args.fill != "import":
            sm_conf["durable"] = "no"
        sm = servers.SealmailServer("sealmail", users["single"], args.build, argon2,
                                    extra_conf=sm_conf)
        log("servers up: %s | %s | %s" % (sm.describe(), dv.describe(), dv0.describe()))
        prod = [u for k in ("mix", "win", "first", "conn") for u in users[k]]
        sm.add_users(prod, parallel=3)
        hold_argon2 = OWASP_MIN
        if want("hold_10k"):
            sm.add_users(users["hold"], argon2=hold_argon2, parallel=3)
        meta["setup_s"] = round(time.time() - t, 1)
        log("users enrolled: %d (%.0fs)" % (len(all_users), time.time() - t))

        lim = measure_limits(plan, args.build, args.probe, argon2, sm.peer.vault_dir)
        meta["limits"] = lim
        log("physical limits (%s): %s" % (lim["source"], json.dumps(
            {k: v for k, v in lim.items() if k != "source"})))

        # -- fill ----------------------------------------------------------------------
        method = args.fill
        t = time.time()
        log("fill: %s; sealmail via %s (durable = no for the fill only), Dovecot: "
            "Maildir files written directly" % (
                ", ".join("%s %d" % (b[0], b[2]) for b in fill_boxes(plan, users)), method))
        s_fill, d_fill = fill(sm, dv, plan, users, method)
        meta["fill"] = {"sealmail_method": method, "sealmail_s": round(s_fill, 1),
                        "dovecot_s": round(d_fill, 1),
                        "messages": sum(b[2] for b in fill_boxes(plan, users))}
        meta["notes"].append({
            "import": "sealmail was filled by `sealmail-vault import --maildir` of the very "
                      "Maildir written for Dovecot (durable = no for the fill only): its "
                      "first SELECT opens mail sealed with the user's keys at import; "
                      "Dovecot's first SELECT includes indexing the Maildir",
            "append": "sealmail was filled by IMAP APPEND (durable = no for the fill only)",
            "lmtp": "sealmail was filled through its LMTP listener (durable = no for the "
                    "fill only): its first SELECT adopts (re-wraps) delivered mail",
            "deliver": "sealmail was filled by sealmail-vault deliver (durable = no for the "
                       "fill only): its first SELECT adopts (re-wraps) delivered mail"}[method])
        log("fill done: sealmail %.0fs, dovecot %.0fs" % (s_fill, d_fill))
        if method != "import":
            sm.restart(durable="yes")
            log("sealmail restarted with durable = yes: %s" % sm.describe())

        # -- SELECT of the 100k mailbox, first (once: Dovecot indexes, sealmail opens) --
        servers_ab = [sm, dv]
        if want("select_100k_first"):
            for srv in servers_ab:
                pw = srv.full_password("big")
                run_one("select_100k_first", srv,
                        lambda m, srv=srv, pw=pw: W.select(srv, "big", plan.big, m,
                                                           password=pw), results, 0)
                if srv is sm:
                    sm.unlocked.add("big")

        # -- open unlock windows (sealmail) and index the other mailboxes (both) -------
        t = time.time()
        sm.unlock_all(users["single"] + users["mix"] + users["win"])
        for srv in servers_ab:
            for u, _, n in fill_boxes(plan, users):
                if u != "big":
                    W.select(srv, u, n, Meter(srv.pid()))
        log("unlocked + primed (%.0fs)" % (time.time() - t))

        # -- rounds --------------------------------------------------------------------
        for rnd in range(plan.rounds):
            order = servers_ab if rnd % 2 == 0 else servers_ab[::-1]
            order3 = [sm, dv, dv0] if rnd % 2 == 0 else [dv0, dv, sm]
            log("round %d/%d (order %s; load %.1f)" % (
                rnd + 1, plan.rounds, " ".join(s.label for s in order), proc.loadavg()))
            if want("mixed"):
                for srv in order:
                    run_one("mixed", srv, lambda m, srv=srv: W.mixed(
                        srv, users["mix"], plan.mix_seconds, m, seed=rnd + 1), results, rnd)
            if want("login_first"):
                chunk = users["first"][rnd * plan.first_per_round:
                                       (rnd + 1) * plan.first_per_round]
                for srv in order3:
                    creds = [(u, srv.full_password(u)) for u in chunk]
                    run_one("login_first", srv, lambda m, srv=srv, creds=creds:
                            W.login_first(srv, creds, m), results, rnd)
            if want("login_window"):
                for srv in order3:
                    run_one("login_window", srv, lambda m, srv=srv: W.login_window(
                        srv, users["win"], plan.win_clients, plan.win_seconds, m),
                        results, rnd)
            if want("append"):
                for srv in order:
                    run_one("append", srv, lambda m, srv=srv: W.append(
                        srv, "app", plan.append_n, m, seed=500 + rnd), results, rnd)
            if want("lmtp_1"):
                for srv in order:
                    run_one("lmtp_1", srv, lambda m, srv=srv: W.lmtp(
                        srv, "lmtp", 1, plan.lmtp1_n, m), results, rnd)
            if want("lmtp_10"):
                for srv in order:
                    run_one("lmtp_10", srv, lambda m, srv=srv: W.lmtp(
                        srv, "lmtp", 10, plan.lmtp10_n, m), results, rnd)
            if want("fetch_body_1k"):
                for srv in order:
                    run_one("fetch_body_1k", srv, lambda m, srv=srv: W.fetch_body(
                        srv, "ten", plan.body_n, m), results, rnd)
            if want("fetch_envelope_10k"):
                for srv in order:
                    run_one("fetch_envelope_10k", srv, lambda m, srv=srv: W.fetch_envelope(
                        srv, "ten", plan.ten, m), results, rnd)
            if want("search_subject_10k"):
                for srv in order:
                    run_one("search_subject_10k", srv, lambda m, srv=srv: W.search(
                        srv, "ten", "subject", plan.ten, m), results, rnd)
            if want("search_body_10k"):
                for srv in order:
                    run_one("search_body_10k", srv, lambda m, srv=srv: W.search(
                        srv, "ten", "body", plan.ten, m), results, rnd)
            if want("select_100k_warm"):
                for srv in order:
                    run_one("select_100k_warm", srv, lambda m, srv=srv: W.select(
                        srv, "big", plan.big, m), results, rnd)

        # -- connections ---------------------------------------------------------------
        settle = 0.5 if plan.smoke else 2.0
        if want("idle_conn_1k"):
            # memory before: sealmail's session processes of these users are part of
            # what their connections cost, so the base is taken before they exist
            for srv in servers_ab:
                run_one("idle_conn_1k", srv, lambda m, srv=srv: W.connections(
                    srv, users["conn"], plan.conn_per_user, plan.conn_target,
                    plan.conn_seconds, m, settle=settle),
                    results, 0)
                time.sleep(settle)
        if want("hold_10k"):
            meta["notes"].append(
                "hold_10k users are enrolled at OWASP-minimum Argon2id (%d KiB, t=%d) so "
                "that up to %d logins fit the time bound (%ds per server), %d users with %d "
                "connections each (sealmail: max_user_connections = %d for this); login "
                "cost at the production parameters is measured by login_first and "
                "login_window" % (hold_argon2[0], hold_argon2[1], plan.hold_target,
                                  plan.hold_seconds, plan.hold_users, plan.hold_per_user,
                                  max(20, plan.hold_per_user)))
            for srv in servers_ab:
                run_one("hold_10k", srv, lambda m, srv=srv: W.connections(
                    srv, users["hold"], plan.hold_per_user, plan.hold_target,
                    plan.hold_seconds, m, workers=2 if plan.smoke else 10,
                    settle=settle), results, 0)
                time.sleep(settle)
    except KeyboardInterrupt:
        log("interrupted")
        code = 130
    except Exception as e:   # noqa: BLE001
        log("harness failure: %s\n%s" % (e, traceback.format_exc()))
        meta["harness_error"] = "%s: %s" % (type(e).__name__, e)
        code = 1
    finally:
        for s in (sm, dv, dv0):
            if s is not None:
                try:
                    if args.keep:
                        s.peer.keep = True
                    s.stop()
                except Exception as e:   # noqa: BLE001
                    log("stopping %s: %s" % (s.label, e))

    labels = ["sealmail", "dovecot", "dovecot-sc0"]
    lim = meta.get("limits", {})
    rows = summarize(results, labels, lim, plan)
    meta["duration_s"] = round(time.time() - t_start, 1)
    meta["servers"] = {
        "sealmail": "sealmail-imapd, Argon2id %d KiB t=%d, durable = yes" % argon2,
        "dovecot": "Dovecot %s, default login service, Maildir, mail_fsync default" %
                   servers.dovecot_version(),
        "dovecot-sc0": "the same with service_count = 0 (login workloads only)"}
    print()
    print("=" * 100)
    print_table(rows, lim)
    for n in meta["notes"]:
        print("note:", n)
    if "fill" in meta:
        print("fill: %s" % json.dumps(meta["fill"]))
    print("total run time: %.0f s" % meta["duration_s"])

    os.makedirs(args.out, exist_ok=True)
    base = args.name or ("smoke" if plan.smoke else "latest")
    jpath = os.path.join(args.out, base + ".json")
    with open(jpath, "w") as f:
        json.dump({"meta": meta, "summary": rows, "runs": results}, f, indent=1,
                  default=str)
    png = os.path.join(args.out, base + ".png")
    made = chart.render(rows, png, title="sealmail vs Dovecot %s (%s, %d rounds)" % (
        servers.dovecot_version(), "smoke" if plan.smoke else "full", plan.rounds))
    print("results: %s%s" % (jpath, (", chart: " + png) if made else
                             " (no chart: %s)" % chart.why_not()))

    harness_broken = code != 0 or any(
        x["errors"] for r in rows for x in r["servers"].values())
    if harness_broken and code == 0:
        code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())
