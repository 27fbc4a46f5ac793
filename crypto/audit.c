/* The audit log writer (audit.h); the format is documented in docs/audit.md. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include "sodium-min.h"
#include "audit.h"
#include "crypto.h"
#include "secret.h"
#include "compat.h"

#define AUDIT_KEY_BYTES 32
/* Room kept at the end of a record for ,"truncated":true}\n */
#define AUDIT_TAIL 24

static struct {
	int fd;
	bool syslog;
	bool on;
	char program[32];
	struct secret *key;
	struct secret *sub;	/* the day's mailbox subkey, derived once a day */
	int64_t sub_day;
} A = { .fd = -1, .program = "sealmail" };

int audit_open(const char *dest, const char *program, char *err, size_t errlen)
{
	int fd;

	audit_close();
	if (program != NULL)
		audit_set_program(program);
	if (dest == NULL || dest[0] == '\0' || strcmp(dest, "off") == 0)
		return 0;
	if (strcmp(dest, "syslog") == 0) {
		A.syslog = true;
		A.on = true;
		return 0;
	}
	/* O_APPEND: every write goes to the end, atomically with its positioning, so
	 * the processes sharing this descriptor (and other programs appending to the same
	 * file) never overwrite each other. */
	fd = open(dest, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0) {
		int e = errno;
		if (err != NULL)
			snprintf(err, errlen, "audit_log %s: %s", dest, strerror(e));
		return -e;
	}
	A.fd = fd;
	A.on = true;
	return 0;
}

void audit_set_program(const char *program)
{
	snprintf(A.program, sizeof(A.program), "%s", program ? program : "sealmail");
}

bool audit_enabled(void)
{
	return A.on;
}

int audit_fd(void)
{
	return A.fd;
}

void audit_close(void)
{
	if (A.fd >= 0)
		close(A.fd);
	A.fd = -1;
	A.syslog = false;
	A.on = false;
}

/* ---- the mailbox-hash key ---------------------------------------------------------- */

static int read_full(int fd, unsigned char *p, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, p + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EPROTO;
		got += (size_t)r;
	}
	return 0;
}

int audit_key_load(const char *path, char *err, size_t errlen)
{
	struct secret *k = NULL;
	struct stat st;
	int fd, r;

	if ((r = secret_new(AUDIT_KEY_BYTES, &k)) < 0)
		return r;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT) {
		/* First start: create it. O_EXCL so two starters cannot both win. */
		randombytes_buf(k->p, k->len);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd >= 0) {
			ssize_t w = write(fd, k->p, k->len);
			int e = errno;
			if (w != (ssize_t)k->len || fsync(fd) < 0) {
				close(fd);
				(void)unlink(path);
				r = w < 0 ? -e : -EIO;
				snprintf(err, errlen, "audit key %s: cannot write: %s", path,
				    strerror(-r));
				goto out;
			}
			close(fd);
			goto done;
		}
		if (errno == EEXIST)
			fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	}
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "audit key %s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != AUDIT_KEY_BYTES ||
	    (st.st_mode & 077) != 0) {
		close(fd);
		r = -EINVAL;
		snprintf(err, errlen, "audit key %s: must be a regular file of %d bytes, mode "
		    "0600", path, AUDIT_KEY_BYTES);
		goto out;
	}
	r = read_full(fd, k->p, k->len);
	close(fd);
	if (r < 0) {
		snprintf(err, errlen, "audit key %s: cannot read: %s", path, strerror(-r));
		goto out;
	}
done:
	secret_free(&A.key);
	secret_free(&A.sub);	/* derived from the old key */
	A.key = k;
	k = NULL;
	r = 0;
out:
	secret_free(&k);
	return r;
}

bool audit_key_loaded(void)
{
	return A.key != NULL;
}

/* The subkey of now's UTC day (time_t has no leap seconds: a day is 86400 s),
 * derived on the first use of each day instead of once per mailbox name logged. */
static int day_subkey(time_t now)
{
	int64_t day = (int64_t)now >= 0 ? (int64_t)now / 86400 : ((int64_t)now - 86399) / 86400;
	char label[64];
	struct tm tm;
	int ln, r;

	if (A.sub != NULL && A.sub_day == day)
		return 0;
	if (gmtime_r(&now, &tm) == NULL)
		return -EINVAL;
	if (A.sub == NULL && (r = secret_new(32, &A.sub)) < 0)
		return r;
	A.sub_day = INT64_MIN;
	ln = snprintf(label, sizeof(label), "sealmail audit mailbox %04d-%02d-%02d",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
	if (crypto_generichash(A.sub->p, A.sub->len, (const unsigned char *)label, (size_t)ln,
	    A.key->p, A.key->len) != 0)
		return -EINVAL;
	A.sub_day = day;
	return 0;
}

int audit_mbox_hash(const void *name, size_t n, time_t now, char hex[33])
{
	unsigned char h[16];
	int r;

	hex[0] = '\0';
	if (A.key == NULL)
		return -ENOKEY;
	if ((r = day_subkey(now)) < 0)
		return r;
	if (crypto_generichash(h, sizeof(h), name, n, A.sub->p, A.sub->len) != 0)
		return -EINVAL;
	return crypto_hex_encode(h, sizeof(h), hex, 33);	/* lower case, NUL-ended */
}

/* ---- JSON ------------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at p (RFC 3629 4), 0 if it is not one. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
			return 0;
		if (c == 0xe0 && p[1] < 0xa0)	/* overlong */
			return 0;
		if (c == 0xed && p[1] >= 0xa0)	/* UTF-16 surrogates */
			return 0;
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
		    (p[3] & 0xc0) != 0x80)
			return 0;
		if (c == 0xf0 && p[1] < 0x90)	/* overlong */
			return 0;
		if (c == 0xf4 && p[1] >= 0x90)	/* above U+10FFFF */
			return 0;
		return 4;
	}
	return 0;
}

size_t audit_json_escape(const void *s, size_t n, char *out, size_t cap)
{
	static const char hx[] = "0123456789abcdef";
	const unsigned char *p = s;
	size_t o = 0, i = 0;

#define PUT(ch) do { if (o + 1 < cap) out[o] = (char)(ch); o++; } while (0)
	while (i < n) {
		unsigned char c = p[i];
		size_t l = utf8_len(p + i, n - i);

		if (c == '"' || c == '\\') {
			PUT('\\');
			PUT(c);
			i++;
		} else if (l == 1 && c >= 0x20 && c != 0x7f) {
			PUT(c);
			i++;
		} else if (l > 1) {
			for (size_t k = 0; k < l; k++)
				PUT(p[i + k]);
			i += l;
		} else {
			/* Control character, DEL or a byte that is not valid UTF-8. */
			PUT('\\');
			PUT('u');
			PUT('0');
			PUT('0');
			PUT(hx[c >> 4]);
			PUT(hx[c & 15]);
			i++;
		}
	}
#undef PUT
	if (cap > 0)
		out[o < cap ? o : cap - 1] = '\0';
	return o;
}

static bool room(struct audit_rec *r, size_t need)
{
	if (r->len + need + AUDIT_TAIL > sizeof(r->buf)) {
		r->truncated = true;
		return false;
	}
	return true;
}

void audit_begin(struct audit_rec *r, const char *event)
{
	struct timespec ts;
	struct tm tm;
	char stamp[96];

	r->len = 0;
	r->truncated = false;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (gmtime_r(&ts.tv_sec, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	/* RFC 3339 5.6 date-time with fractional seconds, in UTC ("Z"). */
	snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    (long)(ts.tv_nsec / 1000000) % 1000);
	r->buf[r->len++] = '{';
	r->buf[r->len] = '\0';
	audit_str(r, "time", stamp);
	audit_str(r, "event", event);
	audit_str(r, "program", A.program);
}

static void key_prefix(struct audit_rec *r, const char *key)
{
	if (r->len > 1)
		r->buf[r->len++] = ',';
	r->buf[r->len++] = '"';
	r->len += audit_json_escape(key, strlen(key), r->buf + r->len, sizeof(r->buf) - r->len);
	r->buf[r->len++] = '"';
	r->buf[r->len++] = ':';
}

void audit_strn(struct audit_rec *r, const char *key, const void *val, size_t n)
{
	size_t klen = audit_json_escape(key, strlen(key), NULL, 0);
	size_t vlen = val ? audit_json_escape(val, n, NULL, 0) : 4;

	if (!room(r, klen + vlen + 6))
		return;
	key_prefix(r, key);
	if (val == NULL) {
		memcpy(r->buf + r->len, "null", 4);
		r->len += 4;
	} else {
		r->buf[r->len++] = '"';
		r->len += audit_json_escape(val, n, r->buf + r->len, sizeof(r->buf) - r->len);
		r->buf[r->len++] = '"';
	}
	r->buf[r->len] = '\0';
}

void audit_str(struct audit_rec *r, const char *key, const char *val)
{
	audit_strn(r, key, val, val ? strlen(val) : 0);
}

static void raw(struct audit_rec *r, const char *key, const char *text)
{
	size_t klen = audit_json_escape(key, strlen(key), NULL, 0), tlen = strlen(text);

	if (!room(r, klen + tlen + 4))
		return;
	key_prefix(r, key);
	memcpy(r->buf + r->len, text, tlen);
	r->len += tlen;
	r->buf[r->len] = '\0';
}

void audit_u64(struct audit_rec *r, const char *key, uint64_t v)
{
	char t[24];

	snprintf(t, sizeof(t), "%" PRIu64, v);
	raw(r, key, t);
}

void audit_i64(struct audit_rec *r, const char *key, int64_t v)
{
	char t[24];

	snprintf(t, sizeof(t), "%" PRId64, v);
	raw(r, key, t);
}

void audit_bool(struct audit_rec *r, const char *key, bool v)
{
	raw(r, key, v ? "true" : "false");
}

size_t audit_finish(struct audit_rec *r)
{
	if (r->truncated) {
		static const char t[] = ",\"truncated\":true";
		memcpy(r->buf + r->len, t, sizeof(t) - 1);
		r->len += sizeof(t) - 1;
		r->truncated = false;
	}
	r->buf[r->len++] = '}';
	r->buf[r->len++] = '\n';
	r->buf[r->len] = '\0';
	return r->len;
}

int audit_emit(struct audit_rec *r)
{
	size_t n = audit_finish(r);
	ssize_t w;

	if (!A.on)
		return 0;
	if (A.syslog) {
		syslog(LOG_AUTHPRIV | LOG_INFO, "%.*s", (int)(n - 1), r->buf);
		return 0;
	}
	/* One write of one whole line (<= PIPE_BUF): no interleaving. */
	do
		w = write(A.fd, r->buf, n);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return -errno;
	return (size_t)w == n ? 0 : -EIO;
}
