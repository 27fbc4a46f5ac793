/* Shared mailbox state and per-client views: how every connection of the user learns
 * about the others' changes and about deliveries, with sequence numbers that stay
 * consistent per connection (RFC 9051 section 7.5 and 5.5, RFC 7162 section 3.2.10
 * for VANISHED). See imap-engine-private.h for the model. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "imap-engine-private.h"
#include "log.h"

/* ---- keywords ---------------------------------------------------------------------- */

int mbox_state_kw_index(struct mbox_state *st, const char *name, bool create, int *idx_out)
{
	char **nkw;

	for (size_t i = 0; i < st->nkw; i++)
		if (strcasecmp(st->kw[i], name) == 0) {
			*idx_out = (int)i;
			return 0;
		}
	if (!create)
		return -ENOENT;
	if (st->nkw >= UINT16_MAX)
		return -E2BIG;
	if ((nkw = realloc(st->kw, (st->nkw + 1) * sizeof(*nkw))) == NULL)
		return -ENOMEM;
	st->kw = nkw;
	if ((st->kw[st->nkw] = strdup(name)) == NULL)
		return -ENOMEM;
	*idx_out = (int)st->nkw++;
	return 0;
}

static int cmp_u16(const void *a, const void *b)
{
	return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

static int mmsg_set_kw(struct mbox_state *st, struct mmsg *m, char *const *kw, uint32_t nkw)
{
	uint16_t *arr = NULL;
	size_t n = 0;
	int r, idx;

	if (nkw > 0) {
		if ((arr = malloc(nkw * sizeof(*arr))) == NULL)
			return -ENOMEM;
		for (uint32_t i = 0; i < nkw; i++) {
			bool dup = false;

			if ((r = mbox_state_kw_index(st, kw[i], true, &idx)) < 0) {
				free(arr);
				return r;
			}
			for (size_t j = 0; j < n; j++)
				dup |= arr[j] == idx;
			if (!dup)
				arr[n++] = (uint16_t)idx;
		}
		qsort(arr, n, sizeof(*arr), cmp_u16);
	}
	free(m->kw);
	m->kw = arr;
	m->nkw = (uint16_t)n;
	return 0;
}

static int mmsg_from_meta(struct mbox_state *st, struct mmsg *m, const struct vault_msg_meta *meta)
{
	memset(m, 0, sizeof(*m));
	m->uid = meta->uid;
	m->flags = meta->flags;
	m->modseq = meta->modseq;
	m->internal_date = meta->internal_date;
	m->internal_tz = meta->internal_tz;
	m->save_date = meta->save_date;
	m->size = meta->size;
	m->recent = meta->recent;
	memcpy(m->emailid, meta->emailid, sizeof(m->emailid));
	return mmsg_set_kw(st, m, meta->keywords, meta->nkeywords);
}

/* ---- log --------------------------------------------------------------------------- */

int mbox_state_log(struct mbox_state *st, enum chg_type type, uint32_t uid,
    const struct imap_client *origin)
{
	if (st->views == NULL)
		return 0;		/* nobody to tell */
	if (st->nlog == st->caplog) {
		size_t ncap = st->caplog ? st->caplog * 2 : 64;
		struct chg *nl = realloc(st->log, ncap * sizeof(*nl));

		if (nl == NULL)
			return -ENOMEM;
		st->log = nl;
		st->caplog = ncap;
	}
	st->log[st->nlog].type = (uint8_t)type;
	st->log[st->nlog].uid = uid;
	st->log[st->nlog].origin = origin;
	st->nlog++;
	return 0;
}

void mbox_state_trim(struct mbox_state *st)
{
	uint64_t min = st->log_base + st->nlog;
	size_t drop;

	for (struct view *v = st->views; v != NULL; v = v->next)
		if (v->log_pos < min)
			min = v->log_pos;
	drop = (size_t)(min - st->log_base);
	if (drop == 0)
		return;
	memmove(st->log, st->log + drop, (st->nlog - drop) * sizeof(*st->log));
	st->nlog -= drop;
	st->log_base = min;
}

/* ---- messages ---------------------------------------------------------------------- */

static size_t find_idx(const struct mbox_state *st, uint32_t uid, bool *found)
{
	size_t lo = 0, hi = st->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (st->m[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < st->n && st->m[lo].uid == uid;
	return lo;
}

struct mmsg *mbox_state_find(struct mbox_state *st, uint32_t uid)
{
	bool found;
	size_t i = find_idx(st, uid, &found);

	return found ? &st->m[i] : NULL;
}

static int state_add(struct mbox_state *st, const struct vault_msg_meta *meta)
{
	int r;

	if (st->n > 0 && meta->uid <= st->m[st->n - 1].uid)
		return 0;	/* already known (UIDs only grow) */
	if (st->n == st->cap) {
		size_t ncap = st->cap ? st->cap * 2 : 256;
		struct mmsg *nm = realloc(st->m, ncap * sizeof(*nm));

		if (nm == NULL)
			return -ENOMEM;
		st->m = nm;
		st->cap = ncap;
	}
	if ((r = mmsg_from_meta(st, &st->m[st->n], meta)) < 0)
		return r;
	st->n++;
	return mbox_state_log(st, CHG_APPEND, meta->uid, NULL);
}

static int add_cb(const struct vault_msg_meta *meta, void *arg)
{
	return state_add(arg, meta);
}

int mbox_state_set_flags(struct mbox_state *st, uint32_t uid, uint32_t flags,
    char *const *kw, uint32_t nkw, uint64_t modseq, const struct imap_client *origin)
{
	struct mmsg *m = mbox_state_find(st, uid);
	int r;

	if (m == NULL)
		return 0;
	m->flags = flags;
	if (modseq > m->modseq)
		m->modseq = modseq;
	if (modseq > st->hms)
		st->hms = modseq;
	if ((r = mmsg_set_kw(st, m, kw, nkw)) < 0)
		return r;
	return mbox_state_log(st, CHG_FLAGS, uid, origin);
}

int mbox_state_expunged(struct mbox_state *st, uint32_t uid, const struct imap_client *origin)
{
	bool found;
	size_t i = find_idx(st, uid, &found);

	if (!found)
		return 0;
	free(st->m[i].kw);
	memmove(&st->m[i], &st->m[i + 1], (st->n - i - 1) * sizeof(*st->m));
	st->n--;
	return mbox_state_log(st, CHG_EXPUNGE, uid, origin);
}

/* ---- loading and refreshing --------------------------------------------------------- */

/* A full comparison with the store, for changes we cannot explain by appends alone
 * (another process changed flags or expunged). O(messages). */
struct resync {
	struct mbox_state *st;
	size_t i;		/* next old entry to compare */
	struct mmsg *nm;	/* new array */
	size_t n, cap;
	int err;
};

static int resync_cb(const struct vault_msg_meta *meta, void *arg)
{
	struct resync *rs = arg;
	struct mbox_state *st = rs->st;
	int r;

	/* Old messages with smaller UIDs that the store no longer has: expunged. */
	while (rs->i < st->n && st->m[rs->i].uid < meta->uid) {
		if ((r = mbox_state_log(st, CHG_EXPUNGE, st->m[rs->i].uid, NULL)) < 0)
			return r;
		free(st->m[rs->i].kw);
		st->m[rs->i].kw = NULL;
		rs->i++;
	}
	if (rs->n == rs->cap) {
		size_t ncap = rs->cap ? rs->cap * 2 : 256;
		struct mmsg *nm = realloc(rs->nm, ncap * sizeof(*nm));

		if (nm == NULL)
			return -ENOMEM;
		rs->nm = nm;
		rs->cap = ncap;
	}
	if (rs->i < st->n && st->m[rs->i].uid == meta->uid) {
		struct mmsg *old = &st->m[rs->i++];

		rs->nm[rs->n] = *old;
		old->kw = NULL;
		if (meta->modseq != old->modseq || meta->flags != old->flags ||
		    meta->nkeywords != old->nkw) {
			struct mmsg *m = &rs->nm[rs->n];

			m->flags = meta->flags;
			m->modseq = meta->modseq;
			if ((r = mmsg_set_kw(st, m, meta->keywords, meta->nkeywords)) < 0)
				return r;
			if ((r = mbox_state_log(st, CHG_FLAGS, meta->uid, NULL)) < 0)
				return r;
		}
		rs->n++;
		return 0;
	}
	if (rs->n > 0 && meta->uid <= rs->nm[rs->n - 1].uid)
		return 0;
	if (st->n > 0 && meta->uid < st->m[st->n - 1].uid)
		return 0;	/* appeared below known UIDs: impossible in IMAP; ignore */
	if ((r = mmsg_from_meta(st, &rs->nm[rs->n], meta)) < 0)
		return r;
	rs->n++;
	return mbox_state_log(st, CHG_APPEND, meta->uid, NULL);
}

static int state_resync(struct mbox_state *st, struct vault_txn *t)
{
	struct resync rs = { .st = st };
	int r;

	r = vault_msg_list(t, st->u->k, st->id, 1, resync_cb, &rs);
	if (r == 0) {
		for (; rs.i < st->n; rs.i++) {
			if ((r = mbox_state_log(st, CHG_EXPUNGE, st->m[rs.i].uid, NULL)) < 0)
				break;
			free(st->m[rs.i].kw);
			st->m[rs.i].kw = NULL;
		}
	}
	if (r < 0) {
		for (size_t i = 0; i < rs.n; i++)
			free(rs.nm[i].kw);
		free(rs.nm);
		return r;
	}
	for (size_t i = 0; i < st->n; i++)
		free(st->m[i].kw);
	free(st->m);
	st->m = rs.nm;
	st->n = rs.n;
	st->cap = rs.cap;
	return 0;
}

int mbox_state_refresh(struct mbox_state *st, struct vault_txn *t)
{
	struct vault_mailbox mb;
	uint64_t maxnew = 0;
	int r;

	if (st->deleted)
		return 0;
	r = vault_mailbox_get(t, st->u->k, st->id, &mb);
	if (r == VAULT_ERR_NOMBOX || (r == 0 && mb.uidvalidity != st->uidvalidity)) {
		st->deleted = true;
		return 0;
	}
	if (r < 0)
		return r;
	if (mb.uidnext > st->uidnext) {
		size_t before = st->n;

		if ((r = vault_msg_list(t, st->u->k, st->id, st->uidnext, add_cb, st)) < 0)
			return r;
		for (size_t i = before; i < st->n; i++)
			if (st->m[i].modseq > maxnew)
				maxnew = st->m[i].modseq;
		st->uidnext = mb.uidnext;
	}
	/* Modseqs that appends do not explain, or a count that does not add up:
	 * another process changed or expunged messages. */
	if ((mb.highestmodseq > st->hms && mb.highestmodseq > maxnew) ||
	    mb.messages != st->n) {
		if ((r = state_resync(st, t)) < 0)
			return r;
	}
	if (mb.highestmodseq > st->hms)
		st->hms = mb.highestmodseq;
	return 0;
}

static void state_free(struct mbox_state *st);

int mbox_state_get(struct imap_user *u, struct vault_txn *t, uint32_t id,
    struct mbox_state **out)
{
	struct mbox_state *st;
	struct vault_mailbox mb;
	int r;

	*out = NULL;
	for (st = u->states; st != NULL; st = st->next)
		if (st->id == id && !st->deleted) {
			if ((r = mbox_state_refresh(st, t)) < 0)
				return r;
			if (st->deleted) {
				if (st->views == NULL)
					state_free(st);
				break;
			}
			*out = st;
			return 0;
		}
	if ((r = vault_mailbox_get(t, u->k, id, &mb)) < 0)
		return r;
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return -ENOMEM;
	st->u = u;
	st->id = id;
	st->uidvalidity = mb.uidvalidity;
	st->uidnext = 1;
	/* The log only records while views exist; this first listing fills m[]. */
	if ((r = vault_msg_list(t, u->k, id, 1, add_cb, st)) < 0)
		goto fail;
	st->uidnext = mb.uidnext;
	st->hms = mb.highestmodseq;
	st->next = u->states;
	u->states = st;
	*out = st;
	return 0;
fail:
	for (size_t i = 0; i < st->n; i++)
		free(st->m[i].kw);
	free(st->m);
	for (size_t i = 0; i < st->nkw; i++)
		free(st->kw[i]);
	free(st->kw);
	free(st);
	return r;
}

static void state_free(struct mbox_state *st)
{
	struct mbox_state **pp;

	for (pp = &st->u->states; *pp != NULL; pp = &(*pp)->next)
		if (*pp == st) {
			*pp = st->next;
			break;
		}
	for (size_t i = 0; i < st->n; i++)
		free(st->m[i].kw);
	free(st->m);
	for (size_t i = 0; i < st->nkw; i++)
		free(st->kw[i]);
	free(st->kw);
	free(st->log);
	free(st);
}

/* A state whose last view closed is kept (idle) so the next SELECT of the mailbox in
 * this session process costs a refresh instead of a listing (one AEAD open per
 * message). Idle states are not refreshed by user_refresh_all; mbox_state_get
 * refreshes them against the vault's counters (uidnext, highestmodseq, messages)
 * before use, the same check that keeps concurrent sessions in sync. Bounded: the
 * least recently used idle states go first. */
void mbox_state_unref(struct mbox_state *st)
{
	struct imap_user *u;
	size_t msgs = 0, nidle = 0;

	if (st == NULL || st->views != NULL)
		return;
	u = st->u;
	if (st->deleted) {
		state_free(st);
		return;
	}
	st->last_used = ++u->state_clock;
	for (;;) {
		struct mbox_state *lru = NULL;

		msgs = 0;
		nidle = 0;
		for (struct mbox_state *s = u->states; s != NULL; s = s->next) {
			if (s->views != NULL)
				continue;
			nidle++;
			msgs += s->n;
			if (lru == NULL || s->last_used < lru->last_used)
				lru = s;
		}
		if (lru == NULL || (nidle <= IDLE_STATES_MAX && msgs <= IDLE_STATE_MSGS_MAX))
			break;
		state_free(lru);
	}
}

void user_states_free(struct imap_user *u)
{
	while (u->states != NULL)
		state_free(u->states);
}

struct adopt_run {
	struct imap_user *u;
	bool failed;		/* the last run's refresh failed (not the commit) */
};

/* vault_write callback: a rerun refreshes again from the fresh txn. */
static int adopt_txn(struct vault_txn *t, void *arg)
{
	struct adopt_run *ar = arg;
	int r = 0;

	ar->failed = false;
	for (struct mbox_state *st = ar->u->states; st != NULL && r == 0; st = st->next)
		if (st->views != NULL)
			r = mbox_state_refresh(st, t);
	ar->failed = r < 0;
	return r;
}

int user_refresh_all(struct imap_user *u, bool adopt)
{
	struct adopt_run ar = { u, true };	/* until a run says otherwise */
	struct vault_txn *t = NULL;
	bool need_write = false;
	int r;

	if (u->states == NULL)
		return 0;
	if ((r = vault_txn_begin(u->v, false, &t)) < 0)
		return r;
	for (struct mbox_state *st = u->states; st != NULL && r == 0; st = st->next) {
		struct vault_mailbox mb;

		if (st->deleted)
			continue;
		r = vault_mailbox_get(t, u->k, st->id, &mb);
		if (st->views == NULL) {
			/* idle: refreshed when next used; only a deleted mailbox's goes now */
			if (r == VAULT_ERR_NOMBOX || (r == 0 && mb.uidvalidity != st->uidvalidity))
				st->deleted = true;
			r = r == VAULT_ERR_NOMBOX ? 0 : r;
			continue;
		}
		if (r == 0 && mb.uidnext > st->uidnext && adopt)
			need_write = true;	/* new mail: adopt it once, in a write txn */
		else if (r == 0 || r == VAULT_ERR_NOMBOX)
			r = mbox_state_refresh(st, t);
	}
	vault_txn_abort(&t);
	for (struct mbox_state *st = u->states, *next; st != NULL; st = next) {
		next = st->next;
		if (st->deleted && st->views == NULL)
			state_free(st);
	}
	if (r < 0 || !need_write)
		return r;
	if ((r = vault_write(u->v, adopt_txn, &ar)) < 0 && ar.failed)
		return r;
	/* A failed commit loses only the adoption; the state reflects committed data. */
	if (r < 0)
		log_warn("session: adoption commit failed: %s", vault_strerror(r));
	return 0;
}

/* ---- views -------------------------------------------------------------------------- */

size_t view_seq(const struct view *v, uint32_t uid)
{
	size_t lo = 0, hi = v->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v->uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < v->n && v->uids[lo] == uid ? lo + 1 : 0;
}

int view_open(struct imap_client *c, struct mbox_state *st, bool readonly)
{
	struct view *v;

	if ((v = calloc(1, sizeof(*v))) == NULL)
		return -ENOMEM;
	v->st = st;
	v->c = c;
	v->readonly = readonly;
	v->cap = st->n > 16 ? st->n : 16;
	if ((v->uids = malloc(v->cap * sizeof(*v->uids))) == NULL) {
		free(v);
		return -ENOMEM;
	}
	for (size_t i = 0; i < st->n; i++)
		v->uids[i] = st->m[i].uid;
	v->n = st->n;
	v->log_pos = st->log_base + st->nlog;
	v->nkw_sent = st->nkw;
	v->hms_sent = st->hms;
	/* RFC 3501 2.3.1.2: \Recent belongs to one session; here, to the first
	 * connection that selected the mailbox while it was loaded. */
	if (st->recent_owner == NULL && st->views == NULL && !readonly)
		st->recent_owner = v;
	v->next = st->views;
	st->views = v;
	c->view = v;
	c->state = CS_SELECTED;
	return 0;
}

void view_close(struct imap_client *c)
{
	struct view *v = c->view;
	struct mbox_state *st;

	if (v == NULL)
		return;
	st = v->st;
	for (struct view **pp = &st->views; *pp != NULL; pp = &(*pp)->next)
		if (*pp == v) {
			*pp = v->next;
			break;
		}
	if (st->recent_owner == v) {
		st->recent_owner = NULL;
		/* The recent messages were this session's; later ones go to the next. */
		for (size_t i = 0; i < st->n; i++)
			st->m[i].recent = false;
	}
	c->view = NULL;
	c->state = CS_AUTH;
	free(v->uids);
	free(v);
	mbox_state_trim(st);
	mbox_state_unref(st);
}

int out_flags(struct imap_client *c, const struct mbox_state *st, const struct mmsg *m,
    bool recent)
{
	static const struct { uint32_t f; const char *name; } names[] = {
		{ VAULT_F_SEEN, "\\Seen" }, { VAULT_F_ANSWERED, "\\Answered" },
		{ VAULT_F_FLAGGED, "\\Flagged" }, { VAULT_F_DELETED, "\\Deleted" },
		{ VAULT_F_DRAFT, "\\Draft" },
	};
	bool first = true;
	int r = 0;

	r |= out_str(c, "(");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (m->flags & names[i].f) {
			r |= out_str(c, first ? "" : " ");
			r |= out_str(c, names[i].name);
			first = false;
		}
	/* RFC 9051 dropped \Recent; a rev2 client never sees it. */
	if (recent && m->recent && !(c->enabled & EN_REV2)) {
		r |= out_str(c, first ? "\\Recent" : " \\Recent");
		first = false;
	}
	for (size_t i = 0; i < m->nkw; i++) {
		r |= out_str(c, first ? "" : " ");
		r |= out_str(c, st->kw[m->kw[i]]);
		first = false;
	}
	r |= out_str(c, ")");
	return r < 0 ? -ENOMEM : 0;
}

int out_flag_list(struct imap_client *c, const struct mbox_state *st)
{
	int r = out_str(c, "\\Answered \\Flagged \\Deleted \\Seen \\Draft");

	for (size_t i = 0; i < st->nkw && r == 0; i++)
		if ((r = out_str(c, " ")) == 0)
			r = out_str(c, st->kw[i]);
	return r;
}

static bool view_is_owner(const struct view *v)
{
	return v->st->recent_owner == v;
}

static size_t count_recent(const struct view *v)
{
	size_t n = 0;

	if (!view_is_owner(v))
		return 0;
	for (size_t i = 0; i < v->st->n; i++)
		n += v->st->m[i].recent;
	return n;
}

static int cmp_size_desc(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? 1 : x > y ? -1 : 0;
}

/* Sends and applies a batch of expunges (log entries [from, to)), in descending
 * sequence order so every number is valid when sent; or as one VANISHED for a
 * QRESYNC client (RFC 7162 3.2.10). */
static int sync_expunges(struct imap_client *c, const struct chg *log, size_t from, size_t to)
{
	struct view *v = c->view;
	size_t *seqs, ns = 0;
	int r = 0;

	if ((seqs = malloc((to - from) * sizeof(*seqs))) == NULL)
		return -ENOMEM;
	for (size_t i = from; i < to; i++) {
		size_t s = view_seq(v, log[i].uid);

		if (s != 0)
			seqs[ns++] = s;
	}
	qsort(seqs, ns, sizeof(*seqs), cmp_size_desc);
	/* dedupe */
	{
		size_t k = 0;

		for (size_t i = 0; i < ns; i++)
			if (k == 0 || seqs[k - 1] != seqs[i])
				seqs[k++] = seqs[i];
		ns = k;
	}
	if (ns > 0 && (c->enabled & EN_QRESYNC)) {
		uint32_t *uids = malloc(ns * sizeof(*uids));

		if (uids == NULL) {
			free(seqs);
			return -ENOMEM;
		}
		for (size_t i = 0; i < ns; i++)
			uids[i] = v->uids[seqs[ns - 1 - i] - 1];
		r = out_str(c, "* VANISHED ");
		if (r == 0)
			r = out_uid_ranges(c, uids, ns);
		if (r == 0)
			r = out_str(c, "\r\n");
		free(uids);
	} else {
		for (size_t i = 0; i < ns && r == 0; i++)
			r = out_printf(c, "* %zu EXPUNGE\r\n", seqs[i]);
	}
	/* Remove them from the view (seqs descending). */
	if (r == 0 && ns > 0) {
		size_t w = seqs[ns - 1] - 1, k = ns;	/* first removed index */

		for (size_t rd = w; rd < v->n; rd++) {
			if (k > 0 && rd == seqs[k - 1] - 1) {
				k--;
				continue;
			}
			v->uids[w++] = v->uids[rd];
		}
		v->n = w;
	}
	free(seqs);
	return r;
}

static int sync_exists(struct imap_client *c)
{
	int r = out_printf(c, "* %zu EXISTS\r\n", c->view->n);

	if (r == 0 && !(c->enabled & EN_REV2))
		r = out_printf(c, "* %zu RECENT\r\n", count_recent(c->view));
	return r;
}

static int view_push_uid(struct view *v, uint32_t uid)
{
	if (v->n > 0 && uid <= v->uids[v->n - 1])
		return 0;
	if (v->n == v->cap) {
		size_t ncap = v->cap * 2;
		uint32_t *nu = realloc(v->uids, ncap * sizeof(*nu));

		if (nu == NULL)
			return -ENOMEM;
		v->uids = nu;
		v->cap = ncap;
	}
	v->uids[v->n++] = uid;
	return 0;
}

int out_fetch_flags(struct imap_client *c, size_t seq, const struct mmsg *m)
{
	const struct view *v = c->view;
	int r;

	r = out_printf(c, "* %zu FETCH (UID %u FLAGS ", seq, m->uid);
	if (r == 0)
		r = out_flags(c, v->st, m, view_is_owner(v));
	if (r == 0 && c->condstore)
		r = out_printf(c, " MODSEQ (%llu)", (unsigned long long)m->modseq);
	if (r == 0)
		r = out_str(c, ")\r\n");
	return r;
}

int view_sync(struct imap_client *c, bool allow_expunge)
{
	struct view *v = c->view;
	struct mbox_state *st;
	bool exists = false;
	size_t i;
	int r = 0;

	if (v == NULL)
		return 0;
	st = v->st;
	if (st->deleted) {
		/* Nothing sensible is left to show (Dovecot does the same). */
		if (!c->closing) {
			out_str(c, "* BYE Selected mailbox was deleted\r\n");
			c->closing = true;
		}
		return 0;
	}
	if (st->nkw > v->nkw_sent) {
		r = out_str(c, "* FLAGS (");
		if (r == 0)
			r = out_flag_list(c, st);
		if (r == 0)
			r = out_str(c, ")\r\n* OK [PERMANENTFLAGS (");
		if (r == 0)
			r = out_flag_list(c, st);
		if (r == 0)
			r = out_str(c, " \\*)] Flags permitted\r\n");
		if (r < 0)
			return r;
		v->nkw_sent = st->nkw;
	}
	i = (size_t)(v->log_pos - st->log_base);
	while (i < st->nlog && r == 0) {
		const struct chg *e = &st->log[i];

		if (e->type == CHG_APPEND) {
			r = view_push_uid(v, e->uid);
			exists = true;
			i++;
		} else if (e->type == CHG_EXPUNGE) {
			size_t j = i;

			if (!allow_expunge)
				break;
			if (exists) {
				if ((r = sync_exists(c)) < 0)
					break;
				exists = false;
			}
			while (j < st->nlog && st->log[j].type == CHG_EXPUNGE)
				j++;
			r = sync_expunges(c, st->log, i, j);
			i = j;
		} else {
			const struct mmsg *m = mbox_state_find(st, e->uid);
			size_t seq = view_seq(v, e->uid);

			if (e->origin != c && m != NULL && seq != 0 && exists) {
				/* The client must know the message exists first. */
				if ((r = sync_exists(c)) < 0)
					break;
				exists = false;
			}
			if (e->origin != c && m != NULL && seq != 0) {
				/* Skip repeats of the same message later in this batch. */
				bool later = false;

				for (size_t j = i + 1; j < st->nlog && j < i + 64; j++)
					if (st->log[j].type == CHG_FLAGS &&
					    st->log[j].uid == e->uid && st->log[j].origin != c) {
						later = true;
						break;
					}
				if (!later)
					r = out_fetch_flags(c, seq, m);
			}
			i++;
		}
	}
	v->log_pos = st->log_base + i;
	if (r == 0 && exists)
		r = sync_exists(c);
	mbox_state_trim(st);
	return r;
}

void user_push_idle(struct imap_user *u)
{
	for (struct imap_client *c = u->clients; c != NULL; c = c->next) {
		if (!c->idling || c->view == NULL)
			continue;
		if (view_sync(c, true) < 0)
			c->fatal = true;
		if (out_flush(c) < 0)
			c->fatal = true;
	}
}
