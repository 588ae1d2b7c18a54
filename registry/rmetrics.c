#include "rmetrics.h"
#include "rlog.h"
#include "error.h"
#include "metricwire.h"
#include "mseries.h"
#include "spec.h"
#include "hosts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A clean copy of w's encoding: only the samples within bounds, the rest
 * counted in *refused. */
static int clean_encode(Ferry__Wire__WorkloadMetrics *w, uint32_t *refused, uint8_t **out, size_t *len)
{
    size_t n = w->n_metrics;
    Ferry__Wire__Metric **keep = calloc(n ? n : 1, sizeof *keep);
    if (!keep)
        return -ENOMEM;
    size_t k = 0;
    *refused = 0;
    for (size_t i = 0; i < n; i++) {
        if (k < FERRY_METRIC_SAMPLES_MAX && metric_check(w->metrics[i]) == 0)
            keep[k++] = w->metrics[i];
        else
            (*refused)++;
    }
    /* Encode the kept ones through the message itself, then put it back
     * as it was so free_unpacked releases everything. */
    Ferry__Wire__Metric **all = w->metrics;
    w->metrics = keep;
    w->n_metrics = k;
    size_t sz = ferry__wire__workload_metrics__get_packed_size(w);
    int rc = 0;
    if (sz > METRICS_RUN_MAX_BYTES + 1024) {
        rc = FERRY_E_LIMIT; /* only oversized labels could do this: refused whole */
    } else if (!(*out = malloc(sz ? sz : 1))) {
        rc = -ENOMEM;
    } else {
        ferry__wire__workload_metrics__pack(w, *out);
        *len = sz;
    }
    w->metrics = all;
    w->n_metrics = n;
    free(keep);
    return rc;
}

static int has_histogram(const Ferry__Wire__WorkloadMetrics *w)
{
    for (size_t i = 0; i < w->n_metrics; i++)
        if (w->metrics[i]->type == FERRY__WIRE__METRIC_TYPE__METRIC_HISTOGRAM)
            return 1;
    return 0;
}

/* What host reported for w's run before this report (its histograms'
 * quantiles are computed over the observations in between), or NULL. */
static Ferry__Wire__WorkloadMetrics *previous(struct db *db, const char *host,
                                              const Ferry__Wire__WorkloadMetrics *w)
{
    struct db_metrics_row *rows = NULL;
    size_t n = 0;
    Ferry__Wire__WorkloadMetrics *prev = NULL;
    if (db_metrics_list(db, w->name, &rows, &n) < 0)
        return NULL;
    for (size_t i = 0; !prev && i < n; i++)
        if (strcmp(rows[i].host, host) == 0 && strcmp(rows[i].version, w->version) == 0 &&
            rows[i].collected_ms < (int64_t)w->collected_ms)
            prev = ferry__wire__workload_metrics__unpack(NULL, rows[i].len, rows[i].body);
    db_metrics_free(rows, n);
    return prev;
}

int rmetrics_store_report(struct db *db, const char *host, const Ferry__Wire__ReportBody *body, int64_t now_ms)
{
    size_t n = body->n_metrics;
    struct db_metrics_row *rows = calloc(n ? n : 1, sizeof *rows);
    struct db_series_run *runs = calloc(n ? n : 1, sizeof *runs);
    if (!rows || !runs) {
        free(rows);
        free(runs);
        return -ENOMEM;
    }
    size_t k = 0, skipped = 0;
    uint32_t refused_total = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        Ferry__Wire__WorkloadMetrics *w = body->metrics[i];
        int dup = 0;
        for (size_t j = 0; j < k && spec_name_ok(w->name) && spec_version_ok(w->version); j++)
            dup |= strcmp(rows[j].name, w->name) == 0 && strcmp(rows[j].version, w->version) == 0;
        if (k >= METRICS_REPORT_MAX_RUNS || !spec_name_ok(w->name) || !spec_version_ok(w->version) || dup) {
            skipped++;
            continue;
        }
        struct db_metrics_row *r = &rows[k];
        snprintf(r->name, sizeof r->name, "%s", w->name);
        snprintf(r->version, sizeof r->version, "%s", w->version);
        r->received_ms = now_ms;
        r->collected_ms = (int64_t)w->collected_ms;
        int erc = clean_encode(w, &r->refused, &r->body, &r->len);
        if (erc == FERRY_E_LIMIT) {
            skipped++;
            continue;
        }
        if (erc < 0)
            rc = erc;
        else {
            refused_total += r->refused;
            /* The agent's collection time places the samples, unless its
             * clock is off; then the registry's. */
            int64_t t = r->collected_ms;
            if (t < now_ms - (int64_t)HOSTS_CLOCK_WINDOW_MS || t > now_ms + (int64_t)HOSTS_CLOCK_WINDOW_MS)
                t = now_ms;
            Ferry__Wire__WorkloadMetrics *prev = has_histogram(w) ? previous(db, host, w) : NULL;
            if (mseries_points(w, prev, t, &runs[k]) < 0)
                rc = -ENOMEM;
            if (prev)
                ferry__wire__workload_metrics__free_unpacked(prev, NULL);
            k++;
        }
    }
    int same = rc == 0 && db_metrics_same(db, host, rows, k);
    if (rc == 0 && !same)
        rc = db_metrics_replace(db, host, rows, k);
    /* History is kept on a best-effort basis: a failure to add to it is
     * said, never held against the report. */
    if (rc == 0 && !same && db_series_add(db, host, runs, k, now_ms) < 0)
        registry_log("metrics from %s: history not stored: %s", host, err_detail());
    if (rc == 0 && !same && (skipped || refused_total || body->metrics_dropped))
        registry_log("metrics from %s: %zu runs skipped, %u samples refused, %u runs left out by the agent", host,
              skipped, refused_total, body->metrics_dropped);
    for (size_t i = 0; i < n; i++) {
        free(rows[i].body);
        mseries_run_free(&runs[i]);
    }
    free(rows);
    free(runs);
    return rc;
}

void rmetrics_scratch_free(struct rmetrics_scratch *s)
{
    for (size_t i = 0; s->unpacked && i < s->n; i++)
        if (s->unpacked[i])
            ferry__wire__workload_metrics__free_unpacked(s->unpacked[i], NULL);
    free(s->unpacked);
    free(s->entries);
    free(s->ptrs);
    db_metrics_free(s->rows, s->n);
    memset(s, 0, sizeof *s);
}

int rmetrics_list(struct db *db, const Ferry__Wire__ListMetrics *q, Ferry__Wire__Response *resp,
                  struct rmetrics_scratch *s)
{
    if (!q->name || !spec_name_ok(q->name))
        return err_set(FERRY_E_INVALID, "metrics: '%.80s' is not a workload name", q->name ? q->name : "");
    int rc = db_metrics_list(db, q->name, &s->rows, &s->n);
    if (rc < 0)
        return rc;
    size_t n = s->n ? s->n : 1;
    s->unpacked = calloc(n, sizeof *s->unpacked);
    s->entries = calloc(n, sizeof *s->entries);
    s->ptrs = calloc(n, sizeof *s->ptrs);
    if (!s->unpacked || !s->entries || !s->ptrs)
        return -ENOMEM;
    ferry__wire__metrics_list__init(&s->list);
    const char *host = q->host && *q->host ? q->host : NULL;
    for (size_t i = 0; i < s->n; i++) {
        if (host && strcmp(host, s->rows[i].host) != 0)
            continue;
        s->unpacked[i] = ferry__wire__workload_metrics__unpack(NULL, s->rows[i].len, s->rows[i].body);
        if (!s->unpacked[i])
            continue;
        Ferry__Wire__HostMetrics *e = &s->entries[s->list.n_entries];
        ferry__wire__host_metrics__init(e);
        e->host = s->rows[i].host;
        e->received_ms = (uint64_t)s->rows[i].received_ms;
        e->refused = s->rows[i].refused;
        e->workload = s->unpacked[i];
        s->ptrs[s->list.n_entries++] = e;
    }
    s->list.entries = s->ptrs;
    resp->body_case = FERRY__WIRE__RESPONSE__BODY_METRICS;
    resp->metrics = &s->list;
    return 0;
}
