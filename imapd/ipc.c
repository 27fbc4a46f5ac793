/* ipc: control messages between sealmail-imapd processes, and the auth frame.
 * See proto.h for the formats. The table below is the whole protocol: a message is
 * accepted only if its type is known, the receiver is in one of the listed states,
 * its payload size is within bounds and it carries an fd exactly when required. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include "proto.h"
#include "log.h"
#include "compat.h"

struct ipc_rule {
	uint16_t type;
	const char *name;
	uint32_t states;	/* receiver states in which the message is allowed */
	uint16_t min, max;	/* payload bytes */
	bool fd;		/* an fd must (true) / must not (false) come with it */
};

static const struct ipc_rule rules[] = {
	{ IPC_L2M_ATTACH, "ATTACH", IPC_ST_MASTER_LOGIN_PRE, 4 + 2 + 1, 4 + 2 + 127, true },
	{ IPC_M2L_ATTACH_RESULT, "ATTACH_RESULT", IPC_ST_LOGIN_WAIT_ATTACH, 1, 1, false },
	{ IPC_L2M_AUTH_FAILED, "AUTH_FAILED", IPC_ST_MASTER_LOGIN_PRE, 1, 1 + 2 + 127, false },
	{ IPC_L2M_AUTH_OK, "AUTH_OK", IPC_ST_MASTER_LOGIN_ATTACHED, 0, 0, false },
	{ IPC_L2M_DETACH, "DETACH", IPC_ST_MASTER_LOGIN_ATTACHED, 0, 0, false },
	{ IPC_M2S_CONN, "CONN", IPC_ST_SESSION_RUN, 0, 0, true },
	{ IPC_P2K_CONN, "LMTP_CONN", IPC_ST_COMMIT_CTL, 0, 0, true },
	{ IPC_C2K_DELIVERY, "DELIVERY", IPC_ST_COMMIT_CONN, IPC_DELIVERY_BYTES,
	  IPC_DELIVERY_BYTES, true },
	{ IPC_K2C_RESULT, "RESULT", IPC_ST_LMTP_WAIT_COMMIT, 8, 8, false },
};

static const struct ipc_rule *rule_find(uint16_t type)
{
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
		if (rules[i].type == type)
			return &rules[i];
	return NULL;
}

const char *ipc_type_name(uint16_t type)
{
	const struct ipc_rule *r = rule_find(type);
	return r ? r->name : "UNKNOWN";
}

int ipc_send(int sock, uint16_t type, const void *payload, size_t len, int fd)
{
	uint8_t hdr[IPC_HDR_BYTES];
	struct iovec iov[2];
	struct msghdr mh;
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	ssize_t n;

	if (len > IPC_MAX_PAYLOAD)
		return -E2BIG;
	hdr[0] = (uint8_t)(type >> 8);
	hdr[1] = (uint8_t)type;
	hdr[2] = hdr[3] = 0;
	hdr[4] = (uint8_t)(len >> 24);
	hdr[5] = (uint8_t)(len >> 16);
	hdr[6] = (uint8_t)(len >> 8);
	hdr[7] = (uint8_t)len;
	iov[0].iov_base = hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = (void *)(uintptr_t)payload;
	iov[1].iov_len = len;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = len ? 2 : 1;
	if (fd >= 0) {
		struct cmsghdr *c;
		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof(cm.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if ((size_t)n != sizeof(hdr) + len)
		return -EIO;	/* SEQPACKET is all or nothing; be safe */
	return 0;
}

int ipc_check(const uint8_t *pkt, size_t len, bool has_fd, uint32_t state, struct ipc_msg *m)
{
	const struct ipc_rule *r;
	uint16_t type;
	uint32_t plen;

	if (len < IPC_HDR_BYTES)
		return -EPROTO;
	type = (uint16_t)(pkt[0] << 8 | pkt[1]);
	if (pkt[2] != 0 || pkt[3] != 0)
		return -EPROTO;
	plen = (uint32_t)pkt[4] << 24 | (uint32_t)pkt[5] << 16 | (uint32_t)pkt[6] << 8 | pkt[7];
	if ((r = rule_find(type)) == NULL)
		return -EPROTO;
	if (!(r->states & state))
		return -EPROTO;
	if (plen != len - IPC_HDR_BYTES || plen < r->min || plen > r->max)
		return -EPROTO;
	if (has_fd != r->fd)
		return -EPROTO;
	m->type = type;
	m->len = plen;
	memcpy(m->payload, pkt + IPC_HDR_BYTES, plen);
	return 0;
}

int ipc_recv(int sock, uint32_t state, struct ipc_msg *m)
{
	uint8_t pkt[IPC_HDR_BYTES + IPC_MAX_PAYLOAD + 1];
	struct iovec iov = { pkt, sizeof(pkt) };
	struct msghdr mh;
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} cm;
	struct cmsghdr *c;
	int fds[4], nfds = 0, r;
	uint16_t ty = 0;
	ssize_t n;

	m->fd = -1;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cm.buf;
	mh.msg_controllen = sizeof(cm.buf);
	do
		n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	for (c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k; i++) {
				int fd;
				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				if (nfds < 4)
					fds[nfds++] = fd;
				else
					close(fd);
			}
		}
	}
	if (n == 0 && nfds == 0)
		return 0;
	r = -EPROTO;
	if (n >= 2)
		ty = (uint16_t)(pkt[0] << 8 | pkt[1]);
	if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || nfds > 1)
		goto bad;
	r = ipc_check(pkt, (size_t)n, nfds == 1, state, m);
	/* A DELIVERY carries a message's data key: no copy stays on this stack. */
	explicit_bzero(pkt, sizeof(pkt));
	if (r < 0)
		goto bad;
	if (nfds == 1)
		m->fd = fds[0];
	return 1;
bad:
	log_err("ipc: malformed or unexpected message from our own peer (%zd bytes, "
	    "type %s); treating the peer as compromised", n,
	    n >= 2 ? ipc_type_name(ty) : "?");
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	explicit_bzero(pkt, sizeof(pkt));
	return -EPROTO;
}

/* ---- auth frame ------------------------------------------------------------ */

int auth_frame_put(const struct auth_frame *f, struct sbuf *out)
{
	size_t start = out->len, taglen = strlen(f->tag), peerlen = strlen(f->peer);
	size_t infolen = strlen(f->tls_info), sidlen = strlen(f->sid);
	uint32_t body;
	int r;

	if (taglen == 0 || taglen > AUTH_TAG_MAX || peerlen > 63 || infolen > 127 ||
	    sidlen > AUTH_SID_MAX || f->npending > AUTH_PENDING_MAX || f->pass == NULL ||
	    f->npass == 0 || f->npass > AUTH_PASS_MAX ||
	    (f->key == NULL) != (f->token_index < 0) || f->token_index >= AUTH_NO_TOKEN)
		return -EINVAL;
	if ((r = sbuf_put_u32(out, AUTH_MAGIC)) < 0 ||
	    (r = sbuf_put_u32(out, 0)) < 0 ||
	    (r = sbuf_put_u8(out, 2)) < 0 ||
	    (r = sbuf_put_u32(out, f->user_id)) < 0 ||
	    (r = sbuf_put_u8(out, f->token_index < 0 ? AUTH_NO_TOKEN : (uint8_t)f->token_index)) < 0 ||
	    (r = sbuf_put_str16(out, f->key, f->key ? AUTH_KEY_BYTES : 0)) < 0 ||
	    (r = sbuf_put_str16(out, f->pass, f->npass)) < 0 ||
	    (r = sbuf_put_str16(out, f->tag, taglen)) < 0 ||
	    (r = sbuf_put_str16(out, f->peer, peerlen)) < 0 ||
	    (r = sbuf_put_str16(out, f->tls_info, infolen)) < 0 ||
	    (r = sbuf_put_u8(out, f->tls ? 1 : 0)) < 0 ||
	    (r = sbuf_put_str32(out, f->pending, f->npending)) < 0 ||
	    (r = sbuf_put_str16(out, f->sid, sidlen)) < 0)
		return r;
	body = (uint32_t)(out->len - start - 8);
	out->d[start + 4] = (uint8_t)(body >> 24);
	out->d[start + 5] = (uint8_t)(body >> 16);
	out->d[start + 6] = (uint8_t)(body >> 8);
	out->d[start + 7] = (uint8_t)body;
	return 0;
}

int auth_frame_size(const uint8_t *p, size_t len, size_t *total_out)
{
	uint32_t magic, body;

	if (len < 8)
		return 0;
	magic = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	body = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
	if (magic != AUTH_MAGIC || body > AUTH_FRAME_MAX - 8 || body < 1)
		return -EPROTO;
	*total_out = 8 + (size_t)body;
	return 1;
}

/* Copies a str16 into a NUL-terminated buffer; text fields may not hold NUL or
 * control characters (they reach logs). */
static int get_text(struct sbuf *b, char *out, size_t outsz, size_t minlen)
{
	const uint8_t *p;
	size_t n;

	if (sbuf_get_str16(b, &p, &n) < 0 || n < minlen || n >= outsz)
		return -EPROTO;
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] == 0x7f)
			return -EPROTO;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

int auth_frame_get(const uint8_t *p, size_t len, struct auth_frame *f)
{
	struct sbuf b;
	uint32_t magic, body;
	uint8_t ver, tok, tls;
	const uint8_t *q;
	size_t n;

	memset(f, 0, sizeof(*f));
	sbuf_from(&b, p, len);
	if (sbuf_get_u32(&b, &magic) < 0 || magic != AUTH_MAGIC ||
	    sbuf_get_u32(&b, &body) < 0 || body != len - 8 ||
	    sbuf_get_u8(&b, &ver) < 0 || ver != 2 ||
	    sbuf_get_u32(&b, &f->user_id) < 0 ||
	    sbuf_get_u8(&b, &tok) < 0)
		return -EPROTO;
	f->token_index = tok == AUTH_NO_TOKEN ? -1 : tok;
	if (sbuf_get_str16(&b, &q, &n) < 0)
		return -EPROTO;
	if (f->token_index < 0 ? n != 0 : n != AUTH_KEY_BYTES)
		return -EPROTO;
	f->key = n ? q : NULL;
	if (sbuf_get_str16(&b, &q, &n) < 0 || n == 0 || n > AUTH_PASS_MAX)
		return -EPROTO;
	f->pass = q;
	f->npass = n;
	if (get_text(&b, f->tag, sizeof(f->tag), 1) < 0 ||
	    get_text(&b, f->peer, sizeof(f->peer), 0) < 0 ||
	    get_text(&b, f->tls_info, sizeof(f->tls_info), 0) < 0 ||
	    sbuf_get_u8(&b, &tls) < 0 || tls > 1)
		return -EPROTO;
	f->tls = tls;
	if (sbuf_get_str32(&b, &q, &n) < 0 || n > AUTH_PENDING_MAX)
		return -EPROTO;
	f->pending = q;
	f->npending = n;
	if (get_text(&b, f->sid, sizeof(f->sid), 0) < 0 || sbuf_avail(&b) != 0)
		return -EPROTO;
	return 0;
}
