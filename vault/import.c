/* import.c: the parsers behind `sealmail-vault import` (see import.h). No I/O. */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "import.h"
#include "mutf7.h"

/* ---- UTF-8 -------------------------------------------------------------------------- */

bool import_utf8_valid(const uint8_t *p, size_t n)
{
	return mutf7_utf8_valid(p, n);
}

/* ---- Modified UTF-7 (RFC 3501 5.1.3): vault/mutf7.c ---------------------------------- */
struct fixed_out {
	char *p;
	size_t cap, o;
};

static int put_fixed(void *arg, const void *p, size_t n)
{
	struct fixed_out *f = arg;

	if (f->o + n >= f->cap)		/* room for the NUL */
		return -E2BIG;
	memcpy(f->p + f->o, p, n);
	f->o += n;
	return 0;
}

int import_mutf7_to_utf8(const char *in, size_t len, char *out, size_t cap)
{
	struct fixed_out f = { out, cap, 0 };
	int r;

	if (cap == 0)
		return -E2BIG;
	/* Folder names on disk: back-to-back runs are tolerated (other encoders made
	 * them), no encoded character below U+0080 at all. */
	if ((r = mutf7_decode(in, len, MUTF7_ADJACENT_RUNS | MUTF7_NO_ASCII, put_fixed, &f,
	    NULL)) < 0)
		return r;
	out[f.o] = '\0';
	return 0;
}

int import_name_decode(const char *in, size_t len, char *out, size_t cap)
{
	bool eight = false;

	for (size_t i = 0; i < len; i++)
		if ((unsigned char)in[i] >= 0x80)
			eight = true;
	if (!eight)
		return import_mutf7_to_utf8(in, len, out, cap);
	/* Dovecot's UTF-8 mailbox_list option stores names in UTF-8. */
	if (memchr(in, '&', len) != NULL || !import_utf8_valid((const uint8_t *)in, len))
		return -EPROTO;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)in[i] < 0x20 || in[i] == 0x7f)
			return -EPROTO;
	if (len >= cap)
		return -E2BIG;
	memcpy(out, in, len);
	out[len] = '\0';
	return 0;
}

/* ---- Maildir ------------------------------------------------------------------------ */

int import_maildir_name(const char *name, size_t len, struct import_maildir_name *out)
{
	const char *colon;
	size_t i;

	memset(out, 0, sizeof(*out));
	if (len == 0 || name[0] == '.' || memchr(name, '/', len) != NULL ||
	    memchr(name, '\0', len) != NULL)
		return -EPROTO;
	colon = memchr(name, ':', len);
	out->base_len = colon != NULL ? (size_t)(colon - name) : len;
	if (out->base_len == 0)
		return -EPROTO;
	for (i = 0; i < out->base_len && i < 19 && name[i] >= '0' && name[i] <= '9'; i++)
		out->timestamp = out->timestamp * 10 + (uint64_t)(name[i] - '0');
	/* Info "2,FLAGS" (version 1 info is experimental: no flags in it). */
	if (colon == NULL || len - out->base_len < 3 || colon[1] != '2' || colon[2] != ',')
		return 0;
	for (i = out->base_len + 3; i < len; i++) {
		char c = name[i];

		switch (c) {
		case 'D': out->flags |= VAULT_F_DRAFT; break;
		case 'F': out->flags |= VAULT_F_FLAGGED; break;
		case 'P': out->passed = true; break;
		case 'R': out->flags |= VAULT_F_ANSWERED; break;
		case 'S': out->flags |= VAULT_F_SEEN; break;
		case 'T': out->flags |= VAULT_F_DELETED; break;
		default:
			if (c >= 'a' && c <= 'z')
				out->keyword_bits |= 1u << (c - 'a');
			break;
		}
	}
	return 0;
}

static size_t parse_uint(const char *p, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < len && p[i] >= '0' && p[i] <= '9'; i++) {
		if (v > (max - (uint64_t)(p[i] - '0')) / 10)
			return 0;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*out = v;
	return i;
}

int import_keywords_line(const char *line, size_t len, unsigned *index_out,
    const char **name_out, size_t *name_len_out)
{
	uint64_t idx;
	size_t n = parse_uint(line, len, 1000, &idx);

	if (n == 0 || idx > 25 || n + 1 >= len || line[n] != ' ')
		return -EPROTO;
	*index_out = (unsigned)idx;
	*name_out = line + n + 1;
	*name_len_out = len - n - 1;
	return 0;
}

int import_uidlist_line(unsigned version, const char *line, size_t len, uint32_t *uid_out,
    const char **name_out, size_t *name_len_out)
{
	uint64_t uid;
	size_t n = parse_uint(line, len, UINT32_MAX, &uid), i;

	if (n == 0 || uid == 0 || n >= len || line[n] != ' ')
		return -EPROTO;
	i = n + 1;
	if (version >= 2) {
		/* Extension fields ("G<guid>", "S<size>", ...), then ":FILENAME". */
		while (i < len && line[i] != ':') {
			const char *sp = memchr(line + i, ' ', len - i);

			if (sp == NULL)
				return -EPROTO;
			i = (size_t)(sp - line) + 1;
		}
		if (i >= len)
			return -EPROTO;
		i++;
	}
	if (i >= len || memchr(line + i, ' ', len - i) != NULL)
		return -EPROTO;
	*uid_out = (uint32_t)uid;
	*name_out = line + i;
	*name_len_out = len - i;
	return 0;
}

bool import_keyword_valid(const char *s, size_t len)
{
	if (len == 0 || len > 128)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		/* RFC 9051 atom: no CTL, SP, 8-bit, ( ) { % * " \ ] */
		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return false;
	}
	return true;
}

/* ---- mbox From line ----------------------------------------------------------------- */

static int word_index(const char *w, size_t n, const char *const *list, int count)
{
	if (n != 3)
		return -1;
	for (int i = 0; i < count; i++)
		if (strncasecmp(w, list[i], 3) == 0)
			return i;
	return -1;
}

static const char *const weekdays[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul",
	"Aug", "Sep", "Oct", "Nov", "Dec" };

struct tok { const char *p; size_t n; };

static bool all_digits(const struct tok *t)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->p[i] < '0' || t->p[i] > '9')
			return false;
	return t->n > 0;
}

/* hh:mm[:ss] */
static bool parse_clock(const struct tok *t, struct tm *tm)
{
	unsigned v[3] = { 0, 0, 0 };
	size_t i = 0;
	int k = 0;

	for (k = 0; k < 3; k++) {
		size_t d = 0;

		while (i < t->n && t->p[i] >= '0' && t->p[i] <= '9' && d < 2) {
			v[k] = v[k] * 10 + (unsigned)(t->p[i] - '0');
			i++;
			d++;
		}
		if (d == 0)
			return false;
		if (i == t->n)
			break;
		if (t->p[i] != ':' || k == 2)
			return false;
		i++;
	}
	if (k == 0 || i != t->n || v[0] > 23 || v[1] > 59 || v[2] > 60)
		return false;
	tm->tm_hour = (int)v[0];
	tm->tm_min = (int)v[1];
	tm->tm_sec = (int)v[2];
	return true;
}

/* 0: a zone; *known false for a name we cannot map (local time is used). */
static bool parse_zone(const struct tok *t, bool *known, int32_t *minutes)
{
	if (t->n == 5 && (t->p[0] == '+' || t->p[0] == '-')) {
		int v = 0;

		for (size_t i = 1; i < 5; i++) {
			if (t->p[i] < '0' || t->p[i] > '9')
				return false;
			v = v * 10 + (t->p[i] - '0');
		}
		if (v / 100 > 23 || v % 100 > 59)
			return false;
		*minutes = (int32_t)((v / 100) * 60 + v % 100) * (t->p[0] == '-' ? -1 : 1);
		*known = true;
		return true;
	}
	if (t->n == 0 || t->n > 5)
		return false;
	for (size_t i = 0; i < t->n; i++)
		if (!isalpha((unsigned char)t->p[i]))
			return false;
	*known = (t->n == 3 && (strncasecmp(t->p, "UTC", 3) == 0 ||
	    strncasecmp(t->p, "GMT", 3) == 0)) || (t->n == 2 && strncasecmp(t->p, "UT", 2) == 0) ||
	    (t->n == 1 && (t->p[0] == 'Z' || t->p[0] == 'z'));
	*minutes = 0;
	return true;
}

int import_mbox_from_line(const char *line, size_t len, int64_t *time_out, int32_t *tz_out)
{
	struct tok toks[IMPORT_FROM_LINE_MAX / 2];
	size_t nt = 0, i = 5;

	if (len < 5 || len > IMPORT_FROM_LINE_MAX || memcmp(line, "From ", 5) != 0)
		return -EPROTO;
	while (i < len) {
		while (i < len && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (i == len)
			break;
		toks[nt].p = line + i;
		while (i < len && line[i] != ' ' && line[i] != '\t')
			i++;
		toks[nt].n = (size_t)(line + i - toks[nt].p);
		nt++;
	}
	for (size_t s = 0; s + 3 < nt; s++) {
		struct tm tm;
		uint64_t day, year = 0;
		bool known = false, have_zone = false;
		int32_t zone = 0;
		int mon;
		size_t j;
		time_t t;

		if (word_index(toks[s].p, toks[s].n, weekdays, 7) < 0 ||
		    (mon = word_index(toks[s + 1].p, toks[s + 1].n, months, 12)) < 0 ||
		    !all_digits(&toks[s + 2]) || toks[s + 2].n > 2 ||
		    parse_uint(toks[s + 2].p, toks[s + 2].n, 31, &day) != toks[s + 2].n ||
		    day == 0)
			continue;
		memset(&tm, 0, sizeof(tm));
		if (!parse_clock(&toks[s + 3], &tm))
			continue;
		/* [zone] year [zone]: at most one zone. */
		for (j = s + 4; j < nt && j < s + 7; j++) {
			if (year == 0 && toks[j].n == 4 && all_digits(&toks[j])) {
				parse_uint(toks[j].p, 4, 9999, &year);
				if (year < 1900)
					break;
				continue;
			}
			if (!have_zone && parse_zone(&toks[j], &known, &zone)) {
				have_zone = true;
				continue;
			}
			break;	/* trailing words ("remote from host") are allowed */
		}
		if (year < 1900)
			continue;
		tm.tm_mday = (int)day;
		tm.tm_mon = mon;
		tm.tm_year = (int)year - 1900;
		if (have_zone && known) {
			if ((t = timegm(&tm)) == (time_t)-1)
				continue;
			*time_out = (int64_t)t - (int64_t)zone * 60;
			*tz_out = zone;
		} else {
			struct tm lt;

			tm.tm_isdst = -1;
			if ((t = mktime(&tm)) == (time_t)-1)
				continue;
			*time_out = (int64_t)t;
			*tz_out = localtime_r(&t, &lt) != NULL ? (int32_t)(lt.tm_gmtoff / 60) : 0;
		}
		return 0;
	}
	return -EPROTO;
}

/* ---- mbox splitter ------------------------------------------------------------------ */

enum { MB_BOL = 0, MB_HEAD, MB_MID };

void import_mbox_init(struct import_mbox *m, const struct import_mbox_ops *ops, void *arg)
{
	memset(m, 0, sizeof(*m));
	m->ops = ops;
	m->arg = arg;
	m->state = MB_BOL;
}

static int mb_fail(struct import_mbox *m, int r)
{
	if (m->err == 0)
		m->err = r;
	return r;
}

static int mb_emit(struct import_mbox *m, const uint8_t *p, size_t n)
{
	int r;

	if (n == 0)
		return 0;
	if (!m->in_msg)
		return mb_fail(m, -EPROTO);	/* text before the first From line */
	if ((r = m->ops->data(m->arg, p, n)) < 0)
		return mb_fail(m, r);
	return 0;
}

static int mb_emit_gt(struct import_mbox *m, size_t n)
{
	static const char gts[] = ">>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>";
	int r;

	while (n > 0) {
		size_t k = n < sizeof(gts) - 1 ? n : sizeof(gts) - 1;

		if ((r = mb_emit(m, (const uint8_t *)gts, k)) < 0)
			return r;
		n -= k;
	}
	return 0;
}

static int mb_flush_blank(struct import_mbox *m)
{
	int kind = m->pending_blank;

	m->pending_blank = 0;
	if (kind == 1)
		return mb_emit(m, (const uint8_t *)"\n", 1);
	if (kind == 2)
		return mb_emit(m, (const uint8_t *)"\r\n", 2);
	return 0;
}

/* The buffered line start is body text: the pending blank line, the '>'s (one fewer
 * when the line is ">+From "), the bytes. */
static int mb_flush_line(struct import_mbox *m, bool unquote)
{
	int r;

	if ((r = mb_flush_blank(m)) < 0 || (r = mb_emit_gt(m, m->gt - (unquote ? 1 : 0))) < 0 ||
	    (r = mb_emit(m, m->line, m->linelen)) < 0)
		return r;
	m->gt = 0;
	m->linelen = 0;
	return 0;
}

static int mb_separator(struct import_mbox *m, int64_t date, int32_t tz)
{
	struct import_mbox_msg msg;
	int r;

	m->pending_blank = 0;	/* the empty line before a From line is the separator's */
	if (m->in_msg && (r = m->ops->end(m->arg)) < 0)
		return mb_fail(m, r);
	msg.offset = m->line_off;
	msg.index = m->count++;
	msg.date = date;
	msg.tz = tz;
	m->in_msg = true;
	if ((r = m->ops->begin(m->arg, &msg)) < 0)
		return mb_fail(m, r);
	return 0;
}

static bool is_prefix_of_from(const uint8_t *p, size_t n)
{
	return n <= 5 && memcmp(p, "From ", n) == 0;
}

/* One byte at a line start. Returns 0 or a negative error. */
static int mb_head_byte(struct import_mbox *m, uint8_t c)
{
	bool from;
	int r;

	if (m->linelen == 0 && m->gt == 0)
		m->line_off = m->pos;
	if (m->linelen == 0 && c == '>') {
		m->gt++;
		m->state = MB_HEAD;
		return 0;
	}
	m->line[m->linelen++] = c;
	m->state = MB_HEAD;
	if (c == '\n') {
		size_t end = m->linelen - 1;

		if (end > 0 && m->line[end - 1] == '\r')
			end--;
		if (m->gt == 0 && end == 0) {
			/* An empty line: hold it, it may end up belonging to a separator.
			 * Empty lines before the first message are dropped. */
			if (m->in_msg && (r = mb_flush_blank(m)) < 0)
				return r;
			m->pending_blank = m->linelen == 1 ? 1 : 2;
			m->linelen = 0;
			m->state = MB_BOL;
			return 0;
		}
		if (m->gt == 0 && m->linelen > 5 && memcmp(m->line, "From ", 5) == 0) {
			int64_t date;
			int32_t tz;

			if (import_mbox_from_line((const char *)m->line, end, &date, &tz) == 0) {
				m->linelen = 0;
				m->state = MB_BOL;
				return mb_separator(m, date, tz);
			}
		}
		r = mb_flush_line(m, false);
		m->state = MB_BOL;
		return r;
	}
	if (m->gt > 0) {
		if (m->linelen == 5 && memcmp(m->line, "From ", 5) == 0) {
			r = mb_flush_line(m, true);	/* ">+From ": one '>' less */
			m->state = MB_MID;
			return r;
		}
		if (is_prefix_of_from(m->line, m->linelen))
			return 0;
	} else {
		from = m->linelen > 5 ? memcmp(m->line, "From ", 5) == 0 :
		    is_prefix_of_from(m->line, m->linelen);
		if ((from && m->linelen < IMPORT_FROM_LINE_MAX) ||
		    (m->linelen == 1 && c == '\r'))
			return 0;
	}
	r = mb_flush_line(m, false);
	m->state = MB_MID;
	return r;
}

int import_mbox_feed(struct import_mbox *m, const uint8_t *p, size_t n)
{
	size_t i = 0;
	int r;

	if (m->err != 0)
		return m->err;
	while (i < n) {
		if (m->state == MB_MID) {
			const uint8_t *nl = memchr(p + i, '\n', n - i);
			size_t end = nl != NULL ? (size_t)(nl - p) + 1 : n;

			if ((r = mb_emit(m, p + i, end - i)) < 0)
				return r;
			m->pos += end - i;
			i = end;
			if (nl != NULL)
				m->state = MB_BOL;
			continue;
		}
		r = mb_head_byte(m, p[i]);
		m->pos++;
		i++;
		if (r < 0)
			return mb_fail(m, r);
	}
	return 0;
}

int import_mbox_finish(struct import_mbox *m)
{
	int r;

	if (m->err != 0)
		return m->err;
	/* A last line without a line end is body text. */
	if ((m->linelen > 0 || m->gt > 0) && (r = mb_flush_line(m, false)) < 0)
		return r;
	m->pending_blank = 0;	/* the blank line mbox writers put after the last message */
	if (m->in_msg) {
		m->in_msg = false;
		if ((r = m->ops->end(m->arg)) < 0)
			return mb_fail(m, r);
	}
	m->state = MB_BOL;
	return 0;
}

/* ---- mbox status fields ------------------------------------------------------------- */

static bool field_is(const uint8_t *line, size_t n, const char *name, size_t *val_off)
{
	size_t k = strlen(name);

	if (n <= k || strncasecmp((const char *)line, name, k) != 0 || line[k] != ':')
		return false;
	*val_off = k + 1;
	return true;
}

static int keywords_in(const uint8_t *p, size_t n,
    int (*kw)(void *arg, const char *name, size_t n), void *arg)
{
	size_t i = 0;
	int r;

	while (i < n) {
		size_t s;

		while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == ',' || p[i] == '\r'))
			i++;
		s = i;
		while (i < n && p[i] != ' ' && p[i] != '\t' && p[i] != ',' && p[i] != '\r')
			i++;
		if (i > s && kw != NULL && import_keyword_valid((const char *)p + s, i - s) &&
		    (r = kw(arg, (const char *)p + s, i - s)) < 0)
			return r;
	}
	return 0;
}

int import_mbox_status(const uint8_t *msg, size_t len, uint32_t *flags_out,
    int (*kw)(void *arg, const char *name, size_t n), void *arg)
{
	size_t i = 0;
	bool in_keywords = false;
	int r;

	*flags_out = 0;
	while (i < len) {
		const uint8_t *nl = memchr(msg + i, '\n', len - i);
		size_t end = nl != NULL ? (size_t)(nl - msg) : len, n = end - i, v;
		const uint8_t *line = msg + i;

		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (n == 0)
			break;		/* end of the header */
		if ((line[0] == ' ' || line[0] == '\t') && in_keywords) {
			if ((r = keywords_in(line, n, kw, arg)) < 0)
				return r;
		} else {
			in_keywords = false;
			if (field_is(line, n, "Status", &v)) {
				for (; v < n; v++)
					if (line[v] == 'R')
						*flags_out |= VAULT_F_SEEN;
			} else if (field_is(line, n, "X-Status", &v)) {
				for (; v < n; v++) {
					switch (line[v]) {
					case 'A': *flags_out |= VAULT_F_ANSWERED; break;
					case 'F': *flags_out |= VAULT_F_FLAGGED; break;
					case 'D': *flags_out |= VAULT_F_DELETED; break;
					case 'T': *flags_out |= VAULT_F_DRAFT; break;
					default: break;
					}
				}
			} else if (field_is(line, n, "X-Keywords", &v)) {
				in_keywords = true;
				if ((r = keywords_in(line + v, n - v, kw, arg)) < 0)
					return r;
			}
		}
		if (nl == NULL)
			break;
		i = end + 1;
	}
	return 0;
}
