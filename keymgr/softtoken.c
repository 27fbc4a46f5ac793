/* Software tokens: a YubiKey's secrets in a file, for demos and tests.
 *
 * The file holds the token's AES key and private id in clear: whoever reads it can
 * mint OTPs. It is created 0600 and never overwritten in place: each OTP rewrites it
 * through a temporary file and rename(2), under an flock(2), so concurrent
 * `token otp` runs never issue the same counter twice and a crash leaves either the
 * old or the new file, never half of one. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "keymgr.h"
#include "compat.h"

#define TOKEN_FILE_MAX 4096
#define SESSION_CTR_MAX 0x7fff	/* 15 bits: the top bit is the capslock flag */

void keymgr_softtoken_clear(struct keymgr_softtoken *t)
{
	if (t == NULL)
		return;
	secret_free(&t->aes_key);
	secret_free(&t->uid);
	crypto_wipe(t, sizeof(*t));
}

int keymgr_softtoken_generate(const char *user, struct keymgr_softtoken *out)
{
	int r;

	memset(out, 0, sizeof(*out));
	if (strlen(user) >= sizeof(out->user))
		return -E2BIG;
	snprintf(out->user, sizeof(out->user), "%s", user);
	if ((r = secret_new_random(CRYPTO_OTP_AES_BYTES, &out->aes_key)) < 0 ||
	    (r = secret_new_random(CRYPTO_OTP_UID_BYTES, &out->uid)) < 0) {
		keymgr_softtoken_clear(out);
		return r;
	}
	/* Real public ids never start with a 0 byte ("cc..."): keep that shape. */
	do
		crypto_random(out->public_id, sizeof(out->public_id));
	while (out->public_id[0] == 0);
	out->session_ctr = 1;
	out->use_ctr = 0;
	return 0;
}

/* The file's text, in a secure buffer (it holds the AES key and uid). */
static int format_token(const struct keymgr_softtoken *t, struct sbuf **out)
{
	char aes[2 * CRYPTO_OTP_AES_BYTES + 1], uid[2 * CRYPTO_OTP_UID_BYTES + 1];
	char pub[2 * CRYPTO_OTP_PUBID_BYTES + 1];
	struct sbuf *b = NULL;
	int r;

	if ((r = sbuf_new_secure(TOKEN_FILE_MAX, &b)) < 0)
		goto out;
	if ((r = crypto_hex_encode(t->aes_key->p, t->aes_key->len, aes, sizeof(aes))) < 0 ||
	    (r = crypto_hex_encode(t->uid->p, t->uid->len, uid, sizeof(uid))) < 0 ||
	    (r = crypto_modhex_encode(t->public_id, sizeof(t->public_id), pub,
	    sizeof(pub))) < 0)
		goto out;
	r = sbuf_printf(b,
	    "# sealmail software token: a stand-in for a YubiKey (demos and tests).\n"
	    "# Whoever reads this file can make one-time passwords: keep it mode 0600.\n"
	    "# Print the next OTP with: sealmail-keymgr token otp FILE\n"
	    "user = %s\n"
	    "public_id = %s\n"
	    "aes_key = %s\n"
	    "uid = %s\n"
	    "session_ctr = %u\n"
	    "use_ctr = %u\n",
	    t->user, pub, aes, uid, (unsigned)t->session_ctr, (unsigned)t->use_ctr);
	if (r < 0)
		goto out;
	*out = b;
	b = NULL;
out:
	crypto_wipe(aes, sizeof(aes));
	crypto_wipe(uid, sizeof(uid));
	sbuf_free(&b);
	return r;
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

/* fsync the directory holding path, so a create or rename survives a crash. */
static int sync_parent(const char *path)
{
	char copy[4096];
	int fd, r = 0;

	if (snprintf(copy, sizeof(copy), "%s", path) >= (int)sizeof(copy))
		return -ENAMETOOLONG;
	if ((fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

int keymgr_softtoken_create_file(const char *path, const struct keymgr_softtoken *t)
{
	struct sbuf *b = NULL;
	int fd = -1, r;

	if ((r = format_token(t, &b)) < 0)
		return r;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	if ((r = write_all(fd, b->d, b->len)) < 0 || (fsync(fd) < 0 && (r = -errno) < 0)) {
		close(fd);
		fd = -1;
		unlink(path);
		goto out;
	}
	if (close(fd) < 0) {
		r = -errno;
		fd = -1;
		unlink(path);
		goto out;
	}
	fd = -1;
	r = sync_parent(path);
out:
	sbuf_free(&b);
	return r;
}

/* ---- Parsing ---------------------------------------------------------------------- */

static int parse_uint(const char *s, size_t n, uint32_t max, uint32_t *out)
{
	uint32_t v = 0;
	size_t i;

	if (n == 0 || n > 10)
		return -EPROTO;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EPROTO;
		if (v > (max - (uint32_t)(s[i] - '0')) / 10)
			return -EPROTO;
		v = v * 10 + (uint32_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

static int decode_secret(const char *s, size_t n, size_t bytes, struct secret **out)
{
	int r;

	if (n != 2 * bytes)
		return -EPROTO;
	if ((r = secret_new(bytes, out)) < 0)
		return r;
	if ((r = crypto_hex_decode(s, n, (*out)->p, bytes)) < 0) {
		secret_free(out);
		return -EPROTO;
	}
	return 0;
}

/* Parses the file text (len bytes at p; not NUL-terminated). */
static int parse_token(const char *p, size_t len, struct keymgr_softtoken *t, char *err,
    size_t errlen)
{
	enum { F_USER = 1, F_PUB = 2, F_AES = 4, F_UID = 8, F_SES = 16, F_USE = 32 };
	unsigned seen = 0, line = 0;
	size_t off = 0;
	uint32_t v;
	int r = 0;

	memset(t, 0, sizeof(*t));
	while (off < len) {
		const char *l = p + off, *nl = memchr(l, '\n', len - off), *eq;
		size_t ll = nl != NULL ? (size_t)(nl - l) : len - off;
		size_t kl, vl;
		const char *k, *val;

		off += ll + (nl != NULL);
		line++;
		while (ll > 0 && (l[ll - 1] == ' ' || l[ll - 1] == '\t' || l[ll - 1] == '\r'))
			ll--;
		while (ll > 0 && (*l == ' ' || *l == '\t')) {
			l++;
			ll--;
		}
		if (ll == 0 || *l == '#')
			continue;
		if ((eq = memchr(l, '=', ll)) == NULL) {
			snprintf(err, errlen, "line %u: expected \"key = value\"", line);
			r = -EPROTO;
			goto out;
		}
		k = l;
		kl = (size_t)(eq - l);
		while (kl > 0 && (k[kl - 1] == ' ' || k[kl - 1] == '\t'))
			kl--;
		val = eq + 1;
		vl = ll - (size_t)(val - l);
		while (vl > 0 && (*val == ' ' || *val == '\t')) {
			val++;
			vl--;
		}
#define KEY_IS(s) (kl == strlen(s) && memcmp(k, s, kl) == 0)
		if (KEY_IS("user") && !(seen & F_USER)) {
			if (vl == 0 || vl >= sizeof(t->user)) {
				snprintf(err, errlen, "line %u: bad user name", line);
				r = -EPROTO;
				goto out;
			}
			memcpy(t->user, val, vl);
			t->user[vl] = '\0';
			seen |= F_USER;
		} else if (KEY_IS("public_id") && !(seen & F_PUB)) {
			if (vl != 2 * CRYPTO_OTP_PUBID_BYTES || crypto_modhex_decode(val, vl,
			    t->public_id, sizeof(t->public_id)) < 0) {
				snprintf(err, errlen, "line %u: public_id must be %d modhex characters",
				    line, 2 * CRYPTO_OTP_PUBID_BYTES);
				r = -EPROTO;
				goto out;
			}
			seen |= F_PUB;
		} else if (KEY_IS("aes_key") && !(seen & F_AES)) {
			if ((r = decode_secret(val, vl, CRYPTO_OTP_AES_BYTES, &t->aes_key)) < 0) {
				snprintf(err, errlen, "line %u: aes_key must be %d hex characters",
				    line, 2 * CRYPTO_OTP_AES_BYTES);
				goto out;
			}
			seen |= F_AES;
		} else if (KEY_IS("uid") && !(seen & F_UID)) {
			if ((r = decode_secret(val, vl, CRYPTO_OTP_UID_BYTES, &t->uid)) < 0) {
				snprintf(err, errlen, "line %u: uid must be %d hex characters", line,
				    2 * CRYPTO_OTP_UID_BYTES);
				goto out;
			}
			seen |= F_UID;
		} else if (KEY_IS("session_ctr") && !(seen & F_SES)) {
			if (parse_uint(val, vl, SESSION_CTR_MAX, &v) < 0) {
				snprintf(err, errlen, "line %u: session_ctr must be 0..%d", line,
				    SESSION_CTR_MAX);
				r = -EPROTO;
				goto out;
			}
			t->session_ctr = (uint16_t)v;
			seen |= F_SES;
		} else if (KEY_IS("use_ctr") && !(seen & F_USE)) {
			if (parse_uint(val, vl, 255, &v) < 0) {
				snprintf(err, errlen, "line %u: use_ctr must be 0..255", line);
				r = -EPROTO;
				goto out;
			}
			t->use_ctr = (uint8_t)v;
			seen |= F_USE;
		} else {
			snprintf(err, errlen, "line %u: unknown or repeated key \"%.*s\"", line,
			    (int)(kl > 40 ? 40 : kl), k);
			r = -EPROTO;
			goto out;
		}
#undef KEY_IS
	}
	if ((seen & (F_PUB | F_AES | F_UID | F_SES | F_USE)) !=
	    (F_PUB | F_AES | F_UID | F_SES | F_USE)) {
		snprintf(err, errlen, "missing key: %s",
		    !(seen & F_PUB) ? "public_id" : !(seen & F_AES) ? "aes_key" :
		    !(seen & F_UID) ? "uid" : !(seen & F_SES) ? "session_ctr" : "use_ctr");
		r = -EPROTO;
	}
out:
	if (r < 0)
		keymgr_softtoken_clear(t);
	return r;
}

/* Reads the whole (small) file from fd into a secure buffer. */
static int read_fd(int fd, struct sbuf **out)
{
	struct sbuf *b = NULL;
	int r;

	if ((r = sbuf_new_secure(TOKEN_FILE_MAX, &b)) < 0)
		return r;
	for (;;) {
		uint8_t *p;
		ssize_t n;

		if ((r = sbuf_reserve(b, 512, &p)) < 0) {
			r = -E2BIG;
			goto out;
		}
		n = read(fd, p, 512);
		if (n < 0) {
			if (errno == EINTR) {
				b->len -= 512;
				continue;
			}
			r = -errno;
			goto out;
		}
		b->len -= 512 - (size_t)n;
		if (n == 0)
			break;
	}
	*out = b;
	b = NULL;
out:
	sbuf_free(&b);
	return r;
}

int keymgr_softtoken_load(const char *path, struct keymgr_softtoken *out, char *err,
    size_t errlen)
{
	struct sbuf *b = NULL;
	char perr[256] = "";
	int fd, r;

	memset(out, 0, sizeof(*out));
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot open token file %s: %s", path, strerror(-r));
		return r;
	}
	r = read_fd(fd, &b);
	close(fd);
	if (r < 0) {
		snprintf(err, errlen, "cannot read token file %s: %s", path,
		    r == -E2BIG ? "file too large" : strerror(-r));
		return r;
	}
	if ((r = parse_token((const char *)b->d, b->len, out, perr, sizeof(perr))) < 0)
		snprintf(err, errlen, "token file %s: %s", path, perr);
	sbuf_free(&b);
	return r;
}

int keymgr_softtoken_next_otp(const char *path, char otp_out[CRYPTO_OTP_CHARS + 1],
    char *err, size_t errlen)
{
	struct keymgr_softtoken t;
	struct sbuf *b = NULL, *text = NULL;
	char tmp[4200], perr[256] = "";
	int fd = -1, tfd = -1, r;
	struct stat st_fd, st_path;

	memset(&t, 0, sizeof(t));
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		snprintf(err, errlen, "token file name too long");
		return -ENAMETOOLONG;
	}
	/* Lock, then make sure the file we locked is still the one at path: a concurrent
	 * run may have renamed a new file over it while we waited. */
	for (;;) {
		if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
			r = -errno;
			snprintf(err, errlen, "cannot open token file %s: %s", path, strerror(-r));
			goto out;
		}
		if (flock(fd, LOCK_EX) < 0) {
			r = -errno;
			snprintf(err, errlen, "cannot lock token file %s: %s", path, strerror(-r));
			goto out;
		}
		if (fstat(fd, &st_fd) < 0 || stat(path, &st_path) < 0) {
			r = -errno;
			snprintf(err, errlen, "cannot stat token file %s: %s", path, strerror(-r));
			goto out;
		}
		if (st_fd.st_ino == st_path.st_ino && st_fd.st_dev == st_path.st_dev)
			break;
		close(fd);
		fd = -1;
	}
	if ((r = read_fd(fd, &b)) < 0) {
		snprintf(err, errlen, "cannot read token file %s: %s", path,
		    r == -E2BIG ? "file too large" : strerror(-r));
		goto out;
	}
	if ((r = parse_token((const char *)b->d, b->len, &t, perr, sizeof(perr))) < 0) {
		snprintf(err, errlen, "token file %s: %s", path, perr);
		goto out;
	}
	/* Advance: use counter first; on wrap a new "session" as after a power-up. */
	if (t.use_ctr == 255) {
		if (t.session_ctr >= SESSION_CTR_MAX) {
			snprintf(err, errlen, "token file %s: counters exhausted (session %u): "
			    "enrol a new token", path, (unsigned)t.session_ctr);
			r = -ERANGE;
			goto out;
		}
		t.session_ctr++;
		t.use_ctr = 0;
	} else {
		t.use_ctr++;
	}
	/* The timestamp is the key's 8 Hz clock: any 24-bit value is valid. */
	r = crypto_otp_generate(t.aes_key, t.public_id, t.uid->p, t.session_ctr, t.use_ctr,
	    (uint32_t)((uint64_t)time(NULL) * 8) & 0xffffffu, otp_out);
	if (r < 0) {
		snprintf(err, errlen, "cannot generate the OTP: %s", strerror(-r));
		goto out;
	}
	/* Persist the new counters before the OTP leaves this function. */
	if ((r = format_token(&t, &text)) < 0) {
		snprintf(err, errlen, "cannot format token file: %s", strerror(-r));
		goto out;
	}
	tfd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (tfd < 0 || fchmod(tfd, 0600) < 0 || (r = write_all(tfd, text->d, text->len)) < 0 ||
	    fsync(tfd) < 0) {
		if (r == 0)
			r = -errno;
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(-r));
		unlink(tmp);
		goto out;
	}
	if (close(tfd) < 0) {
		tfd = -1;
		r = -errno;
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(-r));
		unlink(tmp);
		goto out;
	}
	tfd = -1;
	if (rename(tmp, path) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot replace %s: %s", path, strerror(-r));
		unlink(tmp);
		goto out;
	}
	if ((r = sync_parent(path)) < 0) {
		snprintf(err, errlen, "cannot sync the directory of %s: %s", path, strerror(-r));
		goto out;
	}
	r = 0;
out:
	if (r < 0)
		crypto_wipe(otp_out, CRYPTO_OTP_CHARS + 1);
	if (tfd >= 0)
		close(tfd);
	if (fd >= 0)
		close(fd);	/* releases the lock */
	keymgr_softtoken_clear(&t);
	sbuf_free(&b);
	sbuf_free(&text);
	return r;
}
