/* Scheduled and on-demand notebook runs (docs/notebooks.md, "Scheduled
 * runs"). A notebook artifact that names its .ipynb (notebook.notebook) is
 * a job: the agent supervises it like run.mode: job, on notebook.schedule,
 * and each start here spawns nbrun.py (shipped beside this plugin) to
 * execute the notebook once with nbclient. The runner's exit status is the
 * run's result and its last stderr line the failing cell's error, which
 * the agent reports as the reason. Executed notebooks are written to the
 * run's .ferry/runs/ folder, one STAMP.ipynb and STAMP.json per run. */
#include <ferry/ferry.h>
#include <ferry/plugin.h>

#include "notebook.h"

#include <dlfcn.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

#define RUNNER "nbrun.py"

/* The runner's absolute path: notebook/nbrun.py in the folder this very
 * object was loaded from (the runs' cwd is the artifact). */
static int runner_path(char *out, size_t outsz)
{
    Dl_info info;
    const char *slash = NULL;
    if (dladdr((void *)&runner_path, &info) && info.dli_fname)
        slash = strrchr(info.dli_fname, '/');
    if (!slash)
        return -ENOENT;
    char where[PATH_MAX + 32];
    snprintf(where, sizeof where, "%.*s/notebook/" RUNNER, (int)(slash - info.dli_fname),
             info.dli_fname);
    char real[PATH_MAX];
    if (!realpath(where, real))
        return -errno;
    if (strlen(real) >= outsz)
        return -ENAMETOOLONG;
    snprintf(out, outsz, "%s", real);
    return 0;
}

/* notebook.timeout as written in ferry.yaml (already checked by the
 * registry's schema): bare digits are seconds, else digits and ms|s|m|h. */
static double timeout_seconds(const json_t *t)
{
    if (json_is_integer(t))
        return (double)json_integer_value(t);
    const char *s = json_string_value(t);
    if (!s)
        return 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (!end || end == s)
        return 0;
    if (strcmp(end, "ms") == 0)
        return v / 1000;
    if (strcmp(end, "m") == 0)
        return v * 60;
    if (strcmp(end, "h") == 0)
        return v * 3600;
    return v;
}

bool nbrun_wanted(const struct ferry_workload *w)
{
    if (w->struct_size < offsetof(struct ferry_workload, kind_json) + sizeof w->kind_json ||
        !w->kind_json)
        return false;
    json_t *k = json_loads(w->kind_json, 0, NULL);
    const char *nb = json_string_value(json_object_get(k, "notebook"));
    bool yes = nb && *nb;
    json_decref(k);
    return yes;
}

int nbrun_start(struct nb_state *s, const struct ferry_workload *w, struct ferry_run *run)
{
    const struct ferry_host *h = s->host;
    char runner[PATH_MAX];
    int rc = runner_path(runner, sizeof runner);
    if (rc < 0) {
        h->log(h->ctx, FERRY_LOG_ERROR, "notebook %s: no %s beside the plugin: %s", w->name,
               RUNNER, strerror(-rc));
        return rc;
    }
    json_t *k = json_loads(w->kind_json, 0, NULL);
    const char *nb = json_string_value(json_object_get(k, "notebook"));
    const json_t *pj = json_object_get(k, "parameters");
    char *params = pj ? json_dumps(pj, JSON_COMPACT) : strdup("{}");
    const char *kernel = json_string_value(json_object_get(k, "kernel"));
    char timeout[32], out[PATH_MAX + 96], home[PATH_MAX + 32], jrt[PATH_MAX + 64];
    snprintf(timeout, sizeof timeout, "%.3f", timeout_seconds(json_object_get(k, "timeout")));
    /* One file per run, named by its start (UTC, ms): runs sort by name. */
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char stamp[40];
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm);
    snprintf(home, sizeof home, "%s/.ferry", w->dir); /* the host makes it only at spawn */
    mkdir(home, 0755);
    snprintf(home, sizeof home, "%s/.ferry/runs", w->dir);
    mkdir(home, 0755);
    snprintf(out, sizeof out, "%s/%s.%03dZ.ipynb", home, stamp, (int)(tv.tv_usec / 1000));
    /* The kernel's runtime files (its connection file) stay in the run's
     * own folder, not in a home the agent's user may share. */
    snprintf(home, sizeof home, "%s/.ferry/home", w->dir);
    mkdir(home, 0700);
    snprintf(jrt, sizeof jrt, "JUPYTER_RUNTIME_DIR=%s", home);
    char homev[PATH_MAX + 64];
    snprintf(homev, sizeof homev, "HOME=%s", home);
    size_t n = 0;
    while (w->env && w->env[n])
        n++;
    const char **env = calloc(n + 4, sizeof *env);
    if (!params || !nb || !env) {
        free(params);
        free(env);
        json_decref(k);
        return -ENOMEM;
    }
    size_t e = 0;
    env[e++] = "PATH=/usr/local/bin:/usr/bin:/bin";
    env[e++] = homev;
    env[e++] = jrt;
    for (size_t i = 0; i < n; i++)
        env[e++] = w->env[i];
    const char *argv[] = {nb_python(), runner, "--notebook", nb, "--output", out,
                          "--parameters", params, "--timeout", timeout,
                          kernel && *kernel ? "--kernel" : NULL, kernel, NULL};
    rc = h->spawn(h->ctx, run, argv, env, w->dir);
    if (rc < 0)
        h->log(h->ctx, FERRY_LOG_ERROR, "notebook %s: cannot start its run: %s", w->name,
               strerror(-rc));
    else
        h->log(h->ctx, FERRY_LOG_INFO, "notebook %s@%s: run started (pid %d), writing %s",
               w->name, w->version, run->pid, out);
    free(params);
    free(env);
    json_decref(k);
    return rc;
}
