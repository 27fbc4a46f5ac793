/* lmtp: sealmail-imapd's LMTP service (RFC 2033), how an MTA (Postfix's
 * lmtp:inet: / lmtp:unix:) hands mail to the vault.
 *
 * Processes: the master binds lmtp_listen (lmtp_listener_open) while it may still be
 * root, drops root, then starts one "imapd-lmtp" process (lmtp_start ->
 * lmtp_run). That process accepts and forks one "imapd-lmtp-conn" process per
 * connection (lmtp_serve_conn). None of them holds a user key: delivery seals to
 * the user's epoch public key. Each connection process opens its own vault handle.
 *
 * The conversation itself (struct lmtp_session) does no socket I/O: bytes in,
 * replies out. That is what the fuzzer drives. Message bytes are sealed as they
 * arrive (one vault delivery per accepted recipient); plaintext is never buffered
 * beyond the vault's chunk buffer and never written to disk. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "vault.h"
#include "vault-config.h"

#define LMTP_PROC_NAME "imapd-lmtp"
#define LMTP_PROC_NAME_CONN "imapd-lmtp-conn"
#define LMTP_MAX_RCPTS 100		/* RFC 5321 4.5.3.1.8: at least 100 */
#define LMTP_TIMEOUT_SECS 300		/* RFC 5321 4.5.3.2.7: server timeout 5 min */
#define LMTP_MAX_ERRORS 20		/* bad commands in a row before 421 */

/* ---- the conversation (no I/O) ------------------------------------------------- */
struct lmtp_session;

/* v: an open vault (borrowed, must outlive the session). peer: for the Received
 * header ("[192.0.2.1]", "local"). The greeting is queued in the output at once. */
int lmtp_session_new(struct vault *v, const struct vault_config *cfg, const char *peer,
    struct lmtp_session **out);
/* Aborts every open delivery (nothing stored), frees. Accepts NULL. */
void lmtp_session_free(struct lmtp_session **s);
/* Consumes input; replies are queued in the output. Stops early (*used_out < len)
 * when the queued output passes 64 KiB: drain it and call again with the rest.
 * Returns 0 to go on, 1 when the session is over (QUIT, too many errors: flush the
 * output, then close), or -errno (fatal; close). */
int lmtp_session_input(struct lmtp_session *s, const uint8_t *in, size_t len,
    size_t *used_out);
/* Queued output: pointer and length; lmtp_session_output_done(n) after n bytes were
 * sent. */
void lmtp_session_output(const struct lmtp_session *s, const uint8_t **p_out, size_t *n_out);
void lmtp_session_output_done(struct lmtp_session *s, size_t n);
/* The peer went away or timed out: aborts every open delivery (nothing stored). */
void lmtp_session_eof(struct lmtp_session *s);

/* ---- processes ----------------------------------------------------------------- */
/* Opens cfg->lmtp_listen: "host:port" / "[v6]:port" (TCP), or an absolute path (a
 * UNIX socket; a stale socket file is removed first). A path may be followed by
 * blank-separated options: mode=0660 (default 0666), user=NAME, group=NAME (owner of
 * the socket file, set while still root). Non-blocking, close-on-exec.
 * 0 or -errno, with a message in err. */
int lmtp_listener_open(const struct vault_config *cfg, int *fd_out, char *err, size_t errlen);
/* Forks the LMTP process (after the privilege drop); the caller keeps listen_fd open
 * only if it wants to restart the process later. 0 with *pid_out, or -errno. */
int lmtp_start(int listen_fd, const struct vault_config *cfg, pid_t *pid_out);
/* The LMTP process body: accepts on listen_fd and forks a connection process for
 * each connection (at most cfg->max_connections at once). Returns only on error
 * or SIGTERM (exit status). */
int lmtp_run(int listen_fd, const struct vault_config *cfg);
/* Serves one connection on fd (blocking I/O with LMTP_TIMEOUT_SECS), with a vault
 * opened here. peer as for lmtp_session_new. Returns 0 or -errno. */
int lmtp_serve_conn(int fd, const struct vault_config *cfg, const char *peer);
