/* lmtp: sealmail-imapd's LMTP service (RFC 2033), how an MTA (Postfix's
 * lmtp:inet: / lmtp:unix:) hands mail to the vault.
 *
 * Processes: the master binds lmtp_listen (lmtp_listener_open) while it may still be
 * root, drops root, then starts one "imapd-lmtp" process (lmtp_start ->
 * lmtp_run). That process starts one "imapd-lmtp-save" process (the committer,
 * lmtp_committer_run), accepts, and forks one "imapd-lmtp-conn" process per
 * connection (lmtp_serve_conn). None of them holds a user key: delivery seals to
 * the user's epoch public key.
 *
 * Group commit: a connection process parses, looks recipients up and seals each
 * message as it streams in (its own read-only use of the vault). At the end of the
 * data it hands each finished delivery (vault_delivery_export: the ciphertext as an
 * fd, plus its metadata and data key) to the committer over a SOCK_SEQPACKET pair
 * (proto.h: DELIVERY / RESULT) and waits. The committer puts every delivery queued
 * at that moment, from all connections, into ONE LMDB write transaction with one
 * durable commit (vault_delivery_commit_group), then answers each; only then does
 * the connection send its 250s. LMDB has a single writer, so one commit per
 * message would serialize all connections on fsync; this way N connections share
 * one. A crash anywhere loses only what was not yet acknowledged.
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
#define LMTP_PROC_NAME_COMMIT "imapd-lmtp-save"	/* the committer (15 chars: comm) */
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
/* How the session commits a transaction's finished deliveries: ds[0..n) are all
 * consumed; errs[i]/uids[i] as vault_delivery_commit_group. The default commits
 * them in the session's own vault (vault_delivery_commit_group); a connection
 * process hands them to the committer. fn NULL: back to the default. */
typedef void (*lmtp_commit_fn)(void *arg, struct vault_delivery **ds, size_t n,
    uint32_t *uids, int *errs);
void lmtp_session_set_commit(struct lmtp_session *s, lmtp_commit_fn fn, void *arg);
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
/* For --check-config: validates cfg->lmtp_listen as lmtp_listener_open would
 * (syntax, port, address resolves; for a path: options, user/group exist, the
 * directory exists, no non-socket file in the way) without binding. An empty
 * lmtp_listen is valid (no LMTP). 0 or -errno with a message in err. */
int lmtp_listen_check(const struct vault_config *cfg, char *err, size_t errlen);
/* Forks the LMTP process (after the privilege drop); the caller keeps listen_fd open
 * only if it wants to restart the process later. 0 with *pid_out, or -errno. */
int lmtp_start(int listen_fd, const struct vault_config *cfg, pid_t *pid_out);
/* The LMTP process body: accepts on listen_fd and forks a connection process for
 * each connection (at most cfg->max_connections at once). Returns only on error
 * or SIGTERM (exit status). */
int lmtp_run(int listen_fd, const struct vault_config *cfg);
/* Serves one connection on fd (blocking I/O with LMTP_TIMEOUT_SECS), with a vault
 * opened here. peer as for lmtp_session_new. commit_fd: the socket to the
 * committer (taken; closed at the end), or -1 to commit in this process.
 * Returns 0 or -errno. */
int lmtp_serve_conn(int fd, const struct vault_config *cfg, const char *peer, int commit_fd);

/* ---- the committer ----------------------------------------------------------------- */
/* One delivery handed over: wire and fd as from vault_delivery_export; err/uid are
 * the result. conn: the caller's tag. */
struct lmtp_commit_req {
	uint8_t wire[VAULT_DELIVERY_WIRE_BYTES];
	int fd;
	size_t conn;
	int err;
	uint32_t uid;
};
/* Imports every request (taking its fd; a malformed one gets -EPROTO alone), commits
 * them as one group, fills err/uid, wipes wire. The committer's whole job per batch;
 * also what the fuzzer drives. */
void lmtp_commit_batch(struct vault *v, struct lmtp_commit_req *reqs, size_t n);
/* The committer process body: ctl_fd receives the connections' sockets (LMTP_CONN);
 * each connection sends DELIVERY messages and gets one RESULT per delivery after the
 * durable commit. Returns its exit status when ctl_fd closes. */
int lmtp_committer_run(int ctl_fd, const struct vault_config *cfg);
