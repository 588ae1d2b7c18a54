/* Scheduled and on-demand notebook runs (docs/notebooks.md, "Scheduled
 * runs" and "Runs in the registry"). A notebook artifact that names its
 * .ipynb (notebook.notebook) is a job: the agent supervises it like
 * run.mode: job, on notebook.schedule, and each start here spawns nbrun.py
 * (shipped beside this plugin) to execute the notebook once with nbclient.
 * The runner's exit status is the run's result and its last stderr line
 * the failing cell's error, which the agent reports as the reason.
 *
 * `ferry run` reaches the same workload through the action notebook-run
 * (also between its scheduled runs): the run starts here at once, in its
 * own session, with the request's parameters over notebook.parameters, and
 * a watcher thread of this plugin waits for it.
 *
 * Every run gets an id (16 hex) and writes .ferry/runs/STAMP-ID.ipynb and
 * STAMP-ID.json in the workload's folder; the record is written here as
 * "running" before the runner starts, so a run shows from its first
 * moment, and the agent reports it to the registry (agent/runupload.c). */
#include <ferry/ferry.h>
#include <ferry/plugin.h>

#include "notebook.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUNNER "nbrun.py"
#define ONDEMAND_MAX 8  /* on-demand runs in progress per plugin */
#define TRACKED_MAX 64  /* job runs whose record exited() may close */

/* What one run needs, whoever starts it. */
struct run_plan {
    char id[17];
    char out[PATH_MAX + 96];  /* STAMP-ID.ipynb */
    char record[PATH_MAX + 96]; /* STAMP-ID.json */
    char log[PATH_MAX + 96];  /* STAMP-ID.log: an on-demand run's output (a job's is the host's) */
    char runner[PATH_MAX];
    char timeout[32];
    char homev[PATH_MAX + 64], jrt[PATH_MAX + 64];
    char *params;             /* JSON object */
    const char *argv[15];     /* NULL-terminated */
    const char **env;
};

/* On-demand runs in progress, and the record each job run writes. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int ondemand, stopping;
    struct {
        const struct ferry_run *run;
        char record[PATH_MAX + 96];
    } tracked[TRACKED_MAX];
} runs = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, {{0}}};

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

/* A parameter name nbrun.py can assign: an ASCII Python identifier. */
static bool param_name_ok(const char *k)
{
    if (!k || !(isalpha((unsigned char)*k) || *k == '_'))
        return false;
    for (const char *p = k; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_'))
            return false;
    return strlen(k) <= 64;
}

/* Write text to path through a temporary file and a rename, so a reader
 * (the agent's reporter) never sees half of it. */
static int write_atomic(const char *path, const char *text)
{
    char tmp[PATH_MAX + 128];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "we");
    if (!f)
        return -errno;
    int ok = fputs(text, f) >= 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) < 0) {
        unlink(tmp);
        return -EIO;
    }
    return 0;
}

/* The record of a run that has just begun. */
static int record_running(const struct run_plan *p, uint64_t started_ms)
{
    json_t *params = json_loads(p->params, 0, NULL);
    json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:s, s:o}", "id", p->id, "status", "running",
                          "started_ms", (json_int_t)started_ms, "duration_ms", (json_int_t)0,
                          "error", "", "parameters", params ? params : json_object());
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    int rc = text ? write_atomic(p->record, text) : -ENOMEM;
    free(text);
    return rc;
}

/* A record still "running" after its runner ended (killed, or it died
 * before it could write its own) ends failed with why. */
static void record_close(const char *record, int status)
{
    json_error_t jerr;
    json_t *j = json_load_file(record, 0, &jerr);
    const char *st = json_string_value(json_object_get(j, "status"));
    if (st && strcmp(st, "running") == 0) {
        char why[128];
        if (status >= 128)
            snprintf(why, sizeof why, "the run was ended by signal %d", status - 128);
        else if (status >= 0)
            snprintf(why, sizeof why, "the runner exited with status %d before it finished",
                     status);
        else
            snprintf(why, sizeof why, "the runner ended before it finished");
        struct timeval tv;
        gettimeofday(&tv, NULL);
        uint64_t now = (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
        json_int_t started = json_integer_value(json_object_get(j, "started_ms"));
        json_object_set_new(j, "status", json_string("failed"));
        json_object_set_new(j, "error", json_string(why));
        json_object_set_new(j, "duration_ms",
                            json_integer(started > 0 && now > (uint64_t)started
                                             ? (json_int_t)(now - (uint64_t)started)
                                             : 0));
        char *text = json_dumps(j, JSON_COMPACT);
        if (text)
            write_atomic(record, text);
        free(text);
    }
    json_decref(j);
}

/* Paths, id, argv and env of one run of the notebook section sec in dir;
 * params (a JSON object) already merged. The record is written "running". */
static int plan_run(struct run_plan *p, const char *dir, const json_t *sec, const char *params,
                    const char *const *wenv)
{
    memset(p, 0, sizeof *p);
    int rc = runner_path(p->runner, sizeof p->runner);
    if (rc < 0)
        return rc;
    const char *nb = json_string_value(json_object_get(sec, "notebook"));
    const char *kernel = json_string_value(json_object_get(sec, "kernel"));
    if (!nb || !*nb)
        return -EINVAL;
    if (!(p->params = strdup(params)))
        return -ENOMEM;
    snprintf(p->timeout, sizeof p->timeout, "%.3f",
             timeout_seconds(json_object_get(sec, "timeout")));
    uint8_t idb[8];
    randombytes_buf(idb, sizeof idb);
    sodium_bin2hex(p->id, sizeof p->id, idb, sizeof idb);
    /* Named by its start (UTC, ms) and id: runs sort by name, and two that
     * start in the same millisecond do not share files. */
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char stamp[40], runsdir[PATH_MAX + 32], home[PATH_MAX + 32];
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm);
    snprintf(runsdir, sizeof runsdir, "%s/.ferry", dir); /* the host makes it only at spawn */
    mkdir(runsdir, 0755);
    snprintf(runsdir, sizeof runsdir, "%s/.ferry/runs", dir);
    mkdir(runsdir, 0755);
    int ms = (int)(tv.tv_usec / 1000);
    if (snprintf(p->out, sizeof p->out, "%s/%s.%03dZ-%s.ipynb", runsdir, stamp, ms, p->id) >=
            (int)sizeof p->out ||
        snprintf(p->record, sizeof p->record, "%s/%s.%03dZ-%s.json", runsdir, stamp, ms, p->id) >=
            (int)sizeof p->record ||
        snprintf(p->log, sizeof p->log, "%s/%s.%03dZ-%s.log", runsdir, stamp, ms, p->id) >=
            (int)sizeof p->log)
        return -ENAMETOOLONG;
    /* The kernel's runtime files (its connection file) stay in the run's
     * own folder, not in a home the agent's user may share. */
    snprintf(home, sizeof home, "%s/.ferry/home", dir);
    mkdir(home, 0700);
    snprintf(p->jrt, sizeof p->jrt, "JUPYTER_RUNTIME_DIR=%s", home);
    snprintf(p->homev, sizeof p->homev, "HOME=%s", home);
    size_t n = 0;
    while (wenv && wenv[n])
        n++;
    if (!(p->env = calloc(n + 4, sizeof *p->env)))
        return -ENOMEM;
    size_t e = 0;
    p->env[e++] = "PATH=/usr/local/bin:/usr/bin:/bin";
    p->env[e++] = p->homev;
    p->env[e++] = p->jrt;
    for (size_t i = 0; i < n; i++)
        p->env[e++] = wenv[i];
    const char *argv[] = {nb_python(), p->runner, "--notebook", nb, "--output", p->out,
                          "--parameters", p->params, "--timeout", p->timeout, "--id", p->id,
                          kernel && *kernel ? "--kernel" : NULL, kernel, NULL};
    _Static_assert(sizeof argv == sizeof p->argv, "the runner's argv and its NULL end");
    memcpy(p->argv, argv, sizeof argv);
    uint64_t now = (uint64_t)tv.tv_sec * 1000 + (uint64_t)ms;
    return record_running(p, now);
}

static void plan_free(struct run_plan *p)
{
    free(p->params);
    free(p->env);
    p->params = NULL;
    p->env = NULL;
}

int nbrun_start(struct nb_state *s, const struct ferry_workload *w, struct ferry_run *run)
{
    const struct ferry_host *h = s->host;
    json_t *k = json_loads(w->kind_json, 0, NULL);
    const json_t *pj = json_object_get(k, "parameters");
    char *params = pj ? json_dumps(pj, JSON_COMPACT) : strdup("{}");
    struct run_plan p;
    memset(&p, 0, sizeof p);
    /* argv points into k (the notebook's path, the kernel): k lives until
     * the spawn is done. */
    int rc = params ? plan_run(&p, w->dir, k, params, w->env) : -ENOMEM;
    free(params);
    if (rc < 0) {
        h->log(h->ctx, FERRY_LOG_ERROR, "notebook %s: cannot prepare its run: %s", w->name,
               strerror(-rc));
        plan_free(&p);
        json_decref(k);
        return rc;
    }
    rc = h->spawn(h->ctx, run, p.argv, p.env, w->dir);
    if (rc < 0) {
        h->log(h->ctx, FERRY_LOG_ERROR, "notebook %s: cannot start its run: %s", w->name,
               strerror(-rc));
        record_close(p.record, -1);
    } else {
        h->log(h->ctx, FERRY_LOG_INFO, "notebook %s@%s: run %s started (pid %d), writing %s",
               w->name, w->version, p.id, run->pid, p.out);
        /* exited() closes this record should the runner die without. */
        pthread_mutex_lock(&runs.lock);
        int slot = -1;
        for (int i = 0; i < TRACKED_MAX; i++)
            if (runs.tracked[i].run == run || (slot < 0 && !runs.tracked[i].run))
                slot = i;
        if (slot >= 0) {
            runs.tracked[slot].run = run;
            snprintf(runs.tracked[slot].record, sizeof runs.tracked[slot].record, "%s", p.record);
        }
        pthread_mutex_unlock(&runs.lock);
    }
    plan_free(&p);
    json_decref(k);
    return rc;
}

void nbrun_exited(struct ferry_run *run, int status)
{
    char record[PATH_MAX + 96] = "";
    pthread_mutex_lock(&runs.lock);
    for (int i = 0; i < TRACKED_MAX; i++)
        if (runs.tracked[i].run == run) {
            snprintf(record, sizeof record, "%s", runs.tracked[i].record);
            runs.tracked[i].run = NULL;
        }
    pthread_mutex_unlock(&runs.lock);
    if (record[0])
        record_close(record, status);
}

/* ---- on-demand runs (action notebook-run) ---- */

struct watch {
    pid_t pid;
    char record[PATH_MAX + 96];
};

/* Reaps one on-demand runner; on the plugin's fini it stops waiting (the
 * runner, in its own session, carries on and writes its own record). */
static void *watch_main(void *arg)
{
    struct watch *wt = arg;
    int status = -1;
    for (;;) {
        int st;
        pid_t r = waitpid(wt->pid, &st, WNOHANG);
        if (r == wt->pid) {
            status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
        if (r < 0 && errno != EINTR)
            break;
        pthread_mutex_lock(&runs.lock);
        int stop = runs.stopping;
        if (!stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 200 * 1000000L;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&runs.changed, &runs.lock, &ts);
            stop = runs.stopping;
        }
        pthread_mutex_unlock(&runs.lock);
        if (stop) {
            status = -2;
            break;
        }
    }
    if (status != -2)
        record_close(wt->record, status);
    pthread_mutex_lock(&runs.lock);
    runs.ondemand--;
    pthread_cond_broadcast(&runs.changed);
    pthread_mutex_unlock(&runs.lock);
    free(wt);
    return NULL;
}

static int answer(struct ferry_reply *reply, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    int rc = text ? reply->set(reply, text, strlen(text)) : -ENOMEM;
    free(text);
    return rc;
}

static int refuse(struct ferry_reply *reply, const char *msg)
{
    return answer(reply, json_pack("{s:s}", "error", msg));
}

/* Start the runner in its own session, its output to the run's log. */
static int spawn_detached(const struct run_plan *p, const char *dir, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, p->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_addchdir_np(&fa, dir);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    int rc = -posix_spawn(pid, p->argv[0], &fa, &at, (char *const *)p->argv,
                          (char *const *)p->env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    return rc;
}

int nbrun_action(struct nb_state *s, const char *request_json, struct ferry_reply *reply)
{
    const struct ferry_host *h = s->host;
    json_t *req = json_loads(request_json ? request_json : "{}", 0, NULL);
    json_t *w = json_object_get(req, "workload");
    const char *name = json_string_value(json_object_get(w, "name"));
    const char *version = json_string_value(json_object_get(w, "version"));
    const char *dir = json_string_value(json_object_get(w, "dir"));
    json_t *sec = json_object_get(w, "section");
    json_t *over = json_object_get(req, "parameters");
    char msg[512];
    int rc = 0;
    if (!name || !version || !dir || !json_is_object(sec)) {
        rc = refuse(reply, "notebook run: the request does not name its workload (agent too old?)");
        goto out;
    }
    if (!json_string_value(json_object_get(sec, "notebook"))) {
        snprintf(msg, sizeof msg,
                 "notebook run: %s@%s names no notebook to run (notebook.notebook)", name,
                 version);
        rc = refuse(reply, msg);
        goto out;
    }
    if (over && !json_is_object(over)) {
        rc = refuse(reply, "notebook run: parameters must be a JSON object");
        goto out;
    }
    /* notebook.parameters, then the request's over them. */
    json_t *merged = json_deep_copy(json_object_get(sec, "parameters"));
    if (!json_is_object(merged)) {
        json_decref(merged);
        merged = json_object();
    }
    const char *key;
    json_t *val;
    json_object_foreach(over, key, val)
    {
        if (!param_name_ok(key)) {
            snprintf(msg, sizeof msg,
                     "notebook run: parameter '%.64s' is not a Python identifier", key);
            json_decref(merged);
            rc = refuse(reply, msg);
            goto out;
        }
        json_object_set(merged, key, val);
    }
    char *params = json_dumps(merged, JSON_COMPACT);
    json_decref(merged);
    json_t *envj = json_object_get(w, "env");
    size_t ne = json_array_size(envj);
    const char **env = calloc(ne + 1, sizeof *env);
    for (size_t i = 0; env && i < ne; i++)
        env[i] = json_string_value(json_array_get(envj, i));
    /* A slot of ONDEMAND_MAX: handed to the watcher once the run started,
     * else given back below. */
    pthread_mutex_lock(&runs.lock);
    int slot = runs.ondemand < ONDEMAND_MAX;
    if (slot)
        runs.ondemand++;
    pthread_mutex_unlock(&runs.lock);
    struct run_plan p;
    memset(&p, 0, sizeof p);
    if (!slot) {
        snprintf(msg, sizeof msg, "notebook run: %d runs started with ferry run are in progress "
                                  "on this host already; try again when one ended", ONDEMAND_MAX);
        rc = refuse(reply, msg);
    } else if (!params || !env) {
        rc = -ENOMEM;
    } else if ((rc = plan_run(&p, dir, sec, params, env)) < 0) {
        snprintf(msg, sizeof msg, "notebook run: cannot prepare the run of %s@%s: %s", name,
                 version, strerror(-rc));
        rc = refuse(reply, msg);
    } else {
        struct watch *wt = calloc(1, sizeof *wt);
        pthread_t t;
        pid_t pid = 0;
        int src = wt ? spawn_detached(&p, dir, &pid) : -ENOMEM;
        if (src == 0) {
            wt->pid = pid;
            snprintf(wt->record, sizeof wt->record, "%s", p.record);
            if (pthread_create(&t, NULL, watch_main, wt) == 0) {
                pthread_detach(t);
                slot = 0; /* the watcher gives it back */
            } else {
                /* No watcher: the runner runs on and writes its record;
                 * only a runner killed outright would leave it "running". */
                free(wt);
            }
            h->log(h->ctx, FERRY_LOG_INFO, "notebook %s@%s: run %s started on request (pid %d), "
                   "writing %s", name, version, p.id, (int)pid, p.out);
            rc = answer(reply, json_pack("{s:s, s:s, s:s}", "id", p.id, "name", name,
                                         "version", version));
        } else {
            free(wt);
            record_close(p.record, -1);
            snprintf(msg, sizeof msg, "notebook run: cannot start %s: %s", nb_python(),
                     strerror(-src));
            rc = refuse(reply, msg);
        }
    }
    if (slot) {
        pthread_mutex_lock(&runs.lock);
        runs.ondemand--;
        pthread_mutex_unlock(&runs.lock);
    }
    plan_free(&p);
    free(params);
    free(env);
out:
    json_decref(req);
    return rc;
}

void nbrun_fini(void)
{
    pthread_mutex_lock(&runs.lock);
    runs.stopping = 1;
    pthread_cond_broadcast(&runs.changed);
    /* The watchers are in this object's code: they leave before it goes. */
    while (runs.ondemand > 0)
        pthread_cond_wait(&runs.changed, &runs.lock);
    runs.stopping = 0;
    pthread_mutex_unlock(&runs.lock);
}
