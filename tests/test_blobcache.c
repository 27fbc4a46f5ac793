/* Unit test of the session's in-memory summary cache (imapd/imap-engine-cache.c):
 * the arena starts small and doubles as it fills (a session with little mail must not
 * hold a 16 MiB secure arena), every entry stays readable and exact across the
 * growths, and once full the ring wraps and evicts the oldest entries. */
#include <string.h>
#include "harness.h"
#include "crypto.h"
#include "imap-engine-private.h"

static void fill(uint8_t *p, size_t n, uint32_t uid)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(uid * 31 + i * 7);
}

TEST(blobcache_grows_then_wraps)
{
	static uint8_t blob[16384], want[16384];
	struct blobcache bc;
	const uint8_t *p;
	size_t len, first_cap, n = 0;

	ASSERT_INT_EQ(crypto_init(), 0);
	ASSERT_INT_EQ(blobcache_init(&bc, (size_t)16 << 20), 0);
	first_cap = bc.cap;
	ASSERT_TRUE(first_cap <= (size_t)1 << 20);
	/* 4000 blobs of 1..16 KiB: about 34 MiB written, so the arena reaches its 16 MiB
	 * maximum and the ring wraps twice. */
	for (uint32_t uid = 1; uid <= 4000; uid++) {
		len = 1024 + (uid * 977) % 15360;
		fill(blob, len, uid);
		blobcache_put(&bc, 7, uid, blob, len);
		/* every entry since the last growth or wrap is intact */
		if (uid % 97 == 0) {
			for (uint32_t u = uid > 200 ? uid - 200 : 1; u <= uid; u++) {
				size_t l2 = 1024 + (u * 977) % 15360;
				if (blobcache_get(&bc, 7, u, &p, &len) != 1)
					continue;	/* evicted (slot collision or wrap) */
				ASSERT_INT_EQ(len, l2);
				fill(want, l2, u);
				ASSERT_MEM_EQ(p, want, l2);
				n++;
			}
		}
	}
	ASSERT_TRUE(bc.cap > first_cap);
	ASSERT_INT_EQ(bc.cap, (size_t)16 << 20);
	ASSERT_TRUE(n > 4000);
	/* the newest is present, the very first long evicted */
	ASSERT_INT_EQ(blobcache_get(&bc, 7, 4000, &p, &len), 1);
	ASSERT_INT_EQ(blobcache_get(&bc, 7, 1, &p, &len), 0);
	blobcache_free(&bc);
	ASSERT_TRUE(bc.arena == NULL);
}

TEST(blobcache_small_session_stays_small)
{
	static uint8_t blob[4096];
	struct blobcache bc;
	const uint8_t *p;
	size_t len;

	ASSERT_INT_EQ(blobcache_init(&bc, (size_t)16 << 20), 0);
	for (uint32_t uid = 1; uid <= 20; uid++) {
		fill(blob, sizeof(blob), uid);
		blobcache_put(&bc, 1, uid, blob, sizeof(blob));
	}
	ASSERT_TRUE(bc.cap <= (size_t)256 << 10);
	for (uint32_t uid = 1; uid <= 20; uid++) {
		ASSERT_INT_EQ(blobcache_get(&bc, 1, uid, &p, &len), 1);
		fill(blob, sizeof(blob), uid);
		ASSERT_MEM_EQ(p, blob, sizeof(blob));
	}
	blobcache_free(&bc);
}

TEST(blobcache_small_max_and_none)
{
	static uint8_t blob[2048];
	struct blobcache bc;
	const uint8_t *p;
	size_t len;

	/* a configured size below the first step is used as is */
	ASSERT_INT_EQ(blobcache_init(&bc, 64 << 10), 0);
	ASSERT_INT_EQ(bc.cap, 64 << 10);
	for (uint32_t uid = 1; uid <= 100; uid++) {
		fill(blob, sizeof(blob), uid);
		blobcache_put(&bc, 2, uid, blob, sizeof(blob));
	}
	ASSERT_INT_EQ(bc.cap, 64 << 10);
	ASSERT_INT_EQ(blobcache_get(&bc, 2, 100, &p, &len), 1);
	ASSERT_MEM_EQ(p, blob, sizeof(blob));
	blobcache_free(&bc);
	/* session_cache_size = 0: no cache at all */
	ASSERT_INT_EQ(blobcache_init(&bc, 0), 0);
	blobcache_put(&bc, 2, 1, blob, sizeof(blob));
	ASSERT_INT_EQ(blobcache_get(&bc, 2, 1, &p, &len), 0);
	blobcache_free(&bc);
}
