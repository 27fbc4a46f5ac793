"""A private sealmail instance for tests and benchmarks (Python 3 stdlib only).

The same interface as peers/dovecot.py:

    with Sealmail(users=["alice"], build="build") as sm:
        sm.deliver("alice", b"Subject: hi\\r\\n\\r\\nbody\\r\\n")   # sealmail-vault deliver
        c = sm.connect("alice")            # imapwire.Conn, logged in (IMAPS)
        m = sm.imaplib("alice")            # imaplib.IMAP4_SSL, logged in
        sm.password("alice")               # passphrase + a fresh OTP

Setup: `sealmail-vault init DIR` into a temp dir, the config edited for tests (free
loopback ports, argon2_memory = 19456 KiB and argon2_passes = 2 - OWASP's minimum, so
logins are fast - an audit log file, the temp dir as data dir), users enrolled with
`sealmail-keymgr user add NAME --passphrase-fd 3 --soft-token FILE`, OTPs from
`sealmail-keymgr token otp FILE`.

Modes:
  "imapd"  - sealmail-imapd -c CONF: IMAP+STARTTLS on imap_port, IMAPS on imaps_port;
             LOGIN with passphrase + OTP.
  "engine" - tests/test-engine-server CONF USER PORTFILE per user (plain TCP, PREAUTH,
             the passphrase + OTP on its stdin): the IMAP engine without the login
             side, for use before sealmail-imapd exists.
  "auto"   - imapd when built, else engine.

Programs come from SEALMAIL_BUILD (the meson build dir, default ../../build from here)
or the build argument; each can be overridden by SEALMAIL_VAULT, SEALMAIL_KEYMGR,
SEALMAIL_IMAPD, SEALMAIL_ENGINE_SERVER.
"""

import imaplib
import os
import pwd
import re
import shutil
import signal
import smtplib
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import imapwire  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def default_build():
    return os.environ.get("SEALMAIL_BUILD", os.path.join(HERE, "..", "..", "build"))


def programs(build=None):
    b = os.path.abspath(build or default_build())
    return {
        "vault": os.environ.get("SEALMAIL_VAULT", os.path.join(b, "vault", "sealmail-vault")),
        "keymgr": os.environ.get("SEALMAIL_KEYMGR",
                                 os.path.join(b, "keymgr", "sealmail-keymgr")),
        "imapd": os.environ.get("SEALMAIL_IMAPD", os.path.join(b, "imapd", "sealmail-imapd")),
        "engine": os.environ.get("SEALMAIL_ENGINE_SERVER",
                                 os.path.join(b, "tests", "test-engine-server")),
    }


def _exe(p):
    return os.path.isfile(p) and os.access(p, os.X_OK)


def resolve_mode(build=None, mode="auto"):
    p = programs(build)
    if mode == "auto":
        return "imapd" if _exe(p["imapd"]) else "engine"
    return mode


def missing_programs(build=None, mode="auto"):
    """The programs this mode needs that are not built (empty list: ready)."""
    p = programs(build)
    mode = resolve_mode(build, mode)
    need = ["vault", "keymgr", "imapd" if mode == "imapd" else "engine"]
    return [os.path.relpath(p[k]) for k in need if not _exe(p[k])]


def available(build=None, mode="auto"):
    return not missing_programs(build, mode)


def run_user():
    """The unprivileged user a root-started sealmail-imapd drops to: `sealmail` when the
    system has it (tests/test_imapd.py creates it), else `nobody`."""
    for u in ("sealmail", "nobody"):
        try:
            pwd.getpwnam(u)
            return u
        except KeyError:
            pass
    raise RuntimeError("no unprivileged user to run sealmail-imapd as")


def set_conf(text, key, value):
    """Sets `key = value` in a config text: replaces an active or commented-out line for
    key, else appends one."""
    line = "%s = %s" % (key, value)
    pat = re.compile(r"^[ \t]*#?[ \t]*%s[ \t]*=.*$" % re.escape(key), re.M)
    active = re.compile(r"^[ \t]*%s[ \t]*=.*$" % re.escape(key), re.M)
    if active.search(text):
        return active.sub(lambda m: line, text, count=1)
    m = pat.search(text)
    if m:
        return text[:m.start()] + line + text[m.end():]
    return text.rstrip("\n") + "\n" + line + "\n"


def get_conf(text, key):
    m = re.search(r"^[ \t]*%s[ \t]*=[ \t]*(.*?)[ \t]*$" % re.escape(key), text, re.M)
    return m.group(1) if m else None


class Sealmail:
    name = "sealmail"

    def __init__(self, users=("alice",), *, passphrases=None, build=None, mode="auto",
                 basedir=None, keep=False, conf=None, start=True, start_timeout=30,
                 argon2_memory=19456, argon2_passes=2):
        """users: names; passphrases: {name: passphrase} (default "pass phrase of NAME").
        conf: extra {key: value} config settings. keep: leave the temp dir."""
        self.build = build or default_build()
        self.prog = programs(self.build)
        self.mode = resolve_mode(self.build, mode)
        missing = missing_programs(self.build, self.mode)
        if missing:
            raise RuntimeError("sealmail programs not built: " + ", ".join(missing))
        self.users = list(users)
        self.passphrases = {u: "pass phrase of " + u for u in self.users}
        self.passphrases.update(passphrases or {})
        self.keep = keep
        self.extra_conf = dict(conf or {})
        self.argon2 = (argon2_memory, argon2_passes)
        self.start_timeout = start_timeout
        self.host = "127.0.0.1"
        self.imap_port = self.imaps_port = self.lmtp_port = None
        self.preauth = self.mode == "engine"
        self.proc = None
        self.engines = {}       # user -> (Popen, port)
        self.recovery = {}      # user -> the recovery key printed at enrolment
        self._own_base = basedir is None
        self.basedir = basedir or tempfile.mkdtemp(prefix="sm-sealmail-")
        self.vault_dir = os.path.join(self.basedir, "vault")
        self.conf = os.path.join(self.vault_dir, "sealmail.conf")
        self.log_path = os.path.join(self.basedir, "imapd.log")
        self.audit_path = os.path.join(self.basedir, "audit.jsonl")
        self.cafile = None
        if start:
            try:
                self.start()
            except BaseException:
                self.stop()
                raise

    # -- setup ---------------------------------------------------------------------------
    def run(self, args, *, input=None, pass_fds=(), check=True, timeout=120):
        r = subprocess.run(args, input=input, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, pass_fds=pass_fds, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError("%s: exit %d\n%s%s" % (
                " ".join(args), r.returncode, r.stdout.decode(errors="replace"),
                r.stderr.decode(errors="replace")))
        return r

    def _init_vault(self, ports):
        if not os.path.exists(self.conf):
            self.run([self.prog["vault"], "init", self.vault_dir])
        with open(self.conf) as f:
            text = f.read()
        self.imap_port, self.imaps_port, self.lmtp_port = ports
        settings = {
            "imap_listen": "127.0.0.1:%d" % self.imap_port,
            "imaps_listen": "127.0.0.1:%d" % self.imaps_port,
            "lmtp_listen": "127.0.0.1:%d" % self.lmtp_port,
            "argon2_memory": str(self.argon2[0]),
            "argon2_passes": str(self.argon2[1]),
            "audit_log": self.audit_path,
        }
        if os.getuid() == 0:
            # started as root the daemon binds, then runs as run_user (never root); the
            # temp dir is handed to that user once the users are enrolled
            settings["run_user"] = self.run_user = run_user()
        settings.update(self.extra_conf)
        for k, v in settings.items():
            text = set_conf(text, k, v)
        with open(self.conf, "w") as f:
            f.write(text)
        self.cafile = get_conf(text, "tls_cert") or os.path.join(self.vault_dir, "cert.pem")
        if not os.path.isabs(self.cafile):
            self.cafile = os.path.join(self.vault_dir, self.cafile)

    def token_file(self, user):
        return os.path.join(self.basedir, "token-%s" % user)

    def add_user(self, user, passphrase=None):
        if passphrase is not None:
            self.passphrases[user] = passphrase
        if user not in self.users:
            self.users.append(user)
        r_fd, w_fd = os.pipe()
        try:
            os.write(w_fd, self.passphrases[user].encode() + b"\n")
            os.close(w_fd)
            w_fd = -1
            # the program reads the passphrase from fd 3: put the pipe's read end there
            # in the child (preexec runs before the unlisted fds are closed)
            r = subprocess.run(
                [self.prog["keymgr"], "-c", self.conf, "user", "add", user,
                 "--passphrase-fd", "3", "--soft-token", self.token_file(user)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                timeout=120, pass_fds=(3,),
                preexec_fn=None if r_fd == 3 else (lambda: os.dup2(r_fd, 3)))
            if r.returncode != 0:
                raise RuntimeError("keymgr user add %s: exit %d\n%s%s" % (
                    user, r.returncode, r.stdout.decode(errors="replace"),
                    r.stderr.decode(errors="replace")))
            self.recovery[user] = r.stdout.decode(errors="replace")
        finally:
            os.close(r_fd)
            if w_fd >= 0:
                os.close(w_fd)

    def _hand_over(self):
        """As root: the daemon runs as run_user and must own the vault."""
        if os.getuid() != 0:
            return
        os.chmod(self.basedir, 0o755)
        pw = pwd.getpwnam(self.run_user)
        for dp, dns, fns in os.walk(self.vault_dir):
            for n in [dp] + [os.path.join(dp, x) for x in fns]:
                os.chown(n, pw.pw_uid, pw.pw_gid)

    def start(self):
        last = ""
        for _attempt in range(3):   # free ports are racy: retry on a bind failure
            self._init_vault(imapwire.free_ports(3))
            if not os.path.exists(self.token_file(self.users[0])):
                for u in self.users:
                    self.add_user(u)
            self._hand_over()
            if self.mode == "engine":
                return self
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen([self.prog["imapd"], "-c", self.conf],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
            log.close()
            deadline = time.time() + self.start_timeout
            if imapwire.wait_port(self.host, self.imaps_port, deadline, self.proc) and \
                    imapwire.wait_port(self.host, self.imap_port, deadline, self.proc):
                return self
            last = self.log_text()
            self._kill_proc(self.proc)
            self.proc = None
            if "in use" not in last:
                break
        raise RuntimeError("sealmail-imapd did not start:\n" + last[-4000:])

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # -- credentials ---------------------------------------------------------------------
    def otp(self, user):
        r = self.run([self.prog["keymgr"], "token", "otp", self.token_file(user)])
        otp = r.stdout.decode().strip()
        if len(otp) != 44:
            raise RuntimeError("token otp printed %r" % otp)
        return otp

    def passphrase(self, user):
        return self.passphrases[user]

    def password(self, user):
        """What a mail client sends as LOGIN password: passphrase + fresh OTP."""
        return self.passphrases[user] + self.otp(user)

    # -- access --------------------------------------------------------------------------
    def _engine(self, user):
        """The test-engine-server of user (started on first use)."""
        e = self.engines.get(user)
        if e and e[0].poll() is None:
            return e[1]
        portfile = os.path.join(self.basedir, "engine-port-%s" % user)
        if os.path.exists(portfile):
            os.unlink(portfile)
        log = open(os.path.join(self.basedir, "engine-%s.log" % user), "ab")
        p = subprocess.Popen([self.prog["engine"], self.conf, user, portfile],
                             stdin=subprocess.PIPE, stdout=log, stderr=log,
                             start_new_session=True)
        log.close()
        p.stdin.write(self.password(user).encode() + b"\n")
        p.stdin.close()
        deadline = time.time() + self.start_timeout
        port = None
        while time.time() < deadline and p.poll() is None:
            try:
                with open(portfile) as f:
                    t = f.read().strip()
                if t.isdigit():
                    port = int(t)
                    break
            except OSError:
                pass
            time.sleep(0.02)
        if port is None:
            self._kill_proc(p)
            with open(os.path.join(self.basedir, "engine-%s.log" % user),
                      errors="replace") as f:
                raise RuntimeError("test-engine-server for %s did not start:\n%s" % (
                    user, f.read()[-3000:]))
        self.engines[user] = (p, port)
        return port

    def connect(self, user=None, *, tls=None, starttls=False, login=True, password=None,
                timeout=60):
        """An imapwire.Conn for user, logged in (or PREAUTH in engine mode).
        tls: None = IMAPS (imapd mode); True/False explicit; starttls on imap_port.
        password: what to send to LOGIN (default: passphrase + fresh OTP)."""
        user = user or self.users[0]
        if self.mode == "engine":
            return imapwire.Conn(self.host, self._engine(user), timeout=timeout)
        if tls is None:
            tls = not starttls
        port = self.imaps_port if tls else self.imap_port
        c = imapwire.Conn(self.host, port, tls=tls, starttls=starttls, cafile=self.cafile,
                          timeout=timeout)
        if login:
            c.login(user, password if password is not None else self.password(user))
        return c

    def imaplib(self, user=None, *, tls=True, login=True, password=None):
        user = user or self.users[0]
        if self.mode == "engine":
            return imaplib.IMAP4(self.host, self._engine(user))
        if tls:
            ctx = ssl.create_default_context(cafile=self.cafile)
            ctx.check_hostname = False
            m = imaplib.IMAP4_SSL(self.host, self.imaps_port, ssl_context=ctx)
        else:
            m = imaplib.IMAP4(self.host, self.imap_port)
        if login:
            m.login(user, password if password is not None else self.password(user))
        return m

    def deliver(self, user, data, *, sender="sender@example.org", via="lda"):
        """Delivers data (bytes) to user's INBOX: via="lda" with `sealmail-vault -c CONF
        deliver USER` (the bytes on stdin), via="lmtp" through sealmail-imapd's LMTP
        listener (line ends made CRLF as LMTP requires; a final CRLF is added)."""
        if via == "lmtp":
            if self.mode == "engine":
                raise RuntimeError("no LMTP listener in engine mode")
            with smtplib.LMTP(self.host, self.lmtp_port, timeout=60) as s:
                wire = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
                refused = s.sendmail(sender, [user + "@localhost"], wire)
                if refused:
                    raise RuntimeError("LMTP refused: %r" % refused)
            return
        if via != "lda":
            raise NotImplementedError("sealmail delivery via %s" % via)
        r = self.run([self.prog["vault"], "-c", self.conf, "deliver", user], input=data,
                     check=False)
        if r.returncode != 0:
            raise RuntimeError("sealmail-vault deliver: exit %d: %s" % (
                r.returncode, r.stderr.decode(errors="replace").strip()))

    # -- teardown ------------------------------------------------------------------------
    @staticmethod
    def _kill_proc(p):
        if p is None:
            return
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)   # our own session, by its id
                except ProcessLookupError:
                    pass
                p.wait(timeout=10)

    def stop(self):
        for p, _ in self.engines.values():
            self._kill_proc(p)
        self.engines = {}
        self._kill_proc(self.proc)
        self.proc = None
        if self._own_base and not self.keep:
            shutil.rmtree(self.basedir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "auto"
    with Sealmail(users=["alice", "bob"], mode=mode, keep=True) as sm:
        print("sealmail (%s) at %s: imap %s imaps %s, base %s" % (
            sm.mode, sm.host, sm.imap_port, sm.imaps_port, sm.basedir))
        print("alice's password now:", sm.password("alice"))
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
