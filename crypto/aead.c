/* AEAD: raw AES-256-GCM (OpenSSL EVP) and XChaCha20-Poly1305 (libsodium), sealed
 * records, and chunked streams. Layouts and AD rules are in crypto.h. */
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include "sodium-min.h"
#include "crypto.h"
#include "crypto-private.h"
#include "compat.h"

#define REC_FIXED_HDR 6		/* version, alg, key_id */
#define REC_MAX_HDR (REC_FIXED_HDR + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
#define CHUNK_AD_SUFFIX (8 + 1 + CRYPTO_STREAM_HDR_BYTES)	/* BE64(i), final, header */
#define EVP_STEP (1 << 30)	/* EVP lengths are int: feed at most this much at once */

_Static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == CRYPTO_KEY_BYTES, "key size");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_ABYTES == CRYPTO_TAG_BYTES, "tag size");
_Static_assert(CRYPTO_REC_MAX_BYTES < INT_MAX, "record fits an int");

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* ---- AES-256-GCM through EVP ------------------------------------------------- */

static int gcm_aad(EVP_CIPHER_CTX *ctx, const uint8_t *ad, size_t adlen, int enc)
{
	int outl;

	while (adlen > 0) {
		int n = adlen > EVP_STEP ? EVP_STEP : (int)adlen;
		int ok = enc ? EVP_EncryptUpdate(ctx, NULL, &outl, ad, n)
			     : EVP_DecryptUpdate(ctx, NULL, &outl, ad, n);

		if (ok != 1)
			return -EIO;
		ad += n;
		adlen -= (size_t)n;
	}
	return 0;
}

/* A fresh context per call: measured at under 1 us extra per 20 KiB message
 * (tests/bench_crypto.c), and the key schedule is cleansed when it is freed
 * instead of lingering in a cached context. */
static int gcm_seal(const uint8_t *key, const uint8_t *nonce, const uint8_t *ad1,
    size_t ad1len, const uint8_t *ad2, size_t ad2len, const uint8_t *pt, size_t len,
    uint8_t *ct, uint8_t *tag)
{
	EVP_CIPHER *cipher = crypto_aes256gcm_cipher();
	EVP_CIPHER_CTX *ctx = NULL;
	uint8_t fin[16];
	size_t done = 0;
	int outl, r = -EIO;

	if (cipher == NULL)
		return -EIO;
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	if (EVP_EncryptInit_ex2(ctx, cipher, key, nonce, NULL) != 1 ||
	    gcm_aad(ctx, ad1, ad1len, 1) < 0 || gcm_aad(ctx, ad2, ad2len, 1) < 0)
		goto out;
	while (done < len) {
		int n = len - done > EVP_STEP ? EVP_STEP : (int)(len - done);

		if (EVP_EncryptUpdate(ctx, ct + done, &outl, pt + done, n) != 1 || outl != n)
			goto out;
		done += (size_t)n;
	}
	if (EVP_EncryptFinal_ex(ctx, fin, &outl) != 1 || outl != 0 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, CRYPTO_TAG_BYTES, tag) != 1)
		goto out;
	r = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	if (r < 0)
		ERR_clear_error();
	return r;
}

static int gcm_open(const uint8_t *key, const uint8_t *nonce, const uint8_t *ad1,
    size_t ad1len, const uint8_t *ad2, size_t ad2len, const uint8_t *ct, size_t len,
    const uint8_t *tag, uint8_t *pt)
{
	EVP_CIPHER *cipher = crypto_aes256gcm_cipher();
	EVP_CIPHER_CTX *ctx = NULL;
	uint8_t tagcopy[CRYPTO_TAG_BYTES], fin[16];
	size_t done = 0;
	int outl, r = -EIO;

	if (cipher == NULL)
		return -EIO;
	memcpy(tagcopy, tag, sizeof(tagcopy));	/* the ctrl takes a non-const pointer */
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	if (EVP_DecryptInit_ex2(ctx, cipher, key, nonce, NULL) != 1 ||
	    gcm_aad(ctx, ad1, ad1len, 0) < 0 || gcm_aad(ctx, ad2, ad2len, 0) < 0)
		goto out;
	/* GCM decrypts before it can verify: pt holds unauthenticated plaintext
	 * until Final succeeds, and is wiped below if it does not. */
	while (done < len) {
		int n = len - done > EVP_STEP ? EVP_STEP : (int)(len - done);

		if (EVP_DecryptUpdate(ctx, pt + done, &outl, ct + done, n) != 1 || outl != n)
			goto out;
		done += (size_t)n;
	}
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, CRYPTO_TAG_BYTES, tagcopy) != 1)
		goto out;
	if (EVP_DecryptFinal_ex(ctx, fin, &outl) <= 0) {
		r = -EBADMSG;
		goto out;
	}
	r = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	if (r < 0) {
		ERR_clear_error();
		if (len > 0)
			sodium_memzero(pt, len);
	}
	return r;
}

/* ---- XChaCha20-Poly1305 through libsodium ---------------------------------------
 * libsodium takes one AD buffer: join the two parts (small: header + caller AD). */

struct adjoin {
	uint8_t stack[256];
	uint8_t *p;
	size_t len;
};

static int adjoin_init(struct adjoin *a, const uint8_t *ad1, size_t ad1len,
    const uint8_t *ad2, size_t ad2len)
{
	a->len = ad1len + ad2len;	/* both bounded by CRYPTO_AD_MAX_BYTES-ish */
	if (a->len <= sizeof(a->stack))
		a->p = a->stack;
	else if ((a->p = malloc(a->len)) == NULL)
		return -ENOMEM;
	if (ad1len > 0)
		memcpy(a->p, ad1, ad1len);
	if (ad2len > 0)
		memcpy(a->p + ad1len, ad2, ad2len);
	return 0;
}

static void adjoin_free(struct adjoin *a)
{
	if (a->p != NULL && a->p != a->stack)
		free(a->p);
	a->p = NULL;
}

static int xchacha_seal(const uint8_t *key, const uint8_t *nonce, const uint8_t *ad1,
    size_t ad1len, const uint8_t *ad2, size_t ad2len, const uint8_t *pt, size_t len,
    uint8_t *ct, uint8_t *tag)
{
	struct adjoin a;
	int r;

	if ((r = adjoin_init(&a, ad1, ad1len, ad2, ad2len)) < 0)
		return r;
	if (crypto_aead_xchacha20poly1305_ietf_encrypt_detached(ct, tag, NULL, pt, len,
	    a.p, a.len, NULL, nonce, key) != 0)
		r = -EIO;
	adjoin_free(&a);
	return r;
}

static int xchacha_open(const uint8_t *key, const uint8_t *nonce, const uint8_t *ad1,
    size_t ad1len, const uint8_t *ad2, size_t ad2len, const uint8_t *ct, size_t len,
    const uint8_t *tag, uint8_t *pt)
{
	struct adjoin a;
	int r;

	if ((r = adjoin_init(&a, ad1, ad1len, ad2, ad2len)) < 0)
		return r;
	/* libsodium verifies the tag before it writes any plaintext. */
	if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(pt, NULL, ct, len, tag,
	    a.p, a.len, nonce, key) != 0) {
		r = -EBADMSG;
		if (len > 0)
			sodium_memzero(pt, len);
	}
	adjoin_free(&a);
	return r;
}

int crypto_aead_seal_raw(enum crypto_alg alg, const uint8_t key[CRYPTO_KEY_BYTES],
    const uint8_t *nonce, const uint8_t *ad1, size_t ad1len, const uint8_t *ad2,
    size_t ad2len, const uint8_t *pt, size_t len, uint8_t *ct, uint8_t tag[CRYPTO_TAG_BYTES])
{
	int r;

	if ((r = crypto_ensure_init()) < 0)
		return r;
	switch (alg) {
	case CRYPTO_ALG_AES256GCM:
		return gcm_seal(key, nonce, ad1, ad1len, ad2, ad2len, pt, len, ct, tag);
	case CRYPTO_ALG_XCHACHA20P1305:
		return xchacha_seal(key, nonce, ad1, ad1len, ad2, ad2len, pt, len, ct, tag);
	}
	return -EINVAL;
}

int crypto_aead_open_raw(enum crypto_alg alg, const uint8_t key[CRYPTO_KEY_BYTES],
    const uint8_t *nonce, const uint8_t *ad1, size_t ad1len, const uint8_t *ad2,
    size_t ad2len, const uint8_t *ct, size_t len, const uint8_t tag[CRYPTO_TAG_BYTES],
    uint8_t *pt_out)
{
	int r;

	if ((r = crypto_ensure_init()) < 0)
		return r;
	switch (alg) {
	case CRYPTO_ALG_AES256GCM:
		return gcm_open(key, nonce, ad1, ad1len, ad2, ad2len, ct, len, tag, pt_out);
	case CRYPTO_ALG_XCHACHA20P1305:
		return xchacha_open(key, nonce, ad1, ad1len, ad2, ad2len, ct, len, tag, pt_out);
	}
	return -EINVAL;
}

int crypto_kat_chacha20poly1305_ietf(const uint8_t key[32], const uint8_t nonce[12],
    const uint8_t *ad, size_t adlen, const uint8_t *pt, size_t len, uint8_t *ct_tag_out)
{
	int r;

	if ((r = crypto_ensure_init()) < 0)
		return r;
	if (crypto_aead_chacha20poly1305_ietf_encrypt(ct_tag_out, NULL, pt, len, ad, adlen,
	    NULL, nonce, key) != 0)
		return -EIO;
	return 0;
}

static int key_ok(const struct secret *key)
{
	return key != NULL && key->p != NULL && key->len == CRYPTO_KEY_BYTES;
}

/* ---- Sealed records ------------------------------------------------------------ */

size_t crypto_rec_overhead(enum crypto_alg alg)
{
	size_t n = crypto_alg_nonce_bytes(alg);

	return n == 0 ? 0 : REC_FIXED_HDR + n + CRYPTO_TAG_BYTES;
}

int crypto_rec_header(const uint8_t *rec, size_t reclen, enum crypto_alg *alg_out,
    uint32_t *key_id_out)
{
	size_t over;

	if (rec == NULL || reclen < REC_FIXED_HDR || rec[0] != CRYPTO_FORMAT_VERSION)
		return -EPROTO;
	if ((over = crypto_rec_overhead((enum crypto_alg)rec[1])) == 0 || reclen < over)
		return -EPROTO;
	if (reclen - over > CRYPTO_REC_MAX_BYTES)
		return -EPROTO;		/* no record this large was ever sealed */
	if (alg_out != NULL)
		*alg_out = (enum crypto_alg)rec[1];
	if (key_id_out != NULL)
		*key_id_out = get_be32(rec + 2);
	return 0;
}

int crypto_rec_seal(enum crypto_alg alg, const struct secret *key, uint32_t key_id,
    const uint8_t *ad, size_t adlen, const uint8_t *pt, size_t ptlen, struct sbuf *out)
{
	size_t nlen = crypto_alg_nonce_bytes(alg), hlen, total, oldlen;
	uint8_t *p;
	int r;

	if (nlen == 0 || !key_ok(key) || out == NULL || (pt == NULL && ptlen > 0) ||
	    (ad == NULL && adlen > 0))
		return -EINVAL;
	if (ptlen > CRYPTO_REC_MAX_BYTES || adlen > CRYPTO_AD_MAX_BYTES)
		return -E2BIG;
	if ((r = crypto_ensure_init()) < 0)
		return r;
	hlen = REC_FIXED_HDR + nlen;
	total = hlen + ptlen + CRYPTO_TAG_BYTES;
	oldlen = out->len;
	if ((r = sbuf_reserve(out, total, &p)) < 0)
		return r;
	p[0] = CRYPTO_FORMAT_VERSION;
	p[1] = (uint8_t)alg;
	put_be32(p + 2, key_id);
	/* Random nonce: 96 bits for GCM keeps collisions negligible below 2^32
	 * records per key (NIST SP 800-38D 8.3); record keys seal far fewer. */
	randombytes_buf(p + REC_FIXED_HDR, nlen);
	r = crypto_aead_seal_raw(alg, key->p, p + REC_FIXED_HDR, p, hlen, ad, adlen, pt,
	    ptlen, p + hlen, p + hlen + ptlen);
	if (r < 0) {
		sodium_memzero(p, total);
		out->len = oldlen;
	}
	return r;
}

int crypto_rec_open(const struct secret *key, const uint8_t *ad, size_t adlen,
    const uint8_t *rec, size_t reclen, struct sbuf *pt_out)
{
	enum crypto_alg alg;
	size_t hlen, ptlen, oldlen;
	uint8_t *p;
	int r;

	if (!key_ok(key) || pt_out == NULL || (ad == NULL && adlen > 0))
		return -EINVAL;
	if (adlen > CRYPTO_AD_MAX_BYTES)
		return -E2BIG;
	if ((r = crypto_rec_header(rec, reclen, &alg, NULL)) < 0)
		return r;
	hlen = REC_FIXED_HDR + crypto_alg_nonce_bytes(alg);
	ptlen = reclen - hlen - CRYPTO_TAG_BYTES;
	oldlen = pt_out->len;
	if ((r = sbuf_reserve(pt_out, ptlen, &p)) < 0)
		return r;
	r = crypto_aead_open_raw(alg, key->p, rec + REC_FIXED_HDR, rec, hlen, ad, adlen,
	    rec + hlen, ptlen, rec + hlen + ptlen, p);
	if (r < 0)
		pt_out->len = oldlen;	/* open_raw wiped the reserved bytes */
	return r;
}

/* ---- Chunked streams ------------------------------------------------------------ */

static int hdr_valid(const struct crypto_stream_hdr *h)
{
	return h != NULL && h->version == CRYPTO_FORMAT_VERSION &&
	    crypto_alg_nonce_bytes((enum crypto_alg)h->alg) != 0;
}

static void hdr_serialize(const struct crypto_stream_hdr *h, uint8_t out[CRYPTO_STREAM_HDR_BYTES])
{
	out[0] = h->version;
	out[1] = h->alg;
	put_be32(out + 2, h->key_id);
	memcpy(out + 6, h->prefix, sizeof(h->prefix));
}

int crypto_stream_hdr_init(enum crypto_alg alg, uint32_t key_id, struct crypto_stream_hdr *h)
{
	int r;

	if (h == NULL || crypto_alg_nonce_bytes(alg) == 0)
		return -EINVAL;
	if ((r = crypto_ensure_init()) < 0)
		return r;
	memset(h, 0, sizeof(*h));
	h->version = CRYPTO_FORMAT_VERSION;
	h->alg = (uint8_t)alg;
	h->key_id = key_id;
	randombytes_buf(h->prefix, sizeof(h->prefix));
	return 0;
}

int crypto_stream_hdr_put(const struct crypto_stream_hdr *h, struct sbuf *out)
{
	uint8_t buf[CRYPTO_STREAM_HDR_BYTES];

	if (!hdr_valid(h) || out == NULL)
		return -EINVAL;
	hdr_serialize(h, buf);
	return sbuf_put(out, buf, sizeof(buf));
}

int crypto_stream_hdr_get(struct sbuf *in, struct crypto_stream_hdr *h)
{
	const uint8_t *p;
	struct crypto_stream_hdr t;

	if (in == NULL || h == NULL)
		return -EINVAL;
	if (sbuf_avail(in) < CRYPTO_STREAM_HDR_BYTES)
		return -EPROTO;
	p = sbuf_cur(in);
	memset(&t, 0, sizeof(t));
	t.version = p[0];
	t.alg = p[1];
	t.key_id = get_be32(p + 2);
	memcpy(t.prefix, p + 6, sizeof(t.prefix));
	if (!hdr_valid(&t))
		return -EPROTO;		/* nothing consumed */
	in->off += CRYPTO_STREAM_HDR_BYTES;
	*h = t;
	return 0;
}

/* Nonce: the header's prefix (4 bytes for GCM, 16 for XChaCha) || BE64(idx).
 * AD suffix: BE64(idx) || final || serialized header (after the caller's AD). */
static void chunk_params(const struct crypto_stream_hdr *h, uint64_t idx, bool final,
    uint8_t nonce[24], uint8_t suffix[CHUNK_AD_SUFFIX])
{
	size_t plen = crypto_alg_nonce_bytes((enum crypto_alg)h->alg) - 8;

	memcpy(nonce, h->prefix, plen);
	put_be64(nonce + plen, idx);
	put_be64(suffix, idx);
	suffix[8] = final ? 1 : 0;
	hdr_serialize(h, suffix + 9);
}

int crypto_chunk_seal(const struct crypto_stream_hdr *h, const struct secret *key,
    const uint8_t *ad, size_t adlen, uint64_t idx, bool final,
    const uint8_t *pt, size_t len, uint8_t *out)
{
	uint8_t nonce[24], suffix[CHUNK_AD_SUFFIX];

	if (!hdr_valid(h) || !key_ok(key) || out == NULL || (pt == NULL && len > 0) ||
	    (ad == NULL && adlen > 0))
		return -EINVAL;
	if (len > CRYPTO_CHUNK_BYTES || adlen > CRYPTO_AD_MAX_BYTES)
		return -E2BIG;
	/* Only the final chunk may be short: every chunk boundary is then implied by
	 * the stream, and a reader can insist on it. */
	if (!final && len != CRYPTO_CHUNK_BYTES)
		return -EINVAL;
	chunk_params(h, idx, final, nonce, suffix);
	return crypto_aead_seal_raw((enum crypto_alg)h->alg, key->p, nonce, ad, adlen,
	    suffix, sizeof(suffix), pt, len, out, out + len);
}

int crypto_chunk_open(const struct crypto_stream_hdr *h, const struct secret *key,
    const uint8_t *ad, size_t adlen, uint64_t idx, bool final,
    const uint8_t *ct, size_t ctlen, uint8_t *pt_out)
{
	uint8_t nonce[24], suffix[CHUNK_AD_SUFFIX];
	size_t len;

	if (!key_ok(key) || (ct == NULL && ctlen > 0) || (ad == NULL && adlen > 0) ||
	    h == NULL)
		return -EINVAL;
	if (adlen > CRYPTO_AD_MAX_BYTES)
		return -E2BIG;
	if (!hdr_valid(h) || ctlen < CRYPTO_TAG_BYTES)
		return -EPROTO;
	len = ctlen - CRYPTO_TAG_BYTES;
	if (len > CRYPTO_CHUNK_BYTES || (!final && len != CRYPTO_CHUNK_BYTES))
		return -EPROTO;
	if (pt_out == NULL && len > 0)
		return -EINVAL;
	chunk_params(h, idx, final, nonce, suffix);
	return crypto_aead_open_raw((enum crypto_alg)h->alg, key->p, nonce, ad, adlen,
	    suffix, sizeof(suffix), ct, len, ct + len, pt_out);
}
