/* The registry's action table (registry/actions.c): per-host and total
 * bounds, expiry, one answer per action from the host it went to, and the
 * reply leaving with the requester. Times are given, not read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../registry/actions.h"
#include "error.h"

static void make_id(uint8_t id[ACTION_ID_LEN], unsigned n)
{
    memset(id, 0, ACTION_ID_LEN);
    memcpy(id, &n, sizeof n);
}

/* An encoded SignedAction, as the table stores it. */
static size_t encoded(uint8_t *buf, unsigned n)
{
    Ferry__Wire__SignedAction sa;
    ferry__wire__signed_action__init(&sa);
    sa.key_id = "k";
    sa.body = (ProtobufCBinaryData){sizeof n, (uint8_t *)&n};
    return ferry__wire__signed_action__pack(&sa, buf);
}

static int queue(struct actions *a, const char *host, unsigned n, uint64_t expires, uint64_t now)
{
    uint8_t id[ACTION_ID_LEN], buf[64];
    make_id(id, n);
    size_t len = encoded(buf, n);
    return actions_queue_at(a, host, id, buf, len, expires, now);
}

static int wakes;
static void on_wake(void *arg)
{
    (void)arg;
    wakes++;
}

static void test_per_host_bound(void **state)
{
    (void)state;
    struct actions *a;
    assert_int_equal(actions_new(on_wake, NULL, &a), 0);
    wakes = 0;
    for (unsigned i = 0; i < ACTIONS_PER_HOST; i++)
        assert_int_equal(queue(a, "h1", i, 10000, 0), 0);
    assert_int_equal(wakes, ACTIONS_PER_HOST);
    /* h1 is full; another host is not affected. */
    assert_int_equal(queue(a, "h1", 100, 10000, 0), FERRY_E_LIMIT);
    assert_non_null(strstr(err_detail(), "already waiting for this host"));
    assert_int_equal(queue(a, "h2", 101, 10000, 0), 0);
    assert_int_equal(actions_count(a, "h1"), ACTIONS_PER_HOST);
    assert_int_equal(actions_count(a, NULL), ACTIONS_PER_HOST + 1);
    /* The same id twice is a replay. */
    assert_int_equal(queue(a, "h2", 101, 10000, 0), FERRY_E_EXISTS);
    assert_int_equal(wakes, ACTIONS_PER_HOST + 1);
    actions_free(a);
}

static void test_total_bound(void **state)
{
    (void)state;
    struct actions *a;
    assert_int_equal(actions_new(NULL, NULL, &a), 0);
    unsigned n = 0;
    char host[32];
    for (unsigned h = 0; n < ACTIONS_MAX; h++)
        for (unsigned i = 0; i < ACTIONS_PER_HOST && n < ACTIONS_MAX; i++, n++) {
            snprintf(host, sizeof host, "h%u", h);
            assert_int_equal(queue(a, host, n, 10000, 0), 0);
        }
    assert_int_equal(queue(a, "fresh", n + 1, 10000, 0), FERRY_E_LIMIT);
    assert_non_null(strstr(err_detail(), "holds 512 actions"));
    /* Once they expire there is room again. */
    assert_int_equal(queue(a, "fresh", n + 2, 20000, 10000), 0);
    assert_int_equal(actions_count(a, NULL), 1);
    actions_free(a);
}

static void test_take_answer_result(void **state)
{
    (void)state;
    struct actions *a;
    assert_int_equal(actions_new(NULL, NULL, &a), 0);
    assert_int_equal(queue(a, "h1", 1, 5000, 0), 0);
    assert_int_equal(queue(a, "h1", 2, 5000, 1), 0);
    assert_int_equal(queue(a, "h2", 3, 5000, 2), 0);
    assert_true(actions_pending_at(a, "h1", 10));
    assert_false(actions_pending_at(a, "h3", 10));

    uint8_t id1[ACTION_ID_LEN], id2[ACTION_ID_LEN], id3[ACTION_ID_LEN];
    make_id(id1, 1), make_id(id2, 2), make_id(id3, 3);
    /* Not handed out yet: no answer is taken for it. */
    assert_int_equal(actions_answer_at(a, "h1", id1, (const uint8_t *)"r", 1, 10),
                     FERRY_E_NOTFOUND);

    Ferry__Wire__SignedAction *out[ACTIONS_PER_HOST];
    assert_int_equal(actions_take_at(a, "h1", 10, out, ACTIONS_PER_HOST), 2);
    /* Oldest first, each once. */
    assert_memory_equal(out[0]->body.data, &(unsigned){1}, sizeof(unsigned));
    assert_memory_equal(out[1]->body.data, &(unsigned){2}, sizeof(unsigned));
    for (int i = 0; i < 2; i++)
        ferry__wire__signed_action__free_unpacked(out[i], NULL);
    assert_false(actions_pending_at(a, "h1", 10));
    assert_int_equal(actions_take_at(a, "h1", 10, out, ACTIONS_PER_HOST), 0);

    /* Another host cannot answer h1's action, nor answer one never handed
     * to it. */
    assert_int_equal(actions_answer_at(a, "h2", id1, (const uint8_t *)"r", 1, 10),
                     FERRY_E_NOTFOUND);
    assert_int_equal(actions_answer_at(a, "h2", id3, (const uint8_t *)"r", 1, 10),
                     FERRY_E_NOTFOUND);
    uint8_t *reply = NULL;
    size_t len = 0;
    assert_int_equal(actions_result_at(a, id1, 10, &reply, &len), 1); /* not yet */
    assert_int_equal(actions_answer_at(a, "h1", id1, (const uint8_t *)"reply", 5, 10), 0);
    assert_int_equal(actions_answer_at(a, "h1", id1, (const uint8_t *)"again", 5, 10),
                     FERRY_E_EXISTS);
    assert_int_equal(actions_result_at(a, id1, 10, &reply, &len), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(reply, "reply", 5);
    free(reply);
    /* Collected: its answer has left the table... */
    assert_int_equal(actions_result_at(a, id1, 10, &reply, &len), FERRY_E_NOTFOUND);
    assert_non_null(strstr(err_detail(), "collected already"));
    assert_int_equal(actions_count(a, "h1"), 1);
    /* ...but its id has not: a replay after the answer is still refused,
     * and the host cannot answer it twice. */
    assert_int_equal(queue(a, "h1", 1, 5000, 20), FERRY_E_EXISTS);
    assert_non_null(strstr(err_detail(), "used already"));
    assert_int_equal(actions_answer_at(a, "h1", id1, (const uint8_t *)"r", 1, 20),
                     FERRY_E_EXISTS);
    /* At the action's own expiry the id goes too. */
    assert_int_equal(queue(a, "h1", 1, 9000, 5000), 0);
    actions_free(a);
}

/* A spent id holds no bytes and no per-host place, and gives up its slot
 * when the table is otherwise full. */
static void test_spent_ids_yield(void **state)
{
    (void)state;
    struct actions *a;
    assert_int_equal(actions_new(NULL, NULL, &a), 0);
    Ferry__Wire__SignedAction *out[ACTIONS_PER_HOST];
    uint8_t id[ACTION_ID_LEN], *reply;
    size_t len;
    for (unsigned i = 0; i < ACTIONS_PER_HOST; i++) {
        assert_int_equal(queue(a, "h1", i, 10000, 0), 0);
        assert_int_equal(actions_take_at(a, "h1", 0, out, ACTIONS_PER_HOST), 1);
        ferry__wire__signed_action__free_unpacked(out[0], NULL);
        make_id(id, i);
        assert_int_equal(actions_answer_at(a, "h1", id, (const uint8_t *)"r", 1, 0), 0);
        assert_int_equal(actions_result_at(a, id, 0, &reply, &len), 0);
        free(reply);
    }
    /* Sixteen spent ids do not fill h1's queue. */
    assert_int_equal(actions_count(a, "h1"), 0);
    assert_int_equal(queue(a, "h1", 1000, 10000, 0), 0);
    /* Fill every other slot; new actions then take the spent slots. */
    unsigned n = ACTIONS_PER_HOST + 1;
    char host[32];
    for (unsigned h = 0; n < ACTIONS_MAX; h++)
        for (unsigned i = 0; i < ACTIONS_PER_HOST && n < ACTIONS_MAX; i++, n++) {
            snprintf(host, sizeof host, "x%u", h);
            assert_int_equal(queue(a, host, 2000 + n, 10000, 0), 0);
        }
    for (unsigned i = 0; i < ACTIONS_PER_HOST; i++)
        assert_int_equal(queue(a, "fresh", 5000 + i, 10000, 0), 0);
    assert_int_equal(queue(a, "fresh2", 6000, 10000, 0), FERRY_E_LIMIT);
    actions_free(a);
}

static void test_expiry(void **state)
{
    (void)state;
    struct actions *a;
    assert_int_equal(actions_new(NULL, NULL, &a), 0);
    assert_int_equal(queue(a, "h1", 1, 1000, 0), 0);
    assert_int_equal(queue(a, "h1", 2, 3000, 0), 0);
    assert_true(actions_pending_at(a, "h1", 999));
    Ferry__Wire__SignedAction *out[ACTIONS_PER_HOST];
    /* At 1000 the first has expired: only the second is handed out. */
    assert_int_equal(actions_take_at(a, "h1", 1000, out, ACTIONS_PER_HOST), 1);
    assert_memory_equal(out[0]->body.data, &(unsigned){2}, sizeof(unsigned));
    ferry__wire__signed_action__free_unpacked(out[0], NULL);
    uint8_t id2[ACTION_ID_LEN];
    make_id(id2, 2);
    /* An answer after the expiry finds nothing; neither does the requester. */
    assert_int_equal(actions_answer_at(a, "h1", id2, (const uint8_t *)"late", 4, 3000),
                     FERRY_E_NOTFOUND);
    uint8_t *reply = NULL;
    size_t len;
    assert_int_equal(actions_result_at(a, id2, 3000, &reply, &len), FERRY_E_NOTFOUND);
    assert_non_null(strstr(err_detail(), "expired"));
    assert_int_equal(actions_count(a, NULL), 0);
    /* An expired id may be queued again. */
    assert_int_equal(queue(a, "h1", 1, 9000, 3000), 0);
    actions_free(a);
}

static void test_reply_bytes_bound(void **state)
{
    (void)state;
    struct actions *a;
    assert_int_equal(actions_new(NULL, NULL, &a), 0);
    size_t big = ACTIONS_REPLY_BYTES_MAX / 2 + 1;
    uint8_t *blob = calloc(1, big);
    assert_non_null(blob);
    Ferry__Wire__SignedAction *out[ACTIONS_PER_HOST];
    for (unsigned i = 1; i <= 2; i++)
        assert_int_equal(queue(a, "h1", i, 5000, 0), 0);
    size_t n = actions_take_at(a, "h1", 0, out, ACTIONS_PER_HOST);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++)
        ferry__wire__signed_action__free_unpacked(out[i], NULL);
    uint8_t id1[ACTION_ID_LEN], id2[ACTION_ID_LEN];
    make_id(id1, 1), make_id(id2, 2);
    assert_int_equal(actions_answer_at(a, "h1", id1, blob, big, 0), 0);
    assert_int_equal(actions_answer_at(a, "h1", id2, blob, big, 0), FERRY_E_LIMIT);
    /* Once the first is collected the second fits. */
    uint8_t *reply;
    size_t len;
    assert_int_equal(actions_result_at(a, id1, 0, &reply, &len), 0);
    free(reply);
    assert_int_equal(actions_answer_at(a, "h1", id2, blob, big, 0), 0);
    free(blob);
    actions_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_host_bound),
        cmocka_unit_test(test_total_bound),
        cmocka_unit_test(test_take_answer_result),
        cmocka_unit_test(test_spent_ids_yield),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_reply_bytes_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
