/* A message source: the parts of one message a command needs, loaded lazily and at
 * most once each (FETCH, SEARCH, and whatever else reads messages).
 *
 * Cost order: the summary (sealed cache blob, usually from the in-session blob cache:
 * no body decryption) < the header parsed alone (from the summary's header copy) <
 * the whole body (every chunk opened) < the body parsed. A command asks for the
 * cheapest thing that answers it. */
#include <errno.h>
#include <string.h>
#include "imap-engine-private.h"

void msrc_init(struct msrc *s, struct imap_client *c, struct vault_txn *t, uint32_t mbox,
    uint32_t uid, struct pending_cache *pend)
{
	memset(s, 0, sizeof(*s));
	s->c = c;
	s->t = t;
	s->mbox = mbox;
	s->uid = uid;
	s->pend = pend;
}

void msrc_clear(struct msrc *s)
{
	imap_msg_free(&s->hm);
	imap_msg_free(&s->pm);
	vault_sbuf_release(s->c != NULL ? s->c->u->v : NULL, &s->data);
	mcache_clear(&s->mc);
	s->have_mc = false;
	s->mc_err = 0;
}

int msrc_cache(struct msrc *s)
{
	int r;

	if (s->have_mc)
		return 0;
	if (s->mc_err < 0)
		return s->mc_err;	/* e.g. -E2BIG: asked again, it would read the body again */
	if ((r = mcache_get(s->c, s->t, s->mbox, s->uid, &s->mc, s->pend, &s->data,
	    &s->pm)) < 0) {
		if (r == -E2BIG)
			s->mc_err = r;
		return r;
	}
	s->have_mc = true;
	return 0;
}

int msrc_header(struct msrc *s)
{
	int r;

	if (s->hm != NULL)
		return 0;
	if ((r = msrc_cache(s)) < 0)
		return r;
	return imap_msg_parse(s->mc.hdr, s->mc.hdrlen, NULL, &s->hm);
}

int msrc_body(struct msrc *s, bool parse)
{
	int r;

	if (s->data == NULL && (r = msg_load(s->c, s->t, s->mbox, s->uid, &s->data, NULL)) < 0)
		return r;
	if (parse && s->pm == NULL)
		return imap_msg_parse(s->data->d, s->data->len, NULL, &s->pm);
	return 0;
}
