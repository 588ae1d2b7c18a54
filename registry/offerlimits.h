/* What a publish may claim: every blob at most the registry's
 * --max-blob-size, and the bytes still to upload within the free space of
 * the data directory. Checked at Offer, before any byte is accepted. */
#ifndef FERRY_REGISTRY_OFFERLIMITS_H
#define FERRY_REGISTRY_OFFERLIMITS_H

#include "manifest.pb-c.h"
#include "store.h"

#include <stdint.h>

#define REGISTRY_DEFAULT_MAX_BLOB_SIZE (64ull << 30)

/* Pure: 0 when every file of m is at most max_blob and need (bytes still
 * to upload) fits in free_bytes; else FERRY_E_LIMIT naming what and why. */
int offer_limits_check(const Ferry__Manifest *m, uint64_t max_blob, uint64_t need,
                       uint64_t free_bytes);
/* The same against the store: need is the distinct blobs it lacks (less
 * the bytes of partial uploads already on disk), free space from statvfs
 * of its root. */
int offer_limits_check_store(struct store *st, const Ferry__Manifest *m, uint64_t max_blob);

#endif
