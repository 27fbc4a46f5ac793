/* Self-signed ECDSA P-256 certificate for `sealmail-vault init` (OpenSSL 3). */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "sodium-min.h"
#include "crypto.h"
#include "crypto-private.h"
#include "log.h"
#include "compat.h"

#define HOSTNAME_MAX 253
#define CN_MAX 64	/* X.520 ub-common-name */

static int hostname_ok(const char *h)
{
	size_t n = strnlen(h, HOSTNAME_MAX + 1);

	if (n == 0 || n > HOSTNAME_MAX || h[0] == '.' || h[0] == '-')
		return 0;
	/* Letters, digits, '-', '.': nothing that could smuggle another SAN entry. */
	for (size_t i = 0; i < n; i++) {
		char c = h[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.'))
			return 0;
	}
	return 1;
}

static int add_ext(X509 *x, int nid, const char *value, X509V3_CTX *ctx)
{
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	int ok;

	if (e == NULL)
		return 0;
	ok = X509_add_ext(x, e, -1) == 1;
	X509_EXTENSION_free(e);
	return ok;
}

static int add_dns(GENERAL_NAMES *gens, const char *name)
{
	GENERAL_NAME *g = GENERAL_NAME_new();
	ASN1_IA5STRING *s = ASN1_IA5STRING_new();

	if (g == NULL || s == NULL || ASN1_STRING_set(s, name, (int)strlen(name)) != 1) {
		GENERAL_NAME_free(g);
		ASN1_IA5STRING_free(s);
		return 0;
	}
	GENERAL_NAME_set0_value(g, GEN_DNS, s);
	if (sk_GENERAL_NAME_push(gens, g) <= 0) {
		GENERAL_NAME_free(g);
		return 0;
	}
	return 1;
}

static int add_ip(GENERAL_NAMES *gens, const char *ip)
{
	GENERAL_NAME *g = GENERAL_NAME_new();
	ASN1_OCTET_STRING *s = a2i_IPADDRESS(ip);

	if (g == NULL || s == NULL) {
		GENERAL_NAME_free(g);
		ASN1_OCTET_STRING_free(s);
		return 0;
	}
	GENERAL_NAME_set0_value(g, GEN_IPADD, s);
	if (sk_GENERAL_NAME_push(gens, g) <= 0) {
		GENERAL_NAME_free(g);
		return 0;
	}
	return 1;
}

static int add_san(X509 *x, const char *hostname)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	int ok;

	ok = gens != NULL && add_dns(gens, hostname) &&
	    (strcmp(hostname, "localhost") == 0 || add_dns(gens, "localhost")) &&
	    add_ip(gens, "127.0.0.1") &&
	    X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1;
	GENERAL_NAMES_free(gens);
	return ok;
}

static X509 *build_cert(EVP_PKEY *pkey, const char *hostname, unsigned days)
{
	X509 *x = X509_new();
	X509_NAME *name = NULL;
	ASN1_INTEGER *serial = NULL;
	BIGNUM *bn = NULL;
	X509V3_CTX ctx;
	uint8_t rnd[16];
	const char *cn = strlen(hostname) <= CN_MAX ? hostname : "sealmail";
	int ok = 0;

	if (x == NULL)
		return NULL;
	randombytes_buf(rnd, sizeof(rnd));
	rnd[0] &= 0x7f;		/* RFC 5280 4.1.2.2: positive, at most 20 octets */
	rnd[0] |= 0x01;		/* and non-zero */
	if (X509_set_version(x, X509_VERSION_3) != 1 ||
	    (bn = BN_bin2bn(rnd, sizeof(rnd), NULL)) == NULL ||
	    (serial = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
	    X509_set_serialNumber(x, serial) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -300) == NULL ||	/* clock skew */
	    X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL) == NULL ||
	    X509_set_pubkey(x, pkey) != 1 ||
	    (name = X509_NAME_new()) == NULL ||
	    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
		(const unsigned char *)"sealmail", -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
		(const unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_set_subject_name(x, name) != 1 ||
	    X509_set_issuer_name(x, name) != 1)
		goto out;
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if (!add_ext(x, NID_basic_constraints, "critical,CA:FALSE", &ctx) ||
	    !add_ext(x, NID_key_usage, "critical,digitalSignature", &ctx) ||
	    !add_ext(x, NID_ext_key_usage, "serverAuth", &ctx) ||
	    !add_ext(x, NID_subject_key_identifier, "hash", &ctx) ||
	    !add_san(x, hostname))
		goto out;
	if (X509_sign(x, pkey, EVP_sha256()) <= 0)
		goto out;
	ok = 1;
out:
	X509_NAME_free(name);
	ASN1_INTEGER_free(serial);
	BN_free(bn);
	if (!ok) {
		X509_free(x);
		x = NULL;
	}
	return x;
}

static int write_all_fd(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Create path (which must not exist) with mode, write the BIO's bytes, fsync. */
static int write_new_file(const char *path, mode_t mode, BIO *mem)
{
	char *data = NULL;
	long n = BIO_get_mem_data(mem, &data);
	int fd, r;

	if (n <= 0 || data == NULL)
		return -EIO;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	if ((r = write_all_fd(fd, data, (size_t)n)) == 0 && fsync(fd) != 0)
		r = -errno;
	if (close(fd) != 0 && r == 0)
		r = -errno;
	if (r < 0)
		unlink(path);
	return r;
}

int crypto_selfsigned_cert(const char *cert_path, const char *key_path, const char *hostname,
    unsigned days)
{
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;
	BIO *kbio = NULL, *cbio = NULL;
	int r;

	if (cert_path == NULL || key_path == NULL || hostname == NULL || !hostname_ok(hostname) ||
	    days == 0 || days > CRYPTO_CERT_MAX_DAYS)
		return -EINVAL;
	if ((r = crypto_ensure_init()) < 0)
		return r;
	if (access(key_path, F_OK) == 0 || access(cert_path, F_OK) == 0)
		return -EEXIST;
	r = -EIO;
	if ((pkey = EVP_EC_gen("P-256")) == NULL || (x = build_cert(pkey, hostname, days)) == NULL)
		goto out;
	/* The PEM private key goes through a secure-memory BIO, cleansed on free,
	 * rather than a stdio buffer that would be freed without wiping. */
	if ((kbio = BIO_new(BIO_s_secmem())) == NULL || (cbio = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_PrivateKey(kbio, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
	    PEM_write_bio_X509(cbio, x) != 1)
		goto out;
	if ((r = write_new_file(key_path, 0600, kbio)) < 0)
		goto out;
	if ((r = write_new_file(cert_path, 0644, cbio)) < 0) {
		unlink(key_path);
		goto out;
	}
	r = 0;
out:
	if (r == -EIO) {
		unsigned long e = ERR_peek_last_error();
		char buf[256];

		ERR_error_string_n(e, buf, sizeof(buf));
		log_err("self-signed certificate: OpenSSL: %s", e != 0 ? buf : "failed");
	}
	ERR_clear_error();
	BIO_free(kbio);
	BIO_free(cbio);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return r;
}
