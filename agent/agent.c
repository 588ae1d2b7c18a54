/* ferry-agent's engine: start and stop, the runs restored from local state,
 * and maintenance. The runs themselves live in runs.c (lifecycle glue),
 * process.c (their processes) and desired.c (the signed desired state);
 * agent_int.h says who does what. */
#include "agent_int.h"
#include "runupload.h"
#include "clock.h"
#include "alog.h"
#include "error.h"
#include "fsutil.h"
#include "metrics.h"
#include "procinfo.h"
#include "record.h"
#include "reconcile.h"
#include "runlog.h"
#include "statelock.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define MAINTENANCE_MS 2000
#define DEFAULT_LOG_CAP (1u << 20)

/* ---- maintenance: log caps and fresh resource figures ---- */

static void on_maintenance(uv_timer_t *t)
{
    struct agent *a = t->data;
    uint64_t cap = a->cfg->log_cap_bytes ? a->cfg->log_cap_bytes : DEFAULT_LOG_CAP;
    for (struct run *r = a->runs; r; r = r->next) {
        runlog_cap(r->dir, "stdout.log", cap);
        runlog_cap(r->dir, "stderr.log", cap);
    }
    envgate_tick(&a->gate, clock_unix_ms());
    publish_snapshot(a);
}

/* ---- restore: the runs local state holds ---- */

/* When an adopted process started, on the monotonic clock started_ms uses:
 * its start time (ticks since boot) against the boot clock now. The agent
 * did not see it start, but it has lived that long: an alive-for-settle
 * health check must not make it settle again (three failed "settling"
 * probes would restart a healthy process). */
static uint64_t adopted_start_ms(uint64_t proc_start_ticks)
{
    uint64_t now = mono_ms();
    struct timespec bt;
    long hz = sysconf(_SC_CLK_TCK);
    if (!proc_start_ticks || hz <= 0 || clock_gettime(CLOCK_BOOTTIME, &bt) < 0)
        return now;
    uint64_t boot_ms = (uint64_t)bt.tv_sec * 1000u + (uint64_t)bt.tv_nsec / 1000000u;
    uint64_t began_ms = proc_start_ticks * 1000u / (uint64_t)hz;
    uint64_t age = boot_ms > began_ms ? boot_ms - began_ms : 0;
    return age < now ? now - age : 1; /* 0 would read as "not started" */
}

/* A live process found after an agent restart: supervised again without a
 * restart. The one place a run is adopted (a plugin's adopt hook goes here). */
static int adopt(struct run *r, const struct localdb_run *lr)
{
    r->supervised = 1;
    r->frun.pid = lr->pid;
    r->proc_start = lr->proc_start;
    r->frun.started_ms = adopted_start_ms(lr->proc_start);
    if (watch_pidfd(r) < 0)
        return -1;
    alog(FERRY_LOG_INFO, "%s@%s: re-adopted pid %d", r->name, r->version, r->frun.pid);
    if (r->lc.job.job)
        r->lc.runs = lr->restarts + 1; /* its retries go on counting */
    /* ABI 2: the plugin takes the run back with the state it saved. */
    snprintf(r->frun.plugin_state, sizeof r->frun.plugin_state, "%s", lr->plugin_state);
    int arc = pluginhost_adopt(r->plugin, &r->wl, &r->frun);
    sup_feed(r, SUP_EV_ADOPTED, "re-adopted after an agent restart", 0);
    if (arc < 0) {
        /* It cannot: kill the process, whose exit (on_pidfd) restarts it
         * under the plugin's care from the start. */
        alog(FERRY_LOG_WARN, "%s@%s: plugin %s cannot adopt it: %s", r->name, r->version,
             r->plugin->name, err_message(arc));
        run_signal(r, SIGKILL);
    }
    r->probe_delay_ms = 0;
    schedule_probe(r);
    return 0;
}

/* One run from local state: adopt a live process, restart what should run,
 * take up interrupted work, keep what ended visible. */
static void restore_run(struct agent *a, const struct localdb_run *lr)
{
    struct run *r = run_new(a, lr->name, lr->version, lr->issued_ms, 0);
    if (!r)
        return;
    if (run_restore(&r->lc, lr->state, lr->reason, lr->since_ms) < 0)
        alog(FERRY_LOG_WARN, "%s@%s: %s", r->name, r->version, r->lc.reason);
    r->frun.port = lr->port;
    memcpy(r->digest.b, lr->digest, sizeof r->digest.b);
    r->has_digest = lr->has_digest;
    r->sup.restarts = lr->restarts;
    if (reconcile_state_unfinished(lr->state)) {
        if (!r->has_digest) {
            run_forget(r, 0); /* recorded before digests were: the desired record restarts it */
            return;
        }
        /* Killed while fetching or verifying: take it up again, from the
         * staging it left. */
        alog(FERRY_LOG_INFO, "%s@%s: resuming the interrupted %s", r->name, r->version, lr->state);
        run_feed(r, RUN_EV_BEGIN, NULL, 0, tree_present(r));
        return;
    }
    int scheduled = r->lc.state == RUN_SCHEDULED;
    if (!scheduled && !reconcile_state_live(lr->state))
        return; /* failed / rolled_back / stopped / succeeded stay as they were */
    int alive = !scheduled && lr->pid > 0 && lr->proc_start &&
                proc_start_time(lr->pid) == lr->proc_start;
    if (scheduled || alive) {
        int prc = load_held_manifest(r);
        if (prc == 0)
            prc = prepare_workload(r);
        if (prc < 0) {
            run_feed(r, RUN_EV_REFUSED, err_message(prc), 0, 0);
            return;
        }
        if (scheduled) {
            r->supervised = 1;
            run_feed(r, RUN_EV_RESUME, NULL, 0, 0);
            return;
        }
        if (adopt(r, lr) == 0)
            return;
    }
    alog(FERRY_LOG_INFO, "%s@%s: not running any more; starting it", r->name, r->version);
    r->frun.pid = 0;
    run_init(&r->lc, 0, r->lc.since_ms);
    run_feed(r, RUN_EV_BEGIN, NULL, 0, tree_present(r)); /* verified first, like every start */
}

static void restore(struct agent *a)
{
    struct localdb_run *runs = NULL;
    size_t n = 0;
    if (localdb_run_list(&a->db, &runs, &n) < 0) {
        alog(FERRY_LOG_ERROR, "%s", err_detail());
        return;
    }
    for (size_t i = 0; i < n; i++)
        restore_run(a, &runs[i]);
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

/* ---- metrics: runs lent to agent/metrics.c, kept alive like a probe's ---- */

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
    r->work_pending--;
    run_release(r); /* freed here when it was destroyed meanwhile */
}

static void metrics_updated(void *arg) { publish_snapshot(arg); }

/* ---- start and stop ---- */

/* For actions (agent/actions.c): the directory of name's run that is
 * running, else of the newest one. Loop thread. */
static int action_lookup(void *arg, const char *name, char *dir, size_t cap, char *version,
                         size_t vcap)
{
    const struct run *pick = NULL;
    for (const struct run *r = ((struct agent *)arg)->runs; r; r = r->next)
        if (strcmp(r->name, name) == 0 &&
            (!pick || r->lc.state == RUN_RUNNING ||
             (pick->lc.state != RUN_RUNNING && r->issued_ms > pick->issued_ms)))
            pick = r;
    if (!pick)
        return FERRY_E_NOTFOUND;
    snprintf(dir, cap, "%s", pick->dir);
    snprintf(version, vcap, "%s", pick->version);
    return 0;
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
    /* Before anything in the state is read or written. */
    int lock_fd = statelock_take(state);
    if (lock_fd < 0) {
        free(a);
        return lock_fd;
    }
    snprintf(a->workloads_dir, sizeof a->workloads_dir, "%s/workloads", state);
    snprintf(a->cache_dir, sizeof a->cache_dir, "%s/blobs", state);
    fs_mkdir_p(a->workloads_dir, 0755);
    fs_mkdir_p(a->cache_dir, 0700);
    char dbpath[4200];
    snprintf(dbpath, sizeof dbpath, "%s/agent.db", cfg->state_dir);
    if ((rc = localdb_open(&a->db, dbpath)) < 0) {
        close(lock_fd);
        free(a);
        return rc;
    }
    if ((rc = envgate_open(&a->gate, &a->db, state, cfg->trust_registry)) < 0) {
        localdb_close(&a->db);
        close(lock_fd);
        free(a);
        return rc;
    }
    if ((rc = load_host_key(a)) < 0) {
        localdb_close(&a->db);
        close(lock_fd);
        free(a);
        return rc;
    }
    /* Said once the state is ours: an agent refused at start says one line. */
    if (!cfg->trust || cfg->trust->n == 0)
        alog(FERRY_LOG_WARN, "no --trust keys: every deployment will be refused");
    if (!cfg->admins)
        alog(FERRY_LOG_INFO, "no --trust-admin: this host verifies no governance policy itself");
    uv_loop_init(&a->loop);
    agent_clock_loop = &a->loop;
    host_table_init(a);
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

    char policy_cache[1024];
    snprintf(policy_cache, sizeof policy_cache, "%s/policy.bin", cfg->state_dir);
    struct link_config lc = {
        .url = cfg->registry_url,
        .host = cfg->name,
        .labels = &cfg->labels,
        .host_key = &a->host_key,
        .poll_wait_ms = cfg->poll_wait_ms,
        .heartbeat_ms = cfg->heartbeat_ms,
        .join_token = cfg->join_token, .join_token_len = cfg->join_token_len,
        .plugins = &a->plugins,
        .trust = cfg->trust, .trust_logs = cfg->trust_logs, .action_lookup = action_lookup, .action_lookup_arg = a,
        .action_verb = run_action_start, .action_verb_arg = a,
        .operators = cfg->operators, .admins = cfg->admins, .policy_cache = policy_cache,
    };
    link_start(&a->loop, &lc, on_desired, a, &a->link);
    if (runupload_start(cfg->registry_url, cfg->name, &a->host_key, a->workloads_dir, 0,
                        &a->uploads) < 0)
        alog(FERRY_LOG_ERROR, "%s", err_detail());
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
    runupload_stop(a->uploads);
    a->uploads = NULL;
    metrics_stop(a->metrics); /* a pass in flight releases its runs first */
    a->metrics = NULL;
    while (a->runs)
        run_destroy(a->runs);
    uv_walk(&a->loop, walk_close, NULL);
    uv_run(&a->loop, UV_RUN_DEFAULT);
    uv_loop_close(&a->loop);
    pluginhost_unload_all(&a->plugins);
    localdb_close(&a->db);
    close(lock_fd);
    key_secret_wipe(&a->host_key);
    free(a);
    return 0;
}
