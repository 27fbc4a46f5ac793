/* events: audit helpers shared by the imapd processes, and the master's alerts
 * (events.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "crypto.h"
#include "events.h"
#include "log.h"
#include "compat.h"

void audit_ctx_init(struct audit_ctx *c, const char *peer)
{
	uint8_t b[AUDIT_SID_HEX / 2];

	memset(c, 0, sizeof(*c));
	crypto_random(b, sizeof(b));
	if (crypto_hex_encode(b, sizeof(b), c->sid, sizeof(c->sid)) < 0)
		c->sid[0] = '\0';
	snprintf(c->peer, sizeof(c->peer), "%s", peer ? peer : "");
}

void audit_ctx_fields(struct audit_rec *r, const struct audit_ctx *c)
{
	const char *colon = strrchr(c->peer, ':'), *sp = strchr(c->tls_info, ' ');
	const char *addr = c->peer;
	size_t alen = colon ? (size_t)(colon - c->peer) : strlen(c->peer);

	audit_str(r, "session", c->sid[0] ? c->sid : NULL);
	audit_str(r, "user", c->user[0] ? c->user : NULL);
	if (alen >= 2 && addr[0] == '[' && addr[alen - 1] == ']') {
		addr++;
		alen -= 2;
	}
	audit_strn(r, "src_addr", addr, alen);
	if (colon != NULL)
		audit_u64(r, "src_port", strtoul(colon + 1, NULL, 10));
	if (c->tls_info[0] != '\0') {
		audit_strn(r, "tls_version", c->tls_info,
		    sp ? (size_t)(sp - c->tls_info) : strlen(c->tls_info));
		audit_str(r, "tls_cipher", sp ? sp + 1 : NULL);
	} else {
		audit_str(r, "tls_version", NULL);
		audit_str(r, "tls_cipher", NULL);
	}
}

void audit_mbox_field(struct audit_rec *r, const char *key, const char *name, size_t n)
{
	char hex[33];

	/* RFC 9051 5.1: INBOX is case-insensitive; hash it in one spelling. */
	if (n == 5 && strncasecmp(name, "INBOX", 5) == 0)
		name = "INBOX";
	if (audit_mbox_hash(name, n, time(NULL), hex) == 0)
		audit_str(r, key, hex);
}

void audit_login(const struct audit_ctx *c, const char *user, enum metrics_login cls,
    bool full)
{
	struct audit_rec r;
	struct audit_ctx tmp = *c;

	metrics_login(cls);
	if (!audit_enabled())
		return;
	/* An unknown user name is not logged: it is often a passphrase typed into the
	 * wrong field. */
	snprintf(tmp.user, sizeof(tmp.user), "%s", cls == ML_UNKNOWN_USER || user == NULL ?
	    "" : user);
	audit_begin(&r, cls == ML_OK ? "login_success" : "login_failure");
	audit_ctx_fields(&r, &tmp);
	if (cls == ML_OK)
		audit_str(&r, "method", full ? "passphrase+otp" : "passphrase_window");
	else
		audit_str(&r, "class", metrics_login_class(cls));
	(void)audit_emit(&r);
}

/* ---- alerts --------------------------------------------------------------------- */

#define ALERT_SLOTS 2048
#define HOOK_PER_MINUTE 10

struct fail_win {
	char key[136];		/* "u:" user or "a:" address; "" free */
	time_t start;		/* window start */
	unsigned count;
	bool alerted;
};

static struct {
	const struct vault_config *cfg;
	struct fail_win *w;
	time_t hook_minute;
	unsigned hook_runs, hook_dropped;
} AL;

void alert_init(const struct vault_config *cfg)
{
	AL.cfg = cfg;
	if (AL.w == NULL)
		AL.w = calloc(ALERT_SLOTS, sizeof(*AL.w));
}

static void run_hook(const char *json, size_t n)
{
	int p[2];
	pid_t pid;
	time_t now = time(NULL);

	if (AL.cfg == NULL || AL.cfg->alert_command[0] == '\0')
		return;
	if (now / 60 != AL.hook_minute) {
		if (AL.hook_dropped)
			log_warn("alert_command: %u alerts not passed to the hook (rate limit %d a "
			    "minute)", AL.hook_dropped, HOOK_PER_MINUTE);
		AL.hook_minute = now / 60;
		AL.hook_runs = 0;
		AL.hook_dropped = 0;
	}
	if (AL.hook_runs >= HOOK_PER_MINUTE) {
		AL.hook_dropped++;
		return;
	}
	AL.hook_runs++;
	if (pipe2(p, O_CLOEXEC) < 0) {
		log_err("alert_command: pipe: %s", strerror(errno));
		return;
	}
	if ((pid = fork()) < 0) {
		log_err("alert_command: fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return;
	}
	if (pid == 0) {
		static char prog[sizeof(AL.cfg->alert_command)];
		char *const argv[] = { prog, NULL };
		char *const envp[] = { (char *)"PATH=/usr/local/bin:/usr/bin:/bin", NULL };
		sigset_t none;
		int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);

		snprintf(prog, sizeof(prog), "%s", AL.cfg->alert_command);
		sigemptyset(&none);
		(void)sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (dup2(p[0], 0) < 0 || (devnull >= 0 && dup2(devnull, 1) < 0))
			_exit(127);
		(void)close_range(3, ~0u, 0);
		/* execve, not a shell: the alert text never reaches a command line. */
		execve(argv[0], argv, envp);
		_exit(127);
	}
	close(p[0]);
	/* The line (<= PIPE_BUF) fits in the empty pipe: this write never blocks the
	 * master; the child is reaped by the master's SIGCHLD handling. */
	(void)fcntl(p[1], F_SETFL, O_NONBLOCK);
	if (write(p[1], json, n) != (ssize_t)n)
		log_warn("alert_command: could not pass the alert to pid %d", (int)pid);
	close(p[1]);
}

void alert_emit(struct audit_rec *r)
{
	metrics_alert();
	(void)audit_emit(r);	/* finishes the line even when the log is off */
	log_warn("alert: %.*s", (int)(r->len > 0 ? r->len - 1 : 0), r->buf);
	run_hook(r->buf, r->len);
}

static struct fail_win *win_find(const char *key, time_t now)
{
	struct fail_win *free_slot = NULL, *oldest = NULL;

	if (AL.w == NULL)
		return NULL;
	for (size_t i = 0; i < ALERT_SLOTS; i++) {
		struct fail_win *w = &AL.w[i];

		if (w->key[0] != '\0' && now - w->start > (time_t)AL.cfg->alert_fail_window)
			w->key[0] = '\0';	/* expired */
		if (w->key[0] == '\0') {
			if (free_slot == NULL)
				free_slot = w;
			continue;
		}
		if (strcmp(w->key, key) == 0)
			return w;
		if (oldest == NULL || w->start < oldest->start)
			oldest = w;
	}
	if (free_slot == NULL)
		free_slot = oldest;	/* full: forget the oldest window */
	snprintf(free_slot->key, sizeof(free_slot->key), "%s", key);
	free_slot->start = now;
	free_slot->count = 0;
	free_slot->alerted = false;
	return free_slot;
}

static void count_failure(const char *kind, const char *key, const char *ip,
    const char *user, time_t now)
{
	struct fail_win *w = win_find(key, now);
	struct audit_rec r;

	if (w == NULL)
		return;
	w->count++;
	if (w->alerted || w->count < AL.cfg->alert_fail_threshold)
		return;
	w->alerted = true;
	audit_begin(&r, "alert");
	audit_str(&r, "alert", kind);
	audit_str(&r, "user", user);
	audit_str(&r, "src_addr", ip);
	audit_u64(&r, "failures", w->count);
	audit_u64(&r, "window_s", AL.cfg->alert_fail_window);
	alert_emit(&r);
}

void alert_login_failed(const char *ip, const char *user, enum metrics_login cls)
{
	char key[136];
	time_t now = time(NULL);

	if (AL.cfg == NULL)
		return;
	if (cls == ML_REPLAYED_OTP && user != NULL) {
		/* A replayed OTP against an existing user: someone holds an OTP that was
		 * already used, the strongest sign of a stolen or phished token. Always,
		 * and on the first occurrence. */
		struct audit_rec r;

		audit_begin(&r, "alert");
		audit_str(&r, "alert", "replayed_otp");
		audit_str(&r, "user", user);
		audit_str(&r, "src_addr", ip);
		alert_emit(&r);
	}
	if (AL.cfg->alert_fail_threshold == 0)
		return;
	if (user != NULL) {
		snprintf(key, sizeof(key), "u:%s", user);
		count_failure("failed_logins_user", key, ip, user, now);
	}
	snprintf(key, sizeof(key), "a:%s", ip);
	count_failure("failed_logins_source", key, ip, NULL, now);
}
