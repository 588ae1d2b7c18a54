/* The registry's notebook runs table (registry/db_sqlite_runs.c through
 * db.h): a run belongs to the host that first reported it, a run that
 * ended no longer changes, listings are newest first and bounded. */
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

static struct db_run row(const char *id, const char *host, const char *status, int64_t started)
{
    struct db_run r;
    memset(&r, 0, sizeof r);
    snprintf(r.id, sizeof r.id, "%s", id);
    snprintf(r.name, sizeof r.name, "report");
    snprintf(r.version, sizeof r.version, "1");
    snprintf(r.host, sizeof r.host, "%s", host);
    snprintf(r.status, sizeof r.status, "%s", status);
    r.started_ms = started;
    return r;
}

static void test_owner_and_final(void **state)
{
    struct db_fixture *f = *state;
    int kept = 0;
    struct db_run r = row("00000000000000a1", "h1", "running", 100);
    assert_int_equal(db_run_put(&f->db, &r, &kept), 0);
    assert_false(kept);
    /* Another host may not touch it. */
    struct db_run other = row("00000000000000a1", "h2", "failed", 100);
    assert_int_equal(db_run_put(&f->db, &other, &kept), FERRY_E_EXISTS);
    /* Its host ends it, with the notebook. */
    r = row("00000000000000a1", "h1", "succeeded", 100);
    r.duration_ms = 42;
    r.has_notebook = 1;
    memset(r.notebook.b, 7, sizeof r.notebook.b);
    r.notebook_size = 123;
    assert_int_equal(db_run_put(&f->db, &r, &kept), 0);
    assert_false(kept);
    /* A replayed "running" is kept out. */
    struct db_run again = row("00000000000000a1", "h1", "running", 100);
    assert_int_equal(db_run_put(&f->db, &again, &kept), 0);
    assert_true(kept);

    struct db_run *v = NULL;
    size_t n = 0;
    assert_int_equal(db_run_list(&f->db, NULL, "00000000000000a1", 1, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].status, "succeeded");
    assert_string_equal(v[0].host, "h1");
    assert_int_equal(v[0].duration_ms, 42);
    assert_true(v[0].has_notebook);
    assert_int_equal(v[0].notebook_size, 123);
    assert_int_equal(v[0].notebook.b[5], 7);
    free(v);
    assert_int_equal(db_run_list(&f->db, NULL, "00000000000000ff", 1, &v, &n), FERRY_E_NOTFOUND);
}

static void test_list_newest_first_bounded(void **state)
{
    struct db_fixture *f = *state;
    int kept;
    for (int i = 0; i < 5; i++) {
        char id[24];
        snprintf(id, sizeof id, "00000000000000b%d", i);
        struct db_run r = row(id, "h1", "failed", 1000 + i);
        snprintf(r.error, sizeof r.error, "cell %d: boom", i);
        assert_int_equal(db_run_put(&f->db, &r, &kept), 0);
    }
    struct db_run *v = NULL;
    size_t n = 0;
    assert_int_equal(db_run_list(&f->db, "report", NULL, 3, &v, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(v[0].id, "00000000000000b4");
    assert_string_equal(v[2].id, "00000000000000b2");
    assert_string_equal(v[0].error, "cell 4: boom");
    assert_false(v[0].has_notebook);
    free(v);
    assert_int_equal(db_run_list(&f->db, "other", NULL, 10, &v, &n), 0);
    assert_int_equal(n, 0);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        DB_FIXTURE_TEST(test_owner_and_final),
        DB_FIXTURE_TEST(test_list_newest_first_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
