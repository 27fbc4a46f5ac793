#!/usr/bin/env python3
"""Zero-knowledge test: after real deliveries, mailbox creation and flag changes, no
byte of the data directory or of a backup may contain any of the unique markers put
into subjects, bodies, sender addresses, attachment names and contents, mailbox names
and keywords - in any common encoding. A control file proves the scanner finds them.
Usage: test_zero_knowledge.py SEALMAIL-VAULT SEALMAIL-KEYMGR"""
import base64
import codecs
import os
import quopri
import random
import string
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sealmail_cli import Runner, Sealmail, check  # noqa: E402

USERS = [("zoe", "lantern quartz meadow ribbon"),
         ("yann", "harbor falcon pebble orchid"),
         ("xia", "cobalt thistle summit violin")]


def new_marker(rnd):
    # Letters and digits only: valid in an address, a filename, a mailbox name and an
    # IMAP keyword; 24 random characters never occur by chance.
    return "ZK" + "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(24))


def forms(marker):
    """Every byte string that would reveal the marker if present at rest."""
    m = marker.encode()
    out = {"plain": m, "lower": m.lower(), "upper": m.upper(),
           "utf16le": marker.encode("utf-16-le"), "utf16be": marker.encode("utf-16-be"),
           "quoted-printable": quopri.encodestring(m).rstrip(b"=\n"),
           "rot13": codecs.encode(marker, "rot13").encode()}
    # Base64 at the three alignments: keep only the characters that depend on marker
    # bytes alone (not on the unknown bytes before or after it).
    for k in range(3):
        enc = base64.b64encode(b"\0" * k + m)
        start = -(-4 * k // 3)
        end = (4 * (k + len(m))) // 3
        out["base64+%d" % k] = enc[start:end]
        out["base64url+%d" % k] = base64.urlsafe_b64encode(b"\0" * k + m)[start:end]
    out["hex"] = m.hex().encode()
    out["HEX"] = m.hex().upper().encode()
    return out


def scan(paths, markers):
    """[(file, marker, form)] for every hit in every regular file under paths."""
    table = [(mk, name, f) for mk in markers for name, f in forms(mk).items()]
    hits = []
    nfiles = 0
    for root in paths:
        for dirpath, _dirs, files in os.walk(root):
            for fn in files:
                p = os.path.join(dirpath, fn)
                if os.path.islink(p) or not os.path.isfile(p):
                    continue
                with open(p, "rb") as f:
                    data = f.read()
                nfiles += 1
                low = data.lower()
                for mk, name, f in table:
                    if f in data or (name == "lower" and f in low):
                        hits.append((p, mk, name))
    return hits, nfiles


def make_message(rnd, marks, n):
    subj, body, sender, fname, attach = marks
    att_payload = ("attachment secret %s end\n" % attach).encode() * 3
    att_b64 = base64.encodebytes(att_payload).decode()
    boundary = "b-%d-%d" % (n, rnd.randrange(10**9))
    return ("From: %s <%s@example.org>\r\n"
            "To: someone@example.org\r\n"
            "Subject: report %s\r\n"
            "Message-ID: <zk-%d@example.org>\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=\"%s\"\r\n"
            "\r\n"
            "--%s\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n"
            "\r\n"
            "Dear colleague, the code word is %s. \xe9t\xe9 \u2603\r\n"
            "--%s\r\n"
            "Content-Type: application/octet-stream; name=\"%s.pdf\"\r\n"
            "Content-Disposition: attachment; filename=\"%s.pdf\"\r\n"
            "Content-Transfer-Encoding: base64\r\n"
            "\r\n"
            "%s"
            "--%s--\r\n" % (sender, sender, subj, n, boundary, boundary, body, boundary,
                            fname, fname, att_b64.replace("\n", "\r\n"), boundary)
            ).encode("utf-8")


class T:
    def __init__(self, vault_bin, keymgr_bin):
        self.s = Sealmail(vault_bin, keymgr_bin, "zk")
        self.rnd = random.Random(os.urandom(16))
        self.markers = []
        self.sent = {}      # user -> list of (bytes, markers)
        self.mbox_markers = {}

    def mark(self):
        m = new_marker(self.rnd)
        self.markers.append(m)
        return m

    def tok(self, user):
        return self.s.path("%s.token" % user)

    def pw(self, user):
        return dict(USERS)[user]

    def scanner_is_not_vacuous(self):
        ctrl_dir = self.s.path("control")
        os.makedirs(ctrl_dir)
        mk = new_marker(self.rnd)
        checks = {"plain": mk.encode(),
                  "base64+1": base64.b64encode(b"Q" + mk.encode()),
                  "base64+2": base64.b64encode(b"QQ" + mk.encode()),
                  "utf16le": mk.encode("utf-16-le"),
                  "lower": mk.lower().encode()}
        for form, data in checks.items():
            p = os.path.join(ctrl_dir, "control-%s" % form)
            with open(p, "wb") as f:
                f.write(os.urandom(100) + data + os.urandom(100))
            hits, _ = scan([ctrl_dir], [mk])
            check(any(h[0] == p for h in hits), "scanner missed the %s control" % form)
            os.unlink(p)
        hits, _ = scan([ctrl_dir], [mk])
        check(not hits, "scanner reports hits in an empty directory")

    def enrol_and_deliver(self):
        s = self.s
        n = 0
        for user, pw in USERS:
            s.add_user(user, pw, self.tok(user))
            self.sent[user] = []
            for _ in range(4):
                marks = [self.mark() for _ in range(5)]
                msg = make_message(self.rnd, marks, n)
                n += 1
                p = s.deliver(user, msg)
                check(p.returncode == 0, "deliver: %s" % p.stderr.decode(errors="replace"))
                self.sent[user].append((msg, marks))
        # one large message, several chunks, marker near the end
        mk = self.mark()
        big = (b"Subject: big\r\n\r\n" + os.urandom(150000).hex().encode() +
               b"\r\n" + mk.encode() + b"\r\n")
        check(s.deliver(USERS[0][0], big).returncode == 0, "deliver big")
        self.sent[USERS[0][0]].append((big, [mk]))

    def session_data(self):
        s = self.s
        for user, pw in USERS:
            box = self.mark()
            p = s.vault("mkdir", user, box, passlines=[s.login(pw, self.tok(user))])
            check(p.returncode == 0, "mkdir: %s" % p.stderr.decode(errors="replace"))
            self.mbox_markers[user] = box
            kw = self.mark()
            p = s.vault("flag", user, "1", "+" + kw, "+\\Flagged",
                        passlines=[s.login(pw, self.tok(user))])
            check(p.returncode == 0, "flag: %s" % p.stderr.decode(errors="replace"))
            boxes = s.list(user, pw, self.tok(user))
            check(box in boxes, "marker mailbox not listed")
            check(kw in boxes["INBOX"]["msgs"][1]["flags"], "marker keyword not set")

    def mail_is_really_stored(self):
        s = self.s
        for user, pw in USERS:
            for uid, (msg, marks) in enumerate(self.sent[user], start=1):
                got = s.cat(user, pw, self.tok(user), uid)
                check(got == msg, "%s uid %d differs" % (user, uid))
        # the attachment marker is only in base64 in the message: prove it is there
        msg, marks = self.sent[USERS[0][0]][0]
        part = msg.split(b"Content-Transfer-Encoding: base64\r\n\r\n")[1].split(b"--b-")[0]
        check(marks[4].encode() in base64.b64decode(part), "attachment marker not encoded")
        check(marks[4].encode() not in msg, "attachment marker visible in the raw message")

    def no_marker_at_rest(self):
        s = self.s
        dest = s.path("backup")
        p = s.vault("backup", dest)
        check(p.returncode == 0, "backup: %s" % p.stderr.decode(errors="replace"))
        hits, nfiles = scan([s.dir, dest], self.markers)
        check(nfiles >= 3, "scanned only %d files" % nfiles)
        check(not hits, "markers found at rest: %s" % hits[:10])
        # the scanner sees the same directories: a marker planted there is found
        plant = os.path.join(s.dir, "zz-control-plant")
        with open(plant, "wb") as f:
            f.write(base64.b64encode(b"xy" + self.markers[0].encode()))
        hits, _ = scan([s.dir], self.markers)
        os.unlink(plant)
        check(any(h[0] == plant for h in hits), "planted control marker not found")

    def no_marker_in_outputs(self):
        """Admin outputs (status, stats, verify) must not show user content either."""
        s = self.s
        out = b""
        for args in (["stats"], ["verify"]):
            p = s.vault(*args)
            out += p.stdout + p.stderr
        for args in (["user", "list"], ["status"]):
            p = s.keymgr(*args)
            out += p.stdout + p.stderr
        for mk in self.markers:
            check(mk.encode() not in out, "marker %s in admin output" % mk)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: test_zero_knowledge.py SEALMAIL-VAULT SEALMAIL-KEYMGR")
    t = T(sys.argv[1], sys.argv[2])
    r = Runner("zero-knowledge")
    try:
        for name in ("scanner_is_not_vacuous", "enrol_and_deliver", "session_data",
                     "mail_is_really_stored", "no_marker_at_rest", "no_marker_in_outputs"):
            r.run(name, getattr(t, name))
    finally:
        if r.failed == 0:
            t.s.cleanup()
        else:
            print("kept %s for inspection" % t.s.tmp)
    r.finish()


if __name__ == "__main__":
    main()
