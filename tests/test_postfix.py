#!/usr/bin/env python3
"""Postfix -> LMTP -> sealmail, end to end, with a private Postfix instance.

A temporary vault and sealmail-imapd with an LMTP listener (as in test_lmtp.py), and
a Postfix instance of its own: config_directory, queue_directory and data_directory
in a temp dir, smtpd on a free loopback port, mydestination = example.test and
local_transport = lmtp:inet:127.0.0.1:PORT. The system Postfix in /etc/postfix is
never touched (only its read-only postfix-files under meta_directory are used).

Checks: mail sent with swaks over SMTP into Postfix arrives in the vault exactly
once per recipient, byte-exact apart from the trace fields (Postfix's Received: and
ours); with sealmail stopped a message stays in Postfix's queue (postqueue -p), and
after sealmail is back and the queue is flushed (postqueue -f) it arrives, once.

Installs nothing: without postfix/swaks it fails, telling to run .ci/install-deps.sh.
Usage: test_postfix.py IMAPD VAULT KEYMGR
"""
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sealmail_cli import Runner, check  # noqa: E402
from test_lmtp import (Server, Vault, free_port, split_trace)  # noqa: E402

POSTFIX = "/usr/sbin/postfix"
POSTQUEUE = "/usr/sbin/postqueue"
DAEMON_DIR = "/usr/lib/postfix/sbin"


def run(argv, timeout=60):
    # Postfix commands log to stderr only on a terminal; everything also goes to
    # maillog_file, which the failure messages include.
    return subprocess.run(argv, capture_output=True, timeout=timeout)


class Postfix:
    def __init__(self, tmp, lmtp_port):
        self.dir = os.path.join(tmp, "postfix")
        self.etc = os.path.join(self.dir, "etc")
        self.queue = os.path.join(self.dir, "queue")
        self.data = os.path.join(self.dir, "data")
        self.maillog = os.path.join(self.dir, "maillog")
        for d in (self.etc, self.queue, self.data):
            os.makedirs(d)
        for d in (self.dir, self.etc, self.queue):
            os.chmod(d, 0o755)
        shutil.chown(self.data, "postfix", "postfix")
        self.port = free_port()
        main = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue,
            "data_directory": self.data,
            "meta_directory": "/etc/postfix",
            "command_directory": "/usr/sbin",
            "daemon_directory": DAEMON_DIR,
            "shlib_directory": "/usr/lib/postfix",
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "mx.example.test",
            "mydomain": "example.test",
            "myorigin": "example.test",
            "mydestination": "example.test",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks reject_unauth_destination",
            # Every recipient of example.test goes to sealmail over LMTP; sealmail
            # itself says which users exist (550 5.1.1 at RCPT).
            "local_transport": "lmtp:inet:127.0.0.1:%d" % lmtp_port,
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "syslog_name": "postfix-sealmail-test",
            "maillog_file": self.maillog,
            "maillog_file_prefixes": self.dir,
            "queue_run_delay": "2s",
            "minimal_backoff_time": "2s",
            "maximal_backoff_time": "4s",
            "biff": "no",
        }
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            for k, v in main.items():
                f.write("%s = %s\n" % (k, v))
        services = [
            ("127.0.0.1:%d" % self.port, "inet", "n", "-", "n", "-", "-", "smtpd"),
            ("pickup", "unix", "n", "-", "n", "60", "1", "pickup"),
            ("cleanup", "unix", "n", "-", "n", "-", "0", "cleanup"),
            ("qmgr", "unix", "n", "-", "n", "300", "1", "qmgr"),
            ("rewrite", "unix", "-", "-", "n", "-", "-", "trivial-rewrite"),
            ("bounce", "unix", "-", "-", "n", "-", "0", "bounce"),
            ("defer", "unix", "-", "-", "n", "-", "0", "bounce"),
            ("trace", "unix", "-", "-", "n", "-", "0", "bounce"),
            ("verify", "unix", "-", "-", "n", "-", "1", "verify"),
            ("flush", "unix", "n", "-", "n", "1000?", "0", "flush"),
            ("proxymap", "unix", "-", "-", "n", "-", "-", "proxymap"),
            ("smtp", "unix", "-", "-", "n", "-", "-", "smtp"),
            ("relay", "unix", "-", "-", "n", "-", "-", "smtp"),
            ("showq", "unix", "n", "-", "n", "-", "-", "showq"),
            ("error", "unix", "-", "-", "n", "-", "-", "error"),
            ("retry", "unix", "-", "-", "n", "-", "-", "error"),
            ("discard", "unix", "-", "-", "n", "-", "-", "discard"),
            ("lmtp", "unix", "-", "-", "n", "-", "-", "lmtp"),
            ("anvil", "unix", "-", "-", "n", "-", "1", "anvil"),
            ("scache", "unix", "-", "-", "n", "-", "1", "scache"),
            ("postlog", "unix-dgram", "n", "-", "n", "-", "1", "postlogd"),
        ]
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            for s in services:
                f.write(" ".join(s) + "\n")
        self.started = False

    def cmd(self, *args, timeout=60):
        return run([POSTFIX, "-c", self.etc] + list(args), timeout=timeout)

    def log(self):
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read()
        except OSError:
            return "(no maillog)"

    def start(self):
        p = self.cmd("check")
        check(p.returncode == 0, "postfix check failed:\n%s" % self.log()[-3000:])
        p = self.cmd("start")
        check(p.returncode == 0, "postfix start failed:\n%s" % self.log()[-3000:])
        self.started = True
        import socket
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("Postfix smtpd never listened:\n%s" % self.log()[-3000:])

    def stop(self):
        if self.started:
            self.cmd("stop")
            self.started = False

    def queue_ids(self):
        p = run([POSTQUEUE, "-c", self.etc, "-p"])
        check(p.returncode == 0, "postqueue -p failed: %r" % p.stderr)
        return re.findall(r"^([0-9A-F]{6,})[*!]?\s", p.stdout.decode(errors="replace"), re.M)

    def flush(self):
        p = run([POSTQUEUE, "-c", self.etc, "-f"])
        check(p.returncode == 0, "postqueue -f failed: %r" % p.stderr)

    def send(self, sender, rcpts, data):
        """swaks over SMTP; data is the message (CRLF) as a file."""
        path = os.path.join(self.dir, "msg-%d.eml" % time.monotonic_ns())
        # swaks ends the data with CRLF "." CRLF itself: the file must not end with
        # the message's last line break, or the message gains an empty line.
        check(data.endswith(b"\r\n"), "message must end with CRLF")
        with open(path, "wb") as f:
            f.write(data[:-2])
        p = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(self.port),
                            "--helo", "client.example.org", "--from", sender,
                            "--to", ",".join(rcpts), "--data", path],
                           capture_output=True, timeout=60)
        check(p.returncode == 0, "swaks into Postfix failed (%d):\n%s" %
              (p.returncode, p.stdout.decode(errors="replace")[-3000:]))
        return p.stdout.decode(errors="replace")


def strip_postfix_received(msg):
    """Postfix's smtpd prepends one Received: field (with folded lines)."""
    m = re.match(rb"^Received: [^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*", msg)
    check(m is not None and b"by mx.example.test (Postfix)" in m.group(0),
          "no Postfix Received: at the top: %r" % msg[:400])
    return msg[m.end():]


def first_diff(got, want):
    i = next((k for k in range(min(len(got), len(want))) if got[k] != want[k]),
             min(len(got), len(want)))
    return "%d vs %d bytes, first difference at %d: %r vs %r" % (
        len(got), len(want), i, got[max(0, i - 40):i + 40], want[max(0, i - 40):i + 40])


def find(v, user, subject):
    """UIDs of the user's INBOX messages with this unique subject."""
    out = []
    for uid in sorted(v.inbox(user)):
        stored = v.cat_user(user, uid)
        if subject in stored:
            out.append((uid, stored))
    return out


def wait_for(cond, secs, what, log):
    deadline = time.time() + secs
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.5)
    raise AssertionError("timed out waiting for %s; Postfix log:\n%s" % (what, log()[-4000:]))


def message(tag):
    return (b"From: Sender <sender@example.org>\r\n"
            b"To: alice@example.test, bob@example.test\r\n"
            b"Subject: postfix test " + tag + b"\r\n"
            b"Message-ID: <" + tag + b"@example.org>\r\n"
            b"Date: Fri, 27 Nov 2026 12:00:00 +0000\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n"
            b"Hello through Postfix.\r\n.\r\n..two dots\r\n.leading dot\r\n"
            b"8-bit: \xc3\xa9t\xc3\xa9\r\n" + b"long line " * 90 + b"\r\n" +
            b"last line\r\n")


def t_delivery(env):
    pf, v = env.pf, env.v
    msg = message(b"one")
    pf.send("sender@example.org", ["alice@example.test", "bob@example.test",
                                   "nosuchuser@example.test"], msg)
    for user, rcpt in (("alice", "alice@example.test"), ("bob", "bob@example.test")):
        got = []

        def arrived():
            got[:] = find(v, user, b"postfix test one")
            return len(got) > 0
        wait_for(arrived, 60, "delivery to %s" % user, pf.log)
        time.sleep(1)       # a duplicate would show up by now
        got = find(v, user, b"postfix test one")
        check(len(got) == 1, "%s got the message %d times" % (user, len(got)))
        trace, rest = split_trace(got[0][1])
        check(b"Delivered-To: <%s>" % rcpt.encode() in trace, "trace %r" % trace)
        check(b"from mx.example.test ([127.0.0.1])" in trace, "LHLO in trace %r" % trace)
        body = strip_postfix_received(rest)
        check(body == msg, "%s: message differs after Postfix + LMTP: %s" %
              (user, first_diff(body, msg)))
    # The unknown recipient was refused at RCPT: Postfix bounces it to the sender
    # (a bounce for example.org has nowhere to go and waits in the queue), never
    # retrying it against sealmail.
    wait_for(lambda: "nosuchuser@example.test" in pf.log() and
             "550 5.1.1" in pf.log(), 30, "the 550 for the unknown user", pf.log)


def t_queued_while_down(env):
    pf, v = env.pf, env.v
    env.srv.stop()
    before = set(pf.queue_ids())
    msg = message(b"two")
    pf.send("sender@example.org", ["alice@example.test"], msg)
    queued = []

    def deferred():
        queued[:] = list(set(pf.queue_ids()) - before)
        return bool(queued) and "status=deferred" in pf.log()
    wait_for(deferred, 60, "the message to be deferred", pf.log)
    time.sleep(3)       # a retry or two against the stopped server
    check(set(queued) <= set(pf.queue_ids()), "the message left the queue while "
          "sealmail was down:\n%s" % pf.log()[-2000:])
    env.srv = Server(v, lmtp_port=env.lmtp_port)
    pf.flush()
    got = []

    def arrived():
        got[:] = find(v, "alice", b"postfix test two")
        return len(got) > 0
    wait_for(arrived, 90, "the queued message after the restart", pf.log)
    wait_for(lambda: not (set(queued) & set(pf.queue_ids())), 30,
             "the queue entry to go", pf.log)
    time.sleep(1)
    got = find(v, "alice", b"postfix test two")
    check(len(got) == 1, "queued message arrived %d times" % len(got))
    _, rest = split_trace(got[0][1])
    body = strip_postfix_received(rest)
    check(body == msg, "queued message differs: %s" % first_diff(body, msg))


class Env:
    pass


def main():
    if len(sys.argv) != 4:
        print("usage: test_postfix.py IMAPD VAULT KEYMGR", file=sys.stderr)
        sys.exit(2)
    missing = [p for p in (POSTFIX, POSTQUEUE, DAEMON_DIR + "/master") if not os.path.exists(p)]
    if shutil.which("swaks") is None:
        missing.append("swaks")
    if missing:
        print("FAIL: not installed: %s. Run .ci/install-deps.sh (as root) first." %
              ", ".join(missing), flush=True)
        print("postfix: 0 passed, 1 failed")
        sys.exit(1)
    if os.geteuid() != 0:
        print("FAIL: a private Postfix instance needs root (its queue is owned by "
              "root and the postfix user)")
        print("postfix: 0 passed, 1 failed")
        sys.exit(1)
    bins = [os.path.abspath(a) for a in sys.argv[1:4]]
    runner = Runner("postfix")
    env = Env()
    env.v = Vault(bins, "postfix", users=("alice", "bob"))
    env.srv = None
    env.pf = None
    try:
        env.lmtp_port = free_port()
        env.srv = Server(env.v, lmtp_port=env.lmtp_port)
        env.pf = Postfix(env.v.tmp, env.lmtp_port)
        if runner.run("postfix_start", env.pf.start):
            runner.run("delivery", t_delivery, env)
            runner.run("queued_while_down", t_queued_while_down, env)
    finally:
        if env.pf is not None:
            env.pf.stop()
        if env.srv is not None:
            try:
                env.srv.stop()
            except AssertionError as e:
                print("FAIL server: %s" % e)
                runner.failed += 1
        env.v.cleanup()
    runner.finish()


if __name__ == "__main__":
    main()
