/* vault/ unit tests: real LMDB files in a mkdtemp directory, real crypto, no mocks.
 * Argon2id runs at the OWASP minimum (19456 KiB, t=2) except in the timing print. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "harness.h"
#include "vault.h"
#include "vault-private.h"

#define PASS "correct horse battery staple"

/* ---- fixtures ------------------------------------------------------------------- */
static char *mktmp(void)
{
	char *d = strdup("/tmp/test_vault.XXXXXX");

	if (d == NULL || mkdtemp(d) == NULL) {
		fprintf(stderr, "mkdtemp failed\n");
		exit(2);
	}
	return d;
}

static void rmrf(const char *dir)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", dir);
}

static double now_s(void);

/* Reads a whole (small) file, NUL-terminated. Bytes read, or -1. */
static long read_all(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	if (f == NULL)
		return -1;
	n = fread(buf, 1, cap - 1, f);
	fclose(f);
	buf[n] = '\0';
	return (long)n;
}

static void test_cfg(struct vault_config *c, const char *dir)
{
	vault_config_defaults(c);
	snprintf(c->data_dir, sizeof(c->data_dir), "%s", dir);
	c->argon2_memory = CRYPTO_PWHASH_MIN_MEM_KIB;
	c->argon2_passes = CRYPTO_PWHASH_MIN_PASSES;
	c->map_size = 1 << 20;
}

struct tok {
	struct vault_token_secret s;
	uint16_t ctr;
};

static void tok_new(struct tok *t, const char *label)
{
	memset(t, 0, sizeof(*t));
	if (secret_new_random(CRYPTO_OTP_AES_BYTES, &t->s.aes_key) < 0 ||
	    secret_new_random(CRYPTO_OTP_UID_BYTES, &t->s.uid) < 0)
		exit(2);
	crypto_random(t->s.public_id, sizeof(t->s.public_id));
	snprintf(t->s.label, sizeof(t->s.label), "%s", label);
	t->ctr = 1;
}

static void tok_free(struct tok *t)
{
	secret_free(&t->s.aes_key);
	secret_free(&t->s.uid);
}

/* passphrase || OTP with the next counter (uid override: forged OTPs). */
static size_t password(struct tok *t, const char *pass, const uint8_t *uid, char *out,
    size_t outlen)
{
	char otp[CRYPTO_OTP_CHARS + 1];

	if (crypto_otp_generate(t->s.aes_key, t->s.public_id, uid ? uid : t->s.uid->p, t->ctr++,
	    0, 0x1234, otp) != 0)
		exit(2);
	return (size_t)snprintf(out, outlen, "%s%s", pass, otp);
}

static int login(struct vault *v, const char *user, struct tok *t, const char *pass,
    struct vault_keys **keys_out)
{
	struct vault_login l;
	char pw[256];
	size_t n = password(t, pass, NULL, pw, sizeof(pw));
	int r;

	r = vault_login_derive(v, user, (const uint8_t *)pw, n, &l);
	if (r == 0 && keys_out != NULL)
		r = vault_unlock(v, &l, keys_out);
	vault_login_clear(&l);
	return r;
}

struct world {
	char *dir;
	struct vault_config cfg;
	struct vault *v;
	struct tok tok;
	char recovery[128];
};

static int world_open(struct world *w)
{
	return vault_open(&w->cfg, &w->v);
}

static void world_init(struct world *w, const char *user)
{
	memset(w, 0, sizeof(*w));
	w->dir = mktmp();
	test_cfg(&w->cfg, w->dir);
	if (world_open(w) != 0)
		exit(2);
	tok_new(&w->tok, "key1");
	if (user != NULL && vault_user_create(w->v, user, (const uint8_t *)PASS, strlen(PASS),
	    &w->tok.s, time(NULL) - 100, w->recovery, sizeof(w->recovery)) != 0) {
		fprintf(stderr, "user create failed\n");
		exit(2);
	}
}

static void world_free(struct world *w)
{
	vault_close(&w->v);
	tok_free(&w->tok);
	rmrf(w->dir);
	free(w->dir);
}

static uint8_t *pattern(size_t n, uint32_t seed)
{
	uint8_t *p = malloc(n ? n : 1);
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
	return p;
}

struct collect {
	uint32_t uids[4096];
	uint64_t sizes[4096];
	bool recent[4096];
	uint32_t flags[4096];
	size_t n;
};

static int collect_cb(const struct vault_msg_meta *m, void *arg)
{
	struct collect *c = arg;

	if (c->n < 4096) {
		c->uids[c->n] = m->uid;
		c->sizes[c->n] = m->size;
		c->recent[c->n] = m->recent;
		c->flags[c->n] = m->flags;
		c->n++;
	}
	return 0;
}

static int list_all(struct vault *v, struct vault_keys *k, uint32_t mbox, bool write,
    struct collect *c)
{
	struct vault_txn *t = NULL;
	int r;

	memset(c, 0, sizeof(*c));
	if ((r = vault_txn_begin(v, write, &t)) < 0)
		return r;
	r = vault_msg_list(t, k, mbox, 1, collect_cb, c);
	if (r < 0) {
		vault_txn_abort(&t);
		return r;
	}
	return vault_txn_commit(&t);
}

static int read_msg(struct vault *v, struct vault_keys *k, uint32_t mbox, uint32_t uid,
    uint64_t off, uint64_t len, struct sbuf **out)
{
	struct vault_txn *t = NULL;
	int r;

	if ((r = vault_txn_begin(v, false, &t)) < 0)
		return r;
	r = vault_msg_read(t, k, mbox, uid, off, len, out);
	vault_txn_abort(&t);
	return r;
}

static int get_meta(struct vault *v, struct vault_keys *k, uint32_t mbox, uint32_t uid,
    struct vault_msg_meta *m)
{
	struct vault_txn *t = NULL;
	int r;

	if ((r = vault_txn_begin(v, false, &t)) < 0)
		return r;
	r = vault_msg_get_meta(t, k, mbox, uid, m);
	vault_txn_abort(&t);
	return r;
}

/* ---- config ------------------------------------------------------------------------ */
TEST(config_defaults)
{
	struct vault_config c;
	char err[256];

	vault_config_defaults(&c);
	ASSERT_STR_EQ(c.imap_listen, "127.0.0.1:1143");
	ASSERT_STR_EQ(c.imaps_listen, "127.0.0.1:1993");
	ASSERT_STR_EQ(c.lmtp_listen, "127.0.0.1:1024");
	ASSERT_INT_EQ(c.unlock_window, 8 * 3600);
	ASSERT_INT_EQ(c.window_max_failures, 5);
	ASSERT_INT_EQ(c.rotation_period, 90 * 86400);
	ASSERT_INT_EQ(c.argon2_memory, 65536);
	ASSERT_INT_EQ(c.argon2_passes, 3);
	ASSERT_INT_EQ(c.map_size, 64 << 20);
	ASSERT_INT_EQ(c.map_max, 64ULL << 30);
	ASSERT_INT_EQ(c.max_message_size, 64 << 20);
	ASSERT_INT_EQ(c.max_connections, 10000);
	ASSERT_INT_EQ(c.max_user_connections, 20);
	ASSERT_INT_EQ(c.prelogin_timeout, 60);
	ASSERT_INT_EQ(c.idle_timeout, 1800);
	ASSERT_TRUE(c.plaintext_loopback);
	ASSERT_TRUE(c.durable);
	ASSERT_TRUE(c.hostname[0] != '\0');
	ASSERT_STR_EQ(c.log_level, "info");
	ASSERT_STR_EQ(c.run_user, "");
	ASSERT_STR_EQ(c.audit_log, "");
	/* data_dir defaults to the config file's directory */
	ASSERT_INT_EQ(vault_config_parse("", 0, "/etc/sealmail/sealmail.conf", &c, err,
	    sizeof(err)), 0);
	ASSERT_STR_EQ(c.data_dir, "/etc/sealmail");
	ASSERT_STR_EQ(c.path, "/etc/sealmail/sealmail.conf");
}

TEST(config_every_key)
{
	static const char text[] =
	    "# comment\n"
	    "\n"
	    "data_dir = /var/lib/sealmail\n"
	    "imap_listen = 0.0.0.0:143\n"
	    "imaps_listen = [::1]:993\n"
	    "lmtp_listen = /run/sealmail/lmtp\n"
	    "tls_cert = certs/c.pem\n"
	    "tls_key = /k.pem\n"
	    "audit_log = syslog\n"
	    "  run_user   =   \"sealmail\"  \n"
	    "unlock_window = 30m\n"
	    "window_max_failures = 3\n"
	    "rotation_period = 2d\n"
	    "rotation_check_interval = 15m\n"
	    "argon2_memory = 19456\n"
	    "argon2_passes = 2\n"
	    "map_size = 16M\n"
	    "map_max = 2G\n"
	    "max_message_size = 512K\n"
	    "max_connections = 5\n"
	    "max_user_connections = 3\n"
	    "prelogin_timeout = 2m\n"
	    "idle_timeout = 1h\n"
	    "plaintext_loopback = no\n"
	    "durable = false\n"
	    "seccomp = no\n"
	    "hostname = mail.example.org\n"
	    "log_level = debug\r\n";
	struct vault_config c;
	char err[256];

	ASSERT_INT_EQ(vault_config_parse(text, strlen(text), "/etc/s/x.conf", &c, err,
	    sizeof(err)), 0);
	ASSERT_STR_EQ(c.data_dir, "/var/lib/sealmail");
	ASSERT_STR_EQ(c.imap_listen, "0.0.0.0:143");
	ASSERT_STR_EQ(c.imaps_listen, "[::1]:993");
	ASSERT_STR_EQ(c.lmtp_listen, "/run/sealmail/lmtp");
	ASSERT_STR_EQ(c.tls_cert, "/etc/s/certs/c.pem");
	ASSERT_STR_EQ(c.tls_key, "/k.pem");
	ASSERT_STR_EQ(c.audit_log, "syslog");
	ASSERT_STR_EQ(c.run_user, "sealmail");
	ASSERT_INT_EQ(c.unlock_window, 1800);
	ASSERT_INT_EQ(c.window_max_failures, 3);
	ASSERT_INT_EQ(c.rotation_period, 2 * 86400);
	ASSERT_INT_EQ(c.rotation_check_interval, 900);
	ASSERT_INT_EQ(c.argon2_memory, 19456);
	ASSERT_INT_EQ(c.argon2_passes, 2);
	ASSERT_INT_EQ(c.map_size, 16 << 20);
	ASSERT_INT_EQ(c.map_max, 2ULL << 30);
	ASSERT_INT_EQ(c.max_message_size, 512 << 10);
	ASSERT_INT_EQ(c.max_connections, 5);
	ASSERT_INT_EQ(c.max_user_connections, 3);
	ASSERT_INT_EQ(c.prelogin_timeout, 120);
	ASSERT_INT_EQ(c.idle_timeout, 3600);
	ASSERT_TRUE(!c.plaintext_loopback);
	ASSERT_TRUE(!c.durable);
	ASSERT_TRUE(!c.seccomp);
	ASSERT_STR_EQ(c.hostname, "mail.example.org");
	ASSERT_STR_EQ(c.log_level, "debug");
}

/* Every key the config writer knows (the default config lists all of them, most as
 * comments) is a token of the fuzzing dictionary and appears in the every-key seed. */
TEST(config_fuzz_dict_complete)
{
	const char *src = getenv("SEALMAIL_SRC");
	char *dir = mktmp(), path[512], err[256], line[512], want[160];
	static char dict[16384], seed[8192];
	size_t nkeys = 0;
	FILE *f;

	ASSERT_TRUE(src != NULL);	/* set by tests/meson.build */
	snprintf(path, sizeof(path), "%s/fuzz/config.dict", src);
	ASSERT_TRUE(read_all(path, dict, sizeof(dict)) > 0);
	snprintf(path, sizeof(path), "%s/fuzz/corpus/config/every-key", src);
	ASSERT_TRUE(read_all(path, seed, sizeof(seed)) > 0);
	snprintf(path, sizeof(path), "%s/x.conf", dir);
	ASSERT_INT_EQ(vault_config_write_default(path, dir, err, sizeof(err)), 0);
	ASSERT_TRUE((f = fopen(path, "r")) != NULL);
	while (fgets(line, sizeof(line), f) != NULL) {
		const char *p = line[0] == '#' ? line + 1 : line;
		size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_");

		if (n == 0 || strncmp(p + n, " = ", 3) != 0)
			continue;
		nkeys++;
		snprintf(want, sizeof(want), "\"%.*s\"\n", (int)n, p);
		if (strstr(dict, want) == NULL)
			fprintf(stderr, "fuzz/config.dict lacks %s", want);
		ASSERT_TRUE(strstr(dict, want) != NULL);
		snprintf(want, sizeof(want), "\n%.*s = ", (int)n, p);
		if (strstr(seed, want) == NULL && strncmp(seed, want + 1, strlen(want + 1)) != 0)
			fprintf(stderr, "fuzz/corpus/config/every-key lacks %.*s\n", (int)n, p);
		ASSERT_TRUE(strstr(seed, want) != NULL ||
		    strncmp(seed, want + 1, strlen(want + 1)) == 0);
	}
	fclose(f);
	ASSERT_TRUE(nkeys >= 25);
	rmrf(dir);
	free(dir);
}

static void bad(const char *text, const char *want_line, const char *want_msg)
{
	struct vault_config c;
	char err[256];

	if (vault_config_parse(text, strlen(text), "f.conf", &c, err, sizeof(err)) != -EINVAL) {
		fprintf(stderr, "accepted: %s\n", text);
		harness_failed = 1;
		return;
	}
	if (strstr(err, want_line) == NULL || strstr(err, want_msg) == NULL) {
		fprintf(stderr, "for \"%s\": error \"%s\", wanted \"%s\" and \"%s\"\n", text, err,
		    want_line, want_msg);
		harness_failed = 1;
	}
}

TEST(config_errors)
{
	bad("\n\nfoo = bar\n", "f.conf:3:", "unknown key \"foo\"");
	bad("durable = yes\njunk\n", "f.conf:2:", "expected \"key = value\"");
	bad("unlock_window = 5x\n", "f.conf:1:", "bad duration");
	bad("unlock_window = -5\n", "f.conf:1:", "bad duration");
	bad("window_max_failures = 0\n", "f.conf:1:", "");
	bad("unlock_window = 99999999999999999999\n", "f.conf:1:", "bad duration");
	bad("rotation_period = 5000000d\n", "f.conf:1:", "out of range");
	bad("map_size = 1T\n", "f.conf:1:", "bad size");
	bad("map_size = M\n", "f.conf:1:", "bad size");
	bad("argon2_memory = 1024\n", "f.conf:1:", "out of range");
	bad("argon2_passes = 1\n", "f.conf:1:", "out of range");
	bad("idle_timeout = 10m\n", "f.conf:1:", "out of range");
	bad("max_connections = 0\n", "f.conf:1:", "out of range");
	bad("max_connections = 12abc\n", "f.conf:1:", "bad number");
	bad("durable = maybe\n", "f.conf:1:", "expected yes, no");
	bad("log_level = loud\n", "f.conf:1:", "expected debug");
	bad("imap_listen = nocolon\n", "f.conf:1:", "host:port");
	bad("imaps_listen = /path\n", "f.conf:1:", "host:port");
	bad("imap_listen = h:99999\n", "f.conf:1:", "host:port");
	bad("# x\ndurable = yes\ndurable = no\n", "f.conf:3:", "first on line 2");
	bad("map_size = 2G\nmap_max = 1G\n", "f.conf:2:", "exceeds map_max");
	bad("run_user = \"abc\n", "f.conf:1:", "quote");
	bad("hostname = a\001b\n", "f.conf:1:", "control");
	{
		char big[300];

		memset(big, 'x', sizeof(big));
		memcpy(big, "run_user = ", 11);
		big[sizeof(big) - 1] = '\0';
		bad(big, "f.conf:1:", "too long");
	}
}

static bool cfg_same(const struct vault_config *a, const struct vault_config *b)
{
	return strcmp(a->data_dir, b->data_dir) == 0 && strcmp(a->imap_listen, b->imap_listen) == 0 &&
	    strcmp(a->imaps_listen, b->imaps_listen) == 0 &&
	    strcmp(a->lmtp_listen, b->lmtp_listen) == 0 && strcmp(a->tls_cert, b->tls_cert) == 0 &&
	    strcmp(a->tls_key, b->tls_key) == 0 && strcmp(a->audit_log, b->audit_log) == 0 &&
	    strcmp(a->run_user, b->run_user) == 0 && a->unlock_window == b->unlock_window &&
	    a->window_max_failures == b->window_max_failures &&
	    a->rotation_period == b->rotation_period && a->argon2_memory == b->argon2_memory &&
	    a->argon2_passes == b->argon2_passes && a->map_size == b->map_size &&
	    a->map_max == b->map_max && a->max_message_size == b->max_message_size &&
	    a->max_connections == b->max_connections &&
	    a->max_user_connections == b->max_user_connections &&
	    a->prelogin_timeout == b->prelogin_timeout && a->idle_timeout == b->idle_timeout &&
	    a->plaintext_loopback == b->plaintext_loopback && a->durable == b->durable &&
	    strcmp(a->hostname, b->hostname) == 0 && strcmp(a->log_level, b->log_level) == 0;
}

TEST(config_writer_roundtrip)
{
	char *dir = mktmp(), path[512], err[256];
	struct vault_config want, got;

	snprintf(path, sizeof(path), "%s/sealmail.conf", dir);
	ASSERT_INT_EQ(vault_config_write_default(path, "/srv/mail vault", err, sizeof(err)), 0);
	ASSERT_INT_EQ(vault_config_load(path, &got, err, sizeof(err)), 0);
	vault_config_defaults(&want);
	snprintf(want.data_dir, sizeof(want.data_dir), "/srv/mail vault");
	ASSERT_TRUE(cfg_same(&want, &got));
	/* every key is documented in the written file */
	{
		FILE *f = fopen(path, "r");
		char buf[16384];
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

		if (f)
			fclose(f);
		buf[n] = '\0';
		ASSERT_TRUE(strstr(buf, "#argon2_memory = 65536") != NULL);
		ASSERT_TRUE(strstr(buf, "#rotation_period = 90d") != NULL);
		ASSERT_TRUE(strstr(buf, "#map_max = 64G") != NULL);
		ASSERT_TRUE(strstr(buf, "#run_user = \"\"") != NULL);
	}
	ASSERT_INT_EQ(vault_config_load("/nonexistent/x.conf", &got, err, sizeof(err)), -ENOENT);
	ASSERT_TRUE(strstr(err, "/nonexistent/x.conf") != NULL);
	rmrf(dir);
	free(dir);
}

/* ---- users and login --------------------------------------------------------------- */
TEST(login_paths)
{
	struct world w;
	struct vault_login l;
	struct vault_keys *k = NULL, *k2 = NULL;
	struct vault_user_info ui;
	struct vault_txn *t = NULL;
	struct tok other, tok2;
	char pw[256], rec[128];
	size_t n;
	uint8_t baduid[6];

	world_init(&w, "alice");
	/* user info */
	ASSERT_INT_EQ(vault_txn_begin(w.v, false, &t), 0);
	ASSERT_INT_EQ(vault_user_get(t, "alice", &ui), 0);
	ASSERT_STR_EQ(ui.name, "alice");
	ASSERT_INT_EQ(ui.ntokens, 1);
	ASSERT_INT_EQ(ui.current_epoch, 1);
	ASSERT_INT_EQ(ui.pwhash.mem_kib, CRYPTO_PWHASH_MIN_MEM_KIB);
	ASSERT_MEM_EQ(ui.tokens[0].public_id, w.tok.s.public_id, 6);
	ASSERT_INT_EQ(vault_user_get(t, "nobody", &ui), VAULT_ERR_NOUSER);
	vault_txn_abort(&t);
	ASSERT_INT_EQ(vault_user_create(w.v, "alice", (const uint8_t *)"x", 1, NULL, 0, rec,
	    sizeof(rec)), -EEXIST);

	/* full login + unlock */
	ASSERT_INT_EQ(login(w.v, "alice", &w.tok, PASS, &k), 0);
	ASSERT_TRUE(k != NULL);
	ASSERT_INT_EQ(vault_keys_user_id(k), 1);
	/* replay: same counter again */
	w.tok.ctr--;
	ASSERT_INT_EQ(login(w.v, "alice", &w.tok, PASS, NULL), VAULT_ERR_REPLAY);
	/* an older counter too */
	w.tok.ctr = 1;
	ASSERT_INT_EQ(login(w.v, "alice", &w.tok, PASS, NULL), VAULT_ERR_REPLAY);
	w.tok.ctr = 10;
	/* wrong passphrase */
	ASSERT_INT_EQ(login(w.v, "alice", &w.tok, "wrong", NULL), VAULT_ERR_AUTH);
	/* unknown user */
	ASSERT_INT_EQ(login(w.v, "bob", &w.tok, PASS, NULL), VAULT_ERR_NOUSER);
	/* OTP of another token (unknown public id) */
	tok_new(&other, "other");
	ASSERT_INT_EQ(login(w.v, "alice", &other, PASS, NULL), VAULT_ERR_TOKEN);
	/* forged: right public id and AES key, wrong private uid */
	memcpy(baduid, w.tok.s.uid->p, 6);
	baduid[0] ^= 1;
	n = password(&w.tok, PASS, baduid, pw, sizeof(pw));
	ASSERT_INT_EQ(vault_login_derive(w.v, "alice", (const uint8_t *)pw, n, &l), VAULT_ERR_AUTH);
	ASSERT_TRUE(l.key == NULL && l.pass == NULL);
	/* bad CRC: a changed character in the encrypted part */
	n = password(&w.tok, PASS, NULL, pw, sizeof(pw));
	pw[n - 5] = pw[n - 5] == 'c' ? 'b' : 'c';
	ASSERT_INT_EQ(vault_login_derive(w.v, "alice", (const uint8_t *)pw, n, &l), VAULT_ERR_TOKEN);
	/* the forged and bad-CRC attempts stored no counter: a real OTP still works */
	ASSERT_INT_EQ(login(w.v, "alice", &w.tok, PASS, &k2), 0);
	vault_keys_free(&k2);

	/* passphrase-only: no Argon2id in derive; the window verifier of the last full
	 * login (keyed BLAKE2b under a random per-keys Kw) decides */
	{
		struct vault_login full, po;
		struct vault_keys *kk = NULL;

		n = password(&w.tok, PASS, NULL, pw, sizeof(pw));
		ASSERT_INT_EQ(vault_login_derive(w.v, "alice", (const uint8_t *)pw, n, &full), 0);
		ASSERT_TRUE(full.pass != NULL && full.pass->len == strlen(PASS));
		ASSERT_INT_EQ(vault_unlock(w.v, &full, &kk), 0);
		ASSERT_INT_EQ(vault_keys_check_login(w.v, kk, &full), 0);
		ASSERT_INT_EQ(vault_login_derive(w.v, "alice", (const uint8_t *)PASS, strlen(PASS),
		    &po), 0);
		ASSERT_INT_EQ(po.token_index, -1);
		ASSERT_TRUE(po.key == NULL && po.pass != NULL);
		ASSERT_INT_EQ(vault_keys_check_passphrase(kk, &po), 0);
		vault_login_clear(&po);
		/* a wrong passphrase passes derive (nothing to check it against there)
		 * and fails at the session's check */
		ASSERT_INT_EQ(vault_login_derive(w.v, "alice", (const uint8_t *)"nope", 4, &po), 0);
		ASSERT_INT_EQ(vault_keys_check_passphrase(kk, &po), VAULT_ERR_AUTH);
		/* a prefix or an extension of the passphrase is not it */
		vault_login_clear(&po);
		ASSERT_INT_EQ(vault_login_derive(w.v, "alice", (const uint8_t *)PASS,
		    strlen(PASS) - 1, &po), 0);
		ASSERT_INT_EQ(vault_keys_check_passphrase(kk, &po), VAULT_ERR_AUTH);
		vault_login_clear(&po);
		ASSERT_INT_EQ(vault_login_derive(w.v, "bob", (const uint8_t *)PASS, strlen(PASS),
		    &po), VAULT_ERR_NOUSER);
		ASSERT_TRUE(po.pass == NULL);
		ASSERT_INT_EQ(vault_login_derive(w.v, "alice", (const uint8_t *)PASS, strlen(PASS),
		    &po), 0);
		/* closed window: even the right passphrase is refused */
		vault_keys_clear_window(kk);
		ASSERT_INT_EQ(vault_keys_check_passphrase(kk, &po), VAULT_ERR_WINDOW);
		/* a new full login reopens it */
		ASSERT_INT_EQ(vault_keys_set_window(kk, full.pass), 0);
		ASSERT_INT_EQ(vault_keys_check_passphrase(kk, &po), 0);
		vault_login_clear(&po);
		vault_login_clear(&full);
		vault_keys_free(&kk);
	}

	/* second token (keymgr: passphrase first) */
	tok_new(&tok2, "key2");
	ASSERT_INT_EQ(vault_token_add(w.v, k, &tok2.s), -ENOKEY);
	ASSERT_INT_EQ(vault_keys_set_passphrase(w.v, k, (const uint8_t *)"bad", 3), VAULT_ERR_AUTH);
	ASSERT_INT_EQ(vault_keys_set_passphrase(w.v, k, (const uint8_t *)PASS, strlen(PASS)), 0);
	ASSERT_INT_EQ(vault_token_add(w.v, k, &tok2.s), 0);
	ASSERT_INT_EQ(vault_token_add(w.v, k, &tok2.s), -EEXIST);
	n = password(&tok2, PASS, NULL, pw, sizeof(pw));
	ASSERT_INT_EQ(vault_login_derive(w.v, "alice", (const uint8_t *)pw, n, &l), 0);
	ASSERT_INT_EQ(l.token_index, 1);
	ASSERT_INT_EQ(vault_unlock(w.v, &l, &k2), 0);
	ASSERT_INT_EQ(vault_keys_check_login(w.v, k, &l), 0);
	vault_login_clear(&l);
	vault_keys_free(&k2);

	/* remove the first token: its OTPs are unknown now; recovery still opens */
	ASSERT_INT_EQ(vault_token_remove(w.v, k, 0), 0);
	ASSERT_INT_EQ(vault_token_remove(w.v, k, 0), VAULT_ERR_TOKEN);
	ASSERT_INT_EQ(login(w.v, "alice", &w.tok, PASS, NULL), VAULT_ERR_TOKEN);
	ASSERT_INT_EQ(vault_token_remove(w.v, k, 1), 0);
	ASSERT_INT_EQ(vault_unlock_recovery(w.v, "alice", w.recovery, &k2), 0);
	ASSERT_INT_EQ(vault_keys_user_id(k2), vault_keys_user_id(k));
	vault_keys_free(&k2);
	snprintf(rec, sizeof(rec), "%s", w.recovery);
	rec[0] = rec[0] == 'A' ? 'B' : 'A';
	ASSERT_INT_EQ(vault_unlock_recovery(w.v, "alice", rec, &k2), VAULT_ERR_AUTH);
	ASSERT_INT_EQ(vault_unlock_recovery(w.v, "alice", "garbage", &k2), VAULT_ERR_AUTH);

	vault_keys_free(&k);
	tok_free(&other);
	tok_free(&tok2);
	world_free(&w);
}

/* Raw bytes of every record whose key starts with prefix in db (hash included). */
static size_t snapshot(const char *dir, const char *db, const uint8_t *pre, size_t plen,
    uint8_t *out, size_t cap)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_cursor *c;
	MDB_val k, d;
	size_t n = 0;

	mdb_env_create(&env);
	mdb_env_set_maxdbs(env, 16);
	if (mdb_env_open(env, dir, MDB_RDONLY, 0600) != 0)
		return 0;
	mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
	mdb_dbi_open(txn, db, 0, &dbi);
	mdb_cursor_open(txn, dbi, &c);
	k.mv_size = plen;
	k.mv_data = (void *)pre;
	for (int rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); rc == 0 && k.mv_size >= plen &&
	    memcmp(k.mv_data, pre, plen) == 0; rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		if (n + d.mv_size <= cap)
			memcpy(out + n, d.mv_data, d.mv_size);
		n += d.mv_size;
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return n;
}

TEST(passwd_rewraps)
{
	struct world w;
	struct vault_keys *k = NULL;
	struct sbuf *b = NULL;
	static uint8_t before[1 << 20], after[1 << 20];
	uint8_t pre[4] = { 0, 0, 0, 1 };
	size_t nb, na, cb, ca;
	uint8_t *msg = pattern(100000, 7);
	uint32_t uid;

	world_init(&w, "alice");
	ASSERT_INT_EQ(vault_deliver(w.v, "alice", msg, 100000, time(NULL), &uid), 0);
	ASSERT_INT_EQ(login(w.v, "alice", &w.tok, PASS, &k), 0);
	{
		struct collect c;

		ASSERT_INT_EQ(list_all(w.v, k, VAULT_INBOX_ID, true, &c), 0);	/* adopt */
	}
	vault_close(&w.v);
	nb = snapshot(w.dir, "msg", pre, 4, before, sizeof(before));
	cb = snapshot(w.dir, "chunk", pre, 4, before + nb, sizeof(before) - nb);
	ASSERT_INT_EQ(world_open(&w), 0);
	ASSERT_INT_EQ(vault_passwd(w.v, k, (const uint8_t *)"new pass", 8), 0);
	vault_keys_free(&k);
	ASSERT_INT_EQ(login(w.v, "alice", &w.tok, PASS, NULL), VAULT_ERR_AUTH);
	ASSERT_INT_EQ(login(w.v, "alice", &w.tok, "new pass", &k), 0);
	ASSERT_INT_EQ(read_msg(w.v, k, VAULT_INBOX_ID, uid, 0, UINT64_MAX, &b), 0);
	ASSERT_INT_EQ(b->len, 100000);
	ASSERT_MEM_EQ(b->d, msg, 100000);
	sbuf_free(&b);
	vault_close(&w.v);
	na = snapshot(w.dir, "msg", pre, 4, after, sizeof(after));
	ca = snapshot(w.dir, "chunk", pre, 4, after + na, sizeof(after) - na);
	ASSERT_INT_EQ(na, nb);
	ASSERT_INT_EQ(ca, cb);
	ASSERT_TRUE(nb + cb <= sizeof(before));
	ASSERT_MEM_EQ(before, after, nb + cb);
	ASSERT_INT_EQ(world_open(&w), 0);
	/* recovery still opens after passwd */
	{
		struct vault_keys *k2 = NULL;

		ASSERT_INT_EQ(vault_unlock_recovery(w.v, "alice", w.recovery, &k2), 0);
		vault_keys_free(&k2);
	}
	vault_keys_free(&k);
	free(msg);
	world_free(&w);
}


/* ---- Argon2id raised at the next full login -------------------------------------------- */
static void user_params(struct vault *v, const char *user, struct crypto_pwhash_params *par,
    uint8_t salt[CRYPTO_SALT_BYTES])
{
	struct vault_txn *t = NULL;
	struct user_rec ur;
	uint32_t u;

	if (vault_txn_begin(v, false, &t) != 0 || user_lookup(t, user, &u) != 0 ||
	    user_rec_get(t, u, &ur) != 0) {
		fprintf(stderr, "cannot read the user record of %s\n", user);
		exit(2);
	}
	*par = ur.pwhash;
	if (salt != NULL)
		memcpy(salt, ur.salt, CRYPTO_SALT_BYTES);
	vault_txn_abort(&t);
}

/* A passphrase-only login of user checked against keys' unlock window. */
static int window_check(struct vault *v, const struct vault_keys *k, const char *user,
    const char *pass)
{
	struct vault_login l;
	int r = vault_login_derive(v, user, (const uint8_t *)pass, strlen(pass), &l);

	if (r == 0)
		r = vault_keys_check_passphrase(k, &l);
	vault_login_clear(&l);
	return r;
}

static void reopen_with(struct world *w, uint32_t mem, uint32_t passes)
{
	vault_close(&w->v);
	w->cfg.argon2_memory = mem;
	w->cfg.argon2_passes = passes;
	if (world_open(w) != 0)
		exit(2);
}

TEST(kdf_raised_at_next_full_login)
{
	struct world w;
	struct tok tok2;
	struct vault_keys *k = NULL;
	struct vault_login l;
	struct crypto_pwhash_params par;
	struct sbuf *b = NULL;
	uint8_t salt0[CRYPTO_SALT_BYTES], salt1[CRYPTO_SALT_BYTES], salt2[CRYPTO_SALT_BYTES];
	uint8_t *msg = pattern(70000, 11);
	uint32_t uid;
	char pw[256];
	size_t n;

	world_init(&w, "alice");
	tok_new(&tok2, "key2");
	ASSERT_INT_EQ(vault_deliver(w.v, "alice", msg, 70000, time(NULL), &uid), 0);
	ASSERT_INT_EQ(login(w.v, "alice", &w.tok, PASS, &k), 0);
	ASSERT_INT_EQ(vault_keys_set_passphrase(w.v, k, (const uint8_t *)PASS, strlen(PASS)), 0);
	ASSERT_INT_EQ(vault_token_add(w.v, k, &tok2.s), 0);
	vault_keys_free(&k);
	user_params(w.v, "alice", &par, salt0);
	ASSERT_INT_EQ(par.mem_kib, CRYPTO_PWHASH_MIN_MEM_KIB);
	ASSERT_INT_EQ(par.passes, CRYPTO_PWHASH_MIN_PASSES);

	/* The policy goes up. A passphrase-only login cannot re-key (no K_t): no change. */
	reopen_with(&w, CRYPTO_PWHASH_MIN_MEM_KIB + 4096, CRYPTO_PWHASH_MIN_PASSES + 1);
	n = strlen(PASS);
	ASSERT_INT_EQ(vault_login_derive(w.v, "alice", (const uint8_t *)PASS, n, &l), 0);
	ASSERT_INT_EQ(l.token_index, -1);
	vault_login_clear(&l);
	user_params(w.v, "alice", &par, salt1);
	ASSERT_INT_EQ(par.mem_kib, CRYPTO_PWHASH_MIN_MEM_KIB);
	ASSERT_MEM_EQ(salt0, salt1, sizeof(salt0));
	/* A wrong passphrase with a good OTP is refused and raises nothing. */
	n = password(&w.tok, "wrong passphrase!", NULL, pw, sizeof(pw));
	ASSERT_INT_EQ(vault_login_derive(w.v, "alice", (const uint8_t *)pw, n, &l),
	    VAULT_ERR_AUTH);
	user_params(w.v, "alice", &par, NULL);
	ASSERT_INT_EQ(par.mem_kib, CRYPTO_PWHASH_MIN_MEM_KIB);

	/* The next full login re-keys: new params and salt in the store, and the K_t it
	 * hands on is the new one. */
	n = password(&w.tok, PASS, NULL, pw, sizeof(pw));
	ASSERT_INT_EQ(vault_login_derive(w.v, "alice", (const uint8_t *)pw, n, &l), 0);
	user_params(w.v, "alice", &par, salt1);
	ASSERT_INT_EQ(par.mem_kib, CRYPTO_PWHASH_MIN_MEM_KIB + 4096);
	ASSERT_INT_EQ(par.passes, CRYPTO_PWHASH_MIN_PASSES + 1);
	ASSERT_TRUE(memcmp(salt0, salt1, sizeof(salt0)) != 0);
	ASSERT_INT_EQ(vault_unlock(w.v, &l, &k), 0);
	vault_login_clear(&l);
	/* the unlock window of these keys takes the passphrase alone (its verifier is
	 * keyed on the passphrase, not on the Argon2id output) */
	ASSERT_INT_EQ(window_check(w.v, k, "alice", PASS), 0);
	ASSERT_INT_EQ(window_check(w.v, k, "alice", "wrong passphrase!"), VAULT_ERR_AUTH);
	/* old mail reads */
	ASSERT_INT_EQ(read_msg(w.v, k, VAULT_INBOX_ID, uid, 0, UINT64_MAX, &b), 0);
	ASSERT_INT_EQ(b->len, 70000);
	ASSERT_MEM_EQ(b->d, msg, 70000);
	sbuf_free(&b);
	vault_keys_free(&k);
	/* both tokens log in under the new parameters; no second re-key */
	ASSERT_INT_EQ(login(w.v, "alice", &w.tok, PASS, &k), 0);
	vault_keys_free(&k);
	ASSERT_INT_EQ(login(w.v, "alice", &tok2, PASS, &k), 0);
	ASSERT_INT_EQ(read_msg(w.v, k, VAULT_INBOX_ID, uid, 0, UINT64_MAX, &b), 0);
	ASSERT_MEM_EQ(b->d, msg, 70000);
	sbuf_free(&b);
	vault_keys_free(&k);
	user_params(w.v, "alice", &par, salt2);
	ASSERT_MEM_EQ(salt1, salt2, sizeof(salt1));
	/* a lower policy never lowers a user's parameters */
	reopen_with(&w, CRYPTO_PWHASH_MIN_MEM_KIB, CRYPTO_PWHASH_MIN_PASSES);
	ASSERT_INT_EQ(login(w.v, "alice", &w.tok, PASS, &k), 0);
	vault_keys_free(&k);
	user_params(w.v, "alice", &par, salt2);
	ASSERT_INT_EQ(par.mem_kib, CRYPTO_PWHASH_MIN_MEM_KIB + 4096);
	ASSERT_MEM_EQ(salt1, salt2, sizeof(salt1));
	/* one dimension only (passes) raises too, memory kept */
	reopen_with(&w, CRYPTO_PWHASH_MIN_MEM_KIB, CRYPTO_PWHASH_MIN_PASSES + 2);
	ASSERT_INT_EQ(login(w.v, "alice", &tok2, PASS, &k), 0);
	vault_keys_free(&k);
	user_params(w.v, "alice", &par, NULL);
	ASSERT_INT_EQ(par.mem_kib, CRYPTO_PWHASH_MIN_MEM_KIB + 4096);
	ASSERT_INT_EQ(par.passes, CRYPTO_PWHASH_MIN_PASSES + 2);
	/* the recovery key is not tied to the passphrase: still opens */
	ASSERT_INT_EQ(vault_unlock_recovery(w.v, "alice", w.recovery, &k), 0);
	vault_keys_free(&k);
	tok_free(&tok2);
	free(msg);
	world_free(&w);
}

/* A full login of user in a child process with its own store environment (w->v must
 * be closed). The child's OTP counts as spent whether it gets to use it or not. */
static pid_t login_child(struct world *w, const char *user)
{
	pid_t pid = fork();

	if (pid == 0) {
		struct vault *cv = NULL;

		if (vault_open(&w->cfg, &cv) != 0)
			_exit(3);
		_exit(login(cv, user, &w->tok, PASS, NULL) == 0 ? 0 : 4);
	}
	w->tok.ctr++;
	return pid;
}

/* SIGKILL a login in the middle of its re-key, many times, at random points of its
 * run: the account stays usable (the store has the old parameters or the new ones,
 * never a mix), and a later login finishes the raise. */
TEST(kdf_raise_killed)
{
	struct world w;
	struct vault_keys *k = NULL;
	struct crypto_pwhash_params par;
	struct sbuf *b = NULL;
	uint8_t *msg = pattern(5000, 3);
	uint32_t uid, mem = CRYPTO_PWHASH_MIN_MEM_KIB;
	double full_s;
	unsigned kept_old = 0, got_new = 0;
	int i;

	world_init(&w, "bob");
	ASSERT_INT_EQ(vault_deliver(w.v, "bob", msg, 5000, time(NULL), &uid), 0);
	/* How long a raising login in a fresh process takes here (open, old 2 Argon2id,
	 * new 2, the commit), to aim the kills over the whole of it. */
	reopen_with(&w, mem += 1024, CRYPTO_PWHASH_MIN_PASSES);
	vault_close(&w.v);
	full_s = now_s();
	{
		pid_t pid = login_child(&w, "bob");
		int st;

		ASSERT_TRUE(pid > 0);
		ASSERT_INT_EQ(waitpid(pid, &st, 0), pid);
		ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	full_s = now_s() - full_s;
	ASSERT_INT_EQ(world_open(&w), 0);
	user_params(w.v, "bob", &par, NULL);
	ASSERT_INT_EQ(par.mem_kib, mem);
	srand((unsigned)time(NULL));
	for (i = 0; i < 12; i++) {
		struct crypto_pwhash_params before;
		pid_t pid;
		int st;

		user_params(w.v, "bob", &before, NULL);
		reopen_with(&w, mem += 1024, CRYPTO_PWHASH_MIN_PASSES);
		vault_close(&w.v);	/* no LMDB environment across fork */
		pid = login_child(&w, "bob");
		ASSERT_TRUE(pid > 0);
		/* mostly in the second half, where the re-key and its commit are */
		usleep((useconds_t)((0.3 + (double)rand() / RAND_MAX) * full_s * 1e6));
		kill(pid, SIGKILL);
		ASSERT_INT_EQ(waitpid(pid, &st, 0), pid);
		ASSERT_TRUE(!WIFEXITED(st) || WEXITSTATUS(st) == 0);
		ASSERT_INT_EQ(world_open(&w), 0);
		user_params(w.v, "bob", &par, NULL);
		ASSERT_TRUE(par.mem_kib == before.mem_kib || par.mem_kib == mem);
		if (par.mem_kib == mem)
			got_new++;
		else
			kept_old++;
		/* usable either way: this login raises if the killed one did not */
		ASSERT_INT_EQ(login(w.v, "bob", &w.tok, PASS, &k), 0);
		ASSERT_INT_EQ(read_msg(w.v, k, VAULT_INBOX_ID, uid, 0, UINT64_MAX, &b), 0);
		ASSERT_MEM_EQ(b->d, msg, 5000);
		sbuf_free(&b);
		vault_keys_free(&k);
		user_params(w.v, "bob", &par, NULL);
		ASSERT_INT_EQ(par.mem_kib, mem);
	}
	printf("  kdf raise killed 12 times (full login %.0f ms): %u left the old "
	    "parameters, %u the new\n", full_s * 1000, kept_old, got_new);
	ASSERT_TRUE(kept_old > 0);
	free(msg);
	world_free(&w);
}

/* ---- deliver / list / read ------------------------------------------------------------ */
TEST(deliver_sizes_roundtrip)
{
	static const size_t sizes[] = { 0, 1, 4031, 4032, 65535, 65536, 65537, 200 * 1024,
	    50u * 1024 * 1024 };
	struct world w;
	struct vault_keys *k = NULL;
	struct collect c;
	uint32_t uids[16];

	world_init(&w, "alice");
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t *m = pattern(sizes[i], (uint32_t)i);

		ASSERT_INT_EQ(vault_deliver(w.v, "alice", m, sizes[i], time(NULL), &uids[i]), 0);
		ASSERT_INT_EQ(uids[i], i + 1);
		free(m);
	}
	ASSERT_INT_EQ(login(w.v, "alice", &w.tok, PASS, &k), 0);
	/* read-only listing: opens, reports \Recent, claims nothing */
	ASSERT_INT_EQ(list_all(w.v, k, VAULT_INBOX_ID, false, &c), 0);
	ASSERT_INT_EQ(c.n, sizeof(sizes) / sizeof(sizes[0]));
	ASSERT_TRUE(c.recent[0]);
	/* reading a still pk-wrapped message works too */
	{
		struct sbuf *b = NULL;

		ASSERT_INT_EQ(read_msg(w.v, k, VAULT_INBOX_ID, uids[1], 0, UINT64_MAX, &b), 0);
		ASSERT_INT_EQ(b->len, 1);
		sbuf_free(&b);
	}
	ASSERT_INT_EQ(list_all(w.v, k, VAULT_INBOX_ID, true, &c), 0);	/* adopt + claim */
	ASSERT_TRUE(c.recent[0]);
	ASSERT_INT_EQ(list_all(w.v, k, VAULT_INBOX_ID, true, &c), 0);
	ASSERT_TRUE(!c.recent[0]);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t *m = pattern(sizes[i], (uint32_t)i);
		struct sbuf *b = NULL;

		ASSERT_INT_EQ(c.uids[i], uids[i]);
		ASSERT_INT_EQ(c.sizes[i], sizes[i]);
		ASSERT_INT_EQ(read_msg(w.v, k, VAULT_INBOX_ID, uids[i], 0, UINT64_MAX, &b), 0);
		ASSERT_INT_EQ(b->len, sizes[i]);
		if (sizes[i] > 0)
			ASSERT_MEM_EQ(b->d, m, sizes[i]);
		sbuf_free(&b);
		/* partial reads around every chunk boundary */
		if (sizes[i] >= 65537) {
			static const uint64_t offs[][2] = { { 65535, 2 }, { 65536, 1 }, { 65530, 20 },
			    { 0, 65536 }, { 65536, UINT64_MAX }, { 1, 65535 }, { 131071, 3 } };

			for (size_t j = 0; j < sizeof(offs) / sizeof(offs[0]); j++) {
				uint64_t o = offs[j][0], l = offs[j][1];
				uint64_t want = o >= sizes[i] ? 0 : l > sizes[i] - o ? sizes[i] - o : l;

				ASSERT_INT_EQ(read_msg(w.v, k, VAULT_INBOX_ID, uids[i], o, l, &b), 0);
				ASSERT_INT_EQ(b->len, want);
				if (want > 0)
					ASSERT_MEM_EQ(b->d, m + o, want);
				sbuf_free(&b);
			}
		}
		ASSERT_INT_EQ(read_msg(w.v, k, VAULT_INBOX_ID, uids[i], sizes[i] + 10, 5, &b), 0);
		ASSERT_INT_EQ(b->len, 0);
		sbuf_free(&b);
		free(m);
	}
	/* streaming in odd pieces equals the whole */
	{
		struct vault_delivery *d = NULL;
		uint8_t *m = pattern(300001, 99);
		struct sbuf *b = NULL;
		uint32_t uid;

		ASSERT_INT_EQ(vault_delivery_begin(w.v, "alice", time(NULL), &d), 0);
		for (size_t off = 0; off < 300001; off += 777)
			ASSERT_INT_EQ(vault_delivery_write(d, m + off, off + 777 > 300001 ?
			    300001 - off : 777), 0);
		ASSERT_INT_EQ(vault_delivery_commit(&d, &uid), 0);
		ASSERT_INT_EQ(read_msg(w.v, k, VAULT_INBOX_ID, uid, 0, UINT64_MAX, &b), 0);
		ASSERT_INT_EQ(b->len, 300001);
		ASSERT_MEM_EQ(b->d, m, 300001);
		sbuf_free(&b);
		free(m);
		ASSERT_INT_EQ(vault_delivery_begin(w.v, "nobody", time(NULL), &d), VAULT_ERR_NOUSER);
	}
	/* too big */
	{
		struct vault_delivery *d = NULL;
		uint8_t *m = pattern(1 << 20, 5);

		w.v->cfg.max_message_size = 1 << 20;
		ASSERT_INT_EQ(vault_delivery_begin(w.v, "alice", time(NULL), &d), 0);
		ASSERT_INT_EQ(vault_delivery_write(d, m, 1 << 20), 0);
		ASSERT_INT_EQ(vault_delivery_write(d, m, 1), -E2BIG);
		ASSERT_INT_EQ(vault_delivery_commit(&d, NULL), -E2BIG);
		free(m);
	}
	/* stored sizes are bucketed: a 1-byte and a 4031-byte body occupy the same */
	{
		struct vault_txn *t = NULL;
		struct msg_rec r1, r2;

		ASSERT_INT_EQ(vault_txn_begin(w.v, false, &t), 0);
		ASSERT_INT_EQ(msg_rec_get(t, vault_keys_user_id(k), 1, uids[1], &r1), 0);
		ASSERT_INT_EQ(msg_rec_get(t, vault_keys_user_id(k), 1, uids[2], &r2), 0);
		ASSERT_INT_EQ(r1.padded_size, r2.padded_size);
		ASSERT_INT_EQ(r1.padded_size, 4031);
		vault_txn_abort(&t);
	}
	ASSERT_INT_EQ(vault_verify(w.v, NULL, NULL), 0);
	vault_keys_free(&k);
	world_free(&w);
}

/* Another writer takes the speculative UID while a delivery streams: the commit
 * re-seals for the real UID. */
TEST(deliver_uid_race_reseal)
{
	struct world w;
	struct vault_keys *k = NULL;
	struct vault_delivery *d = NULL;
	uint8_t *m = pattern(200000, 3), *m2 = pattern(10, 4);
	struct sbuf *b = NULL;
	uint32_t uid, uid2;

	world_init(&w, "alice");
	ASSERT_INT_EQ(vault_delivery_begin(w.v, "alice", time(NULL), &d), 0);
	ASSERT_INT_EQ(vault_delivery_write(d, m, 200000), 0);
	ASSERT_INT_EQ(vault_deliver(w.v, "alice", m2, 10, time(NULL), &uid2), 0);
	ASSERT_INT_EQ(vault_delivery_commit(&d, &uid), 0);
	ASSERT_INT_EQ(uid2, 1);
	ASSERT_INT_EQ(uid, 2);
	ASSERT_INT_EQ(login(w.v, "alice", &w.tok, PASS, &k), 0);
	ASSERT_INT_EQ(read_msg(w.v, k, VAULT_INBOX_ID, uid, 0, UINT64_MAX, &b), 0);
	ASSERT_INT_EQ(b->len, 200000);
	ASSERT_MEM_EQ(b->d, m, 200000);
	sbuf_free(&b);
	vault_keys_free(&k);
	free(m);
	free(m2);
	world_free(&w);
}

/* Group commit of handed-over deliveries (the LMTP committer's path): export, import,
 * one transaction; UIDs in array order; every one byte-exact (two re-seal because all
 * were sealed for the same speculative UID; one is spilled past the 4 MiB memory
 * buffer); a malformed record or a short file is -EPROTO and frees its fd. */
TEST(deliver_export_import_group)
{
	struct world w;
	struct vault_keys *k = NULL;
	struct vault_delivery *d = NULL, *ds[3] = { NULL, NULL, NULL };
	size_t sizes[3] = { 5000, 200000, 5u << 20 };
	uint8_t *m[3], wire[VAULT_DELIVERY_WIRE_BYTES], bad[VAULT_DELIVERY_WIRE_BYTES];
	uint32_t uids[3];
	int errs[3], fd = -1, fd2 = -1;
	struct sbuf *b = NULL;

	world_init(&w, "alice");
	for (int i = 0; i < 3; i++) {
		m[i] = pattern(sizes[i], (uint8_t)(10 + i));
		ASSERT_INT_EQ(vault_delivery_begin(w.v, "alice", time(NULL), &d), 0);
		ASSERT_INT_EQ(vault_delivery_write(d, m[i], sizes[i]), 0);
		ASSERT_INT_EQ(vault_delivery_export(&d, wire, sizeof(wire), &fd), 0);
		ASSERT_TRUE(d == NULL && fd >= 0);
		if (i == 0) {
			/* malformed: padded/nchunks disagree; then a file too short */
			memcpy(bad, wire, sizeof(bad));
			bad[35] ^= 0x01;
			ASSERT_TRUE((fd2 = dup(fd)) >= 0);
			ASSERT_INT_EQ(vault_delivery_import(w.v, bad, sizeof(bad), fd2, &d), -EPROTO);
			ASSERT_TRUE(d == NULL && fcntl(fd2, F_GETFD) < 0);	/* taken */
			ASSERT_TRUE((fd2 = memfd_create("short", 0)) >= 0);
			ASSERT_INT_EQ(vault_delivery_import(w.v, wire, sizeof(wire), fd2, &d), -EPROTO);
		}
		ASSERT_INT_EQ(vault_delivery_import(w.v, wire, sizeof(wire), fd, &ds[i]), 0);
		fd = -1;
	}
	ASSERT_INT_EQ(vault_delivery_commit_group(ds, 3, uids, errs), 0);
	for (int i = 0; i < 3; i++) {
		ASSERT_INT_EQ(errs[i], 0);
		ASSERT_INT_EQ(uids[i], (uint32_t)(i + 1));
		ASSERT_TRUE(ds[i] == NULL);
	}
	ASSERT_INT_EQ(login(w.v, "alice", &w.tok, PASS, &k), 0);
	for (int i = 0; i < 3; i++) {
		ASSERT_INT_EQ(read_msg(w.v, k, VAULT_INBOX_ID, uids[i], 0, UINT64_MAX, &b), 0);
		ASSERT_INT_EQ(b->len, sizes[i]);
		ASSERT_MEM_EQ(b->d, m[i], sizes[i]);
		sbuf_free(&b);
		free(m[i]);
	}
	ASSERT_INT_EQ(vault_verify(w.v, NULL, NULL), 0);
	vault_keys_free(&k);
	world_free(&w);
}

/* Trace bytes do not count against max_message_size; they must come first and are
 * bounded. */
TEST(deliver_trace_not_counted)
{
	struct world w;
	struct vault_delivery *d = NULL;
	uint8_t *m, tr[VAULT_TRACE_MAX + 1];
	uint32_t uid;

	world_init(&w, "alice");
	m = pattern(8192, 7);
	memset(tr, 'T', sizeof(tr));
	ASSERT_INT_EQ(vault_delivery_begin(w.v, "alice", time(NULL), &d), 0);
	ASSERT_INT_EQ(vault_delivery_write_trace(d, tr, sizeof(tr)), -E2BIG);
	ASSERT_INT_EQ(vault_delivery_write_trace(d, tr, 100), 0);
	ASSERT_INT_EQ(vault_delivery_write_mail(d, m, 10), 0);
	ASSERT_INT_EQ(vault_delivery_write_trace(d, tr, 1), -EINVAL);
	vault_delivery_abort(&d);
	vault_close(&w.v);
	w.cfg.max_message_size = 8192;
	ASSERT_INT_EQ(world_open(&w), 0);
	ASSERT_INT_EQ(vault_delivery_begin(w.v, "alice", time(NULL), &d), 0);
	ASSERT_INT_EQ(vault_delivery_write_trace(d, tr, 2000), 0);
	ASSERT_INT_EQ(vault_delivery_write_mail(d, m, 8192), 0);
	ASSERT_INT_EQ(vault_delivery_commit(&d, &uid), 0);
	ASSERT_INT_EQ(vault_delivery_begin(w.v, "alice", time(NULL), &d), 0);
	ASSERT_INT_EQ(vault_delivery_write_mail(d, m, 8192), 0);
	ASSERT_INT_EQ(vault_delivery_write_mail(d, m, 1), -E2BIG);
	vault_delivery_abort(&d);
	free(m);
	world_free(&w);
}

static int vanished_cb(uint32_t uid, void *arg)
{
	struct collect *c = arg;

	c->uids[c->n++] = uid;
	return 0;
}

TEST(session_ops)
{
	struct world w;
	struct vault_keys *k = NULL;
	struct vault_txn *t = NULL;
	struct vault_mailbox mb, mb2;
	struct vault_msg_meta meta, got;
	struct collect c;
	char *kw[] = { "$Forwarded", "work" };
	uint8_t *m = pattern(70000, 11);
	struct sbuf *b = NULL;
	uint32_t u1, u2, u3, ucopy, arch, xid, xid2, uv1;
	uint64_t ms1, ms2, seq1, seq2;

	world_init(&w, "alice");
	ASSERT_INT_EQ(login(w.v, "alice", &w.tok, PASS, &k), 0);

	/* default mailboxes */
	{
		struct vault_mailbox *list = NULL;
		size_t n = 0;

		ASSERT_INT_EQ(vault_txn_begin(w.v, false, &t), 0);
		ASSERT_INT_EQ(vault_mailbox_list(t, k, &list, &n), 0);
		ASSERT_INT_EQ(n, 6);
		ASSERT_STR_EQ(list[0].name, "INBOX");
		ASSERT_INT_EQ(list[0].id, VAULT_INBOX_ID);
		ASSERT_STR_EQ(list[3].name, "Trash");
		ASSERT_INT_EQ(list[3].special_use, VAULT_SU_TRASH);
		ASSERT_TRUE(list[3].subscribed);
		free(list);
		ASSERT_INT_EQ(vault_mailbox_find(t, k, "inbox", &mb), 0);
		ASSERT_INT_EQ(mb.id, 1);
		ASSERT_INT_EQ(vault_mailbox_find(t, k, "Archive", &mb), 0);
		arch = mb.id;
		ASSERT_INT_EQ(vault_mailbox_find(t, k, "archive", &mb), VAULT_ERR_NOMBOX);
		ASSERT_INT_EQ(vault_user_change_seq(t, vault_keys_user_id(k), &seq1), 0);
		vault_txn_abort(&t);
	}

	/* append with flags, keywords, date */
	memset(&meta, 0, sizeof(meta));
	meta.flags = VAULT_F_SEEN | VAULT_F_FLAGGED;
	meta.keywords[0] = kw[0];
	meta.keywords[1] = kw[1];
	meta.nkeywords = 2;
	meta.internal_date = 1000000000;
	meta.internal_tz = -300;
	ASSERT_INT_EQ(vault_txn_begin(w.v, true, &t), 0);
	ASSERT_INT_EQ(vault_msg_append(t, k, VAULT_INBOX_ID, m, 70000, &meta, &u1), 0);
	ASSERT_INT_EQ(vault_msg_append(t, k, VAULT_INBOX_ID, m, 100, NULL, &u2), 0);
	ASSERT_INT_EQ(vault_txn_commit(&t), 0);
	ASSERT_INT_EQ(u1, 1);
	ASSERT_INT_EQ(u2, 2);
	ASSERT_INT_EQ(get_meta(w.v, k, VAULT_INBOX_ID, u1, &got), 0);
	ASSERT_INT_EQ(got.flags, VAULT_F_SEEN | VAULT_F_FLAGGED);
	ASSERT_INT_EQ(got.nkeywords, 2);
	ASSERT_STR_EQ(got.keywords[1], "work");
	ASSERT_INT_EQ(got.internal_date, 1000000000);
	ASSERT_INT_EQ(got.internal_tz, -300);
	ASSERT_INT_EQ(got.size, 70000);
	ASSERT_TRUE(got.save_date > 0);
	ms1 = got.modseq;
	vault_msg_meta_clear(&got);
	ASSERT_INT_EQ(vault_txn_begin(w.v, false, &t), 0);
	ASSERT_INT_EQ(vault_mailbox_get(t, k, VAULT_INBOX_ID, &mb), 0);
	ASSERT_INT_EQ(vault_user_change_seq(t, vault_keys_user_id(k), &seq2), 0);
	vault_txn_abort(&t);
	ASSERT_TRUE(seq2 > seq1);
	ASSERT_INT_EQ(mb.messages, 2);
	ASSERT_INT_EQ(mb.size, 70100);
	ASSERT_INT_EQ(mb.uidnext, 3);
	ASSERT_INT_EQ(mb.highestmodseq, ms1 + 1);

	/* deliver: counted in the size before adoption, exactly */
	ASSERT_INT_EQ(vault_deliver(w.v, "alice", m, 5000, time(NULL), &u3), 0);
	ASSERT_INT_EQ(u3, 3);
	ASSERT_INT_EQ(vault_txn_begin(w.v, false, &t), 0);
	ASSERT_INT_EQ(vault_mailbox_get(t, k, VAULT_INBOX_ID, &mb), 0);
	vault_txn_abort(&t);
	ASSERT_INT_EQ(mb.size, 75100);
	ASSERT_INT_EQ(list_all(w.v, k, VAULT_INBOX_ID, true, &c), 0);
	ASSERT_INT_EQ(c.n, 3);
	ASSERT_INT_EQ(vault_txn_begin(w.v, false, &t), 0);
	ASSERT_INT_EQ(vault_mailbox_get(t, k, VAULT_INBOX_ID, &mb), 0);
	vault_txn_abort(&t);
	ASSERT_INT_EQ(mb.size, 75100);

	/* flags: modseq grows; same flags do not bump */
	ASSERT_INT_EQ(vault_txn_begin(w.v, true, &t), 0);
	ASSERT_INT_EQ(vault_msg_set_flags(t, k, VAULT_INBOX_ID, u2, VAULT_F_ANSWERED, kw, 1, &ms1), 0);
	ASSERT_INT_EQ(vault_msg_set_flags(t, k, VAULT_INBOX_ID, u2, VAULT_F_ANSWERED, kw, 1, &ms2), 0);
	ASSERT_INT_EQ(ms1, ms2);
	ASSERT_INT_EQ(vault_msg_set_flags(t, k, VAULT_INBOX_ID, u2, VAULT_F_ANSWERED | VAULT_F_DELETED,
	    NULL, 0, &ms2), 0);
	ASSERT_TRUE(ms2 > ms1);
	ASSERT_INT_EQ(vault_msg_set_flags(t, k, VAULT_INBOX_ID, 99, 0, NULL, 0, &ms2), VAULT_ERR_NOMSG);
	ASSERT_INT_EQ(vault_mailbox_get(t, k, VAULT_INBOX_ID, &mb), 0);
	ASSERT_INT_EQ(mb.highestmodseq, ms2);
	ASSERT_INT_EQ(vault_txn_commit(&t), 0);
	ASSERT_INT_EQ(get_meta(w.v, k, VAULT_INBOX_ID, u2, &got), 0);
	ASSERT_INT_EQ(got.flags, VAULT_F_ANSWERED | VAULT_F_DELETED);
	ASSERT_INT_EQ(got.nkeywords, 0);
	ASSERT_INT_EQ(got.modseq, ms2);
	vault_msg_meta_clear(&got);

	/* cache */
	ASSERT_INT_EQ(vault_txn_begin(w.v, true, &t), 0);
	ASSERT_INT_EQ(vault_msg_get_cache(t, k, VAULT_INBOX_ID, u1, &b), -ENOENT);
	ASSERT_INT_EQ(vault_msg_set_cache(t, k, VAULT_INBOX_ID, u1, (const uint8_t *)"ENV", 3), 0);
	ASSERT_INT_EQ(vault_msg_get_cache(t, k, VAULT_INBOX_ID, u1, &b), 0);
	ASSERT_INT_EQ(b->len, 3);
	ASSERT_MEM_EQ(b->d, "ENV", 3);
	sbuf_free(&b);

	/* copy: new UID in the destination, same content, flags, EMAILID, cache */
	ASSERT_INT_EQ(vault_msg_copy(t, k, VAULT_INBOX_ID, u1, arch, &ucopy), 0);
	ASSERT_INT_EQ(ucopy, 1);
	ASSERT_INT_EQ(vault_msg_get_cache(t, k, arch, ucopy, &b), 0);
	ASSERT_MEM_EQ(b->d, "ENV", 3);
	sbuf_free(&b);
	ASSERT_INT_EQ(vault_msg_read(t, k, arch, ucopy, 0, UINT64_MAX, &b), 0);
	ASSERT_INT_EQ(b->len, 70000);
	ASSERT_MEM_EQ(b->d, m, 70000);
	sbuf_free(&b);
	{
		struct vault_msg_meta a, bb;

		ASSERT_INT_EQ(vault_msg_get_meta(t, k, VAULT_INBOX_ID, u1, &a), 0);
		ASSERT_INT_EQ(vault_msg_get_meta(t, k, arch, ucopy, &bb), 0);
		ASSERT_MEM_EQ(a.emailid, bb.emailid, 16);
		ASSERT_INT_EQ(a.flags, bb.flags);
		ASSERT_INT_EQ(bb.nkeywords, 2);
		vault_msg_meta_clear(&a);
		vault_msg_meta_clear(&bb);
	}
	ASSERT_INT_EQ(vault_mailbox_get(t, k, arch, &mb), 0);
	ASSERT_INT_EQ(mb.messages, 1);
	ASSERT_INT_EQ(mb.size, 70000);

	/* expunge + vanished; UIDs never reused */
	ASSERT_INT_EQ(vault_mailbox_get(t, k, VAULT_INBOX_ID, &mb), 0);
	ms1 = mb.highestmodseq;
	ASSERT_INT_EQ(vault_msg_expunge(t, k, VAULT_INBOX_ID, u2), 0);
	ASSERT_INT_EQ(vault_msg_expunge(t, k, VAULT_INBOX_ID, u2), VAULT_ERR_NOMSG);
	ASSERT_INT_EQ(vault_msg_expunge(t, k, VAULT_INBOX_ID, u3), 0);
	ASSERT_INT_EQ(vault_mailbox_get(t, k, VAULT_INBOX_ID, &mb), 0);
	ASSERT_INT_EQ(mb.messages, 1);
	ASSERT_INT_EQ(mb.size, 70000);
	ASSERT_INT_EQ(mb.highestmodseq, ms1 + 2);
	memset(&c, 0, sizeof(c));
	ASSERT_INT_EQ(vault_msg_vanished(t, vault_keys_user_id(k), VAULT_INBOX_ID, 0, vanished_cb, &c), 0);
	ASSERT_INT_EQ(c.n, 2);
	ASSERT_INT_EQ(c.uids[0], u2);
	ASSERT_INT_EQ(c.uids[1], u3);
	memset(&c, 0, sizeof(c));
	ASSERT_INT_EQ(vault_msg_vanished(t, vault_keys_user_id(k), VAULT_INBOX_ID, ms1 + 1,
	    vanished_cb, &c), 0);
	ASSERT_INT_EQ(c.n, 1);
	ASSERT_INT_EQ(c.uids[0], u3);
	ASSERT_INT_EQ(vault_msg_get_meta(t, k, VAULT_INBOX_ID, u2, &got), VAULT_ERR_NOMSG);
	ASSERT_INT_EQ(vault_msg_append(t, k, VAULT_INBOX_ID, m, 10, NULL, &u3), 0);
	ASSERT_INT_EQ(u3, 4);
	ASSERT_INT_EQ(vault_txn_commit(&t), 0);

	/* mailboxes: create, rename, UIDVALIDITY never reused, delete */
	ASSERT_INT_EQ(vault_txn_begin(w.v, true, &t), 0);
	ASSERT_INT_EQ(vault_mailbox_create(t, k, "Projects/X", 0, &xid), 0);
	ASSERT_INT_EQ(vault_mailbox_create(t, k, "Projects/X", 0, &xid2), -EEXIST);
	ASSERT_INT_EQ(vault_mailbox_create(t, k, "INBOX", 0, &xid2), -EEXIST);
	ASSERT_INT_EQ(vault_mailbox_create(t, k, "bad\nname", 0, &xid2), -EINVAL);
	ASSERT_INT_EQ(vault_mailbox_get(t, k, xid, &mb), 0);
	uv1 = mb.uidvalidity;
	ASSERT_INT_EQ(vault_msg_copy(t, k, VAULT_INBOX_ID, u1, xid, NULL), 0);
	ASSERT_INT_EQ(vault_mailbox_rename(t, k, xid, "Projects/Y"), 0);
	ASSERT_INT_EQ(vault_mailbox_rename(t, k, xid, "Trash"), -EEXIST);
	ASSERT_INT_EQ(vault_mailbox_rename(t, k, VAULT_INBOX_ID, "Z"), -EPERM);
	ASSERT_INT_EQ(vault_mailbox_find(t, k, "Projects/Y", &mb2), 0);
	ASSERT_INT_EQ(mb2.id, xid);
	ASSERT_INT_EQ(mb2.uidvalidity, uv1);
	ASSERT_MEM_EQ(mb2.objectid, mb.objectid, 16);
	ASSERT_INT_EQ(mb2.messages, 1);
	ASSERT_INT_EQ(vault_mailbox_delete(t, k, xid), 0);
	ASSERT_INT_EQ(vault_mailbox_delete(t, k, VAULT_INBOX_ID), -EPERM);
	ASSERT_INT_EQ(vault_mailbox_get(t, k, xid, &mb), VAULT_ERR_NOMBOX);
	ASSERT_INT_EQ(vault_mailbox_create(t, k, "Projects/Y", 0, &xid2), 0);
	ASSERT_TRUE(xid2 != xid);
	ASSERT_INT_EQ(vault_mailbox_get(t, k, xid2, &mb), 0);
	ASSERT_TRUE(mb.uidvalidity > uv1);
	ASSERT_INT_EQ(mb.uidnext, 1);
	ASSERT_INT_EQ(vault_msg_list(t, k, xid, 1, collect_cb, &c), VAULT_ERR_NOMBOX);

	/* subscriptions (names, may not exist) */
	{
		char **names = NULL;
		size_t n = 0;
		bool found = false;

		ASSERT_INT_EQ(vault_subscribe(t, k, "Ghost", true), 0);
		ASSERT_INT_EQ(vault_subscribe(t, k, "Trash", false), 0);
		ASSERT_INT_EQ(vault_subscriptions(t, k, &names, &n), 0);
		ASSERT_INT_EQ(n, 6);
		for (size_t i = 0; i < n; i++) {
			if (strcmp(names[i], "Ghost") == 0)
				found = true;
			ASSERT_TRUE(strcmp(names[i], "Trash") != 0);
			free(names[i]);
		}
		free(names);
		ASSERT_TRUE(found);
		ASSERT_INT_EQ(vault_mailbox_find(t, k, "Trash", &mb), 0);
		ASSERT_TRUE(!mb.subscribed);
	}
	ASSERT_INT_EQ(vault_txn_commit(&t), 0);

	/* user totals */
	{
		struct vault_user_info ui;

		ASSERT_INT_EQ(vault_txn_begin(w.v, false, &t), 0);
		ASSERT_INT_EQ(vault_user_get(t, "alice", &ui), 0);
		vault_txn_abort(&t);
		ASSERT_INT_EQ(ui.messages, 3);	/* INBOX u1 + u4, Archive copy */
	}
	ASSERT_INT_EQ(vault_verify(w.v, NULL, NULL), 0);
	vault_keys_free(&k);
	free(m);
	world_free(&w);
}

TEST(rotation)
{
	struct world w;
	struct vault_keys *k = NULL;
	struct vault_user_info ui;
	struct vault_txn *t = NULL;
	struct collect c;
	struct sbuf *b = NULL;
	uint8_t *m = pattern(1000, 1);
	time_t now = time(NULL);
	uint32_t u1, u2;

	world_init(&w, "alice");
	ASSERT_INT_EQ(vault_deliver(w.v, "alice", m, 1000, now, &u1), 0);
	ASSERT_INT_EQ(login(w.v, "alice", &w.tok, PASS, &k), 0);
	ASSERT_INT_EQ(list_all(w.v, k, VAULT_INBOX_ID, true, &c), 0);	/* adopt under epoch 1 */
	ASSERT_INT_EQ(vault_rotate(w.v, "alice", now, false), 1);	/* not due */
	ASSERT_INT_EQ(vault_rotate(w.v, "alice", now + 91 * 86400, false), 0);
	ASSERT_INT_EQ(vault_rotate(w.v, "alice", now + 91 * 86400, true), 1);	/* idempotent */
	ASSERT_INT_EQ(vault_rotate(w.v, "nobody", now, true), VAULT_ERR_NOUSER);
	ASSERT_INT_EQ(vault_txn_begin(w.v, false, &t), 0);
	ASSERT_INT_EQ(vault_user_get(t, "alice", &ui), 0);
	vault_txn_abort(&t);
	ASSERT_INT_EQ(ui.current_epoch, 2);
	ASSERT_INT_EQ(ui.pending_rewrap, 1);
	/* new mail goes to epoch 2; the old session opens it (keys refreshed on demand) */
	ASSERT_INT_EQ(vault_deliver(w.v, "alice", m, 1000, now, &u2), 0);
	{
		struct vault_txn *tt = NULL;
		struct msg_rec r;

		ASSERT_INT_EQ(vault_txn_begin(w.v, false, &tt), 0);
		ASSERT_INT_EQ(msg_rec_get(tt, vault_keys_user_id(k), 1, u2, &r), 0);
		ASSERT_INT_EQ(r.epoch, 2);
		ASSERT_INT_EQ(r.wrap, WRAP_PK);
		ASSERT_INT_EQ(msg_rec_get(tt, vault_keys_user_id(k), 1, u1, &r), 0);
		ASSERT_INT_EQ(r.epoch, 1);
		vault_txn_abort(&tt);
	}
	ASSERT_INT_EQ(read_msg(w.v, k, VAULT_INBOX_ID, u2, 0, UINT64_MAX, &b), 0);
	ASSERT_MEM_EQ(b->d, m, 1000);
	sbuf_free(&b);
	/* a session listing in a write txn re-wraps the old message to epoch 2 */
	ASSERT_INT_EQ(list_all(w.v, k, VAULT_INBOX_ID, true, &c), 0);
	ASSERT_INT_EQ(c.n, 2);
	ASSERT_INT_EQ(vault_txn_begin(w.v, false, &t), 0);
	ASSERT_INT_EQ(vault_user_get(t, "alice", &ui), 0);
	{
		struct msg_rec r;

		ASSERT_INT_EQ(msg_rec_get(t, vault_keys_user_id(k), 1, u1, &r), 0);
		ASSERT_INT_EQ(r.epoch, 2);
		ASSERT_INT_EQ(r.wrap, WRAP_SYM);
	}
	vault_txn_abort(&t);
	ASSERT_INT_EQ(ui.pending_rewrap, 0);
	/* a fresh unlock opens both epochs */
	vault_keys_free(&k);
	ASSERT_INT_EQ(login(w.v, "alice", &w.tok, PASS, &k), 0);
	ASSERT_INT_EQ(k->nepochs, 2);
	ASSERT_INT_EQ(read_msg(w.v, k, VAULT_INBOX_ID, u1, 0, UINT64_MAX, &b), 0);
	ASSERT_MEM_EQ(b->d, m, 1000);
	sbuf_free(&b);
	vault_keys_free(&k);
	free(m);
	world_free(&w);
}

TEST(user_remove)
{
	struct world w;
	struct vault_txn *t = NULL;
	struct vault_stats st;
	uint8_t *m = pattern(100000, 1);
	char rec[128];

	world_init(&w, "alice");
	ASSERT_INT_EQ(vault_user_create(w.v, "bob", (const uint8_t *)PASS, strlen(PASS), NULL,
	    time(NULL), rec, sizeof(rec)), 0);
	for (int i = 0; i < 5; i++)
		ASSERT_INT_EQ(vault_deliver(w.v, "alice", m, 100000, time(NULL), NULL), 0);
	ASSERT_INT_EQ(vault_deliver(w.v, "bob", m, 10, time(NULL), NULL), 0);
	ASSERT_INT_EQ(vault_user_remove(w.v, "alice"), 0);
	ASSERT_INT_EQ(vault_user_remove(w.v, "alice"), VAULT_ERR_NOUSER);
	ASSERT_INT_EQ(vault_txn_begin(w.v, false, &t), 0);
	{
		struct vault_user_info ui;

		ASSERT_INT_EQ(vault_user_get(t, "alice", &ui), VAULT_ERR_NOUSER);
		ASSERT_INT_EQ(vault_user_get(t, "bob", &ui), 0);
	}
	vault_txn_abort(&t);
	ASSERT_INT_EQ(vault_stats(w.v, &st), 0);
	ASSERT_INT_EQ(st.users, 1);
	ASSERT_INT_EQ(st.messages, 1);
	ASSERT_INT_EQ(st.mailboxes, 6);
	ASSERT_INT_EQ(vault_verify(w.v, NULL, NULL), 0);
	free(m);
	world_free(&w);
}

/* Several processes on one environment (LMDB's own locking), as in production:
 * deliveries race for UIDs; every one lands with a unique UID and opens. */
static int foreach_cb(const struct vault_user_info *u, void *arg)
{
	(void)u;
	(*(int *)arg)++;
	return 0;
}

TEST(multi_process_delivery)
{
	struct world w;
	struct vault_keys *k = NULL;
	struct collect c;
	pid_t kids[4];
	int users = 0;

	world_init(&w, "alice");
	vault_close(&w.v);	/* one struct vault per process, opened after fork */
	for (int p = 0; p < 4; p++) {
		if ((kids[p] = fork()) == 0) {
			struct vault *v = NULL;
			int bad = 0;

			if (vault_open(&w.cfg, &v) != 0)
				_exit(3);
			for (int i = 0; i < 25; i++) {
				uint8_t *m = pattern(3000 + (size_t)i * 5000, (uint32_t)(p * 100 + i));

				if (vault_deliver(v, "alice", m, 3000 + (size_t)i * 5000, time(NULL),
				    NULL) != 0)
					bad = 1;
				free(m);
			}
			vault_close(&v);
			_exit(bad);
		}
	}
	for (int p = 0; p < 4; p++) {
		int st = -1;

		waitpid(kids[p], &st, 0);
		ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	ASSERT_INT_EQ(world_open(&w), 0);
	ASSERT_INT_EQ(login(w.v, "alice", &w.tok, PASS, &k), 0);
	ASSERT_INT_EQ(list_all(w.v, k, VAULT_INBOX_ID, true, &c), 0);
	ASSERT_INT_EQ(c.n, 100);
	for (size_t i = 0; i < c.n; i++) {
		struct sbuf *b = NULL;
		bool found = false;

		ASSERT_INT_EQ(c.uids[i], i + 1);
		ASSERT_INT_EQ(read_msg(w.v, k, VAULT_INBOX_ID, c.uids[i], 0, UINT64_MAX, &b), 0);
		for (int p = 0; p < 4 && !found; p++)
			for (int j = 0; j < 25 && !found; j++) {
				size_t len = 3000 + (size_t)j * 5000;
				uint8_t *m;

				if (b->len != len)
					continue;
				m = pattern(len, (uint32_t)(p * 100 + j));
				found = memcmp(m, b->d, len) == 0;
				free(m);
			}
		ASSERT_TRUE(found);
		sbuf_free(&b);
	}
	{
		struct vault_txn *t = NULL;

		ASSERT_INT_EQ(vault_txn_begin(w.v, false, &t), 0);
		ASSERT_INT_EQ(vault_user_foreach(t, foreach_cb, &users), 0);
		vault_txn_abort(&t);
		ASSERT_INT_EQ(users, 1);
	}
	ASSERT_INT_EQ(vault_verify(w.v, NULL, NULL), 0);
	vault_keys_free(&k);
	world_free(&w);
}

/* ---- tampering ----------------------------------------------------------------------- */
struct raw {
	MDB_env *env;
	MDB_txn *txn;
};

static void raw_open(struct raw *r, const char *dir)
{
	mdb_env_create(&r->env);
	mdb_env_set_maxdbs(r->env, 16);
	mdb_env_set_mapsize(r->env, 1ULL << 30);
	if (mdb_env_open(r->env, dir, 0, 0600) != 0 || mdb_txn_begin(r->env, NULL, 0, &r->txn) != 0)
		exit(2);
}

static void raw_close(struct raw *r)
{
	if (mdb_txn_commit(r->txn) != 0)
		exit(2);
	mdb_env_close(r->env);
}

static MDB_dbi raw_dbi(struct raw *r, const char *db)
{
	MDB_dbi d;

	if (mdb_dbi_open(r->txn, db, 0, &d) != 0)
		exit(2);
	return d;
}

/* Writes value under key with a correct framing hash: the attacker who rewrites the
 * disk can recompute unkeyed hashes, so only the AEAD may stop him. */
static void raw_put_fixed(struct raw *r, const char *db, const uint8_t *key, size_t klen,
    const uint8_t *val, size_t vlen)
{
	uint8_t *v = malloc(vlen);
	MDB_val k = { klen, (void *)key }, d = { vlen, v };

	memcpy(v, val, vlen);
	vault_record_hash(db, key, klen, v, vlen - VAULT_REC_HASH, v + vlen - VAULT_REC_HASH);
	if (mdb_put(r->txn, raw_dbi(r, db), &k, &d, 0) != 0)
		exit(2);
	free(v);
}

static uint8_t *raw_get(struct raw *r, const char *db, const uint8_t *key, size_t klen,
    size_t *len)
{
	MDB_val k = { klen, (void *)key }, d;
	uint8_t *p;

	if (mdb_get(r->txn, raw_dbi(r, db), &k, &d) != 0)
		return NULL;
	p = malloc(d.mv_size);
	memcpy(p, d.mv_data, d.mv_size);
	*len = d.mv_size;
	return p;
}

static void raw_swap(const char *dir, const char *db, const uint8_t *k1, const uint8_t *k2,
    size_t klen)
{
	struct raw r;
	uint8_t *a, *b;
	size_t la, lb;

	raw_open(&r, dir);
	a = raw_get(&r, db, k1, klen, &la);
	b = raw_get(&r, db, k2, klen, &lb);
	if (a == NULL || b == NULL)
		exit(2);
	raw_put_fixed(&r, db, k1, klen, b, lb);
	raw_put_fixed(&r, db, k2, klen, a, la);
	free(a);
	free(b);
	raw_close(&r);
}

static void raw_flip(const char *dir, const char *db, const uint8_t *key, size_t klen, size_t at)
{
	struct raw r;
	uint8_t *a;
	size_t la;
	MDB_val k = { klen, (void *)key }, d;

	raw_open(&r, dir);
	a = raw_get(&r, db, key, klen, &la);
	if (a == NULL)
		exit(2);
	a[at % la] ^= 0x40;
	d.mv_size = la;
	d.mv_data = a;
	mdb_put(r.txn, raw_dbi(&r, db), &k, &d, 0);
	free(a);
	raw_close(&r);
}

/* Expect: meta, read, cache of (u, m, n) all fail with want (0: meta fine). */
static int opens(struct world *w, struct vault_keys *k, uint32_t m, uint32_t n,
    int *meta_r, int *read_r, int *cache_r)
{
	struct vault_txn *t = NULL;
	struct vault_msg_meta meta;
	struct sbuf *b = NULL;

	if (vault_txn_begin(w->v, false, &t) != 0)
		return -1;
	*meta_r = vault_msg_get_meta(t, k, m, n, &meta);
	if (*meta_r == 0)
		vault_msg_meta_clear(&meta);
	*read_r = vault_msg_read(t, k, m, n, 0, UINT64_MAX, &b);
	sbuf_free(&b);
	*cache_r = vault_msg_get_cache(t, k, m, n, &b);
	sbuf_free(&b);
	vault_txn_abort(&t);
	return 0;
}

static int list_r(struct world *w, struct vault_keys *k, uint32_t m)
{
	struct collect c;

	return list_all(w->v, k, m, false, &c);
}

struct reports { int n; char last[2][300]; };

static void report_cb(const char *what, void *arg)
{
	struct reports *rp = arg;

	if (rp->n < 2)
		snprintf(rp->last[rp->n], sizeof(rp->last[0]), "%s", what);
	rp->n++;
}

TEST(swap_and_flip)
{
	struct world w;
	struct vault_keys *ka = NULL, *kb = NULL;
	struct tok tb;
	char rec[128];
	uint8_t *m1 = pattern(70000, 1), *m2 = pattern(70000, 2);
	uint8_t k1[16], k2[16];
	uint32_t a, b;
	int mr, rr, cr;

	world_init(&w, "alice");
	tok_new(&tb, "b");
	ASSERT_INT_EQ(vault_user_create(w.v, "bob", (const uint8_t *)PASS, strlen(PASS), &tb.s,
	    time(NULL), rec, sizeof(rec)), 0);
	ASSERT_INT_EQ(login(w.v, "alice", &w.tok, PASS, &ka), 0);
	ASSERT_INT_EQ(login(w.v, "bob", &tb, PASS, &kb), 0);
	a = vault_keys_user_id(ka);
	b = vault_keys_user_id(kb);
	/* alice: INBOX uid 1, 2 (same size), bob: INBOX uid 1 */
	ASSERT_INT_EQ(vault_deliver(w.v, "alice", m1, 70000, time(NULL), NULL), 0);
	ASSERT_INT_EQ(vault_deliver(w.v, "alice", m2, 70000, time(NULL), NULL), 0);
	ASSERT_INT_EQ(vault_deliver(w.v, "bob", m2, 70000, time(NULL), NULL), 0);
	{
		struct collect c;
		struct vault_txn *t = NULL;

		ASSERT_INT_EQ(list_all(w.v, ka, 1, true, &c), 0);
		ASSERT_INT_EQ(list_all(w.v, kb, 1, true, &c), 0);
		ASSERT_INT_EQ(vault_txn_begin(w.v, true, &t), 0);
		ASSERT_INT_EQ(vault_msg_set_cache(t, ka, 1, 1, (const uint8_t *)"c1", 2), 0);
		ASSERT_INT_EQ(vault_msg_set_cache(t, ka, 1, 2, (const uint8_t *)"c2", 2), 0);
		ASSERT_INT_EQ(vault_msg_set_cache(t, kb, 1, 1, (const uint8_t *)"c3", 2), 0);
		ASSERT_INT_EQ(vault_txn_commit(&t), 0);
	}
	ASSERT_INT_EQ(opens(&w, ka, 1, 1, &mr, &rr, &cr), 0);
	ASSERT_INT_EQ(mr, 0);
	ASSERT_INT_EQ(rr, 0);
	ASSERT_INT_EQ(cr, 0);
	vault_close(&w.v);

	/* 1. meta records swapped between two messages of one user */
	key_msg(k1, a, 1, 1);
	key_msg(k2, a, 1, 2);
	raw_swap(w.dir, "msg", k1, k2, 12);
	ASSERT_INT_EQ(world_open(&w), 0);
	ASSERT_INT_EQ(opens(&w, ka, 1, 1, &mr, &rr, &cr), 0);
	ASSERT_INT_EQ(mr, VAULT_ERR_TAMPER);
	ASSERT_INT_EQ(rr, VAULT_ERR_TAMPER);
	ASSERT_INT_EQ(cr, VAULT_ERR_TAMPER);
	ASSERT_INT_EQ(list_r(&w, ka, 1), VAULT_ERR_TAMPER);
	ASSERT_INT_EQ(vault_verify(w.v, NULL, NULL), 0);	/* hashes were fixed up */
	vault_close(&w.v);
	raw_swap(w.dir, "msg", k1, k2, 12);	/* restore */

	/* 2. meta records swapped between users */
	key_msg(k2, b, 1, 1);
	raw_swap(w.dir, "msg", k1, k2, 12);
	ASSERT_INT_EQ(world_open(&w), 0);
	ASSERT_INT_EQ(opens(&w, ka, 1, 1, &mr, &rr, &cr), 0);
	ASSERT_INT_EQ(mr, VAULT_ERR_TAMPER);
	ASSERT_INT_EQ(rr, VAULT_ERR_TAMPER);
	ASSERT_INT_EQ(opens(&w, kb, 1, 1, &mr, &rr, &cr), 0);
	ASSERT_INT_EQ(mr, VAULT_ERR_TAMPER);
	ASSERT_INT_EQ(rr, VAULT_ERR_TAMPER);
	vault_close(&w.v);
	raw_swap(w.dir, "msg", k1, k2, 12);

	/* 3. body chunk swapped within a user and between users */
	key_chunk(k1, a, 1, 1, 0);
	key_chunk(k2, a, 1, 2, 0);
	raw_swap(w.dir, "chunk", k1, k2, 16);
	ASSERT_INT_EQ(world_open(&w), 0);
	ASSERT_INT_EQ(opens(&w, ka, 1, 1, &mr, &rr, &cr), 0);
	ASSERT_INT_EQ(mr, 0);
	ASSERT_INT_EQ(rr, VAULT_ERR_TAMPER);
	ASSERT_INT_EQ(opens(&w, ka, 1, 2, &mr, &rr, &cr), 0);
	ASSERT_INT_EQ(rr, VAULT_ERR_TAMPER);
	vault_close(&w.v);
	raw_swap(w.dir, "chunk", k1, k2, 16);
	key_chunk(k2, b, 1, 1, 0);
	raw_swap(w.dir, "chunk", k1, k2, 16);
	ASSERT_INT_EQ(world_open(&w), 0);
	ASSERT_INT_EQ(opens(&w, ka, 1, 1, &mr, &rr, &cr), 0);
	ASSERT_INT_EQ(rr, VAULT_ERR_TAMPER);
	ASSERT_INT_EQ(opens(&w, kb, 1, 1, &mr, &rr, &cr), 0);
	ASSERT_INT_EQ(rr, VAULT_ERR_TAMPER);
	vault_close(&w.v);
	raw_swap(w.dir, "chunk", k1, k2, 16);
	/* chunks 0 and 1 of one message swapped (reordering) */
	key_chunk(k2, a, 1, 1, 1);
	raw_swap(w.dir, "chunk", k1, k2, 16);
	ASSERT_INT_EQ(world_open(&w), 0);
	ASSERT_INT_EQ(opens(&w, ka, 1, 1, &mr, &rr, &cr), 0);
	ASSERT_INT_EQ(rr, VAULT_ERR_TAMPER);
	vault_close(&w.v);
	raw_swap(w.dir, "chunk", k1, k2, 16);

	/* 4. cache swapped */
	key_msg(k1, a, 1, 1);
	key_msg(k2, a, 1, 2);
	raw_swap(w.dir, "cache", k1, k2, 12);
	ASSERT_INT_EQ(world_open(&w), 0);
	ASSERT_INT_EQ(opens(&w, ka, 1, 1, &mr, &rr, &cr), 0);
	ASSERT_INT_EQ(mr, 0);
	ASSERT_INT_EQ(cr, VAULT_ERR_TAMPER);
	vault_close(&w.v);
	raw_swap(w.dir, "cache", k1, k2, 12);
	key_msg(k2, b, 1, 1);
	raw_swap(w.dir, "cache", k1, k2, 12);
	ASSERT_INT_EQ(world_open(&w), 0);
	ASSERT_INT_EQ(opens(&w, kb, 1, 1, &mr, &rr, &cr), 0);
	ASSERT_INT_EQ(cr, VAULT_ERR_TAMPER);
	vault_close(&w.v);
	raw_swap(w.dir, "cache", k1, k2, 12);

	/* 5. only the DK wrap moved from message 2 into message 1's record */
	{
		struct raw r;
		struct msg_rec r1, r2;
		uint8_t *v1, *v2, *nv;
		size_t l1, l2;

		key_msg(k1, a, 1, 1);
		key_msg(k2, a, 1, 2);
		raw_open(&r, w.dir);
		v1 = raw_get(&r, "msg", k1, 12, &l1);
		v2 = raw_get(&r, "msg", k2, 12, &l2);
		ASSERT_INT_EQ(msg_rec_parse(v1 + 1, l1 - VAULT_REC_OVERHEAD, &r1), 0);
		ASSERT_INT_EQ(msg_rec_parse(v2 + 1, l2 - VAULT_REC_OVERHEAD, &r2), 0);
		ASSERT_INT_EQ(r1.dkwrap_len, r2.dkwrap_len);
		nv = malloc(l1);
		memcpy(nv, v1, l1);
		/* the wrap sits right after the stream header and its length byte */
		{
			size_t off = (size_t)(memmem(v1, l1, r1.dkwrap, r1.dkwrap_len) == NULL ? 0 :
			    (const uint8_t *)memmem(v1, l1, r1.dkwrap, r1.dkwrap_len) - v1);

			ASSERT_TRUE(off > 0);
			memcpy(nv + off, r2.dkwrap, r2.dkwrap_len);
		}
		raw_put_fixed(&r, "msg", k1, 12, nv, l1);
		raw_close(&r);
		ASSERT_INT_EQ(world_open(&w), 0);
		ASSERT_INT_EQ(opens(&w, ka, 1, 1, &mr, &rr, &cr), 0);
		ASSERT_INT_EQ(mr, VAULT_ERR_TAMPER);
		ASSERT_INT_EQ(rr, VAULT_ERR_TAMPER);
		ASSERT_INT_EQ(cr, VAULT_ERR_TAMPER);
		vault_close(&w.v);
		raw_open(&r, w.dir);
		raw_put_fixed(&r, "msg", k1, 12, v1, l1);
		raw_close(&r);
		free(v1);
		free(v2);
		free(nv);
	}

	/* 6. mailbox records swapped between users */
	key_mbox(k1, a, 1);
	key_mbox(k2, b, 1);
	raw_swap(w.dir, "mbox", k1, k2, 8);
	ASSERT_INT_EQ(world_open(&w), 0);
	{
		struct vault_txn *t = NULL;
		struct vault_mailbox mb;

		ASSERT_INT_EQ(vault_txn_begin(w.v, false, &t), 0);
		ASSERT_INT_EQ(vault_mailbox_get(t, ka, 1, &mb), VAULT_ERR_TAMPER);
		ASSERT_INT_EQ(vault_mailbox_get(t, kb, 1, &mb), VAULT_ERR_TAMPER);
		vault_txn_abort(&t);
	}
	vault_close(&w.v);
	raw_swap(w.dir, "mbox", k1, k2, 8);

	/* everything restored opens again */
	ASSERT_INT_EQ(world_open(&w), 0);
	ASSERT_INT_EQ(opens(&w, ka, 1, 1, &mr, &rr, &cr), 0);
	ASSERT_INT_EQ(mr, 0);
	ASSERT_INT_EQ(rr, 0);
	ASSERT_INT_EQ(cr, 0);
	ASSERT_INT_EQ(vault_verify(w.v, NULL, NULL), 0);
	vault_close(&w.v);

	/* 7. a flipped byte without fixing the hash: verify names the record */
	key_chunk(k1, a, 1, 2, 0);
	raw_flip(w.dir, "chunk", k1, 16, 1000);
	key_msg(k2, b, 1, 1);
	raw_flip(w.dir, "msg", k2, 12, 20);
	ASSERT_INT_EQ(world_open(&w), 0);
	{
		struct reports rp;

		memset(&rp, 0, sizeof(rp));
		ASSERT_INT_EQ(vault_verify(w.v, report_cb, &rp), 2);
		ASSERT_TRUE(strncmp(rp.last[0], "msg/", 4) == 0 || strncmp(rp.last[1], "msg/", 4) == 0);
		ASSERT_TRUE(strncmp(rp.last[0], "chunk/", 6) == 0 ||
		    strncmp(rp.last[1], "chunk/", 6) == 0);
		ASSERT_TRUE(strstr(rp.last[0], "hash mismatch") != NULL);
	}
	ASSERT_INT_EQ(opens(&w, kb, 1, 1, &mr, &rr, &cr), 0);
	ASSERT_INT_EQ(mr, VAULT_ERR_CORRUPT);
	ASSERT_INT_EQ(opens(&w, ka, 1, 2, &mr, &rr, &cr), 0);
	ASSERT_INT_EQ(mr, 0);
	ASSERT_INT_EQ(rr, VAULT_ERR_TAMPER);	/* chunks: the AEAD tag is the check */

	vault_keys_free(&ka);
	vault_keys_free(&kb);
	tok_free(&tb);
	free(m1);
	free(m2);
	world_free(&w);
}


/* ---- map full -------------------------------------------------------------------------- */
TEST(map_full)
{
	struct world w;
	struct vault_keys *k = NULL;
	struct vault_stats st;
	struct collect c;
	uint8_t *m = pattern(20 * 1024, 9);
	int delivered = 0, r = 0;

	memset(&w, 0, sizeof(w));
	w.dir = mktmp();
	test_cfg(&w.cfg, w.dir);
	w.cfg.map_size = 256 * 1024;
	w.cfg.map_max = 2 * 1024 * 1024;
	ASSERT_INT_EQ(world_open(&w), 0);
	tok_new(&w.tok, "t");
	ASSERT_INT_EQ(vault_user_create(w.v, "alice", (const uint8_t *)PASS, strlen(PASS), &w.tok.s,
	    time(NULL), w.recovery, sizeof(w.recovery)), 0);
	for (int i = 0; i < 1000; i++) {
		if ((r = vault_deliver(w.v, "alice", m, 20 * 1024, time(NULL), NULL)) != 0)
			break;
		delivered++;
	}
	ASSERT_INT_EQ(r, VAULT_ERR_FULL);
	ASSERT_TRUE(delivered > 10);
	ASSERT_INT_EQ(vault_stats(w.v, &st), 0);
	ASSERT_INT_EQ(st.map_size, w.cfg.map_max);
	ASSERT_INT_EQ(st.messages, delivered);
	/* still full: the next one fails the same way, nothing is lost */
	ASSERT_INT_EQ(vault_deliver(w.v, "alice", m, 20 * 1024, time(NULL), NULL), VAULT_ERR_FULL);
	/* reopen from disk: everything committed is there and opens (read txn only:
	 * a full map cannot take the adoption writes) */
	vault_close(&w.v);
	ASSERT_INT_EQ(world_open(&w), 0);
	ASSERT_INT_EQ(vault_verify(w.v, NULL, NULL), 0);
	/* login's counter update may not fit either: raise the cap like an admin would */
	w.v->cfg.map_max = 4 * 1024 * 1024;
	ASSERT_INT_EQ(login(w.v, "alice", &w.tok, PASS, &k), 0);
	ASSERT_INT_EQ(list_all(w.v, k, VAULT_INBOX_ID, false, &c), 0);
	ASSERT_INT_EQ(c.n, delivered);
	for (size_t i = 0; i < c.n; i++) {
		struct sbuf *b = NULL;

		ASSERT_INT_EQ(read_msg(w.v, k, VAULT_INBOX_ID, c.uids[i], 0, UINT64_MAX, &b), 0);
		ASSERT_INT_EQ(b->len, 20 * 1024);
		ASSERT_MEM_EQ(b->d, m, 20 * 1024);
		sbuf_free(&b);
	}
	vault_keys_free(&k);
	free(m);
	world_free(&w);
}

/* ---- backup ------------------------------------------------------------------------------ */
static int count_reports;
static char first_report[300];
static void count_cb(const char *what, void *arg)
{
	(void)arg;
	if (count_reports++ == 0)
		snprintf(first_report, sizeof(first_report), "%s", what);
}

TEST(backup_and_verify)
{
	struct world w;
	char bk[512], bk2[512], path[600];
	uint8_t *m = pattern(150000, 5);
	uint8_t key[16];

	world_init(&w, "alice");
	for (int i = 0; i < 3; i++)
		ASSERT_INT_EQ(vault_deliver(w.v, "alice", m, 150000, time(NULL), NULL), 0);
	snprintf(bk, sizeof(bk), "%s/backup1", w.dir);
	snprintf(bk2, sizeof(bk2), "%s/backup2", w.dir);
	ASSERT_INT_EQ(vault_backup(w.v, bk), 0);
	ASSERT_INT_EQ(vault_backup(w.v, bk), -EEXIST);
	count_reports = 0;
	ASSERT_INT_EQ(vault_verify_backup(bk, count_cb, NULL), 0);
	ASSERT_INT_EQ(count_reports, 0);
	ASSERT_INT_EQ(vault_backup(w.v, bk2), 0);

	/* a record changed through LMDB with its own hash fixed: the manifest catches it */
	{
		struct raw r;
		uint8_t *v;
		size_t l;

		key_chunk(key, 1, 1, 2, 1);
		raw_open(&r, bk);
		v = raw_get(&r, "chunk", key, 16, &l);
		ASSERT_TRUE(v != NULL);
		v[100] ^= 1;
		raw_put_fixed(&r, "chunk", key, 16, v, l);
		free(v);
		raw_close(&r);
	}
	count_reports = 0;
	ASSERT_INT_EQ(vault_verify_backup(bk, count_cb, NULL), 1);
	ASSERT_TRUE(strstr(first_report, "differs from the manifest") != NULL);
	ASSERT_TRUE(strncmp(first_report, "chunk/", 6) == 0);
	/* a deleted and an extra record */
	{
		struct raw r;
		MDB_val k = { 16, key };
		uint8_t extra[16], val[40] = { 1 };

		raw_open(&r, bk);
		ASSERT_INT_EQ(mdb_del(r.txn, raw_dbi(&r, "chunk"), &k, NULL), 0);
		key_chunk(extra, 1, 1, 9, 0);
		raw_put_fixed(&r, "chunk", extra, 16, val, sizeof(val));
		raw_close(&r);
	}
	count_reports = 0;
	ASSERT_INT_EQ(vault_verify_backup(bk, count_cb, NULL), 2);

	/* raw byte flipped inside data.mdb (a chunk's ciphertext) */
	{
		struct raw r;
		uint8_t *v, hash[32];
		size_t l;
		int fd;
		struct stat st;
		uint8_t *map, *at;

		key_chunk(key, 1, 1, 1, 0);
		snprintf(path, sizeof(path), "%s/data.mdb", bk2);
		raw_open(&r, bk2);
		v = raw_get(&r, "chunk", key, 16, &l);
		ASSERT_TRUE(v != NULL);
		memcpy(hash, v + l - 32, 32);
		free(v);
		mdb_txn_abort(r.txn);
		mdb_env_close(r.env);
		fd = open(path, O_RDWR);
		ASSERT_TRUE(fd >= 0);
		fstat(fd, &st);
		map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		ASSERT_TRUE(map != MAP_FAILED);
		at = memmem(map, (size_t)st.st_size, hash, 32);
		ASSERT_TRUE(at != NULL);
		at[-500] ^= 0x10;
		munmap(map, (size_t)st.st_size);
		close(fd);
	}
	count_reports = 0;
	ASSERT_INT_EQ(vault_verify_backup(bk2, count_cb, NULL), 1);
	ASSERT_TRUE(strstr(first_report, "record hash mismatch") != NULL);

	/* the manifest edited */
	{
		FILE *f;
		char buf[65536];
		size_t n;
		char *p;

		snprintf(path, sizeof(path), "%s/MANIFEST", bk2);
		f = fopen(path, "r+");
		ASSERT_TRUE(f != NULL);
		n = fread(buf, 1, sizeof(buf) - 1, f);
		buf[n] = '\0';
		p = strstr(buf, "\nnames ");
		ASSERT_TRUE(p != NULL);
		p[8] = p[8] == '0' ? '1' : '0';	/* a key hex digit */
		fseek(f, 0, SEEK_SET);
		fwrite(buf, 1, n, f);
		fclose(f);
	}
	count_reports = 0;
	ASSERT_TRUE(vault_verify_backup(bk2, count_cb, NULL) >= 3);
	ASSERT_INT_EQ(vault_verify_backup("/nonexistent", NULL, NULL), -ENOENT);
	free(m);
	world_free(&w);
}

/* vault_write: a txn that fills the map in the middle is aborted, the map grown and
 * the txn run again from the start until it commits; an error from fn is not
 * replayed and leaves nothing behind. */
struct fill_arg {
	int calls, n;
	size_t len;
	int ret;
};

static int fill_fn(struct vault_txn *t, void *arg)
{
	struct fill_arg *f = arg;
	uint8_t val[1024];
	char key[16];
	int r;

	f->calls++;
	memset(val, 0x5a, sizeof(val));
	for (int i = 0; i < f->n; i++) {
		snprintf(key, sizeof(key), "fill%05d", i);
		if ((r = store_put(t, VDB_META, key, strlen(key), val, f->len)) < 0)
			return r;
	}
	return f->ret;
}

TEST(vault_write_replays_map_full)
{
	char *dir = mktmp();
	struct vault_config c;
	struct vault_stats s0, s1;
	struct vault *v = NULL;
	struct vault_txn *t = NULL;
	struct fill_arg bad = { 0, 10, 1024, -EINVAL }, f = { 0, 3000, 1024, 0 };
	const uint8_t *p;
	size_t n;

	test_cfg(&c, dir);
	c.map_size = 1 << 20;		/* 3 MB of records cannot fit: MAP_FULL mid-txn */
	c.map_max = 64 << 20;
	c.durable = false;
	ASSERT_INT_EQ(vault_open(&c, &v), 0);
	ASSERT_INT_EQ(vault_stats(v, &s0), 0);
	ASSERT_INT_EQ(vault_write(v, fill_fn, &bad), -EINVAL);
	ASSERT_INT_EQ(bad.calls, 1);
	ASSERT_INT_EQ(vault_txn_begin(v, false, &t), 0);
	ASSERT_INT_EQ(store_get(t, VDB_META, "fill00000", 9, true, &p, &n), -ENOENT);
	vault_txn_abort(&t);
	ASSERT_INT_EQ(vault_write(v, fill_fn, &f), 0);
	ASSERT_TRUE(f.calls >= 2);		/* it was replayed */
	ASSERT_INT_EQ(vault_stats(v, &s1), 0);
	ASSERT_TRUE(s1.map_size > s0.map_size);
	ASSERT_INT_EQ(vault_txn_begin(v, false, &t), 0);
	ASSERT_INT_EQ(store_get(t, VDB_META, "fill00000", 9, true, &p, &n), 0);
	ASSERT_INT_EQ(n, 1024);
	ASSERT_INT_EQ(store_get(t, VDB_META, "fill02999", 9, true, &p, &n), 0);
	vault_txn_abort(&t);
	vault_close(&v);
	rmrf(dir);
	free(dir);
}

TEST(init_dir)
{
	char *dir = mktmp(), sub[512], path[600], err[256];
	struct vault_config c;
	struct vault *v = NULL;
	struct stat st;

	snprintf(sub, sizeof(sub), "%s/store", dir);
	ASSERT_INT_EQ(vault_init_dir(sub, err, sizeof(err)), 0);
	ASSERT_INT_EQ(stat(sub, &st), 0);
	ASSERT_INT_EQ(st.st_mode & 0777, 0700);
	snprintf(path, sizeof(path), "%s/sealmail.conf", sub);
	ASSERT_INT_EQ(vault_config_load(path, &c, err, sizeof(err)), 0);
	ASSERT_TRUE(strstr(c.data_dir, "/store") != NULL);
	ASSERT_TRUE(strstr(c.tls_cert, "/tls/cert.pem") != NULL);
	ASSERT_TRUE(strstr(c.tls_key, "/tls/key.pem") != NULL);
	ASSERT_INT_EQ(stat(c.tls_cert, &st), 0);
	ASSERT_INT_EQ(stat(c.tls_key, &st), 0);
	snprintf(path, sizeof(path), "%s/data.mdb", sub);
	ASSERT_INT_EQ(stat(path, &st), 0);
	ASSERT_INT_EQ(vault_open(&c, &v), 0);
	vault_close(&v);
	ASSERT_INT_EQ(vault_init_dir(sub, err, sizeof(err)), -EEXIST);
	ASSERT_TRUE(strstr(err, "already") != NULL);
	rmrf(dir);
	free(dir);
}

/* ---- figures (printed, not asserted) --------------------------------------------------- */
static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of this process: meaningful even when the shared machine is busy. */
static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

TEST(timing_print)
{
	struct world w;
	struct vault_keys *k = NULL;
	struct stat st;
	char path[600];
	uint8_t *m = pattern(20 * 1024, 1);
	double t0, t1, c0, c1;
	int n = 1000;

	memset(&w, 0, sizeof(w));
	w.dir = mktmp();
	vault_config_defaults(&w.cfg);		/* default Argon2id params */
	snprintf(w.cfg.data_dir, sizeof(w.cfg.data_dir), "%s", w.dir);
	ASSERT_INT_EQ(world_open(&w), 0);
	tok_new(&w.tok, "t");
	ASSERT_INT_EQ(vault_user_create(w.v, "alice", (const uint8_t *)PASS, strlen(PASS), &w.tok.s,
	    time(NULL), w.recovery, sizeof(w.recovery)), 0);
	t0 = now_s();
	c0 = cpu_s();
	ASSERT_INT_EQ(login(w.v, "alice", &w.tok, PASS, &k), 0);
	t1 = now_s();
	c1 = cpu_s();
	printf("# login derive+unlock (Argon2id %u KiB, t=%u, x2): %.1f ms wall, %.1f ms CPU\n",
	    w.cfg.argon2_memory, w.cfg.argon2_passes, (t1 - t0) * 1e3, (c1 - c0) * 1e3);
	t0 = now_s();
	c0 = cpu_s();
	for (int i = 0; i < n; i++)
		ASSERT_INT_EQ(vault_deliver(w.v, "alice", m, 20 * 1024, time(NULL), NULL), 0);
	t1 = now_s();
	c1 = cpu_s();
	printf("# delivery, 20 KiB, one durable commit each: %.0f messages/s wall "
	    "(%.0f us CPU each)\n", n / (t1 - t0), (c1 - c0) * 1e6 / n);
	snprintf(path, sizeof(path), "%s/data.mdb", w.dir);
	{
		struct vault_stats vs;

		ASSERT_INT_EQ(vault_stats(w.v, &vs), 0);
		ASSERT_INT_EQ(stat(path, &st), 0);
		printf("# data.mdb after %d deliveries: %lld bytes file, %llu used: %.0f bytes/message\n",
		    n, (long long)st.st_size, (unsigned long long)vs.map_used,
		    (double)vs.map_used / n);
	}
	{
		struct collect *c = malloc(sizeof(*c));

		t0 = now_s();
		c0 = cpu_s();
		ASSERT_INT_EQ(list_all(w.v, k, VAULT_INBOX_ID, true, c), 0);
		t1 = now_s();
		c1 = cpu_s();
		printf("# first list of %zu delivered messages (adoption: X25519 unwrap + re-wrap "
		    "each, one durable commit): %.1f ms wall, %.1f ms CPU\n", c->n, (t1 - t0) * 1e3,
		    (c1 - c0) * 1e3);
		t0 = now_s();
		c0 = cpu_s();
		ASSERT_INT_EQ(list_all(w.v, k, VAULT_INBOX_ID, false, c), 0);
		t1 = now_s();
		c1 = cpu_s();
		printf("# later list of %zu messages (symmetric): %.1f ms wall, %.1f ms CPU\n", c->n,
		    (t1 - t0) * 1e3, (c1 - c0) * 1e3);
		free(c);
	}
	vault_keys_free(&k);
	free(m);
	world_free(&w);
}

__attribute__((constructor)) static void init_crypto(void)
{
	if (crypto_init() != 0)
		exit(2);
}
