/* imap-msg-search: SEARCH BODY / TEXT / HEADER over decoded text (RFC 9051 section
 * 6.4.4: "case-insensitive substring"). The comparator is a subset of
 * i;unicode-casemap (RFC 5051): simple case folding of the Latin, Greek, Cyrillic and
 * Armenian letters, without the decomposition step. */
#include <errno.h>
#include <string.h>
#include "imap-msg-private.h"

static uint32_t fold_cp(uint32_t c)
{
	if (c < 0x80)
		return c >= 'A' && c <= 'Z' ? c + 32 : c;
	if (c < 0x100)
		return (c >= 0xc0 && c <= 0xde && c != 0xd7) ? c + 32 : c == 0xb5 ? 0x3bc : c;
	if (c < 0x180) {
		if ((c >= 0x100 && c <= 0x137) || (c >= 0x14a && c <= 0x177))
			return c | 1;
		if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e))
			return (c & 1) ? c + 1 : c;
		if (c == 0x178)
			return 0xff;
		if (c == 0x17f)
			return 's';
		return c;
	}
	if (c >= 0x370 && c < 0x400) {
		if (c >= 0x391 && c <= 0x3ab && c != 0x3a2)
			return c + 32;
		if (c == 0x386)
			return 0x3ac;
		if (c >= 0x388 && c <= 0x38a)
			return c + 37;
		if (c == 0x38c)
			return 0x3cc;
		if (c == 0x38e || c == 0x38f)
			return c + 63;
		if (c == 0x3c2)
			return 0x3c3;
		return c;
	}
	if (c >= 0x400 && c < 0x530) {
		if (c <= 0x40f)
			return c + 80;
		if (c <= 0x42f)
			return c + 32;
		if ((c >= 0x460 && c <= 0x481) || (c >= 0x48a && c <= 0x4bf) ||
		    (c >= 0x4d0 && c <= 0x52f))
			return c | 1;
		if (c >= 0x4c1 && c <= 0x4ce)
			return (c & 1) ? c + 1 : c;
		if (c == 0x4c0)
			return 0x4cf;
		return c;
	}
	if (c >= 0x531 && c <= 0x556)
		return c + 48;
	if (c >= 0x1e00 && c <= 0x1eff && !(c >= 0x1e96 && c <= 0x1e9f))
		return c | 1;
	if (c >= 0xff21 && c <= 0xff3a)
		return c + 32;
	return c;
}

int imap_msg_casefold(const char *str, size_t n, struct imap_mbuf *out)
{
	const uint8_t *s = (const uint8_t *)str;
	size_t i = 0;

	while (i < n) {
		size_t used;
		uint32_t cp;

		if (s[i] < 0x80) {
			imap_mbuf_putc(out, s[i] >= 'A' && s[i] <= 'Z' ? (uint8_t)(s[i] + 32) : s[i]);
			i++;
			continue;
		}
		cp = utf8_next(s + i, n - i, &used);
		utf8_put_cp(out, fold_cp(cp));
		i += used;
	}
	return out->err;
}

struct search {
	const struct imap_msg *m;
	struct imap_mbuf needle;	/* folded */
	struct imap_mbuf a, b;		/* scratch */
	int err;
};

/* Folds text (UTF-8) and looks for the needle. */
static bool match_text(struct search *s, const uint8_t *text, size_t n)
{
	imap_mbuf_reset(&s->b);
	if (imap_msg_casefold((const char *)text, n, &s->b) != 0) {
		s->err = s->b.err;
		return false;
	}
	return s->b.len >= s->needle.len &&
	    memmem(s->b.d, s->b.len, s->needle.d, s->needle.len) != NULL;
}

/* All fields of a header, "Name: decoded value" per line. */
static bool match_header(struct search *s, const struct imap_msg_part *p)
{
	struct hdr_iter it;
	struct hdr_field f;

	imap_mbuf_reset(&s->a);
	hdr_iter_init(&it, s->m, p);
	while (hdr_iter_next(&it, &f)) {
		if (!f.has_colon)
			continue;
		imap_mbuf_put(&s->a, f.name, f.name_len);
		imap_mbuf_put(&s->a, ": ", 2);
		(void)imap_msg_decode_header((const char *)f.value, f.value_len, &s->a);
		imap_mbuf_putc(&s->a, '\n');
	}
	if (s->a.err != 0) {
		s->err = s->a.err;
		return false;
	}
	return match_text(s, s->a.d, s->a.len);
}

static bool match_body(struct search *s, const struct imap_msg_part *p)
{
	struct imap_mbuf raw;
	int r;

	imap_mbuf_init(&raw, 0);
	r = imap_msg_decode_binary(s->m, p, &raw);
	if (r == -ENOTSUP) {
		/* unknown encoding: search the bytes as they are */
		imap_mbuf_reset(&raw);
		imap_mbuf_put(&raw, s->m->data + p->body_off, p->body_len);
		r = raw.err;
	}
	if (r != 0) {
		s->err = r;
		imap_mbuf_release(&raw);
		return false;
	}
	imap_mbuf_reset(&s->a);
	r = imap_msg_charset_to_utf8(part_charset(p), raw.d, raw.len, &s->a);
	imap_mbuf_release(&raw);
	if (r != 0) {
		s->err = r;
		return false;
	}
	return match_text(s, s->a.d, s->a.len);
}

static int search_init(struct search *s, const struct imap_msg *m, const char *needle)
{
	memset(s, 0, sizeof(*s));
	s->m = m;
	imap_mbuf_init(&s->needle, 0);
	imap_mbuf_init(&s->a, 0);
	imap_mbuf_init(&s->b, 0);
	return imap_msg_casefold(needle, strlen(needle), &s->needle);
}

static void search_done(struct search *s)
{
	imap_mbuf_release(&s->needle);
	imap_mbuf_release(&s->a);
	imap_mbuf_release(&s->b);
}

int imap_msg_search_text(const struct imap_msg *m, const char *needle_utf8,
    enum imap_msg_search_scope scope)
{
	struct search s;
	bool found = false;
	int r;

	if (m == NULL || needle_utf8 == NULL)
		return -EINVAL;
	if ((r = search_init(&s, m, needle_utf8)) != 0) {
		search_done(&s);
		return r;
	}
	if (s.needle.len == 0) {
		search_done(&s);
		return 1;
	}
	for (const struct imap_msg_part *p = m->root; p != NULL && !found && s.err == 0;
	    p = imap_msg_part_next(p)) {
		/* RFC 9051 6.4.4: "Unlike TEXT, BODY doesn't match any header fields",
		 * which Dovecot reads as all of them, those of encapsulated messages
		 * too; TEXT matches every header. */
		if ((p->flags & IMAP_MSG_PART_MSG_ROOT) != 0 &&
		    scope == IMAP_MSG_SEARCH_TEXT)
			found = match_header(&s, p);
		if (!found && s.err == 0 && p->children == NULL &&
		    (p->flags & IMAP_MSG_PART_TEXT) != 0)
			found = match_body(&s, p);
	}
	r = s.err;
	search_done(&s);
	return r != 0 ? r : found ? 1 : 0;
}

int imap_msg_search_header(const struct imap_msg *m, const char *name,
    const char *needle_utf8)
{
	struct search s;
	struct hdr_iter it;
	struct hdr_field f;
	bool found = false;
	int r;

	if (m == NULL || name == NULL || needle_utf8 == NULL)
		return -EINVAL;
	if ((r = search_init(&s, m, needle_utf8)) != 0) {
		search_done(&s);
		return r;
	}
	hdr_iter_init(&it, m, m->root);
	while (!found && s.err == 0 && hdr_iter_next(&it, &f)) {
		if (!hdr_name_eq(&f, name))
			continue;
		if (s.needle.len == 0) {
			found = true;
			break;
		}
		imap_mbuf_reset(&s.a);
		if (imap_msg_decode_header((const char *)f.value, f.value_len, &s.a) != 0) {
			s.err = s.a.err;
			break;
		}
		found = match_text(&s, s.a.d, s.a.len);
	}
	r = s.err;
	search_done(&s);
	return r != 0 ? r : found ? 1 : 0;
}
