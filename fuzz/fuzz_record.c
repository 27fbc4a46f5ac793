/* Fuzz the stored-record openers on bytes an attacker with write access to the
 * disk could plant: sealed records, chunked streams (header + chunks) and public-key
 * wraps, all under fixed keys (record and stream key 00 01 .. 1f).
 * Input: [selector][AD: (selector >> 2) % 24 bytes][planted bytes]. selector & 3
 * picks 0 record, 1 stream, 2 pk_unwrap, 3 all three. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz.h"
#include "crypto.h"
#include "crypto-private.h"

static struct secret *key, *sk;
static uint8_t pk[CRYPTO_PK_BYTES];

static void setup(void)
{
	uint8_t k[32], base[32] = { 9 };

	if (crypto_init() != 0)
		abort();
	for (int i = 0; i < 32; i++)
		k[i] = (uint8_t)i;
	if (secret_dup(k, 32, &key) != 0)
		abort();
	/* A fixed X25519 key pair, so seeds wrapped to pk reach the success path:
	 * sk = 40 41 .. 5f, pk = X25519(sk, 9). */
	for (int i = 0; i < 32; i++)
		k[i] = (uint8_t)(0x40 + i);
	if (secret_dup(k, 32, &sk) != 0 || crypto_x25519_raw(sk->p, base, pk) != 0)
		abort();
}

static void fuzz_rec(const uint8_t *ad, size_t adlen, const uint8_t *p, size_t n)
{
	struct sbuf *pt = NULL;
	enum crypto_alg alg;
	uint32_t kid;
	int hr = crypto_rec_header(p, n, &alg, &kid);

	if (sbuf_new_secure(CRYPTO_REC_MAX_BYTES, &pt) != 0)
		abort();
	if (crypto_rec_open(key, ad, adlen, p, n, pt) == 0) {
		if (hr != 0 || pt->len != n - crypto_rec_overhead(alg))
			abort();
	} else if (pt->len != 0) {
		abort();	/* nothing may be appended on failure */
	}
	sbuf_free(&pt);
}

static void fuzz_stream(const uint8_t *ad, size_t adlen, const uint8_t *p, size_t n)
{
	struct crypto_stream_hdr h;
	struct sbuf v;
	uint8_t *pt;
	uint64_t idx = 0;

	sbuf_from(&v, p, n);
	if (crypto_stream_hdr_get(&v, &h) != 0)
		return;
	if ((pt = malloc(CRYPTO_CHUNK_BYTES)) == NULL)
		abort();
	for (;;) {
		size_t avail = sbuf_avail(&v), clen = CRYPTO_CHUNK_BYTES + CRYPTO_TAG_BYTES;
		bool final = avail <= clen;
		const uint8_t *ct;

		if (final)
			clen = avail;
		if (sbuf_get_ptr(&v, clen, &ct) != 0)
			abort();
		if (crypto_chunk_open(&h, key, ad, adlen, idx++, final, ct, clen, pt) != 0 || final)
			break;
	}
	free(pt);
}

static void fuzz_pk(const uint8_t *ad, size_t adlen, const uint8_t *p, size_t n)
{
	uint8_t *pt = malloc(n + 1);

	if (pt == NULL)
		abort();
	if (crypto_pk_unwrap(pk, sk, ad, adlen, p, n, pt) == 0 && n < CRYPTO_PKWRAP_OVERHEAD)
		abort();
	free(pt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t adlen;
	uint8_t sel;

	if (key == NULL)
		setup();
	if (size < 1)
		return 0;
	sel = data[0];
	data++;
	size--;
	adlen = (size_t)(sel >> 2) % 24;
	if (adlen > size)
		adlen = size;
	switch (sel & 3) {
	case 0:
		fuzz_rec(data, adlen, data + adlen, size - adlen);
		break;
	case 1:
		fuzz_stream(data, adlen, data + adlen, size - adlen);
		break;
	case 2:
		fuzz_pk(data, adlen, data + adlen, size - adlen);
		break;
	default:
		fuzz_rec(data, adlen, data + adlen, size - adlen);
		fuzz_stream(data, adlen, data + adlen, size - adlen);
		fuzz_pk(data, adlen, data + adlen, size - adlen);
	}
	return 0;
}
