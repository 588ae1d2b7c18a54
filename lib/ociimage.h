/* Reading an OCI image at publish (runtime oci): an OCI image layout
 * directory, the same as a tar (skopeo's oci-archive, `umoci` output packed
 * with tar), or a `docker save` archive. The image is hostile input like
 * any archive: every JSON document is capped and parsed with jansson, every
 * blob's sha256 (libsodium) is checked while it is read, only known media
 * types pass, and a tar is extracted by libarchive into a private staging
 * directory under the bundle caps with nothing but regular files at safe
 * relative paths.
 *
 * The result is the image's config and layers as files the artifact carries
 * (path "oci/blobs/sha256/HEX", each hashed with BLAKE2b like any file, so
 * the content-addressed store dedupes layers across artifacts) and the
 * OciSpec filled with their paths, sha256 digests, media types and sizes. */
#ifndef FERRY_LIB_OCIIMAGE_H
#define FERRY_LIB_OCIIMAGE_H

#include "hash.h"
#include "manifest.pb-c.h"
#include "ocijson.h"

#include <stddef.h>
#include <stdint.h>

#define OCI_ARTIFACT_DIR "oci/blobs/sha256"

/* One file the artifact carries for the image: rel is its path in the
 * manifest, src where its bytes are on this machine. */
struct oci_blob {
    char rel[sizeof OCI_ARTIFACT_DIR + 65];
    char *src;
    uint64_t size;
    struct digest blake;
};

struct oci_image {
    char *staging;          /* a tar's extracted members; removed by oci_image_free */
    struct oci_blob *blobs; /* config first, then the layers, each path once */
    size_t n_blobs;
};

/* Read the image oci->image names (relative to dir unless absolute), check
 * it, and fill oci's layers, config_file and config_digest. Failure: a
 * negative code with one line naming the image, the part and the reason;
 * oci is left unchanged and nothing stays on disk. Free img on success with
 * oci_image_free. */
int oci_image_resolve(const char *dir, Ferry__OciSpec *oci, struct oci_image *img);
void oci_image_free(struct oci_image *img);

#endif
