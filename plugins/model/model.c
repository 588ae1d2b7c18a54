/* The model plugin: runtime model. A run is ferry-model-server (a C HTTP
 * front end speaking the Open Inference Protocol V2 and MLflow's scoring
 * protocol) and its Python worker processes, spawned through the host so
 * the host supervises, logs and confines them like any run. The plugin
 * finds the server next to itself, judges readiness, turns the server's
 * drift gauge into a warning and forwards the server's metrics.
 * docs/models.md, docs/plugins.md. */
/* dladdr needs _GNU_SOURCE, which the build defines. */
#include <ferry/ferry.h>
#include <ferry/plugin.h>

#include "httpc.h"
#include "procusage.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SERVER_NAME "ferry-model-server"
#define WORKER_NAME "worker.py"
#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"
#define PROBE_TIMEOUT_MS 2000
#define METRICS_TIMEOUT_MS 2000
#define METRICS_BODY_MAX (4u << 20)
#define READY_PATH "/v2/health/ready"
#define DRIFT_FAMILY "ferry_model_drift_psi"
#define DRIFT_ALERT_DEFAULT 0.2
#define DRIFT_WINDOW_DEFAULT 1000
#define ROWS_FAMILY "ferry_model_drift_window_rows"
#define SPEC_JSON_MAX (128u << 10) /* the server refuses a longer --spec-json */

#define NEED(type, last) (offsetof(type, last) + sizeof(((type *)0)->last))

struct model_state {
    const struct ferry_host *host;
    char dir[PATH_MAX]; /* the folder model/ next to model.so */
};

static int model_init(void **state, const struct ferry_host *host)
{
    if (!host || host->magic != FERRY_HOST_MAGIC || host->abi != FERRY_PLUGIN_ABI ||
        host->struct_size < NEED(struct ferry_host, run_command) || !host->spawn || !host->signal ||
        !host->alive || !host->http_get || !host->log)
        return -EINVAL;
    struct model_state *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->host = host;
    /* Where this very object was loaded from: the server ships beside it. */
    Dl_info info;
    const char *slash = NULL;
    if (dladdr((void *)&model_init, &info) && info.dli_fname)
        slash = strrchr(info.dli_fname, '/');
    /* Absolute, since the server runs with the artifact as its cwd and the
     * agent may have been given a relative --plugins. */
    char where[PATH_MAX + 8];
    if (slash && (size_t)(slash - info.dli_fname) < PATH_MAX) {
        snprintf(where, sizeof where, "%.*s/model", (int)(slash - info.dli_fname),
                 info.dli_fname);
        if (!realpath(where, s->dir))
            s->dir[0] = '\0';
    }
    *state = s;
    return 0;
}

static void model_fini(void *state) { free(state); }

/* The rule the host applies to plugins: only root or the agent's own user
 * may be able to change what runs. */
static int trusted(const struct ferry_host *h, const char *path, int want_dir, int want_exec)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        h->log(h->ctx, FERRY_LOG_ERROR, "model: %s: %s", path, strerror(errno));
        return -errno;
    }
    const char *why = NULL;
    if (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
        why = want_dir ? "not a directory" : "not a regular file";
    else if (st.st_uid != 0 && st.st_uid != geteuid())
        why = "owned by someone other than root or the agent's user";
    else if (st.st_mode & (S_IWGRP | S_IWOTH))
        why = "writable by group or others";
    else if (want_exec && access(path, X_OK) != 0)
        why = "not executable";
    if (why) {
        h->log(h->ctx, FERRY_LOG_ERROR, "model: refusing %s: %s", path, why);
        return -EPERM;
    }
    return 0;
}

static int workload_ok(const struct ferry_workload *w)
{
    return w && w->struct_size >= NEED(struct ferry_workload, kind_json) && w->spec_json &&
           w->kind_json && w->dir;
}

static int run_ok(const struct ferry_run *run)
{
    return run && run->struct_size >= NEED(struct ferry_run, plugin_data);
}

static char *kv(const char *k, const char *v)
{
    size_t n = strlen(k) + strlen(v) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s=%s", k, v);
    return s;
}

/* The server's environment: the workload's run.env if it has one (thread
 * counts and the like), then what the host decides. No bytecode is written
 * into the read-only artifact tree. */
static char **env_build(const struct ferry_workload *w, const struct ferry_run *run)
{
    size_t n = 0;
    for (const char *const *e = w->env; e && *e; e++)
        n++;
    char **v = calloc(n + 8, sizeof *v);
    if (!v)
        return NULL;
    size_t k = 0;
    int have_path = 0, bad = 0;
    for (const char *const *e = w->env; e && *e; e++) {
        if (strncmp(*e, "PORT=", 5) == 0 || strncmp(*e, "FERRY_WORKLOAD=", 15) == 0 ||
            strncmp(*e, "FERRY_VERSION=", 14) == 0)
            continue;
        have_path |= strncmp(*e, "PATH=", 5) == 0;
        bad |= !(v[k++] = strdup(*e));
    }
    char port[16];
    snprintf(port, sizeof port, "%d", run->port);
    const char *path = getenv("PATH"), *home = getenv("HOME");
    bad |= !(v[k++] = kv("PORT", port));
    bad |= !(v[k++] = kv("FERRY_WORKLOAD", w->name ? w->name : ""));
    bad |= !(v[k++] = kv("FERRY_VERSION", w->version ? w->version : ""));
    bad |= !(v[k++] = kv("PYTHONDONTWRITEBYTECODE", "1"));
    if (!have_path)
        bad |= !(v[k++] = kv("PATH", path && *path ? path : DEFAULT_PATH));
    if (home)
        bad |= !(v[k++] = kv("HOME", home));
    if (bad) {
        for (size_t i = 0; i < k; i++)
            free(v[i]);
        free(v);
        return NULL;
    }
    return v;
}

static void strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

static int model_start(void *state, const struct ferry_workload *w, struct ferry_run *run)
{
    struct model_state *s = state;
    const struct ferry_host *h = s->host;
    if (!workload_ok(w) || !run_ok(run))
        return -EINVAL;
    if (!s->dir[0]) {
        h->log(h->ctx, FERRY_LOG_ERROR, "model %s: cannot tell where model.so is", w->name);
        return -ENOENT;
    }
    if (strlen(w->spec_json) > SPEC_JSON_MAX) {
        h->log(h->ctx, FERRY_LOG_ERROR, "model %s: ferry.yaml as JSON is over 128 KiB", w->name);
        return FERRY_E_LIMIT;
    }
    char server[PATH_MAX + 32], worker[PATH_MAX + 32];
    snprintf(server, sizeof server, "%s/" SERVER_NAME, s->dir);
    snprintf(worker, sizeof worker, "%s/" WORKER_NAME, s->dir);
    int rc = trusted(h, s->dir, 1, 0);
    if (rc == 0)
        rc = trusted(h, server, 0, 1);
    if (rc == 0)
        rc = trusted(h, worker, 0, 0);
    if (rc < 0)
        return rc;
    /* Loopback unless the agent's operator opens the endpoints to the
     * address its --advertise names (an IP literal, nothing to resolve). */
    const char *addr = getenv("FERRY_MODEL_ADDR");
    unsigned char ip[16];
    if (!addr || !*addr)
        addr = "127.0.0.1";
    else if (inet_pton(AF_INET, addr, ip) != 1 && inet_pton(AF_INET6, addr, ip) != 1) {
        h->log(h->ctx, FERRY_LOG_ERROR, "model %s: FERRY_MODEL_ADDR '%.64s' is not an IP address",
               w->name, addr);
        return -EINVAL;
    }
    char port[16];
    snprintf(port, sizeof port, "%d", run->port);
    const char *python = getenv("FERRY_PYTHON");
    const char *argv[] = {server, "--dir", w->dir, "--port", port, "--addr", addr,
                          "--spec-json", w->spec_json,
                          python && *python ? "--python" : NULL, python, NULL};
    char **env = env_build(w, run);
    if (!env)
        return -ENOMEM;
    rc = h->spawn(h->ctx, run, argv, (const char *const *)env, w->dir);
    strv_free(env);
    return rc;
}

static int model_stop(void *state, struct ferry_run *run, int timeout_ms)
{
    struct model_state *s = state;
    if (!run_ok(run))
        return -EINVAL;
    (void)timeout_ms; /* the host escalates to SIGKILL itself */
    int rc = s->host->signal(s->host->ctx, run, SIGTERM);
    return rc == -ESRCH ? 0 : rc;
}

static int model_adopt(void *state, const struct ferry_workload *w, struct ferry_run *run)
{
    (void)state;
    (void)w;
    return run_ok(run) ? 0 : -EINVAL; /* nothing is kept in plugin_data */
}

/* The server's metrics as mm_render_json writes them (model/mmetrics.h):
 * {"families": [{"name", "type", "series": [{"labels", "value", ...}]}]}. */
static json_t *fetch_metrics(int port)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics?format=json", port);
    struct httpc_reply r;
    if (httpc_request("GET", url, NULL, NULL, 0, METRICS_TIMEOUT_MS, METRICS_BODY_MAX, &r) < 0)
        return NULL;
    json_t *j = r.status == 200 ? json_loadb(r.body, r.len, 0, NULL) : NULL;
    httpc_reply_free(&r);
    if (j && !json_is_array(json_object_get(j, "families"))) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

struct drift_cfg {
    double alert;  /* 0: the model has no reference, so no drift */
    double window; /* rows the PSI is measured over */
};

/* From the model's section (docs/manifest.md): drift needs a reference;
 * alert and window default as the server's do. */
static struct drift_cfg drift_cfg_of(const char *kind_json)
{
    struct drift_cfg d = {0, DRIFT_WINDOW_DEFAULT};
    json_t *k = json_loads(kind_json, 0, NULL);
    const char *ref = json_string_value(json_object_get(k, "reference"));
    if (ref && *ref) {
        json_t *drift = json_object_get(k, "drift");
        json_t *a = json_object_get(drift, "alert"), *w = json_object_get(drift, "window");
        d.alert = json_is_number(a) && json_number_value(a) > 0 ? json_number_value(a)
                                                                : DRIFT_ALERT_DEFAULT;
        if (json_is_integer(w) && json_integer_value(w) > 0)
            d.window = (double)json_integer_value(w);
    }
    json_decref(k);
    return d;
}

static json_t *family(json_t *metrics, const char *name)
{
    size_t i;
    json_t *fam;
    json_array_foreach(json_object_get(metrics, "families"), i, fam) {
        const char *n = json_string_value(json_object_get(fam, "name"));
        if (n && strcmp(n, name) == 0)
            return fam;
    }
    return NULL;
}

/* Rows the server's drift window holds now (its own gauge). */
static double rows_served(json_t *metrics)
{
    double rows = 0;
    size_t i;
    json_t *ser;
    json_array_foreach(json_object_get(family(metrics, ROWS_FAMILY), "series"), i, ser) {
        json_t *v = json_object_get(ser, "value");
        if (json_is_number(v) && json_number_value(v) > rows)
            rows = json_number_value(v);
    }
    return rows;
}

/* "drift: INPUT psi 0.31 > 0.2[, ...]" for every input over alert. The
 * PSI of a window not yet full compares a handful of rows with ten bins
 * and reads as drift: no warning until the model has served a window. */
static void drift_reason(json_t *metrics, const struct drift_cfg *d, char *out, size_t cap)
{
    out[0] = '\0';
    if (rows_served(metrics) < d->window)
        return;
    size_t used = 0, k;
    json_t *ser;
    json_array_foreach(json_object_get(family(metrics, DRIFT_FAMILY), "series"), k, ser) {
        json_t *v = json_object_get(ser, "value");
        const char *input =
            json_string_value(json_object_get(json_object_get(ser, "labels"), "input"));
        if (!input || !json_is_number(v) || !isfinite(json_number_value(v)) ||
            json_number_value(v) <= d->alert || used + 1 >= cap)
            continue;
        int n = snprintf(out + used, cap - used, "%s%.64s psi %.2f > %g",
                         used ? ", " : "drift: ", input, json_number_value(v), d->alert);
        used = n < 0 ? used : used + (size_t)n >= cap ? cap - 1 : used + (size_t)n;
    }
}

static int model_health(void *state, const struct ferry_workload *w, struct ferry_run *run,
                        struct ferry_health *out)
{
    struct model_state *s = state;
    const struct ferry_host *h = s->host;
    if (!workload_ok(w) || !run_ok(run) || !out ||
        out->struct_size < NEED(struct ferry_health, reason))
        return -EINVAL;
    out->healthy = 0;
    out->reason[0] = '\0';
    if (!h->alive(h->ctx, run)) {
        snprintf(out->reason, sizeof out->reason, "process exited");
        return 0;
    }
    int status = 0;
    int rc = h->http_get(h->ctx, run->port, READY_PATH, PROBE_TIMEOUT_MS, &status);
    if (rc < 0) {
        snprintf(out->reason, sizeof out->reason, "GET " READY_PATH ": %s", httpc_strerror(rc));
        return 0;
    }
    if (status != 200) {
        if (status == 503)
            snprintf(out->reason, sizeof out->reason,
                     "GET " READY_PATH ": 503, no model worker is ready (loading, or "
                     "restarting after a crash)");
        else
            snprintf(out->reason, sizeof out->reason, "GET " READY_PATH ": status %d, want 200",
                     status);
        return 0;
    }
    out->healthy = 1;
    /* Ready: a healthy answer with a reason is a warning the host reports
     * while the run keeps running. */
    struct drift_cfg d = drift_cfg_of(w->kind_json);
    if (d.alert > 0) {
        json_t *m = fetch_metrics(run->port);
        if (m)
            drift_reason(m, &d, out->reason, sizeof out->reason);
        json_decref(m);
    }
    return 0;
}

/* One series of the server's JSON as one ABI-2 sample. */
static int forward_series(struct ferry_metric_sink *sink, const char *name, uint32_t type,
                          json_t *ser)
{
    const char *labels[2 * FERRY_METRIC_LABELS_MAX + 1];
    size_t nl = 0;
    const char *key;
    json_t *val;
    json_object_foreach(json_object_get(ser, "labels"), key, val) {
        if (nl / 2 >= FERRY_METRIC_LABELS_MAX || !json_is_string(val))
            return FERRY_E_INVALID;
        labels[nl++] = key;
        labels[nl++] = json_string_value(val);
    }
    labels[nl] = NULL;
    struct ferry_sample smp = {.struct_size = sizeof smp, .type = type, .name = name,
                               .labels = nl ? labels : NULL};
    json_t *v = json_object_get(ser, "value");
    smp.value = json_is_number(v) ? json_number_value(v) : 0;
    double le[FERRY_METRIC_BUCKETS_MAX];
    uint64_t cnt[FERRY_METRIC_BUCKETS_MAX];
    if (type == FERRY_METRIC_HISTOGRAM) {
        json_t *sum = json_object_get(ser, "sum"), *count = json_object_get(ser, "count");
        json_t *bk = json_object_get(ser, "buckets");
        if (json_is_number(sum))
            smp.value = json_number_value(sum);
        smp.count = json_is_integer(count) && json_integer_value(count) > 0
                        ? (uint64_t)json_integer_value(count)
                        : 0;
        if (json_array_size(bk) > FERRY_METRIC_BUCKETS_MAX)
            return FERRY_E_LIMIT;
        size_t i;
        json_t *b;
        json_array_foreach(bk, i, b) {
            json_t *l = json_object_get(b, "le"), *c = json_object_get(b, "count");
            if (!json_is_number(l) || !json_is_integer(c) || json_integer_value(c) < 0)
                return FERRY_E_INVALID;
            le[i] = json_number_value(l);
            cnt[i] = (uint64_t)json_integer_value(c);
        }
        smp.n_buckets = (uint32_t)json_array_size(bk);
        smp.bucket_le = le;
        smp.bucket_count = cnt;
    }
    return sink->add(sink, &smp);
}

static int model_metrics2(void *state, struct ferry_run *run, struct ferry_metric_sink *sink)
{
    (void)state;
    if (!run_ok(run) || !sink || sink->struct_size < NEED(struct ferry_metric_sink, add) ||
        !sink->add)
        return -EINVAL;
    int rc = usage_report(run->pid, sink); /* the server and its workers */
    json_t *m = run->port > 0 ? fetch_metrics(run->port) : NULL;
    size_t i;
    json_t *fam;
    json_array_foreach(json_object_get(m, "families"), i, fam) {
        const char *name = json_string_value(json_object_get(fam, "name"));
        const char *type = json_string_value(json_object_get(fam, "type"));
        if (!name || !type)
            continue;
        uint32_t t = strcmp(type, "counter") == 0     ? FERRY_METRIC_COUNTER
                     : strcmp(type, "histogram") == 0 ? FERRY_METRIC_HISTOGRAM
                                                      : FERRY_METRIC_GAUGE;
        size_t k;
        json_t *ser;
        /* A refused sample is counted by the host; the others still go. */
        json_array_foreach(json_object_get(fam, "series"), k, ser)
            forward_series(sink, name, t, ser);
    }
    json_decref(m);
    return rc == FERRY_E_LIMIT ? 0 : rc;
}

static const struct ferry_plugin model_plugin = {
    .magic = FERRY_PLUGIN_MAGIC,
    .struct_size = sizeof(struct ferry_plugin),
    .abi = FERRY_PLUGIN_ABI,
    .name = "model",
    .runtimes = "model",
    .init = model_init,
    .start = model_start,
    .stop = model_stop,
    .health = model_health,
    .fini = model_fini,
    .adopt = model_adopt,
    .metrics2 = model_metrics2,
};

__attribute__((visibility("default"))) const struct ferry_plugin *ferry_plugin_entry(void)
{
    return &model_plugin;
}
