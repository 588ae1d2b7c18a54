#include "queries.h"
#include "error.h"
#include "record.h"
#include "spec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const char *queries_action(const Ferry__DeployRecord *rec)
{
    return rec->undeploy ? "undeploy" : rec->rollback ? "rollback" : "deploy";
}

/* Turn the stored rows in q into the reply (without undeploys when
 * skip_undeploy). A row that no longer decodes
 * (it was verified when stored) is left out rather than failing the list. */
static int build(Ferry__Wire__Response *resp, struct queries_reply *q, int skip_undeploy)
{
    size_t n = q->n ? q->n : 1;
    q->records = calloc(n, sizeof *q->records);
    q->signed_records = calloc(n, sizeof *q->signed_records);
    q->entries = calloc(n, sizeof *q->entries);
    q->ptrs = calloc(n, sizeof *q->ptrs);
    if (!q->records || !q->signed_records || !q->entries || !q->ptrs)
        return -ENOMEM;
    ferry__wire__deployment_list__init(&q->list);
    for (size_t i = 0; i < q->n; i++) {
        Ferry__SignedRecord *sr = ferry__signed_record__unpack(NULL, q->rows[i].signed_len,
                                                               q->rows[i].signed_record);
        q->signed_records[i] = sr;
        if (!sr || record_decode(sr->record.data, sr->record.len, &q->records[i]) < 0)
            continue;
        const Ferry__DeployRecord *rec = q->records[i];
        if (skip_undeploy && rec->undeploy)
            continue; /* the current decision there is to run nothing */
        Ferry__Wire__DeploymentEntry *e = &q->entries[q->list.n_entries];
        ferry__wire__deployment_entry__init(e);
        e->action = (char *)queries_action(rec);
        e->name = rec->name;
        e->version = rec->version;
        e->selector = rec->selector;
        e->key_id = sr->signature && sr->signature->key_id ? sr->signature->key_id : "";
        e->issued_ms = rec->issued_ms;
        e->manifest_digest = rec->manifest_digest;
        q->ptrs[q->list.n_entries++] = e;
    }
    err_clear();
    q->list.entries = q->ptrs;
    resp->body_case = FERRY__WIRE__RESPONSE__BODY_DEPLOYMENTS;
    resp->deployments = &q->list;
    return 0;
}

int queries_list_deployments(struct db *db, Ferry__Wire__Response *resp,
                             struct queries_reply *out)
{
    int rc = db_deployment_list(db, &out->rows, &out->n);
    return rc < 0 ? rc : build(resp, out, 1);
}

int queries_list_history(struct db *db, const Ferry__Wire__ListHistory *lh,
                         Ferry__Wire__Response *resp, struct queries_reply *out)
{
    if (!lh->name || !spec_name_ok(lh->name))
        return err_set(FERRY_E_INVALID, "history: '%.80s' is not a valid workload name",
                       lh->name ? lh->name : "");
    int rc = db_history_list(db, lh->name, &out->rows, &out->n);
    return rc < 0 ? rc : build(resp, out, 0);
}

void queries_reply_free(struct queries_reply *q)
{
    for (size_t i = 0; i < q->n; i++) {
        if (q->records && q->records[i])
            record_free(q->records[i]);
        if (q->signed_records && q->signed_records[i])
            ferry__signed_record__free_unpacked(q->signed_records[i], NULL);
    }
    db_deployment_list_free(q->rows, q->n);
    free(q->records);
    free(q->signed_records);
    free(q->entries);
    free(q->ptrs);
    memset(q, 0, sizeof *q);
}
