#include "metrics.h"
#include "alog.h"
#include "clock.h"
#include "error.h"
#include "metricwire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* As many runs as a report can carry metrics for. */
#define RUNS_MAX METRICS_REPORT_MAX_RUNS

/* ---- one run: the sink a plugin adds to ---- */

struct collector {
    struct ferry_metric_sink sink; /* first: the plugin hands it back */
    Ferry__Wire__WorkloadMetrics *wm;
    size_t bytes;   /* encoded so far */
    int nomem;
};

static int sink_add(struct ferry_metric_sink *sink, const struct ferry_sample *s)
{
    struct collector *c = (struct collector *)(void *)sink;
    Ferry__Wire__WorkloadMetrics *wm = c->wm;
    if (wm->n_metrics >= FERRY_METRIC_SAMPLES_MAX) {
        wm->dropped++;
        return FERRY_E_LIMIT;
    }
    Ferry__Wire__Metric *m = NULL;
    int rc = metric_from_sample(s, &m);
    if (rc < 0) {
        wm->dropped++;
        return rc == -ENOMEM ? rc : (rc == FERRY_E_LIMIT ? FERRY_E_LIMIT : FERRY_E_INVALID);
    }
    size_t sz = ferry__wire__metric__get_packed_size(m) + 4;
    if (c->bytes + sz > METRICS_RUN_MAX_BYTES) {
        metric_free(m);
        wm->dropped++;
        return FERRY_E_LIMIT;
    }
    c->bytes += sz;
    wm->metrics[wm->n_metrics++] = m;
    return 0;
}

int metrics_collect_run(const struct plugin_slot *p, struct ferry_run *run, const char *name, const char *version,
                        uint64_t now_unix_ms, Ferry__Wire__WorkloadMetrics **out)
{
    *out = NULL;
    Ferry__Wire__WorkloadMetrics *wm = malloc(sizeof *wm);
    if (!wm)
        return -ENOMEM;
    ferry__wire__workload_metrics__init(wm);
    wm->name = strdup(name);
    wm->version = strdup(version);
    wm->metrics = calloc(FERRY_METRIC_SAMPLES_MAX, sizeof *wm->metrics);
    wm->collected_ms = now_unix_ms;
    if (!wm->name || !wm->version || !wm->metrics) {
        ferry__wire__workload_metrics__free_unpacked(wm, NULL);
        return -ENOMEM;
    }
    struct collector c = {.wm = wm};
    c.sink.struct_size = sizeof c.sink;
    c.sink.ctx = NULL;
    c.sink.add = sink_add;
    int rc = 0;
    if (p->abi >= 2 && p->p.metrics2) {
        rc = p->p.metrics2(p->state, run, &c.sink);
        if (rc == FERRY_E_LIMIT)
            rc = 0; /* it went on after a refusal: counted already */
    } else if (p->p.metrics) {
        /* ABI 1: a fixed array of untyped values, gauges without labels. */
        struct ferry_metrics *v1 = calloc(1, sizeof *v1);
        if (!v1) {
            rc = -ENOMEM;
        } else {
            v1->struct_size = sizeof *v1;
            rc = p->p.metrics(p->state, run, v1);
            uint32_t n = v1->count > FERRY_METRICS_MAX ? FERRY_METRICS_MAX : v1->count;
            if (rc == 0 && v1->count > FERRY_METRICS_MAX)
                wm->dropped += v1->count - FERRY_METRICS_MAX;
            for (uint32_t i = 0; rc == 0 && i < n; i++) {
                Ferry__Wire__Metric *m = NULL;
                if (metric_from_v1(&v1->items[i], &m) < 0) {
                    wm->dropped++;
                    continue;
                }
                size_t sz = ferry__wire__metric__get_packed_size(m) + 4;
                if (wm->n_metrics >= FERRY_METRIC_SAMPLES_MAX || c.bytes + sz > METRICS_RUN_MAX_BYTES) {
                    metric_free(m);
                    wm->dropped++;
                    continue;
                }
                c.bytes += sz;
                wm->metrics[wm->n_metrics++] = m;
            }
            free(v1);
        }
    }
    if (wm->n_metrics == 0) {
        free(wm->metrics); /* protobuf-c frees only what n_ says is there */
        wm->metrics = NULL;
    }
    *out = wm;
    return rc;
}

/* ---- the periodic collection ---- */

/* Sized for the runs it measures: a pass for a handful of runs should not
 * cost the agent a 256-run allocation every interval. */
struct pass_run {
    struct metrics_run r;
    Ferry__Wire__WorkloadMetrics *got;
    int rc;
};

struct pass {
    uv_work_t work;
    struct metrics *m;
    size_t n, cap;
    uint64_t now_ms;
    struct pass_run runs[];
};

#define PASS_FIRST_CAP 16

struct metrics {
    uv_loop_t *loop;
    uv_timer_t timer;
    struct metrics_hooks hooks;
    void *arg;
    uint32_t interval_ms;
    struct pass *busy;  /* a pass on the thread pool */
    int stopping;
    int timer_closed;
    /* The newest values, one per run, as of the last pass. */
    Ferry__Wire__WorkloadMetrics **held;
    size_t n_held;
    char last_error[256]; /* logged once, not every pass */
};

static void free_held(struct metrics *m)
{
    for (size_t i = 0; i < m->n_held; i++)
        ferry__wire__workload_metrics__free_unpacked(m->held[i], NULL);
    free(m->held);
    m->held = NULL;
    m->n_held = 0;
}

static void maybe_free(struct metrics *m)
{
    if (m->stopping && !m->busy && m->timer_closed) {
        free_held(m);
        free(m);
    }
}

static void pass_work(uv_work_t *w)
{
    struct pass *p = w->data;
    for (size_t i = 0; i < p->n; i++) {
        struct pass_run *pr = &p->runs[i];
        err_clear();
        pr->rc = metrics_collect_run(pr->r.plugin, pr->r.run, pr->r.name, pr->r.version, p->now_ms, &pr->got);
    }
}

static void release_all(struct metrics *m, struct pass *p)
{
    for (size_t i = 0; i < p->n; i++)
        m->hooks.release(m->arg, &p->runs[i].r);
}

static void pass_after(uv_work_t *w, int status)
{
    struct pass *p = w->data;
    struct metrics *m = p->m;
    release_all(m, p);
    m->busy = NULL;
    if (m->stopping || status < 0) {
        for (size_t i = 0; i < p->n; i++)
            if (p->runs[i].got)
                ferry__wire__workload_metrics__free_unpacked(p->runs[i].got, NULL);
        free(p);
        maybe_free(m);
        return;
    }
    free_held(m);
    m->held = calloc(p->n ? p->n : 1, sizeof *m->held);
    for (size_t i = 0; i < p->n; i++) {
        struct pass_run *pr = &p->runs[i];
        if (pr->rc < 0) {
            char line[256];
            snprintf(line, sizeof line, "%s@%s: metrics from plugin %s: %s", pr->r.name, pr->r.version,
                     pr->r.plugin->name, ferry_strerror(pr->rc));
            if (strcmp(line, m->last_error) != 0)
                alog(FERRY_LOG_WARN, "%s", line);
            snprintf(m->last_error, sizeof m->last_error, "%s", line);
        }
        if (m->held && pr->got)
            m->held[m->n_held++] = pr->got;
        else if (pr->got)
            ferry__wire__workload_metrics__free_unpacked(pr->got, NULL);
    }
    free(p);
    if (m->hooks.updated)
        m->hooks.updated(m->arg);
}

static struct pass *pass_new(struct metrics *m, size_t cap)
{
    struct pass *p = calloc(1, sizeof *p + cap * sizeof p->runs[0]);
    if (!p)
        return NULL;
    p->m = m;
    p->cap = cap;
    p->now_ms = clock_unix_ms();
    /* The hook fills metrics_run entries: list them into a scratch array
     * of that type, then spread them out. */
    struct metrics_run *tmp = calloc(cap, sizeof *tmp);
    if (!tmp) {
        free(p);
        return NULL;
    }
    p->n = m->hooks.list(m->arg, tmp, cap);
    if (p->n > cap)
        p->n = cap;
    for (size_t i = 0; i < p->n; i++)
        p->runs[i].r = tmp[i];
    free(tmp);
    return p;
}

static void collect(struct metrics *m)
{
    if (m->busy || m->stopping)
        return;
    struct pass *p = pass_new(m, PASS_FIRST_CAP);
    if (p && p->n == p->cap) { /* maybe more: ask again with room for all */
        release_all(m, p);
        free(p);
        p = pass_new(m, RUNS_MAX);
    }
    if (!p)
        return;
    p->work.data = p;
    m->busy = p;
    if (uv_queue_work(m->loop, &p->work, pass_work, pass_after) != 0) {
        release_all(m, p);
        m->busy = NULL;
        free(p);
    }
}

static void on_tick(uv_timer_t *t) { collect(t->data); }

int metrics_start(uv_loop_t *loop, uint32_t interval_ms, const struct metrics_hooks *hooks, void *arg,
                  struct metrics **out)
{
    if (interval_ms == 0)
        interval_ms = METRICS_DEFAULT_INTERVAL_MS;
    if (interval_ms < METRICS_MIN_INTERVAL_MS || interval_ms > METRICS_MAX_INTERVAL_MS)
        return err_set(-EINVAL, "metrics interval %u ms: must be from %u s to %u s", interval_ms,
                       METRICS_MIN_INTERVAL_MS / 1000, METRICS_MAX_INTERVAL_MS / 1000);
    if (!hooks || !hooks->list || !hooks->release)
        return err_set(-EINVAL, "metrics_start: list and release hooks are required");
    struct metrics *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    m->loop = loop;
    m->hooks = *hooks;
    m->arg = arg;
    m->interval_ms = interval_ms;
    uv_timer_init(loop, &m->timer);
    m->timer.data = m;
    uv_timer_start(&m->timer, on_tick, interval_ms, interval_ms);
    *out = m;
    return 0;
}

void metrics_kick(struct metrics *m)
{
    if (m)
        collect(m);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct metrics *m = h->data;
    m->timer_closed = 1;
    maybe_free(m);
}

void metrics_stop(struct metrics *m)
{
    if (!m)
        return;
    m->stopping = 1;
    if (m->busy)
        uv_cancel((uv_req_t *)&m->busy->work); /* after still runs, with UV_ECANCELED */
    uv_close((uv_handle_t *)&m->timer, on_timer_closed);
}

int metrics_fill_body(struct metrics *m, Ferry__Wire__ReportBody *body)
{
    if (!m) {
        body->metrics = NULL;
        body->n_metrics = 0;
        return 0;
    }
    return metricwire_fill_body(body, m->held, m->n_held);
}

void metrics_body_done(Ferry__Wire__ReportBody *body)
{
    free(body->metrics);
    body->metrics = NULL;
    body->n_metrics = 0;
}

const Ferry__Wire__WorkloadMetrics *metrics_get(const struct metrics *m, const char *name, const char *version)
{
    for (size_t i = 0; m && i < m->n_held; i++)
        if (strcmp(m->held[i]->name, name) == 0 && strcmp(m->held[i]->version, version) == 0)
            return m->held[i];
    return NULL;
}
