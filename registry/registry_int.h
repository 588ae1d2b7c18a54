/* What the registry's request handlers share: the engine's state, the
 * per-request scratch a response points into, and the poll parking
 * contract with the transport (server.c). Internal to registry/. */
#ifndef FERRY_REGISTRY_REGISTRY_INT_H
#define FERRY_REGISTRY_REGISTRY_INT_H

#include "actions.h"
#include "audit.h"
#include "db.h"
#include "fleet.h"
#include "gov.h"
#include "hosts.h"
#include "http_prom.h"
#include "key.h"
#include "liveness.h"
#include "queries.h"
#include "reqstats.h"
#include "rmetrics.h"
#include "runs.h"
#include "selector.h"
#include "server.h"
#include "store.h"
#include "wire.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

struct pending; /* an accepted publish awaiting its blobs (publish.c) */

struct http_server;

struct registry {
    struct server *server;
    struct http_server *http; /* the HTTP side (http.h), NULL when off */
    const struct trust *trust;
    struct store store;
    struct db db;
    struct liveness live; /* poll marks, in memory (liveness.h) */
    pthread_mutex_t pending_lock;
    struct pending *pending;
    size_t n_pending;
    struct actions *actions;  /* requests to workloads, per host (actions.c) */
    struct regpolicy *gov;    /* the signed policy (gov.c), NULL without --policy */
    int host_ttl_ms;
    struct key_secret self_key; /* DATA/registry.key: signs desired-state envelopes */
    int64_t desired_ttl_ms;
    uint64_t max_blob_size;
    _Atomic uint64_t requests, bad_requests, blobs_received, blob_bytes_received,
        chunks_served, publishes, publishes_refused;
    struct reqstats reqstats; /* requests by type and outcome, for /metrics */
    struct prom_state prom;   /* /metrics: the cached rendering (http_prom.c) */
};

/* Memory a response points into, freed after the response is packed. */
struct scratch {
    void *ptrs[8];
    int n;
    Ferry__SignatureList *sigs;
    struct db_version *versions;
    struct actions_batch batch; /* actions handed out with a poll answer */
    Ferry__Wire__SignedEnvelope *envelope; /* the desired state's (envelope.h) */
};

static inline void *keep(struct scratch *s, void *p)
{
    if (p && s->n < 8)
        s->ptrs[s->n++] = p;
    return p;
}

/* Everything one ListEvents reply points into. */
struct events_scratch {
    struct db_event *rows;
    size_t n;
    Ferry__Wire__Event *ev;
    Ferry__Wire__Event **ptrs;
    Ferry__Wire__WorkloadReport **changes;
};

/* Everything one ListHosts reply points into. */
struct hosts_scratch {
    struct db_host *hosts;
    size_t n;
    Ferry__Wire__HostInfo *infos;
    Ferry__Wire__HostInfo **ptrs;
    Ferry__Wire__ReportBody **bodies;
    Ferry__Wire__PluginList **plugins;
    Ferry__Wire__Label *labels;
    Ferry__Wire__Label **label_ptrs;
    Ferry__Wire__DesiredEntry *desired;
    Ferry__Wire__DesiredEntry **desired_ptrs;
    struct desired *des;
    struct label_set *sets;
    char (*key_ids)[KEY_ID_LEN + 1];
};

/* Returned by dispatch when a poll should wait instead of being answered. */
#define PARK 1

struct request_scratch {
    struct scratch s;
    struct hosts_scratch hosts;
    struct events_scratch events;
    struct desired desired;
    struct hosts_accept_reply accept;
    struct queries_reply queries;
    struct actions_scratch action;
    struct rmetrics_scratch metrics;
    struct audit_reply audit;
    struct gov_scratch gov;
    struct runs_scratch runs; /* runs.c */
};

/* Free what a request's handler left in the scratch (query_handlers.c). */
void events_scratch_free(struct events_scratch *e);
void hosts_scratch_free(struct hosts_scratch *h);

/* The desired-state response for host, pointing into *d (fleet_handlers.c);
 * also what a parked poll is answered with. */
int fleet_desired_response(struct registry *r, const char *host, struct desired *d,
                           Ferry__Wire__Response *resp, struct scratch *s);

/* Signs d as host's desired-state envelope into ds (desired_env.c); the
 * envelope is kept in s. d->serial then also moves with the envelope's
 * version, so a refreshed envelope reaches a waiting poll. */
int desired_envelope_attach(struct registry *r, const char *host, struct desired *d,
                            Ferry__Wire__DesiredState *ds, struct scratch *s);
/* DATA/registry.key, created with DATA/registry.pub on first start. */
int registry_key_load(const char *data_dir, struct key_secret *out, int *created);

/* Drops every accepted publish still waiting for blobs (publish.c). */
void publish_pending_clear(struct registry *r);

#endif
