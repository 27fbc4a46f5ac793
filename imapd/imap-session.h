/* The authenticated side of IMAP, inside one user's session process.
 *
 * A session process holds exactly one user's unlocked keys (struct vault_keys) and
 * serves all of that user's connections, so they see each other's changes at once.
 * Each connection arrives as a file descriptor carrying the clear IMAP byte stream:
 * a socketpair whose other end is the login process that keeps the TLS state and
 * relays (or a plain socket on loopback). The session process's event loop (in
 * imapd/session-proc.c) polls these fds and calls the functions below; the command
 * engine behind them (imapd/imap-engine*.c) implements every authenticated-state
 * and selected-state command of RFC 3501 / RFC 9051 and the extensions.
 *
 * Ownership: imap_user owns the vault handle and the keys it was given. A client is
 * owned by the caller of imap_client_new until imap_client_free. */
#pragma once
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "vault.h"

struct imap_user;
struct imap_client;

/* Takes ownership of v and k. cfg must outlive the user. */
int imap_user_new(struct vault *v, struct vault_keys *k, const struct vault_config *cfg,
    struct imap_user **out);
void imap_user_free(struct imap_user **u);
struct vault_keys *imap_user_keys(struct imap_user *u);
size_t imap_user_nclients(const struct imap_user *u);
/* Polls the vault's change counter for this user (deliveries by other processes,
 * rotations) and queues untagged EXISTS/EXPUNGE/VANISHED/FETCH FLAGS updates to every
 * client, immediately to those in IDLE, else at their next command (RFC 9051 7).
 * Call every <= 250 ms and after any event. Returns 0 or -errno. */
int imap_user_tick(struct imap_user *u, time_t now);

struct imap_client_params {
	int fd;			/* clear stream; the client takes ownership */
	const char *login_tag;	/* answered "TAG OK [CAPABILITY ...] Logged in" */
	bool tls;		/* underlying transport is TLS */
	const char *peer;	/* "addr:port", for logs and the audit log */
	const char *tls_info;	/* "TLSv1.3 TLS_AES_256_GCM_SHA384" or "" */
	const uint8_t *pending;	/* bytes the client pipelined after LOGIN, already read */
	size_t npending;
	const char *session_id;	/* audit session id from the login process; NULL: new */
	const char *user;	/* for the audit log; NULL: none */
};
int imap_client_new(struct imap_user *u, const struct imap_client_params *p,
    struct imap_client **out);
/* Event loop glue: the fd to poll and the events wanted now (POLLIN, plus POLLOUT
 * while output is queued). */
int imap_client_fd(const struct imap_client *c);
short imap_client_events(const struct imap_client *c);
/* Handles readiness. 0: keep; 1: the connection ended (LOGOUT, EOF, fatal error,
 * idle timeout): the caller frees it. Never blocks for long: output is queued and
 * flushed as the fd becomes writable; commands are processed one at a time. */
int imap_client_handle(struct imap_client *c, short revents, time_t now);
/* Seconds until this client needs a call even without fd activity (timeouts, IDLE
 * keepalive), or -1 for none. */
int imap_client_timeout(const struct imap_client *c, time_t now);
void imap_client_free(struct imap_client **c);

/* The CAPABILITY list for a state, space separated, without "CAPABILITY". Before
 * authentication: IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ID ENABLE IDLE STARTTLS (when
 * not yet TLS and TLS is configured), then AUTH=PLAIN where login is allowed on this
 * transport, else LOGINDISABLED alone (RFC 9051 6.2.3); after: the full extension
 * list. */
int imap_capability_string(bool authenticated, bool tls, bool starttls_available,
    bool login_allowed, char *out, size_t outlen);
