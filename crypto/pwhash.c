/* Argon2id (RFC 9106) through libsodium (logins) and Debian's libargon2 (the
 * reference, and the only one that takes a secret / AD / several lanes). */
#include <errno.h>
#include <argon2.h>
#include "sodium-min.h"
#include "crypto.h"
#include "crypto-private.h"
#include "compat.h"

#define PWHASH_OUT_BYTES 32

_Static_assert(crypto_pwhash_argon2id_SALTBYTES == CRYPTO_SALT_BYTES, "salt size");

static int argon2_errno(int rc)
{
	switch (rc) {
	case ARGON2_OK:
		return 0;
	case ARGON2_MEMORY_ALLOCATION_ERROR:
		return -ENOMEM;
	default:
		return -EINVAL;
	}
}

int crypto_pwhash(enum crypto_pwhash_impl impl, const uint8_t *pw, size_t pwlen,
    const uint8_t salt[CRYPTO_SALT_BYTES], const struct crypto_pwhash_params *par,
    struct secret **out)
{
	struct secret *h = NULL;
	int r;

	*out = NULL;
	if (par == NULL || salt == NULL || (pw == NULL && pwlen > 0))
		return -EINVAL;
	if (par->mem_kib < CRYPTO_PWHASH_MIN_MEM_KIB || par->passes < CRYPTO_PWHASH_MIN_PASSES)
		return -EINVAL;
	/* Parameters come from the user's record on disk: cap them so a planted
	 * record cannot make one login allocate the machine's memory. */
	if (par->mem_kib > CRYPTO_PWHASH_MAX_MEM_KIB || par->passes > CRYPTO_PWHASH_MAX_PASSES)
		return -E2BIG;
	if (pwlen > CRYPTO_PWHASH_MAX_PW_BYTES)
		return -E2BIG;
	if ((r = secret_new(PWHASH_OUT_BYTES, &h)) < 0)
		return r;
	switch (impl) {
	case CRYPTO_PWHASH_SODIUM:
		/* libsodium: one lane; memlimit in bytes, used as memlimit / 1024 KiB. */
		if (crypto_pwhash_argon2id(h->p, PWHASH_OUT_BYTES, (const char *)pw, pwlen, salt,
		    par->passes, (size_t)par->mem_kib * 1024u, crypto_pwhash_argon2id_ALG_ARGON2ID13) != 0)
			r = -ENOMEM;	/* the only runtime failure left: allocation */
		break;
	case CRYPTO_PWHASH_LIBARGON2:
		r = argon2_errno(argon2id_hash_raw(par->passes, par->mem_kib, 1, pw, pwlen, salt,
		    CRYPTO_SALT_BYTES, h->p, PWHASH_OUT_BYTES));
		break;
	default:
		r = -EINVAL;
	}
	if (r < 0) {
		secret_free(&h);
		return r;
	}
	*out = h;
	return 0;
}

int crypto_pwhash_argon2_full(const uint8_t *pw, size_t pwlen, const uint8_t *salt,
    size_t saltlen, const uint8_t *secret, size_t secretlen, const uint8_t *ad,
    size_t adlen, uint32_t mem_kib, uint32_t passes, uint32_t lanes, uint8_t *out,
    size_t outlen)
{
	argon2_context c;

	if (out == NULL || outlen > UINT32_MAX || pwlen > UINT32_MAX || saltlen > UINT32_MAX ||
	    secretlen > UINT32_MAX || adlen > UINT32_MAX)
		return -EINVAL;
	if (mem_kib > CRYPTO_PWHASH_MAX_MEM_KIB || passes > CRYPTO_PWHASH_MAX_PASSES)
		return -E2BIG;
	memset(&c, 0, sizeof(c));
	c.out = out;
	c.outlen = (uint32_t)outlen;
	/* argon2_context has non-const pointers; with flags = 0 libargon2 neither
	 * clears nor writes the password or the secret. */
	c.pwd = (uint8_t *)(uintptr_t)pw;
	c.pwdlen = (uint32_t)pwlen;
	c.salt = (uint8_t *)(uintptr_t)salt;
	c.saltlen = (uint32_t)saltlen;
	c.secret = (uint8_t *)(uintptr_t)secret;
	c.secretlen = (uint32_t)secretlen;
	c.ad = (uint8_t *)(uintptr_t)ad;
	c.adlen = (uint32_t)adlen;
	c.t_cost = passes;
	c.m_cost = mem_kib;
	c.lanes = lanes;
	c.threads = 1;
	c.version = ARGON2_VERSION_13;
	c.flags = ARGON2_DEFAULT_FLAGS;
	return argon2_errno(argon2_ctx(&c, Argon2_id));
}
