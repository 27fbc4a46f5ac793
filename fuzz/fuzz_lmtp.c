/* Fuzzes LMTP: the wire parser (lmtp-parser.c) and the whole conversation
 * (struct lmtp_session in lmtp.c) against a real vault in a temp dir, created once
 * per process with two users (alice, bob), durable = no (no fsync per input) and a
 * small max_message_size so the over-size paths are reached.
 *
 * Input: byte 0 chooses how the rest is cut into pieces (1..64 bytes, sizes drawn
 * from a generator seeded by it); the rest is what a client sends.
 * Oracles: the parser's events fed whole and fed in pieces are the same (data
 * merged); no event consumes more than it was given; the session never fails
 * other than by ending, and its replies are well-formed lines. Half the inputs
 * commit through the committer's code (export, import, group commit), as a real
 * connection process does; see commit_handoff. */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "fuzz.h"
#include "crypto.h"
#include "log.h"
#include "secret.h"
#include "lmtp.h"
#include "lmtp-parser.h"
#include "vault.h"

static struct vault *V;
static struct vault_config Cfg;
static char Dir[64];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

static void cleanup(void)
{
	vault_close(&V);
	if (Dir[0])
		(void)nftw(Dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void add_user(const char *name)
{
	struct vault_token_secret tok;
	char rec[128];

	memset(&tok, 0, sizeof(tok));
	if (secret_new_random(CRYPTO_OTP_AES_BYTES, &tok.aes_key) < 0 ||
	    secret_new_random(CRYPTO_OTP_UID_BYTES, &tok.uid) < 0)
		abort();
	crypto_random(tok.public_id, sizeof(tok.public_id));
	snprintf(tok.label, sizeof(tok.label), "fuzz");
	if (vault_user_create(V, name, (const uint8_t *)"fuzz passphrase", 15, &tok, time(NULL),
	    rec, sizeof(rec)) != 0)
		abort();
	secret_free(&tok.aes_key);
	secret_free(&tok.uid);
}

static void setup(void)
{
	if (V != NULL)
		return;
	if (crypto_init() < 0)
		abort();
	log_set_level(LOG_LVL_ERR);	/* one info line per delivery otherwise */
	snprintf(Dir, sizeof(Dir), "/tmp/fuzz-lmtp-XXXXXX");
	if (mkdtemp(Dir) == NULL)
		abort();
	atexit(cleanup);
	vault_config_defaults(&Cfg);
	snprintf(Cfg.data_dir, sizeof(Cfg.data_dir), "%s", Dir);
	snprintf(Cfg.hostname, sizeof(Cfg.hostname), "fuzz.test");
	Cfg.argon2_memory = CRYPTO_PWHASH_MIN_MEM_KIB;
	Cfg.argon2_passes = CRYPTO_PWHASH_MIN_PASSES;
	Cfg.map_size = 8u << 20;
	Cfg.durable = false;
	Cfg.max_message_size = 4096;
	if (vault_open(&Cfg, &V) != 0)
		abort();
	add_user("alice");
	add_user("bob");
}

/* ---- parser: whole vs pieces ----------------------------------------------------- */

struct tr {
	uint8_t *p;
	size_t len, cap;
};

static void tr_put(struct tr *t, const void *p, size_t n)
{
	if (t->len + n > t->cap) {
		size_t nc = (t->len + n) * 2 + 64;
		uint8_t *np = realloc(t->p, nc);

		if (np == NULL)
			abort();
		t->p = np;
		t->cap = nc;
	}
	if (n)
		memcpy(t->p + t->len, p, n);
	t->len += n;
}

/* Appends one event: a tag byte, then for commands the verb and argument, for data
 * the bytes (consecutive data events merge: tag only when the previous was not data). */
static void tr_event(struct tr *t, struct lmtp_parser *p, const struct lmtp_event *ev,
    bool *in_data)
{
	uint8_t tag = (uint8_t)ev->type;

	if (ev->type == LMTP_EV_DATA) {
		if (!*in_data)
			tr_put(t, &tag, 1);
		*in_data = true;
		tr_put(t, ev->data, ev->len);
		return;
	}
	*in_data = false;
	tr_put(t, "\n", 1);
	tr_put(t, &tag, 1);
	if (ev->type == LMTP_EV_CMD) {
		uint8_t v = (uint8_t)ev->verb;

		tr_put(t, &v, 1);
		tr_put(t, ev->arg, strlen(ev->arg) + 1);
		tr_put(t, &ev->bdat_size, sizeof(ev->bdat_size));
		tr_put(t, &ev->bdat_last, 1);
		if (ev->verb == LMTP_V_DATA)
			lmtp_parser_begin_data(p);
		if (ev->arg[0] != '\0' && (ev->arg[0] == ' ' || ev->arg[0] == '\t'))
			abort();	/* leading blanks are trimmed */
	}
}

static uint32_t next_rand(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void parse_all(const uint8_t *d, size_t n, uint32_t seed, struct tr *t)
{
	struct lmtp_parser *p = malloc(sizeof(*p));
	bool in_data = false;
	size_t i = 0;

	if (p == NULL)
		abort();
	lmtp_parser_init(p);
	while (i < n) {
		size_t len = seed ? 1 + next_rand(&seed) % 64 : n - i, off = 0, used;
		struct lmtp_event ev;

		if (len > n - i)
			len = n - i;
		for (;;) {
			int r = lmtp_parser_feed(p, d + i + off, len - off, &used, &ev);

			if (used > len - off)
				abort();
			off += used;
			if (r == 0) {
				if (off != len)
					abort();
				break;
			}
			if (ev.type == LMTP_EV_DATA && (ev.len == 0 || ev.data == NULL))
				abort();
			tr_event(t, p, &ev, &in_data);
		}
		i += len;
	}
	free(p);
}

/* ---- the conversation ------------------------------------------------------------- */

static void check_output(struct lmtp_session *s)
{
	const uint8_t *o;
	size_t n;

	lmtp_session_output(s, &o, &n);
	/* Replies: "ddd[ -]...\r\n" lines. */
	for (size_t i = 0; i < n;) {
		const uint8_t *nl = memchr(o + i, '\n', n - i);

		if (nl == NULL || nl == o + i || nl[-1] != '\r' || (size_t)(nl - (o + i)) < 4)
			abort();
		if (o[i] < '2' || o[i] > '5' || (o[i + 3] != ' ' && o[i + 3] != '-'))
			abort();
		i = (size_t)(nl - o) + 1;
	}
	lmtp_session_output_done(s, n);
}

/* The commit path of a real connection minus the socket: each delivery exported
 * (ciphertext fd + wire metadata), then imported and committed as one group by the
 * committer's own code (lmtp_commit_batch). Oracles: every delivery the session
 * finished is stored (the two users never go away; only a full store may refuse),
 * every fd is taken, and a stored delivery has a UID. */
static void commit_handoff(void *arg, struct vault_delivery **ds, size_t n, uint32_t *uids,
    int *errs)
{
	struct lmtp_commit_req req[LMTP_MAX_RCPTS];
	size_t k = 0;

	(void)arg;
	if (n > LMTP_MAX_RCPTS)
		abort();
	for (size_t i = 0; i < n; i++) {
		memset(&req[k], 0, sizeof(req[k]));
		if ((errs[i] = vault_delivery_export(&ds[i], req[k].wire, sizeof(req[k].wire),
		    &req[k].fd)) < 0) {
			req[k].err = errs[i];
			continue;
		}
		req[k].conn = i;
		k++;
	}
	lmtp_commit_batch(V, req, k);
	for (size_t j = 0; j < k; j++) {
		errs[req[j].conn] = req[j].err;
		uids[req[j].conn] = req[j].uid;
		if (req[j].err != 0 && req[j].err != VAULT_ERR_FULL)
			abort();	/* the fuzz vault holds two users that never go away */
		if (req[j].fd != -1 || (req[j].err == 0 && req[j].uid == 0))
			abort();	/* the batch took every fd */
	}
}

static void converse(const uint8_t *d, size_t n, uint32_t seed)
{
	struct lmtp_session *s = NULL;
	size_t i = 0;
	int r = 0;

	if (lmtp_session_new(V, &Cfg, "[192.0.2.1]", &s) != 0)
		abort();
	/* Even inputs: the committer's path; odd ones: the in-process group commit. */
	if ((seed & 1) == 0)
		lmtp_session_set_commit(s, commit_handoff, NULL);
	check_output(s);
	while (i < n && r == 0) {
		size_t len = 1 + next_rand(&seed) % 64, off = 0, used;

		if (len > n - i)
			len = n - i;
		unsigned stalled = 0;

		while (off < len && r == 0) {
			r = lmtp_session_input(s, d + i + off, len - off, &used);
			if (r < 0 || used > len - off)
				abort();
			/* No progress twice in a row (with the output drained) is a hang. */
			if (r == 0 && used == 0 && ++stalled > 1)
				abort();
			if (used > 0)
				stalled = 0;
			off += used;
			check_output(s);
		}
		i += len;
	}
	if (r == 0)
		lmtp_session_eof(s);
	lmtp_session_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tr whole = { 0 }, split = { 0 };
	uint32_t seed;

	if (size < 1)
		return 0;
	setup();
	seed = 0x9e3779b9u ^ data[0];
	data++;
	size--;
	parse_all(data, size, 0, &whole);
	parse_all(data, size, seed, &split);
	if (whole.len != split.len || (whole.len && memcmp(whole.p, split.p, whole.len) != 0))
		abort();
	free(whole.p);
	free(split.p);
	converse(data, size, seed);
	return 0;
}
