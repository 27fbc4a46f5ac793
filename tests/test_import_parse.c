/* Unit tests of the import parsers (vault/import.c): modified UTF-7, Maildir file
 * names, dovecot-keywords / dovecot-uidlist lines, mbox From lines, the mbox
 * splitter (fed whole and one byte at a time: same result), mbox status fields. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include "harness.h"
#include "import.h"

static int mutf7(const char *in, char *out, size_t cap)
{
	return import_mutf7_to_utf8(in, strlen(in), out, cap);
}

TEST(mutf7_valid)
{
	char out[256];

	ASSERT_INT_EQ(mutf7("INBOX", out, sizeof(out)), 0);
	ASSERT_STR_EQ(out, "INBOX");
	ASSERT_INT_EQ(mutf7("&AOk-t&AOk-", out, sizeof(out)), 0);
	ASSERT_STR_EQ(out, "\xc3\xa9t\xc3\xa9");
	ASSERT_INT_EQ(mutf7("Tom &- Jerry", out, sizeof(out)), 0);
	ASSERT_STR_EQ(out, "Tom & Jerry");
	/* RFC 3501 5.1.3 example */
	ASSERT_INT_EQ(mutf7("~peter/mail/&U,BTFw-/&ZeVnLIqe-", out, sizeof(out)), 0);
	ASSERT_STR_EQ(out, "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
	/* a surrogate pair: U+1F600 */
	ASSERT_INT_EQ(mutf7("&2D3eAA-", out, sizeof(out)), 0);
	ASSERT_STR_EQ(out, "\xf0\x9f\x98\x80");
	ASSERT_INT_EQ(mutf7("", out, sizeof(out)), 0);
	ASSERT_STR_EQ(out, "");
}

TEST(mutf7_invalid)
{
	char out[256];

	ASSERT_INT_EQ(mutf7("&AOk", out, sizeof(out)), -EPROTO);	/* unterminated */
	ASSERT_INT_EQ(mutf7("&-&", out, sizeof(out)), -EPROTO);
	ASSERT_INT_EQ(mutf7("&AGE-", out, sizeof(out)), -EPROTO);	/* encodes 'a' */
	ASSERT_INT_EQ(mutf7("&AOl-", out, sizeof(out)), -EPROTO);	/* pad bits set */
	ASSERT_INT_EQ(mutf7("&AOkA-", out, sizeof(out)), -EPROTO);	/* partial unit */
	ASSERT_INT_EQ(mutf7("&2D0-", out, sizeof(out)), -EPROTO);	/* lone high surrogate */
	ASSERT_INT_EQ(mutf7("&3gA-", out, sizeof(out)), -EPROTO);	/* lone low surrogate */
	ASSERT_INT_EQ(mutf7("&AO/-", out, sizeof(out)), -EPROTO);	/* '/' is not modified b64 */
	ASSERT_INT_EQ(mutf7("a\tb", out, sizeof(out)), -EPROTO);
	ASSERT_INT_EQ(mutf7("caf\xc3\xa9", out, sizeof(out)), -EPROTO);
	ASSERT_INT_EQ(mutf7("abcdef", out, 4), -E2BIG);
	ASSERT_INT_EQ(mutf7("&AOk-", out, 2), -E2BIG);
}

TEST(name_decode)
{
	char out[64];

	/* Dovecot's UTF-8 layout option: valid UTF-8 without '&' is kept */
	ASSERT_INT_EQ(import_name_decode("caf\xc3\xa9", 5, out, sizeof(out)), 0);
	ASSERT_STR_EQ(out, "caf\xc3\xa9");
	ASSERT_INT_EQ(import_name_decode("caf\xc3", 4, out, sizeof(out)), -EPROTO);
	ASSERT_INT_EQ(import_name_decode("&\xc3\xa9", 3, out, sizeof(out)), -EPROTO);
	ASSERT_INT_EQ(import_name_decode("&AOk-", 5, out, sizeof(out)), 0);
	ASSERT_STR_EQ(out, "\xc3\xa9");
	ASSERT_TRUE(!import_utf8_valid((const uint8_t *)"\xc0\xaf", 2));	/* overlong */
	ASSERT_TRUE(!import_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));	/* surrogate */
	ASSERT_TRUE(!import_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4));
	ASSERT_TRUE(import_utf8_valid((const uint8_t *)"\xf4\x8f\xbf\xbf", 4));
}

TEST(maildir_names)
{
	struct import_maildir_name n;
	const char *s;

	s = "1700000000.M1P2.host,S=120,W=124:2,FRSabz";
	ASSERT_INT_EQ(import_maildir_name(s, strlen(s), &n), 0);
	ASSERT_INT_EQ(n.base_len, strlen("1700000000.M1P2.host,S=120,W=124"));
	ASSERT_INT_EQ(n.timestamp, 1700000000);
	ASSERT_INT_EQ(n.flags, VAULT_F_FLAGGED | VAULT_F_ANSWERED | VAULT_F_SEEN);
	ASSERT_INT_EQ(n.keyword_bits, (1u << 0) | (1u << 1) | (1u << 25));
	ASSERT_TRUE(!n.passed);
	s = "17.x:2,DPT";
	ASSERT_INT_EQ(import_maildir_name(s, strlen(s), &n), 0);
	ASSERT_INT_EQ(n.flags, VAULT_F_DRAFT | VAULT_F_DELETED);
	ASSERT_TRUE(n.passed);
	s = "new-message";
	ASSERT_INT_EQ(import_maildir_name(s, strlen(s), &n), 0);
	ASSERT_INT_EQ(n.base_len, strlen(s));
	ASSERT_INT_EQ(n.flags, 0);
	ASSERT_INT_EQ(n.timestamp, 0);
	s = "x:1,S";	/* experimental info: no flags */
	ASSERT_INT_EQ(import_maildir_name(s, strlen(s), &n), 0);
	ASSERT_INT_EQ(n.flags, 0);
	ASSERT_INT_EQ(import_maildir_name(".hidden", 7, &n), -EPROTO);
	ASSERT_INT_EQ(import_maildir_name(":2,S", 4, &n), -EPROTO);
	ASSERT_INT_EQ(import_maildir_name("", 0, &n), -EPROTO);
}

TEST(keywords_and_uidlist_lines)
{
	const char *name;
	size_t nl;
	unsigned idx;
	uint32_t uid;
	const char *l;

	l = "3 $Label1";
	ASSERT_INT_EQ(import_keywords_line(l, strlen(l), &idx, &name, &nl), 0);
	ASSERT_INT_EQ(idx, 3);
	ASSERT_INT_EQ(nl, 7);
	ASSERT_TRUE(memcmp(name, "$Label1", 7) == 0);
	l = "26 toomany";
	ASSERT_INT_EQ(import_keywords_line(l, strlen(l), &idx, &name, &nl), -EPROTO);
	l = "x y";
	ASSERT_INT_EQ(import_keywords_line(l, strlen(l), &idx, &name, &nl), -EPROTO);
	l = "7 G3f1c :1700000000.M1P2.host,S=12:2,S";
	ASSERT_INT_EQ(import_uidlist_line(3, l, strlen(l), &uid, &name, &nl), 0);
	ASSERT_INT_EQ(uid, 7);
	ASSERT_INT_EQ(nl, strlen("1700000000.M1P2.host,S=12:2,S"));
	l = "12 :plain";
	ASSERT_INT_EQ(import_uidlist_line(3, l, strlen(l), &uid, &name, &nl), 0);
	ASSERT_INT_EQ(uid, 12);
	ASSERT_TRUE(nl == 5 && memcmp(name, "plain", 5) == 0);
	l = "5 v1name";
	ASSERT_INT_EQ(import_uidlist_line(1, l, strlen(l), &uid, &name, &nl), 0);
	ASSERT_TRUE(uid == 5 && nl == 6);
	l = "0 :x";
	ASSERT_INT_EQ(import_uidlist_line(3, l, strlen(l), &uid, &name, &nl), -EPROTO);
	l = "9 Gabc";
	ASSERT_INT_EQ(import_uidlist_line(3, l, strlen(l), &uid, &name, &nl), -EPROTO);
	ASSERT_TRUE(import_keyword_valid("$Forwarded", 10));
	ASSERT_TRUE(!import_keyword_valid("a b", 3));
	ASSERT_TRUE(!import_keyword_valid("\\Seen", 5));
	ASSERT_TRUE(!import_keyword_valid("", 0));
}

static int from(const char *l, int64_t *t, int32_t *tz)
{
	return import_mbox_from_line(l, strlen(l), t, tz);
}

TEST(mbox_from_lines)
{
	int64_t t;
	int32_t tz;

	setenv("TZ", "UTC", 1);
	tzset();
	ASSERT_INT_EQ(from("From alice@example.org Thu Jan  1 00:00:00 2015", &t, &tz), 0);
	ASSERT_INT_EQ(t, 1420070400);
	ASSERT_INT_EQ(tz, 0);
	ASSERT_INT_EQ(from("From a@b Fri Jan  2 10:00:00 2015 +0200", &t, &tz), 0);
	ASSERT_INT_EQ(t, 1420185600);
	ASSERT_INT_EQ(tz, 120);
	ASSERT_INT_EQ(from("From a@b Fri Jan  2 10:00 -0130 2015", &t, &tz), 0);
	ASSERT_INT_EQ(t, 1420192800 + 90 * 60);
	ASSERT_INT_EQ(tz, -90);
	ASSERT_INT_EQ(from("From MAILER-DAEMON Sat Feb 28 23:59:59 GMT 2004", &t, &tz), 0);
	ASSERT_INT_EQ(t, 1078012799);
	ASSERT_INT_EQ(from("From  Mon Mar  3 01:02:03 2003", &t, &tz), 0);
	ASSERT_INT_EQ(from("From user Tue Apr  1 12:00:00 2003 remote from host", &t, &tz), 0);
	ASSERT_INT_EQ(from("From here on, we talk", &t, &tz), -EPROTO);
	ASSERT_INT_EQ(from("From a@b Thu Jan 32 00:00:00 2015", &t, &tz), -EPROTO);
	ASSERT_INT_EQ(from("From a@b Thu Jan  1 25:00:00 2015", &t, &tz), -EPROTO);
	ASSERT_INT_EQ(from("From a@b Thu Jan  1 00:00:00", &t, &tz), -EPROTO);
	ASSERT_INT_EQ(from("from a@b Thu Jan  1 00:00:00 2015", &t, &tz), -EPROTO);
}

/* The splitter's events as text: "B<offset>,<date>[" data... "]" per message. */
struct collect {
	char out[4096];
	size_t n;
};

static void put(struct collect *c, const void *p, size_t n)
{
	if (c->n + n < sizeof(c->out)) {
		memcpy(c->out + c->n, p, n);
		c->n += n;
		c->out[c->n] = '\0';
	}
}

static int c_begin(void *arg, const struct import_mbox_msg *m)
{
	char b[64];
	int n = snprintf(b, sizeof(b), "B%llu,%lld[", (unsigned long long)m->offset,
	    (long long)m->date);

	put(arg, b, (size_t)n);
	return 0;
}

static int c_data(void *arg, const uint8_t *p, size_t n)
{
	put(arg, p, n);
	return 0;
}

static int c_end(void *arg)
{
	put(arg, "]", 1);
	return 0;
}

static const struct import_mbox_ops cops = { c_begin, c_data, c_end };

/* Splits in all at once and one byte at a time; both must give want. */
static int split(const char *in, struct collect *whole)
{
	struct import_mbox m;
	struct collect bytes;
	int r;

	memset(whole, 0, sizeof(*whole));
	memset(&bytes, 0, sizeof(bytes));
	import_mbox_init(&m, &cops, whole);
	if ((r = import_mbox_feed(&m, (const uint8_t *)in, strlen(in))) < 0 ||
	    (r = import_mbox_finish(&m)) < 0)
		return r;
	import_mbox_init(&m, &cops, &bytes);
	for (size_t i = 0; in[i] != '\0'; i++)
		if ((r = import_mbox_feed(&m, (const uint8_t *)in + i, 1)) < 0)
			return r;
	if ((r = import_mbox_finish(&m)) < 0)
		return r;
	return strcmp(whole->out, bytes.out) == 0 ? 0 : -EILSEQ;
}

TEST(mbox_split)
{
	struct collect c;

	setenv("TZ", "UTC", 1);
	tzset();
	ASSERT_INT_EQ(split("From a Thu Jan  1 00:00:00 1970\nSubject: x\n\nbody\n\n"
	    "From b Thu Jan  1 00:00:01 1970\nSubject: y\n\n>From quoted\n>>From twice\n"
	    ">From\n>Fro\nFrom nodate here\n\n\n", &c), 0);
	ASSERT_STR_EQ(c.out, "B0,0[Subject: x\n\nbody\n]B50,1[Subject: y\n\nFrom quoted\n"
	    ">From twice\n>From\n>Fro\nFrom nodate here\n\n]");
	/* CRLF mbox, no blank line before the separator, no final newline */
	ASSERT_INT_EQ(split("From a Thu Jan  1 00:00:00 1970\r\nA: 1\r\n\r\nx\r\n"
	    "From b Thu Jan  1 00:00:02 1970\r\nB: 2\r\n\r\nlast", &c), 0);
	ASSERT_STR_EQ(c.out, "B0,0[A: 1\r\n\r\nx\r\n]B44,2[B: 2\r\n\r\nlast]");
	/* leading blank lines are tolerated, an empty file has no message */
	ASSERT_INT_EQ(split("\n\nFrom a Thu Jan  1 00:00:00 1970\n\n", &c), 0);
	ASSERT_STR_EQ(c.out, "B2,0[]");
	ASSERT_INT_EQ(split("", &c), 0);
	ASSERT_STR_EQ(c.out, "");
	/* not an mbox */
	ASSERT_INT_EQ(split("Subject: no\n\nbody\n", &c), -EPROTO);
	ASSERT_INT_EQ(split("\n>From x\n", &c), -EPROTO);
	/* a long ">>>...From " line and a very long "From " line stay body text */
	{
		static char big[3000];
		size_t n = 0;

		n += (size_t)snprintf(big, sizeof(big), "From a Thu Jan  1 00:00:00 1970\n");
		for (int i = 0; i < 100; i++)
			big[n++] = '>';
		n += (size_t)snprintf(big + n, sizeof(big) - n, "From deep\nFrom ");
		for (int i = 0; i < 1100; i++)
			big[n++] = 'x';
		big[n++] = '\n';
		big[n] = '\0';
		ASSERT_INT_EQ(split(big, &c), 0);
		ASSERT_INT_EQ(c.n, strlen("B0,0[") + 99 + strlen("From deep\nFrom ") + 1100 + 1 + 1);
	}
}

static int kw_count;
static int count_kw(void *arg, const char *name, size_t n)
{
	(void)arg;
	(void)name;
	(void)n;
	kw_count++;
	return 0;
}

TEST(mbox_status)
{
	uint32_t f;
	const char *m = "Subject: s\r\nstatus: RO\r\nX-Status: ADFT\r\nX-Keywords: $Junk,foo\r\n"
	    " bar\r\n\r\nStatus: U\r\n";

	kw_count = 0;
	ASSERT_INT_EQ(import_mbox_status((const uint8_t *)m, strlen(m), &f, count_kw, NULL), 0);
	ASSERT_INT_EQ(f, VAULT_F_SEEN | VAULT_F_ANSWERED | VAULT_F_DELETED | VAULT_F_FLAGGED |
	    VAULT_F_DRAFT);
	ASSERT_INT_EQ(kw_count, 3);
	m = "Status: O\nSubject: x\n\nX-Status: F\n";
	ASSERT_INT_EQ(import_mbox_status((const uint8_t *)m, strlen(m), &f, NULL, NULL), 0);
	ASSERT_INT_EQ(f, 0);
}
