/* imap-msg-parse: the MIME tree of a message in memory.
 *
 * One forward pass. Each part is: a header block (to the first empty line), then a
 * body whose end is the next multipart boundary line of any enclosing multipart, or
 * the end of the input. Every line of the input is looked at once by the innermost
 * part that contains it. Recursion follows the MIME nesting and is bounded by
 * max_depth (hard cap IMAP_MSG_MAX_DEPTH_CAP).
 *
 * Boundary lines are recognised as Dovecot does: a line starting with "--" whose rest
 * (without a trailing CR) begins with one of the active boundaries, the longest such
 * boundary winning (RFC 2046 section 5.1.1 wants an exact
 * match up to trailing white space, but real mailers emit prefix matches, and the
 * longest-match rule keeps nested boundaries that are prefixes of each other apart).
 * A delimiter followed by "--" closes its multipart. A boundary of an outer multipart
 * ends every part inside it, including a multipart whose closing delimiter is missing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "imap-msg-private.h"

void imap_msg_limits_default(struct imap_msg_limits *lim)
{
	lim->max_parts = 1000;
	lim->max_depth = 64;
	lim->max_header_bytes = 1u << 20;
}

/* ---- header fields ------------------------------------------------------------ */

void hdr_iter_init_raw(struct hdr_iter *it, const uint8_t *p, size_t len)
{
	it->p = p;
	it->end = p + len;
}

void hdr_iter_init(struct hdr_iter *it, const struct imap_msg *m,
    const struct imap_msg_part *p)
{
	size_t len = p->hdr_len;

	if (len > m->lim.max_header_bytes)
		len = m->lim.max_header_bytes;
	hdr_iter_init_raw(it, m->data + p->hdr_off, len);
}

/* End of the line starting at p: just past its LF, or end. */
static const uint8_t *line_end(const uint8_t *p, const uint8_t *end)
{
	const uint8_t *lf = memchr(p, '\n', (size_t)(end - p));

	return lf == NULL ? end : lf + 1;
}

bool hdr_iter_next(struct hdr_iter *it, struct hdr_field *f)
{
	const uint8_t *p = it->p, *e, *colon, *v, *last;

	if (p >= it->end)
		return false;
	/* the empty line ends the header */
	if (*p == '\n' || (*p == '\r' && p + 1 < it->end && p[1] == '\n'))
		return false;
	memset(f, 0, sizeof(*f));
	f->line = p;
	e = line_end(p, it->end);
	last = p;
	/* continuation lines start with SP or HT (RFC 5322 section 2.2.3) */
	while (e < it->end && (*e == ' ' || *e == '\t')) {
		last = e;
		e = line_end(e, it->end);
	}
	it->p = e;
	f->line_len = (size_t)(e - p);

	colon = memchr(p, ':', (size_t)(line_end(p, e) - p));
	if (colon == NULL || *p == ' ' || *p == '\t') {
		f->has_colon = false;
		return true;
	}
	f->has_colon = true;
	f->name = p;
	f->name_len = (size_t)(colon - p);
	while (f->name_len > 0 && (p[f->name_len - 1] == ' ' || p[f->name_len - 1] == '\t'))
		f->name_len--;
	v = colon + 1;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	/* the value ends before the final line break of the last line */
	{
		const uint8_t *ve = line_end(last, e);

		if (ve > last && ve[-1] == '\n') {
			ve--;
			if (ve > last && ve[-1] == '\r')
				ve--;
		}
		if (ve < v)
			ve = v;
		f->value = v;
		f->value_len = (size_t)(ve - v);
	}
	return true;
}

bool hdr_name_eq(const struct hdr_field *f, const char *name)
{
	return f->has_colon && ascii_ieq(f->name, f->name_len, name);
}

/* ---- Content-* fields ------------------------------------------------------------ */

struct mime_info {
	bool is_mime;
	bool seen_type, seen_id, seen_desc, seen_md5, seen_loc;
};

static char *dup_value(struct imap_msg *m, const struct hdr_field *f, int *err)
{
	char *s = arena_strdup_nul(&m->arena, f->value, f->value_len);

	if (s == NULL)
		*err = -ENOMEM;
	return s;
}

static void parse_content_type(struct imap_msg *m, struct imap_msg_part *p,
    const struct hdr_field *f, int *err)
{
	struct imap_mbuf t, st;
	struct lex l;
	int r;
	bool params = false;

	/* type "/" subtype [";" parameters]: RFC 2045 section 5.1. Anything else is
	 * written as "" "" with no parameters (what Dovecot 2.3 does), except that a
	 * lone type with nothing after it keeps the type ("text" alone is text). */
	imap_mbuf_init(&t, 0);
	imap_mbuf_init(&st, 0);
	lex_init(&l, f->value, f->value_len, NULL);
	p->type = p->subtype = "";
	if (lex_skip_cfws(&l) > 0 && (r = lex_mime_token(&l, &t)) >= 0 && t.len > 0) {
		if (r == 0) {
			p->type = NULL;	/* set below */
		} else if (*l.p == '/') {
			l.p++;
			if (lex_skip_cfws(&l) > 0 && (r = lex_mime_token(&l, &st)) >= 0 &&
			    st.len > 0 && (r == 0 || *l.p == ';')) {
				p->type = p->subtype = NULL;
				params = r > 0;
			}
		}
	}
	if (t.err != 0 || st.err != 0) {
		*err = t.err != 0 ? t.err : st.err;
		goto out;
	}
	if (p->type == NULL)
		p->type = arena_strdup_nul(&m->arena, t.d, t.len);
	if (p->subtype == NULL)
		p->subtype = arena_strdup_nul(&m->arena, st.d, st.len);
	if (p->type == NULL || p->subtype == NULL) {
		*err = -ENOMEM;
		goto out;
	}
	if (params)
		params_parse(&l, &m->arena, &p->params, &p->nparams, err);
out:
	imap_mbuf_release(&t);
	imap_mbuf_release(&st);
}

static void parse_cte(struct imap_msg *m, struct imap_msg_part *p,
    const struct hdr_field *f, int *err)
{
	static const struct { const char *name; enum imap_msg_cte kind; } ctes[] = {
		{ "7bit", IMAP_MSG_CTE_7BIT }, { "8bit", IMAP_MSG_CTE_8BIT },
		{ "binary", IMAP_MSG_CTE_BINARY }, { "base64", IMAP_MSG_CTE_BASE64 },
		{ "quoted-printable", IMAP_MSG_CTE_QP },
	};
	struct imap_mbuf t;
	struct lex l;

	imap_mbuf_init(&t, 0);
	lex_init(&l, f->value, f->value_len, NULL);
	/* a single token, nothing but CFWS after it; otherwise it is ignored (7bit) */
	if (lex_skip_cfws(&l) >= 0 && lex_mime_token(&l, &t) >= 0 &&
	    lex_skip_cfws(&l) == 0 && t.len > 0 && t.err == 0) {
		p->cte = arena_strdup_nul(&m->arena, t.d, t.len);
		if (p->cte == NULL)
			*err = -ENOMEM;
		p->cte_kind = IMAP_MSG_CTE_UNKNOWN;
		for (size_t i = 0; i < sizeof(ctes) / sizeof(ctes[0]); i++) {
			if (ascii_ieq(t.d, t.len, ctes[i].name))
				p->cte_kind = ctes[i].kind;
		}
	}
	if (t.err != 0)
		*err = t.err;
	imap_mbuf_release(&t);
}

static void parse_disposition(struct imap_msg *m, struct imap_msg_part *p,
    const struct hdr_field *f, int *err)
{
	struct imap_mbuf t;
	struct lex l;

	imap_mbuf_init(&t, 0);
	lex_init(&l, f->value, f->value_len, NULL);
	(void)lex_skip_cfws(&l);
	if (lex_mime_token(&l, &t) >= 0 && t.err == 0) {
		p->disposition = arena_strdup_nul(&m->arena, t.d, t.len);
		if (p->disposition == NULL)
			*err = -ENOMEM;
		else
			params_parse(&l, &m->arena, &p->disp_params, &p->ndisp_params, err);
	}
	if (t.err != 0)
		*err = t.err;
	imap_mbuf_release(&t);
}

static void parse_language(struct imap_msg *m, struct imap_msg_part *p,
    const struct hdr_field *f, int *err)
{
	/* Content-Language = 1#Language-tag (RFC 3282); tags are atoms here */
	struct imap_mbuf t;
	struct lex l;
	const char **tags = NULL;
	size_t n = 0, cap = 0;

	imap_mbuf_init(&t, 0);
	lex_init(&l, f->value, f->value_len, NULL);
	lex_skip_cfws(&l);
	while (lex_atom(&l, &t) >= 0) {
		if (t.err != 0)
			break;
		if (n == cap) {
			size_t nc = cap == 0 ? 4 : cap * 2;
			const char **nt = realloc(tags, nc * sizeof(*tags));

			if (nt == NULL) {
				*err = -ENOMEM;
				break;
			}
			tags = nt;
			cap = nc;
		}
		if ((tags[n++] = arena_strdup_nul(&m->arena, t.d, t.len)) == NULL) {
			*err = -ENOMEM;
			break;
		}
		imap_mbuf_reset(&t);
		if (l.p >= l.end || *l.p != ',')
			break;
		l.p++;
		lex_skip_cfws(&l);
	}
	if (t.err != 0)
		*err = t.err;
	if (*err == 0 && n > 0) {
		p->languages = arena_alloc(&m->arena, n * sizeof(*tags));
		if (p->languages == NULL) {
			*err = -ENOMEM;
		} else {
			memcpy(p->languages, tags, n * sizeof(*tags));
			p->nlanguages = (uint32_t)n;
		}
	}
	free(tags);
	imap_mbuf_release(&t);
}

/* Reads the Content-* fields of p's header; sets type flags. */
static void analyse_header(struct imap_msg *m, struct imap_msg_part *p, int *err)
{
	struct hdr_iter it;
	struct hdr_field f;
	struct mime_info mi = { 0 };
	const struct imap_msg_part *parent = p->parent;

	/* Parts of a multipart are MIME entities by definition (RFC 2045 section 4
	 * requires MIME-Version only of the message header). */
	mi.is_mime = parent != NULL && (parent->flags & IMAP_MSG_PART_MULTIPART) != 0;

	hdr_iter_init(&it, m, p);
	while (*err == 0 && hdr_iter_next(&it, &f)) {
		if (!f.has_colon)
			continue;
		if (ascii_ieq(f.name, f.name_len, "mime-version")) {
			mi.is_mime = true;
			continue;
		}
		if (f.name_len < 8 || !ascii_ieq(f.name, 8, "content-"))
			continue;
		/* the first of each field counts */
		if (hdr_name_eq(&f, "content-type")) {
			/* like Dovecot, a Content-Type makes the header MIME on its own */
			mi.is_mime = true;
			if (!mi.seen_type) {
				mi.seen_type = true;
				parse_content_type(m, p, &f, err);
			}
		} else if (hdr_name_eq(&f, "content-transfer-encoding")) {
			/* the first one that parses (Dovecot) */
			if (p->cte == NULL)
				parse_cte(m, p, &f, err);
		} else if (hdr_name_eq(&f, "content-id")) {
			if (!mi.seen_id) {
				mi.seen_id = true;
				p->id = dup_value(m, &f, err);
			}
		} else if (hdr_name_eq(&f, "content-description")) {
			if (!mi.seen_desc) {
				mi.seen_desc = true;
				p->description = dup_value(m, &f, err);
			}
		} else if (hdr_name_eq(&f, "content-md5")) {
			if (!mi.seen_md5) {
				mi.seen_md5 = true;
				p->md5 = dup_value(m, &f, err);
			}
		} else if (hdr_name_eq(&f, "content-location")) {
			if (!mi.seen_loc) {
				mi.seen_loc = true;
				p->location = dup_value(m, &f, err);
			}
		} else if (hdr_name_eq(&f, "content-disposition")) {
			/* Dovecot reads later ones as long as none had parameters */
			if (p->ndisp_params == 0)
				parse_disposition(m, p, &f, err);
		} else if (hdr_name_eq(&f, "content-language")) {
			/* the first one with a language tag */
			if (p->nlanguages == 0)
				parse_language(m, p, &f, err);
		}
	}
	if (p->hdr_len > m->lim.max_header_bytes) {
		p->flags |= IMAP_MSG_PART_LIMITED;
		m->flags |= IMAP_MSG_F_LIMITED;
	}
	if (!mi.is_mime) {
		/* Without MIME-Version the Content-* fields mean nothing (RFC 2045
		 * section 4): forget them, as Dovecot does. */
		p->type = p->subtype = NULL;
		p->params = NULL;
		p->nparams = 0;
		p->cte = NULL;
		p->cte_kind = IMAP_MSG_CTE_NONE;
		p->id = p->description = p->md5 = p->location = NULL;
		p->disposition = NULL;
		p->disp_params = NULL;
		p->ndisp_params = 0;
		p->languages = NULL;
		p->nlanguages = 0;
		p->flags |= IMAP_MSG_PART_TEXT;
		return;
	}
	p->flags |= IMAP_MSG_PART_IS_MIME;
	if (p->type == NULL) {
		/* RFC 2046 section 5.1.5: in a digest the default is message/rfc822 */
		if (parent != NULL && (parent->flags & IMAP_MSG_PART_DIGEST) != 0)
			p->flags |= IMAP_MSG_PART_MESSAGE;
		else
			p->flags |= IMAP_MSG_PART_TEXT;
		return;
	}
	if (ascii_ieq((const uint8_t *)p->type, strlen(p->type), "text")) {
		p->flags |= IMAP_MSG_PART_TEXT;
	} else if (ascii_ieq((const uint8_t *)p->type, strlen(p->type), "multipart") &&
	    *p->subtype != '\0') {
		p->flags |= IMAP_MSG_PART_MULTIPART;
		if (ascii_ieq((const uint8_t *)p->subtype, strlen(p->subtype), "digest"))
			p->flags |= IMAP_MSG_PART_DIGEST;
	} else if (ascii_ieq((const uint8_t *)p->type, strlen(p->type), "message") &&
	    (ascii_ieq((const uint8_t *)p->subtype, strlen(p->subtype), "rfc822") ||
	     ascii_ieq((const uint8_t *)p->subtype, strlen(p->subtype), "global"))) {
		p->flags |= IMAP_MSG_PART_MESSAGE;
	}
}

/* ---- the tree --------------------------------------------------------------------- */

struct boundary {
	const uint8_t *s;
	size_t len;
};

struct pctx {
	struct imap_msg *m;
	const uint8_t *d;
	size_t len;
	struct boundary b[IMAP_MSG_MAX_DEPTH_CAP + 1];
	uint32_t nb;
	size_t scan_start;	/* where the last scan began */
	bool hdr_cut;		/* the last hit ended a header (see content_end) */
	/* the boundary line the last scan stopped at */
	int hit;		/* index into b, or -1: end of input */
	bool hit_close;
	size_t hit_line;	/* where the line starts */
	size_t hit_next;	/* where the line after it starts */
	int err;
};

/* Is the line at pos a boundary line of an active boundary? Sets hit*. */
static bool boundary_at(struct pctx *c, size_t pos)
{
	const uint8_t *s = c->d + pos + 2, *lf;
	size_t avail, n, best_len = 0;
	int best = -1;

	if (c->len - pos < 2 || c->d[pos] != '-' || c->d[pos + 1] != '-')
		return false;
	avail = c->len - pos - 2;
	lf = memchr(s, '\n', avail);
	n = lf == NULL ? avail : (size_t)(lf - s);
	if (n > 0 && s[n - 1] == '\r')
		n--;
	for (uint32_t i = 0; i < c->nb; i++) {
		if (c->b[i].len <= n && c->b[i].len >= best_len &&
		    memcmp(c->b[i].s, s, c->b[i].len) == 0) {
			/* ties go to the innermost (RFC 2046: search from the latest) */
			best = (int)i;
			best_len = c->b[i].len;
		}
	}
	if (best < 0)
		return false;
	c->hit = best;
	c->hit_line = pos;
	c->hit_close = avail >= best_len + 2 && s[best_len] == '-' && s[best_len + 1] == '-';
	c->hit_next = lf == NULL ? c->len : (size_t)(lf - c->d) + 1;
	return true;
}

/* From pos (a line start), finds the next boundary line, or the end. */
static void scan(struct pctx *c, size_t pos)
{
	c->scan_start = pos;
	c->hdr_cut = false;
	if (c->nb > 0) {
		while (pos < c->len) {
			const uint8_t *lf;

			if (c->d[pos] == '-' && boundary_at(c, pos))
				return;
			lf = memchr(c->d + pos, '\n', c->len - pos);
			if (lf == NULL)
				break;
			pos = (size_t)(lf - c->d) + 1;
		}
	}
	c->hit = -1;
	c->hit_close = false;
	c->hit_line = c->hit_next = c->len;
}

/* Where the content before the last hit ends, for a part whose body starts at start:
 * the [CR]LF before a boundary line belongs to the boundary. Not when the boundary
 * line is the first line scanned: the line break before it then ended a header or
 * another boundary line (after a close delimiter), and stays there (Dovecot). */
static size_t content_end(const struct pctx *c, size_t start)
{
	size_t e = c->hit_line;

	if (c->hit < 0)
		return c->len;
	/* A header cut short by a boundary line loses its last line break, which then
	 * belongs to the enclosing parts (Dovecot: "the previous [CR]LF belongs to the
	 * MIME boundary", counted in the parent's body). */
	if (c->hdr_cut)
		return e < start ? start : e;
	if (e > start && e != c->scan_start && c->d[e - 1] == '\n') {
		e--;
		if (e > start && c->d[e - 1] == '\r')
			e--;
	}
	return e < start ? start : e;
}

static uint32_t count_lf(const uint8_t *p, size_t n)
{
	uint32_t count = 0;
	const uint8_t *end = p + n;

	while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		if (count < UINT32_MAX)
			count++;
		p++;
	}
	return count;
}

static struct imap_msg_part *new_part(struct pctx *c, struct imap_msg_part *parent,
    struct imap_msg_part **tail)
{
	struct imap_msg_part *p = arena_alloc(&c->m->arena, sizeof(*p));

	if (p == NULL) {
		c->err = -ENOMEM;
		return NULL;
	}
	c->m->nparts++;
	p->parent = parent;
	if (parent != NULL) {
		p->depth = parent->depth + 1;
		p->index = ++parent->nchildren;
		*tail = p;
	}
	return p;
}

static bool may_nest(struct pctx *c, struct imap_msg_part *p)
{
	if (p->depth < c->m->lim.max_depth && c->m->nparts < c->m->lim.max_parts)
		return true;
	p->flags |= IMAP_MSG_PART_LIMITED;
	c->m->flags |= IMAP_MSG_F_LIMITED;
	return false;
}

static void parse_part(struct pctx *c, struct imap_msg_part *p, size_t pos);

/* A message part we do not descend into is an opaque part; one that was only
 * message/rfc822 by the multipart/digest default is then text/plain again (the
 * default BODYSTRUCTURE writes for a part without Content-Type). */
static void demote_message(struct imap_msg_part *p)
{
	if ((p->flags & IMAP_MSG_PART_MESSAGE) == 0)
		return;
	p->flags &= ~IMAP_MSG_PART_MESSAGE;
	if (p->type == NULL)
		p->flags |= IMAP_MSG_PART_TEXT;
}

static void parse_multipart(struct pctx *c, struct imap_msg_part *p)
{
	struct imap_msg_part **tail = &p->children;
	uint32_t own = c->nb;

	c->b[own].s = (const uint8_t *)p->boundary;
	c->b[own].len = strlen(p->boundary);
	c->nb++;
	scan(c, p->body_off);	/* the preamble */
	while (c->err == 0 && c->hit == (int)own && !c->hit_close) {
		struct imap_msg_part *child;

		if (c->m->nparts >= c->m->lim.max_parts) {
			/* leave the rest of the parts out, but keep their extent */
			p->flags |= IMAP_MSG_PART_LIMITED;
			c->m->flags |= IMAP_MSG_F_LIMITED;
			scan(c, c->hit_next);
			continue;
		}
		if ((child = new_part(c, p, tail)) == NULL)
			break;
		tail = &child->next;
		parse_part(c, child, c->hit_next);
	}
	c->nb = own;	/* this multipart's boundary, and any inside it, are done */
	if (c->err == 0 && c->hit == (int)own)
		scan(c, c->hit_next);	/* after the close delimiter: the epilogue */
}

/* The boundary p would use as a multipart, or NULL. */
static const char *own_boundary(struct pctx *c, struct imap_msg_part *p)
{
	const char *bnd;

	if ((p->flags & IMAP_MSG_PART_MULTIPART) == 0)
		return NULL;
	/* An empty boundary is not valid MIME (RFC 2046 5.1.1: 1 to 70 characters);
	 * Dovecot uses it anyway, and then every "--" line is a delimiter. So do we. */
	bnd = param_get(p->params, p->nparams, "boundary");
	if (bnd == NULL)
		return NULL;
	if (strlen(bnd) > IMAP_MSG_BOUNDARY_MAX) {
		/* cut, as Dovecot does; prefix matching makes that harmless */
		bnd = arena_strdup_nul(&c->m->arena, (const uint8_t *)bnd,
		    IMAP_MSG_BOUNDARY_MAX);
		if (bnd == NULL)
			c->err = -ENOMEM;
	}
	return bnd;
}

static void parse_part(struct pctx *c, struct imap_msg_part *p, size_t pos)
{
	size_t q = pos, blank = 0;
	bool cut_by_boundary = false;
	const char *bnd;

	/* the header: lines up to an empty line, or to a boundary line (then the line
	 * break before the boundary belongs to the boundary) */
	p->hdr_off = pos;
	c->scan_start = pos;
	c->hdr_cut = false;
	for (;;) {
		const uint8_t *lf;

		if (q >= c->len) {
			p->hdr_len = c->len - pos;
			p->body_off = c->len;
			break;
		}
		if (c->d[q] == '\n' || (c->d[q] == '\r' && q + 1 < c->len && c->d[q + 1] == '\n')) {
			blank = q;
			p->body_off = q + (c->d[q] == '\n' ? 1 : 2);
			p->hdr_len = p->body_off - pos;
			break;
		}
		if (c->nb > 0 && c->d[q] == '-' && boundary_at(c, q)) {
			cut_by_boundary = true;
			p->hdr_len = content_end(c, pos) - pos;
			p->body_off = pos + p->hdr_len;
			c->hdr_cut = true;
			break;
		}
		lf = memchr(c->d + q, '\n', c->len - q);
		q = lf == NULL ? c->len : (size_t)(lf - c->d) + 1;
	}
	analyse_header(c->m, p, &c->err);
	if (c->err != 0)
		return;
	bnd = own_boundary(c, p);
	if (c->err != 0)
		return;

	/* An empty line directly followed by an enclosing boundary line: that line
	 * break is the one before the boundary, so the header ends before it (Dovecot
	 * gives it to the enclosing part). The part's own boundary does not count. */
	if (!cut_by_boundary && p->body_off > blank && c->nb > 0 && p->body_off < c->len &&
	    c->d[p->body_off] == '-') {
		uint32_t saved = c->nb;
		int own = -1;

		if (bnd != NULL && c->nb <= IMAP_MSG_MAX_DEPTH_CAP) {
			c->b[c->nb].s = (const uint8_t *)bnd;
			c->b[c->nb].len = strlen(bnd);
			own = (int)c->nb++;
		}
		if (boundary_at(c, p->body_off) && c->hit != own) {
			cut_by_boundary = true;
			c->scan_start = p->body_off;
			p->body_off = blank;
			p->hdr_len = blank - pos;
			c->hdr_cut = true;
		}
		c->nb = saved;
	}

	if (cut_by_boundary) {
		/* no body; a message part still gets its (empty) message, like Dovecot */
		p->body_len = 0;
		if ((p->flags & IMAP_MSG_PART_MESSAGE) != 0 && may_nest(c, p)) {
			struct imap_msg_part *child = new_part(c, p, &p->children);

			if (child == NULL)
				return;
			child->flags |= IMAP_MSG_PART_MSG_ROOT | IMAP_MSG_PART_TEXT;
			child->hdr_off = child->body_off = p->body_off;
		} else {
			demote_message(p);
		}
		return;
	}

	if (bnd != NULL && may_nest(c, p)) {
		p->boundary = bnd;
		parse_multipart(c, p);
	} else if ((p->flags & IMAP_MSG_PART_MESSAGE) != 0 && may_nest(c, p)) {
		struct imap_msg_part *child = new_part(c, p, &p->children);

		if (child == NULL)
			return;
		child->flags |= IMAP_MSG_PART_MSG_ROOT;
		parse_part(c, child, p->body_off);
	} else {
		if (bnd != NULL) {
			/* a multipart too deep to descend into: an opaque part */
			p->flags &= ~(IMAP_MSG_PART_MULTIPART | IMAP_MSG_PART_DIGEST);
		}
		demote_message(p);
		scan(c, p->body_off);
	}
	if (c->err != 0)
		return;
	p->body_len = content_end(c, p->body_off) - p->body_off;
	if ((p->flags & (IMAP_MSG_PART_TEXT | IMAP_MSG_PART_MESSAGE)) != 0)
		p->body_lines = count_lf(c->d + p->body_off, p->body_len);
}

static uint32_t message_flags(const uint8_t *d, size_t len, const struct imap_msg_part *root)
{
	uint32_t f = 0;
	const uint8_t *p = d, *end = d + len;

	if (len > 0 && memchr(d, '\0', len) != NULL)
		f |= IMAP_MSG_F_HAS_NUL;
	while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		if (p == d || p[-1] != '\r') {
			f |= IMAP_MSG_F_BARE_LF;
			break;
		}
		p++;
	}
	for (size_t i = 0; i < root->hdr_len; i++) {
		if (d[root->hdr_off + i] >= 0x80) {
			f |= IMAP_MSG_F_8BIT_HEADER;
			break;
		}
	}
	return f;
}

int imap_msg_parse(const uint8_t *msg, size_t len, const struct imap_msg_limits *lim,
    struct imap_msg **out)
{
	struct imap_msg *m;
	struct pctx *c;
	int r;

	if (out == NULL || (msg == NULL && len > 0))
		return -EINVAL;
	*out = NULL;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return -ENOMEM;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		free(m);
		return -ENOMEM;
	}
	if (lim != NULL)
		m->lim = *lim;
	else
		imap_msg_limits_default(&m->lim);
	if (m->lim.max_parts == 0)
		m->lim.max_parts = 1;
	if (m->lim.max_parts > IMAP_MSG_MAX_PARTS_CAP)
		m->lim.max_parts = IMAP_MSG_MAX_PARTS_CAP;
	if (m->lim.max_depth > IMAP_MSG_MAX_DEPTH_CAP)
		m->lim.max_depth = IMAP_MSG_MAX_DEPTH_CAP;
	m->data = msg != NULL ? msg : (const uint8_t *)"";
	m->len = len;

	c->m = m;
	c->d = m->data;
	c->len = len;
	m->root = new_part(c, NULL, NULL);
	if (m->root != NULL) {
		m->root->flags |= IMAP_MSG_PART_MSG_ROOT;
		parse_part(c, m->root, 0);
	}
	r = c->err;
	free(c);
	if (r != 0) {
		imap_msg_free(&m);
		return r;
	}
	m->flags |= message_flags(m->data, len, m->root);
	*out = m;
	return 0;
}

void imap_msg_free(struct imap_msg **mp)
{
	if (mp == NULL || *mp == NULL)
		return;
	arena_free(&(*mp)->arena);
	free(*mp);
	*mp = NULL;
}

const struct imap_msg_part *imap_msg_root(const struct imap_msg *m)
{
	return m->root;
}

uint32_t imap_msg_flags(const struct imap_msg *m)
{
	return m->flags;
}

uint32_t imap_msg_part_count(const struct imap_msg *m)
{
	return m->nparts;
}

const uint8_t *imap_msg_data(const struct imap_msg *m)
{
	return m->data;
}

size_t imap_msg_size(const struct imap_msg *m)
{
	return m->len;
}

const struct imap_msg_part *imap_msg_part_next(const struct imap_msg_part *p)
{
	if (p->children != NULL)
		return p->children;
	while (p != NULL) {
		if (p->next != NULL)
			return p->next;
		p = p->parent;
	}
	return NULL;
}

const struct imap_msg_part *imap_msg_find_part(const struct imap_msg *m,
    const uint32_t *path, size_t depth)
{
	const struct imap_msg_part *p = m->root;

	/* RFC 9051 section 6.4.5, with Dovecot's reading of the corner cases: in a part
	 * that is not multipart only "1" exists (the part itself), and a path can go on
	 * from there only into a message/rfc822 part's encapsulated message. */
	for (size_t i = 0; i < depth && p != NULL; i++) {
		uint32_t n = path[i];
		bool more = i + 1 < depth;

		if (n == 0)
			return NULL;
		if ((p->flags & IMAP_MSG_PART_MULTIPART) != 0) {
			p = p->children;
			while (p != NULL && --n > 0)
				p = p->next;
		} else if (n != 1 || (more && (p->flags & IMAP_MSG_PART_MESSAGE) == 0)) {
			p = NULL;
		}
		if (p != NULL && more && (p->flags & IMAP_MSG_PART_MESSAGE) != 0)
			p = p->children;
	}
	return p;
}

int imap_msg_part_path(const struct imap_msg_part *p, char *buf, size_t bufsz)
{
	uint32_t nums[IMAP_MSG_MAX_DEPTH_CAP + 2];
	size_t n = 0, len = 0;

	if (bufsz == 0)
		return -E2BIG;
	/* The inverse of imap_msg_find_part(). Walking up: an encapsulated message
	 * that is not multipart is "1" below its message part; a multipart one has no
	 * number of its own (its parts are numbered directly below the message part). */
	for (; p != NULL && p->parent != NULL; p = p->parent) {
		uint32_t v = p->index;

		if ((p->parent->flags & IMAP_MSG_PART_MESSAGE) != 0) {
			if ((p->flags & IMAP_MSG_PART_MULTIPART) != 0)
				continue;
			v = 1;
		}
		if (n < sizeof(nums) / sizeof(nums[0]))
			nums[n++] = v;
	}
	buf[0] = '\0';
	while (n > 0) {
		char tmp[16];
		size_t tl = 0;
		uint32_t v = nums[--n];

		do {
			tmp[tl++] = (char)('0' + v % 10);
			v /= 10;
		} while (v != 0);
		if (len + tl + 2 > bufsz)
			return -E2BIG;
		if (len > 0)
			buf[len++] = '.';
		while (tl > 0)
			buf[len++] = tmp[--tl];
		buf[len] = '\0';
	}
	return (int)len;
}

const struct imap_msg_part *msg_header_part(const struct imap_msg *m,
    const struct imap_msg_part *part)
{
	if (part == NULL)
		return m->root;
	if ((part->flags & IMAP_MSG_PART_MESSAGE) != 0)
		return part->children;
	if ((part->flags & IMAP_MSG_PART_MSG_ROOT) != 0)
		return part;
	return NULL;
}
