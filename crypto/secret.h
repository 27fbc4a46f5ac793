/* struct secret: key material in sodium_malloc'd (guarded, mlock'd) memory. */
#pragma once
#include <stddef.h>

struct secret {
	unsigned char *p;	/* sodium_malloc */
	size_t len;
};

int secret_new(size_t len, struct secret **out);		/* zeroed; 0 or -ENOMEM */
int secret_new_random(size_t len, struct secret **out);
int secret_dup(const void *p, size_t len, struct secret **out);
void secret_free(struct secret **s);				/* wipes, NULLs *s */
/* Constant-time equality: 1 equal, 0 not (lengths differ: 0). */
int secret_eq(const struct secret *a, const struct secret *b);
/* Make the pages inaccessible / readable again (idle keys in keymgr). */
int secret_noaccess(struct secret *s);
int secret_readonly(struct secret *s);
int secret_readwrite(struct secret *s);
