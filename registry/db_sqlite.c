/* The SQLite metadata store (WAL, synchronous=FULL): the first
 * implementation of struct db_ops (db.h). Calls are serialized on one
 * connection by a mutex; each operation is one transaction. */
#include "db.h"
#include "db_sqlite_int.h"
#include "error.h"
#include "key.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
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
    "  prev_hash BLOB NOT NULL, hash BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS hosts("
    "  name TEXT PRIMARY KEY, host_key BLOB NOT NULL, labels TEXT NOT NULL,"
    "  last_seen_ms INTEGER NOT NULL, report BLOB);"
    /* Hosts that said hello but are not enrolled: shown to operators only. */
    "CREATE TABLE IF NOT EXISTS pending_hosts("
    "  name TEXT NOT NULL, host_key BLOB NOT NULL, labels TEXT NOT NULL,"
    "  first_seen_ms INTEGER NOT NULL, last_seen_ms INTEGER NOT NULL,"
    "  PRIMARY KEY(name, host_key));"
    "CREATE TABLE IF NOT EXISTS deployments("
    "  name TEXT NOT NULL, selector TEXT NOT NULL, issued_ms INTEGER NOT NULL,"
    "  signed_record BLOB NOT NULL, PRIMARY KEY(name, selector));"
    "CREATE TABLE IF NOT EXISTS events("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT, host TEXT NOT NULL, change BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS events_by_host ON events(host, seq);"
    /* Every signed deploy decision ever stored, for history and rollback. */
    "CREATE TABLE IF NOT EXISTS deploy_history("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, selector TEXT NOT NULL,"
    "  issued_ms INTEGER NOT NULL, signed_record BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS deploy_history_by_name ON deploy_history(name, seq);"
    /* The newest metrics each host reported per run (registry/rmetrics.c). */
    "CREATE TABLE IF NOT EXISTS metrics("
    "  host TEXT NOT NULL, name TEXT NOT NULL, version TEXT NOT NULL,"
    "  received_ms INTEGER NOT NULL, refused INTEGER NOT NULL, body BLOB NOT NULL,"
    "  collected_ms INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(host, name, version));";

/* Columns added to hosts for enrollment. A database from before them is
 * migrated in place; its hosts keep the key pinned at their first hello and
 * count as enrolled (docs/security.md, "Enrollment"). */
static const char *const host_columns[][2] = {
    {"hello_ms", "INTEGER NOT NULL DEFAULT 0"},     /* newest hello's send time */
    {"report_ms", "INTEGER NOT NULL DEFAULT 0"},    /* newest report's */
    {"poll_ms", "INTEGER NOT NULL DEFAULT 0"},      /* newest poll's */
    {"accepted_ms", "INTEGER NOT NULL DEFAULT 0"},  /* the operator accept that enrolled it */
    {"required_labels", "TEXT NOT NULL DEFAULT ''"}, /* from its join token */
    {"plugins", "BLOB"},                              /* encoded PluginList, last hello */
};

/* Room for one more element in a growing result array. */
static int grow(void **v, size_t *cap, size_t count, size_t elem)
{
    if (count < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *g = realloc(*v, ncap * elem);
    if (!g)
        return -ENOMEM;
    *v = g;
    *cap = ncap;
    return 0;
}


/* Fills one element of a result array from the current row; 0 or -ENOMEM. */
typedef int (*row_fn)(sqlite3_stmt *st, void *elem);

/* Run sql (with an optional text parameter) and map every row through fill
 * into a malloc'd array of elem_size elements. On failure nothing is
 * returned and free_partial releases what fill had allocated. */
static int select_rows(struct sqlite_db *db, const char *sql, const char *param, row_fn fill,
                       size_t elem_size, void (*free_partial)(void *, size_t), void **out,
                       size_t *n)
{
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    void *v = NULL;
    size_t count = 0, cap = 0;
    int rc = 0, step = SQLITE_DONE;
    if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "select");
        goto out;
    }
    if (param)
        sqlite3_bind_text(st, 1, param, -1, SQLITE_STATIC);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (grow(&v, &cap, count, elem_size) < 0) {
            rc = -ENOMEM;
            goto out;
        }
        void *elem = (char *)v + count * elem_size;
        memset(elem, 0, elem_size);
        count++;
        if ((rc = fill(st, elem)) < 0)
            goto out;
    }
    if (step != SQLITE_DONE)
        rc = db_fail(db, "select");
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->lock);
    if (rc < 0) {
        if (free_partial)
            free_partial(v, count);
        else
            free(v);
        return rc;
    }
    *out = v;
    *n = count;
    return 0;
}

static void text_into(sqlite3_stmt *st, int col, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

/* A copy of a blob column; 0 or -ENOMEM. */
static int blob_into(sqlite3_stmt *st, int col, uint8_t **dst, size_t *len)
{
    int n = sqlite3_column_bytes(st, col);
    *len = 0;
    *dst = NULL;
    if (n <= 0)
        return 0;
    *dst = malloc((size_t)n);
    if (!*dst)
        return -ENOMEM;
    memcpy(*dst, sqlite3_column_blob(st, col), (size_t)n);
    *len = (size_t)n;
    return 0;
}

int db_fail(struct sqlite_db *db, const char *what)
{
    return err_set(FERRY_E_STORE, "metadata store: %s: %s", what, sqlite3_errmsg(db->h));
}

/* Opens (creating or migrating) the database at path. */
static int sq_open_into(struct sqlite_db *db, const char *path)
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
    for (size_t i = 0; i < sizeof host_columns / sizeof host_columns[0]; i++) {
        char sql[200];
        sqlite3_stmt *st = NULL;
        int have = 0;
        snprintf(sql, sizeof sql, "SELECT 1 FROM pragma_table_info('hosts') WHERE name='%s'",
                 host_columns[i][0]);
        if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) == SQLITE_OK)
            have = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_finalize(st);
        snprintf(sql, sizeof sql, "ALTER TABLE hosts ADD COLUMN %s %s", host_columns[i][0],
                 host_columns[i][1]);
        if (!have && sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
            int rc = err_set(FERRY_E_STORE, "%s: %s", path, msg ? msg : "migration failed");
            sqlite3_free(msg);
            sqlite3_close(db->h);
            return rc;
        }
    }
    if (sq_gov_migrate(db) < 0 || sq_policy_migrate(db) < 0 || sq_runs_migrate(db) < 0 ||
        sq_series_migrate(db) < 0) {
        int rc = err_set(FERRY_E_STORE, "%s: %s", path, err_detail());
        sqlite3_close(db->h);
        return rc;
    }
    pthread_mutex_init(&db->lock, NULL);
    return 0;
}

static int sq_open(const char *path, void **out)
{
    struct sqlite_db *db = calloc(1, sizeof *db);
    if (!db)
        return -ENOMEM;
    int rc = sq_open_into(db, path);
    if (rc < 0) {
        free(db);
        return rc;
    }
    *out = db;
    return 0;
}

/* Read-only: the writer (sq_open) made the schema and WAL mode, so readers
 * here never block it nor are blocked by it. query_only refuses any write
 * that might slip through. */
static int sq_open_reader(const char *path, void **out)
{
    struct sqlite_db *db = calloc(1, sizeof *db);
    if (!db)
        return -ENOMEM;
    int rv = sqlite3_open_v2(path, &db->h, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rv != SQLITE_OK) {
        int rc = err_set(FERRY_E_STORE, "%s: %s", path, sqlite3_errstr(rv));
        sqlite3_close(db->h);
        free(db);
        return rc;
    }
    sqlite3_busy_timeout(db->h, 5000);
    if (sqlite3_exec(db->h, "PRAGMA query_only=1;", NULL, NULL, NULL) != SQLITE_OK) {
        int rc = err_set(FERRY_E_STORE, "%s: %s", path, sqlite3_errmsg(db->h));
        sqlite3_close(db->h);
        free(db);
        return rc;
    }
    pthread_mutex_init(&db->lock, NULL);
    *out = db;
    return 0;
}

static void sq_close(void *self)
{
    struct sqlite_db *db = self;
    sqlite3_close(db->h);
    pthread_mutex_destroy(&db->lock);
    free(db);
}

int exec_simple(struct sqlite_db *db, const char *sql)
{
    return sqlite3_exec(db->h, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : db_fail(db, sql);
}

/* End a transaction begun with BEGIN IMMEDIATE: commit when rc is 0, else
 * (or when the commit fails) roll back. Returns the outcome. */
int finish_tx(struct sqlite_db *db, sqlite3_stmt *st, int rc)
{
    sqlite3_finalize(st);
    if (rc == 0)
        rc = exec_simple(db, "COMMIT");
    if (rc < 0)
        sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int sq_add_version(void *self, const char *name, const char *version, const char *kind,
                   const struct digest *manifest_digest, const char *publisher,
                   const uint8_t *sigs, size_t sigs_len, int *already)
{
    struct sqlite_db *db = self;
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
        goto done;
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
        goto done;
    }
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(db->h,
                           "INSERT INTO artifacts(name, version, kind, manifest_digest, publisher,"
                           " published_unix, signatures) VALUES(?,?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "insert");
        goto done;
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
        goto done;
    }
done:
    rc = finish_tx(db, st, rc);
out:
    pthread_mutex_unlock(&db->lock);
    return rc;
}

static int sq_get_version(void *self, const char *name, const char *version, struct digest *digest,
                   uint8_t **sigs, size_t *sigs_len)
{
    struct sqlite_db *db = self;
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

static int version_row(sqlite3_stmt *st, void *elem)
{
    struct db_version *e = elem;
    text_into(st, 0, e->version, sizeof e->version);
    if (sqlite3_column_bytes(st, 1) == DIGEST_LEN)
        memcpy(e->manifest_digest.b, sqlite3_column_blob(st, 1), DIGEST_LEN);
    text_into(st, 2, e->publisher, sizeof e->publisher);
    e->published_unix = sqlite3_column_int64(st, 3);
    text_into(st, 4, e->kind, sizeof e->kind);
    return 0;
}

static int sq_list_versions(void *self, const char *name, struct db_version **out, size_t *n)
{
    struct sqlite_db *db = self;
    return select_rows(db,
                       "SELECT version, manifest_digest, publisher, published_unix, kind"
                       " FROM artifacts WHERE name=? ORDER BY published_unix, rowid",
                       name, version_row, sizeof **out, NULL, (void **)out, n);
}

/* ---- hosts and deployments ---------------------------------------------- */

static int sq_host_get(void *self, const char *name, struct db_host_auth *out)
{
    struct sqlite_db *db = self;
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    int rc = FERRY_E_NOTFOUND;
    if (sqlite3_prepare_v2(db->h,
                           "SELECT host_key, labels, required_labels, hello_ms, report_ms,"
                           " poll_ms, accepted_ms FROM hosts WHERE name=?",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "hosts");
    } else {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 32) {
            memset(out, 0, sizeof *out);
            memcpy(out->key, sqlite3_column_blob(st, 0), 32);
            text_into(st, 1, out->labels, sizeof out->labels);
            text_into(st, 2, out->required_labels, sizeof out->required_labels);
            out->hello_ms = sqlite3_column_int64(st, 3);
            out->report_ms = sqlite3_column_int64(st, 4);
            out->poll_ms = sqlite3_column_int64(st, 5);
            out->accepted_ms = sqlite3_column_int64(st, 6);
            rc = 0;
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->lock);
    return rc;
}

static int sq_host_touch(void *self, enum db_touch kind, const char *name, const uint8_t key[32],
                  int64_t sent_ms, int64_t now_ms, const char *labels, const uint8_t *report,
                  size_t report_len)
{
    struct sqlite_db *db = self;
    /* One statement checks the key and that sent_ms is newer than the
     * newest of its kind, so two racing copies of a request cannot both
     * pass. */
    static const char *const sql[] = {
        [DB_TOUCH_HELLO] = "UPDATE hosts SET last_seen_ms=?1, hello_ms=?4, labels=?5"
                           " WHERE name=?2 AND host_key=?3 AND hello_ms<?4",
        [DB_TOUCH_REPORT] = "UPDATE hosts SET last_seen_ms=?1, report_ms=?4, report=?5"
                            " WHERE name=?2 AND host_key=?3 AND report_ms<?4",
        [DB_TOUCH_POLL] = "UPDATE hosts SET last_seen_ms=?1, poll_ms=?4"
                          " WHERE name=?2 AND host_key=?3 AND poll_ms<?4",
    };
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2(db->h, sql[kind], -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "hosts");
    } else {
        sqlite3_bind_int64(st, 1, now_ms);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 3, key, 32, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, sent_ms);
        if (kind == DB_TOUCH_HELLO)
            sqlite3_bind_text(st, 5, labels ? labels : "", -1, SQLITE_STATIC);
        else if (kind == DB_TOUCH_REPORT)
            sqlite3_bind_blob(st, 5, report, (int)report_len, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = db_fail(db, "hosts");
        else if (sqlite3_changes(db->h) == 0)
            rc = FERRY_E_INVALID;
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->lock);
    return rc;
}

/* Run one statement whose parameters are, in order, the given texts and
 * blobs and integers (a tiny binder for the enrollment writes). */
static int run_stmt(struct sqlite_db *db, const char *sql, const char *t1, const void *b2, int b2len,
                    const char *t3, const char *t4, const int64_t *ints, int nints)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK)
        return db_fail(db, "hosts");
    int p = 1;
    sqlite3_bind_text(st, p++, t1, -1, SQLITE_STATIC);
    if (b2)
        sqlite3_bind_blob(st, p++, b2, b2len, SQLITE_STATIC);
    if (t3)
        sqlite3_bind_text(st, p++, t3, -1, SQLITE_STATIC);
    if (t4)
        sqlite3_bind_text(st, p++, t4, -1, SQLITE_STATIC);
    for (int i = 0; i < nints; i++)
        sqlite3_bind_int64(st, p++, ints[i]);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_fail(db, "hosts");
    sqlite3_finalize(st);
    return rc;
}

static int sq_host_enroll(void *self, const char *name, const uint8_t key[32], const char *labels,
                   const char *required_labels, int64_t hello_ms, int64_t accepted_ms,
                   int64_t seen_ms, int replace, int *replaced)
{
    struct sqlite_db *db = self;
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    *replaced = 0;
    int rc = exec_simple(db, "BEGIN IMMEDIATE");
    if (rc < 0)
        goto out;
    if (sqlite3_prepare_v2(db->h, "SELECT host_key, accepted_ms FROM hosts WHERE name=?", -1,
                           &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "hosts");
        goto done;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int exists = sqlite3_step(st) == SQLITE_ROW;
    int same = exists && sqlite3_column_bytes(st, 0) == 32 &&
               memcmp(sqlite3_column_blob(st, 0), key, 32) == 0;
    int64_t prev_accept = exists ? sqlite3_column_int64(st, 1) : 0;
    char prev_id[KEY_ID_LEN + 1] = "?";
    if (exists && sqlite3_column_bytes(st, 0) == 32)
        key_id_of(sqlite3_column_blob(st, 0), prev_id);
    sqlite3_finalize(st);
    st = NULL;
    if (exists && accepted_ms > 0 && accepted_ms <= prev_accept) {
        rc = err_set(FERRY_E_INVALID,
                     "accept %s: not newer than the accept already recorded (replayed?)", name);
        goto done;
    }
    if (exists && !same && !replace) {
        rc = err_set(FERRY_E_EXISTS,
                     "host '%s' is enrolled with another host key (%s); "
                     "re-key it with: ferry hosts accept %s --replace",
                     name, prev_id, name);
        goto done;
    }
    if (same) {
        /* Already enrolled with this key: only the accept time moves. */
        int64_t v[] = {accepted_ms > prev_accept ? accepted_ms : prev_accept};
        rc = run_stmt(db, "UPDATE hosts SET accepted_ms=?2 WHERE name=?1", name, NULL, 0, NULL,
                      NULL, v, 1);
    } else if (exists) {
        /* A new key: what the old key wrote and its replay marks go. */
        int64_t v[] = {seen_ms, hello_ms, accepted_ms};
        rc = run_stmt(db,
                      "UPDATE hosts SET host_key=?2, labels=?3, required_labels=?4,"
                      " last_seen_ms=?5, hello_ms=?6, accepted_ms=?7, report_ms=0, poll_ms=0,"
                      " report=NULL WHERE name=?1",
                      name, key, 32, labels, required_labels, v, 3);
        *replaced = 1;
    } else {
        int64_t v[] = {seen_ms, hello_ms, accepted_ms};
        rc = run_stmt(db,
                      "INSERT INTO hosts(name, host_key, labels, required_labels, last_seen_ms,"
                      " hello_ms, accepted_ms) VALUES(?1,?2,?3,?4,?5,?6,?7)",
                      name, key, 32, labels, required_labels, v, 3);
    }
    if (rc == 0)
        rc = run_stmt(db, "DELETE FROM pending_hosts WHERE name=?1 AND host_key=?2", name, key,
                      32, NULL, NULL, NULL, 0);
done:
    rc = finish_tx(db, st, rc);
out:
    pthread_mutex_unlock(&db->lock);
    return rc;
}

static int sq_pending_put(void *self, const char *name, const uint8_t key[32], const char *labels,
                   int64_t now_ms, int *is_new)
{
    struct sqlite_db *db = self;
    pthread_mutex_lock(&db->lock);
    int rc = exec_simple(db, "BEGIN IMMEDIATE");
    if (rc < 0)
        goto out;
    *is_new = 0;
    int64_t v[] = {now_ms};
    rc = run_stmt(db,
                  "UPDATE pending_hosts SET labels=?3, last_seen_ms=?4"
                  " WHERE name=?1 AND host_key=?2",
                  name, key, 32, labels, NULL, v, 1);
    if (rc == 0 && sqlite3_changes(db->h) == 0) {
        *is_new = 1;
        rc = run_stmt(db,
                      "INSERT INTO pending_hosts(name, host_key, labels, first_seen_ms,"
                      " last_seen_ms) VALUES(?1,?2,?3,?4,?4)",
                      name, key, 32, labels, NULL, v, 1);
    }
    if (rc == 0) {
        /* Bounded: the least recently seen requests go (a real agent keeps
         * saying hello, so it comes back). */
        char trim[200];
        snprintf(trim, sizeof trim,
                 "DELETE FROM pending_hosts WHERE rowid NOT IN (SELECT rowid FROM pending_hosts"
                 " ORDER BY last_seen_ms DESC, rowid DESC LIMIT %d)",
                 DB_PENDING_MAX);
        rc = exec_simple(db, trim);
    }
    rc = finish_tx(db, NULL, rc);
out:
    pthread_mutex_unlock(&db->lock);
    return rc;
}

static int pending_row(sqlite3_stmt *st, void *elem)
{
    struct db_pending *p = elem;
    text_into(st, 0, p->name, sizeof p->name);
    if (sqlite3_column_bytes(st, 1) == 32)
        memcpy(p->key, sqlite3_column_blob(st, 1), 32);
    text_into(st, 2, p->labels, sizeof p->labels);
    p->first_seen_ms = sqlite3_column_int64(st, 3);
    p->last_seen_ms = sqlite3_column_int64(st, 4);
    return 0;
}

static int sq_pending_for(void *self, const char *name, struct db_pending **out, size_t *n)
{
    struct sqlite_db *db = self;
    return select_rows(db,
                       "SELECT name, host_key, labels, first_seen_ms, last_seen_ms"
                       " FROM pending_hosts WHERE name=? ORDER BY last_seen_ms DESC",
                       name, pending_row, sizeof **out, NULL, (void **)out, n);
}

static int sq_host_labels(void *self, const char *name, char *labels, size_t cap)
{
    struct sqlite_db *db = self;
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    int rc = FERRY_E_NOTFOUND;
    if (sqlite3_prepare_v2(db->h, "SELECT labels FROM hosts WHERE name=?", -1, &st, NULL) !=
        SQLITE_OK) {
        rc = db_fail(db, "hosts");
    } else {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            text_into(st, 0, labels, cap);
            rc = 0;
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->lock);
    return rc == FERRY_E_NOTFOUND ? err_set(rc, "host '%s' is not enrolled", name) : rc;
}

static int host_row(sqlite3_stmt *st, void *elem)
{
    struct db_host *h = elem;
    text_into(st, 0, h->name, sizeof h->name);
    if (sqlite3_column_bytes(st, 1) == 32)
        memcpy(h->key, sqlite3_column_blob(st, 1), 32);
    text_into(st, 2, h->labels, sizeof h->labels);
    h->last_seen_ms = sqlite3_column_int64(st, 3);
    h->pending = sqlite3_column_int(st, 5);
    if (blob_into(st, 6, &h->plugins, &h->plugins_len) < 0)
        return -ENOMEM;
    return blob_into(st, 4, &h->report, &h->report_len);
}

static void host_list_free_partial(void *v, size_t n) { db_host_list_free(v, n); }

static int sq_host_list(void *self, struct db_host **out, size_t *n)
{
    struct sqlite_db *db = self;
    return select_rows(db,
                       "SELECT name, host_key, labels, last_seen_ms, report, 0, plugins FROM hosts"
                       " UNION ALL SELECT name, host_key, labels, last_seen_ms, NULL, 1, NULL"
                       " FROM pending_hosts ORDER BY 1, 6",
                       NULL, host_row, sizeof **out, host_list_free_partial, (void **)out, n);
}


static int history_append(struct sqlite_db *db, const char *name, const char *selector,
                          int64_t issued_ms, const uint8_t *signed_record, size_t len);

static int sq_deployment_put(void *self, const char *name, const char *selector, int64_t issued_ms,
                      const uint8_t *signed_record, size_t len)
{
    struct sqlite_db *db = self;
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    int rc = exec_simple(db, "BEGIN IMMEDIATE");
    if (rc < 0)
        goto out;
    if (sqlite3_prepare_v2(db->h, "SELECT issued_ms FROM deployments WHERE name=? AND selector=?",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "deployments");
        goto done;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, selector, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) >= issued_ms) {
        rc = err_set(FERRY_E_INVALID,
                     "deployment of %s to %s: a newer decision is already recorded "
                     "(is this machine's clock behind?)",
                     name, selector);
        goto done;
    }
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(db->h,
                           "INSERT OR REPLACE INTO deployments(name, selector, issued_ms,"
                           " signed_record) VALUES(?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "deployments");
        goto done;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, selector, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, issued_ms);
    sqlite3_bind_blob(st, 4, signed_record, (int)len, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = db_fail(db, "deployments");
        goto done;
    }
    rc = history_append(db, name, selector, issued_ms, signed_record, len);
done:
    rc = finish_tx(db, st, rc);
out:
    pthread_mutex_unlock(&db->lock);
    return rc;
}

static int deployment_row(sqlite3_stmt *st, void *elem)
{
    struct db_deployment *d = elem;
    text_into(st, 0, d->name, sizeof d->name);
    text_into(st, 1, d->selector, sizeof d->selector);
    d->issued_ms = sqlite3_column_int64(st, 2);
    return blob_into(st, 3, &d->signed_record, &d->signed_len);
}

static void deployment_list_free_partial(void *v, size_t n) { db_deployment_list_free(v, n); }

static int sq_deployment_list(void *self, struct db_deployment **out, size_t *n)
{
    struct sqlite_db *db = self;
    return select_rows(db,
                       "SELECT name, selector, issued_ms, signed_record FROM deployments"
                       " ORDER BY name, issued_ms",
                       NULL, deployment_row, sizeof **out, deployment_list_free_partial,
                       (void **)out, n);
}


static int sq_events_add(void *self, const char *host, const uint8_t *const *changes,
                  const size_t *lens, size_t n)
{
    struct sqlite_db *db = self;
    if (n == 0)
        return 0;
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    int rc = exec_simple(db, "BEGIN IMMEDIATE");
    if (rc < 0)
        goto out;
    if (sqlite3_prepare_v2(db->h, "INSERT INTO events(host, change) VALUES(?,?)", -1, &st,
                           NULL) != SQLITE_OK) {
        rc = db_fail(db, "events");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, host, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, changes[i], (int)lens[i], SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) {
            rc = db_fail(db, "events");
            goto done;
        }
    }
    /* Bounded per host: this host's oldest changes go, never another's. */
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(db->h,
                           "DELETE FROM events WHERE host=?1 AND seq <="
                           " (SELECT MAX(seq) FROM events WHERE host=?1) - ?2",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "events");
        goto done;
    }
    sqlite3_bind_text(st, 1, host, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, DB_EVENTS_PER_HOST);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_fail(db, "events");
done:
    rc = finish_tx(db, st, rc);
out:
    pthread_mutex_unlock(&db->lock);
    return rc;
}

static int sq_events_list(void *self, const char *host, size_t limit, struct db_event **out,
                   size_t *n)
{
    struct sqlite_db *db = self;
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    struct db_event *v = calloc(limit ? limit : 1, sizeof *v);
    size_t count = 0;
    int rc = v ? 0 : -ENOMEM;
    if (rc == 0 &&
        sqlite3_prepare_v2(db->h,
                           host ? "SELECT host, change FROM events WHERE host=? ORDER BY seq DESC LIMIT ?"
                                : "SELECT host, change FROM events WHERE ?1 IS NULL ORDER BY seq DESC LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK)
        rc = db_fail(db, "events");
    if (rc == 0) {
        if (host)
            sqlite3_bind_text(st, 1, host, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
        while (count < limit && sqlite3_step(st) == SQLITE_ROW) {
            struct db_event *e = &v[count];
            snprintf(e->host, sizeof e->host, "%s", (const char *)sqlite3_column_text(st, 0));
            int len = sqlite3_column_bytes(st, 1);
            e->change = malloc(len > 0 ? (size_t)len : 1);
            if (!e->change) {
                rc = -ENOMEM;
                break;
            }
            if (len > 0)
                memcpy(e->change, sqlite3_column_blob(st, 1), (size_t)len);
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
    /* Newest last. */
    for (size_t i = 0; i < count / 2; i++) {
        struct db_event t = v[i];
        v[i] = v[count - 1 - i];
        v[count - 1 - i] = t;
    }
    *out = v;
    *n = count;
    return 0;
}


/* ---- deploy history and host plugins ---------------------------------------- */

/* Inside db_deployment_put's transaction (lock held): the decision and its
 * history row are stored together or not at all. */
static int history_append(struct sqlite_db *db, const char *name, const char *selector,
                          int64_t issued_ms, const uint8_t *signed_record, size_t len)
{
    sqlite3_stmt *st = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2(db->h,
                           "INSERT INTO deploy_history(name, selector, issued_ms, signed_record)"
                           " VALUES(?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(db, "deploy history");
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, selector, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, issued_ms);
    sqlite3_bind_blob(st, 4, signed_record, (int)len, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_fail(db, "deploy history");
    sqlite3_finalize(st);
    return rc;
}

static int sq_history_list(void *self, const char *name, struct db_deployment **out, size_t *n)
{
    struct sqlite_db *db = self;
    return select_rows(db,
                       "SELECT name, selector, issued_ms, signed_record FROM deploy_history"
                       " WHERE name=? ORDER BY seq",
                       name, deployment_row, sizeof **out, deployment_list_free_partial,
                       (void **)out, n);
}

static int sq_host_set_plugins(void *self, const char *name, const uint8_t *plugins, size_t len)
{
    struct sqlite_db *db = self;
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2(db->h, "UPDATE hosts SET plugins=? WHERE name=?", -1, &st, NULL) !=
        SQLITE_OK) {
        rc = db_fail(db, "hosts");
    } else {
        sqlite3_bind_blob(st, 1, plugins ? (const void *)plugins : "", (int)len, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = db_fail(db, "hosts");
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->lock);
    return rc;
}

static int sq_host_remove(void *self, const char *name)
{
    struct sqlite_db *db = self;
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    int rc = 0;
    int changed = 0;
    /* The enrolled host and any pending requests under its name. */
    const char *sql[] = {"DELETE FROM hosts WHERE name=?", "DELETE FROM pending_hosts WHERE name=?"};
    for (size_t i = 0; rc == 0 && i < 2; i++) {
        if (sqlite3_prepare_v2(db->h, sql[i], -1, &st, NULL) != SQLITE_OK) {
            rc = db_fail(db, "hosts");
            break;
        }
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = db_fail(db, "hosts");
        else
            changed += sqlite3_changes(db->h);
        sqlite3_finalize(st);
        st = NULL;
    }
    if (rc == 0 && changed == 0)
        rc = err_set(FERRY_E_NOTFOUND, "host '%s' is not known", name);
    pthread_mutex_unlock(&db->lock);
    return rc;
}

/* ---- metrics: the newest per host and run ---- */

static int sq_metrics_replace(void *self, const char *host, const struct db_metrics_row *rows, size_t n)
{
    struct sqlite_db *db = self;
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    int rc = exec_simple(db, "BEGIN IMMEDIATE");
    if (rc < 0)
        goto out;
    if (sqlite3_prepare_v2(db->h, "DELETE FROM metrics WHERE host=?", -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "metrics");
        goto done;
    }
    sqlite3_bind_text(st, 1, host, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = db_fail(db, "metrics");
        goto done;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(db->h,
                           "INSERT OR REPLACE INTO metrics(host, name, version, received_ms, refused, body,"
                           " collected_ms) VALUES(?,?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "metrics");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, host, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, rows[i].name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, rows[i].version, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, rows[i].received_ms);
        sqlite3_bind_int64(st, 5, rows[i].refused);
        sqlite3_bind_blob(st, 6, rows[i].body ? (const void *)rows[i].body : (const void *)"", (int)rows[i].len,
                          SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, rows[i].collected_ms);
        if (sqlite3_step(st) != SQLITE_DONE) {
            rc = db_fail(db, "metrics");
            goto done;
        }
    }
done:
    rc = finish_tx(db, st, rc);
out:
    pthread_mutex_unlock(&db->lock);
    return rc;
}

static int sq_metrics_same(void *self, const char *host, const struct db_metrics_row *rows, size_t n)
{
    struct sqlite_db *db = self;
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    size_t stored = 0, matched = 0;
    int ok = sqlite3_prepare_v2(db->h, "SELECT name, version, collected_ms FROM metrics WHERE host=?", -1, &st,
                                NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_text(st, 1, host, -1, SQLITE_STATIC);
        while (sqlite3_step(st) == SQLITE_ROW) {
            stored++;
            const char *name = (const char *)sqlite3_column_text(st, 0);
            const char *version = (const char *)sqlite3_column_text(st, 1);
            int64_t at = sqlite3_column_int64(st, 2);
            for (size_t i = 0; name && version && i < n; i++)
                if (rows[i].collected_ms == at && strcmp(rows[i].name, name) == 0 &&
                    strcmp(rows[i].version, version) == 0) {
                    matched++;
                    break;
                }
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&db->lock);
    return ok && stored == n && matched == n;
}

static int metrics_row(sqlite3_stmt *st, void *elem)
{
    struct db_metrics_row *r = elem;
    text_into(st, 0, r->host, sizeof r->host);
    text_into(st, 1, r->name, sizeof r->name);
    text_into(st, 2, r->version, sizeof r->version);
    r->received_ms = sqlite3_column_int64(st, 3);
    r->refused = (uint32_t)sqlite3_column_int64(st, 4);
    return blob_into(st, 5, &r->body, &r->len);
}

static void metrics_partial(void *v, size_t n) { db_metrics_free(v, n); }

static int sq_metrics_list(void *self, const char *name, struct db_metrics_row **out, size_t *n)
{
    struct sqlite_db *db = self;
    if (!name) /* every run's (the registry's /metrics) */
        return select_rows(db,
                           "SELECT host, name, version, received_ms, refused, body FROM metrics"
                           " ORDER BY host, name, version",
                           NULL, metrics_row, sizeof **out, metrics_partial, (void **)out, n);
    return select_rows(db,
                       "SELECT host, name, version, received_ms, refused, body FROM metrics WHERE name=?"
                       " ORDER BY host, version",
                       name, metrics_row, sizeof **out, metrics_partial, (void **)out, n);
}

static int sq_host_polls_save(void *self, const struct db_poll_mark *m, size_t n)
{
    struct sqlite_db *db = self;
    if (n == 0)
        return 0;
    pthread_mutex_lock(&db->lock);
    sqlite3_stmt *st = NULL;
    int rc = exec_simple(db, "BEGIN IMMEDIATE");
    if (rc < 0)
        goto out;
    if (sqlite3_prepare_v2(db->h,
                           "UPDATE hosts SET poll_ms=max(poll_ms, ?3),"
                           " last_seen_ms=max(last_seen_ms, ?4) WHERE name=?1 AND host_key=?2",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(db, "hosts");
        goto done;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, m[i].name, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, m[i].key, 32, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, m[i].poll_ms);
        sqlite3_bind_int64(st, 4, m[i].seen_ms);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = db_fail(db, "hosts");
    }
done:
    rc = finish_tx(db, st, rc);
out:
    pthread_mutex_unlock(&db->lock);
    return rc;
}

const struct db_ops db_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .open_reader = sq_open_reader,
    .add_version = sq_add_version,
    .get_version = sq_get_version,
    .list_versions = sq_list_versions,
    .host_get = sq_host_get,
    .host_touch = sq_host_touch,
    .host_enroll = sq_host_enroll,
    .pending_put = sq_pending_put,
    .pending_for = sq_pending_for,
    .host_labels = sq_host_labels,
    .host_list = sq_host_list,
    .deployment_put = sq_deployment_put,
    .deployment_list = sq_deployment_list,
    .events_add = sq_events_add,
    .events_list = sq_events_list,
    .history_list = sq_history_list,
    .host_set_plugins = sq_host_set_plugins,
    .host_remove = sq_host_remove,
    .metrics_replace = sq_metrics_replace,
    .metrics_same = sq_metrics_same,
    .metrics_list = sq_metrics_list,
    .host_polls_save = sq_host_polls_save,
    .audit_append = sq_audit_append,
    .audit_list = sq_audit_list,
    .envelope_current = sq_envelope_current,
    .version_set_sigs = sq_version_set_sigs,
    .channel_set = sq_channel_set,
    .channel_list = sq_channel_list,
    .revoke_put = sq_revoke_put,
    .revoke_list = sq_revoke_list,
    .run_put = sq_run_put,
    .run_list = sq_run_list,
    .series_add = sq_series_add,
    .series_query = sq_series_query,
    .artifact_names = sq_artifact_names,
    .events_after = sq_events_after,
    .audit_last = sq_audit_last,
};
