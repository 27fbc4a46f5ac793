/* imap-msg-buf: the capped output buffer, IMAP string quoting, and the arena that
 * holds a parsed message's tree. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "imap-msg-private.h"

/* ---- imap_mbuf ---------------------------------------------------------------- *
 * What goes through these buffers is decrypted mail (bodies, decoded parts, header
 * values, SEARCH scratch): every byte of ordinary heap memory they give back is wiped
 * first, on release and when growing (no realloc, which frees the old block as is). */

void imap_mbuf_init(struct imap_mbuf *b, size_t max)
{
	b->d = NULL;
	b->len = b->cap = 0;
	b->max = max == 0 ? IMAP_MBUF_DEFAULT_MAX : max;
	b->err = 0;
}

void imap_mbuf_release(struct imap_mbuf *b)
{
	if (b == NULL)
		return;
	if (b->d != NULL)
		explicit_bzero(b->d, b->cap);
	free(b->d);
	b->d = NULL;
	b->len = b->cap = 0;
	b->err = 0;
}

void imap_mbuf_reset(struct imap_mbuf *b)
{
	b->len = 0;
	b->err = 0;
	if (b->d != NULL)
		b->d[0] = '\0';
}

/* Makes room for n more bytes plus the terminating NUL. */
static bool mbuf_grow(struct imap_mbuf *b, size_t n)
{
	size_t need, ncap;
	uint8_t *nd;

	if (b->err != 0)
		return false;
	if (n > b->max - b->len) {
		b->err = -E2BIG;
		return false;
	}
	need = b->len + n + 1;
	if (need <= b->cap)
		return true;
	ncap = b->cap < 64 ? 64 : b->cap;
	while (ncap < need)
		ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
	nd = malloc(ncap);
	if (nd == NULL) {
		b->err = -ENOMEM;
		return false;
	}
	if (b->d != NULL) {
		memcpy(nd, b->d, b->len);
		explicit_bzero(b->d, b->cap);
		free(b->d);
	}
	b->d = nd;
	b->cap = ncap;
	return true;
}

uint8_t *mbuf_reserve(struct imap_mbuf *b, size_t n)
{
	if (!mbuf_grow(b, n))
		return NULL;
	return b->d + b->len;
}

void imap_mbuf_put(struct imap_mbuf *b, const void *p, size_t n)
{
	if (!mbuf_grow(b, n))
		return;
	if (n > 0)
		memcpy(b->d + b->len, p, n);
	b->len += n;
	b->d[b->len] = '\0';
}

void imap_mbuf_putc(struct imap_mbuf *b, uint8_t c)
{
	if (!mbuf_grow(b, 1))
		return;
	b->d[b->len++] = c;
	b->d[b->len] = '\0';
}

void imap_mbuf_puts(struct imap_mbuf *b, const char *s)
{
	imap_mbuf_put(b, s, strlen(s));
}

void imap_mbuf_put_u64(struct imap_mbuf *b, uint64_t v)
{
	char tmp[24];
	size_t i = sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	imap_mbuf_put(b, tmp + i, sizeof(tmp) - i);
}

/* ---- IMAP strings --------------------------------------------------------------- */

static const uint8_t utf8_replacement[3] = { 0xef, 0xbf, 0xbd };

/* Writes s as a quoted string if RFC 9051 allows it (7-bit, no CR/LF/NUL), else as a
 * literal. NULs are written as U+FFFD. */
static void put_string(struct imap_mbuf *b, const uint8_t *s, size_t n)
{
	bool literal = false;
	size_t nuls = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\0') {
			nuls++;
			literal = true;
		} else if (s[i] >= 0x80 || s[i] == '\r' || s[i] == '\n') {
			literal = true;
		}
	}
	if (literal) {
		imap_mbuf_putc(b, '{');
		imap_mbuf_put_u64(b, (uint64_t)n + 2 * (uint64_t)nuls);
		imap_mbuf_put(b, "}\r\n", 3);
		if (nuls == 0) {
			imap_mbuf_put(b, s, n);
			return;
		}
		for (size_t i = 0; i < n; i++) {
			if (s[i] == '\0')
				imap_mbuf_put(b, utf8_replacement, 3);
			else
				imap_mbuf_putc(b, s[i]);
		}
		return;
	}
	imap_mbuf_putc(b, '"');
	for (size_t i = 0, start = 0; i <= n; i++) {
		if (i == n || s[i] == '"' || s[i] == '\\') {
			imap_mbuf_put(b, s + start, i - start);
			if (i == n)
				break;
			imap_mbuf_putc(b, '\\');
			start = i;
		}
	}
	imap_mbuf_putc(b, '"');
}

void imap_mbuf_put_nstring(struct imap_mbuf *b, const char *s, size_t n)
{
	if (s == NULL) {
		imap_mbuf_put(b, "NIL", 3);
		return;
	}
	put_string(b, (const uint8_t *)s, n);
}

static bool is_nl(uint8_t c)
{
	return c == '\r' || c == '\n';
}

void imap_mbuf_put_nstring_nolf(struct imap_mbuf *b, const char *str, size_t n)
{
	const uint8_t *s = (const uint8_t *)str;
	struct imap_mbuf t;

	if (s == NULL || (memchr(s, '\r', n) == NULL && memchr(s, '\n', n) == NULL)) {
		imap_mbuf_put_nstring(b, str, n);
		return;
	}
	/* Unfolding removes the line breaks; a break that is not followed by white space
	 * (not a fold, so not from a well-formed header) still separates words. */
	imap_mbuf_init(&t, b->max);
	for (size_t i = 0; i < n; i++) {
		if (!is_nl(s[i])) {
			imap_mbuf_putc(&t, s[i]);
		} else if (i + 1 < n && s[i + 1] != ' ' && s[i + 1] != '\t' &&
		    !is_nl(s[i + 1])) {
			imap_mbuf_putc(&t, ' ');
		}
	}
	if (t.err != 0) {
		if (b->err == 0)
			b->err = t.err;
	} else {
		put_string(b, t.d != NULL ? t.d : (const uint8_t *)"", t.len);
	}
	imap_mbuf_release(&t);
}

static bool is_lwsp(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

void imap_mbuf_put_nstring_human(struct imap_mbuf *b, const char *str, size_t n)
{
	const uint8_t *s = (const uint8_t *)str;
	bool modify = false, last_lwsp = true;
	struct imap_mbuf t;

	if (s == NULL) {
		imap_mbuf_put(b, "NIL", 3);
		return;
	}
	for (size_t i = 0; i < n && !modify; i++) {
		if (s[i] == '\t' || is_nl(s[i]))
			modify = true;
		else if (s[i] == ' ')
			modify = last_lwsp;
		last_lwsp = is_lwsp(s[i]);
	}
	if (!modify && n > 0 && s[n - 1] == ' ')
		modify = true;
	if (!modify) {
		put_string(b, s, n);
		return;
	}
	imap_mbuf_init(&t, b->max);
	last_lwsp = true;
	for (size_t i = 0; i < n; i++) {
		if (is_lwsp(s[i])) {
			if (!last_lwsp)
				imap_mbuf_putc(&t, ' ');
			last_lwsp = true;
		} else {
			imap_mbuf_putc(&t, s[i]);
			last_lwsp = false;
		}
	}
	if (t.len > 0 && t.d[t.len - 1] == ' ')
		t.len--;
	if (t.err != 0) {
		if (b->err == 0)
			b->err = t.err;
	} else {
		put_string(b, t.d != NULL ? t.d : (const uint8_t *)"", t.len);
	}
	imap_mbuf_release(&t);
}

void imap_mbuf_put_literal(struct imap_mbuf *b, const void *data, size_t n)
{
	const uint8_t *s = data;
	size_t start = 0;

	imap_mbuf_putc(b, '{');
	imap_mbuf_put_u64(b, n);
	imap_mbuf_put(b, "}\r\n", 3);
	if (n == 0)
		return;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '\0')
			continue;
		imap_mbuf_put(b, s + start, i - start);
		imap_mbuf_putc(b, 0x80);
		start = i + 1;
	}
	imap_mbuf_put(b, s + start, n - start);
}

void mbuf_put_unfolded(struct imap_mbuf *b, const uint8_t *s, size_t n)
{
	size_t start = 0;

	if (n == 0)
		return;

	for (size_t i = 0; i <= n; i++) {
		if (i < n && !is_nl(s[i]) && s[i] != '\0')
			continue;
		imap_mbuf_put(b, s + start, i - start);
		if (i < n && s[i] == '\0')
			imap_mbuf_put(b, utf8_replacement, 3);
		start = i + 1;
	}
}

/* ---- arena ---------------------------------------------------------------------- */

struct msg_arena_chunk {
	struct msg_arena_chunk *next;
	size_t size;
	/* max_align_t keeps the data that follows aligned */
	max_align_t data[];
};

#define ARENA_CHUNK 16384u

void *arena_alloc(struct msg_arena *a, size_t n)
{
	struct msg_arena_chunk *c;
	size_t sz;
	void *p;

	n = (n + 15) & ~(size_t)15;
	if (n == 0)
		n = 16;
	if (a->head == NULL || a->size - a->used < n) {
		sz = n > ARENA_CHUNK / 4 ? n : ARENA_CHUNK;
		if (sz > SIZE_MAX - sizeof(*c))
			return NULL;
		c = malloc(sizeof(*c) + sz);
		if (c == NULL)
			return NULL;
		c->size = sz;
		if (sz > ARENA_CHUNK / 4 && a->head != NULL) {
			/* a big block: keep filling the current chunk afterwards */
			c->next = a->head->next;
			a->head->next = c;
			memset(c->data, 0, n);
			return c->data;
		}
		c->next = a->head;
		a->head = c;
		a->size = sz;
		a->used = 0;
	}
	p = (uint8_t *)a->head->data + a->used;
	a->used += n;
	memset(p, 0, n);
	return p;
}

void arena_free(struct msg_arena *a)
{
	struct msg_arena_chunk *c = a->head, *next;

	while (c != NULL) {
		next = c->next;
		explicit_bzero(c->data, c->size);	/* decoded header values, addresses */
		free(c);
		c = next;
	}
	a->head = NULL;
	a->used = a->size = 0;
}

char *arena_strdup_nul(struct msg_arena *a, const uint8_t *s, size_t n)
{
	size_t nuls = 0, j = 0;
	char *d;

	for (size_t i = 0; i < n; i++)
		nuls += s[i] == '\0';
	if (n > SIZE_MAX / 4)
		return NULL;
	d = arena_alloc(a, n + 2 * nuls + 1);
	if (d == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\0') {
			memcpy(d + j, utf8_replacement, 3);
			j += 3;
		} else {
			d[j++] = (char)s[i];
		}
	}
	d[j] = '\0';
	return d;
}

/* ---- small helpers ------------------------------------------------------------- */

uint8_t ascii_lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

bool ascii_ieq(const uint8_t *s, size_t n, const char *lit)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (lit[i] == '\0' || ascii_lower(s[i]) != ascii_lower((uint8_t)lit[i]))
			return false;
	}
	return lit[i] == '\0';
}

const char *param_get(const struct imap_msg_param *params, uint32_t n, const char *name)
{
	for (uint32_t i = 0; i < n; i++) {
		if (ascii_ieq((const uint8_t *)params[i].name, strlen(params[i].name), name))
			return params[i].value;
	}
	return NULL;
}

const char *part_charset(const struct imap_msg_part *p)
{
	return param_get(p->params, p->nparams, "charset");
}
