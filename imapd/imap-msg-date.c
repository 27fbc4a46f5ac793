/* imap-msg-date: RFC 5322 section 3.3 date-time with the obsolete syntax of section
 * 4.3, for SENTBEFORE/SENTON/SENTSINCE and SORT DATE. */
#include <errno.h>
#include <string.h>
#include "imap-msg-private.h"

struct dp {
	struct lex l;
};

static int skip(struct dp *d)
{
	return lex_skip_cfws(&d->l);
}

static bool is_alpha(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* Reads 1..maxd digits. */
static bool number(struct dp *d, unsigned maxd, int *v, unsigned *ndigits)
{
	unsigned n = 0;
	int x = 0;

	while (d->l.p < d->l.end && is_digit(*d->l.p) && n < maxd) {
		x = x * 10 + (*d->l.p - '0');
		d->l.p++;
		n++;
	}
	if (n == 0 || (d->l.p < d->l.end && is_digit(*d->l.p)))
		return false;
	*v = x;
	if (ndigits != NULL)
		*ndigits = n;
	return true;
}

static size_t word(struct dp *d, const uint8_t **w)
{
	*w = d->l.p;
	while (d->l.p < d->l.end && is_alpha(*d->l.p))
		d->l.p++;
	return (size_t)(d->l.p - *w);
}

static int month_of(const uint8_t *w, size_t n)
{
	static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";

	if (n < 3)
		return -1;
	for (int i = 0; i < 12; i++) {
		if (ascii_lower(w[0]) == months[i * 3] && ascii_lower(w[1]) == months[i * 3 + 1] &&
		    ascii_lower(w[2]) == months[i * 3 + 2])
			return i + 1;
	}
	return -1;
}

/* obs-zone (RFC 5322 section 4.3); military zones count as +0000 there. */
static bool zone_name(const uint8_t *w, size_t n, int *tz)
{
	static const struct { const char *name; int min; } zones[] = {
		{ "ut", 0 }, { "utc", 0 }, { "gmt", 0 }, { "z", 0 },
		{ "est", -300 }, { "edt", -240 }, { "cst", -360 }, { "cdt", -300 },
		{ "mst", -420 }, { "mdt", -360 }, { "pst", -480 }, { "pdt", -420 },
	};

	for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
		if (ascii_ieq(w, n, zones[i].name)) {
			*tz = zones[i].min;
			return true;
		}
	}
	if (n == 1 && is_alpha(w[0]) && ascii_lower(w[0]) != 'j') {
		*tz = 0;
		return true;
	}
	return false;
}

static bool leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* days since 1970-01-01 of a proleptic Gregorian date */
static int64_t days_from_civil(int y, int m, int d)
{
	int64_t yy = y - (m <= 2);
	int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
	int64_t yoe = yy - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + doe - 719468;
}

int imap_msg_parse_date(const char *s, size_t n, time_t *t_out, int *tz_min_out)
{
	static const uint8_t mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	struct dp d;
	const uint8_t *w;
	size_t wn;
	int day, month, year, hour, min, sec = 0, tz = 0;
	unsigned ydigits;

	if (s == NULL || t_out == NULL || tz_min_out == NULL)
		return -EINVAL;
	lex_init(&d.l, (const uint8_t *)s, n, NULL);
	if (skip(&d) <= 0)
		return -EPROTO;
	/* [day-of-week ","] */
	if (is_alpha(*d.l.p)) {
		(void)word(&d, &w);
		if (skip(&d) <= 0)
			return -EPROTO;
		if (*d.l.p == ',') {
			d.l.p++;
			if (skip(&d) <= 0)
				return -EPROTO;
		}
	}
	/* day month year */
	if (!number(&d, 2, &day, NULL) || skip(&d) <= 0)
		return -EPROTO;
	if (*d.l.p == '-' || *d.l.p == '.')	/* 1-Jan-2024 */
		d.l.p++;
	wn = word(&d, &w);
	if ((month = month_of(w, wn)) < 0 || skip(&d) <= 0)
		return -EPROTO;
	if (*d.l.p == '-' || *d.l.p == '.')
		d.l.p++;
	if (!number(&d, 4, &year, &ydigits))
		return -EPROTO;
	/* obs-year: two digits are 19xx from 50 on, else 20xx; three are 1900+ */
	if (ydigits == 2)
		year += year < 50 ? 2000 : 1900;
	else if (ydigits == 3)
		year += 1900;
	if (year < 1900)
		return -EPROTO;
	if (skip(&d) <= 0)
		return -EPROTO;
	/* hour ":" minute [":" second], CFWS allowed around ":" (obs-time) */
	if (!number(&d, 2, &hour, NULL) || skip(&d) <= 0 || *d.l.p != ':')
		return -EPROTO;
	d.l.p++;
	if (skip(&d) <= 0 || !number(&d, 2, &min, NULL))
		return -EPROTO;
	if (skip(&d) > 0 && *d.l.p == ':') {
		d.l.p++;
		if (skip(&d) <= 0 || !number(&d, 2, &sec, NULL))
			return -EPROTO;
		(void)skip(&d);
	}
	/* zone; a missing zone is taken as +0000 (RFC 5322 4.3: -0000 means unknown) */
	if (d.l.p < d.l.end) {
		if (*d.l.p == '+' || *d.l.p == '-') {
			int sign = *d.l.p == '-' ? -1 : 1, v;
			unsigned nd;

			d.l.p++;
			/* hhmm; a zone past 23:59 is no real offset */
			if (!number(&d, 4, &v, &nd) || nd != 4 || v % 100 > 59 || v / 100 > 23)
				return -EPROTO;
			tz = sign * ((v / 100) * 60 + v % 100);
		} else if (is_alpha(*d.l.p)) {
			wn = word(&d, &w);
			if (!zone_name(w, wn, &tz))
				tz = 0;
		}
	}
	if (day < 1 || day > mdays[month - 1] + (month == 2 && leap(year)) ||
	    hour > 23 || min > 59 || sec > 60)
		return -EPROTO;
	if (sec == 60)
		sec = 59;	/* leap second */
	*t_out = (time_t)(days_from_civil(year, month, day) * 86400 + hour * 3600 +
	    min * 60 + sec - tz * 60);
	*tz_min_out = tz;
	return 0;
}

int64_t imap_msg_date_day(time_t t, int tz_min)
{
	int64_t local = (int64_t)t + (int64_t)tz_min * 60;

	return local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
}

int imap_msg_date(const struct imap_msg *m, time_t *t_out, int *tz_min_out)
{
	struct imap_mbuf v;
	int r;

	if (m == NULL || t_out == NULL || tz_min_out == NULL)
		return -EINVAL;
	imap_mbuf_init(&v, 0);
	r = imap_msg_header_get(m, NULL, "date", 0, IMAP_MSG_HDR_UNFOLD, &v);
	if (r == 0)
		r = imap_msg_parse_date(v.d != NULL ? (const char *)v.d : "", v.len, t_out,
		    tz_min_out);
	imap_mbuf_release(&v);
	return r;
}
