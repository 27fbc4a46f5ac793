#!/usr/bin/env python3
"""End-to-end tests of sealmail-vault and sealmail-keymgr: a real vault in a temp dir,
real LMDB, the real programs. Usage: test_cli.py SEALMAIL-VAULT SEALMAIL-KEYMGR"""
import os
import re
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sealmail_cli import Runner, Sealmail, check, dump_records, set_config  # noqa: E402

PASS_A = "tulip anchor granite whistle"
PASS_A2 = "violet harbour copper lantern"
PASS_A3 = "maple orbit velvet canyon"
PASS_B = "quiet meadow silver engine"


def err(p):
    return p.stderr.decode(errors="replace")


def msg_text_lf():
    return (b"From: Alice Example <alice@example.org>\n"
            b"To: bob@example.org\n"
            b"Subject: plain LF message\n"
            b"Message-ID: <lf-1@example.org>\n"
            b"\n"
            b"Hello Bob,\nthis message uses bare LF line endings.\n")


def msg_text_crlf():
    return (b"From: alice@example.org\r\nTo: bob@example.org\r\n"
            b"Subject: CRLF message\r\nMessage-ID: <crlf-1@example.org>\r\n\r\n"
            b"Line one\r\nLine two\r\n.\r\n..dot-stuffed looking line\r\n")


def to_crlf(b):
    """What the store keeps of mail from outside: every bare LF becomes CRLF
    (RFC 5322 2.3); a CR not followed by LF stays."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", b)


def msg_binary():
    head = (b"From: x@example.org\r\nSubject: 8bit \xc3\xa9t\xc3\xa9\r\n"
            b"Content-Transfer-Encoding: binary\r\n\r\n")
    return head + bytes(range(256)) * 8 + b"\x00\r\n\xff\n"


def msg_large(n):
    import random
    rnd = random.Random(n)
    body = bytes(rnd.getrandbits(8) for _ in range(n))
    return b"Subject: large %d\r\n\r\n" % n + body


class T:
    def __init__(self, vault_bin, keymgr_bin):
        self.s = Sealmail(vault_bin, keymgr_bin, "cli")
        self.tok1 = self.s.path("alice-1.token")
        self.tok2 = self.s.path("alice-2.token")
        self.tok3 = self.s.path("alice-3.token")
        self.pass_a = PASS_A
        self.msgs = {}          # uid -> bytes, alice's INBOX
        self.recovery = None

    # ---- help and usage -----------------------------------------------------------
    def help_texts(self):
        s = self.s
        for prog in (s.vault_bin, s.keymgr_bin):
            p = s.run([prog, "--help"])
            check(p.returncode == 0 and b"Usage:" in p.stdout, "%s --help" % prog)
        for cmd in (["init"], ["deliver"], ["stats"], ["verify"], ["backup"], ["cat"],
                    ["list"], ["mkdir"], ["flag"]):
            p = s.run([s.vault_bin] + cmd + ["--help"])
            check(p.returncode == 0 and cmd[0].encode() in p.stdout,
                  "sealmail-vault %s --help: %s" % (cmd[0], err(p)))
        for cmd in (["user", "add"], ["user", "list"], ["user", "remove"], ["token", "add"],
                    ["token", "remove"], ["token", "otp"], ["passwd"], ["recover"],
                    ["rotate"], ["status"], ["user"], ["token"]):
            p = s.run([s.keymgr_bin] + cmd + ["--help"])
            check(p.returncode == 0 and cmd[-1].encode() in p.stdout,
                  "sealmail-keymgr %s --help: %s" % (" ".join(cmd), err(p)))
        p = s.run([s.keymgr_bin, "--help"])
        check(b"daemon [--once]" in p.stdout and b"retire NAME EPOCH" in p.stdout,
              "keymgr help lists the daemon and retire commands")

    def usage_errors(self):
        s = self.s
        cases = [
            [s.vault_bin, "frobnicate"],
            [s.vault_bin],
            [s.vault_bin, "-c", s.conf, "cat", "alice"],
            [s.vault_bin, "-c", s.conf, "cat", "alice", "notanumber", "--passphrase-fd", "0"],
            [s.vault_bin, "-c", s.conf, "stats", "extra"],
            [s.vault_bin, "-c", s.conf, "stats", "--mailbox", "X"],
            [s.keymgr_bin, "frobnicate"],
            [s.keymgr_bin, "user"],
            [s.keymgr_bin, "user", "frob"],
            [s.keymgr_bin, "-c", s.conf, "user", "add", "carol"],            # no token
            [s.keymgr_bin, "-c", s.conf, "user", "add", "carol", "--soft-token", "a",
             "--yubikey-aes", "00" * 16],
            [s.keymgr_bin, "-c", s.conf, "user", "add", "carol", "--yubikey-aes", "00"],
            [s.keymgr_bin, "-c", s.conf, "rotate"],
            [s.keymgr_bin, "-c", s.conf, "token", "remove", "alice", "x"],
            [s.keymgr_bin, "-c", s.conf, "user", "list", "--yes"],
        ]
        for argv in cases:
            p = s.run(argv)
            check(p.returncode == 2, "%s: exit %d, expected 2 (usage); stderr %s" %
                  (argv[1:], p.returncode, err(p)))
            check(p.stderr.strip() != b"", "%s: usage error without a message" % argv[1:])
        # deliver's usage errors are sysexits EX_USAGE (64) for the MTA
        p = s.run([s.vault_bin, "-c", s.conf, "deliver"])
        check(p.returncode == 64, "deliver without user: exit %d, expected 64" % p.returncode)

    def no_passphrase_on_argv(self):
        s = self.s
        secret = "hunter2-very-secret-passphrase"
        for argv in ([s.keymgr_bin, "-c", s.conf, "user", "add", "carol", "--passphrase",
                      secret, "--soft-token", s.path("x.token")],
                     [s.keymgr_bin, "-c", s.conf, "passwd", "alice", "--passphrase=" + secret],
                     [s.vault_bin, "-c", s.conf, "cat", "alice", "1", "--passphrase-fd",
                      secret]):
            p = s.run(argv)
            check(p.returncode == 2, "%s: exit %d, expected 2" % (argv[3:], p.returncode))
            check(secret.encode() not in p.stderr + p.stdout,
                  "the passphrase given on argv was echoed: %s" % err(p))

    # ---- config -------------------------------------------------------------------
    def init_and_config(self):
        s = self.s
        check("sealmail.conf" in s.init_stdout, "init does not say where the config is")
        check(os.path.exists(os.path.join(s.dir, "data.mdb")) or
              any(f.endswith(".mdb") for f in os.listdir(s.dir)), "no LMDB files after init")
        p = s.vault("stats")
        check(p.returncode == 0 and b"users:" in p.stdout, "stats on a new vault: %s" % err(p))
        # init refuses to clobber an existing vault
        p = s.run([s.vault_bin, "init", s.dir])
        check(p.returncode != 0, "init over an existing vault succeeded")

    def config_errors_name_the_line(self):
        s = self.s
        bad = s.path("bad.conf")
        with open(s.conf, encoding="utf-8") as f:
            good = f.read()
        n = good.count("\n") + 1
        for extra, what in (("bogus_setting = 1", "unknown key"),
                            ("argon2_memory = 1024", "below the OWASP minimum"),
                            ("max_connections = many", "not a number"),
                            ("this line has no equals sign", "syntax")):
            with open(bad, "w", encoding="utf-8") as f:
                f.write(good + "\n" + extra + "\n")
            line = n + 1
            for prog in ([s.keymgr_bin, "-c", bad, "user", "list"],
                         [s.vault_bin, "-c", bad, "stats"]):
                p = s.run(prog)
                check(p.returncode == 1, "%s with %s: exit %d" % (prog[3:], what, p.returncode))
                check(("bad.conf:%d" % line).encode() in p.stderr,
                      "config error (%s) does not name bad.conf:%d: %s" % (what, line, err(p)))
        p = s.run([s.keymgr_bin, "-c", s.path("missing.conf"), "user", "list"])
        check(p.returncode == 1 and b"missing.conf" in p.stderr,
              "missing config not named: %s" % err(p))
        # $SEALMAIL_CONF is the default for -c
        env = dict(os.environ, SEALMAIL_CONF=s.conf)
        p = s.run([s.keymgr_bin, "user", "list"], env=env)
        check(p.returncode == 0, "SEALMAIL_CONF not honoured: %s" % err(p))
        # deliver: a broken config is a temporary failure for the MTA, never a bounce
        p = s.run([s.vault_bin, "-c", s.path("missing.conf"), "deliver", "alice"],
                  stdin=msg_text_lf())
        check(p.returncode == 75, "deliver with a missing config: exit %d, expected 75" %
              p.returncode)

    # ---- enrolment ------------------------------------------------------------------
    def passphrase_policy(self):
        s = self.s
        for weak, why in (("tiny-pw", b"too short"), ("password1234", b"common"),
                          ("Password123456!", b"common"), ("qwertyuiopasdf", b"keyboard"),
                          ("abcabcabcabcabc", b"repeated"), ("iloveyouforever", b"common"),
                          ("correcthorsebatterystaple", b"common")):
            p = s.keymgr("user", "add", "weakling", "--soft-token", s.path("weak.token"),
                         passlines=[weak])
            check(p.returncode == 1, "weak passphrase %r accepted (exit %d)" %
                  (weak, p.returncode))
            check(why in p.stderr, "weak passphrase %r: message %r lacks %r" %
                  (weak, err(p), why))
            check(weak.encode() not in p.stderr, "policy error echoes the passphrase")
            check(not os.path.exists(s.path("weak.token")), "token file left after refusal")
        p = s.keymgr("user", "list")
        check(b"weakling" not in p.stdout, "refused user was created")

    def no_passphrase_source(self):
        s = self.s
        p = s.keymgr("user", "add", "carol", "--soft-token", s.path("carol.token"))
        check(p.returncode == 1 and b"no passphrase source" in p.stderr,
              "no passphrase source: exit %d %s" % (p.returncode, err(p)))
        check(not os.path.exists(s.path("carol.token")), "token file written without user")

    def user_add(self):
        s = self.s
        p = s.keymgr("user", "add", "alice", "--soft-token", self.tok1, "--label", "laptop",
                     passlines=[PASS_A])
        check(p.returncode == 0, "user add alice: %s" % err(p))
        check(p.stderr == b"", "user add printed on stderr while succeeding: %s" % err(p))
        out = p.stdout.decode()
        check("write this down" in out.lower(), "no 'write this down' text")
        from sealmail_cli import parse_recovery
        self.recovery = parse_recovery(out)
        check(PASS_A not in out and PASS_A.encode() not in p.stderr, "passphrase echoed")
        st = os.stat(self.tok1)
        check(stat.S_IMODE(st.st_mode) == 0o600, "token file mode %o" % st.st_mode)
        text = open(self.tok1).read()
        for key in ("aes_key", "uid", "public_id", "session_ctr", "use_ctr", "user"):
            check(re.search(r"^%s = \S+" % key, text, re.M), "token file lacks %s" % key)
        check(re.search(r"^session_ctr = 1$", text, re.M) and
              re.search(r"^use_ctr = 0$", text, re.M), "counters do not start at 1/0")
        pub = re.search(r"^public_id = (\S+)$", text, re.M).group(1)
        check(not pub.startswith("cc"), "public id starts with a zero byte")
        # the same user again, and an existing token file, are refused
        p = s.keymgr("user", "add", "alice", "--soft-token", s.path("other.token"),
                     passlines=[PASS_A])
        check(p.returncode == 1 and b"already exists" in p.stderr, "duplicate user: %s" % err(p))
        before = open(self.tok1, "rb").read()
        p = s.keymgr("user", "add", "bob", "--soft-token", self.tok1, passlines=[PASS_B])
        check(p.returncode == 1 and b"refusing to overwrite" in p.stderr,
              "existing token file: %s" % err(p))
        check(open(self.tok1, "rb").read() == before, "token file was overwritten")
        check(b"bob" not in s.keymgr("user", "list").stdout, "bob created despite the error")
        # a YubiKey spec (no OTP needed to enrol)
        p = s.keymgr("user", "add", "yuki", "--yubikey-aes", "0123456789abcdef0123456789abcdef",
                     "--yubikey-uid", "a1b2c3d4e5f6", "--yubikey-id", "vvcccccccccb",
                     passlines=["rainbow saddle pepper kettle"])
        check(p.returncode == 0, "user add with --yubikey-*: %s" % err(p))

    def token_otp(self):
        s = self.s
        text0 = open(self.tok1).read()
        pub = re.search(r"^public_id = (\S+)$", text0, re.M).group(1)
        o1, o2 = s.otp(self.tok1), s.otp(self.tok1)
        check(o1 != o2, "two OTPs are equal")
        check(o1.startswith(pub) and o2.startswith(pub), "OTP does not start with public id")
        text = open(self.tok1).read()
        check(re.search(r"^use_ctr = 2$", text, re.M), "use counter did not advance to 2")
        check(stat.S_IMODE(os.stat(self.tok1).st_mode) == 0o600, "mode changed by token otp")
        # wrap: use counter 255 -> session + 1, use 0
        wrap = s.path("wrap.token")
        with open(wrap, "w") as f:
            f.write(re.sub(r"^use_ctr = \d+$", "use_ctr = 255", text, flags=re.M))
        os.chmod(wrap, 0o600)
        s.otp(wrap)
        t2 = open(wrap).read()
        check(re.search(r"^session_ctr = 2$", t2, re.M) and re.search(r"^use_ctr = 0$", t2, re.M),
              "counter wrap: %s" % t2)
        # a broken token file names the line
        with open(wrap, "a") as f:
            f.write("nonsense = 1\n")
        p = s.run([s.keymgr_bin, "token", "otp", wrap])
        check(p.returncode == 1 and b"line" in p.stderr, "bad token file: %s" % err(p))
        p = s.run([s.keymgr_bin, "token", "otp", s.path("nonexistent.token")])
        check(p.returncode == 1, "token otp on a missing file succeeded")

    def terminal_prompts(self):
        """Without --passphrase-fd on a terminal: no-echo prompts, a repeat for new
        passphrases, and a confirmation before removing a user."""
        s = self.s
        pw = "orange kettle brave lighthouse"
        tok = s.path("tty.token")
        code, shown = s.run_pty([s.keymgr_bin, "-c", s.conf, "user", "add", "ttyuser",
                                 "--soft-token", tok],
                                [("New passphrase:", pw), ("Repeat it:", pw)])
        check(code == 0, "user add on a terminal: exit %d\n%s" % (code, shown))
        check(pw not in shown, "the passphrase was echoed on the terminal")
        check("RECOVERY KEY" in shown, "no recovery key shown on the terminal")
        code, shown = s.run_pty([s.keymgr_bin, "-c", s.conf, "user", "add", "ttyuser2",
                                 "--soft-token", s.path("tty2.token")],
                                [("New passphrase:", pw), ("Repeat it:", pw + "x")])
        check(code == 1 and "differ" in shown, "mismatched repeat: exit %d %s" % (code, shown))
        line = s.login(pw, tok)
        code, shown = s.run_pty([s.vault_bin, "-c", s.conf, "list", "ttyuser"],
                                [("followed by an OTP", line)])
        check(code == 0 and 'mailbox "INBOX"' in shown, "list on a terminal: %d %s" %
              (code, shown))
        check(pw not in shown and line[-44:] not in shown, "login line echoed")
        code, shown = s.run_pty([s.keymgr_bin, "-c", s.conf, "user", "remove", "ttyuser"],
                                [("[y/N]", "n")])
        check(code == 1 and b"ttyuser" in s.keymgr("user", "list").stdout,
              "answering no still removed the user (%d)" % code)
        code, shown = s.run_pty([s.keymgr_bin, "-c", s.conf, "user", "remove", "ttyuser"],
                                [("[y/N]", "y")])
        check(code == 0 and b"ttyuser" not in s.keymgr("user", "list").stdout,
              "answering yes did not remove the user (%d): %s" % (code, shown))

    # ---- delivery and reading ------------------------------------------------------------
    def deliver_and_cat(self):
        s = self.s
        bodies = [msg_text_lf(), msg_text_crlf(), msg_binary(), msg_large(65536 - 22),
                  msg_large(200000), b"x"]
        for b in bodies:
            p = s.deliver("alice", b)
            check(p.returncode == 0, "deliver: exit %d %s" % (p.returncode, err(p)))
            check(p.stdout == b"" and p.stderr == b"", "deliver is not silent on success")
        boxes = s.list("alice", PASS_A, self.tok1)
        check("INBOX" in boxes, "no INBOX in list: %r" % boxes)
        for box in ("Drafts", "Sent", "Trash", "Junk", "Archive"):
            check(box in boxes, "default mailbox %s missing" % box)
        inbox = boxes["INBOX"]["msgs"]
        check(len(inbox) == len(bodies), "INBOX has %d messages, expected %d" %
              (len(inbox), len(bodies)))
        for uid, b in zip(sorted(inbox), map(to_crlf, bodies)):
            check(inbox[uid]["size"] == len(b), "uid %d size %d != %d" %
                  (uid, inbox[uid]["size"], len(b)))
            got = s.cat("alice", PASS_A, self.tok1, uid)
            check(got == b, "cat uid %d: %d bytes differ from the %d delivered" %
                  (uid, len(got), len(b)))
            self.msgs[uid] = b

    def deliver_errors(self):
        s = self.s
        p = s.deliver("nobody-here", msg_text_lf())
        check(p.returncode == 67 and b"nobody-here" in p.stderr,
              "deliver to unknown user: exit %d %s" % (p.returncode, err(p)))
        p = s.deliver("alice", b"")
        check(p.returncode == 65, "empty message: exit %d" % p.returncode)
        small = s.path("small.conf")
        with open(s.conf) as f, open(small, "w") as g:
            g.write(f.read())
        set_config(small, {"max_message_size": "4K"})
        p = s.deliver("alice", b"Subject: big\r\n\r\n" + b"y" * 10000, conf=small)
        check(p.returncode == 65 and b"too big" in p.stderr,
              "over-size message: exit %d %s" % (p.returncode, err(p)))
        boxes = s.list("alice", PASS_A, self.tok1)
        check(len(boxes["INBOX"]["msgs"]) == len(self.msgs), "a refused message was stored")

    def deliver_trace(self):
        # --from/--rcpt: the trace fields LMTP adds (vault/trace.c, one copy for both),
        # not counted against max_message_size: a 4 KiB message fits a 4K limit.
        s = self.s
        small = s.path("small.conf")
        set_config(small, {"max_message_size": "4K", "hostname": "cli.example"})
        head = b"Subject: traced\r\n\r\n"
        body = head + b"t" * (4096 - len(head) - 2) + b"\r\n"
        p = s.vault("deliver", "alice", "--from", "sender@example.org", "--rcpt",
                    "alice+box@example.org", stdin=body, conf=small)
        check(p.returncode == 0, "deliver --from/--rcpt of exactly 4K: exit %d %s" %
              (p.returncode, err(p)))
        p = s.vault("deliver", "alice", "--from", "", stdin=b"Subject: null sender\r\n\r\nx\r\n")
        check(p.returncode == 0, "deliver --from '': exit %d %s" % (p.returncode, err(p)))
        p = s.vault("deliver", "alice", "--from", "x" * 400, stdin=b"x")
        check(p.returncode == 64, "over-long --from: exit %d" % p.returncode)
        p = s.vault("stats", "--from", "a@b")
        check(p.returncode == 2, "--from on stats: exit %d" % p.returncode)
        inbox = s.list("alice", PASS_A, self.tok1)["INBOX"]["msgs"]
        uids = sorted(set(inbox) - set(self.msgs))
        check(len(uids) == 2, "new uids %r" % uids)
        got = s.cat("alice", PASS_A, self.tok1, uids[0])
        m = re.match(rb"Return-Path: <sender@example.org>\r\nDelivered-To: <alice\+box@example.org>\r\n"
                     rb"Received: by cli.example \(sealmail\) with local\r\n\tfor <alice\+box@example.org>; "
                     rb"[^\r\n]+\r\n", got)
        check(m is not None, "trace fields: %r" % got[:300])
        check(got[m.end():] == body, "traced body differs")
        self.msgs[uids[0]] = got
        got = s.cat("alice", PASS_A, self.tok1, uids[1])
        check(got.startswith(b"Return-Path: <>\r\nDelivered-To: <alice>\r\n"), "null sender: %r" % got[:200])
        check(got.endswith(b"\r\n\r\nSubject: null sender\r\n\r\nx\r\n") or
              got.endswith(b"Subject: null sender\r\n\r\nx\r\n"), "null sender body: %r" % got)
        self.msgs[uids[1]] = got

    def cat_errors(self):
        s = self.s
        p = s.vault("cat", "alice", "999", passlines=[s.login(PASS_A, self.tok1)])
        check(p.returncode == 1 and b"999" in p.stderr, "cat missing uid: %s" % err(p))
        p = s.vault("cat", "alice", "1", "--mailbox", "NoSuchBox",
                    passlines=[s.login(PASS_A, self.tok1)])
        check(p.returncode == 1 and b"no such mailbox" in p.stderr, "cat bad mailbox: %s" % err(p))
        p = s.vault("cat", "ghost", "1", passlines=[s.login(PASS_A, self.tok1)])
        check(p.returncode == 1 and b"no such user" in p.stderr, "cat unknown user: %s" % err(p))
        p = s.vault("cat", "alice", "1")
        check(p.returncode == 1 and b"no passphrase source" in p.stderr,
              "cat without passphrase source: %s" % err(p))

    def replayed_otp_refused(self):
        s = self.s
        line = s.login(PASS_A, self.tok1)
        uid = min(self.msgs)
        p = s.vault("cat", "alice", str(uid), passlines=[line])
        check(p.returncode == 0 and p.stdout == self.msgs[uid], "first use of OTP: %s" % err(p))
        p = s.vault("cat", "alice", str(uid), passlines=[line])
        check(p.returncode != 0 and p.stdout == b"", "replayed OTP accepted")
        check(b"replay" in p.stderr.lower(), "replay message unclear: %s" % err(p))
        check(line[-44:].encode() not in p.stderr, "the OTP is echoed in the error")

    def wrong_passphrase_refused(self):
        s = self.s
        p = s.vault("cat", "alice", "1", passlines=[s.login("not the right passphrase", self.tok1)])
        check(p.returncode == 1 and p.stdout == b"", "wrong passphrase accepted")
        check(b"wrong passphrase" in p.stderr, "wrong passphrase message: %s" % err(p))
        p = s.vault("cat", "alice", "1", passlines=[PASS_A])
        check(p.returncode == 1 and b"OTP" in p.stderr, "missing OTP: %s" % err(p))
        p = s.vault("cat", "alice", "1", passlines=[PASS_A + "c" * 44])
        check(p.returncode == 1, "forged OTP accepted")
        # a good login still works afterwards
        check(s.cat("alice", PASS_A, self.tok1, 1) == self.msgs[1], "login after failures")

    # ---- tokens, passwd, recovery ---------------------------------------------------------
    def second_token(self):
        s = self.s
        p = s.keymgr("token", "add", "alice", "--soft-token", self.tok2, "--label", "phone",
                     passlines=[s.login(PASS_A, self.tok1)])
        check(p.returncode == 0, "token add: %s" % err(p))
        check(stat.S_IMODE(os.stat(self.tok2).st_mode) == 0o600, "second token file mode")
        check(s.cat("alice", PASS_A, self.tok2, 1) == self.msgs[1], "login with token 2")
        check(s.cat("alice", PASS_A, self.tok1, 1) == self.msgs[1], "token 1 after token 2")
        p = s.keymgr("status", "alice")
        check(p.returncode == 0 and b"tokens:           2" in p.stdout, "status tokens: %s" %
              p.stdout.decode())
        # token add with only a passphrase (no OTP) is refused
        p = s.keymgr("token", "add", "alice", "--soft-token", s.path("t9.token"),
                     passlines=[PASS_A])
        check(p.returncode == 1 and not os.path.exists(s.path("t9.token")),
              "token add without OTP: %s" % err(p))

    def passwd(self):
        s = self.s
        # adopt every delivered message first (a session does that), then the message
        # records must not change at all across passwd
        s.list("alice", PASS_A, self.tok1)
        before = {db: s.mdb_dump(db) for db in ("msg", "chunk")}
        check(len(dump_records(before["msg"])) >= len(self.msgs), "msg dump is empty")
        # weak new passphrase refused, old one still valid
        p = s.keymgr("passwd", "alice", passlines=[s.login(PASS_A, self.tok1), "short"])
        check(p.returncode == 1 and b"too short" in p.stderr, "weak new passphrase: %s" % err(p))
        p = s.keymgr("passwd", "alice", passlines=[s.login(PASS_A, self.tok1), PASS_A2])
        check(p.returncode == 0, "passwd: %s" % err(p))
        p = s.vault("cat", "alice", "1", passlines=[s.login(PASS_A, self.tok1)])
        check(p.returncode == 1 and b"wrong passphrase" in p.stderr,
              "old passphrase still works after passwd: %s" % err(p))
        for tok in (self.tok1, self.tok2):
            check(s.cat("alice", PASS_A2, tok, 1) == self.msgs[1], "new passphrase with %s" % tok)
        after = {db: s.mdb_dump(db) for db in ("msg", "chunk")}
        for db in ("msg", "chunk"):
            check(dump_records(before[db]) == dump_records(after[db]),
                  "passwd changed records in db %s (mail must not be re-encrypted)" % db)
        self.pass_a = PASS_A2

    def token_remove_and_recover(self):
        s = self.s
        p = s.keymgr("status", "alice")
        idx = re.findall(r"^\s+\[(\d+)\] ", p.stdout.decode(), re.M)
        check(len(idx) == 2, "status lists %d tokens" % len(idx))
        # remove token 1 (the first) with token 2's OTP
        p = s.keymgr("token", "remove", "alice", idx[0],
                     passlines=[s.login(self.pass_a, self.tok2)])
        check(p.returncode == 0, "token remove: %s" % err(p))
        p = s.vault("cat", "alice", "1", passlines=[s.login(self.pass_a, self.tok1)])
        check(p.returncode == 1, "removed token still logs in")
        p = s.keymgr("token", "remove", "alice", "7", passlines=[s.login(self.pass_a, self.tok2)])
        check(p.returncode == 1 and b"no token 7" in p.stderr,
              "removing a missing token: %s" % err(p))
        p = s.keymgr("token", "remove", "alice", idx[1], passlines=[s.login(self.pass_a, self.tok2)])
        check(p.returncode == 1 and b"last token" in p.stderr,
              "removing the last token: %s" % err(p))
        # wrong recovery key
        bad = "AAAAA-" + self.recovery[6:] if not self.recovery.startswith("AAAAA") else \
            "BBBBB-" + self.recovery[6:]
        p = s.keymgr("recover", "alice", "--soft-token", self.tok3, passlines=[bad, PASS_A3])
        check(p.returncode == 1 and not os.path.exists(self.tok3),
              "wrong recovery key accepted: %s" % err(p))
        # the user lost token 2 and the passphrase: recover
        p = s.keymgr("recover", "alice", "--soft-token", self.tok3,
                     passlines=[self.recovery, PASS_A3])
        check(p.returncode == 0, "recover: %s" % err(p))
        check(self.recovery.encode() not in p.stdout + p.stderr, "recovery key echoed")
        p = s.keymgr("status", "alice")
        check(b"tokens:           1" in p.stdout, "old tokens not dropped:\n%s" %
              p.stdout.decode())
        p = s.vault("cat", "alice", "1", passlines=[s.login(self.pass_a, self.tok2)])
        check(p.returncode == 1, "old token works after recovery")
        p = s.vault("cat", "alice", "1", passlines=[s.login(PASS_A3, self.tok2)])
        check(p.returncode == 1, "old token with new passphrase works after recovery")
        self.pass_a = PASS_A3
        for uid, b in self.msgs.items():
            check(s.cat("alice", PASS_A3, self.tok3, uid) == b, "uid %d after recovery" % uid)

    # ---- listing, status, rotation -------------------------------------------------------
    def user_list_status(self):
        s = self.s
        p = s.keymgr("user", "list")
        check(p.returncode == 0, "user list: %s" % err(p))
        lines = {l.split()[0]: l.split() for l in p.stdout.decode().splitlines()[1:] if l}
        check("alice" in lines and "yuki" in lines, "user list: %s" % p.stdout.decode())
        check(lines["alice"][-1] == str(len(self.msgs)), "alice's message count: %s" %
              lines["alice"])
        p = s.keymgr("status")
        out = p.stdout.decode()
        check(p.returncode == 0 and "user alice" in out and "user yuki" in out, out)
        for field in ("current epoch:", "next rotation:", "pending re-wrap:", "messages:"):
            check(field in out, "status lacks %r" % field)
        p = s.keymgr("status", "ghost")
        check(p.returncode == 1 and b"no such user" in p.stderr, "status ghost: %s" % err(p))

    def rotate(self):
        s = self.s
        p = s.keymgr("rotate", "alice")
        check(p.returncode == 0 and b"not due" in p.stdout, "rotate not due: %s %s" %
              (p.stdout.decode(), err(p)))
        p = s.keymgr("rotate", "alice", "--force")
        check(p.returncode == 0 and b"epoch 2" in p.stdout, "rotate --force: %s %s" %
              (p.stdout.decode(), err(p)))
        p = s.keymgr("status", "alice")
        check(re.search(rb"current epoch:\s+2", p.stdout), "status after rotate: %s" %
              p.stdout.decode())
        m = re.search(rb"pending re-wrap:\s+(\d+)", p.stdout)
        check(m and int(m.group(1)) == len(self.msgs),
              "pending re-wrap after rotation: %s" % p.stdout.decode())
        # a session (list) re-wraps the old data keys to the new epoch
        s.list("alice", self.pass_a, self.tok3)
        p = s.keymgr("status", "alice")
        check(re.search(rb"pending re-wrap:\s+0 ", p.stdout),
              "pending re-wrap after a session: %s" % p.stdout.decode())
        newmsg = b"Subject: after rotation\r\n\r\nsealed to epoch 2\r\n"
        p = s.deliver("alice", newmsg)
        check(p.returncode == 0, "deliver after rotation: %s" % err(p))
        boxes = s.list("alice", self.pass_a, self.tok3)
        uid = max(boxes["INBOX"]["msgs"])
        self.msgs[uid] = newmsg
        for u, b in self.msgs.items():
            check(s.cat("alice", self.pass_a, self.tok3, u) == b, "uid %d after rotation" % u)
        p = s.keymgr("rotate", "--all", "--force")
        check(p.returncode == 0 and b"alice: rotated" in p.stdout and b"yuki: rotated" in p.stdout,
              "rotate --all: %s %s" % (p.stdout.decode(), err(p)))
        for u, b in self.msgs.items():
            check(s.cat("alice", self.pass_a, self.tok3, u) == b, "uid %d after 2nd rotation" % u)

    def mkdir_flag(self):
        s = self.s
        p = s.vault("mkdir", "alice", "Projects/2026", passlines=[s.login(self.pass_a, self.tok3)])
        check(p.returncode == 0, "mkdir: %s" % err(p))
        p = s.vault("mkdir", "alice", "Projects/2026", passlines=[s.login(self.pass_a, self.tok3)])
        check(p.returncode == 1 and b"exists" in p.stderr, "mkdir twice: %s" % err(p))
        uid = min(self.msgs)
        p = s.vault("flag", "alice", str(uid), "+\\Seen", "+$Important",
                    passlines=[s.login(self.pass_a, self.tok3)])
        check(p.returncode == 0, "flag: %s" % err(p))
        boxes = s.list("alice", self.pass_a, self.tok3)
        check("Projects/2026" in boxes, "mailbox not listed: %r" % list(boxes))
        fl = boxes["INBOX"]["msgs"][uid]["flags"]
        check("\\Seen" in fl and "$Important" in fl, "flags %r" % fl)
        p = s.vault("flag", "alice", str(uid), "--", "-$Important",
                    passlines=[s.login(self.pass_a, self.tok3)])
        check(p.returncode == 0, "flag remove: %s" % err(p))
        fl = s.list("alice", self.pass_a, self.tok3)["INBOX"]["msgs"][uid]["flags"]
        check(fl == ["\\Seen"], "flags after removal %r" % fl)
        p = s.vault("flag", "alice", str(uid), "+bad(keyword",
                    passlines=[s.login(self.pass_a, self.tok3)])
        check(p.returncode == 2, "bad keyword accepted")

    # ---- integrity and backup --------------------------------------------------------------
    def verify_backup(self):
        s = self.s
        p = s.vault("verify")
        check(p.returncode == 0, "verify: %s" % err(p))
        dest = s.path("backup1")
        p = s.vault("backup", dest)
        check(p.returncode == 0, "backup: %s" % err(p))
        p = s.vault("verify", "--backup", dest)
        check(p.returncode == 0, "verify --backup: %s" % err(p))
        # a restored copy opens and reads back byte-exact
        restored = s.path("restored.conf")
        with open(s.conf) as f, open(restored, "w") as g:
            g.write(f.read())
        set_config(restored, {"data_dir": dest})
        p = s.vault("verify", conf=restored)
        check(p.returncode == 0, "verify of the restored copy: %s" % err(p))
        uid = min(self.msgs)
        p = s.vault("cat", "alice", str(uid), conf=restored,
                    passlines=[s.login(self.pass_a, self.tok3)])
        check(p.returncode == 0 and p.stdout == self.msgs[uid], "cat from backup: %s" % err(p))
        raw = open(os.path.join(dest, "data.mdb"), "rb").read()
        check(b"Subject" not in raw, "plaintext 'Subject' found in the backup")
        p = s.vault("backup", dest)
        check(p.returncode != 0, "backup over an existing backup succeeded")
        # tampering: flip one byte inside a message record of a copy of the store;
        # verify (no keys) must fail and name the broken record
        import shutil
        copy = s.path("tampered")
        shutil.copytree(dest, copy)
        recs = dump_records(s.run(["mdb_dump", "-s", "msg", copy]).stdout)
        val = bytes.fromhex(next(iter(recs.values())))
        path = os.path.join(copy, "data.mdb")
        raw = bytearray(open(path, "rb").read())
        pos = raw.find(val)
        check(pos >= 0, "record not found in data.mdb")
        raw[pos + len(val) // 2] ^= 0x01
        open(path, "wb").write(bytes(raw))
        tconf = s.path("tampered.conf")
        with open(s.conf) as f, open(tconf, "w") as g:
            g.write(f.read())
        set_config(tconf, {"data_dir": copy})
        p = s.vault("verify", conf=tconf)
        check(p.returncode == 1 and b"broken" in p.stderr and b"msg" in p.stderr,
              "verify of a tampered store: exit %d %s" % (p.returncode, err(p)))
        p = s.vault("verify", "--backup", copy)
        check(p.returncode == 1 and b"broken" in p.stderr,
              "verify --backup of a tampered backup: exit %d %s" % (p.returncode, err(p)))

    def user_remove(self):
        s = self.s
        p = s.keymgr("user", "remove", "yuki")
        check(p.returncode == 2 and b"--yes" in p.stderr, "remove without --yes: %s" % err(p))
        p = s.keymgr("user", "remove", "yuki", "--yes")
        check(p.returncode == 0, "user remove: %s" % err(p))
        p = s.keymgr("user", "list")
        check(b"yuki" not in p.stdout, "removed user still listed")
        p = s.keymgr("user", "remove", "yuki", "--yes")
        check(p.returncode == 1 and b"no such user" in p.stderr, "remove twice: %s" % err(p))
        p = s.deliver("yuki", msg_text_lf())
        check(p.returncode == 67, "deliver to removed user: exit %d" % p.returncode)
        p = s.vault("verify")
        check(p.returncode == 0, "verify after remove: %s" % err(p))


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: test_cli.py SEALMAIL-VAULT SEALMAIL-KEYMGR")
    t = T(sys.argv[1], sys.argv[2])
    r = Runner("cli")
    order = ["help_texts", "init_and_config", "usage_errors", "no_passphrase_on_argv",
             "config_errors_name_the_line", "passphrase_policy", "no_passphrase_source",
             "user_add", "token_otp", "terminal_prompts", "deliver_and_cat", "deliver_errors", "deliver_trace", "cat_errors",
             "replayed_otp_refused", "wrong_passphrase_refused", "second_token", "passwd",
             "token_remove_and_recover", "user_list_status", "rotate", "mkdir_flag",
             "verify_backup", "user_remove"]
    try:
        for name in order:
            r.run(name, getattr(t, name))
    finally:
        if r.failed == 0:
            t.s.cleanup()
        else:
            print("kept %s for inspection" % t.s.tmp)
    r.finish()


if __name__ == "__main__":
    main()
