/* struct sbuf: bounded byte buffer (OpenSSH sshbuf in spirit).
 * Invariants: off <= len <= max, len <= cap. Puts are all-or-nothing; gets either
 * consume exactly what they return or consume nothing. */
#include <errno.h>
#include <stdarg.h>
#include "sodium-min.h"
#include "sbuf.h"
#include "crypto-private.h"
#include "compat.h"

#define SBUF_MIN_ALLOC 64

static int sbuf_alloc(size_t max, bool secure, struct sbuf **out)
{
	struct sbuf *b;
	int r;

	*out = NULL;
	if (secure && (r = crypto_ensure_init()) < 0)
		return r;
	/* max + 1 must not overflow: sbuf_printf may need room for the NUL. */
	if (max >= SIZE_MAX / 2)
		return -EINVAL;
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return -ENOMEM;
	b->max = max;
	b->secure = secure;
	*out = b;
	return 0;
}

int sbuf_new(size_t max, struct sbuf **out)
{
	return sbuf_alloc(max, false, out);
}

int sbuf_new_secure(size_t max, struct sbuf **out)
{
	return sbuf_alloc(max, true, out);
}

void sbuf_from(struct sbuf *b, const void *p, size_t len)
{
	memset(b, 0, sizeof(*b));
	/* The cast drops const: a borrowed sbuf is read-only, every put refuses it. */
	b->d = (uint8_t *)(uintptr_t)p;
	b->len = b->cap = b->max = p != NULL ? len : 0;
	b->borrowed = true;
}

static void storage_free(struct sbuf *b)
{
	if (b->d == NULL || b->borrowed)
		return;
	if (b->secure)
		sodium_free(b->d);	/* wipes */
	else
		free(b->d);
	b->d = NULL;
	b->cap = 0;
}

void sbuf_free(struct sbuf **bp)
{
	struct sbuf *b;

	if (bp == NULL || (b = *bp) == NULL)
		return;
	*bp = NULL;
	/* A view made by sbuf_from lives in caller memory: nothing of it is ours. */
	if (b->borrowed)
		return;
	storage_free(b);
	free(b);
}

void sbuf_reset(struct sbuf *b)
{
	if (b == NULL)
		return;
	if (b->secure && b->d != NULL)
		sodium_memzero(b->d, b->cap);
	b->len = b->off = 0;
}

/* Make cap >= need (need may exceed max by one for sbuf_printf's NUL). */
static int sbuf_grow(struct sbuf *b, size_t need)
{
	size_t ncap;
	uint8_t *nd;

	if (need <= b->cap)
		return 0;
	ncap = b->cap < SBUF_MIN_ALLOC ? SBUF_MIN_ALLOC : b->cap;
	while (ncap < need)
		ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
	if (ncap > b->max + 1)
		ncap = need > b->max ? need : b->max;
	if (b->secure) {
		if ((nd = sodium_malloc(ncap)) == NULL)
			return -ENOMEM;
		if (b->len > 0)
			memcpy(nd, b->d, b->len);
		if (b->d != NULL)
			sodium_free(b->d);	/* wipes the old copy */
	} else {
		if ((nd = realloc(b->d, ncap)) == NULL)
			return -ENOMEM;
	}
	b->d = nd;
	b->cap = ncap;
	return 0;
}

int sbuf_reserve(struct sbuf *b, size_t n, uint8_t **p_out)
{
	int r;

	*p_out = NULL;
	if (b->borrowed)
		return -EINVAL;
	if (n > b->max - b->len)
		return -E2BIG;
	if ((r = sbuf_grow(b, b->len + n)) < 0)
		return r;
	/* d may still be NULL for n == 0 on a never-used buffer: hand out a valid
	 * pointer anyway so callers may memcpy(p, src, 0). */
	*p_out = b->d != NULL ? b->d + b->len : (uint8_t *)b;
	b->len += n;
	return 0;
}

int sbuf_put(struct sbuf *b, const void *p, size_t n)
{
	uint8_t *dst;
	int r;

	if (p == NULL && n > 0)
		return -EINVAL;
	if ((r = sbuf_reserve(b, n, &dst)) < 0)
		return r;
	if (n > 0)
		memcpy(dst, p, n);
	return 0;
}

int sbuf_put_u8(struct sbuf *b, uint8_t v)
{
	return sbuf_put(b, &v, 1);
}

int sbuf_put_u16(struct sbuf *b, uint16_t v)
{
	uint8_t x[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	return sbuf_put(b, x, sizeof(x));
}

int sbuf_put_u32(struct sbuf *b, uint32_t v)
{
	uint8_t x[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };

	return sbuf_put(b, x, sizeof(x));
}

int sbuf_put_u64(struct sbuf *b, uint64_t v)
{
	uint8_t x[8];

	for (int i = 0; i < 8; i++)
		x[i] = (uint8_t)(v >> (56 - 8 * i));
	return sbuf_put(b, x, sizeof(x));
}

int sbuf_put_str16(struct sbuf *b, const void *p, size_t n)
{
	uint8_t *dst;
	int r;

	if (n > UINT16_MAX)
		return -E2BIG;
	if (p == NULL && n > 0)
		return -EINVAL;
	if ((r = sbuf_reserve(b, 2 + n, &dst)) < 0)
		return r;
	dst[0] = (uint8_t)(n >> 8);
	dst[1] = (uint8_t)n;
	if (n > 0)
		memcpy(dst + 2, p, n);
	return 0;
}

int sbuf_put_str32(struct sbuf *b, const void *p, size_t n)
{
	uint8_t *dst;
	int r;

	if (n > UINT32_MAX || n > SIZE_MAX - 4)
		return -E2BIG;
	if (p == NULL && n > 0)
		return -EINVAL;
	if ((r = sbuf_reserve(b, 4 + n, &dst)) < 0)
		return r;
	dst[0] = (uint8_t)(n >> 24);
	dst[1] = (uint8_t)(n >> 16);
	dst[2] = (uint8_t)(n >> 8);
	dst[3] = (uint8_t)n;
	if (n > 0)
		memcpy(dst + 4, p, n);
	return 0;
}

int sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n, r;

	if (b->borrowed)
		return -EINVAL;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n > b->max - b->len)
		return -E2BIG;
	/* One byte past len for vsnprintf's NUL; it is not counted in len. */
	if ((r = sbuf_grow(b, b->len + (size_t)n + 1)) < 0)
		return r;
	va_start(ap, fmt);
	r = vsnprintf((char *)b->d + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	if (r != n)
		return -EINVAL;
	b->len += (size_t)n;
	return 0;
}

size_t sbuf_avail(const struct sbuf *b)
{
	return b->len - b->off;
}

const uint8_t *sbuf_cur(const struct sbuf *b)
{
	/* Never NULL + 0 (undefined behaviour): an empty buffer has a valid pointer. */
	return b->d != NULL ? b->d + b->off : (const uint8_t *)b;
}

int sbuf_get_ptr(struct sbuf *b, size_t n, const uint8_t **p_out)
{
	if (n > sbuf_avail(b))
		return -EBADMSG;
	*p_out = sbuf_cur(b);
	b->off += n;
	return 0;
}

int sbuf_get(struct sbuf *b, void *p, size_t n)
{
	const uint8_t *src;
	int r;

	if ((r = sbuf_get_ptr(b, n, &src)) < 0)
		return r;
	if (n > 0)
		memcpy(p, src, n);
	return 0;
}

int sbuf_get_u8(struct sbuf *b, uint8_t *v)
{
	return sbuf_get(b, v, 1);
}

int sbuf_get_u16(struct sbuf *b, uint16_t *v)
{
	const uint8_t *p;
	int r;

	if ((r = sbuf_get_ptr(b, 2, &p)) < 0)
		return r;
	*v = (uint16_t)((unsigned)p[0] << 8 | p[1]);
	return 0;
}

int sbuf_get_u32(struct sbuf *b, uint32_t *v)
{
	const uint8_t *p;
	int r;

	if ((r = sbuf_get_ptr(b, 4, &p)) < 0)
		return r;
	*v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	return 0;
}

int sbuf_get_u64(struct sbuf *b, uint64_t *v)
{
	const uint8_t *p;
	uint64_t x = 0;
	int r;

	if ((r = sbuf_get_ptr(b, 8, &p)) < 0)
		return r;
	for (int i = 0; i < 8; i++)
		x = x << 8 | p[i];
	*v = x;
	return 0;
}

int sbuf_get_str16(struct sbuf *b, const uint8_t **p_out, size_t *n_out)
{
	const uint8_t *p = sbuf_cur(b);
	size_t n;

	if (sbuf_avail(b) < 2)
		return -EBADMSG;
	n = (size_t)p[0] << 8 | p[1];
	if (n > sbuf_avail(b) - 2)
		return -EBADMSG;	/* nothing consumed */
	b->off += 2 + n;
	*p_out = p + 2;
	*n_out = n;
	return 0;
}

int sbuf_get_str32(struct sbuf *b, const uint8_t **p_out, size_t *n_out)
{
	const uint8_t *p = sbuf_cur(b);
	size_t n;

	if (sbuf_avail(b) < 4)
		return -EBADMSG;
	n = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
	if (n > sbuf_avail(b) - 4)
		return -EBADMSG;
	b->off += 4 + n;
	*p_out = p + 4;
	*n_out = n;
	return 0;
}
