"""A small, exact IMAP client for tests (Python 3 stdlib only).

imaplib hides the wire: it splits literals into tuples and decodes as it likes. The
differential test needs the bytes each server sent, so this client reads complete
responses (a line plus every literal it announces, inline) and gives them back raw,
and `parse()` turns one response into nested Python values:

  atom / number / NIL  -> Atom(b"...")   (NIL is Atom(b"NIL"))
  quoted string        -> Str(b"...")   (escapes removed)
  literal {n} / ~{n}   -> Str(b"...", literal=True)
  ( ... )              -> list
  [ ... ] after an atom is kept inside the atom, as IMAP's grammar does
  (BODY[HEADER.FIELDS (FROM)]<0> is one Atom).

Str compares equal to Str with the same bytes whatever its wire form: RFC 3501 4.3
makes a quoted string and a literal with the same content the same string.
"""

import socket
import ssl
import time


class ImapError(Exception):
    pass


class Atom(bytes):
    def __repr__(self):
        return "Atom(%s)" % bytes.__repr__(self)


class Str(bytes):
    """An IMAP string (quoted or literal). `literal` remembers the wire form only for
    diagnostics; equality ignores it."""

    def __new__(cls, value, literal=False):
        o = bytes.__new__(cls, value)
        o.literal = literal
        return o

    def __repr__(self):
        return "Str(%s)" % bytes.__repr__(self)

    def __eq__(self, other):
        if isinstance(other, Atom):
            return False
        return bytes.__eq__(self, other)

    def __ne__(self, other):
        return not self.__eq__(other)

    __hash__ = bytes.__hash__


class Response:
    """One tagged or untagged response: `raw` has the whole thing with literals inline."""

    def __init__(self, raw):
        self.raw = raw

    def __repr__(self):
        return "Response(%r)" % self.raw[:200]


class Conn:
    """An IMAP connection: plain, implicit TLS, or plain then STARTTLS.

    Every command returns (status, text, untagged) where untagged is a list of raw
    untagged responses (bytes, CRLF removed, literals inline with their {n}\\r\\n)."""

    def __init__(self, host, port, *, tls=False, starttls=False, cafile=None,
                 timeout=60, server_hostname="localhost"):
        self.host, self.port = host, port
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.tagn = 0
        self.ctx = None
        if tls or starttls:
            self.ctx = ssl.create_default_context(cafile=cafile) if cafile else \
                ssl._create_unverified_context()
            if cafile:
                self.ctx.check_hostname = False  # self-signed for "localhost"; CA pins it
        if tls:
            self.sock = self.ctx.wrap_socket(self.sock, server_hostname=server_hostname)
        self.greeting = self.read_response()
        if starttls:
            st, text, _ = self.cmd(b"STARTTLS")
            if st != b"OK":
                raise ImapError("STARTTLS: %r" % text)
            self.sock = self.ctx.wrap_socket(self.sock, server_hostname=server_hostname)
            self.buf = b""

    # -- reading --------------------------------------------------------------------
    def _fill(self):
        d = self.sock.recv(1 << 16)
        if not d:
            raise ImapError("connection closed by server (after %r)" % self.buf[-200:])
        self.buf += d

    def _readline(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i + 2], self.buf[i + 2:]
                return line
            self._fill()

    def _readn(self, n):
        while len(self.buf) < n:
            self._fill()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def read_response(self):
        """One complete response: a line and every literal it announces. Returns the
        bytes without the final CRLF."""
        out = b""
        while True:
            line = self._readline()
            out += line
            n = literal_len(line)
            if n is None:
                return out[:-2]
            out += self._readn(n)

    # -- commands ---------------------------------------------------------------------
    def next_tag(self):
        self.tagn += 1
        return b"T%04d" % self.tagn

    def cmd(self, command, *literals):
        """Sends `command` (bytes; {n} markers are sent as synchronizing literals: each
        literal in `literals` is sent after the server's continuation). Returns
        (status, text, untagged_list)."""
        if isinstance(command, str):
            command = command.encode()
        tag = self.next_tag()
        parts = command.split(b"\x00LIT\x00")
        if len(parts) != len(literals) + 1:
            raise ValueError("literal markers and literals differ")
        untagged = []
        # every piece ends with CRLF: after "{n}" the server answers "+" (RFC 3501 7.5)
        self.sock.sendall(tag + b" " + parts[0] + b"\r\n")
        for i, lit in enumerate(literals):
            # wait for the continuation request
            while True:
                r = self.read_response()
                if r.startswith(b"+"):
                    break
                if r.startswith(tag + b" "):
                    st, text = _split_tagged(r, tag)
                    return st, text, untagged
                untagged.append(r)
            self.sock.sendall(lit + parts[i + 1] + b"\r\n")
        while True:
            r = self.read_response()
            if r.startswith(tag + b" "):
                st, text = _split_tagged(r, tag)
                return st, text, untagged
            if r.startswith(b"+"):
                raise ImapError("unexpected continuation: %r" % r)
            untagged.append(r)

    def ok(self, command, *literals):
        st, text, u = self.cmd(command, *literals)
        if st != b"OK":
            raise ImapError("%r -> %s %r" % (command[:200] if isinstance(command, bytes)
                                              else command, st, text))
        return u

    def login(self, user, password):
        return self.ok(b"LOGIN " + quote(user) + b" " + quote(password))

    def append(self, mailbox, data, flags=None, date=None):
        """APPEND with a synchronizing literal. Returns the untagged list and the
        tagged text (which carries [APPENDUID ...] when supported)."""
        cmd = b"APPEND " + quote(mailbox)
        if flags is not None:
            cmd += b" (" + b" ".join(f.encode() if isinstance(f, str) else f
                                     for f in flags) + b")"
        if date is not None:
            cmd += b" " + quote(date)
        cmd += b" {%d}" % len(data) + b"\x00LIT\x00"
        st, text, u = self.cmd(cmd, data)
        if st != b"OK":
            raise ImapError("APPEND -> %s %r" % (st, text))
        return u, text

    def logout(self):
        try:
            self.cmd(b"LOGOUT")
        except (OSError, ImapError):
            pass
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.logout()


def _split_tagged(r, tag):
    rest = r[len(tag) + 1:]
    sp = rest.find(b" ")
    if sp < 0:
        return rest, b""
    return rest[:sp], rest[sp + 1:]


def literal_len(line):
    """If line (ending in CRLF) ends with {n} or {n+} or ~{n}, n; else None."""
    if not line.endswith(b"}\r\n"):
        return None
    i = line.rfind(b"{")
    if i < 0:
        return None
    num = line[i + 1:-3]
    if num.endswith(b"+") or num.endswith(b"-"):
        num = num[:-1]
    if not num.isdigit():
        return None
    return int(num)


def quote(s):
    if isinstance(s, str):
        s = s.encode()
    return b'"' + s.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


# -- parsing -----------------------------------------------------------------------------

class ParseError(Exception):
    pass


_ATOM_END = b" ()\r\n"


def parse(raw):
    """Parses a response (without final CRLF) into a list of values (see module doc)."""
    p = _Parser(raw)
    out = p.seq(None)
    return out


class _Parser:
    def __init__(self, b):
        self.b = b
        self.i = 0

    def seq(self, close):
        out = []
        b = self.b
        while True:
            if self.i >= len(b):
                if close is not None:
                    raise ParseError("unterminated list in %r" % b[:300])
                return out
            c = b[self.i:self.i + 1]
            if c == b" ":
                self.i += 1
                continue
            if close is not None and c == close:
                self.i += 1
                return out
            if c == b"(":
                self.i += 1
                out.append(self.seq(b")"))
            elif c == b'"':
                out.append(self.quoted())
            elif c == b"{" or (c == b"~" and b[self.i + 1:self.i + 2] == b"{"):
                out.append(self.literal())
            elif c == b")":
                raise ParseError("unbalanced ) at %d in %r" % (self.i, b[:300]))
            else:
                out.append(self.atom())

    def quoted(self):
        b = self.b
        self.i += 1
        out = bytearray()
        while True:
            if self.i >= len(b):
                raise ParseError("unterminated quoted string")
            c = b[self.i]
            if c == 0x5C:
                out.append(b[self.i + 1])
                self.i += 2
            elif c == 0x22:
                self.i += 1
                return Str(bytes(out))
            else:
                out.append(c)
                self.i += 1

    def literal(self):
        b = self.b
        if b[self.i:self.i + 1] == b"~":
            self.i += 1
        j = b.index(b"}\r\n", self.i)
        num = b[self.i + 1:j].rstrip(b"+-")
        n = int(num)
        start = j + 3
        self.i = start + n
        return Str(b[start:start + n], literal=True)

    def atom(self):
        """An atom; brackets and what is inside them belong to it (BODY[...]<..>,
        [UIDVALIDITY 3] response codes are returned as one atom too)."""
        b = self.b
        start = self.i
        depth = 0
        while self.i < len(b):
            c = b[self.i:self.i + 1]
            if c == b"[":
                depth += 1
            elif c == b"]":
                depth -= 1
            elif depth == 0 and c in (b" ", b"(", b")"):
                break
            self.i += 1
        return Atom(b[start:self.i])


def fetch_items(raw):
    """Parses an untagged FETCH response into (seq, {ITEM-NAME: value}). Item names are
    upper-cased atoms (BODY[1.MIME], BINARY[1]<0>, RFC822.SIZE...). Returns None for a
    response that is not a FETCH."""
    v = parse(raw)
    if len(v) < 4 or v[0] != b"*" or not isinstance(v[2], Atom) or \
            v[2].upper() != b"FETCH" or not isinstance(v[3], list):
        return None
    seq = int(v[1])
    lst = v[3]
    if len(lst) % 2:
        raise ParseError("odd FETCH item list: %r" % raw[:300])
    items = {}
    for k in range(0, len(lst), 2):
        name = bytes(lst[k]).upper()
        items[name.decode("latin-1")] = lst[k + 1]
    return seq, items


def search_result(untagged):
    """The numbers of the untagged SEARCH response(s) in a command's output."""
    out = []
    for r in untagged:
        if r[:9].upper() == b"* SEARCH " or r.upper() == b"* SEARCH":
            out.extend(int(x) for x in r[9:].split() if x.isdigit())
    return sorted(out)


def wait_port(host, port, deadline, proc=None):
    """Waits until something accepts on host:port (or until deadline, or until proc
    exits). Returns True when connectable."""
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def free_ports(n, host="127.0.0.1"):
    """n distinct ports that were free a moment ago (bound to 0 together, then closed).
    Racy by nature; callers that start servers retry when a bind fails."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port(host="127.0.0.1"):
    return free_ports(1, host)[0]
