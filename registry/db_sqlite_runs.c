/* The SQLite store's notebook runs (db.h, "notebook runs"): one row per
 * run, the newest report of it; the executed notebook itself is a blob of
 * the registry's store, named here by its digest. */
#include "db_sqlite_int.h"
#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sq_runs_migrate(struct sqlite_db *db)
{
    return exec_simple(db, "CREATE TABLE IF NOT EXISTS runs("
                           "  id TEXT PRIMARY KEY, name TEXT NOT NULL, version TEXT NOT NULL,"
                           "  host TEXT NOT NULL, status TEXT NOT NULL,"
                           "  started_ms INTEGER NOT NULL, duration_ms INTEGER NOT NULL,"
                           "  error TEXT NOT NULL, note TEXT NOT NULL,"
                           "  notebook BLOB, notebook_size INTEGER NOT NULL,"
                           "  updated_ms INTEGER NOT NULL);"
                           "CREATE INDEX IF NOT EXISTS runs_by_name ON runs(name, started_ms);");
}

int sq_run_put(void *self, const struct db_run *r, int *kept)
{
    struct sqlite_db *db = self;
    *kept = 0;
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    int rc = exec_simple(db, "BEGIN IMMEDIATE");
    if (rc < 0)
        goto out;
    /* Who reported the run first, and whether it ended: in the same
     * transaction as the write, so two reports never both pass. */
    if (sqlite3_prepare_v2(db->h, "SELECT host, status FROM runs WHERE id=?", -1, &st, NULL) !=
        SQLITE_OK) {
        rc = db_fail(db, "runs");
        goto done;
    }
    sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *host = (const char *)sqlite3_column_text(st, 0);
        const char *status = (const char *)sqlite3_column_text(st, 1);
        if (!host || strcmp(host, r->host) != 0)
            rc = FERRY_E_EXISTS;
        else if (!status || strcmp(status, "running") != 0)
            *kept = 1;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc < 0 || *kept)
        goto done;
    if (sqlite3_prepare_v2(db->h,
                           "INSERT OR REPLACE INTO runs(id, name, version, host, status,"
                           " started_ms, duration_ms, error, note, notebook, notebook_size,"
                           " updated_ms) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "runs");
        goto done;
    }
    sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->version, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, r->host, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, r->status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, r->started_ms);
    sqlite3_bind_int64(st, 7, r->duration_ms);
    sqlite3_bind_text(st, 8, r->error, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, r->note, -1, SQLITE_STATIC);
    if (r->has_notebook)
        sqlite3_bind_blob(st, 10, r->notebook.b, DIGEST_LEN, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 10);
    sqlite3_bind_int64(st, 11, (sqlite3_int64)r->notebook_size);
    sqlite3_bind_int64(st, 12, r->updated_ms);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_fail(db, "runs");
done:
    rc = finish_tx(db, st, rc);
out:
    pthread_mutex_unlock(&db->lock);
    return rc;
}

int sq_run_list(void *self, const char *name, const char *id, size_t limit, struct db_run **out,
                size_t *n)
{
    struct sqlite_db *db = self;
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    int rc = 0;
    const char *sql = name ? "SELECT id, name, version, host, status, started_ms, duration_ms,"
                             " error, note, notebook, notebook_size, updated_ms FROM runs"
                             " WHERE name=? ORDER BY started_ms DESC, id LIMIT ?"
                           : "SELECT id, name, version, host, status, started_ms, duration_ms,"
                             " error, note, notebook, notebook_size, updated_ms FROM runs"
                             " WHERE id=? LIMIT ?";
    if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "runs");
        goto out;
    }
    sqlite3_bind_text(st, 1, name ? name : id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
    struct db_run *v = calloc(limit ? limit : 1, sizeof *v);
    if (!v) {
        rc = -ENOMEM;
        goto out;
    }
    size_t k = 0;
    int step;
    while (k < limit && (step = sqlite3_step(st)) == SQLITE_ROW) {
        struct db_run *r = &v[k++];
#define COL(i) ((const char *)sqlite3_column_text(st, i) ? (const char *)sqlite3_column_text(st, i) : "")
        snprintf(r->id, sizeof r->id, "%s", COL(0));
        snprintf(r->name, sizeof r->name, "%s", COL(1));
        snprintf(r->version, sizeof r->version, "%s", COL(2));
        snprintf(r->host, sizeof r->host, "%s", COL(3));
        snprintf(r->status, sizeof r->status, "%s", COL(4));
        r->started_ms = sqlite3_column_int64(st, 5);
        r->duration_ms = sqlite3_column_int64(st, 6);
        snprintf(r->error, sizeof r->error, "%s", COL(7));
        snprintf(r->note, sizeof r->note, "%s", COL(8));
#undef COL
        if (sqlite3_column_bytes(st, 9) == DIGEST_LEN) {
            r->has_notebook = 1;
            memcpy(r->notebook.b, sqlite3_column_blob(st, 9), DIGEST_LEN);
        }
        r->notebook_size = (uint64_t)sqlite3_column_int64(st, 10);
        r->updated_ms = sqlite3_column_int64(st, 11);
    }
    if (!name && k == 0)
        rc = FERRY_E_NOTFOUND;
    if (rc < 0) {
        free(v);
        goto out;
    }
    *out = v;
    *n = k;
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->lock);
    return rc;
}
