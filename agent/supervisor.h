/* Supervisor for one run (one version of one workload on this host).
 *
 * Pure logic: no I/O, no clock, no libuv. The caller (the agent) owns the
 * process, the one timer and the health probes; it feeds each event with the
 * current monotonic time in ms and performs the actions handed back in
 * struct sup_out. The behaviour is an explicit table transitions[state][event]
 * in supervisor.c (the idea of s6-supervise's actions[state][event]).
 *
 * Events that make no sense in the current state are ignored (no actions).
 * No input, however wrong, makes it crash or assert. */
#ifndef FERRY_AGENT_SUPERVISOR_H
#define FERRY_AGENT_SUPERVISOR_H

#include <stdbool.h>
#include <stdint.h>

#define SUP_REASON_MAX 256
#define SUP_DETAIL_MAX 128
/* Crash times remembered for crash-loop detection; crash_max is capped here. */
#define SUP_CRASH_RING 32

/* SUP_STOPPED is 0, so a zeroed struct sup is a stopped one. */
enum sup_state {
    SUP_STOPPED,   /* not running: initial state, or after a requested stop */
    SUP_STARTING,  /* spawned, waiting to be healthy before the deadline */
    SUP_RUNNING,   /* healthy */
    SUP_UNHEALTHY, /* was running, probes kept failing: TERM sent, restarting */
    SUP_BACKOFF,   /* exited, waiting for the backoff timer to respawn */
    SUP_STOPPING,  /* asked to stop: TERM sent, waiting for the exit */
    SUP_FAILED,    /* gave up: crash loop, or never healthy within the deadline */
    SUP_NSTATES
};

enum sup_event {
    SUP_EV_START,     /* begin (from stopped) */
    SUP_EV_HEALTHY,   /* a probe succeeded */
    SUP_EV_UNHEALTHY, /* a probe failed; detail: what the probe saw */
    SUP_EV_EXITED,    /* the process is gone; detail: e.g. "exited with status 1" */
    SUP_EV_TIMER,     /* the timer this supervisor asked for fired */
    SUP_EV_STOP,      /* operator or rollout wants it stopped; detail optional */
    SUP_EV_ADOPTED,   /* agent restarted and found this run alive: no spawn */
    SUP_NEVENTS
};

/* Actions, a bit set; perform them in this (bit) order. SUP_DO_TIMER and
 * SUP_DO_CANCEL_TIMER are never set together. */
enum {
    SUP_DO_SPAWN = 1,         /* start the process */
    SUP_DO_TERM = 2,          /* send SIGTERM */
    SUP_DO_KILL = 4,          /* send SIGKILL */
    SUP_DO_TIMER = 8,         /* arm the one timer at timer_at_ms, replacing any earlier one */
    SUP_DO_CANCEL_TIMER = 16, /* disarm the timer */
    SUP_DO_REPORT = 32,       /* state or reason changed: report state + reason */
};

struct sup_policy {
    uint32_t backoff_initial_ms; /* 200 */
    uint32_t backoff_max_ms;     /* 10000 */
    uint32_t crash_window_ms;    /* 60000 */
    uint32_t crash_max;          /* 5 exits within the window -> failed */
    uint32_t health_deadline_ms; /* 30000 (ferry.yaml overrides) */
    uint32_t unhealthy_max;      /* 3 consecutive failed probes while running -> restart */
    uint32_t stop_timeout_ms;    /* 5000, then SIGKILL */
    /* A job (run.mode: job) runs to completion: no health deadline, and an
     * exit is not a crash. It ends in SUP_STOPPED with the exit as reason;
     * whether to run it again (retries, schedule) is the run table's call
     * (run.h), so the crash-loop rule and the backoff never apply. */
    bool job;
};

struct sup_out {
    unsigned actions;     /* SUP_DO_* */
    uint64_t timer_at_ms; /* with SUP_DO_TIMER: absolute, same clock as now_ms */
};

struct sup {
    /* Read-only for the caller. */
    enum sup_state state;
    uint32_t restarts;            /* respawns after an exit */
    bool ever_healthy;            /* this run was healthy at least once (or adopted) */
    char reason[SUP_REASON_MAX];  /* short human reason for the current state */

    /* Private. */
    struct sup_policy pol;
    uint64_t crash_at[SUP_CRASH_RING]; /* ring of exit times */
    uint32_t crash_next, crash_count;
    uint32_t backoff_ms;          /* delay before the next respawn */
    uint32_t probe_failures;      /* consecutive, while running */
    uint64_t running_since;
    uint64_t last_run_ms;         /* length of the latest RUNNING stretch */
    uint64_t timer_at;
    bool timer_armed;
    bool alive;                   /* a process of this run may still exist */
    bool killed;                  /* SIGKILL sent to the current process */
    char last_probe[SUP_DETAIL_MAX];
};

void sup_policy_default(struct sup_policy *p);
/* p may be NULL (defaults). Zero crash_max/unhealthy_max count as 1,
 * crash_max is capped at SUP_CRASH_RING, backoff_max below backoff_initial is
 * raised to it. Starts in SUP_STOPPED with reason "not started". */
void sup_init(struct sup *s, const struct sup_policy *p);
/* Feed one event. detail may be NULL. out is always written (actions 0 when
 * ignored). A TIMER that is not armed, or arrives before timer_at_ms, is
 * ignored. */
void sup_event(struct sup *s, enum sup_event ev, uint64_t now_ms, const char *detail,
               struct sup_out *out);
/* "starting","running","unhealthy","backoff","stopping","stopped","failed";
 * "unknown" out of range. */
const char *sup_state_name(enum sup_state st);
const char *sup_event_name(enum sup_event ev);

#endif
