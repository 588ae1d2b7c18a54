/* ferry.yaml: the author's description of an artifact, parsed with libyaml
 * into the manifest's Spec message. Every error names file, line and key. */
#ifndef FERRY_LIB_SPEC_H
#define FERRY_LIB_SPEC_H

#include "manifest.pb-c.h"

#define SPEC_MAX_BYTES (1u << 20) /* ferry.yaml larger than this is refused */

/* Parse the YAML text of `display_path` (used only in messages).
 * On success *out is a new Ferry__Spec the caller frees with spec_free.
 * On failure returns FERRY_E_SPEC with err_detail() like
 *   "hello/ferry.yaml:7: key 'run.command': expected a list of strings". */
int spec_parse(const char *display_path, const char *text, size_t len, Ferry__Spec **out);
int spec_parse_file(const char *path, Ferry__Spec **out);
void spec_free(Ferry__Spec *spec);

/* A size as ferry.yaml writes one (`256Mi`, `1Gi`, `500M`, bytes; at most
 * 1Ti): NULL and *out in bytes, or why not. The model server reads
 * `model.max_body` with it, as the YAML gave it. */
const char *spec_size_parse(const char *text, uint64_t *out);

/* Name and version rules shared by spec, CLI and registry. */
int spec_name_ok(const char *name);
int spec_version_ok(const char *version);

#endif
