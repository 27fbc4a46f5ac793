/* import.h: parsers for `sealmail-vault import` (migration in from Maildir and mbox).
 *
 * Pure functions and one incremental parser: no I/O, every input length bounded. The
 * driver (vault/vault-import.c) reads the files, seals with the session API and keeps
 * the import progress with vault_import_seen/vault_import_mark (vault.h).
 *
 * Errors: 0 or -errno (-EPROTO malformed input, -E2BIG over a limit). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vault.h"

/* ---- Mailbox names -------------------------------------------------------------------
 * Modified UTF-7 (RFC 3501 5.1.3, RFC 9051 5.1.3) to UTF-8, strict: only printable
 * US-ASCII outside base64 runs, "&-" for '&', base64 runs of whole UTF-16 code units
 * with zero pad bits, valid surrogate pairs, no run that encodes printable ASCII, every
 * run closed by '-'. out gets a NUL-terminated string (cap bytes, NUL included).
 * Back-to-back runs are accepted; no unit below U+0080 may be encoded. (The decoder
 * is vault/mutf7.c, which imapd uses too.) -EPROTO invalid, -E2BIG out too small. */
int import_mutf7_to_utf8(const char *in, size_t len, char *out, size_t cap);
/* A folder name component as Dovecot stores it on disk: modified UTF-7, or (Dovecot's
 * UTF-8 mailbox_list option) UTF-8 with no '&', taken as is when it is valid UTF-8. */
int import_name_decode(const char *in, size_t len, char *out, size_t cap);
/* Strict UTF-8 check (no overlongs, surrogates or code points past U+10FFFF). */
bool import_utf8_valid(const uint8_t *p, size_t n);

/* ---- Maildir file names -----------------------------------------------------------
 * "UNIQUE[:2,INFO]": INFO letters (sorted, Maildir spec) D draft, F flagged, P passed
 * (keyword $Forwarded), R replied, S seen, T trashed; Dovecot's a..z are keyword
 * indexes into the folder's dovecot-keywords file. Unknown letters are ignored. */
struct import_maildir_name {
	size_t base_len;	/* bytes of UNIQUE (the stable part: flags change the rest) */
	uint64_t timestamp;	/* leading decimal digits of UNIQUE (delivery time), 0 none */
	uint32_t flags;		/* enum vault_flag */
	bool passed;		/* P: $Forwarded */
	uint32_t keyword_bits;	/* bit i: Dovecot keyword i ('a' + i) */
};
/* -EPROTO for an empty name or one starting with '.' (not a message file). */
int import_maildir_name(const char *name, size_t len, struct import_maildir_name *out);

/* One line (without its LF) of Dovecot's dovecot-keywords file: "INDEX NAME".
 * *name_out points into line. -EPROTO if malformed or INDEX > 25 (a..z only). */
int import_keywords_line(const char *line, size_t len, unsigned *index_out,
    const char **name_out, size_t *name_len_out);
/* One record line (without its LF) of dovecot-uidlist. version is the number at the
 * start of the header line (1: "UID FILENAME"; 2, 3: "UID [EXT...] :FILENAME").
 * *name_out points into line (the file name, possibly with its ":2," info).
 * -EPROTO if malformed. */
int import_uidlist_line(unsigned version, const char *line, size_t len, uint32_t *uid_out,
    const char **name_out, size_t *name_len_out);

/* RFC 9051 flag-keyword (an atom, no '\'), at most 128 bytes. */
bool import_keyword_valid(const char *s, size_t len);

/* ---- mbox --------------------------------------------------------------------------
 * The date of a "From " separator line (without its line end): "From SENDER DATE" with
 * DATE as ctime(3) writes it ("Thu Jan  1 00:00:00 2015"), seconds optional, a
 * numeric zone ("+0200") or UTC/GMT/UT allowed after the time or after the year. No
 * zone: local time, as mutt and Dovecot read it. -EPROTO if it is not a From line. */
int import_mbox_from_line(const char *line, size_t len, int64_t *time_out, int32_t *tz_out);

#define IMPORT_FROM_LINE_MAX 1024	/* longer "From " lines are body text */

struct import_mbox_msg {
	uint64_t offset;		/* byte offset of its From line in the file */
	uint64_t index;			/* 0-based position in the file */
	int64_t date;			/* from the From line (seconds UTC) */
	int32_t tz;			/* minutes east of UTC */
};
struct import_mbox_ops {
	int (*begin)(void *arg, const struct import_mbox_msg *m);
	int (*data)(void *arg, const uint8_t *p, size_t n);	/* message bytes, unquoted */
	int (*end)(void *arg);
};
/* Splits an mbox fed in pieces of any size. A separator is a line that starts with
 * "From " and carries a valid date (import_mbox_from_line); the empty line before it
 * belongs to the separator, not to the message (also the last one at the end). Lines
 * matching ">+From " lose one '>' (mboxrd; an mboxo writer quoted only "From ", which
 * this also undoes). Line ends are passed through unchanged (LF or CRLF). A callback's
 * negative return stops the parser and is returned. */
struct import_mbox {
	const struct import_mbox_ops *ops;
	void *arg;
	uint64_t pos;			/* bytes fed so far */
	uint64_t line_off;		/* offset of the line being buffered */
	uint64_t count;			/* messages begun */
	int state;
	size_t gt;			/* '>' seen at the start of this line */
	uint8_t line[IMPORT_FROM_LINE_MAX];
	size_t linelen;
	int pending_blank;		/* 0 none, 1 "\n", 2 "\r\n": maybe the separator's */
	bool in_msg;
	int err;			/* sticky */
};
void import_mbox_init(struct import_mbox *m, const struct import_mbox_ops *ops, void *arg);
/* -EPROTO (once) if text precedes the first From line: not an mbox. */
int import_mbox_feed(struct import_mbox *m, const uint8_t *p, size_t n);
/* End of input: ends the last message. */
int import_mbox_finish(struct import_mbox *m);

/* Scans a message's header (up to the first empty line) for mbox state fields:
 * Status: (R \Seen; O old: nothing), X-Status: (A \Answered, F \Flagged, D \Deleted,
 * T \Draft) and X-Keywords: (space-separated keywords, as Dovecot and mutt write
 * them; each valid one is passed to kw). The fields stay in the message. */
int import_mbox_status(const uint8_t *msg, size_t len, uint32_t *flags_out,
    int (*kw)(void *arg, const char *name, size_t n), void *arg);
