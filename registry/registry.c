/* The engine: start and stop, and the transport's two entries (serve_one,
 * poll_answer). Requests are served through the dispatch table
 * (dispatch.c) by the area modules: publish.c, fleet_handlers.c,
 * query_handlers.c, action_handlers.c. */
#include "registry.h"
#include "registry_int.h"
#include "dispatch.h"
#include "envelope.h"
#include "http.h"
#include "error.h"
#include "manifest.h"
#include "offerlimits.h"
#include "wire.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- request handlers ---------------------------------------------------- */

static void scratch_free(struct scratch *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->ptrs[i]);
    signatures_free(s->sigs);
    free(s->versions);
    actions_batch_free(&s->batch);
    envelope_free(s->envelope);
}

/* An action was queued: parked polls are looked at again; the host's
 * answer then carries the action (poll_answer), so it goes out at once. */
static void wake_for_actions(void *arg)
{
    struct registry *r = arg;
    if (r->server)
        server_wake(r->server);
}

/* Turn one request message into one response message. Never fails: every
 * problem becomes an error response, so a bad client cannot stall a worker.
 * A poll with nothing new returns NULL and fills *park instead. Called by
 * the transport (server.c) on a worker thread. */
static nng_msg *serve_one(void *arg, nng_msg *in, struct server_park *park)
{
    struct registry *r = arg;
    r->requests++;
    err_clear();
    Ferry__Wire__Response resp;
    ferry__wire__response__init(&resp);
    struct request_scratch rs;
    memset(&rs, 0, sizeof rs);
    Ferry__Wire__Request *req =
        ferry__wire__request__unpack(NULL, nng_msg_len(in), nng_msg_body(in));
    int rc;
    nng_msg *out = NULL;
    if (!req) {
        rc = err_set(FERRY_E_PROTOCOL, "malformed request");
        r->bad_requests++;
    } else {
        rc = dispatch(r, req, &resp, &rs);
        reqstats_count(&r->reqstats, (int)req->body_case, rc);
    }
    if (rc == PARK) {
        snprintf(park->host, sizeof park->host, "%s", req->poll->host);
        park->known_serial = req->poll->known_serial;
        /* Not longer than a quarter of an envelope's life: a waiting host
         * gets the refreshed one (issued after half of it) in time. */
        park->wait_ms = req->poll->wait_ms;
        if ((int64_t)park->wait_ms > r->desired_ttl_ms / 4)
            park->wait_ms = (uint32_t)(r->desired_ttl_ms / 4);
    } else {
        if (rc < 0) {
            resp.body_case = FERRY__WIRE__RESPONSE__BODY__NOT_SET;
            resp.code = wire_code_of(rc);
            resp.error = (char *)err_message(rc);
        }
        if (wire_pack_response(&resp, &out) < 0)
            out = NULL;
    }
    scratch_free(&rs.s);
    hosts_scratch_free(&rs.hosts);
    events_scratch_free(&rs.events);
    queries_reply_free(&rs.queries);
    rmetrics_scratch_free(&rs.metrics);
    audit_reply_free(&rs.audit);
    gov_scratch_free(&rs.gov);
    runs_scratch_free(&rs.runs);
    desired_free(&rs.desired);
    actions_scratch_free(&rs.action);
    if (req)
        ferry__wire__request__free_unpacked(req, NULL);
    return out;
}

/* The reply a waiting poll for host gets now (server.c answers parked polls
 * with it), and the serial it carries. */
static int poll_answer(void *arg, const char *host, uint64_t *serial, nng_msg **out)
{
    struct registry *r = arg;
    Ferry__Wire__Response resp;
    ferry__wire__response__init(&resp);
    struct scratch s = {0};
    struct desired d = {0};
    int rc = fleet_desired_response(r, host, &d, &resp, &s);
    if (rc < 0) {
        resp.body_case = FERRY__WIRE__RESPONSE__BODY__NOT_SET;
        resp.code = wire_code_of(rc);
        resp.error = (char *)err_message(rc);
    }
    /* Actions must go out now: a serial no desired state has (it is never
     * 0) makes the waiting poll differ, so the notifier sends this answer. */
    *serial = resp.n_actions > 0 ? 0 : d.serial;
    *out = NULL;
    if (wire_pack_response(&resp, out) < 0)
        *out = NULL;
    desired_free(&d);
    scratch_free(&s);
    return rc;
}

int registry_start(const struct registry_config *cfg, struct registry **out)
{
    /* Every request type must have exactly one handler before serving. */
    int rc = dispatch_check();
    if (rc < 0)
        return rc;
    /* A bad --http fails before anything is opened or bound. */
    struct http_config hcfg = {
        .listen = cfg->http_listen,
        .token_file = cfg->http_token_file,
        .data_dir = cfg->data_dir,
        .assets_dir = cfg->http_assets,
        .logs_key = cfg->http_logs_key,
        .host_ttl_ms = cfg->host_ttl_ms > 0 ? cfg->host_ttl_ms : REGISTRY_DEFAULT_HOST_TTL_MS,
    };
    int http_off = 1;
    if ((rc = http_config_check(&hcfg, &http_off)) < 0)
        return rc;
    /* Likewise a policy that will be refused: no data directory, no key. */
    if (cfg->policy_path && (rc = gov_check(cfg->policy_path, cfg->admin_anchors)) < 0)
        return rc;
    struct registry *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->trust = cfg->trust;
    r->host_ttl_ms = cfg->host_ttl_ms > 0 ? cfg->host_ttl_ms : REGISTRY_DEFAULT_HOST_TTL_MS;
    r->max_blob_size = cfg->max_blob_size ? cfg->max_blob_size : REGISTRY_DEFAULT_MAX_BLOB_SIZE;
    r->desired_ttl_ms = cfg->desired_ttl_ms > 0 ? cfg->desired_ttl_ms : REGISTRY_DEFAULT_DESIRED_TTL_MS;
    int key_created = 0;
    if ((rc = registry_key_load(cfg->data_dir, &r->self_key, &key_created)) < 0) {
        free(r);
        return rc;
    }

    /* Each step that fails undoes the ones before it, in reverse order. */
    if ((rc = prom_state_init(&r->prom)) < 0)
        goto fail_key;
    pthread_mutex_init(&r->pending_lock, NULL);
    if ((rc = actions_new(wake_for_actions, r, &r->actions)) < 0)
        goto fail_prom;
    if ((rc = store_open(&r->store, cfg->data_dir)) < 0)
        goto fail_actions;
    char path[4096];
    snprintf(path, sizeof path, "%s/registry.db", cfg->data_dir);
    if ((rc = db_open(&r->db, path)) < 0)
        goto fail_store;
    /* Only --trust-admin anchors the policy's admins: --trust says who may
     * publish, and a key listed there for that is no admin. */
    if (cfg->policy_path && (rc = gov_start(r, cfg->policy_path, cfg->admin_anchors)) < 0)
        goto fail_db;
    if ((rc = liveness_start(&r->live, &r->db)) < 0)
        goto fail_gov;
    struct server_config sc = {
        .listen_url = cfg->listen_url,
        .tls_cert_key = cfg->tls_cert_key,
        .workers = cfg->workers > 0 ? cfg->workers : REGISTRY_DEFAULT_WORKERS,
        .max_conns = cfg->max_conns,
        .max_conns_per_peer = cfg->max_conns_per_peer,
        .idle_timeout_ms = cfg->idle_timeout_ms,
    };
    struct server_handler h = {.arg = r, .serve = serve_one, .desired = poll_answer};
    if ((rc = server_start(&sc, &h, &r->server)) < 0) {
        r->server = NULL;
        goto fail_liveness;
    }
    if (!http_off && (rc = http_start(&hcfg, r, &r->http)) < 0)
        goto fail_server;
    /* Said once serving, so a start that fails still fails with one line. */
    if (key_created)
        fprintf(stderr, "ferry-registry: created its own key %s (%s/registry.pub)\n",
                r->self_key.pub.id, cfg->data_dir);
    *out = r;
    return 0;

fail_server:
    server_stop(r->server);
fail_liveness:
    liveness_stop(&r->live);
fail_gov:
    gov_free(r->gov);
fail_db:
    db_close(&r->db);
fail_store:
    store_close(&r->store);
fail_actions:
    actions_free(r->actions);
fail_prom:
    pthread_mutex_destroy(&r->pending_lock);
    prom_state_free(&r->prom);
fail_key:
    key_secret_wipe(&r->self_key);
    free(r);
    return rc;
}

const char *registry_url(const struct registry *r) { return server_url(r->server); }

const char *registry_http_url(const struct registry *r) { return r->http ? http_url(r->http) : NULL; }

void registry_get_stats(struct registry *r, struct registry_stats *out)
{
    out->requests = r->requests;
    out->bad_requests = r->bad_requests;
    out->blobs_received = r->blobs_received;
    out->blob_bytes_received = r->blob_bytes_received;
    out->chunks_served = r->chunks_served;
    out->publishes = r->publishes;
    out->publishes_refused = r->publishes_refused;
}

void registry_stop(struct registry *r)
{
    http_stop(r->http); /* first: its handlers read what the rest below frees */
    server_stop(r->server);
    publish_pending_clear(r);
    liveness_stop(&r->live); /* after the server: no poll moves a mark any more */
    gov_free(r->gov);
    db_close(&r->db);
    store_close(&r->store);
    pthread_mutex_destroy(&r->pending_lock);
    actions_free(r->actions);
    prom_state_free(&r->prom);
    key_secret_wipe(&r->self_key);
    free(r);
}

/* ---- one request without a socket ------------------------------------------ */

/* The fuzz targets drive every request through serve_one, as a worker does,
 * but without nng pipes. A poll that would park is dropped here, as if its
 * client had gone away: nothing waits and nothing is kept. */
int registry_handle(struct registry *r, const uint8_t *req, size_t len, uint8_t **resp,
                    size_t *resp_len)
{
    *resp = NULL;
    *resp_len = 0;
    if (len > WIRE_MAX_MSG)
        return err_set(FERRY_E_LIMIT, "request: %zu bytes, more than %u", len, WIRE_MAX_MSG);
    nng_msg *in = NULL;
    if (nng_msg_alloc(&in, len) != 0)
        return -ENOMEM;
    if (len > 0)
        memcpy(nng_msg_body(in), req, len);
    struct server_park park;
    memset(&park, 0, sizeof park);
    nng_msg *out = serve_one(r, in, &park);
    nng_msg_free(in);
    if (!out && park.host[0])
        return 0; /* a poll that would wait: no socket here to park it on */
    if (!out)
        return -ENOMEM;
    size_t n = nng_msg_len(out);
    uint8_t *copy = malloc(n ? n : 1);
    if (copy)
        memcpy(copy, nng_msg_body(out), n);
    nng_msg_free(out);
    if (!copy)
        return -ENOMEM;
    *resp = copy;
    *resp_len = n;
    return 0;
}
