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

/* Append to the hash-chained audit log. */
int db_audit(struct db *db, const char *actor, const char *action, const char *subject);

#endif
