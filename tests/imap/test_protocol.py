#!/usr/bin/env python3
"""Protocol suite for sealmail's IMAP command engine (Python 3 stdlib: unittest, imaplib,
raw sockets, zlib).

Target, from the environment:
  SEALMAIL_IMAP_HOST, SEALMAIL_IMAP_PORT   a running server (else one is started)
  SEALMAIL_IMAP_USER, SEALMAIL_IMAP_PASS   credentials (LOGIN), unless
  SEALMAIL_IMAP_PREAUTH=1                  the server greets with PREAUTH
  SEALMAIL_IMAP_TLS=0/1                    implicit TLS (certificate not checked)
  SEALMAIL_VAULT, SEALMAIL_CONF            for the external-delivery IDLE test
                                           (`sealmail-vault -c CONF deliver USER`)
Without SEALMAIL_IMAP_PORT the suite builds its own world with tests/peers/sealmail.py
in "engine" mode: `sealmail-vault init`, a user from `sealmail-keymgr user add` with a
soft token, and tests/test-engine-server (PREAUTH on loopback), from SEALMAIL_BUILD.

Every test works in mailboxes of its own (named after the test) so the order does not
matter; INBOX is used only where delivery needs it, and then by UID.
"""

import imaplib
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import unittest
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "peers"))

WORLD = None


class ProtoError(Exception):
    pass


def literal_len(line):
    m = re.search(rb"~?\{(\d+)\+?\}\r\n$", line)
    return int(m.group(1)) if m else None


class Wire:
    """A raw IMAP connection that sees every byte, with optional DEFLATE."""

    def __init__(self, host, port, tls=False, timeout=30):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        if tls:
            ctx = ssl._create_unverified_context()
            self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")
        self.buf = b""
        self.tagn = 0
        self.z_out = self.z_in = None
        self.greeting = self.read_response()

    # -- transport ----------------------------------------------------------------
    def send(self, data):
        if self.z_out is not None:
            data = self.z_out.compress(data) + self.z_out.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def _fill(self):
        d = self.sock.recv(1 << 16)
        if not d:
            raise ProtoError("connection closed (buffer %r)" % self.buf[-200:])
        if self.z_in is not None:
            d = self.z_in.decompress(d)
        self.buf += d

    def readline(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i + 2], self.buf[i + 2:]
                return line
            self._fill()

    def readn(self, n):
        while len(self.buf) < n:
            self._fill()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def read_response(self):
        out = b""
        while True:
            line = self.readline()
            out += line
            n = literal_len(line)
            if n is None:
                return out[:-2]
            out += self.readn(n)

    def pending(self, wait):
        """True when a response arrives within wait seconds."""
        if self.buf:
            return True
        self.sock.settimeout(wait)
        try:
            self._fill()
            return True
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(30)

    def start_compress(self):
        self.z_out = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        self.z_in = zlib.decompressobj(-15)
        if self.buf:
            raise ProtoError("bytes after COMPRESS OK before compression began")

    # -- commands -------------------------------------------------------------------
    def tag(self):
        self.tagn += 1
        return b"W%03d" % self.tagn

    def cmd(self, command, *literals, tag=None):
        """Sends command (bytes or str); each \\0 in it is replaced by a synchronizing
        literal from literals. Returns (status, text, untagged list)."""
        if isinstance(command, str):
            command = command.encode()
        tag = tag or self.tag()
        parts = command.split(b"\0")
        assert len(parts) == len(literals) + 1
        untagged = []
        self.send(tag + b" " + parts[0] + (b"{%d}\r\n" % len(literals[0]) if literals
                                           else b"\r\n"))
        for i, lit in enumerate(literals):
            while True:
                r = self.read_response()
                if r.startswith(b"+"):
                    break
                if r.startswith(tag + b" "):
                    st, _, text = r[len(tag) + 1:].partition(b" ")
                    return st, text, untagged
                untagged.append(r)
            nxt = parts[i + 1]
            if i + 1 < len(literals):
                nxt += b"{%d}" % len(literals[i + 1])
            self.send(lit + nxt + b"\r\n")
        return self.finish(tag, untagged)

    def finish(self, tag, untagged=None):
        untagged = [] if untagged is None else untagged
        while True:
            r = self.read_response()
            if r.startswith(tag + b" "):
                st, _, text = r[len(tag) + 1:].partition(b" ")
                return st, text, untagged
            untagged.append(r)

    def ok(self, command, *literals):
        st, text, u = self.cmd(command, *literals)
        if st != b"OK":
            raise ProtoError("%r -> %s %s" % (command, st, text))
        return u, text

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class World:
    """Where the server is and how to reach it."""

    def __init__(self):
        self.sm = None
        port = os.environ.get("SEALMAIL_IMAP_PORT")
        if port:
            self.host = os.environ.get("SEALMAIL_IMAP_HOST", "127.0.0.1")
            self.port = int(port)
            self.user = os.environ.get("SEALMAIL_IMAP_USER", "alice")
            self.pw = os.environ.get("SEALMAIL_IMAP_PASS", "")
            self.tls = os.environ.get("SEALMAIL_IMAP_TLS", "0") == "1"
            self.preauth = os.environ.get("SEALMAIL_IMAP_PREAUTH", "0") == "1"
            self.vault = os.environ.get("SEALMAIL_VAULT")
            self.conf = os.environ.get("SEALMAIL_CONF")
            return
        import sealmail
        build = os.environ.get("SEALMAIL_BUILD")
        # SEALMAIL_IMAP_SERVER=imapd: a private sealmail-imapd (IMAPS, LOGIN with
        # passphrase + a fresh OTP per connection) instead of test-engine-server.
        mode = os.environ.get("SEALMAIL_IMAP_SERVER", "engine")
        missing = sealmail.missing_programs(build, mode)
        if missing:
            print("SKIP: not built: " + ", ".join(missing))
            sys.exit(77)
        self.sm = sealmail.Sealmail(users=["alice"], build=build, mode=mode)
        self.host = self.sm.host
        self.user = "alice"
        self.pw = None
        if mode == "engine":
            self.port = self.sm._engine("alice")
            self.tls = False
            self.preauth = True
        else:
            self.port = self.sm.imaps_port
            self.tls = True
            self.preauth = False
        self.vault = self.sm.prog["vault"]
        self.conf = self.sm.conf

    def connect(self):
        w = Wire(self.host, self.port, tls=self.tls)
        if not self.preauth:
            pw = self.pw if self.sm is None else self.sm.password(self.user)
            w.ok(b'LOGIN "%s" "%s"' % (self.user.encode(), pw.encode()))
        else:
            assert w.greeting.startswith(b"* PREAUTH"), w.greeting
        return w

    def imaplib(self):
        if self.tls:
            m = imaplib.IMAP4_SSL(self.host, self.port,
                                  ssl_context=ssl._create_unverified_context())
        else:
            m = imaplib.IMAP4(self.host, self.port)
        if not self.preauth:
            m.login(self.user, self.pw if self.sm is None else self.sm.password(self.user))
        return m

    def deliver(self, data):
        if not (self.vault and self.conf):
            raise unittest.SkipTest("no sealmail-vault/config for external delivery")
        r = subprocess.run([self.vault, "-c", self.conf, "deliver", self.user], input=data,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if r.returncode != 0:
            raise ProtoError("deliver: %s" % r.stderr.decode(errors="replace"))

    def stop(self):
        """Stops a server we started; returns its log when it reported a sanitizer
        error (ASan/UBSan builds) or did not exit cleanly, else None."""
        if self.sm is None:
            return None
        bad = None
        if self.sm.proc is not None:
            self.sm._kill_proc(self.sm.proc)
            log = self.sm.log_text()
            if "Sanitizer" in log or "runtime error:" in log:
                bad = "sealmail-imapd:\n" + log[-6000:]
        for user, (p, _) in list(self.sm.engines.items()):
            self.sm._kill_proc(p)
            path = os.path.join(self.sm.basedir, "engine-%s.log" % user)
            try:
                with open(path, errors="replace") as f:
                    log = f.read()
            except OSError:
                log = ""
            if p.returncode != 0 or "Sanitizer" in log or "runtime error:" in log:
                bad = "test-engine-server exit %s:\n%s" % (p.returncode, log[-6000:])
        self.sm.stop()
        return bad


def msg(subject="test", body="body\r\n", frm="Alice <alice@example.org>",
        to="Bob <bob@example.org>", extra="", date="Mon, 7 Feb 1994 21:52:25 -0800"):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@x>\r\n%s\r\n%s"
            % (frm, to, subject, date, abs(hash(subject + body)), extra, body)).encode()


MULTIPART = (b"From: a@example.org\r\nTo: b@example.org\r\nSubject: parts\r\n"
             b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
             b"preamble\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
             b"first part \xc3\xa4\r\n--XX\r\nContent-Type: application/octet-stream\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\nAAECAwQFBgcICQ==\r\n--XX--\r\n")


class Base(unittest.TestCase):
    def setUp(self):
        self.conns = []
        self.box = "t_" + self._testMethodName[5:]

    def tearDown(self):
        for c in self.conns:
            c.close()

    def conn(self):
        c = WORLD.connect()
        self.conns.append(c)
        return c

    def fresh(self, c, name=None, select=True):
        """A new empty mailbox for this test (deleted first if left over)."""
        name = name or self.box
        c.cmd('DELETE "%s"' % name)
        c.ok('CREATE "%s"' % name)
        if select:
            c.ok('SELECT "%s"' % name)
        return name

    def append(self, c, data, box=None, flags="", date=None):
        cmd = 'APPEND "%s"' % (box or self.box)
        if flags:
            cmd += " (%s)" % flags
        if date:
            cmd += ' "%s"' % date
        _, text = c.ok(cmd.encode() + b" \0", data)
        m = re.search(rb"APPENDUID (\d+) (\d+)", text)
        self.assertTrue(m, text)
        return int(m.group(2))

    @staticmethod
    def norecent(u):
        """\\Recent depends on which session saw a message first (RFC 3501 2.3.2);
        the assertions here are about the other flags."""
        return u.replace(b" \\Recent", b"").replace(b"\\Recent ", b"").replace(
            b"(\\Recent)", b"()")

    def assertHas(self, untagged, pattern):
        for u in untagged:
            if re.search(pattern, self.norecent(u), re.S):
                return self.norecent(u)
        self.fail("no %r in %r" % (pattern, untagged))

    def assertHasNot(self, untagged, pattern):
        for u in untagged:
            if re.search(pattern, self.norecent(u), re.S):
                self.fail("unexpected %r: %r" % (pattern, u))


class TestBasics(Base):
    def test_capability_noop_logout(self):
        c = self.conn()
        u, _ = c.ok("CAPABILITY")
        caps = self.assertHas(u, rb"^\* CAPABILITY ").split()
        for cap in [b"IMAP4rev1", b"IMAP4rev2", b"IDLE", b"UIDPLUS", b"MOVE", b"CONDSTORE",
                    b"QRESYNC", b"ESEARCH", b"SEARCHRES", b"LIST-EXTENDED", b"LIST-STATUS",
                    b"SPECIAL-USE", b"BINARY", b"MULTIAPPEND", b"STATUS=SIZE",
                    b"COMPRESS=DEFLATE", b"LITERAL+", b"ENABLE", b"NAMESPACE", b"UNSELECT",
                    b"CHILDREN", b"ID", b"OBJECTID", b"SAVEDATE", b"UTF8=ACCEPT"]:
            self.assertIn(cap, caps)
        self.assertTrue(any(x.startswith(b"APPENDLIMIT") for x in caps))
        self.assertNotIn(b"STARTTLS", caps)
        c.ok("NOOP")
        st, _, u = c.cmd("LOGOUT")
        self.assertEqual(st, b"OK")
        self.assertHas(u, rb"^\* BYE")

    def test_namespace_id_enable(self):
        c = self.conn()
        u, _ = c.ok("NAMESPACE")
        self.assertHas(u, rb'^\* NAMESPACE \(\(""\s"/"\)\) NIL NIL$')
        u, _ = c.ok('ID ("name" "test" "version" "1")')
        self.assertHas(u, rb'^\* ID \(.*"name" "sealmail"')
        u, _ = c.ok("ID NIL")
        self.assertHas(u, rb"^\* ID ")
        u, _ = c.ok("ENABLE CONDSTORE X-UNKNOWN")
        self.assertHas(u, rb"^\* ENABLED CONDSTORE$")
        u, _ = c.ok("ENABLE CONDSTORE")
        self.assertHas(u, rb"^\* ENABLED$")
        self.assertEqual(c.cmd('ID ("a")')[0], b"BAD")

    def test_imaplib_client(self):
        m = WORLD.imaplib()
        try:
            m.create(self.box)
            typ, _ = m.append(self.box, r"(\Seen)", None, msg("imaplib"))
            self.assertEqual(typ, "OK")
            typ, data = m.select(self.box)
            self.assertEqual(typ, "OK")
            self.assertEqual(int(data[0]), 1)
            typ, data = m.fetch("1", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            self.assertEqual(typ, "OK")
            self.assertIn(b"Subject: imaplib", data[0][1])
            typ, data = m.search(None, "SUBJECT", "imaplib")
            self.assertEqual(data[0], b"1")
            m.close()
            m.delete(self.box)
        finally:
            m.logout()


class TestMailboxes(Base):
    def test_create_list_rename_delete(self):
        c = self.conn()
        for n in ["t_tree", "t_tree2"]:
            c.cmd('DELETE "%s/a/b"' % n)
            c.cmd('DELETE "%s/a"' % n)
            c.cmd('DELETE "%s"' % n)
        c.ok('CREATE "t_tree/a/b/"')       # trailing delimiter; superiors implied
        u, _ = c.ok('LIST "" "t_tree*"')
        self.assertHas(u, rb'^\* LIST \(\\Noselect \\HasChildren\) "/" "t_tree"$')
        self.assertHas(u, rb'^\* LIST \(\\Noselect \\HasChildren\) "/" "t_tree/a"$')
        st, _, _ = c.cmd('SELECT "t_tree/a"')
        self.assertEqual(st, b"NO")
        c.ok('CREATE "t_tree"')             # an implied name becomes a mailbox
        c.ok('CREATE "t_tree/a"')
        st, text, _ = c.cmd('CREATE "t_tree/a"')
        self.assertEqual(st, b"NO")
        self.assertIn(b"[ALREADYEXISTS]", text)
        u, _ = c.ok('LIST "" "t_tree*"')
        self.assertHas(u, rb'^\* LIST \(\\HasChildren\) "/" "t_tree"$')
        self.assertHas(u, rb'^\* LIST \(\\HasChildren\) "/" "t_tree/a"$')
        self.assertHas(u, rb'^\* LIST \(\\HasNoChildren\) "/" "t_tree/a/b"$')
        u, _ = c.ok('LIST "" "t_tree/%"')
        self.assertEqual(len(u), 1)
        u, _ = c.ok('LIST "t_tree/" "%"')
        self.assertHas(u, rb'"t_tree/a"$')
        u, _ = c.ok('LIST "" ""')
        self.assertHas(u, rb'^\* LIST \(\\Noselect\) "/" ""$')
        c.ok('RENAME "t_tree" "t_tree2"')
        u, _ = c.ok('LIST "" "t_tree2/*"')
        self.assertHas(u, rb'"t_tree2/a/b"$')
        u, _ = c.ok('LIST "" "t_tree"')
        self.assertEqual(u, [])
        st, text, _ = c.cmd('RENAME "t_nonexistent" "t_x"')
        self.assertEqual(st, b"NO")
        st, text, _ = c.cmd('DELETE "INBOX"')
        self.assertEqual(st, b"NO")
        c.ok('DELETE "t_tree2"')            # children stay: it becomes \Noselect
        u, _ = c.ok('LIST "" "t_tree2*"')
        self.assertHas(u, rb'^\* LIST \(\\Noselect \\HasChildren\) "/" "t_tree2"$')
        c.ok('DELETE "t_tree2/a/b"')
        c.ok('DELETE "t_tree2/a"')
        st, text, _ = c.cmd('SELECT "t_tree2"')
        self.assertEqual(st, b"NO")
        self.assertIn(b"NONEXISTENT", text)

    def test_special_use_and_list_extended(self):
        c = self.conn()
        c.cmd('DELETE "t_flagged"')
        c.ok('CREATE "t_flagged" (USE (\\Flagged))')
        u, _ = c.ok('LIST (SPECIAL-USE) "" "*"')
        self.assertHas(u, rb'\\Sent\) "/" "Sent"$')
        self.assertHas(u, rb'\\Flagged\) "/" "t_flagged"$')
        self.assertHasNot(u, rb'"INBOX"')
        u, _ = c.ok('LIST "" "t_flagged" RETURN (CHILDREN STATUS (MESSAGES UIDNEXT SIZE))')
        self.assertHas(u, rb'^\* LIST \(\\HasNoChildren \\Flagged\) "/" "t_flagged"$')
        self.assertHas(u, rb'^\* STATUS "t_flagged" \(MESSAGES 0 UIDNEXT 1 SIZE 0\)$')
        st, text, _ = c.cmd('CREATE "t_bad_use" (USE (\\Nonsense))')
        self.assertEqual(st, b"NO")
        self.assertIn(b"USEATTR", text)
        self.assertEqual(c.cmd('LIST (RECURSIVEMATCH) "" "*"')[0], b"BAD")
        c.ok('DELETE "t_flagged"')

    def test_subscriptions(self):
        c = self.conn()
        c.cmd('DELETE "t_sub"')
        c.ok('CREATE "t_sub"')
        c.ok('SUBSCRIBE "t_sub"')
        c.ok('SUBSCRIBE "t_sub_gone"')     # may name a mailbox that does not exist
        u, _ = c.ok('LSUB "" "t_sub*"')
        self.assertHas(u, rb'^\* LSUB \(\) "/" "t_sub"$')
        u, _ = c.ok('LIST (SUBSCRIBED) "" "t_sub*"')
        self.assertHas(u, rb'^\* LIST \(\\HasNoChildren \\Subscribed\) "/" "t_sub"$')
        self.assertHas(u, rb'\\NonExistent.*"t_sub_gone"$')
        u, _ = c.ok('LIST "" "t_sub" RETURN (SUBSCRIBED)')
        self.assertHas(u, rb'\\Subscribed')
        c.ok('UNSUBSCRIBE "t_sub"')
        c.ok('UNSUBSCRIBE "t_sub_gone"')
        u, _ = c.ok('LSUB "" "t_sub*"')
        self.assertEqual(u, [])
        c.ok('DELETE "t_sub"')

    def test_mutf7_and_utf8_names(self):
        c = self.conn()
        c.cmd('DELETE "t_&AOQ-b"')
        c.ok('CREATE "t_&AOQ-b"')           # "t_äb"
        u, _ = c.ok('LIST "" "t_&AOQ-b"')
        self.assertHas(u, rb'"t_&AOQ-b"$')
        self.assertEqual(c.cmd('CREATE "t_&Jjo"')[0], b"BAD")   # unterminated shift
        d = self.conn()
        d.ok("ENABLE UTF8=ACCEPT")
        u, _ = d.ok('LIST "" "t_*b"')
        self.assertHas(u, '"t_äb"$'.encode())
        u, _ = d.ok('STATUS "t_äb" (MESSAGES)')
        self.assertHas(u, rb"MESSAGES 0")
        c.ok('DELETE "t_&AOQ-b"')

    def test_status_items(self):
        c = self.conn()
        self.fresh(c, select=False)
        self.append(c, msg("s1"), flags="\\Seen")
        self.append(c, msg("s2"), flags="\\Deleted")
        u, _ = c.ok('STATUS "%s" (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE RECENT '
                    'HIGHESTMODSEQ APPENDLIMIT MAILBOXID)' % self.box)
        s = self.assertHas(u, rb"^\* STATUS")
        self.assertIn(b"MESSAGES 2", s)
        self.assertIn(b"UIDNEXT 3", s)
        self.assertIn(b"UNSEEN 1", s)
        self.assertIn(b"DELETED 1", s)
        self.assertIn(b"SIZE %d" % (len(msg("s1")) + len(msg("s2"))), s)
        self.assertRegex(s, rb"HIGHESTMODSEQ \d+")
        self.assertRegex(s, rb"APPENDLIMIT \d+")
        self.assertRegex(s, rb"MAILBOXID \(M[0-9a-f]+\)")
        self.assertEqual(c.cmd('STATUS "%s" (BOGUS)' % self.box)[0], b"BAD")
        self.assertEqual(c.cmd('STATUS "t_none_such" (MESSAGES)')[0], b"NO")

    def test_select_examine_close_unselect(self):
        c = self.conn()
        self.fresh(c, select=False)
        self.append(c, msg("a"), flags="\\Deleted")
        self.append(c, msg("b"))
        u, text = c.ok('EXAMINE "%s"' % self.box)
        self.assertIn(b"[READ-ONLY]", text)
        self.assertHas(u, rb"^\* 2 EXISTS$")
        self.assertHas(u, rb"^\* OK \[PERMANENTFLAGS \(\)\]")
        st, text, _ = c.cmd("STORE 1 +FLAGS (\\Seen)")
        self.assertEqual(st, b"NO")
        c.ok("FETCH 2 BODY[]")                          # EXAMINE: no implicit \Seen
        u, _ = c.ok("FETCH 2 FLAGS")
        self.assertHasNot(u, rb"\\Seen")
        u, text = c.ok('SELECT "%s"' % self.box)
        self.assertIn(b"[READ-WRITE]", text)
        self.assertHas(u, rb"^\* OK \[UIDVALIDITY \d+\]")
        self.assertHas(u, rb"^\* OK \[UIDNEXT 3\]")
        self.assertHas(u, rb"^\* FLAGS \(")
        c.ok("UNSELECT")                                # does not expunge
        u, _ = c.ok('SELECT "%s"' % self.box)
        self.assertHas(u, rb"^\* 2 EXISTS$")
        st, _, u = c.cmd("CLOSE")                       # expunges silently
        self.assertEqual(st, b"OK")
        self.assertHasNot(u, rb"EXPUNGE")
        u, _ = c.ok('STATUS "%s" (MESSAGES)' % self.box)
        self.assertHas(u, rb"MESSAGES 1")
        self.assertEqual(c.cmd("FETCH 1 FLAGS")[0], b"BAD")     # no mailbox selected
        self.assertEqual(c.cmd("CLOSE")[0], b"BAD")

    def test_rename_inbox(self):
        c = self.conn()
        c.cmd('DELETE "t_old_inbox"')
        u, _ = c.ok('STATUS INBOX (MESSAGES)')
        before = int(re.search(rb"MESSAGES (\d+)", u[0]).group(1))
        self.append(c, msg("for inbox rename"), box="INBOX")
        c.ok('RENAME INBOX "t_old_inbox"')
        u, _ = c.ok('STATUS INBOX (MESSAGES)')
        self.assertHas(u, rb"MESSAGES 0")
        u, _ = c.ok('STATUS "t_old_inbox" (MESSAGES)')
        self.assertHas(u, rb"MESSAGES %d" % (before + 1))
        # put them back so other tests see INBOX as it was
        c.ok('SELECT "t_old_inbox"')
        c.ok("MOVE 1:* INBOX")
        c.ok("UNSELECT")
        c.ok('DELETE "t_old_inbox"')


class TestAppendFetch(Base):
    def test_append_byte_exact_8bit(self):
        c = self.conn()
        self.fresh(c)
        data = (b"From: x@example.org\r\nSubject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\n"
                b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit"
                b"\r\n\r\nGr\xc3\xbc\xc3\x9fe \xe2\x82\xac\r\n  trailing  \r\n\r\n.\r\nend")
        uid = self.append(c, data, flags="\\Flagged $Label1",
                          date="05-Mar-2021 10:11:12 +0100")
        u, _ = c.ok("UID FETCH %d (BODY.PEEK[] RFC822.SIZE FLAGS INTERNALDATE)" % uid)
        self.assertHas(u, b"RFC822.SIZE %d" % len(data))
        self.assertIn(b"BODY[] {%d}\r\n" % len(data) + data, u[-1])
        self.assertHas(u, rb"FLAGS \(\\Flagged \$Label1\)")
        self.assertHas(u, rb'INTERNALDATE "05-Mar-2021 10:11:12 \+0100"')

    def test_append_literal_plus_and_multiappend(self):
        c = self.conn()
        self.fresh(c, select=False)
        a, b = msg("lp1"), msg("lp2")
        tag = c.tag()
        c.send(tag + b' APPEND "%s" {%d+}\r\n' % (self.box.encode(), len(a)) + a +
               b" (\\Seen) {%d+}\r\n" % len(b) + b + b"\r\n")
        st, text, _ = c.finish(tag)
        self.assertEqual(st, b"OK", text)
        m = re.search(rb"\[APPENDUID \d+ (\d+):(\d+)\]", text)
        self.assertTrue(m, text)
        self.assertEqual(int(m.group(2)) - int(m.group(1)), 1)
        u, _ = c.ok('STATUS "%s" (MESSAGES UNSEEN)' % self.box)
        self.assertHas(u, rb"MESSAGES 2 UNSEEN 1")
        st, text, _ = c.cmd('APPEND "t_no_such_box" \0', msg("x"))
        self.assertEqual(st, b"NO")
        self.assertIn(b"[TRYCREATE]", text)
        st, text, _ = c.cmd('APPEND "%s" (\\Recent) \0' % self.box, msg("x"))
        self.assertEqual(st, b"BAD")

    def test_append_toobig_and_binary(self):
        c = self.conn()
        self.fresh(c)
        tag = c.tag()
        c.send(tag + b' APPEND "%s" {999999999999}\r\n' % self.box.encode())
        r = c.read_response()
        self.assertTrue(r.startswith(tag + b" NO") or r.startswith(tag + b" BAD"), r)
        self.assertIn(b"TOOBIG", r)
        c.ok("NOOP")                                   # still in sync
        data = b"Subject: bin\r\nContent-Type: application/octet-stream\r\n\r\nA\x00B\r\n"
        tag = c.tag()
        c.send(tag + b' APPEND "%s" ~{%d}\r\n' % (self.box.encode(), len(data)))
        self.assertTrue(c.read_response().startswith(b"+"))
        c.send(data + b"\r\n")
        st, text, _ = c.finish(tag)
        self.assertEqual(st, b"OK", text)
        u, _ = c.ok("FETCH 1 (BINARY.PEEK[] BINARY.SIZE[])")
        self.assertIn(b"BINARY[] ~{%d}\r\n" % len(data) + data, u[-1])
        self.assertIn(b"BINARY.SIZE[] %d" % len(data), u[-1])

    def test_fetch_items(self):
        c = self.conn()
        self.fresh(c)
        uid = self.append(c, MULTIPART)
        u, _ = c.ok("UID FETCH %d (UID FLAGS ENVELOPE BODYSTRUCTURE BODY RFC822.SIZE MODSEQ "
                    "EMAILID THREADID SAVEDATE)" % uid)
        f = u[-1]
        self.assertIn(b'ENVELOPE (NIL "parts" ((NIL NIL "a" "example.org"))', f)
        self.assertIn(b'BODYSTRUCTURE (("text" "plain" ("charset" "utf-8")', f)
        self.assertIn(b'"mixed" ("boundary" "XX")', f)
        self.assertRegex(f, rb"MODSEQ \(\d+\)")
        self.assertRegex(f, rb"EMAILID \(M[0-9a-f]+\)")
        self.assertIn(b"THREADID NIL", f)
        self.assertRegex(f, rb'SAVEDATE "\d\d-\w\w\w-\d{4} ')
        u, _ = c.ok("FETCH 1 (BODY.PEEK[HEADER.FIELDS (Subject)] BODY.PEEK[1] "
                    "BODY.PEEK[2.MIME] BODY.PEEK[]<0.6> BINARY.PEEK[2] BINARY.SIZE[2] "
                    "RFC822.HEADER BODY.PEEK[TEXT]<0.8>)")
        f = u[-1]
        self.assertIn(b"BODY[HEADER.FIELDS (Subject)] {18}\r\nSubject: parts\r\n\r\n", f)
        self.assertIn(b"BODY[1] {13}\r\nfirst part \xc3\xa4", f)
        self.assertIn(b"BODY[2.MIME] {", f)
        self.assertIn(b"BODY[]<0> {6}\r\nFrom: ", f)
        self.assertIn(b"BINARY[2] ~{10}\r\n" + bytes(range(10)), f)
        self.assertIn(b"BINARY.SIZE[2] 10", f)
        self.assertIn(b"RFC822.HEADER {", f)
        self.assertIn(b"BODY[TEXT]<0> {8}\r\npreamble", f)
        self.assertHasNot(u, rb"\\Seen")
        u, _ = c.ok("FETCH 1 (RFC822.TEXT)")            # sets \Seen implicitly
        self.assertHas(u, rb"FLAGS \(\\Seen")
        u, _ = c.ok("FETCH 1 FAST")
        self.assertHas(u, rb"FLAGS \(\\Seen.*INTERNALDATE.*RFC822.SIZE")
        self.assertEqual(c.cmd("FETCH 1 (BODY[1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17."
                               "18.19.20.21.22.23.24.25.26.27.28.29.30.31.32.33])")[0], b"BAD")
        self.assertEqual(c.cmd("FETCH 1 (NONSENSE)")[0], b"BAD")
        self.assertEqual(c.cmd("FETCH 1 BODY[")[0], b"BAD")

    def test_fetch_many_paused_output(self):
        """A FETCH whose output exceeds the server's queue must pause and resume."""
        c = self.conn()
        self.fresh(c)
        big = msg("big", body="x" * 200000 + "\r\n")
        for _ in range(8):
            self.append(c, big)
        u, _ = c.ok("FETCH 1:* BODY.PEEK[]")
        self.assertEqual(len(u), 8)
        for r in u:
            self.assertTrue(r.endswith(big + b")"))


    def test_fetch_large_message_streamed(self):
        """Big bodies are sent in pieces; the bytes must still be exact."""
        c = self.conn()
        self.fresh(c)
        body = "".join("line %07d with some text to make it longer\r\n" % i
                       for i in range(40000))
        data = msg("large", body=body)
        self.assertGreater(len(data), 1500000)
        self.append(c, data)
        self.append(c, msg("small"))
        u, _ = c.ok("FETCH 1:2 (BODY.PEEK[])")
        self.assertEqual(u[0], b"* 1 FETCH (BODY[] {%d}\r\n" % len(data) + data + b")")
        u, _ = c.ok("FETCH 1 (UID BODY.PEEK[]<100.700000>)")
        self.assertEqual(u[0], b"* 1 FETCH (UID 1 BODY[]<100> {700000}\r\n" +
                         data[100:700100] + b")")
        u, _ = c.ok("FETCH 1 (RFC822)")
        self.assertEqual(self.norecent(u[0]), b"* 1 FETCH (FLAGS (\\Seen) RFC822 {%d}\r\n" %
                         len(data) + data + b")")

class TestStoreCopy(Base):
    def test_store_variants(self):
        c = self.conn()
        self.fresh(c)
        for i in range(3):
            self.append(c, msg("st%d" % i))
        u, _ = c.ok("STORE 1:2 +FLAGS (\\Flagged kw1)")
        self.assertHas(u, rb"^\* FLAGS \(.*kw1")      # new keyword announced
        self.assertHas(u, rb"^\* 1 FETCH \(FLAGS \(\\Flagged kw1\)\)$")
        u, _ = c.ok("STORE 2 -FLAGS (kw1)")
        self.assertHas(u, rb"^\* 2 FETCH \(FLAGS \(\\Flagged\)\)$")
        u, _ = c.ok("STORE 3 FLAGS.SILENT (\\Answered)")
        self.assertEqual(u, [])
        u, _ = c.ok("UID STORE 3 FLAGS (\\Draft)")
        self.assertHas(u, rb"^\* 3 FETCH \(UID 3 FLAGS \(\\Draft\)\)$")
        self.assertEqual(c.cmd("STORE 1 +FLAGS (\\Recent)")[0], b"BAD")
        self.assertEqual(c.cmd("STORE 1 FROBNICATE (\\Seen)")[0], b"BAD")
        self.assertEqual(c.cmd("STORE 99 +FLAGS (\\Seen)")[0], b"BAD")
        c.ok("UID STORE 99 +FLAGS (\\Seen)")          # UIDs that do not exist: no-op

    def test_condstore(self):
        c = self.conn()
        self.fresh(c)
        self.append(c, msg("cs1"))
        self.append(c, msg("cs2"))
        u, _ = c.ok("FETCH 1:2 (MODSEQ)")
        m1 = int(re.search(rb"MODSEQ \((\d+)\)", u[1]).group(1))   # the higher one
        u, _ = c.ok("STORE 1 +FLAGS (\\Seen)")
        m1b = int(re.search(rb"MODSEQ \((\d+)\)", u[0]).group(1))
        self.assertGreater(m1b, m1)
        # UNCHANGEDSINCE older than message 1's modseq: refused, MODIFIED
        st, text, u = c.cmd("STORE 1:2 (UNCHANGEDSINCE %d) +FLAGS (\\Flagged)" % m1)
        self.assertEqual(st, b"OK")
        self.assertIn(b"[MODIFIED 1]", text)
        self.assertHas(u, rb"^\* 2 FETCH \(FLAGS \(\\Flagged\) MODSEQ")
        # .SILENT still reports the new MODSEQ (RFC 7162 3.1.3)
        u, _ = c.ok("UID STORE 2 (UNCHANGEDSINCE 999999999) +FLAGS.SILENT (\\Seen)")
        self.assertHas(u, rb"^\* 2 FETCH \(UID 2 MODSEQ \(\d+\)\)$")
        u, _ = c.ok("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % m1b)
        self.assertEqual(len(u), 1)
        self.assertHas(u, rb"^\* 2 FETCH")
        u, _ = c.ok("SEARCH MODSEQ %d" % m1b)
        self.assertHas(u, rb"^\* SEARCH 1 2 \(MODSEQ \d+\)$")
        u, _ = c.ok('SELECT "%s" (CONDSTORE)' % self.box)
        self.assertHas(u, rb"^\* OK \[HIGHESTMODSEQ \d+\]")

    def test_copy_move_uidplus(self):
        c = self.conn()
        self.fresh(c)
        dst = self.fresh(c, self.box + "_dst", select=False)
        c.ok('SELECT "%s"' % self.box)
        for i in range(4):
            self.append(c, msg("cp%d" % i))
        u, text = c.ok('COPY 1:2 "%s"' % dst)
        self.assertRegex(text, rb"^\[COPYUID \d+ 1:2 1:2\]")
        st, text, _ = c.cmd('COPY 1 "t_nowhere"')
        self.assertEqual(st, b"NO")
        self.assertIn(b"[TRYCREATE]", text)
        st, text, u = c.cmd('MOVE 2:3 "%s"' % dst)
        self.assertEqual(st, b"OK")
        self.assertRegex(u[0], rb"^\* OK \[COPYUID \d+ 2:3 3:4\]")
        self.assertEqual([x for x in u if x.endswith(b"EXPUNGE")],
                         [b"* 3 EXPUNGE", b"* 2 EXPUNGE"])
        u, _ = c.ok("UID SEARCH ALL")
        self.assertHas(u, rb"^\* SEARCH 1 4$")
        c.ok("ENABLE QRESYNC")
        st, text, u = c.cmd('UID MOVE 4 "%s"' % dst)
        self.assertEqual(st, b"OK")
        self.assertHas(u, rb"^\* VANISHED 4$")
        u, _ = c.ok('STATUS "%s" (MESSAGES)' % dst)
        self.assertHas(u, rb"MESSAGES 5")
        c.ok('DELETE "%s"' % dst)

    def test_expunge_and_uid_expunge(self):
        c = self.conn()
        self.fresh(c)
        for i in range(5):
            self.append(c, msg("ex%d" % i))
        c.ok("STORE 1:4 +FLAGS.SILENT (\\Deleted)")
        u, _ = c.ok("UID EXPUNGE 2:3")
        self.assertEqual(u, [b"* 3 EXPUNGE", b"* 2 EXPUNGE"])
        u, _ = c.ok("EXPUNGE")
        self.assertEqual(u, [b"* 2 EXPUNGE", b"* 1 EXPUNGE"])
        u, _ = c.ok("UID SEARCH ALL")
        self.assertHas(u, rb"^\* SEARCH 5$")


class TestSearch(Base):
    @classmethod
    def setUpClass(cls):
        c = WORLD.connect()
        box = "t_searchbox"
        c.cmd('DELETE "%s"' % box)
        c.ok('CREATE "%s"' % box)
        msgs = [
            (msg("apple pie", "the quick brown fox\r\n", frm="Ann <ann@a.org>",
                 to="Bob <bob@b.org>", extra="Cc: carol@c.org\r\nX-Tag: red\r\n",
                 date="Tue, 02 Mar 2021 10:00:00 +0000"),
             "\\Seen \\Answered", "01-Mar-2021 10:00:00 +0000"),
            (msg("banana split", "lazy dog " + "y" * 3000 + "\r\n", frm="Bea <bea@b.org>",
                 to="Ann <ann@a.org>", extra="Bcc: dan@d.org\r\n",
                 date="Wed, 10 Mar 2021 10:00:00 +0000"),
             "\\Flagged \\Draft $Important", "10-Mar-2021 12:00:00 +0000"),
            (msg("cherry =?utf-8?q?t=C3=A4rtchen?=", "Gr\u00fc\u00dfe\r\n",
                 date="Sat, 20 Mar 2021 10:00:00 +0000",
                 extra="Content-Type: text/plain; charset=utf-8\r\n"),
             "\\Deleted", "20-Mar-2021 23:30:00 +0000"),
        ]
        for data, flags, date in msgs:
            c.ok(('APPEND "%s" (%s) "%s" ' % (box, flags, date)).encode() + b"\0", data)
        c.close()

    def setUp(self):
        super().setUp()
        self.c = self.conn()
        self.c.ok('SELECT "t_searchbox"')

    def search(self, crit, expect, uid=False):
        u, _ = self.c.ok(("UID SEARCH " if uid else "SEARCH ") + crit)
        got = self.assertHas(u, rb"^\* SEARCH").split()[2:]
        self.assertEqual([int(x) for x in got], expect, crit)

    def test_flag_keys(self):
        self.search("ALL", [1, 2, 3])
        self.search("SEEN", [1])
        self.search("UNSEEN", [2, 3])
        self.search("ANSWERED", [1])
        self.search("UNANSWERED", [2, 3])
        self.search("FLAGGED", [2])
        self.search("UNFLAGGED", [1, 3])
        self.search("DELETED", [3])
        self.search("UNDELETED", [1, 2])
        self.search("DRAFT", [2])
        self.search("UNDRAFT", [1, 3])
        self.search("KEYWORD $Important", [2])
        self.search("UNKEYWORD $Important", [1, 3])
        self.search("NOT SEEN", [2, 3])
        self.search("OR SEEN FLAGGED", [1, 2])
        self.search("(SEEN ANSWERED)", [1])
        self.search("2:3", [2, 3])
        self.search("UID 1,3", [1, 3])
        self.search("1:*", [1, 2, 3], uid=True)

    def test_date_size_keys(self):
        self.search("BEFORE 10-Mar-2021", [1])
        self.search("ON 10-Mar-2021", [2])
        self.search("SINCE 10-Mar-2021", [2, 3])
        self.search("SENTBEFORE 10-Mar-2021", [1])
        self.search("SENTON 10-Mar-2021", [2])
        self.search("SENTSINCE 20-Mar-2021", [3])
        self.search("LARGER 1000", [2])
        self.search("SMALLER 1000", [1, 3])
        self.search("OLDER 1", [1, 2, 3])
        self.search("YOUNGER 1", [])
        self.search("SAVEDSINCE 01-Jan-2020", [1, 2, 3])
        self.search("SAVEDBEFORE 01-Jan-2020", [])
        self.search("SAVEDATESUPPORTED", [1, 2, 3])
        self.assertEqual(self.c.cmd("SEARCH BEFORE 32-Mar-2021")[0], b"BAD")

    def test_header_and_text_keys(self):
        self.search("FROM ann", [1])
        self.search("TO ann", [2])
        self.search("CC carol", [1])
        self.search("BCC dan", [2])
        self.search("SUBJECT banana", [2])
        self.search('SUBJECT "APPLE PIE"', [1])
        self.search("HEADER X-Tag red", [1])
        self.search('HEADER X-Tag ""', [1])
        self.search("BODY fox", [1])
        self.search("BODY apple", [])
        self.search("TEXT apple", [1])
        self.search("TEXT lazy", [2])
        st, text, u = self.c.cmd(b"SEARCH CHARSET UTF-8 SUBJECT \0",
                                 "tärtchen".encode())
        self.assertEqual(st, b"OK")
        self.assertHas(u, rb"^\* SEARCH 3$")
        st, text, u = self.c.cmd(b"SEARCH CHARSET UTF-8 BODY \0", "GRÜSSE"[:3].encode())
        self.assertHas(u, rb"^\* SEARCH 3$")
        st, text, _ = self.c.cmd("SEARCH CHARSET KOI8-R SUBJECT x")
        self.assertEqual(st, b"NO")
        self.assertIn(b"[BADCHARSET", text)

    def test_esearch_and_searchres(self):
        u, _ = self.c.ok("SEARCH RETURN (MIN MAX COUNT) ALL")
        self.assertHas(u, rb'^\* ESEARCH \(TAG "W\d+"\) MIN 1 MAX 3 COUNT 3$')
        u, _ = self.c.ok("UID SEARCH RETURN () UNSEEN")
        self.assertHas(u, rb'^\* ESEARCH \(TAG "W\d+"\) UID ALL 2:3$')
        u, _ = self.c.ok("SEARCH RETURN (COUNT) KEYWORD nothing")
        self.assertHas(u, rb'COUNT 0$')
        u, _ = self.c.ok("SEARCH RETURN (SAVE) FLAGGED")
        self.assertEqual(u, [])
        u, _ = self.c.ok("FETCH $ (UID)")
        self.assertEqual(len(u), 1)
        self.assertHas(u, rb"^\* 2 FETCH \(UID 2\)$")
        self.search("OR $ SEEN", [1, 2])
        u, _ = self.c.ok("UID SEARCH RETURN (SAVE MIN) ALL")
        self.assertHas(u, rb"MIN 1$")
        self.search("UID $", [1])
        self.assertEqual(self.c.cmd("SEARCH RETURN (BOGUS) ALL")[0], b"BAD")

    def test_objectid_keys(self):
        u, _ = self.c.ok("FETCH 2 EMAILID")
        eid = re.search(rb"EMAILID \((M[0-9a-f]+)\)", u[0]).group(1).decode()
        self.search("EMAILID " + eid, [2])
        self.search("THREADID T1", [])

    def test_rev2_search_form(self):
        d = self.conn()
        d.ok("ENABLE IMAP4rev2")
        u, _ = d.ok('SELECT "t_searchbox"')
        self.assertHasNot(u, rb"RECENT")
        self.assertHas(u, rb'^\* LIST \(\) "/" "t_searchbox"$')
        u, _ = d.ok("SEARCH SEEN")
        self.assertHas(u, rb'^\* ESEARCH \(TAG "W\d+"\) ALL 1$')

    def test_header_too_big_for_summary(self):
        """A header over half of VAULT_META_CACHE_MAX gets no summary: header keys
        are searched in the message itself (read and parsed once per message, also
        when several keys or a BODY key ask for it)."""
        c = self.conn()
        self.fresh(c)
        pad = "".join("X-Pad-%d: %s\r\n" % (i, "p" * 70) for i in range(1800))
        self.append(c, msg("huge header", "needle in the body\r\n", frm="Zed <zed@z.org>",
                           extra=pad))
        self.append(c, msg("small header", "hay\r\n", frm="Zed <zed@z.org>"))
        for crit, expect in [("FROM zed", [1, 2]), ("SUBJECT huge", [1]),
                             ("FROM zed SUBJECT huge BODY needle", [1]),
                             ("OR SUBJECT nothing BODY needle", [1]),
                             ("BODY needle FROM zed HEADER X-Pad-1799 ppp", [1]),
                             ("NOT SUBJECT huge", [2])]:
            u, _ = c.ok("SEARCH " + crit)
            got = self.assertHas(u, rb"^\* SEARCH").split()[2:]
            self.assertEqual([int(x) for x in got], expect, crit)
        u, _ = c.ok("FETCH 1 (BODY.PEEK[TEXT] BODY.PEEK[HEADER.FIELDS (Subject)])")
        self.assertHas(u, rb"needle in the body")
        self.assertHas(u, rb"Subject: huge header")
        # the body read whole first, then a header section (parsed once, from it)
        u, _ = c.ok("FETCH 1 (RFC822 BODY.PEEK[HEADER.FIELDS (From)])")
        self.assertHas(u, rb"X-Pad-1799: p+\r\n\r\nneedle in the body")
        self.assertHas(u, rb"From: Zed <zed@z.org>\r\n\r\n\)")


class TestConcurrency(Base):
    def test_two_connections_see_changes(self):
        a, b = self.conn(), self.conn()
        self.fresh(a)
        for i in range(3):
            self.append(a, msg("cc%d" % i))
        b.ok('SELECT "%s"' % self.box)
        a.ok("STORE 2 +FLAGS (\\Flagged)")
        u, _ = b.ok("NOOP")
        self.assertHas(u, rb"^\* 2 FETCH \(UID 2 FLAGS \(\\Flagged\)\)$")
        a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        a.ok("EXPUNGE")
        # RFC 9051 7.5.1: no EXPUNGE during FETCH/STORE/SEARCH; sequence numbers hold
        u, _ = b.ok("FETCH 3 (UID)")
        self.assertHasNot(u, rb"EXPUNGE")
        self.assertHas(u, rb"^\* 3 FETCH \(UID 3\)$")
        u, _ = b.ok("SEARCH ALL")
        self.assertHas(u, rb"^\* SEARCH 2 3$")    # 1 is expunged, but its seq stays
        u, _ = b.ok("NOOP")
        self.assertHas(u, rb"^\* 1 EXPUNGE$")
        self.append(a, msg("cc-new"))
        u, _ = b.ok("NOOP")
        self.assertHas(u, rb"^\* 3 EXISTS$")
        u, _ = b.ok("FETCH 3 UID")
        self.assertHas(u, rb"UID 4")

    def test_idle_sees_other_connection(self):
        a, b = self.conn(), self.conn()
        self.fresh(a)
        b.ok('SELECT "%s"' % self.box)
        tag = b.tag()
        b.send(tag + b" IDLE\r\n")
        self.assertTrue(b.read_response().startswith(b"+"))
        t0 = time.time()
        self.append(a, msg("idle1"))
        self.assertTrue(b.pending(1.0), "no update within 1 s")
        r = b.read_response()
        self.assertEqual(r, b"* 1 EXISTS")
        self.assertLess(time.time() - t0, 1.0)

        def next_update():
            self.assertTrue(b.pending(1.0), "no update within 1 s")
            while True:
                r = b.read_response()
                if not r.endswith(b" RECENT"):
                    return self.norecent(r)
        a.ok("STORE 1 +FLAGS (\\Seen)")
        self.assertRegex(next_update(), rb"^\* 1 FETCH \(UID 1 FLAGS \(\\Seen")
        a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        next_update()
        a.ok("EXPUNGE")
        self.assertEqual(next_update(), b"* 1 EXPUNGE")
        b.send(b"DONE\r\n")
        st, text, _ = b.finish(tag)
        self.assertEqual(st, b"OK")
        b.ok("NOOP")

    def test_idle_sees_external_delivery(self):
        a = self.conn()
        a.ok("SELECT INBOX")
        tag = a.tag()
        a.send(tag + b" IDLE\r\n")
        self.assertTrue(a.read_response().startswith(b"+"))
        WORLD.deliver(msg("delivered while idle"))
        t0 = time.time()
        self.assertTrue(a.pending(2.0), "no EXISTS after delivery")
        r = a.read_response()
        self.assertRegex(r, rb"^\* \d+ EXISTS$")
        self.assertLess(time.time() - t0, 1.5)
        a.send(b"DONE\r\n")
        st, _, u = a.finish(tag)
        self.assertEqual(st, b"OK")
        u, _ = a.ok("FETCH * (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        self.assertHas(u, rb"delivered while idle")
        a.ok("STORE * +FLAGS.SILENT (\\Deleted)")
        a.ok("EXPUNGE")

    def test_idle_bad_continuation(self):
        a = self.conn()
        tag = a.tag()
        a.send(tag + b" IDLE\r\n")
        self.assertTrue(a.read_response().startswith(b"+"))
        a.send(b"NOT-DONE\r\n")
        st, _, _ = a.finish(tag)
        self.assertEqual(st, b"BAD")
        a.ok("NOOP")


class TestQresync(Base):
    def test_qresync_select_and_vanished(self):
        c = self.conn()
        self.fresh(c)
        for i in range(4):
            self.append(c, msg("qr%d" % i))
        u, _ = c.ok('STATUS "%s" (UIDVALIDITY HIGHESTMODSEQ)' % self.box)
        uv = int(re.search(rb"UIDVALIDITY (\d+)", u[0]).group(1))
        hms = int(re.search(rb"HIGHESTMODSEQ (\d+)", u[0]).group(1))
        c.ok("STORE 2 +FLAGS (\\Seen)")
        c.ok("STORE 3 +FLAGS.SILENT (\\Deleted)")
        c.ok("EXPUNGE")
        c.ok("UNSELECT")
        self.assertEqual(c.cmd('SELECT "%s" (QRESYNC (%d %d))' % (self.box, uv, hms))[0],
                         b"BAD")                     # not enabled yet
        c.ok("ENABLE QRESYNC")
        u, _ = c.ok('SELECT "%s" (QRESYNC (%d %d 1:4))' % (self.box, uv, hms))
        self.assertHas(u, rb"^\* VANISHED \(EARLIER\) 3$")
        self.assertHas(u, rb"^\* 2 FETCH \(UID 2 FLAGS \(\\Seen\) MODSEQ \(\d+\)\)$")
        u, _ = c.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % hms)
        self.assertHas(u, rb"^\* VANISHED \(EARLIER\) 3$")
        self.assertEqual(c.cmd("FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")[0], b"BAD")
        # a second connection's expunge arrives as VANISHED
        d = self.conn()
        d.ok('SELECT "%s"' % self.box)
        d.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        d.ok("EXPUNGE")
        u, _ = c.ok("NOOP")
        self.assertHas(u, rb"^\* VANISHED 1$")
        u, text = c.ok('SELECT "%s"' % self.box)
        self.assertHas(u, rb"^\* OK \[CLOSED\]")


class TestCompress(Base):
    def test_compress_deflate(self):
        c = self.conn()
        self.fresh(c)
        self.append(c, msg("zip", body="compress me " * 500 + "\r\n"))
        tag = c.tag()
        c.send(tag + b" COMPRESS DEFLATE\r\n")
        r = c.read_response()
        self.assertTrue(r.startswith(tag + b" OK"), r)
        c.start_compress()
        u, _ = c.ok("FETCH 1 (BODY.PEEK[])")
        self.assertIn(b"compress me compress me", u[0])
        st, text, _ = c.cmd("COMPRESS DEFLATE")
        self.assertEqual(st, b"NO")
        self.assertIn(b"COMPRESSIONACTIVE", text)
        u, _ = c.ok('LIST "" "%s"' % self.box)
        self.assertEqual(len(u), 1)
        self.assertEqual(c.cmd("BOGUS")[0], b"BAD")


class TestMalformed(Base):
    def test_garbage_and_bad_syntax(self):
        c = self.conn()
        for line in [b"\x01\x02garbage", b"A1 FETCH (((", b"A2 SELECT", b"A3 LIST \"\"",
                     b"A4 STORE", b"A5 NOOP extra", b"A6 SEARCH )", b"A7 UNKNOWNCMD",
                     b"A8 LOGIN user pass", b"A9 SELECT \"unterminated",
                     b"A10 CREATE \"a\" \"b\" \"c\""]:
            c.send(line + b"\r\n")
            r = c.read_response()
            self.assertRegex(r, rb"^(\*|A\d+) BAD ", line)
        c.ok("NOOP")

    def test_long_line_and_literals(self):
        c = self.conn()
        c.send(b"L1 NOOP " + b"x" * 100000 + b"\r\n")
        r = c.read_response()
        self.assertRegex(r, rb"^(\*|L1) BAD")
        c.ok("NOOP")
        c.send(b"L2 APPEND INBOX {5000000000}\r\n")
        r = c.read_response()
        self.assertRegex(r, rb"^L2 (NO|BAD) \[TOOBIG\]")
        c.ok("NOOP")
        st, _, _ = c.cmd(b"SEARCH \0", b"x")   # literal in the wrong state: BAD, no crash
        self.assertEqual(st, b"BAD")
        c.ok("NOOP")

    def test_bad_sequence_sets_and_states(self):
        c = self.conn()
        self.assertEqual(c.cmd("FETCH 1 FLAGS")[0], b"BAD")      # nothing selected
        self.assertEqual(c.cmd("EXPUNGE")[0], b"BAD")
        self.fresh(c)
        self.append(c, msg("seq"))
        for s in ["0", "abc", "1:0", "5", "1,,2", "-1", "4294967296", "1:*:2"]:
            self.assertEqual(c.cmd("FETCH %s FLAGS" % s)[0], b"BAD", s)
        c.ok("UID FETCH 5:7 FLAGS")                               # UIDs: just nothing
        c.ok("FETCH * FLAGS")
        self.assertEqual(c.cmd("STARTTLS")[0], b"BAD")
        self.assertEqual(c.cmd("AUTHENTICATE PLAIN")[0], b"BAD")
        c.ok("NOOP")


def main():
    global WORLD
    WORLD = World()
    try:
        prog = unittest.main(exit=False, verbosity=2)
    finally:
        bad = WORLD.stop()
    res = prog.result
    failed = len(res.failures) + len(res.errors) + (1 if bad else 0)
    if bad:
        print("FAIL: server: " + bad)
    print("%d passed, %d failed, %d skipped" % (
        res.testsRun - len(res.failures) - len(res.errors) - len(res.skipped),
        failed, len(res.skipped)))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
