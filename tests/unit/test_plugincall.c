/* Blocking ABI-2 calls off the loop: exited() and action() run on the
 * thread pool (the loop keeps turning meanwhile), their results come back
 * on the loop, replies are checked JSON owned by the caller, and a plugin
 * without the op is answered without being called. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "error.h"
#include "plugincall.h"

static pthread_t loop_thread;
static int exited_status = -100, exited_on_loop = -1;

static int p_exited(void *state, struct ferry_run *run, int status)
{
    (void)state;
    (void)run;
    exited_on_loop = pthread_equal(pthread_self(), loop_thread);
    usleep(200 * 1000); /* a slow clean-up */
    exited_status = status;
    return 0;
}

static int p_action(void *state, struct ferry_run *run, const char *verb, const char *req, struct ferry_reply *reply)
{
    (void)state;
    if (strcmp(verb, "bad-json") == 0)
        return reply->set(reply, "{nope", 5);
    if (strcmp(verb, "huge") == 0)
        return reply->set(reply, "[]", reply->max_bytes + 1);
    if (strcmp(verb, "echo") != 0)
        return -ENOTSUP;
    char buf[256];
    int n = snprintf(buf, sizeof buf, "{\"port\":%d,\"req\":%s}", run->port, req);
    return reply->set(reply, buf, (size_t)n);
}

struct result {
    int calls, rc;
    char *reply;
    size_t len;
    char detail[512];
};

static void done(void *arg, int rc, char *reply, size_t len, const char *detail)
{
    struct result *r = arg;
    assert_true(pthread_equal(pthread_self(), loop_thread));
    r->calls++;
    r->rc = rc;
    free(r->reply);
    r->reply = reply;
    r->len = len;
    snprintf(r->detail, sizeof r->detail, "%s", detail);
}

static int ticks;
static void on_tick(uv_timer_t *t)
{
    (void)t;
    ticks++;
}

static void test_calls(void **state)
{
    (void)state;
    loop_thread = pthread_self();
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct plugin_slot slot;
    memset(&slot, 0, sizeof slot);
    slot.abi = 2;
    snprintf(slot.name, sizeof slot.name, "t");
    slot.p.exited = p_exited;
    slot.p.action = p_action;
    struct ferry_run run = {.struct_size = sizeof run, .port = 8123};

    /* exited: off the loop; the loop ticks while the plugin cleans up. */
    uv_timer_t tick;
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 10, 10);
    struct result r = {0};
    assert_int_equal(plugincall_exited(&loop, &slot, &run, 137, done, &r), 0);
    while (r.calls == 0)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(r.rc, 0);
    assert_int_equal(exited_status, 137);
    assert_int_equal(exited_on_loop, 0);
    assert_true(ticks >= 5);
    uv_timer_stop(&tick);
    uv_close((uv_handle_t *)&tick, NULL);

    /* action: the reply is the caller's, checked JSON. */
    memset(&r, 0, sizeof r);
    assert_int_equal(plugincall_action(&loop, &slot, &run, "echo", "{\"tail\":10}", done, &r), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.reply, "{\"port\":8123,\"req\":{\"tail\":10}}");
    assert_int_equal(r.len, strlen(r.reply));

    assert_int_equal(plugincall_action(&loop, &slot, &run, "bad-json", NULL, done, &r), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(r.rc, FERRY_E_INVALID);
    assert_null(r.reply);
    assert_int_equal(plugincall_action(&loop, &slot, &run, "huge", NULL, done, &r), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(r.rc, FERRY_E_LIMIT);
    assert_int_equal(plugincall_action(&loop, &slot, &run, "kernels", NULL, done, &r), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(r.rc, -ENOTSUP);
    assert_string_equal(r.detail, "plugin t does not know the action 'kernels'");

    /* Refused before queueing: done is never called. */
    int before = r.calls;
    assert_int_equal(plugincall_action(&loop, &slot, &run, "", NULL, done, &r), FERRY_E_INVALID);
    char *big = malloc((64u << 10) + 2);
    memset(big, ' ', (64u << 10) + 1);
    big[(64u << 10) + 1] = '\0';
    assert_int_equal(plugincall_action(&loop, &slot, &run, "echo", big, done, &r), FERRY_E_LIMIT);
    free(big);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, before);

    /* An ABI-1 plugin: nothing to call. */
    slot.abi = 1;
    assert_int_equal(plugincall_exited(&loop, &slot, &run, 0, done, &r), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(r.rc, 0);
    assert_int_equal(plugincall_action(&loop, &slot, &run, "echo", NULL, done, &r), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(r.rc, -ENOTSUP);
    assert_string_equal(r.detail, "plugin t answers no actions");
    free(r.reply);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
