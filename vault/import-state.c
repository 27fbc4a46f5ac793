/* import-state.c: which source messages an import already stored (vault.h,
 * "Import progress").
 *
 * One record per imported message in db "users" under u 'I' TAG, with an empty
 * payload (the framing hash only). TAG = the first 16 bytes of
 * BLAKE2b(K || ident) with K = KDF(UMK, "import-mark"): a keyed hash (BLAKE2b has no
 * length extension, so the key prefix makes it a PRF) of the caller's identity of
 * the source message. K is derived once per call, in locked memory; the hash state
 * that held it is wiped. Without the user's keys the tags are indistinguishable
 * from random, so the disk shows how many messages were imported (which the message
 * records show anyway), never which file, folder or message they came from. The
 * records go with the user (user removal deletes every u-prefixed record) and need
 * no re-keying: the UMK survives passphrase changes and rotations. */
#include <errno.h>
#include <string.h>
#include "vault-private.h"

#define IMPORT_TAG_BYTES 16
#define IMPORT_KEY_BYTES (4 + 1 + IMPORT_TAG_BYTES)

int vault_import_mark(struct vault_txn *t, const struct vault_keys *k, const uint8_t *idents,
    size_t ident_len, size_t n, bool *already)
{
	struct secret *K = NULL;
	int r = 0;

	if (k == NULL || k->umk == NULL || (idents == NULL && n > 0) || ident_len < 16 ||
	    ident_len > 64)
		return -EINVAL;
	if (n == 0)
		return 0;
	if ((r = crypto_kdf(k->umk, "import-mark", NULL, 0, 32, &K)) < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		struct crypto_hash_state h;
		uint8_t tag[CRYPTO_HASH_BYTES], key[IMPORT_KEY_BYTES];
		const uint8_t *p;
		size_t plen;

		crypto_hash_init(&h);
		crypto_hash_update(&h, K->p, K->len);
		crypto_hash_update(&h, idents + i * ident_len, ident_len);
		crypto_hash_final(&h, tag);
		crypto_wipe(&h, sizeof(h));
		key_user(key, k->user_id, 'I');
		memcpy(key + 5, tag, IMPORT_TAG_BYTES);
		r = store_get(t, VDB_USERS, key, sizeof(key), true, &p, &plen);
		if (r == 0) {
			already[i] = true;
			continue;
		}
		if (r != -ENOENT)
			break;
		already[i] = false;
		if ((r = store_put(t, VDB_USERS, key, sizeof(key), NULL, 0)) < 0)
			break;
	}
	secret_free(&K);
	return r;
}
