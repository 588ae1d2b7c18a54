/* The store's audit log and envelope operations (db_sqlite_gov.c): the
 * chain the registry writes verifies, a legacy table is migrated, and an
 * envelope's version only grows (kept while fresh, across a reopen). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "db.h"
#include "error.h"
#include "dbscratch.h"

static uint64_t verify_all(struct db *db, size_t page)
{
    struct audit_cursor c;
    audit_cursor_init(&c);
    uint64_t after = 0;
    for (;;) {
        struct audit_entry *v = NULL;
        size_t n = 0;
        assert_int_equal(db_audit_list(db, after, page, &v, &n), 0);
        char why[3000];
        for (size_t i = 0; i < n; i++) {
            if (audit_cursor_step(&c, &v[i], why, sizeof why) < 0)
                fail_msg("%s", why);
            after = v[i].seq;
        }
        free(v);
        if (n < page)
            return c.checked;
    }
}

static void test_append_list_verify(void **state)
{
    struct db_fixture *f = *state;
    for (int i = 0; i < 25; i++) {
        char detail[64];
        snprintf(detail, sizeof detail, "app@%d.0 to env=prod", i);
        assert_int_equal(audit_append(&f->db, "abcd", AUDIT_ROLE_OPERATOR, "deploy", detail), 0);
    }
    assert_int_equal(verify_all(&f->db, 7), 25);
    struct audit_entry *v = NULL;
    size_t n = 0;
    assert_int_equal(db_audit_list(&f->db, 24, 10, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].seq, 25);
    assert_string_equal(v[0].role, "operator");
    assert_string_equal(v[0].detail, "app@24.0 to env=prod");
    assert_int_equal(v[0].format, AUDIT_FORMAT);
    free(v);
}

/* A database from before roles: its rows keep their format-1 hashes and
 * the chain goes on from them. */
static void test_legacy_rows(void **state)
{
    struct db_fixture *f = *state;
    db_close(&f->db);
    char path[4300];
    snprintf(path, sizeof path, "%s/old.db", f->dir);
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h,
                                  "CREATE TABLE audit(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                                  " time_unix INTEGER NOT NULL, actor TEXT NOT NULL,"
                                  " action TEXT NOT NULL, subject TEXT NOT NULL,"
                                  " prev_hash BLOB NOT NULL, hash BLOB NOT NULL)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    struct audit_entry e;
    memset(&e, 0, sizeof e);
    e.seq = 1;
    e.time_unix = 1700000000;
    e.format = 1;
    snprintf(e.key_id, sizeof e.key_id, "abcd");
    snprintf(e.what, sizeof e.what, "publish");
    snprintf(e.detail, sizeof e.detail, "app@1.0");
    audit_entry_hash(&e, &e.prev_hash, &e.hash);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(h, "INSERT INTO audit VALUES(1, 1700000000, 'abcd',"
                                           " 'publish', 'app@1.0', ?, ?)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_blob(st, 1, e.prev_hash.b, DIGEST_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, e.hash.b, DIGEST_LEN, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(h);

    assert_int_equal(db_open(&f->db, path), 0);
    assert_int_equal(audit_append(&f->db, "abcd", "operator", "deploy", "app@1.0 to env=prod"), 0);
    assert_int_equal(verify_all(&f->db, 100), 2);
}

static void test_envelope_versions(void **state)
{
    struct db_fixture *f = *state;
    struct digest a = {{1}}, b = {{2}};
    struct db_envelope e1, e2, e3, e4;
    const int64_t t0 = 1000, ttl = 10000;
    assert_int_equal(db_envelope_current(&f->db, "h1", &a, t0, ttl, &e1), 0);
    assert_true(e1.version >= 1);
    assert_int_equal(e1.expires_ms, t0 + ttl);
    /* Same set, under half its life: the same envelope. */
    assert_int_equal(db_envelope_current(&f->db, "h1", &a, t0 + ttl / 2 - 1, ttl, &e2), 0);
    assert_int_equal(e2.version, e1.version);
    assert_int_equal(e2.issued_ms, t0);
    /* Half of it gone: a fresh one. */
    assert_int_equal(db_envelope_current(&f->db, "h1", &a, t0 + ttl / 2, ttl, &e3), 0);
    assert_true(e3.version > e2.version);
    assert_int_equal(e3.expires_ms, t0 + ttl / 2 + ttl);
    /* Another set: a new version at once; other hosts count on their own. */
    assert_int_equal(db_envelope_current(&f->db, "h1", &b, t0 + ttl / 2 + 1, ttl, &e4), 0);
    assert_true(e4.version > e3.version);
    struct db_envelope o;
    assert_int_equal(db_envelope_current(&f->db, "h2", &b, t0, ttl, &o), 0);
    /* Across a reopen, and with a clock that went back: still growing. */
    db_close(&f->db);
    assert_int_equal(db_open(&f->db, f->path), 0);
    struct db_envelope e5;
    assert_int_equal(db_envelope_current(&f->db, "h1", &b, t0, ttl, &e5), 0);
    assert_true(e5.version > e4.version);
    /* The time in ms is a floor: a lost table still issues newer versions. */
    struct db_envelope e6;
    assert_int_equal(db_envelope_current(&f->db, "h3", &a, 1700000000000, ttl, &e6), 0);
    assert_true(e6.version >= 1700000000000ull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        DB_FIXTURE_TEST(test_append_list_verify),
        DB_FIXTURE_TEST(test_legacy_rows),
        DB_FIXTURE_TEST(test_envelope_versions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
