/* Diagnostic log: one line per call, written with a single write(2) so lines from
 * several processes sharing stderr do not interleave:
 *   2026-11-27T12:00:00Z ident[pid] level: msg
 * Control characters in the message are replaced by '?' so that nothing a peer
 * sends can forge a second log line. */
#include <errno.h>
#include <stdarg.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include "log.h"
#include "compat.h"

#define LOG_LINE_MAX 2048

static char log_ident[64] = "sealmail";
static enum log_level log_level = LOG_LVL_INFO;
static int log_syslog;

static const char *const level_name[] = {
	[LOG_LVL_DEBUG] = "debug",
	[LOG_LVL_INFO] = "info",
	[LOG_LVL_WARN] = "warn",
	[LOG_LVL_ERR] = "err",
};

void log_set_ident(const char *ident)
{
	int n;

	if (ident == NULL)
		return;
	n = snprintf(log_ident, sizeof(log_ident), "%s", ident);
	(void)n;	/* truncating an over-long ident is fine */
}

void log_set_level(enum log_level lvl)
{
	if (lvl >= LOG_LVL_DEBUG && lvl <= LOG_LVL_ERR)
		log_level = lvl;
}

void log_open_syslog(int facility)
{
	openlog(log_ident, LOG_PID | LOG_NDELAY, facility);
	log_syslog = 1;
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;	/* nowhere left to report a logging failure */
		}
		p += w;
		n -= (size_t)w;
	}
}

static void sanitize(char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			*s = '?';
	}
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	char line[LOG_LINE_MAX], msg[LOG_LINE_MAX - 128], stamp[32];
	struct tm tm;
	time_t now;
	va_list ap;
	int n;
	int saved_errno = errno;	/* callers may log between a failure and %m */

	if (lvl < log_level || lvl > LOG_LVL_ERR)
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		snprintf(msg, sizeof(msg), "(unformattable log message)");
	else if ((size_t)n >= sizeof(msg))
		memcpy(msg + sizeof(msg) - 4, "...", 4);	/* mark the truncation */
	sanitize(msg);

	if (log_syslog) {
		static const int prio[] = { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR };

		syslog(prio[lvl], "%s", msg);
		errno = saved_errno;
		return;
	}
	now = time(NULL);
	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(stamp, sizeof(stamp), "-");
	n = snprintf(line, sizeof(line), "%s %s[%ld] %s: %s\n", stamp, log_ident,
	    (long)getpid(), level_name[lvl], msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {	/* ident is short: cannot happen, stay safe */
		n = (int)sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	write_all(STDERR_FILENO, line, (size_t)n);
	errno = saved_errno;
}
