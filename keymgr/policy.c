/* Passphrase policy for enrolment, passwd and recover.
 *
 * The passphrase is the factor a user chooses, so it gets the NIST SP 800-63B
 * treatment: a length floor and a check against commonly used passwords, no
 * composition rules. The checks below catch the usual ways people stretch a short
 * common password past the length floor ("Password1234", "qwertyuiopas",
 * "abcabcabcabc"). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "keymgr.h"
#include "common-passwords.h"
#include "compat.h"

/* Longest string we lowercase for the checks; longer passphrases pass them all (no
 * common password or keyboard row is this long). */
#define POLICY_WORK_MAX 256

static int cmp_word(const void *key, const void *elem)
{
	return strcmp((const char *)key, *(const char *const *)elem);
}

static int in_list(const char *lower)
{
	return bsearch(lower, common_passwords, common_passwords_count,
	    sizeof(common_passwords[0]), cmp_word) != NULL;
}

int keymgr_common_password(const char *word, size_t len)
{
	char buf[POLICY_WORK_MAX + 1];
	size_t i;
	int r;

	if (len > POLICY_WORK_MAX)
		return 0;
	for (i = 0; i < len; i++)
		buf[i] = (char)tolower((unsigned char)word[i]);
	buf[len] = '\0';
	r = in_list(buf);
	explicit_bzero(buf, sizeof(buf));
	return r;
}

static size_t utf8_chars(const uint8_t *p, size_t n)
{
	size_t i, c = 0;

	for (i = 0; i < n; i++)
		if ((p[i] & 0xC0) != 0x80)
			c++;
	return c;
}

/* Sequences people type to reach a length: alphabet, digits, keyboard rows (QWERTY,
 * QWERTZ, AZERTY) and the 1qaz column walk, forwards and backwards. */
static const char *const sequences[] = {
	"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz",
	"01234567890123456789012345678901234567890",
	"qwertyuiopasdfghjklzxcvbnmqwertyuiop",
	"poiuytrewqlkjhgfdsamnbvcxzpoiuytrewq",	/* each row typed right to left */
	"qwertzuiopasdfghjklyxcvbnm",
	"azertyuiopqsdfghjklmwxcvbn",
	"1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
	"1q2w3e4r5t6y7u8i9o0p",
	"q1w2e3r4t5y6u7i8o9p0",
	"qazwsxedcrfvtgbyhnujmikolp",
	"1234567890qwertyuiopasdfghjklzxcvbnm",
	"!@#$%^&*()!@#$%^&*()",
};

static int is_sequence(const char *s, size_t n)
{
	char rev[POLICY_WORK_MAX + 1];
	size_t i;
	int hit = 0;

	for (i = 0; i < n; i++)
		rev[i] = s[n - 1 - i];
	rev[n] = '\0';
	for (i = 0; i < sizeof(sequences) / sizeof(sequences[0]) && !hit; i++)
		hit = strstr(sequences[i], s) != NULL || strstr(sequences[i], rev) != NULL;
	explicit_bzero(rev, sizeof(rev));
	return hit;
}

/* 1 if s is one shorter string repeated ("abcabc", "passwordpassword"). */
static int is_repetition(const char *s, size_t n)
{
	size_t k, i;

	for (k = 1; k <= n / 2; k++) {
		if (n % k != 0)
			continue;
		for (i = k; i < n && s[i] == s[i - k]; i++)
			;
		if (i == n)
			return 1;
	}
	return 0;
}

static int is_filler(unsigned char c)
{
	return isdigit(c) || ispunct(c) || c == ' ';
}

int keymgr_passphrase_check(const uint8_t *pass, size_t len, char *why, size_t whylen)
{
	char low[POLICY_WORK_MAX + 1];
	size_t chars = utf8_chars(pass, len), i, a, b;
	int r = -EINVAL;

	if (chars < KEYMGR_PASS_MIN_CHARS) {
		snprintf(why, whylen, "passphrase too short: %zu characters, at least %d needed "
		    "(a few unrelated words make a good one)", chars, KEYMGR_PASS_MIN_CHARS);
		return -EINVAL;
	}
	for (i = 0; i < len; i++) {
		if (pass[i] < 0x20 || pass[i] == 0x7f) {
			snprintf(why, whylen, "passphrase contains a control character");
			return -EINVAL;
		}
	}
	if (len > POLICY_WORK_MAX)
		return 0;
	for (i = 0; i < len; i++)
		low[i] = (char)tolower(pass[i]);
	low[len] = '\0';

	if (in_list(low)) {
		snprintf(why, whylen, "passphrase is a commonly used password");
		goto out;
	}
	/* The core once leading/trailing digits, symbols and spaces are stripped. */
	for (a = 0; a < len && is_filler((unsigned char)low[a]); a++)
		;
	for (b = len; b > a && is_filler((unsigned char)low[b - 1]); b--)
		;
	if (b > a && b - a < len) {
		char c = low[b];

		low[b] = '\0';
		if (in_list(low + a)) {
			snprintf(why, whylen, "passphrase is a common password with digits or "
			    "symbols added");
			goto out;
		}
		low[b] = c;
	}
	if (is_repetition(low, len)) {
		snprintf(why, whylen, "passphrase is one short string repeated");
		goto out;
	}
	if (is_sequence(low, len)) {
		snprintf(why, whylen, "passphrase is a run of the alphabet, digits or a keyboard "
		    "row");
		goto out;
	}
	r = 0;
out:
	explicit_bzero(low, sizeof(low));
	return r;
}
