#!/usr/bin/env python3
"""LMTP delivery throughput: 20 KiB messages, 1 and 10 concurrent clients, against
sealmail-imapd (durable commits, the default) and, when installed, a private Debian
Dovecot (tests/peers/dovecot.py) on the same machine in the same run.

Each client keeps one connection and loops MAIL/RCPT/DATA (envelope pipelined),
one recipient per message, waiting for the final reply each time.

Usage: bench_lmtp.py IMAPD VAULT KEYMGR [SECONDS-PER-RUN]
BENCH_DURABLE=no runs sealmail with durable = no (no fsync per commit: shows what
the commit's fsync costs; never a production setting).
"""
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))
from test_lmtp import Server, Vault, stuff  # noqa: E402

MSG_SIZE = 20 * 1024


def message(i):
    head = b"From: bench@example.org\r\nTo: alice@example.test\r\nSubject: bench %d\r\n\r\n" % i
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-_ 0123456\r\n"
    body = (line * (MSG_SIZE // len(line) + 1))[:MSG_SIZE - len(head) - 2] + b"\r\n"
    return head + body


def reply(s, buf):
    while True:
        while b"\r\n" not in buf[0]:
            d = s.recv(65536)
            if not d:
                raise EOFError
            buf[0] += d
        line, buf[0] = buf[0].split(b"\r\n", 1)
        if line[3:4] == b" ":
            return int(line[:3])


def client(addr, users, secs, counts, idx, errors):
    s = socket.create_connection(addr, 30)
    buf = [b""]
    reply(s, buf)
    s.sendall(b"LHLO bench.test\r\n")
    reply(s, buf)
    data = stuff(message(idx))
    n = 0
    user = users[idx % len(users)]
    end = time.monotonic() + secs
    while time.monotonic() < end:
        s.sendall(b"MAIL FROM:<bench@example.org>\r\nRCPT TO:<%s>\r\nDATA\r\n" % user.encode())
        codes = [reply(s, buf) for _ in range(3)]
        if codes != [250, 250, 354]:
            errors.append(codes)
            break
        s.sendall(data)
        c = reply(s, buf)
        if c != 250:
            errors.append(c)
            break
        n += 1
    s.sendall(b"QUIT\r\n")
    s.close()
    counts[idx] = n


def run(addr, users, nclients, secs):
    counts, errors = [0] * nclients, []
    th = [threading.Thread(target=client, args=(addr, users, secs, counts, i, errors))
          for i in range(nclients)]
    t0 = time.monotonic()
    for t in th:
        t.start()
    for t in th:
        t.join()
    dt = time.monotonic() - t0
    if errors:
        raise RuntimeError("errors: %r" % errors[:5])
    return sum(counts) / dt


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    bins = [os.path.abspath(a) for a in sys.argv[1:4]]
    secs = float(sys.argv[4]) if len(sys.argv) > 4 else 10.0
    users = ["alice", "bob", "carol"]
    results = {}
    v = Vault(bins, "bench-lmtp")
    srv = Server(v, durable=os.environ.get("BENCH_DURABLE", "yes"))
    try:
        for n in (1, 10):
            results[("sealmail", n)] = run(("127.0.0.1", srv.lmtp_port), users, n, secs)
            print("sealmail  %2d client(s): %7.1f deliveries/s" % (n, results[("sealmail", n)]),
                  flush=True)
    finally:
        srv.stop()
        v.cleanup()
    try:
        import dovecot
        if dovecot.available():
            with dovecot.Dovecot(users=users) as dv:
                for n in (1, 10):
                    results[("dovecot", n)] = run((dv.host, dv.lmtp_port), users, n, secs)
                    print("dovecot   %2d client(s): %7.1f deliveries/s (sealmail/dovecot "
                          "%.2f)" % (n, results[("dovecot", n)],
                                     results[("sealmail", n)] / results[("dovecot", n)]),
                          flush=True)
    except Exception as e:  # noqa: BLE001 - the peer is optional
        print("dovecot: not measured (%s)" % e)


if __name__ == "__main__":
    main()
