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
#define FERRY_PLUGIN_ABI 1u

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
};

/* One running instance. Owned by the host; the plugin may keep private data
 * in plugin_data and must free it in stop(). */
struct ferry_run {
    uint32_t struct_size;
    int pid;             /* main process; set by host->spawn */
    int port;            /* allocated by the host for this run, exported as PORT */
    uint64_t started_ms; /* monotonic clock, ms, set by host->spawn */
    void *plugin_data;
};

struct ferry_health {
    uint32_t struct_size;
    int healthy;         /* 1 healthy, 0 not (yet) */
    char reason[256];    /* why not, for the status report */
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

/* Services the agent offers to plugins. Functions marked [loop] may only be
 * called from start() and stop(); the others from any call. */
struct ferry_host {
    uint32_t magic;       /* FERRY_HOST_MAGIC */
    uint32_t struct_size;
    uint32_t abi;         /* FERRY_PLUGIN_ABI */
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
    /* The plugin's own metrics for a run (may be none). */
    int (*metrics)(void *state, struct ferry_run *run, struct ferry_metrics *out);
    void (*fini)(void *state);
};

/* The only symbol a plugin exports. */
typedef const struct ferry_plugin *(*ferry_plugin_entry_fn)(void);
const struct ferry_plugin *ferry_plugin_entry(void);

#ifdef __cplusplus
}
#endif
#endif
