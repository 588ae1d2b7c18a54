/* Poll liveness and poll replay marks, kept exact in memory and written to
 * the database lazily. A host may poll as often as it likes (an enrolled
 * host that turns hostile sends thousands), and a database write per poll
 * (SQLite with synchronous=FULL: an fsync under the one database lock every
 * request needs) would let it slow everyone down. So a signed, fresh poll
 * only moves two numbers here, under this table's own lock; a flusher
 * thread writes the ones that moved, for every host in one transaction, at
 * most once a second, and once more at stop. docs/security.md
 * ("Enrollment", liveness and replay) says what survives a restart. */
#ifndef FERRY_REGISTRY_LIVENESS_H
#define FERRY_REGISTRY_LIVENESS_H

#include "db.h"

#include <pthread.h>
#include <stdint.h>

/* How often moved marks are written to the database. */
#define LIVENESS_FLUSH_MS 1000
#define LIVENESS_BUCKETS 256

struct liveness_entry;

struct liveness {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct liveness_entry *buckets[LIVENESS_BUCKETS];
    struct db *db;
    pthread_t flusher;
    int started, stopping;
};

/* Start the flusher writing into db. */
int liveness_start(struct liveness *lv, struct db *db);
/* Stop the flusher, write what moved, free the table. */
void liveness_stop(struct liveness *lv);

/* A poll from host whose signature by key the caller verified, sent at
 * sent_ms. db_poll_ms is the newest poll send time the database holds for
 * host (with this key). 0 when sent_ms is strictly newer than every poll
 * seen from host with key: its mark moves to sent_ms and it was last seen
 * at now_ms. FERRY_E_INVALID (no detail) when it is not: a replay. */
int liveness_poll(struct liveness *lv, const char *host, const uint8_t key[32],
                  int64_t db_poll_ms, int64_t sent_ms, int64_t now_ms);

/* Raise the last_seen_ms of enrolled hosts in v (as db_host_list gives them)
 * to the time their newest poll was seen, when that is later. */
void liveness_overlay(struct liveness *lv, struct db_host *v, size_t n);

/* Forget host (removed, or enrolled with another key): its next poll starts
 * from the database's marks. Called after the database changed. */
void liveness_forget(struct liveness *lv, const char *host);

/* Write every mark that moved since the last write; 0 or a database error. */
int liveness_flush(struct liveness *lv);

#endif
