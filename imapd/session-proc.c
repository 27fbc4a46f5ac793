/* session-proc: one user's session process (see the model in server.c).
 *
 * The only process that ever holds this user's unlocked keys. It receives data
 * sockets from the master (IPC_M2S_CONN), reads each one's auth frame, decides
 * (unlock / full login / passphrase inside the unlock window), answers one status
 * byte and hands the socket to the command engine (imap_client_new). When its last
 * client is gone it keeps the keys until the unlock window since the last full
 * login has passed, then wipes them and exits. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "crypto.h"
#include "imap-session.h"
#include "log.h"
#include "audit.h"
#include "metrics.h"
#include "proto.h"
#include "server.h"
#include "vault.h"
#include "compat.h"

#define MAX_PENDING 64
#define PENDING_TIMEOUT_MS 10000
#define TICK_MS 250

struct pending {
	int fd;
	struct sbuf *buf;	/* secure: the frame carries keys */
	int64_t deadline;
};

static struct sess {
	const struct vault_config *cfg;
	uint32_t user_id;
	char user[128];
	int ctl;			/* -1 once closed */
	struct vault *v;		/* owned by u once u exists */
	struct imap_user *u;
	time_t last_full;		/* last full (passphrase + OTP) login */
	unsigned window_fails;		/* wrong passphrase-only logins since then */
	bool window_closed;		/* closed by window_max_failures until a full login */
	struct imap_client **clients;
	size_t nclients, capclients;
	struct pending pend[MAX_PENDING];
	size_t npend;
	bool started;			/* a connection has arrived */
} S;

static volatile sig_atomic_t term;

static void on_term(int sig)
{
	(void)sig;
	term = 1;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pend_drop(size_t i)
{
	close(S.pend[i].fd);
	sbuf_free(&S.pend[i].buf);
	S.pend[i] = S.pend[--S.npend];
}

static bool window_open(time_t now)
{
	return S.u && S.cfg->unlock_window > 0 && !S.window_closed &&
	    now - S.last_full < (time_t)S.cfg->unlock_window;
}

/* A full login (re)opens the window with a fresh verifier of its passphrase. */
static int window_reopen(struct vault_keys *keys, const struct vault_login *lg, time_t now)
{
	int r;

	if (S.cfg->unlock_window == 0) {
		vault_keys_clear_window(keys);	/* nothing to verify: keep no verifier */
		r = 0;
	} else if ((r = vault_keys_set_window(keys, lg->pass)) < 0) {
		return r;
	}
	S.last_full = now;
	S.window_fails = 0;
	S.window_closed = false;
	return r;
}

/* Decides one login. Returns an auth_status byte. */
static uint8_t decide(const struct auth_frame *f, time_t now)
{
	struct vault_login lg;
	struct vault_keys *k = NULL;
	uint8_t st = AUTH_ST_ERROR;
	int r;

	memset(&lg, 0, sizeof(lg));
	lg.user_id = f->user_id;
	lg.token_index = f->token_index;
	snprintf(lg.user, sizeof(lg.user), "%s", S.user);
	if ((f->key && secret_dup(f->key, AUTH_KEY_BYTES, &lg.key) < 0) ||
	    secret_dup(f->pass, f->npass, &lg.pass) < 0)
		goto out;
	if (S.u == NULL) {
		if (lg.token_index < 0) {
			log_info("user %s: passphrase-only login from %s refused: no unlock "
			    "window open", S.user, f->peer);
			st = AUTH_ST_WINDOW;
			goto out;
		}
		if ((r = vault_unlock(S.v, &lg, &k)) < 0) {
			log_warn("user %s: unlock failed for login from %s: %s", S.user, f->peer,
			    vault_strerror(r));
			st = r == VAULT_ERR_AUTH || r == VAULT_ERR_TAMPER ? AUTH_ST_FAIL :
			    AUTH_ST_ERROR;
			goto out;
		}
		if ((r = window_reopen(k, &lg, now)) < 0 ||
		    (r = imap_user_new(S.v, k, S.cfg, &S.u)) < 0) {
			log_err("user %s: cannot start the session: %s", S.user, vault_strerror(r));
			vault_keys_free(&k);
			goto out;
		}
		k = NULL;	/* S.u owns v and the keys now */
		st = AUTH_ST_OK;
		goto out;
	}
	if (lg.token_index >= 0) {
		struct vault_keys *keys = imap_user_keys(S.u);
		if ((r = vault_keys_check_login(S.v, keys, &lg)) < 0) {
			log_warn("user %s: full login from %s refused: %s", S.user, f->peer,
			    vault_strerror(r));
			st = AUTH_ST_FAIL;
			goto out;
		}
		/* A new full login restarts the unlock window (and its failure count). */
		if ((r = window_reopen(keys, &lg, now)) < 0) {
			log_err("user %s: cannot refresh the window verifier: %s", S.user,
			    vault_strerror(r));
			goto out;
		}
		(void)vault_keys_refresh(S.v, keys);
		st = AUTH_ST_OK;
		goto out;
	}
	if (!window_open(now)) {
		log_info("user %s: passphrase-only login from %s refused: the unlock window "
		    "has %s", S.user, f->peer, S.window_closed ? "been closed after failed "
		    "passphrase-only logins" : "ended");
		st = AUTH_ST_WINDOW;
		goto out;
	}
	/* A keyed BLAKE2b of the candidate against the one of the last full login's
	 * passphrase (vault_keys_check_passphrase; constant-time compare). Online
	 * guessing is bounded here: window_max_failures wrong ones since the last full
	 * login close the window (a success does not reset the count, so guesses
	 * interleaved with the owner's reconnections still run out); on top of that
	 * the login process delays every failure per source address. */
	r = vault_keys_check_passphrase(imap_user_keys(S.u), &lg);
	if (r == VAULT_ERR_WINDOW) {	/* no verifier (an empty passphrase) */
		st = AUTH_ST_WINDOW;
		goto out;
	}
	if (r < 0) {
		S.window_fails++;
		log_warn("user %s: passphrase-only login from %s: wrong passphrase (%u of %u "
		    "allowed in this unlock window)", S.user, f->peer, S.window_fails,
		    S.cfg->window_max_failures);
		if (S.window_fails >= S.cfg->window_max_failures) {
			S.window_closed = true;
			vault_keys_clear_window(imap_user_keys(S.u));
			log_warn("user %s: unlock window closed after %u wrong passphrase-only "
			    "logins; the next login needs the passphrase and the OTP", S.user,
			    S.window_fails);
		}
		st = r == VAULT_ERR_AUTH ? AUTH_ST_FAIL : AUTH_ST_ERROR;
		goto out;
	}
	st = AUTH_ST_OK;
out:
	vault_keys_free(&k);
	vault_login_clear(&lg);
	return st;
}

static void client_add(int fd, const struct auth_frame *f)
{
	struct imap_client_params p;
	struct imap_client *c = NULL;
	int r;

	if (S.nclients == S.capclients) {
		size_t nc = S.capclients ? S.capclients * 2 : 8;
		void *q = realloc(S.clients, nc * sizeof(*S.clients));
		if (q == NULL) {
			close(fd);
			return;
		}
		S.clients = q;
		S.capclients = nc;
	}
	memset(&p, 0, sizeof(p));
	p.fd = fd;
	p.login_tag = f->tag;
	p.tls = f->tls;
	p.peer = f->peer;
	p.tls_info = f->tls_info;
	p.pending = f->pending;
	p.npending = f->npending;
	p.session_id = f->sid;
	p.user = S.user;
	if ((r = imap_client_new(S.u, &p, &c)) < 0) {
		log_err("user %s: cannot start a client for %s: %s", S.user, f->peer,
		    vault_strerror(r));
		close(fd);
		return;
	}
	/* Commands pipelined behind LOGIN are in the engine's buffer; the engine marks
	 * the client runnable, so the poll loop runs them on its next turn. */
	S.clients[S.nclients++] = c;
}

/* After a rotation: data keys re-wrapped to the current epoch (audit + metrics). */
static void audit_rewrap(unsigned n)
{
	struct audit_rec ar;

	metrics_rewrap(n);
	if (!audit_enabled())
		return;
	audit_begin(&ar, "rewrap");
	audit_str(&ar, "user", S.user);
	audit_u64(&ar, "messages", n);
	(void)audit_emit(&ar);
}

/* Reads what the pending connection has sent; handles a complete frame. */
static void pend_read(size_t i, time_t now)
{
	struct pending *pd = &S.pend[i];
	struct auth_frame f;
	size_t total = 0;
	uint8_t st;
	ssize_t n;
	int r;

	for (;;) {
		size_t want;
		uint8_t *p;

		r = auth_frame_size(pd->buf->d, pd->buf->len, &total);
		if (r < 0)
			goto fatal;
		want = r == 0 ? 8 - pd->buf->len : total - pd->buf->len;
		if (want == 0)
			break;
		if (sbuf_reserve(pd->buf, want, &p) < 0)
			goto fatal;
		pd->buf->len -= want;	/* reserve grew len; count only what arrives */
		n = read(pd->fd, p, want);
		if (n > 0) {
			pd->buf->len += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		pend_drop(i);	/* the login process went away */
		return;
	}
	if (auth_frame_get(pd->buf->d, pd->buf->len, &f) < 0)
		goto fatal;
	if (f.user_id != S.user_id) {
		log_err("user %s: auth frame for user id %u from a login process",
		    S.user, f.user_id);
		goto fatal_logged;
	}
	st = decide(&f, now);
	if (send(pd->fd, &st, 1, MSG_NOSIGNAL) != 1) {
		pend_drop(i);
		return;
	}
	if (st == AUTH_ST_OK) {
		int fd = pd->fd;
		log_info("user %s: connection from %s%s%s (%s)", S.user, f.peer,
		    f.tls ? ", " : "", f.tls_info, f.token_index >= 0 ? "full login" :
		    "unlock window");
		pd->fd = -1;
		client_add(fd, &f);	/* f points into pd->buf: free after */
		sbuf_free(&pd->buf);
		S.pend[i] = S.pend[--S.npend];
		return;
	}
	pend_drop(i);
	return;
fatal:
	log_err("user %s: malformed auth frame from a login process; exiting", S.user);
fatal_logged:
	/* A malformed message from our own peer: log and exit (proto.h). */
	_exit(1);
}

/* Stops taking connections and lets queued ones fail over to a new session. */
static void ctl_close(void)
{
	struct ipc_msg m;

	if (S.ctl < 0)
		return;
	(void)shutdown(S.ctl, SHUT_RD);
	/* Anything the master queued before the shutdown: close it unanswered; the
	 * login process sees EOF before a verdict and asks the master again, whose
	 * send to us now fails (EPIPE) and so forks a new session. */
	while (ipc_recv(S.ctl, IPC_ST_SESSION_RUN, &m) == 1)
		if (m.fd >= 0)
			close(m.fd);
	close(S.ctl);
	S.ctl = -1;
}

static void ctl_read(void)
{
	struct ipc_msg m;
	int r;

	for (;;) {
		r = ipc_recv(S.ctl, IPC_ST_SESSION_RUN, &m);
		if (r == -EAGAIN)
			return;
		if (r == -EPROTO)
			_exit(1);	/* logged by ipc_recv */
		if (r <= 0) {
			/* The master is gone: serve who is here, accept nobody new. */
			close(S.ctl);
			S.ctl = -1;
			return;
		}
		/* IPC_M2S_CONN is the only message the table allows here. */
		if (S.npend >= MAX_PENDING) {
			close(m.fd);
			continue;
		}
		(void)fcntl(m.fd, F_SETFL, O_NONBLOCK);
		S.pend[S.npend].fd = m.fd;
		S.pend[S.npend].deadline = mono_ms() + PENDING_TIMEOUT_MS;
		if (sbuf_new_secure(AUTH_FRAME_MAX, &S.pend[S.npend].buf) < 0) {
			close(m.fd);
			continue;
		}
		S.npend++;
		S.started = true;
	}
}

static void client_remove(size_t i)
{
	imap_client_free(&S.clients[i]);
	S.clients[i] = S.clients[--S.nclients];
}

void session_main(const struct vault_config *cfg, uint32_t user_id, const char *user, int ctl)
{
	struct pollfd *pfd = NULL;
	size_t cappfd = 0;
	int64_t last_tick = 0, start = mono_ms();
	/* Test hook (tests/test_imapd.py): pause between deciding to exit and closing
	 * the control socket, so that a connection reliably races with the exit. */
	const char *delay_env = getenv("SEALMAIL_TEST_SESSION_EXIT_DELAY_MS");
	int exit_delay_ms = delay_env ? atoi(delay_env) : 0;
	struct sigaction sa;
	int r;

	proc_set_name(PROC_NAME_SESSION);
	log_set_ident("imapd-session");
	audit_set_program("imapd-session");
	(void)crypto_harden_process();	/* PR_SET_DUMPABLE 0, no core files */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;	/* no SA_RESTART: poll returns EINTR */
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);
	S.cfg = cfg;
	S.user_id = user_id;
	snprintf(S.user, sizeof(S.user), "%s", user);
	S.ctl = ctl;
	(void)fcntl(ctl, F_SETFL, O_NONBLOCK);
	if ((r = vault_open(cfg, &S.v)) < 0) {
		log_err("user %s: cannot open the vault: %s", S.user, vault_strerror(r));
		_exit(1);
	}
	{
		/* The (id, name) pair came from a login process via the master: check it
		 * against the store before serving anyone under it. */
		struct vault_user_info info;
		struct vault_txn *t = NULL;

		if ((r = vault_txn_begin(S.v, false, &t)) == 0) {
			r = vault_user_get_by_id(t, user_id, &info);
			vault_txn_abort(&t);
		}
		if (r < 0 || strcmp(info.name, S.user) != 0) {
			log_err("user %s: user id %u does not match the store (%s); exiting",
			    S.user, user_id, r < 0 ? vault_strerror(r) : "other name");
			_exit(1);
		}
	}

	while (!term) {
		time_t now = time(NULL);
		int64_t t = mono_ms();
		size_t n = 0, need;
		int timeout = TICK_MS;

		/* Exit when nobody is here or coming and the keys may not be kept. A new
		 * session first waits for the connection it was started for. */
		if (S.ctl >= 0)
			ctl_read();
		if (S.nclients == 0 && S.npend == 0 && (S.ctl < 0 || !window_open(now)) &&
		    (S.started || t > start + PENDING_TIMEOUT_MS)) {
			if (exit_delay_ms > 0)	/* test hook: widen the exit race */
				(void)poll(NULL, 0, exit_delay_ms);
			ctl_close();
			if (S.npend == 0)
				break;
		}
		need = 1 + S.npend + S.nclients;
		if (need > cappfd) {
			void *p = realloc(pfd, need * 2 * sizeof(*pfd));
			if (p == NULL)
				break;
			pfd = p;
			cappfd = need * 2;
		}
		pfd[n++] = (struct pollfd){ S.ctl, POLLIN, 0 };
		for (size_t i = 0; i < S.npend; i++)
			pfd[n++] = (struct pollfd){ S.pend[i].fd, POLLIN, 0 };
		for (size_t i = 0; i < S.nclients; i++) {
			int ct = imap_client_timeout(S.clients[i], now);
			pfd[n++] = (struct pollfd){ imap_client_fd(S.clients[i]),
			    imap_client_events(S.clients[i]), 0 };
			if (ct >= 0 && ct * 1000 < timeout)
				timeout = ct * 1000;
		}
		if (S.u == NULL && S.nclients == 0)
			timeout = 1000;
		if (poll(pfd, n, timeout) < 0 && errno != EINTR)
			break;
		if (term)
			break;
		now = time(NULL);
		t = mono_ms();
		/* Clients first: their indexes match pfd until we change the arrays. */
		size_t base = 1 + S.npend;
		for (size_t i = S.nclients; i-- > 0;) {
			short rev = pfd[base + i].revents;
			if (rev == 0 && imap_client_timeout(S.clients[i], now) != 0)
				continue;
			if (imap_client_handle(S.clients[i], rev, now) != 0)
				client_remove(i);
		}
		for (size_t i = S.npend; i-- > 0;) {
			if (pfd[1 + i].revents)
				pend_read(i, now);
			else if (t > S.pend[i].deadline)
				pend_drop(i);
		}
		if (S.ctl >= 0 && pfd[0].revents)
			ctl_read();
		if (S.u && t - last_tick >= TICK_MS) {
			if ((r = imap_user_tick(S.u, now)) < 0)
				log_warn("user %s: tick: %s", S.user, vault_strerror(r));
			/* After a key rotation: re-wrap old data keys to the current epoch, 200
			 * per tick in a short txn between commands (vault.h). */
			unsigned rewrapped = 0;
			if ((r = vault_rewrap_tick(S.v, imap_user_keys(S.u), 200, &rewrapped)) < 0)
				log_warn("user %s: re-wrap: %s", S.user, vault_strerror(r));
			else if (rewrapped > 0)
				audit_rewrap(rewrapped);
			last_tick = t;
		}
	}
	/* Wipe: the clients, then the keys (imap_user_free -> vault_keys_free). */
	ctl_close();
	while (S.npend)
		pend_drop(S.npend - 1);
	while (S.nclients)
		client_remove(S.nclients - 1);
	free(S.clients);
	free(pfd);
	if (S.u)
		imap_user_free(&S.u);
	else
		vault_close(&S.v);
	log_info("user %s: session ended, keys wiped", S.user);
	_exit(0);
}
