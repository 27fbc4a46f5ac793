/* verify.c: integrity without keys. Every record's framing hash is recomputed;
 * message records are checked against their chunks (none missing, none orphaned). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vault-private.h"

int store_walk(MDB_txn *txn, const MDB_dbi *dbi, const bool *present,
    int (*fn)(enum vdb db, const MDB_val *k, const MDB_val *d, void *arg), void *arg)
{
	for (int db = 0; db < VDB_COUNT; db++) {
		MDB_cursor *c = NULL;
		MDB_val k, d;
		int rc, r = 0;

		if (present != NULL && !present[db])
			continue;
		if ((rc = mdb_cursor_open(txn, dbi[db], &c)) != 0)
			return rc > 0 ? -rc : -EIO;
		for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == 0;
		    rc = mdb_cursor_get(c, &k, &d, MDB_NEXT))
			if ((r = fn((enum vdb)db, &k, &d, arg)) != 0)
				break;
		mdb_cursor_close(c);
		if (r != 0)
			return r;
		if (rc != MDB_NOTFOUND)
			return rc > 0 ? -rc : -EIO;
	}
	return 0;
}

void record_name(enum vdb db, const void *key, size_t klen, char *out, size_t outlen)
{
	char hex[2 * 64 + 4];
	size_t n = klen > 64 ? 64 : klen;

	if (crypto_hex_encode(key, n, hex, sizeof(hex)) < 0)
		hex[0] = '\0';
	snprintf(out, outlen, "%s/%s%s", vault_db_names[db], hex, klen > 64 ? "..." : "");
}

struct verify_ctx {
	MDB_txn *txn;
	const MDB_dbi *dbi;
	void (*report)(const char *what, void *arg);
	void *arg;
	int broken;
	uint8_t last_msg[12];
	bool have_last;
};

static void vreport(struct verify_ctx *c, enum vdb db, const MDB_val *k, const char *what)
{
	char name[200], line[300];

	record_name(db, k->mv_data, k->mv_size, name, sizeof(name));
	snprintf(line, sizeof(line), "%s: %s", name, what);
	c->broken++;
	if (c->report != NULL)
		c->report(line, c->arg);
}

static int verify_one(enum vdb db, const MDB_val *k, const MDB_val *d, void *arg)
{
	struct verify_ctx *c = arg;

	if (vault_record_check(vault_db_names[db], k->mv_data, k->mv_size, d->mv_data,
	    d->mv_size) != 0) {
		vreport(c, db, k, "record hash mismatch (corrupt)");
		return 0;
	}
	if (db == VDB_MSG) {
		struct msg_rec r;

		if (k->mv_size != 12 || msg_rec_parse((const uint8_t *)d->mv_data + 1,
		    d->mv_size - VAULT_REC_OVERHEAD, &r) != 0) {
			vreport(c, db, k, "malformed message record");
			return 0;
		}
		for (uint32_t i = 0; i < r.nchunks; i++) {
			uint8_t ck[16];
			MDB_val kk = { 16, ck }, dd;

			memcpy(ck, k->mv_data, 12);
			be32_put(ck + 12, i);
			if (mdb_get(c->txn, c->dbi[VDB_CHUNK], &kk, &dd) != 0) {
				vreport(c, db, k, "body chunk missing");
				break;
			}
		}
	} else if (db == VDB_CHUNK) {
		MDB_val mk, md;

		if (k->mv_size != 16) {
			vreport(c, db, k, "malformed chunk key");
			return 0;
		}
		if (!c->have_last || memcmp(c->last_msg, k->mv_data, 12) != 0) {
			memcpy(c->last_msg, k->mv_data, 12);
			c->have_last = true;
			mk.mv_size = 12;
			mk.mv_data = c->last_msg;
			if (mdb_get(c->txn, c->dbi[VDB_MSG], &mk, &md) != 0)
				vreport(c, db, k, "chunk without a message record");
		}
	}
	return 0;
}

int vault_verify(struct vault *v, void (*report)(const char *what, void *arg), void *arg)
{
	struct vault_txn *t = NULL;
	struct verify_ctx c;
	int r;

	if ((r = vault_txn_begin(v, false, &t)) < 0)
		return r;
	memset(&c, 0, sizeof(c));
	c.txn = t->txn;
	c.dbi = v->dbi;
	c.report = report;
	c.arg = arg;
	r = store_walk(t->txn, v->dbi, NULL, verify_one, &c);
	vault_txn_abort(&t);
	return r < 0 ? r : c.broken;
}
