/* Gathering what /metrics shows (http_prom.h) and keeping the rendering for
 * a moment. Everything comes from the same places `ferry hosts`, `ferry
 * status` and `ferry metrics` read: the hosts table with the in-memory
 * poll marks laid over it, each host's newest report, and the metrics
 * table. */
#include "http_prom.h"
#include "http.h"
#include "dispatch.h"
#include "error.h"
#include "prom.h"
#include "registry_int.h"
#include "reqstats.h"

#include "clock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct prom_kind {
    char key[148];    /* name@version; "" for a free slot */
    const char *kind; /* interned (kind_intern): stays valid when the table is emptied */
};

/* The kinds a manifest may have (lib/spec.c), as static strings, so what a
 * snapshot points at never moves. */
static const char *kind_intern(const char *k)
{
    static const char *const known[] = {"app", "model", "notebook"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(k, known[i]) == 0)
            return known[i];
    return *k ? "other" : "app";
}

int prom_state_init(struct prom_state *p)
{
    memset(p, 0, sizeof *p);
    p->kinds = calloc(HTTP_PROM_KINDS, sizeof *p->kinds);
    if (!p->kinds)
        return -ENOMEM;
    pthread_mutex_init(&p->lock, NULL);
    p->start_time_s = (double)clock_unix_ms() / 1000.0;
    return 0;
}

void prom_state_free(struct prom_state *p)
{
    if (!p->kinds)
        return;
    pthread_mutex_destroy(&p->lock);
    free(p->text);
    free(p->kinds);
    memset(p, 0, sizeof *p);
}

/* FNV-1a: the slot a name@version starts probing at. */
static size_t kind_slot(const char *key)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *c = (const unsigned char *)key; *c; c++)
        h = (h ^ *c) * 1099511628211ull;
    return (size_t)(h % HTTP_PROM_KINDS);
}

static struct prom_kind *kind_find(struct prom_state *p, const char *key, int insert)
{
    size_t i = kind_slot(key);
    for (size_t probe = 0; probe < HTTP_PROM_KINDS; probe++, i = (i + 1) % HTTP_PROM_KINDS) {
        if (!p->kinds[i].key[0]) {
            if (!insert)
                return NULL;
            if (p->n_kinds >= HTTP_PROM_KINDS / 2) { /* keep probes short: start over */
                memset(p->kinds, 0, HTTP_PROM_KINDS * sizeof *p->kinds);
                p->n_kinds = 0;
                return kind_find(p, key, 1);
            }
            snprintf(p->kinds[i].key, sizeof p->kinds[i].key, "%s", key);
            p->n_kinds++;
            return &p->kinds[i];
        }
        if (strcmp(p->kinds[i].key, key) == 0)
            return &p->kinds[i];
    }
    return NULL;
}

/* The kind name@version was published as; "unknown" when the registry has
 * no such version (a host may report one published elsewhere). Called
 * with p->lock held. */
static const char *kind_of(struct registry *r, struct db *db, const char *name, const char *version)
{
    struct prom_state *p = &r->prom;
    char key[148];
    snprintf(key, sizeof key, "%s@%s", name, version);
    struct prom_kind *k = kind_find(p, key, 0);
    if (k)
        return k->kind;
    struct db_version *v = NULL;
    size_t n = 0;
    const char *found = NULL;
    if (db_list_versions(db, name, &v, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            char vk[148];
            snprintf(vk, sizeof vk, "%s@%s", name, v[i].version);
            struct prom_kind *slot = kind_find(p, vk, 1);
            if (slot)
                slot->kind = kind_intern(v[i].kind);
            if (strcmp(v[i].version, version) == 0)
                found = kind_intern(v[i].kind);
        }
        free(v);
    }
    return found ? found : "unknown";
}

static uint64_t resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, res = 0;
    int ok = f && fscanf(f, "%llu %llu", &size, &res) == 2;
    if (f)
        fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return ok && page > 0 ? (uint64_t)res * (uint64_t)page : 0;
}

struct gathered {
    struct db_host *hosts;
    size_t n_hosts;
    Ferry__Wire__ReportBody **bodies;
    struct db_metrics_row *rows;
    size_t n_rows;
    Ferry__Wire__WorkloadMetrics **unpacked;
    struct prom_host *ph;
    struct prom_workload *pw;
    struct prom_run *pr;
    struct prom_request_count req[REQSTATS_TYPES * 2];
};

static void gathered_free(struct gathered *g)
{
    for (size_t i = 0; g->bodies && i < g->n_hosts; i++)
        if (g->bodies[i])
            ferry__wire__report_body__free_unpacked(g->bodies[i], NULL);
    for (size_t i = 0; g->unpacked && i < g->n_rows; i++)
        if (g->unpacked[i])
            ferry__wire__workload_metrics__free_unpacked(g->unpacked[i], NULL);
    free(g->bodies);
    free(g->unpacked);
    if (g->hosts)
        db_host_list_free(g->hosts, g->n_hosts);
    if (g->rows)
        db_metrics_free(g->rows, g->n_rows);
    free(g->ph);
    free(g->pw);
    free(g->pr);
}

static void registry_part(struct registry *r, struct gathered *g, struct prom_registry *out)
{
    out->start_time_s = r->prom.start_time_s;
    out->malformed = r->bad_requests;
    out->blobs_received = r->blobs_received;
    out->blob_bytes_received = r->blob_bytes_received;
    out->chunks_served = r->chunks_served;
    out->publishes = r->publishes;
    out->publishes_refused = r->publishes_refused;
    out->resident_bytes = resident_bytes();
    out->last_render_s = r->prom.last_render_s;
    out->last_render_cpu_s = r->prom.last_render_cpu_s;
    size_t n = 0;
    /* Every request type with its ok count (0 too, so rates start from a
     * series), then each other outcome that happened. */
    for (size_t i = 0; i < dispatch_table_len && n < REQSTATS_TYPES * 2; i++) {
        int t = (int)dispatch_table[i].body_case;
        for (int o = 0; o < REQSTATS_OUTCOMES; o++) {
            uint64_t c = reqstats_get(&r->reqstats, t, o);
            if (t == FERRY__WIRE__REQUEST__BODY_DEPLOY && o == 0)
                out->deploys = c;
            else if (t == FERRY__WIRE__REQUEST__BODY_DEPLOY && o > 1)
                out->deploys_refused += c;
            if ((c == 0 && o != 0) || n >= REQSTATS_TYPES * 2)
                continue;
            g->req[n++] = (struct prom_request_count){dispatch_table[i].name,
                                                      reqstats_outcome_name(o), c};
        }
    }
    out->requests = g->req;
    out->n_requests = n;
}

/* Fills s from the registry; called with r->prom.lock held. */
static int gather(struct registry *r, struct db *db, struct gathered *g, struct prom_snapshot *s)
{
    registry_part(r, g, &s->reg);
    int rc = db_host_list(db, &g->hosts, &g->n_hosts);
    if (rc < 0)
        return rc;
    liveness_overlay(&r->live, g->hosts, g->n_hosts);
    int64_t now = (int64_t)clock_unix_ms();
    size_t nh = g->n_hosts ? g->n_hosts : 1;
    g->ph = calloc(nh, sizeof *g->ph);
    g->bodies = calloc(nh, sizeof *g->bodies);
    if (!g->ph || !g->bodies)
        return -ENOMEM;
    size_t n_workloads = 0;
    for (size_t i = 0; i < g->n_hosts; i++) {
        struct db_host *h = &g->hosts[i];
        g->ph[i] = (struct prom_host){h->name, h->pending,
                                      !h->pending && now - h->last_seen_ms <= r->host_ttl_ms,
                                      h->last_seen_ms};
        if (h->report && !h->pending)
            g->bodies[i] = ferry__wire__report_body__unpack(NULL, h->report_len, h->report);
        if (g->bodies[i])
            n_workloads += g->bodies[i]->n_workloads;
    }
    g->pw = calloc(n_workloads ? n_workloads : 1, sizeof *g->pw);
    if (!g->pw)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < g->n_hosts; i++) {
        for (size_t j = 0; g->bodies[i] && j < g->bodies[i]->n_workloads; j++) {
            const Ferry__Wire__WorkloadReport *w = g->bodies[i]->workloads[j];
            if (!w->name || !w->version || !w->state)
                continue;
            g->pw[k++] = (struct prom_workload){g->hosts[i].name, w->name, w->version,
                                                kind_of(r, db, w->name, w->version), w->state,
                                                w->restarts};
        }
    }
    if ((rc = db_metrics_list(db, NULL, &g->rows, &g->n_rows)) < 0)
        return rc;
    size_t nr = g->n_rows ? g->n_rows : 1;
    g->unpacked = calloc(nr, sizeof *g->unpacked);
    g->pr = calloc(nr, sizeof *g->pr);
    if (!g->unpacked || !g->pr)
        return -ENOMEM;
    size_t m = 0;
    for (size_t i = 0; i < g->n_rows; i++) {
        struct db_metrics_row *row = &g->rows[i];
        g->unpacked[i] = ferry__wire__workload_metrics__unpack(NULL, row->len, row->body);
        if (!g->unpacked[i])
            continue;
        g->pr[m++] = (struct prom_run){row->host, row->name, row->version,
                                       kind_of(r, db, row->name, row->version), row->received_ms,
                                       g->unpacked[i]};
    }
    s->hosts = g->ph;
    s->n_hosts = g->n_hosts;
    s->workloads = g->pw;
    s->n_workloads = k;
    s->runs = g->pr;
    s->n_runs = m;
    return 0;
}

static double clock_s(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int http_prom_text(struct registry *r, struct db *db, int cache_ms, char **text, size_t *len)
{
    struct prom_state *p = &r->prom;
    pthread_mutex_lock(&p->lock);
    uint64_t now = clock_mono_ms();
    int rc = 0;
    if (!p->text || cache_ms <= 0 || now - p->at_mono_ms >= (uint64_t)cache_ms) {
        double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
        struct gathered g;
        memset(&g, 0, sizeof g);
        struct prom_snapshot s;
        memset(&s, 0, sizeof s);
        struct prom_buf b = {0};
        rc = gather(r, db, &g, &s);
        if (rc == 0)
            rc = prom_render(&s, &b, NULL);
        gathered_free(&g);
        if (rc == 0) {
            free(p->text);
            p->text = b.p;
            p->len = b.len;
            p->at_mono_ms = now;
            p->last_render_s = clock_s(CLOCK_MONOTONIC) - t0;
            p->last_render_cpu_s = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
        } else {
            prom_buf_free(&b);
        }
    }
    if (rc == 0) {
        *text = malloc(p->len + 1);
        if (!*text) {
            rc = -ENOMEM;
        } else {
            memcpy(*text, p->text, p->len + 1);
            *len = p->len;
        }
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

/* GET /metrics. The text format's own content type; the reader is taken
 * only for the rendering, so the metadata lock is never held. */
static int on_metrics(const struct http_call *c, struct http_reply *out)
{
    struct db *db = http_reader_get(c->srv);
    if (!db)
        return -EBUSY;
    int rc = http_prom_text(c->reg, db, HTTP_PROM_CACHE_MS, &out->body, &out->len);
    http_reader_put(c->srv, db);
    if (rc < 0)
        return rc;
    out->status = 200;
    out->content_type = "text/plain; version=0.0.4; charset=utf-8";
    return 0;
}

const struct http_route http_prom_routes[] = {
    {"GET", "/metrics", 0, on_metrics},
    {NULL, NULL, 0, NULL},
};
