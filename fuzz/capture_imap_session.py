#!/usr/bin/env python3
"""Captures what real IMAP clients send, as seeds for fuzz/fuzz_imap_session.

A real sealmail-imapd (tests/peers/sealmail.py: a temp vault, user alice with a soft
token, OWASP-minimum Argon2id) gets the same mailboxes as the harness's fixture
(INBOX with 5 messages, Lists/dev with 2, Archive). A tiny logging TCP proxy sits in
front of its plain-text loopback listener (plaintext_loopback = yes, the default), and
these clients talk through it:

  mbsync    isync 1.4: a full pull into a Maildir, then a push of a new local message
            and a flag change (APPEND, UID STORE), SSLType None, AuthMechs LOGIN;
  fetchmail 6.4: every INBOX message (keep), then a second run without keep (STORE
            \\Deleted, EXPUNGE); sslproto '' (no STARTTLS);
  imaplib   Python's imaplib, a script using most commands it knows;
  thunderbird  the command sequence Thunderbird 115 sends (COMPRESS DEFLATE right
            after login, ID, ENABLE, LIST-EXTENDED, SELECT (CONDSTORE), header and
            body fetches, IDLE/DONE, STORE, MOVE, EXPUNGE), from a raw socket.

Each client connection's bytes (client to server only; inflated after a tagged OK to
COMPRESS) become one corpus file: the two header bytes of the harness (flags 0,
split 0 = one line per chunk, like a client waiting for each answer), then the stream
with the LOGIN / AUTHENTICATE / STARTTLS commands removed (the harness is already
logged in; this also keeps passwords and OTPs out of the corpus).

Usage: fuzz/capture_imap_session.py [--build DIR] [--out fuzz/corpus/imap_session]
Needs mbsync and fetchmail (both in .ci/install-deps.sh already).
"""

import argparse
import imaplib
import os
import re
import shutil
import socket
import ssl  # noqa: F401  (imported by the peer module; keeps the import order obvious)
import subprocess
import sys
import tempfile
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "peers"))
from sealmail import Sealmail  # noqa: E402

USER = "alice"

# The harness's fixture messages (fuzz_imap_session.c), shortened: the transcripts
# only need the same mailbox layout and message count.
INBOX = [
    b"From: Alice <alice@example.org>\r\nTo: Bob <bob@example.net>\r\nSubject: plain\r\n"
    b"Date: Mon, 2 Mar 2026 10:00:00 +0100\r\nMessage-ID: <m1@example.org>\r\n\r\nHello\r\n",
    b"From: j@example.de\r\nTo: bob@example.net\r\nSubject: alt\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n--alt\r\n"
    b"Content-Type: text/plain\r\n\r\nhi\r\n--alt\r\nContent-Type: text/html\r\n\r\n"
    b"<p>hi</p>\r\n--alt--\r\n",
    b"From: carol@example.com\r\nSubject: report\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n--mix\r\n"
    b"Content-Type: text/plain\r\n\r\nAttached.\r\n--mix\r\nContent-Type: message/rfc822\r\n"
    b"\r\nFrom: dave@example.com\r\nSubject: inner\r\n\r\ninner\r\n--mix--\r\n",
    b"From: eve@example.com\r\nTo: group: a@example.com;\r\nSubject: Re: [dev] x\r\n\r\nb\r\n",
    b"From: frank@example.org\r\nSubject: flagged\r\n\r\nSch\xf6n.\r\n",
]
SUB = [b"From: list@example.com\r\nSubject: [dev] one\r\n\r\nfirst\r\n",
       b"From: list@example.com\r\nSubject: [dev] two\r\n\r\nsecond\r\n"]


class Proxy:
    """127.0.0.1:port -> upstream; records each connection's client bytes."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []         # [bytearray of client bytes, inflated after COMPRESS]
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            u = socket.create_connection(self.upstream)
            rec = {"data": bytearray(), "z": None, "compress": threading.Event()}
            with self.lock:
                self.conns.append(rec)
            threading.Thread(target=self._c2s, args=(c, u, rec), daemon=True).start()
            threading.Thread(target=self._s2c, args=(u, c, rec), daemon=True).start()

    def _c2s(self, c, u, rec):
        while True:
            b = c.recv(65536)
            if not b:
                break
            if rec["compress"].is_set():
                if rec["z"] is None:
                    rec["z"] = zlib.decompressobj(-15)
                rec["data"] += rec["z"].decompress(b)
            else:
                rec["data"] += b
            u.sendall(b)
        try:
            u.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _s2c(self, u, c, rec):
        tail = b""
        while True:
            b = u.recv(65536)
            if not b:
                break
            if not rec["compress"].is_set():
                # a client compresses only after reading this line, so setting the flag
                # before forwarding it cannot miss the client's first compressed byte
                if re.search(rb"(^|\n)[^ *+]+ OK DEFLATE active\r\n", tail + b):
                    rec["compress"].set()
                tail = (tail + b)[-200:]
            c.sendall(b)
        try:
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def take(self):
        time.sleep(0.3)
        with self.lock:
            out = [bytes(r["data"]) for r in self.conns]
            self.conns = []
        return out


def strip_auth(stream):
    """Drops LOGIN / AUTHENTICATE (and its continuation line) / STARTTLS commands."""
    out = []
    lines = stream.split(b"\n")
    skip_next = False
    for i, line in enumerate(lines):
        full = line + (b"\n" if i < len(lines) - 1 else b"")
        if skip_next:
            skip_next = False
            continue
        words = line.split(b" ", 2)
        cmd = words[1].upper().strip() if len(words) > 1 else b""
        if cmd in (b"LOGIN", b"STARTTLS"):
            continue
        if cmd == b"AUTHENTICATE":
            skip_next = len(words) < 3 or b" " not in words[2].strip()
            continue
        out.append(full)
    return b"".join(out)


def setup_mailboxes(sm):
    for m in INBOX:
        sm.deliver(USER, m)
    m = sm.imaplib(USER)
    m.create("Lists/dev")
    m.create("Archive")
    m.subscribe("Lists/dev")
    for b in SUB:
        m.append("Lists/dev", None, None, b)
    m.select("INBOX")
    m.store("1", "+FLAGS", "(\\Seen)")
    m.store("4", "+FLAGS", "(\\Flagged $Work)")
    m.logout()


def run_mbsync(sm, port, work):
    maildir = os.path.join(work, "Mail")
    os.makedirs(maildir, exist_ok=True)
    pw = os.path.join(work, "pw.sh")
    with open(pw, "w") as f:
        f.write("#!/bin/sh\nprintf '%%s%%s\\n' '%s' \"$(%s token otp %s)\"\n" % (
            sm.passphrase(USER), sm.prog["keymgr"], sm.token_file(USER)))
    os.chmod(pw, 0o700)
    rc = os.path.join(work, "mbsyncrc")
    with open(rc, "w") as f:
        f.write("IMAPAccount a\nHost 127.0.0.1\nPort %d\nUser %s\nPassCmd \"%s\"\n"
                "SSLType None\nAuthMechs LOGIN\nPipelineDepth 1\n\n"
                "IMAPStore remote\nAccount a\n\nMaildirStore local\nPath %s/\n"
                "Inbox %s/INBOX\nSubFolders Verbatim\n\nChannel c\nFar :remote:\n"
                "Near :local:\nPatterns *\nCreate Both\nExpunge Both\nSyncState *\n"
                "CopyArrivalDate yes\n" % (port, USER, pw, maildir, maildir))
    env = dict(os.environ, HOME=work)

    def sync(label):
        r = subprocess.run(["mbsync", "-c", rc, "-a"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, env=env, timeout=300)
        if r.returncode != 0:
            raise RuntimeError("mbsync %s: %s" % (label, r.stdout.decode(errors="replace")))

    sync("pull")
    new = os.path.join(maildir, "INBOX", "new")
    with open(os.path.join(new, "1700000000.1.host"), "wb") as f:
        f.write(b"From: me@example.org\nSubject: from mbsync\n\nlocal\n")
    cur = os.path.join(maildir, "INBOX", "cur")
    for n in sorted(os.listdir(cur))[:2]:
        base = n.split(":2,")[0]
        os.rename(os.path.join(cur, n), os.path.join(cur, base + ":2,FRST"))
    sync("push")


def run_fetchmail(sm, port, work, keep):
    out = os.path.join(work, "fetched")
    os.makedirs(out, exist_ok=True)
    mda = os.path.join(work, "mda.sh")
    with open(mda, "w") as f:
        f.write("#!/bin/sh\nexec cat > \"$(mktemp %s/m.XXXXXX)\"\n" % out)
    os.chmod(mda, 0o755)
    rcfile = os.path.join(work, "fetchmailrc")
    with open(rcfile, "w") as f:
        f.write("set no bouncemail\nset no syslog\n"
                "poll localhost via 127.0.0.1 with proto IMAP port %d auth password\n"
                "  user \"%s\" there with password \"%s\" is \"root\" here\n"
                "  sslproto '' %s fetchall no rewrite mda \"%s\"\n  folder INBOX\n" % (
                    port, USER, sm.password(USER), "keep" if keep else "no keep", mda))
    os.chmod(rcfile, 0o600)
    r = subprocess.run(["fetchmail", "-f", rcfile, "--nodetach", "-v",
                        "--pidfile", os.path.join(work, "fm.pid"),
                        "--idfile", os.path.join(work, "fm.ids")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300,
                       env=dict(os.environ, HOME=work, FETCHMAILHOME=work))
    if r.returncode not in (0, 1):     # 1: no new mail
        raise RuntimeError("fetchmail: %s" % r.stdout.decode(errors="replace"))


def run_imaplib(sm, port):
    m = imaplib.IMAP4("127.0.0.1", port)
    m.login(USER, sm.password(USER))
    m.capability()
    m.namespace()
    m.list()
    m.list('""', "Lists/%")
    m.lsub()
    m.status("INBOX", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)")
    m.select("INBOX")
    m.search(None, "ALL")
    m.search(None, '(FROM "alice" SINCE 1-Jan-2020 NOT DELETED)')
    m.search("UTF-8", "OR", "SUBJECT", "report", "LARGER", "100")
    m.uid("SEARCH", None, "UNSEEN")
    m.fetch("1:*", "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)")
    m.fetch("2", "(BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])")
    m.fetch("3", "(BODY.PEEK[2] BODY.PEEK[2.HEADER] BODY.PEEK[1.MIME] BODY.PEEK[]<0.10>)")
    m.fetch("1", "(RFC822)")
    m.uid("FETCH", "1:*", "(UID FLAGS)")
    m.store("2", "+FLAGS", "(\\Answered)")
    m.store("1:2", "-FLAGS.SILENT", "(\\Seen)")
    m.uid("STORE", "3", "FLAGS", "(\\Seen $Label1)")
    m.copy("1:2", "Archive")
    m._simple_command("MOVE", "3", "Archive")
    m.append("INBOX", "(\\Seen)", imaplib.Time2Internaldate(1700000000),
             b"From: py@example.org\r\nSubject: imaplib\r\n\r\nappended\r\n")
    m.store("1", "+FLAGS", "(\\Deleted)")
    m.expunge()
    m.check()
    m.create("Tmp/sub")
    m.rename("Tmp/sub", "Tmp/renamed")
    m.delete("Tmp/renamed")
    m.unsubscribe("Lists/dev")
    m.getquotaroot("INBOX") if "QUOTA" in m.capabilities else None
    m.close()
    m.select("Lists/dev", readonly=True)
    m.fetch("1:*", "(UID BODY.PEEK[TEXT])")
    m.logout()


def run_thunderbird(sm, port):
    """Thunderbird 115's sequence, pipelined the way it does after COMPRESS."""
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rb")
    z = None        # (deflate, inflate) once compressing

    def send(b):
        if z:
            s.sendall(z[0].compress(b) + z[0].flush(zlib.Z_SYNC_FLUSH))
        else:
            s.sendall(b)

    pending = bytearray()

    def read_until(tag):
        """Reads responses until the tagged one; returns everything."""
        nonlocal pending
        out = bytearray()
        while True:
            if z:
                while b"\r\n" not in pending:
                    chunk = s.recv(65536)
                    if not chunk:
                        raise RuntimeError("closed")
                    pending += z[1].decompress(chunk)
                i = pending.index(b"\r\n") + 2
                line, pending = bytes(pending[:i]), pending[i:]
            else:
                line = f.readline()
            out += line
            m = re.search(rb"\{(\d+)\}\r\n$", line)
            if m:
                n = int(m.group(1))
                if z:
                    while len(pending) < n:
                        pending += z[1].decompress(s.recv(65536))
                    out += pending[:n]
                    pending = pending[n:]
                else:
                    out += f.read(n)
                continue
            if line.startswith(tag + b" ") or line.startswith(b"+ "):
                return bytes(out)

    read_until(b"*")
    send(b"1 capability\r\n")
    read_until(b"1")
    send(b'2 login "%s" "%s"\r\n' % (USER.encode(), sm.password(USER).encode()))
    read_until(b"2")
    send(b"3 COMPRESS DEFLATE\r\n")
    read_until(b"3")
    z = (zlib.compressobj(6, zlib.DEFLATED, -15), zlib.decompressobj(-15))
    pending = bytearray()
    script = [
        b'4 ID ("name" "Thunderbird" "version" "115.12.2")',
        b"5 enable UTF8=ACCEPT",
        b"6 namespace",
        b'7 list (subscribed) "" "*" return (special-use)',
        b'8 list "" "*" return (special-use subscribed)',
        b'9 select "INBOX" (CONDSTORE)',
        b"10 getquotaroot \"INBOX\"",
        b"11 UID fetch 1:* (FLAGS)",
        b"12 UID fetch 1:5 (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc "
        b"Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To "
        b"Content-Type Reply-To)])",
        b"13 UID fetch 3 (UID RFC822.SIZE BODY.PEEK[])",
        b"14 UID fetch 3 (UID RFC822.SIZE BODY.PEEK[1.MIME] BODY.PEEK[2])",
        b"15 uid store 3 +Flags (\\Seen)",
        b'16 STATUS "Lists/dev" (UIDNEXT MESSAGES UNSEEN RECENT HIGHESTMODSEQ)',
        b"17 noop",
        b'18 uid move 4 "Archive"',
        b"19 uid store 5 +Flags (\\Deleted)",
        b"20 UID EXPUNGE 5",
        b"21 UID fetch 1:* (FLAGS) (CHANGEDSINCE 1)",
    ]
    for line in script:
        tag = line.split(b" ")[0]
        send(line + b"\r\n")
        read_until(tag)
    send(b"22 IDLE\r\n")
    read_until(b"22")       # the "+ idling" continuation
    time.sleep(0.3)
    send(b"DONE\r\n")
    read_until(b"22")
    msg = b"From: tb@example.org\r\nSubject: draft\r\n\r\nsaved draft\r\n"
    send(b'23 append "Archive" (\\Seen \\Draft) {%d}\r\n' % len(msg))
    read_until(b"23")       # "+ OK"
    send(msg + b"\r\n")
    read_until(b"23")
    send(b"24 close\r\n")
    read_until(b"24")
    send(b"25 logout\r\n")
    read_until(b"25")
    s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--out", default=os.path.join(HERE, "corpus", "imap_session"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="capture-imap-")
    os.chmod(work, 0o755)
    written = []
    try:
        with Sealmail(users=[USER], build=a.build, mode="imapd",
                      conf={"plaintext_loopback": "yes"}) as sm:
            setup_mailboxes(sm)
            proxy = Proxy(("127.0.0.1", sm.imap_port))
            runs = [("mbsync", lambda: run_mbsync(sm, proxy.port, work)),
                    ("fetchmail-keep", lambda: run_fetchmail(sm, proxy.port, work, True)),
                    ("imaplib", lambda: run_imaplib(sm, proxy.port)),
                    ("thunderbird", lambda: run_thunderbird(sm, proxy.port)),
                    ("fetchmail-delete", lambda: run_fetchmail(sm, proxy.port, work, False))]
            for name, fn in runs:
                fn()
                for i, stream in enumerate(proxy.take()):
                    body = strip_auth(stream)
                    if not body.strip():
                        continue
                    path = os.path.join(a.out, "client-%s-%d" % (name, i + 1))
                    with open(path, "wb") as f:
                        f.write(b"\x00\x00" + body)
                    written.append((path, len(body), body.count(b"\n")))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for p, n, lines in written:
        print("%s: %d bytes, %d lines" % (os.path.relpath(p), n, lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
