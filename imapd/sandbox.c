/* sandbox: seccomp allowlists for imapd-login (see sandbox.h). */
#include <errno.h>
#include <seccomp.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include "sandbox.h"
#include "log.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define SANDBOX_SANITIZER 1
#endif
#endif

/* Both stages: the relay loop, TLS (OpenSSL reads, writes and draws randomness),
 * malloc and libsodium's guarded allocations (mmap, mprotect, mlock, madvise), the
 * failure delay (nanosleep), log lines to stderr, and exit. */
static const char *const common[] = {
	"read", "readv", "write", "writev", "recvfrom", "recvmsg", "sendto", "sendmsg",
	"poll", "ppoll", "close", "fcntl", "shutdown",
	"munmap", "mremap", "madvise", "brk", "mlock", "munlock",
	"futex", "getrandom", "clock_gettime", "clock_nanosleep", "nanosleep",
	"gettimeofday", "time", "getpid", "gettid", "sched_yield",
	"fstat", "newfstatat",
	"rt_sigreturn", "rt_sigprocmask", "rt_sigaction", "restart_syscall", "exit", "exit_group",
};

/* Pre-login only: opening the vault (LMDB: mkdir of the data and spool directories
 * that exist already, open of lock.mdb/data.mdb, the reader-table lock, the meta
 * page reads), the OTP counter commit (pwrite, writev, fdatasync), and the fresh
 * socketpair handed to the session; seccomp(2) to load the narrower relay stage. */
static const char *const login_only[] = {
	"openat", "mkdir", "lseek", "pread64", "pwrite64", "pwritev", "fdatasync", "fsync",
	"msync", "fstatfs", "uname", "flock", "socketpair", "statx", "seccomp",
};

#ifdef SANDBOX_SANITIZER
/* The ASan/UBSan runtimes, to print a report: they read /proc/self/maps, install an
 * alternate signal stack, query limits and yield. Never execve/fork/ptrace: a report
 * is printed unsymbolized here rather than widening the filter to run a symbolizer. */
static const char *const sanitizer_extra[] = {
	"openat", "readlink", "readlinkat", "sigaltstack", "prctl",
	"prlimit64", "getrlimit", "sched_getaffinity", "pread64", "lseek", "getppid",
	"mincore",
};
#endif

static int allow_list(scmp_filter_ctx ctx, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int nr = seccomp_syscall_resolve_name(names[i]);

		if (nr == __NR_SCMP_ERROR)	/* not on this architecture */
			continue;
		int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
		if (r < 0)
			return r;
	}
	return 0;
}

int sandbox_apply(enum sandbox_stage stage)
{
	scmp_filter_ctx ctx;
	int r;

	/* The relay stage is loaded under the pre-login filter, which allows seccomp(2)
	 * (filters can only be added) but not prctl: no_new_privs is already set. */
	if (stage == SANDBOX_LOGIN && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -errno;
	if ((ctx = seccomp_init(SCMP_ACT_KILL_PROCESS)) == NULL)
		return -ENOMEM;
	if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)) < 0)
		goto out;
	if ((r = allow_list(ctx, common, sizeof(common) / sizeof(common[0]))) < 0)
		goto out;
	if (stage == SANDBOX_LOGIN &&
	    (r = allow_list(ctx, login_only, sizeof(login_only) / sizeof(login_only[0]))) < 0)
		goto out;
#ifdef SANDBOX_SANITIZER
	if ((r = allow_list(ctx, sanitizer_extra,
	    sizeof(sanitizer_extra) / sizeof(sanitizer_extra[0]))) < 0)
		goto out;
#endif
	/* No executable memory: mmap and mprotect only without PROT_EXEC (the process
	 * loads no code after fork). */
	if ((r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
	    SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0))) < 0 ||
	    (r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
	    SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0))) < 0)
		goto out;
	/* abort() (an assertion) signals this process only, so it ends with SIGABRT,
	 * not SIGSYS; kill/tgkill of any other process stays forbidden. */
	if ((r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
	    SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid(), 0))) < 0)
		goto out;
	r = seccomp_load(ctx);
out:
	seccomp_release(ctx);
	if (r < 0)
		log_err("seccomp: cannot install the %s filter: %s",
		    stage == SANDBOX_LOGIN ? "pre-login" : "relay", strerror(-r));
	return r < 0 ? r : 0;
}
