/* Tests for crypto/sbuf: caps, big-endian integers, getters on short input
 * (consume nothing), read-only views, printf, secure buffers wiped. */
#include <errno.h>
#include "harness.h"
#include "crypto.h"
#include "sbuf.h"

TEST(put_get_integers_big_endian)
{
	struct sbuf *b = NULL;
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;

	ASSERT_INT_EQ(sbuf_new(64, &b), 0);
	ASSERT_INT_EQ(sbuf_put_u8(b, 0xa1), 0);
	ASSERT_INT_EQ(sbuf_put_u16(b, 0xb1b2), 0);
	ASSERT_INT_EQ(sbuf_put_u32(b, 0xc1c2c3c4), 0);
	ASSERT_INT_EQ(sbuf_put_u64(b, 0xd1d2d3d4d5d6d7d8ull), 0);
	ASSERT_INT_EQ(b->len, 15);
	ASSERT_MEM_EQ(b->d, "\xa1\xb1\xb2\xc1\xc2\xc3\xc4\xd1\xd2\xd3\xd4\xd5\xd6\xd7\xd8", 15);
	ASSERT_INT_EQ(sbuf_get_u8(b, &u8), 0);
	ASSERT_INT_EQ(sbuf_get_u16(b, &u16), 0);
	ASSERT_INT_EQ(sbuf_get_u32(b, &u32), 0);
	ASSERT_INT_EQ(sbuf_get_u64(b, &u64), 0);
	ASSERT_INT_EQ(u8, 0xa1);
	ASSERT_INT_EQ(u16, 0xb1b2);
	ASSERT_INT_EQ(u32, 0xc1c2c3c4u);
	ASSERT_TRUE(u64 == 0xd1d2d3d4d5d6d7d8ull);
	ASSERT_INT_EQ(sbuf_avail(b), 0);
	sbuf_free(&b);
	ASSERT_TRUE(b == NULL);
	sbuf_free(&b);
	sbuf_free(NULL);
}

TEST(max_is_a_hard_cap)
{
	struct sbuf *b = NULL;
	uint8_t *p;

	ASSERT_INT_EQ(sbuf_new(10, &b), 0);
	ASSERT_INT_EQ(sbuf_put(b, "0123456789", 10), 0);
	ASSERT_INT_EQ(sbuf_put_u8(b, 1), -E2BIG);
	ASSERT_INT_EQ(b->len, 10);
	ASSERT_INT_EQ(sbuf_put(b, "", 0), 0);
	sbuf_reset(b);
	ASSERT_INT_EQ(sbuf_put(b, "0123456", 7), 0);
	ASSERT_INT_EQ(sbuf_put_u32(b, 1), -E2BIG);	/* all or nothing */
	ASSERT_INT_EQ(b->len, 7);
	ASSERT_INT_EQ(sbuf_put_u16(b, 0x4142), 0);
	ASSERT_INT_EQ(sbuf_reserve(b, 2, &p), -E2BIG);
	ASSERT_TRUE(p == NULL);
	ASSERT_INT_EQ(sbuf_reserve(b, 1, &p), 0);
	*p = 'z';
	ASSERT_MEM_EQ(b->d, "0123456ABz", 10);
	ASSERT_INT_EQ(sbuf_reserve(b, SIZE_MAX, &p), -E2BIG);
	ASSERT_INT_EQ(sbuf_put(b, NULL, 0), 0);
	sbuf_free(&b);

	ASSERT_INT_EQ(sbuf_new(0, &b), 0);
	ASSERT_INT_EQ(sbuf_put_u8(b, 1), -E2BIG);
	ASSERT_INT_EQ(sbuf_reserve(b, 0, &p), 0);
	ASSERT_TRUE(p != NULL);
	ASSERT_TRUE(sbuf_cur(b) != NULL);
	ASSERT_INT_EQ(sbuf_avail(b), 0);
	sbuf_free(&b);
	ASSERT_INT_EQ(sbuf_new(SIZE_MAX, &b), -EINVAL);
	ASSERT_TRUE(b == NULL);
}

TEST(growth_keeps_contents)
{
	struct sbuf *b = NULL, *s = NULL;

	ASSERT_INT_EQ(sbuf_new(1 << 20, &b), 0);
	ASSERT_INT_EQ(sbuf_new_secure(1 << 20, &s), 0);
	for (uint32_t i = 0; i < 100000; i++) {
		ASSERT_INT_EQ(sbuf_put_u32(b, i), 0);
		ASSERT_INT_EQ(sbuf_put_u32(s, i), 0);
	}
	for (uint32_t i = 0; i < 100000; i++) {
		uint32_t v, w;

		ASSERT_INT_EQ(sbuf_get_u32(b, &v), 0);
		ASSERT_INT_EQ(sbuf_get_u32(s, &w), 0);
		ASSERT_INT_EQ(v, i);
		ASSERT_INT_EQ(w, i);
	}
	ASSERT_INT_EQ(sbuf_put(b, b->d, 1 << 20), -E2BIG);
	sbuf_free(&b);
	sbuf_free(&s);
}

TEST(getters_on_short_buffers_consume_nothing)
{
	struct sbuf *b = NULL;
	uint8_t u8, raw[8];
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	const uint8_t *p;
	size_t n;

	ASSERT_INT_EQ(sbuf_new(64, &b), 0);
	ASSERT_INT_EQ(sbuf_get_u8(b, &u8), -EBADMSG);
	ASSERT_INT_EQ(sbuf_put(b, "\x01\x02\x03", 3), 0);
	ASSERT_INT_EQ(sbuf_get_u32(b, &u32), -EBADMSG);
	ASSERT_INT_EQ(sbuf_get_u64(b, &u64), -EBADMSG);
	ASSERT_INT_EQ(sbuf_get(b, raw, 4), -EBADMSG);
	ASSERT_INT_EQ(sbuf_get_ptr(b, 4, &p), -EBADMSG);
	ASSERT_INT_EQ(b->off, 0);
	ASSERT_INT_EQ(sbuf_get_u16(b, &u16), 0);
	ASSERT_INT_EQ(u16, 0x0102);
	ASSERT_INT_EQ(sbuf_get_u16(b, &u16), -EBADMSG);
	ASSERT_INT_EQ(b->off, 2);
	ASSERT_INT_EQ(sbuf_get_u8(b, &u8), 0);
	ASSERT_INT_EQ(u8, 3);
	/* length-prefixed strings whose length overruns the buffer */
	sbuf_reset(b);
	ASSERT_INT_EQ(sbuf_put(b, "\x00\x05" "abcd", 6), 0);
	ASSERT_INT_EQ(sbuf_get_str16(b, &p, &n), -EBADMSG);
	ASSERT_INT_EQ(b->off, 0);
	sbuf_reset(b);
	ASSERT_INT_EQ(sbuf_put(b, "\x00\x00\x00\x05" "abcd", 8), 0);
	ASSERT_INT_EQ(sbuf_get_str32(b, &p, &n), -EBADMSG);
	ASSERT_INT_EQ(b->off, 0);
	sbuf_reset(b);
	ASSERT_INT_EQ(sbuf_put(b, "\x00", 1), 0);
	ASSERT_INT_EQ(sbuf_get_str16(b, &p, &n), -EBADMSG);
	ASSERT_INT_EQ(sbuf_get_str32(b, &p, &n), -EBADMSG);
	ASSERT_INT_EQ(b->off, 0);
	sbuf_free(&b);
}

TEST(strings_16_and_32)
{
	struct sbuf *b = NULL;
	const uint8_t *p;
	size_t n;
	static uint8_t big[70000];

	ASSERT_INT_EQ(sbuf_new(1 << 20, &b), 0);
	ASSERT_INT_EQ(sbuf_put_str16(b, "hello", 5), 0);
	ASSERT_INT_EQ(sbuf_put_str32(b, "", 0), 0);
	ASSERT_INT_EQ(sbuf_put_str32(b, big, sizeof(big)), 0);
	ASSERT_INT_EQ(sbuf_put_str16(b, big, 65536), -E2BIG);
	ASSERT_INT_EQ(sbuf_put_str16(b, big, 65535), 0);
	ASSERT_MEM_EQ(b->d, "\x00\x05hello\x00\x00\x00\x00", 11);
	ASSERT_INT_EQ(sbuf_get_str16(b, &p, &n), 0);
	ASSERT_INT_EQ(n, 5);
	ASSERT_MEM_EQ(p, "hello", 5);
	ASSERT_INT_EQ(sbuf_get_str32(b, &p, &n), 0);
	ASSERT_INT_EQ(n, 0);
	ASSERT_INT_EQ(sbuf_get_str32(b, &p, &n), 0);
	ASSERT_INT_EQ(n, sizeof(big));
	ASSERT_INT_EQ(sbuf_get_str16(b, &p, &n), 0);
	ASSERT_INT_EQ(n, 65535);
	ASSERT_INT_EQ(sbuf_avail(b), 0);
	sbuf_free(&b);
	/* a string that would cross max leaves nothing behind */
	ASSERT_INT_EQ(sbuf_new(6, &b), 0);
	ASSERT_INT_EQ(sbuf_put_str16(b, "hello", 5), -E2BIG);
	ASSERT_INT_EQ(b->len, 0);
	ASSERT_INT_EQ(sbuf_put_str32(b, "he", 2), 0);
	ASSERT_INT_EQ(b->len, 6);
	sbuf_free(&b);
}

TEST(borrowed_view_is_read_only)
{
	struct sbuf v, *vp = &v;
	const char data[] = "\x00\x03" "abc";
	const uint8_t *p;
	size_t n;
	uint8_t *w;

	sbuf_from(&v, data, 5);
	ASSERT_INT_EQ(sbuf_avail(&v), 5);
	ASSERT_INT_EQ(sbuf_get_str16(&v, &p, &n), 0);
	ASSERT_INT_EQ(n, 3);
	ASSERT_TRUE(p == (const uint8_t *)data + 2);
	ASSERT_INT_EQ(sbuf_put_u8(&v, 1), -EINVAL);
	ASSERT_INT_EQ(sbuf_reserve(&v, 0, &w), -EINVAL);
	ASSERT_INT_EQ(sbuf_printf(&v, "x"), -EINVAL);
	sbuf_reset(&v);
	ASSERT_INT_EQ(sbuf_put(&v, "zz", 2), -EINVAL);
	ASSERT_MEM_EQ(data, "\x00\x03" "abc", 5);
	sbuf_free(&vp);		/* only NULLs the pointer: v is on the stack */
	ASSERT_TRUE(vp == NULL);
	sbuf_from(&v, NULL, 5);
	ASSERT_INT_EQ(sbuf_avail(&v), 0);
}

TEST(printf_bounded)
{
	struct sbuf *b = NULL;

	ASSERT_INT_EQ(sbuf_new(12, &b), 0);
	ASSERT_INT_EQ(sbuf_printf(b, "%s=%d", "uid", 42), 0);
	ASSERT_INT_EQ(b->len, 6);
	ASSERT_MEM_EQ(b->d, "uid=42", 6);
	ASSERT_INT_EQ(sbuf_printf(b, "%s", "1234567"), -E2BIG);
	ASSERT_INT_EQ(b->len, 6);
	ASSERT_INT_EQ(sbuf_printf(b, "%06u", 7u), 0);	/* exactly up to max */
	ASSERT_INT_EQ(b->len, 12);
	ASSERT_MEM_EQ(b->d, "uid=42000007", 12);
	ASSERT_INT_EQ(sbuf_printf(b, "%s", ""), 0);
	sbuf_free(&b);
}

TEST(secure_buffer_wiped_on_reset)
{
	struct sbuf *s = NULL;
	const uint8_t *d;
	size_t cap;

	ASSERT_INT_EQ(crypto_init(), 0);
	ASSERT_INT_EQ(sbuf_new_secure(4096, &s), 0);
	ASSERT_TRUE(s->secure);
	ASSERT_INT_EQ(sbuf_put(s, "very secret key material", 24), 0);
	d = s->d;
	cap = s->cap;
	sbuf_reset(s);
	ASSERT_TRUE(s->d == d);		/* same storage, now wiped */
	for (size_t i = 0; i < cap; i++)
		ASSERT_INT_EQ(d[i], 0);
	ASSERT_INT_EQ(s->len, 0);
	ASSERT_INT_EQ(sbuf_printf(s, "pw=%s", "hunter2"), 0);
	ASSERT_MEM_EQ(s->d, "pw=hunter2", 10);
	sbuf_free(&s);
	ASSERT_TRUE(s == NULL);
}
