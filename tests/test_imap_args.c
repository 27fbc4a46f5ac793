/* Tests for imapd/imap-args and imapd/mutf7: argument parsers over real parsed
 * commands, output helpers, dates, sequence sets, modified UTF-7. */
#include "harness.h"
#include "imap-args.h"
#include "imap-parser.h"

/* Parse one complete command line (non-synchronizing literals only). */
static struct imap_cmd *parse(const char *line, size_t len)
{
	struct imap_parser_limits lim;
	struct imap_parser *p = NULL;
	struct imap_cmd *cmd = NULL;
	size_t used;
	int r;

	imap_parser_limits_default(&lim);
	if (imap_parser_new(&lim, &p) != 0)
		return NULL;
	r = imap_parser_feed(p, (const uint8_t *)line, len, &used, &cmd);
	imap_parser_free(&p);
	if (r != 1 || used != len) {
		fprintf(stderr, "parse failed (%d) for %s\n", r, line);
		imap_cmd_free(&cmd);
		return NULL;
	}
	return cmd;
}

#define PARSE(s) parse(s, strlen(s))

/* ---- imap_buf and writers ---- */

TEST(buf_basics)
{
	struct imap_buf *b = NULL;

	ASSERT_INT_EQ(imap_buf_new(0, &b), -EINVAL);
	ASSERT_INT_EQ(imap_buf_new(10, &b), 0);
	ASSERT_INT_EQ(imap_buf_addstr(b, "abc"), 0);
	ASSERT_INT_EQ(imap_buf_printf(b, "%d-%s", 42, "x"), 0);
	ASSERT_STR_EQ(b->data, "abc42-x");
	ASSERT_INT_EQ(b->len, 7);
	/* 4 more would exceed 10: nothing appended */
	ASSERT_INT_EQ(imap_buf_addstr(b, "defg"), -E2BIG);
	ASSERT_STR_EQ(b->data, "abc42-x");
	ASSERT_INT_EQ(imap_buf_printf(b, "%s", "wxyz"), -E2BIG);
	ASSERT_STR_EQ(b->data, "abc42-x");
	ASSERT_INT_EQ(imap_buf_addstr(b, "def"), 0);
	ASSERT_INT_EQ(b->len, 10);
	imap_buf_reset(b);
	ASSERT_INT_EQ(b->len, 0);
	ASSERT_STR_EQ(b->data, "");
	imap_buf_free(&b);
	ASSERT_TRUE(b == NULL);
	imap_buf_free(&b);
	/* growth past the initial allocation */
	ASSERT_INT_EQ(imap_buf_new(100000, &b), 0);
	for (int i = 0; i < 1000; i++)
		ASSERT_INT_EQ(imap_buf_printf(b, "%04d,", i), 0);
	ASSERT_INT_EQ(b->len, 5000);
	ASSERT_TRUE(memcmp(b->data + 4995, "0999,", 5) == 0);
	imap_buf_free(&b);
}

TEST(write_strings)
{
	struct imap_buf *b = NULL;

	ASSERT_INT_EQ(imap_buf_new(4096, &b), 0);
	ASSERT_INT_EQ(imap_write_astring(b, "INBOX", 5, 0), 0);
	ASSERT_INT_EQ(imap_buf_add(b, " ", 1), 0);
	ASSERT_INT_EQ(imap_write_astring(b, "a b", 3, 0), 0);
	ASSERT_INT_EQ(imap_buf_add(b, " ", 1), 0);
	ASSERT_INT_EQ(imap_write_astring(b, "", 0, 0), 0);
	ASSERT_INT_EQ(imap_buf_add(b, " ", 1), 0);
	ASSERT_INT_EQ(imap_write_astring(b, "nil", 3, 0), 0);
	ASSERT_INT_EQ(imap_buf_add(b, " ", 1), 0);
	ASSERT_INT_EQ(imap_write_astring(b, "a\"b\\c", 5, 0), 0);
	ASSERT_INT_EQ(imap_buf_add(b, " ", 1), 0);
	ASSERT_INT_EQ(imap_write_astring(b, "x]y", 3, 0), 0);
	ASSERT_INT_EQ(imap_buf_add(b, " ", 1), 0);
	ASSERT_INT_EQ(imap_write_astring(b, "x%y", 3, 0), 0);
	ASSERT_STR_EQ(b->data, "INBOX \"a b\" \"\" \"nil\" \"a\\\"b\\\\c\" x]y \"x%y\"");
	imap_buf_reset(b);
	/* CR/LF/controls and 8-bit force a literal; UTF-8 may be quoted with the flag */
	ASSERT_INT_EQ(imap_write_string(b, "a\r\nb", 4, 0), 0);
	ASSERT_STR_EQ(b->data, "{4}\r\na\r\nb");
	imap_buf_reset(b);
	ASSERT_INT_EQ(imap_write_string(b, "\xc3\xa4", 2, 0), 0);
	ASSERT_STR_EQ(b->data, "{2}\r\n\xc3\xa4");
	imap_buf_reset(b);
	ASSERT_INT_EQ(imap_write_string(b, "\xc3\xa4", 2, IMAP_WRITE_UTF8), 0);
	ASSERT_STR_EQ(b->data, "\"\xc3\xa4\"");
	imap_buf_reset(b);
	ASSERT_INT_EQ(imap_write_string(b, "\xc3", 1, IMAP_WRITE_UTF8), 0);
	ASSERT_STR_EQ(b->data, "{1}\r\n\xc3");
	imap_buf_reset(b);
	ASSERT_INT_EQ(imap_write_string(b, "a\0b", 3, 0), -EINVAL);
	ASSERT_INT_EQ(b->len, 0);
	ASSERT_INT_EQ(imap_write_literal(b, "a\0b", 3, true), 0);
	ASSERT_INT_EQ(b->len, 9);
	ASSERT_MEM_EQ(b->data, "~{3}\r\na\0b", 9);
	imap_buf_reset(b);
	ASSERT_INT_EQ(imap_write_nstring(b, NULL, 0, 0), 0);
	ASSERT_INT_EQ(imap_write_nstring(b, "x", 1, 0), 0);
	ASSERT_STR_EQ(b->data, "NIL\"x\"");
	imap_buf_free(&b);
	/* the cap holds and a failed write leaves nothing behind */
	ASSERT_INT_EQ(imap_buf_new(8, &b), 0);
	ASSERT_INT_EQ(imap_buf_add(b, "ab", 2), 0);
	ASSERT_INT_EQ(imap_write_string(b, "hello", 5, 0), -E2BIG);
	ASSERT_INT_EQ(imap_write_literal(b, "hi", 2, false), -E2BIG);
	ASSERT_STR_EQ(b->data, "ab");
	ASSERT_INT_EQ(imap_write_string(b, "hell", 4, 0), 0);
	ASSERT_STR_EQ(b->data, "ab\"hell\"");
	imap_buf_free(&b);
}

/* ---- accessors ---- */

TEST(arg_accessors)
{
	struct imap_cmd *cmd = PARSE("a X abc \"q s\" {3+}\r\nlit NIL 1:* %x ~{1+}\r\nz 123 "
	    "BODY[x y] 99999999999999999999 \\Seen\r\n");
	const char *s;
	size_t len;
	uint64_t v;

	ASSERT_TRUE(cmd != NULL);
	ASSERT_INT_EQ(cmd->nargs, 11);
	ASSERT_INT_EQ(imap_arg_astring(&cmd->args[0], &s, &len, NULL), 0);
	ASSERT_STR_EQ(s, "abc");
	ASSERT_INT_EQ(imap_arg_astring(&cmd->args[1], &s, &len, NULL), 0);
	ASSERT_STR_EQ(s, "q s");
	ASSERT_INT_EQ(imap_arg_astring(&cmd->args[2], &s, &len, NULL), 0);
	ASSERT_STR_EQ(s, "lit");
	ASSERT_INT_EQ(imap_arg_astring(&cmd->args[3], &s, &len, NULL), 0);
	ASSERT_STR_EQ(s, "NIL");
	ASSERT_INT_EQ(imap_arg_astring(&cmd->args[4], &s, &len, NULL), -EPROTO);
	ASSERT_INT_EQ(imap_arg_astring(&cmd->args[5], &s, &len, NULL), -EPROTO);
	ASSERT_INT_EQ(imap_arg_list_mailbox(&cmd->args[5], &s, &len, NULL), 0);
	ASSERT_STR_EQ(s, "%x");
	ASSERT_INT_EQ(imap_arg_astring(&cmd->args[6], &s, &len, NULL), -EPROTO); /* literal8 */
	ASSERT_INT_EQ(imap_arg_astring(&cmd->args[8], &s, &len, NULL), -EPROTO);
	ASSERT_INT_EQ(imap_arg_astring(&cmd->args[10], &s, &len, NULL), -EPROTO);
	ASSERT_INT_EQ(imap_arg_string(&cmd->args[0], &s, &len, NULL), -EPROTO);
	ASSERT_INT_EQ(imap_arg_string(&cmd->args[1], &s, &len, NULL), 0);
	ASSERT_INT_EQ(imap_arg_nstring(&cmd->args[3], &s, &len, NULL), 0);
	ASSERT_TRUE(s == NULL);
	ASSERT_INT_EQ(imap_arg_number(&cmd->args[7], 1000, &v, NULL), 0);
	ASSERT_INT_EQ(v, 123);
	ASSERT_INT_EQ(imap_arg_number(&cmd->args[7], 122, &v, NULL), -EPROTO);
	ASSERT_INT_EQ(imap_arg_number(&cmd->args[9], UINT64_MAX, &v, NULL), -EPROTO);
	ASSERT_TRUE(imap_arg_atom_eq(&cmd->args[0], "ABC"));
	ASSERT_TRUE(imap_arg_atom_eq(&cmd->args[3], "nil"));
	ASSERT_TRUE(!imap_arg_atom_eq(&cmd->args[1], "q s"));
	ASSERT_TRUE(!imap_arg_atom_eq(&cmd->args[0], "AB"));
	imap_cmd_free(&cmd);
	ASSERT_INT_EQ(imap_parse_number("18446744073709551615", 20, UINT64_MAX, &v), 0);
	ASSERT_TRUE(v == UINT64_MAX);
	ASSERT_INT_EQ(imap_parse_number("18446744073709551616", 20, UINT64_MAX, &v), -EPROTO);
	ASSERT_INT_EQ(imap_parse_number("007", 3, 10, &v), 0);
	ASSERT_INT_EQ(v, 7);
	ASSERT_INT_EQ(imap_parse_number("", 0, 10, &v), -EPROTO);
	ASSERT_INT_EQ(imap_parse_number("1a", 2, 100, &v), -EPROTO);
	{
		uint32_t u;

		ASSERT_INT_EQ(imap_parse_nz_number("4294967295", 10, &u), 0);
		ASSERT_TRUE(u == 4294967295u);
		ASSERT_INT_EQ(imap_parse_nz_number("4294967296", 10, &u), -EPROTO);
		ASSERT_INT_EQ(imap_parse_nz_number("0", 1, &u), -EPROTO);
		ASSERT_INT_EQ(imap_parse_nz_number("01", 2, &u), -EPROTO);
	}
}

/* ---- sequence sets ---- */

static const char *seq_fmt(const struct imap_seqset *set)
{
	static char out[512];
	struct imap_buf *b = NULL;

	if (imap_buf_new(sizeof(out) - 1, &b) != 0)
		return "(nomem)";
	if (imap_seqset_format(set, b) != 0)
		snprintf(out, sizeof(out), "(format error)");
	else
		snprintf(out, sizeof(out), "%s", b->data);
	imap_buf_free(&b);
	return out;
}

static const char *seq_rt(const char *in)
{
	struct imap_seqset *set = NULL;
	static char out[512];
	const char *err = NULL;

	if (imap_seqset_parse(in, strlen(in), &set, &err) != 0) {
		snprintf(out, sizeof(out), "ERR %s", err ? err : "(no message)");
		return out;
	}
	snprintf(out, sizeof(out), "%s", seq_fmt(set));
	imap_seqset_free(&set);
	return out;
}

TEST(seqset_parse)
{
	ASSERT_STR_EQ(seq_rt("1"), "1");
	ASSERT_STR_EQ(seq_rt("1:3"), "1:3");
	ASSERT_STR_EQ(seq_rt("3:1"), "3:1");
	ASSERT_STR_EQ(seq_rt("*"), "*");
	ASSERT_STR_EQ(seq_rt("1:*"), "1:*");
	ASSERT_STR_EQ(seq_rt("*:5"), "*:5");
	ASSERT_STR_EQ(seq_rt("2,4:7,9,12:*"), "2,4:7,9,12:*");
	ASSERT_STR_EQ(seq_rt("$"), "$");
	ASSERT_STR_EQ(seq_rt("4294967295"), "4294967295");
	ASSERT_STR_EQ(seq_rt("1:4294967295"), "1:4294967295");
	ASSERT_STR_EQ(seq_rt("5:5"), "5");
	/* bad */
	ASSERT_STR_EQ(seq_rt("0"), "ERR invalid sequence set");
	ASSERT_STR_EQ(seq_rt("0:5"), "ERR invalid sequence set");
	ASSERT_STR_EQ(seq_rt("1:0"), "ERR invalid sequence set");
	ASSERT_STR_EQ(seq_rt("1:"), "ERR invalid sequence set");
	ASSERT_STR_EQ(seq_rt(":"), "ERR invalid sequence set");
	ASSERT_STR_EQ(seq_rt(":3"), "ERR invalid sequence set");
	ASSERT_STR_EQ(seq_rt(""), "ERR invalid sequence set");
	ASSERT_STR_EQ(seq_rt("4294967296"), "ERR invalid sequence set");
	ASSERT_STR_EQ(seq_rt("99999999999999999999999"), "ERR invalid sequence set");
	ASSERT_STR_EQ(seq_rt("01"), "ERR invalid sequence set");
	ASSERT_STR_EQ(seq_rt(","), "ERR invalid sequence set");
	ASSERT_STR_EQ(seq_rt("1,"), "ERR invalid sequence set");
	ASSERT_STR_EQ(seq_rt(",1"), "ERR invalid sequence set");
	ASSERT_STR_EQ(seq_rt("1,,2"), "ERR invalid sequence set");
	ASSERT_STR_EQ(seq_rt("1:2:3"), "ERR invalid sequence set");
	ASSERT_STR_EQ(seq_rt("$,1"), "ERR invalid sequence set");
	ASSERT_STR_EQ(seq_rt("1,$"), "ERR invalid sequence set");
	ASSERT_STR_EQ(seq_rt("-1"), "ERR invalid sequence set");
	ASSERT_STR_EQ(seq_rt("a"), "ERR invalid sequence set");
	ASSERT_STR_EQ(seq_rt("**"), "ERR invalid sequence set");
	ASSERT_STR_EQ(seq_rt("1 2"), "ERR invalid sequence set");
}

TEST(seqset_ops)
{
	struct imap_seqset *set = NULL;
	struct imap_seqset_iter it;
	uint32_t n, got[32];
	size_t k = 0;

	ASSERT_INT_EQ(imap_seqset_parse("9:7,2,*,1:3,20:*", 16, &set, NULL), 0);
	ASSERT_TRUE(imap_seqset_has_star(set));
	ASSERT_TRUE(imap_seqset_contains(set, 8, 25));
	ASSERT_TRUE(imap_seqset_contains(set, 25, 25));
	ASSERT_TRUE(imap_seqset_contains(set, 22, 25));
	ASSERT_TRUE(!imap_seqset_contains(set, 26, 25));
	ASSERT_TRUE(!imap_seqset_contains(set, 5, 25));
	ASSERT_TRUE(!imap_seqset_contains(set, 0, 25));
	/* "20:*" with star 10 is 10:20 */
	ASSERT_TRUE(imap_seqset_contains(set, 15, 10));
	ASSERT_INT_EQ(imap_seqset_normalize(set, 25), 0);
	ASSERT_STR_EQ(seq_fmt(set), "1:3,7:9,20:25");
	ASSERT_INT_EQ(imap_seqset_count(set), 3 + 3 + 6);
	ASSERT_TRUE(imap_seqset_contains(set, 21, 0));
	ASSERT_TRUE(!imap_seqset_contains(set, 4, 0));
	ASSERT_TRUE(!imap_seqset_contains(set, 26, 0));
	imap_seqset_iter_init(&it, set, 0);
	while (imap_seqset_iter_next(&it, &n) && k < 32)
		got[k++] = n;
	ASSERT_INT_EQ(k, 12);
	ASSERT_INT_EQ(got[0], 1);
	ASSERT_INT_EQ(got[3], 7);
	ASSERT_INT_EQ(got[6], 20);
	ASSERT_INT_EQ(got[11], 25);
	imap_seqset_free(&set);
	ASSERT_TRUE(set == NULL);

	/* empty mailbox: "*" is 0 */
	ASSERT_INT_EQ(imap_seqset_parse("*,3:*", 5, &set, NULL), 0);
	ASSERT_INT_EQ(imap_seqset_normalize(set, 0), 0);
	ASSERT_STR_EQ(seq_fmt(set), "1:3");
	imap_seqset_free(&set);
	ASSERT_INT_EQ(imap_seqset_parse("*", 1, &set, NULL), 0);
	ASSERT_INT_EQ(imap_seqset_normalize(set, 0), 0);
	ASSERT_INT_EQ(set->n, 0);
	ASSERT_STR_EQ(seq_fmt(set), "(format error)");
	imap_seqset_free(&set);

	/* iteration near the top of the range does not wrap */
	ASSERT_INT_EQ(imap_seqset_parse("4294967294:*", 12, &set, NULL), 0);
	imap_seqset_iter_init(&it, set, 4294967295u);
	k = 0;
	while (imap_seqset_iter_next(&it, &n) && k < 32)
		got[k++] = n;
	ASSERT_INT_EQ(k, 2);
	ASSERT_TRUE(got[1] == 4294967295u);
	ASSERT_INT_EQ(imap_seqset_normalize(set, 4294967295u), 0);
	ASSERT_INT_EQ(imap_seqset_count(set), 2);
	imap_seqset_free(&set);

	/* merging adjacent and overlapping ranges */
	ASSERT_INT_EQ(imap_seqset_parse("5,1,2,3:4,10:12,11,13", 21, &set, NULL), 0);
	ASSERT_INT_EQ(imap_seqset_normalize(set, 100), 0);
	ASSERT_STR_EQ(seq_fmt(set), "1:5,10:13");
	imap_seqset_free(&set);

	/* saved "$" */
	ASSERT_INT_EQ(imap_seqset_parse("$", 1, &set, NULL), 0);
	ASSERT_TRUE(set->saved);
	ASSERT_TRUE(!imap_seqset_contains(set, 1, 1));
	ASSERT_INT_EQ(imap_seqset_normalize(set, 1), -EINVAL);
	ASSERT_INT_EQ(imap_seqset_add(set, 1, 1), -EINVAL);
	imap_seqset_free(&set);

	/* building a COPYUID/VANISHED set in order */
	ASSERT_INT_EQ(imap_seqset_new(&set), 0);
	ASSERT_INT_EQ(imap_seqset_add(set, 1, 1), 0);
	ASSERT_INT_EQ(imap_seqset_add(set, 2, 2), 0);
	ASSERT_INT_EQ(imap_seqset_add(set, 3, 5), 0);
	ASSERT_INT_EQ(imap_seqset_add(set, 9, 9), 0);
	ASSERT_INT_EQ(imap_seqset_add(set, 7, 7), 0);
	ASSERT_INT_EQ(imap_seqset_add(set, 8, 8), 0);
	ASSERT_INT_EQ(imap_seqset_add(set, 12, 10), 0);
	ASSERT_INT_EQ(imap_seqset_add(set, 4294967295u, 4294967295u), 0);
	ASSERT_STR_EQ(seq_fmt(set), "1:5,9,7:8,10:12,4294967295");
	ASSERT_INT_EQ(imap_seqset_normalize(set, 0), 0);
	ASSERT_STR_EQ(seq_fmt(set), "1:5,7:12,4294967295");
	imap_seqset_free(&set);
	imap_seqset_free(NULL);
}

/* ---- dates ---- */

TEST(dates)
{
	struct imap_date d;
	const char *err = NULL;
	time_t t;
	int tz;
	char out[IMAP_DATETIME_LEN + 1];

	ASSERT_INT_EQ(imap_date_parse("1-Feb-1994", 10, &d, &err), 0);
	ASSERT_INT_EQ(d.year, 1994);
	ASSERT_INT_EQ(d.mon, 2);
	ASSERT_INT_EQ(d.day, 1);
	ASSERT_INT_EQ(imap_date_to_time(&d), 760060800);
	ASSERT_INT_EQ(imap_date_parse("\"01-feb-1994\"", 13, &d, NULL), 0);
	ASSERT_INT_EQ(d.day, 1);
	ASSERT_INT_EQ(imap_date_parse("29-Feb-2024", 11, &d, NULL), 0);
	ASSERT_INT_EQ(imap_date_to_time(&d), 1709164800);
	ASSERT_INT_EQ(imap_date_parse("1-Jan-1970", 10, &d, NULL), 0);
	ASSERT_INT_EQ(imap_date_to_time(&d), 0);
	ASSERT_INT_EQ(imap_date_parse("1-Jan-0001", 10, &d, NULL), 0);
	ASSERT_TRUE(imap_date_to_time(&d) == (time_t)-62135596800LL);
	ASSERT_INT_EQ(imap_date_parse("29-Feb-2023", 11, &d, &err), -EPROTO);
	ASSERT_STR_EQ(err, "invalid date");
	ASSERT_INT_EQ(imap_date_parse("29-Feb-1900", 11, &d, NULL), -EPROTO);
	ASSERT_INT_EQ(imap_date_parse("29-Feb-2000", 11, &d, NULL), 0);
	ASSERT_INT_EQ(imap_date_parse("32-Jan-1994", 11, &d, NULL), -EPROTO);
	ASSERT_INT_EQ(imap_date_parse("0-Jan-1994", 10, &d, NULL), -EPROTO);
	ASSERT_INT_EQ(imap_date_parse("1-Foo-1994", 10, &d, NULL), -EPROTO);
	ASSERT_INT_EQ(imap_date_parse("1-Feb-94", 8, &d, NULL), -EPROTO);
	ASSERT_INT_EQ(imap_date_parse("123-Feb-1994", 12, &d, NULL), -EPROTO);
	ASSERT_INT_EQ(imap_date_parse("1-Feb-0000", 10, &d, NULL), -EPROTO);
	ASSERT_INT_EQ(imap_date_parse("1-Feb-1994x", 11, &d, NULL), -EPROTO);
	ASSERT_INT_EQ(imap_date_parse("1 Feb 1994", 10, &d, NULL), -EPROTO);
	ASSERT_INT_EQ(imap_date_parse("", 0, &d, NULL), -EPROTO);

	ASSERT_INT_EQ(imap_datetime_parse("17-Jul-1996 02:44:25 -0700", 26, &t, &tz, NULL), 0);
	ASSERT_INT_EQ(t, 837596665);
	ASSERT_INT_EQ(tz, -420);
	ASSERT_INT_EQ(imap_datetime_parse("\" 7-Feb-1994 21:52:25 -0800\"", 28, &t, &tz, NULL), 0);
	ASSERT_INT_EQ(t, 760686745);
	ASSERT_INT_EQ(tz, -480);
	ASSERT_INT_EQ(imap_datetime_parse("7-Feb-1994 21:52:25 -0800", 25, &t, &tz, NULL), 0);
	ASSERT_INT_EQ(t, 760686745);
	ASSERT_INT_EQ(imap_datetime_parse("07-Feb-1994 21:52:25 +0000", 26, &t, &tz, NULL), 0);
	ASSERT_INT_EQ(t, 760686745 - 8 * 3600);
	ASSERT_INT_EQ(tz, 0);
	ASSERT_INT_EQ(imap_datetime_parse("07-Feb-1994 24:00:00 +0000", 26, &t, &tz, NULL),
	    -EPROTO);
	ASSERT_INT_EQ(imap_datetime_parse("07-Feb-1994 23:60:00 +0000", 26, &t, &tz, NULL),
	    -EPROTO);
	ASSERT_INT_EQ(imap_datetime_parse("07-Feb-1994 23:59:61 +0000", 26, &t, &tz, NULL),
	    -EPROTO);
	ASSERT_INT_EQ(imap_datetime_parse("07-Feb-1994 23:59:59 +0060", 26, &t, &tz, NULL),
	    -EPROTO);
	ASSERT_INT_EQ(imap_datetime_parse("07-Feb-1994 23:59:59 0000", 25, &t, &tz, NULL),
	    -EPROTO);
	ASSERT_INT_EQ(imap_datetime_parse("07-Feb-1994 23:59:59", 20, &t, &tz, NULL), -EPROTO);
	ASSERT_INT_EQ(imap_datetime_parse("30-Feb-1994 23:59:59 +0000", 26, &t, &tz, NULL),
	    -EPROTO);
	ASSERT_INT_EQ(imap_datetime_parse("07-Feb-1994 2:59:59 +0000", 25, &t, &tz, NULL),
	    -EPROTO);

	ASSERT_INT_EQ(imap_datetime_format(837596665, -420, out), 0);
	ASSERT_STR_EQ(out, "17-Jul-1996 02:44:25 -0700");
	ASSERT_INT_EQ(imap_datetime_format(0, 0, out), 0);
	ASSERT_STR_EQ(out, "01-Jan-1970 00:00:00 +0000");
	ASSERT_INT_EQ(imap_datetime_format(-1, 60, out), 0);
	ASSERT_STR_EQ(out, "01-Jan-1970 00:59:59 +0100");
	ASSERT_INT_EQ(imap_datetime_format(-1, 0, out), 0);
	ASSERT_STR_EQ(out, "31-Dec-1969 23:59:59 +0000");
	ASSERT_INT_EQ(imap_datetime_format(253402300799LL, 0, out), 0);
	ASSERT_STR_EQ(out, "31-Dec-9999 23:59:59 +0000");
	ASSERT_INT_EQ(imap_datetime_format(253402300799LL, 60, out), -EINVAL);
	ASSERT_INT_EQ(imap_datetime_format(0, 24 * 60, out), -EINVAL);
	/* round trip */
	for (int64_t x = -86400LL * 400 * 366; x < 86400LL * 400 * 366; x += 86400LL * 7919 + 3607) {
		time_t t2;
		int tz2;

		ASSERT_INT_EQ(imap_datetime_format((time_t)x, -330, out), 0);
		ASSERT_INT_EQ(imap_datetime_parse(out, strlen(out), &t2, &tz2, NULL), 0);
		ASSERT_TRUE((int64_t)t2 == x);
		ASSERT_INT_EQ(tz2, -330);
	}
}

/* ---- flags, STORE ---- */

TEST(flags_and_store)
{
	struct imap_cmd *cmd;
	struct imap_store *st = NULL;
	struct imap_flags f;
	const char *err = NULL;

	cmd = PARSE("a STORE 2:4 +FLAGS (\\Deleted \\seen $Junk foo FOO)\r\n");
	ASSERT_TRUE(cmd != NULL);
	ASSERT_INT_EQ(imap_store_parse(cmd->args, cmd->nargs, &st, &err), 0);
	ASSERT_STR_EQ(seq_fmt(st->set), "2:4");
	ASSERT_INT_EQ(st->op, IMAP_STORE_ADD);
	ASSERT_TRUE(!st->silent);
	ASSERT_INT_EQ(st->flags.sys, IMAP_FLAG_DELETED | IMAP_FLAG_SEEN);
	ASSERT_INT_EQ(st->flags.nkw, 2);
	ASSERT_STR_EQ(st->flags.kw[0], "$Junk");
	ASSERT_STR_EQ(st->flags.kw[1], "foo");
	ASSERT_TRUE(!st->unchangedsince_set);
	imap_store_free(&st);
	ASSERT_TRUE(st == NULL);
	imap_cmd_free(&cmd);

	cmd = PARSE("a UID STORE 1:* (UNCHANGEDSINCE 320162338) -flags.silent \\Answered "
	    "\\Draft\r\n");
	ASSERT_TRUE(cmd != NULL);
	ASSERT_INT_EQ(imap_store_parse(cmd->args, cmd->nargs, &st, &err), 0);
	ASSERT_INT_EQ(st->op, IMAP_STORE_REMOVE);
	ASSERT_TRUE(st->silent);
	ASSERT_TRUE(st->unchangedsince_set);
	ASSERT_INT_EQ(st->unchangedsince, 320162338);
	ASSERT_INT_EQ(st->flags.sys, IMAP_FLAG_ANSWERED | IMAP_FLAG_DRAFT);
	imap_store_free(&st);
	imap_cmd_free(&cmd);

	cmd = PARSE("a STORE 1 FLAGS ()\r\n");
	ASSERT_INT_EQ(imap_store_parse(cmd->args, cmd->nargs, &st, &err), 0);
	ASSERT_INT_EQ(st->op, IMAP_STORE_REPLACE);
	ASSERT_INT_EQ(st->flags.sys, 0);
	ASSERT_INT_EQ(st->flags.nkw, 0);
	imap_store_free(&st);
	imap_cmd_free(&cmd);

	{
		static const char *const bad[] = {
			"a STORE 1 FLAGS (\\Recent)\r\n",
			"a STORE 1 FLAGS (\\Foo)\r\n",
			"a STORE 1 FLAGS (\"x\")\r\n",
			"a STORE 1 FLAGS (a%b)\r\n",
			"a STORE 1 FLAGS (a])\r\n",
			"a STORE 1 FLAGS\r\n",
			"a STORE 1 FLAGX (\\Seen)\r\n",
			"a STORE 1 *FLAGS (\\Seen)\r\n",
			"a STORE 0 FLAGS (\\Seen)\r\n",
			"a STORE 1 FLAGS (\\Seen) x\r\n",
			"a STORE 1 (UNCHANGEDSINCE) FLAGS (\\Seen)\r\n",
			"a STORE 1 (UNCHANGEDSINCE x) FLAGS (\\Seen)\r\n",
			"a STORE 1 (UNCHANGEDSINCE 9223372036854775808) FLAGS (\\Seen)\r\n",
			"a STORE 1 (UNCHANGEDSINCE 1 UNCHANGEDSINCE 2) FLAGS (\\Seen)\r\n",
			"a STORE 1 (FOO 1) FLAGS (\\Seen)\r\n",
			"a STORE 1 () FLAGS (\\Seen)\r\n",
			"a STORE 1 FLAGS ((\\Seen))\r\n",
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			cmd = PARSE(bad[i]);
			ASSERT_TRUE(cmd != NULL);
			err = NULL;
			if (imap_store_parse(cmd->args, cmd->nargs, &st, &err) != -EPROTO ||
			    st != NULL || err == NULL)
				FAIL_AT("STORE accepted %s", bad[i]);
			imap_cmd_free(&cmd);
		}
	}
	/* UNCHANGEDSINCE 0 is valid (mod-sequence-valzer) */
	cmd = PARSE("a STORE 1 (UNCHANGEDSINCE 0) FLAGS.SILENT (\\Seen)\r\n");
	ASSERT_INT_EQ(imap_store_parse(cmd->args, cmd->nargs, &st, &err), 0);
	ASSERT_INT_EQ(st->unchangedsince, 0);
	imap_store_free(&st);
	imap_cmd_free(&cmd);

	/* imap_flags_parse directly */
	cmd = PARSE("a X \\Flagged \\FLAGGED kw KW Kw2\r\n");
	ASSERT_INT_EQ(imap_flags_parse(cmd->args, cmd->nargs, &f, &err), 0);
	ASSERT_INT_EQ(f.sys, IMAP_FLAG_FLAGGED);
	ASSERT_INT_EQ(f.nkw, 2);
	imap_flags_clear(&f);
	ASSERT_TRUE(f.kw == NULL);
	imap_cmd_free(&cmd);
}

/* ---- FETCH ---- */

static struct imap_fetch *fetch_of(const char *line, int *r, const char **err)
{
	struct imap_cmd *cmd = PARSE(line);
	struct imap_fetch *f = NULL;

	if (cmd == NULL) {
		*r = -999;
		return NULL;
	}
	*err = NULL;
	*r = imap_fetch_parse(cmd->args, cmd->nargs, &f, err);
	imap_cmd_free(&cmd);	/* the result must not depend on the command */
	return f;
}

TEST(fetch_basic)
{
	struct imap_fetch *f;
	const char *err;
	int r;

	f = fetch_of("a FETCH 12 FULL\r\n", &r, &err);
	ASSERT_INT_EQ(r, 0);
	ASSERT_INT_EQ(f->items, IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE |
	    IMAP_FETCH_RFC822_SIZE | IMAP_FETCH_ENVELOPE | IMAP_FETCH_BODY);
	ASSERT_INT_EQ(f->nsections, 0);
	ASSERT_TRUE(!f->sets_seen);
	imap_fetch_free(&f);
	ASSERT_TRUE(f == NULL);
	f = fetch_of("a FETCH 1:* all\r\n", &r, &err);
	ASSERT_INT_EQ(f->items, IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE |
	    IMAP_FETCH_RFC822_SIZE | IMAP_FETCH_ENVELOPE);
	imap_fetch_free(&f);
	f = fetch_of("a FETCH 1 fast\r\n", &r, &err);
	ASSERT_INT_EQ(f->items, IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE |
	    IMAP_FETCH_RFC822_SIZE);
	imap_fetch_free(&f);
	f = fetch_of("a UID FETCH 1:* (FLAGS UID RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE "
	    "BODY MODSEQ EMAILID THREADID SAVEDATE RFC822.HEADER)\r\n", &r, &err);
	ASSERT_INT_EQ(r, 0);
	ASSERT_INT_EQ(f->items, IMAP_FETCH_FLAGS | IMAP_FETCH_UID | IMAP_FETCH_RFC822_SIZE |
	    IMAP_FETCH_INTERNALDATE | IMAP_FETCH_ENVELOPE | IMAP_FETCH_BODYSTRUCTURE |
	    IMAP_FETCH_BODY | IMAP_FETCH_MODSEQ | IMAP_FETCH_EMAILID | IMAP_FETCH_THREADID |
	    IMAP_FETCH_SAVEDATE | IMAP_FETCH_RFC822_HEADER);
	ASSERT_TRUE(!f->sets_seen);
	imap_fetch_free(&f);
	f = fetch_of("a FETCH 1 RFC822\r\n", &r, &err);
	ASSERT_TRUE(f->sets_seen);
	imap_fetch_free(&f);
	f = fetch_of("a FETCH 1 (rfc822.text)\r\n", &r, &err);
	ASSERT_TRUE(f->sets_seen);
	ASSERT_INT_EQ(f->items, IMAP_FETCH_RFC822_TEXT);
	imap_fetch_free(&f);
	/* modifiers */
	f = fetch_of("a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n", &r, &err);
	ASSERT_INT_EQ(r, 0);
	ASSERT_TRUE(f->changedsince_set);
	ASSERT_INT_EQ(f->changedsince, 12345);
	ASSERT_TRUE(f->vanished);
	ASSERT_INT_EQ(f->items, IMAP_FETCH_FLAGS | IMAP_FETCH_MODSEQ);
	imap_fetch_free(&f);
	{
		static const char *const bad[] = {
			"a FETCH 1 (ALL)\r\n",
			"a FETCH 1 (FLAGS ALL)\r\n",
			"a FETCH 1 ()\r\n",
			"a FETCH 1 FOO\r\n",
			"a FETCH 1 \"FLAGS\"\r\n",
			"a FETCH 1 (FLAGS (UID))\r\n",
			"a FETCH 0 FLAGS\r\n",
			"a FETCH x FLAGS\r\n",
			"a FETCH 1 FLAGS (VANISHED)\r\n",
			"a FETCH 1 FLAGS (CHANGEDSINCE 0)\r\n",
			"a FETCH 1 FLAGS (CHANGEDSINCE)\r\n",
			"a FETCH 1 FLAGS (CHANGEDSINCE 1 CHANGEDSINCE 2)\r\n",
			"a FETCH 1 FLAGS (FOO)\r\n",
			"a FETCH 1 FLAGS ()\r\n",
			"a FETCH 1 FLAGS x\r\n",
			"a FETCH 1 FLAGS (CHANGEDSINCE 1) x\r\n",
			"a FETCH 1\r\n",
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			f = fetch_of(bad[i], &r, &err);
			if (r != -EPROTO || f != NULL || err == NULL)
				FAIL_AT("FETCH accepted %s (%d)", bad[i], r);
		}
	}
}

static const char *sec_label(const char *line, size_t idx)
{
	static char out[512];
	struct imap_fetch *f;
	const char *err = NULL;
	int r;

	f = fetch_of(line, &r, &err);
	if (r != 0) {
		snprintf(out, sizeof(out), "ERR %d %s", r, err ? err : "");
		return out;
	}
	snprintf(out, sizeof(out), "%s", idx < f->nsections ? f->sections[idx].label : "(none)");
	imap_fetch_free(&f);
	return out;
}

TEST(fetch_sections)
{
	struct imap_fetch *f;
	const char *err;
	int r;

	f = fetch_of("a FETCH 1 BODY.PEEK[header.fields (From \"Subject\" x-Y)]<0.2048>\r\n", &r,
	    &err);
	ASSERT_INT_EQ(r, 0);
	ASSERT_INT_EQ(f->nsections, 1);
	ASSERT_INT_EQ(f->sections[0].kind, IMAP_SECTION_BODY);
	ASSERT_TRUE(f->sections[0].peek);
	ASSERT_INT_EQ(f->sections[0].nparts, 0);
	ASSERT_INT_EQ(f->sections[0].spec, IMAP_SPEC_HEADER_FIELDS);
	ASSERT_INT_EQ(f->sections[0].nfields, 3);
	ASSERT_STR_EQ(f->sections[0].fields[0], "From");
	ASSERT_STR_EQ(f->sections[0].fields[1], "Subject");
	ASSERT_STR_EQ(f->sections[0].fields[2], "x-Y");
	ASSERT_TRUE(f->sections[0].partial);
	ASSERT_INT_EQ(f->sections[0].origin, 0);
	ASSERT_INT_EQ(f->sections[0].length, 2048);
	ASSERT_STR_EQ(f->sections[0].label, "BODY[HEADER.FIELDS (From Subject x-Y)]<0>");
	ASSERT_INT_EQ(f->items, IMAP_FETCH_SECTIONS);
	ASSERT_TRUE(!f->sets_seen);
	imap_fetch_free(&f);

	f = fetch_of("a FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)] BODY[1.2.MIME] "
	    "BINARY.PEEK[1.2]<100.200> BINARY.SIZE[3] BODY[] BODY[4.TEXT]<5.6>)\r\n", &r, &err);
	ASSERT_INT_EQ(r, 0);
	ASSERT_INT_EQ(f->nsections, 6);
	ASSERT_STR_EQ(f->sections[0].label, "BODY[HEADER.FIELDS (DATE FROM)]");
	ASSERT_TRUE(!f->sections[0].peek);
	ASSERT_STR_EQ(f->sections[1].label, "BODY[1.2.MIME]");
	ASSERT_INT_EQ(f->sections[1].nparts, 2);
	ASSERT_INT_EQ(f->sections[1].part[0], 1);
	ASSERT_INT_EQ(f->sections[1].part[1], 2);
	ASSERT_INT_EQ(f->sections[1].spec, IMAP_SPEC_MIME);
	ASSERT_STR_EQ(f->sections[2].label, "BINARY[1.2]<100>");
	ASSERT_INT_EQ(f->sections[2].kind, IMAP_SECTION_BINARY);
	ASSERT_TRUE(f->sections[2].peek);
	ASSERT_INT_EQ(f->sections[2].origin, 100);
	ASSERT_INT_EQ(f->sections[2].length, 200);
	ASSERT_STR_EQ(f->sections[3].label, "BINARY.SIZE[3]");
	ASSERT_INT_EQ(f->sections[3].kind, IMAP_SECTION_BINARY_SIZE);
	ASSERT_STR_EQ(f->sections[4].label, "BODY[]");
	ASSERT_INT_EQ(f->sections[4].spec, IMAP_SPEC_NONE);
	ASSERT_STR_EQ(f->sections[5].label, "BODY[4.TEXT]<5>");
	ASSERT_TRUE(f->sets_seen);
	ASSERT_INT_EQ(f->items, IMAP_FETCH_FLAGS | IMAP_FETCH_SECTIONS | IMAP_FETCH_BINARY_SIZE);
	imap_fetch_free(&f);

	ASSERT_STR_EQ(sec_label("a FETCH 1 body[header]\r\n", 0), "BODY[HEADER]");
	ASSERT_STR_EQ(sec_label("a FETCH 1 BODY[TEXT]\r\n", 0), "BODY[TEXT]");
	ASSERT_STR_EQ(sec_label("a FETCH 1 BODY[1]\r\n", 0), "BODY[1]");
	ASSERT_STR_EQ(sec_label("a FETCH 1 BODY[1.HEADER]\r\n", 0), "BODY[1.HEADER]");
	ASSERT_STR_EQ(sec_label("a FETCH 1 BODY[3.HEADER.FIELDS.NOT (a)]\r\n", 0),
	    "BODY[3.HEADER.FIELDS.NOT (a)]");
	ASSERT_STR_EQ(sec_label("a FETCH 1 BINARY[]\r\n", 0), "BINARY[]");
	ASSERT_STR_EQ(sec_label("a FETCH 1 BODY[]<0.1>\r\n", 0), "BODY[]<0>");
	ASSERT_STR_EQ(sec_label("a FETCH 1 BODY[HEADER.FIELDS (\"a(b\")]\r\n", 0),
	    "BODY[HEADER.FIELDS (\"a(b\")]");
	ASSERT_STR_EQ(sec_label("a FETCH 1 BODY[]<9223372036854775807.9223372036854775807>\r\n", 0),
	    "BODY[]<9223372036854775807>");
	ASSERT_STR_EQ(sec_label("a FETCH 1 BODY[1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19."
	    "20.21.22.23.24.25.26.27.28.29.30.31.32]\r\n", 0),
	    "BODY[1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.24.25.26.27.28.29."
	    "30.31.32]");
	ASSERT_STR_EQ(sec_label("a FETCH 1 BODY[1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19."
	    "20.21.22.23.24.25.26.27.28.29.30.31.32.33]\r\n", 0), "ERR -7 section part too deep");
	{
		static const char *const bad[] = {
			"a FETCH 1 BODY[MIME]\r\n",
			"a FETCH 1 BODY[0]\r\n",
			"a FETCH 1 BODY[01]\r\n",
			"a FETCH 1 BODY[1.]\r\n",
			"a FETCH 1 BODY[1x]\r\n",
			"a FETCH 1 BODY[.1]\r\n",
			"a FETCH 1 BODY[HEADERX]\r\n",
			"a FETCH 1 BODY[HEADER.FIELDS]\r\n",
			"a FETCH 1 BODY[HEADER.FIELDS ()]\r\n",
			"a FETCH 1 BODY[HEADER.FIELDS (a:b)]\r\n",
			"a FETCH 1 BODY[HEADER.FIELDS (\"\")]\r\n",
			"a FETCH 1 BODY[HEADER.FIELDS (a  b)]\r\n",
			"a FETCH 1 BODY[HEADER.FIELDS (a)x]\r\n",
			"a FETCH 1 BODY[TEXT]x\r\n",
			"a FETCH 1 BODY[TEXT]<1>\r\n",
			"a FETCH 1 BODY[TEXT]<1.0>\r\n",
			"a FETCH 1 BODY[TEXT]<1.01>\r\n",
			"a FETCH 1 BODY[TEXT]<.1>\r\n",
			"a FETCH 1 BODY[TEXT]<1.2\r\n",
			"a FETCH 1 BODY[]<9223372036854775808.1>\r\n",
			"a FETCH 1 BINARY[TEXT]\r\n",
			"a FETCH 1 BINARY[1.MIME]\r\n",
			"a FETCH 1 BINARY.SIZE[1]<0.1>\r\n",
			"a FETCH 1 BODY.PEEKX[]\r\n",
			"a FETCH 1 FLAGS[]\r\n",
			"a FETCH 1 BODY[4294967296]\r\n",
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			struct imap_cmd *cmd = PARSE(bad[i]);

			if (cmd == NULL)	/* not even a valid command line */
				continue;
			f = NULL;
			err = NULL;
			r = imap_fetch_parse(cmd->args, cmd->nargs, &f, &err);
			if (r != -EPROTO || f != NULL || err == NULL)
				FAIL_AT("FETCH section accepted %s (%d)", bad[i], r);
			imap_cmd_free(&cmd);
		}
	}
}

TEST(fetch_bounds)
{
	char *line = malloc(20000);
	struct imap_cmd *cmd;
	struct imap_fetch *f = NULL;
	const char *err = NULL;
	size_t n;

	ASSERT_TRUE(line != NULL);
	for (int count = 256; count <= 257; count++) {
		n = (size_t)sprintf(line, "a FETCH 1 (");
		for (int i = 0; i < count; i++)
			n += (size_t)sprintf(line + n, "%sBODY.PEEK[%d]", i ? " " : "", i + 1);
		n += (size_t)sprintf(line + n, ")\r\n");
		cmd = parse(line, n);
		ASSERT_TRUE(cmd != NULL);
		if (count == 256) {
			ASSERT_INT_EQ(imap_fetch_parse(cmd->args, cmd->nargs, &f, &err), 0);
			ASSERT_INT_EQ(f->nsections, 256);
			ASSERT_STR_EQ(f->sections[255].label, "BODY[256]");
			ASSERT_INT_EQ(f->sections[100].part[0], 101);
			imap_fetch_free(&f);
		} else {
			ASSERT_INT_EQ(imap_fetch_parse(cmd->args, cmd->nargs, &f, &err), -E2BIG);
			ASSERT_STR_EQ(err, "too many body sections");
			ASSERT_TRUE(f == NULL);
		}
		imap_cmd_free(&cmd);
	}
	for (int count = 256; count <= 257; count++) {
		n = (size_t)sprintf(line, "a FETCH 1 BODY[HEADER.FIELDS (");
		for (int i = 0; i < count; i++)
			n += (size_t)sprintf(line + n, "%sX-%d", i ? " " : "", i);
		n += (size_t)sprintf(line + n, ")]\r\n");
		cmd = parse(line, n);
		ASSERT_TRUE(cmd != NULL);
		if (count == 256) {
			ASSERT_INT_EQ(imap_fetch_parse(cmd->args, cmd->nargs, &f, &err), 0);
			ASSERT_INT_EQ(f->sections[0].nfields, 256);
			ASSERT_STR_EQ(f->sections[0].fields[255], "X-255");
			imap_fetch_free(&f);
		} else {
			ASSERT_INT_EQ(imap_fetch_parse(cmd->args, cmd->nargs, &f, &err), -E2BIG);
			ASSERT_STR_EQ(err, "too many header fields");
		}
		imap_cmd_free(&cmd);
	}
	free(line);
}

/* ---- SEARCH ---- */

static const char *const sk_names[] = {
	[IMAP_SK_AND] = "AND", [IMAP_SK_OR] = "OR", [IMAP_SK_NOT] = "NOT",
	[IMAP_SK_ALL] = "ALL", [IMAP_SK_SEQSET] = "SET", [IMAP_SK_UID] = "UID",
	[IMAP_SK_ANSWERED] = "ANSWERED", [IMAP_SK_DELETED] = "DELETED",
	[IMAP_SK_DRAFT] = "DRAFT", [IMAP_SK_FLAGGED] = "FLAGGED", [IMAP_SK_SEEN] = "SEEN",
	[IMAP_SK_RECENT] = "RECENT", [IMAP_SK_NEW] = "NEW", [IMAP_SK_OLD] = "OLD",
	[IMAP_SK_UNANSWERED] = "UNANSWERED", [IMAP_SK_UNDELETED] = "UNDELETED",
	[IMAP_SK_UNDRAFT] = "UNDRAFT", [IMAP_SK_UNFLAGGED] = "UNFLAGGED",
	[IMAP_SK_UNSEEN] = "UNSEEN", [IMAP_SK_KEYWORD] = "KEYWORD",
	[IMAP_SK_UNKEYWORD] = "UNKEYWORD", [IMAP_SK_BCC] = "BCC", [IMAP_SK_BODY] = "BODY",
	[IMAP_SK_CC] = "CC", [IMAP_SK_FROM] = "FROM", [IMAP_SK_SUBJECT] = "SUBJECT",
	[IMAP_SK_TEXT] = "TEXT", [IMAP_SK_TO] = "TO", [IMAP_SK_HEADER] = "HEADER",
	[IMAP_SK_BEFORE] = "BEFORE", [IMAP_SK_ON] = "ON", [IMAP_SK_SINCE] = "SINCE",
	[IMAP_SK_SENTBEFORE] = "SENTBEFORE", [IMAP_SK_SENTON] = "SENTON",
	[IMAP_SK_SENTSINCE] = "SENTSINCE", [IMAP_SK_SAVEDBEFORE] = "SAVEDBEFORE",
	[IMAP_SK_SAVEDON] = "SAVEDON", [IMAP_SK_SAVEDSINCE] = "SAVEDSINCE",
	[IMAP_SK_SAVEDATESUPPORTED] = "SAVEDATESUPPORTED", [IMAP_SK_LARGER] = "LARGER",
	[IMAP_SK_SMALLER] = "SMALLER", [IMAP_SK_OLDER] = "OLDER",
	[IMAP_SK_YOUNGER] = "YOUNGER", [IMAP_SK_MODSEQ] = "MODSEQ",
	[IMAP_SK_EMAILID] = "EMAILID", [IMAP_SK_THREADID] = "THREADID",
};

/* renders the AST: "(AND FLAGGED SINCE:1994-2-1 (NOT FROM:Smith))" */
static void sk_render(const struct imap_search_key *k, char *out, size_t cap, int depth)
{
	size_t n = strlen(out);
	const char *name = (size_t)k->type < sizeof(sk_names) / sizeof(sk_names[0]) &&
	    sk_names[k->type] ? sk_names[k->type] : "?";

	if (depth > 100 || n + 200 > cap)
		return;
	switch (k->type) {
	case IMAP_SK_AND: case IMAP_SK_OR: case IMAP_SK_NOT:
		snprintf(out + n, cap - n, "(%s", name);
		for (const struct imap_search_key *c = k->child; c != NULL; c = c->next) {
			n = strlen(out);
			snprintf(out + n, cap - n, " ");
			sk_render(c, out, cap, depth + 1);
		}
		n = strlen(out);
		snprintf(out + n, cap - n, ")");
		return;
	case IMAP_SK_SEQSET: case IMAP_SK_UID:
		snprintf(out + n, cap - n, "%s:%s", name, seq_fmt(k->set));
		return;
	case IMAP_SK_HEADER:
		snprintf(out + n, cap - n, "HEADER:%s:%s", k->field, k->str);
		return;
	case IMAP_SK_BEFORE: case IMAP_SK_ON: case IMAP_SK_SINCE: case IMAP_SK_SENTBEFORE:
	case IMAP_SK_SENTON: case IMAP_SK_SENTSINCE: case IMAP_SK_SAVEDBEFORE:
	case IMAP_SK_SAVEDON: case IMAP_SK_SAVEDSINCE:
		snprintf(out + n, cap - n, "%s:%d-%d-%d", name, k->date.year, k->date.mon,
		    k->date.day);
		return;
	case IMAP_SK_LARGER: case IMAP_SK_SMALLER: case IMAP_SK_OLDER: case IMAP_SK_YOUNGER:
		snprintf(out + n, cap - n, "%s:%" PRIu64, name, k->num);
		return;
	case IMAP_SK_MODSEQ:
		snprintf(out + n, cap - n, "MODSEQ:%s:%d:%" PRIu64, k->entry ? k->entry : "-",
		    (int)k->entry_type, k->num);
		return;
	default:
		if (k->str != NULL)
			snprintf(out + n, cap - n, "%s:%s", name, k->str);
		else
			snprintf(out + n, cap - n, "%s", name);
		return;
	}
}

static const char *search_str(const char *line, size_t len)
{
	static char out[4096];
	struct imap_cmd *cmd = parse(line, len);
	struct imap_search *s = NULL;
	const char *err = NULL;
	int r;

	if (cmd == NULL)
		return "PARSE FAILED";
	r = imap_search_parse(cmd->args, cmd->nargs, &s, &err);
	if (r != 0) {
		snprintf(out, sizeof(out), "ERR %d %s", r, err ? err : "(no message)");
		if (s != NULL)
			snprintf(out, sizeof(out), "ERR BUT RESULT");
		imap_cmd_free(&cmd);
		return out;
	}
	out[0] = 0;
	if (s->return_given)
		snprintf(out, sizeof(out), "RET%x ", s->return_opts);
	if (s->charset != IMAP_CHARSET_DEFAULT)
		snprintf(out + strlen(out), sizeof(out) - strlen(out), "CS%d ", (int)s->charset);
	if (s->uses_saved)
		snprintf(out + strlen(out), sizeof(out) - strlen(out), "$ ");
	sk_render(s->root, out, sizeof(out), 0);
	imap_search_free(&s);
	imap_cmd_free(&cmd);
	return out;
}

#define SEARCH(line) search_str(line, strlen(line))

TEST(search_rfc_examples)
{
	ASSERT_STR_EQ(SEARCH("A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n"),
	    "(AND FLAGGED SINCE:1994-2-1 (NOT FROM:Smith))");
	ASSERT_STR_EQ(SEARCH("A283 SEARCH TEXT \"string not in mailbox\"\r\n"),
	    "(AND TEXT:string not in mailbox)");
	ASSERT_STR_EQ(SEARCH("A284 SEARCH CHARSET UTF-8 TEXT {12+}\r\n\xd0\xa0\xd0\xb5\xd0\xbb"
	    "\xd0\xb5\xd0\xb2\xd0\xb0\r\n"),
	    "CS2 (AND TEXT:\xd0\xa0\xd0\xb5\xd0\xbb\xd0\xb5\xd0\xb2\xd0\xb0)");
	ASSERT_STR_EQ(SEARCH("A285 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT "
	    "FROM \"Smith\"\r\n"), "RET9 (AND FLAGGED SINCE:1994-2-1 (NOT FROM:Smith))");
	ASSERT_STR_EQ(SEARCH("a SEARCH RETURN () 1:*\r\n"), "RET4 (AND SET:1:*)");
	ASSERT_STR_EQ(SEARCH("a SEARCH RETURN (SAVE) UNSEEN\r\n"), "RET10 (AND UNSEEN)");
	ASSERT_STR_EQ(SEARCH("a UID SEARCH UID $ SMALLER 4096\r\n"),
	    "$ (AND UID:$ SMALLER:4096)");
	ASSERT_STR_EQ(SEARCH("a SEARCH $ OR 1:3 (DELETED UNSEEN)\r\n"),
	    "$ (AND SET:$ (OR SET:1:3 (AND DELETED UNSEEN)))");
	ASSERT_STR_EQ(SEARCH("a SEARCH OR OR a b c\r\n"), "ERR -71 unknown search key");
	ASSERT_STR_EQ(SEARCH("a SEARCH OR OR SEEN DRAFT NEW\r\n"),
	    "(AND (OR (OR SEEN DRAFT) NEW))");
	ASSERT_STR_EQ(SEARCH("a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338\r\n"),
	    "(AND MODSEQ:/flags/\\draft:3:620162338)");
	ASSERT_STR_EQ(SEARCH("a SEARCH MODSEQ 0\r\n"), "(AND MODSEQ:-:0:0)");
	ASSERT_STR_EQ(SEARCH("a SEARCH MODSEQ \"/flags/$Junk\" priv 5\r\n"),
	    "(AND MODSEQ:/flags/$Junk:1:5)");
	ASSERT_STR_EQ(SEARCH("a SEARCH HEADER Message-ID \"<x@y>\" header X \"\"\r\n"),
	    "(AND HEADER:Message-ID:<x@y> HEADER:X:)");
	ASSERT_STR_EQ(SEARCH("a SEARCH KEYWORD $Forwarded UNKEYWORD junk\r\n"),
	    "(AND KEYWORD:$Forwarded UNKEYWORD:junk)");
	ASSERT_STR_EQ(SEARCH("a SEARCH SAVEDBEFORE 1-Jan-2020 SAVEDON \"2-Jan-2020\" "
	    "SAVEDSINCE 3-Jan-2020 SAVEDATESUPPORTED\r\n"),
	    "(AND SAVEDBEFORE:2020-1-1 SAVEDON:2020-1-2 SAVEDSINCE:2020-1-3 SAVEDATESUPPORTED)");
	ASSERT_STR_EQ(SEARCH("a SEARCH EMAILID M6d99ac3275bb4e THREADID T64b478a75b7ea9\r\n"),
	    "(AND EMAILID:M6d99ac3275bb4e THREADID:T64b478a75b7ea9)");
	ASSERT_STR_EQ(SEARCH("a SEARCH OLDER 3600 YOUNGER 60 LARGER 0 SMALLER "
	    "9223372036854775807\r\n"),
	    "(AND OLDER:3600 YOUNGER:60 LARGER:0 SMALLER:9223372036854775807)");
	ASSERT_STR_EQ(SEARCH("a SEARCH ALL ANSWERED DELETED DRAFT FLAGGED NEW OLD RECENT SEEN "
	    "UNANSWERED UNDELETED UNDRAFT UNFLAGGED UNSEEN\r\n"),
	    "(AND ALL ANSWERED DELETED DRAFT FLAGGED NEW OLD RECENT SEEN UNANSWERED UNDELETED "
	    "UNDRAFT UNFLAGGED UNSEEN)");
	ASSERT_STR_EQ(SEARCH("a SEARCH BCC a CC b FROM c TO d SUBJECT e BODY f TEXT NIL\r\n"),
	    "(AND BCC:a CC:b FROM:c TO:d SUBJECT:e BODY:f TEXT:NIL)");
	ASSERT_STR_EQ(SEARCH("a SEARCH BEFORE 1-Feb-1994 ON 2-Feb-1994 SENTBEFORE 3-Feb-1994 "
	    "SENTON 4-Feb-1994 SENTSINCE 5-Feb-1994\r\n"),
	    "(AND BEFORE:1994-2-1 ON:1994-2-2 SENTBEFORE:1994-2-3 SENTON:1994-2-4 "
	    "SENTSINCE:1994-2-5)");
	ASSERT_STR_EQ(SEARCH("a SEARCH charset us-ascii (seen (not deleted))\r\n"),
	    "CS1 (AND (AND SEEN (AND (NOT DELETED))))");
	ASSERT_STR_EQ(SEARCH("a SEARCH 2:4,*\r\n"), "(AND SET:2:4,*)");
	ASSERT_STR_EQ(SEARCH("a SEARCH UID 1:* NOT UID 5\r\n"), "(AND UID:1:* (NOT UID:5))");
}

TEST(search_errors)
{
	ASSERT_STR_EQ(SEARCH("a SEARCH CHARSET ISO-8859-1 TEXT x\r\n"),
	    "ERR -84 unsupported charset");
	ASSERT_INT_EQ(IMAP_ERR_BADCHARSET, -84);
	ASSERT_STR_EQ(SEARCH("a SEARCH\r\n"), "ERR -71 missing search keys");
	ASSERT_STR_EQ(SEARCH("a SEARCH CHARSET UTF-8\r\n"), "ERR -71 missing search keys");
	ASSERT_STR_EQ(SEARCH("a SEARCH RETURN (MIN)\r\n"), "ERR -71 missing search keys");
	ASSERT_STR_EQ(SEARCH("a SEARCH RETURN (FOO) ALL\r\n"),
	    "ERR -71 unknown search return option");
	ASSERT_STR_EQ(SEARCH("a SEARCH FOO\r\n"), "ERR -71 unknown search key");
	ASSERT_STR_EQ(SEARCH("a SEARCH FROM\r\n"), "ERR -71 missing search key argument");
	ASSERT_STR_EQ(SEARCH("a SEARCH NOT\r\n"), "ERR -71 missing search key argument");
	ASSERT_STR_EQ(SEARCH("a SEARCH OR SEEN\r\n"), "ERR -71 OR needs two search keys");
	ASSERT_STR_EQ(SEARCH("a SEARCH ()\r\n"), "ERR -71 empty search key list");
	ASSERT_STR_EQ(SEARCH("a SEARCH \"ALL\"\r\n"), "ERR -71 search key expected");
	ASSERT_STR_EQ(SEARCH("a SEARCH SINCE 30-Feb-2020\r\n"), "ERR -71 invalid date");
	ASSERT_STR_EQ(SEARCH("a SEARCH SINCE (1-Feb-2020)\r\n"), "ERR -71 date expected");
	ASSERT_STR_EQ(SEARCH("a SEARCH LARGER -1\r\n"), "ERR -71 invalid number");
	ASSERT_STR_EQ(SEARCH("a SEARCH LARGER 9223372036854775808\r\n"),
	    "ERR -71 invalid number");
	ASSERT_STR_EQ(SEARCH("a SEARCH OLDER 0\r\n"), "ERR -71 invalid number");
	ASSERT_STR_EQ(SEARCH("a SEARCH UID 0\r\n"), "ERR -71 invalid sequence set");
	ASSERT_STR_EQ(SEARCH("a SEARCH 1:\r\n"), "ERR -71 invalid sequence set");
	ASSERT_STR_EQ(SEARCH("a SEARCH KEYWORD \\Seen\r\n"), "ERR -71 invalid keyword");
	ASSERT_STR_EQ(SEARCH("a SEARCH EMAILID a.b\r\n"), "ERR -71 invalid object id");
	ASSERT_STR_EQ(SEARCH("a SEARCH MODSEQ \"/foo/x\" all 1\r\n"),
	    "ERR -71 invalid MODSEQ entry name");
	ASSERT_STR_EQ(SEARCH("a SEARCH MODSEQ \"/flags/\\\\Foo\" all 1\r\n"),
	    "ERR -71 invalid MODSEQ entry name");
	ASSERT_STR_EQ(SEARCH("a SEARCH MODSEQ \"/flags/\\\\Seen\" any 1\r\n"),
	    "ERR -71 invalid MODSEQ entry type");
	ASSERT_STR_EQ(SEARCH("a SEARCH MODSEQ \"/flags/\\\\Seen\" all\r\n"),
	    "ERR -71 missing MODSEQ value");
	ASSERT_STR_EQ(SEARCH("a SEARCH HEADER X\r\n"), "ERR -71 missing HEADER value");
	ASSERT_STR_EQ(SEARCH("a SEARCH TEXT ~{1+}\r\nx\r\n"), "ERR -71 string expected");
	ASSERT_STR_EQ(SEARCH("a SEARCH TEXT (x)\r\n"), "ERR -71 string expected");
}

TEST(search_bombs)
{
	char *line = malloc(100000);
	size_t n;

	ASSERT_TRUE(line != NULL);
	/* NOT chain: 63 NOTs fit (depth 64 with the key itself), more do not */
	n = (size_t)sprintf(line, "a SEARCH");
	for (int i = 0; i < 63; i++)
		n += (size_t)sprintf(line + n, " NOT");
	n += (size_t)sprintf(line + n, " SEEN\r\n");
	ASSERT_TRUE(strncmp(search_str(line, n), "(AND (NOT (NOT", 14) == 0);
	n = (size_t)sprintf(line, "a SEARCH");
	for (int i = 0; i < 5000; i++)
		n += (size_t)sprintf(line + n, " NOT");
	n += (size_t)sprintf(line + n, " SEEN\r\n");
	ASSERT_STR_EQ(search_str(line, n), "ERR -7 search program nested too deep");
	/* OR bomb */
	n = (size_t)sprintf(line, "a SEARCH");
	for (int i = 0; i < 4000; i++)
		n += (size_t)sprintf(line + n, " OR SEEN");
	n += (size_t)sprintf(line + n, " SEEN\r\n");
	ASSERT_STR_EQ(search_str(line, n), "ERR -7 search program nested too deep");
	/* parentheses (within the parser's depth 32) mixed with NOT: 32 groups and 32
	 * NOTs put SEEN at depth 65 */
	n = (size_t)sprintf(line, "a SEARCH ");
	for (int i = 0; i < 32; i++)
		n += (size_t)sprintf(line + n, "(NOT ");
	n += (size_t)sprintf(line + n, "SEEN");
	for (int i = 0; i < 32; i++)
		line[n++] = ')';
	n += (size_t)sprintf(line + n, "\r\n");
	ASSERT_STR_EQ(search_str(line, n), "ERR -7 search program nested too deep");
	/* key count */
	n = (size_t)sprintf(line, "a SEARCH");
	for (int i = 0; i < 9999; i++)
		n += (size_t)sprintf(line + n, " ALL");
	n += (size_t)sprintf(line + n, "\r\n");
	ASSERT_TRUE(strncmp(search_str(line, n), "(AND ALL ALL", 12) == 0);
	n = (size_t)sprintf(line, "a SEARCH (");
	for (int i = 0; i < 9999; i++)
		n += (size_t)sprintf(line + n, "%sALL", i ? " " : "");
	n += (size_t)sprintf(line + n, ")\r\n");
	/* 9999 keys + group + root = 10001 > 10000; the parser's max_args (10000) would
	 * also stop 10001 args, so this is the key bound */
	ASSERT_STR_EQ(search_str(line, n), "ERR -7 search program too large");
	free(line);
}

/* ---- STATUS, LIST, SELECT, APPEND ---- */

TEST(status_items)
{
	struct imap_cmd *cmd = PARSE("a STATUS blurdybloop (UIDNEXT MESSAGES unseen DELETED "
	    "SIZE RECENT HIGHESTMODSEQ APPENDLIMIT MAILBOXID UIDVALIDITY)\r\n");
	unsigned items = 0;
	const char *err = NULL;

	ASSERT_TRUE(cmd != NULL);
	ASSERT_INT_EQ(imap_status_items_parse(&cmd->args[1], &items, &err), 0);
	ASSERT_INT_EQ(items, 0x3ff);
	ASSERT_INT_EQ(imap_status_items_parse(&cmd->args[0], &items, &err), -EPROTO);
	imap_cmd_free(&cmd);
	cmd = PARSE("a STATUS x () (FOO) (MESSAGES (UIDNEXT))\r\n");
	ASSERT_INT_EQ(imap_status_items_parse(&cmd->args[1], &items, &err), -EPROTO);
	ASSERT_INT_EQ(imap_status_items_parse(&cmd->args[2], &items, &err), -EPROTO);
	ASSERT_STR_EQ(err, "unknown status item");
	ASSERT_INT_EQ(imap_status_items_parse(&cmd->args[3], &items, &err), -EPROTO);
	imap_cmd_free(&cmd);
}

static struct imap_list_args *list_of(const char *line, int *r, const char **err)
{
	struct imap_cmd *cmd = PARSE(line);
	struct imap_list_args *l = NULL;

	*r = cmd ? imap_list_parse(cmd->args, cmd->nargs, &l, err) : -999;
	/* LIST results point into the command: keep it alive for the test by leaking
	 * nothing: tests copy what they need before freeing */
	if (l != NULL) {
		static char store[8][256];

		for (size_t i = 0; i < l->npatterns && i < 8; i++) {
			snprintf(store[i], sizeof(store[i]), "%.*s", (int)l->patterns[i].len,
			    l->patterns[i].s);
			l->patterns[i].s = store[i];
		}
		{
			static char ref[256];

			snprintf(ref, sizeof(ref), "%.*s", (int)l->ref_len, l->ref);
			l->ref = ref;
		}
	}
	imap_cmd_free(&cmd);
	return l;
}

TEST(list_args)
{
	struct imap_list_args *l;
	const char *err = NULL;
	int r;

	l = list_of("A101 LIST \"\" \"\"\r\n", &r, &err);
	ASSERT_INT_EQ(r, 0);
	ASSERT_TRUE(!l->extended);
	ASSERT_INT_EQ(l->ref_len, 0);
	ASSERT_INT_EQ(l->npatterns, 1);
	ASSERT_INT_EQ(l->patterns[0].len, 0);
	imap_list_args_free(&l);
	ASSERT_TRUE(l == NULL);

	l = list_of("A202 LIST ~/Mail/ %\r\n", &r, &err);
	ASSERT_INT_EQ(r, 0);
	ASSERT_STR_EQ(l->ref, "~/Mail/");
	ASSERT_STR_EQ(l->patterns[0].s, "%");
	imap_list_args_free(&l);

	l = list_of("A02 LIST (SUBSCRIBED RECURSIVEMATCH remote) \"\" (\"%\" foo/* INBOX) "
	    "RETURN (CHILDREN STATUS (MESSAGES UNSEEN) SPECIAL-USE subscribed)\r\n", &r, &err);
	ASSERT_INT_EQ(r, 0);
	ASSERT_TRUE(l->extended);
	ASSERT_INT_EQ(l->select, IMAP_LIST_SEL_SUBSCRIBED | IMAP_LIST_SEL_RECURSIVEMATCH |
	    IMAP_LIST_SEL_REMOTE);
	ASSERT_INT_EQ(l->npatterns, 3);
	ASSERT_STR_EQ(l->patterns[1].s, "foo/*");
	ASSERT_INT_EQ(l->ret, IMAP_LIST_RET_CHILDREN | IMAP_LIST_RET_STATUS |
	    IMAP_LIST_RET_SPECIAL_USE | IMAP_LIST_RET_SUBSCRIBED);
	ASSERT_INT_EQ(l->status_items, IMAP_STATUS_MESSAGES | IMAP_STATUS_UNSEEN);
	imap_list_args_free(&l);

	l = list_of("a LIST () \"\" % RETURN ()\r\n", &r, &err);
	ASSERT_INT_EQ(r, 0);
	ASSERT_TRUE(l->extended);
	ASSERT_INT_EQ(l->select, 0);
	imap_list_args_free(&l);
	l = list_of("a LIST (SPECIAL-USE RECURSIVEMATCH) \"\" *\r\n", &r, &err);
	ASSERT_INT_EQ(r, 0);
	imap_list_args_free(&l);
	{
		static const char *const bad[] = {
			"a LIST (RECURSIVEMATCH) \"\" %\r\n",
			"a LIST (REMOTE RECURSIVEMATCH) \"\" %\r\n",
			"a LIST (FOO) \"\" %\r\n",
			"a LIST \"\"\r\n",
			"a LIST\r\n",
			"a LIST \"\" ()\r\n",
			"a LIST \"\" % RETURN\r\n",
			"a LIST \"\" % RETURN (FOO)\r\n",
			"a LIST \"\" % RETURN (STATUS)\r\n",
			"a LIST \"\" % RETURN (STATUS ())\r\n",
			"a LIST \"\" % RETURN (STATUS (MESSAGES) STATUS (UNSEEN))\r\n",
			"a LIST \"\" % FOO (x)\r\n",
			"a LIST \"\" % RETURN () x\r\n",
			"a LIST % \"\"\r\n",
			"a LIST \"\" ((x))\r\n",
			"a LIST \"\" BODY[x y]\r\n",
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			err = NULL;
			l = list_of(bad[i], &r, &err);
			if (r != -EPROTO || l != NULL || err == NULL)
				FAIL_AT("LIST accepted %s (%d)", bad[i], r);
		}
	}
}

TEST(list_match)
{
	ASSERT_INT_EQ(imap_list_match("*", 1, "a/b/c", 5, '/'), 1);
	ASSERT_INT_EQ(imap_list_match("%", 1, "a/b/c", 5, '/'), 0);
	ASSERT_INT_EQ(imap_list_match("%", 1, "abc", 3, '/'), 1);
	ASSERT_INT_EQ(imap_list_match("%", 1, "", 0, '/'), 1);
	ASSERT_INT_EQ(imap_list_match("", 0, "", 0, '/'), 1);
	ASSERT_INT_EQ(imap_list_match("", 0, "a", 1, '/'), 0);
	ASSERT_INT_EQ(imap_list_match("a/%", 3, "a/b", 3, '/'), 1);
	ASSERT_INT_EQ(imap_list_match("a/%", 3, "a/b/c", 5, '/'), 0);
	ASSERT_INT_EQ(imap_list_match("a/%/c", 5, "a/b/c", 5, '/'), 1);
	ASSERT_INT_EQ(imap_list_match("a/*", 3, "a/b/c", 5, '/'), 1);
	ASSERT_INT_EQ(imap_list_match("*c", 2, "a/b/c", 5, '/'), 1);
	ASSERT_INT_EQ(imap_list_match("%c", 2, "a/b/c", 5, '/'), 0);
	ASSERT_INT_EQ(imap_list_match("a%", 2, "a/b", 3, '/'), 0);
	ASSERT_INT_EQ(imap_list_match("a%", 2, "a/b", 3, 0), 1);
	ASSERT_INT_EQ(imap_list_match("foo*bar", 7, "foobar", 6, '/'), 1);
	ASSERT_INT_EQ(imap_list_match("foo*bar", 7, "foo/x/bar", 9, '/'), 1);
	ASSERT_INT_EQ(imap_list_match("foo%bar", 7, "foo/x/bar", 9, '/'), 0);
	ASSERT_INT_EQ(imap_list_match("foo%bar", 7, "fooxbar", 7, '/'), 1);
	ASSERT_INT_EQ(imap_list_match("Foo", 3, "foo", 3, '/'), 0);
	/* INBOX is case-insensitive */
	ASSERT_INT_EQ(imap_list_match("inbox", 5, "INBOX", 5, '/'), 1);
	ASSERT_INT_EQ(imap_list_match("InBox/%", 7, "INBOX/x", 7, '/'), 1);
	ASSERT_INT_EQ(imap_list_match("InBox/X", 7, "INBOX/x", 7, '/'), 0);
	ASSERT_INT_EQ(imap_list_match("inboxes", 7, "INBOXes", 7, '/'), 0);
	/* no exponential blowup */
	{
		char pat[1025], name[4096];

		for (int i = 0; i < 1024; i++)
			pat[i] = i % 2 ? '*' : 'a';
		pat[1023] = 'b';	/* "a*a*...a*b" never matches a run of a's */
		memset(name, 'a', sizeof(name));
		ASSERT_INT_EQ(imap_list_match(pat, 1024, name, sizeof(name), '/'), 0);
		pat[1023] = '*';
		ASSERT_INT_EQ(imap_list_match(pat, 1024, name, 512, '/'), 1);
		ASSERT_INT_EQ(imap_list_match(pat, 1025, name, 512, '/'), -E2BIG);
	}
}

TEST(select_params)
{
	struct imap_cmd *cmd;
	struct imap_select_params *sp = NULL;
	const char *err = NULL;

	cmd = PARSE("A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n");
	ASSERT_INT_EQ(imap_select_params_parse(cmd->args + 1, cmd->nargs - 1, &sp, &err), 0);
	ASSERT_TRUE(sp->qresync);
	ASSERT_TRUE(!sp->condstore);
	ASSERT_INT_EQ(sp->uidvalidity, 67890007);
	ASSERT_INT_EQ(sp->modseq, 20050715194045000ULL);
	ASSERT_STR_EQ(seq_fmt(sp->known_uids), "41,43:211,214:541");
	ASSERT_TRUE(sp->match_seqs == NULL);
	imap_select_params_free(&sp);
	ASSERT_TRUE(sp == NULL);
	imap_cmd_free(&cmd);
	cmd = PARSE("B02 SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541 "
	    "(1:15,16 1:15,55)) CONDSTORE)\r\n");
	ASSERT_INT_EQ(imap_select_params_parse(cmd->args + 1, cmd->nargs - 1, &sp, &err), 0);
	ASSERT_TRUE(sp->condstore);
	ASSERT_STR_EQ(seq_fmt(sp->match_seqs), "1:15,16");
	ASSERT_STR_EQ(seq_fmt(sp->match_uids), "1:15,55");
	imap_select_params_free(&sp);
	imap_cmd_free(&cmd);
	cmd = PARSE("a EXAMINE x (QRESYNC (1 2 (1 2)))\r\n");
	ASSERT_INT_EQ(imap_select_params_parse(cmd->args + 1, cmd->nargs - 1, &sp, &err), 0);
	ASSERT_TRUE(sp->known_uids == NULL);
	ASSERT_TRUE(sp->match_seqs != NULL);
	imap_select_params_free(&sp);
	imap_cmd_free(&cmd);
	cmd = PARSE("a SELECT x\r\n");
	ASSERT_INT_EQ(imap_select_params_parse(cmd->args + 1, cmd->nargs - 1, &sp, &err), 0);
	ASSERT_TRUE(!sp->condstore && !sp->qresync);
	imap_select_params_free(&sp);
	imap_cmd_free(&cmd);
	{
		static const char *const bad[] = {
			"a SELECT x ()\r\n",
			"a SELECT x (FOO)\r\n",
			"a SELECT x (CONDSTORE CONDSTORE)\r\n",
			"a SELECT x (QRESYNC)\r\n",
			"a SELECT x (QRESYNC (1))\r\n",
			"a SELECT x (QRESYNC (0 1))\r\n",
			"a SELECT x (QRESYNC (1 0))\r\n",
			"a SELECT x (QRESYNC (1 2 1:*))\r\n",
			"a SELECT x (QRESYNC (1 2 $))\r\n",
			"a SELECT x (QRESYNC (1 2 3 (1)))\r\n",
			"a SELECT x (QRESYNC (1 2 3 (1 2) 4))\r\n",
			"a SELECT x (QRESYNC (1 2 3 (1 *)))\r\n",
			"a SELECT x CONDSTORE\r\n",
			"a SELECT x (CONDSTORE) (CONDSTORE)\r\n",
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			cmd = PARSE(bad[i]);
			ASSERT_TRUE(cmd != NULL);
			err = NULL;
			if (imap_select_params_parse(cmd->args + 1, cmd->nargs - 1, &sp, &err) !=
			    -EPROTO || sp != NULL || err == NULL)
				FAIL_AT("SELECT params accepted %s", bad[i]);
			imap_cmd_free(&cmd);
		}
	}
}

TEST(append_args)
{
	static const char line[] = "a APPEND saved-messages (\\Seen) \" 7-Feb-1994 21:52:25 "
	    "-0800\" {5+}\r\nhello ~{3+}\r\n\0\1\2 (kw \\Draft) {2+}\r\nhi\r\n";
	struct imap_cmd *cmd = parse(line, sizeof(line) - 1);
	struct imap_append *ap = NULL;
	const char *err = NULL;
	char *name = NULL;

	ASSERT_TRUE(cmd != NULL);
	ASSERT_INT_EQ(imap_append_parse(cmd->args, cmd->nargs, &ap, &err), 0);
	ASSERT_INT_EQ(ap->nmsgs, 3);
	ASSERT_INT_EQ(imap_arg_mailbox(ap->mailbox, false, &name, &err), 0);
	ASSERT_STR_EQ(name, "saved-messages");
	free(name);
	ASSERT_INT_EQ(ap->msgs[0].flags.sys, IMAP_FLAG_SEEN);
	ASSERT_TRUE(ap->msgs[0].has_date);
	ASSERT_INT_EQ(ap->msgs[0].date, 760686745);
	ASSERT_INT_EQ(ap->msgs[0].tz_min, -480);
	ASSERT_INT_EQ(ap->msgs[0].len, 5);
	ASSERT_STR_EQ(ap->msgs[0].data, "hello");
	ASSERT_TRUE(!ap->msgs[0].binary);
	ASSERT_TRUE(ap->msgs[1].binary);
	ASSERT_INT_EQ(ap->msgs[1].len, 3);
	ASSERT_MEM_EQ(ap->msgs[1].data, "\0\1\2", 3);
	ASSERT_INT_EQ(ap->msgs[1].flags.sys, 0);
	ASSERT_TRUE(!ap->msgs[1].has_date);
	ASSERT_INT_EQ(ap->msgs[2].flags.sys, IMAP_FLAG_DRAFT);
	ASSERT_INT_EQ(ap->msgs[2].flags.nkw, 1);
	ASSERT_STR_EQ(ap->msgs[2].flags.kw[0], "kw");
	imap_append_free(&ap);
	ASSERT_TRUE(ap == NULL);
	imap_cmd_free(&cmd);
	{
		static const char *const bad[] = {
			"a APPEND x\r\n",
			"a APPEND x (\\Seen)\r\n",
			"a APPEND x \"hello\"\r\n",
			"a APPEND x (\\Recent) {1+}\r\nx\r\n",
			"a APPEND x \"30-Feb-1994 21:52:25 -0800\" {1+}\r\nx\r\n",
			"a APPEND x {1+}\r\nx junk\r\n",
			"a APPEND x {1+}\r\nx (\\Seen)\r\n",
			"a APPEND (x) {1+}\r\nx\r\n",
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			cmd = PARSE(bad[i]);
			if (cmd == NULL)
				continue;
			err = NULL;
			if (imap_append_parse(cmd->args, cmd->nargs, &ap, &err) != -EPROTO ||
			    ap != NULL || err == NULL)
				FAIL_AT("APPEND accepted %s", bad[i]);
			imap_cmd_free(&cmd);
		}
	}
}

/* ---- modified UTF-7 and mailbox names ---- */

static const char *m2u(const char *in)
{
	static char out[1024];
	struct imap_buf *b = NULL;
	const char *err = NULL;
	int r;

	if (imap_buf_new(512, &b) != 0)
		return "NOMEM";
	r = imap_mutf7_to_utf8(in, strlen(in), b, &err);
	if (r != 0)
		snprintf(out, sizeof(out), "ERR %d %s", r, err ? err : "");
	else
		snprintf(out, sizeof(out), "%s", b->data);
	imap_buf_free(&b);
	return out;
}

static const char *u2m(const char *in)
{
	static char out[1024];
	struct imap_buf *b = NULL;
	const char *err = NULL;
	int r;

	if (imap_buf_new(512, &b) != 0)
		return "NOMEM";
	r = imap_utf8_to_mutf7(in, strlen(in), b, &err);
	if (r != 0)
		snprintf(out, sizeof(out), "ERR %d %s", r, err ? err : "");
	else
		snprintf(out, sizeof(out), "%s", b->data);
	imap_buf_free(&b);
	return out;
}

TEST(mutf7_vectors)
{
	/* RFC 3501 5.1.3 example */
	ASSERT_STR_EQ(m2u("~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
	    "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
	ASSERT_STR_EQ(u2m("~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"),
	    "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
	ASSERT_STR_EQ(m2u("&-"), "&");
	ASSERT_STR_EQ(u2m("&"), "&-");
	ASSERT_STR_EQ(m2u("Tom &- Jerry"), "Tom & Jerry");
	ASSERT_STR_EQ(u2m("Entw\xc3\xbcrfe"), "Entw&APw-rfe");
	ASSERT_STR_EQ(m2u("Entw&APw-rfe"), "Entw\xc3\xbcrfe");
	ASSERT_STR_EQ(u2m("\xc3\xa9t\xc3\xa9"), "&AOk-t&AOk-");
	ASSERT_STR_EQ(u2m("\xf0\x9f\x93\xa7"), "&2D3c5w-");	/* U+1F4E7, surrogate pair */
	ASSERT_STR_EQ(m2u("&2D3c5w-"), "\xf0\x9f\x93\xa7");
	ASSERT_STR_EQ(u2m("a\tb"), "a&AAk-b");			/* controls are encoded */
	ASSERT_STR_EQ(m2u("a&AAk-b"), "a\tb");
	ASSERT_STR_EQ(u2m(""), "");
	ASSERT_STR_EQ(m2u(""), "");
	/* invalid encodings */
	ASSERT_STR_EQ(m2u("&"), "ERR -71 unterminated modified BASE64 run");
	ASSERT_STR_EQ(m2u("&AOk"), "ERR -71 unterminated modified BASE64 run");
	ASSERT_STR_EQ(m2u("&Jjo!-"), "ERR -71 invalid modified BASE64 character");
	ASSERT_STR_EQ(m2u("&U/BTFw-"), "ERR -71 invalid modified BASE64 character");
	ASSERT_STR_EQ(m2u("&AGE-"), "ERR -71 encoded printable ASCII");
	ASSERT_STR_EQ(m2u("&ACY-"), "ERR -71 encoded printable ASCII");
	ASSERT_STR_EQ(m2u("&AOk-&AOk-"), "ERR -71 adjacent modified BASE64 runs");
	ASSERT_STR_EQ(m2u("&AOkA6Q-"), "\xc3\xa9\xc3\xa9");
	ASSERT_STR_EQ(m2u("&AO-"), "ERR -71 empty modified BASE64 run");
	ASSERT_STR_EQ(m2u("&AOl-"), "ERR -71 bad modified BASE64 run");	/* padding bits */
	ASSERT_STR_EQ(m2u("&AOkA-"), "ERR -71 bad modified BASE64 run");	/* extra char */
	ASSERT_STR_EQ(m2u("&2D0-"), "ERR -71 bad modified BASE64 run");	/* lone high */
	ASSERT_STR_EQ(m2u("&3D0-"), "ERR -71 unpaired UTF-16 surrogate");	/* lone low */
	ASSERT_STR_EQ(m2u("&2D3YPQ-"), "ERR -71 unpaired UTF-16 surrogate");
	ASSERT_STR_EQ(m2u("&AAA-"), "ERR -71 NUL in mailbox name");
	ASSERT_STR_EQ(m2u("a\xc3\xa9"), "ERR -71 invalid character in modified UTF-7 name");
	ASSERT_STR_EQ(m2u("a\tb"), "ERR -71 invalid character in modified UTF-7 name");
	ASSERT_STR_EQ(u2m("\xc3"), "ERR -71 invalid UTF-8");
	ASSERT_STR_EQ(u2m("\xc0\xaf"), "ERR -71 invalid UTF-8");		/* overlong */
	ASSERT_STR_EQ(u2m("\xed\xa0\x80"), "ERR -71 invalid UTF-8");		/* surrogate */
	ASSERT_STR_EQ(u2m("\xf4\x90\x80\x80"), "ERR -71 invalid UTF-8");	/* > U+10FFFF */
	/* output cap */
	{
		struct imap_buf *b = NULL;
		const char *err = NULL;

		ASSERT_INT_EQ(imap_buf_new(4, &b), 0);
		ASSERT_INT_EQ(imap_mutf7_to_utf8("abcde", 5, b, &err), -E2BIG);
		ASSERT_INT_EQ(b->len, 0);
		ASSERT_INT_EQ(imap_utf8_to_mutf7("\xc3\xa9\xc3\xa9", 4, b, &err), -E2BIG);
		ASSERT_INT_EQ(b->len, 0);
		imap_buf_free(&b);
	}
}

TEST(mutf7_roundtrip)
{
	/* every BMP code point and a sample of astral ones, alone and in a run */
	struct imap_buf *m = NULL, *u = NULL;
	unsigned long seed = 12345;

	ASSERT_INT_EQ(imap_buf_new(4096, &m), 0);
	ASSERT_INT_EQ(imap_buf_new(4096, &u), 0);
	for (int iter = 0; iter < 20000; iter++) {
		char in[64];
		size_t n = 0;
		int count = 1 + iter % 5;

		for (int c = 0; c < count; c++) {
			uint32_t cp;

			seed = seed * 6364136223846793005UL + 1442695040888963407UL;
			cp = (uint32_t)(seed >> 33) % 0x110000;
			if (iter % 3 == 0)
				cp = 0x20 + cp % 0x5f;	/* mix in printable ASCII */
			if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff))
				cp = 0x41;
			if (cp < 0x80) {
				in[n++] = (char)cp;
			} else if (cp < 0x800) {
				in[n++] = (char)(0xc0 | cp >> 6);
				in[n++] = (char)(0x80 | (cp & 0x3f));
			} else if (cp < 0x10000) {
				in[n++] = (char)(0xe0 | cp >> 12);
				in[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
				in[n++] = (char)(0x80 | (cp & 0x3f));
			} else {
				in[n++] = (char)(0xf0 | cp >> 18);
				in[n++] = (char)(0x80 | ((cp >> 12) & 0x3f));
				in[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
				in[n++] = (char)(0x80 | (cp & 0x3f));
			}
		}
		imap_buf_reset(m);
		imap_buf_reset(u);
		ASSERT_TRUE(imap_utf8_valid(in, n));
		ASSERT_INT_EQ(imap_utf8_to_mutf7(in, n, m, NULL), 0);
		ASSERT_INT_EQ(imap_mutf7_to_utf8(m->data, m->len, u, NULL), 0);
		ASSERT_INT_EQ(u->len, n);
		ASSERT_MEM_EQ(u->data, in, n);
	}
	imap_buf_free(&m);
	imap_buf_free(&u);
}

TEST(mailbox_names)
{
	char *name = NULL;
	const char *err = NULL;
	struct imap_buf *b = NULL;

	ASSERT_INT_EQ(imap_mailbox_decode("inbox", 5, false, &name, &err), 0);
	ASSERT_STR_EQ(name, "INBOX");
	free(name);
	ASSERT_INT_EQ(imap_mailbox_decode("InBoX", 5, true, &name, &err), 0);
	ASSERT_STR_EQ(name, "INBOX");
	free(name);
	ASSERT_INT_EQ(imap_mailbox_decode("inbox/x", 7, false, &name, &err), 0);
	ASSERT_STR_EQ(name, "inbox/x");
	free(name);
	ASSERT_INT_EQ(imap_mailbox_decode("Entw&APw-rfe", 12, false, &name, &err), 0);
	ASSERT_STR_EQ(name, "Entw\xc3\xbcrfe");
	free(name);
	/* UTF8=ACCEPT: no decoding, UTF-8 required */
	ASSERT_INT_EQ(imap_mailbox_decode("Entw&APw-rfe", 12, true, &name, &err), 0);
	ASSERT_STR_EQ(name, "Entw&APw-rfe");
	free(name);
	ASSERT_INT_EQ(imap_mailbox_decode("Entw\xc3\xbcrfe", 9, true, &name, &err), 0);
	free(name);
	ASSERT_INT_EQ(imap_mailbox_decode("Entw\xc3\xbcrfe", 9, false, &name, &err), -EPROTO);
	ASSERT_TRUE(name == NULL);
	ASSERT_INT_EQ(imap_mailbox_decode("a\xff", 2, true, &name, &err), -EPROTO);
	ASSERT_INT_EQ(imap_mailbox_decode("a\0b", 3, true, &name, &err), -EPROTO);
	ASSERT_INT_EQ(imap_mailbox_decode("a\nb", 3, true, &name, &err), -EPROTO);
	{
		char big[IMAP_MAILBOX_NAME_MAX + 2];

		memset(big, 'x', sizeof(big));
		ASSERT_INT_EQ(imap_mailbox_decode(big, IMAP_MAILBOX_NAME_MAX, false, &name, &err), 0);
		free(name);
		ASSERT_INT_EQ(imap_mailbox_decode(big, IMAP_MAILBOX_NAME_MAX + 1, false, &name,
		    &err), -E2BIG);
		ASSERT_INT_EQ(imap_mailbox_decode(big, IMAP_MAILBOX_NAME_MAX + 1, true, &name,
		    &err), -E2BIG);
	}
	ASSERT_INT_EQ(imap_buf_new(256, &b), 0);
	ASSERT_INT_EQ(imap_write_mailbox(b, "Entw\xc3\xbcrfe", 9, false), 0);
	ASSERT_INT_EQ(imap_buf_add(b, " ", 1), 0);
	ASSERT_INT_EQ(imap_write_mailbox(b, "Entw\xc3\xbcrfe", 9, true), 0);
	ASSERT_INT_EQ(imap_buf_add(b, " ", 1), 0);
	ASSERT_INT_EQ(imap_write_mailbox(b, "a \"b\"", 5, false), 0);
	ASSERT_STR_EQ(b->data, "\"Entw&APw-rfe\" \"Entw\xc3\xbcrfe\" \"a \\\"b\\\"\"");
	ASSERT_INT_EQ(imap_write_mailbox(b, "\xff", 1, false), -EINVAL);
	imap_buf_free(&b);
}

TEST(utf8_valid)
{
	ASSERT_TRUE(imap_utf8_valid("", 0));
	ASSERT_TRUE(imap_utf8_valid("abc", 3));
	ASSERT_TRUE(imap_utf8_valid("\xc2\x80", 2));
	ASSERT_TRUE(imap_utf8_valid("\xef\xbf\xbf", 3));
	ASSERT_TRUE(imap_utf8_valid("\xf4\x8f\xbf\xbf", 4));
	ASSERT_TRUE(!imap_utf8_valid("\xc1\xbf", 2));
	ASSERT_TRUE(!imap_utf8_valid("\xe0\x9f\xbf", 3));
	ASSERT_TRUE(!imap_utf8_valid("\xf0\x8f\xbf\xbf", 4));
	ASSERT_TRUE(!imap_utf8_valid("\xf5\x80\x80\x80", 4));
	ASSERT_TRUE(!imap_utf8_valid("\x80", 1));
	ASSERT_TRUE(!imap_utf8_valid("\xe2\x82", 2));
	ASSERT_TRUE(!imap_utf8_valid("\xe2\x82\x41", 3));
}
