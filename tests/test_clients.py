#!/usr/bin/env python3
"""Real mail clients against a real server over TLS: mbsync (isync) and fetchmail.

Each scenario runs against Debian's Dovecot (which proves the test) and against
sealmail-imapd; the certificate is checked against the server's own self-signed cert.

mbsync: a 200-message INBOX and a subfolder are synced to a Maildir (every message
  byte-exact, flags mapped), then a message is added in the Maildir's new/, a flag is
  changed by renaming (:2,S -> :2,FS), a local folder is created; the second sync must
  bring the message (byte-exact), the flags and the folder to the server (checked with
  imaplib); a third sync must find nothing to do (no APPEND/STORE/CREATE/EXPUNGE sent,
  nothing changed on either side). With sealmail the first login uses passphrase +
  OTP and the later ones the passphrase alone (the unlock window).
fetchmail: retrieves every INBOX message over IMAPS with keep/fetchall into an MDA
  that writes one file per message; each must equal the server's bytes once
  fetchmail's own Received: line is removed.

Usage: test_clients.py [--peers dovecot,sealmail] [--build DIR] [--keep]
Exit: 0 pass, 1 failure, 77 skip (sealmail-imapd not built: Dovecot part still runs).
"""

import argparse
import hashlib
import imaplib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "peers"))
import imapwire  # noqa: E402

SKIP = 77
USER = "alice"
SUBFOLDER = "Lists/dev"
LOCALFOLDER = "Pushed"
N_INBOX = 200
N_SUB = 25


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


# -- messages ----------------------------------------------------------------------------

def clean_corpus():
    """Corpus messages a Maildir client can store unchanged: CRLF only, no NUL, final
    CRLF (the corpus' malformed-line-ending cases belong to the differential test)."""
    out = []
    d = os.path.join(HERE, "corpus")
    for n in sorted(os.listdir(d)):
        if not n.endswith(".eml"):
            continue
        with open(os.path.join(d, n), "rb") as f:
            m = f.read()
        if b"\x00" in m or not m.endswith(b"\r\n") or m.startswith(b"\r\n"):
            continue
        if m.replace(b"\r\n", b"").count(b"\n") or m.replace(b"\r\n", b"").count(b"\r"):
            continue
        if b"\r\n\r\n" not in m or len(m) > 60000:
            continue
        out.append(m)
    return out


def synthetic(i, folder):
    """A deterministic, varied message: plain, UTF-8, multipart with a base64
    attachment of growing size."""
    mid = "<m%03d.%s@clients.test>" % (i, folder.lower().replace("/", "."))
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(1700000000 + i * 3607))
    h = ("From: Sender %d <sender%d@example.org>\r\nTo: alice@example.org\r\n"
         "Subject: %s message %d\r\nDate: %s\r\nMessage-ID: %s\r\n" % (
             i, i % 7, folder, i, date, mid))
    if i % 10 == 3:
        import base64
        blob = hashlib.sha256(b"%d" % i).digest() * (40 * (i % 50 + 1))
        b64 = base64.encodebytes(blob).replace(b"\n", b"\r\n").decode()
        return (h + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b%d\"\r\n"
                "\r\n--b%d\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n"
                "--b%d\r\nContent-Type: application/octet-stream\r\n"
                "Content-Transfer-Encoding: base64\r\n\r\n%s--b%d--\r\n" % (
                    i, i, i, b64, i)).encode()
    if i % 10 == 7:
        return (h + "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                "Content-Transfer-Encoding: 8bit\r\n\r\nGrüße Nummer %d ✓\r\n" % i).encode()
    body = "".join("line %d of message %d\r\n" % (k, i) for k in range(i % 40 + 1))
    return (h + "\r\n" + body).encode()


def inbox_messages():
    msgs = clean_corpus()
    i = 0
    while len(msgs) < N_INBOX:
        msgs.append(synthetic(i, "INBOX"))
        i += 1
    return msgs[:N_INBOX]


def sub_messages():
    return [synthetic(i, SUBFOLDER) for i in range(N_SUB)]


def flags_for(i):
    """Server-side flags the messages start with (so mbsync has flags to map)."""
    f = []
    if i % 3 == 0:
        f.append("\\Seen")
    if i % 11 == 0:
        f.append("\\Flagged")
    if i % 17 == 0:
        f.append("\\Answered")
    return f


def populate(peer):
    c = peer.connect(USER, tls=True)
    try:
        st, text, _ = c.cmd(b"CREATE " + imapwire.quote(SUBFOLDER))
        check(st == b"OK", "CREATE %s: %s %r" % (SUBFOLDER, st, text))
        for box, msgs in (("INBOX", inbox_messages()), (SUBFOLDER, sub_messages())):
            for i, m in enumerate(msgs):
                c.append(box, m, flags=flags_for(i))
    finally:
        c.logout()


# -- server state over IMAP (imaplib, as the brief asks) -----------------------------------

def imap_state(peer, box):
    """{uid: (frozenset(flags), bytes)} of a mailbox, read with imaplib."""
    m = peer.imaplib(USER)
    try:
        typ, _ = m.select(imaplib_quote(box), readonly=True)
        check(typ == "OK", "SELECT %s failed" % box)
        typ, data = m.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
        check(typ == "OK", "UID FETCH %s failed: %r" % (box, data))
        out = {}
        for item in data:
            if not isinstance(item, tuple):
                continue
            meta, body = item
            mu = re.search(rb"UID (\d+)", meta)
            mf = re.search(rb"FLAGS \(([^)]*)\)", meta)
            check(mu is not None, "no UID in %r" % meta)
            flags = frozenset(mf.group(1).split()) if mf else None
            out[int(mu.group(1))] = (flags, body)
        # FLAGS may come after the literal (in the closing part): fetch separately
        typ, fl = m.uid("FETCH", "1:*", "(UID FLAGS)")
        for line in fl:
            if isinstance(line, bytes):
                mu = re.search(rb"UID (\d+)", line)
                mf = re.search(rb"FLAGS \(([^)]*)\)", line)
                if mu and mf and int(mu.group(1)) in out:
                    out[int(mu.group(1))] = (frozenset(mf.group(1).split()),
                                             out[int(mu.group(1))][1])
        return out
    finally:
        try:
            m.logout()
        except Exception:  # noqa: BLE001
            pass


def imaplib_quote(box):
    return '"%s"' % box


def imap_mailboxes(peer):
    m = peer.imaplib(USER)
    try:
        typ, data = m.list()
        check(typ == "OK", "LIST failed")
        names = set()
        for line in data:
            if isinstance(line, bytes):
                mm = re.match(rb'\(.*?\) (?:"[^"]*"|NIL) "?(.*?)"?$', line)
                if mm:
                    names.add(mm.group(1).decode())
        return names
    finally:
        m.logout()


# -- Maildir -----------------------------------------------------------------------------

MAILDIR_FLAGS = {"D": b"\\Draft", "F": b"\\Flagged", "R": b"\\Answered", "S": b"\\Seen",
                 "T": b"\\Deleted"}


TUID = re.compile(rb"^X-TUID: [A-Za-z0-9+/]{12}\n", re.M)


def strip_tuid(m):
    """mbsync inserts an 'X-TUID: <12 chars>' line at the end of the header of every
    message it copies (its way to find the copy again); it is mbsync's, not the
    server's."""
    end = m.find(b"\n\n")
    head = m[:end + 1] if end >= 0 else m
    new = TUID.sub(b"", head, count=1)
    return new + m[len(head):]


def maildir_state(path):
    """{filename-without-flags: (frozenset(imap flags), bytes without X-TUID)}."""
    out = {}
    for sub in ("cur", "new"):
        d = os.path.join(path, sub)
        if not os.path.isdir(d):
            continue
        for fn in os.listdir(d):
            base, _, info = fn.partition(":2,")
            flags = frozenset(MAILDIR_FLAGS[c] for c in info if c in MAILDIR_FLAGS)
            with open(os.path.join(d, fn), "rb") as f:
                out[base] = (flags, strip_tuid(f.read()))
    return out


def snapshot(root):
    """Every file under root with its content hash: for "nothing changed" checks.
    mbsync's own state files are left out (it may rewrite them unchanged)."""
    out = {}
    for dp, _, fns in os.walk(root):
        for fn in fns:
            if fn.startswith(".mbsyncstate") or fn in (".uidvalidity", ".isyncuidmap.db"):
                continue
            p = os.path.join(dp, fn)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


def lf(b):
    return b.replace(b"\r\n", b"\n")


def norm_flags(fs):
    return frozenset(f for f in fs if f.lower() != b"\\recent")


# -- mbsync ------------------------------------------------------------------------------

def write_passcmd(peer, work):
    """A PassCmd script: the password, or for sealmail the passphrase followed by a
    fresh OTP while the file `use-otp` exists (passphrase alone otherwise: the unlock
    window)."""
    script = os.path.join(work, "passcmd.sh")
    if peer.name == "sealmail":
        body = ("#!/bin/sh\nprintf '%%s' %s\nif [ -e %s ]; then exec %s token otp %s; fi\n"
                "echo\n" % (shq(peer.passphrase(USER)), shq(os.path.join(work, "use-otp")),
                           shq(peer.prog["keymgr"]), shq(peer.token_file(USER))))
    else:
        body = "#!/bin/sh\nprintf '%%s\\n' %s\n" % shq(peer.password(USER))
    with open(script, "w") as f:
        f.write(body)
    os.chmod(script, 0o700)
    return script


def shq(s):
    return "'" + s.replace("'", "'\\''") + "'"


def write_mbsyncrc(peer, work, passcmd):
    maildir = os.path.join(work, "Mail")
    rc = os.path.join(work, "mbsyncrc")
    os.makedirs(maildir, exist_ok=True)
    with open(rc, "w") as f:
        f.write("""IMAPAccount acct
Host localhost
Port %d
User %s
PassCmd "%s"
SSLType IMAPS
SSLVersions TLSv1.2 TLSv1.3
SystemCertificates no
CertificateFile %s
AuthMechs LOGIN
PipelineDepth 1

IMAPStore remote
Account acct

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns *
Create Both
Expunge None
SyncState *
CopyArrivalDate yes
""" % (peer.imaps_port, USER, passcmd, peer.cafile, maildir, maildir))
    return rc, maildir


def run_mbsync(rc, work, label):
    t = time.time()
    r = subprocess.run(["mbsync", "-c", rc, "-Dn", "-a"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=600,
                       env=dict(os.environ, HOME=work))
    out = r.stdout.decode(errors="replace")
    with open(os.path.join(work, "mbsync-%s.log" % label), "w") as f:
        f.write(out)
    print("    mbsync %s: exit %d, %.1f s" % (label, r.returncode, time.time() - t))
    if r.returncode != 0:
        print(tail(out, 40))
    check(r.returncode == 0, "mbsync %s exited %d" % (label, r.returncode))
    return out


def tail(s, n):
    return "\n".join("      | " + x for x in s.splitlines()[-n:])


def sent_commands(out):
    """The IMAP commands mbsync sent (from its -Dn protocol trace: lines '>>> TAG CMD')."""
    cmds = []
    for line in out.splitlines():
        m = re.match(r"^(?:\S+ )?>>> \d+ (.*)$", line.strip())
        if m:
            cmds.append(m.group(1))
    return cmds


def compare_box(server, local, box):
    """Every server message is in the Maildir byte-exact (mbsync stores LF line ends)
    with its flags, and nothing else is there."""
    want = {}
    for uid, (flags, body) in server.items():
        want.setdefault(lf(body), []).append(norm_flags(flags))
    got = {}
    for name, (flags, body) in local.items():
        got.setdefault(body, []).append(flags)
    missing = [b for b in want if b not in got]
    extra = [b for b in got if b not in want]
    check(not missing and not extra and len(server) == len(local),
          "%s: server %d msgs, maildir %d; %d server messages missing locally "
          "(first: %r), %d unexpected local (first: %r)" % (
              box, len(server), len(local), len(missing),
              missing[0][:200] if missing else None, len(extra),
              extra[0][:200] if extra else None))
    for body, fl in want.items():
        check(sorted(map(sorted, fl)) == sorted(map(sorted, got[body])),
              "%s: flags differ for %r: server %r maildir %r" % (
                  box, body[:80], fl, got[body]))


def mbsync_scenario(peer, work):
    print("  mbsync (isync): 200-message INBOX + %s" % SUBFOLDER)
    passcmd = write_passcmd(peer, work)
    open(os.path.join(work, "use-otp"), "w").close()
    rc, maildir = write_mbsyncrc(peer, work, passcmd)

    # 1: the initial download
    out1 = run_mbsync(rc, work, "sync1")
    srv_in, srv_sub = imap_state(peer, "INBOX"), imap_state(peer, SUBFOLDER)
    check(len(srv_in) == N_INBOX and len(srv_sub) == N_SUB,
          "server holds %d/%d messages (expected %d/%d)" % (
              len(srv_in), len(srv_sub), N_INBOX, N_SUB))
    compare_box(srv_in, maildir_state(os.path.join(maildir, "INBOX")), "INBOX")
    compare_box(srv_sub, maildir_state(os.path.join(maildir, SUBFOLDER)), SUBFOLDER)
    print("    sync1: %d + %d messages byte-exact with flags (%d IMAP commands)" % (
        len(srv_in), len(srv_sub), len(sent_commands(out1))))

    # 2: changes on the near side
    if peer.name == "sealmail":
        os.unlink(os.path.join(work, "use-otp"))   # passphrase alone: unlock window
    newmsg = (b"From: Near Side <near@example.org>\nTo: alice@example.org\n"
              b"Subject: written into the Maildir\nDate: Tue, 2 Jan 2024 03:04:05 +0000\n"
              b"Message-ID: <pushed-by-mbsync@clients.test>\n\nfrom new/ to the server\n"
              b"Gr\xc3\xbc\xc3\x9fe\n")
    nd = os.path.join(maildir, "INBOX", "new")
    with open(os.path.join(nd, "1700000000.P1Q1.clients-test"), "wb") as f:
        f.write(newmsg)
    # flag change: the message with the smallest UID that has no flags gets S and F
    # (unseen messages live in new/, read ones in cur/; a renamed file goes to cur/)
    cur = os.path.join(maildir, "INBOX", "cur")
    target_uid = min(u for u, (fl, _) in srv_in.items() if not norm_flags(fl))
    target = [os.path.join(maildir, "INBOX", sub, fn) for sub in ("cur", "new")
              for fn in os.listdir(os.path.join(maildir, "INBOX", sub))
              if re.search(r",U=%d(:|$)" % target_uid, fn)]
    check(len(target) == 1, "no Maildir file for UID %d: %r" % (target_uid, target))
    base = os.path.basename(target[0]).split(":2,")[0]
    os.rename(target[0], os.path.join(cur, base + ":2,FS"))
    # a folder that exists only locally (Create Both must create it on the server)
    lfd = os.path.join(maildir, LOCALFOLDER)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(lfd, sub))
    localmsg = b"From: x@example.org\nSubject: in a new folder\n\nbody\n"
    with open(os.path.join(lfd, "new", "1700000001.P2Q1.clients-test"), "wb") as f:
        f.write(localmsg)

    out2 = run_mbsync(rc, work, "sync2")
    cmds2 = sent_commands(out2)
    # proves the trace parser used for sync 3 sees writes when there are some
    check(any(c.upper().startswith("APPEND") for c in cmds2) and
          any("STORE" in c.upper() for c in cmds2) and
          any(c.upper().startswith("CREATE") for c in cmds2),
          "sync2 trace lacks APPEND/STORE/CREATE: %r" % cmds2[:40])
    m = peer.imaplib(USER)
    try:
        m.select("INBOX", readonly=True)
        typ, data = m.uid("SEARCH", None, "HEADER", "Message-ID",
                          "<pushed-by-mbsync@clients.test>")
        uids = data[0].split() if typ == "OK" and data and data[0] else []
        check(len(uids) == 1, "the pushed message is on the server %d times" % len(uids))
        typ, data = m.uid("FETCH", uids[0], "(BODY.PEEK[])")
        body = [x[1] for x in data if isinstance(x, tuple)][0]
        body = strip_tuid(body.replace(b"\r\n", b"\n")).replace(b"\n", b"\r\n")
        check(body == newmsg.replace(b"\n", b"\r\n"),
              "pushed message differs on the server: %r" % body[:300])
        typ, data = m.uid("FETCH", str(target_uid), "(FLAGS)")
        fl = data[0].decode() if data and data[0] else ""
        check("\\Seen" in fl and "\\Flagged" in fl,
              "flag change not on the server: UID %d %s" % (target_uid, fl))
    finally:
        m.logout()
    check(LOCALFOLDER in imap_mailboxes(peer), "folder %s not created on the server" %
          LOCALFOLDER)
    pushed = imap_state(peer, LOCALFOLDER)
    check([strip_tuid(lf(b)) for _, b in pushed.values()] == [localmsg],
          "%s on the server holds %r" % (LOCALFOLDER, pushed))
    print("    sync2: new message, flag change (UID %d +FS) and folder %s pushed; "
          "checked with imaplib" % (target_uid, LOCALFOLDER))

    # 3: nothing left to do
    before_local = snapshot(maildir)
    before_srv = {b: imap_state(peer, b) for b in ("INBOX", SUBFOLDER, LOCALFOLDER)}
    out3 = run_mbsync(rc, work, "sync3")
    cmds = sent_commands(out3)
    writes = [c for c in cmds if re.match(r"(UID )?(APPEND|STORE|CREATE|EXPUNGE|MOVE|COPY)"
                                          r"|UID (STORE|EXPUNGE|MOVE|COPY)", c, re.I)]
    check(not writes, "third sync still changed the server: %r" % writes)
    check(snapshot(maildir) == before_local, "third sync changed the Maildir")
    after_srv = {b: imap_state(peer, b) for b in ("INBOX", SUBFOLDER, LOCALFOLDER)}
    check(after_srv == before_srv, "third sync changed the server's messages or flags")
    print("    sync3: nothing to do (%d read-only commands, no change on either side)" %
          len(cmds))


# -- fetchmail ---------------------------------------------------------------------------

def fetchmail_scenario(peer, work):
    print("  fetchmail: every INBOX message over IMAPS")
    outdir = os.path.join(work, "fetched")
    os.makedirs(outdir)
    mda = os.path.join(work, "mda.sh")
    with open(mda, "w") as f:
        f.write("#!/bin/sh\nexec cat > \"$(mktemp %s/msg.XXXXXXXX)\"\n" % outdir)
    os.chmod(mda, 0o755)
    rcfile = os.path.join(work, "fetchmailrc")
    pw = peer.password(USER)
    with open(rcfile, "w") as f:
        f.write('set no bouncemail\nset no syslog\n'
                'poll localhost via 127.0.0.1 with proto IMAP port %d auth password bad-header accept\n'
                '  user "%s" there with password "%s" is "%s" here\n'
                '  ssl sslcertck sslcertfile "%s" sslcommonname localhost sslproto "TLS1.2+"\n'
                '  keep fetchall no rewrite mda "%s"\n'
                '  folder INBOX\n' % (peer.imaps_port, USER, pw.replace('"', '\\"'),
                                      os.environ.get("USER") or "root", peer.cafile, mda))
    os.chmod(rcfile, 0o600)
    t = time.time()
    env = dict(os.environ, HOME=work, FETCHMAILHOME=work)
    # own pid/lock file: as root fetchmail would share /var/run/fetchmail.pid with any
    # other run on the machine
    r = subprocess.run(["fetchmail", "-f", rcfile, "--nodetach", "-v",
                        "--pidfile", os.path.join(work, "fetchmail.pid"),
                        "--idfile", os.path.join(work, "fetchids")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600, env=env)
    out = r.stdout.decode(errors="replace")
    with open(os.path.join(work, "fetchmail.log"), "w") as f:
        f.write(out)
    print("    fetchmail: exit %d, %.1f s" % (r.returncode, time.time() - t))
    if r.returncode not in (0,):
        print(tail(out, 30))
    check(r.returncode == 0, "fetchmail exited %d" % r.returncode)
    server = imap_state(peer, "INBOX")
    want = {}
    odd = 0
    for _, (_, body) in server.items():
        if rfc5322_clean(body):
            want[lf(body)] = want.get(lf(body), 0) + 1
        else:
            odd += 1
    got = {}
    nfiles = 0
    for fn in os.listdir(outdir):
        with open(os.path.join(outdir, fn), "rb") as f:
            raw = f.read()
        nfiles += 1
        body, _ = strip_fetchmail_received(raw)
        got[body] = got.get(body, 0) + 1
    check(nfiles == len(server), "fetchmail delivered %d messages, the server holds %d" % (
        nfiles, len(server)))
    missing = [b for b in want if got.get(b, 0) != want[b]]
    check(not missing,
          "fetchmail: %d of %d well-formed messages not retrieved byte-exact (first: %r)" % (
              len(missing), len(want), missing[0][:300] if missing else None))
    print("    %d messages retrieved; the %d well-formed ones byte-exact after removing "
          "fetchmail's Received: line (%d malformed ones fetchmail itself rewrites)" % (
              nfiles, len(want), odd))


def strip_fetchmail_received(raw):
    """fetchmail adds one 'Received: from 127.0.0.1 [127.0.0.1] by HOST with IMAP
    (fetchmail-VERSION) ...' field: first in the header, or after a leading
    Return-Path. Returns (message without it, the removed field)."""
    raw = lf(raw)
    end = raw.find(b"\n\n")
    head = raw[:end + 1] if end >= 0 else raw
    fields = re.findall(rb"(?m)^[^ \t\n][^\n]*\n(?:[ \t][^\n]*\n)*", head)
    for f in fields:
        if f.lower().startswith(b"received:") and b"(fetchmail-" in f:
            i = raw.index(f)
            return raw[:i] + raw[i + len(f):], f
    return raw, b""


FIELD = re.compile(rb"^[!-9;-~]+:")


def rfc5322_clean(m):
    """True when fetchmail passes the message through unchanged: every header line is a
    field or a fold of one (RFC 5322 2.2), no line is over 998 octets (2.1.1), no
    leading mbox 'From ' line. fetchmail repairs or drops what breaks these rules, the
    same way whatever the server."""
    lines = m.split(b"\r\n")
    if any(len(x) > 998 for x in lines):
        return False
    for k, line in enumerate(lines):
        if line == b"":
            return k > 0
        if line[:1] in (b" ", b"\t"):
            if k == 0:
                return False
            continue
        if not FIELD.match(line):
            return False
    return True


# -- driver ------------------------------------------------------------------------------

def make_peer(kind, build, work):
    if kind == "dovecot":
        import dovecot
        if not dovecot.available():
            return None, "dovecot not installed"
        return dovecot.Dovecot(users=[USER], tls=True), None
    import sealmail
    missing = sealmail.missing_programs(build, "imapd")
    if missing:
        return None, "not built: " + ", ".join(missing)
    return sealmail.Sealmail(users=[USER], build=build, mode="imapd"), None


def run_peer(kind, args):
    results = {}
    for scenario in ("mbsync", "fetchmail"):
        if args.only and args.only != scenario:
            continue
        work = tempfile.mkdtemp(prefix="sm-clients-%s-%s-" % (kind, scenario))
        t = time.time()
        peer, why = make_peer(kind, args.build, work)
        if peer is None:
            shutil.rmtree(work, ignore_errors=True)
            return {"*": ("SKIP", why, 0.0)}
        try:
            print("%s / %s (server started in %.1f s)" % (kind, scenario, time.time() - t))
            tp = time.time()
            populate(peer)
            print("  populated %d + %d messages in %.1f s" % (N_INBOX, N_SUB,
                                                              time.time() - tp))
            (mbsync_scenario if scenario == "mbsync" else fetchmail_scenario)(peer, work)
            results[scenario] = ("PASS", "", time.time() - t)
        except Failure as e:
            results[scenario] = ("FAIL", str(e), time.time() - t)
            print("  FAIL:", e)
        except Exception as e:  # noqa: BLE001 - a crash of the scenario is a failure
            traceback.print_exc()
            results[scenario] = ("FAIL", "%s: %s" % (type(e).__name__, e), time.time() - t)
        finally:
            try:
                peer.stop()
            except Exception:  # noqa: BLE001
                traceback.print_exc()
            if args.keep or results.get(scenario, ("FAIL",))[0] == "FAIL":
                print("  (work dir kept: %s)" % work)
            else:
                shutil.rmtree(work, ignore_errors=True)
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peers", default=os.environ.get("CLIENT_PEERS", "dovecot,sealmail"))
    ap.add_argument("--build", default=os.environ.get("SEALMAIL_BUILD",
                                                      os.path.join(HERE, "..", "build")))
    ap.add_argument("--only", choices=["mbsync", "fetchmail"])
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    for tool in ("mbsync", "fetchmail"):
        if not shutil.which(tool):
            print("SKIP: %s not installed (.ci/install-deps.sh installs it)" % tool)
            sys.exit(SKIP)
    summary = {}
    for kind in args.peers.split(","):
        summary[kind] = run_peer(kind, args)
    print("\nsummary:")
    failed = skipped = False
    for kind, res in summary.items():
        for sc, (st, why, secs) in res.items():
            print("  %-9s %-9s %s %5.1f s %s" % (kind, sc, st, secs, why[:300]))
            failed |= st == "FAIL"
            skipped |= st == "SKIP"
    sys.exit(1 if failed else SKIP if skipped else 0)


if __name__ == "__main__":
    main()
