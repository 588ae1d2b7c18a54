/* The /metrics text (prom.h). Written by hand into one buffer: the format
 * is a few line shapes, and a scrape of a 100-host fleet renders thousands
 * of lines, so each is appended without a formatted-print call where that
 * is easy. Workload samples arrive from many runs; they are sorted by name
 * so each family gets its HELP and TYPE once, with every run's series
 * under it. */
#include "prom.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- buffer ----------------------------------------------------------------- */

void prom_buf_free(struct prom_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

static int reserve(struct prom_buf *b, size_t more)
{
    if (b->oom)
        return -1;
    if (b->len + more + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static void put(struct prom_buf *b, const char *s, size_t n)
{
    if (reserve(b, n) < 0)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(struct prom_buf *b, const char *s) { put(b, s, strlen(s)); }

static void putc_(struct prom_buf *b, char c) { put(b, &c, 1); }

void prom_double(char out[32], double v)
{
    /* Whole numbers (counts, bytes, most gauges) print without an exponent. */
    if (v == (double)(int64_t)v && v > -1e15 && v < 1e15) {
        snprintf(out, 32, "%" PRId64, (int64_t)v);
        return;
    }
    snprintf(out, 32, "%.15g", v);
    if (strtod(out, NULL) != v)
        snprintf(out, 32, "%.17g", v);
}

void prom_escape(struct prom_buf *b, const char *v)
{
    const char *run = v;
    for (const char *p = v; *p; p++) {
        const char *rep = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
        if (!rep)
            continue;
        put(b, run, (size_t)(p - run));
        puts_(b, rep);
        run = p + 1;
    }
    puts_(b, run);
}

/* ---- lines -------------------------------------------------------------------- */

static void family(struct prom_buf *b, const char *name, const char *type, const char *help)
{
    puts_(b, "# HELP ");
    puts_(b, name);
    putc_(b, ' ');
    puts_(b, help);
    puts_(b, "\n# TYPE ");
    puts_(b, name);
    putc_(b, ' ');
    puts_(b, type);
    putc_(b, '\n');
}

/* One label pair; first says whether a comma goes before it. */
static void label(struct prom_buf *b, int *first, const char *key, const char *value)
{
    if (!*first)
        putc_(b, ',');
    *first = 0;
    puts_(b, key);
    puts_(b, "=\"");
    prom_escape(b, value);
    putc_(b, '"');
}

/* NAME{k="v",...} VALUE for up to three plain label pairs (NULL-ended). */
static void line(struct prom_buf *b, const char *name, const char *const *kv, const char *value)
{
    puts_(b, name);
    if (kv && kv[0]) {
        int first = 1;
        putc_(b, '{');
        for (size_t i = 0; kv[i]; i += 2)
            label(b, &first, kv[i], kv[i + 1]);
        putc_(b, '}');
    }
    putc_(b, ' ');
    puts_(b, value);
    putc_(b, '\n');
}

static void line_u64(struct prom_buf *b, const char *name, const char *const *kv, uint64_t v)
{
    char t[24];
    snprintf(t, sizeof t, "%" PRIu64, v);
    line(b, name, kv, t);
}

static void line_double(struct prom_buf *b, const char *name, const char *const *kv, double v)
{
    char t[32];
    prom_double(t, v);
    line(b, name, kv, t);
}

static void counter1(struct prom_buf *b, const char *name, const char *help, uint64_t v)
{
    family(b, name, "counter", help);
    line_u64(b, name, NULL, v);
}

/* ---- the registry and the fleet ---------------------------------------------- */

static void render_registry(struct prom_buf *b, const struct prom_registry *r)
{
    family(b, "ferry_registry_start_time_seconds", "gauge",
           "When the registry started, in unix seconds.");
    line_double(b, "ferry_registry_start_time_seconds", NULL, r->start_time_s);
    family(b, "ferry_registry_requests_total", "counter",
           "Requests served, by request type and outcome (ok, parked or the error code).");
    for (size_t i = 0; i < r->n_requests; i++) {
        const char *kv[] = {"type", r->requests[i].type, "outcome", r->requests[i].outcome, NULL};
        line_u64(b, "ferry_registry_requests_total", kv, r->requests[i].n);
    }
    counter1(b, "ferry_registry_malformed_requests_total",
             "Requests that were not a request message at all.", r->malformed);
    counter1(b, "ferry_registry_blobs_received_total", "Blobs received by publishes.",
             r->blobs_received);
    counter1(b, "ferry_registry_blob_received_bytes_total", "Blob bytes received by publishes.",
             r->blob_bytes_received);
    counter1(b, "ferry_registry_chunks_served_total", "Blob chunks served to pulls and agents.",
             r->chunks_served);
    counter1(b, "ferry_registry_publishes_total", "Publishes committed.", r->publishes);
    counter1(b, "ferry_registry_publishes_refused_total",
             "Publishes refused (signature, trust, limits, policy).", r->publishes_refused);
    counter1(b, "ferry_registry_deploys_total", "Deploys recorded.", r->deploys);
    counter1(b, "ferry_registry_deploys_refused_total",
             "Deploys refused (signature, role, policy, bad selector).", r->deploys_refused);
    if (r->resident_bytes) {
        family(b, "ferry_registry_resident_memory_bytes", "gauge",
               "The registry's resident memory.");
        line_u64(b, "ferry_registry_resident_memory_bytes", NULL, r->resident_bytes);
    }
    family(b, "ferry_registry_metrics_render_seconds", "gauge",
           "How long rendering the previous /metrics text took.");
    line_double(b, "ferry_registry_metrics_render_seconds", NULL, r->last_render_s);
    family(b, "ferry_registry_metrics_render_cpu_seconds", "gauge",
           "CPU time the previous /metrics rendering took.");
    line_double(b, "ferry_registry_metrics_render_cpu_seconds", NULL, r->last_render_cpu_s);
}

struct kind_state {
    const char *kind, *state;
    uint64_t n;
};

static int render_fleet(struct prom_buf *b, const struct prom_snapshot *s)
{
    uint64_t online = 0, offline = 0, pending = 0;
    for (size_t i = 0; i < s->n_hosts; i++) {
        if (s->hosts[i].pending)
            pending++;
        else if (s->hosts[i].online)
            online++;
        else
            offline++;
    }
    family(b, "ferry_hosts", "gauge",
           "Hosts by state: online, offline (enrolled, not heard from) and pending (not enrolled).");
    const char *kon[] = {"state", "online", NULL}, *koff[] = {"state", "offline", NULL},
               *kpend[] = {"state", "pending", NULL};
    line_u64(b, "ferry_hosts", kon, online);
    line_u64(b, "ferry_hosts", koff, offline);
    line_u64(b, "ferry_hosts", kpend, pending);

    family(b, "ferry_host_online", "gauge", "1 while an enrolled host is online, else 0.");
    for (size_t i = 0; i < s->n_hosts; i++) {
        if (s->hosts[i].pending)
            continue;
        const char *kv[] = {"host", s->hosts[i].name, NULL};
        line(b, "ferry_host_online", kv, s->hosts[i].online ? "1" : "0");
    }
    family(b, "ferry_host_last_seen_timestamp_seconds", "gauge",
           "When an enrolled host last sent a signed request, in unix seconds.");
    for (size_t i = 0; i < s->n_hosts; i++) {
        if (s->hosts[i].pending)
            continue;
        const char *kv[] = {"host", s->hosts[i].name, NULL};
        line_double(b, "ferry_host_last_seen_timestamp_seconds", kv,
                    (double)s->hosts[i].last_seen_ms / 1000.0);
    }

    /* Workloads by kind and state: few distinct pairs, counted in place. */
    struct kind_state *ks = calloc(s->n_workloads ? s->n_workloads : 1, sizeof *ks);
    if (!ks)
        return -ENOMEM;
    size_t nks = 0;
    for (size_t i = 0; i < s->n_workloads; i++) {
        const struct prom_workload *w = &s->workloads[i];
        size_t k = 0;
        while (k < nks && (strcmp(ks[k].kind, w->kind) || strcmp(ks[k].state, w->state)))
            k++;
        if (k == nks)
            ks[nks++] = (struct kind_state){w->kind, w->state, 0};
        ks[k].n++;
    }
    family(b, "ferry_workloads", "gauge", "Workloads on every host, by kind and state.");
    for (size_t k = 0; k < nks; k++) {
        const char *kv[] = {"kind", ks[k].kind, "state", ks[k].state, NULL};
        line_u64(b, "ferry_workloads", kv, ks[k].n);
    }
    free(ks);

    family(b, "ferry_workload_state", "gauge",
           "1 for each workload's current state as its host last reported it.");
    for (size_t i = 0; i < s->n_workloads; i++) {
        const struct prom_workload *w = &s->workloads[i];
        const char *kv[] = {"host",  w->host,  "workload", w->name,  "version", w->version,
                            "kind",  w->kind,  "state",    w->state, NULL};
        line(b, "ferry_workload_state", kv, "1");
    }
    family(b, "ferry_workload_restarts_total", "counter",
           "Restarts of each workload's current version, as its host last reported them.");
    for (size_t i = 0; i < s->n_workloads; i++) {
        const struct prom_workload *w = &s->workloads[i];
        const char *kv[] = {"host", w->host, "workload", w->name, "version", w->version,
                            "kind", w->kind, NULL};
        line_u64(b, "ferry_workload_restarts_total", kv, w->restarts);
    }
    family(b, "ferry_workload_metrics_received_timestamp_seconds", "gauge",
           "When the registry received each run's newest metrics, in unix seconds.");
    for (size_t i = 0; i < s->n_runs; i++) {
        const struct prom_run *r = &s->runs[i];
        const char *kv[] = {"host", r->host, "workload", r->name, "version", r->version,
                            "kind", r->kind, NULL};
        line_double(b, "ferry_workload_metrics_received_timestamp_seconds", kv,
                    (double)r->received_ms / 1000.0);
    }
    return 0;
}

/* ---- workload metrics ---------------------------------------------------------- */

/* Names the registry's own families use; a workload's sample under them
 * would merge into (or clash with) the registry's. */
static int reserved(const char *name)
{
    return strncmp(name, "ferry_registry_", 15) == 0 || strncmp(name, "ferry_host", 10) == 0 ||
           strncmp(name, "ferry_workload", 14) == 0;
}

struct ent {
    char name[72]; /* the family name as rendered */
    uint32_t run, idx;
    int type;
};

static int ent_cmp(const void *a, const void *b)
{
    const struct ent *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    if (x->run != y->run)
        return x->run < y->run ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static const char *const base_keys[] = {"host", "workload", "version", "kind"};

/* The labels of sample m of run r, rendered without braces into b: the
 * registry's four first, then the sample's own. A sample label named like
 * one of the four (or le or quantile) is dropped when it repeats that
 * value and otherwise renamed exported_KEY, as Prometheus does with labels
 * a target sets that the scrape sets too; dropped when exported_KEY is
 * taken as well. */
static void sample_labels(struct prom_buf *b, const struct prom_run *r, const Ferry__Wire__Metric *m)
{
    const char *base_vals[] = {r->host, r->name, r->version, r->kind};
    int first = 1;
    for (int k = 0; k < 4; k++)
        label(b, &first, base_keys[k], base_vals[k]);
    for (size_t i = 0; i < m->n_labels; i++) {
        const char *key = m->labels[i]->key, *val = m->labels[i]->value;
        if (!key || !val)
            continue;
        int clash = -1;
        for (int k = 0; k < 4; k++)
            if (strcmp(key, base_keys[k]) == 0)
                clash = k;
        /* le and quantile belong to histograms' and summaries' own series. */
        int reserved_key = strcmp(key, "le") == 0 || strcmp(key, "quantile") == 0;
        if (clash < 0 && !reserved_key) {
            label(b, &first, key, val);
            continue;
        }
        if (clash >= 0 && strcmp(val, base_vals[clash]) == 0)
            continue;
        char ex[80];
        snprintf(ex, sizeof ex, "exported_%s", key);
        int taken = 0;
        for (size_t j = 0; j < m->n_labels; j++)
            taken |= m->labels[j]->key && strcmp(m->labels[j]->key, ex) == 0;
        if (!taken)
            label(b, &first, ex, val);
    }
}

static void series_line(struct prom_buf *b, const char *name, const char *suffix,
                        const char *labels, size_t labels_len, const char *le, const char *value)
{
    puts_(b, name);
    puts_(b, suffix);
    putc_(b, '{');
    put(b, labels, labels_len);
    if (le) {
        puts_(b, ",le=\"");
        puts_(b, le);
        putc_(b, '"');
    }
    puts_(b, "} ");
    puts_(b, value);
    putc_(b, '\n');
}

static void render_sample(struct prom_buf *b, const char *name, const char *labels, size_t ll,
                          const Ferry__Wire__Metric *m)
{
    char v[32];
    if (m->type != FERRY__WIRE__METRIC_TYPE__METRIC_HISTOGRAM) {
        prom_double(v, m->value);
        series_line(b, name, "", labels, ll, NULL, v);
        return;
    }
    char le[32];
    for (size_t i = 0; i < m->n_buckets; i++) {
        prom_double(le, m->buckets[i]->le);
        snprintf(v, sizeof v, "%" PRIu64, m->buckets[i]->count);
        series_line(b, name, "_bucket", labels, ll, le, v);
    }
    snprintf(v, sizeof v, "%" PRIu64, m->count);
    series_line(b, name, "_bucket", labels, ll, "+Inf", v);
    prom_double(v, m->value);
    series_line(b, name, "_sum", labels, ll, NULL, v);
    snprintf(v, sizeof v, "%" PRIu64, m->count);
    series_line(b, name, "_count", labels, ll, NULL, v);
}

static const char *type_name(int t)
{
    return t == FERRY__WIRE__METRIC_TYPE__METRIC_COUNTER     ? "counter"
           : t == FERRY__WIRE__METRIC_TYPE__METRIC_HISTOGRAM ? "histogram"
                                                             : "gauge";
}

static int ends_with(const char *s, size_t n, const char *suf)
{
    size_t k = strlen(suf);
    return n > k && memcmp(s + n - k, suf, k) == 0;
}

static int render_workload_metrics(struct prom_buf *b, const struct prom_snapshot *s,
                                   size_t *skipped)
{
    size_t total = 0;
    for (size_t r = 0; r < s->n_runs; r++)
        total += s->runs[r].m ? s->runs[r].m->n_metrics : 0;
    struct ent *e = calloc(total ? total : 1, sizeof *e);
    if (!e)
        return -ENOMEM;
    size_t n = 0;
    for (size_t r = 0; r < s->n_runs; r++) {
        const Ferry__Wire__WorkloadMetrics *w = s->runs[r].m;
        for (size_t i = 0; w && i < w->n_metrics; i++) {
            const Ferry__Wire__Metric *m = w->metrics[i];
            if (!m->name || !*m->name || reserved(m->name)) {
                (*skipped)++;
                continue;
            }
            /* Names as Prometheus wants them, so every family lints clean:
             * a counter's ends in _total (one without gets it), and only a
             * histogram's series end in _bucket, _count or _sum (any other
             * sample named so gets _value: process_count_value). */
            size_t len = strlen(m->name);
            const char *suffix = "";
            if (m->type == FERRY__WIRE__METRIC_TYPE__METRIC_COUNTER) {
                if (!ends_with(m->name, len, "_total"))
                    suffix = "_total";
            } else if (m->type != FERRY__WIRE__METRIC_TYPE__METRIC_HISTOGRAM &&
                       (ends_with(m->name, len, "_bucket") || ends_with(m->name, len, "_count") ||
                        ends_with(m->name, len, "_sum"))) {
                suffix = "_value";
            }
            snprintf(e[n].name, sizeof e[n].name, "%s%s", m->name, suffix);
            e[n].run = (uint32_t)r;
            e[n].idx = (uint32_t)i;
            e[n].type = (int)m->type;
            n++;
        }
    }
    qsort(e, n, sizeof *e, ent_cmp);

    struct prom_buf lb = {0};
    /* Label texts of the current run's series in this family, to drop a
     * run's repeated series (a plugin may report a name and labels twice). */
    size_t *seen_off = NULL, *seen_len = NULL, seen_cap = 0;
    int rc = 0;
    for (size_t g = 0; g < n;) {
        size_t end = g + 1;
        while (end < n && strcmp(e[end].name, e[g].name) == 0)
            end++;
        const char *name = e[g].name;
        int type = e[g].type;
        family(b, name, type_name(type), "Reported by workloads (docs/metrics.md).");
        size_t seen = 0;
        uint32_t run = UINT32_MAX;
        for (size_t i = g; i < end; i++) {
            if (e[i].type != type) {
                (*skipped)++;
                continue;
            }
            const struct prom_run *r = &s->runs[e[i].run];
            const Ferry__Wire__Metric *m = r->m->metrics[e[i].idx];
            if (e[i].run != run) {
                run = e[i].run;
                lb.len = 0;
                seen = 0;
            }
            size_t off = lb.len;
            sample_labels(&lb, r, m);
            if (lb.oom) {
                rc = -ENOMEM;
                break;
            }
            size_t ll = lb.len - off;
            int dup = 0;
            for (size_t k = 0; k < seen && !dup; k++)
                dup = seen_len[k] == ll && memcmp(lb.p + seen_off[k], lb.p + off, ll) == 0;
            if (dup) {
                (*skipped)++;
                lb.len = off;
                continue;
            }
            if (seen == seen_cap) {
                size_t cap = seen_cap ? seen_cap * 2 : 16;
                size_t *o = realloc(seen_off, cap * sizeof *o);
                if (o)
                    seen_off = o;
                size_t *l = o ? realloc(seen_len, cap * sizeof *l) : NULL;
                if (!o || !l) {
                    rc = -ENOMEM;
                    break;
                }
                seen_len = l;
                seen_cap = cap;
            }
            seen_off[seen] = off;
            seen_len[seen++] = ll;
            render_sample(b, name, lb.p + off, ll, m);
        }
        if (rc < 0)
            break;
        g = end;
    }
    free(seen_off);
    free(seen_len);
    prom_buf_free(&lb);
    free(e);
    return rc;
}

int prom_render(const struct prom_snapshot *s, struct prom_buf *out, size_t *skipped)
{
    size_t sk = 0;
    render_registry(out, &s->reg);
    int rc = render_fleet(out, s);
    if (rc == 0)
        rc = render_workload_metrics(out, s, &sk);
    if (skipped)
        *skipped = sk;
    if (rc == 0 && out->oom)
        rc = -ENOMEM;
    return rc;
}
