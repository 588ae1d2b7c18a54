#include "mseries.h"
#include "metricwire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct mseries_tier mseries_tiers[MSERIES_TIERS] = {
    {10, 6LL * 3600 * 1000},
    {60, 7LL * 24 * 3600 * 1000},
};

int64_t mseries_bucket(int64_t t_ms, int res_s)
{
    int64_t w = (int64_t)res_s * 1000;
    int64_t q = t_ms / w;
    if (t_ms % w < 0)
        q--; /* floor, also before 1970 */
    return q * w;
}

const struct mseries_tier *mseries_tier_for(int64_t since_ms, int64_t now_ms)
{
    for (int i = 0; i < MSERIES_TIERS; i++)
        if (since_ms >= now_ms - mseries_tiers[i].keep_ms)
            return &mseries_tiers[i];
    return &mseries_tiers[MSERIES_TIERS - 1];
}

int64_t mseries_cutoff(const struct mseries_tier *tier, int64_t now_ms)
{
    return mseries_bucket(now_ms - tier->keep_ms, tier->res_s);
}

/* "name" or name{k="v",...} with the labels in the order the agent gave
 * them: Prometheus's notation, but an identifier only (values are not
 * escaped), matched exactly by ?series=. */
static void series_name(const Ferry__Wire__Metric *m, const char *suffix, char *out, size_t cap)
{
    size_t o = (size_t)snprintf(out, cap, "%s%s", m->name, suffix);
    if (m->n_labels == 0 || o >= cap)
        return;
    o += (size_t)snprintf(out + o, cap - o, "{");
    for (size_t i = 0; i < m->n_labels && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%s=\"%s\"", i ? "," : "", m->labels[i]->key,
                              m->labels[i]->value);
    if (o < cap)
        snprintf(out + o, cap - o, "}");
}

static void add(struct db_series_run *r, const Ferry__Wire__Metric *m, const char *suffix,
                int type, double v)
{
    if (r->n >= MSERIES_MAX_PER_RUN)
        return;
    struct db_series_point *p = &r->points[r->n++];
    series_name(m, suffix, p->series, sizeof p->series);
    p->type = type;
    p->value = v;
}

/* Same metric: name and labels (in the same order, as one plugin sends them). */
static int same_metric(const Ferry__Wire__Metric *a, const Ferry__Wire__Metric *b)
{
    if (strcmp(a->name, b->name) != 0 || a->type != b->type || a->n_labels != b->n_labels)
        return 0;
    for (size_t i = 0; i < a->n_labels; i++)
        if (strcmp(a->labels[i]->key, b->labels[i]->key) != 0 ||
            strcmp(a->labels[i]->value, b->labels[i]->value) != 0)
            return 0;
    return 1;
}

int mseries_quantile(const Ferry__Wire__Metric *cur, const Ferry__Wire__Metric *prev, double q,
                     double *out)
{
    if (cur->n_buckets == 0 || cur->count <= prev->count || cur->n_buckets != prev->n_buckets)
        return -1;
    for (size_t i = 0; i < cur->n_buckets; i++)
        if (cur->buckets[i]->le != prev->buckets[i]->le ||
            cur->buckets[i]->count < prev->buckets[i]->count)
            return -1; /* other bounds, or a reset: no interval to speak of */
    double total = (double)(cur->count - prev->count);
    double rank = q * total;
    double below = 0, lower = 0;
    for (size_t i = 0; i < cur->n_buckets; i++) {
        double upto = (double)(cur->buckets[i]->count - prev->buckets[i]->count);
        double le = cur->buckets[i]->le;
        if (upto >= rank && upto > below) {
            /* Linear within the bucket, as Prometheus's histogram_quantile;
             * the first bucket starts at 0 when its bound is positive. */
            double lo = i == 0 ? (le > 0 ? 0 : le) : lower;
            *out = lo + (le - lo) * (rank - below) / (upto - below);
            return 0;
        }
        below = upto;
        lower = le;
    }
    *out = cur->buckets[cur->n_buckets - 1]->le; /* past the largest bound */
    return 0;
}

int mseries_points(const Ferry__Wire__WorkloadMetrics *w, const Ferry__Wire__WorkloadMetrics *prev,
                   int64_t t_ms, struct db_series_run *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", w->name ? w->name : "");
    snprintf(out->version, sizeof out->version, "%s", w->version ? w->version : "");
    out->t_ms = t_ms;
    out->points = calloc(MSERIES_MAX_PER_RUN, sizeof *out->points);
    if (!out->points)
        return -ENOMEM;
    for (size_t i = 0; i < w->n_metrics; i++) {
        const Ferry__Wire__Metric *m = w->metrics[i];
        if (metric_check(m) != 0)
            continue;
        if (m->type != FERRY__WIRE__METRIC_TYPE__METRIC_HISTOGRAM) {
            add(out, m, "", m->type, m->value);
            continue;
        }
        add(out, m, "_sum", m->type, m->value);
        add(out, m, "_count", m->type, (double)m->count);
        /* p50 and p99 of what was observed since the previous report. */
        for (size_t j = 0; prev && j < prev->n_metrics; j++) {
            const Ferry__Wire__Metric *p = prev->metrics[j];
            double v;
            if (!same_metric(m, p) || metric_check(p) != 0)
                continue;
            if (mseries_quantile(m, p, 0.5, &v) == 0)
                add(out, m, ":p50", FERRY__WIRE__METRIC_TYPE__METRIC_GAUGE, v);
            if (mseries_quantile(m, p, 0.99, &v) == 0)
                add(out, m, ":p99", FERRY__WIRE__METRIC_TYPE__METRIC_GAUGE, v);
            break;
        }
    }
    return 0;
}

void mseries_run_free(struct db_series_run *r)
{
    free(r->points);
    r->points = NULL;
    r->n = 0;
}
