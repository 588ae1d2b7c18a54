/* The health checks exec and oci share (plugins/healthcheck.c), driven
 * through a host table whose answers each test sets: the process's
 * liveness and what the HTTP GET returned. The real host's probes are
 * tested in test_probe.c and through the plugins in integration tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "healthcheck.h"

struct answers {
    int alive;
    int http_rc, http_status;
    int calls, timeout_ms, port;
    char path[64];
};

static int t_alive(void *ctx, const struct ferry_run *run)
{
    (void)run;
    return ((struct answers *)ctx)->alive;
}

static int t_http_get(void *ctx, int port, const char *path, int timeout_ms, int *status)
{
    struct answers *a = ctx;
    a->calls++;
    a->port = port;
    a->timeout_ms = timeout_ms;
    strncpy(a->path, path, sizeof a->path - 1);
    *status = a->http_status;
    return a->http_rc;
}

struct fixture {
    struct answers a;
    struct ferry_host host;
    struct ferry_workload w;
    struct ferry_run run;
    struct ferry_health out;
};

static void setup_fixture(struct fixture *f, const char *path, int status_wanted, uint32_t interval)
{
    memset(f, 0, sizeof *f);
    f->host.ctx = &f->a;
    f->host.alive = t_alive;
    f->host.http_get = t_http_get;
    f->w.health_http_path = path;
    f->w.health_http_status = status_wanted;
    f->w.health_interval_ms = interval;
    f->run.port = 4321;
    f->out.struct_size = sizeof f->out;
    f->a.alive = 1;
    f->out.healthy = 1;
    strcpy(f->out.reason, "stale");
}

static void dead_process_is_unhealthy_without_asking_its_port(void **st)
{
    (void)st;
    struct fixture f;
    setup_fixture(&f, "/health", 200, 0);
    f.a.alive = 0;
    f.a.http_status = 200;
    assert_int_equal(health_alive_http(&f.host, &f.w, &f.run, &f.out), 1);
    assert_int_equal(f.out.healthy, 0);
    assert_string_equal(f.out.reason, "process exited");
    assert_int_equal(f.a.calls, 0);
}

static void no_http_check_leaves_it_to_the_plugin(void **st)
{
    (void)st;
    struct fixture f;
    setup_fixture(&f, NULL, 0, 0);
    assert_int_equal(health_alive_http(&f.host, &f.w, &f.run, &f.out), 0);
    assert_int_equal(f.out.healthy, 0);
    assert_string_equal(f.out.reason, "");
    assert_int_equal(f.a.calls, 0);
}

static void http_answer_decides(void **st)
{
    (void)st;
    struct fixture f;
    setup_fixture(&f, "/ready", 204, 0);
    f.a.http_status = 204;
    assert_int_equal(health_alive_http(&f.host, &f.w, &f.run, &f.out), 1);
    assert_int_equal(f.out.healthy, 1);
    assert_int_equal(f.a.port, 4321);
    assert_string_equal(f.a.path, "/ready");

    setup_fixture(&f, "/ready", 200, 0);
    f.a.http_status = 503;
    assert_int_equal(health_alive_http(&f.host, &f.w, &f.run, &f.out), 1);
    assert_int_equal(f.out.healthy, 0);
    assert_string_equal(f.out.reason, "GET /ready: status 503, want 200");

    setup_fixture(&f, "/ready", 200, 0);
    f.a.http_rc = -ECONNREFUSED;
    assert_int_equal(health_alive_http(&f.host, &f.w, &f.run, &f.out), 1);
    assert_int_equal(f.out.healthy, 0);
    assert_string_equal(f.out.reason, "GET /ready: connection refused");

    setup_fixture(&f, "/ready", 200, 0);
    f.a.http_rc = -EHOSTUNREACH;
    health_alive_http(&f.host, &f.w, &f.run, &f.out);
    assert_non_null(strstr(f.out.reason, strerror(EHOSTUNREACH)));
}

static void http_timeout_is_the_interval_capped_at_two_seconds(void **st)
{
    (void)st;
    struct fixture f;
    setup_fixture(&f, "/", 200, 300);
    f.a.http_status = 200;
    health_alive_http(&f.host, &f.w, &f.run, &f.out);
    assert_int_equal(f.a.timeout_ms, 300);
    setup_fixture(&f, "/", 200, 10000);
    f.a.http_status = 200;
    health_alive_http(&f.host, &f.w, &f.run, &f.out);
    assert_int_equal(f.a.timeout_ms, 2000);
    setup_fixture(&f, "/", 200, 0);
    f.a.http_status = 200;
    health_alive_http(&f.host, &f.w, &f.run, &f.out);
    assert_int_equal(f.a.timeout_ms, 2000);
}

static void command_outcome_names_the_reason(void **st)
{
    (void)st;
    struct ferry_health out;
    memset(&out, 0, sizeof out);
    health_command_result(0, 0, 5000, &out);
    assert_int_equal(out.healthy, 1);
    memset(&out, 0, sizeof out);
    health_command_result(0, 3, 5000, &out);
    assert_int_equal(out.healthy, 0);
    assert_string_equal(out.reason, "health command exited 3");
    memset(&out, 0, sizeof out);
    health_command_result(-ETIMEDOUT, 0, 750, &out);
    assert_int_equal(out.healthy, 0);
    assert_string_equal(out.reason, "health command timed out after 750 ms");
    memset(&out, 0, sizeof out);
    health_command_result(-ENOENT, 0, 750, &out);
    assert_int_equal(out.healthy, 0);
    assert_string_equal(out.reason, "health command: not found");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dead_process_is_unhealthy_without_asking_its_port),
        cmocka_unit_test(no_http_check_leaves_it_to_the_plugin),
        cmocka_unit_test(http_answer_decides),
        cmocka_unit_test(http_timeout_is_the_interval_capped_at_two_seconds),
        cmocka_unit_test(command_outcome_names_the_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
