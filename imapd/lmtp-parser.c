/* lmtp-parser: see lmtp-parser.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "lmtp-parser.h"
#include "compat.h"

void lmtp_parser_init(struct lmtp_parser *p)
{
	memset(p, 0, sizeof(*p));
	p->mode = LMTP_MODE_LINE;
	p->ds = DS_BOL;
}

void lmtp_parser_begin_data(struct lmtp_parser *p)
{
	p->mode = LMTP_MODE_DATA;
	p->ds = DS_BOL;		/* the DATA line's CRLF just ended a line */
}

enum lmtp_mode lmtp_parser_mode(const struct lmtp_parser *p)
{
	return p->mode;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

int lmtp_parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -EPROTO;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EPROTO;
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

static const struct {
	const char *name;
	enum lmtp_verb verb;
} verbs[] = {
	{ "LHLO", LMTP_V_LHLO }, { "HELO", LMTP_V_HELO }, { "EHLO", LMTP_V_EHLO },
	{ "MAIL", LMTP_V_MAIL }, { "RCPT", LMTP_V_RCPT }, { "DATA", LMTP_V_DATA },
	{ "BDAT", LMTP_V_BDAT }, { "RSET", LMTP_V_RSET }, { "NOOP", LMTP_V_NOOP },
	{ "QUIT", LMTP_V_QUIT }, { "VRFY", LMTP_V_VRFY }, { "EXPN", LMTP_V_EXPN },
	{ "HELP", LMTP_V_HELP }, { "STARTTLS", LMTP_V_STARTTLS },
};

/* "SIZE [LAST]" (RFC 3030 2: bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ]). */
static int parse_bdat(char *arg, uint64_t *size, bool *last)
{
	char *sp = arg;

	while (*sp >= '0' && *sp <= '9')
		sp++;
	if (sp == arg || sp - arg > 20)
		return -EPROTO;
	*last = false;
	if (*sp != '\0') {
		char *rest = sp;

		while (is_blank(*rest))
			rest++;
		if (rest == sp || strcasecmp(rest, "LAST") != 0)
			return -EPROTO;
		*last = true;
	}
	char save = *sp;
	*sp = '\0';
	int r = lmtp_parse_u64(arg, size);
	*sp = save;
	return r;
}

/* Splits the finished line (NUL-terminated in p->line, length n) into verb + arg. */
static void parse_line(struct lmtp_parser *p, size_t n, struct lmtp_event *ev)
{
	char *s = p->line, *arg;
	size_t vl = 0;

	ev->type = LMTP_EV_CMD;
	ev->verb = LMTP_V_UNKNOWN;
	ev->arg = "";
	if (memchr(s, '\0', n) != NULL)		/* a NUL cannot be part of a command */
		return;
	while (s[vl] != '\0' && !is_blank(s[vl]))
		vl++;
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strlen(verbs[i].name) == vl && strncasecmp(s, verbs[i].name, vl) == 0) {
			ev->verb = verbs[i].verb;
			break;
		}
	arg = s + vl;
	while (is_blank(*arg))
		arg++;
	size_t al = strlen(arg);
	while (al > 0 && is_blank(arg[al - 1]))
		arg[--al] = '\0';
	ev->arg = arg;
	if (ev->verb == LMTP_V_BDAT) {
		if (parse_bdat(arg, &ev->bdat_size, &ev->bdat_last) < 0) {
			ev->type = LMTP_EV_BAD_BDAT;
			return;
		}
		p->mode = LMTP_MODE_BDAT;
		p->bdat_left = ev->bdat_size;
		p->bdat_end_pending = ev->bdat_size == 0;
	}
}

static int feed_line(struct lmtp_parser *p, const uint8_t *in, size_t len, size_t *used_out,
    struct lmtp_event *ev)
{
	size_t i = 0;

	while (i < len) {
		const uint8_t *nl = memchr(in + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (in + i)) : len - i;

		/* Room for LMTP_LINE_MAX bytes plus the CR of the CRLF. */
		if (!p->overflow) {
			if (p->line_len + n > LMTP_LINE_MAX + 1) {
				p->overflow = true;
			} else {
				memcpy(p->line + p->line_len, in + i, n);
				p->line_len += n;
			}
		}
		i += n;
		if (nl == NULL)
			break;
		i++;	/* the LF */
		*used_out = i;
		if (p->overflow) {
			p->overflow = false;
			p->line_len = 0;
			ev->type = LMTP_EV_LINE_TOO_LONG;
			return 1;
		}
		n = p->line_len;
		if (n > 0 && p->line[n - 1] == '\r')
			n--;
		if (n > LMTP_LINE_MAX) {	/* LMTP_LINE_MAX + 1 bytes without a CR */
			p->line_len = 0;
			ev->type = LMTP_EV_LINE_TOO_LONG;
			return 1;
		}
		p->line[n] = '\0';
		p->line_len = 0;
		parse_line(p, n, ev);
		return 1;
	}
	*used_out = i;
	return 0;
}

/* DATA: removes the dot of dot-stuffed lines and finds the "." line (RFC 5321
 * 4.5.2). Returns maximal runs of message bytes straight from the input. */
static int feed_data(struct lmtp_parser *p, const uint8_t *in, size_t len, size_t *used_out,
    struct lmtp_event *ev)
{
	static const uint8_t cr = '\r';
	size_t i = 0;

	while (i < len) {
		switch (p->ds) {
		case DS_BOL:
			if (in[i] == '.') {
				i++;
				p->ds = DS_DOT;
				continue;
			}
			p->ds = DS_MID;
			continue;
		case DS_DOT:
			if (in[i] == '\r') {
				i++;
				p->ds = DS_DOT_CR;
				continue;
			}
			if (in[i] == '\n') {	/* ".\n": tolerated end of data */
				i++;
				goto end;
			}
			p->ds = DS_MID;	/* the stuffed dot is dropped */
			continue;
		case DS_DOT_CR:
			if (in[i] == '\n') {
				i++;
				goto end;
			}
			/* ".\r" then something else: a line "\r..." that was dot-stuffed.
			 * The CR we held back is message content. */
			p->ds = DS_MID;
			*used_out = i;
			ev->type = LMTP_EV_DATA;
			ev->data = &cr;
			ev->len = 1;
			return 1;
		case DS_MID: {
			size_t start = i;

			for (;;) {
				const uint8_t *nl = memchr(in + i, '\n', len - i);

				if (nl == NULL) {
					i = len;
					break;
				}
				i = (size_t)(nl - in) + 1;
				if (i == len || in[i] == '.') {
					p->ds = DS_BOL;
					break;
				}
			}
			*used_out = i;
			ev->type = LMTP_EV_DATA;
			ev->data = in + start;
			ev->len = i - start;
			return 1;
		}
		}
	}
	*used_out = i;
	return 0;
end:
	*used_out = i;
	p->mode = LMTP_MODE_LINE;
	p->ds = DS_BOL;
	ev->type = LMTP_EV_DATA_END;
	return 1;
}

static int feed_bdat(struct lmtp_parser *p, const uint8_t *in, size_t len, size_t *used_out,
    struct lmtp_event *ev)
{
	if (p->bdat_end_pending) {
		p->bdat_end_pending = false;
		p->mode = LMTP_MODE_LINE;
		*used_out = 0;
		ev->type = LMTP_EV_BDAT_END;
		return 1;
	}
	if (len == 0) {
		*used_out = 0;
		return 0;
	}
	size_t n = p->bdat_left < len ? (size_t)p->bdat_left : len;
	p->bdat_left -= n;
	if (p->bdat_left == 0)
		p->bdat_end_pending = true;
	*used_out = n;
	ev->type = LMTP_EV_DATA;
	ev->data = in;
	ev->len = n;
	return 1;
}

int lmtp_parser_feed(struct lmtp_parser *p, const uint8_t *in, size_t len, size_t *used_out,
    struct lmtp_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->arg = "";
	*used_out = 0;
	switch (p->mode) {
	case LMTP_MODE_LINE:
		return feed_line(p, in, len, used_out, ev);
	case LMTP_MODE_DATA:
		return feed_data(p, in, len, used_out, ev);
	case LMTP_MODE_BDAT:
		return feed_bdat(p, in, len, used_out, ev);
	}
	return 0;
}

/* ---- argument helpers ------------------------------------------------------------ */

int lmtp_parse_path(const char *arg, const char *prefix, char *addr, size_t addrsz,
    const char **params_out)
{
	size_t pl = strlen(prefix), n;
	const char *s = arg, *start, *end;
	bool quoted = false;

	if (strncasecmp(s, prefix, pl) != 0)
		return -EPROTO;
	s += pl;
	while (is_blank(*s))	/* "MAIL FROM: <x>" is common and harmless */
		s++;
	if (*s == '<') {
		start = ++s;
		for (;; s++) {
			if (*s == '\0')
				return -EPROTO;
			if (quoted && *s == '\\' && s[1] != '\0') {
				s++;
				continue;
			}
			if (*s == '"')
				quoted = !quoted;
			else if (!quoted && *s == '>')
				break;
		}
		end = s++;
	} else {
		/* Tolerated: a bare address (some scripts send it). */
		start = s;
		while (*s != '\0' && !is_blank(*s))
			s++;
		end = s;
		if (end == start)
			return -EPROTO;
	}
	if (*s != '\0' && !is_blank(*s))
		return -EPROTO;
	/* A source route "@a,@b:user@d" is accepted and ignored (RFC 5321 4.1.2,
	 * C.). */
	if (start < end && *start == '@') {
		const char *colon = memchr(start, ':', (size_t)(end - start));

		if (colon == NULL)
			return -EPROTO;
		start = colon + 1;
	}
	n = (size_t)(end - start);
	if (n + 2 > LMTP_PATH_MAX || n >= addrsz)
		return -E2BIG;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)start[i];

		if (c < 0x20 || c == 0x7f)
			return -EPROTO;
	}
	memcpy(addr, start, n);
	addr[n] = '\0';
	while (is_blank(*s))
		s++;
	*params_out = s;
	return 0;
}

int lmtp_param_next(const char **pos, char *key, size_t keysz, char *val, size_t valsz)
{
	const char *s = *pos, *k, *v;
	size_t kl, vl = 0;

	while (is_blank(*s))
		s++;
	if (*s == '\0') {
		*pos = s;
		return 0;
	}
	k = s;
	/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") (RFC 5321 4.1.2) */
	while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
	    (*s == '-' && s != k))
		s++;
	kl = (size_t)(s - k);
	if (kl == 0 || (*s != '\0' && *s != '=' && !is_blank(*s)))
		return -EPROTO;
	if (kl >= keysz)
		return -E2BIG;
	v = s;
	if (*s == '=') {
		v = ++s;
		/* esmtp-value = 1*(%d33-60 / %d62-126) */
		while (*s >= 33 && *s <= 126 && *s != '=')
			s++;
		vl = (size_t)(s - v);
		if (vl == 0 || (*s != '\0' && !is_blank(*s)))
			return -EPROTO;
		if (vl >= valsz)
			return -E2BIG;
	}
	memcpy(key, k, kl);
	key[kl] = '\0';
	memcpy(val, v, vl);
	val[vl] = '\0';
	*pos = s;
	return 1;
}
