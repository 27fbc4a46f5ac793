/* Process setup: libsodium, the cached OpenSSL cipher, CPU detection, hardening. */
#include <errno.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <openssl/err.h>
#include "sodium-min.h"
#include "crypto.h"
#include "crypto-private.h"
#include "log.h"
#include "compat.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_result = -EIO;
static EVP_CIPHER *aes_gcm;	/* fetched once: an implicit fetch per call costs a lookup */
static bool have_aesni;

static void init_body(void)
{
	if (sodium_init() < 0) {
		init_result = -EIO;
		return;
	}
	if ((aes_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL)) == NULL) {
		ERR_clear_error();
		init_result = -EIO;
		return;
	}
	/* AES-GCM is only safe and fast with hardware AES (no table lookups that
	 * leak the key through the cache) and carry-less multiply for GHASH. */
	have_aesni = sodium_runtime_has_aesni() && sodium_runtime_has_pclmul();
	init_result = 0;
}

int crypto_ensure_init(void)
{
	if (pthread_once(&init_once, init_body) != 0)
		return -EIO;
	return init_result;
}

int crypto_init(void)
{
	return crypto_ensure_init();
}

EVP_CIPHER *crypto_aes256gcm_cipher(void)
{
	return crypto_ensure_init() == 0 ? aes_gcm : NULL;
}

int crypto_harden_process(void)
{
	struct rlimit rl = { 0, 0 };

	if (setrlimit(RLIMIT_CORE, &rl) != 0)
		return -errno;
	/* Also blocks ptrace attach by same-uid processes and /proc/PID/mem reads. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		return -errno;
	return 0;
}

enum crypto_alg crypto_default_alg(void)
{
	const char *force = getenv("SEALMAIL_FORCE_ALG");

	if (force != NULL) {
		if (strcmp(force, "xchacha") == 0)
			return CRYPTO_ALG_XCHACHA20P1305;
		if (strcmp(force, "aesgcm") == 0)
			return CRYPTO_ALG_AES256GCM;
	}
	if (crypto_ensure_init() == 0 && have_aesni)
		return CRYPTO_ALG_AES256GCM;
	return CRYPTO_ALG_XCHACHA20P1305;
}

const char *crypto_alg_name(enum crypto_alg alg)
{
	switch (alg) {
	case CRYPTO_ALG_AES256GCM:
		return "AES-256-GCM";
	case CRYPTO_ALG_XCHACHA20P1305:
		return "XChaCha20-Poly1305";
	}
	return "unknown";
}

size_t crypto_alg_nonce_bytes(enum crypto_alg alg)
{
	switch (alg) {
	case CRYPTO_ALG_AES256GCM:
		return 12;
	case CRYPTO_ALG_XCHACHA20P1305:
		return crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
	}
	return 0;
}
