/* backup.c: hot, consistent, compacted copies and their manifest.
 *
 * DEST/data.mdb is mdb_env_copy2(MDB_CP_COMPACT) of the live environment (one read
 * txn: a consistent snapshot while deliveries go on). DEST/MANIFEST is then built
 * from the copy itself:
 *     sealmail-backup-manifest 1
 *     <db> <key hex> <record hash hex>      (every record, db then key order)
 *     root <BLAKE2b hex of every line above, newlines included>
 * vault_verify_backup opens the copy read-only and checks every record against its
 * own hash and against the manifest (missing, extra, changed), and the root.
 * The copy is opened with MDB_NOLOCK: it is a file at rest, never a live store, and
 * the backup directory may be read-only. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "vault-private.h"
#include "log.h"

#define MANIFEST_MAGIC "sealmail-backup-manifest 1\n"
#define KEY_MAX 511

struct bk_env {
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi[VDB_COUNT];
	bool present[VDB_COUNT];
};

static void bk_close(struct bk_env *b)
{
	if (b->txn != NULL)
		mdb_txn_abort(b->txn);
	if (b->env != NULL)
		mdb_env_close(b->env);
	memset(b, 0, sizeof(*b));
}

static int bk_open(const char *dir, struct bk_env *b)
{
	int rc;

	memset(b, 0, sizeof(*b));
	if ((rc = mdb_env_create(&b->env)) != 0)
		return -ENOMEM;
	if ((rc = mdb_env_set_maxdbs(b->env, VDB_COUNT + 2)) != 0 ||
	    (rc = mdb_env_open(b->env, dir, MDB_RDONLY | MDB_NOLOCK, 0600)) != 0 ||
	    (rc = mdb_txn_begin(b->env, NULL, MDB_RDONLY, &b->txn)) != 0)
		goto fail;
	for (int i = 0; i < VDB_COUNT; i++) {
		rc = mdb_dbi_open(b->txn, vault_db_names[i], 0, &b->dbi[i]);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc != 0)
			goto fail;
		b->present[i] = true;
	}
	return 0;
fail:
	log_warn("vault: cannot open backup %s: %s", dir, mdb_strerror(rc));
	bk_close(b);
	return rc > 0 ? -rc : VAULT_ERR_CORRUPT;
}

struct mf_write {
	FILE *f;
	struct crypto_hash_state h;
	int broken;
};

static int mf_line(enum vdb db, const MDB_val *k, const MDB_val *d, void *arg)
{
	struct mf_write *w = arg;
	char kh[2 * KEY_MAX + 1], hh[2 * VAULT_REC_HASH + 1], line[sizeof(kh) + sizeof(hh) + 32];
	int n;

	if (k->mv_size > KEY_MAX || d->mv_size < VAULT_REC_OVERHEAD)
		return VAULT_ERR_CORRUPT;
	if (vault_record_check(vault_db_names[db], k->mv_data, k->mv_size, d->mv_data,
	    d->mv_size) != 0)
		w->broken++;
	if (crypto_hex_encode(k->mv_data, k->mv_size, kh, sizeof(kh)) < 0 ||
	    crypto_hex_encode((const uint8_t *)d->mv_data + d->mv_size - VAULT_REC_HASH,
	    VAULT_REC_HASH, hh, sizeof(hh)) < 0)
		return -EINVAL;
	n = snprintf(line, sizeof(line), "%s %s %s\n", vault_db_names[db], kh, hh);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -E2BIG;
	crypto_hash_update(&w->h, (const uint8_t *)line, (size_t)n);
	if (fwrite(line, 1, (size_t)n, w->f) != (size_t)n)
		return -EIO;
	return 0;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		r = -errno;
	close(fd);
	return r;
}

int vault_backup(struct vault *v, const char *dest_dir)
{
	char path[4300], tmp[4300];
	struct bk_env b;
	struct mf_write w;
	uint8_t root[CRYPTO_HASH_BYTES];
	char rh[2 * CRYPTO_HASH_BYTES + 1];
	struct stat st;
	int r, rc, n, fd = -1;

	memset(&w, 0, sizeof(w));
	memset(&b, 0, sizeof(b));
	if (mkdir(dest_dir, 0700) != 0 && errno != EEXIST)
		return -errno;
	n = snprintf(path, sizeof(path), "%s/data.mdb", dest_dir);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	if (stat(path, &st) == 0)
		return -EEXIST;	/* never overwrite an earlier backup */
	if ((rc = mdb_env_copy2(v->env, dest_dir, MDB_CP_COMPACT)) != 0) {
		log_warn("vault: backup copy to %s failed: %s", dest_dir, mdb_strerror(rc));
		return rc > 0 ? -rc : -EIO;
	}
	if ((r = bk_open(dest_dir, &b)) < 0)
		return r;
	n = snprintf(tmp, sizeof(tmp), "%s/MANIFEST.tmp", dest_dir);
	if (n < 0 || (size_t)n >= sizeof(tmp) ||
	    snprintf(path, sizeof(path), "%s/MANIFEST", dest_dir) >= (int)sizeof(path)) {
		r = -ENAMETOOLONG;
		goto out;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0 ||
	    (w.f = fdopen(fd, "w")) == NULL) {
		r = -errno;
		goto out;
	}
	fd = -1;
	crypto_hash_init(&w.h);
	crypto_hash_update(&w.h, (const uint8_t *)MANIFEST_MAGIC, strlen(MANIFEST_MAGIC));
	fputs(MANIFEST_MAGIC, w.f);
	if ((r = store_walk(b.txn, b.dbi, b.present, mf_line, &w)) != 0)
		goto out;
	crypto_hash_final(&w.h, root);
	if ((r = crypto_hex_encode(root, sizeof(root), rh, sizeof(rh))) < 0)
		goto out;
	fprintf(w.f, "root %s\n", rh);
	if (fflush(w.f) != 0 || fsync(fileno(w.f)) != 0) {
		r = -errno;
		goto out;
	}
	if (fclose(w.f) != 0) {
		w.f = NULL;
		r = -EIO;
		goto out;
	}
	w.f = NULL;
	if (rename(tmp, path) != 0) {
		r = -errno;
		goto out;
	}
	r = fsync_dir(dest_dir);
	if (w.broken > 0)
		log_warn("vault: backup %s: %d records were already corrupt in the store "
		    "(run sealmail-vault verify)", dest_dir, w.broken);
out:
	if (w.f != NULL)
		fclose(w.f);
	if (fd >= 0)
		close(fd);
	bk_close(&b);
	return r;
}

/* ---- verification ----------------------------------------------------------------- */
struct mf_entry {
	int db;				/* -1: end of records */
	uint8_t key[KEY_MAX];
	size_t klen;
	uint8_t hash[VAULT_REC_HASH];
};

struct mf_read {
	FILE *f;
	struct crypto_hash_state h;
	char *line;
	size_t cap;
	unsigned lineno;
	bool have_root;
	uint8_t root[CRYPTO_HASH_BYTES];
	struct mf_entry cur;		/* next manifest entry (cur.db == -1 at end) */
	void (*report)(const char *what, void *arg);
	void *arg;
	int broken;
	bool fatal;
};

/* Reports "what: detail". */
static void mreport(struct mf_read *m, const char *what, const char *detail)
{
	char line[400];

	snprintf(line, sizeof(line), "%s: %s", what, detail);
	m->broken++;
	if (m->report != NULL)
		m->report(line, m->arg);
}

/* Reads the next entry (or the root line). */
static void mf_next(struct mf_read *m)
{
	ssize_t n;

	m->cur.db = -1;
	if (m->have_root || m->fatal)
		return;
	for (;;) {
		char *sp1, *sp2;

		if ((n = getline(&m->line, &m->cap, m->f)) <= 0) {
			mreport(m, "MANIFEST", "truncated (no root line)");
			m->fatal = true;
			return;
		}
		m->lineno++;
		if (strncmp(m->line, "root ", 5) == 0) {
			if (n != 5 + 2 * CRYPTO_HASH_BYTES + 1 ||
			    crypto_hex_decode(m->line + 5, 2 * CRYPTO_HASH_BYTES, m->root,
			    sizeof(m->root)) < 0) {
				mreport(m, "MANIFEST", "malformed root line");
				m->fatal = true;
				return;
			}
			m->have_root = true;
			if (getline(&m->line, &m->cap, m->f) > 0)
				mreport(m, "MANIFEST", "data after the root line");
			return;
		}
		crypto_hash_update(&m->h, (const uint8_t *)m->line, (size_t)n);
		if (n < 2 || m->line[n - 1] != '\n')
			goto bad;
		m->line[n - 1] = '\0';
		if ((sp1 = strchr(m->line, ' ')) == NULL || (sp2 = strchr(sp1 + 1, ' ')) == NULL)
			goto bad;
		*sp1 = '\0';
		*sp2 = '\0';
		for (int i = 0; i < VDB_COUNT; i++)
			if (strcmp(m->line, vault_db_names[i]) == 0)
				m->cur.db = i;
		if (m->cur.db < 0 || strlen(sp1 + 1) % 2 != 0 || strlen(sp1 + 1) / 2 > KEY_MAX ||
		    strlen(sp2 + 1) != 2 * VAULT_REC_HASH ||
		    crypto_hex_decode(sp1 + 1, strlen(sp1 + 1), m->cur.key, sizeof(m->cur.key)) < 0 ||
		    crypto_hex_decode(sp2 + 1, strlen(sp2 + 1), m->cur.hash, sizeof(m->cur.hash)) < 0) {
			m->cur.db = -1;
			goto bad;
		}
		m->cur.klen = strlen(sp1 + 1) / 2;
		return;
bad:
		{
			char ln[32];

			snprintf(ln, sizeof(ln), "MANIFEST line %u", m->lineno);
			mreport(m, ln, "malformed");
		}
	}
}

/* LMDB's default order: memcmp over the shorter length, then the shorter first. */
static int key_cmp(int da, const uint8_t *ka, size_t la, int db, const uint8_t *kb, size_t lb)
{
	int c;

	if (da != db)
		return da < db ? -1 : 1;
	c = memcmp(ka, kb, la < lb ? la : lb);
	if (c != 0)
		return c;
	return la < lb ? -1 : la > lb ? 1 : 0;
}

static void report_entry(struct mf_read *m, int db, const uint8_t *k, size_t kl, const char *what)
{
	char name[200];

	record_name((enum vdb)db, k, kl, name, sizeof(name));
	mreport(m, name, what);
}

static int mf_check(enum vdb db, const MDB_val *k, const MDB_val *d, void *arg)
{
	struct mf_read *m = arg;
	int c;

	if (vault_record_check(vault_db_names[db], k->mv_data, k->mv_size, d->mv_data,
	    d->mv_size) != 0)
		report_entry(m, db, k->mv_data, k->mv_size, "record hash mismatch (corrupt)");
	for (;;) {
		c = m->cur.db < 0 ? -1 : key_cmp((int)db, k->mv_data, k->mv_size, m->cur.db,
		    m->cur.key, m->cur.klen);
		if (c > 0) {	/* the manifest lists a record the copy lacks */
			report_entry(m, m->cur.db, m->cur.key, m->cur.klen,
			    "in the manifest, missing from the backup");
			mf_next(m);
			continue;
		}
		break;
	}
	if (c < 0) {
		report_entry(m, db, k->mv_data, k->mv_size, "in the backup, not in the manifest");
		return 0;
	}
	if (d->mv_size < VAULT_REC_HASH || !crypto_memeq(m->cur.hash,
	    (const uint8_t *)d->mv_data + d->mv_size - VAULT_REC_HASH, VAULT_REC_HASH))
		report_entry(m, db, k->mv_data, k->mv_size, "differs from the manifest");
	mf_next(m);
	return 0;
}

int vault_verify_backup(const char *dest_dir, void (*report)(const char *what, void *arg),
    void *arg)
{
	char path[4300];
	char magic[64];
	struct bk_env b;
	struct mf_read m;
	uint8_t root[CRYPTO_HASH_BYTES];
	int r, n;

	memset(&m, 0, sizeof(m));
	m.report = report;
	m.arg = arg;
	n = snprintf(path, sizeof(path), "%s/MANIFEST", dest_dir);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	if ((m.f = fopen(path, "re")) == NULL)
		return -errno;
	if (fgets(magic, sizeof(magic), m.f) == NULL || strcmp(magic, MANIFEST_MAGIC) != 0) {
		fclose(m.f);
		mreport(&m, "MANIFEST", "not a sealmail backup manifest");
		return m.broken;
	}
	if ((r = bk_open(dest_dir, &b)) < 0) {
		fclose(m.f);
		mreport(&m, "data.mdb", "cannot be opened (damaged)");
		return m.broken;
	}
	crypto_hash_init(&m.h);
	crypto_hash_update(&m.h, (const uint8_t *)MANIFEST_MAGIC, strlen(MANIFEST_MAGIC));
	mf_next(&m);
	r = store_walk(b.txn, b.dbi, b.present, mf_check, &m);
	while (r == 0 && m.cur.db >= 0) {
		report_entry(&m, m.cur.db, m.cur.key, m.cur.klen,
		    "in the manifest, missing from the backup");
		mf_next(&m);
	}
	bk_close(&b);
	if (r == 0 && m.have_root) {
		crypto_hash_final(&m.h, root);
		if (!crypto_memeq(root, m.root, sizeof(root)))
			mreport(&m, "MANIFEST", "root hash mismatch (manifest edited)");
	}
	free(m.line);
	fclose(m.f);
	if (r < 0) {
		mreport(&m, "data.mdb", "unreadable (damaged)");
		return m.broken;
	}
	return m.broken;
}
