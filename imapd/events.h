/* events: sealmail-imapd's audit events (crypto/audit.h writes them; docs/audit.md
 * lists them) and the master's failed-login / replayed-OTP alerts with the optional
 * alert_command hook. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "audit.h"
#include "metrics.h"
#include "vault-config.h"

#define AUDIT_SID_HEX 16

/* Who and where: the fields every connection-level event carries. */
struct audit_ctx {
	char sid[AUDIT_SID_HEX + 1];	/* random per connection */
	char user[128];			/* "" before login */
	char peer[64];			/* "addr:port" / "[addr]:port" */
	char tls_info[128];		/* "TLSv1.3 TLS_AES_256_GCM_SHA384" or "" */
};

void audit_ctx_init(struct audit_ctx *c, const char *peer);	/* new random sid */
/* Adds session, user, src_addr, src_port, tls_version, tls_cipher. */
void audit_ctx_fields(struct audit_rec *r, const struct audit_ctx *c);
/* Adds "<key>":"<hash>" for a mailbox name (audit_mbox_hash), nothing without a key. */
void audit_mbox_field(struct audit_rec *r, const char *key, const char *name, size_t n);

/* login_success / login_failure (login process). cls: metrics_login_class. */
void audit_login(const struct audit_ctx *c, const char *user, enum metrics_login cls,
    bool full);

/* ---- alerts (master) ----------------------------------------------------------- */
void alert_init(const struct vault_config *cfg);
/* A failed login from ip (no port); user NULL when unknown. Emits "alert" events for
 * a replayed OTP against an existing user (always, on the first occurrence) and
 * when failures per user or per address reach alert_fail_threshold within
 * alert_fail_window (once per window). */
void alert_login_failed(const char *ip, const char *user, enum metrics_login cls);
/* Writes an alert event and runs alert_command with its JSON on stdin (no shell,
 * no argv beyond the program, rate-limited to 10 a minute; never waits for it). */
void alert_emit(struct audit_rec *r);
