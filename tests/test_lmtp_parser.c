/* Unit tests for imapd/lmtp-parser.c and imapd/lmtp-trace.c: every input is fed
 * whole, one byte at a time, at every two-way split and at random splits, and must
 * give the same transcript of events. */
#include <errno.h>
#include "harness.h"
#include "lmtp-parser.h"
#include "vault-trace.h"

/* A transcript: events as text, consecutive DATA merged ("D[...]"). A DATA command
 * switches the parser to DATA mode, as the server does after its 354. */
struct tr {
	char *s;
	size_t len, cap;
	bool in_data;
};

static void tr_put(struct tr *t, const void *p, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		t->cap = (t->len + n + 1) * 2;
		t->s = realloc(t->s, t->cap);
		if (t->s == NULL)
			abort();
	}
	memcpy(t->s + t->len, p, n);
	t->len += n;
	t->s[t->len] = '\0';
}

static void tr_str(struct tr *t, const char *s)
{
	tr_put(t, s, strlen(s));
}

static void tr_event(struct tr *t, struct lmtp_parser *p, const struct lmtp_event *ev)
{
	char b[128];

	if (ev->type != LMTP_EV_DATA && t->in_data) {
		tr_str(t, "]|");
		t->in_data = false;
	}
	switch (ev->type) {
	case LMTP_EV_CMD:
		snprintf(b, sizeof(b), "C%d<", (int)ev->verb);
		tr_str(t, b);
		tr_str(t, ev->arg);
		tr_str(t, ">");
		if (ev->verb == LMTP_V_BDAT) {
			snprintf(b, sizeof(b), "(%llu%s)", (unsigned long long)ev->bdat_size,
			    ev->bdat_last ? ",L" : "");
			tr_str(t, b);
		}
		if (ev->verb == LMTP_V_DATA)
			lmtp_parser_begin_data(p);
		break;
	case LMTP_EV_LINE_TOO_LONG:
		tr_str(t, "LONG");
		break;
	case LMTP_EV_BAD_BDAT:
		tr_str(t, "BADBDAT");
		break;
	case LMTP_EV_DATA:
		if (!t->in_data) {
			tr_str(t, "D[");
			t->in_data = true;
		}
		tr_put(t, ev->data, ev->len);
		break;
	case LMTP_EV_DATA_END:
		tr_str(t, "END");
		break;
	case LMTP_EV_BDAT_END:
		tr_str(t, "BEND");
		break;
	}
	tr_str(t, "|");
	if (ev->type == LMTP_EV_DATA)
		t->len--;	/* no separator inside merged data */
}

static void feed_piece(struct lmtp_parser *p, struct tr *t, const uint8_t *in, size_t len)
{
	size_t off = 0, used;
	struct lmtp_event ev;

	for (;;) {
		int r = lmtp_parser_feed(p, in + off, len - off, &used, &ev);

		if (used > len - off)
			abort();
		off += used;
		if (r == 0) {
			if (off != len)
				abort();
			return;
		}
		tr_event(t, p, &ev);
	}
}

/* splits: 0 whole; 1 byte by byte; 2 at position k; 3 random. */
static char *transcript(const char *in, size_t len, int mode, size_t k)
{
	struct lmtp_parser *p = malloc(sizeof(*p));
	struct tr t = { 0 };
	const uint8_t *u = (const uint8_t *)in;

	lmtp_parser_init(p);
	tr_str(&t, "");
	if (mode == 0) {
		feed_piece(p, &t, u, len);
	} else if (mode == 1) {
		for (size_t i = 0; i < len; i++)
			feed_piece(p, &t, u + i, 1);
	} else if (mode == 2) {
		feed_piece(p, &t, u, k);
		feed_piece(p, &t, u + k, len - k);
	} else {
		size_t i = 0;
		unsigned seed = (unsigned)k;

		while (i < len) {
			size_t n = (size_t)(rand_r(&seed) % 7);
			if (n > len - i)
				n = len - i;
			feed_piece(p, &t, u + i, n);
			i += n;
		}
	}
	if (t.in_data)
		tr_str(&t, "]|");
	free(p);
	return t.s;
}

/* Every way of splitting gives the expected transcript. */
static int check_all(const char *in, size_t len, const char *want)
{
	char *w = transcript(in, len, 0, 0);
	int ok = strcmp(w, want) == 0;

	if (!ok)
		fprintf(stderr, "whole:\n got  %s\n want %s\n", w, want);
	free(w);
	for (int mode = 1; mode <= 3 && ok; mode++)
		for (size_t k = 0; k <= (mode == 1 ? 0 : mode == 2 ? len : 20) && ok; k++) {
			char *g = transcript(in, len, mode, k);
			if (strcmp(g, want) != 0) {
				fprintf(stderr, "mode %d k %zu:\n got  %s\n want %s\n", mode, k, g,
				    want);
				ok = 0;
			}
			free(g);
		}
	return ok;
}

#define CHECK(in, want) ASSERT_TRUE(check_all((in), sizeof(in) - 1, (want)))

TEST(commands)
{
	CHECK("LHLO mx.example\r\nmail FROM:<a@b> SIZE=10\r\nRcPt To:<c@d>\r\nNOOP\r\nQUIT\r\n",
	    "C1<mx.example>|C4<FROM:<a@b> SIZE=10>|C5<To:<c@d>>|C9<>|C10<>|");
	/* leading blanks are not a verb; trailing blanks trimmed, bare LF accepted,
	 * unknown verbs, prefix verbs */
	CHECK("  NOOP  \r\nRSET  \nMAILX\r\nHELO x\r\nEHLO y\r\n\r\n",
	    "C0<NOOP>|C8<>|C0<>|C2<x>|C3<y>|C0<>|");
	CHECK("VRFY bob\r\nEXPN list\r\nHELP\r\nSTARTTLS\r\nNOOP\tx\r\n",
	    "C11<bob>|C12<list>|C13<>|C14<>|C9<x>|");
}

TEST(nul_in_line)
{
	static const char in[] = "NOOP\0x\r\nNOOP\r\n";
	ASSERT_TRUE(check_all(in, sizeof(in) - 1, "C0<>|C9<>|"));
}

TEST(long_lines)
{
	size_t n = LMTP_LINE_MAX;
	char *in = malloc(3 * n + 64), *want = malloc(2 * n + 64);

	/* exactly LMTP_LINE_MAX bytes: accepted, with CRLF or LF */
	memcpy(in, "NOOP ", 5);
	memset(in + 5, 'a', n - 5);
	memcpy(in + n, "\r\n", 2);
	memcpy(want, "C9<", 3);
	memset(want + 3, 'a', n - 5);
	memcpy(want + 3 + n - 5, ">|", 3);
	ASSERT_TRUE(check_all(in, n + 2, want));
	in[n] = '\n';
	ASSERT_TRUE(check_all(in, n + 1, want));
	/* one byte more: too long, with or without CR; then the next line works */
	memset(in + 5, 'a', n - 4);
	memcpy(in + n + 1, "\r\nNOOP\r\n", 8);
	ASSERT_TRUE(check_all(in, n + 9, "LONG|C9<>|"));
	memcpy(in + n + 1, "\nNOOP\r\n", 7);
	ASSERT_TRUE(check_all(in, n + 8, "LONG|C9<>|"));
	/* very long: reported once */
	memset(in, 'x', 3 * n);
	memcpy(in + 3 * n, "\r\nQUIT\r\n", 8);
	ASSERT_TRUE(check_all(in, 3 * n + 8, "LONG|C10<>|"));
	free(in);
	free(want);
}

TEST(data_unstuffing)
{
	/* dot-stuffed lines lose one dot; "." alone ends; the command after it is
	 * parsed as a command */
	CHECK("DATA\r\nSubject: x\r\n\r\n..leading dot\r\n...\r\n.x\r\nend\r\n.\r\nQUIT\r\n",
	    "C6<>|D[Subject: x\r\n\r\n.leading dot\r\n..\r\nx\r\nend\r\n]|END|C10<>|");
	/* empty message */
	CHECK("DATA\r\n.\r\nNOOP\r\n", "C6<>|END|C9<>|");
	/* ".\r" followed by something else is not the end: the CR is content */
	CHECK("DATA\r\n.\rX\r\n.\r\r\n.\r\n", "C6<>|D[\rX\r\n\r\r\n]|END|");
	/* bare LF line ends, and ".\n" as the end */
	CHECK("DATA\na\n..b\n.\nNOOP\n", "C6<>|D[a\n.b\n]|END|C9<>|");
	/* CR alone does not end a line: "\r." is not a dot at the start of a line */
	CHECK("DATA\r\na\r.\r\nb\r\n.\r\n", "C6<>|D[a\r.\r\nb\r\n]|END|");
	/* no trailing newline before the final dot is impossible; a dot mid-line stays */
	CHECK("DATA\r\nx.\r\n.y.\r\n.\r\n", "C6<>|D[x.\r\ny.\r\n]|END|");
}

/* The transcript above can't hold NUL; check binary content with a direct loop. */
TEST(data_binary_exact)
{
	static const uint8_t in[] = "\x00\r\n..\x00\xff\r\n.\r\n";
	static const uint8_t want[] = "\x00\r\n.\x00\xff\r\n";
	size_t inlen = sizeof(in) - 1, wantlen = sizeof(want) - 1;

	for (size_t step = 1; step <= inlen; step++) {
		struct lmtp_parser p;
		struct lmtp_event ev;
		uint8_t got[64];
		size_t gl = 0, used;
		int ended = 0;

		lmtp_parser_init(&p);
		lmtp_parser_begin_data(&p);
		for (size_t i = 0; i < inlen; i += step) {
			size_t n = inlen - i < step ? inlen - i : step, off = 0;
			while (lmtp_parser_feed(&p, in + i + off, n - off, &used, &ev) == 1) {
				off += used;
				if (ev.type == LMTP_EV_DATA) {
					memcpy(got + gl, ev.data, ev.len);
					gl += ev.len;
				} else if (ev.type == LMTP_EV_DATA_END) {
					ended = 1;
				}
			}
			off += used;
		}
		ASSERT_INT_EQ(ended, 1);
		ASSERT_INT_EQ(gl, wantlen);
		ASSERT_MEM_EQ(got, want, wantlen);
		ASSERT_INT_EQ(lmtp_parser_mode(&p), LMTP_MODE_LINE);
	}
}

TEST(bdat)
{
	CHECK("BDAT 5\r\nhelloBDAT 0 LAST\r\nQUIT\r\n",
	    "C7<5>(5)|D[hello]|BEND|C7<0 LAST>(0,L)|BEND|C10<>|");
	/* no unstuffing, CRLF.CRLF is just data, lower-case last */
	CHECK("BDAT 9 last\r\n\r\n.\r\n..\r\nNOOP\r\n",
	    "C7<9 last>(9,L)|D[\r\n.\r\n..\r\n]|BEND|C9<>|");
	/* bad sizes: stays in command mode */
	CHECK("BDAT x\r\nBDAT\r\nBDAT 1 LASTX\r\nBDAT 1LAST\r\nBDAT 123456789012345678901\r\n"
	    "BDAT 99999999999999999999\r\nNOOP\r\n",
	    "BADBDAT|BADBDAT|BADBDAT|BADBDAT|BADBDAT|BADBDAT|C9<>|");
	/* 2^64-1 is a valid (if refused later) size */
	struct lmtp_parser p;
	struct lmtp_event ev;
	size_t used;
	static const char big[] = "BDAT 18446744073709551615\r\n";
	lmtp_parser_init(&p);
	ASSERT_INT_EQ(lmtp_parser_feed(&p, (const uint8_t *)big, sizeof(big) - 1, &used, &ev), 1);
	ASSERT_INT_EQ(ev.type, LMTP_EV_CMD);
	ASSERT_TRUE(ev.bdat_size == UINT64_MAX);
	ASSERT_INT_EQ(lmtp_parser_mode(&p), LMTP_MODE_BDAT);
}

TEST(parse_path)
{
	char a[LMTP_PATH_MAX];
	const char *params;

	ASSERT_INT_EQ(lmtp_parse_path("FROM:<a@b.c> SIZE=1 BODY=8BITMIME", "FROM:", a,
	    sizeof(a), &params), 0);
	ASSERT_STR_EQ(a, "a@b.c");
	ASSERT_STR_EQ(params, "SIZE=1 BODY=8BITMIME");
	ASSERT_INT_EQ(lmtp_parse_path("from: <>", "FROM:", a, sizeof(a), &params), 0);
	ASSERT_STR_EQ(a, "");
	ASSERT_STR_EQ(params, "");
	ASSERT_INT_EQ(lmtp_parse_path("TO:<@r1,@r2:u@d>", "TO:", a, sizeof(a), &params), 0);
	ASSERT_STR_EQ(a, "u@d");
	ASSERT_INT_EQ(lmtp_parse_path("TO:<\"a >b\"@d>", "TO:", a, sizeof(a), &params), 0);
	ASSERT_STR_EQ(a, "\"a >b\"@d");
	ASSERT_INT_EQ(lmtp_parse_path("TO:bare@d", "TO:", a, sizeof(a), &params), 0);
	ASSERT_STR_EQ(a, "bare@d");
	ASSERT_INT_EQ(lmtp_parse_path("TO:<a@d", "TO:", a, sizeof(a), &params), -EPROTO);
	ASSERT_INT_EQ(lmtp_parse_path("TO:<a@d>x", "TO:", a, sizeof(a), &params), -EPROTO);
	ASSERT_INT_EQ(lmtp_parse_path("FROM:<a@d>", "TO:", a, sizeof(a), &params), -EPROTO);
	ASSERT_INT_EQ(lmtp_parse_path("TO:", "TO:", a, sizeof(a), &params), -EPROTO);
	ASSERT_INT_EQ(lmtp_parse_path("TO:<a\x01@d>", "TO:", a, sizeof(a), &params), -EPROTO);
	ASSERT_INT_EQ(lmtp_parse_path("TO:<@r1>", "TO:", a, sizeof(a), &params), -EPROTO);
	char longp[400];
	memset(longp, 'x', sizeof(longp));
	memcpy(longp, "TO:<", 4);
	memcpy(longp + sizeof(longp) - 2, ">", 2);
	ASSERT_INT_EQ(lmtp_parse_path(longp, "TO:", a, sizeof(a), &params), -E2BIG);
}

TEST(params)
{
	const char *p = "SIZE=123 BODY=8BITMIME  X-Y RET=FULL";
	char k[16], v[16];

	ASSERT_INT_EQ(lmtp_param_next(&p, k, sizeof(k), v, sizeof(v)), 1);
	ASSERT_STR_EQ(k, "SIZE");
	ASSERT_STR_EQ(v, "123");
	ASSERT_INT_EQ(lmtp_param_next(&p, k, sizeof(k), v, sizeof(v)), 1);
	ASSERT_STR_EQ(v, "8BITMIME");
	ASSERT_INT_EQ(lmtp_param_next(&p, k, sizeof(k), v, sizeof(v)), 1);
	ASSERT_STR_EQ(k, "X-Y");
	ASSERT_STR_EQ(v, "");
	ASSERT_INT_EQ(lmtp_param_next(&p, k, sizeof(k), v, sizeof(v)), 1);
	ASSERT_INT_EQ(lmtp_param_next(&p, k, sizeof(k), v, sizeof(v)), 0);
	p = "=x";
	ASSERT_INT_EQ(lmtp_param_next(&p, k, sizeof(k), v, sizeof(v)), -EPROTO);
	p = "A=";
	ASSERT_INT_EQ(lmtp_param_next(&p, k, sizeof(k), v, sizeof(v)), -EPROTO);
	p = "A=b=c";
	ASSERT_INT_EQ(lmtp_param_next(&p, k, sizeof(k), v, sizeof(v)), -EPROTO);
	p = "VERYLONGKEYNAME12345=1";
	ASSERT_INT_EQ(lmtp_param_next(&p, k, sizeof(k), v, sizeof(v)), -E2BIG);

	uint64_t n;
	ASSERT_INT_EQ(lmtp_parse_u64("18446744073709551615", &n), 0);
	ASSERT_TRUE(n == UINT64_MAX);
	ASSERT_INT_EQ(lmtp_parse_u64("18446744073709551616", &n), -ERANGE);
	ASSERT_INT_EQ(lmtp_parse_u64("", &n), -EPROTO);
	ASSERT_INT_EQ(lmtp_parse_u64("1a", &n), -EPROTO);
}

TEST(trace_format)
{
	struct vault_trace t = {
		.sender = "s@x", .rcpt = "r@y", .helo = "mx\x01.example", .peer = "[127.0.0.1]",
		.host = "vault.test", .proto = "LMTP", .id = "abc", .now = 0,
	};
	char buf[VAULT_TRACE_FMT_MAX];
	int n = vault_trace_format(&t, buf, sizeof(buf));

	ASSERT_TRUE(n > 0);
	ASSERT_INT_EQ((size_t)n, strlen(buf));
	ASSERT_TRUE(strstr(buf, "\r\nReceived: from mx?.example ([127.0.0.1])\r\n\tby vault.test "
	    "(sealmail) with LMTP id abc\r\n\tfor <r@y>; ") != NULL);
	ASSERT_TRUE(strncmp(buf, "Return-Path: <s@x>\r\nDelivered-To: <r@y>\r\n", 41) == 0);
	ASSERT_TRUE(memcmp(buf + n - 2, "\r\n", 2) == 0);
	/* null sender; long fields are capped and the result always fits */
	char huge[2000];
	memset(huge, 'h', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	t.sender = "";
	t.helo = huge;
	t.rcpt = huge;
	t.host = huge;
	t.id = huge;
	n = vault_trace_format(&t, buf, sizeof(buf));
	ASSERT_TRUE(n > 0 && n < VAULT_TRACE_FMT_MAX);
	ASSERT_TRUE(strncmp(buf, "Return-Path: <>\r\n", 17) == 0);
	ASSERT_INT_EQ(vault_trace_format(&t, buf, 10), -E2BIG);
	/* no sender / recipient: no Return-Path / Delivered-To */
	t.sender = NULL;
	t.rcpt = NULL;
	t.helo = NULL;
	n = vault_trace_format(&t, buf, sizeof(buf));
	ASSERT_TRUE(n > 0 && strncmp(buf, "Received: by ", 13) == 0);
}
