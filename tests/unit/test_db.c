/* The registry's metadata store, host side: enrollment, re-keying, replay
 * marks, the bounded pending list and per-host event bounds; and the
 * registration of store implementations (struct db_ops). */
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
#include "dbscratch.h"

static void key_of(uint8_t k[32], int n)
{
    memset(k, 0, 32);
    k[0] = (uint8_t)n;
    k[1] = (uint8_t)(n >> 8);
}

static void test_enroll_touch(void **state)
{
    struct db_fixture *f = *state;
    uint8_t a[32], b[32];
    key_of(a, 1);
    key_of(b, 2);
    int replaced = 0;
    struct db_host_auth auth;
    assert_int_equal(db_host_get(&f->db, "h", &auth), FERRY_E_NOTFOUND);
    assert_int_equal(db_host_enroll(&f->db, "h", a, "env=x", "env=x", 100, 0, 5, 0, &replaced), 0);
    assert_int_equal(replaced, 0);
    assert_int_equal(db_host_get(&f->db, "h", &auth), 0);
    assert_memory_equal(auth.key, a, 32);
    assert_string_equal(auth.required_labels, "env=x");
    assert_int_equal(auth.hello_ms, 100);

    /* Newer of each kind passes, equal or older does not; kinds are apart. */
    assert_int_equal(db_host_touch(&f->db, DB_TOUCH_HELLO, "h", a, 100, 6, "env=x", NULL, 0),
                     FERRY_E_INVALID);
    assert_int_equal(db_host_touch(&f->db, DB_TOUCH_HELLO, "h", a, 101, 6, "env=x", NULL, 0), 0);
    assert_int_equal(db_host_touch(&f->db, DB_TOUCH_POLL, "h", a, 50, 7, NULL, NULL, 0), 0);
    assert_int_equal(db_host_touch(&f->db, DB_TOUCH_POLL, "h", a, 50, 7, NULL, NULL, 0),
                     FERRY_E_INVALID);
    const uint8_t snap[] = {1, 2, 3};
    assert_int_equal(db_host_touch(&f->db, DB_TOUCH_REPORT, "h", a, 10, 8, NULL, snap, 3), 0);
    assert_int_equal(db_host_touch(&f->db, DB_TOUCH_REPORT, "h", a, 9, 9, NULL, snap, 3),
                     FERRY_E_INVALID);
    /* Another key never touches it. */
    assert_int_equal(db_host_touch(&f->db, DB_TOUCH_POLL, "h", b, 1000, 9, NULL, NULL, 0),
                     FERRY_E_INVALID);

    /* Another key: refused unless replace; replacing resets the marks. */
    assert_int_equal(db_host_enroll(&f->db, "h", b, "env=x", "", 0, 200, 9, 0, &replaced),
                     FERRY_E_EXISTS);
    assert_non_null(strstr(err_detail(), "--replace"));
    assert_int_equal(db_host_enroll(&f->db, "h", b, "env=y", "", 0, 200, 9, 1, &replaced), 0);
    assert_int_equal(replaced, 1);
    assert_int_equal(db_host_get(&f->db, "h", &auth), 0);
    assert_memory_equal(auth.key, b, 32);
    assert_int_equal(auth.report_ms, 0);
    assert_int_equal(auth.poll_ms, 0);
    assert_int_equal(auth.accepted_ms, 200);
    assert_string_equal(auth.labels, "env=y");
    /* The same accept again (replay) is refused; the old key is gone. */
    assert_int_equal(db_host_enroll(&f->db, "h", a, "env=x", "", 0, 200, 9, 1, &replaced),
                     FERRY_E_INVALID);
    assert_int_equal(db_host_touch(&f->db, DB_TOUCH_POLL, "h", a, 2000, 9, NULL, NULL, 0),
                     FERRY_E_INVALID);
    struct db_host *list = NULL;
    size_t n = 0;
    assert_int_equal(db_host_list(&f->db, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_null(list[0].report);
    db_host_list_free(list, n);
}

static void test_pending_bounded(void **state)
{
    struct db_fixture *f = *state;
    uint8_t k[32];
    int is_new = 0;
    for (int i = 0; i < DB_PENDING_MAX + 44; i++) {
        char name[32];
        snprintf(name, sizeof name, "p%d", i);
        key_of(k, 1000 + i);
        assert_int_equal(db_pending_put(&f->db, name, k, "", 1000 + i, &is_new), 0);
        assert_int_equal(is_new, 1);
    }
    key_of(k, 1000 + DB_PENDING_MAX + 43);
    assert_int_equal(db_pending_put(&f->db, "p299", k, "a=b", 5000, &is_new), 0);
    assert_int_equal(is_new, 0);
    struct db_host *list = NULL;
    size_t n = 0;
    assert_int_equal(db_host_list(&f->db, &list, &n), 0);
    assert_int_equal(n, DB_PENDING_MAX);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(list[i].pending, 1);
    db_host_list_free(list, n);
    /* The oldest went first. */
    struct db_pending *p = NULL;
    assert_int_equal(db_pending_for(&f->db, "p0", &p, &n), 0);
    assert_int_equal(n, 0);
    free(p);
    assert_int_equal(db_pending_for(&f->db, "p299", &p, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(p[0].labels, "a=b");
    free(p);
    /* Enrolling takes the entry out of the pending list. */
    int replaced;
    assert_int_equal(db_host_enroll(&f->db, "p299", k, "a=b", "", 0, 1, 9, 0, &replaced), 0);
    assert_int_equal(db_pending_for(&f->db, "p299", &p, &n), 0);
    assert_int_equal(n, 0);
    free(p);
}

static void test_events_per_host(void **state)
{
    struct db_fixture *f = *state;
    uint8_t one = 7;
    const uint8_t *bufs[256];
    size_t lens[256];
    for (int i = 0; i < 256; i++) {
        bufs[i] = &one;
        lens[i] = 1;
    }
    assert_int_equal(db_events_add(&f->db, "quiet", bufs, lens, 10), 0);
    for (int r = 0; r < 45; r++)
        assert_int_equal(db_events_add(&f->db, "noisy", bufs, lens, 256), 0);
    struct db_event *ev = NULL;
    size_t n = 0;
    assert_int_equal(db_events_list(&f->db, "noisy", 20000, &ev, &n), 0);
    assert_int_equal(n, DB_EVENTS_PER_HOST);
    db_events_free(ev, n);
    assert_int_equal(db_events_list(&f->db, "quiet", 20000, &ev, &n), 0);
    assert_int_equal(n, 10);
    db_events_free(ev, n);
}

/* Every stored decision lands in the history too, oldest first, and a
 * refused (older) one in neither. */
static void test_history(void **state)
{
    struct db_fixture *f = *state;
    const uint8_t r1[] = "one", r2[] = "two", r3[] = "three";
    assert_int_equal(db_deployment_put(&f->db, "web", "env=a", 100, r1, 3), 0);
    assert_int_equal(db_deployment_put(&f->db, "web", "env=b", 150, r2, 3), 0);
    assert_int_equal(db_deployment_put(&f->db, "other", "env=a", 160, r2, 3), 0);
    assert_int_equal(db_deployment_put(&f->db, "web", "env=a", 200, r3, 5), 0);
    assert_int_equal(db_deployment_put(&f->db, "web", "env=a", 150, r1, 3), FERRY_E_INVALID);
    struct db_deployment *h = NULL;
    size_t n = 0;
    assert_int_equal(db_history_list(&f->db, "web", &h, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(h[0].issued_ms, 100);
    assert_string_equal(h[1].selector, "env=b");
    assert_int_equal(h[2].issued_ms, 200);
    assert_memory_equal(h[2].signed_record, "three", 5);
    db_deployment_list_free(h, n);
    struct db_deployment *cur = NULL;
    assert_int_equal(db_deployment_list(&f->db, &cur, &n), 0);
    assert_int_equal(n, 3); /* web env=a, web env=b, other env=a */
    db_deployment_list_free(cur, n);
    assert_int_equal(db_history_list(&f->db, "nobody", &h, &n), 0);
    assert_int_equal(n, 0);
    free(h);
}

/* hosts rm: an enrolled host and its pending requests go; plugins are
 * stored with the host and listed. */
static void test_host_remove_and_plugins(void **state)
{
    struct db_fixture *f = *state;
    uint8_t a[32], b[32];
    key_of(a, 1);
    key_of(b, 2);
    int replaced = 0, is_new = 0;
    assert_int_equal(db_host_enroll(&f->db, "h1", a, "env=x", "", 10, 0, 10, 0, &replaced), 0);
    assert_int_equal(db_pending_put(&f->db, "h1", b, "env=x", 20, &is_new), 0);
    assert_int_equal(db_host_set_plugins(&f->db, "h1", (const uint8_t *)"pl", 2), 0);
    struct db_host *hs = NULL;
    size_t n = 0;
    assert_int_equal(db_host_list(&f->db, &hs, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(hs[0].pending, 0);
    assert_int_equal(hs[0].plugins_len, 2);
    assert_memory_equal(hs[0].plugins, "pl", 2);
    db_host_list_free(hs, n);
    assert_int_equal(db_host_remove(&f->db, "h1"), 0);
    assert_int_equal(db_host_list(&f->db, &hs, &n), 0);
    assert_int_equal(n, 0);
    free(hs);
    assert_int_equal(db_host_remove(&f->db, "h1"), FERRY_E_NOTFOUND);
    assert_non_null(strstr(err_detail(), "'h1' is not known"));
}

/* ---- store registration (struct db_ops) ---- */

static int host_get_calls;
static int counting_host_get(void *self, const char *name, struct db_host_auth *out)
{
    host_get_calls++;
    return db_sqlite_ops.host_get(self, name, out);
}

/* An incomplete table is refused at registration, naming the missing op,
 * and leaves nothing registered behind it. */
static void test_ops_incomplete_refused(void **state)
{
    struct db_fixture *f = *state;
    char path[4200];
    snprintf(path, sizeof path, "%s/other.db", f->dir);

    struct db_ops broken = db_sqlite_ops;
    broken.name = "broken";
    broken.host_remove = NULL;
    assert_int_equal(db_register(&broken), FERRY_E_INVALID);
    assert_non_null(strstr(err_detail(), "metadata store 'broken': required operation "
                                         "'host_remove' is missing"));
    struct db db = {0};
    assert_int_equal(db_open_store(&db, "broken", path), FERRY_E_NOTFOUND);
    assert_non_null(strstr(err_detail(), "metadata store 'broken' is not known"));
    assert_null(db.ops);

    broken = db_sqlite_ops;
    broken.name = "broken";
    broken.open = NULL;
    assert_int_equal(db_register(&broken), FERRY_E_INVALID);
    assert_non_null(strstr(err_detail(), "'open' is missing"));

    broken = db_sqlite_ops;
    broken.name = "broken";
    broken.add_version = NULL;
    broken.events_list = NULL;
    assert_int_equal(db_register(&broken), FERRY_E_INVALID);
    assert_non_null(strstr(err_detail(), "'add_version' is missing"));

    broken = db_sqlite_ops;
    broken.name = NULL;
    assert_int_equal(db_register(&broken), FERRY_E_INVALID);
    assert_non_null(strstr(err_detail(), "has no name"));
    assert_int_equal(db_register(NULL), FERRY_E_INVALID);

    /* The built-in table passes the same check. */
    assert_int_equal(db_ops_check(&db_sqlite_ops), 0);
    assert_int_equal(db_register(&db_sqlite_ops), FERRY_E_EXISTS);
    assert_non_null(strstr(err_detail(), "'sqlite' is already registered"));
}

/* Every operation in struct db_ops is required: taking away any one of
 * them, whichever, is refused at registration. The table is a name followed
 * by function pointers only (db.h), so each slot is reached by its offset;
 * an op added to the struct but not to db_ops_check fails here. */
static void test_ops_each_required(void **state)
{
    (void)state;
    typedef void (*any_fn)(void);
    const size_t first = offsetof(struct db_ops, open);
    assert_int_equal(first % sizeof(any_fn), 0);
    const size_t slots = (sizeof(struct db_ops) - first) / sizeof(any_fn);
    assert_true(slots >= 38);
    for (size_t i = 0; i < slots; i++) {
        struct db_ops broken = db_sqlite_ops;
        broken.name = "broken-slot";
        unsigned char *slot = (unsigned char *)&broken + first + i * sizeof(any_fn);
        any_fn was;
        memcpy(&was, slot, sizeof was);
        assert_non_null(was); /* the SQLite store fills every slot */
        const any_fn none = NULL;
        memcpy(slot, &none, sizeof none);
        if (db_register(&broken) != FERRY_E_INVALID)
            fail_msg("slot %zu of struct db_ops (offset %zu) is not checked by db_ops_check", i,
                     first + i * sizeof(any_fn));
        assert_non_null(strstr(err_detail(), "is missing"));
    }
}

/* A complete table registers once, and db_* calls go through it. */
static void test_ops_registered_store_used(void **state)
{
    struct db_fixture *f = *state;
    char path[4200];
    snprintf(path, sizeof path, "%s/counting.db", f->dir);
    static struct db_ops counting;
    counting = db_sqlite_ops;
    counting.name = "counting";
    counting.host_get = counting_host_get;
    assert_int_equal(db_register(&counting), 0);
    assert_int_equal(db_register(&counting), FERRY_E_EXISTS);

    struct db db = {0};
    assert_int_equal(db_open_store(&db, "counting", path), 0);
    assert_ptr_equal(db.ops, &counting);
    struct db_host_auth auth;
    host_get_calls = 0;
    assert_int_equal(db_host_get(&db, "nobody", &auth), FERRY_E_NOTFOUND);
    assert_int_equal(host_get_calls, 1);
    uint8_t k[32];
    key_of(k, 7);
    int replaced = 0;
    assert_int_equal(db_host_enroll(&db, "h", k, "", "", 1, 0, 1, 0, &replaced), 0);
    assert_int_equal(db_host_get(&db, "h", &auth), 0);
    assert_int_equal(host_get_calls, 2);
    db_close(&db);
    assert_null(db.ops);

    assert_int_equal(db_open_store(&db, "nosuch", path), FERRY_E_NOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        DB_FIXTURE_TEST(test_enroll_touch),
        DB_FIXTURE_TEST(test_pending_bounded),
        DB_FIXTURE_TEST(test_events_per_host),
        DB_FIXTURE_TEST(test_history),
        DB_FIXTURE_TEST(test_host_remove_and_plugins),
        DB_FIXTURE_TEST(test_ops_incomplete_refused),
        cmocka_unit_test(test_ops_each_required),
        DB_FIXTURE_TEST(test_ops_registered_store_used),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
