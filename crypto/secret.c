/* struct secret: key material in sodium_malloc memory (guard pages, canary,
 * mlock where the rlimit allows, wiped by sodium_free). */
#include <errno.h>
#include "sodium-min.h"
#include "secret.h"
#include "crypto-private.h"
#include "compat.h"

int secret_new(size_t len, struct secret **out)
{
	struct secret *s;
	int r;

	*out = NULL;
	if ((r = crypto_ensure_init()) < 0)
		return r;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	/* sodium_malloc(0) is legal but be explicit: always at least one byte. */
	if ((s->p = sodium_malloc(len ? len : 1)) == NULL) {
		free(s);
		return -ENOMEM;
	}
	sodium_memzero(s->p, len ? len : 1);	/* sodium_malloc fills with 0xdb */
	s->len = len;
	*out = s;
	return 0;
}

int secret_new_random(size_t len, struct secret **out)
{
	int r;

	if ((r = secret_new(len, out)) < 0)
		return r;
	if (len > 0)
		randombytes_buf((*out)->p, len);
	return 0;
}

int secret_dup(const void *p, size_t len, struct secret **out)
{
	int r;

	if (p == NULL && len > 0) {
		*out = NULL;
		return -EINVAL;
	}
	if ((r = secret_new(len, out)) < 0)
		return r;
	if (len > 0)
		memcpy((*out)->p, p, len);
	return 0;
}

void secret_free(struct secret **sp)
{
	struct secret *s;

	if (sp == NULL || (s = *sp) == NULL)
		return;
	/* sodium_free makes the region writable again, checks the canary and wipes. */
	sodium_free(s->p);
	free(s);
	*sp = NULL;
}

int secret_eq(const struct secret *a, const struct secret *b)
{
	if (a == NULL || b == NULL || a->len != b->len)
		return 0;
	if (a->len == 0)
		return 1;
	return sodium_memcmp(a->p, b->p, a->len) == 0;
}

static int mprotect_result(int rc)
{
	if (rc == 0)
		return 0;
	return errno > 0 ? -errno : -EIO;
}

int secret_noaccess(struct secret *s)
{
	if (s == NULL)
		return -EINVAL;
	return mprotect_result(sodium_mprotect_noaccess(s->p));
}

int secret_readonly(struct secret *s)
{
	if (s == NULL)
		return -EINVAL;
	return mprotect_result(sodium_mprotect_readonly(s->p));
}

int secret_readwrite(struct secret *s)
{
	if (s == NULL)
		return -EINVAL;
	return mprotect_result(sodium_mprotect_readwrite(s->p));
}
