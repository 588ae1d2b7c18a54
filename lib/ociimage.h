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

#include <stddef.h>
#include <stdint.h>

#define OCI_JSON_MAX (4u << 20) /* index, manifest or config larger than this is refused */
#define OCI_LAYERS_MAX 256u
#define OCI_DIGEST_MAX 72        /* "sha256:" + 64 hex + NUL, rounded */
#define OCI_MEDIA_TYPE_MAX 128
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

/* The kind section the oci plugin gets (ABI 2 kind_json): the oci: section
 * as written (kind_json) plus what publish resolved from the image, from
 * the signed manifest's Spec: "layers" [{file, digest, media_type, size}]
 * lowest first, "config_file" and "config_digest". *out is malloc'd. */
int oci_kind_json(const Ferry__OciSpec *oci, const char *kind_json, char **out);

/* ---- the JSON readers (pure: tests and the fuzz target call them) ---- */

struct oci_desc {
    char media_type[OCI_MEDIA_TYPE_MAX];
    char digest[OCI_DIGEST_MAX]; /* "sha256:HEX", checked */
    uint64_t size;
};

/* index.json (or a nested index): the manifest to use. One manifest is
 * taken as it is; of several, the one for linux/amd64. *nested is set when
 * the chosen entry is itself an index. */
int oci_parse_index(const uint8_t *buf, size_t len, struct oci_desc *chosen, int *nested);

struct oci_manifest {
    struct oci_desc config;
    struct oci_desc *layers;
    size_t n_layers;
};
int oci_parse_manifest(const uint8_t *buf, size_t len, struct oci_manifest *m);
void oci_manifest_free(struct oci_manifest *m);

/* The image config: an object, os linux when given, and when rootfs is
 * given, one diff_id per layer. diff_ids (may be NULL) gets them
 * ("sha256:HEX", each OCI_DIGEST_MAX bytes, n_layers of them, malloc'd). */
int oci_parse_config(const uint8_t *buf, size_t len, size_t n_layers, char (**diff_ids)[OCI_DIGEST_MAX]);

/* docker save's manifest.json: exactly one image, its Config and Layers
 * paths (checked relative paths, malloc'd; free with oci_docker_free). */
struct oci_docker {
    char *config;
    char **layers;
    size_t n_layers;
};
int oci_parse_docker(const uint8_t *buf, size_t len, struct oci_docker *d);
void oci_docker_free(struct oci_docker *d);

/* "sha256:" and 64 lowercase hex digits. */
int oci_digest_ok(const char *s);

#endif
