/* The registry's in-memory poll marks: a poll is fresh only when newer than
 * every poll seen (memory or database), re-keyed and forgotten hosts start
 * again from the database, ferry hosts sees the in-memory last seen, and
 * what moved reaches the database at a flush and at stop, forward only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "error.h"
#include "liveness.h"
#include "scratch.h"

struct fixture {
    char *dir;
    struct db db;
    struct liveness lv;
};

static int setup(void **state)
{
    void *dir = NULL;
    if (scratch_setup(&dir, "test_liveness") < 0)
        return -1;
    struct fixture *f = calloc(1, sizeof *f);
    f->dir = dir;
    char path[4200];
    snprintf(path, sizeof path, "%s/registry.db", f->dir);
    if (db_open(&f->db, path) < 0 || liveness_start(&f->lv, &f->db) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    liveness_stop(&f->lv);
    db_close(&f->db);
    void *dir = f->dir;
    free(f);
    return scratch_teardown(&dir);
}

static void key_of(uint8_t k[32], int n)
{
    memset(k, 0, 32);
    k[0] = (uint8_t)n;
}

static void enroll(struct db *db, const char *name, const uint8_t key[32], int64_t seen)
{
    int replaced = 0;
    assert_int_equal(db_host_enroll(db, name, key, "env=x", "", 1, 0, seen, 0, &replaced), 0);
}

/* last_seen_ms of name as ferry hosts would show it. */
static int64_t seen_of(struct fixture *f, const char *name)
{
    struct db_host *v = NULL;
    size_t n = 0;
    assert_int_equal(db_host_list(&f->db, &v, &n), 0);
    liveness_overlay(&f->lv, v, n);
    int64_t seen = -1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0)
            seen = v[i].last_seen_ms;
    db_host_list_free(v, n);
    return seen;
}

static void test_fresh_and_replayed(void **state)
{
    struct fixture *f = *state;
    uint8_t a[32];
    key_of(a, 1);
    enroll(&f->db, "h", a, 10);
    /* The database's mark counts until memory has a newer one. */
    assert_int_equal(liveness_poll(&f->lv, "h", a, 500, 500, 1000), FERRY_E_INVALID);
    assert_int_equal(liveness_poll(&f->lv, "h", a, 500, 501, 1000), 0);
    assert_int_equal(liveness_poll(&f->lv, "h", a, 0, 501, 1001), FERRY_E_INVALID);
    assert_int_equal(liveness_poll(&f->lv, "h", a, 0, 400, 1001), FERRY_E_INVALID);
    assert_int_equal(liveness_poll(&f->lv, "h", a, 0, 502, 1002), 0);
    /* Seen in memory at once (the database may lag up to a second). */
    assert_int_equal(seen_of(f, "h"), 1002);
    /* A refused poll does not move the last seen. */
    assert_int_equal(liveness_poll(&f->lv, "h", a, 0, 502, 5000), FERRY_E_INVALID);
    assert_int_equal(seen_of(f, "h"), 1002);
}

static void test_flush_forward_only(void **state)
{
    struct fixture *f = *state;
    uint8_t a[32];
    key_of(a, 2);
    enroll(&f->db, "g", a, 10);
    assert_int_equal(liveness_poll(&f->lv, "g", a, 0, 700, 2000), 0);
    assert_int_equal(liveness_flush(&f->lv), 0);
    struct db_host_auth auth;
    assert_int_equal(db_host_get(&f->db, "g", &auth), 0);
    assert_int_equal(auth.poll_ms, 700);
    /* A newer last seen written meanwhile (a report) is not moved back. */
    assert_int_equal(db_host_touch(&f->db, DB_TOUCH_REPORT, "g", a, 50, 9000, NULL,
                                   (const uint8_t *)"", 0),
                     0);
    assert_int_equal(liveness_poll(&f->lv, "g", a, 0, 701, 3000), 0);
    assert_int_equal(liveness_flush(&f->lv), 0);
    assert_int_equal(db_host_get(&f->db, "g", &auth), 0);
    assert_int_equal(auth.poll_ms, 701);
    assert_int_equal(seen_of(f, "g"), 9000);
    /* Nothing moved: nothing to write. */
    assert_int_equal(liveness_flush(&f->lv), 0);
}

static void test_rekey_and_forget(void **state)
{
    struct fixture *f = *state;
    uint8_t a[32], b[32];
    key_of(a, 3);
    key_of(b, 4);
    enroll(&f->db, "k", a, 10);
    assert_int_equal(liveness_poll(&f->lv, "k", a, 0, 900, 4000), 0);
    /* Another key's polls do not inherit the old key's mark, and the old
     * key's in-memory last seen is not shown for the new key. */
    int replaced = 0;
    assert_int_equal(db_host_enroll(&f->db, "k", b, "env=x", "", 0, 77, 20, 1, &replaced), 0);
    assert_int_equal(replaced, 1);
    assert_int_equal(seen_of(f, "k"), 20);
    assert_int_equal(liveness_poll(&f->lv, "k", b, 0, 100, 4100), 0);
    /* The old key's mark is not written over the new key's row. */
    assert_int_equal(liveness_flush(&f->lv), 0);
    struct db_host_auth auth;
    assert_int_equal(db_host_get(&f->db, "k", &auth), 0);
    assert_int_equal(auth.poll_ms, 100);
    /* Forgotten: the next poll starts from the database's mark. */
    liveness_forget(&f->lv, "k");
    assert_int_equal(liveness_poll(&f->lv, "k", b, 100, 100, 4200), FERRY_E_INVALID);
    assert_int_equal(liveness_poll(&f->lv, "k", b, 100, 101, 4200), 0);
}

static void test_stop_writes(void **state)
{
    struct fixture *f = *state;
    uint8_t a[32];
    key_of(a, 5);
    enroll(&f->db, "s", a, 10);
    assert_int_equal(liveness_poll(&f->lv, "s", a, 0, 1234, 6000), 0);
    liveness_stop(&f->lv);
    struct db_host_auth auth;
    assert_int_equal(db_host_get(&f->db, "s", &auth), 0);
    assert_int_equal(auth.poll_ms, 1234);
    /* A fresh table after a restart takes the written mark. */
    assert_int_equal(liveness_start(&f->lv, &f->db), 0);
    assert_int_equal(liveness_poll(&f->lv, "s", a, auth.poll_ms, 1234, 7000), FERRY_E_INVALID);
    assert_int_equal(liveness_poll(&f->lv, "s", a, auth.poll_ms, 1235, 7000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fresh_and_replayed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_forward_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rekey_and_forget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_writes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
