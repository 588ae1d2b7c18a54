#include "client.h"
#include "error.h"
#include "numparse.h"
#include "tls.h"

#include <errno.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* nng reports a lost pipe on its own threads, possibly after nng_close
 * has returned and the client is gone. So the callback never gets the
 * client's address: it gets an id, looked up in this table of open clients
 * under a lock that client_close also takes to leave the table. */
#define LIVE_MAX 64
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    uintptr_t id;
    struct client *c;
} live[LIVE_MAX];
static uintptr_t live_next = 1;

static uintptr_t live_add(struct client *c)
{
    uintptr_t id = 0;
    pthread_mutex_lock(&live_lock);
    for (int i = 0; i < LIVE_MAX; i++)
        if (!live[i].id) {
            id = live[i].id = live_next++;
            live[i].c = c;
            break;
        }
    pthread_mutex_unlock(&live_lock);
    return id; /* 0: table full, the client relies on timeouts alone */
}

static void live_remove(uintptr_t id)
{
    pthread_mutex_lock(&live_lock);
    for (int i = 0; i < LIVE_MAX; i++)
        if (live[i].id == id)
            live[i].id = 0;
    pthread_mutex_unlock(&live_lock);
}

static void on_pipe_removed(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    (void)p;
    (void)ev;
    uintptr_t id = (uintptr_t)arg;
    pthread_mutex_lock(&live_lock);
    for (int i = 0; i < LIVE_MAX; i++) {
        if (live[i].id != id)
            continue;
        /* Fail the requests in flight now rather than at their timeout. */
        struct client *c = live[i].c;
        nng_mtx_lock(c->mtx);
        c->lost = 1;
        nng_mtx_unlock(c->mtx);
        for (int k = 0; k < CLIENT_SLOTS; k++)
            if (c->slots[k].aio)
                nng_aio_cancel(c->slots[k].aio);
    }
    pthread_mutex_unlock(&live_lock);
}

int client_open(struct client *c, const char *url)
{
    memset(c, 0, sizeof *c);
    snprintf(c->url, sizeof c->url, "%s", url);
    uint64_t t = 0;
    if (num_env_u64("FERRY_TIMEOUT_MS", 60000, 1, INT32_MAX, &t) < 0)
        return FERRY_E_INVALID;
    c->timeout_ms = (int)t;
    int rv = nng_req0_open(&c->sock);
    if (rv != 0)
        return wire_nng_error(rv, url);
    nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, WIRE_MAX_MSG);
    /* Never resend on our own: a lost connection is reported, not hidden. */
    nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    if ((rv = nng_mtx_alloc(&c->mtx)) != 0) {
        nng_close(c->sock);
        return wire_nng_error(rv, url);
    }
    for (int i = 0; i < CLIENT_SLOTS && rv == 0; i++) {
        rv = nng_ctx_open(&c->slots[i].ctx, c->sock);
        if (rv == 0)
            rv = nng_aio_alloc(&c->slots[i].aio, NULL, NULL);
        if (rv == 0)
            nng_aio_set_timeout(c->slots[i].aio, c->timeout_ms);
    }
    if (rv == 0 && (c->live_id = live_add(c)) != 0)
        rv = nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, on_pipe_removed,
                             (void *)c->live_id);
    if (rv == 0 && tls_url(url)) {
        nng_tls_config *tls = NULL;
        nng_dialer d;
        int trc = tls_client_config(url, &tls);
        if (trc < 0) {
            client_close(c);
            return trc;
        }
        rv = nng_dialer_create(&d, c->sock, url);
        if (rv == 0)
            rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls);
        nng_tls_config_free(tls); /* the dialer holds its own reference */
        if (rv == 0)
            rv = nng_dialer_start(d, 0);
    } else if (rv == 0) {
        rv = nng_dial(c->sock, url, NULL, 0);
    }
    if (rv != 0) {
        int err = wire_nng_error(rv, url);
        client_close(c);
        return err;
    }
    return 0;
}

void client_close(struct client *c)
{
    if (c->live_id)
        live_remove(c->live_id); /* no callback touches c after this */
    c->live_id = 0;
    nng_close(c->sock);
    for (int i = 0; i < CLIENT_SLOTS; i++) {
        if (c->slots[i].aio)
            nng_aio_free(c->slots[i].aio);
        c->slots[i].aio = NULL;
    }
    if (c->mtx)
        nng_mtx_free(c->mtx);
    c->mtx = NULL;
}

void client_response_free(Ferry__Wire__Response *r)
{
    if (r)
        ferry__wire__response__free_unpacked(r, NULL);
}

static int is_lost(struct client *c)
{
    nng_mtx_lock(c->mtx);
    int lost = c->lost;
    nng_mtx_unlock(c->mtx);
    return lost;
}

/* Send req on a slot and start receiving its reply. */
static int slot_start(struct client *c, struct client_slot *s, const Ferry__Wire__Request *req)
{
    if (is_lost(c))
        return wire_nng_error(NNG_ECLOSED, c->url);
    nng_msg *msg;
    int rc = wire_pack_request(req, &msg);
    if (rc < 0)
        return rc;
    nng_aio_set_msg(s->aio, msg);
    nng_ctx_send(s->ctx, s->aio);
    nng_aio_wait(s->aio);
    int rv = nng_aio_result(s->aio);
    if (rv != 0) {
        nng_msg_free(msg); /* a failed send leaves the message ours */
        return wire_nng_error(rv, c->url);
    }
    nng_ctx_recv(s->ctx, s->aio);
    return 0;
}

static int slot_finish(struct client *c, struct client_slot *s, Ferry__Wire__Response **out)
{
    nng_aio_wait(s->aio);
    int rv = nng_aio_result(s->aio);
    if (rv != 0)
        return wire_nng_error(is_lost(c) ? NNG_ECLOSED : rv, c->url);
    nng_msg *msg = nng_aio_get_msg(s->aio);
    Ferry__Wire__Response *r =
        ferry__wire__response__unpack(NULL, nng_msg_len(msg), nng_msg_body(msg));
    nng_msg_free(msg);
    if (!r)
        return err_set(FERRY_E_PROTOCOL, "registry %s: malformed response", c->url);
    if (r->code != FERRY__WIRE__CODE__OK) {
        int err = wire_error_of(r->code);
        err_set(err, "%s", r->error && *r->error ? r->error : ferry_strerror(err));
        client_response_free(r);
        return err;
    }
    *out = r;
    return 0;
}

int client_call(struct client *c, const Ferry__Wire__Request *req,
                Ferry__Wire__Response **resp)
{
    int rc = slot_start(c, &c->slots[0], req);
    if (rc == 0)
        rc = slot_finish(c, &c->slots[0], resp);
    return rc;
}

static void chunk_request(Ferry__Wire__Request *req, Ferry__Wire__GetChunk *gc,
                          const struct digest *d, uint64_t offset, uint64_t size)
{
    ferry__wire__request__init(req);
    ferry__wire__get_chunk__init(gc);
    gc->digest.data = (uint8_t *)d->b;
    gc->digest.len = DIGEST_LEN;
    gc->offset = offset;
    gc->length = (uint32_t)(size - offset < WIRE_CHUNK ? size - offset : WIRE_CHUNK);
    req->body_case = FERRY__WIRE__REQUEST__BODY_GET_CHUNK;
    req->get_chunk = gc;
}

static void drain_slots(struct client *c, int head, int inflight)
{
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", err_detail());
    while (inflight > 0) {
        Ferry__Wire__Response *r = NULL;
        if (slot_finish(c, &c->slots[head], &r) == 0)
            client_response_free(r);
        head = (head + 1) % CLIENT_SLOTS;
        inflight--;
    }
    err_set(0, "%s", saved);
}

int client_fetch_blob(struct client *c, const struct digest *d, uint64_t size, uint64_t offset,
                      client_sink_fn sink, void *arg, struct progress *prog)
{
    /* A ring of slots: slot (i % N) carries chunk i. We always consume the
     * oldest chunk, so bytes reach the sink in order while later chunks are
     * already on their way. */
    uint64_t next_req = offset, next_take = offset;
    int inflight = 0, head = 0, rc = 0;
    Ferry__Wire__Request req;
    Ferry__Wire__GetChunk gc;

    while (rc == 0 && (next_take < size || inflight > 0)) {
        while (rc == 0 && inflight < CLIENT_SLOTS && next_req < size) {
            chunk_request(&req, &gc, d, next_req, size);
            rc = slot_start(c, &c->slots[(head + inflight) % CLIENT_SLOTS], &req);
            if (rc == 0) {
                next_req += gc.length;
                inflight++;
            }
        }
        if (inflight == 0)
            break;
        Ferry__Wire__Response *r = NULL;
        int frc = slot_finish(c, &c->slots[head], &r);
        head = (head + 1) % CLIENT_SLOTS;
        inflight--;
        if (rc == 0)
            rc = frc;
        if (frc < 0)
            continue;
        if (r->body_case != FERRY__WIRE__RESPONSE__BODY_CHUNK || r->chunk->size != size) {
            rc = err_set(FERRY_E_PROTOCOL, "registry %s: unexpected reply to a chunk request",
                         c->url);
        } else if (rc == 0) {
            size_t len = r->chunk->data.len;
            uint64_t want = size - next_take < WIRE_CHUNK ? size - next_take : WIRE_CHUNK;
            if (len != want)
                rc = err_set(FERRY_E_PROTOCOL, "registry %s: short chunk (%zu of %llu bytes)",
                             c->url, len, (unsigned long long)want);
            else {
                rc = sink(arg, r, r->chunk->data.data, len);
                r = NULL; /* the sink owns it now */
                next_take += len;
                if (prog)
                    progress_add(prog, len);
            }
        }
        client_response_free(r);
    }
    /* On error, drain whatever is still in flight so the slots are idle. */
    if (inflight > 0)
        drain_slots(c, head, inflight);
    return rc;
}

int client_push_blob(struct client *c, const struct digest *d, uint64_t size, uint64_t offset,
                     client_source_fn source, void *arg, struct progress *prog,
                     uint64_t *sent)
{
    uint8_t *buf = malloc(WIRE_CHUNK);
    if (!buf)
        return -ENOMEM;
    uint64_t next_send = offset;
    size_t lens[CLIENT_SLOTS];
    int inflight = 0, head = 0, rc = 0, done = 0;
    while (rc == 0 && !done && (next_send < size || inflight > 0)) {
        while (rc == 0 && inflight < CLIENT_SLOTS && next_send < size) {
            size_t len = size - next_send < WIRE_CHUNK ? (size_t)(size - next_send) : WIRE_CHUNK;
            if ((rc = source(arg, next_send, buf, len)) < 0)
                break;
            Ferry__Wire__Request req;
            Ferry__Wire__PutChunk pc;
            ferry__wire__request__init(&req);
            ferry__wire__put_chunk__init(&pc);
            pc.digest.data = (uint8_t *)d->b;
            pc.digest.len = DIGEST_LEN;
            pc.offset = next_send;
            pc.data.data = buf; /* packed into the message: buf is free again */
            pc.data.len = len;
            req.body_case = FERRY__WIRE__REQUEST__BODY_PUT_CHUNK;
            req.put_chunk = &pc;
            int slot = (head + inflight) % CLIENT_SLOTS;
            if ((rc = slot_start(c, &c->slots[slot], &req)) < 0)
                break;
            lens[slot] = len;
            next_send += len;
            inflight++;
        }
        if (inflight == 0)
            break;
        Ferry__Wire__Response *r = NULL;
        int frc = slot_finish(c, &c->slots[head], &r);
        size_t len = lens[head];
        head = (head + 1) % CLIENT_SLOTS;
        inflight--;
        if (rc == 0)
            rc = frc;
        if (frc < 0)
            continue;
        if (r->body_case != FERRY__WIRE__RESPONSE__BODY_PUT_CHUNK) {
            rc = err_set(FERRY_E_PROTOCOL, "registry %s: unexpected reply to a chunk", c->url);
        } else {
            *sent += len;
            if (prog)
                progress_add(prog, len);
            done = r->put_chunk->complete;
        }
        client_response_free(r);
    }
    if (inflight > 0)
        drain_slots(c, head, inflight); /* keeps the first error's detail */
    free(buf);
    return rc;
}
