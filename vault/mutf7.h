/* mutf7.h: the one modified UTF-7 decoder (RFC 3501 5.1.3, RFC 9051 5.1.3) and strict
 * UTF-8 check, shared by imapd (imapd/mutf7.c: mailbox names on the wire) and the
 * importer (vault/import.c: Dovecot folder names on disk). No I/O, no allocation,
 * bounded by the input: pure functions over bytes. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Strict UTF-8 (RFC 3629 table 3-7): no overlongs, no surrogates, <= U+10FFFF. */
bool mutf7_utf8_valid(const void *s, size_t len);

/* Decoder options. Without any: what IMAP requires so that a name has exactly one
 * encoding (imapd). */
#define MUTF7_ADJACENT_RUNS	1u	/* accept "&AOQ-&APY-" (two runs back to back) */
#define MUTF7_NO_ASCII		2u	/* refuse every encoded unit below U+0080, controls
					 * included (not only printable ASCII and NUL) */
/* Modified UTF-7 -> UTF-8, handed to put(arg, bytes, n) as it decodes. Strict: only
 * printable US-ASCII input, "&-" for "&", BASE64 runs closed by '-' that decode to
 * whole UTF-16 units with zero pad bits, valid surrogate pairs, no encoded printable
 * ASCII, no NUL, no empty run. 0; -EPROTO with a static reason in *err_out (may be
 * NULL); or put's negative return. On error put may have received part of the output. */
int mutf7_decode(const char *in, size_t len, unsigned flags,
    int (*put)(void *arg, const void *p, size_t n), void *arg, const char **err_out);
