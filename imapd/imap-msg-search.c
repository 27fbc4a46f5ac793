/* imap-msg-search: SEARCH BODY / TEXT / HEADER over decoded text (RFC 9051 section
 * 6.4.4: "case-insensitive substring"). The comparator is a subset of
 * i;unicode-casemap (RFC 5051): simple case folding of the Latin, Greek, Cyrillic and
 * Armenian letters, without the decomposition step. */
#include <errno.h>
#include <stdlib.h>
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

/* ASCII lower case without branches (the compiler vectorises the loop). */
static void fold_ascii(uint8_t *d, const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		d[i] = (uint8_t)(s[i] + ((uint8_t)(s[i] - 'A') < 26u ? 32 : 0));
}

/* Length of the run of ASCII without NUL at s, eight bytes at a time. */
static size_t ascii_run(const uint8_t *s, size_t n)
{
	const uint64_t hi = 0x8080808080808080ull, lo = 0x0101010101010101ull;
	size_t j = 0;

	while (n - j >= 8) {
		uint64_t w;

		memcpy(&w, s + j, 8);
		if ((w & hi) != 0 || ((w - lo) & ~w & hi) != 0)
			break;	/* a byte >= 0x80, or a zero byte */
		j += 8;
	}
	while (j < n && s[j] < 0x80 && s[j] != 0)
		j++;
	return j;
}

int imap_msg_casefold(const char *str, size_t n, struct imap_mbuf *out)
{
	const uint8_t *s = (const uint8_t *)str;
	size_t i = 0;

	while (i < n && out->err == 0) {
		size_t j = i + ascii_run(s + i, n - i), used;
		uint32_t cp;

		/* a run of ASCII (NUL excluded) in one go: mail text is mostly ASCII */
		if (j > i) {
			uint8_t *d = mbuf_reserve(out, j - i);

			if (d == NULL)
				break;
			fold_ascii(d, s + i, j - i);
			out->len += j - i;
			out->d[out->len] = '\0';
			i = j;
			if (i == n)
				break;
		}
		/* NUL reads as U+FFFD, as in the charset conversion (utf8_sanitize) */
		cp = s[i] == 0 ? (used = 1, 0xfffd) : utf8_next(s + i, n - i, &used);
		utf8_put_cp(out, fold_cp(cp));
		i += used;
	}
	return out->err;
}

struct imap_msg_searcher {
	struct imap_mbuf needle;	/* folded */
	struct imap_mbuf a, b, raw;	/* scratch, kept between messages */
	const struct imap_msg *m;	/* the message being searched */
	int err;
};

int imap_msg_searcher_new(const char *needle, size_t n, struct imap_msg_searcher **out)
{
	struct imap_msg_searcher *s;
	int r;

	*out = NULL;
	if (needle == NULL && n > 0)
		return -EINVAL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	imap_mbuf_init(&s->needle, 0);
	imap_mbuf_init(&s->a, 0);
	imap_mbuf_init(&s->b, 0);
	imap_mbuf_init(&s->raw, 0);
	if ((r = imap_msg_casefold(needle, n, &s->needle)) != 0) {
		imap_msg_searcher_free(&s);
		return r;
	}
	*out = s;
	return 0;
}

/* Scratch that grew past this for one big message is given back afterwards. */
#define SCRATCH_KEEP ((size_t)1 << 20)

/* Scratch holds decrypted mail text: wiped before its memory goes back. */
static void scratch_release(struct imap_mbuf *b)
{
	if (b->d != NULL)
		explicit_bzero(b->d, b->cap);
	imap_mbuf_release(b);
}

static void scratch_trim(struct imap_mbuf *b)
{
	if (b->cap > SCRATCH_KEEP)
		scratch_release(b);
	imap_mbuf_reset(b);
}

void imap_msg_searcher_free(struct imap_msg_searcher **sp)
{
	struct imap_msg_searcher *s = sp != NULL ? *sp : NULL;

	if (s == NULL)
		return;
	scratch_release(&s->needle);
	scratch_release(&s->a);
	scratch_release(&s->b);
	scratch_release(&s->raw);
	free(s);
	*sp = NULL;
}

static bool found_in(const struct imap_msg_searcher *s, const struct imap_mbuf *hay)
{
	return hay->len >= s->needle.len &&
	    memmem(hay->d, hay->len, s->needle.d, s->needle.len) != NULL;
}

/* Folds text (UTF-8) and looks for the needle. */
static bool match_text(struct imap_msg_searcher *s, const uint8_t *text, size_t n)
{
	imap_mbuf_reset(&s->b);
	if (imap_msg_casefold((const char *)text, n, &s->b) != 0) {
		s->err = s->b.err;
		return false;
	}
	return found_in(s, &s->b);
}

/* All fields of a header, "Name: decoded value" per line. */
static bool match_header(struct imap_msg_searcher *s, const struct imap_msg_part *p)
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

static bool match_body(struct imap_msg_searcher *s, const struct imap_msg_part *p)
{
	const char *cs = part_charset(p);
	const uint8_t *text;
	size_t n;
	int r;

	/* The steps are skipped where they would copy bytes unchanged: no transfer
	 * encoding to remove (7bit, 8bit, binary), a charset read as UTF-8 (whose
	 * sanitising imap_msg_casefold() does on the way). */
	if (p->cte_kind == IMAP_MSG_CTE_NONE || p->cte_kind == IMAP_MSG_CTE_7BIT ||
	    p->cte_kind == IMAP_MSG_CTE_8BIT || p->cte_kind == IMAP_MSG_CTE_BINARY) {
		text = s->m->data + p->body_off;
		n = p->body_len;
	} else {
		imap_mbuf_reset(&s->raw);
		r = imap_msg_decode_binary(s->m, p, &s->raw);
		if (r == -ENOTSUP) {
			/* unknown encoding: search the bytes as they are */
			text = s->m->data + p->body_off;
			n = p->body_len;
		} else if (r != 0) {
			s->err = r;
			return false;
		} else {
			text = s->raw.d;
			n = s->raw.len;
		}
	}
	if (!charset_is_utf8(cs)) {
		imap_mbuf_reset(&s->a);
		if ((r = imap_msg_charset_to_utf8(cs, text, n, &s->a)) != 0) {
			s->err = r;
			return false;
		}
		text = s->a.d;
		n = s->a.len;
	}
	return match_text(s, text, n);
}

int imap_msg_searcher_text(struct imap_msg_searcher *s, const struct imap_msg *m,
    enum imap_msg_search_scope scope)
{
	bool found = false;
	int r;

	if (s == NULL || m == NULL)
		return -EINVAL;
	if (s->needle.len == 0)
		return 1;
	s->m = m;
	s->err = 0;
	for (const struct imap_msg_part *p = m->root; p != NULL && !found && s->err == 0;
	    p = imap_msg_part_next(p)) {
		/* RFC 9051 6.4.4: "Unlike TEXT, BODY doesn't match any header fields",
		 * which Dovecot reads as all of them, those of encapsulated messages
		 * too; TEXT matches every header. */
		if ((p->flags & IMAP_MSG_PART_MSG_ROOT) != 0 &&
		    scope == IMAP_MSG_SEARCH_TEXT)
			found = match_header(s, p);
		if (!found && s->err == 0 && p->children == NULL &&
		    (p->flags & IMAP_MSG_PART_TEXT) != 0)
			found = match_body(s, p);
	}
	r = s->err;
	s->m = NULL;
	scratch_trim(&s->a);
	scratch_trim(&s->b);
	scratch_trim(&s->raw);
	return r != 0 ? r : found ? 1 : 0;
}

int imap_msg_searcher_header(struct imap_msg_searcher *s, const uint8_t *hdr, size_t len,
    const char *name, enum imap_msg_search_field kind)
{
	struct hdr_iter it;
	struct hdr_field f;
	bool found = false;

	if (s == NULL || name == NULL || (hdr == NULL && len > 0))
		return -EINVAL;
	s->err = 0;
	hdr_iter_init_raw(&it, hdr, len);
	while (!found && s->err == 0 && hdr_iter_next(&it, &f)) {
		if (!f.has_colon || !hdr_name_eq(&f, name))
			continue;
		if (s->needle.len == 0) {
			found = true;	/* RFC 9051 6.4.4 HEADER: "" matches the field's presence */
			break;
		}
		imap_mbuf_reset(&s->a);
		if (kind == IMAP_MSG_SEARCH_ADDRESS) {
			/* RFC 9051 6.4.4: FROM etc. match "the envelope structure's
			 * FROM field", i.e. the parsed address list, not the raw field
			 * (comments, quoting and broken syntax read as ENVELOPE does) */
			(void)addr_write_search(&s->a, f.value, f.value_len);
		} else if (memchr(f.value, '\n', f.value_len) == NULL &&
		    memchr(f.value, '\r', f.value_len) == NULL &&
		    memmem(f.value, f.value_len, "=?", 2) == NULL) {
			/* one line without encoded words: decoding would only sanitise
			 * the UTF-8, which folding does as well */
			found = match_text(s, f.value, f.value_len);
			continue;
		} else {
			(void)imap_msg_decode_header((const char *)f.value, f.value_len, &s->a);
		}
		if (s->a.err != 0) {
			s->err = s->a.err;
			break;
		}
		found = match_text(s, s->a.d, s->a.len);
	}
	if (s->a.cap > SCRATCH_KEEP || s->b.cap > SCRATCH_KEEP) {
		scratch_trim(&s->a);
		scratch_trim(&s->b);
	}
	return s->err != 0 ? s->err : found ? 1 : 0;
}

int imap_msg_search_text(const struct imap_msg *m, const char *needle_utf8,
    enum imap_msg_search_scope scope)
{
	struct imap_msg_searcher *s = NULL;
	int r;

	if (m == NULL || needle_utf8 == NULL)
		return -EINVAL;
	if ((r = imap_msg_searcher_new(needle_utf8, strlen(needle_utf8), &s)) < 0)
		return r;
	r = imap_msg_searcher_text(s, m, scope);
	imap_msg_searcher_free(&s);
	return r;
}

int imap_msg_search_header(const struct imap_msg *m, const char *name,
    const char *needle_utf8)
{
	struct imap_msg_searcher *s = NULL;
	const struct imap_msg_part *p;
	size_t len;
	int r;

	if (m == NULL || name == NULL || needle_utf8 == NULL)
		return -EINVAL;
	p = m->root;
	len = p->hdr_len < m->lim.max_header_bytes ? p->hdr_len : m->lim.max_header_bytes;
	if ((r = imap_msg_searcher_new(needle_utf8, strlen(needle_utf8), &s)) < 0)
		return r;
	r = imap_msg_searcher_header(s, m->data + p->hdr_off, len, name,
	    IMAP_MSG_SEARCH_PLAIN);
	imap_msg_searcher_free(&s);
	return r;
}
