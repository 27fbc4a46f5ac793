/* Internals shared by the imap-msg-*.c files. Not for other modules. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "imap-msg.h"

/* Hard caps on the limits a caller may ask for. */
#define IMAP_MSG_MAX_PARTS_CAP	100000u
#define IMAP_MSG_MAX_DEPTH_CAP	128u
/* Boundaries longer than this are cut, as Dovecot does (RFC 2046 allows 70). */
#define IMAP_MSG_BOUNDARY_MAX	200u

/* Bump allocator: everything of one parsed message is freed at once. */
struct msg_arena_chunk;
struct msg_arena {
	struct msg_arena_chunk *head;
	size_t used, size;	/* of head */
};

void *arena_alloc(struct msg_arena *a, size_t n);	/* zeroed, 8-aligned; NULL on OOM */
void arena_free(struct msg_arena *a);
/* A NUL-terminated copy of s[0..n) with NUL bytes replaced by U+FFFD. */
char *arena_strdup_nul(struct msg_arena *a, const uint8_t *s, size_t n);

struct imap_msg {
	const uint8_t *data;
	size_t len;
	struct imap_msg_part *root;
	uint32_t nparts;
	uint32_t flags;
	struct imap_msg_limits lim;
	struct msg_arena arena;
};

/* Header field iteration over a header block [off, off+len) of m->data, limited to
 * max_header_bytes. A field is a line "name:" plus its continuation lines. */
struct hdr_iter {
	const uint8_t *p, *end;
};
struct hdr_field {
	const uint8_t *name;
	size_t name_len;	/* trailing white space before ':' removed */
	const uint8_t *value;	/* after ':' and leading SP/HT */
	size_t value_len;	/* up to, not including, the final line ending */
	const uint8_t *line;	/* the whole field, continuation lines and final line */
	size_t line_len;	/* ending included */
	bool has_colon;		/* false: a line that is not a field */
};
void hdr_iter_init(struct hdr_iter *it, const struct imap_msg *m,
    const struct imap_msg_part *p);
void hdr_iter_init_raw(struct hdr_iter *it, const uint8_t *p, size_t len);
bool hdr_iter_next(struct hdr_iter *it, struct hdr_field *f);
bool hdr_name_eq(const struct hdr_field *f, const char *name);

/* The part whose header is the message header for ENVELOPE etc.: part itself if it is
 * a message root; a MESSAGE part's child. NULL if neither. */
const struct imap_msg_part *msg_header_part(const struct imap_msg *m,
    const struct imap_msg_part *part);

/* Room for n more bytes (and the NUL): where to write them, or NULL with b->err set.
 * The caller writes at most n bytes, then adds what it wrote to b->len and
 * NUL-terminates. */
uint8_t *mbuf_reserve(struct imap_mbuf *b, size_t n);

/* Unfolded copy of a header value (CR/LF removed, NUL -> U+FFFD), appended. */
void mbuf_put_unfolded(struct imap_mbuf *b, const uint8_t *s, size_t n);

/* Writes an address list (RFC 5322 address-list) as IMAP address structures, without
 * the outer parentheses. Returns the number of addresses written. */
size_t addr_write_list(struct imap_mbuf *b, const uint8_t *s, size_t n);

/* The same address list as text for SEARCH FROM/TO/CC/BCC (RFC 9051 6.4.4: the
 * envelope's field): "name <mailbox@host>, ..., group: ...;", names RFC 2047
 * decoded to UTF-8. Returns the number of list elements. */
size_t addr_write_search(struct imap_mbuf *out, const uint8_t *s, size_t n);

/* Decoding primitives (imap-msg-decode.c). The size_out forms count without output. */
void b64_decode(const uint8_t *s, size_t n, struct imap_mbuf *out, uint64_t *size_out);
void qp_decode(const uint8_t *s, size_t n, bool q_encoding, struct imap_mbuf *out,
    uint64_t *size_out);
/* Appends UTF-8 for s, replacing invalid sequences with U+FFFD. */
void utf8_sanitize(const uint8_t *s, size_t n, struct imap_mbuf *out);
void utf8_put_cp(struct imap_mbuf *out, uint32_t cp);
/* Decodes one UTF-8 sequence at s (n > 0): code point, or U+FFFD consuming 1 byte. */
uint32_t utf8_next(const uint8_t *s, size_t n, size_t *used);

/* Case-insensitive ASCII compare of a byte range with a C string. */
bool ascii_ieq(const uint8_t *s, size_t n, const char *lit);
uint8_t ascii_lower(uint8_t c);

/* Content-Type parameter lookup (case-insensitive name). */
const char *param_get(const struct imap_msg_param *params, uint32_t n, const char *name);

/* True if charset (NULL: none) is read as UTF-8 (UTF-8, US-ASCII and their aliases). */
bool charset_is_utf8(const char *charset);

/* The charset of a text part (Content-Type charset parameter), or NULL. */
const char *part_charset(const struct imap_msg_part *p);

/* RFC 5322 / RFC 2045 lexical scanning (imap-msg-lex.c), with the leniencies mail
 * needs. Return values follow one rule: 1 = done and more input follows, 0 = done at
 * the end of input, -1 = syntax error. */
struct lex {
	const uint8_t *p, *end;
	struct imap_mbuf *comment;	/* if set: the text of the last comment skipped */
};
void lex_init(struct lex *l, const uint8_t *p, size_t n, struct imap_mbuf *comment);
bool lex_is_atext(uint8_t c);
/* Skips SP, HT, CR, LF and (nested) comments. */
int lex_skip_cfws(struct lex *l);
int lex_atom(struct lex *l, struct imap_mbuf *out);	/* 1*atext */
int lex_dot_atom(struct lex *l, struct imap_mbuf *out);	/* allows CFWS around dots */
int lex_local_part_atom(struct lex *l, struct imap_mbuf *out);	/* also "a..b", "a." */
int lex_mime_token(struct lex *l, struct imap_mbuf *out);	/* may be empty */
int lex_quoted(struct lex *l, struct imap_mbuf *out);	/* at '"'; unescaped, unfolded */
int lex_phrase(struct lex *l, struct imap_mbuf *out);	/* words joined by one space */
int lex_domain(struct lex *l, struct imap_mbuf *out);	/* at '@' */

/* Content-Type / Content-Disposition parameters after the value (RFC 2045 section 5.1),
 * RFC 2231 continuations merged. Allocated in a. */
void params_parse(struct lex *l, struct msg_arena *a, struct imap_msg_param **out,
    uint32_t *n_out, int *err);

/* Size of the decoded body of p (BINARY.SIZE). 0 or -ENOTSUP. */
int part_binary_size(const struct imap_msg *m, const struct imap_msg_part *p,
    uint64_t *size_out);
