/* bench_vault: vault figures on this machine (not a test).
 *   bench_vault [N]   N messages (default 100000) appended to one mailbox, then
 *                     SELECT-style listings; and per-delivery costs.
 * Uses durable = no for the bulk load (benchmarks only), durable = yes where said. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "vault.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int count_cb(const struct vault_msg_meta *m, void *arg)
{
	(void)m;
	(*(size_t *)arg)++;
	return 0;
}

static double cpu_last;	/* CPU seconds of the last list() */

static int list(struct vault *v, struct vault_keys *k, bool write, size_t *n, double *secs)
{
	struct vault_txn *t = NULL;
	double t0 = now_s(), c0 = cpu_s();
	int r;

	*n = 0;
	if ((r = vault_txn_begin(v, write, &t)) < 0)
		return r;
	if ((r = vault_msg_list(t, k, VAULT_INBOX_ID, 1, count_cb, n)) < 0) {
		vault_txn_abort(&t);
		return r;
	}
	r = vault_txn_commit(&t);
	*secs = now_s() - t0;
	cpu_last = cpu_s() - c0;
	return r;
}

int main(int argc, char **argv)
{
	struct vault_config c;
	struct vault *v = NULL;
	struct vault_keys *k = NULL;
	char dir[] = "/tmp/bench_vault.XXXXXX", rec[128], cmd[256];
	uint8_t *msg;
	size_t n = argc > 1 ? (size_t)atol(argv[1]) : 100000, got;
	double t0, secs;
	int r;

	if (crypto_init() != 0 || mkdtemp(dir) == NULL)
		return 1;
	vault_config_defaults(&c);
	snprintf(c.data_dir, sizeof(c.data_dir), "%s", dir);
	c.argon2_memory = CRYPTO_PWHASH_MIN_MEM_KIB;
	c.argon2_passes = CRYPTO_PWHASH_MIN_PASSES;
	c.durable = false;
	if ((r = vault_open(&c, &v)) < 0 ||
	    (r = vault_user_create(v, "bench", (const uint8_t *)"pw", 2, NULL, time(NULL), rec,
	    sizeof(rec))) < 0 || (r = vault_unlock_recovery(v, "bench", rec, &k)) < 0) {
		fprintf(stderr, "setup: %s\n", vault_strerror(r));
		return 1;
	}
	msg = malloc(20480);
	memset(msg, 'x', 20480);
	/* bulk load: APPEND in transactions of 1,000 (symmetric wraps, like adopted mail) */
	t0 = now_s();
	for (size_t i = 0; i < n;) {
		struct vault_txn *t = NULL;
		size_t start = i;

		if ((r = vault_txn_begin(v, true, &t)) < 0)
			break;
		for (size_t j = 0; j < 1000 && i < n && r == 0; j++, i++)
			r = vault_msg_append(t, k, VAULT_INBOX_ID, msg, 2048, NULL, NULL);
		if (r < 0)
			vault_txn_abort(&t);
		else
			r = vault_txn_commit(&t);
		if (r == -EAGAIN) {	/* the map grew: run the batch again */
			i = start;
			r = 0;
			continue;
		}
		if (r < 0)
			break;
	}
	if (r < 0) {
		fprintf(stderr, "load: %s\n", vault_strerror(r));
		return 1;
	}
	printf("append %zu x 2 KiB, 1,000 per txn (no sync): %.0f messages/s\n", n,
	    n / (now_s() - t0));
	if (list(v, k, true, &got, &secs) == 0)
		printf("first list in a write txn (claims \\Recent: rewrites every record): %zu in %.1f ms\n",
		    got, secs * 1e3);
	if (list(v, k, false, &got, &secs) == 0)
		printf("SELECT-style list, read txn: %zu messages in %.1f ms wall, %.1f ms CPU "
		    "(%.2f us CPU each)\n", got, secs * 1e3, cpu_last * 1e3, cpu_last * 1e6 / (double)got);
	if (list(v, k, true, &got, &secs) == 0)
		printf("SELECT-style list, write txn, nothing to adopt: %zu in %.1f ms\n", got,
		    secs * 1e3);
	/* deliveries: pk-wrapped, then adopted by a listing */
	vault_close(&v);
	c.durable = true;
	if (vault_open(&c, &v) < 0)
		return 1;
	t0 = now_s();
	for (int i = 0; i < 300; i++)
		if ((r = vault_deliver(v, "bench", msg, 20480, time(NULL), NULL)) < 0)
			break;
	printf("deliver 20 KiB, one durable commit each: %.0f messages/s\n", 300 / (now_s() - t0));
	c.durable = false;
	vault_close(&v);
	if (vault_open(&c, &v) < 0)
		return 1;
	t0 = now_s();
	for (int i = 0; i < 1000; i++)
		if ((r = vault_deliver(v, "bench", msg, 20480, time(NULL), NULL)) < 0)
			break;
	printf("deliver 20 KiB, durable = no: %.0f messages/s\n", 1000 / (now_s() - t0));
	if (list(v, k, true, &got, &secs) == 0)
		printf("list adopting 1,300 new deliveries among %zu: %.1f ms\n", got, secs * 1e3);
	vault_keys_free(&k);
	vault_close(&v);
	free(msg);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : 1;
}
