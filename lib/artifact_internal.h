/* Shared between artifact.c (publish, pull) and airgap.c (export, import). */
#ifndef FERRY_LIB_ARTIFACT_INTERNAL_H
#define FERRY_LIB_ARTIFACT_INTERNAL_H

#include "client.h"
#include "key.h"
#include "manifest.h"

/* Where the bytes of a digest are on this machine. */
typedef int (*locate_fn)(void *arg, const Ferry__Manifest *m, const struct digest *d,
                         char *path, size_t cap);

/* Offer a signed manifest, upload the blobs the registry lacks (found
 * through locate), commit. */
int artifact_upload_signed(struct client *c, const uint8_t *mbytes, size_t mlen,
                           Ferry__SignatureList *sigs, const Ferry__Manifest *m, locate_fn locate,
                           void *arg, int show_progress, struct transfer_result *out);

/* The two halves of artifact_upload_signed. The offer: the registry checks
 * the signature against its own trusted keys and answers with the blobs it
 * lacks (*reply, freed with client_response_free; out gets name, version,
 * digest and already_published). */
int artifact_offer(struct client *c, const uint8_t *mbytes, size_t mlen,
                   Ferry__SignatureList *sigs, const Ferry__Manifest *m,
                   struct transfer_result *out, Ferry__Wire__Response **reply);
/* Upload what the reply names (found through locate), then commit. */
int artifact_upload_missing(struct client *c, const Ferry__Wire__Response *reply,
                            const uint8_t *mbytes, size_t mlen, const Ferry__Manifest *m,
                            locate_fn locate, void *arg, int show_progress,
                            struct transfer_result *out);

/* A manifest as the registry sent it, checked to be name@version. */
struct fetched {
    Ferry__Wire__Response *resp; /* owns the bytes below */
    const uint8_t *mbytes;
    size_t mlen;
    Ferry__Manifest *m;
    struct digest digest;
};

/* Get the manifest of name@version, check it is what was asked for, and
 * check its signature when t holds keys. */
int artifact_fetch_manifest(struct client *c, const char *name, const char *version,
                            const struct trust *t, struct fetched *f);
void fetched_free(struct fetched *f);

#endif
