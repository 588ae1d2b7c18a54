/* Content-addressed blob store: ROOT/blobs/<2 hex>/<64 hex>, uploads in
 * ROOT/tmp/<64 hex>.part. A blob appears under its digest only after its
 * bytes were hashed, fsync'd, renamed and the directory fsync'd, so a crash
 * never leaves a partial blob under a real digest. Thread-safe. */
#ifndef FERRY_LIB_STORE_H
#define FERRY_LIB_STORE_H

#include "hash.h"

#include <pthread.h>
#include <stdint.h>

struct store_upload; /* in-progress upload, keeps the running hash */

struct store {
    char root[3072];
    pthread_mutex_t lock;
    pthread_cond_t progressed; /* an upload advanced or ended */
    struct store_upload *uploads;
    /* Called (without the lock) when an upload's hash is rebuilt from the
     * bytes on disk; for tests that need to act during it. */
    void (*rehash_hook)(void *arg, const struct digest *d, uint64_t bytes);
    void *hook_arg;
};

int store_open(struct store *s, const char *root);
void store_close(struct store *s);

void store_blob_path(const struct store *s, const struct digest *d, char *out, size_t cap);
/* 0 and *size when the blob is stored, FERRY_E_NOTFOUND when not. */
int store_has(const struct store *s, const struct digest *d, uint64_t *size);
/* Bytes of an unfinished upload already on disk (0 when none). */
uint64_t store_partial_size(struct store *s, const struct digest *d);
/* Append len bytes at offset, which must equal the bytes received so far
 * (a chunk that arrives ahead of its predecessor waits for it, bounded).
 * When offset + len == size the blob is verified and published; *complete
 * says so. Returns FERRY_E_DIGEST (and drops the upload) on mismatch. */
int store_partial_write(struct store *s, const struct digest *d, uint64_t size, uint64_t offset,
                        const void *data, size_t len, uint64_t *next_offset, int *complete);
/* Store a whole blob from memory (manifests, tests). */
int store_put(struct store *s, const void *data, size_t len, struct digest *out);
/* Read up to len bytes at offset. */
int store_read(const struct store *s, const struct digest *d, uint64_t offset, void *buf,
               size_t len, size_t *got);
int store_read_all(const struct store *s, const struct digest *d, size_t cap, uint8_t **buf,
                   size_t *len);

#endif
