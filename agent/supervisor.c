/* Supervisor for one run: an explicit state table, pure logic.
 * See supervisor.h for the contract with the caller. */
#include "supervisor.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void sup_policy_default(struct sup_policy *p)
{
    if (!p)
        return;
    p->backoff_initial_ms = 200;
    p->backoff_max_ms = 10000;
    p->crash_window_ms = 60000;
    p->crash_max = 5;
    p->health_deadline_ms = 30000;
    p->unhealthy_max = 3;
    p->stop_timeout_ms = 5000;
    p->job = false;
}

/* ---- helpers for the action functions ---- */

/* One event being handled. `next` starts as the table's target state; an
 * action may divert it (documented next to the table cell). */
struct step {
    uint64_t now;
    const char *detail; /* never NULL */
    struct sup_out *out;
    enum sup_state next;
    bool reason_changed;
};

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Age of a past instant; a clock that went backwards counts as "just now". */
static uint64_t age(uint64_t now, uint64_t then)
{
    return now >= then ? now - then : 0;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void set_reason(struct sup *s, struct step *st, const char *fmt, ...)
{
    char buf[SUP_REASON_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (strcmp(buf, s->reason) != 0) {
        memcpy(s->reason, buf, sizeof buf);
        st->reason_changed = true;
    }
}

/* "30s", "1.5s", "250ms" */
static const char *fmt_dur(char *buf, size_t len, uint32_t ms)
{
    if (ms % 1000 == 0)
        snprintf(buf, len, "%us", (unsigned)(ms / 1000));
    else if (ms >= 1000 && ms % 100 == 0)
        snprintf(buf, len, "%u.%us", (unsigned)(ms / 1000), (unsigned)(ms % 1000 / 100));
    else
        snprintf(buf, len, "%ums", (unsigned)ms);
    return buf;
}

static void arm_timer(struct sup *s, struct step *st, uint32_t delay_ms)
{
    s->timer_at = add_sat(st->now, delay_ms);
    s->timer_armed = true;
    st->out->actions = (st->out->actions | SUP_DO_TIMER) & ~(unsigned)SUP_DO_CANCEL_TIMER;
    st->out->timer_at_ms = s->timer_at;
}

static void cancel_timer(struct sup *s, struct step *st)
{
    if (s->timer_armed)
        st->out->actions |= SUP_DO_CANCEL_TIMER;
    st->out->actions &= ~(unsigned)SUP_DO_TIMER;
    st->out->timer_at_ms = 0;
    s->timer_armed = false;
}

static void note_probe(struct sup *s, const char *detail)
{
    if (*detail)
        snprintf(s->last_probe, sizeof s->last_probe, "%s", detail);
}

static void spawn(struct sup *s, struct step *st)
{
    st->out->actions |= SUP_DO_SPAWN;
    s->alive = true;
    s->killed = false;
    s->probe_failures = 0;
    s->last_probe[0] = '\0';
    s->last_run_ms = 0;
    if (s->pol.job)
        cancel_timer(s, st); /* a job is not health-checked: no deadline */
    else
        arm_timer(s, st, s->pol.health_deadline_ms);
    set_reason(s, st, "starting");
}

/* A new start by request (not a respawn): forget earlier crashes. */
static void fresh_run(struct sup *s)
{
    s->crash_count = 0;
    s->crash_next = 0;
    s->backoff_ms = s->pol.backoff_initial_ms;
    s->ever_healthy = false;
}

static void enter_running(struct sup *s, struct step *st)
{
    s->probe_failures = 0;
    s->ever_healthy = true;
    s->running_since = st->now;
    s->last_run_ms = 0;
}

static void begin_stop(struct sup *s, struct step *st)
{
    st->out->actions |= SUP_DO_TERM;
    arm_timer(s, st, s->pol.stop_timeout_ms);
    if (*st->detail)
        set_reason(s, st, "stopped by request: %s", st->detail);
    else
        set_reason(s, st, "stopped by request");
}

static uint32_t crashes_in_window(const struct sup *s, uint64_t now)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->crash_count; i++)
        if (age(now, s->crash_at[i]) < s->pol.crash_window_ms)
            n++;
    return n;
}

/* The process of a live run is gone and we did not ask for a stop: count it,
 * then either give up (crash loop) or respawn after the backoff. */
static void exit_then_restart(struct sup *s, struct step *st, const char *why)
{
    char w[32];
    s->alive = false;
    s->crash_at[s->crash_next] = st->now;
    s->crash_next = (s->crash_next + 1) % SUP_CRASH_RING;
    if (s->crash_count < SUP_CRASH_RING)
        s->crash_count++;

    uint32_t n = crashes_in_window(s, st->now);
    if (n >= s->pol.crash_max) {
        cancel_timer(s, st);
        st->next = SUP_FAILED;
        set_reason(s, st, "crash loop: %u exits in %s; last: %s", (unsigned)n,
                   fmt_dur(w, sizeof w, s->pol.crash_window_ms), why);
        return;
    }
    /* A run that stayed healthy for a whole crash window starts the backoff
     * sequence over. */
    if (s->last_run_ms >= s->pol.crash_window_ms)
        s->backoff_ms = s->pol.backoff_initial_ms;
    uint32_t delay = s->backoff_ms;
    uint64_t doubled = (uint64_t)delay * 2;
    s->backoff_ms = doubled > s->pol.backoff_max_ms ? s->pol.backoff_max_ms : (uint32_t)doubled;
    if (s->backoff_ms < s->pol.backoff_initial_ms) /* delay was 0 */
        s->backoff_ms = s->pol.backoff_initial_ms;
    arm_timer(s, st, delay);
    s->restarts++;
    st->next = SUP_BACKOFF;
    set_reason(s, st, "%s", why);
}

/* ---- action functions: one per special case, named in the table ---- */

typedef void (*sup_action)(struct sup *s, struct step *st);

/* STOPPED + START */
static void act_start(struct sup *s, struct step *st)
{
    fresh_run(s);
    spawn(s, st);
}

/* BACKOFF + TIMER */
static void act_respawn(struct sup *s, struct step *st)
{
    spawn(s, st);
}

/* STOPPED + ADOPTED: the process survived an agent restart; it was healthy
 * before, so treat it as running (probes will say otherwise soon enough). */
static void act_adopt(struct sup *s, struct step *st)
{
    fresh_run(s);
    s->alive = true;
    s->killed = false;
    enter_running(s, st);
    set_reason(s, st, "adopted running process");
}

#define WARNING_PREFIX "warning: "

/* A healthy probe may carry a reason (a model's drift): the run is
 * healthy and keeps running, and the reason is reported as a warning. */
static void healthy_reason(struct sup *s, struct step *st)
{
    if (*st->detail)
        set_reason(s, st, WARNING_PREFIX "%s", st->detail);
    else
        set_reason(s, st, "healthy");
}

/* STARTING + HEALTHY */
static void act_healthy(struct sup *s, struct step *st)
{
    cancel_timer(s, st);
    enter_running(s, st);
    healthy_reason(s, st);
}

/* STARTING + UNHEALTHY: only the deadline decides; keep the detail for it. */
static void act_note_probe(struct sup *s, struct step *st)
{
    note_probe(s, st->detail);
}

/* STARTING + TIMER: never healthy within the deadline. TERM it and arm the
 * stop timeout so a process that ignores TERM still gets a KILL. */
static void act_deadline(struct sup *s, struct step *st)
{
    char w[32];
    set_reason(s, st, "not healthy within %s: %s",
               fmt_dur(w, sizeof w, s->pol.health_deadline_ms),
               s->last_probe[0] ? s->last_probe : "no probe result");
    st->out->actions |= SUP_DO_TERM;
    arm_timer(s, st, s->pol.stop_timeout_ms);
}

/* RUNNING + HEALTHY: a warning appears or clears; otherwise the reason
 * stays (e.g. "adopted running process"). */
static void act_probe_ok(struct sup *s, struct step *st)
{
    s->probe_failures = 0;
    if (*st->detail || strncmp(s->reason, WARNING_PREFIX, strlen(WARNING_PREFIX)) == 0)
        healthy_reason(s, st);
}

/* RUNNING + UNHEALTHY: stays RUNNING until unhealthy_max consecutive
 * failures, then -> UNHEALTHY: TERM, and KILL after stop_timeout. */
static void act_probe_fail(struct sup *s, struct step *st)
{
    note_probe(s, st->detail);
    if (++s->probe_failures < s->pol.unhealthy_max)
        return;
    st->next = SUP_UNHEALTHY;
    st->out->actions |= SUP_DO_TERM;
    arm_timer(s, st, s->pol.stop_timeout_ms);
    set_reason(s, st, "%u consecutive failed probes: %s", (unsigned)s->probe_failures,
               s->last_probe[0] ? s->last_probe : "no detail");
}

/* A job's exit is its end, not a crash: -> STOPPED with the exit as reason. */
static void job_ended(struct sup *s, struct step *st, const char *why)
{
    s->alive = false;
    cancel_timer(s, st);
    st->next = SUP_STOPPED;
    set_reason(s, st, "%s", why);
}

/* STARTING/RUNNING + EXITED: a crash. -> BACKOFF, or FAILED on a crash loop;
 * a job: -> STOPPED. */
static void act_crash(struct sup *s, struct step *st)
{
    if (s->pol.job) {
        job_ended(s, st, *st->detail ? st->detail : "exited");
        return;
    }
    exit_then_restart(s, st, *st->detail ? st->detail : "exited");
}

/* UNHEALTHY + EXITED: the exit we asked for with TERM/KILL.
 *
 * Decision: it counts toward the crash loop, like a crash. The workload's own
 * failure caused it, not an operator. A run that wedges right after every
 * start is as much a loop as one that crashes, and must end in FAILED so the
 * rollout can roll back instead of restarting it forever. A run that is
 * healthy for a while between wedges is not penalised: detection alone takes
 * unhealthy_max probe intervals, so such restarts rarely fall crash_max times
 * into one crash window, and a full window of health resets the backoff.
 * Also, the exit may be a real crash that raced our TERM: we cannot tell. */
static void act_unhealthy_exit(struct sup *s, struct step *st)
{
    char why[SUP_REASON_MAX];
    if (s->pol.job) { /* the agent does not probe jobs; should one be told */
        job_ended(s, st, *st->detail ? st->detail : "exited");
        return;
    }
    snprintf(why, sizeof why, "restarted after failed probes: %.*s", SUP_DETAIL_MAX,
             s->last_probe[0] ? s->last_probe : "no detail");
    exit_then_restart(s, st, why);
}

/* STOPPING/UNHEALTHY/FAILED + TIMER: TERM was ignored. KILL, and keep
 * re-arming in case even the KILL is not reported. */
static void act_kill(struct sup *s, struct step *st)
{
    if (!s->alive)
        return;
    st->out->actions |= SUP_DO_KILL;
    s->killed = true;
    arm_timer(s, st, s->pol.stop_timeout_ms);
}

/* STARTING/RUNNING/UNHEALTHY + STOP */
static void act_stop(struct sup *s, struct step *st)
{
    begin_stop(s, st);
}

/* BACKOFF + STOP: no process, just drop the respawn timer. */
static void act_stop_idle(struct sup *s, struct step *st)
{
    cancel_timer(s, st);
    set_reason(s, st, "stopped by request");
}

/* FAILED + STOP: -> STOPPED, or -> STOPPING while the TERMed process of a
 * missed deadline has not exited yet. */
static void act_stop_failed(struct sup *s, struct step *st)
{
    if (s->alive) {
        st->next = SUP_STOPPING;
        begin_stop(s, st);
    } else {
        act_stop_idle(s, st);
    }
}

/* STOPPING + EXITED */
static void act_stopped(struct sup *s, struct step *st)
{
    char w[32];
    s->alive = false;
    cancel_timer(s, st);
    if (s->killed)
        set_reason(s, st, "stopped by request (killed after %s)",
                   fmt_dur(w, sizeof w, s->pol.stop_timeout_ms));
}

/* FAILED + EXITED: the process we TERMed after the deadline is gone. */
static void act_reap(struct sup *s, struct step *st)
{
    s->alive = false;
    cancel_timer(s, st);
}

/* ---- the table ---- */

struct transition {
    sup_action act; /* NULL: nothing to do besides moving */
    enum sup_state next;
    bool move; /* false: stay in the current state (unless act diverts) */
};

#define GO(state, fn) { fn, state, true }
#define DO(fn) { fn, SUP_STOPPED, false }

/* Cells not listed are ignored: no state change, no action. */
static const struct transition transitions[SUP_NSTATES][SUP_NEVENTS] = {
    [SUP_STOPPED] = {
        [SUP_EV_START]     = GO(SUP_STARTING, act_start),   /* SPAWN, deadline TIMER */
        [SUP_EV_ADOPTED]   = GO(SUP_RUNNING, act_adopt),
    },
    [SUP_STARTING] = {
        [SUP_EV_HEALTHY]   = GO(SUP_RUNNING, act_healthy),  /* CANCEL_TIMER */
        [SUP_EV_UNHEALTHY] = DO(act_note_probe),
        [SUP_EV_EXITED]    = GO(SUP_BACKOFF, act_crash),    /* or FAILED: crash loop */
        [SUP_EV_TIMER]     = GO(SUP_FAILED, act_deadline),  /* TERM, stop TIMER */
        [SUP_EV_STOP]      = GO(SUP_STOPPING, act_stop),    /* TERM, stop TIMER */
    },
    [SUP_RUNNING] = {
        [SUP_EV_HEALTHY]   = DO(act_probe_ok),
        [SUP_EV_UNHEALTHY] = DO(act_probe_fail),            /* or UNHEALTHY: TERM, TIMER */
        [SUP_EV_EXITED]    = GO(SUP_BACKOFF, act_crash),    /* or FAILED: crash loop */
        [SUP_EV_STOP]      = GO(SUP_STOPPING, act_stop),
    },
    [SUP_UNHEALTHY] = {
        [SUP_EV_EXITED]    = GO(SUP_BACKOFF, act_unhealthy_exit), /* or FAILED */
        [SUP_EV_TIMER]     = DO(act_kill),                  /* KILL, TIMER */
        [SUP_EV_STOP]      = GO(SUP_STOPPING, act_stop),
    },
    [SUP_BACKOFF] = {
        [SUP_EV_TIMER]     = GO(SUP_STARTING, act_respawn), /* SPAWN, deadline TIMER */
        [SUP_EV_STOP]      = GO(SUP_STOPPED, act_stop_idle),/* CANCEL_TIMER */
    },
    [SUP_STOPPING] = {
        [SUP_EV_EXITED]    = GO(SUP_STOPPED, act_stopped),  /* CANCEL_TIMER */
        [SUP_EV_TIMER]     = DO(act_kill),                  /* KILL, TIMER */
    },
    [SUP_FAILED] = {
        [SUP_EV_EXITED]    = DO(act_reap),                  /* CANCEL_TIMER */
        [SUP_EV_TIMER]     = DO(act_kill),                  /* KILL, TIMER */
        [SUP_EV_STOP]      = GO(SUP_STOPPED, act_stop_failed), /* or STOPPING if alive */
    },
};

/* ---- entry points ---- */

void sup_init(struct sup *s, const struct sup_policy *p)
{
    if (!s)
        return;
    memset(s, 0, sizeof *s);
    if (p)
        s->pol = *p;
    else
        sup_policy_default(&s->pol);
    if (s->pol.crash_max == 0)
        s->pol.crash_max = 1;
    if (s->pol.crash_max > SUP_CRASH_RING)
        s->pol.crash_max = SUP_CRASH_RING;
    if (s->pol.unhealthy_max == 0)
        s->pol.unhealthy_max = 1;
    if (s->pol.backoff_max_ms < s->pol.backoff_initial_ms)
        s->pol.backoff_max_ms = s->pol.backoff_initial_ms;
    s->state = SUP_STOPPED;
    s->backoff_ms = s->pol.backoff_initial_ms;
    snprintf(s->reason, sizeof s->reason, "not started");
}

void sup_event(struct sup *s, enum sup_event ev, uint64_t now_ms, const char *detail,
               struct sup_out *out)
{
    struct sup_out scratch;
    if (!out)
        out = &scratch;
    out->actions = 0;
    out->timer_at_ms = 0;
    if (!s || (unsigned)s->state >= SUP_NSTATES || (unsigned)ev >= SUP_NEVENTS)
        return;

    if (ev == SUP_EV_TIMER) {
        /* Stale (replaced or cancelled) or early timers are not ours. */
        if (!s->timer_armed || now_ms < s->timer_at)
            return;
        s->timer_armed = false;
    }
    if (s->state == SUP_RUNNING)
        s->last_run_ms = age(now_ms, s->running_since);

    const struct transition *t = &transitions[s->state][ev];
    if (!t->act && !t->move)
        return;

    struct step st = {
        .now = now_ms,
        .detail = detail ? detail : "",
        .out = out,
        .next = t->move ? t->next : s->state,
        .reason_changed = false,
    };
    enum sup_state before = s->state;
    if (t->act)
        t->act(s, &st);
    s->state = st.next;
    if (s->state != before || st.reason_changed)
        out->actions |= SUP_DO_REPORT;
}

const char *sup_state_name(enum sup_state st)
{
    switch (st) {
    case SUP_STOPPED: return "stopped";
    case SUP_STARTING: return "starting";
    case SUP_RUNNING: return "running";
    case SUP_UNHEALTHY: return "unhealthy";
    case SUP_BACKOFF: return "backoff";
    case SUP_STOPPING: return "stopping";
    case SUP_FAILED: return "failed";
    case SUP_NSTATES: break;
    }
    return "unknown";
}

const char *sup_event_name(enum sup_event ev)
{
    switch (ev) {
    case SUP_EV_START: return "start";
    case SUP_EV_HEALTHY: return "healthy";
    case SUP_EV_UNHEALTHY: return "unhealthy";
    case SUP_EV_EXITED: return "exited";
    case SUP_EV_TIMER: return "timer";
    case SUP_EV_STOP: return "stop";
    case SUP_EV_ADOPTED: return "adopted";
    case SUP_NEVENTS: break;
    }
    return "unknown";
}
