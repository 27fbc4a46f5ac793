"""A private Debian Dovecot 2.3 for tests and benchmarks (Python 3 stdlib only).

    with Dovecot(users=["alice", "bob"]) as dv:
        dv.deliver("alice", b"Subject: hi\\r\\n\\r\\nbody\\r\\n")
        c = dv.connect("alice")            # imapwire.Conn, logged in (plain IMAP)
        c = dv.connect("alice", tls=True)  # implicit TLS, certificate checked
        m = dv.imaplib("alice")            # imaplib.IMAP4_SSL, logged in

Everything lives in one temp directory: config, base_dir, state, a passwd-file
(plaintext passwords), Maildirs, a self-signed P-256 certificate for "localhost", the log.
Listeners are on free loopback ports: IMAP (+STARTTLS), IMAPS, LMTP. The system
Dovecot service is never touched: the master runs in the foreground (-F) as our child.

Privileges: as a normal user every Dovecot process runs as that user (the documented
"rootless" setup: default_internal_user = default_login_user = us, no chroot). As root
the login/internal processes use Debian's dovenull/dovecot users when they exist and mail
processes run as `nobody` (Dovecot refuses UID 0 for mail access), so the temp directory
is made traversable and the homes are chowned.

The interface (shared with peers/sealmail.py, used by the differential test, the client
tests and the benchmarks): name, host, imap_port, imaps_port, lmtp_port, users,
passwords, password(user), cafile, preauth, connect(), imaplib(), deliver(), stop(),
log_path, basedir.
"""

import grp
import imaplib
import os
import pwd
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

DOVECOT = os.environ.get("DOVECOT", shutil.which("dovecot", path="/usr/sbin:/usr/bin:"
                                                 + os.environ.get("PATH", "")) or
                         "/usr/sbin/dovecot")
DOVECOT_LDA = os.environ.get("DOVECOT_LDA", "/usr/lib/dovecot/dovecot-lda")


def available():
    return os.path.exists(DOVECOT) and os.access(DOVECOT, os.X_OK)


def make_cert(dirpath, cn="localhost"):
    """A self-signed P-256 certificate + key for cn (and 127.0.0.1). Returns
    (certfile, keyfile)."""
    cert = os.path.join(dirpath, "cert.pem")
    key = os.path.join(dirpath, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
         "-days", "30", "-subj", "/CN=" + cn,
         "-addext", "subjectAltName=DNS:%s,IP:127.0.0.1" % cn],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.chmod(key, 0o644)  # test key; dovecot's config process (root or us) reads it
    return cert, key


class Dovecot:
    name = "dovecot"
    preauth = False

    def __init__(self, users=("alice",), *, passwords=None, tls=True, lmtp=True,
                 service_count=None, mail_fsync=None, basedir=None, keep=False,
                 special_use=True, extra_conf="", start=True, start_timeout=15):
        """users: names; passwords: {name: password} (default: "pw-NAME").
        tls: IMAPS listener + STARTTLS with a self-signed cert (else ssl = no).
        service_count: imap-login service_count (0 = high-performance mode).
        mail_fsync: None = Dovecot's default (optimized), or "always"/"never".
        special_use: the namespace a production setup has (Debian's 15-mailboxes.conf
        with auto = subscribe): separator "/", INBOX and the RFC 6154 mailboxes
        Archive, Drafts, Junk, Sent, Trash created and subscribed - what sealmail
        creates for every user - so that listings compare.
        keep: leave the temp directory (for post-mortems)."""
        if not available():
            raise RuntimeError("dovecot not installed (%s)" % DOVECOT)
        self.users = list(users)
        self.passwords = {u: "pw-" + u for u in self.users}
        self.passwords.update(passwords or {})
        self.tls = tls
        self.lmtp = lmtp
        self.service_count = service_count
        self.mail_fsync = mail_fsync
        self.keep = keep
        self.extra_conf = extra_conf
        self.special_use = special_use
        self.host = "127.0.0.1"
        self.imap_port = self.imaps_port = self.lmtp_port = None
        self.cafile = None
        self.proc = None
        self._own_base = basedir is None
        self.basedir = basedir or tempfile.mkdtemp(prefix="sm-dovecot-")
        self.start_timeout = start_timeout
        if start:
            self.start()

    # -- setup ---------------------------------------------------------------------------
    def _identities(self):
        """(internal_user, login_user, mail_uid, mail_gid)."""
        if os.getuid() != 0:
            me = pwd.getpwuid(os.getuid()).pw_name
            return me, me, os.getuid(), os.getgid()

        def have(u):
            try:
                pwd.getpwnam(u)
                return True
            except KeyError:
                return False
        internal = "dovecot" if have("dovecot") else "nobody"
        login = "dovenull" if have("dovenull") else "nobody"
        nob = pwd.getpwnam("nobody")
        return internal, login, nob.pw_uid, nob.pw_gid

    def home(self, user):
        return os.path.join(self.basedir, "home", user)

    def maildir(self, user):
        return os.path.join(self.home(user), "Maildir")

    def _write_config(self, ports):
        b = self.basedir
        internal, login, uid, gid = self._identities()
        self.mail_uid, self.mail_gid = uid, gid
        os.chmod(b, 0o755)
        for d in ("run", "state", "home"):
            os.makedirs(os.path.join(b, d), exist_ok=True)
        with open(os.path.join(b, "passwd"), "w") as f:
            for u in self.users:
                h = self.home(u)
                os.makedirs(h, exist_ok=True)
                os.chown(h, uid, gid) if os.getuid() == 0 else None
                f.write("%s:{PLAIN}%s:%d:%d::%s::\n" % (u, self.passwords[u], uid, gid, h))
        os.chmod(os.path.join(b, "passwd"), 0o644)
        self.imap_port, self.imaps_port, self.lmtp_port = ports
        if self.tls:
            self.certfile, self.keyfile = make_cert(b)
            self.cafile = self.certfile
            ssl_conf = "ssl = yes\nssl_cert = <%s\nssl_key = <%s\n" % (
                self.certfile, self.keyfile)
            imaps = ("  inet_listener imaps {\n    address = 127.0.0.1\n"
                     "    port = %d\n    ssl = yes\n  }\n" % self.imaps_port)
        else:
            ssl_conf = "ssl = no\n"
            imaps = "  inet_listener imaps {\n    port = 0\n  }\n"
            self.imaps_port = None
        if not self.lmtp:
            self.lmtp_port = None
        self.log_path = os.path.join(b, "dovecot.log")
        sc = ""
        if self.service_count is not None:
            sc = "  service_count = %d\n" % self.service_count
            if self.service_count == 0:
                # high-performance login mode: a few long-lived login processes
                sc += "  process_min_avail = %d\n" % (os.cpu_count() or 1)
        conf = f"""# written by tests/peers/dovecot.py
base_dir = {b}/run
state_dir = {b}/state
log_path = {self.log_path}
instance_name = sm-dovecot-{os.getpid()}-{ports[0]}
protocols = imap{" lmtp" if self.lmtp else ""}
listen = 127.0.0.1
{ssl_conf}disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
auth_cache_size = 1M
mail_location = maildir:~/Maildir
first_valid_uid = 1
first_valid_gid = 1
default_internal_user = {internal}
default_login_user = {login}
{"default_internal_group = " + grp.getgrgid(os.getgid()).gr_name if os.getuid() else ""}
{"mail_fsync = " + self.mail_fsync if self.mail_fsync else ""}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {b}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%n {b}/passwd
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
{imaps}{sc}}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.lmtp_port or 0}
  }}
  unix_listener lmtp {{
    mode = 0666
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
protocol imap {{
  mail_max_userip_connections = 10000
}}
{self.extra_conf}
"""
        if self.special_use:
            conf += "namespace inbox {\n  inbox = yes\n  separator = /\n" \
                    "  mailbox INBOX {\n    auto = subscribe\n  }\n"
            for box in ("Archive", "Drafts", "Junk", "Sent", "Trash"):
                conf += "  mailbox %s {\n    special_use = \\%s\n    auto = subscribe\n" \
                        "  }\n" % (box, box)
            conf += "}\n"
        self.conf = os.path.join(b, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        os.chmod(self.conf, 0o644)

    def start(self):
        last = ""
        for _attempt in range(3):  # free ports are racy: retry on a bind failure
            self._write_config(imapwire.free_ports(3))
            if os.path.exists(self.log_path):
                os.unlink(self.log_path)
            self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf],
                                         stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         start_new_session=True)
            if self._wait_ready():
                return self
            last = self._failure_text()
            self._kill()
            if "Address already in use" not in last:
                break
        raise RuntimeError("dovecot did not start:\n" + last)

    def _wait_ready(self):
        deadline = time.time() + self.start_timeout
        ports = [self.imap_port] + ([self.lmtp_port] if self.lmtp_port else [])
        for p in ports:
            if not imapwire.wait_port(self.host, p, deadline, self.proc):
                return False
        # the greeting proves imap-login works, not just that the master listens
        try:
            c = imapwire.Conn(self.host, self.imap_port, timeout=10)
            ok = c.greeting.startswith(b"* OK")
            c.close()
            return ok
        except (OSError, imapwire.ImapError):
            return False

    def _failure_text(self):
        out = ""
        if self.proc and self.proc.poll() is not None and self.proc.stdout:
            out += self.proc.stdout.read().decode("utf-8", "replace")
        try:
            with open(self.log_path, errors="replace") as f:
                out += f.read()[-4000:]
        except OSError:
            pass
        return out

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # -- access --------------------------------------------------------------------------
    def password(self, user):
        return self.passwords[user]

    def connect(self, user=None, *, tls=False, starttls=False, login=True, timeout=60):
        """An imapwire.Conn; logged in as user (default: the first user) unless
        login=False. tls: implicit TLS on imaps_port; starttls: STARTTLS on imap_port."""
        user = user or self.users[0]
        port = self.imaps_port if tls else self.imap_port
        c = imapwire.Conn(self.host, port, tls=tls, starttls=starttls,
                          cafile=self.cafile, timeout=timeout)
        if login:
            c.login(user, self.password(user))
        return c

    def imaplib(self, user=None, *, tls=True, login=True):
        """An imaplib connection (IMAP4_SSL with the certificate checked, or plain)."""
        user = user or self.users[0]
        if tls and self.imaps_port:
            ctx = ssl.create_default_context(cafile=self.cafile)
            ctx.check_hostname = False
            m = imaplib.IMAP4_SSL(self.host, self.imaps_port, ssl_context=ctx)
        else:
            m = imaplib.IMAP4(self.host, self.imap_port)
        if login:
            m.login(user, self.password(user))
        return m

    def deliver(self, user, data, *, sender="sender@example.org", via="lmtp"):
        """Delivers data (bytes) to user's INBOX. via="lmtp" (Dovecot's LMTP listener;
        line endings become CRLF on the wire as LMTP requires, a final CRLF is added
        when missing, Dovecot adds Return-Path and Delivered-To) or via="lda"
        (dovecot-lda -d user, the bytes on stdin)."""
        if via == "lda":
            r = subprocess.run([DOVECOT_LDA, "-c", self.conf, "-d", user, "-f", sender],
                               input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if r.returncode != 0:
                raise RuntimeError("dovecot-lda exit %d: %s" % (
                    r.returncode, r.stderr.decode(errors="replace")))
            return
        if not self.lmtp_port:
            raise RuntimeError("LMTP listener disabled")
        wire = to_crlf(data)
        with smtplib.LMTP(self.host, self.lmtp_port, timeout=60) as s:
            refused = s.sendmail(sender, [user + "@localhost"], wire)
            if refused:
                raise RuntimeError("LMTP refused: %r" % refused)

    # -- teardown ------------------------------------------------------------------------
    def _kill(self):
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)   # the master stops its children itself
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)  # our own session, by its id
                except ProcessLookupError:
                    pass
                p.wait(timeout=10)
        if p.stdout:
            p.stdout.close()
        self.proc = None

    def stop(self):
        self._kill()
        if self._own_base and not self.keep:
            shutil.rmtree(self.basedir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def to_crlf(data):
    """Bytes with every line ending (LF or CRLF) as CRLF, as SMTP/LMTP DATA needs."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


if __name__ == "__main__":
    # Manual use: python3 tests/peers/dovecot.py  -> starts one, prints how to reach it.
    with Dovecot(users=["alice", "bob"], keep=True) as dv:
        t = time.time()
        print("dovecot at %s: imap %d imaps %s lmtp %s, base %s" % (
            dv.host, dv.imap_port, dv.imaps_port, dv.lmtp_port, dv.basedir))
        print("users:", dv.passwords)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
