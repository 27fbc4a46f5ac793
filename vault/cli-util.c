/* Shared by the admin programs: passphrase input, config lookup, login. */
#include "cli-util.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

static const char *progname = "sealmail";

void cli_set_progname(const char *name)
{
	progname = name;
	/* The programs report what they did themselves; the library's info lines would
	 * only repeat it. log_level = debug in the config shows everything. */
	log_set_ident(name);
	log_set_level(LOG_LVL_WARN);
}

const char *cli_progname(void)
{
	return progname;
}

void cli_err(const char *fmt, ...)
{
	va_list ap;
	char buf[2048];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s\n", progname, buf);
}

const char *cli_strerror(int err)
{
	if (err <= -VAULT_ERR_BASE)
		return vault_strerror(err);
	return strerror(err < 0 ? -err : err);
}

/* ---- Passphrase input -------------------------------------------------------- */

int cli_pass_open(int fd, struct cli_pass_src *out)
{
	out->fd = -1;
	out->tty = false;
	if (fd >= 0) {
		if (fcntl(fd, F_GETFD) < 0) {
			cli_err("--passphrase-fd %d: descriptor is not open", fd);
			return -EBADF;
		}
		out->fd = fd;
		return 0;
	}
	/* A terminal only when a person is plausibly there: stdin is a terminal. Scripts
	 * without --passphrase-fd must fail instead of hanging on /dev/tty. */
	if (isatty(STDIN_FILENO)) {
		int t = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);

		if (t >= 0) {
			out->fd = t;
			out->tty = true;
			return 0;
		}
	}
	cli_err("no passphrase source: use --passphrase-fd or a terminal");
	return -ENOTTY;
}

/* The terminal must get its echo back even when the user presses ^C at a prompt. */
static volatile sig_atomic_t tty_signal;

static void tty_on_signal(int sig)
{
	tty_signal = sig;
}

/* Reads bytes up to '\n' into buf (cap bytes). *n_out: bytes stored. 0, -ENODATA at
 * end of input before any byte, -E2BIG line too long, -EINTR on a signal (tty). */
static int read_line(int fd, bool stop_on_signal, uint8_t *buf, size_t cap, size_t *n_out)
{
	size_t n = 0;
	bool any = false;

	for (;;) {
		uint8_t c;
		ssize_t r = read(fd, &c, 1);

		if (r < 0) {
			if (errno == EINTR) {
				if (stop_on_signal && tty_signal != 0)
					return -EINTR;
				continue;
			}
			return -errno;
		}
		if (r == 0) {
			if (!any)
				return -ENODATA;
			break;
		}
		any = true;
		if (c == '\n')
			break;
		if (n == cap) {
			/* Drain the rest of the line so a following read starts clean. */
			while (read(fd, &c, 1) == 1 && c != '\n')
				;
			return -E2BIG;
		}
		buf[n++] = c;
	}
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	*n_out = n;
	return 0;
}

static int tty_read(int fd, const char *prompt, uint8_t *buf, size_t cap, size_t *n_out)
{
	struct termios old, noecho;
	struct sigaction sa, saved[5];
	static const int sigs[5] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP };
	int r, i;

	if (tcgetattr(fd, &old) < 0)
		return -errno;
	noecho = old;
	noecho.c_lflag &= ~(tcflag_t)ECHO;
	noecho.c_lflag |= ECHONL;	/* the newline the user types still shows */

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = tty_on_signal;	/* no SA_RESTART: read() returns EINTR */
	sigemptyset(&sa.sa_mask);
	tty_signal = 0;
	for (i = 0; i < 5; i++)
		sigaction(sigs[i], &sa, &saved[i]);

	if (write(fd, prompt, strlen(prompt)) < 0) {
		r = -errno;
		goto restore;
	}
	if (tcsetattr(fd, TCSAFLUSH, &noecho) < 0) {
		r = -errno;
		goto restore;
	}
	r = read_line(fd, true, buf, cap, n_out);
	tcsetattr(fd, TCSAFLUSH, &old);
restore:
	for (i = 0; i < 5; i++)
		sigaction(sigs[i], &saved[i], NULL);
	if (tty_signal != 0) {
		int sig = tty_signal;

		if (write(fd, "\n", 1) < 0) {
			/* nothing to do: we are about to die of the signal anyway */
		}
		raise(sig);
		return -EINTR;
	}
	return r;
}

int cli_pass_read(struct cli_pass_src *s, const char *prompt, const char *what,
    struct secret **out)
{
	struct secret *buf = NULL;
	size_t n = 0;
	int r;

	*out = NULL;
	if ((r = secret_new(CLI_PASS_MAX + 1, &buf)) < 0) {
		cli_err("out of secure memory");
		return r;
	}
	if (s->tty)
		r = tty_read(s->fd, prompt, buf->p, CLI_PASS_MAX, &n);
	else
		r = read_line(s->fd, false, buf->p, CLI_PASS_MAX, &n);
	if (r == -ENODATA) {
		cli_err("no %s: end of input on the passphrase source", what);
		goto out;
	}
	if (r == -E2BIG) {
		cli_err("%s too long (over %d bytes)", what, CLI_PASS_MAX);
		goto out;
	}
	if (r < 0) {
		cli_err("cannot read the %s: %s", what, strerror(-r));
		goto out;
	}
	if (n == 0) {
		cli_err("empty %s", what);
		r = -ENODATA;
		goto out;
	}
	/* Copy with the terminating NUL (buf is zeroed past n), not counted in len, so
	 * the value can also be used as a C string (recovery keys). */
	if ((r = secret_dup(buf->p, n + 1, out)) < 0)
		cli_err("out of secure memory");
	else
		(*out)->len = n;
out:
	secret_free(&buf);
	return r;
}

int cli_pass_read_new(struct cli_pass_src *s, const char *prompt, const char *what,
    struct secret **out)
{
	struct secret *a = NULL, *b = NULL;
	int r;

	*out = NULL;
	if ((r = cli_pass_read(s, prompt, what, &a)) < 0)
		return r;
	if (!s->tty) {
		*out = a;
		return 0;
	}
	if ((r = cli_pass_read(s, "Repeat it: ", what, &b)) < 0)
		goto out;
	if (!secret_eq(a, b)) {
		cli_err("the two %ss differ", what);
		r = -EINVAL;
		goto out;
	}
	*out = a;
	a = NULL;
out:
	secret_free(&a);
	secret_free(&b);
	return r;
}

int cli_confirm(const char *question)
{
	char buf[16];
	size_t n = 0;
	int fd, r;

	if (!isatty(STDIN_FILENO))
		return -ENOTTY;
	if ((fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY)) < 0)
		return -ENOTTY;
	if (write(fd, question, strlen(question)) < 0 || write(fd, " [y/N] ", 7) < 0) {
		r = -errno;
		goto out;
	}
	r = read_line(fd, false, (uint8_t *)buf, sizeof(buf) - 1, &n);
	if (r < 0) {
		r = 0;
		goto out;
	}
	buf[n] = '\0';
	r = (strcmp(buf, "y") == 0 || strcmp(buf, "yes") == 0 || strcmp(buf, "Y") == 0 ||
	    strcmp(buf, "YES") == 0 || strcmp(buf, "Yes") == 0);
out:
	close(fd);
	return r;
}

/* ---- Config and store ---------------------------------------------------------- */

int cli_config_load(const char *explicit_path, struct vault_config *cfg)
{
	const char *path = explicit_path;
	char err[1024] = "";
	int r;

	if (path == NULL || *path == '\0')
		path = getenv("SEALMAIL_CONF");
	if (path == NULL || *path == '\0')
		path = "./sealmail.conf";
	vault_config_defaults(cfg);
	r = vault_config_load(path, cfg, err, sizeof(err));
	if (r < 0) {
		if (err[0] != '\0')
			cli_err("%s", err);
		else
			cli_err("cannot load config %s: %s", path, cli_strerror(r));
	}
	return r;
}

int cli_open_store(const char *config_path, struct vault_config *cfg, struct vault **out)
{
	int r;

	*out = NULL;
	if ((r = crypto_init()) < 0) {
		cli_err("cannot initialise the crypto library: %s", cli_strerror(r));
		return r;
	}
	if ((r = cli_config_load(config_path, cfg)) < 0)
		return r;
	if (strcmp(cfg->log_level, "debug") == 0)
		log_set_level(LOG_LVL_DEBUG);
	if ((r = vault_open(cfg, out)) < 0)
		cli_err("cannot open the store in %s (config %s): %s", cfg->data_dir, cfg->path,
		    cli_strerror(r));
	return r;
}

int cli_login_unlock(struct vault *v, const char *user, const struct secret *line,
    struct vault_keys **out)
{
	struct vault_login login;
	size_t plen = 0;
	int r;

	*out = NULL;
	memset(&login, 0, sizeof(login));
	if (crypto_otp_split((const char *)line->p, line->len, &plen) < 0 || plen == 0) {
		cli_err("the passphrase line must be the passphrase immediately followed by a "
		    "current 44-character OTP of one of %s's tokens", user);
		return -EINVAL;
	}
	r = vault_login_derive(v, user, line->p, line->len, &login);
	if (r < 0) {
		switch (r) {
		case VAULT_ERR_NOUSER:
			cli_err("no such user: %s", user);
			break;
		case VAULT_ERR_AUTH:
			cli_err("login failed for %s: wrong passphrase or token", user);
			break;
		case VAULT_ERR_REPLAY:
			cli_err("login failed for %s: the OTP was already used (replayed OTP "
			    "refused); use a fresh one", user);
			break;
		case VAULT_ERR_TOKEN:
			cli_err("login failed for %s: the OTP is not valid for any of the user's "
			    "tokens", user);
			break;
		default:
			cli_err("login failed for %s: %s", user, cli_strerror(r));
			break;
		}
		return r;
	}
	r = vault_unlock(v, &login, out);
	if (r < 0)
		cli_err("cannot unlock %s's keys: %s", user, cli_strerror(r));
	vault_login_clear(&login);
	return r;
}

void cli_getopt_error(char *const *argv, int optind_now, int optopt_now)
{
	const char *a = optind_now > 0 ? argv[optind_now - 1] : "";

	if (optopt_now > 0 && optopt_now < 128 && !(a[0] == '-' && a[1] == '-')) {
		cli_err("bad option -%c (unknown, or missing its value)", optopt_now);
		return;
	}
	cli_err("bad option %.*s (unknown, or missing its value)", (int)strcspn(a, "="), a);
}

/* ---- Small parsers and formatting ------------------------------------------------ */

int cli_parse_u32(const char *s, uint32_t max, uint32_t *out)
{
	uint64_t v = 0;
	const char *p;

	if (s == NULL || *s == '\0')
		return -EINVAL;
	for (p = s; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > max)
			return -ERANGE;
	}
	*out = (uint32_t)v;
	return 0;
}

int cli_parse_fd(const char *s, int *out)
{
	uint32_t v;
	int r;

	if ((r = cli_parse_u32(s, 1u << 20, &v)) < 0)
		return r;
	*out = (int)v;
	return 0;
}

void cli_fmt_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M UTC", &tm) == 0)
		snprintf(buf, len, "@%lld", (long long)t);
}

void cli_fmt_age(int64_t s, char *buf, size_t len)
{
	const char *sign = "";

	if (s < 0) {
		sign = "-";
		s = -s;
	}
	if (s >= 2 * 86400)
		snprintf(buf, len, "%s%" PRId64 " days", sign, s / 86400);
	else if (s >= 2 * 3600)
		snprintf(buf, len, "%s%" PRId64 " hours", sign, s / 3600);
	else if (s >= 120)
		snprintf(buf, len, "%s%" PRId64 " minutes", sign, s / 60);
	else
		snprintf(buf, len, "%s%" PRId64 " seconds", sign, s);
}
