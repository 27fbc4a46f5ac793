/* Modified UTF-7 for mailbox names (RFC 3501 section 5.1.3) and strict UTF-8
 * validation. The decoder accepts exactly the encoder's output, so a name has one
 * wire form and two spellings can never map to the same mailbox. */
#include "imap-args.h"

#include <string.h>

/* RFC 3629 table 3-7: well-formed UTF-8 byte sequences */
bool imap_utf8_valid(const void *vs, size_t len)
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

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

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
		return 63;	/* modified BASE64 uses "," instead of "/" */
	return -1;
}

static int put_utf8(struct imap_buf *out, uint32_t cp)
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
	return imap_buf_add(out, b, n);
}

static int seterr(const char **err_out, const char *msg)
{
	if (err_out != NULL)
		*err_out = msg;
	return -EPROTO;
}

int imap_mutf7_to_utf8(const char *in, size_t len, struct imap_buf *out,
    const char **err_out)
{
	const uint8_t *s = (const uint8_t *)in;
	size_t i = 0, mark = out->len;
	bool after_run = false;
	int r = 0;

	while (i < len) {
		uint8_t c = s[i++];
		uint32_t bits = 0, high = 0;
		unsigned nbits = 0, nunits = 0;

		if (c < 0x20 || c > 0x7e) {
			r = seterr(err_out, "invalid character in modified UTF-7 name");
			goto out;
		}
		if (c != '&') {
			if ((r = imap_buf_add(out, &c, 1)) < 0)
				goto out;
			after_run = false;
			continue;
		}
		if (i < len && s[i] == '-') {
			i++;
			if ((r = imap_buf_add(out, "&", 1)) < 0)
				goto out;
			after_run = false;
			continue;
		}
		/* an encoder merges consecutive non-ASCII characters into one run */
		if (after_run) {
			r = seterr(err_out, "adjacent modified BASE64 runs");
			goto out;
		}
		for (;;) {
			int v;

			if (i == len) {
				r = seterr(err_out, "unterminated modified BASE64 run");
				goto out;
			}
			c = s[i++];
			if (c == '-')
				break;
			if ((v = b64val(c)) < 0) {
				r = seterr(err_out, "invalid modified BASE64 character");
				goto out;
			}
			bits = (bits << 6) | (uint32_t)v;
			nbits += 6;
			if (nbits < 16)
				continue;
			nbits -= 16;
			{
				uint32_t u = (bits >> nbits) & 0xffff;

				bits &= (1u << nbits) - 1;
				nunits++;
				if (high != 0) {
					if (u < 0xdc00 || u > 0xdfff) {
						r = seterr(err_out, "unpaired UTF-16 surrogate");
						goto out;
					}
					u = 0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00);
					high = 0;
				} else if (u >= 0xd800 && u <= 0xdbff) {
					high = u;
					continue;
				} else if (u >= 0xdc00 && u <= 0xdfff) {
					r = seterr(err_out, "unpaired UTF-16 surrogate");
					goto out;
				} else if (u >= 0x20 && u <= 0x7e) {
					/* RFC 3501 5.1.3: printable ASCII must represent itself */
					r = seterr(err_out, "encoded printable ASCII");
					goto out;
				} else if (u == 0) {
					r = seterr(err_out, "NUL in mailbox name");
					goto out;
				}
				if ((r = put_utf8(out, u)) < 0)
					goto out;
			}
		}
		if (nunits == 0 || high != 0 || nbits >= 6 || bits != 0) {
			r = seterr(err_out, nunits == 0 ? "empty modified BASE64 run" :
			    "bad modified BASE64 run");
			goto out;
		}
		after_run = true;
	}
out:
	if (r < 0) {
		out->len = mark;
		if (out->data != NULL)
			out->data[mark] = 0;
	}
	return r;
}

static int put_b64(struct imap_buf *out, uint32_t *bits, unsigned *nbits, uint32_t unit)
{
	int r;

	*bits = (*bits << 16) | unit;
	*nbits += 16;
	while (*nbits >= 6) {
		*nbits -= 6;
		if ((r = imap_buf_add(out, &b64chars[(*bits >> *nbits) & 63], 1)) < 0)
			return r;
	}
	*bits &= (1u << *nbits) - 1;
	return 0;
}

int imap_utf8_to_mutf7(const char *in, size_t len, struct imap_buf *out,
    const char **err_out)
{
	const uint8_t *s = (const uint8_t *)in;
	size_t i = 0, mark = out->len;
	int r = 0;

	if (!imap_utf8_valid(in, len))
		return seterr(err_out, "invalid UTF-8");
	if (memchr(in, 0, len) != NULL)
		return seterr(err_out, "NUL in mailbox name");
	while (i < len) {
		uint32_t bits = 0;
		unsigned nbits = 0;

		if (s[i] >= 0x20 && s[i] <= 0x7e) {
			r = s[i] == '&' ? imap_buf_add(out, "&-", 2) : imap_buf_add(out, &s[i], 1);
			if (r < 0)
				goto out;
			i++;
			continue;
		}
		if ((r = imap_buf_add(out, "&", 1)) < 0)
			goto out;
		while (i < len && !(s[i] >= 0x20 && s[i] <= 0x7e)) {
			uint32_t cp;

			/* already validated: decode one code point */
			if (s[i] < 0x80) {
				cp = s[i];
				i += 1;
			} else if (s[i] < 0xe0) {
				cp = ((uint32_t)(s[i] & 0x1f) << 6) | (s[i + 1] & 0x3f);
				i += 2;
			} else if (s[i] < 0xf0) {
				cp = ((uint32_t)(s[i] & 0x0f) << 12) |
				    ((uint32_t)(s[i + 1] & 0x3f) << 6) | (s[i + 2] & 0x3f);
				i += 3;
			} else {
				cp = ((uint32_t)(s[i] & 0x07) << 18) |
				    ((uint32_t)(s[i + 1] & 0x3f) << 12) |
				    ((uint32_t)(s[i + 2] & 0x3f) << 6) | (s[i + 3] & 0x3f);
				i += 4;
			}
			if (cp >= 0x10000) {
				cp -= 0x10000;
				if ((r = put_b64(out, &bits, &nbits, 0xd800 + (cp >> 10))) < 0 ||
				    (r = put_b64(out, &bits, &nbits, 0xdc00 + (cp & 0x3ff))) < 0)
					goto out;
			} else if ((r = put_b64(out, &bits, &nbits, cp)) < 0) {
				goto out;
			}
		}
		if (nbits > 0 &&
		    (r = imap_buf_add(out, &b64chars[(bits << (6 - nbits)) & 63], 1)) < 0)
			goto out;
		if ((r = imap_buf_add(out, "-", 1)) < 0)
			goto out;
	}
out:
	if (r < 0) {
		out->len = mark;
		if (out->data != NULL)
			out->data[mark] = 0;
	}
	return r;
}
