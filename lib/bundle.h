/* Bundles: one tar (libarchive) carrying an artifact through an air gap.
 * Layout, and nothing else:
 *   manifest.pb      the manifest bytes exactly as signed
 *   signatures.pb    the encoded Ferry__SignatureList
 *   blobs/<hex>      one regular file per blob, named by its digest
 * Reading is hostile-input code: see bundle_extract. */
#ifndef FERRY_LIB_BUNDLE_H
#define FERRY_LIB_BUNDLE_H

#include <stddef.h>
#include <stdint.h>

struct bundle_writer;

int bundle_writer_open(const char *path, struct bundle_writer **out);
/* A whole member from memory. */
int bundle_writer_add(struct bundle_writer *w, const char *name, const void *data, size_t len);
/* A member streamed in pieces: begin with its exact size, write, end. */
int bundle_writer_begin(struct bundle_writer *w, const char *name, uint64_t size);
int bundle_writer_write(struct bundle_writer *w, const void *data, size_t len);
int bundle_writer_end(struct bundle_writer *w);
/* Finishes the archive; on failure (or abort) the file is removed. */
int bundle_writer_close(struct bundle_writer *w);
void bundle_writer_abort(struct bundle_writer *w);

struct bundle_limits {
    uint64_t max_entries;     /* members, directories included */
    uint64_t max_total_bytes; /* sum of member sizes */
    uint64_t max_entry_bytes; /* one member */
};

/* Defaults: 100000 entries, 64 GiB total, 16 GiB per entry. Two environment
 * variables override them (positive decimal integers; anything else is
 * ignored): FERRY_BUNDLE_MAX_ENTRIES sets max_entries, FERRY_BUNDLE_MAX_BYTES
 * sets max_total_bytes (and lowers max_entry_bytes to it if smaller). This is
 * the one place defaults live; bundle_extract with lim == NULL uses them. */
void bundle_limits_default(struct bundle_limits *l);

/* Extract the bundle at `path` into `staging_dir` (which must exist and be
 * empty). Only tar (optionally gzip or zstd compressed) is accepted. Every
 * entry must be a regular file or directory named manifest.pb,
 * signatures.pb, blobs/ or blobs/<64 lowercase hex>; anything else -- '..',
 * absolute paths, symlinks, hardlinks, devices, FIFOs, sockets, setuid/setgid
 * or sticky bits, unknown names, duplicates -- is refused with
 * FERRY_E_UNSAFE_ENTRY / FERRY_E_UNSAFE_PATH and err_detail() naming the
 * entry. Caps give FERRY_E_LIMIT. Writing goes through archive_write_disk
 * with the SECURE_* flags as a second line of defence. On failure nothing is
 * left outside staging_dir (the caller removes staging_dir). */
int bundle_extract(const char *path, const char *staging_dir, const struct bundle_limits *lim);

#endif
