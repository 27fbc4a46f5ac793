/* Physical limits of this machine for the benchmark table, measured in the same run:
 * one Argon2id hash at the configured parameters (libsodium, as sealmail's login), AEAD
 * decryption of a 20 KiB message (OpenSSL EVP AES-256-GCM and libsodium
 * XChaCha20-Poly1305), one crypto_box_seal_open of a 32-byte data key, and one
 * write + fdatasync of 4 KiB in a directory (the data directory's file system).
 *
 * Usage: limits ARGON2_KIB ARGON2_PASSES DIR
 * Prints one JSON object. Built by bench/run.sh with `cc ... -lsodium -lcrypto`; not
 * part of sealmail (bench/ is outside the product). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>
#include <openssl/evp.h>

#define MSG (20 * 1024)

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return v[n / 2];
}

/* Per-operation CPU seconds: CPU time is what a busy shared machine does not inflate. */
static double aes_gcm_open(unsigned char *ct, unsigned char *tag, unsigned char *key,
    unsigned char *iv, unsigned char *pt, int reps)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	double t0 = cpu();
	int len, i;

	for (i = 0; i < reps; i++) {
		EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, iv);
		EVP_DecryptUpdate(c, pt, &len, ct, MSG);
		EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag);
		if (EVP_DecryptFinal_ex(c, pt + len, &len) <= 0) {
			fprintf(stderr, "limits: gcm open failed\n");
			exit(1);
		}
	}
	EVP_CIPHER_CTX_free(c);
	return (cpu() - t0) / reps;
}

int main(int argc, char **argv)
{
	static unsigned char pt[MSG], ct[MSG + 64], tag[16], key[32], iv[12];
	unsigned char nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	unsigned char pk[crypto_box_PUBLICKEYBYTES], sk[crypto_box_SECRETKEYBYTES];
	unsigned char sealed[32 + crypto_box_SEALBYTES], dk[32], out[32], hash[32];
	unsigned long long clen;
	double v[16], w[16], t0, c0, gcm, xch, seal_open;
	unsigned long long kib, passes;
	int i, len, reps, fd;
	char path[4096];
	EVP_CIPHER_CTX *c;

	if (argc != 4) {
		fprintf(stderr, "usage: limits ARGON2_KIB ARGON2_PASSES DIR\n");
		return 2;
	}
	kib = strtoull(argv[1], NULL, 10);
	passes = strtoull(argv[2], NULL, 10);
	if (sodium_init() < 0)
		return 1;
	randombytes_buf(pt, sizeof(pt));
	randombytes_buf(key, sizeof(key));
	randombytes_buf(iv, sizeof(iv));

	/* AES-256-GCM (OpenSSL EVP), a new key schedule per message as a server would */
	c = EVP_CIPHER_CTX_new();
	EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, iv);
	EVP_EncryptUpdate(c, ct, &len, pt, MSG);
	EVP_EncryptFinal_ex(c, ct + len, &len);
	EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag);
	EVP_CIPHER_CTX_free(c);
	reps = 2000;
	for (i = 0; i < 5; i++)
		v[i] = aes_gcm_open(ct, tag, key, iv, pt, reps);
	gcm = median(v, 5);

	/* XChaCha20-Poly1305 (libsodium) */
	randombytes_buf(nonce, sizeof(nonce));
	crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &clen, pt, MSG, NULL, 0, NULL, nonce, key);
	for (i = 0; i < 5; i++) {
		int k;

		t0 = cpu();
		for (k = 0; k < 500; k++)
			if (crypto_aead_xchacha20poly1305_ietf_decrypt(pt, NULL, NULL, ct, clen, NULL,
			    0, nonce, key) != 0)
				return 1;
		v[i] = (cpu() - t0) / 500;
	}
	xch = median(v, 5);

	/* crypto_box_seal_open of a 32-byte data key */
	crypto_box_keypair(pk, sk);
	randombytes_buf(dk, sizeof(dk));
	crypto_box_seal(sealed, dk, sizeof(dk), pk);
	for (i = 0; i < 5; i++) {
		int k;

		t0 = cpu();
		for (k = 0; k < 200; k++)
			if (crypto_box_seal_open(out, sealed, sizeof(sealed), pk, sk) != 0)
				return 1;
		v[i] = (cpu() - t0) / 200;
	}
	seal_open = median(v, 5);

	/* Argon2id at the configured parameters: 3 runs, wall and CPU */
	for (i = 0; i < 3; i++) {
		t0 = now();
		c0 = cpu();
		if (crypto_pwhash(hash, sizeof(hash), "benchmark passphrase", 20, key,
		    passes, (size_t)kib * 1024, crypto_pwhash_ALG_ARGON2ID13) != 0) {
			fprintf(stderr, "limits: argon2id out of memory\n");
			return 1;
		}
		v[i] = now() - t0;
		w[i] = cpu() - c0;
	}
	double a_wall = median(v, 3), a_cpu = median(w, 3);

	/* one 4 KiB write + fdatasync (LMDB syncs twice per durable commit) */
	snprintf(path, sizeof(path), "%s/.bench-fsync-probe", argv[3]);
	fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	if (fd < 0) {
		perror(path);
		return 1;
	}
	for (i = 0; i < 15; i++) {
		if (pwrite(fd, pt, 4096, (off_t)(i % 4) * 4096) != 4096)
			return 1;
		t0 = now();
		if (fdatasync(fd) != 0)
			return 1;
		v[i] = now() - t0;
	}
	close(fd);
	unlink(path);
	double fs = median(v, 15);

	printf("{\"aes256gcm_20k_open_us\": %.2f, \"aes256gcm_MBps\": %.0f, "
	    "\"xchacha_20k_open_us\": %.2f, \"xchacha_MBps\": %.0f, "
	    "\"box_seal_open_us\": %.1f, \"argon2id_ms\": %.1f, \"argon2id_cpu_ms\": %.1f, "
	    "\"argon2id_kib\": %llu, \"argon2id_passes\": %llu, \"fsync_ms\": %.3f}\n",
	    gcm * 1e6, MSG / gcm / 1e6, xch * 1e6, MSG / xch / 1e6, seal_open * 1e6,
	    a_wall * 1e3, a_cpu * 1e3, kib, passes, fs * 1e3);
	return 0;
}
