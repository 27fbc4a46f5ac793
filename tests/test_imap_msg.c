/* Unit tests for imapd/imap-msg (the message layer behind FETCH and SEARCH).
 *
 * The ENVELOPE/BODYSTRUCTURE/BODY strings in `expected` were checked against
 * Dovecot 2.3.19 (FETCH of the same messages, CRLF-normalised, from a private
 * Dovecot instance on this machine): every value agrees, except where we differ on
 * purpose (see imap-msg.h): message-global.eml (RFC 9051 encapsulates message/global),
 * quoted-local.eml's "first . last @ example . com" (RFC 5322 obs-local-part allows
 * CFWS around the dots; Dovecot gives up on it). Dovecot sometimes writes a literal
 * where we write the equivalent quoted string; the values are the same. */
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "harness.h"
#include "imap-msg.h"

#ifndef TEST_MSG_DIR
#define TEST_MSG_DIR "tests/data/msg"
#endif

static const char *msg_dir(void)
{
	const char *d = getenv("TEST_MSG_DIR");

	return d != NULL ? d : TEST_MSG_DIR;
}

static uint8_t *read_path(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
		fclose(f);
		return NULL;
	}
	buf = malloc((size_t)n + 1);
	if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static uint8_t *read_msg(const char *name, size_t *len)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s", msg_dir(), name);
	return read_path(path, len);
}

/* A parsed test message and its bytes. */
struct tmsg {
	uint8_t *data;
	size_t len;
	struct imap_msg *m;
};

static int tm_open(struct tmsg *t, const char *name)
{
	memset(t, 0, sizeof(*t));
	if ((t->data = read_msg(name, &t->len)) == NULL) {
		fprintf(stderr, "cannot read %s/%s\n", msg_dir(), name);
		return -1;
	}
	return imap_msg_parse(t->data, t->len, NULL, &t->m);
}

static int tm_open_mem(struct tmsg *t, const char *s)
{
	memset(t, 0, sizeof(*t));
	t->len = strlen(s);
	t->data = malloc(t->len + 1);
	memcpy(t->data, s, t->len + 1);
	return imap_msg_parse(t->data, t->len, NULL, &t->m);
}

static void tm_close(struct tmsg *t)
{
	imap_msg_free(&t->m);
	free(t->data);
	t->data = NULL;
}

/* "2.1.3" -> path; returns depth */
static size_t parse_path(const char *s, uint32_t *path)
{
	size_t n = 0;

	while (*s >= '0' && *s <= '9' && n < 64) {
		path[n++] = (uint32_t)strtoul(s, (char **)&s, 10);
		if (*s == '.')
			s++;
	}
	return n;
}

/* BODY[path.spec (fields)] as a malloc'd NUL-terminated string (NULs kept; *len set). */
static char *section(const struct tmsg *t, const char *p, enum imap_msg_section_spec spec,
    const char *const *fields, size_t nfields, size_t *len_out, int *r_out)
{
	uint32_t path[64];
	size_t depth = parse_path(p, path), off = 0, len = 0;
	struct imap_mbuf b;
	char *res;
	int r;

	imap_mbuf_init(&b, 0);
	r = imap_msg_section(t->m, path, depth, spec, fields, nfields, &b, &off, &len);
	if (r_out != NULL)
		*r_out = r;
	if (r == 1) {
		res = malloc(b.len + 1);
		memcpy(res, b.d, b.len);
		res[b.len] = '\0';
		len = b.len;
	} else {
		res = malloc(len + 1);
		if (r == 0)
			memcpy(res, t->data + off, len);
		else
			len = 0;
		res[len] = '\0';
	}
	imap_mbuf_release(&b);
	if (len_out != NULL)
		*len_out = len;
	return res;
}

#define ASSERT_SECTION(t, p, spec, expect) do { \
	size_t l_; char *s_ = section((t), (p), (spec), NULL, 0, &l_, NULL); \
	int ok_ = l_ == strlen(expect) && memcmp(s_, (expect), l_) == 0; \
	if (!ok_) fprintf(stderr, "section %s/%d: got \"%s\"\n", (p), (int)(spec), s_); \
	free(s_); ASSERT_TRUE(ok_); } while (0)

static char *binary(const struct tmsg *t, const char *p, size_t *len, int *r)
{
	uint32_t path[64];
	size_t depth = parse_path(p, path);
	struct imap_mbuf b;
	char *res;

	imap_mbuf_init(&b, 0);
	*r = imap_msg_binary(t->m, path, depth, &b);
	res = malloc(b.len + 1);
	if (b.len > 0)
		memcpy(res, b.d, b.len);
	res[b.len] = '\0';
	*len = b.len;
	imap_mbuf_release(&b);
	return res;
}

static const struct expected {
	const char *file, *envelope, *bodystructure, *body;
} expected[] = {
	{ "8bit-headers.eml",
	    "(\"Sat, 20 Jan 2024 08:08:08 +0100\" {20}\r\n"
	    "Gr\xc3\xbc\xc3\x9f""e \xe2\x82\xac und caf\xe9 (({13}\r\n"
	    "J\xc3\xb6rg M\xc3\xbcller NIL \"joerg\" \"example.de\")) (({13}\r\n"
	    "J\xc3\xb6rg M\xc3\xbcller NIL \"joerg\" \"example.de\")) (({13}\r\n"
	    "J\xc3\xb6rg M\xc3\xbcller NIL \"joerg\" \"example.de\")) (({8}\r\n"
	    "Fran\xe7ois NIL \"francois\" \"example.fr\")) NIL NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 19 1 NIL NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 19 1)" },
	{ "alternative.eml",
	    "(\"Tue, 16 Jan 2024 14:02:11 -0500 (EST)\" \"Quarterly report\" ((\"Carol Q. Sender\" NIL \"carol\" \"example.net\")) ((\"Carol Q. Sender\" NIL \"carol\" \"example.net\")) ((\"Carol Q. Sender\" NIL \"carol\" \"example.net\")) ((NIL NIL \"dave\" \"example.com\")) ((\"Eve\" NIL \"eve\" \"example.com\")(NIL NIL \"frank\" \"example.com\")) NIL \"<prev.42@example.com>\" \"<alt.1@example.net>\")",
	    "((\"text\" \"plain\" (\"charset\" \"iso-8859-1\") NIL NIL \"quoted-printable\" 107 2 NIL NIL NIL NIL)(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"base64\" 154 1 NIL NIL NIL NIL) \"alternative\" (\"boundary\" \"alt-b0undary-7c3\") NIL NIL NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"iso-8859-1\") NIL NIL \"quoted-printable\" 107 2)(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"base64\" 154 1) \"alternative\")" },
	{ "bad-content-type.eml",
	    "(NIL \"broken content types\" ((NIL NIL \"ct\" \"example.org\")) ((NIL NIL \"ct\" \"example.org\")) ((NIL NIL \"ct\" \"example.org\")) NIL NIL NIL NIL NIL)",
	    "((\"text\" \"\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 9 0 NIL NIL NIL NIL)(\"\" \"\" NIL NIL NIL \"7bit\" 18 NIL NIL NIL NIL)(\"\" \"\" NIL NIL NIL \"7bit\" 10 NIL NIL NIL NIL)((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) \"mixed\" NIL NIL NIL NIL)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 0 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"ct\") NIL NIL NIL)",
	    "((\"text\" \"\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 9 0)(\"\" \"\" NIL NIL NIL \"7bit\" 18)(\"\" \"\" NIL NIL NIL \"7bit\" 10)((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\")(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 0 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) 0) \"mixed\")" },
	{ "bare-lf.eml",
	    "(NIL \"bare LF\" ((NIL NIL \"lf\" \"example.org\")) ((NIL NIL \"lf\" \"example.org\")) ((NIL NIL \"lf\" \"example.org\")) NIL NIL NIL NIL NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 17 1 NIL NIL NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"lf\") NIL NIL NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 17 1)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 0) \"mixed\")" },
	{ "digest.eml",
	    "(NIL \"Digest\" ((NIL NIL \"list\" \"example.org\")) ((NIL NIL \"list\" \"example.org\")) ((NIL NIL \"list\" \"example.org\")) NIL NIL NIL NIL NIL)",
	    "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 52 (NIL \"first message\" ((NIL NIL \"one\" \"example.org\")) ((NIL NIL \"one\" \"example.org\")) ((NIL NIL \"one\" \"example.org\")) NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0 NIL NIL NIL NIL) 3 NIL NIL NIL NIL)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 113 (NIL \"second message\" ((NIL NIL \"two\" \"example.org\")) ((NIL NIL \"two\" \"example.org\")) ((NIL NIL \"two\" \"example.org\")) NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 3 0 NIL NIL NIL NIL) 5 NIL NIL NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 33 0 NIL NIL NIL NIL) \"digest\" (\"boundary\" \"dg\") NIL NIL NIL)",
	    "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 52 (NIL \"first message\" ((NIL NIL \"one\" \"example.org\")) ((NIL NIL \"one\" \"example.org\")) ((NIL NIL \"one\" \"example.org\")) NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0) 3)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 113 (NIL \"second message\" ((NIL NIL \"two\" \"example.org\")) ((NIL NIL \"two\" \"example.org\")) ((NIL NIL \"two\" \"example.org\")) NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 3 0) 5)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 33 0) \"digest\")" },
	{ "duplicates.eml",
	    "(\"Mon, 22 Jan 2024 10:00:00 +0000\" \"second subject\" ((NIL NIL \"a\" \"example.org\")(NIL NIL \"b\" \"example.org\")) ((NIL NIL \"a\" \"example.org\")(NIL NIL \"b\" \"example.org\")) ((NIL NIL \"a\" \"example.org\")(NIL NIL \"b\" \"example.org\")) NIL NIL NIL NIL NIL)",
	    "(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 5 1 NIL NIL NIL NIL)",
	    "(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 5 1)" },
	{ "empty.eml",
	    "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)" },
	{ "encodings.eml",
	    "(NIL \"transfer encodings\" ((NIL NIL \"enc\" \"example.org\")) ((NIL NIL \"enc\" \"example.org\")) ((NIL NIL \"enc\" \"example.org\")) NIL NIL NIL NIL NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 70 2 NIL NIL NIL NIL)(\"application\" \"octet-stream\" NIL NIL NIL \"base64\" 20 NIL NIL NIL NIL)(\"application\" \"octet-stream\" NIL NIL NIL \"x-uuencode\" 19 NIL NIL NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"base64\" 21 1 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"enc\") NIL NIL NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 70 2)(\"application\" \"octet-stream\" NIL NIL NIL \"base64\" 20)(\"application\" \"octet-stream\" NIL NIL NIL \"x-uuencode\" 19)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"base64\" 21 1) \"mixed\")" },
	{ "groups.eml",
	    "(NIL \"groups\" ((\"Group Sender\" NIL \"gs\" \"example.org\")) ((\"Group Sender\" NIL \"gs\" \"example.org\")) ((\"Group Sender\" NIL \"gs\" \"example.org\")) ((NIL NIL \"Team\" NIL)(NIL NIL \"alice\" \"example.org\")(\"Bob B.\" NIL \"bob\" \"example.org\")(NIL NIL NIL NIL)(NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) ((NIL NIL \"Empty Group\" NIL)(NIL NIL NIL NIL)(NIL NIL \"Friends\" NIL)(\"Carol\" NIL \"carol\" \"example.org\")(NIL NIL NIL NIL)) ((NIL NIL \"Quoted: Group\" NIL)(NIL NIL \"dave\" \"example.org\")(NIL NIL NIL NIL)) NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1 NIL NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1)" },
	{ "header-oddities.eml",
	    "(NIL \"spaced name\" ((NIL NIL \"odd\" \"example.org\")) ((NIL NIL \"odd\" \"example.org\")) ((NIL NIL \"odd\" \"example.org\")) NIL NIL NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1 NIL NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1)" },
	{ "header-only.eml",
	    "(NIL \"header only\" ((NIL NIL \"ho\" \"example.org\")) ((NIL NIL \"ho\" \"example.org\")) ((NIL NIL \"ho\" \"example.org\")) NIL NIL NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)" },
	{ "malformed-boundary.eml",
	    "(NIL \"malformed boundaries\" ((NIL NIL \"mb\" \"example.org\")) ((NIL NIL \"mb\" \"example.org\")) ((NIL NIL \"mb\" \"example.org\")) NIL NIL NIL NIL NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0 NIL NIL NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 41 0 NIL NIL NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 33 0 NIL NIL NIL NIL)((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 19 0 NIL NIL NIL NIL) \"alternative\" (\"boundary\" \"mb-inner\") NIL NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 33 1 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"mb\") NIL NIL NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 41 0)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 33 0)((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 19 0) \"alternative\")(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 33 1) \"mixed\")" },
	{ "message-global.eml",
	    "(NIL \"message/global\" ((NIL NIL \"g\" \"example.org\")) ((NIL NIL \"g\" \"example.org\")) ((NIL NIL \"g\" \"example.org\")) NIL NIL NIL NIL NIL)",
	    "((\"message\" \"global\" NIL NIL NIL \"7bit\" 69 (NIL {7}\r\n"
	    "Gr\xc3\xbc\xc3\x9f""e ((\"=?utf-8?q?S=C3=A9?=\" NIL \"se\" \"example.org\")) ((\"=?utf-8?q?S=C3=A9?=\" NIL \"se\" \"example.org\")) ((\"=?utf-8?q?S=C3=A9?=\" NIL \"se\" \"example.org\")) NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0 NIL NIL NIL NIL) 3 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"g\") NIL NIL NIL)",
	    "((\"message\" \"global\" NIL NIL NIL \"7bit\" 69 (NIL {7}\r\n"
	    "Gr\xc3\xbc\xc3\x9f""e ((\"=?utf-8?q?S=C3=A9?=\" NIL \"se\" \"example.org\")) ((\"=?utf-8?q?S=C3=A9?=\" NIL \"se\" \"example.org\")) ((\"=?utf-8?q?S=C3=A9?=\" NIL \"se\" \"example.org\")) NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0) 3) \"mixed\")" },
	{ "mixed-attach.eml",
	    "(\"Wed, 17 Jan 2024 08:00:00 +0000\" \"Contract and photo\" ((\"Grace\" NIL \"grace\" \"example.org\")) ((\"Grace\" NIL \"grace\" \"example.org\")) ((\"Grace\" NIL \"grace\" \"example.org\")) ((\"Heidi\" NIL \"heidi\" \"example.com\")) NIL NIL NIL \"<mixed.7@example.org>\")",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 46 0 NIL NIL NIL NIL)(\"application\" \"pdf\" (\"name\" \"contract.pdf\") NIL \"Signed contract\" \"base64\" 1074 \"Q2hlY2sgSW50ZWdyaXR5IQ==\" (\"attachment\" (\"filename\" \"contract.pdf\" \"size\" \"790\")) (\"en\" \"de-CH\") NIL)(\"image\" \"png\" (\"name\" \"pixel.png\") \"<pixel@example.org>\" NIL \"BASE64\" 98 NIL (\"inline\" NIL) NIL \"http://example.org/pixel.png\") \"mixed\" (\"boundary\" \"----=_Part_0_1234.5678\") NIL NIL NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 46 0)(\"application\" \"pdf\" (\"name\" \"contract.pdf\") NIL \"Signed contract\" \"base64\" 1074)(\"image\" \"png\" (\"name\" \"pixel.png\") \"<pixel@example.org>\" NIL \"BASE64\" 98) \"mixed\")" },
	{ "nested5.eml",
	    "(NIL \"five levels\" ((NIL NIL \"nest\" \"example.org\")) ((NIL NIL \"nest\" \"example.org\")) ((NIL NIL \"nest\" \"example.org\")) NIL NIL NIL NIL NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 15 0 NIL NIL NIL NIL)((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 15 0 NIL NIL NIL NIL)((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 15 0 NIL NIL NIL NIL)((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 15 0 NIL NIL NIL NIL)((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 15 0 NIL NIL NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 15 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"lvl4\") NIL NIL NIL) \"mixed\" (\"boundary\" \"lvl3\") NIL NIL NIL) \"mixed\" (\"boundary\" \"lvl2\") NIL NIL NIL) \"mixed\" (\"boundary\" \"lvl1\") NIL NIL NIL) \"mixed\" (\"boundary\" \"lvl0\") NIL NIL NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 15 0)((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 15 0)((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 15 0)((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 15 0)((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 15 0)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 15 0) \"mixed\") \"mixed\") \"mixed\") \"mixed\") \"mixed\")" },
	{ "no-body.eml",
	    "(NIL \"no body\" ((NIL NIL \"nb\" \"example.org\")) ((NIL NIL \"nb\" \"example.org\")) ((NIL NIL \"nb\" \"example.org\")) NIL NIL NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)" },
	{ "no-final-newline.eml",
	    "(NIL \"no final newline\" ((NIL NIL \"nn\" \"example.org\")) ((NIL NIL \"nn\" \"example.org\")) ((NIL NIL \"nn\" \"example.org\")) NIL NIL NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 25 0 NIL NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 25 0)" },
	{ "no-mime-version.eml",
	    "(NIL \"Content-Transfer-Encoding without MIME-Version\" ((NIL NIL \"nm\" \"example.org\")) ((NIL NIL \"nm\" \"example.org\")) ((NIL NIL \"nm\" \"example.org\")) NIL NIL NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 1 NIL NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 1)" },
	{ "nul-bytes.eml",
	    "(NIL {11}\r\n"
	    "has \xef\xbf\xbd NUL ((NIL NIL \"nul\" \"example.org\")) ((NIL NIL \"nul\" \"example.org\")) ((NIL NIL \"nul\" \"example.org\")) NIL NIL NIL NIL NIL)",
	    "(\"application\" \"octet-stream\" NIL NIL NIL \"binary\" 16 NIL NIL NIL NIL)",
	    "(\"application\" \"octet-stream\" NIL NIL NIL \"binary\" 16)" },
	{ "obs-route.eml",
	    "(NIL \"obsolete routes\" ((NIL \"@relay1.example,@relay2.example\" \"route\" \"example.org\")) ((NIL \"@relay1.example,@relay2.example\" \"route\" \"example.org\")) ((NIL \"@relay1.example,@relay2.example\" \"route\" \"example.org\")) ((\"Route User\" \"@a.example,@b.example\" \"ru\" \"example.com\")(NIL \"@c.example\" \"plain\" \"example.com\")) ((\"Bad Route\" \"INVALID_ROUTE\" \"garbage\" \"example.com\")) NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1 NIL NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1)" },
	{ "prefix-boundaries.eml",
	    "(NIL \"boundaries that are prefixes of each other\" NIL NIL NIL NIL NIL NIL NIL NIL)",
	    "(((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 9 0 NIL NIL NIL NIL)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 9 0 NIL NIL NIL NIL) \"alternative\" (\"boundary\" \"pb-long\") NIL NIL NIL)((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 20 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"p\") NIL NIL NIL) \"mixed\" (\"boundary\" \"pb\") NIL NIL NIL)",
	    "(((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 9 0)(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 9 0) \"alternative\")((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 20 0) \"mixed\") \"mixed\")" },
	{ "quoted-local.eml",
	    "(NIL \"quoted local parts\" ((NIL NIL \"john.q.public\" \"example.com\")) ((NIL NIL \"sender\" \"[192.0.2.7]\")) ((NIL NIL \"empty-name\" \"example.com\")) ((NIL NIL \"very.(),:;<>[]\\\".VERY.\\\"very@\\\\ \\\"very\\\".unusual\" \"strange.example.com\")(\"a b\" NIL \"a b\" \"example.com\")) ((\"comment, with comma\" NIL \"user.name+tag\" \"example.com\")(NIL NIL \"first.last\" \"example.com\")) NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1 NIL NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1)" },
	{ "rfc2047-subject.eml",
	    "(\"Fri, 19 Jan 2024 12:00:00 +0100\" \"=?utf-8?B?4oKsIDEwMA==?= =?utf-8?Q?_f=C3=BCr_die?= =?ISO-8859-1?Q?_Gr=FC=DFe?= plain =?windows-1252?q?=93quoted=94?=\" ((\"=?UTF-8?B?SsO2cmcgTcO8bGxlcg==?=\" NIL \"joerg\" \"example.de\")) ((\"=?UTF-8?B?SsO2cmcgTcO8bGxlcg==?=\" NIL \"joerg\" \"example.de\")) ((\"=?UTF-8?B?SsO2cmcgTcO8bGxlcg==?=\" NIL \"joerg\" \"example.de\")) ((\"=?iso-8859-1?Q?Andr=E9?=\" NIL \"andre\" \"example.fr\")(\"=?utf-8?q?Zo=C3=AB?=\" NIL \"zoe\" \"example.com\")) NIL NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 53 2 NIL NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 53 2)" },
	{ "rfc2231-filename.eml",
	    "(NIL \"RFC 2231 parameters\" ((NIL NIL \"kim\" \"example.org\")) ((NIL NIL \"kim\" \"example.org\")) ((NIL NIL \"kim\" \"example.org\")) NIL NIL NIL NIL NIL)",
	    "((\"application\" \"octet-stream\" (\"name*\" \"UTF-8''%E2%82%AC%20rates%202024.xlsx\") NIL NIL \"7bit\" 4 NIL (\"attachment\" (\"filename*\" \"iso-8859-1'de'Gr%FC%DFe.txt\")) NIL NIL)(\"text\" \"plain\" (\"charset*\" \"us-ascii'en'us-ascii\" \"title\" \"ab\" \"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0 NIL (\"attachment\" (\"filename\" \"=?utf-8?B?w6nDqQ==?=.txt\")) NIL NIL) \"mixed\" (\"boundary\" \"b2231\") NIL NIL NIL)",
	    "((\"application\" \"octet-stream\" (\"name*\" \"UTF-8''%E2%82%AC%20rates%202024.xlsx\") NIL NIL \"7bit\" 4)(\"text\" \"plain\" (\"charset*\" \"us-ascii'en'us-ascii\" \"title\" \"ab\" \"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0) \"mixed\")" },
	{ "rfc822-attach.eml",
	    "(\"Thu, 18 Jan 2024 17:45:00 +0200\" \"Fwd: Meeting notes\" ((\"Ivan\" NIL \"ivan\" \"example.org\")) ((\"Ivan\" NIL \"ivan\" \"example.org\")) ((\"Ivan\" NIL \"ivan\" \"example.org\")) ((\"Judy\" NIL \"judy\" \"example.com\")) NIL NIL NIL NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 29 1 NIL NIL NIL NIL)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 442 (\"Wed, 17 Jan 2024 10:00:00 -0800\" \"Meeting notes\" ((\"Mallory\" NIL \"mallory\" \"example.net\")) ((\"Mallory\" NIL \"mallory\" \"example.net\")) ((\"Mallory\" NIL \"mallory\" \"example.net\")) ((\"Ivan\" NIL \"ivan\" \"example.org\")(\"Trent\" NIL \"trent\" \"example.net\")) NIL NIL NIL \"<notes@example.net>\") ((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 20 1 NIL NIL NIL NIL)(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 39 0 NIL NIL NIL NIL) \"alternative\" (\"boundary\" \"inner\") NIL NIL NIL) 18 NIL (\"attachment\" (\"filename\" \"notes.eml\")) NIL NIL) \"mixed\" (\"boundary\" \"outer\") NIL NIL NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 29 1)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 442 (\"Wed, 17 Jan 2024 10:00:00 -0800\" \"Meeting notes\" ((\"Mallory\" NIL \"mallory\" \"example.net\")) ((\"Mallory\" NIL \"mallory\" \"example.net\")) ((\"Mallory\" NIL \"mallory\" \"example.net\")) ((\"Ivan\" NIL \"ivan\" \"example.org\")(\"Trent\" NIL \"trent\" \"example.net\")) NIL NIL NIL \"<notes@example.net>\") ((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 20 1)(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 39 0) \"alternative\") 18) \"mixed\")" },
	{ "simple.eml",
	    "(\"Mon, 15 Jan 2024 09:30:00 +0100\" \"Lunch on Friday?\" ((\"Alice Example\" NIL \"alice\" \"example.org\")) ((\"Alice Example\" NIL \"alice\" \"example.org\")) ((\"Alice Example\" NIL \"alice\" \"example.org\")) ((\"Bob\" NIL \"bob\" \"example.com\")) NIL NIL NIL \"<20240115083000.GA1234@example.org>\")",
	    "(\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"8bit\" 85 5 NIL NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"8bit\" 85 5)" },
};

TEST(envelope_and_bodystructure_of_corpus)
{
	struct imap_mbuf b;

	imap_mbuf_init(&b, 0);
	for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
		struct tmsg t;

		if (tm_open(&t, expected[i].file) != 0) {
			tm_close(&t);
			FAIL_AT("parse %s", expected[i].file);
		}
		imap_mbuf_reset(&b);
		ASSERT_INT_EQ(imap_msg_envelope(t.m, NULL, &b), 0);
		if (strcmp((const char *)b.d, expected[i].envelope) != 0)
			fprintf(stderr, "%s: envelope %s\n", expected[i].file, b.d);
		ASSERT_STR_EQ((const char *)b.d, expected[i].envelope);
		imap_mbuf_reset(&b);
		ASSERT_INT_EQ(imap_msg_bodystructure(t.m, true, &b), 0);
		if (strcmp((const char *)b.d, expected[i].bodystructure) != 0)
			fprintf(stderr, "%s: bodystructure %s\n", expected[i].file, b.d);
		ASSERT_STR_EQ((const char *)b.d, expected[i].bodystructure);
		imap_mbuf_reset(&b);
		ASSERT_INT_EQ(imap_msg_bodystructure(t.m, false, &b), 0);
		ASSERT_STR_EQ((const char *)b.d, expected[i].body);
		tm_close(&t);
	}
	imap_mbuf_release(&b);
}

TEST(sections_simple)
{
	struct tmsg t;
	const char *body = "Hi Bob,\r\n\r\nshall we have lunch on Friday? The caf\xc3\xa9 on the corner is fine.\r\n\r\nAlice\r\n";
	int r;
	size_t len;
	char *s;

	ASSERT_INT_EQ(tm_open(&t, "simple.eml"), 0);
	ASSERT_SECTION(&t, "", IMAP_MSG_SEC_TEXT, body);
	/* part 1 of a non-multipart message is its body; its MIME header is the
	 * message header; HEADER/TEXT of a non-message part are empty (Dovecot) */
	ASSERT_SECTION(&t, "1", IMAP_MSG_SEC_NONE, body);
	s = section(&t, "1", IMAP_MSG_SEC_MIME, NULL, 0, &len, NULL);
	ASSERT_TRUE(strncmp(s, "Return-Path:", 12) == 0);
	ASSERT_TRUE(len > 4 && memcmp(s + len - 4, "\r\n\r\n", 4) == 0);
	free(s);
	s = section(&t, "", IMAP_MSG_SEC_HEADER, NULL, 0, &len, NULL);
	ASSERT_TRUE(len + strlen(body) == t.len);
	free(s);
	ASSERT_SECTION(&t, "1", IMAP_MSG_SEC_HEADER, "");
	ASSERT_SECTION(&t, "1", IMAP_MSG_SEC_TEXT, "");
	ASSERT_SECTION(&t, "1.1", IMAP_MSG_SEC_NONE, "");
	ASSERT_SECTION(&t, "2", IMAP_MSG_SEC_NONE, "");
	s = section(&t, "", IMAP_MSG_SEC_NONE, NULL, 0, &len, NULL);
	ASSERT_INT_EQ(len, t.len);
	free(s);
	/* MIME of the message itself does not exist in the grammar */
	s = section(&t, "", IMAP_MSG_SEC_MIME, NULL, 0, &len, &r);
	ASSERT_INT_EQ(r, -EINVAL);
	free(s);
	/* part number 0 is not a part */
	s = section(&t, "1.0", IMAP_MSG_SEC_NONE, NULL, 0, &len, &r);
	ASSERT_INT_EQ(r, -EINVAL);
	free(s);
	tm_close(&t);
}

TEST(sections_rfc822_attachment)
{
	struct tmsg t;
	size_t len;
	char *s;

	ASSERT_INT_EQ(tm_open(&t, "rfc822-attach.eml"), 0);
	ASSERT_SECTION(&t, "1", IMAP_MSG_SEC_NONE, "Forwarding the notes below.\r\n");
	ASSERT_SECTION(&t, "1", IMAP_MSG_SEC_MIME, "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
	ASSERT_SECTION(&t, "2", IMAP_MSG_SEC_MIME,
	    "Content-Type: message/rfc822\r\n"
	    "Content-Disposition: attachment; filename=\"notes.eml\"\r\n\r\n");
	/* HEADER and TEXT of a message/rfc822 part are its message's */
	s = section(&t, "2", IMAP_MSG_SEC_HEADER, NULL, 0, &len, NULL);
	ASSERT_TRUE(strncmp(s, "From: Mallory", 13) == 0);
	ASSERT_TRUE(memcmp(s + len - 4, "\r\n\r\n", 4) == 0);
	free(s);
	s = section(&t, "2", IMAP_MSG_SEC_TEXT, NULL, 0, &len, NULL);
	ASSERT_TRUE(strncmp(s, "--inner\r\n", 9) == 0);
	/* the blank line before --outer--: its CRLF belongs to the boundary */
	ASSERT_TRUE(memcmp(s + len - 11, "--inner--\r\n", 11) == 0);
	free(s);
	/* BODY[2] is the whole encapsulated message */
	s = section(&t, "2", IMAP_MSG_SEC_NONE, NULL, 0, &len, NULL);
	ASSERT_TRUE(strncmp(s, "From: Mallory", 13) == 0);
	ASSERT_TRUE(memcmp(s + len - 11, "--inner--\r\n", 11) == 0);
	free(s);
	/* the path continues into the encapsulated multipart */
	ASSERT_SECTION(&t, "2.1", IMAP_MSG_SEC_NONE, "1. Budget\r\n2. Hiring");
	ASSERT_SECTION(&t, "2.1", IMAP_MSG_SEC_MIME, "Content-Type: text/plain; charset=utf-8\r\n\r\n");
	ASSERT_SECTION(&t, "2.2", IMAP_MSG_SEC_NONE, "<ol><li>Budget</li><li>Hiring</li></ol>");
	ASSERT_SECTION(&t, "2.3", IMAP_MSG_SEC_NONE, "");
	/* Dovecot: "1" below a leaf is the leaf itself, one level deep only */
	ASSERT_SECTION(&t, "2.1.1", IMAP_MSG_SEC_NONE, "1. Budget\r\n2. Hiring");
	ASSERT_SECTION(&t, "1.1", IMAP_MSG_SEC_NONE, "Forwarding the notes below.\r\n");
	ASSERT_SECTION(&t, "1.1.1", IMAP_MSG_SEC_NONE, "");
	ASSERT_SECTION(&t, "3", IMAP_MSG_SEC_NONE, "");
	tm_close(&t);
}

TEST(sections_nested_and_single_part_message)
{
	struct tmsg t;

	ASSERT_INT_EQ(tm_open(&t, "nested5.eml"), 0);
	ASSERT_SECTION(&t, "1", IMAP_MSG_SEC_NONE, "text at level 0");
	ASSERT_SECTION(&t, "2.1", IMAP_MSG_SEC_NONE, "text at level 1");
	ASSERT_SECTION(&t, "2.2.2.2.1", IMAP_MSG_SEC_NONE, "text at level 4");
	ASSERT_SECTION(&t, "2.2.2.2.2", IMAP_MSG_SEC_NONE, "leaf at level 5");
	ASSERT_SECTION(&t, "2.2.2.2.2", IMAP_MSG_SEC_MIME, "Content-Type: text/plain\r\n\r\n");
	ASSERT_SECTION(&t, "2.2.2.2.3", IMAP_MSG_SEC_NONE, "");
	tm_close(&t);

	/* a digest part without Content-Type is message/rfc822 (RFC 2046 5.1.5) */
	ASSERT_INT_EQ(tm_open(&t, "digest.eml"), 0);
	ASSERT_SECTION(&t, "1", IMAP_MSG_SEC_HEADER, "From: one@example.org\r\nSubject: first message\r\n\r\n");
	ASSERT_SECTION(&t, "1.1", IMAP_MSG_SEC_NONE, "one");
	ASSERT_SECTION(&t, "2.1", IMAP_MSG_SEC_NONE, "two");
	ASSERT_SECTION(&t, "3", IMAP_MSG_SEC_NONE, "an explicit text part in a digest");
	ASSERT_SECTION(&t, "1", IMAP_MSG_SEC_MIME, "\r\n");
	tm_close(&t);
}

TEST(sections_malformed_boundaries)
{
	struct tmsg t;

	ASSERT_INT_EQ(tm_open(&t, "malformed-boundary.eml"), 0);
	ASSERT_INT_EQ(imap_msg_root(t.m)->nchildren, 6);
	ASSERT_SECTION(&t, "1", IMAP_MSG_SEC_NONE, "first");
	ASSERT_SECTION(&t, "2", IMAP_MSG_SEC_NONE, "after delimiter with trailing white space");
	ASSERT_SECTION(&t, "3", IMAP_MSG_SEC_NONE, "after a prefix-only boundary line");
	/* the outer boundary ends the inner multipart that never closed */
	ASSERT_SECTION(&t, "4.1", IMAP_MSG_SEC_NONE, "inner, never closed");
	/* a header cut short by a boundary: no body */
	ASSERT_SECTION(&t, "5", IMAP_MSG_SEC_MIME, "Content-Type: text/plain");
	ASSERT_SECTION(&t, "5", IMAP_MSG_SEC_NONE, "");
	/* no closing delimiter: the last part runs to the end */
	ASSERT_SECTION(&t, "6", IMAP_MSG_SEC_NONE, "last part, no closing delimiter\r\n");
	tm_close(&t);

	ASSERT_INT_EQ(tm_open(&t, "prefix-boundaries.eml"), 0);
	ASSERT_SECTION(&t, "1.1", IMAP_MSG_SEC_NONE, "inner one");
	ASSERT_SECTION(&t, "1.2", IMAP_MSG_SEC_NONE, "inner two");
	ASSERT_SECTION(&t, "2.1", IMAP_MSG_SEC_NONE, "short inner boundary");
	ASSERT_SECTION(&t, "3", IMAP_MSG_SEC_NONE, "");
	tm_close(&t);
}

TEST(sections_line_endings_and_truncation)
{
	struct tmsg t;
	size_t len;
	char *s;

	ASSERT_INT_EQ(tm_open(&t, "bare-lf.eml"), 0);
	ASSERT_TRUE(imap_msg_flags(t.m) & IMAP_MSG_F_BARE_LF);
	ASSERT_SECTION(&t, "1", IMAP_MSG_SEC_NONE, "line one\nline two");
	ASSERT_SECTION(&t, "2", IMAP_MSG_SEC_NONE, "second");
	ASSERT_SECTION(&t, "2", IMAP_MSG_SEC_MIME, "Content-Type: text/plain\n\n");
	tm_close(&t);

	ASSERT_INT_EQ(tm_open(&t, "no-final-newline.eml"), 0);
	ASSERT_SECTION(&t, "", IMAP_MSG_SEC_TEXT, "last line without newline");
	ASSERT_INT_EQ(imap_msg_root(t.m)->body_lines, 0);
	tm_close(&t);

	ASSERT_INT_EQ(tm_open(&t, "no-body.eml"), 0);
	ASSERT_SECTION(&t, "", IMAP_MSG_SEC_TEXT, "");
	ASSERT_SECTION(&t, "", IMAP_MSG_SEC_HEADER, "From: nb@example.org\r\nSubject: no body\r\n\r\n");
	tm_close(&t);

	ASSERT_INT_EQ(tm_open(&t, "header-only.eml"), 0);
	ASSERT_SECTION(&t, "", IMAP_MSG_SEC_HEADER, "From: ho@example.org\r\nSubject: header only");
	ASSERT_SECTION(&t, "", IMAP_MSG_SEC_TEXT, "");
	{
		/* RFC 9051 6.4.5: no blank line is added when the message has none */
		const char *f[] = { "subject" };

		s = section(&t, "", IMAP_MSG_SEC_HEADER_FIELDS, f, 1, &len, NULL);
		ASSERT_STR_EQ(s, "Subject: header only");
		free(s);
	}
	tm_close(&t);

	ASSERT_INT_EQ(tm_open(&t, "empty.eml"), 0);
	ASSERT_SECTION(&t, "", IMAP_MSG_SEC_HEADER, "");
	ASSERT_SECTION(&t, "1", IMAP_MSG_SEC_NONE, "");
	tm_close(&t);
}

TEST(header_fields)
{
	struct tmsg t;
	const char *f1[] = { "SUBJECT", "x-fold-first", "nope" };
	const char *f2[] = { "subject", "From", "x-empty" };
	size_t len;
	int r;
	char *s;

	ASSERT_INT_EQ(tm_open(&t, "header-oddities.eml"), 0);
	s = section(&t, "", IMAP_MSG_SEC_HEADER_FIELDS, f1, 3, &len, &r);
	ASSERT_INT_EQ(r, 1);
	/* order of the message, folding kept, names case-insensitive, blank line */
	ASSERT_STR_EQ(s, "Subject :  spaced name\r\nX-Fold-First:\r\n folded value\r\n\r\n");
	free(s);
	s = section(&t, "", IMAP_MSG_SEC_HEADER_FIELDS_NOT, f2, 3, &len, &r);
	ASSERT_INT_EQ(r, 1);
	ASSERT_STR_EQ(s, "X-No-Space:value\r\nX-Fold-First:\r\n folded value\r\n"
	    "not a header line\r\nX-After-Garbage: still header\r\n\r\n");
	free(s);
	/* nothing matches: just the blank line */
	s = section(&t, "", IMAP_MSG_SEC_HEADER_FIELDS, f1 + 2, 1, &len, &r);
	ASSERT_STR_EQ(s, "\r\n");
	free(s);
	tm_close(&t);

	/* of an encapsulated message */
	ASSERT_INT_EQ(tm_open(&t, "rfc822-attach.eml"), 0);
	{
		const char *f[] = { "subject" };

		s = section(&t, "2", IMAP_MSG_SEC_HEADER_FIELDS, f, 1, &len, &r);
		ASSERT_STR_EQ(s, "Subject: Meeting notes\r\n\r\n");
		free(s);
		s = section(&t, "1", IMAP_MSG_SEC_HEADER_FIELDS, f, 1, &len, &r);
		ASSERT_STR_EQ(s, "");
		free(s);
	}
	tm_close(&t);
}

TEST(header_get)
{
	struct tmsg t;
	struct imap_mbuf b;

	imap_mbuf_init(&b, 0);
	ASSERT_INT_EQ(tm_open(&t, "header-oddities.eml"), 0);
	ASSERT_INT_EQ(imap_msg_header_get(t.m, NULL, "x-no-space", 0, IMAP_MSG_HDR_RAW, &b), 0);
	ASSERT_STR_EQ((const char *)b.d, "value");
	imap_mbuf_reset(&b);
	ASSERT_INT_EQ(imap_msg_header_get(t.m, NULL, "subject", 0, IMAP_MSG_HDR_RAW, &b), 0);
	ASSERT_STR_EQ((const char *)b.d, "spaced name");
	imap_mbuf_reset(&b);
	ASSERT_INT_EQ(imap_msg_header_get(t.m, NULL, "X-FOLD-FIRST", 0, IMAP_MSG_HDR_RAW, &b), 0);
	ASSERT_STR_EQ((const char *)b.d, "\r\n folded value");
	imap_mbuf_reset(&b);
	ASSERT_INT_EQ(imap_msg_header_get(t.m, NULL, "X-FOLD-FIRST", 0, IMAP_MSG_HDR_UNFOLD, &b), 0);
	ASSERT_STR_EQ((const char *)b.d, " folded value");
	imap_mbuf_reset(&b);
	ASSERT_INT_EQ(imap_msg_header_get(t.m, NULL, "x-empty", 0, IMAP_MSG_HDR_RAW, &b), 0);
	ASSERT_INT_EQ(b.len, 0);
	ASSERT_INT_EQ(imap_msg_header_get(t.m, NULL, "x-empty", 1, IMAP_MSG_HDR_RAW, &b), -ENOENT);
	ASSERT_INT_EQ(imap_msg_header_get(t.m, NULL, "not a header line", 0, IMAP_MSG_HDR_RAW, &b), -ENOENT);
	tm_close(&t);

	ASSERT_INT_EQ(tm_open(&t, "duplicates.eml"), 0);
	imap_mbuf_reset(&b);
	ASSERT_INT_EQ(imap_msg_header_get(t.m, NULL, "subject", 1, IMAP_MSG_HDR_RAW, &b), 0);
	ASSERT_STR_EQ((const char *)b.d, "second subject");
	tm_close(&t);

	ASSERT_INT_EQ(tm_open(&t, "rfc2047-subject.eml"), 0);
	imap_mbuf_reset(&b);
	ASSERT_INT_EQ(imap_msg_header_get(t.m, NULL, "subject", 0, IMAP_MSG_HDR_DECODE, &b), 0);
	/* adjacent encoded-words join (RFC 2047 6.2); the space before "plain" stays */
	ASSERT_STR_EQ((const char *)b.d,
	    "\xe2\x82\xac 100 f\xc3\xbcr die Gr\xc3\xbc\xc3\x9f" "e plain \xe2\x80\x9cquoted\xe2\x80\x9d");
	imap_mbuf_reset(&b);
	/* a UTF-8 sequence split across two encoded-words */
	ASSERT_INT_EQ(imap_msg_header_get(t.m, NULL, "x-split", 0, IMAP_MSG_HDR_DECODE, &b), 0);
	ASSERT_STR_EQ((const char *)b.d, "\xe2\x82\xac");
	imap_mbuf_reset(&b);
	/* unknown charset: the decoded bytes as UTF-8; unknown encoding: left as is */
	ASSERT_INT_EQ(imap_msg_header_get(t.m, NULL, "x-unknown", 0, IMAP_MSG_HDR_DECODE, &b), 0);
	ASSERT_STR_EQ((const char *)b.d, "abc and =?utf-8?x?bad?=");
	imap_mbuf_reset(&b);
	ASSERT_INT_EQ(imap_msg_header_get(t.m, NULL, "to", 0, IMAP_MSG_HDR_DECODE, &b), 0);
	ASSERT_STR_EQ((const char *)b.d, "Andr\xc3\xa9 <andre@example.fr>, \"Zo\xc3\xab\" <zoe@example.com>");
	tm_close(&t);
	imap_mbuf_release(&b);
}

static void check_decode(const char *in, const char *out)
{
	struct imap_mbuf b;

	imap_mbuf_init(&b, 0);
	ASSERT_INT_EQ(imap_msg_decode_header(in, strlen(in), &b), 0);
	if (strcmp(b.d != NULL ? (const char *)b.d : "", out) != 0)
		fprintf(stderr, "decode \"%s\": \"%s\"\n", in, b.d);
	ASSERT_STR_EQ(b.d != NULL ? (const char *)b.d : "", out);
	imap_mbuf_release(&b);
}

TEST(rfc2047_decoding)
{
	check_decode("plain text", "plain text");
	check_decode("=?utf-8?q?a_b?=", "a b");
	check_decode("=?UTF-8?B?w6k=?=", "\xc3\xa9");
	check_decode("=?iso-8859-1?q?=E9?= =?iso-8859-1?q?=E8?=", "\xc3\xa9\xc3\xa8");
	check_decode("=?iso-8859-1?q?=E9?=  x  =?iso-8859-1?q?=E8?=", "\xc3\xa9  x  \xc3\xa8");
	check_decode("=?iso-8859-15?q?=A4?=", "\xe2\x82\xac");
	check_decode("=?windows-1252?q?=80=81?=", "\xe2\x82\xac\xef\xbf\xbd");
	check_decode("=?us-ascii*en?q?lang?=", "lang");		/* RFC 2231 section 5 */
	check_decode("=?koi8-r?b?8NLJ18XU?=", "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82");
	check_decode("=?utf-8?q?unterminated", "=?utf-8?q?unterminated");
	check_decode("a\r\n b", "a b");
	check_decode("bad \xff utf8", "bad \xef\xbf\xbd utf8");
	check_decode("=?utf-8?b?AA==?=", "\xef\xbf\xbd");	/* NUL */
}

TEST(rfc2231_parameters)
{
	struct tmsg t;
	struct imap_mbuf b;
	const struct imap_msg_part *p;

	imap_mbuf_init(&b, 0);
	ASSERT_INT_EQ(tm_open(&t, "rfc2231-filename.eml"), 0);
	p = imap_msg_root(t.m)->children;
	ASSERT_INT_EQ(imap_msg_param_decoded(p->params, p->nparams, "name", &b), 0);
	ASSERT_STR_EQ((const char *)b.d, "\xe2\x82\xac rates 2024.xlsx");
	imap_mbuf_reset(&b);
	ASSERT_INT_EQ(imap_msg_param_decoded(p->disp_params, p->ndisp_params, "filename", &b), 0);
	ASSERT_STR_EQ((const char *)b.d, "Gr\xc3\xbc\xc3\x9f" "e.txt");
	imap_mbuf_reset(&b);
	p = p->next;
	ASSERT_INT_EQ(imap_msg_param_decoded(p->params, p->nparams, "title", &b), 0);
	ASSERT_STR_EQ((const char *)b.d, "ab");
	imap_mbuf_reset(&b);
	/* an encoded-word in a quoted filename, as some mailers write */
	ASSERT_INT_EQ(imap_msg_param_decoded(p->disp_params, p->ndisp_params, "filename", &b), 0);
	ASSERT_STR_EQ((const char *)b.d, "\xc3\xa9\xc3\xa9.txt");
	ASSERT_INT_EQ(imap_msg_param_decoded(p->params, p->nparams, "nope", &b), -ENOENT);
	tm_close(&t);
	imap_mbuf_release(&b);
}

TEST(binary_decoding)
{
	struct tmsg t;
	size_t len;
	uint64_t size;
	uint32_t path[2] = { 1, 0 };
	int r;
	char *s;

	ASSERT_INT_EQ(tm_open(&t, "encodings.eml"), 0);
	s = binary(&t, "1", &len, &r);
	ASSERT_INT_EQ(r, 0);
	/* soft break joined, =3D/=3d decoded, transport padding dropped, a bad
	 * escape kept, and the hard line breaks kept as CRLF */
	ASSERT_STR_EQ(s, "softbreak, hex ==, trailing space\r\nbad =ZZ escape, caf\xc3\xa9");
	ASSERT_INT_EQ(imap_msg_binary_size(t.m, path, 1, &size), 0);
	ASSERT_INT_EQ(size, len);
	free(s);
	s = binary(&t, "2", &len, &r);
	ASSERT_STR_EQ(s, "Hello, World!");
	free(s);
	path[0] = 2;
	ASSERT_INT_EQ(imap_msg_binary_size(t.m, path, 1, &size), 0);
	ASSERT_INT_EQ(size, 13);
	/* RFC 3516: an encoding we do not know -> NO [UNKNOWN-CTE] */
	s = binary(&t, "3", &len, &r);
	ASSERT_INT_EQ(r, -ENOTSUP);
	free(s);
	path[0] = 3;
	ASSERT_INT_EQ(imap_msg_binary_size(t.m, path, 1, &size), -ENOTSUP);
	/* characters outside the base64 alphabet are ignored (RFC 2045 6.8) */
	s = binary(&t, "4", &len, &r);
	ASSERT_INT_EQ(r, 0);
	ASSERT_INT_EQ(len, 5);
	ASSERT_TRUE(memcmp(s, "Hello", 5) == 0);
	free(s);
	/* nonexistent part: empty */
	s = binary(&t, "9", &len, &r);
	ASSERT_INT_EQ(r, 0);
	ASSERT_INT_EQ(len, 0);
	free(s);
	/* BINARY[] decodes every part; with a part in an unknown encoding it cannot
	 * (RFC 3516 4.3 UNKNOWN-CTE, as Dovecot) */
	s = binary(&t, "", &len, &r);
	ASSERT_INT_EQ(r, -ENOTSUP);
	free(s);
	ASSERT_INT_EQ(imap_msg_binary_size(t.m, NULL, 0, &size), -ENOTSUP);
	tm_close(&t);

	/* BINARY[] of a whole message and BINARY[n] of a multipart (RFC 3516 4.2):
	 * leaves decoded, an encoded part's Content-Transfer-Encoding replaced by
	 * "binary" at the end of its header, the rest copied with LF made CRLF */
	ASSERT_INT_EQ(tm_open_mem(&t,
	    "From: a@example.org\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: multipart/mixed; boundary=XX\n"
	    "\n"
	    "preamble\n"
	    "--XX\n"
	    "Content-Transfer-Encoding: base64\n"
	    "Content-Type: text/plain\n"
	    "\n"
	    "SGVsbG8=\n"
	    "--XX\r\n"
	    "Content-Type: multipart/alternative; boundary=YY\r\n"
	    "\r\n"
	    "--YY\r\n"
	    "Content-Type: text/plain\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n"
	    "\r\n"
	    "caf=C3=A9=\r\n"
	    "s\r\n"
	    "--YY\r\n"
	    "Content-Type: text/plain\r\n"
	    "\r\n"
	    "seven\nbit\r\n"
	    "--YY--\r\n"
	    "--XX--\n"
	    "epilogue\n"), 0);
	{
		static const char whole[] =
		    "From: a@example.org\r\n"
		    "MIME-Version: 1.0\r\n"
		    "Content-Type: multipart/mixed; boundary=XX\r\n"
		    "\r\n"
		    "preamble\r\n"
		    "--XX\r\n"
		    "Content-Type: text/plain\r\n"
		    "Content-Transfer-Encoding: binary\r\n"
		    "\r\n"
		    "Hello"
		    "\r\n--XX\r\n"
		    "Content-Type: multipart/alternative; boundary=YY\r\n"
		    "\r\n"
		    "--YY\r\n"
		    "Content-Type: text/plain\r\n"
		    "Content-Transfer-Encoding: binary\r\n"
		    "\r\n"
		    "caf\xc3\xa9s"
		    "\r\n--YY\r\n"
		    "Content-Type: text/plain\r\n"
		    "\r\n"
		    "seven\r\nbit"
		    "\r\n--YY--\r\n"
		    "--XX--\r\n"
		    "epilogue\r\n";
		const char *two = strstr(whole, "--YY\r\n");
		const char *two_end = strstr(whole, "--YY--\r\n") + 8;

		s = binary(&t, "", &len, &r);
		ASSERT_INT_EQ(r, 0);
		ASSERT_INT_EQ(len, sizeof(whole) - 1);
		ASSERT_MEM_EQ(s, whole, len);
		free(s);
		ASSERT_INT_EQ(imap_msg_binary_size(t.m, NULL, 0, &size), 0);
		ASSERT_INT_EQ(size, sizeof(whole) - 1);
		/* BINARY[2]: the multipart's body, its parts rewritten the same way */
		s = binary(&t, "2", &len, &r);
		ASSERT_INT_EQ(r, 0);
		ASSERT_INT_EQ(len, (size_t)(two_end - two));
		ASSERT_MEM_EQ(s, two, len);
		free(s);
		path[0] = 2;
		ASSERT_INT_EQ(imap_msg_binary_size(t.m, path, 1, &size), 0);
		ASSERT_INT_EQ(size, (size_t)(two_end - two));
		/* a leaf is its decoded body alone */
		s = binary(&t, "2.1", &len, &r);
		ASSERT_STR_EQ(s, "caf\xc3\xa9s");
		free(s);
	}
	tm_close(&t);

	/* binary content with NUL is returned as it is */
	ASSERT_INT_EQ(tm_open(&t, "nul-bytes.eml"), 0);
	ASSERT_TRUE(imap_msg_flags(t.m) & IMAP_MSG_F_HAS_NUL);
	s = binary(&t, "1", &len, &r);
	ASSERT_INT_EQ(len, 16);
	ASSERT_TRUE(memcmp(s, "binary\0data\0\xff\xfe\r\n", 16) == 0);
	free(s);
	tm_close(&t);

	/* no MIME-Version and no Content-Type: Content-Transfer-Encoding is ignored,
	 * consistent with BODYSTRUCTURE's "7bit" */
	ASSERT_INT_EQ(tm_open(&t, "no-mime-version.eml"), 0);
	s = binary(&t, "1", &len, &r);
	ASSERT_STR_EQ(s, "aGVsbG8=\r\n");
	free(s);
	tm_close(&t);

	/* QP body of alternative.eml */
	ASSERT_INT_EQ(tm_open(&t, "alternative.eml"), 0);
	s = binary(&t, "1", &len, &r);
	ASSERT_STR_EQ(s, "The numbers are in. Revenue grew 12 % this quarter \xe2\x80\x94 see the attached summary.\r\nGr\xfc\xdf" "e, Carol");
	free(s);
	tm_close(&t);
}

static int64_t day_of(const char *s)
{
	time_t t;
	int tz;

	if (imap_msg_parse_date(s, strlen(s), &t, &tz) != 0)
		return -999999;
	return imap_msg_date_day(t, tz);
}

TEST(dates)
{
	time_t t;
	int tz;
	struct tmsg msg;

	ASSERT_INT_EQ(imap_msg_parse_date("Mon, 15 Jan 2024 09:30:00 +0100", 31, &t, &tz), 0);
	ASSERT_INT_EQ(t, 1705307400);
	ASSERT_INT_EQ(tz, 60);
	/* without day name and seconds, with comments and a named zone */
	ASSERT_INT_EQ(imap_msg_parse_date("15 Jan 2024 (c) 09:30 (x) EST", 29, &t, &tz), 0);
	ASSERT_INT_EQ(t, 1705329000);
	ASSERT_INT_EQ(tz, -300);
	/* two-digit years: 50..99 are 19xx, 00..49 are 20xx (RFC 5322 4.3) */
	ASSERT_INT_EQ(day_of("1 Feb 99 00:00 GMT"), 10623);
	ASSERT_INT_EQ(day_of("1 Feb 03 00:00 GMT"), 12084);
	ASSERT_INT_EQ(day_of("1 Feb 103 00:00 GMT"), 12084);
	/* the day in the sender's zone (SENTON ignores time and zone) */
	ASSERT_INT_EQ(day_of("Tue, 1 Jan 2002 23:30:00 -0800"), day_of("1 Jan 2002 00:00 +0000"));
	ASSERT_INT_EQ(day_of("1 Jan 2002 00:30:00 +0900"), day_of("1 Jan 2002 12:00 +0000"));
	ASSERT_INT_EQ(day_of("31 Dec 1969 23:59:59 +0000"), -1);
	/* military zones mean nothing reliable: +0000 */
	ASSERT_INT_EQ(imap_msg_parse_date("1 Jan 2020 00:00 Q", 18, &t, &tz), 0);
	ASSERT_INT_EQ(tz, 0);
	ASSERT_INT_EQ(imap_msg_parse_date("29 Feb 2024 12:00:60 +0000", 26, &t, &tz), 0);
	ASSERT_INT_EQ(imap_msg_parse_date("29 Feb 2023 12:00 +0000", 23, &t, &tz), -EPROTO);
	ASSERT_INT_EQ(imap_msg_parse_date("32 Jan 2023 12:00 +0000", 23, &t, &tz), -EPROTO);
	ASSERT_INT_EQ(imap_msg_parse_date("1 Foo 2023 12:00 +0000", 22, &t, &tz), -EPROTO);
	ASSERT_INT_EQ(imap_msg_parse_date("1 Jan 2023 25:00 +0000", 22, &t, &tz), -EPROTO);
	ASSERT_INT_EQ(imap_msg_parse_date("1 Jan 2023 12:00 +0099", 22, &t, &tz), -EPROTO);
	ASSERT_INT_EQ(imap_msg_parse_date("1 Jan 2023 12:00 -2500", 22, &t, &tz), -EPROTO);
	ASSERT_INT_EQ(imap_msg_parse_date("", 0, &t, &tz), -EPROTO);
	ASSERT_INT_EQ(imap_msg_parse_date("yesterday", 9, &t, &tz), -EPROTO);

	ASSERT_INT_EQ(tm_open(&msg, "alternative.eml"), 0);
	ASSERT_INT_EQ(imap_msg_date(msg.m, &t, &tz), 0);
	ASSERT_INT_EQ(t, 1705431731);
	ASSERT_INT_EQ(tz, -300);
	tm_close(&msg);
	ASSERT_INT_EQ(tm_open(&msg, "groups.eml"), 0);
	ASSERT_INT_EQ(imap_msg_date(msg.m, &t, &tz), -ENOENT);
	tm_close(&msg);
	/* SENT* use the first Date field */
	ASSERT_INT_EQ(tm_open(&msg, "duplicates.eml"), 0);
	ASSERT_INT_EQ(imap_msg_date(msg.m, &t, &tz), 0);
	ASSERT_INT_EQ(t, 1705831200);
	tm_close(&msg);
}

TEST(search)
{
	struct tmsg t;

	ASSERT_INT_EQ(tm_open(&t, "rfc2047-subject.eml"), 0);
	/* QP + UTF-8 body, case-insensitive beyond ASCII */
	ASSERT_INT_EQ(imap_msg_search_text(t.m, "M\xc3\x9cNCHEN", IMAP_MSG_SEARCH_BODY), 1);
	ASSERT_INT_EQ(imap_msg_search_text(t.m, "\xe2\x82\xac 100.", IMAP_MSG_SEARCH_BODY), 1);
	/* the header is not in BODY, but is in TEXT (decoded) */
	ASSERT_INT_EQ(imap_msg_search_text(t.m, "f\xc3\xbcr die", IMAP_MSG_SEARCH_BODY), 0);
	ASSERT_INT_EQ(imap_msg_search_text(t.m, "F\xc3\x9cR DIE", IMAP_MSG_SEARCH_TEXT), 1);
	ASSERT_INT_EQ(imap_msg_search_header(t.m, "subject", "GR\xc3\x9c\xc3\x9f" "E"), 1);
	ASSERT_INT_EQ(imap_msg_search_header(t.m, "from", "j\xc3\xb6rg m\xc3\xbcller"), 1);
	ASSERT_INT_EQ(imap_msg_search_header(t.m, "from", "andre"), 0);
	ASSERT_INT_EQ(imap_msg_search_header(t.m, "x-nope", ""), 0);
	ASSERT_INT_EQ(imap_msg_search_header(t.m, "x-split", ""), 1);
	ASSERT_INT_EQ(imap_msg_search_text(t.m, "", IMAP_MSG_SEARCH_BODY), 1);
	tm_close(&t);

	ASSERT_INT_EQ(tm_open(&t, "alternative.eml"), 0);
	/* iso-8859-1 QP and base64 HTML */
	ASSERT_INT_EQ(imap_msg_search_text(t.m, "gr\xc3\xbc\xc3\x9f" "e, carol", IMAP_MSG_SEARCH_BODY), 1);
	ASSERT_INT_EQ(imap_msg_search_text(t.m, "<P>THE NUMBERS", IMAP_MSG_SEARCH_BODY), 1);
	ASSERT_INT_EQ(imap_msg_search_text(t.m, "quarterly", IMAP_MSG_SEARCH_BODY), 0);
	ASSERT_INT_EQ(imap_msg_search_text(t.m, "quarterly", IMAP_MSG_SEARCH_TEXT), 1);
	tm_close(&t);

	ASSERT_INT_EQ(tm_open(&t, "rfc822-attach.eml"), 0);
	/* BODY matches no header field, not even an encapsulated message's (RFC 9051
	 * 6.4.4, as Dovecot); TEXT does */
	ASSERT_INT_EQ(imap_msg_search_text(t.m, "mallory@example", IMAP_MSG_SEARCH_BODY), 0);
	ASSERT_INT_EQ(imap_msg_search_text(t.m, "mallory@example", IMAP_MSG_SEARCH_TEXT), 1);
	ASSERT_INT_EQ(imap_msg_search_text(t.m, "hiring", IMAP_MSG_SEARCH_BODY), 1);
	tm_close(&t);

	ASSERT_INT_EQ(tm_open(&t, "mixed-attach.eml"), 0);
	/* attachments that are not text are not searched */
	ASSERT_INT_EQ(imap_msg_search_text(t.m, "%PDF", IMAP_MSG_SEARCH_BODY), 0);
	ASSERT_INT_EQ(imap_msg_search_text(t.m, "CONTRACT AND", IMAP_MSG_SEARCH_BODY), 1);
	tm_close(&t);

	ASSERT_INT_EQ(tm_open_mem(&t, "Subject: x\r\n\r\n\xce\xa3\xce\x9f\xce\xa6\xce\x99\xce\x91 \xd0\x9c\xd0\x9e\xd0\xa1\xd0\x9a\xd0\x92\xd0\x90\r\n"), 0);
	/* Greek and Cyrillic simple case folding */
	ASSERT_INT_EQ(imap_msg_search_text(t.m, "\xcf\x83\xce\xbf\xcf\x86\xce\xb9\xce\xb1", IMAP_MSG_SEARCH_BODY), 1);
	ASSERT_INT_EQ(imap_msg_search_text(t.m, "\xd0\xbc\xd0\xbe\xd1\x81\xd0\xba\xd0\xb2\xd0\xb0", IMAP_MSG_SEARCH_BODY), 1);
	tm_close(&t);
}

/* A searcher used like SEARCH uses it: one needle, many header blocks, raw (no parse). */
static int hsearch(const char *needle, const char *hdr, const char *field,
    enum imap_msg_search_field kind)
{
	struct imap_msg_searcher *s = NULL;
	int r;

	if ((r = imap_msg_searcher_new(needle, strlen(needle), &s)) < 0)
		return r;
	r = imap_msg_searcher_header(s, (const uint8_t *)hdr, strlen(hdr), field, kind);
	imap_msg_searcher_free(&s);
	return r;
}

TEST(search_addresses_and_searcher)
{
	static const char groups[] =
	    "From: Sender <s@example.org>\r\n"
	    "Cc: Friends: joe@example.com, \"Mary Smith\" <mary@example.net>;, solo@example.org\r\n"
	    "Bcc: Nested: a@example.com, Inner: b@example.com;;\r\n"
	    "To: =?UTF-8?Q?J=C3=B6rg?= (the boss) <joerg@example.de>,\r\n"
	    " \"Quoted \\\"Name\\\"\" <q@example.com>\r\n"
	    "Subject: plain line\r\n"
	    "X-Folded: one\r\n two\r\n"
	    "\r\n";
	struct imap_msg_searcher *s = NULL;
	const enum imap_msg_search_field A = IMAP_MSG_SEARCH_ADDRESS, P = IMAP_MSG_SEARCH_PLAIN;

	/* RFC 9051 6.4.4: FROM/TO/CC/BCC match the envelope's address list: the
	 * decoded display name, mailbox and host, "name <mailbox@host>" */
	ASSERT_INT_EQ(hsearch("sender <s@EXAMPLE.org>", groups, "from", A), 1);
	ASSERT_INT_EQ(hsearch("mary smith <mary@", groups, "cc", A), 1);
	ASSERT_INT_EQ(hsearch("friends:", groups, "cc", A), 1);
	ASSERT_INT_EQ(hsearch("solo@example.org", groups, "cc", A), 1);
	ASSERT_INT_EQ(hsearch("j\xc3\xb6rg", groups, "to", A), 1);
	ASSERT_INT_EQ(hsearch("=?utf-8?", groups, "to", A), 0);
	/* a comment after a name-addr is not part of the address (raw search finds it) */
	ASSERT_INT_EQ(hsearch("the boss", groups, "to", A), 0);
	ASSERT_INT_EQ(hsearch("the boss", groups, "to", P), 1);
	/* quoting removed: the name is Quoted "Name" */
	ASSERT_INT_EQ(hsearch("quoted \"name\"", groups, "to", A), 1);
	/* the envelope of a nested group (invalid, RFC 5322 3.4) stops before b@ (as
	 * ENVELOPE shows it, and as Dovecot matches); the raw field has it */
	ASSERT_INT_EQ(hsearch("a@example.com", groups, "bcc", A), 1);
	ASSERT_INT_EQ(hsearch("b@example.com", groups, "bcc", A), 0);
	ASSERT_INT_EQ(hsearch("b@example.com", groups, "bcc", P), 1);
	/* empty needle: the field exists */
	ASSERT_INT_EQ(hsearch("", groups, "bcc", A), 1);
	ASSERT_INT_EQ(hsearch("", groups, "reply-to", A), 0);
	/* plain fields: unfolded, one line fast path and folded path agree */
	ASSERT_INT_EQ(hsearch("PLAIN LINE", groups, "subject", P), 1);
	ASSERT_INT_EQ(hsearch("one two", groups, "x-folded", P), 1);
	ASSERT_INT_EQ(hsearch("line", groups, "x-nope", P), 0);

	/* one searcher, many messages (scratch kept): results do not leak between them */
	ASSERT_INT_EQ(imap_msg_searcher_new("MARY", 4, &s), 0);
	for (int i = 0; i < 3; i++) {
		ASSERT_INT_EQ(imap_msg_searcher_header(s, (const uint8_t *)groups,
		    sizeof(groups) - 1, "cc", A), 1);
		ASSERT_INT_EQ(imap_msg_searcher_header(s, (const uint8_t *)groups,
		    sizeof(groups) - 1, "from", A), 0);
	}
	imap_msg_searcher_free(&s);
	imap_msg_searcher_free(&s);	/* NULL is fine */
	ASSERT_TRUE(s == NULL);
}

TEST(casefold_fast_path)
{
	struct imap_mbuf b;
	/* ASCII runs, a NUL (U+FFFD like the charset conversion), invalid UTF-8,
	 * Latin-1 and Cyrillic capitals, long enough for the vector loop */
	static const char in[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ[@`{ 0123456789 abcXYZ"
	    "\x00" "\xff" "\xc3\x84\xd0\x96 END";
	static const char want[] = "abcdefghijklmnopqrstuvwxyz[@`{ 0123456789 abcxyz"
	    "\xef\xbf\xbd" "\xef\xbf\xbd" "\xc3\xa4\xd0\xb6 end";

	imap_mbuf_init(&b, 0);
	ASSERT_INT_EQ(imap_msg_casefold(in, sizeof(in) - 1, &b), 0);
	ASSERT_INT_EQ(b.len, sizeof(want) - 1);
	ASSERT_MEM_EQ(b.d, want, b.len);
	imap_mbuf_release(&b);
}

TEST(addresses)
{
	static const struct { const char *hdr, *expect; } cases[] = {
		{ "a@b.c", "((NIL NIL \"a\" \"b.c\"))" },
		{ "Name <a@b.c>", "((\"Name\" NIL \"a\" \"b.c\"))" },
		{ "\"Last, First\" <a@b.c>", "((\"Last, First\" NIL \"a\" \"b.c\"))" },
		{ "a@b.c (Real  Name)", "((\"Real Name\" NIL \"a\" \"b.c\"))" },
		{ "<@r1,@r2:a@b.c>", "((NIL \"@r1,@r2\" \"a\" \"b.c\"))" },
		{ "g: a@b.c, d@e.f;", "((NIL NIL \"g\" NIL)(NIL NIL \"a\" \"b.c\")(NIL NIL \"d\" \"e.f\")(NIL NIL NIL NIL))" },
		{ "undisclosed-recipients:;", "((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL))" },
		{ "\"a b\"@c.d", "((NIL NIL \"a b\" \"c.d\"))" },
		{ "user", "((NIL NIL \"user\" \"MISSING_DOMAIN\"))" },
		{ "Just A Name", "((\"Just A Name\" NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\"))" },
		{ "<>", "((NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\"))" },
		{ "a@b.c, , d@e.f,", "((NIL NIL \"a\" \"b.c\")(NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")(NIL NIL \"d\" \"e.f\"))" },
		{ "Name <a@b.c", "((\"Name\" NIL \"a\" \"SYNTAX_ERROR\"))" },
		{ "x@[192.0.2.1]", "((NIL NIL \"x\" \"[192.0.2.1]\"))" },
		{ "=?utf-8?q?J=C3=B6rg?= <j@d.e>", "((\"=?utf-8?q?J=C3=B6rg?=\" NIL \"j\" \"d.e\"))" },
		{ "\"q\\\"uote\" <q@d.e>", "((\"q\\\"uote\" NIL \"q\" \"d.e\"))" },
		{ "user..name@d.e, .lead@d.e", "((NIL NIL \"user..name\" \"d.e\")(NIL NIL \".lead\" \"d.e\"))" },
		{ "a@trailing.dot.", "((NIL NIL \"a\" \"MISSING_DOMAIN\"))" },
		{ "(only a comment)", "NIL" },
	};
	struct imap_mbuf b;

	imap_mbuf_init(&b, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char msg[512];
		struct tmsg t;
		const char *s;
		size_t n;

		snprintf(msg, sizeof(msg), "To: %s\r\n\r\n", cases[i].hdr);
		ASSERT_INT_EQ(tm_open_mem(&t, msg), 0);
		imap_mbuf_reset(&b);
		ASSERT_INT_EQ(imap_msg_envelope(t.m, NULL, &b), 0);
		/* the To member is the 6th of the envelope: skip 5 NILs */
		s = (const char *)b.d + strlen("(NIL NIL NIL NIL NIL ");
		n = strlen(s) - strlen(" NIL NIL NIL NIL)");
		if (strlen(cases[i].expect) != n || strncmp(s, cases[i].expect, n) != 0)
			fprintf(stderr, "To: %s -> %s\n", cases[i].hdr, b.d);
		ASSERT_TRUE(strlen(cases[i].expect) == n && strncmp(s, cases[i].expect, n) == 0);
		tm_close(&t);
	}
	imap_mbuf_release(&b);
}

TEST(huge_folded_headers)
{
	struct tmsg t;
	struct imap_mbuf b;
	size_t n = 0;

	imap_mbuf_init(&b, 0);
	ASSERT_INT_EQ(tm_open(&t, "huge-folded.eml"), 0);
	ASSERT_INT_EQ(imap_msg_envelope(t.m, NULL, &b), 0);
	for (const char *p = (const char *)b.d; (p = strstr(p, "\"example.com\")")) != NULL; p++)
		n++;
	ASSERT_INT_EQ(n, 300);
	ASSERT_TRUE(strstr((const char *)b.d, "(\"User 299\" NIL \"user299\" \"example.com\")") != NULL);
	imap_mbuf_reset(&b);
	ASSERT_INT_EQ(imap_msg_header_get(t.m, NULL, "subject", 0, IMAP_MSG_HDR_UNFOLD, &b), 0);
	ASSERT_INT_EQ(b.len, 400 * 7 - 1);
	imap_mbuf_reset(&b);
	ASSERT_INT_EQ(imap_msg_bodystructure(t.m, true, &b), 0);
	ASSERT_STR_EQ((const char *)b.d, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1 NIL NIL NIL NIL)");
	tm_close(&t);

	/* a header examined only up to max_header_bytes: fields past it are ignored,
	 * the header's extent is still right */
	{
		struct imap_msg_limits lim;
		struct imap_msg *m;
		size_t len;
		uint8_t *d = read_msg("huge-folded.eml", &len);

		imap_msg_limits_default(&lim);
		lim.max_header_bytes = 1000;
		ASSERT_INT_EQ(imap_msg_parse(d, len, &lim, &m), 0);
		ASSERT_TRUE(imap_msg_flags(m) & IMAP_MSG_F_LIMITED);
		ASSERT_INT_EQ(imap_msg_root(m)->body_len, 6);
		ASSERT_TRUE(imap_msg_root(m)->type == NULL);	/* Content-Type not seen */
		imap_mbuf_reset(&b);
		ASSERT_INT_EQ(imap_msg_header_get(m, NULL, "subject", 0, 0, &b), -ENOENT);
		imap_msg_free(&m);
		free(d);
	}
	imap_mbuf_release(&b);
}

/* builds a message nested `levels` deep (multipart or message/rfc822 alternately) */
static char *deep_message(int levels)
{
	size_t cap = (size_t)levels * 200 + 200, len = 0;
	char *s = malloc(cap);

	for (int i = 0; i < levels; i++) {
		if (i % 2 == 0)
			len += (size_t)snprintf(s + len, cap - len,
			    "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i);
		else
			len += (size_t)snprintf(s + len, cap - len,
			    "Content-Type: message/rfc822\r\n\r\nSubject: level %d\r\nMIME-Version: 1.0\r\n", i);
	}
	len += (size_t)snprintf(s + len, cap - len, "Content-Type: text/plain\r\n\r\ndeepest\r\n");
	for (int i = levels - 1; i >= 0; i--) {
		if (i % 2 == 0)
			len += (size_t)snprintf(s + len, cap - len, "--b%d--\r\n", i);
	}
	return s;
}

TEST(limits_depth_and_parts)
{
	struct imap_msg_limits lim;
	struct imap_msg *m;
	struct imap_mbuf b;
	char *s = deep_message(300);
	const struct imap_msg_part *p;
	uint32_t maxdepth = 0;

	imap_mbuf_init(&b, 0);
	ASSERT_INT_EQ(imap_msg_parse((const uint8_t *)s, strlen(s), NULL, &m), 0);
	ASSERT_TRUE(imap_msg_flags(m) & IMAP_MSG_F_LIMITED);
	for (p = imap_msg_root(m); p != NULL; p = imap_msg_part_next(p))
		maxdepth = p->depth > maxdepth ? p->depth : maxdepth;
	ASSERT_INT_EQ(maxdepth, 64);
	ASSERT_INT_EQ(imap_msg_bodystructure(m, true, &b), 0);
	ASSERT_INT_EQ(imap_msg_cache_build(m, &b), 0);
	imap_msg_free(&m);

	/* a request above the hard cap is lowered to it */
	imap_msg_limits_default(&lim);
	lim.max_depth = 100000;
	ASSERT_INT_EQ(imap_msg_parse((const uint8_t *)s, strlen(s), &lim, &m), 0);
	maxdepth = 0;
	for (p = imap_msg_root(m); p != NULL; p = imap_msg_part_next(p))
		maxdepth = p->depth > maxdepth ? p->depth : maxdepth;
	ASSERT_INT_EQ(maxdepth, 128);
	imap_msg_free(&m);
	free(s);

	/* 5000 parts: the first 999 are listed, the rest left out */
	{
		size_t cap = 5000 * 40 + 200, len = 0;

		s = malloc(cap);
		len += (size_t)snprintf(s, cap, "Content-Type: multipart/mixed; boundary=x\r\n\r\n");
		for (int i = 0; i < 5000; i++)
			len += (size_t)snprintf(s + len, cap - len, "--x\r\n\r\npart %d\r\n", i);
		len += (size_t)snprintf(s + len, cap - len, "--x--\r\nepilogue\r\n");
		ASSERT_INT_EQ(imap_msg_parse((const uint8_t *)s, len, NULL, &m), 0);
		ASSERT_INT_EQ(imap_msg_part_count(m), 1000);
		ASSERT_INT_EQ(imap_msg_root(m)->nchildren, 999);
		ASSERT_TRUE(imap_msg_root(m)->flags & IMAP_MSG_PART_LIMITED);
		/* the multipart still spans the whole body */
		ASSERT_INT_EQ(imap_msg_root(m)->body_off + imap_msg_root(m)->body_len, len);
		imap_msg_free(&m);
		free(s);
	}
	imap_mbuf_release(&b);
}

TEST(part_paths_roundtrip)
{
	for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
		struct tmsg t;

		ASSERT_INT_EQ(tm_open(&t, expected[i].file), 0);
		for (const struct imap_msg_part *p = imap_msg_root(t.m); p != NULL;
		    p = imap_msg_part_next(p)) {
			char buf[256];
			uint32_t path[64];
			size_t depth;
			const struct imap_msg_part *q;

			ASSERT_TRUE(imap_msg_part_path(p, buf, sizeof(buf)) >= 0);
			depth = parse_path(buf, path);
			q = imap_msg_find_part(t.m, path, depth);
			/* a multipart inside a message part has no number of its own */
			if (p->parent != NULL && (p->parent->flags & IMAP_MSG_PART_MESSAGE) &&
			    (p->flags & IMAP_MSG_PART_MULTIPART))
				ASSERT_TRUE(q == p->parent);
			else if (p->parent == NULL)
				ASSERT_TRUE(q == p);
			else
				ASSERT_TRUE(q == p);
		}
		tm_close(&t);
	}
}

static void check_cache(const struct tmsg *t)
{
	struct imap_mbuf blob, env, bs, body;
	struct imap_msg_cache c;
	uint32_t i = 0;

	imap_mbuf_init(&blob, 0);
	imap_mbuf_init(&env, 0);
	imap_mbuf_init(&bs, 0);
	imap_mbuf_init(&body, 0);
	ASSERT_INT_EQ(imap_msg_cache_build(t->m, &blob), 0);
	ASSERT_INT_EQ(imap_msg_cache_parse(blob.d, blob.len, &c), 0);
	imap_msg_envelope(t->m, NULL, &env);
	imap_msg_bodystructure(t->m, true, &bs);
	imap_msg_bodystructure(t->m, false, &body);
	ASSERT_TRUE(c.envelope_len == env.len && memcmp(c.envelope, env.d, env.len) == 0);
	ASSERT_TRUE(c.bodystructure_len == bs.len && memcmp(c.bodystructure, bs.d, bs.len) == 0);
	ASSERT_TRUE(c.body_len == body.len && memcmp(c.body, body.d, body.len) == 0);
	ASSERT_INT_EQ(c.msg_size, t->len);
	ASSERT_INT_EQ(c.nparts, imap_msg_part_count(t->m));
	for (const struct imap_msg_part *p = imap_msg_root(t->m); p != NULL;
	    p = imap_msg_part_next(p), i++) {
		struct imap_msg_cache_part cp;
		char buf[256];
		uint32_t path[64];
		size_t depth;
		uint64_t bsize = 0;

		ASSERT_INT_EQ(imap_msg_cache_part(&c, i, &cp), 0);
		ASSERT_INT_EQ(cp.hdr_off, p->hdr_off);
		ASSERT_INT_EQ(cp.body_len, p->body_len);
		ASSERT_INT_EQ(cp.flags, p->flags);
		imap_msg_part_path(p, buf, sizeof(buf));
		depth = parse_path(buf, path);
		/* the cache resolves section paths like the parsed tree */
		{
			const struct imap_msg_part *q = imap_msg_find_part(t->m, path, depth);
			int ci = imap_msg_cache_find_part(&c, path, depth);
			struct imap_msg_cache_part cq;

			ASSERT_TRUE(q != NULL && ci >= 0);
			imap_msg_cache_part(&c, (uint32_t)ci, &cq);
			ASSERT_INT_EQ(cq.hdr_off, q->hdr_off);
			ASSERT_INT_EQ(cq.body_off, q->body_off);
			/* the summary's size is the leaf decoding; a part with parts
			 * is rewritten as a whole, which FETCH computes from the body */
			if (depth > 0 && (q->children == NULL ||
			    q->cte_kind == IMAP_MSG_CTE_BASE64 || q->cte_kind == IMAP_MSG_CTE_QP) &&
			    imap_msg_binary_size(t->m, path, depth, &bsize) == 0)
				ASSERT_INT_EQ(cq.binary_size, bsize);
		}
	}
	/* every truncation fails, and no flipped bit crashes */
	for (size_t n = 0; n < blob.len; n++)
		ASSERT_INT_EQ(imap_msg_cache_parse(blob.d, n, &c), -EPROTO);
	for (size_t bit = 0; bit < blob.len * 8; bit += 3) {
		blob.d[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (imap_msg_cache_parse(blob.d, blob.len, &c) == 0) {
			uint32_t path[2] = { 1, 1 };

			(void)imap_msg_cache_find_part(&c, path, 2);
			ASSERT_TRUE(c.envelope >= blob.d && c.envelope + c.envelope_len <= blob.d + blob.len);
		}
		blob.d[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	imap_mbuf_release(&blob);
	imap_mbuf_release(&env);
	imap_mbuf_release(&bs);
	imap_mbuf_release(&body);
}

TEST(cache_roundtrip_and_tamper)
{
	for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
		struct tmsg t;

		ASSERT_INT_EQ(tm_open(&t, expected[i].file), 0);
		check_cache(&t);
		tm_close(&t);
	}
	{
		struct imap_msg_cache c;

		ASSERT_INT_EQ(imap_msg_cache_parse(NULL, 0, &c), -EPROTO);
		ASSERT_INT_EQ(imap_msg_cache_parse((const uint8_t *)"SMC\x02", 4, &c), -EPROTO);
	}
}

TEST(strings_and_buffers)
{
	struct imap_mbuf b;

	imap_mbuf_init(&b, 0);
	imap_mbuf_put_nstring(&b, "a\"b\\c", 5);
	ASSERT_STR_EQ((const char *)b.d, "\"a\\\"b\\\\c\"");
	imap_mbuf_reset(&b);
	imap_mbuf_put_nstring(&b, NULL, 0);
	ASSERT_STR_EQ((const char *)b.d, "NIL");
	imap_mbuf_reset(&b);
	imap_mbuf_put_nstring(&b, "caf\xc3\xa9", 5);
	ASSERT_STR_EQ((const char *)b.d, "{5}\r\ncaf\xc3\xa9");
	imap_mbuf_reset(&b);
	imap_mbuf_put_nstring(&b, "a\0b", 3);
	ASSERT_STR_EQ((const char *)b.d, "{5}\r\na\xef\xbf\xbd" "b");
	imap_mbuf_reset(&b);
	imap_mbuf_put_nstring_nolf(&b, "a\r\n b", 5);
	ASSERT_STR_EQ((const char *)b.d, "\"a b\"");
	imap_mbuf_reset(&b);
	imap_mbuf_put_nstring_human(&b, " \t a \r\n\t b  ", 12);
	ASSERT_STR_EQ((const char *)b.d, "\"a b\"");
	imap_mbuf_reset(&b);
	imap_mbuf_put_nstring_human(&b, "   ", 3);
	ASSERT_STR_EQ((const char *)b.d, "\"\"");
	imap_mbuf_reset(&b);
	imap_mbuf_put_literal(&b, "x\0y", 3);
	ASSERT_TRUE(b.len == 8 && memcmp(b.d, "{3}\r\nx\x80y", 8) == 0);
	imap_mbuf_release(&b);

	/* the cap */
	imap_mbuf_init(&b, 4);
	imap_mbuf_puts(&b, "abcd");
	ASSERT_INT_EQ(b.err, 0);
	imap_mbuf_putc(&b, 'e');
	ASSERT_INT_EQ(b.err, -E2BIG);
	ASSERT_INT_EQ(b.len, 4);
	imap_mbuf_release(&b);
	{
		struct tmsg t;

		ASSERT_INT_EQ(tm_open(&t, "huge-folded.eml"), 0);
		imap_mbuf_init(&b, 100);
		ASSERT_INT_EQ(imap_msg_envelope(t.m, NULL, &b), -E2BIG);
		imap_mbuf_release(&b);
		tm_close(&t);
	}

	/* CRLF normalisation */
	imap_mbuf_init(&b, 0);
	ASSERT_INT_EQ(imap_msg_crlf_normalize((const uint8_t *)"a\nb\r\nc\rd\n", 10, &b), 0);
	ASSERT_TRUE(b.len == 12 && memcmp(b.d, "a\r\nb\r\nc\rd\r\n", 12) == 0);
	imap_mbuf_release(&b);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Inputs that would make a naive parser quadratic: each must finish in well under a
 * second even under the sanitizers (256 KiB each; quadratic work would take minutes). */
TEST(pathological_inputs_stay_linear)
{
	static const char *const units[] = {
		"=?a?q?x",		/* encoded-word starts without an end */
		"=?aaaaaaaaaa",		/* charset without "?" */
		";(;",			/* parameter errors inside an unterminated comment */
		"a (",			/* address list: unterminated comments */
		"\"a\" ",		/* phrases of quoted words */
		"--b\r\n",		/* boundary-like lines */
		"x\r\n ",		/* one huge folded field */
	};
	const size_t target = 1u << 18;

	for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
		size_t ul = strlen(units[u]), n = 0;
		char *msg = malloc(target + 256);
		struct imap_msg *m;
		struct imap_mbuf b;
		double t0;

		n += (size_t)snprintf(msg, 256, "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\nTo: ");
		while (n + ul < target) {
			memcpy(msg + n, units[u], ul);
			n += ul;
		}
		memcpy(msg + n, "\r\nSubject: ", 11);
		n += 11;
		t0 = now();
		ASSERT_INT_EQ(imap_msg_parse((const uint8_t *)msg, n, NULL, &m), 0);
		imap_mbuf_init(&b, 0);
		ASSERT_INT_EQ(imap_msg_envelope(m, NULL, &b), 0);
		imap_mbuf_reset(&b);
		ASSERT_INT_EQ(imap_msg_header_get(m, NULL, "to", 0, IMAP_MSG_HDR_DECODE, &b), 0);
		imap_mbuf_reset(&b);
		ASSERT_INT_EQ(imap_msg_bodystructure(m, true, &b), 0);
		(void)imap_msg_search_text(m, "needle", IMAP_MSG_SEARCH_TEXT);
		{
			/* the same bytes as Content-Type parameters */
			char *ct = malloc(n + 64);
			struct imap_msg *m2;
			size_t k = (size_t)snprintf(ct, 64, "Content-Type: text/plain; a=b");

			memcpy(ct + k, msg + 60, n - 60);
			ASSERT_INT_EQ(imap_msg_parse((const uint8_t *)ct, k + n - 60, NULL, &m2), 0);
			imap_msg_free(&m2);
			free(ct);
		}
		if (now() - t0 > 2.0)
			fprintf(stderr, "unit %zu took %.2fs\n", u, now() - t0);
		ASSERT_TRUE(now() - t0 < 2.0);
		imap_mbuf_release(&b);
		imap_msg_free(&m);
		free(msg);
	}
}

/* Python's email test corpus: every file parses, every output is produced, ranges
 * are inside the message, the cache round-trips. */
TEST(python_email_corpus)
{
	static const char *const patterns[] = {
		"/usr/lib/python3*/test/test_email/data/msg_*.txt",
		"/usr/local/lib/python3*/test/test_email/data/msg_*.txt",
		"/root/.pyenv/versions/3*/lib/python3*/test/test_email/data/msg_*.txt",
	};
	glob_t g;
	size_t files = 0;
	const char *env = getenv("PY_EMAIL_DATA");
	char pat[1024];

	memset(&g, 0, sizeof(g));
	if (env != NULL) {
		snprintf(pat, sizeof(pat), "%s/msg_*.txt", env);
		glob(pat, 0, NULL, &g);
	}
	for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]) && g.gl_pathc == 0; i++)
		glob(patterns[i], 0, NULL, &g);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		struct tmsg t;
		struct imap_mbuf b;

		memset(&t, 0, sizeof(t));
		if ((t.data = read_path(g.gl_pathv[i], &t.len)) == NULL)
			continue;
		ASSERT_INT_EQ(imap_msg_parse(t.data, t.len, NULL, &t.m), 0);
		imap_mbuf_init(&b, 0);
		ASSERT_INT_EQ(imap_msg_envelope(t.m, NULL, &b), 0);
		ASSERT_TRUE(b.d[0] == '(' && b.d[b.len - 1] == ')');
		imap_mbuf_reset(&b);
		ASSERT_INT_EQ(imap_msg_bodystructure(t.m, true, &b), 0);
		ASSERT_TRUE(b.d[0] == '(' && b.d[b.len - 1] == ')');
		for (const struct imap_msg_part *p = imap_msg_root(t.m); p != NULL;
		    p = imap_msg_part_next(p)) {
			ASSERT_TRUE(p->hdr_off + p->hdr_len == p->body_off);
			ASSERT_TRUE(p->body_off + p->body_len <= t.len);
			if (p->parent != NULL) {
				ASSERT_TRUE(p->hdr_off >= p->parent->body_off);
				ASSERT_TRUE(p->body_off + p->body_len <=
				    p->parent->body_off + p->parent->body_len);
			}
			imap_mbuf_reset(&b);
			(void)imap_msg_decode_binary(t.m, p, &b);
		}
		(void)imap_msg_search_text(t.m, "the", IMAP_MSG_SEARCH_TEXT);
		imap_mbuf_release(&b);
		check_cache(&t);
		tm_close(&t);
		files++;
	}
	globfree(&g);
	if (files == 0)
		fprintf(stderr, "python_email_corpus: no corpus found (set PY_EMAIL_DATA), skipped\n");
	else
		fprintf(stderr, "python_email_corpus: %zu files\n", files);
}

/* Every file of the corpus cut at every length (every header/boundary state) and
 * with each byte dropped: no crash, consistent ranges. */
TEST(truncations)
{
	static const char *const files[] = { "rfc822-attach.eml", "malformed-boundary.eml",
		"quoted-local.eml", "digest.eml", "rfc2231-filename.eml" };

	for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
		size_t len;
		uint8_t *d = read_msg(files[f], &len);
		struct imap_mbuf b;

		ASSERT_TRUE(d != NULL);
		imap_mbuf_init(&b, 0);
		for (size_t n = 0; n <= len; n++) {
			struct imap_msg *m;
			uint8_t *copy = malloc(n + 1);

			memcpy(copy, d, n);	/* exact-size copy: ASan sees any overread */
			ASSERT_INT_EQ(imap_msg_parse(copy, n, NULL, &m), 0);
			imap_mbuf_reset(&b);
			ASSERT_INT_EQ(imap_msg_bodystructure(m, true, &b), 0);
			ASSERT_INT_EQ(imap_msg_envelope(m, NULL, &b), 0);
			for (const struct imap_msg_part *p = imap_msg_root(m); p != NULL;
			    p = imap_msg_part_next(p))
				ASSERT_TRUE(p->body_off + p->body_len <= n);
			imap_msg_free(&m);
			free(copy);
		}
		imap_mbuf_release(&b);
		free(d);
	}
}
