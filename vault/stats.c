/* stats.c: counts and sizes, no keys. */
#include <errno.h>
#include <string.h>
#include "vault-private.h"

int vault_stats(struct vault *v, struct vault_stats *out)
{
	struct vault_txn *t = NULL;
	MDB_envinfo info;
	MDB_stat st;
	MDB_cursor *c = NULL;
	MDB_val k, d;
	unsigned int psize = 4096;
	int r, rc;

	memset(out, 0, sizeof(*out));
	if ((r = vault_txn_begin(v, false, &t)) < 0)
		return r;
	for (int db = 0; db < VDB_COUNT; db++) {
		if ((rc = mdb_stat(t->txn, v->dbi[db], &st)) != 0) {
			r = store_err(t, rc);
			goto out;
		}
		psize = st.ms_psize;
		out->records += st.ms_entries;
		if (db == VDB_NAMES)
			out->users = st.ms_entries;
		else if (db == VDB_MBOX)
			out->mailboxes = st.ms_entries;
		else if (db == VDB_MSG)
			out->messages = st.ms_entries;
	}
	/* Overflow values are not read: the cursor returns a pointer and a size. */
	if ((rc = mdb_cursor_open(t->txn, v->dbi[VDB_CHUNK], &c)) != 0) {
		r = store_err(t, rc);
		goto out;
	}
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &k, &d, MDB_NEXT))
		if (d.mv_size > VAULT_REC_OVERHEAD)
			out->chunk_bytes += d.mv_size - VAULT_REC_OVERHEAD;
	mdb_cursor_close(c);
	if (rc != MDB_NOTFOUND) {
		r = store_err(t, rc);
		goto out;
	}
	if (mdb_env_info(v->env, &info) == 0) {
		out->map_size = info.me_mapsize;
		out->map_used = (uint64_t)(info.me_last_pgno + 1) * psize;
	}
	r = 0;
out:
	vault_txn_abort(&t);
	return r;
}

int vault_map_use(struct vault *v, uint64_t *used_out, uint64_t *size_out)
{
	MDB_envinfo info;
	MDB_stat st;

	if (mdb_env_info(v->env, &info) != 0 || mdb_env_stat(v->env, &st) != 0)
		return -EIO;
	*size_out = info.me_mapsize;
	*used_out = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
	return 0;
}
