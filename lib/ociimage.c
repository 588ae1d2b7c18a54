/* OCI images at publish: the blobs, the two image forms and the tar (see
 * ociimage.h); the JSON readers are ocijson.c. */
#include "ociimage.h"
#include "bundle.h"
#include "error.h"
#include "fsutil.h"
#include "pathsafe.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NEST_MAX 4 /* an index naming an index naming ... */

/* ---- blobs ------------------------------------------------------------------- */

static void sha256_hex(const uint8_t h[crypto_hash_sha256_BYTES], char out[OCI_DIGEST_MAX])
{
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, h, crypto_hash_sha256_BYTES);
    snprintf(out, OCI_DIGEST_MAX, "sha256:%s", hex);
}

/* Read one file, at most cap bytes (cap 0: no cap), hashing sha256 and
 * BLAKE2b as it goes. keep: the whole content is returned in *data. */
struct blob_read {
    uint64_t size;
    char sha256[OCI_DIGEST_MAX];
    struct digest blake;
    uint8_t head[4];
    size_t head_len;
    uint8_t *data; /* when kept, NUL-terminated */
};

static int read_blob(const char *path, const char *what, uint64_t cap, int keep,
                     struct blob_read *r)
{
    memset(r, 0, sizeof *r);
    struct stat st;
    int fd = fs_open_regular(path, &st);
    if (fd == -ENOENT)
        return err_set(FERRY_E_NOTFOUND, "%s: missing from the image", what);
    if (fd < 0)
        return err_set(fd, "%s: %s", what,
                       fd == FERRY_E_INVALID ? "not a regular file" : strerror(-fd));
    if (cap && (uint64_t)st.st_size > cap) {
        close(fd);
        return err_set(FERRY_E_LIMIT, "%s: %lld bytes, more than the %llu allowed", what,
                       (long long)st.st_size, (unsigned long long)cap);
    }
    if (keep && !(r->data = malloc((size_t)st.st_size + 1))) {
        close(fd);
        return -ENOMEM;
    }
    crypto_hash_sha256_state sh;
    crypto_hash_sha256_init(&sh);
    struct hasher bh;
    hasher_init(&bh);
    enum { BUF = 1 << 20 };
    uint8_t *buf = malloc(BUF);
    int rc = buf ? 0 : -ENOMEM;
    while (rc == 0) {
        ssize_t n = read(fd, buf, BUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = err_set(-errno, "%s: %s", what, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        if (r->size + (uint64_t)n > (uint64_t)st.st_size || (cap && r->size + (uint64_t)n > cap)) {
            rc = err_set(FERRY_E_INVALID, "%s: changed while being read", what);
            break;
        }
        while (r->head_len < sizeof r->head && r->head_len < r->size + (uint64_t)n) {
            r->head[r->head_len] = buf[r->head_len - r->size];
            r->head_len++;
        }
        if (keep)
            memcpy(r->data + r->size, buf, (size_t)n);
        crypto_hash_sha256_update(&sh, buf, (unsigned long long)n);
        hasher_update(&bh, buf, (size_t)n);
        r->size += (uint64_t)n;
    }
    free(buf);
    close(fd);
    if (rc < 0) {
        free(r->data);
        r->data = NULL;
        return rc;
    }
    uint8_t h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&sh, h);
    sha256_hex(h, r->sha256);
    hasher_final(&bh, &r->blake);
    if (keep)
        r->data[r->size] = 0;
    return 0;
}

/* The blob a descriptor names in a layout, checked against it. */
static int read_desc(const char *root, const struct oci_desc *d, const char *what, uint64_t cap,
                     int keep, struct blob_read *r, char **src)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/blobs/sha256/%s", root, d->digest + 7) >= (int)sizeof path)
        return err_set(-ENAMETOOLONG, "%s: path too long", root);
    if (cap && d->size > cap)
        return err_set(FERRY_E_LIMIT, "%s: %llu bytes, more than the %llu allowed", what,
                       (unsigned long long)d->size, (unsigned long long)cap);
    int rc = read_blob(path, what, cap, keep, r);
    if (rc < 0)
        return rc;
    if (strcmp(r->sha256, d->digest) != 0)
        rc = err_set(FERRY_E_DIGEST, "%s: sha256 does not match (the content is %.19s…)", what,
                     r->sha256);
    else if (r->size != d->size)
        rc = err_set(FERRY_E_DIGEST, "%s: %llu bytes, but the descriptor says %llu", what,
                     (unsigned long long)r->size, (unsigned long long)d->size);
    if (rc == 0 && src && !(*src = strdup(path)))
        rc = -ENOMEM;
    if (rc < 0) {
        free(r->data);
        r->data = NULL;
    }
    return rc;
}

/* The bytes must be what the media type says: a gzip layer that is not
 * gzip would only fail on a host, long after publish. */
static int check_compression(const char *what, int comp, const struct blob_read *r)
{
    static const uint8_t gz[] = {0x1f, 0x8b}, zs[] = {0x28, 0xb5, 0x2f, 0xfd};
    bool is_gz = r->head_len >= 2 && memcmp(r->head, gz, 2) == 0;
    bool is_zs = r->head_len >= 4 && memcmp(r->head, zs, 4) == 0;
    if (comp == OCI_GZIP && !is_gz)
        return err_set(FERRY_E_INVALID, "%s: the media type says gzip, but it is not", what);
    if (comp == OCI_ZSTD && !is_zs)
        return err_set(FERRY_E_INVALID, "%s: the media type says zstd, but it is not", what);
    if (comp == OCI_TAR && (is_gz || is_zs))
        return err_set(FERRY_E_INVALID, "%s: the media type says an uncompressed tar, but it is %s",
                       what, is_gz ? "gzip" : "zstd");
    return 0;
}

/* ---- the result ------------------------------------------------------------- */

struct result {
    struct oci_blob *blobs;
    size_t n;
    Ferry__OciLayer **layers;
    size_t n_layers;
    char config_digest[OCI_DIGEST_MAX];
};

static void result_free(struct result *res)
{
    for (size_t i = 0; i < res->n; i++)
        free(res->blobs[i].src);
    free(res->blobs);
    for (size_t i = 0; i < res->n_layers; i++)
        ferry__oci_layer__free_unpacked(res->layers[i], NULL);
    free(res->layers);
    memset(res, 0, sizeof *res);
}

/* Add a file (once per path) and, for a layer, its OciLayer. src is taken. */
static int add_blob(struct result *res, const struct blob_read *r, char *src,
                    const char *media_type)
{
    char rel[sizeof res->blobs[0].rel];
    snprintf(rel, sizeof rel, "%s/%s", OCI_ARTIFACT_DIR, r->sha256 + 7);
    size_t i = 0;
    while (i < res->n && strcmp(res->blobs[i].rel, rel) != 0)
        i++;
    if (i == res->n) {
        struct oci_blob *nb = realloc(res->blobs, (res->n + 1) * sizeof *nb);
        if (!nb) {
            free(src);
            return -ENOMEM;
        }
        res->blobs = nb;
        memset(&nb[res->n], 0, sizeof *nb);
        snprintf(nb[res->n].rel, sizeof nb[res->n].rel, "%s", rel);
        nb[res->n].src = src;
        nb[res->n].size = r->size;
        nb[res->n].blake = r->blake;
        res->n++;
    } else {
        free(src);
    }
    if (!media_type)
        return 0;
    Ferry__OciLayer **nl = realloc(res->layers, (res->n_layers + 1) * sizeof *nl);
    if (!nl)
        return -ENOMEM;
    res->layers = nl;
    Ferry__OciLayer *l = malloc(sizeof *l);
    if (!l)
        return -ENOMEM;
    ferry__oci_layer__init(l);
    l->file = strdup(rel);
    l->digest = strdup(r->sha256);
    l->media_type = strdup(media_type);
    l->size = r->size;
    res->layers[res->n_layers++] = l;
    if (!l->file || !l->digest || !l->media_type)
        return -ENOMEM;
    return 0;
}

/* ---- an OCI image layout ---------------------------------------------------- */

static int read_layout(const char *root, const char *tag, struct result *res)
{
    char path[PATH_MAX];
    struct blob_read r;
    snprintf(path, sizeof path, "%s/oci-layout", root);
    int rc = read_blob(path, "oci-layout", 4096, 1, &r);
    if (rc == FERRY_E_NOTFOUND)
        return err_set(FERRY_E_INVALID, "not an OCI image layout (no oci-layout file)");
    if (rc < 0)
        return rc;
    rc = oci_parse_layout(r.data, (size_t)r.size);
    free(r.data);
    if (rc < 0)
        return rc;

    snprintf(path, sizeof path, "%s/index.json", root);
    if ((rc = read_blob(path, "index.json", OCI_JSON_MAX, 1, &r)) < 0)
        return rc;
    struct oci_desc md;
    int nested = 0;
    rc = oci_parse_index(r.data, (size_t)r.size, tag, &md, &nested);
    free(r.data);
    char what[128];
    for (int depth = 0; rc == 0 && nested; depth++) {
        if (depth == NEST_MAX)
            return err_set(FERRY_E_LIMIT, "index: nested more than %d deep", NEST_MAX);
        snprintf(what, sizeof what, "index %.19s…", md.digest);
        if ((rc = read_desc(root, &md, what, OCI_JSON_MAX, 1, &r, NULL)) < 0)
            return rc;
        rc = oci_parse_index(r.data, (size_t)r.size, NULL, &md, &nested);
        free(r.data);
    }
    if (rc < 0)
        return rc;

    snprintf(what, sizeof what, "manifest %.19s…", md.digest);
    if ((rc = read_desc(root, &md, what, OCI_JSON_MAX, 1, &r, NULL)) < 0)
        return rc;
    struct oci_manifest m;
    rc = oci_parse_manifest(r.data, (size_t)r.size, &m);
    free(r.data);
    if (rc < 0)
        return rc;

    char *src = NULL;
    snprintf(what, sizeof what, "config %.19s…", m.config.digest);
    rc = read_desc(root, &m.config, what, OCI_JSON_MAX, 1, &r, &src);
    if (rc == 0) {
        rc = oci_parse_config(r.data, (size_t)r.size, m.n_layers, NULL);
        free(r.data);
        if (rc == 0) {
            snprintf(res->config_digest, sizeof res->config_digest, "%s", r.sha256);
            rc = add_blob(res, &r, src, NULL);
        } else {
            free(src);
        }
    }
    for (size_t i = 0; rc == 0 && i < m.n_layers; i++) {
        snprintf(what, sizeof what, "layer %.19s…", m.layers[i].digest);
        src = NULL;
        if ((rc = read_desc(root, &m.layers[i], what, 0, 0, &r, &src)) < 0)
            break;
        if ((rc = check_compression(what, oci_layer_compression(m.layers[i].media_type), &r)) < 0) {
            free(src);
            break;
        }
        rc = add_blob(res, &r, src, m.layers[i].media_type);
    }
    oci_manifest_free(&m);
    return rc;
}

/* ---- a docker save archive -------------------------------------------------- */

/* "blobs/sha256/HEX" or "HEX.json" / "HEX/layer.tar": the name carries the
 * sha256 it must have. NULL when it does not. */
static const char *hex_in_name(const char *p, char *buf)
{
    const char *base = strncmp(p, "blobs/sha256/", 13) == 0 ? p + 13 : p;
    size_t n = 0;
    while ((base[n] >= '0' && base[n] <= '9') || (base[n] >= 'a' && base[n] <= 'f'))
        n++;
    if (n != 64 || (base != p + 13 && strcmp(base + 64, ".json") != 0) ||
        (base == p + 13 && base[64]))
        return NULL;
    snprintf(buf, OCI_DIGEST_MAX, "sha256:%.64s", base);
    return buf;
}

static int read_docker(const char *root, struct result *res)
{
    char path[PATH_MAX], what[PATH_REL_MAX + 64], named[OCI_DIGEST_MAX];
    struct blob_read r;
    snprintf(path, sizeof path, "%s/manifest.json", root);
    int rc = read_blob(path, "manifest.json", OCI_JSON_MAX, 1, &r);
    if (rc < 0)
        return rc;
    struct oci_docker d;
    rc = oci_parse_docker(r.data, (size_t)r.size, &d);
    free(r.data);
    if (rc < 0)
        return rc;

    char (*diff_ids)[OCI_DIGEST_MAX] = NULL;
    char *src = NULL;
    snprintf(path, sizeof path, "%s/%s", root, d.config);
    snprintf(what, sizeof what, "config '%.200s' named by manifest.json", d.config);
    rc = read_blob(path, what, OCI_JSON_MAX, 1, &r);
    if (rc == 0 && hex_in_name(d.config, named) && strcmp(named, r.sha256) != 0)
        rc = err_set(FERRY_E_DIGEST, "%s: sha256 does not match its name", what);
    if (rc == 0)
        rc = oci_parse_config(r.data, (size_t)r.size, d.n_layers, &diff_ids);
    if (rc == 0 && !diff_ids)
        rc = err_set(FERRY_E_INVALID, "config: no rootfs.diff_ids to check the layers against");
    if (rc == 0 && !(src = strdup(path)))
        rc = -ENOMEM;
    free(r.data);
    if (rc == 0) {
        snprintf(res->config_digest, sizeof res->config_digest, "%s", r.sha256);
        rc = add_blob(res, &r, src, NULL);
    }
    for (size_t i = 0; rc == 0 && i < d.n_layers; i++) {
        snprintf(path, sizeof path, "%s/%s", root, d.layers[i]);
        snprintf(what, sizeof what, "layer '%.200s' named by manifest.json", d.layers[i]);
        if ((rc = read_blob(path, what, 0, 0, &r)) < 0)
            break;
        static const uint8_t gz[] = {0x1f, 0x8b}, zs[] = {0x28, 0xb5, 0x2f, 0xfd};
        int comp = r.head_len >= 2 && memcmp(r.head, gz, 2) == 0   ? OCI_GZIP
                   : r.head_len >= 4 && memcmp(r.head, zs, 4) == 0 ? OCI_ZSTD
                                                                   : OCI_TAR;
        /* An uncompressed layer is its diff_id; a compressed one is checked
         * against the digest its name carries. */
        if (comp == OCI_TAR && strcmp(r.sha256, diff_ids[i]) != 0)
            rc = err_set(FERRY_E_DIGEST, "%s: sha256 does not match the config's diff_id %.19s…",
                         what, diff_ids[i]);
        else if (comp != OCI_TAR && hex_in_name(d.layers[i], named) && strcmp(named, r.sha256))
            rc = err_set(FERRY_E_DIGEST, "%s: sha256 does not match its name", what);
        else if (comp != OCI_TAR && !hex_in_name(d.layers[i], named))
            rc = err_set(FERRY_E_INVALID, "%s: compressed, and nothing names its sha256", what);
        if (rc == 0 && !(src = strdup(path)))
            rc = -ENOMEM;
        if (rc == 0)
            rc = add_blob(res, &r, src,
                          comp == OCI_GZIP   ? "application/vnd.docker.image.rootfs.diff.tar.gzip"
                          : comp == OCI_ZSTD ? "application/vnd.oci.image.layer.v1.tar+zstd"
                                           : "application/vnd.docker.image.rootfs.diff.tar");
    }
    free(diff_ids);
    oci_docker_free(&d);
    return rc;
}

/* ---- a tar ------------------------------------------------------------------ */

/* Only regular files at safe relative paths are written; directories are
 * made as needed; a symbolic link (docker save links a repeated layer) is
 * skipped, so what it stood for is then missing; anything else is refused. */
static int extract_tar(const char *tar, const char *staging)
{
    struct bundle_limits lim;
    int rc = bundle_limits_default(&lim);
    if (rc < 0)
        return rc;
    struct archive *a = archive_read_new();
    if (!a)
        return -ENOMEM;
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    if (archive_read_open_filename(a, tar, 1 << 16) != ARCHIVE_OK) {
        rc = err_set(FERRY_E_ARCHIVE, "not a tar archive: %s", archive_error_string(a));
        archive_read_free(a);
        return rc;
    }
    uint64_t entries = 0, total = 0;
    struct archive_entry *e;
    uint8_t buf[1 << 16];
    while (rc == 0) {
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK) {
            rc = err_set(FERRY_E_ARCHIVE, "reading the tar: %s", archive_error_string(a));
            break;
        }
        const char *name = archive_entry_pathname(e);
        char shownb[100];
        if (!name)
            name = "";
        while (name[0] == '.' && name[1] == '/')
            name += 2;
        char clean[PATH_REL_MAX + 1];
        snprintf(clean, sizeof clean, "%s", name);
        size_t cl = strlen(clean);
        while (cl > 0 && clean[cl - 1] == '/')
            clean[--cl] = '\0';
        if (++entries > lim.max_entries) {
            rc = err_set(FERRY_E_LIMIT, "more than %llu entries",
                         (unsigned long long)lim.max_entries);
            break;
        }
        mode_t type = archive_entry_filetype(e);
        if (!*clean || type == AE_IFDIR || type == AE_IFLNK)
            continue;
        if (type != AE_IFREG || archive_entry_hardlink(e)) {
            rc = err_set(FERRY_E_UNSAFE_ENTRY, "entry '%s': not a regular file",
                         oci_shown(clean, shownb, sizeof shownb));
            break;
        }
        if (path_check(clean) < 0) {
            rc = err_set(FERRY_E_UNSAFE_PATH, "entry '%s': not a safe relative path",
                         oci_shown(clean, shownb, sizeof shownb));
            break;
        }
        int64_t size = archive_entry_size(e);
        if (size < 0 || (uint64_t)size > lim.max_entry_bytes ||
            total + (uint64_t)size > lim.max_total_bytes) {
            rc = err_set(FERRY_E_LIMIT, "entry '%s': over the size caps",
                         oci_shown(clean, shownb, sizeof shownb));
            break;
        }
        total += (uint64_t)size;
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", staging, clean) >= (int)sizeof path) {
            rc = err_set(-ENAMETOOLONG, "entry '%s': path too long",
                         oci_shown(clean, shownb, sizeof shownb));
            break;
        }
        char *slash = strrchr(path, '/');
        *slash = '\0';
        if ((rc = fs_mkdir_p(path, 0700)) < 0) {
            rc = err_set(rc, "entry '%s': %s", oci_shown(clean, shownb, sizeof shownb), strerror(-rc));
            break;
        }
        *slash = '/';
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
            rc = err_set(errno == EEXIST ? FERRY_E_UNSAFE_ENTRY : -errno, "entry '%s': %s",
                         oci_shown(clean, shownb, sizeof shownb),
                         errno == EEXIST ? "appears twice" : strerror(errno));
            break;
        }
        uint64_t got = 0;
        for (;;) {
            la_ssize_t n = archive_read_data(a, buf, sizeof buf);
            if (n < 0) {
                rc = err_set(FERRY_E_ARCHIVE, "entry '%s': %s", oci_shown(clean, shownb, sizeof shownb),
                             archive_error_string(a));
                break;
            }
            if (n == 0)
                break;
            got += (uint64_t)n;
            if (got > (uint64_t)size) {
                rc = err_set(FERRY_E_LIMIT, "entry '%s': more bytes than its header says",
                             oci_shown(clean, shownb, sizeof shownb));
                break;
            }
            if ((rc = fs_write_all(fd, buf, (size_t)n)) < 0) {
                rc = err_set(rc, "staging '%s': %s", oci_shown(clean, shownb, sizeof shownb),
                             strerror(-rc));
                break;
            }
        }
        if (close(fd) < 0 && rc == 0)
            rc = err_set(-errno, "staging '%s': %s", oci_shown(clean, shownb, sizeof shownb),
                         strerror(errno));
    }
    archive_read_free(a);
    return rc;
}

static int is_file(const char *root, const char *name)
{
    char p[PATH_MAX];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", root, name);
    return lstat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* A layout (index.json) wins over docker's manifest.json: docker 25 and
 * later write both, and the layout has the layers' own digests. */
static int read_root(const char *root, const char *tag, struct result *res)
{
    if (is_file(root, "index.json"))
        return read_layout(root, tag, res);
    if (is_file(root, "manifest.json") && tag && *tag)
        return err_set(FERRY_E_INVALID, "oci.tag: a docker save archive holds one image and no tags");
    if (is_file(root, "manifest.json"))
        return read_docker(root, res);
    return err_set(FERRY_E_INVALID,
                   "neither an OCI image layout (no index.json) nor a docker save archive (no "
                   "manifest.json)");
}

void oci_image_free(struct oci_image *img)
{
    if (!img)
        return;
    for (size_t i = 0; i < img->n_blobs; i++)
        free(img->blobs[i].src);
    free(img->blobs);
    if (img->staging) {
        fs_rm_rf(img->staging);
        free(img->staging);
    }
    memset(img, 0, sizeof *img);
}

int oci_image_resolve(const char *dir, Ferry__OciSpec *oci, struct oci_image *img)
{
    memset(img, 0, sizeof *img);
    char path[PATH_MAX], b[100];
    const char *image = oci->image;
    if (snprintf(path, sizeof path, "%s%s%s", image[0] == '/' ? "" : dir,
                 image[0] == '/' ? "" : "/", image) >= (int)sizeof path)
        return err_set(-ENAMETOOLONG, "oci.image '%s': path too long", oci_shown(image, b, sizeof b));
    struct stat st;
    if (stat(path, &st) < 0)
        return err_set(-errno, "oci.image '%s': %s", oci_shown(image, b, sizeof b), strerror(errno));
    struct result res = {0};
    int rc;
    if (S_ISDIR(st.st_mode)) {
        rc = read_root(path, oci->tag, &res);
    } else if (S_ISREG(st.st_mode)) {
        const char *tmp = getenv("TMPDIR");
        char staging[PATH_MAX];
        snprintf(staging, sizeof staging, "%s/ferry-oci-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(staging))
            return err_set(-errno, "oci.image '%s': staging in %s: %s", oci_shown(image, b, sizeof b),
                           staging, strerror(errno));
        rc = extract_tar(path, staging);
        if (rc == 0)
            rc = read_root(staging, oci->tag, &res);
        if (rc == 0 && !(img->staging = strdup(staging)))
            rc = -ENOMEM;
        if (rc < 0)
            fs_rm_rf(staging);
    } else {
        return err_set(FERRY_E_INVALID, "oci.image '%s': not a directory or a file",
                       oci_shown(image, b, sizeof b));
    }
    if (rc == 0 && res.n_layers == 0)
        rc = err_set(FERRY_E_INVALID, "the image has no layers");
    char *cfg_file = NULL, *cfg_digest = NULL;
    if (rc == 0) {
        cfg_file = strdup(res.blobs[0].rel);
        cfg_digest = strdup(res.config_digest);
        if (!cfg_file || !cfg_digest)
            rc = -ENOMEM;
    }
    if (rc < 0) {
        if (rc != -ENOMEM) {
            char why[900];
            snprintf(why, sizeof why, "%s", err_detail());
            err_set(rc, "oci.image '%s': %s", oci_shown(image, b, sizeof b), why);
        }
        free(cfg_file);
        free(cfg_digest);
        result_free(&res);
        if (img->staging) {
            fs_rm_rf(img->staging);
            free(img->staging);
            img->staging = NULL;
        }
        return rc;
    }
    /* Hand over: the spec takes the layers, img the files. */
    for (size_t i = 0; i < oci->n_layers; i++)
        ferry__oci_layer__free_unpacked(oci->layers[i], NULL);
    free(oci->layers);
    oci->layers = res.layers;
    oci->n_layers = res.n_layers;
    if (oci->config_file != protobuf_c_empty_string)
        free(oci->config_file);
    if (oci->config_digest != protobuf_c_empty_string)
        free(oci->config_digest);
    oci->config_file = cfg_file;
    oci->config_digest = cfg_digest;
    img->blobs = res.blobs;
    img->n_blobs = res.n;
    return 0;
}
