/* imap-msg-body: BODY and BODYSTRUCTURE (RFC 9051 section 7.5.2).
 *
 * Field by field as Dovecot writes them: type and subtype as written (default
 * "text" "plain"), parameters in header order, a text part without a charset
 * parameter gets ("charset" "us-ascii") (RFC 2045 section 5.2 default), Content-ID /
 * Description / MD5 / Location raw but unfolded, the encoding token as written
 * (default "7bit"). A multipart without any part (no boundary, or no delimiter line)
 * is written with one empty text/plain part, since RFC 9051's body-type-mpart needs
 * at least one. */
#include <string.h>
#include "imap-msg-private.h"

#define EMPTY_BODY "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0"

static void put_str(struct imap_mbuf *b, const char *s)
{
	imap_mbuf_put_nstring_nolf(b, s, s != NULL ? strlen(s) : 0);
}

static void put_params(struct imap_mbuf *b, const struct imap_msg_param *params,
    uint32_t n, bool default_charset)
{
	bool seen_charset = false;

	if (n == 0 && !default_charset) {
		imap_mbuf_put(b, "NIL", 3);
		return;
	}
	imap_mbuf_putc(b, '(');
	for (uint32_t i = 0; i < n; i++) {
		if (i > 0)
			imap_mbuf_putc(b, ' ');
		if (ascii_ieq((const uint8_t *)params[i].name, strlen(params[i].name),
		    "charset"))
			seen_charset = true;
		put_str(b, params[i].name);
		imap_mbuf_putc(b, ' ');
		put_str(b, params[i].value);
	}
	if (default_charset && !seen_charset) {
		if (n > 0)
			imap_mbuf_putc(b, ' ');
		imap_mbuf_puts(b, "\"charset\" \"us-ascii\"");
	}
	imap_mbuf_putc(b, ')');
}

/* body-fld-dsp SP body-fld-lang SP body-fld-loc */
static void put_common_ext(struct imap_mbuf *b, const struct imap_msg_part *p)
{
	imap_mbuf_putc(b, ' ');
	if (p->disposition == NULL) {
		imap_mbuf_put(b, "NIL", 3);
	} else {
		imap_mbuf_putc(b, '(');
		put_str(b, p->disposition);
		imap_mbuf_putc(b, ' ');
		put_params(b, p->disp_params, p->ndisp_params, false);
		imap_mbuf_putc(b, ')');
	}
	imap_mbuf_putc(b, ' ');
	if (p->nlanguages == 0) {
		imap_mbuf_put(b, "NIL", 3);
	} else {
		imap_mbuf_putc(b, '(');
		for (uint32_t i = 0; i < p->nlanguages; i++) {
			if (i > 0)
				imap_mbuf_putc(b, ' ');
			put_str(b, p->languages[i]);
		}
		imap_mbuf_putc(b, ')');
	}
	imap_mbuf_putc(b, ' ');
	put_str(b, p->location);
}

static void put_part(const struct imap_msg *m, const struct imap_msg_part *p,
    bool ext, struct imap_mbuf *b);

static void put_multipart(const struct imap_msg *m, const struct imap_msg_part *p,
    bool ext, struct imap_mbuf *b)
{
	if (p->children == NULL) {
		imap_mbuf_puts(b, EMPTY_BODY);
		imap_mbuf_puts(b, ext ? " NIL NIL NIL NIL)" : ")");
	}
	for (const struct imap_msg_part *c = p->children; c != NULL; c = c->next)
		put_part(m, c, ext, b);
	imap_mbuf_putc(b, ' ');
	put_str(b, p->subtype != NULL ? p->subtype : "");
	if (!ext)
		return;
	imap_mbuf_putc(b, ' ');
	put_params(b, p->params, p->nparams, false);
	put_common_ext(b, p);
}

static void put_single(const struct imap_msg *m, const struct imap_msg_part *p,
    bool ext, struct imap_mbuf *b)
{
	bool text = (p->flags & IMAP_MSG_PART_TEXT) != 0;
	bool message = (p->flags & IMAP_MSG_PART_MESSAGE) != 0;

	if (message) {
		/* Dovecot writes message/rfc822 in lower case whatever the header said */
		bool global = p->subtype != NULL &&
		    ascii_ieq((const uint8_t *)p->subtype, strlen(p->subtype), "global");

		imap_mbuf_puts(b, global ? "\"message\" \"global\"" : "\"message\" \"rfc822\"");
	} else if (p->type == NULL) {
		imap_mbuf_puts(b, "\"text\" \"plain\"");
	} else {
		put_str(b, p->type);
		imap_mbuf_putc(b, ' ');
		put_str(b, p->subtype != NULL ? p->subtype : "");
	}
	imap_mbuf_putc(b, ' ');
	put_params(b, p->params, p->nparams, text);
	imap_mbuf_putc(b, ' ');
	put_str(b, p->id);
	imap_mbuf_putc(b, ' ');
	put_str(b, p->description);
	imap_mbuf_putc(b, ' ');
	put_str(b, p->cte != NULL ? p->cte : "7bit");
	imap_mbuf_putc(b, ' ');
	imap_mbuf_put_u64(b, p->body_len);
	if (text) {
		imap_mbuf_putc(b, ' ');
		imap_mbuf_put_u64(b, p->body_lines);
	} else if (message && p->children != NULL) {
		/* body-type-msg: envelope, body and lines of the encapsulated message */
		imap_mbuf_putc(b, ' ');
		(void)imap_msg_envelope(m, p, b);
		imap_mbuf_putc(b, ' ');
		put_part(m, p->children, ext, b);
		imap_mbuf_putc(b, ' ');
		imap_mbuf_put_u64(b, p->body_lines);
	}
	if (!ext)
		return;
	imap_mbuf_putc(b, ' ');
	put_str(b, p->md5);
	put_common_ext(b, p);
}

static void put_part(const struct imap_msg *m, const struct imap_msg_part *p,
    bool ext, struct imap_mbuf *b)
{
	imap_mbuf_putc(b, '(');
	if ((p->flags & IMAP_MSG_PART_MULTIPART) != 0)
		put_multipart(m, p, ext, b);
	else
		put_single(m, p, ext, b);
	imap_mbuf_putc(b, ')');
}

int imap_msg_bodystructure(const struct imap_msg *m, bool extended, struct imap_mbuf *out)
{
	put_part(m, m->root, extended, out);
	return out->err;
}
