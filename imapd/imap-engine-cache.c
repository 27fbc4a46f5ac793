/* The sealed per-message cache as the engine stores it, and loading message bodies.
 *
 * Blob (opaque to the vault, which seals it under the message's data key):
 *   "SEC" u8 version=1
 *   u32 len + imap_msg_cache blob (ENVELOPE, BODYSTRUCTURE, BODY, part table, Date)
 *   u32 len + the top-level header block (with its blank line)
 * The header copy lets header SEARCH keys and BODY[HEADER...] fetches run without
 * opening the body (a header block is small next to most bodies).
 *
 * A message seen for the first time has no cache (-ENOENT): it is read once, parsed,
 * and the blob queued to be written in a write transaction after the read batch
 * (struct pending_cache). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "imap-engine-private.h"
#include "log.h"

#define BLOB_MAGIC "SEC"
#define BLOB_VERSION 1
#define BLOBCACHE_MAX_SLOTS ((size_t)1 << 18)
#define BLOBCACHE_FIRST ((size_t)256 << 10)	/* the arena starts here, grows to max */

/* ---- in-session blob cache ------------------------------------------------------ */

/* bytes = 0: no cache. One slot per 256 bytes of arena (a power of two, 64..256Ki;
 * calloc'd, so untouched slots cost no memory).
 * bytes is the most the arena grows to: a secure allocation is dirty and locked in
 * full at once (sodium_malloc fills it), so it starts at BLOBCACHE_FIRST and
 * blobcache_put doubles it as it fills; a user with little mail does not pay the
 * full size per session process. */
int blobcache_init(struct blobcache *bc, size_t bytes)
{
	size_t nslot = 64;
	int r;

	memset(bc, 0, sizeof(*bc));
	if (bytes == 0)
		return 0;
	if (bytes > UINT32_MAX)		/* slot offsets are 32-bit */
		bytes = UINT32_MAX;
	while (nslot < BLOBCACHE_MAX_SLOTS && nslot * 256 < bytes)
		nslot *= 2;
	if ((bc->slot = calloc(nslot, sizeof(*bc->slot))) == NULL)
		return -ENOMEM;
	bc->max = bytes;
	bc->cap = bytes < BLOBCACHE_FIRST ? bytes : BLOBCACHE_FIRST;
	if ((r = secret_new(bc->cap, &bc->arena)) < 0) {
		free(bc->slot);
		memset(bc, 0, sizeof(*bc));
		return r;
	}
	bc->nslot = nslot;
	return 0;
}

void blobcache_free(struct blobcache *bc)
{
	secret_free(&bc->arena);
	free(bc->slot);
	memset(bc, 0, sizeof(*bc));
}

static size_t slot_of(const struct blobcache *bc, uint32_t mbox, uint32_t uid)
{
	uint64_t h = ((uint64_t)mbox << 32 | uid) * 0x9e3779b97f4a7c15ull;

	return (size_t)(h >> 32) & (bc->nslot - 1);
}

int blobcache_get(struct blobcache *bc, uint32_t mbox, uint32_t uid, const uint8_t **p,
    size_t *len)
{
	const struct blobcache_slot *s;

	if (bc->arena == NULL)
		return 0;
	s = &bc->slot[slot_of(bc, mbox, uid)];
	/* Valid while the ring writer has not come round to it again. */
	if (s->len == 0 || s->mbox != mbox || s->uid != uid || bc->abs - s->abs > bc->cap)
		return 0;
	*p = bc->arena->p + s->off;
	*len = s->len;
	return 1;
}

void blobcache_put(struct blobcache *bc, uint32_t mbox, uint32_t uid, const uint8_t *p,
    size_t len)
{
	struct blobcache_slot *s;
	size_t off;

	if (bc->arena == NULL || len == 0 || len > bc->max / 16)
		return;
	/* Grow (doubling, up to max) only while the ring has not wrapped: then every
	 * stored offset is its absolute position below abs, and a copy of the first abs
	 * bytes keeps all of them valid. */
	while (bc->abs + len > bc->cap && bc->abs <= bc->cap && bc->cap < bc->max) {
		struct secret *n = NULL;
		size_t ncap = bc->cap * 2 < bc->max ? bc->cap * 2 : bc->max;
		if (secret_new(ncap, &n) < 0)
			break;		/* keep the smaller ring */
		memcpy(n->p, bc->arena->p, (size_t)bc->abs);
		secret_free(&bc->arena);
		bc->arena = n;
		bc->cap = ncap;
	}
	if (len > bc->cap)
		return;
	off = (size_t)(bc->abs % bc->cap);
	if (off + len > bc->cap) {
		/* no wrapping inside a blob: skip to the start of the arena */
		bc->abs += bc->cap - off;
		off = 0;
	}
	s = &bc->slot[slot_of(bc, mbox, uid)];
	memcpy(bc->arena->p + off, p, len);
	s->mbox = mbox;
	s->uid = uid;
	s->off = (uint32_t)off;
	s->len = (uint32_t)len;
	s->abs = bc->abs;
	bc->abs += len;
}

void mcache_clear(struct mcache *mc)
{
	if (!mc->borrowed)
		vault_sbuf_release(mc->v, &mc->blob);
	memset(mc, 0, sizeof(*mc));
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Parses our wrapper around the imap-msg blob; untrusted like any stored record. */
static int blob_parse(struct mcache *mc)
{
	const uint8_t *p = mc->blob->d;
	size_t n = mc->blob->len, l1, l2;

	if (n < 8 || memcmp(p, BLOB_MAGIC, 3) != 0 || p[3] != BLOB_VERSION)
		return -EPROTO;
	l1 = get_u32(p + 4);
	if (l1 > n - 8 || n - 8 - l1 < 4)
		return -EPROTO;
	l2 = get_u32(p + 8 + l1);
	if (l2 != n - 12 - l1)
		return -EPROTO;
	if (imap_msg_cache_parse(p + 8, l1, &mc->mc) < 0)
		return -EPROTO;
	mc->hdr = p + 12 + l1;
	mc->hdrlen = l2;
	return 0;
}

int msg_cache_build(const struct imap_msg *m, struct sbuf **out)
{
	const struct imap_msg_part *root = imap_msg_root(m);
	struct imap_mbuf mb;
	struct sbuf *b = NULL;
	int r;

	*out = NULL;
	imap_mbuf_init(&mb, VAULT_META_CACHE_MAX);
	if ((r = imap_msg_cache_build(m, &mb)) < 0)
		goto out;
	if (root->hdr_len > VAULT_META_CACHE_MAX / 2) {
		r = -E2BIG;	/* an absurd header: no copy, searches read the body */
		goto out;
	}
	if ((r = sbuf_new_secure(VAULT_META_CACHE_MAX, &b)) < 0)
		goto out;
	/* One secure allocation of the final size (each growth is a sodium_malloc). */
	{
		uint8_t *p;

		if ((r = sbuf_reserve(b, 12 + mb.len + root->hdr_len, &p)) < 0)
			goto out;
		b->len = 0;
	}
	if ((r = sbuf_put(b, BLOB_MAGIC, 3)) < 0 || (r = sbuf_put_u8(b, BLOB_VERSION)) < 0 ||
	    (r = sbuf_put_str32(b, mb.d, mb.len)) < 0 ||
	    (r = sbuf_put_str32(b, imap_msg_data(m) + root->hdr_off, root->hdr_len)) < 0)
		goto out;
	*out = b;
	b = NULL;
out:
	if (mb.d != NULL)
		explicit_bzero(mb.d, mb.cap);
	imap_mbuf_release(&mb);
	sbuf_free(&b);
	return r;
}

int msg_load(struct imap_client *c, struct vault_txn *t, uint32_t mbox, uint32_t uid,
    struct sbuf **data_out, struct imap_msg **msg_out)
{
	struct sbuf *d = NULL;
	int r;

	*data_out = NULL;
	if (msg_out != NULL)
		*msg_out = NULL;
	if ((r = vault_msg_read(t, c->u->k, mbox, uid, 0, UINT64_MAX, &d)) < 0)
		return r;
	if (msg_out != NULL && (r = imap_msg_parse(d->d, d->len, NULL, msg_out)) < 0) {
		vault_sbuf_release(c->u->v, &d);
		return r;
	}
	*data_out = d;
	return 0;
}

int pending_add(struct pending_cache *p, uint32_t uid, struct sbuf *blob)
{
	if (p->n == p->cap) {
		size_t ncap = p->cap ? p->cap * 2 : 16;
		struct pending_ent *ne = realloc(p->e, ncap * sizeof(*ne));

		if (ne == NULL)
			return -ENOMEM;
		p->e = ne;
		p->cap = ncap;
	}
	p->e[p->n].uid = uid;
	p->e[p->n].blob = blob;
	p->n++;
	return 0;
}

void pending_clear(struct pending_cache *p)
{
	for (size_t i = 0; i < p->n; i++)
		sbuf_free(&p->e[i].blob);
	free(p->e);
	memset(p, 0, sizeof(*p));
}

struct flush_run {
	uint32_t mbox;
	struct pending_cache *p;
};

/* engine_write callback: rewrites the same records on a replay. */
static int flush_txn(struct imap_client *c, struct vault_txn *t, void *arg)
{
	struct flush_run *f = arg;
	int r = 0;

	for (size_t i = 0; i < f->p->n; i++) {
		r = vault_msg_set_cache(t, c->u->k, f->mbox, f->p->e[i].uid, f->p->e[i].blob->d,
		    f->p->e[i].blob->len);
		if (r == VAULT_ERR_NOMSG)
			r = 0;	/* expunged meanwhile */
		if (r < 0)
			break;
	}
	return r;
}

/* Writes queued cache blobs. A failure only costs a re-parse later. */
int pending_flush(struct imap_client *c, uint32_t mbox, struct pending_cache *p)
{
	struct flush_run f = { mbox, p };
	int r;

	if (p->n == 0)
		return 0;
	if ((r = engine_write(c, flush_txn, &f)) < 0)
		log_warn("session: cache write failed: %s", vault_strerror(r));
	for (size_t i = 0; i < p->n; i++)
		sbuf_free(&p->e[i].blob);
	p->n = 0;
	return r;
}

int mcache_get(struct imap_client *c, struct vault_txn *t, uint32_t mbox, uint32_t uid,
    struct mcache *out, struct pending_cache *pend, struct sbuf **data_io,
    struct imap_msg **msg_io)
{
	struct sbuf *data = NULL;
	struct imap_msg *m = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	out->v = c->u->v;
	{
		const uint8_t *p;
		size_t len;

		/* A view into the session's arena: valid until the next put, which
		 * only happens for another message. */
		if (blobcache_get(&c->u->bc, mbox, uid, &p, &len) == 1) {
			sbuf_from(&out->view, p, len);
			out->blob = &out->view;
			out->borrowed = true;
			if (blob_parse(out) == 0)
				return 0;
			memset(out, 0, sizeof(*out));
			out->v = c->u->v;
		}
	}
	r = vault_msg_get_cache(t, c->u->k, mbox, uid, &out->blob);
	if (r == 0) {
		if (blob_parse(out) == 0) {
			blobcache_put(&c->u->bc, mbox, uid, out->blob->d, out->blob->len);
			return 0;
		}
		/* Unreadable (an older format): rebuild it. */
		vault_sbuf_release(c->u->v, &out->blob);
	} else if (r != -ENOENT) {
		return r;
	}
	if (msg_io != NULL && *msg_io != NULL) {
		r = msg_cache_build(*msg_io, &out->blob);	/* the caller's parse */
	} else if (msg_io != NULL && data_io != NULL && *data_io != NULL) {
		/* The caller read the body but did not parse it: parse it once, for both. */
		if ((r = imap_msg_parse((*data_io)->d, (*data_io)->len, NULL, msg_io)) < 0)
			return r;
		r = msg_cache_build(*msg_io, &out->blob);
	} else {
		if ((r = msg_load(c, t, mbox, uid, &data, &m)) < 0)
			return r;
		r = msg_cache_build(m, &out->blob);
		if (msg_io != NULL && data_io != NULL) {
			*data_io = data;	/* the caller keeps the body and its parse */
			*msg_io = m;
			data = NULL;
			m = NULL;
		}
		imap_msg_free(&m);
		vault_sbuf_release(c->u->v, &data);
	}
	if (r < 0)
		return r;
	if ((r = blob_parse(out)) < 0) {
		mcache_clear(out);
		return r;
	}
	blobcache_put(&c->u->bc, mbox, uid, out->blob->d, out->blob->len);
	/* Queue it for writing (the vault seals it); the pending list owns it from
	 * now on and outlives this view of it (freed after the batch). */
	if (pend != NULL && pending_add(pend, uid, out->blob) == 0)
		out->borrowed = true;
	return 0;
}
