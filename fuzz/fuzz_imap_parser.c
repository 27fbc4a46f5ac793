/* Fuzz imap_parser_feed / imap_parser_feed_line the way a server drives them.
 * Input: byte 0 selects limits and the LITERAL+ mode, byte 1 seeds the read sizes,
 * the rest is the client's byte stream. It is fed in data-chosen pieces; every
 * command is checked for structural sanity and freed. For short inputs the same
 * stream is also fed whole and one byte at a time: the sequence of results must be
 * identical (the parser's central promise). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "imap-parser.h"

#define HASH_INIT 1469598103934665603ull

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

static uint64_t mix_int(uint64_t h, int64_t v)
{
	return mix(h, &v, sizeof(v));
}

/* Walks the argument tree with an explicit stack; aborts on a broken invariant. */
static uint64_t check_args(uint64_t h, const struct imap_arg *args, size_t n)
{
	struct { const struct imap_arg *a; size_t n, i; } st[80];
	int sp = 0;

	st[0].a = args;
	st[0].n = n;
	st[0].i = 0;
	while (sp >= 0) {
		const struct imap_arg *a;

		if (st[sp].i == st[sp].n) {
			h = mix_int(h, -1);
			sp--;
			continue;
		}
		a = &st[sp].a[st[sp].i++];
		h = mix_int(h, a->type);
		switch (a->type) {
		case IMAP_ARG_LIST:
			if (a->str != NULL || (a->list_n > 0) != (a->list != NULL))
				abort();
			if (sp + 1 >= 80)
				abort();	/* deeper than any limit we set */
			sp++;
			st[sp].a = a->list;
			st[sp].n = a->list_n;
			st[sp].i = 0;
			break;
		case IMAP_ARG_ATOM:
		case IMAP_ARG_NIL:
		case IMAP_ARG_QUOTED:
		case IMAP_ARG_LITERAL:
		case IMAP_ARG_LITERAL8:
			if (a->str == NULL || a->str[a->len] != 0 || a->list != NULL)
				abort();
			if (a->type == IMAP_ARG_ATOM && a->len == 0)
				abort();
			if (a->type != IMAP_ARG_LITERAL8 && memchr(a->str, 0, a->len) != NULL)
				abort();
			h = mix(h, a->str, a->len);
			break;
		default:
			abort();
		}
	}
	return h;
}

struct feeder {
	struct imap_parser *p;
	uint64_t hash;		/* of the results, in order */
	bool line_mode;		/* after IDLE / AUTHENTICATE: read one raw line */
	bool dead;
};

/* Feeds in[0..len) to the parser until it needs more; records results. */
static void feed_piece(struct feeder *f, const uint8_t *in, size_t len)
{
	size_t pos = 0;

	while (!f->dead) {
		size_t used = 0;
		int r;

		if (f->line_mode) {
			char *line = NULL;
			size_t llen = 0;

			r = imap_parser_feed_line(f->p, in + pos, len - pos, &used, &line, &llen);
			if (used > len - pos)
				abort();
			pos += used;
			if (r != 0)
				f->hash = mix_int(f->hash, 1000 + r);
			if (r == 1) {
				if (line == NULL || line[llen] != 0)
					abort();
				f->hash = mix(f->hash, line, llen);
				free(line);
				f->line_mode = false;
				continue;
			}
			if (line != NULL)
				abort();
			if (r == 0) {
				if (pos != len)
					abort();
				return;
			}
			f->line_mode = false;
			if (r == IMAP_PARSE_FATAL || r == -ENOMEM)
				f->dead = true;
			continue;
		} else {
			struct imap_cmd *cmd = NULL;

			r = imap_parser_feed(f->p, in + pos, len - pos, &used, &cmd);
			if (used > len - pos)
				abort();
			pos += used;
			if (r != 0)
				f->hash = mix_int(f->hash, r);
			if (r == 1) {
				if (cmd == NULL || cmd->tag == NULL || cmd->name == NULL ||
				    cmd->tag[0] == 0 || cmd->name[0] == 0)
					abort();
				f->hash = mix(f->hash, cmd->tag, strlen(cmd->tag) + 1);
				f->hash = mix(f->hash, cmd->name, strlen(cmd->name) + 1);
				f->hash = check_args(f->hash, cmd->args, cmd->nargs);
				if (strcmp(cmd->name, "IDLE") == 0 ||
				    strcmp(cmd->name, "AUTHENTICATE") == 0)
					f->line_mode = true;
				imap_cmd_free(&cmd);
				if (cmd != NULL)
					abort();
				continue;
			}
			if (cmd != NULL)
				abort();
			if (r == 0) {
				if (pos != len)
					abort();
				return;
			}
			if (r == IMAP_PARSE_CONTINUE) {
				f->hash = mix_int(f->hash,
				    (int64_t)imap_parser_literal_size(f->p));
				/* a server refusing big APPENDs before "+" */
				if (imap_parser_literal_size(f->p) > 100000)
					imap_parser_reset(f->p);
				continue;
			}
			if (r < 0) {
				const char *tag = imap_parser_error_tag(f->p);
				const char *msg = imap_parser_error(f->p);
				uint64_t sz = 0;
				bool big = imap_parser_literal_too_big(f->p, &sz);

				if (msg == NULL)
					abort();
				f->hash = mix(f->hash, msg, strlen(msg));
				if (tag != NULL)
					f->hash = mix(f->hash, tag, strlen(tag) + 1);
				f->hash = mix_int(f->hash, big ? (int64_t)sz : -1);
				if (r == IMAP_PARSE_FATAL || r == -ENOMEM)
					f->dead = true;
				continue;
			}
			abort();	/* unknown return value */
		}
	}
}

static void limits_from(uint8_t sel, struct imap_parser_limits *lim)
{
	if (sel & 0x80) {
		imap_parser_limits_default(lim);
	} else {
		/* small limits so the fuzzer reaches them */
		lim->max_line = 64 + (size_t)(sel & 0x0f) * 32;
		lim->max_literal = (size_t)(sel & 0x30) * 4;
		lim->max_literal_total = lim->max_literal * 2;
		lim->max_args = 8 + (sel & 0x07);
		lim->max_depth = 1 + ((sel >> 3) & 0x03);
	}
	lim->nonsync = (enum imap_nonsync_mode)((sel >> 5) % 3);
}

/* Feeds data at cut points from a small generator; returns the result hash. */
static uint64_t run(const struct imap_parser_limits *lim, const uint8_t *data, size_t size,
    uint32_t seed, int mode)
{
	struct feeder f = { .hash = HASH_INIT };
	size_t pos = 0;

	if (imap_parser_new(lim, &f.p) != 0)
		abort();
	while (pos < size && !f.dead) {
		size_t n;

		if (mode == 0) {
			n = size - pos;		/* whole */
		} else if (mode == 1) {
			n = 1;			/* byte by byte */
		} else {
			seed = seed * 1103515245u + 12345u;
			n = 1 + (seed >> 16) % 97;
			if (n > size - pos)
				n = size - pos;
		}
		feed_piece(&f, data + pos, n);
		pos += n;
	}
	imap_parser_free(&f.p);
	if (f.p != NULL)
		abort();
	return f.hash;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imap_parser_limits lim;
	uint64_t h0, h1, h2;

	if (size < 2)
		return 0;
	limits_from(data[0], &lim);
	h2 = run(&lim, data + 2, size - 2, data[1], 2);
	if (size <= 512) {
		h0 = run(&lim, data + 2, size - 2, 0, 0);
		h1 = run(&lim, data + 2, size - 2, 0, 1);
		if (h0 != h1 || h0 != h2)
			abort();	/* results depend on how the input was split */
	}
	return 0;
}
