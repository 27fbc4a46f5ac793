/* Micro-benchmark of crypto/ (built, not run as a test). Prints AEAD throughput for
 * 20 KiB bodies with both algorithms, pk_wrap/unwrap rates, Argon2id time per hash
 * with both implementations, and a few small operations. Compare with
 * shared/LIMITS.md. Usage: bench_crypto [--quick] [--warm] */
#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <time.h>
#include <openssl/evp.h>
#include "harness.h"
#include "crypto.h"
#include "crypto-private.h"

/* harness.c is not linked here; the header's declarations need these. */
int harness_failed;
void harness_register(const char *name, test_fn fn)
{
	(void)name;
	(void)fn;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void die(const char *what, int r)
{
	fprintf(stderr, "bench: %s failed: %d\n", what, r);
	exit(1);
}

#define BODY (20 * 1024)

static void bench_aead(enum crypto_alg alg, double secs)
{
	static uint8_t pt[BODY], ct[BODY + CRYPTO_TAG_BYTES], back[BODY];
	struct crypto_stream_hdr h;
	struct secret *key = NULL;
	double t0, dt_seal, dt_open;
	long n = 0, m = 0;
	int r;

	if ((r = secret_new_random(CRYPTO_KEY_BYTES, &key)) < 0 ||
	    (r = crypto_stream_hdr_init(alg, 1, &h)) < 0)
		die("setup", r);
	crypto_random(pt, sizeof(pt));
	t0 = now();
	do {
		for (int i = 0; i < 100; i++, n++)
			if ((r = crypto_chunk_seal(&h, key, (const uint8_t *)"ad", 2, 0, true, pt,
			    BODY, ct)) < 0)
				die("seal", r);
	} while ((dt_seal = now() - t0) < secs);
	t0 = now();
	do {
		for (int i = 0; i < 100; i++, m++)
			if ((r = crypto_chunk_open(&h, key, (const uint8_t *)"ad", 2, 0, true, ct,
			    sizeof(ct), back)) < 0)
				die("open", r);
	} while ((dt_open = now() - t0) < secs);
	printf("  %-20s seal %6.0f MB/s (%5.1f us/msg)   open %6.0f MB/s (%5.1f us/msg)\n",
	    crypto_alg_name(alg), (double)n * BODY / dt_seal / 1e6, dt_seal / (double)n * 1e6,
	    (double)m * BODY / dt_open / 1e6, dt_open / (double)m * 1e6);
	secret_free(&key);
}

/* Reference only: OpenSSL with one context reused for every message (key set
 * per message), to show what the per-call EVP_CIPHER_CTX_new in crypto/ costs. */
static void bench_gcm_reused_ctx(double secs)
{
	static uint8_t pt[BODY], ct[BODY], back[BODY];
	uint8_t key[32], iv[12] = { 0 }, tag[16], fin[16];
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	EVP_CIPHER *c = crypto_aes256gcm_cipher();
	double t0, dt;
	long n = 0;
	int outl;

	crypto_random(key, sizeof(key));
	if (ctx == NULL || c == NULL)
		die("ctx", -ENOMEM);
	t0 = now();
	do {
		for (int i = 0; i < 100; i++, n++) {
			if (EVP_EncryptInit_ex2(ctx, c, key, iv, NULL) != 1 ||
			    EVP_EncryptUpdate(ctx, ct, &outl, pt, BODY) != 1 ||
			    EVP_EncryptFinal_ex(ctx, fin, &outl) != 1 ||
			    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag) != 1)
				die("evp", -EIO);
		}
	} while ((dt = now() - t0) < secs);
	printf("  %-20s seal %6.0f MB/s (%5.1f us/msg)   (reference: raw EVP, ctx reused)\n",
	    "AES-256-GCM", (double)n * BODY / dt / 1e6, dt / (double)n * 1e6);
	(void)back;
	EVP_CIPHER_CTX_free(ctx);
}

static void bench_pk(double secs)
{
	uint8_t pk[32], dk[32], w[32 + CRYPTO_PKWRAP_OVERHEAD], back[32];
	struct secret *sk = NULL;
	double t0, dtw, dtu;
	long n = 0, m = 0;
	int r;

	if ((r = crypto_x25519_keypair(pk, &sk)) < 0)
		die("keypair", r);
	crypto_random(dk, sizeof(dk));
	t0 = now();
	do {
		for (int i = 0; i < 50; i++, n++)
			if ((r = crypto_pk_wrap(pk, (const uint8_t *)"ad", 2, dk, 32, w)) < 0)
				die("wrap", r);
	} while ((dtw = now() - t0) < secs);
	t0 = now();
	do {
		for (int i = 0; i < 50; i++, m++)
			if ((r = crypto_pk_unwrap(pk, sk, (const uint8_t *)"ad", 2, w, sizeof(w), back)) < 0)
				die("unwrap", r);
	} while ((dtu = now() - t0) < secs);
	printf("  pk_wrap   %8.0f /s (%5.1f us)\n", (double)n / dtw, dtw / (double)n * 1e6);
	printf("  pk_unwrap %8.0f /s (%5.1f us)\n", (double)m / dtu, dtu / (double)m * 1e6);
	secret_free(&sk);
}

static void bench_small(double secs)
{
	struct secret *key = NULL, *otpkey = NULL;
	struct sbuf *rec = NULL, *pt = NULL;
	uint8_t id[6] = { 1, 2, 3, 4, 5, 6 }, uid[6] = { 6, 5, 4, 3, 2, 1 };
	char otp[CRYPTO_OTP_CHARS + 1];
	struct crypto_otp o;
	double t0, dt;
	long n = 0;
	int r;

	if ((r = secret_new_random(32, &key)) < 0 || (r = secret_new_random(16, &otpkey)) < 0 ||
	    (r = sbuf_new(4096, &rec)) < 0 || (r = sbuf_new_secure(4096, &pt)) < 0 ||
	    (r = crypto_rec_seal(crypto_default_alg(), key, 1, (const uint8_t *)"ad", 2,
		(const uint8_t *)"0123456789abcdef0123456789abcdef", 32, rec)) < 0 ||
	    (r = crypto_otp_generate(otpkey, id, uid, 1, 1, 1, otp)) < 0)
		die("setup", r);
	t0 = now();
	do {
		for (int i = 0; i < 1000; i++, n++) {
			sbuf_reset(pt);
			if ((r = crypto_rec_open(key, (const uint8_t *)"ad", 2, rec->d, rec->len, pt)) < 0)
				die("rec_open", r);
		}
	} while ((dt = now() - t0) < secs);
	printf("  rec_open 32 B (%s) %8.0f /s (%5.2f us)\n", crypto_alg_name(crypto_default_alg()),
	    (double)n / dt, dt / (double)n * 1e6);
	n = 0;
	t0 = now();
	do {
		for (int i = 0; i < 1000; i++, n++)
			if ((r = crypto_otp_decode(otp, CRYPTO_OTP_CHARS, otpkey, &o)) < 0)
				die("otp", r);
	} while ((dt = now() - t0) < secs);
	printf("  otp_decode        %8.0f /s (%5.2f us)\n", (double)n / dt, dt / (double)n * 1e6);
	crypto_wipe(&o, sizeof(o));
	sbuf_free(&rec);
	sbuf_free(&pt);
	secret_free(&key);
	secret_free(&otpkey);
}

static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Median wall time per hash; *cpu_out: median CPU time (user + sys) per hash, which
 * a busy machine inflates less than wall time. */
static double pwhash_median(enum crypto_pwhash_impl impl, const struct crypto_pwhash_params *p,
    int runs, double *cpu_out)
{
	uint8_t salt[CRYPTO_SALT_BYTES];
	double t[16], c[16];
	int r;

	crypto_random(salt, sizeof(salt));
	for (int i = 0; i < runs; i++) {
		struct secret *out = NULL;
		double t0 = now(), c0 = cpu_now();

		if ((r = crypto_pwhash(impl, (const uint8_t *)"correct horse", 13, salt, p, &out)) < 0)
			die("pwhash", r);
		t[i] = now() - t0;
		c[i] = cpu_now() - c0;
		secret_free(&out);
	}
	qsort(t, (size_t)runs, sizeof(t[0]), cmp_double);
	qsort(c, (size_t)runs, sizeof(c[0]), cmp_double);
	*cpu_out = c[runs / 2];
	return t[runs / 2];
}

int main(int argc, char **argv)
{
	static const struct { struct crypto_pwhash_params p; int runs; } sets[] = {
		{ { 19456, 2 }, 15 }, { { 65536, 2 }, 7 }, { { 65536, 3 }, 7 }, { { 262144, 3 }, 3 },
	};
	bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
	double secs = quick ? 0.05 : 0.5;

	if (crypto_init() != 0)
		die("crypto_init", -1);
	/* libsodium mmaps fresh Argon2 memory for every hash; libargon2 mallocs it,
	 * and glibc's adaptive mmap threshold (up to 32 MiB) would then hand it
	 * already-faulted heap pages. A fixed threshold makes both pay the page
	 * faults a fresh login pays (as shared/LIMITS.md measured). --warm skips it. */
	if (!(argc > 1 && strcmp(argv[argc - 1], "--warm") == 0))
		mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	printf("AEAD, 20 KiB body as one final chunk (crypto_chunk_seal/open), 1 core:\n");
	bench_aead(CRYPTO_ALG_AES256GCM, secs);
	bench_aead(CRYPTO_ALG_XCHACHA20P1305, secs);
	bench_gcm_reused_ctx(secs);
	printf("Public-key wrap of a 32-byte data key (X25519 + BLAKE2b + XChaCha20-Poly1305):\n");
	bench_pk(secs);
	printf("Small operations:\n");
	bench_small(secs);
	printf("Argon2id, p=1, 32-byte output, median wall (CPU) time per hash:\n");
	printf("  %-16s %22s %22s %7s\n", "params", "libsodium", "libargon2", "ratio");
	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		int runs = quick ? 1 : sets[i].runs;
		double sc, ac;
		double s = pwhash_median(CRYPTO_PWHASH_SODIUM, &sets[i].p, runs, &sc);
		double a = pwhash_median(CRYPTO_PWHASH_LIBARGON2, &sets[i].p, runs, &ac);
		char label[32];

		snprintf(label, sizeof(label), "%u MiB, t=%u", sets[i].p.mem_kib / 1024,
		    sets[i].p.passes);
		printf("  %-16s %9.1f ms (%6.1f) %9.1f ms (%6.1f) %6.2fx\n", label, s * 1e3, sc * 1e3,
		    a * 1e3, ac * 1e3, a / s);
	}
	return 0;
}
