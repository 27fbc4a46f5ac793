/* FETCH / UID FETCH (RFC 9051 6.4.5, 7.5.2; RFC 3516 BINARY; RFC 7162 MODSEQ,
 * CHANGEDSINCE, VANISHED; RFC 8474 EMAILID/THREADID; RFC 8514 SAVEDATE).
 *
 * Resumable: messages are answered in batches; when the output queue is full the
 * command pauses and continues as the client reads (bounded memory for FETCH 1:*).
 * ENVELOPE / BODYSTRUCTURE / BODY / BINARY.SIZE / header sections come from the
 * sealed cache; bodies are read only when a body section asks for them, and a
 * BODY[]<partial> reads only the chunks that cover the range. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "imap-engine-private.h"
#include "log.h"

#define FETCH_BATCH 64
/* A body range at least this big, when it is the last item of a response, is sent in
 * pieces as the client reads, so memory stays bounded whatever the message size. */
#define STREAM_MIN (256 * 1024)
#define STREAM_PIECE (256 * 1024)

struct fetch_ctx {
	struct imap_fetch *f;
	size_t *idx;
	size_t n, pos;
	bool *changed;		/* \Seen set by this FETCH: show FLAGS */
	size_t seen_upto;	/* set_seen done for idx[0 .. seen_upto) */
	bool uid;
	bool gone;
	bool unknown_cte;
	int err;
	struct pending_cache pend;
	/* a literal being streamed: bytes [soff, soff + sleft) of message suid */
	uint32_t suid;
	uint64_t soff, sleft;
};

static void fetch_ctx_free(void *arg)
{
	struct fetch_ctx *fc = arg;

	if (fc == NULL)
		return;
	imap_fetch_free(&fc->f);
	free(fc->idx);
	free(fc->changed);
	pending_clear(&fc->pend);
	free(fc);
}

static enum imap_msg_section_spec spec_of(enum imap_section_spec s)
{
	switch (s) {
	case IMAP_SPEC_HEADER: return IMAP_MSG_SEC_HEADER;
	case IMAP_SPEC_HEADER_FIELDS: return IMAP_MSG_SEC_HEADER_FIELDS;
	case IMAP_SPEC_HEADER_FIELDS_NOT: return IMAP_MSG_SEC_HEADER_FIELDS_NOT;
	case IMAP_SPEC_TEXT: return IMAP_MSG_SEC_TEXT;
	case IMAP_SPEC_MIME: return IMAP_MSG_SEC_MIME;
	default: return IMAP_MSG_SEC_NONE;
	}
}

static bool is_header_spec(enum imap_section_spec s)
{
	return s == IMAP_SPEC_HEADER || s == IMAP_SPEC_HEADER_FIELDS ||
	    s == IMAP_SPEC_HEADER_FIELDS_NOT;
}

/* Writes "LABEL SP data" applying <origin.length>. */
static int out_section(struct imap_client *c, const char *label,
    const struct imap_fetch_section *sec, const uint8_t *p, size_t len, bool binary)
{
	int r;

	if (sec != NULL && sec->partial) {
		if (sec->origin >= len) {
			len = 0;
		} else {
			p += sec->origin;
			len -= (size_t)sec->origin;
			if (sec->length < len)
				len = (size_t)sec->length;
		}
	}
	if ((r = out_str(c, label)) < 0 || (r = out_str(c, " ")) < 0)
		return r;
	if (len == 0)
		return out_str(c, "\"\"");
	if (memchr(p, '\0', len) == NULL)
		return out_literal(c, p, len, false);
	/* RFC 3516 4.2: BINARY content with NUL needs literal8. */
	if (binary)
		return out_literal(c, p, len, true);
	/* RFC 9051 4.3: a plain literal cannot carry NUL; like Dovecot, send 0x80 in its
	 * place (same length, so sizes and partial offsets still hold). */
	{
		size_t start;

		if ((r = out_printf(c, "{%zu}\r\n", len)) < 0)
			return r;
		start = c->out->len;
		if ((r = out_put(c, p, len)) < 0)
			return r;
		for (size_t i = start; i < c->out->len; i++)
			if (c->out->d[i] == 0)
				c->out->d[i] = 0x80;
	}
	return 0;
}

static int fetch_section(struct msrc *s, const struct imap_fetch_section *sec, uint64_t size)
{
	struct imap_client *c = s->c;
	struct imap_mbuf built;
	size_t off = 0, len = 0;
	int r;

	imap_mbuf_init(&built, 0);
	if (sec->kind == IMAP_SECTION_BINARY_SIZE) {
		uint64_t bs = 0;

		bool tree = sec->nparts == 0;

		if (!tree) {
			struct imap_msg_cache_part rec;
			int i;

			if ((r = msrc_cache(s)) < 0)
				goto out;
			i = imap_msg_cache_find_part(&s->mc.mc, sec->part, sec->nparts);
			if (i >= 0) {
				if ((r = imap_msg_cache_part(&s->mc.mc, (uint32_t)i, &rec)) < 0)
					goto out;
				/* a part with parts is rewritten as a whole (see
				 * imap_msg_binary): the summary has no size for that */
				tree = (rec.flags & (IMAP_MSG_PART_MULTIPART |
				    IMAP_MSG_PART_MESSAGE)) != 0 &&
				    rec.cte_kind != IMAP_MSG_CTE_BASE64 &&
				    rec.cte_kind != IMAP_MSG_CTE_QP;
				if (!tree && rec.binary_size == UINT64_MAX) {
					r = -ENOTSUP;
					goto out;
				}
				bs = rec.binary_size;
			}
		}
		if (tree) {
			/* RFC 3516 4.2: the size of what BINARY[...] would return, which
			 * for a whole message means decoding it (rarely asked: clients
			 * ask BINARY.SIZE of leaf parts, which the summary has) */
			if ((r = msrc_body(s, true)) < 0)
				goto out;
			if ((r = imap_msg_binary_size(s->pm, sec->part, sec->nparts, &bs)) < 0)
				goto out;
		}
		r = out_printf(c, "%s %llu", sec->label, (unsigned long long)bs);
		goto out;
	}
	if (sec->kind == IMAP_SECTION_BINARY) {
		if ((r = msrc_body(s, true)) < 0)
			goto out;
		if ((r = imap_msg_binary(s->pm, sec->part, sec->nparts, &built)) < 0)
			goto out;
		r = out_section(c, sec->label, sec, built.d, built.len, true);
		goto out;
	}
	/* BODY[...] */
	if (sec->nparts == 0 && is_header_spec(sec->spec) && (r = msrc_header(s)) != -E2BIG) {
		/* (-E2BIG: a header too big for a summary; from the whole message below) */
		if (r < 0)
			goto out;
		r = imap_msg_section(s->hm, NULL, 0, spec_of(sec->spec),
		    (const char *const *)sec->fields, sec->nfields, &built, &off, &len);
		if (r < 0)
			goto out;
		r = out_section(c, sec->label, sec, r == 1 ? built.d : s->mc.hdr + off,
		    r == 1 ? built.len : len, false);
		goto out;
	}
	if (sec->nparts == 0 && sec->spec == IMAP_SPEC_NONE && sec->partial && s->data == NULL) {
		/* Only the chunks that cover <origin.length>. */
		struct sbuf *part = NULL;

		if (sec->origin >= size) {
			r = out_section(c, sec->label, NULL, NULL, 0, false);
			goto out;
		}
		r = vault_msg_read(s->t, c->u->k, s->mbox, s->uid, sec->origin, sec->length, &part);
		if (r == 0)
			r = out_section(c, sec->label, NULL, part->d, part->len, false);
		vault_sbuf_release(c->u->v, &part);
		goto out;
	}
	if (sec->nparts == 0 && sec->spec == IMAP_SPEC_NONE) {
		if ((r = msrc_body(s, false)) < 0)
			goto out;
		r = out_section(c, sec->label, sec, s->data->d, s->data->len, false);
		goto out;
	}
	if ((r = msrc_body(s, true)) < 0)
		goto out;
	r = imap_msg_section(s->pm, sec->part, sec->nparts, spec_of(sec->spec),
	    (const char *const *)sec->fields, sec->nfields, &built, &off, &len);
	if (r < 0)
		goto out;
	r = out_section(c, sec->label, sec, r == 1 ? built.d : s->data->d + off,
	    r == 1 ? built.len : len, false);
out:
	if (built.d != NULL)
		explicit_bzero(built.d, built.cap);
	imap_mbuf_release(&built);
	return r;
}

/* Starts a streamed literal: the rest of the response comes from stream_more. */
static int stream_start(struct imap_client *c, struct fetch_ctx *fc, const char *label,
    uint32_t uid, uint64_t off, uint64_t len)
{
	fc->suid = uid;
	fc->soff = off;
	fc->sleft = len;
	return out_printf(c, "%s {%llu}\r\n", label, (unsigned long long)len);
}

/* Sends pieces of the streamed literal while the output queue has room. 0 when done
 * (the response is closed), 1 when more is to come. A message that disappears under
 * a promised literal cannot be answered any more: the connection ends. */
static int stream_more(struct imap_client *c, struct fetch_ctx *fc, struct vault_txn *t)
{
	while (fc->sleft > 0) {
		struct sbuf *piece = NULL;
		uint64_t n = fc->sleft < STREAM_PIECE ? fc->sleft : STREAM_PIECE;
		size_t start;
		int r;

		if (out_pending(c) >= OUT_HIGH)
			return 1;
		r = vault_msg_read(t, c->u->k, c->view->st->id, fc->suid, fc->soff, n, &piece);
		if (r == 0 && piece->len != n)
			r = -EIO;
		if (r < 0) {
			vault_sbuf_release(c->u->v, &piece);
			log_warn("session: message vanished during a FETCH: %s", vault_strerror(r));
			c->fatal = true;
			fc->sleft = 0;
			return 0;
		}
		start = c->out->len;
		r = out_put(c, piece->d, piece->len);
		vault_sbuf_release(c->u->v, &piece);
		if (r < 0)
			return r;
		/* RFC 9051 4.3: no NUL in a plain literal (see out_section) */
		for (size_t i = start; i < c->out->len; i++)
			if (c->out->d[i] == 0)
				c->out->d[i] = 0x80;
		fc->soff += n;
		fc->sleft -= n;
	}
	return out_str(c, ")\r\n");
}

static int fetch_one(struct imap_client *c, struct fetch_ctx *fc, struct vault_txn *t,
    size_t vi, bool flags_changed)
{
	struct view *v = c->view;
	struct mbox_state *st = v->st;
	const struct imap_fetch *f = fc->f;
	uint32_t items = f->items;
	uint32_t uid = v->uids[vi];
	const struct mmsg *m = mbox_state_find(st, uid);
	struct msrc s;
	size_t start = c->out->len;
	const char *sp = "";
	int r;

	msrc_init(&s, c, t, st->id, uid, &fc->pend);
	if (m == NULL) {
		/* Expunged by another connection; its EXPUNGE comes later (RFC 2180 4.1). */
		fc->gone = true;
		return 0;
	}
	if ((r = out_printf(c, "* %zu FETCH (", vi + 1)) < 0)
		goto fail;
#define SEP() do { if ((r = out_str(c, sp)) < 0) goto fail; sp = " "; } while (0)
	/* With QRESYNC every FETCH carries the UID (RFC 7162 3.2.4 lets the client
	 * rely on it); it never hurts. */
	if (fc->uid || (items & IMAP_FETCH_UID) || (c->enabled & EN_QRESYNC)) {
		SEP();
		if ((r = out_printf(c, "UID %u", uid)) < 0)
			goto fail;
	}
	if ((items & IMAP_FETCH_FLAGS) || flags_changed) {
		SEP();
		if ((r = out_str(c, "FLAGS ")) < 0 ||
		    (r = out_flags(c, st, m, st->recent_owner == v)) < 0)
			goto fail;
	}
	if (items & IMAP_FETCH_INTERNALDATE) {
		char date[IMAP_DATETIME_LEN + 1];

		if (imap_datetime_format((time_t)m->internal_date, m->internal_tz, date) < 0)
			imap_datetime_format(0, 0, date);
		SEP();
		if ((r = out_printf(c, "INTERNALDATE \"%s\"", date)) < 0)
			goto fail;
	}
	if (items & IMAP_FETCH_RFC822_SIZE) {
		SEP();
		if ((r = out_printf(c, "RFC822.SIZE %llu", (unsigned long long)m->size)) < 0)
			goto fail;
	}
	if (items & IMAP_FETCH_MODSEQ) {
		SEP();
		if ((r = out_printf(c, "MODSEQ (%llu)", (unsigned long long)m->modseq)) < 0)
			goto fail;
	}
	if (items & IMAP_FETCH_EMAILID) {
		char hex[33];

		crypto_hex_encode(m->emailid, sizeof(m->emailid), hex, sizeof(hex));
		SEP();
		if ((r = out_printf(c, "EMAILID (M%s)", hex)) < 0)
			goto fail;
	}
	if (items & IMAP_FETCH_THREADID) {
		SEP();
		if ((r = out_str(c, "THREADID NIL")) < 0)	/* RFC 8474 5.2: no threads */
			goto fail;
	}
	if (items & IMAP_FETCH_SAVEDATE) {
		char date[IMAP_DATETIME_LEN + 1];

		SEP();
		if (m->save_date == 0 || imap_datetime_format((time_t)m->save_date, 0, date) < 0)
			r = out_str(c, "SAVEDATE NIL");
		else
			r = out_printf(c, "SAVEDATE \"%s\"", date);
		if (r < 0)
			goto fail;
	}
	if (items & (IMAP_FETCH_ENVELOPE | IMAP_FETCH_BODY | IMAP_FETCH_BODYSTRUCTURE)) {
		if ((r = msrc_cache(&s)) < 0)
			goto fail;
		if (items & IMAP_FETCH_ENVELOPE) {
			SEP();
			if ((r = out_str(c, "ENVELOPE ")) < 0 ||
			    (r = out_put(c, s.mc.mc.envelope, s.mc.mc.envelope_len)) < 0)
				goto fail;
		}
		if (items & IMAP_FETCH_BODYSTRUCTURE) {
			SEP();
			if ((r = out_str(c, "BODYSTRUCTURE ")) < 0 ||
			    (r = out_put(c, s.mc.mc.bodystructure, s.mc.mc.bodystructure_len)) < 0)
				goto fail;
		}
		if (items & IMAP_FETCH_BODY) {
			SEP();
			if ((r = out_str(c, "BODY ")) < 0 ||
			    (r = out_put(c, s.mc.mc.body, s.mc.mc.body_len)) < 0)
				goto fail;
		}
	}
	if (items & IMAP_FETCH_RFC822_HEADER) {
		if ((r = msrc_cache(&s)) < 0)
			goto fail;
		SEP();
		if ((r = out_section(c, "RFC822.HEADER", NULL, s.mc.hdr, s.mc.hdrlen, false)) < 0)
			goto fail;
	}
	if (items & IMAP_FETCH_RFC822_TEXT) {
		struct imap_fetch_section sec = { .kind = IMAP_SECTION_BODY, .spec = IMAP_SPEC_TEXT,
		    .label = (char *)"RFC822.TEXT" };

		SEP();
		if ((r = fetch_section(&s, &sec, m->size)) < 0)
			goto fail;
	}
	if (items & IMAP_FETCH_RFC822) {
		SEP();
		if (f->nsections == 0 && m->size >= STREAM_MIN) {
			r = stream_start(c, fc, "RFC822", uid, 0, m->size);
			msrc_clear(&s);
			return r;
		}
		if ((r = msrc_body(&s, false)) < 0 ||
		    (r = out_section(c, "RFC822", NULL, s.data->d, s.data->len, false)) < 0)
			goto fail;
	}
	for (size_t i = 0; i < f->nsections; i++) {
		const struct imap_fetch_section *sec = &f->sections[i];

		SEP();
		if (i + 1 == f->nsections && sec->kind == IMAP_SECTION_BODY && sec->nparts == 0 &&
		    sec->spec == IMAP_SPEC_NONE) {
			uint64_t off = sec->partial ? sec->origin : 0;
			uint64_t len = off >= m->size ? 0 : m->size - off;

			if (sec->partial && sec->length < len)
				len = sec->length;
			if (len >= STREAM_MIN) {
				r = stream_start(c, fc, sec->label, uid, off, len);
				msrc_clear(&s);
				return r;
			}
		}
		if ((r = fetch_section(&s, sec, m->size)) < 0)
			goto fail;
	}
#undef SEP
	r = out_str(c, ")\r\n");
	msrc_clear(&s);
	return r;
fail:
	msrc_clear(&s);
	/* Take back the partial response; nothing after `start` was flushed. */
	if (c->out->len > start) {
		explicit_bzero(c->out->d + start, c->out->len - start);
		c->out->len = start;
	}
	if (r == -ENOTSUP) {
		fc->unknown_cte = true;
		return 0;
	}
	if (r == VAULT_ERR_NOMSG) {
		fc->gone = true;
		return 0;
	}
	if (r == -ENOMEM)
		return r;
	log_warn("session: FETCH of a message failed: %s", vault_strerror(r));
	fc->err = r;
	return 0;
}

/* set_seen's txn (engine_write callback, replayable: ms is cleared each run). */
struct seen_run {
	struct fetch_ctx *fc;
	size_t from, to;
	uint64_t *ms;		/* to - from: the new modseq, 0 = not set */
};

static int seen_txn(struct imap_client *c, struct vault_txn *t, void *arg)
{
	struct seen_run *sr = arg;
	struct mbox_state *st = c->view->st;
	int r;

	memset(sr->ms, 0, (sr->to - sr->from) * sizeof(*sr->ms));
	if ((r = mbox_state_refresh(st, t)) < 0)
		return r;
	for (size_t i = sr->from; i < sr->to; i++) {
		const struct mmsg *m = mbox_state_find(st, c->view->uids[sr->fc->idx[i]]);
		char *kw[VAULT_MAX_KEYWORDS];

		if (m == NULL || (m->flags & VAULT_F_SEEN))
			continue;
		for (size_t k = 0; k < m->nkw; k++)
			kw[k] = st->kw[m->kw[k]];
		r = vault_msg_set_flags(t, c->u->k, st->id, m->uid, m->flags | VAULT_F_SEEN, kw,
		    m->nkw, &sr->ms[i - sr->from]);
		if (r == VAULT_ERR_NOMSG)
			continue;
		if (r < 0)
			return r;
	}
	return 0;
}

/* RFC 9051 6.4.5: a non-PEEK body fetch sets \Seen (read-write only). Done before
 * the batch is answered so the responses carry the new flags. */
static int set_seen(struct imap_client *c, struct fetch_ctx *fc, size_t from, size_t to,
    bool *changed)
{
	struct mbox_state *st = c->view->st;
	struct seen_run sr;
	uint64_t *ms;
	size_t nset = 0;
	int r;

	for (size_t i = from; i < to; i++) {
		const struct mmsg *m = mbox_state_find(st, c->view->uids[fc->idx[i]]);

		if (m != NULL && !(m->flags & VAULT_F_SEEN))
			nset++;
	}
	if (nset == 0)
		return 0;
	if ((ms = calloc(to - from, sizeof(*ms))) == NULL)
		return -ENOMEM;
	sr = (struct seen_run){ .fc = fc, .from = from, .to = to, .ms = ms };
	if ((r = engine_write(c, seen_txn, &sr)) < 0)
		goto out;
	for (size_t i = from; i < to; i++) {
		struct mmsg *m = mbox_state_find(st, c->view->uids[fc->idx[i]]);
		char *kw[VAULT_MAX_KEYWORDS];

		if (m == NULL || ms[i - from] == 0)
			continue;
		for (size_t k = 0; k < m->nkw; k++)
			kw[k] = st->kw[m->kw[k]];
		if ((r = mbox_state_set_flags(st, m->uid, m->flags | VAULT_F_SEEN, kw, m->nkw,
		    ms[i - from], c)) < 0)
			goto out;
		changed[i - from] = true;
	}
out:
	free(ms);
	return r;
}

struct uidvec {
	uint32_t *u;
	size_t n, cap;
	const struct imap_seqset *set;
};

/* VANISHED candidates inside the requested set ("*" unbounded: the set is not
 * normalized yet). */
static int vanished_collect(uint32_t uid, void *arg)
{
	struct uidvec *uv = arg;

	if (!imap_seqset_contains(uv->set, uid, UINT32_MAX))
		return 0;
	if (uv->n == uv->cap) {
		size_t ncap = uv->cap ? uv->cap * 2 : 64;
		uint32_t *nu = realloc(uv->u, ncap * sizeof(*nu));

		if (nu == NULL)
			return -ENOMEM;
		uv->u = nu;
		uv->cap = ncap;
	}
	uv->u[uv->n++] = uid;
	return 0;
}

static int fetch_finish(struct imap_client *c, struct fetch_ctx *fc)
{
	const struct imap_cmd *cmd = c->cmd;

	if (fc->unknown_cte)
		return cmd_no(c, cmd, "[UNKNOWN-CTE] Unknown Content-Transfer-Encoding");
	if (fc->err != 0)
		return cmd_vault_err(c, cmd, fc->err);
	if (fc->gone)
		return cmd_no(c, cmd, "[EXPUNGEISSUED] Some messages were expunged");
	return cmd_ok(c, cmd, "Fetch completed");
}

static int fetch_resume(struct imap_client *c)
{
	struct fetch_ctx *fc = c->resume_ctx;
	struct vault_txn *t = NULL;
	size_t end;
	int r = 0;

	if (c->view == NULL)
		return fetch_finish(c, fc);
	end = fc->pos + FETCH_BATCH < fc->n ? fc->pos + FETCH_BATCH : fc->n;
	if (fc->f->sets_seen && !c->view->readonly && end > fc->seen_upto) {
		size_t from = fc->seen_upto > fc->pos ? fc->seen_upto : fc->pos;

		if (fc->changed == NULL && (fc->changed = calloc(fc->n, sizeof(bool))) == NULL)
			return -ENOMEM;
		if ((r = set_seen(c, fc, from, end, fc->changed + from)) < 0) {
			fc->err = r;
			fc->pos = fc->n;
			return fetch_finish(c, fc);
		}
		fc->seen_upto = end;
	}
	if ((r = vault_txn_begin(c->u->v, false, &t)) < 0) {
		fc->err = r;
		return fetch_finish(c, fc);
	}
	if (fc->sleft > 0 && (r = stream_more(c, fc, t)) != 0) {
		vault_txn_abort(&t);
		return r < 0 ? r : 1;
	}
	while (fc->pos < end && !c->fatal) {
		size_t i = fc->pos++;

		if ((r = fetch_one(c, fc, t, fc->idx[i], fc->changed != NULL && fc->changed[i])) < 0)
			break;
		if (fc->sleft > 0 && (r = stream_more(c, fc, t)) != 0) {
			if (r > 0)
				r = 0;
			break;
		}
		if (out_pending(c) >= OUT_HIGH)
			break;
	}
	vault_txn_abort(&t);
	pending_flush(c, c->view->st->id, &fc->pend);
	if (r < 0)
		return r;
	if (c->fatal)
		return 0;
	if (fc->pos < fc->n || fc->sleft > 0)
		return 1;
	return fetch_finish(c, fc);
}

int cmd_fetch(struct imap_client *c, struct imap_cmd *cmd)
{
	struct fetch_ctx *fc;
	const char *err = NULL;
	int r;

	if ((fc = calloc(1, sizeof(*fc))) == NULL)
		return -ENOMEM;
	fc->uid = cmd_is_uid(cmd);
	if ((r = imap_fetch_parse(cmd->args, cmd->nargs, &fc->f, &err)) < 0) {
		fetch_ctx_free(fc);
		if (r == -ENOMEM)
			return r;
		return cmd_bad(c, cmd, "%s", err ? err : "Invalid FETCH arguments");
	}
	/* RFC 7162 3.2.6: VANISHED only in UID FETCH, after ENABLE QRESYNC. */
	if (fc->f->vanished && (!fc->uid || !(c->enabled & EN_QRESYNC))) {
		fetch_ctx_free(fc);
		return cmd_bad(c, cmd, "VANISHED needs UID FETCH and QRESYNC");
	}
	if (fc->f->items & IMAP_FETCH_MODSEQ)
		c->condstore = true;	/* RFC 7162 3.1: CONDSTORE-enabling */
	if (fc->f->vanished) {
		/* RFC 7162 3.2.6: expunged UIDs in the set since CHANGEDSINCE. */
		struct vault_txn *t = NULL;
		struct uidvec uv = { .set = fc->f->set };

		if ((r = vault_txn_begin(c->u->v, false, &t)) == 0) {
			r = vault_msg_vanished(t, c->u->user_id, c->view->st->id,
			    fc->f->changedsince, vanished_collect, &uv);
			vault_txn_abort(&t);
		}
		if (r == 0 && uv.n > 0) {
			r = out_str(c, "* VANISHED (EARLIER) ");
			if (r == 0)
				r = out_uid_ranges(c, uv.u, uv.n);
			if (r == 0)
				r = out_str(c, "\r\n");
		}
		free(uv.u);
		if (r < 0) {
			fetch_ctx_free(fc);
			return cmd_vault_err(c, cmd, r);
		}
	}
	r = view_resolve(c, fc->f->set, fc->uid, &fc->idx, &fc->n);
	if (r < 0) {
		fetch_ctx_free(fc);
		if (r == -ERANGE)
			return cmd_bad(c, cmd, "Invalid message set");
		return r;
	}
	if (fc->f->changedsince_set) {
		size_t k = 0;

		for (size_t i = 0; i < fc->n; i++) {
			const struct mmsg *m = mbox_state_find(c->view->st,
			    c->view->uids[fc->idx[i]]);

			if (m != NULL && m->modseq > fc->f->changedsince)
				fc->idx[k++] = fc->idx[i];
		}
		fc->n = k;
	}
	client_set_resume(c, fetch_resume, fc, fetch_ctx_free);
	return fetch_resume(c);
}
