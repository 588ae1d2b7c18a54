/* Registry metadata in SQLite (WAL, synchronous=FULL). This is the one
 * narrow interface the rest of the registry sees, so another store can sit
 * behind it later. Thread-safe: calls are serialized on one connection. */
#ifndef FERRY_REGISTRY_DB_H
#define FERRY_REGISTRY_DB_H

#include "hash.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>

struct db {
    sqlite3 *h;
    pthread_mutex_t lock;
};

struct db_version {
    char version[72];
    struct digest manifest_digest;
    char publisher[24];
    int64_t published_unix;
    char kind[16];
};

int db_open(struct db *db, const char *path);
void db_close(struct db *db);

/* Record name@version. FERRY_E_EXISTS (detail names it) when the version is
 * taken by other content; *already = 1 when it is taken by this content. */
int db_add_version(struct db *db, const char *name, const char *version, const char *kind,
                   const struct digest *manifest_digest, const char *publisher,
                   const uint8_t *sigs, size_t sigs_len, int *already);

/* FERRY_E_NOTFOUND when absent. *sigs is malloc'd. */
int db_get_version(struct db *db, const char *name, const char *version, struct digest *digest,
                   uint8_t **sigs, size_t *sigs_len);

/* All versions of name, oldest first; *out is malloc'd. */
int db_list_versions(struct db *db, const char *name, struct db_version **out, size_t *n);

struct db_host {
    char name[72];
    uint8_t key[32];
    char labels[2048];   /* canonical "k=v,k=v" */
    int64_t last_seen_ms;
    uint8_t *report;     /* encoded ReportBody, malloc'd, may be NULL */
    size_t report_len;
};

struct db_deployment {
    char name[72];
    char selector[2048];
    int64_t issued_ms;
    uint8_t *signed_record; /* encoded SignedRecord, malloc'd */
    size_t signed_len;
};

/* Register or refresh a host. FERRY_E_EXISTS when the name is held by
 * another host key. */
int db_host_register(struct db *db, const char *name, const uint8_t key[32], const char *labels,
                     int64_t now_ms);
/* The key a host registered with; FERRY_E_NOTFOUND when unknown. */
int db_host_key(struct db *db, const char *name, uint8_t key[32]);
int db_host_seen(struct db *db, const char *name, int64_t now_ms);
/* A host's canonical labels; FERRY_E_NOTFOUND when unknown. */
int db_host_labels(struct db *db, const char *name, char *labels, size_t cap);
int db_host_report(struct db *db, const char *name, const uint8_t *report, size_t len,
                   int64_t now_ms);
int db_host_list(struct db *db, struct db_host **out, size_t *n);
void db_host_list_free(struct db_host *v, size_t n);

/* Replace the deployment of name for selector. FERRY_E_INVALID when a newer
 * record (issued_ms) is already stored: decisions never go backwards. */
int db_deployment_put(struct db *db, const char *name, const char *selector, int64_t issued_ms,
                      const uint8_t *signed_record, size_t len);
int db_deployment_list(struct db *db, struct db_deployment **out, size_t *n);
void db_deployment_list_free(struct db_deployment *v, size_t n);

/* Workload state changes reported by agents (the newest EVENTS_KEPT). */
#define DB_EVENTS_KEPT 10000
struct db_event {
    char host[72];
    uint8_t *change; /* encoded WorkloadReport, malloc'd */
    size_t len;
};
int db_events_add(struct db *db, const char *host, const uint8_t *const *changes,
                  const size_t *lens, size_t n);
/* Newest last; host NULL for all. */
int db_events_list(struct db *db, const char *host, size_t limit, struct db_event **out,
                   size_t *n);
void db_events_free(struct db_event *v, size_t n);

/* Append to the hash-chained audit log. */
int db_audit(struct db *db, const char *actor, const char *action, const char *subject);

#endif
