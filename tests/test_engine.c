/* Unit tests of the command engine through imap-session.h: a real vault in a temp dir,
 * a real user, clients on socketpairs driven by hand (no event loop), so the tests
 * control exactly when bytes arrive and when output is read. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "harness.h"
#include "crypto.h"
#include "imap-session.h"
#include "imap-engine-private.h"
#include "vault.h"

#define PASS "engine test passphrase"

static struct vault_config cfg;
static struct imap_user *U;
static struct vault *V;		/* the user's vault handle: "another process" writes */
static char *tmpdir;

static void rmrf(const char *dir)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", dir);
}

static void cleanup(void)
{
	imap_user_free(&U);
	rmrf(tmpdir);
	free(tmpdir);
}

/* One vault + user for every test (Argon2id twice per login: do it once). */
static struct imap_user *user(void)
{
	struct vault_token_secret tok;
	struct vault_login l;
	struct vault_keys *k = NULL;
	struct vault *v = NULL;
	char tmpl[] = "/tmp/test-engine-XXXXXX", otp[CRYPTO_OTP_CHARS + 1], pw[256],
	    rec[128];
	int n;

	if (U != NULL)
		return U;
	if (crypto_init() < 0 || mkdtemp(tmpl) == NULL)
		exit(2);
	tmpdir = strdup(tmpl);
	vault_config_defaults(&cfg);
	snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", tmpdir);
	cfg.argon2_memory = CRYPTO_PWHASH_MIN_MEM_KIB;
	cfg.argon2_passes = CRYPTO_PWHASH_MIN_PASSES;
	cfg.map_size = 8 << 20;
	cfg.max_message_size = 1 << 20;
	cfg.durable = false;
	memset(&tok, 0, sizeof(tok));
	if (secret_new_random(CRYPTO_OTP_AES_BYTES, &tok.aes_key) < 0 ||
	    secret_new_random(CRYPTO_OTP_UID_BYTES, &tok.uid) < 0)
		exit(2);
	crypto_random(tok.public_id, sizeof(tok.public_id));
	snprintf(tok.label, sizeof(tok.label), "t");
	if (vault_open(&cfg, &v) < 0 ||
	    vault_user_create(v, "u", (const uint8_t *)PASS, strlen(PASS), &tok,
	    time(NULL) - 10, rec, sizeof(rec)) < 0 ||
	    crypto_otp_generate(tok.aes_key, tok.public_id, tok.uid->p, 1, 0, 1, otp) < 0) {
		fprintf(stderr, "setup failed\n");
		exit(2);
	}
	n = snprintf(pw, sizeof(pw), "%s%s", PASS, otp);
	if (vault_login_derive(v, "u", (const uint8_t *)pw, (size_t)n, &l) < 0 ||
	    vault_unlock(v, &l, &k) < 0 || imap_user_new(v, k, &cfg, &U) < 0) {
		fprintf(stderr, "login failed\n");
		exit(2);
	}
	V = v;
	vault_login_clear(&l);
	secret_free(&tok.aes_key);
	secret_free(&tok.uid);
	atexit(cleanup);
	return U;
}

struct peer {
	struct imap_client *c;
	int fd;			/* our end */
	char buf[1 << 20];
	size_t len;
};

static void peer_open(struct peer *p, const char *login_tag, const char *pending)
{
	int sv[2];
	struct imap_client_params prm = { .login_tag = login_tag, .peer = "test" };

	memset(p, 0, sizeof(*p));
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		exit(2);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	prm.fd = sv[0];
	prm.pending = (const uint8_t *)pending;
	prm.npending = pending ? strlen(pending) : 0;
	if (imap_client_new(user(), &prm, &p->c) < 0)
		exit(2);
	p->fd = sv[1];
}

static void peer_close(struct peer *p)
{
	imap_client_free(&p->c);
	close(p->fd);
}

/* One engine step: what poll would report now. */
static int step(struct peer *p)
{
	struct pollfd pf = { imap_client_fd(p->c), imap_client_events(p->c), 0 };

	poll(&pf, 1, 0);
	return imap_client_handle(p->c, pf.revents, time(NULL));
}

static void drain(struct peer *p)
{
	ssize_t n;

	while (p->len < sizeof(p->buf) - 1 &&
	    (n = read(p->fd, p->buf + p->len, sizeof(p->buf) - 1 - p->len)) > 0)
		p->len += (size_t)n;
	p->buf[p->len] = '\0';
}

/* Runs the engine until "TAG " starts a line in the output; returns the output so far. */
static const char *until_tag(struct peer *p, const char *tag)
{
	char want[64];

	snprintf(want, sizeof(want), "\n%s ", tag);
	for (int i = 0; i < 10000; i++) {
		const char *t;

		step(p);
		drain(p);
		if ((t = strstr(p->buf, want)) != NULL && strchr(t + 1, '\n') != NULL)
			return p->buf;
	}
	return p->buf;
}

static void say(struct peer *p, const char *s)
{
	if (write(p->fd, s, strlen(s)) != (ssize_t)strlen(s))
		exit(2);
}

TEST(greetings)
{
	struct peer p;
	char caps[1024];

	peer_open(&p, NULL, NULL);
	drain(&p);
	ASSERT_TRUE(strncmp(p.buf, "* PREAUTH [CAPABILITY IMAP4rev1 ", 32) == 0);
	peer_close(&p);
	/* after a login: the tagged OK, then pipelined bytes are run */
	peer_open(&p, "a1", "a2 NOOP\r\n");
	/* No fd event will announce bytes that came with the login: the engine itself
	 * must ask to be run at once (an event loop polls with this timeout). */
	ASSERT_INT_EQ(imap_client_timeout(p.c, time(NULL)), 0);
	until_tag(&p, "a2");
	ASSERT_TRUE(strncmp(p.buf, "a1 OK [CAPABILITY IMAP4rev1 ", 28) == 0);
	ASSERT_TRUE(strstr(p.buf, "\r\na2 OK NOOP completed\r\n") != NULL);
	peer_close(&p);
	ASSERT_INT_EQ(imap_capability_string(false, false, true, true, caps, sizeof(caps)), 0);
	ASSERT_TRUE(strstr(caps, "STARTTLS") != NULL && strstr(caps, "AUTH=PLAIN") != NULL);
	ASSERT_TRUE(strstr(caps, "LOGINDISABLED") == NULL);
	ASSERT_INT_EQ(imap_capability_string(false, true, true, false, caps, sizeof(caps)), 0);
	ASSERT_TRUE(strstr(caps, "STARTTLS") == NULL && strstr(caps, "LOGINDISABLED") != NULL);
	/* RFC 9051 6.2.3: no plaintext mechanism beside LOGINDISABLED */
	ASSERT_TRUE(strstr(caps, "AUTH=") == NULL);
	ASSERT_INT_EQ(imap_capability_string(false, false, true, false, caps, sizeof(caps)), 0);
	ASSERT_TRUE(strstr(caps, "STARTTLS") != NULL && strstr(caps, "AUTH=") == NULL);
	ASSERT_INT_EQ(imap_capability_string(true, true, false, true, caps, 8), -E2BIG);
}

/* The same command fed one byte per engine step gives the same answer. */
TEST(byte_at_a_time)
{
	const char *cmd = "b1 LIST \"\" \"INB*\"\r\nb2 STATUS INBOX (MESSAGES UIDNEXT)\r\n";
	struct peer p;

	peer_open(&p, NULL, NULL);
	for (size_t i = 0; cmd[i]; i++) {
		char one[2] = { cmd[i], 0 };

		say(&p, one);
		step(&p);
	}
	until_tag(&p, "b2");
	ASSERT_TRUE(strstr(p.buf, "* LIST (\\HasNoChildren) \"/\" \"INBOX\"\r\nb1 OK") != NULL);
	ASSERT_TRUE(strstr(p.buf, "* STATUS \"INBOX\" (MESSAGES 0 UIDNEXT 1)\r\nb2 OK") != NULL);
	peer_close(&p);
}

TEST(pipelining_and_literals)
{
	struct peer p;
	const char *o;

	peer_open(&p, NULL, NULL);
	say(&p, "c1 CREATE pipe\r\nc2 APPEND pipe {11+}\r\nSubject: x\n\r\nc3 NOOP\r\n"
	    "c4 APPEND pipe {10}\r\n");
	o = until_tag(&p, "c3");
	ASSERT_TRUE(strstr(o, "c1 OK") != NULL);
	ASSERT_TRUE(strstr(o, "c2 OK [APPENDUID ") != NULL);
	/* the synchronizing literal gets "+" and waits for its bytes */
	for (int i = 0; i < 50; i++) {
		step(&p);
		drain(&p);
	}
	ASSERT_TRUE(strstr(p.buf, "\r\n+ ") != NULL);
	ASSERT_TRUE(strstr(p.buf, "c4 ") == NULL);
	say(&p, "Subject: y\r\n");
	o = until_tag(&p, "c4");
	ASSERT_TRUE(strstr(o, "c4 OK [APPENDUID ") != NULL);
	say(&p, "c5 SELECT pipe\r\nc6 FETCH 1:2 (RFC822.SIZE BODY.PEEK[])\r\n");
	o = until_tag(&p, "c6");
	/* the bare LF was stored as CRLF: sizes and bodies agree */
	ASSERT_TRUE(strstr(o, "* 1 FETCH (RFC822.SIZE 12 BODY[] {12}\r\nSubject: x\r\n)") != NULL);
	ASSERT_TRUE(strstr(o, "* 2 FETCH (RFC822.SIZE 10 BODY[] {10}\r\nSubject: y)") != NULL);
	say(&p, "c7 LOGOUT\r\n");
	for (int i = 0; i < 100 && step(&p) == 0; i++)
		;
	drain(&p);
	ASSERT_TRUE(strstr(p.buf, "* BYE") != NULL && strstr(p.buf, "c7 OK") != NULL);
	peer_close(&p);
}

/* While the client does not read, the engine stops producing output (bounded
 * queue) and stops asking for input; it resumes as the client reads. */
TEST(output_backpressure)
{
	static char msg[200 * 1024];
	struct peer p;
	size_t total = 0, got = 0;
	bool saw_no_pollin = false;
	char line[128];

	peer_open(&p, NULL, NULL);
	say(&p, "d1 CREATE big\r\n");
	until_tag(&p, "d1");
	memset(msg, 'x', sizeof(msg));
	memcpy(msg, "Subject: big\r\n\r\n", 16);
	for (int i = 0; i < 12; i++) {
		char tag[16];

		snprintf(tag, sizeof(tag), "a%d", i);
		snprintf(line, sizeof(line), "%s APPEND big {%zu+}\r\n", tag, sizeof(msg));
		say(&p, line);
		for (size_t off = 0; off < sizeof(msg); ) {
			ssize_t n = write(p.fd, msg + off, sizeof(msg) - off);

			if (n > 0)
				off += (size_t)n;
			step(&p);
			drain(&p);
			p.len = 0;
		}
		say(&p, "\r\n");
		until_tag(&p, tag);
		p.len = 0;
	}
	say(&p, "d2 SELECT big\r\nd3 FETCH 1:* BODY.PEEK[]\r\n");
	/* engine steps without reading: its queue must stay bounded */
	for (int i = 0; i < 200; i++) {
		step(&p);
		if (!(imap_client_events(p.c) & POLLIN))
			saw_no_pollin = true;
	}
	ASSERT_TRUE(saw_no_pollin);
	/* now read everything */
	{
		size_t cap = 4 << 20;
		char *all = malloc(cap + 1);

		ASSERT_TRUE(all != NULL);
		for (int i = 0; i < 100000; i++) {
			ssize_t n;

			step(&p);
			while (total < cap && (n = read(p.fd, all + total, cap - total)) > 0)
				total += (size_t)n;
			all[total] = '\0';
			if (strstr(all, "\nd3 OK") != NULL)
				break;
		}
		for (char *q = all; (q = strstr(q, "BODY[] {")) != NULL; q++)
			got++;
		free(all);
	}
	ASSERT_INT_EQ(got, 12);
	ASSERT_INT_GE(total, 12 * sizeof(msg));
	peer_close(&p);
}

/* Two connections of the same user: changes by one reach the other at its next
 * command, with sequence numbers that stay its own. */
TEST(two_clients)
{
	struct peer a, b;
	const char *o;

	peer_open(&a, NULL, NULL);
	peer_open(&b, NULL, NULL);
	say(&a, "e1 CREATE shared\r\ne2 APPEND shared {9+}\r\nSubject:1\r\ne3 APPEND shared "
	    "{9+}\r\nSubject:2\r\ne4 SELECT shared\r\n");
	until_tag(&a, "e4");
	say(&b, "f1 SELECT shared\r\n");
	until_tag(&b, "f1");
	b.len = 0;
	a.len = 0;
	say(&a, "e5 STORE 1 +FLAGS (\\Deleted)\r\ne6 EXPUNGE\r\n");
	o = until_tag(&a, "e6");
	ASSERT_TRUE(strstr(o, "* 1 EXPUNGE\r\ne6 OK") != NULL);
	say(&b, "f2 FETCH 2 (UID)\r\n");
	o = until_tag(&b, "f2");
	/* no EXPUNGE during FETCH (RFC 9051 7.5.1); message 2 is still UID 2 */
	ASSERT_TRUE(strstr(o, "EXPUNGE") == NULL);
	ASSERT_TRUE(strstr(o, "* 2 FETCH (UID 2)") != NULL);
	say(&b, "f3 NOOP\r\n");
	o = until_tag(&b, "f3");
	ASSERT_TRUE(strstr(o, "* 1 EXPUNGE\r\n") != NULL);
	peer_close(&a);
	peer_close(&b);
}


static size_t count_states(bool idle_only)
{
	size_t n = 0;

	for (const struct mbox_state *st = user()->states; st != NULL; st = st->next)
		n += !idle_only || st->views == NULL;
	return n;
}

/* The mailbox state outlives its last view (the next SELECT is a refresh, not a
 * listing), and what changed in the store meanwhile, written past this engine as
 * another process would (flags, an expunge, an append), is seen at the next SELECT;
 * so is a STORE/EXPUNGE by another connection of this process. */
TEST(idle_state_kept_and_refreshed)
{
	struct peer a, b;
	struct vault_mailbox mb;
	struct vault_txn *t = NULL;
	struct vault_keys *k;
	const char *o;
	uint64_t ms;
	uint32_t nu = 0;
	size_t before;

	peer_open(&a, NULL, NULL);
	say(&a, "k1 CREATE kept\r\nk2 APPEND kept {9+}\r\nSubject:1\r\nk3 APPEND kept "
	    "{9+}\r\nSubject:2\r\nk4 APPEND kept {9+}\r\nSubject:3\r\nk5 SELECT kept\r\n");
	o = until_tag(&a, "k5");
	ASSERT_TRUE(strstr(o, "* 3 EXISTS") != NULL);
	before = count_states(false);
	peer_close(&a);
	/* kept, idle */
	ASSERT_INT_EQ(count_states(false), before);
	ASSERT_INT_GE(count_states(true), 1);

	/* another process: \Flagged on UID 1, UID 2 expunged, a new message */
	k = imap_user_keys(user());
	ASSERT_INT_EQ(vault_txn_begin(V, true, &t), 0);
	ASSERT_INT_EQ(vault_mailbox_find(t, k, "kept", &mb), 0);
	ASSERT_INT_EQ(vault_msg_set_flags(t, k, mb.id, 1, VAULT_F_FLAGGED, NULL, 0, &ms), 0);
	ASSERT_INT_EQ(vault_msg_expunge(t, k, mb.id, 2), 0);
	ASSERT_INT_EQ(vault_msg_append(t, k, mb.id, (const uint8_t *)"Subject:4\r\n", 11, NULL,
	    &nu), 0);
	ASSERT_INT_EQ(vault_txn_commit(&t), 0);
	ASSERT_INT_EQ(nu, 4);

	peer_open(&b, NULL, NULL);
	say(&b, "m1 SELECT kept\r\nm2 FETCH 1:* (UID FLAGS)\r\n");
	o = until_tag(&b, "m2");
	ASSERT_TRUE(strstr(o, "* 3 EXISTS") != NULL);
	ASSERT_TRUE(strstr(o, "[UIDNEXT 5]") != NULL);
	ASSERT_TRUE(strstr(o, "* 1 FETCH (UID 1 FLAGS (\\Flagged))") != NULL);
	ASSERT_TRUE(strstr(o, "* 2 FETCH (UID 3 FLAGS (") != NULL);
	ASSERT_TRUE(strstr(o, "* 3 FETCH (UID 4 FLAGS (") != NULL);
	ASSERT_TRUE(strstr(o, "UID 2 ") == NULL);

	/* another connection of this process changes it while b's state is idle */
	say(&b, "m3 CLOSE\r\n");
	until_tag(&b, "m3");
	peer_open(&a, NULL, NULL);
	say(&a, "n1 SELECT kept\r\nn2 STORE 2 +FLAGS (\\Deleted)\r\nn3 EXPUNGE\r\n"
	    "n4 STORE 1 FLAGS (\\Seen)\r\nn5 UNSELECT\r\n");
	o = until_tag(&a, "n5");
	ASSERT_TRUE(strstr(o, "n5 OK") != NULL);
	b.len = 0;
	say(&b, "m4 SELECT kept\r\nm5 FETCH 1:* (UID FLAGS)\r\n");
	o = until_tag(&b, "m5");
	ASSERT_TRUE(strstr(o, "* 2 EXISTS") != NULL);
	ASSERT_TRUE(strstr(o, "* 1 FETCH (UID 1 FLAGS (\\Seen))") != NULL);
	ASSERT_TRUE(strstr(o, "* 2 FETCH (UID 4 FLAGS (") != NULL);
	ASSERT_TRUE(strstr(o, "UID 3 ") == NULL);
	peer_close(&a);
	peer_close(&b);
}

/* Idle states are bounded: selecting many mailboxes one after another keeps at most
 * IDLE_STATES_MAX of them; a deleted mailbox's idle state goes at once. */
TEST(idle_states_bounded)
{
	struct peer a;
	char cmd[128];
	const char *o;

	peer_open(&a, NULL, NULL);
	for (int i = 0; i < IDLE_STATES_MAX + 4; i++) {
		char tag[16];

		snprintf(tag, sizeof(tag), "b%d", i);
		snprintf(cmd, sizeof(cmd), "%sa CREATE box%d\r\n%s SELECT box%d\r\n", tag, i, tag, i);
		say(&a, cmd);
		o = until_tag(&a, tag);
		ASSERT_TRUE(strstr(o, "OK [READ-WRITE]") != NULL);
		a.len = 0;
	}
	say(&a, "c1 UNSELECT\r\n");
	until_tag(&a, "c1");
	ASSERT_INT_EQ(count_states(true), IDLE_STATES_MAX);
	ASSERT_INT_EQ(count_states(false), IDLE_STATES_MAX);
	/* the most recent one is kept; DELETE then SELECT of it fails cleanly */
	a.len = 0;
	snprintf(cmd, sizeof(cmd), "c2 DELETE box%d\r\nc3 SELECT box%d\r\n", IDLE_STATES_MAX + 3,
	    IDLE_STATES_MAX + 3);
	say(&a, cmd);
	o = until_tag(&a, "c3");
	ASSERT_TRUE(strstr(o, "c3 NO") != NULL);
	ASSERT_INT_EQ(count_states(false), IDLE_STATES_MAX - 1);
	peer_close(&a);
}

/* The clock is the caller's: IDLE keepalives every ~2 minutes, and the autologout
 * after at least 30 minutes without input (RFC 9051 5.4), IDLE included. */
/* The map fills up in the middle of a write txn (a MULTIAPPEND bigger than the free
 * space of the 8 MiB map): vault_write aborts, grows the map and replays the txn; the
 * command succeeds and a STORE/EXPUNGE on the grown map does too. */
static void say_big(struct peer *p, const char *s, size_t n)
{
	size_t off = 0;

	for (int i = 0; off < n && i < 1000000; i++) {
		ssize_t w = write(p->fd, s + off, n - off);

		if (w > 0)
			off += (size_t)w;
		step(p);
		drain(p);
	}
	if (off < n)
		exit(2);
}

TEST(map_full_mid_txn_replayed)
{
	enum { NMSG = 10, MSZ = 900 * 1024 };
	struct vault_stats vs0, vs1;
	struct peer p;
	char hdr[128], *body;
	const char *o;

	peer_open(&p, NULL, NULL);
	ASSERT_INT_EQ(vault_stats(V, &vs0), 0);
	say(&p, "m1 CREATE mapfull\r\n");
	until_tag(&p, "m1");
	ASSERT_TRUE(strstr(p.buf, "m1 OK") != NULL);
	body = malloc(MSZ);
	ASSERT_TRUE(body != NULL);
	memset(body, 'a', MSZ);
	memcpy(body, "Subject: big\r\n\r\n", 16);
	for (size_t i = 100; i + 2 < MSZ; i += 100)
		memcpy(body + i - 2, "\r\n", 2);
	for (int i = 0; i < NMSG; i++) {
		for (size_t j = 16; j < MSZ; j += 7)
			body[j] = (char)('a' + (j * 31 + (size_t)i * 7) % 26);
		for (size_t j = 100; j + 2 < MSZ; j += 100)
			memcpy(body + j - 2, "\r\n", 2);
		snprintf(hdr, sizeof(hdr), "%s {%d+}\r\n", i == 0 ? "m2 APPEND mapfull" : "",
		    MSZ);
		say_big(&p, hdr, strlen(hdr));
		say_big(&p, body, MSZ);
	}
	say_big(&p, "\r\n", 2);
	free(body);
	o = until_tag(&p, "m2");
	ASSERT_TRUE(strstr(o, "m2 OK [APPENDUID ") != NULL);
	ASSERT_INT_EQ(vault_stats(V, &vs1), 0);
	ASSERT_TRUE(vs1.map_size > vs0.map_size);	/* it did have to grow */
	p.len = 0;
	say(&p, "m3 SELECT mapfull\r\nm4 STORE 1:* +FLAGS (\\Deleted kw1 kw2)\r\n"
	    "m5 FETCH 1 (BODY[HEADER.FIELDS (SUBJECT)])\r\nm6 EXPUNGE\r\n");
	o = until_tag(&p, "m6");
	ASSERT_TRUE(strstr(o, "m4 OK") != NULL);
	ASSERT_TRUE(strstr(o, "m5 OK") != NULL);
	ASSERT_TRUE(strstr(o, "m6 OK") != NULL);
	peer_close(&p);
}

TEST(timeouts)
{
	struct peer p;
	time_t now = time(NULL);
	int t;

	peer_open(&p, NULL, NULL);
	say(&p, "g1 IDLE\r\n");
	for (int i = 0; i < 20; i++)
		step(&p);
	drain(&p);
	ASSERT_TRUE(strstr(p.buf, "+ idling\r\n") != NULL);
	t = imap_client_timeout(p.c, now);
	ASSERT_TRUE(t > 0 && t <= 120);
	ASSERT_INT_EQ(imap_client_handle(p.c, 0, now + 121), 0);
	drain(&p);
	ASSERT_TRUE(strstr(p.buf, "* OK Still here\r\n") != NULL);
	say(&p, "DONE\r\n");
	until_tag(&p, "g1");
	ASSERT_TRUE(strstr(p.buf, "g1 OK") != NULL);
	/* 29 minutes of silence: still connected; past 30: BYE and the end */
	ASSERT_INT_EQ(imap_client_handle(p.c, 0, now + 29 * 60), 0);
	ASSERT_INT_GE(imap_client_timeout(p.c, now + 29 * 60), 1);
	{
		int r = 0;

		for (int i = 0; i < 10 && r == 0; i++)
			r = imap_client_handle(p.c, POLLOUT, now + 31 * 60);
		ASSERT_INT_EQ(r, 1);
	}
	drain(&p);
	ASSERT_TRUE(strstr(p.buf, "* BYE ") != NULL);
	peer_close(&p);
}
