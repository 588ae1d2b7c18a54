/* The registry's audit log: one append-only, hash-chained entry for every
 * change the registry makes (publish, approve, promote, deploy, undeploy,
 * rollback, revoke, host accept/enroll/removal, policy change), and the
 * ListAudit query that `ferry audit` reads it with. The chain's encoding is
 * lib/auditchain.h; docs/governance.md, "Audit log". */
#ifndef FERRY_REGISTRY_AUDIT_H
#define FERRY_REGISTRY_AUDIT_H

#include "db.h"
#include "wire.pb-c.h"

/* Roles as entries name them (the policy's role names; "host" for a host
 * key enrolling itself with a join token). Without a policy, the role an
 * entry names is the one its action needs. */
#define AUDIT_ROLE_ADMIN "admin"
#define AUDIT_ROLE_PUBLISHER "publisher"
#define AUDIT_ROLE_APPROVER "approver"
#define AUDIT_ROLE_PRIVACY "privacy"
#define AUDIT_ROLE_OPERATOR "operator"
#define AUDIT_ROLE_HOST "host"

/* Append one entry: key_id (the signer), role, what (a verb: "publish",
 * "deploy", "approve", ...), detail (its object: "iris@1.2.0 to env=prod").
 * Called after the change is stored; a failed append is logged and
 * returned, and the change stands. */
int audit_append(struct db *db, const char *key_id, const char *role, const char *what,
                 const char *detail);

/* Entries per ListAudit answer at most (the CLI pages through the rest). */
#define AUDIT_PAGE_MAX 1000

/* What one AuditList reply points into; free with audit_reply_free. */
struct audit_reply {
    struct audit_entry *rows;
    size_t n;
    Ferry__Wire__AuditEntry *entries;
    Ferry__Wire__AuditEntry **ptrs;
    Ferry__Wire__AuditList list;
};
int audit_list(struct db *db, const Ferry__Wire__ListAudit *q, Ferry__Wire__Response *resp,
               struct audit_reply *out);
void audit_reply_free(struct audit_reply *a);

#endif
