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
    for (size_t i = 0; i < d->n_pins; i++)
        ferry__wire__channel_pin__free_unpacked(d->pins[i], NULL);
    free(d->pins);
    memset(d, 0, sizeof *d);
}

/* The pointer of each channel a chosen record follows. */
static int add_pins(struct db *db, struct desired *d)
{
    for (size_t i = 0; i < d->n; i++) {
        const Ferry__DeployRecord *r = d->records[i];
        if (r->undeploy || !r->channel || !r->channel[0])
            continue;
        struct db_channel *v = NULL;
        size_t n = 0;
        int rc = db_channel_list(db, r->name, &v, &n);
        if (rc < 0)
            return rc;
        for (size_t j = 0; j < n; j++) {
            if (strcmp(v[j].channel, r->channel) != 0)
                continue;
            Ferry__Wire__ChannelPin **np = realloc(d->pins, (d->n_pins + 1) * sizeof *np);
            Ferry__Wire__ChannelPin *p = malloc(sizeof *p);
            uint8_t *dg = malloc(DIGEST_LEN);
            if (np)
                d->pins = np;
            if (!np || !p || !dg) {
                free(p), free(dg), free(v);
                return -ENOMEM;
            }
            ferry__wire__channel_pin__init(p);
            p->name = strdup(v[j].name);
            p->channel = strdup(v[j].channel);
            p->version = strdup(v[j].version);
            memcpy(dg, v[j].digest.b, DIGEST_LEN);
            p->manifest_digest = (ProtobufCBinaryData){DIGEST_LEN, dg};
            p->promoted_ms = (uint64_t)v[j].set_ms;
            d->pins[d->n_pins++] = p;
            if (!p->name || !p->channel || !p->version) {
                free(v);
                return -ENOMEM;
            }
        }
        free(v);
    }
    return 0;
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
    if ((rc = add_pins(db, &d)) < 0) {
        desired_free(&d);
        return rc;
    }

    /* The serial is a digest of the chosen records (deployments come back
     * ordered by name), so it is stable across registry restarts and
     * changes exactly when the host's desired state does. */
    struct hasher h;
    struct digest dg;
    hasher_init(&h);
    hasher_update(&h, "ferry-desired-v1", 16);
    for (size_t i = 0; i < d.n; i++)
        hasher_update(&h, d.signed_records[i]->record.data, d.signed_records[i]->record.len);
    /* A promotion changes what a following host runs: it changes the serial. */
    for (size_t i = 0; i < d.n_pins; i++) {
        const Ferry__Wire__ChannelPin *p = d.pins[i];
        hasher_update(&h, p->name, strlen(p->name) + 1);
        hasher_update(&h, p->channel, strlen(p->channel) + 1);
        hasher_update(&h, p->version, strlen(p->version) + 1);
        hasher_update(&h, p->manifest_digest.data, p->manifest_digest.len);
    }
    hasher_final(&h, &dg);
    memcpy(&d.serial, dg.b, sizeof d.serial);
    if (d.serial == 0)
        d.serial = 1;
    *out = d;
    return 0;
}
