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
    int pending;         /* said hello, not enrolled (no report, no desired state) */
    uint8_t *plugins;    /* encoded PluginList from its last hello, malloc'd, may be NULL */
    size_t plugins_len;
};

struct db_deployment {
    char name[72];
    char selector[2048];
    int64_t issued_ms;
    uint8_t *signed_record; /* encoded SignedRecord, malloc'd */
    size_t signed_len;
};

/* An enrolled host, as the request checks need it. */
struct db_host_auth {
    uint8_t key[32];
    char labels[2048];
    char required_labels[2048]; /* from the join token that enrolled it */
    int64_t hello_ms, report_ms, poll_ms; /* newest send time seen, per kind */
    int64_t accepted_ms;                  /* send time of the accept that enrolled it */
};

/* FERRY_E_NOTFOUND (no detail) when name is not enrolled. */
int db_host_get(struct db *db, const char *name, struct db_host_auth *out);

enum db_touch { DB_TOUCH_HELLO, DB_TOUCH_REPORT, DB_TOUCH_POLL };
/* A verified signed request from an enrolled host: refresh its liveness and
 * the newest send time of that kind (hello: store labels; report: store the
 * snapshot). FERRY_E_INVALID, without detail, when name is not enrolled
 * with key or sent_ms is not newer than the newest of its kind. */
int db_host_touch(struct db *db, enum db_touch kind, const char *name, const uint8_t key[32],
                  int64_t sent_ms, int64_t now_ms, const char *labels, const uint8_t *report,
                  size_t report_len);
/* Enroll name with key (its pending entry goes). A name enrolled with
 * another key: FERRY_E_EXISTS, unless replace (*replaced = 1: the old key's
 * snapshot and replay marks go). accepted_ms is the operator accept's send
 * time (0 for a join token); one not newer than the accept recorded is
 * refused (replay). seen_ms: when the key last signed a request. */
int db_host_enroll(struct db *db, const char *name, const uint8_t key[32], const char *labels,
                   const char *required_labels, int64_t hello_ms, int64_t accepted_ms,
                   int64_t seen_ms, int replace, int *replaced);

/* Hellos from keys not enrolled, for operators to accept: at most
 * DB_PENDING_MAX, the least recently seen go first. */
#define DB_PENDING_MAX 256
struct db_pending {
    char name[72];
    uint8_t key[32];
    char labels[2048];
    int64_t first_seen_ms, last_seen_ms;
};
int db_pending_put(struct db *db, const char *name, const uint8_t key[32], const char *labels,
                   int64_t now_ms, int *is_new);
/* name's pending keys, most recently seen first. */
int db_pending_for(struct db *db, const char *name, struct db_pending **out, size_t *n);

/* A host's canonical labels; FERRY_E_NOTFOUND when not enrolled. */
int db_host_labels(struct db *db, const char *name, char *labels, size_t cap);
/* Enrolled hosts and pending requests, by name. */
int db_host_list(struct db *db, struct db_host **out, size_t *n);
void db_host_list_free(struct db_host *v, size_t n);

/* Replace the deployment of name for selector. FERRY_E_INVALID when a newer
 * record (issued_ms) is already stored: decisions never go backwards. */
int db_deployment_put(struct db *db, const char *name, const char *selector, int64_t issued_ms,
                      const uint8_t *signed_record, size_t len);
int db_deployment_list(struct db *db, struct db_deployment **out, size_t *n);
void db_deployment_list_free(struct db_deployment *v, size_t n);

/* Workload state changes reported by agents: the newest DB_EVENTS_PER_HOST
 * of each host (a host's changes never push out another's). */
#define DB_EVENTS_PER_HOST 1000
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

/* ---- deploy history and host plugins ---- */

/* Every decision stored for name (each db_deployment_put adds one, in the
 * same transaction), oldest first. Freed with db_deployment_list_free. */
int db_history_list(struct db *db, const char *name, struct db_deployment **out, size_t *n);
/* The encoded PluginList of an enrolled host's last hello. */
int db_host_set_plugins(struct db *db, const char *name, const uint8_t *plugins, size_t len);
/* Forget a host (enrolled, and its pending requests); FERRY_E_NOTFOUND (with
 * detail) when neither exists. */
int db_host_remove(struct db *db, const char *name);
/* The newest metrics each host reported per run (encoded WorkloadMetrics). */
struct db_metrics_row {
    char host[72], name[72], version[72];
    int64_t received_ms;
    uint32_t refused; /* samples the registry refused from that report */
    int64_t collected_ms; /* when the agent collected them */
    uint8_t *body;    /* malloc'd */
    size_t len;
};
/* host's rows become exactly rows (one transaction): runs it no longer
 * reports go. */
int db_metrics_replace(struct db *db, const char *host, const struct db_metrics_row *rows, size_t n);
/* 1 when host's stored rows are exactly rows' runs, collected at the same
 * times: a report resending what the registry has (heartbeats do, between
 * collections) then costs a read, not a write. */
int db_metrics_same(struct db *db, const char *host, const struct db_metrics_row *rows, size_t n);
/* Every host's rows for name, by host then version. */
int db_metrics_list(struct db *db, const char *name, struct db_metrics_row **out, size_t *n);
void db_metrics_free(struct db_metrics_row *v, size_t n);

/* Append to the hash-chained audit log. */
int db_audit(struct db *db, const char *actor, const char *action, const char *subject);

#endif
