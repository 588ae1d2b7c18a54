/* Supervisor state table: time is driven explicitly, actions are checked as
 * the agent would perform them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "supervisor.h"

#define SPAWN SUP_DO_SPAWN
#define TERM SUP_DO_TERM
#define KILL SUP_DO_KILL
#define TIMER SUP_DO_TIMER
#define CANCEL SUP_DO_CANCEL_TIMER
#define REPORT SUP_DO_REPORT

struct rig {
    struct sup s;
    struct sup_out o;
};

static void rig_init(struct rig *r, const struct sup_policy *p)
{
    sup_init(&r->s, p);
    memset(&r->o, 0, sizeof r->o);
}

/* Feed one event; returns the action set. */
static unsigned ev(struct rig *r, enum sup_event e, uint64_t now, const char *detail)
{
    sup_event(&r->s, e, now, detail, &r->o);
    return r->o.actions;
}

/* Crash the current process and fire the backoff timer: back in STARTING.
 * Returns the backoff delay that was asked for. */
static uint64_t crash_and_respawn(struct rig *r, uint64_t *now, const char *why)
{
    unsigned a = ev(r, SUP_EV_EXITED, *now, why);
    assert_int_equal(r->s.state, SUP_BACKOFF);
    assert_int_equal(a, TIMER | REPORT);
    uint64_t delay = r->o.timer_at_ms - *now;
    *now = r->o.timer_at_ms;
    assert_int_equal(ev(r, SUP_EV_TIMER, *now, NULL), SPAWN | TIMER | REPORT);
    assert_int_equal(r->s.state, SUP_STARTING);
    return delay;
}

static void test_start_healthy_running(void **state)
{
    struct rig r;
    rig_init(&r, NULL);
    assert_int_equal(r.s.state, SUP_STOPPED);
    assert_string_equal(r.s.reason, "not started");

    assert_int_equal(ev(&r, SUP_EV_START, 1000, NULL), SPAWN | TIMER | REPORT);
    assert_int_equal(r.s.state, SUP_STARTING);
    assert_int_equal(r.o.timer_at_ms, 1000 + 30000);
    assert_string_equal(r.s.reason, "starting");

    /* A failed probe while starting changes nothing: the deadline decides. */
    assert_int_equal(ev(&r, SUP_EV_UNHEALTHY, 2000, "connection refused"), 0);
    assert_int_equal(r.s.state, SUP_STARTING);
    /* A second START is ignored. */
    assert_int_equal(ev(&r, SUP_EV_START, 2100, NULL), 0);

    assert_int_equal(ev(&r, SUP_EV_HEALTHY, 3000, NULL), CANCEL | REPORT);
    assert_int_equal(r.s.state, SUP_RUNNING);
    assert_string_equal(r.s.reason, "healthy");
    assert_true(r.s.ever_healthy);
    assert_int_equal(r.s.restarts, 0);

    /* Further good probes are quiet; a stale timer is ignored. */
    assert_int_equal(ev(&r, SUP_EV_HEALTHY, 4000, NULL), 0);
    assert_int_equal(ev(&r, SUP_EV_TIMER, 31000, NULL), 0);
    assert_int_equal(r.s.state, SUP_RUNNING);

    assert_string_equal(sup_state_name(SUP_STARTING), "starting");
    assert_string_equal(sup_state_name(SUP_RUNNING), "running");
    assert_string_equal(sup_state_name(SUP_UNHEALTHY), "unhealthy");
    assert_string_equal(sup_state_name(SUP_BACKOFF), "backoff");
    assert_string_equal(sup_state_name(SUP_STOPPING), "stopping");
    assert_string_equal(sup_state_name(SUP_STOPPED), "stopped");
    assert_string_equal(sup_state_name(SUP_FAILED), "failed");
    assert_string_equal(sup_state_name((enum sup_state)42), "unknown");
    assert_string_equal(sup_event_name((enum sup_event)-1), "unknown");
}

/* A healthy probe with a reason (a model's drift) keeps the run running
 * and reports the reason as a warning; the warning clears when probes say
 * nothing again, and an unchanged warning is not reported twice. */
static void test_healthy_with_warning(void **state)
{
    (void)state;
    struct rig r;
    rig_init(&r, NULL);
    ev(&r, SUP_EV_START, 1000, NULL);
    assert_int_equal(ev(&r, SUP_EV_HEALTHY, 1500, "drift: x psi 0.31 > 0.2"), CANCEL | REPORT);
    assert_int_equal(r.s.state, SUP_RUNNING);
    assert_string_equal(r.s.reason, "warning: drift: x psi 0.31 > 0.2");
    assert_int_equal(ev(&r, SUP_EV_HEALTHY, 2500, "drift: x psi 0.31 > 0.2"), 0);
    assert_int_equal(ev(&r, SUP_EV_HEALTHY, 3500, "drift: x psi 0.40 > 0.2"), REPORT);
    assert_string_equal(r.s.reason, "warning: drift: x psi 0.40 > 0.2");
    assert_int_equal(r.s.state, SUP_RUNNING);
    /* A failed probe in between does not touch the warning... */
    assert_int_equal(ev(&r, SUP_EV_UNHEALTHY, 4000, "GET /: timed out"), 0);
    assert_string_equal(r.s.reason, "warning: drift: x psi 0.40 > 0.2");
    /* ...and a plain healthy probe clears it. */
    assert_int_equal(ev(&r, SUP_EV_HEALTHY, 4500, ""), REPORT);
    assert_string_equal(r.s.reason, "healthy");
    assert_int_equal(ev(&r, SUP_EV_HEALTHY, 5500, NULL), 0);
    assert_int_equal(ev(&r, SUP_EV_HEALTHY, 6500, "drift: y psi 1.00 > 0.2"), REPORT);
    assert_int_equal(r.s.probe_failures, 0);
}

static void test_never_healthy_fails_at_deadline(void **state)
{
    struct sup_policy p;
    sup_policy_default(&p);
    p.health_deadline_ms = 10000;
    struct rig r;
    rig_init(&r, &p);

    assert_int_equal(ev(&r, SUP_EV_START, 500, NULL), SPAWN | TIMER | REPORT);
    assert_int_equal(r.o.timer_at_ms, 10500);
    ev(&r, SUP_EV_UNHEALTHY, 3000, "connection refused");
    ev(&r, SUP_EV_UNHEALTHY, 6000, "HTTP 503");

    /* One ms early: not yet. */
    assert_int_equal(ev(&r, SUP_EV_TIMER, 10499, NULL), 0);
    assert_int_equal(r.s.state, SUP_STARTING);

    /* Exactly at the deadline: failed, told to stop it, kill timer armed. */
    assert_int_equal(ev(&r, SUP_EV_TIMER, 10500, NULL), TERM | TIMER | REPORT);
    assert_int_equal(r.s.state, SUP_FAILED);
    assert_string_equal(r.s.reason, "not healthy within 10s: HTTP 503");
    assert_false(r.s.ever_healthy);
    assert_int_equal(r.o.timer_at_ms, 10500 + 5000);

    /* It ignores TERM: KILL when the stop timeout fires. */
    assert_int_equal(ev(&r, SUP_EV_TIMER, 15500, NULL), KILL | TIMER);
    assert_int_equal(r.s.state, SUP_FAILED);
    /* Its exit is quiet: still failed, same reason. */
    assert_int_equal(ev(&r, SUP_EV_EXITED, 15501, "killed by signal 9"), CANCEL);
    assert_int_equal(r.s.state, SUP_FAILED);
    assert_string_equal(r.s.reason, "not healthy within 10s: HTTP 503");
    /* No restart from failed, not even on START or a late probe. */
    assert_int_equal(ev(&r, SUP_EV_START, 16000, NULL), 0);
    assert_int_equal(ev(&r, SUP_EV_HEALTHY, 16000, NULL), 0);
    assert_int_equal(r.s.state, SUP_FAILED);

    /* Without any probe result the reason says so. */
    rig_init(&r, &p);
    ev(&r, SUP_EV_START, 0, NULL);
    ev(&r, SUP_EV_TIMER, 10000, NULL);
    assert_int_equal(r.s.state, SUP_FAILED);
    assert_string_equal(r.s.reason, "not healthy within 10s: no probe result");
}

static void test_backoff_doubles_and_caps(void **state)
{
    struct sup_policy p;
    sup_policy_default(&p);
    p.backoff_initial_ms = 200;
    p.backoff_max_ms = 1000;
    p.crash_max = 10;
    struct rig r;
    rig_init(&r, &p);

    uint64_t now = 0;
    ev(&r, SUP_EV_START, now, NULL);
    const uint64_t want[] = {200, 400, 800, 1000, 1000, 1000};
    for (unsigned i = 0; i < sizeof want / sizeof want[0]; i++) {
        now += 50;
        unsigned a = ev(&r, SUP_EV_EXITED, now, "exited with status 1");
        assert_int_equal(a, TIMER | REPORT);
        assert_int_equal(r.s.state, SUP_BACKOFF);
        assert_string_equal(r.s.reason, "exited with status 1");
        assert_int_equal(r.o.timer_at_ms, now + want[i]);
        assert_int_equal(r.s.restarts, i + 1);

        /* Early timer ignored, then respawn exactly on time with a fresh
         * health deadline. */
        assert_int_equal(ev(&r, SUP_EV_TIMER, r.o.timer_at_ms - 1, NULL), 0);
        now = now + want[i];
        assert_int_equal(ev(&r, SUP_EV_TIMER, now, NULL), SPAWN | TIMER | REPORT);
        assert_int_equal(r.s.state, SUP_STARTING);
        assert_string_equal(r.s.reason, "starting");
        assert_int_equal(r.o.timer_at_ms, now + 30000);
    }

    /* Crash while running goes the same way (the sequence continues). */
    ev(&r, SUP_EV_HEALTHY, now + 10, NULL);
    now += 100;
    assert_int_equal(ev(&r, SUP_EV_EXITED, now, "killed by signal 11"), TIMER | REPORT);
    assert_int_equal(r.o.timer_at_ms, now + 1000);
    assert_int_equal(r.s.restarts, 7);
}

static void test_crash_loop_fails(void **state)
{
    struct rig r;
    rig_init(&r, NULL); /* crash_max 5 in 60s */
    uint64_t now = 1000;
    ev(&r, SUP_EV_START, now, NULL);
    for (int i = 0; i < 4; i++) {
        now += 100;
        crash_and_respawn(&r, &now, "exited with status 2");
    }
    /* Fifth exit within the window: give up. The starting deadline timer is
     * cancelled, nothing is spawned. */
    now += 100;
    assert_int_equal(ev(&r, SUP_EV_EXITED, now, "killed by signal 11"), CANCEL | REPORT);
    assert_int_equal(r.s.state, SUP_FAILED);
    assert_string_equal(r.s.reason, "crash loop: 5 exits in 60s; last: killed by signal 11");
    assert_int_equal(r.s.restarts, 4);

    /* Nothing revives it. */
    assert_int_equal(ev(&r, SUP_EV_TIMER, now + 100000, NULL), 0);
    assert_int_equal(ev(&r, SUP_EV_EXITED, now + 1, NULL), 0);
    assert_int_equal(ev(&r, SUP_EV_HEALTHY, now + 1, NULL), 0);
    assert_int_equal(r.s.state, SUP_FAILED);

    /* STOP from a failed run with no process: stopped directly. */
    assert_int_equal(ev(&r, SUP_EV_STOP, now + 2, NULL), REPORT);
    assert_int_equal(r.s.state, SUP_STOPPED);
    assert_string_equal(r.s.reason, "stopped by request");

    /* A new START forgets the old crashes. */
    now += 10;
    assert_int_equal(ev(&r, SUP_EV_START, now, NULL), SPAWN | TIMER | REPORT);
    now += 10;
    assert_int_equal(crash_and_respawn(&r, &now, "exited with status 2"), 200);
}

static void test_crashes_beyond_window_do_not_fail(void **state)
{
    struct rig r;
    rig_init(&r, NULL); /* crash_max 5 in 60s */
    uint64_t now = 0;
    ev(&r, SUP_EV_START, now, NULL);
    /* One crash every 20s: never more than 3 inside a 60s window. */
    for (int i = 0; i < 12; i++) {
        now += 20000;
        crash_and_respawn(&r, &now, "exited with status 1");
    }
    assert_int_equal(r.s.restarts, 12);
    assert_int_equal(r.s.state, SUP_STARTING);

    /* Boundary: an exit exactly crash_window_ms old is outside the window. */
    struct sup_policy p;
    sup_policy_default(&p);
    p.crash_max = 2;
    p.crash_window_ms = 1000;
    p.backoff_initial_ms = 10;
    rig_init(&r, &p);
    ev(&r, SUP_EV_START, 0, NULL);
    now = 0;
    crash_and_respawn(&r, &now, "a"); /* exit at 0 */
    now = 1000;
    crash_and_respawn(&r, &now, "b"); /* exit at 1000: the one at 0 is out */
    now = 1500;
    assert_int_equal(ev(&r, SUP_EV_EXITED, now, "c"), CANCEL | REPORT);
    assert_int_equal(r.s.state, SUP_FAILED);
    assert_string_equal(r.s.reason, "crash loop: 2 exits in 1s; last: c");
}

static void test_backoff_resets_after_stable_run(void **state)
{
    struct sup_policy p;
    sup_policy_default(&p);
    p.crash_max = SUP_CRASH_RING; /* this test is about the delay only */
    struct rig r;
    rig_init(&r, &p);
    uint64_t now = 0;
    ev(&r, SUP_EV_START, now, NULL);
    assert_int_equal(crash_and_respawn(&r, &now, "x"), 200);
    assert_int_equal(crash_and_respawn(&r, &now, "x"), 400);
    assert_int_equal(crash_and_respawn(&r, &now, "x"), 800);

    /* Healthy for just under a window: no reset. */
    ev(&r, SUP_EV_HEALTHY, now, NULL);
    now += 59999;
    assert_int_equal(crash_and_respawn(&r, &now, "x"), 1600);

    /* Healthy for a full window: back to the initial delay. */
    ev(&r, SUP_EV_HEALTHY, now, NULL);
    now += 60000;
    assert_int_equal(crash_and_respawn(&r, &now, "x"), 200);
    assert_int_equal(crash_and_respawn(&r, &now, "x"), 400);

    /* The same holds when the stable run ends by going unhealthy: the time
     * spent in UNHEALTHY does not count, the healthy stretch does. */
    ev(&r, SUP_EV_HEALTHY, now, NULL);
    now += 60000;
    for (int i = 0; i < 3; i++)
        ev(&r, SUP_EV_UNHEALTHY, now, "timeout");
    assert_int_equal(r.s.state, SUP_UNHEALTHY);
    now += 10;
    assert_int_equal(ev(&r, SUP_EV_EXITED, now, NULL), TIMER | REPORT);
    assert_int_equal(r.o.timer_at_ms, now + 200);

    /* And a capped sequence stays capped while never stable. */
    now = r.o.timer_at_ms;
    ev(&r, SUP_EV_TIMER, now, NULL);
    for (int i = 0; i < 8; i++)
        crash_and_respawn(&r, &now, "x");
    assert_int_equal(crash_and_respawn(&r, &now, "x"), 10000);
}

static void test_unhealthy_restart(void **state)
{
    struct rig r;
    rig_init(&r, NULL); /* unhealthy_max 3, stop_timeout 5000 */
    ev(&r, SUP_EV_START, 0, NULL);
    ev(&r, SUP_EV_HEALTHY, 1000, NULL);

    /* Two failures, then a success resets the count. */
    assert_int_equal(ev(&r, SUP_EV_UNHEALTHY, 2000, "timeout"), 0);
    assert_int_equal(ev(&r, SUP_EV_UNHEALTHY, 3000, "timeout"), 0);
    assert_int_equal(ev(&r, SUP_EV_HEALTHY, 4000, NULL), 0);
    assert_int_equal(ev(&r, SUP_EV_UNHEALTHY, 5000, "timeout"), 0);
    assert_int_equal(ev(&r, SUP_EV_UNHEALTHY, 6000, "timeout"), 0);
    assert_int_equal(r.s.state, SUP_RUNNING);

    /* Third consecutive failure: restart it. */
    assert_int_equal(ev(&r, SUP_EV_UNHEALTHY, 7000, "HTTP 500"), TERM | TIMER | REPORT);
    assert_int_equal(r.s.state, SUP_UNHEALTHY);
    assert_int_equal(r.o.timer_at_ms, 12000);
    assert_string_equal(r.s.reason, "3 consecutive failed probes: HTTP 500");

    /* Too late to change our mind. */
    assert_int_equal(ev(&r, SUP_EV_HEALTHY, 8000, NULL), 0);
    assert_int_equal(ev(&r, SUP_EV_UNHEALTHY, 8000, "x"), 0);
    assert_int_equal(r.s.state, SUP_UNHEALTHY);

    /* TERM ignored: KILL at the stop timeout, re-armed. */
    assert_int_equal(ev(&r, SUP_EV_TIMER, 12000, NULL), KILL | TIMER);
    assert_int_equal(r.o.timer_at_ms, 17000);

    /* Exit -> backoff -> respawn. */
    assert_int_equal(ev(&r, SUP_EV_EXITED, 12005, "killed by signal 9"), TIMER | REPORT);
    assert_int_equal(r.s.state, SUP_BACKOFF);
    assert_int_equal(r.o.timer_at_ms, 12205);
    assert_int_equal(r.s.restarts, 1);
    assert_string_equal(r.s.reason, "restarted after failed probes: HTTP 500");
    assert_int_equal(ev(&r, SUP_EV_TIMER, 12205, NULL), SPAWN | TIMER | REPORT);
    assert_int_equal(r.s.state, SUP_STARTING);

    /* The count starts over in the new process. */
    ev(&r, SUP_EV_HEALTHY, 13000, NULL);
    assert_int_equal(ev(&r, SUP_EV_UNHEALTHY, 14000, "x"), 0);
    assert_int_equal(ev(&r, SUP_EV_UNHEALTHY, 15000, "x"), 0);
    assert_int_equal(r.s.state, SUP_RUNNING);
}

static void test_unhealthy_restarts_count_toward_crash_loop(void **state)
{
    struct sup_policy p;
    sup_policy_default(&p);
    p.unhealthy_max = 1;
    p.crash_max = 3;
    struct rig r;
    rig_init(&r, &p);
    uint64_t now = 0;
    ev(&r, SUP_EV_START, now, NULL);
    for (int i = 0; i < 3; i++) {
        ev(&r, SUP_EV_HEALTHY, ++now, NULL);
        assert_int_equal(ev(&r, SUP_EV_UNHEALTHY, ++now, "wedged"), TERM | TIMER | REPORT);
        ev(&r, SUP_EV_EXITED, ++now, NULL);
        if (i < 2) {
            assert_int_equal(r.s.state, SUP_BACKOFF);
            now = r.o.timer_at_ms;
            ev(&r, SUP_EV_TIMER, now, NULL);
        }
    }
    assert_int_equal(r.s.state, SUP_FAILED);
    assert_string_equal(r.s.reason,
                        "crash loop: 3 exits in 60s; last: restarted after failed probes: wedged");
}

static void test_stop(void **state)
{
    struct rig r;
    rig_init(&r, NULL);
    ev(&r, SUP_EV_START, 0, NULL);
    ev(&r, SUP_EV_HEALTHY, 1000, NULL);

    assert_int_equal(ev(&r, SUP_EV_STOP, 5000, "rollout to v2"), TERM | TIMER | REPORT);
    assert_int_equal(r.s.state, SUP_STOPPING);
    assert_int_equal(r.o.timer_at_ms, 10000);
    assert_string_equal(r.s.reason, "stopped by request: rollout to v2");
    /* Probes and repeated STOPs while stopping change nothing. */
    assert_int_equal(ev(&r, SUP_EV_STOP, 6000, NULL), 0);
    assert_int_equal(ev(&r, SUP_EV_UNHEALTHY, 6000, "x"), 0);
    assert_int_equal(ev(&r, SUP_EV_TIMER, 9999, NULL), 0);

    assert_int_equal(ev(&r, SUP_EV_TIMER, 10000, NULL), KILL | TIMER);
    assert_int_equal(r.s.state, SUP_STOPPING);
    assert_int_equal(r.o.timer_at_ms, 15000);

    assert_int_equal(ev(&r, SUP_EV_EXITED, 10010, "killed by signal 9"), CANCEL | REPORT);
    assert_int_equal(r.s.state, SUP_STOPPED);
    assert_string_equal(r.s.reason, "stopped by request (killed after 5s)");
    assert_int_equal(r.s.restarts, 0);
    assert_int_equal(ev(&r, SUP_EV_TIMER, 15000, NULL), 0);
    assert_int_equal(ev(&r, SUP_EV_EXITED, 15000, NULL), 0);

    /* A polite exit keeps the plain reason. */
    ev(&r, SUP_EV_START, 20000, NULL);
    assert_int_equal(ev(&r, SUP_EV_STOP, 21000, NULL), TERM | TIMER | REPORT);
    assert_int_equal(ev(&r, SUP_EV_EXITED, 21100, NULL), CANCEL | REPORT);
    assert_string_equal(r.s.reason, "stopped by request");

    /* STOP during backoff: no process, stopped at once. */
    ev(&r, SUP_EV_START, 30000, NULL);
    ev(&r, SUP_EV_EXITED, 30100, "exited with status 1");
    assert_int_equal(r.s.state, SUP_BACKOFF);
    assert_int_equal(ev(&r, SUP_EV_STOP, 30150, NULL), CANCEL | REPORT);
    assert_int_equal(r.s.state, SUP_STOPPED);
    assert_int_equal(ev(&r, SUP_EV_TIMER, 30300, NULL), 0); /* the old backoff */

    /* STOP while unhealthy (TERM already sent): no restart is counted. */
    uint32_t restarts = r.s.restarts;
    ev(&r, SUP_EV_START, 40000, NULL);
    ev(&r, SUP_EV_HEALTHY, 40100, NULL);
    for (int i = 0; i < 3; i++)
        ev(&r, SUP_EV_UNHEALTHY, 40200, "x");
    assert_int_equal(r.s.state, SUP_UNHEALTHY);
    assert_int_equal(ev(&r, SUP_EV_STOP, 40300, NULL), TERM | TIMER | REPORT);
    assert_int_equal(r.s.state, SUP_STOPPING);
    ev(&r, SUP_EV_EXITED, 40400, NULL);
    assert_int_equal(r.s.state, SUP_STOPPED);
    assert_int_equal(r.s.restarts, restarts);

    /* STOP after a missed deadline, before the process is gone: wait for it. */
    ev(&r, SUP_EV_START, 50000, NULL);
    ev(&r, SUP_EV_TIMER, 80000, NULL);
    assert_int_equal(r.s.state, SUP_FAILED);
    assert_int_equal(ev(&r, SUP_EV_STOP, 80001, NULL), TERM | TIMER | REPORT);
    assert_int_equal(r.s.state, SUP_STOPPING);
    assert_int_equal(ev(&r, SUP_EV_EXITED, 80002, NULL), CANCEL | REPORT);
    assert_int_equal(r.s.state, SUP_STOPPED);
}

static void test_adopt(void **state)
{
    struct rig r;
    rig_init(&r, NULL);
    assert_int_equal(ev(&r, SUP_EV_ADOPTED, 500, NULL), REPORT);
    assert_int_equal(r.s.state, SUP_RUNNING);
    assert_true(r.s.ever_healthy);
    assert_string_equal(r.s.reason, "adopted running process");
    assert_int_equal(ev(&r, SUP_EV_ADOPTED, 600, NULL), 0);
    assert_int_equal(ev(&r, SUP_EV_HEALTHY, 700, NULL), 0);

    /* It is supervised like any running process. */
    assert_int_equal(ev(&r, SUP_EV_EXITED, 800, "exited with status 3"), TIMER | REPORT);
    assert_int_equal(r.s.state, SUP_BACKOFF);
    assert_int_equal(r.o.timer_at_ms, 1000);

    /* ADOPTED means nothing to a run that is already going. */
    rig_init(&r, NULL);
    ev(&r, SUP_EV_START, 0, NULL);
    assert_int_equal(ev(&r, SUP_EV_ADOPTED, 10, NULL), 0);
    assert_int_equal(r.s.state, SUP_STARTING);
}

/* A job: no deadline, and every exit (0 or not, however often) ends in
 * STOPPED for the run table to decide; no backoff, no crash loop. */
static void test_job_mode(void **state)
{
    struct sup_policy p;
    sup_policy_default(&p);
    p.job = true;
    p.crash_max = 1;
    struct rig r;
    rig_init(&r, &p);
    uint64_t now = 0;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ev(&r, SUP_EV_START, now, NULL), SPAWN | REPORT);
        assert_int_equal(r.s.state, SUP_STARTING);
        /* No deadline was armed: a late timer is nobody's. */
        assert_int_equal(ev(&r, SUP_EV_TIMER, now + 100000, NULL), 0);
        now += 100001;
        assert_int_equal(ev(&r, SUP_EV_EXITED, now, "exited with status 1"), REPORT);
        assert_int_equal(r.s.state, SUP_STOPPED);
        assert_string_equal(r.s.reason, "exited with status 1");
        assert_int_equal(r.s.restarts, 0);
    }
    /* Adopted after an agent restart, then it ends. */
    rig_init(&r, &p);
    ev(&r, SUP_EV_ADOPTED, 0, NULL);
    assert_int_equal(ev(&r, SUP_EV_EXITED, 5, NULL), REPORT);
    assert_int_equal(r.s.state, SUP_STOPPED);
    assert_string_equal(r.s.reason, "exited");
    /* Stopped on request, as a service is. */
    ev(&r, SUP_EV_START, 10, NULL);
    assert_int_equal(ev(&r, SUP_EV_STOP, 20, "undeployed"), TERM | TIMER | REPORT);
    assert_int_equal(r.s.state, SUP_STOPPING);
    assert_int_equal(ev(&r, SUP_EV_EXITED, 30, NULL), CANCEL | REPORT);
    assert_int_equal(r.s.state, SUP_STOPPED);
}

static void test_policy_and_bad_input(void **state)
{
    struct sup_policy p;
    memset(&p, 0, sizeof p);
    p.crash_window_ms = 1000;
    struct rig r;
    rig_init(&r, &p);
    /* crash_max 0 counts as 1: the first exit fails. */
    ev(&r, SUP_EV_START, 0, NULL);
    assert_int_equal(r.o.timer_at_ms, 0); /* deadline 0 */
    assert_int_equal(ev(&r, SUP_EV_EXITED, 0, NULL), CANCEL | REPORT);
    assert_int_equal(r.s.state, SUP_FAILED);
    assert_string_equal(r.s.reason, "crash loop: 1 exits in 1s; last: exited");

    /* unhealthy_max 0 counts as 1. */
    rig_init(&r, &p);
    ev(&r, SUP_EV_ADOPTED, 0, NULL);
    assert_int_equal(ev(&r, SUP_EV_UNHEALTHY, 1, NULL), TERM | TIMER | REPORT);
    assert_string_equal(r.s.reason, "1 consecutive failed probes: no detail");

    /* Odd callers: NULL out, NULL detail, NULL sup, junk event or state. */
    rig_init(&r, NULL);
    sup_event(&r.s, SUP_EV_START, 0, NULL, NULL);
    assert_int_equal(r.s.state, SUP_STARTING);
    assert_int_equal(ev(&r, (enum sup_event)99, 1, "x"), 0);
    assert_int_equal(ev(&r, (enum sup_event)-1, 1, "x"), 0);
    struct sup_out o = {.actions = 77, .timer_at_ms = 5};
    sup_event(NULL, SUP_EV_START, 0, NULL, &o);
    assert_int_equal(o.actions, 0);
    sup_init(NULL, NULL);
    r.s.state = (enum sup_state)1234;
    assert_int_equal(ev(&r, SUP_EV_STOP, 2, NULL), 0);

    /* Reasons are truncated, never overflowed. */
    char big[1000];
    memset(big, 'e', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    rig_init(&r, NULL);
    ev(&r, SUP_EV_START, 0, NULL);
    ev(&r, SUP_EV_EXITED, 1, big);
    assert_int_equal(r.s.state, SUP_BACKOFF);
    assert_int_equal(strlen(r.s.reason), SUP_REASON_MAX - 1);

    /* The clock never overflows the timer. */
    rig_init(&r, NULL);
    ev(&r, SUP_EV_START, UINT64_MAX - 5, NULL);
    assert_int_equal(r.o.timer_at_ms, UINT64_MAX);
}

/* ---- table coverage: every event from every reachable state ---- */

/* What the agent knows, built only from the actions it was handed. */
struct model {
    struct rig r;
    uint64_t now;
    bool armed;
    uint64_t at;
    bool alive;
};

static bool covered[SUP_NSTATES][SUP_NEVENTS];
static unsigned long steps;

static bool job_mode; /* the model explores a job's supervisor */

static bool state_wants_timer(enum sup_state st)
{
    return (st == SUP_STARTING && !job_mode) || st == SUP_UNHEALTHY || st == SUP_BACKOFF ||
           st == SUP_STOPPING;
}

/* Feed e as the agent would and check everything the agent relies on. */
static void model_step(struct model *m, enum sup_event e, uint64_t dt, const char *detail)
{
    enum sup_state before = m->r.s.state;
    char reason_before[SUP_REASON_MAX];
    memcpy(reason_before, m->r.s.reason, sizeof reason_before);

    if (e == SUP_EV_TIMER && m->armed && m->now + dt < m->at)
        m->now = m->at; /* timers fire at their time */
    else
        m->now += dt;
    bool stale_timer = e == SUP_EV_TIMER && !m->armed;
    if (e == SUP_EV_TIMER)
        m->armed = false;
    if (e == SUP_EV_EXITED)
        m->alive = false;

    covered[before][e] = true;
    steps++;
    unsigned a = ev(&m->r, e, m->now, detail);
    enum sup_state after = m->r.s.state;

    assert_true((unsigned)after < SUP_NSTATES);
    assert_string_not_equal(sup_state_name(after), "unknown");
    assert_true(a < 64);
    assert_false((a & TIMER) && (a & CANCEL));
    size_t len = strnlen(m->r.s.reason, SUP_REASON_MAX);
    assert_true(len > 0 && len < SUP_REASON_MAX);
    bool changed = after != before || strcmp(reason_before, m->r.s.reason) != 0;
    assert_int_equal(!!(a & REPORT), changed);
    if (stale_timer)
        assert_int_equal(a, 0);

    /* Signals only to a process we have; spawn only when none. */
    if (a & (TERM | KILL))
        assert_true(m->alive);
    if (a & SPAWN) {
        assert_false(m->alive);
        assert_int_equal(after, SUP_STARTING);
        m->alive = true;
    }
    if (e == SUP_EV_ADOPTED && after != before)
        m->alive = true;
    if (a & CANCEL)
        m->armed = false;
    if (a & TIMER) {
        assert_true(m->r.o.timer_at_ms >= m->now);
        m->armed = true;
        m->at = m->r.o.timer_at_ms;
    }

    /* A state's promises. */
    if (state_wants_timer(after))
        assert_true(m->armed);
    if (after == SUP_RUNNING || after == SUP_STOPPED)
        assert_false(m->armed);
    if (after == SUP_FAILED)
        assert_int_equal(m->armed, m->alive);
    if (after == SUP_STARTING || after == SUP_RUNNING || after == SUP_UNHEALTHY ||
        after == SUP_STOPPING)
        assert_true(m->alive);
    if (after == SUP_STOPPED || after == SUP_BACKOFF)
        assert_false(m->alive);
    /* A job is never restarted by the supervisor and never gives up. */
    if (job_mode) {
        assert_true(after != SUP_BACKOFF && after != SUP_FAILED);
        assert_int_equal(m->r.s.restarts, 0);
        if (after == SUP_STARTING)
            assert_false(m->armed);
    }
}

static void explore(const struct model *m, int depth)
{
    if (depth == 0)
        return;
    for (int e = 0; e < SUP_NEVENTS; e++) {
        struct model next = *m;
        model_step(&next, (enum sup_event)e, 100, e == SUP_EV_EXITED ? "exited with status 1" : NULL);
        explore(&next, depth - 1);
    }
}

static void test_table_coverage(void **state)
{
    struct sup_policy p;
    sup_policy_default(&p);
    p.crash_max = 2;
    p.unhealthy_max = 2;
    p.health_deadline_ms = 1000;
    struct model m;
    memset(&m, 0, sizeof m);
    rig_init(&m.r, &p);
    memset(covered, 0, sizeof covered);
    steps = 0;

    /* Every sequence of 7 events (823543 of them): every state is reached
     * and fed every event, over many histories. */
    explore(&m, 7);
    for (int s = 0; s < SUP_NSTATES; s++)
        for (int e = 0; e < SUP_NEVENTS; e++) {
            if (!covered[s][e])
                fail_msg("(%s, %s) never exercised", sup_state_name((enum sup_state)s),
                         sup_event_name((enum sup_event)e));
        }
    assert_true(steps > 900000);
}

/* The same exploration for a job's supervisor: every cell it can reach. */
static void test_job_table_coverage(void **state)
{
    struct sup_policy p;
    sup_policy_default(&p);
    p.job = true;
    p.crash_max = 1;
    p.unhealthy_max = 1;
    struct model m;
    memset(&m, 0, sizeof m);
    rig_init(&m.r, &p);
    memset(covered, 0, sizeof covered);
    job_mode = true;
    explore(&m, 6);
    job_mode = false;
    static const enum sup_state reached[] = {SUP_STOPPED, SUP_STARTING, SUP_RUNNING,
                                             SUP_UNHEALTHY, SUP_STOPPING};
    for (size_t i = 0; i < sizeof reached / sizeof reached[0]; i++)
        for (int e = 0; e < SUP_NEVENTS; e++)
            if (!covered[reached[i]][e])
                fail_msg("job: (%s, %s) never exercised", sup_state_name(reached[i]),
                         sup_event_name((enum sup_event)e));
    for (int e = 0; e < SUP_NEVENTS; e++)
        assert_false(covered[SUP_BACKOFF][e] || covered[SUP_FAILED][e]);
}

/* Long random histories: ring wrap-around, a clock that jumps, odd details. */
static void test_random_histories(void **state)
{
    static const char *details[] = {NULL, "", "exited with status 1", "HTTP 503"};
    uint32_t x = 12345;
    for (int run = 0; run < 50; run++) {
        struct sup_policy p;
        sup_policy_default(&p);
        p.crash_max = 1 + run % 40; /* some above SUP_CRASH_RING */
        p.unhealthy_max = run % 4;
        p.backoff_initial_ms = run % 3 ? 200 : 0;
        p.crash_window_ms = 1000u * (uint32_t)(run % 7);
        struct model m;
        memset(&m, 0, sizeof m);
        m.now = 1000000;
        rig_init(&m.r, &p);
        for (int i = 0; i < 4000; i++) {
            x = x * 1664525u + 1013904223u;
            enum sup_event e = (enum sup_event)((x >> 16) % SUP_NEVENTS);
            uint64_t dt = (x >> 8) % 3000;
            model_step(&m, e, dt, details[(x >> 4) % 4]);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_healthy_running),
        cmocka_unit_test(test_healthy_with_warning),
        cmocka_unit_test(test_never_healthy_fails_at_deadline),
        cmocka_unit_test(test_backoff_doubles_and_caps),
        cmocka_unit_test(test_crash_loop_fails),
        cmocka_unit_test(test_crashes_beyond_window_do_not_fail),
        cmocka_unit_test(test_backoff_resets_after_stable_run),
        cmocka_unit_test(test_unhealthy_restart),
        cmocka_unit_test(test_unhealthy_restarts_count_toward_crash_loop),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_adopt),
        cmocka_unit_test(test_job_mode),
        cmocka_unit_test(test_policy_and_bad_input),
        cmocka_unit_test(test_table_coverage),
        cmocka_unit_test(test_job_table_coverage),
        cmocka_unit_test(test_random_histories),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
