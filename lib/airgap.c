/* Air gaps: export an artifact from a registry into a bundle, and import a
 * bundle into a registry. Separate from artifact.c so that programs that
 * only pull (the agent) do not carry libarchive. */
#include "artifact.h"
#include "artifact_internal.h"
#include "bundle.h"
#include "error.h"
#include "fsutil.h"
#include "manifest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct bundle_sink {
    struct bundle_writer *w;
    struct hasher *h;
};

static int sink_to_bundle(void *arg, Ferry__Wire__Response *chunk, const uint8_t *data,
                          size_t len)
{
    struct bundle_sink *s = arg;
    hasher_update(s->h, data, len);
    int rc = bundle_writer_write(s->w, data, len);
    client_response_free(chunk);
    return rc;
}

int artifact_export(struct client *c, const char *name, const char *version,
                    const char *tar_path, const struct trust *t, struct transfer_result *out)
{
    struct fetched f;
    int rc = artifact_fetch_manifest(c, name, version, t, &f);
    if (rc < 0)
        return rc;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", name);
    snprintf(out->version, sizeof out->version, "%s", version);
    digest_hex(&f.digest, out->digest_hex);

    uint8_t *sbytes = NULL;
    size_t slen = 0;
    struct bundle_writer *w = NULL;
    rc = signatures_encode(f.resp->manifest->signatures, &sbytes, &slen);
    if (rc == 0)
        rc = bundle_writer_open(tar_path, &w);
    if (rc == 0)
        rc = bundle_writer_add(w, "manifest.pb", f.mbytes, f.mlen);
    if (rc == 0)
        rc = bundle_writer_add(w, "signatures.pb", sbytes, slen);
    for (size_t i = 0; rc == 0 && i < f.m->n_files; i++) {
        const Ferry__File *file = f.m->files[i];
        size_t j = 0;
        while (j < i && memcmp(f.m->files[j]->digest.data, file->digest.data, DIGEST_LEN))
            j++;
        if (j < i)
            continue; /* this blob is in the bundle already */
        struct digest d, got;
        char hex[DIGEST_HEX_LEN + 1], member[80];
        digest_from_bytes(file->digest.data, file->digest.len, &d);
        digest_hex(&d, hex);
        snprintf(member, sizeof member, "blobs/%s", hex);
        struct hasher h;
        hasher_init(&h);
        struct bundle_sink sink = {w, &h};
        rc = bundle_writer_begin(w, member, file->size);
        if (rc == 0 && file->size > 0)
            rc = client_fetch_blob(c, &d, file->size, 0, sink_to_bundle, &sink, NULL);
        if (rc == 0)
            rc = bundle_writer_end(w);
        if (rc == 0) {
            hasher_final(&h, &got);
            if (!digest_equal(&got, &d))
                rc = err_set(FERRY_E_DIGEST, "export %s@%s: file '%s' does not match its digest",
                             name, version, file->path);
        }
        out->blobs_total++;
    }
    if (w) {
        if (rc == 0)
            rc = bundle_writer_close(w);
        else
            bundle_writer_abort(w);
    }
    free(sbytes);
    fetched_free(&f);
    return rc;
}

struct staging_locator {
    const char *dir;
};

static int locate_in_staging(void *arg, const Ferry__Manifest *m, const struct digest *d,
                             char *path, size_t cap)
{
    (void)m;
    const struct staging_locator *l = arg;
    char hex[DIGEST_HEX_LEN + 1];
    digest_hex(d, hex);
    snprintf(path, cap, "%s/blobs/%s", l->dir, hex);
    return 0;
}

int artifact_import(struct client *c, const char *tar_path, const struct trust *t,
                    int show_progress, struct transfer_result *out)
{
    const char *tmpdir = getenv("TMPDIR");
    char staging[4096];
    snprintf(staging, sizeof staging, "%s/ferry-import.XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(staging))
        return err_set(-errno, "%s: %s", staging, strerror(errno));

    struct bundle_limits lim;
    bundle_limits_default(&lim);
    uint8_t *mbytes = NULL, *sbytes = NULL;
    size_t mlen = 0, slen = 0;
    Ferry__Manifest *m = NULL;
    Ferry__SignatureList *sigs = NULL;
    char path[4200];

    int rc = bundle_extract(tar_path, staging, &lim);
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/manifest.pb", staging);
        rc = fs_read_file(path, MANIFEST_MAX_BYTES, &mbytes, &mlen);
    }
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/signatures.pb", staging);
        rc = fs_read_file(path, 1u << 20, &sbytes, &slen);
    }
    if (rc == 0)
        rc = signatures_decode(sbytes, slen, &sigs);
    if (rc == 0 && t && t->n > 0)
        rc = manifest_verify(mbytes, mlen, sigs, t, NULL);
    if (rc == 0)
        rc = manifest_decode(mbytes, mlen, &m);
    /* Every blob the manifest names must be present and match, before a
     * byte goes anywhere. */
    for (size_t i = 0; rc == 0 && i < m->n_files; i++) {
        const Ferry__File *f = m->files[i];
        struct digest want, got;
        char hex[DIGEST_HEX_LEN + 1];
        uint64_t size = 0;
        digest_from_bytes(f->digest.data, f->digest.len, &want);
        digest_hex(&want, hex);
        snprintf(path, sizeof path, "%s/blobs/%s", staging, hex);
        rc = digest_file(path, &got, &size);
        if (rc == -ENOENT)
            rc = err_set(FERRY_E_NOTFOUND, "bundle has no blob for file '%s'", f->path);
        else if (rc == 0 && (!digest_equal(&want, &got) || size != f->size))
            rc = err_set(FERRY_E_DIGEST, "bundle blob for file '%s' does not match its digest",
                         f->path);
    }
    if (rc == 0) {
        struct staging_locator loc = {staging};
        memset(out, 0, sizeof *out);
        rc = artifact_upload_signed(c, mbytes, mlen, sigs, m, locate_in_staging, &loc, show_progress, out);
    }
    if (rc < 0) {
        char why[900];
        snprintf(why, sizeof why, "%s", err_detail());
        if (strncmp(why, tar_path, strlen(tar_path)) == 0)
            err_set(rc, "import %s", why);
        else
            err_set(rc, "import %s: %s", tar_path, why);
    }
    manifest_free(m);
    signatures_free(sigs);
    free(mbytes);
    free(sbytes);
    fs_rm_rf(staging);
    return rc;
}
