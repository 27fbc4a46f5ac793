/* SEARCH / UID SEARCH (RFC 9051 6.4.4, RFC 3501 6.4.4), ESEARCH (RFC 4731), SEARCHRES
 * (RFC 5182), CONDSTORE MODSEQ (RFC 7162 3.1.5), WITHIN (RFC 5032), SAVEDATE (RFC
 * 8514), OBJECTID (RFC 8474).
 *
 * Keys on flags, dates, sizes, UIDs come from the shared state (the sealed meta read
 * at SELECT); SENT* and header keys from the sealed cache (no body decryption); only
 * BODY and TEXT open bodies. Evaluation is lazy: a message's cache or body is loaded
 * only when a key needs it. Resumable in batches so a body search of a big mailbox
 * does not stall the other connections of the process. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "imap-engine-private.h"
#include "log.h"

#define SEARCH_BATCH 256

struct search_ctx {
	struct imap_search *s;
	bool uid;
	size_t pos;		/* next view index */
	size_t nview;		/* view size when the search started */
	uint32_t *res;		/* matches: UIDs */
	size_t *seqs;		/* matches: sequence numbers */
	size_t n, cap;
	uint64_t maxmodseq;
	int err;
	time_t now;
	struct pending_cache pend;
	/* the string keys' searchers (needle folded once, scratch kept), sorted by key
	 * so eval() finds them with bsearch */
	struct key_searcher *ks;
	size_t nks;
};

struct key_searcher {
	const struct imap_search_key *k;
	struct imap_msg_searcher *s;	/* NULL: the key can match nothing (NUL in it) */
};

static void search_ctx_free(void *arg)
{
	struct search_ctx *sc = arg;

	if (sc == NULL)
		return;
	for (size_t i = 0; i < sc->nks; i++)
		imap_msg_searcher_free(&sc->ks[i].s);
	free(sc->ks);
	imap_search_free(&sc->s);
	free(sc->res);
	free(sc->seqs);
	pending_clear(&sc->pend);
	free(sc);
}

static bool has_kw(const struct mbox_state *st, const struct mmsg *m, const char *kw)
{
	for (size_t i = 0; i < m->nkw; i++)
		if (strcasecmp(st->kw[m->kw[i]], kw) == 0)
			return true;
	return false;
}

static bool key_is_string(enum imap_search_type t)
{
	switch (t) {
	case IMAP_SK_FROM: case IMAP_SK_TO: case IMAP_SK_CC: case IMAP_SK_BCC:
	case IMAP_SK_SUBJECT: case IMAP_SK_HEADER: case IMAP_SK_BODY: case IMAP_SK_TEXT:
		return true;
	default:
		return false;
	}
}

static int ks_cmp(const void *a, const void *b)
{
	const struct key_searcher *x = a, *y = b;

	return x->k < y->k ? -1 : x->k > y->k;
}

/* Adds a searcher for every string key of the list k and below it. Recursion is
 * bounded by the parser (IMAP_SEARCH_MAX_DEPTH). */
static int searchers_add(struct search_ctx *sc, const struct imap_search_key *k,
    size_t *cap, unsigned depth)
{
	int r;

	if (depth > IMAP_SEARCH_MAX_DEPTH + 1)
		return -E2BIG;
	for (; k != NULL; k = k->next) {
		if (k->child != NULL && (r = searchers_add(sc, k->child, cap, depth + 1)) < 0)
			return r;
		if (!key_is_string(k->type))
			continue;
		if (sc->nks == *cap) {
			size_t ncap = *cap ? *cap * 2 : 8;
			struct key_searcher *n = realloc(sc->ks, ncap * sizeof(*n));

			if (n == NULL)
				return -ENOMEM;
			sc->ks = n;
			*cap = ncap;
		}
		sc->ks[sc->nks].k = k;
		sc->ks[sc->nks].s = NULL;
		/* a NUL cannot be in the decoded text (it reads as U+FFFD) */
		if (k->str == NULL || memchr(k->str, '\0', k->len) == NULL) {
			r = imap_msg_searcher_new(k->str, k->str ? k->len : 0,
			    &sc->ks[sc->nks].s);
			if (r < 0)
				return r;
		}
		sc->nks++;
	}
	return 0;
}

static int searchers_build(struct search_ctx *sc)
{
	size_t cap = 0;
	int r;

	if ((r = searchers_add(sc, sc->s->root, &cap, 0)) < 0)
		return r;
	if (sc->nks > 1)	/* no text keys: ks is NULL, which qsort must not see */
		qsort(sc->ks, sc->nks, sizeof(*sc->ks), ks_cmp);
	return 0;
}

static struct imap_msg_searcher *searcher_of(const struct search_ctx *sc,
    const struct imap_search_key *k)
{
	struct key_searcher key = { .k = k }, *f;

	if (sc->nks == 0)
		return NULL;
	f = bsearch(&key, sc->ks, sc->nks, sizeof(*sc->ks), ks_cmp);
	return f != NULL ? f->s : NULL;
}

/* Header keys: over the header block kept in the summary, no body decryption
 * (issue 3) and no parse. */
static int hdr_match(struct search_ctx *sc, struct msrc *s, const char *field,
    const struct imap_search_key *k, enum imap_msg_search_field kind)
{
	struct imap_msg_searcher *ms = searcher_of(sc, k);
	int r;

	if (ms == NULL)
		return 0;
	r = msrc_cache(s);
	if (r == -E2BIG) {
		/* a header too big for the summary: search the message itself */
		const struct imap_msg_part *root;

		if ((r = msrc_body(s, true)) < 0)
			return r;
		root = imap_msg_root(s->pm);
		return imap_msg_searcher_header(ms, imap_msg_data(s->pm) + root->hdr_off,
		    root->hdr_len, field, kind);
	}
	if (r < 0)
		return r;
	return imap_msg_searcher_header(ms, s->mc.hdr, s->mc.hdrlen, field, kind);
}

/* 1 match, 0 no match, <0 error. */
static int eval(struct imap_client *c, struct search_ctx *sc, const struct imap_search_key *k,
    size_t vi, const struct mmsg *m, struct msrc *s)
{
	const struct mbox_state *st = c->view->st;
	int64_t kday = (int64_t)(k->day >= 0 ? k->day / 86400 : (k->day - 86399) / 86400);
	int r;

	switch (k->type) {
	case IMAP_SK_AND:
		for (const struct imap_search_key *ch = k->child; ch != NULL; ch = ch->next)
			if ((r = eval(c, sc, ch, vi, m, s)) <= 0)
				return r;
		return 1;
	case IMAP_SK_OR:
		for (const struct imap_search_key *ch = k->child; ch != NULL; ch = ch->next)
			if ((r = eval(c, sc, ch, vi, m, s)) != 0)
				return r;
		return 0;
	case IMAP_SK_NOT:
		r = eval(c, sc, k->child, vi, m, s);
		return r < 0 ? r : !r;
	case IMAP_SK_ALL:
	case IMAP_SK_SAVEDATESUPPORTED:
		return 1;
	case IMAP_SK_SEQSET:
	case IMAP_SK_UID:
		if (k->set->saved) {
			/* RFC 5182: "$" is the saved result (UIDs). */
			if (!c->saved_valid)
				return 0;
			for (size_t i = 0; i < c->nsaved; i++)
				if (c->saved[i] == m->uid)
					return 1;
			return 0;
		}
		if (k->type == IMAP_SK_UID)
			return imap_seqset_contains(k->set, m->uid,
			    c->view->n ? c->view->uids[c->view->n - 1] : 0);
		return imap_seqset_contains(k->set, (uint32_t)(vi + 1), (uint32_t)c->view->n);
	case IMAP_SK_ANSWERED: return !!(m->flags & VAULT_F_ANSWERED);
	case IMAP_SK_DELETED: return !!(m->flags & VAULT_F_DELETED);
	case IMAP_SK_DRAFT: return !!(m->flags & VAULT_F_DRAFT);
	case IMAP_SK_FLAGGED: return !!(m->flags & VAULT_F_FLAGGED);
	case IMAP_SK_SEEN: return !!(m->flags & VAULT_F_SEEN);
	case IMAP_SK_UNANSWERED: return !(m->flags & VAULT_F_ANSWERED);
	case IMAP_SK_UNDELETED: return !(m->flags & VAULT_F_DELETED);
	case IMAP_SK_UNDRAFT: return !(m->flags & VAULT_F_DRAFT);
	case IMAP_SK_UNFLAGGED: return !(m->flags & VAULT_F_FLAGGED);
	case IMAP_SK_UNSEEN: return !(m->flags & VAULT_F_SEEN);
	case IMAP_SK_RECENT:
		return m->recent && st->recent_owner == c->view;
	case IMAP_SK_OLD:
		return !(m->recent && st->recent_owner == c->view);
	case IMAP_SK_NEW:
		return m->recent && st->recent_owner == c->view && !(m->flags & VAULT_F_SEEN);
	case IMAP_SK_KEYWORD:
		return k->str != NULL && has_kw(st, m, k->str);
	case IMAP_SK_UNKEYWORD:
		return k->str == NULL || !has_kw(st, m, k->str);
	case IMAP_SK_BEFORE:
		return day_of(m->internal_date, m->internal_tz) < kday;
	case IMAP_SK_ON:
		return day_of(m->internal_date, m->internal_tz) == kday;
	case IMAP_SK_SINCE:
		return day_of(m->internal_date, m->internal_tz) >= kday;
	case IMAP_SK_SAVEDBEFORE:
		return m->save_date != 0 && day_of(m->save_date, 0) < kday;
	case IMAP_SK_SAVEDON:
		return m->save_date != 0 && day_of(m->save_date, 0) == kday;
	case IMAP_SK_SAVEDSINCE:
		return m->save_date != 0 && day_of(m->save_date, 0) >= kday;
	case IMAP_SK_SENTBEFORE:
	case IMAP_SK_SENTON:
	case IMAP_SK_SENTSINCE: {
		int64_t d;

		if ((r = msrc_cache(s)) < 0)
			return r;
		/* RFC 9051: the Date header's date, disregarding time and zone; a
		 * message without a usable Date falls back to the internal date
		 * (Dovecot does the same). */
		if (s->mc.mc.has_date)
			d = imap_msg_date_day((time_t)s->mc.mc.date, s->mc.mc.tz_min);
		else
			d = day_of(m->internal_date, m->internal_tz);
		if (k->type == IMAP_SK_SENTBEFORE)
			return d < kday;
		if (k->type == IMAP_SK_SENTON)
			return d == kday;
		return d >= kday;
	}
	case IMAP_SK_LARGER:
		return m->size > k->num;
	case IMAP_SK_SMALLER:
		return m->size < k->num;
	case IMAP_SK_OLDER:
		return sc->now - m->internal_date >= (int64_t)k->num;
	case IMAP_SK_YOUNGER:
		return sc->now - m->internal_date <= (int64_t)k->num;
	case IMAP_SK_MODSEQ:
		return m->modseq >= k->num;
	case IMAP_SK_EMAILID: {
		char hex[34];

		hex[0] = 'M';
		crypto_hex_encode(m->emailid, sizeof(m->emailid), hex + 1, sizeof(hex) - 1);
		return k->str != NULL && k->len == strlen(hex) && memcmp(k->str, hex, k->len) == 0;
	}
	case IMAP_SK_THREADID:
		return 0;	/* THREADID is NIL for every message */
	/* RFC 9051 6.4.4: FROM etc. match the envelope structure's address list */
	case IMAP_SK_FROM: return hdr_match(sc, s, "From", k, IMAP_MSG_SEARCH_ADDRESS);
	case IMAP_SK_TO: return hdr_match(sc, s, "To", k, IMAP_MSG_SEARCH_ADDRESS);
	case IMAP_SK_CC: return hdr_match(sc, s, "Cc", k, IMAP_MSG_SEARCH_ADDRESS);
	case IMAP_SK_BCC: return hdr_match(sc, s, "Bcc", k, IMAP_MSG_SEARCH_ADDRESS);
	case IMAP_SK_SUBJECT:
		return hdr_match(sc, s, "Subject", k, IMAP_MSG_SEARCH_PLAIN);
	case IMAP_SK_HEADER: {
		char fb[256];

		if (k->field == NULL || k->field_len >= sizeof(fb) ||
		    memchr(k->field, '\0', k->field_len) != NULL)
			return 0;
		memcpy(fb, k->field, k->field_len);
		fb[k->field_len] = '\0';
		return hdr_match(sc, s, fb, k, IMAP_MSG_SEARCH_PLAIN);
	}
	case IMAP_SK_BODY:
	case IMAP_SK_TEXT: {
		struct imap_msg_searcher *ms = searcher_of(sc, k);

		if (ms == NULL)
			return 0;
		if ((r = msrc_body(s, true)) < 0)
			return r;
		return imap_msg_searcher_text(ms, s->pm, k->type == IMAP_SK_BODY ?
		    IMAP_MSG_SEARCH_BODY : IMAP_MSG_SEARCH_TEXT);
	}
	}
	return 0;
}

static int add_result(struct search_ctx *sc, uint32_t uid, size_t seq)
{
	if (sc->n == sc->cap) {
		size_t ncap = sc->cap ? sc->cap * 2 : 256;
		uint32_t *nr = realloc(sc->res, ncap * sizeof(*nr));
		size_t *ns;

		if (nr == NULL)
			return -ENOMEM;
		sc->res = nr;
		if ((ns = realloc(sc->seqs, ncap * sizeof(*ns))) == NULL)
			return -ENOMEM;
		sc->seqs = ns;
		sc->cap = ncap;
	}
	sc->res[sc->n] = uid;
	sc->seqs[sc->n] = seq;
	sc->n++;
	return 0;
}

static int out_num_set(struct imap_client *c, const struct search_ctx *sc)
{
	int r = 0;

	for (size_t i = 0; i < sc->n && r == 0; ) {
		size_t j = i;
		uint64_t a = sc->uid ? sc->res[i] : sc->seqs[i];

		while (j + 1 < sc->n && (sc->uid ? (uint64_t)sc->res[j + 1] : sc->seqs[j + 1]) ==
		    (sc->uid ? (uint64_t)sc->res[j] : sc->seqs[j]) + 1)
			j++;
		if (j == i)
			r = out_printf(c, "%s%llu", i ? "," : "", (unsigned long long)a);
		else
			r = out_printf(c, "%s%llu:%llu", i ? "," : "", (unsigned long long)a,
			    (unsigned long long)(sc->uid ? sc->res[j] : sc->seqs[j]));
		i = j + 1;
	}
	return r;
}

static int search_finish(struct imap_client *c, struct search_ctx *sc)
{
	const struct imap_cmd *cmd = c->cmd;
	const struct imap_search *s = sc->s;
	unsigned ret = s->return_opts;
	bool esearch = s->return_given || (c->enabled & EN_REV2);
	int r = 0;

	if (sc->err != 0) {
		if (ret & IMAP_SEARCH_RET_SAVE)
			c->saved_valid = true, c->nsaved = 0;	/* RFC 5182 2.1 */
		return cmd_vault_err(c, cmd, sc->err);
	}
	c->cmd_msgs += sc->n;	/* audit log: matches */
	if (esearch && !s->return_given)
		ret = IMAP_SEARCH_RET_ALL;	/* RFC 9051: no RETURN means ALL */
	if (s->return_given && ret == 0)
		ret = IMAP_SEARCH_RET_ALL;	/* RFC 4731: RETURN () means ALL */
	if (ret & IMAP_SEARCH_RET_SAVE) {
		/* RFC 5182 2.4: with MIN and/or MAX but neither ALL nor COUNT, only
		 * those are saved. */
		bool only_minmax = (ret & (IMAP_SEARCH_RET_MIN | IMAP_SEARCH_RET_MAX)) &&
		    !(ret & (IMAP_SEARCH_RET_ALL | IMAP_SEARCH_RET_COUNT));
		uint32_t *sv = malloc((sc->n ? sc->n : 1) * sizeof(*sv));
		size_t ns = 0;

		if (sv == NULL)
			return -ENOMEM;
		for (size_t i = 0; i < sc->n; i++) {
			if (only_minmax && !((i == 0 && (ret & IMAP_SEARCH_RET_MIN)) ||
			    (i == sc->n - 1 && (ret & IMAP_SEARCH_RET_MAX))))
				continue;
			sv[ns++] = sc->res[i];
		}
		free(c->saved);
		c->saved = sv;
		c->nsaved = ns;
		c->saved_valid = true;
	}
	if (!esearch) {
		r = out_str(c, "* SEARCH");
		for (size_t i = 0; i < sc->n && r == 0; i++)
			r = out_printf(c, " %llu", (unsigned long long)(sc->uid ? sc->res[i] :
			    sc->seqs[i]));
		/* RFC 7162 3.1.5: MODSEQ of the matches when the MODSEQ key was used. */
		if (r == 0 && s->uses_modseq && sc->n > 0)
			r = out_printf(c, " (MODSEQ %llu)", (unsigned long long)sc->maxmodseq);
		if (r == 0)
			r = out_str(c, "\r\n");
	} else if (ret != IMAP_SEARCH_RET_SAVE) {
		/* RFC 5182 2.1: SAVE alone gives no ESEARCH response. */
		r = out_str(c, "* ESEARCH (TAG ");
		if (r == 0)
			r = out_string(c, cmd->tag, strlen(cmd->tag));
		if (r == 0)
			r = out_str(c, sc->uid ? ") UID" : ")");
		if (r == 0 && (ret & IMAP_SEARCH_RET_MIN) && sc->n > 0)
			r = out_printf(c, " MIN %llu", (unsigned long long)(sc->uid ? sc->res[0] :
			    sc->seqs[0]));
		if (r == 0 && (ret & IMAP_SEARCH_RET_MAX) && sc->n > 0)
			r = out_printf(c, " MAX %llu", (unsigned long long)(sc->uid ?
			    sc->res[sc->n - 1] : sc->seqs[sc->n - 1]));
		if (r == 0 && (ret & IMAP_SEARCH_RET_ALL) && sc->n > 0) {
			r = out_str(c, " ALL ");
			if (r == 0)
				r = out_num_set(c, sc);
		}
		if (r == 0 && (ret & IMAP_SEARCH_RET_COUNT))
			r = out_printf(c, " COUNT %zu", sc->n);
		if (r == 0 && s->uses_modseq && sc->n > 0)
			r = out_printf(c, " MODSEQ %llu", (unsigned long long)sc->maxmodseq);
		if (r == 0)
			r = out_str(c, "\r\n");
	}
	if (r < 0)
		return r;
	return cmd_ok(c, cmd, "Search completed");
}

static int search_resume(struct imap_client *c)
{
	struct search_ctx *sc = c->resume_ctx;
	struct vault_txn *t = NULL;
	size_t end;
	int r = 0;

	if (c->view == NULL)
		return search_finish(c, sc);
	/* The view cannot shrink while SEARCH runs (no EXPUNGE is sent during it), but
	 * a UID SEARCH may let them through at its end only. */
	if (sc->nview > c->view->n)
		sc->nview = c->view->n;
	end = sc->pos + SEARCH_BATCH < sc->nview ? sc->pos + SEARCH_BATCH : sc->nview;
	if ((r = vault_txn_begin(c->u->v, false, &t)) < 0) {
		sc->err = r;
		return search_finish(c, sc);
	}
	for (; sc->pos < end; sc->pos++) {
		uint32_t uid = c->view->uids[sc->pos];
		const struct mmsg *m = mbox_state_find(c->view->st, uid);
		struct msrc s;

		if (m == NULL)
			continue;	/* expunged meanwhile: no longer matches */
		msrc_init(&s, c, t, c->view->st->id, uid, &sc->pend);
		r = eval(c, sc, sc->s->root, sc->pos, m, &s);
		msrc_clear(&s);
		if (r == VAULT_ERR_NOMSG) {
			r = 0;
			continue;
		}
		if (r < 0) {
			sc->err = r;
			break;
		}
		if (r == 1) {
			if ((r = add_result(sc, uid, sc->pos + 1)) < 0) {
				sc->err = r;
				break;
			}
			if (m->modseq > sc->maxmodseq)
				sc->maxmodseq = m->modseq;
		}
	}
	vault_txn_abort(&t);
	pending_flush(c, c->view->st->id, &sc->pend);
	if (sc->err == 0 && sc->pos < sc->nview)
		return 1;
	return search_finish(c, sc);
}

int cmd_search(struct imap_client *c, struct imap_cmd *cmd)
{
	struct search_ctx *sc;
	const char *err = NULL;
	int r;

	if ((sc = calloc(1, sizeof(*sc))) == NULL)
		return -ENOMEM;
	sc->uid = cmd_is_uid(cmd);
	sc->now = time(NULL);
	r = imap_search_parse(cmd->args, cmd->nargs, &sc->s, &err);
	if (r < 0) {
		search_ctx_free(sc);
		if (r == IMAP_ERR_BADCHARSET)
			return cmd_no(c, cmd, "[BADCHARSET (US-ASCII UTF-8)] Unsupported charset");
		if (r == -ENOMEM)
			return r;
		return cmd_bad(c, cmd, "%s", err ? err : "Invalid SEARCH arguments");
	}
	if ((r = searchers_build(sc)) < 0) {
		search_ctx_free(sc);
		return r == -ENOMEM ? r : cmd_bad(c, cmd, "Invalid SEARCH arguments");
	}
	if (sc->s->uses_modseq)
		c->condstore = true;	/* RFC 7162 3.1: CONDSTORE-enabling */
	sc->nview = c->view->n;
	client_set_resume(c, search_resume, sc, search_ctx_free);
	return search_resume(c);
}
