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
    if (rc < 0) {
        char ref[160], why[900];
        snprintf(ref, sizeof ref, "%s@%s:", name, version);
        snprintf(why, sizeof why, "%s", err_message(rc));
        if (strncmp(why, ref, strlen(ref)) != 0 && strncmp(why, "export ", 7) != 0)
            err_set(rc, "export %s@%s: %s", name, version, why);
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

/* What import learns from the bundle's signed head, before any blob. */
struct import_ctx {
    struct client *c;
    const struct trust *t;
    uint8_t *mbytes;
    size_t mlen;
    Ferry__SignatureList *sigs;
    Ferry__Manifest *m;
    Ferry__Wire__Response *offer; /* the registry's answer: what it lacks */
    struct transfer_result *out;
};

static const Ferry__File *file_with_digest(const Ferry__Manifest *m, const uint8_t *d,
                                           size_t len)
{
    if (len != DIGEST_LEN)
        return NULL;
    for (size_t i = 0; i < m->n_files; i++)
        if (m->files[i]->digest.len == DIGEST_LEN &&
            memcmp(m->files[i]->digest.data, d, DIGEST_LEN) == 0)
            return m->files[i];
    return NULL;
}

/* The bundle's manifest and signatures, checked before a blob is read:
 * against the given keys when there are any, and always by the registry
 * (the offer), whose answer -- the blobs it lacks, with the sizes the signed
 * manifest gives them -- is all that will be extracted. */
static int import_verify(void *arg, const uint8_t *mb, size_t mlen, const uint8_t *sb,
                         size_t slen, struct bundle_plan *plan)
{
    struct import_ctx *ic = arg;
    ic->mbytes = malloc(mlen ? mlen : 1);
    if (!ic->mbytes)
        return -ENOMEM;
    memcpy(ic->mbytes, mb, mlen);
    ic->mlen = mlen;
    int rc = signatures_decode(sb, slen, &ic->sigs);
    if (rc == 0 && ic->t && ic->t->n > 0)
        rc = manifest_verify(ic->mbytes, ic->mlen, ic->sigs, ic->t, NULL);
    if (rc == 0)
        rc = manifest_decode(ic->mbytes, ic->mlen, &ic->m);
    if (rc == 0)
        rc = artifact_offer(ic->c, ic->mbytes, ic->mlen, ic->sigs, ic->m, ic->out, &ic->offer);
    if (rc < 0)
        return rc;

    const Ferry__Manifest *m = ic->m;
    plan->carried = 0;
    for (size_t i = 0; i < m->n_files; i++) {
        if (file_with_digest(m, m->files[i]->digest.data, m->files[i]->digest.len) != m->files[i])
            continue; /* counted at its first file */
        if (m->files[i]->size > UINT64_MAX - plan->carried)
            return err_set(FERRY_E_LIMIT, "manifest sizes overflow");
        plan->carried += m->files[i]->size;
    }
    const Ferry__Wire__OfferReply *r = ic->offer->offer;
    if (r->already_published)
        return 0;
    plan->blobs = calloc(r->n_missing ? r->n_missing : 1, sizeof *plan->blobs);
    if (!plan->blobs)
        return -ENOMEM;
    for (size_t i = 0; i < r->n_missing; i++) {
        const Ferry__File *f = file_with_digest(m, r->missing[i]->digest.data,
                                                r->missing[i]->digest.len);
        if (!f || r->missing[i]->size != f->size)
            return err_set(FERRY_E_PROTOCOL,
                           "registry %s asked for a blob the manifest does not name",
                           ic->c->url);
        struct digest d;
        digest_from_bytes(f->digest.data, f->digest.len, &d);
        digest_hex(&d, plan->blobs[plan->n].hex);
        plan->blobs[plan->n++].size = f->size;
    }
    return 0;
}

int artifact_import(struct client *c, const char *tar_path, const struct trust *t,
                    int show_progress, struct transfer_result *out)
{
    struct bundle_limits lim;
    int rc = bundle_limits_default(&lim);
    if (rc < 0) {
        char why[900];
        snprintf(why, sizeof why, "%s", err_detail());
        return err_set(rc, "import %s: %s", tar_path, why);
    }
    const char *tmpdir = getenv("TMPDIR");
    char staging[4096];
    snprintf(staging, sizeof staging, "%s/ferry-import.XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(staging))
        return err_set(-errno, "import %s: %s: %s", tar_path, staging, strerror(errno));

    memset(out, 0, sizeof *out);
    struct import_ctx ic = {.c = c, .t = t, .out = out};
    char path[4200];
    rc = bundle_extract_verified(tar_path, staging, &lim, import_verify, &ic);
    /* Every blob the registry lacks must be present and match, before a
     * byte of it is uploaded. */
    const Ferry__Wire__OfferReply *r = ic.offer ? ic.offer->offer : NULL;
    if (rc == 0 && !r)
        rc = err_set(FERRY_E_ARCHIVE, "%s: no signed manifest was checked", tar_path);
    for (size_t i = 0; rc == 0 && !r->already_published && i < r->n_missing; i++) {
        const Ferry__File *f =
            file_with_digest(ic.m, r->missing[i]->digest.data, r->missing[i]->digest.len);
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
        rc = artifact_upload_missing(c, ic.offer, ic.mbytes, ic.mlen, ic.m, locate_in_staging,
                                     &loc, show_progress, out);
    }
    if (rc < 0) {
        char why[900];
        snprintf(why, sizeof why, "%s", err_message(rc));
        if (strncmp(why, tar_path, strlen(tar_path)) == 0)
            err_set(rc, "import %s", why);
        else
            err_set(rc, "import %s: %s", tar_path, why);
    }
    client_response_free(ic.offer);
    manifest_free(ic.m);
    signatures_free(ic.sigs);
    free(ic.mbytes);
    fs_rm_rf(staging);
    return rc;
}
