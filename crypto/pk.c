/* X25519 ephemeral-static wrap of data keys to epoch public keys (crypto.h). */
#include <errno.h>
#include "sodium-min.h"
#include "crypto.h"
#include "crypto-private.h"
#include "compat.h"

#define PKWRAP_LABEL "sealmail/v1/pkwrap"

_Static_assert(crypto_scalarmult_BYTES == CRYPTO_PK_BYTES, "X25519 point size");
_Static_assert(crypto_scalarmult_SCALARBYTES == CRYPTO_SK_BYTES, "X25519 scalar size");
_Static_assert(CRYPTO_PKWRAP_OVERHEAD == CRYPTO_PK_BYTES + CRYPTO_TAG_BYTES, "overhead");

int crypto_x25519_raw(const uint8_t scalar[32], const uint8_t point[32], uint8_t out[32])
{
	int r;

	if ((r = crypto_ensure_init()) < 0)
		return r;
	/* libsodium returns -1 when the result is all zeros: the point had small
	 * order, so the "shared" secret is public (RFC 7748 section 6.1 says to
	 * check for this). */
	if (crypto_scalarmult(out, scalar, point) != 0) {
		sodium_memzero(out, 32);
		return -EBADMSG;
	}
	return 0;
}

int crypto_x25519_keypair(uint8_t pk_out[CRYPTO_PK_BYTES], struct secret **sk_out)
{
	struct secret *sk = NULL;
	int r;

	*sk_out = NULL;
	if ((r = secret_new_random(CRYPTO_SK_BYTES, &sk)) < 0)
		return r;
	if (crypto_scalarmult_base(pk_out, sk->p) != 0) {
		secret_free(&sk);
		return -EIO;
	}
	*sk_out = sk;
	return 0;
}

/* k = BLAKE2b-256(key = shared, "sealmail/v1/pkwrap" || epk || pk). Hashing both
 * public keys binds k to this exchange (as crypto_box_seal does). */
static int wrap_key(const uint8_t shared[32], const uint8_t epk[32], const uint8_t pk[32],
    uint8_t k[CRYPTO_KEY_BYTES])
{
	crypto_generichash_state st;
	int r = 0;

	if (crypto_generichash_init(&st, shared, 32, CRYPTO_KEY_BYTES) != 0 ||
	    crypto_generichash_update(&st, (const uint8_t *)PKWRAP_LABEL,
		sizeof(PKWRAP_LABEL) - 1) != 0 ||
	    crypto_generichash_update(&st, epk, 32) != 0 ||
	    crypto_generichash_update(&st, pk, 32) != 0 ||
	    crypto_generichash_final(&st, k, CRYPTO_KEY_BYTES) != 0)
		r = -EIO;
	sodium_memzero(&st, sizeof(st));
	return r;
}

int crypto_pk_wrap(const uint8_t pk[CRYPTO_PK_BYTES], const uint8_t *ad, size_t adlen,
    const uint8_t *pt, size_t len, uint8_t *out)
{
	static const uint8_t zero_nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	uint8_t esk[32], shared[32], k[CRYPTO_KEY_BYTES];
	int r;

	if (pk == NULL || out == NULL || (pt == NULL && len > 0) || (ad == NULL && adlen > 0))
		return -EINVAL;
	if (adlen > CRYPTO_AD_MAX_BYTES || len > CRYPTO_REC_MAX_BYTES)
		return -E2BIG;
	if ((r = crypto_ensure_init()) < 0)
		return r;
	randombytes_buf(esk, sizeof(esk));
	if (crypto_scalarmult_base(out, esk) != 0) {
		r = -EIO;
		goto out;
	}
	/* A low-order recipient key gives an all-zero secret: refuse it. */
	if ((r = crypto_x25519_raw(esk, pk, shared)) < 0) {
		r = -EINVAL;
		goto out;
	}
	if ((r = wrap_key(shared, out, pk, k)) < 0)
		goto out;
	/* k is fresh for every wrap (new ephemeral key), so a fixed nonce is safe. */
	r = crypto_aead_seal_raw(CRYPTO_ALG_XCHACHA20P1305, k, zero_nonce, ad, adlen, NULL, 0,
	    pt, len, out + CRYPTO_PK_BYTES, out + CRYPTO_PK_BYTES + len);
out:
	sodium_memzero(esk, sizeof(esk));
	sodium_memzero(shared, sizeof(shared));
	sodium_memzero(k, sizeof(k));
	return r;
}

int crypto_pk_unwrap(const uint8_t pk[CRYPTO_PK_BYTES], const struct secret *sk,
    const uint8_t *ad, size_t adlen, const uint8_t *in, size_t len, uint8_t *pt_out)
{
	static const uint8_t zero_nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	uint8_t shared[32], k[CRYPTO_KEY_BYTES];
	size_t ptlen;
	int r;

	if (pk == NULL || sk == NULL || sk->p == NULL || sk->len != CRYPTO_SK_BYTES ||
	    (in == NULL && len > 0) || (ad == NULL && adlen > 0))
		return -EINVAL;
	if (adlen > CRYPTO_AD_MAX_BYTES)
		return -E2BIG;
	if (len < CRYPTO_PKWRAP_OVERHEAD)
		return -EPROTO;
	ptlen = len - CRYPTO_PKWRAP_OVERHEAD;
	if (pt_out == NULL && ptlen > 0)
		return -EINVAL;
	if ((r = crypto_x25519_raw(sk->p, in, shared)) < 0)
		goto out;	/* planted low-order ephemeral key: -EBADMSG */
	if ((r = wrap_key(shared, in, pk, k)) < 0)
		goto out;
	r = crypto_aead_open_raw(CRYPTO_ALG_XCHACHA20P1305, k, zero_nonce, ad, adlen, NULL, 0,
	    in + CRYPTO_PK_BYTES, ptlen, in + CRYPTO_PK_BYTES + ptlen, pt_out);
out:
	sodium_memzero(shared, sizeof(shared));
	sodium_memzero(k, sizeof(k));
	return r;
}
