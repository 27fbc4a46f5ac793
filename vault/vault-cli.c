/* sealmail-vault: the store's command line.
 *
 * Store commands (init, deliver, stats, verify, backup) need no user secret. The
 * session commands (cat, list, mkdir, flag) act as one short user session: they read
 * the passphrase immediately followed by an OTP from --passphrase-fd or the terminal,
 * log in exactly like the IMAP server does (the OTP counter advances), and print the
 * user's own data on stdout. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include "vault-cli.h"
#include "vault-trace.h"
#include "cli-util.h"
#include "vault.h"
#include "vault-import.h"
#include "compat.h"

#define MAX_ARGS 16
#define READ_CHUNK (1024 * 1024)	/* cat: plaintext bytes opened per read */
#define TXN_TRIES 4			/* commit -EAGAIN: the map grew, run again */

struct ctx {
	const char *config;
	int pass_fd;
	const char *mailbox;
	const char *backup;
	const char *maildir, *mbox;	/* import source */
	const char *from, *rcpt;	/* deliver: envelope, for the trace fields */
	int nargs;
	char *args[MAX_ARGS];
};

enum { O_PASSFD = 1 << 0, O_MAILBOX = 1 << 1, O_BACKUP = 1 << 2, O_SOURCE = 1 << 3,
    O_TRACE = 1 << 4 };

struct command {
	const char *name;
	int min_args, max_args;
	unsigned opts;
	int (*run)(struct ctx *c);
	const char *synopsis;
	const char *help;
};

#define PASSFD_HELP \
	"  --passphrase-fd N      read \"passphrase immediately followed by a current OTP\"\n" \
	"                         as one line from file descriptor N; without it, prompt on\n" \
	"                         the terminal (no echo). Never from the command line.\n"

/* ---- init --------------------------------------------------------------------------- */

static int cmd_init(struct ctx *c)
{
	char err[1024] = "";
	int r;

	if ((r = crypto_init()) < 0) {
		cli_err("cannot initialise the crypto library: %s", cli_strerror(r));
		return CLI_EXIT_ERR;
	}
	if ((r = vault_init_dir(c->args[0], err, sizeof(err))) < 0) {
		if (err[0] != '\0')
			cli_err("init: %s", err);
		else
			cli_err("init %s: %s", c->args[0], cli_strerror(r));
		return CLI_EXIT_ERR;
	}
	printf("Created a sealmail vault in %s\n"
	    "Config: %s/sealmail.conf (every setting is listed there with its default)\n"
	    "Next: sealmail-keymgr -c %s/sealmail.conf user add NAME --soft-token FILE\n",
	    c->args[0], c->args[0], c->args[0]);
	return CLI_EXIT_OK;
}

/* ---- deliver (LDA) ------------------------------------------------------------------ */

/* sysexits for an MTA: EX_NOUSER and EX_DATAERR bounce, EX_TEMPFAIL retries later.
 * Anything the admin can fix (config, permissions, a full store) is a TEMPFAIL so no
 * mail is bounced because of a local problem. */
static int cmd_deliver(struct ctx *c)
{
	const char *name = c->args[0];
	struct vault_config cfg;
	struct vault *v = NULL;
	struct vault_delivery *d = NULL;
	struct secret *buf = NULL;
	uint64_t total = 0;
	uint32_t uid = 0;
	int r, ret = EX_TEMPFAIL;

	/* The process holds plaintext mail: no core dumps. */
	crypto_harden_process();
	if ((c->from && strlen(c->from) > 320) || (c->rcpt && strlen(c->rcpt) > 320)) {
		cli_err("deliver: --from/--rcpt address too long (max 320 bytes)");
		return EX_USAGE;
	}
	if ((r = cli_open_store(c->config, &cfg, &v)) < 0)
		goto out;
	if ((r = secret_new(65536, &buf)) < 0) {
		cli_err("deliver to %s: out of memory", name);
		goto out;
	}
	if (c->from != NULL || c->rcpt != NULL) {
		/* The trace fields LMTP adds, from the same code (vault/trace.c). */
		struct vault_trace t;

		memset(&t, 0, sizeof(t));
		t.sender = c->from;
		t.rcpt = c->rcpt ? c->rcpt : name;
		t.host = cfg.hostname;
		t.proto = "local";
		t.now = time(NULL);
		r = vault_trace_delivery_begin(v, name, &t, &d);
	} else
		r = vault_delivery_begin(v, name, time(NULL), &d);
	if (r < 0) {
		if (r == VAULT_ERR_NOUSER) {
			cli_err("deliver: unknown user %s", name);
			ret = EX_NOUSER;
		} else {
			cli_err("deliver to %s: cannot start the delivery: %s", name,
			    cli_strerror(r));
		}
		goto out;
	}
	for (;;) {
		ssize_t n = read(STDIN_FILENO, buf->p, buf->len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			cli_err("deliver to %s: cannot read the message: %s", name, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		total += (uint64_t)n;
		if ((r = vault_delivery_write_mail(d, buf->p, (size_t)n)) < 0) {
			if (r == -E2BIG) {
				cli_err("deliver to %s: message too big (over max_message_size = %"
				    PRIu64 " bytes)", name, cfg.max_message_size);
				ret = EX_DATAERR;
			} else {
				cli_err("deliver to %s: %s", name, cli_strerror(r));
			}
			goto out;
		}
	}
	if (total == 0) {
		cli_err("deliver to %s: empty message", name);
		ret = EX_DATAERR;
		goto out;
	}
	if ((r = vault_delivery_commit(&d, &uid)) < 0) {
		if (r == -E2BIG) {
			cli_err("deliver to %s: message too big (over max_message_size = %" PRIu64
			    " bytes)", name, cfg.max_message_size);
			ret = EX_DATAERR;
		} else if (r == VAULT_ERR_FULL) {
			cli_err("deliver to %s: the store is full (map_max reached); will retry",
			    name);
		} else {
			cli_err("deliver to %s: cannot store the message: %s", name,
			    cli_strerror(r));
		}
		goto out;
	}
	ret = EX_OK;
out:
	vault_delivery_abort(&d);
	secret_free(&buf);
	vault_close(&v);
	return ret;
}

/* ---- stats / verify / backup -------------------------------------------------------- */

static int cmd_stats(struct ctx *c)
{
	struct vault_config cfg;
	struct vault *v = NULL;
	struct vault_stats st;
	int r, ret = CLI_EXIT_ERR;

	if (cli_open_store(c->config, &cfg, &v) < 0)
		goto out;
	if ((r = vault_stats(v, &st)) < 0) {
		cli_err("stats: %s", cli_strerror(r));
		goto out;
	}
	printf("data_dir:    %s\n"
	    "users:       %" PRIu64 "\n"
	    "mailboxes:   %" PRIu64 "\n"
	    "messages:    %" PRIu64 "\n"
	    "records:     %" PRIu64 "\n"
	    "chunk_bytes: %" PRIu64 "\n"
	    "map_size:    %" PRIu64 "\n"
	    "map_used:    %" PRIu64 "\n"
	    "map_max:     %" PRIu64 "\n",
	    cfg.data_dir, st.users, st.mailboxes, st.messages, st.records, st.chunk_bytes,
	    st.map_size, st.map_used, cfg.map_max);
	ret = CLI_EXIT_OK;
out:
	vault_close(&v);
	return ret;
}

static void report_broken(const char *what, void *arg)
{
	(void)arg;
	cli_err("broken record: %s", what);
}

static int cmd_verify(struct ctx *c)
{
	struct vault_config cfg;
	struct vault *v = NULL;
	int r;

	if (c->backup != NULL) {
		if ((r = crypto_init()) < 0) {
			cli_err("cannot initialise the crypto library: %s", cli_strerror(r));
			return CLI_EXIT_ERR;
		}
		r = vault_verify_backup(c->backup, report_broken, NULL);
		if (r < 0) {
			cli_err("verify backup %s: %s", c->backup, cli_strerror(r));
			return CLI_EXIT_ERR;
		}
		if (r > 0) {
			cli_err("backup %s: %d broken record(s)", c->backup, r);
			return CLI_EXIT_ERR;
		}
		printf("backup %s: OK (every record matches the manifest)\n", c->backup);
		return CLI_EXIT_OK;
	}
	if (cli_open_store(c->config, &cfg, &v) < 0)
		return CLI_EXIT_ERR;
	r = vault_verify(v, report_broken, NULL);
	vault_close(&v);
	if (r < 0) {
		cli_err("verify %s: %s", cfg.data_dir, cli_strerror(r));
		return CLI_EXIT_ERR;
	}
	if (r > 0) {
		cli_err("%s: %d broken record(s)", cfg.data_dir, r);
		return CLI_EXIT_ERR;
	}
	printf("%s: OK (every record's hash matches)\n", cfg.data_dir);
	return CLI_EXIT_OK;
}

static int cmd_backup(struct ctx *c)
{
	struct vault_config cfg;
	struct vault *v = NULL;
	const char *dest = c->args[0];
	int r, ret = CLI_EXIT_ERR;

	if (cli_open_store(c->config, &cfg, &v) < 0)
		goto out;
	if ((r = vault_backup(v, dest)) < 0) {
		cli_err("backup to %s: %s", dest, cli_strerror(r));
		goto out;
	}
	/* A backup is only as good as its restore: check it against its manifest now. */
	r = vault_verify_backup(dest, report_broken, NULL);
	if (r != 0) {
		cli_err("backup to %s was written but does not verify: %s", dest,
		    r < 0 ? cli_strerror(r) : "broken records");
		goto out;
	}
	printf("backup written to %s and verified\n", dest);
	ret = CLI_EXIT_OK;
out:
	vault_close(&v);
	return ret;
}

/* ---- Session commands ---------------------------------------------------------------- */

struct session {
	struct vault_config cfg;
	struct vault *v;
	struct vault_keys *keys;
};

static void session_close(struct session *s)
{
	vault_keys_free(&s->keys);
	vault_close(&s->v);
}

static int session_open(struct ctx *c, const char *user, struct session *s)
{
	struct cli_pass_src src = { -1, false };
	struct vault_user_info info;
	struct vault_txn *t = NULL;
	struct secret *line = NULL;
	char prompt[256];
	int r;

	memset(s, 0, sizeof(*s));
	crypto_harden_process();
	if ((r = cli_open_store(c->config, &s->cfg, &s->v)) < 0)
		return r;
	/* Unknown user: say so before asking for a passphrase. */
	if ((r = vault_txn_begin(s->v, false, &t)) < 0) {
		cli_err("cannot read the store: %s", cli_strerror(r));
		return r;
	}
	r = vault_user_get(t, user, &info);
	vault_txn_abort(&t);
	if (r < 0) {
		cli_err(r == VAULT_ERR_NOUSER ? "no such user: %s" : "cannot read user %s", user);
		return r;
	}
	if ((r = cli_pass_open(c->pass_fd, &src)) < 0)
		return r;
	snprintf(prompt, sizeof(prompt), "Passphrase of %s followed by an OTP (touch the key): ",
	    user);
	r = cli_pass_read(&src, prompt, "passphrase", &line);
	if (src.tty)
		close(src.fd);
	if (r < 0)
		return r;
	r = cli_login_unlock(s->v, user, line, &s->keys);
	secret_free(&line);
	return r;
}

/* INBOX is fixed (id 1); other names are looked up (sealed names, so with the keys). */
static int resolve_mailbox(struct vault_txn *t, const struct vault_keys *k, const char *name,
    uint32_t *id_out)
{
	struct vault_mailbox mb;
	int r;

	if (name == NULL || strcasecmp(name, "INBOX") == 0) {
		*id_out = VAULT_INBOX_ID;
		return 0;
	}
	if ((r = vault_mailbox_find(t, k, name, &mb)) < 0) {
		if (r == VAULT_ERR_NOMBOX)
			cli_err("no such mailbox: %s", name);
		else
			cli_err("cannot look up mailbox %s: %s", name, cli_strerror(r));
		return r;
	}
	*id_out = mb.id;
	return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int cmd_cat(struct ctx *c)
{
	const char *user = c->args[0];
	struct session s;
	struct vault_txn *t = NULL;
	struct vault_msg_meta meta;
	struct sbuf *b = NULL;
	uint32_t uid, mbox;
	uint64_t off = 0;
	int r, ret = CLI_EXIT_ERR;

	memset(&meta, 0, sizeof(meta));
	if (cli_parse_u32(c->args[1], UINT32_MAX, &uid) < 0 || uid == 0) {
		cli_err("UID must be a positive number: %s", c->args[1]);
		return CLI_EXIT_USAGE;
	}
	if (session_open(c, user, &s) < 0)
		goto out;
	if ((r = vault_txn_begin(s.v, false, &t)) < 0) {
		cli_err("cannot read the store: %s", cli_strerror(r));
		goto out;
	}
	if (resolve_mailbox(t, s.keys, c->mailbox, &mbox) < 0)
		goto out;
	if ((r = vault_msg_get_meta(t, s.keys, mbox, uid, &meta)) < 0) {
		if (r == VAULT_ERR_NOMSG)
			cli_err("no message with UID %" PRIu32 " in %s", uid,
			    c->mailbox ? c->mailbox : "INBOX");
		else
			cli_err("cannot open message %" PRIu32 ": %s", uid, cli_strerror(r));
		goto out;
	}
	/* A chunk at a time: a large message never sits in memory whole. */
	while (off < meta.size) {
		uint64_t want = meta.size - off < READ_CHUNK ? meta.size - off : READ_CHUNK;

		if ((r = vault_msg_read(t, s.keys, mbox, uid, off, want, &b)) < 0) {
			cli_err("cannot read message %" PRIu32 ": %s", uid, cli_strerror(r));
			goto out;
		}
		if (b->len == 0) {
			cli_err("message %" PRIu32 ": shorter than its recorded size", uid);
			goto out;
		}
		if ((r = write_all(STDOUT_FILENO, b->d, b->len)) < 0) {
			cli_err("cannot write to standard output: %s", strerror(-r));
			goto out;
		}
		off += b->len;
		sbuf_free(&b);
	}
	ret = CLI_EXIT_OK;
out:
	sbuf_free(&b);
	vault_msg_meta_clear(&meta);
	vault_txn_abort(&t);
	session_close(&s);
	return ret;
}

static const struct { uint32_t bit; const char *name; } system_flags[] = {
	{ VAULT_F_SEEN, "\\Seen" }, { VAULT_F_ANSWERED, "\\Answered" },
	{ VAULT_F_FLAGGED, "\\Flagged" }, { VAULT_F_DELETED, "\\Deleted" },
	{ VAULT_F_DRAFT, "\\Draft" },
};
#define NSYSFLAGS (sizeof(system_flags) / sizeof(system_flags[0]))

static int list_msg_cb(const struct vault_msg_meta *m, void *arg)
{
	struct sbuf *out = arg;
	const char *sep = "";
	char date[64];
	size_t i;
	int r;

	cli_fmt_time((time_t)m->internal_date, date, sizeof(date));
	if ((r = sbuf_printf(out, "  uid=%" PRIu32 " size=%" PRIu64 " modseq=%" PRIu64
	    " date=\"%s\" time=%" PRId64 " tz=%c%02d%02d flags=(", m->uid, m->size, m->modseq,
	    date, m->internal_date, m->internal_tz < 0 ? '-' : '+',
	    (int)(labs((long)m->internal_tz) / 60), (int)(labs((long)m->internal_tz) % 60))) < 0)
		return r;
	for (i = 0; i < NSYSFLAGS; i++) {
		if (m->flags & system_flags[i].bit) {
			if ((r = sbuf_printf(out, "%s%s", sep, system_flags[i].name)) < 0)
				return r;
			sep = " ";
		}
	}
	for (i = 0; i < m->nkeywords && i < VAULT_MAX_KEYWORDS; i++) {
		if ((r = sbuf_printf(out, "%s%s", sep, m->keywords[i])) < 0)
			return r;
		sep = " ";
	}
	return sbuf_printf(out, ")\n");
}

/* Mailbox names may hold any UTF-8: quote them, escaping '"' and '\'. */
static int put_quoted(struct sbuf *out, const char *s)
{
	int r;

	if ((r = sbuf_put_u8(out, '"')) < 0)
		return r;
	for (; *s != '\0'; s++) {
		if ((*s == '"' || *s == '\\') && (r = sbuf_put_u8(out, '\\')) < 0)
			return r;
		if ((r = sbuf_put_u8(out, (uint8_t)*s)) < 0)
			return r;
	}
	return sbuf_put_u8(out, '"');
}

/* One pass in a write transaction: listing opens freshly delivered messages and adopts
 * them (re-wraps their data keys symmetrically), as an IMAP session would. */
static int list_once(struct session *s, struct sbuf *out)
{
	struct vault_txn *t = NULL;
	struct vault_mailbox *mbs = NULL;
	size_t n = 0, i;
	int r;

	sbuf_reset(out);
	if ((r = vault_txn_begin(s->v, true, &t)) < 0)
		goto out;
	if ((r = vault_mailbox_list(t, s->keys, &mbs, &n)) < 0)
		goto out;
	for (i = 0; i < n; i++) {
		if ((r = sbuf_printf(out, "mailbox ")) < 0 || (r = put_quoted(out, mbs[i].name)) < 0 ||
		    (r = sbuf_printf(out, " id=%" PRIu32 " messages=%" PRIu32 " uidvalidity=%"
		    PRIu32 " uidnext=%" PRIu32 " special-use=%" PRIu32 " subscribed=%s\n",
		    mbs[i].id, mbs[i].messages, mbs[i].uidvalidity, mbs[i].uidnext,
		    mbs[i].special_use, mbs[i].subscribed ? "yes" : "no")) < 0)
			goto out;
		if ((r = vault_msg_list(t, s->keys, mbs[i].id, 1, list_msg_cb, out)) < 0)
			goto out;
	}
	r = vault_txn_commit(&t);
out:
	free(mbs);
	vault_txn_abort(&t);
	return r;
}

static int cmd_list(struct ctx *c)
{
	struct session s;
	struct sbuf *out = NULL;
	int r = 0, i, ret = CLI_EXIT_ERR;

	if (session_open(c, c->args[0], &s) < 0)
		goto out;
	/* The listing holds mailbox names and flags: the user's data, kept in locked
	 * memory until printed. */
	if ((r = sbuf_new_secure(256u * 1024 * 1024, &out)) < 0) {
		cli_err("out of memory");
		goto out;
	}
	for (i = 0; i < TXN_TRIES; i++)
		if ((r = list_once(&s, out)) != -EAGAIN)
			break;
	if (r < 0) {
		cli_err("cannot list %s's mail: %s", c->args[0], cli_strerror(r));
		goto out;
	}
	if ((r = write_all(STDOUT_FILENO, out->d, out->len)) < 0) {
		cli_err("cannot write to standard output: %s", strerror(-r));
		goto out;
	}
	ret = CLI_EXIT_OK;
out:
	sbuf_free(&out);
	session_close(&s);
	return ret;
}

struct mkdir_arg {
	struct session *s;
	const char *name;
	uint32_t id;
};

static int mkdir_txn(struct vault_txn *t, void *arg)
{
	struct mkdir_arg *m = arg;

	return vault_mailbox_create(t, m->s->keys, m->name, VAULT_SU_NONE, &m->id);
}

static int cmd_mkdir(struct ctx *c)
{
	struct session s;
	struct mkdir_arg ma = { 0 };
	int r = 0, ret = CLI_EXIT_ERR;

	if (strlen(c->args[1]) == 0 || strlen(c->args[1]) >= sizeof(((struct vault_mailbox *)0)->name)) {
		cli_err("mailbox name must be 1 to 511 bytes");
		return CLI_EXIT_USAGE;
	}
	if (session_open(c, c->args[0], &s) < 0)
		goto out;
	ma.s = &s;
	ma.name = c->args[1];
	r = vault_write(s.v, mkdir_txn, &ma);
	if (r == -EEXIST) {
		cli_err("mailbox already exists");
		goto out;
	}
	if (r < 0) {
		cli_err("cannot create the mailbox: %s", cli_strerror(r));
		goto out;
	}
	printf("mailbox created (id %" PRIu32 ")\n", ma.id);
	ret = CLI_EXIT_OK;
out:
	session_close(&s);
	return ret;
}

/* RFC 9051 flag-keyword = atom: no atom-specials (CTL, SP, ( ) { % * " \ ]). */
static bool valid_keyword(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 128)
		return false;
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch <= 0x20 || ch >= 0x7f || strchr("(){%*\"\\]", ch) != NULL)
			return false;
	}
	return true;
}

/* Applies "+F" / "-F" to flags and the keyword list (pointers borrowed). */
static int apply_change(const char *arg, uint32_t *flags, char **kw, uint32_t *nkw)
{
	bool add = arg[0] == '+';
	const char *f = arg + 1;
	uint32_t i, j;

	if ((arg[0] != '+' && arg[0] != '-') || f[0] == '\0') {
		cli_err("flag change must be +FLAG or -FLAG: %s", arg);
		return -EINVAL;
	}
	if (f[0] == '\\') {
		for (i = 0; i < NSYSFLAGS; i++) {
			if (strcasecmp(f, system_flags[i].name) == 0) {
				if (add)
					*flags |= system_flags[i].bit;
				else
					*flags &= ~system_flags[i].bit;
				return 0;
			}
		}
		cli_err("unknown system flag: %s", f);
		return -EINVAL;
	}
	if (!valid_keyword(f)) {
		cli_err("not a valid keyword (an IMAP atom): %s", f);
		return -EINVAL;
	}
	for (i = 0; i < *nkw; i++)
		if (strcasecmp(kw[i], f) == 0)
			break;
	if (add && i == *nkw) {
		if (*nkw == VAULT_MAX_KEYWORDS) {
			cli_err("too many keywords (at most %d)", VAULT_MAX_KEYWORDS);
			return -E2BIG;
		}
		kw[(*nkw)++] = (char *)(uintptr_t)f;
	} else if (!add && i < *nkw) {
		for (j = i; j + 1 < *nkw; j++)
			kw[j] = kw[j + 1];
		(*nkw)--;
	}
	return 0;
}

struct flag_arg {
	struct session *s;
	struct ctx *c;
	uint32_t uid, mbox;
	struct vault_msg_meta meta;	/* owns the keyword strings kw[] points into */
	uint64_t modseq;
	bool reported;			/* the failure was already explained */
};

/* One run of the flag change; vault_write replays it on a fresh txn if the map grew,
 * so it starts from the stored flags every time. */
static int flag_txn(struct vault_txn *t, void *arg)
{
	struct flag_arg *f = arg;
	char *kw[VAULT_MAX_KEYWORDS];
	uint32_t flags, nkw, i;
	int r, a;

	vault_msg_meta_clear(&f->meta);
	f->reported = false;
	if ((r = resolve_mailbox(t, f->s->keys, f->c->mailbox, &f->mbox)) < 0) {
		f->reported = true;
		return r;
	}
	if ((r = vault_msg_get_meta(t, f->s->keys, f->mbox, f->uid, &f->meta)) < 0)
		return r;
	flags = f->meta.flags;
	nkw = f->meta.nkeywords < VAULT_MAX_KEYWORDS ? f->meta.nkeywords : VAULT_MAX_KEYWORDS;
	for (i = 0; i < nkw; i++)
		kw[i] = f->meta.keywords[i];
	for (a = 2; a < f->c->nargs; a++)
		if ((r = apply_change(f->c->args[a], &flags, kw, &nkw)) < 0) {
			f->reported = true;
			return r;
		}
	return vault_msg_set_flags(t, f->s->keys, f->mbox, f->uid, flags, kw, nkw, &f->modseq);
}

static int cmd_flag(struct ctx *c)
{
	struct session s;
	struct flag_arg fa;
	char *kw[VAULT_MAX_KEYWORDS];
	uint32_t uid, flags, nkw;
	int r = 0, a, ret = CLI_EXIT_ERR;

	memset(&fa, 0, sizeof(fa));
	memset(&s, 0, sizeof(s));
	if (cli_parse_u32(c->args[1], UINT32_MAX, &uid) < 0 || uid == 0) {
		cli_err("UID must be a positive number: %s", c->args[1]);
		return CLI_EXIT_USAGE;
	}
	/* Check the syntax of every change before asking for a passphrase. */
	flags = 0;
	nkw = 0;
	for (a = 2; a < c->nargs; a++)
		if (apply_change(c->args[a], &flags, kw, &nkw) < 0)
			return CLI_EXIT_USAGE;
	if (session_open(c, c->args[0], &s) < 0)
		goto out;
	fa.s = &s;
	fa.c = c;
	fa.uid = uid;
	r = vault_write(s.v, flag_txn, &fa);
	if (r < 0 && fa.reported)
		goto out;
	if (r == VAULT_ERR_NOMSG) {
		cli_err("no message with UID %" PRIu32 " in %s", uid,
		    c->mailbox ? c->mailbox : "INBOX");
		goto out;
	}
	if (r < 0) {
		cli_err("cannot set flags on message %" PRIu32 ": %s", uid, cli_strerror(r));
		goto out;
	}
	printf("flags of message %" PRIu32 " updated (modseq %" PRIu64 ")\n", uid, fa.modseq);
	ret = CLI_EXIT_OK;
out:
	vault_msg_meta_clear(&fa.meta);
	session_close(&s);
	return ret;
}

/* ---- rewrap ---------------------------------------------------------------------------- */

/* What an IMAP session does in the background after a rotation, to completion: data
 * keys under older epochs are re-wrapped to the current epoch in bounded batches
 * (short write txns), then the old epochs no message references are retired. */
static int cmd_rewrap(struct ctx *c)
{
	struct session s;
	uint64_t total = 0;
	unsigned done = 0;
	int r, ret = CLI_EXIT_ERR;

	if (session_open(c, c->args[0], &s) < 0)
		goto out;
	do {
		if ((r = vault_rewrap_tick(s.v, s.keys, 200, &done)) < 0) {
			cli_err("re-wrap of %s stopped after %" PRIu64 " data keys: %s", c->args[0],
			    total, cli_strerror(r));
			goto out;
		}
		total += done;
		if (r > 0 && done > 0) {
			printf("%s: %" PRIu64 " re-wrapped so far\n", c->args[0], total);
			fflush(stdout);
		}
	} while (r > 0);
	printf("%s: %" PRIu64 " data key(s) re-wrapped to the current epoch\n", c->args[0],
	    total);
	ret = CLI_EXIT_OK;
out:
	session_close(&s);
	return ret;
}

/* ---- import (migration in) --------------------------------------------------------- */

/* The vault's mailbox name rule, checked before the login. */
static bool import_target_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 500 || s[0] == '/' || s[n - 1] == '/' || strstr(s, "//") != NULL)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

static int cmd_import(struct ctx *c)
{
	struct import_opts o;
	struct import_source *src = NULL;
	struct session s;
	int ret = CLI_EXIT_ERR;

	memset(&s, 0, sizeof(s));
	if ((c->maildir == NULL) == (c->mbox == NULL)) {
		cli_err("import needs exactly one of --maildir DIR and --mbox FILE");
		return CLI_EXIT_USAGE;
	}
	if (c->mailbox != NULL && !import_target_valid(c->mailbox)) {
		cli_err("--mailbox: a mailbox name of 1 to 500 bytes, levels separated by single "
		    "'/', no control characters");
		return CLI_EXIT_USAGE;
	}
	memset(&o, 0, sizeof(o));
	o.user = c->args[0];
	o.maildir = c->maildir;
	o.mbox = c->mbox;
	o.target = c->mailbox;
	o.progress = isatty(STDERR_FILENO);
	/* The source is scanned before the login: a wrong path costs no OTP. */
	if (import_source_open(&o, &src) < 0)
		goto out;
	if (session_open(c, c->args[0], &s) < 0)
		goto out;
	ret = import_source_run(src, s.v, s.keys, &s.cfg);
out:
	import_source_free(&src);
	session_close(&s);
	return ret;
}

/* ---- Command table ------------------------------------------------------------------- */

static const struct command commands[] = {
	{ "init", 1, 1, 0, cmd_init,
	  "init DIR",
	  "Creates a new vault in DIR: DIR/sealmail.conf (every setting commented with its\n"
	  "default), the LMDB store and a self-signed TLS certificate for localhost. Needs\n"
	  "no -c.\n" },
	{ "deliver", 1, 1, O_TRACE, cmd_deliver,
	  "deliver NAME [--from SENDER] [--rcpt ADDRESS]",
	  "Local delivery agent: reads one message on standard input and stores it in\n"
	  "NAME's INBOX, sealed to NAME's current key epoch (no user secret needed). The\n"
	  "message is stored as given (bare LF line ends become CRLF).\n"
	  "  --from SENDER    the envelope sender (\"\" for the null sender <>)\n"
	  "  --rcpt ADDRESS   the envelope recipient (default: NAME)\n"
	  "With either, the trace fields LMTP adds are prepended: Return-Path: <SENDER>\n"
	  "(only with --from), Delivered-To: <ADDRESS> and a Received: line. They do not\n"
	  "count against max_message_size. Exit status (sysexits, for the MTA):\n"
	  "   0 (EX_OK)        stored and committed (fsync'd unless durable = no)\n"
	  "  64 (EX_USAGE)     bad command line\n"
	  "  65 (EX_DATAERR)   empty message, or over max_message_size: bounce\n"
	  "  67 (EX_NOUSER)    no such user: bounce\n"
	  "  75 (EX_TEMPFAIL)  anything else (config, I/O, store full): retry later\n"
	  "Postfix: mailbox_command = /usr/bin/sealmail-vault -c /etc/sealmail/sealmail.conf\n"
	  "deliver \"$USER\" --from \"$SENDER\" --rcpt \"$ORIGINAL_RECIPIENT\"\n" },
	{ "stats", 0, 0, 0, cmd_stats,
	  "stats",
	  "Prints counts of users, mailboxes, messages and records, and the LMDB map size\n"
	  "and use. Needs no user secret.\n" },
	{ "verify", 0, 0, O_BACKUP, cmd_verify,
	  "verify [--backup DEST]",
	  "Checks every record's hash (no keys needed) and names each broken record; exit\n"
	  "status 1 if any is broken.\n\n"
	  "  --backup DEST          check the backup in DEST against its manifest instead of\n"
	  "                         the live store (needs no config).\n" },
	{ "backup", 1, 1, 0, cmd_backup,
	  "backup DEST",
	  "Hot, consistent copy of the store into directory DEST (compacted), with a\n"
	  "manifest of record hashes and a root hash; then verifies the copy. The copy\n"
	  "holds only ciphertext, like the store.\n" },
	{ "cat", 2, 2, O_PASSFD | O_MAILBOX, cmd_cat,
	  "cat NAME UID [--mailbox MAILBOX] [--passphrase-fd N]",
	  "Logs in as NAME (consuming one OTP) and writes message UID's exact bytes to\n"
	  "standard output.\n\n"
	  "  --mailbox MAILBOX      the mailbox (default INBOX)\n" PASSFD_HELP },
	{ "list", 1, 1, O_PASSFD, cmd_list,
	  "list NAME [--passphrase-fd N]",
	  "Logs in as NAME (consuming one OTP) and lists every mailbox and message:\n"
	  "  mailbox \"NAME\" id=N messages=N uidvalidity=N uidnext=N special-use=N ...\n"
	  "    uid=N size=N modseq=N date=\"...\" time=UNIX tz=+HHMM flags=(... keywords)\n"
	  "Like an IMAP session, it adopts newly delivered messages (re-wraps their data\n"
	  "keys to the current epoch's symmetric key).\n\n" PASSFD_HELP },
	{ "rewrap", 1, 1, O_PASSFD, cmd_rewrap,
	  "rewrap NAME [--passphrase-fd N]",
	  "Logs in as NAME (consuming one OTP) and re-wraps every data key still sealed\n"
	  "under an older key epoch to the current one (bodies are not re-encrypted), then\n"
	  "retires the old epochs no message references. An IMAP session does the same in\n"
	  "the background.\n\n" PASSFD_HELP },
	{ "mkdir", 2, 2, O_PASSFD, cmd_mkdir,
	  "mkdir NAME MAILBOX [--passphrase-fd N]",
	  "Logs in as NAME and creates MAILBOX (hierarchy delimiter '/'). The name is\n"
	  "stored sealed.\n\n" PASSFD_HELP },
	{ "flag", 3, MAX_ARGS, O_PASSFD | O_MAILBOX, cmd_flag,
	  "flag NAME UID [--mailbox MAILBOX] [--passphrase-fd N] [--] (+FLAG | -FLAG)...",
	  "Logs in as NAME and changes the flags of message UID: +F adds, -F removes. F is\n"
	  "a system flag (\\Seen \\Answered \\Flagged \\Deleted \\Draft) or a keyword (an\n"
	  "IMAP atom, e.g. $Label1). Put `--` before the first -F so it is not read as an\n"
	  "option. Flags are stored sealed.\n\n"
	  "  --mailbox MAILBOX      the mailbox (default INBOX)\n" PASSFD_HELP },
	{ "import", 1, 1, O_PASSFD | O_MAILBOX | O_SOURCE, cmd_import,
	  "import NAME (--maildir DIR | --mbox FILE) [--mailbox TARGET] [--passphrase-fd N]",
	  "Migration in: logs in as NAME (consuming one OTP) and stores every message of\n"
	  "a Maildir tree or an mbox file in NAME's vault, sealed as it is read (no\n"
	  "plaintext is written to disk). Line ends become CRLF, as for delivered mail.\n\n"
	  "  --maildir DIR          a Maildir (DIR/cur, DIR/new = INBOX) with its folders:\n"
	  "                         Maildir++ (Dovecot's default: DIR/.Sub.Folder is\n"
	  "                         Sub/Folder) and fs layout (DIR/Sub/Folder/cur); names\n"
	  "                         decoded from modified UTF-7. Flags from the file names\n"
	  "                         (:2,DFPRST; P becomes $Forwarded), Dovecot keywords\n"
	  "                         (dovecot-keywords), internal date = file mtime, order\n"
	  "                         from dovecot-uidlist, else by file name.\n"
	  "  --mbox FILE            an mbox (mboxrd/mboxo: one '>' is removed from\n"
	  "                         \">From \" lines); flags from Status:/X-Status:,\n"
	  "                         keywords from X-Keywords: (the fields are kept in the\n"
	  "                         message), internal date from the \"From \" line.\n"
	  "  --mailbox TARGET       mbox: the mailbox to fill (default INBOX). Maildir: the\n"
	  "                         Maildir's INBOX goes to TARGET and its folders under\n"
	  "                         TARGET/. Missing mailboxes are created and subscribed.\n"
	  PASSFD_HELP "\n"
	  "Resumable: if the import stops (killed, store full), run the same command\n"
	  "again; messages already imported are recognised and skipped, none twice. On a\n"
	  "terminal, progress is shown on standard error. Exit status 0 when every\n"
	  "message is in the vault, 1 if any could not be imported (each one is named).\n" },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void print_main_help(FILE *f)
{
	size_t i;

	fprintf(f,
	    "Usage: sealmail-vault [-c FILE] COMMAND [ARGS...]\n"
	    "The sealmail store: delivery, integrity, backup, and a few per-user commands.\n\n"
	    "  -c, --config FILE      config file (default: $SEALMAIL_CONF, else\n"
	    "                         ./sealmail.conf)\n"
	    "  -h, --help             this help; `COMMAND --help` explains a command\n\n"
	    "Commands:\n");
	for (i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %s\n", commands[i].synopsis);
	fprintf(f, "\nExit status: 0 success, 1 error (the message says what was wrong), 2 "
	    "usage error;\n`deliver` uses sysexits codes instead (see `deliver --help`).\n");
}

enum { L_PASSFD = 256, L_MAILBOX, L_BACKUP, L_MAILDIR, L_MBOX, L_FROM, L_RCPT };

static const struct option long_opts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "help", no_argument, NULL, 'h' },
	{ "passphrase-fd", required_argument, NULL, L_PASSFD },
	{ "mailbox", required_argument, NULL, L_MAILBOX },
	{ "backup", required_argument, NULL, L_BACKUP },
	{ "maildir", required_argument, NULL, L_MAILDIR },
	{ "mbox", required_argument, NULL, L_MBOX },
	{ "from", required_argument, NULL, L_FROM },
	{ "rcpt", required_argument, NULL, L_RCPT },
	{ NULL, 0, NULL, 0 },
};

static int usage_exit(const struct command *cmd)
{
	return cmd != NULL && strcmp(cmd->name, "deliver") == 0 ? EX_USAGE : CLI_EXIT_USAGE;
}

static int usage_error(const struct command *cmd)
{
	if (cmd != NULL)
		fprintf(stderr, "Usage: sealmail-vault [-c FILE] %s\n"
		    "Try `sealmail-vault %s --help`.\n", cmd->synopsis, cmd->name);
	else
		fprintf(stderr, "Try `sealmail-vault --help`.\n");
	return usage_exit(cmd);
}

int vault_cli_main(int argc, char **argv)
{
	struct ctx c;
	const struct command *cmd = NULL;
	size_t i;
	unsigned need;
	int o, first;

	cli_set_progname("sealmail-vault");
	memset(&c, 0, sizeof(c));
	c.pass_fd = -1;

	optind = 0;
	opterr = 0;	/* our own messages: getopt's would echo option values */
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
	first = optind;
	if (strcmp(argv[first], "help") == 0) {
		print_main_help(stdout);
		return CLI_EXIT_OK;
	}
	for (i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, argv[first]) == 0)
			cmd = &commands[i];
	if (cmd == NULL) {
		cli_err("unknown command: %s", argv[first]);
		return usage_error(NULL);
	}

	argc -= first;
	argv += first;
	optind = 0;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "c:h", long_opts, NULL)) != -1) {
		switch (o) {
		case 'c': c.config = optarg; need = 0; break;
		case 'h':
			printf("Usage: sealmail-vault [-c FILE] %s\n\n%s", cmd->synopsis, cmd->help);
			return CLI_EXIT_OK;
		case L_PASSFD:
			need = O_PASSFD;
			if (cli_parse_fd(optarg, &c.pass_fd) < 0) {
				/* Not echoed: someone may have put a passphrase here. */
				cli_err("--passphrase-fd takes a file descriptor number");
				return usage_error(cmd);
			}
			break;
		case L_MAILBOX: c.mailbox = optarg; need = O_MAILBOX; break;
		case L_BACKUP: c.backup = optarg; need = O_BACKUP; break;
		case L_MAILDIR: c.maildir = optarg; need = O_SOURCE; break;
		case L_MBOX: c.mbox = optarg; need = O_SOURCE; break;
		case L_FROM: c.from = optarg; need = O_TRACE; break;
		case L_RCPT: c.rcpt = optarg; need = O_TRACE; break;
		default:
			cli_getopt_error(argv, optind, optopt);
			return usage_error(cmd);
		}
		if (need != 0 && !(cmd->opts & need)) {
			cli_err("option %.*s does not apply to %s",
			    (int)strcspn(argv[optind - 1], "="), argv[optind - 1], cmd->name);
			return usage_error(cmd);
		}
	}
	for (; optind < argc; optind++) {
		if (c.nargs == cmd->max_args || c.nargs == MAX_ARGS) {
			cli_err("too many arguments for %s", cmd->name);
			return usage_error(cmd);
		}
		c.args[c.nargs++] = argv[optind];
	}
	if (c.nargs < cmd->min_args) {
		cli_err("missing argument");
		return usage_error(cmd);
	}
	return cmd->run(&c);
}
