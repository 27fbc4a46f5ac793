/* keymgr: users, tokens and keys (the sealmail-keymgr program's library).
 *
 * keymgr_main is the whole command line; the program's main() only calls it. The
 * software-token and passphrase-policy functions are public so tests and the
 * later rotation daemon can use them.
 *
 * Errors: 0 or -errno / VAULT_ERR_* like the rest of sealmail. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "crypto.h"
#include "vault.h"

/* Runs one command. Returns the process exit code: 0 ok, 1 runtime error (a message
 * on stderr names what was wrong), 2 usage error. Never prints a secret except a
 * recovery key, once on stdout (`user add`, `recover`, `recovery-key`). */
int keymgr_main(int argc, char **argv);

/* ---- Passphrase policy -----------------------------------------------------------
 * At least KEYMGR_PASS_MIN_CHARS characters (UTF-8 code points), and not a common
 * password: not in the shipped list (keymgr/common-passwords.txt, compiled in), not a
 * listed password with digits/symbols/spaces around it ("Password123!"), not one
 * string repeated ("abcabcabcabc"), not a run of the alphabet, digits or a keyboard
 * row ("qwertyuiopasdf"). 0 if acceptable; -EINVAL with the reason in why. */
#define KEYMGR_PASS_MIN_CHARS 12
int keymgr_passphrase_check(const uint8_t *pass, size_t len, char *why, size_t whylen);
/* 1 if word (any case) is in the compiled-in common password list. */
int keymgr_common_password(const char *word, size_t len);

/* ---- Software tokens ---------------------------------------------------------------
 * A software token stands in for a YubiKey in demos and tests: the same secrets (AES
 * key, private uid, public id) kept in a file of "key = value" lines:
 *   user = NAME, public_id = MODHEX(6 B), aes_key = HEX(16 B), uid = HEX(6 B),
 *   session_ctr = N (1..32767), use_ctr = N (0..255)
 * The counters are those of the last OTP issued; the next OTP increments use_ctr and,
 * when it wraps, session_ctr (a real key's session counter grows at each power-up).
 * The file is created mode 0600 and never overwritten by creation. */
struct keymgr_softtoken {
	struct secret *aes_key;		/* CRYPTO_OTP_AES_BYTES */
	struct secret *uid;		/* CRYPTO_OTP_UID_BYTES */
	uint8_t public_id[CRYPTO_OTP_PUBID_BYTES];
	uint16_t session_ctr;
	uint8_t use_ctr;
	char user[128];
};
/* Random AES key, uid, public id (first byte never 0); counters session 1, use 0. */
int keymgr_softtoken_generate(const char *user, struct keymgr_softtoken *out);
/* Creates path exclusively (-EEXIST if anything exists there), writes, fsyncs. */
int keymgr_softtoken_create_file(const char *path, const struct keymgr_softtoken *t);
/* Reads and parses a token file. -EPROTO with "line N: what" in err on bad content. */
int keymgr_softtoken_load(const char *path, struct keymgr_softtoken *out, char *err,
    size_t errlen);
/* Issues the next OTP: locks the file (flock), advances the counters, rewrites it
 * atomically (temporary file + fsync + rename, mode 0600), then returns the OTP, so an
 * OTP is never issued twice even if the process dies. -ERANGE when the session counter
 * is exhausted. err gets a message on failure. */
int keymgr_softtoken_next_otp(const char *path, char otp_out[CRYPTO_OTP_CHARS + 1],
    char *err, size_t errlen);
void keymgr_softtoken_clear(struct keymgr_softtoken *t);	/* frees the secrets */

/* ---- Rotation daemon and key lifecycle (daemon.c) ---------------------------------- */
/* The clock of the daemon and of `status`/`retire`: time(NULL), unless a test
 * injects one. TEST ONLY, never set in production:
 *   SEALMAIL_CLOCK_FILE=PATH  a file holding unix seconds, re-read at every call (a
 *                             running daemon follows the test's clock);
 *   SEALMAIL_FAKE_TIME=SECS   a fixed time.
 * A file that cannot be read falls back to the real clock with a warning.
 * (Also test-only: SEALMAIL_ROTATE_BATCH=N, 1..128 users per rotation txn.) */
time_t keymgr_now(void);

/* Appends one audit line (crypto/audit.h, docs/audit.md) {"time":RFC3339 with ms,
 * "event":...,"program":"sealmail-keymgr","user":...,"epoch":N[,"messages":N]} to
 * cfg->audit_log (a file, opened O_APPEND, one write, fsync'd; or
 * "syslog"); nothing when audit_log is empty. messages < 0: omitted. The full audit
 * log (every IMAP command) is imapd's; this is keymgr's share of it. */
int keymgr_audit(const struct vault_config *cfg, time_t now, const char *event,
    const char *user, uint32_t epoch, int64_t messages);

struct keymgr_pass_stats {
	unsigned users, rotated, retired, failed;
};
/* One scheduler pass at time now: every user whose current epoch is older than
 * cfg->rotation_period gets the next epoch (vault_rotate: one durable txn each), and
 * old epochs that no message references any more are retired. Logs and audits each
 * action. 0, -EINTR if SIGTERM/SIGINT stopped it between users, or -errno. */
int keymgr_rotation_pass(struct vault *v, const struct vault_config *cfg, time_t now,
    struct keymgr_pass_stats *st);
/* `sealmail-keymgr daemon`: drops root to run_user, hardens the process, then runs a
 * pass every rotation_check_interval seconds until SIGTERM/SIGINT (SIGHUP: a pass
 * now). once: a single pass, then exit (cron, tests). Returns an exit code. */
int keymgr_daemon(const char *config_path, bool once);
