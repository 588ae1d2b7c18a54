/* The JSON API under /api/v1/ (docs/api.md): read-only views of the
 * metadata, through the HTTP side's own read-only connections. Shapes are
 * documented field by field in docs/api.md; a field is added, never
 * renamed. The time series endpoint is in http_series.c. */
#include "http.h"
#include "http_api.h"
#include "clock.h"
#include "error.h"
#include "fleet.h"
#include "hash.h"
#include "key.h"
#include "metricwire.h"
#include "numparse.h"
#include "queries.h"
#include "registry_int.h"
#include "selector.h"
#include "spec.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- parameters ---- */

int api_arg_u64(const struct http_call *c, const char *name, uint64_t min, uint64_t max,
                uint64_t def, uint64_t *out)
{
    const char *v = http_arg(c, name);
    if (!v) {
        *out = def;
        return 0;
    }
    return num_parse_u64(name, v, min, max, out);
}

/* A name parameter (workload, artifact, host): spec_name_ok. */
int api_name_arg(const char *param, const char *v)
{
    if (!v || !*v || !spec_name_ok(v))
        return err_set(FERRY_E_INVALID, "%s '%.80s': not a valid name", param, v ? v : "");
    return 0;
}

json_t *api_workload_json(const Ferry__Wire__WorkloadReport *w)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:i,s:I,s:i,s:s,s:s}", "name", w->name ? w->name : "",
                     "version", w->version ? w->version : "", "state", w->state ? w->state : "",
                     "reason", w->reason ? w->reason : "", "restarts", (json_int_t)w->restarts,
                     "since_ms", (json_int_t)w->since_ms, "pid", (int)w->pid, "rss_bytes",
                     (json_int_t)w->rss_bytes, "port", (int)w->port, "address",
                     w->address ? w->address : "", "mode", w->mode ? w->mode : "");
}

/* ---- a per-request cache of artifact kinds ---- */

struct kinds {
    struct {
        char name[72];
        struct db_version *v;
        size_t n;
    } e[64];
    size_t n;
};

static const char *kind_of(struct db *db, struct kinds *k, const char *name, const char *version)
{
    size_t i = 0;
    for (; i < k->n; i++)
        if (strcmp(k->e[i].name, name) == 0)
            break;
    if (i == k->n) {
        if (k->n == sizeof k->e / sizeof k->e[0])
            return "";
        snprintf(k->e[i].name, sizeof k->e[i].name, "%s", name);
        k->e[i].v = NULL;
        k->e[i].n = 0;
        if (db_list_versions(db, name, &k->e[i].v, &k->e[i].n) < 0) {
            k->e[i].v = NULL;
            k->e[i].n = 0;
        }
        k->n++;
    }
    const char *kind = "";
    for (size_t j = 0; j < k->e[i].n; j++) {
        kind = k->e[i].v[j].kind; /* the newest, unless the version is found */
        if (version && strcmp(k->e[i].v[j].version, version) == 0)
            return kind;
    }
    return kind;
}

static void kinds_free(struct kinds *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->e[i].v);
}

/* ---- /api/v1 ---- */

static int api_index(const struct http_call *c, struct http_reply *out)
{
    (void)c;
    return http_json(out, 200,
                     json_pack("{s:s,s:[s,s,s,s,s,s,s,s]}", "version", FERRY_VERSION, "endpoints",
                               "hosts", "workloads", "artifacts", "artifacts/{name}",
                               "deployments", "events", "metrics/{name}", "audit"));
}

/* ---- hosts ---- */

static json_t *labels_json(const char *text)
{
    json_t *o = json_object();
    struct label_set set;
    if (o && text[0] && labels_parse(text, &set) == 0)
        for (size_t i = 0; i < set.n; i++)
            json_object_set_new(o, set.v[i].key, json_string(set.v[i].value));
    return o;
}

static json_t *plugins_json(const struct db_host *h)
{
    json_t *a = json_array();
    Ferry__Wire__PluginList *pl =
        h->plugins ? ferry__wire__plugin_list__unpack(NULL, h->plugins_len, h->plugins) : NULL;
    for (size_t i = 0; a && pl && i < pl->n_plugins; i++) {
        json_t *rt = json_array();
        for (size_t j = 0; rt && j < pl->plugins[i]->n_runtimes; j++)
            json_array_append_new(rt, json_string(pl->plugins[i]->runtimes[j]));
        json_array_append_new(a, json_pack("{s:s,s:o}", "name", pl->plugins[i]->name, "runtimes",
                                           rt ? rt : json_array()));
    }
    if (pl)
        ferry__wire__plugin_list__free_unpacked(pl, NULL);
    return a;
}

static json_t *desired_json(struct db *db, const char *labels)
{
    json_t *a = json_array();
    struct label_set set = {0};
    struct desired d = {0};
    if (labels[0])
        labels_parse(labels, &set);
    if (a && fleet_desired_for(db, &set, &d) == 0)
        for (size_t k = 0; k < d.n; k++) {
            const Ferry__DeployRecord *rec = d.records[k];
            if (rec->undeploy)
                continue;
            json_array_append_new(a, json_pack("{s:s,s:s,s:s}", "name", rec->name, "version",
                                               rec->version ? rec->version : "", "channel",
                                               rec->channel ? rec->channel : ""));
        }
    desired_free(&d);
    return a;
}

static int api_hosts(const struct http_call *c, struct http_reply *out)
{
    struct db *db = http_reader_get(c->srv);
    if (!db)
        return -EBUSY;
    struct db_host *hosts = NULL;
    size_t n = 0;
    int rc = db_host_list(db, &hosts, &n);
    if (rc < 0) {
        http_reader_put(c->srv, db);
        return rc;
    }
    liveness_overlay(&c->reg->live, hosts, n);
    int64_t now = (int64_t)clock_unix_ms();
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        const struct db_host *h = &hosts[i];
        char kid[KEY_ID_LEN + 1];
        key_id_of(h->key, kid);
        Ferry__Wire__ReportBody *b =
            h->report ? ferry__wire__report_body__unpack(NULL, h->report_len, h->report) : NULL;
        json_t *states = json_object();
        for (size_t w = 0; b && states && w < b->n_workloads; w++) {
            const char *st = b->workloads[w]->state ? b->workloads[w]->state : "";
            json_t *cur = json_object_get(states, st);
            json_object_set_new(states, st, json_integer(cur ? json_integer_value(cur) + 1 : 1));
        }
        json_t *o = json_pack(
            "{s:s,s:s,s:b,s:I,s:s,s:o,s:o,s:i,s:o,s:o,s:s,s:I,s:I,s:b}", "name", h->name, "status",
            h->pending ? "pending" : "enrolled", "online",
            !h->pending && now - h->last_seen_ms <= c->reg->host_ttl_ms, "last_seen_ms",
            (json_int_t)h->last_seen_ms, "key_id", kid, "labels", labels_json(h->labels),
            "plugins", plugins_json(h), "workloads", b ? (int)b->n_workloads : 0, "states",
            states ? states : json_object(), "desired",
            h->pending ? json_array() : desired_json(db, h->labels), "desired_state",
            b && b->desired_state ? b->desired_state : "", "envelope_version",
            (json_int_t)(b ? b->envelope_version : 0), "envelope_expires_ms",
            (json_int_t)(b ? b->envelope_expires_ms : 0), "verifies_policy",
            b ? (int)b->verifies_policy : 0);
        if (b)
            ferry__wire__report_body__free_unpacked(b, NULL);
        json_array_append_new(arr, o);
    }
    db_host_list_free(hosts, n);
    http_reader_put(c->srv, db);
    return http_json(out, 200, json_pack("{s:o}", "hosts", arr ? arr : json_array()));
}

/* ---- workloads ---- */

/* The newest metrics of name's runs, per host (db_metrics_list), cached per
 * request by name. */
struct mcache {
    struct {
        char name[72];
        struct db_metrics_row *rows;
        size_t n;
    } e[64];
    size_t n;
};

static json_t *newest_metrics(struct db *db, struct mcache *m, const char *host, const char *name,
                              const char *version)
{
    size_t i = 0;
    for (; i < m->n; i++)
        if (strcmp(m->e[i].name, name) == 0)
            break;
    if (i == m->n) {
        if (m->n == sizeof m->e / sizeof m->e[0])
            return json_null();
        snprintf(m->e[i].name, sizeof m->e[i].name, "%s", name);
        m->e[i].rows = NULL;
        m->e[i].n = 0;
        if (db_metrics_list(db, name, &m->e[i].rows, &m->e[i].n) < 0) {
            m->e[i].rows = NULL;
            m->e[i].n = 0;
        }
        m->n++;
    }
    for (size_t j = 0; j < m->e[i].n; j++) {
        const struct db_metrics_row *r = &m->e[i].rows[j];
        if (strcmp(r->host, host) != 0 || strcmp(r->version, version) != 0)
            continue;
        Ferry__Wire__WorkloadMetrics *w =
            ferry__wire__workload_metrics__unpack(NULL, r->len, r->body);
        if (!w)
            return json_null();
        json_t *o = metricwire_json(w);
        ferry__wire__workload_metrics__free_unpacked(w, NULL);
        if (o)
            json_object_set_new(o, "received_ms", json_integer((json_int_t)r->received_ms));
        return o ? o : json_null();
    }
    return json_null();
}

static int api_workloads(const struct http_call *c, struct http_reply *out)
{
    const char *want_host = http_arg(c, "host");
    const char *want_kind = http_arg(c, "kind");
    int rc;
    if (want_host && (rc = api_name_arg("host", want_host)) < 0)
        return rc;
    if (want_kind && !*want_kind)
        return err_set(FERRY_E_INVALID, "kind '': empty");
    struct db *db = http_reader_get(c->srv);
    if (!db)
        return -EBUSY;
    struct db_host *hosts = NULL;
    size_t n = 0;
    if ((rc = db_host_list(db, &hosts, &n)) < 0) {
        http_reader_put(c->srv, db);
        return rc;
    }
    liveness_overlay(&c->reg->live, hosts, n);
    int64_t now = (int64_t)clock_unix_ms();
    struct kinds *kinds = calloc(1, sizeof *kinds);
    struct mcache *mc = calloc(1, sizeof *mc);
    json_t *arr = json_array();
    if (!kinds || !mc || !arr)
        rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const struct db_host *h = &hosts[i];
        if (h->pending || !h->report || (want_host && strcmp(want_host, h->name) != 0))
            continue;
        Ferry__Wire__ReportBody *b = ferry__wire__report_body__unpack(NULL, h->report_len, h->report);
        int online = now - h->last_seen_ms <= c->reg->host_ttl_ms;
        for (size_t w = 0; b && w < b->n_workloads; w++) {
            const Ferry__Wire__WorkloadReport *wr = b->workloads[w];
            if (!wr->name || !spec_name_ok(wr->name))
                continue;
            const char *kind = kind_of(db, kinds, wr->name, wr->version);
            if (want_kind && strcmp(want_kind, kind) != 0)
                continue;
            json_t *o = api_workload_json(wr);
            if (!o)
                continue;
            json_object_set_new(o, "host", json_string(h->name));
            json_object_set_new(o, "host_online", json_boolean(online));
            json_object_set_new(o, "kind", json_string(kind));
            json_object_set_new(o, "metrics",
                                newest_metrics(db, mc, h->name, wr->name,
                                               wr->version ? wr->version : ""));
            json_array_append_new(arr, o);
        }
        if (b)
            ferry__wire__report_body__free_unpacked(b, NULL);
    }
    if (kinds)
        kinds_free(kinds);
    for (size_t i = 0; mc && i < mc->n; i++)
        db_metrics_free(mc->e[i].rows, mc->e[i].n);
    free(kinds);
    free(mc);
    db_host_list_free(hosts, n);
    http_reader_put(c->srv, db);
    if (rc < 0) {
        json_decref(arr);
        return rc;
    }
    return http_json(out, 200, json_pack("{s:o}", "workloads", arr));
}

/* ---- artifacts ---- */

static json_t *version_json(const struct db_version *v)
{
    char hex[DIGEST_HEX_LEN + 1];
    digest_hex(&v->manifest_digest, hex);
    return json_pack("{s:s,s:s,s:s,s:I,s:s}", "version", v->version, "kind", v->kind, "publisher",
                     v->publisher, "published_unix", (json_int_t)v->published_unix,
                     "manifest_digest", hex);
}

static json_t *channels_json(const struct db_channel *ch, size_t n, const char *name)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (strcmp(ch[i].name, name) == 0)
            json_array_append_new(a, json_pack("{s:s,s:s,s:I,s:s}", "channel", ch[i].channel,
                                               "version", ch[i].version, "set_ms",
                                               (json_int_t)ch[i].set_ms, "key_id", ch[i].key_id));
    return a;
}

static int api_artifacts(const struct http_call *c, struct http_reply *out)
{
    struct db *db = http_reader_get(c->srv);
    if (!db)
        return -EBUSY;
    struct db_name *names = NULL;
    struct db_channel *ch = NULL;
    size_t n = 0, nch = 0;
    int rc = db_artifact_names(db, &names, &n);
    if (rc == 0)
        rc = db_channel_list(db, NULL, &ch, &nch);
    json_t *arr = json_array();
    for (size_t i = 0; rc == 0 && arr && i < n; i++) {
        struct db_version *v = NULL;
        size_t nv = 0;
        if ((rc = db_list_versions(db, names[i].name, &v, &nv)) < 0)
            break;
        if (nv == 0) {
            free(v);
            continue;
        }
        const struct db_version *last = &v[nv - 1];
        json_array_append_new(arr, json_pack("{s:s,s:s,s:I,s:o,s:o}", "name", names[i].name,
                                             "kind", last->kind, "versions", (json_int_t)nv,
                                             "latest", version_json(last), "channels",
                                             channels_json(ch, nch, names[i].name)));
        free(v);
    }
    free(names);
    free(ch);
    http_reader_put(c->srv, db);
    if (rc < 0) {
        json_decref(arr);
        return rc;
    }
    return http_json(out, 200, json_pack("{s:o}", "artifacts", arr ? arr : json_array()));
}

static json_t *entries_json(const Ferry__Wire__DeploymentList *l)
{
    json_t *a = json_array();
    for (size_t i = 0; a && l && i < l->n_entries; i++) {
        const Ferry__Wire__DeploymentEntry *e = l->entries[i];
        struct digest d;
        char hex[DIGEST_HEX_LEN + 1] = "";
        if (digest_from_bytes(e->manifest_digest.data, e->manifest_digest.len, &d) == 0)
            digest_hex(&d, hex);
        json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:s}", "action",
                                           e->action ? e->action : "", "name", e->name ? e->name : "",
                                           "version", e->version ? e->version : "", "selector",
                                           e->selector ? e->selector : "", "key_id",
                                           e->key_id ? e->key_id : "", "issued_ms",
                                           (json_int_t)e->issued_ms, "manifest_digest", hex));
    }
    return a;
}

static int api_artifact(const struct http_call *c, struct http_reply *out)
{
    const char *name = c->tail;
    int rc = api_name_arg("name", name);
    if (rc < 0)
        return rc;
    struct db *db = http_reader_get(c->srv);
    if (!db)
        return -EBUSY;
    struct db_version *v = NULL;
    struct db_channel *ch = NULL;
    size_t nv = 0, nch = 0;
    json_t *doc = NULL;
    rc = db_list_versions(db, name, &v, &nv);
    if (rc == 0 && nv == 0)
        rc = err_set(FERRY_E_NOTFOUND, "artifact '%s': not published here", name);
    if (rc == 0)
        rc = db_channel_list(db, name, &ch, &nch);
    Ferry__Wire__Response resp;
    ferry__wire__response__init(&resp);
    struct queries_reply q;
    memset(&q, 0, sizeof q);
    Ferry__Wire__ListHistory lh;
    ferry__wire__list_history__init(&lh);
    lh.name = (char *)name;
    if (rc == 0)
        rc = queries_list_history(db, &lh, &resp, &q);
    if (rc == 0) {
        json_t *vs = json_array();
        for (size_t i = 0; vs && i < nv; i++)
            json_array_append_new(vs, version_json(&v[i]));
        doc = json_pack("{s:s,s:s,s:o,s:o,s:o}", "name", name, "kind", v[nv - 1].kind, "versions",
                        vs ? vs : json_array(), "channels", channels_json(ch, nch, name),
                        "deployments", entries_json(resp.deployments));
    }
    queries_reply_free(&q);
    free(v);
    free(ch);
    http_reader_put(c->srv, db);
    if (rc < 0)
        return rc;
    return http_json(out, 200, doc);
}

/* ---- deployments ---- */

static int api_deployments(const struct http_call *c, struct http_reply *out)
{
    struct db *db = http_reader_get(c->srv);
    if (!db)
        return -EBUSY;
    Ferry__Wire__Response resp;
    ferry__wire__response__init(&resp);
    struct queries_reply q;
    memset(&q, 0, sizeof q);
    int rc = queries_list_deployments(db, &resp, &q);
    json_t *doc = rc == 0 ? json_pack("{s:o}", "deployments", entries_json(resp.deployments)) : NULL;
    queries_reply_free(&q);
    http_reader_put(c->srv, db);
    if (rc < 0)
        return rc;
    return http_json(out, 200, doc);
}

/* ---- events ---- */

#define API_LIMIT_DEFAULT 100
#define API_LIMIT_MAX 1000

static int api_events(const struct http_call *c, struct http_reply *out)
{
    uint64_t since = 0, limit = 0;
    int rc = api_arg_u64(c, "since", 0, INT64_MAX, UINT64_MAX, &since);
    if (rc == 0)
        rc = api_arg_u64(c, "limit", 1, API_LIMIT_MAX, API_LIMIT_DEFAULT, &limit);
    if (rc < 0)
        return rc;
    struct db *db = http_reader_get(c->srv);
    if (!db)
        return -EBUSY;
    struct db_event *ev = NULL;
    size_t n = 0;
    rc = db_events_after(db, since, (size_t)limit, &ev, &n);
    http_reader_put(c->srv, db);
    if (rc < 0)
        return rc;
    json_t *arr = json_array();
    uint64_t next = since == UINT64_MAX ? 0 : since;
    for (size_t i = 0; arr && i < n; i++) {
        next = ev[i].seq;
        Ferry__Wire__WorkloadReport *w = ferry__wire__workload_report__unpack(NULL, ev[i].len, ev[i].change);
        if (!w)
            continue;
        json_t *o = api_workload_json(w);
        ferry__wire__workload_report__free_unpacked(w, NULL);
        if (!o)
            continue;
        json_object_set_new(o, "seq", json_integer((json_int_t)ev[i].seq));
        json_object_set_new(o, "host", json_string(ev[i].host));
        json_array_append_new(arr, o);
    }
    db_events_free(ev, n);
    return http_json(out, 200,
                     json_pack("{s:o,s:I}", "events", arr ? arr : json_array(), "next", (json_int_t)next));
}

/* ---- audit ---- */

static int api_audit(const struct http_call *c, struct http_reply *out)
{
    uint64_t after = 0, limit = 0;
    int rc = api_arg_u64(c, "after", 0, INT64_MAX, 0, &after);
    if (rc == 0)
        rc = api_arg_u64(c, "limit", 1, API_LIMIT_MAX, API_LIMIT_DEFAULT, &limit);
    if (rc < 0)
        return rc;
    struct db *db = http_reader_get(c->srv);
    if (!db)
        return -EBUSY;
    struct audit_entry *e = NULL;
    size_t n = 0;
    rc = db_audit_list(db, after, (size_t)limit, &e, &n);
    http_reader_put(c->srv, db);
    if (rc < 0)
        return rc;
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        char hex[DIGEST_HEX_LEN + 1];
        digest_hex(&e[i].hash, hex);
        json_array_append_new(arr, json_pack("{s:I,s:I,s:s,s:s,s:s,s:s,s:s}", "seq",
                                             (json_int_t)e[i].seq, "time_unix",
                                             (json_int_t)e[i].time_unix, "key_id", e[i].key_id,
                                             "role", e[i].role, "what", e[i].what, "detail",
                                             e[i].detail, "hash", hex));
    }
    free(e);
    return http_json(out, 200, json_pack("{s:o}", "audit", arr ? arr : json_array()));
}

const struct http_route http_api_routes[] = {
    {"GET", "/api/v1", 0, api_index},
    {"GET", "/api/v1/", 0, api_index},
    {"GET", "/api/v1/hosts", 0, api_hosts},
    {"GET", "/api/v1/workloads", 0, api_workloads},
    {"GET", "/api/v1/artifacts", 0, api_artifacts},
    {"GET", "/api/v1/artifacts/", 1, api_artifact},
    {"GET", "/api/v1/deployments", 0, api_deployments},
    {"GET", "/api/v1/events", 0, api_events},
    {"GET", "/api/v1/audit", 0, api_audit},
    {"GET", "/api/v1/metrics/", 1, api_metrics},
    {NULL, NULL, 0, NULL},
};
