/* server: sealmail-imapd's processes (master, login, session). The process model is
 * described at the top of server.c; the messages between them in proto.h. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <openssl/ssl.h>
#include "vault-config.h"

/* Process names (prctl PR_SET_NAME, /proc/PID/comm): tests and admins find them. */
#define PROC_NAME_MASTER "imapd-master"
#define PROC_NAME_LOGIN "imapd-login"
#define PROC_NAME_SESSION "imapd-session"

/* What the master hands a login process at fork. */
struct login_args {
	const struct vault_config *cfg;
	SSL_CTX *ctx;		/* NULL: no TLS configured */
	int fd;			/* the client connection (non-blocking) */
	int ctl;		/* SEQPACKET control socket to the master */
	bool implicit_tls;	/* accepted on imaps_listen */
	bool loopback;		/* peer is 127.0.0.0/8 or ::1 */
	char peer[64];		/* "addr:port" / "[addr]:port" */
	unsigned prior_failures;	/* failed logins from this address so far */
};

/* The master: binds, drops root, accepts and forks. Returns the exit status. */
int server_run(const char *config_path);
/* --check-config: loads and validates the file, prints each problem on its own line
 * to out (stderr), "FILE: OK" to stdout on success. Returns the exit status. */
int server_check_config(const char *config_path, FILE *out);

/* Children. Neither returns. */
__attribute__((noreturn)) void login_main(const struct login_args *a);
__attribute__((noreturn)) void session_main(const struct vault_config *cfg, uint32_t user_id,
    const char *user, int ctl);

/* Shared helpers (server.c). */
void proc_set_name(const char *name);
/* Closes every fd >= 3 except those listed. */
void proc_close_fds_except(const int *keep, size_t n);
/* Child side after fork: default signal dispositions, empty mask, die with the
 * master (PR_SET_PDEATHSIG); exits if parent (the master's pid) is already gone. */
void proc_child_reset(pid_t parent);
/* The pre-login failure delay for the n-th failure (n >= 1): 0.5 s * 2^(n-1), capped
 * at 15 s, in milliseconds. */
unsigned login_fail_delay_ms(unsigned n);
