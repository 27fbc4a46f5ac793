/* Tests for imapd/imap-parser: every vector is fed whole, one byte at a time and split
 * at every position into two chunks, and must give the same events each time. */
#include "harness.h"
#include "imap-parser.h"

#include <stdbool.h>

/* ---- rendering parsed commands as text, for exact comparisons ---- */

struct out {
	char s[8192];
	size_t n;
	bool overflow;
};

static void out_c(struct out *o, char c)
{
	if (o->n + 1 >= sizeof(o->s)) {
		o->overflow = true;
		return;
	}
	o->s[o->n++] = c;
	o->s[o->n] = 0;
}

static void out_s(struct out *o, const char *s)
{
	while (*s)
		out_c(o, *s++);
}

/* quoted: also escape '\\' and '"' (inside "..." renderings) */
static void out_bytes_q(struct out *o, const char *s, size_t n, bool quoted)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c >= 0x7f || (quoted && (c == '\\' || c == '"'))) {
			out_c(o, '\\');
			out_c(o, 'x');
			out_c(o, hex[c >> 4]);
			out_c(o, hex[c & 15]);
		} else {
			out_c(o, (char)c);
		}
	}
}

static void out_bytes(struct out *o, const char *s, size_t n)
{
	out_bytes_q(o, s, n, true);
}

/* ATOM as is, QUOTED "..", LITERAL {n}"..", LITERAL8 ~{n}"..", NIL, LIST (..).
 * Recursion is bounded by the parser's max_depth (<= 64 in these tests). */
static void render_arg(struct out *o, const struct imap_arg *a, int depth)
{
	char num[32];

	switch (a->type) {
	case IMAP_ARG_ATOM:
		out_bytes_q(o, a->str, a->len, false);
		break;
	case IMAP_ARG_NIL:
		out_s(o, "NIL");
		break;
	case IMAP_ARG_QUOTED:
		out_c(o, '"');
		out_bytes(o, a->str, a->len);
		out_c(o, '"');
		break;
	case IMAP_ARG_LITERAL:
	case IMAP_ARG_LITERAL8:
		snprintf(num, sizeof(num), "%s{%zu}\"", a->type == IMAP_ARG_LITERAL8 ?
		    "~" : "", a->len);
		out_s(o, num);
		out_bytes(o, a->str, a->len);
		out_c(o, '"');
		break;
	case IMAP_ARG_LIST:
		out_c(o, '(');
		if (depth > 64) {
			out_s(o, "...");
		} else {
			for (size_t i = 0; i < a->list_n; i++) {
				if (i > 0)
					out_c(o, ' ');
				render_arg(o, &a->list[i], depth + 1);
			}
		}
		out_c(o, ')');
		break;
	default:
		out_s(o, "?");
	}
}

/* string args must be NUL-terminated copies */
static bool args_nul_ok(const struct imap_arg *args, size_t n, int depth)
{
	for (size_t i = 0; i < n; i++) {
		if (args[i].type == IMAP_ARG_LIST) {
			if (depth > 60 || !args_nul_ok(args[i].list, args[i].list_n, depth + 1))
				return false;
		} else if (args[i].str == NULL || args[i].str[args[i].len] != 0) {
			return false;
		}
	}
	return true;
}

static void render_cmd(struct out *o, const struct imap_cmd *cmd)
{
	out_s(o, "OK ");
	out_s(o, cmd->tag);
	out_c(o, ' ');
	out_s(o, cmd->name);
	for (size_t i = 0; i < cmd->nargs; i++) {
		out_c(o, ' ');
		render_arg(o, &cmd->args[i], 0);
	}
}

/* ---- the driver: simulates a server read loop ---- */

struct run {
	struct out ev;		/* one event per line */
	size_t consumed;
	bool fatal;
	bool nul_ok;
};

static const char *errname(int r)
{
	switch (r) {
	case -EPROTO: return "EPROTO";
	case -E2BIG: return "E2BIG";
	case IMAP_PARSE_FATAL: return "FATAL";
	case -ENOMEM: return "ENOMEM";
	case -EINVAL: return "EINVAL";
	default: return "?";
	}
}

/* Feed in[0..len) arriving in pieces that end at the given cut points (ascending,
 * the last one == len). */
static void run_cuts(const struct imap_parser_limits *lim, const char *in, size_t len,
    const size_t *cuts, size_t ncuts, struct run *run)
{
	struct imap_parser *p = NULL;
	size_t pos = 0, avail = 0, ci = 0;

	memset(run, 0, sizeof(*run));
	run->nul_ok = true;
	if (ncuts == 0 || cuts[ncuts - 1] != len) {
		out_s(&run->ev, "BAD CUTS\n");
		return;
	}
	if (imap_parser_new(lim, &p) != 0) {
		out_s(&run->ev, "NEW FAILED\n");
		return;
	}
	for (;;) {
		struct imap_cmd *cmd = NULL;
		size_t used = 0;
		int r;

		if (pos == avail) {
			if (ci == ncuts)
				break;
			avail = cuts[ci++];
			if (pos == avail)
				continue;
		}
		r = imap_parser_feed(p, (const uint8_t *)in + pos, avail - pos, &used, &cmd);
		if (used > avail - pos) {
			out_s(&run->ev, "USED OVERFLOW\n");
			break;
		}
		pos += used;
		if (r == 0) {
			if (pos != avail)
				out_s(&run->ev, "ZERO WITHOUT CONSUMING\n");
			continue;
		}
		if (r == 1) {
			if (cmd == NULL) {
				out_s(&run->ev, "NULL CMD\n");
				break;
			}
			render_cmd(&run->ev, cmd);
			out_c(&run->ev, '\n');
			if (!args_nul_ok(cmd->args, cmd->nargs, 0))
				run->nul_ok = false;
			imap_cmd_free(&cmd);
			if (cmd != NULL)
				run->nul_ok = false;
			continue;
		}
		if (cmd != NULL) {
			out_s(&run->ev, "CMD ON NON-1\n");
			imap_cmd_free(&cmd);
		}
		if (r == IMAP_PARSE_CONTINUE) {
			char sz[48];

			snprintf(sz, sizeof(sz), "+ %" PRIu64 " %s\n", imap_parser_literal_size(p),
			    imap_parser_cmd_name(p) ? imap_parser_cmd_name(p) : "-");
			out_s(&run->ev, sz);
			continue;
		}
		{
			const char *tag = imap_parser_error_tag(p);
			uint64_t big = 0;

			out_s(&run->ev, "ERR ");
			out_s(&run->ev, errname(r));
			out_c(&run->ev, ' ');
			out_s(&run->ev, tag ? tag : "*");
			out_c(&run->ev, ' ');
			out_s(&run->ev, imap_parser_error(p));
			if (imap_parser_literal_too_big(p, &big)) {
				char sz[40];

				snprintf(sz, sizeof(sz), " [TOOBIG %" PRIu64 "]", big);
				out_s(&run->ev, sz);
			}
			out_c(&run->ev, '\n');
		}
		if (r == IMAP_PARSE_FATAL || r == -ENOMEM) {
			size_t u2 = 99;
			struct imap_cmd *c2 = NULL;

			run->fatal = true;
			/* fatal is sticky */
			if (imap_parser_feed(p, (const uint8_t *)"a NOOP\r\n", 8, &u2, &c2) !=
			    IMAP_PARSE_FATAL || u2 != 0 || c2 != NULL)
				out_s(&run->ev, "NOT STICKY\n");
			break;
		}
	}
	run->consumed = pos;
	imap_parser_free(&p);
	if (p != NULL)
		out_s(&run->ev, "FREE DID NOT NULL\n");
}

static struct imap_parser_limits test_limits(void)
{
	struct imap_parser_limits lim;

	imap_parser_limits_default(&lim);
	lim.max_line = 1024;
	lim.max_literal = 1000;
	lim.max_literal_total = 2000;
	lim.max_args = 64;
	lim.max_depth = 8;
	return lim;
}

/* Runs one vector whole, byte by byte and with every single split point; all must give
 * `expect` and consume everything (unless fatal). Returns false on mismatch. */
static bool check_vector_lim(const struct imap_parser_limits *lim, const char *in,
    size_t len, const char *expect)
{
	static struct run whole, other;
	size_t *cuts;
	bool ok = true;

	cuts = malloc((len + 1) * sizeof(*cuts));
	if (cuts == NULL)
		return false;
	cuts[0] = len;
	run_cuts(lim, in, len, cuts, 1, &whole);
	if (strcmp(whole.ev.s, expect) != 0 || whole.ev.overflow || !whole.nul_ok ||
	    (!whole.fatal && whole.consumed != len)) {
		fprintf(stderr, "whole feed of %.60s...:\n got:\n%s expected:\n%s"
		    "(consumed %zu of %zu)\n", in, whole.ev.s, expect, whole.consumed, len);
		ok = false;
	}
	/* byte by byte */
	for (size_t i = 0; i < len; i++)
		cuts[i] = i + 1;
	run_cuts(lim, in, len, cuts, len, &other);
	if (strcmp(other.ev.s, whole.ev.s) != 0 || other.consumed != whole.consumed) {
		fprintf(stderr, "byte-by-byte differs for %.60s:\n%s vs whole\n%s", in,
		    other.ev.s, whole.ev.s);
		ok = false;
	}
	/* every two-piece split (bounded to keep big vectors fast) */
	for (size_t k = 1; k < len && k < 4096; k++) {
		size_t two[2] = { k, len };

		run_cuts(lim, in, len, two, 2, &other);
		if (strcmp(other.ev.s, whole.ev.s) != 0 || other.consumed != whole.consumed) {
			fprintf(stderr, "split at %zu differs for %.60s:\n%s vs whole\n%s", k,
			    in, other.ev.s, whole.ev.s);
			ok = false;
			break;
		}
	}
	free(cuts);
	return ok;
}

static bool check_vector(const char *in, const char *expect)
{
	struct imap_parser_limits lim = test_limits();

	return check_vector_lim(&lim, in, strlen(in), expect);
}

#define VEC(in, expect) ASSERT_TRUE(check_vector(in, expect))
/* for inputs with NUL bytes: in must be a string literal */
#define VECN(in, expect) do { struct imap_parser_limits l_ = test_limits(); \
	ASSERT_TRUE(check_vector_lim(&l_, in, sizeof(in) - 1, expect)); } while (0)

/* ---- vectors ---- */

TEST(rfc9051_sample_session)
{
	/* RFC 9051 section 8 (client side) */
	VEC("a001 login mrc secret\r\n", "OK a001 LOGIN mrc secret\n");
	VEC("a002 select inbox\r\n", "OK a002 SELECT inbox\n");
	VEC("a003 fetch 12 full\r\n", "OK a003 FETCH 12 full\n");
	VEC("a004 fetch 12 body[header]\r\n", "OK a004 FETCH 12 body[header]\n");
	VEC("a005 store 12 +flags \\deleted\r\n", "OK a005 STORE 12 +flags \\deleted\n");
	VEC("a006 logout\r\n", "OK a006 LOGOUT\n");
	/* the whole session pipelined in one buffer */
	VEC("a001 login mrc secret\r\na002 select inbox\r\na003 fetch 12 full\r\n"
	    "a004 fetch 12 body[header]\r\na005 store 12 +flags \\deleted\r\na006 logout\r\n",
	    "OK a001 LOGIN mrc secret\nOK a002 SELECT inbox\nOK a003 FETCH 12 full\n"
	    "OK a004 FETCH 12 body[header]\nOK a005 STORE 12 +flags \\deleted\n"
	    "OK a006 LOGOUT\n");
}

TEST(rfc_command_examples)
{
	VEC("abcd CAPABILITY\r\n", "OK abcd CAPABILITY\n");
	VEC("a002 NOOP\r\n", "OK a002 NOOP\n");
	VEC("A023 LOGOUT\r\n", "OK A023 LOGOUT\n");
	VEC("a001 STARTTLS\r\n", "OK a001 STARTTLS\n");
	VEC("A001 AUTHENTICATE GSSAPI\r\n", "OK A001 AUTHENTICATE GSSAPI\n");
	VEC("a AUTHENTICATE PLAIN dGVzdAB0ZXN0AHRlc3Q=\r\n",
	    "OK a AUTHENTICATE PLAIN dGVzdAB0ZXN0AHRlc3Q=\n");
	VEC("a AUTHENTICATE PLAIN =\r\n", "OK a AUTHENTICATE PLAIN =\n");
	VEC("t1 ENABLE CONDSTORE UTF8=ACCEPT\r\n", "OK t1 ENABLE CONDSTORE UTF8=ACCEPT\n");
	VEC("A142 SELECT INBOX\r\n", "OK A142 SELECT INBOX\n");
	VEC("A932 EXAMINE blurdybloop\r\n", "OK A932 EXAMINE blurdybloop\n");
	VEC("A003 CREATE owatagusiam/\r\n", "OK A003 CREATE owatagusiam/\n");
	VEC("A683 DELETE blurdybloop\r\n", "OK A683 DELETE blurdybloop\n");
	VEC("A683 RENAME blurdybloop sarasoop\r\n", "OK A683 RENAME blurdybloop sarasoop\n");
	VEC("A002 SUBSCRIBE #news.comp.mail.mime\r\n",
	    "OK A002 SUBSCRIBE #news.comp.mail.mime\n");
	VEC("A101 LIST \"\" \"\"\r\n", "OK A101 LIST \"\" \"\"\n");
	VEC("A202 LIST ~/Mail/ %\r\n", "OK A202 LIST ~/Mail/ %\n");
	VEC("A682 LIST \"\" *\r\n", "OK A682 LIST \"\" *\n");
	VEC("A02 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\" RETURN (CHILDREN STATUS "
	    "(MESSAGES UNSEEN))\r\n",
	    "OK A02 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\" RETURN (CHILDREN STATUS "
	    "(MESSAGES UNSEEN))\n");
	VEC("A04 LIST \"\" (\"foo/*\" \"bar\")\r\n", "OK A04 LIST \"\" (\"foo/*\" \"bar\")\n");
	VEC("A042 STATUS blurdybloop (UIDNEXT MESSAGES)\r\n",
	    "OK A042 STATUS blurdybloop (UIDNEXT MESSAGES)\n");
	VEC("A341 CLOSE\r\n", "OK A341 CLOSE\n");
	VEC("A202 EXPUNGE\r\n", "OK A202 EXPUNGE\n");
	VEC("A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n",
	    "OK A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\n");
	VEC("A283 SEARCH RETURN (MIN MAX) OR (TEXT \"x\" UNSEEN) $\r\n",
	    "OK A283 SEARCH RETURN (MIN MAX) OR (TEXT \"x\" UNSEEN) $\n");
	VEC("A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])\r\n",
	    "OK A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])\n");
	VEC("A003 STORE 2:4 +FLAGS (\\Deleted)\r\n", "OK A003 STORE 2:4 +FLAGS (\\Deleted)\n");
	VEC("A003 COPY 2:4 MEETING\r\n", "OK A003 COPY 2:4 MEETING\n");
	VEC("a MOVE 1:* Trash\r\n", "OK a MOVE 1:* Trash\n");
	VEC("A999 UID FETCH 4827313:4828442 FLAGS\r\n",
	    "OK A999 UID FETCH 4827313:4828442 FLAGS\n");
	VEC("a uid search 1:* NOT DELETED\r\n", "OK a UID SEARCH 1:* NOT DELETED\n");
	VEC("a UID EXPUNGE 3000:3002\r\n", "OK a UID EXPUNGE 3000:3002\n");
	VEC("a UID STORE 1 (UNCHANGEDSINCE 12345) +FLAGS.SILENT (\\Seen $Junk)\r\n",
	    "OK a UID STORE 1 (UNCHANGEDSINCE 12345) +FLAGS.SILENT (\\Seen $Junk)\n");
	VEC("a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n",
	    "OK a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)\n");
	VEC("A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n",
	    "OK A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\n");
	VEC("a ID (\"name\" \"sodr\" \"version\" \"19.34\")\r\n",
	    "OK a ID (\"name\" \"sodr\" \"version\" \"19.34\")\n");
	VEC("a ID NIL\r\n", "OK a ID NIL\n");
	VEC("a IDLE\r\n", "OK a IDLE\n");
	VEC("a NAMESPACE\r\n", "OK a NAMESPACE\n");
	VEC("a UNSELECT\r\n", "OK a UNSELECT\n");
	VEC("a GETQUOTAROOT INBOX\r\n", "OK a GETQUOTAROOT INBOX\n");
}

TEST(fetch_section_atoms)
{
	VEC("a FETCH 1 BODY.PEEK[HEADER.FIELDS (From Subject)]<0.2048>\r\n",
	    "OK a FETCH 1 BODY.PEEK[HEADER.FIELDS (From Subject)]<0.2048>\n");
	VEC("a FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS.NOT (\"X-A\" \"X-\\\"B\")] RFC822.SIZE)\r\n",
	    "OK a FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS.NOT (\"X-A\" \"X-\\\"B\")] "
	    "RFC822.SIZE)\n");
	VEC("a FETCH 1 (BODY[] BINARY.PEEK[1.2]<0.100> BINARY.SIZE[3] BODY[1.MIME])\r\n",
	    "OK a FETCH 1 (BODY[] BINARY.PEEK[1.2]<0.100> BINARY.SIZE[3] BODY[1.MIME])\n");
	/* a mailbox name with balanced brackets stays one atom */
	VEC("a SELECT [Gmail]/Sent\r\n", "OK a SELECT [Gmail]/Sent\n");
	VEC("a FETCH 1 BODY[HEADER.FIELDS ((a) b)]\r\n",
	    "OK a FETCH 1 BODY[HEADER.FIELDS ((a) b)]\n");
	/* "]" inside the parenthesised part does not close the section */
	VEC("a FETCH 1 BODY[HEADER.FIELDS (a])]\r\n", "OK a FETCH 1 BODY[HEADER.FIELDS (a])]\n");
}

TEST(atoms_flags_and_specials)
{
	VEC("a STORE 1 FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Forwarded)\r\n",
	    "OK a STORE 1 FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Forwarded)\n");
	VEC("a X \\* ~ ~x ] a]b\r\n", "OK a X \\* ~ ~x ] a]b\n");
	VEC("a SEARCH $\r\n", "OK a SEARCH $\n");
	VEC("a X nil NIL Nil nIL nils\r\n", "OK a X NIL NIL NIL NIL nils\n");
	VEC("a x () (()) (a () b)\r\n", "OK a X () (()) (a () b)\n");
	VEC("a x (a (b (c (d))))\r\n", "OK a X (a (b (c (d))))\n");
	/* tags: any ASTRING-CHAR but "+", including "]" */
	VEC("a]b NOOP\r\n", "OK a]b NOOP\n");
	VEC("1.2.3 NOOP\r\n", "OK 1.2.3 NOOP\n");
	VEC("a NOOP\n", "OK a NOOP\n");	/* bare LF */
	VEC("a LOGIN a b\nb NOOP\r\n", "OK a LOGIN a b\nOK b NOOP\n");
	VEC("a x \"\"\r\n", "OK a X \"\"\n");
	VEC("a x \"\\\\\" \"\\\"\"\r\n", "OK a X \"\\x5c\" \"\\x22\"\n");
	/* 8-bit in quoted strings (UTF8=ACCEPT) */
	VEC("a SELECT \"\xc3\x96l \xe2\x82\xac\"\r\n",
	    "OK a SELECT \"\\xc3\\x96l \\xe2\\x82\\xac\"\n");
}

TEST(literals)
{
	VEC("A003 APPEND saved-messages (\\Seen) {22}\r\nDate: x\r\n\r\nHello Joe\r\n\r\n",
	    "+ 22 APPEND\nOK A003 APPEND saved-messages (\\Seen) "
	    "{22}\"Date: x\\x0d\\x0a\\x0d\\x0aHello Joe\\x0d\\x0a\"\n");
	/* RFC 7888 example */
	VEC("A001 LOGIN {11+}\r\nFRED FOOBAR {7+}\r\nfat man\r\n",
	    "OK A001 LOGIN {11}\"FRED FOOBAR\" {7}\"fat man\"\n");
	VEC("a LOGIN {3}\r\nabc {4}\r\nd\r\ne\r\n",
	    "+ 3 LOGIN\n+ 4 LOGIN\nOK a LOGIN {3}\"abc\" {4}\"d\\x0d\\x0ae\"\n");
	VEC("a x {0}\r\n\r\n", "+ 0 X\nOK a X {0}\"\"\n");
	VEC("a x {0+}\r\n {00}\r\n\r\n", "+ 0 X\nOK a X {0}\"\" {0}\"\"\n");
	VEC("a x ({1+}\r\n)) {1}\n(\n", "+ 1 X\nOK a X ({1}\")\") {1}\"(\"\n");
	/* literal8 may carry NUL */
	VECN("a APPEND INBOX ~{5}\r\nab\0cd\r\n",
	    "+ 5 APPEND\nOK a APPEND INBOX ~{5}\"ab\\x00cd\"\n");
	VECN("a APPEND INBOX (\\Seen) ~{3+}\r\n\0\0\0 ~{1+}\r\n\0\r\n",
	    "OK a APPEND INBOX (\\Seen) ~{3}\"\\x00\\x00\\x00\" ~{1}\"\\x00\"\n");
	/* MULTIAPPEND */
	VEC("a APPEND box (\\Seen) \" 7-Feb-1994 21:52:25 -0800\" {2+}\r\nhi (\\Draft) {3+}\r\n"
	    "yo!\r\n",
	    "OK a APPEND box (\\Seen) \" 7-Feb-1994 21:52:25 -0800\" {2}\"hi\" (\\Draft) "
	    "{3}\"yo!\"\n");
	/* a literal as tag-less first token is not a tag */
	VEC("{3}\r\nabc\r\nb NOOP\r\n", "ERR EPROTO * invalid character in tag\n"
	    "ERR EPROTO abc missing command name\nOK b NOOP\n");
}

TEST(errors_resync)
{
	VEC("\r\na NOOP\r\n", "ERR EPROTO * empty command line\nOK a NOOP\n");
	VEC("\na NOOP\r\n", "ERR EPROTO * empty command line\nOK a NOOP\n");
	VEC("a1 FETCH 1 (FLAGS\r\na2 NOOP\r\n", "ERR EPROTO a1 missing ')'\nOK a2 NOOP\n");
	VEC("a1 FETCH 1 FLAGS)\r\na2 NOOP\r\n", "ERR EPROTO a1 unexpected ')'\nOK a2 NOOP\n");
	VEC("a1 FETCH 1 ((FLAGS) x\r\na2 NOOP\r\n", "ERR EPROTO a1 missing ')'\nOK a2 NOOP\n");
	VEC("a+1 NOOP\r\na2 NOOP\r\n", "ERR EPROTO * invalid character in tag\nOK a2 NOOP\n");
	VEC("a*1 NOOP\r\na2 NOOP\r\n", "ERR EPROTO * invalid character in tag\nOK a2 NOOP\n");
	VEC("+ NOOP\r\na2 NOOP\r\n", "ERR EPROTO * invalid character in tag\nOK a2 NOOP\n");
	VEC(" a NOOP\r\na2 NOOP\r\n", "ERR EPROTO * invalid character in tag\nOK a2 NOOP\n");
	VEC("a1\r\na2 NOOP\r\n", "ERR EPROTO a1 missing command name\nOK a2 NOOP\n");
	VEC("a1 \r\na2 NOOP\r\n", "ERR EPROTO a1 missing command name\nOK a2 NOOP\n");
	VEC("a1  NOOP\r\na2 NOOP\r\n", "ERR EPROTO a1 missing command name\nOK a2 NOOP\n");
	VEC("a1 NOOP \r\na2 NOOP\r\n", "ERR EPROTO a1 missing argument after space\nOK a2 NOOP\n");
	VEC("a1 X a  b\r\na2 NOOP\r\n", "ERR EPROTO a1 unexpected space\nOK a2 NOOP\n");
	VEC("a1 X ( a)\r\na2 NOOP\r\n", "ERR EPROTO a1 unexpected space\nOK a2 NOOP\n");
	VEC("a1 X (a )\r\na2 NOOP\r\n", "ERR EPROTO a1 unexpected ')'\nOK a2 NOOP\n");
	VEC("a1 X a(b)\r\na2 NOOP\r\n", "ERR EPROTO a1 invalid character in atom\nOK a2 NOOP\n");
	VEC("a1 X (a)b\r\na2 NOOP\r\n",
	    "ERR EPROTO a1 missing space between arguments\nOK a2 NOOP\n");
	VEC("a1 X \"a\"b\r\na2 NOOP\r\n",
	    "ERR EPROTO a1 missing space between arguments\nOK a2 NOOP\n");
	VEC("a1 NO\x01OP\r\na2 NOOP\r\n",
	    "ERR EPROTO a1 invalid character in command name\nOK a2 NOOP\n");
	VEC("a1 NOOP\rX\r\na2 NOOP\r\n", "ERR EPROTO a1 CR not followed by LF\nOK a2 NOOP\n");
	VEC("a1 UID\r\na2 NOOP\r\n", "ERR EPROTO a1 UID needs a subcommand\nOK a2 NOOP\n");
	VEC("a1 UID (\r\na2 NOOP\r\n", "ERR EPROTO a1 UID needs a subcommand\nOK a2 NOOP\n");
	VEC("a1 X \"a\\b\"\r\na2 NOOP\r\n", "ERR EPROTO a1 invalid escape in quoted string\n"
	    "OK a2 NOOP\n");
	VEC("a1 X \"ab\r\na2 NOOP\r\n", "ERR EPROTO a1 unterminated quoted string\nOK a2 NOOP\n");
	VECN("a1 X \"a\0b\"\r\na2 NOOP\r\n", "ERR EPROTO a1 NUL in quoted string\nOK a2 NOOP\n");
	VEC("a1 X \xc3\xa4\r\na2 NOOP\r\n",
	    "ERR EPROTO a1 invalid character in argument\nOK a2 NOOP\n");
	VEC("a1 X a\xc3\xa4\r\na2 NOOP\r\n", "ERR EPROTO a1 invalid character in atom\nOK a2 NOOP\n");
	VEC("a1 X a\\b\r\na2 NOOP\r\n", "ERR EPROTO a1 invalid character in atom\nOK a2 NOOP\n");
	VEC("a1 X a{5}\r\na2 NOOP\r\n", "ERR EPROTO a1 invalid character in atom\nOK a2 NOOP\n");
	VEC("a1 FETCH 1 BODY[HEADER\r\na2 NOOP\r\n", "ERR EPROTO a1 missing ']'\nOK a2 NOOP\n");
	VEC("a1 FETCH 1 BODY[a)]\r\na2 NOOP\r\n",
	    "ERR EPROTO a1 unexpected ')' in section\nOK a2 NOOP\n");
	VEC("a1 FETCH 1 BODY[HEADER.FIELDS ({4}\r\na2 NOOP\r\n",
	    "ERR EPROTO a1 literal inside [section] not supported\nOK a2 NOOP\n");
	VEC("a1 X {1x}\r\na2 NOOP\r\n", "ERR EPROTO a1 invalid literal size\nOK a2 NOOP\n");
	VEC("a1 X {}\r\na2 NOOP\r\n", "ERR EPROTO a1 invalid literal size\nOK a2 NOOP\n");
	VEC("a1 X {+}\r\na2 NOOP\r\n", "ERR EPROTO a1 invalid literal size\nOK a2 NOOP\n");
	VEC("a1 X {1+1}\r\na2 NOOP\r\n", "ERR EPROTO a1 invalid literal size\nOK a2 NOOP\n");
	VEC("a1 X {1} \r\na2 NOOP\r\n",
	    "ERR EPROTO a1 missing CRLF after literal size\nOK a2 NOOP\n");
	VEC("a1 X {1}\rb\r\na2 NOOP\r\n", "ERR EPROTO a1 CR not followed by LF\nOK a2 NOOP\n");
	VEC("a1 X ~{1\r\na2 NOOP\r\n", "ERR EPROTO a1 invalid literal size\nOK a2 NOOP\n");
	/* NUL in a plain literal: the rest of the literal and the line are discarded */
	VECN("a1 LOGIN {3}\r\na\0b x\r\na2 NOOP\r\n",
	    "+ 3 LOGIN\nERR EPROTO a1 NUL in literal (literal8 needed)\nOK a2 NOOP\n");
	VECN("a1 LOGIN {3+}\r\n\0\r\n x\r\na2 NOOP\r\n",
	    "ERR EPROTO a1 NUL in literal (literal8 needed)\nOK a2 NOOP\n");
	/* after an error a non-synchronizing literal on the same line is skipped unread,
	 * even when it contains what looks like a command */
	VEC("a1 X ) {13+}\r\na3 LOGOUT\r\n)\r\na2 NOOP\r\n",
	    "ERR EPROTO a1 unexpected ')'\nOK a2 NOOP\n");
	/* ... while a synchronizing one ends the command: the client waits for "+" */
	VEC("a1 X ) {5}\r\na2 NOOP\r\n", "ERR EPROTO a1 unexpected ')'\nOK a2 NOOP\n");
	VEC("a1 X ) {5}\na2 NOOP\r\n", "ERR EPROTO a1 unexpected ')'\nOK a2 NOOP\n");
	/* an error in the middle of a literal announcement keeps track of it */
	VEC("a1 X {12a+}\r\na2 NOOP\r\n", "ERR EPROTO a1 invalid literal size\nOK a2 NOOP\n");
	/* empty line between commands */
	VEC("a NOOP\r\n\r\nb NOOP\r\n", "OK a NOOP\nERR EPROTO * empty command line\nOK b NOOP\n");
}

TEST(limits_line)
{
	/* a 100 KB line gives -E2BIG and the parser resyncs on the next command */
	size_t n = 100 * 1024;
	char *in = malloc(n + 64);
	struct imap_parser_limits lim;

	ASSERT_TRUE(in != NULL);
	imap_parser_limits_default(&lim);	/* 64 KiB line */
	memcpy(in, "a1 SEARCH ", 10);
	memset(in + 10, 'x', n - 10);
	memcpy(in + n, "x\r\na2 NOOP\r\n", 12);
	{
		static struct run r1, r2;
		size_t cut1 = n + 12, cuts[64], k = 0;

		run_cuts(&lim, in, n + 12, &cut1, 1, &r1);
		ASSERT_STR_EQ(r1.ev.s, "ERR E2BIG a1 command line too long\nOK a2 NOOP\n");
		ASSERT_INT_EQ(r1.consumed, n + 12);
		/* 4 KiB reads as a server would do */
		for (size_t c = 4096; c < n + 12; c += 4096)
			cuts[k++] = c;
		cuts[k++] = n + 12;
		run_cuts(&lim, in, n + 12, cuts, k, &r2);
		ASSERT_STR_EQ(r2.ev.s, r1.ev.s);
	}
	free(in);
	/* exactly max_line bytes is fine, one more is not */
	{
		struct imap_parser_limits l = test_limits();
		char line[2048];

		l.max_line = 16;
		ASSERT_TRUE(check_vector_lim(&l, "a X 0123456789\r\n", 16, "OK a X 0123456789\n"));
		ASSERT_TRUE(check_vector_lim(&l, "a X 01234567890\r\nb NOOP\r\n", 25,
		    "ERR E2BIG a command line too long\nOK b NOOP\n"));
		/* literal data does not count against max_line, headers do */
		ASSERT_TRUE(check_vector_lim(&l, "a X {20+}\r\n01234567890123456789\r\n", 33,
		    "OK a X {20}\"01234567890123456789\"\n"));
		memset(line, 'x', sizeof(line));
		memcpy(line, "a1 X ", 5);
		memcpy(line + 2000, " {3+}\r\nabc\r\nb NOOP\r\n", 20);
		/* over-long line ending in a non-sync literal: literal skipped, resync */
		ASSERT_TRUE(check_vector_lim(&l, line, 2020,
		    "ERR E2BIG a1 command line too long\nOK b NOOP\n"));
	}
}

TEST(limits_literal)
{
	/* sync literal over max_literal: E2BIG + too_big, no "+", next command parses */
	VEC("a1 APPEND x {999999999}\r\na2 NOOP\r\n",
	    "ERR E2BIG a1 literal too big [TOOBIG 999999999]\nOK a2 NOOP\n");
	VEC("a1 APPEND x {1001}\r\na2 NOOP\r\n",
	    "ERR E2BIG a1 literal too big [TOOBIG 1001]\nOK a2 NOOP\n");
	VEC("a1 APPEND x {99999999999999999999999}\r\na2 NOOP\r\n",
	    "ERR E2BIG a1 literal too big [TOOBIG 18446744073709551615]\nOK a2 NOOP\n");
	/* at the limit */
	{
		char in[1100];
		struct imap_parser_limits l = test_limits();
		size_t n;

		memcpy(in, "a X {1000+}\r\n", 13);
		memset(in + 13, 'z', 1000);
		memcpy(in + 1013, "\r\n", 2);
		n = 1015;
		{
			static struct run r;
			size_t cut = n;

			run_cuts(&l, in, n, &cut, 1, &r);
			ASSERT_TRUE(strncmp(r.ev.s, "OK a X {1000}\"zzz", 17) == 0);
		}
	}
	/* total literal bytes per command: 2000 */
	{
		static char in[2200];
		struct imap_parser_limits l = test_limits();
		size_t n = 0;
		static struct run r;

		n += (size_t)sprintf(in + n, "a X {1000+}\r\n");
		memset(in + n, 'a', 1000);
		n += 1000;
		n += (size_t)sprintf(in + n, " {1000}\r\n");
		memset(in + n, 'b', 1000);
		n += 1000;
		n += (size_t)sprintf(in + n, " {1}\r\nc\r\nb NOOP\r\n");
		run_cuts(&l, in, n, &n, 1, &r);
		/* the client waits for "+" that never comes, so "c" would start a new
		 * command: a real client does not send it */
		ASSERT_STR_EQ(r.ev.s, "+ 1000 X\nERR E2BIG a literal too big [TOOBIG 1]\n"
		    "ERR EPROTO c missing command name\nOK b NOOP\n");
	}
	/* non-sync literal over the limit: fatal (RFC 7888 section 4) */
	VEC("a1 APPEND x {1001+}\r\n", "ERR FATAL a1 non-synchronizing literal too big "
	    "[TOOBIG 1001]\n");
	VEC("a0 NOOP\r\na1 APPEND x {1001+}\r\nxxxx",
	    "OK a0 NOOP\nERR FATAL a1 non-synchronizing literal too big [TOOBIG 1001]\n");
	/* ... also when found while discarding a bad line: error first, then fatal */
	VEC("a1 X ) {5000+}\r\nzzz", "ERR EPROTO a1 unexpected ')'\n"
	    "ERR FATAL a1 non-synchronizing literal too big [TOOBIG 5000]\n");
	/* LITERAL-: 4096 max for non-sync; sync literals unaffected */
	{
		struct imap_parser_limits l = test_limits();
		static char in[9000];
		size_t n;
		static struct run r;

		l.nonsync = IMAP_NONSYNC_MINUS;
		l.max_literal = l.max_literal_total = 8000;
		n = (size_t)sprintf(in, "a X {4096+}\r\n");
		memset(in + n, 'q', 4096);
		n += 4096;
		n += (size_t)sprintf(in + n, "\r\n");
		run_cuts(&l, in, n, &n, 1, &r);
		ASSERT_TRUE(strncmp(r.ev.s, "OK a X {4096}\"qqqq", 18) == 0);
		ASSERT_TRUE(check_vector_lim(&l, "a X {4097+}\r\n", 13,
		    "ERR FATAL a non-synchronizing literal too big [TOOBIG 4097]\n"));
		ASSERT_TRUE(check_vector_lim(&l, "a X {4097}\r\n", 12, "+ 4097 X\n"));
		l.nonsync = IMAP_NONSYNC_NONE;
		ASSERT_TRUE(check_vector_lim(&l, "a X {1+}\r\nx\r\n", 13,
		    "ERR FATAL a non-synchronizing literal not supported [TOOBIG 1]\n"));
	}
}

TEST(limits_args_depth)
{
	struct imap_parser_limits l = test_limits();
	char in[4096];
	size_t n;

	/* depth 8 fine, 9 too deep */
	n = (size_t)sprintf(in, "a X ((((((((x))))))))\r\nb NOOP\r\n");
	ASSERT_TRUE(check_vector_lim(&l, in, n,
	    "OK a X ((((((((x))))))))\nOK b NOOP\n"));
	n = (size_t)sprintf(in, "a X (((((((((x)))))))))\r\nb NOOP\r\n");
	ASSERT_TRUE(check_vector_lim(&l, in, n,
	    "ERR E2BIG a parentheses nested too deep\nOK b NOOP\n"));
	/* a deep bomb */
	n = (size_t)sprintf(in, "a X ");
	for (int i = 0; i < 1000; i++)
		in[n++] = '(';
	n += (size_t)sprintf(in + n, "\r\nb NOOP\r\n");
	ASSERT_TRUE(check_vector_lim(&l, in, n,
	    "ERR E2BIG a parentheses nested too deep\nOK b NOOP\n"));
	/* section nesting is bounded too */
	n = (size_t)sprintf(in, "a X B[((((((((((x))))))))))]\r\nb NOOP\r\n");
	ASSERT_TRUE(check_vector_lim(&l, in, n,
	    "ERR E2BIG a parentheses nested too deep\nOK b NOOP\n"));
	/* 64 args fine (a list counts as one), 65 not */
	n = (size_t)sprintf(in, "a X");
	for (int i = 0; i < 64; i++)
		n += (size_t)sprintf(in + n, " %d", i % 10);
	n += (size_t)sprintf(in + n, "\r\n");
	{
		static struct run r;

		run_cuts(&l, in, n, &n, 1, &r);
		ASSERT_TRUE(strncmp(r.ev.s, "OK a X 0 1 2", 12) == 0);
	}
	n = (size_t)sprintf(in, "a X (");
	for (int i = 0; i < 64; i++)
		n += (size_t)sprintf(in + n, "%s%d", i ? " " : "", i % 10);
	n += (size_t)sprintf(in + n, ")\r\nb NOOP\r\n");
	ASSERT_TRUE(check_vector_lim(&l, in, n, "ERR E2BIG a too many arguments\nOK b NOOP\n"));
}

TEST(continue_refused_by_server)
{
	struct imap_parser_limits lim = test_limits();
	struct imap_parser *p = NULL;
	struct imap_cmd *cmd = NULL;
	const char *in = "A1 APPEND INBOX (\\Seen) {900}\r\n";
	size_t used;

	ASSERT_INT_EQ(imap_parser_new(&lim, &p), 0);
	ASSERT_INT_EQ(imap_parser_feed(p, (const uint8_t *)in, strlen(in), &used, &cmd),
	    IMAP_PARSE_CONTINUE);
	ASSERT_INT_EQ(used, strlen(in));
	ASSERT_TRUE(cmd == NULL);
	ASSERT_STR_EQ(imap_parser_cmd_name(p), "APPEND");
	ASSERT_STR_EQ(imap_parser_cmd_tag(p), "A1");
	ASSERT_INT_EQ(imap_parser_literal_size(p), 900);
	/* server answers "A1 NO [TOOBIG]" and resets; the client sends the next command */
	imap_parser_reset(p);
	ASSERT_TRUE(imap_parser_cmd_name(p) == NULL);
	in = "A2 NOOP\r\n";
	ASSERT_INT_EQ(imap_parser_feed(p, (const uint8_t *)in, strlen(in), &used, &cmd), 1);
	ASSERT_STR_EQ(cmd->tag, "A2");
	ASSERT_STR_EQ(cmd->name, "NOOP");
	ASSERT_INT_EQ(cmd->nargs, 0);
	imap_cmd_free(&cmd);
	ASSERT_TRUE(cmd == NULL);
	imap_cmd_free(&cmd);	/* NULL is fine */
	imap_cmd_free(NULL);
	imap_parser_free(&p);
	ASSERT_TRUE(p == NULL);
	imap_parser_free(&p);
	imap_parser_free(NULL);
}

TEST(cmd_structure)
{
	struct imap_parser_limits lim = test_limits();
	struct imap_parser *p = NULL;
	struct imap_cmd *cmd = NULL;
	static const char in[] = "t UID FETCH 1:3 (FLAGS (a \"b\" {1+}\r\nc) NIL) ~{2+}\r\n\0x\r\n";
	size_t used;

	ASSERT_INT_EQ(imap_parser_new(&lim, &p), 0);
	ASSERT_INT_EQ(imap_parser_feed(p, (const uint8_t *)in, sizeof(in) - 1, &used, &cmd), 1);
	ASSERT_INT_EQ(used, sizeof(in) - 1);
	ASSERT_STR_EQ(cmd->name, "UID FETCH");
	ASSERT_INT_EQ(cmd->nargs, 3);
	ASSERT_INT_EQ(cmd->args[0].type, IMAP_ARG_ATOM);
	ASSERT_STR_EQ(cmd->args[0].str, "1:3");
	ASSERT_INT_EQ(cmd->args[1].type, IMAP_ARG_LIST);
	ASSERT_INT_EQ(cmd->args[1].list_n, 3);
	ASSERT_STR_EQ(cmd->args[1].list[0].str, "FLAGS");
	ASSERT_INT_EQ(cmd->args[1].list[1].type, IMAP_ARG_LIST);
	ASSERT_INT_EQ(cmd->args[1].list[1].list_n, 3);
	ASSERT_INT_EQ(cmd->args[1].list[1].list[1].type, IMAP_ARG_QUOTED);
	ASSERT_INT_EQ(cmd->args[1].list[1].list[2].type, IMAP_ARG_LITERAL);
	ASSERT_STR_EQ(cmd->args[1].list[1].list[2].str, "c");
	ASSERT_INT_EQ(cmd->args[1].list[2].type, IMAP_ARG_NIL);
	ASSERT_STR_EQ(cmd->args[1].list[2].str, "NIL");
	ASSERT_INT_EQ(cmd->args[2].type, IMAP_ARG_LITERAL8);
	ASSERT_INT_EQ(cmd->args[2].len, 2);
	ASSERT_MEM_EQ(cmd->args[2].str, "\0x", 3);
	ASSERT_INT_EQ(cmd->literal_bytes, 3);
	imap_cmd_free(&cmd);
	imap_parser_free(&p);
}

TEST(invalid_limits)
{
	struct imap_parser_limits lim = test_limits();
	struct imap_parser *p = (struct imap_parser *)&lim;

	lim.max_line = 7;
	ASSERT_INT_EQ(imap_parser_new(&lim, &p), -EINVAL);
	ASSERT_TRUE(p == NULL);
	lim = test_limits();
	lim.max_args = 0;
	ASSERT_INT_EQ(imap_parser_new(&lim, &p), -EINVAL);
	lim = test_limits();
	lim.max_literal_total = lim.max_literal - 1;
	ASSERT_INT_EQ(imap_parser_new(&lim, &p), -EINVAL);
	lim = test_limits();
	ASSERT_INT_EQ(imap_parser_new(&lim, &p), 0);
	lim.max_depth = 0;
	ASSERT_INT_EQ(imap_parser_set_limits(p, &lim), -EINVAL);
	imap_parser_free(&p);
}

TEST(prelogin_then_switch)
{
	struct imap_parser_limits pre, post;
	struct imap_parser *p = NULL;
	struct imap_cmd *cmd = NULL;
	char big[6000];
	size_t used, n;

	imap_parser_limits_prelogin(&pre);
	imap_parser_limits_default(&post);
	ASSERT_INT_EQ(imap_parser_new(&pre, &p), 0);
	n = (size_t)sprintf(big, "a LOGIN u {5000}\r\n");
	ASSERT_INT_EQ(imap_parser_feed(p, (const uint8_t *)big, n, &used, &cmd), -E2BIG);
	ASSERT_TRUE(imap_parser_literal_too_big(p, NULL));
	ASSERT_STR_EQ(imap_parser_error_tag(p), "a");
	ASSERT_INT_EQ(used, n - 3);	/* stops at the "}" */
	ASSERT_INT_EQ(imap_parser_feed(p, (const uint8_t *)big + used, 3, &used, &cmd), 0);
	ASSERT_INT_EQ(used, 3);
	ASSERT_INT_EQ(imap_parser_set_limits(p, &post), 0);
	n = (size_t)sprintf(big, "b APPEND u {5000+}\r\n");
	memset(big + n, 'm', 5000);
	memcpy(big + n + 5000, "\r\n", 2);
	n += 5002;
	ASSERT_INT_EQ(imap_parser_feed(p, (const uint8_t *)big, n, &used, &cmd), 1);
	ASSERT_INT_EQ(used, n);
	ASSERT_INT_EQ(cmd->args[1].len, 5000);
	ASSERT_TRUE(!imap_parser_literal_too_big(p, NULL));
	imap_cmd_free(&cmd);
	imap_parser_free(&p);
}

TEST(line_mode)
{
	struct imap_parser_limits lim = test_limits();
	struct imap_parser *p = NULL;
	struct imap_cmd *cmd = NULL;
	char *line = NULL;
	size_t used, n;
	const char *in;

	lim.max_line = 16;
	ASSERT_INT_EQ(imap_parser_new(&lim, &p), 0);
	/* IDLE ... DONE */
	in = "a IDLE\r\nDONE\r\nb NOOP\r\n";
	ASSERT_INT_EQ(imap_parser_feed(p, (const uint8_t *)in, strlen(in), &used, &cmd), 1);
	ASSERT_STR_EQ(cmd->name, "IDLE");
	imap_cmd_free(&cmd);
	in += used;
	ASSERT_INT_EQ(imap_parser_feed_line(p, (const uint8_t *)in, 2, &used, &line, &n), 0);
	ASSERT_INT_EQ(used, 2);
	in += used;
	ASSERT_INT_EQ(imap_parser_feed_line(p, (const uint8_t *)in, strlen(in), &used, &line,
	    &n), 1);
	ASSERT_INT_EQ(used, 4);
	ASSERT_INT_EQ(n, 4);
	ASSERT_STR_EQ(line, "DONE");
	free(line);
	in += used;
	ASSERT_INT_EQ(imap_parser_feed(p, (const uint8_t *)in, strlen(in), &used, &cmd), 1);
	ASSERT_STR_EQ(cmd->name, "NOOP");
	imap_cmd_free(&cmd);
	/* bare LF, empty line ("*" cancels AUTHENTICATE; "" is an empty response) */
	ASSERT_INT_EQ(imap_parser_feed_line(p, (const uint8_t *)"\n", 1, &used, &line, &n), 1);
	ASSERT_INT_EQ(n, 0);
	ASSERT_STR_EQ(line, "");
	free(line);
	/* NUL bytes are kept */
	ASSERT_INT_EQ(imap_parser_feed_line(p, (const uint8_t *)"a\0b\r\n", 5, &used, &line,
	    &n), 1);
	ASSERT_INT_EQ(n, 3);
	ASSERT_MEM_EQ(line, "a\0b", 4);
	free(line);
	/* 15 bytes + LF fits, 16 + LF does not; the rest of that line is discarded
	 * and command parsing resumes after it */
	in = "0123456789abcde\n";
	ASSERT_INT_EQ(imap_parser_feed_line(p, (const uint8_t *)in, 16, &used, &line, &n), 1);
	ASSERT_INT_EQ(n, 15);
	free(line);
	in = "0123456789abcdef";
	ASSERT_INT_EQ(imap_parser_feed_line(p, (const uint8_t *)in, 16, &used, &line, &n),
	    -E2BIG);
	ASSERT_INT_EQ(used, 15);	/* reported at the first byte that does not fit */
	ASSERT_TRUE(line == NULL);
	in = "fmore junk\r\nc NOOP\r\n";
	ASSERT_INT_EQ(imap_parser_feed(p, (const uint8_t *)in, strlen(in), &used, &cmd), 1);
	ASSERT_INT_EQ(used, strlen(in));
	ASSERT_STR_EQ(cmd->tag, "c");
	imap_cmd_free(&cmd);
	/* byte by byte over-long line: error once, then skipping */
	{
		int errs = 0, lines = 0;
		const char *s = "0123456789abcdefghij\r\nok\r\n";

		for (size_t i = 0; s[i]; i++) {
			int r = imap_parser_feed_line(p, (const uint8_t *)s + i, 1, &used, &line, &n);

			if (r == -E2BIG) {
				errs++;
				ASSERT_INT_EQ(used, 0);
				r = imap_parser_feed_line(p, (const uint8_t *)s + i, 1, &used,
				    &line, &n);
				ASSERT_INT_EQ(r, 0);
			}
			ASSERT_INT_EQ(used, 1);
			if (r == 1) {
				lines++;
				ASSERT_STR_EQ(line, "ok");
				free(line);
			}
		}
		ASSERT_INT_EQ(errs, 1);
		ASSERT_INT_EQ(lines, 1);
	}
	/* a half-read line blocks command parsing; a half-parsed command blocks lines */
	ASSERT_INT_EQ(imap_parser_feed_line(p, (const uint8_t *)"DO", 2, &used, &line, &n), 0);
	ASSERT_INT_EQ(imap_parser_feed(p, (const uint8_t *)"NE\r\n", 4, &used, &cmd), -EINVAL);
	imap_parser_reset(p);
	ASSERT_INT_EQ(imap_parser_feed(p, (const uint8_t *)"a X", 3, &used, &cmd), 0);
	ASSERT_INT_EQ(imap_parser_feed_line(p, (const uint8_t *)"x\n", 2, &used, &line, &n),
	    -EINVAL);
	imap_parser_free(&p);
}

TEST(uid_and_name_case)
{
	VEC("a uid fetch 1 flags\r\n", "OK a UID FETCH 1 flags\n");
	VEC("a Uid Copy 1 x\r\n", "OK a UID COPY 1 x\n");
	VEC("a UID MOVE 1:2 x\r\n", "OK a UID MOVE 1:2 x\n");
	VEC("a UIDX 1\r\n", "OK a UIDX 1\n");
	VEC("a X-Foo.bar 1\r\n", "OK a X-FOO.BAR 1\n");
}

TEST(many_commands_one_buffer)
{
	/* pipelined commands, a literal in the middle, odd splits */
	VEC("a1 NOOP\r\na2 LOGIN {3}\r\nabc def\r\na3 SELECT \"x y\"\r\n\r\na4 X (\r\n"
	    "a5 LOGOUT\r\n",
	    "OK a1 NOOP\n+ 3 LOGIN\nOK a2 LOGIN {3}\"abc\" def\nOK a3 SELECT \"x y\"\n"
	    "ERR EPROTO * empty command line\nERR EPROTO a4 missing ')'\nOK a5 LOGOUT\n");
}
