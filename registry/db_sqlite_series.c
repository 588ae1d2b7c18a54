/* The SQLite store's metric time series (registry/mseries.h) and the
 * extra reads the HTTP side needs (artifact names, events by sequence). */
#include "db.h"
#include "db_sqlite_int.h"
#include "error.h"
#include "mseries.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sq_series_migrate(struct sqlite_db *db)
{
    /* Keyed for the two ways it is read: a run's buckets of one tier from
     * a time on (queries, and the prune on insert), per host. */
    return exec_simple(db,
                       "CREATE TABLE IF NOT EXISTS metric_series("
                       "  name TEXT NOT NULL, host TEXT NOT NULL, res_s INTEGER NOT NULL,"
                       "  bucket_ms INTEGER NOT NULL, version TEXT NOT NULL, series TEXT NOT NULL,"
                       "  type INTEGER NOT NULL, last REAL NOT NULL, min REAL NOT NULL,"
                       "  max REAL NOT NULL, sum REAL NOT NULL, count INTEGER NOT NULL,"
                       "  PRIMARY KEY(name, host, res_s, bucket_ms, version, series)) WITHOUT ROWID;"
                       /* The newest collection time stored per run: a report
                        * that resends a run adds nothing. */
                       "CREATE TABLE IF NOT EXISTS metric_series_seen("
                       "  host TEXT NOT NULL, name TEXT NOT NULL, version TEXT NOT NULL,"
                       "  t_ms INTEGER NOT NULL, PRIMARY KEY(host, name, version)) WITHOUT ROWID;");
}

static int run_add(struct sqlite_db *db, sqlite3_stmt *seen, sqlite3_stmt *mark, sqlite3_stmt *up,
                   sqlite3_stmt *prune, const char *host, const struct db_series_run *r,
                   int64_t now_ms)
{
    sqlite3_reset(seen);
    sqlite3_bind_text(seen, 1, host, -1, SQLITE_STATIC);
    sqlite3_bind_text(seen, 2, r->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(seen, 3, r->version, -1, SQLITE_STATIC);
    int step = sqlite3_step(seen);
    if (step == SQLITE_ROW && sqlite3_column_int64(seen, 0) >= r->t_ms)
        return 0; /* already stored */
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return db_fail(db, "metric series");
    for (int t = 0; t < MSERIES_TIERS; t++) {
        const struct mseries_tier *tier = &mseries_tiers[t];
        int64_t b = mseries_bucket(r->t_ms, tier->res_s);
        if (b < mseries_cutoff(tier, now_ms))
            continue; /* older than the tier keeps */
        for (size_t i = 0; i < r->n; i++) {
            const struct db_series_point *p = &r->points[i];
            sqlite3_reset(up);
            sqlite3_bind_text(up, 1, r->name, -1, SQLITE_STATIC);
            sqlite3_bind_text(up, 2, host, -1, SQLITE_STATIC);
            sqlite3_bind_int(up, 3, tier->res_s);
            sqlite3_bind_int64(up, 4, b);
            sqlite3_bind_text(up, 5, r->version, -1, SQLITE_STATIC);
            sqlite3_bind_text(up, 6, p->series, -1, SQLITE_STATIC);
            sqlite3_bind_int(up, 7, p->type);
            sqlite3_bind_double(up, 8, p->value);
            if (sqlite3_step(up) != SQLITE_DONE)
                return db_fail(db, "metric series");
        }
        sqlite3_reset(prune);
        sqlite3_bind_text(prune, 1, r->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(prune, 2, host, -1, SQLITE_STATIC);
        sqlite3_bind_int(prune, 3, tier->res_s);
        sqlite3_bind_int64(prune, 4, mseries_cutoff(tier, now_ms));
        if (sqlite3_step(prune) != SQLITE_DONE)
            return db_fail(db, "metric series");
    }
    sqlite3_reset(mark);
    sqlite3_bind_text(mark, 1, host, -1, SQLITE_STATIC);
    sqlite3_bind_text(mark, 2, r->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(mark, 3, r->version, -1, SQLITE_STATIC);
    sqlite3_bind_int64(mark, 4, r->t_ms);
    return sqlite3_step(mark) == SQLITE_DONE ? 0 : db_fail(db, "metric series");
}

int sq_series_add(void *self, const char *host, const struct db_series_run *runs, size_t n,
                  int64_t now_ms)
{
    struct sqlite_db *db = self;
    if (n == 0)
        return 0;
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *seen = NULL, *mark = NULL, *up = NULL, *prune = NULL;
    int rc = exec_simple(db, "BEGIN IMMEDIATE");
    if (rc < 0)
        goto out;
    if (sqlite3_prepare_v2(db->h,
                           "SELECT t_ms FROM metric_series_seen WHERE host=? AND name=? AND version=?",
                           -1, &seen, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db->h,
                           "INSERT INTO metric_series_seen(host, name, version, t_ms) VALUES(?,?,?,?)"
                           " ON CONFLICT(host, name, version) DO UPDATE SET t_ms=excluded.t_ms",
                           -1, &mark, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db->h,
                           "INSERT INTO metric_series(name, host, res_s, bucket_ms, version, series,"
                           " type, last, min, max, sum, count) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?8,?8,?8,1)"
                           " ON CONFLICT(name, host, res_s, bucket_ms, version, series) DO UPDATE SET"
                           " type=excluded.type, last=excluded.last, min=MIN(min, excluded.min),"
                           " max=MAX(max, excluded.max), sum=sum+excluded.sum, count=count+1",
                           -1, &up, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db->h,
                           "DELETE FROM metric_series WHERE name=? AND host=? AND res_s=? AND bucket_ms<?",
                           -1, &prune, NULL) != SQLITE_OK) {
        rc = db_fail(db, "metric series");
        goto done;
    }
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = run_add(db, seen, mark, up, prune, host, &runs[i], now_ms);
done:
    sqlite3_finalize(seen);
    sqlite3_finalize(mark);
    sqlite3_finalize(prune);
    rc = finish_tx(db, up, rc);
out:
    pthread_mutex_unlock(&db->lock);
    return rc;
}

int sq_series_query(void *self, const char *name, const char *host, const char *series, int res_s,
                    int64_t since_ms, size_t limit, struct db_series_row **out, size_t *n)
{
    struct sqlite_db *db = self;
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    struct db_series_row *v = NULL;
    size_t count = 0, cap = 0;
    int rc = 0;
    if (sqlite3_prepare_v2(db->h,
                           "SELECT host, version, series, type, bucket_ms, last, min, max, sum, count"
                           " FROM metric_series WHERE name=?1 AND (?2 IS NULL OR host=?2) AND res_s=?3"
                           " AND bucket_ms>=?4 AND (?5 IS NULL OR series=?5)"
                           " ORDER BY host, version, series, bucket_ms LIMIT ?6",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "metric series");
        goto out;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (host)
        sqlite3_bind_text(st, 2, host, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, res_s);
    sqlite3_bind_int64(st, 4, since_ms);
    if (series)
        sqlite3_bind_text(st, 5, series, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)limit);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            size_t nc = cap ? cap * 2 : 64;
            struct db_series_row *g = realloc(v, nc * sizeof *v);
            if (!g) {
                rc = -ENOMEM;
                goto out;
            }
            v = g;
            cap = nc;
        }
        struct db_series_row *r = &v[count++];
        memset(r, 0, sizeof *r);
        snprintf(r->host, sizeof r->host, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(r->version, sizeof r->version, "%s", (const char *)sqlite3_column_text(st, 1));
        snprintf(r->series, sizeof r->series, "%s", (const char *)sqlite3_column_text(st, 2));
        r->type = sqlite3_column_int(st, 3);
        r->bucket_ms = sqlite3_column_int64(st, 4);
        r->last = sqlite3_column_double(st, 5);
        r->min = sqlite3_column_double(st, 6);
        r->max = sqlite3_column_double(st, 7);
        r->sum = sqlite3_column_double(st, 8);
        r->count = sqlite3_column_int64(st, 9);
    }
    if (step != SQLITE_DONE)
        rc = db_fail(db, "metric series");
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

int sq_artifact_names(void *self, struct db_name **out, size_t *n)
{
    struct sqlite_db *db = self;
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    struct db_name *v = NULL;
    size_t count = 0, cap = 0;
    int rc = 0, step;
    if (sqlite3_prepare_v2(db->h, "SELECT DISTINCT name FROM artifacts ORDER BY name", -1, &st,
                           NULL) != SQLITE_OK) {
        rc = db_fail(db, "artifacts");
        goto out;
    }
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            size_t nc = cap ? cap * 2 : 32;
            struct db_name *g = realloc(v, nc * sizeof *v);
            if (!g) {
                rc = -ENOMEM;
                goto out;
            }
            v = g;
            cap = nc;
        }
        snprintf(v[count++].name, sizeof v->name, "%s", (const char *)sqlite3_column_text(st, 0));
    }
    if (step != SQLITE_DONE)
        rc = db_fail(db, "artifacts");
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

int sq_events_after(void *self, uint64_t after_seq, size_t limit, struct db_event **out, size_t *n)
{
    struct sqlite_db *db = self;
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    struct db_event *v = calloc(limit ? limit : 1, sizeof *v);
    size_t count = 0;
    int rc = v ? 0 : -ENOMEM;
    /* UINT64_MAX: the newest limit events (still oldest first). */
    const char *sql = after_seq == UINT64_MAX
                          ? "SELECT seq, host, change FROM (SELECT seq, host, change FROM events"
                            " WHERE ?1 IS NOT NULL ORDER BY seq DESC LIMIT ?2) ORDER BY seq"
                          : "SELECT seq, host, change FROM events WHERE seq>?1 ORDER BY seq LIMIT ?2";
    if (rc == 0 && sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK)
        rc = db_fail(db, "events");
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, after_seq == UINT64_MAX ? 0 : (sqlite3_int64)after_seq);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
        while (count < limit && sqlite3_step(st) == SQLITE_ROW) {
            struct db_event *e = &v[count];
            e->seq = (uint64_t)sqlite3_column_int64(st, 0);
            snprintf(e->host, sizeof e->host, "%s", (const char *)sqlite3_column_text(st, 1));
            int len = sqlite3_column_bytes(st, 2);
            e->change = malloc(len > 0 ? (size_t)len : 1);
            if (!e->change) {
                rc = -ENOMEM;
                break;
            }
            if (len > 0)
                memcpy(e->change, sqlite3_column_blob(st, 2), (size_t)len);
            e->len = (size_t)len;
            count++;
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->lock);
    if (rc < 0) {
        db_events_free(v, count);
        return rc;
    }
    *out = v;
    *n = count;
    return 0;
}
