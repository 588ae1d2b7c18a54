/* The lifecycle of one run: an explicit state table, pure logic.
 * See run.h for the contract with the caller. */
#include "run.h"
#include "reconcile.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* One event being handled. `next` starts as the table's target state; an
 * action may divert it (documented next to the table cell). */
struct step {
    const struct run_in *in;
    const char *detail; /* never NULL */
    struct run_out *out;
    enum run_state next;
};

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void set_reason(struct run_lc *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->own, sizeof r->own, fmt, ap);
    va_end(ap);
}

static bool final_state(enum run_state st)
{
    return st == RUN_FAILED || st == RUN_ROLLED_BACK || st == RUN_STOPPED || st == RUN_SUCCEEDED;
}

static void arm_timer(struct run_lc *r, struct step *st, uint64_t at)
{
    r->timer_armed = true;
    st->out->actions = (st->out->actions | RUN_DO_TIMER) & ~(unsigned)RUN_DO_CANCEL_TIMER;
    st->out->timer_at_ms = at;
}

static void cancel_timer(struct run_lc *r, struct step *st)
{
    if (r->timer_armed)
        st->out->actions |= RUN_DO_CANCEL_TIMER;
    st->out->actions &= ~(unsigned)RUN_DO_TIMER;
    st->out->timer_at_ms = 0;
    r->timer_armed = false;
}

/* "2026-12-01T09:30:00Z" */
static const char *fmt_utc(char *buf, size_t cap, uint64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, cap, "%llu ms", (unsigned long long)ms);
    return buf;
}

/* Ask the supervisor for one more run of the process. */
static void start(struct run_lc *r, struct step *st)
{
    st->out->actions |= RUN_DO_START;
    r->runs++;
}

/* A job's round ended (last: what happened, e.g. "exited with status 0
 * after 2 runs"). With a schedule it waits for the next one; without, it
 * ends as done (the state the table cell gives). */
static void round_over(struct run_lc *r, struct step *st, enum run_state done, const char *last)
{
    char when[40];
    if (!r->job.has_schedule) {
        st->next = done;
        set_reason(r, "%s", last);
        return;
    }
    /* From the time this round was due at the earliest: a timer that fired
     * a little before the minute (clocks drift) must not run the same
     * minute twice. */
    uint64_t next = 0, after = st->in->now_ms > r->next_ms ? st->in->now_ms : r->next_ms;
    if (schedule_next(&r->job.sched, after, &next) < 0) {
        st->next = RUN_FAILED;
        set_reason(r, "schedule: nothing fires within ten years; last run: %.150s", last);
        return;
    }
    r->next_ms = next;
    r->runs = 0;
    st->next = RUN_SCHEDULED;
    arm_timer(r, st, next);
    set_reason(r, "next run at %s; last run: %.180s", fmt_utc(when, sizeof when, next), last);
}

/* ---- action functions: one per special case, named in the table ---- */

typedef void (*run_action)(struct run_lc *r, struct step *st);

/* PENDING/FETCHING/VERIFYING + BEGIN: fetch when there is no tree, else
 * verify the one there. Also how a run interrupted by an agent restart is
 * taken up again. */
static void act_begin(struct run_lc *r, struct step *st)
{
    st->next = st->in->flag ? RUN_VERIFYING : RUN_FETCHING;
    st->out->actions |= RUN_DO_PREPARE;
    set_reason(r, "%s", "");
}

/* FETCHING + FETCHED */
static void act_fetched(struct run_lc *r, struct step *st)
{
    set_reason(r, "%s", "");
}

/* FETCHING/VERIFYING + VERIFIED: a service or an unscheduled job starts; a
 * scheduled job waits for its first time. A job has no health check, so it
 * takes over from the version it replaces as soon as it is ready. */
static void act_verified(struct run_lc *r, struct step *st)
{
    r->runs = 0;
    if (r->job.job && r->rollout) {
        st->out->actions |= RUN_DO_RETIRE_OTHERS;
        r->rollout = false;
    }
    if (r->job.job && r->job.has_schedule) {
        char when[40];
        uint64_t next = 0;
        if (schedule_next(&r->job.sched, st->in->now_ms, &next) < 0) {
            st->next = RUN_FAILED;
            set_reason(r, "schedule: nothing fires within ten years");
            return;
        }
        r->next_ms = next;
        st->next = RUN_SCHEDULED;
        arm_timer(r, st, next);
        set_reason(r, "next run at %s", fmt_utc(when, sizeof when, next));
        return;
    }
    start(r, st);
    set_reason(r, "starting");
}

/* any not-yet-final state + REFUSED */
static void act_refused(struct run_lc *r, struct step *st)
{
    cancel_timer(r, st);
    set_reason(r, "%s", *st->detail ? st->detail : "refused");
}

/* STARTING/RUNNING/UNHEALTHY + STARTED: a service is starting until
 * healthy; a job runs from its spawn on (it has no health check). */
static void act_started(struct run_lc *r, struct step *st)
{
    if (!r->job.job) {
        st->next = RUN_STARTING;
        set_reason(r, "%s", *st->detail ? st->detail : "starting");
        return;
    }
    st->next = RUN_RUNNING;
    if (r->job.retries && r->runs > 1)
        set_reason(r, "run %u of %u", (unsigned)r->runs, (unsigned)r->job.retries + 1);
    else
        set_reason(r, "running");
}

/* STARTING/RUNNING/UNHEALTHY + HEALTHY: the first health of a rollout
 * retires the version it replaces. */
static void act_healthy(struct run_lc *r, struct step *st)
{
    if (r->rollout) {
        st->out->actions |= RUN_DO_RETIRE_OTHERS;
        r->rollout = false;
    }
    set_reason(r, "%s", *st->detail ? st->detail : "healthy");
}

/* STARTING/RUNNING + UNHEALTHY (a job is never probed: stays as it is) */
static void act_unhealthy(struct run_lc *r, struct step *st)
{
    if (r->job.job) {
        st->next = r->state;
        return;
    }
    set_reason(r, "%s", *st->detail ? st->detail : "failed probes");
}

/* STARTING/RUNNING/UNHEALTHY + EXITED. A service: the supervisor restarts
 * it after its backoff, so it is starting again. A job: exit 0 succeeds;
 * otherwise it runs again while retries are left, then fails with the exit
 * in the reason. A scheduled job then waits for its next time either way. */
static void act_exited(struct run_lc *r, struct step *st)
{
    const char *why = *st->detail ? st->detail : "exited";
    if (!r->job.job) {
        st->next = RUN_STARTING;
        set_reason(r, "%s", why);
        return;
    }
    char last[RUN_REASON_MAX];
    if (r->runs > 1)
        snprintf(last, sizeof last, "%.200s after %u runs", why, (unsigned)r->runs);
    else
        snprintf(last, sizeof last, "%.200s", why);
    if (st->in->status == 0) {
        round_over(r, st, RUN_SUCCEEDED, last);
        return;
    }
    if (r->runs <= r->job.retries) {
        st->next = RUN_STARTING;
        set_reason(r, "%.200s; retry %u of %u", why, (unsigned)r->runs, (unsigned)r->job.retries);
        start(r, st);
        return;
    }
    round_over(r, st, RUN_FAILED, last);
}

/* STARTING + GAVE_UP: a rollout that never became healthy is rolled back
 * when the previous version still runs; otherwise (and from RUNNING or
 * UNHEALTHY: a crash loop) it failed. */
static void act_gave_up(struct run_lc *r, struct step *st)
{
    const char *why = *st->detail ? st->detail : "gave up";
    if (st->next == RUN_FAILED && r->rollout && st->in->other && *st->in->other) {
        st->next = RUN_ROLLED_BACK;
        set_reason(r, "%.160s; %.60s keeps running", why, st->in->other);
        return;
    }
    set_reason(r, "%s", why);
}

/* STARTING/RUNNING/UNHEALTHY + STOP/SUPERSEDED: the process goes first;
 * the run is forgotten once the supervisor says it is stopped. */
static void act_stop(struct run_lc *r, struct step *st)
{
    st->out->actions |= RUN_DO_STOP;
    if (st->in->ev == RUN_EV_SUPERSEDED)
        set_reason(r, "stopped by request: %s", *st->detail ? st->detail : "replaced");
    else if (*st->detail)
        set_reason(r, "stopped by request: %s", st->detail);
    else
        set_reason(r, "stopped by request");
}

/* A state with no process under supervision + STOP/SUPERSEDED: dropped at
 * once. A failed run may still have the process its deadline TERMed: KILL
 * it. A scheduled run's timer goes. */
static void act_drop(struct run_lc *r, struct step *st)
{
    if (r->state == RUN_FAILED || r->state == RUN_ROLLED_BACK)
        st->out->actions |= RUN_DO_KILL;
    cancel_timer(r, st);
    st->out->actions |= RUN_DO_FORGET;
}

/* STOPPING + STOPPED: reported, then forgotten. */
static void act_stopped(struct run_lc *r, struct step *st)
{
    if (*st->detail)
        set_reason(r, "%s", st->detail);
    st->out->actions |= RUN_DO_FORGET;
}

/* SCHEDULED + DUE: a new round. */
static void act_due(struct run_lc *r, struct step *st)
{
    r->timer_armed = false;
    r->runs = 0;
    start(r, st);
    set_reason(r, "starting");
}

/* SCHEDULED + RESUME: after an agent restart, the next time from now (a
 * time missed while the agent was down is not made up for). */
static void act_resume(struct run_lc *r, struct step *st)
{
    char when[40];
    uint64_t next = 0;
    if (!r->job.has_schedule || schedule_next(&r->job.sched, st->in->now_ms, &next) < 0) {
        st->next = RUN_FAILED;
        set_reason(r, "schedule: no next run");
        return;
    }
    r->next_ms = next;
    arm_timer(r, st, next);
    set_reason(r, "next run at %s", fmt_utc(when, sizeof when, next));
}

/* any state but STOPPING + UNLISTED/LISTED: the reason of a state that has
 * not ended says the run is kept; a final one keeps saying why it ended. */
static void act_listing(struct run_lc *r, struct step *st)
{
    r->unlisted = st->in->ev == RUN_EV_UNLISTED;
}

/* ---- the table ---- */

struct transition {
    run_action act; /* NULL: nothing to do besides moving */
    enum run_state next;
    bool move; /* false: stay in the current state (unless act diverts) */
};

#define GO(state, fn) { fn, state, true }
#define DO(fn) { fn, RUN_PENDING, false }

/* Cells not listed are ignored: no state change, no action. */
static const struct transition transitions[RUN_NSTATES][RUN_NEVENTS] = {
    [RUN_PENDING] = {
        [RUN_EV_BEGIN]      = GO(RUN_FETCHING, act_begin),   /* or VERIFYING; PREPARE */
        [RUN_EV_REFUSED]    = GO(RUN_FAILED, act_refused),
        [RUN_EV_STOP]       = DO(act_drop),                  /* FORGET */
        [RUN_EV_SUPERSEDED] = DO(act_drop),
        [RUN_EV_UNLISTED]   = DO(act_listing),
        [RUN_EV_LISTED]     = DO(act_listing),
    },
    [RUN_FETCHING] = {
        [RUN_EV_BEGIN]      = GO(RUN_FETCHING, act_begin),   /* resumed; or VERIFYING */
        [RUN_EV_FETCHED]    = GO(RUN_VERIFYING, act_fetched),
        [RUN_EV_VERIFIED]   = GO(RUN_STARTING, act_verified),/* START; or SCHEDULED: TIMER */
        [RUN_EV_REFUSED]    = GO(RUN_FAILED, act_refused),
        [RUN_EV_STOP]       = DO(act_drop),
        [RUN_EV_SUPERSEDED] = DO(act_drop),
        [RUN_EV_UNLISTED]   = DO(act_listing),
        [RUN_EV_LISTED]     = DO(act_listing),
    },
    [RUN_VERIFYING] = {
        [RUN_EV_BEGIN]      = GO(RUN_VERIFYING, act_begin),  /* resumed; or FETCHING */
        [RUN_EV_VERIFIED]   = GO(RUN_STARTING, act_verified),
        [RUN_EV_REFUSED]    = GO(RUN_FAILED, act_refused),
        [RUN_EV_STOP]       = DO(act_drop),
        [RUN_EV_SUPERSEDED] = DO(act_drop),
        [RUN_EV_UNLISTED]   = DO(act_listing),
        [RUN_EV_LISTED]     = DO(act_listing),
    },
    [RUN_STARTING] = {
        [RUN_EV_REFUSED]    = GO(RUN_FAILED, act_refused),
        [RUN_EV_STARTED]    = DO(act_started),               /* a job: RUNNING */
        [RUN_EV_HEALTHY]    = GO(RUN_RUNNING, act_healthy),  /* RETIRE_OTHERS in a rollout */
        [RUN_EV_UNHEALTHY]  = GO(RUN_UNHEALTHY, act_unhealthy),
        [RUN_EV_EXITED]     = DO(act_exited),                /* a job: see act_exited */
        [RUN_EV_GAVE_UP]    = GO(RUN_FAILED, act_gave_up),   /* or ROLLED_BACK */
        [RUN_EV_STOP]       = GO(RUN_STOPPING, act_stop),    /* STOP */
        [RUN_EV_SUPERSEDED] = GO(RUN_STOPPING, act_stop),
        [RUN_EV_UNLISTED]   = DO(act_listing),
        [RUN_EV_LISTED]     = DO(act_listing),
    },
    [RUN_RUNNING] = {
        [RUN_EV_REFUSED]    = GO(RUN_FAILED, act_refused),
        [RUN_EV_STARTED]    = DO(act_started),               /* a service: STARTING */
        [RUN_EV_HEALTHY]    = DO(act_healthy),
        [RUN_EV_UNHEALTHY]  = GO(RUN_UNHEALTHY, act_unhealthy),
        [RUN_EV_EXITED]     = DO(act_exited),                /* a service: STARTING */
        [RUN_EV_GAVE_UP]    = GO(RUN_FAILED, act_gave_up),   /* crash loop */
        [RUN_EV_STOP]       = GO(RUN_STOPPING, act_stop),
        [RUN_EV_SUPERSEDED] = GO(RUN_STOPPING, act_stop),
        [RUN_EV_UNLISTED]   = DO(act_listing),
        [RUN_EV_LISTED]     = DO(act_listing),
    },
    [RUN_UNHEALTHY] = {
        [RUN_EV_REFUSED]    = GO(RUN_FAILED, act_refused),
        [RUN_EV_STARTED]    = DO(act_started),               /* STARTING */
        [RUN_EV_HEALTHY]    = GO(RUN_RUNNING, act_healthy),
        [RUN_EV_UNHEALTHY]  = DO(act_unhealthy),
        [RUN_EV_EXITED]     = DO(act_exited),                /* STARTING */
        [RUN_EV_GAVE_UP]    = GO(RUN_FAILED, act_gave_up),
        [RUN_EV_STOP]       = GO(RUN_STOPPING, act_stop),
        [RUN_EV_SUPERSEDED] = GO(RUN_STOPPING, act_stop),
        [RUN_EV_UNLISTED]   = DO(act_listing),
        [RUN_EV_LISTED]     = DO(act_listing),
    },
    [RUN_STOPPING] = {
        [RUN_EV_STOPPED]    = GO(RUN_STOPPED, act_stopped),  /* REPORT, FORGET */
    },
    [RUN_STOPPED] = {
        [RUN_EV_STOP]       = DO(act_drop),
        [RUN_EV_SUPERSEDED] = DO(act_drop),
        [RUN_EV_UNLISTED]   = DO(act_listing),
        [RUN_EV_LISTED]     = DO(act_listing),
    },
    [RUN_FAILED] = {
        [RUN_EV_STOP]       = DO(act_drop),                  /* KILL, FORGET */
        [RUN_EV_SUPERSEDED] = DO(act_drop),
        [RUN_EV_UNLISTED]   = DO(act_listing),
        [RUN_EV_LISTED]     = DO(act_listing),
    },
    [RUN_ROLLED_BACK] = {
        [RUN_EV_STOP]       = DO(act_drop),
        [RUN_EV_SUPERSEDED] = DO(act_drop),                  /* no lingering rolled_back */
        [RUN_EV_UNLISTED]   = DO(act_listing),
        [RUN_EV_LISTED]     = DO(act_listing),
    },
    [RUN_SUCCEEDED] = {
        [RUN_EV_STOP]       = DO(act_drop),
        [RUN_EV_SUPERSEDED] = DO(act_drop),
        [RUN_EV_UNLISTED]   = DO(act_listing),
        [RUN_EV_LISTED]     = DO(act_listing),
    },
    [RUN_SCHEDULED] = {
        [RUN_EV_REFUSED]    = GO(RUN_FAILED, act_refused),   /* CANCEL_TIMER */
        [RUN_EV_DUE]        = GO(RUN_STARTING, act_due),     /* START */
        [RUN_EV_RESUME]     = DO(act_resume),                /* TIMER */
        [RUN_EV_STOP]       = DO(act_drop),                  /* CANCEL_TIMER, FORGET */
        [RUN_EV_SUPERSEDED] = DO(act_drop),
        [RUN_EV_UNLISTED]   = DO(act_listing),
        [RUN_EV_LISTED]     = DO(act_listing),
    },
};

/* ---- entry points ---- */

/* The reason as reported: a run kept without its record says so, unless it
 * ended (why it ended stays). */
static void publish_reason(struct run_lc *r)
{
    const char *shown = r->unlisted && !final_state(r->state) ? RECONCILE_KEPT_REASON : r->own;
    snprintf(r->reason, sizeof r->reason, "%s", shown);
}

void run_init(struct run_lc *r, bool rollout, uint64_t now_ms)
{
    if (!r)
        return;
    memset(r, 0, sizeof *r);
    r->state = RUN_PENDING;
    r->rollout = rollout;
    r->since_ms = now_ms;
}

int run_restore(struct run_lc *r, const char *state, const char *reason, uint64_t since_ms)
{
    if (!r)
        return -1;
    memset(r, 0, sizeof *r);
    r->since_ms = since_ms;
    int st = state ? run_state_parse(state) : -1;
    if (st < 0) {
        r->state = RUN_FAILED;
        set_reason(r, "unknown state '%.64s' in local state", state ? state : "");
        publish_reason(r);
        return -1;
    }
    r->state = (enum run_state)st;
    set_reason(r, "%s", reason ? reason : "");
    if (strcmp(r->own, RECONCILE_KEPT_REASON) == 0) {
        r->unlisted = true; /* it said so when the agent stopped */
        r->own[0] = '\0';
    }
    publish_reason(r);
    return 0;
}

void run_configure(struct run_lc *r, const struct run_job *job)
{
    if (r && job)
        r->job = *job;
}

void run_event(struct run_lc *r, const struct run_in *in, struct run_out *out)
{
    struct run_out scratch;
    if (!out)
        out = &scratch;
    out->actions = 0;
    out->timer_at_ms = 0;
    if (!r || !in || (unsigned)r->state >= RUN_NSTATES || (unsigned)in->ev >= RUN_NEVENTS)
        return;
    const struct transition *t = &transitions[r->state][in->ev];
    if (!t->act && !t->move)
        return;

    struct step st = {
        .in = in,
        .detail = in->detail ? in->detail : "",
        .out = out,
        .next = t->move ? t->next : r->state,
    };
    enum run_state before = r->state;
    char shown[RUN_REASON_MAX];
    memcpy(shown, r->reason, sizeof shown);
    if (t->act)
        t->act(r, &st);
    r->state = st.next;
    publish_reason(r);
    if (r->state != before)
        r->since_ms = in->now_ms;
    if (r->state != before || strcmp(shown, r->reason) != 0)
        out->actions |= RUN_DO_REPORT;
}

static const char *const state_names[RUN_NSTATES] = {
    [RUN_PENDING] = "pending",     [RUN_FETCHING] = "fetching",
    [RUN_VERIFYING] = "verifying", [RUN_STARTING] = "starting",
    [RUN_RUNNING] = "running",     [RUN_UNHEALTHY] = "unhealthy",
    [RUN_STOPPING] = "stopped",    [RUN_STOPPED] = "stopped",
    [RUN_FAILED] = "failed",       [RUN_ROLLED_BACK] = "rolled_back",
    [RUN_SUCCEEDED] = "succeeded", [RUN_SCHEDULED] = "scheduled",
};

const char *run_state_name(enum run_state st)
{
    return (unsigned)st < RUN_NSTATES ? state_names[st] : "unknown";
}

int run_state_parse(const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < RUN_NSTATES; i++)
        if (i != RUN_STOPPING && strcmp(state_names[i], name) == 0)
            return i;
    return -1;
}

static const char *const event_names[RUN_NEVENTS] = {
    [RUN_EV_BEGIN] = "begin",       [RUN_EV_FETCHED] = "fetched",
    [RUN_EV_VERIFIED] = "verified", [RUN_EV_REFUSED] = "refused",
    [RUN_EV_STARTED] = "started",   [RUN_EV_HEALTHY] = "healthy",
    [RUN_EV_UNHEALTHY] = "unhealthy", [RUN_EV_EXITED] = "exited",
    [RUN_EV_GAVE_UP] = "gave_up",   [RUN_EV_STOP] = "stop",
    [RUN_EV_SUPERSEDED] = "superseded", [RUN_EV_STOPPED] = "stopped",
    [RUN_EV_DUE] = "due",           [RUN_EV_RESUME] = "resume",
    [RUN_EV_UNLISTED] = "unlisted", [RUN_EV_LISTED] = "listed",
};

const char *run_event_name(enum run_event ev)
{
    return (unsigned)ev < RUN_NEVENTS ? event_names[ev] : "unknown";
}
