/* Fuzz the argument parsers of imap-args over commands produced by the real parser.
 * Byte 0 picks options (UTF8=ACCEPT mode, the "*" value, the LIST delimiter); the rest
 * is a client byte stream (non-synchronizing literals arrive inline). Every command is
 * offered to every argument parser, and round trips are checked:
 *   modified UTF-7 -> UTF-8 -> modified UTF-7 gives back the input (one encoding per
 *   name); UTF-8 -> modified UTF-7 -> UTF-8 likewise; a sequence set formats and
 *   re-parses to the same text, and normalizing keeps membership; a date-time formats
 *   and re-parses to the same instant; a string written with imap_write_astring and
 *   parsed again by imap-parser gives back the same bytes. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "imap-args.h"
#include "imap-parser.h"

struct opts {
	bool utf8;
	uint32_t star;
	char delim;
};

static void check_seqset(const struct imap_arg *a, const struct opts *o)
{
	struct imap_seqset *set = NULL, *again = NULL;
	struct imap_buf *b = NULL;
	struct imap_seqset_iter it;
	uint32_t n;
	int count = 0;

	if (imap_arg_seqset(a, &set, NULL) != 0)
		return;
	if (imap_buf_new(1 << 16, &b) != 0)
		abort();
	if (set->saved || set->n > 0) {
		if (imap_seqset_format(set, b) != 0)
			abort();
		if (imap_seqset_parse(b->data, b->len, &again, NULL) != 0 || again->n != set->n ||
		    again->saved != set->saved)
			abort();
		for (size_t i = 0; i < set->n; i++)
			if (again->r[i].lo != set->r[i].lo || again->r[i].hi != set->r[i].hi)
				abort();
		imap_seqset_free(&again);
	}
	if (!set->saved) {
		/* every iterated value is contained, before and after normalizing */
		imap_seqset_iter_init(&it, set, o->star);
		while (count < 300 && imap_seqset_iter_next(&it, &n)) {
			if (n == 0 || !imap_seqset_contains(set, n, o->star))
				abort();
			count++;
		}
		if (imap_seqset_normalize(set, o->star) != 0)
			abort();
		for (size_t i = 0; i < set->n; i++) {
			if (set->r[i].lo == 0 || set->r[i].lo > set->r[i].hi)
				abort();
			if (i > 0 && (uint64_t)set->r[i - 1].hi + 1 >= set->r[i].lo)
				abort();
			if (!imap_seqset_contains(set, set->r[i].lo, 0) ||
			    !imap_seqset_contains(set, set->r[i].hi, 0))
				abort();
			if (set->r[i].lo > 1 && imap_seqset_contains(set, set->r[i].lo - 1, 0) &&
			    (i == 0 || set->r[i - 1].hi != set->r[i].lo - 1))
				abort();
		}
		imap_buf_reset(b);
		if (set->n > 0 && imap_seqset_format(set, b) != 0)
			abort();
	}
	imap_buf_free(&b);
	imap_seqset_free(&set);
}

static void check_string(const char *s, size_t len, const struct opts *o)
{
	struct imap_buf *b = NULL, *c = NULL;
	struct imap_date d;
	time_t t, t2;
	int tz, tz2;
	char dt[IMAP_DATETIME_LEN + 1];
	char *name = NULL;

	if (imap_buf_new(8192, &b) != 0 || imap_buf_new(8192, &c) != 0)
		abort();
	/* modified UTF-7 is canonical */
	if (imap_mutf7_to_utf8(s, len, b, NULL) == 0) {
		if (!imap_utf8_valid(b->data, b->len))
			abort();
		if (imap_utf8_to_mutf7(b->data, b->len, c, NULL) != 0 || c->len != len ||
		    memcmp(c->data, s, len) != 0)
			abort();
	}
	imap_buf_reset(b);
	imap_buf_reset(c);
	if (imap_utf8_valid(s, len) && memchr(s, 0, len) == NULL) {
		if (imap_utf8_to_mutf7(s, len, b, NULL) == 0) {
			if (imap_mutf7_to_utf8(b->data, b->len, c, NULL) != 0 || c->len != len ||
			    memcmp(c->data, s, len) != 0)
				abort();
		}
	}
	if (imap_mailbox_decode(s, len, o->utf8, &name, NULL) == 0) {
		if (name == NULL || !imap_utf8_valid(name, strlen(name)))
			abort();
		imap_buf_reset(b);
		(void)imap_write_mailbox(b, name, strlen(name), o->utf8);
		free(name);
	}
	(void)imap_date_parse(s, len, &d, NULL);
	if (imap_datetime_parse(s, len, &t, &tz, NULL) == 0) {
		if (imap_datetime_format(t, tz, dt) == 0) {
			if (imap_datetime_parse(dt, strlen(dt), &t2, &tz2, NULL) != 0 || t2 != t ||
			    tz2 != tz)
				abort();
		}
	}
	/* what we write, the parser reads back unchanged */
	imap_buf_reset(b);
	if (imap_buf_add(b, "x X ", 4) == 0 &&
	    imap_write_astring(b, s, len, o->utf8 ? IMAP_WRITE_UTF8 : 0) == 0 &&
	    imap_buf_add(b, "\r\n", 2) == 0) {
		struct imap_parser_limits lim;
		struct imap_parser *p = NULL;
		struct imap_cmd *cmd = NULL;
		size_t used = 0, off = 0;
		int r;

		imap_parser_limits_default(&lim);
		if (imap_parser_new(&lim, &p) != 0)
			abort();
		do {
			r = imap_parser_feed(p, (const uint8_t *)b->data + off, b->len - off, &used,
			    &cmd);
			off += used;
		} while (r == IMAP_PARSE_CONTINUE);
		if (r != 1 || cmd->nargs != 1 || cmd->args[0].len != len ||
		    memcmp(cmd->args[0].str, s, len) != 0)
			abort();
		imap_cmd_free(&cmd);
		imap_parser_free(&p);
	}
	imap_buf_free(&b);
	imap_buf_free(&c);
}

static void check_arg(const struct imap_arg *a, const struct opts *o)
{
	const char *s;
	size_t len;
	unsigned items;
	struct imap_flags f;

	if (a->type == IMAP_ARG_LIST) {
		(void)imap_status_items_parse(a, &items, NULL);
		if (imap_flags_parse(a->list, a->list_n, &f, NULL) == 0)
			imap_flags_clear(&f);
		return;
	}
	if (a->type == IMAP_ARG_ATOM)
		check_seqset(a, o);
	if (a->type != IMAP_ARG_LITERAL8)
		check_string(a->str, a->len, o);
	if (imap_arg_astring(a, &s, &len, NULL) == 0) {
		char *name = NULL;

		if (imap_arg_mailbox(a, o->utf8, &name, NULL) == 0)
			free(name);
	}
}

static void check_cmd(const struct imap_cmd *cmd, const struct opts *o)
{
	const struct imap_arg *args = cmd->args;
	size_t n = cmd->nargs;
	struct imap_fetch *fe = NULL;
	struct imap_store *st = NULL;
	struct imap_search *se = NULL;
	struct imap_list_args *li = NULL;
	struct imap_select_params *sp = NULL;
	struct imap_append *ap = NULL;
	const char *err = NULL;
	int r;

	if ((r = imap_fetch_parse(args, n, &fe, &err)) == 0) {
		for (size_t i = 0; i < fe->nsections; i++)
			if (fe->sections[i].label == NULL || fe->sections[i].nparts >
			    IMAP_SECTION_MAX_PARTS)
				abort();
	} else if (fe != NULL || (r == -EPROTO && err == NULL)) {
		abort();
	}
	imap_fetch_free(&fe);
	err = NULL;
	if ((r = imap_store_parse(args, n, &st, &err)) != 0 && (st != NULL ||
	    (r == -EPROTO && err == NULL)))
		abort();
	imap_store_free(&st);
	err = NULL;
	if ((r = imap_search_parse(args, n, &se, &err)) == 0) {
		if (se->root == NULL || se->nkeys > IMAP_SEARCH_MAX_KEYS)
			abort();
	} else if (se != NULL || (r == -EPROTO && err == NULL)) {
		abort();
	}
	imap_search_free(&se);
	err = NULL;
	if ((r = imap_list_parse(args, n, &li, &err)) == 0) {
		if (li->npatterns == 0)
			abort();
		for (size_t i = 0; i < li->npatterns; i++) {
			size_t j = (i + 1) % li->npatterns;

			(void)imap_list_match(li->patterns[i].s, li->patterns[i].len,
			    li->patterns[j].s, li->patterns[j].len, o->delim);
			(void)imap_list_match(li->patterns[i].s, li->patterns[i].len, li->ref,
			    li->ref_len, o->delim);
		}
	} else if (li != NULL || (r == -EPROTO && err == NULL)) {
		abort();
	}
	imap_list_args_free(&li);
	if (n > 0) {
		err = NULL;
		if ((r = imap_select_params_parse(args + 1, n - 1, &sp, &err)) != 0 &&
		    (sp != NULL || (r == -EPROTO && err == NULL)))
			abort();
		imap_select_params_free(&sp);
	}
	err = NULL;
	if ((r = imap_append_parse(args, n, &ap, &err)) == 0) {
		if (ap->nmsgs == 0)
			abort();
	} else if (ap != NULL || (r == -EPROTO && err == NULL)) {
		abort();
	}
	imap_append_free(&ap);
	/* each argument, and the elements of top-level lists */
	for (size_t i = 0; i < n; i++) {
		check_arg(&args[i], o);
		if (args[i].type == IMAP_ARG_LIST)
			for (size_t k = 0; k < args[i].list_n; k++)
				check_arg(&args[i].list[k], o);
	}
	if (n >= 2 && args[0].type != IMAP_ARG_LIST && args[1].type != IMAP_ARG_LIST)
		(void)imap_list_match(args[0].str, args[0].len, args[1].str, args[1].len, o->delim);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imap_parser_limits lim;
	struct imap_parser *p = NULL;
	struct opts o;
	size_t pos = 1;

	if (size < 1)
		return 0;
	o.utf8 = data[0] & 1;
	o.star = (data[0] & 2) ? 0 : (uint32_t)(data[0] >> 2) * 3;
	o.delim = (data[0] & 0x80) ? 0 : '/';
	imap_parser_limits_default(&lim);
	lim.max_line = 8192;
	lim.max_literal = lim.max_literal_total = 8192;
	lim.max_args = 512;
	if (imap_parser_new(&lim, &p) != 0)
		abort();
	while (pos < size) {
		struct imap_cmd *cmd = NULL;
		size_t used = 0;
		int r = imap_parser_feed(p, data + pos, size - pos, &used, &cmd);

		pos += used;
		if (r == 1) {
			check_cmd(cmd, &o);
			imap_cmd_free(&cmd);
			continue;
		}
		if (r == 0 || r == IMAP_PARSE_FATAL || r == -ENOMEM)
			break;
		/* CONTINUE (the data follows in the input) or a bad command: go on */
	}
	imap_parser_free(&p);
	return 0;
}
