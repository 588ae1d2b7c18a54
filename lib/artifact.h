/* The client side of artifacts: publish, pull, export and import. Every
 * operation verifies before anything becomes visible. */
#ifndef FERRY_LIB_ARTIFACT_H
#define FERRY_LIB_ARTIFACT_H

#include "client.h"
#include "key.h"
#include "manifest.h"

struct transfer_result {
    char name[72];
    char version[72];
    char digest_hex[DIGEST_HEX_LEN + 1];
    size_t blobs_total;    /* distinct blobs in the manifest */
    size_t blobs_uploaded; /* blobs the registry lacked */
    uint64_t bytes_uploaded;
    int already_published; /* same content was there: nothing to do */
};

/* Hash dir, sign with k, upload only what the registry lacks, commit. */
int artifact_publish(struct client *c, const char *dir, const struct key_secret *k,
                     int show_progress, struct transfer_result *out);

/* The same with a provenance statement ("builder=ID,commit=SHA,...",
 * NULL for none) signed by k over the manifest digest and added to the
 * signature list (docs/governance.md). */
int artifact_publish_ex(struct client *c, const char *dir, const struct key_secret *k,
                        int show_progress, const char *provenance, struct transfer_result *out);

/* Fetch name@version, verify against t, materialize into out_dir atomically.
 * An interrupted pull leaves its staging directory (a hidden sibling of
 * out_dir) and the next pull resumes from the bytes already there. */
int artifact_pull(struct client *c, const char *name, const char *version, const char *out_dir,
                  const struct trust *t, int show_progress, struct transfer_result *out);

struct pull_options {
    int show_progress;
    const char *cache_dir;              /* blob cache: reuse and remember verified files */
    const struct digest *expect_digest; /* refuse any other manifest */
    char *signer;                       /* KEY_ID_LEN+1: the trusted key that signed it */
};
int artifact_pull_ex(struct client *c, const char *name, const char *version, const char *out_dir,
                     const struct trust *t, const struct pull_options *po,
                     struct transfer_result *out);

/* Materialize a manifest the caller has verified (md is its digest) into
 * out_dir, like artifact_pull_ex after the manifest: every file from the
 * blob cache when there and intact, else from c, verified, then renamed into
 * place. c may be NULL: then every byte must come from the cache. */
int artifact_materialize(struct client *c, const Ferry__Manifest *m, const struct digest *md,
                         const char *out_dir, const struct pull_options *po,
                         struct transfer_result *out);

/* Write name@version as a bundle; blobs are verified while written. When t
 * holds keys the signature is verified too. */
int artifact_export(struct client *c, const char *name, const char *version,
                    const char *tar_path, const struct trust *t, struct transfer_result *out);

/* Extract a bundle into a private staging directory, verify every digest
 * (and the signature when t holds keys), then upload it like a publish; the
 * registry checks the signature against its own trusted keys. */
int artifact_import(struct client *c, const char *tar_path, const struct trust *t,
                    int show_progress, struct transfer_result *out);

/* Split "name@version". */
int artifact_ref_parse(const char *ref, char *name, size_t ncap, char *version, size_t vcap);

#endif
