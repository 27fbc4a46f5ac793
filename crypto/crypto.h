/* crypto: the only module that calls libsodium, OpenSSL's libcrypto, libargon2 and
 * libyubikey. Everything else in sealmail seals and opens through this header.
 *
 * All functions return 0 or a negative errno unless stated otherwise:
 *   -EBADMSG  authentication failed (wrong key, tampering, truncation, swapped AD)
 *   -EPROTO   malformed input (bad header, bad modhex, bad length)
 *   -EINVAL   bad argument, -ENOMEM, -E2BIG over a limit.
 * Functions that verify something are warn_unused_result. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "secret.h"
#include "sbuf.h"

#define CRYPTO_WUR __attribute__((warn_unused_result))
/* crypto_hash and crypto_pwhash are also public names in libsodium (SHA-512 and
 * its own pwhash): ours are linked as sealmail_crypto_hash / sealmail_crypto_pwhash
 * so the symbols never collide. A file cannot include both <sodium.h> and this
 * header; only crypto/ uses libsodium, through crypto/sodium-min.h. */
#define CRYPTO_LINK_NAME(n) __asm__(n)

/* Must run once per process before anything else (sodium_init, CPU detection). */
int crypto_init(void);
/* For daemons and key-holding processes: RLIMIT_CORE = 0, PR_SET_DUMPABLE = 0. */
int crypto_harden_process(void);

/* ---- AEAD algorithms -------------------------------------------------------- */
enum crypto_alg {
	CRYPTO_ALG_AES256GCM = 1,	/* OpenSSL EVP; chosen where the CPU has AES-NI */
	CRYPTO_ALG_XCHACHA20P1305 = 2,	/* libsodium crypto_aead_xchacha20poly1305_ietf */
};
#define CRYPTO_KEY_BYTES 32
#define CRYPTO_TAG_BYTES 16
#define CRYPTO_HASH_BYTES 32
#define CRYPTO_FORMAT_VERSION 1
/* Limits (-E2BIG beyond them): caller AD per call, and plaintext of one record or
 * one pk_wrap. Bodies go through the chunk API, which has no total limit. */
#define CRYPTO_AD_MAX_BYTES 65536u
#define CRYPTO_REC_MAX_BYTES (64u << 20)

/* AES-256-GCM when the CPU has AES-NI + PCLMUL, else XChaCha20-Poly1305.
 * SEALMAIL_FORCE_ALG=xchacha|aesgcm in the environment overrides (tests). */
enum crypto_alg crypto_default_alg(void);
const char *crypto_alg_name(enum crypto_alg alg);

/* ---- Sealed records: small values (keys, metadata, names) ---------------------
 * Layout: [u8 version=1][u8 alg][u32 key_id BE][nonce: 12 B GCM / 24 B XChaCha]
 *         [ciphertext][16 B tag]
 * The whole header is authenticated together with the caller's AD. The nonce is
 * random. key_id names the key epoch (or 0 for non-epoch keys) so rotation can
 * find the key without trying all. */
size_t crypto_rec_overhead(enum crypto_alg alg);
/* Appends the record to out (nothing on failure). key must be CRYPTO_KEY_BYTES.
 * The AEAD's AD is header || ad. pt must not point into out (out may move). */
int crypto_rec_seal(enum crypto_alg alg, const struct secret *key, uint32_t key_id,
    const uint8_t *ad, size_t adlen, const uint8_t *pt, size_t ptlen, struct sbuf *out);
/* Appends the plaintext to pt_out (use a secure sbuf for secrets). -EBADMSG on any
 * authentication failure, -EPROTO on a malformed header or a record too short to
 * hold one; on failure nothing is appended (no partial plaintext). rec must not
 * point into pt_out. */
CRYPTO_WUR int crypto_rec_open(const struct secret *key, const uint8_t *ad, size_t adlen,
    const uint8_t *rec, size_t reclen, struct sbuf *pt_out);
/* Reads the header without a key. -EPROTO unless rec is long enough to be a record.
 * alg_out / key_id_out may be NULL. */
int crypto_rec_header(const uint8_t *rec, size_t reclen, enum crypto_alg *alg_out,
    uint32_t *key_id_out);

/* ---- Chunked streams: message bodies ------------------------------------------
 * A body is sealed under its own random data key in chunks of CRYPTO_CHUNK_BYTES
 * plaintext (the last may be shorter; an empty body is one empty final chunk).
 * Chunk i's nonce is the header's random prefix followed by BE64(i); its AD is
 *   caller_ad || BE64(i) || u8 final || serialized stream header
 * so chunks cannot be reordered, dropped, truncated, or moved to another message
 * or another stream without -EBADMSG. */
#define CRYPTO_CHUNK_BYTES 65536
#define CRYPTO_STREAM_HDR_BYTES 22
struct crypto_stream_hdr {
	uint8_t version;
	uint8_t alg;		/* enum crypto_alg */
	uint32_t key_id;
	uint8_t prefix[16];	/* random; GCM uses the first 4 bytes */
};
int crypto_stream_hdr_init(enum crypto_alg alg, uint32_t key_id, struct crypto_stream_hdr *h);
int crypto_stream_hdr_put(const struct crypto_stream_hdr *h, struct sbuf *out);
/* -EPROTO on a short or malformed header; consumes CRYPTO_STREAM_HDR_BYTES only on success. */
int crypto_stream_hdr_get(struct sbuf *in, struct crypto_stream_hdr *h);
/* out must hold len + CRYPTO_TAG_BYTES; len <= CRYPTO_CHUNK_BYTES (-E2BIG), and a
 * chunk that is not final must be exactly CRYPTO_CHUNK_BYTES (-EINVAL). */
int crypto_chunk_seal(const struct crypto_stream_hdr *h, const struct secret *key,
    const uint8_t *ad, size_t adlen, uint64_t idx, bool final,
    const uint8_t *pt, size_t len, uint8_t *out);
/* pt_out must hold ctlen - CRYPTO_TAG_BYTES. -EPROTO for a bad header or a length no
 * seal produces; -EBADMSG on authentication failure, and then pt_out is wiped. */
CRYPTO_WUR int crypto_chunk_open(const struct crypto_stream_hdr *h, const struct secret *key,
    const uint8_t *ad, size_t adlen, uint64_t idx, bool final,
    const uint8_t *ct, size_t ctlen, uint8_t *pt_out);

/* ---- Public-key wrap (data keys to epoch keys) --------------------------------
 * X25519 ephemeral-static with associated data:
 *   e = ephemeral key pair; k = BLAKE2b-256(key = X25519(e.sk, pk),
 *        "sealmail/v1/pkwrap" || e.pk || pk); out = e.pk || XChaCha20-Poly1305(k,
 *        nonce 0, ad, pt). k is used once, so the fixed nonce is safe.
 * Like crypto_box_seal but binds AD. Overhead CRYPTO_PKWRAP_OVERHEAD bytes. */
#define CRYPTO_PK_BYTES 32
#define CRYPTO_SK_BYTES 32
#define CRYPTO_PKWRAP_OVERHEAD 48
int crypto_x25519_keypair(uint8_t pk_out[CRYPTO_PK_BYTES], struct secret **sk_out);
/* out must hold len + CRYPTO_PKWRAP_OVERHEAD. -EINVAL for a low-order pk. */
int crypto_pk_wrap(const uint8_t pk[CRYPTO_PK_BYTES], const uint8_t *ad, size_t adlen,
    const uint8_t *pt, size_t len, uint8_t *out);
/* pt_out must hold len - CRYPTO_PKWRAP_OVERHEAD. -EPROTO if len < overhead,
 * -EBADMSG on authentication failure (pt_out then wiped). */
CRYPTO_WUR int crypto_pk_unwrap(const uint8_t pk[CRYPTO_PK_BYTES], const struct secret *sk,
    const uint8_t *ad, size_t adlen, const uint8_t *in, size_t len, uint8_t *pt_out);

/* ---- Key derivation ---------------------------------------------------------
 * out = BLAKE2b(key = ikm, msg = "sealmail/v1/" label || 0x00 || ctx), outlen <= 64.
 * Every derived key in sealmail has its own label (domain separation).
 * ikm 16..64 bytes, outlen 16..64, label 1..64 chars: else -EINVAL. */
int crypto_kdf(const struct secret *ikm, const char *label, const uint8_t *ctx,
    size_t ctxlen, size_t outlen, struct secret **out);

/* ---- Hashing (no key): integrity checks readable without keys ---------------- */
void crypto_hash(const uint8_t *p, size_t n, uint8_t out[CRYPTO_HASH_BYTES])
    CRYPTO_LINK_NAME("sealmail_crypto_hash");
struct crypto_hash_state { uint8_t opaque[384] __attribute__((aligned(64))); };
void crypto_hash_init(struct crypto_hash_state *s);
void crypto_hash_update(struct crypto_hash_state *s, const uint8_t *p, size_t n);
void crypto_hash_final(struct crypto_hash_state *s, uint8_t out[CRYPTO_HASH_BYTES]);

void crypto_random(void *p, size_t n);
uint32_t crypto_random_u32(void);
/* Constant time: 1 equal, 0 different. */
int crypto_memeq(const void *a, const void *b, size_t n);
void crypto_wipe(void *p, size_t n);

/* ---- Argon2id (RFC 9106) ------------------------------------------------------
 * Two implementations with identical output at lanes = 1 (a known-answer test
 * proves it): libsodium's crypto_pwhash (about 2x faster here, used for logins) and
 * Debian's libargon2. Parameters are stored per user. */
enum crypto_pwhash_impl { CRYPTO_PWHASH_SODIUM = 0, CRYPTO_PWHASH_LIBARGON2 = 1 };
#define CRYPTO_SALT_BYTES 16
#define CRYPTO_PWHASH_MIN_MEM_KIB 19456u	/* OWASP minimum: 19 MiB, t=2, p=1 */
#define CRYPTO_PWHASH_MIN_PASSES 2u
/* Upper bounds (-E2BIG): parameters are read from disk, a planted record must not
 * be able to make one login allocate the machine. 4 GiB, 64 passes. */
#define CRYPTO_PWHASH_MAX_MEM_KIB (4u << 20)
#define CRYPTO_PWHASH_MAX_PASSES 64u
#define CRYPTO_PWHASH_MAX_PW_BYTES 4096u
struct crypto_pwhash_params {
	uint32_t mem_kib;
	uint32_t passes;
};
/* -EINVAL if params are below the OWASP minimum, -E2BIG above the maximum,
 * -ENOMEM. out: 32-byte secret. */
int crypto_pwhash(enum crypto_pwhash_impl impl, const uint8_t *pw, size_t pwlen,
    const uint8_t salt[CRYPTO_SALT_BYTES], const struct crypto_pwhash_params *par,
    struct secret **out) CRYPTO_LINK_NAME("sealmail_crypto_pwhash");
/* Full RFC 9106 form (secret, associated data, lanes), libargon2 only: for the KAT. */
int crypto_pwhash_argon2_full(const uint8_t *pw, size_t pwlen, const uint8_t *salt,
    size_t saltlen, const uint8_t *secret, size_t secretlen, const uint8_t *ad,
    size_t adlen, uint32_t mem_kib, uint32_t passes, uint32_t lanes, uint8_t *out,
    size_t outlen);

/* ---- Yubico OTP ---------------------------------------------------------------
 * An OTP is 44 modhex characters: 12 of public id + 32 of AES-128 ciphertext of the
 * 16-byte token (uid 6, session counter 2 LE, timestamp 3, use counter 1, random 2,
 * CRC-16 2). Decoding checks strict modhex, decrypts, and checks the CRC residue
 * 0xf0b8 (yubikey_parse checks nothing by itself). */
#define CRYPTO_OTP_CHARS 44
#define CRYPTO_OTP_PUBID_BYTES 6
#define CRYPTO_OTP_UID_BYTES 6
#define CRYPTO_OTP_AES_BYTES 16
struct crypto_otp {
	uint8_t public_id[CRYPTO_OTP_PUBID_BYTES];
	uint8_t uid[CRYPTO_OTP_UID_BYTES];	/* private id: secret */
	uint16_t session_ctr;			/* 15 bits, capslock bit removed */
	uint8_t use_ctr;
	uint32_t tstamp;			/* 24 bits */
};
/* If the password ends with a plausible OTP (44 lower-case modhex chars),
 * *pass_len_out is len - 44 and the function returns 0; else -ENOENT. Does not
 * check the CRC. */
int crypto_otp_split(const char *password, size_t len, size_t *pass_len_out);
int crypto_otp_public_id(const char *otp, size_t len, uint8_t id_out[CRYPTO_OTP_PUBID_BYTES]);
/* otp: exactly 44 chars (else -EPROTO), aes_key 16 bytes (else -EINVAL).
 * -EBADMSG if the CRC residue is wrong (wrong key or forged token); out is zeroed
 * on any failure. Does NOT compare uid or counters: the caller does.
 * out->uid is secret: caller wipes out after use. */
CRYPTO_WUR int crypto_otp_decode(const char *otp, size_t len, const struct secret *aes_key,
    struct crypto_otp *out);
/* The replay rule: 1 if (ctr, use) is newer than (stored_ctr, stored_use), i.e. session
 * counter greater, or equal with a greater use counter; else 0. */
int crypto_otp_is_newer(uint16_t ctr, uint8_t use, uint16_t stored_ctr, uint8_t stored_use);
/* Software token: builds a valid OTP (sets the CRC; yubikey_generate does not).
 * out: 44 chars + NUL. -EINVAL if session_ctr > 0x7fff or tstamp > 0xffffff. */
int crypto_otp_generate(const struct secret *aes_key, const uint8_t public_id[CRYPTO_OTP_PUBID_BYTES],
    const uint8_t uid[CRYPTO_OTP_UID_BYTES], uint16_t session_ctr, uint8_t use_ctr,
    uint32_t tstamp, char out[CRYPTO_OTP_CHARS + 1]);
/* Modhex (cbdefghijklnrtuv). Decode is strict: -EPROTO on any other char or odd length. */
int crypto_modhex_encode(const uint8_t *p, size_t n, char *out, size_t outsz);
int crypto_modhex_decode(const char *s, size_t len, uint8_t *out, size_t outsz);
int crypto_hex_encode(const uint8_t *p, size_t n, char *out, size_t outsz);
int crypto_hex_decode(const char *s, size_t len, uint8_t *out, size_t outsz);
/* Encoders: -E2BIG if out cannot hold 2n chars + NUL. Hex decode accepts either case.
 * Decoders write exactly len / 2 bytes and return 0. */
/* Base64 (RFC 4648 section 4, '+' '/' and '=' padding), strict and constant-time:
 * -EPROTO unless len % 4 == 0, every char is in the alphabet, padding ends the input
 * and the pad bits are zero. out needs len / 4 * 3 bytes (-E2BIG); *outlen gets the
 * decoded length. On error out is wiped. */
int crypto_base64_decode(const char *s, size_t len, uint8_t *out, size_t outsz,
    size_t *outlen);

/* Recovery keys: 32 random bytes as RFC 4648 base32 without padding (52 chars, the
 * last 4 bits zero) in 13 groups of 4 joined by '-': "ABCD-EFGH-...", 64 chars.
 * out needs CRYPTO_RECOVERY_CHARS + 1 bytes (-E2BIG). Decode ignores case, spaces,
 * tabs and dashes; -EPROTO for any other char, a wrong length or non-zero pad bits.
 * There is no checksum: a mistyped key fails later with -EBADMSG. */
#define CRYPTO_RECOVERY_CHARS 64
int crypto_recovery_encode(const uint8_t key[32], char *out, size_t outsz);
int crypto_recovery_decode(const char *s, size_t len, uint8_t key_out[32]);

/* ---- TLS certificate ------------------------------------------------------------
 * For `sealmail-vault init`: a new ECDSA P-256 key (PEM PKCS#8, mode 0600) and a
 * self-signed X.509 v3 certificate (PEM, mode 0644) valid for `days` days, CN and
 * subjectAltName DNS:hostname, DNS:localhost, IP:127.0.0.1. hostname: letters,
 * digits, '-' and '.' only. -EEXIST if either file exists (nothing is
 * overwritten), -EINVAL bad argument, -EIO OpenSSL failure (logged), -errno I/O. */
#define CRYPTO_CERT_MAX_DAYS 36500u
int crypto_selfsigned_cert(const char *cert_path, const char *key_path, const char *hostname,
    unsigned days);
