/* vault-import.h: `sealmail-vault import` (compiled into the program only).
 *
 * Two steps so that a bad source is reported before the user is asked for a
 * passphrase and an OTP is spent: import_source_open scans the source (folders,
 * message files, sizes), import_source_run imports it with unlocked keys. */
#pragma once
#include <stdbool.h>
#include "vault.h"

struct import_opts {
	const char *user;
	const char *maildir;		/* exactly one of maildir, mbox */
	const char *mbox;
	const char *target;		/* NULL: INBOX (mbox) / top level (Maildir) */
	bool progress;			/* \r progress lines on stderr */
};
struct import_source;

/* Prints what is wrong (cli_err) and returns -errno. */
int import_source_open(const struct import_opts *o, struct import_source **out);
/* Returns the exit status: CLI_EXIT_OK when every message is in the vault (imported
 * now or by an earlier run), CLI_EXIT_ERR otherwise (each problem printed). */
int import_source_run(struct import_source *s, struct vault *v, struct vault_keys *k,
    const struct vault_config *cfg);
void import_source_free(struct import_source **s);
