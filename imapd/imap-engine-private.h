/* Internals of the IMAP command engine (imap-engine*.c, imap-cmd-*.c).
 *
 * Structure:
 *  - struct imap_user: one per session process: the vault, the keys, the clients, and
 *    the shared state of every mailbox some client has selected (struct mbox_state).
 *  - struct mbox_state: the authoritative in-memory picture of one mailbox (UID,
 *    flags, keywords, modseq, dates, sizes of every message) plus a change log
 *    (APPEND / EXPUNGE / FLAGS entries). All connections of the user share it, so a
 *    change made by one is seen by all (RFC 9051 section 7 untagged updates).
 *  - struct view: one client's selected mailbox: its own sequence-number map (the
 *    UIDs it has been told about, in order) and its position in the change log. A
 *    view replays the log at the moments the RFC allows (view_sync), which is how
 *    EXISTS / EXPUNGE / VANISHED / FETCH FLAGS reach each client with consistent
 *    sequence numbers.
 *  - struct imap_client: one connection: buffers, parser, optional DEFLATE, state,
 *    the running command (some are resumable: FETCH yields when output backs up).
 *
 * Invariants:
 *  - mbox_state.m is sorted by UID; a view's uids[] is sorted and every UID in it was
 *    either in the state or expunged by a log entry the view has not replayed yet.
 *  - mbox_state.hms equals the vault's highestmodseq as of the last refresh or of the
 *    last write this process committed (writes refresh first inside their txn). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <zlib.h>
#include "imap-session.h"
#include "imap-parser.h"
#include "imap-args.h"
#include "imap-msg.h"
#include "sbuf.h"
#include "events.h"
#include "vault.h"

/* Output is generated until this many bytes are pending, then resumable commands
 * pause and input is not read until it drains below OUT_LOW. */
#define OUT_HIGH (512 * 1024)
#define OUT_LOW (128 * 1024)
/* Input buffer per connection. Large enough that a big APPEND literal reaches the
 * parser in few pieces (each piece may cost the parser a buffer copy). */
#define IN_CHUNK (256 * 1024)
#define IDLE_KEEPALIVE_SECS 120
#define ENGINE_NAME "sealmail"

/* ---- shared mailbox state ----------------------------------------------------- */
struct mmsg {
	uint32_t uid;
	uint32_t flags;		/* enum vault_flag */
	uint64_t modseq;
	int64_t internal_date;
	int64_t save_date;
	uint64_t size;
	int32_t internal_tz;
	uint16_t nkw;
	bool recent;
	uint16_t *kw;		/* indexes into mbox_state.kw, sorted; NULL if nkw 0 */
	uint8_t emailid[16];
};

enum chg_type { CHG_APPEND = 1, CHG_EXPUNGE, CHG_FLAGS };
struct chg {
	uint8_t type;
	uint32_t uid;
	const struct imap_client *origin;	/* NULL: another process */
};

struct view;
struct mbox_state {
	struct mbox_state *next;
	struct imap_user *u;
	uint32_t id;
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t hms;			/* highest modseq */
	struct mmsg *m;
	size_t n, cap;
	char **kw;			/* keyword names in order of first appearance */
	size_t nkw;
	struct chg *log;
	size_t nlog, caplog;
	uint64_t log_base;		/* absolute index of log[0] */
	struct view *views;
	bool deleted;
	struct view *recent_owner;
	uint64_t last_used;		/* imap_user.state_clock when its last view closed */
};
/* Idle states (no view) kept per session process; the least recently used beyond
 * either bound are freed. */
#define IDLE_STATES_MAX 8
#define IDLE_STATE_MSGS_MAX ((size_t)1000000)

struct view {
	struct view *next;		/* in mbox_state.views */
	struct mbox_state *st;
	struct imap_client *c;
	uint32_t *uids;			/* seq i+1 -> uids[i] */
	size_t n, cap;
	uint64_t log_pos;		/* absolute log index replayed up to */
	bool readonly;
	size_t nkw_sent;		/* keywords already announced in FLAGS */
	uint64_t hms_sent;
};

/* ---- clients ---------------------------------------------------------------- */
enum client_state { CS_AUTH = 1, CS_SELECTED = 2, CS_LOGOUT = 4 };
enum client_enabled {
	EN_CONDSTORE = 1 << 0, EN_QRESYNC = 1 << 1, EN_REV2 = 1 << 2, EN_UTF8 = 1 << 3,
};

struct imap_client;
struct cmd_ctx;
/* A resumable command: called again when output has drained. 0 finished (tagged
 * response written), 1 call again, <0 internal error. */
typedef int (*cmd_resume_fn)(struct imap_client *c);

struct imap_client {
	struct imap_client *next, *prev;
	struct imap_user *u;
	int fd;
	bool tls;
	char peer[64];
	unsigned id;
	/* input */
	struct imap_parser *parser;
	uint8_t *in;			/* clear bytes not yet consumed by the parser */
	size_t inlen, incap;
	bool eof;
	/* output */
	struct sbuf *out;		/* clear bytes not yet written (or deflated) */
	/* COMPRESS=DEFLATE (RFC 4978) */
	bool deflate;
	z_stream zin, zout;
	uint8_t *zraw;			/* compressed input not yet inflated */
	size_t zrawlen;
	struct sbuf *zbuf;		/* compressed output not yet written */
	size_t zpending;		/* clear bytes in out already fed to deflate */
	/* session */
	enum client_state state;
	unsigned enabled;		/* enum client_enabled */
	bool condstore;			/* CONDSTORE active (enabled or implied) */
	struct view *view;
	struct imap_cmd *cmd;		/* running command (resumable) */
	cmd_resume_fn resume;
	void *resume_ctx;
	void (*resume_free)(void *ctx);
	bool resume_uid;		/* running command is a UID variant */
	bool idling;
	char *idle_tag;
	time_t idle_ka;			/* next IDLE keepalive */
	time_t last_active;
	bool closing;			/* BYE sent: close once output is flushed */
	bool fatal;			/* close now */
	bool runnable;			/* stopped with work left in the buffers */
	/* SEARCHRES (RFC 5182): the saved result, as UIDs */
	uint32_t *saved;
	size_t nsaved;
	bool saved_valid;
	/* APPEND / MULTIAPPEND refusing big literals */
	bool toobig_sent;
	/* audit log and metrics (events.h): the running command's start, the clear
	 * output bytes produced before it, messages it addressed and expunged */
	struct audit_ctx actx;
	uint64_t conn_start_us, cmd_start_us, cmd_mark, out_consumed, ncmds;
	uint64_t cmd_msgs, cmd_expunged;
};

/* Decrypted cache blobs kept in the session (one secure arena, written as a ring;
 * a direct-mapped table finds them). Reading a blob from the vault costs an AEAD
 * open plus secure allocations; clients re-read headers often (SEARCH, re-sync). */
struct blobcache_slot {
	uint32_t mbox, uid;
	uint32_t off, len;		/* in the arena */
	uint64_t abs;			/* absolute write position when stored */
};
struct blobcache {
	struct secret *arena;
	size_t cap;			/* current arena size (grows to max) */
	size_t max;
	uint64_t abs;			/* bytes ever written (with skips) */
	struct blobcache_slot *slot;
	size_t nslot;			/* power of two */
};

struct imap_user {
	struct vault *v;
	struct vault_keys *k;
	const struct vault_config *cfg;
	uint32_t user_id;
	uint64_t change_seq;
	struct imap_client *clients;
	size_t nclients;
	unsigned next_client_id;
	struct mbox_state *states;	/* selected ones, and idle ones (see mbox_state_unref) */
	uint64_t state_clock;
	struct blobcache bc;
	time_t last_keys_refresh;
};

/* ---- output (imap-engine-out.c) --------------------------------------------- */
int out_put(struct imap_client *c, const void *p, size_t n);
/* Clear output bytes produced so far on this connection (written or queued). */
uint64_t out_produced(const struct imap_client *c);
/* A tagged response was queued for cmd: the audit line, the metrics and the
 * mass_expunge check (cmd_ok/cmd_no/cmd_bad call it; handlers that write their own
 * tagged line call it once after). */
void cmd_done(struct imap_client *c, const struct imap_cmd *cmd, enum metrics_result res);
int out_str(struct imap_client *c, const char *s);
int out_printf(struct imap_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* An IMAP string: atom-safe? no: quoted when possible, else a literal. */
int out_string(struct imap_client *c, const char *s, size_t n);
int out_nstring(struct imap_client *c, const char *s, size_t n);	/* NULL: NIL */
/* A literal {n}CRLF + bytes (~{n} when binary is true). */
int out_literal(struct imap_client *c, const void *p, size_t n, bool binary);
/* A mailbox name: mUTF-7 unless UTF8=ACCEPT is enabled, then quoted/literal. */
int out_mailbox(struct imap_client *c, const char *utf8name);
size_t out_pending(const struct imap_client *c);
int out_flush(struct imap_client *c);		/* write what the fd takes; -errno fatal */
int out_deflate_start(struct imap_client *c);
/* Inflate buffered compressed input into c->in. */
int in_inflate(struct imap_client *c);

/* ---- tagged responses (imap-engine.c) ----------------------------------------- */
/* Sync pending updates (as the command allows) then write "TAG OK|NO|BAD text". */
int cmd_ok(struct imap_client *c, const struct imap_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int cmd_no(struct imap_client *c, const struct imap_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int cmd_bad(struct imap_client *c, const struct imap_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Maps a vault error to "NO [CODE] text" (SERVERBUG, TRYCREATE, NONEXISTENT, ...). */
int cmd_vault_err(struct imap_client *c, const struct imap_cmd *cmd, int err);
bool cmd_allows_expunge(const struct imap_cmd *cmd);
/* Runs a write txn body with retry on -EAGAIN. */
int engine_capability(struct imap_client *c, char *buf, size_t len);

/* ---- mailbox state and views (imap-engine-sync.c) ------------------------------ */
int mbox_state_get(struct imap_user *u, struct vault_txn *t, uint32_t id,
    struct mbox_state **out);
/* Called when st may have lost its last view: keeps it idle (bounded) or frees it. */
void mbox_state_unref(struct mbox_state *st);
void user_states_free(struct imap_user *u);
/* Brings st up to date with the vault inside t (new messages, external changes). */
int mbox_state_refresh(struct mbox_state *st, struct vault_txn *t);
/* Every engine write goes through here: fn runs in a write txn via vault_write, which
 * replays it against a fresh txn when the map had to grow (MAP_FULL mid-txn or at
 * commit, or MAP_RESIZED by another process). fn must be replayable: read and write
 * the vault, refresh mbox states (re-derived from the txn each run), fill caller
 * buffers that a rerun overwrites; send output and apply the results only after this
 * returns 0. */
int engine_write(struct imap_client *c, int (*fn)(struct imap_client *c,
    struct vault_txn *t, void *arg), void *arg);
/* Refresh every loaded state. adopt: new messages (deliveries by other processes)
 * are read in a write txn so the vault adopts them once (symmetric rewrap); after
 * this process's own APPEND/COPY a read txn is enough. */
int user_refresh_all(struct imap_user *u, bool adopt);
struct mmsg *mbox_state_find(struct mbox_state *st, uint32_t uid);
int mbox_state_kw_index(struct mbox_state *st, const char *name, bool create, int *idx_out);
int mbox_state_log(struct mbox_state *st, enum chg_type type, uint32_t uid,
    const struct imap_client *origin);
/* Applies a committed flag change made by this process. */
int mbox_state_set_flags(struct mbox_state *st, uint32_t uid, uint32_t flags,
    char *const *kw, uint32_t nkw, uint64_t modseq, const struct imap_client *origin);
int mbox_state_expunged(struct mbox_state *st, uint32_t uid, const struct imap_client *origin);
void mbox_state_trim(struct mbox_state *st);
int view_open(struct imap_client *c, struct mbox_state *st, bool readonly);
void view_close(struct imap_client *c);
/* Replays the log to the client. allow_expunge false: stop before the first EXPUNGE
 * (RFC 9051 7.5.1: not during FETCH, STORE, SEARCH). */
int view_sync(struct imap_client *c, bool allow_expunge);
/* seq (1-based) of uid in the view, 0 if absent. */
size_t view_seq(const struct view *v, uint32_t uid);
/* Pushes updates to every IDLE client of the user, and flushes. */
void user_push_idle(struct imap_user *u);

/* Output helpers for flags. */
int out_flags(struct imap_client *c, const struct mbox_state *st, const struct mmsg *m,
    bool recent);
int out_flag_list(struct imap_client *c, const struct mbox_state *st);	/* FLAGS (...) */
/* "* seq FETCH (UID u FLAGS (...) [MODSEQ (m)])" */
int out_fetch_flags(struct imap_client *c, size_t seq, const struct mmsg *m);

/* ---- commands (imap-cmd-*.c): each writes its tagged response ------------------
 * 0 done, 1 resumable (c->resume set), <0 fatal internal error. */
typedef int (*cmd_fn)(struct imap_client *c, struct imap_cmd *cmd);
int cmd_capability(struct imap_client *c, struct imap_cmd *cmd);
int cmd_noop(struct imap_client *c, struct imap_cmd *cmd);
int cmd_logout(struct imap_client *c, struct imap_cmd *cmd);
int cmd_enable(struct imap_client *c, struct imap_cmd *cmd);
int cmd_id(struct imap_client *c, struct imap_cmd *cmd);
int cmd_namespace(struct imap_client *c, struct imap_cmd *cmd);
int cmd_compress(struct imap_client *c, struct imap_cmd *cmd);
int cmd_idle(struct imap_client *c, struct imap_cmd *cmd);
int cmd_select(struct imap_client *c, struct imap_cmd *cmd);
int cmd_create(struct imap_client *c, struct imap_cmd *cmd);
int cmd_delete(struct imap_client *c, struct imap_cmd *cmd);
int cmd_rename(struct imap_client *c, struct imap_cmd *cmd);
int cmd_subscribe(struct imap_client *c, struct imap_cmd *cmd);
int cmd_list(struct imap_client *c, struct imap_cmd *cmd);
int cmd_status(struct imap_client *c, struct imap_cmd *cmd);
int cmd_append(struct imap_client *c, struct imap_cmd *cmd);
int cmd_check(struct imap_client *c, struct imap_cmd *cmd);
int cmd_close(struct imap_client *c, struct imap_cmd *cmd);
int cmd_expunge(struct imap_client *c, struct imap_cmd *cmd);
int cmd_search(struct imap_client *c, struct imap_cmd *cmd);
int cmd_fetch(struct imap_client *c, struct imap_cmd *cmd);
int cmd_store(struct imap_client *c, struct imap_cmd *cmd);
int cmd_copy(struct imap_client *c, struct imap_cmd *cmd);

/* ---- helpers (imap-engine-util.c) --------------------------------------------- */
/* Sorted unique 0-based view indexes; -ERANGE: sequence number out of range. The set
 * is normalized in place. */
int view_resolve(struct imap_client *c, struct imap_seqset *set, bool uid,
    size_t **idx_out, size_t *n_out);
int out_uid_ranges(struct imap_client *c, const uint32_t *uids, size_t n);
int64_t day_of(int64_t t, int32_t tz);

/* EXPUNGE / UID EXPUNGE / CLOSE / MOVE: removes \Deleted messages (uidset NULL: all;
 * else only those UIDs, all of them when force). Sends EXPUNGE/VANISHED unless
 * silent (CLOSE). */
int engine_expunge(struct imap_client *c, const uint32_t *uids, size_t nuids, bool force,
    bool silent);

uint32_t flags_to_vault(unsigned imap_sys);

/* ---- message cache (imap-engine-cache.c) --------------------------------------- */
struct mcache {
	struct sbuf *blob;		/* owned, secure */
	struct imap_msg_cache mc;	/* view into blob */
	const uint8_t *hdr;		/* the top-level header block, view into blob */
	size_t hdrlen;
	bool borrowed;			/* blob belongs to a pending_cache or is view */
	struct vault *v;		/* where a blob from the vault goes back (pool) */
	struct sbuf view;		/* blob from the session's blob cache */
};
struct pending_ent {
	uint32_t uid;
	struct sbuf *blob;
};
struct pending_cache {
	struct pending_ent *e;
	size_t n, cap;
};
/* The cache of a message: stored, or built from the body (queued in pend). data/msg
 * (both NULL, or both non-NULL): the caller's copy of the body and its parse; when
 * *msg is set the summary is built from it, and when the body had to be read here it
 * is handed back through them instead of being freed, so that nobody decrypts and
 * parses it again (also on -E2BIG: a header too big for a summary). */
int mcache_get(struct imap_client *c, struct vault_txn *t, uint32_t mbox, uint32_t uid,
    struct mcache *out, struct pending_cache *pend, struct sbuf **data,
    struct imap_msg **msg);
void mcache_clear(struct mcache *mc);
/* The in-session blob cache. get: 1 and a view (valid until the next put) or 0. */
int blobcache_init(struct blobcache *bc, size_t bytes);
void blobcache_free(struct blobcache *bc);
int blobcache_get(struct blobcache *bc, uint32_t mbox, uint32_t uid, const uint8_t **p,
    size_t *len);
void blobcache_put(struct blobcache *bc, uint32_t mbox, uint32_t uid, const uint8_t *p,
    size_t len);
/* Builds the engine's cache blob for a parsed message (secure sbuf). */
int msg_cache_build(const struct imap_msg *m, struct sbuf **out);
int pending_add(struct pending_cache *p, uint32_t uid, struct sbuf *blob);
int pending_flush(struct imap_client *c, uint32_t mbox, struct pending_cache *p);
void pending_clear(struct pending_cache *p);
/* Reads the whole message (and parses it when msg_out is not NULL). */
int msg_load(struct imap_client *c, struct vault_txn *t, uint32_t mbox, uint32_t uid,
    struct sbuf **data_out, struct imap_msg **msg_out);

/* ---- message source (imap-engine-src.c) ----------------------------------------
 * One message's summary / header / body for a command, each loaded lazily and at most
 * once. Init with msrc_init, call the msrc_* loaders, read the fields they document,
 * then msrc_clear (always, also after an error). t must stay open until msrc_clear.
 * Loaders return 0, VAULT_ERR_NOMSG (expunged), -ENOTSUP, -EPROTO or another -errno. */
struct msrc {
	struct imap_client *c;
	struct vault_txn *t;
	uint32_t mbox, uid;
	struct pending_cache *pend;	/* where a newly built summary is queued; may be NULL */
	struct mcache mc;		/* after msrc_cache: mc.mc (ENVELOPE, BODYSTRUCTURE,
					 * BODY, parts, Date) and mc.hdr/mc.hdrlen */
	bool have_mc;
	int mc_err;			/* sticky msrc_cache error (-E2BIG: no summary) */
	struct imap_msg *hm;		/* after msrc_header: the header block parsed alone */
	struct sbuf *data;		/* after msrc_body: the whole message (secure) */
	struct imap_msg *pm;		/* after msrc_body(parse true): data parsed */
};
void msrc_init(struct msrc *s, struct imap_client *c, struct vault_txn *t, uint32_t mbox,
    uint32_t uid, struct pending_cache *pend);
void msrc_clear(struct msrc *s);
/* The summary (sealed cache; built from the body and queued in pend if missing). */
int msrc_cache(struct msrc *s);
/* The top-level header block, parsed (from the summary's copy, no body read). */
int msrc_header(struct msrc *s);
/* The whole message; parse: also s->pm. */
int msrc_body(struct msrc *s, bool parse);

/* Shared helpers. */
bool cmd_is_uid(const struct imap_cmd *cmd);
/* Resolves a mailbox argument (astring, mUTF-7 unless UTF8=ACCEPT) to UTF-8 with
 * INBOX case-folded. 0, -EPROTO bad name. */
int arg_mailbox(struct imap_client *c, const struct imap_arg *a, char *out, size_t outlen);
bool arg_is_astring(const struct imap_arg *a);
bool arg_is_atom(const struct imap_arg *a, const char *word);	/* case-insensitive */
void client_set_resume(struct imap_client *c, cmd_resume_fn fn, void *ctx,
    void (*ctx_free)(void *));
