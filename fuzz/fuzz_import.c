/* Fuzz target: the import parsers (vault/import.c) on bytes from a Maildir or mbox
 * being migrated. The mbox splitter is run on the whole input and again in pieces
 * whose sizes come from the input: both event streams must be identical, every
 * message must begin before its data and end once, and no more bytes may come out
 * than went in. Decoded mailbox names must be valid UTF-8. */
#include <stdlib.h>
#include <string.h>
#include "fuzz.h"
#include "import.h"

struct trace {
	uint64_t h;		/* FNV-1a over the events */
	uint64_t out;		/* data bytes emitted */
	int open;		/* inside a message */
};

static void mix(struct trace *t, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		t->h = (t->h ^ b[i]) * 0x100000001b3ULL;
}

static int t_begin(void *arg, const struct import_mbox_msg *m)
{
	struct trace *t = arg;

	if (t->open)
		abort();
	t->open = 1;
	mix(t, "B", 1);
	mix(t, &m->offset, sizeof(m->offset));
	mix(t, &m->date, sizeof(m->date));
	return 0;
}

static int t_data(void *arg, const uint8_t *p, size_t n)
{
	struct trace *t = arg;

	if (!t->open || n == 0)
		abort();
	t->out += n;
	mix(t, p, n);
	return 0;
}

static int t_end(void *arg)
{
	struct trace *t = arg;

	if (!t->open)
		abort();
	t->open = 0;
	mix(t, "E", 1);
	return 0;
}

static const struct import_mbox_ops ops = { t_begin, t_data, t_end };

static int kw(void *arg, const char *name, size_t n)
{
	if (!import_keyword_valid(name, n))
		abort();
	(void)arg;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct import_mbox m;
	struct trace whole = { 0xcbf29ce484222325ULL, 0, 0 }, parts = whole;
	int r1, r2;
	char out[1024];
	size_t step = size > 0 ? (size_t)data[0] % 17 + 1 : 1, i = 0;

	import_mbox_init(&m, &ops, &whole);
	r1 = import_mbox_feed(&m, data, size);
	if (r1 == 0)
		r1 = import_mbox_finish(&m);
	import_mbox_init(&m, &ops, &parts);
	r2 = 0;
	while (i < size && r2 == 0) {
		size_t n = size - i < step ? size - i : step;

		r2 = import_mbox_feed(&m, data + i, n);
		i += n;
		step = step * 5 % 23 + 1;
	}
	if (r2 == 0)
		r2 = import_mbox_finish(&m);
	if (r1 != r2 || (r1 == 0 && (whole.h != parts.h || whole.out != parts.out)))
		abort();
	if (r1 == 0 && (whole.open || whole.out > size))
		abort();

	if (import_mutf7_to_utf8((const char *)data, size, out, sizeof(out)) == 0 &&
	    !import_utf8_valid((const uint8_t *)out, strlen(out)))
		abort();
	if (import_name_decode((const char *)data, size, out, sizeof(out)) == 0 &&
	    !import_utf8_valid((const uint8_t *)out, strlen(out)))
		abort();
	{
		struct import_maildir_name n;
		const char *name;
		size_t nl;
		unsigned idx;
		uint32_t uid, flags;
		int64_t t;
		int32_t tz;

		if (import_maildir_name((const char *)data, size, &n) == 0 && n.base_len > size)
			abort();
		if (import_keywords_line((const char *)data, size, &idx, &name, &nl) == 0 &&
		    (idx > 25 || name + nl != (const char *)data + size))
			abort();
		for (unsigned v = 1; v <= 3; v++)
			if (import_uidlist_line(v, (const char *)data, size, &uid, &name, &nl) == 0 &&
			    (uid == 0 || name + nl != (const char *)data + size))
				abort();
		(void)import_mbox_from_line((const char *)data, size, &t, &tz);
		(void)import_mbox_status(data, size, &flags, kw, NULL);
	}
	return 0;
}
