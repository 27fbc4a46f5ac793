/* imap-parser: incremental, bounded IMAP command parser (RFC 9051 / RFC 3501 section 9
 * syntax, RFC 7888 LITERAL+/LITERAL-, RFC 3516 literal8). It does no I/O: the caller
 * feeds the bytes it has read and gets whole commands back.
 *
 * Driving it (the server's read loop):
 *
 *	r = imap_parser_feed(p, buf, len, &used, &cmd);  then drop `used` bytes of buf
 *	r == 1                    a complete command in cmd (caller owns, imap_cmd_free)
 *	r == 0                    all of buf consumed (used == len), need more input
 *	r == IMAP_PARSE_CONTINUE  a synchronizing literal {n} was announced and accepted:
 *	                          send "+ ..." then keep feeding. Before sending "+", the
 *	                          server may look at imap_parser_cmd_name() and
 *	                          imap_parser_literal_size() and refuse instead (e.g. APPEND
 *	                          over APPENDLIMIT): answer "TAG NO [TOOBIG] ..." and call
 *	                          imap_parser_reset(); the client never sends the bytes.
 *	r == -EPROTO / -E2BIG     the command is bad: answer "TAG BAD <imap_parser_error()>"
 *	                          (tag from imap_parser_error_tag(), or "*" when NULL), then
 *	                          keep feeding. The parser resynchronises by itself, see below.
 *	r == IMAP_PARSE_FATAL     cannot resynchronise (non-synchronizing literal the server
 *	                          may not accept, RFC 7888 section 4): send
 *	                          "TAG BAD [TOOBIG] ..." if a tag is known, then "* BYE" and
 *	                          close. Every later call returns IMAP_PARSE_FATAL.
 *	r == -ENOMEM              out of memory; the parser is dead (later calls return
 *	                          IMAP_PARSE_FATAL).
 *
 * Resynchronisation after -EPROTO / -E2BIG: the error is returned as soon as it is
 * detected (*used_out stops just before the offending byte), and the following calls
 * discard the rest of the bad command's line silently (returning 0 until the line's LF
 * is consumed) before parsing the next command. So keep calling imap_parser_feed()
 * with the unconsumed input as usual. While discarding, the parser still honours
 * literal announcements at line ends, because the client acts on them:
 *   - "{n}" CRLF (synchronizing): the client now waits for "+", which never comes; it
 *     gets the BAD and abandons the command, so the command ends at that CRLF.
 *   - "{n+}" CRLF (non-synchronizing) that the limits allow: its n bytes are skipped
 *     unread and discarding continues with the rest of the line after them.
 *   - "{n+}" CRLF over the limits: IMAP_PARSE_FATAL.
 * A synchronizing literal over max_literal is reported as -E2BIG (at its "}") with
 * imap_parser_literal_too_big() true; the following call consumes the "}" CRLF and the
 * command ends there: the client waits for a "+" that never comes and then gives up,
 * so the next bytes are parsed as a new command. The server must answer BAD (or
 * NO [TOOBIG]) and must NOT send "+".
 *
 * Every result is produced at the same input offset however the input is split into
 * calls (fed whole, one byte at a time, or anything between).
 *
 * Line endings: CRLF, and also a bare LF (some clients send it). A CR not followed by
 * LF is a syntax error.
 *
 * Token syntax accepted:
 *   tag      1*<ASTRING-CHAR except "+"> (RFC 9051 section 9), followed by SP
 *   name     1*ATOM-CHAR, uppercased. "UID <sub>" is folded into one name, e.g.
 *            "UID FETCH": the subcommand is NOT among the args.
 *   atom     ATOM-CHARs plus "*", "%" and "]" (sequence sets, LIST patterns, astrings),
 *            a leading "\" (flags such as \Seen and \*), and bracketed sections: "["
 *            starts a section that runs to the matching "]" and may contain SP, nested
 *            parentheses and quoted strings (raw, quotes included), so
 *            BODY.PEEK[HEADER.FIELDS (From Subject)]<0.2048> is ONE atom whose text is
 *            exactly those bytes. Literals inside a section are not supported (-EPROTO).
 *            A consequence: an unquoted atom with an unbalanced "[" is an error; such
 *            names must be quoted. 8-bit bytes are not allowed in atoms (use quoted).
 *            An atom "NIL" (any case) has type IMAP_ARG_NIL and text "NIL".
 *   quoted   "..." with \" and \\ escapes only; 8-bit bytes allowed (RFC 6855
 *            UTF8=ACCEPT; not validated here, see imap_utf8_valid()), NUL CR LF not.
 *   literal  {n} / {n+} CRLF then n bytes (CHAR8: NUL is rejected, RFC 3501 section 9)
 *   literal8 ~{n} / ~{n+} CRLF then n bytes, any octet including NUL (RFC 3516)
 *   list     "(" [arg *(SP arg)] ")"
 * Exactly one SP separates arguments; no leading/trailing spaces (RFC 9051 grammar).
 *
 * Thread-safety: one parser per connection; no global state. */
#pragma once
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A synchronizing literal was accepted: send a continuation request ("+ ..."). */
#define IMAP_PARSE_CONTINUE 2
/* Cannot resynchronise: send BYE and close the connection. */
#define IMAP_PARSE_FATAL (-EPIPE)

/* RFC 7888: what the server advertised for non-synchronizing literals {n+}. */
enum imap_nonsync_mode {
	IMAP_NONSYNC_NONE = 0,	/* neither advertised: any {n+} is fatal */
	IMAP_NONSYNC_MINUS,	/* LITERAL-: {n+} only up to 4096 bytes (and max_literal) */
	IMAP_NONSYNC_PLUS,	/* LITERAL+: {n+} up to max_literal */
};

#define IMAP_LITERAL_MINUS_MAX 4096u

struct imap_parser_limits {
	size_t max_line;	  /* bytes of one command excluding literal data (tag, args,
				     literal headers and every CRLF count) */
	size_t max_literal;	  /* bytes of one literal */
	size_t max_literal_total; /* literal bytes in one command (MULTIAPPEND) */
	unsigned max_args;	  /* arguments in one command, nested ones and lists count */
	unsigned max_depth;	  /* parenthesis nesting (also inside a [section]) */
	enum imap_nonsync_mode nonsync;
};

/* Defaults for an authenticated session: 64 KiB line, 64 MiB literal and total,
 * 10000 args, depth 32, LITERAL+. */
void imap_parser_limits_default(struct imap_parser_limits *lim);
/* Tighter defaults before authentication: 8 KiB line, 4 KiB literal, 8 KiB total,
 * 128 args, depth 4, LITERAL+ (so {n+} over 4 KiB is fatal). */
void imap_parser_limits_prelogin(struct imap_parser_limits *lim);

enum imap_arg_type {
	IMAP_ARG_ATOM = 1,
	IMAP_ARG_QUOTED,
	IMAP_ARG_LITERAL,
	IMAP_ARG_LITERAL8,
	IMAP_ARG_NIL,
	IMAP_ARG_LIST,
};

struct imap_arg {
	enum imap_arg_type type;
	/* ATOM, QUOTED (unescaped), LITERAL, LITERAL8, NIL ("NIL" as sent): the bytes,
	 * always followed by a NUL that is not counted. len is authoritative: literal8
	 * data may contain NULs. NULL for LIST. */
	const char *str;
	size_t len;
	/* LIST: its elements (list_n may be 0). NULL/0 otherwise. */
	struct imap_arg *list;
	size_t list_n;
};

/* One parsed command. Everything it points to is owned by it. */
struct imap_cmd {
	char *tag;		/* as sent */
	char *name;		/* uppercased; "UID FETCH" etc. for UID commands */
	struct imap_arg *args;	/* top-level arguments */
	size_t nargs;
	size_t literal_bytes;	/* sum of literal data lengths in the command */
	/* private */
	unsigned char *buf_;
	size_t buf_len_;
};

/* Wipes the command's bytes (they may be credentials or mail) and frees it. Accepts
 * NULL and *cmd == NULL. The parser likewise wipes its own buffers when it grows,
 * resets or frees them. */
void imap_cmd_free(struct imap_cmd **cmd);

struct imap_parser;

/* 0, -EINVAL bad limits (max_line < 8, max_args or max_depth 0,
 * max_literal_total < max_literal), -ENOMEM. lim is copied. */
int imap_parser_new(const struct imap_parser_limits *lim, struct imap_parser **out);
void imap_parser_free(struct imap_parser **p);
/* Replace the limits (e.g. after LOGIN). Takes effect at once; meant to be called
 * between commands. 0 or -EINVAL (same checks as imap_parser_new). */
int imap_parser_set_limits(struct imap_parser *p, const struct imap_parser_limits *lim);

/* Feed input. Returns as described at the top of this file. *used_out is always set:
 * bytes of in consumed (the parser copies what it keeps); the caller must present the
 * unconsumed rest again (plus any new data) on the next call. Never reads past len.
 * *cmd_out is set (non-NULL) only when 1 is returned. -EINVAL if a raw line
 * (imap_parser_feed_line) is half read. */
int imap_parser_feed(struct imap_parser *p, const uint8_t *in, size_t len,
    size_t *used_out, struct imap_cmd **cmd_out);

/* Raw line mode, for AUTHENTICATE continuation lines and IDLE's "DONE": reads one line
 * of arbitrary bytes (no IMAP syntax, no literals) terminated by LF; a CR before the LF
 * is stripped. Returns 1 with *line_out (malloc'd, NUL-terminated, caller frees) and
 * *len_out (excluding CR LF; the line may contain NULs); 0 need more (all consumed);
 * -E2BIG the line exceeds max_line: the rest of it, up to its LF, is then discarded
 * by the following calls (of either function) before anything else is read;
 * -EINVAL a command is partly parsed (call only between commands); -ENOMEM.
 * Line mode and command mode may be mixed freely between lines. */
int imap_parser_feed_line(struct imap_parser *p, const uint8_t *in, size_t len,
    size_t *used_out, char **line_out, size_t *len_out);

/* Drop any partial command or line and return to "between commands" (e.g. after the
 * server refused a synchronizing literal instead of sending "+"). Does not undo
 * IMAP_PARSE_FATAL. */
void imap_parser_reset(struct imap_parser *p);

/* After an error return: a short English description, never NULL (constant text, no
 * client bytes). Valid until the next call on p. */
const char *imap_parser_error(const struct imap_parser *p);
/* After an error return: the tag of the bad command if it was read completely, else
 * NULL. Valid until the next call on p. */
const char *imap_parser_error_tag(const struct imap_parser *p);
/* After -E2BIG: true when the cause was a synchronizing literal over the limits (the
 * client waits for "+" that must not come; answer BAD/NO [TOOBIG] without "+"), or
 * after IMAP_PARSE_FATAL caused by a non-synchronizing one. *size_out (may be NULL)
 * gets the announced size (saturated at UINT64_MAX). */
bool imap_parser_literal_too_big(const struct imap_parser *p, uint64_t *size_out);

/* While a command is being parsed (e.g. right after IMAP_PARSE_CONTINUE): its tag and
 * uppercased name so far, or NULL if not read completely yet. Valid until the next
 * call on p. */
const char *imap_parser_cmd_tag(const struct imap_parser *p);
const char *imap_parser_cmd_name(const struct imap_parser *p);
/* Right after IMAP_PARSE_CONTINUE: the announced size of the literal awaiting "+". */
uint64_t imap_parser_literal_size(const struct imap_parser *p);
