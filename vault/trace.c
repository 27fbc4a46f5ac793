/* trace: see vault-trace.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "vault-trace.h"
#include "compat.h"

/* Copies s into out (outsz), replacing bytes that do not belong in a header field
 * (controls, DEL; 8-bit kept as is) and capping the length. */
static void clean(const char *s, char *out, size_t outsz, size_t cap)
{
	size_t n = 0;

	for (; *s != '\0' && n + 1 < outsz && n < cap; s++) {
		unsigned char c = (unsigned char)*s;

		out[n++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	out[n] = '\0';
}

/* RFC 5322 3.3 date-time in local time, in the C locale's English names. */
static void rfc5322_date(time_t now, char *out, size_t outsz)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const mons[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul",
	    "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;
	long off;
	char sign = '+';

	if (localtime_r(&now, &tm) == NULL) {
		snprintf(out, outsz, "Thu, 01 Jan 1970 00:00:00 +0000");
		return;
	}
	off = tm.tm_gmtoff / 60;
	if (off < 0) {
		sign = '-';
		off = -off;
	}
	snprintf(out, outsz, "%s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld",
	    days[tm.tm_wday % 7], tm.tm_mday, mons[tm.tm_mon % 12], tm.tm_year + 1900,
	    tm.tm_hour, tm.tm_min, tm.tm_sec, sign, off / 60, off % 60);
}

int vault_trace_format(const struct vault_trace *t, char *buf, size_t bufsz)
{
	char sender[260], rcpt[260], helo[132], peer[80], host[132], proto[16], id[40];
	char date[64];
	size_t n = 0;
	int k;

	clean(t->sender ? t->sender : "", sender, sizeof(sender), 256);
	clean(t->rcpt ? t->rcpt : "", rcpt, sizeof(rcpt), 256);
	clean(t->helo ? t->helo : "", helo, sizeof(helo), 128);
	clean(t->peer ? t->peer : "", peer, sizeof(peer), 64);
	clean(t->host ? t->host : "localhost", host, sizeof(host), 128);
	clean(t->proto ? t->proto : "LMTP", proto, sizeof(proto), 15);
	clean(t->id ? t->id : "", id, sizeof(id), 32);
	rfc5322_date(t->now, date, sizeof(date));

#define PUT(...) do { \
	k = snprintf(buf + n, bufsz - n, __VA_ARGS__); \
	if (k < 0 || (size_t)k >= bufsz - n) \
		return -E2BIG; \
	n += (size_t)k; } while (0)

	if (bufsz == 0)
		return -E2BIG;
	buf[0] = '\0';
	if (t->sender != NULL)
		PUT("Return-Path: <%s>\r\n", sender);
	if (t->rcpt != NULL)
		PUT("Delivered-To: <%s>\r\n", rcpt);
	PUT("Received:");
	if (t->helo != NULL)
		PUT(" from %s%s%s%s\r\n\t", helo[0] ? helo : "unknown", peer[0] ? " (" : "",
		    peer, peer[0] ? ")" : "");
	else
		PUT(" ");
	PUT("by %s (sealmail) with %s", host, proto);
	if (id[0])
		PUT(" id %s", id);
	if (t->rcpt != NULL)
		PUT("\r\n\tfor <%s>", rcpt);
	PUT("; %s\r\n", date);
#undef PUT
	return (int)n;
}

int vault_trace_delivery_begin(struct vault *v, const char *user, const struct vault_trace *t,
    struct vault_delivery **out)
{
	struct vault_delivery *d = NULL;
	char buf[VAULT_TRACE_FMT_MAX];
	int r, n;

	*out = NULL;
	if ((n = vault_trace_format(t, buf, sizeof(buf))) < 0)
		return n;
	if ((r = vault_delivery_begin(v, user, t->now, &d)) < 0)
		return r;
	if ((r = vault_delivery_write_trace(d, (const uint8_t *)buf, (size_t)n)) < 0) {
		vault_delivery_abort(&d);
		return r;
	}
	*out = d;
	return 0;
}
