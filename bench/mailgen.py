"""Deterministic generated mail for the benchmarks (Python 3 stdlib only).

Both servers get the same bytes: message i of a mailbox is a function of (seed, i).
Sizes follow a log-normal distribution with median 18 KiB clipped to 2..50 KiB (mean
about 20 KiB), as a mailbox of ordinary mail looks: most messages are text, one in six
carries a base64 attachment. Bodies are cut from a pre-generated text so that 100,000
messages take seconds, not minutes.

Search markers with known frequency, so that SEARCH answers can be checked:
  - every 50th message (i % 50 == 7) has the word "quarterly-zebra" in its Subject;
  - every 40th message (i % 40 == 13) has "ocelot-lantern" in a body line.
"""

import random

SUBJECT_MARK = "quarterly-zebra"
BODY_MARK = "ocelot-lantern"

_WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from "
    "at which but have an they you were her she there would their we him been has when "
    "who will more no if out so said what up its about into than them can only other new "
    "some could time these two may then do first any my now such like our over man me "
    "even most made after also did many before must through back years where much your "
    "way well down should because each just those people how too little state good very "
    "make world still own see men work long get here between both life being under never "
    "day same another know while last might us great old year off come since against go "
    "came right used take three invoice meeting project budget review schedule release "
    "server backup deploy customer contract quarterly report minutes agenda proposal").split()

_NAMES = ["Alice Martin", "Bob Keller", "Carol Nguyen", "Dan Okafor", "Eve Lindqvist",
          "Frank Dubois", "Grace Ito", "Heidi Novak", "Ivan Petrov", "Judy Alvarez",
          "Mallory Chen", "Oscar Rossi", "Peggy Brown", "Trent Walker", "Victor Silva"]

_TEXT = None
_B64 = None


def _text():
    """About 1 MiB of wrapped text lines (CRLF) and 1 MiB of base64 lines."""
    global _TEXT, _B64
    if _TEXT is None:
        r = random.Random(12345)
        lines = []
        size = 0
        while size < (1 << 20):
            n = r.randint(6, 13)
            line = " ".join(r.choice(_WORDS) for _ in range(n))
            line = line[0].upper() + line[1:] + "."
            lines.append(line)
            size += len(line) + 2
        _TEXT = ("\r\n".join(lines) + "\r\n").encode()
        alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        b = bytearray()
        while len(b) < (1 << 20):
            b += bytes(r.choice(alphabet) for _ in range(76)) + b"\r\n"
        _B64 = bytes(b)
    return _TEXT, _B64


def size_of(seed, i):
    r = random.Random(seed * 1000003 + i)
    s = int(r.lognormvariate(9.8, 0.5))   # e^9.8 = 18,033 bytes median
    return max(2048, min(50 * 1024, s))


def _cut(src, r, n):
    """n bytes (whole CRLF lines, at least n) of src from a random line start."""
    start = src.find(b"\n", r.randrange(0, len(src) - 60 * 1024)) + 1
    end = src.find(b"\r\n", start + max(n, 1)) + 2
    return src[start:end]


def message(seed, i, to="user@bench.example"):
    """Message i (bytes, CRLF line ends) of the mailbox with this seed."""
    text, b64 = _text()
    r = random.Random(seed * 7919 + i)
    target = size_of(seed, i)
    frm = r.choice(_NAMES)
    subj_words = [r.choice(_WORDS) for _ in range(r.randint(3, 8))]
    if i % 50 == 7:
        subj_words.insert(r.randint(0, len(subj_words)), SUBJECT_MARK)
    subject = " ".join(subj_words).capitalize()
    day = 1 + (i % 28)
    hdr = (
        "Return-Path: <%s@sender.example>\r\n"
        "Received: from mx.sender.example (mx.sender.example [192.0.2.%d])\r\n"
        "\tby mail.bench.example with ESMTPS id %08X; Mon, %d Jan 2024 10:%02d:%02d +0000\r\n"
        "Message-ID: <%d.%d.%08x@sender.example>\r\n"
        "Date: Mon, %d Jan 2024 10:%02d:%02d +0000\r\n"
        "From: %s <%s@sender.example>\r\n"
        "To: %s\r\n"
        "Subject: %s\r\n"
        "MIME-Version: 1.0\r\n" % (
            frm.split()[0].lower(), 1 + i % 250, r.getrandbits(32), day, i % 60, i % 59,
            seed, i, r.getrandbits(32), day, i % 60, i % 59, frm,
            frm.split()[0].lower(), to, subject)).encode()
    attach = r.random() < 1 / 6 and target > 8192
    body_len = max(256, target - len(hdr) - (300 if attach else 80))
    if attach:
        tlen = min(body_len // 3, 4096)
        t = _cut(text, r, tlen)
        a = _cut(b64, r, body_len - len(t))
        bnd = b"=_bench_%08x" % r.getrandbits(32)
        body = (b"Content-Type: multipart/mixed; boundary=\"" + bnd + b"\"\r\n\r\n"
                b"--" + bnd + b"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + t +
                b"--" + bnd + b"\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\n"
                b"Content-Transfer-Encoding: base64\r\n"
                b"Content-Disposition: attachment; filename=\"report.pdf\"\r\n\r\n" + a +
                b"--" + bnd + b"--\r\n")
    else:
        t = _cut(text, r, body_len)
        body = b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + t
    if i % 40 == 13:
        # a marker line inside the text: after the header of the text part when
        # multipart (the preamble before the first boundary is no part's body)
        k = body.find(b"\r\n\r\n") + 4
        if attach:
            k = body.find(b"\r\n\r\n", k) + 4
        body = body[:k] + b"Please check the " + BODY_MARK.encode() + b" figures.\r\n" + \
            body[k:]
    return hdr + body


def expected_subject_hits(n):
    return sum(1 for i in range(n) if i % 50 == 7)


def expected_body_hits(n):
    return sum(1 for i in range(n) if i % 40 == 13)


if __name__ == "__main__":
    import statistics
    import sys
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    sizes = [len(message(1, i)) for i in range(n)]
    print("n=%d mean=%.0f median=%.0f min=%d max=%d" % (
        n, statistics.mean(sizes), statistics.median(sizes), min(sizes), max(sizes)))
