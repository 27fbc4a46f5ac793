/* APPEND (RFC 9051 6.3.12) with MULTIAPPEND (RFC 3502), UIDPLUS APPENDUID (RFC
 * 4315), APPENDLIMIT (RFC 7889), literal8 (RFC 3516 4.4). The parser has already read
 * the literals. All messages of one command are stored in one transaction: all or
 * nothing (RFC 3502 3). The cache is built here while the plaintext is at hand, so
 * the first FETCH ENVELOPE does not have to read the body back. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "imap-engine-private.h"
#include "log.h"

struct append_ctx {
	const char *name;
	const struct imap_append *a;
	uint32_t mbox, uidvalidity;
	uint32_t *uids;
	struct sbuf **blobs;	/* cache blobs, for the session's cache after commit */
	bool nombox;
};

/* True when some LF is not preceded by CR. */
static bool has_bare_lf(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			return true;
	return false;
}

static int append_one(struct imap_client *c, struct vault_txn *t, struct append_ctx *ac,
    const struct imap_append_msg *am, uint32_t *uid_out, struct sbuf **blob_out)
{
	struct vault_msg_meta meta;
	struct imap_mbuf norm;
	const uint8_t *data = (const uint8_t *)am->data;
	size_t len = am->len;
	struct imap_msg *pm = NULL;
	struct sbuf *blob = NULL;
	int r;

	memset(&meta, 0, sizeof(meta));
	imap_mbuf_init(&norm, 0);
	/* IMAP messages are CRLF; a client that sends bare LF gets them converted so
	 * that RFC822.SIZE and BODY[] agree (RFC 9051 2.3.4). CRLF input is stored
	 * byte for byte. */
	if (has_bare_lf(data, len)) {
		if ((r = imap_msg_crlf_normalize(data, len, &norm)) < 0)
			goto out;
		data = norm.d;
		len = norm.len;
	}
	meta.flags = flags_to_vault(am->flags.sys);
	meta.nkeywords = (uint32_t)am->flags.nkw;
	for (size_t i = 0; i < am->flags.nkw; i++)
		meta.keywords[i] = (char *)(uintptr_t)am->flags.kw[i];
	if (am->has_date) {
		meta.internal_date = am->date;
		meta.internal_tz = am->tz_min;
	} else {
		meta.internal_date = time(NULL);
		meta.internal_tz = 0;
	}
	if ((r = vault_msg_append(t, c->u->k, ac->mbox, data, len, &meta, uid_out)) < 0)
		goto out;
	/* Cache now (best effort: a failure here only costs a parse later). */
	if (imap_msg_parse(data, len, NULL, &pm) == 0 && msg_cache_build(pm, &blob) == 0) {
		if (vault_msg_set_cache(t, c->u->k, ac->mbox, *uid_out, blob->d, blob->len) < 0)
			log_debug("session: cache at APPEND not stored");
		sbuf_free(blob_out);
		*blob_out = blob;
		blob = NULL;
	}
	r = 0;
out:
	imap_msg_free(&pm);
	sbuf_free(&blob);
	if (norm.d != NULL)
		explicit_bzero(norm.d, norm.cap);
	imap_mbuf_release(&norm);
	return r;
}

/* engine_write callback: replayable (the UIDs and cache blobs are overwritten on a
 * rerun; nothing leaves the session until it committed). */
static int do_append(struct imap_client *c, struct vault_txn *t, void *arg)
{
	struct append_ctx *ac = arg;
	struct vault_mailbox mb;
	int r;

	if ((r = vault_mailbox_find(t, c->u->k, ac->name, &mb)) < 0) {
		ac->nombox = r == VAULT_ERR_NOMBOX;
		return r;
	}
	ac->mbox = mb.id;
	ac->uidvalidity = mb.uidvalidity;
	for (size_t i = 0; i < ac->a->nmsgs; i++)
		if ((r = append_one(c, t, ac, &ac->a->msgs[i], &ac->uids[i], &ac->blobs[i])) < 0)
			return r;
	return 0;
}

int cmd_append(struct imap_client *c, struct imap_cmd *cmd)
{
	struct imap_append *a = NULL;
	struct append_ctx ac = { 0 };
	char name[IMAP_MAILBOX_NAME_MAX + 1];
	const char *err = NULL;
	uint64_t max = c->u->cfg->max_message_size;
	int r;

	if ((r = imap_append_parse(cmd->args, cmd->nargs, &a, &err)) < 0) {
		if (r == -ENOMEM)
			return r;
		return cmd_bad(c, cmd, "%s", err ? err : "Invalid APPEND arguments");
	}
	if (arg_mailbox(c, a->mailbox, name, sizeof(name)) < 0) {
		r = cmd_bad(c, cmd, "Invalid mailbox name");
		goto out;
	}
	for (size_t i = 0; i < a->nmsgs; i++) {
		if (max > 0 && a->msgs[i].len > max) {
			r = cmd_no(c, cmd, "[TOOBIG] Message is larger than APPENDLIMIT");
			goto out;
		}
		if (a->msgs[i].len == 0) {
			r = cmd_no(c, cmd, "Can't save a zero byte message");
			goto out;
		}
		if (a->msgs[i].flags.nkw > VAULT_MAX_KEYWORDS) {
			r = cmd_no(c, cmd, "[LIMIT] Too many keywords");
			goto out;
		}
	}
	ac.name = name;
	ac.a = a;
	if ((ac.uids = calloc(a->nmsgs, sizeof(*ac.uids))) == NULL ||
	    (ac.blobs = calloc(a->nmsgs, sizeof(*ac.blobs))) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	r = engine_write(c, do_append, &ac);
	if (r < 0) {
		if (ac.nombox)
			r = cmd_no(c, cmd, "[TRYCREATE] Mailbox doesn't exist");
		else if (r == -E2BIG)
			r = cmd_no(c, cmd, "[TOOBIG] Message too big");
		else if (r == -EINVAL)
			r = cmd_no(c, cmd, "Invalid keyword");
		else
			r = cmd_vault_err(c, cmd, r);
		goto out;
	}
	/* Only now are the UIDs certain (an aborted APPEND would hand them out
	 * again): the session's blob cache may learn the new messages. */
	for (size_t i = 0; i < a->nmsgs; i++)
		if (ac.blobs[i] != NULL)
			blobcache_put(&c->u->bc, ac.mbox, ac.uids[i], ac.blobs[i]->d,
			    ac.blobs[i]->len);
	/* Connections with the mailbox selected (this one too) get EXISTS. */
	user_refresh_all(c->u, false);
	if ((r = view_sync(c, true)) < 0)
		goto out;
	r = out_printf(c, "%s OK [APPENDUID %u ", cmd->tag, ac.uidvalidity);
	if (r == 0)
		r = out_uid_ranges(c, ac.uids, a->nmsgs);
	if (r == 0)
		r = out_str(c, "] Append completed\r\n");
	cmd_done(c, cmd, MR_OK);
out:
	for (size_t i = 0; ac.blobs != NULL && i < a->nmsgs; i++)
		sbuf_free(&ac.blobs[i]);
	free(ac.blobs);
	free(ac.uids);
	imap_append_free(&a);
	return r;
}
