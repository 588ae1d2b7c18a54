/* The registry store opened in a scratch directory: the cmocka fixture the
 * store's unit tests share (setup/teardown per test). */
#ifndef FERRY_TESTS_DBSCRATCH_H
#define FERRY_TESTS_DBSCRATCH_H

#include "../../registry/db.h"
#include "scratch.h"

#include <stdio.h>
#include <stdlib.h>

struct db_fixture {
    char *dir;
    char path[4200]; /* DIR/registry.db */
    struct db db;
};

static inline int db_fixture_setup(void **state)
{
    void *dir = NULL;
    if (scratch_setup(&dir, "ferry_db") < 0)
        return -1;
    struct db_fixture *f = calloc(1, sizeof *f);
    if (!f) {
        scratch_teardown(&dir);
        return -1;
    }
    f->dir = dir;
    snprintf(f->path, sizeof f->path, "%s/registry.db", f->dir);
    if (db_open(&f->db, f->path) < 0) {
        free(f);
        scratch_teardown(&dir);
        return -1;
    }
    *state = f;
    return 0;
}

static inline int db_fixture_teardown(void **state)
{
    struct db_fixture *f = *state;
    db_close(&f->db);
    void *dir = f->dir;
    free(f);
    return scratch_teardown(&dir);
}

/* One test case on a fresh store. */
#define DB_FIXTURE_TEST(t) cmocka_unit_test_setup_teardown(t, db_fixture_setup, db_fixture_teardown)

#endif
