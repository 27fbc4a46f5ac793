"""The servers under test, on top of the shared peers (tests/peers/dovecot.py and
tests/peers/sealmail.py, imported, not copied), with what the benchmarks add:
credentials for "first" and "unlock window" logins, process-tree roots, bulk fill,
restarts (sealmail: durable = no for the fill phase only).
"""

import os
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "peers"))
import dovecot  # noqa: E402
import sealmail  # noqa: E402

import imapc  # noqa: E402
import mailgen  # noqa: E402

# Dovecot's stock limits (default_process_limit = 100, default_client_limit = 1000, and
# service imap { process_limit = 1024 }) stop it near 1,024 concurrent IMAP sessions;
# the deployment guide's 10,000 connections need
# what an administrator sets for that: process and client limits above 10,000.
DOVECOT_CAPACITY_CONF = """
default_process_limit = 11000
default_client_limit = 22000
default_vsz_limit = 512M
service imap {
  process_limit = 11000
}
service anvil {
  client_limit = 22000
}
service auth {
  client_limit = 22000
}
"""


def sealmail_defaults(build):
    """(argon2_memory KiB, argon2_passes, durable) that `sealmail-vault init` writes as
    defaults (the commented lines of a fresh config): the production-like settings."""
    prog = sealmail.programs(build)["vault"]
    d = tempfile.mkdtemp(prefix="sm-bench-defaults-")
    try:
        subprocess.run([prog, "init", os.path.join(d, "v")], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        with open(os.path.join(d, "v", "sealmail.conf")) as f:
            text = f.read()
    finally:
        shutil.rmtree(d, ignore_errors=True)

    def val(k, dflt):
        m = re.search(r"^[ \t]*#?[ \t]*%s[ \t]*=[ \t]*(\S+)" % k, text, re.M)
        return m.group(1) if m else dflt
    return int(val("argon2_memory", "65536")), int(val("argon2_passes", "3")), \
        val("unlock_window", "8h")


def port_open(host, port, timeout=1.0):
    if not port:
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class Server:
    """What a workload needs to know about one server under test: a label, where to
    connect, how to log in, and the root of its process tree."""
    kind = None

    def __init__(self, label):
        self.label = label

    # plain IMAP (loopback; LOGIN allowed without TLS on both servers)
    @property
    def host(self):
        return self.peer.host

    @property
    def imap_port(self):
        return self.peer.imap_port

    @property
    def lmtp_port(self):
        return self.peer.lmtp_port

    def pid(self):
        return self.peer.proc.pid

    def lmtp_ready(self):
        return port_open(self.host, self.lmtp_port)


class DovecotServer(Server):
    kind = "dovecot"

    def __init__(self, label, users, service_count=None):
        super().__init__(label)
        self.peer = dovecot.Dovecot(users=users, tls=True, lmtp=True,
                                    service_count=service_count,
                                    extra_conf=DOVECOT_CAPACITY_CONF)
        self.service_count = service_count

    def add_users(self, users, **_):
        raise RuntimeError("dovecot users are fixed at start")

    def full_password(self, user):
        return self.peer.password(user)

    def full_passwords(self, user, n):
        return [self.peer.password(user)] * n

    def window_password(self, user):
        return self.peer.password(user)

    def unlock(self, user):
        pass

    def unlock_all(self, users, parallel=4):
        pass

    def stop(self):
        self.peer.stop()

    def restart(self):
        """Stops and starts the master on the same base directory (indexes kept)."""
        self.peer._kill()
        self.peer.start()

    def describe(self):
        return "Dovecot %s, %s" % (
            dovecot_version(), "service_count = 0 (high-performance login)"
            if self.service_count == 0 else "default login service (service_count = 1)")

    # -- fill: Maildir files written directly; Dovecot indexes them on first SELECT ----
    def fill_maildir(self, user, seed, start, end):
        write_maildir(self.peer.maildir(user), self.peer.mail_uid, self.peer.mail_gid,
                      seed, start, end)

    def chown_home(self, user):
        if os.getuid() == 0:
            for dp, dns, fns in os.walk(self.peer.home(user)):
                os.chown(dp, self.peer.mail_uid, self.peer.mail_gid)


class SealmailServer(Server):
    kind = "sealmail"

    def __init__(self, label, users, build, argon2, extra_conf=None):
        super().__init__(label)
        self.argon2 = argon2
        conf = {"max_connections": "12000"}   # 10,000 held + the other workloads' users
        conf.update(extra_conf or {})
        self.peer = sealmail.Sealmail(users=users, build=build, mode="imapd",
                                      argon2_memory=argon2[0], argon2_passes=argon2[1],
                                      conf=conf)
        self.unlocked = set()

    def add_users(self, users, argon2=None, parallel=2):
        """Enrols users (keymgr user add), `parallel` at a time. argon2=(KiB, passes)
        enrols them with other Argon2id parameters than the server's (written to the
        config for the enrolment only: keymgr reads it per run; parameters are stored
        per user)."""
        from concurrent.futures import ThreadPoolExecutor
        conf = self.peer.conf
        if argon2:
            with open(conf) as f:
                orig = f.read()
            t = sealmail.set_conf(orig, "argon2_memory", str(argon2[0]))
            t = sealmail.set_conf(t, "argon2_passes", str(argon2[1]))
            with open(conf, "w") as f:
                f.write(t)
        ex = ThreadPoolExecutor(parallel)
        try:
            list(ex.map(lambda u: self.peer.add_user(u, "pass phrase of " + u), users))
        finally:
            ex.shutdown(wait=True, cancel_futures=True)   # an interrupt stops the queue
            if argon2:
                with open(conf, "w") as f:
                    f.write(orig)
        self.peer._hand_over()

    def full_password(self, user):
        return self.peer.password(user)       # passphrase + a fresh OTP

    def full_passwords(self, user, n):
        return [self.peer.password(user) for _ in range(n)]

    def window_password(self, user):
        return self.peer.passphrase(user)     # passphrase alone, inside the unlock window

    def unlock(self, user):
        """One full login (passphrase + OTP) so the user's session process holds the keys
        and later logins inside the unlock window need the passphrase alone."""
        if user in self.unlocked:
            return
        c = imapc.Client(self.host, self.imap_port)
        c.login(user, self.full_password(user))
        c.logout()
        self.unlocked.add(user)

    def unlock_all(self, users, parallel=4):
        from concurrent.futures import ThreadPoolExecutor
        ex = ThreadPoolExecutor(parallel)
        try:
            list(ex.map(self.unlock, users))
        finally:
            ex.shutdown(wait=True, cancel_futures=True)

    def stop(self):
        self.peer.stop()

    def restart(self, **conf):
        """Restarts sealmail-imapd on the same vault (new ports), with config changes.
        Session processes end with the master, so unlock windows are gone."""
        self.peer._kill_proc(self.peer.proc)
        self.peer.proc = None
        self.peer.extra_conf.update(conf)
        self.peer.start()
        self.unlocked = set()

    def describe(self):
        return "sealmail-imapd (Argon2id %d KiB, t=%d, durable = %s)" % (
            self.argon2[0], self.argon2[1], self.peer.extra_conf.get("durable", "yes"))

    def fill_append(self, user, seed, n, progress=None, batch=100):
        """APPENDs messages 0..n-1 over one IMAP connection, pipelined (LITERAL+)."""
        c = imapc.Client(self.host, self.imap_port)
        try:
            c.login(user, self.window_password(user) if user in self.unlocked
                    else self.full_password(user))
            self.unlocked.add(user)
            for s in range(0, n, batch):
                c.append_many("INBOX", [mailgen.message(seed, i)
                                        for i in range(s, min(n, s + batch))])
                if progress and (s // batch) % 50 == 49:
                    progress(min(n, s + batch))
            c.logout()
        finally:
            c.close()

    def fill_import(self, user, maildir):
        """`sealmail-vault import USER --maildir DIR` (the migration path) with a copy
        of the config that says durable = no: for the fill phase only."""
        conf = self.peer.conf + ".fill"
        with open(self.peer.conf) as f:
            text = sealmail.set_conf(f.read(), "durable", "no")
        with open(conf, "w") as f:
            f.write(text)
        r, w = os.pipe()
        try:
            os.write(w, (self.full_password(user) + "\n").encode())
            os.close(w)
            w = -1
            p = subprocess.run([self.peer.prog["vault"], "-c", conf, "import", user,
                                "--maildir", maildir, "--passphrase-fd", str(r)],
                               pass_fds=(r,), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=3600)
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)
        if p.returncode != 0:
            raise RuntimeError("sealmail-vault import %s: exit %d: %s%s" % (
                user, p.returncode, p.stdout.decode(errors="replace")[-500:],
                p.stderr.decode(errors="replace")[-1500:]))
        return p.stdout.decode(errors="replace").strip()

    def fill_lmtp(self, user, seed, n, progress=None):
        with smtplib.LMTP(self.host, self.lmtp_port, timeout=120) as s:
            for i in range(n):
                r = s.sendmail("bench@sender.example", [user + "@localhost"],
                               mailgen.message(seed, i))
                if r:
                    raise RuntimeError("LMTP refused: %r" % r)
                if progress and i % 5000 == 4999:
                    progress(i + 1)

    def fill_deliver(self, user, seed, n, progress=None):
        for i in range(n):
            self.peer.deliver(user, mailgen.message(seed, i), via="lda")
            if progress and i % 1000 == 999:
                progress(i + 1)


def write_maildir(md, uid, gid, seed, start, end, base_time=1704067200):
    """Writes messages start..end-1 of mailbox `seed` as Maildir files in md/cur (no
    flags); file names and mtimes (the internal date) grow with the index, so Dovecot
    and an importer order them alike."""
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
    cur = os.path.join(md, "cur")
    for i in range(start, end):
        m = mailgen.message(seed, i)
        t = base_time + i
        # <time>.M<usec>P<pid>.<host>,S=<size>,W=<virtual size>:2,
        name = "%d.M%06dP%d.bench,S=%d,W=%d:2," % (t, i % 1000000, 1000 + seed,
                                                     len(m), len(m))
        p = os.path.join(cur, name)
        with open(p, "wb") as f:
            f.write(m)
        os.utime(p, (t, t))
        if os.getuid() == 0:
            os.chown(p, uid, gid)
    return end - start


_DV = None


def dovecot_version():
    global _DV
    if _DV is None:
        try:
            _DV = subprocess.run([dovecot.DOVECOT, "--version"], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL).stdout.decode().split()[0]
        except (OSError, IndexError):
            _DV = "?"
    return _DV
