/* prom — the registry's /metrics text: its own counters, fleet gauges and
 * every workload's reported metrics in the Prometheus text exposition
 * format 0.0.4 (clean under `promtool check metrics`). Pure: it renders a
 * snapshot the caller gathered (http_prom.c does, from the registry), so
 * the text can be tested without a registry. The families and the rules
 * for workload metrics (label clashes, type clashes, reserved names) are in
 * docs/api.md, "/metrics". */
#ifndef FERRY_REGISTRY_PROM_H
#define FERRY_REGISTRY_PROM_H

#include "wire.pb-c.h"

#include <stddef.h>
#include <stdint.h>

/* A growing text buffer; oom is set (and the text stops growing) when an
 * allocation fails, so callers check once at the end. */
struct prom_buf {
    char *p;
    size_t len, cap;
    int oom;
};
void prom_buf_free(struct prom_buf *b);

/* One ferry_registry_requests_total series. */
struct prom_request_count {
    const char *type;    /* the request's field name in wire.proto: "report" */
    const char *outcome; /* "ok", "parked" or a wire code: "invalid", ... */
    uint64_t n;
};

struct prom_registry {
    double start_time_s; /* unix seconds */
    uint64_t malformed, blobs_received, blob_bytes_received, chunks_served, publishes,
        publishes_refused, deploys, deploys_refused;
    uint64_t resident_bytes;  /* 0: not known, the family is left out */
    double last_render_s;     /* how long the previous rendering took */
    double last_render_cpu_s; /* and the CPU time it took (its thread's) */
    const struct prom_request_count *requests;
    size_t n_requests;
};

struct prom_host {
    const char *name;
    int pending; /* said hello, not enrolled */
    int online;
    int64_t last_seen_ms;
};

/* A workload as its host's newest report has it. */
struct prom_workload {
    const char *host, *name, *version, *kind, *state;
    uint32_t restarts;
};

/* One run's newest metrics as the registry stores them. */
struct prom_run {
    const char *host, *name, *version, *kind;
    int64_t received_ms;
    const Ferry__Wire__WorkloadMetrics *m;
};

struct prom_snapshot {
    struct prom_registry reg;
    const struct prom_host *hosts;
    size_t n_hosts;
    const struct prom_workload *workloads;
    size_t n_workloads;
    const struct prom_run *runs;
    size_t n_runs;
};

/* Appends s's text to out. *skipped (may be NULL): workload samples left
 * out because they clash with another family (docs/api.md). 0 or -ENOMEM. */
int prom_render(const struct prom_snapshot *s, struct prom_buf *out, size_t *skipped);

/* For tests and the renderer: a label value escaped as the text format
 * wants it (backslash, double quote and newline), appended to b. */
void prom_escape(struct prom_buf *b, const char *v);
/* The shortest text that reads back as v exactly ("1", "0.25", "1e+300"). */
void prom_double(char out[32], double v);

#endif
