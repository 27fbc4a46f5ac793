/* bench_rotate: the key-lifecycle figures.
 *
 *   bench_rotate [USERS [MESSAGES]]      defaults 10000 and 100000
 *
 * 1. Rotation: USERS users, then one keymgr rotation pass (keymgr_rotation_pass, what
 *    `sealmail-keymgr daemon --once` runs) with every user due, durable commits.
 *    A real user costs one Argon2id (>= 19 MiB, 57 ms CPU here), so 10,000 of them
 *    would take most of the benchmark: SEED_USERS users are created through
 *    vault_user_create, the rest are copies of the first one's records under new ids
 *    and names, each with its own fresh identity key pair (rotation seals to it).
 *    A pass touches exactly what it touches for a real user (name, user, counters,
 *    epoch and token records); only the unopenable identity secret differs.
 * 2. Re-wrap: one user with MESSAGES adopted messages (delivered with durable = no
 *    to save time), rotated; then the session's background re-wrap
 *    (vault_rewrap_tick, 200 per call as the session does, durable) to completion,
 *    with the slowest call: that is how long a command can wait behind it.
 * Wall and CPU time are printed; the machine may be shared. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include "keymgr.h"
#include "log.h"
#include "vault.h"
#include "vault-private.h"

#define PASS "correct horse battery staple"
#define SEED_USERS 4

static double wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what, int r)
{
	fprintf(stderr, "bench_rotate: %s: %s\n", what, vault_strerror(r));
	exit(1);
}

static void cfg_init(struct vault_config *c, const char *dir, bool durable)
{
	vault_config_defaults(c);
	snprintf(c->data_dir, sizeof(c->data_dir), "%s", dir);
	c->argon2_memory = CRYPTO_PWHASH_MIN_MEM_KIB;
	c->argon2_passes = CRYPTO_PWHASH_MIN_PASSES;
	c->map_size = UINT64_C(256) << 20;
	c->durable = durable;
}

/* Copies user 1's records to user u named name, with a fresh identity key pair. */
struct clone_ctx { uint32_t first, count; };

static int clone_txn(struct vault_txn *t, void *arg)
{
	struct clone_ctx *c = arg;
	struct user_rec ur;
	struct counters_rec cr;
	struct epoch_rec er;
	struct token_rec tr;
	uint8_t k[12], idb[4];
	int r;

	if ((r = user_rec_get(t, 1, &ur)) < 0 || (r = counters_get(t, 1, &cr)) < 0 ||
	    (r = epoch_rec_get(t, 1, ur.current_epoch, &er)) < 0 ||
	    (r = token_rec_get(t, 1, 0, &tr)) < 0)
		return r;
	for (uint32_t u = c->first; u < c->first + c->count; u++) {
		struct secret *sk = NULL;
		char name[64];
		const uint8_t *p;
		size_t n;

		snprintf(name, sizeof(name), "clone%06u", u);
		snprintf(ur.name, sizeof(ur.name), "%s", name);
		if ((r = crypto_x25519_keypair(ur.id_pk, &sk)) < 0)
			return r;
		secret_free(&sk);
		be32_put(idb, u);
		if ((r = store_put(t, VDB_NAMES, name, strlen(name), idb, 4)) < 0 ||
		    (r = user_rec_put(t, u, &ur)) < 0 || (r = counters_put(t, u, &cr)) < 0 ||
		    (r = token_rec_put(t, u, &tr)) < 0)
			return r;
		/* epoch record: same layout as user.c's epoch_rec_put */
		if ((r = store_get(t, VDB_USERS, k, key_epoch(k, 1, ur.current_epoch), true, &p,
		    &n)) < 0)
			return r;
		{
			uint8_t buf[256];

			memcpy(buf, p, n);
			if ((r = store_put(t, VDB_USERS, k, key_epoch(k, u, ur.current_epoch), buf,
			    n)) < 0)
				return r;
		}
	}
	be32_put(idb, c->first + c->count);
	return store_put(t, VDB_META, "next_user_id", 12, idb, 4);
}

static void bench_rotation(const char *dir, uint32_t nusers)
{
	struct vault_config cfg;
	struct vault *v = NULL;
	struct keymgr_pass_stats st;
	char rec[128], name[32];
	time_t t0 = time(NULL);
	double w0, c0, w1, c1;
	int r;

	cfg_init(&cfg, dir, false);
	if ((r = vault_open(&cfg, &v)) < 0)
		die("open", r);
	w0 = wall();
	{
		struct vault_token_secret tok;

		memset(&tok, 0, sizeof(tok));
		if (secret_new_random(CRYPTO_OTP_AES_BYTES, &tok.aes_key) < 0 ||
		    secret_new_random(CRYPTO_OTP_UID_BYTES, &tok.uid) < 0)
			die("token", -ENOMEM);
		crypto_random(tok.public_id, sizeof(tok.public_id));
		for (uint32_t i = 0; i < SEED_USERS && i < nusers; i++) {
			snprintf(name, sizeof(name), "user%06u", i + 1);
			tok.public_id[0] = (uint8_t)(i + 1);
			if ((r = vault_user_create(v, name, (const uint8_t *)PASS, strlen(PASS), &tok,
			    t0, rec, sizeof(rec))) < 0)
				die("user create", r);
		}
		secret_free(&tok.aes_key);
		secret_free(&tok.uid);
	}
	printf("rotation: %u users created through vault_user_create in %.2f s wall "
	    "(two Argon2id each)\n", nusers < SEED_USERS ? nusers : SEED_USERS, wall() - w0);
	for (uint32_t u = SEED_USERS + 1; u <= nusers; u += 1000) {
		struct clone_ctx c = { u, nusers + 1 - u < 1000 ? nusers + 1 - u : 1000 };

		if ((r = vault_write(v, clone_txn, &c)) < 0)
			die("clone", r);
	}
	vault_close(&v);
	/* The measured pass: durable, as in production. */
	cfg_init(&cfg, dir, true);
	cfg.rotation_period = 90 * 86400;
	if ((r = vault_open(&cfg, &v)) < 0)
		die("open", r);
	w0 = wall();
	c0 = cpu();
	if ((r = keymgr_rotation_pass(v, &cfg, t0 + 91 * 86400, &st)) < 0)
		die("pass", r);
	w1 = wall();
	c1 = cpu();
	printf("rotation: one daemon pass over %u users: %u rotated, %u epochs retired, "
	    "%u failed\n", st.users, st.rotated, st.retired, st.failed);
	printf("rotation: %.2f s wall (%.2f s CPU), %.3f ms per user (durable: one fsync'd "
	    "txn per 128 users)\n", w1 - w0, c1 - c0, (w1 - w0) * 1000 / (st.users ? st.users : 1));
	w0 = wall();
	c0 = cpu();
	if ((r = keymgr_rotation_pass(v, &cfg, t0 + 92 * 86400, &st)) < 0)
		die("pass", r);
	printf("rotation: next pass, nobody due: %.2f s wall (%.2f s CPU), %u rotated\n",
	    wall() - w0, cpu() - c0, st.rotated);
	vault_close(&v);
}

static int bench_put(struct vault_txn *t, void *arg)
{
	(void)arg;
	return store_put(t, VDB_META, "bench", 5, "x", 1);
}

static int dcmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int count_cb(const struct vault_msg_meta *m, void *arg)
{
	(void)m;
	(*(uint64_t *)arg)++;
	return 0;
}

static void bench_rewrap(const char *dir, uint32_t nmsg)
{
	struct vault_config cfg;
	struct vault *v = NULL;
	struct vault_keys *k = NULL;
	struct vault_txn *t = NULL;
	char rec[128], msg[2048];
	time_t t0 = time(NULL);
	uint64_t listed = 0, total = 0;
	double w0, c0, worst = 0;
	unsigned done, calls = 0, worst_at = 0;
	static double lat[100000];
	size_t n;
	int r;

	cfg_init(&cfg, dir, false);
	if ((r = vault_open(&cfg, &v)) < 0)
		die("open", r);
	if ((r = vault_user_create(v, "alice", (const uint8_t *)PASS, strlen(PASS), NULL, t0, rec,
	    sizeof(rec))) < 0 || (r = vault_unlock_recovery(v, "alice", rec, &k)) < 0)
		die("user", r);
	w0 = wall();
	for (uint32_t i = 0; i < nmsg; i++) {
		n = (size_t)snprintf(msg, sizeof(msg), "Subject: %u\r\n\r\n%0*u\r\n", i,
		    (int)(200 + i % 1500), i);
		if ((r = vault_deliver(v, "alice", (const uint8_t *)msg, n, t0, NULL)) < 0)
			die("deliver", r);
	}
	printf("rewrap: %u messages delivered in %.1f s (durable = no for the setup)\n", nmsg,
	    wall() - w0);
	/* A session adopts them (symmetric wraps under epoch 1), in slices of 5000. */
	for (uint32_t from = 1; from <= nmsg; from += 5000) {
		struct vault_txn *tt = NULL;
		uint64_t c = 0;

		if ((r = vault_txn_begin(v, true, &tt)) < 0)
			die("txn", r);
		if ((r = vault_msg_list(tt, k, VAULT_INBOX_ID, from, count_cb, &c)) < 0)
			die("adopt", r);
		if ((r = vault_txn_commit(&tt)) < 0)
			die("commit", r);
		(void)listed;
	}
	if ((r = vault_rotate(v, "alice", t0 + 1, true)) < 0)
		die("rotate", r);
	vault_keys_free(&k);
	vault_close(&v);
	cfg_init(&cfg, dir, true);
	if ((r = vault_open(&cfg, &v)) < 0 || (r = vault_unlock_recovery(v, "alice", rec, &k)) < 0)
		die("reopen", r);
	{
		/* The first write after opening pays LMDB's cold start (free list, page
		 * cache): time one unrelated tiny write so it is not billed to the re-wrap. */
		double b = wall();

		if ((r = vault_write(v, bench_put, NULL)) < 0)
			die("warm-up write", r);
		printf("rewrap: first write txn after opening the store (unrelated, one tiny "
		    "record): %.1f ms\n", (wall() - b) * 1000);
	}
	w0 = wall();
	c0 = cpu();
	do {
		double b = wall();

		if ((r = vault_rewrap_tick(v, k, 200, &done)) < 0)
			die("rewrap", r);
		b = wall() - b;
		if (calls < sizeof(lat) / sizeof(lat[0]))
			lat[calls] = b;
		if (b > worst) {
			worst = b;
			worst_at = calls;
		}
		total += done;
		calls++;
	} while (r > 0);
	printf("rewrap: %" PRIu64 " data keys re-wrapped in %.2f s wall (%.2f s CPU): %u calls "
	    "of <= 200 (durable), %.1f us per message, slowest call %.1f ms (call %u)\n",
	    total, wall() - w0, cpu() - c0, calls,
	    (wall() - w0) * 1e6 / (double)(total ? total : 1), worst * 1000, worst_at + 1);
	{
		unsigned m = calls < sizeof(lat) / sizeof(lat[0]) ? calls : sizeof(lat) / sizeof(lat[0]);

		if (m > 1)
			printf("rewrap: first call %.1f ms, last call %.1f ms (ends the "
			    "pass: exact reference count, epoch 1 retired)\n", lat[0] * 1000,
			    lat[m - 1] * 1000);
		qsort(lat, m, sizeof(lat[0]), dcmp);
		if (m > 0)
			printf("rewrap: per call: median %.1f ms, 99th percentile %.1f ms\n",
			    lat[m / 2] * 1000, lat[m * 99 / 100] * 1000);
	}
	if ((r = vault_txn_begin(v, false, &t)) == 0) {
		struct vault_epoch_info ep[4];
		double s0 = wall();

		r = vault_user_epochs(t, vault_keys_user_id(k), true, ep, 4, &n);
		printf("rewrap: one keyless scan of the user's %u message records (what the "
		    "retirement check costs): %.1f ms\n", nmsg, (wall() - s0) * 1000);
		if (r == 0)
			printf("rewrap: afterwards %zu live epoch(s): epoch %u holds %" PRIu64
			    " messages\n", n, ep[0].epoch, ep[0].messages);
		vault_txn_abort(&t);
	}
	vault_keys_free(&k);
	vault_close(&v);
}

int main(int argc, char **argv)
{
	uint32_t nusers = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 10000;
	uint32_t nmsg = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 100000;
	char d1[] = "/tmp/bench_rotate.XXXXXX", d2[] = "/tmp/bench_rewrap.XXXXXX", cmd[128];

	if (crypto_init() < 0 || mkdtemp(d1) == NULL || mkdtemp(d2) == NULL)
		return 1;
	log_set_level(LOG_LVL_WARN);
	if (nusers > 0)
		bench_rotation(d1, nusers);
	if (nmsg > 0)
		bench_rewrap(d2, nmsg);
	snprintf(cmd, sizeof(cmd), "rm -rf %s %s", d1, d2);
	return system(cmd) == 0 ? 0 : 1;
}
