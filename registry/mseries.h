/* Metric time series: every workload's reported metrics kept as bounded
 * series in the metadata store, so history survives a registry restart
 * (docs/metrics.md, "History"). Each sample lands in one bucket of every
 * tier (10 s buckets kept 6 hours, 1 min buckets kept 7 days); a bucket
 * keeps the last, smallest, largest and summed value and the count, and
 * the buckets of a run past a tier's age are deleted as new samples come
 * in. Only the first MSERIES_MAX_PER_RUN series of a run are kept. */
#ifndef FERRY_REGISTRY_MSERIES_H
#define FERRY_REGISTRY_MSERIES_H

#include "wire.pb-c.h"

#include <stddef.h>
#include <stdint.h>

struct mseries_tier {
    int res_s;       /* bucket width */
    int64_t keep_ms; /* buckets older than this (before now) are deleted */
};
#define MSERIES_TIERS 2
extern const struct mseries_tier mseries_tiers[MSERIES_TIERS];

#define MSERIES_MAX_PER_RUN 32
#define MSERIES_NAME_MAX 600 /* "name{k=\"v\",...}" (names 63, 8 labels) */

/* The start (unix ms) of the res_s bucket t_ms falls in. */
int64_t mseries_bucket(int64_t t_ms, int res_s);
/* The finest tier that still holds since_ms at now_ms (the coarsest when
 * none does). */
const struct mseries_tier *mseries_tier_for(int64_t since_ms, int64_t now_ms);
/* The oldest bucket start tier keeps at now_ms. */
int64_t mseries_cutoff(const struct mseries_tier *tier, int64_t now_ms);

/* One sample of one series of a run, as stored. */
struct db_series_point {
    char series[MSERIES_NAME_MAX];
    int type;      /* FERRY__WIRE__METRIC_TYPE__* (a histogram: its _sum and _count) */
    double value;
};
/* One run's samples from one report. */
struct db_series_run {
    char name[72], version[72];
    int64_t t_ms;  /* when collected (the registry's clock when the agent's is off) */
    struct db_series_point *points;
    size_t n;
};
/* A run's samples (metric_check'd ones only; a histogram gives two series)
 * at t_ms; at most MSERIES_MAX_PER_RUN. out->points is malloc'd. */
int mseries_points(const Ferry__Wire__WorkloadMetrics *w, int64_t t_ms, struct db_series_run *out);
void mseries_run_free(struct db_series_run *r);

/* A stored bucket. */
struct db_series_row {
    char host[72], version[72], series[MSERIES_NAME_MAX];
    int type;
    int64_t bucket_ms;
    double last, min, max, sum;
    int64_t count;
};

#endif
