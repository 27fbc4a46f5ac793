/* imap-msg: the message layer behind FETCH and SEARCH. An RFC 5322 + MIME
 * (RFC 2045-2049) parser over one complete message held in memory, and generators for
 * the IMAP representations of RFC 9051 section 7.5.2 (ENVELOPE, BODY, BODYSTRUCTURE,
 * BODY[section], BINARY[section], BINARY.SIZE) plus the helpers SEARCH and SORT need.
 *
 * Everything here is a pure function over bytes: no I/O, no global state, bounded work
 * (every scan is linear in the input times at most the nesting depth; the nesting depth,
 * the number of parts and the header bytes examined per header block are limited by
 * struct imap_msg_limits). The input may contain NUL, bare LF, CR without LF, 8-bit
 * bytes, and may lack the final newline.
 *
 * Reference behaviour: RFC 9051 and RFC 3501; where the RFCs leave room, Dovecot 2.3's
 * choices (so clients see what they already see from Dovecot). Deliberate differences
 * are listed at the end of this comment.
 *
 * Sizes and line counts are those of the bytes as given. Dovecot reports sizes as if
 * every bare LF were CRLF; IMAP requires CRLF on the wire, so the store should keep
 * messages CRLF-normalised (imap_msg_crlf_normalize() at delivery/APPEND), and then the
 * two agree.
 *
 * Strings taken from headers have NUL bytes replaced by U+FFFD (as Dovecot does), so
 * they are ordinary C strings. IMAP output follows RFC 9051 string rules: a quoted
 * string when every byte is 7-bit and not CR/LF/NUL (with \" and \\ escaped), else a
 * literal {n}CRLF...; NIL for an absent value.
 *
 * Checked against Dovecot 2.3.19 FETCH output (ENVELOPE, BODY, BODYSTRUCTURE, every
 * BODY[part], [part.MIME], [part.HEADER], [part.TEXT], HEADER.FIELDS, BINARY) on
 * tests/data/msg, tests/corpus, Python's email corpus and ~550 fuzzer-made messages:
 * the values agree except for these deliberate differences:
 *  - message/global (RFC 6532) is an encapsulated message like message/rfc822, as
 *    RFC 9051's media-message allows ("RFC822" / "GLOBAL"); Dovecot 2.3 treats it as
 *    an opaque part.
 *  - A local part with white space after a dot ("first . last @ example.com") is
 *    read as RFC 5322 obs-local-part says (first.last); Dovecot gives up on the
 *    address and on the rest of the field.
 *  - HEADER.FIELDS of a header without a blank line gets no blank line appended, as
 *    RFC 9051 6.4.5 says; Dovecot appends one for HEADER.FIELDS (not for .NOT).
 *  - BINARY follows what BODYSTRUCTURE shows: a non-MIME part's
 *    Content-Transfer-Encoding is ignored (Dovecot decodes it in BINARY while
 *    BODYSTRUCTURE says "7bit"); an encoded message/rfc822 part is decoded
 *    (Dovecot answers an empty string).
 *  - Where Dovecot switches a humanised string (subject, display name) to a literal
 *    merely because it collapsed whitespace, we keep a quoted string when the result
 *    is quotable; and a string with '"' or '\' is quoted with escapes, not a literal.
 *    Same values, different encoding.
 *  - Sizes count the bytes as stored (see above).
 *  - The default nesting limit is 64 levels (Dovecot: 100); deeper parts are opaque.
 *
 * The output buffer is this module's own struct imap_mbuf (imap-args.h's imap_buf came
 * later; the engine already uses imap_mbuf with these functions).
 *
 * Thread-safety: a parsed struct imap_msg is read-only after imap_msg_parse() and may
 * be read from several threads; everything else works on caller-owned buffers. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* ------------------------------------------------------------------------------ */
/* Output buffer                                                                  */

/* A growable byte buffer with a hard cap. Appends never fail at the call site: the
 * first failure (-ENOMEM, or -E2BIG when len would pass max) is remembered in err, and
 * every later append is ignored. Functions that fill an imap_mbuf return that error.
 * d is always NUL-terminated after a successful append (the NUL is not counted). */
struct imap_mbuf {
	uint8_t *d;
	size_t len;
	size_t cap;
	size_t max;
	int err;
};

#define IMAP_MBUF_DEFAULT_MAX ((size_t)256 << 20)

/* max 0 means IMAP_MBUF_DEFAULT_MAX. Allocates nothing. */
void imap_mbuf_init(struct imap_mbuf *b, size_t max);
/* Frees the storage; b can be reused after imap_mbuf_init(). */
void imap_mbuf_release(struct imap_mbuf *b);
/* len = 0, err = 0, keeps the storage. */
void imap_mbuf_reset(struct imap_mbuf *b);
void imap_mbuf_put(struct imap_mbuf *b, const void *p, size_t n);
void imap_mbuf_putc(struct imap_mbuf *b, uint8_t c);
void imap_mbuf_puts(struct imap_mbuf *b, const char *s);
void imap_mbuf_put_u64(struct imap_mbuf *b, uint64_t v);	/* decimal */

/* IMAP string output (RFC 9051 section 4.3). s == NULL writes NIL. */
void imap_mbuf_put_nstring(struct imap_mbuf *b, const char *s, size_t n);
/* Like put_nstring, but first removes CR and LF (header unfolding). */
void imap_mbuf_put_nstring_nolf(struct imap_mbuf *b, const char *s, size_t n);
/* For text meant for humans (subject, display names): runs of SP/HT/CR/LF become one
 * space, leading and trailing white space is dropped. */
void imap_mbuf_put_nstring_human(struct imap_mbuf *b, const char *s, size_t n);

/* A literal {n}CRLF + data for BODY[...] output. A literal (unlike BINARY's literal8)
 * may not contain NUL (RFC 9051 section 4.3), so NUL bytes are sent as 0x80, as
 * Dovecot does; the length is unchanged. */
void imap_mbuf_put_literal(struct imap_mbuf *b, const void *data, size_t n);

/* ------------------------------------------------------------------------------ */
/* Parsing                                                                        */

struct imap_msg_limits {
	uint32_t max_parts;	   /* MIME parts in all, the message itself included */
	uint32_t max_depth;	   /* nesting of multipart and message/rfc822 parts */
	uint32_t max_header_bytes; /* bytes of one header block whose fields are examined
				      (the block's extent is always found in full) */
};

/* Defaults: 1000 parts, depth 64, 1 MiB of header per block. Hard caps: 100000 parts,
 * depth 128 (a larger request is lowered to the cap). */
void imap_msg_limits_default(struct imap_msg_limits *lim);

enum imap_msg_cte {
	IMAP_MSG_CTE_NONE = 0,	/* absent or unparsable: 7bit */
	IMAP_MSG_CTE_7BIT,
	IMAP_MSG_CTE_8BIT,
	IMAP_MSG_CTE_BINARY,
	IMAP_MSG_CTE_BASE64,
	IMAP_MSG_CTE_QP,
	IMAP_MSG_CTE_UNKNOWN,	/* anything else, e.g. x-uuencode: BINARY answers
				   NO [UNKNOWN-CTE] (RFC 3516 section 4.3) */
};

/* Part flags. */
#define IMAP_MSG_PART_MULTIPART	0x0001u	/* Content-Type multipart/... */
#define IMAP_MSG_PART_MESSAGE	0x0002u	/* encapsulates a message: children is its root */
#define IMAP_MSG_PART_TEXT	0x0004u	/* text/... or defaulted to text/plain */
#define IMAP_MSG_PART_IS_MIME	0x0008u	/* Content-* fields apply (RFC 2045 section 4) */
#define IMAP_MSG_PART_DIGEST	0x0010u	/* multipart/digest: children default message/rfc822 */
#define IMAP_MSG_PART_MSG_ROOT	0x0020u	/* the header is a message header: the top-level
					   part or the child of a MESSAGE part */
#define IMAP_MSG_PART_LIMITED	0x0080u	/* a limit stopped the parse of this part */

struct imap_msg_param {
	const char *name;	/* as written (RFC 2231 continuations merged, see below) */
	const char *value;	/* unquoted */
};

/* One MIME part. The tree is read-only and lives as long as its struct imap_msg.
 * Offsets are into the buffer given to imap_msg_parse(). The header range includes the
 * blank line that ends it (when there is one); the body follows the header directly.
 * The [CR]LF before a multipart boundary line belongs to the boundary (RFC 2046 section
 * 5.1.1), so it is in neither the part before it nor the part after it. */
struct imap_msg_part {
	struct imap_msg_part *parent;
	struct imap_msg_part *next;	/* next sibling */
	struct imap_msg_part *children;	/* MULTIPART: the parts; MESSAGE: the one
					   encapsulated message */
	uint32_t nchildren;
	uint32_t index;			/* 1-based place among its siblings */
	uint32_t depth;			/* 0 for the message itself */
	uint32_t flags;			/* IMAP_MSG_PART_* */
	size_t hdr_off, hdr_len;
	size_t body_off, body_len;
	uint32_t body_lines;		/* LF count in the body (TEXT and MESSAGE parts) */

	/* Content-* fields, NULL when absent or when the part is not MIME. As in
	 * Dovecot, the first occurrence of each field counts, except that for
	 * Content-Transfer-Encoding and Content-Language the first one that parses
	 * counts, and a Content-Disposition without parameters lets a later one in. */
	const char *type, *subtype;	/* as written; type NULL: no Content-Type, the
					   default applies (text/plain, or message/rfc822
					   inside multipart/digest). subtype "" if missing */
	struct imap_msg_param *params;	/* Content-Type parameters, in order: plain ones
					   first, then merged RFC 2231 ones sorted by
					   name. "name*" values keep charset'lang'%XX */
	uint32_t nparams;
	const char *cte;		/* Content-Transfer-Encoding token as written */
	enum imap_msg_cte cte_kind;
	const char *id;			/* Content-ID, raw (unfolded) */
	const char *description;	/* Content-Description, raw (unfolded) */
	const char *md5;		/* Content-MD5 */
	const char *location;		/* Content-Location */
	const char *disposition;	/* Content-Disposition token */
	struct imap_msg_param *disp_params;
	uint32_t ndisp_params;
	const char **languages;		/* Content-Language tags */
	uint32_t nlanguages;
	const char *boundary;		/* MULTIPART: the boundary in use, else NULL */
};

struct imap_msg;

/* Message flags (imap_msg_flags()). */
#define IMAP_MSG_F_LIMITED	0x0001u	/* some limit was reached; see part flags */
#define IMAP_MSG_F_HAS_NUL	0x0002u	/* NUL bytes somewhere */
#define IMAP_MSG_F_8BIT_HEADER	0x0004u	/* 8-bit bytes in some header */
#define IMAP_MSG_F_BARE_LF	0x0008u	/* some line ends in LF without CR */

/* Parses msg[0..len). lim NULL means the defaults. The result borrows msg: the caller
 * keeps those bytes alive and unchanged until imap_msg_free(). Never fails on content
 * (every byte sequence is some message); a limit being reached degrades gracefully
 * (deeper parts become opaque leaves, parts past max_parts are left out, header bytes
 * past max_header_bytes are not examined) and sets IMAP_MSG_F_LIMITED.
 * 0, or -ENOMEM, -EINVAL (msg NULL with len > 0, or out NULL). */
int imap_msg_parse(const uint8_t *msg, size_t len, const struct imap_msg_limits *lim,
    struct imap_msg **out);
void imap_msg_free(struct imap_msg **m);	/* accepts NULL; NULLs *m */

const struct imap_msg_part *imap_msg_root(const struct imap_msg *m);
uint32_t imap_msg_flags(const struct imap_msg *m);
uint32_t imap_msg_part_count(const struct imap_msg *m);
const uint8_t *imap_msg_data(const struct imap_msg *m);
size_t imap_msg_size(const struct imap_msg *m);

/* Depth-first (pre-order) traversal: the part after p, or NULL at the end. */
const struct imap_msg_part *imap_msg_part_next(const struct imap_msg_part *p);

/* Finds the part a numeric section path names (RFC 9051 section 6.4.5), the way
 * BODY[path] sees it: in a non-multipart message part 1 is the message itself; a path
 * continues into a message/rfc822 part's encapsulated message. Like Dovecot, a final
 * "1" below a part that is neither multipart nor message names that part itself
 * ("2.1.1" is "2.1" when 2.1 is a leaf), one level deep only. depth 0 gives the root.
 * NULL if there is no such part. */
const struct imap_msg_part *imap_msg_find_part(const struct imap_msg *m,
    const uint32_t *path, size_t depth);

/* Writes the section path of p ("1.2.3"; "" for the root) into buf.
 * Returns the length, or -E2BIG if buf (NUL included) is too small. */
int imap_msg_part_path(const struct imap_msg_part *p, char *buf, size_t bufsz);

/* ------------------------------------------------------------------------------ */
/* FETCH representations                                                          */

/* ENVELOPE (RFC 9051 section 7.5.2) of the message whose header is part's: part NULL
 * is the message itself; a MESSAGE part means its encapsulated message. Writes the
 * parenthesised list "(date subject from sender reply-to to cc bcc in-reply-to
 * message-id)". Address lists are parsed per RFC 5322 (groups, quoted strings,
 * comments, obsolete routes); encoded-words are left undecoded; a missing mailbox or
 * host reads MISSING_MAILBOX / MISSING_DOMAIN as in Dovecot. Sender and Reply-To
 * default to From. Several address fields of one kind are concatenated, and for
 * date/subject/in-reply-to/message-id the last field wins (Dovecot).
 * 0, -EINVAL, or the buffer's error. */
int imap_msg_envelope(const struct imap_msg *m, const struct imap_msg_part *part,
    struct imap_mbuf *out);

/* BODYSTRUCTURE (extended true, with the extension data md5, disposition, language,
 * location) or BODY (extended false) of the whole message, as the parenthesised list.
 * 0 or the buffer's error. */
int imap_msg_bodystructure(const struct imap_msg *m, bool extended, struct imap_mbuf *out);

enum imap_msg_section_spec {
	IMAP_MSG_SEC_NONE = 0,		/* BODY[path]: the part's body (whole msg at depth 0) */
	IMAP_MSG_SEC_HEADER,
	IMAP_MSG_SEC_HEADER_FIELDS,
	IMAP_MSG_SEC_HEADER_FIELDS_NOT,
	IMAP_MSG_SEC_TEXT,
	IMAP_MSG_SEC_MIME,		/* only with depth >= 1 */
};

/* BODY[section] (RFC 9051 section 6.4.5) before any <partial>.
 * path/depth: the part numbers (depth 0: the message itself). HEADER, TEXT and the
 * HEADER.FIELDS forms apply to the message itself, or to a message/rfc822 part's
 * encapsulated message; on any other part they give the empty string (Dovecot).
 * MIME gives the part's own header (for part 1 of a non-multipart message: the
 * message header). A part that does not exist gives the empty string.
 * Returns 0 with the result being msg[*off_out .. *off_out + *len_out), or 1 with the
 * result built in `built` (HEADER.FIELDS / .NOT: the matching fields as written, with
 * their folding, names compared case-insensitively, then CRLF for the blank line
 * unless the header has none: RFC 9051 6.4.5 "except in the case of a message that
 * has no body and no blank line"). The bytes may contain NUL: send them with
 * imap_mbuf_put_literal().
 * -EINVAL: MIME at depth 0, a 0 in path, fields NULL with nfields > 0; or built's error. */
int imap_msg_section(const struct imap_msg *m, const uint32_t *path, size_t depth,
    enum imap_msg_section_spec spec, const char *const *fields, size_t nfields,
    struct imap_mbuf *built, size_t *off_out, size_t *len_out);

/* BINARY[path] (RFC 3516): the part's body with its Content-Transfer-Encoding removed
 * (base64 per RFC 2045 section 6.8, characters outside the alphabet ignored;
 * quoted-printable per section 6.7; 7bit/8bit/binary/absent unchanged). The encoding
 * is the one BODYSTRUCTURE shows: Content-Transfer-Encoding of a non-MIME part is
 * ignored (Dovecot decodes it in BINARY while BODYSTRUCTURE says 7bit).
 * depth 0 (the whole message) and a part with parts (multipart, message/rfc822 that
 * is not itself encoded) give the subtree with every leaf decoded, as Dovecot does
 * (RFC 3516 4.2): an encoded part's Content-Transfer-Encoding fields are replaced by
 * "Content-Transfer-Encoding: binary" at the end of its header, and the rest
 * (headers, boundaries, identity-encoded bodies) has its bare LFs made CRLF.
 * A part that does not exist gives the empty string.
 * 0, -ENOTSUP for an unknown encoding anywhere in it (NO [UNKNOWN-CTE]), -EINVAL,
 * -E2BIG (nesting), or out's error. */
int imap_msg_binary(const struct imap_msg *m, const uint32_t *path, size_t depth,
    struct imap_mbuf *out);
/* BINARY.SIZE[path]: the length BINARY[path] would have; counted without output for a
 * leaf, built in a temporary buffer for a subtree. 0, -ENOTSUP, -EINVAL, -E2BIG,
 * -ENOMEM. */
int imap_msg_binary_size(const struct imap_msg *m, const uint32_t *path, size_t depth,
    uint64_t *size_out);
/* The decoded body of one part (the building block of the two above). */
int imap_msg_decode_binary(const struct imap_msg *m, const struct imap_msg_part *p,
    struct imap_mbuf *out);

/* ------------------------------------------------------------------------------ */
/* Headers, dates, decoding                                                       */

#define IMAP_MSG_HDR_RAW	0x0u	/* value as written, folding kept */
#define IMAP_MSG_HDR_UNFOLD	0x1u	/* CR and LF removed (RFC 5322 section 2.2.3) */
#define IMAP_MSG_HDR_DECODE	0x3u	/* unfolded, RFC 2047 decoded, UTF-8 */

/* The value of the idx'th (0-based) field called `name` (case-insensitive) in part's
 * header (part NULL: the message header), leading white space removed. Appends to out.
 * 0, -ENOENT if there is no such field, -EINVAL, or out's error. */
int imap_msg_header_get(const struct imap_msg *m, const struct imap_msg_part *part,
    const char *name, unsigned idx, unsigned flags, struct imap_mbuf *out);

/* RFC 2047 decoding of a header value to UTF-8: encoded-words in utf-8, us-ascii,
 * iso-8859-1, iso-8859-15, windows-1252 natively, other charsets via iconv(3) (a
 * charset iconv does not know is taken as UTF-8); adjacent encoded-words in one
 * charset are joined before conversion, and the white space between them dropped
 * (RFC 2047 section 6.2); an encoded-word with an unknown encoding stays as written;
 * CR/LF removed; invalid UTF-8 and NUL become U+FFFD. Appends to out; returns out's
 * error. The work is linear in n whatever the input. */
int imap_msg_decode_header(const char *s, size_t n, struct imap_mbuf *out);

/* Converts n bytes in `charset` to UTF-8 (NULL or unknown charset: treated as UTF-8
 * with invalid sequences replaced by U+FFFD; NUL becomes U+FFFD). iconv(3) may load
 * gconv modules from disk the first time it meets a charset. Appends; returns out's
 * error. */
int imap_msg_charset_to_utf8(const char *charset, const uint8_t *s, size_t n,
    struct imap_mbuf *out);

/* RFC 2231 decoding of a parameter value: for a "name*" parameter,
 * charset'lang'%XX..., converted to UTF-8; otherwise the value, RFC 2047-decoded
 * (common in filenames though not allowed there). Looks `name` up in params (plain or
 * starred form). 0, -ENOENT, or out's error. */
int imap_msg_param_decoded(const struct imap_msg_param *params, uint32_t nparams,
    const char *name, struct imap_mbuf *out);

/* RFC 5322 section 3.3 date-time, with the obsolete forms of section 4.3: two- and
 * three-digit years, missing seconds, named zones (UT, GMT, EST...; military letters
 * count as +0000), comments and white space anywhere, "1-Jan-2024". A missing zone is
 * +0000; a zone past +-23:59 is an error. *t_out is the UTC time, *tz_min_out the
 * zone offset in minutes. 0, -EPROTO, -EINVAL. */
int imap_msg_parse_date(const char *s, size_t n, time_t *t_out, int *tz_min_out);
/* The message's Date (the first Date field, as Dovecot's SENT* searches use it).
 * RFC 9051 SENTBEFORE/SENTON/SENTSINCE compare the date only, so callers use
 * imap_msg_date_day(): the day number (days since 1970-01-01) in the sender's zone.
 * 0, -ENOENT (no Date field), -EPROTO (unparsable). */
int imap_msg_date(const struct imap_msg *m, time_t *t_out, int *tz_min_out);
int64_t imap_msg_date_day(time_t t, int tz_min);

/* Rewrites every line ending to CRLF (bare LF -> CRLF; a CR not before LF is kept).
 * Appends to out; returns out's error. For delivery/APPEND so that stored sizes are
 * the IMAP sizes. */
int imap_msg_crlf_normalize(const uint8_t *msg, size_t len, struct imap_mbuf *out);

/* ------------------------------------------------------------------------------ */
/* SEARCH                                                                         */

enum imap_msg_search_scope {
	IMAP_MSG_SEARCH_BODY,	/* SEARCH BODY: text of the body parts */
	IMAP_MSG_SEARCH_TEXT,	/* SEARCH TEXT: headers (decoded) and body */
};

/* Case-insensitive substring search of needle_utf8 (RFC 9051 SEARCH BODY/TEXT). The
 * haystack: every text/... leaf part (and parts defaulting to text/plain) with its
 * transfer encoding removed and its charset converted to UTF-8; the headers of
 * encapsulated messages; for TEXT also the message header. Headers are RFC 2047
 * decoded. Case folding: simple Unicode folding for Latin, Greek, Cyrillic and
 * Armenian letters (a subset of i;unicode-casemap). An empty needle matches.
 * Returns 1 found, 0 not found, -ENOMEM. */
int imap_msg_search_text(const struct imap_msg *m, const char *needle_utf8,
    enum imap_msg_search_scope scope);

/* SEARCH HEADER name needle: 1 if some field `name` of the message header contains
 * needle after RFC 2047 decoding (case-insensitive as above); an empty needle
 * matches any message that has the field. 1, 0 or -ENOMEM. */
int imap_msg_search_header(const struct imap_msg *m, const char *name,
    const char *needle_utf8);

/* The same searches with the needle folded once and scratch buffers kept between
 * messages (SEARCH over a mailbox). A searcher is not thread-safe. */
struct imap_msg_searcher;
/* needle: n bytes of UTF-8 (invalid sequences read as U+FFFD). 0, -ENOMEM, -EINVAL. */
int imap_msg_searcher_new(const char *needle, size_t n, struct imap_msg_searcher **out);
void imap_msg_searcher_free(struct imap_msg_searcher **s);
/* imap_msg_search_text() with this searcher's needle. */
int imap_msg_searcher_text(struct imap_msg_searcher *s, const struct imap_msg *m,
    enum imap_msg_search_scope scope);

enum imap_msg_search_field {
	IMAP_MSG_SEARCH_PLAIN,		/* HEADER, SUBJECT: the decoded field value */
	/* FROM, TO, CC, BCC (RFC 9051 6.4.4: the envelope's address list): the list as
	 * ENVELOPE parses it, written "name <mailbox@host>, ..., group: ...;" with
	 * decoded names (what Dovecot matches) */
	IMAP_MSG_SEARCH_ADDRESS,
};
/* Searches the fields `name` of a raw header block (hdr, len: the top-level header
 * as the cache keeps it, no parse needed). 1, 0, -ENOMEM, -E2BIG, -EINVAL. */
int imap_msg_searcher_header(struct imap_msg_searcher *s, const uint8_t *hdr, size_t len,
    const char *name, enum imap_msg_search_field kind);

/* Folds UTF-8 text for caseless comparison (the folding used by the searches), e.g.
 * to prepare a needle once. Invalid UTF-8 becomes U+FFFD. Appends; out's error. */
int imap_msg_casefold(const char *s, size_t n, struct imap_mbuf *out);

/* ------------------------------------------------------------------------------ */
/* Cache                                                                          */

/* A per-message summary, so FETCH ENVELOPE/BODYSTRUCTURE/BODY/RFC822.SIZE/
 * BINARY.SIZE and SENT* searches need neither the body nor a parse. The blob is
 * opaque to callers (the store seals it); the format is versioned:
 *
 *   magic "SMC" + version 0x01, then big-endian fields:
 *   u32 flags      bit 0: has date; bit 1: date unparsable; bits 8..: IMAP_MSG_F_*<<8
 *   u64 msg_size
 *   i64 date       UTC seconds (0 if none)     i16 tz_min
 *   u32 len + ENVELOPE bytes
 *   u32 len + BODYSTRUCTURE bytes
 *   u32 len + BODY bytes
 *   u32 nparts, then nparts records of 40 bytes in depth-first order:
 *     u32 parent (index of parent record; 0xffffffff for the root)
 *     u32 flags (IMAP_MSG_PART_*)   u8 cte_kind   u8 0   u16 0
 *     u32 hdr_off  u32 hdr_len  u32 body_off  u32 body_len  u32 body_lines
 *     u64 binary_size (decoded body size; UINT64_MAX for an unknown encoding)
 *
 * imap_msg_cache_parse() treats the blob as untrusted: every length is checked
 * against the remaining bytes, parents must precede their children, part ranges must
 * lie inside msg_size and inside their parent, and no byte may be left over. */
#define IMAP_MSG_CACHE_VERSION 1

struct imap_msg_cache_part {
	uint32_t parent;		/* UINT32_MAX for the root */
	uint32_t flags;
	enum imap_msg_cte cte_kind;
	uint32_t hdr_off, hdr_len, body_off, body_len, body_lines;
	uint64_t binary_size;
};

/* A view into a blob: pointers into it, valid while the blob is. */
struct imap_msg_cache {
	uint32_t flags;
	uint64_t msg_size;
	bool has_date;			/* a Date field was parsed */
	int64_t date;
	int tz_min;
	const uint8_t *envelope;
	size_t envelope_len;
	const uint8_t *bodystructure;
	size_t bodystructure_len;
	const uint8_t *body;
	size_t body_len;
	uint32_t nparts;
	const uint8_t *parts_raw;	/* use imap_msg_cache_part() */
};

/* Builds the blob for a parsed message (whose size must be below 4 GiB) into out
 * (appended). 0, -E2BIG, or out's error. */
int imap_msg_cache_build(const struct imap_msg *m, struct imap_mbuf *out);
/* 0, or -EPROTO for anything malformed (nothing in *out is then valid). */
int imap_msg_cache_parse(const uint8_t *blob, size_t len, struct imap_msg_cache *out);
/* Record i (0 <= i < nparts) of a parsed cache. 0 or -EINVAL. */
int imap_msg_cache_part(const struct imap_msg_cache *c, uint32_t i,
    struct imap_msg_cache_part *out);
/* The part a section path names, resolved from the cache like imap_msg_find_part().
 * Returns the record index, or -ENOENT. */
int imap_msg_cache_find_part(const struct imap_msg_cache *c, const uint32_t *path,
    size_t depth);
