/* lmtp: the LMTP service of sealmail-imapd. See lmtp.h for the process model.
 *
 * A transaction: LHLO, MAIL FROM, one or more RCPT TO (each recipient looked up in
 * the vault at once: an unknown user gets 550 5.1.1 there), then DATA or BDAT
 * chunks. When the data starts, one vault delivery is begun per accepted recipient
 * with that recipient's trace fields (lmtp-trace.c) and every message byte is
 * written to each delivery as it arrives (vault_delivery_write_mail: a bare LF from
 * a sloppy client is stored as CRLF, as `deliver` does): the vault seals it in 64 KiB chunks and
 * keeps only ciphertext. At the end each delivery is committed and gets its own
 * reply, in RCPT order (RFC 2033 4.2); 250 only after vault_delivery_commit
 * returned 0, which means the message is durably stored. A storage failure is a
 * 4xx for that recipient, so the MTA keeps the message queued for it; nothing is
 * acknowledged that was not stored, and nothing is stored for a transaction that
 * did not end (disconnect, RSET, over-size). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "crypto.h"
#include "events.h"
#include "log.h"
#include "sbuf.h"
#include "lmtp.h"
#include "lmtp-parser.h"
#include "proto.h"
#include "vault-trace.h"
#include "compat.h"

_Static_assert(IPC_DELIVERY_BYTES == VAULT_DELIVERY_WIRE_BYTES, "proto.h and vault.h agree");

#define OUT_MAX (4u * 1024 * 1024)	/* hard cap on queued replies */
#define OUT_PAUSE (64u * 1024)		/* stop consuming input past this */
#define READ_BUF (64u * 1024)

struct lmtp_rcpt {
	char addr[LMTP_PATH_MAX];	/* as the client gave it (Delivered-To, replies) */
	char user[128];			/* the vault user it resolved to */
	struct vault_delivery *d;	/* open while the data streams in */
	int err;			/* why d was dropped (reported at the end) */
	bool stored;			/* committed durably, as uid */
	uint32_t uid;
};

struct lmtp_session {
	/* for the session's life */
	struct vault *v;
	const struct vault_config *cfg;
	struct lmtp_parser p;
	struct sbuf *out;
	char peer[80];
	char helo[LMTP_LINE_MAX + 1];
	bool lhlo;
	bool over;			/* QUIT or fatal: ignore further input */
	unsigned errors;		/* bad commands in a row */
	/* per transaction (reset by RSET, LHLO, and at the end of the data) */
	bool have_mail;
	char sender[LMTP_PATH_MAX];
	struct lmtp_rcpt *rcpts;
	size_t nrcpts;
	bool data_started;		/* deliveries begun (DATA accepted or first BDAT) */
	bool bdat_used;			/* BDAT seen in this transaction */
	bool bdat_refused;		/* the current chunk is being discarded */
	const char *bdat_reply;		/* reply for a refused chunk */
	bool bdat_last;			/* the current chunk is the last */
	uint64_t data_bytes;
	bool too_big;
	char id[24];
	lmtp_commit_fn commit;		/* how finished deliveries are committed */
	void *commit_arg;
	/* audit log and metrics (events.h) */
	struct audit_ctx actx;		/* per connection */
	uint64_t tx_start_us;		/* MAIL FROM */
	unsigned tx_res[MLM_COUNT];	/* recipients by outcome in this transaction */
};

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* A recipient's outcome: err 0 delivered; permanent (5xx) or temporary (4xx). */
static void tally(struct lmtp_session *s, int err)
{
	enum metrics_lmtp k = err == 0 ? MLM_DELIVERED : err == -E2BIG ||
	    err == VAULT_ERR_NOUSER ? MLM_REFUSED : MLM_TEMPFAIL;

	s->tx_res[k]++;
	metrics_lmtp_rcpt(k, 1);
}

/* One "lmtp" audit line per transaction that reached its data (or had every
 * recipient refused): counts only, never addresses or content. */
static void audit_tx(struct lmtp_session *s)
{
	struct audit_rec ar;
	unsigned ok = s->tx_res[MLM_DELIVERED];
	unsigned bad = s->tx_res[MLM_REFUSED] + s->tx_res[MLM_TEMPFAIL];

	metrics_lmtp_bytes(s->data_bytes);
	if (!audit_enabled() || ok + bad == 0)
		return;
	audit_begin(&ar, "lmtp");
	audit_ctx_fields(&ar, &s->actx);
	audit_str(&ar, "delivery_id", s->data_started ? s->id : NULL);
	audit_u64(&ar, "recipients_accepted", ok);
	audit_u64(&ar, "recipients_refused", s->tx_res[MLM_REFUSED]);
	audit_u64(&ar, "recipients_tempfail", s->tx_res[MLM_TEMPFAIL]);
	audit_u64(&ar, "bytes", s->data_bytes);
	audit_str(&ar, "result", bad == 0 ? "ok" : ok == 0 ? "failed" : "partial");
	audit_u64(&ar, "duration_ms", s->tx_start_us ? (mono_us() - s->tx_start_us) / 1000 : 0);
	(void)audit_emit(&ar);
}

/* ---- output ------------------------------------------------------------------------- */

static void reply(struct lmtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void reply(struct lmtp_session *s, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 3)
		n = (int)sizeof(line) - 3;
	line[n++] = '\r';
	line[n++] = '\n';
	/* OUT_MAX is far above what OUT_PAUSE lets accumulate; if it is ever hit the
	 * session is broken anyway and ends. */
	if (sbuf_put(s->out, line, (size_t)n) < 0)
		s->over = true;
}

void lmtp_session_output(const struct lmtp_session *s, const uint8_t **p_out, size_t *n_out)
{
	*p_out = s->out->d + s->out->off;
	*n_out = s->out->len - s->out->off;
}

void lmtp_session_output_done(struct lmtp_session *s, size_t n)
{
	s->out->off += n;
	if (s->out->off >= s->out->len)
		sbuf_reset(s->out);
}

static size_t out_pending(const struct lmtp_session *s)
{
	return s->out->len - s->out->off;
}

/* ---- transaction ------------------------------------------------------------------ */

static void tx_reset(struct lmtp_session *s)
{
	if (s->have_mail)
		audit_tx(s);
	memset(s->tx_res, 0, sizeof(s->tx_res));
	s->tx_start_us = 0;
	for (size_t i = 0; i < s->nrcpts; i++)
		vault_delivery_abort(&s->rcpts[i].d);
	free(s->rcpts);
	s->rcpts = NULL;
	s->nrcpts = 0;
	s->have_mail = false;
	s->sender[0] = '\0';
	s->data_started = false;
	s->bdat_used = false;
	s->bdat_refused = false;
	s->bdat_reply = NULL;
	s->bdat_last = false;
	s->data_bytes = 0;
	s->too_big = false;
}

static void new_id(struct lmtp_session *s)
{
	uint8_t b[8];

	crypto_random(b, sizeof(b));
	if (crypto_hex_encode(b, sizeof(b), s->id, sizeof(s->id)) < 0)
		snprintf(s->id, sizeof(s->id), "0");
}

/* The reply for a recipient whose delivery failed with err. */
static void reply_err(struct lmtp_session *s, const struct lmtp_rcpt *rc, int err)
{
	if (err == -E2BIG)
		reply(s, "552 5.3.4 <%s> Message too big for system", rc->addr);
	else if (err == VAULT_ERR_FULL || err == -ENOSPC || err == -EDQUOT)
		reply(s, "452 4.3.1 <%s> Insufficient system storage", rc->addr);
	else if (err == VAULT_ERR_NOUSER)
		reply(s, "550 5.1.1 <%s> User unknown", rc->addr);
	else
		reply(s, "451 4.3.0 <%s> Temporary storage failure: %s", rc->addr,
		    vault_strerror(err));
}

static void data_begin(struct lmtp_session *s)
{
	struct vault_trace t;
	time_t now = time(NULL);

	s->data_started = true;
	s->data_bytes = 0;
	s->too_big = false;
	new_id(s);
	for (size_t i = 0; i < s->nrcpts; i++) {
		struct lmtp_rcpt *rc = &s->rcpts[i];
		int r;

		memset(&t, 0, sizeof(t));
		t.sender = s->sender;
		t.rcpt = rc->addr;
		t.helo = s->helo;
		t.peer = s->peer;
		t.host = s->cfg->hostname;
		t.proto = "LMTP";
		t.id = s->id;
		t.now = now;
		if ((r = vault_trace_delivery_begin(s->v, rc->user, &t, &rc->d)) < 0) {
			log_warn("lmtp %s: cannot start delivery to %s: %s", s->id, rc->user,
			    vault_strerror(r));
			rc->err = r;
		}
	}
}

static void data_write(struct lmtp_session *s, const uint8_t *p, size_t n)
{
	if (!s->data_started || s->too_big)
		return;
	s->data_bytes += n;
	if (s->data_bytes > s->cfg->max_message_size) {
		/* Nothing of it will be stored: drop the ciphertext now. */
		s->too_big = true;
		for (size_t i = 0; i < s->nrcpts; i++)
			vault_delivery_abort(&s->rcpts[i].d);
		return;
	}
	for (size_t i = 0; i < s->nrcpts; i++) {
		struct lmtp_rcpt *rc = &s->rcpts[i];
		int r;

		if (rc->d == NULL)
			continue;
		if ((r = vault_delivery_write_mail(rc->d, p, n)) < 0) {
			log_warn("lmtp %s: delivery to %s failed while receiving: %s", s->id,
			    rc->user, vault_strerror(r));
			rc->err = r;
			vault_delivery_abort(&rc->d);
		}
	}
}

static void commit_local(void *arg, struct vault_delivery **ds, size_t n, uint32_t *uids,
    int *errs)
{
	(void)arg;
	(void)vault_delivery_commit_group(ds, n, uids, errs);
}

void lmtp_session_set_commit(struct lmtp_session *s, lmtp_commit_fn fn, void *arg)
{
	s->commit = fn ? fn : commit_local;
	s->commit_arg = fn ? arg : NULL;
}

/* The end of the data: commit every delivery of the transaction (one group, so one
 * durable commit) and answer for each recipient, in RCPT order (RFC 2033 4.2: one
 * reply per accepted recipient after the data). 250 only for a delivery whose commit
 * returned 0: it is durably stored. */
static void data_end(struct lmtp_session *s)
{
	struct vault_delivery **ds = NULL;
	uint32_t *uids = NULL;
	int *errs = NULL;

	if (!s->too_big && s->nrcpts > 0) {
		ds = calloc(s->nrcpts, sizeof(*ds));
		uids = calloc(s->nrcpts, sizeof(*uids));
		errs = calloc(s->nrcpts, sizeof(*errs));
		if (ds == NULL || uids == NULL || errs == NULL) {
			for (size_t i = 0; i < s->nrcpts; i++) {
				vault_delivery_abort(&s->rcpts[i].d);
				if (s->rcpts[i].err == 0)
					s->rcpts[i].err = -ENOMEM;
			}
		} else {
			size_t n = 0;

			for (size_t i = 0; i < s->nrcpts; i++)
				if (s->rcpts[i].d != NULL) {
					ds[n++] = s->rcpts[i].d;
					s->rcpts[i].d = NULL;
				}
			if (n > 0)
				s->commit(s->commit_arg, ds, n, uids, errs);
			n = 0;
			for (size_t i = 0; i < s->nrcpts; i++) {
				struct lmtp_rcpt *rc = &s->rcpts[i];

				if (rc->err != 0)
					continue;	/* never had a delivery, or lost it */
				if ((rc->err = errs[n]) == 0) {
					rc->stored = true;
					rc->uid = uids[n];
				} else
					log_warn("lmtp %s: delivery to %s not stored: %s", s->id,
					    rc->user, vault_strerror(rc->err));
				n++;
			}
		}
	}
	for (size_t i = 0; i < s->nrcpts; i++) {
		struct lmtp_rcpt *rc = &s->rcpts[i];

		if (s->too_big) {
			reply(s, "552 5.3.4 <%s> Message too big for system", rc->addr);
			tally(s, -E2BIG);
			continue;
		}
		if (!rc->stored) {
			reply_err(s, rc, rc->err ? rc->err : -EIO);
			tally(s, rc->err ? rc->err : -EIO);
			continue;
		}
		tally(s, 0);
		log_info("lmtp %s: saved for %s: uid %u, %llu bytes", s->id, rc->user,
		    (unsigned)rc->uid, (unsigned long long)s->data_bytes);
		reply(s, "250 2.0.0 <%s> %s Saved", rc->addr, s->id);
	}
	if (s->too_big)
		log_info("lmtp %s: message over max_message_size (%llu) refused", s->id,
		    (unsigned long long)s->cfg->max_message_size);
	free(ds);
	free(uids);
	free(errs);
	tx_reset(s);
}

/* ---- commands ------------------------------------------------------------------- */

static void cmd_lhlo(struct lmtp_session *s, const char *arg)
{
	if (arg[0] == '\0') {
		reply(s, "501 5.5.4 LHLO needs a domain or address literal");
		return;
	}
	tx_reset(s);	/* RFC 5321 4.1.4: like EHLO, LHLO resets the transaction */
	snprintf(s->helo, sizeof(s->helo), "%s", arg);
	s->lhlo = true;
	reply(s, "250-%s", s->cfg->hostname);
	reply(s, "250-PIPELINING");
	reply(s, "250-ENHANCEDSTATUSCODES");
	reply(s, "250-8BITMIME");
	reply(s, "250-SIZE %llu", (unsigned long long)s->cfg->max_message_size);
	reply(s, "250 CHUNKING");
}

static void cmd_mail(struct lmtp_session *s, const char *arg)
{
	char addr[LMTP_PATH_MAX], key[32], val[64];
	const char *params;
	int r;

	if (!s->lhlo) {
		reply(s, "503 5.5.1 Send LHLO first");
		return;
	}
	if (s->have_mail) {
		reply(s, "503 5.5.1 Nested MAIL command");
		return;
	}
	if ((r = lmtp_parse_path(arg, "FROM:", addr, sizeof(addr), &params)) < 0) {
		if (r == -E2BIG)
			reply(s, "501 5.1.7 Sender address too long");
		else
			reply(s, "501 5.5.4 Syntax: MAIL FROM:<address> [SIZE=n] [BODY=8BITMIME]");
		return;
	}
	while ((r = lmtp_param_next(&params, key, sizeof(key), val, sizeof(val))) > 0) {
		if (strcasecmp(key, "SIZE") == 0) {
			uint64_t n;

			int pr = lmtp_parse_u64(val, &n);

			if (pr == -EPROTO) {
				reply(s, "501 5.5.4 Bad SIZE parameter");
				return;
			}
			/* -ERANGE: larger than any limit (RFC 1870 6) */
			if (pr < 0 || n > s->cfg->max_message_size) {
				reply(s, "552 5.3.4 Message size exceeds fixed limit of %llu bytes",
				    (unsigned long long)s->cfg->max_message_size);
				return;
			}
		} else if (strcasecmp(key, "BODY") == 0) {
			/* Stored as received; nothing to convert (RFC 6152). */
			if (strcasecmp(val, "7BIT") != 0 && strcasecmp(val, "8BITMIME") != 0) {
				reply(s, "501 5.5.4 Unsupported BODY type");
				return;
			}
		} else {
			reply(s, "555 5.5.4 Unsupported parameter %s", key);
			return;
		}
	}
	if (r < 0) {
		reply(s, "501 5.5.4 Bad MAIL parameters");
		return;
	}
	snprintf(s->sender, sizeof(s->sender), "%s", addr);
	s->have_mail = true;
	s->tx_start_us = mono_us();
	reply(s, "250 2.1.0 Ok");
}

#define NCAND 6

static void add_cand(char cand[NCAND][LMTP_PATH_MAX], size_t *nc, const char *s, size_t n)
{
	if (n == 0 || n >= LMTP_PATH_MAX || *nc >= NCAND)
		return;
	for (size_t i = 0; i < *nc; i++)
		if (strlen(cand[i]) == n && memcmp(cand[i], s, n) == 0)
			return;
	memcpy(cand[*nc], s, n);
	cand[*nc][n] = '\0';
	(*nc)++;
}

/* Finds the vault user for a recipient address: the whole address (user names may
 * be addresses), else its local part (the domain is not checked: the MTA decided to
 * hand the mail to us), else the local part without a "+detail" extension; each
 * also lower-cased (MTAs keep the case the sender typed).
 * 0 with user filled, VAULT_ERR_NOUSER, or another -errno (storage). */
static int resolve_user(struct vault *v, const char *addr, char *user, size_t usersz)
{
	struct vault_txn *t = NULL;
	struct vault_user_info ui;
	char cand[NCAND][LMTP_PATH_MAX], local[LMTP_PATH_MAX], low[LMTP_PATH_MAX];
	size_t nc = 0, ll, k = 0, n0;
	const char *at = NULL, *plus;
	bool quoted = false;
	int r;

	for (const char *p = addr; *p; p++) {
		if (*p == '\\' && quoted && p[1]) {
			p++;
			continue;
		}
		if (*p == '"')
			quoted = !quoted;
		else if (*p == '@' && !quoted)
			at = p;
	}
	add_cand(cand, &nc, addr, strlen(addr));
	/* the local part, unquoted */
	ll = at ? (size_t)(at - addr) : strlen(addr);
	for (size_t i = 0; i < ll && k + 1 < sizeof(local); i++) {
		if (addr[i] == '"')
			continue;
		if (addr[i] == '\\' && i + 1 < ll)
			i++;
		local[k++] = addr[i];
	}
	local[k] = '\0';
	add_cand(cand, &nc, local, k);
	if ((plus = strchr(local, '+')) != NULL)
		add_cand(cand, &nc, local, (size_t)(plus - local));
	n0 = nc;
	for (size_t i = 0; i < n0; i++) {
		size_t n = strlen(cand[i]);

		for (size_t j = 0; j <= n; j++)
			low[j] = (cand[i][j] >= 'A' && cand[i][j] <= 'Z') ?
			    (char)(cand[i][j] - 'A' + 'a') : cand[i][j];
		add_cand(cand, &nc, low, n);
	}
	if ((r = vault_txn_begin(v, false, &t)) < 0)
		return r;
	r = VAULT_ERR_NOUSER;
	for (size_t i = 0; i < nc && r == VAULT_ERR_NOUSER; i++) {
		if (strlen(cand[i]) >= sizeof(ui.name))
			continue;
		if ((r = vault_user_get(t, cand[i], &ui)) == 0)
			snprintf(user, usersz, "%s", ui.name);
	}
	vault_txn_abort(&t);
	return r;
}

static void cmd_rcpt(struct lmtp_session *s, const char *arg)
{
	char addr[LMTP_PATH_MAX], user[128], key[32], val[64];
	const char *params;
	struct lmtp_rcpt *rc;
	int r;

	if (!s->have_mail) {
		reply(s, "503 5.5.1 MAIL first");
		return;
	}
	if (s->data_started) {
		reply(s, "503 5.5.1 RCPT after the data started");
		return;
	}
	if ((r = lmtp_parse_path(arg, "TO:", addr, sizeof(addr), &params)) < 0 ||
	    addr[0] == '\0') {
		reply(s, "501 5.1.3 Syntax: RCPT TO:<address>");
		return;
	}
	if ((r = lmtp_param_next(&params, key, sizeof(key), val, sizeof(val))) != 0) {
		if (r > 0)
			reply(s, "555 5.5.4 Unsupported parameter %s", key);
		else
			reply(s, "501 5.5.4 Bad RCPT parameters");
		return;
	}
	if (s->nrcpts >= LMTP_MAX_RCPTS) {
		/* RFC 5321 4.5.3.1.10: 452 lets the client send the rest later. */
		reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	if ((r = resolve_user(s->v, addr, user, sizeof(user))) < 0) {
		if (r == VAULT_ERR_NOUSER)
			reply(s, "550 5.1.1 <%s> User unknown", addr);
		else
			reply(s, "451 4.3.0 <%s> Temporary lookup failure", addr);
		tally(s, r);
		return;
	}
	rc = realloc(s->rcpts, (s->nrcpts + 1) * sizeof(*rc));
	if (rc == NULL) {
		reply(s, "451 4.3.0 Out of memory");
		return;
	}
	s->rcpts = rc;
	rc = &s->rcpts[s->nrcpts++];
	memset(rc, 0, sizeof(*rc));
	snprintf(rc->addr, sizeof(rc->addr), "%s", addr);
	snprintf(rc->user, sizeof(rc->user), "%s", user);
	reply(s, "250 2.1.5 <%s> Ok", addr);
}

static void cmd_data(struct lmtp_session *s, const char *arg)
{
	if (arg[0] != '\0') {
		reply(s, "501 5.5.4 DATA takes no argument");
		return;
	}
	if (!s->have_mail) {
		reply(s, "503 5.5.1 MAIL first");
		return;
	}
	if (s->bdat_used) {
		reply(s, "503 5.5.1 DATA after BDAT in the same transaction");
		return;
	}
	if (s->nrcpts == 0) {	/* RFC 2033 4.2 */
		reply(s, "503 5.5.1 No valid recipients");
		return;
	}
	data_begin(s);
	lmtp_parser_begin_data(&s->p);
	reply(s, "354 Start mail input; end with <CRLF>.<CRLF>");
}

/* BDAT: the parser is already in chunk mode (the chunk follows whatever we say);
 * the reply goes out when the chunk has been consumed (RFC 3030 2). */
static void cmd_bdat(struct lmtp_session *s, uint64_t size, bool last)
{
	s->bdat_last = last;
	s->bdat_refused = false;
	s->bdat_reply = NULL;
	if (!s->have_mail)
		s->bdat_reply = "503 5.5.1 MAIL first";
	else if (s->nrcpts == 0)
		s->bdat_reply = "503 5.5.1 No valid recipients";
	if (s->bdat_reply != NULL) {
		s->bdat_refused = true;
		return;
	}
	s->bdat_used = true;
	if (!s->data_started)
		data_begin(s);
	(void)size;
}

static void bdat_end(struct lmtp_session *s)
{
	if (s->bdat_refused) {
		reply(s, "%s", s->bdat_reply);
		s->bdat_refused = false;
		return;
	}
	if (s->bdat_last) {
		data_end(s);
		return;
	}
	if (s->too_big)
		/* The client goes on or resets; nothing will be stored either way. */
		reply(s, "552 5.3.4 Message too big for system");
	else
		reply(s, "250 2.0.0 %llu octets received", (unsigned long long)s->data_bytes);
}

static void command(struct lmtp_session *s, const struct lmtp_event *ev)
{
	bool ok = true;

	switch (ev->verb) {
	case LMTP_V_LHLO:
		cmd_lhlo(s, ev->arg);
		break;
	case LMTP_V_HELO:
	case LMTP_V_EHLO:
		/* RFC 2033 4.1: an LMTP server must not accept HELO/EHLO. */
		reply(s, "500 5.5.1 This is LMTP: use LHLO");
		ok = false;
		break;
	case LMTP_V_MAIL:
		cmd_mail(s, ev->arg);
		break;
	case LMTP_V_RCPT:
		cmd_rcpt(s, ev->arg);
		break;
	case LMTP_V_DATA:
		cmd_data(s, ev->arg);
		break;
	case LMTP_V_BDAT:
		cmd_bdat(s, ev->bdat_size, ev->bdat_last);
		break;
	case LMTP_V_RSET:
		tx_reset(s);
		reply(s, "250 2.0.0 Ok");
		break;
	case LMTP_V_NOOP:
		reply(s, "250 2.0.0 Ok");
		break;
	case LMTP_V_QUIT:
		reply(s, "221 2.0.0 %s closing connection", s->cfg->hostname);
		s->over = true;
		break;
	case LMTP_V_VRFY:
		/* No user enumeration (RFC 5321 3.5.3 allows 252). */
		reply(s, "252 2.5.2 Cannot VRFY user; send the message and see");
		break;
	case LMTP_V_EXPN:
		reply(s, "502 5.5.1 EXPN not implemented");
		ok = false;
		break;
	case LMTP_V_HELP:
		reply(s, "214 2.0.0 See RFC 2033");
		break;
	case LMTP_V_STARTTLS:
		reply(s, "502 5.5.1 STARTTLS not offered here");
		ok = false;
		break;
	case LMTP_V_UNKNOWN:
		reply(s, "500 5.5.2 Command unrecognized");
		ok = false;
		break;
	}
	if (ok)
		s->errors = 0;
	else
		s->errors++;
}

static void error_limit(struct lmtp_session *s)
{
	if (s->errors >= LMTP_MAX_ERRORS && !s->over) {
		reply(s, "421 4.7.0 %s Too many errors, closing connection", s->cfg->hostname);
		s->over = true;
	}
}

int lmtp_session_input(struct lmtp_session *s, const uint8_t *in, size_t len,
    size_t *used_out)
{
	size_t off = 0, used;
	struct lmtp_event ev;

	*used_out = 0;
	while (!s->over) {
		if (out_pending(s) > OUT_PAUSE && lmtp_parser_mode(&s->p) == LMTP_MODE_LINE)
			break;
		if (lmtp_parser_feed(&s->p, in + off, len - off, &used, &ev) == 0) {
			off += used;
			break;
		}
		off += used;
		switch (ev.type) {
		case LMTP_EV_CMD:
			command(s, &ev);
			break;
		case LMTP_EV_LINE_TOO_LONG:
			reply(s, "500 5.5.2 Line too long");
			s->errors++;
			break;
		case LMTP_EV_BAD_BDAT:
			reply(s, "501 5.5.4 Syntax: BDAT size [LAST]");
			s->errors++;
			break;
		case LMTP_EV_DATA:
			if (!s->bdat_refused)
				data_write(s, ev.data, ev.len);
			break;
		case LMTP_EV_DATA_END:
			data_end(s);
			break;
		case LMTP_EV_BDAT_END:
			bdat_end(s);
			break;
		}
		error_limit(s);
	}
	*used_out = s->over ? len : off;
	return s->over ? 1 : 0;
}

void lmtp_session_eof(struct lmtp_session *s)
{
	if (s->data_started)
		log_info("lmtp %s: connection lost during the data: nothing stored", s->id);
	tx_reset(s);
	s->over = true;
}

int lmtp_session_new(struct vault *v, const struct vault_config *cfg, const char *peer,
    struct lmtp_session **out)
{
	struct lmtp_session *s;
	int r;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	if ((r = sbuf_new(OUT_MAX, &s->out)) < 0) {
		free(s);
		return r;
	}
	s->v = v;
	s->cfg = cfg;
	s->commit = commit_local;
	lmtp_parser_init(&s->p);
	snprintf(s->peer, sizeof(s->peer), "%s", peer ? peer : "");
	audit_ctx_init(&s->actx, s->peer);
	reply(s, "220 %s LMTP sealmail ready", cfg->hostname);
	*out = s;
	return 0;
}

void lmtp_session_free(struct lmtp_session **sp)
{
	struct lmtp_session *s = *sp;

	if (s == NULL)
		return;
	tx_reset(s);
	sbuf_free(&s->out);
	free(s);
	*sp = NULL;
}

/* ---- the committer's core ------------------------------------------------------ */

void lmtp_commit_batch(struct vault *v, struct lmtp_commit_req *reqs, size_t n)
{
	struct vault_delivery **ds = NULL;
	uint32_t *uids = NULL;
	int *errs = NULL;
	size_t k = 0;

	ds = calloc(n ? n : 1, sizeof(*ds));
	uids = calloc(n ? n : 1, sizeof(*uids));
	errs = calloc(n ? n : 1, sizeof(*errs));
	for (size_t i = 0; i < n; i++) {
		struct lmtp_commit_req *q = &reqs[i];
		int fd = q->fd;

		q->fd = -1;
		q->uid = 0;
		if (ds == NULL || uids == NULL || errs == NULL) {
			if (fd >= 0)
				close(fd);
			q->err = -ENOMEM;
		} else {
			/* takes fd */
			q->err = vault_delivery_import(v, q->wire, sizeof(q->wire), fd, &ds[k]);
			if (q->err == 0)
				k++;
		}
		crypto_wipe(q->wire, sizeof(q->wire));
	}
	if (k > 0)
		(void)vault_delivery_commit_group(ds, k, uids, errs);
	k = 0;
	for (size_t i = 0; i < n && ds != NULL; i++) {
		if (reqs[i].err != 0)
			continue;
		reqs[i].err = errs[k];
		reqs[i].uid = uids[k];
		k++;
	}
	free(ds);
	free(uids);
	free(errs);
}

/* ---- a connection process hands its deliveries to the committer ------------------ */

struct conn_commit {
	int sock;		/* to the committer; -1 once it is gone */
};

/* Waits for one message on sock (the committer answers after its fsync). */
static int recv_result(int sock, struct ipc_msg *m)
{
	for (;;) {
		struct pollfd pf = { sock, POLLIN, 0 };
		int r = ipc_recv(sock, IPC_ST_LMTP_WAIT_COMMIT, m);

		if (r != -EAGAIN)
			return r;
		if ((r = poll(&pf, 1, LMTP_TIMEOUT_SECS * 1000)) == 0)
			return -ETIMEDOUT;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

static void commit_remote(void *arg, struct vault_delivery **ds, size_t n, uint32_t *uids,
    int *errs)
{
	struct conn_commit *cc = arg;
	bool *sent = calloc(n, sizeof(*sent));

	for (size_t i = 0; i < n; i++) {
		uint8_t wire[VAULT_DELIVERY_WIRE_BYTES];
		int fd = -1, r;

		uids[i] = 0;
		errs[i] = -EIO;
		if (sent == NULL || cc->sock < 0) {
			vault_delivery_abort(&ds[i]);
			continue;
		}
		if ((r = vault_delivery_export(&ds[i], wire, sizeof(wire), &fd)) < 0) {
			errs[i] = r;
			continue;
		}
		r = ipc_send(cc->sock, IPC_C2K_DELIVERY, wire, sizeof(wire), fd);
		crypto_wipe(wire, sizeof(wire));
		close(fd);
		if (r < 0) {
			log_err("lmtp: cannot reach the committer: %s", strerror(-r));
			close(cc->sock);
			cc->sock = -1;
			continue;
		}
		sent[i] = true;
	}
	/* One RESULT per DELIVERY, in order, each after its durable commit. */
	for (size_t i = 0; i < n && sent != NULL; i++) {
		struct ipc_msg m;
		int r;

		if (!sent[i] || cc->sock < 0)
			continue;
		if ((r = recv_result(cc->sock, &m)) == 1) {
			uint32_t e = (uint32_t)m.payload[0] << 24 | (uint32_t)m.payload[1] << 16 |
			    (uint32_t)m.payload[2] << 8 | m.payload[3];

			errs[i] = (int)(int32_t)e;
			uids[i] = (uint32_t)m.payload[4] << 24 | (uint32_t)m.payload[5] << 16 |
			    (uint32_t)m.payload[6] << 8 | m.payload[7];
			if (errs[i] > 0 || (errs[i] == 0 && uids[i] == 0))
				r = -EPROTO;
		}
		if (r == -EPROTO) {
			/* Our own committer sent nonsense: nothing is acknowledged, the
			 * connection ends, the MTA retries. */
			log_err("lmtp: malformed answer from the committer; closing");
			_exit(1);
		}
		if (r != 1) {
			/* Gone or stuck: whether it stored the message is unknown, so it is
			 * not acknowledged (4xx: the MTA retries; at worst a duplicate). */
			log_err("lmtp: no answer from the committer: %s",
			    r == 0 ? "it closed" : strerror(-r));
			close(cc->sock);
			cc->sock = -1;
			errs[i] = -EIO;
		}
	}
	free(sent);
}

/* ---- one connection ------------------------------------------------------------- */

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pf = { fd, POLLOUT, 0 };
			int pr = poll(&pf, 1, LMTP_TIMEOUT_SECS * 1000);

			if (pr == 0)
				return -ETIMEDOUT;
			continue;
		}
		if (k < 0)
			return -errno;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int flush(struct lmtp_session *s, int fd)
{
	const uint8_t *p;
	size_t n;
	int r;

	lmtp_session_output(s, &p, &n);
	if (n == 0)
		return 0;
	if ((r = write_all(fd, p, n)) < 0)
		return r;
	lmtp_session_output_done(s, n);
	return 0;
}

int lmtp_serve_conn(int fd, const struct vault_config *cfg, const char *peer, int commit_fd)
{
	struct vault *v = NULL;
	struct lmtp_session *s = NULL;
	struct conn_commit cc = { commit_fd };
	uint8_t *buf = NULL;
	int r;

	if ((r = vault_open(cfg, &v)) < 0) {
		static const char msg[] = "421 4.3.0 Mail store unavailable, try again later\r\n";
		log_err("lmtp: cannot open the vault: %s", vault_strerror(r));
		(void)write_all(fd, (const uint8_t *)msg, sizeof(msg) - 1);
		goto out;
	}
	{
		struct timeval tv = { LMTP_TIMEOUT_SECS, 0 };

		/* A client that stops reading must not hold the process forever. */
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	if ((buf = malloc(READ_BUF)) == NULL || (r = lmtp_session_new(v, cfg, peer, &s)) < 0) {
		r = r < 0 ? r : -ENOMEM;
		goto out;
	}
	if (commit_fd >= 0)
		lmtp_session_set_commit(s, commit_remote, &cc);
	for (;;) {
		struct pollfd pf = { fd, POLLIN, 0 };
		ssize_t n;
		size_t off = 0;
		int pr;

		/* RFC 2920 3.1: flush before waiting for more input. */
		if ((r = flush(s, fd)) < 0)
			goto lost;
		if ((pr = poll(&pf, 1, LMTP_TIMEOUT_SECS * 1000)) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto lost;
		}
		if (pr == 0) {
			static const char msg[] = "421 4.4.2 Timeout, closing connection\r\n";
			(void)write_all(fd, (const uint8_t *)msg, sizeof(msg) - 1);
			r = -ETIMEDOUT;
			goto lost;
		}
		n = recv(fd, buf, READ_BUF, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : 0;
			goto lost;
		}
		while (off < (size_t)n) {
			size_t used;
			int sr = lmtp_session_input(s, buf + off, (size_t)n - off, &used);

			off += used;
			if (sr != 0) {
				(void)flush(s, fd);
				r = sr < 0 ? sr : 0;
				goto out;
			}
			if (commit_fd >= 0 && cc.sock < 0) {
				/* The committer is gone (its successor does not know this
				 * connection): answer what was answered, then make the MTA
				 * reconnect (RFC 5321 3.8: 421 and close). */
				static const char msg[] = "421 4.3.0 Mail store restarting, try again\r\n";
				(void)flush(s, fd);
				(void)write_all(fd, (const uint8_t *)msg, sizeof(msg) - 1);
				lmtp_session_eof(s);
				r = -EIO;
				goto out;
			}
			if (off < (size_t)n && (r = flush(s, fd)) < 0)
				goto lost;
		}
	}
lost:
	lmtp_session_eof(s);
out:
	lmtp_session_free(&s);
	free(buf);
	vault_close(&v);
	if (cc.sock >= 0)
		close(cc.sock);
	return r;
}

/* ---- the listener ------------------------------------------------------------- */

/* "host:port", "[v6]:port": resolved into *res (freeaddrinfo). */
static int resolve_tcp(const char *spec, struct addrinfo **res, char *err, size_t errlen)
{
	struct addrinfo hints;
	char host[256], port[8];
	const char *colon, *h = spec;
	size_t hl;
	char *end;
	long pn;
	int r;

	if ((colon = strrchr(spec, ':')) == NULL || colon[1] == '\0' || strlen(colon + 1) > 5) {
		snprintf(err, errlen, "bad lmtp_listen '%s' (want host:port, [ipv6]:port or "
		    "/path)", spec);
		return -EINVAL;
	}
	pn = strtol(colon + 1, &end, 10);
	if (*end != '\0' || pn < 1 || pn > 65535) {
		snprintf(err, errlen, "lmtp_listen '%s': bad port (1-65535)", spec);
		return -EINVAL;
	}
	hl = (size_t)(colon - spec);
	if (spec[0] == '[' && hl >= 2 && spec[hl - 1] == ']') {
		h = spec + 1;
		hl -= 2;
	}
	if (hl >= sizeof(host)) {
		snprintf(err, errlen, "lmtp_listen: host too long");
		return -EINVAL;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	snprintf(port, sizeof(port), "%s", colon + 1);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((r = getaddrinfo(host[0] && strcmp(host, "*") != 0 ? host : NULL, port, &hints,
	    res)) != 0) {
		snprintf(err, errlen, "lmtp_listen: cannot resolve '%s': %s", spec,
		    gai_strerror(r));
		return -EINVAL;
	}
	return 0;
}

static int open_tcp(const char *spec, int *fd_out, char *err, size_t errlen)
{
	struct addrinfo *res = NULL;
	int fd = -1, one = 1, r;

	if ((r = resolve_tcp(spec, &res, err, errlen)) < 0)
		return r;
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "lmtp_listen %s: socket: %s", spec, strerror(errno));
		goto out;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 128) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot bind lmtp_listen %s: %s", spec, strerror(errno));
		close(fd);
		fd = -1;
		goto out;
	}
	*fd_out = fd;
	r = 0;
out:
	freeaddrinfo(res);
	return r;
}

struct unix_spec {
	char buf[256];		/* path points into it */
	char *path;
	mode_t mode;
	uid_t uid;
	gid_t gid;
};

/* "/path [mode=0660] [user=NAME] [group=NAME]" */
static int parse_unix(const char *spec, struct unix_spec *u, char *err, size_t errlen)
{
	char *save = NULL, *tok;
	struct sockaddr_un sa;

	u->mode = 0666;
	u->uid = (uid_t)-1;
	u->gid = (gid_t)-1;
	if (strlen(spec) >= sizeof(u->buf)) {
		snprintf(err, errlen, "lmtp_listen: too long");
		return -EINVAL;
	}
	snprintf(u->buf, sizeof(u->buf), "%s", spec);
	u->path = strtok_r(u->buf, " \t", &save);
	while ((tok = strtok_r(NULL, " \t", &save)) != NULL) {
		if (strncmp(tok, "mode=", 5) == 0) {
			char *end;
			long m = strtol(tok + 5, &end, 8);

			if (*end != '\0' || end == tok + 5 || m < 0 || m > 0777) {
				snprintf(err, errlen, "lmtp_listen: bad %s (want mode=0660)", tok);
				return -EINVAL;
			}
			u->mode = (mode_t)m;
		} else if (strncmp(tok, "user=", 5) == 0) {
			struct passwd *pw = getpwnam(tok + 5);

			if (pw == NULL) {
				snprintf(err, errlen, "lmtp_listen: no such user %s", tok + 5);
				return -ENOENT;
			}
			u->uid = pw->pw_uid;
		} else if (strncmp(tok, "group=", 6) == 0) {
			struct group *gr = getgrnam(tok + 6);

			if (gr == NULL) {
				snprintf(err, errlen, "lmtp_listen: no such group %s", tok + 6);
				return -ENOENT;
			}
			u->gid = gr->gr_gid;
		} else {
			snprintf(err, errlen, "lmtp_listen: unknown option '%s' (mode=, user=, "
			    "group=)", tok);
			return -EINVAL;
		}
	}
	if (u->path == NULL || strlen(u->path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "lmtp_listen: socket path too long (max %zu bytes)",
		    sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	return 0;
}

static int open_unix(const char *spec, int *fd_out, char *err, size_t errlen)
{
	struct unix_spec us;
	char *path;
	struct sockaddr_un sa;
	struct stat st;
	mode_t mode;
	uid_t uid;
	gid_t gid;
	int fd = -1, r;

	if ((r = parse_unix(spec, &us, err, errlen)) < 0)
		return r;
	path = us.path;
	mode = us.mode;
	uid = us.uid;
	gid = us.gid;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path));
	/* A stale socket from an earlier run: remove it, but never another kind of
	 * file, and not a socket someone is still listening on. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "lmtp_listen: %s exists and is not a socket", path);
			return -EEXIST;
		}
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(probe);
			snprintf(err, errlen, "lmtp_listen: %s is in use by another process", path);
			return -EADDRINUSE;
		}
		if (probe >= 0)
			close(probe);
		if (unlink(path) < 0) {
			r = -errno;
			snprintf(err, errlen, "lmtp_listen: cannot remove stale %s: %s", path,
			    strerror(errno));
			return r;
		}
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
		r = -errno;
		snprintf(err, errlen, "lmtp_listen: socket: %s", strerror(errno));
		return r;
	}
	/* Created 0600 and opened up only after chown/chmod: no window in which the
	 * socket is reachable with the wrong owner. */
	mode_t old = umask(0177);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || listen(fd, 128) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot bind lmtp_listen %s: %s", path, strerror(errno));
		close(fd);
		return r;
	}
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) && chown(path, uid, gid) < 0) {
		r = -errno;
		snprintf(err, errlen, "lmtp_listen: chown %s: %s", path, strerror(errno));
		close(fd);
		return r;
	}
	if (chmod(path, mode) < 0) {
		r = -errno;
		snprintf(err, errlen, "lmtp_listen: chmod %s: %s", path, strerror(errno));
		close(fd);
		return r;
	}
	*fd_out = fd;
	return 0;
}

int lmtp_listen_check(const struct vault_config *cfg, char *err, size_t errlen)
{
	int r;

	if (cfg->lmtp_listen[0] == '\0')
		return 0;
	if (cfg->lmtp_listen[0] == '/') {
		struct unix_spec us;
		char dir[256], *slash;
		struct stat st;

		if ((r = parse_unix(cfg->lmtp_listen, &us, err, errlen)) < 0)
			return r;
		snprintf(dir, sizeof(dir), "%s", us.path);
		slash = strrchr(dir, '/');
		if (slash == dir)
			slash[1] = '\0';
		else
			*slash = '\0';
		if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
			snprintf(err, errlen, "lmtp_listen: directory %s: %s", dir,
			    stat(dir, &st) < 0 ? strerror(errno) : "not a directory");
			return -ENOENT;
		}
		if (lstat(us.path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "lmtp_listen: %s exists and is not a socket", us.path);
			return -EEXIST;
		}
		return 0;
	} else {
		struct addrinfo *res = NULL;

		if ((r = resolve_tcp(cfg->lmtp_listen, &res, err, errlen)) < 0)
			return r;
		freeaddrinfo(res);
	}
	return 0;
}

int lmtp_listener_open(const struct vault_config *cfg, int *fd_out, char *err, size_t errlen)
{
	int r;

	*fd_out = -1;
	if (cfg->lmtp_listen[0] == '\0') {
		snprintf(err, errlen, "lmtp_listen is not set");
		return -EINVAL;
	}
	if (cfg->lmtp_listen[0] == '/')
		r = open_unix(cfg->lmtp_listen, fd_out, err, errlen);
	else
		r = open_tcp(cfg->lmtp_listen, fd_out, err, errlen);
	if (r == 0)
		log_info("listening on %s (LMTP)", cfg->lmtp_listen);
	return r;
}

/* ---- the LMTP process ------------------------------------------------------------- */

static volatile sig_atomic_t stop_flag;

static void on_term(int sig)
{
	(void)sig;
	stop_flag = 1;
}

/* After fork: default signals, empty mask, die with the parent. */
static void child_reset(void)
{
	struct sigaction sa;
	sigset_t none;
	const int sigs[] = { SIGCHLD, SIGHUP, SIGTERM, SIGINT };

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		(void)sigaction(sigs[i], &sa, NULL);
	sa.sa_handler = SIG_IGN;
	(void)sigaction(SIGPIPE, &sa, NULL);
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	(void)prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
}

static void peer_name(const struct sockaddr_storage *ss, char *out, size_t outsz)
{
	char ip[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET &&
	    inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, ip, sizeof(ip)))
		snprintf(out, outsz, "[%s]", ip);
	else if (ss->ss_family == AF_INET6 &&
	    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, ip, sizeof(ip)))
		snprintf(out, outsz, "[IPv6:%s]", ip);
	else
		snprintf(out, outsz, "local");
}

/* ---- the committer -------------------------------------------------------------- */

#define COMMIT_BATCH_MAX 256	/* deliveries in one transaction */

struct kconn {
	int fd;
	bool dead;
};

static void put_result(uint8_t out[8], int err, uint32_t uid)
{
	uint32_t e = (uint32_t)(int32_t)err;

	out[0] = (uint8_t)(e >> 24);
	out[1] = (uint8_t)(e >> 16);
	out[2] = (uint8_t)(e >> 8);
	out[3] = (uint8_t)e;
	out[4] = (uint8_t)(uid >> 24);
	out[5] = (uint8_t)(uid >> 16);
	out[6] = (uint8_t)(uid >> 8);
	out[7] = (uint8_t)uid;
}

/* Reads what one connection has queued (up to the batch's room) into the batch.
 * Returns false when the connection is over (closed, or it sent something not in
 * the table: a connection process we cannot trust any more). */
static bool kconn_read(struct kconn *kc, size_t idx, struct vault *v,
    struct lmtp_commit_req *batch, size_t *nb)
{
	(void)v;
	while (*nb < COMMIT_BATCH_MAX) {
		struct ipc_msg m;
		int r = ipc_recv(kc->fd, IPC_ST_COMMIT_CONN, &m);

		if (r == -EAGAIN)
			return true;
		if (r <= 0) {
			if (r < 0 && r != -EPROTO)
				log_warn("lmtp committer: connection read: %s", strerror(-r));
			return false;
		}
		memcpy(batch[*nb].wire, m.payload, sizeof(batch[*nb].wire));
		crypto_wipe(m.payload, m.len);
		batch[*nb].fd = m.fd;
		batch[*nb].conn = idx;
		batch[*nb].err = 0;
		batch[*nb].uid = 0;
		(*nb)++;
	}
	return true;
}

int lmtp_committer_run(int ctl_fd, const struct vault_config *cfg)
{
	struct vault *v = NULL;
	struct kconn *conns = NULL;
	struct pollfd *pfs = NULL;
	struct lmtp_commit_req *batch = NULL;
	struct secret *batch_mem = NULL;
	size_t nconns = 0, maxc = (size_t)cfg->max_connections + 1;
	int r;

	(void)prctl(PR_SET_NAME, (unsigned long)LMTP_PROC_NAME_COMMIT, 0, 0, 0);
	log_set_ident(LMTP_PROC_NAME_COMMIT);
	if ((r = vault_open(cfg, &v)) < 0) {
		log_err("lmtp committer: cannot open the vault: %s", vault_strerror(r));
		return 1;
	}
	conns = calloc(maxc, sizeof(*conns));
	pfs = calloc(maxc + 1, sizeof(*pfs));
	/* The batch holds each delivery's data key from its DELIVERY until
	 * lmtp_commit_batch wipes it: sodium_malloc'd (locked, wiped when freed). */
	if (secret_new(COMMIT_BATCH_MAX * sizeof(*batch), &batch_mem) == 0)
		batch = (struct lmtp_commit_req *)(void *)batch_mem->p;
	if (conns == NULL || pfs == NULL || batch == NULL) {
		r = -ENOMEM;
		goto out;
	}
	for (;;) {
		size_t nb = 0, npolled = nconns;
		int pr;

		pfs[0].fd = ctl_fd;
		pfs[0].events = POLLIN;
		for (size_t i = 0; i < nconns; i++) {
			pfs[1 + i].fd = conns[i].fd;
			pfs[1 + i].events = POLLIN;
			pfs[1 + i].revents = 0;
		}
		if ((pr = poll(pfs, 1 + npolled, -1)) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		if (pfs[0].revents) {
			struct ipc_msg m;

			while ((r = ipc_recv(ctl_fd, IPC_ST_COMMIT_CTL, &m)) == 1) {
				if (nconns >= maxc) {
					log_warn("lmtp committer: too many connections");
					close(m.fd);
					continue;
				}
				conns[nconns].fd = m.fd;
				conns[nconns].dead = false;
				nconns++;
			}
			if (r == 0 || r == -EPROTO) {	/* the LMTP process is gone */
				r = r == 0 ? 0 : 1;
				goto out;
			}
		}
		/* Everything queued now, from every connection: one transaction. While it
		 * commits, the next deliveries queue up for the next one. */
		for (size_t i = 0; i < npolled && nb < COMMIT_BATCH_MAX; i++)
			if (pfs[1 + i].revents && !kconn_read(&conns[i], i, v, batch, &nb))
				conns[i].dead = true;
		if (nb > 0) {
			/* A connection that went away after handing over: nobody will be
			 * told, so nothing is stored (the MTA sends it again). */
			for (size_t i = 0; i < nb; i++)
				if (conns[batch[i].conn].dead) {
					if (batch[i].fd >= 0)
						close(batch[i].fd);
					batch[i].fd = -1;
				}
			lmtp_commit_batch(v, batch, nb);
			log_debug("lmtp committer: %zu deliveries in one transaction", nb);
			for (size_t i = 0; i < nb; i++) {
				struct kconn *kc = &conns[batch[i].conn];
				uint8_t res[8];

				if (kc->dead)
					continue;
				put_result(res, batch[i].err, batch[i].uid);
				if (ipc_send(kc->fd, IPC_K2C_RESULT, res, sizeof(res), -1) < 0)
					kc->dead = true;
			}
		}
		for (size_t i = 0; i < nconns;) {
			if (!conns[i].dead) {
				i++;
				continue;
			}
			close(conns[i].fd);
			conns[i] = conns[--nconns];
		}
	}
out:
	for (size_t i = 0; i < nconns; i++)
		close(conns[i].fd);
	free(conns);
	free(pfs);
	secret_free(&batch_mem);
	vault_close(&v);
	return r < 0 ? 1 : r;
}

/* ---- the LMTP process ------------------------------------------------------------ */

/* Starts the committer with a fresh control socketpair; *ctl_out is ours. */
static int committer_start(int listen_fd, const struct vault_config *cfg, int *ctl_out,
    pid_t *pid_out)
{
	int sp[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return -errno;
	if ((pid = fork()) < 0) {
		int e = -errno;

		close(sp[0]);
		close(sp[1]);
		return e;
	}
	if (pid == 0) {
		child_reset();
		if (getppid() == 1)
			_exit(1);
		close(listen_fd);
		close(sp[0]);
		_exit(lmtp_committer_run(sp[1], cfg));
	}
	close(sp[1]);
	*ctl_out = sp[0];
	*pid_out = pid;
	return 0;
}

int lmtp_run(int listen_fd, const struct vault_config *cfg)
{
	struct sigaction sa;
	size_t nchildren = 0;
	int ctl = -1;
	pid_t kpid = -1;
	time_t kstarted = 0;

	(void)prctl(PR_SET_NAME, (unsigned long)LMTP_PROC_NAME, 0, 0, 0);
	log_set_ident(LMTP_PROC_NAME);
	audit_set_program(LMTP_PROC_NAME);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);
	log_info("LMTP process ready (pid %d)", (int)getpid());
	while (!stop_flag) {
		struct pollfd pf = { listen_fd, POLLIN, 0 };
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		char peer[80];
		int sp[2] = { -1, -1 };
		pid_t pid;
		int fd, st;

		while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
			if (pid == kpid) {
				log_err("LMTP committer (pid %d) ended (status %d); restarting",
				    (int)pid, st);
				close(ctl);
				ctl = -1;
				kpid = -1;
			} else
				nchildren--;
		}
		if (kpid < 0 && time(NULL) != kstarted) {	/* no busy crash loop */
			int r;

			kstarted = time(NULL);
			if ((r = committer_start(listen_fd, cfg, &ctl, &kpid)) < 0)
				log_err("cannot start the LMTP committer: %s", strerror(-r));
		}
		if (poll(&pf, 1, 500) <= 0)
			continue;
		fd = accept4(listen_fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warn("lmtp accept: %s", strerror(errno));
			continue;
		}
		if (nchildren >= cfg->max_connections) {
			static const char msg[] = "421 4.3.2 Too many connections, try again later\r\n";
			log_warn("lmtp: max_connections (%u) reached, refusing a connection",
			    cfg->max_connections);
			(void)send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			continue;
		}
		/* The connection's channel to the committer: its end goes to the committer
		 * first, so that nothing the connection sends can precede it. */
		if (kpid < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0 ||
		    ipc_send(ctl, IPC_P2K_CONN, NULL, 0, sp[1]) < 0) {
			static const char msg[] = "421 4.3.0 Mail store unavailable, try again later\r\n";
			log_err("lmtp: the committer is not reachable; refusing a connection");
			(void)send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			if (sp[0] >= 0) {
				close(sp[0]);
				close(sp[1]);
			}
			continue;
		}
		close(sp[1]);
		peer_name(&ss, peer, sizeof(peer));
		if ((pid = fork()) < 0) {
			log_err("lmtp fork: %s", strerror(errno));
			close(fd);
			close(sp[0]);
			continue;
		}
		if (pid == 0) {
			child_reset();
			if (getppid() == 1)
				_exit(1);
			close(listen_fd);
			close(ctl);
			(void)prctl(PR_SET_NAME, (unsigned long)LMTP_PROC_NAME_CONN, 0, 0, 0);
			log_set_ident(LMTP_PROC_NAME_CONN);
			audit_set_program(LMTP_PROC_NAME_CONN);
			_exit(lmtp_serve_conn(fd, cfg, peer, sp[0]) < 0 ? 1 : 0);
		}
		nchildren++;
		close(fd);
		close(sp[0]);
	}
	log_info("LMTP process stopping");
	if (ctl >= 0)
		close(ctl);	/* the committer ends when it sees this */
	return 0;
}

int lmtp_start(int listen_fd, const struct vault_config *cfg, pid_t *pid_out)
{
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		child_reset();
		if (getppid() == 1)	/* the master died between fork and prctl */
			_exit(1);
		/* Only the listening socket, the audit log and stdio: nothing else of the
		 * master's. */
		int keep[2] = { listen_fd, audit_fd() }, lo = 3;
		if (keep[1] >= 0 && keep[1] < keep[0]) {
			keep[1] = keep[0];
			keep[0] = audit_fd();
		}
		for (int i = 0; i < 2; i++) {
			if (keep[i] < 0 || keep[i] < lo)
				continue;
			if (keep[i] > lo)
				(void)close_range((unsigned)lo, (unsigned)keep[i] - 1, 0);
			lo = keep[i] + 1;
		}
		(void)close_range((unsigned)lo, ~0u, 0);
		_exit(lmtp_run(listen_fd, cfg));
	}
	*pid_out = pid;
	return 0;
}
