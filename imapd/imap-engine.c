/* The command engine: connection lifecycle, the read/parse/dispatch loop, tagged
 * responses with the untagged updates the RFC allows at that point, timeouts, and
 * the per-user tick that notices changes made by other processes. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "imap-engine-private.h"
#include "log.h"
#include "metrics.h"

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Commands processed per imap_client_handle call before giving the other
 * connections of the process a turn. */
#define CMD_BUDGET 32
#define KEYS_REFRESH_SECS 5

/* ---- users ------------------------------------------------------------------- */

struct engine_write_ctx {
	struct imap_client *c;
	int (*fn)(struct imap_client *c, struct vault_txn *t, void *arg);
	void *arg;
};

static int engine_write_fn(struct vault_txn *t, void *arg)
{
	struct engine_write_ctx *w = arg;

	return w->fn(w->c, t, w->arg);
}

int engine_write(struct imap_client *c, int (*fn)(struct imap_client *c,
    struct vault_txn *t, void *arg), void *arg)
{
	struct engine_write_ctx w = { c, fn, arg };

	return vault_write(c->u->v, engine_write_fn, &w);
}

int imap_user_new(struct vault *v, struct vault_keys *k, const struct vault_config *cfg,
    struct imap_user **out)
{
	struct imap_user *u;
	struct vault_txn *t = NULL;
	int r;

	*out = NULL;
	if ((u = calloc(1, sizeof(*u))) == NULL)
		return -ENOMEM;
	u->v = v;
	u->k = k;
	u->cfg = cfg;
	u->user_id = vault_keys_user_id(k);
	/* Without the blob cache everything still works, only slower. */
	if (blobcache_init(&u->bc, (size_t)cfg->session_cache_size) < 0)
		log_warn("session: no memory for the blob cache");
	if ((r = vault_txn_begin(v, false, &t)) == 0) {
		r = vault_user_change_seq(t, u->user_id, &u->change_seq);
		vault_txn_abort(&t);
	}
	if (r < 0) {
		/* The user takes ownership only on success. */
		blobcache_free(&u->bc);
		free(u);
		return r;
	}
	*out = u;
	return 0;
}

void imap_user_free(struct imap_user **up)
{
	struct imap_user *u;

	if (up == NULL || (u = *up) == NULL)
		return;
	*up = NULL;
	while (u->clients != NULL) {
		struct imap_client *c = u->clients;

		imap_client_free(&c);
	}
	/* Idle states outlive their views (mbox_state_unref). */
	user_states_free(u);
	blobcache_free(&u->bc);
	vault_keys_free(&u->k);
	vault_close(&u->v);
	free(u);
}

struct vault_keys *imap_user_keys(struct imap_user *u)
{
	return u->k;
}

size_t imap_user_nclients(const struct imap_user *u)
{
	return u->nclients;
}

int imap_user_tick(struct imap_user *u, time_t now)
{
	struct vault_txn *t = NULL;
	uint64_t seq = 0;
	int r;

	if ((r = vault_txn_begin(u->v, false, &t)) < 0)
		return r;
	r = vault_user_change_seq(t, u->user_id, &seq);
	vault_txn_abort(&t);
	if (r < 0)
		return r;
	if (seq == u->change_seq)
		return 0;
	u->change_seq = seq;
	/* A rotation by keymgr creates an epoch whose secret we must open before we
	 * can read mail delivered to it. Cheap, but not on every change. */
	if (now - u->last_keys_refresh >= KEYS_REFRESH_SECS) {
		u->last_keys_refresh = now;
		if ((r = vault_keys_refresh(u->v, u->k)) < 0)
			log_warn("session: key refresh failed: %s", vault_strerror(r));
	}
	if ((r = user_refresh_all(u, true)) < 0)
		log_warn("session: refresh failed: %s", vault_strerror(r));
	user_push_idle(u);
	return 0;
}

/* ---- clients ------------------------------------------------------------------- */

static int client_limits(struct imap_client *c, struct imap_parser_limits *lim)
{
	uint64_t maxmsg = c->u->cfg->max_message_size;

	imap_parser_limits_default(lim);
	/* Literals up to APPENDLIMIT are read; bigger synchronizing ones are refused
	 * before "+" (NO [TOOBIG]), bigger non-synchronizing ones end the connection
	 * (RFC 7888 section 4 leaves no other way to resynchronise). */
	if (maxmsg > 0 && maxmsg < SIZE_MAX / 8) {
		lim->max_literal = (size_t)maxmsg;
		if (lim->max_literal_total < lim->max_literal)
			lim->max_literal_total = lim->max_literal;
	}
	return 0;
}

static int send_greeting(struct imap_client *c, const char *login_tag)
{
	char caps[1024];
	int r;

	if ((r = engine_capability(c, caps, sizeof(caps))) < 0)
		return r;
	if (login_tag == NULL)
		return out_printf(c, "* PREAUTH [CAPABILITY %s] %s ready\r\n", caps,
		    ENGINE_NAME);
	return out_printf(c, "%s OK [CAPABILITY %s] Logged in\r\n", login_tag, caps);
}

int imap_client_new(struct imap_user *u, const struct imap_client_params *p,
    struct imap_client **out)
{
	struct imap_parser_limits lim;
	struct imap_client *c;
	int r;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -ENOMEM;
	c->fd = -1;
	c->u = u;
	c->tls = p->tls;
	c->state = CS_AUTH;
	c->id = ++u->next_client_id;
	snprintf(c->peer, sizeof(c->peer), "%s", p->peer != NULL ? p->peer : "");
	audit_ctx_init(&c->actx, c->peer);
	if (p->session_id != NULL && p->session_id[0] != '\0')
		snprintf(c->actx.sid, sizeof(c->actx.sid), "%s", p->session_id);
	snprintf(c->actx.user, sizeof(c->actx.user), "%s", p->user ? p->user : "");
	snprintf(c->actx.tls_info, sizeof(c->actx.tls_info), "%s",
	    p->tls_info ? p->tls_info : "");
	c->conn_start_us = mono_us();
	c->incap = IN_CHUNK > p->npending ? IN_CHUNK : p->npending;
	if ((c->in = malloc(c->incap)) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	if ((r = sbuf_new_secure(SIZE_MAX / 4, &c->out)) < 0)
		goto fail;
	client_limits(c, &lim);
	if ((r = imap_parser_new(&lim, &c->parser)) < 0)
		goto fail;
	if (p->npending > 0) {
		/* Commands the client pipelined behind LOGIN arrived with the auth frame;
		 * no fd event will announce them, so mark the client runnable:
		 * imap_client_timeout() then returns 0 and the caller's loop runs them. */
		memcpy(c->in, p->pending, p->npending);
		c->inlen = p->npending;
		c->runnable = true;
	}
	if ((r = send_greeting(c, p->login_tag)) < 0)
		goto fail;
	c->fd = p->fd;
	c->last_active = time(NULL);
	c->next = u->clients;
	if (u->clients != NULL)
		u->clients->prev = c;
	u->clients = c;
	u->nclients++;
	out_flush(c);
	*out = c;
	return 0;
fail:
	imap_parser_free(&c->parser);
	sbuf_free(&c->out);
	free(c->in);
	free(c);
	return r;
}

int imap_client_fd(const struct imap_client *c)
{
	return c->fd;
}

static bool backlogged(const struct imap_client *c)
{
	return out_pending(c) >= OUT_HIGH;
}

short imap_client_events(const struct imap_client *c)
{
	short ev = 0;

	if (out_pending(c) > 0)
		ev |= POLLOUT;
	/* Stop reading while output is backed up or a command is still producing it;
	 * also once the input buffer is full (the parser will make room). */
	if (!c->closing && out_pending(c) < OUT_LOW && c->resume == NULL &&
	    c->inlen < c->incap && !(c->deflate && c->zrawlen >= c->incap))
		ev |= POLLIN;
	return ev;
}

static void client_end_command(struct imap_client *c)
{
	if (c->resume_free != NULL && c->resume_ctx != NULL)
		c->resume_free(c->resume_ctx);
	c->resume = NULL;
	c->resume_ctx = NULL;
	c->resume_free = NULL;
	imap_cmd_free(&c->cmd);
}

void imap_client_free(struct imap_client **cp)
{
	struct imap_client *c;

	if (cp == NULL || (c = *cp) == NULL)
		return;
	*cp = NULL;
	if (c->idling)
		metrics_idle(-1);
	if (audit_enabled()) {
		struct audit_rec ar;

		audit_begin(&ar, "logout");
		audit_ctx_fields(&ar, &c->actx);
		audit_str(&ar, "reason", c->eof ? "eof" : c->fatal ? "error" :
		    c->closing ? "bye" : "closed");
		audit_u64(&ar, "commands", c->ncmds);
		audit_u64(&ar, "bytes_out", out_produced(c));
		audit_u64(&ar, "duration_ms", (mono_us() - c->conn_start_us) / 1000);
		(void)audit_emit(&ar);
	}
	client_end_command(c);
	view_close(c);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else if (c->u->clients == c)
		c->u->clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->u->nclients--;
	if (c->fd >= 0)
		close(c->fd);
	if (c->deflate) {
		deflateEnd(&c->zout);
		inflateEnd(&c->zin);
	}
	sbuf_free(&c->zbuf);
	if (c->zraw != NULL) {
		explicit_bzero(c->zraw, c->incap);
		free(c->zraw);
	}
	imap_parser_free(&c->parser);
	sbuf_free(&c->out);
	if (c->in != NULL) {
		explicit_bzero(c->in, c->incap);
		free(c->in);
	}
	free(c->idle_tag);
	free(c->saved);
	free(c);
}

void client_set_resume(struct imap_client *c, cmd_resume_fn fn, void *ctx,
    void (*ctx_free)(void *))
{
	c->resume = fn;
	c->resume_ctx = ctx;
	c->resume_free = ctx_free;
}

/* ---- tagged responses ------------------------------------------------------------ */

bool cmd_is_uid(const struct imap_cmd *cmd)
{
	return strncmp(cmd->name, "UID ", 4) == 0;
}

/* RFC 9051 7.5.1: no EXPUNGE while responding to FETCH, STORE or SEARCH (the UID
 * forms may). COPY is sequence-based too, so it waits as well. */
bool cmd_allows_expunge(const struct imap_cmd *cmd)
{
	static const char *const no[] = { "FETCH", "STORE", "SEARCH", "COPY" };

	if (cmd == NULL)
		return true;
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (strcmp(cmd->name, no[i]) == 0)
			return false;
	return true;
}

static int tagged(struct imap_client *c, const struct imap_cmd *cmd, const char *what,
    const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

/* Which argument names a mailbox, per verb (-1: none); RENAME's second too. */
static int mbox_arg(const char *verb, bool *second)
{
	static const char *const first[] = { "SELECT", "EXAMINE", "CREATE", "DELETE",
		"RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "STATUS", "APPEND" };

	*second = strcmp(verb, "RENAME") == 0;
	for (size_t i = 0; i < sizeof(first) / sizeof(first[0]); i++)
		if (strcmp(verb, first[i]) == 0)
			return 0;
	if (strcmp(verb, "COPY") == 0 || strcmp(verb, "MOVE") == 0 ||
	    strcmp(verb, "UID COPY") == 0 || strcmp(verb, "UID MOVE") == 0)
		return 1;
	return -1;
}

static void audit_mbox_arg(struct audit_rec *r, const char *key, const struct imap_arg *a)
{
	if (a->type != IMAP_ARG_LIST && a->str != NULL)
		audit_mbox_field(r, key, a->str, a->len);
}

/* One tagged response to a command: the audit line (docs/audit.md "command"), the
 * metrics, and the mass_expunge check. Never the arguments themselves. */
void cmd_done(struct imap_client *c, const struct imap_cmd *cmd, enum metrics_result res)
{
	static const char *const rname[] = { "OK", "NO", "BAD" };
	uint64_t us = mono_us() - c->cmd_start_us, gone = c->cmd_expunged, day = 0;
	const char *verb = cmd->name != NULL ? cmd->name : "";
	struct audit_rec ar;
	bool second;
	int ai;

	c->ncmds++;
	metrics_command(verb, res, us);
	if (gone > 0)
		day = metrics_expunged(c->u->user_id, gone, time(NULL));
	c->cmd_expunged = 0;
	if (!audit_enabled())
		return;
	audit_begin(&ar, "command");
	audit_ctx_fields(&ar, &c->actx);
	audit_str(&ar, "verb", verb);
	audit_str(&ar, "tag", cmd->tag);
	audit_str(&ar, "result", rname[res]);
	audit_u64(&ar, "messages", c->cmd_msgs > gone ? c->cmd_msgs : gone);
	if (gone > 0)
		audit_u64(&ar, "expunged", gone);
	audit_u64(&ar, "bytes_in", cmd->literal_bytes);
	audit_u64(&ar, "bytes_out", out_produced(c) - c->cmd_mark);
	audit_u64(&ar, "duration_ms", us / 1000);
	if ((ai = mbox_arg(verb, &second)) >= 0 && (size_t)ai < cmd->nargs) {
		audit_mbox_arg(&ar, "mailbox", &cmd->args[ai]);
		if (second && cmd->nargs > 1)
			audit_mbox_arg(&ar, "mailbox_new", &cmd->args[1]);
	}
	(void)audit_emit(&ar);
	if (c->u->cfg->audit_mass_expunge > 0 && day > c->u->cfg->audit_mass_expunge &&
	    day - gone <= c->u->cfg->audit_mass_expunge) {
		/* Crossed the threshold with this command: once per crossing. */
		audit_begin(&ar, "mass_expunge");
		audit_ctx_fields(&ar, &c->actx);
		audit_u64(&ar, "expunged_24h", day);
		audit_u64(&ar, "threshold", c->u->cfg->audit_mass_expunge);
		(void)audit_emit(&ar);
	}
}

static int tagged(struct imap_client *c, const struct imap_cmd *cmd, const char *what,
    const char *fmt, va_list ap)
{
	char text[1024];
	int r;

	if (c->view != NULL && (r = view_sync(c, cmd_allows_expunge(cmd))) < 0)
		return r;
	vsnprintf(text, sizeof(text), fmt, ap);
	r = out_printf(c, "%s %s %s\r\n", cmd != NULL ? cmd->tag : "*", what, text);
	if (cmd != NULL)
		cmd_done(c, cmd, what[0] == 'O' ? MR_OK : MR_NO);
	return r;
}

int cmd_ok(struct imap_client *c, const struct imap_cmd *cmd, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = tagged(c, cmd, "OK", fmt, ap);
	va_end(ap);
	return r;
}

int cmd_no(struct imap_client *c, const struct imap_cmd *cmd, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = tagged(c, cmd, "NO", fmt, ap);
	va_end(ap);
	return r;
}

int cmd_bad(struct imap_client *c, const struct imap_cmd *cmd, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	/* No sync for BAD: the command did nothing (RFC 9051 7.1.5). */
	int r;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	r = out_printf(c, "%s BAD %s\r\n", cmd != NULL ? cmd->tag : "*", text);
	if (cmd != NULL)
		cmd_done(c, cmd, MR_BAD);
	return r;
}

int cmd_vault_err(struct imap_client *c, const struct imap_cmd *cmd, int err)
{
	switch (err) {
	case VAULT_ERR_NOMBOX:
		return cmd_no(c, cmd, "[NONEXISTENT] Mailbox doesn't exist");
	case VAULT_ERR_NOMSG:
		return cmd_no(c, cmd, "[EXPUNGEISSUED] Message was expunged");
	case VAULT_ERR_FULL:
	case -ENOSPC:
		return cmd_no(c, cmd, "[OVERQUOTA] Store is full");
	case -EEXIST:
		return cmd_no(c, cmd, "[ALREADYEXISTS] Mailbox already exists");
	case -E2BIG:
		return cmd_no(c, cmd, "[TOOBIG] Too big");
	case -EPERM:
		return cmd_no(c, cmd, "[CANNOT] Operation not permitted");
	case VAULT_ERR_TAMPER:
	case VAULT_ERR_CORRUPT:
		log_err("session: stored record failed authentication: %s",
		    vault_strerror(err));
		return cmd_no(c, cmd, "[CORRUPTION] Stored data failed its integrity check");
	default:
		log_warn("session: internal error: %s", vault_strerror(err));
		return cmd_no(c, cmd, "[SERVERBUG] Internal error");
	}
}

/* ---- dispatch ---------------------------------------------------------------------- */

struct cmd_def {
	const char *name;
	unsigned states;	/* enum client_state mask */
	cmd_fn fn;
};

static const struct cmd_def cmd_table[] = {
	{ "CAPABILITY", CS_AUTH | CS_SELECTED, cmd_capability },
	{ "NOOP", CS_AUTH | CS_SELECTED, cmd_noop },
	{ "LOGOUT", CS_AUTH | CS_SELECTED, cmd_logout },
	{ "ENABLE", CS_AUTH | CS_SELECTED, cmd_enable },
	{ "ID", CS_AUTH | CS_SELECTED, cmd_id },
	{ "NAMESPACE", CS_AUTH | CS_SELECTED, cmd_namespace },
	{ "COMPRESS", CS_AUTH | CS_SELECTED, cmd_compress },
	{ "IDLE", CS_AUTH | CS_SELECTED, cmd_idle },
	{ "SELECT", CS_AUTH | CS_SELECTED, cmd_select },
	{ "EXAMINE", CS_AUTH | CS_SELECTED, cmd_select },
	{ "CREATE", CS_AUTH | CS_SELECTED, cmd_create },
	{ "DELETE", CS_AUTH | CS_SELECTED, cmd_delete },
	{ "RENAME", CS_AUTH | CS_SELECTED, cmd_rename },
	{ "SUBSCRIBE", CS_AUTH | CS_SELECTED, cmd_subscribe },
	{ "UNSUBSCRIBE", CS_AUTH | CS_SELECTED, cmd_subscribe },
	{ "LIST", CS_AUTH | CS_SELECTED, cmd_list },
	{ "LSUB", CS_AUTH | CS_SELECTED, cmd_list },
	{ "STATUS", CS_AUTH | CS_SELECTED, cmd_status },
	{ "APPEND", CS_AUTH | CS_SELECTED, cmd_append },
	{ "CHECK", CS_SELECTED, cmd_check },
	{ "CLOSE", CS_SELECTED, cmd_close },
	{ "UNSELECT", CS_SELECTED, cmd_close },
	{ "EXPUNGE", CS_SELECTED, cmd_expunge },
	{ "UID EXPUNGE", CS_SELECTED, cmd_expunge },
	{ "SEARCH", CS_SELECTED, cmd_search },
	{ "UID SEARCH", CS_SELECTED, cmd_search },
	{ "FETCH", CS_SELECTED, cmd_fetch },
	{ "UID FETCH", CS_SELECTED, cmd_fetch },
	{ "STORE", CS_SELECTED, cmd_store },
	{ "UID STORE", CS_SELECTED, cmd_store },
	{ "COPY", CS_SELECTED, cmd_copy },
	{ "UID COPY", CS_SELECTED, cmd_copy },
	{ "MOVE", CS_SELECTED, cmd_copy },
	{ "UID MOVE", CS_SELECTED, cmd_copy },
	{ "LOGIN", 0, NULL },
	{ "AUTHENTICATE", 0, NULL },
	{ "STARTTLS", 0, NULL },
};

static int dispatch(struct imap_client *c, struct imap_cmd *cmd)
{
	const struct cmd_def *d = NULL;
	int r;

	for (size_t i = 0; i < sizeof(cmd_table) / sizeof(cmd_table[0]); i++)
		if (strcmp(cmd_table[i].name, cmd->name) == 0) {
			d = &cmd_table[i];
			break;
		}
	c->cmd = cmd;
	c->cmd_start_us = mono_us();
	c->cmd_mark = out_produced(c);
	c->cmd_msgs = 0;
	c->cmd_expunged = 0;
	if (d == NULL)
		return cmd_bad(c, cmd, "Unknown command");
	if (d->fn == NULL)
		return cmd_bad(c, cmd, "Already authenticated");
	if (!(d->states & c->state))
		return cmd_bad(c, cmd, "No mailbox selected");
	c->resume_uid = cmd_is_uid(cmd);
	r = d->fn(c, cmd);
	if (r < 0) {
		/* The handler could not even answer (out of memory): say so and go on. */
		log_warn("session: %s failed: %s", cmd->name, vault_strerror(r));
		r = out_printf(c, "%s NO [SERVERBUG] Internal error\r\n", cmd->tag);
		cmd_done(c, cmd, MR_NO);
	}
	return r;
}

/* Reads what the socket has into the input buffer (through inflate when
 * compressing). 0, or -errno; sets c->eof at end of stream. */
static int client_read(struct imap_client *c)
{
	/* Read until the buffer is full or the socket is drained: bigger pieces for
	 * the parser, which copies each piece of a literal it is given. */
	for (int i = 0; i < 8; i++) {
		uint8_t *dst;
		size_t room;
		ssize_t n;

		if (c->deflate) {
			if (c->zraw == NULL && (c->zraw = malloc(c->incap)) == NULL)
				return -ENOMEM;
			dst = c->zraw + c->zrawlen;
			room = c->incap - c->zrawlen;
		} else {
			dst = c->in + c->inlen;
			room = c->incap - c->inlen;
		}
		if (room == 0)
			return 0;
		n = read(c->fd, dst, room);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
		}
		if (n == 0) {
			c->eof = true;
			return 0;
		}
		if (c->deflate) {
			int r;

			c->zrawlen += (size_t)n;
			if ((r = in_inflate(c)) < 0)
				return r;
		} else {
			c->inlen += (size_t)n;
		}
		if ((size_t)n < room)
			return 0;
	}
	return 0;
}

static void in_consume(struct imap_client *c, size_t used)
{
	if (used == 0)
		return;
	memmove(c->in, c->in + used, c->inlen - used);
	explicit_bzero(c->in + c->inlen - used, used);
	c->inlen -= used;
}

static int handle_parse_error(struct imap_client *c, int r)
{
	const char *tag = imap_parser_error_tag(c->parser);
	const char *msg = imap_parser_error(c->parser);
	uint64_t sz = 0;

	if (r == IMAP_PARSE_FATAL || r == -ENOMEM) {
		if (tag != NULL && imap_parser_literal_too_big(c->parser, &sz))
			out_printf(c, "%s BAD [TOOBIG] Literal too big\r\n", tag);
		out_printf(c, "* BYE %s\r\n", r == -ENOMEM ? "Out of memory" : msg);
		c->closing = true;
		return 0;
	}
	if (tag != NULL) {
		/* Audited as a command whose verb could not be read ("PARSE_ERROR"). */
		struct imap_cmd fake = { .tag = (char *)tag, .name = (char *)"PARSE_ERROR" };
		bool big = r == -E2BIG && imap_parser_literal_too_big(c->parser, &sz);

		c->cmd_start_us = mono_us();
		c->cmd_mark = out_produced(c);
		c->cmd_msgs = 0;
		r = big ? out_printf(c, "%s NO [TOOBIG] Literal too big\r\n", tag) :
		    out_printf(c, "%s BAD %s\r\n", tag, msg);
		cmd_done(c, &fake, big ? MR_NO : MR_BAD);
		return r;
	}
	return out_printf(c, "* BAD %s\r\n", msg);
}

/* Continuation of a synchronizing literal: refuse an APPEND bigger than APPENDLIMIT
 * before the client sends it (RFC 7889 / RFC 9051 7.1: NO [TOOBIG]). */
static int handle_continue(struct imap_client *c)
{
	const char *name = imap_parser_cmd_name(c->parser);
	uint64_t size = imap_parser_literal_size(c->parser);
	uint64_t max = c->u->cfg->max_message_size;

	if (name != NULL && strcmp(name, "APPEND") == 0 && max > 0 && size > max) {
		const char *tag = imap_parser_cmd_tag(c->parser);

		out_printf(c, "%s NO [TOOBIG] Message too big\r\n", tag ? tag : "*");
		imap_parser_reset(c->parser);
		return 0;
	}
	return out_str(c, "+ OK\r\n");
}

static int idle_input(struct imap_client *c, bool *progress)
{
	char *line = NULL;
	size_t used = 0, len = 0;
	int r;

	r = imap_parser_feed_line(c->parser, c->in, c->inlen, &used, &line, &len);
	in_consume(c, used);
	if (r == 0)
		return 0;
	*progress = true;
	c->idling = false;
	metrics_idle(-1);
	if (r == 1 && len == 4 && strncasecmp(line, "DONE", 4) == 0) {
		struct imap_cmd fake = { .tag = c->idle_tag, .name = (char *)"IDLE" };

		r = cmd_ok(c, &fake, "Idle completed");
	} else {
		r = out_printf(c, "%s BAD Expected DONE\r\n", c->idle_tag);
	}
	free(line);
	free(c->idle_tag);
	c->idle_tag = NULL;
	return r;
}

/* Runs commands from the buffered input until input or budget runs out, output backs
 * up, or the connection is ending. */
static int client_process(struct imap_client *c)
{
	int r;

	c->runnable = false;
	for (int budget = CMD_BUDGET; budget > 0; budget--) {
		struct imap_cmd *cmd = NULL;
		size_t used = 0;
		bool progress = false;

		if (c->closing || c->fatal || backlogged(c))
			return 0;
		if (c->resume != NULL) {
			r = c->resume(c);
			if (r < 0) {
				out_printf(c, "%s NO [SERVERBUG] Internal error\r\n", c->cmd->tag);
				cmd_done(c, c->cmd, MR_NO);
				r = 0;
			}
			if (r == 0) {
				client_end_command(c);
				user_push_idle(c->u);
			}
			continue;
		}
		if (c->deflate && (r = in_inflate(c)) < 0) {
			out_str(c, "* BYE Bad compressed data\r\n");
			c->closing = true;
			return 0;
		}
		if (c->idling) {
			if ((r = idle_input(c, &progress)) < 0)
				return r;
			if (!progress)
				return 0;
			continue;
		}
		if (c->inlen == 0)
			return 0;
		r = imap_parser_feed(c->parser, c->in, c->inlen, &used, &cmd);
		in_consume(c, used);
		if (r == 0) {
			if (!(c->deflate && c->zrawlen > 0))
				return 0;
			continue;
		}
		if (r == IMAP_PARSE_CONTINUE) {
			if ((r = handle_continue(c)) < 0)
				return r;
			continue;
		}
		if (r < 0) {
			if ((r = handle_parse_error(c, r)) < 0)
				return r;
			continue;
		}
		/* The command belongs to c->cmd until it ends; a resumable one (1)
		 * keeps it while c->resume runs. */
		r = dispatch(c, cmd);
		if (r != 1)
			client_end_command(c);
		if (r < 0)
			return r;
		user_push_idle(c->u);
	}
	c->runnable = true;	/* budget used up: more may be waiting in the buffers */
	return 0;
}

static void check_timeouts(struct imap_client *c, time_t now)
{
	uint32_t idle = c->u->cfg->idle_timeout;

	/* RFC 9051 5.4: at least 30 minutes of inactivity before autologout. */
	if (idle < 1800)
		idle = 1800;
	if (!c->closing && now - c->last_active >= (time_t)idle) {
		out_str(c, "* BYE Disconnected for inactivity\r\n");
		c->closing = true;
	}
	if (c->idling && !c->closing && now >= c->idle_ka) {
		out_str(c, "* OK Still here\r\n");
		c->idle_ka = now + IDLE_KEEPALIVE_SECS;
	}
}

int imap_client_handle(struct imap_client *c, short revents, time_t now)
{
	int r;

	if (revents & POLLNVAL)
		return 1;
	if (revents & POLLERR) {
		c->eof = true;
		return 1;
	}
	if ((revents & POLLOUT) && (r = out_flush(c)) < 0)
		return 1;
	if ((revents & (POLLIN | POLLHUP)) && !c->closing) {
		if ((r = client_read(c)) < 0)
			return 1;
		if (c->inlen > 0 || c->zrawlen > 0)
			c->last_active = now;
		if (c->deflate && c->eof && c->zrawlen == 0 && c->inlen == 0)
			return 1;
	}
	check_timeouts(c, now);
	if ((r = client_process(c)) < 0) {
		log_warn("session: connection error: %s", vault_strerror(r));
		return 1;
	}
	if (out_flush(c) < 0)
		return 1;
	if (c->fatal)
		return 1;
	if (c->closing && out_pending(c) == 0)
		return 1;
	/* End of stream: commands already buffered have been run above. */
	if (c->eof && c->resume == NULL)
		return 1;
	return 0;
}

int imap_client_timeout(const struct imap_client *c, time_t now)
{
	uint32_t idle = c->u->cfg->idle_timeout < 1800 ? 1800 : c->u->cfg->idle_timeout;
	time_t t = c->last_active + (time_t)idle - now;

	/* Work left in the buffers that no fd event will announce. */
	if (!backlogged(c) && !c->closing && (c->resume != NULL || c->runnable))
		return 0;
	if (c->idling && c->idle_ka - now < t)
		t = c->idle_ka - now;
	return t < 0 ? 0 : (int)(t > INT32_MAX ? INT32_MAX : t);
}
