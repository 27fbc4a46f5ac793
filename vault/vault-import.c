/* vault-import.c: `sealmail-vault import NAME (--maildir DIR | --mbox FILE)`.
 *
 * Migration in, as one user session (the passphrase + OTP unlock the keys: mail goes
 * into named folders with flags, keywords and dates, which only a session can seal).
 *
 * Plaintext never reaches the disk: each message is read into one locked (sodium)
 * batch buffer, line ends made CRLF as for every mail from outside (vault_crlf_write,
 * shared with delivery), and sealed by vault_msg_append. Up to BATCH_MSGS messages
 * (or BATCH_BYTES) go into one write transaction, short because every file was read
 * before it began.
 *
 * Resuming: every source message has an identity, a hash of (format, target mailbox,
 * Maildir unique name or mbox position, content hash). In the transaction that
 * appends the message, vault_import_mark records a keyed tag of that identity (keyed
 * with a KDF of the user's master key: nothing about the source is readable on disk). A
 * re-run skips what is marked, so an import killed at any point and run again ends
 * with every message exactly once: a batch is committed with its marks or not at all. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "vault-import.h"
#include "import.h"
#include "cli-util.h"
#include "crypto.h"
#include "sbuf.h"

#define BATCH_MSGS 100			/* messages per write transaction */
#define BATCH_BYTES (8u << 20)		/* or plaintext bytes per transaction */
#define READ_BYTES (256u * 1024)
#define META_FILE_MAX (256u << 20)	/* dovecot-uidlist, dovecot-keywords */
#define DEPTH_MAX 32			/* fs-layout folder nesting */
#define NAME_MAX_BYTES 511		/* struct vault_mailbox.name */
#define NO_UID UINT32_MAX

struct mentry {				/* one Maildir message file */
	char *name;			/* file name in cur/ or new/ */
	uint8_t sub;			/* 0 cur, 1 new */
	uint32_t uid;			/* dovecot-uidlist order, NO_UID if not listed */
	struct import_maildir_name info;
	uint64_t size;
	int64_t mtime;
};

struct folder {
	char *dir;			/* the Maildir folder (has cur/ and/or new/) */
	char *name;			/* vault mailbox name (UTF-8, '/' hierarchy) */
	char *label;			/* source folder as shown in messages */
	char *keywords[26];		/* dovecot-keywords: 'a' + i */
	struct mentry *msgs;
	size_t nmsgs, cap;
	uint32_t mbox_id;		/* resolved in a committed transaction; 0 not yet */
	uint32_t txn_mbox_id;		/* resolved in the current transaction */
	bool txn_created;
};

struct pending {			/* a message read, waiting for its transaction */
	size_t folder;
	size_t off, len;		/* in the arena */
	uint8_t ident[CRYPTO_HASH_BYTES];
	uint32_t flags, nkw;
	char *kw[VAULT_MAX_KEYWORDS];	/* malloc'd */
	int64_t date;
	int32_t tz;
	uint64_t src_bytes;
	bool skipped;
};

struct import_source {
	struct import_opts o;
	struct folder *folders;
	size_t nfolders, fcap;
	uint64_t total_msgs, total_bytes;
	int mbox_fd;
	unsigned problems;		/* folders that cannot be imported */
	/* run */
	struct vault *v;
	struct vault_keys *k;
	uint64_t max_size;
	struct sbuf *arena;		/* plaintext of the batch: locked memory */
	struct secret *rbuf;
	struct pending batch[BATCH_MSGS];
	size_t nbatch;
	struct pending *cur;		/* being read */
	size_t cur_off;
	bool cur_too_big;
	struct vault_crlf crlf;
	uint64_t cur_index, cur_offset;
	uint64_t done_msgs, done_bytes, read_bytes, imported, skipped, failed, vanished;
	unsigned created;
	double t0, last;
	bool shown;			/* a progress line is on the terminal */
};

/* ---- small helpers ------------------------------------------------------------------ */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *path_join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *p = malloc(la + lb + 2);

	if (p == NULL)
		return NULL;
	memcpy(p, a, la);
	p[la] = '/';
	memcpy(p + la + 1, b, lb + 1);
	return p;
}

static bool is_dir(const char *dir, const char *sub)
{
	struct stat st;
	char *p = path_join(dir, sub);
	bool r;

	if (p == NULL)
		return false;
	r = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
	free(p);
	return r;
}

/* Ends a progress line before a message, so the two do not mix. */
static void before_message(struct import_source *s)
{
	if (s->shown) {
		fputc('\n', stderr);
		s->shown = false;
	}
}

static void progress(struct import_source *s, bool final)
{
	double t = now_s(), el;

	if (!s->o.progress || (!final && t - s->last < 0.2))
		return;
	s->last = t;
	el = t - s->t0 > 1e-3 ? t - s->t0 : 1e-3;
	if (s->o.maildir != NULL)
		fprintf(stderr, "\rimport: %" PRIu64 "/%" PRIu64 " messages, %.1f/%.1f MB, %.0f msg/s ",
		    s->done_msgs, s->total_msgs, (double)s->done_bytes / 1e6,
		    (double)s->total_bytes / 1e6, (double)s->done_msgs / el);
	else
		fprintf(stderr, "\rimport: %" PRIu64 " messages, %.1f/%.1f MB (%d%%), %.0f msg/s ",
		    s->done_msgs, (double)s->read_bytes / 1e6, (double)s->total_bytes / 1e6,
		    s->total_bytes > 0 ? (int)(s->read_bytes * 100 / s->total_bytes) : 100,
		    (double)s->done_msgs / el);
	if (final) {
		fputc('\n', stderr);
		s->shown = false;
	} else {
		s->shown = true;
	}
	fflush(stderr);
}

/* Reads a whole small file (NUL-terminated copy). -ENOENT if it does not exist. */
static int read_small_file(const char *path, size_t max, char **out, size_t *len_out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf = NULL;
	size_t n = 0;
	int r = 0;

	*out = NULL;
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		r = -E2BIG;
		goto out;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	while (n < (size_t)st.st_size) {
		ssize_t k = read(fd, buf + n, (size_t)st.st_size - n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = -errno;
			goto out;
		}
		if (k == 0)
			break;
		n += (size_t)k;
	}
	buf[n] = '\0';
	*out = buf;
	*len_out = n;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return r;
}

/* ---- Maildir scan ------------------------------------------------------------------- */

static void folder_clear(struct folder *f)
{
	free(f->dir);
	free(f->name);
	free(f->label);
	for (int i = 0; i < 26; i++)
		free(f->keywords[i]);
	for (size_t i = 0; i < f->nmsgs; i++)
		free(f->msgs[i].name);
	free(f->msgs);
}

/* The vault name of a source folder: rel (already UTF-8, NULL for the Maildir's
 * INBOX) under the target. */
static char *vault_name(const struct import_source *s, const char *rel)
{
	const char *t = s->o.target;
	size_t n;
	char *p;

	if (rel == NULL)
		return strdup(t != NULL ? t : "INBOX");
	if (t == NULL)
		return strdup(rel);
	n = strlen(t) + strlen(rel) + 2;
	if ((p = malloc(n)) != NULL)
		snprintf(p, n, "%s/%s", t, rel);
	return p;
}

static int add_folder(struct import_source *s, const char *dir, const char *rel,
    const char *label, struct folder **out)
{
	struct folder *f;

	if (s->nfolders == s->fcap) {
		size_t nc = s->fcap ? s->fcap * 2 : 8;
		struct folder *n = realloc(s->folders, nc * sizeof(*n));

		if (n == NULL)
			return -ENOMEM;
		s->folders = n;
		s->fcap = nc;
	}
	f = &s->folders[s->nfolders];
	memset(f, 0, sizeof(*f));
	f->dir = strdup(dir);
	f->name = vault_name(s, rel);
	f->label = strdup(label);
	if (f->dir == NULL || f->name == NULL || f->label == NULL) {
		folder_clear(f);
		return -ENOMEM;
	}
	if (strlen(f->name) > NAME_MAX_BYTES) {
		cli_err("import: folder %s: the mailbox name would be longer than %d bytes; "
		    "not imported", label, NAME_MAX_BYTES);
		folder_clear(f);
		s->problems++;
		*out = NULL;
		return 0;
	}
	s->nfolders++;
	*out = f;
	return 0;
}

static void load_keywords(struct import_source *s, struct folder *f)
{
	char *path = path_join(f->dir, "dovecot-keywords"), *buf = NULL, *line, *nl;
	size_t len = 0;
	int r;

	if (path == NULL)
		return;
	r = read_small_file(path, META_FILE_MAX, &buf, &len);
	free(path);
	if (r < 0) {
		if (r != -ENOENT)
			cli_err("import: folder %s: cannot read dovecot-keywords (%s); keywords "
			    "are not imported", f->label, cli_strerror(r));
		return;
	}
	for (line = buf; line < buf + len; line = nl + 1) {
		const char *name;
		size_t nlen;
		unsigned idx;

		if ((nl = memchr(line, '\n', (size_t)(buf + len - line))) == NULL)
			nl = buf + len;
		if (import_keywords_line(line, (size_t)(nl - line), &idx, &name, &nlen) < 0)
			continue;
		if (!import_keyword_valid(name, nlen)) {
			cli_err("import: folder %s: keyword %u is not an IMAP atom; not imported",
			    f->label, idx);
			continue;
		}
		free(f->keywords[idx]);
		f->keywords[idx] = strndup(name, nlen);
	}
	free(buf);
	(void)s;
}

struct ul_entry { const char *p; size_t n; uint32_t uid; };

static int ul_cmp(const void *a, const void *b)
{
	const struct ul_entry *x = a, *y = b;
	size_t n = x->n < y->n ? x->n : y->n;
	int c = memcmp(x->p, y->p, n);

	if (c != 0)
		return c;
	return x->n < y->n ? -1 : x->n > y->n;
}

/* dovecot-uidlist gives Dovecot's UID order; messages it lists keep it. */
static void apply_uidlist(struct folder *f)
{
	char *path = path_join(f->dir, "dovecot-uidlist"), *buf = NULL, *line, *nl;
	struct ul_entry *ents = NULL;
	size_t len = 0, n = 0, cap = 0;
	unsigned version;

	if (path == NULL)
		return;
	if (read_small_file(path, META_FILE_MAX, &buf, &len) < 0)
		goto out;
	version = (unsigned)atoi(buf);
	if (version < 1 || version > 3 || (line = memchr(buf, '\n', len)) == NULL)
		goto out;
	for (line++; line < buf + len; line = nl + 1) {
		const char *name;
		size_t nlen;
		uint32_t uid;
		const char *colon;

		if ((nl = memchr(line, '\n', (size_t)(buf + len - line))) == NULL)
			nl = buf + len;
		if (import_uidlist_line(version, line, (size_t)(nl - line), &uid, &name, &nlen) < 0)
			continue;
		if ((colon = memchr(name, ':', nlen)) != NULL)
			nlen = (size_t)(colon - name);
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 256;
			struct ul_entry *ne = realloc(ents, nc * sizeof(*ne));

			if (ne == NULL)
				goto out;
			ents = ne;
			cap = nc;
		}
		ents[n].p = name;
		ents[n].n = nlen;
		ents[n].uid = uid;
		n++;
	}
	if (n == 0)
		goto out;
	qsort(ents, n, sizeof(*ents), ul_cmp);
	for (size_t i = 0; i < f->nmsgs; i++) {
		struct ul_entry key = { f->msgs[i].name, f->msgs[i].info.base_len, 0 };
		struct ul_entry *e = bsearch(&key, ents, n, sizeof(*ents), ul_cmp);

		if (e != NULL)
			f->msgs[i].uid = e->uid;
	}
out:
	free(ents);
	free(buf);
	free(path);
}

static int msg_cmp(const void *a, const void *b)
{
	const struct mentry *x = a, *y = b;

	if (x->uid != y->uid)
		return x->uid < y->uid ? -1 : 1;	/* listed ones (UID order) first */
	if (x->info.timestamp != y->info.timestamp)
		return x->info.timestamp < y->info.timestamp ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int scan_sub(struct import_source *s, struct folder *f, uint8_t sub)
{
	char *path = path_join(f->dir, sub == 0 ? "cur" : "new");
	DIR *d = NULL;
	struct dirent *de;
	int r = 0;

	if (path == NULL)
		return -ENOMEM;
	if ((d = opendir(path)) == NULL) {
		r = errno == ENOENT ? 0 : -errno;
		if (r < 0)
			cli_err("import: %s: %s", path, strerror(-r));
		goto out;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		struct mentry *m;
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (f->nmsgs == f->cap) {
			size_t nc = f->cap ? f->cap * 2 : 64;
			struct mentry *n = realloc(f->msgs, nc * sizeof(*n));

			if (n == NULL) {
				r = -ENOMEM;
				goto out;
			}
			f->msgs = n;
			f->cap = nc;
		}
		m = &f->msgs[f->nmsgs];
		memset(m, 0, sizeof(*m));
		if (import_maildir_name(de->d_name, strlen(de->d_name), &m->info) < 0)
			continue;
		if ((m->name = strdup(de->d_name)) == NULL) {
			r = -ENOMEM;
			goto out;
		}
		m->sub = sub;
		m->uid = NO_UID;
		m->size = (uint64_t)st.st_size;
		m->mtime = (int64_t)st.st_mtime;
		f->nmsgs++;
		s->total_msgs++;
		s->total_bytes += m->size;
	}
	if (errno != 0) {
		r = -errno;
		cli_err("import: %s: %s", path, strerror(-r));
	}
out:
	if (d != NULL)
		closedir(d);
	free(path);
	return r;
}

static int scan_folder(struct import_source *s, const char *dir, const char *rel,
    const char *label)
{
	struct folder *f = NULL;
	int r;

	if ((r = add_folder(s, dir, rel, label, &f)) < 0 || f == NULL)
		return r;
	load_keywords(s, f);
	if ((r = scan_sub(s, f, 0)) < 0 || (r = scan_sub(s, f, 1)) < 0)
		return r;
	apply_uidlist(f);
	if (f->nmsgs > 1)
		qsort(f->msgs, f->nmsgs, sizeof(*f->msgs), msg_cmp);
	return 0;
}

/* A Maildir++ folder ".A.B" (Dovecot's default layout, '.' separator): "A/B", each
 * level decoded from modified UTF-7. */
static int decode_levels(const char *enc, char sep, char *out, size_t cap)
{
	size_t o = 0;
	const char *p = enc;

	for (;;) {
		const char *e = strchr(p, sep);
		size_t n = e != NULL ? (size_t)(e - p) : strlen(p), l;
		int r;

		if (n == 0)
			return -EPROTO;
		if (o > 0) {
			if (o + 1 >= cap)
				return -E2BIG;
			out[o++] = '/';
		}
		if ((r = import_name_decode(p, n, out + o, cap - o)) < 0)
			return r;
		l = strlen(out + o);
		/* A '/' inside one level would change the hierarchy in the vault. */
		if (memchr(out + o, '/', l) != NULL)
			return -EPROTO;
		o += l;
		if (e == NULL)
			break;
		p = e + 1;
	}
	return 0;
}

static int scan_fs(struct import_source *s, const char *path, const char *rel, int depth)
{
	struct dirent **ents = NULL;
	int n, r = 0;

	if (rel != NULL && (is_dir(path, "cur") || is_dir(path, "new"))) {
		char name[NAME_MAX_BYTES + 1];

		if (decode_levels(rel, '/', name, sizeof(name)) < 0) {
			cli_err("import: folder %s: its name is not valid modified UTF-7 "
			    "(RFC 3501 5.1.3); not imported", rel);
			s->problems++;
		} else if ((r = scan_folder(s, path, name, rel)) < 0) {
			return r;
		}
	}
	if (depth >= DEPTH_MAX)
		return 0;
	if ((n = scandir(path, &ents, NULL, alphasort)) < 0)
		return 0;
	for (int i = 0; i < n; i++) {
		const char *e = ents[i]->d_name;
		char *sub = NULL, *srel = NULL;

		if (r < 0 || e[0] == '.' || strcmp(e, "cur") == 0 || strcmp(e, "new") == 0 ||
		    strcmp(e, "tmp") == 0 || !is_dir(path, e))
			goto next;
		if ((sub = path_join(path, e)) == NULL ||
		    (srel = rel != NULL ? path_join(rel, e) : strdup(e)) == NULL) {
			r = -ENOMEM;
			goto next;
		}
		r = scan_fs(s, sub, srel, depth + 1);
next:
		free(sub);
		free(srel);
		free(ents[i]);
	}
	free(ents);
	return r;
}

static int scan_maildir(struct import_source *s)
{
	const char *dir = s->o.maildir;
	struct dirent **ents = NULL;
	struct stat st;
	int n, r = 0;

	if (stat(dir, &st) < 0) {
		r = -errno;
		cli_err("import: %s: %s", dir, strerror(-r));
		return r;
	}
	if (!S_ISDIR(st.st_mode)) {
		cli_err("import: %s: not a directory", dir);
		return -ENOTDIR;
	}
	if (access(dir, R_OK | X_OK) < 0) {
		cli_err("import: %s: %s", dir, strerror(errno));
		return -errno;
	}
	if ((is_dir(dir, "cur") || is_dir(dir, "new")) &&
	    (r = scan_folder(s, dir, NULL, ".")) < 0)
		return r;
	/* Maildir++ folders: .A.B */
	if ((n = scandir(dir, &ents, NULL, alphasort)) < 0) {
		cli_err("import: %s: %s", dir, strerror(errno));
		return -errno;
	}
	for (int i = 0; i < n; i++) {
		const char *e = ents[i]->d_name;
		char *path = NULL;
		char name[NAME_MAX_BYTES + 1];

		if (r < 0 || e[0] != '.' || strcmp(e, ".") == 0 || strcmp(e, "..") == 0)
			goto next;
		if ((path = path_join(dir, e)) == NULL) {
			r = -ENOMEM;
			goto next;
		}
		if (!is_dir(path, "cur") && !is_dir(path, "new"))
			goto next;
		if (decode_levels(e + 1, '.', name, sizeof(name)) < 0) {
			cli_err("import: folder %s: its name is not valid modified UTF-7 "
			    "(RFC 3501 5.1.3) or has an empty level; not imported", e);
			s->problems++;
			goto next;
		}
		r = scan_folder(s, path, name, e);
next:
		free(path);
		free(ents[i]);
	}
	free(ents);
	if (r < 0)
		return r;
	/* Dovecot's fs layout (and plain nested Maildirs): DIR/A/B/{cur,new} */
	if ((r = scan_fs(s, dir, NULL, 0)) < 0)
		return r;
	if (s->nfolders == 0 && s->problems == 0) {
		cli_err("import: %s: no Maildir there (no cur/ or new/ in it or its folders)", dir);
		return -ENOENT;
	}
	return 0;
}

int import_source_open(const struct import_opts *o, struct import_source **out)
{
	struct import_source *s;
	int r = 0;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		cli_err("out of memory");
		return -ENOMEM;
	}
	s->o = *o;
	s->mbox_fd = -1;
	if (o->maildir != NULL) {
		r = scan_maildir(s);
	} else {
		struct stat st;
		struct folder *f = NULL;

		if ((s->mbox_fd = open(o->mbox, O_RDONLY | O_CLOEXEC)) < 0) {
			r = -errno;
			cli_err("import: %s: %s", o->mbox, strerror(-r));
		} else if (fstat(s->mbox_fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			r = -EINVAL;
			cli_err("import: %s: not a regular file", o->mbox);
		} else {
			s->total_bytes = (uint64_t)st.st_size;
			if ((r = add_folder(s, o->mbox, NULL, o->mbox, &f)) == 0 && f == NULL)
				r = -EINVAL;
		}
	}
	if (r < 0) {
		if (r == -ENOMEM)
			cli_err("out of memory");
		import_source_free(&s);
		return r;
	}
	*out = s;
	return 0;
}

void import_source_free(struct import_source **sp)
{
	struct import_source *s = *sp;

	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nfolders; i++)
		folder_clear(&s->folders[i]);
	free(s->folders);
	for (size_t i = 0; i < BATCH_MSGS; i++)
		for (uint32_t j = 0; j < s->batch[i].nkw; j++)
			free(s->batch[i].kw[j]);
	if (s->mbox_fd >= 0)
		close(s->mbox_fd);
	sbuf_free(&s->arena);
	secret_free(&s->rbuf);
	free(s);
	*sp = NULL;
}

/* ---- committing a batch ------------------------------------------------------------- */

static int resolve_folder(struct vault_txn *t, struct import_source *s, struct folder *f)
{
	struct vault_mailbox mb;
	int r;

	if (f->txn_mbox_id != 0)
		return 0;
	if (strcasecmp(f->name, "INBOX") == 0) {
		f->txn_mbox_id = VAULT_INBOX_ID;
		return 0;
	}
	r = vault_mailbox_find(t, s->k, f->name, &mb);
	if (r == 0) {
		f->txn_mbox_id = mb.id;
		return 0;
	}
	if (r != VAULT_ERR_NOMBOX)
		return r;
	if ((r = vault_mailbox_create(t, s->k, f->name, VAULT_SU_NONE, &f->txn_mbox_id)) < 0)
		return r;
	f->txn_created = true;
	/* Clients show subscribed folders: a migrated folder should be visible. */
	return vault_subscribe(t, s->k, f->name, true);
}

static int batch_txn(struct vault_txn *t, void *arg)
{
	struct import_source *s = arg;
	uint8_t idents[BATCH_MSGS][CRYPTO_HASH_BYTES];
	bool already[BATCH_MSGS];
	struct vault_msg_meta meta;
	int r;

	for (size_t i = 0; i < s->nfolders; i++) {
		s->folders[i].txn_mbox_id = s->folders[i].mbox_id;
		s->folders[i].txn_created = false;
	}
	for (size_t i = 0; i < s->nbatch; i++)
		memcpy(idents[i], s->batch[i].ident, CRYPTO_HASH_BYTES);
	/* Marked in this transaction: committed with the messages, or not at all. */
	if ((r = vault_import_mark(t, s->k, &idents[0][0], CRYPTO_HASH_BYTES, s->nbatch,
	    already)) < 0)
		return r;
	for (size_t i = 0; i < s->nbatch; i++) {
		struct pending *p = &s->batch[i];
		struct folder *f = &s->folders[p->folder];

		if ((p->skipped = already[i]))
			continue;
		if ((r = resolve_folder(t, s, f)) < 0)
			return r;
		memset(&meta, 0, sizeof(meta));
		meta.flags = p->flags;
		meta.nkeywords = p->nkw;
		memcpy(meta.keywords, p->kw, sizeof(char *) * p->nkw);
		meta.internal_date = p->date;
		meta.internal_tz = p->tz;
		if ((r = vault_msg_append(t, s->k, f->txn_mbox_id, s->arena->d + p->off, p->len,
		    &meta, NULL)) < 0)
			return r;
	}
	return 0;
}

static int flush(struct import_source *s)
{
	int r;

	if (s->nbatch == 0)
		return 0;
	/* batch_txn resets everything it sets from the txn: a map-growth replay is safe. */
	if ((r = vault_write(s->v, batch_txn, s)) < 0) {
		before_message(s);
		if (r == VAULT_ERR_FULL)
			cli_err("import: the store is full (map_max reached); what was imported so "
			    "far is kept, raise map_max and run the same command again");
		else
			cli_err("import: cannot store messages: %s; what was imported so far is "
			    "kept, run the same command again to resume", cli_strerror(r));
		return r;
	}
	for (size_t i = 0; i < s->nfolders; i++) {
		s->folders[i].mbox_id = s->folders[i].txn_mbox_id;
		if (s->folders[i].txn_created)
			s->created++;
	}
	for (size_t i = 0; i < s->nbatch; i++) {
		struct pending *p = &s->batch[i];

		if (p->skipped)
			s->skipped++;
		else
			s->imported++;
		s->done_msgs++;
		s->done_bytes += p->src_bytes;
		for (uint32_t j = 0; j < p->nkw; j++)
			free(p->kw[j]);
		p->nkw = 0;
	}
	s->nbatch = 0;
	sbuf_reset(s->arena);	/* wipes the plaintext */
	progress(s, false);
	return 0;
}

/* ---- reading messages --------------------------------------------------------------- */

static int arena_put(void *arg, const uint8_t *p, size_t n)
{
	struct import_source *s = arg;

	if (s->arena->len - s->cur_off + n > s->max_size)
		return -E2BIG;
	return sbuf_put(s->arena, p, n);
}

/* Drops the bytes of the message being read (wiped). */
static void arena_truncate(struct import_source *s)
{
	if (s->arena->len > s->cur_off)
		crypto_wipe(s->arena->d + s->cur_off, s->arena->len - s->cur_off);
	s->arena->len = s->cur_off;
}

static struct pending *pending_new(struct import_source *s, size_t folder)
{
	struct pending *p = &s->batch[s->nbatch];

	for (uint32_t j = 0; j < p->nkw; j++)
		free(p->kw[j]);
	memset(p, 0, sizeof(*p));
	p->folder = folder;
	p->off = s->cur_off = s->arena->len;
	s->crlf.prev_cr = false;
	s->cur_too_big = false;
	return p;
}

static int add_keyword(struct pending *p, const char *name, size_t n)
{
	for (uint32_t i = 0; i < p->nkw; i++)
		if (strlen(p->kw[i]) == n && strncasecmp(p->kw[i], name, n) == 0)
			return 0;
	if (p->nkw == VAULT_MAX_KEYWORDS)
		return 0;
	if ((p->kw[p->nkw] = strndup(name, n)) == NULL)
		return -ENOMEM;
	p->nkw++;
	return 0;
}

/* The message's identity: what a re-run must recognise (see the top of the file). */
static void make_ident(struct pending *p, const struct import_source *s, char kind,
    const struct folder *f, const void *key, size_t klen)
{
	struct crypto_hash_state h;
	uint8_t content[CRYPTO_HASH_BYTES];
	static const char tag[] = "sealmail-import/v1";

	crypto_hash(s->arena->d + p->off, p->len, content);
	crypto_hash_init(&h);
	crypto_hash_update(&h, (const uint8_t *)tag, sizeof(tag));
	crypto_hash_update(&h, (const uint8_t *)&kind, 1);
	crypto_hash_update(&h, (const uint8_t *)f->name, strlen(f->name) + 1);
	crypto_hash_update(&h, key, klen);
	crypto_hash_update(&h, content, sizeof(content));
	crypto_hash_final(&h, p->ident);
	crypto_wipe(content, sizeof(content));
}

static int32_t local_tz(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	return localtime_r(&tt, &tm) != NULL ? (int32_t)(tm.tm_gmtoff / 60) : 0;
}

/* The file was renamed since the scan (a live Maildir: a flag changed): find it by its
 * unique name in cur/ or new/. 1 found (m updated), 0 gone, -errno. */
static int relocate(struct folder *f, struct mentry *m)
{
	for (uint8_t sub = 0; sub < 2; sub++) {
		char *path = path_join(f->dir, sub == 0 ? "cur" : "new");
		DIR *d = path != NULL ? opendir(path) : NULL;
		struct dirent *de;

		free(path);
		if (d == NULL)
			continue;
		while ((de = readdir(d)) != NULL) {
			struct import_maildir_name info;
			char *nn;

			if (import_maildir_name(de->d_name, strlen(de->d_name), &info) < 0 ||
			    info.base_len != m->info.base_len ||
			    memcmp(de->d_name, m->name, info.base_len) != 0)
				continue;
			if ((nn = strdup(de->d_name)) == NULL) {
				closedir(d);
				return -ENOMEM;
			}
			free(m->name);
			m->name = nn;
			m->sub = sub;
			m->info = info;
			closedir(d);
			return 1;
		}
		closedir(d);
	}
	return 0;
}

static int open_msg(struct folder *f, struct mentry *m)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		char *dir = path_join(f->dir, m->sub == 0 ? "cur" : "new");
		char *path = dir != NULL ? path_join(dir, m->name) : NULL;
		int fd, r;

		free(dir);
		if (path == NULL)
			return -ENOMEM;
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		r = -errno;
		free(path);
		if (fd >= 0)
			return fd;
		if (r != -ENOENT)
			return r;
		if ((r = relocate(f, m)) <= 0)
			return r < 0 ? r : -ENOENT;
	}
	return -ENOENT;
}

static int maildir_msg(struct import_source *s, size_t fi, struct mentry *m)
{
	struct folder *f = &s->folders[fi];
	struct pending *p;
	struct stat st;
	int fd, r;

	if ((fd = open_msg(f, m)) < 0) {
		before_message(s);
		if (fd == -ENOENT) {
			/* Expunged at the source since the scan: nothing to migrate. */
			s->vanished++;
			s->done_msgs++;
			return 0;
		}
		cli_err("import: %s/%s/%s: %s; not imported", f->label, m->sub ? "new" : "cur",
		    m->name, strerror(-fd));
		s->failed++;
		return 0;
	}
	p = pending_new(s, fi);
	if (fstat(fd, &st) == 0 && (uint64_t)st.st_size > s->max_size) {
		r = -E2BIG;
		goto bad;
	}
	for (;;) {
		ssize_t n = read(fd, s->rbuf->p, s->rbuf->len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto bad;
		}
		if (n == 0)
			break;
		p->src_bytes += (uint64_t)n;
		if ((r = vault_crlf_write(&s->crlf, s->rbuf->p, (size_t)n, arena_put, s)) < 0)
			goto bad;
	}
	close(fd);
	fd = -1;
	p->len = s->arena->len - p->off;
	p->flags = m->info.flags;
	for (int i = 0; i < 26; i++) {
		if (!(m->info.keyword_bits & (1u << i)) || f->keywords[i] == NULL)
			continue;
		if ((r = add_keyword(p, f->keywords[i], strlen(f->keywords[i]))) < 0)
			goto bad;
	}
	if (m->info.passed && (r = add_keyword(p, "$Forwarded", 10)) < 0)
		goto bad;
	p->date = m->mtime;
	p->tz = local_tz(m->mtime);
	make_ident(p, s, 'M', f, m->name, m->info.base_len);
	s->nbatch++;
	if (s->nbatch == BATCH_MSGS || s->arena->len >= BATCH_BYTES)
		return flush(s);
	progress(s, false);
	return 0;
bad:
	if (fd >= 0)
		close(fd);
	arena_truncate(s);
	if (r == -ENOMEM) {
		cli_err("out of memory");
		return r;
	}
	before_message(s);
	if (r == -E2BIG)
		cli_err("import: %s/%s/%s: over max_message_size (%" PRIu64 " bytes); not imported",
		    f->label, m->sub ? "new" : "cur", m->name, s->max_size);
	else
		cli_err("import: %s/%s/%s: %s; not imported", f->label, m->sub ? "new" : "cur",
		    m->name, strerror(-r));
	s->failed++;
	s->done_msgs++;
	return 0;
}

/* ---- mbox --------------------------------------------------------------------------- */

static int mb_begin(void *arg, const struct import_mbox_msg *m)
{
	struct import_source *s = arg;

	s->cur = pending_new(s, 0);
	s->cur->date = m->date;
	s->cur->tz = m->tz;
	s->cur_index = m->index;
	s->cur_offset = m->offset;
	return 0;
}

static int mb_data(void *arg, const uint8_t *p, size_t n)
{
	struct import_source *s = arg;
	int r;

	s->cur->src_bytes += n;
	if (s->cur_too_big)
		return 0;
	r = vault_crlf_write(&s->crlf, p, n, arena_put, s);
	if (r == -E2BIG) {
		s->cur_too_big = true;
		arena_truncate(s);
		return 0;
	}
	return r;
}

static int mb_keyword(void *arg, const char *name, size_t n)
{
	return add_keyword(arg, name, n);
}

static int mb_end(void *arg)
{
	struct import_source *s = arg;
	struct pending *p = s->cur;
	uint8_t key[16];
	int r;

	s->cur = NULL;
	if (s->cur_too_big) {
		before_message(s);
		cli_err("import: %s: message %" PRIu64 " (From line at byte %" PRIu64 "): over "
		    "max_message_size (%" PRIu64 " bytes); not imported", s->o.mbox,
		    s->cur_index + 1, s->cur_offset, s->max_size);
		s->failed++;
		s->done_msgs++;
		return 0;
	}
	p->len = s->arena->len - p->off;
	if ((r = import_mbox_status(s->arena->d + p->off, p->len, &p->flags, mb_keyword, p)) < 0)
		return r;
	for (int i = 0; i < 8; i++) {
		key[i] = (uint8_t)(s->cur_index >> (56 - 8 * i));
		key[8 + i] = (uint8_t)(s->cur_offset >> (56 - 8 * i));
	}
	make_ident(p, s, 'B', &s->folders[0], key, sizeof(key));
	s->nbatch++;
	if (s->nbatch == BATCH_MSGS || s->arena->len >= BATCH_BYTES)
		return flush(s);
	progress(s, false);
	return 0;
}

static const struct import_mbox_ops mbox_ops = { mb_begin, mb_data, mb_end };

static int run_mbox(struct import_source *s)
{
	struct import_mbox mp;
	int r;

	import_mbox_init(&mp, &mbox_ops, s);
	for (;;) {
		ssize_t n = read(s->mbox_fd, s->rbuf->p, s->rbuf->len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			before_message(s);
			cli_err("import: %s: %s", s->o.mbox, strerror(-r));
			return r;
		}
		if (n == 0)
			break;
		s->read_bytes += (uint64_t)n;
		if ((r = import_mbox_feed(&mp, s->rbuf->p, (size_t)n)) < 0)
			goto fail;
	}
	if ((r = import_mbox_finish(&mp)) < 0)
		goto fail;
	return 0;
fail:
	if (r == -EPROTO) {
		before_message(s);
		cli_err("import: %s: does not start with a \"From \" line: not an mbox file",
		    s->o.mbox);
	} else if (r == -ENOMEM) {
		cli_err("out of memory");
	}
	/* Store errors were reported by flush. */
	return r;
}

int import_source_run(struct import_source *s, struct vault *v, struct vault_keys *k,
    const struct vault_config *cfg)
{
	int r = 0;

	s->v = v;
	s->k = k;
	s->max_size = cfg->max_message_size;
	if ((r = sbuf_new_secure(BATCH_BYTES + s->max_size + 64, &s->arena)) < 0 ||
	    (r = secret_new(READ_BYTES, &s->rbuf)) < 0) {
		cli_err("out of memory");
		return CLI_EXIT_ERR;
	}
	s->t0 = s->last = now_s();
	if (s->o.maildir != NULL) {
		for (size_t fi = 0; fi < s->nfolders && r == 0; fi++)
			for (size_t i = 0; i < s->folders[fi].nmsgs && r == 0; i++)
				r = maildir_msg(s, fi, &s->folders[fi].msgs[i]);
	} else {
		r = run_mbox(s);
	}
	if (r == 0)
		r = flush(s);
	if (s->shown || (s->o.progress && r == 0))
		progress(s, true);
	printf("%s %" PRIu64 " message%s into %s: %" PRIu64 " imported now, %" PRIu64
	    " already there from an earlier run (skipped), %u folder%s created\n",
	    r == 0 ? "Imported" : "Interrupted after", s->imported + s->skipped,
	    s->imported + s->skipped == 1 ? "" : "s", s->o.user, s->imported, s->skipped,
	    s->created, s->created == 1 ? "" : "s");
	if (s->vanished > 0)
		printf("%" PRIu64 " message%s disappeared from the source during the import "
		    "(expunged there)\n", s->vanished, s->vanished == 1 ? "" : "s");
	if (s->failed > 0 || s->problems > 0)
		printf("Not imported: %" PRIu64 " message%s and %u folder%s (see the errors above)\n",
		    s->failed, s->failed == 1 ? "" : "s", s->problems,
		    s->problems == 1 ? "" : "s");
	fflush(stdout);
	return r == 0 && s->failed == 0 && s->problems == 0 ? CLI_EXIT_OK : CLI_EXIT_ERR;
}
