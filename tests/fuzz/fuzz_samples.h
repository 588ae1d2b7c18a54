/* Valid inputs of every kind, built with libferry's own encoders and signed
 * with the fixed fuzz keys: the seed generator writes them as corpora, and
 * the wire target replays the requests at start so the registry it fuzzes
 * already holds an artifact, a host and a deployment. */
#ifndef FERRY_TESTS_FUZZ_SAMPLES_H
#define FERRY_TESTS_FUZZ_SAMPLES_H

#include "hash.h"
#include "manifest.pb-c.h"

#include <stddef.h>
#include <stdint.h>

#define FUZZ_SAMPLE_FILES 3

/* One small artifact: a tree under a scratch dir, its encoded manifest and
 * the publisher's signature list over it. */
struct fuzz_artifact {
    char dir[4096];
    uint8_t *mbytes, *sbytes;
    size_t mlen, slen;
    struct digest mdigest;
    Ferry__Manifest *m;
    const char *blob[FUZZ_SAMPLE_FILES];   /* content of each file, in manifest order */
    size_t blob_len[FUZZ_SAMPLE_FILES];
};

/* yaml: the ferry.yaml text (its name/version name the artifact). Exits on
 * failure. */
void fuzz_artifact_make(const char *yaml, struct fuzz_artifact *a);
void fuzz_artifact_free(struct fuzz_artifact *a);

/* Called once per sample with a short name ("offer", "put_chunk-0", ...). */
typedef void (*fuzz_emit_fn)(void *arg, const char *name, const uint8_t *buf, size_t len);

/* One encoded Request of every type, in an order that makes sense to a
 * registry: publish a, register the host, deploy, report, poll, list. */
void fuzz_requests(const struct fuzz_artifact *a, fuzz_emit_fn emit, void *arg);

/* Encoded DesiredStates: a deploy of a, an undeploy, a record for other
 * labels, an unsigned one. */
void fuzz_desired_states(const struct fuzz_artifact *a, fuzz_emit_fn emit, void *arg);

/* ferry.yaml texts of every kind (app, model, notebook) and form. */
extern const char *const fuzz_spec_samples[];
extern const size_t fuzz_n_spec_samples;

#endif
