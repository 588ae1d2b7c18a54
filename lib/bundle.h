/* Bundles: one tar (libarchive) carrying an artifact through an air gap.
 * Layout, in this order, and nothing else:
 *   manifest.pb      the manifest bytes exactly as signed   (first entry)
 *   signatures.pb    the encoded Ferry__SignatureList       (second entry)
 *   blobs/           optional directory entry
 *   blobs/<hex>      one regular file per blob, named by its digest
 * The signed part comes first so that a reader can verify it before it reads
 * any blob; a bundle that does not begin with it is refused. Reading is
 * hostile-input code: see bundle_extract_verified. */
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

/* Built-in caps: 100000 entries, 64 GiB total, 16 GiB per entry. Two
 * environment variables can only lower them: FERRY_BUNDLE_MAX_ENTRIES sets
 * max_entries, FERRY_BUNDLE_MAX_BYTES sets max_total_bytes (and lowers
 * max_entry_bytes to it if smaller). A value that is not a positive decimal
 * integer, or is above the built-in cap, is an error (FERRY_E_INVALID, the
 * detail names the variable) and *l holds the built-in caps. This is the one
 * place defaults live; bundle_extract with lim == NULL uses them. */
int bundle_limits_default(struct bundle_limits *l);

/* What a verified manifest lets into staging. */
struct bundle_blob {
    char hex[65]; /* the digest, 64 lowercase hex */
    uint64_t size;
};
struct bundle_plan {
    struct bundle_blob *blobs; /* malloc'd by the verifier, freed by the reader */
    size_t n;
    uint64_t carried; /* the bytes of all the manifest's blobs: what an honest
                       * bundle carries, whether or not they are extracted */
};

/* Called once, after manifest.pb and signatures.pb (the first two entries)
 * have been read into memory and before any blob is read: verify them and
 * fill plan with the blobs to extract. A negative return stops the
 * extraction with that code and detail. The bytes are valid during the
 * call only. */
typedef int (*bundle_verify_fn)(void *arg, const uint8_t *manifest, size_t mlen,
                                const uint8_t *signatures, size_t slen,
                                struct bundle_plan *plan);

/* Extract the bundle at `path` into `staging_dir` (which must exist and be
 * empty). Only tar (optionally gzip or zstd compressed) is accepted. Every
 * entry must be a regular file or directory named manifest.pb,
 * signatures.pb, blobs/ or blobs/<64 lowercase hex>; anything else -- '..',
 * absolute paths, symlinks, hardlinks, devices, FIFOs, sockets, setuid/setgid
 * or sticky bits, unknown names, duplicates -- is refused with
 * FERRY_E_UNSAFE_ENTRY / FERRY_E_UNSAFE_PATH and err_detail() naming the
 * entry, as is a bundle whose first two entries are not manifest.pb and
 * signatures.pb. Caps give FERRY_E_LIMIT. Writing goes through archive_write_disk
 * with the SECURE_* flags as a second line of defence. On failure nothing is
 * left outside staging_dir (the caller removes staging_dir). */
int bundle_extract(const char *path, const char *staging_dir, const struct bundle_limits *lim);

/* The same checks, and the verified form import uses: manifest.pb and
 * signatures.pb must be the first two entries; they go to verify, not to
 * disk. Then only the blobs of the plan are written, each only if its header
 * size is the plan's (a larger one, as a decompression bomb would declare,
 * is refused before a byte is written), so staging never holds more than
 * the plan's total. Other blob entries are skipped unread; a bundle carrying
 * more than plan.carried plus 16 MiB is refused. With verify NULL it is
 * bundle_extract: every well-formed member is written, heads included (a
 * shape check, for tests and tools that do not import). */
int bundle_extract_verified(const char *path, const char *staging_dir,
                            const struct bundle_limits *lim, bundle_verify_fn verify, void *arg);

#endif
