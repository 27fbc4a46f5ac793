/* struct sbuf: a bounded byte buffer with checked puts and consuming gets.
 * Every wire or record byte in sealmail goes through one. Integers are big-endian.
 * A secure sbuf lives in sodium_malloc memory and is wiped on free. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

struct sbuf {
	uint8_t *d;	/* storage */
	size_t len;	/* bytes written */
	size_t off;	/* read offset (consuming getters) */
	size_t cap;	/* allocated bytes */
	size_t max;	/* hard cap: puts beyond it fail with -E2BIG */
	bool secure;	/* d is sodium_malloc'd; wiped when freed or grown */
	bool borrowed;	/* d not owned (sbuf_from): never freed or grown */
};

/* 0 or -ENOMEM. max is the hard cap on len. */
int sbuf_new(size_t max, struct sbuf **out);
int sbuf_new_secure(size_t max, struct sbuf **out);
/* A read-only view of caller memory (no copy, no ownership): every put on it fails
 * with -EINVAL; sbuf_free only NULLs the pointer (b is caller storage). */
void sbuf_from(struct sbuf *b, const void *p, size_t len);
void sbuf_free(struct sbuf **b);		/* wipes secure buffers; NULLs *b */
void sbuf_reset(struct sbuf *b);		/* len = off = 0, wipes if secure */

/* Puts: 0, -E2BIG over max, -ENOMEM. */
int sbuf_put(struct sbuf *b, const void *p, size_t n);
int sbuf_put_u8(struct sbuf *b, uint8_t v);
int sbuf_put_u16(struct sbuf *b, uint16_t v);
int sbuf_put_u32(struct sbuf *b, uint32_t v);
int sbuf_put_u64(struct sbuf *b, uint64_t v);
int sbuf_put_str16(struct sbuf *b, const void *p, size_t n);	/* u16 length + bytes */
int sbuf_put_str32(struct sbuf *b, const void *p, size_t n);	/* u32 length + bytes */
/* Reserve n bytes at the end and return a pointer to them (valid until next put).
 * Their contents are unspecified until written. */
int sbuf_reserve(struct sbuf *b, size_t n, uint8_t **p_out);
int sbuf_printf(struct sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Gets consume from off: 0 or -EBADMSG if fewer bytes remain than needed. */
int sbuf_get(struct sbuf *b, void *p, size_t n);
int sbuf_get_u8(struct sbuf *b, uint8_t *v);
int sbuf_get_u16(struct sbuf *b, uint16_t *v);
int sbuf_get_u32(struct sbuf *b, uint32_t *v);
int sbuf_get_u64(struct sbuf *b, uint64_t *v);
/* Points into the buffer (no copy); valid while b is unchanged. */
int sbuf_get_ptr(struct sbuf *b, size_t n, const uint8_t **p_out);
int sbuf_get_str16(struct sbuf *b, const uint8_t **p_out, size_t *n_out);
int sbuf_get_str32(struct sbuf *b, const uint8_t **p_out, size_t *n_out);
size_t sbuf_avail(const struct sbuf *b);	/* len - off */
const uint8_t *sbuf_cur(const struct sbuf *b);	/* d + off */
