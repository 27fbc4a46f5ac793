/* imap-args: parsers for IMAP command arguments over the struct imap_arg trees that
 * imap-parser produces, plus the matching output helpers. Pure functions over bytes:
 * no I/O, no global state, every loop and every recursion bounded.
 *
 * Conventions for every parse function here:
 *   - returns 0 on success; -EPROTO for bad syntax (the server answers BAD) with
 *     *err_out set to a constant English message; -E2BIG over a documented bound;
 *     -ENOMEM; IMAP_ERR_BADCHARSET for an unsupported SEARCH charset.
 *   - err_out may be NULL; it is only written on failure.
 *   - On failure nothing is returned in *out (it is set to NULL / left cleared).
 *   - Strings in results point INTO the command (struct imap_cmd) unless documented as
 *     allocated: they live until imap_cmd_free(), and are NUL-terminated.
 *
 * Grammar references are to RFC 9051 section 9 unless stated. */
#pragma once
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "imap-parser.h"

/* SEARCH CHARSET other than US-ASCII / UTF-8: answer NO [BADCHARSET (UTF-8 US-ASCII)]. */
#define IMAP_ERR_BADCHARSET (-EILSEQ)

/* ------------------------------------------------------------------------------ */
/* Output buffer with a hard cap. data is always NUL-terminated (not counted in len). */

struct imap_buf {
	char *data;
	size_t len;
	size_t cap;	/* allocated, excluding the NUL */
	size_t max;	/* hard cap on len */
};

/* 0 or -ENOMEM. max >= 1. */
int imap_buf_new(size_t max, struct imap_buf **out);
void imap_buf_free(struct imap_buf **b);
void imap_buf_reset(struct imap_buf *b);	/* len = 0 */
/* Appends: 0, -E2BIG if len would exceed max (then nothing is appended), -ENOMEM. */
int imap_buf_add(struct imap_buf *b, const void *p, size_t n);
int imap_buf_addstr(struct imap_buf *b, const char *s);
int imap_buf_printf(struct imap_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Writing strings into responses (RFC 9051 section 4.3).
 * IMAP_WRITE_UTF8: the client enabled UTF8=ACCEPT (RFC 6855), so valid UTF-8 may be
 * sent in a quoted string; otherwise any 8-bit byte forces a literal. */
#define IMAP_WRITE_UTF8 0x1u
/* string: quoted when every byte is printable ASCII (or valid UTF-8 with
 * IMAP_WRITE_UTF8) and len <= 1024, else a literal {n}CRLF. -EINVAL if s contains NUL
 * (a plain literal cannot carry NUL: use imap_write_literal(..., true)). */
int imap_write_string(struct imap_buf *b, const void *s, size_t len, unsigned flags);
/* astring: a bare atom when non-empty, all ASTRING-CHAR but "[" and not "NIL", else
 * string. */
int imap_write_astring(struct imap_buf *b, const void *s, size_t len, unsigned flags);
/* nstring: NIL when s == NULL, else string. */
int imap_write_nstring(struct imap_buf *b, const void *s, size_t len, unsigned flags);
/* {n}CRLF data, or ~{n}CRLF data when literal8 (RFC 3516, for binary content). */
int imap_write_literal(struct imap_buf *b, const void *s, size_t len, bool literal8);

/* ------------------------------------------------------------------------------ */
/* Basic argument accessors. */

/* true when a is an atom equal to kw, ASCII case-insensitively */
bool imap_arg_atom_eq(const struct imap_arg *a, const char *kw);
/* astring: ATOM (made of ASTRING-CHARs), QUOTED, LITERAL, or NIL (as the text "NIL").
 * 0 or -EPROTO (literal8, list, atom with wildcards or a [section] ...). */
int imap_arg_astring(const struct imap_arg *a, const char **s, size_t *len,
    const char **err_out);
/* string: QUOTED or LITERAL. */
int imap_arg_string(const struct imap_arg *a, const char **s, size_t *len,
    const char **err_out);
/* nstring: string or NIL (then *s = NULL, *len = 0). */
int imap_arg_nstring(const struct imap_arg *a, const char **s, size_t *len,
    const char **err_out);
/* list-mailbox (LIST patterns): atom of list-chars (ATOM-CHAR, "%", "*", "]") or string. */
int imap_arg_list_mailbox(const struct imap_arg *a, const char **s, size_t *len,
    const char **err_out);
/* number: 1*DIGIT as an atom, value <= max. */
int imap_arg_number(const struct imap_arg *a, uint64_t max, uint64_t *out,
    const char **err_out);
/* The same over raw text: number (leading zeros allowed) and nz-number (1..2^32-1,
 * no leading zero). */
int imap_parse_number(const char *s, size_t len, uint64_t max, uint64_t *out);
int imap_parse_nz_number(const char *s, size_t len, uint32_t *out);

/* RFC 7162 mod-sequence-value: 1..2^63-1 */
#define IMAP_MODSEQ_MAX 9223372036854775807ull

/* ------------------------------------------------------------------------------ */
/* Sequence sets (RFC 9051 sequence-set, RFC 5182 "$"). */

#define IMAP_SEQ_STAR 0u	/* "*" as a range bound; 0 is never a valid nz-number */

struct imap_seq_range {
	uint32_t lo, hi;	/* as written unless normalized: lo may exceed hi, either
				   may be IMAP_SEQ_STAR */
};

struct imap_seqset {
	bool saved;		/* "$": the saved search result; no ranges */
	bool normalized;	/* ascending, disjoint, non-adjacent, no star, lo <= hi */
	size_t n, cap;
	struct imap_seq_range *r;
};

/* sequence-set = (seq-number / seq-range) ["," sequence-set] / "$". Numbers are
 * nz-number 1..4294967295 (0, leading zeros and overflow rejected); "n:m" in either
 * order; "*" anywhere. Ranges are kept as written. Ranges are bounded by len. */
int imap_seqset_parse(const char *s, size_t len, struct imap_seqset **out,
    const char **err_out);
/* The same on an ATOM argument. */
int imap_arg_seqset(const struct imap_arg *a, struct imap_seqset **out, const char **err_out);
/* An empty set (to build COPYUID/APPENDUID/VANISHED/ESEARCH results). */
int imap_seqset_new(struct imap_seqset **out);
void imap_seqset_free(struct imap_seqset **set);
/* Appends lo:hi (either order, IMAP_SEQ_STAR allowed), merging into the last range
 * when it directly continues it ascending ("1:3" + 4 -> "1:4"), so insertion order is
 * kept as COPYUID needs. Clears normalized. 0, -EINVAL on a saved set, -ENOMEM. */
int imap_seqset_add(struct imap_seqset *set, uint32_t lo, uint32_t hi);
/* Resolves "*" to star (the largest number in use; 0 for an empty mailbox, then "*"
 * matches nothing: ranges with star lose it, "5:*" becomes 1:5 clamped as the RFC's
 * "n:* includes the last message" would, and a lone "*" disappears), sorts and merges.
 * -EINVAL on a saved set. */
int imap_seqset_normalize(struct imap_seqset *set, uint32_t star);
/* n (>= 1) in the set, with "*" meaning star. Binary search when normalized. A saved
 * set contains nothing: the caller substitutes the saved result. */
bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n, uint32_t star);
/* true when a range bound is "*" */
bool imap_seqset_has_star(const struct imap_seqset *set);
/* Number of values (normalized sets only; 0 otherwise). */
uint64_t imap_seqset_count(const struct imap_seqset *set);
/* Iterates each range in stored order, ascending inside a range, "*" as star (a
 * normalized set gives each value once, ascending). Values of 0 are skipped. */
struct imap_seqset_iter {
	const struct imap_seqset *set;
	size_t i;
	uint64_t next, end;
	uint32_t star;
	bool started;
};
void imap_seqset_iter_init(struct imap_seqset_iter *it, const struct imap_seqset *set,
    uint32_t star);
bool imap_seqset_iter_next(struct imap_seqset_iter *it, uint32_t *n_out);
/* Compact text: "1:3,5,7:*" ("$" for saved), ranges as stored (normalize first for
 * the canonical form). -EINVAL for an empty set (not a valid sequence-set). */
int imap_seqset_format(const struct imap_seqset *set, struct imap_buf *b);

/* ------------------------------------------------------------------------------ */
/* Dates (RFC 9051 date, date-time). */

struct imap_date {
	int year;	/* 1..9999 */
	int mon;	/* 1..12 */
	int day;	/* 1..31, valid for the month */
};

/* date-text "d-Mon-yyyy" (1 or 2 digit day, month case-insensitive), with or
 * without surrounding double quotes. */
int imap_date_parse(const char *s, size_t len, struct imap_date *out, const char **err_out);
/* The same on an ATOM or QUOTED argument. */
int imap_arg_date(const struct imap_arg *a, struct imap_date *out, const char **err_out);
/* 00:00:00 UTC of that day */
time_t imap_date_to_time(const struct imap_date *d);
/* date-time "dd-Mon-yyyy hh:mm:ss +zzzz" (day " d", "dd" or, leniently, "d"), with or
 * without the quotes: *t_out the instant (UTC), *tz_min_out the zone offset in minutes
 * (east positive). Rejects invalid days, hours >= 24, minutes/seconds >= 60 (a leap
 * second 60 is accepted and counted as 59+1), zones beyond +-23:59. */
int imap_datetime_parse(const char *s, size_t len, time_t *t_out, int *tz_min_out,
    const char **err_out);
#define IMAP_DATETIME_LEN 26
/* "dd-Mon-yyyy hh:mm:ss +zzzz" (no quotes) of t shown in zone tz_min; 0 or -EINVAL
 * (year outside 1..9999 or |tz_min| > 23*60+59). out must have IMAP_DATETIME_LEN+1. */
int imap_datetime_format(time_t t, int tz_min, char *out);

/* ------------------------------------------------------------------------------ */
/* Flags (flag-list), STORE. */

#define IMAP_FLAG_ANSWERED 0x01u
#define IMAP_FLAG_FLAGGED  0x02u
#define IMAP_FLAG_DELETED  0x04u
#define IMAP_FLAG_SEEN     0x08u
#define IMAP_FLAG_DRAFT    0x10u

struct imap_flags {
	unsigned sys;		/* IMAP_FLAG_* */
	const char **kw;	/* keywords (atoms), point into the command; array allocated */
	size_t nkw;
};

/* Parses n flag atoms (e.g. a flag-list's elements): system flags \Answered \Flagged
 * \Deleted \Seen \Draft (case-insensitive) and keywords (atoms). \Recent (cannot be
 * set by clients), other \-flags and non-atoms give -EPROTO. Duplicates are
 * dropped (keywords compared case-insensitively). out is cleared first; release
 * with imap_flags_clear(). */
int imap_flags_parse(const struct imap_arg *args, size_t n, struct imap_flags *out,
    const char **err_out);
void imap_flags_clear(struct imap_flags *f);

enum imap_store_op { IMAP_STORE_REPLACE, IMAP_STORE_ADD, IMAP_STORE_REMOVE };

struct imap_store {
	struct imap_seqset *set;
	enum imap_store_op op;
	bool silent;
	struct imap_flags flags;
	bool unchangedsince_set;	/* RFC 7162 (UNCHANGEDSINCE n) */
	uint64_t unchangedsince;	/* 0..2^63-1 */
};

/* STORE / UID STORE arguments: sequence-set [SP "(" UNCHANGEDSINCE n ")"]
 * SP [+|-]FLAGS[.SILENT] SP (flag-list / flag *(SP flag)). */
int imap_store_parse(const struct imap_arg *args, size_t nargs, struct imap_store **out,
    const char **err_out);
void imap_store_free(struct imap_store **s);

/* ------------------------------------------------------------------------------ */
/* FETCH. */

#define IMAP_FETCH_FLAGS	 (1u << 0)
#define IMAP_FETCH_UID		 (1u << 1)
#define IMAP_FETCH_INTERNALDATE	 (1u << 2)
#define IMAP_FETCH_RFC822_SIZE	 (1u << 3)
#define IMAP_FETCH_ENVELOPE	 (1u << 4)
#define IMAP_FETCH_BODY		 (1u << 5)	/* BODY without a section */
#define IMAP_FETCH_BODYSTRUCTURE (1u << 6)
#define IMAP_FETCH_RFC822	 (1u << 7)
#define IMAP_FETCH_RFC822_HEADER (1u << 8)
#define IMAP_FETCH_RFC822_TEXT	 (1u << 9)
#define IMAP_FETCH_MODSEQ	 (1u << 10)	/* RFC 7162 */
#define IMAP_FETCH_EMAILID	 (1u << 11)	/* RFC 8474 */
#define IMAP_FETCH_THREADID	 (1u << 12)	/* RFC 8474 */
#define IMAP_FETCH_SAVEDATE	 (1u << 13)	/* RFC 8514 */
#define IMAP_FETCH_BINARY_SIZE	 (1u << 14)	/* at least one BINARY.SIZE[...] */
#define IMAP_FETCH_SECTIONS	 (1u << 15)	/* at least one BODY[..]/BINARY[..] */

enum imap_section_kind {
	IMAP_SECTION_BODY,		/* BODY[...] / BODY.PEEK[...] */
	IMAP_SECTION_BINARY,		/* BINARY[...] / BINARY.PEEK[...] (RFC 3516) */
	IMAP_SECTION_BINARY_SIZE,	/* BINARY.SIZE[...] */
};

enum imap_section_spec {
	IMAP_SPEC_NONE,			/* BODY[] or BODY[1.2] */
	IMAP_SPEC_HEADER,
	IMAP_SPEC_HEADER_FIELDS,
	IMAP_SPEC_HEADER_FIELDS_NOT,
	IMAP_SPEC_TEXT,
	IMAP_SPEC_MIME,			/* only after a part number */
};

#define IMAP_SECTION_MAX_PARTS 32
#define IMAP_SECTION_MAX_FIELDS 256
#define IMAP_FETCH_MAX_SECTIONS 256

struct imap_fetch_section {
	enum imap_section_kind kind;
	bool peek;
	uint32_t part[IMAP_SECTION_MAX_PARTS];	/* "1.2.3" -> {1,2,3} */
	unsigned nparts;
	enum imap_section_spec spec;
	char **fields;		/* HEADER.FIELDS[.NOT]: names, unquoted, allocated */
	size_t nfields;
	bool partial;		/* <origin.length> */
	uint64_t origin;	/* 0..2^63-1 */
	uint64_t length;	/* 1..2^63-1 */
	/* What the FETCH response must name this item (RFC 9051 7.5.2), allocated:
	 * ".PEEK" dropped, keywords uppercased, field names as sent, and for a partial
	 * only the origin: BODY.PEEK[header.fields (From)]<0.2048> -> 
	 * "BODY[HEADER.FIELDS (From)]<0>". */
	char *label;
};

struct imap_fetch {
	struct imap_seqset *set;
	uint32_t items;			/* IMAP_FETCH_*; ALL/FAST/FULL expanded */
	struct imap_fetch_section *sections;
	size_t nsections;
	/* RFC 7162 fetch modifiers */
	bool changedsince_set;		/* implies IMAP_FETCH_MODSEQ (set in items) */
	uint64_t changedsince;		/* 1..2^63-1 */
	bool vanished;			/* only with CHANGEDSINCE (checked); the server
					   must also check UID FETCH + QRESYNC enabled */
	/* RFC 9051 6.4.5: BODY[..]/BINARY[..] without .PEEK, RFC822 and RFC822.TEXT set
	 * \Seen */
	bool sets_seen;
};

/* FETCH / UID FETCH arguments: sequence-set SP ("ALL" / "FULL" / "FAST" / fetch-att /
 * "(" fetch-att *(SP fetch-att) ")") [SP "(" fetch-modifier *(SP fetch-modifier) ")"].
 * At most IMAP_FETCH_MAX_SECTIONS sections (-E2BIG). */
int imap_fetch_parse(const struct imap_arg *args, size_t nargs, struct imap_fetch **out,
    const char **err_out);
void imap_fetch_free(struct imap_fetch **f);

/* ------------------------------------------------------------------------------ */
/* SEARCH (RFC 9051 6.4.4 and RFC 3501 keys, RFC 4731 ESEARCH RETURN, RFC 5182 "$",
 * RFC 7162 MODSEQ, RFC 8514 SAVED*, RFC 8474 EMAILID/THREADID, RFC 5032 OLDER/YOUNGER). */

enum imap_search_type {
	IMAP_SK_AND,		/* children: all must match (a parenthesised group, and
				   the top level) */
	IMAP_SK_OR,		/* two children */
	IMAP_SK_NOT,		/* one child */
	IMAP_SK_ALL,
	IMAP_SK_SEQSET,		/* set (may be saved "$") */
	IMAP_SK_UID,		/* set (may be saved "$") */
	IMAP_SK_ANSWERED, IMAP_SK_DELETED, IMAP_SK_DRAFT, IMAP_SK_FLAGGED, IMAP_SK_SEEN,
	IMAP_SK_RECENT, IMAP_SK_NEW, IMAP_SK_OLD,
	IMAP_SK_UNANSWERED, IMAP_SK_UNDELETED, IMAP_SK_UNDRAFT, IMAP_SK_UNFLAGGED,
	IMAP_SK_UNSEEN,
	IMAP_SK_KEYWORD, IMAP_SK_UNKEYWORD,	/* str: the keyword */
	IMAP_SK_BCC, IMAP_SK_BODY, IMAP_SK_CC, IMAP_SK_FROM, IMAP_SK_SUBJECT,
	IMAP_SK_TEXT, IMAP_SK_TO,		/* str */
	IMAP_SK_HEADER,				/* field + str */
	IMAP_SK_BEFORE, IMAP_SK_ON, IMAP_SK_SINCE,		/* date */
	IMAP_SK_SENTBEFORE, IMAP_SK_SENTON, IMAP_SK_SENTSINCE,	/* date */
	IMAP_SK_SAVEDBEFORE, IMAP_SK_SAVEDON, IMAP_SK_SAVEDSINCE, /* date */
	IMAP_SK_SAVEDATESUPPORTED,
	IMAP_SK_LARGER, IMAP_SK_SMALLER,	/* num: octets, 0..2^63-1 */
	IMAP_SK_OLDER, IMAP_SK_YOUNGER,		/* num: seconds, nz-number */
	IMAP_SK_MODSEQ,				/* num, optional entry */
	IMAP_SK_EMAILID, IMAP_SK_THREADID,	/* str: objectid */
};

enum imap_modseq_entry_type { IMAP_MODSEQ_ENTRY_NONE, IMAP_MODSEQ_ENTRY_PRIV,
	IMAP_MODSEQ_ENTRY_SHARED, IMAP_MODSEQ_ENTRY_ALL };

struct imap_search_key {
	enum imap_search_type type;
	const char *str;	/* string keys, KEYWORD, EMAILID/THREADID, HEADER value */
	size_t len;
	const char *field;	/* HEADER: field name */
	size_t field_len;
	uint64_t num;		/* LARGER SMALLER OLDER YOUNGER MODSEQ */
	struct imap_date date;	/* date keys */
	time_t day;		/* date keys: 00:00 UTC of date */
	struct imap_seqset *set; /* SEQSET, UID */
	/* MODSEQ "/flags/\Seen" all n: entry (e.g. "/flags/\Seen"), type */
	const char *entry;
	enum imap_modseq_entry_type entry_type;
	struct imap_search_key *child;	/* AND/OR/NOT: first child */
	struct imap_search_key *next;	/* next sibling */
};

#define IMAP_SEARCH_RET_MIN   0x01u
#define IMAP_SEARCH_RET_MAX   0x02u
#define IMAP_SEARCH_RET_ALL   0x04u
#define IMAP_SEARCH_RET_COUNT 0x08u
#define IMAP_SEARCH_RET_SAVE  0x10u

#define IMAP_SEARCH_MAX_DEPTH 64	/* nesting of (), NOT and OR */
#define IMAP_SEARCH_MAX_KEYS 10000

enum imap_charset { IMAP_CHARSET_DEFAULT, IMAP_CHARSET_US_ASCII, IMAP_CHARSET_UTF8 };

struct imap_search {
	struct imap_search_key *root;	/* IMAP_SK_AND of the top-level keys */
	enum imap_charset charset;	/* DEFAULT when no CHARSET was given */
	bool return_given;		/* RETURN (...) present: answer with ESEARCH */
	unsigned return_opts;		/* IMAP_SEARCH_RET_*; "RETURN ()" means ALL */
	bool uses_saved;		/* "$" appears (RFC 5182) */
	bool uses_modseq;		/* MODSEQ key (RFC 7162: respond with (MODSEQ n)) */
	size_t nkeys;
	void *pool_;			/* private */
};

/* SEARCH / UID SEARCH arguments: [RETURN (opts)] [CHARSET cs] key *(SP key).
 * -E2BIG beyond IMAP_SEARCH_MAX_DEPTH or IMAP_SEARCH_MAX_KEYS;
 * IMAP_ERR_BADCHARSET when the charset is not US-ASCII or UTF-8. */
int imap_search_parse(const struct imap_arg *args, size_t nargs, struct imap_search **out,
    const char **err_out);
void imap_search_free(struct imap_search **s);

/* ------------------------------------------------------------------------------ */
/* STATUS, LIST, SELECT/EXAMINE, APPEND. */

#define IMAP_STATUS_MESSAGES	  (1u << 0)
#define IMAP_STATUS_UIDNEXT	  (1u << 1)
#define IMAP_STATUS_UIDVALIDITY	  (1u << 2)
#define IMAP_STATUS_UNSEEN	  (1u << 3)
#define IMAP_STATUS_DELETED	  (1u << 4)
#define IMAP_STATUS_SIZE	  (1u << 5)
#define IMAP_STATUS_RECENT	  (1u << 6)
#define IMAP_STATUS_HIGHESTMODSEQ (1u << 7)
#define IMAP_STATUS_APPENDLIMIT	  (1u << 8)
#define IMAP_STATUS_MAILBOXID	  (1u << 9)

/* "(" status-att *(SP status-att) ")" (non-empty list) -> IMAP_STATUS_* mask. */
int imap_status_items_parse(const struct imap_arg *list, unsigned *items_out,
    const char **err_out);

#define IMAP_LIST_SEL_SUBSCRIBED     0x1u
#define IMAP_LIST_SEL_REMOTE	     0x2u
#define IMAP_LIST_SEL_RECURSIVEMATCH 0x4u
#define IMAP_LIST_SEL_SPECIAL_USE    0x8u
#define IMAP_LIST_RET_SUBSCRIBED     0x1u
#define IMAP_LIST_RET_CHILDREN	     0x2u
#define IMAP_LIST_RET_SPECIAL_USE    0x4u
#define IMAP_LIST_RET_STATUS	     0x8u
#define IMAP_LIST_MAX_PATTERNS 64

struct imap_list_pattern {
	const char *s;		/* raw (modified UTF-7 or UTF-8), points into the command */
	size_t len;
};

struct imap_list_args {
	bool extended;		/* RFC 5258 syntax was used (select options, pattern
				   list or RETURN): answer accordingly */
	unsigned select;	/* IMAP_LIST_SEL_* */
	unsigned ret;		/* IMAP_LIST_RET_* */
	unsigned status_items;	/* IMAP_STATUS_* for RETURN (STATUS (...)) (RFC 5819) */
	const char *ref;	/* reference name, raw */
	size_t ref_len;
	struct imap_list_pattern *patterns;	/* allocated array, >= 1 entries */
	size_t npatterns;
};

/* LIST arguments (also LSUB's "ref pattern", then extended stays false):
 * [select-opts SP] reference SP (list-mailbox / "(" list-mailbox *(SP ...) ")")
 * [SP RETURN (opts)]. RECURSIVEMATCH without a base option and unknown options
 * are -EPROTO (RFC 5258 section 3). */
int imap_list_parse(const struct imap_arg *args, size_t nargs, struct imap_list_args **out,
    const char **err_out);
void imap_list_args_free(struct imap_list_args **l);

/* Does name match the LIST pattern? "*" matches anything, "%" anything but delim
 * (delim 0: no hierarchy, "%" = "*"). Case-sensitive, except that the first five
 * characters of a name that is INBOX or starts with "INBOX" + delim compare
 * case-insensitively (RFC 9051 5.1: INBOX is case-insensitive). Linear-time NFA,
 * no backtracking. 1 match, 0 no match, -E2BIG pattern over IMAP_LIST_PATTERN_MAX. */
#define IMAP_LIST_PATTERN_MAX 1024
int imap_list_match(const char *pattern, size_t plen, const char *name, size_t nlen,
    char delim);

struct imap_select_params {
	bool condstore;			/* (CONDSTORE), RFC 7162 3.1.8 */
	bool qresync;			/* (QRESYNC (...)), RFC 7162 3.2.5 */
	uint32_t uidvalidity;		/* QRESYNC: nz-number */
	uint64_t modseq;		/* QRESYNC: mod-sequence-value */
	struct imap_seqset *known_uids;	/* QRESYNC, optional, no "*" */
	struct imap_seqset *match_seqs;	/* optional seq-match-data (both or neither) */
	struct imap_seqset *match_uids;
};

/* SELECT / EXAMINE arguments after the mailbox: nothing or
 * "(" select-param *(SP select-param) ")". */
int imap_select_params_parse(const struct imap_arg *args, size_t nargs,
    struct imap_select_params **out, const char **err_out);
void imap_select_params_free(struct imap_select_params **s);

struct imap_append_msg {
	struct imap_flags flags;	/* may be empty */
	bool has_date;
	time_t date;			/* internal date (UTC) */
	int tz_min;
	const char *data;		/* the literal, points into the command */
	size_t len;
	bool binary;			/* sent as literal8 (RFC 3516): may contain NUL */
};

#define IMAP_APPEND_MAX_MSGS 1000

struct imap_append {
	const struct imap_arg *mailbox;	/* use imap_arg_mailbox() */
	struct imap_append_msg *msgs;	/* >= 1 (RFC 3502 MULTIAPPEND: several) */
	size_t nmsgs;
};

/* APPEND arguments: mailbox 1*([SP flag-list] [SP date-time] SP (literal / literal8)).
 * The date-time must be a quoted string. */
int imap_append_parse(const struct imap_arg *args, size_t nargs, struct imap_append **out,
    const char **err_out);
void imap_append_free(struct imap_append **a);

/* ------------------------------------------------------------------------------ */
/* Mailbox names and modified UTF-7 (RFC 3501 5.1.3; imapd/mutf7.c). */

#define IMAP_MAILBOX_NAME_MAX 1024	/* bytes of a decoded (UTF-8) name */

/* Strict UTF-8: no overlongs, no surrogates, <= U+10FFFF. */
bool imap_utf8_valid(const void *s, size_t len);
/* Modified UTF-7 -> UTF-8, appended to out. Strict: only printable ASCII input,
 * "&-" for "&", base64 runs that decode to whole UTF-16 units with zero padding bits,
 * valid surrogate pairs, no encoded printable ASCII, no empty or adjacent runs
 * (so every name has exactly one encoding). -EPROTO, -E2BIG (out's cap), -ENOMEM. */
int imap_mutf7_to_utf8(const char *in, size_t len, struct imap_buf *out,
    const char **err_out);
/* UTF-8 (validated) -> modified UTF-7, appended to out. */
int imap_utf8_to_mutf7(const char *in, size_t len, struct imap_buf *out,
    const char **err_out);

/* A mailbox name from the wire to UTF-8 (allocated, NUL-terminated, caller frees):
 * with utf8 (UTF8=ACCEPT enabled, RFC 6855 section 3) the name must be valid UTF-8,
 * else it must be modified UTF-7 and is decoded. NUL, CR, LF are refused. Any case of
 * "INBOX" becomes "INBOX". -EPROTO, -E2BIG over IMAP_MAILBOX_NAME_MAX, -ENOMEM. */
int imap_mailbox_decode(const char *s, size_t len, bool utf8, char **name_out,
    const char **err_out);
/* The same on an astring argument. */
int imap_arg_mailbox(const struct imap_arg *a, bool utf8, char **name_out,
    const char **err_out);
/* A UTF-8 name for a response: encoded to modified UTF-7 unless utf8, then written
 * as a quoted string (or literal). */
int imap_write_mailbox(struct imap_buf *b, const char *name, size_t len, bool utf8);
