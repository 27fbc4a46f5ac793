/* Text encodings: modhex (Yubico), hex, recovery-key base32 (RFC 4648 section 6). */
#include <errno.h>
#include "sodium-min.h"
#include "crypto.h"
#include "crypto-private.h"
#include "compat.h"

static const char modhex_alpha[] = "cbdefghijklnrtuv";
static const char b32_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

#define RECOVERY_KEY_BYTES 32
#define RECOVERY_B32_CHARS 52	/* ceil(256 / 5) */
#define RECOVERY_GROUP 4

int crypto_modhex_value(char c)
{
	/* Lower case only: a YubiKey types lower case whatever the caps-lock state
	 * (it reports caps-lock in the session counter's top bit instead). */
	for (int i = 0; i < 16; i++)
		if (modhex_alpha[i] == c)
			return i;
	return -1;
}

int crypto_modhex_encode(const uint8_t *p, size_t n, char *out, size_t outsz)
{
	if (out == NULL || (p == NULL && n > 0))
		return -EINVAL;
	if (n > (SIZE_MAX - 1) / 2 || outsz < 2 * n + 1)
		return -E2BIG;
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = modhex_alpha[p[i] >> 4];
		out[2 * i + 1] = modhex_alpha[p[i] & 0x0f];
	}
	out[2 * n] = '\0';
	return 0;
}

int crypto_modhex_decode(const char *s, size_t len, uint8_t *out, size_t outsz)
{
	if ((s == NULL && len > 0) || (out == NULL && len > 0))
		return -EINVAL;
	if (len % 2 != 0)
		return -EPROTO;
	if (outsz < len / 2)
		return -E2BIG;
	/* Validate everything before writing anything (libyubikey's decoder maps
	 * unknown characters to 0 silently: we never use it). */
	for (size_t i = 0; i < len; i++)
		if (crypto_modhex_value(s[i]) < 0)
			return -EPROTO;
	for (size_t i = 0; i < len / 2; i++)
		out[i] = (uint8_t)(crypto_modhex_value(s[2 * i]) << 4 |
		    crypto_modhex_value(s[2 * i + 1]));
	return 0;
}

/* Hex goes through libsodium's constant-time codec: it carries AES keys. */
int crypto_hex_encode(const uint8_t *p, size_t n, char *out, size_t outsz)
{
	if (out == NULL || (p == NULL && n > 0))
		return -EINVAL;
	if (n > (SIZE_MAX - 1) / 2 || outsz < 2 * n + 1)
		return -E2BIG;
	sodium_bin2hex(out, outsz, n > 0 ? p : (const uint8_t *)"", n);
	return 0;
}

int crypto_hex_decode(const char *s, size_t len, uint8_t *out, size_t outsz)
{
	size_t binlen = 0;
	const char *end = NULL;

	if ((s == NULL && len > 0) || (out == NULL && len > 0))
		return -EINVAL;
	if (len % 2 != 0)
		return -EPROTO;
	if (outsz < len / 2)
		return -E2BIG;
	if (len == 0)
		return 0;
	if (sodium_hex2bin(out, len / 2, s, len, NULL, &binlen, &end) != 0 ||
	    binlen != len / 2 || end != s + len) {
		sodium_memzero(out, len / 2);
		return -EPROTO;
	}
	return 0;
}

/* Base64 (RFC 4648 section 4) through libsodium's constant-time codec: it carries
 * SASL PLAIN responses, i.e. passwords. Strict: padding required, no white space,
 * nothing after the padding, zero pad bits (RFC 4648 section 3.5 lets a decoder
 * reject non-canonical input; every real encoder writes zero bits). */
int crypto_base64_decode(const char *s, size_t len, uint8_t *out, size_t outsz,
    size_t *outlen)
{
	size_t binlen = 0;

	if (outlen == NULL || (s == NULL && len > 0) || (out == NULL && len > 0))
		return -EINVAL;
	*outlen = 0;
	if (len % 4 != 0)
		return -EPROTO;
	if (outsz < len / 4 * 3)
		return -E2BIG;
	if (len == 0)
		return 0;
	if (sodium_base642bin(out, outsz, s, len, NULL, &binlen, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0) {
		sodium_memzero(out, outsz);
		return -EPROTO;
	}
	*outlen = binlen;
	return 0;
}

/* ---- Recovery keys ---------------------------------------------------------------
 * 32 bytes -> 52 base32 characters (RFC 4648 alphabet, no padding; the last
 * character carries 1 bit of key and 4 zero bits), shown in 13 groups of 4 joined
 * by '-': 64 characters. Decoding ignores case, spaces, tabs and dashes, and
 * rejects any other character, a wrong count, and non-zero trailing bits. */

/* Branch-free: 0..31 for a base32 letter/digit of either case, -1 otherwise. */
static int b32_value(unsigned char c)
{
	int up = c & ~0x20;	/* fold a-z onto A-Z (digits are not letters: handled apart) */
	int is_letter = ((('A' - 1) - up) >> 8) & ((up - ('Z' + 1)) >> 8) & 1;
	int is_digit = ((('2' - 1) - (int)c) >> 8) & (((int)c - ('7' + 1)) >> 8) & 1;

	return (is_letter * (up - 'A' + 1) + is_digit * ((int)c - '2' + 27)) - 1;
}

int crypto_recovery_encode(const uint8_t key[32], char *out, size_t outsz)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0, nchars = 0;

	if (key == NULL || out == NULL)
		return -EINVAL;
	if (outsz < CRYPTO_RECOVERY_CHARS + 1)
		return -E2BIG;
	for (size_t i = 0; i < RECOVERY_KEY_BYTES || bits > 0;) {
		unsigned v;

		if (bits < 5 && i < RECOVERY_KEY_BYTES) {
			acc = acc << 8 | key[i++];
			bits += 8;
			continue;
		}
		if (bits >= 5) {
			v = (acc >> (bits - 5)) & 31;
			bits -= 5;
		} else {
			v = (acc << (5 - bits)) & 31;	/* final partial group, zero-filled */
			bits = 0;
		}
		if (nchars > 0 && nchars % RECOVERY_GROUP == 0)
			out[o++] = '-';
		out[o++] = b32_alpha[v];
		nchars++;
	}
	out[o] = '\0';
	sodium_memzero(&acc, sizeof(acc));
	return 0;
}

int crypto_recovery_decode(const char *s, size_t len, uint8_t key_out[32])
{
	uint8_t key[RECOVERY_KEY_BYTES];
	uint32_t acc = 0;
	int bits = 0, r = -EPROTO;
	size_t nchars = 0, o = 0;

	if ((s == NULL && len > 0) || key_out == NULL)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		int v;

		if (c == '-' || c == ' ' || c == '\t')
			continue;
		if ((v = b32_value(c)) < 0 || ++nchars > RECOVERY_B32_CHARS)
			goto out;
		acc = acc << 5 | (uint32_t)v;
		bits += 5;
		if (bits >= 8) {
			key[o++] = (uint8_t)(acc >> (bits - 8));
			bits -= 8;
		}
	}
	/* 52 characters = 260 bits: 256 of key and 4 that must be zero (canonical). */
	if (nchars != RECOVERY_B32_CHARS || o != RECOVERY_KEY_BYTES || bits != 4 ||
	    (acc & 0x0f) != 0)
		goto out;
	memcpy(key_out, key, sizeof(key));
	r = 0;
out:
	sodium_memzero(key, sizeof(key));
	sodium_memzero(&acc, sizeof(acc));
	return r;
}
