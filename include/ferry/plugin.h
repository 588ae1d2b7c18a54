/*
 * plugin.h — the ferry plugin ABI. This is the one boundary code from outside
 * the project crosses, so it is small and versioned:
 *
 *  - A plugin is a shared object exporting exactly one symbol,
 *    ferry_plugin_entry(), returning a const struct ferry_plugin.
 *  - Every struct starts with what identifies it (magic and/or struct_size);
 *    each side reads only the prefix it knows, and new fields are only ever
 *    appended. A plugin built against an older header keeps working.
 *  - Plugins never see libuv or nng: the agent hands them a ferry_host table
 *    of services (spawn and signal processes, probes, logging, metrics).
 *  - Plugins are thin drivers: they turn a workload into processes that the
 *    agent supervises. Workloads never run inside the agent process.
 *
 * Error rule: 0 on success, a negative code on failure (-errno or FERRY_E_*).
 *
 * ABI history (each version only appends; docs/plugins.md has the rules):
 *  1  start, stop, health, untyped metrics.
 *  2  ferry_workload gains spec_json and kind_json; ferry_run gains
 *     plugin_state (persisted by the host); ferry_plugin gains exited(),
 *     adopt(), action() and metrics2() (typed, labelled samples handed to a
 *     host-owned sink, so a sample can grow without changing any stride).
 *     The host loads plugins of ABI 1 and 2 and hands each a host table
 *     whose abi field is the plugin's own.
 */
#ifndef FERRY_PLUGIN_H
#define FERRY_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FERRY_PLUGIN_MAGIC 0x46525901u /* garbage fails the check */
#define FERRY_HOST_MAGIC 0x46525902u
#define FERRY_PLUGIN_ABI 2u
#define FERRY_PLUGIN_ABI_MIN 1u /* the oldest ABI the host still loads */

enum ferry_log_level { FERRY_LOG_ERROR = 0, FERRY_LOG_WARN = 1, FERRY_LOG_INFO = 2, FERRY_LOG_DEBUG = 3 };

/* What to run: the verified, materialized artifact and its spec. Owned by
 * the host, valid for the duration of the call it is passed to. */
struct ferry_workload {
    uint32_t struct_size;
    const char *name;
    const char *version;
    const char *kind;              /* app | model | notebook */
    const char *runtime;           /* exec | oci | model | notebook */
    const char *dir;               /* workloads/NAME/VERSION, read-only tree */
    const char *const *command;    /* run.command, NULL-terminated */
    const char *const *env;        /* run.env as "K=V", NULL-terminated */
    /* health: at most one of http_path / command; else process alive */
    const char *health_http_path;  /* NULL when not an HTTP check */
    int health_http_status;        /* expected status, e.g. 200 */
    const char *const *health_command; /* NULL-terminated, or NULL */
    uint32_t health_settle_ms;     /* process-alive check: alive this long */
    uint32_t health_deadline_ms;   /* healthy within this after start */
    uint32_t health_interval_ms;
    /* ---- ABI 2 (struct_size says whether they are there) ---- */
    /* The whole signed ferry.yaml as one JSON object (docs/plugins.md gives
     * the mapping from YAML), and the section named after the kind or the
     * runtime ("model", "notebook", "oci", ...) as a JSON object, "{}" when
     * the spec has none. A new kind section needs no ABI change. */
    const char *spec_json;
    const char *kind_json;
};

#define FERRY_PLUGIN_STATE_MAX 512

/* One running instance. Owned by the host; the plugin may keep private data
 * in plugin_data and must free it in stop(). When the agent exits it leaves
 * workloads running and does not call stop(): a plugin frees the
 * plugin_data of runs it still holds in fini(). */
struct ferry_run {
    uint32_t struct_size;
    int pid;             /* main process; set by host->spawn */
    int port;            /* allocated by the host for this run, exported as PORT */
    uint64_t started_ms; /* monotonic clock, ms, set by host->spawn */
    void *plugin_data;
    /* ---- ABI 2 ---- */
    /* Text the plugin needs to find the run again after an agent restart
     * (a container id, a kernel's connection file name). NUL-terminated.
     * The host stores it with the run in its local database after start(),
     * exited(), adopt() and action(), and hands it back to adopt(). It is
     * not secret storage: the local database is readable by the agent's
     * user. */
    char plugin_state[FERRY_PLUGIN_STATE_MAX];
    /* ---- ABI 2, appended (check struct_size before writing it) ---- */
    /* One line the plugin may write to say why, when it knows better than
     * the host: start() why it could not start (its error details are its
     * own, not the host's), exited() why the run ended ("killed: out of
     * memory (limit 64Mi)" for a container whose cgroup counted the kill).
     * The host clears it before either call and reports it, when set, as
     * the reason. */
    char exit_reason[256];
};

struct ferry_health {
    uint32_t struct_size;
    int healthy;         /* 1 healthy, 0 not (yet) */
    char reason[256];    /* healthy 0: why not; healthy 1: a warning the status
                          * report shows while the run keeps running ("" for none) */
};

#define FERRY_METRICS_MAX 32
struct ferry_metric {
    char name[64];       /* Prometheus-style: [a-z_][a-z0-9_]* */
    double value;
};
struct ferry_metrics {
    uint32_t struct_size;
    uint32_t count;
    struct ferry_metric items[FERRY_METRICS_MAX];
};

/* ---- ABI 2: typed, labelled metrics ---- */

enum ferry_metric_type {
    FERRY_METRIC_GAUGE = 0,
    FERRY_METRIC_COUNTER = 1,   /* only goes up (resets when the run restarts) */
    FERRY_METRIC_HISTOGRAM = 2,
};

/* Bounds the host applies to each run's samples (docs/metrics.md); a sample
 * beyond them is refused by add() and counted as dropped. */
#define FERRY_METRIC_SAMPLES_MAX 64   /* per run and collection */
#define FERRY_METRIC_NAME_MAX 63      /* bytes; [a-zA-Z_:][a-zA-Z0-9_:]* */
#define FERRY_METRIC_LABELS_MAX 8     /* key/value pairs per sample */
#define FERRY_METRIC_LABEL_KEY_MAX 63 /* bytes; [a-zA-Z_][a-zA-Z0-9_]* */
#define FERRY_METRIC_LABEL_VALUE_MAX 127 /* bytes of UTF-8 */
#define FERRY_METRIC_BUCKETS_MAX 32

/* One sample, read by the host during add() only: every pointer may point
 * to the plugin's stack. */
struct ferry_sample {
    uint32_t struct_size;
    uint32_t type;                /* enum ferry_metric_type */
    const char *name;             /* "process_cpu_seconds_total" */
    const char *const *labels;    /* "key", "value", ..., NULL; or NULL */
    double value;                 /* gauge, counter; histogram: sum of observations */
    uint64_t count;               /* histogram: number of observations */
    uint32_t n_buckets;           /* histogram: upper bounds, increasing */
    const double *bucket_le;      /* (the +Inf bucket is count) */
    const uint64_t *bucket_count; /* cumulative: observations <= bucket_le[i] */
};

/* Where metrics2() puts its samples; owned by the host. */
struct ferry_metric_sink {
    uint32_t struct_size;
    void *ctx;
    /* Copy one sample (its struct_size at least sizeof(struct ferry_sample)
     * of ABI 2). 0, FERRY_E_LIMIT (codes from <ferry/ferry.h>) when the run's bound is reached or
     * the sample exceeds a bound, FERRY_E_INVALID when it is malformed (a
     * bad name, buckets not increasing); a refused sample is counted as
     * dropped and the plugin may go on adding others. */
    int (*add)(struct ferry_metric_sink *sink, const struct ferry_sample *s);
};

/* ---- ABI 2: actions ---- */

#define FERRY_REPLY_MAX (256u << 10)

/* The answer to an action; owned by the host. */
struct ferry_reply {
    uint32_t struct_size;
    void *ctx;
    /* Copy json (len bytes, one JSON text) as the reply; a later call
     * replaces an earlier one. FERRY_E_LIMIT when len > max_bytes,
     * FERRY_E_INVALID when it is not JSON. */
    int (*set)(struct ferry_reply *reply, const char *json, size_t len);
    size_t max_bytes;
};

/* Services the agent offers to plugins. Functions marked [loop] may only be
 * called from start() and stop(); the others from any call. */
struct ferry_host {
    uint32_t magic;       /* FERRY_HOST_MAGIC */
    uint32_t struct_size;
    uint32_t abi;         /* the ABI the plugin declared (1 or 2), not the host's newest */
    void *ctx;            /* pass back as the first argument */

    void (*log)(void *ctx, int level, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 3, 4)))
#endif
        ;
    /* [loop] Start argv (argv[0] is resolved against cwd when relative) in
     * cwd with exactly env ("K=V", NULL-terminated), in its own session,
     * stdout and stderr to the run's size-capped log files. Sets run->pid
     * and run->started_ms. The host watches the process from then on. */
    int (*spawn)(void *ctx, struct ferry_run *run, const char *const *argv,
                 const char *const *env, const char *cwd);
    /* Send sig to the run's process group. */
    int (*signal)(void *ctx, struct ferry_run *run, int sig);
    /* 1 while the run's main process lives, else 0. */
    int (*alive)(void *ctx, const struct ferry_run *run);
    /* GET http://127.0.0.1:port/path; *status gets the HTTP status.
     * Blocking, at most timeout_ms. */
    int (*http_get)(void *ctx, int port, const char *path, int timeout_ms, int *status);
    /* Run argv in cwd with env, wait at most timeout_ms; *exit_status gets
     * the exit code (or 128+signal). Blocking. */
    int (*run_command)(void *ctx, const char *const *argv, const char *const *env,
                       const char *cwd, int timeout_ms, int *exit_status);
};

struct ferry_plugin {
    uint32_t magic;       /* FERRY_PLUGIN_MAGIC, checked first */
    uint32_t struct_size; /* sizeof(struct ferry_plugin) the plugin was built with */
    uint32_t abi;         /* FERRY_PLUGIN_ABI */
    const char *name;     /* "exec" */
    const char *runtimes; /* space-separated manifest runtimes it serves: "exec" */
    int (*init)(void **state, const struct ferry_host *host);
    /* Start w; fill run (via host->spawn). Called on the agent's loop. */
    int (*start)(void *state, const struct ferry_workload *w, struct ferry_run *run);
    /* Ask the run to stop (e.g. SIGTERM); the host escalates to SIGKILL
     * after timeout_ms. Free run->plugin_data. */
    int (*stop)(void *state, struct ferry_run *run, int timeout_ms);
    /* One health probe. May block (called off the loop, never concurrently
     * for the same run). */
    int (*health)(void *state, const struct ferry_workload *w, struct ferry_run *run,
                  struct ferry_health *out);
    /* The plugin's own metrics for a run (may be none). ABI 1: required;
     * ABI 2: optional, read only when metrics2 is NULL. Untyped values
     * are reported as gauges without labels. */
    int (*metrics)(void *state, struct ferry_run *run, struct ferry_metrics *out);
    void (*fini)(void *state);
    /* ---- ABI 2 (a plugin declaring abi 2 must have all of these fields;
     * each may be NULL, meaning "nothing to do" or "not supported") ---- */
    /* The run's main process ended with status (its exit code, or
     * 128+signal; -1 when the host cannot know, for a process it adopted
     * after an agent restart and so did not start itself). Called once per
     * exit, before any restart, so a plugin can clean up (`runc delete`).
     * The run is not restarted until it returns: keep it short. It may be
     * called on the agent's loop or off it. */
    int (*exited)(void *state, struct ferry_run *run, int status);
    /* After an agent restart, for a run whose process still lives: run has
     * pid, port and the plugin_state the plugin last left; plugin_data is
     * NULL. Rebuild whatever plugin_data held. Called on the loop (must
     * not block). A negative return makes the host restart the run. */
    int (*adopt)(void *state, const struct ferry_workload *w, struct ferry_run *run);
    /* A request addressed to one running workload: verb ("logs", ...) and
     * its arguments as a JSON object. Answer through reply->set. Returns 0,
     * -ENOTSUP for a verb it does not know, or another negative code (the
     * reply, if set, may explain). May block: called off the loop. */
    int (*action)(void *state, struct ferry_run *run, const char *verb, const char *request_json,
                  struct ferry_reply *reply);
    /* The run's metrics, typed and labelled, each through sink->add. May
     * block briefly (called off the loop every --metrics-interval).
     *
     * health(), metrics2() and action() run on the host's thread pool and
     * may overlap one another for the same run: a plugin guards what they
     * share in plugin_data. */
    int (*metrics2)(void *state, struct ferry_run *run, struct ferry_metric_sink *sink);
};

/* The only symbol a plugin exports. */
typedef const struct ferry_plugin *(*ferry_plugin_entry_fn)(void);
const struct ferry_plugin *ferry_plugin_entry(void);

#ifdef __cplusplus
}
#endif
#endif
