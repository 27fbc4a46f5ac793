#!/usr/bin/env python3
"""Benchmark of the command engine against Debian's Dovecot on the same machine.

  bench_engine.py [--n 1000] [--size 20000] [--build DIR] [--no-dovecot]

Both servers get the same N messages of SIZE bytes (MULTIAPPEND, LITERAL+), then the
same client operations are timed from a plain loopback connection: SELECT of the big
mailbox, FETCH 1:* BODY.PEEK[], FETCH of the cached summaries, a header search and a
body search. sealmail runs as test-engine-server (PREAUTH, no TLS) and Dovecot on its
plain IMAP port, so neither pays for TLS. Prints milliseconds and the ratio.
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "peers"))
sys.path.insert(0, HERE)
import test_protocol as tp  # noqa: E402

OPS = [
    ("SELECT", 'SELECT "bench"'),
    ("FETCH 1:* BODY.PEEK[]", "FETCH 1:* (BODY.PEEK[])"),
    ("FETCH 1:* ENVELOPE BODYSTRUCTURE", "FETCH 1:* (FLAGS UID RFC822.SIZE INTERNALDATE "
     "ENVELOPE BODYSTRUCTURE)"),
    ("FETCH 1:* HEADER.FIELDS", "FETCH 1:* (BODY.PEEK[HEADER.FIELDS (From Subject Date)])"),
    ("FETCH 1:* FLAGS", "FETCH 1:* (FLAGS)"),
    ("SEARCH SUBJECT", "SEARCH SUBJECT bench"),
    ("SEARCH BODY", "SEARCH BODY zzzz"),
]


def run(conn_factory, n, size):
    c = conn_factory()
    c.cmd('DELETE "bench"')
    c.ok('CREATE "bench"')
    body = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * (size // 50 + 1))
    m = tp.msg("bench", body=body[:size] + "\r\n")
    t0 = time.time()
    left = n
    while left > 0:
        k = min(100, left)
        tag = c.tag()
        data = tag + b' APPEND "bench"'
        for _ in range(k):
            data += b" {%d+}\r\n" % len(m) + m
        c.send(data + b"\r\n")
        st, text, _ = c.finish(tag)
        if st != b"OK":
            raise RuntimeError(text)
        left -= k
    res = {"APPEND (MULTIAPPEND x100)": time.time() - t0}
    d = conn_factory()
    for name, cmd in OPS:
        t0 = time.time()
        d.ok(cmd)
        res[name] = time.time() - t0
    c.close()
    d.close()
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--size", type=int, default=20000)
    ap.add_argument("--build", default=os.environ.get("SEALMAIL_BUILD"))
    ap.add_argument("--no-dovecot", action="store_true")
    a = ap.parse_args()
    import sealmail
    results = {}
    with sealmail.Sealmail(users=["alice"], build=a.build, mode="engine") as sm:
        port = sm._engine("alice")
        results["sealmail"] = run(lambda: tp.Wire("127.0.0.1", port), a.n, a.size)
    if not a.no_dovecot:
        import dovecot
        if dovecot.available():
            with dovecot.Dovecot(users=["alice"]) as dv:
                def dconn():
                    w = tp.Wire(dv.host, dv.imap_port)
                    w.ok(b'LOGIN "alice" "%s"' % dv.password("alice").encode())
                    return w
                results["dovecot"] = run(dconn, a.n, a.size)
    print("%d messages of %d bytes" % (a.n, a.size))
    print("%-36s %10s %10s %8s" % ("operation", "sealmail", "dovecot", "ratio"))
    for op in results["sealmail"]:
        s = results["sealmail"][op] * 1000
        d = results.get("dovecot", {}).get(op)
        if d is None:
            print("%-36s %8.1fms" % (op, s))
        else:
            print("%-36s %8.1fms %8.1fms %7.2fx" % (op, s, d * 1000, s / (d * 1000)))


if __name__ == "__main__":
    main()
