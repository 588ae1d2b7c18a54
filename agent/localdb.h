/* The agent's local state in SQLite (WAL, synchronous=FULL): the verified
 * desired records it applied, and what it runs. With this an agent restarted
 * without a registry knows what should run, and re-adopts what does. */
#ifndef FERRY_AGENT_LOCALDB_H
#define FERRY_AGENT_LOCALDB_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

struct localdb {
    sqlite3 *h;
};

struct localdb_desired {
    char name[72];
    uint64_t issued_ms;
    uint8_t *signed_record; /* encoded SignedRecord, malloc'd */
    size_t len;
};

#define LOCALDB_PLUGIN_STATE_MAX 512 /* = FERRY_PLUGIN_STATE_MAX */

struct localdb_run {
    char name[72];
    char version[72];
    int pid;
    uint64_t proc_start; /* /proc/PID/stat starttime: tells a reused pid apart */
    int port;
    char state[16];
    char reason[256];
    uint32_t restarts;
    uint64_t since_ms;
    uint64_t issued_ms;  /* the deploy record this run belongs to */
    uint8_t digest[32];  /* the manifest that record pins */
    int has_digest;
    char plugin_state[LOCALDB_PLUGIN_STATE_MAX]; /* read by run_list; written only by run_state_put */
};

int localdb_open(struct localdb *db, const char *path);
void localdb_close(struct localdb *db);

int localdb_desired_put(struct localdb *db, const char *name, uint64_t issued_ms,
                        const uint8_t *rec, size_t len);
int localdb_desired_delete(struct localdb *db, const char *name);
int localdb_desired_list(struct localdb *db, struct localdb_desired **out, size_t *n);
void localdb_desired_list_free(struct localdb_desired *v, size_t n);
/* The newest issued_ms ever applied for name (0 when none): the rollback
 * guard. It survives undeploys. */
uint64_t localdb_applied(struct localdb *db, const char *name);
int localdb_set_applied(struct localdb *db, const char *name, uint64_t issued_ms);

/* The encoded signed record held for name; FERRY_E_NOTFOUND when none.
 * *rec is malloc'd. */
int localdb_desired_get(struct localdb *db, const char *name, uint8_t **rec, size_t *len);

/* Verified manifests (and their signature lists) by digest, so a tree can be
 * verified and materialized again without the registry. */
int localdb_manifest_put(struct localdb *db, const uint8_t digest[32], const uint8_t *m,
                         size_t mlen, const uint8_t *sigs, size_t slen);
/* FERRY_E_NOTFOUND when not held; *m and *sigs are malloc'd. */
int localdb_manifest_get(struct localdb *db, const uint8_t digest[32], uint8_t **m, size_t *mlen,
                         uint8_t **sigs, size_t *slen);
/* Forget manifests no run refers to any more. */
int localdb_manifest_prune(struct localdb *db);

int localdb_run_put(struct localdb *db, const struct localdb_run *r);
int localdb_run_delete(struct localdb *db, const char *name, const char *version);
int localdb_run_list(struct localdb *db, struct localdb_run **out, size_t *n);

/* The ABI-2 plugin's private text for a run (ferry_run.plugin_state),
 * kept in the runs row: localdb_run_put leaves it alone, so it lasts until
 * the run is deleted. put: FERRY_E_NOTFOUND when the run has no row,
 * FERRY_E_LIMIT for text of LOCALDB_PLUGIN_STATE_MAX bytes or more. get:
 * "" when never set, FERRY_E_NOTFOUND without a row. */
int localdb_run_state_put(struct localdb *db, const char *name, const char *version, const char *text);
int localdb_run_state_get(struct localdb *db, const char *name, const char *version, char *out, size_t cap);

#endif
