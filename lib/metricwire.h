/* Metrics on the wire (proto/wire.proto Metric, WorkloadMetrics): the
 * bounds both sides apply, turning a plugin's ferry_sample into a Metric,
 * fitting runs into a report's budget, and the JSON shape `ferry metrics
 * --json` prints. docs/metrics.md states the bounds and what is dropped.
 * Messages built here are malloc'd field by field, so protobuf-c's
 * free_unpacked releases them. */
#ifndef FERRY_LIB_METRICWIRE_H
#define FERRY_LIB_METRICWIRE_H

#include "wire.pb-c.h"

#include <ferry/plugin.h>
#include <jansson.h>
#include <stddef.h>

/* Per run, the encoded WorkloadMetrics; per report, all of them. A sample
 * that would push a run past its budget is dropped (counted); a run that
 * would push the report past its budget is left out (counted in the
 * report's metrics_dropped). */
#define METRICS_RUN_MAX_BYTES (16u << 10)
#define METRICS_REPORT_MAX_BYTES (64u << 10)
/* Runs with metrics in one report (as HOSTS_REPORT_MAX_WORKLOADS). */
#define METRICS_REPORT_MAX_RUNS 256u

/* Names and label keys as Prometheus has them; values UTF-8. */
int metric_name_ok(const char *s);
int metric_label_key_ok(const char *s);

/* 0 when m is within every bound, else FERRY_E_LIMIT or FERRY_E_INVALID
 * with the reason in err_detail(). */
int metric_check(const Ferry__Wire__Metric *m);

/* A checked copy of s (read only up to its struct_size). FERRY_E_INVALID
 * or FERRY_E_LIMIT with err_detail() when it breaks a rule. */
int metric_from_sample(const struct ferry_sample *s, Ferry__Wire__Metric **out);
/* An ABI-1 value: a gauge without labels. */
int metric_from_v1(const struct ferry_metric *m, Ferry__Wire__Metric **out);
void metric_free(Ferry__Wire__Metric *m);

/* body->metrics = as many of runs (in order) as fit METRICS_REPORT_MAX_BYTES
 * and METRICS_REPORT_MAX_RUNS, body->metrics_dropped = the rest. The
 * pointer array is malloc'd (free it after packing); the runs are
 * borrowed. */
int metricwire_fill_body(Ferry__Wire__ReportBody *body, Ferry__Wire__WorkloadMetrics *const *runs, size_t n);

/* {"name","version","collected_ms","dropped","metrics":[{"name","type",
 * "labels":{k:v},"value"[,"count","buckets":[{"le","count"}]]}]} */
json_t *metricwire_json(const Ferry__Wire__WorkloadMetrics *w);
const char *metric_type_name(int type);

#endif
