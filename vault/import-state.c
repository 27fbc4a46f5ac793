/* import-state.c: which source messages an import already stored (vault.h,
 * "Import progress").
 *
 * One record per imported message in db "users" under u 'I' TAG, with an empty
 * payload (the framing hash only). TAG = KDF(UMK, "import-mark", ident) truncated to
 * 16 bytes: a keyed BLAKE2b of the caller's identity of the source message. Without
 * the user's keys the tags are indistinguishable from random, so the disk shows how
 * many messages were imported (which the message records show anyway), never which
 * file, folder or message they came from. The records go with the user (user removal
 * deletes every u-prefixed record) and need no re-keying: the UMK survives passphrase
 * changes and rotations. */
#include <errno.h>
#include <string.h>
#include "vault-private.h"

#define IMPORT_TAG_BYTES 16
#define IMPORT_KEY_BYTES (4 + 1 + IMPORT_TAG_BYTES)
#define IMPORT_IDENT_MAX 1024

static int import_key(const struct vault_keys *k, const uint8_t *ident, size_t len,
    uint8_t key[IMPORT_KEY_BYTES])
{
	struct secret *tag = NULL;
	int r;

	if (k == NULL || k->umk == NULL || ident == NULL || len == 0 || len > IMPORT_IDENT_MAX)
		return -EINVAL;
	if ((r = crypto_kdf(k->umk, "import-mark", ident, len, 32, &tag)) < 0)
		return r;
	key_user(key, k->user_id, 'I');
	memcpy(key + 5, tag->p, IMPORT_TAG_BYTES);
	secret_free(&tag);
	return 0;
}

int vault_import_seen(struct vault_txn *t, const struct vault_keys *k, const uint8_t *ident,
    size_t len)
{
	uint8_t key[IMPORT_KEY_BYTES];
	const uint8_t *p;
	size_t n;
	int r;

	if ((r = import_key(k, ident, len, key)) < 0)
		return r;
	r = store_get(t, VDB_USERS, key, sizeof(key), true, &p, &n);
	if (r == -ENOENT)
		return 0;
	return r < 0 ? r : 1;
}

int vault_import_mark(struct vault_txn *t, const struct vault_keys *k, const uint8_t *ident,
    size_t len)
{
	uint8_t key[IMPORT_KEY_BYTES];
	int r;

	if ((r = import_key(k, ident, len, key)) < 0)
		return r;
	return store_put(t, VDB_USERS, key, sizeof(key), NULL, 0);
}
