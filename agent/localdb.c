#include "localdb.h"
#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *schema =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS desired(name TEXT PRIMARY KEY, issued_ms INTEGER NOT NULL,"
    "  signed_record BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS applied(name TEXT PRIMARY KEY, issued_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS runs(name TEXT NOT NULL, version TEXT NOT NULL,"
    "  pid INTEGER NOT NULL, proc_start INTEGER NOT NULL, port INTEGER NOT NULL,"
    "  state TEXT NOT NULL, reason TEXT NOT NULL, restarts INTEGER NOT NULL,"
    "  since_ms INTEGER NOT NULL, issued_ms INTEGER NOT NULL, PRIMARY KEY(name, version));"
    "CREATE TABLE IF NOT EXISTS manifests(digest BLOB PRIMARY KEY, manifest BLOB NOT NULL,"
    "  signatures BLOB NOT NULL);";

/* Columns added after the first release: added to an older database, an
 * error only when they are there already. */
static const char *const upgrades[] = {
    "ALTER TABLE runs ADD COLUMN digest BLOB NOT NULL DEFAULT x''",
    "ALTER TABLE runs ADD COLUMN plugin_state TEXT NOT NULL DEFAULT ''",
};

static int fail(struct localdb *db, const char *what)
{
    return err_set(FERRY_E_STORE, "local state: %s: %s", what, sqlite3_errmsg(db->h));
}

int localdb_open(struct localdb *db, const char *path)
{
    if (sqlite3_open(path, &db->h) != SQLITE_OK) {
        int rc = err_set(FERRY_E_STORE, "%s: %s", path, sqlite3_errmsg(db->h));
        sqlite3_close(db->h);
        return rc;
    }
    sqlite3_busy_timeout(db->h, 5000);
    char *msg = NULL;
    if (sqlite3_exec(db->h, schema, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = err_set(FERRY_E_STORE, "%s: %s", path, msg ? msg : "schema");
        sqlite3_free(msg);
        sqlite3_close(db->h);
        return rc;
    }
    for (size_t i = 0; i < sizeof upgrades / sizeof upgrades[0]; i++)
        sqlite3_exec(db->h, upgrades[i], NULL, NULL, NULL);
    return 0;
}

void localdb_close(struct localdb *db) { sqlite3_close(db->h); }

/* Run one statement with text/int/blob parameters described by fmt:
 * 't' text, 'i' int64, 'b' blob (pointer then size_t). */
static int exec_bound(struct localdb *db, const char *sql, const char *fmt, ...)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK)
        return fail(db, sql);
    va_list ap;
    va_start(ap, fmt);
    for (int i = 0; fmt[i]; i++) {
        if (fmt[i] == 't')
            sqlite3_bind_text(st, i + 1, va_arg(ap, const char *), -1, SQLITE_TRANSIENT);
        else if (fmt[i] == 'i')
            sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
        else {
            const void *p = va_arg(ap, const void *);
            size_t n = va_arg(ap, size_t);
            sqlite3_bind_blob(st, i + 1, p, (int)n, SQLITE_TRANSIENT);
        }
    }
    va_end(ap);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : fail(db, sql);
    sqlite3_finalize(st);
    return rc;
}

int localdb_desired_put(struct localdb *db, const char *name, uint64_t issued_ms,
                        const uint8_t *rec, size_t len)
{
    return exec_bound(db, "INSERT OR REPLACE INTO desired(name, issued_ms, signed_record)"
                          " VALUES(?,?,?)",
                      "tib", name, (int64_t)issued_ms, rec, len);
}

int localdb_desired_delete(struct localdb *db, const char *name)
{
    return exec_bound(db, "DELETE FROM desired WHERE name=?", "t", name);
}

int localdb_desired_list(struct localdb *db, struct localdb_desired **out, size_t *n)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db->h, "SELECT name, issued_ms, signed_record FROM desired", -1, &st,
                           NULL) != SQLITE_OK)
        return fail(db, "desired");
    struct localdb_desired *v = NULL;
    size_t count = 0;
    int rc = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct localdb_desired *g = realloc(v, (count + 1) * sizeof *v);
        if (!g) {
            rc = -ENOMEM;
            break;
        }
        v = g;
        struct localdb_desired *d = &v[count];
        memset(d, 0, sizeof *d);
        snprintf(d->name, sizeof d->name, "%s", (const char *)sqlite3_column_text(st, 0));
        d->issued_ms = (uint64_t)sqlite3_column_int64(st, 1);
        int len = sqlite3_column_bytes(st, 2);
        d->signed_record = malloc(len > 0 ? (size_t)len : 1);
        if (!d->signed_record) {
            rc = -ENOMEM;
            break;
        }
        memcpy(d->signed_record, sqlite3_column_blob(st, 2), (size_t)len);
        d->len = (size_t)len;
        count++;
    }
    sqlite3_finalize(st);
    if (rc < 0) {
        localdb_desired_list_free(v, count);
        return rc;
    }
    *out = v;
    *n = count;
    return 0;
}

void localdb_desired_list_free(struct localdb_desired *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].signed_record);
    free(v);
}

uint64_t localdb_applied(struct localdb *db, const char *name)
{
    sqlite3_stmt *st = NULL;
    uint64_t v = 0;
    if (sqlite3_prepare_v2(db->h, "SELECT issued_ms FROM applied WHERE name=?", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            v = (uint64_t)sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}

int localdb_set_applied(struct localdb *db, const char *name, uint64_t issued_ms)
{
    return exec_bound(db, "INSERT OR REPLACE INTO applied(name, issued_ms) VALUES(?,?)", "ti",
                      name, (int64_t)issued_ms);
}

int localdb_run_put(struct localdb *db, const struct localdb_run *r)
{
    /* An upsert, not INSERT OR REPLACE: the plugin's state is written by
     * localdb_run_state_put alone and must survive the run's updates. */
    return exec_bound(db,
                      "INSERT INTO runs(name, version, pid, proc_start, port, state,"
                      " reason, restarts, since_ms, issued_ms, digest)"
                      " VALUES(?,?,?,?,?,?,?,?,?,?,?)"
                      " ON CONFLICT(name, version) DO UPDATE SET pid=excluded.pid,"
                      " proc_start=excluded.proc_start, port=excluded.port, state=excluded.state,"
                      " reason=excluded.reason, restarts=excluded.restarts,"
                      " since_ms=excluded.since_ms, issued_ms=excluded.issued_ms,"
                      " digest=excluded.digest",
                      "ttiiittiiib", r->name, r->version, (int64_t)r->pid, (int64_t)r->proc_start,
                      (int64_t)r->port, r->state, r->reason, (int64_t)r->restarts,
                      (int64_t)r->since_ms, (int64_t)r->issued_ms, r->digest,
                      r->has_digest ? sizeof r->digest : (size_t)0);
}

int localdb_run_delete(struct localdb *db, const char *name, const char *version)
{
    return exec_bound(db, "DELETE FROM runs WHERE name=? AND version=?", "tt", name, version);
}

int localdb_run_list(struct localdb *db, struct localdb_run **out, size_t *n)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db->h,
                           "SELECT name, version, pid, proc_start, port, state, reason, restarts,"
                           " since_ms, issued_ms, digest, plugin_state FROM runs",
                           -1, &st, NULL) != SQLITE_OK)
        return fail(db, "runs");
    struct localdb_run *v = NULL;
    size_t count = 0;
    int rc = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct localdb_run *g = realloc(v, (count + 1) * sizeof *v);
        if (!g) {
            rc = -ENOMEM;
            break;
        }
        v = g;
        struct localdb_run *r = &v[count++];
        memset(r, 0, sizeof *r);
        snprintf(r->name, sizeof r->name, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(r->version, sizeof r->version, "%s", (const char *)sqlite3_column_text(st, 1));
        r->pid = sqlite3_column_int(st, 2);
        r->proc_start = (uint64_t)sqlite3_column_int64(st, 3);
        r->port = sqlite3_column_int(st, 4);
        snprintf(r->state, sizeof r->state, "%s", (const char *)sqlite3_column_text(st, 5));
        snprintf(r->reason, sizeof r->reason, "%s", (const char *)sqlite3_column_text(st, 6));
        r->restarts = (uint32_t)sqlite3_column_int(st, 7);
        r->since_ms = (uint64_t)sqlite3_column_int64(st, 8);
        r->issued_ms = (uint64_t)sqlite3_column_int64(st, 9);
        if (sqlite3_column_bytes(st, 10) == (int)sizeof r->digest) {
            memcpy(r->digest, sqlite3_column_blob(st, 10), sizeof r->digest);
            r->has_digest = 1;
        }
        const char *ps = (const char *)sqlite3_column_text(st, 11);
        snprintf(r->plugin_state, sizeof r->plugin_state, "%s", ps ? ps : "");
    }
    sqlite3_finalize(st);
    if (rc < 0) {
        free(v);
        return rc;
    }
    *out = v;
    *n = count;
    return 0;
}

int localdb_desired_get(struct localdb *db, const char *name, uint8_t **rec, size_t *len)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db->h, "SELECT signed_record FROM desired WHERE name=?", -1, &st,
                           NULL) != SQLITE_OK)
        return fail(db, "desired");
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = FERRY_E_NOTFOUND;
    if (sqlite3_step(st) == SQLITE_ROW) {
        int n = sqlite3_column_bytes(st, 0);
        *rec = malloc(n > 0 ? (size_t)n : 1);
        if (!*rec)
            rc = -ENOMEM;
        else {
            memcpy(*rec, sqlite3_column_blob(st, 0), (size_t)n);
            *len = (size_t)n;
            rc = 0;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

int localdb_manifest_put(struct localdb *db, const uint8_t digest[32], const uint8_t *m,
                         size_t mlen, const uint8_t *sigs, size_t slen)
{
    return exec_bound(db,
                      "INSERT OR REPLACE INTO manifests(digest, manifest, signatures)"
                      " VALUES(?,?,?)",
                      "bbb", digest, (size_t)32, m, mlen, sigs, slen);
}

/* A malloc'd copy of column col of the current row. */
static int column_copy(sqlite3_stmt *st, int col, uint8_t **out, size_t *len)
{
    int n = sqlite3_column_bytes(st, col);
    *out = malloc(n > 0 ? (size_t)n : 1);
    if (!*out)
        return -ENOMEM;
    if (n > 0)
        memcpy(*out, sqlite3_column_blob(st, col), (size_t)n);
    *len = (size_t)n;
    return 0;
}

int localdb_manifest_get(struct localdb *db, const uint8_t digest[32], uint8_t **m, size_t *mlen,
                         uint8_t **sigs, size_t *slen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db->h, "SELECT manifest, signatures FROM manifests WHERE digest=?", -1,
                           &st, NULL) != SQLITE_OK)
        return fail(db, "manifests");
    sqlite3_bind_blob(st, 1, digest, 32, SQLITE_STATIC);
    int rc = FERRY_E_NOTFOUND;
    *m = *sigs = NULL;
    if (sqlite3_step(st) == SQLITE_ROW) {
        rc = column_copy(st, 0, m, mlen);
        if (rc == 0)
            rc = column_copy(st, 1, sigs, slen);
        if (rc < 0) {
            free(*m);
            *m = NULL;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

int localdb_manifest_prune(struct localdb *db)
{
    return exec_bound(db, "DELETE FROM manifests WHERE digest NOT IN (SELECT digest FROM runs)", "");
}

int localdb_run_state_put(struct localdb *db, const char *name, const char *version, const char *text)
{
    size_t n = text ? strnlen(text, LOCALDB_PLUGIN_STATE_MAX) : 0;
    if (n == LOCALDB_PLUGIN_STATE_MAX)
        return err_set(FERRY_E_LIMIT, "%s@%s: plugin state longer than %d bytes", name, version,
                       LOCALDB_PLUGIN_STATE_MAX - 1);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db->h, "UPDATE runs SET plugin_state=? WHERE name=? AND version=?", -1, &st,
                           NULL) != SQLITE_OK)
        return fail(db, "runs");
    sqlite3_bind_text(st, 1, text ? text : "", (int)n, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, version, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : fail(db, "runs");
    sqlite3_finalize(st);
    if (rc == 0 && sqlite3_changes(db->h) == 0)
        rc = err_set(FERRY_E_NOTFOUND, "%s@%s: no such run in local state", name, version);
    return rc;
}

int localdb_run_state_get(struct localdb *db, const char *name, const char *version, char *out, size_t cap)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db->h, "SELECT plugin_state FROM runs WHERE name=? AND version=?", -1, &st,
                           NULL) != SQLITE_OK)
        return fail(db, "runs");
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, version, -1, SQLITE_TRANSIENT);
    int rc = err_set(FERRY_E_NOTFOUND, "%s@%s: no such run in local state", name, version);
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        snprintf(out, cap, "%s", t ? t : "");
        rc = 0;
    }
    sqlite3_finalize(st);
    return rc;
}
