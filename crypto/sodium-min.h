/* sodium-min.h: the libsodium headers crypto/ uses, without <sodium.h>, whose
 * crypto_hash.h and crypto_pwhash.h declare names that crypto.h also uses. */
#pragma once
#include <sodium/core.h>
#include <sodium/crypto_aead_chacha20poly1305.h>
#include <sodium/crypto_aead_xchacha20poly1305.h>
#include <sodium/crypto_generichash.h>
#include <sodium/crypto_pwhash_argon2id.h>
#include <sodium/crypto_scalarmult.h>
#include <sodium/randombytes.h>
#include <sodium/runtime.h>
#include <sodium/utils.h>
