#include "artifact.h"
#include "govrules.h"
#include "artifact_internal.h"
#include "error.h"
#include "filewriter.h"
#include "fsutil.h"
#include "manifest.h"
#include "ociimage.h"
#include "spec.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int artifact_ref_parse(const char *ref, char *name, size_t ncap, char *version, size_t vcap)
{
    const char *at = strchr(ref, '@');
    if (!at || at == ref || !at[1])
        return err_set(FERRY_E_INVALID, "'%s': expected NAME@VERSION", ref);
    size_t nlen = (size_t)(at - ref);
    if (nlen >= ncap || strlen(at + 1) >= vcap)
        return err_set(FERRY_E_INVALID, "'%s': name or version too long", ref);
    memcpy(name, ref, nlen);
    name[nlen] = '\0';
    snprintf(version, vcap, "%s", at + 1);
    if (!spec_name_ok(name))
        return err_set(FERRY_E_INVALID, "'%s': invalid artifact name", ref);
    if (!spec_version_ok(version))
        return err_set(FERRY_E_INVALID, "'%s': invalid version", ref);
    return 0;
}

/* ---- upload (publish and import) ---------------------------------------- */


struct file_source {
    int fd;
    const char *path;
};

static int read_from_file(void *arg, uint64_t off, uint8_t *buf, size_t len)
{
    struct file_source *src = arg;
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(src->fd, buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return err_set(n < 0 ? -errno : -EIO, "%s: changed while publishing", src->path);
        got += (size_t)n;
    }
    return 0;
}

static int upload_blob(struct client *c, const struct digest *d, const char *path, uint64_t size,
                       uint64_t offset, struct progress *prog, uint64_t *sent)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return err_set(-errno, "%s: %s", path, strerror(errno));
    struct file_source src = {fd, path};
    int rc = client_push_blob(c, d, size, offset, read_from_file, &src, prog, sent);
    close(fd);
    return rc;
}

int artifact_offer(struct client *c, const uint8_t *mbytes, size_t mlen,
                   Ferry__SignatureList *sigs, const Ferry__Manifest *m,
                   struct transfer_result *out, Ferry__Wire__Response **reply)
{
    Ferry__Wire__Request req;
    Ferry__Wire__Offer offer;
    ferry__wire__request__init(&req);
    ferry__wire__offer__init(&offer);
    offer.manifest.data = (uint8_t *)mbytes;
    offer.manifest.len = mlen;
    offer.signatures = sigs;
    req.body_case = FERRY__WIRE__REQUEST__BODY_OFFER;
    req.offer = &offer;

    snprintf(out->name, sizeof out->name, "%s", m->spec->name);
    snprintf(out->version, sizeof out->version, "%s", m->spec->version);
    struct digest md;
    digest_of(mbytes, mlen, &md);
    digest_hex(&md, out->digest_hex);

    /* distinct blobs, for the summary */
    out->blobs_total = 0;
    for (size_t i = 0; i < m->n_files; i++) {
        size_t j = 0;
        while (j < i && memcmp(m->files[j]->digest.data, m->files[i]->digest.data, DIGEST_LEN))
            j++;
        out->blobs_total += (j == i);
    }

    Ferry__Wire__Response *r = NULL;
    int rc = client_call(c, &req, &r);
    if (rc < 0)
        return rc;
    if (r->body_case != FERRY__WIRE__RESPONSE__BODY_OFFER) {
        client_response_free(r);
        return err_set(FERRY_E_PROTOCOL, "registry %s: unexpected reply to an offer", c->url);
    }
    out->already_published = r->offer->already_published;
    *reply = r;
    return 0;
}

int artifact_upload_missing(struct client *c, const Ferry__Wire__Response *r,
                            const uint8_t *mbytes, size_t mlen, const Ferry__Manifest *m,
                            locate_fn locate, void *arg, int show_progress,
                            struct transfer_result *out)
{
    if (r->offer->already_published)
        return 0;
    uint64_t to_send = 0;
    for (size_t i = 0; i < r->offer->n_missing; i++)
        to_send += r->offer->missing[i]->size - r->offer->missing[i]->offset;
    char label[160];
    snprintf(label, sizeof label, "publish %s@%s", out->name, out->version);
    struct progress prog;
    progress_init(&prog, label, to_send, show_progress);

    int rc = 0;
    for (size_t i = 0; rc == 0 && i < r->offer->n_missing; i++) {
        const Ferry__Wire__Missing *miss = r->offer->missing[i];
        struct digest d;
        char path[4096];
        if (digest_from_bytes(miss->digest.data, miss->digest.len, &d) < 0) {
            rc = err_set(FERRY_E_PROTOCOL, "registry %s: bad digest in offer reply", c->url);
            break;
        }
        if ((rc = locate(arg, m, &d, path, sizeof path)) < 0)
            break;
        rc = upload_blob(c, &d, path, miss->size, miss->offset, &prog, &out->bytes_uploaded);
        if (rc == 0)
            out->blobs_uploaded++;
    }
    progress_finish(&prog);
    if (rc < 0)
        return rc;

    struct digest md;
    digest_of(mbytes, mlen, &md);
    Ferry__Wire__Request req;
    Ferry__Wire__Commit commit;
    ferry__wire__request__init(&req);
    ferry__wire__commit__init(&commit);
    commit.manifest_digest.data = md.b;
    commit.manifest_digest.len = DIGEST_LEN;
    req.body_case = FERRY__WIRE__REQUEST__BODY_COMMIT;
    req.commit = &commit;
    Ferry__Wire__Response *cr = NULL;
    rc = client_call(c, &req, &cr);
    if (rc == 0)
        client_response_free(cr);
    return rc;
}

int artifact_upload_signed(struct client *c, const uint8_t *mbytes, size_t mlen,
                           Ferry__SignatureList *sigs, const Ferry__Manifest *m, locate_fn locate,
                           void *arg, int show_progress, struct transfer_result *out)
{
    Ferry__Wire__Response *r = NULL;
    int rc = artifact_offer(c, mbytes, mlen, sigs, m, out, &r);
    if (rc == 0)
        rc = artifact_upload_missing(c, r, mbytes, mlen, m, locate, arg, show_progress, out);
    client_response_free(r);
    return rc;
}

struct dir_locator {
    const char *dir;
    const struct oci_image *img; /* files from outside dir, or NULL */
};

static int locate_in_dir(void *arg, const Ferry__Manifest *m, const struct digest *d, char *path,
                         size_t cap)
{
    const struct dir_locator *l = arg;
    for (size_t i = 0; l->img && i < l->img->n_blobs; i++)
        if (digest_equal(&l->img->blobs[i].blake, d)) {
            snprintf(path, cap, "%s", l->img->blobs[i].src);
            return 0;
        }
    for (size_t i = 0; i < m->n_files; i++)
        if (memcmp(m->files[i]->digest.data, d->b, DIGEST_LEN) == 0) {
            snprintf(path, cap, "%s/%s", l->dir, m->files[i]->path);
            return 0;
        }
    return err_set(FERRY_E_PROTOCOL, "registry asked for a blob the manifest does not name");
}

int artifact_publish(struct client *c, const char *dir, const struct key_secret *k,
                     int show_progress, struct transfer_result *out)
{
    return artifact_publish_ex(c, dir, k, show_progress, NULL, out);
}

/* Provenance (governance): a second signature, over the digest and the
 * statement, beside the publisher's. */
static int add_provenance(Ferry__SignatureList *sigs, const uint8_t *mbytes, size_t mlen,
                          const struct key_secret *k, const char *statement)
{
    struct digest d;
    digest_of(mbytes, mlen, &d);
    Ferry__Signature *s = NULL;
    int rc = gov_sign_provenance(k, &d, statement, &s);
    if (rc < 0)
        return rc;
    Ferry__Signature **nv = realloc(sigs->signatures, (sigs->n_signatures + 1) * sizeof *nv);
    if (!nv) {
        ferry__signature__free_unpacked(s, NULL);
        return -ENOMEM;
    }
    sigs->signatures = nv;
    nv[sigs->n_signatures++] = s;
    return 0;
}

int artifact_publish_ex(struct client *c, const char *dir, const struct key_secret *k,
                        int show_progress, const char *provenance, struct transfer_result *out)
{
    Ferry__Manifest *m = NULL;
    uint8_t *mbytes = NULL;
    size_t mlen = 0;
    Ferry__SignatureList *sigs = NULL;
    struct oci_image img;
    int rc = manifest_build_ex(dir, &m, &img);
    if (rc == 0)
        rc = manifest_encode(m, &mbytes, &mlen);
    if (rc == 0)
        rc = manifest_sign(mbytes, mlen, k, &sigs);
    if (rc == 0 && provenance)
        rc = add_provenance(sigs, mbytes, mlen, k, provenance);
    if (rc == 0) {
        struct dir_locator loc = {dir, &img};
        memset(out, 0, sizeof *out);
        rc = artifact_upload_signed(c, mbytes, mlen, sigs, m, locate_in_dir, &loc, show_progress, out);
    }
    signatures_free(sigs);
    free(mbytes);
    manifest_free(m);
    oci_image_free(&img);
    return rc;
}

/* ---- fetch (pull and export) -------------------------------------------- */

void fetched_free(struct fetched *f)
{
    manifest_free(f->m);
    client_response_free(f->resp);
}

/* Get the manifest of name@version, check it is what was asked for, and
 * check its signature when t holds keys. */
int artifact_fetch_manifest(struct client *c, const char *name, const char *version,
                          const struct trust *t, struct fetched *f)
{
    Ferry__Wire__Request req;
    Ferry__Wire__GetManifest gm;
    ferry__wire__request__init(&req);
    ferry__wire__get_manifest__init(&gm);
    gm.name = (char *)name;
    gm.version = (char *)version;
    req.body_case = FERRY__WIRE__REQUEST__BODY_GET_MANIFEST;
    req.get_manifest = &gm;
    memset(f, 0, sizeof *f);
    int rc = client_call(c, &req, &f->resp);
    if (rc < 0)
        return rc;
    if (f->resp->body_case != FERRY__WIRE__RESPONSE__BODY_MANIFEST) {
        fetched_free(f);
        return err_set(FERRY_E_PROTOCOL, "registry %s: unexpected reply", c->url);
    }
    f->mbytes = f->resp->manifest->manifest.data;
    f->mlen = f->resp->manifest->manifest.len;
    digest_of(f->mbytes, f->mlen, &f->digest);
    if (t && t->n > 0) {
        rc = manifest_verify(f->mbytes, f->mlen, f->resp->manifest->signatures, t, NULL);
        if (rc < 0) {
            char why[900];
            snprintf(why, sizeof why, "%s", err_detail());
            fetched_free(f);
            return err_set(rc, "%s@%s: %s", name, version, why);
        }
    }
    rc = manifest_decode(f->mbytes, f->mlen, &f->m);
    if (rc == 0 && (strcmp(f->m->spec->name, name) || strcmp(f->m->spec->version, version))) {
        /* A validly signed manifest of another artifact must not pass for
         * this one. */
        rc = err_set(FERRY_E_INVALID, "%s@%s: registry sent the manifest of %s@%s", name, version,
                     f->m->spec->name, f->m->spec->version);
    }
    if (rc < 0)
        fetched_free(f);
    return rc;
}

/* Below this, O_DIRECT is not worth a second descriptor. */
#define DIRECT_MIN_BYTES (8u << 20)

struct file_sink {
    const char *path; /* for the detail of a failed write */
    int fd;
    int direct_fd; /* O_DIRECT descriptor of the same file, or -1 */
    uint64_t offset;
    struct hasher *h;
    struct file_writer *writer;
};

static void release_chunk(void *owner) { client_response_free(owner); }

/* Hash here, write on the writer thread: the two overlap. */
static int sink_to_file(void *arg, Ferry__Wire__Response *chunk, const uint8_t *data, size_t len)
{
    struct file_sink *s = arg;
    hasher_update(s->h, data, len);
    /* Whole aligned chunks bypass the page cache: a multi-GiB model need
     * not evict everything else, and it spares the page-cache copy. */
    int direct = s->direct_fd >= 0 && file_writer_direct_ok(s->offset, len);
    int rc = file_writer_submit(s->writer, direct ? s->direct_fd : s->fd, direct, s->offset,
                                data, len, chunk, release_chunk);
    s->offset += len;
    /* The write failed on the writer thread, which cannot leave a detail
     * for this one: name the file and the reason here. */
    return rc < 0 ? err_set(rc, "writing %s: %s", s->path, strerror(-rc)) : 0;
}

/* Materialize one manifest file into staging, resuming from what is there. */
/* Seed an empty staging file from the local blob cache. The bytes are
 * verified like any others afterwards, so a damaged cache entry only costs
 * a fetch. Returns the bytes copied. */
static uint64_t seed_from_cache(const char *cache_dir, const struct digest *d, int fd,
                                uint64_t size)
{
    char hex[DIGEST_HEX_LEN + 1], path[4200];
    digest_hex(d, hex);
    snprintf(path, sizeof path, "%s/%s", cache_dir, hex);
    int src = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (src < 0)
        return 0;
    struct stat st;
    uint64_t copied = 0;
    if (fstat(src, &st) == 0 && (uint64_t)st.st_size == size) {
        while (copied < size) {
            ssize_t n = copy_file_range(src, NULL, fd, NULL, size - copied, 0);
            if (n <= 0)
                break;
            copied += (uint64_t)n;
        }
    }
    close(src);
    if (copied != size && ftruncate(fd, 0) == 0)
        copied = 0;
    return copied;
}

/* Remember a verified file in the cache (a hard link: no copy). */
static void add_to_cache(const char *cache_dir, const struct digest *d, const char *path)
{
    char hex[DIGEST_HEX_LEN + 1], dest[4200];
    digest_hex(d, hex);
    snprintf(dest, sizeof dest, "%s/%s", cache_dir, hex);
    if (link(path, dest) < 0 && errno == EEXIST) {
        /* An older entry may be damaged; the fresh verified file replaces it. */
        char tmp[4300];
        snprintf(tmp, sizeof tmp, "%s.%ld", dest, (long)getpid());
        if (link(path, tmp) == 0 && rename(tmp, dest) < 0)
            unlink(tmp);
    }
}

/* seed: whether an empty staging file may start from the cache. Either way
 * a verified file fetched from the registry goes into the cache, replacing
 * a damaged entry. Failures name the file where it is going (out_dir/PATH),
 * not its staging copy: that is the path the user asked for, and the
 * staging folder is removed after most failures anyway. */
static int pull_file(struct client *c, struct file_writer *writer, const char *staging,
                     const char *out_dir, const Ferry__File *f, struct progress *prog,
                     const char *cache_dir, int seed)
{
    char path[8192], shown[8192];
    if (snprintf(path, sizeof path, "%s/%s", staging, f->path) >= (int)sizeof path ||
        snprintf(shown, sizeof shown, "%s/%s", out_dir, f->path) >= (int)sizeof shown)
        return err_set(-ENAMETOOLONG, "file '%s': path too long", f->path);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    int rc = fs_mkdir_p(path, 0755);
    if (rc < 0) {
        *strrchr(shown, '/') = '\0';
        return err_set(rc, "creating %s: %s", shown, strerror(-rc));
    }
    *slash = '/';
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return err_set(-errno, "writing %s: %s", shown, strerror(errno));
    struct stat st;
    struct hasher h;
    hasher_init(&h);
    uint64_t have = 0;
    if (fstat(fd, &st) == 0 && (uint64_t)st.st_size <= f->size)
        have = (uint64_t)st.st_size;
    else if (ftruncate(fd, 0) < 0)
        rc = err_set(-errno, "writing %s: %s", shown, strerror(errno));
    struct digest d;
    digest_from_bytes(f->digest.data, f->digest.len, &d);
    if (rc == 0 && have == 0 && cache_dir && seed && f->size > 0)
        have = seed_from_cache(cache_dir, &d, fd, f->size);
    if (rc == 0 && have > 0 && (rc = hasher_update_fd(&h, fd, have)) < 0)
        rc = err_set(rc, "reading %s: %s", shown, strerror(-rc));
    if (prog)
        progress_add(prog, have);
    int from_cache = have == f->size && have > 0;
    if (rc == 0 && have < f->size && !c)
        rc = err_set(FERRY_E_TRANSPORT, "file '%s': not in the blob cache, and no registry to fetch it from",
                     f->path);
    if (rc == 0 && have < f->size) {
        int dfd = -1;
        if (f->size - have >= DIRECT_MIN_BYTES)
            dfd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_DIRECT);
        struct file_sink sink = {shown, fd, dfd, have, &h, writer};
        rc = client_fetch_blob(c, &d, f->size, have, sink_to_file, &sink, prog);
        int wrc = file_writer_flush(writer);
        if (dfd >= 0)
            close(dfd);
        /* A failed write is the reason, whatever the transfer said after. */
        if (wrc < 0)
            rc = err_set(wrc, "writing %s: %s", shown, strerror(-wrc));
    }
    if (rc == 0) {
        struct digest got;
        hasher_final(&h, &got);
        if (!digest_equal(&got, &d) && from_cache) {
            /* The cached copy was damaged: fetch it for real; the verified
             * bytes then replace the cache entry. */
            close(fd);
            unlink(path);
            return pull_file(c, writer, staging, out_dir, f, prog, cache_dir, 0);
        }
        if (!digest_equal(&got, &d)) {
            char want_hex[DIGEST_HEX_LEN + 1], got_hex[DIGEST_HEX_LEN + 1];
            digest_hex(&d, want_hex);
            digest_hex(&got, got_hex);
            rc = err_set(FERRY_E_DIGEST,
                         "file '%s' does not match its digest (expected %.16s…, got %.16s…)",
                         f->path, want_hex, got_hex);
        }
    }
    if (rc == 0 && fchmod(fd, f->executable ? 0755 : 0644) < 0)
        rc = err_set(-errno, "writing %s: %s", shown, strerror(errno));
    /* fsync and close report a write-back failure (a full disk on NFS or
     * with delayed allocation) that no write() did. */
    if (rc == 0 && fsync(fd) < 0)
        rc = err_set(-errno, "writing %s: %s", shown, strerror(errno));
    if (close(fd) < 0 && rc == 0 && errno != EINTR)
        rc = err_set(-errno, "writing %s: %s", shown, strerror(errno));
    if (rc == 0 && cache_dir && !from_cache && f->size > 0)
        add_to_cache(cache_dir, &d, path);
    return rc;
}

/* ferry.yaml comes out of the verified manifest itself. */
static int write_spec_file(const char *staging, const char *out_dir, const Ferry__Manifest *m)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", staging, MANIFEST_SPEC_FILE);
    int rc = fs_write_file_atomic(path, m->spec_yaml.data, m->spec_yaml.len,
                                  m->spec_yaml_executable ? 0755 : 0644);
    if (rc == 0 && chmod(path, m->spec_yaml_executable ? 0755 : 0644) < 0)
        rc = -errno;
    return rc < 0 ? err_set(rc, "writing %s/%s: %s", out_dir, MANIFEST_SPEC_FILE, strerror(-rc))
                  : 0;
}

static int materialize(struct client *c, const Ferry__Manifest *m, const char *out_dir,
                       const struct pull_options *po, struct transfer_result *out);

int artifact_pull(struct client *c, const char *name, const char *version, const char *out_dir,
                  const struct trust *t, int show_progress, struct transfer_result *out)
{
    struct pull_options opts = {.show_progress = show_progress};
    return artifact_pull_ex(c, name, version, out_dir, t, &opts, out);
}

int artifact_pull_ex(struct client *c, const char *name, const char *version, const char *out_dir,
                     const struct trust *t, const struct pull_options *po,
                     struct transfer_result *out)
{
    if (!t || t->n == 0)
        return err_set(FERRY_E_NOKEYS, "pull %s@%s: no trusted keys; give --trust or FERRY_TRUST",
                       name, version);
    struct stat st;
    if (lstat(out_dir, &st) == 0)
        return err_set(-EEXIST, "%s: already exists", out_dir);

    struct fetched f;
    int rc = artifact_fetch_manifest(c, name, version, t, &f);
    if (rc < 0)
        return rc;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", name);
    snprintf(out->version, sizeof out->version, "%s", version);
    digest_hex(&f.digest, out->digest_hex);
    if (po->expect_digest && !digest_equal(po->expect_digest, &f.digest)) {
        fetched_free(&f);
        return err_set(FERRY_E_DIGEST, "%s@%s: manifest digest %.16s is not the one deployed",
                       name, version, out->digest_hex);
    }
    if (po->signer) {
        manifest_verify(f.mbytes, f.mlen, f.resp->manifest->signatures, t, po->signer);
    }

    rc = materialize(c, f.m, out_dir, po, out);
    if (rc < 0 && strncmp(err_detail(), name, strlen(name)) != 0) {
        char why[900];
        snprintf(why, sizeof why, "%s", err_detail());
        err_set(rc, "pull %s@%s: %s", name, version, why);
    }
    fetched_free(&f);
    return rc;
}

/* Write m's files into a staging sibling of out_dir (resuming what an
 * interrupted run left there), verify each, rename into place. */
static int materialize(struct client *c, const Ferry__Manifest *m, const char *out_dir,
                       const struct pull_options *po, struct transfer_result *out)
{
    int rc;
    char parent[4096], base[1024], staging[4096 + 1100];
    fs_split(out_dir, parent, sizeof parent, base, sizeof base);
    snprintf(staging, sizeof staging, "%s/.%s.ferry-partial-%.16s", parent, base,
             out->digest_hex);
    rc = fs_mkdir_p(staging, 0755);
    if (rc < 0)
        return err_set(rc, "creating %s: %s", staging, strerror(-rc));

    char label[160];
    snprintf(label, sizeof label, "pull %s@%s", m->spec->name, m->spec->version);
    struct progress prog;
    progress_init(&prog, label, manifest_total_bytes(m), po->show_progress);
    struct file_writer *writer = NULL;
    rc = file_writer_new(&writer);
    for (size_t i = 0; rc == 0 && i < m->n_files; i++)
        rc = pull_file(c, writer, staging, out_dir, m->files[i], &prog, po->cache_dir, 1);
    file_writer_free(writer);
    progress_finish(&prog);
    if (rc == 0)
        rc = write_spec_file(staging, out_dir, m);

    if (rc == FERRY_E_DIGEST) {
        /* Bad bytes are never worth resuming from. */
        fs_rm_rf(staging);
    }
    if (rc == 0 && rename(staging, out_dir) < 0)
        rc = err_set(-errno, "%s: %s", out_dir, strerror(errno));
    if (rc == 0)
        fs_fsync_dir(parent);
    if (rc < 0 && rc != FERRY_E_DIGEST && rc != FERRY_E_TRANSPORT) {
        /* Only an interrupted transfer is kept for resuming. */
        fs_rm_rf(staging);
    }
    return rc;
}

int artifact_materialize(struct client *c, const Ferry__Manifest *m, const struct digest *md,
                         const char *out_dir, const struct pull_options *po,
                         struct transfer_result *out)
{
    struct stat st;
    if (lstat(out_dir, &st) == 0)
        return err_set(-EEXIST, "%s: already exists", out_dir);
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", m->spec->name);
    snprintf(out->version, sizeof out->version, "%s", m->spec->version);
    digest_hex(md, out->digest_hex);
    return materialize(c, m, out_dir, po, out);
}

