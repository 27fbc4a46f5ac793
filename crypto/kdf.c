/* BLAKE2b key derivation, unkeyed hashing, randomness, constant-time helpers. */
#include <errno.h>
#include <stdalign.h>
#include "sodium-min.h"
#include "crypto.h"
#include "crypto-private.h"
#include "compat.h"

#define KDF_PREFIX "sealmail/v1/"
#define KDF_LABEL_MAX 64

_Static_assert(sizeof(crypto_generichash_state) <= sizeof(struct crypto_hash_state),
    "crypto_hash_state too small for libsodium's BLAKE2b state");
_Static_assert(alignof(crypto_generichash_state) <= alignof(struct crypto_hash_state),
    "crypto_hash_state under-aligned");
_Static_assert(CRYPTO_HASH_BYTES >= crypto_generichash_BYTES_MIN, "hash size");

int crypto_kdf(const struct secret *ikm, const char *label, const uint8_t *ctx,
    size_t ctxlen, size_t outlen, struct secret **out)
{
	crypto_generichash_state st;
	struct secret *k = NULL;
	static const uint8_t zero = 0;
	size_t llen;
	int r;

	*out = NULL;
	if (ikm == NULL || ikm->p == NULL || label == NULL || (ctx == NULL && ctxlen > 0))
		return -EINVAL;
	/* BLAKE2b keys are 16..64 bytes; outputs 16..64 bytes. */
	if (ikm->len < crypto_generichash_KEYBYTES_MIN || ikm->len > crypto_generichash_KEYBYTES_MAX ||
	    outlen < crypto_generichash_BYTES_MIN || outlen > crypto_generichash_BYTES_MAX)
		return -EINVAL;
	/* The label ends at the 0x00 separator, so it must not contain one and must
	 * be non-empty: otherwise ("a", "\0b") and ("a\0", "b") could collide. */
	llen = strnlen(label, KDF_LABEL_MAX + 1);
	if (llen == 0 || llen > KDF_LABEL_MAX)
		return -EINVAL;
	if ((r = secret_new(outlen, &k)) < 0)
		return r;
	if (crypto_generichash_init(&st, ikm->p, ikm->len, outlen) != 0 ||
	    crypto_generichash_update(&st, (const uint8_t *)KDF_PREFIX, sizeof(KDF_PREFIX) - 1) != 0 ||
	    crypto_generichash_update(&st, (const uint8_t *)label, llen) != 0 ||
	    crypto_generichash_update(&st, &zero, 1) != 0 ||
	    (ctxlen > 0 && crypto_generichash_update(&st, ctx, ctxlen) != 0) ||
	    crypto_generichash_final(&st, k->p, outlen) != 0) {
		r = -EIO;
		goto out;
	}
	*out = k;
	k = NULL;
out:
	sodium_memzero(&st, sizeof(st));	/* the state holds the keyed chaining value */
	secret_free(&k);
	return r;
}

void crypto_hash(const uint8_t *p, size_t n, uint8_t out[CRYPTO_HASH_BYTES])
{
	(void)crypto_ensure_init();
	/* Cannot fail for valid sizes (checked at compile time above). */
	(void)crypto_generichash(out, CRYPTO_HASH_BYTES, n > 0 ? p : NULL, n, NULL, 0);
}

void crypto_hash_init(struct crypto_hash_state *s)
{
	(void)crypto_ensure_init();
	(void)crypto_generichash_init((crypto_generichash_state *)(void *)s->opaque, NULL, 0,
	    CRYPTO_HASH_BYTES);
}

void crypto_hash_update(struct crypto_hash_state *s, const uint8_t *p, size_t n)
{
	if (n == 0)
		return;
	(void)crypto_generichash_update((crypto_generichash_state *)(void *)s->opaque, p, n);
}

void crypto_hash_final(struct crypto_hash_state *s, uint8_t out[CRYPTO_HASH_BYTES])
{
	(void)crypto_generichash_final((crypto_generichash_state *)(void *)s->opaque, out,
	    CRYPTO_HASH_BYTES);
	sodium_memzero(s, sizeof(*s));
}

void crypto_random(void *p, size_t n)
{
	(void)crypto_ensure_init();
	if (n > 0)
		randombytes_buf(p, n);
}

uint32_t crypto_random_u32(void)
{
	(void)crypto_ensure_init();
	return randombytes_random();
}

int crypto_memeq(const void *a, const void *b, size_t n)
{
	if (n == 0)
		return 1;
	return sodium_memcmp(a, b, n) == 0;
}

void crypto_wipe(void *p, size_t n)
{
	if (p != NULL && n > 0)
		sodium_memzero(p, n);
}
