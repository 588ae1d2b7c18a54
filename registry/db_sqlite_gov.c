/* The SQLite store's audit log and desired-state envelopes (db.h). */
#include "db_sqlite_int.h"
#include "clock.h"
#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The audit table predates roles: its columns keep their first names
 * (actor = key id, action = what, subject = detail); role and the entry's
 * hash format are added in place. */
static const char *const audit_columns[][2] = {
    {"role", "TEXT NOT NULL DEFAULT ''"},
    {"format", "INTEGER NOT NULL DEFAULT 1"},
};

int sq_gov_migrate(struct sqlite_db *db)
{
    for (size_t i = 0; i < sizeof audit_columns / sizeof audit_columns[0]; i++) {
        char sql[200];
        sqlite3_stmt *st = NULL;
        int have = 0;
        snprintf(sql, sizeof sql, "SELECT 1 FROM pragma_table_info('audit') WHERE name='%s'",
                 audit_columns[i][0]);
        if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) == SQLITE_OK)
            have = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_finalize(st);
        snprintf(sql, sizeof sql, "ALTER TABLE audit ADD COLUMN %s %s", audit_columns[i][0],
                 audit_columns[i][1]);
        if (!have && exec_simple(db, sql) < 0)
            return db_fail(db, "audit migration");
    }
    /* Per host: the envelope its desired state goes out in. */
    return exec_simple(db, "CREATE TABLE IF NOT EXISTS envelopes("
                           "  host TEXT PRIMARY KEY, version INTEGER NOT NULL,"
                           "  content BLOB NOT NULL, issued_ms INTEGER NOT NULL,"
                           "  expires_ms INTEGER NOT NULL)");
}

int sq_audit_append(void *self, const char *key_id, const char *role, const char *what,
                    const char *detail)
{
    struct sqlite_db *db = self;
    struct audit_entry e;
    memset(&e, 0, sizeof e);
    snprintf(e.key_id, sizeof e.key_id, "%s", key_id ? key_id : "");
    snprintf(e.role, sizeof e.role, "%s", role ? role : "");
    snprintf(e.what, sizeof e.what, "%s", what ? what : "");
    snprintf(e.detail, sizeof e.detail, "%s", detail ? detail : "");
    e.format = AUDIT_FORMAT;
    e.time_unix = (int64_t)(clock_unix_ms() / 1000);

    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    int rc = exec_simple(db, "BEGIN IMMEDIATE");
    if (rc < 0)
        goto out;
    /* The head read and the append are one transaction: two appends never
     * name the same previous entry. */
    if (sqlite3_prepare_v2(db->h, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", -1,
                           &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "audit");
        goto done;
    }
    e.seq = 1;
    if (sqlite3_step(st) == SQLITE_ROW) {
        e.seq = (uint64_t)sqlite3_column_int64(st, 0) + 1;
        if (sqlite3_column_bytes(st, 1) == DIGEST_LEN)
            memcpy(e.prev_hash.b, sqlite3_column_blob(st, 1), DIGEST_LEN);
    }
    sqlite3_finalize(st);
    st = NULL;
    audit_entry_hash(&e, &e.prev_hash, &e.hash);
    if (sqlite3_prepare_v2(db->h,
                           "INSERT INTO audit(seq, time_unix, actor, role, action, subject,"
                           " prev_hash, hash, format) VALUES(?,?,?,?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "audit");
        goto done;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)e.seq);
    sqlite3_bind_int64(st, 2, e.time_unix);
    sqlite3_bind_text(st, 3, e.key_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, e.role, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, e.what, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, e.detail, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 7, e.prev_hash.b, DIGEST_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(st, 8, e.hash.b, DIGEST_LEN, SQLITE_STATIC);
    sqlite3_bind_int(st, 9, e.format);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_fail(db, "audit");
done:
    rc = finish_tx(db, st, rc);
out:
    pthread_mutex_unlock(&db->lock);
    return rc;
}

static void text_col(sqlite3_stmt *st, int col, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

static void digest_col(sqlite3_stmt *st, int col, struct digest *d)
{
    memset(d, 0, sizeof *d);
    int n = sqlite3_column_bytes(st, col);
    memcpy(d->b, sqlite3_column_blob(st, col), n < DIGEST_LEN ? (size_t)(n > 0 ? n : 0)
                                                               : DIGEST_LEN);
}

#define AUDIT_COLUMNS "seq, time_unix, actor, role, action, subject, prev_hash, hash, format"

static void audit_row(sqlite3_stmt *st, struct audit_entry *e)
{
    e->seq = (uint64_t)sqlite3_column_int64(st, 0);
    e->time_unix = sqlite3_column_int64(st, 1);
    text_col(st, 2, e->key_id, sizeof e->key_id);
    text_col(st, 3, e->role, sizeof e->role);
    text_col(st, 4, e->what, sizeof e->what);
    text_col(st, 5, e->detail, sizeof e->detail);
    digest_col(st, 6, &e->prev_hash);
    digest_col(st, 7, &e->hash);
    e->format = sqlite3_column_int(st, 8);
}

int sq_audit_last(void *self, const char *what, struct audit_entry *out)
{
    struct sqlite_db *db = self;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    int rc = FERRY_E_NOTFOUND;
    if (sqlite3_prepare_v2(db->h,
                           "SELECT " AUDIT_COLUMNS " FROM audit WHERE action = ?"
                           " ORDER BY seq DESC LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "audit");
    } else {
        sqlite3_bind_text(st, 1, what, -1, SQLITE_STATIC);
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            audit_row(st, out);
            rc = 0;
        } else if (step != SQLITE_DONE) {
            rc = db_fail(db, "audit");
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->lock);
    return rc;
}

int sq_audit_list(void *self, uint64_t after_seq, size_t limit, struct audit_entry **out,
                  size_t *n)
{
    struct sqlite_db *db = self;
    *out = NULL;
    *n = 0;
    if (limit == 0)
        return 0;
    struct audit_entry *v = calloc(limit, sizeof *v);
    if (!v)
        return -ENOMEM;
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    size_t count = 0;
    int rc = 0, step = SQLITE_DONE;
    if (sqlite3_prepare_v2(db->h,
                           "SELECT " AUDIT_COLUMNS " FROM audit WHERE seq > ? ORDER BY seq LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "audit");
        goto out;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)after_seq);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
    while (count < limit && (step = sqlite3_step(st)) == SQLITE_ROW)
        audit_row(st, &v[count++]);
    if (count < limit && step != SQLITE_DONE)
        rc = db_fail(db, "audit");
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

int sq_envelope_current(void *self, const char *host, const struct digest *content,
                        int64_t now_ms, int64_t ttl_ms, struct db_envelope *out)
{
    struct sqlite_db *db = self;
    /* Every call on this connection holds the lock, so the read and the
     * write below cannot interleave with another: the common case (the
     * envelope is kept) is a read, not a write transaction. */
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2(db->h,
                           "SELECT version, content, issued_ms, expires_ms FROM envelopes"
                           " WHERE host=?",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "envelopes");
        goto out;
    }
    sqlite3_bind_text(st, 1, host, -1, SQLITE_STATIC);
    uint64_t version = 0;
    int keep = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        version = (uint64_t)sqlite3_column_int64(st, 0);
        struct digest had;
        digest_col(st, 1, &had);
        int64_t issued = sqlite3_column_int64(st, 2), expires = sqlite3_column_int64(st, 3);
        /* Kept while the same set, the same lifetime, and less than half
         * of it gone; a clock that went back also gets a new one. */
        keep = digest_equal(&had, content) && expires - issued == ttl_ms && now_ms >= issued &&
               now_ms - issued < ttl_ms / 2;
        if (keep) {
            out->version = version;
            out->issued_ms = issued;
            out->expires_ms = expires;
        }
    }
    sqlite3_finalize(st);
    st = NULL;
    if (keep)
        goto out;
    /* Never below the time in ms either: a registry whose database was
     * lost or restored from a backup still issues versions newer than
     * any its hosts applied (as long as its clock does not go back). */
    out->version = version + 1 > (uint64_t)now_ms ? version + 1 : (uint64_t)now_ms;
    out->issued_ms = now_ms;
    out->expires_ms = now_ms + ttl_ms;
    if ((rc = exec_simple(db, "BEGIN IMMEDIATE")) < 0)
        goto out;
    if (sqlite3_prepare_v2(db->h,
                           "INSERT OR REPLACE INTO envelopes(host, version, content, issued_ms,"
                           " expires_ms) VALUES(?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "envelopes");
        goto done;
    }
    sqlite3_bind_text(st, 1, host, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)out->version);
    sqlite3_bind_blob(st, 3, content->b, DIGEST_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, out->issued_ms);
    sqlite3_bind_int64(st, 5, out->expires_ms);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_fail(db, "envelopes");
done:
    rc = finish_tx(db, st, rc);
    st = NULL;
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->lock);
    return rc;
}
