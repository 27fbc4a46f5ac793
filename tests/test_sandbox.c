/* The imapd-login seccomp filter (imapd/sandbox.c): each stage is loaded in a forked
 * child, which then does one thing; the parent checks how it ended. Allowed work
 * (I/O on a pipe, malloc, an LMDB-style open/pwrite/fdatasync before the relay
 * stage) must succeed; anything outside the lists must end the child with SIGSYS. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "harness.h"
#include "sandbox.h"

static char tmpdir[] = "/tmp/sealmail-sandbox-XXXXXX";

enum probe { P_OK_IO, P_OK_FILES, P_EXEC, P_SOCKET, P_EXECMEM, P_KILL_PARENT,
	P_OPEN_IN_RELAY, P_FORK, P_SETUID };

static void probe(enum probe p, enum sandbox_stage stage)
{
	char path[256];
	int fds[2], fd;

	if (p == P_OK_IO && pipe(fds) < 0)	/* made before the filter, like the sockets */
		_exit(89);
	if (sandbox_apply(SANDBOX_LOGIN) < 0)
		_exit(90);
	if (stage == SANDBOX_RELAY && sandbox_apply(SANDBOX_RELAY) < 0)
		_exit(91);
	switch (p) {
	case P_OK_IO: {
		char buf[4] = { 0 };
		void *big = malloc(8 << 20);	/* mmap'd by malloc */

		if (big == NULL)
			_exit(92);
		memset(big, 1, 8 << 20);
		free(big);
		_exit(write(fds[1], "abc", 3) == 3 && read(fds[0], buf, 3) == 3 ? 0 : 93);
	}
	case P_OK_FILES:
		snprintf(path, sizeof(path), "%s/data", tmpdir);
		if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0 ||
		    pwrite(fd, "x", 1, 4096) != 1 || fdatasync(fd) < 0 ||
		    mkdir(tmpdir, 0700) == 0 || errno != EEXIST)
			_exit(94);
		close(fd);
		_exit(0);
	case P_EXEC:
		execl("/bin/true", "true", (char *)NULL);
		_exit(95);
	case P_SOCKET:
		(void)socket(AF_INET, SOCK_STREAM, 0);
		_exit(96);
	case P_EXECMEM:
		(void)mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		_exit(97);
	case P_KILL_PARENT:
		(void)kill(getppid(), 0);
		_exit(98);
	case P_OPEN_IN_RELAY:
		snprintf(path, sizeof(path), "%s/data", tmpdir);
		(void)open(path, O_RDONLY | O_CLOEXEC);
		_exit(99);
	case P_FORK:
		(void)fork();
		_exit(100);
	case P_SETUID:
		(void)setuid(0);
		_exit(101);
	}
	_exit(102);
}

/* The child's wait status for probe p under stage. */
static void rm_tmp(void)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/data", tmpdir);
	(void)unlink(path);
	(void)rmdir(tmpdir);
}

static int run(enum probe p, enum sandbox_stage stage)
{
	int status = -1;
	pid_t pid;

	if (tmpdir[strlen(tmpdir) - 1] == 'X') {
		if (mkdtemp(tmpdir) == NULL)
			return -1;
		atexit(rm_tmp);
	}
	fflush(NULL);	/* the child exits with _exit; nothing buffered is doubled */
	pid = fork();

	if (pid == 0)
		probe(p, stage);
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return status;
}

static bool killed_by_sigsys(int st)
{
	return WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS;
}

TEST(allowed_work_runs)
{
	int st;

	st = run(P_OK_IO, SANDBOX_LOGIN);
	ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	st = run(P_OK_IO, SANDBOX_RELAY);
	ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	st = run(P_OK_FILES, SANDBOX_LOGIN);
	ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

TEST(forbidden_syscalls_kill)
{
	static const enum probe bad[] = { P_EXEC, P_SOCKET, P_EXECMEM, P_KILL_PARENT,
		P_FORK, P_SETUID };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ASSERT_TRUE(killed_by_sigsys(run(bad[i], SANDBOX_LOGIN)));
		ASSERT_TRUE(killed_by_sigsys(run(bad[i], SANDBOX_RELAY)));
	}
}

/* As in imapd/sandbox.c: sanitizer builds let open through (the runtime reads
 * /proc/self/maps to print a report). */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZER_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define SANITIZER_BUILD 1
#endif
#endif

TEST(relay_stage_is_narrower)
{
#ifndef SANITIZER_BUILD
	ASSERT_TRUE(killed_by_sigsys(run(P_OPEN_IN_RELAY, SANDBOX_RELAY)));
#endif
	ASSERT_TRUE(killed_by_sigsys(run(P_OK_FILES, SANDBOX_RELAY)));
	/* the same open is allowed before the relay stage */
	ASSERT_TRUE(WIFEXITED(run(P_OPEN_IN_RELAY, SANDBOX_LOGIN)));
}
