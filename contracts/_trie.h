/* What both compiled trees (_memory_tree.c, _state_tree.c) share: the hash and a path's
 * nibbles (docs/STATE.md §3). */
#ifndef YUXI_TRIE_H
#define YUXI_TRIE_H

#include <openssl/sha.h>
#include <stddef.h>
#include <stdint.h>

/* OpenSSL's low-level SHA-256 (deprecated in 3.0, still shipped): the one-shot SHA256()
   goes through an EVP fetch with locks on every call, which cost more than hashing a node. */
static inline void sha256(const void *data, size_t length, uint8_t out[32]) {
    SHA256_CTX context;
    SHA256_Init(&context);
    SHA256_Update(&context, data, length);
    SHA256_Final(out, &context);
}

/* The nibble of `path` (32 bytes) at `depth` (0..63), high nibble first. */
static inline int nibble(const uint8_t *path, int depth) {
    uint8_t byte = path[depth >> 1];
    return (depth & 1) ? (byte & 0x0F) : (byte >> 4);
}

#endif
