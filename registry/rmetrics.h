/* Metrics from host reports: checked again on receipt (an agent is not
 * trusted to keep the bounds), stored newest per host and run, and served
 * to `ferry metrics NAME`. Bounds and what is refused: docs/metrics.md. */
#ifndef FERRY_REGISTRY_RMETRICS_H
#define FERRY_REGISTRY_RMETRICS_H

#include "db.h"
#include "wire.pb-c.h"

#include <stddef.h>
#include <stdint.h>

/* From a verified, fresh report of host: its metrics replace what the host
 * reported before. A sample over a bound or malformed is refused and
 * counted in the stored row; a run entry with a bad name or version, or
 * past METRICS_REPORT_MAX_RUNS, is skipped (logged). Never fails the
 * report for bad metrics: only a store failure is returned. */
int rmetrics_store_report(struct db *db, const char *host, const Ferry__Wire__ReportBody *body, int64_t now_ms);

/* What a ListMetrics reply points into. */
struct rmetrics_scratch {
    struct db_metrics_row *rows;
    size_t n;
    Ferry__Wire__WorkloadMetrics **unpacked;
    Ferry__Wire__HostMetrics *entries;
    Ferry__Wire__HostMetrics **ptrs;
    Ferry__Wire__MetricsList list;
};
int rmetrics_list(struct db *db, const Ferry__Wire__ListMetrics *q, Ferry__Wire__Response *resp,
                  struct rmetrics_scratch *s);
void rmetrics_scratch_free(struct rmetrics_scratch *s);

#endif
