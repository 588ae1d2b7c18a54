/* The audit log's append and query (audit.h). */
#include "audit.h"
#include "error.h"
#include "registry.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int audit_append(struct db *db, const char *key_id, const char *role, const char *what,
                 const char *detail)
{
    int rc = db_audit_append(db, key_id, role, what, detail);
    if (rc < 0)
        fprintf(stderr, "ferry-registry: audit entry '%s %s' not written: %s\n", what, detail,
                err_message(rc));
    return rc;
}

int audit_list(struct db *db, const Ferry__Wire__ListAudit *q, Ferry__Wire__Response *resp,
               struct audit_reply *out)
{
    memset(out, 0, sizeof *out);
    size_t limit = q->limit == 0 || q->limit > AUDIT_PAGE_MAX ? AUDIT_PAGE_MAX : q->limit;
    /* One more than asked tells whether another page follows. */
    int rc = db_audit_list(db, q->after_seq, limit + 1, &out->rows, &out->n);
    if (rc < 0)
        return rc;
    int more = out->n > limit;
    if (more)
        out->n = limit;
    ferry__wire__audit_list__init(&out->list);
    out->entries = calloc(out->n ? out->n : 1, sizeof *out->entries);
    out->ptrs = calloc(out->n ? out->n : 1, sizeof *out->ptrs);
    if (!out->entries || !out->ptrs)
        return -ENOMEM;
    for (size_t i = 0; i < out->n; i++) {
        struct audit_entry *e = &out->rows[i];
        Ferry__Wire__AuditEntry *w = &out->entries[i];
        ferry__wire__audit_entry__init(w);
        w->seq = e->seq;
        w->time_unix = e->time_unix;
        w->key_id = e->key_id;
        w->role = e->role;
        w->what = e->what;
        w->detail = e->detail;
        w->format = (uint32_t)e->format;
        w->prev_hash.data = e->prev_hash.b;
        w->prev_hash.len = DIGEST_LEN;
        w->hash.data = e->hash.b;
        w->hash.len = DIGEST_LEN;
        out->ptrs[i] = w;
    }
    out->list.entries = out->ptrs;
    out->list.n_entries = out->n;
    out->list.more = more;
    resp->body_case = FERRY__WIRE__RESPONSE__BODY_AUDIT;
    resp->audit = &out->list;
    return 0;
}

void audit_reply_free(struct audit_reply *a)
{
    free(a->rows);
    free(a->entries);
    free(a->ptrs);
    memset(a, 0, sizeof *a);
}
