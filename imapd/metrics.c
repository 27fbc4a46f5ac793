/* metrics: shared counters, the Prometheus text renderer, the metrics HTTP parser and
 * the imapd-metrics process (metrics.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "log.h"
#include "metrics.h"
#include "vault.h"
#include "compat.h"

#define PROC_NAME_METRICS "imapd-metrics"

static const char *const verbs[] = {
	"CAPABILITY", "NOOP", "LOGOUT", "ENABLE", "ID", "NAMESPACE", "COMPRESS", "IDLE",
	"SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE",
	"LIST", "LSUB", "STATUS", "APPEND", "CHECK", "CLOSE", "UNSELECT", "EXPUNGE",
	"UID EXPUNGE", "SEARCH", "UID SEARCH", "FETCH", "UID FETCH", "STORE", "UID STORE",
	"COPY", "UID COPY", "MOVE", "UID MOVE", "LOGIN", "AUTHENTICATE", "STARTTLS", "OTHER",
};
#define NVERB (sizeof(verbs) / sizeof(verbs[0]))
/* Latency bucket upper bounds in microseconds (the last bucket is +Inf). */
static const uint64_t bucket_us[] = {
	1000, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
	5000000, 10000000,
};
#define NBUCKET (sizeof(bucket_us) / sizeof(bucket_us[0]) + 1)
static const char *const login_names[ML_COUNT] = {
	[ML_OK] = "ok", [ML_BAD_PASSPHRASE] = "bad_passphrase",
	[ML_REPLAYED_OTP] = "replayed_otp", [ML_UNKNOWN_TOKEN] = "unknown_token",
	[ML_UNKNOWN_USER] = "unknown_user", [ML_WINDOW_CLOSED] = "window_closed",
	[ML_USER_LIMIT] = "user_limit", [ML_ERROR] = "internal_error",
};
static const char *const result_names[MR_COUNT] = { "OK", "NO", "BAD" };
static const char *const lmtp_names[MLM_COUNT] = { "delivered", "refused", "tempfail" };

#define EXP_SLOTS 4096
#define EXP_HOURS 24
struct exp_slot {
	uint32_t user_id;			/* 0: free */
	uint32_t hour[EXP_HOURS];		/* the hour (unix / 3600) each bucket counts */
	uint32_t count[EXP_HOURS];
};

struct metrics_shm {
	uint64_t conn_prelogin, conn_auth;
	int64_t conn_idle;
	uint64_t logins[ML_COUNT];
	uint64_t cmds[NVERB][MR_COUNT];
	uint64_t hist[NVERB][NBUCKET];
	uint64_t sum_us[NVERB];
	uint64_t lmtp[MLM_COUNT];
	uint64_t lmtp_bytes;
	uint64_t alerts;
	uint64_t rewrapped;
	struct exp_slot exp[EXP_SLOTS];
};

static struct metrics_shm *SHM;

#define ADD(field, n) __atomic_fetch_add(&(field), (n), __ATOMIC_RELAXED)
#define LOAD(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

int metrics_init(void)
{
	void *p;

	if (SHM != NULL)
		return 0;
	p = mmap(NULL, sizeof(*SHM), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	SHM = p;
	return 0;
}

void metrics_set_connections(uint64_t prelogin, uint64_t authenticated)
{
	if (SHM == NULL)
		return;
	__atomic_store_n(&SHM->conn_prelogin, prelogin, __ATOMIC_RELAXED);
	__atomic_store_n(&SHM->conn_auth, authenticated, __ATOMIC_RELAXED);
}

void metrics_idle(int delta)
{
	if (SHM != NULL)
		ADD(SHM->conn_idle, (int64_t)delta);
}

void metrics_login(enum metrics_login r)
{
	if (SHM != NULL && (unsigned)r < ML_COUNT)
		ADD(SHM->logins[r], 1);
}

const char *metrics_login_class(enum metrics_login r)
{
	return (unsigned)r < ML_COUNT ? login_names[r] : "internal_error";
}

void metrics_command(const char *verb, enum metrics_result res, uint64_t usec)
{
	size_t v = NVERB - 1, b = 0;

	if (SHM == NULL || (unsigned)res >= MR_COUNT)
		return;
	for (size_t i = 0; verb != NULL && i < NVERB - 1; i++)
		if (strcmp(verbs[i], verb) == 0) {
			v = i;
			break;
		}
	while (b < NBUCKET - 1 && usec > bucket_us[b])
		b++;
	ADD(SHM->cmds[v][res], 1);
	ADD(SHM->hist[v][b], 1);
	ADD(SHM->sum_us[v], usec);
}

void metrics_lmtp_rcpt(enum metrics_lmtp r, unsigned n)
{
	if (SHM != NULL && (unsigned)r < MLM_COUNT)
		ADD(SHM->lmtp[r], n);
}

void metrics_lmtp_bytes(uint64_t n)
{
	if (SHM != NULL)
		ADD(SHM->lmtp_bytes, n);
}

void metrics_alert(void)
{
	if (SHM != NULL)
		ADD(SHM->alerts, 1);
}

void metrics_rewrap(uint64_t messages)
{
	if (SHM != NULL)
		ADD(SHM->rewrapped, messages);
}

uint64_t metrics_expunged(uint32_t user_id, uint64_t n, time_t now)
{
	uint32_t hour = (uint32_t)(now / 3600);
	struct exp_slot *s = NULL;
	uint64_t sum = 0;
	size_t h;

	if (SHM == NULL || user_id == 0)
		return 0;
	/* Open addressing, 8 probes; a user's slot is written only by that user's session
	 * (one at a time). If all 8 are taken by others, reuse the first (losing its
	 * history is the price of a bounded table). */
	h = (user_id * 2654435761u) % EXP_SLOTS;
	for (size_t i = 0; i < 8 && s == NULL; i++) {
		struct exp_slot *c = &SHM->exp[(h + i) % EXP_SLOTS];
		uint32_t zero = 0;

		if (LOAD(c->user_id) == user_id ||
		    __atomic_compare_exchange_n(&c->user_id, &zero, user_id, false,
		    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			s = c;
	}
	if (s == NULL) {
		s = &SHM->exp[h];
		__atomic_store_n(&s->user_id, user_id, __ATOMIC_RELAXED);
		memset(s->hour, 0, sizeof(s->hour));
	}
	if (LOAD(s->hour[hour % EXP_HOURS]) != hour) {
		__atomic_store_n(&s->hour[hour % EXP_HOURS], hour, __ATOMIC_RELAXED);
		__atomic_store_n(&s->count[hour % EXP_HOURS], 0, __ATOMIC_RELAXED);
	}
	ADD(s->count[hour % EXP_HOURS], (uint32_t)(n > UINT32_MAX ? UINT32_MAX : n));
	for (size_t i = 0; i < EXP_HOURS; i++) {
		uint32_t bh = LOAD(s->hour[i]);
		if (bh + EXP_HOURS > hour && bh <= hour)
			sum += LOAD(s->count[i]);
	}
	return sum;
}

/* ---- rendering ------------------------------------------------------------------- */

struct textbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void tb_printf(struct textbuf *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_printf(struct textbuf *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->oom = true;
			return;
		}
		if ((size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		size_t nc = t->cap * 2 + (size_t)n;
		char *np = realloc(t->p, nc);
		if (np == NULL) {
			t->oom = true;
			return;
		}
		t->p = np;
		t->cap = nc;
	}
}

static void help(struct textbuf *t, const char *name, const char *type, const char *text)
{
	tb_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

int metrics_render(const struct metrics_vault *vs, char **out, size_t *len)
{
	struct textbuf t = { malloc(16384), 0, 16384, false };
	const struct metrics_shm *m = SHM;

	if (t.p == NULL)
		return -ENOMEM;
	if (m == NULL) {
		static const struct metrics_shm zero;
		m = &zero;
	}
	help(&t, "sealmail_connections", "gauge", "IMAP connections by state.");
	tb_printf(&t, "sealmail_connections{state=\"prelogin\"} %" PRIu64 "\n",
	    LOAD(m->conn_prelogin));
	tb_printf(&t, "sealmail_connections{state=\"authenticated\"} %" PRIu64 "\n",
	    LOAD(m->conn_auth));
	int64_t idle = LOAD(m->conn_idle);
	tb_printf(&t, "sealmail_connections{state=\"idle\"} %" PRId64 "\n", idle < 0 ? 0 : idle);
	help(&t, "sealmail_logins_total", "counter", "Login attempts by result.");
	for (size_t i = 0; i < ML_COUNT; i++)
		tb_printf(&t, "sealmail_logins_total{result=\"%s\"} %" PRIu64 "\n", login_names[i],
		    LOAD(m->logins[i]));
	help(&t, "sealmail_imap_commands_total", "counter",
	    "Tagged IMAP command responses in authenticated sessions, by verb and result.");
	for (size_t v = 0; v < NVERB; v++)
		for (size_t r = 0; r < MR_COUNT; r++)
			if (LOAD(m->cmds[v][r]) != 0)
				tb_printf(&t, "sealmail_imap_commands_total{verb=\"%s\",result=\"%s\"} %"
				    PRIu64 "\n", verbs[v], result_names[r], LOAD(m->cmds[v][r]));
	help(&t, "sealmail_imap_command_duration_seconds", "histogram",
	    "IMAP command latency (command read to tagged response queued), by verb.");
	for (size_t v = 0; v < NVERB; v++) {
		uint64_t cum = 0;

		for (size_t b = 0; b < NBUCKET; b++)
			cum += LOAD(m->hist[v][b]);
		if (cum == 0)
			continue;
		cum = 0;
		for (size_t b = 0; b < NBUCKET; b++) {
			cum += LOAD(m->hist[v][b]);
			if (b < NBUCKET - 1)
				tb_printf(&t, "sealmail_imap_command_duration_seconds_bucket{verb=\"%s\","
				    "le=\"%g\"} %" PRIu64 "\n", verbs[v], (double)bucket_us[b] / 1e6, cum);
			else
				tb_printf(&t, "sealmail_imap_command_duration_seconds_bucket{verb=\"%s\","
				    "le=\"+Inf\"} %" PRIu64 "\n", verbs[v], cum);
		}
		tb_printf(&t, "sealmail_imap_command_duration_seconds_sum{verb=\"%s\"} %.6f\n",
		    verbs[v], (double)LOAD(m->sum_us[v]) / 1e6);
		tb_printf(&t, "sealmail_imap_command_duration_seconds_count{verb=\"%s\"} %" PRIu64
		    "\n", verbs[v], cum);
	}
	help(&t, "sealmail_lmtp_recipients_total", "counter",
	    "LMTP recipients by outcome (delivered, refused 5xx, tempfail 4xx).");
	for (size_t i = 0; i < MLM_COUNT; i++)
		tb_printf(&t, "sealmail_lmtp_recipients_total{result=\"%s\"} %" PRIu64 "\n",
		    lmtp_names[i], LOAD(m->lmtp[i]));
	help(&t, "sealmail_lmtp_bytes_total", "counter", "LMTP message bytes received.");
	tb_printf(&t, "sealmail_lmtp_bytes_total %" PRIu64 "\n", LOAD(m->lmtp_bytes));
	help(&t, "sealmail_alerts_total", "counter", "Alert events emitted.");
	tb_printf(&t, "sealmail_alerts_total %" PRIu64 "\n", LOAD(m->alerts));
	help(&t, "sealmail_rewrapped_messages_total", "counter",
	    "Messages re-wrapped to the current key epoch by sessions after rotations.");
	tb_printf(&t, "sealmail_rewrapped_messages_total %" PRIu64 "\n", LOAD(m->rewrapped));
	if (vs != NULL && vs->epochs_rotated >= 0) {
		help(&t, "sealmail_key_rotations_total", "counter",
		    "Key epoch rotations over all current users (sum of current epoch - 1).");
		tb_printf(&t, "sealmail_key_rotations_total %" PRId64 "\n", vs->epochs_rotated);
		help(&t, "sealmail_rewrap_pending_messages", "gauge",
		    "Messages still under an older epoch.");
		tb_printf(&t, "sealmail_rewrap_pending_messages %" PRId64 "\n", vs->rewrap_pending);
		help(&t, "sealmail_users", "gauge", "Users in the vault.");
		tb_printf(&t, "sealmail_users %" PRId64 "\n", vs->users);
	}
	if (vs != NULL && vs->map_size >= 0) {
		help(&t, "sealmail_lmdb_map_used_bytes", "gauge", "LMDB pages in use, bytes.");
		tb_printf(&t, "sealmail_lmdb_map_used_bytes %" PRId64 "\n", vs->map_used);
		help(&t, "sealmail_lmdb_map_size_bytes", "gauge", "LMDB map size, bytes.");
		tb_printf(&t, "sealmail_lmdb_map_size_bytes %" PRId64 "\n", vs->map_size);
	}
	if (t.oom) {
		free(t.p);
		return -ENOMEM;
	}
	*out = t.p;
	*len = t.len;
	return 0;
}

/* ---- HTTP --------------------------------------------------------------------------- */

enum { HS_REQ, HS_HDR, HS_DONE };

void metrics_http_init(struct metrics_http *h)
{
	memset(h, 0, sizeof(*h));
	h->state = HS_REQ;
}

/* RFC 9112 3: request-line = method SP request-target SP HTTP-version. */
static int request_status(const char *l, size_t n)
{
	const char *sp1 = memchr(l, ' ', n), *sp2;
	size_t mlen, tlen;

	if (sp1 == NULL || sp1 == l)
		return 400;
	mlen = (size_t)(sp1 - l);
	sp2 = memchr(sp1 + 1, ' ', n - mlen - 1);
	if (sp2 == NULL || sp2 == sp1 + 1)
		return 400;
	tlen = (size_t)(sp2 - sp1 - 1);
	if (n - (size_t)(sp2 + 1 - l) != 8 || (memcmp(sp2 + 1, "HTTP/1.1", 8) != 0 &&
	    memcmp(sp2 + 1, "HTTP/1.0", 8) != 0))
		return 400;
	for (size_t i = 0; i < mlen; i++)
		if (l[i] < 'A' || l[i] > 'Z')
			return 400;
	for (size_t i = 0; i < tlen; i++)
		if ((unsigned char)sp1[1 + i] <= 0x20 || (unsigned char)sp1[1 + i] >= 0x7f)
			return 400;
	if (sp1[1] != '/' && !(tlen == 1 && sp1[1] == '*'))
		return 400;
	if (mlen != 3 || memcmp(l, "GET", 3) != 0)
		return 405;
	if (tlen != 8 || memcmp(sp1 + 1, "/metrics", 8) != 0)
		return 404;
	return 200;
}

int metrics_http_feed(struct metrics_http *h, const uint8_t *p, size_t n, size_t *used)
{
	size_t i = 0;

	while (i < n && h->state != HS_DONE) {
		uint8_t c = p[i++];

		if (++h->total > METRICS_HTTP_TOTAL_MAX) {
			h->status = 400;
			h->state = HS_DONE;
			break;
		}
		if (c == '\n') {
			size_t len = h->linelen - (h->linelen > 0 && h->prev == '\r');

			/* RFC 9112 2.2: a bare LF may be accepted as a line terminator. */
			if (h->state == HS_REQ) {
				/* RFC 9112 2.2: ignore at least one empty line before the request. */
				if (len == 0 && h->total <= 2) {
					h->linelen = 0;
					h->prev = 0;
					continue;
				}
				h->status = request_status(h->line, len);
				h->state = h->status == 400 ? HS_DONE : HS_HDR;
			} else if (len == 0) {
				h->state = HS_DONE;	/* end of the header section */
			} else if (++h->nhdrs > METRICS_HTTP_HDRS_MAX || h->first == ' ' ||
			    h->first == '\t' || h->first == ':') {
				/* too many, obs-fold or no field name (RFC 9112 5.2) */
				h->status = 400;
				h->state = HS_DONE;
			}
			h->linelen = 0;
			h->prev = 0;
			continue;
		}
		if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f ||
		    (h->linelen > 0 && h->prev == '\r')) {
			h->status = 400;	/* control byte, or CR not followed by LF */
			h->state = HS_DONE;
			break;
		}
		if (h->linelen >= (h->state == HS_REQ ? METRICS_HTTP_LINE_MAX :
		    METRICS_HTTP_HDR_MAX)) {
			h->status = 400;
			h->state = HS_DONE;
			break;
		}
		if (h->state == HS_REQ)
			h->line[h->linelen] = (char)c;	/* kept: parsed at its end */
		if (h->linelen == 0)
			h->first = c;
		h->prev = c;
		h->linelen++;
	}
	*used = i;
	return h->state == HS_DONE;
}

/* ---- the imapd-metrics process ---------------------------------------------------- */

#define MCONN_MAX 8
#define MCONN_TIMEOUT_MS 5000
#define VAULT_CACHE_SECS 5

int metrics_listener_open(const struct vault_config *cfg, int *fd_out, char *err,
    size_t errlen)
{
	char host[256], *colon;
	struct addrinfo hints, *ai = NULL;
	int fd = -1, one = 1, r;
	bool loop = false;

	snprintf(host, sizeof(host), "%s", cfg->metrics_listen);
	if ((colon = strrchr(host, ':')) == NULL) {
		snprintf(err, errlen, "metrics_listen %s: expected host:port", cfg->metrics_listen);
		return -EINVAL;
	}
	*colon = '\0';
	char *h = host;
	if (h[0] == '[' && colon > h + 1 && colon[-1] == ']') {
		h++;
		colon[-1] = '\0';
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((r = getaddrinfo(h, colon + 1, &hints, &ai)) != 0 || ai == NULL) {
		snprintf(err, errlen, "metrics_listen %s: %s", cfg->metrics_listen,
		    gai_strerror(r));
		return -EINVAL;
	}
	if (ai->ai_family == AF_INET)
		loop = (ntohl(((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr) >> 24) == 127;
	else if (ai->ai_family == AF_INET6)
		loop = IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr);
	if (!loop) {
		snprintf(err, errlen, "metrics_listen %s: not a loopback address (the endpoint "
		    "has no authentication)", cfg->metrics_listen);
		freeaddrinfo(ai);
		return -EINVAL;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 16) < 0) {
		r = -errno;
		snprintf(err, errlen, "metrics_listen %s: %s", cfg->metrics_listen, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return r;
	}
	freeaddrinfo(ai);
	*fd_out = fd;
	return 0;
}

struct mconn {
	int fd;
	struct metrics_http h;
	char *out;
	size_t outlen, off;
	int64_t deadline;
	bool draining;		/* answered; waiting for the client to close */
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct rot_acc {
	int64_t rotated, pending, users;
};

static int rot_cb(const struct vault_user_info *u, void *arg)
{
	struct rot_acc *a = arg;

	a->users++;
	if (u->current_epoch > 1)
		a->rotated += u->current_epoch - 1;
	a->pending += u->pending_rewrap;
	return 0;
}

static void vault_numbers(const struct vault_config *cfg, struct metrics_vault *vs)
{
	static struct vault *v;
	static struct metrics_vault cache = { -1, -1, -1, -1, -1 };
	static time_t at;
	struct vault_txn *t = NULL;
	struct rot_acc acc = { 0, 0, 0 };
	uint64_t used, size;
	time_t now = time(NULL);

	if (at != 0 && now - at < VAULT_CACHE_SECS && now >= at) {
		*vs = cache;
		return;
	}
	at = now;
	cache = (struct metrics_vault){ -1, -1, -1, -1, -1 };
	if (v == NULL && vault_open(cfg, &v) < 0) {
		*vs = cache;
		return;
	}
	if (vault_map_use(v, &used, &size) == 0) {
		cache.map_used = (int64_t)used;
		cache.map_size = (int64_t)size;
	}
	if (vault_txn_begin(v, false, &t) == 0) {
		if (vault_user_foreach(t, rot_cb, &acc) == 0) {
			cache.users = acc.users;
			cache.epochs_rotated = acc.rotated;
			cache.rewrap_pending = acc.pending;
		}
		vault_txn_abort(&t);
	}
	*vs = cache;
}

static void respond(struct mconn *c, const struct vault_config *cfg)
{
	static const char *const reason[] = { [0] = "OK", [1] = "Bad Request",
		[2] = "Not Found", [3] = "Method Not Allowed" };
	char *body = NULL, hdr[256];
	size_t blen = 0;
	int st = c->h.status, ri;
	struct metrics_vault vs;

	if (st == 200) {
		vault_numbers(cfg, &vs);
		if (metrics_render(&vs, &body, &blen) < 0)
			body = NULL;
	}
	if (body == NULL) {
		const char *msg = st == 404 ? "not found\n" : st == 405 ? "method not allowed\n" :
		    st == 200 ? "out of memory\n" : "bad request\n";
		if (st == 200)
			st = 500;
		body = strdup(msg);
		blen = body ? strlen(body) : 0;
	}
	ri = st == 200 ? 0 : st == 404 ? 2 : st == 405 ? 3 : 1;
	int n = snprintf(hdr, sizeof(hdr), "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n%s\r\n", st,
	    st == 500 ? "Internal Server Error" : reason[ri],
	    st == 200 ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain",
	    blen, st == 405 ? "Allow: GET\r\n" : "");
	c->out = malloc((size_t)n + blen);
	if (c->out != NULL) {
		memcpy(c->out, hdr, (size_t)n);
		if (blen)
			memcpy(c->out + n, body, blen);
		c->outlen = (size_t)n + blen;
	}
	free(body);
	c->off = 0;
}

static void mconn_close(struct mconn *c)
{
	close(c->fd);
	free(c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

static volatile sig_atomic_t metrics_stop;

static void on_term(int sig)
{
	(void)sig;
	metrics_stop = 1;
}

static __attribute__((noreturn)) void metrics_run(int lfd, const struct vault_config *cfg)
{
	struct mconn cs[MCONN_MAX];
	struct sigaction sa;

	(void)prctl(PR_SET_NAME, (unsigned long)PROC_NAME_METRICS, 0, 0, 0);
	log_set_ident(PROC_NAME_METRICS);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < MCONN_MAX; i++) {
		memset(&cs[i], 0, sizeof(cs[i]));
		cs[i].fd = -1;
	}
	log_info("metrics endpoint ready on %s (pid %d)", cfg->metrics_listen, (int)getpid());
	while (!metrics_stop) {
		struct pollfd pf[1 + MCONN_MAX];
		int64_t now = mono_ms(), wait = 1000;
		size_t n = 0;

		pf[n++] = (struct pollfd){ lfd, POLLIN, 0 };
		for (size_t i = 0; i < MCONN_MAX; i++) {
			if (cs[i].fd < 0)
				continue;
			if (now >= cs[i].deadline) {
				mconn_close(&cs[i]);	/* slow or silent client */
				continue;
			}
			if (cs[i].deadline - now < wait)
				wait = cs[i].deadline - now;
		}
		for (size_t i = 0; i < MCONN_MAX; i++)
			pf[1 + i] = (struct pollfd){ cs[i].fd,
			    (short)(cs[i].out && !cs[i].draining ? POLLOUT : POLLIN), 0 };
		if (poll(pf, 1 + MCONN_MAX, (int)wait) < 0)
			continue;
		for (size_t i = 0; i < MCONN_MAX; i++) {
			struct mconn *c = &cs[i];

			if (c->fd < 0 || pf[1 + i].revents == 0)
				continue;
			if (c->draining) {
				/* Answer sent and our side shut: read what the client still sends
				 * until it closes (closing with unread bytes would reset the
				 * connection and could destroy the answer in flight). */
				uint8_t buf[2048];
				ssize_t r = read(c->fd, buf, sizeof(buf));

				if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
					mconn_close(c);
				continue;
			}
			if (c->out == NULL) {
				uint8_t buf[2048];
				size_t used;
				ssize_t r = read(c->fd, buf, sizeof(buf));

				if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
					mconn_close(c);
					continue;
				}
				if (r > 0 && metrics_http_feed(&c->h, buf, (size_t)r, &used) == 1) {
					respond(c, cfg);
					if (c->out == NULL)
						mconn_close(c);
				}
				continue;
			}
			ssize_t w = write(c->fd, c->out + c->off, c->outlen - c->off);
			if (w > 0)
				c->off += (size_t)w;
			if (w < 0 && errno != EAGAIN && errno != EINTR) {
				mconn_close(c);
			} else if (c->off == c->outlen) {
				(void)shutdown(c->fd, SHUT_WR);
				c->draining = true;
			}
		}
		if (pf[0].revents & POLLIN) {
			for (int k = 0; k < 16; k++) {
				int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
				size_t i;

				if (fd < 0)
					break;
				for (i = 0; i < MCONN_MAX && cs[i].fd >= 0; i++)
					;
				if (i == MCONN_MAX) {	/* busy: refuse rather than queue */
					close(fd);
					continue;
				}
				cs[i].fd = fd;
				metrics_http_init(&cs[i].h);
				cs[i].deadline = mono_ms() + MCONN_TIMEOUT_MS;
			}
		}
	}
	_exit(0);
}

int metrics_start(int listen_fd, const struct vault_config *cfg, pid_t *pid_out)
{
	pid_t parent = getpid(), pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		sigset_t none;

		sigemptyset(&none);
		(void)sigprocmask(SIG_SETMASK, &none, NULL);
		(void)prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
		if (getppid() != parent)
			_exit(1);
		/* Only reads counters: make the shared region read-only here. */
		if (SHM != NULL)
			(void)mprotect(SHM, sizeof(*SHM), PROT_READ);
		if (listen_fd > 3)
			(void)close_range(3, (unsigned)listen_fd - 1, 0);
		(void)close_range((unsigned)listen_fd + 1, ~0u, 0);
		metrics_run(listen_fd, cfg);
	}
	*pid_out = pid;
	return 0;
}
