/* Read-only queries about deployments: the current ones and each name's
 * history (every signed deploy, undeploy and rollback, oldest first). What
 * they show is read from the stored signed records, never from a field a
 * client merely claimed. */
#ifndef FERRY_REGISTRY_QUERIES_H
#define FERRY_REGISTRY_QUERIES_H

#include "db.h"
#include "manifest.pb-c.h"
#include "wire.pb-c.h"

/* What a DeploymentList reply points into; free with queries_reply_free. */
struct queries_reply {
    struct db_deployment *rows;
    size_t n;
    Ferry__DeployRecord **records;
    Ferry__SignedRecord **signed_records;
    Ferry__Wire__DeploymentEntry *entries;
    Ferry__Wire__DeploymentEntry **ptrs;
    Ferry__Wire__DeploymentList list;
};

int queries_list_deployments(struct db *db, Ferry__Wire__Response *resp,
                             struct queries_reply *out);
int queries_list_history(struct db *db, const Ferry__Wire__ListHistory *lh,
                         Ferry__Wire__Response *resp, struct queries_reply *out);
void queries_reply_free(struct queries_reply *q);

/* "deploy", "undeploy" or "rollback", from the signed record. */
const char *queries_action(const Ferry__DeployRecord *rec);

#endif
