/* imap-msg-section: BODY[section] ranges (RFC 9051 section 6.4.5), HEADER.FIELDS,
 * BINARY[section] (RFC 3516) and header field values. */
#include <errno.h>
#include <string.h>
#include "imap-msg-private.h"

static void set_range(size_t *off, size_t *len, size_t o, size_t l)
{
	*off = o;
	*len = l;
}

static bool header_has_blank_line(const struct imap_msg *m, const struct imap_msg_part *p)
{
	const uint8_t *h = m->data + p->hdr_off;
	size_t n = p->hdr_len;

	if (n == 0 || h[n - 1] != '\n')
		return false;
	n--;
	if (n > 0 && h[n - 1] == '\r')
		n--;
	return n == 0 || h[n - 1] == '\n';
}

static void put_fields(const struct imap_msg *m, const struct imap_msg_part *p,
    bool not, const char *const *fields, size_t nfields, struct imap_mbuf *out)
{
	struct hdr_iter it;
	struct hdr_field f;

	hdr_iter_init(&it, m, p);
	while (hdr_iter_next(&it, &f)) {
		bool match = false;

		for (size_t i = 0; i < nfields && f.has_colon && !match; i++)
			match = ascii_ieq(f.name, f.name_len, fields[i]);
		if (match == not)
			continue;
		imap_mbuf_put(out, f.line, f.line_len);
	}
	/* RFC 9051 6.4.5: "the blank line is included in all header fetches, except
	 * in the case of a message that has no body and no blank line" */
	if (header_has_blank_line(m, p))
		imap_mbuf_put(out, "\r\n", 2);
}

int imap_msg_section(const struct imap_msg *m, const uint32_t *path, size_t depth,
    enum imap_msg_section_spec spec, const char *const *fields, size_t nfields,
    struct imap_mbuf *built, size_t *off_out, size_t *len_out)
{
	const struct imap_msg_part *p, *msg;

	if (m == NULL || off_out == NULL || len_out == NULL || (depth > 0 && path == NULL) ||
	    (fields == NULL && nfields > 0))
		return -EINVAL;
	set_range(off_out, len_out, 0, 0);
	for (size_t i = 0; i < depth; i++) {
		if (path[i] == 0)
			return -EINVAL;
	}
	if (depth == 0) {
		if (spec == IMAP_MSG_SEC_MIME)
			return -EINVAL;
		if (spec == IMAP_MSG_SEC_NONE) {
			set_range(off_out, len_out, 0, m->len);
			return 0;
		}
		msg = m->root;
	} else {
		p = imap_msg_find_part(m, path, depth);
		if (p == NULL)
			return 0;	/* no such part: the empty string */
		switch (spec) {
		case IMAP_MSG_SEC_NONE:
			set_range(off_out, len_out, p->body_off, p->body_len);
			return 0;
		case IMAP_MSG_SEC_MIME:
			set_range(off_out, len_out, p->hdr_off, p->hdr_len);
			return 0;
		default:
			break;
		}
		/* HEADER/TEXT only make sense on an encapsulated message */
		if ((p->flags & IMAP_MSG_PART_MESSAGE) == 0 || p->children == NULL)
			return 0;
		msg = p->children;
	}
	switch (spec) {
	case IMAP_MSG_SEC_HEADER:
		set_range(off_out, len_out, msg->hdr_off, msg->hdr_len);
		return 0;
	case IMAP_MSG_SEC_TEXT:
		set_range(off_out, len_out, msg->body_off, msg->body_len);
		return 0;
	case IMAP_MSG_SEC_HEADER_FIELDS:
	case IMAP_MSG_SEC_HEADER_FIELDS_NOT:
		if (built == NULL)
			return -EINVAL;
		put_fields(m, msg, spec == IMAP_MSG_SEC_HEADER_FIELDS_NOT, fields, nfields,
		    built);
		return built->err != 0 ? built->err : 1;
	default:
		return -EINVAL;
	}
}

/* Decodes (out != NULL) or measures (size != NULL) one part's body. */
static int decode_part(const struct imap_msg *m, const struct imap_msg_part *p,
    struct imap_mbuf *out, uint64_t *size)
{
	const uint8_t *body = m->data + p->body_off;
	size_t n = p->body_len;

	if (size != NULL)
		*size = 0;
	/* A multipart can only be 7bit/8bit/binary (RFC 2045 section 6.4); whatever it
	 * claims, it is returned as it is. A message/rfc822 part should not be encoded
	 * either (RFC 2046 section 5.2.1), but when it is, its decoded content is what
	 * BINARY is for. */
	if ((p->flags & IMAP_MSG_PART_MULTIPART) != 0 ||
	    p->cte_kind == IMAP_MSG_CTE_NONE || p->cte_kind == IMAP_MSG_CTE_7BIT ||
	    p->cte_kind == IMAP_MSG_CTE_8BIT || p->cte_kind == IMAP_MSG_CTE_BINARY) {
		if (out != NULL)
			imap_mbuf_put(out, body, n);
		if (size != NULL)
			*size = n;
		return out != NULL ? out->err : 0;
	}
	switch (p->cte_kind) {
	case IMAP_MSG_CTE_BASE64:
		b64_decode(body, n, out, size);
		break;
	case IMAP_MSG_CTE_QP:
		qp_decode(body, n, false, out, size);
		break;
	default:
		return -ENOTSUP;	/* RFC 3516 section 4.3: NO [UNKNOWN-CTE] */
	}
	return out != NULL ? out->err : 0;
}

int imap_msg_decode_binary(const struct imap_msg *m, const struct imap_msg_part *p,
    struct imap_mbuf *out)
{
	if (m == NULL || p == NULL || out == NULL)
		return -EINVAL;
	return decode_part(m, p, out, NULL);
}

/* ---- BINARY of a whole message or of a part with parts -------------------------
 * RFC 3516 4.2: BINARY[] / BINARY[n] of a part that has parts returns its content
 * "with any Content-Transfer-Encoding removed". Done as Dovecot does it (its
 * index-mail-binary.c), which is what clients compare against: every leaf's body is
 * decoded; a part whose encoding was removed gets its Content-Transfer-Encoding
 * fields replaced by "Content-Transfer-Encoding: binary" at the end of its header;
 * everything else (other headers, boundaries, preamble, epilogue, identity-encoded
 * bodies) is copied with bare LF made CRLF (RFC 5322 2.3). */

struct bin_walk {
	const struct imap_msg *m;
	struct imap_mbuf *out;
	size_t copy;		/* bytes before this are written */
	unsigned depth;
};

static bool cte_removed(enum imap_msg_cte k)
{
	return k == IMAP_MSG_CTE_BASE64 || k == IMAP_MSG_CTE_QP;
}

/* Appends s[0..n) with each LF not after a CR made CRLF. prev: the byte before s. */
static void put_crlf(struct imap_mbuf *out, const uint8_t *s, size_t n, int prev)
{
	size_t start = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] != '\n' || (i > 0 ? s[i - 1] : prev) == '\r')
			continue;
		imap_mbuf_put(out, s + start, i - start);
		imap_mbuf_put(out, "\r\n", 2);
		start = i + 1;
	}
	imap_mbuf_put(out, s + start, n - start);
}

static void bin_copy_to(struct bin_walk *w, size_t end)
{
	const uint8_t *d = w->m->data;

	if (end <= w->copy)
		return;
	put_crlf(w->out, d + w->copy, end - w->copy, w->copy > 0 ? d[w->copy - 1] : -1);
	w->copy = end;
}

/* The header of p without its Content-Transfer-Encoding fields, "binary" added. */
static void bin_header(struct bin_walk *w, const struct imap_msg_part *p)
{
	const uint8_t *h = w->m->data + p->hdr_off;
	struct hdr_iter it;
	struct hdr_field f;
	bool blank = false;

	hdr_iter_init_raw(&it, h, p->hdr_len);
	while (hdr_iter_next(&it, &f)) {
		if (f.has_colon && ascii_ieq(f.name, f.name_len, "content-transfer-encoding"))
			continue;
		put_crlf(w->out, f.line, f.line_len, f.line > h ? f.line[-1] : -1);
	}
	/* the blank line that ends the header, if it has one */
	if (p->hdr_len >= 1 && h[p->hdr_len - 1] == '\n' &&
	    (p->hdr_len == 1 || h[p->hdr_len - 2] == '\n' ||
	     (p->hdr_len >= 3 && h[p->hdr_len - 2] == '\r' && h[p->hdr_len - 3] == '\n')))
		blank = true;
	imap_mbuf_puts(w->out, "Content-Transfer-Encoding: binary\r\n");
	if (blank)
		imap_mbuf_put(w->out, "\r\n", 2);
}

static int bin_part(struct bin_walk *w, const struct imap_msg_part *p, bool include_hdr)
{
	size_t end = p->body_off + p->body_len;
	int r;

	if (++w->depth > IMAP_MSG_MAX_DEPTH_CAP)
		return -E2BIG;
	/* RFC 3516 4.3: NO [UNKNOWN-CTE] if any part of it cannot be decoded */
	if (p->cte_kind == IMAP_MSG_CTE_UNKNOWN)
		return -ENOTSUP;
	if (include_hdr && cte_removed(p->cte_kind)) {
		bin_copy_to(w, p->hdr_off);
		bin_header(w, p);
	} else if (include_hdr) {
		bin_copy_to(w, p->body_off);
	}
	w->copy = p->body_off;
	if (p->children != NULL) {
		for (const struct imap_msg_part *ch = p->children; ch != NULL; ch = ch->next)
			if ((r = bin_part(w, ch, true)) < 0)
				return r;
		bin_copy_to(w, end);
	} else if (cte_removed(p->cte_kind)) {
		if ((r = decode_part(w->m, p, w->out, NULL)) < 0)
			return r;
	} else {
		bin_copy_to(w, end);
	}
	w->copy = end;
	w->depth--;
	return w->out->err;
}

/* Parts whose BINARY is the rewritten subtree: the message, and any part with parts
 * that is not itself encoded (an encoded message/rfc822 is decoded as a leaf). */
static bool bin_is_tree(const struct imap_msg_part *p, size_t depth)
{
	return depth == 0 || (p->children != NULL && !cte_removed(p->cte_kind));
}

int imap_msg_binary(const struct imap_msg *m, const uint32_t *path, size_t depth,
    struct imap_mbuf *out)
{
	const struct imap_msg_part *p;

	if (m == NULL || out == NULL || (depth > 0 && path == NULL))
		return -EINVAL;
	p = depth == 0 ? m->root : imap_msg_find_part(m, path, depth);
	if (p == NULL)
		return 0;
	if (bin_is_tree(p, depth)) {
		struct bin_walk w = { m, out, depth == 0 ? p->hdr_off : p->body_off, 0 };

		return bin_part(&w, p, depth == 0);
	}
	return decode_part(m, p, out, NULL);
}

int imap_msg_binary_size(const struct imap_msg *m, const uint32_t *path, size_t depth,
    uint64_t *size_out)
{
	const struct imap_msg_part *p;

	if (m == NULL || size_out == NULL || (depth > 0 && path == NULL))
		return -EINVAL;
	*size_out = 0;
	p = depth == 0 ? m->root : imap_msg_find_part(m, path, depth);
	if (p == NULL)
		return 0;
	if (bin_is_tree(p, depth)) {
		struct imap_mbuf b;
		int r;

		imap_mbuf_init(&b, 0);
		r = imap_msg_binary(m, path, depth, &b);
		*size_out = b.len;
		if (b.d != NULL)
			explicit_bzero(b.d, b.cap);	/* decoded mail text */
		imap_mbuf_release(&b);
		return r;
	}
	return decode_part(m, p, NULL, size_out);
}

int imap_msg_header_get(const struct imap_msg *m, const struct imap_msg_part *part,
    const char *name, unsigned idx, unsigned flags, struct imap_mbuf *out)
{
	const struct imap_msg_part *p = part != NULL ? part : (m != NULL ? m->root : NULL);
	struct hdr_iter it;
	struct hdr_field f;

	if (p == NULL || name == NULL || out == NULL)
		return -EINVAL;
	hdr_iter_init(&it, m, p);
	while (hdr_iter_next(&it, &f)) {
		if (!hdr_name_eq(&f, name) || idx-- > 0)
			continue;
		if (flags == IMAP_MSG_HDR_RAW) {
			imap_mbuf_put(out, f.value, f.value_len);
		} else if ((flags & IMAP_MSG_HDR_DECODE) == IMAP_MSG_HDR_DECODE) {
			return imap_msg_decode_header((const char *)f.value, f.value_len, out);
		} else {
			mbuf_put_unfolded(out, f.value, f.value_len);
		}
		return out->err;
	}
	return -ENOENT;
}

int part_binary_size(const struct imap_msg *m, const struct imap_msg_part *p,
    uint64_t *size_out)
{
	return decode_part(m, p, NULL, size_out);
}
