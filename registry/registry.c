#include "registry.h"
#include "clock.h"
#include "db.h"
#include "fleet.h"
#include "record.h"
#include "selector.h"
#include "error.h"
#include "manifest.h"
#include "spec.h"
#include "store.h"
#include "tls.h"
#include "wire.h"

#include <errno.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/util/platform.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* A Poll whose answer would not differ from what the host already has: its
 * context is set aside (the worker opens a fresh one) until the host's
 * desired state changes or the poll's wait runs out. */
struct parked {
    nng_ctx ctx;
    char host[72];
    uint64_t known_serial;
    int64_t deadline_ms;
    struct parked *next;
};

struct worker {
    struct registry *reg;
    nng_ctx ctx;
    nng_aio *aio;
    pthread_t thread;
    int started;
};

struct registry {
    nng_socket sock;
    nng_listener listener;
    char url[256];
    const struct trust *trust;
    struct store store;
    struct db db;
    pthread_mutex_t pending_lock;
    struct pending *pending;
    size_t n_pending;
    int n_workers;
    struct worker *workers;
    int host_ttl_ms;
    /* Long polls waiting for a host's desired state to change. */
    pthread_mutex_t park_lock;
    pthread_cond_t park_wake;
    struct parked *parked;
    int park_dirty;     /* deployments changed: re-check every parked poll */
    int stopping;
    pthread_t notifier;
    int notifier_started;
    _Atomic uint64_t requests, bad_requests, blobs_received, blob_bytes_received,
        chunks_served, publishes, publishes_refused;
};

static void logf_(const char *fmt, ...) FY_PRINTF(1, 2);
static void logf_(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ferry-registry: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

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

/* ---- request handlers ---------------------------------------------------- */

/* Memory a response points into, freed after the response is packed. */
struct scratch {
    void *ptrs[8];
    int n;
    Ferry__SignatureList *sigs;
    struct db_version *versions;
};

static void *keep(struct scratch *s, void *p)
{
    if (p && s->n < 8)
        s->ptrs[s->n++] = p;
    return p;
}

static void scratch_free(struct scratch *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->ptrs[i]);
    signatures_free(s->sigs);
    free(s->versions);
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
        db_audit(&r->db, p->signer, "publish", subject);
        r->publishes++;
        char hex[DIGEST_HEX_LEN + 1];
        digest_hex(&md, hex);
        logf_("published %s@%s %s by key %s", p->name, p->version, hex, p->signer);
    }
    if (rc < 0)
        pending_add(r, p); /* the client may finish uploading and retry */
    else
        pending_free(p);
    return rc;
}

static int handle_get_manifest(struct registry *r, const Ferry__Wire__GetManifest *g,
                               Ferry__Wire__Response *resp, struct scratch *s)
{
    if (!g->name || !spec_name_ok(g->name) || !g->version || !spec_version_ok(g->version))
        return err_set(FERRY_E_INVALID, "manifest request: invalid name or version");
    struct digest md;
    uint8_t *sbytes = NULL, *mbytes = NULL;
    size_t slen = 0, mlen = 0;
    int rc = db_get_version(&r->db, g->name, g->version, &md, &sbytes, &slen);
    if (rc < 0)
        return rc;
    keep(s, sbytes);
    if ((rc = signatures_decode(sbytes, slen, &s->sigs)) < 0)
        return rc;
    rc = store_read_all(&r->store, &md, MANIFEST_MAX_BYTES, &mbytes, &mlen);
    if (rc < 0)
        return err_set(rc, "%s@%s: manifest blob missing from the store", g->name, g->version);
    keep(s, mbytes);
    Ferry__Wire__ManifestReply *reply = keep(s, malloc(sizeof *reply));
    uint8_t *dcopy = keep(s, malloc(DIGEST_LEN));
    if (!reply || !dcopy)
        return -ENOMEM;
    ferry__wire__manifest_reply__init(reply);
    memcpy(dcopy, md.b, DIGEST_LEN);
    reply->manifest.data = mbytes;
    reply->manifest.len = mlen;
    reply->signatures = s->sigs;
    reply->manifest_digest.data = dcopy;
    reply->manifest_digest.len = DIGEST_LEN;
    resp->body_case = FERRY__WIRE__RESPONSE__BODY_MANIFEST;
    resp->manifest = reply;
    return 0;
}

static int handle_get_chunk(struct registry *r, const Ferry__Wire__GetChunk *g,
                            Ferry__Wire__Response *resp, struct scratch *s)
{
    struct digest d;
    if (digest_from_bytes(g->digest.data, g->digest.len, &d) < 0)
        return err_set(FERRY_E_INVALID, "chunk request: digest must be %d bytes", DIGEST_LEN);
    if (g->length > WIRE_CHUNK)
        return err_set(FERRY_E_LIMIT, "chunk request: more than %u bytes", WIRE_CHUNK);
    uint64_t size = 0;
    int rc = store_has(&r->store, &d, &size);
    if (rc < 0) {
        char hex[DIGEST_HEX_LEN + 1];
        digest_hex(&d, hex);
        return err_set(FERRY_E_NOTFOUND, "blob %.16s: not in this registry", hex);
    }
    if (g->offset > size)
        return err_set(FERRY_E_INVALID, "chunk request: offset past the end of the blob");
    uint64_t want = size - g->offset < g->length ? size - g->offset : g->length;
    uint8_t *buf = keep(s, malloc(want ? want : 1));
    if (!buf)
        return -ENOMEM;
    size_t got = 0;
    if ((rc = store_read(&r->store, &d, g->offset, buf, (size_t)want, &got)) < 0)
        return err_set(rc, "blob read failed: %s", ferry_strerror(rc));
    Ferry__Wire__ChunkReply *reply = keep(s, malloc(sizeof *reply));
    if (!reply)
        return -ENOMEM;
    ferry__wire__chunk_reply__init(reply);
    reply->data.data = buf;
    reply->data.len = got;
    reply->size = size;
    resp->body_case = FERRY__WIRE__RESPONSE__BODY_CHUNK;
    resp->chunk = reply;
    r->chunks_served++;
    return 0;
}

static int handle_list_versions(struct registry *r, const Ferry__Wire__ListVersions *l,
                                Ferry__Wire__Response *resp, struct scratch *s)
{
    if (!l->name || !spec_name_ok(l->name))
        return err_set(FERRY_E_INVALID, "versions request: invalid name");
    size_t n = 0;
    int rc = db_list_versions(&r->db, l->name, &s->versions, &n);
    if (rc < 0)
        return rc;
    Ferry__Wire__VersionList *reply = keep(s, malloc(sizeof *reply));
    Ferry__Wire__VersionInfo **v = keep(s, calloc(n ? n : 1, sizeof *v));
    Ferry__Wire__VersionInfo *vi = keep(s, calloc(n ? n : 1, sizeof *vi));
    if (!reply || !v || !vi)
        return -ENOMEM;
    ferry__wire__version_list__init(reply);
    for (size_t i = 0; i < n; i++) {
        ferry__wire__version_info__init(&vi[i]);
        vi[i].version = s->versions[i].version;
        vi[i].manifest_digest.data = s->versions[i].manifest_digest.b;
        vi[i].manifest_digest.len = DIGEST_LEN;
        vi[i].publisher = s->versions[i].publisher;
        vi[i].published_unix = s->versions[i].published_unix;
        vi[i].kind = s->versions[i].kind;
        v[i] = &vi[i];
    }
    reply->versions = v;
    reply->n_versions = n;
    resp->body_case = FERRY__WIRE__RESPONSE__BODY_VERSIONS;
    resp->versions = reply;
    return 0;
}

static int handle_stats(struct registry *r, Ferry__Wire__Response *resp, struct scratch *s)
{
    Ferry__Wire__StatsReply *st = keep(s, malloc(sizeof *st));
    if (!st)
        return -ENOMEM;
    ferry__wire__stats_reply__init(st);
    st->requests = r->requests;
    st->bad_requests = r->bad_requests;
    st->blobs_received = r->blobs_received;
    st->blob_bytes_received = r->blob_bytes_received;
    st->chunks_served = r->chunks_served;
    st->publishes = r->publishes;
    st->publishes_refused = r->publishes_refused;
    resp->body_case = FERRY__WIRE__RESPONSE__BODY_STATS;
    resp->stats = st;
    return 0;
}


/* ---- fleet: deployments, hosts, reports ----------------------------------- */

static void wake_pollers(struct registry *r)
{
    pthread_mutex_lock(&r->park_lock);
    r->park_dirty = 1;
    pthread_cond_signal(&r->park_wake);
    pthread_mutex_unlock(&r->park_lock);
}

static int handle_deploy(struct registry *r, const Ferry__Wire__Deploy *d)
{
    char signer[KEY_ID_LEN + 1];
    Ferry__DeployRecord *rec = NULL;
    if (!d->signed_)
        return err_set(FERRY_E_UNTRUSTED, "deploy refused: request is not signed");
    int rc = record_verify(d->signed_, r->trust, &rec, signer);
    if (rc < 0) {
        char why[900];
        snprintf(why, sizeof why, "%s", err_detail());
        return err_set(rc, "deploy refused: %s", why);
    }
    if (!rec->undeploy) {
        struct digest have;
        uint8_t *sigs = NULL;
        size_t slen = 0;
        rc = db_get_version(&r->db, rec->name, rec->version, &have, &sigs, &slen);
        free(sigs);
        if (rc == 0 && memcmp(have.b, rec->manifest_digest.data, DIGEST_LEN) != 0)
            rc = err_set(FERRY_E_INVALID, "deploy %s@%s: the signed digest is not this version's",
                         rec->name, rec->version);
    }
    size_t len = ferry__signed_record__get_packed_size(d->signed_);
    uint8_t *bytes = rc == 0 ? malloc(len ? len : 1) : NULL;
    if (rc == 0 && !bytes)
        rc = -ENOMEM;
    if (rc == 0) {
        ferry__signed_record__pack(d->signed_, bytes);
        rc = db_deployment_put(&r->db, rec->name, rec->selector, (int64_t)rec->issued_ms, bytes,
                               len);
    }
    if (rc == 0) {
        char subject[256];
        snprintf(subject, sizeof subject, "%s%s%s to %s", rec->name, rec->undeploy ? "" : "@",
                 rec->undeploy ? "" : rec->version, rec->selector);
        db_audit(&r->db, signer, rec->undeploy ? "undeploy" : "deploy", subject);
        logf_("%s %s by key %s", rec->undeploy ? "undeploy" : "deploy", subject, signer);
        wake_pollers(r);
    }
    free(bytes);
    record_free(rec);
    return rc;
}

static int handle_register(struct registry *r, const Ferry__Wire__Register *reg)
{
    Ferry__Wire__HostHello *hello =
        ferry__wire__host_hello__unpack(NULL, reg->hello.len, reg->hello.data);
    if (!hello)
        return err_set(FERRY_E_PROTOCOL, "register: malformed hello");
    int rc = 0;
    struct label_set labels = {.n = 0};
    char text[2048];
    if (!spec_name_ok(hello->name))
        rc = err_set(FERRY_E_INVALID, "register: invalid host name");
    else if (hello->host_key.len != crypto_sign_PUBLICKEYBYTES ||
             key_verify(hello->host_key.data, reg->hello.data, reg->hello.len, reg->signature.data,
                        reg->signature.len) < 0)
        rc = err_set(FERRY_E_SIGNATURE, "register %s: hello not signed by its host key",
                     hello->name);
    for (size_t i = 0; rc == 0 && i < hello->n_labels; i++) {
        char kv[160];
        snprintf(kv, sizeof kv, "%s=%s", hello->labels[i]->key, hello->labels[i]->value);
        rc = labels_add(&labels, kv);
    }
    if (rc == 0) {
        labels_format(&labels, text, sizeof text);
        rc = db_host_register(&r->db, hello->name, hello->host_key.data, text, (int64_t)clock_unix_ms());
    }
    if (rc == 0)
        logf_("host %s registered (%s)", hello->name, text);
    ferry__wire__host_hello__free_unpacked(hello, NULL);
    return rc;
}

/* Labels of a registered host. */
static int host_labels(struct registry *r, const char *host, struct label_set *out)
{
    char text[2048];
    int rc = db_host_labels(&r->db, host, text, sizeof text);
    if (rc < 0)
        return rc;
    out->n = 0;
    return text[0] ? labels_parse(text, out) : 0;
}

/* The desired-state response for host (pointing into *d). */
static int desired_response(struct registry *r, const char *host, struct desired *d,
                            Ferry__Wire__Response *resp, struct scratch *s)
{
    struct label_set labels;
    int rc = host_labels(r, host, &labels);
    if (rc == 0)
        rc = fleet_desired_for(&r->db, &labels, d);
    if (rc < 0)
        return rc;
    Ferry__Wire__DesiredState *ds = keep(s, malloc(sizeof *ds));
    if (!ds)
        return -ENOMEM;
    ferry__wire__desired_state__init(ds);
    ds->serial = d->serial;
    ds->records = d->signed_records;
    ds->n_records = d->n;
    resp->body_case = FERRY__WIRE__RESPONSE__BODY_DESIRED;
    resp->desired = ds;
    return 0;
}

static int handle_report(struct registry *r, const Ferry__Wire__Report *rep)
{
    Ferry__Wire__ReportBody *body =
        ferry__wire__report_body__unpack(NULL, rep->body.len, rep->body.data);
    if (!body)
        return err_set(FERRY_E_PROTOCOL, "report: malformed body");
    uint8_t key[32];
    int rc = db_host_key(&r->db, body->host, key);
    if (rc == 0 &&
        key_verify(key, rep->body.data, rep->body.len, rep->signature.data, rep->signature.len) < 0)
        rc = err_set(FERRY_E_SIGNATURE, "report from %s: not signed by its host key", body->host);
    if (rc == 0)
        rc = db_host_report(&r->db, body->host, rep->body.data, rep->body.len, (int64_t)clock_unix_ms());
    if (rc == 0 && body->n_events > 0) {
        /* Keep each change on its own, re-encoded: the snapshot replaces
         * the last one, the changes accumulate. */
        size_t n = body->n_events;
        uint8_t **bufs = calloc(n, sizeof *bufs);
        size_t *lens = calloc(n, sizeof *lens);
        for (size_t i = 0; bufs && lens && i < n; i++) {
            lens[i] = ferry__wire__workload_report__get_packed_size(body->events[i]);
            bufs[i] = malloc(lens[i] ? lens[i] : 1);
            if (bufs[i])
                ferry__wire__workload_report__pack(body->events[i], bufs[i]);
        }
        int complete = bufs && lens;
        for (size_t i = 0; complete && i < n; i++)
            complete = bufs[i] != NULL;
        if (complete)
            rc = db_events_add(&r->db, body->host, (const uint8_t *const *)bufs, lens, n);
        for (size_t i = 0; bufs && i < n; i++)
            free(bufs[i]);
        free(bufs);
        free(lens);
        if (body->events_dropped)
            logf_("host %s dropped %u state changes while the registry was away", body->host,
                  body->events_dropped);
    }
    ferry__wire__report_body__free_unpacked(body, NULL);
    return rc;
}

struct events_scratch {
    struct db_event *rows;
    size_t n;
    Ferry__Wire__Event *ev;
    Ferry__Wire__Event **ptrs;
    Ferry__Wire__WorkloadReport **changes;
};

static void events_scratch_free(struct events_scratch *e)
{
    for (size_t i = 0; e->changes && i < e->n; i++)
        if (e->changes[i])
            ferry__wire__workload_report__free_unpacked(e->changes[i], NULL);
    db_events_free(e->rows, e->n);
    free(e->ev);
    free(e->ptrs);
    free(e->changes);
}

static int handle_list_events(struct registry *r, const Ferry__Wire__ListEvents *le,
                              Ferry__Wire__Response *resp, struct scratch *s,
                              struct events_scratch *e)
{
    size_t limit = le->limit ? (le->limit > 10000 ? 10000 : le->limit) : 100;
    int rc = db_events_list(&r->db, le->host && *le->host ? le->host : NULL, limit, &e->rows,
                            &e->n);
    if (rc < 0)
        return rc;
    size_t n = e->n ? e->n : 1;
    e->ev = calloc(n, sizeof *e->ev);
    e->ptrs = calloc(n, sizeof *e->ptrs);
    e->changes = calloc(n, sizeof *e->changes);
    Ferry__Wire__EventList *list = keep(s, malloc(sizeof *list));
    if (!e->ev || !e->ptrs || !e->changes || !list)
        return -ENOMEM;
    ferry__wire__event_list__init(list);
    for (size_t i = 0; i < e->n; i++) {
        e->changes[i] = ferry__wire__workload_report__unpack(NULL, e->rows[i].len, e->rows[i].change);
        if (!e->changes[i])
            continue;
        Ferry__Wire__Event *ev = &e->ev[list->n_events];
        ferry__wire__event__init(ev);
        ev->host = e->rows[i].host;
        ev->change = e->changes[i];
        e->ptrs[list->n_events++] = ev;
    }
    list->events = e->ptrs;
    resp->body_case = FERRY__WIRE__RESPONSE__BODY_EVENTS;
    resp->events = list;
    return 0;
}

/* Everything one ListHosts reply points into. */
struct hosts_scratch {
    struct db_host *hosts;
    size_t n;
    Ferry__Wire__HostInfo *infos;
    Ferry__Wire__HostInfo **ptrs;
    Ferry__Wire__ReportBody **bodies;
    Ferry__Wire__Label *labels;
    Ferry__Wire__Label **label_ptrs;
    Ferry__Wire__DesiredEntry *desired;
    Ferry__Wire__DesiredEntry **desired_ptrs;
    struct desired *des;
    struct label_set *sets;
    char (*key_ids)[KEY_ID_LEN + 1];
};

static void hosts_scratch_free(struct hosts_scratch *h)
{
    for (size_t i = 0; h->bodies && i < h->n; i++)
        if (h->bodies[i])
            ferry__wire__report_body__free_unpacked(h->bodies[i], NULL);
    for (size_t i = 0; h->des && i < h->n; i++)
        desired_free(&h->des[i]);
    db_host_list_free(h->hosts, h->n);
    free(h->infos);
    free(h->ptrs);
    free(h->bodies);
    free(h->labels);
    free(h->label_ptrs);
    free(h->desired);
    free(h->desired_ptrs);
    free(h->des);
    free(h->sets);
    free(h->key_ids);
}

static int handle_list_hosts(struct registry *r, Ferry__Wire__Response *resp, struct scratch *s,
                             struct hosts_scratch *h)
{
    int rc = db_host_list(&r->db, &h->hosts, &h->n);
    if (rc < 0)
        return rc;
    size_t n = h->n ? h->n : 1;
    h->infos = calloc(n, sizeof *h->infos);
    h->ptrs = calloc(n, sizeof *h->ptrs);
    h->bodies = calloc(n, sizeof *h->bodies);
    h->labels = calloc(n * LABEL_MAX, sizeof *h->labels);
    h->label_ptrs = calloc(n * LABEL_MAX, sizeof *h->label_ptrs);
    h->des = calloc(n, sizeof *h->des);
    h->sets = calloc(n, sizeof *h->sets);
    h->key_ids = calloc(n, sizeof *h->key_ids);
    if (!h->infos || !h->ptrs || !h->bodies || !h->labels || !h->label_ptrs || !h->des ||
        !h->sets || !h->key_ids)
        return -ENOMEM;
    size_t total_desired = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (h->hosts[i].labels[0])
            labels_parse(h->hosts[i].labels, &h->sets[i]);
        if (fleet_desired_for(&r->db, &h->sets[i], &h->des[i]) == 0)
            total_desired += h->des[i].n;
    }
    h->desired = calloc(total_desired ? total_desired : 1, sizeof *h->desired);
    h->desired_ptrs = calloc(total_desired ? total_desired : 1, sizeof *h->desired_ptrs);
    if (!h->desired || !h->desired_ptrs)
        return -ENOMEM;
    int64_t now = (int64_t)clock_unix_ms();
    size_t di = 0;
    for (size_t i = 0; i < h->n; i++) {
        struct db_host *dh = &h->hosts[i];
        Ferry__Wire__HostInfo *info = &h->infos[i];
        ferry__wire__host_info__init(info);
        info->name = dh->name;
        info->last_seen_ms = (uint64_t)dh->last_seen_ms;
        info->online = now - dh->last_seen_ms <= r->host_ttl_ms;
        key_id_of(dh->key, h->key_ids[i]);
        info->key_id = h->key_ids[i];
        info->labels = &h->label_ptrs[i * LABEL_MAX];
        for (size_t l = 0; l < h->sets[i].n; l++) {
            Ferry__Wire__Label *lb = &h->labels[i * LABEL_MAX + l];
            ferry__wire__label__init(lb);
            lb->key = h->sets[i].v[l].key;
            lb->value = h->sets[i].v[l].value;
            info->labels[info->n_labels++] = lb;
        }
        if (dh->report) {
            h->bodies[i] = ferry__wire__report_body__unpack(NULL, dh->report_len, dh->report);
            if (h->bodies[i]) {
                info->workloads = h->bodies[i]->workloads;
                info->n_workloads = h->bodies[i]->n_workloads;
            }
        }
        info->desired = &h->desired_ptrs[di];
        for (size_t k = 0; k < h->des[i].n; k++) {
            const Ferry__DeployRecord *rec = h->des[i].records[k];
            if (rec->undeploy)
                continue;
            Ferry__Wire__DesiredEntry *e = &h->desired[di];
            ferry__wire__desired_entry__init(e);
            e->name = rec->name;
            e->version = rec->version;
            h->desired_ptrs[di++] = e;
            info->n_desired++;
        }
        h->ptrs[i] = info;
    }
    Ferry__Wire__HostList *list = keep(s, malloc(sizeof *list));
    if (!list)
        return -ENOMEM;
    ferry__wire__host_list__init(list);
    list->hosts = h->ptrs;
    list->n_hosts = h->n;
    resp->body_case = FERRY__WIRE__RESPONSE__BODY_HOSTS;
    resp->hosts = list;
    return 0;
}

/* ---- long polls ------------------------------------------------------------ */

/* Answer a parked poll with the host's current desired state and retire its
 * context. Runs on the notifier thread. */
static void answer_parked(struct registry *r, struct parked *p)
{
    Ferry__Wire__Response resp;
    ferry__wire__response__init(&resp);
    struct scratch s = {0};
    struct desired d = {0};
    err_clear();
    int rc = desired_response(r, p->host, &d, &resp, &s);
    if (rc < 0) {
        resp.body_case = FERRY__WIRE__RESPONSE__BODY__NOT_SET;
        resp.code = wire_code_of(rc);
        resp.error = (char *)err_message(rc);
    }
    nng_msg *out = NULL;
    nng_aio *aio = NULL;
    if (wire_pack_response(&resp, &out) == 0 && nng_aio_alloc(&aio, NULL, NULL) == 0) {
        nng_aio_set_timeout(aio, 5000);
        nng_aio_set_msg(aio, out);
        nng_ctx_send(p->ctx, aio);
        nng_aio_wait(aio);
        if (nng_aio_result(aio) != 0)
            nng_msg_free(out);
    } else if (out) {
        nng_msg_free(out);
    }
    if (aio)
        nng_aio_free(aio);
    nng_ctx_close(p->ctx);
    desired_free(&d);
    scratch_free(&s);
}

/* 1 when host's desired serial differs from known. */
static int serial_changed(struct registry *r, const char *host, uint64_t known)
{
    struct label_set labels;
    struct desired d = {0};
    if (host_labels(r, host, &labels) < 0 || fleet_desired_for(&r->db, &labels, &d) < 0)
        return 1; /* answer now; the reply carries the error */
    int changed = d.serial != known;
    desired_free(&d);
    return changed;
}

static void *notifier_main(void *arg)
{
    struct registry *r = arg;
    pthread_mutex_lock(&r->park_lock);
    while (!r->stopping) {
        int64_t now = (int64_t)clock_mono_ms(), next = now + 1000;
        for (struct parked *p = r->parked; p; p = p->next)
            if (p->deadline_ms < next)
                next = p->deadline_ms;
        if (!r->park_dirty && next > now) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t wait = next - now;
            ts.tv_sec += wait / 1000;
            ts.tv_nsec += (wait % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&r->park_wake, &r->park_lock, &ts);
            continue;
        }
        int dirty = r->park_dirty;
        r->park_dirty = 0;
        struct parked *all = r->parked;
        r->parked = NULL;
        pthread_mutex_unlock(&r->park_lock);

        /* Decide outside the lock: each check reads the database. */
        struct parked *keep_list = NULL;
        now = (int64_t)clock_mono_ms();
        while (all) {
            struct parked *p = all;
            all = p->next;
            if (p->deadline_ms <= now || (dirty && serial_changed(r, p->host, p->known_serial))) {
                answer_parked(r, p);
                free(p);
            } else {
                p->next = keep_list;
                keep_list = p;
            }
        }
        pthread_mutex_lock(&r->park_lock);
        while (keep_list) {
            struct parked *p = keep_list;
            keep_list = p->next;
            p->next = r->parked;
            r->parked = p;
        }
    }
    pthread_mutex_unlock(&r->park_lock);
    return NULL;
}

/* Returned by dispatch when a poll should wait instead of being answered. */
#define PARK 1

struct request_scratch {
    struct scratch s;
    struct hosts_scratch hosts;
    struct events_scratch events;
    struct desired desired;
};

static int dispatch(struct registry *r, const Ferry__Wire__Request *req,
                    Ferry__Wire__Response *resp, struct request_scratch *rs)
{
    struct scratch *s = &rs->s;
    switch (req->body_case) {
    case FERRY__WIRE__REQUEST__BODY_DEPLOY:
        return handle_deploy(r, req->deploy);
    case FERRY__WIRE__REQUEST__BODY_REGISTER:
        return handle_register(r, req->register_);
    case FERRY__WIRE__REQUEST__BODY_REPORT:
        return handle_report(r, req->report);
    case FERRY__WIRE__REQUEST__BODY_LIST_HOSTS:
        return handle_list_hosts(r, resp, s, &rs->hosts);
    case FERRY__WIRE__REQUEST__BODY_LIST_EVENTS:
        return handle_list_events(r, req->list_events, resp, s, &rs->events);
    case FERRY__WIRE__REQUEST__BODY_POLL: {
        const Ferry__Wire__Poll *p = req->poll;
        int rc = db_host_seen(&r->db, p->host, (int64_t)clock_unix_ms());
        if (rc == 0)
            rc = desired_response(r, p->host, &rs->desired, resp, s);
        if (rc == 0 && p->wait_ms > 0 && rs->desired.serial == p->known_serial)
            return PARK;
        return rc;
    }
    case FERRY__WIRE__REQUEST__BODY_PING:
        return 0;
    case FERRY__WIRE__REQUEST__BODY_OFFER: {
        int rc = handle_offer(r, req->offer, resp, s);
        if (rc == FERRY_E_UNTRUSTED || rc == FERRY_E_SIGNATURE || rc == FERRY_E_EXISTS) {
            r->publishes_refused++;
            logf_("%s", err_detail());
        }
        return rc;
    }
    case FERRY__WIRE__REQUEST__BODY_PUT_CHUNK:
        return handle_put_chunk(r, req->put_chunk, resp, s);
    case FERRY__WIRE__REQUEST__BODY_COMMIT:
        return handle_commit(r, req->commit);
    case FERRY__WIRE__REQUEST__BODY_GET_MANIFEST:
        return handle_get_manifest(r, req->get_manifest, resp, s);
    case FERRY__WIRE__REQUEST__BODY_GET_CHUNK:
        return handle_get_chunk(r, req->get_chunk, resp, s);
    case FERRY__WIRE__REQUEST__BODY_LIST_VERSIONS:
        return handle_list_versions(r, req->list_versions, resp, s);
    case FERRY__WIRE__REQUEST__BODY_STATS:
        return handle_stats(r, resp, s);
    default:
        return err_set(FERRY_E_PROTOCOL, "request has no known body");
    }
}

/* Turn one request message into one response message. Never fails: every
 * problem becomes an error response, so a bad client cannot stall a worker.
 * A poll with nothing new returns NULL and fills *park instead. */
static nng_msg *serve_one(struct registry *r, nng_msg *in, struct parked **park)
{
    r->requests++;
    err_clear();
    Ferry__Wire__Response resp;
    ferry__wire__response__init(&resp);
    struct request_scratch rs;
    memset(&rs, 0, sizeof rs);
    Ferry__Wire__Request *req =
        ferry__wire__request__unpack(NULL, nng_msg_len(in), nng_msg_body(in));
    int rc;
    nng_msg *out = NULL;
    if (!req) {
        rc = err_set(FERRY_E_PROTOCOL, "malformed request");
        r->bad_requests++;
    } else {
        rc = dispatch(r, req, &resp, &rs);
    }
    if (rc == PARK) {
        struct parked *p = calloc(1, sizeof *p);
        if (p) {
            snprintf(p->host, sizeof p->host, "%s", req->poll->host);
            p->known_serial = req->poll->known_serial;
            uint32_t wait = req->poll->wait_ms > 60000 ? 60000 : req->poll->wait_ms;
            p->deadline_ms = (int64_t)clock_mono_ms() + wait;
            *park = p;
        } else {
            rc = 0; /* cannot park: answer now with the same state */
        }
    }
    if (rc < 0) {
        resp.body_case = FERRY__WIRE__RESPONSE__BODY__NOT_SET;
        resp.code = wire_code_of(rc);
        resp.error = (char *)err_message(rc);
    }
    if (rc != PARK && wire_pack_response(&resp, &out) < 0)
        out = NULL;
    if (rc == PARK && !*park)
        out = NULL;
    scratch_free(&rs.s);
    hosts_scratch_free(&rs.hosts);
    events_scratch_free(&rs.events);
    desired_free(&rs.desired);
    if (req)
        ferry__wire__request__free_unpacked(req, NULL);
    return out;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct registry *r = w->reg;
    for (;;) {
        nng_ctx_recv(w->ctx, w->aio);
        nng_aio_wait(w->aio);
        int rv = nng_aio_result(w->aio);
        if (rv == NNG_ECLOSED)
            break;
        if (rv != 0)
            continue; /* e.g. an oversized message was dropped: keep serving */
        nng_msg *in = nng_aio_get_msg(w->aio);
        struct parked *park = NULL;
        nng_msg *out = serve_one(r, in, &park);
        nng_msg_free(in);
        if (park) {
            /* Hand this context to the notifier and go on with a new one. */
            nng_ctx fresh;
            if (nng_ctx_open(&fresh, r->sock) != 0) {
                free(park);
                break;
            }
            park->ctx = w->ctx;
            w->ctx = fresh;
            pthread_mutex_lock(&r->park_lock);
            if (r->stopping) {
                /* Shutting down: nobody would answer it. */
                nng_ctx_close(park->ctx);
                free(park);
            } else {
                park->next = r->parked;
                r->parked = park;
                pthread_cond_signal(&r->park_wake);
            }
            pthread_mutex_unlock(&r->park_lock);
            continue;
        }
        if (!out)
            continue;
        nng_aio_set_msg(w->aio, out);
        nng_ctx_send(w->ctx, w->aio);
        nng_aio_wait(w->aio);
        rv = nng_aio_result(w->aio);
        if (rv != 0)
            nng_msg_free(out);
        if (rv == NNG_ECLOSED)
            break;
    }
    /* nng_close waits for every context to be closed; a context opened
     * while it ran (a fresh one after a park) would keep it waiting. */
    nng_ctx_close(w->ctx);
    return NULL;
}

int registry_start(const struct registry_config *cfg, struct registry **out)
{
    struct registry *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->trust = cfg->trust;
    r->n_workers = cfg->workers > 0 ? cfg->workers : REGISTRY_DEFAULT_WORKERS;
    r->host_ttl_ms = cfg->host_ttl_ms > 0 ? cfg->host_ttl_ms : REGISTRY_DEFAULT_HOST_TTL_MS;
    pthread_mutex_init(&r->pending_lock, NULL);
    pthread_mutex_init(&r->park_lock, NULL);
    pthread_cond_init(&r->park_wake, NULL);
    char path[4096];
    int rc = 0, rv;

    snprintf(path, sizeof path, "%s", cfg->data_dir);
    if ((rc = store_open(&r->store, cfg->data_dir)) < 0) {
        free(r);
        return rc;
    }
    snprintf(path, sizeof path, "%s/registry.db", cfg->data_dir);
    if ((rc = db_open(&r->db, path)) < 0) {
        store_close(&r->store);
        free(r);
        return rc;
    }
    if ((rv = nng_rep0_open(&r->sock)) != 0) {
        rc = err_set(FERRY_E_TRANSPORT, "socket: %s", nng_strerror(rv));
        goto fail_db;
    }
    nng_socket_set_size(r->sock, NNG_OPT_RECVMAXSZ, WIRE_MAX_MSG);
    const char *url = cfg->listen_url ? cfg->listen_url : WIRE_DEFAULT_URL;
    if (tls_url(url)) {
        nng_tls_config *tls = NULL;
        if (!cfg->tls_cert_key) {
            rc = err_set(FERRY_E_INVALID, "listen %s: TLS needs --tls-cert FILE.pem", url);
            goto fail_sock;
        }
        if ((rc = tls_server_config(cfg->tls_cert_key, &tls)) < 0)
            goto fail_sock;
        rv = nng_listener_create(&r->listener, r->sock, url);
        if (rv == 0)
            rv = nng_listener_set_ptr(r->listener, NNG_OPT_TLS_CONFIG, tls);
        nng_tls_config_free(tls); /* the listener holds its own reference */
        if (rv == 0)
            rv = nng_listener_start(r->listener, 0);
    } else {
        rv = nng_listen(r->sock, url, &r->listener, 0);
    }
    if (rv != 0) {
        rc = err_set(FERRY_E_TRANSPORT, "listen %s: %s", url, nng_strerror(rv));
        goto fail_sock;
    }
    int port = 0;
    snprintf(r->url, sizeof r->url, "%s", url);
    if (nng_listener_get_int(r->listener, NNG_OPT_TCP_BOUND_PORT, &port) == 0) {
        /* Rewrite the URL with the port really bound (port 0 picks one). */
        const char *colon = strrchr(url, ':');
        if (colon)
            snprintf(r->url, sizeof r->url, "%.*s:%d", (int)(colon - url), url, port);
    }
    r->workers = calloc((size_t)r->n_workers, sizeof *r->workers);
    if (!r->workers) {
        rc = -ENOMEM;
        goto fail_sock;
    }
    for (int i = 0; i < r->n_workers; i++) {
        struct worker *w = &r->workers[i];
        w->reg = r;
        if (nng_ctx_open(&w->ctx, r->sock) != 0 || nng_aio_alloc(&w->aio, NULL, NULL) != 0 ||
            pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            rc = err_set(FERRY_E_TRANSPORT, "could not start worker %d", i);
            goto fail_workers;
        }
        w->started = 1;
    }
    if (pthread_create(&r->notifier, NULL, notifier_main, r) != 0) {
        rc = err_set(FERRY_E_TRANSPORT, "could not start the poll notifier");
        goto fail_workers;
    }
    r->notifier_started = 1;
    *out = r;
    return 0;

fail_workers:
    nng_close(r->sock);
    for (int i = 0; i < r->n_workers; i++) {
        if (r->workers[i].started)
            pthread_join(r->workers[i].thread, NULL);
        if (r->workers[i].aio)
            nng_aio_free(r->workers[i].aio);
    }
    free(r->workers);
    goto fail_db;
fail_sock:
    nng_close(r->sock);
fail_db:
    db_close(&r->db);
    store_close(&r->store);
    pthread_mutex_destroy(&r->pending_lock);
    free(r);
    return rc;
}

const char *registry_url(const struct registry *r) { return r->url; }

void registry_get_stats(struct registry *r, struct registry_stats *out)
{
    out->requests = r->requests;
    out->bad_requests = r->bad_requests;
    out->blobs_received = r->blobs_received;
    out->blob_bytes_received = r->blob_bytes_received;
    out->chunks_served = r->chunks_served;
    out->publishes = r->publishes;
    out->publishes_refused = r->publishes_refused;
}

void registry_stop(struct registry *r)
{
    pthread_mutex_lock(&r->park_lock);
    r->stopping = 1;
    pthread_cond_signal(&r->park_wake);
    pthread_mutex_unlock(&r->park_lock);
    if (r->notifier_started)
        pthread_join(r->notifier, NULL);
    /* Parked polls are never answered now; their contexts go first. */
    pthread_mutex_lock(&r->park_lock);
    while (r->parked) {
        struct parked *p = r->parked;
        r->parked = p->next;
        nng_ctx_close(p->ctx);
        free(p);
    }
    pthread_mutex_unlock(&r->park_lock);
    nng_close(r->sock);
    for (int i = 0; i < r->n_workers; i++) {
        pthread_join(r->workers[i].thread, NULL);
        nng_aio_free(r->workers[i].aio);
    }
    free(r->workers);
    while (r->pending) {
        struct pending *p = r->pending;
        r->pending = p->next;
        pending_free(p);
    }
    db_close(&r->db);
    store_close(&r->store);
    pthread_mutex_destroy(&r->pending_lock);
    free(r);
}

/* ---- one request without a socket ------------------------------------------ */

/* The fuzz targets drive every request through serve_one, as a worker does,
 * but without nng pipes. A poll that would park is dropped here, as if its
 * client had gone away: nothing waits and nothing is kept. */
int registry_handle(struct registry *r, const uint8_t *req, size_t len, uint8_t **resp,
                    size_t *resp_len)
{
    *resp = NULL;
    *resp_len = 0;
    if (len > WIRE_MAX_MSG)
        return err_set(FERRY_E_LIMIT, "request: %zu bytes, more than %u", len, WIRE_MAX_MSG);
    nng_msg *in = NULL;
    if (nng_msg_alloc(&in, len) != 0)
        return -ENOMEM;
    if (len > 0)
        memcpy(nng_msg_body(in), req, len);
    struct parked *park = NULL;
    nng_msg *out = serve_one(r, in, &park);
    nng_msg_free(in);
    if (park) {
        free(park);
        return 0;
    }
    if (!out)
        return -ENOMEM;
    size_t n = nng_msg_len(out);
    uint8_t *copy = malloc(n ? n : 1);
    if (copy)
        memcpy(copy, nng_msg_body(out), n);
    nng_msg_free(out);
    if (!copy)
        return -ENOMEM;
    *resp = copy;
    *resp_len = n;
    return 0;
}
