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

int imap_msg_binary(const struct imap_msg *m, const uint32_t *path, size_t depth,
    struct imap_mbuf *out)
{
	const struct imap_msg_part *p;

	if (m == NULL || out == NULL || (depth > 0 && path == NULL))
		return -EINVAL;
	if (depth == 0) {
		imap_mbuf_put(out, m->data, m->len);
		return out->err;
	}
	if ((p = imap_msg_find_part(m, path, depth)) == NULL)
		return 0;
	return decode_part(m, p, out, NULL);
}

int imap_msg_binary_size(const struct imap_msg *m, const uint32_t *path, size_t depth,
    uint64_t *size_out)
{
	const struct imap_msg_part *p;

	if (m == NULL || size_out == NULL || (depth > 0 && path == NULL))
		return -EINVAL;
	*size_out = 0;
	if (depth == 0) {
		*size_out = m->len;
		return 0;
	}
	if ((p = imap_msg_find_part(m, path, depth)) == NULL)
		return 0;
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
