#!/usr/bin/env python3
"""Regenerates tests/corpus/*.eml (the committed files are what the tests use; this
script documents where every byte came from and rebuilds them identically).

  py-msg_NN.eml   CPython's Lib/test/test_email/data/msg_NN.txt (PSF licence), line
                  endings turned into CRLF as they are on the wire.
  hard-*.eml      hand-written hard cases for MIME/header parsers (below). Line endings
                  are CRLF except where the case is about line endings.

Usage: python3 tests/corpus/make_corpus.py [PYTHON_TEST_EMAIL_DATA_DIR]
"""
import base64
import glob
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def crlf(s):
    if isinstance(s, str):
        s = s.encode("utf-8")
    return s.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def find_python_data():
    cands = sys.argv[1:] + [
        "/usr/lib/python3.11/test/test_email/data",
        os.path.join(os.path.dirname(os.__file__), "test", "test_email", "data"),
    ] + glob.glob("/usr/lib/python3*/test/test_email/data") + \
        glob.glob(os.path.expanduser("~/.pyenv/versions/*/lib/python3*/test/test_email/data"))
    for c in cands:
        if os.path.isdir(c) and glob.glob(os.path.join(c, "msg_*.txt")):
            return c
    return None


def leaf(ctype, body, extra=""):
    return "Content-Type: %s\n%s\n%s\n" % (ctype, extra, body)


def nest(depth):
    """depth levels of multipart/mixed, each with a text part and the next level."""
    if depth == 0:
        return "Content-Type: text/plain; charset=us-ascii\n\nInnermost text, level 8.\n"
    b = "lvl%d" % depth
    return ("Content-Type: multipart/mixed; boundary=\"%s\"\n\n"
            "preamble of level %d\n"
            "--%s\n"
            "Content-Type: text/plain; charset=us-ascii\n\n"
            "Text at level %d.\n"
            "--%s\n"
            "%s"
            "--%s--\n"
            "epilogue of level %d\n") % (b, depth, b, depth, b, nest(depth - 1), b, depth)


HDR = ("From: Alice Example <alice@example.org>\n"
       "To: Bob Example <bob@example.net>\n"
       "Date: Mon, 15 Jan 2024 10:00:00 +0100\n")

PDF = bytes(range(256)) * 6 + b"%PDF-1.4 fake\x00\x01\x02 end"


def cases():
    c = {}
    c["hard-deep-nesting-8.eml"] = crlf(
        HDR + "Subject: eight levels of multipart\nMIME-Version: 1.0\n"
        "Message-ID: <deep8@example.org>\n" + nest(8))

    inner = ("From: Inner <inner@example.com>\nTo: x@example.com\n"
             "Subject: innermost message\nDate: Sun, 1 Jan 2023 00:00:00 +0000\n"
             "Message-ID: <inner@example.com>\n"
             "Content-Type: text/plain; charset=utf-8\n"
             "Content-Transfer-Encoding: 8bit\n\n"
             "Grüße aus der Tiefe.\n")
    middle = ("From: Middle <middle@example.com>\nSubject: middle multipart\n"
              "Date: Mon, 2 Jan 2023 00:00:00 +0000\nMIME-Version: 1.0\n"
              "Content-Type: multipart/mixed; boundary=\"mid\"\n\n"
              "--mid\nContent-Type: text/plain\n\nmiddle text\n"
              "--mid\nContent-Type: message/rfc822\nContent-Description: the inner one\n\n"
              + inner +
              "--mid\nContent-Type: application/octet-stream\n"
              "Content-Transfer-Encoding: base64\n\n"
              + base64.encodebytes(b"\x00\x01binary\xff").decode() +
              "--mid--\n")
    c["hard-rfc822-multipart-rfc822.eml"] = crlf(
        HDR + "Subject: forwarded forward\nMIME-Version: 1.0\n"
        "Content-Type: message/rfc822\n\n" + middle)

    c["hard-rfc2047.eml"] = crlf(
        "From: =?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>\n"
        "To: =?UTF-8?B?0JLQsNGB0Y8g0J/Rg9C/0LrQuNC9?= <vasya@example.ru>,\n"
        " =?KOI8-R?B?98HT0Q==?= <v2@example.ru>\n"
        "Cc: =?US-ASCII?Q?Keith_Moore?= <moore@cs.utk.edu>, "
        "\"=?utf-8?q?quoted_=E2=9C=93?=\" <q@example.com>\n"
        "Subject: =?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?=\n"
        " =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=\n"
        " =?UTF-8?Q?_und_Gr=C3=BC=C3=9Fe?= =?UTF-8?Q?_adjacent?=\n"
        " plain =?x-unknown?q?unknown_charset?= =?utf-8?q?broken=ZZ?= =?bad\n"
        "Date: Tue, 16 Jan 2024 11:30:00 -0500\n"
        "Message-ID: <rfc2047@example.org>\n"
        "X-Sealmail-Test: needle encoded-words\n"
        "Comments: =?SHIFT_JIS?B?k/qWe4zq?= and =?GB2312?B?1tDOxA==?=\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: 8bit\n\n"
        "Body with ümlauts and 日本語.\n")

    c["hard-rfc2231.eml"] = crlf(
        HDR + "Subject: RFC 2231 parameters\nMIME-Version: 1.0\n"
        "Content-Type: multipart/mixed; boundary=\"=_2231\"\n\n"
        "--=_2231\n"
        "Content-Type: application/x-stuff;\n"
        " title*0*=us-ascii'en'This%20is%20even%20more%20;\n"
        " title*1*=%2A%2A%2Afun%2A%2A%2A%20;\n"
        " title*2=\"isn't it!\"\n"
        "Content-Disposition: attachment;\n"
        " filename*=UTF-8''na%C3%AFve%20r%C3%A9sum%C3%A9.txt\n\n"
        "stuff\n"
        "--=_2231\n"
        "Content-Type: text/plain; charset*=iso-8859-1'fr'latin1;\n"
        " name*0=\"long\"; name*1=\"name\"; name*2=\".txt\"\n"
        "Content-Disposition: inline; filename*0=\"a\"; filename*1=\"b.txt\";\n"
        " size=5\n"
        "Content-Language: fr, en-GB\n"
        "Content-Location: http://example.org/x\n"
        "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
        "Content-ID: <part2@example.org>\n"
        "Content-Description: a described part\n\n"
        "texte\n"
        "--=_2231--\n")

    c["hard-8bit-headers.eml"] = crlf(
        "From: Jörg Müller <joerg@example.de>\n"
        "To: \"Zoë Ωmega\" <zoe@example.gr>\n"
        "Subject: Grüße – raw UTF-8 subject ✓ 日本\n"
        "Date: Wed, 17 Jan 2024 09:15:00 +0000\n"
        "X-Sealmail-Test: needle 8bit\n"
        "Content-Type: text/plain; charset=utf-8\n\n"
        "Unencoded body ✓\n")
    c["hard-8bit-latin1-headers.eml"] = crlf(
        b"From: Fran\xe7ois <f@example.fr>\nSubject: caf\xe9 cr\xe8me (latin-1 raw)\n"
        b"Date: Wed, 17 Jan 2024 09:16:00 +0000\n"
        b"Content-Type: text/plain; charset=iso-8859-1\n\ncaf\xe9\n")

    c["hard-bare-lf.eml"] = (
        HDR + "Subject: bare LF line endings\nMIME-Version: 1.0\n"
        "Content-Type: multipart/alternative; boundary=\"lf\"\n\n"
        "--lf\nContent-Type: text/plain\n\nline one\nline two\n"
        "--lf\nContent-Type: text/html\n\n<p>html</p>\n--lf--\n").encode()
    c["hard-mixed-line-endings.eml"] = (
        b"From: a@example.org\r\nSubject: mixed CRLF, LF and CR\n"
        b"Date: Thu, 18 Jan 2024 00:00:00 +0000\r\n\r\nfirst\r\nsecond\nthird\rfourth\r\n")
    c["hard-no-final-newline.eml"] = crlf(
        HDR + "Subject: no final newline\n\nthe body ends here")
    to = ",\n ".join('"Recipient Number %d" <rcpt%05d@example.com>' % (i, i)
                     for i in range(2200))
    c["hard-huge-folded-to.eml"] = crlf(
        "From: big@example.org\nTo: " + to + "\n"
        "Subject: a 100 KB To: header\nDate: Fri, 19 Jan 2024 12:00:00 +0000\n\n"
        "short body\n")
    c["hard-empty-body.eml"] = crlf(
        HDR + "Subject: empty body\n\n")
    c["hard-headers-no-separator.eml"] = crlf(
        HDR + "Subject: headers only, no blank line\n")
    c["hard-no-headers.eml"] = crlf(
        "\nThis message has no header at all: it starts with the empty line.\n")
    c["hard-no-header-lines.eml"] = crlf(
        "Just some text without any header field\nand a second line\n")
    c["hard-duplicate-headers.eml"] = crlf(
        "From: first@example.org\nFrom: second@example.org\n"
        "To: one@example.org\nTo: two@example.org\n"
        "Subject: first subject\nSubject: second subject\n"
        "Date: Sat, 20 Jan 2024 08:00:00 +0000\nDate: Sun, 21 Jan 2024 08:00:00 +0000\n"
        "Message-ID: <dup1@example.org>\nMessage-ID: <dup2@example.org>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/html; charset=utf-8\nContent-Type: text/plain; charset=us-ascii\n"
        "X-Sealmail-Test: needle one\nX-Sealmail-Test: needle two\n\n"
        "body\n")
    c["hard-group-addresses.eml"] = crlf(
        "From: Sender <s@example.org>\n"
        "To: undisclosed-recipients:;\n"
        "Cc: Friends: joe@example.com, \"Mary Smith\" <mary@example.net>;, "
        "solo@example.org, Empty Group:;\n"
        "Bcc: Nested: a@example.com, Inner: b@example.com;;\n"
        "Subject: group syntax\nDate: Mon, 22 Jan 2024 10:00:00 +0000\n\nbody\n")
    c["hard-obsolete-addresses.eml"] = crlf(
        "From: Joe Q. Public <john.q.public@example.com>\n"
        "Sender: (comment only) sender(in comment)@(here)example.org\n"
        "Reply-To: <@route1.example,@route2.example:user@example.org>\n"
        "To: Mary Smith <@node.test:mary@example.net>, , jdoe@test   . example,\n"
        " \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>, \"a . b\"@example.org,\n"
        " john . q . public @ example . com, nodomain, <bare@example.org>,\n"
        " Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>\n"
        "Cc: <>, \"\" <empty@example.org>, @@@, \"unterminated <u@example.org>\n"
        "Subject: obsolete address syntax (RFC 5322 4.4)\n"
        "Date: 21 Nov 97 09:55:06 GMT\n"
        "Message-ID: <obs@example.org>\nIn-Reply-To: <a@b> <c@d>\n"
        "References: <1234@local.machine.example> <3456@example.net>\n\nbody\n")
    b64 = base64.encodebytes(PDF).decode()
    c["hard-base64-attachment.eml"] = crlf(
        HDR + "Subject: base64 attachment\nMIME-Version: 1.0\n"
        "Content-Type: multipart/mixed; boundary=\"b64\"\n\n"
        "--b64\nContent-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: base64\n\n"
        + base64.encodebytes("Base64 text part: grüße, findme-b64.\n".encode()).decode() +
        "--b64\nContent-Type: application/pdf; name=\"doc.pdf\"\n"
        "Content-Transfer-Encoding: BASE64\n"
        "Content-Disposition: attachment; filename=\"doc.pdf\"\n\n" + b64 +
        "--b64\nContent-Type: application/octet-stream\n"
        "Content-Transfer-Encoding: base64\n\n"
        "bm90IHZhbGlk*** bad base64 ===\nYWJj\n"
        "--b64--\n")
    c["hard-quoted-printable.eml"] = crlf(
        HDR + "Subject: quoted-printable soft breaks\nMIME-Version: 1.0\n"
        "Content-Type: multipart/mixed; boundary=\"qp\"\n\n"
        "--qp\nContent-Type: text/plain; charset=iso-8859-1\n"
        "Content-Transfer-Encoding: quoted-printable\n\n"
        "This is a long line that is broken with a soft line break right here=\n"
        " and continues. Caf=E9 =3D equals. Trailing space =20\n"
        "findme-=\nqp joined=\n\n"
        "Bad escapes: =ZZ =4 =\n"
        "Lower case =e9 hex.   \n"
        "--qp\nContent-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: Quoted-Printable\n\n"
        "=E2=9C=93 check=\n"
        "--qp--\n")
    c["hard-boundary-in-part.eml"] = crlf(
        HDR + "Subject: boundary text inside parts\nMIME-Version: 1.0\n"
        "Content-Type: multipart/mixed; boundary=\"XX\"\n\n"
        "--XX\nContent-Type: text/plain\n\n"
        "this line mentions --XX in the middle\n"
        "--XXnot-a-boundary? (a longer line that starts with the boundary)\n"
        " --XX indented\n"
        "--XX\nContent-Type: multipart/alternative; boundary=\"XX-inner\"\n\n"
        "--XX-inner\nContent-Type: text/plain\n\ninner part\n"
        "--XX-inner--\n"
        "--XX \t\nContent-Type: text/plain\n\nafter a boundary with trailing whitespace\n"
        "--XX--\n")
    c["hard-missing-end-boundary.eml"] = crlf(
        HDR + "Subject: missing end boundary\nMIME-Version: 1.0\n"
        "Content-Type: multipart/mixed; boundary=\"end\"\n\n"
        "--end\nContent-Type: text/plain\n\nfirst\n"
        "--end\nContent-Type: multipart/mixed; boundary=\"inner\"\n\n"
        "--inner\nContent-Type: text/plain\n\ninner, also unterminated\n")
    c["hard-nul-bytes.eml"] = crlf(
        HDR + "Subject: NUL bytes\nX-Sealmail-Test: nul\x00inside\n\n"
        "before\x00after\nline\x00\x00\n")
    c["hard-mime-oddities.eml"] = crlf(
        HDR + "Subject: odd Content-Type syntax\nMIME-Version: 1.0 (produced by hand)\n"
        "Content-Type: MULTIPART/Mixed (a comment) ; BOUNDARY = \"odd\" ; X-Extra=\"1\"\n\n"
        "--odd\nContent-Type: Text/PLAIN ; CharSet = \"UTF-8\" ; format=flowed\n"
        "Content-Transfer-Encoding: 7BIT\n\nflowed \ntext\n"
        "--odd\nContent-Type: text\n\ntype without subtype\n"
        "--odd\nContent-Type: /plain\n\nsubtype without type\n"
        "--odd\nContent-Type: text/plain; charset=\"unterminated\n\nunterminated quote\n"
        "--odd\nContent-Type: application/x-thing; a=1; a=2; b\n"
        "Content-Transfer-Encoding: x-uuencode\n\nbegin 644 x\nend\n"
        "--odd\nContent-Type: multipart/mixed\n\nmultipart without boundary\n"
        "--odd\nContent-Type: multipart/mixed; boundary=empty\n\n--empty--\n"
        "--odd\nContent-Type: message/rfc822\n\n"
        "--odd--\n")
    c["hard-alternative-related.eml"] = crlf(
        HDR + "Subject: alternative with related html\nMIME-Version: 1.0\n"
        "Message-ID: <alt@example.org>\nReply-To: replies@example.org\n"
        "Sender: list@example.org\n"
        "Content-Type: multipart/alternative; boundary=\"alt\"\n\n"
        "This is a preamble.\n\n"
        "--alt\nContent-Type: text/plain; charset=us-ascii; format=flowed; delsp=yes\n\n"
        "Plain findme-alt version.\n\n"
        "--alt\nContent-Type: multipart/related; boundary=\"rel\"; type=\"text/html\"\n\n"
        "--rel\nContent-Type: text/html; charset=utf-8\n"
        "Content-Transfer-Encoding: 8bit\n\n<html><body><img src=\"cid:img1\">Ü</body></html>\n"
        "--rel\nContent-Type: image/png\nContent-ID: <img1>\n"
        "Content-Transfer-Encoding: base64\nContent-Disposition: inline\n\n"
        + base64.encodebytes(b"\x89PNG\r\n\x1a\nnot really a png").decode() +
        "--rel--\n\n--alt--\n\nThis is the epilogue.\n")
    c["hard-long-line.eml"] = crlf(
        HDR + "Subject: a 20000-character line\n\n" + ("0123456789" * 2000) +
        "\nfindme-long\n")
    c["hard-dates.eml"] = crlf(
        "From: d@example.org\nSubject: obsolete date with zone name\n"
        "Date: Thu, 13 Feb 69 23:32:54 EST\n\nbody\n")
    c["hard-date-garbage.eml"] = crlf(
        "From: d@example.org\nSubject: unparsable date\n"
        "Date: sometime last week, probably\n\nbody\n")
    c["hard-date-far-zone.eml"] = crlf(
        "From: d@example.org\nSubject: date near midnight far zone\n"
        "Date: Sun, 31 Dec 2023 23:30:00 -1100\n\nbody\n")
    c["hard-header-oddities.eml"] = crlf(
        "From: h@example.org\n"
        "Subject:no-space-after-colon\n"
        "X-Empty:\n"
        "X-Folded-Empty:\n \n"
        "X-Sealmail-Test:    leading-spaces needle\n"
        "X-Tab-Fold: a\n\tb\n\t\tc\n"
        "Date: Tue, 23 Jan 2024 00:00:00 +0000\n"
        "this line has no colon and is not a header\n"
        "X-After-Garbage: still a header?\n"
        "x-lowercase-name: value\n"
        "X-Trailing-Space: value   \n"
        "\nbody\n")
    c["hard-binary-cte.eml"] = crlf(
        HDR + "Subject: 8bit and binary transfer encodings\nMIME-Version: 1.0\n"
        "Content-Type: multipart/mixed; boundary=\"bin\"\n\n"
        "--bin\nContent-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: 8bit\n\nacht bit: äöü\n"
        "--bin\nContent-Type: application/octet-stream\n"
        "Content-Transfer-Encoding: binary\n\n") + \
        b"\x01\x02\x03\xfe\xff raw\r\n" + crlf("--bin\nContent-Type: text/plain\n"
                                            "Content-Transfer-Encoding: 7bit\n\n"
                                            "claims 7bit but has 8bit: \xe9\n--bin--\n")
    c["hard-single-part-base64.eml"] = crlf(
        HDR + "Subject: single part base64 text\nMIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
        + base64.encodebytes(("Single-part base64 body, searchable word: "
                              "zebracorn. Grüße.\n" * 3).encode()).decode())
    c["hard-message-global.eml"] = crlf(
        HDR + "Subject: message/global and delivery-status\nMIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=\"rep\"\n\n"
        "--rep\nContent-Type: text/plain\n\nreport\n"
        "--rep\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; x\n\n"
        "Final-Recipient: rfc822; y@example.org\nAction: failed\n"
        "--rep\nContent-Type: message/global\n\n"
        "From: g@example.org\nSubject: Ünïcödé global\n\nglobal body\n"
        "--rep\nContent-Type: text/rfc822-headers\n\nFrom: h@example.org\n"
        "--rep--\n")
    return c


def main():
    data = find_python_data()
    n = 0
    if data:
        for f in sorted(glob.glob(os.path.join(data, "msg_*.txt"))):
            name = "py-" + os.path.basename(f)[:-4] + ".eml"
            with open(f, "rb") as fh:
                raw = fh.read()
            with open(os.path.join(HERE, name), "wb") as out:
                out.write(crlf(raw))
            n += 1
    else:
        print("CPython test_email data not found; py-*.eml left as they are",
              file=sys.stderr)
    for name, raw in cases().items():
        with open(os.path.join(HERE, name), "wb") as out:
            out.write(raw)
        n += 1
    print("wrote %d messages" % n)


if __name__ == "__main__":
    main()
