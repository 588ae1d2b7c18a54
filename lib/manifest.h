/* The manifest: every file of an artifact (path, size, exec bit, digest) plus
 * the parsed ferry.yaml. Encoded once; those bytes are signed and stored. */
#ifndef FERRY_LIB_MANIFEST_H
#define FERRY_LIB_MANIFEST_H

#include "hash.h"
#include "key.h"
#include "manifest.pb-c.h"

#define MANIFEST_FORMAT 1
#define MANIFEST_MAX_BYTES (8u << 20)
#define MANIFEST_MAX_FILES 100000u
#define SIGNATURES_MAX 16u
#define MANIFEST_SPEC_FILE "ferry.yaml"

/* Walk dir (no symlinks or special files), hash every regular file, parse
 * dir/ferry.yaml. Result sorted by path; caller frees with manifest_free.
 * ferry.yaml itself is carried as spec_yaml, not as a file entry. */
int manifest_build(const char *dir, Ferry__Manifest **out);
/* The same, keeping what an OCI image (runtime oci) brought along: img gets
 * the image's files and where their bytes are (a tar image's staging dir
 * lives until oci_image_free). img may be NULL. On failure img is empty. */
struct oci_image;
int manifest_build_ex(const char *dir, Ferry__Manifest **out, struct oci_image *img);
int manifest_encode(const Ferry__Manifest *m, uint8_t **buf, size_t *len);
/* Decode and validate untrusted bytes: spec present and well-formed, every
 * path safe, paths sorted and unique, digests 32 bytes. */
int manifest_decode(const uint8_t *buf, size_t len, Ferry__Manifest **out);
void manifest_free(Ferry__Manifest *m);

/* A one-element signature list by k over buf. Free with signatures_free. */
int manifest_sign(const uint8_t *buf, size_t len, const struct key_secret *k,
                  Ferry__SignatureList **out);
int signatures_decode(const uint8_t *buf, size_t len, Ferry__SignatureList **out);
int signatures_encode(const Ferry__SignatureList *s, uint8_t **buf, size_t *len);
void signatures_free(Ferry__SignatureList *s);

/* 0 when at least one signature in sigs is a valid signature over buf by a
 * key in t; signer (may be NULL) receives that key's id. Else
 * FERRY_E_UNTRUSTED (naming the key ids seen) or FERRY_E_SIGNATURE. */
int manifest_verify(const uint8_t *buf, size_t len, const Ferry__SignatureList *sigs,
                    const struct trust *t, char signer[KEY_ID_LEN + 1]);

/* protobuf-c decodes an over-long encoding of field number 0 (which is not
 * valid protobuf) into an unknown field, then re-encodes it as a plain 0
 * tag that it refuses to decode. A message ferry re-encodes after receiving
 * it (a signature list, a signed record) would be stored fine and never
 * read back, so such messages are refused on receipt: FERRY_E_PROTOCOL
 * naming `what`. Checks m and every message under it. */
int pb_refuse_field_zero(const ProtobufCMessage *m, const char *what);

uint64_t manifest_total_bytes(const Ferry__Manifest *m);

#endif
