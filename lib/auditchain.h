/* The audit log's hash chain, shared by the registry (which appends) and
 * the CLI (which verifies what the registry hands out): each entry's hash
 * covers the previous entry's hash and the entry's canonical encoding, so
 * editing, reordering or deleting a row breaks the chain at that row. */
#ifndef FERRY_LIB_AUDITCHAIN_H
#define FERRY_LIB_AUDITCHAIN_H

#include "hash.h"

#include <stddef.h>
#include <stdint.h>

/* Entries written before roles were recorded hashed "time\nactor\naction\n
 * subject\n" (format 1); every new entry is format 2. */
#define AUDIT_FORMAT 2

struct audit_entry {
    uint64_t seq;          /* 1, 2, 3, ... in append order */
    int64_t time_unix;     /* seconds */
    int format;            /* 1 or AUDIT_FORMAT */
    char key_id[72];       /* the key that asked for the change (or a host key id) */
    char role[32];         /* the role it acted in */
    char what[32];         /* publish, deploy, undeploy, rollback, accept-host, ... */
    char detail[2304];     /* what it was about: name@version to selector, a host */
    struct digest prev_hash, hash;
};

/* The hash e should carry after prev (e->hash is not read). */
void audit_entry_hash(const struct audit_entry *e, const struct digest *prev, struct digest *out);

/* Walks a chain one entry at a time, from the first entry on. */
struct audit_cursor {
    struct digest prev; /* the hash the next entry must name as its prev_hash */
    uint64_t next_seq;  /* the seq it must carry */
    uint64_t checked;
};
void audit_cursor_init(struct audit_cursor *c);
/* 0 when e continues the chain (the cursor moves on), else FERRY_E_DIGEST
 * with why naming the entry and what does not match. */
int audit_cursor_step(struct audit_cursor *c, const struct audit_entry *e, char *why,
                      size_t cap);

#endif
