/* Fuzz target: a whole authenticated IMAP session. The server's real command loop
 * (imap-session.h: imap_client_new / imap_client_handle, the engine behind the
 * session process of sealmail-imapd) runs over a socketpair, logged in to a
 * throwaway vault, and the fuzz input is what the client sends.
 *
 * Fixture, built once per process: a vault in a temp dir (tmpfs when there is one)
 * with user "u", a soft token, OWASP-minimum Argon2id (the lowest the vault
 * accepts), and, appended through the engine itself, 5 messages in INBOX (plain,
 * multipart/alternative with RFC 2047 and quoted-printable, multipart/mixed with a
 * base64 attachment and a nested message/rfc822, an address-heavy one, one with
 * keywords) and 2 in "Lists/dev", plus "Archive"; a 256 KiB session cache. The login (two Argon2id hashes) is
 * done once; its token login key is kept, and every input starts from a fresh copy
 * of the fixture's LMDB file opened with vault_unlock, so each input sees the same
 * store whatever the previous ones did (APPEND, EXPUNGE, DELETE, RENAME...).
 *
 * Input: byte 0 = flags, byte 1 = how the client bytes are split, the rest = the
 * client byte stream (already authenticated: PREAUTH, as after LOGIN).
 *   flags bit 0: a second connection of the same user has INBOX selected and sits
 *                in IDLE, so changes are pushed to another view (RFC 2177);
 *   flags bit 1: the clock advances 61 s per chunk (IDLE keepalives, and after
 *                30 minutes the autologout of RFC 9051 5.4).
 *   split byte top 2 bits: 0 = one line at a time (each chunk ends after LF, like a
 *                client waiting for "+" before a synchronizing literal), 1/2/3 =
 *                pseudo-random chunks of 1..16 / 1..256 / 1..4096 bytes seeded by
 *                the low 6 bits.
 * After each chunk the engine runs until it has nothing left to do; its output is
 * read and discarded, except that a tagged "OK DEFLATE active" (found by a response
 * scanner that skips literals) switches the client side to raw deflate, as a real
 * client does after COMPRESS (RFC 4978 section 3), so the compressed paths run on
 * meaningful bytes. At the end the client half-closes; the engine must end the
 * connection, free everything (LeakSanitizer checks), and leave no temp file.
 * FUZZ_SESSION_TRACE=1 in the environment copies the server's output to stderr. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include "crypto.h"
#include "fuzz.h"
#include "imap-session.h"
#include "log.h"
#include "vault.h"

#define PASS "fuzz session passphrase"
#define STEP_LIMIT 200000	/* engine steps per chunk; a livelock shows as a timeout */

static struct {
	bool ready;
	char dir[256];
	char mdb[320];
	struct vault_config cfg;
	struct vault_login login;
	uint8_t *snap;		/* the fixture's data.mdb */
	size_t snaplen;
} F;

/* ---- the client side ---------------------------------------------------------------- */

struct peer {
	struct imap_client *c;
	int fd;			/* our end of the socketpair */
	bool ended;		/* imap_client_handle returned 1 and c was freed */
	/* response scanner: literals are skipped, lines are checked for the COMPRESS OK */
	uint64_t lit_left;
	char line[128];
	size_t linelen;
	bool line_long;
	bool deflate_seen;	/* the server said "OK DEFLATE active" */
	bool deflating;		/* our stream is compressed from now on */
	z_stream z;
};

static time_t clock_now;
static bool trace;	/* FUZZ_SESSION_TRACE set: the server's output goes to stderr */

/* A complete response line (without CRLF; at most sizeof(line) bytes kept). */
static void scan_line(struct peer *p, const char *l, size_t n)
{
	static const char ok[] = " OK DEFLATE active";
	size_t k = sizeof(ok) - 1;
	const char *sp;

	if (n <= k || l[0] == '*' || l[0] == '+' || memcmp(l + n - k, ok, k) != 0)
		return;
	/* TAG is everything before the first space; the match must start there. */
	sp = memchr(l, ' ', n);
	if (sp == l + n - k)
		p->deflate_seen = true;
}

static void scan_output(struct peer *p, const uint8_t *b, size_t n)
{
	size_t i = 0;

	if (p->deflate_seen)
		return;		/* compressed from here on: not read any more */
	while (i < n) {
		if (p->lit_left > 0) {
			size_t take = n - i < p->lit_left ? n - i : (size_t)p->lit_left;

			i += take;
			p->lit_left -= take;
			continue;
		}
		if (b[i] == '\n') {
			size_t len = p->linelen;
			uint64_t lit = 0, mul = 1;
			size_t j;

			i++;
			if (len > 0 && p->line[len - 1] == '\r')
				len--;
			/* "{N}" at the end: N bytes of literal follow, then the line goes on */
			if (len > 2 && p->line[len - 1] == '}') {
				for (j = len - 2; j > 0 && p->line[j] >= '0' && p->line[j] <= '9'; j--) {
					lit += (uint64_t)(p->line[j] - '0') * mul;
					mul *= 10;
				}
				if (p->line[j] == '{' && j < len - 2) {
					p->lit_left = lit;
					p->line_long = true;	/* the rest is no tagged OK line */
					continue;
				}
			}
			if (!p->line_long)
				scan_line(p, p->line, len);
			p->linelen = 0;
			p->line_long = false;
			if (p->deflate_seen)
				return;
			continue;
		}
		if (p->linelen < sizeof(p->line))
			p->line[p->linelen++] = (char)b[i];
		else {
			/* keep the tail, where "{N}" would be */
			memmove(p->line, p->line + 1, sizeof(p->line) - 1);
			p->line[sizeof(p->line) - 1] = (char)b[i];
			p->line_long = true;
		}
		i++;
	}
}

static void drain(struct peer *p)
{
	static uint8_t buf[65536];
	ssize_t n;

	while ((n = read(p->fd, buf, sizeof(buf))) > 0) {
		if (trace)
			fwrite(buf, 1, (size_t)n, stderr);
		scan_output(p, buf, (size_t)n);
	}
}

/* Runs the engine until it has nothing to do. 1: the connection ended. */
static int run(struct peer *p)
{
	if (p->ended)
		return 1;
	for (int i = 0; i < STEP_LIMIT; i++) {
		struct pollfd pf = { imap_client_fd(p->c), imap_client_events(p->c), 0 };
		int t;

		drain(p);
		poll(&pf, 1, 0);
		t = imap_client_timeout(p->c, clock_now);
		if (pf.revents == 0 && t != 0)
			break;
		if (imap_client_handle(p->c, pf.revents, clock_now) != 0) {
			drain(p);
			imap_client_free(&p->c);
			p->ended = true;
			return 1;
		}
	}
	drain(p);
	return 0;
}

static int send_raw(struct peer *p, const uint8_t *b, size_t n)
{
	while (n > 0) {
		ssize_t w = write(p->fd, b, n);

		if (w > 0) {
			b += w;
			n -= (size_t)w;
		} else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			return 1;	/* EPIPE: the server closed */
		}
		if (run(p) != 0)
			return 1;
	}
	return 0;
}

/* One chunk of client bytes, compressed once the server agreed to COMPRESS. */
static int send_chunk(struct peer *p, const uint8_t *b, size_t n)
{
	if (p->ended)
		return 1;
	if (p->deflate_seen && !p->deflating) {
		memset(&p->z, 0, sizeof(p->z));
		if (deflateInit2(&p->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8,
		    Z_DEFAULT_STRATEGY) != Z_OK)
			abort();
		p->deflating = true;
	}
	if (!p->deflating)
		return send_raw(p, b, n);
	p->z.next_in = (Bytef *)(uintptr_t)b;
	p->z.avail_in = (uInt)n;
	do {
		uint8_t out[8192];
		int zr;

		p->z.next_out = out;
		p->z.avail_out = sizeof(out);
		zr = deflate(&p->z, Z_SYNC_FLUSH);
		if (zr != Z_OK && zr != Z_BUF_ERROR)
			abort();
		if (send_raw(p, out, sizeof(out) - p->z.avail_out) != 0)
			return 1;
	} while (p->z.avail_out == 0);
	return 0;
}

static void peer_open(struct peer *p, struct imap_user *u)
{
	struct imap_client_params prm = { .peer = "fuzz", .tls_info = "" };
	int sv[2];

	memset(p, 0, sizeof(*p));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	prm.fd = sv[0];
	if (imap_client_new(u, &prm, &p->c) != 0)
		abort();
	p->fd = sv[1];
}

/* Half-closes our side, lets the engine finish what is buffered, frees it all. */
static void peer_close(struct peer *p)
{
	shutdown(p->fd, SHUT_WR);
	for (int i = 0; i < 100 && !p->ended; i++)
		run(p);
	if (!p->ended)
		imap_client_free(&p->c);	/* e.g. still producing a huge FETCH */
	close(p->fd);
	if (p->deflating)
		deflateEnd(&p->z);
}

/* ---- the fixture ---------------------------------------------------------------------- */

static void rmrf(const char *dir)
{
	char cmd[400];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz_imap_session: cleanup of %s failed\n", dir);
}

static void cleanup(void)
{
	if (F.dir[0] != '\0')
		rmrf(F.dir);
	vault_login_clear(&F.login);
	free(F.snap);
}

static const char *const inbox_msgs[] = {
	"From: Alice <alice@example.org>\r\nTo: Bob <bob@example.net>\r\n"
	"Subject: plain\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\n"
	"Message-ID: <m1@example.org>\r\n\r\nHello Bob,\r\nsee you.\r\n",

	"From: =?UTF-8?Q?J=C3=BCrgen?= <j@example.de>\r\nTo: bob@example.net\r\n"
	"Subject: =?UTF-8?B?w5xiZXJzaWNodA==?= and more\r\n"
	"Date: Tue, 3 Mar 2026 11:30:00 -0500\r\nMessage-ID: <m2@example.de>\r\n"
	"In-Reply-To: <m1@example.org>\r\nMIME-Version: 1.0\r\n"
	"Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n"
	"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n"
	"Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe, soft=\r\nbreak\r\n"
	"--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Gr\xc3\xbc\xc3\x9f" "e</p>\r\n"
	"--alt--\r\n",

	"From: carol@example.com\r\nTo: bob@example.net\r\nSubject: report\r\n"
	"Date: Wed, 4 Mar 2026 09:15:00 +0000\r\nMIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed; boundary=\"mix\"\r\n\r\npreamble\r\n"
	"--mix\r\nContent-Type: text/plain\r\n\r\nAttached.\r\n"
	"--mix\r\nContent-Type: application/pdf; name=\"r.pdf\"\r\n"
	"Content-Disposition: attachment; filename=\"r.pdf\"\r\n"
	"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcTl8uXrCjEgMCBvYmoKPDw+PgplbmRvYmoK\r\n"
	"--mix\r\nContent-Type: message/rfc822\r\n\r\n"
	"From: dave@example.com\r\nSubject: inner\r\nMIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed; boundary=\"in\"\r\n\r\n"
	"--in\r\nContent-Type: text/plain\r\n\r\ninner body\r\n--in--\r\n"
	"--mix--\r\nepilogue\r\n",

	"From: \"Team\" <team@example.com>, eve@example.com\r\n"
	"Sender: list@example.com\r\nReply-To: list@example.com\r\n"
	"To: undisclosed-recipients:;, Bob <bob@example.net>\r\n"
	"Cc: group: a@example.com, b@example.com;\r\nBcc: hidden@example.com\r\n"
	"Subject: Re: [dev] addresses\r\nDate: 5 Mar 2026 23:59:59 +1400\r\n"
	"Message-ID: <m4@example.com>\r\nReferences: <m1@example.org> <m2@example.de>\r\n"
	"\r\nBody with a long line " "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n",

	"From: frank@example.org\r\nSubject: flagged\r\nDate: Thu, 5 Mar 2026 08:00:00 +0000\r\n"
	"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n"
	"\r\nSch\xf6n.\r\n",
};

static const char *const sub_msgs[] = {
	"From: list@example.com\r\nTo: dev@example.com\r\nSubject: [dev] one\r\n"
	"List-Id: <dev.example.com>\r\n\r\nfirst\r\n",
	"From: list@example.com\r\nTo: dev@example.com\r\nSubject: [dev] two\r\n"
	"List-Id: <dev.example.com>\r\n\r\nsecond\r\n",
};

static const char *const inbox_flags[] = {
	"(\\Seen)", "(\\Seen \\Answered)", "()", "(\\Flagged $Work)", "(\\Seen \\Deleted)",
};

static void say(struct peer *p, const char *s)
{
	if (send_raw(p, (const uint8_t *)s, strlen(s)) != 0)
		abort();
}

static void populate(struct imap_user *u)
{
	struct peer p;
	char line[256];
	int n = 0;

	peer_open(&p, u);
	say(&p, "s1 CREATE Lists/dev\r\ns2 CREATE Archive\r\ns3 SUBSCRIBE Lists/dev\r\n");
	for (size_t i = 0; i < sizeof(inbox_msgs) / sizeof(inbox_msgs[0]); i++) {
		snprintf(line, sizeof(line), "a%d APPEND INBOX %s {%zu+}\r\n", n++,
		    inbox_flags[i], strlen(inbox_msgs[i]));
		say(&p, line);
		say(&p, inbox_msgs[i]);
		say(&p, "\r\n");
	}
	for (size_t i = 0; i < sizeof(sub_msgs) / sizeof(sub_msgs[0]); i++) {
		snprintf(line, sizeof(line), "a%d APPEND Lists/dev {%zu+}\r\n", n++,
		    strlen(sub_msgs[i]));
		say(&p, line);
		say(&p, sub_msgs[i]);
		say(&p, "\r\n");
	}
	/* the cached summaries (ENVELOPE, BODYSTRUCTURE) exist as after a first sync */
	say(&p, "s4 SELECT INBOX\r\ns5 FETCH 1:* (ENVELOPE BODYSTRUCTURE)\r\n");
	peer_close(&p);
}

static int read_file(const char *path, uint8_t **out, size_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0 || fstat(fd, &st) != 0 || (*out = malloc((size_t)st.st_size + 1)) == NULL)
		return -1;
	n = read(fd, *out, (size_t)st.st_size);
	close(fd);
	if (n != st.st_size)
		return -1;
	*len = (size_t)n;
	return 0;
}

static void setup(void)
{
	struct vault_token_secret tok;
	struct vault_keys *k = NULL;
	struct imap_user *u = NULL;
	struct vault *v = NULL;
	char otp[CRYPTO_OTP_CHARS + 1], pw[256], rec[128];
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	int n;

	log_set_level(LOG_LVL_ERR);	/* the engine's warnings about bad input: noise */
	if (crypto_init() < 0)
		abort();
	snprintf(F.dir, sizeof(F.dir), "%s/fuzz-imap-session-XXXXXX", base);
	if (mkdtemp(F.dir) == NULL)
		abort();
	atexit(cleanup);
	vault_config_defaults(&F.cfg);
	snprintf(F.cfg.data_dir, sizeof(F.cfg.data_dir), "%s/vault", F.dir);
	snprintf(F.mdb, sizeof(F.mdb), "%s/vault/data.mdb", F.dir);
	F.cfg.argon2_memory = CRYPTO_PWHASH_MIN_MEM_KIB;
	F.cfg.argon2_passes = CRYPTO_PWHASH_MIN_PASSES;
	F.cfg.map_size = 16 << 20;
	F.cfg.max_message_size = 1 << 20;
	F.cfg.durable = false;
	/* 16 MiB of locked memory set up and wiped per input would be most of the cost
	 * of an input; a small cache also makes its ring wrap within one session. */
	F.cfg.session_cache_size = 256 << 10;
	memset(&tok, 0, sizeof(tok));
	if (secret_new_random(CRYPTO_OTP_AES_BYTES, &tok.aes_key) < 0 ||
	    secret_new_random(CRYPTO_OTP_UID_BYTES, &tok.uid) < 0)
		abort();
	crypto_random(tok.public_id, sizeof(tok.public_id));
	snprintf(tok.label, sizeof(tok.label), "t");
	if (vault_open(&F.cfg, &v) < 0 ||
	    vault_user_create(v, "u", (const uint8_t *)PASS, strlen(PASS), &tok,
	    time(NULL) - 10, rec, sizeof(rec)) < 0 ||
	    crypto_otp_generate(tok.aes_key, tok.public_id, tok.uid->p, 1, 0, 1, otp) < 0)
		abort();
	n = snprintf(pw, sizeof(pw), "%s%s", PASS, otp);
	if (vault_login_derive(v, "u", (const uint8_t *)pw, (size_t)n, &F.login) < 0 ||
	    vault_unlock(v, &F.login, &k) < 0 || imap_user_new(v, k, &F.cfg, &u) < 0)
		abort();
	crypto_wipe(pw, sizeof(pw));
	secret_free(&tok.aes_key);
	secret_free(&tok.uid);
	clock_now = time(NULL);
	populate(u);
	imap_user_free(&u);	/* closes the vault */
	if (read_file(F.mdb, &F.snap, &F.snaplen) != 0)
		abort();
	F.ready = true;
}

/* A fresh copy of the fixture's store, unlocked with the kept login. */
static struct imap_user *open_user(void)
{
	struct vault_keys *k = NULL;
	struct imap_user *u = NULL;
	struct vault *v = NULL;
	int fd = open(F.mdb, O_WRONLY | O_TRUNC | O_CLOEXEC);

	if (fd < 0 || write(fd, F.snap, F.snaplen) != (ssize_t)F.snaplen)
		abort();
	close(fd);
	if (vault_open(&F.cfg, &v) < 0 || vault_unlock(v, &F.login, &k) < 0 ||
	    imap_user_new(v, k, &F.cfg, &u) < 0)
		abort();
	return u;
}

/* Nothing may be left in the vault's tmp/ once every connection is gone. */
static void check_tmp_empty(void)
{
	char path[400];
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "%s/vault/tmp", F.dir);
	if ((d = opendir(path)) == NULL)
		return;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			fprintf(stderr, "fuzz_imap_session: %s left in %s\n", e->d_name, path);
			abort();
		}
	closedir(d);
}

/* ---- one input -------------------------------------------------------------------------- */

static uint32_t xorshift(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t maxchunk[4] = { 0, 16, 256, 4096 };
	struct peer p, obs;
	struct imap_user *u;
	uint8_t flags, split;
	uint32_t rng;
	size_t off = 2;

	if (size < 2)
		return 0;
	if (!F.ready) {
		setup();
		trace = getenv("FUZZ_SESSION_TRACE") != NULL;
	}
	flags = data[0];
	split = data[1];
	rng = 0x9e3779b9u ^ (split & 63u);
	clock_now = time(NULL);
	u = open_user();
	if (flags & 1) {
		peer_open(&obs, u);
		say(&obs, "o1 SELECT INBOX\r\no2 IDLE\r\n");
	}
	peer_open(&p, u);
	while (off < size) {
		size_t n;

		if ((split >> 6) == 0) {
			const uint8_t *lf = memchr(data + off, '\n', size - off);

			n = lf != NULL ? (size_t)(lf - (data + off)) + 1 : size - off;
		} else {
			n = 1 + xorshift(&rng) % maxchunk[split >> 6];
			if (n > size - off)
				n = size - off;
		}
		if (send_chunk(&p, data + off, n) != 0)
			break;
		off += n;
		if (flags & 2)
			clock_now += 61;
		imap_user_tick(u, clock_now);
		if (flags & 1)
			run(&obs);
	}
	peer_close(&p);
	if (flags & 1) {
		if (!obs.ended)
			send_raw(&obs, (const uint8_t *)"DONE\r\no3 LOGOUT\r\n", 17);
		peer_close(&obs);
	}
	imap_user_free(&u);
	check_tmp_empty();
	return 0;
}
