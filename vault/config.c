/* config.c: the sealmail.conf parser and the commented default writer.
 *
 * Format: "key = value" lines; '#' starts a comment line; blank lines ignored. A value
 * may be wrapped in double quotes (so `run_user = ""` is the empty string); there are
 * no escapes. Unknown keys, duplicate keys and bad values are errors that name the
 * line. Parsing starts from the defaults, so the result depends only on the text. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "vault-private.h"

#define CONFIG_MAX_BYTES (1024 * 1024)

enum ctype { CT_STR, CT_PATH, CT_LISTEN, CT_DURATION, CT_SIZE, CT_U32, CT_BOOL, CT_LEVEL };

struct ckey {
	const char *name;
	enum ctype type;
	size_t off;		/* offsetof in struct vault_config */
	size_t size;		/* of the string field */
	uint64_t min, max;	/* numbers */
	const char *help;
};

#define S(f) offsetof(struct vault_config, f), sizeof(((struct vault_config *)0)->f)
static const struct ckey keys[] = {
	{ "data_dir", CT_PATH, S(data_dir), 0, 0,
	  "LMDB environment (data.mdb) and the ciphertext spool (tmp/)" },
	{ "imap_listen", CT_LISTEN, S(imap_listen), 0, 0,
	  "IMAP with STARTTLS, host:port; empty = off" },
	{ "imaps_listen", CT_LISTEN, S(imaps_listen), 0, 0,
	  "IMAP over implicit TLS, host:port; empty = off" },
	{ "lmtp_listen", CT_LISTEN, S(lmtp_listen), 0, 0,
	  "LMTP for the MTA: host:port or /path/to/socket; empty = off" },
	{ "tls_cert", CT_PATH, S(tls_cert), 0, 0, "PEM certificate chain" },
	{ "tls_key", CT_PATH, S(tls_key), 0, 0, "PEM private key" },
	{ "audit_log", CT_STR, S(audit_log), 0, 0,
	  "JSON-lines audit log: a file path, \"syslog\", or empty = off" },
	{ "run_user", CT_STR, S(run_user), 0, 0,
	  "user the daemons drop to after binding; required when started as root "
	  "(they refuse to handle network input as root); ignored otherwise" },
	{ "unlock_window", CT_DURATION, S(unlock_window), 0, UINT32_MAX,
	  "passphrase-only logins accepted this long after a full login; 0 = never" },
	{ "window_max_failures", CT_U32, S(window_max_failures), 1, 1000,
	  "wrong passphrase-only logins that close a user's unlock window (a full "
	  "login with the OTP reopens it)" },
	{ "rotation_period", CT_DURATION, S(rotation_period), 3600, UINT32_MAX,
	  "key epoch rotation period (keymgr daemon)" },
	{ "rotation_check_interval", CT_DURATION, S(rotation_check_interval), 1, 86400,
	  "how often the keymgr daemon looks for users whose epoch is due" },
	{ "argon2_memory", CT_U32, S(argon2_memory), CRYPTO_PWHASH_MIN_MEM_KIB, 4u * 1024 * 1024,
	  "Argon2id memory for new users, KiB (OWASP minimum 19456); users below it are raised "
	  "at their next passphrase + OTP login" },
	{ "argon2_passes", CT_U32, S(argon2_passes), CRYPTO_PWHASH_MIN_PASSES, 64,
	  "Argon2id passes for new users (minimum 2); raised like argon2_memory" },
	{ "map_size", CT_SIZE, S(map_size), 64 * 1024, UINT64_C(1) << 44,
	  "initial LMDB map size" },
	{ "map_max", CT_SIZE, S(map_max), 64 * 1024, UINT64_C(1) << 44,
	  "the map grows (doubling) up to this size; then deliveries fail cleanly" },
	{ "max_message_size", CT_SIZE, S(max_message_size), 1024, UINT64_C(1) << 32,
	  "largest message accepted (APPENDLIMIT, LMTP SIZE)" },
	{ "session_cache_size", CT_SIZE, S(session_cache_size), 0, UINT64_C(1) << 32,
	  "per-user session cache of decrypted message summaries (locked memory; starts at "
	  "256 KiB and grows to this as it fills); 0 = none" },
	{ "max_connections", CT_U32, S(max_connections), 1, 1000000, "connections per server" },
	{ "max_user_connections", CT_U32, S(max_user_connections), 1, 100000,
	  "connections per user" },
	{ "max_user_source_connections", CT_U32, S(max_user_source_connections), 1, 100000,
	  "connections per user from one source address" },
	{ "prelogin_timeout", CT_DURATION, S(prelogin_timeout), 1, 3600,
	  "seconds a client may take to log in" },
	{ "idle_timeout", CT_DURATION, S(idle_timeout), 1800, UINT32_MAX,
	  "authenticated idle timeout (RFC 9051 5.4: at least 30 minutes)" },
	{ "plaintext_loopback", CT_BOOL, S(plaintext_loopback), 0, 0,
	  "allow LOGIN without TLS from 127.0.0.1/::1" },
	{ "durable", CT_BOOL, S(durable), 0, 0,
	  "fsync every commit; \"no\" is for benchmarks only (a crash loses mail)" },
	{ "seccomp", CT_BOOL, S(seccomp), 0, 0,
	  "seccomp syscall allowlist on the pre-login processes (imapd-login); "
	  "\"no\" only to debug" },
	{ "hostname", CT_STR, S(hostname), 0, 0, "for greetings and Received: headers" },
	{ "log_level", CT_LEVEL, S(log_level), 0, 0, "debug, info, warn or error" },
	{ "audit_key", CT_PATH, S(audit_key), 0, 0,
	  "audit mailbox-hash key (32 bytes, 0600, created if missing); empty = "
	  "data_dir/audit.key" },
	{ "audit_mass_expunge", CT_U32, S(audit_mass_expunge), 0, UINT32_MAX,
	  "audit a mass_expunge when one user expunges more messages than this in 24 h; 0 = off" },
	{ "alert_fail_threshold", CT_U32, S(alert_fail_threshold), 0, UINT32_MAX,
	  "alert when failed logins per user or per address reach this in the window; 0 = off" },
	{ "alert_fail_window", CT_DURATION, S(alert_fail_window), 1, 7 * 86400,
	  "the window for alert_fail_threshold" },
	{ "alert_command", CT_PATH, S(alert_command), 0, 0,
	  "program run (no shell) with each alert's JSON on stdin; empty = none" },
	{ "metrics_listen", CT_LISTEN, S(metrics_listen), 0, 0,
	  "Prometheus metrics (GET /metrics) on a loopback host:port; empty = off" },
};
#undef S
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

void vault_config_defaults(struct vault_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->imap_listen, sizeof(c->imap_listen), "127.0.0.1:1143");
	snprintf(c->imaps_listen, sizeof(c->imaps_listen), "127.0.0.1:1993");
	snprintf(c->lmtp_listen, sizeof(c->lmtp_listen), "127.0.0.1:1024");
	c->unlock_window = 8 * 3600;
	c->window_max_failures = 5;
	c->rotation_period = 90 * 86400;
	c->rotation_check_interval = 3600;
	c->argon2_memory = 65536;
	c->argon2_passes = 3;
	c->map_size = UINT64_C(64) << 20;
	c->map_max = UINT64_C(64) << 30;
	c->max_message_size = UINT64_C(64) << 20;
	c->session_cache_size = UINT64_C(32) << 20;
	c->max_connections = 10000;
	c->max_user_connections = 20;
	c->max_user_source_connections = 20;
	c->prelogin_timeout = 60;
	c->idle_timeout = 1800;
	c->plaintext_loopback = true;
	c->durable = true;
	c->seccomp = true;
	if (gethostname(c->hostname, sizeof(c->hostname) - 1) != 0 || c->hostname[0] == '\0')
		snprintf(c->hostname, sizeof(c->hostname), "localhost");
	c->hostname[sizeof(c->hostname) - 1] = '\0';
	snprintf(c->log_level, sizeof(c->log_level), "info");
	c->audit_mass_expunge = 1000;
	c->alert_fail_threshold = 10;
	c->alert_fail_window = 900;
}

static int cerr(char *err, size_t errlen, const char *name, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int cerr(char *err, size_t errlen, const char *name, unsigned line, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (err != NULL && errlen > 0) {
		n = snprintf(err, errlen, "%s:%u: ", name, line);
		if (n >= 0 && (size_t)n < errlen) {
			va_start(ap, fmt);
			vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
			va_end(ap);
		}
	}
	return -EINVAL;
}

/* Unsigned decimal with an optional suffix from sfx (multipliers in mul). */
static int parse_num(const char *s, const char *sfx, const uint64_t *mul, uint64_t *out)
{
	uint64_t v = 0, m = 1;
	size_t i = 0;

	if (s[0] < '0' || s[0] > '9')
		return -EINVAL;
	for (; s[i] >= '0' && s[i] <= '9'; i++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (s[i] != '\0') {
		const char *p = strchr(sfx, s[i]);

		if (p == NULL || s[i + 1] != '\0')
			return -EINVAL;
		m = mul[p - sfx];
	}
	if (m != 1 && v > UINT64_MAX / m)
		return -ERANGE;
	*out = v * m;
	return 0;
}

static int parse_bool(const char *s, bool *out)
{
	if (strcmp(s, "yes") == 0 || strcmp(s, "true") == 0) {
		*out = true;
		return 0;
	}
	if (strcmp(s, "no") == 0 || strcmp(s, "false") == 0) {
		*out = false;
		return 0;
	}
	return -EINVAL;
}

/* "host:port", "[v6]:port" or (LMTP) "/path"; "" = off. */
static bool listen_ok(const char *s, bool allow_path)
{
	const char *colon;
	size_t plen;
	unsigned long port = 0;

	if (s[0] == '\0')
		return true;
	if (s[0] == '/')
		return allow_path;
	colon = strrchr(s, ':');
	if (colon == NULL || colon == s)
		return false;
	plen = strlen(colon + 1);
	if (plen == 0 || plen > 5)
		return false;
	for (const char *p = colon + 1; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		port = port * 10 + (unsigned long)(*p - '0');
	}
	if (port == 0 || port > 65535)
		return false;
	for (const char *p = s; p < colon; p++)
		if (*p == ' ' || *p == '\t' || *p == '/')
			return false;
	return true;
}

static void dir_of(const char *path, char *out, size_t outlen)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		snprintf(out, outlen, ".");
	else if (slash == path)
		snprintf(out, outlen, "/");
	else
		snprintf(out, outlen, "%.*s", (int)(slash - path), path);
}

static int set_value(struct vault_config *c, const struct ckey *k, const char *val,
    const char *base, const char *name, unsigned line, char *err, size_t errlen)
{
	static const uint64_t dur_mul[] = { 1, 60, 3600, 86400 };
	static const uint64_t size_mul[] = { 1024, 1024 * 1024, UINT64_C(1024) * 1024 * 1024 };
	char *field = (char *)c + k->off;
	uint64_t v;
	size_t vl = strlen(val);
	int n;

	switch (k->type) {
	case CT_STR:
	case CT_LEVEL:
	case CT_LISTEN:
		if (vl >= k->size)
			return cerr(err, errlen, name, line, "%s: value too long (max %zu bytes)",
			    k->name, k->size - 1);
		if (k->type == CT_LEVEL && strcmp(val, "debug") != 0 && strcmp(val, "info") != 0 &&
		    strcmp(val, "warn") != 0 && strcmp(val, "error") != 0)
			return cerr(err, errlen, name, line,
			    "%s: expected debug, info, warn or error", k->name);
		if (k->type == CT_LISTEN &&
		    !listen_ok(val, strcmp(k->name, "lmtp_listen") == 0))
			return cerr(err, errlen, name, line,
			    "%s: expected host:port%s or empty", k->name,
			    strcmp(k->name, "lmtp_listen") == 0 ? ", /path" : "");
		memcpy(field, val, vl + 1);
		return 0;
	case CT_PATH:
		if (vl == 0 || val[0] == '/' || base[0] == '\0')
			n = snprintf(field, k->size, "%s", val);
		else	/* relative paths are relative to the config file's directory */
			n = snprintf(field, k->size, "%s/%s", base, val);
		if (n < 0 || (size_t)n >= k->size)
			return cerr(err, errlen, name, line, "%s: path too long", k->name);
		return 0;
	case CT_BOOL:
		if (parse_bool(val, (bool *)(void *)field) < 0)
			return cerr(err, errlen, name, line, "%s: expected yes, no, true or false",
			    k->name);
		return 0;
	case CT_DURATION:
	case CT_SIZE:
	case CT_U32:
		n = k->type == CT_DURATION ? parse_num(val, "smhd", dur_mul, &v) :
		    k->type == CT_SIZE ? parse_num(val, "KMG", size_mul, &v) :
		    parse_num(val, "", NULL, &v);
		if (n < 0)
			return cerr(err, errlen, name, line, "%s: bad %s \"%s\"%s", k->name,
			    k->type == CT_DURATION ? "duration" :
			    k->type == CT_SIZE ? "size" : "number", val,
			    k->type == CT_DURATION ? " (a number with optional s, m, h or d)" :
			    k->type == CT_SIZE ? " (a number with optional K, M or G)" : "");
		if (v < k->min || v > k->max)
			return cerr(err, errlen, name, line,
			    "%s: %llu out of range [%llu, %llu]", k->name,
			    (unsigned long long)v, (unsigned long long)k->min,
			    (unsigned long long)k->max);
		if (k->type == CT_SIZE)
			*(uint64_t *)(void *)field = v;
		else
			*(uint32_t *)(void *)field = (uint32_t)v;
		return 0;
	}
	return -EINVAL;
}

int vault_config_parse(const char *text, size_t len, const char *name,
    struct vault_config *c, char *err, size_t errlen)
{
	unsigned seen[NKEYS] = { 0 };
	char base[4096];
	char line[8192];
	size_t pos = 0;
	unsigned lineno = 0;
	int n;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (name == NULL)
		name = "(config)";
	vault_config_defaults(c);
	if (len > CONFIG_MAX_BYTES)
		return cerr(err, errlen, name, 0, "file too large");
	n = snprintf(c->path, sizeof(c->path), "%s", name);
	if (n < 0 || (size_t)n >= sizeof(c->path))
		return cerr(err, errlen, name, 0, "config path too long");
	dir_of(name, base, sizeof(base));
	snprintf(c->data_dir, sizeof(c->data_dir), "%s", base);

	while (pos < len) {
		size_t e = pos, ll;
		char *k, *v, *eq, *end;
		const struct ckey *key = NULL;
		size_t ki;

		lineno++;
		while (e < len && text[e] != '\n')
			e++;
		ll = e - pos;
		if (ll >= sizeof(line))
			return cerr(err, errlen, name, lineno, "line too long");
		memcpy(line, text + pos, ll);
		line[ll] = '\0';
		pos = e < len ? e + 1 : e;
		if (memchr(line, '\0', ll) != NULL)
			return cerr(err, errlen, name, lineno, "NUL byte");
		if (ll > 0 && line[ll - 1] == '\r')
			line[--ll] = '\0';
		for (k = line; *k == ' ' || *k == '\t'; k++)
			;
		if (*k == '\0' || *k == '#')
			continue;
		for (size_t i = 0; i < ll; i++)
			if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
				return cerr(err, errlen, name, lineno, "control character");
		if ((eq = strchr(k, '=')) == NULL)
			return cerr(err, errlen, name, lineno, "expected \"key = value\"");
		end = eq;
		while (end > k && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		*end = '\0';
		for (v = eq + 1; *v == ' ' || *v == '\t'; v++)
			;
		end = v + strlen(v);
		while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		*end = '\0';
		if (end - v >= 2 && v[0] == '"' && end[-1] == '"') {
			v++;
			end[-1] = '\0';
			if (strchr(v, '"') != NULL)
				return cerr(err, errlen, name, lineno, "stray quote in value");
		} else if (strchr(v, '"') != NULL) {
			return cerr(err, errlen, name, lineno, "unbalanced quote in value");
		}
		for (ki = 0; ki < NKEYS; ki++)
			if (strcmp(keys[ki].name, k) == 0) {
				key = &keys[ki];
				break;
			}
		if (key == NULL)
			return cerr(err, errlen, name, lineno, "unknown key \"%.64s\"", k);
		if (seen[ki] != 0)
			return cerr(err, errlen, name, lineno, "%s set twice (first on line %u)",
			    key->name, seen[ki]);
		seen[ki] = lineno;
		if (set_value(c, key, v, base, name, lineno, err, errlen) < 0)
			return -EINVAL;
	}
	/* Cross-field checks name the line of the later key. */
	{
		unsigned ls = 0, lm = 0;

		for (size_t i = 0; i < NKEYS; i++) {
			if (strcmp(keys[i].name, "map_size") == 0)
				ls = seen[i];
			if (strcmp(keys[i].name, "map_max") == 0)
				lm = seen[i];
		}
		if (c->map_size > c->map_max)
			return cerr(err, errlen, name, ls > lm ? ls : lm,
			    "map_size (%llu) exceeds map_max (%llu)",
			    (unsigned long long)c->map_size, (unsigned long long)c->map_max);
	}
	if (c->data_dir[0] == '\0')
		return cerr(err, errlen, name, lineno, "data_dir is empty");
	return 0;
}

int vault_config_load(const char *path, struct vault_config *c, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	struct stat st;
	int fd, r;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		r = -errno;
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) != 0) {
		r = -errno;
		goto out;
	}
	if (st.st_size > CONFIG_MAX_BYTES) {
		r = cerr(err, errlen, path, 0, "file too large");
		goto out;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	while (len < (size_t)st.st_size) {
		ssize_t k = read(fd, buf + len, (size_t)st.st_size - len);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = -errno;
			goto out;
		}
		if (k == 0)
			break;
		len += (size_t)k;
	}
	r = vault_config_parse(buf, len, path, c, err, errlen);
out:
	if (r < 0 && r != -EINVAL && err != NULL && errlen > 0 && err[0] == '\0')
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
	free(buf);
	close(fd);
	return r;
}

static void fmt_default(const struct vault_config *d, const struct ckey *k, char *out,
    size_t outlen)
{
	const char *field = (const char *)d + k->off;

	switch (k->type) {
	case CT_STR: case CT_PATH: case CT_LISTEN: case CT_LEVEL:
		if (field[0] == '\0')
			snprintf(out, outlen, "\"\"");
		else
			snprintf(out, outlen, "%s", field);
		break;
	case CT_BOOL:
		snprintf(out, outlen, "%s", *(const bool *)(const void *)field ? "yes" : "no");
		break;
	case CT_SIZE: {
		uint64_t v = *(const uint64_t *)(const void *)field;

		if (v != 0 && v % (UINT64_C(1) << 30) == 0)
			snprintf(out, outlen, "%lluG", (unsigned long long)(v >> 30));
		else if (v != 0 && v % (UINT64_C(1) << 20) == 0)
			snprintf(out, outlen, "%lluM", (unsigned long long)(v >> 20));
		else if (v != 0 && v % 1024 == 0)
			snprintf(out, outlen, "%lluK", (unsigned long long)(v >> 10));
		else
			snprintf(out, outlen, "%llu", (unsigned long long)v);
		break;
	}
	case CT_DURATION: {
		uint32_t v = *(const uint32_t *)(const void *)field;

		if (v != 0 && v % 86400 == 0)
			snprintf(out, outlen, "%ud", v / 86400);
		else if (v != 0 && v % 3600 == 0)
			snprintf(out, outlen, "%uh", v / 3600);
		else if (v != 0 && v % 60 == 0)
			snprintf(out, outlen, "%um", v / 60);
		else
			snprintf(out, outlen, "%us", v);
		break;
	}
	case CT_U32:
		snprintf(out, outlen, "%u", *(const uint32_t *)(const void *)field);
		break;
	}
}

static bool path_ok(const char *p)
{
	for (; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == '"')
			return false;
	return true;
}

int config_write(const char *path, const char *data_dir, const char *tls_cert,
    const char *tls_key, char *err, size_t errlen)
{
	struct vault_config d;
	char tmp[4200], val[4200];
	FILE *f = NULL;
	int fd = -1, r = 0, n;

	if (!path_ok(data_dir) || (tls_cert && !path_ok(tls_cert)) ||
	    (tls_key && !path_ok(tls_key))) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s: path contains a quote or control character",
			    path);
		return -EINVAL;
	}
	vault_config_defaults(&d);
	n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -ENAMETOOLONG;
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
		r = -errno;
		goto out;
	}
	if ((f = fdopen(fd, "w")) == NULL) {
		r = -errno;
		goto out;
	}
	fd = -1;
	fprintf(f, "# sealmail configuration: one file for sealmail-imapd, sealmail-keymgr\n"
	    "# and sealmail-vault. \"key = value\"; durations take s/m/h/d, sizes K/M/G,\n"
	    "# booleans yes/no. Commented lines show the default.\n\n");
	for (size_t i = 0; i < NKEYS; i++) {
		const struct ckey *k = &keys[i];

		fprintf(f, "# %s\n", k->help);
		if (strcmp(k->name, "data_dir") == 0)
			fprintf(f, "data_dir = %s\n\n", data_dir);
		else if (strcmp(k->name, "tls_cert") == 0 && tls_cert != NULL)
			fprintf(f, "tls_cert = %s\n\n", tls_cert);
		else if (strcmp(k->name, "tls_key") == 0 && tls_key != NULL)
			fprintf(f, "tls_key = %s\n\n", tls_key);
		else {
			fmt_default(&d, k, val, sizeof(val));
			fprintf(f, "#%s = %s\n\n", k->name, val);
		}
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		r = -errno;
		goto out;
	}
	if (fclose(f) != 0) {
		f = NULL;
		r = -errno;
		goto out;
	}
	f = NULL;
	if (rename(tmp, path) != 0)
		r = -errno;
out:
	if (f != NULL)
		fclose(f);
	if (fd >= 0)
		close(fd);
	if (r < 0) {
		unlink(tmp);
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s: %s", path, strerror(-r));
	}
	return r;
}

int vault_config_write_default(const char *path, const char *data_dir, char *err,
    size_t errlen)
{
	return config_write(path, data_dir, NULL, NULL, err, errlen);
}
