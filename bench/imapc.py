"""A lean IMAP client for load generation (Python 3 stdlib only).

tests/peers/imapwire.py is exact and keeps every response; a load generator needs the
opposite: read megabytes of FETCH output in linear time, count responses, keep only
what a workload checks. Responses are scanned in one bytearray with an index (literals
skipped by their announced length, never re-sliced), so a 20 MB FETCH costs one pass.

Every failure raises ImapError with the command and the server's text, so the harness
can report it; nothing is retried or swallowed here.
"""

import re
import socket
import time


class ImapError(Exception):
    pass


_LIT = re.compile(rb"~?\{(\d+)[+-]?\}\r\n$")


def quote(s):
    if isinstance(s, str):
        s = s.encode()
    return b'"' + s.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


class Result:
    """What one tagged command produced: status (b"OK"/b"NO"/b"BAD"), the tagged text,
    the number of untagged responses, the literal bytes received, and (when the caller
    asked to keep them) the untagged responses themselves."""
    __slots__ = ("status", "text", "untagged", "literal_bytes", "kept")

    def __init__(self):
        self.status = None
        self.text = b""
        self.untagged = 0
        self.literal_bytes = 0
        self.kept = []


class Client:
    def __init__(self, host, port, timeout=120):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pos = 0
        self.tagn = 0
        self.literal_plus = False
        greeting = self._read_line()
        if not greeting.startswith(b"* OK") and not greeting.startswith(b"* PREAUTH"):
            raise ImapError("greeting: %r" % bytes(greeting[:200]))
        self.greeting = bytes(greeting)
        caps = re.search(rb"\[CAPABILITY ([^\]]*)\]", greeting)
        if caps:
            self._caps(caps.group(1))

    def _caps(self, text):
        words = text.upper().split()
        self.literal_plus = b"LITERAL+" in words

    # -- reading ---------------------------------------------------------------------
    def _fill(self):
        if self.pos > (1 << 20):
            del self.buf[:self.pos]
            self.pos = 0
        d = self.sock.recv(1 << 18)
        if not d:
            raise ImapError("connection closed by server (after %r)"
                            % bytes(self.buf[-200:]))
        self.buf += d

    def _read_line(self):
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                line = self.buf[self.pos:i + 2]
                self.pos = i + 2
                return line
            self._fill()

    def _skip(self, n, keep):
        while len(self.buf) - self.pos < n:
            self._fill()
        d = bytes(self.buf[self.pos:self.pos + n]) if keep else None
        self.pos += n
        return d

    def read_tagged(self, tag, res=None, keep=False):
        """Reads responses until the one tagged `tag`. Literals are skipped by length
        (kept when keep is set). Returns a Result."""
        return self.read_tags([tag], keep=keep)[tag]

    def read_tags(self, tags, keep=False):
        """Reads until every tag in `tags` has its tagged answer; a server may finish
        pipelined commands in any order (RFC 3501 5.5, RFC 9051 5.5). Untagged responses
        are counted (and kept) on the oldest command still open. Returns {tag: Result}."""
        pending = list(tags)
        out = {t: Result() for t in tags}
        while pending:
            res = out[pending[0]]
            line = self._read_line()
            if line[:1] != b"*" and line[:1] != b"+":
                sp = line.find(b" ")
                t = bytes(line[:sp])
                if t in out and t in pending:
                    r = out[t]
                    rest = bytes(line[sp + 1:-2])
                    sp2 = rest.find(b" ")
                    r.status = rest[:sp2] if sp2 >= 0 else rest
                    r.text = rest[sp2 + 1:] if sp2 >= 0 else b""
                    if b"[CAPABILITY " in r.text:
                        m = re.search(rb"\[CAPABILITY ([^\]]*)\]", r.text)
                        if m:
                            self._caps(m.group(1))
                    pending.remove(t)
                    continue
                raise ImapError("unexpected tagged line (waiting for %s): %r"
                                % (b",".join(pending).decode(), bytes(line[:200])))
            if line.startswith(b"+"):
                raise ImapError("unexpected continuation for %s: %r"
                                % (pending[0].decode(), bytes(line[:200])))
            whole = [bytes(line)] if keep else None
            while True:
                m = _LIT.search(line[-24:]) if line.endswith(b"}\r\n") else None
                if not m:
                    break
                n = int(m.group(1))
                d = self._skip(n, keep)
                res.literal_bytes += n
                line = self._read_line()
                if keep:
                    whole.append(d)
                    whole.append(bytes(line))
            res.untagged += 1
            if keep:
                res.kept.append(b"".join(whole))
        return out

    # -- commands --------------------------------------------------------------------
    def tag(self):
        self.tagn += 1
        return b"B%d" % self.tagn

    def send(self, data):
        self.sock.sendall(data)

    def cmd(self, command, keep=False, ok=True):
        """Sends one command (no literals), waits for its tagged answer."""
        if isinstance(command, str):
            command = command.encode()
        t = self.tag()
        self.sock.sendall(t + b" " + command + b"\r\n")
        r = self.read_tagged(t, keep=keep)
        if ok and r.status != b"OK":
            raise ImapError("%s -> %s %s" % (command[:120].decode(errors="replace"),
                                             r.status.decode(errors="replace"),
                                             r.text[:300].decode(errors="replace")))
        return r

    def pipeline(self, commands, keep=False, ok=True):
        """Sends every command at once (RFC 3501 5.5: the client may send another
        command without waiting), then reads each tagged answer in order."""
        tags = []
        out = bytearray()
        for c in commands:
            if isinstance(c, str):
                c = c.encode()
            t = self.tag()
            tags.append((t, c))
            out += t + b" " + c + b"\r\n"
        self.sock.sendall(out)
        got = self.read_tags([t for t, _ in tags], keep=keep)
        results = []
        for t, c in tags:
            r = got[t]
            if ok and r.status != b"OK":
                raise ImapError("%s -> %s %s" % (c[:120].decode(errors="replace"),
                                                 r.status.decode(errors="replace"),
                                                 r.text[:300].decode(errors="replace")))
            results.append(r)
        return results

    def login(self, user, password):
        return self.cmd(b"LOGIN " + quote(user) + b" " + quote(password))

    def append(self, mailbox, data, flags=b""):
        """APPEND with a non-synchronizing literal when the server offers LITERAL+
        (RFC 7888), else a synchronizing one (waits for the continuation)."""
        t = self.tag()
        fl = b" (" + flags + b")" if flags else b""
        if self.literal_plus:
            self.sock.sendall(t + b" APPEND " + quote(mailbox) + fl +
                              b" {%d+}\r\n" % len(data) + data + b"\r\n")
        else:
            self.sock.sendall(t + b" APPEND " + quote(mailbox) + fl +
                              b" {%d}\r\n" % len(data))
            line = self._read_line()
            if not line.startswith(b"+"):
                raise ImapError("APPEND: no continuation: %r" % bytes(line[:200]))
            self.sock.sendall(data + b"\r\n")
        r = self.read_tagged(t)
        if r.status != b"OK":
            raise ImapError("APPEND -> %s %s" % (r.status.decode(errors="replace"),
                                                 r.text[:300].decode(errors="replace")))
        return r

    def append_many(self, mailbox, messages):
        """Pipelined APPENDs (LITERAL+ required): send all, then read every answer."""
        if not self.literal_plus:
            for m in messages:
                self.append(mailbox, m)
            return
        tags = []
        out = bytearray()
        for m in messages:
            t = self.tag()
            tags.append(t)
            out += t + b" APPEND " + quote(mailbox) + b" {%d+}\r\n" % len(m) + m + b"\r\n"
        self.sock.sendall(out)
        got = self.read_tags(tags)
        for t in tags:
            r = got[t]
            if r.status != b"OK":
                raise ImapError("APPEND -> %s %s" % (r.status.decode(errors="replace"),
                                                     r.text[:300].decode(errors="replace")))

    def capability(self):
        r = self.cmd(b"CAPABILITY", keep=True)
        for u in r.kept:
            if u.upper().startswith(b"* CAPABILITY "):
                self._caps(u[13:])
        return r

    def logout(self):
        t = self.tag()
        try:
            self.sock.sendall(t + b" LOGOUT\r\n")
            self.read_tagged(t)
        finally:
            self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def connect_login(host, port, user, password, timeout=120):
    """Connect + LOGIN; returns (client, seconds the LOGIN took)."""
    c = Client(host, port, timeout=timeout)
    t0 = time.perf_counter()
    try:
        c.login(user, password)
    except BaseException:
        c.close()
        raise
    return c, time.perf_counter() - t0


def search_numbers(res):
    out = []
    for u in res.kept:
        if u[:9].upper() == b"* SEARCH " or u.upper().rstrip() == b"* SEARCH":
            out.extend(int(x) for x in u[9:].split() if x.isdigit())
    return out
