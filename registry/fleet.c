#include "fleet.h"
#include "error.h"
#include "hash.h"
#include "record.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void desired_free(struct desired *d)
{
    for (size_t i = 0; i < d->n; i++) {
        signed_record_free(d->signed_records[i]);
        record_free(d->records[i]);
    }
    free(d->signed_records);
    free(d->records);
    memset(d, 0, sizeof *d);
}

int fleet_desired_for(struct db *db, const struct label_set *host_labels, struct desired *out)
{
    struct db_deployment *deps = NULL;
    size_t ndeps = 0;
    int rc = db_deployment_list(db, &deps, &ndeps);
    if (rc < 0)
        return rc;
    struct desired d = {0};
    d.signed_records = calloc(ndeps ? ndeps : 1, sizeof *d.signed_records);
    d.records = calloc(ndeps ? ndeps : 1, sizeof *d.records);
    if (!d.signed_records || !d.records) {
        desired_free(&d);
        db_deployment_list_free(deps, ndeps);
        return -ENOMEM;
    }
    for (size_t i = 0; i < ndeps; i++) {
        struct label_set sel;
        if (labels_parse(deps[i].selector, &sel) < 0 || !selector_matches(&sel, host_labels))
            continue;
        Ferry__SignedRecord *sr =
            ferry__signed_record__unpack(NULL, deps[i].signed_len, deps[i].signed_record);
        Ferry__DeployRecord *r = NULL;
        if (!sr || record_decode(sr->record.data, sr->record.len, &r) < 0) {
            signed_record_free(sr);
            continue; /* verified on the way in; unreadable now means corrupt: skip */
        }
        size_t j = 0;
        while (j < d.n && strcmp(d.records[j]->name, r->name) != 0)
            j++;
        if (j < d.n && d.records[j]->issued_ms >= r->issued_ms) {
            signed_record_free(sr);
            record_free(r);
            continue;
        }
        if (j < d.n) {
            signed_record_free(d.signed_records[j]);
            record_free(d.records[j]);
        } else {
            d.n++;
        }
        d.signed_records[j] = sr;
        d.records[j] = r;
    }
    db_deployment_list_free(deps, ndeps);

    /* The serial is a digest of the chosen records (deployments come back
     * ordered by name), so it is stable across registry restarts and
     * changes exactly when the host's desired state does. */
    struct hasher h;
    struct digest dg;
    hasher_init(&h);
    hasher_update(&h, "ferry-desired-v1", 16);
    for (size_t i = 0; i < d.n; i++)
        hasher_update(&h, d.signed_records[i]->record.data, d.signed_records[i]->record.len);
    hasher_final(&h, &dg);
    memcpy(&d.serial, dg.b, sizeof d.serial);
    if (d.serial == 0)
        d.serial = 1;
    *out = d;
    return 0;
}
