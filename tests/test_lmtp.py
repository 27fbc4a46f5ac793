#!/usr/bin/env python3
"""Integration tests for sealmail-imapd's LMTP service (RFC 2033): a temporary vault
made with `sealmail-vault init`, users made with `sealmail-keymgr user add
--soft-token`, the real server on loopback with free ports (and a UNIX socket), and
real clients: Python's smtplib.LMTP, raw sockets (pipelining, BDAT, disconnects),
swaks. Every delivered message is read back with `sealmail-vault cat` (passphrase +
a fresh OTP) and compared byte for byte.

Usage: test_lmtp.py IMAPD VAULT KEYMGR [TEST-NAME-SUBSTRING...]
SEALMAIL_LMTP_SERVER=PROGRAM replaces IMAPD (same "-c CONF" interface).
Prints "N passed, N failed" and exits non-zero on any failure.
"""
import hashlib
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sealmail_cli  # noqa: E402
from sealmail_cli import Runner, Sealmail, check, set_config  # noqa: E402

IS_ROOT = os.geteuid() == 0
RUN_USER = "sealmail"
PASS = {"alice": "alice lmtp passphrase one", "bob": "bob lmtp passphrase two",
        "carol": "carol lmtp passphrase three"}
HOST = "vault.lmtp.test"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def children(ppid):
    """Live (non-zombie) children, sorted."""
    return sorted(sealmail_cli.children(ppid, zombies=False))


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def proc_status(pid, key):
    """A kB value from /proc/PID/status (e.g. VmRSS, VmHWM), or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def ensure_run_user():
    try:
        pwd.getpwnam(RUN_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", RUN_USER], check=True)


class Vault(Sealmail):
    """A temporary vault with users alice, bob, carol (soft tokens)."""

    def __init__(self, bins, name="lmtp", settings=None, users=("alice", "bob", "carol")):
        self.imapd = bins[0]
        s = {"hostname": HOST}
        s.update(settings or {})
        super().__init__(bins[1], bins[2], name, s)
        os.chmod(self.tmp, 0o755)
        self.tokens = {}
        for u in users:
            self.tokens[u] = self.path(u + ".token")
            self.add_user(u, PASS[u], self.tokens[u])
        if IS_ROOT:
            ensure_run_user()
            subprocess.run(["chown", "-R", RUN_USER + ":", self.tmp], check=True)

    def cat_user(self, user, uid):
        return self.cat(user, PASS[user], self.tokens[user], uid)

    def inbox(self, user):
        """{uid: size} of the user's INBOX."""
        boxes = self.list(user, PASS[user], self.tokens[user])
        return {u: m["size"] for u, m in boxes["INBOX"]["msgs"].items()}

    def messages(self):
        p = self.vault("stats")
        check(p.returncode == 0, "stats failed: %s" % p.stderr.decode(errors="replace"))
        m = re.search(r"messages\D*(\d+)", p.stdout.decode())
        check(m is not None, "no message count in stats:\n%s" % p.stdout.decode())
        return int(m.group(1))


class Server:
    def __init__(self, vault, lmtp=None, lmtp_port=None, **settings):
        for attempt in range(3):    # free ports are racy: retry on a bind failure
            try:
                return self._start(vault, lmtp, lmtp_port, **settings)
            except AssertionError as e:
                self.stop()
                if "in use" not in str(e) or attempt == 2:
                    raise

    def _start(self, vault, lmtp, lmtp_port, **settings):
        self.v = vault
        self.imap_port, self.lmtp_port = free_port(), lmtp_port or free_port()
        self.lmtp = lmtp or "127.0.0.1:%d" % self.lmtp_port
        self.conf = os.path.join(vault.tmp, "imapd-%d.conf" % self.imap_port)
        shutil.copy(vault.conf, self.conf)
        s = {"imap_listen": "127.0.0.1:%d" % self.imap_port, "imaps_listen": "",
             "lmtp_listen": self.lmtp, "data_dir": vault.dir, "log_level": "debug"}
        if IS_ROOT:
            s["run_user"] = RUN_USER
        s.update({k: str(v) for k, v in settings.items()})
        set_config(self.conf, s)
        if IS_ROOT:
            subprocess.run(["chown", RUN_USER + ":", self.conf], check=True)
        self.log = os.path.join(vault.tmp, "imapd-%d.log" % self.imap_port)
        self.logf = open(self.log, "wb")
        prog = os.environ.get("SEALMAIL_LMTP_SERVER") or vault.imapd
        self.p = subprocess.Popen([prog, "-c", self.conf], stdout=self.logf,
                                  stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            check(self.p.poll() is None, "server exited: " + self.log_text())
            try:
                self.connect_raw().close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise AssertionError("server did not start: " + self.log_text())

    def addr(self):
        if self.lmtp.startswith("/"):
            return self.lmtp.split()[0]
        return ("127.0.0.1", self.lmtp_port)

    def connect_raw(self, timeout=30):
        a = self.addr()
        if isinstance(a, str):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(a)
            return s
        return socket.create_connection(a, timeout)

    def lmtp_client(self):
        a = self.addr()
        if isinstance(a, str):
            return smtplib.LMTP(a)
        return smtplib.LMTP(a[0], a[1])

    def log_text(self):
        if not self.logf.closed:
            self.logf.flush()
        with open(self.log, "rb") as f:
            return f.read().decode(errors="replace")

    def lmtp_pid(self):
        pids = [p for p in children(self.p.pid) if comm(p) == "imapd-lmtp"]
        return pids[0] if pids else None

    def conn_pids(self):
        lp = self.lmtp_pid()
        return [p for p in children(lp) if comm(p) == "imapd-lmtp-conn"] if lp else []

    def committer_pid(self):
        lp = self.lmtp_pid()
        pids = [p for p in children(lp) if comm(p) == "imapd-lmtp-save"] if lp else []
        return pids[0] if pids else None

    def stop(self):
        if getattr(self, "p", None) is None:
            return None
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.logf.close()
        rc = self.p.returncode
        self.p = None
        sanitizer = [m for m in ("ERROR: AddressSanitizer", "runtime error:",
                                 "LeakSanitizer") if m in self.log_text()]
        check(not sanitizer, "sanitizer report in the server log:\n" + self.log_text()[-4000:])
        return rc


class Conn:
    """A raw LMTP client: exact bytes out, parsed replies in."""

    def __init__(self, srv, timeout=60):
        self.s = srv.connect_raw(timeout)
        self.buf = b""
        self.greeting = self.reply()

    def send(self, data):
        self.s.sendall(data if isinstance(data, bytes) else data.encode())

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("connection closed; buffer %r" % self.buf)
            self.buf += d
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode(errors="replace")

    def reply(self):
        """(code, text of all lines joined by newlines)."""
        lines = []
        while True:
            ln = self.line()
            lines.append(ln)
            check(re.match(r"^\d{3}[ -]", ln) is not None, "bad reply line %r" % ln)
            if ln[3] == " ":
                return int(ln[:3]), "\n".join(lines)

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.reply()

    def expect(self, text, code):
        c, t = self.cmd(text)
        check(c == code, "%s: expected %d, got %r" % (text, code, t))
        return t

    def close(self):
        self.s.close()


def stuff(msg):
    """Dot-stuffs a CRLF message for DATA (RFC 5321 4.5.2) and appends the end."""
    lines = msg.split(b"\r\n")
    out = b"\r\n".join((b"." + ln) if ln.startswith(b".") else ln for ln in lines)
    if not out.endswith(b"\r\n"):
        out += b"\r\n"
    return out + b".\r\n"


def split_trace(stored):
    """Splits a stored message into (trace header block, original message)."""
    m = re.match(rb"^(Return-Path: <[^\r\n]*>\r\nDelivered-To: <[^\r\n]*>\r\n"
                 rb"Received: [^\r\n]*\r\n(?:\t[^\r\n]*\r\n)*)", stored)
    check(m is not None, "no trace fields at the top of %r" % stored[:300])
    return m.group(1), stored[m.end():]


def check_delivered(v, user, uid, original, sender=None, rcpt=None):
    stored = v.cat_user(user, uid)
    trace, body = split_trace(stored)
    check(body == original, "user %s uid %d: stored message differs (%d vs %d bytes): %r" %
          (user, uid, len(body), len(original), body[:200]))
    if sender is not None:
        check(trace.startswith(b"Return-Path: <%s>\r\n" % sender.encode()),
              "Return-Path: %r" % trace)
    if rcpt is not None:
        check(b"Delivered-To: <%s>\r\n" % rcpt.encode() in trace, "Delivered-To: %r" % trace)
        check(b"for <%s>;" % rcpt.encode() in trace, "Received for: %r" % trace)
    check(b"by %s (sealmail) with LMTP id " % HOST.encode() in trace, "Received: %r" % trace)
    return trace


def new_uids(before, after):
    return sorted(set(after) - set(before))


MSG = (b"From: sender@example.org\r\nTo: alice@example.test\r\nSubject: hello\r\n"
       b"Message-ID: <m1@example.org>\r\n\r\nHello over LMTP.\r\n")

# ---- tests -----------------------------------------------------------------------


def t_greeting_and_lhlo(env):
    srv = env.srv
    c = Conn(srv)
    check(c.greeting == (220, "220 %s LMTP sealmail ready" % HOST), "greeting %r" %
          (c.greeting,))
    t = c.expect("HELO client.test", 500)
    t = c.expect("EHLO client.test", 500)
    c.expect("MAIL FROM:<a@b>", 503)
    t = c.expect("LHLO client.test", 250)
    lines = [ln[4:] for ln in t.split("\n")]
    check(lines[0] == HOST, "LHLO first line %r" % lines[0])
    for cap in ("PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME", "CHUNKING"):
        check(cap in lines, "%s not advertised: %r" % (cap, lines))
    size = [ln for ln in lines if ln.startswith("SIZE ")]
    check(size == ["SIZE %d" % env.max_size], "SIZE: %r" % size)
    c.expect("VRFY alice", 252)
    c.expect("EXPN staff", 502)
    c.expect("NOOP", 250)
    c.expect("FOO bar", 500)
    c.expect("RCPT TO:<alice>", 503)
    c.expect("DATA", 503)
    c.expect("LHLO", 501)
    c.expect("QUIT", 221)
    c.close()


def t_smtplib_single(env):
    v, srv = env.v, env.srv
    before = v.inbox("alice")
    c = srv.lmtp_client()
    c.ehlo("client.test")
    refused = c.sendmail("sender@example.org", ["alice@example.test"], MSG)
    c.quit()
    check(refused == {}, "refused %r" % refused)
    after = v.inbox("alice")
    uids = new_uids(before, after)
    check(len(uids) == 1, "expected one new message, got %r" % uids)
    check_delivered(v, "alice", uids[0], MSG, "sender@example.org", "alice@example.test")


def t_recipients_one_unknown(env):
    v, srv = env.v, env.srv
    before = {u: v.inbox(u) for u in ("alice", "bob")}
    c = Conn(srv)
    c.expect("LHLO client.test", 250)
    c.expect("MAIL FROM:<>", 250)
    c.expect("RCPT TO:<alice@example.test>", 250)
    t = c.expect("RCPT TO:<nosuchuser@example.test>", 550)
    check(" 5.1.1 " in t, "550 without 5.1.1: %r" % t)
    c.expect("RCPT TO:<bob+lists@example.test>", 250)   # +detail
    c.expect("DATA", 354)
    c.send(stuff(MSG))
    r1, r2 = c.reply(), c.reply()    # one per accepted recipient, in order
    check(r1[0] == 250 and "<alice@example.test>" in r1[1], "alice: %r" % (r1,))
    check(r2[0] == 250 and "<bob+lists@example.test>" in r2[1], "bob: %r" % (r2,))
    c.expect("QUIT", 221)
    c.close()
    for u, rcpt in (("alice", "alice@example.test"), ("bob", "bob+lists@example.test")):
        uids = new_uids(before[u], v.inbox(u))
        check(len(uids) == 1, "%s: %r" % (u, uids))
        check_delivered(v, u, uids[0], MSG, "", rcpt)


def t_address_forms(env):
    c = Conn(env.srv)
    c.expect("LHLO forms.test", 250)
    c.expect("MAIL FROM:<@relay.example:s@example.org>", 250)
    for rcpt in ("<ALICE@Example.TEST>", '<"alice"@x>', "<bob+z>", "<Bob+Z@x>",
                 "<@r1,@r2:carol@x>", "alice", "<carol>"):
        c.expect("RCPT TO:%s" % rcpt, 250)
    for rcpt in ("<alice.x@y>", "<+alice@y>", '<"alice@x">'):
        c.expect("RCPT TO:%s" % rcpt, 550)
    c.expect("RSET", 250)
    c.expect("QUIT", 221)


def t_pipelining(env):
    v, srv = env.v, env.srv
    before = {u: v.inbox(u) for u in ("alice", "carol")}
    c = Conn(srv)
    msg1 = MSG.replace(b"hello", b"pipelined one")
    msg2 = MSG.replace(b"hello", b"pipelined two")
    # Everything up to DATA in one write (RFC 2920), twice on one connection.
    c.send(b"LHLO pipe.test\r\nMAIL FROM:<p@x> BODY=8BITMIME SIZE=%d\r\n"
           b"RCPT TO:<alice>\r\nRCPT TO:<nobody>\r\nRCPT TO:<carol@x>\r\nDATA\r\n" %
           len(msg1))
    codes = [c.reply()[0] for _ in range(6)]
    check(codes == [250, 250, 250, 550, 250, 354], "pipelined replies %r" % codes)
    c.send(stuff(msg1) + b"RSET\r\nMAIL FROM:<p2@x>\r\nRCPT TO:<carol>\r\nDATA\r\n")
    codes = [c.reply()[0] for _ in range(6)]
    check(codes == [250, 250, 250, 250, 250, 354], "second group %r" % codes)
    c.send(stuff(msg2) + b"QUIT\r\n")
    codes = [c.reply()[0] for _ in range(2)]
    check(codes == [250, 221], "end %r" % codes)
    c.close()
    ua = new_uids(before["alice"], v.inbox("alice"))
    uc = new_uids(before["carol"], v.inbox("carol"))
    check(len(ua) == 1 and len(uc) == 2, "alice %r carol %r" % (ua, uc))
    check_delivered(v, "alice", ua[0], msg1, "p@x", "alice")
    check_delivered(v, "carol", uc[0], msg1, "p@x", "carol@x")
    check_delivered(v, "carol", uc[1], msg2, "p2@x", "carol")


def dotty_message():
    return (b"Subject: dots\r\n\r\n.\r\n..\r\n...leading dots\r\n. space\r\nmid.dle\r\n"
            b".\r.\r\n\xe9t\xe9 8-bit \xff\r\n.\r\n" + b"x" * 5000 + b"\r\n.end\r\n")


def t_dot_stuffing(env):
    v, srv = env.v, env.srv
    before = v.inbox("alice")
    msg = dotty_message()
    wire = stuff(msg)
    c = Conn(srv)
    c.expect("LHLO dots.test", 250)
    c.expect("MAIL FROM:<d@x>", 250)
    c.expect("RCPT TO:<alice>", 250)
    c.expect("DATA", 354)
    # Odd-sized writes so that the final dot and the stuffed dots fall on splits.
    for i in range(0, len(wire), 7):
        c.send(wire[i:i + 7])
    r = c.reply()
    check(r[0] == 250, "DATA end: %r" % (r,))
    c.expect("QUIT", 221)
    uids = new_uids(before, v.inbox("alice"))
    check(len(uids) == 1, "new %r" % uids)
    check_delivered(v, "alice", uids[0], msg, "d@x", "alice")


def t_bdat(env):
    v, srv = env.v, env.srv
    before = {u: v.inbox(u) for u in ("alice", "bob")}
    # Every byte value but LF (a bare LF is stored as CRLF, as `deliver` does; see
    # t_bare_lf), CR-LF.CR-LF and dots are just data in a chunk.
    msg = (b"Subject: chunks\r\n\r\n" + b"line one\r\n.\r\n..not stuffed\r\n" +
           bytes(b for b in range(256) if b != 10) + b"\r\n")
    c = Conn(srv)
    c.expect("LHLO chunks.test", 250)
    c.expect("MAIL FROM:<b@x> BODY=8BITMIME", 250)
    c.expect("RCPT TO:<alice>", 250)
    c.expect("RCPT TO:<bob>", 250)
    a, b = msg[:30], msg[30:]
    c.send(b"BDAT %d\r\n%s" % (len(a), a))
    r = c.reply()
    check(r[0] == 250, "first chunk %r" % (r,))
    c.send(b"BDAT 0\r\n")
    check(c.reply()[0] == 250, "empty chunk")
    # The last chunk and the command after it pipelined in one write.
    c.send(b"BDAT %d LAST\r\n%sNOOP\r\n" % (len(b), b))
    r1, r2, r3 = c.reply(), c.reply(), c.reply()
    check(r1[0] == 250 and r2[0] == 250 and r3[0] == 250, "BDAT LAST %r %r %r" % (r1, r2, r3))
    check("<alice>" in r1[1] and "<bob>" in r2[1], "per-recipient order %r %r" % (r1, r2))
    # BDAT without a transaction: the chunk is still consumed, then 503.
    c.send(b"BDAT 4\r\nQUITNOOP\r\n")
    check(c.reply()[0] == 503, "BDAT without MAIL")
    check(c.reply()[0] == 250, "NOOP after refused chunk")
    c.expect("BDAT x", 501)
    c.expect("MAIL FROM:<b@x>", 250)
    c.expect("RCPT TO:<alice>", 250)
    c.send(b"BDAT 3\r\nabc")
    check(c.reply()[0] == 250, "chunk")
    c.expect("DATA", 503)       # no DATA after BDAT in one transaction
    c.expect("RSET", 250)       # and nothing of it stored
    c.expect("QUIT", 221)
    for u in ("alice", "bob"):
        uids = new_uids(before[u], v.inbox(u))
        check(len(uids) == 1, "%s: %r" % (u, uids))
        check_delivered(v, u, uids[0], msg, "b@x", u)


def t_bare_lf(env):
    """A sloppy client's bare LF line ends are stored as CRLF (what IMAP serves), the
    same conversion `sealmail-vault deliver` makes."""
    v, srv = env.v, env.srv
    before = v.inbox("alice")
    c = Conn(srv)
    c.expect("LHLO lf.test", 250)
    c.expect("MAIL FROM:<lf@x>", 250)
    c.expect("RCPT TO:<alice>", 250)
    c.expect("DATA", 354)
    c.send(b"Subject: lf\n\nline one\n..dot\r\nmixed\n.\r\n")
    check(c.reply()[0] == 250, "bare LF message refused")
    c.expect("QUIT", 221)
    uids = new_uids(before, v.inbox("alice"))
    check(len(uids) == 1, "new %r" % uids)
    check_delivered(v, "alice", uids[0], b"Subject: lf\r\n\r\nline one\r\n.dot\r\nmixed\r\n")


def sample_rss(pids, stop, out):
    while not stop.is_set():
        for p in pids:
            r = proc_status(p, "VmRSS")
            if r is not None:
                out[p] = max(out.get(p, 0), r)
        time.sleep(0.01)


def big_message(n):
    """n bytes of a plausible message: headers, then 76-char lines of varied text."""
    head = b"Subject: big\r\nContent-Type: text/plain\r\n\r\n"
    line = bytes((33 + (i * 7) % 90) for i in range(76)) + b"\r\n"
    reps = (n - len(head)) // len(line) + 1
    return (head + line * reps)[:n - 2] + b"\r\n"


def t_big_message(env):
    v, srv = env.v, env.srv
    size = 50 * 1000 * 1000
    msg = big_message(size)
    wire = stuff(msg)
    before = v.inbox("alice")
    c = Conn(srv, timeout=300)
    c.expect("LHLO big.test", 250)
    c.expect("MAIL FROM:<big@x> SIZE=%d" % len(msg), 250)
    c.expect("RCPT TO:<alice>", 250)
    c.expect("DATA", 354)
    pids = srv.conn_pids()
    check(len(pids) >= 1, "no imapd-lmtp-conn process found")
    peaks, stop = {}, threading.Event()
    th = threading.Thread(target=sample_rss, args=(pids, stop, peaks))
    th.start()
    t0 = time.monotonic()
    try:
        for i in range(0, len(wire), 1 << 20):
            c.send(wire[i:i + (1 << 20)])
        stream_peak = max(peaks.values() or [0])
        r = c.reply()
    finally:
        stop.set()
        th.join()
    secs = time.monotonic() - t0
    check(r[0] == 250, "50 MB message: %r" % (r,))
    hwm = max(proc_status(p, "VmHWM") or 0 for p in pids)
    c.expect("QUIT", 221)
    env.report["big_message"] = (
        "50 MB message: %.1f s; LMTP connection process RSS while streaming <= %d KiB, "
        "peak (VmHWM, incl. the vault commit) %d KiB" % (secs, stream_peak, hwm))
    print("     " + env.report["big_message"], flush=True)
    # While the data streams in, no plaintext accumulates: RSS stays far below the
    # message size (the vault keeps at most DELIVERY_MEM_MAX of ciphertext in memory).
    # (Under ASan its allocator quarantine keeps freed memory: no bound to check.)
    if not env.sanitized:
        check(stream_peak < 24 * 1024, "RSS while streaming %d KiB" % stream_peak)
    after = v.inbox("alice")
    uids = new_uids(before, after)
    check(len(uids) == 1, "new %r" % uids)
    stored = v.cat_user("alice", uids[0])
    trace, body = split_trace(stored)
    check(len(body) == len(msg) and hashlib.sha256(body).digest() ==
          hashlib.sha256(msg).digest(), "50 MB message differs")


def t_over_size(env):
    v, srv = env.v, env.srv
    before = v.messages()
    c = Conn(srv)
    c.expect("LHLO big.test", 250)
    t = c.expect("MAIL FROM:<big@x> SIZE=%d" % (env.max_size + 1), 552)
    check(" 5.3.4 " in t, "SIZE refusal %r" % t)
    c.expect("MAIL FROM:<big@x> SIZE=99999999999999999999999", 552)
    c.expect("MAIL FROM:<big@x> SIZE=abc", 501)
    c.expect("MAIL FROM:<big@x> FOO=1", 555)
    # No SIZE announced: found out during DATA, one 552 per recipient, nothing kept.
    c.expect("MAIL FROM:<big@x>", 250)
    c.expect("RCPT TO:<alice>", 250)
    c.expect("RCPT TO:<bob>", 250)
    c.expect("DATA", 354)
    chunk = b"y" * 998 + b"\r\n"
    sent = 0
    while sent <= env.max_size:
        c.send(chunk * 1000)
        sent += len(chunk) * 1000
    c.send(b".\r\n")
    r1, r2 = c.reply(), c.reply()
    check(r1[0] == 552 and r2[0] == 552 and " 5.3.4 " in r1[1], "over size %r %r" % (r1, r2))
    # BDAT over the limit: 552 at the chunk, 552 per recipient at LAST.
    c.expect("MAIL FROM:<big@x>", 250)
    c.expect("RCPT TO:<alice>", 250)
    c.send(b"BDAT %d\r\n" % (env.max_size + 1) + b"z" * (env.max_size + 1))
    check(c.reply()[0] == 552, "BDAT over size")
    c.send(b"BDAT 1 LAST\r\nz")
    check(c.reply()[0] == 552, "BDAT LAST after over size")
    c.expect("QUIT", 221)
    check(v.messages() == before, "an over-size message was stored")


def t_disconnect_mid_data(env):
    v, srv = env.v, env.srv
    before = v.messages()
    for variant in ("data", "bdat"):
        c = Conn(srv)
        c.expect("LHLO gone.test", 250)
        c.expect("MAIL FROM:<g@x>", 250)
        c.expect("RCPT TO:<alice>", 250)
        c.expect("RCPT TO:<bob>", 250)
        if variant == "data":
            c.expect("DATA", 354)
            c.send(b"Subject: cut\r\n\r\n" + b"partial line\r\n" * 100000)
        else:
            c.send(b"BDAT 100\r\nabc")
            time.sleep(0.2)
            c.send(b"BDAT")
        c.s.shutdown(socket.SHUT_RDWR)
        c.close()
    # The connection processes end without storing anything.
    deadline = time.time() + 10
    while srv.conn_pids() and time.time() < deadline:
        time.sleep(0.05)
    check(v.messages() == before, "a message of a dropped connection was stored")
    check("nothing stored" in srv.log_text(), "no log line about the dropped data")


def t_errors(env):
    srv = env.srv
    c = Conn(srv)
    c.expect("LHLO e.test", 250)
    c.expect("X" * 5000, 500)
    c.expect("MAIL FROM:<a@b", 501)
    c.expect("MAIL FROM:<a@b> BODY=BINARYMIME", 501)
    c.expect("MAIL FROM:<a@b>", 250)
    c.expect("MAIL FROM:<a@b>", 503)
    c.expect("RCPT TO:<>", 501)
    c.expect("RCPT TO:<alice> NOTIFY=NEVER", 555)
    c.expect("DATA", 503)               # no valid recipient (RFC 2033 4.2)
    c.expect("RSET", 250)
    c.expect("STARTTLS", 502)
    # 20 bad commands in a row: 421 and the connection closes
    c.send(b"BOGUS\r\n" * 25)
    codes = []
    try:
        while True:
            codes.append(c.reply()[0])
    except (EOFError, ConnectionError):
        pass
    check(codes[-1] == 421 and codes.count(500) >= 18, "error limit: %r" % codes)
    c.close()


def t_swaks(env):
    if shutil.which("swaks") is None:
        raise AssertionError("swaks is not installed: run .ci/install-deps.sh")
    v, srv = env.v, env.srv
    before = v.inbox("bob")
    a = srv.addr()
    where = ["--socket", a] if isinstance(a, str) else ["--server", a[0], "--port", str(a[1])]
    body = "swaks body line\n.leading dot line\nlast"
    p = subprocess.run(["swaks", "--protocol", "LMTP"] + where +
                       ["--from", "swaks@example.org", "--to", "bob@example.test",
                        "--helo", "swaks.test", "--header", "Subject: via swaks",
                        "--body", body], capture_output=True, timeout=60)
    check(p.returncode == 0, "swaks failed (%d): %s" % (p.returncode, p.stdout.decode()[-2000:]))
    uids = new_uids(before, v.inbox("bob"))
    check(len(uids) == 1, "swaks: %r" % uids)
    stored = v.cat_user("bob", uids[0])
    trace, msg = split_trace(stored)
    check(b"Subject: via swaks\r\n" in msg, "swaks message %r" % msg[:300])
    check(b"\r\n.leading dot line\r\n" in msg, "swaks dot line not unstuffed: %r" % msg)
    check(b"from swaks.test" in trace, "HELO in Received: %r" % trace)


class Env:
    def __init__(self, bins, v, srv, max_size):
        self.bins, self.v, self.srv, self.max_size = bins, v, srv, max_size
        self.report = {}
        with open(bins[0], "rb") as f:
            self.sanitized = b"__asan_init" in f.read()


def t_unix_socket(env):
    bins = env.bins
    v = Vault(bins, "lmtp-unix", users=("alice", "bob"))
    srv = None
    try:
        path = v.path("lmtp.sock")
        # A stale socket from a crashed run must not stop the server.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.close()
        srv = Server(v, lmtp="%s mode=0660" % path)
        import stat
        st = os.stat(path)
        check(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660,
              "socket mode %o" % st.st_mode)
        before = v.inbox("alice")
        c = srv.lmtp_client()
        c.ehlo("unix.test")
        check(c.sendmail("u@x", ["alice@example.test"], MSG) == {}, "refused")
        c.quit()
        uids = new_uids(before, v.inbox("alice"))
        check(len(uids) == 1, "unix: %r" % uids)
        trace = check_delivered(v, "alice", uids[0], MSG, "u@x", "alice@example.test")
        check(b"from unix.test (local)" in trace, "peer for a UNIX socket: %r" % trace)
        t_swaks(Env(bins, v, srv, 0))
        # A second server on the same live socket refuses to start.
        conf2 = v.path("second.conf")
        shutil.copy(srv.conf, conf2)
        set_config(conf2, {"imap_listen": "127.0.0.1:%d" % free_port()})
        p = subprocess.run([os.environ.get("SEALMAIL_LMTP_SERVER") or v.imapd, "-c",
                            conf2], capture_output=True, timeout=20)
        check(p.returncode != 0 and b"in use" in p.stdout + p.stderr,
              "second server on a live socket: %d %r" % (p.returncode, p.stderr))
    finally:
        if srv:
            srv.stop()
        v.cleanup()


def t_vault_full(env):
    bins = env.bins
    v = Vault(bins, "lmtp-full", users=("alice",))
    srv = None
    try:
        # `vault init` made the map at map_size; cap the growth right there, then
        # fill it with 4 MB messages.
        m = re.search(r"map_size:\s*(\d+)", v.vault("stats").stdout.decode())
        check(m is not None, "no map_size in stats")
        cap = int(m.group(1))
        srv = Server(v, map_max=cap, max_message_size=8 << 20)
        acked = []
        full = None
        c = Conn(srv)
        c.expect("LHLO full.test", 250)
        for i in range(cap // (4 << 20) + 4):
            msg = b"Subject: fill %d\r\n\r\n" % i + os.urandom(2 << 20).hex().encode() + b"\r\n"
            c.expect("MAIL FROM:<f@x>", 250)
            c.expect("RCPT TO:<alice>", 250)
            c.expect("DATA", 354)
            c.send(stuff(msg))
            r = c.reply()
            if r[0] == 250:
                acked.append(msg)
                continue
            full = r
            break
        c.expect("QUIT", 221)
        check(full is not None, "the vault never filled up (%d acked)" % len(acked))
        check(full[0] == 452 and " 4.3.1 " in full[1], "full vault answered %r" % (full,))
        check(len(acked) >= 1, "nothing fit before the vault was full")
        inbox = v.inbox("alice")
        check(len(inbox) == len(acked), "acked %d, stored %d" % (len(acked), len(inbox)))
        for uid, msg in zip(sorted(inbox), acked):
            check_delivered(v, "alice", uid, msg)
    finally:
        if srv:
            srv.stop()
        v.cleanup()


def send_one(c, sender, rcpts, msg):
    """One transaction on an open Conn; the final replies (code, text) per recipient."""
    c.send(("MAIL FROM:<%s>\r\n" % sender + "".join("RCPT TO:<%s>\r\n" % r for r in rcpts)
            + "DATA\r\n").encode())
    codes = [c.reply() for _ in range(1 + len(rcpts) + 1)]
    check(all(x[0] == 250 for x in codes[:-1]) and codes[-1][0] == 354, "envelope %r" % codes)
    c.send(stuff(msg))
    return [c.reply() for _ in rcpts]


def inbox_over_imap(srv, user):
    """{uid: stored bytes} of the user's INBOX, read over IMAP (one login, so one
    Argon2id run, instead of one `vault cat` each). srv needs plaintext_loopback."""
    import imaplib
    c = imaplib.IMAP4("127.0.0.1", srv.imap_port)
    c.login(user, srv.v.login(PASS[user], srv.v.tokens[user]))
    typ, _ = c.select("INBOX", readonly=True)
    check(typ == "OK", "SELECT INBOX")
    typ, data = c.uid("FETCH", "1:*", "(BODY.PEEK[])")
    check(typ == "OK", "UID FETCH")
    out = {}
    for item in data:
        if isinstance(item, tuple):
            m = re.search(rb"UID (\d+)", item[0])
            check(m is not None, "no UID in %r" % item[0])
            out[int(m.group(1))] = item[1]
    c.logout()
    return out


def stored_by_marker(srv, user, before=()):
    """{first line: (uid, original message)} of the user's INBOX beyond `before`."""
    out = {}
    for uid, stored in sorted(inbox_over_imap(srv, user).items()):
        if uid in before:
            continue
        _, body = split_trace(stored)
        mark = body.split(b"\r\n")[0]
        check(mark not in out, "%r stored twice (uids %d, %d)" % (mark, out.get(mark, (0,))[0], uid))
        out[mark] = (uid, body)
    return out


def t_group_commit(env):
    # 10 clients at once, alternating alice and bob, two recipients now and then: the
    # committer must put several connections' deliveries into one transaction, every
    # 250 must be stored byte-exact, and each connection's messages to one user get
    # increasing UIDs in the order they were sent.
    v, srv = env.v, env.srv
    before = {u: v.inbox(u) for u in ("alice", "bob")}
    sent = {}           # marker -> (thread, seq, rcpt users, message)
    errors = []
    lock = threading.Lock()

    def client(t):
        try:
            c = Conn(srv)
            c.expect("LHLO group%d.test" % t, 250)
            for i in range(12):
                mark = b"X-Mark: g-%d-%d" % (t, i)
                msg = mark + b"\r\nSubject: group %d %d\r\n\r\n" % (t, i) + os.urandom(3000).hex().encode() + b"\r\n"
                users = ["alice"] if (t + i) % 2 else ["bob"]
                if i % 5 == 4:
                    users = ["alice", "bob"]
                res = send_one(c, "g%d@x" % t, users, msg)
                check(all(r[0] == 250 for r in res), "group delivery %r" % res)
                with lock:
                    sent[mark] = (t, i, users, msg)
            c.expect("QUIT", 221)
            c.close()
        except BaseException as e:      # reported below
            errors.append(e)

    ths = [threading.Thread(target=client, args=(t,)) for t in range(10)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    check(not errors, "client failed: %r" % errors[:1])
    for user in ("alice", "bob"):
        got = stored_by_marker(srv, user, before[user])
        want = {m: x for m, x in sent.items() if user in x[2]}
        check(set(got) == set(want), "%s: %d stored, %d acknowledged" % (user, len(got), len(want)))
        last = {}
        for mark, (t, i, _, msg) in sorted(want.items(), key=lambda kv: (kv[1][0], kv[1][1])):
            uid, body = got[mark]
            check(body == msg, "%s %r differs" % (user, mark))
            check(uid > last.get(t, 0), "%s: thread %d's messages out of order" % (user, t))
            last[t] = uid
    sizes = [int(n) for n in re.findall(r"(\d+) deliveries in one transaction", srv.log_text())]
    env.report["group sizes"] = (len(sizes), max(sizes) if sizes else 0)
    print("  %d commits for %d deliveries, largest group %d" %
          (len(sizes), sum(sizes), max(sizes) if sizes else 0), flush=True)
    check(sizes and max(sizes) >= 2, "no transaction ever held more than one delivery")


def t_size_exact(env):
    # RFC 1870: SIZE is the client's message. The trace fields we prepend (and the CR
    # we add to a bare LF) do not count, so a message of exactly SIZE bytes goes in.
    v = env.v
    limit = 4096
    srv = Server(v, max_message_size=limit, plaintext_loopback="yes")
    try:
        c = Conn(srv)
        t = c.expect("LHLO size.test", 250)
        check("SIZE %d" % limit in t, "SIZE not advertised: %r" % t)
        head = b"X-Mark: size-exact\r\nSubject: exactly SIZE\r\n\r\n"
        exact = head + b"e" * (limit - len(head) - 2) + b"\r\n"
        check(len(exact) == limit, "test message size")
        before = v.inbox("alice")
        c.expect("MAIL FROM:<s@x> SIZE=%d" % limit, 250)
        c.expect("RCPT TO:<alice>", 250)
        c.expect("DATA", 354)
        c.send(stuff(exact))
        r = c.reply()
        check(r[0] == 250, "a message of exactly SIZE was refused: %r" % (r,))
        # the same by BDAT, and with bare LFs (stored as CRLF: more bytes than sent)
        lf = b"X-Mark: size-lf\nSubject: LF\n\n" + b"l" * 40 + b"\n"
        lf = lf + b"m" * (limit - len(lf) - 1) + b"\n"
        c.expect("MAIL FROM:<s@x>", 250)
        c.expect("RCPT TO:<alice>", 250)
        c.send(b"BDAT %d LAST\r\n" % len(lf) + lf)
        r = c.reply()
        check(r[0] == 250, "bare-LF message of exactly SIZE by BDAT: %r" % (r,))
        # one byte more is refused
        over = head + b"o" * (limit - len(head) - 1) + b"\r\n"
        c.expect("MAIL FROM:<s@x> SIZE=%d" % len(over), 552)
        c.expect("MAIL FROM:<s@x>", 250)
        c.expect("RCPT TO:<alice>", 250)
        c.expect("DATA", 354)
        c.send(stuff(over))
        r = c.reply()
        check(r[0] == 552, "SIZE+1 accepted: %r" % (r,))
        c.expect("QUIT", 221)
        got = stored_by_marker(srv, "alice", before)
        check(set(got) == {b"X-Mark: size-exact", b"X-Mark: size-lf"}, "stored %r" % list(got))
        check(got[b"X-Mark: size-exact"][1] == exact, "exact message differs")
        check(got[b"X-Mark: size-lf"][1] == lf.replace(b"\n", b"\r\n"), "LF message differs")
    finally:
        srv.stop()


def t_check_config(env):
    # --check-config validates lmtp_listen like the listener would, without binding.
    srv = env.srv
    conf = srv.v.path("check.conf")
    good_sock = srv.v.path("check.sock")
    cases = [("127.0.0.1:%d" % free_port(), True), ("127.0.0.1:99999", False),
             ("127.0.0.1:http", False), ("nohostport", False),
             ("no.such.host.invalid:24", False),
             ("%s mode=0660" % good_sock, True), ("%s mode=9" % good_sock, False),
             ("%s owner=root" % good_sock, False), ("/no/such/dir/lmtp.sock", False),
             ("%s user=no-such-user-xyz" % good_sock, False),
             ("%s" % srv.v.conf, False)]        # a regular file in the way
    for spec, ok in cases:
        shutil.copy(srv.conf, conf)
        set_config(conf, {"lmtp_listen": spec})
        p = subprocess.run([srv.v.imapd, "-c", conf, "--check-config"], capture_output=True,
                           timeout=60)
        out = (p.stdout + p.stderr).decode(errors="replace")
        check((p.returncode == 0) == ok, "--check-config with lmtp_listen %r: exit %d %s" %
              (spec, p.returncode, out))
        if not ok:
            check("lmtp_listen" in out, "no lmtp_listen in the message: %r" % out)
    check(not os.path.exists(good_sock), "--check-config created the socket")


def t_crash_group_commit(env):
    # SIGKILL the committer (and connection processes) again and again while clients
    # deliver, then SIGKILL the whole server: every acknowledged message must be
    # stored byte-exact, nothing stored twice, nothing that was not sent, and
    # `vault verify` passes. The LMTP process restarts a killed committer.
    bins = env.bins
    v = Vault(bins, "lmtp-crash", users=("alice", "bob"))
    srv = None
    try:
        srv = Server(v)
        attempted, acked = {}, set()
        stop = threading.Event()
        lock = threading.Lock()
        kills = {"committer": 0, "conn": 0}

        def client(t):
            i = 0
            c = None
            while not stop.is_set():
                try:
                    if c is None:
                        c = Conn(srv, timeout=20)
                        if c.greeting[0] != 220:
                            raise EOFError
                        c.expect("LHLO crash.test", 250)
                    i += 1
                    mark = b"X-Mark: c-%d-%d" % (t, i)
                    msg = mark + b"\r\n\r\n" + os.urandom(1000 + (i * 7919) % 90000).hex().encode() + b"\r\n"
                    user = "alice" if (t + i) % 2 else "bob"
                    with lock:
                        attempted[mark] = (user, msg)
                    res = send_one(c, "c@x", [user], msg)
                    if res[0][0] == 250:
                        with lock:
                            acked.add(mark)
                except (OSError, EOFError, AssertionError):
                    if c is not None:
                        c.close()
                    c = None
                    time.sleep(0.05)
            if c is not None:
                c.close()

        ths = [threading.Thread(target=client, args=(t,)) for t in range(6)]
        for th in ths:
            th.start()
        import random
        rnd = random.Random(8)
        deadline = time.time() + 15
        while time.time() < deadline:
            time.sleep(rnd.uniform(0.05, 0.5))
            if rnd.random() < 0.75:
                pid = srv.committer_pid()
                key = "committer"
            else:
                pids = srv.conn_pids()
                pid = rnd.choice(pids) if pids else None
                key = "conn"
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                    kills[key] += 1
                except ProcessLookupError:
                    pass
        # the whole server at once, mid-load
        tree = [srv.p.pid] + children(srv.p.pid)
        for p in list(tree):
            tree += children(p)
        for p in tree:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        stop.set()
        for th in ths:
            th.join()
        srv.p.wait()
        srv.logf.close()
        srv.p = None
        srv = None
        print("  %d attempted, %d acknowledged; %d committer and %d connection kills" %
              (len(attempted), len(acked), kills["committer"], kills["conn"]), flush=True)
        check(kills["committer"] >= 10, "too few committer kills")
        check(len(acked) >= 20, "too few deliveries acknowledged (%d)" % len(acked))
        p = v.vault("verify")
        check(p.returncode == 0, "verify after kills: %s" % p.stderr.decode(errors="replace"))
        srv = Server(v, plaintext_loopback="yes")
        for user in ("alice", "bob"):
            got = stored_by_marker(srv, user)
            for mark, (uid, body) in got.items():
                check(mark in attempted and attempted[mark][0] == user,
                      "%s uid %d was never sent to %s" % (mark, uid, user))
                check(body == attempted[mark][1], "%s uid %d is not byte-exact" % (mark, uid))
            lost = [m for m in acked if attempted[m][0] == user and m not in got]
            check(not lost, "%d acknowledged messages lost for %s, e.g. %r" %
                  (len(lost), user, lost[:2]))
        # and the store still takes mail
        c = srv.lmtp_client()
        check(c.sendmail("a@x", ["alice"], MSG) == {}, "delivery after the crashes")
        c.quit()
    finally:
        if srv:
            srv.stop()
        v.cleanup()


def main():
    if len(sys.argv) < 4:
        print("usage: test_lmtp.py IMAPD VAULT KEYMGR [NAME...]", file=sys.stderr)
        sys.exit(2)
    bins = [os.path.abspath(a) for a in sys.argv[1:4]]
    filters = sys.argv[4:]
    max_size = 60 * 1000 * 1000
    runner = Runner("lmtp")
    v = Vault(bins)
    srv = None
    try:
        srv = Server(v, max_message_size=max_size, plaintext_loopback="yes")
        env = Env(bins, v, srv, max_size)
        tests = [t_greeting_and_lhlo, t_smtplib_single, t_recipients_one_unknown, t_address_forms,
                 t_pipelining, t_dot_stuffing, t_bdat, t_bare_lf, t_errors, t_disconnect_mid_data,
                 t_over_size, t_big_message, t_swaks, t_unix_socket, t_vault_full,
                 t_group_commit, t_size_exact, t_check_config, t_crash_group_commit]
        for t in tests:
            name = t.__name__[2:]
            if filters and not any(f in name for f in filters):
                continue
            runner.run(name, t, env)
        rc = srv.stop()
        srv = None
        if not filters:
            runner.run("server_exit_status", lambda: check(rc == 0, "exit status %r" % rc))
    finally:
        if srv is not None:
            try:
                srv.stop()
            except AssertionError as e:
                print("FAIL server log: %s" % e)
        v.cleanup()
    runner.finish()


if __name__ == "__main__":
    main()
