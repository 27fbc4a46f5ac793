/* cli-util: what the admin programs (sealmail-vault, sealmail-keymgr) share:
 * reading passphrases without argv (a no-echo prompt on the terminal, or lines from
 * --passphrase-fd N), finding and loading the config file, turning a
 * "passphrase || OTP" line into unlocked keys, and small argument parsers.
 *
 * Messages go to stderr prefixed with the program name set by cli_set_progname();
 * they never contain a passphrase, an OTP, a key or message content.
 * Functions return 0 or -errno / a VAULT_ERR_* code like the rest of sealmail. */
#pragma once
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "crypto.h"
#include "vault.h"

/* Exit codes of the admin programs (sealmail-vault deliver uses sysexits instead). */
#define CLI_EXIT_OK	0
#define CLI_EXIT_ERR	1	/* runtime error; a message names what was wrong */
#define CLI_EXIT_USAGE	2	/* bad command line */

/* Longest passphrase line accepted (passphrase + 44-char OTP, or a recovery key). */
#define CLI_PASS_MAX 1024

/* Also sets the log ident and level (warnings and errors only; the config's
 * log_level = debug turns on everything once cli_open_store loaded it). */
void cli_set_progname(const char *name);
const char *cli_progname(void);
/* "PROG: message\n" on stderr. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Where passphrases come from. fd >= 0: lines read from that descriptor (one read
 * per byte, so nothing past the newline is consumed). fd < 0: the controlling
 * terminal, if standard input is one; prompts go to /dev/tty with echo off. */
struct cli_pass_src {
	int fd;
	bool tty;
};
/* fd: the --passphrase-fd value, or -1 if none was given. -ENOTTY with the message
 * "no passphrase source: use --passphrase-fd or a terminal" printed when neither
 * exists; -EBADF (printed) if fd is not open. */
int cli_pass_open(int fd, struct cli_pass_src *out);
/* Reads one line (without its CR/LF) into a new secret of its length, followed by a
 * NUL that len does not count (so it is also a C string).
 * -ENODATA for an empty line or end of input, -E2BIG for a line longer than
 * CLI_PASS_MAX. prompt is shown on the terminal only. Prints errors; what names
 * the value in them ("passphrase", "recovery key"). */
int cli_pass_read(struct cli_pass_src *s, const char *prompt, const char *what,
    struct secret **out);
/* Terminal only: reads twice and compares (new passphrases). On an fd, one read. */
int cli_pass_read_new(struct cli_pass_src *s, const char *prompt, const char *what,
    struct secret **out);
/* Asks a yes/no question on the terminal; 1 yes, 0 no, -ENOTTY without a terminal. */
int cli_confirm(const char *question);

/* The config path: explicit (from -c) if non-NULL, else $SEALMAIL_CONF, else
 * ./sealmail.conf. Loads it; prints "PROG: FILE:LINE: what" on error. */
int cli_config_load(const char *explicit_path, struct vault_config *cfg);

/* crypto_init + config + vault_open, printing errors. */
int cli_open_store(const char *config_path, struct vault_config *cfg, struct vault **out);

/* Login with a "passphrase || OTP" line and unlock the user's keys. Prints a clear
 * error (no OTP on the line, unknown user, wrong passphrase or token, replayed OTP)
 * and returns the vault error. */
int cli_login_unlock(struct vault *v, const char *user, const struct secret *line,
    struct vault_keys **out);

/* Strict unsigned parsers: whole string, decimal, no sign, within [0, max]. */
int cli_parse_u32(const char *s, uint32_t max, uint32_t *out);
int cli_parse_fd(const char *s, int *out);

/* After getopt_long returned '?' (opterr = 0): names the bad option without any
 * value given with it ("--foo=VALUE" prints "--foo"): the value may be a secret. */
void cli_getopt_error(char *const *argv, int optind_now, int optopt_now);

/* The message for an error code: vault_strerror for VAULT_ERR_*, else strerror. */
const char *cli_strerror(int err);

/* "2024-05-01 12:00 UTC" into buf. */
void cli_fmt_time(time_t t, char *buf, size_t len);
/* "12 days", "3 hours", "5 minutes" into buf. */
void cli_fmt_age(int64_t seconds, char *buf, size_t len);
