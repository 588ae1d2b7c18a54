/* ferry-registry's engine: an nng REP server over a metadata store and a
 * blob store. main.c only parses arguments and waits for a signal; tests can
 * start and stop the engine in-process. */
#ifndef FERRY_REGISTRY_REGISTRY_H
#define FERRY_REGISTRY_REGISTRY_H

#include "key.h"

#include <stddef.h>
#include <stdint.h>

#define REGISTRY_DEFAULT_WORKERS 8
#define REGISTRY_DEFAULT_HOST_TTL_MS 15000
#define REGISTRY_DEFAULT_DESIRED_TTL_MS (24LL * 3600 * 1000)

struct registry_config {
    const char *data_dir;
    const char *listen_url;      /* port 0 picks a free port */
    const struct trust *trust;   /* keys that may publish */
    int workers;
    int host_ttl_ms;             /* a host unheard of this long is offline */
    const char *tls_cert_key;    /* PEM with certificate and key, for tls+tcp:// */
    uint64_t max_blob_size;      /* largest blob a publish may claim; 0: 64 GiB */
    int max_conns;               /* connections in total; 0: default (server.h) */
    int max_conns_per_peer;      /* connections from one address; 0: default */
    int idle_timeout_ms;         /* a connection silent this long is closed; 0: default */
    int64_t desired_ttl_ms;      /* a desired-state envelope's lifetime; 0: 24 h */
    const char *policy_path;     /* --policy FILE (FILE.sig beside it), or NULL */
    const struct trust *admin_anchors; /* --trust-admin; NULL: trust anchors the policy */
    const char *http_listen;     /* --http ADDR:PORT; NULL or "off": no HTTP side (registry/http.h) */
    const char *http_token_file; /* --http-token FILE; required off loopback */
};

struct registry_stats {
    uint64_t requests, bad_requests, blobs_received, blob_bytes_received, chunks_served,
        publishes, publishes_refused;
};

struct registry;

int registry_start(const struct registry_config *cfg, struct registry **out);
/* The URL actually listened on (with the chosen port). */
const char *registry_url(const struct registry *r);
/* "http://ADDR:PORT" of the HTTP side, or NULL when it is off. */
const char *registry_http_url(const struct registry *r);
void registry_get_stats(struct registry *r, struct registry_stats *out);
/* Stops serving, waits for the workers and frees r. */
void registry_stop(struct registry *r);

/* Serve one encoded request in-process, exactly as a worker would (for the
 * fuzz targets). On 0, *resp is the encoded response (free() it) or NULL
 * when the request was a poll that would wait: such a poll is dropped, not
 * parked. Fails only on memory or a request past WIRE_MAX_MSG. */
int registry_handle(struct registry *r, const uint8_t *req, size_t len, uint8_t **resp,
                    size_t *resp_len);

#endif
