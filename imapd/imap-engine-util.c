/* Helpers the engine needs on top of imap-args: message sets resolved against a
 * client's view, UID set output, day numbers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "imap-engine-private.h"

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

/* Resolves a set against the client's view into sorted, unique 0-based indexes.
 * Sequence numbers beyond the view are an error (-ERANGE: BAD, as Dovecot answers);
 * UIDs that do not exist are skipped (RFC 9051 6.4.9). "$" uses the saved result
 * (RFC 5182). The set is normalized in place. */
int view_resolve(struct imap_client *c, struct imap_seqset *set, bool uid,
    size_t **idx_out, size_t *n_out)
{
	const struct view *v = c->view;
	size_t *idx = NULL, n = 0, cap = 0;
	int r;

	*idx_out = NULL;
	*n_out = 0;
	if (set->saved) {
		if (!c->saved_valid || c->nsaved == 0)
			return 0;
		if ((idx = malloc(c->nsaved * sizeof(*idx))) == NULL)
			return -ENOMEM;
		for (size_t i = 0; i < c->nsaved; i++) {
			size_t s = view_seq(v, c->saved[i]);

			if (s != 0)
				idx[n++] = s - 1;
		}
		goto done;
	}
	if (!uid) {
		/* A number past the end is an error, "*" is the last message. */
		for (size_t i = 0; i < set->n; i++)
			if (set->r[i].lo > v->n || set->r[i].hi > v->n)
				return -ERANGE;
	}
	if ((r = imap_seqset_normalize(set, uid ? (v->n ? v->uids[v->n - 1] : 0) :
	    (uint32_t)v->n)) < 0)
		return r;
	for (size_t i = 0; i < set->n; i++) {
		uint32_t lo = set->r[i].lo, hi = set->r[i].hi;
		size_t from, to;

		if (uid) {
			size_t a = 0, b = v->n;

			while (a < b) {
				size_t mid = a + (b - a) / 2;

				if (v->uids[mid] < lo)
					a = mid + 1;
				else
					b = mid;
			}
			from = to = a;
			while (to < v->n && v->uids[to] <= hi)
				to++;
		} else {
			if (lo == 0 || hi > v->n)
				return -ERANGE;
			from = lo - 1;
			to = hi;
		}
		if (to > from && n + (to - from) > cap) {
			size_t ncap = cap ? cap : 64;
			size_t *ni;

			while (ncap < n + (to - from))
				ncap *= 2;
			if ((ni = realloc(idx, ncap * sizeof(*ni))) == NULL) {
				free(idx);
				return -ENOMEM;
			}
			idx = ni;
			cap = ncap;
		}
		for (size_t k = from; k < to; k++)
			idx[n++] = k;
	}
done:
	if (n > 1) {
		size_t k = 0;

		qsort(idx, n, sizeof(*idx), cmp_size);
		for (size_t i = 0; i < n; i++)
			if (k == 0 || idx[k - 1] != idx[i])
				idx[k++] = idx[i];
		n = k;
	}
	*idx_out = idx;
	*n_out = n;
	c->cmd_msgs += n;	/* the audit log's "messages" (the set the command addresses) */
	return 0;
}

int out_uid_ranges(struct imap_client *c, const uint32_t *uids, size_t n)
{
	int r = 0;

	for (size_t i = 0; i < n && r == 0; ) {
		size_t j = i;

		while (j + 1 < n && uids[j + 1] == uids[j] + 1)
			j++;
		if (j == i)
			r = out_printf(c, "%s%u", i ? "," : "", uids[i]);
		else
			r = out_printf(c, "%s%u:%u", i ? "," : "", uids[i], uids[j]);
		i = j + 1;
	}
	return r;
}

int64_t day_of(int64_t t, int32_t tz)
{
	int64_t local = t + (int64_t)tz * 60;

	return local >= 0 ? local / 86400 : (local - 86399) / 86400;
}
