/* The JSON of OCI images, read as hostile input: see ocijson.h. */
#include "ocijson.h"
#include "error.h"
#include "pathsafe.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- media types ---------------------------------------------------------- */

static const struct {
    const char *type;
    enum oci_compression comp;
} layer_types[] = {
    {"application/vnd.oci.image.layer.v1.tar", OCI_TAR},
    {"application/vnd.oci.image.layer.v1.tar+gzip", OCI_GZIP},
    {"application/vnd.oci.image.layer.v1.tar+zstd", OCI_ZSTD},
    {"application/vnd.docker.image.rootfs.diff.tar", OCI_TAR},
    {"application/vnd.docker.image.rootfs.diff.tar.gzip", OCI_GZIP},
};

static const char *const manifest_types[] = {"application/vnd.oci.image.manifest.v1+json",
                                             "application/vnd.docker.distribution.manifest.v2+json",
                                             NULL};
static const char *const index_types[] = {"application/vnd.oci.image.index.v1+json",
                                          "application/vnd.docker.distribution.manifest.list.v2+json",
                                          NULL};
static const char *const config_types[] = {"application/vnd.oci.image.config.v1+json",
                                           "application/vnd.docker.container.image.v1+json", NULL};

static bool one_of(const char *s, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

int oci_layer_compression(const char *type)
{
    for (size_t i = 0; i < sizeof layer_types / sizeof *layer_types; i++)
        if (strcmp(type, layer_types[i].type) == 0)
            return (int)layer_types[i].comp;
    return -1;
}

int oci_digest_ok(const char *s)
{
    if (strncmp(s, "sha256:", 7) != 0)
        return 0;
    size_t i = 0;
    for (; s[7 + i]; i++)
        if (!((s[7 + i] >= '0' && s[7 + i] <= '9') || (s[7 + i] >= 'a' && s[7 + i] <= 'f')))
            return 0;
    return i == 64;
}

const char *oci_shown(const char *s, char *buf, size_t cap)
{
    size_t i = 0;
    for (; s[i] && i + 1 < cap && i < 80; i++)
        buf[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    buf[i] = '\0';
    return buf;
}

/* ---- JSON ------------------------------------------------------------------ */

static int load_json(const uint8_t *buf, size_t len, const char *what, json_t **out)
{
    if (len > OCI_JSON_MAX)
        return err_set(FERRY_E_LIMIT, "%s: %zu bytes, more than the %u allowed", what, len,
                       OCI_JSON_MAX);
    json_error_t e;
    json_t *j = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &e);
    if (!j)
        return err_set(FERRY_E_INVALID, "%s: not valid JSON (line %d: %s)", what, e.line, e.text);
    if (!json_is_object(j)) {
        json_decref(j);
        return err_set(FERRY_E_INVALID, "%s: expected a JSON object", what);
    }
    *out = j;
    return 0;
}

/* A descriptor {mediaType, digest, size}. */
static int parse_desc(const json_t *d, const char *what, struct oci_desc *out)
{
    const json_t *mt = json_object_get(d, "mediaType"), *dg = json_object_get(d, "digest"),
                 *sz = json_object_get(d, "size");
    char b[100];
    if (!json_is_object(d))
        return err_set(FERRY_E_INVALID, "%s: expected a descriptor object", what);
    if (!json_is_string(mt) || json_string_length(mt) >= OCI_MEDIA_TYPE_MAX)
        return err_set(FERRY_E_INVALID, "%s: no mediaType", what);
    if (!json_is_string(dg))
        return err_set(FERRY_E_INVALID, "%s: no digest", what);
    if (!oci_digest_ok(json_string_value(dg))) {
        if (strchr(json_string_value(dg), ':') &&
            strncmp(json_string_value(dg), "sha256:", 7) != 0)
            return err_set(FERRY_E_INVALID, "%s: digest '%s': unsupported algorithm (sha256 only)",
                           what, oci_shown(json_string_value(dg), b, sizeof b));
        return err_set(FERRY_E_INVALID, "%s: digest '%s' is not sha256:<64 hex digits>", what,
                       oci_shown(json_string_value(dg), b, sizeof b));
    }
    if (!json_is_integer(sz) || json_integer_value(sz) < 0)
        return err_set(FERRY_E_INVALID, "%s: size is not a non-negative integer", what);
    snprintf(out->media_type, sizeof out->media_type, "%s", json_string_value(mt));
    snprintf(out->digest, sizeof out->digest, "%s", json_string_value(dg));
    out->size = (uint64_t)json_integer_value(sz);
    return 0;
}

static int schema_version_2(const json_t *j, const char *what)
{
    const json_t *v = json_object_get(j, "schemaVersion");
    if (!json_is_integer(v) || json_integer_value(v) != 2)
        return err_set(FERRY_E_INVALID, "%s: schemaVersion is not 2", what);
    return 0;
}

static bool platform_is(const json_t *entry, const char *os, const char *arch)
{
    const json_t *p = json_object_get(entry, "platform");
    const char *o = json_string_value(json_object_get(p, "os"));
    const char *a = json_string_value(json_object_get(p, "architecture"));
    return o && a && strcmp(o, os) == 0 && strcmp(a, arch) == 0;
}

int oci_parse_layout(const uint8_t *buf, size_t len)
{
    json_t *j = NULL;
    int rc = load_json(buf, len, "oci-layout", &j);
    if (rc < 0)
        return rc;
    const char *v = json_string_value(json_object_get(j, "imageLayoutVersion"));
    if (!v || strcmp(v, "1.0.0") != 0)
        rc = err_set(FERRY_E_INVALID, "oci-layout: imageLayoutVersion is not 1.0.0");
    json_decref(j);
    return rc;
}

static bool ref_name_is(const json_t *entry, const char *tag)
{
    const json_t *a = json_object_get(entry, "annotations");
    const char *n = json_string_value(json_object_get(a, "org.opencontainers.image.ref.name"));
    return n && strcmp(n, tag) == 0;
}

int oci_parse_index(const uint8_t *buf, size_t len, const char *tag, struct oci_desc *chosen,
                    int *nested)
{
    static const char *const what = "index";
    json_t *j = NULL;
    int rc = load_json(buf, len, what, &j);
    if (rc < 0)
        return rc;
    const json_t *ms = json_object_get(j, "manifests");
    const char *mt = json_string_value(json_object_get(j, "mediaType"));
    char b[100];
    if ((rc = schema_version_2(j, what)) < 0)
        goto out;
    if (mt && !one_of(mt, index_types)) {
        rc = err_set(FERRY_E_INVALID, "index: unsupported media type '%s'", oci_shown(mt, b, sizeof b));
        goto out;
    }
    if (!json_is_array(ms) || json_array_size(ms) == 0) {
        rc = err_set(FERRY_E_INVALID, "index: no manifests");
        goto out;
    }
    /* One manifest is the image. Of several (a multi-platform index), the
     * one for linux/amd64: the hosts ferry's oci plugin runs on. */
    size_t pick = 0, n = json_array_size(ms);
    if (tag && *tag) {
        while (pick < n && !ref_name_is(json_array_get(ms, pick), tag))
            pick++;
        if (pick == n) {
            rc = err_set(FERRY_E_NOTFOUND, "index: no manifest tagged '%s'", oci_shown(tag, b, sizeof b));
            goto out;
        }
    } else if (n > 1) {
        for (pick = 0; pick < n && !platform_is(json_array_get(ms, pick), "linux", "amd64"); pick++)
            ;
        if (pick == n) {
            rc = err_set(FERRY_E_INVALID, "index: %zu manifests and none for linux/amd64 (oci.tag picks one "
                               "by name)", n);
            goto out;
        }
    }
    char w[64];
    snprintf(w, sizeof w, "index: manifests[%zu]", pick);
    if ((rc = parse_desc(json_array_get(ms, pick), w, chosen)) < 0)
        goto out;
    *nested = one_of(chosen->media_type, index_types);
    if (!*nested && !one_of(chosen->media_type, manifest_types))
        rc = err_set(FERRY_E_INVALID, "%s: unsupported media type '%s'", w,
                     oci_shown(chosen->media_type, b, sizeof b));
out:
    json_decref(j);
    return rc;
}

void oci_manifest_free(struct oci_manifest *m)
{
    free(m->layers);
    memset(m, 0, sizeof *m);
}

int oci_parse_manifest(const uint8_t *buf, size_t len, struct oci_manifest *m)
{
    memset(m, 0, sizeof *m);
    json_t *j = NULL;
    int rc = load_json(buf, len, "manifest", &j);
    if (rc < 0)
        return rc;
    const char *mt = json_string_value(json_object_get(j, "mediaType"));
    const json_t *ls = json_object_get(j, "layers");
    char b[100], w[64];
    if ((rc = schema_version_2(j, "manifest")) < 0)
        goto out;
    if (mt && !one_of(mt, manifest_types)) {
        rc = err_set(FERRY_E_INVALID, "manifest: unsupported media type '%s'",
                     oci_shown(mt, b, sizeof b));
        goto out;
    }
    if ((rc = parse_desc(json_object_get(j, "config"), "manifest: config", &m->config)) < 0)
        goto out;
    if (!one_of(m->config.media_type, config_types)) {
        rc = err_set(FERRY_E_INVALID, "manifest: config: unsupported media type '%s'",
                     oci_shown(m->config.media_type, b, sizeof b));
        goto out;
    }
    if (!json_is_array(ls)) {
        rc = err_set(FERRY_E_INVALID, "manifest: layers is not a list");
        goto out;
    }
    size_t n = json_array_size(ls);
    if (n > OCI_LAYERS_MAX) {
        rc = err_set(FERRY_E_LIMIT, "manifest: %zu layers, more than %u", n, OCI_LAYERS_MAX);
        goto out;
    }
    m->layers = calloc(n ? n : 1, sizeof *m->layers);
    if (!m->layers) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(w, sizeof w, "manifest: layers[%zu]", i);
        if ((rc = parse_desc(json_array_get(ls, i), w, &m->layers[i])) < 0)
            goto out;
        if (oci_layer_compression(m->layers[i].media_type) < 0) {
            rc = err_set(FERRY_E_INVALID, "layer %.19s…: unsupported media type '%s'",
                         m->layers[i].digest, oci_shown(m->layers[i].media_type, b, sizeof b));
            goto out;
        }
        m->n_layers++;
    }
out:
    json_decref(j);
    if (rc < 0)
        oci_manifest_free(m);
    return rc;
}

int oci_parse_config(const uint8_t *buf, size_t len, size_t n_layers,
                     char (**diff_ids)[OCI_DIGEST_MAX])
{
    if (diff_ids)
        *diff_ids = NULL;
    json_t *j = NULL;
    int rc = load_json(buf, len, "config", &j);
    if (rc < 0)
        return rc;
    const json_t *os = json_object_get(j, "os"), *cfg = json_object_get(j, "config"),
                 *rootfs = json_object_get(j, "rootfs");
    const json_t *ids = json_object_get(rootfs, "diff_ids");
    char b[100];
    if (os && !json_is_string(os))
        rc = err_set(FERRY_E_INVALID, "config: os is not a string");
    else if (os && strcmp(json_string_value(os), "linux") != 0)
        rc = err_set(FERRY_E_INVALID, "config: os is '%s'; only linux images run",
                     oci_shown(json_string_value(os), b, sizeof b));
    else if (cfg && !json_is_object(cfg) && !json_is_null(cfg))
        rc = err_set(FERRY_E_INVALID, "config: config is not an object");
    else if (rootfs && (!json_is_object(rootfs) || !json_is_array(ids)))
        rc = err_set(FERRY_E_INVALID, "config: rootfs has no diff_ids list");
    else if (rootfs && json_array_size(ids) != n_layers)
        rc = err_set(FERRY_E_INVALID, "config: rootfs.diff_ids has %zu entries for %zu layers",
                     json_array_size(ids), n_layers);
    for (size_t i = 0; rc == 0 && rootfs && i < n_layers; i++)
        if (!json_is_string(json_array_get(ids, i)) ||
            !oci_digest_ok(json_string_value(json_array_get(ids, i))))
            rc = err_set(FERRY_E_INVALID, "config: rootfs.diff_ids[%zu] is not a sha256 digest", i);
    if (rc == 0 && diff_ids && rootfs) {
        *diff_ids = calloc(n_layers ? n_layers : 1, sizeof **diff_ids);
        if (!*diff_ids)
            rc = -ENOMEM;
        for (size_t i = 0; rc == 0 && i < n_layers; i++)
            snprintf((*diff_ids)[i], OCI_DIGEST_MAX, "%s", json_string_value(json_array_get(ids, i)));
    }
    json_decref(j);
    return rc;
}

void oci_docker_free(struct oci_docker *d)
{
    free(d->config);
    for (size_t i = 0; i < d->n_layers; i++)
        free(d->layers[i]);
    free(d->layers);
    memset(d, 0, sizeof *d);
}

static int docker_path(const json_t *v, const char *what, char **out)
{
    if (!json_is_string(v))
        return err_set(FERRY_E_INVALID, "manifest.json: %s is not a string", what);
    const char *s = json_string_value(v);
    char b[100];
    if (json_string_length(v) != strlen(s) || path_check(s) < 0)
        return err_set(FERRY_E_UNSAFE_PATH, "manifest.json: %s '%s' is not a safe relative path",
                       what, oci_shown(s, b, sizeof b));
    return (*out = strdup(s)) ? 0 : -ENOMEM;
}

int oci_parse_docker(const uint8_t *buf, size_t len, struct oci_docker *d)
{
    memset(d, 0, sizeof *d);
    if (len > OCI_JSON_MAX)
        return err_set(FERRY_E_LIMIT, "manifest.json: %zu bytes, more than the %u allowed", len,
                       OCI_JSON_MAX);
    json_error_t e;
    json_t *j = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &e);
    if (!j)
        return err_set(FERRY_E_INVALID, "manifest.json: not valid JSON (line %d: %s)", e.line,
                       e.text);
    int rc = 0;
    const json_t *img = json_array_get(j, 0);
    const json_t *ls = json_object_get(img, "Layers");
    if (!json_is_array(j) || json_array_size(j) == 0)
        rc = err_set(FERRY_E_INVALID, "manifest.json: expected a list of images");
    else if (json_array_size(j) > 1)
        rc = err_set(FERRY_E_INVALID, "manifest.json: %zu images in the archive; save one",
                     json_array_size(j));
    else if (!json_is_object(img))
        rc = err_set(FERRY_E_INVALID, "manifest.json: the image is not an object");
    else if (!json_is_array(ls))
        rc = err_set(FERRY_E_INVALID, "manifest.json: Layers is not a list");
    else if (json_array_size(ls) > OCI_LAYERS_MAX)
        rc = err_set(FERRY_E_LIMIT, "manifest.json: %zu layers, more than %u",
                     json_array_size(ls), OCI_LAYERS_MAX);
    if (rc == 0)
        rc = docker_path(json_object_get(img, "Config"), "Config", &d->config);
    if (rc == 0 && !(d->layers = calloc(json_array_size(ls) + 1, sizeof *d->layers)))
        rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < json_array_size(ls); i++) {
        char w[32];
        snprintf(w, sizeof w, "Layers[%zu]", i);
        if ((rc = docker_path(json_array_get(ls, i), w, &d->layers[i])) == 0)
            d->n_layers++;
    }
    json_decref(j);
    if (rc < 0)
        oci_docker_free(d);
    return rc;
}

/* ---- for the plugin ------------------------------------------------------------ */

int oci_kind_json(const Ferry__OciSpec *oci, const char *kind_json, char **out)
{
    json_error_t e;
    json_t *k = json_loads(kind_json && *kind_json ? kind_json : "{}", 0, &e);
    json_t *ls = json_array();
    int rc = k && json_is_object(k) && ls ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < oci->n_layers; i++) {
        const Ferry__OciLayer *l = oci->layers[i];
        if (json_array_append_new(ls, json_pack("{s:s, s:s, s:s, s:I}", "file", l->file, "digest",
                                                l->digest, "media_type", l->media_type, "size",
                                                (json_int_t)l->size)) < 0)
            rc = -ENOMEM;
    }
    if (rc == 0 && (json_object_set(k, "layers", ls) < 0 ||
                    json_object_set_new(k, "config_file", json_string(oci->config_file)) < 0 ||
                    json_object_set_new(k, "config_digest", json_string(oci->config_digest)) < 0))
        rc = -ENOMEM;
    if (rc == 0 && !(*out = json_dumps(k, JSON_COMPACT | JSON_PRESERVE_ORDER)))
        rc = -ENOMEM;
    json_decref(ls);
    json_decref(k);
    return rc;
}
