/* vault-private.h: internals shared by the vault/ sources and tests/test_vault.c.
 * Nothing outside vault/ and tests/ includes this.
 *
 * LMDB layout (all integers big-endian, so keys sort numerically; u = user id,
 * m = mailbox id, n = message UID):
 *
 *   db "meta"     "next_user_id"            -> u32            (global counters)
 *   db "names"    user name (UTF-8)         -> u32 u          (login lookup)
 *   db "users"    u 'U'                     -> user record     (salt, params, identity,
 *                                                              recovery wrap, epoch ptr)
 *                 u 'C'                     -> counters        (change seq, uidvalidity,
 *                                                              next mailbox id, totals)
 *                 u 'E' e(u32)              -> epoch record    (pk, sk wrapped to identity;
 *                                                              deleted when retired)
 *                 u 'T' t(u8)               -> token record
 *                 u 'S'                     -> subscriptions   (sealed under MK)
 *                 u 'I' tag(16)             -> (empty)         import marks: keyed tags of
 *                                                              imported source messages
 *                                                              (import-state.c)
 *                 u 'Z'                     -> size-fix list   (BE32 mailbox ids whose
 *                                                              sealed size sum a keyless
 *                                                              forced retirement made
 *                                                              stale; the session fixes)
 *   db "mbox"     u m                       -> mailbox record  (clear counters + name etc.
 *                                                              sealed under MK)
 *   db "msg"      u m n                     -> message record  (clear: modseq, sizes,
 *                                                              wrap, stream header; DK wrap;
 *                                                              meta sealed under DK). Small,
 *                                                              contiguous per mailbox: a
 *                                                              SELECT is one cursor scan.
 *   db "chunk"    u m n i(u32)              -> body chunk i    (crypto stream chunk)
 *   db "cache"    u m n                     -> sealed cache blob
 *   db "vanished" u m n                     -> u64 modseq of the expunge (QRESYNC)
 *
 * Every value is framed [u8 version=1][payload][32 B hash] where hash =
 * BLAKE2b(u8 len(db) || db || u16 len(key) || key || version || payload): the
 * KEYS.md "BLAKE2b(db name || key || payload)" with lengths so that the
 * concatenation is unambiguous. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/types.h>
#include <lmdb.h>
#include "vault.h"

#define VAULT_REC_VERSION 1
#define VAULT_REC_HASH 32
#define VAULT_REC_OVERHEAD (1 + VAULT_REC_HASH)

enum vdb {
	VDB_META, VDB_NAMES, VDB_USERS, VDB_MBOX, VDB_MSG, VDB_CHUNK, VDB_CACHE,
	VDB_VANISHED, VDB_COUNT
};
extern const char *const vault_db_names[VDB_COUNT];

struct vault {
	struct vault_config cfg;
	MDB_env *env;
	MDB_dbi dbi[VDB_COUNT];
	uint64_t map_size;		/* current map size of this process's env */
	int active_txns;		/* map can be resized only when 0 */
	bool grow_pending;		/* MAP_FULL seen while other txns were open */
	unsigned int psize;		/* LMDB page size (for the map-use check) */
	char tmp_dir[4200];		/* data_dir/tmp: ciphertext spill files */
	/* Secure 64 KiB buffers reused across operations: sodium_malloc/free cost an
	 * mmap, mprotect, mlock and munmap (a TLB shootdown) each. */
	pthread_mutex_t pool_lock;
	struct secret *pool[4];
	int npool;
	struct sbuf *spool[8];
	int nspool;
};

#define VAULT_BUF_BYTES (CRYPTO_CHUNK_BYTES + 256)
/* A zeroed secure buffer of VAULT_BUF_BYTES from the pool (or a new one). */
int vault_buf_get(struct vault *v, struct secret **out);
/* Wipes the first used bytes (all if used is SIZE_MAX) and returns it; NULLs *s. */
void vault_buf_put(struct vault *v, struct secret **s, size_t used);
/* Secure sbufs (max VAULT_SBUF_MAX) kept with their storage between uses. */
#define VAULT_SBUF_MAX (64 * 1024 + 256)
int vault_sbuf_get(struct vault *v, struct sbuf **out);
void vault_sbuf_put(struct vault *v, struct sbuf **b);	/* wipes */

struct vault_txn {
	struct vault *v;
	MDB_txn *txn;
	bool write;
	int sticky;			/* first MAP_FULL-class error; the txn is dead */
};

/* ---- store.c ------------------------------------------------------------------ */
/* Maps an LMDB return code to -errno; MDB_MAP_FULL marks the txn (grow on abort). */
int store_err(struct vault_txn *t, int rc);
/* Payload (between version byte and hash) of the record, pointing into the map:
 * valid until the next write in t. -ENOENT; VAULT_ERR_CORRUPT if framing/hash bad.
 * check_hash false skips the hash (body chunks, whose AEAD tag is stronger). */
int store_get(struct vault_txn *t, enum vdb db, const void *key, size_t klen,
    bool check_hash, const uint8_t **p_out, size_t *n_out);
int store_put(struct vault_txn *t, enum vdb db, const void *key, size_t klen,
    const void *payload, size_t plen);
/* Reserves a record of plen payload bytes: fill *p_out, then store_reserve_done. */
int store_reserve(struct vault_txn *t, enum vdb db, const void *key, size_t klen,
    size_t plen, uint8_t **p_out);
void store_reserve_done(enum vdb db, const void *key, size_t klen, uint8_t *payload,
    size_t plen);
int store_del(struct vault_txn *t, enum vdb db, const void *key, size_t klen);	/* -ENOENT */
/* Deletes every record whose key starts with prefix; at most max (0: all), returns the
 * count deleted. */
int store_del_prefix(struct vault_txn *t, enum vdb db, const void *prefix, size_t plen,
    size_t max);
/* The framing hash (exposed for verify, backup and the tamper tests). */
void vault_record_hash(const char *dbname, const void *key, size_t klen, const uint8_t *val,
    size_t vlen_without_hash, uint8_t out[VAULT_REC_HASH]);
/* Checks version byte + hash of a raw value. 0 or VAULT_ERR_CORRUPT. */
int vault_record_check(const char *dbname, const void *key, size_t klen, const uint8_t *val,
    size_t vlen);

/* Key builders (big-endian). */
size_t key_user(uint8_t *k, uint32_t u, char kind);		/* 5 */
size_t key_epoch(uint8_t *k, uint32_t u, uint32_t e);		/* 9 */
size_t key_token(uint8_t *k, uint32_t u, uint8_t t);		/* 6 */
size_t key_mbox(uint8_t *k, uint32_t u, uint32_t m);		/* 8 */
size_t key_msg(uint8_t *k, uint32_t u, uint32_t m, uint32_t n);	/* 12 */
size_t key_chunk(uint8_t *k, uint32_t u, uint32_t m, uint32_t n, uint32_t i);	/* 16 */
void be32_put(uint8_t *p, uint32_t v);
uint32_t be32_get(const uint8_t *p);
void be64_put(uint8_t *p, uint64_t v);
uint64_t be64_get(const uint8_t *p);

/* A bounded writer into caller memory (records are built on the stack). */
struct wbuf { uint8_t *p; size_t len, cap; bool bad; };
void wb_init(struct wbuf *w, uint8_t *p, size_t cap);
void wb_put(struct wbuf *w, const void *p, size_t n);
void wb_u8(struct wbuf *w, uint8_t v);
void wb_u16(struct wbuf *w, uint16_t v);
void wb_u32(struct wbuf *w, uint32_t v);
void wb_u64(struct wbuf *w, uint64_t v);
void wb_str16(struct wbuf *w, const void *p, size_t n);
/* Copies a str16 from r into out (cap bytes); -EBADMSG if short or too long. */
int rb_str16(struct sbuf *r, uint8_t *out, size_t cap, size_t *len_out);

/* ---- Associated data (KEYS.md): "sealmail" || u8 purpose || BE32 user || ... ---- */
enum vault_purpose {
	VP_UMK = 1, VP_UMK_RECOVERY = 2, VP_TOKAES = 3, VP_TOKSECRET = 4, VP_ID = 5,
	VP_EPOCH = 6, VP_DK = 7, VP_BODY = 8, VP_META = 9, VP_CACHE = 10, VP_MBOX = 11,
	VP_SUBS = 12,
};
struct vault_ad { uint8_t b[40]; size_t n; };
void ad_init(struct vault_ad *a, enum vault_purpose p, uint32_t user);
void ad_u32(struct vault_ad *a, uint32_t v);
void ad_u8(struct vault_ad *a, uint8_t v);
/* Maps crypto open errors: -EBADMSG/-EPROTO -> VAULT_ERR_TAMPER. */
int vault_open_err(int r);

/* Seals pt into out (cap bytes) with the default algorithm. */
int vseal(const struct secret *key, uint32_t key_id, const struct vault_ad *ad,
    const void *pt, size_t n, uint8_t *out, size_t cap, size_t *len_out);
/* Opens a sealed record into a new secret of exactly want bytes (0: any length).
 * VAULT_ERR_TAMPER on authentication failure. */
int vopen_secret(const struct secret *key, const struct vault_ad *ad, const uint8_t *rec,
    size_t n, size_t want, struct secret **out);
/* 32-byte KDF output. */
int vkdf(const struct secret *ikm, const char *label, const void *ctx, size_t ctxlen,
    struct secret **out);

/* ---- Records -------------------------------------------------------------------- */
struct user_rec {
	char name[128];
	int64_t created;
	uint8_t salt[CRYPTO_SALT_BYTES];
	struct crypto_pwhash_params pwhash;
	uint8_t id_pk[CRYPTO_PK_BYTES];
	uint8_t id_sk_wrap[128]; size_t id_sk_wrap_len;	/* seal_{KDF(UMK,identity)} */
	uint8_t rec_wrap[128]; size_t rec_wrap_len;	/* seal_{KDF(R,recovery)}(UMK) */
	uint32_t current_epoch;
};
struct counters_rec {
	uint64_t change_seq;
	uint32_t last_uidvalidity;
	uint32_t next_mbox_id;
	uint64_t messages;
	uint64_t stored_bytes;
	uint32_t pending_rewrap;
};
struct epoch_rec {
	uint32_t epoch;
	int64_t created;
	uint8_t pk[CRYPTO_PK_BYTES];
	uint8_t sk_wrap[CRYPTO_SK_BYTES + CRYPTO_PKWRAP_OVERHEAD];
};
struct token_rec {
	uint8_t index;
	uint8_t public_id[CRYPTO_OTP_PUBID_BYTES];
	uint16_t session_ctr;
	uint8_t use_ctr;
	int64_t added;
	char label[32];
	uint8_t salt[CRYPTO_SALT_BYTES];
	uint8_t kcv[32];
	uint8_t umk_wrap[128]; size_t umk_wrap_len;
	uint8_t aes_wrap[128]; size_t aes_wrap_len;
	uint8_t sec_wrap[128]; size_t sec_wrap_len;
};
/* Mailbox: counters in clear (delivery updates them without keys); name, special-use,
 * MAILBOXID and the exact-size sum of adopted messages sealed under MK. */
struct mbox_rec {
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	uint32_t messages;
	uint64_t padded_bytes;
	uint32_t first_pk_uid;		/* lowest UID that may still be pk-wrapped; 0 none */
	uint8_t sealed[700]; size_t sealed_len;
};
struct mbox_secret {			/* plaintext of mbox_rec.sealed */
	char name[512];
	uint32_t special_use;
	uint8_t objectid[16];
	uint64_t size;			/* exact sizes of sym-wrapped (adopted) messages */
};
enum { WRAP_PK = 1, WRAP_SYM = 2 };
#define MSG_RECENT 0x01
struct msg_rec {
	uint64_t modseq;
	uint32_t arrival_hour;		/* coarse arrival time: seconds / 3600 */
	uint64_t padded_size;		/* body bytes incl. padding (clear, bucketed) */
	uint32_t nchunks;
	uint32_t epoch;
	uint8_t wrap;			/* WRAP_PK or WRAP_SYM */
	uint8_t state;			/* MSG_RECENT */
	uint8_t stream_hdr[CRYPTO_STREAM_HDR_BYTES];
	uint8_t dkwrap[128]; size_t dkwrap_len;
	const uint8_t *meta; size_t meta_len;	/* sealed meta (borrowed) */
};
int user_rec_get(struct vault_txn *t, uint32_t u, struct user_rec *out);
int user_rec_put(struct vault_txn *t, uint32_t u, const struct user_rec *r);
int counters_get(struct vault_txn *t, uint32_t u, struct counters_rec *out);
int counters_put(struct vault_txn *t, uint32_t u, const struct counters_rec *c);
int user_bump_change(struct vault_txn *t, uint32_t u);
int epoch_rec_get(struct vault_txn *t, uint32_t u, uint32_t e, struct epoch_rec *out);
int token_rec_get(struct vault_txn *t, uint32_t u, uint8_t idx, struct token_rec *out);
int token_rec_put(struct vault_txn *t, uint32_t u, const struct token_rec *r);
int user_lookup(struct vault_txn *t, const char *name, uint32_t *u_out);
int mbox_rec_get(struct vault_txn *t, uint32_t u, uint32_t m, struct mbox_rec *out);
int mbox_rec_put(struct vault_txn *t, uint32_t u, uint32_t m, const struct mbox_rec *r);
int msg_rec_parse(const uint8_t *p, size_t n, struct msg_rec *out);
int msg_rec_put(struct vault_txn *t, uint32_t u, uint32_t m, uint32_t n,
    const struct msg_rec *r);
int msg_rec_get(struct vault_txn *t, uint32_t u, uint32_t m, uint32_t n, struct msg_rec *out);
/* Creates a mailbox record (used by user creation too). */
int mbox_create_raw(struct vault_txn *t, uint32_t u, const struct secret *mk, uint32_t id,
    const char *name, uint32_t special_use, time_t now);
/* Next UIDVALIDITY: max(now, last + 1), stored in the counters. */
int next_uidvalidity(struct vault_txn *t, uint32_t u, time_t now, uint32_t *out);

/* ---- Keys ------------------------------------------------------------------------ */
struct vault_epoch_key {
	uint32_t epoch;
	uint8_t pk[CRYPTO_PK_BYTES];
	struct secret *sk;
	struct secret *w;		/* W_e = KDF(sk, "dk-wrap") */
};
#define VAULT_MAX_EPOCHS 256
/* Where the background re-wrap (vault_rewrap_batch) stands: session memory only. */
struct keys_rewrap {
	bool active;			/* a pass is under way; next is valid */
	uint8_t next[12];		/* key of the next message record to look at */
	uint32_t pass_epoch;		/* current epoch when the pass began */
	bool pass_clean;		/* every record so far is (now) under pass_epoch */
	uint32_t settled_epoch;		/* a full pass under this current epoch left only
					 * what cannot be re-wrapped: do not rescan */
	uint32_t retired[16];		/* epochs the last batch retired (nretired may be */
	size_t nretired;		/* larger: only the first 16 are listed) */
};
struct vault_keys {
	uint32_t user_id;
	char name[128];
	struct secret *umk;
	struct secret *mk;		/* KDF(UMK, "mailbox-meta") */
	struct secret *id_sk;
	uint8_t id_pk[CRYPTO_PK_BYTES];
	/* Unlock window (memory only): wkey = Kw, random per keys object; wver =
	 * KDF(Kw, "window", passphrase) of the last full login; NULL = window closed. */
	struct secret *wkey;
	struct secret *wver;
	struct secret *pass;		/* P, only after vault_keys_set_passphrase/passwd */
	uint32_t current_epoch;
	size_t nepochs;
	struct vault_epoch_key epochs[VAULT_MAX_EPOCHS];
	struct keys_rewrap *rw;		/* heap: mutable through a const keys pointer */
};
const struct vault_epoch_key *keys_epoch(const struct vault_keys *k, uint32_t e);
/* Wipes and drops from k the secrets of epochs whose record is gone (retired), never
 * the current one. Moves entries of k->epochs: call only between operations, never
 * while a keys_epoch() pointer is held. */
int keys_drop_retired(struct vault_txn *t, struct vault_keys *k);

/* ---- Epoch lifecycle (user.c) ------------------------------------------------------ */
/* Retires, inside t, every epoch below the current one that no message record of u
 * references (exact scan in t), and sets the pending re-wrap counter to the scanned
 * number of messages under older epochs. retired may be NULL. */
int epochs_retire_unused_txn(struct vault_txn *t, uint32_t u, uint32_t *retired, size_t max,
    size_t *n_out);
/* 0 and *has_old: whether u has a live epoch record below cur. */
int epochs_have_old(struct vault_txn *t, uint32_t u, uint32_t cur, bool *has_old);
/* Mailboxes whose sealed exact-size sum went stale because a keyless operation
 * (forced epoch retirement) removed adopted messages: users db, key u 'Z', value a
 * list of BE32 mailbox ids. The session recomputes them (message.c). */
int sizefix_add(struct vault_txn *t, uint32_t u, uint32_t m);
/* First listed mailbox (0 and *m_out) or -ENOENT. */
int sizefix_first(struct vault_txn *t, uint32_t u, uint32_t *m_out);
int sizefix_remove(struct vault_txn *t, uint32_t u, uint32_t m);

/* ---- Messages (message.c / deliver.c) ------------------------------------------- */
#define MSG_META_VERSION 1
/* Plaintext length of the final chunk for r real bytes: bucketed so that the stored
 * LMDB value fills whole 4 KiB overflow pages (see message.c). */
size_t body_pad_len(size_t r);
uint32_t body_nchunks(uint64_t size);
/* Serializes a meta into out (secure memory, cap bytes); *len_out its length. */
int meta_serialize(const struct vault_msg_meta *m, uint8_t *out, size_t cap, size_t *len_out);
int meta_parse(const uint8_t *p, size_t n, struct vault_msg_meta *out);
void body_ad(struct vault_ad *a, uint32_t u, uint32_t m, uint32_t n);
/* Wraps DK for (u, m, n) to epoch e: symmetric when w is given, else to pk. */
int dk_wrap(uint32_t u, uint32_t m, uint32_t n, uint32_t e, const uint8_t *pk,
    const struct secret *w, const struct secret *dk, struct msg_rec *r);
/* Streams plaintext into sealed 64 KiB chunks. The emitter decides where each
 * chunk's ciphertext goes (LMDB directly, or memory/spill file for delivery). */
struct bw_ops {
	int (*reserve)(void *arg, uint32_t idx, size_t ctlen, uint8_t **out);
	int (*done)(void *arg, uint32_t idx, uint8_t *out, size_t ctlen);
};
struct body_writer {
	struct vault *v;		/* buffer pool */
	struct crypto_stream_hdr hdr;
	uint8_t hdr_bytes[CRYPTO_STREAM_HDR_BYTES];
	const struct secret *dk;
	struct secret dkv;		/* random DK in buf's tail when bw_init got none */
	struct vault_ad ad;
	struct secret *buf;		/* pending plaintext (pool buffer) */
	size_t fill;
	uint32_t idx;			/* chunks sealed so far */
	uint64_t total;			/* plaintext bytes written */
	uint64_t padded;		/* plaintext bytes sealed incl. padding */
	const struct bw_ops *ops;
	void *arg;
};
/* dk NULL: a fresh random data key kept in the writer's own buffer (bw->dk). */
int bw_init(struct body_writer *bw, struct vault *v, const struct secret *dk, uint32_t u,
    uint32_t m, uint32_t n, const struct bw_ops *ops, void *arg);
int bw_write(struct body_writer *bw, const uint8_t *p, size_t n);
int bw_finish(struct body_writer *bw);		/* seals the final (padded) chunk */
void bw_free(struct body_writer *bw);
/* Writes the message record (meta sealed under dk, DK wrapped to epoch: symmetric
 * when w is given, else to pk) and updates mailbox and user counters (no change
 * bump, no sealed size: callers without keys cannot). */
int msg_finish_new(struct vault_txn *t, uint32_t u, uint32_t m, uint32_t n, uint64_t modseq,
    const struct secret *dk, const struct vault_msg_meta *meta, const uint8_t *hdr_bytes,
    uint32_t nchunks, uint64_t padded, uint32_t epoch, const uint8_t *pk,
    const struct secret *w, int64_t now);
/* Adds delta to a mailbox's sealed exact-size sum (session only). */
int mbox_adjust_size(struct vault_txn *t, const struct vault_keys *k, uint32_t m,
    int64_t delta);
/* Sum of exact sizes of still pk-wrapped messages with UID >= from_uid. */
int msgs_pending_size(struct vault_txn *t, const struct vault_keys *k, uint32_t m,
    uint32_t from_uid, uint64_t *size_out);
int subs_write(struct vault_txn *t, uint32_t u, const struct secret *mk, char *const *names,
    size_t n);
/* Opens epochs created since k was unlocked (vault_keys_refresh inside a txn). */
int keys_refresh_txn(struct vault_txn *t, struct vault_keys *k);
/* Allocates the next UID and modseq of a mailbox (rewrites the mailbox record). */
int mbox_alloc_uid(struct vault_txn *t, uint32_t u, uint32_t m, uint32_t *uid_out,
    uint64_t *modseq_out);
/* Deletes every message of a mailbox (records, chunks, cache, vanished). */
int msgs_delete_mailbox(struct vault_txn *t, uint32_t u, uint32_t m, uint32_t current_epoch);

/* ---- verify.c / backup.c ---------------------------------------------------------- */
/* Calls fn for every record of every present db, in db then key order; stops at fn's
 * first non-zero return (returned). */
int store_walk(MDB_txn *txn, const MDB_dbi *dbi, const bool *present,
    int (*fn)(enum vdb db, const MDB_val *k, const MDB_val *d, void *arg), void *arg);
/* "db/keyhex" for reports. */
void record_name(enum vdb db, const void *key, size_t klen, char *out, size_t outlen);

/* ---- Config (config.c) ------------------------------------------------------------ */
/* The default config with data_dir and optionally the TLS paths set. */
int config_write(const char *path, const char *data_dir, const char *tls_cert,
    const char *tls_key, char *err, size_t errlen);
