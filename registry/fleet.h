/* Desired state: which signed deploy record wins for each workload on a
 * host, computed from the deployments table and the host's labels. */
#ifndef FERRY_REGISTRY_FLEET_H
#define FERRY_REGISTRY_FLEET_H

#include "db.h"
#include "manifest.pb-c.h"
#include "selector.h"
#include "wire.pb-c.h"

struct desired {
    uint64_t serial;               /* changes whenever the chosen records change */
    size_t n;
    Ferry__SignedRecord **signed_records; /* unpacked, owned */
    Ferry__DeployRecord **records;        /* decoded, owned, parallel */
    /* Governance: where the channels that records follow point (owned). */
    size_t n_pins;
    Ferry__Wire__ChannelPin **pins;
};

/* For a host with these labels: per name, the newest matching record
 * (undeploys included, so agents see the signed decision to stop). */
int fleet_desired_for(struct db *db, const struct label_set *host_labels, struct desired *out);
void desired_free(struct desired *d);

#endif
