/* Registry metadata: the one narrow interface the rest of the registry
 * sees. The db_* functions below call through a table of operations
 * (struct db_ops, at the end) so another store can sit behind them without
 * touching the handlers; SQLite (db_sqlite.c) is the first. Every call is
 * thread-safe and atomic (docs/architecture.md, "Metadata store"). */
#ifndef FERRY_REGISTRY_DB_H
#define FERRY_REGISTRY_DB_H

#include "auditchain.h"
#include "hash.h"

#include <stddef.h>
#include <stdint.h>

struct db_ops;

/* An open metadata store: its operations and their private state. */
struct db {
    const struct db_ops *ops;
    void *impl;
};

struct db_version {
    char version[72];
    struct digest manifest_digest;
    char publisher[24];
    int64_t published_unix;
    char kind[16];
};

/* Opens the default (SQLite) store at path. */
int db_open(struct db *db, const char *path);
/* A second, read-only connection to the default store at path (opened by
 * db_open first), for readers on other threads: the HTTP side's handlers
 * (registry/http.c) read through their own, never through the registry's. */
int db_open_reader(struct db *db, const char *path);
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
/* A host's poll marks as the registry keeps them in memory (liveness.c). */
struct db_poll_mark {
    char name[72];
    uint8_t key[32];
    int64_t poll_ms, seen_ms; /* newest poll's send time; when it was seen */
};
/* Write marks in one transaction: each host's poll mark and last seen only
 * move forward, and only while it is enrolled with that key. */
int db_host_polls_save(struct db *db, const struct db_poll_mark *m, size_t n);
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
    uint64_t seq;    /* its place in the log (db_events_after only) */
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
/* Every host's rows for name, by host then version; name NULL: every
 * row, by host, name and version. */
int db_metrics_list(struct db *db, const char *name, struct db_metrics_row **out, size_t *n);
void db_metrics_free(struct db_metrics_row *v, size_t n);

/* ---- audit log and desired-state envelopes (registry/audit.h) ---- */

/* Append one entry to the hash-chained audit log (auditchain.h), in one
 * transaction with reading the chain's head. */
int db_audit_append(struct db *db, const char *key_id, const char *role, const char *what,
                    const char *detail);
/* At most limit entries with seq > after_seq, oldest first; *out malloc'd. */
int db_audit_list(struct db *db, uint64_t after_seq, size_t limit, struct audit_entry **out,
                  size_t *n);
/* The newest entry whose what is what; FERRY_E_NOTFOUND when there is none. */
int db_audit_last(struct db *db, const char *what, struct audit_entry *out);
/* The envelope a host's desired state goes out in (registry/envelope.c). */
struct db_envelope {
    uint64_t version;            /* per host; only grows, across restarts */
    int64_t issued_ms, expires_ms;
};
/* host's current envelope for the record set whose digest is content: the
 * stored one while content is the same and less than half of ttl_ms has
 * passed since it was issued (so agents get a fresh one well before it
 * runs out); otherwise a new one, version + 1 (or now_ms when that is
 * more), issued now, expiring at now + ttl_ms, stored. Rows outlive host removal: a host that comes back
 * keeps counting from where its agent is. */
int db_envelope_current(struct db *db, const char *host, const struct digest *content,
                        int64_t now_ms, int64_t ttl_ms, struct db_envelope *out);

/* ---- governance: approvals, channels, revocations (registry/gov.c) ---- */

/* Replace name@version's signature list (approvals are added to it);
 * FERRY_E_NOTFOUND when absent. */
int db_version_set_sigs(struct db *db, const char *name, const char *version,
                        const uint8_t *sigs, size_t len);
struct db_channel {
    char name[72], channel[72], version[72];
    struct digest digest;
    int64_t set_ms;      /* the promote's send time */
    char key_id[24];     /* the operator key that promoted */
};
/* Point channel of name at version. FERRY_E_INVALID when the stored
 * pointer was set by a request not older than set_ms (a replay). */
int db_channel_set(struct db *db, const struct db_channel *c);
/* name's channels (name NULL: every name's), by name then channel. */
int db_channel_list(struct db *db, const char *name, struct db_channel **out, size_t *n);
/* A signed revocation (encoded SignedGov) of key_id; the first is kept. */
int db_revoke_put(struct db *db, const char *key_id, const uint8_t *stmt, size_t len);
struct db_revocation {
    char key_id[24];
    uint8_t *stmt; /* malloc'd */
    size_t len;
};
int db_revoke_list(struct db *db, struct db_revocation **out, size_t *n);
void db_revoke_list_free(struct db_revocation *v, size_t n);

/* ---- notebook runs (registry/runs.c) ---- */

struct db_run {
    char id[24], name[72], version[72], host[72], status[16];
    int64_t started_ms, duration_ms, updated_ms;
    char error[1025], note[257];
    int has_notebook;
    struct digest notebook;
    uint64_t notebook_size;
};
/* Record what host reported of run r->id. A run belongs to the host that
 * first reported it (FERRY_E_EXISTS, without detail, for another host's
 * report); once succeeded or failed it no longer changes (*kept set, 0). */
int db_run_put(struct db *db, const struct db_run *r, int *kept);
/* Runs of name, newest start first, at most limit; or (name NULL) the run
 * called id (FERRY_E_NOTFOUND, without detail, when unknown). */
int db_run_list(struct db *db, const char *name, const char *id, size_t limit,
                struct db_run **out, size_t *n);
/* ---- the HTTP side's reads and metric series (registry/http_api.c, mseries.h) ---- */

struct db_name {
    char name[72];
};
/* Every artifact name, sorted; *out malloc'd. */
int db_artifact_names(struct db *db, struct db_name **out, size_t *n);
/* At most limit events with seq > after_seq (UINT64_MAX: the newest
 * limit), oldest first, seq set. */
int db_events_after(struct db *db, uint64_t after_seq, size_t limit, struct db_event **out,
                    size_t *n);
struct db_series_run;
struct db_series_row;
/* A report's runs into every tier's buckets (mseries.h), one transaction;
 * a run not newer than the one stored for host adds nothing; buckets past
 * a tier's age are deleted. */
int db_series_add(struct db *db, const char *host, const struct db_series_run *runs, size_t n,
                  int64_t now_ms);
/* name's buckets of the res_s tier from since_ms on (host, series NULL:
 * all), by host, version, series, time; at most limit; *out malloc'd. */
int db_series_query(struct db *db, const char *name, const char *host, const char *series,
                    int res_s, int64_t since_ms, size_t limit, struct db_series_row **out,
                    size_t *n);

/* ---- stores --------------------------------------------------------------- */

/* One metadata store implementation. Every operation is required: each
 * mirrors the db_* function of the same name (without the db argument,
 * with the store's own state as self) and keeps its contract, including
 * that one call is one transaction. */
struct db_ops {
    const char *name; /* "sqlite", "postgres", ...: chosen by db_open_store */
    int (*open)(const char *location, void **self);
    int (*open_reader)(const char *location, void **self); /* read-only, no migration */
    void (*close)(void *self);
    int (*add_version)(void *self, const char *name, const char *version, const char *kind,
                       const struct digest *manifest_digest, const char *publisher,
                       const uint8_t *sigs, size_t sigs_len, int *already);
    int (*get_version)(void *self, const char *name, const char *version,
                       struct digest *digest, uint8_t **sigs, size_t *sigs_len);
    int (*list_versions)(void *self, const char *name, struct db_version **out, size_t *n);
    int (*host_get)(void *self, const char *name, struct db_host_auth *out);
    int (*host_touch)(void *self, enum db_touch kind, const char *name, const uint8_t key[32],
                      int64_t sent_ms, int64_t now_ms, const char *labels,
                      const uint8_t *report, size_t report_len);
    int (*host_enroll)(void *self, const char *name, const uint8_t key[32], const char *labels,
                       const char *required_labels, int64_t hello_ms, int64_t accepted_ms,
                       int64_t seen_ms, int replace, int *replaced);
    int (*pending_put)(void *self, const char *name, const uint8_t key[32], const char *labels,
                       int64_t now_ms, int *is_new);
    int (*pending_for)(void *self, const char *name, struct db_pending **out, size_t *n);
    int (*host_labels)(void *self, const char *name, char *labels, size_t cap);
    int (*host_list)(void *self, struct db_host **out, size_t *n);
    int (*deployment_put)(void *self, const char *name, const char *selector,
                          int64_t issued_ms, const uint8_t *signed_record, size_t len);
    int (*deployment_list)(void *self, struct db_deployment **out, size_t *n);
    int (*events_add)(void *self, const char *host, const uint8_t *const *changes,
                      const size_t *lens, size_t n);
    int (*events_list)(void *self, const char *host, size_t limit, struct db_event **out,
                       size_t *n);
    int (*history_list)(void *self, const char *name, struct db_deployment **out, size_t *n);
    int (*host_set_plugins)(void *self, const char *name, const uint8_t *plugins, size_t len);
    int (*host_remove)(void *self, const char *name);
    int (*metrics_replace)(void *self, const char *host, const struct db_metrics_row *rows,
                           size_t n);
    int (*metrics_same)(void *self, const char *host, const struct db_metrics_row *rows,
                        size_t n);
    int (*metrics_list)(void *self, const char *name, struct db_metrics_row **out, size_t *n);
    int (*host_polls_save)(void *self, const struct db_poll_mark *m, size_t n);
    /* audit log and envelopes */
    int (*audit_append)(void *self, const char *key_id, const char *role, const char *what,
                        const char *detail);
    int (*audit_list)(void *self, uint64_t after_seq, size_t limit, struct audit_entry **out,
                      size_t *n);
    int (*envelope_current)(void *self, const char *host, const struct digest *content,
                            int64_t now_ms, int64_t ttl_ms, struct db_envelope *out);
    /* governance (db_sqlite_policy.c) */
    int (*version_set_sigs)(void *self, const char *name, const char *version,
                            const uint8_t *sigs, size_t len);
    int (*channel_set)(void *self, const struct db_channel *c);
    int (*channel_list)(void *self, const char *name, struct db_channel **out, size_t *n);
    int (*revoke_put)(void *self, const char *key_id, const uint8_t *stmt, size_t len);
    int (*revoke_list)(void *self, struct db_revocation **out, size_t *n);
    /* notebook runs (db_sqlite_runs.c) */
    int (*run_put)(void *self, const struct db_run *r, int *kept);
    int (*run_list)(void *self, const char *name, const char *id, size_t limit,
                    struct db_run **out, size_t *n);
    /* the HTTP side's reads and metric series (db_sqlite_series.c) */
    int (*series_add)(void *self, const char *host, const struct db_series_run *runs, size_t n,
                      int64_t now_ms);
    int (*series_query)(void *self, const char *name, const char *host, const char *series,
                        int res_s, int64_t since_ms, size_t limit, struct db_series_row **out,
                        size_t *n);
    int (*artifact_names)(void *self, struct db_name **out, size_t *n);
    int (*events_after)(void *self, uint64_t after_seq, size_t limit, struct db_event **out,
                        size_t *n);
    int (*audit_last)(void *self, const char *what, struct audit_entry *out);
};

/* The SQLite store, registered from the start. */
extern const struct db_ops db_sqlite_ops;

/* FERRY_E_INVALID (the detail names the first missing operation) unless
 * ops has a name and every operation. */
int db_ops_check(const struct db_ops *ops);
/* Makes ops available to db_open_store under ops->name. An incomplete
 * table is refused (db_ops_check), as is a name already registered
 * (FERRY_E_EXISTS) or a full table of stores (FERRY_E_LIMIT). The table
 * must outlive every store opened with it. */
int db_register(const struct db_ops *ops);
/* Opens the registered store called store at location (a path for SQLite,
 * a connection string for a server). FERRY_E_NOTFOUND for an unknown name. */
int db_open_store(struct db *db, const char *store, const char *location);

#endif
