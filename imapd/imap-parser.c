/* Incremental IMAP command parser. One byte-driven state machine; literal data and
 * discarded input are handled in chunks. Everything that is kept is copied into one
 * growing buffer (tag, name, then argument bytes, each NUL-terminated) whose ownership
 * moves to the finished struct imap_cmd, plus a flat array of argument nodes that is
 * turned into the nested struct imap_arg arrays at the end (no recursion anywhere). */
#include "imap-parser.h"

#include <stdlib.h>
#include <string.h>

enum pstate {
	PS_IDLE,	/* between commands */
	PS_TAG,
	PS_NAME_START,
	PS_NAME,
	PS_SUB_START,	/* after "UID " */
	PS_ARG_START,	/* after SP: an argument must follow */
	PS_LIST_START,	/* after "(": an argument or ")" */
	PS_AFTER_ARG,	/* SP, ")", CR or LF */
	PS_ATOM,
	PS_SECTION,	/* inside "[...]" of an atom */
	PS_SECTION_Q,	/* quoted string inside a section */
	PS_SECTION_QE,	/* after "\" in it */
	PS_QUOTED,
	PS_QUOTED_ESC,
	PS_TILDE,	/* "~" at argument start: literal8 or an atom */
	PS_LIT_HDR,	/* inside "{...}" */
	PS_LIT_CR,	/* after "}" */
	PS_LIT_LF,	/* after "}" CR */
	PS_LIT_DATA,
	PS_CR,		/* CR ending the command line, LF must follow */
	PS_SKIP,	/* discarding the rest of a bad command line */
	PS_SKIP_LIT,	/* discarding a non-synchronizing literal of a bad command */
	PS_SKIP_RAW,	/* discarding the rest of an over-long raw line */
	PS_LINE,	/* raw line in progress */
	PS_FATAL,
};

/* Tracks "{" digits ["+"] "}" [CR] at the end of the text seen so far: used both to
 * parse a literal announcement and, while discarding a bad line, to notice the
 * announcements the client will act on (RFC 7888 section 3 describes the same scan). */
enum tail_state { T_NONE, T_BRACE, T_DIGITS, T_PLUS, T_CLOSE, T_CLOSE_CR };

struct node {
	size_t off;		/* string: offset in buf; LIST: index of first element */
	size_t len;
	uint32_t parent;	/* index + 1 of the enclosing list, 0 for top level */
	uint32_t ordinal;	/* position among its siblings */
	uint32_t nchild;	/* LIST: element count */
	uint8_t type;		/* enum imap_arg_type */
};

struct imap_parser {
	struct imap_parser_limits lim;
	enum pstate state;

	/* the command being built; reset when the next command starts */
	unsigned char *buf;
	size_t buf_len, buf_cap;
	struct node *nodes;
	size_t nnodes, nodes_cap;
	uint32_t cur_list;	/* index + 1 of the innermost open list, 0 top level */
	uint32_t ntop;
	unsigned depth;
	size_t line_used;	/* command bytes except literal data */
	uint64_t lit_total;
	size_t tok_off;		/* start of the token being read */
	size_t name_off;
	bool tag_done, name_done, uid_folded;
	unsigned sec_depth;

	/* literal announcement / data */
	enum tail_state tail;
	uint64_t tail_val;
	bool tail_plus;		/* the "}" closed a non-synchronizing "{n+}" */
	bool lit8;
	uint64_t lit_size;	/* size of the literal being read or awaiting "+" */
	uint64_t lit_left;
	uint32_t lit_node;
	uint64_t skip_left;	/* PS_SKIP_LIT */

	/* outcome of the last call */
	const char *err;
	bool too_big;
	uint64_t too_big_size;
	const char *fatal_err;
	bool fatal_too_big;
	uint64_t fatal_size;
};

/* step() results */
enum act { ACT_NEXT, ACT_REDO, ACT_ERROR, ACT_DONE, ACT_CONT, ACT_FATAL };

void imap_parser_limits_default(struct imap_parser_limits *lim)
{
	lim->max_line = 64 * 1024;
	lim->max_literal = 64u * 1024 * 1024;
	lim->max_literal_total = 64u * 1024 * 1024;
	lim->max_args = 10000;
	lim->max_depth = 32;
	lim->nonsync = IMAP_NONSYNC_PLUS;
}

void imap_parser_limits_prelogin(struct imap_parser_limits *lim)
{
	lim->max_line = 8 * 1024;
	lim->max_literal = 4 * 1024;
	lim->max_literal_total = 8 * 1024;
	lim->max_args = 128;
	lim->max_depth = 4;
	lim->nonsync = IMAP_NONSYNC_PLUS;
}

static int check_limits(const struct imap_parser_limits *lim)
{
	if (lim == NULL || lim->max_line < 8 || lim->max_args == 0 || lim->max_depth == 0 ||
	    lim->max_literal_total < lim->max_literal || lim->max_args > UINT32_MAX / 2 ||
	    (lim->nonsync != IMAP_NONSYNC_NONE && lim->nonsync != IMAP_NONSYNC_MINUS &&
	     lim->nonsync != IMAP_NONSYNC_PLUS))
		return -EINVAL;
	return 0;
}

int imap_parser_new(const struct imap_parser_limits *lim, struct imap_parser **out)
{
	struct imap_parser *p;

	*out = NULL;
	if (check_limits(lim) < 0)
		return -EINVAL;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return -ENOMEM;
	p->lim = *lim;
	p->state = PS_IDLE;
	*out = p;
	return 0;
}

/* Command bytes can be credentials (LOGIN, AUTHENTICATE) or mail: no copy is left
 * behind in freed memory. */
static void wipe_buf(struct imap_parser *p)
{
	if (p->buf != NULL)
		explicit_bzero(p->buf, p->buf_len);
	p->buf_len = 0;
}

void imap_parser_free(struct imap_parser **pp)
{
	if (pp == NULL || *pp == NULL)
		return;
	wipe_buf(*pp);
	free((*pp)->buf);
	free((*pp)->nodes);
	free(*pp);
	*pp = NULL;
}

int imap_parser_set_limits(struct imap_parser *p, const struct imap_parser_limits *lim)
{
	if (check_limits(lim) < 0)
		return -EINVAL;
	p->lim = *lim;
	return 0;
}

void imap_cmd_free(struct imap_cmd **cmd)
{
	if (cmd == NULL || *cmd == NULL)
		return;
	free((*cmd)->args);
	if ((*cmd)->buf_ != NULL)
		explicit_bzero((*cmd)->buf_, (*cmd)->buf_len_);
	free((*cmd)->buf_);
	free(*cmd);
	*cmd = NULL;
}

/* ---- character classes (RFC 9051 section 9) ---- */

/* ATOM-CHAR: any CHAR except atom-specials ( ) { SP CTL % * " \ ] */
static bool is_atom_char(uint8_t c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	switch (c) {
	case '(': case ')': case '{': case '%': case '*': case '"': case '\\': case ']':
		return false;
	default:
		return true;
	}
}

/* tag = 1*<any ASTRING-CHAR except "+">; ASTRING-CHAR = ATOM-CHAR / "]" */
static bool is_tag_char(uint8_t c)
{
	return (is_atom_char(c) && c != '+') || c == ']';
}

/* What may continue an atom here: ATOM-CHAR plus list-wildcards (LIST patterns,
 * "*" in sequence sets) and "]" (resp-specials are allowed in astrings). */
static bool is_atom_ext(uint8_t c)
{
	return is_atom_char(c) || c == '*' || c == '%' || c == ']';
}

static uint8_t upper(uint8_t c)
{
	return (c >= 'a' && c <= 'z') ? (uint8_t)(c - 'a' + 'A') : c;
}

/* ---- building ---- */

/* Make room for a total of `need` bytes. limit: SIZE_MAX for command text (bounded by
 * max_line; grows gently past 64 KiB so text after a big literal does not double it),
 * else the end of the literal being read (doubling, never past it). Memory follows
 * the bytes that really arrived, not a size the client merely announced. */
static int buf_grow(struct imap_parser *p, size_t need, size_t limit)
{
	size_t ncap, cap = p->buf_cap;
	unsigned char *nb;

	if (need <= cap)
		return 0;
	/* Geometric growth: a literal arrives in pieces and is copied O(log n) times,
	 * not O(n / 64 KiB) times (a 20 MB APPEND used to copy gigabytes). Memory stays
	 * bounded by twice what actually arrived, never by an announced size. */
	ncap = cap < 256 ? 256 : (cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2);
	if (ncap > limit)
		ncap = limit;
	if (ncap < need)
		ncap = need;
	/* not realloc: the old block is wiped before it is freed */
	if ((nb = malloc(ncap)) == NULL)
		return -ENOMEM;
	if (p->buf != NULL) {
		memcpy(nb, p->buf, p->buf_len);
		explicit_bzero(p->buf, p->buf_len);
		free(p->buf);
	}
	p->buf = nb;
	p->buf_cap = ncap;
	return 0;
}

static int put(struct imap_parser *p, uint8_t c)
{
	if (p->buf_len == p->buf_cap && buf_grow(p, p->buf_len + 1, SIZE_MAX) < 0)
		return -ENOMEM;
	p->buf[p->buf_len++] = c;
	return 0;
}

static int node_add(struct imap_parser *p, enum imap_arg_type type, size_t off, size_t len,
    uint32_t *idx_out)
{
	struct node *n;

	if (p->nnodes == p->nodes_cap) {
		size_t ncap = p->nodes_cap == 0 ? 16 : p->nodes_cap * 2;
		struct node *nn;

		if (ncap > p->lim.max_args)
			ncap = p->lim.max_args;
		if (ncap <= p->nnodes)
			ncap = p->nnodes + 1;
		if ((nn = realloc(p->nodes, ncap * sizeof(*nn))) == NULL)
			return -ENOMEM;
		p->nodes = nn;
		p->nodes_cap = ncap;
	}
	n = &p->nodes[p->nnodes];
	n->off = off;
	n->len = len;
	n->type = (uint8_t)type;
	n->nchild = 0;
	n->parent = p->cur_list;
	n->ordinal = p->cur_list ? p->nodes[p->cur_list - 1].nchild++ : p->ntop++;
	if (idx_out != NULL)
		*idx_out = (uint32_t)p->nnodes;
	p->nnodes++;
	return 0;
}

static void cmd_reset(struct imap_parser *p)
{
	wipe_buf(p);
	p->nnodes = 0;
	p->cur_list = 0;
	p->ntop = 0;
	p->depth = 0;
	p->line_used = 0;
	p->lit_total = 0;
	p->tag_done = p->name_done = p->uid_folded = false;
	p->sec_depth = 0;
	p->tail = T_NONE;
}

/* Turn the flat node array into nested arrays: each list's elements are contiguous,
 * top level first, then each list's elements in document order. */
static int build_cmd(struct imap_parser *p, struct imap_cmd **out)
{
	struct imap_cmd *cmd;
	struct imap_arg *args = NULL;
	size_t next = p->ntop;

	if ((cmd = calloc(1, sizeof(*cmd))) == NULL)
		return -ENOMEM;
	if (p->nnodes > 0 && (args = calloc(p->nnodes, sizeof(*args))) == NULL) {
		free(cmd);
		return -ENOMEM;
	}
	for (size_t i = 0; i < p->nnodes; i++) {
		if (p->nodes[i].type == IMAP_ARG_LIST) {
			p->nodes[i].off = next;
			next += p->nodes[i].nchild;
		}
	}
	for (size_t i = 0; i < p->nnodes; i++) {
		const struct node *n = &p->nodes[i];
		size_t pos = (n->parent ? p->nodes[n->parent - 1].off : 0) + n->ordinal;
		struct imap_arg *a = &args[pos];

		a->type = (enum imap_arg_type)n->type;
		if (n->type == IMAP_ARG_LIST) {
			a->list = n->nchild ? &args[n->off] : NULL;
			a->list_n = n->nchild;
		} else {
			a->str = (const char *)p->buf + n->off;
			a->len = n->len;
		}
	}
	cmd->buf_ = p->buf;
	cmd->buf_len_ = p->buf_len;
	cmd->tag = (char *)p->buf;
	cmd->name = (char *)p->buf + p->name_off;
	cmd->args = args;
	cmd->nargs = p->ntop;
	cmd->literal_bytes = (size_t)p->lit_total;
	p->buf = NULL;
	p->buf_len = p->buf_cap = 0;
	p->tag_done = p->name_done = false;
	*out = cmd;
	return 0;
}

/* ---- state machine ---- */

static enum act fail(struct imap_parser *p, int code, const char *msg, int *ret)
{
	p->err = msg;
	if (*ret == 0)
		*ret = code;
	p->state = PS_SKIP;
	/* The error is returned at once and the offending byte is not consumed: the
	 * next call's PS_SKIP looks at it (it may be the LF that ends the line, or part
	 * of a literal announcement). Returning at the point of detection makes every
	 * result happen at the same input offset however the input is split. */
	return ACT_ERROR;
}

static enum act nomem(struct imap_parser *p, int *ret)
{
	p->state = PS_FATAL;
	p->fatal_err = "out of memory";
	p->err = p->fatal_err;
	*ret = -ENOMEM;
	return ACT_FATAL;
}

static uint64_t nonsync_max(const struct imap_parser *p)
{
	switch (p->lim.nonsync) {
	case IMAP_NONSYNC_PLUS:
		return p->lim.max_literal;
	case IMAP_NONSYNC_MINUS:
		return p->lim.max_literal < IMAP_LITERAL_MINUS_MAX ?
		    p->lim.max_literal : IMAP_LITERAL_MINUS_MAX;
	case IMAP_NONSYNC_NONE:
	default:
		return 0;
	}
}

static bool nonsync_allowed(const struct imap_parser *p, uint64_t size)
{
	return p->lim.nonsync != IMAP_NONSYNC_NONE && size <= nonsync_max(p);
}

static enum act go_fatal_literal(struct imap_parser *p, uint64_t size, int *ret)
{
	p->state = PS_FATAL;
	p->fatal_err = p->lim.nonsync == IMAP_NONSYNC_NONE ?
	    "non-synchronizing literal not supported" : "non-synchronizing literal too big";
	p->fatal_too_big = true;
	p->fatal_size = size;
	if (*ret == 0) {
		*ret = IMAP_PARSE_FATAL;
		p->err = p->fatal_err;
		p->too_big = true;
		p->too_big_size = size;
	}
	return ACT_FATAL;
}

static void tail_update(struct imap_parser *p, uint8_t c)
{
	switch (c) {
	case '{':
		p->tail = T_BRACE;
		p->tail_val = 0;
		break;
	case '0': case '1': case '2': case '3': case '4':
	case '5': case '6': case '7': case '8': case '9':
		if (p->tail == T_BRACE || p->tail == T_DIGITS) {
			uint64_t d = (uint64_t)(c - '0');

			p->tail_val = p->tail_val > (UINT64_MAX - d) / 10 ?
			    UINT64_MAX : p->tail_val * 10 + d;
			p->tail = T_DIGITS;
		} else {
			p->tail = T_NONE;
		}
		break;
	case '+':
		p->tail = p->tail == T_DIGITS ? T_PLUS : T_NONE;
		break;
	case '}':
		if (p->tail == T_DIGITS || p->tail == T_PLUS) {
			p->tail_plus = p->tail == T_PLUS;
			p->tail = T_CLOSE;
		} else {
			p->tail = T_NONE;
		}
		break;
	case '\r':
		p->tail = p->tail == T_CLOSE ? T_CLOSE_CR : T_NONE;
		break;
	default:
		p->tail = T_NONE;
		break;
	}
}

static enum act finish_atom(struct imap_parser *p, int *ret)
{
	size_t len = p->buf_len - p->tok_off;
	const unsigned char *s = p->buf + p->tok_off;
	enum imap_arg_type t = IMAP_ARG_ATOM;

	if (len == 3 && upper(s[0]) == 'N' && upper(s[1]) == 'I' && upper(s[2]) == 'L')
		t = IMAP_ARG_NIL;
	if (put(p, 0) < 0 || node_add(p, t, p->tok_off, len, NULL) < 0)
		return nomem(p, ret);
	p->state = PS_AFTER_ARG;
	return ACT_REDO;
}

/* "{n}" CRLF fully read: allocate the literal's node and space. */
static enum act accept_literal(struct imap_parser *p, int *ret)
{
	uint64_t size = p->tail_val;
	bool nonsync = p->tail_plus;

	p->tail = T_NONE;
	if (node_add(p, p->lit8 ? IMAP_ARG_LITERAL8 : IMAP_ARG_LITERAL, p->buf_len,
	    (size_t)size, &p->lit_node) < 0)
		return nomem(p, ret);
	p->lit_total += size;
	p->lit_size = size;
	p->lit_left = size;
	if (size == 0) {
		if (put(p, 0) < 0)
			return nomem(p, ret);
		p->state = PS_AFTER_ARG;
	} else {
		p->state = PS_LIT_DATA;
	}
	return nonsync ? ACT_NEXT : ACT_CONT;
}

static enum act arg_start(struct imap_parser *p, uint8_t c, int *ret)
{
	uint32_t idx;

	if (p->nnodes >= p->lim.max_args)
		return fail(p, -E2BIG, "too many arguments", ret);
	switch (c) {
	case '(':
		if (p->depth >= p->lim.max_depth)
			return fail(p, -E2BIG, "parentheses nested too deep", ret);
		if (node_add(p, IMAP_ARG_LIST, 0, 0, &idx) < 0)
			return nomem(p, ret);
		p->cur_list = idx + 1;
		p->depth++;
		p->state = PS_LIST_START;
		return ACT_NEXT;
	case '"':
		p->tok_off = p->buf_len;
		p->state = PS_QUOTED;
		return ACT_NEXT;
	case '{':
		p->lit8 = false;
		p->tail = T_BRACE;
		p->tail_val = 0;
		p->state = PS_LIT_HDR;
		return ACT_NEXT;
	case '~':
		p->tok_off = p->buf_len;
		if (put(p, c) < 0)
			return nomem(p, ret);
		p->state = PS_TILDE;
		return ACT_NEXT;
	case '\\':
		/* flag = "\" atom (\Seen, \*): a backslash only starts an atom */
		p->tok_off = p->buf_len;
		if (put(p, c) < 0)
			return nomem(p, ret);
		p->state = PS_ATOM;
		return ACT_NEXT;
	case ')':
		return fail(p, -EPROTO, "unexpected ')'", ret);
	case ' ':
		return fail(p, -EPROTO, "unexpected space", ret);
	case '\r': case '\n':
		return fail(p, -EPROTO, "missing argument after space", ret);
	default:
		if (!is_atom_ext(c) && c != '[')
			return fail(p, -EPROTO, "invalid character in argument", ret);
		p->tok_off = p->buf_len;
		p->state = PS_ATOM;
		return ACT_REDO;
	}
}

static enum act step(struct imap_parser *p, uint8_t c, int *ret)
{
	switch (p->state) {
	case PS_IDLE:
		if (is_tag_char(c)) {
			if (put(p, c) < 0)
				return nomem(p, ret);
			p->state = PS_TAG;
			return ACT_NEXT;
		}
		if (c == '\r' || c == '\n')
			return fail(p, -EPROTO, "empty command line", ret);
		return fail(p, -EPROTO, "invalid character in tag", ret);

	case PS_TAG:
		if (is_tag_char(c)) {
			if (put(p, c) < 0)
				return nomem(p, ret);
			return ACT_NEXT;
		}
		if (c == ' ' || c == '\r' || c == '\n') {
			if (put(p, 0) < 0)
				return nomem(p, ret);
			p->tag_done = true;
			p->name_off = p->buf_len;
			if (c != ' ')
				return fail(p, -EPROTO, "missing command name", ret);
			p->state = PS_NAME_START;
			return ACT_NEXT;
		}
		return fail(p, -EPROTO, "invalid character in tag", ret);

	case PS_NAME_START:
	case PS_SUB_START:
		if (!is_atom_char(c))
			return fail(p, -EPROTO, p->state == PS_SUB_START ?
			    "UID needs a subcommand" : "missing command name", ret);
		p->state = PS_NAME;
		return ACT_REDO;

	case PS_NAME:
		if (is_atom_char(c)) {
			if (put(p, upper(c)) < 0)
				return nomem(p, ret);
			return ACT_NEXT;
		}
		if (c != ' ' && c != '\r' && c != '\n')
			return fail(p, -EPROTO, "invalid character in command name", ret);
		if (!p->uid_folded && p->buf_len - p->name_off == 3 &&
		    memcmp(p->buf + p->name_off, "UID", 3) == 0) {
			/* fold "UID FETCH" into one name: the dispatcher then sees one command */
			if (c != ' ')
				return fail(p, -EPROTO, "UID needs a subcommand", ret);
			if (put(p, ' ') < 0)
				return nomem(p, ret);
			p->uid_folded = true;
			p->state = PS_SUB_START;
			return ACT_NEXT;
		}
		if (put(p, 0) < 0)
			return nomem(p, ret);
		p->name_done = true;
		if (c == ' ')
			p->state = PS_ARG_START;
		else if (c == '\r')
			p->state = PS_CR;
		else
			return ACT_DONE;
		return ACT_NEXT;

	case PS_LIST_START:
		if (c == ')')
			goto close_list;
		if (c == '\r' || c == '\n')
			return fail(p, -EPROTO, "missing ')'", ret);
		return arg_start(p, c, ret);

	case PS_ARG_START:
		return arg_start(p, c, ret);

	case PS_AFTER_ARG:
		switch (c) {
		case ' ':
			p->state = PS_ARG_START;
			return ACT_NEXT;
		case ')':
			if (p->depth == 0)
				return fail(p, -EPROTO, "unexpected ')'", ret);
			goto close_list;
		case '\r':
		case '\n':
			if (p->depth > 0)
				return fail(p, -EPROTO, "missing ')'", ret);
			if (c == '\n')
				return ACT_DONE;
			p->state = PS_CR;
			return ACT_NEXT;
		default:
			return fail(p, -EPROTO, "missing space between arguments", ret);
		}

	case PS_CR:
		if (c != '\n')
			return fail(p, -EPROTO, "CR not followed by LF", ret);
		return ACT_DONE;

	case PS_ATOM:
		if (c == '[') {
			if (put(p, c) < 0)
				return nomem(p, ret);
			p->sec_depth = 0;
			p->state = PS_SECTION;
			return ACT_NEXT;
		}
		if (is_atom_ext(c)) {
			if (put(p, c) < 0)
				return nomem(p, ret);
			return ACT_NEXT;
		}
		if (c == ' ' || c == ')' || c == '\r' || c == '\n')
			return finish_atom(p, ret);
		return fail(p, -EPROTO, "invalid character in atom", ret);

	case PS_SECTION:
		switch (c) {
		case '"':
			p->state = PS_SECTION_Q;
			break;
		case '(':
			if (p->sec_depth >= p->lim.max_depth)
				return fail(p, -E2BIG, "parentheses nested too deep", ret);
			p->sec_depth++;
			break;
		case ')':
			if (p->sec_depth == 0)
				return fail(p, -EPROTO, "unexpected ')' in section", ret);
			p->sec_depth--;
			break;
		case ']':
			if (p->sec_depth == 0)
				p->state = PS_ATOM;
			break;
		case '{':
			return fail(p, -EPROTO, "literal inside [section] not supported", ret);
		case '\r': case '\n':
			return fail(p, -EPROTO, "missing ']'", ret);
		default:
			if (c < 0x20 || c >= 0x7f)
				return fail(p, -EPROTO, "invalid character in section", ret);
			break;
		}
		if (put(p, c) < 0)
			return nomem(p, ret);
		return ACT_NEXT;

	case PS_SECTION_Q:
	case PS_QUOTED:
		if (c == '\r' || c == '\n' || c == 0)
			return fail(p, -EPROTO, c == 0 ? "NUL in quoted string" :
			    "unterminated quoted string", ret);
		if (c == '\\') {
			if (p->state == PS_SECTION_Q && put(p, c) < 0)
				return nomem(p, ret);
			p->state = p->state == PS_QUOTED ? PS_QUOTED_ESC : PS_SECTION_QE;
			return ACT_NEXT;
		}
		if (c == '"') {
			if (p->state == PS_SECTION_Q) {
				p->state = PS_SECTION;
				if (put(p, c) < 0)
					return nomem(p, ret);
				return ACT_NEXT;
			}
			if (put(p, 0) < 0 ||
			    node_add(p, IMAP_ARG_QUOTED, p->tok_off,
				p->buf_len - 1 - p->tok_off, NULL) < 0)
				return nomem(p, ret);
			p->state = PS_AFTER_ARG;
			return ACT_NEXT;
		}
		if (put(p, c) < 0)
			return nomem(p, ret);
		return ACT_NEXT;

	case PS_QUOTED_ESC:
	case PS_SECTION_QE:
		/* RFC 9051: only \" and \\ are escapes in a quoted string */
		if (c != '"' && c != '\\')
			return fail(p, -EPROTO, "invalid escape in quoted string", ret);
		if (put(p, c) < 0)
			return nomem(p, ret);
		p->state = p->state == PS_QUOTED_ESC ? PS_QUOTED : PS_SECTION_Q;
		return ACT_NEXT;

	case PS_TILDE:
		if (c == '{') {
			p->buf_len = p->tok_off;	/* drop the "~" */
			p->lit8 = true;
			p->tail = T_BRACE;
			p->tail_val = 0;
			p->state = PS_LIT_HDR;
			return ACT_NEXT;
		}
		p->state = PS_ATOM;		/* "~" is an ATOM-CHAR too */
		return ACT_REDO;

	case PS_LIT_HDR:
		if (c >= '0' && c <= '9' && p->tail != T_PLUS) {
			tail_update(p, c);
			return ACT_NEXT;
		}
		if (c == '+' && p->tail == T_DIGITS) {
			tail_update(p, c);
			return ACT_NEXT;
		}
		if (c != '}' || (p->tail != T_DIGITS && p->tail != T_PLUS))
			return fail(p, -EPROTO, "invalid literal size", ret);
		if (p->tail == T_PLUS) {
			/* RFC 7888 section 4: the data follows unasked; we cannot skip
			 * what we refuse to take, so the connection has to go */
			if (!nonsync_allowed(p, p->tail_val) ||
			    p->tail_val > p->lim.max_literal_total - p->lit_total)
				return go_fatal_literal(p, p->tail_val, ret);
		} else if (p->tail_val > p->lim.max_literal ||
		    p->tail_val > p->lim.max_literal_total - p->lit_total) {
			p->too_big = true;
			p->too_big_size = p->tail_val;
			/* the "}" is left for PS_SKIP, which then ends the command at
			 * the CRLF: the client waits for a "+" that never comes */
			return fail(p, -E2BIG, "literal too big", ret);
		}
		tail_update(p, c);
		p->state = PS_LIT_CR;
		return ACT_NEXT;

	case PS_LIT_CR:
		if (c == '\r') {
			tail_update(p, c);
			p->state = PS_LIT_LF;
			return ACT_NEXT;
		}
		if (c == '\n')
			return accept_literal(p, ret);
		return fail(p, -EPROTO, "missing CRLF after literal size", ret);

	case PS_LIT_LF:
		if (c == '\n')
			return accept_literal(p, ret);
		return fail(p, -EPROTO, "CR not followed by LF", ret);

	case PS_LIT_DATA:
	case PS_SKIP:
	case PS_SKIP_LIT:
	case PS_SKIP_RAW:
	case PS_LINE:
	case PS_FATAL:
	default:
		break;
	}
	/* not reached: the caller handles the other states */
	return nomem(p, ret);

close_list:
	p->cur_list = p->nodes[p->cur_list - 1].parent;
	p->depth--;
	p->state = PS_AFTER_ARG;
	return ACT_NEXT;
}

static void clear_error(struct imap_parser *p)
{
	p->err = NULL;
	p->too_big = false;
	p->too_big_size = 0;
}

int imap_parser_feed(struct imap_parser *p, const uint8_t *in, size_t len,
    size_t *used_out, struct imap_cmd **cmd_out)
{
	size_t i = 0;
	int ret = 0;

	*used_out = 0;
	*cmd_out = NULL;
	if (p->state == PS_FATAL) {
		p->err = p->fatal_err;
		p->too_big = p->fatal_too_big;
		p->too_big_size = p->fatal_size;
		return IMAP_PARSE_FATAL;
	}
	if (p->state == PS_LINE)
		return -EINVAL;
	clear_error(p);

	while (i < len) {
		enum act a;

		switch (p->state) {
		case PS_LIT_DATA: {
			size_t n = len - i;
			const uint8_t *z;

			if (n > p->lit_left)
				n = (size_t)p->lit_left;
			if (!p->lit8 && (z = memchr(in + i, 0, n)) != NULL) {
				/* CHAR8 = %x01-ff: NUL needs literal8 (RFC 3516) */
				size_t k = (size_t)(z - (in + i));

				i += k;
				fail(p, -EPROTO, "NUL in literal (literal8 needed)", &ret);
				p->skip_left = p->lit_left - k;
				p->state = PS_SKIP_LIT;
				goto out;
			}
			/* room for this piece and, at the end, the NUL */
			if (buf_grow(p, p->buf_len + n + 1,
			    p->buf_len + (size_t)p->lit_left + 1) < 0) {
				nomem(p, &ret);
				goto out;
			}
			memcpy(p->buf + p->buf_len, in + i, n);
			p->buf_len += n;
			i += n;
			p->lit_left -= n;
			if (p->lit_left == 0) {
				p->buf[p->buf_len++] = 0;
				p->state = PS_AFTER_ARG;
			}
			continue;
		}
		case PS_SKIP_LIT: {
			size_t n = len - i;

			if (n > p->skip_left)
				n = (size_t)p->skip_left;
			i += n;
			p->skip_left -= n;
			if (p->skip_left == 0) {
				p->tail = T_NONE;
				p->state = PS_SKIP;
			}
			continue;
		}
		case PS_SKIP: {
			uint8_t c = in[i++];

			if (c != '\n') {
				tail_update(p, c);
				continue;
			}
			if (p->tail == T_CLOSE || p->tail == T_CLOSE_CR) {
				bool nonsync = p->tail_plus;
				uint64_t size = p->tail_val;

				p->tail = T_NONE;
				if (nonsync) {
					if (!nonsync_allowed(p, size)) {
						go_fatal_literal(p, size, &ret);
						goto out;
					}
					if (size > 0) {
						p->skip_left = size;
						p->state = PS_SKIP_LIT;
					}
					continue;
				}
				/* synchronizing: the client waits for "+" and then gives up
				 * on this command, so it ends here */
			}
			p->state = PS_IDLE;
			continue;
		}
		case PS_SKIP_RAW: {
			const uint8_t *z = memchr(in + i, '\n', len - i);

			if (z == NULL) {
				i = len;
				continue;
			}
			i = (size_t)(z - in) + 1;
			p->state = PS_IDLE;
			continue;
		}
		default:
			break;
		}
		if (p->state == PS_IDLE)
			cmd_reset(p);
		if (p->line_used >= p->lim.max_line) {
			fail(p, -E2BIG, "command line too long", &ret);
			break;
		}
		p->line_used++;
		do {
			a = step(p, in[i], &ret);
		} while (a == ACT_REDO);

		if (a == ACT_ERROR)
			break;	/* byte not consumed: PS_SKIP takes it on the next call */
		if (a == ACT_FATAL)
			break;
		i++;
		if (a == ACT_CONT) {
			ret = IMAP_PARSE_CONTINUE;
			break;
		}
		if (a == ACT_DONE) {
			p->state = PS_IDLE;
			if (build_cmd(p, cmd_out) < 0) {
				nomem(p, &ret);
				break;
			}
			ret = 1;
			break;
		}
	}
out:
	if (p->state == PS_FATAL && ret == 0) {
		ret = IMAP_PARSE_FATAL;
		p->err = p->fatal_err;
	}
	*used_out = i;
	return ret;
}

int imap_parser_feed_line(struct imap_parser *p, const uint8_t *in, size_t len,
    size_t *used_out, char **line_out, size_t *len_out)
{
	size_t i = 0, n;
	const uint8_t *z;
	char *line;
	int r = 0;

	*used_out = 0;
	*line_out = NULL;
	*len_out = 0;
	if (p->state == PS_FATAL) {
		p->err = p->fatal_err;
		return IMAP_PARSE_FATAL;
	}
	if (p->state != PS_IDLE && p->state != PS_SKIP_RAW && p->state != PS_LINE)
		return -EINVAL;
	clear_error(p);
	if (p->state == PS_SKIP_RAW) {
		if ((z = memchr(in, '\n', len)) == NULL) {
			*used_out = len;
			return 0;
		}
		i = (size_t)(z - in) + 1;
		p->state = PS_IDLE;
	}
	if (p->state == PS_IDLE) {
		cmd_reset(p);
		p->state = PS_LINE;
	}
	z = memchr(in + i, '\n', len - i);
	n = z != NULL ? (size_t)(z - (in + i)) : len - i;
	/* the line with its LF must fit in max_line */
	if (n > p->lim.max_line - 1 - p->line_used) {
		/* report at the first byte that does not fit (as a byte-by-byte feed
		 * would); it and the rest of the line are discarded by later calls */
		p->err = "line too long";
		*used_out = i + (p->lim.max_line - 1 - p->line_used);
		wipe_buf(p);
		p->state = PS_SKIP_RAW;
		return -E2BIG;
	}
	if (buf_grow(p, p->buf_len + n + 1, SIZE_MAX) < 0) {
		nomem(p, &r);
		return r;
	}
	memcpy(p->buf + p->buf_len, in + i, n);
	p->buf_len += n;
	p->line_used += n;
	i += n;
	if (z == NULL) {
		*used_out = i;
		return 0;
	}
	i++;	/* the LF */
	n = p->buf_len;
	if (n > 0 && p->buf[n - 1] == '\r')
		n--;
	if ((line = malloc(n + 1)) == NULL) {
		nomem(p, &r);
		return r;
	}
	memcpy(line, p->buf, n);
	line[n] = 0;
	wipe_buf(p);
	p->line_used = 0;
	p->state = PS_IDLE;
	*used_out = i;
	*line_out = line;
	*len_out = n;
	return 1;
}

void imap_parser_reset(struct imap_parser *p)
{
	if (p->state == PS_FATAL)
		return;
	cmd_reset(p);
	clear_error(p);
	p->lit_left = p->skip_left = 0;
	p->state = PS_IDLE;
}

const char *imap_parser_error(const struct imap_parser *p)
{
	if (p->state == PS_FATAL && p->err == NULL)
		return p->fatal_err;
	return p->err != NULL ? p->err : "no error";
}

/* inside a command that is still being parsed (not discarding, not between) */
static bool in_command(const struct imap_parser *p)
{
	switch (p->state) {
	case PS_IDLE: case PS_SKIP: case PS_SKIP_LIT: case PS_SKIP_RAW: case PS_LINE:
	case PS_FATAL:
		return false;
	default:
		return true;
	}
}

const char *imap_parser_error_tag(const struct imap_parser *p)
{
	return p->err != NULL && p->tag_done && p->buf != NULL ? (const char *)p->buf : NULL;
}

bool imap_parser_literal_too_big(const struct imap_parser *p, uint64_t *size_out)
{
	if (size_out != NULL)
		*size_out = p->too_big ? p->too_big_size : 0;
	return p->too_big;
}

const char *imap_parser_cmd_tag(const struct imap_parser *p)
{
	return in_command(p) && p->tag_done && p->buf != NULL ? (const char *)p->buf : NULL;
}

const char *imap_parser_cmd_name(const struct imap_parser *p)
{
	return in_command(p) && p->name_done && p->buf != NULL ?
	    (const char *)p->buf + p->name_off : NULL;
}

uint64_t imap_parser_literal_size(const struct imap_parser *p)
{
	return p->lit_size;
}
