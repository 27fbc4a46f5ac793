"""Helpers for the end-to-end tests of sealmail-vault and sealmail-keymgr (stdlib only).

A Sealmail object owns a temporary vault made with `sealmail-vault init`, its config
(tuned to the OWASP-minimum Argon2id so tests run fast) and runs the real programs.
Secrets go to the programs only through --passphrase-fd (a pipe), never argv.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

FAST_ARGON2 = {"argon2_memory": "19456", "argon2_passes": "2"}


class CheckFailed(AssertionError):
    pass


def check(cond, what):
    if not cond:
        raise CheckFailed(what)


def proc_children_map(zombies=True):
    """{ppid: [pid, ...]} from one pass over /proc (processes that vanish mid-read
    are left out; zombies too unless zombies=True)."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
            fields = st[st.rindex(")") + 2:].split()
            if zombies or fields[0] != "Z":
                kids.setdefault(int(fields[1]), []).append(int(d))
        except (OSError, ValueError):
            pass
    return kids


def children(ppid, zombies=True):
    """The direct children of ppid, in /proc order."""
    return proc_children_map(zombies).get(ppid, [])


def descendants(pid):
    """pid and every process below it, from one pass over /proc."""
    kids = proc_children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def set_config(path, settings):
    """Sets key = value lines in a sealmail config, uncommenting defaults."""
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
        f.write("\n".join(lines))


SANITIZER_MARKS = (b"ERROR: AddressSanitizer", b"ERROR: LeakSanitizer", b"runtime error:",
                   b"LeakSanitizer has encountered")


def sanitizer_check(argv, stderr):
    """Under ASan/UBSan a report in a program's stderr fails the test, whatever the
    exit status the test expected."""
    for mark in SANITIZER_MARKS:
        if mark in (stderr or b""):
            raise CheckFailed("sanitizer report from %s:\n%s" %
                              (" ".join(os.path.basename(str(a)) for a in argv[:4]),
                               stderr.decode(errors="replace")[-3000:]))


class Sealmail:
    def __init__(self, vault_bin, keymgr_bin, name="cli", settings=None):
        self.vault_bin = os.path.abspath(vault_bin)
        self.keymgr_bin = os.path.abspath(keymgr_bin)
        self.tmp = tempfile.mkdtemp(prefix="sealmail-%s-" % name)
        self.dir = os.path.join(self.tmp, "vault")
        p = self.run([self.vault_bin, "init", self.dir])
        check(p.returncode == 0, "vault init failed: %s" % p.stderr.decode(errors="replace"))
        self.init_stdout = p.stdout.decode()
        self.conf = os.path.join(self.dir, "sealmail.conf")
        check(os.path.exists(self.conf), "init did not write sealmail.conf")
        s = dict(FAST_ARGON2)
        s.update(settings or {})
        set_config(self.conf, s)

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    # ---- running the programs ---------------------------------------------------
    def run(self, argv, stdin=None, passlines=None, timeout=300, env=None):
        """Runs argv; passlines (str/bytes list) are fed on a pipe via --passphrase-fd.
        stdin: bytes, a file object, or None (/dev/null: never a terminal)."""
        argv = list(argv)
        rfd = None
        pass_fds = ()
        if passlines is not None:
            data = b"".join((l.encode() if isinstance(l, str) else l) + b"\n"
                            for l in passlines)
            rfd, wfd = os.pipe()
            os.write(wfd, data)
            os.close(wfd)
            # before a "--" that ends the options, else at the end
            at = argv.index("--") if "--" in argv else len(argv)
            argv[at:at] = ["--passphrase-fd", str(rfd)]
            pass_fds = (rfd,)
        kw = {}
        if isinstance(stdin, (bytes, bytearray)):
            kw["input"] = bytes(stdin)
        elif stdin is None:
            kw["stdin"] = subprocess.DEVNULL
        else:
            kw["stdin"] = stdin
        try:
            p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               pass_fds=pass_fds, timeout=timeout, env=env, **kw)
        finally:
            if rfd is not None:
                os.close(rfd)
        sanitizer_check(argv, p.stderr)
        return p

    def run_pty(self, argv, script, timeout=60):
        """Runs argv on a new pseudo-terminal (its controlling terminal and stdin).
        script: [(text expected in the output, line to type)]. Returns (exit status,
        everything the terminal showed)."""
        import pty
        import select
        pid, master = pty.fork()
        if pid == 0:
            try:
                os.execv(argv[0], argv)
            finally:
                os._exit(127)
        shown = b""
        deadline = time.monotonic() + timeout

        def read_some():
            nonlocal shown
            r, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
            if not r:
                raise CheckFailed("terminal: timed out; shown so far: %r" % shown)
            try:
                data = os.read(master, 4096)
            except OSError:     # EIO: the child closed the terminal
                data = b""
            shown += data
            return data

        try:
            pos = 0
            for expect, line in script:
                while expect.encode() not in shown[pos:]:
                    if not read_some():
                        raise CheckFailed("terminal: %r never shown; got %r" % (expect, shown))
                pos = shown.index(expect.encode(), pos) + len(expect)
                time.sleep(0.05)   # let the program switch echo off after the prompt
                os.write(master, line.encode() + b"\n")
            while read_some():
                pass
        finally:
            _, status = os.waitpid(pid, 0)
            os.close(master)
        return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")

    def vault(self, *args, conf=None, **kw):
        return self.run([self.vault_bin, "-c", conf or self.conf] + list(args), **kw)

    def keymgr(self, *args, conf=None, **kw):
        return self.run([self.keymgr_bin, "-c", conf or self.conf] + list(args), **kw)

    # ---- users and tokens ----------------------------------------------------------
    def otp(self, tokenfile):
        p = self.run([self.keymgr_bin, "token", "otp", tokenfile])
        check(p.returncode == 0, "token otp failed: %s" % p.stderr.decode(errors="replace"))
        otp = p.stdout.decode().strip()
        check(re.fullmatch(r"[cbdefghijklnrtuv]{44}", otp) is not None, "bad OTP %r" % otp)
        return otp

    def login(self, passphrase, tokenfile):
        return passphrase + self.otp(tokenfile)

    def add_user(self, name, passphrase, tokenfile):
        p = self.keymgr("user", "add", name, "--soft-token", tokenfile,
                        passlines=[passphrase])
        check(p.returncode == 0, "user add %s failed (%d): %s" %
              (name, p.returncode, p.stderr.decode(errors="replace")))
        return parse_recovery(p.stdout.decode())

    def deliver(self, name, msg, **kw):
        return self.vault("deliver", name, stdin=msg, **kw)

    def cat(self, name, passphrase, tokenfile, uid, mailbox=None):
        args = ["cat", name, str(uid)]
        if mailbox:
            args += ["--mailbox", mailbox]
        p = self.vault(*args, passlines=[self.login(passphrase, tokenfile)])
        check(p.returncode == 0, "cat %s %s failed: %s" %
              (name, uid, p.stderr.decode(errors="replace")))
        return p.stdout

    def list(self, name, passphrase, tokenfile):
        p = self.vault("list", name, passlines=[self.login(passphrase, tokenfile)])
        check(p.returncode == 0, "list %s failed: %s" %
              (name, p.stderr.decode(errors="replace")))
        return parse_list(p.stdout.decode("utf-8", errors="replace"))

    def mdb_dump(self, db):
        p = self.run(["mdb_dump", "-s", db, self.dir])
        check(p.returncode == 0, "mdb_dump -s %s failed: %s" %
              (db, p.stderr.decode(errors="replace")))
        return p.stdout


RECOVERY_RE = re.compile(r"^\s{4}([A-Za-z0-9]+(?:-[A-Za-z0-9]+)+)\s*$", re.M)


def parse_recovery(out):
    m = RECOVERY_RE.search(out)
    check(m is not None, "no recovery key in user add output:\n%s" % out)
    return m.group(1)


def parse_list(text):
    """{mailbox name: {"id": n, "msgs": {uid: {"size": n, "flags": [...]}}}}"""
    boxes = {}
    cur = None
    for line in text.splitlines():
        m = re.match(r'^mailbox "((?:[^"\\]|\\.)*)" id=(\d+)', line)
        if m:
            name = re.sub(r"\\(.)", r"\1", m.group(1))
            cur = boxes[name] = {"id": int(m.group(2)), "msgs": {}}
            continue
        m = re.match(r"^\s+uid=(\d+) size=(\d+) .*flags=\((.*)\)$", line)
        if m and cur is not None:
            cur["msgs"][int(m.group(1))] = {
                "size": int(m.group(2)),
                "flags": m.group(3).split() if m.group(3) else []}
    return boxes


def dump_records(text):
    """Parses mdb_dump output into {key_hex: value_hex}."""
    lines = text.decode().splitlines()
    try:
        start = lines.index("HEADER=END") + 1
    except ValueError:
        raise CheckFailed("mdb_dump output has no header")
    body = [l.strip() for l in lines[start:] if l.strip() and l.strip() != "DATA=END"]
    check(len(body) % 2 == 0, "odd mdb_dump body")
    return {body[i]: body[i + 1] for i in range(0, len(body), 2)}


class Runner:
    """Runs named test functions in order and prints the closing 'N passed, N failed'."""

    def __init__(self, suite):
        self.suite = suite
        self.passed = 0
        self.failed = 0

    def run(self, name, fn, *args):
        t0 = time.monotonic()
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - report every failure and go on
            self.failed += 1
            print("FAIL %s: %s (%.2fs)" % (name, e, time.monotonic() - t0), flush=True)
            if not isinstance(e, CheckFailed):
                traceback.print_exc()
            return False
        self.passed += 1
        print("ok   %s (%.2fs)" % (name, time.monotonic() - t0), flush=True)
        return True

    def finish(self):
        print("%s: %d passed, %d failed" % (self.suite, self.passed, self.failed), flush=True)
        sys.exit(1 if self.failed else 0)
