/* Parsers for IMAP command arguments (see imap-args.h for the contracts). */
#include "imap-args.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ---- */

static int fail(const char **err_out, int code, const char *msg)
{
	if (err_out != NULL)
		*err_out = msg;
	return code;
}

#define BAD(msg) fail(err_out, -EPROTO, (msg))

static uint8_t upc(uint8_t c)
{
	return (c >= 'a' && c <= 'z') ? (uint8_t)(c - 'a' + 'A') : c;
}

/* s[0..len) equals the NUL-terminated uppercase keyword kw, ASCII case-insensitively */
static bool ceq(const char *s, size_t len, const char *kw)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (kw[i] == 0 || upc((uint8_t)s[i]) != (uint8_t)kw[i])
			return false;
	return kw[i] == 0;
}

/* ATOM-CHAR: any CHAR except atom-specials ( ) { SP CTL % * " \ ] */
static bool is_atom_char(uint8_t c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	switch (c) {
	case '(': case ')': case '{': case '%': case '*': case '"': case '\\': case ']':
		return false;
	default:
		return true;
	}
}

static bool is_astring_char(uint8_t c)
{
	return is_atom_char(c) || c == ']';
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static bool all_chars(const char *s, size_t len, bool (*ok)(uint8_t))
{
	for (size_t i = 0; i < len; i++)
		if (!ok((uint8_t)s[i]))
			return false;
	return true;
}

static bool is_atomish(const struct imap_arg *a)
{
	return a->type == IMAP_ARG_ATOM || a->type == IMAP_ARG_NIL;
}

/* ---- imap_buf ---- */

int imap_buf_new(size_t max, struct imap_buf **out)
{
	struct imap_buf *b;

	*out = NULL;
	if (max == 0 || max > SIZE_MAX / 2)
		return -EINVAL;
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return -ENOMEM;
	b->max = max;
	b->cap = max < 256 ? max : 256;
	if ((b->data = malloc(b->cap + 1)) == NULL) {
		free(b);
		return -ENOMEM;
	}
	b->data[0] = 0;
	*out = b;
	return 0;
}

void imap_buf_free(struct imap_buf **b)
{
	if (b == NULL || *b == NULL)
		return;
	free((*b)->data);
	free(*b);
	*b = NULL;
}

void imap_buf_reset(struct imap_buf *b)
{
	b->len = 0;
	b->data[0] = 0;
}

/* make room for len + n bytes (and the NUL) */
static int buf_room(struct imap_buf *b, size_t n)
{
	size_t ncap;
	char *nd;

	if (n > b->max - b->len)
		return -E2BIG;
	if (b->len + n <= b->cap)
		return 0;
	ncap = b->cap;
	while (ncap < b->len + n)
		ncap = ncap > b->max / 2 ? b->max : ncap * 2;
	if ((nd = realloc(b->data, ncap + 1)) == NULL)
		return -ENOMEM;
	b->data = nd;
	b->cap = ncap;
	return 0;
}

int imap_buf_add(struct imap_buf *b, const void *p, size_t n)
{
	int r;

	if ((r = buf_room(b, n)) < 0)
		return r;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = 0;
	return 0;
}

int imap_buf_addstr(struct imap_buf *b, const char *s)
{
	return imap_buf_add(b, s, strlen(s));
}

int imap_buf_printf(struct imap_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(b->data + b->len, b->cap - b->len + 1, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->data[b->len] = 0;
		return -EINVAL;
	}
	if ((size_t)n <= b->cap - b->len) {
		b->len += (size_t)n;
		return 0;
	}
	/* truncated: grow (within max) and format again */
	b->data[b->len] = 0;
	if ((r = buf_room(b, (size_t)n)) < 0)
		return r;
	va_start(ap, fmt);
	n = vsnprintf(b->data + b->len, b->cap - b->len + 1, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n > b->cap - b->len) {
		b->data[b->len] = 0;
		return -EINVAL;
	}
	b->len += (size_t)n;
	return 0;
}

static void buf_rewind(struct imap_buf *b, size_t mark)
{
	b->len = mark;
	b->data[mark] = 0;
}

/* ---- writing strings ---- */

int imap_write_literal(struct imap_buf *b, const void *s, size_t len, bool literal8)
{
	size_t mark = b->len;
	int r;

	if ((r = imap_buf_printf(b, "%s{%zu}\r\n", literal8 ? "~" : "", len)) < 0 ||
	    (r = imap_buf_add(b, s, len)) < 0)
		buf_rewind(b, mark);
	return r;
}

int imap_write_string(struct imap_buf *b, const void *vs, size_t len, unsigned flags)
{
	const uint8_t *s = vs;
	bool quotable = len <= 1024, high = false;
	size_t extra = 0;
	int r;

	if (len > 0 && memchr(s, 0, len) != NULL)
		return -EINVAL;
	for (size_t i = 0; i < len && quotable; i++) {
		if (s[i] < 0x20 || s[i] == 0x7f)
			quotable = false;
		else if (s[i] >= 0x80)
			high = true;
		else if (s[i] == '"' || s[i] == '\\')
			extra++;
	}
	if (high && (!(flags & IMAP_WRITE_UTF8) || !imap_utf8_valid(s, len)))
		quotable = false;
	if (!quotable)
		return imap_write_literal(b, s, len, false);
	if (len + extra + 2 > b->max - b->len)
		return -E2BIG;
	if ((r = buf_room(b, len + extra + 2)) < 0)
		return r;
	b->data[b->len++] = '"';
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			b->data[b->len++] = '\\';
		b->data[b->len++] = (char)s[i];
	}
	b->data[b->len++] = '"';
	b->data[b->len] = 0;
	return 0;
}

static bool is_astring_out_char(uint8_t c)
{
	/* "[" is an ATOM-CHAR, but a reader (ours included) may take it to open a
	 * fetch section: quote it */
	return is_astring_char(c) && c != '[';
}

int imap_write_astring(struct imap_buf *b, const void *s, size_t len, unsigned flags)
{
	/* "NIL" as an atom would read as nil to a client that expects an nstring */
	if (len > 0 && all_chars(s, len, is_astring_out_char) && !ceq(s, len, "NIL"))
		return imap_buf_add(b, s, len);
	return imap_write_string(b, s, len, flags);
}

int imap_write_nstring(struct imap_buf *b, const void *s, size_t len, unsigned flags)
{
	if (s == NULL)
		return imap_buf_add(b, "NIL", 3);
	return imap_write_string(b, s, len, flags);
}

/* ---- argument accessors ---- */

bool imap_arg_atom_eq(const struct imap_arg *a, const char *kw)
{
	size_t n = strlen(kw);

	if (!is_atomish(a) || a->len != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (upc((uint8_t)a->str[i]) != upc((uint8_t)kw[i]))
			return false;
	return true;
}

int imap_arg_astring(const struct imap_arg *a, const char **s, size_t *len,
    const char **err_out)
{
	switch (a->type) {
	case IMAP_ARG_ATOM:
		if (!all_chars(a->str, a->len, is_astring_char))
			return BAD("invalid characters in atom");
		break;
	case IMAP_ARG_NIL:
	case IMAP_ARG_QUOTED:
	case IMAP_ARG_LITERAL:
		break;
	default:
		return BAD("string expected");
	}
	*s = a->str;
	*len = a->len;
	return 0;
}

int imap_arg_string(const struct imap_arg *a, const char **s, size_t *len,
    const char **err_out)
{
	if (a->type != IMAP_ARG_QUOTED && a->type != IMAP_ARG_LITERAL)
		return BAD("quoted string or literal expected");
	*s = a->str;
	*len = a->len;
	return 0;
}

int imap_arg_nstring(const struct imap_arg *a, const char **s, size_t *len,
    const char **err_out)
{
	if (a->type == IMAP_ARG_NIL) {
		*s = NULL;
		*len = 0;
		return 0;
	}
	return imap_arg_string(a, s, len, err_out);
}

static bool is_list_char(uint8_t c)
{
	return is_atom_char(c) || c == '%' || c == '*' || c == ']';
}

int imap_arg_list_mailbox(const struct imap_arg *a, const char **s, size_t *len,
    const char **err_out)
{
	switch (a->type) {
	case IMAP_ARG_ATOM:
		if (!all_chars(a->str, a->len, is_list_char))
			return BAD("invalid characters in mailbox pattern");
		break;
	case IMAP_ARG_NIL:
	case IMAP_ARG_QUOTED:
	case IMAP_ARG_LITERAL:
		break;
	default:
		return BAD("mailbox pattern expected");
	}
	*s = a->str;
	*len = a->len;
	return 0;
}

int imap_parse_number(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0)
		return -EPROTO;
	for (size_t i = 0; i < len; i++) {
		uint64_t d;

		if (!is_digit((uint8_t)s[i]))
			return -EPROTO;
		d = (uint64_t)(s[i] - '0');
		if (v > (max - d) / 10)
			return -EPROTO;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int imap_parse_nz_number(const char *s, size_t len, uint32_t *out)
{
	uint64_t v;

	if (len == 0 || s[0] == '0' || imap_parse_number(s, len, UINT32_MAX, &v) < 0)
		return -EPROTO;
	*out = (uint32_t)v;
	return 0;
}

int imap_arg_number(const struct imap_arg *a, uint64_t max, uint64_t *out,
    const char **err_out)
{
	if (a->type != IMAP_ARG_ATOM || imap_parse_number(a->str, a->len, max, out) < 0)
		return BAD("invalid number");
	return 0;
}

/* mod-sequence-value (1..2^63-1) or, with zero_ok, mod-sequence-valzer */
static int arg_modseq(const struct imap_arg *a, bool zero_ok, uint64_t *out,
    const char **err_out)
{
	if (a->type != IMAP_ARG_ATOM || imap_parse_number(a->str, a->len, IMAP_MODSEQ_MAX,
	    out) < 0 || (!zero_ok && *out == 0))
		return BAD("invalid mod-sequence value");
	return 0;
}

static int arg_nz_number(const struct imap_arg *a, uint32_t *out, const char **err_out)
{
	if (a->type != IMAP_ARG_ATOM || imap_parse_nz_number(a->str, a->len, out) < 0)
		return BAD("invalid number");
	return 0;
}

/* ---- sequence sets ---- */

int imap_seqset_new(struct imap_seqset **out)
{
	*out = calloc(1, sizeof(**out));
	return *out == NULL ? -ENOMEM : 0;
}

void imap_seqset_free(struct imap_seqset **set)
{
	if (set == NULL || *set == NULL)
		return;
	free((*set)->r);
	free(*set);
	*set = NULL;
}

static int seqset_push(struct imap_seqset *set, uint32_t lo, uint32_t hi)
{
	if (set->n == set->cap) {
		size_t ncap = set->cap == 0 ? 4 : set->cap * 2;
		struct imap_seq_range *nr;

		if (ncap > SIZE_MAX / sizeof(*nr))
			return -ENOMEM;
		if ((nr = realloc(set->r, ncap * sizeof(*nr))) == NULL)
			return -ENOMEM;
		set->r = nr;
		set->cap = ncap;
	}
	set->r[set->n].lo = lo;
	set->r[set->n].hi = hi;
	set->n++;
	return 0;
}

int imap_seqset_add(struct imap_seqset *set, uint32_t lo, uint32_t hi)
{
	if (set->saved)
		return -EINVAL;
	set->normalized = false;
	if (lo != IMAP_SEQ_STAR && hi != IMAP_SEQ_STAR && lo > hi) {
		uint32_t t = lo;

		lo = hi;
		hi = t;
	}
	if (set->n > 0 && lo != IMAP_SEQ_STAR && hi != IMAP_SEQ_STAR) {
		struct imap_seq_range *last = &set->r[set->n - 1];

		if (last->lo != IMAP_SEQ_STAR && last->hi != IMAP_SEQ_STAR &&
		    last->lo <= last->hi && (uint64_t)last->hi + 1 == lo) {
			last->hi = hi;
			return 0;
		}
	}
	return seqset_push(set, lo, hi);
}

/* seq-number = nz-number / "*" */
static int seq_number(const char *s, size_t len, size_t *i, uint32_t *out)
{
	size_t start = *i;

	if (*i < len && s[*i] == '*') {
		(*i)++;
		*out = IMAP_SEQ_STAR;
		return 0;
	}
	while (*i < len && is_digit((uint8_t)s[*i]))
		(*i)++;
	return imap_parse_nz_number(s + start, *i - start, out);
}

int imap_seqset_parse(const char *s, size_t len, struct imap_seqset **out,
    const char **err_out)
{
	struct imap_seqset *set = NULL;
	size_t i = 0;
	int r;

	*out = NULL;
	if ((r = imap_seqset_new(&set)) < 0)
		return r;
	if (len == 1 && s[0] == '$') {
		set->saved = true;	/* RFC 5182 seq-last-command */
		*out = set;
		return 0;
	}
	for (;;) {
		uint32_t lo, hi;

		if (seq_number(s, len, &i, &lo) < 0) {
			r = BAD("invalid sequence set");
			goto out;
		}
		hi = lo;
		if (i < len && s[i] == ':') {
			i++;
			if (seq_number(s, len, &i, &hi) < 0) {
				r = BAD("invalid sequence set");
				goto out;
			}
		}
		if ((r = seqset_push(set, lo, hi)) < 0)
			goto out;
		if (i == len)
			break;
		if (s[i] != ',') {
			r = BAD("invalid sequence set");
			goto out;
		}
		i++;
	}
	*out = set;
	set = NULL;
out:
	imap_seqset_free(&set);
	return r;
}

int imap_arg_seqset(const struct imap_arg *a, struct imap_seqset **out, const char **err_out)
{
	*out = NULL;
	if (a->type != IMAP_ARG_ATOM)
		return BAD("sequence set expected");
	return imap_seqset_parse(a->str, a->len, out, err_out);
}

static void range_resolve(const struct imap_seq_range *r, uint32_t star, uint32_t *a,
    uint32_t *b)
{
	uint32_t x = r->lo == IMAP_SEQ_STAR ? star : r->lo;
	uint32_t y = r->hi == IMAP_SEQ_STAR ? star : r->hi;

	if (x > y) {
		uint32_t t = x;

		x = y;
		y = t;
	}
	*a = x;
	*b = y;
}

static int range_cmp(const void *va, const void *vb)
{
	const struct imap_seq_range *a = va, *b = vb;

	if (a->lo != b->lo)
		return a->lo < b->lo ? -1 : 1;
	if (a->hi != b->hi)
		return a->hi < b->hi ? -1 : 1;
	return 0;
}

int imap_seqset_normalize(struct imap_seqset *set, uint32_t star)
{
	size_t w = 0;

	if (set->saved)
		return -EINVAL;
	if (set->normalized)
		return 0;
	for (size_t i = 0; i < set->n; i++) {
		uint32_t a, b;

		range_resolve(&set->r[i], star, &a, &b);
		if (b == 0)
			continue;	/* "*" of an empty mailbox */
		if (a == 0)
			a = 1;
		set->r[w].lo = a;
		set->r[w].hi = b;
		w++;
	}
	set->n = w;
	if (set->n > 1)
		qsort(set->r, set->n, sizeof(set->r[0]), range_cmp);
	w = 0;
	for (size_t i = 0; i < set->n; i++) {
		if (w > 0 && (uint64_t)set->r[i].lo <= (uint64_t)set->r[w - 1].hi + 1) {
			if (set->r[i].hi > set->r[w - 1].hi)
				set->r[w - 1].hi = set->r[i].hi;
			continue;
		}
		set->r[w++] = set->r[i];
	}
	set->n = w;
	set->normalized = true;
	return 0;
}

bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n, uint32_t star)
{
	if (set->saved || n == 0)
		return false;
	if (set->normalized) {
		size_t lo = 0, hi = set->n;

		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;

			if (n < set->r[mid].lo)
				hi = mid;
			else if (n > set->r[mid].hi)
				lo = mid + 1;
			else
				return true;
		}
		return false;
	}
	for (size_t i = 0; i < set->n; i++) {
		uint32_t a, b;

		range_resolve(&set->r[i], star, &a, &b);
		if (n >= a && n <= b)
			return true;
	}
	return false;
}

bool imap_seqset_has_star(const struct imap_seqset *set)
{
	for (size_t i = 0; i < set->n; i++)
		if (set->r[i].lo == IMAP_SEQ_STAR || set->r[i].hi == IMAP_SEQ_STAR)
			return true;
	return false;
}

uint64_t imap_seqset_count(const struct imap_seqset *set)
{
	uint64_t c = 0;

	if (!set->normalized)
		return 0;
	for (size_t i = 0; i < set->n; i++)
		c += (uint64_t)set->r[i].hi - set->r[i].lo + 1;
	return c;
}

void imap_seqset_iter_init(struct imap_seqset_iter *it, const struct imap_seqset *set,
    uint32_t star)
{
	memset(it, 0, sizeof(*it));
	it->set = set;
	it->star = star;
}

bool imap_seqset_iter_next(struct imap_seqset_iter *it, uint32_t *n_out)
{
	for (;;) {
		if (!it->started) {
			uint32_t a, b;

			if (it->set->saved || it->i >= it->set->n)
				return false;
			range_resolve(&it->set->r[it->i], it->star, &a, &b);
			if (b == 0) {
				it->i++;
				continue;
			}
			it->next = a == 0 ? 1 : a;
			it->end = b;
			it->started = true;
		}
		if (it->next <= it->end) {
			*n_out = (uint32_t)it->next++;
			return true;
		}
		it->started = false;
		it->i++;
	}
}

int imap_seqset_format(const struct imap_seqset *set, struct imap_buf *b)
{
	size_t mark = b->len;
	int r = 0;

	if (set->saved)
		return imap_buf_add(b, "$", 1);
	if (set->n == 0)
		return -EINVAL;
	for (size_t i = 0; i < set->n && r == 0; i++) {
		const struct imap_seq_range *x = &set->r[i];

		if (i > 0)
			r = imap_buf_add(b, ",", 1);
		if (r == 0)
			r = x->lo == IMAP_SEQ_STAR ? imap_buf_add(b, "*", 1) :
			    imap_buf_printf(b, "%" PRIu32, x->lo);
		if (r == 0 && x->hi != x->lo)
			r = x->hi == IMAP_SEQ_STAR ? imap_buf_add(b, ":*", 2) :
			    imap_buf_printf(b, ":%" PRIu32, x->hi);
	}
	if (r < 0)
		buf_rewind(b, mark);
	return r;
}

/* ---- dates ---- */

static const char *const month_names[12] = {
	"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"
};
static const char *const month_out[12] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

static int parse_month(const char *s)
{
	for (int m = 0; m < 12; m++)
		if (ceq(s, 3, month_names[m]))
			return m + 1;
	return 0;
}

static bool leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int mdays(int y, int m)
{
	static const int d[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return m == 2 && leap(y) ? 29 : d[m - 1];
}

/* days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm) */
static int64_t days_from_civil(int y, int m, int d)
{
	int64_t yy = y - (m <= 2);
	int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
	int64_t yoe = yy - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int digits(const char *s, size_t n)
{
	int v = 0;

	for (size_t i = 0; i < n; i++) {
		if (!is_digit((uint8_t)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

static void strip_quotes(const char **s, size_t *len)
{
	if (*len >= 2 && (*s)[0] == '"' && (*s)[*len - 1] == '"') {
		(*s)++;
		*len -= 2;
	}
}

/* "Mon-yyyy" at s (8 bytes) */
static int month_year(const char *s, struct imap_date *d)
{
	if ((d->mon = parse_month(s)) == 0 || s[3] != '-' ||
	    (d->year = digits(s + 4, 4)) < 1)
		return -1;
	if (d->day < 1 || d->day > mdays(d->year, d->mon))
		return -1;
	return 0;
}

int imap_date_parse(const char *s, size_t len, struct imap_date *out, const char **err_out)
{
	struct imap_date d;
	size_t dl;

	strip_quotes(&s, &len);
	/* date-day = 1*2DIGIT */
	dl = len >= 1 && is_digit((uint8_t)s[0]) ? (len >= 2 && is_digit((uint8_t)s[1]) ? 2 : 1) :
	    0;
	if (dl == 0 || len != dl + 9 || s[dl] != '-')
		return BAD("invalid date");
	d.day = digits(s, dl);
	if (month_year(s + dl + 1, &d) < 0)
		return BAD("invalid date");
	*out = d;
	return 0;
}

int imap_arg_date(const struct imap_arg *a, struct imap_date *out, const char **err_out)
{
	if (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_QUOTED)
		return BAD("date expected");
	return imap_date_parse(a->str, a->len, out, err_out);
}

time_t imap_date_to_time(const struct imap_date *d)
{
	return (time_t)(days_from_civil(d->year, d->mon, d->day) * 86400);
}

int imap_datetime_parse(const char *s, size_t len, time_t *t_out, int *tz_min_out,
    const char **err_out)
{
	struct imap_date d;
	int hh, mm, ss, zh, zm, sign;
	size_t o;

	strip_quotes(&s, &len);
	/* date-day-fixed = (SP DIGIT) / 2DIGIT; a bare 1-digit day is accepted too */
	if (len >= 2 && s[0] == ' ' && is_digit((uint8_t)s[1])) {
		d.day = s[1] - '0';
		o = 2;
	} else if (len >= 2 && is_digit((uint8_t)s[0]) && is_digit((uint8_t)s[1])) {
		d.day = digits(s, 2);
		o = 2;
	} else if (len >= 1 && is_digit((uint8_t)s[0])) {
		d.day = s[0] - '0';
		o = 1;
	} else {
		return BAD("invalid date-time");
	}
	/* "-Mon-yyyy hh:mm:ss +zzzz" is 24 bytes */
	if (len != o + 24 || s[o] != '-' || month_year(s + o + 1, &d) < 0)
		return BAD("invalid date-time");
	o += 9;
	if (s[o] != ' ' || s[o + 3] != ':' || s[o + 6] != ':' || s[o + 9] != ' ' ||
	    (s[o + 10] != '+' && s[o + 10] != '-'))
		return BAD("invalid date-time");
	hh = digits(s + o + 1, 2);
	mm = digits(s + o + 4, 2);
	ss = digits(s + o + 7, 2);
	zh = digits(s + o + 11, 2);
	zm = digits(s + o + 13, 2);
	if (hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60 || zh < 0 ||
	    zh > 23 || zm < 0 || zm > 59)
		return BAD("invalid date-time");
	sign = s[o + 10] == '-' ? -1 : 1;
	*tz_min_out = sign * (zh * 60 + zm);
	*t_out = (time_t)(days_from_civil(d.year, d.mon, d.day) * 86400 + hh * 3600 +
	    mm * 60 + ss - (int64_t)*tz_min_out * 60);
	return 0;
}

int imap_datetime_format(time_t t, int tz_min, char *out)
{
	int64_t local, days, secs, y;
	int m, d, atz = tz_min < 0 ? -tz_min : tz_min, n;

	if (atz > 23 * 60 + 59)
		return -EINVAL;
	/* years 1..9999 are within +-2^38 seconds: no overflow below */
	if ((int64_t)t < -62135596800LL - 86400 || (int64_t)t > 253402300799LL + 86400)
		return -EINVAL;
	local = (int64_t)t + (int64_t)tz_min * 60;
	days = local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
	secs = local - days * 86400;
	civil_from_days(days, &y, &m, &d);
	if (y < 1 || y > 9999)
		return -EINVAL;
	n = snprintf(out, IMAP_DATETIME_LEN + 1, "%02d-%s-%04d %02d:%02d:%02d %c%02d%02d",
	    d % 100, month_out[(m - 1) % 12], (int)y % 10000, (int)(secs / 3600) % 100,
	    (int)(secs / 60 % 60), (int)(secs % 60), tz_min < 0 ? '-' : '+',
	    (atz / 60) % 100, atz % 60);
	return n == IMAP_DATETIME_LEN ? 0 : -EINVAL;
}

/* ---- flags ---- */

#define IMAP_FLAGS_MAX_KEYWORDS 1024

static const struct { const char *name; unsigned bit; } sysflags[] = {
	{ "\\ANSWERED", IMAP_FLAG_ANSWERED }, { "\\FLAGGED", IMAP_FLAG_FLAGGED },
	{ "\\DELETED", IMAP_FLAG_DELETED }, { "\\SEEN", IMAP_FLAG_SEEN },
	{ "\\DRAFT", IMAP_FLAG_DRAFT },
};

static unsigned sysflag_bit(const char *s, size_t len)
{
	for (size_t i = 0; i < sizeof(sysflags) / sizeof(sysflags[0]); i++)
		if (ceq(s, len, sysflags[i].name))
			return sysflags[i].bit;
	return 0;
}

static bool kw_eq(const char *a, const char *b)
{
	for (;; a++, b++) {
		if (upc((uint8_t)*a) != upc((uint8_t)*b))
			return false;
		if (*a == 0)
			return true;
	}
}

void imap_flags_clear(struct imap_flags *f)
{
	if (f == NULL)
		return;
	free(f->kw);
	memset(f, 0, sizeof(*f));
}

int imap_flags_parse(const struct imap_arg *args, size_t n, struct imap_flags *out,
    const char **err_out)
{
	struct imap_flags f = { 0 };
	int r = 0;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < n; i++) {
		const struct imap_arg *a = &args[i];
		bool dup = false;

		if (!is_atomish(a)) {
			r = BAD("flag expected");
			goto out;
		}
		if (a->len > 0 && a->str[0] == '\\') {
			unsigned bit = sysflag_bit(a->str, a->len);

			if (bit == 0) {
				r = BAD(ceq(a->str, a->len, "\\RECENT") ?
				    "\\Recent cannot be set" : "unknown system flag");
				goto out;
			}
			f.sys |= bit;
			continue;
		}
		/* flag-keyword = atom */
		if (a->len == 0 || !all_chars(a->str, a->len, is_atom_char)) {
			r = BAD("invalid keyword");
			goto out;
		}
		for (size_t k = 0; k < f.nkw && !dup; k++)
			dup = kw_eq(f.kw[k], a->str);
		if (dup)
			continue;
		if (f.nkw == IMAP_FLAGS_MAX_KEYWORDS) {
			r = fail(err_out, -E2BIG, "too many keywords");
			goto out;
		}
		if (f.kw == NULL && (f.kw = calloc(n < IMAP_FLAGS_MAX_KEYWORDS ? n :
		    IMAP_FLAGS_MAX_KEYWORDS, sizeof(*f.kw))) == NULL) {
			r = -ENOMEM;
			goto out;
		}
		f.kw[f.nkw++] = a->str;
	}
	*out = f;
	f.kw = NULL;
out:
	free(f.kw);
	return r;
}

/* ---- STORE ---- */

void imap_store_free(struct imap_store **s)
{
	if (s == NULL || *s == NULL)
		return;
	imap_seqset_free(&(*s)->set);
	imap_flags_clear(&(*s)->flags);
	free(*s);
	*s = NULL;
}

int imap_store_parse(const struct imap_arg *args, size_t nargs, struct imap_store **out,
    const char **err_out)
{
	struct imap_store *st;
	const struct imap_arg *a;
	const char *s;
	size_t len, i = 1;
	int r;

	*out = NULL;
	if (nargs < 3)
		return BAD("STORE needs a sequence set, an item and flags");
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return -ENOMEM;
	if ((r = imap_arg_seqset(&args[0], &st->set, err_out)) < 0)
		goto out;
	if (args[1].type == IMAP_ARG_LIST) {
		/* store-modifiers (RFC 7162 3.1.3) */
		a = &args[1];
		if (a->list_n == 0) {
			r = BAD("empty STORE modifier list");
			goto out;
		}
		for (size_t k = 0; k < a->list_n; k += 2) {
			if (!imap_arg_atom_eq(&a->list[k], "UNCHANGEDSINCE") || k + 1 >= a->list_n ||
			    st->unchangedsince_set) {
				r = BAD("invalid STORE modifier");
				goto out;
			}
			if ((r = arg_modseq(&a->list[k + 1], true, &st->unchangedsince,
			    err_out)) < 0)
				goto out;
			st->unchangedsince_set = true;
		}
		i = 2;
	}
	if (i + 1 >= nargs || args[i].type != IMAP_ARG_ATOM) {
		r = BAD("STORE needs [+|-]FLAGS[.SILENT] and flags");
		goto out;
	}
	s = args[i].str;
	len = args[i].len;
	st->op = IMAP_STORE_REPLACE;
	if (len > 0 && (s[0] == '+' || s[0] == '-')) {
		st->op = s[0] == '+' ? IMAP_STORE_ADD : IMAP_STORE_REMOVE;
		s++;
		len--;
	}
	if (ceq(s, len, "FLAGS.SILENT")) {
		st->silent = true;
	} else if (!ceq(s, len, "FLAGS")) {
		r = BAD("unknown STORE item");
		goto out;
	}
	i++;
	/* flag-list, or flags without parentheses */
	if (args[i].type == IMAP_ARG_LIST) {
		if (i + 1 != nargs) {
			r = BAD("junk after flag list");
			goto out;
		}
		r = imap_flags_parse(args[i].list, args[i].list_n, &st->flags, err_out);
	} else {
		r = imap_flags_parse(&args[i], nargs - i, &st->flags, err_out);
	}
	if (r < 0)
		goto out;
	*out = st;
	st = NULL;
out:
	imap_store_free(&st);
	return r;
}

/* ---- FETCH ---- */

/* Grows *arr (elements of size sz) so that index n fits; capacity doubles up to max.
 * 0 or -ENOMEM. */
static int grow(void **arr, size_t *cap, size_t n, size_t sz, size_t max)
{
	size_t ncap;
	void *na;

	if (n < *cap)
		return 0;
	ncap = *cap == 0 ? 4 : *cap * 2;
	if (ncap > max)
		ncap = max;
	if (ncap <= n || ncap > SIZE_MAX / sz)
		return -ENOMEM;
	if ((na = realloc(*arr, ncap * sz)) == NULL)
		return -ENOMEM;
	*arr = na;
	*cap = ncap;
	return 0;
}

struct cur {
	const char *s;
	size_t len, i;
};

static bool cur_eof(const struct cur *c)
{
	return c->i >= c->len;
}

static int cur_peek(const struct cur *c)
{
	return c->i < c->len ? (uint8_t)c->s[c->i] : -1;
}

static bool cur_char(struct cur *c, char ch)
{
	if (c->i < c->len && c->s[c->i] == ch) {
		c->i++;
		return true;
	}
	return false;
}

/* case-insensitive keyword followed by one of the bytes in `next` (or end if next
 * contains '\0' semantics are not needed here) */
static bool cur_kw(struct cur *c, const char *kw, const char *next)
{
	size_t n = strlen(kw);

	if (c->len - c->i < n + 1 || !ceq(c->s + c->i, n, kw) ||
	    strchr(next, c->s[c->i + n]) == NULL || c->s[c->i + n] == 0)
		return false;
	c->i += n;
	return true;
}

/* 1*DIGIT up to max (no leading zero when nz) */
static int cur_number(struct cur *c, uint64_t max, bool nz, uint64_t *out)
{
	size_t start = c->i;

	while (c->i < c->len && is_digit((uint8_t)c->s[c->i]))
		c->i++;
	if (c->i == start || (nz && c->s[start] == '0'))
		return -1;
	if (imap_parse_number(c->s + start, c->i - start, max, out) < 0)
		return -1;
	return 0;
}

static bool is_field_char(uint8_t c)
{
	/* RFC 5322 ftext: printable US-ASCII except ":" */
	return c >= 33 && c <= 126 && c != ':';
}

/* header-fld-name = astring (atom or quoted; literals cannot occur inside an atom) */
static int cur_field(struct cur *c, char **out)
{
	size_t start = c->i, n = 0;
	char *f;

	*out = NULL;
	if (cur_char(c, '"')) {
		start = c->i;
		for (;;) {
			int ch = cur_peek(c);

			if (ch < 0)
				return -1;
			c->i++;
			if (ch == '"')
				break;
			if (ch == '\\') {
				ch = cur_peek(c);
				if (ch != '"' && ch != '\\')
					return -1;
				c->i++;
			}
			n++;
		}
		if ((f = malloc(n + 1)) == NULL)
			return -ENOMEM;
		n = 0;
		for (size_t k = start; k < c->i - 1; k++) {
			if (c->s[k] == '\\')
				k++;
			f[n++] = c->s[k];
		}
		f[n] = 0;
	} else {
		while (c->i < c->len && is_astring_char((uint8_t)c->s[c->i]))
			c->i++;
		n = c->i - start;
		if ((f = malloc(n + 1)) == NULL)
			return -ENOMEM;
		memcpy(f, c->s + start, n);
		f[n] = 0;
	}
	if (n == 0 || !all_chars(f, n, is_field_char)) {
		free(f);
		return -1;
	}
	*out = f;
	return 0;
}

static void section_clear(struct imap_fetch_section *sec)
{
	for (size_t k = 0; k < sec->nfields; k++)
		free(sec->fields[k]);
	free(sec->fields);
	free(sec->label);
	memset(sec, 0, sizeof(*sec));
}

void imap_fetch_free(struct imap_fetch **f)
{
	if (f == NULL || *f == NULL)
		return;
	for (size_t i = 0; i < (*f)->nsections; i++)
		section_clear(&(*f)->sections[i]);
	free((*f)->sections);
	imap_seqset_free(&(*f)->set);
	free(*f);
	*f = NULL;
}

static int section_label(struct imap_fetch_section *sec)
{
	static const char *const kinds[] = { "BODY[", "BINARY[", "BINARY.SIZE[" };
	static const char *const specs[] = { "", "HEADER", "HEADER.FIELDS",
		"HEADER.FIELDS.NOT", "TEXT", "MIME" };
	struct imap_buf *b = NULL;
	int r;

	if ((r = imap_buf_new(64 * 1024, &b)) < 0)
		return r;
	r = imap_buf_addstr(b, kinds[sec->kind]);
	for (unsigned k = 0; k < sec->nparts && r == 0; k++)
		r = imap_buf_printf(b, "%s%" PRIu32, k ? "." : "", sec->part[k]);
	if (r == 0 && sec->spec != IMAP_SPEC_NONE)
		r = imap_buf_printf(b, "%s%s", sec->nparts ? "." : "", specs[sec->spec]);
	if (r == 0 && sec->nfields > 0) {
		r = imap_buf_add(b, " (", 2);
		for (size_t k = 0; k < sec->nfields && r == 0; k++) {
			if (k > 0)
				r = imap_buf_add(b, " ", 1);
			if (r == 0)
				r = imap_write_astring(b, sec->fields[k], strlen(sec->fields[k]), 0);
		}
		if (r == 0)
			r = imap_buf_add(b, ")", 1);
	}
	if (r == 0)
		r = imap_buf_add(b, "]", 1);
	if (r == 0 && sec->partial)
		r = imap_buf_printf(b, "<%" PRIu64 ">", sec->origin);
	if (r == 0) {
		sec->label = b->data;	/* take the string */
		b->data = NULL;
	}
	free(b->data);
	free(b);
	return r;
}

/* The part of a fetch-att from "[" on: section / section-binary, then partial. */
static int parse_section(struct cur *c, struct imap_fetch_section *sec,
    const char **err_out)
{
	uint64_t v;
	bool need_text = false;
	int r;

	if (!cur_char(c, '['))
		return BAD("invalid section");
	/* section-part = nz-number *("." nz-number) */
	if (cur_peek(c) >= '0' && cur_peek(c) <= '9') {
		for (;;) {
			if (sec->nparts == IMAP_SECTION_MAX_PARTS)
				return fail(err_out, -E2BIG, "section part too deep");
			if (cur_number(c, UINT32_MAX, true, &v) < 0)
				return BAD("invalid section part number");
			sec->part[sec->nparts++] = (uint32_t)v;
			if (!cur_char(c, '.'))
				break;
			if (!(cur_peek(c) >= '0' && cur_peek(c) <= '9')) {
				need_text = true;	/* "1.2.TEXT" */
				break;
			}
		}
	}
	if (sec->kind != IMAP_SECTION_BODY) {
		/* section-binary = "[" [section-part] "]" */
		if (need_text || !cur_char(c, ']'))
			return BAD("invalid binary section");
	} else if (!need_text && cur_char(c, ']')) {
		/* BODY[] or BODY[1.2] */
	} else if (sec->nparts > 0 && !need_text) {
		return BAD("invalid section");
	} else {
		if (cur_kw(c, "HEADER.FIELDS.NOT", " "))
			sec->spec = IMAP_SPEC_HEADER_FIELDS_NOT;
		else if (cur_kw(c, "HEADER.FIELDS", " "))
			sec->spec = IMAP_SPEC_HEADER_FIELDS;
		else if (cur_kw(c, "HEADER", "]"))
			sec->spec = IMAP_SPEC_HEADER;
		else if (cur_kw(c, "TEXT", "]"))
			sec->spec = IMAP_SPEC_TEXT;
		else if (sec->nparts > 0 && cur_kw(c, "MIME", "]"))
			sec->spec = IMAP_SPEC_MIME;
		else
			return BAD("invalid section");
		if (sec->spec == IMAP_SPEC_HEADER_FIELDS || sec->spec == IMAP_SPEC_HEADER_FIELDS_NOT) {
			/* SP header-list = "(" header-fld-name *(SP header-fld-name) ")" */
			if (!cur_char(c, ' ') || !cur_char(c, '('))
				return BAD("header list expected");
			size_t fcap = 0;

			for (;;) {
				char *f;
				void *arr = sec->fields;

				if (sec->nfields == IMAP_SECTION_MAX_FIELDS)
					return fail(err_out, -E2BIG, "too many header fields");
				r = grow(&arr, &fcap, sec->nfields, sizeof(*sec->fields),
				    IMAP_SECTION_MAX_FIELDS);
				sec->fields = arr;
				if (r < 0)
					return r;
				if ((r = cur_field(c, &f)) < 0)
					return r == -ENOMEM ? r : BAD("invalid header field name");
				sec->fields[sec->nfields++] = f;
				if (cur_char(c, ')'))
					break;
				if (!cur_char(c, ' '))
					return BAD("invalid header list");
			}
		}
		if (!cur_char(c, ']'))
			return BAD("invalid section");
	}
	/* partial = "<" number64 "." nz-number64 ">" */
	if (cur_char(c, '<')) {
		if (sec->kind == IMAP_SECTION_BINARY_SIZE)
			return BAD("BINARY.SIZE takes no partial");
		if (cur_number(c, IMAP_MODSEQ_MAX, false, &sec->origin) < 0 || !cur_char(c, '.') ||
		    cur_number(c, IMAP_MODSEQ_MAX, true, &sec->length) < 0 || !cur_char(c, '>'))
			return BAD("invalid partial");
		sec->partial = true;
	}
	if (!cur_eof(c))
		return BAD("junk after section");
	return 0;
}

static const struct { const char *name; uint32_t item; } fetch_simple[] = {
	{ "ENVELOPE", IMAP_FETCH_ENVELOPE }, { "FLAGS", IMAP_FETCH_FLAGS },
	{ "INTERNALDATE", IMAP_FETCH_INTERNALDATE }, { "RFC822.SIZE", IMAP_FETCH_RFC822_SIZE },
	{ "RFC822", IMAP_FETCH_RFC822 }, { "RFC822.HEADER", IMAP_FETCH_RFC822_HEADER },
	{ "RFC822.TEXT", IMAP_FETCH_RFC822_TEXT }, { "BODY", IMAP_FETCH_BODY },
	{ "BODYSTRUCTURE", IMAP_FETCH_BODYSTRUCTURE }, { "UID", IMAP_FETCH_UID },
	{ "MODSEQ", IMAP_FETCH_MODSEQ }, { "EMAILID", IMAP_FETCH_EMAILID },
	{ "THREADID", IMAP_FETCH_THREADID }, { "SAVEDATE", IMAP_FETCH_SAVEDATE },
};

static int fetch_att(struct imap_fetch *f, const struct imap_arg *a, const char **err_out)
{
	struct imap_fetch_section sec;
	const char *br;
	size_t nlen;
	struct cur c;
	int r;

	if (a->type != IMAP_ARG_ATOM)
		return BAD("fetch attribute expected");
	br = memchr(a->str, '[', a->len);
	nlen = br != NULL ? (size_t)(br - a->str) : a->len;
	if (br == NULL) {
		for (size_t k = 0; k < sizeof(fetch_simple) / sizeof(fetch_simple[0]); k++) {
			if (ceq(a->str, nlen, fetch_simple[k].name)) {
				f->items |= fetch_simple[k].item;
				if (fetch_simple[k].item & (IMAP_FETCH_RFC822 | IMAP_FETCH_RFC822_TEXT))
					f->sets_seen = true;
				return 0;
			}
		}
		return BAD("unknown fetch attribute");
	}
	memset(&sec, 0, sizeof(sec));
	if (ceq(a->str, nlen, "BODY")) {
		sec.kind = IMAP_SECTION_BODY;
	} else if (ceq(a->str, nlen, "BODY.PEEK")) {
		sec.kind = IMAP_SECTION_BODY;
		sec.peek = true;
	} else if (ceq(a->str, nlen, "BINARY")) {
		sec.kind = IMAP_SECTION_BINARY;
	} else if (ceq(a->str, nlen, "BINARY.PEEK")) {
		sec.kind = IMAP_SECTION_BINARY;
		sec.peek = true;
	} else if (ceq(a->str, nlen, "BINARY.SIZE")) {
		sec.kind = IMAP_SECTION_BINARY_SIZE;
		sec.peek = true;	/* does not set \Seen */
	} else {
		return BAD("unknown fetch attribute");
	}
	if (f->nsections == IMAP_FETCH_MAX_SECTIONS)
		return fail(err_out, -E2BIG, "too many body sections");
	c.s = a->str;
	c.len = a->len;
	c.i = nlen;
	if ((r = parse_section(&c, &sec, err_out)) < 0) {
		section_clear(&sec);
		return r;
	}
	if ((r = section_label(&sec)) < 0) {
		section_clear(&sec);
		return r == -E2BIG ? fail(err_out, r, "body section too long") : r;
	}
	/* capacity: 4, then doubled whenever nsections reaches a power of two (the
	 * bound, 256, is one too) */
	if (f->nsections == 0 || (f->nsections >= 4 && (f->nsections & (f->nsections - 1)) == 0)) {
		size_t ncap = f->nsections == 0 ? 4 : f->nsections * 2;
		struct imap_fetch_section *ns = realloc(f->sections, ncap * sizeof(*ns));

		if (ns == NULL) {
			section_clear(&sec);
			return -ENOMEM;
		}
		f->sections = ns;
	}
	f->sections[f->nsections++] = sec;
	if (sec.kind == IMAP_SECTION_BINARY_SIZE) {
		f->items |= IMAP_FETCH_BINARY_SIZE;
	} else {
		f->items |= IMAP_FETCH_SECTIONS;
		if (!sec.peek)
			f->sets_seen = true;
	}
	return 0;
}

int imap_fetch_parse(const struct imap_arg *args, size_t nargs, struct imap_fetch **out,
    const char **err_out)
{
	struct imap_fetch *f;
	int r = 0;

	*out = NULL;
	if (nargs < 2 || nargs > 3)
		return BAD("FETCH needs a sequence set and attributes");
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return -ENOMEM;
	if ((r = imap_arg_seqset(&args[0], &f->set, err_out)) < 0)
		goto out;
	/* macros, only on their own (RFC 9051 6.4.5) */
	if (imap_arg_atom_eq(&args[1], "ALL")) {
		f->items = IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE | IMAP_FETCH_RFC822_SIZE |
		    IMAP_FETCH_ENVELOPE;
	} else if (imap_arg_atom_eq(&args[1], "FAST")) {
		f->items = IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE | IMAP_FETCH_RFC822_SIZE;
	} else if (imap_arg_atom_eq(&args[1], "FULL")) {
		f->items = IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE | IMAP_FETCH_RFC822_SIZE |
		    IMAP_FETCH_ENVELOPE | IMAP_FETCH_BODY;
	} else if (args[1].type == IMAP_ARG_LIST) {
		if (args[1].list_n == 0) {
			r = BAD("empty fetch attribute list");
			goto out;
		}
		for (size_t k = 0; k < args[1].list_n; k++)
			if ((r = fetch_att(f, &args[1].list[k], err_out)) < 0)
				goto out;
	} else if ((r = fetch_att(f, &args[1], err_out)) < 0) {
		goto out;
	}
	if (nargs == 3) {
		/* fetch-modifiers (RFC 7162 3.1.4, 3.2.6) */
		const struct imap_arg *m = &args[2];

		if (m->type != IMAP_ARG_LIST || m->list_n == 0) {
			r = BAD("invalid fetch modifiers");
			goto out;
		}
		for (size_t k = 0; k < m->list_n; k++) {
			if (imap_arg_atom_eq(&m->list[k], "CHANGEDSINCE") && k + 1 < m->list_n &&
			    !f->changedsince_set) {
				if ((r = arg_modseq(&m->list[++k], false, &f->changedsince,
				    err_out)) < 0)
					goto out;
				f->changedsince_set = true;
				/* RFC 7162 3.1.4.1: MODSEQ is then returned too */
				f->items |= IMAP_FETCH_MODSEQ;
			} else if (imap_arg_atom_eq(&m->list[k], "VANISHED") && !f->vanished) {
				f->vanished = true;
			} else {
				r = BAD("invalid fetch modifier");
				goto out;
			}
		}
		if (f->vanished && !f->changedsince_set) {
			/* RFC 7162 3.2.6 */
			r = BAD("VANISHED requires CHANGEDSINCE");
			goto out;
		}
	}
	*out = f;
	f = NULL;
out:
	imap_fetch_free(&f);
	return r;
}

/* ---- SEARCH ---- */

#define SK_CHUNK 64

struct sk_chunk {
	struct sk_chunk *next;
	size_t n;
	struct imap_search_key k[SK_CHUNK];
};

struct sp {
	struct imap_search *s;
	const char **err_out;
};

static struct imap_search_key *sk_new(struct sp *sp, enum imap_search_type type, int *r)
{
	struct sk_chunk *c = sp->s->pool_;
	struct imap_search_key *k;

	if (sp->s->nkeys >= IMAP_SEARCH_MAX_KEYS) {
		*r = fail(sp->err_out, -E2BIG, "search program too large");
		return NULL;
	}
	if (c == NULL || c->n == SK_CHUNK) {
		struct sk_chunk *nc = calloc(1, sizeof(*nc));

		if (nc == NULL) {
			*r = -ENOMEM;
			return NULL;
		}
		nc->next = c;
		sp->s->pool_ = c = nc;
	}
	k = &c->k[c->n++];
	k->type = type;
	sp->s->nkeys++;
	return k;
}

void imap_search_free(struct imap_search **s)
{
	struct sk_chunk *c, *next;

	if (s == NULL || *s == NULL)
		return;
	for (c = (*s)->pool_; c != NULL; c = next) {
		next = c->next;
		for (size_t i = 0; i < c->n; i++)
			imap_seqset_free(&c->k[i].set);
		free(c);
	}
	free(*s);
	*s = NULL;
}

enum sk_arg { A_NONE, A_ASTRING, A_DATE, A_NUM64, A_NZNUM, A_SEQSET, A_NOT, A_OR,
	A_HEADER, A_KEYWORD, A_MODSEQ, A_OBJECTID };

static const struct {
	const char *name;
	enum imap_search_type type;
	enum sk_arg arg;
} search_keys[] = {
	{ "ALL", IMAP_SK_ALL, A_NONE }, { "ANSWERED", IMAP_SK_ANSWERED, A_NONE },
	{ "BCC", IMAP_SK_BCC, A_ASTRING }, { "BEFORE", IMAP_SK_BEFORE, A_DATE },
	{ "BODY", IMAP_SK_BODY, A_ASTRING }, { "CC", IMAP_SK_CC, A_ASTRING },
	{ "DELETED", IMAP_SK_DELETED, A_NONE }, { "DRAFT", IMAP_SK_DRAFT, A_NONE },
	{ "FLAGGED", IMAP_SK_FLAGGED, A_NONE }, { "FROM", IMAP_SK_FROM, A_ASTRING },
	{ "HEADER", IMAP_SK_HEADER, A_HEADER }, { "KEYWORD", IMAP_SK_KEYWORD, A_KEYWORD },
	{ "LARGER", IMAP_SK_LARGER, A_NUM64 }, { "NEW", IMAP_SK_NEW, A_NONE },
	{ "NOT", IMAP_SK_NOT, A_NOT }, { "OLD", IMAP_SK_OLD, A_NONE },
	{ "ON", IMAP_SK_ON, A_DATE }, { "OR", IMAP_SK_OR, A_OR },
	{ "RECENT", IMAP_SK_RECENT, A_NONE }, { "SEEN", IMAP_SK_SEEN, A_NONE },
	{ "SENTBEFORE", IMAP_SK_SENTBEFORE, A_DATE }, { "SENTON", IMAP_SK_SENTON, A_DATE },
	{ "SENTSINCE", IMAP_SK_SENTSINCE, A_DATE }, { "SINCE", IMAP_SK_SINCE, A_DATE },
	{ "SMALLER", IMAP_SK_SMALLER, A_NUM64 }, { "SUBJECT", IMAP_SK_SUBJECT, A_ASTRING },
	{ "TEXT", IMAP_SK_TEXT, A_ASTRING }, { "TO", IMAP_SK_TO, A_ASTRING },
	{ "UID", IMAP_SK_UID, A_SEQSET }, { "UNANSWERED", IMAP_SK_UNANSWERED, A_NONE },
	{ "UNDELETED", IMAP_SK_UNDELETED, A_NONE }, { "UNDRAFT", IMAP_SK_UNDRAFT, A_NONE },
	{ "UNFLAGGED", IMAP_SK_UNFLAGGED, A_NONE },
	{ "UNKEYWORD", IMAP_SK_UNKEYWORD, A_KEYWORD }, { "UNSEEN", IMAP_SK_UNSEEN, A_NONE },
	{ "MODSEQ", IMAP_SK_MODSEQ, A_MODSEQ },
	{ "SAVEDBEFORE", IMAP_SK_SAVEDBEFORE, A_DATE }, { "SAVEDON", IMAP_SK_SAVEDON, A_DATE },
	{ "SAVEDSINCE", IMAP_SK_SAVEDSINCE, A_DATE },
	{ "SAVEDATESUPPORTED", IMAP_SK_SAVEDATESUPPORTED, A_NONE },
	{ "EMAILID", IMAP_SK_EMAILID, A_OBJECTID }, { "THREADID", IMAP_SK_THREADID, A_OBJECTID },
	{ "OLDER", IMAP_SK_OLDER, A_NZNUM }, { "YOUNGER", IMAP_SK_YOUNGER, A_NZNUM },
};

static bool is_objectid_char(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '_' ||
	    c == '-';
}

static int parse_key_list(struct sp *sp, const struct imap_arg *args, size_t n, int depth,
    struct imap_search_key *parent);

/* search-key at args[*i]; recursion depth bounded by IMAP_SEARCH_MAX_DEPTH */
static int parse_key(struct sp *sp, const struct imap_arg *args, size_t n, size_t *i,
    int depth, struct imap_search_key **out)
{
	const char **err_out = sp->err_out;
	const struct imap_arg *a = &args[(*i)++];
	struct imap_search_key *k;
	enum sk_arg kind = A_NONE;
	enum imap_search_type type = IMAP_SK_ALL;
	bool found = false;
	int r = 0;

	if (depth > IMAP_SEARCH_MAX_DEPTH)
		return fail(err_out, -E2BIG, "search program nested too deep");
	if (a->type == IMAP_ARG_LIST) {
		if (a->list_n == 0)
			return BAD("empty search key list");
		if ((k = sk_new(sp, IMAP_SK_AND, &r)) == NULL)
			return r;
		*out = k;
		return parse_key_list(sp, a->list, a->list_n, depth + 1, k);
	}
	if (a->type != IMAP_ARG_ATOM)
		return BAD("search key expected");
	if (a->len > 0 && (is_digit((uint8_t)a->str[0]) || a->str[0] == '*' ||
	    a->str[0] == '$')) {
		if ((k = sk_new(sp, IMAP_SK_SEQSET, &r)) == NULL)
			return r;
		if ((r = imap_seqset_parse(a->str, a->len, &k->set, err_out)) < 0)
			return r;
		if (k->set->saved)
			sp->s->uses_saved = true;
		*out = k;
		return 0;
	}
	for (size_t t = 0; t < sizeof(search_keys) / sizeof(search_keys[0]); t++) {
		if (ceq(a->str, a->len, search_keys[t].name)) {
			kind = search_keys[t].arg;
			type = search_keys[t].type;
			found = true;
			break;
		}
	}
	if (!found)
		return BAD("unknown search key");
	if ((k = sk_new(sp, type, &r)) == NULL)
		return r;
	*out = k;
	if (kind == A_NONE)
		return 0;
	if (*i >= n)
		return BAD("missing search key argument");
	a = &args[*i];
	switch (kind) {
	case A_ASTRING:
		r = imap_arg_astring(a, &k->str, &k->len, err_out);
		(*i)++;
		break;
	case A_DATE:
		if ((r = imap_arg_date(a, &k->date, err_out)) == 0)
			k->day = imap_date_to_time(&k->date);
		(*i)++;
		break;
	case A_NUM64:
		r = imap_arg_number(a, IMAP_MODSEQ_MAX, &k->num, err_out);
		(*i)++;
		break;
	case A_NZNUM: {
		uint32_t v;

		if ((r = arg_nz_number(a, &v, err_out)) == 0)
			k->num = v;
		(*i)++;
		break;
	}
	case A_SEQSET:
		if ((r = imap_arg_seqset(a, &k->set, err_out)) == 0 && k->set->saved)
			sp->s->uses_saved = true;
		(*i)++;
		break;
	case A_KEYWORD:
		/* flag-keyword = atom */
		if (!is_atomish(a) || a->len == 0 || !all_chars(a->str, a->len, is_atom_char))
			return BAD("invalid keyword");
		k->str = a->str;
		k->len = a->len;
		(*i)++;
		break;
	case A_OBJECTID:
		/* objectid = 1*255(ALPHA / DIGIT / "_" / "-") (RFC 8474) */
		if ((r = imap_arg_astring(a, &k->str, &k->len, err_out)) == 0 &&
		    (k->len == 0 || k->len > 255 || !all_chars(k->str, k->len, is_objectid_char)))
			r = BAD("invalid object id");
		(*i)++;
		break;
	case A_HEADER:
		if ((r = imap_arg_astring(a, &k->field, &k->field_len, err_out)) < 0)
			return r;
		(*i)++;
		if (*i >= n)
			return BAD("missing HEADER value");
		r = imap_arg_astring(&args[*i], &k->str, &k->len, err_out);
		(*i)++;
		break;
	case A_MODSEQ:
		/* "MODSEQ" [SP entry-name SP entry-type-req] SP mod-sequence-valzer */
		sp->s->uses_modseq = true;
		if (a->type == IMAP_ARG_QUOTED || a->type == IMAP_ARG_LITERAL) {
			const char *e = a->str;
			size_t el = a->len;

			/* entry-flag-name = DQUOTE "/flags/" attr-flag DQUOTE */
			if (el < 8 || memcmp(e, "/flags/", 7) != 0 ||
			    (e[7] == '\\' ? sysflag_bit(e + 7, el - 7) == 0 :
			     !all_chars(e + 7, el - 7, is_atom_char)))
				return BAD("invalid MODSEQ entry name");
			k->entry = e;
			(*i)++;
			if (*i >= n)
				return BAD("missing MODSEQ entry type");
			a = &args[*i];
			if (imap_arg_atom_eq(a, "priv"))
				k->entry_type = IMAP_MODSEQ_ENTRY_PRIV;
			else if (imap_arg_atom_eq(a, "shared"))
				k->entry_type = IMAP_MODSEQ_ENTRY_SHARED;
			else if (imap_arg_atom_eq(a, "all"))
				k->entry_type = IMAP_MODSEQ_ENTRY_ALL;
			else
				return BAD("invalid MODSEQ entry type");
			(*i)++;
			if (*i >= n)
				return BAD("missing MODSEQ value");
			a = &args[*i];
		}
		r = arg_modseq(a, true, &k->num, err_out);
		(*i)++;
		break;
	case A_NOT:
		r = parse_key(sp, args, n, i, depth + 1, &k->child);
		break;
	case A_OR:
		if ((r = parse_key(sp, args, n, i, depth + 1, &k->child)) < 0)
			return r;
		if (*i >= n)
			return BAD("OR needs two search keys");
		r = parse_key(sp, args, n, i, depth + 1, &k->child->next);
		break;
	case A_NONE:
	default:
		break;
	}
	return r;
}

/* all of args[0..n) as keys: parent's children */
static int parse_key_list(struct sp *sp, const struct imap_arg *args, size_t n, int depth,
    struct imap_search_key *parent)
{
	struct imap_search_key **tail = &parent->child;
	size_t i = 0;
	int r;

	while (i < n) {
		struct imap_search_key *k = NULL;

		if ((r = parse_key(sp, args, n, &i, depth, &k)) < 0)
			return r;
		*tail = k;
		tail = &k->next;
	}
	return 0;
}

int imap_search_parse(const struct imap_arg *args, size_t nargs, struct imap_search **out,
    const char **err_out)
{
	struct imap_search *s;
	struct sp sp;
	size_t i = 0;
	int r = 0;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	sp.s = s;
	sp.err_out = err_out;
	/* search-return-opts (RFC 4731) */
	if (nargs >= 2 && imap_arg_atom_eq(&args[0], "RETURN") && args[1].type == IMAP_ARG_LIST) {
		const struct imap_arg *l = &args[1];

		s->return_given = true;
		for (size_t k = 0; k < l->list_n; k++) {
			if (imap_arg_atom_eq(&l->list[k], "MIN"))
				s->return_opts |= IMAP_SEARCH_RET_MIN;
			else if (imap_arg_atom_eq(&l->list[k], "MAX"))
				s->return_opts |= IMAP_SEARCH_RET_MAX;
			else if (imap_arg_atom_eq(&l->list[k], "ALL"))
				s->return_opts |= IMAP_SEARCH_RET_ALL;
			else if (imap_arg_atom_eq(&l->list[k], "COUNT"))
				s->return_opts |= IMAP_SEARCH_RET_COUNT;
			else if (imap_arg_atom_eq(&l->list[k], "SAVE"))
				s->return_opts |= IMAP_SEARCH_RET_SAVE;
			else {
				r = BAD("unknown search return option");
				goto out;
			}
		}
		if (l->list_n == 0)
			s->return_opts = IMAP_SEARCH_RET_ALL;	/* RFC 4731 section 3.1 */
		i = 2;
	}
	if (i + 1 < nargs && imap_arg_atom_eq(&args[i], "CHARSET")) {
		const char *cs;
		size_t cl;

		if ((r = imap_arg_astring(&args[i + 1], &cs, &cl, err_out)) < 0)
			goto out;
		if (ceq(cs, cl, "UTF-8")) {
			s->charset = IMAP_CHARSET_UTF8;
		} else if (ceq(cs, cl, "US-ASCII")) {
			s->charset = IMAP_CHARSET_US_ASCII;
		} else {
			r = fail(err_out, IMAP_ERR_BADCHARSET, "unsupported charset");
			goto out;
		}
		i += 2;
	}
	if (i >= nargs) {
		r = BAD("missing search keys");
		goto out;
	}
	if ((s->root = sk_new(&sp, IMAP_SK_AND, &r)) == NULL)
		goto out;
	if ((r = parse_key_list(&sp, args + i, nargs - i, 1, s->root)) < 0)
		goto out;
	*out = s;
	s = NULL;
out:
	imap_search_free(&s);
	return r;
}

/* ---- STATUS ---- */

static const struct { const char *name; unsigned bit; } status_items[] = {
	{ "MESSAGES", IMAP_STATUS_MESSAGES }, { "UIDNEXT", IMAP_STATUS_UIDNEXT },
	{ "UIDVALIDITY", IMAP_STATUS_UIDVALIDITY }, { "UNSEEN", IMAP_STATUS_UNSEEN },
	{ "DELETED", IMAP_STATUS_DELETED }, { "SIZE", IMAP_STATUS_SIZE },
	{ "RECENT", IMAP_STATUS_RECENT }, { "HIGHESTMODSEQ", IMAP_STATUS_HIGHESTMODSEQ },
	{ "APPENDLIMIT", IMAP_STATUS_APPENDLIMIT }, { "MAILBOXID", IMAP_STATUS_MAILBOXID },
};

int imap_status_items_parse(const struct imap_arg *list, unsigned *items_out,
    const char **err_out)
{
	unsigned items = 0;

	if (list->type != IMAP_ARG_LIST || list->list_n == 0)
		return BAD("status item list expected");
	for (size_t k = 0; k < list->list_n; k++) {
		unsigned bit = 0;

		for (size_t t = 0; t < sizeof(status_items) / sizeof(status_items[0]); t++)
			if (imap_arg_atom_eq(&list->list[k], status_items[t].name))
				bit = status_items[t].bit;
		if (bit == 0)
			return BAD("unknown status item");
		items |= bit;
	}
	*items_out = items;
	return 0;
}

/* ---- LIST ---- */

void imap_list_args_free(struct imap_list_args **l)
{
	if (l == NULL || *l == NULL)
		return;
	free((*l)->patterns);
	free(*l);
	*l = NULL;
}

static int list_pattern_add(struct imap_list_args *l, const struct imap_arg *a,
    const char **err_out)
{
	int r;

	if (l->npatterns == IMAP_LIST_MAX_PATTERNS)
		return fail(err_out, -E2BIG, "too many LIST patterns");
	if (l->patterns == NULL &&
	    (l->patterns = calloc(IMAP_LIST_MAX_PATTERNS, sizeof(*l->patterns))) == NULL)
		return -ENOMEM;	/* 64 x 16 bytes: not worth growing */
	if ((r = imap_arg_list_mailbox(a, &l->patterns[l->npatterns].s,
	    &l->patterns[l->npatterns].len, err_out)) < 0)
		return r;
	l->npatterns++;
	return 0;
}

int imap_list_parse(const struct imap_arg *args, size_t nargs, struct imap_list_args **out,
    const char **err_out)
{
	struct imap_list_args *l;
	size_t i = 0;
	int r = 0;

	*out = NULL;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return -ENOMEM;
	if (nargs > 0 && args[0].type == IMAP_ARG_LIST) {
		/* list-select-opts (RFC 5258 section 3, RFC 6154 section 5) */
		const struct imap_arg *o = &args[0];

		l->extended = true;
		for (size_t k = 0; k < o->list_n; k++) {
			if (imap_arg_atom_eq(&o->list[k], "SUBSCRIBED"))
				l->select |= IMAP_LIST_SEL_SUBSCRIBED;
			else if (imap_arg_atom_eq(&o->list[k], "REMOTE"))
				l->select |= IMAP_LIST_SEL_REMOTE;
			else if (imap_arg_atom_eq(&o->list[k], "RECURSIVEMATCH"))
				l->select |= IMAP_LIST_SEL_RECURSIVEMATCH;
			else if (imap_arg_atom_eq(&o->list[k], "SPECIAL-USE"))
				l->select |= IMAP_LIST_SEL_SPECIAL_USE;
			else {
				r = BAD("unknown LIST selection option");
				goto out;
			}
		}
		/* RECURSIVEMATCH modifies a base option; alone (or with REMOTE) it is an
		 * error (RFC 5258 section 3) */
		if ((l->select & IMAP_LIST_SEL_RECURSIVEMATCH) &&
		    !(l->select & (IMAP_LIST_SEL_SUBSCRIBED | IMAP_LIST_SEL_SPECIAL_USE))) {
			r = BAD("RECURSIVEMATCH needs another selection option");
			goto out;
		}
		i = 1;
	}
	if (nargs - i < 2) {
		r = BAD("LIST needs a reference and a mailbox pattern");
		goto out;
	}
	if ((r = imap_arg_astring(&args[i], &l->ref, &l->ref_len, err_out)) < 0)
		goto out;
	i++;
	if (args[i].type == IMAP_ARG_LIST) {
		l->extended = true;
		if (args[i].list_n == 0) {
			r = BAD("empty LIST pattern list");
			goto out;
		}
		for (size_t k = 0; k < args[i].list_n; k++)
			if ((r = list_pattern_add(l, &args[i].list[k], err_out)) < 0)
				goto out;
	} else if ((r = list_pattern_add(l, &args[i], err_out)) < 0) {
		goto out;
	}
	i++;
	if (i < nargs) {
		const struct imap_arg *o;

		/* list-return-opts = "RETURN" SP "(" [return-option *(SP ...)] ")" */
		if (i + 2 != nargs || !imap_arg_atom_eq(&args[i], "RETURN") ||
		    args[i + 1].type != IMAP_ARG_LIST) {
			r = BAD("invalid LIST return options");
			goto out;
		}
		l->extended = true;
		o = &args[i + 1];
		for (size_t k = 0; k < o->list_n; k++) {
			if (imap_arg_atom_eq(&o->list[k], "SUBSCRIBED")) {
				l->ret |= IMAP_LIST_RET_SUBSCRIBED;
			} else if (imap_arg_atom_eq(&o->list[k], "CHILDREN")) {
				l->ret |= IMAP_LIST_RET_CHILDREN;
			} else if (imap_arg_atom_eq(&o->list[k], "SPECIAL-USE")) {
				l->ret |= IMAP_LIST_RET_SPECIAL_USE;
			} else if (imap_arg_atom_eq(&o->list[k], "STATUS") && k + 1 < o->list_n &&
			    !(l->ret & IMAP_LIST_RET_STATUS)) {
				/* RFC 5819 */
				if ((r = imap_status_items_parse(&o->list[++k], &l->status_items,
				    err_out)) < 0)
					goto out;
				l->ret |= IMAP_LIST_RET_STATUS;
			} else {
				r = BAD("unknown LIST return option");
				goto out;
			}
		}
	}
	*out = l;
	l = NULL;
out:
	imap_list_args_free(&l);
	return r;
}

#define LM_WORDS ((IMAP_LIST_PATTERN_MAX + 1 + 63) / 64)

/* epsilon closure: a wildcard may match nothing */
static void lm_closure(uint64_t *set, const char *pat, size_t plen)
{
	for (size_t k = 0; k < plen; k++)
		if ((set[k / 64] >> (k % 64) & 1) && (pat[k] == '*' || pat[k] == '%'))
			set[(k + 1) / 64] |= (uint64_t)1 << ((k + 1) % 64);
}

int imap_list_match(const char *pattern, size_t plen, const char *name, size_t nlen,
    char delim)
{
	uint64_t cur[LM_WORDS], nxt[LM_WORDS];
	size_t words = (plen + 1 + 63) / 64;
	bool inbox = nlen >= 5 && ceq(name, 5, "INBOX") && (nlen == 5 ||
	    (delim != 0 && name[5] == delim));

	if (plen > IMAP_LIST_PATTERN_MAX)
		return -E2BIG;
	memset(cur, 0, words * sizeof(cur[0]));
	cur[0] = 1;
	lm_closure(cur, pattern, plen);
	for (size_t j = 0; j < nlen; j++) {
		uint8_t c = (uint8_t)name[j];
		bool any = false;

		memset(nxt, 0, words * sizeof(nxt[0]));
		for (size_t w = 0; w < words; w++) {
			uint64_t bits = cur[w];

			while (bits != 0) {
				size_t k = w * 64 + (size_t)__builtin_ctzll(bits);
				uint8_t pc;

				bits &= bits - 1;
				if (k >= plen)
					continue;
				pc = (uint8_t)pattern[k];
				if (pc == '*' || (pc == '%' && (delim == 0 || c != (uint8_t)delim))) {
					nxt[k / 64] |= (uint64_t)1 << (k % 64);
					any = true;
				} else if (pc != '%' && (pc == c || (inbox && j < 5 && upc(pc) == upc(c)))) {
					nxt[(k + 1) / 64] |= (uint64_t)1 << ((k + 1) % 64);
					any = true;
				}
			}
		}
		if (!any)
			return 0;
		lm_closure(nxt, pattern, plen);
		memcpy(cur, nxt, words * sizeof(cur[0]));
	}
	return (cur[plen / 64] >> (plen % 64)) & 1 ? 1 : 0;
}

/* ---- SELECT / EXAMINE parameters ---- */

void imap_select_params_free(struct imap_select_params **s)
{
	if (s == NULL || *s == NULL)
		return;
	imap_seqset_free(&(*s)->known_uids);
	imap_seqset_free(&(*s)->match_seqs);
	imap_seqset_free(&(*s)->match_uids);
	free(*s);
	*s = NULL;
}

/* a sequence-set without "*" and "$" (known-uids, seq-match-data) */
static int known_set(const struct imap_arg *a, struct imap_seqset **out, const char **err_out)
{
	int r;

	if ((r = imap_arg_seqset(a, out, err_out)) < 0)
		return r;
	if ((*out)->saved || imap_seqset_has_star(*out)) {
		imap_seqset_free(out);
		return BAD("\"*\" and \"$\" are not allowed here");
	}
	return 0;
}

int imap_select_params_parse(const struct imap_arg *args, size_t nargs,
    struct imap_select_params **out, const char **err_out)
{
	struct imap_select_params *sp;
	int r = 0;

	*out = NULL;
	if ((sp = calloc(1, sizeof(*sp))) == NULL)
		return -ENOMEM;
	if (nargs == 0)
		goto done;
	if (nargs != 1 || args[0].type != IMAP_ARG_LIST || args[0].list_n == 0) {
		r = BAD("invalid SELECT parameters");
		goto out;
	}
	for (size_t k = 0; k < args[0].list_n; k++) {
		const struct imap_arg *p = &args[0].list[k];

		if (imap_arg_atom_eq(p, "CONDSTORE") && !sp->condstore) {
			sp->condstore = true;
		} else if (imap_arg_atom_eq(p, "QRESYNC") && !sp->qresync &&
		    k + 1 < args[0].list_n && args[0].list[k + 1].type == IMAP_ARG_LIST) {
			/* "(" uidvalidity SP mod-sequence-value [SP known-uids]
			 *     [SP seq-match-data] ")" (RFC 7162 3.2.5) */
			const struct imap_arg *q = &args[0].list[++k];
			size_t j = 2;

			sp->qresync = true;
			if (q->list_n < 2 || q->list_n > 4 ||
			    (r = arg_nz_number(&q->list[0], &sp->uidvalidity, err_out)) < 0 ||
			    (r = arg_modseq(&q->list[1], false, &sp->modseq, err_out)) < 0) {
				r = BAD("invalid QRESYNC parameters");
				goto out;
			}
			if (j < q->list_n && q->list[j].type == IMAP_ARG_ATOM) {
				if ((r = known_set(&q->list[j], &sp->known_uids, err_out)) < 0)
					goto out;
				j++;
			}
			if (j < q->list_n && q->list[j].type == IMAP_ARG_LIST) {
				const struct imap_arg *m = &q->list[j];

				if (m->list_n != 2 ||
				    (r = known_set(&m->list[0], &sp->match_seqs, err_out)) < 0 ||
				    (r = known_set(&m->list[1], &sp->match_uids, err_out)) < 0) {
					r = BAD("invalid QRESYNC sequence match data");
					goto out;
				}
				j++;
			}
			if (j != q->list_n) {
				r = BAD("invalid QRESYNC parameters");
				goto out;
			}
		} else {
			r = BAD("unknown SELECT parameter");
			goto out;
		}
	}
done:
	*out = sp;
	sp = NULL;
out:
	imap_select_params_free(&sp);
	return r;
}

/* ---- APPEND ---- */

void imap_append_free(struct imap_append **a)
{
	if (a == NULL || *a == NULL)
		return;
	for (size_t i = 0; i < (*a)->nmsgs; i++)
		imap_flags_clear(&(*a)->msgs[i].flags);
	free((*a)->msgs);
	free(*a);
	*a = NULL;
}

int imap_append_parse(const struct imap_arg *args, size_t nargs, struct imap_append **out,
    const char **err_out)
{
	struct imap_append *ap;
	const char *s;
	size_t len, i = 1, cap = 0;
	int r = 0;

	*out = NULL;
	if (nargs < 2)
		return BAD("APPEND needs a mailbox and a message");
	if ((r = imap_arg_astring(&args[0], &s, &len, err_out)) < 0)
		return r;
	if ((ap = calloc(1, sizeof(*ap))) == NULL)
		return -ENOMEM;
	ap->mailbox = &args[0];
	while (i < nargs) {
		struct imap_append_msg m;

		memset(&m, 0, sizeof(m));
		if (ap->nmsgs == IMAP_APPEND_MAX_MSGS) {
			r = fail(err_out, -E2BIG, "too many messages in APPEND");
			goto out;
		}
		if (ap->nmsgs == cap) {
			size_t ncap = cap == 0 ? 4 : cap * 2;
			struct imap_append_msg *nm;

			if ((nm = realloc(ap->msgs, ncap * sizeof(*nm))) == NULL) {
				r = -ENOMEM;
				goto out;
			}
			ap->msgs = nm;
			cap = ncap;
		}
		if (args[i].type == IMAP_ARG_LIST) {
			if ((r = imap_flags_parse(args[i].list, args[i].list_n, &m.flags,
			    err_out)) < 0)
				goto out;
			i++;
		}
		/* append-msg is stored before further checks so m.flags is freed */
		ap->msgs[ap->nmsgs++] = m;
		if (i < nargs && args[i].type == IMAP_ARG_QUOTED) {
			struct imap_append_msg *pm = &ap->msgs[ap->nmsgs - 1];

			if ((r = imap_datetime_parse(args[i].str, args[i].len, &pm->date,
			    &pm->tz_min, err_out)) < 0)
				goto out;
			pm->has_date = true;
			i++;
		}
		if (i >= nargs || (args[i].type != IMAP_ARG_LITERAL &&
		    args[i].type != IMAP_ARG_LITERAL8)) {
			r = BAD("APPEND message literal expected");
			goto out;
		}
		ap->msgs[ap->nmsgs - 1].data = args[i].str;
		ap->msgs[ap->nmsgs - 1].len = args[i].len;
		ap->msgs[ap->nmsgs - 1].binary = args[i].type == IMAP_ARG_LITERAL8;
		i++;
	}
	*out = ap;
	ap = NULL;
out:
	imap_append_free(&ap);
	return r;
}

/* ---- mailbox names ---- */

int imap_mailbox_decode(const char *s, size_t len, bool utf8, char **name_out,
    const char **err_out)
{
	struct imap_buf *b = NULL;
	int r;

	*name_out = NULL;
	if (memchr(s, 0, len) != NULL || memchr(s, '\r', len) != NULL ||
	    memchr(s, '\n', len) != NULL)
		return BAD("invalid character in mailbox name");
	if ((r = imap_buf_new(IMAP_MAILBOX_NAME_MAX, &b)) < 0)
		return r;
	if (utf8) {
		/* RFC 6855 section 3: names are UTF-8, no modified UTF-7 decoding */
		if (!imap_utf8_valid(s, len))
			r = BAD("mailbox name is not valid UTF-8");
		else
			r = imap_buf_add(b, s, len);
	} else {
		r = imap_mutf7_to_utf8(s, len, b, err_out);
	}
	if (r == -E2BIG)
		r = fail(err_out, -E2BIG, "mailbox name too long");
	if (r < 0)
		goto out;
	/* RFC 9051 5.1: INBOX is case-insensitive */
	if (ceq(b->data, b->len, "INBOX"))
		memcpy(b->data, "INBOX", 5);
	*name_out = b->data;
	b->data = NULL;
out:
	if (b != NULL)
		free(b->data);
	free(b);
	return r;
}

int imap_arg_mailbox(const struct imap_arg *a, bool utf8, char **name_out,
    const char **err_out)
{
	const char *s;
	size_t len;
	int r;

	*name_out = NULL;
	if ((r = imap_arg_astring(a, &s, &len, err_out)) < 0)
		return r;
	return imap_mailbox_decode(s, len, utf8, name_out, err_out);
}

int imap_write_mailbox(struct imap_buf *b, const char *name, size_t len, bool utf8)
{
	struct imap_buf *t = NULL;
	int r;

	if (utf8)
		return imap_write_string(b, name, len, IMAP_WRITE_UTF8);
	if ((r = imap_buf_new(b->max, &t)) < 0)
		return r;
	if ((r = imap_utf8_to_mutf7(name, len, t, NULL)) == 0)
		r = imap_write_string(b, t->data, t->len, 0);
	if (r == -EPROTO)
		r = -EINVAL;
	imap_buf_free(&t);
	return r;
}
