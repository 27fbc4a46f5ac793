/* imap-msg-lex: RFC 5322 section 3.2 lexical tokens (CFWS, atom, dot-atom,
 * quoted-string, phrase, domain) and RFC 2045 tokens and parameters, with RFC 2231
 * parameter continuations. Lenient where real mail needs it, in the same places
 * Dovecot is: 8-bit bytes count as atext, white space may surround the dots of a
 * dot-atom (RFC 822), a phrase may contain dots (RFC 5322 obs-phrase). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "imap-msg-private.h"

/* RFC 5322 atext: ALPHA / DIGIT / "!#$%&'*+-/=?^_`{|}~", plus 8-bit (RFC 6532). */
bool lex_is_atext(uint8_t c)
{
	if (c >= 0x80)
		return true;
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* RFC 2045 token: atext minus the tspecials "/", "=", "?" (the other tspecials are
 * not atext anyway); "." is allowed. */
static bool is_token(uint8_t c)
{
	return (lex_is_atext(c) && c != '/' && c != '=' && c != '?') || c == '.';
}

void lex_init(struct lex *l, const uint8_t *p, size_t n, struct imap_mbuf *comment)
{
	l->p = p;
	l->end = p + n;
	l->comment = comment;
}

static int skip_comment(struct lex *l)
{
	const uint8_t *start;
	int level = 1;

	if (l->comment != NULL)
		imap_mbuf_reset(l->comment);
	start = ++l->p;
	for (; l->p < l->end; l->p++) {
		switch (*l->p) {
		case '(':
			level++;
			break;
		case ')':
			if (--level == 0) {
				if (l->comment != NULL)
					imap_mbuf_put(l->comment, start, (size_t)(l->p - start));
				l->p++;
				return l->p < l->end ? 1 : 0;
			}
			break;
		case '\\':
			if (l->comment != NULL)
				imap_mbuf_put(l->comment, start, (size_t)(l->p - start));
			start = l->p + 1;
			l->p++;
			if (l->p >= l->end)
				return -1;
			break;
		case '\0':
			/* flushed here (written as U+FFFD later), so an unterminated
			 * comment keeps the text up to its NUL, as in Dovecot */
			if (l->comment != NULL)
				imap_mbuf_put(l->comment, start, (size_t)(l->p + 1 - start));
			start = l->p + 1;
			break;
		default:
			break;
		}
	}
	return -1;	/* missing ")": the text since the last flush is dropped */
}

int lex_skip_cfws(struct lex *l)
{
	while (l->p < l->end) {
		uint8_t c = *l->p;

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			l->p++;
			continue;
		}
		if (c != '(')
			break;
		if (skip_comment(l) < 0) {
			/* an unterminated comment runs to the end: nothing after it can be
			 * parsed, and stopping there keeps error recovery linear */
			l->p = l->end;
			return -1;
		}
	}
	return l->p < l->end ? 1 : 0;
}

int lex_atom(struct lex *l, struct imap_mbuf *out)
{
	const uint8_t *start = l->p;

	if (l->p >= l->end || !lex_is_atext(*l->p))
		return -1;
	while (l->p < l->end && lex_is_atext(*l->p))
		l->p++;
	imap_mbuf_put(out, start, (size_t)(l->p - start));
	return l->p < l->end ? lex_skip_cfws(l) : 0;
}

int lex_dot_atom(struct lex *l, struct imap_mbuf *out)
{
	const uint8_t *start;
	int r;

	/* dot-atom-text = 1*atext *("." 1*atext), CFWS allowed around the dots
	 * (RFC 5322 obs-domain); an empty atom ("a..b", "a.") is an error */
	if (l->p >= l->end || !lex_is_atext(*l->p))
		return -1;
	start = l->p;
	while (l->p < l->end) {
		if (lex_is_atext(*l->p)) {
			l->p++;
			continue;
		}
		imap_mbuf_put(out, start, (size_t)(l->p - start));
		if ((r = lex_skip_cfws(l)) <= 0)
			return r;
		if (*l->p != '.')
			return 1;
		l->p++;
		imap_mbuf_putc(out, '.');
		if (lex_skip_cfws(l) <= 0 || !lex_is_atext(*l->p))
			return -1;
		start = l->p;
	}
	imap_mbuf_put(out, start, (size_t)(l->p - start));
	return 0;
}

int lex_local_part_atom(struct lex *l, struct imap_mbuf *out)
{
	int r = -1;

	/* Dovecot's non-strict local part: atoms and dots, dots anywhere ("a..b",
	 * ".a", "a.@b": some mailers make those), CFWS before a dot. After a dot RFC
	 * 5322's obs-local-part also allows CFWS; we take white space there (Dovecot
	 * takes none), not comments. */
	do {
		while (l->p < l->end && *l->p == '.') {
			imap_mbuf_putc(out, '.');
			l->p++;
			r = 1;
			while (l->p < l->end && (*l->p == ' ' || *l->p == '\t' ||
			    *l->p == '\r' || *l->p == '\n'))
				l->p++;
			if (l->p >= l->end)
				return 0;
		}
		if (l->p >= l->end || *l->p == '@')
			break;
		r = lex_atom(l, out);
	} while (r > 0 && l->p < l->end && *l->p == '.');
	return r;
}

int lex_mime_token(struct lex *l, struct imap_mbuf *out)
{
	const uint8_t *start = l->p;

	while (l->p < l->end && is_token(*l->p))
		l->p++;
	imap_mbuf_put(out, start, (size_t)(l->p - start));
	return l->p < l->end ? lex_skip_cfws(l) : 0;
}

int lex_quoted(struct lex *l, struct imap_mbuf *out)
{
	const uint8_t *start;
	size_t n;

	l->p++;	/* the opening quote */
	for (start = l->p; l->p < l->end; l->p++) {
		switch (*l->p) {
		case '"':
			imap_mbuf_put(out, start, (size_t)(l->p - start));
			l->p++;
			return lex_skip_cfws(l);
		case '\n':
			/* folding inside the quotes: drop the line break, keep the WSP */
			n = (size_t)(l->p - start);
			if (n > 0 && start[n - 1] == '\r')
				n--;
			imap_mbuf_put(out, start, n);
			start = l->p + 1;
			break;
		case '\\':
			l->p++;
			if (l->p >= l->end)
				return -1;
			imap_mbuf_put(out, start, (size_t)(l->p - start - 1));
			start = l->p;
			break;
		default:
			break;
		}
	}
	return -1;	/* missing closing quote */
}

/* atext and dots, without skipping the white space between them */
static int atom_or_dot(struct lex *l, struct imap_mbuf *out)
{
	const uint8_t *start = l->p;

	while (l->p < l->end && (lex_is_atext(*l->p) || *l->p == '.'))
		l->p++;
	imap_mbuf_put(out, start, (size_t)(l->p - start));
	return l->p < l->end ? lex_skip_cfws(l) : 0;
}

int lex_phrase(struct lex *l, struct imap_mbuf *out)
{
	int r;

	/* phrase = 1*word / obs-phrase; obs-phrase = word *(word / "." / CFWS) */
	if (l->p >= l->end)
		return 0;
	if (*l->p == '.')
		return -1;
	for (;;) {
		if (*l->p == '"')
			r = lex_quoted(l, out);
		else
			r = atom_or_dot(l, out);
		if (r <= 0)
			return r;
		if (!lex_is_atext(*l->p) && *l->p != '"' && *l->p != '.')
			break;
		imap_mbuf_putc(out, ' ');
	}
	return lex_skip_cfws(l);
}

int lex_domain(struct lex *l, struct imap_mbuf *out)
{
	const uint8_t *start;

	/* domain = dot-atom / domain-literal / obs-domain */
	l->p++;	/* "@" */
	if (lex_skip_cfws(l) <= 0)
		return -1;
	if (*l->p != '[')
		return lex_dot_atom(l, out);
	for (start = l->p; l->p < l->end; l->p++) {
		if (*l->p == '\\') {
			l->p++;
			if (l->p >= l->end)
				break;
		} else if (*l->p == ']') {
			l->p++;
			imap_mbuf_put(out, start, (size_t)(l->p - start));
			return lex_skip_cfws(l);
		}
	}
	return -1;	/* missing "]" */
}

/* ---- parameters ---------------------------------------------------------------- */

/* One "; attribute = value" (RFC 2045 section 5.1). 1 with key/value set, 0 at the end
 * of input, -1 on a syntax error (the caller skips a byte and retries). */
static int param_next(struct lex *l, struct imap_mbuf *key, struct imap_mbuf *value)
{
	int r;

	imap_mbuf_reset(key);
	imap_mbuf_reset(value);
	if (l->p >= l->end)
		return 0;
	if (*l->p != ';')
		return -1;
	l->p++;
	if (lex_skip_cfws(l) <= 0)
		return -1;
	if (lex_mime_token(l, key) <= 0)
		return -1;
	if (*l->p != '=')
		return -1;
	l->p++;
	if ((r = lex_skip_cfws(l)) <= 0) {
		/* no value */
	} else if (*l->p == '"') {
		r = lex_quoted(l, value);
	} else if (*l->p == '=') {
		/* a common breakage: name==?utf-8?b?...?= unquoted */
		while (l->p < l->end && *l->p != ';' && *l->p != ' ' && *l->p != '\t' &&
		    *l->p != '\r' && *l->p != '\n')
			imap_mbuf_putc(value, *l->p++);
	} else {
		r = lex_mime_token(l, value);
	}
	return r < 0 ? -1 : 1;
}

struct rfc2231_seg {
	char *key;		/* the name before "*" */
	char *value;
	uint32_t idx;
	uint32_t order;		/* arrival order, for a stable sort */
	bool extended;		/* "*" after the index: charset'lang'%XX encoding */
};

static int seg_cmp(const void *a, const void *b)
{
	const struct rfc2231_seg *x = a, *y = b;
	int r = strcmp(x->key, y->key);

	if (r != 0)
		return r;
	if (x->idx != y->idx)
		return x->idx < y->idx ? -1 : 1;
	return x->order < y->order ? -1 : (x->order > y->order);
}

static bool str_ieq(const char *a, const char *b)
{
	return ascii_ieq((const uint8_t *)a, strlen(a), b);
}

/* Splits "name*", "name*3", "name*3*" into key/index/extended. false if key has no
 * "*" or something else follows the index. */
static bool rfc2231_split(const char *key, size_t *name_len, uint32_t *idx, bool *ext)
{
	const char *star = strchr(key, '*'), *p;
	uint32_t v = 0;

	if (star == NULL)
		return false;
	p = star + 1;
	while (*p >= '0' && *p <= '9') {
		if (v < 100000000u)
			v = v * 10 + (uint32_t)(*p - '0');
		p++;
	}
	if (star[1] == '\0') {
		/* "name*": one encoded segment (RFC 2231 section 4) */
		p = star;
	}
	*ext = *p == '*';
	if (*ext)
		p++;
	if (*p != '\0')
		return false;
	*name_len = (size_t)(star - key);
	*idx = v;
	return true;
}

void params_parse(struct lex *l, struct msg_arena *a, struct imap_msg_param **out,
    uint32_t *n_out, int *err)
{
	struct imap_mbuf key, value, joined;
	struct imap_msg_param *res = NULL;
	struct rfc2231_seg *segs = NULL;
	size_t nres = 0, capres = 0, nsegs = 0, capsegs = 0;
	int r;

	*out = NULL;
	*n_out = 0;
	imap_mbuf_init(&key, 0);
	imap_mbuf_init(&value, 0);
	imap_mbuf_init(&joined, 0);
	while ((r = param_next(l, &key, &value)) != 0) {
		const char *k;
		size_t name_len;
		uint32_t idx;
		bool ext;

		if (r < 0) {
			/* skip the offending byte and look for the next ";" */
			if (l->p >= l->end)
				break;
			l->p++;
			continue;
		}
		if (key.err != 0 || value.err != 0)
			goto oom;
		k = key.d != NULL ? (const char *)key.d : "";
		if (rfc2231_split(k, &name_len, &idx, &ext)) {
			if (nsegs == capsegs) {
				size_t nc = capsegs == 0 ? 8 : capsegs * 2;
				void *t = realloc(segs, nc * sizeof(*segs));
				if (t == NULL)
					goto oom;
				segs = t;
				capsegs = nc;
			}
			segs[nsegs].key = arena_strdup_nul(a, key.d, name_len);
			segs[nsegs].value = arena_strdup_nul(a, value.d, value.len);
			if (segs[nsegs].key == NULL || segs[nsegs].value == NULL)
				goto oom;
			segs[nsegs].idx = idx;
			segs[nsegs].order = (uint32_t)nsegs;
			segs[nsegs].extended = ext;
			nsegs++;
			continue;
		}
		if (nres == capres) {
			size_t nc = capres == 0 ? 8 : capres * 2;
			void *t = realloc(res, nc * sizeof(*res));
			if (t == NULL)
				goto oom;
			res = t;
			capres = nc;
		}
		res[nres].name = arena_strdup_nul(a, key.d, key.len);
		res[nres].value = arena_strdup_nul(a, value.d, value.len);
		if (res[nres].name == NULL || res[nres].value == NULL)
			goto oom;
		nres++;
	}

	/* RFC 2231 section 3: name*0, name*1, ... are one value; "*" after the index
	 * means that segment is charset'lang'%XX-encoded. Merge when the indexes run
	 * 0..n-1 without gaps; otherwise keep the segments as they were written. */
	if (nsegs > 0)
		qsort(segs, nsegs, sizeof(*segs), seg_cmp);
	for (size_t i = 0, next; i < nsegs; i = next) {
		bool ok = true, have_ext = false;
		uint32_t want = 0;

		for (next = i; next < nsegs && str_ieq(segs[next].key, segs[i].key); next++) {
			if (segs[next].idx != want)
				ok = false;
			have_ext = have_ext || segs[next].extended;
			want++;
		}
		if (nres + (next - i) > capres) {
			size_t nc = capres * 2 + (next - i) + 8;
			void *t = realloc(res, nc * sizeof(*res));
			if (t == NULL)
				goto oom;
			res = t;
			capres = nc;
		}
		if (!ok) {
			for (size_t j = i; j < next; j++) {
				imap_mbuf_reset(&joined);
				imap_mbuf_puts(&joined, segs[j].key);
				imap_mbuf_putc(&joined, '*');
				imap_mbuf_put_u64(&joined, segs[j].idx);
				if (segs[j].extended)
					imap_mbuf_putc(&joined, '*');
				if (joined.err != 0)
					goto oom;
				res[nres].name = arena_strdup_nul(a, joined.d, joined.len);
				res[nres].value = segs[j].value;
				if (res[nres].name == NULL)
					goto oom;
				nres++;
			}
			continue;
		}
		imap_mbuf_reset(&joined);
		/* A plain first segment under an encoded name gets an empty charset and
		 * language; plain segments have their "%" escaped to stay literal. */
		if (!segs[i].extended && have_ext)
			imap_mbuf_put(&joined, "''", 2);
		for (size_t j = i; j < next; j++) {
			const char *v = segs[j].value;

			if (segs[j].extended || !have_ext) {
				imap_mbuf_puts(&joined, v);
				continue;
			}
			for (; *v != '\0'; v++) {
				if (*v == '%')
					imap_mbuf_put(&joined, "%25", 3);
				else
					imap_mbuf_putc(&joined, (uint8_t)*v);
			}
		}
		if (joined.err != 0)
			goto oom;
		res[nres].value = arena_strdup_nul(a, joined.d, joined.len);
		imap_mbuf_reset(&joined);
		imap_mbuf_puts(&joined, segs[i].key);
		if (have_ext)
			imap_mbuf_putc(&joined, '*');
		if (joined.err != 0)
			goto oom;
		res[nres].name = arena_strdup_nul(a, joined.d, joined.len);
		if (res[nres].name == NULL || res[nres].value == NULL)
			goto oom;
		nres++;
	}
	if (nres > 0) {
		*out = arena_alloc(a, nres * sizeof(*res));
		if (*out == NULL)
			goto oom;
		memcpy(*out, res, nres * sizeof(*res));
		*n_out = (uint32_t)nres;
	}
	goto done;
oom:
	*out = NULL;
	*n_out = 0;
	*err = -ENOMEM;
done:
	free(res);
	free(segs);
	imap_mbuf_release(&key);
	imap_mbuf_release(&value);
	imap_mbuf_release(&joined);
}
