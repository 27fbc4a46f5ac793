/* imap-msg-decode: transfer encodings (RFC 2045 section 6), encoded-words (RFC 2047),
 * RFC 2231 parameter values, charsets to UTF-8, CRLF normalisation. */
#include <errno.h>
#include <iconv.h>
#include <string.h>
#include "imap-msg-private.h"

/* ---- UTF-8 -------------------------------------------------------------------- */

void utf8_put_cp(struct imap_mbuf *out, uint32_t cp)
{
	uint8_t b[4];

	if (cp < 0x80) {
		imap_mbuf_putc(out, (uint8_t)cp);
	} else if (cp < 0x800) {
		b[0] = (uint8_t)(0xc0 | (cp >> 6));
		b[1] = (uint8_t)(0x80 | (cp & 0x3f));
		imap_mbuf_put(out, b, 2);
	} else if (cp < 0x10000) {
		b[0] = (uint8_t)(0xe0 | (cp >> 12));
		b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (uint8_t)(0x80 | (cp & 0x3f));
		imap_mbuf_put(out, b, 3);
	} else {
		b[0] = (uint8_t)(0xf0 | (cp >> 18));
		b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (uint8_t)(0x80 | (cp & 0x3f));
		imap_mbuf_put(out, b, 4);
	}
}

uint32_t utf8_next(const uint8_t *s, size_t n, size_t *used)
{
	uint32_t cp, min;
	size_t len;

	*used = 1;
	if (s[0] < 0x80)
		return s[0];
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = s[0] & 0x1f;
		min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = s[0] & 0x0f;
		min = 0x800;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = s[0] & 0x07;
		min = 0x10000;
	} else {
		return 0xfffd;
	}
	if (n < len)
		return 0xfffd;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0xfffd;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0xfffd;
	*used = len;
	return cp;
}

void utf8_sanitize(const uint8_t *s, size_t n, struct imap_mbuf *out)
{
	size_t i = 0, start = 0;

	if (n == 0)
		return;	/* s may be NULL (an empty imap_mbuf) */

	while (i < n) {
		size_t used;
		uint32_t cp;

		if (s[i] >= 0x01 && s[i] < 0x80) {
			i++;
			continue;
		}
		cp = utf8_next(s + i, n - i, &used);
		if (cp != 0xfffd && cp != 0) {
			i += used;
			continue;
		}
		/* invalid sequence or NUL: U+FFFD (a genuine U+FFFD is copied too) */
		imap_mbuf_put(out, s + start, i - start);
		utf8_put_cp(out, 0xfffd);
		i += used;
		start = i;
	}
	imap_mbuf_put(out, s + start, n - start);
}

/* ---- charsets ---------------------------------------------------------------------- */

/* windows-1252 0x80..0x9f (0 = undefined) */
static const uint16_t cp1252_high[32] = {
	0x20ac, 0, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021,
	0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017d, 0,
	0, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
	0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0, 0x017e, 0x0178,
};

enum cs { CS_UTF8, CS_LATIN1, CS_CP1252, CS_LATIN9, CS_OTHER };

static bool name_in(const char *cs, const char *const *names)
{
	for (; *names != NULL; names++) {
		if (ascii_ieq((const uint8_t *)cs, strlen(cs), *names))
			return true;
	}
	return false;
}

static enum cs charset_kind(const char *cs)
{
	static const char *const utf8[] = { "utf-8", "utf8", "us-ascii", "ascii",
		"ansi_x3.4-1968", "iso646-us", "unicode-1-1-utf-8", NULL };
	static const char *const latin1[] = { "iso-8859-1", "iso8859-1", "iso_8859-1",
		"latin1", "latin-1", "l1", "iso-ir-100", "cp819", NULL };
	static const char *const cp1252[] = { "windows-1252", "cp1252", "x-cp1252", NULL };
	static const char *const latin9[] = { "iso-8859-15", "iso8859-15", "iso_8859-15",
		"latin-9", "latin9", NULL };

	if (cs == NULL || *cs == '\0' || name_in(cs, utf8))
		return CS_UTF8;
	if (name_in(cs, latin1))
		return CS_LATIN1;
	if (name_in(cs, cp1252))
		return CS_CP1252;
	if (name_in(cs, latin9))
		return CS_LATIN9;
	return CS_OTHER;
}

bool charset_is_utf8(const char *charset)
{
	return charset_kind(charset) == CS_UTF8;
}

static uint32_t latin9_cp(uint8_t c)
{
	switch (c) {
	case 0xa4: return 0x20ac;
	case 0xa6: return 0x0160;
	case 0xa8: return 0x0161;
	case 0xb4: return 0x017d;
	case 0xb8: return 0x017e;
	case 0xbc: return 0x0152;
	case 0xbd: return 0x0153;
	case 0xbe: return 0x0178;
	default: return c;
	}
}

/* A charset name we are willing to hand to iconv_open(). */
static bool charset_name_ok(const char *cs)
{
	size_t n = strlen(cs);

	if (n == 0 || n > 40)
		return false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)cs[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == ':'))
			return false;
	}
	return true;
}

static bool iconv_to_utf8(const char *cs, const uint8_t *s, size_t n,
    struct imap_mbuf *out)
{
	iconv_t cd;
	char *in = (char *)(uintptr_t)s;
	size_t inleft = n;
	struct imap_mbuf tmp;

	if (!charset_name_ok(cs))
		return false;
	cd = iconv_open("UTF-8", cs);
	if (cd == (iconv_t)-1)
		return false;
	imap_mbuf_init(&tmp, out->max);
	while (inleft > 0 && tmp.err == 0) {
		char buf[1024], *o = buf;
		size_t oleft = sizeof(buf);
		size_t r = iconv(cd, &in, &inleft, &o, &oleft);

		imap_mbuf_put(&tmp, buf, sizeof(buf) - oleft);
		if (r != (size_t)-1)
			continue;
		if (errno == E2BIG)
			continue;
		/* EILSEQ: skip one byte; EINVAL: truncated sequence at the end */
		utf8_put_cp(&tmp, 0xfffd);
		if (errno == EINVAL) {
			break;
		}
		in++;
		inleft--;
		iconv(cd, NULL, NULL, NULL, NULL);
	}
	{
		/* flush a stateful encoding's shift sequence */
		char buf[64], *o = buf;
		size_t oleft = sizeof(buf);

		if (iconv(cd, NULL, NULL, &o, &oleft) != (size_t)-1)
			imap_mbuf_put(&tmp, buf, sizeof(buf) - oleft);
	}
	iconv_close(cd);
	if (tmp.err != 0) {
		if (out->err == 0)
			out->err = tmp.err;
	} else {
		/* iconv output is UTF-8; sanitising also maps NUL to U+FFFD */
		utf8_sanitize(tmp.d, tmp.len, out);
	}
	imap_mbuf_release(&tmp);
	return true;
}

int imap_msg_charset_to_utf8(const char *charset, const uint8_t *s, size_t n,
    struct imap_mbuf *out)
{
	enum cs kind = charset_kind(charset);

	if (kind == CS_OTHER && iconv_to_utf8(charset, s, n, out))
		return out->err;
	if (kind == CS_UTF8 || kind == CS_OTHER) {
		utf8_sanitize(s, n, out);
		return out->err;
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t cp = s[i];

		if (cp == 0)
			cp = 0xfffd;
		else if (kind == CS_CP1252 && cp >= 0x80 && cp < 0xa0)
			cp = cp1252_high[cp - 0x80] != 0 ? cp1252_high[cp - 0x80] : 0xfffd;
		else if (kind == CS_LATIN9)
			cp = latin9_cp(s[i]);
		utf8_put_cp(out, cp);
	}
	return out->err;
}

/* ---- base64 / quoted-printable ------------------------------------------------------ */

static int b64_value(uint8_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

void b64_decode(const uint8_t *s, size_t n, struct imap_mbuf *out, uint64_t *size_out)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	uint8_t buf[256];
	size_t nb = 0;
	uint64_t total = 0;

	/* RFC 2045 section 6.8: characters outside the alphabet are ignored. "="
	 * ends a quantum; decoding goes on after it (concatenated encodings). */
	for (size_t i = 0; i < n; i++) {
		int v = b64_value(s[i]);

		if (v < 0) {
			if (s[i] == '=') {
				bits = 0;
				acc = 0;
			}
			continue;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			total++;
			if (out != NULL) {
				buf[nb++] = (uint8_t)(acc >> bits);
				if (nb == sizeof(buf)) {
					imap_mbuf_put(out, buf, nb);
					nb = 0;
				}
			}
			acc &= (1u << bits) - 1;
		}
	}
	if (out != NULL)
		imap_mbuf_put(out, buf, nb);
	explicit_bzero(buf, sizeof(buf));	/* the last decoded bytes: mail text */
	if (size_out != NULL)
		*size_out = total;
}

static int hex_value(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

struct sink {
	struct imap_mbuf *out;
	uint64_t total;
};

static void sink_put(struct sink *k, const uint8_t *p, size_t n)
{
	k->total += n;
	if (k->out != NULL)
		imap_mbuf_put(k->out, p, n);
}

static void sink_putc(struct sink *k, uint8_t c)
{
	sink_put(k, &c, 1);
}

/* Decodes one line's content (no line ending) of quoted-printable, or an RFC 2047
 * Q-encoded text (q). Returns true if it ended with a soft line break. */
static bool qp_line(struct sink *k, const uint8_t *s, size_t n, bool q)
{
	size_t i = 0, start = 0;

	while (i < n) {
		int hi, lo;

		if (q && s[i] == '_') {
			sink_put(k, s + start, i - start);
			sink_putc(k, ' ');	/* RFC 2047 section 4.2 (2) */
			start = ++i;
			continue;
		}
		if (s[i] != '=') {
			i++;
			continue;
		}
		sink_put(k, s + start, i - start);
		if (i + 1 == n && !q)
			return true;	/* soft line break */
		if (i + 2 < n && (hi = hex_value(s[i + 1])) >= 0 &&
		    (lo = hex_value(s[i + 2])) >= 0) {
			sink_putc(k, (uint8_t)(hi << 4 | lo));
			i += 3;
		} else {
			/* not an escape: keep the "=" (RFC 2045 section 6.7, note 1) */
			sink_putc(k, '=');
			i++;
		}
		start = i;
	}
	sink_put(k, s + start, n - start);
	return false;
}

void qp_decode(const uint8_t *s, size_t n, bool q, struct imap_mbuf *out,
    uint64_t *size_out)
{
	struct sink k = { out, 0 };
	size_t pos = 0;

	if (q) {
		qp_line(&k, s, n, true);
	} else {
		while (pos < n) {
			const uint8_t *lf = memchr(s + pos, '\n', n - pos);
			size_t end = lf == NULL ? n : (size_t)(lf - s);
			size_t content = end, eol_off, eol_n;

			if (lf != NULL && content > pos && s[content - 1] == '\r')
				content--;
			eol_off = content;
			eol_n = (lf == NULL ? end : end + 1) - eol_off;
			/* RFC 2045 6.7 (3): trailing white space is transport padding */
			while (content > pos && (s[content - 1] == ' ' || s[content - 1] == '\t'))
				content--;
			/* a hard line break stays as written (CRLF in a stored message) */
			if (!qp_line(&k, s + pos, content - pos, false))
				sink_put(&k, s + eol_off, eol_n);
			pos = lf == NULL ? n : end + 1;
		}
	}
	if (size_out != NULL)
		*size_out = k.total;
}

/* ---- RFC 2047 ------------------------------------------------------------------------ */

/* RFC 2047 section 2 limits an encoded-word to 75 characters; mailers exceed that,
 * but a charset name longer than this is not one */
#define EW_CHARSET_MAX 64

/* Positions of the next "?=" and the next CR/LF, found once and reused while the
 * scan moves forward, so that decoding stays linear however many "=?" there are. */
struct ew_scan {
	const uint8_t *s;
	size_t n;
	size_t next_end, next_nl;	/* n if none */
	bool have_end, have_nl;
};

static size_t find_end(struct ew_scan *sc, size_t from)
{
	if (!sc->have_end || sc->next_end < from) {
		const uint8_t *p = from + 1 < sc->n ? memmem(sc->s + from, sc->n - from, "?=", 2) : NULL;

		sc->next_end = p == NULL ? sc->n : (size_t)(p - sc->s);
		sc->have_end = true;
	}
	return sc->next_end;
}

static size_t find_nl(struct ew_scan *sc, size_t from)
{
	if (!sc->have_nl || sc->next_nl < from) {
		size_t i = from;

		while (i < sc->n && sc->s[i] != '\r' && sc->s[i] != '\n')
			i++;
		sc->next_nl = i;
		sc->have_nl = true;
	}
	return sc->next_nl;
}

struct ew {
	const uint8_t *charset;
	size_t charset_len;
	uint8_t enc;		/* 'B' or 'Q' */
	const uint8_t *text;
	size_t text_len;
	size_t len;		/* of the whole encoded-word */
};

/* encoded-word = "=?" charset "?" encoding "?" encoded-text "?=" at sc->s + at */
static bool parse_ew(struct ew_scan *sc, size_t at, struct ew *w)
{
	const uint8_t *s = sc->s + at;
	size_t n = sc->n - at, i = 2, cs_end, t, end;

	if (n < 8 || s[0] != '=' || s[1] != '?')
		return false;
	while (i < n && i < 2 + EW_CHARSET_MAX && s[i] != '?' && s[i] > ' ' && s[i] < 0x7f)
		i++;
	if (i >= n || s[i] != '?' || i == 2)
		return false;
	cs_end = i;
	if (i + 2 >= n || s[i + 2] != '?')
		return false;
	w->enc = ascii_lower(s[i + 1]) == 'b' ? 'B' : ascii_lower(s[i + 1]) == 'q' ? 'Q' : 0;
	if (w->enc == 0)
		return false;
	t = i + 3;
	/* the text ends at the first "?=", and may not contain a line break */
	end = find_end(sc, at + t);
	if (end >= sc->n || find_nl(sc, at + t) < end)
		return false;
	i = end - at;
	w->charset = s + 2;
	w->charset_len = cs_end - 2;
	/* RFC 2231 section 5: charset*language */
	{
		const uint8_t *star = memchr(w->charset, '*', w->charset_len);

		if (star != NULL)
			w->charset_len = (size_t)(star - w->charset);
	}
	w->text = s + t;
	w->text_len = i - t;
	w->len = i + 2;
	return true;
}

static bool only_lwsp(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return false;
	}
	return true;
}

/* Converts pending decoded bytes of charset cs, then clears them. */
static void flush_pending(struct imap_mbuf *pending, char *cs, struct imap_mbuf *out)
{
	if (pending->len > 0)
		(void)imap_msg_charset_to_utf8(cs, pending->d, pending->len, out);
	if (pending->err != 0 && out->err == 0)
		out->err = pending->err;
	imap_mbuf_reset(pending);
}

int imap_msg_decode_header(const char *str, size_t n, struct imap_mbuf *out)
{
	const uint8_t *s = (const uint8_t *)str;
	struct imap_mbuf pending, plain;
	char cs[EW_CHARSET_MAX + 1] = "";
	size_t i = 0, lit_start = 0;
	bool last_was_ew = false;
	struct ew_scan sc = { s, n, 0, 0, false, false };

	imap_mbuf_init(&pending, out->max);
	imap_mbuf_init(&plain, out->max);
	while (i < n) {
		struct ew w;
		const uint8_t *q = memchr(s + i, '=', n - i);

		if (q == NULL)
			break;
		i = (size_t)(q - s);
		if (!parse_ew(&sc, i, &w)) {
			i++;
			continue;
		}
		/* the text before this word: dropped if it is only white space between
		 * two encoded-words (RFC 2047 section 6.2) */
		if (!(last_was_ew && only_lwsp(s + lit_start, i - lit_start))) {
			flush_pending(&pending, cs, out);
			imap_mbuf_reset(&plain);
			mbuf_put_unfolded(&plain, s + lit_start, i - lit_start);
			utf8_sanitize(plain.d, plain.len, out);
		}
		/* adjacent words in one charset are joined before conversion, so a
		 * multi-byte character split across two words survives */
		if (w.charset_len >= sizeof(cs) ||
		    strlen(cs) != w.charset_len || !ascii_ieq(w.charset, w.charset_len, cs)) {
			flush_pending(&pending, cs, out);
			if (w.charset_len >= sizeof(cs))
				w.charset_len = sizeof(cs) - 1;
			memcpy(cs, w.charset, w.charset_len);
			cs[w.charset_len] = '\0';
		}
		if (w.enc == 'B')
			b64_decode(w.text, w.text_len, &pending, NULL);
		else
			qp_decode(w.text, w.text_len, true, &pending, NULL);
		i += w.len;
		lit_start = i;
		last_was_ew = true;
	}
	flush_pending(&pending, cs, out);
	imap_mbuf_reset(&plain);
	mbuf_put_unfolded(&plain, s + lit_start, n - lit_start);
	utf8_sanitize(plain.d, plain.len, out);
	if (plain.err != 0 && out->err == 0)
		out->err = plain.err;
	imap_mbuf_release(&pending);
	imap_mbuf_release(&plain);
	return out->err;
}

/* ---- RFC 2231 ---------------------------------------------------------------------- */

int imap_msg_param_decoded(const struct imap_msg_param *params, uint32_t nparams,
    const char *name, struct imap_mbuf *out)
{
	size_t nlen = strlen(name);

	/* the encoded form first: it is the one meant for RFC 2231-aware readers */
	for (uint32_t i = 0; i < nparams; i++) {
		const char *pn = params[i].name, *v = params[i].value, *q1, *q2;
		struct imap_mbuf raw;
		char cs[64];
		int r;

		if (strlen(pn) != nlen + 1 || pn[nlen] != '*' ||
		    !ascii_ieq((const uint8_t *)pn, nlen, name))
			continue;
		/* charset'language'%XX-encoded (RFC 2231 section 4) */
		q1 = strchr(v, '\'');
		q2 = q1 != NULL ? strchr(q1 + 1, '\'') : NULL;
		if (q2 == NULL) {
			utf8_sanitize((const uint8_t *)v, strlen(v), out);
			return out->err;
		}
		if ((size_t)(q1 - v) >= sizeof(cs))
			cs[0] = '\0';
		else {
			memcpy(cs, v, (size_t)(q1 - v));
			cs[q1 - v] = '\0';
		}
		imap_mbuf_init(&raw, out->max);
		for (const char *p = q2 + 1; *p != '\0'; p++) {
			int hi, lo;

			if (*p == '%' && (hi = hex_value((uint8_t)p[1])) >= 0 &&
			    (lo = hex_value((uint8_t)p[2])) >= 0) {
				imap_mbuf_putc(&raw, (uint8_t)(hi << 4 | lo));
				p += 2;
			} else {
				imap_mbuf_putc(&raw, (uint8_t)*p);
			}
		}
		r = raw.err != 0 ? raw.err :
		    imap_msg_charset_to_utf8(cs[0] != '\0' ? cs : NULL, raw.d, raw.len, out);
		imap_mbuf_release(&raw);
		return r;
	}
	for (uint32_t i = 0; i < nparams; i++) {
		if (ascii_ieq((const uint8_t *)params[i].name, strlen(params[i].name), name))
			return imap_msg_decode_header(params[i].value,
			    strlen(params[i].value), out);
	}
	return -ENOENT;
}

/* ---- CRLF ------------------------------------------------------------------------- */

int imap_msg_crlf_normalize(const uint8_t *msg, size_t len, struct imap_mbuf *out)
{
	size_t start = 0;

	for (size_t i = 0; i < len; i++) {
		if (msg[i] != '\n' || (i > 0 && msg[i - 1] == '\r'))
			continue;
		imap_mbuf_put(out, msg + start, i - start);
		imap_mbuf_put(out, "\r\n", 2);
		start = i + 1;
	}
	imap_mbuf_put(out, msg + start, len - start);
	return out->err;
}
