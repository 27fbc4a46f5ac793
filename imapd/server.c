/* server: the sealmail-imapd master process.
 *
 * Process model
 * =============
 *
 *   imapd-master (root only until its sockets are bound and the TLS key is read)
 *     |  binds imap_listen (plain + STARTTLS) and imaps_listen (implicit TLS), reads
 *     |  the certificate, raises RLIMIT_NOFILE, then drops to run_user
 *     |  (setgroups + setresgid + setresuid, verified). It never reads a byte from a
 *     |  client: it accepts, applies max_connections and TCP keepalive, and forks.
 *     |
 *     +-- imapd-login (one per connection; unprivileged; holds no user key)
 *     |     TLS handshake (implicit) or plain + STARTTLS; the pre-login protocol with
 *     |     the incremental parser under tight limits; LOGIN / AUTHENTICATE PLAIN run
 *     |     vault_login_derive here (the Argon2id work of a full login; none for the
 *     |     passphrase alone). On success it sends the
 *     |     master ATTACH {user id, name} with one end of a fresh socketpair; the
 *     |     master passes that end to the user's session process (forking one if
 *     |     needed) and answers. The login process then writes the auth frame (token
 *     |     index, login key or none, passphrase, LOGIN tag, pipelined bytes,
 *     |     peer, TLS info) into the socketpair, wipes its copies of the secrets once
 *     |     the session has answered with its status byte, and becomes a relay:
 *     |     TLS (or plain socket) <-> socketpair, non-blocking, bounded buffers.
 *     |
 *     +-- imapd-session (one per logged-in user; the only holder of that user's keys)
 *           opens its own vault handle after fork; first login: vault_unlock; later
 *           full logins: vault_keys_check_login + new window verifier (keyed BLAKE2b
 *           of the passphrase under a random per-session key); passphrase only:
 *           checked against it within unlock_window seconds of the last full login,
 *           window_max_failures wrong ones close the window. It
 *           serves all the user's connections in one poll loop (imap_client_*), ticks
 *           the user every <= 250 ms, and once its last client has gone it keeps the
 *           keys until the unlock window ends, then wipes them and exits.
 *
 * Bookkeeping in the master: per login process {pid, control fd, state, user id,
 * address}; per user {session pid, control fd}; per source address a count of failed
 * logins (reported by login processes, passed to each new login process at fork so
 * that its failure delay grows: 0.5 s * 2^(n-1), at most 15 s; reset by a success,
 * forgotten after 15 minutes). max_user_connections and max_user_source_connections
 * are checked at ATTACH time by counting attached login processes of that user (from
 * that address).
 *
 * A session that decides to exit shuts down the read side of its control socket and
 * drains it, closing any connection that raced in (its login process sees EOF before
 * a status byte and asks the master again); the master's next send to it fails with
 * EPIPE and the master forks a fresh session. So at most one session process per
 * user ever accepts logins.
 *
 * Signals: SIGHUP re-reads the config file's tls_cert/tls_key into a new SSL_CTX
 * (existing connections keep theirs; new connections get the new one); SIGTERM and
 * SIGINT stop listening, terminate every child and exit 0. Children die with the
 * master (PR_SET_PDEATHSIG).
 *
 * A malformed control message is fatal for its receiver: a login or session process
 * logs and exits; the master logs and kills the sender (exiting would let one
 * compromised login process take the whole server down).
 *
 * LMTP: the master binds lmtp_listen with the others and, after the privilege drop,
 * starts one imapd-lmtp process (lmtp.c), which forks a process per LMTP connection;
 * the master restarts it if it dies and stops it on shutdown. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "crypto.h"
#include "events.h"
#include "log.h"
#include "metrics.h"
#include "proto.h"
#include "server.h"
#include "tls.h"
#include "lmtp.h"
#include "vault.h"
#include "compat.h"

#define MAX_LISTENERS 16
#define FAIL_SLOTS 4096
#define FAIL_FORGET_SECS (15 * 60)
#define SESSION_SEND_TIMEOUT_SECS 5
#define SHUTDOWN_GRACE_MS 5000

struct listener {
	int fd;
	bool implicit_tls;
	char addr[80];
};

struct login_rec {
	pid_t pid;
	int ctl;		/* -1 once the login process closed it */
	uint32_t state;		/* enum ipc_state (IPC_ST_MASTER_LOGIN_*) */
	uint32_t user_id;
	char ip[INET6_ADDRSTRLEN];
};

struct session_rec {
	pid_t pid;
	int ctl;		/* -1: no longer takes connections (exiting) */
	uint32_t user_id;
	char name[128];
};

struct fail_rec {
	char ip[INET6_ADDRSTRLEN];
	unsigned count;
	time_t last;
};

static struct master {
	struct vault_config cfg;
	char config_path[4096];
	SSL_CTX *ctx;
	struct listener lst[MAX_LISTENERS];
	size_t nlst;
	struct login_rec *logins;
	size_t nlogins, caplogins;
	struct session_rec *sessions;
	size_t nsessions, capsessions;
	struct fail_rec *fails;
	int sigfd;
	pid_t pid;
	bool stopping;
} M = { .sigfd = -1 };

static int metrics_fd = -1;		/* metrics_listen */
static pid_t metrics_pid = -1;
static int lmtp_fd = -1;		/* lmtp_listen, kept to restart the LMTP process */
static pid_t lmtp_pid = -1;
static time_t lmtp_started;

/* ---- small process helpers (shared with login.c / session-proc.c) ------------ */

void proc_set_name(const char *name)
{
	(void)prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0);
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

void proc_close_fds_except(const int *keep, size_t n)
{
	/* The audit log descriptor is the master's, handed to every child (audit.h). */
	int withaudit[8];

	if (audit_fd() >= 0 && n < sizeof(withaudit) / sizeof(withaudit[0])) {
		memcpy(withaudit, keep, n * sizeof(*keep));
		withaudit[n++] = audit_fd();
		keep = withaudit;
	}
	int k[8];
	unsigned lo = 3;

	if (n > 8)
		abort();
	memcpy(k, keep, n * sizeof(int));
	qsort(k, n, sizeof(int), cmp_int);
	for (size_t i = 0; i < n; i++) {
		if (k[i] < 3)
			continue;
		if ((unsigned)k[i] > lo)
			(void)close_range(lo, (unsigned)k[i] - 1, 0);
		lo = (unsigned)k[i] + 1;
	}
	(void)close_range(lo, ~0u, 0);
}

void proc_child_reset(pid_t parent)
{
	sigset_t all;
	struct sigaction sa;
	const int sigs[] = { SIGCHLD, SIGHUP, SIGTERM, SIGINT, SIGPIPE };

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		(void)sigaction(sigs[i], &sa, NULL);
	sa.sa_handler = SIG_IGN;
	(void)sigaction(SIGPIPE, &sa, NULL);
	sigemptyset(&all);
	(void)sigprocmask(SIG_SETMASK, &all, NULL);
	(void)prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
	if (getppid() != parent)	/* the master died between fork and prctl */
		_exit(1);
}

unsigned login_fail_delay_ms(unsigned n)
{
	if (n == 0)
		return 0;
	if (n > 6)
		return 15000;
	unsigned ms = 500u << (n - 1);
	return ms > 15000 ? 15000 : ms;
}

static enum log_level parse_level(const char *s)
{
	if (strcmp(s, "debug") == 0)
		return LOG_LVL_DEBUG;
	if (strcmp(s, "warn") == 0)
		return LOG_LVL_WARN;
	if (strcmp(s, "error") == 0)
		return LOG_LVL_ERR;
	return LOG_LVL_INFO;
}

/* ---- listeners ------------------------------------------------------------ */

/* "host:port", "[v6]:port", "*:port". host "" / "*": every address. */
static int split_hostport(const char *s, char *host, size_t hostsz, char *port, size_t portsz)
{
	const char *colon, *p;
	size_t hl;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':')
			return -EINVAL;
		hl = (size_t)(close - s - 1);
		p = s + 1;
		colon = close + 1;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			return -EINVAL;
		hl = (size_t)(colon - s);
		p = s;
		if (memchr(s, ':', hl) != NULL)	/* an IPv6 address needs brackets */
			return -EINVAL;
	}
	if (hl >= hostsz)
		return -EINVAL;
	memcpy(host, p, hl);
	host[hl] = '\0';
	if (strcmp(host, "*") == 0)
		host[0] = '\0';
	p = colon + 1;
	if (*p == '\0' || strlen(p) >= portsz || strspn(p, "0123456789") != strlen(p))
		return -EINVAL;
	long v = strtol(p, NULL, 10);
	if (v < 1 || v > 65535)
		return -EINVAL;
	snprintf(port, portsz, "%ld", v);
	return 0;
}

/* Calls cb for each address of a listen setting (comma/space separated). */
static int foreach_addr(const char *list, int (*cb)(const char *item, void *arg), void *arg)
{
	char buf[256], *save = NULL, *tok;
	int r;

	if (snprintf(buf, sizeof(buf), "%s", list) >= (int)sizeof(buf))
		return -E2BIG;
	for (tok = strtok_r(buf, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save))
		if ((r = cb(tok, arg)) < 0)
			return r;
	return 0;
}

struct bind_arg {
	bool implicit_tls;
	char *err;
	size_t errlen;
};

static int bind_one(const char *item, void *arg)
{
	struct bind_arg *ba = arg;
	struct addrinfo hints, *res = NULL, *ai;
	char host[200], port[8];
	int r, nbound = 0, lasterr = 0;

	if (split_hostport(item, host, sizeof(host), port, sizeof(port)) < 0) {
		snprintf(ba->err, ba->errlen, "bad listen address '%s' (want host:port or "
		    "[ipv6]:port)", item);
		return -EINVAL;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((r = getaddrinfo(host[0] ? host : NULL, port, &hints, &res)) != 0) {
		snprintf(ba->err, ba->errlen, "cannot resolve listen address '%s': %s", item,
		    gai_strerror(r));
		return -EINVAL;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		int fd, one = 1;

		if (M.nlst >= MAX_LISTENERS) {
			snprintf(ba->err, ba->errlen, "too many listen addresses");
			freeaddrinfo(res);
			return -E2BIG;
		}
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			lasterr = errno;
			continue;
		}
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6)
			(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 511) < 0) {
			lasterr = errno;
			close(fd);
			/* "*" may include a family this host lacks; only that is tolerated. */
			if ((lasterr == EADDRNOTAVAIL || lasterr == EAFNOSUPPORT) && ai->ai_next)
				continue;
			snprintf(ba->err, ba->errlen, "cannot bind %s: %s", item, strerror(lasterr));
			freeaddrinfo(res);
			return -lasterr;
		}
		M.lst[M.nlst].fd = fd;
		M.lst[M.nlst].implicit_tls = ba->implicit_tls;
		snprintf(M.lst[M.nlst].addr, sizeof(M.lst[M.nlst].addr), "%s", item);
		M.nlst++;
		nbound++;
	}
	freeaddrinfo(res);
	if (nbound == 0) {
		snprintf(ba->err, ba->errlen, "cannot bind %s: %s", item,
		    strerror(lasterr ? lasterr : EADDRNOTAVAIL));
		return -EADDRNOTAVAIL;
	}
	log_info("listening on %s (%s)", item, ba->implicit_tls ? "IMAPS, implicit TLS" :
	    M.ctx ? "IMAP, STARTTLS" : "IMAP, no TLS configured");
	return 0;
}

static int check_one(const char *item, void *arg)
{
	char host[200], port[8];
	struct bind_arg *ba = arg;

	if (split_hostport(item, host, sizeof(host), port, sizeof(port)) < 0) {
		snprintf(ba->err, ba->errlen, "bad listen address '%s' (want host:port or "
		    "[ipv6]:port)", item);
		return -EINVAL;
	}
	return 0;
}

/* ---- privileges ------------------------------------------------------------- */

static int lookup_run_user(const char *user, uid_t *uid, gid_t *gid, char *err, size_t errlen)
{
	struct passwd *pw;

	if (user[0] == '\0') {
		snprintf(err, errlen, "started as root but run_user is not set: refusing to "
		    "parse network input as root");
		return -EINVAL;
	}
	errno = 0;
	if ((pw = getpwnam(user)) == NULL) {
		snprintf(err, errlen, "run_user '%s': no such user", user);
		return -ENOENT;
	}
	if (pw->pw_uid == 0 || pw->pw_gid == 0) {
		snprintf(err, errlen, "run_user '%s' is root (uid or gid 0)", user);
		return -EINVAL;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return 0;
}

static int drop_root(const char *user, char *err, size_t errlen)
{
	uid_t uid, ru, eu, su;
	gid_t gid, rg, eg, sg, groups[2];
	int r;

	if (geteuid() != 0)
		return 0;
	if ((r = lookup_run_user(user, &uid, &gid, err, errlen)) < 0)
		return r;
	if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(uid, uid, uid) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot drop privileges to %s: %s", user, strerror(errno));
		return r;
	}
	/* Verify: all three ids changed, one group, and root cannot be regained. */
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 ||
	    ru != uid || eu != uid || su != uid || rg != gid || eg != gid || sg != gid ||
	    getgroups(2, groups) != 1 || groups[0] != gid || setuid(0) == 0) {
		snprintf(err, errlen, "privilege drop to %s did not take effect", user);
		return -EPERM;
	}
	log_info("dropped root: running as %s (uid %u, gid %u)", user, (unsigned)uid,
	    (unsigned)gid);
	return 0;
}

static void raise_nofile(uint32_t max_connections)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)max_connections + 256;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur >= want)
		return;
	if (rl.rlim_max < want && geteuid() == 0)
		rl.rlim_max = want;
	rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < want)
		log_warn("RLIMIT_NOFILE is %llu, below max_connections + 256 (%llu)",
		    (unsigned long long)rl.rlim_cur, (unsigned long long)want);
}

/* Secrets live in mlock'd sodium_malloc memory; a session also locks the engine's
 * summary cache (up to session_cache_size, grown as used). Debian's default
 * RLIMIT_MEMLOCK (8 MiB) would make those locks fail silently (libsodium ignores
 * mlock errors), so raise it while still root. Each child inherits it; it is per
 * process. */
#define MEMLOCK_BASE ((rlim_t)16 << 20)	/* keys, vault buffer pools */
static void raise_memlock(uint64_t cache)
{
	/* the cache's arena doubles: old and new are both held while it grows */
	rlim_t lim = MEMLOCK_BASE + (rlim_t)cache + (rlim_t)cache / 2;
	struct rlimit rl;

	struct rlimit want = { lim, lim };

	if (getrlimit(RLIMIT_MEMLOCK, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= lim)
		return;
	if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > lim)
		want.rlim_max = rl.rlim_max;
	/* Raising the hard limit needs CAP_SYS_RESOURCE; else take what it allows. */
	if (setrlimit(RLIMIT_MEMLOCK, &want) < 0) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_MEMLOCK, &rl);
	}
	if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur < lim)
		log_warn("RLIMIT_MEMLOCK is %llu KiB: secrets beyond it are not locked in RAM",
		    (unsigned long long)rl.rlim_cur / 1024);
}

/* ---- failure counts per source address -------------------------------------- */

static struct fail_rec *fail_find(const char *ip, bool create, time_t now)
{
	struct fail_rec *free_slot = NULL, *oldest = NULL, *f;

	for (size_t i = 0; i < FAIL_SLOTS; i++) {
		f = &M.fails[i];
		if (f->count && now - f->last > FAIL_FORGET_SECS)
			f->count = 0;
		if (f->count == 0) {
			if (free_slot == NULL)
				free_slot = f;
			continue;
		}
		if (strcmp(f->ip, ip) == 0)
			return f;
		if (oldest == NULL || f->last < oldest->last)
			oldest = f;
	}
	if (!create)
		return NULL;
	f = free_slot ? free_slot : oldest;
	memset(f, 0, sizeof(*f));
	snprintf(f->ip, sizeof(f->ip), "%s", ip);
	return f;
}

/* ---- children bookkeeping ------------------------------------------------- */

static struct login_rec *login_by_pid(pid_t pid)
{
	for (size_t i = 0; i < M.nlogins; i++)
		if (M.logins[i].pid == pid)
			return &M.logins[i];
	return NULL;
}

static void login_remove(struct login_rec *l)
{
	if (l->ctl >= 0)
		close(l->ctl);
	*l = M.logins[--M.nlogins];
}

static struct session_rec *session_live(uint32_t user_id)
{
	for (size_t i = 0; i < M.nsessions; i++)
		if (M.sessions[i].user_id == user_id && M.sessions[i].ctl >= 0)
			return &M.sessions[i];
	return NULL;
}

/* Attached connections of a user; with ip, only those from that address. */
static size_t user_connections(uint32_t user_id, const char *ip)
{
	size_t n = 0;

	for (size_t i = 0; i < M.nlogins; i++)
		if (M.logins[i].user_id == user_id && (M.logins[i].state &
		    (IPC_ST_MASTER_LOGIN_ATTACHED | IPC_ST_MASTER_LOGIN_RELAY)) &&
		    (ip == NULL || strcmp(M.logins[i].ip, ip) == 0))
			n++;
	return n;
}

static void sigs_block(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGCHLD);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	(void)sigprocmask(SIG_BLOCK, set, NULL);
}

/* Forks the user's session process. */
static struct session_rec *session_fork(uint32_t user_id, const char *name)
{
	int sp[2];
	struct timeval tv = { SESSION_SEND_TIMEOUT_SECS, 0 };
	pid_t pid;

	if (M.nsessions == M.capsessions) {
		size_t nc = M.capsessions ? M.capsessions * 2 : 16;
		void *p = realloc(M.sessions, nc * sizeof(*M.sessions));
		if (p == NULL)
			return NULL;
		M.sessions = p;
		M.capsessions = nc;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		log_err("session for user %s: socketpair: %s", name, strerror(errno));
		return NULL;
	}
	(void)setsockopt(sp[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if ((pid = fork()) < 0) {
		log_err("session for user %s: fork: %s", name, strerror(errno));
		close(sp[0]);
		close(sp[1]);
		return NULL;
	}
	if (pid == 0) {
		char uname[128];

		snprintf(uname, sizeof(uname), "%s", name);
		proc_child_reset(M.pid);
		proc_close_fds_except(&sp[1], 1);
		/* The session never speaks TLS: drop the server key from its memory. */
		tls_ctx_free(&M.ctx);
		free(M.logins);
		free(M.fails);
		session_main(&M.cfg, user_id, uname, sp[1]);
	}
	close(sp[1]);
	struct session_rec *s = &M.sessions[M.nsessions++];
	memset(s, 0, sizeof(*s));
	s->pid = pid;
	s->ctl = sp[0];
	s->user_id = user_id;
	snprintf(s->name, sizeof(s->name), "%s", name);
	log_info("session for user %s: pid %d", name, (int)pid);
	return s;
}

/* ATTACH: hand the data socket to the user's session process. */
static uint8_t attach(struct login_rec *l, uint32_t user_id, const char *name, int fd)
{
	struct session_rec *s;
	int r = -1;

	if (user_connections(user_id, NULL) >= M.cfg.max_user_connections) {
		log_warn("user %s: max_user_connections (%u) reached, refusing login from %s",
		    name, M.cfg.max_user_connections, l->ip);
		return IPC_ATTACH_USER_LIMIT;
	}
	if (user_connections(user_id, l->ip) >= M.cfg.max_user_source_connections) {
		log_warn("user %s: max_user_source_connections (%u) reached, refusing login "
		    "from %s", name, M.cfg.max_user_source_connections, l->ip);
		return IPC_ATTACH_USER_LIMIT;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		if ((s = session_live(user_id)) == NULL &&
		    (s = session_fork(user_id, name)) == NULL)
			return IPC_ATTACH_ERROR;
		if ((r = ipc_send(s->ctl, IPC_M2S_CONN, NULL, 0, fd)) == 0)
			break;
		/* The session is exiting (it shut its control socket) or stuck: it
		 * will never take another connection. Start a new one. */
		log_info("session for user %s (pid %d) no longer accepts connections (%s)",
		    s->name, (int)s->pid, strerror(-r));
		close(s->ctl);
		s->ctl = -1;
	}
	if (r < 0)
		return IPC_ATTACH_ERROR;
	l->state = IPC_ST_MASTER_LOGIN_ATTACHED;
	l->user_id = user_id;
	return IPC_ATTACH_OK;
}

static void kill_login(struct login_rec *l, const char *why)
{
	log_err("login process %d: %s; killing it", (int)l->pid, why);
	(void)kill(l->pid, SIGKILL);
	close(l->ctl);
	l->ctl = -1;
}

/* AUTH_FAILED: u8 reason[, str16 user]. Feeds the alerts (events.h). What a login
 * process claims here is not trusted beyond that: a compromised one can at worst
 * raise false alerts. */
static void auth_failed_alert(const struct login_rec *l, const struct ipc_msg *m)
{
	static const enum metrics_login cls[IPC_FAIL_END] = {
		[IPC_FAIL_AUTH] = ML_BAD_PASSPHRASE, [IPC_FAIL_NOUSER] = ML_UNKNOWN_USER,
		[IPC_FAIL_REPLAY] = ML_REPLAYED_OTP, [IPC_FAIL_TOKEN] = ML_UNKNOWN_TOKEN,
		[IPC_FAIL_WINDOW] = ML_WINDOW_CLOSED, [IPC_FAIL_OTHER] = ML_ERROR,
	};
	char user[128];
	bool have_user = false;
	uint8_t reason = m->payload[0];

	if (m->len >= 3) {
		size_t n = (size_t)m->payload[1] << 8 | m->payload[2];
		if (n >= 1 && n < sizeof(user) && 3 + n == m->len &&
		    memchr(m->payload + 3, '\0', n) == NULL) {
			memcpy(user, m->payload + 3, n);
			user[n] = '\0';
			have_user = true;
		}
	}
	if (reason == 0 || reason >= IPC_FAIL_END)
		reason = IPC_FAIL_OTHER;
	alert_login_failed(l->ip, have_user ? user : NULL, cls[reason]);
}

static void handle_login_msg(struct login_rec *l)
{
	struct ipc_msg m;
	int r;

	for (;;) {
		if ((r = ipc_recv(l->ctl, l->state, &m)) == -EAGAIN)
			return;
		if (r == 0 || (r < 0 && r != -EPROTO)) {
			close(l->ctl);
			l->ctl = -1;
			return;
		}
		if (r == -EPROTO) {
			kill_login(l, "malformed control message");
			return;
		}
		switch (m.type) {
		case IPC_L2M_ATTACH: {
			struct sbuf b;
			uint32_t uid;
			const uint8_t *p;
			size_t n;
			char name[128];
			uint8_t st;

			sbuf_from(&b, m.payload, m.len);
			if (sbuf_get_u32(&b, &uid) < 0 || sbuf_get_str16(&b, &p, &n) < 0 ||
			    n == 0 || n >= sizeof(name) || sbuf_avail(&b) != 0 ||
			    memchr(p, '\0', n) != NULL) {
				close(m.fd);
				kill_login(l, "malformed ATTACH");
				return;
			}
			memcpy(name, p, n);
			name[n] = '\0';
			for (size_t i = 0; i < n; i++)
				if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
					name[i] = '?';
			st = attach(l, uid, name, m.fd);
			close(m.fd);
			if (ipc_send(l->ctl, IPC_M2L_ATTACH_RESULT, &st, 1, -1) < 0) {
				close(l->ctl);
				l->ctl = -1;
				return;
			}
			break;
		}
		case IPC_L2M_AUTH_FAILED: {
			struct fail_rec *f = fail_find(l->ip, true, time(NULL));
			f->count++;
			f->last = time(NULL);
			auth_failed_alert(l, &m);
			break;
		}
		case IPC_L2M_AUTH_OK: {
			struct fail_rec *f = fail_find(l->ip, false, time(NULL));
			if (f)
				f->count = 0;
			l->state = IPC_ST_MASTER_LOGIN_RELAY;
			break;
		}
		case IPC_L2M_DETACH:
			l->state = IPC_ST_MASTER_LOGIN_PRE;
			l->user_id = 0;
			break;
		default:
			kill_login(l, "unexpected control message");
			return;
		}
	}
}

/* ---- accepting ------------------------------------------------------------ */

static void format_peer(const struct sockaddr_storage *ss, char *ip, size_t ipsz, char *peer,
    size_t peersz, bool *loopback)
{
	*loopback = false;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &s4->sin_addr, ip, (socklen_t)ipsz);
		snprintf(peer, peersz, "%s:%u", ip, ntohs(s4->sin_port));
		*loopback = (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, ip, (socklen_t)ipsz);
		snprintf(peer, peersz, "[%s]:%u", ip, ntohs(s6->sin6_port));
		*loopback = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr) ||
		    (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) && s6->sin6_addr.s6_addr[12] == 127);
	} else {
		snprintf(ip, ipsz, "unknown");
		snprintf(peer, peersz, "unknown");
	}
}

static void set_keepalive(int fd)
{
	int one = 1, idle = 30, intvl = 30, cnt = 5;

	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

static void accept_one(struct listener *lst)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct login_args a;
	int fd, sp[2];
	pid_t pid;

	fd = accept4(lst->fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		    errno != ECONNABORTED)
			log_warn("accept on %s: %s", lst->addr, strerror(errno));
		return;
	}
	memset(&a, 0, sizeof(a));
	char ip[INET6_ADDRSTRLEN];
	format_peer(&ss, ip, sizeof(ip), a.peer, sizeof(a.peer), &a.loopback);
	if (M.nlogins >= M.cfg.max_connections) {
		static const char bye[] = "* BYE Too many connections\r\n";
		log_warn("connection from %s refused: max_connections (%u) reached", a.peer,
		    M.cfg.max_connections);
		/* On the implicit-TLS port a clear-text BYE would only confuse the client. */
		if (!lst->implicit_tls)
			(void)send(fd, bye, sizeof(bye) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		close(fd);
		return;
	}
	if (M.nlogins == M.caplogins) {
		size_t nc = M.caplogins ? M.caplogins * 2 : 64;
		void *p = realloc(M.logins, nc * sizeof(*M.logins));
		if (p == NULL) {
			close(fd);
			return;
		}
		M.logins = p;
		M.caplogins = nc;
	}
	set_keepalive(fd);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		log_err("socketpair: %s", strerror(errno));
		close(fd);
		return;
	}
	struct fail_rec *f = fail_find(ip, false, time(NULL));
	a.cfg = &M.cfg;
	a.ctx = M.ctx;
	a.fd = fd;
	a.ctl = sp[1];
	a.implicit_tls = lst->implicit_tls;
	a.prior_failures = f ? f->count : 0;
	if ((pid = fork()) < 0) {
		log_err("fork: %s", strerror(errno));
		close(fd);
		close(sp[0]);
		close(sp[1]);
		return;
	}
	if (pid == 0) {
		int keep[2] = { fd, sp[1] };
		proc_child_reset(M.pid);
		proc_close_fds_except(keep, 2);
		free(M.logins);
		free(M.sessions);
		free(M.fails);
		M.logins = NULL;
		M.sessions = NULL;
		M.fails = NULL;
		login_main(&a);
	}
	close(fd);
	close(sp[1]);
	(void)fcntl(sp[0], F_SETFL, O_NONBLOCK);
	struct login_rec *l = &M.logins[M.nlogins++];
	memset(l, 0, sizeof(*l));
	l->pid = pid;
	l->ctl = sp[0];
	l->state = IPC_ST_MASTER_LOGIN_PRE;
	snprintf(l->ip, sizeof(l->ip), "%s", ip);
	log_debug("connection from %s on %s: login pid %d", a.peer, lst->addr, (int)pid);
}

/* ---- signals ---------------------------------------------------------------- */

static void reap(void)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct login_rec *l = login_by_pid(pid);
		bool abnormal = WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status));

		if (pid == metrics_pid) {
			metrics_pid = -1;
			if (M.stopping)
				continue;
			log_warn("metrics process %d ended; restarting it", (int)pid);
			if (metrics_start(metrics_fd, &M.cfg, &metrics_pid) < 0)
				log_err("cannot restart the metrics process: %s", strerror(errno));
			continue;
		}
		if (pid == lmtp_pid) {
			lmtp_pid = -1;
			if (M.stopping)
				continue;
			log_warn("LMTP process %d ended; restarting it", (int)pid);
			if (time(NULL) - lmtp_started < 1)	/* no busy crash loop */
				sleep(1);
			lmtp_started = time(NULL);
			if (lmtp_start(lmtp_fd, &M.cfg, &lmtp_pid) < 0)
				log_err("cannot restart the LMTP process: %s", strerror(errno));
			continue;
		}

		if (l) {
			if (abnormal && !M.stopping)
				log_warn("login process %d ended abnormally (%s %d%s)", (int)pid,
				    WIFSIGNALED(status) ? "signal" : "status",
				    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
				    WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS ?
				    ": a syscall outside its seccomp filter" : "");
			login_remove(l);
			continue;
		}
		for (size_t i = 0; i < M.nsessions; i++) {
			struct session_rec *s = &M.sessions[i];
			if (s->pid != pid)
				continue;
			if (abnormal && !M.stopping)
				log_warn("session for user %s (pid %d) ended abnormally (%s %d)",
				    s->name, (int)pid, WIFSIGNALED(status) ? "signal" : "status",
				    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
			else
				log_info("session for user %s (pid %d) ended", s->name, (int)pid);
			if (s->ctl >= 0)
				close(s->ctl);
			*s = M.sessions[--M.nsessions];
			break;
		}
	}
}

static void reload(void)
{
	struct vault_config nc;
	char err[512];
	SSL_CTX *ctx = NULL;

	if (vault_config_load(M.config_path, &nc, err, sizeof(err)) < 0) {
		log_err("SIGHUP: %s; keeping the current configuration", err);
		return;
	}
	if (nc.tls_cert[0] == '\0') {
		log_warn("SIGHUP: tls_cert is empty; keeping the current certificate");
		return;
	}
	if (tls_ctx_new(nc.tls_cert, nc.tls_key, &ctx, err, sizeof(err)) < 0) {
		log_err("SIGHUP: %s; keeping the current certificate", err);
		return;
	}
	tls_ctx_free(&M.ctx);
	M.ctx = ctx;
	snprintf(M.cfg.tls_cert, sizeof(M.cfg.tls_cert), "%s", nc.tls_cert);
	snprintf(M.cfg.tls_key, sizeof(M.cfg.tls_key), "%s", nc.tls_key);
	log_info("SIGHUP: reloaded TLS certificate %s (new connections use it; other "
	    "settings need a restart)", nc.tls_cert);
}

static void shutdown_all(void)
{
	struct timespec t0, t;

	M.stopping = true;
	for (size_t i = 0; i < M.nlst; i++)
		close(M.lst[i].fd);
	M.nlst = 0;
	for (size_t i = 0; i < M.nlogins; i++)
		(void)kill(M.logins[i].pid, SIGTERM);
	for (size_t i = 0; i < M.nsessions; i++)
		(void)kill(M.sessions[i].pid, SIGTERM);
	if (lmtp_pid > 0)
		(void)kill(lmtp_pid, SIGTERM);
	if (metrics_pid > 0)
		(void)kill(metrics_pid, SIGTERM);
	if (lmtp_fd >= 0)
		close(lmtp_fd);
	lmtp_fd = -1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		reap();
		if (M.nlogins == 0 && M.nsessions == 0 && lmtp_pid < 0 && metrics_pid < 0)
			break;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >
		    SHUTDOWN_GRACE_MS) {
			for (size_t i = 0; i < M.nlogins; i++)
				(void)kill(M.logins[i].pid, SIGKILL);
			for (size_t i = 0; i < M.nsessions; i++)
				(void)kill(M.sessions[i].pid, SIGKILL);
			if (lmtp_pid > 0)
				(void)kill(lmtp_pid, SIGKILL);
			if (metrics_pid > 0)
				(void)kill(metrics_pid, SIGKILL);
		}
		(void)poll(NULL, 0, 20);
	}
}

/* ---- main ------------------------------------------------------------------ */

static void update_gauges(void)
{
	uint64_t pre = 0, auth = 0;

	for (size_t i = 0; i < M.nlogins; i++) {
		if (M.logins[i].state == IPC_ST_MASTER_LOGIN_RELAY)
			auth++;
		else
			pre++;
	}
	metrics_set_connections(pre, auth);
}

/* Before the privilege drop: the audit log (its descriptor goes to every child), the
 * mailbox-hash key, the shared counters and the alert state. */
static int open_audit(const struct vault_config *cfg, char *err, size_t errlen)
{
	char keypath[4200];
	int r;

	if ((r = metrics_init()) < 0) {
		snprintf(err, errlen, "metrics: mmap: %s", strerror(-r));
		return r;
	}
	alert_init(cfg);
	if (cfg->alert_command[0] && access(cfg->alert_command, X_OK) < 0) {
		r = -errno;
		snprintf(err, errlen, "alert_command %.512s: %s", cfg->alert_command,
		    strerror(errno));
		return r;
	}
	if ((r = audit_open(cfg->audit_log, "imapd-master", err, errlen)) < 0)
		return r;
	if (!audit_enabled())
		return 0;
	if (cfg->audit_key[0])
		snprintf(keypath, sizeof(keypath), "%s", cfg->audit_key);
	else
		snprintf(keypath, sizeof(keypath), "%s/audit.key", cfg->data_dir);
	return audit_key_load(keypath, err, errlen);
}

static int load_config(const char *path, struct vault_config *cfg, FILE *errout)
{
	char err[1024];
	int r;

	if ((r = vault_config_load(path, cfg, err, sizeof(err))) < 0) {
		fprintf(errout, "%s\n", err);
		return r;
	}
	return 0;
}

/* The loader stops at the first bad line; to list every one, parse each line on its
 * own and print "FILE:LINE: what" for those that fail. Returns how many it printed
 * (0: the problem spans lines, e.g. a duplicate key; the caller prints the loader's
 * message). */
static unsigned list_bad_lines(const char *path, FILE *out)
{
	struct vault_config one;
	char line[8192], err[1024], prefix[64];
	unsigned lineno = 0, nbad = 0;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		size_t n = strlen(line);
		const char *msg = err;

		lineno++;
		if (vault_config_parse(line, n, path, &one, err, sizeof(err)) == 0)
			continue;
		/* err is "PATH:1: what": put the real line number in. */
		snprintf(prefix, sizeof(prefix), ":1: ");
		if (strncmp(err, path, strlen(path)) == 0 &&
		    strncmp(err + strlen(path), prefix, strlen(prefix)) == 0)
			msg = err + strlen(path) + strlen(prefix);
		fprintf(out, "%s:%u: %s\n", path, lineno, msg);
		nbad++;
	}
	fclose(f);
	return nbad;
}

int server_check_config(const char *path, FILE *out)
{
	struct vault_config cfg;
	char err[1024];
	int bad = 0;
	struct bind_arg ba = { false, err, sizeof(err) };

	if (vault_config_load(path, &cfg, err, sizeof(err)) < 0) {
		if (list_bad_lines(path, out) == 0)
			fprintf(out, "%s\n", err);
		return 1;
	}
	if (cfg.imap_listen[0] == '\0' && cfg.imaps_listen[0] == '\0') {
		fprintf(out, "%s: neither imap_listen nor imaps_listen is set\n", path);
		bad++;
	}
	if (cfg.imap_listen[0] && foreach_addr(cfg.imap_listen, check_one, &ba) < 0) {
		fprintf(out, "%s: imap_listen: %s\n", path, err);
		bad++;
	}
	if (cfg.imaps_listen[0] && foreach_addr(cfg.imaps_listen, check_one, &ba) < 0) {
		fprintf(out, "%s: imaps_listen: %s\n", path, err);
		bad++;
	}
	if (lmtp_listen_check(&cfg, err, sizeof(err)) < 0) {
		fprintf(out, "%s: %s\n", path, err);
		bad++;
	}
	if (cfg.imaps_listen[0] && cfg.tls_cert[0] == '\0') {
		fprintf(out, "%s: imaps_listen is set but tls_cert is empty\n", path);
		bad++;
	}
	if (cfg.tls_cert[0]) {
		SSL_CTX *ctx = NULL;
		if (tls_ctx_new(cfg.tls_cert, cfg.tls_key, &ctx, err, sizeof(err)) < 0) {
			fprintf(out, "%s: %s\n", path, err);
			bad++;
		}
		tls_ctx_free(&ctx);
	}
	if (geteuid() == 0 || cfg.run_user[0]) {
		uid_t u;
		gid_t g;
		if (lookup_run_user(cfg.run_user, &u, &g, err, sizeof(err)) < 0) {
			fprintf(out, "%s: %s\n", path, err);
			bad++;
		}
	}
	if (access(cfg.data_dir, R_OK | X_OK) < 0) {
		fprintf(out, "%s: data_dir %s: %s\n", path, cfg.data_dir, strerror(errno));
		bad++;
	}
	if (cfg.metrics_listen[0]) {
		const char *h = cfg.metrics_listen;
		if (strncmp(h, "127.", 4) != 0 && strncmp(h, "[::1]:", 6) != 0 &&
		    strncmp(h, "localhost:", 10) != 0) {
			fprintf(out, "%s: metrics_listen %s: must be a loopback address "
			    "(127.x.x.x:port, [::1]:port or localhost:port)\n", path, h);
			bad++;
		}
	}
	if (cfg.alert_command[0] && access(cfg.alert_command, X_OK) < 0) {
		fprintf(out, "%s: alert_command %s: %s\n", path, cfg.alert_command,
		    strerror(errno));
		bad++;
	}
	if (cfg.max_connections == 0 || cfg.max_user_connections == 0) {
		fprintf(out, "%s: max_connections and max_user_connections must be > 0\n", path);
		bad++;
	}
	if (bad)
		return 1;
	printf("%s: OK\n", path);
	return 0;
}

int server_run(const char *path)
{
	char err[1024];
	sigset_t set;
	struct bind_arg ba = { false, err, sizeof(err) };
	struct pollfd *pfd = NULL;
	size_t cappfd = 0;
	int rc = 1;

	proc_set_name(PROC_NAME_MASTER);
	log_set_ident("imapd-master");
	M.pid = getpid();
	if (snprintf(M.config_path, sizeof(M.config_path), "%s", path) >=
	    (int)sizeof(M.config_path)) {
		fprintf(stderr, "sealmail-imapd: config path too long\n");
		return 1;
	}
	if (load_config(path, &M.cfg, stderr) < 0)
		return 1;
	log_set_level(parse_level(M.cfg.log_level));
	if (geteuid() == 0) {
		uid_t u;
		gid_t g;
		if (lookup_run_user(M.cfg.run_user, &u, &g, err, sizeof(err)) < 0) {
			fprintf(stderr, "sealmail-imapd: %s\n", err);
			return 1;
		}
	}
	if ((M.fails = calloc(FAIL_SLOTS, sizeof(*M.fails))) == NULL)
		return 1;
	if (M.cfg.imaps_listen[0] && M.cfg.tls_cert[0] == '\0') {
		fprintf(stderr, "sealmail-imapd: imaps_listen is set but tls_cert is empty\n");
		return 1;
	}
	if (M.cfg.tls_cert[0] &&
	    tls_ctx_new(M.cfg.tls_cert, M.cfg.tls_key, &M.ctx, err, sizeof(err)) < 0) {
		fprintf(stderr, "sealmail-imapd: %s\n", err);
		return 1;
	}
	if (M.cfg.imap_listen[0] == '\0' && M.cfg.imaps_listen[0] == '\0') {
		fprintf(stderr, "sealmail-imapd: neither imap_listen nor imaps_listen is set\n");
		return 1;
	}
	ba.implicit_tls = false;
	if (M.cfg.imap_listen[0] && foreach_addr(M.cfg.imap_listen, bind_one, &ba) < 0) {
		fprintf(stderr, "sealmail-imapd: imap_listen: %s\n", err);
		return 1;
	}
	ba.implicit_tls = true;
	if (M.cfg.imaps_listen[0] && foreach_addr(M.cfg.imaps_listen, bind_one, &ba) < 0) {
		fprintf(stderr, "sealmail-imapd: imaps_listen: %s\n", err);
		return 1;
	}
	if (M.cfg.lmtp_listen[0] && lmtp_listener_open(&M.cfg, &lmtp_fd, err, sizeof(err)) < 0) {
		fprintf(stderr, "sealmail-imapd: %s\n", err);
		return 1;
	}
	if (open_audit(&M.cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "sealmail-imapd: %s\n", err);
		return 1;
	}
	if (M.cfg.metrics_listen[0] &&
	    metrics_listener_open(&M.cfg, &metrics_fd, err, sizeof(err)) < 0) {
		fprintf(stderr, "sealmail-imapd: %s\n", err);
		return 1;
	}
	raise_nofile(M.cfg.max_connections);
	raise_memlock(M.cfg.session_cache_size);
	if (drop_root(M.cfg.run_user, err, sizeof(err)) < 0) {
		fprintf(stderr, "sealmail-imapd: %s\n", err);
		return 1;
	}
	(void)crypto_harden_process();
	signal(SIGPIPE, SIG_IGN);
	sigs_block(&set);
	if ((M.sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		fprintf(stderr, "sealmail-imapd: signalfd: %s\n", strerror(errno));
		return 1;
	}
	lmtp_started = time(NULL);
	if (lmtp_fd >= 0 && lmtp_start(lmtp_fd, &M.cfg, &lmtp_pid) < 0) {
		fprintf(stderr, "sealmail-imapd: cannot start the LMTP process: %s\n",
		    strerror(errno));
		return 1;
	}
	if (metrics_fd >= 0 && metrics_start(metrics_fd, &M.cfg, &metrics_pid) < 0) {
		fprintf(stderr, "sealmail-imapd: cannot start the metrics process: %s\n",
		    strerror(errno));
		return 1;
	}
	log_info("sealmail-imapd ready (pid %d)", (int)getpid());

	for (;;) {
		size_t n = 0, need = 1 + M.nlst + M.nlogins;

		if (need > cappfd) {
			void *p = realloc(pfd, need * 2 * sizeof(*pfd));
			if (p == NULL) {
				log_err("out of memory");
				goto out;
			}
			pfd = p;
			cappfd = need * 2;
		}
		update_gauges();
		pfd[n++] = (struct pollfd){ M.sigfd, POLLIN, 0 };
		for (size_t i = 0; i < M.nlst; i++)
			pfd[n++] = (struct pollfd){ M.lst[i].fd, POLLIN, 0 };
		for (size_t i = 0; i < M.nlogins; i++)
			pfd[n++] = (struct pollfd){ M.logins[i].ctl, POLLIN, 0 };
		if (poll(pfd, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_err("poll: %s", strerror(errno));
			goto out;
		}
		if (pfd[0].revents) {
			struct signalfd_siginfo si;
			bool stop = false;
			while (read(M.sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				if (si.ssi_signo == SIGCHLD)
					reap();
				else if (si.ssi_signo == SIGHUP)
					reload();
				else
					stop = true;
			}
			if (stop) {
				log_info("shutting down");
				shutdown_all();
				rc = 0;
				goto out;
			}
			continue;	/* the login table may have changed */
		}
		/* Control messages first (they may free slots), indexes are stable until
		 * reap() runs, which only happens above. */
		for (size_t i = 0; i < M.nlogins; i++) {
			struct pollfd *p = &pfd[1 + M.nlst + i];
			if (p->revents && M.logins[i].ctl == p->fd && p->fd >= 0)
				handle_login_msg(&M.logins[i]);
		}
		for (size_t i = 0; i < M.nlst; i++)
			if (pfd[1 + i].revents & POLLIN)
				for (int k = 0; k < 64; k++) {
					size_t before = M.nlogins;
					accept_one(&M.lst[i]);
					if (M.nlogins == before)
						break;
				}
	}
out:
	free(pfd);
	tls_ctx_free(&M.ctx);
	return rc;
}
