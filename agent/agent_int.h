/* The agent's engine inside: what its modules share. Not a public header.
 *
 *   agent.c    start and stop, restore from local state, maintenance
 *   runs.c     the runs of this host: lifetime, the glue between the run
 *              table (run.c), the supervisor (supervisor.c) and the
 *              process, tree jobs, reports
 *   process.c  a run's process: the host table plugins call (spawn, signal,
 *              alive, probes), exit watching, health probes
 *   desired.c  the signed desired state turned into run events
 *
 * Everything runs on the one libuv loop, except the tree jobs, probes and
 * metrics collections on the thread pool, which read only what stays fixed
 * while work_pending is set. */
#ifndef FERRY_AGENT_AGENT_INT_H
#define FERRY_AGENT_AGENT_INT_H

#include "agent.h"
#include "envgate.h"
#include "hash.h"
#include "link.h"
#include "localdb.h"
#include "manifest.h"
#include "pluginhost.h"
#include "run.h"
#include "supervisor.h"
#include "wire.pb-c.h"

#include <ferry/plugin.h>
#include <stdint.h>
#include <uv.h>

#define STOP_TIMEOUT_MS 5000

struct agent;
struct metrics;

/* One version of one workload on this host. */
struct run {
    struct agent *a;
    struct run *next;
    char name[72], version[72];
    char dir[4096];
    uint64_t issued_ms;
    struct digest digest; /* of the manifest the signed record pins */
    /* The key that signed the record this run came from ("" for a run
     * restored from local state): with --trust-admin, a deploy by a key the
     * policy has revoked or that is no operator is refused (agent/tree.c). */
    char deployer[KEY_ID_LEN + 1];
    int has_digest;

    struct run_lc lc; /* what the run is: state, reason, job rounds (run.h) */
    struct sup sup;   /* its process (supervisor.h) */
    int supervised;   /* sup drives this run (it was started or adopted) */
    int verified;     /* the tree was verified just now: the next spawn may go ahead */

    Ferry__Manifest *manifest; /* verified; its spec is the runtime spec */
    struct ferry_workload wl;
    struct ferry_run frun;
    uint64_t proc_start;
    const struct plugin_slot *plugin;

    uv_timer_t sup_timer, probe_timer, sched_timer;
    uv_process_t proc;
    uv_poll_t pidfd_poll;
    int pidfd;
    int proc_active, poll_active;
    uint32_t probe_delay_ms;
    int work_pending; /* fetches, verifications and probes on the thread pool */
    int probe_busy;   /* one of them is a probe */
    /* Tree jobs of one folder never overlap (they share its staging): a run
     * whose folder is busy waits (1: a first start, 2: a restart), and a
     * forgotten run's folder goes once its job is done. */
    int tree_busy, tree_waiting, tree_rm_after;
    struct run *next_departing; /* in agent.departing while its job runs */
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
    struct runupload *uploads; /* notebook runs to the registry (runupload.h) */
    struct metrics *metrics; /* agent/metrics.c: lent live runs as probes are */
    struct run *runs;
    struct run *departing; /* destroyed runs whose tree job still runs */
    char workloads_dir[4096], cache_dir[4096];
    char last_refusal[512]; /* logged once, not at every poll */
    struct envgate gate;    /* desired state's envelopes (envgate.h) */
    /* Governance: the channel pointers of the desired state being applied
     * (desired.c); NULL outside on_desired. */
    Ferry__Wire__ChannelPin **pins;
    size_t n_pins;
    int stopping;
};

/* ---- runs.c ---- */

/* The loop's clock (the supervisor's): set once by agent_run. */
extern uv_loop_t *agent_clock_loop;
uint64_t mono_ms(void);

struct run *run_new(struct agent *a, const char *name, const char *version, uint64_t issued_ms,
                    int rollout);
struct run *find_run(struct agent *a, const char *name, const char *version);
/* Unlink r and free it once its handles are closed and no pool work refers
 * to it. The process itself is left alone. */
void run_destroy(struct run *r);
/* Drop r for good: its local record, and with remove_tree its tree. */
void run_forget(struct run *r, int remove_tree);
/* Free r if it is being destroyed and nothing refers to it any more. */
void run_release(struct run *r);
void close_run_handle(struct run *r, uv_handle_t *h);

/* Feed r's run table one event and perform what it answers. */
void run_feed(struct run *r, enum run_event ev, const char *detail, int status, int flag);
/* Feed r's supervisor one event (status: an exit's status, -1 when not a
 * plain exit), perform its actions and tell the run table what changed. */
void sup_feed(struct run *r, enum sup_event ev, const char *detail, int status);
/* Every state change of r (run_feed does it): persisted, logged, reported. */
void report_run(struct run *r);
void persist_run(struct run *r);
/* agent/runaction.c: a plugin verb for a running workload (agent_actions_verb_fn). */
int run_action_start(void *arg, struct agent_actions *aa, const uint8_t id[ACTION_ID_LEN],
                     const char *workload, const char *verb, const char *request_json);
void publish_snapshot(struct agent *a);

/* The manifest held in local state, checked again; and the plugin, the
 * workload and the supervision policy from its spec. */
int load_held_manifest(struct run *r);
int prepare_workload(struct run *r);
/* Get r's tree ready on the thread pool (respawn: for a restart, spawn after). */
void start_tree_job(struct run *r, int respawn);
/* 1 when r has a tree on disk (to verify rather than fetch). */
int tree_present(const struct run *r);

/* ---- process.c ---- */

/* Fill a->host, the table plugins call back into. */
void host_table_init(struct agent *a);
/* Spawn through the plugin; only right after the tree was verified. */
int spawn_now(struct run *r);
int run_signal(struct run *r, int sig);
/* Watch a process that is not our child (adopted after an agent restart). */
int watch_pidfd(struct run *r);
/* Arm the next health probe (a job is not probed). */
void schedule_probe(struct run *r);

/* ---- desired.c ---- */

/* The registry's (from_registry) or the locally held signed records. */
void apply_desired(struct agent *a, Ferry__SignedRecord **recs, size_t n, int from_registry);
/* The link's callback for a new desired state. */
void on_desired(void *arg, Ferry__Wire__DesiredState *ds);

#endif
