/* A run's process: the host table plugins call (spawn, signal, alive, HTTP
 * and command probes), watching the process end, and the health probes.
 * The lifecycle decisions are not made here: exits and probe results go to
 * the supervisor through sup_feed (runs.c). */
#include "agent_int.h"
#include "alog.h"
#include "confine.h"
#include "error.h"
#include "probe.h"
#include "procinfo.h"
#include "runlog.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FIRST_PROBE_MS 50

/* ---- the process ends ---- */

/* The one place a run's own child is seen to end (plugins' exited hook
 * goes here, before the supervisor decides about a restart). */
static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
    struct run *r = p->data;
    char detail[256];
    if (sig)
        snprintf(detail, sizeof detail, "killed by signal %d", sig);
    else
        snprintf(detail, sizeof detail, "exited with status %lld", (long long)status);
    /* A notebook run's runner ends its stderr with the failing cell's
     * error (plugins/notebook/nbrun.py): that is the reason to report. */
    char why[160];
    if (status != 0 && !sig && r->lc.job.job && r->wl.kind && strcmp(r->wl.kind, "notebook") == 0 &&
        runlog_last_line(r->dir, "stderr.log", why, sizeof why) == 0)
        snprintf(detail, sizeof detail, "%s", why);
    /* A run with resources: its cgroup goes, and an out-of-memory kill is
     * named in the detail. */
    r->proc_active = 0;
    close_run_handle(r, (uv_handle_t *)p);
    /* ABI 2: the plugin hears of the exit (shell-style status for a
     * signal) first, so that what it made below the run's cgroup (a
     * container's) is gone before the host removes that cgroup, and it may
     * name the reason. */
    r->frun.exit_reason[0] = '\0';
    if (!r->closing)
        pluginhost_exited(r->plugin, &r->frun, sig ? 128 + sig : (int)status);
    cg_run_exited(r->a->cfg->name, r->name, r->version, status, sig, detail, sizeof detail);
    if (r->frun.exit_reason[0])
        snprintf(detail, sizeof detail, "%s", r->frun.exit_reason);
    if (!r->closing) {
        localdb_run_state_put(&r->a->db, r->name, r->version, r->frun.plugin_state);
        sup_feed(r, SUP_EV_EXITED, detail, sig ? -1 : (int)status);
    }
}

/* An adopted process ended: pidfd gives no exit status. */
static void on_pidfd(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    struct run *r = p->data;
    r->poll_active = 0;
    close_run_handle(r, (uv_handle_t *)p);
    close(r->pidfd);
    r->pidfd = -1;
    char detail[256] = "exited (adopted process; status unknown)";
    r->frun.exit_reason[0] = '\0';
    if (!r->closing)
        pluginhost_exited(r->plugin, &r->frun, -1); /* -1: the status is unknown */
    cg_run_exited(r->a->cfg->name, r->name, r->version, -1, 0, detail, sizeof detail);
    if (r->frun.exit_reason[0])
        snprintf(detail, sizeof detail, "%s", r->frun.exit_reason);
    if (!r->closing) {
        localdb_run_state_put(&r->a->db, r->name, r->version, r->frun.plugin_state);
        sup_feed(r, SUP_EV_EXITED, detail, -1);
    }
}

int watch_pidfd(struct run *r)
{
    int fd = (int)syscall(SYS_pidfd_open, r->frun.pid, 0);
    if (fd < 0)
        return -errno;
    r->pidfd = fd;
    uv_poll_init(&r->a->loop, &r->pidfd_poll, fd);
    r->pidfd_poll.data = r;
    uv_poll_start(&r->pidfd_poll, UV_READABLE, on_pidfd);
    r->poll_active = 1;
    r->open_handles++;
    return 0;
}

/* Signal a run's process group, but only while we know the process is the
 * one we started: pids are recycled quickly (pid_max may be 32768), and a
 * signal to a stale pid's group would hit a stranger. Our own child cannot
 * be recycled before libuv reaps it and calls on_exit_cb; an adopted one is
 * checked by its start time. */
int run_signal(struct run *r, int sig)
{
    int pid = r->frun.pid;
    if (pid <= 0)
        return -ESRCH;
    if (!r->proc_active &&
        !(r->poll_active && r->proc_start && proc_start_time(pid) == r->proc_start))
        return -ESRCH;
    if (kill(-pid, sig) < 0 && kill(pid, sig) < 0)
        return -errno;
    return 0;
}

/* ---- starting: the one place a plugin's start is called ---- */

int spawn_now(struct run *r)
{
    r->verified = 0;
    int rc = 0;
    if (r->frun.port <= 0) {
        int port = free_port();
        if (port < 0)
            rc = port;
        else
            r->frun.port = port;
    }
    r->frun.exit_reason[0] = '\0';
    if (rc == 0)
        rc = r->plugin->p.start(r->plugin->state, &r->wl, &r->frun);
    if (rc == 0) /* ABI 2: what start() kept in plugin_state outlives the agent */
        localdb_run_state_put(&r->a->db, r->name, r->version, r->frun.plugin_state);
    if (rc < 0) {
        char detail[300];
        /* A plugin's own detail (its errors are not the host's) first. */
        snprintf(detail, sizeof detail, "could not start: %s",
                 r->frun.exit_reason[0] ? r->frun.exit_reason : err_message(rc));
        sup_feed(r, SUP_EV_EXITED, detail, -1);
        return rc;
    }
    r->probe_delay_ms = 0;
    schedule_probe(r);
    return 0;
}

/* ---- health probes, on the thread pool ---- */

struct probe_ctx {
    struct run *r;
    struct ferry_health h;
};

static void probe_work(uv_work_t *req)
{
    struct probe_ctx *c = req->data;
    struct run *r = c->r;
    /* Reads only what stays fixed while work_pending is set. */
    int rc = r->plugin->p.health(r->plugin->state, &r->wl, &r->frun, &c->h);
    if (rc < 0) {
        c->h.healthy = 0;
        snprintf(c->h.reason, sizeof c->h.reason, "probe failed: %s", ferry_strerror(rc));
    }
}

static int probing(const struct run *r)
{
    enum sup_state s = r->sup.state;
    return !r->closing && !r->lc.job.job &&
           (s == SUP_STARTING || s == SUP_RUNNING || s == SUP_UNHEALTHY);
}

static void probe_after(uv_work_t *req, int status)
{
    struct probe_ctx *c = req->data;
    struct run *r = c->r;
    r->work_pending--;
    r->probe_busy = 0;
    if (r->closing) {
        run_release(r);
    } else if (status == 0) {
        alog(FERRY_LOG_DEBUG, "%s@%s: probe: %s%s%s", r->name, r->version,
             c->h.healthy ? "healthy" : "unhealthy", c->h.reason[0] ? ": " : "", c->h.reason);
        sup_feed(r, c->h.healthy ? SUP_EV_HEALTHY : SUP_EV_UNHEALTHY, c->h.reason, 0);
        if (probing(r))
            schedule_probe(r);
    }
    free(c);
    free(req);
}

static void on_probe_timer(uv_timer_t *t)
{
    struct run *r = t->data;
    if (r->probe_busy || !r->plugin || !probing(r))
        return;
    uv_work_t *w = malloc(sizeof *w);
    struct probe_ctx *c = calloc(1, sizeof *c);
    if (!w || !c) {
        free(w);
        free(c);
        return;
    }
    c->r = r;
    c->h.struct_size = sizeof c->h;
    w->data = c;
    r->work_pending++;
    r->probe_busy = 1;
    if (uv_queue_work(&r->a->loop, w, probe_work, probe_after) != 0) {
        r->work_pending--;
        r->probe_busy = 0;
        free(c);
        free(w);
    }
}

void schedule_probe(struct run *r)
{
    if (r->lc.job.job)
        return; /* a job runs to its end: its exit says how it went */
    uint32_t interval = r->wl.health_interval_ms ? r->wl.health_interval_ms : 1000;
    uint32_t delay = r->probe_delay_ms ? r->probe_delay_ms : FIRST_PROBE_MS;
    int alive_check = !r->wl.health_http_path && !r->wl.health_command;
    if (alive_check && r->sup.state == SUP_STARTING && r->frun.started_ms) {
        /* An alive-for-settle check cannot pass earlier: probe right then. */
        uint64_t ready = r->frun.started_ms + r->wl.health_settle_ms, now = mono_ms();
        if (ready + 5 > now && ready + 5 - now > delay)
            delay = (uint32_t)(ready + 5 - now);
    }
    /* Quick first probes so a healthy start is seen at once, then the
     * configured interval. */
    r->probe_delay_ms = delay * 2 > interval ? interval : delay * 2;
    r->probe_timer.data = r;
    uv_timer_start(&r->probe_timer, on_probe_timer, delay, 0);
}

/* ---- the host table plugins get ---- */

static void host_log(void *ctx, int level, const char *fmt, ...)
{
    (void)ctx;
    va_list ap;
    va_start(ap, fmt);
    alogv(level, fmt, ap);
    va_end(ap);
}

/* Plugins hand back the ferry_run we gave them, which is always the frun
 * member of a run: recover the run without walking the loop's list (the
 * probes call in from pool threads). */
static struct run *run_of(const struct ferry_run *fr)
{
    return (struct run *)((char *)fr - offsetof(struct run, frun));
}

static int host_spawn(void *ctx, struct ferry_run *fr, const char *const *argv,
                      const char *const *env, const char *cwd)
{
    struct agent *a = ctx;
    struct run *r = run_of(fr);
    if (!argv || !argv[0])
        return -EINVAL;
    char exe[4300];
    if (argv[0][0] != '/' && strchr(argv[0], '/'))
        snprintf(exe, sizeof exe, "%s/%s", cwd, argv[0]);
    else
        snprintf(exe, sizeof exe, "%s", argv[0]);
    int out = runlog_open(r->dir, "stdout.log"), err = runlog_open(r->dir, "stderr.log");
    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = out >= 0 ? UV_INHERIT_FD : UV_IGNORE;
    stdio[1].data.fd = out;
    stdio[2].flags = err >= 0 ? UV_INHERIT_FD : UV_IGNORE;
    stdio[2].data.fd = err;
    uv_process_options_t o;
    memset(&o, 0, sizeof o);
    o.file = exe;
    o.args = (char **)argv;
    o.env = (char **)env;
    o.cwd = cwd;
    o.exit_cb = on_exit_cb;
    /* Its own session: the agent's terminal, signals and death are not
     * the workload's. */
    o.flags = UV_PROCESS_DETACHED;
    o.stdio_count = 3;
    o.stdio = stdio;
    /* resources or run.user: spawned through ferry-spawn (confine.h). */
    struct confine_plan plan;
    int rc = confine_prepare(&plan, r->manifest ? r->manifest->spec : NULL, a->cfg->name,
                             r->name, r->version, exe, argv, cwd);
    if (rc < 0) {
        if (out >= 0)
            close(out);
        if (err >= 0)
            close(err);
        return rc;
    }
    if (plan.file) {
        o.file = plan.file;
        o.args = plan.argv;
    }
    char *saved0 = (char *)argv[0];
    ((char **)argv)[0] = exe;
    r->proc.data = r;
    rc = uv_spawn(&a->loop, &r->proc, &o);
    ((char **)argv)[0] = saved0;
    confine_done(&plan, rc);
    if (out >= 0)
        close(out);
    if (err >= 0)
        close(err);
    r->open_handles++;
    if (rc < 0) {
        /* libuv requires closing a handle whose spawn failed. */
        close_run_handle(r, (uv_handle_t *)&r->proc);
        return err_set(rc, "%s: %s", exe, uv_strerror(rc));
    }
    r->proc_active = 1;
    fr->pid = r->proc.pid;
    fr->started_ms = mono_ms();
    r->proc_start = proc_start_time(fr->pid);
    persist_run(r);
    return 0;
}

static int host_signal(void *ctx, struct ferry_run *fr, int sig)
{
    (void)ctx;
    return run_signal(run_of(fr), sig);
}

static int host_alive(void *ctx, const struct ferry_run *fr)
{
    (void)ctx;
    /* The same process, not just the same pid: proc_start is fixed while a
     * probe runs. A zombie reads as not alive. */
    const struct run *r = run_of(fr);
    return fr->pid > 0 && r->proc_start && proc_start_time(fr->pid) == r->proc_start;
}

static int host_http_get(void *ctx, int port, const char *path, int timeout_ms, int *status)
{
    (void)ctx;
    return probe_http_get(port, path, timeout_ms, status);
}

static int host_run_command(void *ctx, const char *const *argv, const char *const *env,
                            const char *cwd, int timeout_ms, int *exit_status)
{
    (void)ctx;
    return probe_run_command(argv, env, cwd, timeout_ms, exit_status);
}

void host_table_init(struct agent *a)
{
    a->host = (struct ferry_host){
        .magic = FERRY_HOST_MAGIC,
        .struct_size = sizeof(struct ferry_host),
        .abi = FERRY_PLUGIN_ABI,
        .ctx = a,
        .log = host_log,
        .spawn = host_spawn,
        .signal = host_signal,
        .alive = host_alive,
        .http_get = host_http_get,
        .run_command = host_run_command,
    };
}
