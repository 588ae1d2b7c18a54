/* The runs of this host: their lifetime, and the glue between the run
 * table (run.c: what a run is), the supervisor (supervisor.c: its process)
 * and the loop (timers, the thread pool, reports).
 *
 * The flow: run_feed gives the run table an event and performs its
 * actions; RUN_DO_START/STOP become supervisor events; sup_feed gives the
 * supervisor an event, tells the run table what changed (STARTED, HEALTHY,
 * UNHEALTHY, EXITED, GAVE_UP, STOPPED), then performs the supervisor's own
 * actions (spawn, signals, its timer). */
#include "agent_int.h"
#include "alog.h"
#include "clock.h"
#include "error.h"
#include "fsutil.h"
#include "kernelreport.h"
#include "metrics.h"
#include "procinfo.h"
#include "tree.h"
#include "workload.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

uv_loop_t *agent_clock_loop;

/* The supervisor's clock is the loop's, so a timer armed for time T never
 * fires while the supervisor still thinks it is before T. */
uint64_t mono_ms(void)
{
    uv_update_time(agent_clock_loop);
    return uv_now(agent_clock_loop);
}

/* ---- reporting ---- */

static uint32_t reported_restarts(const struct run *r)
{
    if (r->lc.job.job)
        return r->lc.runs > 1 ? r->lc.runs - 1 : 0; /* retries in this round */
    return r->sup.restarts;
}

static void fill_report(const struct run *r, Ferry__Wire__WorkloadReport *w)
{
    ferry__wire__workload_report__init(w);
    w->name = (char *)r->name;
    w->version = (char *)r->version;
    w->state = (char *)run_state_name(r->lc.state);
    w->reason = (char *)r->lc.reason;
    w->restarts = reported_restarts(r);
    w->since_ms = r->lc.since_ms;
    w->pid = r->frun.pid;
    w->port = r->frun.port;
    w->address = (char *)(r->a->cfg->advertise ? r->a->cfg->advertise : "127.0.0.1");
    w->mode = (char *)(r->lc.job.job ? "job" : "");
    w->kind = (char *)(r->wl.kind ? r->wl.kind : "");
    w->rss_bytes = r->frun.pid > 0 && (r->proc_active || r->poll_active) ? proc_rss(r->frun.pid)
                                                                         : 0;
}

void publish_snapshot(struct agent *a)
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
        /* The snapshot, not state-change events, carries the kernels. */
        if (r->wl.kind && strcmp(r->wl.kind, "notebook") == 0 && r->lc.state == RUN_RUNNING)
            kernelreport_fill(metrics_get(r->a->metrics, r->name, r->version), &wv[i]);
        wp[i] = &wv[i];
    }
    Ferry__Wire__ReportBody body;
    ferry__wire__report_body__init(&body);
    body.host = (char *)a->cfg->name;
    body.workloads = wp;
    body.n_workloads = n;
    body.desired_state = (char *)(a->gate.frozen ? "expired" : "");
    body.envelope_version = a->gate.held.version;
    body.envelope_expires_ms = a->gate.held.expires_ms;
    body.verifies_policy = a->cfg->admins != NULL;
    body.agent_rss_bytes = proc_rss((int)getpid());
    metrics_fill_body(a->metrics, &body); /* borrowed: packed before the loop goes on */
    size_t len = ferry__wire__report_body__get_packed_size(&body);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf) {
        ferry__wire__report_body__pack(&body, buf);
        link_set_snapshot(a->link, buf, len);
    }
    metrics_body_done(&body);
    for (size_t k = 0; k < n; k++)
        kernelreport_done(&wv[k]);
    free(buf);
    free(wv);
    free(wp);
}

void persist_run(struct run *r)
{
    struct localdb_run lr;
    memset(&lr, 0, sizeof lr);
    snprintf(lr.name, sizeof lr.name, "%s", r->name);
    snprintf(lr.version, sizeof lr.version, "%s", r->version);
    lr.pid = r->frun.pid;
    lr.proc_start = r->proc_start;
    lr.port = r->frun.port;
    snprintf(lr.state, sizeof lr.state, "%s", run_state_name(r->lc.state));
    snprintf(lr.reason, sizeof lr.reason, "%s", r->lc.reason);
    lr.restarts = reported_restarts(r);
    lr.since_ms = r->lc.since_ms;
    lr.issued_ms = r->issued_ms;
    memcpy(lr.digest, r->digest.b, sizeof lr.digest);
    lr.has_digest = r->has_digest;
    if (localdb_run_put(&r->a->db, &lr) < 0)
        alog(FERRY_LOG_ERROR, "%s", err_detail());
}

void report_run(struct run *r)
{
    /* Persisted before it is logged: a state the log shows is one a restart
     * finds (an agent killed right after the line resumes from it). */
    persist_run(r);
    alog(FERRY_LOG_INFO, "%s@%s %s%s%s", r->name, r->version, run_state_name(r->lc.state),
         r->lc.reason[0] ? ": " : "", r->lc.reason);
    if (r->a->link) {
        Ferry__Wire__WorkloadReport ev;
        fill_report(r, &ev);
        link_add_event(r->a->link, &ev);
    }
    publish_snapshot(r->a);
}

/* ---- lifetime ---- */

static void run_free(struct run *r)
{
    manifest_free(r->manifest);
    workload_fini(&r->wl);
    free(r);
}

void run_release(struct run *r)
{
    if (r->closing && r->open_handles == 0 && !r->work_pending)
        run_free(r);
}

/* open_handles counts this run's handles not yet closed; the run is freed
 * when it is being destroyed, the last one has closed and no thread-pool
 * work refers to it. */
static void on_handle_closed(uv_handle_t *h)
{
    struct run *r = h->data;
    r->open_handles--;
    run_release(r);
}

void close_run_handle(struct run *r, uv_handle_t *h)
{
    h->data = r;
    uv_close(h, on_handle_closed);
}

void run_destroy(struct run *r)
{
    struct agent *a = r->a;
    for (struct run **p = &a->runs; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            break;
        }
    r->closing = 1;
    if (r->tree_busy) {
        r->next_departing = a->departing;
        a->departing = r;
    }
    close_run_handle(r, (uv_handle_t *)&r->sup_timer);
    close_run_handle(r, (uv_handle_t *)&r->probe_timer);
    close_run_handle(r, (uv_handle_t *)&r->sched_timer);
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

/* Its blobs stay in the agent's blob cache, so deploying it again moves no
 * bytes. */
void run_forget(struct run *r, int remove_tree)
{
    localdb_run_delete(&r->a->db, r->name, r->version);
    if (remove_tree)
        localdb_manifest_prune(&r->a->db); /* else the same version is about to start again */
    if (remove_tree && r->dir[0] && r->tree_busy) {
        r->tree_rm_after = 1; /* its tree job still writes there */
    } else if (remove_tree && r->dir[0]) {
        int rc = fs_rm_rf(r->dir);
        if (rc < 0)
            alog(FERRY_LOG_WARN, "%s: cannot remove: %s", r->dir, strerror(-rc));
        char parent[4096], base[1024];
        fs_split(r->dir, parent, sizeof parent, base, sizeof base);
        rmdir(parent); /* only if no other version is left */
    }
    run_destroy(r);
}

struct run *run_new(struct agent *a, const char *name, const char *version, uint64_t issued_ms,
                    int rollout)
{
    struct run *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->a = a;
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->version, sizeof r->version, "%s", version);
    if (snprintf(r->dir, sizeof r->dir, "%.3900s/%s/%s", a->workloads_dir, name, version) < 0)
        r->dir[0] = '\0';
    run_init(&r->lc, rollout, clock_unix_ms());
    r->issued_ms = issued_ms;
    r->frun.struct_size = sizeof r->frun;
    r->pidfd = -1;
    uv_timer_init(&a->loop, &r->sup_timer);
    uv_timer_init(&a->loop, &r->probe_timer);
    uv_timer_init(&a->loop, &r->sched_timer);
    r->sup_timer.data = r->probe_timer.data = r->sched_timer.data = r;
    r->open_handles = 3;
    sup_init(&r->sup, NULL);
    r->next = a->runs;
    a->runs = r;
    return r;
}

struct run *find_run(struct agent *a, const char *name, const char *version)
{
    for (struct run *r = a->runs; r; r = r->next)
        if (strcmp(r->name, name) == 0 && (!version || strcmp(r->version, version) == 0))
            return r;
    return NULL;
}

int tree_present(const struct run *r)
{
    struct stat st;
    return stat(r->dir, &st) == 0;
}

/* ---- the run table's actions ---- */

static void on_sched_timer(uv_timer_t *t)
{
    run_feed(t->data, RUN_EV_DUE, NULL, 0, 0);
}

/* A version of r's name that keeps running (what a failed rollout goes
 * back to), or NULL. */
static const char *other_live_version(const struct run *r)
{
    for (const struct run *o = r->a->runs; o; o = o->next)
        if (o != r && strcmp(o->name, r->name) == 0 &&
            (o->lc.state == RUN_STARTING || o->lc.state == RUN_RUNNING ||
             o->lc.state == RUN_UNHEALTHY || o->lc.state == RUN_SCHEDULED))
            return o->version;
    return NULL;
}

/* r took over: every other version of its name goes. */
static void retire_others(struct run *r)
{
    for (struct run *o = r->a->runs, *next; o; o = next) {
        next = o->next;
        if (o == r || strcmp(o->name, r->name) != 0 || o->lc.state == RUN_STOPPING)
            continue;
        alog(FERRY_LOG_INFO, "%s@%s replaces %s@%s", r->name, r->version, o->name, o->version);
        run_feed(o, RUN_EV_SUPERSEDED, "replaced by a new version", 0, 0);
    }
}

static void perform(struct run *r, const struct run_in *in, const struct run_out *out)
{
    struct agent *a = r->a;
    unsigned act = out->actions;
    if (act & RUN_DO_REPORT) {
        if (r->lc.state == RUN_SCHEDULED)
            r->verified = 0; /* the next start verifies the tree again */
        report_run(r);
    }
    if (act & RUN_DO_PREPARE)
        start_tree_job(r, 0);
    if (r->closing)
        return;
    if (act & RUN_DO_START) {
        r->supervised = 1;
        sup_feed(r, SUP_EV_START, NULL, 0);
    }
    if (act & RUN_DO_STOP) {
        if (r->supervised && r->sup.state != SUP_STOPPED)
            sup_feed(r, SUP_EV_STOP, in->detail, 0);
        else
            run_feed(r, RUN_EV_STOPPED, NULL, 0, 0); /* no process to wait for */
    }
    if (r->closing)
        return;
    if (act & RUN_DO_KILL)
        run_signal(r, SIGKILL); /* a failed run may still have a process */
    if (act & RUN_DO_CANCEL_TIMER)
        uv_timer_stop(&r->sched_timer);
    if (act & RUN_DO_TIMER) {
        uint64_t now = clock_unix_ms();
        uv_timer_start(&r->sched_timer, on_sched_timer,
                       out->timer_at_ms > now ? out->timer_at_ms - now : 0, 0);
    }
    if (act & RUN_DO_RETIRE_OTHERS)
        retire_others(r);
    if (act & RUN_DO_FORGET) {
        run_forget(r, 1);
        publish_snapshot(a);
    }
}

void run_feed(struct run *r, enum run_event ev, const char *detail, int status, int flag)
{
    if (r->closing)
        return;
    struct run_in in = {
        .ev = ev, .now_ms = clock_unix_ms(), .detail = detail, .status = status, .flag = flag != 0,
    };
    if (ev == RUN_EV_GAVE_UP)
        in.other = other_live_version(r);
    struct run_out out;
    run_event(&r->lc, &in, &out);
    perform(r, &in, &out);
}

/* ---- the supervisor's actions ---- */

static void on_sup_timer(uv_timer_t *t)
{
    sup_feed(t->data, SUP_EV_TIMER, NULL, 0);
}

/* What the supervisor's new state means for the run. */
static void tell_run(struct run *r, enum sup_event ev, enum sup_state before, int status)
{
    const char *why = r->sup.reason;
    switch (r->sup.state) {
    case SUP_STARTING: run_feed(r, RUN_EV_STARTED, why, 0, 0); break;
    case SUP_RUNNING: run_feed(r, RUN_EV_HEALTHY, why, 0, 0); break;
    case SUP_UNHEALTHY: run_feed(r, RUN_EV_UNHEALTHY, why, 0, 0); break;
    case SUP_BACKOFF: run_feed(r, RUN_EV_EXITED, why, status, 0); break;
    case SUP_FAILED: run_feed(r, RUN_EV_GAVE_UP, why, 0, 0); break;
    case SUP_STOPPING: break; /* the run table asked for it */
    case SUP_STOPPED:
        /* A job's own end, or the end of a stop that was asked for. */
        if (ev == SUP_EV_EXITED && (before == SUP_STARTING || before == SUP_RUNNING))
            run_feed(r, RUN_EV_EXITED, why, status, 0);
        else
            run_feed(r, RUN_EV_STOPPED, why, 0, 0);
        break;
    default: break;
    }
}

void sup_feed(struct run *r, enum sup_event ev, const char *detail, int status)
{
    if (r->closing)
        return;
    enum sup_state before = r->sup.state;
    struct sup_out out;
    sup_event(&r->sup, ev, mono_ms(), detail, &out);
    /* The run hears first, so what it reports follows the order of events
     * even when a spawn below fails at once and feeds the supervisor again. */
    if (out.actions & SUP_DO_REPORT)
        tell_run(r, ev, before, status);
    if (r->closing)
        return;
    unsigned act = out.actions;
    if (act & SUP_DO_SPAWN) {
        /* Every start, restarts included, runs a tree verified against the
         * signed manifest just before: the verification comes first. */
        if (!r->verified)
            start_tree_job(r, 1);
        else if (spawn_now(r) < 0)
            return;
    }
    if (r->closing)
        return;
    /* The one place a plugin's stop is called. */
    if ((act & SUP_DO_TERM) && r->frun.pid > 0)
        r->plugin->p.stop(r->plugin->state, &r->frun, STOP_TIMEOUT_MS);
    if (act & SUP_DO_KILL)
        run_signal(r, SIGKILL);
    if (act & SUP_DO_CANCEL_TIMER)
        uv_timer_stop(&r->sup_timer);
    if (act & SUP_DO_TIMER) {
        uint64_t now = mono_ms();
        uv_timer_start(&r->sup_timer, on_sup_timer,
                       out.timer_at_ms > now ? out.timer_at_ms - now : 0, 0);
    }
}

/* ---- getting a run ready: manifest, tree (verified or materialized), plugin ---- */

int prepare_workload(struct run *r)
{
    const Ferry__Spec *spec = r->manifest->spec;
    r->plugin = pluginhost_find(&r->a->plugins, spec->runtime);
    if (!r->plugin)
        return err_set(FERRY_E_NOTFOUND, "no plugin serves runtime '%s'", spec->runtime);
    struct sup_policy pol;
    struct run_job job;
    int rc = workload_build(spec, r->name, r->version, r->dir, STOP_TIMEOUT_MS, &r->wl, &pol);
    if (rc == 0)
        rc = workload_attach_json(&r->wl, r->manifest); /* ABI 2: spec_json, kind_json */
    if (rc == 0)
        rc = workload_job(spec, &job);
    if (rc < 0)
        return rc;
    uint32_t restarts = r->sup.restarts;
    sup_init(&r->sup, &pol);
    r->sup.restarts = restarts;
    run_configure(&r->lc, &job);
    return 0;
}

int load_held_manifest(struct run *r)
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

/* 1 when a live or departing run other than r has a tree job on dir. The
 * departing ones are no longer in a->runs, so they are counted apart. */
static int tree_dir_busy(const struct agent *a, const struct run *r, const char *dir)
{
    for (const struct run *o = a->runs; o; o = o->next)
        if (o != r && o->tree_busy && strcmp(o->dir, dir) == 0)
            return 1;
    for (const struct run *o = a->departing; o; o = o->next_departing)
        if (strcmp(o->dir, dir) == 0)
            return 1;
    return 0;
}

static void departing_remove(struct agent *a, const struct run *r)
{
    for (struct run **p = &a->departing; *p; p = &(*p)->next_departing)
        if (*p == r) {
            *p = r->next_departing;
            return;
        }
}

/* dir's job is done: the run waiting for it, if any, goes now. */
static void tree_dir_free(struct agent *a, const char *dir)
{
    for (struct run *w = a->runs; w; w = w->next)
        if (w->tree_waiting && !w->closing && strcmp(w->dir, dir) == 0) {
            int respawn = w->tree_waiting == 2;
            w->tree_waiting = 0;
            start_tree_job(w, respawn);
            return;
        }
}

static void tree_after(uv_work_t *req, int status)
{
    struct tree_req *t = (struct tree_req *)req;
    struct run *r = t->r;
    struct tree_job *j = t->j;
    struct agent *a = r->a;
    r->work_pending--;
    r->tree_busy = 0;
    int ok = status == 0 && j->rc == 0;
    const char *why = status < 0 ? "cancelled" : j->error;
    if (r->closing) {
        departing_remove(a, r);
        if (r->tree_rm_after) {
            int rc = fs_rm_rf(j->dir);
            if (rc < 0)
                alog(FERRY_LOG_WARN, "%s: cannot remove: %s", j->dir, strerror(-rc));
        }
        run_release(r);
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
            sup_feed(r, SUP_EV_EXITED, "not started", -1); /* stopped meanwhile */
        } else if (!ok) {
            snprintf(detail, sizeof detail, "could not start: %s", why);
            sup_feed(r, SUP_EV_EXITED, detail, -1);
        } else {
            r->verified = 1;
            spawn_now(r);
        }
        goto out;
    }
    if (!ok) {
        run_feed(r, RUN_EV_REFUSED, why, 0, 0);
        goto out;
    }
    if (!r->manifest) {
        r->manifest = j->m;
        j->m = NULL;
    }
    int rc = prepare_workload(r);
    if (rc < 0) {
        run_feed(r, RUN_EV_REFUSED, err_message(rc), 0, 0);
    } else {
        r->verified = 1;
        if (j->fetched)
            run_feed(r, RUN_EV_FETCHED, NULL, 0, 0);
        run_feed(r, RUN_EV_VERIFIED, NULL, 0, 0);
    }
out:
    tree_dir_free(a, j->dir);
    tree_job_free(j);
    free(t);
}

/* The manifest, then the tree verified against it or materialized afresh
 * (resuming any staging left by an interrupted run). */
void start_tree_job(struct run *r, int respawn)
{
    if (tree_dir_busy(r->a, r, r->dir)) {
        r->tree_waiting = respawn ? 2 : 1;
        return;
    }
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
        j->admins = r->a->cfg->admins;
        snprintf(j->deployer, sizeof j->deployer, "%s", r->deployer);
        labels_format(&r->a->cfg->labels, j->labels, sizeof j->labels);
        snprintf(j->policy_cache, sizeof j->policy_cache, "%s/policy.bin", r->a->cfg->state_dir);
        if (localdb_manifest_get(&r->a->db, r->digest.b, &j->mbytes, &j->mlen, &j->sigs,
                                 &j->slen) < 0)
            j->mbytes = j->sigs = NULL;
        t->r = r;
        t->j = j;
        t->respawn = respawn;
        t->w.data = t;
        r->work_pending++;
        r->tree_busy = 1;
        if (uv_queue_work(&r->a->loop, &t->w, tree_work, tree_after) == 0)
            return;
        r->work_pending--;
        r->tree_busy = 0;
    }
    tree_job_free(j);
    free(t);
    if (respawn)
        sup_feed(r, SUP_EV_EXITED, "could not start: could not queue the verification", -1);
    else
        run_feed(r, RUN_EV_REFUSED, "could not queue the fetch", 0, 0);
}
