/* message.c: per-message records, bodies, list/read/append/flags/expunge/copy, and
 * adoption (re-wrapping a delivered data key under the epoch's symmetric key).
 *
 * Body chunks: CRYPTO_CHUNK_BYTES (64 KiB) of plaintext each; the final chunk is
 * zero-padded inside the ciphertext to body_pad_len(): the stored LMDB value
 * (1 version + plaintext + 16 tag + 32 hash) then fills whole 4 KiB overflow pages
 * exactly (LMDB adds a 16-byte page header), so stored sizes are bucketed in 4 KiB
 * steps below 64 KiB and no page space is wasted on the padding.
 *
 * \Recent (RFC 3501 2.3.2): a clear "not yet claimed" bit per message. A session that
 * lists the mailbox in a write transaction reports \Recent and clears the bit; a
 * listing in a read transaction reports the bit without claiming it. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vault-private.h"
#include "log.h"

#define META_PT_MAX (64 * 1024)
#define KEYWORD_MAX 255

size_t body_pad_len(size_t r)
{
	size_t p = (r + 65 + 4095) / 4096 * 4096 - 65;

	return p > CRYPTO_CHUNK_BYTES ? CRYPTO_CHUNK_BYTES : p;
}

uint32_t body_nchunks(uint64_t size)
{
	return size == 0 ? 1 : (uint32_t)((size + CRYPTO_CHUNK_BYTES - 1) / CRYPTO_CHUNK_BYTES);
}

void body_ad(struct vault_ad *a, uint32_t u, uint32_t m, uint32_t n)
{
	ad_init(a, VP_BODY, u);
	ad_u32(a, m);
	ad_u32(a, n);
}

static void meta_ad(struct vault_ad *a, uint32_t u, uint32_t m, uint32_t n)
{
	ad_init(a, VP_META, u);
	ad_u32(a, m);
	ad_u32(a, n);
}

static void cache_ad(struct vault_ad *a, uint32_t u, uint32_t m, uint32_t n)
{
	ad_init(a, VP_CACHE, u);
	ad_u32(a, m);
	ad_u32(a, n);
}

/* ---- meta plaintext ------------------------------------------------------------- */
static bool keyword_ok(const char *kw)
{
	size_t n = strlen(kw);

	if (n == 0 || n > KEYWORD_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)kw[i];

		if (c <= 0x20 || c >= 0x7f)
			return false;
	}
	return true;
}

int meta_serialize(const struct vault_msg_meta *m, uint8_t *out, size_t cap, size_t *len_out)
{
	struct wbuf w;

	if (m->nkeywords > VAULT_MAX_KEYWORDS)
		return -E2BIG;
	wb_init(&w, out, cap);
	wb_u8(&w, MSG_META_VERSION);
	wb_u32(&w, m->flags);
	wb_u64(&w, (uint64_t)m->internal_date);
	wb_u32(&w, (uint32_t)m->internal_tz);
	wb_u64(&w, (uint64_t)m->save_date);
	wb_u64(&w, m->size);
	wb_put(&w, m->emailid, sizeof(m->emailid));
	wb_u8(&w, (uint8_t)m->nkeywords);
	for (uint32_t i = 0; i < m->nkeywords; i++) {
		size_t n = strlen(m->keywords[i]);

		if (n > KEYWORD_MAX)
			return -E2BIG;
		wb_u8(&w, (uint8_t)n);
		wb_put(&w, m->keywords[i], n);
	}
	if (w.bad)
		return -E2BIG;
	*len_out = w.len;
	return 0;
}

void vault_msg_meta_clear(struct vault_msg_meta *m)
{
	if (m == NULL)
		return;
	for (uint32_t i = 0; i < m->nkeywords && i < VAULT_MAX_KEYWORDS; i++)
		free(m->keywords[i]);
	memset(m, 0, sizeof(*m));
}

int meta_parse(const uint8_t *p, size_t n, struct vault_msg_meta *out)
{
	struct sbuf b;
	uint8_t ver, nkw;
	uint32_t tz;
	uint64_t idate, sdate;

	memset(out, 0, sizeof(*out));
	sbuf_from(&b, p, n);
	if (sbuf_get_u8(&b, &ver) < 0 || ver != MSG_META_VERSION ||
	    sbuf_get_u32(&b, &out->flags) < 0 || sbuf_get_u64(&b, &idate) < 0 ||
	    sbuf_get_u32(&b, &tz) < 0 || sbuf_get_u64(&b, &sdate) < 0 ||
	    sbuf_get_u64(&b, &out->size) < 0 ||
	    sbuf_get(&b, out->emailid, sizeof(out->emailid)) < 0 || sbuf_get_u8(&b, &nkw) < 0 ||
	    nkw > VAULT_MAX_KEYWORDS)
		return VAULT_ERR_CORRUPT;
	out->internal_date = (int64_t)idate;
	out->internal_tz = (int32_t)tz;
	out->save_date = (int64_t)sdate;
	for (uint8_t i = 0; i < nkw; i++) {
		const uint8_t *s;
		uint8_t l;

		if (sbuf_get_u8(&b, &l) < 0 || sbuf_get_ptr(&b, l, &s) < 0) {
			vault_msg_meta_clear(out);
			return VAULT_ERR_CORRUPT;
		}
		if ((out->keywords[i] = malloc((size_t)l + 1)) == NULL) {
			vault_msg_meta_clear(out);
			return -ENOMEM;
		}
		memcpy(out->keywords[i], s, l);
		out->keywords[i][l] = '\0';
		out->nkeywords = i + 1u;
	}
	return 0;
}

/* ---- message record --------------------------------------------------------------- */
static size_t msg_rec_len(const struct msg_rec *r)
{
	return 8 + 4 + 8 + 4 + 4 + 1 + 1 + CRYPTO_STREAM_HDR_BYTES + 1 + r->dkwrap_len + 4 +
	    r->meta_len;
}

static void msg_rec_write(const struct msg_rec *r, uint8_t *p, size_t len)
{
	struct wbuf w;

	wb_init(&w, p, len);
	wb_u64(&w, r->modseq);
	wb_u32(&w, r->arrival_hour);
	wb_u64(&w, r->padded_size);
	wb_u32(&w, r->nchunks);
	wb_u32(&w, r->epoch);
	wb_u8(&w, r->wrap);
	wb_u8(&w, r->state);
	wb_put(&w, r->stream_hdr, sizeof(r->stream_hdr));
	wb_u8(&w, (uint8_t)r->dkwrap_len);
	wb_put(&w, r->dkwrap, r->dkwrap_len);
	wb_u32(&w, (uint32_t)r->meta_len);
	wb_put(&w, r->meta, r->meta_len);
}

int msg_rec_parse(const uint8_t *p, size_t n, struct msg_rec *out)
{
	struct sbuf b;
	uint8_t dl;
	uint32_t ml;

	sbuf_from(&b, p, n);
	if (sbuf_get_u64(&b, &out->modseq) < 0 || sbuf_get_u32(&b, &out->arrival_hour) < 0 ||
	    sbuf_get_u64(&b, &out->padded_size) < 0 || sbuf_get_u32(&b, &out->nchunks) < 0 ||
	    sbuf_get_u32(&b, &out->epoch) < 0 || sbuf_get_u8(&b, &out->wrap) < 0 ||
	    sbuf_get_u8(&b, &out->state) < 0 ||
	    sbuf_get(&b, out->stream_hdr, sizeof(out->stream_hdr)) < 0 ||
	    sbuf_get_u8(&b, &dl) < 0 || dl > sizeof(out->dkwrap) ||
	    sbuf_get(&b, out->dkwrap, dl) < 0 || sbuf_get_u32(&b, &ml) < 0 ||
	    sbuf_get_ptr(&b, ml, &out->meta) < 0 || sbuf_avail(&b) != 0)
		return VAULT_ERR_CORRUPT;
	if (out->wrap != WRAP_PK && out->wrap != WRAP_SYM)
		return VAULT_ERR_CORRUPT;
	out->dkwrap_len = dl;
	out->meta_len = ml;
	return 0;
}

int msg_rec_put(struct vault_txn *t, uint32_t u, uint32_t m, uint32_t n,
    const struct msg_rec *r)
{
	uint8_t k[12], *p;
	size_t len = msg_rec_len(r);
	int e;

	if ((e = store_reserve(t, VDB_MSG, k, key_msg(k, u, m, n), len, &p)) < 0)
		return e;
	msg_rec_write(r, p, len);
	store_reserve_done(VDB_MSG, k, 12, p, len);
	return 0;
}

int msg_rec_get(struct vault_txn *t, uint32_t u, uint32_t m, uint32_t n, struct msg_rec *out)
{
	const uint8_t *p;
	size_t len;
	uint8_t k[12];
	int e;

	if ((e = store_get(t, VDB_MSG, k, key_msg(k, u, m, n), true, &p, &len)) < 0)
		return e == -ENOENT ? VAULT_ERR_NOMSG : e;
	return msg_rec_parse(p, len, out);
}

/* ---- data keys ------------------------------------------------------------------ */
static void dk_ad(struct vault_ad *a, uint32_t u, uint32_t m, uint32_t n, uint32_t e)
{
	ad_init(a, VP_DK, u);
	ad_u32(a, m);
	ad_u32(a, n);
	ad_u32(a, e);
}

int dk_wrap(uint32_t u, uint32_t m, uint32_t n, uint32_t e, const uint8_t *pk,
    const struct secret *w, const struct secret *dk, struct msg_rec *r)
{
	struct vault_ad ad;
	int rc;

	dk_ad(&ad, u, m, n, e);
	r->epoch = e;
	if (w != NULL) {
		r->wrap = WRAP_SYM;
		return vseal(w, e, &ad, dk->p, dk->len, r->dkwrap, sizeof(r->dkwrap),
		    &r->dkwrap_len);
	}
	r->wrap = WRAP_PK;
	if ((rc = crypto_pk_wrap(pk, ad.b, ad.n, dk->p, dk->len, r->dkwrap)) < 0)
		return rc;
	r->dkwrap_len = dk->len + CRYPTO_PKWRAP_OVERHEAD;
	return 0;
}

/* Opens epochs created by a rotation since k was unlocked, so that k->current_epoch
 * is the store's. k is the caller's heap object; refreshing it is the documented
 * vault_keys_refresh, done on demand (only appends to k->epochs: pointers from
 * keys_epoch() stay valid). */
static int keys_sync_current(struct vault_txn *t, const struct vault_keys *k)
{
	struct user_rec ur;
	int e;

	if ((e = user_rec_get(t, k->user_id, &ur)) < 0)
		return e;
	if (ur.current_epoch == k->current_epoch)
		return 0;
	return keys_refresh_txn(t, (struct vault_keys *)(uintptr_t)k);
}

/* Scratch secure memory for one API call, from the vault's pools (never one
 * sodium_malloc per message). */
struct scratch {
	struct vault *v;
	struct secret dk;		/* 32 B view into buf's tail */
	struct secret *buf;		/* chunk plaintext; DK at CRYPTO_CHUNK_BYTES */
	struct secret *chunk;		/* = buf, for readers */
	struct sbuf *sb;		/* unwrap output */
	struct sbuf *meta;		/* meta plaintext */
};

static void scratch_free(struct scratch *s)
{
	if (s->v == NULL)
		return;
	vault_buf_put(s->v, &s->buf, SIZE_MAX);
	vault_sbuf_put(s->v, &s->sb);
	vault_sbuf_put(s->v, &s->meta);
	memset(s, 0, sizeof(*s));
}

static int scratch_init(struct scratch *s, struct vault *v)
{
	int r;

	memset(s, 0, sizeof(*s));
	s->v = v;
	if ((r = vault_buf_get(v, &s->buf)) < 0 || (r = vault_sbuf_get(v, &s->sb)) < 0 ||
	    (r = vault_sbuf_get(v, &s->meta)) < 0) {
		scratch_free(s);
		return r;
	}
	s->chunk = s->buf;
	s->dk.p = s->buf->p + CRYPTO_CHUNK_BYTES;
	s->dk.len = CRYPTO_KEY_BYTES;
	return 0;
}

static int dk_unwrap_t(struct vault_txn *t, const struct vault_keys *k, uint32_t m, uint32_t n,
    const struct msg_rec *r, struct scratch *s)
{
	const struct vault_epoch_key *ek = keys_epoch(k, r->epoch);
	struct vault_ad ad;
	int e;

	if (ek == NULL && r->epoch > k->current_epoch && t != NULL) {
		/* Rotated by keymgr since this session unlocked: open the new epoch. The
		 * keys object is the caller's heap object; refreshing it is the
		 * documented vault_keys_refresh, done here on demand. */
		if ((e = keys_refresh_txn(t, (struct vault_keys *)(uintptr_t)k)) < 0)
			return e;
		ek = keys_epoch(k, r->epoch);
	}
	if (ek == NULL)
		return VAULT_ERR_TAMPER;
	dk_ad(&ad, k->user_id, m, n, r->epoch);
	if (r->wrap == WRAP_PK) {
		if (r->dkwrap_len != CRYPTO_KEY_BYTES + CRYPTO_PKWRAP_OVERHEAD)
			return VAULT_ERR_TAMPER;
		e = crypto_pk_unwrap(ek->pk, ek->sk, ad.b, ad.n, r->dkwrap, r->dkwrap_len, s->dk.p);
		return vault_open_err(e);
	}
	sbuf_reset(s->sb);
	if ((e = crypto_rec_open(ek->w, ad.b, ad.n, r->dkwrap, r->dkwrap_len, s->sb)) < 0)
		return vault_open_err(e);
	if (s->sb->len != CRYPTO_KEY_BYTES)
		return VAULT_ERR_TAMPER;
	memcpy(s->dk.p, s->sb->d, CRYPTO_KEY_BYTES);
	sbuf_reset(s->sb);
	return 0;
}

/* Opens and parses the sealed meta of a record with s->dk. */
static int meta_open(uint32_t u, uint32_t m, uint32_t n, const struct msg_rec *r,
    struct scratch *s, struct vault_msg_meta *out)
{
	struct vault_ad ad;
	int e;

	meta_ad(&ad, u, m, n);
	sbuf_reset(s->meta);
	if ((e = crypto_rec_open(&s->dk, ad.b, ad.n, r->meta, r->meta_len, s->meta)) < 0)
		return vault_open_err(e);
	e = meta_parse(s->meta->d, s->meta->len, out);
	sbuf_reset(s->meta);
	if (e < 0)
		return e;
	if (r->nchunks != body_nchunks(out->size)) {
		vault_msg_meta_clear(out);
		return VAULT_ERR_TAMPER;	/* clear chunk count disagrees with sealed size */
	}
	out->uid = n;
	out->modseq = r->modseq;
	out->recent = (r->state & MSG_RECENT) != 0;
	return 0;
}

/* ---- body writer ------------------------------------------------------------------- */
int bw_init(struct body_writer *bw, struct vault *v, const struct secret *dk, uint32_t u,
    uint32_t m, uint32_t n, const struct bw_ops *ops, void *arg)
{
	struct sbuf *hb = NULL;
	int r;

	memset(bw, 0, sizeof(*bw));
	bw->v = v;
	bw->dk = dk;
	if (dk == NULL)
		bw->dk = &bw->dkv;
	bw->ops = ops;
	bw->arg = arg;
	body_ad(&bw->ad, u, m, n);
	if ((r = crypto_stream_hdr_init(crypto_default_alg(), 0, &bw->hdr)) < 0)
		return r;
	if ((r = sbuf_new(64, &hb)) < 0)
		return r;
	if ((r = crypto_stream_hdr_put(&bw->hdr, hb)) == 0) {
		if (hb->len != CRYPTO_STREAM_HDR_BYTES)
			r = -EPROTO;
		else
			memcpy(bw->hdr_bytes, hb->d, CRYPTO_STREAM_HDR_BYTES);
	}
	sbuf_free(&hb);
	if (r == 0)
		r = vault_buf_get(v, &bw->buf);
	if (r == 0 && dk == NULL) {
		bw->dkv.p = bw->buf->p + CRYPTO_CHUNK_BYTES;
		bw->dkv.len = CRYPTO_KEY_BYTES;
		crypto_random(bw->dkv.p, bw->dkv.len);
	}
	return r;
}

static int bw_seal(struct body_writer *bw, bool final)
{
	size_t len = bw->fill;
	uint8_t *out;
	int r;

	if (final) {
		size_t pl = body_pad_len(len);

		memset(bw->buf->p + len, 0, pl - len);
		len = pl;
	}
	if ((r = bw->ops->reserve(bw->arg, bw->idx, len + CRYPTO_TAG_BYTES, &out)) < 0)
		return r;
	if ((r = crypto_chunk_seal(&bw->hdr, bw->dk, bw->ad.b, bw->ad.n, bw->idx, final,
	    bw->buf->p, len, out)) < 0)
		return r;
	if ((r = bw->ops->done(bw->arg, bw->idx, out, len + CRYPTO_TAG_BYTES)) < 0)
		return r;
	crypto_wipe(bw->buf->p, len);
	bw->padded += len;
	bw->fill = 0;
	bw->idx++;
	return 0;
}

int bw_write(struct body_writer *bw, const uint8_t *p, size_t n)
{
	int r;

	while (n > 0) {
		size_t k;

		/* A full buffer is sealed only once more data arrives: until then it
		 * may be the final chunk. */
		if (bw->fill == CRYPTO_CHUNK_BYTES && (r = bw_seal(bw, false)) < 0)
			return r;
		k = CRYPTO_CHUNK_BYTES - bw->fill;
		if (k > n)
			k = n;
		memcpy(bw->buf->p + bw->fill, p, k);
		bw->fill += k;
		bw->total += k;
		p += k;
		n -= k;
	}
	return 0;
}

int bw_finish(struct body_writer *bw)
{
	return bw_seal(bw, true);
}

void bw_free(struct body_writer *bw)
{
	if (bw->buf != NULL)
		vault_buf_put(bw->v, &bw->buf, SIZE_MAX);
	crypto_wipe(bw, sizeof(*bw));
}

struct lmdb_emit {
	struct vault_txn *t;
	uint32_t u, m, n;
	uint8_t key[16];
};

static int lmdb_reserve(void *arg, uint32_t idx, size_t ctlen, uint8_t **out)
{
	struct lmdb_emit *e = arg;

	key_chunk(e->key, e->u, e->m, e->n, idx);
	return store_reserve(e->t, VDB_CHUNK, e->key, 16, ctlen, out);
}

static int lmdb_done(void *arg, uint32_t idx, uint8_t *out, size_t ctlen)
{
	struct lmdb_emit *e = arg;

	(void)idx;
	store_reserve_done(VDB_CHUNK, e->key, 16, out, ctlen);
	return 0;
}

static const struct bw_ops lmdb_ops = { lmdb_reserve, lmdb_done };

/* ---- accounting -------------------------------------------------------------------- */
int mbox_alloc_uid(struct vault_txn *t, uint32_t u, uint32_t m, uint32_t *uid_out,
    uint64_t *modseq_out)
{
	struct mbox_rec r;
	int e;

	if ((e = mbox_rec_get(t, u, m, &r)) < 0)
		return e;
	if (r.uidnext == UINT32_MAX)
		return -EOVERFLOW;	/* RFC 9051 2.3.1.1: a new UIDVALIDITY would be needed */
	*uid_out = r.uidnext++;
	*modseq_out = ++r.highestmodseq;
	return mbox_rec_put(t, u, m, &r);
}

int msg_finish_new(struct vault_txn *t, uint32_t u, uint32_t m, uint32_t n, uint64_t modseq,
    const struct secret *dk, const struct vault_msg_meta *meta, const uint8_t *hdr_bytes,
    uint32_t nchunks, uint64_t padded, uint32_t epoch, const uint8_t *pk,
    const struct secret *w, int64_t now)
{
	struct secret *pt = NULL;
	struct sbuf *ct = NULL;
	struct msg_rec r;
	struct mbox_rec mr;
	struct counters_rec c;
	struct vault_ad ad;
	size_t ptlen = 0;
	int e;

	memset(&r, 0, sizeof(r));
	if ((e = vault_buf_get(t->v, &pt)) < 0 || (e = sbuf_new(META_PT_MAX + 128, &ct)) < 0)
		goto out;
	if ((e = meta_serialize(meta, pt->p, pt->len, &ptlen)) < 0)
		goto out;
	meta_ad(&ad, u, m, n);
	if ((e = crypto_rec_seal(crypto_default_alg(), dk, 0, ad.b, ad.n, pt->p, ptlen, ct)) < 0)
		goto out;
	r.modseq = modseq;
	r.arrival_hour = now > 0 ? (uint32_t)(now / 3600) : 0;
	r.padded_size = padded;
	r.nchunks = nchunks;
	r.state = MSG_RECENT;
	memcpy(r.stream_hdr, hdr_bytes, sizeof(r.stream_hdr));
	if ((e = dk_wrap(u, m, n, epoch, pk, w, dk, &r)) < 0)
		goto out;
	r.meta = ct->d;
	r.meta_len = ct->len;
	if ((e = msg_rec_put(t, u, m, n, &r)) < 0)
		goto out;
	if ((e = mbox_rec_get(t, u, m, &mr)) < 0)
		goto out;
	mr.messages++;
	mr.padded_bytes += padded;
	if (r.wrap == WRAP_PK && mr.first_pk_uid == 0)
		mr.first_pk_uid = n;
	if ((e = mbox_rec_put(t, u, m, &mr)) < 0 || (e = counters_get(t, u, &c)) < 0)
		goto out;
	c.messages++;
	c.stored_bytes += padded;
	e = counters_put(t, u, &c);
out:
	vault_buf_put(t->v, &pt, ptlen);
	sbuf_free(&ct);
	return e;
}

static bool keywords_ok(char *const *kw, uint32_t n)
{
	if (n > VAULT_MAX_KEYWORDS || (n > 0 && kw == NULL))
		return false;
	for (uint32_t i = 0; i < n; i++)
		if (kw[i] == NULL || !keyword_ok(kw[i]))
			return false;
	return true;
}

#define VALID_FLAGS (VAULT_F_SEEN | VAULT_F_ANSWERED | VAULT_F_FLAGGED | VAULT_F_DELETED | \
	VAULT_F_DRAFT)

/* ---- list ------------------------------------------------------------------------ */
/* Re-wraps (adopts) a record at the cursor and/or claims \Recent. */
static int rec_rewrite(MDB_cursor *c, struct vault_txn *t, const uint8_t *key,
    const struct msg_rec *r)
{
	size_t len = msg_rec_len(r) + VAULT_REC_OVERHEAD;
	uint8_t *val;
	MDB_val k = { 12, (void *)key }, d;
	int rc;

	if ((val = malloc(len)) == NULL)
		return -ENOMEM;
	val[0] = VAULT_REC_VERSION;
	msg_rec_write(r, val + 1, len - VAULT_REC_OVERHEAD);
	store_reserve_done(VDB_MSG, key, 12, val + 1, len - VAULT_REC_OVERHEAD);
	d.mv_size = len;
	d.mv_data = val;
	rc = mdb_cursor_put(c, &k, &d, MDB_CURRENT);
	free(val);
	return store_err(t, rc);
}

int vault_msg_list(struct vault_txn *t, const struct vault_keys *k, uint32_t mbox,
    uint32_t min_uid, int (*cb)(const struct vault_msg_meta *m, void *arg), void *arg)
{
	const struct vault_epoch_key *cur;
	struct scratch s;
	struct mbox_rec mr;
	struct vault_msg_meta meta;
	MDB_cursor *c = NULL;
	MDB_val kk, d;
	uint8_t start[12], key[12], *metacopy = NULL;
	uint64_t adopted_size = 0;
	uint32_t pending_dec = 0, u = k->user_id;
	bool complete = false, any_adopted = false;
	int rc, e;

	if ((e = mbox_rec_get(t, u, mbox, &mr)) < 0)
		return e;
	/* Adoption re-wraps to k's current epoch: make sure it is the store's (keymgr may
	 * have rotated since the keys were opened; never re-wrap down to an older one). */
	if (t->write && (e = keys_sync_current(t, k)) < 0)
		return e;
	if ((e = scratch_init(&s, t->v)) < 0)
		return e;
	memset(&meta, 0, sizeof(meta));
	cur = keys_epoch(k, k->current_epoch);
	if ((rc = mdb_cursor_open(t->txn, t->v->dbi[VDB_MSG], &c)) != 0) {
		e = store_err(t, rc);
		goto out;
	}
	kk.mv_size = key_msg(start, u, mbox, min_uid);
	kk.mv_data = start;
	for (rc = mdb_cursor_get(c, &kk, &d, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &kk, &d, MDB_NEXT)) {
		struct msg_rec r;
		uint32_t n;

		if (kk.mv_size != 12 || memcmp(kk.mv_data, start, 8) != 0)
			break;
		memcpy(key, kk.mv_data, 12);
		n = be32_get(key + 8);
		if ((e = vault_record_check(vault_db_names[VDB_MSG], key, 12, d.mv_data,
		    d.mv_size)) < 0 ||
		    (e = msg_rec_parse((const uint8_t *)d.mv_data + 1, d.mv_size - VAULT_REC_OVERHEAD,
		    &r)) < 0)
			goto out;
		if ((e = dk_unwrap_t(t, k, mbox, n, &r, &s)) < 0 ||
		    (e = meta_open(u, mbox, n, &r, &s, &meta)) < 0)
			goto out;
		if (t->write && cur != NULL &&
		    (r.wrap == WRAP_PK || r.epoch != cur->epoch || (r.state & MSG_RECENT))) {
			/* The sealed meta points into the page we are about to replace. */
			free(metacopy);
			if ((metacopy = malloc(r.meta_len ? r.meta_len : 1)) == NULL) {
				e = -ENOMEM;
				goto out;
			}
			memcpy(metacopy, r.meta, r.meta_len);
			r.meta = metacopy;
			if (r.wrap == WRAP_PK || r.epoch != cur->epoch) {
				if (r.wrap == WRAP_PK)
					adopted_size += meta.size;
				if (r.epoch < cur->epoch)
					pending_dec++;
				if ((e = dk_wrap(u, mbox, n, cur->epoch, NULL, cur->w, &s.dk, &r)) < 0)
					goto out;
				any_adopted = true;
			}
			r.state &= (uint8_t)~MSG_RECENT;
			if ((e = rec_rewrite(c, t, key, &r)) < 0)
				goto out;
		}
		e = cb(&meta, arg);
		vault_msg_meta_clear(&meta);
		if (e != 0)
			goto out;
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		e = store_err(t, rc);
		goto out;
	}
	complete = true;
	e = 0;
out:
	vault_msg_meta_clear(&meta);
	if (c != NULL)
		mdb_cursor_close(c);
	/* Adoption bookkeeping, also when the callback stopped early. */
	if (t->write && e >= 0 && any_adopted) {
		int e2 = 0;

		if (mbox_rec_get(t, u, mbox, &mr) == 0 && complete && mr.first_pk_uid != 0 &&
		    min_uid <= mr.first_pk_uid) {
			mr.first_pk_uid = 0;
			e2 = mbox_rec_put(t, u, mbox, &mr);
		}
		if (e2 == 0 && adopted_size > 0)
			e2 = mbox_adjust_size(t, k, mbox, (int64_t)adopted_size);
		if (e2 == 0 && pending_dec > 0) {
			struct counters_rec cr;

			if ((e2 = counters_get(t, u, &cr)) == 0) {
				cr.pending_rewrap = cr.pending_rewrap > pending_dec ?
				    cr.pending_rewrap - pending_dec : 0;
				e2 = counters_put(t, u, &cr);
			}
		}
		if (e2 < 0)
			e = e2;
	}
	free(metacopy);
	scratch_free(&s);
	return e;
}

int msgs_pending_size(struct vault_txn *t, const struct vault_keys *k, uint32_t m,
    uint32_t from_uid, uint64_t *size_out)
{
	struct scratch s;
	MDB_cursor *c = NULL;
	MDB_val kk, d;
	uint8_t start[12];
	int rc, e;

	*size_out = 0;
	if ((e = scratch_init(&s, t->v)) < 0)
		return e;
	if ((rc = mdb_cursor_open(t->txn, t->v->dbi[VDB_MSG], &c)) != 0) {
		e = store_err(t, rc);
		goto out;
	}
	kk.mv_size = key_msg(start, k->user_id, m, from_uid);
	kk.mv_data = start;
	for (rc = mdb_cursor_get(c, &kk, &d, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &kk, &d, MDB_NEXT)) {
		struct vault_msg_meta meta;
		struct msg_rec r;
		uint32_t n;

		if (kk.mv_size != 12 || memcmp(kk.mv_data, start, 8) != 0)
			break;
		n = be32_get((const uint8_t *)kk.mv_data + 8);
		if ((e = msg_rec_parse((const uint8_t *)d.mv_data + 1, d.mv_size - VAULT_REC_OVERHEAD,
		    &r)) < 0)
			goto out;
		if (r.wrap != WRAP_PK)
			continue;
		if ((e = dk_unwrap_t(t, k, m, n, &r, &s)) < 0 ||
		    (e = meta_open(k->user_id, m, n, &r, &s, &meta)) < 0)
			goto out;
		*size_out += meta.size;
		vault_msg_meta_clear(&meta);
	}
	e = rc == 0 || rc == MDB_NOTFOUND ? 0 : store_err(t, rc);
out:
	if (c != NULL)
		mdb_cursor_close(c);
	scratch_free(&s);
	return e;
}

/* Record + data key + meta of one message. */
static int msg_load(struct vault_txn *t, const struct vault_keys *k, uint32_t m, uint32_t n,
    struct msg_rec *r, struct scratch *s, struct vault_msg_meta *meta)
{
	int e;

	if ((e = msg_rec_get(t, k->user_id, m, n, r)) < 0)
		return e;
	if ((e = dk_unwrap_t(t, k, m, n, r, s)) < 0)
		return e;
	return meta_open(k->user_id, m, n, r, s, meta);
}

int vault_msg_get_meta(struct vault_txn *t, const struct vault_keys *k, uint32_t mbox,
    uint32_t uid, struct vault_msg_meta *out)
{
	struct scratch s;
	struct msg_rec r;
	int e;

	memset(out, 0, sizeof(*out));
	if ((e = scratch_init(&s, t->v)) < 0)
		return e;
	e = msg_load(t, k, mbox, uid, &r, &s, out);
	scratch_free(&s);
	return e;
}

/* Opens chunk i of a message into s->chunk; *ptlen_out = plaintext bytes (padded). */
static int chunk_open(struct vault_txn *t, uint32_t u, uint32_t m, uint32_t n,
    const struct crypto_stream_hdr *h, const struct vault_ad *ad, uint64_t size, uint32_t i,
    uint32_t nchunks, struct scratch *s, size_t *ptlen_out)
{
	const uint8_t *ct;
	size_t ctlen, want;
	uint8_t key[16];
	bool final = i + 1 == nchunks;
	int e;

	want = final ? body_pad_len((size_t)(size - (uint64_t)i * CRYPTO_CHUNK_BYTES)) :
	    CRYPTO_CHUNK_BYTES;
	if ((e = store_get(t, VDB_CHUNK, key, key_chunk(key, u, m, n, i), false, &ct, &ctlen)) < 0)
		return e == -ENOENT ? VAULT_ERR_TAMPER : e;	/* a dropped chunk */
	if (ctlen != want + CRYPTO_TAG_BYTES)
		return VAULT_ERR_TAMPER;
	if ((e = crypto_chunk_open(h, &s->dk, ad->b, ad->n, i, final, ct, ctlen, s->chunk->p)) < 0)
		return vault_open_err(e);
	*ptlen_out = want;
	return 0;
}

static int parse_hdr(const struct msg_rec *r, struct crypto_stream_hdr *h)
{
	struct sbuf b;

	sbuf_from(&b, r->stream_hdr, sizeof(r->stream_hdr));
	return crypto_stream_hdr_get(&b, h) < 0 ? VAULT_ERR_TAMPER : 0;
}

int vault_msg_read(struct vault_txn *t, const struct vault_keys *k, uint32_t mbox,
    uint32_t uid, uint64_t off, uint64_t len, struct sbuf **out)
{
	struct scratch s;
	struct msg_rec r;
	struct vault_msg_meta meta;
	struct crypto_stream_hdr h;
	struct vault_ad ad;
	struct sbuf *b = NULL;
	uint64_t end;
	int e;

	*out = NULL;
	memset(&meta, 0, sizeof(meta));
	if ((e = scratch_init(&s, t->v)) < 0)
		return e;
	if ((e = msg_load(t, k, mbox, uid, &r, &s, &meta)) < 0 || (e = parse_hdr(&r, &h)) < 0)
		goto out;
	if (off > meta.size)
		off = meta.size;
	end = len > meta.size - off ? meta.size : off + len;
	if (end - off > SIZE_MAX - 1) {
		e = -E2BIG;
		goto out;
	}
	/* Small reads (most mail) take a pooled buffer (vault_sbuf_release). */
	e = (size_t)(end - off) + 1 <= VAULT_SBUF_MAX ? vault_sbuf_get(t->v, &b) :
	    sbuf_new_secure((size_t)(end - off) + 1, &b);
	if (e < 0)
		goto out;
	body_ad(&ad, k->user_id, mbox, uid);
	for (uint64_t pos = off; pos < end;) {
		uint32_t i = (uint32_t)(pos / CRYPTO_CHUNK_BYTES);
		uint64_t cstart = (uint64_t)i * CRYPTO_CHUNK_BYTES;
		size_t ptlen, from = (size_t)(pos - cstart), to;

		if ((e = chunk_open(t, k->user_id, mbox, uid, &h, &ad, meta.size, i, r.nchunks, &s,
		    &ptlen)) < 0)
			goto out;
		to = end - cstart < ptlen ? (size_t)(end - cstart) : ptlen;
		if ((e = sbuf_put(b, s.chunk->p + from, to - from)) < 0)
			goto out;
		pos = cstart + to;
	}
	*out = b;
	b = NULL;
	e = 0;
out:
	vault_sbuf_release(t->v, &b);
	vault_msg_meta_clear(&meta);
	scratch_free(&s);
	return e;
}

/* ---- cache ---------------------------------------------------------------------- */
int vault_msg_get_cache(struct vault_txn *t, const struct vault_keys *k, uint32_t mbox,
    uint32_t uid, struct sbuf **out)
{
	struct scratch s;
	struct msg_rec r;
	struct vault_ad ad;
	struct sbuf *b = NULL;
	const uint8_t *p;
	size_t n;
	uint8_t key[12];
	int e;

	*out = NULL;
	if ((e = scratch_init(&s, t->v)) < 0)
		return e;
	if ((e = msg_rec_get(t, k->user_id, mbox, uid, &r)) < 0)
		goto out;
	/* No framing hash: the whole value but the version byte (checked) is one AEAD
	 * record whose AD binds user, mailbox and UID, opened below; the hash would
	 * authenticate the same bytes a second time. verify and backup still check it. */
	if ((e = store_get(t, VDB_CACHE, key, key_msg(key, k->user_id, mbox, uid), false, &p,
	    &n)) < 0)
		goto out;	/* -ENOENT: none yet */
	if ((e = dk_unwrap_t(t, k, mbox, uid, &r, &s)) < 0)
		goto out;
	if ((e = n <= VAULT_SBUF_MAX ? vault_sbuf_get(t->v, &b) : sbuf_new_secure(n, &b)) < 0)
		goto out;
	cache_ad(&ad, k->user_id, mbox, uid);
	if ((e = crypto_rec_open(&s.dk, ad.b, ad.n, p, n, b)) < 0) {
		e = vault_open_err(e);
		goto out;
	}
	*out = b;
	b = NULL;
out:
	vault_sbuf_release(t->v, &b);
	scratch_free(&s);
	return e;
}

static int cache_put(struct vault_txn *t, uint32_t u, uint32_t m, uint32_t n,
    const struct secret *dk, const uint8_t *blob, size_t len)
{
	struct sbuf *ct = NULL;
	struct vault_ad ad;
	uint8_t key[12];
	int e;

	if (len > VAULT_META_CACHE_MAX)
		return -E2BIG;
	if ((e = sbuf_new(len + 128, &ct)) < 0)
		return e;
	cache_ad(&ad, u, m, n);
	if ((e = crypto_rec_seal(crypto_default_alg(), dk, 0, ad.b, ad.n, blob, len, ct)) == 0)
		e = store_put(t, VDB_CACHE, key, key_msg(key, u, m, n), ct->d, ct->len);
	sbuf_free(&ct);
	return e;
}

int vault_msg_set_cache(struct vault_txn *t, const struct vault_keys *k, uint32_t mbox,
    uint32_t uid, const uint8_t *blob, size_t len)
{
	struct scratch s;
	struct msg_rec r;
	int e;

	if (len > VAULT_META_CACHE_MAX)
		return -E2BIG;
	if ((e = scratch_init(&s, t->v)) < 0)
		return e;
	if ((e = msg_rec_get(t, k->user_id, mbox, uid, &r)) == 0 &&
	    (e = dk_unwrap_t(t, k, mbox, uid, &r, &s)) == 0)
		e = cache_put(t, k->user_id, mbox, uid, &s.dk, blob, len);
	scratch_free(&s);
	return e;
}

/* ---- append / copy ------------------------------------------------------------------ */
static int store_body_new(struct vault_txn *t, const struct vault_keys *k, uint32_t m,
    uint32_t n, uint64_t modseq, const struct vault_msg_meta *meta, struct body_writer *bw)
{
	const struct vault_epoch_key *cur;
	int e;

	/* New mail goes to the store's current epoch, never to one the session still
	 * believes current (it may have been retired since). */
	if ((e = keys_sync_current(t, k)) < 0)
		return e;
	if ((cur = keys_epoch(k, k->current_epoch)) == NULL)
		return VAULT_ERR_CORRUPT;
	if ((e = bw_finish(bw)) < 0)
		return e;
	if ((e = msg_finish_new(t, k->user_id, m, n, modseq, bw->dk, meta, bw->hdr_bytes, bw->idx,
	    bw->padded, cur->epoch, NULL, cur->w, time(NULL))) < 0)
		return e;
	if ((e = mbox_adjust_size(t, k, m, (int64_t)meta->size)) < 0)
		return e;
	return user_bump_change(t, k->user_id);
}

int vault_msg_append(struct vault_txn *t, const struct vault_keys *k, uint32_t mbox,
    const uint8_t *msg, size_t len, const struct vault_msg_meta *meta, uint32_t *uid_out)
{
	struct vault_msg_meta m;
	struct body_writer bw;
	struct lmdb_emit em;
	uint64_t modseq;
	uint32_t n;
	int e;

	memset(&bw, 0, sizeof(bw));
	if (len > t->v->cfg.max_message_size)
		return -E2BIG;
	if (meta != NULL && !keywords_ok(meta->keywords, meta->nkeywords))
		return -EINVAL;
	if ((e = mbox_alloc_uid(t, k->user_id, mbox, &n, &modseq)) < 0)
		return e;
	memset(&m, 0, sizeof(m));
	if (meta != NULL) {
		m.flags = meta->flags & VALID_FLAGS;
		m.nkeywords = meta->nkeywords;
		memcpy(m.keywords, meta->keywords, sizeof(char *) * meta->nkeywords);
		m.internal_date = meta->internal_date;
		m.internal_tz = meta->internal_tz;
	}
	m.save_date = (int64_t)time(NULL);
	if (m.internal_date == 0)
		m.internal_date = m.save_date;
	m.size = len;
	crypto_random(m.emailid, sizeof(m.emailid));
	em.t = t;
	em.u = k->user_id;
	em.m = mbox;
	em.n = n;
	if ((e = bw_init(&bw, t->v, NULL, k->user_id, mbox, n, &lmdb_ops, &em)) < 0 ||
	    (e = bw_write(&bw, msg, len)) < 0 ||
	    (e = store_body_new(t, k, mbox, n, modseq, &m, &bw)) < 0)
		goto out;
	if (uid_out != NULL)
		*uid_out = n;
out:
	bw_free(&bw);
	return e;
}

int vault_msg_copy(struct vault_txn *t, const struct vault_keys *k, uint32_t src,
    uint32_t uid, uint32_t dst, uint32_t *new_uid_out)
{
	struct scratch s;
	struct msg_rec r;
	struct vault_msg_meta meta;
	struct crypto_stream_hdr h;
	struct body_writer bw;
	struct lmdb_emit em;
	struct vault_ad ad;
	struct sbuf *cache = NULL;
	uint64_t modseq;
	uint32_t n, u = k->user_id;
	int e;

	memset(&bw, 0, sizeof(bw));
	memset(&meta, 0, sizeof(meta));
	if ((e = scratch_init(&s, t->v)) < 0)
		return e;
	if ((e = msg_load(t, k, src, uid, &r, &s, &meta)) < 0 || (e = parse_hdr(&r, &h)) < 0)
		goto out;
	e = vault_msg_get_cache(t, k, src, uid, &cache);
	if (e < 0 && e != -ENOENT)
		goto out;
	if ((e = mbox_alloc_uid(t, u, dst, &n, &modseq)) < 0)
		goto out;
	em.t = t;
	em.u = u;
	em.m = dst;
	em.n = n;
	/* A fresh data key: the AD binds mailbox and UID, so every part is re-sealed. */
	if ((e = bw_init(&bw, t->v, NULL, u, dst, n, &lmdb_ops, &em)) < 0)
		goto out;
	body_ad(&ad, u, src, uid);
	for (uint32_t i = 0; i < r.nchunks; i++) {
		size_t ptlen, real;
		uint64_t cstart = (uint64_t)i * CRYPTO_CHUNK_BYTES;

		/* Reads the source chunk out of the map before any write moves pages. */
		if ((e = chunk_open(t, u, src, uid, &h, &ad, meta.size, i, r.nchunks, &s, &ptlen)) < 0)
			goto out;
		real = meta.size - cstart < ptlen ? (size_t)(meta.size - cstart) : ptlen;
		if ((e = bw_write(&bw, s.chunk->p, real)) < 0)
			goto out;
	}
	meta.save_date = (int64_t)time(NULL);
	if ((e = store_body_new(t, k, dst, n, modseq, &meta, &bw)) < 0)
		goto out;
	if (cache != NULL && (e = cache_put(t, u, dst, n, bw.dk, cache->d, cache->len)) < 0)
		goto out;
	if (new_uid_out != NULL)
		*new_uid_out = n;
	e = 0;
out:
	vault_msg_meta_clear(&meta);
	bw_free(&bw);
	sbuf_free(&cache);
	scratch_free(&s);
	return e;
}

/* ---- flags / expunge / vanished ------------------------------------------------------ */
static bool kw_in(char *const *set, uint32_t n, const char *kw)
{
	for (uint32_t i = 0; i < n; i++)
		if (strcmp(set[i], kw) == 0)
			return true;
	return false;
}

int vault_msg_set_flags(struct vault_txn *t, const struct vault_keys *k, uint32_t mbox,
    uint32_t uid, uint32_t flags, char *const *keywords, uint32_t nkeywords,
    uint64_t *modseq_out)
{
	struct scratch s;
	struct msg_rec r;
	struct vault_msg_meta meta, nm;
	struct mbox_rec mr;
	struct secret *pt = NULL;
	struct sbuf *ct = NULL;
	struct vault_ad ad;
	size_t ptlen = 0;
	bool same;
	int e;

	memset(&meta, 0, sizeof(meta));
	if (!keywords_ok(keywords, nkeywords))
		return -EINVAL;
	flags &= VALID_FLAGS;
	if ((e = scratch_init(&s, t->v)) < 0)
		return e;
	if ((e = msg_load(t, k, mbox, uid, &r, &s, &meta)) < 0)
		goto out;
	same = meta.flags == flags;
	for (uint32_t i = 0; same && i < nkeywords; i++)
		same = kw_in(meta.keywords, meta.nkeywords, keywords[i]);
	for (uint32_t i = 0; same && i < meta.nkeywords; i++)
		same = kw_in(keywords, nkeywords, meta.keywords[i]);
	if (same) {
		/* RFC 7162 3.2: no change, no new mod-sequence. */
		if (modseq_out != NULL)
			*modseq_out = r.modseq;
		goto out;
	}
	nm = meta;
	nm.flags = flags;
	nm.nkeywords = 0;
	for (uint32_t i = 0; i < nkeywords; i++)	/* dedupe */
		if (!kw_in(nm.keywords, nm.nkeywords, keywords[i]))
			nm.keywords[nm.nkeywords++] = keywords[i];
	if ((e = vault_buf_get(t->v, &pt)) < 0 || (e = sbuf_new(META_PT_MAX + 128, &ct)) < 0 ||
	    (e = meta_serialize(&nm, pt->p, pt->len, &ptlen)) < 0)
		goto out;
	meta_ad(&ad, k->user_id, mbox, uid);
	if ((e = crypto_rec_seal(crypto_default_alg(), &s.dk, 0, ad.b, ad.n, pt->p, ptlen, ct)) < 0)
		goto out;
	if ((e = mbox_rec_get(t, k->user_id, mbox, &mr)) < 0)
		goto out;
	r.modseq = ++mr.highestmodseq;
	r.meta = ct->d;
	r.meta_len = ct->len;
	if ((e = mbox_rec_put(t, k->user_id, mbox, &mr)) < 0 ||
	    (e = msg_rec_put(t, k->user_id, mbox, uid, &r)) < 0 ||
	    (e = user_bump_change(t, k->user_id)) < 0)
		goto out;
	if (modseq_out != NULL)
		*modseq_out = r.modseq;
out:
	vault_msg_meta_clear(&meta);
	vault_buf_put(t->v, &pt, ptlen);
	sbuf_free(&ct);
	scratch_free(&s);
	return e;
}

int vault_msg_expunge(struct vault_txn *t, const struct vault_keys *k, uint32_t mbox,
    uint32_t uid)
{
	struct scratch s;
	struct msg_rec r;
	struct vault_msg_meta meta;
	struct mbox_rec mr;
	struct user_rec ur;
	struct counters_rec c;
	uint8_t key[12], mod[8];
	uint64_t exact = 0;
	uint32_t u = k->user_id;
	int e;

	memset(&meta, 0, sizeof(meta));
	if ((e = scratch_init(&s, t->v)) < 0)
		return e;
	if ((e = msg_rec_get(t, u, mbox, uid, &r)) < 0)
		goto out;
	if (r.wrap == WRAP_SYM) {
		/* Adopted: its exact size is in the sealed mailbox sum. */
		if ((e = dk_unwrap_t(t, k, mbox, uid, &r, &s)) < 0 ||
		    (e = meta_open(u, mbox, uid, &r, &s, &meta)) < 0)
			goto out;
		exact = meta.size;
	}
	if ((e = user_rec_get(t, u, &ur)) < 0 || (e = mbox_rec_get(t, u, mbox, &mr)) < 0)
		goto out;
	key_msg(key, u, mbox, uid);
	if ((e = store_del(t, VDB_MSG, key, 12)) < 0 ||
	    (e = store_del_prefix(t, VDB_CHUNK, key, 12, 0)) < 0)
		goto out;
	e = store_del(t, VDB_CACHE, key, 12);
	if (e < 0 && e != -ENOENT)
		goto out;
	mr.messages = mr.messages > 0 ? mr.messages - 1 : 0;
	mr.padded_bytes = mr.padded_bytes > r.padded_size ? mr.padded_bytes - r.padded_size : 0;
	be64_put(mod, ++mr.highestmodseq);
	if ((e = mbox_rec_put(t, u, mbox, &mr)) < 0 ||
	    (e = store_put(t, VDB_VANISHED, key, 12, mod, 8)) < 0)
		goto out;
	if ((e = counters_get(t, u, &c)) < 0)
		goto out;
	c.messages = c.messages > 0 ? c.messages - 1 : 0;
	c.stored_bytes = c.stored_bytes > r.padded_size ? c.stored_bytes - r.padded_size : 0;
	if (r.epoch < ur.current_epoch && c.pending_rewrap > 0)
		c.pending_rewrap--;
	c.change_seq++;
	if ((e = counters_put(t, u, &c)) < 0)
		goto out;
	if (exact > 0)
		e = mbox_adjust_size(t, k, mbox, -(int64_t)exact);
out:
	vault_msg_meta_clear(&meta);
	scratch_free(&s);
	return e;
}

int vault_msg_vanished(struct vault_txn *t, uint32_t user_id, uint32_t mbox,
    uint64_t since, int (*cb)(uint32_t uid, void *arg), void *arg)
{
	MDB_cursor *c = NULL;
	MDB_val kk, d;
	uint8_t pre[8];
	int rc, e = 0;

	if ((rc = mdb_cursor_open(t->txn, t->v->dbi[VDB_VANISHED], &c)) != 0)
		return store_err(t, rc);
	kk.mv_size = key_mbox(pre, user_id, mbox);
	kk.mv_data = pre;
	for (rc = mdb_cursor_get(c, &kk, &d, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &kk, &d, MDB_NEXT)) {
		uint32_t n;

		if (kk.mv_size != 12 || memcmp(kk.mv_data, pre, 8) != 0)
			break;
		if (d.mv_size != 8 + VAULT_REC_OVERHEAD) {
			e = VAULT_ERR_CORRUPT;
			break;
		}
		n = be32_get((const uint8_t *)kk.mv_data + 8);
		if (be64_get((const uint8_t *)d.mv_data + 1) > since && (e = cb(n, arg)) != 0)
			break;
	}
	mdb_cursor_close(c);
	if (e == 0 && rc != 0 && rc != MDB_NOTFOUND)
		e = store_err(t, rc);
	return e;
}

int msgs_delete_mailbox(struct vault_txn *t, uint32_t u, uint32_t m, uint32_t current_epoch)
{
	MDB_cursor *c = NULL;
	MDB_val kk, d;
	uint8_t pre[8];
	uint64_t count = 0, bytes = 0;
	uint32_t older = 0;
	struct counters_rec cr;
	static const enum vdb dbs[] = { VDB_CHUNK, VDB_CACHE, VDB_MSG, VDB_VANISHED };
	int rc, e;

	if ((rc = mdb_cursor_open(t->txn, t->v->dbi[VDB_MSG], &c)) != 0)
		return store_err(t, rc);
	kk.mv_size = key_mbox(pre, u, m);
	kk.mv_data = pre;
	for (rc = mdb_cursor_get(c, &kk, &d, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &kk, &d, MDB_NEXT)) {
		struct msg_rec r;

		if (kk.mv_size != 12 || memcmp(kk.mv_data, pre, 8) != 0)
			break;
		count++;
		if (msg_rec_parse((const uint8_t *)d.mv_data + 1, d.mv_size - VAULT_REC_OVERHEAD,
		    &r) == 0) {
			bytes += r.padded_size;
			if (r.epoch < current_epoch)
				older++;
		}
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return store_err(t, rc);
	for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++)
		if ((e = store_del_prefix(t, dbs[i], pre, sizeof(pre), 0)) < 0)
			return e;
	if ((e = counters_get(t, u, &cr)) < 0)
		return e;
	cr.messages = cr.messages > count ? cr.messages - count : 0;
	cr.stored_bytes = cr.stored_bytes > bytes ? cr.stored_bytes - bytes : 0;
	cr.pending_rewrap = cr.pending_rewrap > older ? cr.pending_rewrap - older : 0;
	return counters_put(t, u, &cr);
}

/* ---- background re-wrap (rotation) ---------------------------------------------------
 * After keymgr rotates, every data key wrapped under an older epoch is re-wrapped to
 * the current one by the user's session, a bounded batch per call, so that the older
 * epochs can be retired (their secrets destroyed). Only the DK wrap in the message
 * record changes; modseq, flags and bodies stay, so clients see nothing. */
#define REWRAP_SCAN_FACTOR 16	/* records looked at per re-wrap allowed in one call */

/* Recomputes the sealed exact-size sum of mailbox m from its messages' metas (after a
 * keyless forced retirement removed adopted messages), then drops m from the list. */
static int sizefix_step(struct vault_txn *t, const struct vault_keys *k, uint32_t m)
{
	struct vault_mailbox mb;
	struct scratch s;
	MDB_cursor *c = NULL;
	MDB_val kk, d;
	uint8_t start[12];
	uint64_t exact = 0;
	int rc, e;

	e = vault_mailbox_get(t, k, m, &mb);
	if (e == VAULT_ERR_NOMBOX)
		return sizefix_remove(t, k->user_id, m);
	if (e < 0)
		return e;
	if ((e = scratch_init(&s, t->v)) < 0)
		return e;
	if ((rc = mdb_cursor_open(t->txn, t->v->dbi[VDB_MSG], &c)) != 0) {
		e = store_err(t, rc);
		goto out;
	}
	kk.mv_size = key_msg(start, k->user_id, m, 0);
	kk.mv_data = start;
	for (rc = mdb_cursor_get(c, &kk, &d, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &kk, &d, MDB_NEXT)) {
		struct vault_msg_meta meta;
		struct msg_rec r;
		uint32_t n;

		if (kk.mv_size != 12 || memcmp(kk.mv_data, start, 8) != 0)
			break;
		n = be32_get((const uint8_t *)kk.mv_data + 8);
		if ((e = msg_rec_parse((const uint8_t *)d.mv_data + 1, d.mv_size - VAULT_REC_OVERHEAD,
		    &r)) < 0 || (e = dk_unwrap_t(t, k, m, n, &r, &s)) < 0 ||
		    (e = meta_open(k->user_id, m, n, &r, &s, &meta)) < 0)
			goto out;
		exact += meta.size;
		vault_msg_meta_clear(&meta);
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		e = store_err(t, rc);
		goto out;
	}
	mdb_cursor_close(c);
	c = NULL;
	/* mb.size = sealed sum + sizes of still pk-wrapped messages; exact counts both. */
	if (exact != mb.size &&
	    (e = mbox_adjust_size(t, k, m, (int64_t)exact - (int64_t)mb.size)) < 0)
		goto out;
	e = sizefix_remove(t, k->user_id, m);
out:
	if (c != NULL)
		mdb_cursor_close(c);
	scratch_free(&s);
	return e;
}

int vault_rewrap_batch(struct vault_txn *t, const struct vault_keys *kc, unsigned max,
    unsigned *done_out)
{
	/* The keys object is the caller's heap object: the re-wrap position lives in
	 * k->rw (a pointer member), and a rotation since unlock is opened on demand
	 * (the documented vault_keys_refresh). */
	struct vault_keys *k = (struct vault_keys *)(uintptr_t)kc;
	struct keys_rewrap *rw = k->rw;
	const struct vault_epoch_key *cur;
	struct scratch s;
	MDB_cursor *c = NULL;
	MDB_val kk, d;
	uint8_t pre[4], key[12];
	unsigned done = 0, seen = 0, limit;
	uint32_t pending_dec = 0, u = k->user_id, fixm;
	bool has_old, end = false;
	int rc, e;

	if (done_out != NULL)
		*done_out = 0;
	if (!t->write || rw == NULL)
		return -EINVAL;
	rw->nretired = 0;
	if (max == 0)
		max = 1;
	limit = max > UINT_MAX / REWRAP_SCAN_FACTOR ? UINT_MAX : max * REWRAP_SCAN_FACTOR;
	if ((e = keys_sync_current(t, k)) < 0)
		return e;
	if ((cur = keys_epoch(k, k->current_epoch)) == NULL)
		return VAULT_ERR_CORRUPT;
	/* Stale exact-size sums (a forced retirement) first: one mailbox per call. */
	e = sizefix_first(t, u, &fixm);
	if (e == 0) {
		if ((e = sizefix_step(t, k, fixm)) < 0)
			return e;
		return 1;
	}
	if (e != -ENOENT)
		return e;
	if ((e = epochs_have_old(t, u, cur->epoch, &has_old)) < 0)
		return e;
	if (!has_old || rw->settled_epoch == cur->epoch) {
		rw->active = false;
		return 0;
	}
	if (!rw->active || rw->pass_epoch != cur->epoch) {
		rw->active = true;
		rw->pass_epoch = cur->epoch;
		rw->pass_clean = true;
		key_msg(rw->next, u, 0, 0);
	}
	if ((e = scratch_init(&s, t->v)) < 0)
		return e;
	be32_put(pre, u);
	if ((rc = mdb_cursor_open(t->txn, t->v->dbi[VDB_MSG], &c)) != 0) {
		e = store_err(t, rc);
		goto out;
	}
	kk.mv_size = sizeof(rw->next);
	kk.mv_data = rw->next;
	for (rc = mdb_cursor_get(c, &kk, &d, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &kk, &d, MDB_NEXT)) {
		struct msg_rec r;
		uint32_t m, n, old;

		if (kk.mv_size != 12 || memcmp(kk.mv_data, pre, 4) != 0)
			break;
		memcpy(key, kk.mv_data, 12);
		if (done == max || seen == limit) {
			memcpy(rw->next, key, sizeof(rw->next));	/* not looked at yet */
			break;
		}
		seen++;
		m = be32_get(key + 4);
		n = be32_get(key + 8);
		if (vault_record_check(vault_db_names[VDB_MSG], key, 12, d.mv_data,
		    d.mv_size) < 0 || msg_rec_parse((const uint8_t *)d.mv_data + 1,
		    d.mv_size - VAULT_REC_OVERHEAD, &r) < 0) {
			rw->pass_clean = false;		/* verify reports it; keep going */
			continue;
		}
		if (r.epoch == cur->epoch)
			continue;
		e = dk_unwrap_t(t, k, m, n, &r, &s);
		if (e == VAULT_ERR_TAMPER) {
			/* Tampered, or its epoch is gone: nothing to re-wrap, and its epoch
			 * must not be retired on this pass's word. */
			rw->pass_clean = false;
			continue;
		}
		if (e < 0)
			goto out;
		old = r.epoch;
		e = dk_wrap(u, m, n, cur->epoch, r.wrap == WRAP_SYM ? NULL : cur->pk,
		    r.wrap == WRAP_SYM ? cur->w : NULL, &s.dk, &r);
		crypto_wipe(s.dk.p, s.dk.len);
		if (e < 0 || (e = rec_rewrite(c, t, key, &r)) < 0)
			goto out;
		if (old < cur->epoch)
			pending_dec++;
		done++;
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		e = store_err(t, rc);
		goto out;
	}
	end = rc == MDB_NOTFOUND || kk.mv_size != 12 || memcmp(kk.mv_data, pre, 4) != 0;
	mdb_cursor_close(c);
	c = NULL;
	if (pending_dec > 0) {
		struct counters_rec cr;

		if ((e = counters_get(t, u, &cr)) < 0)
			goto out;
		cr.pending_rewrap = cr.pending_rewrap > pending_dec ?
		    cr.pending_rewrap - pending_dec : 0;
		if ((e = counters_put(t, u, &cr)) < 0)
			goto out;
	}
	e = 1;
	if (end) {
		size_t nret = 0;

		rw->active = false;
		/* The retirement re-counts references in this txn: exact whatever the pass
		 * saw. It also resets the pending counter from the count. */
		if ((e = epochs_retire_unused_txn(t, u, rw->retired, 16, &nret)) < 0)
			goto out;
		rw->nretired = nret;
		if ((e = epochs_have_old(t, u, cur->epoch, &has_old)) < 0)
			goto out;
		if (has_old && !rw->pass_clean)
			rw->settled_epoch = cur->epoch;
		e = has_old && rw->pass_clean ? 1 : 0;
	}
out:
	if (c != NULL)
		mdb_cursor_close(c);
	scratch_free(&s);
	if (e >= 0 && done_out != NULL)
		*done_out = done;
	return e;
}

/* Touches, in a read txn, the message records a batch just rewrote. Each commit put
 * them on new pages (copy-on-write) that this process has not mapped yet; the exact
 * reference count at the end of a pass reads every record of the user inside the
 * write txn, and taking those page faults there held the writer lock (and the user's
 * commands) for ~300 ms at 100,000 messages. Faulted in here, a tick at a time, they
 * cost nothing later. */
static void warm_pages(struct vault *v, const uint8_t from[12], const uint8_t *to)
{
	struct vault_txn *t = NULL;
	MDB_cursor *c = NULL;
	MDB_val kk = { 12, (void *)from }, d;
	volatile uint8_t sink = 0;
	unsigned n = 0;
	int rc;

	if (vault_txn_begin(v, false, &t) < 0)
		return;
	if (mdb_cursor_open(t->txn, v->dbi[VDB_MSG], &c) == 0) {
		for (rc = mdb_cursor_get(c, &kk, &d, MDB_SET_RANGE); rc == 0 && n < 8192;
		    rc = mdb_cursor_get(c, &kk, &d, MDB_NEXT), n++) {
			if (kk.mv_size != 12 || memcmp(kk.mv_data, from, 4) != 0 ||
			    (to != NULL && memcmp(kk.mv_data, to, 12) >= 0))
				break;
			sink ^= *(const uint8_t *)d.mv_data;
		}
		mdb_cursor_close(c);
	}
	(void)sink;
	vault_txn_abort(&t);
}

int vault_rewrap_tick(struct vault *v, struct vault_keys *k, unsigned max, unsigned *done_out)
{
	struct vault_txn *t = NULL;
	struct user_rec ur;
	uint8_t from[12];
	uint32_t fixm;
	bool has_old = false, fix;
	int e, tries;

	if (done_out != NULL)
		*done_out = 0;
	/* Cheap check in a read txn (every tick): old epochs left, or sizes to fix? */
	if ((e = vault_txn_begin(v, false, &t)) < 0)
		return e;
	if ((e = user_rec_get(t, k->user_id, &ur)) == 0 &&
	    (e = epochs_have_old(t, k->user_id, ur.current_epoch, &has_old)) == 0)
		e = keys_drop_retired(t, k);
	fix = e == 0 && sizefix_first(t, k->user_id, &fixm) == 0;
	vault_txn_abort(&t);
	if (e < 0)
		return e;
	if (!fix && (!has_old || k->rw->settled_epoch == ur.current_epoch))
		return 0;
	if (k->rw->active)
		memcpy(from, k->rw->next, sizeof(from));
	else
		key_msg(from, k->user_id, 0, 0);
	for (tries = 0; tries < 40; tries++) {
		if ((e = vault_txn_begin(v, true, &t)) < 0)
			return e;
		if ((e = vault_rewrap_batch(t, k, max, done_out)) < 0) {
			vault_txn_abort(&t);
		} else {
			int c = vault_txn_commit(&t);

			if (c < 0)
				e = c;
		}
		if (e != -EAGAIN)
			break;
	}
	if (e < 0 && k->rw != NULL)
		k->rw->active = false;	/* the txn is gone: restart the pass */
	/* Committed: the retirements of this batch are final (the daemon audits its own;
	 * a session's show in the log). */
	if (e >= 0 && k->rw != NULL) {
		for (size_t i = 0; i < k->rw->nretired && i < 16; i++)
			log_info("vault: user %s: epoch %u retired by the session's re-wrap (no "
			    "message left under it; secret destroyed)", k->name, k->rw->retired[i]);
		if (k->rw->nretired > 16)
			log_info("vault: user %s: %zu epochs retired by the session's re-wrap",
			    k->name, k->rw->nretired);
		k->rw->nretired = 0;
	}
	if (e > 0 && done_out != NULL && *done_out > 0)
		warm_pages(v, from, k->rw->active ? k->rw->next : NULL);
	return e;
}
