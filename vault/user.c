/* user.c: users, tokens, login key derivation, unlocking, recovery, passphrase
 * change, epochs and rotation. The design is docs/KEYS.md; the comments here say
 * where the code makes a choice KEYS.md leaves open. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "vault-private.h"
#include "log.h"

#define USER_REC_MAX 1024
#define TOKEN_REC_MAX 1024
#define MAX_TOKENS 8

/* ---- record codecs -------------------------------------------------------------- */
int user_rec_put(struct vault_txn *t, uint32_t u, const struct user_rec *r)
{
	uint8_t buf[USER_REC_MAX], k[8];
	struct wbuf w;

	wb_init(&w, buf, sizeof(buf));
	wb_str16(&w, r->name, strlen(r->name));
	wb_u64(&w, (uint64_t)r->created);
	wb_put(&w, r->salt, sizeof(r->salt));
	wb_u32(&w, r->pwhash.mem_kib);
	wb_u32(&w, r->pwhash.passes);
	wb_put(&w, r->id_pk, sizeof(r->id_pk));
	wb_str16(&w, r->id_sk_wrap, r->id_sk_wrap_len);
	wb_str16(&w, r->rec_wrap, r->rec_wrap_len);
	wb_u32(&w, r->current_epoch);
	if (w.bad)
		return -E2BIG;
	return store_put(t, VDB_USERS, k, key_user(k, u, 'U'), buf, w.len);
}

int user_rec_get(struct vault_txn *t, uint32_t u, struct user_rec *out)
{
	const uint8_t *p;
	size_t n, nl;
	struct sbuf b;
	uint64_t created;
	uint8_t k[8];
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = store_get(t, VDB_USERS, k, key_user(k, u, 'U'), true, &p, &n)) < 0)
		return r == -ENOENT ? VAULT_ERR_NOUSER : r;
	sbuf_from(&b, p, n);
	if (rb_str16(&b, (uint8_t *)out->name, sizeof(out->name) - 1, &nl) < 0 ||
	    sbuf_get_u64(&b, &created) < 0 ||
	    sbuf_get(&b, out->salt, sizeof(out->salt)) < 0 ||
	    sbuf_get_u32(&b, &out->pwhash.mem_kib) < 0 ||
	    sbuf_get_u32(&b, &out->pwhash.passes) < 0 ||
	    sbuf_get(&b, out->id_pk, sizeof(out->id_pk)) < 0 ||
	    rb_str16(&b, out->id_sk_wrap, sizeof(out->id_sk_wrap), &out->id_sk_wrap_len) < 0 ||
	    rb_str16(&b, out->rec_wrap, sizeof(out->rec_wrap), &out->rec_wrap_len) < 0 ||
	    sbuf_get_u32(&b, &out->current_epoch) < 0)
		return VAULT_ERR_CORRUPT;
	out->name[nl] = '\0';
	out->created = (int64_t)created;
	return 0;
}

int counters_put(struct vault_txn *t, uint32_t u, const struct counters_rec *c)
{
	uint8_t buf[64], k[8];
	struct wbuf w;

	wb_init(&w, buf, sizeof(buf));
	wb_u64(&w, c->change_seq);
	wb_u32(&w, c->last_uidvalidity);
	wb_u32(&w, c->next_mbox_id);
	wb_u64(&w, c->messages);
	wb_u64(&w, c->stored_bytes);
	wb_u32(&w, c->pending_rewrap);
	return store_put(t, VDB_USERS, k, key_user(k, u, 'C'), buf, w.len);
}

int counters_get(struct vault_txn *t, uint32_t u, struct counters_rec *c)
{
	const uint8_t *p;
	size_t n;
	struct sbuf b;
	uint8_t k[8];
	int r;

	memset(c, 0, sizeof(*c));
	if ((r = store_get(t, VDB_USERS, k, key_user(k, u, 'C'), true, &p, &n)) < 0)
		return r == -ENOENT ? VAULT_ERR_NOUSER : r;
	sbuf_from(&b, p, n);
	if (sbuf_get_u64(&b, &c->change_seq) < 0 || sbuf_get_u32(&b, &c->last_uidvalidity) < 0 ||
	    sbuf_get_u32(&b, &c->next_mbox_id) < 0 || sbuf_get_u64(&b, &c->messages) < 0 ||
	    sbuf_get_u64(&b, &c->stored_bytes) < 0 || sbuf_get_u32(&b, &c->pending_rewrap) < 0)
		return VAULT_ERR_CORRUPT;
	return 0;
}

int user_bump_change(struct vault_txn *t, uint32_t u)
{
	struct counters_rec c;
	int r;

	if ((r = counters_get(t, u, &c)) < 0)
		return r;
	c.change_seq++;
	return counters_put(t, u, &c);
}

int vault_user_change_seq(struct vault_txn *t, uint32_t user_id, uint64_t *seq_out)
{
	struct counters_rec c;
	int r;

	if ((r = counters_get(t, user_id, &c)) < 0)
		return r;
	*seq_out = c.change_seq;
	return 0;
}

int next_uidvalidity(struct vault_txn *t, uint32_t u, time_t now, uint32_t *out)
{
	struct counters_rec c;
	uint32_t v;
	int r;

	if ((r = counters_get(t, u, &c)) < 0)
		return r;
	/* Time-based, but strictly above every value this user ever had, so a
	 * deleted and recreated mailbox never gets an old UIDVALIDITY back. */
	v = now > 0 && (uint64_t)now < UINT32_MAX ? (uint32_t)now : 1;
	if (v <= c.last_uidvalidity)
		v = c.last_uidvalidity + 1;
	if (v == 0)
		return -EOVERFLOW;
	c.last_uidvalidity = v;
	*out = v;
	return counters_put(t, u, &c);
}

static int epoch_rec_put(struct vault_txn *t, uint32_t u, const struct epoch_rec *e)
{
	uint8_t buf[256], k[12];
	struct wbuf w;

	wb_init(&w, buf, sizeof(buf));
	wb_u64(&w, (uint64_t)e->created);
	wb_put(&w, e->pk, sizeof(e->pk));
	wb_put(&w, e->sk_wrap, sizeof(e->sk_wrap));
	return store_put(t, VDB_USERS, k, key_epoch(k, u, e->epoch), buf, w.len);
}

static int epoch_parse(const uint8_t *p, size_t n, uint32_t e, struct epoch_rec *out)
{
	struct sbuf b;
	uint64_t created;

	sbuf_from(&b, p, n);
	out->epoch = e;
	if (sbuf_get_u64(&b, &created) < 0 || sbuf_get(&b, out->pk, sizeof(out->pk)) < 0 ||
	    sbuf_get(&b, out->sk_wrap, sizeof(out->sk_wrap)) < 0)
		return VAULT_ERR_CORRUPT;
	out->created = (int64_t)created;
	return 0;
}

int epoch_rec_get(struct vault_txn *t, uint32_t u, uint32_t e, struct epoch_rec *out)
{
	const uint8_t *p;
	size_t n;
	uint8_t k[12];
	int r;

	if ((r = store_get(t, VDB_USERS, k, key_epoch(k, u, e), true, &p, &n)) < 0)
		return r == -ENOENT ? VAULT_ERR_CORRUPT : r;	/* the pointer says it exists */
	return epoch_parse(p, n, e, out);
}

int token_rec_put(struct vault_txn *t, uint32_t u, const struct token_rec *r)
{
	uint8_t buf[TOKEN_REC_MAX], k[8];
	struct wbuf w;

	wb_init(&w, buf, sizeof(buf));
	wb_put(&w, r->public_id, sizeof(r->public_id));
	wb_u16(&w, r->session_ctr);
	wb_u8(&w, r->use_ctr);
	wb_u64(&w, (uint64_t)r->added);
	wb_str16(&w, r->label, strnlen(r->label, sizeof(r->label) - 1));
	wb_put(&w, r->salt, sizeof(r->salt));
	wb_put(&w, r->kcv, sizeof(r->kcv));
	wb_str16(&w, r->umk_wrap, r->umk_wrap_len);
	wb_str16(&w, r->aes_wrap, r->aes_wrap_len);
	wb_str16(&w, r->sec_wrap, r->sec_wrap_len);
	if (w.bad)
		return -E2BIG;
	return store_put(t, VDB_USERS, k, key_token(k, u, r->index), buf, w.len);
}

static int token_parse(const uint8_t *p, size_t n, uint8_t idx, struct token_rec *out)
{
	struct sbuf b;
	uint64_t added;
	size_t ll;

	memset(out, 0, sizeof(*out));
	sbuf_from(&b, p, n);
	out->index = idx;
	if (sbuf_get(&b, out->public_id, sizeof(out->public_id)) < 0 ||
	    sbuf_get_u16(&b, &out->session_ctr) < 0 || sbuf_get_u8(&b, &out->use_ctr) < 0 ||
	    sbuf_get_u64(&b, &added) < 0 ||
	    rb_str16(&b, (uint8_t *)out->label, sizeof(out->label) - 1, &ll) < 0 ||
	    sbuf_get(&b, out->salt, sizeof(out->salt)) < 0 ||
	    sbuf_get(&b, out->kcv, sizeof(out->kcv)) < 0 ||
	    rb_str16(&b, out->umk_wrap, sizeof(out->umk_wrap), &out->umk_wrap_len) < 0 ||
	    rb_str16(&b, out->aes_wrap, sizeof(out->aes_wrap), &out->aes_wrap_len) < 0 ||
	    rb_str16(&b, out->sec_wrap, sizeof(out->sec_wrap), &out->sec_wrap_len) < 0)
		return VAULT_ERR_CORRUPT;
	out->label[ll] = '\0';
	out->added = (int64_t)added;
	return 0;
}

int token_rec_get(struct vault_txn *t, uint32_t u, uint8_t idx, struct token_rec *out)
{
	const uint8_t *p;
	size_t n;
	uint8_t k[8];
	int r;

	if ((r = store_get(t, VDB_USERS, k, key_token(k, u, idx), true, &p, &n)) < 0)
		return r == -ENOENT ? VAULT_ERR_TOKEN : r;
	return token_parse(p, n, idx, out);
}

/* Every token of the user, in index order. */
static int tokens_load(struct vault_txn *t, uint32_t u, struct token_rec *out, size_t *n_out)
{
	MDB_cursor *c = NULL;
	uint8_t pre[8];
	MDB_val k, d;
	size_t plen = key_user(pre, u, 'T'), n = 0;
	int rc, r = 0;

	*n_out = 0;
	if ((rc = mdb_cursor_open(t->txn, t->v->dbi[VDB_USERS], &c)) != 0)
		return store_err(t, rc);
	k.mv_size = plen;
	k.mv_data = pre;
	for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		if (k.mv_size != plen + 1 || memcmp(k.mv_data, pre, plen) != 0)
			break;
		if (n == MAX_TOKENS) {
			r = VAULT_ERR_CORRUPT;
			break;
		}
		if ((r = vault_record_check(vault_db_names[VDB_USERS], k.mv_data, k.mv_size,
		    d.mv_data, d.mv_size)) < 0)
			break;
		if ((r = token_parse((const uint8_t *)d.mv_data + 1, d.mv_size - VAULT_REC_OVERHEAD,
		    ((const uint8_t *)k.mv_data)[plen], &out[n])) < 0)
			break;
		n++;
	}
	mdb_cursor_close(c);
	if (r == 0 && rc != 0 && rc != MDB_NOTFOUND)
		r = store_err(t, rc);
	*n_out = n;
	return r;
}

int user_lookup(struct vault_txn *t, const char *name, uint32_t *u_out)
{
	const uint8_t *p;
	size_t n, nl = strlen(name);
	int r;

	if (nl == 0 || nl >= 128)
		return VAULT_ERR_NOUSER;
	if ((r = store_get(t, VDB_NAMES, name, nl, true, &p, &n)) < 0)
		return r == -ENOENT ? VAULT_ERR_NOUSER : r;
	if (n != 4)
		return VAULT_ERR_CORRUPT;
	*u_out = be32_get(p);
	return 0;
}

/* ---- user info ----------------------------------------------------------------- */
static int user_info(struct vault_txn *t, uint32_t u, struct vault_user_info *out)
{
	struct user_rec ur;
	struct counters_rec c;
	struct epoch_rec e;
	struct token_rec toks[MAX_TOKENS];
	size_t nt;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = user_rec_get(t, u, &ur)) < 0 || (r = counters_get(t, u, &c)) < 0 ||
	    (r = epoch_rec_get(t, u, ur.current_epoch, &e)) < 0 ||
	    (r = tokens_load(t, u, toks, &nt)) < 0)
		return r;
	out->id = u;
	snprintf(out->name, sizeof(out->name), "%s", ur.name);
	out->created = (time_t)ur.created;
	out->pwhash = ur.pwhash;
	out->current_epoch = ur.current_epoch;
	out->epoch_created = (time_t)e.created;
	out->ntokens = nt;
	for (size_t i = 0; i < nt; i++) {
		struct vault_token_info *ti = &out->tokens[i];

		ti->index = toks[i].index;
		memcpy(ti->public_id, toks[i].public_id, sizeof(ti->public_id));
		ti->session_ctr = toks[i].session_ctr;
		ti->use_ctr = toks[i].use_ctr;
		ti->added = (time_t)toks[i].added;
		snprintf(ti->label, sizeof(ti->label), "%s", toks[i].label);
	}
	out->messages = c.messages;
	out->stored_bytes = c.stored_bytes;
	out->pending_rewrap = c.pending_rewrap;
	crypto_wipe(toks, sizeof(toks));
	return 0;
}

int vault_user_get(struct vault_txn *t, const char *name, struct vault_user_info *out)
{
	uint32_t u;
	int r;

	if ((r = user_lookup(t, name, &u)) < 0)
		return r;
	return user_info(t, u, out);
}

int vault_user_get_by_id(struct vault_txn *t, uint32_t id, struct vault_user_info *out)
{
	return user_info(t, id, out);
}

int vault_user_foreach(struct vault_txn *t,
    int (*cb)(const struct vault_user_info *u, void *arg), void *arg)
{
	MDB_cursor *c = NULL;
	MDB_val k, d;
	struct vault_user_info *info;
	int rc, r = 0;

	if ((info = malloc(sizeof(*info))) == NULL)
		return -ENOMEM;
	if ((rc = mdb_cursor_open(t->txn, t->v->dbi[VDB_NAMES], &c)) != 0) {
		free(info);
		return store_err(t, rc);
	}
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == 0;
	    rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		if ((r = vault_record_check(vault_db_names[VDB_NAMES], k.mv_data, k.mv_size,
		    d.mv_data, d.mv_size)) < 0)
			break;
		if (d.mv_size != VAULT_REC_OVERHEAD + 4) {
			r = VAULT_ERR_CORRUPT;
			break;
		}
		if ((r = user_info(t, be32_get((const uint8_t *)d.mv_data + 1), info)) < 0)
			break;
		if ((r = cb(info, arg)) != 0)
			break;
	}
	mdb_cursor_close(c);
	free(info);
	if (r == 0 && rc != 0 && rc != MDB_NOTFOUND)
		r = store_err(t, rc);
	return r;
}

/* ---- key material helpers --------------------------------------------------------- */
static void params_for_new(const struct vault_config *cfg, struct crypto_pwhash_params *p)
{
	p->mem_kib = cfg->argon2_memory < CRYPTO_PWHASH_MIN_MEM_KIB ?
	    CRYPTO_PWHASH_MIN_MEM_KIB : cfg->argon2_memory;
	p->passes = cfg->argon2_passes < CRYPTO_PWHASH_MIN_PASSES ?
	    CRYPTO_PWHASH_MIN_PASSES : cfg->argon2_passes;
}

/* K_t = A(P || uid_t, salt_t): the second memory-hard step. */
static int derive_token_key(const struct secret *P, const uint8_t *uid,
    const uint8_t salt[CRYPTO_SALT_BYTES], const struct crypto_pwhash_params *par,
    struct secret **out)
{
	struct secret *in = NULL;
	int r;

	if ((r = secret_new(P->len + CRYPTO_OTP_UID_BYTES, &in)) < 0)
		return r;
	memcpy(in->p, P->p, P->len);
	memcpy(in->p + P->len, uid, CRYPTO_OTP_UID_BYTES);
	r = crypto_pwhash(CRYPTO_PWHASH_SODIUM, in->p, in->len, salt, par, out);
	secret_free(&in);
	return r;
}

static int kcv_compute(const struct secret *K, uint32_t u, uint8_t t, uint8_t out[32])
{
	struct secret *kcv = NULL;
	uint8_t ctx[5];
	int r;

	be32_put(ctx, u);
	ctx[4] = t;
	if ((r = vkdf(K, "kcv", ctx, sizeof(ctx), &kcv)) < 0)
		return r;
	memcpy(out, kcv->p, 32);
	secret_free(&kcv);
	return 0;
}

static int token_aes_key(const struct secret *P, uint32_t u, uint8_t t, struct secret **out)
{
	uint8_t ctx[5];

	be32_put(ctx, u);
	ctx[4] = t;
	return vkdf(P, "token-aes", ctx, sizeof(ctx), out);
}

/* Fills the crypto fields of a token record: salt_t, KCV, UMK wrap, AES wrap (under
 * P), token secret wrap (under UMK). K_t must already be derived with tr->salt. */
static int token_seal(uint32_t u, struct token_rec *tr, const struct secret *K,
    const struct secret *P, const struct secret *umk, const struct secret *aes,
    const uint8_t *uid)
{
	struct secret *ka = NULL, *sec = NULL;
	struct vault_ad ad;
	int r;

	if ((r = kcv_compute(K, u, tr->index, tr->kcv)) < 0)
		return r;
	ad_init(&ad, VP_UMK, u);
	ad_u8(&ad, tr->index);
	if ((r = vseal(K, 0, &ad, umk->p, umk->len, tr->umk_wrap, sizeof(tr->umk_wrap),
	    &tr->umk_wrap_len)) < 0)
		goto out;
	if ((r = token_aes_key(P, u, tr->index, &ka)) < 0)
		goto out;
	ad_init(&ad, VP_TOKAES, u);
	ad_u8(&ad, tr->index);
	if ((r = vseal(ka, 0, &ad, aes->p, aes->len, tr->aes_wrap, sizeof(tr->aes_wrap),
	    &tr->aes_wrap_len)) < 0)
		goto out;
	if ((r = secret_new(CRYPTO_OTP_AES_BYTES + CRYPTO_OTP_UID_BYTES, &sec)) < 0)
		goto out;
	memcpy(sec->p, aes->p, CRYPTO_OTP_AES_BYTES);
	memcpy(sec->p + CRYPTO_OTP_AES_BYTES, uid, CRYPTO_OTP_UID_BYTES);
	ad_init(&ad, VP_TOKSECRET, u);
	ad_u8(&ad, tr->index);
	r = vseal(umk, 0, &ad, sec->p, sec->len, tr->sec_wrap, sizeof(tr->sec_wrap),
	    &tr->sec_wrap_len);
out:
	secret_free(&ka);
	secret_free(&sec);
	return r;
}

static int open_token_aes(const struct secret *P, uint32_t u, const struct token_rec *tr,
    struct secret **aes_out)
{
	struct secret *ka = NULL;
	struct vault_ad ad;
	int r;

	if ((r = token_aes_key(P, u, tr->index, &ka)) < 0)
		return r;
	ad_init(&ad, VP_TOKAES, u);
	ad_u8(&ad, tr->index);
	r = vopen_secret(ka, &ad, tr->aes_wrap, tr->aes_wrap_len, CRYPTO_OTP_AES_BYTES, aes_out);
	secret_free(&ka);
	return r;
}

static bool name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n >= 128)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (ch <= 0x20 || ch == 0x7f || ch == '"' || ch == '\\')
			return false;
	}
	return true;
}

/* ---- create ------------------------------------------------------------------------ */
struct create_ctx {
	const char *name;
	time_t now;
	const struct crypto_pwhash_params *par;
	const uint8_t *salt;
	const struct secret *P, *K, *umk, *R;
	const struct vault_token_secret *tok;
	const uint8_t *tok_salt;
	const uint8_t *id_pk, *ep_pk;
	const struct secret *id_sk, *ep_sk;
	uint32_t uid_out;
};

static const struct { const char *name; uint32_t su; } default_mailboxes[] = {
	{ "INBOX", VAULT_SU_NONE }, { "Drafts", VAULT_SU_DRAFTS }, { "Sent", VAULT_SU_SENT },
	{ "Trash", VAULT_SU_TRASH }, { "Junk", VAULT_SU_JUNK }, { "Archive", VAULT_SU_ARCHIVE },
};
#define N_DEFAULT_MBOX (sizeof(default_mailboxes) / sizeof(default_mailboxes[0]))

static int create_txn(struct vault_txn *t, void *arg)
{
	struct create_ctx *c = arg;
	struct secret *idk = NULL, *rk = NULL, *mk = NULL;
	struct user_rec ur;
	struct counters_rec cr;
	struct epoch_rec er;
	struct vault_ad ad;
	const uint8_t *p;
	size_t n, nl = strlen(c->name);
	uint8_t k[8], idb[4];
	uint32_t u = 1;
	char *subs[N_DEFAULT_MBOX];
	int r;

	r = store_get(t, VDB_NAMES, c->name, nl, false, &p, &n);
	if (r == 0)
		return -EEXIST;
	if (r != -ENOENT)
		return r;
	static const char nk[] = "next_user_id";
	r = store_get(t, VDB_META, nk, sizeof(nk) - 1, true, &p, &n);
	if (r == 0 && n == 4)
		u = be32_get(p);
	else if (r != -ENOENT)
		return r == 0 ? VAULT_ERR_CORRUPT : r;
	if (u == 0 || u == UINT32_MAX)
		return -EOVERFLOW;
	be32_put(idb, u + 1);
	if ((r = store_put(t, VDB_META, nk, sizeof(nk) - 1, idb, 4)) < 0)
		return r;
	be32_put(idb, u);
	if ((r = store_put(t, VDB_NAMES, c->name, nl, idb, 4)) < 0)
		return r;

	memset(&ur, 0, sizeof(ur));
	snprintf(ur.name, sizeof(ur.name), "%s", c->name);
	ur.created = (int64_t)c->now;
	memcpy(ur.salt, c->salt, CRYPTO_SALT_BYTES);
	ur.pwhash = *c->par;
	memcpy(ur.id_pk, c->id_pk, CRYPTO_PK_BYTES);
	ur.current_epoch = 1;
	if ((r = vkdf(c->umk, "identity", NULL, 0, &idk)) < 0)
		goto out;
	ad_init(&ad, VP_ID, u);
	if ((r = vseal(idk, 0, &ad, c->id_sk->p, c->id_sk->len, ur.id_sk_wrap,
	    sizeof(ur.id_sk_wrap), &ur.id_sk_wrap_len)) < 0)
		goto out;
	if ((r = vkdf(c->R, "recovery", NULL, 0, &rk)) < 0)
		goto out;
	ad_init(&ad, VP_UMK_RECOVERY, u);
	if ((r = vseal(rk, 0, &ad, c->umk->p, c->umk->len, ur.rec_wrap, sizeof(ur.rec_wrap),
	    &ur.rec_wrap_len)) < 0)
		goto out;
	if ((r = user_rec_put(t, u, &ur)) < 0)
		goto out;

	memset(&er, 0, sizeof(er));
	er.epoch = 1;
	er.created = (int64_t)c->now;
	memcpy(er.pk, c->ep_pk, CRYPTO_PK_BYTES);
	ad_init(&ad, VP_EPOCH, u);
	ad_u32(&ad, 1);
	if ((r = crypto_pk_wrap(c->id_pk, ad.b, ad.n, c->ep_sk->p, c->ep_sk->len, er.sk_wrap)) < 0 ||
	    (r = epoch_rec_put(t, u, &er)) < 0)
		goto out;

	memset(&cr, 0, sizeof(cr));
	cr.change_seq = 1;
	cr.next_mbox_id = 1;
	if ((r = counters_put(t, u, &cr)) < 0)
		goto out;

	if (c->tok != NULL) {
		struct token_rec tr;

		memset(&tr, 0, sizeof(tr));
		tr.index = 0;
		memcpy(tr.public_id, c->tok->public_id, sizeof(tr.public_id));
		tr.added = (int64_t)c->now;
		snprintf(tr.label, sizeof(tr.label), "%s", c->tok->label);
		memcpy(tr.salt, c->tok_salt, CRYPTO_SALT_BYTES);
		if ((r = token_seal(u, &tr, c->K, c->P, c->umk, c->tok->aes_key,
		    c->tok->uid->p)) < 0 || (r = token_rec_put(t, u, &tr)) < 0)
			goto out;
	}
	if ((r = vkdf(c->umk, "mailbox-meta", NULL, 0, &mk)) < 0)
		goto out;
	for (size_t i = 0; i < N_DEFAULT_MBOX; i++) {
		if ((r = mbox_create_raw(t, u, mk, (uint32_t)i + 1, default_mailboxes[i].name,
		    default_mailboxes[i].su, c->now)) < 0)
			goto out;
		subs[i] = (char *)default_mailboxes[i].name;
	}
	if ((r = subs_write(t, u, mk, subs, N_DEFAULT_MBOX)) < 0)
		goto out;
	(void)k;
	c->uid_out = u;
out:
	secret_free(&idk);
	secret_free(&rk);
	secret_free(&mk);
	return r;
}

int vault_user_create(struct vault *v, const char *name, const uint8_t *pass, size_t passlen,
    const struct vault_token_secret *tok, time_t now, char *recovery_out, size_t recovery_len)
{
	struct crypto_pwhash_params par;
	uint8_t salt[CRYPTO_SALT_BYTES], tsalt[CRYPTO_SALT_BYTES];
	uint8_t id_pk[CRYPTO_PK_BYTES], ep_pk[CRYPTO_PK_BYTES];
	struct secret *P = NULL, *K = NULL, *umk = NULL, *R = NULL, *id_sk = NULL, *ep_sk = NULL;
	struct create_ctx c;
	int r;

	if (!name_ok(name) || (pass == NULL && passlen > 0) || recovery_out == NULL)
		return -EINVAL;
	if (tok != NULL && (tok->aes_key == NULL || tok->aes_key->len != CRYPTO_OTP_AES_BYTES ||
	    tok->uid == NULL || tok->uid->len != CRYPTO_OTP_UID_BYTES))
		return -EINVAL;
	params_for_new(&v->cfg, &par);
	crypto_random(salt, sizeof(salt));
	crypto_random(tsalt, sizeof(tsalt));
	if ((r = crypto_pwhash(CRYPTO_PWHASH_SODIUM, pass, passlen, salt, &par, &P)) < 0)
		goto out;
	if (tok != NULL && (r = derive_token_key(P, tok->uid->p, tsalt, &par, &K)) < 0)
		goto out;
	if ((r = secret_new_random(32, &umk)) < 0 || (r = secret_new_random(32, &R)) < 0 ||
	    (r = crypto_x25519_keypair(id_pk, &id_sk)) < 0 ||
	    (r = crypto_x25519_keypair(ep_pk, &ep_sk)) < 0)
		goto out;
	if ((r = crypto_recovery_encode(R->p, recovery_out, recovery_len)) < 0)
		goto out;
	memset(&c, 0, sizeof(c));
	c.name = name;
	c.now = now;
	c.par = &par;
	c.salt = salt;
	c.P = P;
	c.K = K;
	c.umk = umk;
	c.R = R;
	c.tok = tok;
	c.tok_salt = tsalt;
	c.id_pk = id_pk;
	c.ep_pk = ep_pk;
	c.id_sk = id_sk;
	c.ep_sk = ep_sk;
	r = vault_write(v, create_txn, &c);
	if (r == 0)
		log_info("vault: user %s created (id %u)", name, c.uid_out);
out:
	if (r < 0 && recovery_len > 0)
		crypto_wipe(recovery_out, recovery_len);
	secret_free(&P);
	secret_free(&K);
	secret_free(&umk);
	secret_free(&R);
	secret_free(&id_sk);
	secret_free(&ep_sk);
	return r;
}

/* ---- remove ------------------------------------------------------------------------ */
struct remove_ctx { const char *name; uint32_t u; };

static int remove_keys_txn(struct vault_txn *t, void *arg)
{
	struct remove_ctx *c = arg;
	MDB_cursor *cur = NULL;
	MDB_val k, d;
	uint8_t pre[4];
	int rc, r;

	if ((r = user_lookup(t, c->name, &c->u)) < 0)
		return r;
	be32_put(pre, c->u);
	if ((rc = mdb_cursor_open(t->txn, t->v->dbi[VDB_USERS], &cur)) != 0)
		return store_err(t, rc);
	k.mv_size = sizeof(pre);
	k.mv_data = pre;
	/* Overwrite every key record with zeros before deleting it. LMDB is copy-on-write,
	 * so the committed pages that held the sealed keys are freed, not scrubbed, until
	 * reused: what this really destroys is the only live copy of the wraps. */
	for (rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
		MDB_val z = { d.mv_size, NULL };

		if (k.mv_size < 4 || memcmp(k.mv_data, pre, 4) != 0)
			break;
		if ((rc = mdb_cursor_put(cur, &k, &z, MDB_CURRENT | MDB_RESERVE)) != 0)
			break;
		memset(z.mv_data, 0, z.mv_size);
	}
	mdb_cursor_close(cur);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return store_err(t, rc);
	if ((r = store_del_prefix(t, VDB_USERS, pre, sizeof(pre), 0)) < 0)
		return r;
	return store_del(t, VDB_NAMES, c->name, strlen(c->name));
}

struct sweep_ctx { uint32_t u; int deleted; };

static int sweep_txn(struct vault_txn *t, void *arg)
{
	struct sweep_ctx *c = arg;
	uint8_t pre[4];
	static const enum vdb dbs[] = { VDB_CHUNK, VDB_CACHE, VDB_MSG, VDB_VANISHED, VDB_MBOX };
	int total = 0, r;

	be32_put(pre, c->u);
	for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]) && total < 4096; i++) {
		if ((r = store_del_prefix(t, dbs[i], pre, sizeof(pre), (size_t)(4096 - total))) < 0)
			return r;
		total += r;
	}
	c->deleted = total;
	return 0;
}

int vault_user_remove(struct vault *v, const char *name)
{
	struct remove_ctx c = { name, 0 };
	struct sweep_ctx s;
	int r;

	if ((r = vault_write(v, remove_keys_txn, &c)) < 0)
		return r;
	log_info("vault: user %s (id %u): keys destroyed", name, c.u);
	/* The data is unreadable now; delete it in short transactions. */
	s.u = c.u;
	do {
		s.deleted = 0;
		if ((r = vault_write(v, sweep_txn, &s)) < 0)
			return r;
	} while (s.deleted > 0);
	return 0;
}

/* ---- login ------------------------------------------------------------------------ */
void vault_login_clear(struct vault_login *l)
{
	if (l == NULL)
		return;
	secret_free(&l->key);
	secret_free(&l->pass);
	memset(l, 0, sizeof(*l));
	l->token_index = -1;
}

/* Burns one Argon2id with the given params so that a failure costs what a success
 * costs (no timing oracle for unknown users, tokens, or early failures). */
static void dummy_pwhash(const struct crypto_pwhash_params *par)
{
	static const uint8_t salt[CRYPTO_SALT_BYTES] = "sealmail-dummy!";
	struct secret *s = NULL;

	if (crypto_pwhash(CRYPTO_PWHASH_SODIUM, (const uint8_t *)"x", 1, salt, par, &s) == 0)
		secret_free(&s);
}

struct ctr_ctx {
	uint32_t u;
	uint8_t idx;
	uint16_t sctr;
	uint8_t uctr;
};

static int store_counters_txn(struct vault_txn *t, void *arg)
{
	struct ctr_ctx *c = arg;
	struct token_rec tr;
	int r;

	if ((r = token_rec_get(t, c->u, c->idx, &tr)) < 0)
		return r;
	/* Re-check inside the write txn: two logins racing with one OTP, one wins. */
	if (!crypto_otp_is_newer(c->sctr, c->uctr, tr.session_ctr, tr.use_ctr)) {
		r = VAULT_ERR_REPLAY;
		goto out;
	}
	tr.session_ctr = c->sctr;
	tr.use_ctr = c->uctr;
	r = token_rec_put(t, c->u, &tr);
out:
	crypto_wipe(&tr, sizeof(tr));
	return r;
}

static bool pwhash_raise(const struct crypto_pwhash_params *stored,
    const struct crypto_pwhash_params *policy, struct crypto_pwhash_params *out);
static int kdf_raise(struct vault *v, uint32_t u, const struct user_rec *ur,
    const struct token_rec *toks, size_t nt, const uint8_t *pass, size_t len, int idx,
    const struct secret *K, const struct crypto_pwhash_params *to, struct secret **K_out);
static int open_umk_token(struct vault_txn *t, uint32_t u, int idx, const struct secret *K,
    struct secret **umk);

int vault_login_derive(struct vault *v, const char *user, const uint8_t *password,
    size_t passlen, struct vault_login *out)
{
	struct vault_txn *t = NULL;
	struct user_rec ur;
	struct token_rec toks[MAX_TOKENS];
	struct crypto_pwhash_params dflt, raised;
	struct crypto_otp otp;
	struct secret *P = NULL, *aes = NULL, *K = NULL;
	const struct token_rec *tr = NULL;
	const char *otps = NULL;
	size_t nt = 0, plen = passlen;
	uint8_t pubid[CRYPTO_OTP_PUBID_BYTES], kcv[32];
	uint32_t u = 0;
	bool have_otp, second_done = false;
	int r;

	memset(out, 0, sizeof(*out));
	out->token_index = -1;
	memset(&otp, 0, sizeof(otp));
	params_for_new(&v->cfg, &dflt);
	if (password == NULL && passlen > 0)
		return -EINVAL;
	have_otp = passlen >= CRYPTO_OTP_CHARS &&
	    crypto_otp_split((const char *)password, passlen, &plen) == 0;
	if (have_otp)
		otps = (const char *)password + plen;

	if (!have_otp) {
		/* Passphrase only: no Argon2id here (for a known or an unknown user alike,
		 * so timing does not tell them apart). The user's session checks the
		 * passphrase against its window verifier, or refuses when no window is
		 * open; it also bounds guessing (window_max_failures). */
		if (plen == 0)
			return VAULT_ERR_AUTH;
		if ((r = vault_txn_begin(v, false, &t)) < 0)
			return r;
		r = user_lookup(t, user, &u);
		if (r == 0)
			r = user_rec_get(t, u, &ur);
		vault_txn_abort(&t);
		if (r == 0 && (r = secret_dup(password, plen, &out->pass)) == 0) {
			out->user_id = u;
			snprintf(out->user, sizeof(out->user), "%s", ur.name);
		}
		if (r < 0)
			vault_login_clear(out);
		crypto_wipe(&ur, sizeof(ur));
		return r;
	}

	if ((r = vault_txn_begin(v, false, &t)) < 0)
		return r;
	r = user_lookup(t, user, &u);
	if (r == 0)
		r = user_rec_get(t, u, &ur);
	if (r == 0)
		r = tokens_load(t, u, toks, &nt);
	vault_txn_abort(&t);
	if (r == VAULT_ERR_NOUSER) {
		/* Same work as an existing user: two Argon2id runs. */
		dummy_pwhash(&dflt);
		dummy_pwhash(&dflt);
		return VAULT_ERR_NOUSER;
	}
	if (r < 0)
		return r;

	if ((r = crypto_pwhash(CRYPTO_PWHASH_SODIUM, password, plen, ur.salt, &ur.pwhash, &P)) < 0)
		goto out;
	if ((r = secret_dup(password, plen, &out->pass)) < 0)
		goto out;

	if ((r = crypto_otp_public_id(otps, CRYPTO_OTP_CHARS, pubid)) < 0) {
		r = VAULT_ERR_TOKEN;
		goto out;
	}
	for (size_t i = 0; i < nt; i++)
		if (memcmp(toks[i].public_id, pubid, sizeof(pubid)) == 0) {
			tr = &toks[i];
			break;
		}
	if (tr == NULL) {
		r = VAULT_ERR_TOKEN;
		goto out;
	}
	if ((r = open_token_aes(P, u, tr, &aes)) < 0) {
		r = r == VAULT_ERR_TAMPER ? VAULT_ERR_AUTH : r;
		goto out;
	}
	if ((r = crypto_otp_decode(otps, CRYPTO_OTP_CHARS, aes, &otp)) < 0) {
		r = r == -ENOMEM ? r : VAULT_ERR_TOKEN;
		goto out;
	}
	if (!crypto_otp_is_newer(otp.session_ctr, otp.use_ctr, tr->session_ctr, tr->use_ctr)) {
		r = VAULT_ERR_REPLAY;
		goto out;
	}
	second_done = true;
	if ((r = derive_token_key(P, otp.uid, tr->salt, &ur.pwhash, &K)) < 0)
		goto out;
	if ((r = kcv_compute(K, u, tr->index, kcv)) < 0)
		goto out;
	if (!crypto_memeq(kcv, tr->kcv, sizeof(kcv))) {
		/* Right AES key, wrong private uid: an OTP minted by someone with the
		 * passphrase and the disk but not the token. */
		r = VAULT_ERR_AUTH;
		goto out;
	}
	{
		struct ctr_ctx cc = { u, tr->index, otp.session_ctr, otp.use_ctr };

		if ((r = vault_write(v, store_counters_txn, &cc)) < 0)
			goto out;
	}
	/* Argon2id parameters raised in the config since this user's were set: re-key
	 * now, while the passphrase is here (only a full login has it and K_t). A failure
	 * leaves the old keys valid and the login goes on; the next login tries again. */
	if (pwhash_raise(&ur.pwhash, &dflt, &raised)) {
		struct secret *K2 = NULL;
		int e = kdf_raise(v, u, &ur, toks, nt, password, plen, tr->index, K, &raised,
		    &K2);

		if (e == 0) {
			secret_free(&K);
			K = K2;
			log_info("vault: user %s: Argon2id raised from %u KiB, %u passes to %u "
			    "KiB, %u passes", ur.name, ur.pwhash.mem_kib, ur.pwhash.passes,
			    raised.mem_kib, raised.passes);
		} else {
			log_warn("vault: user %s: Argon2id parameters not raised: %s (kept; "
			    "next login tries again)", ur.name, vault_strerror(e));
		}
	}
	out->token_index = tr->index;
	out->key = K;
	K = NULL;
	r = 0;
out:
	if (r < 0 && have_otp && !second_done)
		dummy_pwhash(&ur.pwhash);
	if (r == 0) {
		out->user_id = u;
		snprintf(out->user, sizeof(out->user), "%s", ur.name);
	} else {
		vault_login_clear(out);
	}
	crypto_wipe(&otp, sizeof(otp));
	crypto_wipe(toks, sizeof(toks));
	crypto_wipe(kcv, sizeof(kcv));
	secret_free(&P);
	secret_free(&aes);
	secret_free(&K);
	return r;
}

/* ---- keys -------------------------------------------------------------------------- */
const struct vault_epoch_key *keys_epoch(const struct vault_keys *k, uint32_t e)
{
	for (size_t i = 0; i < k->nepochs; i++)
		if (k->epochs[i].epoch == e)
			return &k->epochs[i];
	return NULL;
}

void vault_keys_free(struct vault_keys **kp)
{
	struct vault_keys *k = *kp;

	if (k == NULL)
		return;
	secret_free(&k->umk);
	secret_free(&k->mk);
	secret_free(&k->id_sk);
	secret_free(&k->wkey);
	secret_free(&k->wver);
	secret_free(&k->pass);
	for (size_t i = 0; i < k->nepochs; i++) {
		secret_free(&k->epochs[i].sk);
		secret_free(&k->epochs[i].w);
	}
	free(k->rw);
	crypto_wipe(k, sizeof(*k));
	free(k);
	*kp = NULL;
}

/* Opens every epoch not yet in k (all of them on first load). */
static int keys_load_epochs(struct vault_txn *t, struct vault_keys *k)
{
	MDB_cursor *c = NULL;
	uint8_t pre[8];
	MDB_val kk, d;
	size_t plen = key_user(pre, k->user_id, 'E');
	struct user_rec ur;
	int rc, r;

	if ((r = user_rec_get(t, k->user_id, &ur)) < 0)
		return r;
	if ((rc = mdb_cursor_open(t->txn, t->v->dbi[VDB_USERS], &c)) != 0)
		return store_err(t, rc);
	kk.mv_size = plen;
	kk.mv_data = pre;
	r = 0;
	for (rc = mdb_cursor_get(c, &kk, &d, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &kk, &d, MDB_NEXT)) {
		struct epoch_rec er;
		struct vault_epoch_key *ek;
		struct vault_ad ad;
		uint32_t e;

		if (kk.mv_size != plen + 4 || memcmp(kk.mv_data, pre, plen) != 0)
			break;
		e = be32_get((const uint8_t *)kk.mv_data + plen);
		if (keys_epoch(k, e) != NULL)
			continue;
		if (k->nepochs == VAULT_MAX_EPOCHS) {
			r = -E2BIG;
			break;
		}
		if ((r = vault_record_check(vault_db_names[VDB_USERS], kk.mv_data, kk.mv_size,
		    d.mv_data, d.mv_size)) < 0 ||
		    (r = epoch_parse((const uint8_t *)d.mv_data + 1, d.mv_size - VAULT_REC_OVERHEAD,
		    e, &er)) < 0)
			break;
		ek = &k->epochs[k->nepochs];
		ek->epoch = e;
		memcpy(ek->pk, er.pk, sizeof(ek->pk));
		if ((r = secret_new(CRYPTO_SK_BYTES, &ek->sk)) < 0)
			break;
		ad_init(&ad, VP_EPOCH, k->user_id);
		ad_u32(&ad, e);
		if ((r = crypto_pk_unwrap(k->id_pk, k->id_sk, ad.b, ad.n, er.sk_wrap,
		    sizeof(er.sk_wrap), ek->sk->p)) < 0) {
			r = vault_open_err(r);
			secret_free(&ek->sk);
			break;
		}
		if ((r = vkdf(ek->sk, "dk-wrap", NULL, 0, &ek->w)) < 0) {
			secret_free(&ek->sk);
			break;
		}
		k->nepochs++;
	}
	mdb_cursor_close(c);
	if (r == 0 && rc != 0 && rc != MDB_NOTFOUND)
		r = store_err(t, rc);
	if (r == 0 && keys_epoch(k, ur.current_epoch) == NULL)
		r = VAULT_ERR_CORRUPT;
	if (r == 0)
		k->current_epoch = ur.current_epoch;
	return r;
}

int keys_refresh_txn(struct vault_txn *t, struct vault_keys *k)
{
	return keys_load_epochs(t, k);
}

/* Given the UMK, derives MK, opens the identity key and the epochs. */
static int keys_from_umk(struct vault_txn *t, uint32_t u, struct secret **umk,
    struct vault_keys **out)
{
	struct vault_keys *k;
	struct user_rec ur;
	struct secret *idk = NULL;
	struct vault_ad ad;
	int r;

	*out = NULL;
	if ((k = calloc(1, sizeof(*k))) == NULL)
		return -ENOMEM;
	k->user_id = u;
	k->umk = *umk;
	*umk = NULL;
	if ((k->rw = calloc(1, sizeof(*k->rw))) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = user_rec_get(t, u, &ur)) < 0)
		goto out;
	snprintf(k->name, sizeof(k->name), "%s", ur.name);
	memcpy(k->id_pk, ur.id_pk, sizeof(k->id_pk));
	if ((r = vkdf(k->umk, "mailbox-meta", NULL, 0, &k->mk)) < 0 ||
	    (r = vkdf(k->umk, "identity", NULL, 0, &idk)) < 0)
		goto out;
	ad_init(&ad, VP_ID, u);
	if ((r = vopen_secret(idk, &ad, ur.id_sk_wrap, ur.id_sk_wrap_len, CRYPTO_SK_BYTES,
	    &k->id_sk)) < 0)
		goto out;
	if ((r = keys_load_epochs(t, k)) < 0)
		goto out;
	*out = k;
	k = NULL;
out:
	secret_free(&idk);
	vault_keys_free(&k);
	return r;
}

static int open_umk_token(struct vault_txn *t, uint32_t u, int idx, const struct secret *K,
    struct secret **umk)
{
	struct token_rec tr;
	struct vault_ad ad;
	int r;

	if (idx < 0 || idx >= MAX_TOKENS || K == NULL)
		return -EINVAL;
	if ((r = token_rec_get(t, u, (uint8_t)idx, &tr)) < 0)
		return r == VAULT_ERR_TOKEN ? VAULT_ERR_AUTH : r;
	ad_init(&ad, VP_UMK, u);
	ad_u8(&ad, (uint8_t)idx);
	r = vopen_secret(K, &ad, tr.umk_wrap, tr.umk_wrap_len, 32, umk);
	crypto_wipe(&tr, sizeof(tr));
	return r == VAULT_ERR_TAMPER ? VAULT_ERR_AUTH : r;
}

int vault_unlock(struct vault *v, const struct vault_login *login, struct vault_keys **out)
{
	struct vault_txn *t = NULL;
	struct secret *umk = NULL;
	int r;

	*out = NULL;
	if (login == NULL || login->key == NULL)
		return -EINVAL;
	if ((r = vault_txn_begin(v, false, &t)) < 0)
		return r;
	if ((r = open_umk_token(t, login->user_id, login->token_index, login->key, &umk)) < 0)
		goto out;
	if ((r = keys_from_umk(t, login->user_id, &umk, out)) < 0)
		goto out;
	if (login->pass != NULL && (r = vault_keys_set_window(*out, login->pass)) < 0)
		vault_keys_free(out);
out:
	secret_free(&umk);
	vault_txn_abort(&t);
	return r;
}

int vault_unlock_recovery(struct vault *v, const char *user, const char *recovery,
    struct vault_keys **out)
{
	struct vault_txn *t = NULL;
	struct secret *R = NULL, *rk = NULL, *umk = NULL;
	struct user_rec ur;
	struct vault_ad ad;
	uint32_t u;
	int r;

	*out = NULL;
	if ((r = secret_new(32, &R)) < 0)
		return r;
	if (crypto_recovery_decode(recovery, strlen(recovery), R->p) < 0) {
		r = VAULT_ERR_AUTH;
		goto out;
	}
	if ((r = vault_txn_begin(v, false, &t)) < 0)
		goto out;
	if ((r = user_lookup(t, user, &u)) < 0 || (r = user_rec_get(t, u, &ur)) < 0)
		goto out;
	if ((r = vkdf(R, "recovery", NULL, 0, &rk)) < 0)
		goto out;
	ad_init(&ad, VP_UMK_RECOVERY, u);
	if ((r = vopen_secret(rk, &ad, ur.rec_wrap, ur.rec_wrap_len, 32, &umk)) < 0) {
		r = r == VAULT_ERR_TAMPER ? VAULT_ERR_AUTH : r;
		goto out;
	}
	r = keys_from_umk(t, u, &umk, out);
out:
	vault_txn_abort(&t);
	secret_free(&R);
	secret_free(&rk);
	secret_free(&umk);
	return r;
}

/* W = KDF(Kw, "window", pass): crypto_kdf is keyed BLAKE2b over a fixed prefix and
 * label followed by the passphrase, a PRF of the passphrase under Kw. */
static int window_mac(const struct vault_keys *k, const struct secret *pass,
    struct secret **out)
{
	if (k->wkey == NULL || pass == NULL || pass->len == 0)
		return -EINVAL;
	return crypto_kdf(k->wkey, "window", pass->p, pass->len, 32, out);
}

int vault_keys_set_window(struct vault_keys *k, const struct secret *pass)
{
	struct secret *w = NULL;
	int r;

	if (k == NULL || pass == NULL)
		return -EINVAL;
	if (pass->len == 0) {
		/* An empty passphrase cannot be typed alone (LOGIN needs a password): no
		 * window. */
		vault_keys_clear_window(k);
		return 0;
	}
	if (k->wkey == NULL && (r = secret_new_random(32, &k->wkey)) < 0)
		return r;
	if ((r = window_mac(k, pass, &w)) < 0)
		return r;
	secret_free(&k->wver);
	k->wver = w;
	return 0;
}

void vault_keys_clear_window(struct vault_keys *k)
{
	if (k != NULL)
		secret_free(&k->wver);
}

int vault_keys_check_passphrase(const struct vault_keys *k, const struct vault_login *login)
{
	struct secret *w = NULL;
	int r;

	if (k == NULL || login == NULL || login->pass == NULL || login->user_id != k->user_id)
		return VAULT_ERR_AUTH;
	if (k->wver == NULL)
		return VAULT_ERR_WINDOW;
	if ((r = window_mac(k, login->pass, &w)) < 0)
		return r;
	r = secret_eq(k->wver, w) ? 0 : VAULT_ERR_AUTH;
	secret_free(&w);
	return r;
}

int vault_keys_refresh(struct vault *v, struct vault_keys *k)
{
	struct vault_txn *t = NULL;
	int r;

	if ((r = vault_txn_begin(v, false, &t)) < 0)
		return r;
	if ((r = keys_load_epochs(t, k)) == 0)
		r = keys_drop_retired(t, k);
	vault_txn_abort(&t);
	return r;
}

uint32_t vault_keys_user_id(const struct vault_keys *k)
{
	return k->user_id;
}

int vault_keys_check_login(struct vault *v, const struct vault_keys *k,
    const struct vault_login *login)
{
	struct vault_txn *t = NULL;
	struct secret *umk = NULL;
	int r;

	if (login == NULL || login->key == NULL || login->user_id != k->user_id)
		return VAULT_ERR_AUTH;
	if ((r = vault_txn_begin(v, false, &t)) < 0)
		return r;
	r = open_umk_token(t, login->user_id, login->token_index, login->key, &umk);
	vault_txn_abort(&t);
	if (r == 0 && !secret_eq(umk, k->umk))
		r = VAULT_ERR_AUTH;
	secret_free(&umk);
	return r;
}

/* ---- passwd / Argon2id raise ------------------------------------------------------------
 * Both change what derives from the passphrase: a new salt (and maybe new Argon2id
 * parameters), so a new P, and with it every token's K_t, KCV, UMK wrap and AES wrap
 * (the secret wrap under the UMK is re-sealed too). Everything is prepared outside the
 * write transaction (the Argon2id work), then the user record and every token record
 * are written in ONE durable transaction: killed at any point, the store holds the old
 * set or the new set, never a mix. */
struct passwd_ctx {
	uint32_t u;
	uint8_t salt[CRYPTO_SALT_BYTES];
	struct crypto_pwhash_params par;
	bool check_old;			/* refuse (-EBUSY) if the salt is no longer old_salt */
	uint8_t old_salt[CRYPTO_SALT_BYTES];
	size_t nt;
	struct token_rec toks[MAX_TOKENS];	/* the new crypto fields */
};

static int passwd_txn(struct vault_txn *t, void *arg)
{
	struct passwd_ctx *c = arg;
	struct token_rec cur[MAX_TOKENS];
	struct user_rec ur;
	size_t nt;
	int r;

	if ((r = user_rec_get(t, c->u, &ur)) < 0 || (r = tokens_load(t, c->u, cur, &nt)) < 0)
		goto out;
	if (nt != c->nt || (c->check_old &&
	    memcmp(ur.salt, c->old_salt, sizeof(ur.salt)) != 0)) {
		r = -EBUSY;	/* tokens or passphrase changed while we derived keys */
		goto out;
	}
	memcpy(ur.salt, c->salt, sizeof(ur.salt));
	ur.pwhash = c->par;
	if ((r = user_rec_put(t, c->u, &ur)) < 0)
		goto out;
	for (size_t i = 0; i < nt; i++) {
		struct token_rec *n = &c->toks[i];

		if (cur[i].index != n->index ||
		    memcmp(cur[i].public_id, n->public_id, sizeof(n->public_id)) != 0) {
			r = -EBUSY;
			goto out;
		}
		/* Keep the counters as they are now (a login may have moved them). */
		n->session_ctr = cur[i].session_ctr;
		n->use_ctr = cur[i].use_ctr;
		if ((r = token_rec_put(t, c->u, n)) < 0)
			goto out;
	}
	r = user_bump_change(t, c->u);
out:
	crypto_wipe(cur, sizeof(cur));
	crypto_wipe(&ur, sizeof(ur));
	return r;
}

/* Given c->u, c->par and the current token records in c->toks/c->nt: a fresh salt,
 * P = A(pass, salt) into *P_out, and every token re-sealed in c->toks (its aes key and
 * uid read from the secret wrap under umk). With keep_idx >= 0, *K_out receives that
 * token's new K_t. */
static int rekey_prepare(struct passwd_ctx *c, const struct secret *umk, const uint8_t *pass,
    size_t len, int keep_idx, struct secret **P_out, struct secret **K_out)
{
	struct secret *P = NULL;
	int r;

	crypto_random(c->salt, sizeof(c->salt));
	if ((r = crypto_pwhash(CRYPTO_PWHASH_SODIUM, pass, len, c->salt, &c->par, &P)) < 0)
		goto out;
	for (size_t i = 0; i < c->nt; i++) {
		struct token_rec *tr = &c->toks[i];
		struct secret *sec = NULL, *aes = NULL, *K = NULL;
		struct vault_ad ad;

		ad_init(&ad, VP_TOKSECRET, c->u);
		ad_u8(&ad, tr->index);
		if ((r = vopen_secret(umk, &ad, tr->sec_wrap, tr->sec_wrap_len,
		    CRYPTO_OTP_AES_BYTES + CRYPTO_OTP_UID_BYTES, &sec)) < 0)
			goto out;
		crypto_random(tr->salt, sizeof(tr->salt));
		if ((r = secret_dup(sec->p, CRYPTO_OTP_AES_BYTES, &aes)) == 0 &&
		    (r = derive_token_key(P, sec->p + CRYPTO_OTP_AES_BYTES, tr->salt, &c->par,
		    &K)) == 0)
			r = token_seal(c->u, tr, K, P, umk, aes, sec->p + CRYPTO_OTP_AES_BYTES);
		if (r == 0 && K_out != NULL && (int)tr->index == keep_idx) {
			secret_free(K_out);
			*K_out = K;
			K = NULL;
		}
		secret_free(&sec);
		secret_free(&aes);
		secret_free(&K);
		if (r < 0)
			goto out;
	}
	*P_out = P;
	P = NULL;
out:
	secret_free(&P);
	return r;
}

int vault_passwd(struct vault *v, struct vault_keys *k, const uint8_t *newpass, size_t len)
{
	struct vault_txn *t = NULL;
	struct passwd_ctx *c;
	struct secret *P = NULL;
	int r;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -ENOMEM;
	c->u = k->user_id;
	if ((r = vault_txn_begin(v, false, &t)) < 0)
		goto out;
	r = tokens_load(t, c->u, c->toks, &c->nt);
	vault_txn_abort(&t);
	if (r < 0)
		goto out;
	params_for_new(&v->cfg, &c->par);
	if ((r = rekey_prepare(c, k->umk, newpass, len, -1, &P, NULL)) < 0)
		goto out;
	if ((r = vault_write(v, passwd_txn, c)) == 0) {
		secret_free(&k->pass);
		k->pass = P;	/* lets a following vault_token_add work (keymgr recover) */
		P = NULL;
	}
out:
	secret_free(&P);
	crypto_wipe(c, sizeof(*c));
	free(c);
	return r;
}

/* The parameters a user's passphrase is raised to: per dimension the larger of what
 * is stored and what the config asks for new users. Never lowers anything. */
static bool pwhash_raise(const struct crypto_pwhash_params *stored,
    const struct crypto_pwhash_params *policy, struct crypto_pwhash_params *out)
{
	out->mem_kib = stored->mem_kib > policy->mem_kib ? stored->mem_kib : policy->mem_kib;
	out->passes = stored->passes > policy->passes ? stored->passes : policy->passes;
	return out->mem_kib != stored->mem_kib || out->passes != stored->passes;
}

/* Called by vault_login_derive after a full login succeeded (OTP checked, counters
 * stored) when the user's Argon2id parameters are below the configured ones. It has
 * what a passwd needs: the passphrase and K_t, which opens the UMK (the pre-login
 * process could do that with K_t anyway; the UMK is wiped before returning). Re-keys
 * with the same passphrase under the raised parameters (passwd_txn: one durable
 * txn, refused if the passphrase changed meanwhile) and returns the new K_t of the
 * token used, which replaces the login's (the session's window verifier is keyed on
 * the passphrase itself, so it does not change). */
static int kdf_raise(struct vault *v, uint32_t u, const struct user_rec *ur,
    const struct token_rec *toks, size_t nt, const uint8_t *pass, size_t len, int idx,
    const struct secret *K, const struct crypto_pwhash_params *to, struct secret **K_out)
{
	struct vault_txn *t = NULL;
	struct passwd_ctx *c;
	struct secret *umk = NULL, *P = NULL;
	int r;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -ENOMEM;
	c->u = u;
	c->par = *to;
	c->check_old = true;
	memcpy(c->old_salt, ur->salt, sizeof(c->old_salt));
	memcpy(c->toks, toks, nt * sizeof(*toks));
	c->nt = nt;
	if ((r = vault_txn_begin(v, false, &t)) < 0)
		goto out;
	r = open_umk_token(t, u, idx, K, &umk);
	vault_txn_abort(&t);
	if (r < 0)
		goto out;
	if ((r = rekey_prepare(c, umk, pass, len, idx, &P, K_out)) < 0)
		goto out;
	if (*K_out == NULL) {
		r = -EINVAL;
		goto out;
	}
	r = vault_write(v, passwd_txn, c);
out:
	if (r < 0)
		secret_free(K_out);
	secret_free(&umk);
	secret_free(&P);
	crypto_wipe(c, sizeof(*c));
	free(c);
	return r;
}

/* ---- recovery key replacement ------------------------------------------------------ */
struct recrep_ctx {
	uint32_t u;
	uint8_t wrap[128];
	size_t wrap_len;
};

static int recovery_replace_txn(struct vault_txn *t, void *arg)
{
	struct recrep_ctx *c = arg;
	struct user_rec ur;
	int r;

	if ((r = user_rec_get(t, c->u, &ur)) < 0)
		return r;
	memcpy(ur.rec_wrap, c->wrap, c->wrap_len);
	ur.rec_wrap_len = c->wrap_len;
	if ((r = user_rec_put(t, c->u, &ur)) == 0)
		r = user_bump_change(t, c->u);
	crypto_wipe(&ur, sizeof(ur));
	return r;
}

int vault_recovery_replace(struct vault *v, const struct vault_keys *k, char *recovery_out,
    size_t recovery_len)
{
	struct recrep_ctx c;
	struct secret *R = NULL, *rk = NULL;
	struct vault_ad ad;
	int r;

	if (k == NULL || k->umk == NULL || recovery_out == NULL)
		return -EINVAL;
	memset(&c, 0, sizeof(c));
	c.u = k->user_id;
	if ((r = secret_new_random(32, &R)) < 0 ||
	    (r = crypto_recovery_encode(R->p, recovery_out, recovery_len)) < 0 ||
	    (r = vkdf(R, "recovery", NULL, 0, &rk)) < 0)
		goto out;
	ad_init(&ad, VP_UMK_RECOVERY, c.u);
	if ((r = vseal(rk, 0, &ad, k->umk->p, k->umk->len, c.wrap, sizeof(c.wrap),
	    &c.wrap_len)) < 0)
		goto out;
	r = vault_write(v, recovery_replace_txn, &c);
out:
	if (r < 0 && recovery_len > 0)
		crypto_wipe(recovery_out, recovery_len);
	crypto_wipe(&c, sizeof(c));
	secret_free(&R);
	secret_free(&rk);
	return r;
}

/* ---- tokens ------------------------------------------------------------------------ */
struct tokadd_ctx { uint32_t u; struct token_rec tr; };

static int token_add_txn(struct vault_txn *t, void *arg)
{
	struct tokadd_ctx *c = arg;
	struct token_rec cur;
	int r;

	r = token_rec_get(t, c->u, c->tr.index, &cur);
	crypto_wipe(&cur, sizeof(cur));
	if (r == 0)
		return -EBUSY;
	if (r != VAULT_ERR_TOKEN)
		return r;
	if ((r = token_rec_put(t, c->u, &c->tr)) < 0)
		return r;
	return user_bump_change(t, c->u);
}

int vault_keys_set_passphrase(struct vault *v, struct vault_keys *k, const uint8_t *pass,
    size_t len)
{
	struct vault_txn *t = NULL;
	struct token_rec toks[MAX_TOKENS];
	struct user_rec ur;
	struct secret *P = NULL, *aes = NULL;
	size_t nt = 0;
	int r;

	if ((r = vault_txn_begin(v, false, &t)) < 0)
		return r;
	if ((r = user_rec_get(t, k->user_id, &ur)) == 0)
		r = tokens_load(t, k->user_id, toks, &nt);
	vault_txn_abort(&t);
	if (r < 0)
		goto out;
	if ((r = crypto_pwhash(CRYPTO_PWHASH_SODIUM, pass, len, ur.salt, &ur.pwhash, &P)) < 0)
		goto out;
	if (nt > 0 && (r = open_token_aes(P, k->user_id, &toks[0], &aes)) < 0) {
		r = r == VAULT_ERR_TAMPER ? VAULT_ERR_AUTH : r;
		goto out;
	}
	secret_free(&k->pass);
	k->pass = P;
	P = NULL;
out:
	crypto_wipe(toks, sizeof(toks));
	secret_free(&P);
	secret_free(&aes);
	return r;
}

int vault_token_add(struct vault *v, struct vault_keys *k, const struct vault_token_secret *tok)
{
	struct vault_txn *t = NULL;
	struct token_rec toks[MAX_TOKENS];
	struct tokadd_ctx c;
	struct user_rec ur;
	struct secret *K = NULL;
	bool used[MAX_TOKENS] = { false };
	size_t nt = 0;
	int r, idx = -1;

	memset(&c, 0, sizeof(c));
	if (tok == NULL || tok->aes_key == NULL || tok->aes_key->len != CRYPTO_OTP_AES_BYTES ||
	    tok->uid == NULL || tok->uid->len != CRYPTO_OTP_UID_BYTES)
		return -EINVAL;
	if (k->pass == NULL)
		return -ENOKEY;
	if ((r = vault_txn_begin(v, false, &t)) < 0)
		return r;
	if ((r = user_rec_get(t, k->user_id, &ur)) == 0)
		r = tokens_load(t, k->user_id, toks, &nt);
	vault_txn_abort(&t);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < nt; i++) {
		used[toks[i].index] = true;
		if (memcmp(toks[i].public_id, tok->public_id, sizeof(tok->public_id)) == 0) {
			r = -EEXIST;
			goto out;
		}
	}
	for (int i = 0; i < MAX_TOKENS; i++)
		if (!used[i]) {
			idx = i;
			break;
		}
	if (idx < 0) {
		r = -E2BIG;
		goto out;
	}
	c.u = k->user_id;
	c.tr.index = (uint8_t)idx;
	memcpy(c.tr.public_id, tok->public_id, sizeof(c.tr.public_id));
	c.tr.added = (int64_t)time(NULL);
	snprintf(c.tr.label, sizeof(c.tr.label), "%s", tok->label);
	crypto_random(c.tr.salt, sizeof(c.tr.salt));
	if ((r = derive_token_key(k->pass, tok->uid->p, c.tr.salt, &ur.pwhash, &K)) < 0 ||
	    (r = token_seal(c.u, &c.tr, K, k->pass, k->umk, tok->aes_key, tok->uid->p)) < 0)
		goto out;
	r = vault_write(v, token_add_txn, &c);
out:
	crypto_wipe(toks, sizeof(toks));
	crypto_wipe(&c, sizeof(c));
	secret_free(&K);
	return r;
}

struct tokrm_ctx { uint32_t u; uint8_t idx; };

static int token_remove_txn(struct vault_txn *t, void *arg)
{
	struct tokrm_ctx *c = arg;
	uint8_t k[8];
	int r;

	r = store_del(t, VDB_USERS, k, key_token(k, c->u, c->idx));
	if (r == -ENOENT)
		return VAULT_ERR_TOKEN;
	if (r < 0)
		return r;
	return user_bump_change(t, c->u);
}

int vault_token_remove(struct vault *v, struct vault_keys *k, uint8_t index)
{
	struct tokrm_ctx c = { k->user_id, index };

	if (index >= MAX_TOKENS)
		return VAULT_ERR_TOKEN;
	return vault_write(v, token_remove_txn, &c);
}

/* ---- rotation ------------------------------------------------------------------------ */
struct rotate_ctx {
	const char *name;
	time_t now;
	bool force;
	uint32_t period;
	uint32_t new_epoch;
};

/* One user's rotation inside t: 0 and *new_epoch set, or 1 if not due. */
static int rotate_user_txn(struct vault_txn *t, const char *name, time_t now, bool force,
    uint32_t period, uint32_t *new_epoch)
{
	struct user_rec ur;
	struct epoch_rec cur, ne;
	struct counters_rec cr;
	struct secret *sk = NULL;
	struct vault_ad ad;
	uint32_t u;
	int r;

	*new_epoch = 0;
	if ((r = user_lookup(t, name, &u)) < 0 || (r = user_rec_get(t, u, &ur)) < 0 ||
	    (r = epoch_rec_get(t, u, ur.current_epoch, &cur)) < 0)
		return r;
	/* Idempotent per (user, now): an epoch created at or after now is current
	 * enough, even when forced (a retried or duplicated request). */
	if (cur.created >= (int64_t)now)
		return 1;
	if (!force && (int64_t)now - cur.created < (int64_t)period)
		return 1;
	if (ur.current_epoch == UINT32_MAX)
		return -EOVERFLOW;
	memset(&ne, 0, sizeof(ne));
	ne.epoch = ur.current_epoch + 1;
	ne.created = (int64_t)now;
	if ((r = crypto_x25519_keypair(ne.pk, &sk)) < 0)
		return r;
	ad_init(&ad, VP_EPOCH, u);
	ad_u32(&ad, ne.epoch);
	r = crypto_pk_wrap(ur.id_pk, ad.b, ad.n, sk->p, sk->len, ne.sk_wrap);
	secret_free(&sk);
	if (r < 0)
		return r;
	/* New epoch and pointer in one txn: exactly one current epoch at any crash. */
	if ((r = epoch_rec_put(t, u, &ne)) < 0)
		return r;
	ur.current_epoch = ne.epoch;
	if ((r = user_rec_put(t, u, &ur)) < 0 || (r = counters_get(t, u, &cr)) < 0)
		return r;
	cr.pending_rewrap = cr.messages > UINT32_MAX ? UINT32_MAX : (uint32_t)cr.messages;
	cr.change_seq++;
	if ((r = counters_put(t, u, &cr)) < 0)
		return r;
	*new_epoch = ne.epoch;
	return 0;
}

static int rotate_txn(struct vault_txn *t, void *arg)
{
	struct rotate_ctx *c = arg;

	return rotate_user_txn(t, c->name, c->now, c->force, c->period, &c->new_epoch);
}

struct rotate_batch_ctx {
	struct vault_rotate_item *items;
	size_t n;
	time_t now;
	bool force;
	uint32_t period;
};

static int rotate_batch_txn(struct vault_txn *t, void *arg)
{
	struct rotate_batch_ctx *c = arg;
	int r;

	for (size_t i = 0; i < c->n; i++) {
		struct vault_rotate_item *it = &c->items[i];
		uint32_t u;
		size_t nret = 0;

		it->result = 0;
		it->epoch = 0;
		it->nretired = 0;
		r = rotate_user_txn(t, it->user, c->now, c->force, c->period, &it->epoch);
		if (r == VAULT_ERR_NOUSER) {
			it->result = r;
			continue;
		}
		if (r < 0)
			return r;
		it->result = r;
		if (!it->retire_unused)
			continue;
		if ((r = user_lookup(t, it->user, &u)) < 0 ||
		    (r = epochs_retire_unused_txn(t, u, it->retired,
		    sizeof(it->retired) / sizeof(it->retired[0]), &nret)) < 0)
			return r;
		it->nretired = nret;
	}
	return 0;
}

int vault_rotate_batch(struct vault *v, struct vault_rotate_item *items, size_t n, time_t now,
    bool force)
{
	struct rotate_batch_ctx c = { items, n, now, force, v->cfg.rotation_period };
	int r;

	if (n == 0)
		return 0;
	if ((r = vault_write(v, rotate_batch_txn, &c)) < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if (items[i].result == 0)
			log_info("vault: user %s: epoch %u is current", items[i].user, items[i].epoch);
	return 0;
}

int vault_rotate(struct vault *v, const char *user, time_t now, bool force)
{
	struct rotate_ctx c = { user, now, force, v->cfg.rotation_period, 0 };
	int r;

	r = vault_write(v, rotate_txn, &c);
	if (r == 0)
		log_info("vault: user %s: epoch %u is current", user, c.new_epoch);
	return r;
}

/* ---- epoch lifecycle: listing and retirement ------------------------------------------
 * Retiring an epoch destroys its record, the only copy of its secret (sealed to the
 * identity key): whatever is wrapped only under it can never be opened again. The
 * record is first overwritten with zeros in place, then deleted, in one durable txn.
 * LMDB is copy-on-write: pages that held earlier copies of the record are freed, not
 * scrubbed, and keep the old bytes until they are reused (SECURITY.md says what that
 * means and why backups are compacted copies). */
static int shred_record(struct vault_txn *t, enum vdb db, const uint8_t *key, size_t klen)
{
	MDB_val k = { klen, (void *)key }, d;
	int rc;

	if (t->sticky != 0)
		return t->sticky;
	if ((rc = mdb_get(t->txn, t->v->dbi[db], &k, &d)) != 0)
		return store_err(t, rc);
	d.mv_data = NULL;
	if ((rc = mdb_put(t->txn, t->v->dbi[db], &k, &d, MDB_RESERVE)) != 0)
		return store_err(t, rc);
	memset(d.mv_data, 0, d.mv_size);
	if ((rc = mdb_del(t->txn, t->v->dbi[db], &k, NULL)) != 0)
		return store_err(t, rc);
	return 0;
}

/* Every live epoch record of u, ascending, into a malloc'd array. */
static int epochs_load(struct vault_txn *t, uint32_t u, struct vault_epoch_info **out,
    size_t *n_out)
{
	MDB_cursor *c = NULL;
	uint8_t pre[8];
	MDB_val kk, d;
	size_t plen = key_user(pre, u, 'E'), n = 0, cap = 0;
	struct vault_epoch_info *a = NULL;
	int rc, r = 0;

	*out = NULL;
	*n_out = 0;
	if ((rc = mdb_cursor_open(t->txn, t->v->dbi[VDB_USERS], &c)) != 0)
		return store_err(t, rc);
	kk.mv_size = plen;
	kk.mv_data = pre;
	for (rc = mdb_cursor_get(c, &kk, &d, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &kk, &d, MDB_NEXT)) {
		struct epoch_rec er;

		if (kk.mv_size != plen + 4 || memcmp(kk.mv_data, pre, plen) != 0)
			break;
		if ((r = vault_record_check(vault_db_names[VDB_USERS], kk.mv_data, kk.mv_size,
		    d.mv_data, d.mv_size)) < 0 ||
		    (r = epoch_parse((const uint8_t *)d.mv_data + 1, d.mv_size - VAULT_REC_OVERHEAD,
		    be32_get((const uint8_t *)kk.mv_data + plen), &er)) < 0)
			break;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 8;
			struct vault_epoch_info *na = realloc(a, nc * sizeof(*a));

			if (na == NULL) {
				r = -ENOMEM;
				break;
			}
			a = na;
			cap = nc;
		}
		memset(&a[n], 0, sizeof(a[n]));
		a[n].epoch = er.epoch;
		a[n].created = (time_t)er.created;
		n++;
	}
	mdb_cursor_close(c);
	if (r == 0 && rc != 0 && rc != MDB_NOTFOUND)
		r = store_err(t, rc);
	if (r < 0) {
		free(a);
		return r;
	}
	*out = a;
	*n_out = n;
	return 0;
}

/* Counts u's messages per live epoch (clear epoch numbers: no key). *orphans_out:
 * messages under an epoch that has no record. */
static int epochs_count_msgs(struct vault_txn *t, uint32_t u, struct vault_epoch_info *ep,
    size_t n, uint64_t *orphans_out)
{
	MDB_cursor *c = NULL;
	MDB_val kk, d;
	uint8_t pre[4];
	uint64_t orphans = 0;
	int rc, r = 0;

	for (size_t i = 0; i < n; i++)
		ep[i].messages = 0;
	be32_put(pre, u);
	if ((rc = mdb_cursor_open(t->txn, t->v->dbi[VDB_MSG], &c)) != 0)
		return store_err(t, rc);
	kk.mv_size = sizeof(pre);
	kk.mv_data = pre;
	for (rc = mdb_cursor_get(c, &kk, &d, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &kk, &d, MDB_NEXT)) {
		struct msg_rec mr;
		size_t i;

		if (kk.mv_size != 12 || memcmp(kk.mv_data, pre, 4) != 0)
			break;
		/* A record that does not parse may name any epoch: stop rather than guess
		 * (retiring on a wrong count would shred a key still in use). */
		if (d.mv_size < VAULT_REC_OVERHEAD || msg_rec_parse((const uint8_t *)d.mv_data + 1,
		    d.mv_size - VAULT_REC_OVERHEAD, &mr) < 0) {
			r = VAULT_ERR_CORRUPT;
			break;
		}
		for (i = 0; i < n && ep[i].epoch != mr.epoch; i++)
			;
		if (i < n)
			ep[i].messages++;
		else
			orphans++;
	}
	mdb_cursor_close(c);
	if (r == 0 && rc != 0 && rc != MDB_NOTFOUND)
		r = store_err(t, rc);
	if (orphans_out != NULL)
		*orphans_out = orphans;
	return r;
}

int vault_user_epochs(struct vault_txn *t, uint32_t user_id, bool count_messages,
    struct vault_epoch_info *out, size_t max, size_t *n_out)
{
	struct vault_epoch_info *a = NULL;
	struct user_rec ur;
	size_t n = 0;
	int r;

	*n_out = 0;
	if ((r = user_rec_get(t, user_id, &ur)) < 0)
		return r;
	if ((r = epochs_load(t, user_id, &a, &n)) < 0)
		return r;
	if (count_messages && (r = epochs_count_msgs(t, user_id, a, n, NULL)) < 0)
		goto out;
	for (size_t i = 0; i < n && i < max; i++)
		out[i] = a[i];
	*n_out = n;
out:
	free(a);
	return r;
}

int epochs_have_old(struct vault_txn *t, uint32_t u, uint32_t cur, bool *has_old)
{
	MDB_cursor *c = NULL;
	uint8_t pre[8];
	MDB_val kk, d;
	size_t plen = key_user(pre, u, 'E');
	int rc;

	*has_old = false;
	if ((rc = mdb_cursor_open(t->txn, t->v->dbi[VDB_USERS], &c)) != 0)
		return store_err(t, rc);
	kk.mv_size = plen;
	kk.mv_data = pre;
	/* Epoch keys sort numerically (big-endian): the first one is the oldest. */
	rc = mdb_cursor_get(c, &kk, &d, MDB_SET_RANGE);
	if (rc == 0 && kk.mv_size == plen + 4 && memcmp(kk.mv_data, pre, plen) == 0)
		*has_old = be32_get((const uint8_t *)kk.mv_data + plen) < cur;
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : store_err(t, rc);
}

int epochs_retire_unused_txn(struct vault_txn *t, uint32_t u, uint32_t *retired, size_t max,
    size_t *n_out)
{
	struct vault_epoch_info *a = NULL;
	struct user_rec ur;
	struct counters_rec cr;
	uint64_t orphans = 0, older = 0;
	size_t n = 0, nret = 0;
	int r;

	*n_out = 0;
	if (!t->write)
		return -EINVAL;
	if ((r = user_rec_get(t, u, &ur)) < 0 || (r = counters_get(t, u, &cr)) < 0)
		return r;
	if ((r = epochs_load(t, u, &a, &n)) < 0)
		return r;
	if ((r = epochs_count_msgs(t, u, a, n, &orphans)) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		uint8_t k[12];

		if (a[i].epoch >= ur.current_epoch)
			continue;
		if (a[i].messages > 0) {
			older += a[i].messages;
			continue;
		}
		if ((r = shred_record(t, VDB_USERS, k, key_epoch(k, u, a[i].epoch))) < 0)
			goto out;
		if (retired != NULL && nret < max)
			retired[nret] = a[i].epoch;
		nret++;
	}
	/* Orphans (only mid-way through a forced retirement) cannot be re-wrapped. */
	older += orphans;
	if (cr.pending_rewrap != (older > UINT32_MAX ? UINT32_MAX : (uint32_t)older)) {
		cr.pending_rewrap = older > UINT32_MAX ? UINT32_MAX : (uint32_t)older;
		if ((r = counters_put(t, u, &cr)) < 0)
			goto out;
	}
	*n_out = nret;
out:
	free(a);
	return r;
}

struct retire_ctx {
	const char *name;
	uint32_t *retired;
	size_t max, n;
};

static int retire_unused_fn(struct vault_txn *t, void *arg)
{
	struct retire_ctx *c = arg;
	uint32_t u;
	int r;

	c->n = 0;
	if ((r = user_lookup(t, c->name, &u)) < 0)
		return r;
	return epochs_retire_unused_txn(t, u, c->retired, c->max, &c->n);
}

int vault_epochs_retire_unused(struct vault *v, const char *user, uint32_t *retired,
    size_t max, size_t *n_out)
{
	uint32_t local[16];
	struct retire_ctx c = { user, retired ? retired : local, retired ? max : 16, 0 };
	int r;

	*n_out = 0;
	if ((r = vault_write(v, retire_unused_fn, &c)) < 0)
		return r;
	for (size_t i = 0; i < c.n && i < c.max; i++)
		log_info("vault: user %s: epoch %u retired (no message left under it; secret "
		    "destroyed)", user, c.retired[i]);
	*n_out = c.n;
	return 0;
}

/* ---- size-fix list (u 'Z') --------------------------------------------------------- */
#define SIZEFIX_MAX 1024

static int sizefix_load(struct vault_txn *t, uint32_t u, uint32_t *ids, size_t *n_out)
{
	const uint8_t *p;
	size_t n;
	uint8_t k[8];
	int r;

	*n_out = 0;
	if ((r = store_get(t, VDB_USERS, k, key_user(k, u, 'Z'), true, &p, &n)) < 0)
		return r;
	if (n % 4 != 0 || n / 4 > SIZEFIX_MAX)
		return VAULT_ERR_CORRUPT;
	for (size_t i = 0; i < n / 4; i++)
		ids[i] = be32_get(p + 4 * i);
	*n_out = n / 4;
	return 0;
}

static int sizefix_store(struct vault_txn *t, uint32_t u, const uint32_t *ids, size_t n)
{
	uint8_t buf[4 * SIZEFIX_MAX], k[8];

	key_user(k, u, 'Z');
	if (n == 0) {
		int r = store_del(t, VDB_USERS, k, 5);

		return r == -ENOENT ? 0 : r;
	}
	for (size_t i = 0; i < n; i++)
		be32_put(buf + 4 * i, ids[i]);
	return store_put(t, VDB_USERS, k, 5, buf, 4 * n);
}

int sizefix_add(struct vault_txn *t, uint32_t u, uint32_t m)
{
	uint32_t ids[SIZEFIX_MAX];
	size_t n = 0;
	int r;

	r = sizefix_load(t, u, ids, &n);
	if (r < 0 && r != -ENOENT)
		return r;
	for (size_t i = 0; i < n; i++)
		if (ids[i] == m)
			return 0;
	if (n == SIZEFIX_MAX)
		return -E2BIG;
	ids[n++] = m;
	return sizefix_store(t, u, ids, n);
}

int sizefix_first(struct vault_txn *t, uint32_t u, uint32_t *m_out)
{
	uint32_t ids[SIZEFIX_MAX];
	size_t n = 0;
	int r;

	if ((r = sizefix_load(t, u, ids, &n)) < 0)
		return r;
	if (n == 0)
		return -ENOENT;
	*m_out = ids[0];
	return 0;
}

int sizefix_remove(struct vault_txn *t, uint32_t u, uint32_t m)
{
	uint32_t ids[SIZEFIX_MAX];
	size_t n = 0, j = 0;
	int r;

	if ((r = sizefix_load(t, u, ids, &n)) < 0)
		return r == -ENOENT ? 0 : r;
	for (size_t i = 0; i < n; i++)
		if (ids[i] != m)
			ids[j++] = ids[i];
	return sizefix_store(t, u, ids, j);
}

/* ---- forced retirement ------------------------------------------------------------- */
#define RETIRE_BATCH_MSGS 256
#define RETIRE_BATCH_CHUNKS 4096

struct force_ctx {
	const char *name;
	uint32_t epoch;
	uint32_t u;
	uint64_t expunged;		/* in this txn */
	bool shredded;			/* the record was destroyed in this txn */
};

struct victim { uint32_t m, n; };

/* One bounded step: expunges up to a batch of u's messages under c->epoch; when none
 * is left (checked in this txn), destroys the epoch record in the same txn. */
static int force_retire_fn(struct vault_txn *t, void *arg)
{
	struct force_ctx *c = arg;
	struct victim vic[RETIRE_BATCH_MSGS];
	struct user_rec ur;
	struct counters_rec cr;
	const uint8_t *ep;
	size_t epn;
	MDB_cursor *cur = NULL;
	MDB_val kk, d;
	uint8_t pre[4], k[12];
	uint64_t chunks = 0;
	size_t nv = 0;
	bool more = false;
	int rc, r;

	c->expunged = 0;
	c->shredded = false;
	if ((r = user_lookup(t, c->name, &c->u)) < 0 || (r = user_rec_get(t, c->u, &ur)) < 0)
		return r;
	if (c->epoch == ur.current_epoch)
		return -EBUSY;
	if (c->epoch == 0 || c->epoch > ur.current_epoch)
		return -ENOENT;
	if ((r = store_get(t, VDB_USERS, k, key_epoch(k, c->u, c->epoch), true, &ep, &epn)) < 0)
		return r;	/* -ENOENT: retired already */
	be32_put(pre, c->u);
	if ((rc = mdb_cursor_open(t->txn, t->v->dbi[VDB_MSG], &cur)) != 0)
		return store_err(t, rc);
	kk.mv_size = sizeof(pre);
	kk.mv_data = pre;
	for (rc = mdb_cursor_get(cur, &kk, &d, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(cur, &kk, &d, MDB_NEXT)) {
		struct msg_rec mr;

		if (kk.mv_size != 12 || memcmp(kk.mv_data, pre, 4) != 0)
			break;
		if (d.mv_size < VAULT_REC_OVERHEAD || msg_rec_parse((const uint8_t *)d.mv_data + 1,
		    d.mv_size - VAULT_REC_OVERHEAD, &mr) < 0) {
			mdb_cursor_close(cur);
			return VAULT_ERR_CORRUPT;
		}
		if (mr.epoch != c->epoch)
			continue;
		if (nv == RETIRE_BATCH_MSGS || chunks + mr.nchunks > RETIRE_BATCH_CHUNKS) {
			more = true;
			break;
		}
		vic[nv].m = be32_get((const uint8_t *)kk.mv_data + 4);
		vic[nv].n = be32_get((const uint8_t *)kk.mv_data + 8);
		chunks += mr.nchunks;
		nv++;
	}
	mdb_cursor_close(cur);
	if (rc != 0 && rc != MDB_NOTFOUND && !more)
		return store_err(t, rc);
	if ((r = counters_get(t, c->u, &cr)) < 0)
		return r;
	for (size_t i = 0; i < nv; i++) {
		struct msg_rec mr;
		struct mbox_rec mb;
		uint8_t mod[8];

		if ((r = msg_rec_get(t, c->u, vic[i].m, vic[i].n, &mr)) < 0 ||
		    (r = mbox_rec_get(t, c->u, vic[i].m, &mb)) < 0)
			return r;
		/* An adopted message's exact size is in the sealed mailbox sum, which only
		 * the session can correct: list the mailbox for it. */
		if (mr.wrap == WRAP_SYM && (r = sizefix_add(t, c->u, vic[i].m)) < 0)
			return r;
		key_msg(k, c->u, vic[i].m, vic[i].n);
		if ((r = store_del(t, VDB_MSG, k, 12)) < 0 ||
		    (r = store_del_prefix(t, VDB_CHUNK, k, 12, 0)) < 0)
			return r;
		r = store_del(t, VDB_CACHE, k, 12);
		if (r < 0 && r != -ENOENT)
			return r;
		mb.messages = mb.messages > 0 ? mb.messages - 1 : 0;
		mb.padded_bytes = mb.padded_bytes > mr.padded_size ?
		    mb.padded_bytes - mr.padded_size : 0;
		be64_put(mod, ++mb.highestmodseq);
		if ((r = mbox_rec_put(t, c->u, vic[i].m, &mb)) < 0 ||
		    (r = store_put(t, VDB_VANISHED, k, 12, mod, 8)) < 0)
			return r;
		cr.messages = cr.messages > 0 ? cr.messages - 1 : 0;
		cr.stored_bytes = cr.stored_bytes > mr.padded_size ?
		    cr.stored_bytes - mr.padded_size : 0;
		if (cr.pending_rewrap > 0)
			cr.pending_rewrap--;
	}
	if (nv > 0) {
		cr.change_seq++;	/* sessions pick up the expunges */
		if ((r = counters_put(t, c->u, &cr)) < 0)
			return r;
	}
	c->expunged = nv;
	if (more)
		return 0;
	if ((r = shred_record(t, VDB_USERS, k, key_epoch(k, c->u, c->epoch))) < 0)
		return r;
	c->shredded = true;
	return 0;
}

int vault_epoch_retire(struct vault *v, const char *user, uint32_t epoch,
    uint64_t *expunged_out)
{
	struct force_ctx c;
	uint64_t total = 0;
	int r;

	memset(&c, 0, sizeof(c));
	c.name = user;
	c.epoch = epoch;
	*expunged_out = 0;
	do {
		if ((r = vault_write(v, force_retire_fn, &c)) < 0)
			break;
		total += c.expunged;
		*expunged_out = total;
	} while (!c.shredded);
	if (total > 0)
		log_info("vault: user %s: %" PRIu64 " message(s) under epoch %u expunged for its "
		    "retirement", user, total, epoch);
	if (r == 0)
		log_info("vault: user %s: epoch %u retired on request (secret destroyed)", user,
		    epoch);
	return r;
}

int keys_drop_retired(struct vault_txn *t, struct vault_keys *k)
{
	size_t j = 0;

	for (size_t i = 0; i < k->nepochs; i++) {
		struct vault_epoch_key *ek = &k->epochs[i];
		const uint8_t *p;
		size_t n;
		uint8_t key[12];
		int r = -ENOENT;

		if (ek->epoch != k->current_epoch)
			r = store_get(t, VDB_USERS, key, key_epoch(key, k->user_id, ek->epoch), false,
			    &p, &n);
		if (ek->epoch != k->current_epoch && r == -ENOENT) {
			secret_free(&ek->sk);
			secret_free(&ek->w);
			continue;
		}
		if (ek->epoch != k->current_epoch && r < 0)
			return r;
		if (j != i) {
			k->epochs[j] = *ek;
			memset(ek, 0, sizeof(*ek));
		}
		j++;
	}
	k->nepochs = j;
	return 0;
}
