/* The exec plugin: a workload is a native process from the artifact tree.
 * The host spawns and supervises it; this only builds its environment and
 * judges its health. */
#include <ferry/ferry.h>
#include <ferry/plugin.h>

#include "healthcheck.h"
#include "procusage.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"
#define COMMAND_TIMEOUT_DEFAULT_MS 5000

/* How much of each host-owned struct this plugin reads or writes. */
#define NEED(type, last) (offsetof(type, last) + sizeof(((type *)0)->last))

struct exec_state {
    const struct ferry_host *host;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int exec_init(void **state, const struct ferry_host *host)
{
    if (!host || host->magic != FERRY_HOST_MAGIC || host->abi != FERRY_PLUGIN_ABI ||
        host->struct_size < NEED(struct ferry_host, run_command) || !host->spawn || !host->signal ||
        !host->alive || !host->http_get || !host->run_command || !host->log)
        return -EINVAL;
    struct exec_state *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->host = host;
    *state = s;
    return 0;
}

static void exec_fini(void *state) { free(state); }

static int has_key(const char *const *env, const char *key)
{
    size_t kl = strlen(key);
    for (const char *const *e = env; e && *e; e++)
        if (strncmp(*e, key, kl) == 0 && (*e)[kl] == '=')
            return 1;
    return 0;
}

struct envbuf {
    const char **v; /* NULL-terminated, points into w->env and the strings below */
    char port[32];
    char *workload, *version, *path, *home;
};

static void env_free(struct envbuf *b)
{
    free(b->v);
    free(b->workload);
    free(b->version);
    free(b->path);
    free(b->home);
}

static char *kv(const char *k, const char *v)
{
    size_t n = strlen(k) + strlen(v) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s=%s", k, v);
    return s;
}

/* The workload's env, then what the host decides: PORT and FERRY_* always
 * come from the host (the health check probes the port it allocated), while
 * PATH and HOME come from the agent only when the workload sets none. */
static int env_build(const struct ferry_host *h, const struct ferry_workload *w, const struct ferry_run *run,
                     struct envbuf *b)
{
    memset(b, 0, sizeof *b);
    size_t n = 0;
    for (const char *const *e = w->env; e && *e; e++)
        n++;
    b->v = calloc(n + 6, sizeof *b->v);
    if (!b->v)
        return -ENOMEM;
    size_t k = 0;
    for (const char *const *e = w->env; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq || eq == *e) {
            h->log(h->ctx, FERRY_LOG_ERROR, "exec %s: env entry \"%s\" is not K=V", w->name, *e);
            env_free(b);
            return -EINVAL;
        }
        size_t kl = (size_t)(eq - *e);
        if ((kl == 4 && strncmp(*e, "PORT", 4) == 0) || (kl == 14 && strncmp(*e, "FERRY_WORKLOAD", 14) == 0) ||
            (kl == 13 && strncmp(*e, "FERRY_VERSION", 13) == 0))
            continue;
        b->v[k++] = *e;
    }
    snprintf(b->port, sizeof b->port, "PORT=%d", run->port);
    b->v[k++] = b->port;
    if (!(b->workload = kv("FERRY_WORKLOAD", w->name ? w->name : "")) ||
        !(b->version = kv("FERRY_VERSION", w->version ? w->version : ""))) {
        env_free(b);
        return -ENOMEM;
    }
    b->v[k++] = b->workload;
    b->v[k++] = b->version;
    if (!has_key(w->env, "PATH")) {
        const char *p = getenv("PATH");
        if (!(b->path = kv("PATH", p && *p ? p : DEFAULT_PATH))) {
            env_free(b);
            return -ENOMEM;
        }
        b->v[k++] = b->path;
    }
    const char *home = getenv("HOME");
    if (home && !has_key(w->env, "HOME")) {
        if (!(b->home = kv("HOME", home))) {
            env_free(b);
            return -ENOMEM;
        }
        b->v[k++] = b->home;
    }
    b->v[k] = NULL;
    return 0;
}

static int workload_ok(const struct ferry_workload *w)
{
    return w && w->struct_size >= NEED(struct ferry_workload, health_interval_ms);
}

static int run_ok(const struct ferry_run *run)
{
    return run && run->struct_size >= NEED(struct ferry_run, plugin_data);
}

/* The value of NAME (len bytes) in env ("K=V" list), or NULL. */
static const char *env_lookup(const char *const *env, const char *name, size_t len)
{
    for (size_t i = 0; env && env[i]; i++)
        if (strncmp(env[i], name, len) == 0 && env[i][len] == '=')
            return env[i] + len + 1;
    return NULL;
}

/* Authors write ["./server", "--port", "$PORT"]: references to variables of
 * the workload's own environment ($NAME or ${NAME}) are replaced in each
 * argument, as a shell would, without running one. Anything else,
 * including a '$' before an unknown name, is left as written. */
static char *expand_arg(const char *arg, const char *const *env)
{
    size_t cap = strlen(arg) + 1, used = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    for (const char *p = arg; *p;) {
        const char *val = NULL;
        size_t skip = 1;
        if (*p == '$') {
            int braced = p[1] == '{';
            const char *n = p + 1 + braced, *e = n;
            while ((*e >= 'A' && *e <= 'Z') || (*e >= 'a' && *e <= 'z') ||
                   (*e >= '0' && *e <= '9' && e > n) || *e == '_')
                e++;
            if (e > n && (!braced || *e == '}')) {
                val = env_lookup(env, n, (size_t)(e - n));
                skip = (size_t)(e - p) + braced;
            }
        }
        const char *piece = val ? val : p;
        size_t plen = val ? strlen(val) : 1;
        if (used + plen + 1 > cap) {
            cap = (used + plen + 1) * 2;
            char *g = realloc(out, cap);
            if (!g) {
                free(out);
                return NULL;
            }
            out = g;
        }
        memcpy(out + used, piece, plen);
        used += plen;
        p += val ? skip : 1;
    }
    out[used] = '\0';
    return out;
}

static int exec_start(void *state, const struct ferry_workload *w, struct ferry_run *run)
{
    struct exec_state *s = state;
    if (!workload_ok(w) || !run_ok(run) || !w->command || !w->command[0] || !w->command[0][0])
        return -EINVAL;
    struct envbuf env;
    int rc = env_build(s->host, w, run, &env);
    if (rc < 0)
        return rc;
    size_t argc = 0;
    while (w->command[argc])
        argc++;
    char **argv = calloc(argc + 1, sizeof *argv);
    rc = argv ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < argc; i++)
        if (!(argv[i] = expand_arg(w->command[i], env.v)))
            rc = -ENOMEM;
    if (rc == 0)
        rc = s->host->spawn(s->host->ctx, run, (const char *const *)argv, env.v, w->dir);
    for (size_t i = 0; argv && i < argc; i++)
        free(argv[i]);
    free(argv);
    env_free(&env);
    return rc;
}

static int exec_stop(void *state, struct ferry_run *run, int timeout_ms)
{
    struct exec_state *s = state;
    if (!run_ok(run))
        return -EINVAL;
    (void)timeout_ms; /* the host escalates to SIGKILL itself */
    int rc = s->host->signal(s->host->ctx, run, SIGTERM);
    free(run->plugin_data);
    run->plugin_data = NULL;
    /* Already gone is what stop wants. */
    return rc == -ESRCH ? 0 : rc;
}

static int exec_health(void *state, const struct ferry_workload *w, struct ferry_run *run, struct ferry_health *out)
{
    struct exec_state *s = state;
    const struct ferry_host *h = s->host;
    if (!workload_ok(w) || !run_ok(run) || !out || out->struct_size < NEED(struct ferry_health, reason))
        return -EINVAL;
    if (health_alive_http(h, w, run, out))
        return 0;

    if (w->health_command && w->health_command[0]) {
        int timeout = w->health_interval_ms ? (int)w->health_interval_ms : COMMAND_TIMEOUT_DEFAULT_MS;
        /* The same environment as the workload, so the command finds PORT. */
        struct envbuf env;
        int rc = env_build(h, w, run, &env);
        if (rc < 0)
            return rc;
        int status = 0;
        rc = h->run_command(h->ctx, w->health_command, env.v, w->dir, timeout, &status);
        env_free(&env);
        health_command_result(rc, status, timeout, out);
        return 0;
    }

    uint64_t now = now_ms();
    if (now >= run->started_ms && now - run->started_ms >= w->health_settle_ms)
        out->healthy = 1;
    else
        snprintf(out->reason, sizeof out->reason, "settling");
    return 0;
}

static int exec_metrics2(void *state, struct ferry_run *run, struct ferry_metric_sink *sink)
{
    (void)state;
    if (!run_ok(run) || !sink || sink->struct_size < NEED(struct ferry_metric_sink, add) || !sink->add)
        return -EINVAL;
    return usage_report(run->pid, sink);
}

/* The ABI-1 entry stays for hosts that call it: no values there. */
static int exec_metrics(void *state, struct ferry_run *run, struct ferry_metrics *out)
{
    (void)state;
    (void)run;
    if (!out || out->struct_size < NEED(struct ferry_metrics, count))
        return -EINVAL;
    out->count = 0;
    return 0;
}

static const struct ferry_plugin exec_plugin = {
    .magic = FERRY_PLUGIN_MAGIC,
    .struct_size = sizeof(struct ferry_plugin),
    .abi = FERRY_PLUGIN_ABI,
    .name = "exec",
    .runtimes = "exec",
    .init = exec_init,
    .start = exec_start,
    .stop = exec_stop,
    .health = exec_health,
    .metrics = exec_metrics,
    .fini = exec_fini,
    .metrics2 = exec_metrics2,
};

__attribute__((visibility("default"))) const struct ferry_plugin *ferry_plugin_entry(void)
{
    return &exec_plugin;
}
