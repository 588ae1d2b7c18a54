/* Publishing: a signed manifest is offered, its missing blobs are uploaded
 * in chunks, and a commit records the version once every blob is stored. */
#include "registry_int.h"
#include "rlog.h"
#include "dispatch.h"
#include "error.h"
#include "manifest.h"
#include "offerlimits.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PENDING_MAX 64

/* A publish whose signed manifest was accepted and whose blobs may now be
 * uploaded. Only digests named here are accepted as uploads, so the blob
 * store never takes bytes that no trusted key asked for. */
struct pending {
    struct digest manifest_digest;
    uint8_t *mbytes, *sbytes;
    size_t mlen, slen;
    char signer[KEY_ID_LEN + 1];
    char name[72], version[72], kind[16];
    size_t n_blobs;
    struct digest *blobs;
    uint64_t *sizes;
    struct pending *next;
};

/* ---- pending publishes --------------------------------------------------- */

static void pending_free(struct pending *p)
{
    if (!p)
        return;
    free(p->mbytes);
    free(p->sbytes);
    free(p->blobs);
    free(p->sizes);
    free(p);
}

/* Caller holds pending_lock. */
static struct pending **pending_find(struct registry *r, const struct digest *md)
{
    for (struct pending **p = &r->pending; *p; p = &(*p)->next)
        if (digest_equal(&(*p)->manifest_digest, md))
            return p;
    return NULL;
}

static void pending_add(struct registry *r, struct pending *np)
{
    pthread_mutex_lock(&r->pending_lock);
    struct pending **old = pending_find(r, &np->manifest_digest);
    if (old) {
        struct pending *o = *old;
        *old = o->next;
        pending_free(o);
        r->n_pending--;
    }
    np->next = r->pending;
    r->pending = np;
    r->n_pending++;
    if (r->n_pending > PENDING_MAX) {
        /* Drop the oldest; its client will simply offer again. */
        struct pending **p = &r->pending;
        while ((*p)->next)
            p = &(*p)->next;
        pending_free(*p);
        *p = NULL;
        r->n_pending--;
    }
    pthread_mutex_unlock(&r->pending_lock);
}

/* Size of d if some pending publish names it. */
static int pending_blob_size(struct registry *r, const struct digest *d, uint64_t *size)
{
    int found = 0;
    pthread_mutex_lock(&r->pending_lock);
    for (struct pending *p = r->pending; p && !found; p = p->next)
        for (size_t i = 0; i < p->n_blobs; i++)
            if (digest_equal(&p->blobs[i], d)) {
                *size = p->sizes[i];
                found = 1;
                break;
            }
    pthread_mutex_unlock(&r->pending_lock);
    return found;
}

static struct pending *pending_take(struct registry *r, const struct digest *md)
{
    pthread_mutex_lock(&r->pending_lock);
    struct pending **p = pending_find(r, md), *taken = NULL;
    if (p) {
        taken = *p;
        *p = taken->next;
        r->n_pending--;
    }
    pthread_mutex_unlock(&r->pending_lock);
    return taken;
}

/* ---- handlers ------------------------------------------------------------- */

/* Approval and provenance signatures offered with a publish must be valid
 * for this very manifest: a list never stores a signature that fails. */
static int publish_extra_sigs_check(const Ferry__SignatureList *sl, const struct digest *d)
{
    for (size_t i = 0; i < sl->n_signatures; i++) {
        const Ferry__Signature *s = sl->signatures[i];
        if (s->role && s->role[0] && gov_verify_extra(s, d) < 0) {
            char why[600];
            snprintf(why, sizeof why, "%s", err_detail());
            return err_set(FERRY_E_SIGNATURE, "publish refused: %s", why);
        }
    }
    return 0;
}

static int handle_offer(struct registry *r, const Ferry__Wire__Offer *o,
                        Ferry__Wire__Response *resp, struct scratch *s)
{
    if (!o->signatures)
        return err_set(FERRY_E_UNTRUSTED, "publish refused: manifest is not signed");
    if (r->trust->n == 0)
        return err_set(FERRY_E_UNTRUSTED,
                       "publish refused: this registry trusts no keys (start it with --trust)");
    char signer[KEY_ID_LEN + 1];
    int rc = manifest_verify(o->manifest.data, o->manifest.len, o->signatures, r->trust, signer);
    if (rc < 0) {
        char why[900];
        snprintf(why, sizeof why, "%s", err_detail());
        return err_set(rc, "publish refused: %s", why);
    }
    Ferry__Manifest *m = NULL;
    if ((rc = manifest_decode(o->manifest.data, o->manifest.len, &m)) < 0)
        return rc;
    /* Governance: a publisher key (for this kind), and any provenance
     * statement must verify over this manifest. */
    struct digest offered;
    digest_of(o->manifest.data, o->manifest.len, &offered);
    if ((rc = gov_allows(r, signer, ROLE_PUBLISHER, m->spec->kind, "publish")) < 0 ||
        (rc = publish_extra_sigs_check(o->signatures, &offered)) < 0) {
        manifest_free(m);
        return rc;
    }
    if ((rc = offer_limits_check_store(&r->store, m, r->max_blob_size)) < 0) {
        manifest_free(m);
        return rc;
    }

    size_t nf = m->n_files ? m->n_files : 1;
    struct pending *p = calloc(1, sizeof *p);
    Ferry__Wire__OfferReply *reply = keep(s, malloc(sizeof *reply));
    Ferry__Wire__Missing **missing = keep(s, calloc(nf, sizeof *missing));
    Ferry__Wire__Missing *mv = keep(s, calloc(nf, sizeof *mv));
    uint8_t *digests = keep(s, malloc((nf + 1) * DIGEST_LEN));
    if (p) {
        p->blobs = malloc(nf * sizeof *p->blobs);
        p->sizes = malloc(nf * sizeof *p->sizes);
        p->mbytes = malloc(o->manifest.len ? o->manifest.len : 1);
    }
    if (!p || !reply || !missing || !mv || !digests || !p->blobs || !p->sizes || !p->mbytes ||
        signatures_encode(o->signatures, &p->sbytes, &p->slen) < 0) {
        pending_free(p);
        manifest_free(m);
        return -ENOMEM;
    }
    ferry__wire__offer_reply__init(reply);
    digest_of(o->manifest.data, o->manifest.len, &p->manifest_digest);
    memcpy(digests, p->manifest_digest.b, DIGEST_LEN);
    reply->manifest_digest.data = digests;
    reply->manifest_digest.len = DIGEST_LEN;
    resp->body_case = FERRY__WIRE__RESPONSE__BODY_OFFER;
    resp->offer = reply;

    /* Same content again is a no-op; other content under a used version is
     * refused now, before any upload. */
    uint8_t *old_sigs = NULL;
    size_t old_len = 0;
    struct digest existing;
    rc = db_get_version(&r->db, m->spec->name, m->spec->version, &existing, &old_sigs, &old_len);
    free(old_sigs);
    if (rc == 0 && digest_equal(&existing, &p->manifest_digest)) {
        reply->already_published = 1;
    } else if (rc == 0) {
        rc = err_set(FERRY_E_EXISTS,
                     "%s@%s: version already published with different content; "
                     "versions are immutable, publish a new version",
                     m->spec->name, m->spec->version);
    } else if (rc == FERRY_E_NOTFOUND) {
        rc = 0;
        memcpy(p->mbytes, o->manifest.data, o->manifest.len);
        p->mlen = o->manifest.len;
        memcpy(p->signer, signer, sizeof signer);
        snprintf(p->name, sizeof p->name, "%s", m->spec->name);
        snprintf(p->version, sizeof p->version, "%s", m->spec->version);
        snprintf(p->kind, sizeof p->kind, "%s", m->spec->kind);
        for (size_t i = 0; i < m->n_files; i++) {
            struct digest d;
            digest_from_bytes(m->files[i]->digest.data, m->files[i]->digest.len, &d);
            size_t j = 0;
            while (j < p->n_blobs && !digest_equal(&p->blobs[j], &d))
                j++;
            if (j < p->n_blobs)
                continue;
            p->blobs[p->n_blobs] = d;
            p->sizes[p->n_blobs] = m->files[i]->size;
            p->n_blobs++;
            uint64_t have;
            if (store_has(&r->store, &d, &have) == 0 && have == m->files[i]->size)
                continue;
            Ferry__Wire__Missing *e = &mv[reply->n_missing];
            uint8_t *dcopy = digests + DIGEST_LEN * (1 + reply->n_missing);
            ferry__wire__missing__init(e);
            memcpy(dcopy, d.b, DIGEST_LEN);
            e->digest.data = dcopy;
            e->digest.len = DIGEST_LEN;
            e->size = m->files[i]->size;
            e->offset = store_partial_size(&r->store, &d);
            if (e->offset > e->size)
                e->offset = 0;
            missing[reply->n_missing++] = e;
        }
        reply->missing = missing;
        pending_add(r, p);
        p = NULL;
    }
    pending_free(p);
    manifest_free(m);
    return rc;
}

static int handle_put_chunk(struct registry *r, const Ferry__Wire__PutChunk *pc,
                            Ferry__Wire__Response *resp, struct scratch *s)
{
    struct digest d;
    uint64_t size = 0;
    if (digest_from_bytes(pc->digest.data, pc->digest.len, &d) < 0)
        return err_set(FERRY_E_INVALID, "chunk: digest must be %d bytes", DIGEST_LEN);
    if (!pending_blob_size(r, &d, &size))
        return err_set(FERRY_E_NOTFOUND,
                       "chunk: no accepted publish names this blob; offer the manifest first");
    if (pc->data.len > WIRE_CHUNK)
        return err_set(FERRY_E_LIMIT, "chunk: more than %u bytes", WIRE_CHUNK);
    uint64_t next = 0;
    int complete = 0;
    int rc = store_partial_write(&r->store, &d, size, pc->offset, pc->data.data, pc->data.len,
                                 &next, &complete);
    if (rc < 0)
        return rc;
    r->blob_bytes_received += pc->data.len;
    if (complete && pc->data.len > 0)
        r->blobs_received++;
    Ferry__Wire__PutChunkReply *reply = keep(s, malloc(sizeof *reply));
    if (!reply)
        return -ENOMEM;
    ferry__wire__put_chunk_reply__init(reply);
    reply->offset = next;
    reply->complete = complete;
    resp->body_case = FERRY__WIRE__RESPONSE__BODY_PUT_CHUNK;
    resp->put_chunk = reply;
    return 0;
}

static int handle_commit(struct registry *r, const Ferry__Wire__Commit *c)
{
    struct digest md;
    if (digest_from_bytes(c->manifest_digest.data, c->manifest_digest.len, &md) < 0)
        return err_set(FERRY_E_INVALID, "commit: digest must be %d bytes", DIGEST_LEN);
    struct pending *p = pending_take(r, &md);
    if (!p)
        return err_set(FERRY_E_NOTFOUND, "commit: no accepted publish for this manifest; "
                                         "offer it again");
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < p->n_blobs; i++) {
        uint64_t have = 0;
        if (store_has(&r->store, &p->blobs[i], &have) < 0 || have != p->sizes[i]) {
            char hex[DIGEST_HEX_LEN + 1];
            digest_hex(&p->blobs[i], hex);
            rc = err_set(FERRY_E_NOTFOUND, "commit %s@%s: blob %.16s was not uploaded", p->name,
                         p->version, hex);
        }
    }
    if (rc == 0)
        rc = store_put(&r->store, p->mbytes, p->mlen, NULL);
    int already = 0;
    if (rc == 0)
        rc = db_add_version(&r->db, p->name, p->version, p->kind, &md, p->signer, p->sbytes,
                            p->slen, &already);
    if (rc == 0 && !already) {
        char subject[200];
        snprintf(subject, sizeof subject, "%s@%s", p->name, p->version);
        audit_append(&r->db, p->signer, AUDIT_ROLE_PUBLISHER, "publish", subject);
        r->publishes++;
        char hex[DIGEST_HEX_LEN + 1];
        digest_hex(&md, hex);
        registry_log("published %s@%s %s by key %s", p->name, p->version, hex, p->signer);
    }
    if (rc < 0)
        pending_add(r, p); /* the client may finish uploading and retry */
    else
        pending_free(p);
    return rc;
}

/* ---- entries (dispatch.c) -------------------------------------------------- */

int on_offer(struct registry *r, const Ferry__Wire__Request *req, Ferry__Wire__Response *resp,
             struct request_scratch *rs)
{
    int rc = handle_offer(r, req->offer, resp, &rs->s);
    if (rc == FERRY_E_UNTRUSTED || rc == FERRY_E_SIGNATURE || rc == FERRY_E_EXISTS ||
        rc == FERRY_E_LIMIT) {
        r->publishes_refused++;
        registry_log("%s", err_detail());
    }
    return rc;
}

int on_put_chunk(struct registry *r, const Ferry__Wire__Request *req,
                 Ferry__Wire__Response *resp, struct request_scratch *rs)
{
    return handle_put_chunk(r, req->put_chunk, resp, &rs->s);
}

int on_commit(struct registry *r, const Ferry__Wire__Request *req, Ferry__Wire__Response *resp,
              struct request_scratch *rs)
{
    (void)resp;
    (void)rs;
    return handle_commit(r, req->commit);
}

void publish_pending_clear(struct registry *r)
{
    pthread_mutex_lock(&r->pending_lock);
    while (r->pending) {
        struct pending *p = r->pending;
        r->pending = p->next;
        pending_free(p);
    }
    r->n_pending = 0;
    pthread_mutex_unlock(&r->pending_lock);
}
