#!/usr/bin/env python3
"""End-to-end tests of `sealmail-vault import` (migration in): a real vault, real LMDB,
the real programs.

- A Maildir++ tree as Dovecot writes it (INBOX in cur/ and new/, .Sub.Folder, a
  non-ASCII folder name in modified UTF-7, .Sent into the existing Sent, an fs-layout
  folder, dovecot-keywords, dovecot-uidlist order, Dovecot's index files and tmp/ that
  must be ignored), file mtimes as internal dates; an mboxrd file (>From lines,
  Status/X-Status/X-Keywords, From-line dates with and without a zone).
- Every message is checked with `list` and `cat`: byte-exact (bare LF -> CRLF), in the
  right folder, in source order, with its flags, keywords and internal date.
- A re-run imports nothing twice; an import killed with SIGKILL midway and run again
  ends with every message exactly once.
- Errors: usage (exit 2), missing source, not an mbox, a folder name that is not valid
  modified UTF-7, a message over max_message_size (exit 1, the rest imported).
- Progress on a terminal (pty), silence otherwise.
- Zero knowledge: folder names, markers from the mail and the source file names are
  nowhere in the data directory's bytes.
- Import rate for 20 KiB messages (printed).

Usage: test_import.py SEALMAIL-VAULT SEALMAIL-KEYMGR"""
import os
import random
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sealmail_cli import Runner, Sealmail, check, sanitizer_check  # noqa: E402

PASS = "copper lantern orbit meadow"
# A zone with DST, written as a POSIX rule so that no tzdata is needed: internal
# dates and their offsets must follow it (the vault uses local time like Dovecot).
TZ = "CET-1CEST,M3.5.0,M10.5.0/3"
os.environ["TZ"] = TZ
time.tzset()

MARK = "ZKimport7Hq2Vx9Lm4Pw"          # in bodies and subjects: never on disk in clear
FOLDER_MARK = "Privatordner"            # a folder name: never on disk in clear


def err(p):
    return p.stderr.decode(errors="replace")


def to_crlf(b):
    return re.sub(rb"(?<!\r)\n", b"\r\n", b)


def zone(t):
    """The local offset at t as +HHMM (what the vault records for a Maildir mtime)."""
    off = time.localtime(t).tm_gmtoff // 60
    return "%s%02d%02d" % ("-" if off < 0 else "+", abs(off) // 60, abs(off) % 60)


LIST_MBOX = re.compile(r'^mailbox "((?:[^"\\]|\\.)*)" id=(\d+) messages=(\d+)')
LIST_MSG = re.compile(r"^\s+uid=(\d+) size=(\d+) modseq=\d+ date=\"[^\"]*\" time=(-?\d+) "
                      r"tz=([+-]\d{4}) flags=\((.*)\)$")


def parse_list(text):
    """{mailbox: [(uid, size, time, tz, set(flags))...] in UID order}"""
    boxes, cur = {}, None
    for line in text.splitlines():
        m = LIST_MBOX.match(line)
        if m:
            cur = boxes[re.sub(r"\\(.)", r"\1", m.group(1))] = []
            continue
        m = LIST_MSG.match(line)
        if m and cur is not None:
            cur.append((int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4),
                        frozenset(m.group(5).split())))
    return boxes


class T:
    def __init__(self, vault_bin, keymgr_bin):
        self.s = Sealmail(vault_bin, keymgr_bin, "import")
        self.tok = self.s.path("alice.token")
        self.s.add_user("alice", PASS, self.tok)
        self.expect = {}        # mailbox -> [(bytes, flags, time, tz or None)] in order
        self.src = self.s.path("src")
        os.makedirs(self.src)

    def login(self):
        return [self.s.login(PASS, self.tok)]

    def imp(self, *args, conf=None):
        return self.s.vault("import", "alice", *args, passlines=self.login(), conf=conf)

    def listing(self):
        p = self.s.vault("list", "alice", passlines=self.login())
        check(p.returncode == 0, "list: %s" % err(p))
        return parse_list(p.stdout.decode("utf-8"))

    def cat(self, box, uid):
        return self.s.cat("alice", PASS, self.tok, uid, mailbox=box)

    # ---- sources ------------------------------------------------------------------
    def build_maildir(self):
        md = self.md = os.path.join(self.src, "Maildir")
        rnd = random.Random(7)
        base_t = 1700000000
        exp = self.expect

        def folder(path, box):
            for sub in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(path, sub), exist_ok=True)
            exp.setdefault(box, [])
            return path

        def write(path, sub, name, data, mtime):
            p = os.path.join(path, sub, name)
            with open(p, "wb") as f:
                f.write(data)
            os.utime(p, (mtime, mtime))

        def body(i, box, style):
            subj = "msg %d in %s %s" % (i, box, MARK)
            head = ("From: Sender %d <s%d@example.org>\nTo: alice@example.org\n"
                    "Subject: %s\nMessage-ID: <imp%d.%d@example.org>\n" % (
                        i, i, subj, i, abs(hash(box)) % 1000)).encode()
            text = b"".join(b"line %d of %d %s\n" % (k, i, MARK.encode())
                            for k in range(rnd.randint(1, 30)))
            if style == 0:
                return head + b"\n" + text                          # bare LF
            if style == 1:
                return (head + b"\n" + text).replace(b"\n", b"\r\n")  # CRLF already
            if style == 2:
                return head + b"\nlone\rCR and \xc3\xa9 8bit\n" + text  # CR kept
            return head + b"\nno final newline " + MARK.encode()

        # INBOX: cur/ with flags and keywords, new/ without; dovecot-uidlist orders
        # some of them (UID order wins over the file names), the rest by file name.
        inbox = folder(md, "INBOX")
        with open(os.path.join(md, "dovecot-keywords"), "w") as f:
            f.write("0 $Label1\n1 Work\n2 $Junk\n")
        infos = ["", "S", "FS", "RS", "DS", "PS", "T", "Sa", "Sbc", "FRSTa", "DFPRSTabc", "z"]
        flagmap = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen",
                   "T": "\\Deleted", "P": "$Forwarded", "a": "$Label1", "b": "Work",
                   "c": "$Junk"}
        entries = []
        for i in range(24):
            ts = base_t + i * 3600
            uniq = "%d.M%dP%d.mailhost,S=%d" % (ts, i, 4000 + i, 100 + i)
            info = infos[i % len(infos)]
            data = body(i, "INBOX", i % 4)
            mtime = ts - 86400 * 40 * (i % 5)      # spans DST changes
            sub = "new" if i % 6 == 5 else "cur"
            name = uniq if sub == "new" else uniq + ":2," + info
            fl = frozenset(flagmap[c] for c in info if c in flagmap) if sub == "cur" \
                else frozenset()
            write(inbox, sub, name, data, mtime)
            entries.append((uniq, data, fl, mtime))
        # dovecot-uidlist (v3): messages 20, 3, 11 first, in that UID order
        listed = [entries[20], entries[3], entries[11]]
        with open(os.path.join(md, "dovecot-uidlist"), "w") as f:
            f.write("3 V1700000000 N40 G0123456789abcdef0123456789abcdef\n")
            for k, e in enumerate(listed):
                f.write("%d G%032x :%s\n" % (k + 5, k, e[0]))
        rest = sorted((e for e in entries if e not in listed), key=lambda e: e[0])
        for e in listed + rest:
            exp["INBOX"].append((to_crlf(e[1]), e[2], e[3], zone(e[3])))
        # Dovecot's own files and tmp/: not mail
        for junk in ("dovecot.index", "dovecot.index.log", "dovecot.index.cache",
                     "subscriptions", "maildirfolder"):
            with open(os.path.join(md, junk), "wb") as f:
                f.write(b"\x00binary index " + MARK.encode())
        write(inbox, "tmp", "%d.tmp.host" % base_t, b"Subject: half-delivered\n\nx\n", base_t)

        # Maildir++ folders
        for enc, box, n in ((".Sub.Folder", "Sub/Folder", 5), (".&AOk-t&AOk-", "\u00e9t\u00e9", 4),
                            (".Sent", "Sent", 3),
                            (".%s.&ZeVnLIqe-" % FOLDER_MARK, FOLDER_MARK + "/\u65e5\u672c\u8a9e", 2)):
            path = folder(os.path.join(md, enc), box)
            for i in range(n):
                ts = base_t + 500000 + i
                name = "%d.M%dP1.mailhost:2,%s" % (ts, i, "S" if i % 2 else "F")
                data = body(100 + i, box, i % 3)
                write(path, "cur", name, data, ts)
                exp[box].append((to_crlf(data), frozenset(["\\Seen" if i % 2 else "\\Flagged"]),
                                 ts, zone(ts)))
        # fs layout: DIR/Lists/dev/cur
        path = folder(os.path.join(md, "Lists", "dev"), "Lists/dev")
        for i in range(3):
            ts = base_t + 900000 + i
            data = body(200 + i, "Lists/dev", 0)
            write(path, "new", "%d.fs%d.host" % (ts, i), data, ts)
            exp["Lists/dev"].append((to_crlf(data), frozenset(), ts, zone(ts)))

    def build_mbox(self):
        self.mbox = os.path.join(self.src, "old.mbox")
        box = self.mbox_box = "Old mail/2015"
        self.expect[box] = []
        out = []
        rnd = random.Random(11)
        for i in range(20):
            lines = [b"From: m%d@example.org" % i, b"Subject: mbox %d %s" % (i, MARK.encode())]
            flags = set()
            if i % 3 == 0:
                lines.append(b"Status: RO")
                flags.add("\\Seen")
            elif i % 3 == 1:
                lines.append(b"Status: O")
            if i % 4 == 1:
                lines.append(b"X-Status: AF")
                flags |= {"\\Answered", "\\Flagged"}
            if i % 5 == 2:
                lines.append(b"X-Status: DT")
                flags |= {"\\Deleted", "\\Draft"}
            if i % 6 == 3:
                lines.append(b"X-Keywords: $Label2 Project")
                flags |= {"$Label2", "Project"}
            body = [b"", b"Hello %d" % i,
                    b"From the start of a line (mboxrd quotes it)",
                    b">From already quoted once", b">>From twice",
                    b"From someone Thu Jan  1 00:00:00 1970 (looks like a separator)",
                    b"Fromage is not a From line"]
            body += [b"filler %d %s" % (k, MARK.encode()) for k in range(rnd.randint(0, 20))]
            if i == 7:
                body.append(b"")    # the message ends with an empty line of its own
            original = b"\n".join(lines + body) + b"\n"
            if i % 2:
                original = original.replace(b"\n", b"\r\n")
            # mboxrd: one more '>' on every ^>*From  line
            quoted = re.sub(rb"(?m)^(>*From )", rb">\1", original)
            t = 1420070400 + i * 86400 * 17      # from 2015 over two years: DST both ways
            if i % 2:
                frm = time.strftime("From m%d@example.org %%a %%b %%e %%H:%%M:%%S %%Y +0530" % i,
                                    time.gmtime(t + 330 * 60)).encode()
                tz = "+0530"
            else:
                frm = time.strftime("From m%d@example.org %%a %%b %%e %%H:%%M:%%S %%Y" % i,
                                    time.localtime(t)).encode()
                tz = zone(t)
            nl = b"\r\n" if i % 2 else b"\n"
            out.append(frm + nl + quoted + nl)
            self.expect[box].append((to_crlf(original), frozenset(flags), t, tz))
        with open(self.mbox, "wb") as f:
            f.write(b"".join(out))

    # ---- checks --------------------------------------------------------------------
    def verify(self, boxes=None):
        got = self.listing()
        for box, want in self.expect.items():
            if boxes is not None and box not in boxes:
                continue
            check(box in got, "mailbox %r missing after import; have %r" % (box, list(got)))
            have = got[box]
            check(len(have) == len(want), "%s: %d messages, expected %d" % (
                box, len(have), len(want)))
            for (uid, size, t, tz, flags), (data, wflags, wt, wtz) in zip(have, want):
                check(size == len(data), "%s uid %d: size %d, expected %d" % (
                    box, uid, size, len(data)))
                check(flags == wflags, "%s uid %d: flags %s, expected %s" % (
                    box, uid, sorted(flags), sorted(wflags)))
                check(t == wt, "%s uid %d: internal date %d, expected %d" % (box, uid, t, wt))
                check(wtz is None or tz == wtz, "%s uid %d: zone %s, expected %s" % (
                    box, uid, tz, wtz))
                body = self.cat(box, uid)
                check(body == data, "%s uid %d: bytes differ:\n%r\nexpected\n%r" % (
                    box, uid, body[:300], data[:300]))
        return got

    # ---- tests ---------------------------------------------------------------------
    def usage_errors(self):
        s = self.s
        for args, what in (([], "no source"),
                           (["--maildir", self.src, "--mbox", self.src], "both sources"),
                           (["--mbox", self.src, "--mailbox", ""], "empty target"),
                           (["--mbox", self.src, "--mailbox", "a//b"], "bad target")):
            p = s.vault("import", "alice", *args)
            check(p.returncode == 2, "import %s: exit %d, expected 2: %s" % (
                what, p.returncode, err(p)))
        p = s.vault("import", "alice", "--backup", "x", "--maildir", self.src)
        check(p.returncode == 2, "import --backup accepted")
        p = s.run([s.vault_bin, "import", "--help"])
        check(p.returncode == 0 and b"--maildir" in p.stdout and b"--mbox" in p.stdout,
              "import --help")
        # a missing source is reported before any passphrase is asked for
        p = s.vault("import", "alice", "--maildir", self.s.path("nope"))
        check(p.returncode == 1 and b"nope" in p.stderr and b"passphrase" not in p.stderr,
              "missing Maildir: %d %s" % (p.returncode, err(p)))
        p = s.vault("import", "alice", "--mbox", self.s.path("nope.mbox"))
        check(p.returncode == 1 and b"nope.mbox" in p.stderr, "missing mbox: %s" % err(p))
        empty = self.s.path("empty-dir")
        os.makedirs(empty)
        p = s.vault("import", "alice", "--maildir", empty)
        check(p.returncode == 1 and b"no Maildir" in p.stderr, "empty dir: %s" % err(p))
        notmbox = self.s.path("not.mbox")
        with open(notmbox, "wb") as f:
            f.write(b"Subject: hello\n\nthis is one message, not an mbox\n")
        p = self.imp("--mbox", notmbox)
        check(p.returncode == 1 and b"not an mbox" in p.stderr, "not an mbox: %s" % err(p))
        p = s.vault("import", "nobody", "--mbox", notmbox, passlines=self.login())
        check(p.returncode == 1 and b"no such user" in p.stderr, "unknown user: %s" % err(p))

    def maildir_and_mbox(self):
        self.build_maildir()
        self.build_mbox()
        p = self.imp("--maildir", self.md)
        check(p.returncode == 0, "import --maildir: exit %d: %s" % (p.returncode, err(p)))
        check(p.stderr == b"", "import was not silent without a terminal: %s" % err(p))
        n_md = sum(len(v) for k, v in self.expect.items() if k != self.mbox_box)
        check(b"%d imported now" % n_md in p.stdout, "summary: %s" % p.stdout)
        p = self.imp("--mbox", self.mbox, "--mailbox", self.mbox_box)
        check(p.returncode == 0, "import --mbox: exit %d: %s" % (p.returncode, err(p)))
        check(b"20 imported now" in p.stdout, "mbox summary: %s" % p.stdout)
        got = self.verify()
        # nothing else: Dovecot's files and tmp/ were not imported
        total = sum(len(v) for v in got.values())
        check(total == sum(len(v) for v in self.expect.values()),
              "%d messages in the vault, expected %d" % (
                  total, sum(len(v) for v in self.expect.values())))
        check("Sub" not in got, "a parent folder was invented: %r" % list(got))

    def rerun_no_duplicates(self):
        before = self.listing()
        p = self.imp("--maildir", self.md)
        check(p.returncode == 0 and b" 0 imported now" in p.stdout,
              "re-run imported again: %s %s" % (p.stdout, err(p)))
        p = self.imp("--mbox", self.mbox, "--mailbox", self.mbox_box)
        check(p.returncode == 0 and b" 0 imported now" in p.stdout and
              b"20 already there" in p.stdout, "mbox re-run: %s %s" % (p.stdout, err(p)))
        check(self.listing() == before, "re-runs changed the vault")

    def bad_sources(self):
        """A bad folder name and an over-size message: named, exit 1, the rest in."""
        md = os.path.join(self.src, "Bad")
        for d in ("cur", ".Ok/cur", ".Bad&name/cur"):
            os.makedirs(os.path.join(md, d))
        with open(os.path.join(md, ".Ok", "cur", "1.a.host:2,S"), "wb") as f:
            f.write(b"Subject: fine\n\nfine\n")
        with open(os.path.join(md, ".Bad&name", "cur", "1.b.host:2,S"), "wb") as f:
            f.write(b"Subject: lost\n\nx\n")
        with open(os.path.join(md, "cur", "1.big.host:2,"), "wb") as f:
            f.write(b"Subject: big\n\n" + b"x" * 9000 + b"\n")
        with open(os.path.join(md, "cur", "2.small.host:2,"), "wb") as f:
            f.write(b"Subject: small\n\nsmall\n")
        small = self.s.path("small.conf")
        with open(self.s.conf) as f, open(small, "w") as g:
            g.write(f.read() + "\nmax_message_size = 4096\n")
        p = self.imp("--maildir", md, "--mailbox", "Bad import", conf=small)
        e = err(p)
        check(p.returncode == 1, "bad sources: exit %d: %s" % (p.returncode, e))
        check(".Bad&name" in e and "modified UTF-7" in e, "bad folder not named: %s" % e)
        check("1.big.host" in e and "max_message_size" in e, "big message not named: %s" % e)
        check(b"2 imported now" in p.stdout, "the good ones: %s" % p.stdout)
        got = self.listing()
        check(len(got.get("Bad import", [])) == 1 and len(got.get("Bad import/Ok", [])) == 1,
              "bad-source import: %r" % {k: len(v) for k, v in got.items()})

    def progress_on_tty(self):
        mb = os.path.join(self.src, "tty.mbox")
        with open(mb, "wb") as f:
            for i in range(30):
                f.write(b"From x Thu Jan  1 00:00:00 2015\nSubject: tty %d\n\nx\n\n" % i)
        code, shown = self.s.run_pty(
            [self.s.vault_bin, "-c", self.s.conf, "import", "alice", "--mbox", mb,
             "--mailbox", "TTY"], [("OTP", self.s.login(PASS, self.tok))])
        check(code == 0, "import on a terminal: exit %d: %s" % (code, shown))
        check(re.search(r"\rimport: 30 messages, [0-9.]+/[0-9.]+ MB \(100%\), [0-9]+ msg/s",
                        shown) is not None, "no progress line on the terminal: %r" % shown)
        check("30 imported now" in shown, "summary on the terminal: %r" % shown)

    def kill_and_resume(self):
        """SIGKILL midway, run again: every message exactly once. Sizes are unique per
        message, so the multiset of sizes proves no duplicate and nothing missing."""
        md = os.path.join(self.src, "Big")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(md, sub))
        n = 3000
        sizes = set()
        rnd = random.Random(5)
        for i in range(n):
            pad = (b"%d " % i) * 8
            raw = bytes(rnd.choice(b"abcdefghij klmnop") for _ in range(4000 + i))
            # newlines at fixed places: the stored size grows strictly with i
            filler = b"\n".join(raw[k:k + 76] for k in range(0, len(raw), 76))
            data = b"Subject: big %d\n\n" % i + pad + filler + b"\n"
            with open(os.path.join(md, "cur", "%d.M%d.host:2,S" % (1700000000 + i, i)), "wb") as f:
                f.write(data)
            sizes.add(len(to_crlf(data)))
        check(len(sizes) == n, "test bug: sizes not unique")

        def stored():
            p = self.s.vault("stats")
            m = re.search(rb"messages:\s+(\d+)", p.stdout)
            return int(m.group(1))

        base = stored()
        argv = [self.s.vault_bin, "-c", self.s.conf, "import", "alice", "--maildir", md,
                "--mailbox", "Big", "--passphrase-fd", "3"]
        r, w = os.pipe()
        os.write(w, (self.s.login(PASS, self.tok) + "\n").encode())
        os.close(w)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, pass_fds=(3,),
                                preexec_fn=(lambda: os.dup2(r, 3)) if r != 3 else None)
        os.close(r)
        deadline = time.time() + 300
        killed_at = None
        while time.time() < deadline and proc.poll() is None:
            c = stored() - base
            if c >= n // 3:
                proc.send_signal(signal.SIGKILL)
                killed_at = c
                break
            time.sleep(0.02)
        out, e = proc.communicate(timeout=60)
        sanitizer_check(argv, e)
        check(killed_at is not None, "import finished (%s) before it could be killed: "
              "make the source bigger" % proc.returncode)
        check(proc.returncode == -signal.SIGKILL, "not killed: %s" % proc.returncode)
        partial = stored() - base
        check(0 < partial < n, "after the kill: %d of %d stored" % (partial, n))
        p = self.imp("--maildir", md, "--mailbox", "Big")
        check(p.returncode == 0, "resume: exit %d: %s" % (p.returncode, err(p)))
        m = re.search(rb"(\d+) imported now, (\d+) already there", p.stdout)
        check(m is not None and int(m.group(1)) + int(m.group(2)) == n and
              int(m.group(2)) == partial, "resume summary %r (partial %d)" % (p.stdout, partial))
        got = self.listing()["Big"]
        check(len(got) == n, "Big: %d messages after resume, expected %d" % (len(got), n))
        check(sorted(x[1] for x in got) == sorted(sizes),
              "sizes differ: duplicates or missing messages")
        # order kept across the interruption (file-name order = size order here)
        check([x[1] for x in got] == sorted(sizes), "source order lost across the resume")
        for uid, size, _, _, _ in (got[0], got[partial - 1], got[partial], got[-1]):
            i = sorted(sizes).index(size)
            body = self.cat("Big", uid)
            check(body.startswith(b"Subject: big %d\r\n\r\n" % i) and len(body) == size,
                  "Big uid %d: wrong content" % uid)
        print("    killed after %d of %d committed; resumed: %s" % (
            partial, n, p.stdout.decode().strip()), flush=True)

    def rate(self):
        md = os.path.join(self.src, "Rate")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(md, sub))
        n = 1000
        line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n"
        body = line * (20480 // len(line))
        for i in range(n):
            with open(os.path.join(md, "cur", "%d.R%d.host:2,S" % (1700000000 + i, i)), "wb") as f:
                f.write(b"Subject: rate %d\r\n\r\n" % i + body[:20480 - 40])
        login = self.s.login(PASS, self.tok)     # the OTP is made outside the timing
        t = time.monotonic()
        p = self.s.vault("import", "alice", "--maildir", md, "--mailbox", "Rate",
                         passlines=[login])
        el = time.monotonic() - t
        check(p.returncode == 0 and b"%d imported now" % n in p.stdout, "rate import: %s" % err(p))
        # the fixed cost (start, login with Argon2id, unlock): the same command again,
        # which reads and hashes every file but stores nothing
        login = self.s.login(PASS, self.tok)
        t = time.monotonic()
        p = self.s.vault("import", "alice", "--maildir", md, "--mailbox", "Rate",
                         passlines=[login])
        el0 = time.monotonic() - t
        check(p.returncode == 0 and b" 0 imported now" in p.stdout, "rate re-run: %s" % err(p))
        print("    import rate: %d messages of 20 KiB in %.2f s = %.0f msg/s, %.1f MB/s "
              "(one process, login included, durable commit every 100); a re-run that "
              "only reads and skips takes %.2f s, so storing costs %.0f msg/s" % (
                  n, el, n / el, n * 20480 / el / 1e6, el0,
                  n / max(el - el0, 1e-3)), flush=True)

    def zero_knowledge(self):
        needles = [MARK.encode(), FOLDER_MARK.encode(), "\u00e9t\u00e9".encode(),
                   b"&AOk-t&AOk-", "\u65e5\u672c\u8a9e".encode(), b"&ZeVnLIqe-",
                   b"Sub/Folder", b"Lists/dev", b"Old mail", b"mailhost", b"old.mbox",
                   self.src.encode(), b"$Label1", b"Project"]
        found = []
        for dp, _, fns in os.walk(self.s.dir):
            for fn in fns:
                with open(os.path.join(dp, fn), "rb") as f:
                    data = f.read()
                for nd in needles:
                    if nd in data:
                        found.append((fn, nd))
        check(not found, "in clear in the data directory: %r" % found)
        # the scanner works: the source holds them
        with open(self.mbox, "rb") as f:
            check(MARK.encode() in f.read(), "control: marker not in the source")


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    t = T(sys.argv[1], sys.argv[2])
    run = Runner("import")
    try:
        run.run("usage_errors", t.usage_errors)
        if run.run("maildir_and_mbox", t.maildir_and_mbox):
            run.run("rerun_no_duplicates", t.rerun_no_duplicates)
        run.run("bad_sources", t.bad_sources)
        run.run("progress_on_tty", t.progress_on_tty)
        run.run("kill_and_resume", t.kill_and_resume)
        run.run("rate", t.rate)
        run.run("zero_knowledge", t.zero_knowledge)
    finally:
        t.s.cleanup()
    run.finish()


if __name__ == "__main__":
    main()
