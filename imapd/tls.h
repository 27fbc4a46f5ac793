/* tls: the server side of TLS for sealmail-imapd (OpenSSL libssl).
 *
 * Policy (tls_ctx_new): TLS 1.2 and 1.3 only; TLS 1.2 suites ECDHE with AEAD only
 * (AES-GCM, ChaCha20-Poly1305), server cipher preference; no compression, no
 * renegotiation. The context is built in the master (which can read the key while
 * still root) and inherited by each login process over fork.
 *
 * The connection wrappers are non-blocking: they return -EAGAIN and tls_events()
 * says which poll events to wait for before retrying the same call. */
#pragma once
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <openssl/ssl.h>

/* 0, or -EINVAL/-ENOENT/-EACCES with "what failed: OpenSSL's reason" in err. */
int tls_ctx_new(const char *cert_file, const char *key_file, SSL_CTX **out, char *err,
    size_t errlen);
void tls_ctx_free(SSL_CTX **ctx);

struct tls_conn;

/* fd must be non-blocking; the caller keeps owning it. 0 or -ENOMEM. */
int tls_conn_new(SSL_CTX *ctx, int fd, struct tls_conn **out);
void tls_conn_free(struct tls_conn **c);
/* 0 done; -EAGAIN (wait for tls_events); -EPROTO handshake failed (peer spoke
 * something else, or asked for a version/suite we refuse); -ECONNRESET peer gone. */
int tls_handshake(struct tls_conn *c);
/* >0 bytes read; 0 the peer closed (close_notify or TCP EOF); -EAGAIN; -EPROTO/-EIO. */
ssize_t tls_read(struct tls_conn *c, void *buf, size_t n);
/* >0 bytes written (may be partial); -EAGAIN; -EPIPE/-EPROTO. */
ssize_t tls_write(struct tls_conn *c, const void *buf, size_t n);
/* The poll events the last -EAGAIN was waiting for (POLLIN or POLLOUT). */
short tls_events(const struct tls_conn *c);
/* Decrypted bytes already inside OpenSSL (readable without polling). */
bool tls_pending(const struct tls_conn *c);
/* Best effort close_notify; never blocks. */
void tls_close_notify(struct tls_conn *c);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384". */
void tls_info(const struct tls_conn *c, char *out, size_t outsz);
