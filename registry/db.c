#include "db.h"
#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *schema =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "PRAGMA foreign_keys=ON;"
    "CREATE TABLE IF NOT EXISTS artifacts("
    "  name TEXT NOT NULL, version TEXT NOT NULL, kind TEXT NOT NULL,"
    "  manifest_digest BLOB NOT NULL, publisher TEXT NOT NULL,"
    "  published_unix INTEGER NOT NULL, signatures BLOB NOT NULL,"
    "  PRIMARY KEY(name, version));"
    "CREATE TABLE IF NOT EXISTS audit("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT, time_unix INTEGER NOT NULL,"
    "  actor TEXT NOT NULL, action TEXT NOT NULL, subject TEXT NOT NULL,"
    "  prev_hash BLOB NOT NULL, hash BLOB NOT NULL);";

static int db_fail(struct db *db, const char *what)
{
    return err_set(FERRY_E_STORE, "metadata store: %s: %s", what, sqlite3_errmsg(db->h));
}

int db_open(struct db *db, const char *path)
{
    int rv = sqlite3_open_v2(path, &db->h,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rv != SQLITE_OK) {
        int rc = err_set(FERRY_E_STORE, "%s: %s", path, sqlite3_errstr(rv));
        sqlite3_close(db->h);
        return rc;
    }
    sqlite3_busy_timeout(db->h, 5000);
    char *msg = NULL;
    if (sqlite3_exec(db->h, schema, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = err_set(FERRY_E_STORE, "%s: %s", path, msg ? msg : "schema failed");
        sqlite3_free(msg);
        sqlite3_close(db->h);
        return rc;
    }
    pthread_mutex_init(&db->lock, NULL);
    return 0;
}

void db_close(struct db *db)
{
    sqlite3_close(db->h);
    pthread_mutex_destroy(&db->lock);
}

static int exec_simple(struct db *db, const char *sql)
{
    return sqlite3_exec(db->h, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : db_fail(db, sql);
}

int db_add_version(struct db *db, const char *name, const char *version, const char *kind,
                   const struct digest *manifest_digest, const char *publisher,
                   const uint8_t *sigs, size_t sigs_len, int *already)
{
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    int rc = exec_simple(db, "BEGIN IMMEDIATE");
    if (rc < 0)
        goto out;
    *already = 0;
    if (sqlite3_prepare_v2(db->h,
                           "SELECT manifest_digest FROM artifacts WHERE name=? AND version=?", -1,
                           &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "select");
        goto rollback;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, version, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        const void *blob = sqlite3_column_blob(st, 0);
        int n = sqlite3_column_bytes(st, 0);
        if (n == DIGEST_LEN && memcmp(blob, manifest_digest->b, DIGEST_LEN) == 0)
            *already = 1;
        else
            rc = err_set(FERRY_E_EXISTS,
                         "%s@%s: version already published with different content; "
                         "versions are immutable, publish a new version",
                         name, version);
        goto rollback;
    }
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(db->h,
                           "INSERT INTO artifacts(name, version, kind, manifest_digest, publisher,"
                           " published_unix, signatures) VALUES(?,?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "insert");
        goto rollback;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, version, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, manifest_digest->b, DIGEST_LEN, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, publisher, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)time(NULL));
    sqlite3_bind_blob(st, 7, sigs, (int)sigs_len, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = db_fail(db, "insert");
        goto rollback;
    }
    sqlite3_finalize(st);
    st = NULL;
    rc = exec_simple(db, "COMMIT");
    if (rc < 0)
        goto rollback;
    goto out;
rollback:
    sqlite3_finalize(st);
    st = NULL;
    sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
out:
    pthread_mutex_unlock(&db->lock);
    return rc;
}

int db_get_version(struct db *db, const char *name, const char *version, struct digest *digest,
                   uint8_t **sigs, size_t *sigs_len)
{
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2(db->h,
                           "SELECT manifest_digest, signatures FROM artifacts"
                           " WHERE name=? AND version=?",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "select");
        goto out;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, version, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = err_set(FERRY_E_NOTFOUND, "%s@%s: no such artifact version", name, version);
        goto out;
    }
    if (sqlite3_column_bytes(st, 0) != DIGEST_LEN) {
        rc = err_set(FERRY_E_STORE, "%s@%s: corrupt metadata", name, version);
        goto out;
    }
    int n = sqlite3_column_bytes(st, 1);
    uint8_t *copy = malloc(n > 0 ? (size_t)n : 1);
    if (!copy) {
        rc = -ENOMEM;
        goto out;
    }
    if (n > 0)
        memcpy(copy, sqlite3_column_blob(st, 1), (size_t)n);
    memcpy(digest->b, sqlite3_column_blob(st, 0), DIGEST_LEN);
    *sigs = copy;
    *sigs_len = (size_t)n;
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->lock);
    return rc;
}

int db_list_versions(struct db *db, const char *name, struct db_version **out, size_t *n)
{
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    struct db_version *v = NULL;
    size_t count = 0, cap = 0;
    int rc = 0;
    if (sqlite3_prepare_v2(db->h,
                           "SELECT version, manifest_digest, publisher, published_unix, kind"
                           " FROM artifacts WHERE name=? ORDER BY published_unix, rowid",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "select");
        goto out;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            struct db_version *grown = realloc(v, cap * sizeof *v);
            if (!grown) {
                rc = -ENOMEM;
                goto out;
            }
            v = grown;
        }
        struct db_version *e = &v[count++];
        memset(e, 0, sizeof *e);
        snprintf(e->version, sizeof e->version, "%s", (const char *)sqlite3_column_text(st, 0));
        if (sqlite3_column_bytes(st, 1) == DIGEST_LEN)
            memcpy(e->manifest_digest.b, sqlite3_column_blob(st, 1), DIGEST_LEN);
        snprintf(e->publisher, sizeof e->publisher, "%s",
                 (const char *)sqlite3_column_text(st, 2));
        e->published_unix = sqlite3_column_int64(st, 3);
        snprintf(e->kind, sizeof e->kind, "%s", (const char *)sqlite3_column_text(st, 4));
    }
    if (step != SQLITE_DONE)
        rc = db_fail(db, "select");
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->lock);
    if (rc < 0) {
        free(v);
        return rc;
    }
    *out = v;
    *n = count;
    return 0;
}

int db_audit(struct db *db, const char *actor, const char *action, const char *subject)
{
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    uint8_t prev[DIGEST_LEN] = {0};
    int rc = exec_simple(db, "BEGIN IMMEDIATE");
    if (rc < 0)
        goto out;
    if (sqlite3_prepare_v2(db->h, "SELECT hash FROM audit ORDER BY seq DESC LIMIT 1", -1, &st,
                           NULL) != SQLITE_OK) {
        rc = db_fail(db, "audit");
        goto rollback;
    }
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == DIGEST_LEN)
        memcpy(prev, sqlite3_column_blob(st, 0), DIGEST_LEN);
    sqlite3_finalize(st);
    st = NULL;

    /* Each entry's hash covers the previous hash and this entry's fields, so
     * editing or deleting a row breaks every hash after it. */
    int64_t now = (int64_t)time(NULL);
    char line[2048];
    int len = snprintf(line, sizeof line, "%lld\n%s\n%s\n%s\n", (long long)now, actor, action,
                       subject);
    struct hasher h;
    struct digest d;
    hasher_init(&h);
    hasher_update(&h, prev, DIGEST_LEN);
    hasher_update(&h, line, (size_t)(len < (int)sizeof line ? len : (int)sizeof line - 1));
    hasher_final(&h, &d);

    if (sqlite3_prepare_v2(db->h,
                           "INSERT INTO audit(time_unix, actor, action, subject, prev_hash, hash)"
                           " VALUES(?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "audit");
        goto rollback;
    }
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_text(st, 2, actor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, action, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, subject, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 5, prev, DIGEST_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(st, 6, d.b, DIGEST_LEN, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = db_fail(db, "audit");
        goto rollback;
    }
    sqlite3_finalize(st);
    st = NULL;
    rc = exec_simple(db, "COMMIT");
    if (rc == 0)
        goto out;
rollback:
    sqlite3_finalize(st);
    sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
out:
    pthread_mutex_unlock(&db->lock);
    return rc;
}
