/* The signed ferry.yaml as JSON, for plugins (ABI 2: ferry_workload's
 * spec_json and kind_json), so no plugin ever parses YAML.
 *
 * The document is first checked by spec_parse (same refusals, same
 * messages), then its tree is mapped to JSON as the author wrote it:
 *  - mappings become objects (keys in document order), sequences arrays;
 *  - a plain scalar is null (~, null, empty), a boolean (true/false), an
 *    integer, or a number when it reads as one (YAML 1.2 core schema),
 *    else a string; quoted and block scalars are always strings;
 *  - what ferry's own schema reads as text stays text whatever it looks
 *    like: `version: 1.0` is "1.0", env values and labels are strings;
 *  - durations stay as written ("10s").
 * The kind section is the top-level mapping named after the runtime, else
 * after the kind ("model", "notebook", "oci"); {} when there is none. */
#ifndef FERRY_LIB_SPECJSON_H
#define FERRY_LIB_SPECJSON_H

#include <jansson.h>
#include <stddef.h>

/* *spec_json and *kind_json are malloc'd compact JSON texts (free()).
 * Failure: FERRY_E_SPEC (or -ENOMEM) with err_detail() as spec_parse. */
int specjson_from_yaml(const char *display_path, const char *text, size_t len, char **spec_json,
                       char **kind_json);
/* The same as a tree (the caller json_decref's it), kind section not split. */
int specjson_tree(const char *display_path, const char *text, size_t len, json_t **out);

#endif
