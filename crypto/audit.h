/* The audit log: one JSON object per line, for every program (sealmail-imapd's
 * processes, sealmail-keymgr). The format (every event type and field) is in
 * docs/audit.md. One writer, here; nothing else formats audit lines.
 *
 * Destination (config audit_log): a file path, "syslog", or "" / "off". A file is
 * opened once per process tree with O_APPEND (sealmail-imapd's master opens it before
 * dropping root; its children inherit the descriptor), and every line is written with
 * one write(2) of at most AUDIT_LINE_MAX (= PIPE_BUF) bytes, so lines from several
 * processes never interleave and a write never blocks a session for long.
 *
 * Never pass a passphrase, OTP, message content, search term or mailbox name: the
 * record builder has no way to mark a value as secret, so callers must not. A mailbox
 * is logged only as audit_mbox_hash(): keyed BLAKE2b under a daily subkey of the
 * server's audit key (audit_key_load). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define AUDIT_LINE_MAX 4096	/* PIPE_BUF on Linux: one atomic append */

/* Opens the destination for this process (and its children, which inherit it).
 * dest: path, "syslog", "" or "off". program: the "program" field of every line.
 * 0 or -errno (err says what). A second call replaces the first. */
int audit_open(const char *dest, const char *program, char *err, size_t errlen);
/* Changes the "program" field (a child after fork: "imapd-login", ...). */
void audit_set_program(const char *program);
bool audit_enabled(void);
/* The open file descriptor (-1 with syslog or off): fork helpers keep it open. */
int audit_fd(void);
void audit_close(void);

/* The mailbox-hash key: 32 random bytes in a 0600 file, created on first use
 * (O_EXCL). Held in sodium_malloc memory. 0 or -errno. */
int audit_key_load(const char *path, char *err, size_t errlen);
bool audit_key_loaded(void);
/* hex (33 bytes): first 16 bytes of BLAKE2b-keyed(subkey(day), name), hex. The
 * subkey is BLAKE2b-keyed(key, "sealmail audit mailbox " + UTC date), so hashes
 * correlate within one UTC day (one log file under daily rotation) and not across
 * days. Without a key, hex is "" and -ENOKEY is returned. */
int audit_mbox_hash(const void *name, size_t n, time_t now, char hex[33]);

/* ---- one record ----------------------------------------------------------------- */
struct audit_rec {
	char buf[AUDIT_LINE_MAX];
	size_t len;
	bool truncated;		/* a field did not fit: left out, "truncated":true added */
};

/* Starts {"time":"<RFC 3339 UTC with ms>","event":"<event>","program":"...". */
void audit_begin(struct audit_rec *r, const char *event);
/* "key":"value" with JSON escaping (RFC 8259 7): '"', '\\', control characters
 * and DEL as \uXXXX; bytes that are not valid UTF-8 as \u00XX of the byte (so the
 * line is valid UTF-8 JSON whatever the input). NULL value: null. */
void audit_str(struct audit_rec *r, const char *key, const char *val);
void audit_strn(struct audit_rec *r, const char *key, const void *val, size_t n);
void audit_u64(struct audit_rec *r, const char *key, uint64_t v);
void audit_i64(struct audit_rec *r, const char *key, int64_t v);
void audit_bool(struct audit_rec *r, const char *key, bool v);
/* Finishes the line: "}\n". Returns its length. */
size_t audit_finish(struct audit_rec *r);
/* audit_finish + one write to the destination. 0 (also when off) or -errno. */
int audit_emit(struct audit_rec *r);
/* The escaping alone (for tests and the alert hook): writes at most cap-1 bytes and
 * a NUL; returns the bytes needed (like snprintf) without the NUL. */
size_t audit_json_escape(const void *s, size_t n, char *out, size_t cap);
