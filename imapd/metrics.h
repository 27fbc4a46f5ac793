/* metrics: sealmail-imapd's counters and the Prometheus endpoint.
 *
 * The master maps one shared anonymous region (metrics_init) before it forks any
 * child; every process of the server (login, session, LMTP) inherits the mapping and
 * bumps counters with relaxed atomic adds. Nothing in the region is trusted: a
 * compromised child can at worst garble numbers (the renderer only reads integers,
 * the expunge table is bounded and indexed modulo its size). The imapd-metrics
 * process (metrics_start) serves GET /metrics in the Prometheus text exposition
 * format (version 0.0.4) on metrics_listen; its HTTP parser (metrics_http_*) is
 * incremental, bounded, does no I/O, and is the fuzz entry point (fuzz/fuzz_http.c).
 *
 * Without metrics_init (tests, tools) every counter call is a no-op. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include "vault-config.h"

enum metrics_login {
	ML_OK, ML_BAD_PASSPHRASE, ML_REPLAYED_OTP, ML_UNKNOWN_TOKEN, ML_UNKNOWN_USER,
	ML_WINDOW_CLOSED, ML_USER_LIMIT, ML_ERROR, ML_COUNT
};
enum metrics_result { MR_OK, MR_NO, MR_BAD, MR_COUNT };
enum metrics_lmtp { MLM_DELIVERED, MLM_REFUSED, MLM_TEMPFAIL, MLM_COUNT };

/* Maps the region. 0 or -errno. */
int metrics_init(void);
/* Master: connections by state (set from its table after each event). */
void metrics_set_connections(uint64_t prelogin, uint64_t authenticated);
void metrics_idle(int delta);			/* a client entered (+1) / left (-1) IDLE */
void metrics_login(enum metrics_login r);
/* One tagged response: verb as in the command table ("UID FETCH"), result, duration. */
void metrics_command(const char *verb, enum metrics_result res, uint64_t usec);
void metrics_lmtp_rcpt(enum metrics_lmtp r, unsigned n);
void metrics_lmtp_bytes(uint64_t n);
void metrics_alert(void);
void metrics_rewrap(uint64_t messages);
/* Adds n messages expunged by user_id now; returns the user's total over the last 24 h
 * (hourly buckets). 0 without the region. */
uint64_t metrics_expunged(uint32_t user_id, uint64_t n, time_t now);

/* The label for a login failure class, the audit log's "class" field. */
const char *metrics_login_class(enum metrics_login r);

/* ---- HTTP (the metrics request) ------------------------------------------------
 * Reads one request: request line "GET /metrics HTTP/1.x" (RFC 9112 3), header lines
 * up to the empty line; nothing after it is read (no body: GET has none here). Limits:
 * request line 256 bytes, header line 1024, 64 header lines, 16 KiB in total. */
#define METRICS_HTTP_LINE_MAX 256
#define METRICS_HTTP_HDR_MAX 1024
#define METRICS_HTTP_HDRS_MAX 64
#define METRICS_HTTP_TOTAL_MAX (16 * 1024)

struct metrics_http {
	int state;
	char line[METRICS_HTTP_LINE_MAX + 1];
	size_t linelen;		/* bytes of the current line (request line: stored) */
	size_t total;
	unsigned nhdrs;
	uint8_t first, prev;	/* the current line's first and last bytes */
	int status;		/* when done: 200, 400, 404, 405 */
};
void metrics_http_init(struct metrics_http *h);
/* Feeds bytes. Returns 0: need more; 1: done (h->status says the answer; *used is
 * the bytes of p consumed). Never fails otherwise: a bad request is done with 400. */
int metrics_http_feed(struct metrics_http *h, const uint8_t *p, size_t n, size_t *used);

/* Renders the exposition (text/plain; version=0.0.4) into a malloc'd buffer. map_used
 * / map_size / users / rotations: from the vault (< 0: left out). */
struct metrics_vault {
	int64_t map_used, map_size, users, epochs_rotated, rewrap_pending;
};
int metrics_render(const struct metrics_vault *vs, char **out, size_t *len);

/* Binds metrics_listen (must be a loopback address). 0 or -errno with err. */
int metrics_listener_open(const struct vault_config *cfg, int *fd_out, char *err,
    size_t errlen);
/* Forks imapd-metrics serving fd. 0 or -errno. */
int metrics_start(int listen_fd, const struct vault_config *cfg, pid_t *pid_out);
