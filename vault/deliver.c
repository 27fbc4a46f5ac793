/* deliver.c: streaming delivery into INBOX with no user secret.
 *
 * Plaintext is held only in the 64 KiB chunk buffer (sodium_malloc'd) and sealed
 * as it arrives under a fresh data key. Sealed chunks stay in memory up to
 * DELIVERY_MEM_MAX and are spilled, as ciphertext, to an unlinked temp file under
 * data_dir/tmp beyond that. The commit is one durable write txn: UID and modseq are
 * allocated there, the data key is wrapped to the user's epoch public key current
 * in that txn, and records and counters are written together.
 *
 * The body AD binds the UID (KEYS.md), but the UID is only known in the commit
 * txn. Chunks are sealed for the UID that was next when the delivery began; if
 * another writer took it meanwhile, the commit re-seals every chunk under a new
 * data key and stream header for the real UID (opening the speculative ciphertext
 * 64 KiB at a time in locked memory). Fresh key and nonces: nothing is ever sealed
 * twice under one nonce. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "vault-private.h"
#include "log.h"

#define DELIVERY_MEM_MAX (4u * 1024 * 1024)

struct chunk_loc {
	uint64_t off;		/* in mem, or in the spill file */
	uint32_t len;
	bool spilled;
};

struct vault_delivery {
	struct vault *v;
	uint32_t u;
	time_t now;
	uint32_t spec_uid;		/* UID the chunks were sealed for */
	struct body_writer bw;		/* holds the data key */
	uint8_t *mem;
	size_t mem_len, mem_cap;
	int spill_fd;
	uint64_t spill_len;
	struct chunk_loc *chunks;
	size_t nchunks, chunks_cap;
	uint8_t *pending;		/* chunk being sealed (reserve/done) */
	uint8_t emailid[16];
	int err;			/* sticky */
	bool finished;
	struct vault_crlf crlf;		/* bare LF -> CRLF state across writes */
	uint64_t counted;		/* bytes counted against max_message_size */
	uint64_t trace;			/* trace bytes (not counted) */
	struct secret *dk_own;		/* the data key of an imported delivery */
};

static int spill_open(struct vault_delivery *d)
{
	int fd;

#ifdef O_TMPFILE
	fd = open(d->v->tmp_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0) {
		d->spill_fd = fd;
		return 0;
	}
#endif
	{
		char path[4300];
		int n = snprintf(path, sizeof(path), "%s/deliver.XXXXXX", d->v->tmp_dir);

		if (n < 0 || (size_t)n >= sizeof(path))
			return -ENAMETOOLONG;
		if ((fd = mkostemp(path, O_CLOEXEC)) < 0)
			return -errno;
		unlink(path);
	}
	d->spill_fd = fd;
	return 0;
}

static int d_reserve(void *arg, uint32_t idx, size_t ctlen, uint8_t **out)
{
	struct vault_delivery *d = arg;

	(void)idx;
	if ((d->pending = malloc(ctlen)) == NULL)
		return -ENOMEM;
	*out = d->pending;
	return 0;
}

static int pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
	while (n > 0) {
		ssize_t k = pwrite(fd, p, n, (off_t)off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		p += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

static int pread_all(int fd, uint8_t *p, size_t n, uint64_t off)
{
	while (n > 0) {
		ssize_t k = pread(fd, p, n, (off_t)off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -EIO;
		p += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

static int d_done(void *arg, uint32_t idx, uint8_t *out, size_t ctlen)
{
	struct vault_delivery *d = arg;
	struct chunk_loc *loc;
	int r = 0;

	(void)idx;
	if (d->nchunks == d->chunks_cap) {
		size_t nc = d->chunks_cap ? d->chunks_cap * 2 : 16;
		struct chunk_loc *n = realloc(d->chunks, nc * sizeof(*n));

		if (n == NULL) {
			r = -ENOMEM;
			goto out;
		}
		d->chunks = n;
		d->chunks_cap = nc;
	}
	loc = &d->chunks[d->nchunks];
	loc->len = (uint32_t)ctlen;
	if (d->spill_fd < 0 && d->mem_len + ctlen <= DELIVERY_MEM_MAX) {
		if (d->mem_len + ctlen > d->mem_cap) {
			/* Small first (a typical message stays below malloc's mmap threshold). */
			size_t nc = d->mem_cap ? d->mem_cap : 32 * 1024;
			uint8_t *n;

			while (nc < d->mem_len + ctlen)
				nc *= 2;
			if ((n = realloc(d->mem, nc)) == NULL) {
				r = -ENOMEM;
				goto out;
			}
			d->mem = n;
			d->mem_cap = nc;
		}
		memcpy(d->mem + d->mem_len, out, ctlen);
		loc->off = d->mem_len;
		loc->spilled = false;
		d->mem_len += ctlen;
	} else {
		if (d->spill_fd < 0) {
			/* From here on every chunk lives in the file, the ones held in
			 * memory so far first: the file then holds chunk i at
			 * i * (CHUNK + TAG), which is what an exported delivery is. */
			if ((r = spill_open(d)) < 0 ||
			    (r = pwrite_all(d->spill_fd, d->mem, d->mem_len, 0)) < 0)
				goto out;
			for (size_t i = 0; i < d->nchunks; i++)
				d->chunks[i].spilled = true;
			d->spill_len = d->mem_len;
			free(d->mem);
			d->mem = NULL;
			d->mem_len = d->mem_cap = 0;
		}
		if ((r = pwrite_all(d->spill_fd, out, ctlen, d->spill_len)) < 0)
			goto out;
		loc->off = d->spill_len;
		loc->spilled = true;
		d->spill_len += ctlen;
	}
	d->nchunks++;
out:
	free(d->pending);
	d->pending = NULL;
	return r;
}

static const struct bw_ops delivery_ops = { d_reserve, d_done };

void vault_delivery_abort(struct vault_delivery **dp)
{
	struct vault_delivery *d = *dp;

	if (d == NULL)
		return;
	bw_free(&d->bw);
	secret_free(&d->dk_own);
	free(d->mem);
	free(d->chunks);
	free(d->pending);
	if (d->spill_fd >= 0)
		close(d->spill_fd);
	free(d);
	*dp = NULL;
}

int vault_delivery_begin(struct vault *v, const char *user, time_t now,
    struct vault_delivery **out)
{
	struct vault_delivery *d = NULL;
	struct vault_txn *t = NULL;
	struct mbox_rec mr;
	int r;

	*out = NULL;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return -ENOMEM;
	d->v = v;
	d->now = now;
	d->spill_fd = -1;
	if ((r = vault_txn_begin(v, false, &t)) < 0)
		goto out;
	if ((r = user_lookup(t, user, &d->u)) < 0 ||
	    (r = mbox_rec_get(t, d->u, VAULT_INBOX_ID, &mr)) < 0)
		goto out;
	vault_txn_abort(&t);
	d->spec_uid = mr.uidnext;
	crypto_random(d->emailid, sizeof(d->emailid));
	if ((r = bw_init(&d->bw, v, NULL, d->u, VAULT_INBOX_ID, d->spec_uid, &delivery_ops, d)) < 0)
		goto out;
	*out = d;
	d = NULL;
out:
	vault_txn_abort(&t);
	vault_delivery_abort(&d);
	return r;
}

/* Counts n bytes of the sender's message against max_message_size. The limit is on
 * what the client sent (RFC 1870 4: SIZE is the message as transmitted), so the
 * trace fields we add and the CR we add to a bare LF do not count. */
static int delivery_count(struct vault_delivery *d, size_t n)
{
	if (n > d->v->cfg.max_message_size || d->counted > d->v->cfg.max_message_size - n) {
		d->err = -E2BIG;
		return d->err;
	}
	d->counted += n;
	return 0;
}

static int delivery_put(struct vault_delivery *d, const uint8_t *p, size_t n)
{
	int r;

	if (n == 0)
		return 0;
	if ((r = bw_write(&d->bw, p, n)) < 0)
		d->err = r;
	return r;
}

int vault_delivery_write(struct vault_delivery *d, const uint8_t *p, size_t n)
{
	int r;

	if (d->err != 0)
		return d->err;
	if (d->finished)
		return -EINVAL;
	if ((r = delivery_count(d, n)) < 0)
		return r;
	return delivery_put(d, p, n);
}

int vault_delivery_write_trace(struct vault_delivery *d, const uint8_t *p, size_t n)
{
	if (d->err != 0)
		return d->err;
	if (d->finished || d->counted != 0)
		return -EINVAL;		/* trace fields come first */
	if (n > VAULT_TRACE_MAX || d->trace > VAULT_TRACE_MAX - n)
		return -E2BIG;
	d->trace += n;
	return delivery_put(d, p, n);
}

/* Mail is stored with CRLF line endings: RFC 5322 2.3 and RFC 9051 2.3.4 make CRLF
 * the only line ending on the IMAP wire, and RFC822.SIZE must equal the bytes BODY[]
 * returns. A sendmail-style LDA gets bare LF from its caller, so every bare LF
 * becomes CRLF here, once, for `deliver`, LMTP and import (Dovecot converts on output
 * instead; the bytes a client sees are the same). A CR not followed by LF is kept. */
int vault_crlf_write(struct vault_crlf *state, const uint8_t *p, size_t n,
    int (*put)(void *arg, const uint8_t *p, size_t n), void *arg)
{
	static const uint8_t crlf[2] = { '\r', '\n' };
	size_t start = 0;
	int r;

	for (size_t i = 0; i < n; i++) {
		if (p[i] != '\n')
			continue;
		if (i > 0 ? p[i - 1] == '\r' : state->prev_cr)
			continue;
		if ((i > start && (r = put(arg, p + start, i - start)) < 0) ||
		    (r = put(arg, crlf, sizeof(crlf))) < 0)
			return r;
		start = i + 1;
	}
	if (n > start && (r = put(arg, p + start, n - start)) < 0)
		return r;
	if (n > 0)
		state->prev_cr = p[n - 1] == '\r';
	return 0;
}

static int delivery_put_cb(void *arg, const uint8_t *p, size_t n)
{
	return delivery_put(arg, p, n);
}

int vault_delivery_write_mail(struct vault_delivery *d, const uint8_t *p, size_t n)
{
	int r;

	if (d->err != 0)
		return d->err;
	if (d->finished)
		return -EINVAL;
	if ((r = delivery_count(d, n)) < 0)	/* the sender's bytes, before LF -> CRLF */
		return r;
	return vault_crlf_write(&d->crlf, p, n, delivery_put_cb, d);
}

/* ---- commit --------------------------------------------------------------------- */
struct commit_ctx {
	struct vault_delivery *d;
	struct secret *buf;	/* ciphertext of one chunk (reseal path only) */
	uint32_t uid_out;
};

static int load_chunk(struct vault_delivery *d, size_t i, uint8_t *out)
{
	const struct chunk_loc *loc = &d->chunks[i];

	if (!loc->spilled) {
		memcpy(out, d->mem + loc->off, loc->len);
		return 0;
	}
	return pread_all(d->spill_fd, out, loc->len, loc->off);
}

static int commit_txn(struct vault_txn *t, void *arg)
{
	struct commit_ctx *c = arg;
	struct vault_delivery *d = c->d;
	struct user_rec ur;
	struct epoch_rec er;
	struct vault_msg_meta meta;
	struct body_writer rw;
	struct secret *ndk = NULL, *pt = NULL;
	const struct secret *dk = d->bw.dk;
	const uint8_t *hdr_bytes = d->bw.hdr_bytes;
	struct vault_ad oad;
	struct tm tm;
	uint64_t modseq;
	uint32_t n;
	int r;

	memset(&rw, 0, sizeof(rw));
	if ((r = user_rec_get(t, d->u, &ur)) < 0 ||
	    (r = epoch_rec_get(t, d->u, ur.current_epoch, &er)) < 0 ||
	    (r = mbox_alloc_uid(t, d->u, VAULT_INBOX_ID, &n, &modseq)) < 0)
		return r;
	if (n != d->spec_uid) {
		/* Someone took the UID: re-seal for the real one (fresh key and nonces). */
		if ((r = secret_new_random(CRYPTO_KEY_BYTES, &ndk)) < 0 ||
		    (r = vault_buf_get(t->v, &pt)) < 0 || (r = vault_buf_get(t->v, &c->buf)) < 0)
			goto out;
		body_ad(&oad, d->u, VAULT_INBOX_ID, d->spec_uid);
		dk = ndk;
		for (size_t i = 0; i < d->nchunks; i++) {
			uint8_t key[16], *out;
			size_t ptlen = d->chunks[i].len - CRYPTO_TAG_BYTES;
			bool final = i + 1 == d->nchunks;
			struct vault_ad nad;

			if (i == 0 && (r = bw_init(&rw, t->v, ndk, d->u, VAULT_INBOX_ID, n, NULL, NULL)) < 0)
				goto out;
			if ((r = load_chunk(d, i, c->buf->p)) < 0)
				goto out;
			if ((r = crypto_chunk_open(&d->bw.hdr, d->bw.dk, oad.b, oad.n, i, final,
			    c->buf->p, d->chunks[i].len, pt->p)) < 0) {
				r = vault_open_err(r);
				goto out;
			}
			body_ad(&nad, d->u, VAULT_INBOX_ID, n);
			key_chunk(key, d->u, VAULT_INBOX_ID, n, (uint32_t)i);
			if ((r = store_reserve(t, VDB_CHUNK, key, 16, d->chunks[i].len, &out)) < 0)
				goto out;
			if ((r = crypto_chunk_seal(&rw.hdr, ndk, nad.b, nad.n, i, final, pt->p,
			    ptlen, out)) < 0)
				goto out;
			store_reserve_done(VDB_CHUNK, key, 16, out, d->chunks[i].len);
		}
		hdr_bytes = rw.hdr_bytes;
	} else {
		for (size_t i = 0; i < d->nchunks; i++) {
			uint8_t key[16], *out;

			key_chunk(key, d->u, VAULT_INBOX_ID, n, (uint32_t)i);
			if ((r = store_reserve(t, VDB_CHUNK, key, 16, d->chunks[i].len, &out)) < 0 ||
			    (r = load_chunk(d, i, out)) < 0)
				goto out;
			store_reserve_done(VDB_CHUNK, key, 16, out, d->chunks[i].len);
		}
	}
	memset(&meta, 0, sizeof(meta));
	meta.internal_date = (int64_t)d->now;
	if (localtime_r(&d->now, &tm) != NULL)
		meta.internal_tz = (int32_t)(tm.tm_gmtoff / 60);
	meta.save_date = (int64_t)d->now;
	meta.size = d->bw.total;
	memcpy(meta.emailid, d->emailid, sizeof(meta.emailid));
	if ((r = msg_finish_new(t, d->u, VAULT_INBOX_ID, n, modseq, dk, &meta, hdr_bytes,
	    (uint32_t)d->nchunks, d->bw.padded, er.epoch, er.pk, NULL, (int64_t)d->now)) < 0)
		goto out;
	if ((r = user_bump_change(t, d->u)) < 0)
		goto out;
	c->uid_out = n;
out:
	if (rw.v != NULL)
		bw_free(&rw);
	secret_free(&ndk);
	vault_buf_put(t->v, &pt, SIZE_MAX);
	vault_buf_put(t->v, &c->buf, SIZE_MAX);
	return r;
}

/* Seals the final chunk (once). */
static int delivery_finish(struct vault_delivery *d)
{
	int r;

	if (d->err != 0)
		return d->err;
	if (!d->finished) {
		if ((r = bw_finish(&d->bw)) < 0) {
			d->err = r;
			return r;
		}
		d->finished = true;
	}
	return 0;
}

struct group_ctx {
	struct vault_delivery **ds;
	size_t n;
	uint32_t *uids;
};

static int group_txn(struct vault_txn *t, void *arg)
{
	struct group_ctx *g = arg;
	int r;

	for (size_t i = 0; i < g->n; i++) {
		struct commit_ctx c;

		if (g->ds[i] == NULL)
			continue;
		memset(&c, 0, sizeof(c));
		c.d = g->ds[i];
		if ((r = commit_txn(t, &c)) < 0)
			return r;
		g->uids[i] = c.uid_out;
	}
	return 0;
}

int vault_delivery_commit_group(struct vault_delivery **ds, size_t n, uint32_t *uids,
    int *errs)
{
	struct vault *v = NULL;
	struct group_ctx g = { ds, n, uids };
	size_t live = 0;
	int r;

	for (size_t i = 0; i < n; i++) {
		uids[i] = 0;
		errs[i] = 0;
		if (ds[i] == NULL) {
			errs[i] = -EINVAL;
			continue;
		}
		if (v == NULL)
			v = ds[i]->v;
		if (ds[i]->v != v)
			errs[i] = -EINVAL;	/* one vault, one transaction */
		else
			errs[i] = delivery_finish(ds[i]);
		if (errs[i] < 0)
			vault_delivery_abort(&ds[i]);
		else
			live++;
	}
	if (live == 0)
		return 0;
	/* One write txn, one durable commit for all of them: concurrent deliveries
	 * share the fsyncs (group commit). Nothing of the group is stored unless all of
	 * it is. */
	if ((r = vault_write(v, group_txn, &g)) < 0 && live > 1) {
		/* One of them failed (its user was removed, the map is at its maximum, ...):
		 * each alone, so that the error reaches only the recipient it belongs to. */
		for (size_t i = 0; i < n; i++) {
			struct commit_ctx c;

			if (ds[i] == NULL)
				continue;
			memset(&c, 0, sizeof(c));
			c.d = ds[i];
			if ((errs[i] = vault_write(v, commit_txn, &c)) == 0)
				uids[i] = c.uid_out;
			vault_delivery_abort(&ds[i]);
		}
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (ds[i] == NULL)
			continue;
		errs[i] = r;
		if (r < 0)
			uids[i] = 0;
		vault_delivery_abort(&ds[i]);
	}
	return 0;
}

int vault_delivery_commit(struct vault_delivery **dp, uint32_t *uid_out)
{
	uint32_t uid = 0;
	int err = -EINVAL;

	if (*dp == NULL)
		return -EINVAL;
	(void)vault_delivery_commit_group(dp, 1, &uid, &err);
	if (err == 0 && uid_out != NULL)
		*uid_out = uid;
	return err;
}

/* ---- handing a finished delivery to another process ------------------------------ */

static void put_be(uint8_t *p, uint64_t x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(x >> (8 * (n - 1 - i)));
}

static uint64_t get_be(const uint8_t *p, size_t n)
{
	uint64_t x = 0;

	for (size_t i = 0; i < n; i++)
		x = x << 8 | p[i];
	return x;
}

/* Wire layout (big-endian): u32 user, i64 now, u32 spec_uid, u64 total, u64 padded,
 * u32 nchunks, emailid[16], stream header, data key. */
#define W_USER 0
#define W_NOW 4
#define W_SPEC 12
#define W_TOTAL 16
#define W_PADDED 24
#define W_NCHUNKS 32
#define W_EMAILID 36
#define W_HDR 52
#define W_DK (W_HDR + CRYPTO_STREAM_HDR_BYTES)
_Static_assert(W_DK + CRYPTO_KEY_BYTES == VAULT_DELIVERY_WIRE_BYTES, "wire layout");

int vault_delivery_export(struct vault_delivery **dp, uint8_t *wire, size_t wirelen,
    int *fd_out)
{
	struct vault_delivery *d = *dp;
	int fd = -1, r;

	*fd_out = -1;
	if (d == NULL || wirelen != VAULT_DELIVERY_WIRE_BYTES) {
		r = -EINVAL;
		goto out;
	}
	if ((r = delivery_finish(d)) < 0)
		goto out;
	if (d->spill_fd >= 0) {
		fd = d->spill_fd;	/* every chunk is in it, in order (d_done) */
		d->spill_fd = -1;
	} else {
		/* Ciphertext only, in anonymous memory: nothing of it reaches a disk. */
		if ((fd = memfd_create("sealmail-delivery", MFD_CLOEXEC)) < 0) {
			if ((r = spill_open(d)) < 0)
				goto out;
			fd = d->spill_fd;
			d->spill_fd = -1;
		}
		if ((r = pwrite_all(fd, d->mem, d->mem_len, 0)) < 0)
			goto out;
	}
	put_be(wire + W_USER, d->u, 4);
	put_be(wire + W_NOW, (uint64_t)(int64_t)d->now, 8);
	put_be(wire + W_SPEC, d->spec_uid, 4);
	put_be(wire + W_TOTAL, d->bw.total, 8);
	put_be(wire + W_PADDED, d->bw.padded, 8);
	put_be(wire + W_NCHUNKS, (uint32_t)d->nchunks, 4);
	memcpy(wire + W_EMAILID, d->emailid, 16);
	memcpy(wire + W_HDR, d->bw.hdr_bytes, CRYPTO_STREAM_HDR_BYTES);
	memcpy(wire + W_DK, d->bw.dk->p, CRYPTO_KEY_BYTES);
	*fd_out = fd;
	fd = -1;
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	vault_delivery_abort(dp);
	return r;
}

int vault_delivery_import(struct vault *v, const uint8_t *wire, size_t wirelen, int fd,
    struct vault_delivery **out)
{
	struct vault_delivery *d = NULL;
	struct sbuf *hb = NULL;
	struct stat st;
	uint64_t total, padded, nchunks, ctlen, limit;
	int r = -EPROTO;

	*out = NULL;
	if (wirelen != VAULT_DELIVERY_WIRE_BYTES || fd < 0)
		goto out;
	total = get_be(wire + W_TOTAL, 8);
	padded = get_be(wire + W_PADDED, 8);
	nchunks = get_be(wire + W_NCHUNKS, 4);
	/* write_mail may turn each bare LF into CRLF: at most twice the sender's bytes */
	limit = 2 * v->cfg.max_message_size + VAULT_TRACE_MAX;
	if (total > limit || padded < total || padded - total >= CRYPTO_CHUNK_BYTES ||
	    padded == 0 || nchunks != (padded + CRYPTO_CHUNK_BYTES - 1) / CRYPTO_CHUNK_BYTES)
		goto out;
	ctlen = padded + nchunks * CRYPTO_TAG_BYTES;
	if (fstat(fd, &st) < 0 || st.st_size < 0 || (uint64_t)st.st_size < ctlen)
		goto out;
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	d->v = v;
	d->spill_fd = fd;
	fd = -1;
	d->spill_len = ctlen;
	d->u = (uint32_t)get_be(wire + W_USER, 4);
	d->now = (time_t)(int64_t)get_be(wire + W_NOW, 8);
	d->spec_uid = (uint32_t)get_be(wire + W_SPEC, 4);
	memcpy(d->emailid, wire + W_EMAILID, 16);
	if ((d->chunks = calloc((size_t)nchunks, sizeof(*d->chunks))) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nchunks; i++) {
		d->chunks[i].off = (uint64_t)i * (CRYPTO_CHUNK_BYTES + CRYPTO_TAG_BYTES);
		d->chunks[i].len = (uint32_t)(i + 1 < nchunks ? CRYPTO_CHUNK_BYTES :
		    padded - (uint64_t)i * CRYPTO_CHUNK_BYTES) + CRYPTO_TAG_BYTES;
		d->chunks[i].spilled = true;
	}
	d->nchunks = d->chunks_cap = (size_t)nchunks;
	if ((r = secret_new(CRYPTO_KEY_BYTES, &d->dk_own)) < 0)
		goto out;
	memcpy(d->dk_own->p, wire + W_DK, CRYPTO_KEY_BYTES);
	d->bw.v = v;
	d->bw.dk = d->dk_own;
	d->bw.total = total;
	d->bw.padded = padded;
	memcpy(d->bw.hdr_bytes, wire + W_HDR, CRYPTO_STREAM_HDR_BYTES);
	if ((r = sbuf_new(CRYPTO_STREAM_HDR_BYTES, &hb)) < 0 ||
	    (r = sbuf_put(hb, d->bw.hdr_bytes, CRYPTO_STREAM_HDR_BYTES)) < 0)
		goto out;
	if (crypto_stream_hdr_get(hb, &d->bw.hdr) < 0) {
		r = -EPROTO;
		goto out;
	}
	d->finished = true;
	*out = d;
	d = NULL;
	r = 0;
out:
	sbuf_free(&hb);
	if (fd >= 0)
		close(fd);
	vault_delivery_abort(&d);
	return r;
}

int vault_deliver(struct vault *v, const char *user, const uint8_t *msg, size_t len,
    time_t now, uint32_t *uid_out)
{
	struct vault_delivery *d = NULL;
	int r;

	if ((r = vault_delivery_begin(v, user, now, &d)) < 0)
		return r;
	if ((r = vault_delivery_write(d, msg, len)) < 0) {
		vault_delivery_abort(&d);
		return r;
	}
	return vault_delivery_commit(&d, uid_out);
}
