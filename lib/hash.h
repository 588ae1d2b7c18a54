/* BLAKE2b-256 content digests (libsodium's crypto_generichash). */
#ifndef FERRY_LIB_HASH_H
#define FERRY_LIB_HASH_H

#include <sodium.h>
#include <stddef.h>
#include <stdint.h>

#define DIGEST_LEN 32
#define DIGEST_HEX_LEN 64

struct digest {
    uint8_t b[DIGEST_LEN];
};

struct hasher {
    crypto_generichash_state st;
};

void hasher_init(struct hasher *h);
void hasher_update(struct hasher *h, const void *data, size_t len);
void hasher_final(struct hasher *h, struct digest *out);

void digest_of(const void *data, size_t len, struct digest *out);
/* Hash a whole file. Returns 0 or -errno (with err_set detail naming path). */
int digest_file(const char *path, struct digest *out, uint64_t *size_out);
/* Hash the first `len` bytes of an open fd into h (reads from offset 0). */
int hasher_update_fd(struct hasher *h, int fd, uint64_t len);

void digest_hex(const struct digest *d, char out[DIGEST_HEX_LEN + 1]);
/* Returns 0, or FERRY_E_INVALID when hex is not 64 hex digits. */
int digest_parse(const char *hex, struct digest *out);
int digest_from_bytes(const uint8_t *b, size_t len, struct digest *out);
int digest_equal(const struct digest *a, const struct digest *b);

#endif
