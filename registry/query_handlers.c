/* Read-only requests: manifests and chunks for agents, versions, stats,
 * hosts and events for operators (deployments and history: queries.c). */
#include "registry_int.h"
#include "dispatch.h"
#include "error.h"
#include "clock.h"
#include "manifest.h"
#include "spec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void events_scratch_free(struct events_scratch *e)
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

void hosts_scratch_free(struct hosts_scratch *h)
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
    liveness_overlay(&r->live, h->hosts, h->n);
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
                info->desired_state = h->bodies[i]->desired_state;
                info->envelope_version = h->bodies[i]->envelope_version;
                info->envelope_expires_ms = h->bodies[i]->envelope_expires_ms;
                info->verifies_policy = h->bodies[i]->verifies_policy;
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

/* ---- entries (dispatch.c) -------------------------------------------------- */

int on_ping(struct registry *r, const Ferry__Wire__Request *req, Ferry__Wire__Response *resp,
            struct request_scratch *rs)
{
    (void)r;
    (void)req;
    (void)resp;
    (void)rs;
    return 0;
}

int on_get_manifest(struct registry *r, const Ferry__Wire__Request *req,
                    Ferry__Wire__Response *resp, struct request_scratch *rs)
{
    return handle_get_manifest(r, req->get_manifest, resp, &rs->s);
}

int on_get_chunk(struct registry *r, const Ferry__Wire__Request *req,
                 Ferry__Wire__Response *resp, struct request_scratch *rs)
{
    return handle_get_chunk(r, req->get_chunk, resp, &rs->s);
}

int on_list_versions(struct registry *r, const Ferry__Wire__Request *req,
                     Ferry__Wire__Response *resp, struct request_scratch *rs)
{
    return handle_list_versions(r, req->list_versions, resp, &rs->s);
}

int on_stats(struct registry *r, const Ferry__Wire__Request *req, Ferry__Wire__Response *resp,
             struct request_scratch *rs)
{
    (void)req;
    return handle_stats(r, resp, &rs->s);
}

int on_list_hosts(struct registry *r, const Ferry__Wire__Request *req,
                  Ferry__Wire__Response *resp, struct request_scratch *rs)
{
    (void)req;
    return handle_list_hosts(r, resp, &rs->s, &rs->hosts);
}

int on_list_events(struct registry *r, const Ferry__Wire__Request *req,
                   Ferry__Wire__Response *resp, struct request_scratch *rs)
{
    return handle_list_events(r, req->list_events, resp, &rs->s, &rs->events);
}

int on_list_deployments(struct registry *r, const Ferry__Wire__Request *req,
                        Ferry__Wire__Response *resp, struct request_scratch *rs)
{
    (void)req;
    return queries_list_deployments(&r->db, resp, &rs->queries);
}

int on_list_history(struct registry *r, const Ferry__Wire__Request *req,
                    Ferry__Wire__Response *resp, struct request_scratch *rs)
{
    return queries_list_history(&r->db, req->list_history, resp, &rs->queries);
}

int on_list_metrics(struct registry *r, const Ferry__Wire__Request *req,
                    Ferry__Wire__Response *resp, struct request_scratch *rs)
{
    return rmetrics_list(&r->db, req->list_metrics, resp, &rs->metrics);
}

int on_list_audit(struct registry *r, const Ferry__Wire__Request *req,
                  Ferry__Wire__Response *resp, struct request_scratch *rs)
{
    return audit_list(&r->db, req->list_audit, resp, &rs->audit);
}
