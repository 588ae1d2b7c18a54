/* Metrics collection: every interval (default 10 s, --metrics-interval),
 * each measurable run's plugin is asked for its metrics on the thread pool
 * (metrics2 for ABI 2, else ABI-1 metrics as untyped gauges), the samples
 * are checked against the bounds (lib/metricwire.h), and the newest set per
 * run is kept for the next report. Only the loop thread calls these
 * functions (metrics_collect_run excepted).
 *
 * The agent owns its runs; this module only borrows them between the
 * hooks' list() and release(), which the agent uses to keep each listed
 * run alive (as it does for probes) until the collection is over. */
#ifndef FERRY_AGENT_METRICS_H
#define FERRY_AGENT_METRICS_H

#include "pluginhost.h"
#include "wire.pb-c.h"

#include <stdint.h>
#include <uv.h>

#define METRICS_DEFAULT_INTERVAL_MS 10000u
#define METRICS_MIN_INTERVAL_MS 1000u
#define METRICS_MAX_INTERVAL_MS (3600u * 1000u)

/* One run the agent offers for measuring. name and version are copied. */
struct metrics_run {
    char name[72], version[72];
    const struct plugin_slot *plugin;
    struct ferry_run *run;
    void *token; /* the agent's, handed back to release() */
};

struct metrics_hooks {
    /* Up to cap runs to measure now (a live process), each kept alive until
     * release(); returns how many were filled. */
    size_t (*list)(void *arg, struct metrics_run *out, size_t cap);
    /* The collection no longer uses r (called on the loop, also when the
     * collection was cancelled by metrics_stop). */
    void (*release)(void *arg, const struct metrics_run *r);
    /* New values are in: a good moment to publish a report. May be NULL. */
    void (*updated)(void *arg);
};

struct metrics;

/* interval_ms 0: the default; outside [MIN, MAX]: -EINVAL. */
int metrics_start(uv_loop_t *loop, uint32_t interval_ms, const struct metrics_hooks *hooks, void *arg,
                  struct metrics **out);
/* Stop the timer; a collection in flight finishes (its runs released) and
 * then m is freed. m must not be used after. */
void metrics_stop(struct metrics *m);
/* Collect now rather than at the next tick (tests, a new run). */
void metrics_kick(struct metrics *m);

/* Point body->metrics at the newest values (borrowed from m: pack body
 * before returning to the loop), within the report's budget; free the
 * pointer array afterwards with metrics_body_done. */
int metrics_fill_body(struct metrics *m, Ferry__Wire__ReportBody *body);
void metrics_body_done(Ferry__Wire__ReportBody *body);

/* The newest values held for name@version, or NULL (borrowed). */
const Ferry__Wire__WorkloadMetrics *metrics_get(const struct metrics *m, const char *name, const char *version);

/* One run's metrics from its plugin, checked and bounded: thread-safe,
 * blocking as long as the plugin does. *out is freed with
 * ferry__wire__workload_metrics__free_unpacked. A plugin error still gives
 * *out (with what was added before it) and returns the code. */
int metrics_collect_run(const struct plugin_slot *p, struct ferry_run *run, const char *name, const char *version,
                        uint64_t now_unix_ms, Ferry__Wire__WorkloadMetrics **out);

#endif
