/* mutf7.c: modified UTF-7 decoding and strict UTF-8 validation (see mutf7.h). The
 * decoder accepts exactly the encoder's output (imapd/mutf7.c has the encoder), so a
 * mailbox name has one wire form and two spellings never map to the same mailbox. */
#include <errno.h>
#include "mutf7.h"

bool mutf7_utf8_valid(const void *vs, size_t len)
{
	const uint8_t *s = vs;
	size_t i = 0;

	while (i < len) {
		uint8_t c = s[i];
		size_t need;
		uint8_t lo = 0x80, hi = 0xbf;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			if (c == 0xe0)
				lo = 0xa0;	/* no overlongs */
			else if (c == 0xed)
				hi = 0x9f;	/* no surrogates */
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			if (c == 0xf0)
				lo = 0x90;
			else if (c == 0xf4)
				hi = 0x8f;	/* <= U+10FFFF */
		} else {
			return false;
		}
		if (len - i - 1 < need)
			return false;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= need; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return false;
		i += need + 1;
	}
	return true;
}

/* Modified BASE64 (RFC 2152 with ',' instead of '/'). */
static int b64val(uint8_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

static int put_utf8(int (*put)(void *, const void *, size_t), void *arg, uint32_t cp)
{
	uint8_t b[4];
	size_t n;

	if (cp < 0x80) {
		b[0] = (uint8_t)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (uint8_t)(0xc0 | (cp >> 6));
		b[1] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (uint8_t)(0xe0 | (cp >> 12));
		b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (uint8_t)(0xf0 | (cp >> 18));
		b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return put(arg, b, n);
}

static int seterr(const char **err_out, const char *msg)
{
	if (err_out != NULL)
		*err_out = msg;
	return -EPROTO;
}

int mutf7_decode(const char *in, size_t len, unsigned flags,
    int (*put)(void *arg, const void *p, size_t n), void *arg, const char **err_out)
{
	const uint8_t *s = (const uint8_t *)in;
	size_t i = 0;
	bool after_run = false;
	int r;

	while (i < len) {
		uint8_t c = s[i++];
		uint32_t bits = 0, high = 0;
		unsigned nbits = 0, nunits = 0;

		/* RFC 3501 5.1.3: printable US-ASCII other than '&' represents itself. */
		if (c < 0x20 || c > 0x7e)
			return seterr(err_out, "invalid character in modified UTF-7 name");
		if (c != '&') {
			if ((r = put(arg, &c, 1)) < 0)
				return r;
			after_run = false;
			continue;
		}
		if (i < len && s[i] == '-') {		/* "&-" is '&' */
			i++;
			if ((r = put(arg, "&", 1)) < 0)
				return r;
			after_run = false;
			continue;
		}
		/* an encoder merges consecutive non-ASCII characters into one run */
		if (after_run && !(flags & MUTF7_ADJACENT_RUNS))
			return seterr(err_out, "adjacent modified BASE64 runs");
		for (;;) {
			uint32_t u;
			int v;

			if (i == len)
				return seterr(err_out, "unterminated modified BASE64 run");
			c = s[i++];
			if (c == '-')
				break;
			if ((v = b64val(c)) < 0)
				return seterr(err_out, "invalid modified BASE64 character");
			bits = (bits << 6) | (uint32_t)v;
			nbits += 6;
			if (nbits < 16)
				continue;
			nbits -= 16;
			u = (bits >> nbits) & 0xffff;
			bits &= (1u << nbits) - 1;
			nunits++;
			if (high != 0) {
				if (u < 0xdc00 || u > 0xdfff)
					return seterr(err_out, "unpaired UTF-16 surrogate");
				u = 0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00);
				high = 0;
			} else if (u >= 0xd800 && u <= 0xdbff) {
				high = u;
				continue;
			} else if (u >= 0xdc00 && u <= 0xdfff) {
				return seterr(err_out, "unpaired UTF-16 surrogate");
			} else if (u < 0x80 && (flags & MUTF7_NO_ASCII)) {
				return seterr(err_out, "encoded US-ASCII");
			} else if (u >= 0x20 && u <= 0x7e) {
				/* RFC 3501 5.1.3: printable ASCII must represent itself */
				return seterr(err_out, "encoded printable ASCII");
			} else if (u == 0) {
				return seterr(err_out, "NUL in mailbox name");
			}
			if ((r = put_utf8(put, arg, u)) < 0)
				return r;
		}
		if (nunits == 0 || high != 0 || nbits >= 6 || bits != 0)
			return seterr(err_out, nunits == 0 ? "empty modified BASE64 run" :
			    "bad modified BASE64 run");
		after_run = true;
	}
	return 0;
}
