/* Fuzz the strings a user types: "passphrase" + Yubico OTP (split, public id, strict
 * modhex, AES + CRC decode with a fixed key), plus the modhex, hex and recovery-key
 * decoders. Invariants are checked with abort() so the fuzzer reports them. */
#include <stdlib.h>
#include <string.h>
#include "fuzz.h"
#include "crypto.h"

/* Yubico's published test key (yubico-c test-vectors.txt): the seeds decode with it. */
static const uint8_t otp_key[16] = {
	0xec, 0xde, 0x18, 0xdb, 0xe7, 0x6f, 0xbd, 0x0c,
	0x33, 0x33, 0x0f, 0x1c, 0x35, 0x48, 0x71, 0xdb,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct secret *key;
	const char *s = (const char *)data;
	struct crypto_otp o;
	uint8_t id[CRYPTO_OTP_PUBID_BYTES], rk[32], rk2[32], buf[64];
	char enc[CRYPTO_RECOVERY_CHARS + 1];
	size_t plen = 0;

	if (key == NULL && (crypto_init() != 0 || secret_dup(otp_key, sizeof(otp_key), &key) != 0))
		abort();
	if (crypto_otp_split(s, size, &plen) == 0) {
		if (plen + CRYPTO_OTP_CHARS != size)
			abort();
		if (crypto_otp_public_id(s + plen, CRYPTO_OTP_CHARS, id) != 0)
			abort();	/* split said 44 modhex chars */
		if (crypto_otp_decode(s + plen, CRYPTO_OTP_CHARS, key, &o) == 0) {
			if (o.session_ctr > 0x7fff || o.tstamp > 0xffffff ||
			    memcmp(o.public_id, id, sizeof(id)) != 0)
				abort();
			(void)crypto_otp_is_newer(o.session_ctr, o.use_ctr, 1, 1);
		}
	}
	/* the decoder on its own, at any length */
	if (crypto_otp_decode(s, size, key, &o) == 0 && size != CRYPTO_OTP_CHARS)
		abort();
	crypto_wipe(&o, sizeof(o));
	/* the codecs, bounded output */
	(void)crypto_modhex_decode(s, size, buf, sizeof(buf));
	(void)crypto_hex_decode(s, size, buf, sizeof(buf));
	if (crypto_recovery_decode(s, size, rk) == 0) {
		/* canonical: re-encoding and decoding gives the same key */
		if (crypto_recovery_encode(rk, enc, sizeof(enc)) != 0 ||
		    crypto_recovery_decode(enc, strlen(enc), rk2) != 0 ||
		    memcmp(rk, rk2, sizeof(rk)) != 0)
			abort();
	}
	return 0;
}
