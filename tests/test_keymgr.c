/* keymgr unit tests: passphrase policy and software tokens (file format, counters,
 * OTPs that the crypto layer's decoder accepts, exclusive creation, atomic rewrite). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "harness.h"
#include "keymgr.h"
#include "crypto.h"

static char tmpdir[256];

static void rmtmp(void)
{
	rmdir(tmpdir);
}

static void mktmp(void)
{
	if (tmpdir[0] == '\0') {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_keymgr.XXXXXX");
		if (mkdtemp(tmpdir) == NULL)
			abort();
		atexit(rmtmp);
	}
}

static int check_pass(const char *p)
{
	char why[256];

	return keymgr_passphrase_check((const uint8_t *)p, strlen(p), why, sizeof(why));
}

TEST(policy_rejects_weak)
{
	static const char *const weak[] = {
		"", "short", "elevenchars", "password1234", "PASSWORD1234", "Password123456!",
		"!!!password!!!", "123456789012", "qwertyuiopasdf", "poiuytrewqlkj",
		"abcdefghijklmn", "aaaaaaaaaaaa", "abcabcabcabc", "passwordpassword",
		"iloveyouforever", "correcthorsebatterystaple", "1q2w3e4r5t6y",
		"9876543210987", "letmein123456", "  dragon 2024  ",
	};
	size_t i;

	for (i = 0; i < sizeof(weak) / sizeof(weak[0]); i++)
		if (check_pass(weak[i]) == 0)
			FAIL_AT("weak passphrase accepted: \"%s\"", weak[i]);
}

TEST(policy_accepts_good)
{
	static const char *const good[] = {
		"tulip anchor granite whistle", "correct horse battery", "Zq8#mV2!pL0w",
		"\xc3\xa9t\xc3\xa9 \xc3\xa0 la montagne bleue", "my dog eats 3 carrots daily",
	};
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (check_pass(good[i]) != 0)
			FAIL_AT("good passphrase refused: \"%s\"", good[i]);
}

TEST(policy_counts_characters_not_bytes)
{
	/* 11 characters of two bytes each: 22 bytes, still too short. */
	ASSERT_INT_EQ(check_pass("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"), -EINVAL);
	ASSERT_INT_EQ(check_pass("control\x01char acters"), -EINVAL);
}

TEST(common_list_is_compiled_in)
{
	ASSERT_INT_EQ(keymgr_common_password("123456", 6), 1);
	ASSERT_INT_EQ(keymgr_common_password("PassWord", 8), 1);
	ASSERT_INT_EQ(keymgr_common_password("trustno1", 8), 1);
	ASSERT_INT_EQ(keymgr_common_password("xq7-unlikely-zz", 15), 0);
}

static int read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, cap - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return (int)n;
}

TEST(softtoken_roundtrip_and_otps)
{
	struct keymgr_softtoken t, l;
	struct crypto_otp o;
	char path[512], otp[CRYPTO_OTP_CHARS + 1], prev[CRYPTO_OTP_CHARS + 1], err[256];
	char text[4096];
	struct stat st;
	int i;

	mktmp();
	snprintf(path, sizeof(path), "%s/a.token", tmpdir);
	ASSERT_INT_EQ(keymgr_softtoken_generate("alice", &t), 0);
	ASSERT_TRUE(t.public_id[0] != 0);
	ASSERT_INT_EQ(t.session_ctr, 1);
	ASSERT_INT_EQ(t.use_ctr, 0);
	ASSERT_INT_EQ(keymgr_softtoken_create_file(path, &t), 0);
	ASSERT_INT_EQ(stat(path, &st), 0);
	ASSERT_INT_EQ(st.st_mode & 0777, 0600);
	/* Never overwritten by creation. */
	ASSERT_INT_EQ(keymgr_softtoken_create_file(path, &t), -EEXIST);

	ASSERT_INT_EQ(keymgr_softtoken_load(path, &l, err, sizeof(err)), 0);
	ASSERT_STR_EQ(l.user, "alice");
	ASSERT_MEM_EQ(l.public_id, t.public_id, CRYPTO_OTP_PUBID_BYTES);
	ASSERT_TRUE(secret_eq(l.aes_key, t.aes_key));
	ASSERT_TRUE(secret_eq(l.uid, t.uid));
	keymgr_softtoken_clear(&l);

	prev[0] = '\0';
	for (i = 1; i <= 300; i++) {
		ASSERT_INT_EQ(keymgr_softtoken_next_otp(path, otp, err, sizeof(err)), 0);
		ASSERT_INT_EQ(strlen(otp), CRYPTO_OTP_CHARS);
		ASSERT_INT_EQ(crypto_otp_decode(otp, strlen(otp), t.aes_key, &o), 0);
		ASSERT_MEM_EQ(o.uid, t.uid->p, CRYPTO_OTP_UID_BYTES);
		ASSERT_MEM_EQ(o.public_id, t.public_id, CRYPTO_OTP_PUBID_BYTES);
		/* use counter 1..255 in session 1, then session 2 from use 0 */
		if (i <= 255) {
			ASSERT_INT_EQ(o.session_ctr, 1);
			ASSERT_INT_EQ(o.use_ctr, i);
		} else {
			ASSERT_INT_EQ(o.session_ctr, 2);
			ASSERT_INT_EQ(o.use_ctr, i - 256);
		}
		if (prev[0] != '\0') {
			struct crypto_otp po;

			ASSERT_INT_EQ(crypto_otp_decode(prev, strlen(prev), t.aes_key, &po), 0);
			ASSERT_INT_EQ(crypto_otp_is_newer(o.session_ctr, o.use_ctr, po.session_ctr,
			    po.use_ctr), 1);
		}
		memcpy(prev, otp, sizeof(otp));
	}
	ASSERT_INT_EQ(stat(path, &st), 0);
	ASSERT_INT_EQ(st.st_mode & 0777, 0600);
	ASSERT_TRUE(read_file(path, text, sizeof(text)) > 0);
	ASSERT_TRUE(strstr(text, "session_ctr = 2\n") != NULL);
	ASSERT_TRUE(strstr(text, "use_ctr = 44\n") != NULL);
	keymgr_softtoken_clear(&t);
	unlink(path);
}

TEST(softtoken_concurrent_otps_are_unique)
{
	struct keymgr_softtoken t;
	char path[512], err[256], text[4096];
	int i, status;
	pid_t kids[4];

	mktmp();
	snprintf(path, sizeof(path), "%s/c.token", tmpdir);
	ASSERT_INT_EQ(keymgr_softtoken_generate("carol", &t), 0);
	ASSERT_INT_EQ(keymgr_softtoken_create_file(path, &t), 0);
	keymgr_softtoken_clear(&t);
	for (i = 0; i < 4; i++) {
		if ((kids[i] = fork()) == 0) {
			char otp[CRYPTO_OTP_CHARS + 1];
			int j;

			for (j = 0; j < 25; j++)
				if (keymgr_softtoken_next_otp(path, otp, err, sizeof(err)) != 0)
					_exit(1);
			_exit(0);
		}
	}
	for (i = 0; i < 4; i++) {
		ASSERT_INT_EQ(waitpid(kids[i], &status, 0), kids[i]);
		ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	/* 100 increments under the lock: none lost. */
	ASSERT_TRUE(read_file(path, text, sizeof(text)) > 0);
	ASSERT_TRUE(strstr(text, "use_ctr = 100\n") != NULL);
	unlink(path);
}

TEST(softtoken_bad_files)
{
	static const char *const bad[] = {
		"public_id = vvcccccccccc\naes_key = 00\nuid = 000000000000\n"
		    "session_ctr = 1\nuse_ctr = 0\n",
		"public_id = xxcccccccccc\naes_key = 00112233445566778899aabbccddeeff\n"
		    "uid = 000000000000\nsession_ctr = 1\nuse_ctr = 0\n",
		"public_id = vvcccccccccc\naes_key = 00112233445566778899aabbccddeeff\n"
		    "uid = 000000000000\nsession_ctr = 1\nuse_ctr = 256\n",
		"public_id = vvcccccccccc\naes_key = 00112233445566778899aabbccddeeff\n"
		    "uid = 000000000000\nsession_ctr = 1\n",
		"public_id = vvcccccccccc\naes_key = 00112233445566778899aabbccddeeff\n"
		    "uid = 000000000000\nsession_ctr = 1\nuse_ctr = 0\nuse_ctr = 0\n",
		"garbage\n",
	};
	struct keymgr_softtoken t;
	char path[512], err[256];
	size_t i;
	int fd;

	mktmp();
	snprintf(path, sizeof(path), "%s/bad.token", tmpdir);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		unlink(path);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
		ASSERT_TRUE(fd >= 0);
		ASSERT_INT_EQ(write(fd, bad[i], strlen(bad[i])), (long long)strlen(bad[i]));
		close(fd);
		err[0] = '\0';
		if (keymgr_softtoken_load(path, &t, err, sizeof(err)) != -EPROTO)
			FAIL_AT("bad token file %zu accepted", i);
		ASSERT_TRUE(err[0] != '\0');
	}
	unlink(path);
}
