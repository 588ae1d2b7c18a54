/* The SQLite store's governance tables: where each channel of a name
 * points, and the signed key revocations (db.h, "governance"). Approvals
 * live in the artifact's own signature list. */
#include "db_sqlite_int.h"
#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sq_policy_migrate(struct sqlite_db *db)
{
    return exec_simple(db, "CREATE TABLE IF NOT EXISTS channels("
                           "  name TEXT NOT NULL, channel TEXT NOT NULL, version TEXT NOT NULL,"
                           "  manifest_digest BLOB NOT NULL, set_ms INTEGER NOT NULL,"
                           "  key_id TEXT NOT NULL, PRIMARY KEY(name, channel));"
                           "CREATE TABLE IF NOT EXISTS revocations("
                           "  key_id TEXT PRIMARY KEY, statement BLOB NOT NULL);");
}

int sq_version_set_sigs(void *self, const char *name, const char *version, const uint8_t *sigs,
                        size_t len)
{
    struct sqlite_db *db = self;
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2(db->h, "UPDATE artifacts SET signatures=? WHERE name=? AND version=?",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "update");
        goto out;
    }
    sqlite3_bind_blob(st, 1, sigs, (int)len, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, version, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_fail(db, "update");
    else if (sqlite3_changes(db->h) == 0)
        rc = err_set(FERRY_E_NOTFOUND, "%s@%s: no such artifact version", name, version);
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->lock);
    return rc;
}

int sq_channel_set(void *self, const struct db_channel *c)
{
    struct sqlite_db *db = self;
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    int rc = exec_simple(db, "BEGIN IMMEDIATE");
    if (rc < 0)
        goto out;
    if (sqlite3_prepare_v2(db->h, "SELECT set_ms FROM channels WHERE name=? AND channel=?", -1,
                           &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "select");
        goto done;
    }
    sqlite3_bind_text(st, 1, c->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->channel, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) >= c->set_ms) {
        rc = err_set(FERRY_E_INVALID, "promote %s to %s: a newer promotion is recorded "
                                      "(a replayed request?)", c->name, c->channel);
        goto done;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(db->h,
                           "INSERT OR REPLACE INTO channels(name, channel, version,"
                           " manifest_digest, set_ms, key_id) VALUES(?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "insert");
        goto done;
    }
    sqlite3_bind_text(st, 1, c->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->channel, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, c->version, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, c->digest.b, DIGEST_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, c->set_ms);
    sqlite3_bind_text(st, 6, c->key_id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_fail(db, "insert");
done:
    rc = finish_tx(db, st, rc);
out:
    pthread_mutex_unlock(&db->lock);
    return rc;
}

static void copy_text(char *dst, size_t cap, const unsigned char *s)
{
    snprintf(dst, cap, "%s", s ? (const char *)s : "");
}

int sq_channel_list(void *self, const char *name, struct db_channel **out, size_t *n)
{
    struct sqlite_db *db = self;
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    int rc = 0;
    size_t cap = 0, count = 0;
    struct db_channel *v = NULL;
    if (sqlite3_prepare_v2(db->h,
                           name ? "SELECT name, channel, version, manifest_digest, set_ms, key_id"
                                  " FROM channels WHERE name=? ORDER BY name, channel"
                                : "SELECT name, channel, version, manifest_digest, set_ms, key_id"
                                  " FROM channels ORDER BY name, channel",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "select");
        goto out;
    }
    if (name)
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (count == cap) {
            size_t nc = cap ? cap * 2 : 8;
            struct db_channel *nv = realloc(v, nc * sizeof *nv);
            if (!nv) {
                rc = -ENOMEM;
                goto out;
            }
            v = nv, cap = nc;
        }
        struct db_channel *c = &v[count];
        memset(c, 0, sizeof *c);
        copy_text(c->name, sizeof c->name, sqlite3_column_text(st, 0));
        copy_text(c->channel, sizeof c->channel, sqlite3_column_text(st, 1));
        copy_text(c->version, sizeof c->version, sqlite3_column_text(st, 2));
        if (sqlite3_column_bytes(st, 3) == DIGEST_LEN)
            memcpy(c->digest.b, sqlite3_column_blob(st, 3), DIGEST_LEN);
        c->set_ms = sqlite3_column_int64(st, 4);
        copy_text(c->key_id, sizeof c->key_id, sqlite3_column_text(st, 5));
        count++;
    }
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

int sq_revoke_put(void *self, const char *key_id, const uint8_t *stmt, size_t len)
{
    struct sqlite_db *db = self;
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2(db->h,
                           "INSERT OR IGNORE INTO revocations(key_id, statement) VALUES(?,?)", -1,
                           &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "insert");
        goto out;
    }
    sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, stmt, (int)len, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_fail(db, "insert");
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->lock);
    return rc;
}

int sq_revoke_list(void *self, struct db_revocation **out, size_t *n)
{
    struct sqlite_db *db = self;
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    int rc = 0;
    size_t cap = 0, count = 0;
    struct db_revocation *v = NULL;
    if (sqlite3_prepare_v2(db->h, "SELECT key_id, statement FROM revocations ORDER BY key_id", -1,
                           &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "select");
        goto out;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (count == cap) {
            size_t nc = cap ? cap * 2 : 8;
            struct db_revocation *nv = realloc(v, nc * sizeof *nv);
            if (!nv) {
                rc = -ENOMEM;
                goto out;
            }
            v = nv, cap = nc;
        }
        struct db_revocation *r = &v[count];
        memset(r, 0, sizeof *r);
        copy_text(r->key_id, sizeof r->key_id, sqlite3_column_text(st, 0));
        int len = sqlite3_column_bytes(st, 1);
        r->stmt = malloc(len > 0 ? (size_t)len : 1);
        if (!r->stmt) {
            rc = -ENOMEM;
            goto out;
        }
        if (len > 0)
            memcpy(r->stmt, sqlite3_column_blob(st, 1), (size_t)len);
        r->len = (size_t)len;
        count++;
    }
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->lock);
    if (rc < 0) {
        db_revoke_list_free(v, count);
        return rc;
    }
    *out = v;
    *n = count;
    return 0;
}
