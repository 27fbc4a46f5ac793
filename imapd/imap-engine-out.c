/* Output side of a client connection: the clear output queue, IMAP string
 * encoding, and COMPRESS=DEFLATE (RFC 4978) in both directions.
 *
 * The queue holds message plaintext, so it is a secure sbuf (wiped when reset or
 * grown). Bytes are consumed from the front by advancing out->off; the buffer is
 * compacted when the front part is large. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "imap-engine-private.h"

/* RFC 4978 section 4 leaves the level to the server; LIMITS.md: level 1 costs a third
 * of level 6 on this CPU for 90% of the ratio. */
#define DEFLATE_LEVEL 1
#define ZBUF_MAX ((size_t)1 << 30)

int out_put(struct imap_client *c, const void *p, size_t n)
{
	return sbuf_put(c->out, p, n);
}

int out_str(struct imap_client *c, const char *s)
{
	return sbuf_put(c->out, s, strlen(s));
}

int out_printf(struct imap_client *c, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n < sizeof(tmp))
		return sbuf_put(c->out, tmp, (size_t)n);
	/* Long line: format straight into the buffer. */
	{
		uint8_t *dst;
		int r;

		if ((r = sbuf_reserve(c->out, (size_t)n + 1, &dst)) < 0)
			return r;
		va_start(ap, fmt);
		vsnprintf((char *)dst, (size_t)n + 1, fmt, ap);
		va_end(ap);
		c->out->len--;		/* drop the NUL */
	}
	return 0;
}

int out_literal(struct imap_client *c, const void *p, size_t n, bool binary)
{
	int r;

	if ((r = out_printf(c, "%s{%zu}\r\n", binary ? "~" : "", n)) < 0)
		return r;
	return out_put(c, p, n);
}

/* Quoted when every byte is a 7-bit TEXT-CHAR, or 8-bit with UTF8=ACCEPT enabled
 * (RFC 9051 4.3 / RFC 6855 3: quoted strings may carry UTF-8 then); else a literal. */
int out_string(struct imap_client *c, const char *s, size_t n)
{
	bool quotable = n < 4096;
	int r;

	for (size_t i = 0; i < n && quotable; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == 0 || ch == '\r' || ch == '\n')
			quotable = false;
		else if (ch >= 0x80 && !(c->enabled & EN_UTF8))
			quotable = false;
	}
	if (!quotable)
		return out_literal(c, s, n, false);
	if ((r = sbuf_put_u8(c->out, '"')) < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		if ((s[i] == '"' || s[i] == '\\') && (r = sbuf_put_u8(c->out, '\\')) < 0)
			return r;
		if ((r = sbuf_put_u8(c->out, (uint8_t)s[i])) < 0)
			return r;
	}
	return sbuf_put_u8(c->out, '"');
}

int out_nstring(struct imap_client *c, const char *s, size_t n)
{
	if (s == NULL)
		return out_str(c, "NIL");
	return out_string(c, s, n);
}

size_t out_pending(const struct imap_client *c)
{
	size_t n = c->out->len - c->out->off;

	if (c->zbuf != NULL)
		n += c->zbuf->len - c->zbuf->off;
	return n;
}

/* Drop consumed bytes from the front of b. */
static void buf_consumed(struct sbuf *b)
{
	if (b->off == b->len) {
		/* sbuf_reset wipes the whole capacity: keep big buffers from lingering. */
		if (b->cap > 4 * (size_t)OUT_HIGH) {
			size_t max = b->max;
			bool secure = b->secure;
			struct sbuf *nb = NULL;

			if ((secure ? sbuf_new_secure(max, &nb) : sbuf_new(max, &nb)) == 0) {
				/* swap storage: free the old one (wiped) */
				struct sbuf tmp = *b;

				*b = *nb;
				*nb = tmp;
				sbuf_free(&nb);
				return;
			}
		}
		sbuf_reset(b);
	} else if (b->off > 64 * 1024 && b->off > (b->len - b->off)) {
		size_t rest = b->len - b->off;

		memmove(b->d, b->d + b->off, rest);
		if (b->secure)
			explicit_bzero(b->d + rest, b->off);
		b->len = rest;
		b->off = 0;
	}
}

uint64_t out_produced(const struct imap_client *c)
{
	return c->out_consumed + (c->out->len - c->out->off);
}

static int write_buf(struct imap_client *c, struct sbuf *b)
{
	while (b->off < b->len) {
		ssize_t w = write(c->fd, b->d + b->off, b->len - b->off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return -errno;
		}
		b->off += (size_t)w;
		if (b == c->out)
			c->out_consumed += (size_t)w;
	}
	buf_consumed(b);
	return 0;
}

/* Feeds all clear output to deflate with Z_SYNC_FLUSH, so each batch of responses
 * reaches the client whole (RFC 4978 section 4: flush at least at the end of each
 * response the client waits for). */
static int deflate_pending(struct imap_client *c)
{
	struct sbuf *o = c->out;
	int r;

	if (o->off == o->len)
		return 0;
	c->out_consumed += o->len - o->off;
	c->zout.next_in = o->d + o->off;
	c->zout.avail_in = (uInt)(o->len - o->off);
	for (;;) {
		uint8_t *dst;
		size_t room = 64 * 1024;
		int zr;

		if ((r = sbuf_reserve(c->zbuf, room, &dst)) < 0)
			return r;
		c->zout.next_out = dst;
		c->zout.avail_out = (uInt)room;
		zr = deflate(&c->zout, Z_SYNC_FLUSH);
		c->zbuf->len -= c->zout.avail_out;
		if (zr != Z_OK && zr != Z_BUF_ERROR)
			return -EIO;
		if (c->zout.avail_in == 0 && c->zout.avail_out != 0)
			break;
	}
	o->off = o->len;
	buf_consumed(o);
	return 0;
}

int out_flush(struct imap_client *c)
{
	int r;

	if (c->fd < 0)
		return -EPIPE;
	if (!c->deflate)
		return write_buf(c, c->out);
	if ((r = deflate_pending(c)) < 0)
		return r;
	return write_buf(c, c->zbuf);
}

/* Starts compressing. Whatever is still queued (the tagged OK of COMPRESS) must reach
 * the client uncompressed (RFC 4978 section 3), so it moves to the compressed-output
 * queue as it is, ahead of the first deflated byte. */
int out_deflate_start(struct imap_client *c)
{
	int r;

	memset(&c->zout, 0, sizeof(c->zout));
	memset(&c->zin, 0, sizeof(c->zin));
	/* Raw deflate: negative window bits (RFC 4978 section 3: no zlib header). */
	if (deflateInit2(&c->zout, DEFLATE_LEVEL, Z_DEFLATED, -15, 8,
	    Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	if (inflateInit2(&c->zin, -15) != Z_OK) {
		deflateEnd(&c->zout);
		return -ENOMEM;
	}
	if ((r = sbuf_new_secure(ZBUF_MAX, &c->zbuf)) < 0 ||
	    (r = sbuf_put(c->zbuf, c->out->d + c->out->off, c->out->len - c->out->off)) < 0 ||
	    (c->zraw = malloc(c->incap)) == NULL) {
		deflateEnd(&c->zout);
		inflateEnd(&c->zin);
		sbuf_free(&c->zbuf);
		return r < 0 ? r : -ENOMEM;
	}
	c->out->off = c->out->len;
	buf_consumed(c->out);
	c->deflate = true;
	/* Whatever the client pipelined after COMPRESS is already compressed. */
	memcpy(c->zraw, c->in, c->inlen);
	c->zrawlen = c->inlen;
	explicit_bzero(c->in, c->inlen);
	c->inlen = 0;
	return 0;
}

/* Inflates compressed input into c->in, but never more than the room left in it:
 * a small compressed input cannot make us allocate a large clear buffer (a
 * decompression bomb stays a bounded amount of work per call). */
int in_inflate(struct imap_client *c)
{
	size_t room;

	if (!c->deflate || c->zrawlen == 0)
		return 0;
	room = c->incap - c->inlen;
	if (room == 0)
		return 0;
	c->zin.next_in = c->zraw;
	c->zin.avail_in = (uInt)c->zrawlen;
	c->zin.next_out = c->in + c->inlen;
	c->zin.avail_out = (uInt)room;
	{
		int zr = inflate(&c->zin, Z_SYNC_FLUSH);

		if (zr != Z_OK && zr != Z_BUF_ERROR && zr != Z_STREAM_END)
			return -EPROTO;
	}
	c->inlen += room - c->zin.avail_out;
	{
		size_t used = c->zrawlen - c->zin.avail_in;

		memmove(c->zraw, c->zraw + used, c->zrawlen - used);
		c->zrawlen -= used;
	}
	return 0;
}
