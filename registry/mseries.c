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
                double v)
{
    if (r->n >= MSERIES_MAX_PER_RUN)
        return;
    struct db_series_point *p = &r->points[r->n++];
    series_name(m, suffix, p->series, sizeof p->series);
    p->type = (int)m->type;
    p->value = v;
}

int mseries_points(const Ferry__Wire__WorkloadMetrics *w, int64_t t_ms, struct db_series_run *out)
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
        if (m->type == FERRY__WIRE__METRIC_TYPE__METRIC_HISTOGRAM) {
            add(out, m, "_sum", m->value);
            add(out, m, "_count", (double)m->count);
        } else {
            add(out, m, "", m->value);
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
