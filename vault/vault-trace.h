/* vault-trace: the trace header fields a delivery prepends to a message (RFC 5321
 * 4.4), and the one function that starts a vault delivery with them. LMTP
 * (imapd/lmtp.c) uses it for every recipient, `sealmail-vault deliver` for its one
 * (with its --from/--rcpt, or the environment Postfix's local(8)/pipe(8) set), so
 * the two delivery paths cannot diverge. Part of the vault library: no crypto of
 * its own, no I/O.
 *
 * What is prepended, in this order (as Dovecot's LMTP does):
 *   Return-Path: <sender>
 *   Delivered-To: <rcpt>
 *   Received: from HELO (PEER)
 *   	by HOST (sealmail) with LMTP id ID
 *   	for <rcpt>; DATE
 * Any field left NULL/"" is omitted (Return-Path and Delivered-To), or the clause
 * is (the "from" clause of Received). Outside text (HELO, addresses) is cleaned:
 * control characters become '?', lengths are capped. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "vault.h"

#define VAULT_TRACE_FMT_MAX 2048	/* upper bound of the formatted fields (<= VAULT_TRACE_MAX) */

struct vault_trace {
	const char *sender;	/* envelope sender without <>; "" = null sender; NULL = no
				 * Return-Path */
	const char *rcpt;	/* envelope recipient; NULL = no Delivered-To, no "for" */
	const char *helo;	/* LHLO argument; NULL = no "from" clause */
	const char *peer;	/* "[192.0.2.1]", "local", ...; with helo */
	const char *host;	/* this server (cfg->hostname) */
	const char *proto;	/* "LMTP", "local" ... ("with PROTO") */
	const char *id;		/* session/transaction id; NULL = none */
	time_t now;
};

/* Formats the fields into buf (NUL-terminated). Returns the length (< bufsz), or
 * -E2BIG if bufsz is too small (VAULT_TRACE_FMT_MAX always suffices). */
int vault_trace_format(const struct vault_trace *t, char *buf, size_t bufsz);

/* vault_delivery_begin for user, then writes the trace fields as the first bytes of
 * the message (vault_delivery_write_trace: they do not count against
 * max_message_size). On error nothing is left open (*out NULL). Errors as
 * vault_delivery_begin / vault_delivery_write. */
int vault_trace_delivery_begin(struct vault *v, const char *user, const struct vault_trace *t,
    struct vault_delivery **out);
