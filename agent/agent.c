#include "agent.h"
#include "alog.h"
#include "artifact.h"
#include "clock.h"
#include "confine.h"
#include "error.h"
#include "fsutil.h"
#include "link.h"
#include "localdb.h"
#include "metrics.h"
#include "pluginhost.h"
#include "probe.h"
#include "procinfo.h"
#include "reconcile.h"
#include "record.h"
#include "supervisor.h"
#include "tree.h"
#include "workload.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define STOP_TIMEOUT_MS 5000
#define FIRST_PROBE_MS 50
#define MAINTENANCE_MS 2000
#define DEFAULT_LOG_CAP (1u << 20)

struct agent;

/* One version of one workload on this host. */
struct run {
    struct agent *a;
    struct run *next;
    char name[72], version[72];
    char dir[4096];
    uint64_t issued_ms;
    struct digest digest; /* of the manifest the signed record pins */
    int has_digest;

    char state[16];  /* reported: pending fetching verifying starting running ... */
    char reason[256];
    uint64_t since_ms;

    struct sup sup;
    int supervised;  /* sup drives this run (it was started or adopted) */
    int rollout;     /* started while another version of name runs */
    int rolled_back;
    int retired;     /* stopped on purpose: remove once stopped */
    int verified;    /* the tree was verified just now: the next spawn may go ahead */
    int unlisted;    /* its record left the desired state: kept, and said so */

    Ferry__Manifest *manifest; /* verified; its spec is the runtime spec */
    struct ferry_workload wl;
    struct ferry_run frun;
    uint64_t proc_start;
    const struct plugin_slot *plugin;

    uv_timer_t sup_timer, probe_timer;
    uv_process_t proc;
    uv_poll_t pidfd_poll;
    int pidfd;
    int proc_active, poll_active;
    uint32_t probe_delay_ms;
    int work_pending;    /* fetches, verifications and probes on the thread pool */
    int probe_busy;      /* one of them is a probe */
    int closing, open_handles;
};

struct agent {
    const struct agent_config *cfg;
    uv_loop_t loop;
    uv_signal_t sigterm, sigint;
    uv_timer_t maintenance;
    struct localdb db;
    struct key_secret host_key;
    struct plugin_set plugins;
    struct ferry_host host;
    struct link *link;
    struct metrics *metrics;
    struct run *runs;
    char workloads_dir[4096], cache_dir[4096];
    char last_refusal[512]; /* logged once, not at every poll */
    int stopping;
};

/* ---- small helpers ------------------------------------------------------ */

/* The supervisor's clock is the loop's, so a timer armed for time T never
 * fires while the supervisor still thinks it is before T. */
static uv_loop_t *clock_loop;
static uint64_t mono_ms(void)
{
    uv_update_time(clock_loop);
    return uv_now(clock_loop);
}

struct run;
static int run_signal(struct run *r, int sig);

/* ---- reporting ------------------------------------------------------------ */

static void fill_report(const struct run *r, Ferry__Wire__WorkloadReport *w)
{
    ferry__wire__workload_report__init(w);
    w->name = (char *)r->name;
    w->version = (char *)r->version;
    w->state = (char *)r->state;
    w->reason = (char *)r->reason;
    w->restarts = r->sup.restarts;
    w->since_ms = r->since_ms;
    w->pid = r->frun.pid;
    w->port = r->frun.port;
    w->address = (char *)(r->a->cfg->advertise ? r->a->cfg->advertise : "127.0.0.1");
    w->rss_bytes = r->frun.pid > 0 && (r->proc_active || r->poll_active) ? proc_rss(r->frun.pid)
                                                                         : 0;
}

static void publish_snapshot(struct agent *a)
{
    if (!a->link)
        return;
    size_t n = 0;
    for (struct run *r = a->runs; r; r = r->next)
        n++;
    Ferry__Wire__WorkloadReport *wv = calloc(n ? n : 1, sizeof *wv);
    Ferry__Wire__WorkloadReport **wp = calloc(n ? n : 1, sizeof *wp);
    if (!wv || !wp) {
        free(wv);
        free(wp);
        return;
    }
    size_t i = 0;
    for (struct run *r = a->runs; r; r = r->next, i++) {
        fill_report(r, &wv[i]);
        wp[i] = &wv[i];
    }
    Ferry__Wire__ReportBody body;
    ferry__wire__report_body__init(&body);
    body.host = (char *)a->cfg->name;
    body.workloads = wp;
    body.n_workloads = n;
    metrics_fill_body(a->metrics, &body);
    size_t len = ferry__wire__report_body__get_packed_size(&body);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf) {
        ferry__wire__report_body__pack(&body, buf);
        link_set_snapshot(a->link, buf, len);
    }
    metrics_body_done(&body);
    free(buf);
    free(wv);
    free(wp);
}

static void persist_run(struct run *r)
{
    struct localdb_run lr;
    memset(&lr, 0, sizeof lr);
    snprintf(lr.name, sizeof lr.name, "%s", r->name);
    snprintf(lr.version, sizeof lr.version, "%s", r->version);
    lr.pid = r->frun.pid;
    lr.proc_start = r->proc_start;
    lr.port = r->frun.port;
    snprintf(lr.state, sizeof lr.state, "%s", r->state);
    snprintf(lr.reason, sizeof lr.reason, "%s", r->reason);
    lr.restarts = r->sup.restarts;
    lr.since_ms = r->since_ms;
    lr.issued_ms = r->issued_ms;
    memcpy(lr.digest, r->digest.b, sizeof lr.digest);
    lr.has_digest = r->has_digest;
    if (localdb_run_put(&r->a->db, &lr) < 0)
        alog(FERRY_LOG_ERROR, "%s", err_detail());
}

/* Every state change goes here: persisted, logged, queued for the registry. */
static void set_state(struct run *r, const char *state, const char *reason)
{
    if (r->unlisted && !reconcile_state_final(state))
        reason = RECONCILE_KEPT_REASON;
    int changed = strcmp(r->state, state) != 0 || strcmp(r->reason, reason ? reason : "") != 0;
    if (!changed)
        return;
    if (strcmp(r->state, state) != 0)
        r->since_ms = clock_unix_ms();
    snprintf(r->state, sizeof r->state, "%s", state);
    snprintf(r->reason, sizeof r->reason, "%s", reason ? reason : "");
    alog(FERRY_LOG_INFO, "%s@%s %s%s%s", r->name, r->version, state, r->reason[0] ? ": " : "",
         r->reason);
    persist_run(r);
    if (r->a->link) {
        Ferry__Wire__WorkloadReport ev;
        fill_report(r, &ev);
        link_add_event(r->a->link, &ev);
    }
    publish_snapshot(r->a);
}

/* ---- run lifetime ----------------------------------------------------------- */

static void run_free(struct run *r)
{
    manifest_free(r->manifest);
    workload_fini(&r->wl);
    free(r);
}

/* open_handles counts this run's handles not yet closed; the run is freed
 * when it is being destroyed, the last one has closed and no thread-pool
 * work refers to it. */
static void on_handle_closed(uv_handle_t *h)
{
    struct run *r = h->data;
    if (--r->open_handles == 0 && r->closing && !r->work_pending)
        run_free(r);
}

static void close_run_handle(struct run *r, uv_handle_t *h)
{
    h->data = r;
    uv_close(h, on_handle_closed);
}

/* Unlink r from the agent and free it once its handles are closed and no
 * thread-pool work refers to it. The process itself is left alone. */
static void run_destroy(struct run *r)
{
    struct agent *a = r->a;
    for (struct run **p = &a->runs; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            break;
        }
    r->closing = 1;
    close_run_handle(r, (uv_handle_t *)&r->sup_timer);
    close_run_handle(r, (uv_handle_t *)&r->probe_timer);
    if (r->proc_active) {
        r->proc_active = 0;
        close_run_handle(r, (uv_handle_t *)&r->proc);
    }
    if (r->poll_active) {
        r->poll_active = 0;
        close_run_handle(r, (uv_handle_t *)&r->pidfd_poll);
        close(r->pidfd);
        r->pidfd = -1;
    }
}

/* Drop a run for good: its local record, and with remove_tree its
 * materialized tree too (a replaced or undeployed version). Its blobs stay
 * in the agent's blob cache, so deploying it again moves no bytes. */
static void run_forget(struct run *r, int remove_tree)
{
    localdb_run_delete(&r->a->db, r->name, r->version);
    if (remove_tree)
        localdb_manifest_prune(&r->a->db); /* else the same version is about to start again */
    if (remove_tree && r->dir[0]) {
        int rc = fs_rm_rf(r->dir);
        if (rc < 0)
            alog(FERRY_LOG_WARN, "%s: cannot remove: %s", r->dir, strerror(-rc));
        char parent[4096], base[1024];
        fs_split(r->dir, parent, sizeof parent, base, sizeof base);
        rmdir(parent); /* only if no other version is left */
    }
    run_destroy(r);
}

static struct run *run_new(struct agent *a, const char *name, const char *version,
                           uint64_t issued_ms)
{
    struct run *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->a = a;
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->version, sizeof r->version, "%s", version);
    if (snprintf(r->dir, sizeof r->dir, "%.3900s/%s/%s", a->workloads_dir, name, version) < 0)
        r->dir[0] = '\0';
    snprintf(r->state, sizeof r->state, "pending");
    r->issued_ms = issued_ms;
    r->since_ms = clock_unix_ms();
    r->frun.struct_size = sizeof r->frun;
    r->pidfd = -1;
    uv_timer_init(&a->loop, &r->sup_timer);
    uv_timer_init(&a->loop, &r->probe_timer);
    r->sup_timer.data = r->probe_timer.data = r;
    r->open_handles = 2;
    sup_init(&r->sup, NULL);
    r->next = a->runs;
    a->runs = r;
    return r;
}

static struct run *find_run(struct agent *a, const char *name, const char *version)
{
    for (struct run *r = a->runs; r; r = r->next)
        if (strcmp(r->name, name) == 0 && (!version || strcmp(r->version, version) == 0))
            return r;
    return NULL;
}

/* ---- supervision ------------------------------------------------------------- */

static void apply(struct run *r, const struct sup_out *out);

static void sup_feed(struct run *r, enum sup_event ev, const char *detail)
{
    struct sup_out out;
    sup_event(&r->sup, ev, mono_ms(), detail, &out);
    apply(r, &out);
}

static void on_sup_timer(uv_timer_t *t)
{
    struct run *r = t->data;
    sup_feed(r, SUP_EV_TIMER, NULL);
}

static void probe_after(uv_work_t *req, int status);
static void probe_work(uv_work_t *req);
struct probe_ctx {
    struct run *r;
    struct ferry_health h;
};

static void on_probe_timer(uv_timer_t *t)
{
    struct run *r = t->data;
    if (r->probe_busy || r->closing || !r->plugin)
        return;
    enum sup_state s = r->sup.state;
    if (s != SUP_STARTING && s != SUP_RUNNING && s != SUP_UNHEALTHY)
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

static void schedule_probe(struct run *r)
{
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
    uv_timer_start(&r->probe_timer, on_probe_timer, delay, 0);
}

static void finish_rollout(struct run *r);

static void probe_after(uv_work_t *req, int status)
{
    struct probe_ctx *c = req->data;
    struct run *r = c->r;
    r->work_pending--;
    r->probe_busy = 0;
    if (r->closing) {
        if (r->open_handles == 0 && !r->work_pending)
            run_free(r);
    } else if (status == 0) {
        enum sup_state before = r->sup.state;
        sup_feed(r, c->h.healthy ? SUP_EV_HEALTHY : SUP_EV_UNHEALTHY, c->h.reason);
        if (!r->closing && before == SUP_STARTING && r->sup.state == SUP_RUNNING)
            finish_rollout(r);
        enum sup_state s = r->sup.state;
        if (!r->closing && (s == SUP_STARTING || s == SUP_RUNNING || s == SUP_UNHEALTHY))
            schedule_probe(r);
    }
    free(c);
    free(req);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
    struct run *r = p->data;
    char detail[96];
    if (sig)
        snprintf(detail, sizeof detail, "killed by signal %d", sig);
    else
        snprintf(detail, sizeof detail, "exited with status %lld", (long long)status);
    cg_run_exited(r->a->cfg->name, r->name, r->version, status, sig, detail, sizeof detail);
    r->proc_active = 0;
    close_run_handle(r, (uv_handle_t *)p);
    if (!r->closing) {
        pluginhost_exited(r->plugin, &r->frun, sig ? 128 + sig : (int)status);
        localdb_run_state_put(&r->a->db, r->name, r->version, r->frun.plugin_state);
        sup_feed(r, SUP_EV_EXITED, detail);
    }
}

static void on_pidfd(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    struct run *r = p->data;
    r->poll_active = 0;
    close_run_handle(r, (uv_handle_t *)p);
    close(r->pidfd);
    r->pidfd = -1;
    char detail[96] = "exited (adopted process)";
    cg_run_exited(r->a->cfg->name, r->name, r->version, -1, 0, detail, sizeof detail);
    if (!r->closing) {
        pluginhost_exited(r->plugin, &r->frun, -1);
        sup_feed(r, SUP_EV_EXITED, detail);
    }
}

/* Watch a process that is not our child (adopted after an agent restart). */
static int watch_pidfd(struct run *r)
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
static int run_signal(struct run *r, int sig)
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

static const char *reported_state(const struct run *r)
{
    switch (r->sup.state) {
    case SUP_STARTING:
    case SUP_BACKOFF: return "starting";
    case SUP_RUNNING: return "running";
    case SUP_UNHEALTHY: return "unhealthy";
    case SUP_STOPPING:
    case SUP_STOPPED: return "stopped";
    case SUP_FAILED: return r->rolled_back ? "rolled_back" : "failed";
    default: return "failed";
    }
}

static int spawn_run(struct run *r)
{
    if (r->frun.port <= 0) {
        int port = free_port();
        if (port < 0)
            return port;
        r->frun.port = port;
    }
    int rc = r->plugin->p.start(r->plugin->state, &r->wl, &r->frun);
    if (rc == 0)
        localdb_run_state_put(&r->a->db, r->name, r->version, r->frun.plugin_state);
    return rc;
}

static void rollout_failed(struct run *r);
static void start_tree_job(struct run *r, int respawn);

/* Only right after the tree was verified. */
static int spawn_now(struct run *r)
{
    r->verified = 0;
    int rc = spawn_run(r);
    if (rc < 0) {
        char detail[200];
        snprintf(detail, sizeof detail, "could not start: %s", err_message(rc));
        sup_feed(r, SUP_EV_EXITED, detail);
        return rc;
    }
    r->probe_delay_ms = 0;
    schedule_probe(r);
    return 0;
}

static void apply(struct run *r, const struct sup_out *out)
{
    unsigned act = out->actions;
    if (act & SUP_DO_SPAWN) {
        /* Every start, restarts included, runs a tree verified against the
         * signed manifest just before: the verification comes first. */
        if (!r->verified)
            start_tree_job(r, 1);
        else if (spawn_now(r) < 0)
            return;
    }
    if ((act & SUP_DO_TERM) && r->frun.pid > 0)
        r->plugin->p.stop(r->plugin->state, &r->frun, STOP_TIMEOUT_MS);
    if (act & SUP_DO_KILL)
        run_signal(r, SIGKILL);
    if (act & SUP_DO_CANCEL_TIMER)
        uv_timer_stop(&r->sup_timer);
    if (act & SUP_DO_TIMER) {
        uint64_t now = mono_ms();
        uv_timer_start(&r->sup_timer, on_sup_timer,
                       out->timer_at_ms > now ? out->timer_at_ms - now : 0, 0);
    }
    if (r->sup.state == SUP_FAILED && r->rollout && !r->rolled_back)
        rollout_failed(r);
    if (act & SUP_DO_REPORT)
        set_state(r, reported_state(r), r->sup.reason);
    if (r->sup.state == SUP_STOPPED && r->retired) {
        struct agent *a = r->a;
        run_forget(r, 1);
        publish_snapshot(a);
    }
}

/* The new version is healthy: the old one goes. */
static void finish_rollout(struct run *r)
{
    for (struct run *o = r->a->runs; o; o = o->next) {
        if (o == r || strcmp(o->name, r->name) != 0 || o->retired)
            continue;
        o->retired = 1;
        alog(FERRY_LOG_INFO, "%s@%s replaces %s@%s", r->name, r->version, o->name, o->version);
        if (o->supervised && o->sup.state != SUP_STOPPED)
            sup_feed(o, SUP_EV_STOP, "replaced by a new version");
        else {
            run_forget(o, 1);
            publish_snapshot(r->a);
        }
    }
    r->rollout = 0;
}

/* The new version never became healthy: stop it, keep the previous one. */
static void rollout_failed(struct run *r)
{
    struct run *prev = NULL;
    for (struct run *o = r->a->runs; o; o = o->next)
        if (o != r && strcmp(o->name, r->name) == 0 && !o->retired &&
            (o->sup.state == SUP_RUNNING || o->sup.state == SUP_UNHEALTHY ||
             o->sup.state == SUP_STARTING || o->sup.state == SUP_BACKOFF))
            prev = o;
    if (!prev)
        return; /* nothing to go back to: plain failed */
    r->rolled_back = 1;
    char reason[sizeof r->sup.reason + 100];
    snprintf(reason, sizeof reason, "%.160s; %.60s keeps running", r->sup.reason, prev->version);
    snprintf(r->sup.reason, sizeof r->sup.reason, "%.250s", reason);
}

/* ---- starting a run: manifest, tree (verified or materialized), plugin --------- */

/* The plugin and the workload description, from the signed manifest's spec. */
static int prepare_workload(struct run *r)
{
    const Ferry__Spec *spec = r->manifest->spec;
    r->plugin = pluginhost_find(&r->a->plugins, spec->runtime);
    if (!r->plugin)
        return err_set(FERRY_E_NOTFOUND, "no plugin serves runtime '%s'", spec->runtime);
    struct sup_policy pol;
    int rc = workload_build(spec, r->name, r->version, r->dir, STOP_TIMEOUT_MS, &r->wl, &pol);
    if (rc == 0)
        rc = workload_attach_json(&r->wl, r->manifest);
    if (rc < 0)
        return rc;
    uint32_t restarts = r->sup.restarts;
    sup_init(&r->sup, &pol);
    r->sup.restarts = restarts;
    return 0;
}

/* The manifest held in local state, checked again (the trusted keys may have
 * changed since): what a re-adopted run is supervised by. */
static int load_held_manifest(struct run *r)
{
    uint8_t *mb = NULL, *sb = NULL;
    size_t ml = 0, sl = 0;
    int rc = r->has_digest ? localdb_manifest_get(&r->a->db, r->digest.b, &mb, &ml, &sb, &sl)
                           : FERRY_E_NOTFOUND;
    if (rc == 0)
        rc = tree_manifest_check(mb, ml, sb, sl, r->a->cfg->trust, &r->digest, r->name,
                                 r->version, &r->manifest);
    else if (rc == FERRY_E_NOTFOUND)
        rc = err_set(rc, "%s@%s: no verified manifest held", r->name, r->version);
    free(mb);
    free(sb);
    return rc;
}

struct tree_req {
    uv_work_t w;
    struct run *r;
    struct tree_job *j;
    int respawn; /* a restart: spawn after, rather than begin supervising */
};

static void tree_work(uv_work_t *req) { tree_job_run(((struct tree_req *)req)->j); }

static void tree_after(uv_work_t *req, int status)
{
    struct tree_req *t = (struct tree_req *)req;
    struct run *r = t->r;
    struct tree_job *j = t->j;
    r->work_pending--;
    int ok = status == 0 && j->rc == 0;
    const char *why = status < 0 ? "cancelled" : j->error;
    if (r->closing) {
        if (r->open_handles == 0 && !r->work_pending)
            run_free(r);
        goto out;
    }
    if (status == 0 && j->fetched &&
        localdb_manifest_put(&r->a->db, r->digest.b, j->mbytes, j->mlen, j->sigs, j->slen) < 0)
        alog(FERRY_LOG_ERROR, "%s", err_detail());
    if (status == 0 && j->note[0])
        alog(FERRY_LOG_WARN, "%s@%s: %s; materialized afresh", r->name, r->version, j->note);
    if (t->respawn) {
        char detail[1100];
        if (r->sup.state != SUP_STARTING) {
            sup_feed(r, SUP_EV_EXITED, "not started"); /* stopped meanwhile */
        } else if (!ok) {
            snprintf(detail, sizeof detail, "could not start: %s", why);
            sup_feed(r, SUP_EV_EXITED, detail);
        } else {
            r->verified = 1;
            spawn_now(r);
        }
        goto out;
    }
    if (!ok) {
        set_state(r, "failed", why);
        goto out;
    }
    if (!r->manifest) {
        r->manifest = j->m;
        j->m = NULL;
    }
    int rc = prepare_workload(r);
    if (rc < 0) {
        set_state(r, "failed", err_message(rc));
    } else {
        r->supervised = 1;
        r->verified = 1;
        sup_feed(r, SUP_EV_START, NULL);
    }
out:
    tree_job_free(j);
    free(t);
}

/* Get r's tree ready on the thread pool: the manifest, then the tree
 * verified against it or materialized afresh (resuming any staging left by
 * an interrupted run). */
static void start_tree_job(struct run *r, int respawn)
{
    struct tree_req *t = calloc(1, sizeof *t);
    struct tree_job *j = calloc(1, sizeof *j);
    if (t && j) {
        snprintf(j->url, sizeof j->url, "%s", r->a->cfg->registry_url);
        snprintf(j->name, sizeof j->name, "%s", r->name);
        snprintf(j->version, sizeof j->version, "%s", r->version);
        snprintf(j->dir, sizeof j->dir, "%s", r->dir);
        snprintf(j->cache, sizeof j->cache, "%s", r->a->cache_dir);
        j->digest = r->digest;
        j->trust = r->a->cfg->trust;
        if (localdb_manifest_get(&r->a->db, r->digest.b, &j->mbytes, &j->mlen, &j->sigs,
                                 &j->slen) < 0)
            j->mbytes = j->sigs = NULL;
        t->r = r;
        t->j = j;
        t->respawn = respawn;
        t->w.data = t;
        if (!respawn) {
            struct stat st;
            set_state(r, stat(r->dir, &st) == 0 ? "verifying" : "fetching", "");
        }
        r->work_pending++;
        if (uv_queue_work(&r->a->loop, &t->w, tree_work, tree_after) == 0)
            return;
        r->work_pending--;
    }
    tree_job_free(j);
    free(t);
    if (respawn)
        sup_feed(r, SUP_EV_EXITED, "could not start: could not queue the verification");
    else
        set_state(r, "failed", "could not queue the fetch");
}

/* ---- reconciling ------------------------------------------------------------------- */

static void stop_all_of(struct agent *a, const char *name, const char *why)
{
    for (struct run *r = a->runs, *next; r; r = next) {
        next = r->next;
        if (strcmp(r->name, name) != 0)
            continue;
        r->retired = 1;
        if (r->supervised && r->sup.state != SUP_STOPPED && r->sup.state != SUP_FAILED) {
            sup_feed(r, SUP_EV_STOP, why);
        } else {
            if (r->supervised)
                run_signal(r, SIGKILL); /* a failed run may still have a process */
            run_forget(r, 1);
        }
    }
    publish_snapshot(a);
}

/* Make name's runs match one verified record. */
static void reconcile_record(struct agent *a, const Ferry__DeployRecord *rec)
{
    if (rec->undeploy) {
        stop_all_of(a, rec->name, "undeployed");
        return;
    }
    /* Failed leftovers of other versions go from the picture, also when
     * this record names a version that already runs (a re-deploy of it). */
    int forgot = 0;
    for (struct run *o = a->runs, *next; o; o = next) {
        next = o->next;
        if (strcmp(o->name, rec->name) == 0 && strcmp(o->version, rec->version) != 0 &&
            (strcmp(o->state, "failed") == 0 || strcmp(o->state, "rolled_back") == 0)) {
            run_forget(o, 1);
            forgot = 1;
        }
    }
    struct run *r = find_run(a, rec->name, rec->version);
    if (r && reconcile_existing(r->state, r->issued_ms, r->retired, rec) != RC_RESTART) {
        if (forgot)
            publish_snapshot(a);
        return; /* on its way (in or out), running, or failed for this very decision */
    }
    if (r) {
        /* A new decision for a version that failed or stopped: afresh, in
         * the tree it already has once that is verified again. */
        run_signal(r, SIGKILL);
        run_forget(r, 0);
    }
    int others = 0;
    for (struct run *o = a->runs; o; o = o->next)
        if (strcmp(o->name, rec->name) == 0 && !o->retired &&
            strcmp(o->state, "failed") != 0 && strcmp(o->state, "rolled_back") != 0)
            others = 1;
    r = run_new(a, rec->name, rec->version, rec->issued_ms);
    if (!r)
        return;
    r->rollout = others;
    digest_from_bytes(rec->manifest_digest.data, rec->manifest_digest.len, &r->digest);
    r->has_digest = 1;
    persist_run(r);
    start_tree_job(r, 0);
}

/* A record that cannot be applied is shown as a failed run of what it asked
 * for, with the reason, and nothing is started or stopped. */
static void refuse_record(struct agent *a, const Ferry__DeployRecord *rec, const char *why)
{
    if (strcmp(a->last_refusal, why) != 0)
        alog(FERRY_LOG_ERROR, "refusing deployment of %s: %s", rec->name, why);
    snprintf(a->last_refusal, sizeof a->last_refusal, "%s", why);
    if (!rec->undeploy && !find_run(a, rec->name, rec->version)) {
        struct run *r = run_new(a, rec->name, rec->version, rec->issued_ms);
        if (r)
            set_state(r, "failed", why);
    }
}

/* The record of name this host holds (it verified and applied it). */
static Ferry__DeployRecord *held_record(struct agent *a, const char *name)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    Ferry__DeployRecord *rec = NULL;
    if (localdb_desired_get(&a->db, name, &buf, &len) == 0) {
        Ferry__SignedRecord *sr = ferry__signed_record__unpack(NULL, len, buf);
        if (sr && record_decode(sr->record.data, sr->record.len, &rec) < 0)
            rec = NULL;
        signed_record_free(sr);
    }
    free(buf);
    return rec;
}

static void remember_record(struct agent *a, const Ferry__SignedRecord *sr,
                            const Ferry__DeployRecord *rec)
{
    localdb_set_applied(&a->db, rec->name, rec->issued_ms);
    size_t len = ferry__signed_record__get_packed_size(sr);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf) {
        ferry__signed_record__pack(sr, buf);
        localdb_desired_put(&a->db, rec->name, rec->issued_ms, buf, len);
        free(buf);
    }
}

/* The registry decides which records it sends; what they mean for this host
 * is decided here, from their signatures and this host's own labels
 * (reconcile.c). A name the registry stops sending is not an undeploy. */
static void apply_desired(struct agent *a, Ferry__SignedRecord **recs, size_t n, int from_registry)
{
    const char **listed = calloc(n ? n : 1, sizeof *listed);
    Ferry__DeployRecord **decoded = calloc(n ? n : 1, sizeof *decoded);
    size_t nlisted = 0;
    for (size_t k = 0; listed && decoded && k < n; k++) {
        Ferry__DeployRecord *rec = NULL;
        char why[700];
        int rc = record_verify(recs[k], a->cfg->trust, &rec, NULL);
        if (rc < 0) {
            snprintf(why, sizeof why, "%s", err_message(rc));
            if (record_decode(recs[k]->record.data, recs[k]->record.len, &rec) == 0)
                refuse_record(a, rec, why);
            record_free(rec);
            continue;
        }
        Ferry__DeployRecord *held = held_record(a, rec->name);
        enum rc_verdict v = reconcile_judge(rec, &a->cfg->labels, localdb_applied(&a->db, rec->name),
                                            held, why, sizeof why);
        record_free(held);
        if (v == RC_NOT_FOR_HOST) {
            refuse_record(a, rec, why);
        } else if (v == RC_UNMATCHED) {
            alog(FERRY_LOG_WARN, "stopping %s: %s", rec->name, why);
            localdb_desired_delete(&a->db, rec->name);
            stop_all_of(a, rec->name, why);
        } else if (v == RC_OLDER) {
            /* Signed, but older than a decision already applied: a replay
             * or a rollback attempt. Keep what we have. */
            alog(FERRY_LOG_WARN, "ignoring an %s", why);
            listed[nlisted++] = rec->name;
        } else {
            if (rec->issued_ms > localdb_applied(&a->db, rec->name))
                remember_record(a, recs[k], rec);
            reconcile_record(a, rec);
            listed[nlisted++] = rec->name;
        }
        decoded[k] = rec;
    }
    /* Runs whose name the registry no longer sends keep running, and say so. */
    for (struct run *r = a->runs; from_registry && listed && r; r = r->next) {
        int unlisted = !reconcile_listed(listed, nlisted, r->name);
        if (unlisted == r->unlisted || r->retired)
            continue;
        r->unlisted = unlisted;
        if (reconcile_state_final(r->state))
            continue; /* what it says (why it failed) stays */
        char state[sizeof r->state];
        snprintf(state, sizeof state, "%s", r->state);
        if (unlisted)
            alog(FERRY_LOG_WARN, "%s@%s: %s", r->name, r->version, RECONCILE_KEPT_REASON);
        set_state(r, state, unlisted ? RECONCILE_KEPT_REASON : r->supervised ? r->sup.reason : "");
    }
    for (size_t k = 0; decoded && k < n; k++)
        record_free(decoded[k]);
    free(decoded);
    free(listed);
}

static void on_desired(void *arg, Ferry__Wire__DesiredState *ds)
{
    struct agent *a = arg;
    if (!a->stopping)
        apply_desired(a, ds->records, ds->n_records, 1);
    ferry__wire__desired_state__free_unpacked(ds, NULL);
}

/* ---- the host table plugins get ------------------------------------------------------ */

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

static int open_log(const char *dir, const char *name)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/.ferry", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/.ferry/%s", dir, name);
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
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
    int out = open_log(r->dir, "stdout.log"), err = open_log(r->dir, "stderr.log");
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

/* ---- maintenance: log caps and fresh resource figures ---------------------------------- */

static void cap_log(const char *dir, const char *name, uint64_t cap)
{
    char path[4300], old[4400];
    snprintf(path, sizeof path, "%s/.ferry/%s", dir, name);
    struct stat st;
    if (stat(path, &st) < 0 || (uint64_t)st.st_size <= cap)
        return;
    /* Copy then truncate: the workload keeps its O_APPEND descriptor and
     * goes on writing at the new end. */
    snprintf(old, sizeof old, "%s.1", path);
    int in = open(path, O_RDWR | O_CLOEXEC), out = open(old, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (in >= 0 && out >= 0) {
        off_t off = 0;
        while (off < st.st_size) {
            ssize_t n = copy_file_range(in, &off, out, NULL, (size_t)(st.st_size - off), 0);
            if (n <= 0)
                break;
        }
        if (ftruncate(in, 0) < 0)
            alog(FERRY_LOG_WARN, "%s: cannot truncate: %s", path, strerror(errno));
    }
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
}

static void on_maintenance(uv_timer_t *t)
{
    struct agent *a = t->data;
    uint64_t cap = a->cfg->log_cap_bytes ? a->cfg->log_cap_bytes : DEFAULT_LOG_CAP;
    for (struct run *r = a->runs; r; r = r->next) {
        cap_log(r->dir, "stdout.log", cap);
        cap_log(r->dir, "stderr.log", cap);
    }
    publish_snapshot(a);
}

/* ---- metrics: runs lent to agent/metrics.c, kept alive like a probe's ------------------------ */

static size_t metrics_list(void *arg, struct metrics_run *out, size_t cap)
{
    size_t n = 0;
    for (struct run *r = ((struct agent *)arg)->runs; r && n < cap; r = r->next) {
        if (!r->plugin || r->closing || r->frun.pid <= 0 || !(r->proc_active || r->poll_active))
            continue;
        snprintf(out[n].name, sizeof out[n].name, "%s", r->name);
        snprintf(out[n].version, sizeof out[n].version, "%s", r->version);
        out[n].plugin = r->plugin;
        out[n].run = &r->frun;
        out[n].token = r;
        r->work_pending++;
        n++;
    }
    return n;
}

static void metrics_release(void *arg, const struct metrics_run *m)
{
    (void)arg;
    struct run *r = m->token;
    if (--r->work_pending == 0 && r->closing && r->open_handles == 0)
        run_free(r);
}

static void metrics_updated(void *arg) { publish_snapshot(arg); }

/* ---- start and stop ---------------------------------------------------------------------- */

/* For actions (agent/actions.c): the directory of name's run that is
 * running, else of the newest one. Loop thread. */
static int action_lookup(void *arg, const char *name, char *dir, size_t cap, char *version,
                         size_t vcap)
{
    const struct run *pick = NULL;
    for (const struct run *r = ((struct agent *)arg)->runs; r; r = r->next)
        if (strcmp(r->name, name) == 0 && (!pick || strcmp(r->state, "running") == 0 ||
                                           (strcmp(pick->state, "running") != 0 &&
                                            r->issued_ms > pick->issued_ms)))
            pick = r;
    if (!pick)
        return FERRY_E_NOTFOUND;
    snprintf(dir, cap, "%s", pick->dir);
    snprintf(version, vcap, "%s", pick->version);
    return 0;
}

/* Rebuild runs from local state: adopt live processes, restart what should
 * run, keep failures visible. */
static void restore(struct agent *a)
{
    struct localdb_run *runs = NULL;
    size_t n = 0;
    if (localdb_run_list(&a->db, &runs, &n) < 0) {
        alog(FERRY_LOG_ERROR, "%s", err_detail());
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct localdb_run *lr = &runs[i];
        struct run *r = run_new(a, lr->name, lr->version, lr->issued_ms);
        if (!r)
            break;
        snprintf(r->state, sizeof r->state, "%s", lr->state);
        snprintf(r->reason, sizeof r->reason, "%s", lr->reason);
        r->since_ms = lr->since_ms;
        r->frun.port = lr->port;
        memcpy(r->digest.b, lr->digest, sizeof r->digest.b);
        r->has_digest = lr->has_digest;
        r->sup.restarts = lr->restarts;
        if (reconcile_state_unfinished(lr->state) && !r->has_digest) {
            run_forget(r, 0); /* recorded before digests were: the desired record restarts it */
            continue;
        }
        if (reconcile_state_unfinished(lr->state)) {
            /* Killed while fetching or verifying: take it up again, from
             * the staging it left. */
            alog(FERRY_LOG_INFO, "%s@%s: resuming the interrupted %s", r->name, r->version, lr->state);
            start_tree_job(r, 0);
            continue;
        }
        if (!reconcile_state_live(lr->state))
            continue; /* failed / rolled_back / stopped stay as they were */
        if (lr->pid > 0 && lr->proc_start && proc_start_time(lr->pid) == lr->proc_start) {
            int prc = load_held_manifest(r);
            if (prc == 0)
                prc = prepare_workload(r);
            if (prc < 0) {
                set_state(r, "failed", err_message(prc));
                continue;
            }
            r->supervised = 1;
            r->frun.pid = lr->pid;
            r->proc_start = lr->proc_start;
            r->frun.started_ms = mono_ms();
            if (watch_pidfd(r) == 0) {
                alog(FERRY_LOG_INFO, "%s@%s: re-adopted pid %d", r->name, r->version, r->frun.pid);
                snprintf(r->frun.plugin_state, sizeof r->frun.plugin_state, "%s", lr->plugin_state);
                int arc = pluginhost_adopt(r->plugin, &r->wl, &r->frun);
                sup_feed(r, SUP_EV_ADOPTED, "re-adopted after an agent restart");
                if (arc < 0) { /* the plugin cannot take it back: restart it */
                    alog(FERRY_LOG_WARN, "%s@%s: plugin %s cannot adopt it: %s", r->name, r->version,
                         r->plugin->name, err_message(arc));
                    run_signal(r, SIGKILL);
                }
                r->probe_delay_ms = 0;
                schedule_probe(r);
                continue;
            }
        }
        alog(FERRY_LOG_INFO, "%s@%s: not running any more; starting it", r->name, r->version);
        r->frun.pid = 0;
        start_tree_job(r, 0); /* verified first, like every start */
    }
    free(runs);
    /* Desired records we hold but have no run for (e.g. crashed mid-fetch). */
    struct localdb_desired *des = NULL;
    size_t nd = 0;
    if (localdb_desired_list(&a->db, &des, &nd) == 0) {
        Ferry__SignedRecord **recs = calloc(nd ? nd : 1, sizeof *recs);
        size_t k = 0;
        for (size_t i = 0; recs && i < nd; i++) {
            recs[k] = ferry__signed_record__unpack(NULL, des[i].len, des[i].signed_record);
            if (recs[k])
                k++;
        }
        if (recs)
            apply_desired(a, recs, k, 0);
        for (size_t i = 0; recs && i < k; i++)
            signed_record_free(recs[i]);
        free(recs);
        localdb_desired_list_free(des, nd);
    }
}

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_stop_signal(uv_signal_t *s, int signum)
{
    struct agent *a = s->data;
    if (a->stopping)
        return;
    a->stopping = 1;
    alog(FERRY_LOG_INFO, "%s received: stopping; workloads keep running",
         signum == SIGINT ? "SIGINT" : "SIGTERM");
    uv_stop(&a->loop);
}

static int load_host_key(struct agent *a)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/host.key", a->cfg->state_dir);
    struct stat st;
    if (stat(path, &st) < 0) {
        int rc = key_generate(a->cfg->state_dir, "host", NULL);
        if (rc < 0)
            return rc;
        alog(FERRY_LOG_INFO, "created host key %s", path);
    }
    return key_load_secret(path, &a->host_key);
}

int agent_run(const struct agent_config *cfg)
{
    struct agent *a = calloc(1, sizeof *a);
    if (!a)
        return -ENOMEM;
    a->cfg = cfg;
    int rc = fs_mkdir_p(cfg->state_dir, 0700);
    if (rc < 0) {
        free(a);
        return err_set(rc, "%s: %s", cfg->state_dir, strerror(-rc));
    }
    /* Absolute, because workloads run with their own directory as cwd. */
    char state[4000];
    if (!realpath(cfg->state_dir, state)) {
        free(a);
        return err_set(-errno, "%s: %s", cfg->state_dir, strerror(errno));
    }
    snprintf(a->workloads_dir, sizeof a->workloads_dir, "%s/workloads", state);
    snprintf(a->cache_dir, sizeof a->cache_dir, "%s/blobs", state);
    fs_mkdir_p(a->workloads_dir, 0755);
    fs_mkdir_p(a->cache_dir, 0700);
    char dbpath[4200];
    snprintf(dbpath, sizeof dbpath, "%s/agent.db", cfg->state_dir);
    if ((rc = localdb_open(&a->db, dbpath)) < 0) {
        free(a);
        return rc;
    }
    if ((rc = load_host_key(a)) < 0) {
        localdb_close(&a->db);
        free(a);
        return rc;
    }
    uv_loop_init(&a->loop);
    clock_loop = &a->loop;
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
    int prc = pluginhost_load_dir(&a->plugins, cfg->plugins_dir, &a->host);
    if (prc < 0)
        alog(FERRY_LOG_ERROR, "plugins %s: %s", cfg->plugins_dir, err_message(prc));
    if (a->plugins.n == 0)
        alog(FERRY_LOG_WARN, "no plugins loaded from %s: nothing can run", cfg->plugins_dir);
    static const struct metrics_hooks mhooks = {metrics_list, metrics_release, metrics_updated};
    if (metrics_start(&a->loop, cfg->metrics_interval_ms, &mhooks, a, &a->metrics) < 0)
        alog(FERRY_LOG_ERROR, "metrics: %s", err_detail());

    uv_signal_init(&a->loop, &a->sigterm);
    uv_signal_init(&a->loop, &a->sigint);
    a->sigterm.data = a->sigint.data = a;
    uv_signal_start(&a->sigterm, on_stop_signal, SIGTERM);
    uv_signal_start(&a->sigint, on_stop_signal, SIGINT);
    uv_timer_init(&a->loop, &a->maintenance);
    a->maintenance.data = a;
    uv_timer_start(&a->maintenance, on_maintenance, MAINTENANCE_MS, MAINTENANCE_MS);

    struct link_config lc = {
        .url = cfg->registry_url,
        .host = cfg->name,
        .labels = &cfg->labels,
        .host_key = &a->host_key,
        .poll_wait_ms = cfg->poll_wait_ms,
        .heartbeat_ms = cfg->heartbeat_ms,
        .join_token = cfg->join_token, .join_token_len = cfg->join_token_len,
        .plugins = &a->plugins,
        .trust = cfg->trust, .action_lookup = action_lookup, .action_lookup_arg = a,
    };
    link_start(&a->loop, &lc, on_desired, a, &a->link);
    alog(FERRY_LOG_INFO, "host %s (key %s), registry %s, state %s", cfg->name, a->host_key.pub.id,
         cfg->registry_url, cfg->state_dir);

    /* What local state says should run starts now, registry or not. */
    restore(a);
    publish_snapshot(a);

    uv_run(&a->loop, UV_RUN_DEFAULT);

    /* Leaving: persist, let go of the processes without touching them. */
    for (struct run *r = a->runs; r; r = r->next)
        persist_run(r);
    link_stop(a->link);
    a->link = NULL;
    metrics_stop(a->metrics);
    a->metrics = NULL;
    while (a->runs)
        run_destroy(a->runs);
    uv_walk(&a->loop, walk_close, NULL);
    uv_run(&a->loop, UV_RUN_DEFAULT);
    uv_loop_close(&a->loop);
    pluginhost_unload_all(&a->plugins);
    localdb_close(&a->db);
    key_secret_wipe(&a->host_key);
    free(a);
    return 0;
}
