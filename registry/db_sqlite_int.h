/* What the SQLite store's files share (db_sqlite.c, db_sqlite_gov.c). */
#ifndef FERRY_REGISTRY_DB_SQLITE_INT_H
#define FERRY_REGISTRY_DB_SQLITE_INT_H

#include "db.h"

#include <pthread.h>
#include <sqlite3.h>

struct sqlite_db {
    sqlite3 *h;
    pthread_mutex_t lock;
};

/* FERRY_E_STORE with SQLite's message. */
int db_fail(struct sqlite_db *db, const char *what);
int exec_simple(struct sqlite_db *db, const char *sql);
/* End a BEGIN IMMEDIATE transaction: commit when rc is 0, else roll back. */
int finish_tx(struct sqlite_db *db, sqlite3_stmt *st, int rc);

/* db_sqlite_gov.c: the audit log's and envelopes' tables and migrations,
 * run at open (before the lock exists: no other thread has the store). */
int sq_gov_migrate(struct sqlite_db *db);
int sq_audit_append(void *self, const char *key_id, const char *role, const char *what,
                    const char *detail);
int sq_audit_last(void *self, const char *what, struct audit_entry *out);
int sq_audit_list(void *self, uint64_t after_seq, size_t limit, struct audit_entry **out,
                  size_t *n);
int sq_envelope_current(void *self, const char *host, const struct digest *content,
                        int64_t now_ms, int64_t ttl_ms, struct db_envelope *out);

/* db_sqlite_policy.c: governance tables (channels, revocations). */
int sq_policy_migrate(struct sqlite_db *db);
int sq_version_set_sigs(void *self, const char *name, const char *version, const uint8_t *sigs,
                        size_t len);
int sq_channel_set(void *self, const struct db_channel *c);
int sq_channel_list(void *self, const char *name, struct db_channel **out, size_t *n);
int sq_revoke_put(void *self, const char *key_id, const uint8_t *stmt, size_t len);
int sq_revoke_list(void *self, struct db_revocation **out, size_t *n);

/* db_sqlite_runs.c: notebook runs. */
int sq_runs_migrate(struct sqlite_db *db);
int sq_run_put(void *self, const struct db_run *r, int *kept);
int sq_run_list(void *self, const char *name, const char *id, size_t limit, struct db_run **out,
                size_t *n);
/* db_sqlite_series.c: metric time series, artifact names, events by seq. */
struct db_series_run;
struct db_series_row;
int sq_series_migrate(struct sqlite_db *db);
int sq_series_add(void *self, const char *host, const struct db_series_run *runs, size_t n,
                  int64_t now_ms);
int sq_series_query(void *self, const char *name, const char *host, const char *series, int res_s,
                    int64_t since_ms, size_t limit, struct db_series_row **out, size_t *n);
int sq_artifact_names(void *self, struct db_name **out, size_t *n);
int sq_events_after(void *self, uint64_t after_seq, size_t limit, struct db_event **out, size_t *n);

#endif
