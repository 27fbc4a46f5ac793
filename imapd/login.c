/* login: the pre-login process, one per connection (see the model in server.c).
 *
 * Unprivileged and holding no user key: it speaks TLS, parses the client's commands
 * under tight limits, implements the not-authenticated state (RFC 9051 6.1, 6.2):
 * CAPABILITY, NOOP, LOGOUT, STARTTLS, ID, LOGIN, AUTHENTICATE PLAIN (with RFC 4959
 * SASL-IR), and runs vault_login_derive (the Argon2id work of a full login; a
 * passphrase-only login runs none here: the passphrase goes to the user's session,
 * which checks it against its window verifier). After a successful
 * login it relays between the client and the user's session process until either
 * side closes. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "crypto.h"
#include "imap-parser.h"
#include "imap-session.h"
#include "events.h"
#include "log.h"
#include "proto.h"
#include "server.h"
#include "sandbox.h"
#include "tls.h"
#include "vault.h"
#include "compat.h"

#define IN_MAX (16 * 1024)
#define WRITE_TIMEOUT_MS 30000
#define ATTACH_TIMEOUT_MS 10000
#define VERDICT_TIMEOUT_MS 30000
#define MAX_BAD_COMMANDS 20
#define RELAY_BUF (64 * 1024)
#define RELAY_HALFCLOSE_MS 60000
#define RELAY_TRIM_IDLE_MS 2000
#define USER_MAX 127
#define PASS_MAX 1024

struct login {
	const struct login_args *a;
	const struct vault_config *cfg;
	int fd, ctl;
	struct tls_conn *tls;		/* non-NULL once TLS is up */
	struct imap_parser *parser;
	struct vault *v;		/* opened at the first login attempt */
	uint8_t *in;			/* IN_MAX bytes (heap: freed before the relay);
					 * read, not yet consumed by the parser */
	size_t inlen;
	int64_t deadline_ms;		/* pre-login timeout (monotonic) */
	int64_t start_ms;		/* connection start (monotonic) */
	unsigned fails;			/* failures from this address incl. earlier ones */
	unsigned bad;			/* BAD answers on this connection */
	struct audit_ctx actx;		/* audit session id, peer (events.h) */
	/* What holds the client's credentials while a LOGIN/AUTHENTICATE runs: a
	 * successful one never returns to the code that wipes them (relay() is
	 * noreturn), so relay() wipes and frees them. */
	struct imap_cmd *cmd;		/* the command being dispatched */
	char *auth_line;		/* AUTHENTICATE's response line ... */
	size_t auth_line_len;
	uint8_t *auth_dec;		/* ... and its base64 decoding */
	size_t auth_dec_len;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The pre-login timeout runs from the last complete command, and an unauthenticated
 * connection lives at most PRELOGIN_LIFETIME_FACTOR timeouts in all (a client
 * sending NOOP forever must not hold a process forever). */
#define PRELOGIN_LIFETIME_FACTOR 10
static void touch(struct login *l)
{
	int64_t t = (int64_t)l->cfg->prelogin_timeout * 1000;

	if (l->start_ms == 0)
		l->start_ms = now_ms();
	l->deadline_ms = now_ms() + t;
	if (l->deadline_ms > l->start_ms + t * PRELOGIN_LIFETIME_FACTOR)
		l->deadline_ms = l->start_ms + t * PRELOGIN_LIFETIME_FACTOR;
}

static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd p = { fd, events, 0 };
	int64_t left;
	int r;

	for (;;) {
		left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&p, 1, left > 1000000 ? 1000000 : (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* ---- transport: plain or TLS, blocking with deadlines (pre-login only) -------- */

static ssize_t xread(struct login *l, void *buf, size_t n)
{
	ssize_t r;

	if (l->tls)
		return tls_read(l->tls, buf, n);
	r = read(l->fd, buf, n);
	if (r < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return r;
}

static ssize_t xwrite(struct login *l, const void *buf, size_t n)
{
	ssize_t r;

	if (l->tls)
		return tls_write(l->tls, buf, n);
	r = send(l->fd, buf, n, MSG_NOSIGNAL);
	if (r < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return r;
}

static short xevents(struct login *l, short plain)
{
	return l->tls ? tls_events(l->tls) : plain;
}

static int send_all(struct login *l, const void *p, size_t n)
{
	const uint8_t *b = p;
	int64_t deadline = now_ms() + WRITE_TIMEOUT_MS;
	ssize_t w;
	int r;

	while (n) {
		w = xwrite(l, b, n);
		if (w > 0) {
			b += w;
			n -= (size_t)w;
			continue;
		}
		if (w != -EAGAIN)
			return w < 0 ? (int)w : -EPIPE;
		if ((r = wait_fd(l->fd, xevents(l, POLLOUT), deadline)) < 0)
			return r;
	}
	return 0;
}

static int out(struct login *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int out(struct login *l, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf) - 2)
		return -E2BIG;
	buf[n++] = '\r';
	buf[n++] = '\n';
	return send_all(l, buf, (size_t)n);
}

/* Reads more input into l->in. >0 bytes; 0 EOF; -ETIMEDOUT pre-login timeout. */
static ssize_t fill(struct login *l)
{
	ssize_t r;
	int w;

	if (l->inlen == IN_MAX)
		return -E2BIG;
	for (;;) {
		r = xread(l, l->in + l->inlen, IN_MAX - l->inlen);
		if (r > 0) {
			l->inlen += (size_t)r;
			return r;
		}
		if (r != -EAGAIN)
			return r < 0 ? r : 0;
		if ((w = wait_fd(l->fd, xevents(l, POLLIN), l->deadline_ms)) < 0)
			return w;
	}
}

static void consume(struct login *l, size_t n)
{
	memmove(l->in, l->in + n, l->inlen - n);
	l->inlen -= n;
	crypto_wipe(l->in + l->inlen, n);	/* passwords pass through here */
}

static int tls_start(struct login *l)
{
	int r;

	if (tls_conn_new(l->a->ctx, l->fd, &l->tls) < 0)
		return -ENOMEM;
	for (;;) {
		if ((r = tls_handshake(l->tls)) == 0)
			return 0;
		if (r != -EAGAIN)
			break;
		if ((r = wait_fd(l->fd, tls_events(l->tls), l->deadline_ms)) < 0)
			break;
	}
	tls_conn_free(&l->tls);
	return r;
}

/* ---- state ------------------------------------------------------------------ */

static bool login_allowed(const struct login *l)
{
	return l->tls != NULL || (l->a->loopback && l->cfg->plaintext_loopback);
}

static bool starttls_available(const struct login *l)
{
	return l->tls == NULL && l->a->ctx != NULL && !l->a->implicit_tls;
}

static int capability(struct login *l, char *buf, size_t n)
{
	return imap_capability_string(false, l->tls != NULL, starttls_available(l),
	    login_allowed(l), buf, n);
}

/* ---- logging helpers ---------------------------------------------------------- */

/* A user name as typed, safe for a log line (it is not a secret, but clients
 * sometimes put the password there by mistake: only printable, and truncated). */
static void log_name(const char *u, size_t n, char *out, size_t outsz)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o + 1 < outsz && i < 64; i++)
		out[o++] = (u[i] > 0x20 && u[i] < 0x7f) ? u[i] : '?';
	out[o] = '\0';
}

static const char *reason_text(int r)
{
	switch (r) {
	case VAULT_ERR_NOUSER: return "unknown user";
	case VAULT_ERR_AUTH: return "wrong passphrase or token";
	case VAULT_ERR_REPLAY: return "replayed OTP (counter did not grow)";
	case VAULT_ERR_TOKEN: return "unknown token or malformed OTP";
	case VAULT_ERR_WINDOW: return "passphrase only, outside the unlock window";
	default: return "internal error";
	}
}

static uint8_t reason_code(int r)
{
	switch (r) {
	case VAULT_ERR_NOUSER: return IPC_FAIL_NOUSER;
	case VAULT_ERR_AUTH: return IPC_FAIL_AUTH;
	case VAULT_ERR_REPLAY: return IPC_FAIL_REPLAY;
	case VAULT_ERR_TOKEN: return IPC_FAIL_TOKEN;
	case VAULT_ERR_WINDOW: return IPC_FAIL_WINDOW;
	default: return IPC_FAIL_OTHER;
	}
}

/* ---- attaching to the session -------------------------------------------------- */

static int read_byte(int fd, uint8_t *b, int64_t deadline)
{
	ssize_t n;
	int r;

	for (;;) {
		n = read(fd, b, 1);
		if (n == 1)
			return 1;
		if (n == 0)
			return 0;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		if ((r = wait_fd(fd, POLLIN, deadline)) < 0)
			return r;
	}
}

static int write_all_fd(int fd, const uint8_t *p, size_t n, int64_t deadline)
{
	ssize_t w;
	int r;

	while (n) {
		w = send(fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if ((r = wait_fd(fd, POLLOUT, deadline)) < 0)
			return r;
	}
	return 0;
}

/* Asks the master for the user's session and hands it the login. Returns an
 * auth_status byte, or 0 for "the session went away, try again". *data_fd_out is
 * the relay socket on AUTH_ST_OK. */
static int attach_once(struct login *l, const struct vault_login *lg, const char *tag,
    int *data_fd_out)
{
	uint8_t pl[4 + 2 + USER_MAX];
	struct sbuf *frame = NULL;
	struct auth_frame f;
	struct ipc_msg m;
	size_t nlen = strlen(lg->user);
	int sp[2] = { -1, -1 }, r, st = AUTH_ST_ERROR;
	uint8_t b;

	if (nlen == 0 || nlen > USER_MAX)
		return AUTH_ST_ERROR;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return AUTH_ST_ERROR;
	pl[0] = (uint8_t)(lg->user_id >> 24);
	pl[1] = (uint8_t)(lg->user_id >> 16);
	pl[2] = (uint8_t)(lg->user_id >> 8);
	pl[3] = (uint8_t)lg->user_id;
	pl[4] = (uint8_t)(nlen >> 8);
	pl[5] = (uint8_t)nlen;
	memcpy(pl + 6, lg->user, nlen);
	r = ipc_send(l->ctl, IPC_L2M_ATTACH, pl, 6 + nlen, sp[1]);
	close(sp[1]);
	sp[1] = -1;
	if (r < 0)
		goto out;
	if ((r = wait_fd(l->ctl, POLLIN, now_ms() + ATTACH_TIMEOUT_MS)) < 0)
		goto out;
	if ((r = ipc_recv(l->ctl, IPC_ST_LOGIN_WAIT_ATTACH, &m)) != 1) {
		if (r == -EPROTO)
			_exit(1);	/* our own peer is compromised: fatal */
		goto out;
	}
	if (m.payload[0] == IPC_ATTACH_USER_LIMIT) {
		st = 'L';
		goto out;
	}
	if (m.payload[0] != IPC_ATTACH_OK)
		goto out;

	memset(&f, 0, sizeof(f));
	f.user_id = lg->user_id;
	f.token_index = lg->token_index;
	if (lg->token_index >= 0 && (lg->key == NULL || lg->key->len != AUTH_KEY_BYTES))
		goto detach;
	if (lg->pass == NULL || lg->pass->len == 0 || lg->pass->len > AUTH_PASS_MAX)
		goto detach;
	f.key = lg->token_index >= 0 ? lg->key->p : NULL;
	f.pass = lg->pass->p;
	f.npass = lg->pass->len;
	snprintf(f.tag, sizeof(f.tag), "%s", tag);
	snprintf(f.peer, sizeof(f.peer), "%s", l->a->peer);
	if (l->tls)
		tls_info(l->tls, f.tls_info, sizeof(f.tls_info));
	f.tls = l->tls != NULL;
	f.pending = l->in;
	f.npending = l->inlen;
	snprintf(f.sid, sizeof(f.sid), "%s", l->actx.sid);
	if (sbuf_new_secure(AUTH_FRAME_MAX, &frame) < 0 || auth_frame_put(&f, frame) < 0)
		goto detach;
	(void)fcntl(sp[0], F_SETFL, O_NONBLOCK);
	r = write_all_fd(sp[0], frame->d, frame->len, now_ms() + VERDICT_TIMEOUT_MS);
	sbuf_free(&frame);	/* wipes this copy of the keys at once */
	if (r < 0 && r != -EPIPE && r != -ECONNRESET)
		goto detach;
	r = r < 0 ? 0 : read_byte(sp[0], &b, now_ms() + VERDICT_TIMEOUT_MS);
	if (r == 0 || r == -ECONNRESET || r == -EPIPE) {
		/* Closed before a verdict (ECONNRESET: closed with our frame unread): the
		 * session was exiting when the master handed it this connection. Ask again;
		 * the master's send to it fails now and it starts a new session. */
		st = 0;
		goto detach;
	}
	if (r < 0)
		goto detach;
	st = b;
	if (st == AUTH_ST_OK) {
		*data_fd_out = sp[0];
		sp[0] = -1;
		(void)ipc_send(l->ctl, IPC_L2M_AUTH_OK, NULL, 0, -1);
		goto out;
	}
	if (st != AUTH_ST_FAIL && st != AUTH_ST_WINDOW)
		st = AUTH_ST_ERROR;
detach:
	(void)ipc_send(l->ctl, IPC_L2M_DETACH, NULL, 0, -1);
out:
	sbuf_free(&frame);
	if (sp[0] >= 0)
		close(sp[0]);
	return st;
}

static __attribute__((noreturn)) void relay(struct login *l, int sfd);

/* One login_success / login_failure audit line (events.h) and the login metric. */
static void login_audit(struct login *l, const char *user, size_t ulen,
    enum metrics_login cls, bool full)
{
	char name[USER_MAX + 1] = "";

	if (ulen > 0 && ulen <= USER_MAX) {
		memcpy(name, user, ulen);
		name[ulen] = '\0';
	}
	l->actx.tls_info[0] = '\0';
	if (l->tls)
		tls_info(l->tls, l->actx.tls_info, sizeof(l->actx.tls_info));
	audit_login(&l->actx, name, cls, full);
}

/* Shared by LOGIN and AUTHENTICATE. pass is wiped by the caller. Returns 0 to go on
 * in the not-authenticated state, 1 to close; does not return on success. */
static int do_login(struct login *l, const char *tag, const char *user, size_t ulen,
    const uint8_t *pass, size_t plen)
{
	struct vault_login lg;
	char lname[80];
	int r, st = AUTH_ST_ERROR, data_fd = -1;

	memset(&lg, 0, sizeof(lg));
	log_name(user, ulen, lname, sizeof(lname));
	if (ulen == 0 || ulen > USER_MAX || memchr(user, '\0', ulen) != NULL || plen == 0 ||
	    plen > PASS_MAX) {
		r = VAULT_ERR_NOUSER;
		goto fail;
	}
	if (l->v == NULL && (r = vault_open(l->cfg, &l->v)) < 0) {
		log_err("cannot open the vault: %s", vault_strerror(r));
		return out(l, "%s NO [UNAVAILABLE] Internal error, try again later", tag) < 0;
	}
	r = vault_login_derive(l->v, user, pass, plen, &lg);
	if (r < 0)
		goto fail;
	for (int attempt = 0; attempt < 3; attempt++)
		if ((st = attach_once(l, &lg, tag, &data_fd)) != 0)
			break;
	bool full = lg.token_index >= 0;
	vault_login_clear(&lg);	/* every key copy in this process is gone now */
	login_audit(l, user, ulen, st == AUTH_ST_OK ? ML_OK : st == 'L' ? ML_USER_LIMIT :
	    st == AUTH_ST_FAIL ? ML_BAD_PASSPHRASE : st == AUTH_ST_WINDOW ? ML_WINDOW_CLOSED :
	    ML_ERROR, full);
	if (st == AUTH_ST_OK) {
		log_info("login: user %s from %s (%s)", lname, l->a->peer,
		    full ? "passphrase + OTP" : "passphrase, unlock window");
		relay(l, data_fd);
	}
	if (st == 'L')
		return out(l, "%s NO [LIMIT] Too many connections for this user", tag) < 0;
	if (st != AUTH_ST_FAIL && st != AUTH_ST_WINDOW) {
		log_err("login: user %s from %s: could not reach the session", lname,
		    l->a->peer);
		return out(l, "%s NO [UNAVAILABLE] Internal error, try again later", tag) < 0;
	}
	r = st == AUTH_ST_WINDOW ? VAULT_ERR_WINDOW : VAULT_ERR_AUTH;
fail:
	vault_login_clear(&lg);
	l->fails++;
	{
		/* reason[, user]: the master counts failures per address and per (existing)
		 * user for the alerts. */
		uint8_t pl[1 + 2 + USER_MAX];
		size_t pn = 1;

		pl[0] = reason_code(r);
		if (r != VAULT_ERR_NOUSER && ulen > 0 && ulen <= USER_MAX) {
			pl[1] = (uint8_t)(ulen >> 8);
			pl[2] = (uint8_t)ulen;
			memcpy(pl + 3, user, ulen);
			pn = 3 + ulen;
		}
		(void)ipc_send(l->ctl, IPC_L2M_AUTH_FAILED, pl, pn, -1);
		/* The session's verdicts (FAIL, WINDOW) were audited after the attach. */
		if (st == AUTH_ST_ERROR)
			login_audit(l, user, ulen, r == VAULT_ERR_NOUSER ? ML_UNKNOWN_USER :
			    r == VAULT_ERR_REPLAY ? ML_REPLAYED_OTP : r == VAULT_ERR_TOKEN ?
			    ML_UNKNOWN_TOKEN : r == VAULT_ERR_AUTH ? ML_BAD_PASSPHRASE :
			    r == VAULT_ERR_WINDOW ? ML_WINDOW_CLOSED : ML_ERROR, false);
	}
	/* Unknown users are logged without the name (often a mistyped password). */
	unsigned delay = login_fail_delay_ms(l->fails);
	if (r == VAULT_ERR_NOUSER)
		log_warn("login failed from %s: unknown user (failure %u from this address, "
		    "answered after %u ms)", l->a->peer, l->fails, delay);
	else
		log_warn("login failed for user %s from %s: %s (failure %u from this address, "
		    "answered after %u ms)", lname, l->a->peer, reason_text(r), l->fails, delay);
	(void)poll(NULL, 0, (int)delay);
	touch(l);
	return out(l, "%s NO [AUTHENTICATIONFAILED] Authentication failed", tag) < 0;
}

/* ---- commands --------------------------------------------------------------- */

static bool is_astring(const struct imap_arg *a)
{
	return a->type == IMAP_ARG_ATOM || a->type == IMAP_ARG_QUOTED ||
	    a->type == IMAP_ARG_LITERAL || a->type == IMAP_ARG_NIL;
}

static void wipe_args(struct imap_cmd *c)
{
	for (size_t i = 0; i < c->nargs; i++)
		if (c->args[i].str)
			crypto_wipe((void *)(uintptr_t)c->args[i].str, c->args[i].len);
}

static int cmd_login(struct login *l, struct imap_cmd *c)
{
	if (c->nargs != 2 || !is_astring(&c->args[0]) || !is_astring(&c->args[1]))
		return out(l, "%s BAD LOGIN needs a user name and a password", c->tag) < 0;
	if (!login_allowed(l))
		return out(l, "%s NO [PRIVACYREQUIRED] LOGIN is disabled before STARTTLS",
		    c->tag) < 0;
	return do_login(l, c->tag, c->args[0].str, c->args[0].len,
	    (const uint8_t *)c->args[1].str, c->args[1].len);
}

/* Reads the client's AUTHENTICATE response line (RFC 9051 6.2.2). 1: *line_out;
 * 0: close; -E2BIG: too long (answered BAD already). */
static int read_auth_line(struct login *l, const char *tag, char **line_out, size_t *len_out)
{
	size_t used;
	ssize_t n;
	int r;

	for (;;) {
		r = imap_parser_feed_line(l->parser, l->in, l->inlen, &used, line_out, len_out);
		consume(l, used);
		if (r == 1)
			return 1;
		if (r == -E2BIG) {
			if (out(l, "%s BAD AUTHENTICATE response too long", tag) < 0)
				return 0;
			return -E2BIG;
		}
		if (r < 0)
			return 0;
		if ((n = fill(l)) <= 0) {
			if (n == -ETIMEDOUT)
				(void)out(l, "* BYE Pre-login timeout");
			return 0;
		}
	}
}

static int cmd_authenticate(struct login *l, struct imap_cmd *c)
{
	uint8_t *dec = NULL;
	char *line = NULL;
	const char *resp;
	size_t rlen, dlen = 0;
	int r, ret = 0;

	if (c->nargs < 1 || c->nargs > 2 || c->args[0].type != IMAP_ARG_ATOM ||
	    (c->nargs == 2 && c->args[1].type != IMAP_ARG_ATOM))
		return out(l, "%s BAD AUTHENTICATE needs a mechanism name", c->tag) < 0;
	if (strcasecmp(c->args[0].str, "PLAIN") != 0)
		return out(l, "%s NO [CANNOT] Unsupported authentication mechanism", c->tag) < 0;
	if (!login_allowed(l))
		return out(l, "%s NO [PRIVACYREQUIRED] Authentication is disabled before "
		    "STARTTLS", c->tag) < 0;
	if (c->nargs == 2) {
		/* RFC 4959: the initial response; "=" is an empty one. */
		resp = c->args[1].str;
		rlen = c->args[1].len;
		if (rlen == 1 && resp[0] == '=')
			rlen = 0;
	} else {
		/* RFC 9051 6.2.2: PLAIN has an empty initial challenge. */
		if (out(l, "+ ") < 0)
			return 1;
		if ((r = read_auth_line(l, c->tag, &line, &rlen)) <= 0)
			return r == 0;
		l->auth_line = line;
		l->auth_line_len = rlen;
		resp = line;
		if (rlen == 1 && resp[0] == '*') {
			ret = out(l, "%s BAD AUTHENTICATE cancelled", c->tag) < 0;
			goto done;
		}
	}
	if (rlen > (PASS_MAX + 2 * USER_MAX + 2) * 4 / 3 + 4 ||
	    (dec = malloc(rlen / 4 * 3 + 1)) == NULL ||
	    crypto_base64_decode(resp, rlen, dec, rlen / 4 * 3 + 1, &dlen) < 0) {
		ret = out(l, "%s BAD Invalid base64 in AUTHENTICATE response", c->tag) < 0;
		goto done;
	}
	l->auth_dec = dec;
	l->auth_dec_len = rlen / 4 * 3 + 1;
	{
		/* authzid NUL authcid NUL passwd (RFC 4616). */
		uint8_t *z1 = memchr(dec, 0, dlen), *z2;
		size_t zlen, ulen;
		if (z1 == NULL || (z2 = memchr(z1 + 1, 0, dlen - (size_t)(z1 + 1 - dec))) == NULL) {
			ret = out(l, "%s BAD Malformed PLAIN response", c->tag) < 0;
			goto done;
		}
		zlen = (size_t)(z1 - dec);
		ulen = (size_t)(z2 - z1 - 1);
		if (zlen && (zlen != ulen || memcmp(dec, z1 + 1, ulen) != 0)) {
			ret = out(l, "%s NO [AUTHORIZATIONFAILED] Cannot act as another user",
			    c->tag) < 0;
			goto done;
		}
		char user[USER_MAX + 1];
		if (ulen == 0 || ulen > USER_MAX) {
			ret = do_login(l, c->tag, "", 0, (const uint8_t *)"", 0);
			goto done;
		}
		memcpy(user, z1 + 1, ulen);
		user[ulen] = '\0';
		ret = do_login(l, c->tag, user, ulen, z2 + 1, dlen - (size_t)(z2 + 1 - dec));
	}
done:
	if (dec) {
		crypto_wipe(dec, rlen / 4 * 3 + 1);
		free(dec);
	}
	if (line) {
		crypto_wipe(line, rlen);
		free(line);
	}
	l->auth_dec = NULL;
	l->auth_line = NULL;
	return ret;
}

static int cmd_id(struct login *l, struct imap_cmd *c)
{
	/* RFC 2971: one argument, NIL or a list of string pairs (at most 30). */
	if (c->nargs != 1 || (c->args[0].type != IMAP_ARG_NIL &&
	    (c->args[0].type != IMAP_ARG_LIST || c->args[0].list_n % 2 != 0 ||
	    c->args[0].list_n > 60)))
		return out(l, "%s BAD ID takes NIL or a list of field/value pairs", c->tag) < 0;
	if (out(l, "* ID (\"name\" \"sealmail\" \"vendor\" \"sealmail\")") < 0)
		return 1;
	return out(l, "%s OK ID completed", c->tag) < 0;
}

/* Commands of the later states (RFC 9051 6.3, 6.4) and extensions. */
static const char *const later_cmds[] = {
	"SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE",
	"LIST", "LSUB", "NAMESPACE", "STATUS", "APPEND", "IDLE", "ENABLE", "CLOSE",
	"UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE", "UID FETCH",
	"UID STORE", "UID COPY", "UID MOVE", "UID SEARCH", "UID EXPUNGE", "CHECK",
	"GETQUOTA", "GETQUOTAROOT", "SORT", "THREAD", "UID SORT", "UID THREAD", "COMPRESS",
	"UNAUTHENTICATE", "XLIST", "SETQUOTA", "GETMETADATA", "SETMETADATA", "ESEARCH",
};

/* 0: continue; 1: close. */
static int dispatch(struct login *l, struct imap_cmd *c)
{
	char caps[1024];
	const char *n = c->name;

	if (strcmp(n, "CAPABILITY") == 0) {
		if (c->nargs)
			return out(l, "%s BAD CAPABILITY takes no arguments", c->tag) < 0;
		if (capability(l, caps, sizeof(caps)) < 0)
			return 1;
		if (out(l, "* CAPABILITY %s", caps) < 0)
			return 1;
		return out(l, "%s OK CAPABILITY completed", c->tag) < 0;
	}
	if (strcmp(n, "NOOP") == 0) {
		if (c->nargs)
			return out(l, "%s BAD NOOP takes no arguments", c->tag) < 0;
		return out(l, "%s OK NOOP completed", c->tag) < 0;
	}
	if (strcmp(n, "LOGOUT") == 0) {
		if (c->nargs)
			return out(l, "%s BAD LOGOUT takes no arguments", c->tag) < 0;
		(void)out(l, "* BYE sealmail logging out");
		(void)out(l, "%s OK LOGOUT completed", c->tag);
		return 1;
	}
	if (strcmp(n, "STARTTLS") == 0) {
		if (c->nargs)
			return out(l, "%s BAD STARTTLS takes no arguments", c->tag) < 0;
		if (l->tls)
			return out(l, "%s BAD TLS is already active", c->tag) < 0;
		if (!starttls_available(l))
			return out(l, "%s NO STARTTLS is not available here", c->tag) < 0;
		if (out(l, "%s OK Begin TLS negotiation now", c->tag) < 0)
			return 1;
		/* RFC 9051 6.2.1 / RFC 7817: bytes the client sent after STARTTLS before
		 * the handshake are discarded, never executed after TLS is up (the
		 * plaintext command injection attack). */
		consume(l, l->inlen);
		imap_parser_reset(l->parser);
		if (tls_start(l) < 0) {
			log_info("STARTTLS handshake failed from %s", l->a->peer);
			return 1;
		}
		return 0;
	}
	if (strcmp(n, "ID") == 0)
		return cmd_id(l, c);
	if (strcmp(n, "LOGIN") == 0)
		return cmd_login(l, c);
	if (strcmp(n, "AUTHENTICATE") == 0)
		return cmd_authenticate(l, c);
	for (size_t i = 0; i < sizeof(later_cmds) / sizeof(later_cmds[0]); i++)
		if (strcmp(n, later_cmds[i]) == 0)
			return out(l, "%s NO [?] %s is not valid before login", c->tag, n) < 0 ? 1 : 0;
	l->bad++;
	return out(l, "%s BAD Unknown command", c->tag) < 0;
}

/* ---- relay --------------------------------------------------------------------- */

struct ring {
	uint8_t *d;
	size_t start, len;
};

static void relay_close(struct login *l)
{
	if (l->tls) {
		tls_close_notify(l->tls);
		tls_conn_free(&l->tls);
	}
	close(l->fd);
}

/* Relay buffers are their own anonymous mappings so that an idle relay can give
 * their pages back (MADV_DONTNEED: the next use faults in zero pages). */
static uint8_t *relay_buf_new(void)
{
	void *p = mmap(NULL, RELAY_BUF, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
	    -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* After RELAY_TRIM_IDLE_MS without traffic: the buffers' pages and the heap pages
 * OpenSSL's released record buffers (SSL_MODE_RELEASE_BUFFERS) leave go back to the
 * kernel, so thousands of idle connections cost little more than their page tables
 * and the pages they share with the master. */
static void relay_trim(struct ring *a, struct ring *b)
{
	crypto_wipe(a->d, RELAY_BUF);	/* mail passed through; DONTNEED drops it anyway */
	crypto_wipe(b->d, RELAY_BUF);
	(void)madvise(a->d, RELAY_BUF, MADV_DONTNEED);
	(void)madvise(b->d, RELAY_BUF, MADV_DONTNEED);
	a->start = b->start = 0;
	(void)malloc_trim(0);
}

static __attribute__((noreturn)) void relay(struct login *l, int sfd)
{
	struct ring c2s = { NULL, 0, 0 }, s2c = { NULL, 0, 0 };
	bool c_eof = false, s_eof = false, s_shut = false, dirty = false;
	short c_rd_want = POLLIN, c_wr_want = POLLOUT;
	int64_t halfclose_deadline = 0;
	int status = 0;

	/* Nothing of the pre-login state is needed any more: free it and hand the
	 * freed heap back, so the relay keeps only what it uses. The LOGIN or
	 * AUTHENTICATE that got us here first: its passphrase (imap_cmd_free wipes
	 * the command's whole buffer). */
	imap_cmd_free(&l->cmd);
	if (l->auth_line != NULL) {
		crypto_wipe(l->auth_line, l->auth_line_len);
		free(l->auth_line);
		l->auth_line = NULL;
	}
	if (l->auth_dec != NULL) {
		crypto_wipe(l->auth_dec, l->auth_dec_len);
		free(l->auth_dec);
		l->auth_dec = NULL;
	}
	imap_parser_free(&l->parser);
	vault_close(&l->v);
	if (l->cfg->seccomp && sandbox_apply(SANDBOX_RELAY) < 0)
		_exit(1);
	crypto_wipe(l->in, IN_MAX);
	free(l->in);
	l->in = NULL;
	l->inlen = 0;
	if ((c2s.d = relay_buf_new()) == NULL || (s2c.d = relay_buf_new()) == NULL)
		_exit(1);
	(void)malloc_trim(0);
	(void)fcntl(sfd, F_SETFL, O_NONBLOCK);

	for (;;) {
		bool progress = true;

		while (progress) {
			ssize_t n;
			progress = false;
			/* client -> buffer */
			if (!c_eof && c2s.len < RELAY_BUF) {
				if (c2s.start && c2s.len == 0)
					c2s.start = 0;
				if (c2s.start + c2s.len == RELAY_BUF) {
					memmove(c2s.d, c2s.d + c2s.start, c2s.len);
					c2s.start = 0;
				}
				n = xread(l, c2s.d + c2s.start + c2s.len,
				    RELAY_BUF - c2s.start - c2s.len);
				if (n > 0) {
					c2s.len += (size_t)n;
					progress = dirty = true;
				} else if (n == -EAGAIN) {
					c_rd_want = xevents(l, POLLIN);
				} else {
					c_eof = true;
					progress = true;
				}
			}
			/* buffer -> session */
			if (c2s.len) {
				n = send(sfd, c2s.d + c2s.start, c2s.len, MSG_NOSIGNAL);
				if (n > 0) {
					c2s.start += (size_t)n;
					c2s.len -= (size_t)n;
					progress = true;
				} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
					goto done;	/* the session is gone */
				}
			}
			if (c_eof && c2s.len == 0 && !s_shut) {
				(void)shutdown(sfd, SHUT_WR);
				s_shut = true;
				halfclose_deadline = now_ms() + RELAY_HALFCLOSE_MS;
			}
			/* session -> buffer */
			if (!s_eof && s2c.len < RELAY_BUF) {
				if (s2c.start && s2c.len == 0)
					s2c.start = 0;
				if (s2c.start + s2c.len == RELAY_BUF) {
					memmove(s2c.d, s2c.d + s2c.start, s2c.len);
					s2c.start = 0;
				}
				n = read(sfd, s2c.d + s2c.start + s2c.len,
				    RELAY_BUF - s2c.start - s2c.len);
				if (n > 0) {
					s2c.len += (size_t)n;
					progress = dirty = true;
				} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
					s_eof = true;
					progress = true;
				}
			}
			/* buffer -> client */
			if (s2c.len) {
				n = xwrite(l, s2c.d + s2c.start, s2c.len);
				if (n > 0) {
					s2c.start += (size_t)n;
					s2c.len -= (size_t)n;
					progress = true;
				} else if (n == -EAGAIN) {
					c_wr_want = xevents(l, POLLOUT);
				} else {
					goto done;	/* the client is gone */
				}
			}
			if (s_eof && s2c.len == 0)
				goto done;
		}
		struct pollfd p[2];
		int timeout = -1;
		p[0] = (struct pollfd){ l->fd, 0, 0 };
		if (!c_eof && c2s.len < RELAY_BUF)
			p[0].events |= c_rd_want;
		if (s2c.len)
			p[0].events |= c_wr_want;
		p[1] = (struct pollfd){ sfd, 0, 0 };
		if (!s_eof && s2c.len < RELAY_BUF)
			p[1].events |= POLLIN;
		if (c2s.len)
			p[1].events |= POLLOUT;
		if (s_shut) {
			int64_t left = halfclose_deadline - now_ms();
			if (left <= 0)
				goto done;
			timeout = (int)left;
		}
		bool trim_due = dirty && c2s.len == 0 && s2c.len == 0 &&
		    !(l->tls && tls_pending(l->tls));
		if (trim_due && (timeout < 0 || timeout > RELAY_TRIM_IDLE_MS))
			timeout = RELAY_TRIM_IDLE_MS;
		int pr = poll(p, 2, timeout);
		if (pr < 0 && errno != EINTR) {
			status = 1;
			goto done;
		}
		if (pr == 0 && trim_due) {
			relay_trim(&c2s, &s2c);
			dirty = false;
		}
	}
done:
	relay_close(l);
	close(sfd);
	if (dirty) {
		crypto_wipe(c2s.d, RELAY_BUF);
		crypto_wipe(s2c.d, RELAY_BUF);
	}
	_exit(status);
}

/* ---- main ------------------------------------------------------------------------ */

void login_main(const struct login_args *a)
{
	static struct login L;
	struct imap_parser_limits lim;
	struct imap_cmd *c = NULL;
	char caps[1024];
	size_t used;
	ssize_t n;
	int r;

	proc_set_name(PROC_NAME_LOGIN);
	log_set_ident("imapd-login");
	(void)crypto_harden_process();	/* passphrases pass through this process */
	if (a->cfg->seccomp && sandbox_apply(SANDBOX_LOGIN) < 0)
		_exit(1);
	memset(&L, 0, sizeof(L));
	L.a = a;
	L.cfg = a->cfg;
	L.fd = a->fd;
	L.ctl = a->ctl;
	L.fails = a->prior_failures;
	if ((L.in = malloc(IN_MAX)) == NULL)
		_exit(1);
	audit_set_program("imapd-login");
	audit_ctx_init(&L.actx, a->peer);
	touch(&L);
	imap_parser_limits_prelogin(&lim);
	lim.max_line = 8 * 1024;
	lim.max_literal = 8 * 1024;
	lim.max_literal_total = 8 * 1024;
	if (imap_parser_new(&lim, &L.parser) < 0)
		_exit(1);
	if (a->implicit_tls && tls_start(&L) < 0) {
		log_debug("TLS handshake failed from %s", a->peer);
		close(L.fd);
		_exit(0);
	}
	if (capability(&L, caps, sizeof(caps)) < 0 ||
	    out(&L, "* OK [CAPABILITY %s] sealmail ready", caps) < 0)
		goto close;

	for (;;) {
		r = imap_parser_feed(L.parser, L.in, L.inlen, &used, &c);
		consume(&L, used);
		if (r == 1 && strlen(c->tag) > AUTH_TAG_MAX) {
			/* The session answers the LOGIN tag; keep tags within the frame. */
			L.bad++;
			wipe_args(c);
			imap_cmd_free(&c);
			if (out(&L, "* BAD Tag too long") < 0)
				goto close;
			continue;
		}
		if (r == 1) {
			touch(&L);
			bool secret = strcmp(c->name, "LOGIN") == 0 ||
			    strcmp(c->name, "AUTHENTICATE") == 0;
			L.cmd = c;
			r = dispatch(&L, c);
			L.cmd = NULL;
			if (secret)
				wipe_args(c);
			imap_cmd_free(&c);
			if (r)
				goto close;
			continue;
		}
		if (r == IMAP_PARSE_CONTINUE) {
			if (out(&L, "+ Ready for literal data") < 0)
				goto close;
			continue;
		}
		if (r == -EPROTO || r == -E2BIG) {
			const char *tag = imap_parser_error_tag(L.parser);
			L.bad++;
			if (out(&L, "%s BAD %s%s", tag ? tag : "*",
			    r == -E2BIG ? "[TOOBIG] " : "", imap_parser_error(L.parser)) < 0)
				goto close;
			if (L.bad > MAX_BAD_COMMANDS) {
				(void)out(&L, "* BYE Too many invalid commands");
				goto close;
			}
			continue;
		}
		if (r < 0) {	/* IMAP_PARSE_FATAL, -ENOMEM */
			const char *tag = imap_parser_error_tag(L.parser);
			if (tag)
				(void)out(&L, "%s BAD [TOOBIG] Literal too large", tag);
			(void)out(&L, "* BYE Cannot continue this connection");
			goto close;
		}
		/* r == 0: need more input */
		n = fill(&L);
		if (n == -ETIMEDOUT) {
			(void)out(&L, "* BYE Pre-login timeout, closing");
			log_debug("pre-login timeout from %s", a->peer);
			goto close;
		}
		if (n <= 0)
			goto close;
	}
close:
	if (L.tls) {
		tls_close_notify(L.tls);
		tls_conn_free(&L.tls);
	}
	imap_parser_free(&L.parser);
	vault_close(&L.v);
	close(L.fd);
	_exit(0);
}
