/* store.c: the LMDB environment, record framing, transactions and map growth.
 *
 * One struct vault per process, opened after fork. Several processes (pre-login,
 * sessions, deliver, keymgr) share the environment through LMDB's own lock file;
 * MDB_NOTLS lets read transactions be independent of threads and releases the
 * reader slot when a read txn ends (there can be thousands of processes). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "vault-private.h"
#include "log.h"

const char *const vault_db_names[VDB_COUNT] = {
	"meta", "names", "users", "mbox", "msg", "chunk", "cache", "vanished",
};

const char *vault_strerror(int err)
{
	switch (err) {
	case 0: return "success";
	case VAULT_ERR_NOUSER: return "no such user";
	case VAULT_ERR_AUTH: return "authentication failed";
	case VAULT_ERR_REPLAY: return "one-time password replayed";
	case VAULT_ERR_TOKEN: return "unknown token or malformed one-time password";
	case VAULT_ERR_CORRUPT: return "record corrupt (hash mismatch)";
	case VAULT_ERR_FULL: return "store full (map at its maximum size)";
	case VAULT_ERR_NOMBOX: return "no such mailbox";
	case VAULT_ERR_NOMSG: return "no such message";
	case VAULT_ERR_TAMPER: return "sealed record failed authentication (tampering)";
	case VAULT_ERR_WINDOW: return "passphrase-only login outside the unlock window";
	case -ENOSPC: return "no space left on device";
	case -EAGAIN: return "map grown: retry the transaction";
	default: break;
	}
	if (err < 0 && err > -VAULT_ERR_BASE)
		return strerror(-err);
	return "unknown error";
}

/* ---- small helpers --------------------------------------------------------------- */
void be32_put(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

uint32_t be32_get(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void be64_put(uint8_t *p, uint64_t v)
{
	be32_put(p, (uint32_t)(v >> 32));
	be32_put(p + 4, (uint32_t)v);
}

uint64_t be64_get(const uint8_t *p)
{
	return (uint64_t)be32_get(p) << 32 | be32_get(p + 4);
}

size_t key_user(uint8_t *k, uint32_t u, char kind)
{
	be32_put(k, u);
	k[4] = (uint8_t)kind;
	return 5;
}

size_t key_epoch(uint8_t *k, uint32_t u, uint32_t e)
{
	key_user(k, u, 'E');
	be32_put(k + 5, e);
	return 9;
}

size_t key_token(uint8_t *k, uint32_t u, uint8_t t)
{
	key_user(k, u, 'T');
	k[5] = t;
	return 6;
}

size_t key_mbox(uint8_t *k, uint32_t u, uint32_t m)
{
	be32_put(k, u);
	be32_put(k + 4, m);
	return 8;
}

size_t key_msg(uint8_t *k, uint32_t u, uint32_t m, uint32_t n)
{
	key_mbox(k, u, m);
	be32_put(k + 8, n);
	return 12;
}

size_t key_chunk(uint8_t *k, uint32_t u, uint32_t m, uint32_t n, uint32_t i)
{
	key_msg(k, u, m, n);
	be32_put(k + 12, i);
	return 16;
}

void ad_init(struct vault_ad *a, enum vault_purpose p, uint32_t user)
{
	memcpy(a->b, "sealmail", 8);
	a->b[8] = (uint8_t)p;
	be32_put(a->b + 9, user);
	a->n = 13;
}

void ad_u32(struct vault_ad *a, uint32_t v)
{
	if (a->n + 4 <= sizeof(a->b)) {
		be32_put(a->b + a->n, v);
		a->n += 4;
	}
}

void ad_u8(struct vault_ad *a, uint8_t v)
{
	if (a->n + 1 <= sizeof(a->b))
		a->b[a->n++] = v;
}

int vault_open_err(int r)
{
	if (r == -EBADMSG || r == -EPROTO)
		return VAULT_ERR_TAMPER;
	return r;
}

void wb_init(struct wbuf *w, uint8_t *p, size_t cap)
{
	w->p = p;
	w->len = 0;
	w->cap = cap;
	w->bad = false;
}

void wb_put(struct wbuf *w, const void *p, size_t n)
{
	if (w->bad || n > w->cap - w->len) {
		w->bad = true;
		return;
	}
	if (n > 0)
		memcpy(w->p + w->len, p, n);
	w->len += n;
}

void wb_u8(struct wbuf *w, uint8_t v)
{
	wb_put(w, &v, 1);
}

void wb_u16(struct wbuf *w, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	wb_put(w, b, 2);
}

void wb_u32(struct wbuf *w, uint32_t v)
{
	uint8_t b[4];

	be32_put(b, v);
	wb_put(w, b, 4);
}

void wb_u64(struct wbuf *w, uint64_t v)
{
	uint8_t b[8];

	be64_put(b, v);
	wb_put(w, b, 8);
}

void wb_str16(struct wbuf *w, const void *p, size_t n)
{
	if (n > UINT16_MAX) {
		w->bad = true;
		return;
	}
	wb_u16(w, (uint16_t)n);
	wb_put(w, p, n);
}

int rb_str16(struct sbuf *r, uint8_t *out, size_t cap, size_t *len_out)
{
	const uint8_t *p;
	size_t n;
	int e;

	if ((e = sbuf_get_str16(r, &p, &n)) < 0)
		return e;
	if (n > cap)
		return -EBADMSG;
	if (n > 0)
		memcpy(out, p, n);
	*len_out = n;
	return 0;
}

int vseal(const struct secret *key, uint32_t key_id, const struct vault_ad *ad,
    const void *pt, size_t n, uint8_t *out, size_t cap, size_t *len_out)
{
	struct sbuf *b = NULL;
	int r;

	if ((r = sbuf_new(cap, &b)) < 0)
		return r;
	if ((r = crypto_rec_seal(crypto_default_alg(), key, key_id, ad->b, ad->n, pt, n, b)) < 0)
		goto out;
	memcpy(out, b->d, b->len);
	*len_out = b->len;
out:
	sbuf_free(&b);
	return r;
}

int vopen_secret(const struct secret *key, const struct vault_ad *ad, const uint8_t *rec,
    size_t n, size_t want, struct secret **out)
{
	struct sbuf *b = NULL;
	int r;

	*out = NULL;
	if ((r = sbuf_new_secure(n, &b)) < 0)
		return r;
	if ((r = crypto_rec_open(key, ad->b, ad->n, rec, n, b)) < 0) {
		r = vault_open_err(r);
		goto out;
	}
	if (want != 0 && b->len != want) {
		r = VAULT_ERR_TAMPER;
		goto out;
	}
	r = secret_dup(b->d, b->len, out);
out:
	sbuf_free(&b);
	return r;
}

int vkdf(const struct secret *ikm, const char *label, const void *ctx, size_t ctxlen,
    struct secret **out)
{
	return crypto_kdf(ikm, label, ctx, ctxlen, 32, out);
}

/* ---- record framing ------------------------------------------------------------ */
void vault_record_hash(const char *dbname, const void *key, size_t klen, const uint8_t *val,
    size_t vlen, uint8_t out[VAULT_REC_HASH])
{
	struct crypto_hash_state s;
	uint8_t l[2];
	size_t dl = strlen(dbname);

	crypto_hash_init(&s);
	l[0] = (uint8_t)dl;
	crypto_hash_update(&s, l, 1);
	crypto_hash_update(&s, (const uint8_t *)dbname, dl);
	l[0] = (uint8_t)(klen >> 8);
	l[1] = (uint8_t)klen;
	crypto_hash_update(&s, l, 2);
	crypto_hash_update(&s, key, klen);
	crypto_hash_update(&s, val, vlen);
	crypto_hash_final(&s, out);
}

int vault_record_check(const char *dbname, const void *key, size_t klen, const uint8_t *val,
    size_t vlen)
{
	uint8_t h[VAULT_REC_HASH];

	if (vlen < VAULT_REC_OVERHEAD || val[0] != VAULT_REC_VERSION)
		return VAULT_ERR_CORRUPT;
	vault_record_hash(dbname, key, klen, val, vlen - VAULT_REC_HASH, h);
	/* Not secret: a plain compare is fine, but keep it uniform. */
	if (!crypto_memeq(h, val + vlen - VAULT_REC_HASH, VAULT_REC_HASH))
		return VAULT_ERR_CORRUPT;
	return 0;
}

/* ---- errors and map growth ----------------------------------------------------- */
static bool map_is_full_rc(int rc)
{
	return rc == MDB_MAP_FULL;
}

int store_err(struct vault_txn *t, int rc)
{
	if (rc == 0)
		return 0;
	if (rc == MDB_NOTFOUND)
		return -ENOENT;
	if (map_is_full_rc(rc)) {
		struct vault *v = t->v;

		if (v->map_size >= v->cfg.map_max)
			t->sticky = VAULT_ERR_FULL;
		else
			t->sticky = -EAGAIN;
		return t->sticky;
	}
	if (rc == MDB_TXN_FULL) {
		t->sticky = -E2BIG;
		return -E2BIG;
	}
	if (rc == MDB_MAP_RESIZED)
		return -EAGAIN;
	if (rc > 0)
		return -rc;
	log_warn("vault: lmdb error %d: %s", rc, mdb_strerror(rc));
	return -EIO;
}

static int store_grow(struct vault *v)
{
	MDB_envinfo info;
	uint64_t nsz;
	int rc;

	if (v->active_txns > 0) {
		v->grow_pending = true;
		return 0;
	}
	v->grow_pending = false;
	if (mdb_env_info(v->env, &info) == 0 && info.me_mapsize > v->map_size)
		v->map_size = info.me_mapsize;
	if (v->map_size >= v->cfg.map_max)
		return VAULT_ERR_FULL;
	nsz = v->map_size * 2;
	if (nsz > v->cfg.map_max || nsz < v->map_size)
		nsz = v->cfg.map_max;
	rc = mdb_env_set_mapsize(v->env, (size_t)nsz);
	if (rc != 0) {
		log_warn("vault: growing the map to %llu bytes failed: %s",
		    (unsigned long long)nsz, mdb_strerror(rc));
		return rc > 0 ? -rc : -EIO;
	}
	v->map_size = nsz;
	log_info("vault: map grown to %llu bytes", (unsigned long long)nsz);
	return 0;
}

/* ---- open / close ----------------------------------------------------------------- */
int vault_open(const struct vault_config *cfg, struct vault **out)
{
	struct vault *v = NULL;
	MDB_txn *txn = NULL;
	MDB_envinfo info;
	unsigned int flags = MDB_NOTLS;
	int r, rc, n;

	*out = NULL;
	if ((r = crypto_init()) < 0)
		return r;
	if (cfg->data_dir[0] == '\0' || cfg->map_max < cfg->map_size)
		return -EINVAL;
	if ((v = calloc(1, sizeof(*v))) == NULL)
		return -ENOMEM;
	pthread_mutex_init(&v->pool_lock, NULL);
	v->cfg = *cfg;
	n = snprintf(v->tmp_dir, sizeof(v->tmp_dir), "%s/tmp", cfg->data_dir);
	if (n < 0 || (size_t)n >= sizeof(v->tmp_dir)) {
		r = -ENAMETOOLONG;
		goto out;
	}
	if (mkdir(cfg->data_dir, 0700) != 0 && errno != EEXIST) {
		r = -errno;
		goto out;
	}
	if (mkdir(v->tmp_dir, 0700) != 0 && errno != EEXIST) {
		r = -errno;
		goto out;
	}
	if ((rc = mdb_env_create(&v->env)) != 0) {
		r = -ENOMEM;
		goto out;
	}
	if (!cfg->durable)
		flags |= MDB_NOSYNC;	/* benchmarks only: see vault-config.h */
	if ((rc = mdb_env_set_maxdbs(v->env, VDB_COUNT + 2)) != 0 ||
	    (rc = mdb_env_set_maxreaders(v->env, 1024)) != 0 ||
	    (rc = mdb_env_open(v->env, cfg->data_dir, flags, 0600)) != 0) {
		r = rc > 0 ? -rc : -EIO;
		log_warn("vault: cannot open %s: %s", cfg->data_dir, mdb_strerror(rc));
		goto out;
	}
	/* Never shrink a map another process grew: only grow to the configured size. */
	if ((rc = mdb_env_info(v->env, &info)) != 0) {
		r = -EIO;
		goto out;
	}
	v->map_size = info.me_mapsize;
	if (v->map_size < cfg->map_size) {
		if ((rc = mdb_env_set_mapsize(v->env, (size_t)cfg->map_size)) != 0) {
			r = rc > 0 ? -rc : -EIO;
			goto out;
		}
		v->map_size = cfg->map_size;
	}
	for (int tries = 0;; tries++) {
		rc = mdb_txn_begin(v->env, NULL, 0, &txn);
		if (rc == MDB_MAP_RESIZED && tries < 3) {
			mdb_env_set_mapsize(v->env, 0);
			continue;
		}
		break;
	}
	if (rc != 0) {
		r = rc > 0 ? -rc : -EIO;
		goto out;
	}
	for (int i = 0; i < VDB_COUNT; i++) {
		if ((rc = mdb_dbi_open(txn, vault_db_names[i], MDB_CREATE, &v->dbi[i])) != 0)
			break;
	}
	if (rc == 0)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	txn = NULL;
	if (rc != 0) {
		r = rc == MDB_MAP_FULL ? VAULT_ERR_FULL : rc > 0 ? -rc : -EIO;
		goto out;
	}
	if (mdb_env_info(v->env, &info) == 0 && info.me_mapsize > v->map_size)
		v->map_size = info.me_mapsize;
	{
		MDB_stat st;

		v->psize = mdb_env_stat(v->env, &st) == 0 ? st.ms_psize : 4096;
	}
	*out = v;
	v = NULL;
	r = 0;
out:
	vault_close(&v);
	return r;
}

void vault_close(struct vault **vp)
{
	struct vault *v = *vp;

	if (v == NULL)
		return;
	if (v->env != NULL)
		mdb_env_close(v->env);
	for (int i = 0; i < v->npool; i++)
		secret_free(&v->pool[i]);
	for (int i = 0; i < v->nspool; i++)
		sbuf_free(&v->spool[i]);
	pthread_mutex_destroy(&v->pool_lock);
	free(v);
	*vp = NULL;
}

int vault_buf_get(struct vault *v, struct secret **out)
{
	*out = NULL;
	pthread_mutex_lock(&v->pool_lock);
	if (v->npool > 0)
		*out = v->pool[--v->npool];
	pthread_mutex_unlock(&v->pool_lock);
	if (*out != NULL)
		return 0;
	return secret_new(VAULT_BUF_BYTES, out);	/* zeroed */
}

void vault_buf_put(struct vault *v, struct secret **s, size_t used)
{
	struct secret *b = *s;

	if (b == NULL)
		return;
	*s = NULL;
	crypto_wipe(b->p, used < b->len ? used : b->len);
	pthread_mutex_lock(&v->pool_lock);
	if (v->npool < (int)(sizeof(v->pool) / sizeof(v->pool[0]))) {
		v->pool[v->npool++] = b;
		b = NULL;
	}
	pthread_mutex_unlock(&v->pool_lock);
	secret_free(&b);
}

int vault_sbuf_get(struct vault *v, struct sbuf **out)
{
	*out = NULL;
	pthread_mutex_lock(&v->pool_lock);
	if (v->nspool > 0)
		*out = v->spool[--v->nspool];
	pthread_mutex_unlock(&v->pool_lock);
	if (*out != NULL)
		return 0;
	return sbuf_new_secure(VAULT_SBUF_MAX, out);
}

void vault_sbuf_put(struct vault *v, struct sbuf **bp)
{
	struct sbuf *b = *bp;

	if (b == NULL)
		return;
	*bp = NULL;
	sbuf_reset(b);	/* wipes */
	pthread_mutex_lock(&v->pool_lock);
	if (v->nspool < (int)(sizeof(v->spool) / sizeof(v->spool[0]))) {
		v->spool[v->nspool++] = b;
		b = NULL;
	}
	pthread_mutex_unlock(&v->pool_lock);
	sbuf_free(&b);
}

void vault_sbuf_release(struct vault *v, struct sbuf **bp)
{
	struct sbuf *b = *bp;

	if (b != NULL && v != NULL && b->secure && !b->borrowed && b->max == VAULT_SBUF_MAX)
		vault_sbuf_put(v, bp);
	else
		sbuf_free(bp);
}

/* ---- transactions -------------------------------------------------------------- */
/* Grow before a write txn when the last commit left the map three quarters full.
 * MAP_FULL in the middle of a txn still works (sticky -EAGAIN, abort, grow, retry),
 * but not every caller can replay its txn, and a replay repeats the sealing work:
 * growing a little early makes that path rare. */
static bool map_nearly_full(struct vault *v)
{
	MDB_envinfo info;

	if (v->map_size >= v->cfg.map_max || mdb_env_info(v->env, &info) != 0)
		return false;
	return (uint64_t)(info.me_last_pgno + 1) * v->psize > v->map_size / 4 * 3;
}

int vault_txn_begin(struct vault *v, bool write, struct vault_txn **out)
{
	struct vault_txn *t;
	int rc, tries;

	*out = NULL;
	if (write && !v->grow_pending && v->active_txns == 0 && map_nearly_full(v))
		v->grow_pending = true;
	if (v->grow_pending && v->active_txns == 0) {
		int r = store_grow(v);

		if (r < 0 && r != VAULT_ERR_FULL)
			return r;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return -ENOMEM;
	t->v = v;
	t->write = write;
	for (tries = 0;; tries++) {
		rc = mdb_txn_begin(v->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
		if (rc == MDB_MAP_RESIZED && tries < 3 && v->active_txns == 0) {
			/* Another process grew the map: adopt its size (LMDB docs). */
			MDB_envinfo info;

			mdb_env_set_mapsize(v->env, 0);
			if (mdb_env_info(v->env, &info) == 0)
				v->map_size = info.me_mapsize;
			continue;
		}
		break;
	}
	if (rc != 0) {
		free(t);
		return rc == MDB_MAP_RESIZED ? -EAGAIN : rc > 0 ? -rc : -EIO;
	}
	v->active_txns++;
	*out = t;
	return 0;
}

static void txn_end(struct vault_txn *t, bool full)
{
	struct vault *v = t->v;

	v->active_txns--;
	if (full)
		(void)store_grow(v);
	free(t);
}

int vault_txn_commit(struct vault_txn **tp)
{
	struct vault_txn *t = *tp;
	int rc, r;

	if (t == NULL)
		return -EINVAL;
	*tp = NULL;
	if (t->sticky != 0) {
		r = t->sticky;
		mdb_txn_abort(t->txn);
		txn_end(t, r == -EAGAIN || r == VAULT_ERR_FULL);
		return r;
	}
	if (!t->write) {
		mdb_txn_abort(t->txn);
		txn_end(t, false);
		return 0;
	}
	rc = mdb_txn_commit(t->txn);	/* frees the txn even on failure */
	if (rc == MDB_MAP_FULL) {
		struct vault *v = t->v;

		r = v->map_size >= v->cfg.map_max ? VAULT_ERR_FULL : -EAGAIN;
		txn_end(t, true);
		return r;
	}
	txn_end(t, false);
	if (rc != 0) {
		log_warn("vault: commit failed: %s", mdb_strerror(rc));
		return rc > 0 ? -rc : -EIO;
	}
	return 0;
}

void vault_txn_abort(struct vault_txn **tp)
{
	struct vault_txn *t = *tp;

	if (t == NULL)
		return;
	*tp = NULL;
	mdb_txn_abort(t->txn);
	txn_end(t, t->sticky == -EAGAIN || t->sticky == VAULT_ERR_FULL);
}

int vault_write(struct vault *v, int (*fn)(struct vault_txn *t, void *arg), void *arg)
{
	struct vault_txn *t = NULL;
	int r = -EAGAIN;

	/* Each retry doubles the map; 40 doublings exceed any map_max. */
	for (int tries = 0; tries < 40 && r == -EAGAIN; tries++) {
		if ((r = vault_txn_begin(v, true, &t)) < 0)
			continue;
		r = fn(t, arg);
		if (r < 0 && t->sticky != 0)
			r = t->sticky;
		if (r < 0) {
			vault_txn_abort(&t);
			continue;
		}
		{
			int rc = vault_txn_commit(&t);

			if (rc < 0)
				r = rc;
		}
	}
	return r;
}

/* ---- record access ------------------------------------------------------------- */
int store_get(struct vault_txn *t, enum vdb db, const void *key, size_t klen,
    bool check_hash, const uint8_t **p_out, size_t *n_out)
{
	MDB_val k = { klen, (void *)key }, d;
	int rc;

	if ((rc = mdb_get(t->txn, t->v->dbi[db], &k, &d)) != 0)
		return store_err(t, rc);
	if (d.mv_size < VAULT_REC_OVERHEAD || ((const uint8_t *)d.mv_data)[0] != VAULT_REC_VERSION)
		return VAULT_ERR_CORRUPT;
	if (check_hash && vault_record_check(vault_db_names[db], key, klen, d.mv_data,
	    d.mv_size) != 0)
		return VAULT_ERR_CORRUPT;
	*p_out = (const uint8_t *)d.mv_data + 1;
	*n_out = d.mv_size - VAULT_REC_OVERHEAD;
	return 0;
}

int store_reserve(struct vault_txn *t, enum vdb db, const void *key, size_t klen,
    size_t plen, uint8_t **p_out)
{
	MDB_val k = { klen, (void *)key }, d = { plen + VAULT_REC_OVERHEAD, NULL };
	int rc;

	if (t->sticky != 0)
		return t->sticky;
	if (!t->write)
		return -EROFS;
	if ((rc = mdb_put(t->txn, t->v->dbi[db], &k, &d, MDB_RESERVE)) != 0)
		return store_err(t, rc);
	((uint8_t *)d.mv_data)[0] = VAULT_REC_VERSION;
	*p_out = (uint8_t *)d.mv_data + 1;
	return 0;
}

void store_reserve_done(enum vdb db, const void *key, size_t klen, uint8_t *payload,
    size_t plen)
{
	vault_record_hash(vault_db_names[db], key, klen, payload - 1, plen + 1, payload + plen);
}

int store_put(struct vault_txn *t, enum vdb db, const void *key, size_t klen,
    const void *payload, size_t plen)
{
	uint8_t *p;
	int r;

	if ((r = store_reserve(t, db, key, klen, plen, &p)) < 0)
		return r;
	if (plen > 0)
		memcpy(p, payload, plen);
	store_reserve_done(db, key, klen, p, plen);
	return 0;
}

int store_del(struct vault_txn *t, enum vdb db, const void *key, size_t klen)
{
	MDB_val k = { klen, (void *)key };
	int rc;

	if (t->sticky != 0)
		return t->sticky;
	rc = mdb_del(t->txn, t->v->dbi[db], &k, NULL);
	return store_err(t, rc);
}

int store_del_prefix(struct vault_txn *t, enum vdb db, const void *prefix, size_t plen,
    size_t max)
{
	MDB_cursor *c = NULL;
	MDB_val k = { plen, (void *)prefix }, d;
	int rc, count = 0;

	if (t->sticky != 0)
		return t->sticky;
	if ((rc = mdb_cursor_open(t->txn, t->v->dbi[db], &c)) != 0)
		return store_err(t, rc);
	rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size >= plen && memcmp(k.mv_data, prefix, plen) == 0) {
		if (max != 0 && (size_t)count >= max)
			break;
		if ((rc = mdb_cursor_del(c, 0)) != 0)
			break;
		count++;
		/* After a delete the cursor sits on the next item; MDB_NEXT returns it. */
		rc = mdb_cursor_get(c, &k, &d, MDB_NEXT);
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return store_err(t, rc);
	return count;
}
