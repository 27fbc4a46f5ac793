/* Yubico OTP: strict parsing, AES-128 via libyubikey, CRC residue check, and a
 * software token for demos and tests.
 * Token plaintext (16 bytes, little-endian fields): uid[6] ctr[2] tstp[3] use[1]
 * rnd[2] crc[2]; crc = ~CRC16(first 14 bytes), so CRC16 over all 16 bytes gives
 * the fixed residue 0xf0b8 (Yubico's test-vectors.txt). */
#include <errno.h>
#include "sodium-min.h"
#include <yubikey.h>
#include "crypto.h"
#include "crypto-private.h"
#include "compat.h"

#define PUBID_CHARS (2 * CRYPTO_OTP_PUBID_BYTES)
#define TOKEN_BYTES YUBIKEY_BLOCK_SIZE

_Static_assert(CRYPTO_OTP_CHARS == PUBID_CHARS + 2 * TOKEN_BYTES, "OTP layout");
_Static_assert(CRYPTO_OTP_AES_BYTES == YUBIKEY_KEY_SIZE, "AES-128 key");
_Static_assert(CRYPTO_OTP_UID_BYTES == YUBIKEY_UID_SIZE, "uid size");

static int all_modhex(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (crypto_modhex_value(s[i]) < 0)
			return 0;
	return 1;
}

int crypto_otp_split(const char *password, size_t len, size_t *pass_len_out)
{
	if (password == NULL || pass_len_out == NULL)
		return -EINVAL;
	if (len < CRYPTO_OTP_CHARS || !all_modhex(password + len - CRYPTO_OTP_CHARS, CRYPTO_OTP_CHARS))
		return -ENOENT;
	*pass_len_out = len - CRYPTO_OTP_CHARS;
	return 0;
}

int crypto_otp_public_id(const char *otp, size_t len, uint8_t id_out[CRYPTO_OTP_PUBID_BYTES])
{
	if (otp == NULL || id_out == NULL)
		return -EINVAL;
	if (len != CRYPTO_OTP_CHARS || !all_modhex(otp, len))
		return -EPROTO;
	return crypto_modhex_decode(otp, PUBID_CHARS, id_out, CRYPTO_OTP_PUBID_BYTES);
}

int crypto_otp_decode(const char *otp, size_t len, const struct secret *aes_key,
    struct crypto_otp *out)
{
	uint8_t tok[TOKEN_BYTES];
	int r;

	if (otp == NULL || out == NULL || aes_key == NULL || aes_key->p == NULL ||
	    aes_key->len != CRYPTO_OTP_AES_BYTES)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (len != CRYPTO_OTP_CHARS || !all_modhex(otp, len))
		return -EPROTO;
	if ((r = crypto_modhex_decode(otp, PUBID_CHARS, out->public_id, sizeof(out->public_id))) < 0 ||
	    (r = crypto_modhex_decode(otp + PUBID_CHARS, 2 * TOKEN_BYTES, tok, sizeof(tok))) < 0)
		goto out;
	yubikey_aes_decrypt(tok, aes_key->p);
	/* The CRC is the only integrity check of the token: with the wrong key (or a
	 * forged token) it fails with probability 1 - 2^-16; the private id check
	 * the caller does next adds 48 bits. */
	if (yubikey_crc16(tok, TOKEN_BYTES) != YUBIKEY_CRC_OK_RESIDUE) {
		r = -EBADMSG;
		goto out;
	}
	memcpy(out->uid, tok, CRYPTO_OTP_UID_BYTES);
	/* The top bit of the session counter is the caps-lock flag, not counter. */
	out->session_ctr = (uint16_t)((tok[6] | (unsigned)tok[7] << 8) & 0x7fff);
	out->tstamp = (uint32_t)tok[8] | (uint32_t)tok[9] << 8 | (uint32_t)tok[10] << 16;
	out->use_ctr = tok[11];
	r = 0;
out:
	sodium_memzero(tok, sizeof(tok));
	if (r < 0)
		sodium_memzero(out, sizeof(*out));
	return r;
}

int crypto_otp_is_newer(uint16_t ctr, uint8_t use, uint16_t stored_ctr, uint8_t stored_use)
{
	if (ctr != stored_ctr)
		return ctr > stored_ctr;
	return use > stored_use;
}

int crypto_otp_generate(const struct secret *aes_key, const uint8_t public_id[CRYPTO_OTP_PUBID_BYTES],
    const uint8_t uid[CRYPTO_OTP_UID_BYTES], uint16_t session_ctr, uint8_t use_ctr,
    uint32_t tstamp, char out[CRYPTO_OTP_CHARS + 1])
{
	if (session_ctr > 0x7fff)
		return -EINVAL;
	return crypto_otp_generate_raw(aes_key, public_id, uid, session_ctr, use_ctr, tstamp, out);
}

int crypto_otp_generate_raw(const struct secret *aes_key, const uint8_t public_id[CRYPTO_OTP_PUBID_BYTES],
    const uint8_t uid[CRYPTO_OTP_UID_BYTES], uint16_t raw_ctr, uint8_t use_ctr,
    uint32_t tstamp, char out[CRYPTO_OTP_CHARS + 1])
{
	uint8_t tok[TOKEN_BYTES];
	uint16_t crc;
	int r;

	if (aes_key == NULL || aes_key->p == NULL || aes_key->len != CRYPTO_OTP_AES_BYTES ||
	    public_id == NULL || uid == NULL || out == NULL)
		return -EINVAL;
	if (tstamp > 0xffffff)
		return -EINVAL;
	if ((r = crypto_ensure_init()) < 0)
		return r;
	memcpy(tok, uid, CRYPTO_OTP_UID_BYTES);
	tok[6] = (uint8_t)raw_ctr;
	tok[7] = (uint8_t)(raw_ctr >> 8);
	tok[8] = (uint8_t)tstamp;
	tok[9] = (uint8_t)(tstamp >> 8);
	tok[10] = (uint8_t)(tstamp >> 16);
	tok[11] = use_ctr;
	randombytes_buf(tok + 12, 2);
	/* yubikey_generate leaves the CRC to the caller: store ~CRC16 little-endian. */
	crc = (uint16_t)~yubikey_crc16(tok, TOKEN_BYTES - 2);
	tok[14] = (uint8_t)crc;
	tok[15] = (uint8_t)(crc >> 8);
	yubikey_aes_encrypt(tok, aes_key->p);
	if ((r = crypto_modhex_encode(public_id, CRYPTO_OTP_PUBID_BYTES, out, PUBID_CHARS + 1)) == 0)
		r = crypto_modhex_encode(tok, TOKEN_BYTES, out + PUBID_CHARS, 2 * TOKEN_BYTES + 1);
	sodium_memzero(tok, sizeof(tok));
	return r;
}
