#include "manifest.h"
#include "error.h"
#include "fsutil.h"
#include "ociimage.h"
#include "pathsafe.h"
#include "spec.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct file_list {
    Ferry__File **v;
    size_t n, cap;
};

static int list_push(struct file_list *l, Ferry__File *f)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        Ferry__File **v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = f;
    return 0;
}

static void file_free(Ferry__File *f)
{
    ferry__file__free_unpacked(f, NULL);
}

/* Recursively add regular files under root/rel, except skip (an OCI image
 * inside the artifact: publish carries its layers, not the image). */
static int walk(const char *root, const char *rel, const char *skip, struct file_list *out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = opendir(path);
    if (!d)
        return err_set(-errno, "%s: %s", path, strerror(errno));
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (!*rel && strcmp(e->d_name, MANIFEST_SPEC_FILE) == 0)
            continue; /* carried in the manifest itself */
        char child_rel[PATH_REL_MAX + 2], child[4096];
        if (snprintf(child_rel, sizeof child_rel, "%s%s%s", rel, *rel ? "/" : "", e->d_name) >=
            (int)sizeof child_rel) {
            rc = err_set(FERRY_E_UNSAFE_PATH, "%s/%s: path too long", path, e->d_name);
            break;
        }
        snprintf(child, sizeof child, "%s/%s", root, child_rel);
        if (skip && strcmp(child_rel, skip) == 0)
            continue;
        struct stat st;
        if (lstat(child, &st) < 0) {
            rc = err_set(-errno, "%s: %s", child, strerror(errno));
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            rc = walk(root, child_rel, skip, out);
            continue;
        }
        if (S_ISLNK(st.st_mode)) {
            rc = err_set(FERRY_E_UNSAFE_ENTRY,
                         "%s: symbolic links cannot be published; copy the target in", child);
            break;
        }
        if (!S_ISREG(st.st_mode)) {
            rc = err_set(FERRY_E_UNSAFE_ENTRY, "%s: not a regular file or directory", child);
            break;
        }
        if ((rc = path_check(child_rel)) < 0)
            break;
        if (out->n >= MANIFEST_MAX_FILES) {
            rc = err_set(FERRY_E_LIMIT, "%s: more than %u files", root, MANIFEST_MAX_FILES);
            break;
        }
        Ferry__File *f = malloc(sizeof *f);
        if (!f) {
            rc = -ENOMEM;
            break;
        }
        ferry__file__init(f);
        f->path = strdup(child_rel);
        f->digest.data = malloc(DIGEST_LEN);
        if (!f->path || !f->digest.data) {
            free(f->path == protobuf_c_empty_string ? NULL : f->path);
            free(f->digest.data);
            free(f);
            rc = -ENOMEM;
            break;
        }
        f->digest.len = DIGEST_LEN;
        f->executable = (st.st_mode & 0111) != 0;
        struct digest dg;
        uint64_t size = 0;
        rc = digest_file(child, &dg, &size);
        if (rc == 0) {
            memcpy(f->digest.data, dg.b, DIGEST_LEN);
            f->size = size;
            rc = list_push(out, f);
        }
        if (rc < 0)
            file_free(f);
    }
    closedir(d);
    return rc;
}

/* A path the spec names (model card, notebook) must be a file of the
 * artifact, or the artifact is broken before it ships. */
static int require_file(const char *spec_path, const char *key, const char *rel,
                        const struct file_list *files)
{
    if (!rel || !*rel)
        return 0;
    if (path_check(rel) < 0)
        return err_set(FERRY_E_SPEC, "%s: key '%s': '%.200s' is not a safe relative path",
                       spec_path, key, rel);
    for (size_t i = 0; i < files->n; i++)
        if (strcmp(files->v[i]->path, rel) == 0)
            return 0;
    return err_set(FERRY_E_SPEC, "%s: key '%s': file '%.200s' is not in the artifact", spec_path,
                   key, rel);
}

/* Every file a model names ships with it: the server would otherwise fail
 * on the host, long after the publish that could have said so. */
static int require_model_files(const char *spec_path, const Ferry__ModelSpec *m,
                               const struct file_list *files)
{
    /* Only the file the format loads: the other format's key is not read. */
    int sklearn = m->format && strcmp(m->format, "sklearn") == 0;
    int python = m->format && strcmp(m->format, "python") == 0;
    int rc = require_file(spec_path, "model.card", m->card, files);
    if (rc == 0 && (sklearn || !python))
        rc = require_file(spec_path, "model.file", m->file, files);
    if (rc == 0)
        rc = require_file(spec_path, "model.reference", m->reference, files);
    if (rc == 0 && m->entry && *m->entry && (python || !sklearn)) {
        char file[1100];
        const char *colon = strrchr(m->entry, ':');
        size_t n = colon ? (size_t)(colon - m->entry) : strlen(m->entry);
        snprintf(file, sizeof file, "%.*s", (int)(n < sizeof file ? n : sizeof file - 1),
                 m->entry);
        rc = require_file(spec_path, "model.entry", file, files);
    }
    return rc;
}

/* Paths sorted and unique (strcmp order), each safe for a workload tree, and
 * none a directory of another once materialized: a file 'a' beside 'a/b'
 * cannot both exist. The paths under "a/" sort together right after "a/",
 * so a binary search for that prefix finds any. */
static int check_tree_paths(Ferry__File *const *files, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = path_check_workload(files[i]->path, MANIFEST_SPEC_FILE);
        if (rc < 0) {
            char why[600];
            snprintf(why, sizeof why, "%s", err_detail());
            return err_set(rc, "manifest: %s", why);
        }
        if (i > 0 && strcmp(files[i - 1]->path, files[i]->path) >= 0)
            return err_set(FERRY_E_INVALID, "manifest: paths not sorted or not unique at '%.200s'",
                           files[i]->path);
    }
    char prefix[PATH_REL_MAX + 2];
    for (size_t i = 0; i < n; i++) {
        size_t plen = (size_t)snprintf(prefix, sizeof prefix, "%s/", files[i]->path);
        size_t lo = i + 1, hi = n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (strcmp(files[mid]->path, prefix) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < n && strncmp(files[lo]->path, prefix, plen) == 0)
            return err_set(FERRY_E_UNSAFE_PATH,
                           "manifest: path '%.200s' is under '%.200s', which is a file",
                           files[lo]->path, files[i]->path);
    }
    return 0;
}

static int cmp_file(const void *a, const void *b)
{
    const Ferry__File *fa = *(Ferry__File *const *)a, *fb = *(Ferry__File *const *)b;
    return strcmp(fa->path, fb->path);
}

/* runtime oci: the artifact's own files (the image itself left out when it
 * lies inside the artifact) and the image's config and layers. */
static int add_oci_image(const char *dir, Ferry__OciSpec *oci, struct oci_image *img,
                         struct file_list *files)
{
    char skip[PATH_REL_MAX + 1];
    snprintf(skip, sizeof skip, "%s", oci->image);
    size_t n = strlen(skip);
    while (n > 1 && skip[n - 1] == '/')
        skip[--n] = '\0';
    const char *inside = skip;
    while (inside[0] == '.' && inside[1] == '/')
        inside += 2;
    err_clear();
    int rc = walk(dir, "", path_check(inside) == 0 ? inside : NULL, files);
    if (rc == 0)
        rc = oci_image_resolve(dir, oci, img);
    for (size_t i = 0; rc == 0 && i < img->n_blobs; i++) {
        Ferry__File *f = malloc(sizeof *f);
        if (!f)
            return -ENOMEM;
        ferry__file__init(f);
        f->path = strdup(img->blobs[i].rel);
        f->digest.data = malloc(DIGEST_LEN);
        if (f->digest.data) {
            memcpy(f->digest.data, img->blobs[i].blake.b, DIGEST_LEN);
            f->digest.len = DIGEST_LEN;
        }
        f->size = img->blobs[i].size;
        if (!f->path || !f->digest.data || (rc = list_push(files, f)) < 0) {
            if (!f->path)
                f->path = (char *)protobuf_c_empty_string;
            file_free(f);
            return -ENOMEM;
        }
    }
    return rc;
}

int manifest_build(const char *dir, Ferry__Manifest **out)
{
    return manifest_build_ex(dir, out, NULL);
}

int manifest_build_ex(const char *dir, Ferry__Manifest **out, struct oci_image *img)
{
    if (img)
        memset(img, 0, sizeof *img);
    char spec_path[4096];
    snprintf(spec_path, sizeof spec_path, "%s/ferry.yaml", dir);
    struct stat st;
    if (stat(dir, &st) < 0)
        return err_set(-errno, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return err_set(-ENOTDIR, "%s: not a directory", dir);
    if (lstat(spec_path, &st) < 0)
        return err_set(-errno, "%s: %s (every artifact needs a ferry.yaml)", spec_path,
                       strerror(errno));
    if (!S_ISREG(st.st_mode))
        return err_set(FERRY_E_UNSAFE_ENTRY, "%s: not a regular file", spec_path);

    uint8_t *yaml = NULL;
    size_t yaml_len = 0;
    Ferry__Spec *spec = NULL;
    int rc = fs_read_file(spec_path, SPEC_MAX_BYTES, &yaml, &yaml_len);
    if (rc == 0)
        rc = spec_parse(spec_path, (const char *)yaml, yaml_len, &spec);
    if (rc < 0) {
        free(yaml);
        return rc;
    }

    struct file_list files = {0};
    struct oci_image own = {0}, *oci_img = img ? img : &own;
    rc = spec->oci ? add_oci_image(dir, spec->oci, oci_img, &files) : walk(dir, "", NULL, &files);
    if (oci_img == &own)
        oci_image_free(&own);
    if (rc == 0 && spec->model)
        rc = require_model_files(spec_path, spec->model, &files);
    if (rc == 0 && spec->notebook)
        rc = require_file(spec_path, "notebook.notebook", spec->notebook->notebook, &files);
    if (rc < 0) {
        for (size_t i = 0; i < files.n; i++)
            file_free(files.v[i]);
        free(files.v);
        spec_free(spec);
        free(yaml);
        if (img)
            oci_image_free(img);
        return rc;
    }
    if (files.n > 1)
        qsort(files.v, files.n, sizeof *files.v, cmp_file);
    rc = check_tree_paths(files.v, files.n);
    if (rc < 0) {
        for (size_t i = 0; i < files.n; i++)
            file_free(files.v[i]);
        free(files.v);
        spec_free(spec);
        free(yaml);
        if (img)
            oci_image_free(img);
        return rc;
    }

    Ferry__Manifest *m = malloc(sizeof *m);
    if (!m) {
        if (img)
            oci_image_free(img);
        for (size_t i = 0; i < files.n; i++)
            file_free(files.v[i]);
        free(files.v);
        spec_free(spec);
        free(yaml);
        return -ENOMEM;
    }
    ferry__manifest__init(m);
    m->spec_yaml.data = yaml;
    m->spec_yaml.len = yaml_len;
    m->spec_yaml_executable = (st.st_mode & 0111) != 0;
    m->format = MANIFEST_FORMAT;
    m->spec = spec;
    m->files = files.v;
    m->n_files = files.n;
    *out = m;
    return 0;
}

int manifest_encode(const Ferry__Manifest *m, uint8_t **buf, size_t *len)
{
    size_t n = ferry__manifest__get_packed_size(m);
    if (n > MANIFEST_MAX_BYTES)
        return err_set(FERRY_E_LIMIT, "manifest: %zu bytes, more than the %u allowed", n,
                       MANIFEST_MAX_BYTES);
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return -ENOMEM;
    ferry__manifest__pack(m, b);
    *buf = b;
    *len = n;
    return 0;
}

static int cmp_path_key(const void *key, const void *elem)
{
    return strcmp(key, (*(Ferry__File *const *)elem)->path);
}

/* runtime oci: every layer and the config are files of this artifact, each
 * named by a sha256 the plugin checks again, so a host never looks for a
 * layer the manifest does not carry. */
static int check_oci_files(const Ferry__Manifest *m)
{
    const Ferry__OciSpec *o = m->spec->oci;
    if (o->n_layers > OCI_LAYERS_MAX)
        return err_set(FERRY_E_LIMIT, "manifest: more than %u image layers", OCI_LAYERS_MAX);
    for (size_t i = 0; i <= o->n_layers; i++) {
        const char *file = i < o->n_layers ? o->layers[i]->file : o->config_file;
        const char *dg = i < o->n_layers ? o->layers[i]->digest : o->config_digest;
        if (i == o->n_layers && !*file && !*dg)
            break; /* no config: the spec as parsed, before publish */
        if (!bsearch(file, m->files, m->n_files, sizeof *m->files, cmp_path_key))
            return err_set(FERRY_E_INVALID, "manifest: image file '%.200s' is not in the artifact",
                           file);
        if (!oci_digest_ok(dg))
            return err_set(FERRY_E_INVALID, "manifest: image file '%.200s' has no sha256 digest",
                           file);
    }
    return 0;
}

int manifest_decode(const uint8_t *buf, size_t len, Ferry__Manifest **out)
{
    if (len > MANIFEST_MAX_BYTES)
        return err_set(FERRY_E_LIMIT, "manifest: %zu bytes, more than the %u allowed", len,
                       MANIFEST_MAX_BYTES);
    Ferry__Manifest *m = ferry__manifest__unpack(NULL, len, buf);
    if (!m)
        return err_set(FERRY_E_PROTOCOL, "manifest: not a valid encoded manifest");
    int rc = 0;
    if (m->format != MANIFEST_FORMAT)
        rc = err_set(FERRY_E_INVALID, "manifest: unknown format %u", m->format);
    else if (!m->spec || !spec_name_ok(m->spec->name) || !spec_version_ok(m->spec->version))
        rc = err_set(FERRY_E_INVALID, "manifest: missing or invalid name/version");
    else if (m->n_files > MANIFEST_MAX_FILES)
        rc = err_set(FERRY_E_LIMIT, "manifest: more than %u files", MANIFEST_MAX_FILES);
    for (size_t i = 0; rc == 0 && i < m->n_files; i++) {
        const Ferry__File *f = m->files[i];
        if ((rc = path_check(f->path)) < 0)
            break;
        if (f->digest.len != DIGEST_LEN)
            rc = err_set(FERRY_E_INVALID, "manifest: file '%s' has no valid digest", f->path);
        else if (strcmp(f->path, MANIFEST_SPEC_FILE) == 0)
            rc = err_set(FERRY_E_INVALID, "manifest: '%s' must not be listed as a file",
                         MANIFEST_SPEC_FILE);
        else if (i > 0 && strcmp(m->files[i - 1]->path, f->path) >= 0)
            rc = err_set(FERRY_E_INVALID, "manifest: paths not sorted or not unique at '%s'",
                         f->path);
    }
    if (rc == 0)
        rc = check_tree_paths(m->files, m->n_files);
    if (rc == 0 && m->spec->oci)
        rc = check_oci_files(m);
    if (rc < 0) {
        ferry__manifest__free_unpacked(m, NULL);
        return rc;
    }
    *out = m;
    return 0;
}

void manifest_free(Ferry__Manifest *m)
{
    if (m)
        ferry__manifest__free_unpacked(m, NULL);
}

uint64_t manifest_total_bytes(const Ferry__Manifest *m)
{
    uint64_t t = 0;
    for (size_t i = 0; i < m->n_files; i++)
        t += m->files[i]->size;
    return t;
}

int manifest_sign(const uint8_t *buf, size_t len, const struct key_secret *k,
                  Ferry__SignatureList **out)
{
    Ferry__SignatureList *l = malloc(sizeof *l);
    Ferry__Signature *s = malloc(sizeof *s);
    Ferry__Signature **v = malloc(sizeof *v);
    char *id = strdup(k->pub.id);
    uint8_t *pk = malloc(crypto_sign_PUBLICKEYBYTES);
    uint8_t *sig = malloc(crypto_sign_BYTES);
    if (!l || !s || !v || !id || !pk || !sig) {
        free(l), free(s), free(v), free(id), free(pk), free(sig);
        return -ENOMEM;
    }
    ferry__signature_list__init(l);
    ferry__signature__init(s);
    memcpy(pk, k->pub.pk, crypto_sign_PUBLICKEYBYTES);
    key_sign(k, buf, len, sig);
    s->key_id = id;
    s->public_key.data = pk;
    s->public_key.len = crypto_sign_PUBLICKEYBYTES;
    s->signature.data = sig;
    s->signature.len = crypto_sign_BYTES;
    v[0] = s;
    l->signatures = v;
    l->n_signatures = 1;
    *out = l;
    return 0;
}

int pb_refuse_field_zero(const ProtobufCMessage *m, const char *what)
{
    if (!m)
        return 0;
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0)
            return err_set(FERRY_E_PROTOCOL, "%s: field number 0 is not valid protobuf", what);
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        int rc = 0;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *)(base + f->offset);
            for (size_t k = 0; rc == 0 && k < n; k++)
                rc = pb_refuse_field_zero(v[k], what);
        } else {
            /* Of a oneof, only the member that is set is there to look at. */
            if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                *(const uint32_t *)(base + f->quantifier_offset) != f->id)
                continue;
            rc = pb_refuse_field_zero(*(const ProtobufCMessage *const *)(base + f->offset), what);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

int signatures_decode(const uint8_t *buf, size_t len, Ferry__SignatureList **out)
{
    Ferry__SignatureList *l = ferry__signature_list__unpack(NULL, len, buf);
    if (!l)
        return err_set(FERRY_E_PROTOCOL, "signatures: not a valid signature list");
    int rc = pb_refuse_field_zero(&l->base, "signatures");
    if (rc < 0) {
        ferry__signature_list__free_unpacked(l, NULL);
        return rc;
    }
    if (l->n_signatures > SIGNATURES_MAX) {
        ferry__signature_list__free_unpacked(l, NULL);
        return err_set(FERRY_E_LIMIT, "signatures: more than %u", SIGNATURES_MAX);
    }
    *out = l;
    return 0;
}

int signatures_encode(const Ferry__SignatureList *s, uint8_t **buf, size_t *len)
{
    size_t n = ferry__signature_list__get_packed_size(s);
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return -ENOMEM;
    ferry__signature_list__pack(s, b);
    *buf = b;
    *len = n;
    return 0;
}

void signatures_free(Ferry__SignatureList *s)
{
    if (s)
        ferry__signature_list__free_unpacked(s, NULL);
}

int manifest_verify(const uint8_t *buf, size_t len, const Ferry__SignatureList *sigs,
                    const struct trust *t, char signer[KEY_ID_LEN + 1])
{
    if (!sigs || sigs->n_signatures == 0)
        return err_set(FERRY_E_UNTRUSTED, "manifest is not signed");
    /* The registry stores the list re-encoded: it must read back. */
    int rc = pb_refuse_field_zero(&sigs->base, "manifest signatures");
    if (rc < 0)
        return rc;
    if (sigs->n_signatures > SIGNATURES_MAX)
        return err_set(FERRY_E_LIMIT, "manifest has more than %u signatures", SIGNATURES_MAX);
    char seen[SIGNATURES_MAX * (KEY_ID_LEN + 2) + 1] = "";
    int bad_sig = 0;
    for (size_t i = 0; i < sigs->n_signatures; i++) {
        const Ferry__Signature *s = sigs->signatures[i];
        /* The key id is only a hint: look the key up in our own trust list
         * and verify with our copy of the public key, never the sender's. */
        const char *id = s->key_id ? s->key_id : "";
        size_t used = strlen(seen);
        snprintf(seen + used, sizeof seen - used, "%s%.16s", used ? ", " : "", id);
        const struct key_public *k = trust_find(t, id);
        if (!k)
            continue;
        if (key_verify(k->pk, buf, len, s->signature.data, s->signature.len) == 0) {
            if (signer)
                memcpy(signer, k->id, KEY_ID_LEN + 1);
            return 0;
        }
        bad_sig = 1;
    }
    if (bad_sig)
        return err_set(FERRY_E_SIGNATURE, "manifest signature by trusted key does not verify");
    return err_set(FERRY_E_UNTRUSTED, "manifest signed by untrusted key %s", seen);
}
