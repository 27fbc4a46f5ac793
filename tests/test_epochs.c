/* Key lifecycle in the vault: bounded background re-wrap, automatic retirement of
 * unreferenced epochs, forced retirement (expunge + crypto-shred), stale session keys.
 * Real LMDB files in a mkdtemp directory, real crypto; Argon2id at the OWASP minimum.
 * Keys are opened with the recovery key (no token needed for these tests). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "harness.h"
#include "vault.h"
#include "vault-private.h"

#define PASS "correct horse battery staple"

struct world {
	char dir[64];
	struct vault_config cfg;
	struct vault *v;
	char recovery[128];
	struct vault_keys *k;
	uint32_t u;
	time_t t0;
};

static void world_init(struct world *w, const char *user)
{
	memset(w, 0, sizeof(*w));
	snprintf(w->dir, sizeof(w->dir), "/tmp/test_epochs.XXXXXX");
	if (mkdtemp(w->dir) == NULL)
		exit(2);
	vault_config_defaults(&w->cfg);
	snprintf(w->cfg.data_dir, sizeof(w->cfg.data_dir), "%s", w->dir);
	w->cfg.argon2_memory = CRYPTO_PWHASH_MIN_MEM_KIB;
	w->cfg.argon2_passes = CRYPTO_PWHASH_MIN_PASSES;
	w->cfg.map_size = 1 << 20;
	w->t0 = time(NULL) - 100;
	if (vault_open(&w->cfg, &w->v) != 0 ||
	    vault_user_create(w->v, user, (const uint8_t *)PASS, strlen(PASS), NULL, w->t0,
	    w->recovery, sizeof(w->recovery)) != 0 ||
	    vault_unlock_recovery(w->v, user, w->recovery, &w->k) != 0) {
		fprintf(stderr, "world setup failed\n");
		exit(2);
	}
	w->u = vault_keys_user_id(w->k);
}

static void world_free(struct world *w)
{
	char cmd[128];

	vault_keys_free(&w->k);
	vault_close(&w->v);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", w->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup failed\n");
}

static size_t msg_text(uint32_t i, char *buf, size_t cap)
{
	return (size_t)snprintf(buf, cap, "Subject: message %u\r\n\r\n%0*u\r\n", i,
	    (int)(100 + i % 5000), i);
}

static int deliver(struct world *w, uint32_t i, uint32_t *uid)
{
	char buf[8192];
	size_t n = msg_text(i, buf, sizeof(buf));

	return vault_deliver(w->v, "alice", (const uint8_t *)buf, n, w->t0, uid);
}

/* 0 if message uid of INBOX reads back as msg_text(i). */
static int check_msg(struct world *w, uint32_t mbox, uint32_t uid, uint32_t i)
{
	char buf[8192];
	size_t n = msg_text(i, buf, sizeof(buf));
	struct vault_txn *t = NULL;
	struct sbuf *b = NULL;
	int r;

	if ((r = vault_txn_begin(w->v, false, &t)) < 0)
		return r;
	r = vault_msg_read(t, w->k, mbox, uid, 0, UINT64_MAX, &b);
	vault_txn_abort(&t);
	if (r == 0 && (b->len != n || memcmp(b->d, buf, n) != 0))
		r = -EBADMSG;
	sbuf_free(&b);
	return r;
}

static int rec(struct world *w, uint32_t mbox, uint32_t uid, struct msg_rec *out)
{
	struct vault_txn *t = NULL;
	int r;

	if ((r = vault_txn_begin(w->v, false, &t)) < 0)
		return r;
	r = msg_rec_get(t, w->u, mbox, uid, out);
	vault_txn_abort(&t);
	return r;
}

static size_t live_epochs(struct world *w, struct vault_epoch_info *ep, size_t max)
{
	struct vault_txn *t = NULL;
	size_t n = 0;

	if (vault_txn_begin(w->v, false, &t) < 0 ||
	    vault_user_epochs(t, w->u, true, ep, max, &n) < 0)
		n = SIZE_MAX;
	vault_txn_abort(&t);
	return n;
}

static bool epoch_record_exists(struct world *w, uint32_t e)
{
	struct vault_txn *t = NULL;
	const uint8_t *p;
	size_t n;
	uint8_t k[12];
	int r;

	if (vault_txn_begin(w->v, false, &t) < 0)
		return true;
	r = store_get(t, VDB_USERS, k, key_epoch(k, w->u, e), false, &p, &n);
	vault_txn_abort(&t);
	return r != -ENOENT;
}

static int batch(struct world *w, unsigned max, unsigned *done)
{
	struct vault_txn *t = NULL;
	int r, c;

	if ((r = vault_txn_begin(w->v, true, &t)) < 0)
		return r;
	if ((r = vault_rewrap_batch(t, w->k, max, done)) < 0) {
		vault_txn_abort(&t);
		return r;
	}
	c = vault_txn_commit(&t);
	return c < 0 ? c : r;
}

static int noop_cb(const struct vault_msg_meta *m, void *arg)
{
	uint64_t *sum = arg;

	*sum += m->size;
	return 0;
}

static int adopt_inbox(struct world *w, uint64_t *sum)
{
	struct vault_txn *t = NULL;
	int r;

	*sum = 0;
	if ((r = vault_txn_begin(w->v, true, &t)) < 0)
		return r;
	if ((r = vault_msg_list(t, w->k, VAULT_INBOX_ID, 1, noop_cb, sum)) < 0) {
		vault_txn_abort(&t);
		return r;
	}
	return vault_txn_commit(&t);
}

static uint64_t pending(struct world *w)
{
	struct vault_txn *t = NULL;
	struct vault_user_info ui;

	memset(&ui, 0, sizeof(ui));
	if (vault_txn_begin(w->v, false, &t) == 0)
		(void)vault_user_get(t, "alice", &ui);
	vault_txn_abort(&t);
	return ui.pending_rewrap;
}

TEST(rewrap_bounded_batches_then_retire)
{
	struct world w;
	struct vault_epoch_info ep[8];
	struct vault_msg_meta before[40], after;
	struct msg_rec r;
	uint32_t uid[40];
	uint64_t sum;
	unsigned done, total = 0, calls = 0;
	int rc;

	world_init(&w, "alice");
	for (uint32_t i = 0; i < 40; i++)
		ASSERT_INT_EQ(deliver(&w, i, &uid[i]), 0);
	ASSERT_INT_EQ(adopt_inbox(&w, &sum), 0);	/* symmetric wraps under epoch 1 */
	for (uint32_t i = 0; i < 40; i++) {
		struct vault_txn *t = NULL;

		ASSERT_INT_EQ(vault_txn_begin(w.v, false, &t), 0);
		ASSERT_INT_EQ(vault_msg_get_meta(t, w.k, VAULT_INBOX_ID, uid[i], &before[i]), 0);
		vault_txn_abort(&t);
	}
	/* nothing to do before a rotation */
	ASSERT_INT_EQ(batch(&w, 5, &done), 0);
	ASSERT_INT_EQ(done, 0);
	ASSERT_INT_EQ(vault_rotate(w.v, "alice", w.t0 + 91 * 86400, false), 0);
	ASSERT_INT_EQ(live_epochs(&w, ep, 8), 2);
	ASSERT_INT_EQ(ep[0].messages, 40);
	ASSERT_INT_EQ(ep[1].messages, 0);
	ASSERT_INT_EQ(pending(&w), 40);
	/* the keys still believe epoch 1 is current: the batch opens epoch 2 itself */
	do {
		rc = batch(&w, 7, &done);
		ASSERT_TRUE(rc >= 0);
		ASSERT_TRUE(done <= 7);
		total += done;
		calls++;
		ASSERT_TRUE(calls < 20);
	} while (rc == 1);
	ASSERT_INT_EQ(total, 40);
	ASSERT_INT_GE(calls, 6);
	ASSERT_INT_EQ(w.k->current_epoch, 2);
	ASSERT_INT_EQ(pending(&w), 0);
	/* epoch 1 retired in the last batch's txn: record gone, 1 live epoch */
	ASSERT_INT_EQ(live_epochs(&w, ep, 8), 1);
	ASSERT_INT_EQ(ep[0].epoch, 2);
	ASSERT_INT_EQ(ep[0].messages, 40);
	ASSERT_TRUE(!epoch_record_exists(&w, 1));
	ASSERT_TRUE(epoch_record_exists(&w, 2));
	for (uint32_t i = 0; i < 40; i++) {
		struct vault_txn *t = NULL;

		ASSERT_INT_EQ(rec(&w, VAULT_INBOX_ID, uid[i], &r), 0);
		ASSERT_INT_EQ(r.epoch, 2);
		ASSERT_INT_EQ(r.wrap, WRAP_SYM);
		ASSERT_INT_EQ(check_msg(&w, VAULT_INBOX_ID, uid[i], i), 0);
		/* nothing a client sees changed: modseq, flags, sizes */
		ASSERT_INT_EQ(vault_txn_begin(w.v, false, &t), 0);
		ASSERT_INT_EQ(vault_msg_get_meta(t, w.k, VAULT_INBOX_ID, uid[i], &after), 0);
		vault_txn_abort(&t);
		ASSERT_INT_EQ(after.modseq, before[i].modseq);
		ASSERT_INT_EQ(after.flags, before[i].flags);
		ASSERT_INT_EQ(after.size, before[i].size);
		ASSERT_MEM_EQ(after.emailid, before[i].emailid, 16);
		vault_msg_meta_clear(&after);
		vault_msg_meta_clear(&before[i]);
	}
	/* the session's copy of epoch 1's secret is wiped at the next tick */
	ASSERT_INT_EQ(w.k->nepochs, 2);
	ASSERT_INT_EQ(vault_rewrap_tick(w.v, w.k, 200, &done), 0);
	ASSERT_INT_EQ(done, 0);
	ASSERT_INT_EQ(w.k->nepochs, 1);
	ASSERT_INT_EQ(w.k->epochs[0].epoch, 2);
	ASSERT_INT_EQ(check_msg(&w, VAULT_INBOX_ID, uid[39], 39), 0);
	world_free(&w);
}

TEST(unadopted_mail_under_old_epoch)
{
	struct world w;
	struct vault_epoch_info ep[8];
	struct vault_mailbox mb;
	struct vault_txn *t = NULL;
	struct msg_rec r;
	uint32_t uid[3];
	uint64_t sum;
	unsigned done;

	world_init(&w, "alice");
	for (uint32_t i = 0; i < 3; i++)
		ASSERT_INT_EQ(deliver(&w, i, &uid[i]), 0);
	ASSERT_INT_EQ(vault_rotate(w.v, "alice", w.t0 + 1, true), 0);
	ASSERT_INT_EQ(vault_rewrap_tick(w.v, w.k, 200, &done), 0);
	ASSERT_INT_EQ(done, 3);
	/* still pk-wrapped (not adopted), now to epoch 2's public key */
	ASSERT_INT_EQ(rec(&w, VAULT_INBOX_ID, uid[0], &r), 0);
	ASSERT_INT_EQ(r.epoch, 2);
	ASSERT_INT_EQ(r.wrap, WRAP_PK);
	ASSERT_INT_EQ(live_epochs(&w, ep, 8), 1);
	ASSERT_INT_EQ(adopt_inbox(&w, &sum), 0);
	ASSERT_INT_EQ(rec(&w, VAULT_INBOX_ID, uid[0], &r), 0);
	ASSERT_INT_EQ(r.wrap, WRAP_SYM);
	ASSERT_INT_EQ(vault_txn_begin(w.v, false, &t), 0);
	ASSERT_INT_EQ(vault_mailbox_get(t, w.k, VAULT_INBOX_ID, &mb), 0);
	vault_txn_abort(&t);
	ASSERT_INT_EQ(mb.size, sum);
	for (uint32_t i = 0; i < 3; i++)
		ASSERT_INT_EQ(check_msg(&w, VAULT_INBOX_ID, uid[i], i), 0);
	world_free(&w);
}

TEST(stale_session_appends_to_current_epoch)
{
	struct world w;
	struct vault_txn *t = NULL;
	struct msg_rec r;
	char buf[8192];
	size_t n = msg_text(7, buf, sizeof(buf));
	uint32_t uid;

	world_init(&w, "alice");
	/* keymgr rotates twice while the session holds keys opened under epoch 1 */
	ASSERT_INT_EQ(vault_rotate(w.v, "alice", w.t0 + 1, true), 0);
	ASSERT_INT_EQ(vault_rotate(w.v, "alice", w.t0 + 2, true), 0);
	ASSERT_INT_EQ(w.k->current_epoch, 1);
	ASSERT_INT_EQ(vault_txn_begin(w.v, true, &t), 0);
	ASSERT_INT_EQ(vault_msg_append(t, w.k, VAULT_INBOX_ID, (const uint8_t *)buf, n, NULL,
	    &uid), 0);
	ASSERT_INT_EQ(vault_txn_commit(&t), 0);
	ASSERT_INT_EQ(rec(&w, VAULT_INBOX_ID, uid, &r), 0);
	ASSERT_INT_EQ(r.epoch, 3);
	ASSERT_INT_EQ(w.k->current_epoch, 3);
	ASSERT_INT_EQ(check_msg(&w, VAULT_INBOX_ID, uid, 7), 0);
	world_free(&w);
}

TEST(unused_epochs_retired_keyless)
{
	struct world w;
	struct vault_epoch_info ep[8];
	uint32_t ret[8], uid;
	size_t n;

	world_init(&w, "alice");
	ASSERT_INT_EQ(deliver(&w, 1, &uid), 0);		/* under epoch 1 */
	ASSERT_INT_EQ(vault_rotate(w.v, "alice", w.t0 + 1, true), 0);
	ASSERT_INT_EQ(vault_rotate(w.v, "alice", w.t0 + 2, true), 0);
	ASSERT_INT_EQ(vault_rotate(w.v, "alice", w.t0 + 3, true), 0);
	ASSERT_INT_EQ(live_epochs(&w, ep, 8), 4);
	/* epochs 2 and 3 protect nothing; epoch 1 still protects the message */
	ASSERT_INT_EQ(vault_epochs_retire_unused(w.v, "alice", ret, 8, &n), 0);
	ASSERT_INT_EQ(n, 2);
	ASSERT_INT_EQ(ret[0], 2);
	ASSERT_INT_EQ(ret[1], 3);
	ASSERT_INT_EQ(live_epochs(&w, ep, 8), 2);
	ASSERT_INT_EQ(ep[0].epoch, 1);
	ASSERT_INT_EQ(ep[1].epoch, 4);
	ASSERT_INT_EQ(pending(&w), 1);
	ASSERT_INT_EQ(vault_epochs_retire_unused(w.v, "alice", ret, 8, &n), 0);
	ASSERT_INT_EQ(n, 0);
	ASSERT_INT_EQ(check_msg(&w, VAULT_INBOX_ID, uid, 1), 0);
	ASSERT_INT_EQ(vault_epochs_retire_unused(w.v, "nobody", ret, 8, &n), VAULT_ERR_NOUSER);
	world_free(&w);
}

static int vanished_cb(uint32_t uid, void *arg)
{
	uint32_t *n = arg;

	(void)uid;
	(*n)++;
	return 0;
}

TEST(forced_retirement_expunges_and_shreds)
{
	struct world w;
	struct vault_epoch_info ep[8];
	struct vault_mailbox mb;
	struct vault_txn *t = NULL;
	uint32_t uid[8], nvan = 0;
	uint64_t sum, expunged, seq0, seq1;
	char buf[8192];
	unsigned done;

	world_init(&w, "alice");
	for (uint32_t i = 0; i < 5; i++)
		ASSERT_INT_EQ(deliver(&w, i, &uid[i]), 0);
	ASSERT_INT_EQ(adopt_inbox(&w, &sum), 0);	/* adopted: sizes in the sealed sum */
	ASSERT_INT_EQ(vault_rotate(w.v, "alice", w.t0 + 1, true), 0);
	for (uint32_t i = 5; i < 7; i++)
		ASSERT_INT_EQ(deliver(&w, i, &uid[i]), 0);
	ASSERT_INT_EQ(adopt_inbox(&w, &sum), 0);	/* re-wraps 0..4 to epoch 2 */
	ASSERT_INT_EQ(vault_rotate(w.v, "alice", w.t0 + 2, true), 0);
	/* one more message under epoch 2, adopted; then epoch 3 current */
	ASSERT_INT_EQ(vault_txn_begin(w.v, false, &t), 0);
	ASSERT_INT_EQ(vault_user_change_seq(t, w.u, &seq0), 0);
	vault_txn_abort(&t);
	/* current epoch: refused; unknown epoch: -ENOENT */
	ASSERT_INT_EQ(vault_epoch_retire(w.v, "alice", 3, &expunged), -EBUSY);
	ASSERT_INT_EQ(vault_epoch_retire(w.v, "alice", 9, &expunged), -ENOENT);
	/* epoch 2 holds all 7 messages (none re-wrapped to 3 yet) */
	ASSERT_INT_EQ(vault_epoch_retire(w.v, "alice", 2, &expunged), 0);
	ASSERT_INT_EQ(expunged, 7);
	ASSERT_INT_EQ(vault_epoch_retire(w.v, "alice", 2, &expunged), -ENOENT);
	ASSERT_TRUE(!epoch_record_exists(&w, 2));
	ASSERT_INT_EQ(vault_txn_begin(w.v, false, &t), 0);
	ASSERT_INT_EQ(vault_user_change_seq(t, w.u, &seq1), 0);
	ASSERT_INT_EQ(vault_msg_vanished(t, w.u, VAULT_INBOX_ID, 0, vanished_cb, &nvan), 0);
	vault_txn_abort(&t);
	ASSERT_TRUE(seq1 > seq0);
	ASSERT_INT_EQ(nvan, 7);
	/* epoch 1 (everything was re-wrapped away from it by the listing) is still live:
	 * listing re-wraps but does not retire */
	ASSERT_INT_EQ(live_epochs(&w, ep, 8), 2);
	/* the session fixes the sealed size sum at its next tick, then retires epoch 1 */
	ASSERT_INT_EQ(vault_rewrap_tick(w.v, w.k, 200, &done), 1);
	ASSERT_INT_EQ(vault_rewrap_tick(w.v, w.k, 200, &done), 0);
	ASSERT_INT_EQ(live_epochs(&w, ep, 8), 1);
	ASSERT_INT_EQ(ep[0].epoch, 3);
	ASSERT_INT_EQ(vault_txn_begin(w.v, false, &t), 0);
	ASSERT_INT_EQ(vault_mailbox_get(t, w.k, VAULT_INBOX_ID, &mb), 0);
	vault_txn_abort(&t);
	ASSERT_INT_EQ(mb.messages, 0);
	ASSERT_INT_EQ(mb.size, 0);
	/* new mail after the retirement works */
	ASSERT_INT_EQ(deliver(&w, 7, &uid[7]), 0);
	ASSERT_INT_EQ(check_msg(&w, VAULT_INBOX_ID, uid[7], 7), 0);
	ASSERT_INT_EQ(vault_txn_begin(w.v, false, &t), 0);
	ASSERT_INT_EQ(vault_mailbox_get(t, w.k, VAULT_INBOX_ID, &mb), 0);
	vault_txn_abort(&t);
	ASSERT_INT_EQ(mb.size, msg_text(7, buf, sizeof(buf)));
	world_free(&w);
}

TEST(forced_retirement_keeps_rewrapped_mail)
{
	struct world w;
	struct vault_mailbox mb;
	struct vault_txn *t = NULL;
	uint32_t uid[4];
	uint64_t sum, expunged;
	unsigned done;

	world_init(&w, "alice");
	for (uint32_t i = 0; i < 4; i++)
		ASSERT_INT_EQ(deliver(&w, i, &uid[i]), 0);
	ASSERT_INT_EQ(adopt_inbox(&w, &sum), 0);
	ASSERT_INT_EQ(vault_rotate(w.v, "alice", w.t0 + 1, true), 0);
	/* two of four re-wrapped forward: epoch 1 alone protects only the other two */
	ASSERT_INT_EQ(batch(&w, 2, &done), 1);
	ASSERT_INT_EQ(done, 2);
	ASSERT_INT_EQ(vault_rotate(w.v, "alice", w.t0 + 2, true), 0);
	ASSERT_INT_EQ(vault_epoch_retire(w.v, "alice", 1, &expunged), 0);
	ASSERT_INT_EQ(expunged, 2);
	ASSERT_INT_EQ(check_msg(&w, VAULT_INBOX_ID, uid[0], 0), 0);
	ASSERT_INT_EQ(check_msg(&w, VAULT_INBOX_ID, uid[1], 1), 0);
	ASSERT_INT_EQ(check_msg(&w, VAULT_INBOX_ID, uid[2], 2), VAULT_ERR_NOMSG);
	/* the session finishes: size fix, re-wrap of the rest to epoch 3, epoch 2 retired */
	while (vault_rewrap_tick(w.v, w.k, 200, &done) > 0)
		;
	ASSERT_TRUE(!epoch_record_exists(&w, 2));
	ASSERT_INT_EQ(vault_txn_begin(w.v, false, &t), 0);
	ASSERT_INT_EQ(vault_mailbox_get(t, w.k, VAULT_INBOX_ID, &mb), 0);
	vault_txn_abort(&t);
	ASSERT_INT_EQ(mb.messages, 2);
	{
		char b0[8192], b1[8192];

		ASSERT_INT_EQ(mb.size, msg_text(0, b0, sizeof(b0)) + msg_text(1, b1, sizeof(b1)));
	}
	world_free(&w);
}

TEST(rotation_mid_pass_and_new_mail)
{
	struct world w;
	struct vault_epoch_info ep[8];
	uint32_t uid[60];
	unsigned done;
	int rc, calls = 0;

	world_init(&w, "alice");
	for (uint32_t i = 0; i < 30; i++)
		ASSERT_INT_EQ(deliver(&w, i, &uid[i]), 0);
	ASSERT_INT_EQ(vault_rotate(w.v, "alice", w.t0 + 1, true), 0);
	ASSERT_INT_EQ(batch(&w, 10, &done), 1);
	ASSERT_INT_EQ(done, 10);
	/* mail arrives and keymgr rotates again while the pass is half done */
	for (uint32_t i = 30; i < 45; i++)
		ASSERT_INT_EQ(deliver(&w, i, &uid[i]), 0);
	ASSERT_INT_EQ(vault_rotate(w.v, "alice", w.t0 + 2, true), 0);
	for (uint32_t i = 45; i < 60; i++)
		ASSERT_INT_EQ(deliver(&w, i, &uid[i]), 0);
	do {
		rc = batch(&w, 10, &done);
		ASSERT_TRUE(rc >= 0);
		ASSERT_TRUE(++calls < 20);
	} while (rc == 1);
	ASSERT_INT_EQ(live_epochs(&w, ep, 8), 1);
	ASSERT_INT_EQ(ep[0].epoch, 3);
	ASSERT_INT_EQ(ep[0].messages, 60);
	for (uint32_t i = 0; i < 60; i++)
		ASSERT_INT_EQ(check_msg(&w, VAULT_INBOX_ID, uid[i], i), 0);
	world_free(&w);
}
