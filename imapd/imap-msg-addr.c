/* imap-msg-addr: RFC 5322 section 3.4 address lists as IMAP address structures, and
 * the ENVELOPE (RFC 9051 section 7.5.2).
 *
 * The parser is a recursive-descent reading of address-list with the obsolete forms
 * of RFC 5322 section 4.4 (routes, CFWS around dots, empty list elements) and the
 * recovery rules of Dovecot's message-address.c, so that the same broken headers give
 * the same structures: a missing local part or domain reads MISSING_MAILBOX /
 * MISSING_DOMAIN, a bad route INVALID_ROUTE, an unterminated <...> SYNTAX_ERROR, a
 * comment after an addr-spec is its display name, and a bare word list without
 * address is a display name. RFC 9051 formal syntax: addr-mailbox is the local-part
 * "after removing RFC 5322 quoting", so quoted local parts lose their quotes. */
#include <errno.h>
#include <string.h>
#include "imap-msg-private.h"

/* Upper bound of address structures per header field (each costs a few bytes of
 * output per byte of input, so this only bounds pathological fields further). */
#define MAX_ADDRESSES 100000u

struct field {
	struct imap_mbuf v;
	bool set;
};

struct addr {
	struct field name, route, mailbox, domain;
	bool invalid;
};

struct actx {
	struct lex l;
	struct imap_mbuf comment;
	struct imap_mbuf str;
	struct imap_mbuf *out;
	struct addr a;
	size_t count;
	bool text;		/* addr_write_search(): text, not IMAP structures */
	bool group_open;	/* text: just after "group:" (no ", " before the next) */
};

static void field_set(struct field *f, const uint8_t *p, size_t n)
{
	imap_mbuf_reset(&f->v);
	imap_mbuf_put(&f->v, p, n);
	f->set = true;
}

static void field_set_str(struct field *f, const char *s)
{
	field_set(f, (const uint8_t *)s, strlen(s));
}

static void field_clear(struct field *f)
{
	imap_mbuf_reset(&f->v);
	f->set = false;
}

static void addr_clear(struct addr *a)
{
	field_clear(&a->name);
	field_clear(&a->route);
	field_clear(&a->mailbox);
	field_clear(&a->domain);
	a->invalid = false;
}

static const char *fstr(const struct field *f)
{
	return f->v.d != NULL ? (const char *)f->v.d : "";
}

static void put_field(struct imap_mbuf *out, const struct field *f, bool human)
{
	if (!f->set)
		imap_mbuf_put(out, "NIL", 3);
	else if (human)
		imap_mbuf_put_nstring_human(out, fstr(f), f->v.len);
	else
		imap_mbuf_put_nstring_nolf(out, fstr(f), f->v.len);
}

/* Text form of the current address, the way Dovecot's message_address_write() gives
 * it to its header search: "name <route:mailbox@host>", "mailbox@host", "group:" and
 * ";", joined by ", "; display names RFC 2047 decoded. */
static void emit_text(struct actx *c)
{
	struct imap_mbuf *o = c->out;
	const struct addr *a = &c->a;
	bool start = !a->name.set && !a->route.set && a->mailbox.set && !a->domain.set;
	bool end = !a->name.set && !a->route.set && !a->mailbox.set && !a->domain.set;

	if (c->count > 0 && !c->group_open && !end)
		imap_mbuf_put(o, ", ", 2);
	c->group_open = false;
	if (end) {
		imap_mbuf_putc(o, ';');
	} else if (start) {
		(void)imap_msg_decode_header(fstr(&a->mailbox), a->mailbox.v.len, o);
		imap_mbuf_putc(o, ':');
		c->group_open = true;
	} else {
		bool angle = (a->name.set && a->name.v.len > 0) || a->route.set;
		bool spec = a->mailbox.set || (a->domain.set && a->domain.v.len > 0);

		if (a->name.set && a->name.v.len > 0) {
			(void)imap_msg_decode_header(fstr(&a->name), a->name.v.len, o);
			if (spec)
				imap_mbuf_putc(o, ' ');
		}
		if (spec) {
			if (angle)
				imap_mbuf_putc(o, '<');
			if (a->route.set) {
				imap_mbuf_put(o, a->route.v.d, a->route.v.len);
				imap_mbuf_putc(o, ':');
			}
			imap_mbuf_put(o, a->mailbox.v.d, a->mailbox.v.len);
			if (a->domain.set && a->domain.v.len > 0) {
				imap_mbuf_putc(o, '@');
				imap_mbuf_put(o, a->domain.v.d, a->domain.v.len);
			}
			if (angle)
				imap_mbuf_putc(o, '>');
		}
	}
	c->count++;
	addr_clear(&c->a);
}

/* Writes the current address as (name route mailbox host) and clears it. */
static void emit(struct actx *c)
{
	struct imap_mbuf *o = c->out;

	if (c->text) {
		emit_text(c);
		return;
	}

	imap_mbuf_putc(o, '(');
	put_field(o, &c->a.name, true);
	imap_mbuf_putc(o, ' ');
	put_field(o, &c->a.route, false);
	imap_mbuf_putc(o, ' ');
	put_field(o, &c->a.mailbox, false);
	imap_mbuf_putc(o, ' ');
	put_field(o, &c->a.domain, false);
	imap_mbuf_putc(o, ')');
	c->count++;
	addr_clear(&c->a);
}

static void emit_fixed(struct actx *c)
{
	if (!c->a.mailbox.set) {
		field_set_str(&c->a.mailbox, "MISSING_MAILBOX");
		c->a.invalid = true;
	}
	if (!c->a.domain.set || c->a.domain.v.len == 0) {
		field_set_str(&c->a.domain, "MISSING_DOMAIN");
		c->a.invalid = true;
	}
	emit(c);
}

static int local_part(struct actx *c)
{
	int r;

	/* local-part = dot-atom / quoted-string / obs-local-part */
	imap_mbuf_reset(&c->str);
	if (*c->l.p == '"')
		r = lex_quoted(&c->l, &c->str);
	else
		r = lex_local_part_atom(&c->l, &c->str);
	if (r < 0)
		return -1;
	field_set(&c->a.mailbox, c->str.d, c->str.len);
	return r;
}

static int domain(struct actx *c)
{
	int r;

	imap_mbuf_reset(&c->str);
	if ((r = lex_domain(&c->l, &c->str)) < 0)
		return -1;
	field_set(&c->a.domain, c->str.d, c->str.len);
	return r;
}

static int domain_list(struct actx *c)
{
	int r;

	/* obs-domain-list = "@" domain *(*(CFWS / ",") [CFWS] "@" domain) */
	imap_mbuf_reset(&c->str);
	for (;;) {
		if (c->l.p >= c->l.end)
			return 0;
		if (*c->l.p != '@')
			break;
		if (c->str.len > 0)
			imap_mbuf_putc(&c->str, ',');
		imap_mbuf_putc(&c->str, '@');
		if ((r = lex_domain(&c->l, &c->str)) <= 0)
			return r;
		while (lex_skip_cfws(&c->l) > 0 && *c->l.p == ',')
			c->l.p++;
	}
	field_set(&c->a.route, c->str.d, c->str.len);
	return 1;
}

static int angle_addr(struct actx *c)
{
	/* angle-addr = "<" [obs-route] addr-spec ">"; "<>" is let through */
	c->l.p++;
	if (lex_skip_cfws(&c->l) <= 0)
		return -1;
	if (*c->l.p == '@') {
		if (domain_list(c) > 0 && *c->l.p == ':') {
			c->l.p++;
		} else {
			field_set_str(&c->a.route, "INVALID_ROUTE");
			if (c->l.p >= c->l.end)
				return -1;
		}
		if (lex_skip_cfws(&c->l) <= 0)
			return -1;
	}
	if (*c->l.p != '>') {
		if (local_part(c) <= 0)
			return -1;
		if (*c->l.p == '@' && domain(c) <= 0)
			return -1;
	}
	if (*c->l.p != '>')
		return -1;
	c->l.p++;
	return lex_skip_cfws(&c->l);
}

static int name_addr(struct actx *c)
{
	/* name-addr = [display-name] angle-addr */
	imap_mbuf_reset(&c->str);
	if (lex_phrase(&c->l, &c->str) <= 0 || *c->l.p != '<')
		return -1;
	if (c->str.len > 0)
		field_set(&c->a.name, c->str.d, c->str.len);
	if (angle_addr(c) < 0) {
		field_set_str(&c->a.domain, "SYNTAX_ERROR");
		c->a.invalid = true;
	}
	return c->l.p < c->l.end ? 1 : 0;
}

static int addr_spec(struct actx *c)
{
	int r, r2 = -2;
	bool quoted = *c->l.p == '"';

	imap_mbuf_reset(&c->comment);
	r = local_part(c);
	if (r <= 0)
		c->a.invalid = true;
	if (r != 0 && c->l.p < c->l.end && *c->l.p == '@') {
		r2 = domain(c);
		if (r2 <= 0)
			r = r2;
	}
	if (c->comment.len > 0) {
		/* "user@host (Real Name)": the comment names the mailbox */
		field_set(&c->a.name, c->comment.d, c->comment.len);
	} else if (r2 == -2) {
		/* "user" without @host: a mailbox if that is all, but with more words it
		 * is a display name without an address */
		size_t before;

		imap_mbuf_putc(&c->str, ' ');
		before = c->str.len;
		(void)lex_phrase(&c->l, &c->str);
		if (c->str.len != before) {
			field_clear(&c->a.mailbox);
			field_set(&c->a.name, c->str.d, c->str.len);
		} else if (!quoted) {
			field_set(&c->a.domain, NULL, 0);
		}
		c->a.invalid = true;
		r = -1;
	}
	return r;
}

static int mailbox(struct actx *c)
{
	const uint8_t *start = c->l.p;
	int r;

	/* mailbox = name-addr / addr-spec */
	if ((r = name_addr(c)) < 0) {
		addr_clear(&c->a);
		c->l.p = start;
		r = addr_spec(c);
		if (c->a.invalid && !c->a.name.set && c->a.mailbox.set && !c->a.domain.set) {
			/* a lone quoted word: a name, not a mailbox */
			field_set(&c->a.name, c->a.mailbox.v.d, c->a.mailbox.v.len);
			field_clear(&c->a.mailbox);
		}
	}
	if (r < 0)
		c->a.invalid = true;
	emit_fixed(c);
	return r;
}

static int group(struct actx *c)
{
	int r;

	/* group = display-name ":" [group-list] ";" [CFWS] */
	imap_mbuf_reset(&c->str);
	if (lex_phrase(&c->l, &c->str) <= 0 || *c->l.p != ':')
		return -1;
	/* from here on it is a group, whatever follows */
	c->l.p++;
	r = lex_skip_cfws(&c->l);
	addr_clear(&c->a);
	field_set(&c->a.mailbox, c->str.d, c->str.len);
	emit(c);	/* start of group: (NIL NIL "name" NIL) */
	if (r > 0 && *c->l.p != ';') {
		for (;;) {
			(void)mailbox(c);
			if (c->l.p >= c->l.end || *c->l.p != ',')
				break;
			c->l.p++;
			if (lex_skip_cfws(&c->l) <= 0) {
				r = -1;
				break;
			}
		}
	}
	if (r >= 0) {
		if (c->l.p >= c->l.end || *c->l.p != ';') {
			r = -1;
		} else {
			c->l.p++;
			r = lex_skip_cfws(&c->l);
		}
	}
	addr_clear(&c->a);
	emit(c);	/* end of group: (NIL NIL NIL NIL) */
	return r == 0 ? 0 : 1;
}

static int address(struct actx *c)
{
	const uint8_t *start = c->l.p;
	int r;

	/* address = mailbox / group */
	if ((r = group(c)) < 0) {
		c->l.p = start;
		addr_clear(&c->a);
		r = mailbox(c);
	}
	return r;
}

static size_t addr_write(struct imap_mbuf *out, const uint8_t *s, size_t n, bool text)
{
	struct actx c;
	unsigned max = MAX_ADDRESSES;
	int r;

	memset(&c, 0, sizeof(c));
	c.text = text;
	imap_mbuf_init(&c.comment, out->max);
	imap_mbuf_init(&c.str, out->max);
	imap_mbuf_init(&c.a.name.v, out->max);
	imap_mbuf_init(&c.a.route.v, out->max);
	imap_mbuf_init(&c.a.mailbox.v, out->max);
	imap_mbuf_init(&c.a.domain.v, out->max);
	c.out = out;
	lex_init(&c.l, s, n, &c.comment);

	/* address-list = (address *("," address)) / obs-addr-list */
	if (lex_skip_cfws(&c.l) > 0) {
		while (max-- > 0 && out->err == 0) {
			if ((r = address(&c)) == 0)
				break;
			if (c.l.p >= c.l.end || *c.l.p != ',')
				break;
			c.l.p++;
			if ((r = lex_skip_cfws(&c.l)) <= 0) {
				if (r < 0)
					emit_fixed(&c);	/* ends in garbage */
				break;
			}
		}
	}
	if (out->err == 0) {
		int e = c.comment.err ? c.comment.err : c.str.err ? c.str.err :
		    c.a.name.v.err ? c.a.name.v.err : c.a.route.v.err ? c.a.route.v.err :
		    c.a.mailbox.v.err ? c.a.mailbox.v.err : c.a.domain.v.err;
		if (e != 0)
			out->err = e;
	}
	imap_mbuf_release(&c.comment);
	imap_mbuf_release(&c.str);
	imap_mbuf_release(&c.a.name.v);
	imap_mbuf_release(&c.a.route.v);
	imap_mbuf_release(&c.a.mailbox.v);
	imap_mbuf_release(&c.a.domain.v);
	return c.count;
}

size_t addr_write_list(struct imap_mbuf *out, const uint8_t *s, size_t n)
{
	return addr_write(out, s, n, false);
}

size_t addr_write_search(struct imap_mbuf *out, const uint8_t *s, size_t n)
{
	return addr_write(out, s, n, true);
}

/* ---- ENVELOPE -------------------------------------------------------------------- */

enum env_field {
	ENV_DATE, ENV_SUBJECT, ENV_FROM, ENV_SENDER, ENV_REPLY_TO, ENV_TO, ENV_CC,
	ENV_BCC, ENV_IN_REPLY_TO, ENV_MESSAGE_ID, ENV_COUNT
};

static const char *const env_names[ENV_COUNT] = {
	"date", "subject", "from", "sender", "reply-to", "to", "cc", "bcc",
	"in-reply-to", "message-id",
};

static bool env_is_addr(enum env_field f)
{
	return f >= ENV_FROM && f <= ENV_BCC;
}

int imap_msg_envelope(const struct imap_msg *m, const struct imap_msg_part *part,
    struct imap_mbuf *out)
{
	const struct imap_msg_part *hp = msg_header_part(m, part);
	struct imap_mbuf lists[ENV_COUNT];
	size_t counts[ENV_COUNT] = { 0 };
	struct hdr_field last[ENV_COUNT];
	bool have[ENV_COUNT] = { false };
	struct hdr_iter it;
	struct hdr_field f;
	int r = 0;

	if (hp == NULL || out == NULL)
		return -EINVAL;
	for (int i = 0; i < ENV_COUNT; i++)
		imap_mbuf_init(&lists[i], out->max);
	hdr_iter_init(&it, m, hp);
	while (hdr_iter_next(&it, &f)) {
		if (!f.has_colon)
			continue;
		for (int i = 0; i < ENV_COUNT; i++) {
			if (!ascii_ieq(f.name, f.name_len, env_names[i]))
				continue;
			if (env_is_addr((enum env_field)i)) {
				/* several fields of a kind add up (Dovecot) */
				counts[i] += addr_write_list(&lists[i], f.value, f.value_len);
			} else {
				/* the last one wins (Dovecot) */
				last[i] = f;
				have[i] = true;
			}
			break;
		}
	}
	imap_mbuf_putc(out, '(');
	for (int i = 0; i < ENV_COUNT; i++) {
		int src = i;

		if (i > 0)
			imap_mbuf_putc(out, ' ');
		if (!env_is_addr((enum env_field)i)) {
			if (!have[i])
				imap_mbuf_put(out, "NIL", 3);
			else if (i == ENV_SUBJECT)
				imap_mbuf_put_nstring_human(out, (const char *)last[i].value,
				    last[i].value_len);
			else
				imap_mbuf_put_nstring_nolf(out, (const char *)last[i].value,
				    last[i].value_len);
			continue;
		}
		/* RFC 9051 7.5.2: absent or empty Sender and Reply-To are From */
		if ((i == ENV_SENDER || i == ENV_REPLY_TO) && counts[i] == 0)
			src = ENV_FROM;
		if (lists[src].err != 0 && r == 0)
			r = lists[src].err;
		if (counts[src] == 0) {
			imap_mbuf_put(out, "NIL", 3);
		} else {
			imap_mbuf_putc(out, '(');
			imap_mbuf_put(out, lists[src].d, lists[src].len);
			imap_mbuf_putc(out, ')');
		}
	}
	imap_mbuf_putc(out, ')');
	for (int i = 0; i < ENV_COUNT; i++)
		imap_mbuf_release(&lists[i]);
	return r != 0 ? r : out->err;
}
