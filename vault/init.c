/* init.c: `sealmail-vault init DIR`: a private directory with a commented config,
 * an empty LMDB environment and a self-signed TLS certificate for first use. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "vault-private.h"

#define CERT_DAYS 825

static bool hostname_ok(const char *h)
{
	if (h[0] == '\0')
		return false;
	for (; *h; h++)
		if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') ||
		    (*h >= '0' && *h <= '9') || *h == '-' || *h == '.'))
			return false;
	return true;
}

static void set_err(char *err, size_t errlen, const char *what, int r)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s: %s", what, vault_strerror(r));
}

int vault_init_dir(const char *dir, char *err, size_t errlen)
{
	char abs[PATH_MAX], conf[PATH_MAX + 32], tls[PATH_MAX + 32], cert[PATH_MAX + 64],
	    key[PATH_MAX + 64], data[PATH_MAX + 32];
	struct vault_config cfg;
	struct vault *v = NULL;
	struct stat st;
	int r;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if ((r = crypto_init()) < 0) {
		set_err(err, errlen, "crypto", r);
		return r;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		r = -errno;
		set_err(err, errlen, dir, r);
		return r;
	}
	if (realpath(dir, abs) == NULL) {
		r = -errno;
		set_err(err, errlen, dir, r);
		return r;
	}
	if (snprintf(conf, sizeof(conf), "%s/sealmail.conf", abs) >= (int)sizeof(conf) ||
	    snprintf(tls, sizeof(tls), "%s/tls", abs) >= (int)sizeof(tls) ||
	    snprintf(cert, sizeof(cert), "%s/cert.pem", tls) >= (int)sizeof(cert) ||
	    snprintf(key, sizeof(key), "%s/key.pem", tls) >= (int)sizeof(key) ||
	    snprintf(data, sizeof(data), "%s/data.mdb", abs) >= (int)sizeof(data)) {
		set_err(err, errlen, dir, -ENAMETOOLONG);
		return -ENAMETOOLONG;
	}
	if (stat(conf, &st) == 0 || stat(data, &st) == 0) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s: already holds a sealmail store", abs);
		return -EEXIST;
	}
	if (chmod(abs, 0700) != 0) {
		r = -errno;
		set_err(err, errlen, abs, r);
		return r;
	}
	if (mkdir(tls, 0700) != 0 && errno != EEXIST) {
		r = -errno;
		set_err(err, errlen, tls, r);
		return r;
	}
	vault_config_defaults(&cfg);
	if ((r = crypto_selfsigned_cert(cert, key, hostname_ok(cfg.hostname) ? cfg.hostname :
	    "localhost", CERT_DAYS)) < 0) {
		set_err(err, errlen, "TLS certificate", r);
		return r;
	}
	if ((r = config_write(conf, abs, cert, key, err, errlen)) < 0)
		return r;
	if ((r = vault_config_load(conf, &cfg, err, errlen)) < 0)
		return r;
	if ((r = vault_open(&cfg, &v)) < 0) {
		set_err(err, errlen, abs, r);
		return r;
	}
	vault_close(&v);
	return 0;
}
