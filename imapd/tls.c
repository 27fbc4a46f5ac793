/* tls: OpenSSL server context and non-blocking connection wrappers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include "tls.h"
#include "compat.h"

struct tls_conn {
	SSL *ssl;
	short want;	/* POLLIN / POLLOUT after -EAGAIN */
};

/* TLS 1.2: forward secrecy (ECDHE) and AEAD only, strongest first. TLS 1.3 suites
 * are all AEAD with (EC)DHE; OpenSSL's default list is kept but ordered. */
static const char tls12_ciphers[] =
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";
static const char tls13_suites[] =
    "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256";

static void ssl_err(char *err, size_t errlen, const char *what, const char *file)
{
	unsigned long e = ERR_get_error();
	char reason[256] = "unknown error";

	if (e != 0)
		ERR_error_string_n(e, reason, sizeof(reason));
	if (file)
		snprintf(err, errlen, "%s %s: %s", what, file, reason);
	else
		snprintf(err, errlen, "%s: %s", what, reason);
	ERR_clear_error();
}

int tls_ctx_new(const char *cert_file, const char *key_file, SSL_CTX **out, char *err,
    size_t errlen)
{
	SSL_CTX *ctx = NULL;
	FILE *f;
	int r = -EINVAL;

	*out = NULL;
	/* Open the files ourselves first for a clear errno-based message. */
	if ((f = fopen(cert_file, "r")) == NULL) {
		r = -errno;
		snprintf(err, errlen, "cannot read TLS certificate %s: %s", cert_file,
		    strerror(errno));
		goto out;
	}
	fclose(f);
	if ((f = fopen(key_file, "r")) == NULL) {
		r = -errno;
		snprintf(err, errlen, "cannot read TLS key %s: %s", key_file, strerror(errno));
		goto out;
	}
	fclose(f);
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		ssl_err(err, errlen, "SSL_CTX_new", NULL);
		r = -ENOMEM;
		goto out;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)) {
		ssl_err(err, errlen, "TLS version range", NULL);
		goto out;
	}
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_SINGLE_ECDH_USE | SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
#ifdef SSL_OP_CLEANSE_PLAINTEXT
	/* Records are decrypted in place into OpenSSL's read buffer, which
	 * RELEASE_BUFFERS frees as it is (and which otherwise keeps the last record):
	 * a LOGIN's passphrase would stay in the heap. Cleansed once read (OpenSSL 3). */
	SSL_CTX_set_options(ctx, SSL_OP_CLEANSE_PLAINTEXT);
#endif
	/* Each connection is its own process: a server-side session cache would be
	 * per process and useless; stateless tickets (keys inherited over fork) work. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (!SSL_CTX_set_cipher_list(ctx, tls12_ciphers) ||
	    !SSL_CTX_set_ciphersuites(ctx, tls13_suites)) {
		ssl_err(err, errlen, "cipher policy", NULL);
		goto out;
	}
	if (!SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384")) {
		ssl_err(err, errlen, "key exchange groups", NULL);
		goto out;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		ssl_err(err, errlen, "cannot load TLS certificate", cert_file);
		goto out;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		ssl_err(err, errlen, "cannot load TLS key", key_file);
		goto out;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ssl_err(err, errlen, "TLS key does not match the certificate", key_file);
		goto out;
	}
	*out = ctx;
	ctx = NULL;
	r = 0;
out:
	SSL_CTX_free(ctx);
	return r;
}

void tls_ctx_free(SSL_CTX **ctx)
{
	if (ctx == NULL || *ctx == NULL)
		return;
	SSL_CTX_free(*ctx);
	*ctx = NULL;
}

int tls_conn_new(SSL_CTX *ctx, int fd, struct tls_conn **out)
{
	struct tls_conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -ENOMEM;
	if ((c->ssl = SSL_new(ctx)) == NULL || SSL_set_fd(c->ssl, fd) != 1) {
		SSL_free(c->ssl);
		free(c);
		ERR_clear_error();
		return -ENOMEM;
	}
	SSL_set_accept_state(c->ssl);
	c->want = POLLIN;
	*out = c;
	return 0;
}

void tls_conn_free(struct tls_conn **c)
{
	if (c == NULL || *c == NULL)
		return;
	SSL_free((*c)->ssl);
	free(*c);
	*c = NULL;
}

/* Maps an SSL_get_error result; sets want on -EAGAIN. */
static int map_err(struct tls_conn *c, int ret)
{
	int e = SSL_get_error(c->ssl, ret);

	switch (e) {
	case SSL_ERROR_WANT_READ:
		c->want = POLLIN;
		return -EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		c->want = POLLOUT;
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			c->want = POLLIN;
			return -EAGAIN;
		}
		return errno == 0 ? -ECONNRESET : -errno;
	default:
		ERR_clear_error();
		return -EPROTO;
	}
}

int tls_handshake(struct tls_conn *c)
{
	int ret;

	ERR_clear_error();
	errno = 0;
	ret = SSL_do_handshake(c->ssl);
	if (ret == 1)
		return 0;
	ret = map_err(c, ret);
	return ret == 0 ? -ECONNRESET : ret;
}

ssize_t tls_read(struct tls_conn *c, void *buf, size_t n)
{
	size_t got = 0;
	int ret;

	ERR_clear_error();
	errno = 0;
	ret = SSL_read_ex(c->ssl, buf, n, &got);
	if (ret == 1)
		return (ssize_t)got;
	ret = map_err(c, 0);
	/* A TCP EOF without close_notify: treat as a plain close (mail clients do it). */
	if (ret == -ECONNRESET)
		return 0;
	return ret;
}

ssize_t tls_write(struct tls_conn *c, const void *buf, size_t n)
{
	size_t put = 0;
	int ret;

	ERR_clear_error();
	errno = 0;
	ret = SSL_write_ex(c->ssl, buf, n, &put);
	if (ret == 1)
		return (ssize_t)put;
	ret = map_err(c, 0);
	return ret == 0 ? -EPIPE : ret;
}

short tls_events(const struct tls_conn *c)
{
	return c->want;
}

bool tls_pending(const struct tls_conn *c)
{
	return SSL_pending(c->ssl) > 0;
}

void tls_close_notify(struct tls_conn *c)
{
	if (c == NULL)
		return;
	ERR_clear_error();
	(void)SSL_shutdown(c->ssl);
	ERR_clear_error();
}

void tls_info(const struct tls_conn *c, char *out, size_t outsz)
{
	const SSL_CIPHER *ci = SSL_get_current_cipher(c->ssl);

	snprintf(out, outsz, "%s %s", SSL_get_version(c->ssl),
	    ci ? SSL_CIPHER_get_name(ci) : "none");
}
