/* mailbox.c: mailboxes and subscriptions. A mailbox record keeps what delivery must
 * update without keys in clear (UIDNEXT, HIGHESTMODSEQ, counts, padded bytes) and
 * seals the rest under MK: name, special-use, MAILBOXID and the exact-size sum. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "vault-private.h"

#define MBOX_REC_MAX 1024
#define SUBS_MAX (256 * 1024)
#define MAX_MAILBOXES 100000

int mbox_rec_put(struct vault_txn *t, uint32_t u, uint32_t m, const struct mbox_rec *r)
{
	uint8_t buf[MBOX_REC_MAX], k[8];
	struct wbuf w;

	wb_init(&w, buf, sizeof(buf));
	wb_u32(&w, r->uidvalidity);
	wb_u32(&w, r->uidnext);
	wb_u64(&w, r->highestmodseq);
	wb_u32(&w, r->messages);
	wb_u64(&w, r->padded_bytes);
	wb_u32(&w, r->first_pk_uid);
	wb_str16(&w, r->sealed, r->sealed_len);
	if (w.bad)
		return -E2BIG;
	return store_put(t, VDB_MBOX, k, key_mbox(k, u, m), buf, w.len);
}

static int mbox_parse(const uint8_t *p, size_t n, struct mbox_rec *out)
{
	struct sbuf b;

	sbuf_from(&b, p, n);
	if (sbuf_get_u32(&b, &out->uidvalidity) < 0 || sbuf_get_u32(&b, &out->uidnext) < 0 ||
	    sbuf_get_u64(&b, &out->highestmodseq) < 0 || sbuf_get_u32(&b, &out->messages) < 0 ||
	    sbuf_get_u64(&b, &out->padded_bytes) < 0 || sbuf_get_u32(&b, &out->first_pk_uid) < 0 ||
	    rb_str16(&b, out->sealed, sizeof(out->sealed), &out->sealed_len) < 0)
		return VAULT_ERR_CORRUPT;
	return 0;
}

int mbox_rec_get(struct vault_txn *t, uint32_t u, uint32_t m, struct mbox_rec *out)
{
	const uint8_t *p;
	size_t n;
	uint8_t k[8];
	int r;

	if ((r = store_get(t, VDB_MBOX, k, key_mbox(k, u, m), true, &p, &n)) < 0)
		return r == -ENOENT ? VAULT_ERR_NOMBOX : r;
	return mbox_parse(p, n, out);
}

static void mbox_ad(struct vault_ad *ad, uint32_t u, uint32_t m)
{
	ad_init(ad, VP_MBOX, u);
	ad_u32(ad, m);
}

static int mbox_seal(struct vault *v, uint32_t u, uint32_t m, const struct secret *mk,
    const struct mbox_secret *s, struct mbox_rec *r)
{
	struct sbuf *pt = NULL;
	struct vault_ad ad;
	int e;

	if ((e = vault_sbuf_get(v, &pt)) < 0)
		return e;
	if ((e = sbuf_put_str16(pt, s->name, strlen(s->name))) < 0 ||
	    (e = sbuf_put_u32(pt, s->special_use)) < 0 ||
	    (e = sbuf_put(pt, s->objectid, sizeof(s->objectid))) < 0 ||
	    (e = sbuf_put_u64(pt, s->size)) < 0)
		goto out;
	mbox_ad(&ad, u, m);
	e = vseal(mk, 0, &ad, pt->d, pt->len, r->sealed, sizeof(r->sealed), &r->sealed_len);
out:
	vault_sbuf_put(v, &pt);
	return e;
}

static int mbox_open(struct vault *v, uint32_t u, uint32_t m, const struct secret *mk,
    const struct mbox_rec *r, struct mbox_secret *s)
{
	struct sbuf *pt = NULL;
	struct vault_ad ad;
	const uint8_t *name;
	size_t nl;
	int e;

	memset(s, 0, sizeof(*s));
	if ((e = vault_sbuf_get(v, &pt)) < 0)
		return e;
	mbox_ad(&ad, u, m);
	if ((e = crypto_rec_open(mk, ad.b, ad.n, r->sealed, r->sealed_len, pt)) < 0) {
		e = vault_open_err(e);
		goto out;
	}
	if (sbuf_get_str16(pt, &name, &nl) < 0 || nl >= sizeof(s->name) ||
	    sbuf_get_u32(pt, &s->special_use) < 0 ||
	    sbuf_get(pt, s->objectid, sizeof(s->objectid)) < 0 || sbuf_get_u64(pt, &s->size) < 0) {
		e = VAULT_ERR_CORRUPT;
		goto out;
	}
	memcpy(s->name, name, nl);
	s->name[nl] = '\0';
out:
	vault_sbuf_put(v, &pt);
	return e;
}

int mbox_create_raw(struct vault_txn *t, uint32_t u, const struct secret *mk, uint32_t id,
    const char *name, uint32_t special_use, time_t now)
{
	struct mbox_rec r;
	struct mbox_secret s;
	struct counters_rec c;
	int e;

	memset(&r, 0, sizeof(r));
	memset(&s, 0, sizeof(s));
	if ((e = next_uidvalidity(t, u, now, &r.uidvalidity)) < 0)
		return e;
	r.uidnext = 1;
	r.highestmodseq = 1;
	snprintf(s.name, sizeof(s.name), "%s", name);
	s.special_use = special_use;
	crypto_random(s.objectid, sizeof(s.objectid));
	if ((e = mbox_seal(t->v, u, id, mk, &s, &r)) < 0 || (e = mbox_rec_put(t, u, id, &r)) < 0)
		goto out;
	if ((e = counters_get(t, u, &c)) < 0)
		goto out;
	if (c.next_mbox_id <= id) {
		c.next_mbox_id = id + 1;
		e = counters_put(t, u, &c);
	}
out:
	crypto_wipe(&s, sizeof(s));
	return e;
}

/* Adds delta to the sealed exact-size sum (session operations only). */
int mbox_adjust_size(struct vault_txn *t, const struct vault_keys *k, uint32_t m,
    int64_t delta)
{
	struct mbox_rec r;
	struct mbox_secret s;
	int e;

	if ((e = mbox_rec_get(t, k->user_id, m, &r)) < 0)
		return e;
	if ((e = mbox_open(t->v, k->user_id, m, k->mk, &r, &s)) < 0)
		return e;
	if (delta < 0 && (uint64_t)-delta > s.size)
		s.size = 0;
	else
		s.size += (uint64_t)delta;
	if ((e = mbox_seal(t->v, k->user_id, m, k->mk, &s, &r)) == 0)
		e = mbox_rec_put(t, k->user_id, m, &r);
	crypto_wipe(&s, sizeof(s));
	return e;
}

/* ---- subscriptions ------------------------------------------------------------------ */
static void subs_ad(struct vault_ad *ad, uint32_t u)
{
	ad_init(ad, VP_SUBS, u);
}

int subs_write(struct vault_txn *t, uint32_t u, const struct secret *mk, char *const *names,
    size_t n)
{
	struct sbuf *pt = NULL, *ct = NULL;
	struct vault_ad ad;
	uint8_t k[8];
	int e;

	if (n > UINT16_MAX)
		return -E2BIG;
	if ((e = sbuf_new_secure(SUBS_MAX, &pt)) < 0 || (e = sbuf_new(SUBS_MAX + 128, &ct)) < 0)
		goto out;
	if ((e = sbuf_put_u16(pt, (uint16_t)n)) < 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		if ((e = sbuf_put_str16(pt, names[i], strlen(names[i]))) < 0)
			goto out;
	subs_ad(&ad, u);
	if ((e = crypto_rec_seal(crypto_default_alg(), mk, 0, ad.b, ad.n, pt->d, pt->len, ct)) < 0)
		goto out;
	e = store_put(t, VDB_USERS, k, key_user(k, u, 'S'), ct->d, ct->len);
out:
	sbuf_free(&pt);
	sbuf_free(&ct);
	return e;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static int subs_read(struct vault_txn *t, const struct vault_keys *k, char ***out, size_t *n_out)
{
	struct sbuf *pt = NULL;
	struct vault_ad ad;
	const uint8_t *p;
	char **names = NULL;
	uint16_t cnt = 0;
	size_t n, i = 0;
	uint8_t key[8];
	int e;

	*out = NULL;
	*n_out = 0;
	e = store_get(t, VDB_USERS, key, key_user(key, k->user_id, 'S'), true, &p, &n);
	if (e == -ENOENT)
		return 0;
	if (e < 0)
		return e;
	if ((e = sbuf_new_secure(n, &pt)) < 0)
		return e;
	subs_ad(&ad, k->user_id);
	if ((e = crypto_rec_open(k->mk, ad.b, ad.n, p, n, pt)) < 0) {
		e = vault_open_err(e);
		goto out;
	}
	if (sbuf_get_u16(pt, &cnt) < 0) {
		e = VAULT_ERR_CORRUPT;
		goto out;
	}
	if ((names = calloc(cnt + 1u, sizeof(*names))) == NULL) {
		e = -ENOMEM;
		goto out;
	}
	for (i = 0; i < cnt; i++) {
		const uint8_t *s;
		size_t sl;

		if (sbuf_get_str16(pt, &s, &sl) < 0) {
			e = VAULT_ERR_CORRUPT;
			goto out;
		}
		if ((names[i] = malloc(sl + 1)) == NULL) {
			e = -ENOMEM;
			goto out;
		}
		memcpy(names[i], s, sl);
		names[i][sl] = '\0';
	}
	*out = names;
	*n_out = cnt;
	names = NULL;
out:
	if (names != NULL)
		free_names(names, i + 1);
	sbuf_free(&pt);
	return e;
}

int vault_subscriptions(struct vault_txn *t, const struct vault_keys *k, char ***names_out,
    size_t *n_out)
{
	return subs_read(t, k, names_out, n_out);
}

static bool name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n >= 512 || name[0] == '/' || name[n - 1] == '/' || strstr(name, "//"))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return false;
	return true;
}

/* INBOX is case-insensitive (RFC 9051 5.1); every other name is exact. */
static bool name_eq(const char *a, const char *b)
{
	if (strcasecmp(a, "INBOX") == 0 && strcasecmp(b, "INBOX") == 0)
		return true;
	return strcmp(a, b) == 0;
}

int vault_subscribe(struct vault_txn *t, const struct vault_keys *k, const char *name, bool on)
{
	char **names = NULL;
	size_t n = 0, j = 0;
	bool found = false;
	int e;

	if (!name_valid(name))
		return -EINVAL;
	if ((e = subs_read(t, k, &names, &n)) < 0)
		return e;
	for (size_t i = 0; i < n; i++) {
		if (name_eq(names[i], name)) {
			found = true;
			if (!on) {
				free(names[i]);
				continue;
			}
		}
		names[j++] = names[i];
	}
	n = j;
	if (on && !found) {
		char **nn = realloc(names, (n + 1) * sizeof(*names));

		if (nn == NULL) {
			e = -ENOMEM;
			goto out;
		}
		names = nn;
		if ((names[n] = strdup(name)) == NULL) {
			e = -ENOMEM;
			goto out;
		}
		n++;
	}
	if (found == on)	/* nothing changed */
		goto out;
	if ((e = subs_write(t, k->user_id, k->mk, names, n)) < 0)
		goto out;
	e = user_bump_change(t, k->user_id);
out:
	free_names(names, n);
	return e;
}

/* ---- listing ------------------------------------------------------------------------ */
static int fill_mailbox(struct vault_txn *t, const struct vault_keys *k, uint32_t m,
    const struct mbox_rec *r, char **subs, size_t nsubs, struct vault_mailbox *out)
{
	struct mbox_secret s;
	uint64_t pend = 0;
	int e;

	memset(out, 0, sizeof(*out));
	if ((e = mbox_open(t->v, k->user_id, m, k->mk, r, &s)) < 0)
		return e;
	if (r->first_pk_uid != 0 &&
	    (e = msgs_pending_size(t, k, m, r->first_pk_uid, &pend)) < 0)
		goto out;
	out->id = m;
	snprintf(out->name, sizeof(out->name), "%s", m == VAULT_INBOX_ID ? "INBOX" : s.name);
	out->special_use = s.special_use;
	for (size_t i = 0; i < nsubs; i++)
		if (name_eq(subs[i], out->name))
			out->subscribed = true;
	out->uidvalidity = r->uidvalidity;
	out->uidnext = r->uidnext;
	out->highestmodseq = r->highestmodseq;
	out->messages = r->messages;
	out->size = s.size + pend;
	memcpy(out->objectid, s.objectid, sizeof(out->objectid));
out:
	crypto_wipe(&s, sizeof(s));
	return e;
}

int vault_mailbox_list(struct vault_txn *t, const struct vault_keys *k,
    struct vault_mailbox **out, size_t *n_out)
{
	MDB_cursor *c = NULL;
	MDB_val kk, d;
	uint8_t pre[4];
	struct vault_mailbox *list = NULL;
	char **subs = NULL;
	size_t n = 0, cap = 0, nsubs = 0;
	int rc, e;

	*out = NULL;
	*n_out = 0;
	if ((e = subs_read(t, k, &subs, &nsubs)) < 0)
		return e;
	be32_put(pre, k->user_id);
	if ((rc = mdb_cursor_open(t->txn, t->v->dbi[VDB_MBOX], &c)) != 0) {
		e = store_err(t, rc);
		goto out;
	}
	kk.mv_size = sizeof(pre);
	kk.mv_data = pre;
	for (rc = mdb_cursor_get(c, &kk, &d, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &kk, &d, MDB_NEXT)) {
		struct mbox_rec r;
		uint32_t m;

		if (kk.mv_size != 8 || memcmp(kk.mv_data, pre, 4) != 0)
			break;
		m = be32_get((const uint8_t *)kk.mv_data + 4);
		if ((e = vault_record_check(vault_db_names[VDB_MBOX], kk.mv_data, kk.mv_size,
		    d.mv_data, d.mv_size)) < 0 ||
		    (e = mbox_parse((const uint8_t *)d.mv_data + 1, d.mv_size - VAULT_REC_OVERHEAD,
		    &r)) < 0)
			goto out;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct vault_mailbox *nl;

			if (ncap > MAX_MAILBOXES) {
				e = -E2BIG;
				goto out;
			}
			if ((nl = realloc(list, ncap * sizeof(*list))) == NULL) {
				e = -ENOMEM;
				goto out;
			}
			list = nl;
			cap = ncap;
		}
		/* fill_mailbox may run other cursors; kk/d are not used after it. */
		if ((e = fill_mailbox(t, k, m, &r, subs, nsubs, &list[n])) < 0)
			goto out;
		n++;
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		e = store_err(t, rc);
		goto out;
	}
	*out = list;
	*n_out = n;
	list = NULL;
	e = 0;
out:
	if (c != NULL)
		mdb_cursor_close(c);
	free(list);
	free_names(subs, nsubs);
	return e;
}

int vault_mailbox_get(struct vault_txn *t, const struct vault_keys *k, uint32_t id,
    struct vault_mailbox *out)
{
	struct mbox_rec r;
	char **subs = NULL;
	size_t nsubs = 0;
	int e;

	if ((e = mbox_rec_get(t, k->user_id, id, &r)) < 0)
		return e;
	if ((e = subs_read(t, k, &subs, &nsubs)) < 0)
		return e;
	e = fill_mailbox(t, k, id, &r, subs, nsubs, out);
	free_names(subs, nsubs);
	return e;
}

int vault_mailbox_find(struct vault_txn *t, const struct vault_keys *k, const char *name,
    struct vault_mailbox *out)
{
	struct vault_mailbox *list = NULL;
	size_t n = 0;
	int e;

	if (strcasecmp(name, "INBOX") == 0)
		return vault_mailbox_get(t, k, VAULT_INBOX_ID, out);
	if ((e = vault_mailbox_list(t, k, &list, &n)) < 0)
		return e;
	e = VAULT_ERR_NOMBOX;
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i].name, name) == 0) {
			*out = list[i];
			e = 0;
			break;
		}
	free(list);
	return e;
}

/* Looks for a mailbox by name without the per-mailbox size scan. */
static int name_taken(struct vault_txn *t, const struct vault_keys *k, const char *name,
    uint32_t except)
{
	MDB_cursor *c = NULL;
	MDB_val kk, d;
	uint8_t pre[4];
	int rc, e = 0;

	be32_put(pre, k->user_id);
	if ((rc = mdb_cursor_open(t->txn, t->v->dbi[VDB_MBOX], &c)) != 0)
		return store_err(t, rc);
	kk.mv_size = sizeof(pre);
	kk.mv_data = pre;
	for (rc = mdb_cursor_get(c, &kk, &d, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(c, &kk, &d, MDB_NEXT)) {
		struct mbox_rec r;
		struct mbox_secret s;
		uint32_t m;

		if (kk.mv_size != 8 || memcmp(kk.mv_data, pre, 4) != 0)
			break;
		m = be32_get((const uint8_t *)kk.mv_data + 4);
		if ((e = mbox_parse((const uint8_t *)d.mv_data + 1, d.mv_size - VAULT_REC_OVERHEAD,
		    &r)) < 0 || (e = mbox_open(t->v, k->user_id, m, k->mk, &r, &s)) < 0)
			break;
		if (m != except && name_eq(m == VAULT_INBOX_ID ? "INBOX" : s.name, name))
			e = -EEXIST;
		crypto_wipe(&s, sizeof(s));
		if (e < 0)
			break;
	}
	mdb_cursor_close(c);
	if (e == 0 && rc != 0 && rc != MDB_NOTFOUND)
		e = store_err(t, rc);
	return e;
}

int vault_mailbox_create(struct vault_txn *t, const struct vault_keys *k, const char *name,
    uint32_t special_use, uint32_t *id_out)
{
	struct counters_rec c;
	uint32_t id;
	int e;

	if (!name_valid(name))
		return -EINVAL;
	if ((e = name_taken(t, k, name, 0)) < 0)
		return e;
	if ((e = counters_get(t, k->user_id, &c)) < 0)
		return e;
	id = c.next_mbox_id;
	if (id == 0 || id == UINT32_MAX)
		return -EOVERFLOW;
	if ((e = mbox_create_raw(t, k->user_id, k->mk, id, name, special_use, time(NULL))) < 0)
		return e;
	if ((e = user_bump_change(t, k->user_id)) < 0)
		return e;
	if (id_out != NULL)
		*id_out = id;
	return 0;
}

int vault_mailbox_rename(struct vault_txn *t, const struct vault_keys *k, uint32_t id,
    const char *newname)
{
	struct mbox_rec r;
	struct mbox_secret s;
	int e;

	if (!name_valid(newname) || strcasecmp(newname, "INBOX") == 0)
		return -EINVAL;
	if (id == VAULT_INBOX_ID)
		return -EPERM;	/* RFC 9051 6.3.6 INBOX semantics are imapd's (move messages) */
	if ((e = mbox_rec_get(t, k->user_id, id, &r)) < 0)
		return e;
	if ((e = name_taken(t, k, newname, id)) < 0)
		return e;
	if ((e = mbox_open(t->v, k->user_id, id, k->mk, &r, &s)) < 0)
		return e;
	snprintf(s.name, sizeof(s.name), "%s", newname);
	if ((e = mbox_seal(t->v, k->user_id, id, k->mk, &s, &r)) == 0 &&
	    (e = mbox_rec_put(t, k->user_id, id, &r)) == 0)
		e = user_bump_change(t, k->user_id);
	crypto_wipe(&s, sizeof(s));
	return e;
}

int vault_mailbox_delete(struct vault_txn *t, const struct vault_keys *k, uint32_t id)
{
	struct mbox_rec r;
	struct user_rec ur;
	uint8_t key[8];
	int e;

	if (id == VAULT_INBOX_ID)
		return -EPERM;
	if ((e = mbox_rec_get(t, k->user_id, id, &r)) < 0 ||
	    (e = user_rec_get(t, k->user_id, &ur)) < 0)
		return e;
	if ((e = msgs_delete_mailbox(t, k->user_id, id, ur.current_epoch)) < 0)
		return e;
	if ((e = store_del(t, VDB_MBOX, key, key_mbox(key, k->user_id, id))) < 0)
		return e;
	return user_bump_change(t, k->user_id);
}
