/* STORE / UID STORE (with CONDSTORE UNCHANGEDSINCE), COPY / MOVE (UIDPLUS COPYUID,
 * RFC 6851), EXPUNGE / UID EXPUNGE (RFC 4315). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "imap-engine-private.h"
#include "log.h"

/* imap-args flag bits -> vault flag bits */
uint32_t flags_to_vault(unsigned sys)
{
	return ((sys & IMAP_FLAG_SEEN) ? VAULT_F_SEEN : 0) |
	    ((sys & IMAP_FLAG_ANSWERED) ? VAULT_F_ANSWERED : 0) |
	    ((sys & IMAP_FLAG_FLAGGED) ? VAULT_F_FLAGGED : 0) |
	    ((sys & IMAP_FLAG_DELETED) ? VAULT_F_DELETED : 0) |
	    ((sys & IMAP_FLAG_DRAFT) ? VAULT_F_DRAFT : 0);
}

/* ---- STORE ----------------------------------------------------------------------------- */


/* The flags and keywords a message gets from a STORE. nk receives pointers into
 * st->kw or kw; returns -E2BIG when the result has too many keywords. */
static int store_compute(const struct mbox_state *st, const struct mmsg *m,
    enum imap_store_op mode, uint32_t flags, const char *const *kw, uint32_t nkw,
    uint32_t *nf_out, char **nk, uint32_t *nn_out)
{
	uint32_t nn = 0;

	*nf_out = mode == IMAP_STORE_REPLACE ? flags : mode == IMAP_STORE_ADD ? (m->flags | flags) :
	    (m->flags & ~flags);
	if (mode != IMAP_STORE_REPLACE)
		for (size_t k = 0; k < m->nkw; k++) {
			bool drop = false;

			if (mode == IMAP_STORE_REMOVE)
				for (uint32_t j = 0; j < nkw; j++)
					drop |= strcasecmp(st->kw[m->kw[k]], kw[j]) == 0;
			if (!drop)
				nk[nn++] = st->kw[m->kw[k]];
		}
	if (mode != IMAP_STORE_REMOVE)
		for (uint32_t j = 0; j < nkw; j++) {
			bool have = false;

			for (uint32_t k = 0; k < nn; k++)
				have |= strcasecmp(nk[k], kw[j]) == 0;
			if (have)
				continue;
			if (nn >= VAULT_MAX_KEYWORDS)
				return -E2BIG;
			nk[nn++] = (char *)(uintptr_t)kw[j];
		}
	*nn_out = nn;
	return 0;
}

struct store_change {
	size_t idx;		/* view index */
	uint64_t modseq;
	bool changed;
};

/* STORE's txn (engine_write callback, replayable: every output field is reset). */
struct store_run {
	const size_t *idx;
	size_t nidx;
	bool uid, have_unch;
	uint64_t unch;
	enum imap_store_op mode;
	uint32_t flags, nkw;
	const char *const *kw;
	struct store_change *ch;	/* nidx */
	uint32_t *mod;			/* nidx when have_unch */
	size_t nmod;
	bool gone;
};

static int store_txn(struct imap_client *c, struct vault_txn *t, void *arg)
{
	struct store_run *s = arg;
	struct mbox_state *st = c->view->st;
	int r;

	s->nmod = 0;
	s->gone = false;
	if (s->nidx > 0)
		memset(s->ch, 0, s->nidx * sizeof(*s->ch));
	if ((r = mbox_state_refresh(st, t)) < 0)
		return r;
	for (size_t i = 0; i < s->nidx; i++) {
		uint32_t u = c->view->uids[s->idx[i]];
		const struct mmsg *m = mbox_state_find(st, u);
		char *nk[VAULT_MAX_KEYWORDS];
		uint32_t nf, nn = 0;
		bool same;

		s->ch[i].idx = s->idx[i];
		if (m == NULL) {
			s->gone = true;
			continue;
		}
		/* RFC 7162 3.1.3: a message changed after UNCHANGEDSINCE is left alone
		 * and reported in MODIFIED. */
		if (s->have_unch && m->modseq > s->unch) {
			s->mod[s->nmod++] = s->uid ? u : (uint32_t)(s->idx[i] + 1);
			continue;
		}
		if ((r = store_compute(st, m, s->mode, s->flags, s->kw, s->nkw, &nf, nk,
		    &nn)) < 0)
			return r;
		same = nf == m->flags && nn == m->nkw;
		for (uint32_t k = 0; k < nn && same; k++) {
			bool found = false;

			for (size_t j = 0; j < m->nkw; j++)
				found |= strcasecmp(nk[k], st->kw[m->kw[j]]) == 0;
			same = found;
		}
		if (same) {
			/* Nothing changes: no new modseq (RFC 7162 3.1.3). */
			s->ch[i].modseq = m->modseq;
			continue;
		}
		if ((r = vault_msg_set_flags(t, c->u->k, st->id, u, nf, nk, nn,
		    &s->ch[i].modseq)) < 0)
			return r;
		s->ch[i].changed = true;
	}
	return 0;
}

int cmd_store(struct imap_client *c, struct imap_cmd *cmd)
{
	struct store_run sr;
	bool uid = cmd_is_uid(cmd), silent, have_unch;
	size_t *idx = NULL, nidx = 0, nmod = 0;
	const char *const *kw;
	uint32_t flags, nkw, *mod = NULL;
	uint64_t unch;
	enum imap_store_op mode;
	struct store_change *ch = NULL;
	struct imap_store *sa = NULL;
	struct mbox_state *st = c->view->st;
	const char *err = NULL;
	bool gone = false;
	int r;

	if ((r = imap_store_parse(cmd->args, cmd->nargs, &sa, &err)) < 0) {
		if (r == -ENOMEM)
			return r;
		return cmd_bad(c, cmd, "%s", err ? err : "Invalid STORE arguments");
	}
	if (sa->flags.nkw > VAULT_MAX_KEYWORDS) {
		r = cmd_no(c, cmd, "[LIMIT] Too many keywords");
		goto out;
	}
	silent = sa->silent;
	have_unch = sa->unchangedsince_set;
	unch = sa->unchangedsince;
	mode = sa->op;
	flags = flags_to_vault(sa->flags.sys);
	kw = sa->flags.kw;
	nkw = (uint32_t)sa->flags.nkw;
	if (c->view->readonly) {
		r = cmd_no(c, cmd, "[READ-ONLY] Mailbox is read-only");
		goto out;
	}
	if (have_unch)
		c->condstore = true;	/* RFC 7162 3.1: a CONDSTORE-enabling command */
	r = view_resolve(c, sa->set, uid, &idx, &nidx);
	if (r == -ERANGE) {
		r = cmd_bad(c, cmd, "Invalid message set");
		goto out;
	}
	if (r < 0)
		goto out;
	if (nidx > 0 && (ch = calloc(nidx, sizeof(*ch))) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	if (nidx > 0 && have_unch && (mod = malloc(nidx * sizeof(*mod))) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	sr = (struct store_run){ .idx = idx, .nidx = nidx, .uid = uid, .have_unch = have_unch,
	    .unch = unch, .mode = mode, .flags = flags, .kw = kw, .nkw = nkw, .ch = ch,
	    .mod = mod };
	if ((r = engine_write(c, store_txn, &sr)) < 0)
		goto fail;
	nmod = sr.nmod;
	gone = sr.gone;
	/* Apply to the shared state: other connections get FETCH FLAGS at their next
	 * sync; this one answers below. */
	for (size_t i = 0; i < nidx; i++) {
		uint32_t u = c->view->uids[ch[i].idx];
		const struct mmsg *m;

		if (!ch[i].changed)
			continue;
		if ((m = mbox_state_find(st, u)) == NULL)
			continue;
		{
			char *nk[VAULT_MAX_KEYWORDS], *copy[VAULT_MAX_KEYWORDS];
			uint32_t nn = 0, nf, k;

			if (store_compute(st, m, mode, flags, kw, nkw, &nf, nk, &nn) < 0)
				continue;
			/* nk may point into st->kw, which mbox_state_set_flags may
			 * change: copy the names first. */
			for (k = 0; k < nn; k++)
				if ((copy[k] = strdup(nk[k])) == NULL)
					break;
			r = k == nn ? mbox_state_set_flags(st, u, nf, copy, nn, ch[i].modseq, c) :
			    -ENOMEM;
			while (k > 0)
				free(copy[--k]);
			if (r < 0)
				goto fail;
		}
	}
	/* New keywords must be announced (FLAGS) before a FETCH shows them. */
	if ((r = view_sync(c, false)) < 0)
		goto fail;
	for (size_t i = 0; i < nidx; i++) {
		uint32_t u = c->view->uids[ch[i].idx];
		const struct mmsg *m = mbox_state_find(st, u);

		if (m == NULL)
			continue;
		if (silent) {
			/* RFC 7162 3.1.3 example 3: with CONDSTORE the new MODSEQ is
			 * reported even for .SILENT. */
			if (!c->condstore || !ch[i].changed)
				continue;
			r = out_printf(c, "* %zu FETCH (", ch[i].idx + 1);
			if (r == 0 && (uid || (c->enabled & EN_QRESYNC)))
				r = out_printf(c, "UID %u ", u);
			if (r == 0)
				r = out_printf(c, "MODSEQ (%llu))\r\n",
				    (unsigned long long)m->modseq);
		} else if (have_unch && !ch[i].changed && m->modseq > unch) {
			continue;	/* failed the test: in MODIFIED */
		} else {
			r = out_printf(c, "* %zu FETCH (", ch[i].idx + 1);
			if (r == 0 && (uid || (c->enabled & EN_QRESYNC)))
				r = out_printf(c, "UID %u ", u);
			if (r == 0)
				r = out_str(c, "FLAGS ");
			if (r == 0)
				r = out_flags(c, st, m, c->view->st->recent_owner == c->view);
			if (r == 0 && c->condstore)
				r = out_printf(c, " MODSEQ (%llu)", (unsigned long long)m->modseq);
			if (r == 0)
				r = out_str(c, ")\r\n");
		}
		if (r < 0)
			goto fail;
	}
	if (nmod > 0) {
		if ((r = view_sync(c, false)) < 0)
			goto out;
		r = out_printf(c, "%s OK [MODIFIED ", cmd->tag);
		if (r == 0)
			r = out_uid_ranges(c, mod, nmod);
		if (r == 0)
			r = out_str(c, "] Conditional STORE failed\r\n");
		cmd_done(c, cmd, MR_OK);
		goto out;
	}
	if (gone)
		r = cmd_no(c, cmd, "[EXPUNGEISSUED] Some messages were expunged");
	else
		r = cmd_ok(c, cmd, "Store completed");
	goto out;
fail:
	r = cmd_vault_err(c, cmd, r);
out:
	imap_store_free(&sa);
	free(idx);
	free(ch);
	free(mod);
	return r;
}

/* ---- EXPUNGE ---------------------------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* EXPUNGE's txn (engine_write callback, replayable: gone is rebuilt each run). */
struct expunge_run {
	const uint32_t *uids;
	size_t nuids;
	bool force;
	uint32_t *gone;
	size_t ngone;
	struct vault_mailbox mb;
};

static int expunge_txn(struct imap_client *c, struct vault_txn *t, void *arg)
{
	struct expunge_run *e = arg;
	struct mbox_state *st = c->view->st;
	int r;

	e->ngone = 0;
	free(e->gone);
	e->gone = NULL;
	if ((r = mbox_state_refresh(st, t)) < 0)
		return r;
	if ((e->gone = malloc((st->n + 1) * sizeof(*e->gone))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < st->n; i++) {
		const struct mmsg *m = &st->m[i];

		if (e->uids != NULL &&
		    bsearch(&m->uid, e->uids, e->nuids, sizeof(*e->uids), cmp_u32) == NULL)
			continue;
		if (!e->force && !(m->flags & VAULT_F_DELETED))
			continue;
		if ((r = vault_msg_expunge(t, c->u->k, st->id, m->uid)) < 0)
			return r;
		e->gone[e->ngone++] = m->uid;
	}
	if (e->ngone == 0)
		return 0;
	return vault_mailbox_get(t, c->u->k, st->id, &e->mb);
}

int engine_expunge(struct imap_client *c, const uint32_t *uids, size_t nuids, bool force,
    bool silent)
{
	struct mbox_state *st = c->view->st;
	struct expunge_run e = { .uids = uids, .nuids = nuids, .force = force };
	int r;

	if ((r = engine_write(c, expunge_txn, &e)) < 0 || e.ngone == 0) {
		free(e.gone);
		return r;
	}
	for (size_t i = 0; i < e.ngone; i++)
		mbox_state_expunged(st, e.gone[i], c);
	c->cmd_expunged += e.ngone;	/* audit log, mass_expunge */
	if (e.mb.highestmodseq > st->hms)
		st->hms = e.mb.highestmodseq;
	st->uidnext = e.mb.uidnext > st->uidnext ? e.mb.uidnext : st->uidnext;
	free(e.gone);
	(void)silent;
	return 0;
}

int cmd_expunge(struct imap_client *c, struct imap_cmd *cmd)
{
	bool uid = cmd_is_uid(cmd);
	struct imap_seqset *set = NULL;
	uint32_t *uids = NULL;
	size_t *idx = NULL, nidx = 0;
	int r;

	if (uid) {
		if (cmd->nargs != 1 || imap_arg_seqset(&cmd->args[0], &set, NULL) < 0)
			return cmd_bad(c, cmd, "UID EXPUNGE needs a UID set");
	} else if (cmd->nargs != 0) {
		return cmd_bad(c, cmd, "EXPUNGE takes no arguments");
	}
	if (c->view->readonly) {
		r = cmd_no(c, cmd, "[READ-ONLY] Mailbox is read-only");
		goto out;
	}
	if (uid) {
		if ((r = view_resolve(c, set, true, &idx, &nidx)) < 0)
			goto out;
		if ((uids = malloc((nidx + 1) * sizeof(*uids))) == NULL) {
			r = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < nidx; i++)
			uids[i] = c->view->uids[idx[i]];
		if (nidx == 0) {
			r = cmd_ok(c, cmd, "Expunge completed");
			goto out;
		}
	}
	r = engine_expunge(c, uids, nidx, false, false);
	if (r < 0)
		r = cmd_vault_err(c, cmd, r);
	else
		r = cmd_ok(c, cmd, "Expunge completed");
out:
	imap_seqset_free(&set);
	free(idx);
	free(uids);
	return r;
}

/* ---- COPY / MOVE -------------------------------------------------------------------------- */

/* COPY/MOVE's txn (engine_write callback, replayable: every output is reset). */
struct copy_run {
	const char *name;
	bool move;
	const size_t *idx;
	size_t nidx;
	uint32_t *src, *dst;	/* nidx + 1 */
	size_t ndone;
	bool gone, nombox;
	struct vault_mailbox mb, smb;
};

static int copy_txn(struct imap_client *c, struct vault_txn *t, void *arg)
{
	struct copy_run *cr = arg;
	struct mbox_state *st = c->view->st;
	int r;

	cr->ndone = 0;
	cr->gone = cr->nombox = false;
	if ((r = vault_mailbox_find(t, c->u->k, cr->name, &cr->mb)) < 0) {
		cr->nombox = r == VAULT_ERR_NOMBOX;
		return r;
	}
	if ((r = mbox_state_refresh(st, t)) < 0)
		return r;
	for (size_t i = 0; i < cr->nidx; i++) {
		uint32_t u = c->view->uids[cr->idx[i]];

		if (mbox_state_find(st, u) == NULL) {
			cr->gone = true;
			continue;
		}
		if ((r = vault_msg_copy(t, c->u->k, st->id, u, cr->mb.id,
		    &cr->dst[cr->ndone])) < 0)
			return r;
		cr->src[cr->ndone++] = u;
	}
	if (cr->move)
		for (size_t i = 0; i < cr->ndone; i++)
			if ((r = vault_msg_expunge(t, c->u->k, st->id, cr->src[i])) < 0)
				return r;
	if (cr->move && cr->ndone > 0)
		return vault_mailbox_get(t, c->u->k, st->id, &cr->smb);
	return 0;
}

int cmd_copy(struct imap_client *c, struct imap_cmd *cmd)
{
	struct copy_run cr;
	bool uid = cmd_is_uid(cmd);
	bool move = strstr(cmd->name, "MOVE") != NULL;
	struct mbox_state *st = c->view->st;
	char name[512];
	struct imap_seqset *set = NULL;
	size_t *idx = NULL, nidx = 0, ndone = 0;
	uint32_t *src = NULL, *dst = NULL;
	struct vault_mailbox mb;
	bool gone = false;
	int r;

	if (cmd->nargs != 2)
		return cmd_bad(c, cmd, "%s needs a message set and a mailbox", cmd->name);
	if (imap_arg_seqset(&cmd->args[0], &set, NULL) < 0)
		return cmd_bad(c, cmd, "Invalid message set");
	if (arg_mailbox(c, &cmd->args[1], name, sizeof(name)) < 0) {
		r = cmd_bad(c, cmd, "Invalid mailbox name");
		goto out;
	}
	if (move && c->view->readonly) {
		r = cmd_no(c, cmd, "[READ-ONLY] Mailbox is read-only");
		goto out;
	}
	r = view_resolve(c, set, uid, &idx, &nidx);
	if (r == -ERANGE) {
		r = cmd_bad(c, cmd, "Invalid message set");
		goto out;
	}
	if (r < 0)
		goto out;
	if ((src = malloc((nidx + 1) * sizeof(*src))) == NULL ||
	    (dst = malloc((nidx + 1) * sizeof(*dst))) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	cr = (struct copy_run){ .name = name, .move = move, .idx = idx, .nidx = nidx,
	    .src = src, .dst = dst };
	if ((r = engine_write(c, copy_txn, &cr)) < 0) {
		if (r == VAULT_ERR_NOMBOX && cr.nombox)
			r = cmd_no(c, cmd, "[TRYCREATE] Mailbox doesn't exist");
		else
			r = cmd_vault_err(c, cmd, r);
		goto out;
	}
	mb = cr.mb;
	ndone = cr.ndone;
	gone = cr.gone;
	if (move && ndone > 0) {
		for (size_t i = 0; i < ndone; i++)
			mbox_state_expunged(st, src[i], c);
		if (cr.smb.highestmodseq > st->hms)
			st->hms = cr.smb.highestmodseq;
	}
	/* The destination may be selected here (or be this mailbox). */
	user_refresh_all(c->u, false);
	if (ndone == 0) {
		r = gone ? cmd_no(c, cmd, "[EXPUNGEISSUED] Messages were expunged") :
		    cmd_ok(c, cmd, "No messages %s", move ? "moved" : "copied");
		goto out;
	}
	if (move) {
		/* RFC 6851 4.3: COPYUID in an untagged OK before the expunges. */
		r = out_printf(c, "* OK [COPYUID %u ", mb.uidvalidity);
	} else if ((r = view_sync(c, false)) == 0) {
		r = out_printf(c, "%s OK [COPYUID %u ", cmd->tag, mb.uidvalidity);
	}
	if (r == 0)
		r = out_uid_ranges(c, src, ndone);
	if (r == 0)
		r = out_str(c, " ");
	if (r == 0)
		r = out_uid_ranges(c, dst, ndone);
	if (r == 0 && move) {
		r = out_str(c, "] Moved UIDs\r\n");
		if (r == 0)
			r = cmd_ok(c, cmd, "Move completed");
	} else if (r == 0) {
		r = out_str(c, "] Copy completed\r\n");
		cmd_done(c, cmd, MR_OK);
	}
out:
	imap_seqset_free(&set);
	free(idx);
	free(src);
	free(dst);
	return r;
}
