/* Modified UTF-7 for mailbox names (RFC 3501 section 5.1.3) and strict UTF-8
 * validation. The decoder (vault/mutf7.c, shared with the importer) accepts exactly
 * this encoder's output, so a name has one wire form and two spellings can never map
 * to the same mailbox. */
#include "imap-args.h"
#include "mutf7.h"		/* vault/: the decoder and UTF-8 check, one copy */

#include <string.h>

bool imap_utf8_valid(const void *vs, size_t len)
{
	return mutf7_utf8_valid(vs, len);
}

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int seterr(const char **err_out, const char *msg)
{
	if (err_out != NULL)
		*err_out = msg;
	return -EPROTO;
}

static int put_buf(void *arg, const void *p, size_t n)
{
	return imap_buf_add(arg, p, n);
}

int imap_mutf7_to_utf8(const char *in, size_t len, struct imap_buf *out,
    const char **err_out)
{
	size_t mark = out->len;
	int r = mutf7_decode(in, len, 0, put_buf, out, err_out);

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
