#!/usr/bin/env python3
"""Crash safety of delivery: `sealmail-vault deliver` processes are killed with SIGKILL
at random points. Every delivery that exited 0 must be present afterwards and read back
byte-exact; whatever else is present must be whole; `verify` must pass; and killed
writers must never leave the store locked.
Usage: test_crash.py SEALMAIL-VAULT SEALMAIL-KEYMGR"""
import os
import random
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sealmail_cli import Runner, Sealmail, check, sanitizer_check  # noqa: E402

USER, PW = "crash", "granite pelican harvest sonnet"
ATTEMPTS = 200
BUDGET = 60.0        # seconds for the kill loop
HANG = 60            # a delivery that was not killed must end within this


def message(rnd, n):
    # Sizes from tiny to several 64 KiB chunks, so kills land in every phase: reading
    # stdin, sealing chunks, spilling, the LMDB commit and its fsync.
    size = rnd.choice([10, 300, 5000, 70000, 200000, 400000])
    body = os.urandom(size // 2).hex().encode()
    return (b"Message-ID: <crash-%d-%s@example.org>\r\nSubject: crash %d\r\n\r\n" %
            (n, os.urandom(6).hex().encode(), n)) + body + b"\r\n"


class T:
    def __init__(self, vault_bin, keymgr_bin):
        self.s = Sealmail(vault_bin, keymgr_bin, "crash")
        self.tok = self.s.path("crash.token")
        self.rnd = random.Random(os.urandom(16))
        self.attempted = {}     # message id -> bytes
        self.acked = set()      # message ids whose deliver exited 0
        self.killed = 0

    def setup(self):
        self.s.add_user(USER, PW, self.tok)

    def deliver_proc(self, msg):
        path = self.s.path("in.eml")
        with open(path, "wb") as f:
            f.write(msg)
        f = open(path, "rb")
        p = subprocess.Popen([self.s.vault_bin, "-c", self.s.conf, "deliver", USER], stdin=f,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        f.close()
        return p

    def kill_loop(self):
        # How long an undisturbed delivery takes here, to spread the kills over it.
        durations = []
        for n in range(5):
            msg = message(self.rnd, n)
            mid = msg.split(b"\r\n")[0]
            self.attempted[mid] = msg
            t0 = time.monotonic()
            p = self.deliver_proc(msg)
            _, e = p.communicate(timeout=HANG)
            durations.append(time.monotonic() - t0)
            sanitizer_check(["sealmail-vault", "deliver"], e)
            check(p.returncode == 0, "undisturbed delivery failed: %s" % e.decode(errors="replace"))
            self.acked.add(mid)
        typical = max(durations)
        start = time.monotonic()
        n = 5
        while n < ATTEMPTS + 5 and time.monotonic() - start < BUDGET:
            msg = message(self.rnd, n)
            n += 1
            mid = msg.split(b"\r\n")[0]
            self.attempted[mid] = msg
            p = self.deliver_proc(msg)
            # One in eight runs undisturbed; the rest die somewhere in [0, 1.3 x typical].
            if self.rnd.random() >= 0.125:
                time.sleep(self.rnd.uniform(0, typical * 1.3))
                try:
                    p.send_signal(signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                _, e = p.communicate(timeout=HANG)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                raise AssertionError("a delivery hung (store left locked by a killed writer?)")
            sanitizer_check(["sealmail-vault", "deliver"], e)
            if p.returncode == 0:
                self.acked.add(mid)
            elif p.returncode == -signal.SIGKILL:
                self.killed += 1
            else:
                raise AssertionError("deliver failed without being killed: exit %d %s" %
                                     (p.returncode, e.decode(errors="replace")))
        print("  %d attempts, %d killed, %d acknowledged" %
              (len(self.attempted), self.killed, len(self.acked)), flush=True)
        check(self.killed >= 20, "too few deliveries were actually killed (%d)" % self.killed)

    def verify_passes(self):
        p = self.s.vault("verify")
        check(p.returncode == 0, "verify after kills: %s" % p.stderr.decode(errors="replace"))

    def acknowledged_mail_is_whole(self):
        s = self.s
        boxes = s.list(USER, PW, self.tok)
        inbox = boxes["INBOX"]["msgs"]
        found = {}
        for uid in sorted(inbox):
            got = s.cat(USER, PW, self.tok, uid)
            mid = got.split(b"\r\n")[0]
            check(mid in self.attempted, "uid %d is not a message that was delivered" % uid)
            check(got == self.attempted[mid], "uid %d (%s) is not byte-exact" % (uid, mid))
            check(mid not in found, "%s stored twice (uids %d, %d)" % (mid, found.get(mid, 0), uid))
            found[mid] = uid
        missing = self.acked - set(found)
        check(not missing, "%d acknowledged deliveries lost, e.g. %s" %
              (len(missing), sorted(missing)[:3]))
        print("  %d messages stored, all %d acknowledged ones present and byte-exact" %
              (len(found), len(self.acked)), flush=True)

    def store_still_usable(self):
        s = self.s
        msg = b"Message-ID: <after@example.org>\r\n\r\nstill works\r\n"
        p = s.deliver(USER, msg)
        check(p.returncode == 0, "deliver after the crash loop: %s" % p.stderr.decode(errors="replace"))
        uid = max(s.list(USER, PW, self.tok)["INBOX"]["msgs"])
        check(s.cat(USER, PW, self.tok, uid) == msg, "message after the crash loop")
        leftovers = [f for f in os.listdir(os.path.join(s.dir, "tmp"))] \
            if os.path.isdir(os.path.join(s.dir, "tmp")) else []
        # spill files of killed deliveries hold only ciphertext; report their number
        print("  %d leftover spill files in tmp/" % len(leftovers), flush=True)
        p = s.vault("stats")
        check(p.returncode == 0 and re.search(rb"messages:\s+\d+", p.stdout), "stats")


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: test_crash.py SEALMAIL-VAULT SEALMAIL-KEYMGR")
    t = T(sys.argv[1], sys.argv[2])
    r = Runner("crash")
    try:
        for name in ("setup", "kill_loop", "verify_passes", "acknowledged_mail_is_whole",
                     "store_still_usable"):
            if not r.run(name, getattr(t, name)) and name in ("setup",):
                break
    finally:
        if r.failed == 0:
            t.s.cleanup()
        else:
            print("kept %s for inspection" % t.s.tmp)
    r.finish()


if __name__ == "__main__":
    main()
