/* The notebook plugin (runtime notebook, kind notebook): the artifact is a
 * Python environment a data scientist works in. Its run is a small holder
 * process that proves the interpreter imports ipykernel and keeps the
 * workload "running"; Jupyter kernels are started, listed and stopped
 * beside it through actions (kernel.c). Scheduled notebook runs (runs.c)
 * use the same entry. docs/notebooks.md. */
#include <ferry/ferry.h>
#include <ferry/plugin.h>

#include "notebook.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NEED(type, last) (offsetof(type, last) + sizeof(((type *)0)->last))

const char *nb_python(void)
{
    const char *p = getenv("FERRY_PYTHON");
    return p && *p ? p : "/usr/bin/python3";
}

static int nb_init(void **state, const struct ferry_host *host)
{
    if (!host || host->magic != FERRY_HOST_MAGIC || host->abi != FERRY_PLUGIN_ABI ||
        host->struct_size < NEED(struct ferry_host, run_command) || !host->spawn ||
        !host->signal || !host->alive || !host->log)
        return -EINVAL;
    struct nb_state *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->host = host;
    if (kernel_init(s) < 0) {
        free(s);
        return -ENOMEM;
    }
    *state = s;
    return 0;
}

static void nb_fini(void *state)
{
    struct nb_state *s = state;
    if (!s)
        return;
    kernel_fini(s);
    nbrun_fini();
    free(s);
}

/* The holder: fails at once when the environment has no ipykernel, so a
 * broken environment shows as a failed deploy rather than as a kernel that
 * never starts; otherwise it waits for a signal. */
static int nb_start(void *state, const struct ferry_workload *w, struct ferry_run *run)
{
    struct nb_state *s = state;
    if (nbrun_wanted(w))
        return nbrun_start(s, w, run);
    /* notebook.kernel: only Debian's ipykernel ("python3", the default)
     * for now; another name fails the start with the reason. */
    json_t *kj = w->kind_json ? json_loads(w->kind_json, 0, NULL) : NULL;
    const char *kernel = json_string_value(json_object_get(kj, "kernel"));
    if (kernel && strcmp(kernel, "python3") != 0) {
        s->host->log(s->host->ctx, FERRY_LOG_ERROR,
                     "notebook %s: kernel '%s' is not available (only python3)", w->name, kernel);
        json_decref(kj);
        return -EINVAL;
    }
    json_decref(kj);
    const char *py = nb_python();
    const char *argv[] = {py, "-c", "import ipykernel, signal\nsignal.pause()", NULL};
    /* PATH, then run.env and notebook.env (the agent joins them). */
    size_t n = 0;
    while (w->env && w->env[n])
        n++;
    const char **env = calloc(n + 2, sizeof *env);
    if (!env)
        return -ENOMEM;
    env[0] = "PATH=/usr/local/bin:/usr/bin:/bin";
    for (size_t i = 0; i < n; i++)
        env[1 + i] = w->env[i];
    int rc = s->host->spawn(s->host->ctx, run, argv, env, w->dir);
    free(env);
    if (rc < 0)
        s->host->log(s->host->ctx, FERRY_LOG_ERROR, "notebook %s: cannot start %s: %s", w->name,
                     py, strerror(-rc));
    else
        kernel_attach(s, w, run);
    return rc;
}

static int nb_stop(void *state, struct ferry_run *run, int timeout_ms)
{
    (void)timeout_ms;
    struct nb_state *s = state;
    kernel_stop_all(s, run);
    return s->host->signal(s->host->ctx, run, SIGTERM);
}

static int nb_health(void *state, const struct ferry_workload *w, struct ferry_run *run,
                     struct ferry_health *out)
{
    (void)w;
    struct nb_state *s = state;
    out->healthy = s->host->alive(s->host->ctx, run);
    snprintf(out->reason, sizeof out->reason, "%s",
             out->healthy ? "" : "the environment's holder process is not running");
    return 0;
}

/* After an agent restart the holder still lives: its kernels are taken
 * back from the run's index (kernstate.c). A notebook run (a job) keeps
 * nothing in plugin_data. */
static int nb_adopt(void *state, const struct ferry_workload *w, struct ferry_run *run)
{
    if (nbrun_wanted(w))
        return 0;
    return kernel_adopt(state, w, run);
}

static int nb_metrics2(void *state, struct ferry_run *run, struct ferry_metric_sink *sink)
{
    return kernel_metrics(state, run, sink);
}

static int nb_action(void *state, struct ferry_run *run, const char *verb, const char *request_json,
                     struct ferry_reply *reply)
{
    if (strncmp(verb, "kernel-", 7) == 0)
        return kernel_action(state, run, verb + 7, request_json, reply);
    if (strcmp(verb, "notebook-run") == 0)
        return nbrun_action(state, request_json, reply);
    return -ENOTSUP;
}

static int nb_exited(void *state, struct ferry_run *run, int status)
{
    (void)state;
    nbrun_exited(run, status);
    return 0;
}

static const struct ferry_plugin plugin = {
    .magic = FERRY_PLUGIN_MAGIC,
    .struct_size = sizeof(struct ferry_plugin),
    .abi = FERRY_PLUGIN_ABI,
    .name = "notebook",
    .runtimes = "notebook",
    .init = nb_init,
    .start = nb_start,
    .stop = nb_stop,
    .health = nb_health,
    .metrics = NULL,
    .fini = nb_fini,
    .exited = nb_exited,
    .adopt = nb_adopt,
    .action = nb_action,
    .metrics2 = nb_metrics2,
};

__attribute__((visibility("default"))) const struct ferry_plugin *ferry_plugin_entry(void)
{
    return &plugin;
}
