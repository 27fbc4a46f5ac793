#!/usr/bin/env python3
"""Integration tests for sealmail-imapd: listeners, TLS policy, the process model, the
pre-login protocol and login (passphrase + OTP, unlock window), isolation between
users' session processes, privilege drop, SIGHUP certificate reload, limits.

Real programs only: a temporary vault made with `sealmail-vault init`, users made with
`sealmail-keymgr user add --soft-token`, mail delivered with `sealmail-vault deliver`,
the real server on 127.0.0.1 with free ports, Python's imaplib/ssl as the client.

Usage: test_imapd.py IMAPD VAULT KEYMGR [TEST-NAME-SUBSTRING...]
Prints "N passed, N failed" (and skipped) and exits non-zero on any failure.
Tests that read other processes' memory or need the privilege drop run only as root.
"""
import base64
import imaplib
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sealmail_cli import children  # noqa: E402

RUN_USER = "sealmail"
IS_ROOT = os.geteuid() == 0
PASS = {"alice": "alice has a long passphrase 1", "bob": "bob keeps another passphrase 2"}
MARKER = "SEALMAIL-MARKER-7f3a9c2e-alice-only"
MBOX_MARKER = "Projects-MBOXMARKER-51d0e8b4"


class Skip(Exception):
    pass


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def set_config(path, settings):
    """Sets key = value lines, uncommenting the documented defaults."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for key, value in settings.items():
        pat = re.compile(r"^#?\s*%s\s*=" % re.escape(key))
        for i, line in enumerate(lines):
            if pat.match(line):
                lines[i] = "%s = %s" % (key, value)
                break
        else:
            lines.append("%s = %s" % (key, value))
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def client_ctx(minv=None, maxv=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if minv is not None:
        ctx.minimum_version = minv
    if maxv is not None:
        ctx.maximum_version = maxv
    return ctx


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def status_ids(pid):
    ids = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("Uid:", "Gid:")):
                ids[line[:3]] = [int(x) for x in line.split()[1:]]
    return ids


def memory_contains(pid, needles):
    """Which of needles occur in any readable mapping of a process (root only).
    Reads in chunks; skips mappings over 1 GiB (sanitizer shadow regions)."""
    found = set()
    keep = max(len(n) for n in needles)
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if "r" not in parts[1] or hi - lo > (1 << 30) or \
                    (len(parts) > 5 and parts[5] in ("[vvar]", "[vsyscall]")):
                continue
            tail = b""
            pos = lo
            while pos < hi:
                n = min(16 << 20, hi - pos)
                try:
                    mem.seek(pos)
                    data = tail + mem.read(n)
                except (OSError, ValueError, OverflowError):
                    break
                for x in needles:
                    if x in data:
                        found.add(x)
                tail = data[-keep:]
                pos += n
    return found


class Vault:
    """A temporary vault with users alice and bob."""

    def __init__(self, bins):
        self.imapd, self.vault_bin, self.keymgr = bins
        self.tmp = tempfile.mkdtemp(prefix="sealmail-imapd-test-")
        os.chmod(self.tmp, 0o755)
        self.dir = os.path.join(self.tmp, "vault")
        self.run([self.vault_bin, "init", self.dir])
        self.conf = os.path.join(self.dir, "sealmail.conf")
        set_config(self.conf, {"argon2_memory": "19456", "argon2_passes": "2"})
        self.tokens = {}
        for user in ("alice", "bob"):
            self.add_user(user)
        self.deliver("alice", "Subject: for alice\r\nFrom: a@example.org\r\n\r\n%s\r\n" % MARKER)
        self.deliver("alice", "Subject: second\r\nFrom: a@example.org\r\n\r\nhello\r\n")
        self.deliver("bob", "Subject: for bob\r\nFrom: b@example.org\r\n\r\nbob's mail\r\n")
        if IS_ROOT:
            ensure_run_user()
            subprocess.run(["chown", "-R", RUN_USER + ":", self.tmp], check=True)

    def run(self, args, input=None, pass_fds=()):
        p = subprocess.run(args, input=input, pass_fds=pass_fds, capture_output=True,
                           timeout=120)
        if p.returncode != 0:
            raise AssertionError("%s failed (%d): %s" % (" ".join(args), p.returncode,
                                                       p.stderr.decode(errors="replace")))
        return p.stdout.decode(errors="replace")

    def add_user(self, user):
        tok = os.path.join(self.tmp, user + ".token")
        r, w = os.pipe()
        os.write(w, (PASS[user] + "\n").encode())
        os.close(w)
        try:
            self.run([self.keymgr, "-c", self.conf, "user", "add", user,
                      "--passphrase-fd", str(r), "--soft-token", tok], pass_fds=(r,))
        finally:
            os.close(r)
        self.tokens[user] = tok

    def deliver(self, user, msg):
        self.run([self.vault_bin, "-c", self.conf, "deliver", user], input=msg.encode())

    def otp(self, user):
        out = self.run([self.keymgr, "token", "otp", self.tokens[user]]).strip()
        check(len(out) == 44, "token otp printed %r" % out)
        return out

    def password(self, user):
        return PASS[user] + self.otp(user)

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def ensure_run_user():
    try:
        pwd.getpwnam(RUN_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", RUN_USER], check=True)


class Server:
    def __init__(self, vault, **settings):
        for attempt in range(3):    # free ports are racy: retry on a bind failure
            try:
                return self._start(vault, **settings)
            except AssertionError as e:
                if "in use" not in str(e) or attempt == 2:
                    raise

    def _start(self, vault, _env=None, **settings):
        self.v = vault
        self.imap_port, self.imaps_port = free_port(), free_port()
        self.conf = os.path.join(vault.tmp, "imapd-%d.conf" % self.imap_port)
        shutil.copy(vault.conf, self.conf)
        s = {"imap_listen": "127.0.0.1:%d" % self.imap_port,
             "imaps_listen": "127.0.0.1:%d" % self.imaps_port,
             "lmtp_listen": "", "data_dir": vault.dir, "log_level": "debug"}
        # The certificate and key that `vault init` made (paths as it wrote them).
        with open(vault.conf) as f:
            for line in f:
                m = re.match(r"^\s*(tls_cert|tls_key)\s*=\s*(\S+)", line)
                if m:
                    path = m.group(2)
                    s[m.group(1)] = path if os.path.isabs(path) else \
                        os.path.join(vault.dir, path)
        check("tls_cert" in s and "tls_key" in s, "vault init wrote no tls_cert/tls_key")
        if IS_ROOT:
            s["run_user"] = RUN_USER
        s.update({k: str(v) for k, v in settings.items() if k != "_env"})
        set_config(self.conf, s)
        if IS_ROOT:     # SIGHUP re-reads it after the privilege drop
            subprocess.run(["chown", RUN_USER + ":", self.conf], check=True)
        self.cert = s["tls_cert"]
        self.key = s["tls_key"]
        self.log = os.path.join(vault.tmp, "imapd-%d.log" % self.imap_port)
        self.logf = open(self.log, "wb")
        env = dict(os.environ)
        env.update(_env or {})
        self.p = subprocess.Popen([vault.imapd, "-c", self.conf], stdout=self.logf,
                                  stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 15
        while time.time() < deadline:
            check(self.p.poll() is None, "server exited: " + self.log_text())
            try:
                socket.create_connection(("127.0.0.1", self.imaps_port), 0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise AssertionError("server did not start: " + self.log_text())

    def log_text(self):
        if not self.logf.closed:
            self.logf.flush()
        with open(self.log, "rb") as f:
            return f.read().decode(errors="replace")

    def session_pids(self, user):
        pids = [int(m) for m in re.findall(r"session for user %s: pid (\d+)" % user,
                                           self.log_text())]
        return [p for p in pids if comm(p) == "imapd-session" and
                p in children(self.p.pid)]

    def procs(self, name):
        return [p for p in children(self.p.pid) if comm(p) == name]

    def imaps(self, user=None, password=None):
        c = imaplib.IMAP4_SSL("127.0.0.1", self.imaps_port, ssl_context=client_ctx())
        if user:
            c.login(user, password if password is not None else self.v.password(user))
        return c

    def plain(self):
        return imaplib.IMAP4("127.0.0.1", self.imap_port)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.logf.close()
        return self.p.returncode


class Raw:
    """A line-level IMAP client over TLS or plain TCP."""

    def __init__(self, port, tls=True):
        s = socket.create_connection(("127.0.0.1", port), 10)
        self.s = client_ctx().wrap_socket(s) if tls else s
        self.buf = b""
        self.greeting = self.line()

    def line(self, timeout=10):
        self.s.settimeout(timeout)
        while b"\r\n" not in self.buf:
            d = self.s.recv(4096)
            if not d:
                raise EOFError("connection closed; had %r" % self.buf)
            self.buf += d
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln.decode(errors="replace")

    def send(self, data):
        self.s.sendall(data if isinstance(data, bytes) else data.encode())

    def cmd(self, tag, text):
        self.send("%s %s\r\n" % (tag, text))
        return self.until(tag)

    def until(self, tag):
        lines = []
        while True:
            ln = self.line()
            lines.append(ln)
            if ln.startswith(tag + " "):
                return lines

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


# ---- tests -----------------------------------------------------------------------

def t_implicit_tls_login(srv):
    c = srv.imaps("alice")
    typ, data = c.select("INBOX")
    check(typ == "OK" and int(data[0]) >= 2, "SELECT INBOX: %r %r" % (typ, data))
    typ, data = c.fetch("1", "(BODY[])")
    check(typ == "OK" and MARKER.encode() in data[0][1], "FETCH body: %r" % (data,))
    c.logout()


def t_greeting_capability(srv):
    r = Raw(srv.imaps_port)
    check(r.greeting.startswith("* OK [CAPABILITY ") and "sealmail ready" in r.greeting,
          "greeting %r" % r.greeting)
    check("AUTH=PLAIN" in r.greeting and "STARTTLS" not in r.greeting and
          "LOGINDISABLED" not in r.greeting, "TLS greeting caps %r" % r.greeting)
    r.close()
    p = Raw(srv.imap_port, tls=False)
    check("STARTTLS" in p.greeting, "plain greeting lacks STARTTLS: %r" % p.greeting)
    p.close()


def t_starttls(srv):
    c = srv.plain()
    check("STARTTLS" in c.capabilities, "caps %r" % (c.capabilities,))
    c.starttls(ssl_context=client_ctx())
    c.login("alice", srv.v.password("alice"))
    typ, _ = c.select("INBOX")
    check(typ == "OK", "SELECT after STARTTLS")
    c.logout()


def t_starttls_injection_discarded(srv):
    """Bytes pipelined after STARTTLS in clear text must not be executed under TLS."""
    r = Raw(srv.imap_port, tls=False)
    r.send("s1 STARTTLS\r\nx1 CAPABILITY\r\n")
    ln = r.line()
    check(ln.startswith("s1 OK"), "STARTTLS answer %r" % ln)
    r.s = client_ctx().wrap_socket(r.s)
    r.buf = b""
    out = r.cmd("n1", "NOOP")
    check(not any(x.startswith("x1") for x in out), "injected command ran: %r" % out)
    check(out[-1].startswith("n1 OK"), "NOOP after STARTTLS %r" % out)
    r.close()


def t_tls_versions(srv):
    for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        c = imaplib.IMAP4_SSL("127.0.0.1", srv.imaps_port, ssl_context=client_ctx(v, v))
        check(c.sock.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                                   ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[v],
              "negotiated %s" % c.sock.version())
        cipher = c.sock.cipher()[0]
        check("GCM" in cipher or "CHACHA20" in cipher, "non-AEAD cipher %s" % cipher)
        c.logout()
    # TLS 1.2 without forward secrecy (RSA key exchange) or without AEAD (CBC): refused
    for suite in ("AES256-GCM-SHA384", "ECDHE-RSA-AES256-SHA384:ECDHE-ECDSA-AES256-SHA384"):
        ctx = client_ctx(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2)
        ctx.set_ciphers(suite)
        try:
            c = imaplib.IMAP4_SSL("127.0.0.1", srv.imaps_port, ssl_context=ctx)
            c.logout()
            raise AssertionError("TLS 1.2 suite %s was accepted" % suite)
        except (ssl.SSLError, ConnectionError, OSError, imaplib.IMAP4.abort) as e:
            if isinstance(e, AssertionError):
                raise
    ctx = client_ctx(ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1)
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    try:
        c = imaplib.IMAP4_SSL("127.0.0.1", srv.imaps_port, ssl_context=ctx)
        c.logout()
        raise AssertionError("TLS 1.1 was accepted")
    except (ssl.SSLError, ConnectionError, OSError, imaplib.IMAP4.abort) as e:
        if isinstance(e, AssertionError):
            raise


def t_authenticate_plain(srv):
    # SASL-IR (RFC 4959)
    r = Raw(srv.imaps_port)
    ir = base64.b64encode(b"\0alice\0" + srv.v.password("alice").encode()).decode()
    out = r.cmd("a1", "AUTHENTICATE PLAIN " + ir)
    check(out[-1].startswith("a1 OK"), "SASL-IR: %r" % out)
    out = r.cmd("a2", "SELECT INBOX")
    check(out[-1].startswith("a2 OK"), "SELECT after AUTHENTICATE: %r" % out)
    r.close()
    # without initial response, and cancel with "*"
    r = Raw(srv.imaps_port)
    r.send("b1 AUTHENTICATE PLAIN\r\n")
    check(r.line().startswith("+"), "no continuation")
    r.send("*\r\n")
    ln = r.until("b1")[-1]
    check(ln.startswith("b1 BAD"), "cancel: %r" % ln)
    r.send("b2 AUTHENTICATE PLAIN\r\n")
    check(r.line().startswith("+"), "no continuation")
    r.send(base64.b64encode(b"alice\0alice\0" + srv.v.password("alice").encode()) + b"\r\n")
    out = r.until("b2")
    check(out[-1].startswith("b2 OK"), "AUTHENTICATE with continuation: %r" % out)
    r.close()
    # imaplib's own AUTHENTICATE
    c = srv.imaps()
    pw = srv.v.password("alice")
    c.authenticate("PLAIN", lambda _: b"\0alice\0" + pw.encode())
    c.logout()


def t_wrong_passphrase_delay(srv):
    c = srv.imaps("alice")          # a success resets this address's failure count
    c.logout()
    r = Raw(srv.imaps_port)
    times = []
    for i in range(2):
        t0 = time.time()
        out = r.cmd("w%d" % i, 'LOGIN alice "wrong passphrase here%s"' % srv.v.otp("alice"))
        times.append(time.time() - t0)
        check(out[-1].startswith("w%d NO [AUTHENTICATIONFAILED]" % i), "wrong: %r" % out)
    # delays 0.5 s, 1 s, 2 s (plus the Argon2id work, which varies with load)
    check(times[0] >= 0.45, "first failure answered after %.2fs" % times[0])
    check(times[1] >= 0.95, "second failure answered after %.2fs" % times[1])
    # the master counts per address: a new connection continues the series (2 s)
    r2 = Raw(srv.imaps_port)
    t0 = time.time()
    out = r2.cmd("x", 'LOGIN alice "wrong passphrase again"')
    dt = time.time() - t0
    check(out[-1].startswith("x NO [AUTHENTICATIONFAILED]"), "wrong: %r" % out)
    check(dt >= 1.9, "third failure from this address answered after %.2fs" % dt)
    # the schedule the server applied (timings alone are noisy on a loaded machine)
    delays = [int(x) for x in re.findall(r"wrong passphrase or token \(failure \d+ from "
                                         r"this address, answered after (\d+) ms", srv.log_text())]
    check(delays[-3:] == [500, 1000, 2000], "delay schedule %r" % delays)
    r2.close()
    out = r.cmd("ok", 'LOGIN alice "%s"' % srv.v.password("alice"))
    check(out[-1].startswith("ok OK"), "correct login after failures: %r" % out)
    r.close()
    check("wrong passphrase or token" in srv.log_text(), "failure not logged")


def t_unknown_user_and_replay(srv):
    c = srv.imaps("alice")
    c.logout()
    otp = srv.v.otp("alice")
    c = srv.imaps("alice", PASS["alice"] + otp)
    c.logout()
    c = srv.imaps()
    try:
        c.login("alice", PASS["alice"] + otp)
        raise AssertionError("replayed OTP accepted")
    except imaplib.IMAP4.error as e:
        check("AUTHENTICATIONFAILED" in str(e), "replay answer %s" % e)
    try:
        c.login("nosuchuser", "whatever passphrase" + srv.v.otp("alice"))
        raise AssertionError("unknown user accepted")
    except imaplib.IMAP4.error:
        pass
    c.login("alice", srv.v.password("alice"))    # still usable; resets the count
    c.logout()
    log = srv.log_text()
    check("replayed OTP" in log, "replay not logged distinctly")
    check("unknown user" in log, "unknown user not logged distinctly")
    check(PASS["alice"] not in log and otp not in log, "secret in the log")


def t_window_login(srv):
    c = srv.imaps("alice")               # full login opens the window
    c2 = srv.imaps("alice", PASS["alice"])
    typ, _ = c2.select("INBOX")
    check(typ == "OK", "passphrase-only session works")
    c2.logout()
    c.logout()
    c3 = srv.imaps()
    try:
        c3.login("alice", "not the passphrase at all")
        raise AssertionError("wrong passphrase-only login accepted")
    except imaplib.IMAP4.error:
        pass
    c3.logout()
    c = srv.imaps("alice")
    c.logout()


def t_garbage_before_login(srv):
    r = Raw(srv.imap_port, tls=False)
    r.send(b"\x01\x02\x03 garbage (((\r\n")
    ln = r.line()
    check(" BAD " in ln or ln.startswith("* BAD"), "garbage answer %r" % ln)
    out = r.cmd("g1", "SELECT INBOX")
    check(out[-1].startswith("g1 NO") or out[-1].startswith("g1 BAD"), "SELECT: %r" % out)
    r.send("%s NOOP\r\n" % ("t" * 300))
    ln = r.line()
    check(ln.startswith("* BAD"), "long tag: %r" % ln)
    out = r.cmd("g2", "CAPABILITY")
    check(out[-1].startswith("g2 OK"), "usable after garbage: %r" % out)
    out = r.cmd("g3", 'ID ("name" "test")')
    check(out[-1].startswith("g3 OK") and out[0].startswith("* ID"), "ID: %r" % out)
    out = r.cmd("g4", "LOGOUT")
    check(out[0].startswith("* BYE"), "LOGOUT: %r" % out)
    r.close()


def t_plaintext_loopback_allowed(srv):
    c = srv.plain()
    check("LOGINDISABLED" not in c.capabilities, "caps %r" % (c.capabilities,))
    c.login("alice", srv.v.password("alice"))
    c.logout()


def t_one_session_per_user(srv):
    a1 = srv.imaps("alice")
    a2 = srv.imaps("alice", PASS["alice"])
    a3 = srv.imaps("alice")
    pids = srv.session_pids("alice")
    check(len(pids) == 1, "alice's session processes: %r" % pids)
    b1 = srv.imaps("bob")
    bp = srv.session_pids("bob")
    check(len(bp) == 1 and bp[0] != pids[0], "bob's session: %r vs %r" % (bp, pids))
    check(len(srv.procs("imapd-session")) == 2, "session processes: %r" %
          srv.procs("imapd-session"))
    # both connections see each other's changes through the one process
    a1.select("INBOX")
    a2.select("INBOX")
    for c in (a1, a2, a3, b1):
        c.logout()


def t_isolation_memory(srv):
    if not IS_ROOT:
        raise Skip("reading /proc/PID/mem needs root")
    a = srv.imaps("alice")
    b = srv.imaps("bob")
    # A mailbox name is sealed on disk and lives decrypted in the session's state while
    # it is selected: a recognisable secret of alice's unlocked session.
    typ, _ = a.create(MBOX_MARKER)
    check(typ == "OK", "CREATE %s" % MBOX_MARKER)
    a.select(MBOX_MARKER)
    a.select("INBOX")
    typ, data = a.fetch("1", "(BODY[])")
    check(MARKER.encode() in data[0][1], "alice fetched her marker")
    a.list()
    a.select(MBOX_MARKER)
    b.select("INBOX")
    b.fetch("1:*", "(BODY[])")
    b.list()
    ap, bp = srv.session_pids("alice"), srv.session_pids("bob")
    check(len(ap) == 1 and len(bp) == 1, "sessions %r %r" % (ap, bp))
    needles = [MARKER.encode(), MBOX_MARKER.encode(), PASS["alice"].encode(),
               PASS["bob"].encode()]
    for _ in range(3):      # the engine's heap moves: refresh the state and rescan
        a.list()
        a.select(MBOX_MARKER)
        amem, bmem = memory_contains(ap[0], needles), memory_contains(bp[0], needles)
        if MBOX_MARKER.encode() in amem:
            break
    check(MBOX_MARKER.encode() in amem,
          "positive control: alice's mailbox name not in alice's session process")
    check(MBOX_MARKER.encode() not in bmem, "alice's mailbox name is in bob's process")
    check(MARKER.encode() not in bmem, "alice's mail is in bob's session process")
    for who, mem in (("alice", amem), ("bob", bmem)):
        check(PASS["alice"].encode() not in mem and PASS["bob"].encode() not in mem,
              "a passphrase is in %s's session process" % who)
    mmem = memory_contains(srv.p.pid, needles)
    check(not (mmem & {MARKER.encode(), MBOX_MARKER.encode()}), "user data in the master")
    print("     (alice's mail body %s in her own session's memory after FETCH)" %
          ("still" if MARKER.encode() in amem else "no longer"))
    a.logout()
    b.logout()


def t_binary_scratch_wiped(srv):
    """FETCH BINARY[] of a whole message rewrites it in ordinary heap memory (imap_mbuf,
    grown step by step while the base64 part is decoded): the decoded text must not
    stay in the session's freed heap once the response is out (imap-msg-buf.c wipes
    on growth and on release; the output queue is secure and wiped)."""
    if not IS_ROOT:
        raise Skip("reading /proc/PID/mem needs root")
    secret = b"BINWIPE-3c91d7e0-decoded-only"
    body = secret + b" " + b"x" * 200000
    enc = base64.encodebytes(body).replace(b"\n", b"\r\n")
    check(secret not in enc, "the marker is not in the raw message")
    msg = (b"Subject: binary wipe\r\nFrom: a@example.org\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=BB\r\n\r\n--BB\r\n"
           b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
           enc + b"--BB--\r\n")
    a = srv.imaps("alice")
    typ, _ = a.append("INBOX", None, None, msg)
    check(typ == "OK", "APPEND")
    a.select("INBOX")
    typ, data = a.uid("SEARCH", None, "SUBJECT", '"binary wipe"')
    uid = data[0].split()[-1].decode()
    typ, data = a.uid("FETCH", uid, "(BINARY[])")
    check(typ == "OK" and secret in data[0][1], "BINARY[] decodes: %r" % (data[0][:1],))
    a.noop()
    pids = srv.session_pids("alice")
    check(len(pids) == 1, "one session: %r" % pids)
    found = memory_contains(pids[0], [secret])
    check(secret not in found, "decoded BINARY[] text left in alice's session memory")
    a.logout()


def t_relay_no_passphrase(srv):
    """After a LOGIN over TLS, the login process (now the relay) keeps no copy of the
    passphrase: not in its parser or input buffer (wiped), and not in the heap block
    OpenSSL decrypted the record into (SSL_MODE_RELEASE_BUFFERS frees it after each
    read: SSL_OP_CLEANSE_PLAINTEXT wipes it first)."""
    if not IS_ROOT:
        raise Skip("reading /proc/PID/mem needs root")
    pw = PASS["alice"].encode()
    b64 = base64.b64encode(b"\0alice\0" + pw)
    for how in ("LOGIN", "AUTHENTICATE"):
        before = set(srv.procs("imapd-login"))
        if how == "LOGIN":
            a = srv.imaps("alice")
        else:       # PLAIN without an initial response: the line is read apart
            a = srv.imaps()
            a.authenticate("PLAIN", lambda _: b"\0alice\0" + pw)
        a.noop()
        relays = [p for p in srv.procs("imapd-login") if p not in before]
        check(len(relays) == 1, "alice's relay process: %r" % relays)
        found = memory_contains(relays[0], [pw, b64, b"alice"])
        check(b"alice" in found, "positive control: the user name is in the relay")
        check(pw not in found and b64 not in found,
              "alice's passphrase is in her relay process's memory after %s" % how)
        a.logout()


def status_fields(pid, names):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in names:
                out[k] = v.split()
    return out


def t_privileges(srv):
    """Every process of a running server, LMTP included: uid/gid (real, effective,
    saved, fs) of run_user, one supplementary group, not dumpable; the pre-login
    process and the relay (a login process after LOGIN) run under seccomp filter
    mode (Seccomp: 2) with NoNewPrivs 1; the master, sessions and LMTP do not."""
    if not IS_ROOT:
        raise Skip("privilege drop needs root")
    uid = pwd.getpwnam(RUN_USER).pw_uid
    gid = pwd.getpwnam(RUN_USER).pw_gid
    # A server of its own with LMTP on, so that imapd-lmtp and imapd-lmtp-conn run.
    lsrv = Server(srv.v, lmtp_listen="127.0.0.1:%d" % free_port())
    try:
        a = lsrv.imaps("alice")
        relays = lsrv.procs("imapd-login")     # alice's login process, now relaying
        r = Raw(lsrv.imaps_port)       # a login process that has not logged in
        m = re.search(r"lmtp_listen = 127.0.0.1:(\d+)", open(lsrv.conf).read())
        lm = socket.create_connection(("127.0.0.1", int(m.group(1))), 5)
        lm.recv(512)                   # the 220 greeting: its process is up
        time.sleep(0.2)
        logins = [p for p in lsrv.procs("imapd-login") if p not in relays]
        sessions = lsrv.procs("imapd-session")
        lmtp = lsrv.procs("imapd-lmtp")
        lmtp_conn = [p for q in lmtp for p in children(q) if comm(p) == "imapd-lmtp-conn"]
        check(len(relays) == 1 and logins and sessions and lmtp and lmtp_conn,
              "processes: relay %r login %r session %r lmtp %r lmtp-conn %r" %
              (relays, logins, sessions, lmtp, lmtp_conn))
        roles = [("master", lsrv.p.pid)] + [("login", p) for p in logins] + \
            [("relay", p) for p in relays] + [("session", p) for p in sessions] + \
            [("lmtp", p) for p in lmtp] + [("lmtp-conn", p) for p in lmtp_conn]
        for role, pid in roles:
            st = status_fields(pid, ("Uid", "Gid", "Groups", "Seccomp", "NoNewPrivs"))
            ids = status_ids(pid)
            check(ids["Uid"] == [uid] * 4 and ids["Gid"] == [gid] * 4 and
                  st["Groups"] == [str(gid)], "%s pid %d ids %r groups %r" %
                  (role, pid, ids, st["Groups"]))
            # A non-dumpable process's /proc/PID files (not the directory) belong to
            # root (proc(5), task_dump_owner).
            check(os.stat("/proc/%d/status" % pid).st_uid == 0,
                  "%s pid %d is dumpable" % (role, pid))
            filtered = role in ("login", "relay")
            check(st["Seccomp"] == (["2"] if filtered else ["0"]) and
                  st["NoNewPrivs"] == (["1"] if filtered else ["0"]),
                  "%s pid %d: Seccomp %r NoNewPrivs %r" % (role, pid, st["Seccomp"],
                                                          st["NoNewPrivs"]))
            print("     %-9s pid %-7d uid %d gid %d not dumpable, Seccomp %s NoNewPrivs %s"
                  % (role, pid, uid, gid, st["Seccomp"][0], st["NoNewPrivs"][0]))
        check("dropped root" in lsrv.log_text(), "no privilege drop logged")
        typ, _ = a.select("INBOX")      # the relay still works under its filter
        check(typ == "OK", "SELECT through the filtered relay")
        lm.close()
        r.close()
        a.logout()
        check("seccomp filter" not in lsrv.log_text(), "a process was killed by its filter")
    finally:
        check(lsrv.stop() == 0, "server exit status")


def t_seccomp_off(srv):
    """seccomp = no: the login process runs without a filter (for debugging)."""
    if not IS_ROOT:
        raise Skip("needs root (run_user)")
    lsrv = Server(srv.v, seccomp="no")
    try:
        a = lsrv.imaps("alice")
        r = Raw(lsrv.imaps_port)
        time.sleep(0.2)
        for pid in lsrv.procs("imapd-login"):
            st = status_fields(pid, ("Seccomp",))
            check(st["Seccomp"] == ["0"], "pid %d Seccomp %r" % (pid, st["Seccomp"]))
        r.close()
        a.logout()
    finally:
        check(lsrv.stop() == 0, "server exit status")


def t_sighup_reload(srv):
    a = srv.imaps("alice")
    a.select("INBOX")
    old = ssl.DER_cert_to_PEM_cert(a.sock.getpeercert(True))
    d = tempfile.mkdtemp(dir=srv.v.tmp)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                    "/CN=reloaded.test", "-keyout", os.path.join(d, "k.pem"), "-out",
                    os.path.join(d, "c.pem")], check=True, capture_output=True)
    shutil.copy(os.path.join(d, "c.pem"), srv.cert)
    shutil.copy(os.path.join(d, "k.pem"), srv.key)
    if IS_ROOT:
        subprocess.run(["chown", RUN_USER + ":", srv.cert, srv.key], check=True)
    srv.p.send_signal(signal.SIGHUP)
    deadline = time.time() + 5
    while "reloaded TLS certificate" not in srv.log_text() and time.time() < deadline:
        time.sleep(0.05)
    check("reloaded TLS certificate" in srv.log_text(), "no reload: " + srv.log_text()[-500:])
    c = srv.imaps()
    new = c.sock.getpeercert(True)
    with open(os.path.join(d, "c.pem")) as f:
        check(ssl.PEM_cert_to_DER_cert(f.read()) == new, "new connection has the old cert")
    check(ssl.PEM_cert_to_DER_cert(old) != new, "certificate did not change")
    c.logout()
    typ, _ = a.noop()
    check(typ == "OK", "existing session died on SIGHUP")
    a.logout()


def t_tcp_keepalive(srv):
    if not shutil.which("ss"):
        raise Skip("no ss(8)")
    r = Raw(srv.imaps_port)
    out = subprocess.run(["ss", "-tno", "state", "established", "( sport = :%d )" %
                          srv.imaps_port], capture_output=True, text=True).stdout
    check("keepalive" in out, "no keepalive timer on the server socket: %r" % out)
    r.close()


def t_check_config(srv):
    bad = os.path.join(srv.v.tmp, "broken.conf")
    shutil.copy(srv.conf, bad)
    with open(bad) as f:
        text = f.read().rstrip("\n")
    n = len(text.split("\n"))
    with open(bad, "w") as f:
        f.write(text + "\nno_such_setting = 1\nunlock_window = soon\n")
    p = subprocess.run([srv.v.imapd, "-c", bad, "--check-config"], capture_output=True)
    err = p.stderr.decode()
    check(p.returncode != 0, "--check-config accepted a broken file")
    check(":%d:" % (n + 1) in err and ":%d:" % (n + 2) in err,
          "errors do not name lines %d and %d: %r" % (n + 1, n + 2, err))
    p = subprocess.run([srv.v.imapd, "-c", srv.conf, "--check-config"], capture_output=True)
    check(p.returncode == 0, "--check-config on a good file: %r" % p.stderr)


def t_bind_failure(srv):
    conf = os.path.join(srv.v.tmp, "dup.conf")
    shutil.copy(srv.conf, conf)
    p = subprocess.run([srv.v.imapd, "-c", conf], capture_output=True, timeout=10)
    check(p.returncode != 0 and b"cannot bind" in p.stderr, "second server on the same "
          "ports: %d %r" % (p.returncode, p.stderr))


def t_pipelined_after_login(srv):
    r = Raw(srv.imaps_port)
    r.send('a LOGIN alice "%s"\r\nb SELECT INBOX\r\nc LOGOUT\r\n' % srv.v.password("alice"))
    check(r.until("a")[-1].startswith("a OK"), "LOGIN")
    check(r.until("b")[-1].startswith("b OK"), "pipelined SELECT not answered")
    check(r.until("c")[-1].startswith("c OK"), "pipelined LOGOUT not answered")
    r.close()
    # The same behind AUTHENTICATE PLAIN with SASL-IR, in one segment, with a
    # non-synchronizing literal (RFC 7888) among the pipelined commands: nothing
    # but the bytes already sent may drive the session.
    r = Raw(srv.imaps_port)
    ir = base64.b64encode(b"\0alice\0" + srv.v.password("alice").encode()).decode()
    r.send('a AUTHENTICATE PLAIN %s\r\nb LIST "" {5+}\r\nINBOX\r\n'
           'c STATUS INBOX (MESSAGES)\r\nd LOGOUT\r\n' % ir)
    check(r.until("a")[-1].startswith("a OK"), "AUTHENTICATE")
    out = r.until("b")
    check(out[-1].startswith("b OK") and any('"INBOX"' in x or " INBOX" in x
                                              for x in out[:-1]), "LIST: %r" % out)
    out = r.until("c")
    check(out[-1].startswith("c OK") and any("MESSAGES" in x for x in out), "STATUS %r" % out)
    check(r.until("d")[-1].startswith("d OK"), "pipelined LOGOUT not answered")
    r.close()


def t_unreadable_cert(srv):
    conf = os.path.join(srv.v.tmp, "nocert.conf")
    shutil.copy(srv.conf, conf)
    set_config(conf, {"tls_cert": os.path.join(srv.v.tmp, "missing-cert.pem"),
                      "imap_listen": "127.0.0.1:%d" % free_port(),
                      "imaps_listen": "127.0.0.1:%d" % free_port()})
    p = subprocess.run([srv.v.imapd, "-c", conf], capture_output=True, timeout=10)
    check(p.returncode != 0 and b"cannot read TLS certificate" in p.stderr,
          "missing certificate: %d %r" % (p.returncode, p.stderr))


# tests for a server with: unlock_window 3 s, plaintext_loopback no, prelogin 2 s,
# max_connections 4

def t_window_expires(srv):
    c = srv.imaps("alice")
    c.logout()
    c = srv.imaps("alice", PASS["alice"])    # inside the 3 s window
    c.logout()
    time.sleep(4)
    c = srv.imaps()
    try:
        c.login("alice", PASS["alice"])
        raise AssertionError("passphrase-only login accepted after the window")
    except imaplib.IMAP4.error:
        pass
    c.login("alice", srv.v.password("alice"))
    c.logout()


def t_session_exits_after_window(srv):
    c = srv.imaps("bob")
    pids = srv.session_pids("bob")
    c.logout()
    check(len(pids) == 1, "bob's session %r" % pids)
    deadline = time.time() + 8
    while comm(pids[0]) == "imapd-session" and time.time() < deadline:
        time.sleep(0.2)
    check(comm(pids[0]) != "imapd-session", "session still alive after its window")
    check("session ended, keys wiped" in srv.log_text(), "no wipe logged")


def t_logindisabled(srv):
    c = srv.plain()
    check("LOGINDISABLED" in c.capabilities, "caps %r" % (c.capabilities,))
    # RFC 9051 6.2.3 / 7.2.2: no plaintext SASL mechanism beside LOGINDISABLED (as
    # Dovecot: a mechanism is listed only on a secured transport or if not plaintext)
    check(not any(x.startswith("AUTH=") for x in c.capabilities),
          "AUTH= advertised with LOGINDISABLED: %r" % (c.capabilities,))
    try:
        c.login("alice", srv.v.password("alice"))
        raise AssertionError("plaintext LOGIN accepted")
    except imaplib.IMAP4.error as e:
        check("PRIVACYREQUIRED" in str(e), "answer %s" % e)
    r = Raw(srv.imap_port, tls=False)
    out = r.cmd("p1", "AUTHENTICATE PLAIN " +
                base64.b64encode(b"\0alice\0x").decode())
    check(out[-1].startswith("p1 NO [PRIVACYREQUIRED]"), "AUTHENTICATE: %r" % out)
    r.close()
    c.starttls(ssl_context=client_ctx())
    c.login("alice", srv.v.password("alice"))
    c.logout()


def t_prelogin_timeout(srv):
    r = Raw(srv.imaps_port)
    t0 = time.time()
    try:
        ln = r.line(timeout=6)
        check("BYE" in ln, "timeout line %r" % ln)
        r.line(timeout=6)
        raise AssertionError("connection still open")
    except EOFError:
        pass
    except ssl.SSLError:
        pass
    dt = time.time() - t0
    check(1.5 <= dt <= 5, "closed after %.1fs" % dt)


def t_prelogin_lifetime(srv):
    """NOOP every second does not keep an unauthenticated connection forever: at most
    10 pre-login timeouts (2 s here) in all."""
    r = Raw(srv.imap_port, tls=False)
    t0 = time.time()
    try:
        for i in range(40):
            out = r.cmd("n%d" % i, "NOOP")
            if out[-1].startswith("* BYE"):
                break
            time.sleep(1)
        raise AssertionError("still open after %.0fs" % (time.time() - t0))
    except (EOFError, OSError):
        pass
    dt = time.time() - t0
    check(18 <= dt <= 25, "closed after %.1fs" % dt)


def t_max_connections(srv):
    # Its own group with a long prelogin_timeout: the four held connections stay
    # open however slowly the fifth is accepted (with the 2 s timeout of the
    # pre-login group one of them could time out first and free its slot).
    conns = [Raw(srv.imap_port, tls=False) for _ in range(4)]
    r = socket.create_connection(("127.0.0.1", srv.imap_port), 5)
    r.settimeout(5)
    data = r.recv(200)
    check(data.startswith(b"* BYE Too many connections"), "5th connection got %r" % data)
    r.close()
    for c in conns:
        c.close()
    check("max_connections" in srv.log_text(), "refusal not logged")


# server with unlock_window = 0

def t_window_disabled(srv):
    c = srv.imaps("alice")
    c2 = srv.imaps()
    try:
        c2.login("alice", PASS["alice"])
        raise AssertionError("passphrase-only accepted with unlock_window = 0")
    except imaplib.IMAP4.error:
        pass
    c2.logout()
    c.logout()


def t_user_connection_limit(srv):
    deadline = time.time() + 5      # earlier tests' relays must be gone
    while srv.procs("imapd-login") and time.time() < deadline:
        time.sleep(0.1)
    a1, a2 = srv.imaps("alice"), srv.imaps("alice")
    c = srv.imaps()
    try:
        c.login("alice", srv.v.password("alice"))
        raise AssertionError("third connection accepted with max_user_connections = 2")
    except imaplib.IMAP4.error as e:
        check("LIMIT" in str(e), "answer %s" % e)
    b = srv.imaps("bob")            # the limit is per user
    b.logout()
    a1.logout()
    deadline = time.time() + 5
    while True:
        try:
            c.login("alice", srv.v.password("alice"))
            break
        except imaplib.IMAP4.error:
            check(time.time() < deadline, "slot not freed after a logout")
            time.sleep(0.2)
    c.logout()
    a2.logout()
    check("max_user_connections" in srv.log_text(), "limit not logged")


def t_user_source_connection_limit(srv):
    """max_user_source_connections 2 (max_user_connections 5): a third login of
    alice from 127.0.0.1 gets NO [LIMIT] and a log line."""
    deadline = time.time() + 5
    while srv.procs("imapd-login") and time.time() < deadline:
        time.sleep(0.1)
    a1, a2 = srv.imaps("alice"), srv.imaps("alice")
    c = srv.imaps()
    try:
        c.login("alice", PASS["alice"])
        raise AssertionError("third connection from one address accepted")
    except imaplib.IMAP4.error as e:
        check("LIMIT" in str(e), "answer %s" % e)
    c.shutdown()
    a1.logout()
    a2.logout()
    check("max_user_source_connections (2) reached" in srv.log_text(), "limit not logged")


# server with window_max_failures = 3

def t_window_failures_close(srv):
    """Inside the window the passphrase alone logs in; window_max_failures wrong
    passphrase-only logins close the window for the user (the right passphrase alone
    is then refused too, and the closing is logged); a full login reopens it."""
    c = srv.imaps("alice")                  # full login opens the window
    t0 = time.time()
    c2 = srv.imaps("alice", PASS["alice"])
    dt = time.time() - t0
    typ, _ = c2.select("INBOX")
    check(typ == "OK", "passphrase-only session works")
    c2.logout()
    print("     (passphrase-only login inside the window: %.3fs wall)" % dt)
    r = Raw(srv.imaps_port)
    for i in range(3):
        out = r.cmd("w%d" % i, 'LOGIN alice "not alice\'s passphrase %d"' % i)
        check(out[-1].startswith("w%d NO [AUTHENTICATIONFAILED]" % i), "wrong %d: %r" % (i, out))
    # the right passphrase alone is now refused: the window is closed
    out = r.cmd("p", 'LOGIN alice "%s"' % PASS["alice"])
    check(out[-1].startswith("p NO [AUTHENTICATIONFAILED]"), "closed window: %r" % out)
    r.close()
    log = srv.log_text()
    check("wrong passphrase (3 of 3 allowed" in log, "failures not counted in the log")
    check("unlock window closed after 3 wrong passphrase-only logins" in log,
          "closing not logged")
    check("has been closed after failed passphrase-only logins" in log,
          "refusal in the closed window not logged")
    check(PASS["alice"] not in log and "not alice's passphrase" not in log,
          "a passphrase reached the log")
    # the connection that was open before stays usable
    typ, _ = c.select("INBOX")
    check(typ == "OK", "open connection broken by the closing")
    # a full login (passphrase + OTP) reopens the window with a fresh failure count
    c3 = srv.imaps("alice")
    c4 = srv.imaps("alice", PASS["alice"])
    typ, _ = c4.select("INBOX")
    check(typ == "OK", "passphrase-only after the reopening full login")
    c4.logout()
    c3.logout()
    c.logout()
    # another user's window is untouched by alice's failures
    b = srv.imaps("bob")
    b2 = srv.imaps("bob", PASS["bob"])
    b2.logout()
    b.logout()


def t_session_exit_race(srv):
    """Logins arriving while the user's session is wiping its keys and exiting (the
    window is 1 s) must all succeed: the login process retries through the master,
    which starts a new session."""
    for i in range(12):
        c = srv.imaps("bob")
        c.logout()
        time.sleep(0.85 + 0.025 * i)
        c = srv.imaps("bob")
        typ, _ = c.select("INBOX")
        check(typ == "OK", "round %d" % i)
        c.logout()
    pids = srv.session_pids("bob")
    check(len(pids) <= 1, "several live sessions for bob: %r" % pids)


def t_session_exit_race_forced(srv):
    """The session pauses 4 s between deciding to exit and closing its control
    socket (test hook): a login in that gap is queued to the exiting session, which
    drops it unanswered; the login process asks again and the master, whose send now
    fails, starts a new session."""
    c = srv.imaps("bob")
    old = srv.session_pids("bob")
    c.logout()
    time.sleep(1.5)         # window (1 s) over: the session is in its exit pause
    # The race is only exercised if the old session is still there (in its 4 s exit
    # pause) when this login arrives.
    check(len(old) == 1 and comm(old[0]) == "imapd-session",
          "old session %r gone before the login: the race was not exercised" % old)
    t0 = time.time()
    c = srv.imaps("bob")
    typ, _ = c.select("INBOX")
    check(typ == "OK", "login during the session's exit")
    new = srv.session_pids("bob")
    check(len(new) == 1 and new != old, "sessions before %r after %r" % (old, new))
    c.logout()
    # The login must not land on the exiting session (checked above: a new one).
    # How the master learned of the exit depends on scheduling: its send to the
    # exiting session failed ("no longer accepts connections"), or it saw that
    # session's control socket close / reaped it first ("ended"). Either is correct;
    # this check only shows the master accounted for the old session.
    log = srv.log_text()
    old_pid = old[0] if old else -1
    check("no longer accepts connections" in log or
          "(pid %d) ended" % old_pid in log, "the master did not see the exit")
    print("     (login during the exit answered in %.2fs)" % (time.time() - t0))


GROUPS = [
    ({}, [t_greeting_capability, t_implicit_tls_login, t_starttls,
          t_starttls_injection_discarded, t_tls_versions, t_authenticate_plain,
          t_wrong_passphrase_delay, t_unknown_user_and_replay, t_window_login,
          t_garbage_before_login, t_plaintext_loopback_allowed, t_one_session_per_user,
          t_pipelined_after_login, t_tcp_keepalive, t_isolation_memory, t_binary_scratch_wiped,
          t_relay_no_passphrase, t_privileges, t_seccomp_off, t_sighup_reload,
          t_check_config, t_bind_failure, t_unreadable_cert]),
    ({"unlock_window": "3s", "plaintext_loopback": "no", "prelogin_timeout": "2s",
      "max_connections": "4"},
     [t_window_expires, t_session_exits_after_window, t_logindisabled,
      t_prelogin_timeout, t_prelogin_lifetime]),
    ({"prelogin_timeout": "120s", "max_connections": "4"}, [t_max_connections]),
    ({"unlock_window": "0", "max_user_connections": "2"},
     [t_window_disabled, t_user_connection_limit]),
    ({"max_user_connections": "5", "max_user_source_connections": "2"},
     [t_user_source_connection_limit]),
    ({"window_max_failures": "3"}, [t_window_failures_close]),
    ({"unlock_window": "1s"}, [t_session_exit_race]),
    ({"unlock_window": "1s", "_env": {"SEALMAIL_TEST_SESSION_EXIT_DELAY_MS": "4000"}},
     [t_session_exit_race_forced]),
]



def run_one(t, arg, width):
    """Runs t(arg), prints ok/skip/FAIL with its name padded to width; returns which."""
    t0 = time.time()
    try:
        t(arg)
        res = "ok"
        print("ok   %-*s %.2fs" % (width, t.__name__[2:], time.time() - t0))
    except Skip as e:
        res = "skip"
        print("skip %-*s %s" % (width, t.__name__[2:], e))
    except Exception:
        res = "FAIL"
        print("FAIL %s" % t.__name__[2:])
        traceback.print_exc()
    sys.stdout.flush()
    return res


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        return 2
    bins = [os.path.abspath(x) for x in sys.argv[1:4]]
    only = sys.argv[4:]
    passed = failed = skipped = 0
    v = Vault(bins)
    try:
        for settings, tests in GROUPS:
            tests = [t for t in tests if not only or any(o in t.__name__ for o in only)]
            if not tests:
                continue
            srv = Server(v, **settings)     # "_env": extra environment
            try:
                for t in tests:
                    res = run_one(t, srv, 34)
                    passed += res == "ok"
                    skipped += res == "skip"
                    failed += res == "FAIL"
            finally:
                rc = srv.stop()
                if rc != 0:
                    failed += 1
                    print("FAIL server exit status %r" % rc)
                    print(srv.log_text()[-3000:])
                if failed and os.environ.get("IMAPD_TEST_LOG"):
                    print(srv.log_text())
    finally:
        v.cleanup()
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
