/* lmtp-parser: the LMTP (RFC 2033) wire layer. Incremental, bounded, no I/O.
 *
 * Three modes:
 *  - command lines: bytes up to LF (CR before it dropped). RFC 5321 4.5.3.1.4 says
 *    512 octets; we tolerate up to LMTP_LINE_MAX. A longer line is skipped to its
 *    end and reported once (LMTP_EV_LINE_TOO_LONG).
 *  - DATA (after the caller accepted DATA and called lmtp_parser_begin_data):
 *    message bytes with dot-stuffing removed (RFC 5321 4.5.2) until the line ".".
 *    Lines end at LF (bare LF tolerated); the bytes are passed on unchanged.
 *  - BDAT (RFC 3030): entered by the parser itself as soon as it returns a BDAT
 *    command, because the chunk follows the command whether or not the server
 *    accepts it (RFC 3030 2: a refused BDAT's chunk must still be consumed).
 *    Exactly the announced number of bytes, no unstuffing.
 *
 * Message bytes are never copied or buffered: each LMTP_EV_DATA points into the
 * caller's input (or at a constant), so memory is bounded whatever the message size.
 *
 * The argument helpers (lmtp_parse_path, lmtp_param_next) are pure functions over
 * a NUL-terminated command argument. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LMTP_LINE_MAX 4096	/* command line, CRLF excluded */
#define LMTP_PATH_MAX 256	/* RFC 5321 4.5.3.1.3: path incl. "<>" */

enum lmtp_verb {
	LMTP_V_UNKNOWN = 0,
	LMTP_V_LHLO, LMTP_V_HELO, LMTP_V_EHLO, LMTP_V_MAIL, LMTP_V_RCPT, LMTP_V_DATA,
	LMTP_V_BDAT, LMTP_V_RSET, LMTP_V_NOOP, LMTP_V_QUIT, LMTP_V_VRFY, LMTP_V_EXPN,
	LMTP_V_HELP, LMTP_V_STARTTLS,
};

enum lmtp_ev_type {
	LMTP_EV_CMD = 1,	/* ev.verb, ev.arg */
	LMTP_EV_LINE_TOO_LONG,	/* a command line over LMTP_LINE_MAX was skipped */
	LMTP_EV_BAD_BDAT,	/* BDAT with a bad size argument; the parser stays in
				 * command mode (nothing can be consumed safely) */
	LMTP_EV_DATA,		/* ev.data, ev.len: message bytes (DATA unstuffed or
				 * BDAT chunk), valid until the next feed call */
	LMTP_EV_DATA_END,	/* the "." line that ends DATA */
	LMTP_EV_BDAT_END,	/* the last byte of a BDAT chunk was delivered */
};

struct lmtp_event {
	enum lmtp_ev_type type;
	enum lmtp_verb verb;
	const char *arg;	/* NUL-terminated, leading/trailing blanks removed; "" if
				 * none; points into the parser (valid until next feed) */
	uint64_t bdat_size;	/* LMTP_V_BDAT: announced chunk size */
	bool bdat_last;		/* LMTP_V_BDAT: "LAST" given */
	const uint8_t *data;
	size_t len;
};

enum lmtp_mode { LMTP_MODE_LINE, LMTP_MODE_DATA, LMTP_MODE_BDAT };

struct lmtp_parser {
	enum lmtp_mode mode;
	/* command mode */
	char line[LMTP_LINE_MAX + 2];	/* + the CR of CRLF + NUL */
	size_t line_len;
	bool overflow;			/* skipping the rest of a too-long line */
	/* DATA mode: where in the line we are */
	enum { DS_BOL, DS_MID, DS_DOT, DS_DOT_CR } ds;
	/* BDAT mode */
	uint64_t bdat_left;
	bool bdat_end_pending;		/* a BDAT 0 chunk: report its end at once */
};

void lmtp_parser_init(struct lmtp_parser *p);
/* Switches to DATA mode (call after replying 354). */
void lmtp_parser_begin_data(struct lmtp_parser *p);
enum lmtp_mode lmtp_parser_mode(const struct lmtp_parser *p);

/* Consumes bytes from in[0..len). Returns 1 with *ev filled (then *used_out bytes
 * were consumed; call again with the rest), or 0 when all len bytes were consumed
 * and more input is needed (*used_out == len). Never reads past len; never fails:
 * protocol errors are events for the caller to answer. */
int lmtp_parser_feed(struct lmtp_parser *p, const uint8_t *in, size_t len,
    size_t *used_out, struct lmtp_event *ev);

/* "FROM:<path> params" / "TO:<path> params". prefix is "FROM:" or "TO:" (matched
 * case-insensitively; blanks after the colon tolerated). Copies the address without
 * the angle brackets (and without a source route "@a,@b:") into addr (addrsz bytes,
 * NUL-terminated); *params_out points at the parameters (or at ""). 0, -EPROTO
 * syntax, -E2BIG address longer than LMTP_PATH_MAX. "<>" gives addr "" (the caller
 * decides whether the null path is allowed). */
int lmtp_parse_path(const char *arg, const char *prefix, char *addr, size_t addrsz,
    const char **params_out);

/* Iterates "KEY[=VALUE]" parameters separated by blanks. Returns 1 with key/value
 * (value "" if no '=') copied into the caller's buffers, 0 at the end, -EPROTO or
 * -E2BIG (a key or value too long for its buffer). *pos is advanced. */
int lmtp_param_next(const char **pos, char *key, size_t keysz, char *val, size_t valsz);

/* Parses a decimal uint64 (no sign, no blanks); 0 or -EPROTO / -ERANGE. */
int lmtp_parse_u64(const char *s, uint64_t *out);
