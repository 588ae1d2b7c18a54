/* ferry.yaml -> JSON (see specjson.h for the mapping). libyaml loads the
 * tree, jansson builds and prints the JSON: no hand-written parser or
 * printer. The document has been through spec_parse first, so it has no
 * aliases, no unknown tags, one document and a bounded depth. */
#include "specjson.h"
#include "error.h"
#include "spec.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define PATH_DEPTH_MAX 20

/* Where ferry's schema says "text": the value stays a JSON string even
 * when it looks like a number or a boolean. "*" is any key, "[]" any item. */
static const char *const text_paths[] = {
    "name", "version", "kind", "runtime", "description", "schedule",
    "run.command.[]", "run.mode", "run.user", "run.env.*", "labels.*",
    "health.http.path", "health.command.[]",
    "model.format", "model.file", "model.entry", "model.method", "model.card",
    "model.reference", "model.inputs.[].name", "model.inputs.[].datatype",
    "model.outputs.[].name", "model.outputs.[].datatype", "model.batching.max_delay", "model.max_body",
    "notebook.kernel", "notebook.notebook", "notebook.schedule",
    "oci.image", "oci.command.[]", "oci.env.*", "oci.workdir", "oci.user", "oci.ports.[]",
    "oci.network", "oci.tag",
};

struct walk {
    yaml_document_t *doc;
    const char *seg[PATH_DEPTH_MAX];
    int depth;
};

static bool path_is_text(const struct walk *w)
{
    for (size_t i = 0; i < sizeof text_paths / sizeof *text_paths; i++) {
        const char *p = text_paths[i];
        int d = 0;
        bool ok = true;
        while (ok && *p) {
            const char *dot = strchr(p, '.');
            size_t n = dot ? (size_t)(dot - p) : strlen(p);
            if (d >= w->depth)
                ok = false;
            else if (!(n == 1 && *p == '*' && strcmp(w->seg[d], "[]") != 0) &&
                     !(strlen(w->seg[d]) == n && memcmp(w->seg[d], p, n) == 0))
                ok = false;
            d++;
            p += n + (dot ? 1 : 0);
        }
        if (ok && d == w->depth)
            return true;
    }
    return false;
}

static bool has_tag(const yaml_node_t *n, const char *tag)
{
    return n->tag && strcmp((const char *)n->tag, tag) == 0;
}

static bool is_int(const char *s)
{
    if (*s == '-' || *s == '+')
        s++;
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static bool is_float(const char *s)
{
    if (*s == '-' || *s == '+')
        s++;
    int digits = 0;
    while (*s >= '0' && *s <= '9')
        s++, digits++;
    if (*s == '.') {
        s++;
        while (*s >= '0' && *s <= '9')
            s++, digits++;
    }
    if (!digits)
        return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '-' || *s == '+')
            s++;
        if (!(*s >= '0' && *s <= '9'))
            return false;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
}

static json_t *scalar_json(const struct walk *w, const yaml_node_t *n)
{
    const char *s = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    /* Quoted and block scalars are text. The loader tags every untagged
     * scalar !!str, so a plain one is resolved by its text, as YAML 1.2's
     * core schema does. */
    if (path_is_text(w) || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return json_stringn(s, len);
    if (has_tag(n, YAML_NULL_TAG) || !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
        !strcmp(s, "NULL"))
        return json_null();
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        return json_true();
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        return json_false();
    char *end;
    if (is_int(s)) {
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno == 0 && *end == '\0')
            return json_integer((json_int_t)v);
    }
    if (is_float(s)) {
        double v = strtod(s, &end);
        if (*end == '\0' && isfinite(v))
            return json_real(v);
    }
    return json_stringn(s, len);
}

static json_t *node_json(struct walk *w, const yaml_node_t *n)
{
    if (w->depth >= PATH_DEPTH_MAX)
        return NULL; /* spec_parse bounds the depth well below this */
    if (n->type == YAML_SCALAR_NODE)
        return scalar_json(w, n);
    if (n->type == YAML_SEQUENCE_NODE) {
        json_t *a = json_array();
        w->seg[w->depth++] = "[]";
        for (yaml_node_item_t *it = n->data.sequence.items.start; a && it < n->data.sequence.items.top; it++) {
            json_t *v = node_json(w, yaml_document_get_node(w->doc, *it));
            if (!v || json_array_append_new(a, v) < 0) {
                json_decref(a);
                a = NULL;
            }
        }
        w->depth--;
        return a;
    }
    if (n->type == YAML_MAPPING_NODE) {
        json_t *o = json_object();
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; o && p < n->data.mapping.pairs.top; p++) {
            const yaml_node_t *k = yaml_document_get_node(w->doc, p->key);
            if (k->type != YAML_SCALAR_NODE) {
                json_decref(o);
                return NULL;
            }
            const char *key = (const char *)k->data.scalar.value;
            w->seg[w->depth++] = key;
            json_t *v = node_json(w, yaml_document_get_node(w->doc, p->value));
            w->depth--;
            if (!v || json_object_set_new(o, key, v) < 0) {
                json_decref(o);
                o = NULL;
            }
        }
        return o;
    }
    return NULL;
}

int specjson_tree(const char *display_path, const char *text, size_t len, json_t **out)
{
    const char *file = display_path ? display_path : "ferry.yaml";
    Ferry__Spec *spec = NULL;
    int rc = spec_parse(file, text, len, &spec); /* the same refusals, the same lines */
    if (rc < 0)
        return rc;
    spec_free(spec);
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        return err_set(-ENOMEM, "out of memory reading %s", file);
    yaml_parser_set_input_string(&parser, (const unsigned char *)(text ? text : ""), len);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_parser_delete(&parser);
        return err_set(FERRY_E_SPEC, "%s: not valid YAML", file);
    }
    yaml_parser_delete(&parser);
    struct walk w = {.doc = &doc};
    const yaml_node_t *root = yaml_document_get_root_node(&doc);
    json_t *j = root ? node_json(&w, root) : NULL;
    yaml_document_delete(&doc);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return err_set(-ENOMEM, "%s: could not convert to JSON", file);
    }
    *out = j;
    return 0;
}

int specjson_from_yaml(const char *display_path, const char *text, size_t len, char **spec_json,
                       char **kind_json)
{
    json_t *j = NULL;
    int rc = specjson_tree(display_path, text, len, &j);
    if (rc < 0)
        return rc;
    json_t *section = NULL;
    const char *names[] = {json_string_value(json_object_get(j, "runtime")),
                           json_string_value(json_object_get(j, "kind"))};
    for (size_t i = 0; i < 2 && !section; i++) {
        json_t *s = names[i] ? json_object_get(j, names[i]) : NULL;
        if (json_is_object(s))
            section = s;
    }
    json_t *empty = section ? NULL : json_object();
    char *sj = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
    char *kj = json_dumps(section ? section : empty, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(empty);
    json_decref(j);
    if (!sj || !kj) {
        free(sj);
        free(kj);
        return err_set(-ENOMEM, "out of memory converting ferry.yaml to JSON");
    }
    *spec_json = sj;
    *kind_json = kj;
    return 0;
}
