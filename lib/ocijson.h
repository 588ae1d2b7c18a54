/* The JSON documents of an OCI image (oci-layout, index.json, the image
 * manifest, the config, docker save's manifest.json), read as hostile input
 * with jansson: capped in size, duplicate keys refused, every field checked
 * for type, every digest "sha256:" and 64 lowercase hex digits, only known
 * media types. Pure functions over bytes: ociimage.c calls them on the
 * files of an image, the unit tests and the fuzz target on anything.
 * Failure: FERRY_E_INVALID (FERRY_E_LIMIT for a cap, FERRY_E_NOTFOUND for a
 * tag no entry has) with one line naming the document and the reason. */
#ifndef FERRY_LIB_OCIJSON_H
#define FERRY_LIB_OCIJSON_H

#include "manifest.pb-c.h"

#include <stddef.h>
#include <stdint.h>

#define OCI_JSON_MAX (4u << 20) /* index, manifest or config larger than this is refused */
#define OCI_LAYERS_MAX 256u
#define OCI_DIGEST_MAX 72 /* "sha256:" + 64 hex + NUL, rounded */
#define OCI_MEDIA_TYPE_MAX 128

struct oci_desc {
    char media_type[OCI_MEDIA_TYPE_MAX];
    char digest[OCI_DIGEST_MAX]; /* "sha256:HEX", checked */
    uint64_t size;
};

/* oci-layout: imageLayoutVersion 1.0.0. */
int oci_parse_layout(const uint8_t *buf, size_t len);

/* index.json (or a nested index): the manifest to use. With tag (not NULL
 * or ""), the entry whose org.opencontainers.image.ref.name annotation is
 * tag; else one entry is taken as it is, and of several the one for
 * linux/amd64. *nested is set when the chosen entry is itself an index. */
int oci_parse_index(const uint8_t *buf, size_t len, const char *tag, struct oci_desc *chosen,
                    int *nested);

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
int oci_parse_config(const uint8_t *buf, size_t len, size_t n_layers,
                     char (**diff_ids)[OCI_DIGEST_MAX]);

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

/* What a layer media type says of its bytes; -1 for a type ferry does not
 * unpack. */
enum oci_compression { OCI_TAR, OCI_GZIP, OCI_ZSTD };
int oci_layer_compression(const char *media_type);

/* s for a one-line message: at most 80 bytes, control characters as '?'. */
const char *oci_shown(const char *s, char *buf, size_t cap);

/* The kind section the oci plugin gets (ABI 2 kind_json): the oci: section
 * as written (kind_json) plus what publish resolved from the image, from
 * the signed manifest's Spec: "layers" [{file, digest, media_type, size}]
 * lowest first, "config_file" and "config_digest". *out is malloc'd. */
int oci_kind_json(const Ferry__OciSpec *oci, const char *kind_json, char **out);

#endif
