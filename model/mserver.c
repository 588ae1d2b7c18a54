#include "mserver.h"

#include "batcher.h"
#include "drift.h"
#include "error.h"
#include "httpd.h"
#include "infer.h"
#include "mlflow.h"
#include "mmetrics.h"
#include "modelcfg.h"
#include "v2.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROM_TYPE "text/plain; version=0.0.4"

struct mserver {
    struct model_cfg cfg;
    char *dir, *python, *worker_py;
    struct httpd *httpd;
    /* Set once by mserver_load; handlers read it under `gate`. */
    struct batcher *batcher;
    struct drift *drift;
    /* Read-held by a handler from its "are we serving" check through
     * batcher_submit; write-held by mserver_stop to close the door, so no
     * submit can race batcher_stop. */
    pthread_rwlock_t gate;
    int stopping;
    atomic_int loaded;
    /* A sklearn model that declared no inputs: cfg.inputs are filled from
     * the loaded estimator in mserver_load, before `loaded` is set, and
     * nothing reads them until then. */
    int inputs_pending;

    struct mm *mm;
    struct mm_family *requests, *duration, *queue, *compute, *batch, *restarts, *ready, *psi, *psi_rows,
        *psi_alert, *psi_window;
    pthread_mutex_t pull_mu; /* the restarts counter's last reading */
    uint64_t restarts_seen;
};

/* One inference request on its way through the batcher. */
struct job {
    struct mserver *s;
    struct httpd_request *http;
    struct infer_req req;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *proto_name(enum infer_protocol p)
{
    return p == PROTO_MLFLOW ? "mlflow" : "v2";
}

/* A request's outcome and duration, for inference routes only. */
static void count(struct mserver *s, enum infer_protocol p, const char *outcome, uint64_t since)
{
    const char *lv[] = {s->cfg.name, s->cfg.version, proto_name(p), outcome};
    mm_add(s->requests, lv, 1);
    const char *dv[] = {s->cfg.name, s->cfg.version, proto_name(p)};
    uint64_t t = now_ns();
    mm_observe(s->duration, dv, t > since ? (double)(t - since) / 1e9 : 0);
}

static void respond_json(struct httpd_request *r, int status, char *text)
{
    if (!text) {
        static const char oom[] = "{\"error\":\"out of memory\"}";
        httpd_respond(r, 500, NULL, oom, sizeof oom - 1);
        return;
    }
    httpd_respond(r, status, NULL, text, strlen(text));
    free(text);
}

static void respond_error(struct httpd_request *r, int status, const char *msg)
{
    respond_json(r, status, v2_render_error(msg));
}

static const char *outcome_of(int status)
{
    switch (status) {
    case 200: return "ok";
    case 404: return "not_found";
    case 503: return "unavailable";
    default: return status >= 400 && status < 500 ? "bad_request" : "error";
    }
}

/* r is gone once answered: its arrival time is read first. */
static void refuse(struct mserver *s, struct httpd_request *r, enum infer_protocol p, int status,
                   const char *msg)
{
    uint64_t arrived = r->arrived_ns;
    respond_error(r, status, msg);
    count(s, p, outcome_of(status), arrived);
}

static void job_done(void *arg, int status, struct infer_result *res, const char *msg,
                     const struct batch_timing *t)
{
    struct job *j = arg;
    struct mserver *s = j->s;
    const char *lv[] = {s->cfg.name, s->cfg.version};
    if (t) {
        mm_observe(s->queue, lv, (double)t->queue_ns / 1e9);
        if (status == 200) {
            mm_observe(s->compute, lv, (double)t->compute_ns / 1e9);
            mm_observe(s->batch, lv, (double)t->batch_rows);
        }
    }
    /* Outputs asked for by name are checked against the declared ones
     * before the model runs; without declared outputs, only now. */
    char missing[TENSOR_NAME_MAX + 256] = "";
    if (status == 200 && res && j->req.protocol == PROTO_V2)
        for (size_t k = 0; k < j->req.n_requested && !missing[0]; k++) {
            size_t o = 0;
            while (o < res->n_outputs && strcmp(res->outputs[o].name, j->req.requested[k]) != 0)
                o++;
            if (o == res->n_outputs) {
                char gave[160] = "";
                size_t w = 0;
                for (o = 0; o < res->n_outputs && w < sizeof gave; o++)
                    w += (size_t)snprintf(gave + w, sizeof gave - w, "%s%s", o ? ", " : "",
                                          res->outputs[o].name);
                snprintf(missing, sizeof missing,
                         "output '%s': the model gave no such output (it gave %s)",
                         j->req.requested[k], gave);
            }
        }
    if (missing[0]) {
        infer_result_fini(res);
        refuse(s, j->http, j->req.protocol, 400, missing);
    } else if (status == 200 && res) {
        char *text = j->req.protocol == PROTO_MLFLOW ? mlflow_render(&s->cfg, &j->req, res)
                                                     : v2_render_infer(&s->cfg, &j->req, res);
        infer_result_fini(res);
        if (text) {
            uint64_t arrived = j->http->arrived_ns;
            respond_json(j->http, 200, text);
            count(s, j->req.protocol, "ok", arrived);
            if (s->drift)
                drift_observe(s->drift, &j->req);
        } else {
            refuse(s, j->http, j->req.protocol, 500, "out of memory rendering the answer");
        }
    } else {
        if (res)
            infer_result_fini(res);
        if (status != 503)
            status = 500;
        refuse(s, j->http, j->req.protocol, status,
               msg && *msg ? msg : status == 503 ? "the server is shutting down" : "model error");
    }
    infer_req_fini(&j->req);
    free(j);
}

/* Parsed and checked: hand it to the batcher, or answer why not. */
static void infer(struct mserver *s, struct httpd_request *r, enum infer_protocol p)
{
    if (r->body_too_large) {
        char msg[160];
        snprintf(msg, sizeof msg, "the request body is over the %zu-byte cap (model.max_body)",
                 s->cfg.max_body);
        refuse(s, r, p, 400, msg);
        return;
    }
    if (s->inputs_pending && !atomic_load(&s->loaded)) {
        refuse(s, r, p, 503, "the model is still loading");
        return;
    }
    struct job *j = calloc(1, sizeof *j);
    if (!j) {
        refuse(s, r, p, 500, "out of memory");
        return;
    }
    j->s = s;
    j->http = r;
    char err[512] = "";
    int st = p == PROTO_MLFLOW
                 ? mlflow_parse(&s->cfg, r->content_type, r->body, r->body_len, &j->req, err,
                                sizeof err)
                 : v2_parse_infer(&s->cfg, r->body, r->body_len, &j->req, err, sizeof err);
    if (st) {
        free(j);
        refuse(s, r, p, st, err);
        return;
    }
    pthread_rwlock_rdlock(&s->gate);
    int rc = -1;
    char msg[256] = "the model is still loading";
    if (s->stopping)
        snprintf(msg, sizeof msg, "the server is shutting down");
    else if (atomic_load(&s->loaded) &&
             (rc = batcher_submit(s->batcher, &j->req, job_done, j)) < 0)
        snprintf(msg, sizeof msg, "%s", err_message(rc));
    pthread_rwlock_unlock(&s->gate);
    if (rc < 0) {
        infer_req_fini(&j->req);
        free(j);
        refuse(s, r, p, 503, msg);
    }
}

static int is_ready(struct mserver *s)
{
    int ready = 0;
    pthread_rwlock_rdlock(&s->gate);
    if (!s->stopping && atomic_load(&s->loaded))
        ready = batcher_ready_workers(s->batcher) > 0;
    pthread_rwlock_unlock(&s->gate);
    return ready;
}

/* Gauges and the restart counter are read from their owners when scraped. */
static void pull_metrics(struct mserver *s)
{
    const char *lv[] = {s->cfg.name, s->cfg.version};
    pthread_rwlock_rdlock(&s->gate);
    int up = !s->stopping && atomic_load(&s->loaded);
    unsigned ready = up ? batcher_ready_workers(s->batcher) : 0;
    uint64_t restarts = up ? batcher_worker_restarts(s->batcher) : 0;
    pthread_rwlock_unlock(&s->gate);
    mm_set(s->ready, lv, (double)ready);
    pthread_mutex_lock(&s->pull_mu);
    if (restarts > s->restarts_seen) {
        mm_add(s->restarts, lv, (double)(restarts - s->restarts_seen));
        s->restarts_seen = restarts;
    }
    pthread_mutex_unlock(&s->pull_mu);
    /* drift is set by mserver_load before loaded, and read only after. */
    if (up && s->drift) {
        mm_set(s->psi_rows, lv, (double)drift_rows(s->drift));
        /* The model's own threshold and window beside the PSI, so an
         * alerting rule compares with them instead of a fixed number. */
        mm_set(s->psi_alert, lv, s->cfg.drift_alert);
        mm_set(s->psi_window, lv, (double)s->cfg.drift_window);
    }
    if (up && s->drift)
        for (size_t i = 0; i < drift_features(s->drift); i++) {
            const char *pv[] = {s->cfg.name, s->cfg.version, drift_feature_name(s->drift, i)};
            mm_set(s->psi, pv, drift_psi(s->drift, i));
        }
}

static void metrics(struct mserver *s, struct httpd_request *r)
{
    pull_metrics(s);
    int json = strcmp(r->query, "format=json") == 0;
    char *text = json ? mm_render_json(s->mm) : mm_render_prometheus(s->mm);
    if (!text) {
        respond_error(r, 500, "out of memory rendering metrics");
        return;
    }
    httpd_respond(r, 200, json ? NULL : PROM_TYPE, text, strlen(text));
    free(text);
}

static int method_is(struct httpd_request *r, const char *want)
{
    if (strcmp(r->method, want) == 0)
        return 1;
    char msg[160];
    snprintf(msg, sizeof msg, "method %.16s is not allowed on %.100s (use %s)", r->method,
             r->path, want);
    respond_error(r, 405, msg);
    return 0;
}

/* /v2/models/NAME[/versions/VERSION][/ready|/infer]: tail is after
 * "/v2/models/". */
static void model_route(struct mserver *s, struct httpd_request *r, const char *tail)
{
    uint64_t arrived = r->arrived_ns; /* r is gone once answered */
    char name[256], version[128] = "", action[16] = "";
    const char *p = strchr(tail, '/');
    size_t nl = p ? (size_t)(p - tail) : strlen(tail);
    if (nl == 0 || nl >= sizeof name) {
        respond_error(r, 404, "no model named in the path");
        return;
    }
    memcpy(name, tail, nl);
    name[nl] = '\0';
    int bad_path = 0;
    if (p && strncmp(p, "/versions/", 10) == 0) {
        const char *v = p + 10;
        const char *q = strchr(v, '/');
        size_t vl = q ? (size_t)(q - v) : strlen(v);
        if (vl == 0 || vl >= sizeof version)
            bad_path = 1;
        else {
            memcpy(version, v, vl);
            version[vl] = '\0';
        }
        p = q;
    }
    if (p && !bad_path) {
        if (strcmp(p, "/ready") == 0 || strcmp(p, "/infer") == 0)
            snprintf(action, sizeof action, "%s", p + 1);
        else
            bad_path = 1;
    }
    int infer_route = strcmp(action, "infer") == 0;
    if (bad_path) {
        char msg[200];
        snprintf(msg, sizeof msg, "no route %.160s", r->path);
        respond_error(r, 404, msg);
        return;
    }
    if (!method_is(r, infer_route ? "POST" : "GET")) {
        if (infer_route)
            count(s, PROTO_V2, "bad_request", arrived);
        return;
    }
    char msg[400];
    if (strcmp(name, s->cfg.name) != 0) {
        snprintf(msg, sizeof msg, "model '%.64s' is not served here (this server serves '%s')",
                 name, s->cfg.name);
        if (infer_route)
            refuse(s, r, PROTO_V2, 404, msg);
        else
            respond_error(r, 404, msg);
        return;
    }
    if (version[0] && strcmp(version, s->cfg.version) != 0) {
        snprintf(msg, sizeof msg, "model '%.64s' has no version '%.64s' (this server serves %s)",
                 name, version, s->cfg.version);
        if (infer_route)
            refuse(s, r, PROTO_V2, 404, msg);
        else
            respond_error(r, 404, msg);
        return;
    }
    if (infer_route) {
        infer(s, r, PROTO_V2);
    } else if (action[0]) {
        int ready = is_ready(s);
        json_t *j = json_pack("{s:s, s:b}", "name", s->cfg.name, "ready", ready);
        char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        respond_json(r, ready ? 200 : 503, text);
    } else {
        if (s->inputs_pending && !atomic_load(&s->loaded))
            respond_error(r, 503, "the model is still loading");
        else
            respond_json(r, 200, v2_render_model_metadata(&s->cfg));
    }
}

static void handle(void *ctx, struct httpd_request *r)
{
    struct mserver *s = ctx;
    const char *path = r->path;
    uint64_t arrived = r->arrived_ns; /* r is gone once answered */
    if (strcmp(path, "/v2/health/live") == 0) {
        if (method_is(r, "GET")) {
            static const char live[] = "{\"live\":true}";
            httpd_respond(r, 200, NULL, live, sizeof live - 1);
        }
    } else if (strcmp(path, "/v2/health/ready") == 0) {
        if (method_is(r, "GET")) {
            /* The specification's markdown names the field "live"; the
             * implementations and the REST schema say "ready": both. */
            int ready = is_ready(s);
            const char *text = ready ? "{\"live\":true,\"ready\":true}"
                                     : "{\"live\":true,\"ready\":false}";
            httpd_respond(r, ready ? 200 : 503, NULL, text, strlen(text));
        }
    } else if (strcmp(path, "/v2") == 0 || strcmp(path, "/v2/") == 0) {
        if (method_is(r, "GET"))
            respond_json(r, 200, v2_render_server_metadata());
    } else if (strncmp(path, "/v2/models/", 11) == 0) {
        model_route(s, r, path + 11);
    } else if (strcmp(path, "/invocations") == 0) {
        if (method_is(r, "POST"))
            infer(s, r, PROTO_MLFLOW);
        else
            count(s, PROTO_MLFLOW, "bad_request", arrived);
    } else if (strcmp(path, "/ping") == 0 || strcmp(path, "/health") == 0) {
        if (method_is(r, "GET")) {
            int ready = is_ready(s);
            httpd_respond(r, ready ? 200 : 503, NULL, "\n", 1);
        }
    } else if (strcmp(path, "/metrics") == 0) {
        if (method_is(r, "GET"))
            metrics(s, r);
    } else {
        char msg[200];
        snprintf(msg, sizeof msg, "no route %.160s", path);
        respond_error(r, 404, msg);
    }
}

static int families(struct mserver *s)
{
    static const char *const mvp[] = {"model", "version", "protocol", "outcome", NULL};
    static const char *const mvp3[] = {"model", "version", "protocol", NULL};
    static const char *const mv[] = {"model", "version", NULL};
    static const char *const mvi[] = {"model", "version", "input", NULL};
    static const double secs[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                  0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,     10};
    static const double rows[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096};
    const size_t ns = sizeof secs / sizeof secs[0], nr = sizeof rows / sizeof rows[0];
    int rc;
    if ((rc = mm_family(s->mm, "ferry_model_requests_total",
                        "Inference requests by protocol and outcome.", MM_COUNTER, mvp, NULL, 0,
                        &s->requests)) < 0 ||
        (rc = mm_family(s->mm, "ferry_model_request_duration_seconds",
                        "Inference request duration, arrival to answer.", MM_HISTOGRAM, mvp3, secs,
                        ns, &s->duration)) < 0 ||
        (rc = mm_family(s->mm, "ferry_model_queue_seconds",
                        "Time a request waited for a worker.", MM_HISTOGRAM, mv, secs, ns,
                        &s->queue)) < 0 ||
        (rc = mm_family(s->mm, "ferry_model_compute_seconds",
                        "Time a worker took for the batch a request rode in.", MM_HISTOGRAM, mv,
                        secs, ns, &s->compute)) < 0 ||
        (rc = mm_family(s->mm, "ferry_model_batch_size", "Rows in the batch a request rode in.",
                        MM_HISTOGRAM, mv, rows, nr, &s->batch)) < 0 ||
        (rc = mm_family(s->mm, "ferry_model_worker_restarts_total",
                        "Worker processes restarted after they died.", MM_COUNTER, mv, NULL, 0,
                        &s->restarts)) < 0 ||
        (rc = mm_family(s->mm, "ferry_model_workers_ready",
                        "Worker processes alive with the model loaded.", MM_GAUGE, mv, NULL, 0,
                        &s->ready)) < 0 ||
        (rc = mm_family(s->mm, "ferry_model_drift_psi",
                        "Population stability index of an input over the drift window.",
                        MM_GAUGE, mvi, NULL, 0, &s->psi)) < 0 ||
        (rc = mm_family(s->mm, "ferry_model_drift_window_rows",
                        "Rows in the drift window now (the PSI is measured over these).",
                        MM_GAUGE, mv, NULL, 0, &s->psi_rows)) < 0 ||
        (rc = mm_family(s->mm, "ferry_model_drift_alert",
                        "The model's drift alert: a PSI above it is drift (drift.alert).",
                        MM_GAUGE, mv, NULL, 0, &s->psi_alert)) < 0 ||
        (rc = mm_family(s->mm, "ferry_model_drift_window_size",
                        "Rows the drift window holds when full (drift.window).", MM_GAUGE, mv,
                        NULL, 0, &s->psi_window)) < 0)
        return rc;
    /* Series that exist from the start, so a scrape before the first
     * request or restart shows zeros rather than nothing. */
    const char *lv[] = {s->cfg.name, s->cfg.version};
    mm_add(s->restarts, lv, 0);
    mm_set(s->ready, lv, 0);
    return 0;
}

int mserver_start(const struct mserver_opts *o, struct mserver **out)
{
    *out = NULL;
    struct mserver *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(-ENOMEM, "out of memory");
    pthread_rwlock_init(&s->gate, NULL);
    pthread_mutex_init(&s->pull_mu, NULL);
    atomic_init(&s->loaded, 0);
    int rc = model_cfg_parse(o->spec_json, &s->cfg);
    if (rc < 0)
        goto fail;
    s->inputs_pending = s->cfg.n_inputs == 0 && s->cfg.format == MODEL_SKLEARN;
    s->dir = strdup(o->dir);
    s->python = strdup(o->python);
    s->worker_py = strdup(o->worker_py);
    if (!s->dir || !s->python || !s->worker_py) {
        rc = err_set(-ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = mm_new(&s->mm)) < 0 || (rc = families(s)) < 0)
        goto fail;
    struct httpd_config hc = {
        .addr = o->addr,
        .port = o->port,
        .max_body = s->cfg.max_body,
        .threads = o->http_threads,
        .handler = handle,
        .ctx = s,
    };
    if ((rc = httpd_start(&hc, &s->httpd)) < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    {
        char keep[512];
        snprintf(keep, sizeof keep, "%s", err_message(rc));
        mserver_stop(s);
        return err_set(rc, "%s", keep);
    }
}

int mserver_port(const struct mserver *s)
{
    return s->httpd ? httpd_port(s->httpd) : 0;
}

/* Drift: the reference's bins for the signature's features. */
static int load_reference(struct mserver *s)
{
    int rc;
    /* As many features as the signature can have columns. */
    size_t cap = s->cfg.n_inputs;
    if (s->cfg.n_inputs == 1 && s->cfg.inputs[0].rank == 2)
        cap = s->cfg.inputs[0].shape[1] > 0 ? (size_t)s->cfg.inputs[0].shape[1]
                                             : DRIFT_FEATURES_MAX;
    if (cap > DRIFT_FEATURES_MAX)
        cap = DRIFT_FEATURES_MAX;
    double (*edges)[9] = calloc(cap, sizeof *edges);
    double (*expected)[10] = calloc(cap, sizeof *expected);
    char (*names)[TENSOR_NAME_MAX] = calloc(cap, sizeof *names);
    size_t n = 0;
    rc = edges && expected && names ? 0 : err_set(-ENOMEM, "out of memory");
    if (rc == 0)
        rc = batcher_reference_bins(&s->cfg, s->dir, s->python, s->worker_py, edges, expected,
                                    names, &n);
    if (rc == 0)
        rc = drift_new(n, (const char(*)[TENSOR_NAME_MAX])names, (const double(*)[9])edges,
                       (const double(*)[10])expected, s->cfg.drift_window, &s->drift);
    free(edges);
    free(expected);
    free(names);
    return rc;
}

int mserver_load(struct mserver *s)
{
    int rc;
    /* With declared inputs the reference is binned first (a bad one fails
     * before any worker starts); without, after the estimator named them. */
    if (!s->inputs_pending && s->cfg.reference[0] && (rc = load_reference(s)) < 0)
        return rc;
    struct batcher *b = NULL;
    if ((rc = batcher_start(&s->cfg, s->dir, s->python, s->worker_py, &b)) < 0)
        return rc;
    if (s->inputs_pending) {
        rc = model_cfg_set_inputs(&s->cfg, batcher_signature(b));
        if (rc == 0 && s->cfg.reference[0])
            rc = load_reference(s);
        if (rc < 0) {
            char keep[512];
            snprintf(keep, sizeof keep, "%s", err_message(rc));
            batcher_stop(b);
            return err_set(rc, "%s", keep);
        }
    }
    pthread_rwlock_wrlock(&s->gate);
    s->batcher = b;
    atomic_store(&s->loaded, 1);
    pthread_rwlock_unlock(&s->gate);
    return 0;
}

void mserver_stop(struct mserver *s)
{
    if (!s)
        return;
    pthread_rwlock_wrlock(&s->gate);
    s->stopping = 1;
    struct batcher *b = s->batcher;
    pthread_rwlock_unlock(&s->gate);
    /* The batcher answers what it holds (503) through httpd, which must
     * still be running; only then is HTTP stopped. */
    if (b)
        batcher_stop(b);
    if (s->httpd)
        httpd_stop(s->httpd);
    drift_free(s->drift);
    mm_free(s->mm);
    free(s->dir);
    free(s->python);
    free(s->worker_py);
    pthread_rwlock_destroy(&s->gate);
    pthread_mutex_destroy(&s->pull_mu);
    free(s);
}
