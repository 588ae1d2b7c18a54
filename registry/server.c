/* The registry's transport: slots, workers, start and stop (see server.h;
 * the connection table is conns.c, parked polls poll.c). */
#include "server_int.h"
#include "rlog.h"
#include "clock.h"
#include "tls.h"
#include "wire.h"

#include <errno.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


/* ---- slots ------------------------------------------------------------------- */

static void slot_sent(void *arg);

/* A slot to receive with, or NULL once stopping. A context is only ever
 * opened here, under the lock and never after stopping is set: in nng 1.5.2
 * a context opened while nng_close runs is left on the socket's list with
 * nobody to close it, and nng_close then waits for it forever. */
static struct slot *slot_get(struct server *srv)
{
    pthread_mutex_lock(&srv->lock);
    struct slot *s = NULL;
    if (srv->stopping)
        goto out;
    while (srv->free_slots) {
        s = srv->free_slots;
        srv->free_slots = s->next;
        srv->n_free--;
        s->next = NULL;
        if (s->open)
            goto out;
        s = NULL; /* closed while stopping; freed with all_slots */
    }
    s = calloc(1, sizeof *s);
    if (!s)
        goto out;
    s->srv = srv;
    if (nng_aio_alloc(&s->aio, slot_sent, s) != 0) {
        free(s);
        s = NULL;
        goto out;
    }
    if (nng_ctx_open(&s->ctx, srv->sock) != 0) {
        nng_aio_free(s->aio);
        free(s);
        s = NULL;
        goto out;
    }
    nng_aio_set_timeout(s->aio, SERVER_SEND_TIMEOUT_MS);
    s->open = 1;
    s->all_next = srv->all_slots;
    if (srv->all_slots)
        srv->all_slots->all_prev = s;
    srv->all_slots = s;
out:
    pthread_mutex_unlock(&srv->lock);
    return s;
}

/* Caller holds srv->lock. */
void server_slot_put_locked(struct server *srv, struct slot *s)
{
    s->host[0] = '\0';
    s->next = srv->free_slots;
    srv->free_slots = s;
    srv->n_free++;
}

static void slot_put(struct server *srv, struct slot *s)
{
    pthread_mutex_lock(&srv->lock);
    server_slot_put_locked(srv, s);
    pthread_mutex_unlock(&srv->lock);
}

/* Caller holds srv->lock; frees nothing, returns what to free. */
static void slot_unlink_locked(struct server *srv, struct slot *s)
{
    if (s->all_prev)
        s->all_prev->all_next = s->all_next;
    else
        srv->all_slots = s->all_next;
    if (s->all_next)
        s->all_next->all_prev = s->all_prev;
}

static void slot_free(struct slot *s)
{
    if (s->open)
        nng_ctx_close(s->ctx);
    nng_aio_free(s->aio); /* waits for its callback to return */
    free(s);
}

/* Keep a few idle slots for reuse, free the rest (after a burst of polls).
 * Not from an aio callback: nng_aio_free waits for callbacks. */
void server_slots_trim(struct server *srv)
{
    struct slot *extra = NULL;
    pthread_mutex_lock(&srv->lock);
    while (srv->n_free > FREE_SLOTS_KEPT) {
        struct slot *s = srv->free_slots;
        srv->free_slots = s->next;
        srv->n_free--;
        slot_unlink_locked(srv, s);
        if (s->open) {
            nng_ctx_close(s->ctx);
            s->open = 0;
        }
        s->next = extra;
        extra = s;
    }
    pthread_mutex_unlock(&srv->lock);
    while (extra) {
        struct slot *s = extra;
        extra = s->next;
        slot_free(s);
    }
}

/* Send out as s's server_reply, without waiting. Over the per-connection limit of
 * unsent replies the connection is dropped instead: its peer does not read. */
void server_reply(struct server *srv, struct slot *s, nng_msg *out)
{
    pthread_mutex_lock(&srv->lock);
    struct conn *c = conn_find(srv, s->pipe);
    if (!c || c->drop) {
        /* The connection is gone or being dropped: nobody to answer. */
        server_slot_put_locked(srv, s);
        pthread_mutex_unlock(&srv->lock);
        nng_msg_free(out);
        return;
    }
    if (c->sending >= SERVER_REPLIES_PER_CONN) {
        if (!c->drop)
            conn_note_locked(&srv->note_flood,
                        "dropping a connection with too many unread replies from", c->peer);
        conn_mark_drop_locked(srv, c);
        server_slot_put_locked(srv, s);
        pthread_mutex_unlock(&srv->lock);
        nng_msg_free(out);
        return;
    }
    c->sending++;
    srv->in_flight++;
    s->sending = 1;
    pthread_mutex_unlock(&srv->lock);
    nng_aio_set_msg(s->aio, out);
    nng_ctx_send(s->ctx, s->aio);
}

/* A reply was sent, refused, or not taken in time (nng callback thread:
 * must not block). A deadline passed means the peer does not read: drop
 * its connection, which also aborts its other queued replies. */
static void slot_sent(void *arg)
{
    struct slot *s = arg;
    struct server *srv = s->srv;
    int rv = nng_aio_result(s->aio);
    if (rv != 0) {
        nng_msg *m = nng_aio_get_msg(s->aio);
        nng_aio_set_msg(s->aio, NULL);
        if (m)
            nng_msg_free(m);
    }
    pthread_mutex_lock(&srv->lock);
    s->sending = 0;
    struct conn *c = conn_find(srv, s->pipe);
    if (c) {
        c->sending--;
        if (rv == NNG_ETIMEDOUT) {
            if (!c->drop)
                conn_note_locked(&srv->note_slow,
                            "dropping a connection that does not read its replies from", c->peer);
            conn_mark_drop_locked(srv, c);
        }
    }
    /* Last use of s: from here another worker may take it. */
    server_slot_put_locked(srv, s);
    if (--srv->in_flight == 0 && srv->stopping)
        pthread_cond_broadcast(&srv->idle);
    pthread_mutex_unlock(&srv->lock);
}

/* ---- workers -------------------------------------------------------------------- */

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct server *srv = w->srv;
    for (;;) {
        struct slot *s = slot_get(srv);
        if (!s)
            break; /* stopping (or out of memory: the others serve) */
        nng_ctx_recv(s->ctx, w->aio);
        nng_aio_wait(w->aio);
        int rv = nng_aio_result(w->aio);
        if (rv != 0) {
            slot_put(srv, s);
            continue; /* an oversized message was dropped, or stopping: see slot_get */
        }
        nng_msg *in = nng_aio_get_msg(w->aio);
        s->pipe = (uint32_t)nng_pipe_id(nng_msg_get_pipe(in));
        pthread_mutex_lock(&srv->lock);
        struct conn *c = conn_find(srv, s->pipe);
        if (c)
            c->last_ms = (int64_t)clock_mono_ms();
        /* A connection being dropped, or a registry stopping, gets no
         * more answers: taking its requests lets it go quiet. */
        int discard = srv->refuse_conns || (c && c->drop);
        pthread_mutex_unlock(&srv->lock);
        if (discard) {
            nng_msg_free(in);
            slot_put(srv, s);
            continue;
        }
        struct server_park pk;
        memset(&pk, 0, sizeof pk);
        nng_msg *out = srv->h.serve(srv->h.arg, in, &pk);
        nng_msg_free(in);
        if (!out && pk.host[0]) {
            if (server_park_poll(srv, s, &pk) == 0)
                continue;
            /* Not parked: answer now with the same state. */
            uint64_t serial = 0;
            err_clear();
            srv->h.desired(srv->h.arg, pk.host, &serial, &out);
        }
        if (!out) {
            slot_put(srv, s);
            continue;
        }
        server_reply(srv, s, out);
    }
    return NULL;
}

/* ---- start and stop --------------------------------------------------------------- */

static int listen_on(struct server *srv, const struct server_config *cfg)
{
    const char *url = cfg->listen_url ? cfg->listen_url : WIRE_DEFAULT_URL;
    int rv;
    if (tls_url(url)) {
        nng_tls_config *tls = NULL;
        if (!cfg->tls_cert_key)
            return err_set(FERRY_E_INVALID, "listen %s: TLS needs --tls-cert FILE.pem", url);
        int rc = tls_server_config(cfg->tls_cert_key, &tls);
        if (rc < 0)
            return rc;
        rv = nng_listener_create(&srv->listener, srv->sock, url);
        if (rv == 0)
            rv = nng_listener_set_ptr(srv->listener, NNG_OPT_TLS_CONFIG, tls);
        nng_tls_config_free(tls); /* the listener holds its own reference */
        if (rv == 0)
            rv = nng_listener_start(srv->listener, 0);
    } else {
        rv = nng_listen(srv->sock, url, &srv->listener, 0);
    }
    if (rv != 0)
        return err_set(FERRY_E_TRANSPORT, "listen %s: %s", url, nng_strerror(rv));
    srv->listener_open = 1;
    int port = 0;
    snprintf(srv->url, sizeof srv->url, "%s", url);
    if (nng_listener_get_int(srv->listener, NNG_OPT_TCP_BOUND_PORT, &port) == 0) {
        /* Rewrite the URL with the port really bound (port 0 picks one). */
        const char *colon = strrchr(url, ':');
        if (colon)
            snprintf(srv->url, sizeof srv->url, "%.*s:%d", (int)(colon - url), url, port);
    }
    return 0;
}

int server_start(const struct server_config *cfg, const struct server_handler *h,
                 struct server **out)
{
    struct server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return -ENOMEM;
    srv->h = *h;
    srv->max_conns = cfg->max_conns > 0 ? cfg->max_conns : SERVER_DEFAULT_MAX_CONNS;
    srv->max_per_peer =
        cfg->max_conns_per_peer > 0 ? cfg->max_conns_per_peer : SERVER_DEFAULT_MAX_CONNS_PER_PEER;
    srv->idle_ms = cfg->idle_timeout_ms > 0 ? cfg->idle_timeout_ms : SERVER_DEFAULT_IDLE_TIMEOUT_MS;
    srv->n_workers = cfg->workers > 0 ? cfg->workers : 8;
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->idle, NULL);
    pthread_cond_init(&srv->drained, NULL);
    pthread_mutex_init(&srv->park_lock, NULL);
    pthread_cond_init(&srv->park_wake, NULL);
    int rv, rc = 0;
    if ((rv = nng_rep0_open(&srv->sock)) != 0) {
        rc = err_set(FERRY_E_TRANSPORT, "socket: %s", nng_strerror(rv));
        free(srv);
        return rc;
    }
    nng_socket_set_size(srv->sock, NNG_OPT_RECVMAXSZ, WIRE_MAX_MSG);
    if ((rv = nng_pipe_notify(srv->sock, NNG_PIPE_EV_ADD_PRE, conns_on_pipe_add, srv)) != 0 ||
        (rv = nng_pipe_notify(srv->sock, NNG_PIPE_EV_REM_POST, conns_on_pipe_rem, srv)) != 0) {
        rc = err_set(FERRY_E_TRANSPORT, "socket: %s", nng_strerror(rv));
        goto fail;
    }
    if ((rc = listen_on(srv, cfg)) < 0)
        goto fail;
    srv->workers = calloc((size_t)srv->n_workers, sizeof *srv->workers);
    if (!srv->workers) {
        rc = -ENOMEM;
        goto fail;
    }
    for (int i = 0; i < srv->n_workers; i++) {
        struct worker *w = &srv->workers[i];
        w->srv = srv;
        if (nng_aio_alloc(&w->aio, NULL, NULL) != 0 ||
            pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            rc = err_set(FERRY_E_TRANSPORT, "could not start worker %d", i);
            goto fail;
        }
        w->started = 1;
    }
    if (pthread_create(&srv->notifier, NULL, server_notifier_main, srv) != 0) {
        rc = err_set(FERRY_E_TRANSPORT, "could not start the poll notifier");
        goto fail;
    }
    srv->notifier_started = 1;
    *out = srv;
    return 0;
fail:
    server_stop(srv);
    return rc;
}

const char *server_url(const struct server *srv) { return srv->url; }

static void deadline_in_ms(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

/* The order matters with nng 1.5.2 (docs/architecture.md, "Stopping"):
 * nng_close waits, unbounded, first for every context to be closed and then
 * for every pipe to be torn down, and a pipe closed while a message arrives
 * on it is never torn down (see conns_drop_marked). So the connections are ended
 * from the socket side first, while the workers still take what arrives,
 * and only then are the listener, the contexts and the socket closed. */
void server_stop(struct server *srv)
{
    struct timespec ts;
    /* 1. No new connections and no new polls; the notifier ends. */
    pthread_mutex_lock(&srv->lock);
    srv->refuse_conns = 1;
    pthread_mutex_unlock(&srv->lock);
    pthread_mutex_lock(&srv->park_lock);
    srv->park_stopping = 1;
    pthread_cond_signal(&srv->park_wake);
    pthread_mutex_unlock(&srv->park_lock);
    if (srv->notifier_started)
        pthread_join(srv->notifier, NULL);

    /* 2. Every connection is dropped (see conns_drop_marked): the workers take
     * and discard what still arrives, each connection is shut down once
     * quiet, and nng removes it from its receive path. Bounded: after
     * 700 ms the rest are shut down whatever they do, and what is still
     * left after a second is closed with the listener below. */
    pthread_mutex_lock(&srv->lock);
    for (int b = 0; b < CONN_BUCKETS; b++)
        for (struct conn *c = srv->conns[b]; c; c = c->next)
            c->drop = 1;
    /* Replies still queued are given up (their contexts closed: this
     * touches no pipe), so that a connection that does not read is quiet
     * at once instead of after its send deadline. */
    for (struct slot *s = srv->all_slots; s; s = s->all_next)
        if (s->sending && s->open) {
            nng_ctx_close(s->ctx);
            s->open = 0;
        }
    pthread_mutex_unlock(&srv->lock);
    int64_t t0 = (int64_t)clock_mono_ms();
    for (;;) {
        int64_t spent = (int64_t)clock_mono_ms() - t0;
        conns_drop_marked(srv, spent >= 700);
        pthread_mutex_lock(&srv->lock);
        if (srv->n_conns > 0 && spent < 1000) {
            deadline_in_ms(&ts, 20);
            pthread_cond_timedwait(&srv->drained, &srv->lock, &ts);
        }
        int done = srv->n_conns == 0 || spent >= 1000;
        pthread_mutex_unlock(&srv->lock);
        if (done)
            break;
    }
    pthread_mutex_lock(&srv->lock);
    int left = srv->n_conns, stuck = srv->forgotten;
    /* 3. From here no context is opened: in nng 1.5.2 a context opened
     * while nng_close runs stays on the socket's list with nobody to close
     * it, and nng_close waits for it forever. */
    srv->stopping = 1;
    pthread_mutex_unlock(&srv->lock);

    /* 4. nng_close waits, without a bound, until nng has torn down every
     * pipe. Only when none is left can that not hang; otherwise the socket
     * is left to the process's exit (everything durable is closed by the
     * caller all the same). */
    int close_socket = left == 0 && stuck == 0;
    if (!close_socket)
        registry_log("stopping: %d connection%s still open in nng%s; leaving the socket to the exit",
              left + stuck, left + stuck == 1 ? "" : "s",
              stuck ? " (a pipe teardown is stuck)" : "");
    else if (srv->listener_open)
        nng_listener_close(srv->listener);

    /* 5. Close every context we hold: receives waiting in the workers and
     * the parked polls end with NNG_ECLOSED. */
    pthread_mutex_lock(&srv->lock);
    for (struct slot *s = srv->all_slots; s; s = s->all_next)
        if (s->open) {
            nng_ctx_close(s->ctx);
            s->open = 0;
        }
    pthread_mutex_unlock(&srv->lock);
    for (int i = 0; srv->workers && i < srv->n_workers; i++)
        if (srv->workers[i].started)
            pthread_join(srv->workers[i].thread, NULL);

    /* 6. Sends still completing end quickly now (their contexts and
     * connections are closed); wait for their callbacks, bounded. */
    deadline_in_ms(&ts, 1000);
    pthread_mutex_lock(&srv->lock);
    while (srv->in_flight > 0)
        if (pthread_cond_timedwait(&srv->idle, &srv->lock, &ts) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&srv->lock);

    /* 7. Nothing of ours is open: nng_close has nothing to wait for. */
    if (close_socket)
        nng_close(srv->sock);

    for (int i = 0; srv->workers && i < srv->n_workers; i++)
        if (srv->workers[i].aio)
            nng_aio_free(srv->workers[i].aio);
    free(srv->workers);
    while (srv->all_slots) {
        struct slot *s = srv->all_slots;
        srv->all_slots = s->all_next;
        slot_free(s);
    }
    for (int b = 0; b < CONN_BUCKETS; b++)
        while (srv->conns[b]) {
            struct conn *c = srv->conns[b];
            srv->conns[b] = c->next;
            free(c);
        }
    pthread_cond_destroy(&srv->park_wake);
    pthread_mutex_destroy(&srv->park_lock);
    pthread_cond_destroy(&srv->idle);
    pthread_cond_destroy(&srv->drained);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}
