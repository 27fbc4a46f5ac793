/* lifecycle_dump: test helper for tests/test_lifecycle.py. Opens USER's keys with the
 * recovery key (read as one line on standard input: no OTP is consumed, so a test can
 * read every message as often as it likes) and writes every message of every mailbox:
 *
 *   M <mailbox id> <uid> <size>\n<size bytes>\n     ... then "END <count>\n"
 *
 * It reads in a read transaction: nothing is adopted or re-wrapped, so what the test
 * sees is what the daemon and the sessions left. Exit 0, or 1 with a message when any
 * message cannot be opened (its UID is named). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vault.h"

struct uids {
	uint32_t *v;
	size_t n, cap;
};

static int uid_cb(const struct vault_msg_meta *m, void *arg)
{
	struct uids *u = arg;

	if (u->n == u->cap) {
		size_t nc = u->cap ? u->cap * 2 : 256;
		uint32_t *nv = realloc(u->v, nc * sizeof(*nv));

		if (nv == NULL)
			return -ENOMEM;
		u->v = nv;
		u->cap = nc;
	}
	u->v[u->n++] = m->uid;
	return 0;
}

int main(int argc, char **argv)
{
	struct vault_config cfg;
	struct vault *v = NULL;
	struct vault_keys *k = NULL;
	struct vault_txn *t = NULL;
	struct vault_mailbox *mbs = NULL;
	char err[512], line[256];
	size_t nmb = 0, count = 0;
	int r, ret = 1;

	if (argc != 3) {
		fprintf(stderr, "usage: lifecycle_dump CONFIG USER < recovery-key\n");
		return 2;
	}
	if (fgets(line, sizeof(line), stdin) == NULL)
		return 2;
	line[strcspn(line, "\r\n")] = '\0';
	if (crypto_init() < 0 || vault_config_load(argv[1], &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "lifecycle_dump: config: %s\n", err);
		return 1;
	}
	if ((r = vault_open(&cfg, &v)) < 0 || (r = vault_unlock_recovery(v, argv[2], line, &k)) < 0) {
		fprintf(stderr, "lifecycle_dump: open/unlock: %s\n", vault_strerror(r));
		goto out;
	}
	if ((r = vault_txn_begin(v, false, &t)) < 0 ||
	    (r = vault_mailbox_list(t, k, &mbs, &nmb)) < 0) {
		fprintf(stderr, "lifecycle_dump: mailboxes: %s\n", vault_strerror(r));
		goto out;
	}
	for (size_t i = 0; i < nmb; i++) {
		struct uids u = { NULL, 0, 0 };

		if ((r = vault_msg_list(t, k, mbs[i].id, 1, uid_cb, &u)) < 0) {
			fprintf(stderr, "lifecycle_dump: list mailbox %" PRIu32 ": %s\n", mbs[i].id,
			    vault_strerror(r));
			free(u.v);
			goto out;
		}
		for (size_t j = 0; j < u.n; j++) {
			struct sbuf *b = NULL;

			if ((r = vault_msg_read(t, k, mbs[i].id, u.v[j], 0, UINT64_MAX, &b)) < 0) {
				fprintf(stderr, "lifecycle_dump: mailbox %" PRIu32 " uid %" PRIu32
				    ": %s\n", mbs[i].id, u.v[j], vault_strerror(r));
				free(u.v);
				goto out;
			}
			printf("M %" PRIu32 " %" PRIu32 " %zu\n", mbs[i].id, u.v[j], b->len);
			fwrite(b->d, 1, b->len, stdout);
			putchar('\n');
			sbuf_free(&b);
			count++;
		}
		free(u.v);
	}
	printf("END %zu\n", count);
	ret = 0;
out:
	free(mbs);
	vault_txn_abort(&t);
	vault_keys_free(&k);
	vault_close(&v);
	return ret;
}
