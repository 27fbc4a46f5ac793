/* sealmail-keymgr: the command line. Each command reads like a short script: parse,
 * open the store, read secrets from the passphrase source (never argv), call the
 * vault, report. Secrets stay in struct secret (sodium_malloc) and are freed (wiped)
 * on every path. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "keymgr.h"
#include "cli-util.h"
#include "vault.h"
#include "compat.h"

#define MAX_ARGS 4

/* Option bits: each command lists the ones it accepts. */
enum {
	O_PASSFD = 1 << 0, O_SOFT = 1 << 1, O_YK = 1 << 2, O_LABEL = 1 << 3,
	O_YES = 1 << 4, O_ALL = 1 << 5, O_FORCE = 1 << 6, O_ONCE = 1 << 7,
};
#define O_TOKEN (O_SOFT | O_YK | O_LABEL)

struct ctx {
	const char *config;
	int pass_fd;
	const char *soft_token;
	const char *yk_aes, *yk_uid, *yk_id;
	const char *label;
	bool yes, all, force, once;
	int nargs;
	char *args[MAX_ARGS];
	const struct command *cmd;
};

struct command {
	const char *group;	/* "user", "token" or NULL */
	const char *name;
	int min_args, max_args;
	unsigned opts;
	int (*run)(struct ctx *c);
	const char *synopsis;
	const char *help;
};

#define TOKEN_SPEC_HELP \
	"Token (exactly one):\n" \
	"  --soft-token FILE      generate a software token (random AES key, private id and\n" \
	"                         public id) and write it to FILE (mode 0600; an existing\n" \
	"                         file is never overwritten). `token otp FILE` prints OTPs.\n" \
	"  --yubikey-aes HEX --yubikey-uid HEX --yubikey-id MODHEX\n" \
	"                         a real YubiKey slot programmed for Yubico OTP: its AES key\n" \
	"                         (32 hex digits), private id (12 hex digits) and public id\n" \
	"                         (12 modhex characters, the first 12 of every OTP).\n" \
	"  --label TEXT           a name for the token in listings (up to 31 bytes).\n"

#define PASSFD_HELP \
	"  --passphrase-fd N      read the secret lines from file descriptor N instead of\n" \
	"                         prompting on the terminal. Passphrases are never taken from\n" \
	"                         the command line.\n"

#define POLICY_HELP \
	"Passphrase policy: at least 12 characters, not a common password (nor one with\n" \
	"digits or symbols around it), not a repeated string or a keyboard/alphabet run.\n"

/* ---- Helpers ----------------------------------------------------------------------- */

static int check_name(const char *name)
{
	size_t n = strlen(name), i;

	if (n == 0 || n >= sizeof(((struct vault_user_info *)0)->name)) {
		cli_err("bad user name: must be 1 to 127 bytes");
		return -EINVAL;
	}
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];

		/* The vault's rule: names appear quoted in IMAP and in logs. */
		if (ch <= 0x20 || ch == 0x7f || ch == '"' || ch == '\\') {
			cli_err("bad user name: no spaces, control characters, '\"' or '\\'");
			return -EINVAL;
		}
	}
	return 0;
}

/* 0 and *info filled; prints "no such user" on VAULT_ERR_NOUSER unless quiet. */
static int get_user_q(struct vault *v, const char *name, struct vault_user_info *info,
    bool quiet)
{
	struct vault_txn *t = NULL;
	int r;

	if ((r = vault_txn_begin(v, false, &t)) < 0) {
		cli_err("cannot read the store: %s", cli_strerror(r));
		return r;
	}
	r = vault_user_get(t, name, info);
	vault_txn_abort(&t);
	if (r == VAULT_ERR_NOUSER) {
		if (!quiet)
			cli_err("no such user: %s", name);
	} else if (r < 0) {
		cli_err("cannot read user %s: %s", name, cli_strerror(r));
	}
	return r;
}

static int get_user(struct vault *v, const char *name, struct vault_user_info *info)
{
	return get_user_q(v, name, info, false);
}

static bool file_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* Holds what a token spec turned into, so it can be freed / undone in one place. */
struct token_build {
	struct vault_token_secret tok;
	struct keymgr_softtoken soft;
	bool is_soft;
	bool file_written;
	const char *path;
};

static void token_build_clear(struct token_build *b, bool undo_file)
{
	if (undo_file && b->file_written)
		unlink(b->path);
	if (b->is_soft) {
		keymgr_softtoken_clear(&b->soft);
	} else {
		secret_free(&b->tok.aes_key);
		secret_free(&b->tok.uid);
	}
	memset(&b->tok, 0, sizeof(b->tok));
	b->file_written = false;
}

/* Usage-level check of the token options (no I/O). */
static int token_spec_usage(const struct ctx *c)
{
	int nyk = (c->yk_aes != NULL) + (c->yk_uid != NULL) + (c->yk_id != NULL);

	if (c->soft_token != NULL && nyk > 0) {
		cli_err("give either --soft-token or the --yubikey-* options, not both");
		return -EINVAL;
	}
	if (c->soft_token == NULL && nyk == 0) {
		cli_err("a token is required: --soft-token FILE or --yubikey-aes HEX "
		    "--yubikey-uid HEX --yubikey-id MODHEX");
		return -EINVAL;
	}
	if (nyk > 0 && nyk < 3) {
		cli_err("a YubiKey needs all three of --yubikey-aes, --yubikey-uid and "
		    "--yubikey-id");
		return -EINVAL;
	}
	if (c->label != NULL && strlen(c->label) >= sizeof(((struct vault_token_secret *)0)->label)) {
		cli_err("--label: at most 31 bytes");
		return -EINVAL;
	}
	return 0;
}

/* Checks done before any passphrase is asked for, so a doomed command fails fast. */
static int token_spec_precheck(const struct ctx *c)
{
	if (c->soft_token != NULL && file_exists(c->soft_token)) {
		cli_err("token file %s already exists: refusing to overwrite it", c->soft_token);
		return -EEXIST;
	}
	return 0;
}

static int decode_hex_secret(const char *opt, const char *s, size_t bytes,
    struct secret **out)
{
	int r;

	if (strlen(s) != 2 * bytes) {
		cli_err("%s: expected %zu hex digits", opt, 2 * bytes);
		return -EINVAL;
	}
	if ((r = secret_new(bytes, out)) < 0) {
		cli_err("out of secure memory");
		return r;
	}
	if (crypto_hex_decode(s, 2 * bytes, (*out)->p, bytes) < 0) {
		cli_err("%s: not a hex string", opt);
		secret_free(out);
		return -EINVAL;
	}
	return 0;
}

/* Builds the token (writing the software token file if one was asked for). */
static int token_build(const struct ctx *c, const char *user, struct token_build *b)
{
	int r;

	memset(b, 0, sizeof(*b));
	if (c->soft_token != NULL) {
		b->is_soft = true;
		b->path = c->soft_token;
		if ((r = keymgr_softtoken_generate(user, &b->soft)) < 0) {
			cli_err("cannot generate a software token: %s", cli_strerror(r));
			return r;
		}
		if ((r = keymgr_softtoken_create_file(c->soft_token, &b->soft)) < 0) {
			if (r == -EEXIST)
				cli_err("token file %s already exists: refusing to overwrite it",
				    c->soft_token);
			else
				cli_err("cannot write token file %s: %s", c->soft_token,
				    cli_strerror(r));
			token_build_clear(b, false);
			return r;
		}
		b->file_written = true;
		b->tok.aes_key = b->soft.aes_key;
		b->tok.uid = b->soft.uid;
		memcpy(b->tok.public_id, b->soft.public_id, sizeof(b->tok.public_id));
		snprintf(b->tok.label, sizeof(b->tok.label), "%s",
		    c->label != NULL ? c->label : "software token");
		return 0;
	}
	if ((r = decode_hex_secret("--yubikey-aes", c->yk_aes, CRYPTO_OTP_AES_BYTES,
	    &b->tok.aes_key)) < 0 ||
	    (r = decode_hex_secret("--yubikey-uid", c->yk_uid, CRYPTO_OTP_UID_BYTES,
	    &b->tok.uid)) < 0) {
		token_build_clear(b, false);
		return r;
	}
	if (strlen(c->yk_id) != 2 * CRYPTO_OTP_PUBID_BYTES ||
	    crypto_modhex_decode(c->yk_id, strlen(c->yk_id), b->tok.public_id,
	    sizeof(b->tok.public_id)) < 0) {
		cli_err("--yubikey-id: expected %d modhex characters (cbdefghijklnrtuv)",
		    2 * CRYPTO_OTP_PUBID_BYTES);
		token_build_clear(b, false);
		return -EINVAL;
	}
	snprintf(b->tok.label, sizeof(b->tok.label), "%s",
	    c->label != NULL ? c->label : "YubiKey");
	return 0;
}

static int read_new_passphrase(struct cli_pass_src *src, const char *prompt,
    struct secret **out)
{
	char why[256];
	int r;

	if ((r = cli_pass_read_new(src, prompt, "passphrase", out)) < 0)
		return r;
	if ((r = keymgr_passphrase_check((*out)->p, (*out)->len, why, sizeof(why))) < 0) {
		cli_err("passphrase rejected: %s", why);
		secret_free(out);
	}
	return r;
}

static const char *token_add_error(int r)
{
	if (r == -EEXIST)
		return "a token with this public id is already enrolled";
	if (r == -E2BIG)
		return "the user already has 8 tokens (remove one first)";
	return cli_strerror(r);
}

static void print_pubid(const uint8_t id[CRYPTO_OTP_PUBID_BYTES], char *buf, size_t len)
{
	if (crypto_modhex_encode(id, CRYPTO_OTP_PUBID_BYTES, buf, len) < 0)
		snprintf(buf, len, "?");
}

/* Index of the token with this public id in info, or -1. */
static int find_token(const struct vault_user_info *info, const uint8_t *pub)
{
	size_t i;

	for (i = 0; i < info->ntokens; i++)
		if (memcmp(info->tokens[i].public_id, pub, CRYPTO_OTP_PUBID_BYTES) == 0)
			return info->tokens[i].index;
	return -1;
}

/* ---- user add ---------------------------------------------------------------------- */

/* The only secret keymgr prints: once, on stdout, at user add / recover / recovery-key. */
static void print_recovery_key(const char *name, const char *key)
{
	printf("\n"
	    "RECOVERY KEY for %s. Write this down now and store it offline. It is shown\n"
	    "only this once and cannot be recovered; with it, and only with it, %s can\n"
	    "regain access after losing the passphrase or every token:\n"
	    "\n"
	    "    %s\n"
	    "\n", name, name, key);
	fflush(stdout);
}

/* A new recovery key for the unlocked keys k; the old one stops working. */
static int new_recovery_key(struct vault *v, const struct vault_keys *k, const char *name)
{
	struct secret *rec = NULL;
	int r;

	if ((r = secret_new(256, &rec)) < 0) {
		cli_err("out of secure memory");
		return r;
	}
	if ((r = vault_recovery_replace(v, k, (char *)rec->p, rec->len - 1)) < 0)
		cli_err("cannot replace the recovery key of %s: %s", name, cli_strerror(r));
	else
		print_recovery_key(name, (const char *)rec->p);
	secret_free(&rec);
	return r;
}

static int cmd_user_add(struct ctx *c)
{
	const char *name = c->args[0];
	struct vault_config cfg;
	struct vault *v = NULL;
	struct vault_user_info info;
	struct cli_pass_src src = { -1, false };
	struct secret *pass = NULL, *rec = NULL;
	struct token_build tb;
	char pub[2 * CRYPTO_OTP_PUBID_BYTES + 1];
	int r, ret = CLI_EXIT_ERR;

	memset(&tb, 0, sizeof(tb));
	if (check_name(name) < 0 || token_spec_usage(c) < 0)
		return CLI_EXIT_USAGE;
	if (cli_open_store(c->config, &cfg, &v) < 0)
		goto out;
	r = get_user_q(v, name, &info, true);
	if (r == 0) {
		cli_err("user %s already exists", name);
		goto out;
	}
	if (r != VAULT_ERR_NOUSER)
		goto out;
	if (token_spec_precheck(c) < 0 || cli_pass_open(c->pass_fd, &src) < 0)
		goto out;
	if (read_new_passphrase(&src, "New passphrase: ", &pass) < 0)
		goto out;
	if (token_build(c, name, &tb) < 0)
		goto out;
	if ((r = secret_new(256, &rec)) < 0) {
		cli_err("out of secure memory");
		goto out;
	}
	r = vault_user_create(v, name, pass->p, pass->len, &tb.tok, time(NULL),
	    (char *)rec->p, rec->len - 1);
	if (r < 0) {
		cli_err("cannot create user %s: %s", name, cli_strerror(r));
		token_build_clear(&tb, true);
		goto out;
	}
	print_pubid(tb.tok.public_id, pub, sizeof(pub));
	printf("User %s created with token %s (public id %s).\n", name, tb.tok.label, pub);
	if (tb.is_soft)
		printf("Software token written to %s: it is a second factor, keep it secret.\n",
		    tb.path);
	print_recovery_key(name, (const char *)rec->p);
	ret = CLI_EXIT_OK;
out:
	token_build_clear(&tb, false);
	secret_free(&pass);
	secret_free(&rec);
	if (src.tty)
		close(src.fd);
	vault_close(&v);
	return ret;
}

/* ---- user list / status ------------------------------------------------------------ */

static int list_cb(const struct vault_user_info *u, void *arg)
{
	time_t now = *(const time_t *)arg;
	char created[64], age[64];

	cli_fmt_time(u->created, created, sizeof(created));
	cli_fmt_age((int64_t)(now - u->epoch_created), age, sizeof(age));
	printf("%-24s %-21s %6zu %6" PRIu32 " %12s %9" PRIu64 "\n", u->name, created,
	    u->ntokens, u->current_epoch, age, u->messages);
	return 0;
}

static int cmd_user_list(struct ctx *c)
{
	struct vault_config cfg;
	struct vault *v = NULL;
	struct vault_txn *t = NULL;
	time_t now = time(NULL);
	int r, ret = CLI_EXIT_ERR;

	if (cli_open_store(c->config, &cfg, &v) < 0)
		goto out;
	if ((r = vault_txn_begin(v, false, &t)) < 0) {
		cli_err("cannot read the store: %s", cli_strerror(r));
		goto out;
	}
	printf("%-24s %-21s %6s %6s %12s %9s\n", "USER", "CREATED", "TOKENS", "EPOCH",
	    "EPOCH-AGE", "MESSAGES");
	if ((r = vault_user_foreach(t, list_cb, &now)) < 0) {
		cli_err("cannot list users: %s", cli_strerror(r));
		goto out;
	}
	ret = CLI_EXIT_OK;
out:
	vault_txn_abort(&t);
	vault_close(&v);
	return ret;
}

struct status_arg {
	const struct vault_config *cfg;
	struct vault_txn *t;
	time_t now;
	int n;
};

/* "1-3, 5, 7-9" for the epochs below cur that have no record (retired). */
static void retired_ranges(const struct vault_epoch_info *ep, size_t n, uint32_t cur,
    char *out, size_t cap)
{
	size_t o = 0, j = 0;
	uint32_t e = 1;

	out[0] = '\0';
	while (e < cur && o + 32 < cap) {
		uint32_t a;

		while (j < n && ep[j].epoch < e)
			j++;
		if (j < n && ep[j].epoch == e) {
			e++;
			continue;
		}
		a = e;
		while (e + 1 < cur && !(j < n && ep[j].epoch == e + 1))
			e++;
		o += (size_t)snprintf(out + o, cap - o, "%s%" PRIu32, o ? ", " : "", a);
		if (e > a)
			o += (size_t)snprintf(out + o, cap - o, "-%" PRIu32, e);
		e++;
	}
	if (e < cur && o + 4 < cap)
		snprintf(out + o, cap - o, "...");
}

static int status_cb(const struct vault_user_info *u, void *arg)
{
	struct status_arg *a = arg;
	char t1[64], t2[64], pub[2 * CRYPTO_OTP_PUBID_BYTES + 1];
	time_t next = u->epoch_created + (time_t)a->cfg->rotation_period;
	size_t i;

	if (a->n++ > 0)
		printf("\n");
	printf("user %s (id %" PRIu32 ")\n", u->name, u->id);
	cli_fmt_time(u->created, t1, sizeof(t1));
	printf("  created:          %s\n", t1);
	printf("  argon2id:         %" PRIu32 " KiB, %" PRIu32 " passes", u->pwhash.mem_kib,
	    u->pwhash.passes);
	/* vault_login_derive raises them at the next full login (never lowers). */
	if (u->pwhash.mem_kib < a->cfg->argon2_memory || u->pwhash.passes < a->cfg->argon2_passes)
		printf(" (below the configured %" PRIu32 " KiB, %" PRIu32 " passes: raised at "
		    "the next passphrase + OTP login)", a->cfg->argon2_memory,
		    a->cfg->argon2_passes);
	printf("\n");
	printf("  tokens:           %zu\n", u->ntokens);
	for (i = 0; i < u->ntokens && i < sizeof(u->tokens) / sizeof(u->tokens[0]); i++) {
		const struct vault_token_info *tk = &u->tokens[i];

		print_pubid(tk->public_id, pub, sizeof(pub));
		cli_fmt_time(tk->added, t1, sizeof(t1));
		printf("    [%u] %s  \"%.*s\"  added %s  last counter %u/%u\n",
		    (unsigned)tk->index, pub, (int)strnlen(tk->label, sizeof(tk->label)),
		    tk->label, t1, (unsigned)tk->session_ctr, (unsigned)tk->use_ctr);
	}
	cli_fmt_time(u->epoch_created, t1, sizeof(t1));
	cli_fmt_age((int64_t)(a->now - u->epoch_created), t2, sizeof(t2));
	printf("  current epoch:    %" PRIu32 " (created %s, %s ago)\n", u->current_epoch,
	    t1, t2);
	cli_fmt_time(next, t1, sizeof(t1));
	if (next > a->now) {
		cli_fmt_age((int64_t)(next - a->now), t2, sizeof(t2));
		printf("  next rotation:    %s (in %s)\n", t1, t2);
	} else {
		cli_fmt_age((int64_t)(a->now - next), t2, sizeof(t2));
		printf("  next rotation:    %s (due: overdue by %s)\n", t1, t2);
	}
	{
		struct vault_epoch_info ep[64];
		size_t n = 0, nretired;
		uint64_t waiting = 0;
		char ranges[512];
		int r;

		/* Exact: counts the clear epoch numbers of the user's message records. */
		if ((r = vault_user_epochs(a->t, u->id, true, ep, 64, &n)) < 0) {
			cli_err("cannot read the epochs of %s: %s", u->name, cli_strerror(r));
			return r;
		}
		printf("  live epochs:      %zu\n", n);
		for (i = 0; i < n && i < 64; i++) {
			cli_fmt_time(ep[i].created, t1, sizeof(t1));
			printf("    epoch %" PRIu32 ": created %s, %" PRIu64 " message(s)%s\n",
			    ep[i].epoch, t1, ep[i].messages,
			    ep[i].epoch == u->current_epoch ? " (current)" : "");
			if (ep[i].epoch < u->current_epoch)
				waiting += ep[i].messages;
		}
		nretired = u->current_epoch - 1 - (n > 0 ? n - 1 : 0);
		retired_ranges(ep, n < 64 ? n : 64, u->current_epoch, ranges, sizeof(ranges));
		if (nretired == 0)
			printf("  retired epochs:   none\n");
		else
			printf("  retired epochs:   %zu (%s): secrets destroyed\n", nretired, ranges);
		printf("  messages:         %" PRIu64 " (%" PRIu64 " bytes stored, padded "
		    "ciphertext)\n", u->messages, u->stored_bytes);
		printf("  pending re-wrap:  %" PRIu64 " messages under an older epoch (re-wrapped "
		    "in the user's next session)\n", waiting);
	}
	return 0;
}

static int cmd_status(struct ctx *c)
{
	struct vault_config cfg;
	struct vault *v = NULL;
	struct vault_txn *t = NULL;
	struct vault_user_info info;
	struct status_arg a;
	int r, ret = CLI_EXIT_ERR;

	if (cli_open_store(c->config, &cfg, &v) < 0)
		goto out;
	a.cfg = &cfg;
	a.now = keymgr_now();
	a.n = 0;
	if ((r = vault_txn_begin(v, false, &t)) < 0) {
		cli_err("cannot read the store: %s", cli_strerror(r));
		goto out;
	}
	a.t = t;
	if (c->nargs == 1) {
		if ((r = vault_user_get(t, c->args[0], &info)) < 0) {
			if (r == VAULT_ERR_NOUSER)
				cli_err("no such user: %s", c->args[0]);
			else
				cli_err("cannot read user %s: %s", c->args[0], cli_strerror(r));
			goto out;
		}
		if (status_cb(&info, &a) == 0)
			ret = CLI_EXIT_OK;
		goto out;
	}
	if ((r = vault_user_foreach(t, status_cb, &a)) < 0) {
		cli_err("cannot list users: %s", cli_strerror(r));
		goto out;
	}
	if (a.n == 0)
		printf("no users\n");
	ret = CLI_EXIT_OK;
out:
	vault_txn_abort(&t);
	vault_close(&v);
	return ret;
}

/* ---- user remove ------------------------------------------------------------------- */

static int cmd_user_remove(struct ctx *c)
{
	const char *name = c->args[0];
	struct vault_config cfg;
	struct vault *v = NULL;
	struct vault_user_info info;
	char q[512];
	int r, ret = CLI_EXIT_ERR;

	if (cli_open_store(c->config, &cfg, &v) < 0)
		goto out;
	if (get_user(v, name, &info) < 0)
		goto out;
	if (!c->yes) {
		snprintf(q, sizeof(q), "Remove user %s and crypto-shred all %" PRIu64
		    " of their messages? This cannot be undone.", name, info.messages);
		r = cli_confirm(q);
		if (r == -ENOTTY) {
			cli_err("refusing to remove %s without confirmation: run it on a terminal "
			    "or pass --yes", name);
			ret = CLI_EXIT_USAGE;
			goto out;
		}
		if (r <= 0) {
			cli_err("not removed");
			goto out;
		}
	}
	if ((r = vault_user_remove(v, name)) < 0) {
		cli_err("cannot remove user %s: %s", name, cli_strerror(r));
		goto out;
	}
	printf("User %s removed: keys crypto-shredded, data deleted.\n", name);
	ret = CLI_EXIT_OK;
out:
	vault_close(&v);
	return ret;
}

/* ---- token add / remove ------------------------------------------------------------- */

/* Opens the store, checks the user, reads "passphrase || OTP" and unlocks. */
/* keep_pass: also give the keys the stretched passphrase P (one more Argon2id), which
 * enrolling a token needs: K_t = A(P || uid_t) and the token's AES key wrap. */
static int open_and_unlock(struct ctx *c, const char *name, struct vault_config *cfg,
    struct vault **v, struct cli_pass_src *src, struct vault_keys **keys,
    bool (*precheck)(struct ctx *c), bool keep_pass)
{
	struct vault_user_info info;
	struct secret *line = NULL;
	char prompt[256];
	size_t plen = 0;
	int r;

	if ((r = cli_open_store(c->config, cfg, v)) < 0)
		return r;
	if ((r = get_user(*v, name, &info)) < 0)
		return r;
	if (precheck != NULL && !precheck(c))
		return -EINVAL;
	if ((r = cli_pass_open(c->pass_fd, src)) < 0)
		return r;
	snprintf(prompt, sizeof(prompt), "Passphrase of %s followed by an OTP (touch the key): ",
	    name);
	if ((r = cli_pass_read(src, prompt, "passphrase", &line)) < 0)
		return r;
	r = cli_login_unlock(*v, name, line, keys);
	if (r == 0 && keep_pass) {
		/* cli_login_unlock checked that the line ends with an OTP. */
		if (crypto_otp_split((const char *)line->p, line->len, &plen) < 0)
			plen = line->len;
		if ((r = vault_keys_set_passphrase(*v, *keys, line->p, plen)) < 0)
			cli_err("cannot stretch the passphrase of %s: %s", name, cli_strerror(r));
	}
	secret_free(&line);
	return r;
}

static bool token_precheck(struct ctx *c)
{
	return token_spec_precheck(c) == 0;
}

static int cmd_token_add(struct ctx *c)
{
	const char *name = c->args[0];
	struct vault_config cfg;
	struct vault *v = NULL;
	struct vault_keys *keys = NULL;
	struct vault_user_info info;
	struct cli_pass_src src = { -1, false };
	struct token_build tb;
	char pub[2 * CRYPTO_OTP_PUBID_BYTES + 1];
	int r, idx, ret = CLI_EXIT_ERR;

	memset(&tb, 0, sizeof(tb));
	if (token_spec_usage(c) < 0)
		return CLI_EXIT_USAGE;
	if (open_and_unlock(c, name, &cfg, &v, &src, &keys, token_precheck, true) < 0)
		goto out;
	if (token_build(c, name, &tb) < 0)
		goto out;
	if ((r = vault_token_add(v, keys, &tb.tok)) < 0) {
		cli_err("cannot add the token to %s: %s", name, token_add_error(r));
		token_build_clear(&tb, true);
		goto out;
	}
	print_pubid(tb.tok.public_id, pub, sizeof(pub));
	idx = get_user(v, name, &info) == 0 ? find_token(&info, tb.tok.public_id) : -1;
	if (idx >= 0)
		printf("Token %d (%s, public id %s) added to %s.\n", idx, tb.tok.label, pub, name);
	else
		printf("Token (%s, public id %s) added to %s.\n", tb.tok.label, pub, name);
	if (tb.is_soft)
		printf("Software token written to %s: keep it secret.\n", tb.path);
	ret = CLI_EXIT_OK;
out:
	token_build_clear(&tb, false);
	vault_keys_free(&keys);
	if (src.tty)
		close(src.fd);
	vault_close(&v);
	return ret;
}

static int cmd_token_remove(struct ctx *c)
{
	const char *name = c->args[0];
	struct vault_user_info info;
	struct vault_config cfg;
	struct vault *v = NULL;
	struct vault_keys *keys = NULL;
	struct cli_pass_src src = { -1, false };
	uint32_t index;
	int r, ret = CLI_EXIT_ERR;

	if (cli_parse_u32(c->args[1], 255, &index) < 0) {
		cli_err("INDEX must be a token number (see `status %s`)", name);
		return CLI_EXIT_USAGE;
	}
	if (open_and_unlock(c, name, &cfg, &v, &src, &keys, NULL, false) < 0)
		goto out;
	/* Removing the last token would leave only the recovery key: that is what
	 * `recover` is for, with a new token in the same step. */
	if (get_user(v, name, &info) < 0)
		goto out;
	if (info.ntokens == 1 && info.tokens[0].index == index) {
		cli_err("token %" PRIu32 " is %s's last token: enrol another one first (token "
		    "add), or use recover to replace it", index, name);
		goto out;
	}
	if ((r = vault_token_remove(v, keys, (uint8_t)index)) < 0) {
		if (r == VAULT_ERR_TOKEN || r == -ENOENT)
			cli_err("%s has no token %" PRIu32 " (see `status %s`)", name, index, name);
		else
			cli_err("cannot remove token %" PRIu32 " of %s: %s", index, name,
			    cli_strerror(r));
		goto out;
	}
	printf("Token %" PRIu32 " removed from %s.\n", index, name);
	ret = CLI_EXIT_OK;
out:
	vault_keys_free(&keys);
	if (src.tty)
		close(src.fd);
	vault_close(&v);
	return ret;
}

static int cmd_token_otp(struct ctx *c)
{
	char otp[CRYPTO_OTP_CHARS + 1], err[512] = "";
	int r;

	if ((r = crypto_init()) < 0) {
		cli_err("cannot initialise the crypto library: %s", cli_strerror(r));
		return CLI_EXIT_ERR;
	}
	if ((r = keymgr_softtoken_next_otp(c->args[0], otp, err, sizeof(err))) < 0) {
		cli_err("%s", err);
		return CLI_EXIT_ERR;
	}
	printf("%s\n", otp);
	fflush(stdout);
	crypto_wipe(otp, sizeof(otp));
	return CLI_EXIT_OK;
}

/* ---- passwd / recover --------------------------------------------------------------- */

/* passwd (new_rec false) and recovery-key (true): unlock with passphrase || OTP, then
 * a new passphrase or a new recovery key. */
static int unlocked_change(struct ctx *c, bool new_rec)
{
	const char *name = c->args[0];
	struct vault_config cfg;
	struct vault *v = NULL;
	struct vault_keys *keys = NULL;
	struct cli_pass_src src = { -1, false };
	struct secret *newpass = NULL;
	int r, ret = CLI_EXIT_ERR;

	if (open_and_unlock(c, name, &cfg, &v, &src, &keys, NULL, false) < 0)
		goto out;
	if (new_rec) {
		if (new_recovery_key(v, keys, name) < 0)
			goto out;
		printf("The old recovery key of %s no longer works.\n", name);
		ret = CLI_EXIT_OK;
		goto out;
	}
	if (read_new_passphrase(&src, "New passphrase: ", &newpass) < 0)
		goto out;
	if ((r = vault_passwd(v, keys, newpass->p, newpass->len)) < 0) {
		cli_err("cannot change the passphrase of %s: %s", name, cli_strerror(r));
		goto out;
	}
	printf("Passphrase of %s changed (keys re-wrapped; mail untouched).\n", name);
	ret = CLI_EXIT_OK;
out:
	secret_free(&newpass);
	vault_keys_free(&keys);
	if (src.tty)
		close(src.fd);
	vault_close(&v);
	return ret;
}

static int cmd_passwd(struct ctx *c)
{
	return unlocked_change(c, false);
}

static int cmd_recovery_key(struct ctx *c)
{
	return unlocked_change(c, true);
}

static int cmd_recover(struct ctx *c)
{
	const char *name = c->args[0];
	struct vault_config cfg;
	struct vault *v = NULL;
	struct vault_keys *keys = NULL;
	struct vault_user_info before, after;
	struct cli_pass_src src = { -1, false };
	struct secret *rec = NULL, *newpass = NULL;
	struct token_build tb;
	char pub[2 * CRYPTO_OTP_PUBID_BYTES + 1];
	size_t i;
	int r, idx, ret = CLI_EXIT_ERR;

	memset(&tb, 0, sizeof(tb));
	if (token_spec_usage(c) < 0)
		return CLI_EXIT_USAGE;
	if (cli_open_store(c->config, &cfg, &v) < 0 || get_user(v, name, &before) < 0)
		goto out;
	if (token_spec_precheck(c) < 0 || cli_pass_open(c->pass_fd, &src) < 0)
		goto out;
	if (cli_pass_read(&src, "Recovery key: ", "recovery key", &rec) < 0)
		goto out;
	/* cli_pass_read NUL-terminates (not counted in len). */
	if ((r = vault_unlock_recovery(v, name, (const char *)rec->p, &keys)) < 0) {
		if (r == VAULT_ERR_AUTH || r == -EBADMSG || r == VAULT_ERR_TAMPER ||
		    r == -EPROTO || r == -EINVAL)
			cli_err("recovery failed for %s: wrong recovery key", name);
		else
			cli_err("recovery failed for %s: %s", name, cli_strerror(r));
		goto out;
	}
	secret_free(&rec);
	if (read_new_passphrase(&src, "New passphrase: ", &newpass) < 0)
		goto out;
	if ((r = vault_passwd(v, keys, newpass->p, newpass->len)) < 0) {
		cli_err("cannot set the new passphrase of %s: %s", name, cli_strerror(r));
		goto out;
	}
	/* The old tokens go first: a recovery means they are lost or not trusted, and the
	 * new token may be one of them re-enrolled (same public id, e.g. the passphrase was
	 * forgotten but the YubiKey is still there). Until the new token is in, the
	 * recovery key still opens the account, so nothing is lost if we stop halfway. */
	for (i = 0; i < before.ntokens; i++) {
		uint8_t ix = before.tokens[i].index;

		if ((r = vault_token_remove(v, keys, ix)) < 0 && r != VAULT_ERR_TOKEN) {
			cli_err("cannot remove old token %u of %s: %s", (unsigned)ix, name,
			    cli_strerror(r));
			goto out;
		}
	}
	if (token_build(c, name, &tb) < 0)
		goto out;
	if ((r = vault_token_add(v, keys, &tb.tok)) < 0) {
		cli_err("the passphrase of %s was changed and the old tokens removed, but the new "
		    "token could not be enrolled: %s (run recover again)", name,
		    token_add_error(r));
		token_build_clear(&tb, true);
		goto out;
	}
	print_pubid(tb.tok.public_id, pub, sizeof(pub));
	idx = get_user(v, name, &after) == 0 ? find_token(&after, tb.tok.public_id) : -1;
	printf("%s recovered: new passphrase set, %zu old token(s) removed, new token %d "
	    "(%s, public id %s) enrolled.\n", name, before.ntokens, idx, tb.tok.label, pub);
	if (tb.is_soft)
		printf("Software token written to %s: keep it secret.\n", tb.path);
	/* The recovery key was just typed in somewhere: replace it. If this fails, the
	 * recovery itself is done and the old key still works (say so; run
	 * `recovery-key NAME` later). */
	if (new_recovery_key(v, keys, name) < 0) {
		printf("The old recovery key stays valid.\n");
		goto out;
	}
	printf("The old recovery key no longer works.\n");
	ret = CLI_EXIT_OK;
out:
	token_build_clear(&tb, false);
	secret_free(&rec);
	secret_free(&newpass);
	vault_keys_free(&keys);
	if (src.tty)
		close(src.fd);
	vault_close(&v);
	return ret;
}


/* ---- rotate ------------------------------------------------------------------------- */

struct names {
	char (*v)[128];
	size_t n, cap;
};

static int collect_cb(const struct vault_user_info *u, void *arg)
{
	struct names *ns = arg;

	if (ns->n == ns->cap) {
		size_t ncap = ns->cap ? ns->cap * 2 : 64;
		char (*nv)[128] = realloc(ns->v, ncap * sizeof(*nv));

		if (nv == NULL)
			return -ENOMEM;
		ns->v = nv;
		ns->cap = ncap;
	}
	snprintf(ns->v[ns->n++], 128, "%s", u->name);
	return 0;
}

static int rotate_one(struct vault *v, const struct vault_config *cfg, const char *name,
    bool force)
{
	struct vault_user_info info;
	char t1[64];
	int r;

	time_t now = keymgr_now();

	r = vault_rotate(v, name, now, force);
	if (r < 0) {
		if (r == VAULT_ERR_NOUSER)
			cli_err("no such user: %s", name);
		else
			cli_err("cannot rotate the keys of %s: %s", name, cli_strerror(r));
		return r;
	}
	if (get_user(v, name, &info) < 0)
		return -EIO;
	if (r == 1) {
		cli_fmt_time(info.epoch_created + (time_t)cfg->rotation_period, t1, sizeof(t1));
		printf("%s: not due (epoch %" PRIu32 ", next rotation %s); use --force to rotate "
		    "now\n", name, info.current_epoch, t1);
	} else {
		printf("%s: rotated to epoch %" PRIu32 " (new mail is sealed to it; older data "
		    "keys are re-wrapped in the user's next session)\n", name, info.current_epoch);
		(void)keymgr_audit(cfg, now, "key_rotation", name, info.current_epoch, -1);
	}
	return 0;
}

/* ---- retire -------------------------------------------------------------------------- */

static int cmd_retire(struct ctx *c)
{
	const char *name = c->args[0];
	struct vault_config cfg;
	struct vault *v = NULL;
	struct vault_user_info info;
	uint64_t expunged = 0;
	uint32_t epoch;
	int r, ret = CLI_EXIT_ERR;

	if (cli_parse_u32(c->args[1], UINT32_MAX, &epoch) < 0 || epoch == 0) {
		cli_err("EPOCH must be a positive number: %s", c->args[1]);
		return CLI_EXIT_USAGE;
	}
	if (!c->force) {
		cli_err("retiring an epoch on purpose destroys its secret and EXPUNGES every "
		    "message still sealed only under it; this cannot be undone: add --force");
		return CLI_EXIT_USAGE;
	}
	if (cli_open_store(c->config, &cfg, &v) < 0 || get_user(v, name, &info) < 0)
		goto out;
	if (epoch == info.current_epoch) {
		cli_err("epoch %" PRIu32 " is %s's current epoch: rotate first (`rotate %s "
		    "--force`), then retire it", epoch, name, name);
		goto out;
	}
	if (epoch > info.current_epoch) {
		cli_err("%s has no epoch %" PRIu32 " (current is %" PRIu32 ")", name, epoch,
		    info.current_epoch);
		goto out;
	}
	fprintf(stderr, "sealmail-keymgr: WARNING: retiring epoch %" PRIu32 " of %s: every "
	    "message still sealed only under it is expunged, and its secret destroyed\n",
	    epoch, name);
	r = vault_epoch_retire(v, name, epoch, &expunged);
	if (r == -ENOENT) {
		cli_err("epoch %" PRIu32 " of %s is already retired", epoch, name);
		goto out;
	}
	if (r < 0) {
		cli_err("cannot retire epoch %" PRIu32 " of %s: %s (%" PRIu64 " message(s) were "
		    "expunged before the error; run the command again to finish)", epoch, name,
		    cli_strerror(r), expunged);
		goto out;
	}
	(void)keymgr_audit(&cfg, keymgr_now(), "key_retirement_forced", name, epoch,
	    (int64_t)expunged);
	printf("%s: epoch %" PRIu32 " retired: secret destroyed, %" PRIu64 " message(s) "
	    "expunged (IMAP sessions see them vanish)\n", name, epoch, expunged);
	ret = CLI_EXIT_OK;
out:
	vault_close(&v);
	return ret;
}

/* ---- daemon -------------------------------------------------------------------------- */

static int cmd_daemon(struct ctx *c)
{
	return keymgr_daemon(c->config, c->once);
}

static int cmd_rotate(struct ctx *c)
{
	struct vault_config cfg;
	struct vault *v = NULL;
	struct vault_txn *t = NULL;
	struct names ns = { NULL, 0, 0 };
	size_t i;
	int r, ret = CLI_EXIT_ERR, failed = 0;

	if ((c->nargs == 1) == c->all) {
		cli_err("rotate needs a user NAME or --all (not both)");
		return CLI_EXIT_USAGE;
	}
	if (cli_open_store(c->config, &cfg, &v) < 0)
		goto out;
	if (!c->all) {
		if (rotate_one(v, &cfg, c->args[0], c->force) == 0)
			ret = CLI_EXIT_OK;
		goto out;
	}
	if ((r = vault_txn_begin(v, false, &t)) < 0) {
		cli_err("cannot read the store: %s", cli_strerror(r));
		goto out;
	}
	r = vault_user_foreach(t, collect_cb, &ns);
	vault_txn_abort(&t);
	if (r < 0) {
		cli_err("cannot list users: %s", cli_strerror(r));
		goto out;
	}
	for (i = 0; i < ns.n; i++)
		if (rotate_one(v, &cfg, ns.v[i], c->force) < 0)
			failed++;
	if (failed > 0)
		cli_err("%d of %zu users could not be rotated", failed, ns.n);
	else
		ret = CLI_EXIT_OK;
out:
	free(ns.v);
	vault_close(&v);
	return ret;
}

/* ---- Command table and parsing ------------------------------------------------------ */

static const struct command commands[] = {
	{ "user", "add", 1, 1, O_PASSFD | O_TOKEN, cmd_user_add,
	  "user add NAME [--passphrase-fd N] TOKEN [--label TEXT]",
	  "Creates user NAME: a passphrase (read from --passphrase-fd N or prompted twice\n"
	  "on the terminal), a first token, the user's keys, the default mailboxes, and a\n"
	  "recovery key printed ONCE on standard output: write it down.\n\n"
	  PASSFD_HELP "\n" TOKEN_SPEC_HELP "\n" POLICY_HELP },
	{ "user", "list", 0, 0, 0, cmd_user_list,
	  "user list",
	  "Lists users: name, creation date, number of tokens, current key epoch and its\n"
	  "age, number of messages.\n" },
	{ "user", "remove", 1, 1, O_YES, cmd_user_remove,
	  "user remove NAME [--yes]",
	  "Removes user NAME: crypto-shreds their keys (so every sealed record becomes\n"
	  "unreadable at once), then deletes all their data. Asks for confirmation on the\n"
	  "terminal; without a terminal --yes is required.\n\n"
	  "  --yes                  do not ask.\n" },
	{ "token", "add", 1, 1, O_PASSFD | O_TOKEN, cmd_token_add,
	  "token add NAME [--passphrase-fd N] TOKEN [--label TEXT]",
	  "Enrols another token for NAME (up to 8). Needs NAME's passphrase immediately\n"
	  "followed by a current OTP of one of the existing tokens, on one line.\n\n"
	  PASSFD_HELP "\n" TOKEN_SPEC_HELP },
	{ "token", "remove", 2, 2, O_PASSFD, cmd_token_remove,
	  "token remove NAME INDEX [--passphrase-fd N]",
	  "Removes token INDEX (the number in `status NAME`) from NAME. Needs NAME's\n"
	  "passphrase immediately followed by a current OTP, on one line. The last token\n"
	  "cannot be removed (use `recover` to replace it).\n\n" PASSFD_HELP },
	{ "token", "otp", 1, 1, 0, cmd_token_otp,
	  "token otp TOKENFILE",
	  "Prints the next one-time password of a software token and advances the counter\n"
	  "stored in TOKENFILE (use counter + 1; when it wraps, session counter + 1). The\n"
	  "file is locked and rewritten atomically, so concurrent runs never print the\n"
	  "same OTP. Needs no config file.\n" },
	{ NULL, "passwd", 1, 1, O_PASSFD, cmd_passwd,
	  "passwd NAME [--passphrase-fd N]",
	  "Changes NAME's passphrase. Reads the current passphrase immediately followed by\n"
	  "a fresh OTP (first line), then the new passphrase (second line; prompted twice\n"
	  "on a terminal). Only key wraps change; stored mail is not touched.\n\n"
	  PASSFD_HELP "\n" POLICY_HELP },
	{ NULL, "recover", 1, 1, O_PASSFD | O_TOKEN, cmd_recover,
	  "recover NAME [--passphrase-fd N] TOKEN [--label TEXT]",
	  "Regains access to NAME after a lost passphrase or token: reads the recovery key\n"
	  "(first line), then a new passphrase (second line), sets the passphrase, enrols\n"
	  "the new TOKEN, removes every old token and prints a new recovery key (the one\n"
	  "used stops working). Mail is kept.\n\n"
	  PASSFD_HELP "\n" TOKEN_SPEC_HELP "\n" POLICY_HELP },
	{ NULL, "recovery-key", 1, 1, O_PASSFD, cmd_recovery_key,
	  "recovery-key NAME [--passphrase-fd N]",
	  "Issues a new recovery key for NAME and prints it once; the old one stops working\n"
	  "(copies of the store made before, such as backups, still hold the old one's wrap).\n"
	  "Needs NAME's passphrase immediately followed by a current OTP, on one line.\n"
	  "`recover` replaces the recovery key by itself.\n\n" PASSFD_HELP },
	{ NULL, "rotate", 0, 1, O_ALL | O_FORCE, cmd_rotate,
	  "rotate (NAME | --all) [--force]",
	  "Starts a new key epoch for NAME (or every user) if the current one is older than\n"
	  "rotation_period. New mail is sealed to the new epoch at once; data keys of older\n"
	  "mail are re-wrapped in the user's next session. Needs no user secret.\n\n"
	  "  --all                  every user.\n"
	  "  --force                rotate even if not due.\n" },
	{ NULL, "retire", 2, 2, O_FORCE, cmd_retire,
	  "retire NAME EPOCH --force",
	  "Retires EPOCH of NAME on purpose (retention, legal deletion): destroys the epoch\n"
	  "secret and EXPUNGES every message whose data key is still sealed only under it;\n"
	  "messages already re-wrapped to a newer epoch are not affected. Old epochs with no\n"
	  "message left are retired automatically (daemon, sessions); this command is for\n"
	  "crypto-shredding on purpose. The current epoch cannot be retired: rotate first.\n"
	  "Needs no user secret. If interrupted, run it again to finish.\n\n"
	  "  --force                required: the expunge cannot be undone.\n" },
	{ NULL, "daemon", 0, 0, O_ONCE, cmd_daemon,
	  "daemon [--once]",
	  "Runs the rotation scheduler: every rotation_check_interval (default 1h) it gives\n"
	  "each user whose current epoch is older than rotation_period (default 90 days) a\n"
	  "new epoch, and retires old epochs no message references any more. Never needs a\n"
	  "user secret. Started as root it drops to run_user first. Logs to stderr, writes\n"
	  "key events to audit_log. SIGTERM stops it, SIGHUP runs a pass now.\n"
	  "Test-only clock: SEALMAIL_CLOCK_FILE=PATH (unix seconds, re-read every pass) or\n"
	  "SEALMAIL_FAKE_TIME=SECS; never set them in production.\n\n"
	  "  --once                 one pass, then exit (cron, tests).\n" },
	{ NULL, "status", 0, 1, 0, cmd_status,
	  "status [NAME]",
	  "Shows NAME's (or every user's) keys: tokens, current epoch and its age, the next\n"
	  "rotation date (epoch creation + rotation_period), live epochs with their message\n"
	  "counts, retired epochs, messages, and messages still waiting for re-wrap to the\n"
	  "current epoch.\n" },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void print_main_help(FILE *f)
{
	size_t i;

	fprintf(f,
	    "Usage: sealmail-keymgr [-c FILE] COMMAND [ARGS...]\n"
	    "Manages sealmail users, tokens and keys.\n\n"
	    "  -c, --config FILE      config file (default: $SEALMAIL_CONF, else\n"
	    "                         ./sealmail.conf)\n"
	    "  -h, --help             this help; `COMMAND --help` explains a command\n\n"
	    "Commands:\n");
	for (i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %s\n", commands[i].synopsis);
	fprintf(f, "\nTOKEN is --soft-token FILE, or --yubikey-aes HEX --yubikey-uid HEX "
	    "--yubikey-id MODHEX.\n"
	    "Secrets are read from --passphrase-fd N or a no-echo terminal prompt, never from\n"
	    "the command line.\n\n"
	    "Exit status: 0 success, 1 error (the message says what was wrong), 2 usage "
	    "error.\n");
}

static void print_group_help(FILE *f, const char *group)
{
	size_t i;

	fprintf(f, "Usage:\n");
	for (i = 0; i < NCOMMANDS; i++)
		if (commands[i].group != NULL && strcmp(commands[i].group, group) == 0)
			fprintf(f, "  sealmail-keymgr [-c FILE] %s\n", commands[i].synopsis);
	fprintf(f, "`sealmail-keymgr %s SUBCOMMAND --help` explains each.\n", group);
}

static void print_cmd_help(FILE *f, const struct command *cmd)
{
	fprintf(f, "Usage: sealmail-keymgr [-c FILE] %s\n\n%s", cmd->synopsis, cmd->help);
}

static int usage_error(const struct command *cmd)
{
	if (cmd != NULL)
		fprintf(stderr, "Usage: sealmail-keymgr [-c FILE] %s\n"
		    "Try `sealmail-keymgr %s%s%s --help`.\n", cmd->synopsis,
		    cmd->group ? cmd->group : "", cmd->group ? " " : "", cmd->name);
	else
		fprintf(stderr, "Try `sealmail-keymgr --help`.\n");
	return CLI_EXIT_USAGE;
}

enum { L_PASSFD = 256, L_SOFT, L_YKAES, L_YKUID, L_YKID, L_LABEL, L_YES, L_ALL, L_FORCE,
	L_ONCE };

static const struct option long_opts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "help", no_argument, NULL, 'h' },
	{ "passphrase-fd", required_argument, NULL, L_PASSFD },
	{ "soft-token", required_argument, NULL, L_SOFT },
	{ "yubikey-aes", required_argument, NULL, L_YKAES },
	{ "yubikey-uid", required_argument, NULL, L_YKUID },
	{ "yubikey-id", required_argument, NULL, L_YKID },
	{ "label", required_argument, NULL, L_LABEL },
	{ "yes", no_argument, NULL, L_YES },
	{ "all", no_argument, NULL, L_ALL },
	{ "force", no_argument, NULL, L_FORCE },
	{ "once", no_argument, NULL, L_ONCE },
	{ NULL, 0, NULL, 0 },
};

/* 0 ok, 1 help printed, -1 usage error printed. argv[0] is the command word. */
static int parse_cmd_args(int argc, char **argv, const struct command *cmd, struct ctx *c)
{
	unsigned need;
	int o, i;

	optind = 0;	/* glibc: full re-initialisation */
	opterr = 0;	/* our own messages: getopt's would echo option values */
	while ((o = getopt_long(argc, argv, "c:h", long_opts, NULL)) != -1) {
		switch (o) {
		case 'c': c->config = optarg; need = 0; break;
		case 'h': print_cmd_help(stdout, cmd); return 1;
		case L_PASSFD:
			need = O_PASSFD;
			if (cli_parse_fd(optarg, &c->pass_fd) < 0) {
				/* Not echoed: someone may have put a passphrase here. */
				cli_err("--passphrase-fd takes a file descriptor number");
				return -1;
			}
			break;
		case L_SOFT: c->soft_token = optarg; need = O_SOFT; break;
		case L_YKAES: c->yk_aes = optarg; need = O_YK; break;
		case L_YKUID: c->yk_uid = optarg; need = O_YK; break;
		case L_YKID: c->yk_id = optarg; need = O_YK; break;
		case L_LABEL: c->label = optarg; need = O_LABEL; break;
		case L_YES: c->yes = true; need = O_YES; break;
		case L_ALL: c->all = true; need = O_ALL; break;
		case L_FORCE: c->force = true; need = O_FORCE; break;
		case L_ONCE: c->once = true; need = O_ONCE; break;
		default:
			cli_getopt_error(argv, optind, optopt);
			return -1;
		}
		if (need != 0 && !(cmd->opts & need)) {
			cli_err("option %.*s does not apply to this command",
			    (int)strcspn(argv[optind - 1], "="), argv[optind - 1]);
			return -1;
		}
	}
	c->nargs = 0;
	for (i = optind; i < argc; i++) {
		if (c->nargs == cmd->max_args || c->nargs == MAX_ARGS) {
			cli_err("too many arguments");
			return -1;
		}
		c->args[c->nargs++] = argv[i];
	}
	if (c->nargs < cmd->min_args) {
		cli_err("missing argument");
		return -1;
	}
	return 0;
}

int keymgr_main(int argc, char **argv)
{
	struct ctx c;
	const struct command *cmd = NULL;
	const char *word, *sub = NULL;
	size_t i;
	int o, r, first;

	cli_set_progname("sealmail-keymgr");
	memset(&c, 0, sizeof(c));
	c.pass_fd = -1;

	/* Global options stop at the command word ("+"). */
	optind = 0;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "+c:h", long_opts, NULL)) != -1) {
		switch (o) {
		case 'c': c.config = optarg; break;
		case 'h': print_main_help(stdout); return CLI_EXIT_OK;
		default:
			if (o >= 256)
				cli_err("options must follow the command");
			else
				cli_getopt_error(argv, optind, optopt);
			return usage_error(NULL);
		}
	}
	if (optind >= argc) {
		cli_err("missing command");
		print_main_help(stderr);
		return CLI_EXIT_USAGE;
	}
	word = argv[optind];
	first = optind;
	if (strcmp(word, "help") == 0) {
		print_main_help(stdout);
		return CLI_EXIT_OK;
	}
	if (strcmp(word, "user") == 0 || strcmp(word, "token") == 0) {
		if (first + 1 >= argc) {
			cli_err("missing %s subcommand", word);
			print_group_help(stderr, word);
			return CLI_EXIT_USAGE;
		}
		sub = argv[first + 1];
		if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
			print_group_help(stdout, word);
			return CLI_EXIT_OK;
		}
		for (i = 0; i < NCOMMANDS; i++)
			if (commands[i].group != NULL && strcmp(commands[i].group, word) == 0 &&
			    strcmp(commands[i].name, sub) == 0)
				cmd = &commands[i];
		if (cmd == NULL) {
			cli_err("unknown %s subcommand: %s", word, sub);
			print_group_help(stderr, word);
			return CLI_EXIT_USAGE;
		}
		first++;
	} else {
		for (i = 0; i < NCOMMANDS; i++)
			if (commands[i].group == NULL && strcmp(commands[i].name, word) == 0)
				cmd = &commands[i];
		if (cmd == NULL) {
			cli_err("unknown command: %s", word);
			return usage_error(NULL);
		}
	}
	c.cmd = cmd;
	r = parse_cmd_args(argc - first, argv + first, cmd, &c);
	if (r > 0)
		return CLI_EXIT_OK;
	if (r < 0)
		return usage_error(cmd);
	return cmd->run(&c);
}
