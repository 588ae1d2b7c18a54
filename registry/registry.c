#include "registry.h"
#include "server.h"
#include "actions.h"
#include "clock.h"
#include "db.h"
#include "fleet.h"
#include "hosts.h"
#include "rmetrics.h"
#include "offerlimits.h"
#include "queries.h"
#include "record.h"
#include "selector.h"
#include "error.h"
#include "manifest.h"
#include "spec.h"
#include "store.h"
#include "tls.h"
#include "wire.h"

#include <errno.h>
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

struct registry {
    struct server *server;
    const struct trust *trust;
    struct store store;
    struct db db;
    pthread_mutex_t pending_lock;
    struct pending *pending;
    size_t n_pending;
    struct actions *actions;  /* requests to workloads, per host (actions.c) */
    int host_ttl_ms;
    uint64_t max_blob_size;
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
    struct actions_batch batch; /* actions handed out with a poll answer */
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
    actions_batch_free(&s->batch);
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
    if (r->server)
        server_wake(r->server);
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
    /* Every poll answer carries the actions queued for the host. */
    actions_attach(r->actions, host, resp, &s->batch);
    return 0;
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
    Ferry__Wire__PluginList **plugins;
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
    for (size_t i = 0; h->plugins && i < h->n; i++)
        if (h->plugins[i])
            ferry__wire__plugin_list__free_unpacked(h->plugins[i], NULL);
    free(h->plugins);
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
    h->plugins = calloc(n, sizeof *h->plugins);
    h->labels = calloc(n * LABEL_MAX, sizeof *h->labels);
    h->label_ptrs = calloc(n * LABEL_MAX, sizeof *h->label_ptrs);
    h->des = calloc(n, sizeof *h->des);
    h->sets = calloc(n, sizeof *h->sets);
    h->key_ids = calloc(n, sizeof *h->key_ids);
    if (!h->infos || !h->ptrs || !h->bodies || !h->plugins || !h->labels || !h->label_ptrs || !h->des ||
        !h->sets || !h->key_ids)
        return -ENOMEM;
    size_t total_desired = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (h->hosts[i].labels[0])
            labels_parse(h->hosts[i].labels, &h->sets[i]);
        if (!h->hosts[i].pending && fleet_desired_for(&r->db, &h->sets[i], &h->des[i]) == 0)
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
        info->online = !dh->pending && now - dh->last_seen_ms <= r->host_ttl_ms;
        info->status = dh->pending ? "pending" : "enrolled";
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
        if (dh->plugins &&
            (h->plugins[i] = ferry__wire__plugin_list__unpack(NULL, dh->plugins_len, dh->plugins))) {
            info->plugins = h->plugins[i]->plugins;
            info->n_plugins = h->plugins[i]->n_plugins;
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

/* An action was queued: parked polls are looked at again; the host's
 * answer then carries the action (poll_answer), so it goes out at once. */
static void wake_for_actions(void *arg)
{
    struct registry *r = arg;
    if (r->server)
        server_wake(r->server);
}

/* Returned by dispatch when a poll should wait instead of being answered. */
#define PARK 1

struct request_scratch {
    struct scratch s;
    struct hosts_scratch hosts;
    struct events_scratch events;
    struct desired desired;
    struct hosts_accept_reply accept;
    struct queries_reply queries;
    struct actions_scratch action;
    struct rmetrics_scratch metrics;
};

static int dispatch(struct registry *r, const Ferry__Wire__Request *req,
                    Ferry__Wire__Response *resp, struct request_scratch *rs)
{
    struct scratch *s = &rs->s;
    switch (req->body_case) {
    case FERRY__WIRE__REQUEST__BODY_DEPLOY:
        return handle_deploy(r, req->deploy);
    case FERRY__WIRE__REQUEST__BODY_REGISTER:
        return hosts_register(&r->db, r->trust, req->register_);
    case FERRY__WIRE__REQUEST__BODY_REPORT:
        return hosts_report(&r->db, req->report);
    case FERRY__WIRE__REQUEST__BODY_ACCEPT_HOST:
        return hosts_accept(&r->db, r->trust, req->accept_host, resp, &rs->accept);
    case FERRY__WIRE__REQUEST__BODY_LIST_HOSTS:
        return handle_list_hosts(r, resp, s, &rs->hosts);
    case FERRY__WIRE__REQUEST__BODY_LIST_EVENTS:
        return handle_list_events(r, req->list_events, resp, s, &rs->events);
    case FERRY__WIRE__REQUEST__BODY_REMOVE_HOST:
        return hosts_remove(&r->db, r->trust, r->host_ttl_ms, req->remove_host);
    case FERRY__WIRE__REQUEST__BODY_LIST_DEPLOYMENTS:
        return queries_list_deployments(&r->db, resp, &rs->queries);
    case FERRY__WIRE__REQUEST__BODY_LIST_HISTORY:
        return queries_list_history(&r->db, req->list_history, resp, &rs->queries);
    case FERRY__WIRE__REQUEST__BODY_LIST_METRICS:
        return rmetrics_list(&r->db, req->list_metrics, resp, &rs->metrics);
    case FERRY__WIRE__REQUEST__BODY_POLL: {
        const Ferry__Wire__Poll *p = req->poll;
        int rc = hosts_poll_auth(&r->db, p);
        if (rc == 0)
            rc = desired_response(r, p->host, &rs->desired, resp, s);
        if (rc == 0 && p->wait_ms > 0 && rs->desired.serial == p->known_serial &&
            resp->n_actions == 0)
            return PARK;
        return rc;
    }
    case FERRY__WIRE__REQUEST__BODY_ACTION_SUBMIT:
        return actions_submit(r->actions, &r->db, r->trust, req->action_submit, resp, &rs->action);
    case FERRY__WIRE__REQUEST__BODY_ACTION_AWAIT:
        return actions_await(r->actions, req->action_await, resp, &rs->action);
    case FERRY__WIRE__REQUEST__BODY_ACTION_REPLY:
        return actions_reply(r->actions, &r->db, req->action_reply);
    case FERRY__WIRE__REQUEST__BODY_PING:
        return 0;
    case FERRY__WIRE__REQUEST__BODY_OFFER: {
        int rc = handle_offer(r, req->offer, resp, s);
        if (rc == FERRY_E_UNTRUSTED || rc == FERRY_E_SIGNATURE || rc == FERRY_E_EXISTS ||
            rc == FERRY_E_LIMIT) {
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
 * A poll with nothing new returns NULL and fills *park instead. Called by
 * the transport (server.c) on a worker thread. */
static nng_msg *serve_one(void *arg, nng_msg *in, struct server_park *park)
{
    struct registry *r = arg;
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
        snprintf(park->host, sizeof park->host, "%s", req->poll->host);
        park->known_serial = req->poll->known_serial;
        park->wait_ms = req->poll->wait_ms;
    } else {
        if (rc < 0) {
            resp.body_case = FERRY__WIRE__RESPONSE__BODY__NOT_SET;
            resp.code = wire_code_of(rc);
            resp.error = (char *)err_message(rc);
        }
        if (wire_pack_response(&resp, &out) < 0)
            out = NULL;
    }
    scratch_free(&rs.s);
    hosts_scratch_free(&rs.hosts);
    events_scratch_free(&rs.events);
    queries_reply_free(&rs.queries);
    rmetrics_scratch_free(&rs.metrics);
    desired_free(&rs.desired);
    actions_scratch_free(&rs.action);
    if (req)
        ferry__wire__request__free_unpacked(req, NULL);
    return out;
}

/* The reply a waiting poll for host gets now (server.c answers parked polls
 * with it), and the serial it carries. */
static int poll_answer(void *arg, const char *host, uint64_t *serial, nng_msg **out)
{
    struct registry *r = arg;
    Ferry__Wire__Response resp;
    ferry__wire__response__init(&resp);
    struct scratch s = {0};
    struct desired d = {0};
    int rc = desired_response(r, host, &d, &resp, &s);
    if (rc < 0) {
        resp.body_case = FERRY__WIRE__RESPONSE__BODY__NOT_SET;
        resp.code = wire_code_of(rc);
        resp.error = (char *)err_message(rc);
    }
    /* Actions must go out now: a serial no desired state has (it is never
     * 0) makes the waiting poll differ, so the notifier sends this answer. */
    *serial = resp.n_actions > 0 ? 0 : d.serial;
    *out = NULL;
    if (wire_pack_response(&resp, out) < 0)
        *out = NULL;
    desired_free(&d);
    scratch_free(&s);
    return rc;
}

int registry_start(const struct registry_config *cfg, struct registry **out)
{
    struct registry *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->trust = cfg->trust;
    r->host_ttl_ms = cfg->host_ttl_ms > 0 ? cfg->host_ttl_ms : REGISTRY_DEFAULT_HOST_TTL_MS;
    r->max_blob_size = cfg->max_blob_size ? cfg->max_blob_size : REGISTRY_DEFAULT_MAX_BLOB_SIZE;
    pthread_mutex_init(&r->pending_lock, NULL);
    if (actions_new(wake_for_actions, r, &r->actions) < 0) {
        free(r);
        return -ENOMEM;
    }
    char path[4096];
    int rc = 0;

    if ((rc = store_open(&r->store, cfg->data_dir)) < 0) {
        actions_free(r->actions);
        free(r);
        return rc;
    }
    snprintf(path, sizeof path, "%s/registry.db", cfg->data_dir);
    if ((rc = db_open(&r->db, path)) < 0) {
        store_close(&r->store);
        actions_free(r->actions);
        free(r);
        return rc;
    }
    struct server_config sc = {
        .listen_url = cfg->listen_url,
        .tls_cert_key = cfg->tls_cert_key,
        .workers = cfg->workers > 0 ? cfg->workers : REGISTRY_DEFAULT_WORKERS,
        .max_conns = cfg->max_conns,
        .max_conns_per_peer = cfg->max_conns_per_peer,
        .idle_timeout_ms = cfg->idle_timeout_ms,
    };
    struct server_handler h = {.arg = r, .serve = serve_one, .desired = poll_answer};
    if ((rc = server_start(&sc, &h, &r->server)) < 0) {
        r->server = NULL;
        db_close(&r->db);
        store_close(&r->store);
        pthread_mutex_destroy(&r->pending_lock);
        actions_free(r->actions);
        free(r);
        return rc;
    }
    *out = r;
    return 0;
}

const char *registry_url(const struct registry *r) { return server_url(r->server); }

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
    server_stop(r->server);
    while (r->pending) {
        struct pending *p = r->pending;
        r->pending = p->next;
        pending_free(p);
    }
    db_close(&r->db);
    store_close(&r->store);
    pthread_mutex_destroy(&r->pending_lock);
    actions_free(r->actions);
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
    struct server_park park;
    memset(&park, 0, sizeof park);
    nng_msg *out = serve_one(r, in, &park);
    nng_msg_free(in);
    if (!out && park.host[0])
        return 0; /* a poll that would wait: no socket here to park it on */
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
