/* Fuzz target for imapd/imap-msg: the input is a whole message. Runs everything a
 * FETCH or SEARCH can run on it: parse, ENVELOPE, BODY/BODYSTRUCTURE, every section
 * of every part, BINARY and BINARY.SIZE (which must agree), header decoding, the Date,
 * search, and the cache blob (build, parse, compare, resolve every path, and parse a
 * corrupted copy). One input in four is parsed with tiny limits so the limit paths
 * run too. */
#include <stdlib.h>
#include <string.h>
#include "fuzz.h"
#include "imap-msg.h"

static void check(int cond)
{
	if (!cond)
		abort();
}

static size_t path_of(const struct imap_msg_part *p, uint32_t *path)
{
	char buf[1024], *s = buf;
	size_t n = 0;

	if (imap_msg_part_path(p, buf, sizeof(buf)) < 0)
		return 0;
	while (*s != '\0' && n < 200) {
		path[n++] = (uint32_t)strtoul(s, &s, 10);
		if (*s == '.')
			s++;
	}
	return n;
}

static void sections(const struct imap_msg *m, const uint32_t *path, size_t depth,
    struct imap_mbuf *b)
{
	static const char *const fields[] = { "subject", "FROM", "content-type", "x" };
	static const enum imap_msg_section_spec specs[] = {
		IMAP_MSG_SEC_NONE, IMAP_MSG_SEC_HEADER, IMAP_MSG_SEC_HEADER_FIELDS,
		IMAP_MSG_SEC_HEADER_FIELDS_NOT, IMAP_MSG_SEC_TEXT, IMAP_MSG_SEC_MIME,
	};
	size_t size = imap_msg_size(m);

	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		size_t off = 0, len = 0;
		int r;

		imap_mbuf_reset(b);
		r = imap_msg_section(m, path, depth, specs[i], fields, 4, b, &off, &len);
		if (r == 0)
			check(off <= size && len <= size - off);
	}
	{
		uint64_t bsize = 0;
		int r1, r2;

		imap_mbuf_reset(b);
		r1 = imap_msg_binary(m, path, depth, b);
		r2 = imap_msg_binary_size(m, path, depth, &bsize);
		/* a subtree rewrite can outgrow b's cap where the counting cannot */
		check(r1 == r2 || b->err != 0);
		if (r1 == 0 && b->err == 0)
			check(bsize == b->len);
	}
}

static void cache(const struct imap_msg *m, const uint8_t *data, size_t size)
{
	struct imap_mbuf blob, t;
	struct imap_msg_cache c;
	uint32_t i = 0;

	imap_mbuf_init(&blob, 0);
	imap_mbuf_init(&t, 0);
	if (imap_msg_cache_build(m, &blob) != 0)
		goto out;
	check(imap_msg_cache_parse(blob.d, blob.len, &c) == 0);
	check(c.msg_size == imap_msg_size(m) && c.nparts == imap_msg_part_count(m));
	imap_msg_bodystructure(m, true, &t);
	check(t.err != 0 || (t.len == c.bodystructure_len &&
	    memcmp(t.d, c.bodystructure, t.len) == 0));
	for (const struct imap_msg_part *p = imap_msg_root(m); p != NULL;
	    p = imap_msg_part_next(p), i++) {
		struct imap_msg_cache_part cp;
		uint32_t path[200];
		size_t depth = path_of(p, path);
		const struct imap_msg_part *q = imap_msg_find_part(m, path, depth);
		int ci = imap_msg_cache_find_part(&c, path, depth);

		check(imap_msg_cache_part(&c, i, &cp) == 0);
		check(cp.hdr_off == p->hdr_off && cp.body_len == p->body_len);
		check((q == NULL) == (ci < 0));
		if (q != NULL) {
			imap_msg_cache_part(&c, (uint32_t)ci, &cp);
			check(cp.hdr_off == q->hdr_off && cp.body_off == q->body_off);
		}
	}
	/* a corrupted blob: any answer but a crash */
	if (size > 0) {
		size_t at = ((size_t)data[size - 1] * 131 + size) % blob.len;

		blob.d[at] ^= (uint8_t)(data[0] | 1);
		if (imap_msg_cache_parse(blob.d, blob.len, &c) == 0) {
			uint32_t path[3] = { 1, 2, 1 };

			(void)imap_msg_cache_find_part(&c, path, 3);
			for (uint32_t k = 0; k < c.nparts; k++) {
				struct imap_msg_cache_part cp;

				check(imap_msg_cache_part(&c, k, &cp) == 0);
				check((uint64_t)cp.body_off + cp.body_len <= c.msg_size);
			}
		}
	}
out:
	imap_mbuf_release(&blob);
	imap_mbuf_release(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imap_msg_limits lim;
	struct imap_msg *m;
	struct imap_mbuf b;
	time_t t;
	int tz;
	char needle[8];

	imap_msg_limits_default(&lim);
	if (size % 4 == 0) {
		lim.max_parts = 8;
		lim.max_depth = 3;
		lim.max_header_bytes = 256;
	}
	if (imap_msg_parse(data, size, &lim, &m) != 0)
		return 0;
	imap_mbuf_init(&b, 1u << 24);
	imap_msg_envelope(m, NULL, &b);
	imap_mbuf_reset(&b);
	imap_msg_bodystructure(m, true, &b);
	imap_mbuf_reset(&b);
	imap_msg_bodystructure(m, false, &b);
	sections(m, NULL, 0, &b);

	for (const struct imap_msg_part *p = imap_msg_root(m); p != NULL;
	    p = imap_msg_part_next(p)) {
		uint32_t path[200];
		size_t depth = path_of(p, path);

		check(p->hdr_off + p->hdr_len == p->body_off);
		check(p->body_off <= size && p->body_len <= size - p->body_off);
		sections(m, path, depth, &b);
		if (depth < 200) {
			path[depth] = 1;	/* one level below */
			sections(m, path, depth + 1, &b);
		}
		if ((p->flags & (IMAP_MSG_PART_MESSAGE | IMAP_MSG_PART_MSG_ROOT)) != 0) {
			imap_mbuf_reset(&b);
			check(imap_msg_envelope(m, p, &b) == 0 || b.err != 0);
		}
		imap_mbuf_reset(&b);
		(void)imap_msg_param_decoded(p->params, p->nparams, "name", &b);
		imap_mbuf_reset(&b);
		(void)imap_msg_param_decoded(p->disp_params, p->ndisp_params, "filename", &b);
	}
	imap_mbuf_reset(&b);
	(void)imap_msg_header_get(m, NULL, "subject", 0, IMAP_MSG_HDR_DECODE, &b);
	imap_mbuf_reset(&b);
	(void)imap_msg_header_get(m, NULL, "from", 0, IMAP_MSG_HDR_DECODE, &b);
	(void)imap_msg_date(m, &t, &tz);
	(void)imap_msg_parse_date((const char *)data, size, &t, &tz);

	/* a needle from the input, so matches happen */
	memset(needle, 0, sizeof(needle));
	if (size > 16)
		memcpy(needle, data + size / 2, 4);
	for (size_t i = 0; i < 4; i++)
		needle[i] = needle[i] == '\0' ? 'e' : needle[i];
	(void)imap_msg_search_text(m, needle, IMAP_MSG_SEARCH_TEXT);
	(void)imap_msg_search_header(m, "subject", needle);
	{
		/* FROM/TO/CC/BCC: the address list parsed and written as text */
		struct imap_msg_searcher *ms = NULL;
		const struct imap_msg_part *root = imap_msg_root(m);

		if (imap_msg_searcher_new(needle, strlen(needle), &ms) == 0) {
			(void)imap_msg_searcher_header(ms, imap_msg_data(m) + root->hdr_off,
			    root->hdr_len, "from", IMAP_MSG_SEARCH_ADDRESS);
			(void)imap_msg_searcher_header(ms, imap_msg_data(m) + root->hdr_off,
			    root->hdr_len, "cc", IMAP_MSG_SEARCH_ADDRESS);
			(void)imap_msg_searcher_text(ms, m, IMAP_MSG_SEARCH_BODY);
			imap_msg_searcher_free(&ms);
		}
	}

	cache(m, data, size);
	imap_mbuf_release(&b);
	imap_msg_free(&m);

	/* the input as a cache blob, too */
	{
		struct imap_msg_cache c;

		if (imap_msg_cache_parse(data, size, &c) == 0) {
			uint32_t path[2] = { 1, 1 };

			(void)imap_msg_cache_find_part(&c, path, 2);
		}
	}
	return 0;
}
