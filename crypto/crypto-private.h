/* crypto-private.h: internals shared between the .c files of crypto/ and the known-answer
 * hooks used by tests/test_crypto.c. Nothing outside crypto/ and tests/ includes this.
 *
 * The KAT hooks run the SAME code paths that crypto_rec_* / crypto_chunk_* /
 * crypto_pk_* use, only with a caller-chosen nonce or scalar, so that published
 * vectors test production code. Never use them to seal real data: a fixed nonce
 * with a reused key destroys confidentiality and (for GCM) authenticity. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>
#include "crypto.h"

/* Set by crypto_init (lazily, once) in init.c. */
int crypto_ensure_init(void);
EVP_CIPHER *crypto_aes256gcm_cipher(void);

size_t crypto_alg_nonce_bytes(enum crypto_alg alg);	/* 0 for an unknown alg */

/* AEAD over the two-part associated data ad1 || ad2 (either may be empty).
 * seal: ct (len bytes) and tag (CRYPTO_TAG_BYTES) out; ct may equal pt.
 * open: 0 or -EBADMSG; on failure pt_out[0..len) is wiped, never left partial. */
int crypto_aead_seal_raw(enum crypto_alg alg, const uint8_t key[CRYPTO_KEY_BYTES],
    const uint8_t *nonce, const uint8_t *ad1, size_t ad1len, const uint8_t *ad2,
    size_t ad2len, const uint8_t *pt, size_t len, uint8_t *ct, uint8_t tag[CRYPTO_TAG_BYTES]);
int crypto_aead_open_raw(enum crypto_alg alg, const uint8_t key[CRYPTO_KEY_BYTES],
    const uint8_t *nonce, const uint8_t *ad1, size_t ad1len, const uint8_t *ad2,
    size_t ad2len, const uint8_t *ct, size_t len, const uint8_t tag[CRYPTO_TAG_BYTES],
    uint8_t *pt_out);

/* RFC 8439 ChaCha20-Poly1305 (IETF, 96-bit nonce) through libsodium: for the
 * RFC 8439 section 2.8.2 vector only (sealmail itself uses the X variant). */
int crypto_kat_chacha20poly1305_ietf(const uint8_t key[32], const uint8_t nonce[12],
    const uint8_t *ad, size_t adlen, const uint8_t *pt, size_t len, uint8_t *ct_tag_out);

/* X25519(scalar, point) as pk_wrap uses it; -EBADMSG on an all-zero result. */
int crypto_x25519_raw(const uint8_t scalar[32], const uint8_t point[32], uint8_t out[32]);

/* 0..15 for a (lower-case) modhex character, else -1. */
int crypto_modhex_value(char c);

/* crypto_otp_generate without the 15-bit check: raw_ctr's top bit is the caps-lock
 * flag a real token sets; tests use it to check that decode strips it. */
int crypto_otp_generate_raw(const struct secret *aes_key,
    const uint8_t public_id[CRYPTO_OTP_PUBID_BYTES], const uint8_t uid[CRYPTO_OTP_UID_BYTES],
    uint16_t raw_ctr, uint8_t use_ctr, uint32_t tstamp, char out[CRYPTO_OTP_CHARS + 1]);
