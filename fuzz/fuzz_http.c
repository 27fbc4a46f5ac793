/* Fuzzes the metrics endpoint's HTTP request parser (imapd/metrics.c) and the audit
 * log's JSON string escaping (crypto/audit.c).
 *
 * Input: byte 0 chooses how the rest is cut into pieces (1..32 bytes, from a
 * generator seeded by it); the rest is what a client sends.
 * Oracles: the parser gives the same verdict and consumes the same bytes whether fed
 * whole or in pieces; it never consumes more than it was given; a verdict is one of
 * 200/400/404/405 and comes within the 16 KiB bound; 200 only for "GET /metrics".
 * The escaped form of the same bytes is valid UTF-8 with no control character and
 * no unescaped quote, and a second call with a short buffer agrees on the length. */
#include <stdlib.h>
#include <string.h>
#include "fuzz.h"
#include "audit.h"
#include "metrics.h"

static void check_http(const uint8_t *p, size_t n, uint8_t seed)
{
	struct metrics_http a, b;
	size_t ua = 0, off = 0, tot = 0;
	int ra, rb = 0;
	unsigned x = seed * 2654435761u + 1;

	metrics_http_init(&a);
	ra = metrics_http_feed(&a, p, n, &ua);
	if (ua > n)
		abort();
	if (ra == 1 && a.status != 200 && a.status != 400 && a.status != 404 && a.status != 405)
		abort();
	if (ra == 0 && n > METRICS_HTTP_TOTAL_MAX)
		abort();
	if (ra == 1 && a.status == 200 && (n < 14 || memcmp(p, "GET /metrics ", 13) != 0) &&
	    !(n >= 15 && p[0] == '\n') && !(n >= 16 && p[0] == '\r'))
		abort();
	metrics_http_init(&b);
	while (off < n) {
		size_t piece, used = 0;

		x = x * 1103515245u + 12345u;
		piece = 1 + (x >> 16) % 32;
		if (piece > n - off)
			piece = n - off;
		rb = metrics_http_feed(&b, p + off, piece, &used);
		if (used > piece)
			abort();
		tot += used;
		off += piece;
		if (rb == 1)
			break;
	}
	if (ra != rb || (ra == 1 && (a.status != b.status || ua != tot)))
		abort();
}

static size_t utf8_ok(const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = p[i];
		size_t l = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;

		if (l == 0 || i + l > n)
			return 0;
		for (size_t k = 1; k < l; k++)
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
		i += l;
	}
	return 1;
}

static void check_escape(const uint8_t *p, size_t n)
{
	size_t need = audit_json_escape(p, n, NULL, 0), got;
	char *out = malloc(need + 1), small[8];

	if (out == NULL)
		return;
	got = audit_json_escape(p, n, out, need + 1);
	if (got != need || strlen(out) != need || !utf8_ok((const uint8_t *)out, need))
		abort();
	for (size_t i = 0; i < need; i++) {
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			abort();
		if (out[i] == '\\') {	/* skip the escaped character */
			if (i + 1 >= need)
				abort();
			i += out[i + 1] == 'u' ? 5 : 1;
		} else if (out[i] == '"') {
			abort();
		}
	}
	if (audit_json_escape(p, n, small, sizeof(small)) != need || strlen(small) >= sizeof(small))
		abort();
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	check_http(data + 1, size - 1, data[0]);
	check_escape(data + 1, size - 1);
	return 0;
}
