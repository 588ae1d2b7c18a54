/* The run lifecycle table: every cell, as a table of expected
 * (state, event) -> (state, actions), then whole lives as the agent feeds
 * them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "reconcile.h"
#include "run.h"

#define PREPARE RUN_DO_PREPARE
#define START RUN_DO_START
#define STOP RUN_DO_STOP
#define KILL RUN_DO_KILL
#define TIMER RUN_DO_TIMER
#define CANCEL RUN_DO_CANCEL_TIMER
#define REPORT RUN_DO_REPORT
#define RETIRE RUN_DO_RETIRE_OTHERS
#define FORGET RUN_DO_FORGET

#define NOW 1000000ull /* 1970-01-01T00:16:40Z */
#define NEXT "next run at 1970-01-01T00:16:50Z" /* @every 10s from NOW */
#define KEPT RECONCILE_KEPT_REASON

/* What kind of run a row starts from. */
enum variant {
    V_SVC,   /* a service */
    V_ROLL,  /* a service deployed while another version ran */
    V_UNL,   /* a service whose name the registry stopped sending */
    V_JOB,   /* a job, no retries, in its first run */
    V_RETRY, /* a job with retries: 2, in its first run */
    V_LAST,  /* the same, in its third (last) run */
    V_JROLL, /* a job deployed while another version ran */
    V_SCHED, /* a job on @every 10s, in its first run */
};

static void setup(struct run_lc *r, enum run_state st, enum variant v)
{
    run_init(r, v == V_ROLL || v == V_JROLL, 5);
    struct run_job job;
    memset(&job, 0, sizeof job);
    job.job = v >= V_JOB;
    job.retries = v == V_RETRY || v == V_LAST ? 2 : 0;
    if (v == V_SCHED) {
        char why[128];
        assert_int_equal(schedule_parse("@every 10s", &job.sched, why, sizeof why), 0);
        job.has_schedule = true;
    }
    run_configure(r, &job);
    /* Put it straight into st, with a reason to see changes against. */
    r->state = st;
    r->runs = st == RUN_STARTING || st == RUN_RUNNING ? (v == V_LAST ? 3 : 1) : 0;
    r->timer_armed = st == RUN_SCHEDULED;
    r->unlisted = v == V_UNL;
    snprintf(r->own, sizeof r->own, "before");
    snprintf(r->reason, sizeof r->reason, "%s", v == V_UNL && st != RUN_FAILED ? KEPT : "before");
}

struct row {
    enum run_state from;
    enum variant v;
    enum run_event ev;
    int status;
    bool flag;
    const char *other;
    const char *detail;
    enum run_state to;
    unsigned actions;
    const char *reason; /* exact; NULL: not checked */
};

#define S(x) RUN_##x
#define E(x) RUN_EV_##x

static const struct row rows[] = {
    /* from        variant  event        st fl other  detail            to            actions */
    {S(PENDING),   V_SVC,   E(BEGIN),    0, 0, NULL, NULL,               S(FETCHING),  PREPARE | REPORT, ""},
    {S(PENDING),   V_SVC,   E(BEGIN),    0, 1, NULL, NULL,               S(VERIFYING), PREPARE | REPORT, ""},
    {S(PENDING),   V_SVC,   E(REFUSED),  0, 0, NULL, "not for this host", S(FAILED),   REPORT, "not for this host"},
    {S(PENDING),   V_SVC,   E(STOP),     0, 0, NULL, "undeployed",       S(PENDING),   FORGET, "before"},
    {S(PENDING),   V_SVC,   E(SUPERSEDED), 0, 0, NULL, NULL,             S(PENDING),   FORGET, "before"},
    {S(PENDING),   V_SVC,   E(UNLISTED), 0, 0, NULL, NULL,               S(PENDING),   REPORT, KEPT},
    {S(PENDING),   V_UNL,   E(LISTED),   0, 0, NULL, NULL,               S(PENDING),   REPORT, "before"},

    {S(FETCHING),  V_SVC,   E(BEGIN),    0, 0, NULL, NULL,               S(FETCHING),  PREPARE | REPORT, ""},
    {S(FETCHING),  V_SVC,   E(BEGIN),    0, 1, NULL, NULL,               S(VERIFYING), PREPARE | REPORT, ""},
    {S(FETCHING),  V_SVC,   E(FETCHED),  0, 0, NULL, NULL,               S(VERIFYING), REPORT, ""},
    {S(FETCHING),  V_SVC,   E(VERIFIED), 0, 0, NULL, NULL,               S(STARTING),  START | REPORT, "starting"},
    {S(FETCHING),  V_JOB,   E(VERIFIED), 0, 0, NULL, NULL,               S(STARTING),  START | REPORT, "starting"},
    {S(FETCHING),  V_SCHED, E(VERIFIED), 0, 0, NULL, NULL,               S(SCHEDULED), TIMER | REPORT, NEXT},
    {S(FETCHING),  V_SVC,   E(REFUSED),  0, 0, NULL, "no plugin serves runtime 'oci'", S(FAILED), REPORT,
     "no plugin serves runtime 'oci'"},
    {S(FETCHING),  V_SVC,   E(STOP),     0, 0, NULL, NULL,               S(FETCHING),  FORGET, "before"},
    {S(FETCHING),  V_SVC,   E(SUPERSEDED), 0, 0, NULL, NULL,             S(FETCHING),  FORGET, "before"},
    {S(FETCHING),  V_SVC,   E(UNLISTED), 0, 0, NULL, NULL,               S(FETCHING),  REPORT, KEPT},
    {S(FETCHING),  V_UNL,   E(LISTED),   0, 0, NULL, NULL,               S(FETCHING),  REPORT, "before"},

    {S(VERIFYING), V_SVC,   E(BEGIN),    0, 1, NULL, NULL,               S(VERIFYING), PREPARE | REPORT, ""},
    {S(VERIFYING), V_SVC,   E(BEGIN),    0, 0, NULL, NULL,               S(FETCHING),  PREPARE | REPORT, ""},
    {S(VERIFYING), V_SVC,   E(VERIFIED), 0, 0, NULL, NULL,               S(STARTING),  START | REPORT, "starting"},
    {S(VERIFYING), V_ROLL,  E(VERIFIED), 0, 0, NULL, NULL,               S(STARTING),  START | REPORT, "starting"},
    {S(VERIFYING), V_JROLL, E(VERIFIED), 0, 0, NULL, NULL,               S(STARTING),  START | RETIRE | REPORT, "starting"},
    {S(VERIFYING), V_SVC,   E(REFUSED),  0, 0, NULL, "tree: bad digest", S(FAILED),    REPORT, "tree: bad digest"},
    {S(VERIFYING), V_SVC,   E(STOP),     0, 0, NULL, NULL,               S(VERIFYING), FORGET, "before"},
    {S(VERIFYING), V_SVC,   E(SUPERSEDED), 0, 0, NULL, NULL,             S(VERIFYING), FORGET, "before"},
    {S(VERIFYING), V_SVC,   E(UNLISTED), 0, 0, NULL, NULL,               S(VERIFYING), REPORT, KEPT},
    {S(VERIFYING), V_UNL,   E(LISTED),   0, 0, NULL, NULL,               S(VERIFYING), REPORT, "before"},

    {S(STARTING),  V_SVC,   E(REFUSED),  0, 0, NULL, "untrusted",        S(FAILED),    REPORT, "untrusted"},
    {S(STARTING),  V_SVC,   E(STARTED),  0, 0, NULL, "starting",         S(STARTING),  REPORT, "starting"},
    {S(STARTING),  V_JOB,   E(STARTED),  0, 0, NULL, "starting",         S(RUNNING),   REPORT, "running"},
    {S(STARTING),  V_LAST,  E(STARTED),  0, 0, NULL, "starting",         S(RUNNING),   REPORT, "run 3 of 3"},
    {S(STARTING),  V_SVC,   E(HEALTHY),  0, 0, NULL, "healthy",          S(RUNNING),   REPORT, "healthy"},
    {S(STARTING),  V_ROLL,  E(HEALTHY),  0, 0, NULL, "healthy",          S(RUNNING),   RETIRE | REPORT, "healthy"},
    {S(STARTING),  V_SVC,   E(UNHEALTHY), 0, 0, NULL, "HTTP 500",        S(UNHEALTHY), REPORT, "HTTP 500"},
    {S(STARTING),  V_JOB,   E(UNHEALTHY), 0, 0, NULL, "HTTP 500",        S(STARTING),  0, "before"},
    {S(STARTING),  V_SVC,   E(EXITED),   1, 0, NULL, "exited with status 1", S(STARTING), REPORT, "exited with status 1"},
    {S(STARTING),  V_JOB,   E(EXITED),   0, 0, NULL, "exited with status 0", S(SUCCEEDED), REPORT, "exited with status 0"},
    {S(STARTING),  V_SVC,   E(GAVE_UP),  0, 0, NULL, "not healthy within 4s: HTTP 404", S(FAILED), REPORT,
     "not healthy within 4s: HTTP 404"},
    {S(STARTING),  V_ROLL,  E(GAVE_UP),  0, 0, "1.0", "not healthy within 4s: HTTP 404", S(ROLLED_BACK), REPORT,
     "not healthy within 4s: HTTP 404; 1.0 keeps running"},
    {S(STARTING),  V_ROLL,  E(GAVE_UP),  0, 0, NULL, "crash loop", S(FAILED), REPORT, "crash loop"},
    {S(STARTING),  V_SVC,   E(STOP),     0, 0, NULL, "undeployed",       S(STOPPING),  STOP | REPORT,
     "stopped by request: undeployed"},
    {S(STARTING),  V_SVC,   E(SUPERSEDED), 0, 0, NULL, "replaced by a new version", S(STOPPING), STOP | REPORT,
     "stopped by request: replaced by a new version"},
    {S(STARTING),  V_SVC,   E(UNLISTED), 0, 0, NULL, NULL,               S(STARTING),  REPORT, KEPT},
    {S(STARTING),  V_UNL,   E(LISTED),   0, 0, NULL, NULL,               S(STARTING),  REPORT, "before"},

    {S(RUNNING),   V_SVC,   E(REFUSED),  0, 0, NULL, "untrusted",        S(FAILED),    REPORT, "untrusted"},
    {S(RUNNING),   V_SVC,   E(STARTED),  0, 0, NULL, "starting",         S(STARTING),  REPORT, "starting"},
    {S(RUNNING),   V_JOB,   E(STARTED),  0, 0, NULL, "starting",         S(RUNNING),   REPORT, "running"},
    {S(RUNNING),   V_SVC,   E(HEALTHY),  0, 0, NULL, "adopted running process", S(RUNNING), REPORT,
     "adopted running process"},
    {S(RUNNING),   V_SVC,   E(HEALTHY),  0, 0, NULL, "before",           S(RUNNING),   0, "before"},
    {S(RUNNING),   V_SVC,   E(UNHEALTHY), 0, 0, NULL, "3 consecutive failed probes: HTTP 500", S(UNHEALTHY), REPORT,
     "3 consecutive failed probes: HTTP 500"},
    {S(RUNNING),   V_SVC,   E(EXITED),  -1, 0, NULL, "killed by signal 9", S(STARTING), REPORT, "killed by signal 9"},
    {S(RUNNING),   V_JOB,   E(EXITED),   0, 0, NULL, "exited with status 0", S(SUCCEEDED), REPORT, "exited with status 0"},
    {S(RUNNING),   V_JOB,   E(EXITED),   1, 0, NULL, "exited with status 1", S(FAILED), REPORT, "exited with status 1"},
    {S(RUNNING),   V_JOB,   E(EXITED),  -1, 0, NULL, "killed by signal 9", S(FAILED), REPORT, "killed by signal 9"},
    {S(RUNNING),   V_RETRY, E(EXITED),   1, 0, NULL, "exited with status 1", S(STARTING), START | REPORT,
     "exited with status 1; retry 1 of 2"},
    {S(RUNNING),   V_RETRY, E(EXITED),   0, 0, NULL, "exited with status 0", S(SUCCEEDED), REPORT, "exited with status 0"},
    {S(RUNNING),   V_LAST,  E(EXITED),   1, 0, NULL, "exited with status 1", S(FAILED), REPORT,
     "exited with status 1 after 3 runs"},
    {S(RUNNING),   V_LAST,  E(EXITED),   0, 0, NULL, "exited with status 0", S(SUCCEEDED), REPORT,
     "exited with status 0 after 3 runs"},
    {S(RUNNING),   V_SCHED, E(EXITED),   0, 0, NULL, "exited with status 0", S(SCHEDULED), TIMER | REPORT,
     NEXT "; last run: exited with status 0"},
    {S(RUNNING),   V_SCHED, E(EXITED),   2, 0, NULL, "exited with status 2", S(SCHEDULED), TIMER | REPORT,
     NEXT "; last run: exited with status 2"},
    {S(RUNNING),   V_SVC,   E(GAVE_UP),  0, 0, "1.0", "crash loop: 5 exits in 60s; last: exited with status 1", S(FAILED),
     REPORT, "crash loop: 5 exits in 60s; last: exited with status 1"},
    {S(RUNNING),   V_SVC,   E(STOP),     0, 0, NULL, NULL,               S(STOPPING),  STOP | REPORT, "stopped by request"},
    {S(RUNNING),   V_JOB,   E(SUPERSEDED), 0, 0, NULL, NULL,             S(STOPPING),  STOP | REPORT,
     "stopped by request: replaced"},
    {S(RUNNING),   V_SVC,   E(UNLISTED), 0, 0, NULL, NULL,               S(RUNNING),   REPORT, KEPT},
    {S(RUNNING),   V_UNL,   E(LISTED),   0, 0, NULL, NULL,               S(RUNNING),   REPORT, "before"},

    {S(UNHEALTHY), V_SVC,   E(REFUSED),  0, 0, NULL, "untrusted",        S(FAILED),    REPORT, "untrusted"},
    {S(UNHEALTHY), V_SVC,   E(STARTED),  0, 0, NULL, "starting",         S(STARTING),  REPORT, "starting"},
    {S(UNHEALTHY), V_SVC,   E(HEALTHY),  0, 0, NULL, "healthy",          S(RUNNING),   REPORT, "healthy"},
    {S(UNHEALTHY), V_SVC,   E(UNHEALTHY), 0, 0, NULL, "timeout",         S(UNHEALTHY), REPORT, "timeout"},
    {S(UNHEALTHY), V_SVC,   E(EXITED),  -1, 0, NULL, "restarted after failed probes: timeout", S(STARTING), REPORT,
     "restarted after failed probes: timeout"},
    {S(UNHEALTHY), V_SVC,   E(GAVE_UP),  0, 0, NULL, "crash loop",       S(FAILED),    REPORT, "crash loop"},
    {S(UNHEALTHY), V_SVC,   E(STOP),     0, 0, NULL, "undeployed",       S(STOPPING),  STOP | REPORT,
     "stopped by request: undeployed"},
    {S(UNHEALTHY), V_SVC,   E(SUPERSEDED), 0, 0, NULL, "replaced by a new version", S(STOPPING), STOP | REPORT,
     "stopped by request: replaced by a new version"},
    {S(UNHEALTHY), V_SVC,   E(UNLISTED), 0, 0, NULL, NULL,               S(UNHEALTHY), REPORT, KEPT},
    {S(UNHEALTHY), V_UNL,   E(LISTED),   0, 0, NULL, NULL,               S(UNHEALTHY), REPORT, "before"},

    {S(STOPPING),  V_SVC,   E(STOPPED),  0, 0, NULL, "stopped by request (killed after 5s)", S(STOPPED), REPORT | FORGET,
     "stopped by request (killed after 5s)"},
    {S(STOPPING),  V_SVC,   E(STOPPED),  0, 0, NULL, NULL,               S(STOPPED),   REPORT | FORGET, "before"},

    {S(STOPPED),   V_SVC,   E(STOP),     0, 0, NULL, NULL,               S(STOPPED),   FORGET, "before"},
    {S(STOPPED),   V_SVC,   E(SUPERSEDED), 0, 0, NULL, NULL,             S(STOPPED),   FORGET, "before"},
    {S(STOPPED),   V_SVC,   E(UNLISTED), 0, 0, NULL, NULL,               S(STOPPED),   0, "before"},
    {S(STOPPED),   V_SVC,   E(LISTED),   0, 0, NULL, NULL,               S(STOPPED),   0, "before"},

    {S(FAILED),    V_SVC,   E(STOP),     0, 0, NULL, "undeployed",       S(FAILED),    KILL | FORGET, "before"},
    {S(FAILED),    V_SVC,   E(SUPERSEDED), 0, 0, NULL, NULL,             S(FAILED),    KILL | FORGET, "before"},
    {S(FAILED),    V_SVC,   E(UNLISTED), 0, 0, NULL, NULL,               S(FAILED),    0, "before"},
    {S(FAILED),    V_UNL,   E(LISTED),   0, 0, NULL, NULL,               S(FAILED),    0, "before"},

    {S(ROLLED_BACK), V_SVC, E(STOP),     0, 0, NULL, NULL,               S(ROLLED_BACK), KILL | FORGET, "before"},
    {S(ROLLED_BACK), V_SVC, E(SUPERSEDED), 0, 0, NULL, NULL,             S(ROLLED_BACK), KILL | FORGET, "before"},
    {S(ROLLED_BACK), V_SVC, E(UNLISTED), 0, 0, NULL, NULL,               S(ROLLED_BACK), 0, "before"},
    {S(ROLLED_BACK), V_SVC, E(LISTED),   0, 0, NULL, NULL,               S(ROLLED_BACK), 0, "before"},

    {S(SUCCEEDED), V_JOB,   E(STOP),     0, 0, NULL, NULL,               S(SUCCEEDED), FORGET, "before"},
    {S(SUCCEEDED), V_JOB,   E(SUPERSEDED), 0, 0, NULL, NULL,             S(SUCCEEDED), FORGET, "before"},
    {S(SUCCEEDED), V_JOB,   E(UNLISTED), 0, 0, NULL, NULL,               S(SUCCEEDED), 0, "before"},
    {S(SUCCEEDED), V_JOB,   E(LISTED),   0, 0, NULL, NULL,               S(SUCCEEDED), 0, "before"},

    {S(SCHEDULED), V_SCHED, E(REFUSED),  0, 0, NULL, "untrusted",        S(FAILED),    CANCEL | REPORT, "untrusted"},
    {S(SCHEDULED), V_SCHED, E(DUE),      0, 0, NULL, NULL,               S(STARTING),  START | REPORT, "starting"},
    {S(SCHEDULED), V_SCHED, E(RESUME),   0, 0, NULL, NULL,               S(SCHEDULED), TIMER | REPORT, NEXT},
    {S(SCHEDULED), V_JOB,   E(RESUME),   0, 0, NULL, NULL,               S(FAILED),    REPORT, "schedule: no next run"},
    {S(SCHEDULED), V_SCHED, E(STOP),     0, 0, NULL, NULL,               S(SCHEDULED), CANCEL | FORGET, "before"},
    {S(SCHEDULED), V_SCHED, E(SUPERSEDED), 0, 0, NULL, NULL,             S(SCHEDULED), CANCEL | FORGET, "before"},
    {S(SCHEDULED), V_SCHED, E(UNLISTED), 0, 0, NULL, NULL,               S(SCHEDULED), REPORT, KEPT},
    {S(SCHEDULED), V_UNL,   E(LISTED),   0, 0, NULL, NULL,               S(SCHEDULED), REPORT, "before"},
};

static unsigned feed(struct run_lc *r, enum run_event e, uint64_t now, int status, bool flag,
                     const char *other, const char *detail, struct run_out *o)
{
    struct run_in in = {.ev = e, .now_ms = now, .detail = detail, .status = status,
                        .flag = flag, .other = other};
    run_event(r, &in, o);
    return o->actions;
}

static void test_every_cell(void **state)
{
    (void)state;
    bool listed[RUN_NSTATES][RUN_NEVENTS];
    memset(listed, 0, sizeof listed);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const struct row *w = &rows[i];
        struct run_lc r;
        struct run_out o;
        setup(&r, w->from, w->v);
        unsigned a = feed(&r, w->ev, NOW, w->status, w->flag, w->other, w->detail, &o);
        if (r.state != w->to || a != w->actions ||
            (w->reason && strcmp(r.reason, w->reason) != 0))
            fail_msg("row %zu (%s, %s): got (%s, %#x, '%s'), want (%s, %#x, '%s')", i,
                     run_state_name(w->from), run_event_name(w->ev), run_state_name(r.state), a,
                     r.reason, run_state_name(w->to), w->actions, w->reason ? w->reason : "?");
        if (a & TIMER)
            assert_int_equal(o.timer_at_ms, NOW + 10000);
        assert_false((a & TIMER) && (a & CANCEL));
        if (r.state != w->from)
            assert_int_equal(r.since_ms, NOW);
        else
            assert_int_equal(r.since_ms, 5);
        listed[w->from][w->ev] = true;
    }
    /* Every other cell is ignored, for every kind of run: no move, no
     * action, the reason untouched. */
    for (int s = 0; s < RUN_NSTATES; s++)
        for (int e = 0; e < RUN_NEVENTS; e++) {
            if (listed[s][e])
                continue;
            for (int v = V_SVC; v <= V_SCHED; v++) {
                struct run_lc r;
                struct run_out o;
                setup(&r, (enum run_state)s, (enum variant)v);
                char before[RUN_REASON_MAX];
                memcpy(before, r.reason, sizeof before);
                unsigned a = feed(&r, (enum run_event)e, NOW, 1, true, "1.0", "x", &o);
                if (a != 0 || (int)r.state != s || strcmp(r.reason, before) != 0)
                    fail_msg("(%s, %s) is in no row but is not ignored (variant %d)",
                             run_state_name((enum run_state)s), run_event_name((enum run_event)e), v);
            }
        }
}

/* A job with retries: 2 that always exits 1 runs three times, then fails
 * with the exit in the reason; the same job exiting 0 on its second run
 * succeeds. */
static void test_job_retries(void **state)
{
    (void)state;
    struct run_lc r;
    struct run_out o;
    run_init(&r, false, NOW);
    struct run_job job = {.job = true, .retries = 2};
    run_configure(&r, &job);
    uint64_t t = NOW;
    assert_int_equal(feed(&r, E(BEGIN), t, 0, false, NULL, NULL, &o), PREPARE | REPORT);
    assert_int_equal(feed(&r, E(FETCHED), ++t, 0, false, NULL, NULL, &o), REPORT);
    assert_int_equal(feed(&r, E(VERIFIED), ++t, 0, false, NULL, NULL, &o), START | REPORT);
    unsigned starts = 1;
    for (;;) {
        feed(&r, E(STARTED), ++t, 0, false, NULL, "starting", &o);
        assert_int_equal(r.state, RUN_RUNNING);
        unsigned a = feed(&r, E(EXITED), ++t, 1, false, NULL, "exited with status 1", &o);
        if (!(a & START))
            break;
        starts++;
        assert_int_equal(r.state, RUN_STARTING);
    }
    assert_int_equal(starts, 3);
    assert_int_equal(r.runs, 3);
    assert_int_equal(r.state, RUN_FAILED);
    assert_string_equal(r.reason, "exited with status 1 after 3 runs");
    assert_string_equal(run_state_name(r.state), "failed");

    run_init(&r, false, NOW);
    run_configure(&r, &job);
    feed(&r, E(BEGIN), t, 0, true, NULL, NULL, &o);
    feed(&r, E(VERIFIED), t, 0, false, NULL, NULL, &o);
    feed(&r, E(STARTED), t, 0, false, NULL, NULL, &o);
    feed(&r, E(EXITED), t, 3, false, NULL, "exited with status 3", &o);
    feed(&r, E(STARTED), t, 0, false, NULL, NULL, &o);
    assert_string_equal(r.reason, "run 2 of 3");
    feed(&r, E(EXITED), t, 0, false, NULL, "exited with status 0", &o);
    assert_int_equal(r.state, RUN_SUCCEEDED);
    assert_string_equal(r.reason, "exited with status 0 after 2 runs");
}

/* A scheduled job goes round: scheduled, due, running, scheduled again,
 * with a fresh set of retries each round; a stop drops its timer. */
static void test_scheduled_rounds(void **state)
{
    (void)state;
    struct run_lc r;
    struct run_out o;
    run_init(&r, false, NOW);
    struct run_job job = {.job = true, .retries = 1, .has_schedule = true};
    char why[128];
    assert_int_equal(schedule_parse("0 * * * *", &job.sched, why, sizeof why), 0);
    run_configure(&r, &job);
    feed(&r, E(BEGIN), NOW, 0, false, NULL, NULL, &o);
    assert_int_equal(feed(&r, E(VERIFIED), NOW, 0, false, NULL, NULL, &o), TIMER | REPORT);
    assert_int_equal(o.timer_at_ms, 3600000);
    assert_int_equal(r.next_ms, 3600000);
    assert_string_equal(r.reason, "next run at 1970-01-01T01:00:00Z");
    uint64_t t = 3600000;
    for (int round = 0; round < 3; round++) {
        assert_int_equal(feed(&r, E(DUE), t, 0, false, NULL, NULL, &o), START | REPORT);
        feed(&r, E(STARTED), t + 1, 0, false, NULL, NULL, &o);
        assert_int_equal(feed(&r, E(EXITED), t + 2, 1, false, NULL, "exited with status 1", &o),
                         START | REPORT);
        feed(&r, E(STARTED), t + 3, 0, false, NULL, NULL, &o);
        assert_int_equal(feed(&r, E(EXITED), t + 4, 1, false, NULL, "exited with status 1", &o),
                         TIMER | REPORT);
        assert_int_equal(r.state, RUN_SCHEDULED);
        t += 3600000;
        assert_int_equal(o.timer_at_ms, t);
        assert_int_equal(r.runs, 0);
    }
    assert_string_equal(r.reason,
                        "next run at 1970-01-01T04:00:00Z; last run: exited with status 1 after 2 runs");
    assert_int_equal(feed(&r, E(STOP), t, 0, false, NULL, NULL, &o), CANCEL | FORGET);

    /* A timer that fires a little early (clock drift) does not run the same
     * minute twice: the next time counts from when the round was due. */
    run_init(&r, false, NOW);
    job.retries = 0;
    run_configure(&r, &job);
    feed(&r, E(BEGIN), NOW, 0, true, NULL, NULL, &o);
    feed(&r, E(VERIFIED), NOW, 0, false, NULL, NULL, &o);
    assert_int_equal(r.next_ms, 3600000);
    feed(&r, E(DUE), 3600000 - 3, 0, false, NULL, NULL, &o);
    feed(&r, E(STARTED), 3600000 - 2, 0, false, NULL, NULL, &o);
    assert_int_equal(feed(&r, E(EXITED), 3600000 - 1, 0, false, NULL, "exited with status 0", &o),
                     TIMER | REPORT);
    assert_int_equal(o.timer_at_ms, 7200000);
}

/* A service deployed over another version: healthy retires the other one,
 * a missed deadline rolls back to it; the unlisted note comes and goes. */
static void test_service_life(void **state)
{
    (void)state;
    struct run_lc r;
    struct run_out o;
    run_init(&r, true, NOW);
    assert_string_equal(run_state_name(r.state), "pending");
    feed(&r, E(BEGIN), NOW, 0, false, NULL, NULL, &o);
    assert_string_equal(run_state_name(r.state), "fetching");
    feed(&r, E(FETCHED), NOW, 0, false, NULL, NULL, &o);
    assert_string_equal(run_state_name(r.state), "verifying");
    feed(&r, E(VERIFIED), NOW, 0, false, NULL, NULL, &o);
    feed(&r, E(STARTED), NOW, 0, false, NULL, "starting", &o);
    assert_int_equal(feed(&r, E(UNLISTED), NOW, 0, false, NULL, NULL, &o), REPORT);
    assert_string_equal(r.reason, KEPT);
    /* The note stays through changes of state, and leaves when listed. */
    assert_int_equal(feed(&r, E(HEALTHY), NOW, 0, false, NULL, "healthy", &o), RETIRE | REPORT);
    assert_string_equal(r.reason, KEPT);
    assert_int_equal(feed(&r, E(LISTED), NOW, 0, false, NULL, NULL, &o), REPORT);
    assert_string_equal(r.reason, "healthy");
    /* Retire once only. */
    feed(&r, E(EXITED), NOW, 1, false, NULL, "exited with status 1", &o);
    assert_int_equal(feed(&r, E(HEALTHY), NOW, 0, false, NULL, "healthy", &o), REPORT);
    /* Once it has been healthy, a give-up is a plain failure. */
    assert_int_equal(feed(&r, E(GAVE_UP), NOW, 0, false, "1.0", "crash loop", &o), REPORT);
    assert_string_equal(run_state_name(r.state), "failed");
    /* An ended run keeps saying why, listed or not. */
    assert_int_equal(feed(&r, E(UNLISTED), NOW, 0, false, NULL, NULL, &o), 0);
    assert_string_equal(r.reason, "crash loop");

    /* Stop: reported "stopped" while stopping, then forgotten. */
    run_init(&r, false, NOW);
    feed(&r, E(BEGIN), NOW, 0, true, NULL, NULL, &o);
    feed(&r, E(VERIFIED), NOW, 0, false, NULL, NULL, &o);
    feed(&r, E(STOP), NOW, 0, false, NULL, "undeployed", &o);
    assert_string_equal(run_state_name(r.state), "stopped");
    assert_int_equal(r.state, RUN_STOPPING);
    assert_int_equal(feed(&r, E(STOP), NOW, 0, false, NULL, "again", &o), 0);
    assert_int_equal(feed(&r, E(UNLISTED), NOW, 0, false, NULL, NULL, &o), 0);
    assert_int_equal(feed(&r, E(STOPPED), NOW, 0, false, NULL, NULL, &o), REPORT | FORGET);
}

static void test_names_restore_and_bad_input(void **state)
{
    (void)state;
    static const char *const names[] = {"pending", "fetching", "verifying", "starting",
                                        "running", "unhealthy", "stopped", "failed",
                                        "rolled_back", "succeeded", "scheduled"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int st = run_state_parse(names[i]);
        assert_true(st >= 0);
        assert_string_equal(run_state_name((enum run_state)st), names[i]);
    }
    assert_int_equal(run_state_parse("stopped"), RUN_STOPPED);
    assert_int_equal(run_state_parse("backoff"), -1);
    assert_int_equal(run_state_parse(NULL), -1);
    assert_string_equal(run_state_name((enum run_state)99), "unknown");
    assert_string_equal(run_event_name((enum run_event)-1), "unknown");
    for (int e = 0; e < RUN_NEVENTS; e++)
        assert_string_not_equal(run_event_name((enum run_event)e), "unknown");

    struct run_lc r;
    struct run_out o;
    assert_int_equal(run_restore(&r, "scheduled", "next run at x", 77), 0);
    assert_int_equal(r.state, RUN_SCHEDULED);
    assert_string_equal(r.reason, "next run at x");
    assert_int_equal(r.since_ms, 77);
    assert_int_equal(run_restore(&r, "exploded", "", 77), -1);
    assert_int_equal(r.state, RUN_FAILED);
    assert_string_equal(r.reason, "unknown state 'exploded' in local state");

    /* Odd callers: NULL out, in, run; junk event or state; huge details. */
    run_init(&r, false, 0);
    struct run_in in = {.ev = RUN_EV_BEGIN};
    run_event(&r, &in, NULL);
    assert_int_equal(r.state, RUN_FETCHING);
    o.actions = 77;
    run_event(&r, NULL, &o);
    assert_int_equal(o.actions, 0);
    run_event(NULL, &in, &o);
    assert_int_equal(o.actions, 0);
    assert_int_equal(feed(&r, (enum run_event)99, 0, 0, false, NULL, NULL, &o), 0);
    r.state = (enum run_state)1234;
    assert_int_equal(feed(&r, E(STOP), 0, 0, false, NULL, NULL, &o), 0);
    run_init(NULL, false, 0);
    run_configure(NULL, NULL);
    assert_int_equal(run_restore(NULL, "running", "", 0), -1);
    char big[1000];
    memset(big, 'e', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    setup(&r, RUN_STARTING, V_ROLL);
    feed(&r, E(GAVE_UP), 0, 0, false, big, big, &o);
    assert_int_equal(r.state, RUN_ROLLED_BACK);
    assert_true(strlen(r.reason) < RUN_REASON_MAX);
    setup(&r, RUN_RUNNING, V_LAST);
    feed(&r, E(EXITED), 0, 1, false, NULL, big, &o);
    assert_true(strlen(r.reason) < RUN_REASON_MAX);
}

/* Long random histories: the promises the agent relies on hold whatever
 * comes in. */
static void test_random_histories(void **state)
{
    (void)state;
    uint32_t x = 4242;
    for (int n = 0; n < 200; n++) {
        struct run_lc r;
        struct run_out o;
        setup(&r, RUN_PENDING, (enum variant)(n % (V_SCHED + 1)));
        bool armed = false;
        uint64_t t = NOW;
        for (int i = 0; i < 2000; i++) {
            x = x * 1664525u + 1013904223u;
            enum run_event e = (enum run_event)((x >> 16) % RUN_NEVENTS);
            enum run_state before = r.state;
            char reason[RUN_REASON_MAX];
            memcpy(reason, r.reason, sizeof reason);
            t += (x >> 8) % 5000;
            unsigned a = feed(&r, e, t, (int)((x >> 4) % 3) - 1, (x >> 3) & 1, (x & 1) ? "1.0" : NULL,
                              "d", &o);
            assert_true((unsigned)r.state < RUN_NSTATES);
            assert_false((a & TIMER) && (a & CANCEL));
            assert_int_equal(!!(a & REPORT), r.state != before || strcmp(reason, r.reason) != 0);
            if (a & CANCEL)
                assert_true(armed);
            if (a & TIMER) {
                assert_true(o.timer_at_ms > t);
                armed = true;
            }
            if (a & CANCEL)
                armed = false;
            if (e == RUN_EV_DUE && before == RUN_SCHEDULED)
                armed = false;
            if (a & FORGET) { /* gone: a new run takes its place */
                assert_false(armed);
                setup(&r, RUN_PENDING, (enum variant)(n % (V_SCHED + 1)));
                continue;
            }
            /* A scheduled run has its timer; nothing else does. */
            if (armed != (r.state == RUN_SCHEDULED))
                fail_msg("history %d step %d: %s after %s + %s, actions %#x, timer %s", n, i,
                         run_state_name(r.state), run_state_name(before), run_event_name(e), a,
                         armed ? "armed" : "not armed");
            assert_false((a & START) && (a & STOP));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_cell),
        cmocka_unit_test(test_job_retries),
        cmocka_unit_test(test_scheduled_rounds),
        cmocka_unit_test(test_service_life),
        cmocka_unit_test(test_names_restore_and_bad_input),
        cmocka_unit_test(test_random_histories),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
