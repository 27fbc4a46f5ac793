/* Mailbox commands: SELECT/EXAMINE (with CONDSTORE/QRESYNC), CLOSE/UNSELECT, CREATE
 * (CREATE-SPECIAL-USE), DELETE, RENAME, SUBSCRIBE/UNSUBSCRIBE, LIST (LIST-EXTENDED,
 * LIST-STATUS, SPECIAL-USE, CHILDREN), LSUB, STATUS. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "imap-engine-private.h"
#include "log.h"

#define NAME_MAX_BYTES 512

/* ---- names ------------------------------------------------------------------------- */

static bool is_inbox(const char *name)
{
	return strcasecmp(name, "INBOX") == 0;
}

int arg_mailbox(struct imap_client *c, const struct imap_arg *a, char *out, size_t outlen)
{
	char *name = NULL;
	size_t n;
	int r;

	if ((r = imap_arg_mailbox(a, (c->enabled & EN_UTF8) != 0, &name, NULL)) < 0)
		return r;
	n = strlen(name);
	if (n == 0 || n >= outlen || name[0] == '/' || strstr(name, "//") != NULL) {
		free(name);
		return -EPROTO;
	}
	/* "INBOX" in any case is INBOX, also as the first level of a hierarchy
	 * (RFC 9051 5.1). */
	if (strncasecmp(name, "INBOX", 5) == 0 && name[5] == '/')
		memcpy(name, "INBOX", 5);
	memcpy(out, name, n + 1);
	free(name);
	return 0;
}

int out_mailbox(struct imap_client *c, const char *name)
{
	struct imap_buf *b = NULL;
	int r;

	if ((r = imap_buf_new(IMAP_MAILBOX_NAME_MAX * 4 + 64, &b)) < 0)
		return r;
	r = imap_write_mailbox(b, name, strlen(name), (c->enabled & EN_UTF8) != 0);
	if (r == 0)
		r = out_put(c, b->data, b->len);
	imap_buf_free(&b);
	return r;
}

static const struct { uint32_t bit; const char *name; } su_names[] = {
	{ VAULT_SU_ALL, "\\All" }, { VAULT_SU_ARCHIVE, "\\Archive" },
	{ VAULT_SU_DRAFTS, "\\Drafts" }, { VAULT_SU_FLAGGED, "\\Flagged" },
	{ VAULT_SU_JUNK, "\\Junk" }, { VAULT_SU_SENT, "\\Sent" },
	{ VAULT_SU_TRASH, "\\Trash" },
};

static uint32_t su_from_name(const char *s)
{
	for (size_t i = 0; i < sizeof(su_names) / sizeof(su_names[0]); i++)
		if (strcasecmp(s, su_names[i].name) == 0)
			return su_names[i].bit;
	return 0;
}

static int find_mailbox(struct imap_client *c, struct vault_txn *t, const char *name,
    struct vault_mailbox *mb)
{
	return vault_mailbox_find(t, c->u->k, name, mb);
}

/* ---- SELECT / EXAMINE ---------------------------------------------------------------- */

struct vanished_ctx {
	const struct imap_select_params *q;
	uint32_t *uids;
	size_t n, cap;
};

static int vanished_cb(uint32_t uid, void *arg)
{
	struct vanished_ctx *v = arg;

	if (v->q->known_uids != NULL && !imap_seqset_contains(v->q->known_uids, uid, uid))
		return 0;
	if (v->n == v->cap) {
		size_t ncap = v->cap ? v->cap * 2 : 64;
		uint32_t *nu = realloc(v->uids, ncap * sizeof(*nu));

		if (nu == NULL)
			return -ENOMEM;
		v->uids = nu;
		v->cap = ncap;
	}
	v->uids[v->n++] = uid;
	return 0;
}

/* RFC 7162 3.2.5.1: VANISHED (EARLIER) for what was expunged since the client's
 * modseq, then FETCH for what changed. */
static int qresync_report(struct imap_client *c, const struct imap_select_params *q)
{
	struct view *v = c->view;
	struct mbox_state *st = v->st;
	struct vanished_ctx vc = { .q = q };
	struct vault_txn *t = NULL;
	int r;

	if (q->uidvalidity != st->uidvalidity)
		return 0;
	if ((r = vault_txn_begin(c->u->v, false, &t)) < 0)
		return r;
	r = vault_msg_vanished(t, c->u->user_id, st->id, q->modseq, vanished_cb, &vc);
	vault_txn_abort(&t);
	if (r == 0 && vc.n > 0) {
		r = out_str(c, "* VANISHED (EARLIER) ");
		if (r == 0)
			r = out_uid_ranges(c, vc.uids, vc.n);
		if (r == 0)
			r = out_str(c, "\r\n");
	}
	free(vc.uids);
	for (size_t i = 0; i < v->n && r == 0; i++) {
		const struct mmsg *m = mbox_state_find(st, v->uids[i]);

		if (m == NULL || m->modseq <= q->modseq)
			continue;
		if (q->known_uids != NULL && !imap_seqset_contains(q->known_uids, m->uid, m->uid))
			continue;
		r = out_fetch_flags(c, i + 1, m);
	}
	return r;
}

static size_t first_unseen(const struct view *v)
{
	const struct mbox_state *st = v->st;
	size_t j = 0;

	/* Both arrays are sorted by UID: one merge walk. */
	for (size_t i = 0; i < v->n; i++) {
		while (j < st->n && st->m[j].uid < v->uids[i])
			j++;
		if (j < st->n && st->m[j].uid == v->uids[i] && !(st->m[j].flags & VAULT_F_SEEN))
			return i + 1;
	}
	return 0;
}

/* SELECT's write txn (engine_write callback): finds the mailbox and gets its state,
 * adopting new deliveries. Replayable: a rerun drops the state reference the last
 * run took and takes it again from the fresh txn. */
struct select_run {
	const char *name;
	struct vault_mailbox mb;
	struct mbox_state *st;	/* a reference, once found */
	bool failed;		/* the last run failed (not the commit) */
};

static int select_txn(struct imap_client *c, struct vault_txn *t, void *arg)
{
	struct select_run *sr = arg;
	int r;

	if (sr->st != NULL)
		mbox_state_unref(sr->st);
	sr->st = NULL;
	if ((r = find_mailbox(c, t, sr->name, &sr->mb)) < 0 ||
	    (r = mbox_state_get(c->u, t, sr->mb.id, &sr->st)) < 0)
		sr->st = NULL;
	sr->failed = r < 0;
	return r;
}

int cmd_select(struct imap_client *c, struct imap_cmd *cmd)
{
	struct select_run sr;
	bool examine = strcmp(cmd->name, "EXAMINE") == 0;
	struct imap_select_params *q = NULL;
	const char *err = NULL;
	char name[NAME_MAX_BYTES];
	struct vault_mailbox mb;
	struct mbox_state *st = NULL;
	size_t recent = 0, unseen;
	int r;

	if (cmd->nargs < 1 || cmd->nargs > 2)
		return cmd_bad(c, cmd, "%s needs a mailbox name", cmd->name);
	if (arg_mailbox(c, &cmd->args[0], name, sizeof(name)) < 0)
		return cmd_bad(c, cmd, "Invalid mailbox name");
	if (imap_select_params_parse(cmd->args + 1, cmd->nargs - 1, &q, &err) < 0)
		return cmd_bad(c, cmd, "%s", err ? err : "Invalid parameters");
	/* RFC 7162 3.2.5: QRESYNC parameters only after ENABLE QRESYNC. */
	if (q != NULL && q->qresync && !(c->enabled & EN_QRESYNC)) {
		imap_select_params_free(&q);
		return cmd_bad(c, cmd, "QRESYNC not enabled");
	}
	/* RFC 9051 6.3.2 / RFC 7162 3.2.11: selecting closes the current mailbox
	 * (without expunging) and says so with [CLOSED]. */
	if (c->view != NULL) {
		view_close(c);
		if ((r = out_str(c, "* OK [CLOSED] Previous mailbox closed\r\n")) < 0)
			goto out;
	}
	/* A write txn: messages delivered since the last session are adopted once. */
	sr = (struct select_run){ .name = name, .failed = true };
	if ((r = engine_write(c, select_txn, &sr)) < 0 && (sr.failed || sr.st == NULL)) {
		if (sr.st != NULL)
			mbox_state_unref(sr.st);
		if (r == VAULT_ERR_NOMBOX)
			r = cmd_no(c, cmd, "[NONEXISTENT] Mailbox doesn't exist: %s", "");
		else
			r = cmd_vault_err(c, cmd, r);
		goto out;
	}
	if (r < 0)	/* the commit: the state reflects committed data */
		log_warn("session: adoption commit failed: %s", vault_strerror(r));
	mb = sr.mb;
	st = sr.st;
	if ((r = view_open(c, st, examine)) < 0) {
		mbox_state_unref(st);
		goto out;
	}
	if (q != NULL && q->condstore)
		c->condstore = true;
	recent = 0;
	if (c->view == st->recent_owner)
		for (size_t i = 0; i < st->n; i++)
			recent += st->m[i].recent;
	r = out_str(c, "* FLAGS (");
	if (r == 0)
		r = out_flag_list(c, st);
	if (r == 0)
		r = out_str(c, ")\r\n* OK [PERMANENTFLAGS (");
	if (r == 0 && !examine) {
		r = out_flag_list(c, st);
		if (r == 0)
			r = out_str(c, " \\*");
	}
	if (r == 0)
		r = out_printf(c, ")] %s\r\n* %zu EXISTS\r\n",
		    examine ? "Read-only mailbox" : "Flags permitted", st->n);
	if (r == 0 && !(c->enabled & EN_REV2)) {
		r = out_printf(c, "* %zu RECENT\r\n", recent);
		unseen = first_unseen(c->view);
		if (r == 0 && unseen > 0)
			r = out_printf(c, "* OK [UNSEEN %zu] First unseen\r\n", unseen);
	}
	if (r == 0)
		r = out_printf(c, "* OK [UIDVALIDITY %u] UIDs valid\r\n"
		    "* OK [UIDNEXT %u] Predicted next UID\r\n", st->uidvalidity, st->uidnext);
	if (r == 0)
		r = out_printf(c, "* OK [HIGHESTMODSEQ %llu] Highest\r\n",
		    (unsigned long long)st->hms);
	if (r == 0) {
		char hex[33];

		crypto_hex_encode(mb.objectid, sizeof(mb.objectid), hex, sizeof(hex));
		r = out_printf(c, "* OK [MAILBOXID (M%s)] Ok\r\n", hex);
	}
	if (r == 0 && (c->enabled & EN_REV2)) {
		/* RFC 9051 6.3.2: the LIST response gives the canonical name. */
		r = out_str(c, "* LIST () \"/\" ");
		if (r == 0)
			r = out_mailbox(c, mb.name);
		if (r == 0)
			r = out_str(c, "\r\n");
	}
	if (r == 0 && q != NULL && q->qresync)
		r = qresync_report(c, q);
	if (r == 0)
		r = cmd_ok(c, cmd, "[READ-%s] %s completed", examine ? "ONLY" : "WRITE",
		    examine ? "Examine" : "Select");
out:
	imap_select_params_free(&q);
	return r;
}

int cmd_close(struct imap_client *c, struct imap_cmd *cmd)
{
	bool expunge = strcmp(cmd->name, "CLOSE") == 0;
	int r;

	if (cmd->nargs != 0)
		return cmd_bad(c, cmd, "%s takes no arguments", cmd->name);
	/* CLOSE silently expunges \Deleted messages when read-write (RFC 9051 6.4.1). */
	if (expunge && !c->view->readonly && (r = engine_expunge(c, NULL, 0, false, true)) < 0) {
		log_warn("session: CLOSE expunge failed: %s", vault_strerror(r));
	}
	view_close(c);
	r = out_printf(c, "%s OK %s completed\r\n", cmd->tag, cmd->name);
	cmd_done(c, cmd, MR_OK);
	return r;
}

/* ---- CREATE / DELETE / RENAME / SUBSCRIBE --------------------------------------------- */

/* RFC 9051 6.3.4 asks CREATE to make the superior names of "a/b/c". They are made
 * the way Dovecot makes them: as hierarchy names that are not mailboxes, listed
 * "\Noselect \HasChildren" while they have children (LIST builds them from the
 * children). A real mailbox in their place breaks two-way sync with clients such as
 * mbsync when the other side (Dovecot) has the name as \Noselect. A later CREATE of
 * such a name makes it a real mailbox. */
static int create_with_parents(struct imap_client *c, struct vault_txn *t, const char *name,
    uint32_t su, uint32_t *id_out)
{
	return vault_mailbox_create(t, c->u->k, name, su, id_out);
}

static int parse_create_params(const struct imap_arg *a, uint32_t *su)
{
	if (a->type != IMAP_ARG_LIST || a->list_n != 2 || !arg_is_atom(&a->list[0], "USE") ||
	    a->list[1].type != IMAP_ARG_LIST)
		return -EPROTO;
	for (size_t i = 0; i < a->list[1].list_n; i++) {
		const struct imap_arg *f = &a->list[1].list[i];
		uint32_t bit;

		if (f->type != IMAP_ARG_ATOM)
			return -EPROTO;
		if ((bit = su_from_name(f->str)) == 0)
			return -ENOENT;
		*su |= bit;
	}
	return 0;
}

struct create_arg {
	const char *name;
	uint32_t su;
};

static int do_create(struct imap_client *c, struct vault_txn *t, void *arg)
{
	struct create_arg *a = arg;

	return create_with_parents(c, t, a->name, a->su, NULL);
}

int cmd_create(struct imap_client *c, struct imap_cmd *cmd)
{
	char name[NAME_MAX_BYTES];
	struct create_arg a = { .name = name };
	size_t len;
	int r;

	if (cmd->nargs < 1 || cmd->nargs > 2)
		return cmd_bad(c, cmd, "CREATE needs a mailbox name");
	if (arg_mailbox(c, &cmd->args[0], name, sizeof(name)) < 0)
		return cmd_bad(c, cmd, "Invalid mailbox name");
	if (cmd->nargs == 2 && (r = parse_create_params(&cmd->args[1], &a.su)) < 0) {
		if (r == -ENOENT)
			return cmd_no(c, cmd, "[USEATTR] Unsupported special-use attribute");
		return cmd_bad(c, cmd, "Invalid CREATE parameters");
	}
	/* RFC 9051 6.3.4: a trailing delimiter means the client intends to create
	 * names under it; the name itself is created without it. */
	len = strlen(name);
	if (len > 0 && name[len - 1] == '/')
		name[len - 1] = '\0';
	if (name[0] == '\0')
		return cmd_bad(c, cmd, "Invalid mailbox name");
	if (is_inbox(name))
		return cmd_no(c, cmd, "[ALREADYEXISTS] INBOX always exists");
	r = engine_write(c, do_create, &a);
	if (r == 0)
		return cmd_ok(c, cmd, "Create completed");
	return cmd_vault_err(c, cmd, r);
}

static int do_delete(struct imap_client *c, struct vault_txn *t, void *arg)
{
	struct vault_mailbox mb;
	int r;

	if ((r = vault_mailbox_find(t, c->u->k, arg, &mb)) < 0)
		return r;
	return vault_mailbox_delete(t, c->u->k, mb.id);
}

int cmd_delete(struct imap_client *c, struct imap_cmd *cmd)
{
	char name[NAME_MAX_BYTES];
	int r;

	if (cmd->nargs != 1)
		return cmd_bad(c, cmd, "DELETE needs a mailbox name");
	if (arg_mailbox(c, &cmd->args[0], name, sizeof(name)) < 0)
		return cmd_bad(c, cmd, "Invalid mailbox name");
	if (is_inbox(name))
		return cmd_no(c, cmd, "[CANNOT] INBOX can't be deleted");
	r = engine_write(c, do_delete, name);
	if (r < 0)
		return cmd_vault_err(c, cmd, r);
	/* Connections that had it selected learn it at their next sync. */
	user_refresh_all(c->u, false);
	user_push_idle(c->u);
	return cmd_ok(c, cmd, "Delete completed");
}

struct rename_arg {
	const char *from, *to;
};

struct copy_all {
	uint32_t *uids;
	size_t n, cap;
};

static int collect_uid(const struct vault_msg_meta *m, void *arg)
{
	struct copy_all *ca = arg;

	if (ca->n == ca->cap) {
		size_t ncap = ca->cap ? ca->cap * 2 : 64;
		uint32_t *nu = realloc(ca->uids, ncap * sizeof(*nu));

		if (nu == NULL)
			return -ENOMEM;
		ca->uids = nu;
		ca->cap = ncap;
	}
	ca->uids[ca->n++] = m->uid;
	return 0;
}

/* RFC 9051 6.3.6: renaming INBOX moves its messages to the new name and leaves INBOX
 * empty (and in place). */
static int rename_inbox(struct imap_client *c, struct vault_txn *t, const char *to)
{
	struct copy_all ca = { 0 };
	uint32_t dst;
	int r;

	if ((r = create_with_parents(c, t, to, 0, &dst)) < 0)
		return r;
	r = vault_msg_list(t, c->u->k, VAULT_INBOX_ID, 1, collect_uid, &ca);
	for (size_t i = 0; i < ca.n && r == 0; i++) {
		r = vault_msg_copy(t, c->u->k, VAULT_INBOX_ID, ca.uids[i], dst, NULL);
		if (r == 0)
			r = vault_msg_expunge(t, c->u->k, VAULT_INBOX_ID, ca.uids[i]);
	}
	free(ca.uids);
	return r;
}

static int do_rename(struct imap_client *c, struct vault_txn *t, void *arg)
{
	struct rename_arg *a = arg;
	struct vault_mailbox *all = NULL, mb;
	size_t n = 0, fl = strlen(a->from);
	char buf[NAME_MAX_BYTES];
	int r;

	if ((r = vault_mailbox_find(t, c->u->k, a->from, &mb)) < 0)
		return r;
	if (vault_mailbox_find(t, c->u->k, a->to, &mb) == 0)
		return -EEXIST;
	if (is_inbox(a->from))
		return rename_inbox(c, t, a->to);
	if ((r = vault_mailbox_find(t, c->u->k, a->from, &mb)) < 0)
		return r;
	/* Superior names of the new name are implied, as for CREATE. */
	if ((r = vault_mailbox_list(t, c->u->k, &all, &n)) < 0)
		return r;
	/* Inferior names move along with it. */
	for (size_t i = 0; i < n && r == 0; i++) {
		if (strncmp(all[i].name, a->from, fl) != 0 || all[i].name[fl] != '/')
			continue;
		if (snprintf(buf, sizeof(buf), "%s%s", a->to, all[i].name + fl) >=
		    (int)sizeof(buf)) {
			r = -EPROTO;
			break;
		}
		r = vault_mailbox_rename(t, c->u->k, all[i].id, buf);
	}
	free(all);
	if (r == 0)
		r = vault_mailbox_rename(t, c->u->k, mb.id, a->to);
	return r;
}

int cmd_rename(struct imap_client *c, struct imap_cmd *cmd)
{
	char from[NAME_MAX_BYTES], to[NAME_MAX_BYTES];
	struct rename_arg a = { from, to };
	size_t fl;
	int r;

	if (cmd->nargs != 2)
		return cmd_bad(c, cmd, "RENAME needs two mailbox names");
	if (arg_mailbox(c, &cmd->args[0], from, sizeof(from)) < 0 ||
	    arg_mailbox(c, &cmd->args[1], to, sizeof(to)) < 0)
		return cmd_bad(c, cmd, "Invalid mailbox name");
	fl = strlen(to);
	if (fl > 0 && to[fl - 1] == '/')
		to[fl - 1] = '\0';
	if (is_inbox(to))
		return cmd_no(c, cmd, "[ALREADYEXISTS] INBOX always exists");
	fl = strlen(from);
	if (strncmp(to, from, fl) == 0 && to[fl] == '/')
		return cmd_no(c, cmd, "[CANNOT] Can't rename a mailbox under itself");
	r = engine_write(c, do_rename, &a);
	if (r == -EPROTO)
		return cmd_no(c, cmd, "[CANNOT] New name too long");
	if (r < 0)
		return cmd_vault_err(c, cmd, r);
	user_refresh_all(c->u, false);
	user_push_idle(c->u);
	return cmd_ok(c, cmd, "Rename completed");
}

struct sub_arg {
	const char *name;
	bool on;
};

static int do_subscribe(struct imap_client *c, struct vault_txn *t, void *arg)
{
	struct sub_arg *a = arg;

	return vault_subscribe(t, c->u->k, a->name, a->on);
}

int cmd_subscribe(struct imap_client *c, struct imap_cmd *cmd)
{
	char name[NAME_MAX_BYTES];
	struct sub_arg a = { name, strcmp(cmd->name, "SUBSCRIBE") == 0 };
	int r;

	if (cmd->nargs != 1)
		return cmd_bad(c, cmd, "%s needs a mailbox name", cmd->name);
	if (arg_mailbox(c, &cmd->args[0], name, sizeof(name)) < 0)
		return cmd_bad(c, cmd, "Invalid mailbox name");
	r = engine_write(c, do_subscribe, &a);
	if (r == -ENOENT && !a.on)
		r = 0;		/* unsubscribing what was not subscribed */
	if (r < 0)
		return cmd_vault_err(c, cmd, r);
	return cmd_ok(c, cmd, "%s completed", cmd->name);
}

/* ---- STATUS -------------------------------------------------------------------------- */

struct count_ctx {
	uint32_t unseen, deleted, recent;
};

static int count_cb(const struct vault_msg_meta *m, void *arg)
{
	struct count_ctx *cc = arg;

	cc->unseen += !(m->flags & VAULT_F_SEEN);
	cc->deleted += !!(m->flags & VAULT_F_DELETED);
	cc->recent += m->recent;
	return 0;
}

/* Writes "* STATUS name (...)" for mailbox mb. */
static int status_one(struct imap_client *c, struct vault_txn *t,
    const struct vault_mailbox *mb, unsigned items)
{
	struct count_ctx cc = { 0 };
	const char *sep = "";
	int r;

	if (items & (IMAP_STATUS_UNSEEN | IMAP_STATUS_DELETED | IMAP_STATUS_RECENT)) {
		struct mbox_state *st;

		for (st = c->u->states; st != NULL; st = st->next)
			if (st->id == mb->id && !st->deleted)
				break;
		/* An idle state (mbox_state_unref) is not kept fresh: count from the
		 * store instead (refreshing it here, in a read txn, would skip the
		 * adoption its next SELECT does). */
		if (st != NULL && st->views == NULL)
			st = NULL;
		if (st != NULL) {
			for (size_t i = 0; i < st->n; i++) {
				cc.unseen += !(st->m[i].flags & VAULT_F_SEEN);
				cc.deleted += !!(st->m[i].flags & VAULT_F_DELETED);
				cc.recent += st->m[i].recent;
			}
		} else if ((r = vault_msg_list(t, c->u->k, mb->id, 1, count_cb, &cc)) < 0) {
			return r;
		}
	}
	if ((r = out_str(c, "* STATUS ")) < 0 || (r = out_mailbox(c, mb->name)) < 0 ||
	    (r = out_str(c, " (")) < 0)
		return r;
#define ITEM(bit, ...) do { if (items & (bit)) { \
	if ((r = out_printf(c, "%s", sep)) < 0 || (r = out_printf(c, __VA_ARGS__)) < 0) \
		return r; \
	sep = " "; } } while (0)
	ITEM(IMAP_STATUS_MESSAGES, "MESSAGES %u", mb->messages);
	ITEM(IMAP_STATUS_UIDNEXT, "UIDNEXT %u", mb->uidnext);
	ITEM(IMAP_STATUS_UIDVALIDITY, "UIDVALIDITY %u", mb->uidvalidity);
	ITEM(IMAP_STATUS_UNSEEN, "UNSEEN %u", cc.unseen);
	ITEM(IMAP_STATUS_DELETED, "DELETED %u", cc.deleted);
	ITEM(IMAP_STATUS_SIZE, "SIZE %llu", (unsigned long long)mb->size);
	ITEM(IMAP_STATUS_RECENT, "RECENT %u", cc.recent);
	ITEM(IMAP_STATUS_HIGHESTMODSEQ, "HIGHESTMODSEQ %llu", (unsigned long long)mb->highestmodseq);
	ITEM(IMAP_STATUS_APPENDLIMIT, "APPENDLIMIT %llu",
	    (unsigned long long)c->u->cfg->max_message_size);
	if (items & IMAP_STATUS_MAILBOXID) {
		char hex[33];

		crypto_hex_encode(mb->objectid, sizeof(mb->objectid), hex, sizeof(hex));
		ITEM(IMAP_STATUS_MAILBOXID, "MAILBOXID (M%s)", hex);
	}
#undef ITEM
	return out_str(c, ")\r\n");
}

int cmd_status(struct imap_client *c, struct imap_cmd *cmd)
{
	char name[NAME_MAX_BYTES];
	struct vault_txn *t = NULL;
	struct vault_mailbox mb;
	const char *err = NULL;
	unsigned items;
	int r;

	if (cmd->nargs != 2)
		return cmd_bad(c, cmd, "STATUS needs a mailbox and a list of items");
	if (arg_mailbox(c, &cmd->args[0], name, sizeof(name)) < 0)
		return cmd_bad(c, cmd, "Invalid mailbox name");
	if (imap_status_items_parse(&cmd->args[1], &items, &err) < 0)
		return cmd_bad(c, cmd, "%s", err ? err : "Invalid STATUS items");
	if ((r = vault_txn_begin(c->u->v, false, &t)) < 0)
		return cmd_vault_err(c, cmd, r);
	r = vault_mailbox_find(t, c->u->k, name, &mb);
	if (r == 0)
		r = status_one(c, t, &mb, items);
	vault_txn_abort(&t);
	if (r < 0)
		return cmd_vault_err(c, cmd, r);
	return cmd_ok(c, cmd, "Status completed");
}

/* ---- LIST / LSUB ------------------------------------------------------------------------ */


struct list_entry {
	char *name;
	bool exists, subscribed, has_children, child_subscribed;
	const struct vault_mailbox *mb;
};

struct list_set {
	struct list_entry *e;
	size_t n, cap;
};

static struct list_entry *list_find(struct list_set *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->e[i].name, name) == 0)
			return &s->e[i];
	return NULL;
}

static struct list_entry *list_add(struct list_set *s, const char *name)
{
	struct list_entry *e = list_find(s, name);

	if (e != NULL)
		return e;
	if (s->n == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 32;
		struct list_entry *ne = realloc(s->e, ncap * sizeof(*ne));

		if (ne == NULL)
			return NULL;
		s->e = ne;
		s->cap = ncap;
	}
	e = &s->e[s->n];
	memset(e, 0, sizeof(*e));
	if ((e->name = strdup(name)) == NULL)
		return NULL;
	s->n++;
	return e;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct list_entry *x = a, *y = b;

	/* INBOX first, then byte order (Dovecot lists in a similar order). */
	if (strcmp(x->name, "INBOX") == 0)
		return -1;
	if (strcmp(y->name, "INBOX") == 0)
		return 1;
	return strcmp(x->name, y->name);
}

/* Builds the set of names: existing mailboxes, their implied parents, and
 * subscriptions, with the relations LIST needs. */
static int list_build(struct imap_client *c, struct vault_txn *t, struct list_set *s,
    struct vault_mailbox **mbs_out)
{
	struct vault_mailbox *mbs = NULL;
	char **subs = NULL;
	size_t nm = 0, ns = 0;
	int r;

	if ((r = vault_mailbox_list(t, c->u->k, &mbs, &nm)) < 0)
		return r;
	if ((r = vault_subscriptions(t, c->u->k, &subs, &ns)) < 0) {
		free(mbs);
		return r;
	}
	for (size_t i = 0; i < nm && r == 0; i++) {
		struct list_entry *e = list_add(s, mbs[i].name);

		if (e == NULL) {
			r = -ENOMEM;
			break;
		}
		e->exists = true;
		e->mb = &mbs[i];
	}
	for (size_t i = 0; i < ns && r == 0; i++) {
		struct list_entry *e = list_add(s, subs[i]);

		if (e == NULL)
			r = -ENOMEM;
		else
			e->subscribed = true;
	}
	/* Implied parents and children relations. */
	for (size_t i = 0; i < s->n && r == 0; i++) {
		char buf[NAME_MAX_BYTES];
		bool sub = s->e[i].subscribed, ex = s->e[i].exists;

		snprintf(buf, sizeof(buf), "%s", s->e[i].name);
		for (char *p = strrchr(buf, '/'); p != NULL; p = strrchr(buf, '/')) {
			struct list_entry *pe;

			*p = '\0';
			if ((pe = list_add(s, buf)) == NULL) {
				r = -ENOMEM;
				break;
			}
			if (ex)
				pe->has_children = true;
			if (sub)
				pe->child_subscribed = true;
		}
	}
	for (size_t i = 0; i < ns; i++)
		free(subs[i]);
	free(subs);
	if (r < 0) {
		free(mbs);
		return r;
	}
	/* e->mb pointers stay valid: mbs is not reallocated. Entries may have moved
	 * when s->e grew, but mb points into mbs, not into s->e. */
	qsort(s->e, s->n, sizeof(*s->e), cmp_entry);
	*mbs_out = mbs;
	return 0;
}

static void list_free(struct list_set *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->e[i].name);
	free(s->e);
}

static int out_list_line(struct imap_client *c, const char *verb, const struct list_entry *e,
    unsigned sel, unsigned ret, bool lsub)
{
	const char *sep = "";
	int r;

	if ((r = out_printf(c, "* %s (", verb)) < 0)
		return r;
#define ATTR(s) do { if ((r = out_printf(c, "%s%s", sep, (s))) < 0) return r; sep = " "; } while (0)
	if (!e->exists) {
		/* RFC 9051 6.3.9: \NonExistent implies \Noselect; a name that only
		 * exists as a parent is \Noselect (RFC 3501) or \NonExistent. */
		if (lsub || !e->has_children)
			ATTR(lsub ? "\\Noselect" : "\\NonExistent");
		else
			ATTR("\\Noselect");
	}
	if (!lsub) {
		if (e->has_children)
			ATTR("\\HasChildren");
		else
			ATTR("\\HasNoChildren");
		if (e->subscribed && ((ret & IMAP_LIST_RET_SUBSCRIBED) ||
		    (sel & IMAP_LIST_SEL_SUBSCRIBED)))
			ATTR("\\Subscribed");
	}
	/* RFC 6154 2: special-use attributes in LIST (and, as Dovecot does, LSUB). */
	if (e->exists && e->mb != NULL)
		for (size_t i = 0; i < sizeof(su_names) / sizeof(su_names[0]); i++)
			if (e->mb->special_use & su_names[i].bit)
				ATTR(su_names[i].name);
#undef ATTR
	if ((r = out_str(c, ") \"/\" ")) < 0 || (r = out_mailbox(c, e->name)) < 0)
		return r;
	/* RFC 5258 3.5: CHILDINFO for a parent matched only through its children. */
	if ((sel & IMAP_LIST_SEL_RECURSIVEMATCH) && (sel & IMAP_LIST_SEL_SUBSCRIBED) && !e->subscribed &&
	    e->child_subscribed)
		r = out_str(c, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
	if (r == 0)
		r = out_str(c, "\r\n");
	return r;
}

/* Decodes a raw LIST reference or pattern (mUTF-7 unless UTF8=ACCEPT); wildcards
 * pass through the decoder unchanged. */
static int list_decode(struct imap_client *c, const char *s, size_t len, struct imap_buf *out)
{
	if (c->enabled & EN_UTF8)
		return imap_utf8_valid(s, len) ? imap_buf_add(out, s, len) : -EPROTO;
	return imap_mutf7_to_utf8(s, len, out, NULL);
}

int cmd_list(struct imap_client *c, struct imap_cmd *cmd)
{
	bool lsub = strcmp(cmd->name, "LSUB") == 0;
	struct imap_list_args *la = NULL;
	struct imap_buf *pats[IMAP_LIST_MAX_PATTERNS] = { 0 };
	struct imap_buf *ref = NULL;
	size_t npat = 0;
	struct list_set s = { 0 };
	struct vault_mailbox *mbs = NULL;
	struct vault_txn *t = NULL;
	const char *err = NULL;
	unsigned sel, ret;
	int r;

	if ((r = imap_list_parse(cmd->args, cmd->nargs, &la, &err)) < 0) {
		if (r == -ENOMEM)
			return r;
		return cmd_bad(c, cmd, "%s", err ? err : "Invalid LIST arguments");
	}
	if (lsub && la->extended) {
		r = cmd_bad(c, cmd, "Invalid LSUB arguments");
		goto out;
	}
	sel = la->select;
	ret = la->ret;
	if ((r = imap_buf_new(IMAP_MAILBOX_NAME_MAX * 2, &ref)) < 0)
		goto out;
	if (list_decode(c, la->ref, la->ref_len, ref) < 0) {
		r = cmd_bad(c, cmd, "Invalid reference");
		goto out;
	}
	for (size_t i = 0; i < la->npatterns; i++) {
		struct imap_buf *pb;

		if ((r = imap_buf_new(IMAP_MAILBOX_NAME_MAX * 2, &pats[npat])) < 0)
			goto out;
		pb = pats[npat++];
		/* RFC 9051 6.3.9: the reference is a prefix, except that a pattern
		 * starting with the delimiter is absolute. */
		if (la->patterns[i].len == 0 || la->patterns[i].s[0] != '/')
			if ((r = imap_buf_add(pb, ref->data, ref->len)) < 0)
				goto out;
		if (list_decode(c, la->patterns[i].s, la->patterns[i].len, pb) < 0) {
			r = cmd_bad(c, cmd, "Invalid pattern");
			goto out;
		}
	}
	/* An empty pattern asks for the delimiter and root (RFC 9051 6.3.9). */
	if (npat == 1 && la->patterns[0].len == 0) {
		r = out_printf(c, "* %s (\\Noselect) \"/\" \"\"\r\n", lsub ? "LSUB" : "LIST");
		if (r == 0)
			r = cmd_ok(c, cmd, "%s completed", cmd->name);
		goto out;
	}
	if ((r = vault_txn_begin(c->u->v, false, &t)) < 0)
		goto err;
	if ((r = list_build(c, t, &s, &mbs)) < 0)
		goto err;
	for (size_t i = 0; i < s.n && r == 0; i++) {
		struct list_entry *e = &s.e[i];
		bool matched = false, show;

		for (size_t p = 0; p < npat && !matched; p++)
			matched = imap_list_match(pats[p]->data, pats[p]->len, e->name,
			    strlen(e->name), '/') == 1;
		if (!matched)
			continue;
		if (lsub) {
			/* RFC 3501 6.3.9: a % that stops at a level whose children are
			 * subscribed shows that level as \Noselect. */
			show = e->subscribed;
			if (!show && e->child_subscribed)
				show = memchr(pats[0]->data, '%', pats[0]->len) != NULL;
			if (show) {
				struct list_entry tmp = *e;

				tmp.exists = e->subscribed;
				r = out_list_line(c, "LSUB", &tmp, 0, 0, true);
			}
			continue;
		}
		if (sel & IMAP_LIST_SEL_SUBSCRIBED)
			show = e->subscribed ||
			    ((sel & IMAP_LIST_SEL_RECURSIVEMATCH) && e->child_subscribed);
		else
			show = e->exists || e->has_children;
		if (show && (sel & IMAP_LIST_SEL_SPECIAL_USE))
			show = e->exists && e->mb != NULL && e->mb->special_use != 0;
		if (!show)
			continue;
		r = out_list_line(c, "LIST", e, sel, ret, false);
		/* RFC 5819: STATUS right after the LIST line of a selectable mailbox. */
		if (r == 0 && (ret & IMAP_LIST_RET_STATUS) && e->exists && e->mb != NULL)
			r = status_one(c, t, e->mb, la->status_items);
	}
	vault_txn_abort(&t);
	if (r < 0)
		goto err;
	r = cmd_ok(c, cmd, "%s completed", cmd->name);
	goto out;
err:
	vault_txn_abort(&t);
	r = cmd_vault_err(c, cmd, r);
out:
	for (size_t i = 0; i < npat; i++)
		imap_buf_free(&pats[i]);
	imap_buf_free(&ref);
	imap_list_args_free(&la);
	list_free(&s);
	free(mbs);
	return r;
}
