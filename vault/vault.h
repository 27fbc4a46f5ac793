/* vault: the sealed mail store. An LMDB environment behind a narrow interface (a
 * second backend, e.g. an object store, must fit behind the same calls), plus the
 * key hierarchy that makes it zero-knowledge. See SECURITY.md for the design.
 *
 * Errors: 0 (or a documented positive value) or -errno. Store-specific errors use
 * the reserved range below; vault_strerror() names every code.
 *
 * Two sides:
 *  - no user secret: users/tokens lookup, login key derivation (the pre-login
 *    process), delivery (sealed to the user's current epoch public key), rotation
 *    (creates epoch key pairs), verify, backup, stats.
 *  - with struct vault_keys (the user's session process only): mailboxes, message
 *    read/append/flags/expunge/copy. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "crypto.h"
#include "vault-config.h"

#define VAULT_ERR_BASE		2000
#define VAULT_ERR_NOUSER	(-(VAULT_ERR_BASE + 1))	/* no such user */
#define VAULT_ERR_AUTH		(-(VAULT_ERR_BASE + 2))	/* wrong passphrase / token */
#define VAULT_ERR_REPLAY	(-(VAULT_ERR_BASE + 3))	/* OTP counter did not grow */
#define VAULT_ERR_TOKEN		(-(VAULT_ERR_BASE + 4))	/* unknown token / bad OTP */
#define VAULT_ERR_CORRUPT	(-(VAULT_ERR_BASE + 5))	/* record hash mismatch */
#define VAULT_ERR_FULL		(-(VAULT_ERR_BASE + 6))	/* map at its maximum size */
#define VAULT_ERR_NOMBOX	(-(VAULT_ERR_BASE + 7))	/* no such mailbox */
#define VAULT_ERR_NOMSG		(-(VAULT_ERR_BASE + 8))	/* no such message */
#define VAULT_ERR_TAMPER	(-(VAULT_ERR_BASE + 9))	/* AEAD open failed: tampering */
#define VAULT_ERR_WINDOW	(-(VAULT_ERR_BASE + 10))	/* passphrase-only login, no window */
const char *vault_strerror(int err);

struct vault;		/* an open store */
struct vault_txn;	/* a transaction (read or write) */
struct vault_keys;	/* one user's unlocked keys (sodium_malloc'd) */

/* ---- Store ---------------------------------------------------------------------- */
/* Creates DIR, DIR/sealmail.conf (every setting commented with its default), the
 * LMDB environment, and a self-signed localhost TLS certificate + key. */
int vault_init_dir(const char *dir, char *err, size_t errlen);
/* Opens the store named by cfg->data_dir. Call after fork, never share across fork. */
int vault_open(const struct vault_config *cfg, struct vault **out);
void vault_close(struct vault **v);
/* Begin/commit/abort. Commits are durable (fsync'd) unless the config says otherwise.
 * LMDB allows one write txn per environment at a time, across processes: a process
 * holding a write txn must not call a function below that takes struct vault (login,
 * delivery, passwd, tokens, rotate, user create/remove, verify, backup, stats), which
 * open their own txns (a write one would wait for itself). Keep write txns short.
 * A MAP_FULL is handled inside: the map grows up to cfg->map_max and the caller sees
 * -EAGAIN from commit (retry the whole transaction) or VAULT_ERR_FULL at the cap. */
int vault_txn_begin(struct vault *v, bool write, struct vault_txn **out);
int vault_txn_commit(struct vault_txn **t);
void vault_txn_abort(struct vault_txn **t);
/* Runs fn in a write txn and commits it; the way to write (callers should not loop on
 * vault_txn_begin/commit themselves). When the map fills up in the middle of fn or at
 * commit (MDB_MAP_FULL), or another process grew it (MDB_MAP_RESIZED), the txn is
 * aborted, the map grown, and fn run again from the start against a fresh txn, until it
 * commits or the map reaches cfg->map_max (VAULT_ERR_FULL). So fn must be replayable:
 * no effect outside the txn that a second run would not redo or overwrite (output,
 * in-memory state that is not re-derived from the txn) - do those after this returns 0.
 * fn returning < 0 aborts the txn; that value is returned (or the txn's MAP_FULL-class
 * error when one hid behind it). */
int vault_write(struct vault *v, int (*fn)(struct vault_txn *t, void *arg), void *arg);

/* ---- Users and tokens (no secret needed) -------------------------------------- */
struct vault_token_info {
	uint8_t index;
	uint8_t public_id[CRYPTO_OTP_PUBID_BYTES];
	uint16_t session_ctr;
	uint8_t use_ctr;
	time_t added;
	char label[32];
};
struct vault_user_info {
	uint32_t id;
	char name[128];
	time_t created;
	struct crypto_pwhash_params pwhash;
	uint32_t current_epoch;
	time_t epoch_created;
	size_t ntokens;
	struct vault_token_info tokens[8];
	uint64_t messages;		/* count, all mailboxes */
	uint64_t stored_bytes;		/* padded ciphertext bytes */
	uint32_t pending_rewrap;	/* messages under an older epoch */
};
int vault_user_get(struct vault_txn *t, const char *name, struct vault_user_info *out);
int vault_user_get_by_id(struct vault_txn *t, uint32_t id, struct vault_user_info *out);
/* Calls cb for every user in name order; stops at cb's first non-zero return. */
int vault_user_foreach(struct vault_txn *t,
    int (*cb)(const struct vault_user_info *u, void *arg), void *arg);

/* A token to enrol: a real YubiKey (AES key, private uid, public id) or a software
 * token generated by keymgr (same fields, random). */
struct vault_token_secret {
	struct secret *aes_key;	/* 16 bytes */
	struct secret *uid;	/* 6 bytes */
	uint8_t public_id[CRYPTO_OTP_PUBID_BYTES];
	char label[32];
};
/* Creates a user: salt, Argon2id params (from cfg, never below OWASP), user master
 * key, identity key pair, first epoch, the default mailboxes (INBOX, Drafts, Sent,
 * Trash, Junk, Archive with SPECIAL-USE), a recovery key. recovery_out receives the
 * printable recovery key (shown once; caller wipes). Two Argon2id runs. */
int vault_user_create(struct vault *v, const char *name, const uint8_t *pass, size_t passlen,
    const struct vault_token_secret *tok, time_t now, char *recovery_out, size_t recovery_len);
/* Crypto-shreds the user's keys (overwrites and deletes key records in one durable
 * transaction), then deletes all the user's data. */
int vault_user_remove(struct vault *v, const char *name);

/* ---- Login (pre-login process: holds no user key afterwards) -------------------
 * password = passphrase || OTP (44 modhex), the yubico-pam convention; or the
 * passphrase alone (accepted only by a session inside its unlock window).
 * With an OTP: Argon2id(passphrase) -> opens the token's AES key -> decodes the OTP
 * (CRC, counter strictly newer) -> Argon2id(P || private uid) = the token login key,
 * checked against its key-check value; on success the new counters are stored in
 * the same durable transaction.
 * Without an OTP: no Argon2id at all; only the user is looked up. The passphrase is
 * checked by the user's session process against the fast window verifier it keeps
 * from the last full login (vault_keys_check_passphrase). */
struct vault_login {
	uint32_t user_id;
	int token_index;		/* -1: passphrase only (no OTP given) */
	struct secret *key;		/* token login key K_t; NULL for passphrase-only */
	struct secret *pass;		/* the passphrase (without OTP), always set; for
					 * the session's window verifier */
	char user[128];
};
/* 0 on success (out filled, caller frees with vault_login_clear). Errors:
 * VAULT_ERR_NOUSER, VAULT_ERR_AUTH, VAULT_ERR_REPLAY, VAULT_ERR_TOKEN. With an OTP,
 * failures take the same Argon2id time as successes (unknown users included);
 * without one neither case runs Argon2id. */
int vault_login_derive(struct vault *v, const char *user, const uint8_t *password,
    size_t passlen, struct vault_login *out);
void vault_login_clear(struct vault_login *l);

/* ---- Unlocking (session process) ------------------------------------------------- */
/* Opens the user master key with a token login key (from vault_login_derive), then the
 * identity key and every live epoch key. If login->pass is set, also opens the unlock
 * window: vault_keys_set_window(*out, login->pass). */
int vault_unlock(struct vault *v, const struct vault_login *login, struct vault_keys **out);
/* Opens with the recovery key (printable form). */
int vault_unlock_recovery(struct vault *v, const char *user, const char *recovery,
    struct vault_keys **out);
/* Unlock-window verifier (memory only, never on disk). set: draws a random key Kw
 * for these keys (once; sodium_malloc'd) and remembers W = KDF(Kw, "window", pass),
 * a keyed BLAKE2b of the passphrase: no Argon2id, so a window login costs
 * microseconds. clear: wipes W (the window is closed until the next set).
 * check (passphrase-only login, login->pass): 0 if KDF(Kw, "window", login->pass)
 * equals W (constant-time compare, the candidate is wiped), VAULT_ERR_AUTH if not,
 * VAULT_ERR_WINDOW if no W is set. The unlock-window time and failure count are the
 * caller's (the session process knows both). */
int vault_keys_set_window(struct vault_keys *k, const struct secret *pass);
void vault_keys_clear_window(struct vault_keys *k);
int vault_keys_check_passphrase(const struct vault_keys *k, const struct vault_login *login);
/* Re-reads epochs (after a rotation by keymgr) so new epoch secrets are opened. */
int vault_keys_refresh(struct vault *v, struct vault_keys *k);
uint32_t vault_keys_user_id(const struct vault_keys *k);
/* Opens the UMK with a login key to prove it, without keeping anything (used when a
 * session that already holds keys receives another full login). */
int vault_keys_check_login(struct vault *v, const struct vault_keys *k,
    const struct vault_login *login);
void vault_keys_free(struct vault_keys **k);

/* Key management with unlocked keys (keymgr). */
int vault_passwd(struct vault *v, struct vault_keys *k, const uint8_t *newpass, size_t len);
/* Replaces NAME's recovery key: a new random 32-byte key R, the UMK sealed under
 * KDF(R, "recovery") in the user record, one durable transaction. From then on the old
 * recovery key opens nothing (its wrap is gone from the live store; copies made
 * before, e.g. backups, still hold it). recovery_out receives the printable new key
 * (shown once; caller wipes). */
int vault_recovery_replace(struct vault *v, const struct vault_keys *k, char *recovery_out,
    size_t recovery_len);
/* Enrols another token. K_t = A(P || uid_t) and the token's AES wrap need the stretched
 * passphrase P, which unlocking does not give: call vault_keys_set_passphrase first
 * (vault_passwd also leaves the new P in k). -ENOKEY without P, -EEXIST same public
 * id, -E2BIG 8 tokens already. */
int vault_token_add(struct vault *v, struct vault_keys *k, const struct vault_token_secret *tok);
/* Stretches the passphrase with the user's salt and params (one Argon2id), checks it
 * against an enrolled token's AES wrap (VAULT_ERR_AUTH if wrong; with no token left,
 * e.g. after recovery, it is taken as given) and keeps P in k until vault_keys_free.
 * For keymgr only: a session never needs P. */
int vault_keys_set_passphrase(struct vault *v, struct vault_keys *k, const uint8_t *pass,
    size_t len);
int vault_token_remove(struct vault *v, struct vault_keys *k, uint8_t index);
/* Creates the next epoch key pair (no user secret needed; the secret is sealed to
 * the identity public key). Idempotent per (user, now): returns 1 if nothing was due
 * and force is false. */
int vault_rotate(struct vault *v, const char *user, time_t now, bool force);

/* Several users' rotations in ONE durable transaction (the keymgr daemon's pass:
 * one fsync per batch instead of one per user; the txn stays short, about 0.2 ms of
 * work per user). Each user's rotation is what vault_rotate does; with
 * retire_unused, old epochs that no message references are retired too (see
 * vault_epochs_retire_unused). Per item: result 0 rotated (epoch = the new one), 1
 * not due, VAULT_ERR_NOUSER (skipped). Any other error aborts the whole batch (none
 * applied) and is returned: retry the items one by one to isolate it. */
struct vault_rotate_item {
	const char *user;		/* in */
	bool retire_unused;		/* in */
	int result;			/* out */
	uint32_t epoch;			/* out: new epoch when result is 0 */
	uint32_t retired[8];		/* out: epochs retired (first 8) */
	size_t nretired;		/* out: how many */
};
int vault_rotate_batch(struct vault *v, struct vault_rotate_item *items, size_t n, time_t now,
    bool force);

/* ---- Epoch lifecycle: listing, retirement (no user secret) ------------------------
 * Live epochs are those whose record (public key + wrapped secret) still exists; an
 * epoch below the current one without a record is retired: its secret was destroyed
 * and nothing can be opened under it any more. */
struct vault_epoch_info {
	uint32_t epoch;
	time_t created;
	uint64_t messages;		/* messages whose data key is wrapped under it */
};
/* The live epochs of a user in ascending order (at most max). With count_messages,
 * scans the user's message records (clear epoch numbers, no key) to fill
 * .messages; else .messages is 0. *n_out is the number of live epochs even when it
 * exceeds max. */
int vault_user_epochs(struct vault_txn *t, uint32_t user_id, bool count_messages,
    struct vault_epoch_info *out, size_t max, size_t *n_out);
/* Retires every epoch older than the current one that no message references (all
 * re-wrapped or deleted): its record is overwritten with zeros, then deleted, in one
 * durable write transaction that also re-checks the references. Also corrects the
 * user's pending re-wrap counter from the scan. Writes the retired epoch numbers to
 * retired (up to max) and their count to *n_out. 0, VAULT_ERR_NOUSER, -errno. */
int vault_epochs_retire_unused(struct vault *v, const char *user, uint32_t *retired,
    size_t max, size_t *n_out);
/* Retires epoch `epoch` on purpose (legal deletion, retention): every message whose
 * data key is still wrapped only under it is expunged (records, body, cache; a
 * VANISHED entry is kept so IMAP sessions see the expunge), in bounded durable
 * transactions, then the epoch record is overwritten and deleted. Messages already
 * re-wrapped to a newer epoch are not protected by it alone and are kept. The
 * current epoch cannot be retired (-EBUSY: rotate first). Safe to re-run after a
 * crash; an already retired epoch returns -ENOENT. *expunged_out: messages removed.
 * Exact mailbox sizes (sealed) are corrected in the user's next session. */
int vault_epoch_retire(struct vault *v, const char *user, uint32_t epoch,
    uint64_t *expunged_out);

/* ---- Re-wrap (session) -------------------------------------------------------------
 * Re-wraps data keys sealed under older epochs to the current epoch, at most max per
 * call, in t (a write transaction). Only the data-key wrap changes: bodies, metas,
 * modseqs and flags are untouched, so no client sees a change. A message still
 * wrapped to an old epoch's public key (delivered, not yet adopted) is re-wrapped to
 * the current epoch's public key and adopted later as usual. Resumes where the last
 * call stopped (position kept in k, memory only); when a whole pass over the user's
 * messages finds nothing left under an older epoch, those epochs are retired in the
 * same transaction (see vault_epochs_retire_unused). *done_out: data keys re-wrapped
 * (may be NULL). Returns 1 when more work remains, 0 when everything is current,
 * or -errno / VAULT_ERR_*. */
int vault_rewrap_batch(struct vault_txn *t, const struct vault_keys *k, unsigned max,
    unsigned *done_out);
/* Session helper: a cheap read-only check, and only when there is work one short
 * write transaction with vault_rewrap_batch(max) (retried after map growth); also
 * wipes from k the secrets of epochs retired meanwhile. Call between commands
 * (never inside another transaction). Returns like vault_rewrap_batch. */
int vault_rewrap_tick(struct vault *v, struct vault_keys *k, unsigned max, unsigned *done_out);

/* ---- Change notification ----------------------------------------------------------
 * A per-user counter bumped by every commit that changes the user's mail (delivery,
 * flags, expunge, mailbox changes). Sessions poll it to push EXISTS/EXPUNGE/FETCH. */
int vault_user_change_seq(struct vault_txn *t, uint32_t user_id, uint64_t *seq_out);

/* ---- Mailboxes (session) ---------------------------------------------------------- */
enum vault_special_use {
	VAULT_SU_NONE = 0, VAULT_SU_ALL = 1 << 0, VAULT_SU_ARCHIVE = 1 << 1,
	VAULT_SU_DRAFTS = 1 << 2, VAULT_SU_FLAGGED = 1 << 3, VAULT_SU_JUNK = 1 << 4,
	VAULT_SU_SENT = 1 << 5, VAULT_SU_TRASH = 1 << 6,
};
#define VAULT_INBOX_ID 1u	/* fixed: delivery needs no secret to find it */
struct vault_mailbox {
	uint32_t id;
	char name[512];			/* UTF-8, hierarchy delimiter '/'; "INBOX" for id 1 */
	uint32_t special_use;
	bool subscribed;
	uint32_t uidvalidity;		/* never changes while the mailbox exists */
	uint32_t uidnext;
	uint64_t highestmodseq;
	uint32_t messages;
	uint64_t size;			/* sum of RFC822.SIZE */
	uint8_t objectid[16];		/* RFC 8474 MAILBOXID (random, stable across rename) */
};
/* All mailboxes of the user, names decrypted; *out is malloc'd (free()). */
int vault_mailbox_list(struct vault_txn *t, const struct vault_keys *k,
    struct vault_mailbox **out, size_t *n_out);
int vault_mailbox_find(struct vault_txn *t, const struct vault_keys *k, const char *name,
    struct vault_mailbox *out);		/* VAULT_ERR_NOMBOX */
int vault_mailbox_get(struct vault_txn *t, const struct vault_keys *k, uint32_t id,
    struct vault_mailbox *out);
int vault_mailbox_create(struct vault_txn *t, const struct vault_keys *k, const char *name,
    uint32_t special_use, uint32_t *id_out);	/* -EEXIST */
int vault_mailbox_rename(struct vault_txn *t, const struct vault_keys *k, uint32_t id,
    const char *newname);
/* Deletes the mailbox and all its messages. INBOX cannot be deleted (-EPERM). */
int vault_mailbox_delete(struct vault_txn *t, const struct vault_keys *k, uint32_t id);
/* Subscriptions are names (they may name mailboxes that do not exist, RFC 9051 6.3.7). */
int vault_subscriptions(struct vault_txn *t, const struct vault_keys *k, char ***names_out,
    size_t *n_out);		/* free each and the array with free() */
int vault_subscribe(struct vault_txn *t, const struct vault_keys *k, const char *name, bool on);

/* ---- Messages (session) ----------------------------------------------------------- */
enum vault_flag {
	VAULT_F_SEEN = 1 << 0, VAULT_F_ANSWERED = 1 << 1, VAULT_F_FLAGGED = 1 << 2,
	VAULT_F_DELETED = 1 << 3, VAULT_F_DRAFT = 1 << 4,
};
#define VAULT_MAX_KEYWORDS 64
#define VAULT_META_CACHE_MAX (256 * 1024)
struct vault_msg_meta {
	uint32_t uid;
	uint64_t modseq;
	uint32_t flags;			/* enum vault_flag */
	uint32_t nkeywords;
	char *keywords[VAULT_MAX_KEYWORDS];	/* malloc'd strings */
	int64_t internal_date;		/* seconds UTC */
	int32_t internal_tz;		/* minutes east of UTC */
	int64_t save_date;
	uint64_t size;			/* exact RFC822.SIZE */
	uint8_t emailid[16];		/* RFC 8474 EMAILID, random per message */
	bool recent;			/* first session to see it (RFC 3501 \Recent) */
};
void vault_msg_meta_clear(struct vault_msg_meta *m);	/* frees keywords */

/* Lists every message of the mailbox in UID order; calls cb with each meta (valid
 * only during the call). Messages delivered since the last session (still wrapped
 * to an epoch public key) are opened and adopted: their data keys re-wrapped under
 * the epoch's symmetric wrap key, so later reads are symmetric only. Adoption needs
 * a write transaction; in a read transaction they are opened but not adopted. */
int vault_msg_list(struct vault_txn *t, const struct vault_keys *k, uint32_t mbox,
    uint32_t min_uid, int (*cb)(const struct vault_msg_meta *m, void *arg), void *arg);
int vault_msg_get_meta(struct vault_txn *t, const struct vault_keys *k, uint32_t mbox,
    uint32_t uid, struct vault_msg_meta *out);
/* Reads plaintext bytes [off, off+len) of the message (len UINT64_MAX: to the end),
 * opening only the chunks that cover them. *out is a secure sbuf. */
int vault_msg_read(struct vault_txn *t, const struct vault_keys *k, uint32_t mbox,
    uint32_t uid, uint64_t off, uint64_t len, struct sbuf **out);
/* Sealed per-message cache (parsed ENVELOPE/BODYSTRUCTURE...; opaque to the vault). */
int vault_msg_get_cache(struct vault_txn *t, const struct vault_keys *k, uint32_t mbox,
    uint32_t uid, struct sbuf **out);		/* -ENOENT if none yet */
int vault_msg_set_cache(struct vault_txn *t, const struct vault_keys *k, uint32_t mbox,
    uint32_t uid, const uint8_t *blob, size_t len);
/* Gives back an sbuf from vault_msg_read / vault_msg_get_cache (sbuf_free works too):
 * small ones return wiped to the vault's pool of secure buffers, so the next read
 * costs no sodium_malloc (mmap, mprotect, mlock, munmap). NULLs *b; NULL is fine. */
void vault_sbuf_release(struct vault *v, struct sbuf **b);
/* Appends a message (APPEND): sealed to the current epoch, flags and date given. */
int vault_msg_append(struct vault_txn *t, const struct vault_keys *k, uint32_t mbox,
    const uint8_t *msg, size_t len, const struct vault_msg_meta *meta, uint32_t *uid_out);
/* Sets flags/keywords; bumps modseq (returned). */
int vault_msg_set_flags(struct vault_txn *t, const struct vault_keys *k, uint32_t mbox,
    uint32_t uid, uint32_t flags, char *const *keywords, uint32_t nkeywords,
    uint64_t *modseq_out);
/* Removes the message; records (uid, modseq) for QRESYNC VANISHED. */
int vault_msg_expunge(struct vault_txn *t, const struct vault_keys *k, uint32_t mbox,
    uint32_t uid);
/* Copies into dst with a new UID (re-sealed under a fresh data key: AD binds mailbox
 * and UID). */
int vault_msg_copy(struct vault_txn *t, const struct vault_keys *k, uint32_t src,
    uint32_t uid, uint32_t dst, uint32_t *new_uid_out);
/* UIDs expunged with modseq > since, in UID order. */
int vault_msg_vanished(struct vault_txn *t, uint32_t user_id, uint32_t mbox,
    uint64_t since, int (*cb)(uint32_t uid, void *arg), void *arg);

/* ---- Delivery (no user secret) -----------------------------------------------------
 * Streams a message in; plaintext never touches disk (sealed chunks are buffered in
 * memory or spilled as ciphertext). Commit is durable before it returns 0, so the
 * caller may acknowledge. One delivery per recipient. */
struct vault_delivery;
int vault_delivery_begin(struct vault *v, const char *user, time_t now,
    struct vault_delivery **out);		/* VAULT_ERR_NOUSER */
/* Stores the bytes exactly as given. Every write but write_trace counts against
 * cfg->max_message_size (-E2BIG beyond; the delivery is then dead). */
int vault_delivery_write(struct vault_delivery *d, const uint8_t *p, size_t n);
/* Trace fields a delivery agent prepends (Return-Path, Delivered-To, Received):
 * stored as given, before any other write (-EINVAL after), and not counted against
 * max_message_size (RFC 1870: the limit applies to the client's message); at most
 * VAULT_TRACE_MAX bytes in all (-E2BIG). */
#define VAULT_TRACE_MAX 4096
int vault_delivery_write_trace(struct vault_delivery *d, const uint8_t *p, size_t n);
/* For mail from outside (deliver, LMTP, import): bare LF becomes CRLF, streaming
 * (a CR at the end of one call and an LF at the start of the next are one CRLF).
 * The bytes given, not the converted ones, count against max_message_size. */
int vault_delivery_write_mail(struct vault_delivery *d, const uint8_t *p, size_t n);
/* Commits into INBOX. -E2BIG if over cfg->max_message_size. *d is freed. */
int vault_delivery_commit(struct vault_delivery **d, uint32_t *uid_out);
void vault_delivery_abort(struct vault_delivery **d);
/* Group commit: all n deliveries (of one vault) in ONE write transaction with one
 * durable commit, in array order (UIDs of one mailbox increase in that order). If
 * that transaction fails, each is committed alone so that an error (user removed,
 * store full) reaches only its own delivery. errs[i]/uids[i] as vault_delivery_commit
 * for ds[i]; every ds[i] is freed (NULL entries give -EINVAL). Returns 0. */
int vault_delivery_commit_group(struct vault_delivery **ds, size_t n, uint32_t *uids,
    int *errs);
/* Hands a delivery to another process for committing (the LMTP committer):
 * finishes it (seals the last chunk) and frees *d; wire (exactly
 * VAULT_DELIVERY_WIRE_BYTES) gets its metadata INCLUDING ITS DATA KEY (wipe it once
 * sent), *fd_out a file descriptor of ciphertext only (memfd, or the unlinked spill
 * file), which the caller sends and closes. */
#define VAULT_DELIVERY_WIRE_BYTES 106
int vault_delivery_export(struct vault_delivery **d, uint8_t *wire, size_t wirelen,
    int *fd_out);
/* The receiving side: a delivery ready for vault_delivery_commit(_group). Takes fd
 * (closed on error too). -EPROTO if wire is malformed or the file too short: the
 * chunks themselves are authenticated when the commit reads them only if it has to
 * re-seal; a peer that lies stores garbage in its own recipient's mailbox, nothing
 * else (the UID, modseq and epoch wrap are decided here). */
int vault_delivery_import(struct vault *v, const uint8_t *wire, size_t wirelen, int fd,
    struct vault_delivery **out);
/* Convenience: the whole message at once. */
int vault_deliver(struct vault *v, const char *user, const uint8_t *msg, size_t len,
    time_t now, uint32_t *uid_out);

/* Mail from outside is stored with CRLF line ends: the bare-LF -> CRLF conversion
 * of vault_delivery_write_mail, for other writers (import). Streaming: state carries
 * a CR that ended the previous call. put gets the converted bytes in pieces; its
 * negative return stops the conversion and is returned. */
struct vault_crlf { bool prev_cr; };
int vault_crlf_write(struct vault_crlf *state, const uint8_t *p, size_t n,
    int (*put)(void *arg, const uint8_t *p, size_t n), void *arg);

/* ---- Import progress (session) -----------------------------------------------------
 * Which source messages an import already stored, so that an interrupted import
 * resumes without duplicates. An identity is the caller's name for a source message
 * (ident_len bytes, 16 to 64, e.g. a hash of target folder, file name and content).
 * Only a keyed tag of it is stored (keyed with a KDF of the user's master key:
 * nothing about the source can be read or confirmed without the user's keys).
 * For each of the n identities at idents (packed): already[i] = true if it was marked
 * before (or appears earlier in idents), else false and it is marked now. Call it in
 * the write transaction that appends the messages that were not there already, so
 * that a crash keeps both or neither. 0 or -errno. */
int vault_import_mark(struct vault_txn *t, const struct vault_keys *k, const uint8_t *idents,
    size_t ident_len, size_t n, bool *already);

/* ---- Integrity, backup, stats (no key) ------------------------------------------- */
/* Checks every record's ciphertext hash; calls report for each broken one. Returns
 * the number of broken records (0: all good) or -errno. */
int vault_verify(struct vault *v, void (*report)(const char *what, void *arg), void *arg);
/* Consistent hot copy (mdb_env_copy2 with compaction) into dest_dir, plus a manifest
 * of record hashes and a root hash. */
int vault_backup(struct vault *v, const char *dest_dir);
/* Verifies a backup directory against its manifest; same return as vault_verify. */
int vault_verify_backup(const char *dest_dir, void (*report)(const char *what, void *arg),
    void *arg);
struct vault_stats {
	uint64_t users, mailboxes, messages, records, chunk_bytes, map_size, map_used;
};
int vault_stats(struct vault *v, struct vault_stats *out);
/* The LMDB map: bytes of pages in use (up to the last page written) and the map size.
 * Cheap (no scan). 0 or -EIO. */
int vault_map_use(struct vault *v, uint64_t *used_out, uint64_t *size_out);
