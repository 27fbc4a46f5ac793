/* daemon.c: `sealmail-keymgr daemon`, the rotation scheduler, and the pieces the
 * admin commands share with it (clock, audit hook, one rotation pass).
 *
 * The daemon is its own process: started as root it drops to run_user first, then
 * hardens itself (no core dumps, not ptrace-able) and opens the store. It needs no
 * user secret at all: a rotation creates an epoch key pair and seals the secret to
 * the user's identity public key (vault_rotate), and retirement deletes epoch
 * records that no message references (vault_epochs_retire_unused). It never reads a
 * passphrase, an OTP or an unlocked key, and holds none.
 *
 * Crash safety is the vault's: each rotation is one durable LMDB transaction that
 * writes the new epoch record and moves the user's current-epoch pointer together,
 * so a kill at any instant leaves every user with exactly one current epoch, and a
 * restart simply rotates whoever is still due. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include "keymgr.h"
#include "audit.h"
#include "cli-util.h"
#include "log.h"
#include "vault.h"
#include "compat.h"

/* ---- clock ------------------------------------------------------------------------- */
static bool parse_time(const char *s, time_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')
		end++;
	if (errno != 0 || end == s || *end != '\0' || v < 0)
		return false;
	*out = (time_t)v;
	return true;
}

time_t keymgr_now(void)
{
	const char *f = getenv("SEALMAIL_CLOCK_FILE"), *s = getenv("SEALMAIL_FAKE_TIME");
	time_t t;

	if (f != NULL && f[0] != '\0') {
		char buf[64];
		ssize_t n = -1;
		int fd = open(f, O_RDONLY | O_CLOEXEC);

		if (fd >= 0) {
			n = read(fd, buf, sizeof(buf) - 1);
			close(fd);
		}
		if (n > 0) {
			buf[n] = '\0';
			if (parse_time(buf, &t))
				return t;
		}
		log_warn("SEALMAIL_CLOCK_FILE %s: no unix time in it; using the real clock", f);
	}
	if (s != NULL && s[0] != '\0') {
		if (parse_time(s, &t))
			return t;
		log_warn("SEALMAIL_FAKE_TIME: not a unix time; using the real clock");
	}
	return time(NULL);
}

/* ---- audit hook --------------------------------------------------------------------- */
int keymgr_audit(const struct vault_config *cfg, time_t now, const char *event,
    const char *user, uint32_t epoch, int64_t messages)
{
	static char opened[sizeof(cfg->audit_log)];
	struct audit_rec rec;
	char err[512];
	int r;

	(void)now;	/* the line carries the real time; SEALMAIL_FAKE_TIME only drives policy */
	if (cfg == NULL || cfg->audit_log[0] == '\0' || strcmp(cfg->audit_log, "off") == 0)
		return 0;
	/* One descriptor per process (the daemon keeps it; O_APPEND, one write a line). */
	if (strcmp(opened, cfg->audit_log) != 0 || !audit_enabled()) {
		if ((r = audit_open(cfg->audit_log, "sealmail-keymgr", err, sizeof(err))) < 0) {
			log_err("%s", err);
			return r;
		}
		snprintf(opened, sizeof(opened), "%s", cfg->audit_log);
	}
	audit_begin(&rec, event);
	audit_str(&rec, "user", user);
	audit_u64(&rec, "epoch", epoch);
	if (messages >= 0)
		audit_i64(&rec, "messages", messages);
	if ((r = audit_emit(&rec)) < 0) {
		log_err("audit log %s: %s", cfg->audit_log, strerror(-r));
		return r;
	}
	if (audit_fd() >= 0 && fsync(audit_fd()) < 0)
		return -errno;
	return 0;
}

/* ---- one pass ------------------------------------------------------------------------ */
#define KEYMGR_BATCH 128	/* users per durable write txn */
struct due {
	char name[128];
	time_t epoch_created;
	uint32_t pending;
	uint64_t messages;
	size_t live_epochs;
};

struct collect {
	struct vault_txn *t;
	struct due *v;
	size_t n, cap;
};

static int collect_cb(const struct vault_user_info *u, void *arg)
{
	struct collect *c = arg;
	struct due *d;
	int r;

	if (c->n == c->cap) {
		size_t nc = c->cap ? c->cap * 2 : 256;
		struct due *nv = realloc(c->v, nc * sizeof(*nv));

		if (nv == NULL)
			return -ENOMEM;
		c->v = nv;
		c->cap = nc;
	}
	d = &c->v[c->n];
	snprintf(d->name, sizeof(d->name), "%s", u->name);
	d->epoch_created = u->epoch_created;
	d->pending = u->pending_rewrap;
	d->messages = u->messages;
	if ((r = vault_user_epochs(c->t, u->id, false, NULL, 0, &d->live_epochs)) < 0)
		return r;
	c->n++;
	return 0;
}

static volatile sig_atomic_t stop_flag, wake_flag;

static void report_retired(const struct vault_config *cfg, time_t now, const char *name,
    const uint32_t *ret, size_t n, size_t max, struct keymgr_pass_stats *st)
{
	for (size_t i = 0; i < n && i < max; i++) {
		log_info("user %s: epoch %" PRIu32 " retired: no message left under it, its "
		    "secret is destroyed", name, ret[i]);
		(void)keymgr_audit(cfg, now, "key_retirement", name, ret[i], -1);
	}
	st->retired += (unsigned)n;
}

static void report_rotated(const struct vault_config *cfg, time_t now, const char *name,
    uint32_t epoch, struct keymgr_pass_stats *st)
{
	log_info("user %s: rotated to epoch %" PRIu32, name, epoch);
	(void)keymgr_audit(cfg, now, "key_rotation", name, epoch, -1);
	st->rotated++;
}

/* The slow path after a batch failed: one user per txn, so one bad user cannot hold
 * back the others. */
static void one_by_one(struct vault *v, const struct vault_config *cfg, time_t now,
    struct vault_rotate_item *it, size_t n, struct keymgr_pass_stats *st)
{
	for (size_t i = 0; i < n && !stop_flag; i++) {
		int r = vault_rotate_batch(v, &it[i], 1, now, false);

		if (r < 0 || (it[i].result < 0 && it[i].result != VAULT_ERR_NOUSER)) {
			log_err("user %s: rotation failed: %s", it[i].user,
			    cli_strerror(r < 0 ? r : it[i].result));
			st->failed++;
			continue;
		}
		if (it[i].result == 0)
			report_rotated(cfg, now, it[i].user, it[i].epoch, st);
		report_retired(cfg, now, it[i].user, it[i].retired, it[i].nretired, 8, st);
	}
}

int keymgr_rotation_pass(struct vault *v, const struct vault_config *cfg, time_t now,
    struct keymgr_pass_stats *st)
{
	struct collect c = { NULL, NULL, 0, 0 };
	struct vault_rotate_item *items = NULL;
	size_t nitems = 0, batch = KEYMGR_BATCH;
	const char *bs = getenv("SEALMAIL_ROTATE_BATCH");
	int r;

	memset(st, 0, sizeof(*st));
	/* TEST ONLY: smaller batches, so that a crash test's kills also land between
	 * the transactions of one pass. */
	if (bs != NULL && atoi(bs) > 0 && atoi(bs) <= KEYMGR_BATCH)
		batch = (size_t)atoi(bs);
	/* Names first (one read txn), then the due users in batches of KEYMGR_BATCH per
	 * durable write txn: a pass never holds the writer lock for long, so deliveries
	 * and sessions go on meanwhile, and 10,000 users cost 80 fsyncs, not 10,000. */
	if ((r = vault_txn_begin(v, false, &c.t)) < 0)
		return r;
	r = vault_user_foreach(c.t, collect_cb, &c);
	vault_txn_abort(&c.t);
	if (r < 0)
		goto out;
	st->users = (unsigned)c.n;
	if (c.n > 0 && (items = calloc(c.n, sizeof(*items))) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < c.n; i++) {
		struct due *d = &c.v[i];
		bool due = (int64_t)now - (int64_t)d->epoch_created >=
		    (int64_t)cfg->rotation_period;

		/* Retire old epochs once nothing is left under them; a user without mail
		 * has nothing to re-wrap, so the epoch just replaced goes at once. */
		if (!due && !(d->pending == 0 && d->live_epochs > 1))
			continue;
		items[nitems].user = d->name;
		items[nitems].retire_unused = (d->pending == 0 && d->live_epochs > 1) ||
		    d->messages == 0;
		nitems++;
	}
	for (size_t i = 0; i < nitems && !stop_flag; i += batch) {
		size_t n = nitems - i < batch ? nitems - i : batch;

		if ((r = vault_rotate_batch(v, &items[i], n, now, false)) < 0) {
			log_warn("rotation batch of %zu users failed (%s): retrying one by one", n,
			    cli_strerror(r));
			one_by_one(v, cfg, now, &items[i], n, st);
			continue;
		}
		for (size_t j = i; j < i + n; j++) {
			if (items[j].result == 0)
				report_rotated(cfg, now, items[j].user, items[j].epoch, st);
			report_retired(cfg, now, items[j].user, items[j].retired, items[j].nretired, 8,
			    st);
		}
	}
	r = stop_flag ? -EINTR : 0;
out:
	free(items);
	free(c.v);
	return r;
}

/* ---- the process ---------------------------------------------------------------------- */
static void on_stop(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void on_hup(int sig)
{
	(void)sig;
	wake_flag = 1;
}

static int drop_root(const struct vault_config *cfg)
{
	struct passwd *pw;
	uid_t ru, eu, su;
	gid_t rg, eg, sg, groups[2];

	if (geteuid() != 0)
		return 0;
	if (cfg->run_user[0] == '\0') {
		cli_err("started as root but run_user is not set: refusing to run the daemon as "
		    "root");
		return -EPERM;
	}
	if ((pw = getpwnam(cfg->run_user)) == NULL) {
		cli_err("run_user '%s': no such user", cfg->run_user);
		return -ENOENT;
	}
	if (pw->pw_uid == 0 || pw->pw_gid == 0) {
		cli_err("run_user '%s' is root (uid or gid 0)", cfg->run_user);
		return -EPERM;
	}
	if (setgroups(1, &pw->pw_gid) < 0 || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0) {
		cli_err("cannot drop privileges to %s: %s", cfg->run_user, strerror(errno));
		return -EPERM;
	}
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 ||
	    ru != pw->pw_uid || eu != pw->pw_uid || su != pw->pw_uid || rg != pw->pw_gid ||
	    eg != pw->pw_gid || sg != pw->pw_gid || getgroups(2, groups) != 1 ||
	    groups[0] != pw->pw_gid || setuid(0) == 0) {
		cli_err("privilege drop to %s did not take effect", cfg->run_user);
		return -EPERM;
	}
	log_info("dropped root: running as %s", cfg->run_user);
	return 0;
}

/* Sleeps up to secs, returning early on SIGTERM/SIGINT/SIGHUP. */
static void nap(uint32_t secs)
{
	for (uint32_t i = 0; i < secs && !stop_flag && !wake_flag; i++) {
		struct timespec ts = { 1, 0 };

		(void)nanosleep(&ts, NULL);
	}
}

int keymgr_daemon(const char *config_path, bool once)
{
	struct vault_config cfg;
	struct vault *v = NULL;
	struct sigaction sa;
	int r;

	if ((r = crypto_init()) < 0) {
		cli_err("cannot initialise the crypto library: %s", cli_strerror(r));
		return CLI_EXIT_ERR;
	}
	if (cli_config_load(config_path, &cfg) < 0)
		return CLI_EXIT_ERR;
	log_set_ident("sealmail-keymgr");
	log_set_level(strcmp(cfg.log_level, "debug") == 0 ? LOG_LVL_DEBUG :
	    strcmp(cfg.log_level, "warn") == 0 ? LOG_LVL_WARN :
	    strcmp(cfg.log_level, "error") == 0 ? LOG_LVL_ERR : LOG_LVL_INFO);
	if (drop_root(&cfg) < 0)
		return CLI_EXIT_ERR;
	if (crypto_harden_process() < 0)
		log_warn("cannot harden the process (core dumps / ptrace)");
	if ((r = vault_open(&cfg, &v)) < 0) {
		cli_err("cannot open the store in %s: %s", cfg.data_dir, cli_strerror(r));
		return CLI_EXIT_ERR;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;	/* no SA_RESTART: the nap ends at once */
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_hup;
	(void)sigaction(SIGHUP, &sa, NULL);
	if (!once)
		log_info("rotation daemon started: period %" PRIu32 " s, check every %" PRIu32 " s",
		    cfg.rotation_period, cfg.rotation_check_interval);
	while (!stop_flag) {
		struct keymgr_pass_stats st;
		time_t now = keymgr_now();

		wake_flag = 0;
		r = keymgr_rotation_pass(v, &cfg, now, &st);
		if (r < 0 && r != -EINTR)
			log_err("rotation pass failed: %s", cli_strerror(r));
		else
			log_info("rotation pass: %u users, %u rotated, %u epochs retired, %u failed",
			    st.users, st.rotated, st.retired, st.failed);
		if (once) {
			if (r == 0 && st.failed == 0)
				printf("%u users checked, %u rotated, %u epochs retired\n", st.users,
				    st.rotated, st.retired);
			vault_close(&v);
			return r == 0 && st.failed == 0 ? CLI_EXIT_OK : CLI_EXIT_ERR;
		}
		nap(cfg.rotation_check_interval);
	}
	log_info("rotation daemon stopping");
	vault_close(&v);
	return CLI_EXIT_OK;
}
