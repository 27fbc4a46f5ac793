/* sandbox: the seccomp filter of the pre-login process (imapd-login).
 *
 * Two stages, stacked (a later seccomp filter can only take syscalls away):
 *   SANDBOX_LOGIN  at the start of imapd-login, before the first byte from the client:
 *                  what TLS, the parser, Argon2id and the login's vault access (open
 *                  the LMDB files, the OTP counter commit) need, nothing else: no
 *                  execve, no fork/clone, no socket/connect/bind/accept, no ptrace,
 *                  no setuid family, no kill of another process, no executable
 *                  mappings.
 *   SANDBOX_RELAY  when the login is done and the process only relays bytes between
 *                  TLS and the session's socketpair: the files are closed, so open,
 *                  mkdir, the LMDB writes and socketpair go too.
 * Anything outside the list kills the process (SECCOMP_RET_KILL_PROCESS, SIGSYS);
 * the master logs the abnormal end with the signal number. PR_SET_NO_NEW_PRIVS is
 * set first (a filter needs it without CAP_SYS_ADMIN, and it is right anyway).
 *
 * The lists were taken from `strace -f` of the login tests (plain, STARTTLS, implicit
 * TLS, LOGIN and AUTHENTICATE, failures with their delay, the unlock window, the
 * pre-login timeout, the relay). Sanitizer builds allow the few extra syscalls the
 * ASan/UBSan runtimes use to print a report (see sandbox.c). */
#pragma once

enum sandbox_stage { SANDBOX_LOGIN, SANDBOX_RELAY };

/* 0, or -errno when the filter cannot be built or loaded (the caller must not go on
 * unfiltered: it exits). */
int sandbox_apply(enum sandbox_stage stage) __attribute__((warn_unused_result));
