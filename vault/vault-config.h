/* The config file: "key = value" lines, '#' comments, blank lines. Unknown keys and
 * bad values are errors naming the line. Durations take s/m/h/d suffixes, sizes
 * K/M/G. One file configures every program. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vault_config {
	char path[4096];		/* the file it was read from */
	char data_dir[4096];		/* LMDB environment and spool */
	char imap_listen[256];		/* "127.0.0.1:143", "" = off */
	char imaps_listen[256];		/* "127.0.0.1:993" */
	char lmtp_listen[256];		/* "127.0.0.1:24" or "/path/to/socket" */
	char tls_cert[4096];
	char tls_key[4096];
	char audit_log[4096];		/* file path, "syslog", or "" = off */
	char run_user[64];		/* drop to this user after binding (if root) */
	uint32_t unlock_window;		/* seconds; 0 disables passphrase-only logins */
	uint32_t window_max_failures;	/* wrong passphrase-only logins that close the window */
	uint32_t rotation_period;	/* seconds, default 90 days */
	uint32_t rotation_check_interval;	/* seconds between daemon passes, default 1 h */
	uint32_t argon2_memory;		/* KiB */
	uint32_t argon2_passes;
	uint64_t map_size;		/* initial LMDB map size, bytes */
	uint64_t map_max;		/* growth cap, bytes */
	uint64_t max_message_size;	/* APPENDLIMIT / LMTP SIZE, bytes */
	uint64_t session_cache_size;	/* per-user session's locked cache bound, bytes; 0 = none */
	uint32_t max_connections;	/* per server */
	uint32_t max_user_connections;	/* per user */
	uint32_t max_user_source_connections;	/* per user and source address */
	uint32_t prelogin_timeout;	/* seconds */
	uint32_t idle_timeout;		/* seconds, >= 30 min (RFC 9051 5.4) */
	bool plaintext_loopback;	/* allow LOGIN without TLS on loopback */
	bool durable;			/* fsync each commit (default yes) */
	bool seccomp;			/* syscall filter on imapd-login (default yes) */
	char hostname[256];		/* for greetings and Received: headers */
	char log_level[16];		/* debug|info|warn|error */
	/* audit log and alerts (docs/audit.md) and metrics */
	char audit_key[4096];		/* mailbox-hash key file; "" = <data_dir>/audit.key */
	uint32_t audit_mass_expunge;	/* messages expunged by one user in 24 h; 0 = off */
	uint32_t alert_fail_threshold;	/* failed logins per user / per address; 0 = off */
	uint32_t alert_fail_window;	/* seconds */
	char alert_command[4096];	/* run with the alert JSON on stdin; "" = none */
	char metrics_listen[256];	/* Prometheus endpoint, loopback host:port; "" = off */
};

/* Defaults for every key. */
void vault_config_defaults(struct vault_config *c);
/* 0, or -EINVAL with a message "FILE:LINE: what is wrong" in err. Also -errno for I/O. */
int vault_config_load(const char *path, struct vault_config *c, char *err, size_t errlen);
/* Parses config text from memory (used by load and by the fuzzer). */
int vault_config_parse(const char *text, size_t len, const char *name,
    struct vault_config *c, char *err, size_t errlen);
/* Writes the commented default config with data_dir set (vault init). */
int vault_config_write_default(const char *path, const char *data_dir, char *err,
    size_t errlen);
