/* The lifecycle of one run (one version of one workload on this host), as
 * an explicit table transitions[state][event] in run.c.
 *
 * Pure logic: no I/O, no clock, no libuv. The agent feeds each event with
 * the current time (Unix ms: schedules are in UTC) and performs the actions
 * handed back in struct run_out, in the bit order of RUN_DO_*.
 *
 * How it relates to the supervisor (supervisor.h): this table owns what a
 * run is (the reported state and reason, rollout, rollback, retirement, a
 * job's retries and schedule); the supervisor owns one process at a time
 * (spawn, health deadline, backoff, crash loop, TERM then KILL). The agent
 * turns the supervisor's state changes into events here (STARTED, HEALTHY,
 * UNHEALTHY, EXITED, GAVE_UP, STOPPED) and this table's START/STOP actions
 * into supervisor events. docs/agent.md says why it is split this way.
 *
 * Events that mean nothing in the current state are ignored (no actions).
 * No input, however wrong, makes it crash or assert. */
#ifndef FERRY_AGENT_RUN_H
#define FERRY_AGENT_RUN_H

#include "schedule.h"

#include <stdbool.h>
#include <stdint.h>

#define RUN_REASON_MAX 256

enum run_state {
    RUN_PENDING,     /* known, nothing done yet (0: a zeroed run is pending) */
    RUN_FETCHING,    /* getting the tree: none on disk yet */
    RUN_VERIFYING,   /* checking the tree on disk against the signed manifest */
    RUN_STARTING,    /* with the supervisor: (re)spawning, not healthy yet */
    RUN_RUNNING,     /* a service: healthy; a job: its process runs */
    RUN_UNHEALTHY,   /* a service whose probes kept failing: being restarted */
    RUN_STOPPING,    /* asked to stop (undeploy, replaced): reported "stopped" */
    RUN_STOPPED,
    RUN_FAILED,
    RUN_ROLLED_BACK, /* a new version that failed while the previous one runs on */
    RUN_SUCCEEDED,   /* a job that exited 0 */
    RUN_SCHEDULED,   /* a job waiting for its next run */
    RUN_NSTATES
};

enum run_event {
    RUN_EV_BEGIN,      /* get the tree ready; in.flag: a tree is on disk already */
    RUN_EV_FETCHED,    /* the blobs are in; the tree is being verified */
    RUN_EV_VERIFIED,   /* tree verified, workload prepared: start it (or wait for its time) */
    RUN_EV_REFUSED,    /* refused by policy (record not for this host, manifest not
                        * trusted), or the tree/workload could not be made ready */
    RUN_EV_STARTED,    /* the supervisor (re)spawns the process */
    RUN_EV_HEALTHY,    /* the supervisor: healthy, or adopted after an agent restart */
    RUN_EV_UNHEALTHY,  /* the supervisor: probes kept failing, it restarts the process */
    RUN_EV_EXITED,     /* the process ended on its own; in.status: its exit status,
                        * -1 when not a plain exit (signal, could not start, unknown).
                        * A service: the supervisor restarts it. A job: decides. */
    RUN_EV_GAVE_UP,    /* the supervisor gave up: health deadline missed, or crash
                        * loop; in.other: a version of the name that keeps running */
    RUN_EV_STOP,       /* stop requested: undeployed, or the selector no longer matches */
    RUN_EV_SUPERSEDED, /* another version of the name took over */
    RUN_EV_STOPPED,    /* the supervisor: the process is gone after a stop */
    RUN_EV_DUE,        /* the schedule timer fired */
    RUN_EV_RESUME,     /* the agent restarted and restored this run: re-arm its timer */
    RUN_EV_UNLISTED,   /* the registry stopped sending the name: kept, and said so */
    RUN_EV_LISTED,     /* ... and sends it again */
    RUN_NEVENTS
};

/* Actions, a bit set; perform them in this (bit) order: the report comes
 * first, so what the agent says follows the order things happened in even
 * when an action feeds the table again. RUN_DO_TIMER and
 * RUN_DO_CANCEL_TIMER are never set together. */
enum {
    RUN_DO_REPORT = 1,         /* state or reason changed: persist, log, report */
    RUN_DO_PREPARE = 2,        /* fetch or verify the tree (on the thread pool) */
    RUN_DO_START = 4,          /* feed the supervisor START (it verifies, then spawns) */
    RUN_DO_STOP = 8,           /* feed the supervisor STOP (TERM, then KILL) */
    RUN_DO_KILL = 16,          /* SIGKILL whatever process is left (a failed run dropped) */
    RUN_DO_TIMER = 32,         /* arm the schedule timer for timer_at_ms (Unix ms) */
    RUN_DO_CANCEL_TIMER = 64,  /* disarm it */
    RUN_DO_RETIRE_OTHERS = 128,/* this version took over: supersede the others of its name */
    RUN_DO_FORGET = 256,       /* drop the run: its record and its tree */
};

/* What the workload's spec says about running to completion. */
struct run_job {
    bool job;          /* run.mode: job */
    uint32_t retries;  /* restarts after a non-zero exit */
    bool has_schedule;
    struct schedule sched;
};

struct run_in {
    enum run_event ev;
    uint64_t now_ms;    /* Unix ms */
    const char *detail; /* the reason behind the event; may be NULL */
    int status;         /* EXITED */
    bool flag;          /* BEGIN: the tree is on disk */
    const char *other;  /* GAVE_UP: the version that keeps running, NULL if none */
};

struct run_out {
    unsigned actions;     /* RUN_DO_* */
    uint64_t timer_at_ms; /* with RUN_DO_TIMER */
};

struct run_lc {
    /* Read-only for the caller. */
    enum run_state state;
    char reason[RUN_REASON_MAX]; /* as reported (see unlisted) */
    uint64_t since_ms;           /* when state last changed */
    uint32_t runs;               /* a job: runs in this round (the first and its retries) */
    uint64_t next_ms;            /* RUN_SCHEDULED: the next run */
    struct run_job job;

    /* Private. */
    bool rollout;  /* started while another version of the name ran */
    bool unlisted; /* the registry no longer sends the name */
    bool timer_armed;
    char own[RUN_REASON_MAX]; /* the reason without the unlisted note */
};

/* A new run. rollout: another version of the name is there to go back to. */
void run_init(struct run_lc *r, bool rollout, uint64_t now_ms);
/* A run rebuilt from local state after an agent restart. An unknown state
 * name comes back as RUN_FAILED with a reason saying so (returns -1). */
int run_restore(struct run_lc *r, const char *state, const char *reason, uint64_t since_ms);
/* What the spec says, once the workload is prepared (before VERIFIED). */
void run_configure(struct run_lc *r, const struct run_job *job);
/* Feed one event. out is always written (actions 0 when ignored). */
void run_event(struct run_lc *r, const struct run_in *in, struct run_out *out);

/* The reported name: "pending" ... "scheduled"; RUN_STOPPING reports
 * "stopped" as before; "unknown" out of range. */
const char *run_state_name(enum run_state st);
const char *run_event_name(enum run_event ev);
/* -1 when not a reported state name. "stopped" is RUN_STOPPED. */
int run_state_parse(const char *name);

#endif
