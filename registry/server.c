#include "server.h"
#include "clock.h"
#include "error.h"
#include "tls.h"
#include "wire.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One request's context: the REP context that remembers whom to answer,
 * and the aio its reply is sent with (asynchronously: a worker never waits
 * on a peer). A slot is busy from its receive until its reply is sent,
 * given up, or (for a parked poll) answered. */
struct slot {
    struct server *srv;
    nng_ctx ctx;
    nng_aio *aio;
    int open;           /* ctx not closed yet; guarded by srv->lock */
    int sending;        /* a reply is in flight on it; guarded by srv->lock */
    uint32_t pipe;      /* the connection the request came on */
    /* While parked: */
    char host[72];
    uint64_t known_serial;
    int64_t deadline_ms;
    struct slot *next;  /* free list or parked list */
    struct slot *all_prev, *all_next;
};

/* One accepted connection (an nng pipe). */
struct conn {
    uint32_t id;
    char peer[INET6_ADDRSTRLEN];
    nng_sockaddr remote, local; /* to find its socket when dropping it */
    int64_t last_ms;   /* last request received */
    int parked;        /* polls parked from it */
    int sending;       /* replies handed to nng and not yet sent */
    int drop;          /* to be dropped (by the notifier) */
    int dropped;       /* its socket was shut down; nng removes it next */
    int missed;        /* scans that did not find its socket connected */
    struct conn *next; /* hash chain */
};

#define CONN_BUCKETS 256
#define FREE_SLOTS_KEPT 64

struct worker {
    struct server *srv;
    nng_aio *aio;
    pthread_t thread;
    int started;
};

/* Rate-limited notes about what was refused or dropped: an attack must not
 * fill the log, but an operator must see that it happened. */
struct note {
    int64_t last_ms;
    unsigned suppressed;
};

struct server {
    nng_socket sock;
    nng_listener listener;
    int listener_open;
    char url[256];
    struct server_handler h;
    int max_conns, max_per_peer, idle_ms;

    /* Guards conns, slots, counts and stopping. Held only briefly, never
     * across a call that waits on nng or a peer. */
    pthread_mutex_t lock;
    pthread_cond_t idle; /* in_flight reached 0 */
    int stopping;
    struct conn *conns[CONN_BUCKETS];
    int n_conns;
    struct slot *free_slots;
    int n_free;
    struct slot *all_slots;
    int in_flight; /* sends not completed */
    struct note note_total, note_per_peer, note_slow, note_idle, note_flood;
    int refuse_conns;   /* stopping: no new connections */
    int forgotten;      /* connections nng never released (see forget_dead) */
    pthread_cond_t drained; /* n_conns reached 0 while refuse_conns */

    /* Long polls. The notifier answers them; it never waits on a send. */
    pthread_mutex_t park_lock;
    pthread_cond_t park_wake;
    struct slot *parked;
    int n_parked;
    int park_dirty;    /* desired states changed: re-check every poll */
    int park_gone;     /* a connection went away: retire its polls */
    int drops_pending; /* some conn has drop set */
    int park_stopping;
    pthread_t notifier;
    int notifier_started;

    int n_workers;
    struct worker *workers;
};

static void logf_(const char *fmt, ...) FY_PRINTF(1, 2);
static void logf_(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ferry-registry: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Caller holds srv->lock. Logs at most once a second per kind. */
static void note_locked(struct note *n, const char *what, const char *peer)
{
    int64_t now = (int64_t)clock_mono_ms();
    if (n->last_ms && now - n->last_ms < 1000) {
        n->suppressed++;
        return;
    }
    if (n->suppressed)
        logf_("%s %s (and %u more in the last %lld ms)", what, peer, n->suppressed,
              (long long)(now - n->last_ms));
    else
        logf_("%s %s", what, peer);
    n->last_ms = now;
    n->suppressed = 0;
}

/* ---- connections ----------------------------------------------------------- */

/* Caller holds srv->lock. */
static struct conn **conn_slot(struct server *srv, uint32_t id)
{
    struct conn **c = &srv->conns[id % CONN_BUCKETS];
    while (*c && (*c)->id != id)
        c = &(*c)->next;
    return c;
}

static struct conn *conn_find(struct server *srv, uint32_t id)
{
    return *conn_slot(srv, id);
}

static void peer_of(nng_pipe p, char *out, size_t cap)
{
    nng_sockaddr sa;
    snprintf(out, cap, "?");
    if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) != 0)
        return;
    if (sa.s_family == NNG_AF_INET)
        inet_ntop(AF_INET, &sa.s_in.sa_addr, out, (socklen_t)cap);
    else if (sa.s_family == NNG_AF_INET6)
        inet_ntop(AF_INET6, sa.s_in6.sa_addr, out, (socklen_t)cap);
}

/* Dropping a connection. nng_pipe_close is not used on a running pipe: in
 * nng 1.5.2 (src/sp/transport/tcp/tcp.c) the transport's receive callback,
 * having read a message's length, re-issues the read for the body without
 * checking whether the pipe was closed meanwhile; on a closed aio that read
 * is dropped silently, so the pipe's receive never completes and its
 * teardown (rep0_pipe_stop) waits forever on nng's single reap thread. No
 * pipe is ever removed again after that, and nng_close waits forever. The
 * send side has the same flaw between the parts of a large message.
 * So a connection is only ended when nothing moves on it: it is first cut
 * off (its requests are discarded, nothing more is sent), and once no
 * request has come from it for DROP_QUIET_MS its socket is shut down for
 * reading. Linux then reports end-of-stream once the queue is drained, and
 * nng closes the pipe itself from its receive path, with nothing of its own
 * in flight. nng does not expose a pipe's descriptor: it is found by the
 * connection's two addresses. */
#define DROP_QUIET_MS 100

static int addr_is(const nng_sockaddr *n, const struct sockaddr_storage *ss)
{
    if (n->s_family == NNG_AF_INET && ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        return in->sin_port == n->s_in.sa_port && in->sin_addr.s_addr == n->s_in.sa_addr;
    }
    if (n->s_family == NNG_AF_INET6 && ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        return in6->sin6_port == n->s_in6.sa_port &&
               memcmp(&in6->sin6_addr, n->s_in6.sa_addr, 16) == 0;
    }
    return 0;
}

struct endpoints {
    nng_sockaddr remote, local;
};

static void shutdown_sockets(const struct endpoints *e, int n)
{
    if (n == 0)
        return;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end = NULL;
        long fd = strtol(de->d_name, &end, 10);
        if (!de->d_name[0] || *end || fd < 0 || fd == dirfd(d))
            continue;
        struct sockaddr_storage peer, self;
        socklen_t pl = sizeof peer, sl = sizeof self;
        if (getpeername((int)fd, (struct sockaddr *)&peer, &pl) != 0 ||
            getsockname((int)fd, (struct sockaddr *)&self, &sl) != 0)
            continue;
        for (int i = 0; i < n; i++)
            if (addr_is(&e[i].remote, &peer) && addr_is(&e[i].local, &self)) {
                shutdown((int)fd, SHUT_RD);
                break;
            }
    }
    closedir(d);
}

/* Forget connections whose socket is no longer connected although nng
 * never reported them removed: with the flaw above, a peer that resets
 * while a request of its arrives can still leave its pipe stuck in nng, and
 * such a pipe must not count against the connection caps forever. */
static void forget_dead(struct server *srv)
{
    struct known {
        uint32_t id;
        struct endpoints e;
        int alive;
    } *k = NULL;
    int n = 0;
    pthread_mutex_lock(&srv->lock);
    if (srv->n_conns > 0)
        k = calloc((size_t)srv->n_conns, sizeof *k);
    for (int b = 0; k && b < CONN_BUCKETS; b++)
        for (struct conn *c = srv->conns[b]; c && n < srv->n_conns; c = c->next) {
            k[n].id = c->id;
            k[n].e.remote = c->remote;
            k[n].e.local = c->local;
            n++;
        }
    pthread_mutex_unlock(&srv->lock);
    if (!k)
        return;
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        free(k);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end = NULL;
        long fd = strtol(de->d_name, &end, 10);
        if (!de->d_name[0] || *end || fd < 0 || fd == dirfd(d))
            continue;
        struct sockaddr_storage peer, self;
        socklen_t pl = sizeof peer, sl = sizeof self;
        if (getpeername((int)fd, (struct sockaddr *)&peer, &pl) != 0 ||
            getsockname((int)fd, (struct sockaddr *)&self, &sl) != 0)
            continue;
        for (int i = 0; i < n; i++)
            if (!k[i].alive && addr_is(&k[i].e.remote, &peer) && addr_is(&k[i].e.local, &self)) {
                k[i].alive = 1;
                break;
            }
    }
    closedir(d);
    int forgot = 0;
    pthread_mutex_lock(&srv->lock);
    for (int i = 0; i < n; i++) {
        struct conn **at = conn_slot(srv, k[i].id), *c = *at;
        if (!c)
            continue; /* removed meanwhile, as it should be */
        /* Twice in a row, scans 2 s apart: a directory listing taken while
         * descriptors come and go may miss one. */
        if (k[i].alive || ++c->missed < 2) {
            if (k[i].alive)
                c->missed = 0;
            continue;
        }
        *at = c->next;
        srv->n_conns--;
        free(c);
        forgot++;
    }
    srv->forgotten += forgot;
    if (forgot)
        logf_("error: %d closed connection%s not released by nng (its pipe teardown is stuck); "
              "no longer counted", forgot, forgot == 1 ? "" : "s");
    pthread_mutex_unlock(&srv->lock);
    free(k);
}

/* Caller holds srv->lock: have the notifier drop c. */
static void mark_drop_locked(struct server *srv, struct conn *c)
{
    if (c->drop)
        return;
    c->drop = 1;
    pthread_mutex_lock(&srv->park_lock);
    srv->drops_pending = 1;
    pthread_cond_signal(&srv->park_wake);
    pthread_mutex_unlock(&srv->park_lock);
}

/* Shut down the sockets of the connections marked for dropping that are
 * quiet now (all marked ones when force is set). Not on an nng callback: it
 * scans the descriptor table. Returns how many marked ones are left. */
static int drop_marked(struct server *srv, int force)
{
    struct endpoints *e = NULL;
    int n = 0, cap = 0, waiting = 0;
    int64_t now = (int64_t)clock_mono_ms();
    pthread_mutex_lock(&srv->lock);
    for (int b = 0; b < CONN_BUCKETS; b++)
        for (struct conn *c = srv->conns[b]; c; c = c->next) {
            if (!c->drop || c->dropped)
                continue;
            if (!force && (now - c->last_ms < DROP_QUIET_MS || c->sending > 0)) {
                waiting++;
                continue;
            }
            if (n == cap) {
                int ncap = cap ? cap * 2 : 16;
                struct endpoints *ne = realloc(e, (size_t)ncap * sizeof *e);
                if (!ne) {
                    waiting++;
                    continue;
                }
                e = ne;
                cap = ncap;
            }
            c->dropped = 1;
            e[n].remote = c->remote;
            e[n].local = c->local;
            n++;
        }
    pthread_mutex_unlock(&srv->lock);
    shutdown_sockets(e, n);
    free(e);
    return waiting;
}

/* A new connection, before nng starts it: refused (closed) over the caps.
 * nng_pipe_close is safe here: nothing has been read from the pipe yet. */
static void on_pipe_add(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    (void)ev;
    struct server *srv = arg;
    struct conn *c = calloc(1, sizeof *c);
    char peer[INET6_ADDRSTRLEN];
    peer_of(p, peer, sizeof peer);
    pthread_mutex_lock(&srv->lock);
    int same = 0;
    for (int b = 0; b < CONN_BUCKETS; b++)
        for (struct conn *o = srv->conns[b]; o; o = o->next)
            same += strcmp(o->peer, peer) == 0;
    const char *why = NULL;
    struct note *note = &srv->note_total;
    if (srv->refuse_conns)
        why = "stopping";
    else if (!c)
        why = "out of memory";
    else if (srv->n_conns >= srv->max_conns)
        why = "total connection limit reached";
    else if (same >= srv->max_per_peer) {
        why = "per-peer connection limit reached";
        note = &srv->note_per_peer;
    }
    if (why) {
        char what[160];
        snprintf(what, sizeof what, "refused a connection (%s: %d open, %d from this peer) from",
                 why, srv->n_conns, same);
        if (!srv->refuse_conns)
            note_locked(note, what, peer);
        pthread_mutex_unlock(&srv->lock);
        free(c);
        nng_pipe_close(p);
        return;
    }
    c->id = (uint32_t)nng_pipe_id(p);
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    nng_pipe_get_addr(p, NNG_OPT_REMADDR, &c->remote);
    nng_pipe_get_addr(p, NNG_OPT_LOCADDR, &c->local);
    c->last_ms = (int64_t)clock_mono_ms();
    struct conn **at = conn_slot(srv, c->id);
    c->next = *at;
    *at = c;
    srv->n_conns++;
    pthread_mutex_unlock(&srv->lock);
}

static void on_pipe_rem(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    (void)ev;
    struct server *srv = arg;
    uint32_t id = (uint32_t)nng_pipe_id(p);
    int had_parked = 0;
    pthread_mutex_lock(&srv->lock);
    struct conn **at = conn_slot(srv, id), *c = *at;
    if (c) {
        *at = c->next;
        srv->n_conns--;
        had_parked = c->parked > 0;
        free(c);
        if (srv->n_conns == 0 && srv->refuse_conns)
            pthread_cond_broadcast(&srv->drained);
    }
    pthread_mutex_unlock(&srv->lock);
    if (had_parked) {
        pthread_mutex_lock(&srv->park_lock);
        srv->park_gone = 1;
        pthread_cond_signal(&srv->park_wake);
        pthread_mutex_unlock(&srv->park_lock);
    }
}

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
static void slot_put_locked(struct server *srv, struct slot *s)
{
    s->host[0] = '\0';
    s->next = srv->free_slots;
    srv->free_slots = s;
    srv->n_free++;
}

static void slot_put(struct server *srv, struct slot *s)
{
    pthread_mutex_lock(&srv->lock);
    slot_put_locked(srv, s);
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
static void slots_trim(struct server *srv)
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

/* Send out as s's reply, without waiting. Over the per-connection limit of
 * unsent replies the connection is dropped instead: its peer does not read. */
static void reply(struct server *srv, struct slot *s, nng_msg *out)
{
    pthread_mutex_lock(&srv->lock);
    struct conn *c = conn_find(srv, s->pipe);
    if (!c || c->drop) {
        /* The connection is gone or being dropped: nobody to answer. */
        slot_put_locked(srv, s);
        pthread_mutex_unlock(&srv->lock);
        nng_msg_free(out);
        return;
    }
    if (c->sending >= SERVER_REPLIES_PER_CONN) {
        if (!c->drop)
            note_locked(&srv->note_flood,
                        "dropping a connection with too many unread replies from", c->peer);
        mark_drop_locked(srv, c);
        slot_put_locked(srv, s);
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
                note_locked(&srv->note_slow,
                            "dropping a connection that does not read its replies from", c->peer);
            mark_drop_locked(srv, c);
        }
    }
    /* Last use of s: from here another worker may take it. */
    slot_put_locked(srv, s);
    if (--srv->in_flight == 0 && srv->stopping)
        pthread_cond_broadcast(&srv->idle);
    pthread_mutex_unlock(&srv->lock);
}

/* ---- long polls ---------------------------------------------------------------- */

/* Set s aside until its host's desired state changes or its wait ends.
 * -1: not parked (stopping, connection gone, or it has too many parked). */
static int park(struct server *srv, struct slot *s, const struct server_park *p)
{
    pthread_mutex_lock(&srv->lock);
    struct conn *c = conn_find(srv, s->pipe);
    int ok = c && !srv->stopping && c->parked < SERVER_PARKED_PER_CONN;
    if (ok)
        c->parked++;
    pthread_mutex_unlock(&srv->lock);
    if (!ok)
        return -1;
    snprintf(s->host, sizeof s->host, "%s", p->host);
    s->known_serial = p->known_serial;
    uint32_t wait = p->wait_ms > SERVER_POLL_WAIT_MAX_MS ? SERVER_POLL_WAIT_MAX_MS : p->wait_ms;
    s->deadline_ms = (int64_t)clock_mono_ms() + wait;
    pthread_mutex_lock(&srv->park_lock);
    /* Checked again under this lock: server_stop collects the parked list
     * under it, and a poll added after that would never be released. */
    if (srv->park_stopping) {
        pthread_mutex_unlock(&srv->park_lock);
        pthread_mutex_lock(&srv->lock);
        if ((c = conn_find(srv, s->pipe)))
            c->parked--;
        pthread_mutex_unlock(&srv->lock);
        return -1;
    }
    s->next = srv->parked;
    srv->parked = s;
    srv->n_parked++;
    pthread_cond_signal(&srv->park_wake);
    pthread_mutex_unlock(&srv->park_lock);
    return 0;
}

void server_wake(struct server *srv)
{
    pthread_mutex_lock(&srv->park_lock);
    srv->park_dirty = 1;
    pthread_cond_signal(&srv->park_wake);
    pthread_mutex_unlock(&srv->park_lock);
}

/* The current answer for one host, computed once per notifier pass however
 * many polls wait on that host. */
struct host_answer {
    char host[72];
    int rc;
    uint64_t serial;
    nng_msg *msg;
    struct host_answer *next;
};

#define ANSWER_BUCKETS 256

static unsigned host_hash(const char *s)
{
    unsigned h = 5381;
    while (*s)
        h = h * 33 + (unsigned char)*s++;
    return h % ANSWER_BUCKETS;
}

static struct host_answer *answer_for(struct server *srv, struct host_answer **tab,
                                      const char *host)
{
    struct host_answer **a = &tab[host_hash(host)];
    for (; *a; a = &(*a)->next)
        if (strcmp((*a)->host, host) == 0)
            return *a;
    struct host_answer *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    snprintf(n->host, sizeof n->host, "%s", host);
    err_clear();
    n->rc = srv->h.desired(srv->h.arg, host, &n->serial, &n->msg);
    *a = n;
    return n;
}

static void answers_free(struct host_answer **tab)
{
    for (int b = 0; b < ANSWER_BUCKETS; b++)
        while (tab[b]) {
            struct host_answer *a = tab[b];
            tab[b] = a->next;
            if (a->msg)
                nng_msg_free(a->msg);
            free(a);
        }
}

/* Connections idle longer than the timeout are closed. A parked poll or a
 * reply being sent counts as activity: an agent's long poll is not idle. */
static int reap_idle(struct server *srv, int64_t now)
{
    int marked = 0;
    pthread_mutex_lock(&srv->lock);
    for (int b = 0; b < CONN_BUCKETS; b++)
        for (struct conn *c = srv->conns[b]; c; c = c->next) {
            if (c->drop)
                marked = 1;
            else if (c->parked > 0 || c->sending > 0)
                c->last_ms = now;
            else if (now - c->last_ms > srv->idle_ms) {
                note_locked(&srv->note_idle, "closing an idle connection from", c->peer);
                c->drop = 1;
                marked = 1;
            }
        }
    pthread_mutex_unlock(&srv->lock);
    return marked ? drop_marked(srv, 0) : 0;
}

static int64_t next_deadline(struct server *srv, int64_t now, int fast)
{
    int64_t next = now + (fast ? 50 : 250); /* the reaper's and trimmer's tick */
    for (struct slot *s = srv->parked; s; s = s->next)
        if (s->deadline_ms < next)
            next = s->deadline_ms;
    return next;
}

static void *notifier_main(void *arg)
{
    struct server *srv = arg;
    struct host_answer **answers = calloc(ANSWER_BUCKETS, sizeof *answers);
    int64_t last_reap = 0, last_gc = (int64_t)clock_mono_ms();
    int dropping = 0; /* connections marked but not yet quiet */
    pthread_mutex_lock(&srv->park_lock);
    while (!srv->park_stopping) {
        int64_t now = (int64_t)clock_mono_ms();
        if (now - last_reap >= (dropping || srv->drops_pending ? 50 : 250)) {
            srv->drops_pending = 0;
            pthread_mutex_unlock(&srv->park_lock);
            dropping = reap_idle(srv, now);
            slots_trim(srv);
            if (now - last_gc >= 2000) {
                forget_dead(srv);
                last_gc = now;
            }
            last_reap = now;
            pthread_mutex_lock(&srv->park_lock);
            continue;
        }
        int64_t next = next_deadline(srv, now, dropping || srv->drops_pending);
        if (!srv->park_dirty && !srv->park_gone && next > now) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t wait = next - now;
            ts.tv_sec += wait / 1000;
            ts.tv_nsec += (wait % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&srv->park_wake, &srv->park_lock, &ts);
            continue;
        }
        int dirty = srv->park_dirty, gone = srv->park_gone;
        srv->park_dirty = srv->park_gone = 0;
        struct slot *all = srv->parked;
        srv->parked = NULL;
        srv->n_parked = 0;
        pthread_mutex_unlock(&srv->park_lock);

        /* Decide outside the park lock (answers read the database), once
         * per distinct host; sending is asynchronous, so a peer that does
         * not read delays nobody. */
        struct slot *keep = NULL;
        int kept = 0;
        now = (int64_t)clock_mono_ms();
        while (all) {
            struct slot *s = all;
            all = s->next;
            if (gone) {
                pthread_mutex_lock(&srv->lock);
                int alive = conn_find(srv, s->pipe) != NULL;
                if (!alive)
                    slot_put_locked(srv, s);
                pthread_mutex_unlock(&srv->lock);
                if (!alive)
                    continue;
            }
            struct host_answer *a = NULL;
            int answer = s->deadline_ms <= now;
            if (!answer && dirty) {
                a = answers ? answer_for(srv, answers, s->host) : NULL;
                answer = !a || a->rc < 0 || a->serial != s->known_serial;
            }
            if (!answer) {
                s->next = keep;
                keep = s;
                kept++;
                continue;
            }
            if (!a && answers)
                a = answer_for(srv, answers, s->host);
            nng_msg *out = NULL;
            if (a && a->msg && nng_msg_dup(&out, a->msg) != 0)
                out = NULL;
            pthread_mutex_lock(&srv->lock);
            struct conn *c = conn_find(srv, s->pipe);
            if (c)
                c->parked--;
            if (!out)
                slot_put_locked(srv, s);
            pthread_mutex_unlock(&srv->lock);
            if (out)
                reply(srv, s, out);
        }
        if (answers)
            answers_free(answers);
        pthread_mutex_lock(&srv->park_lock);
        while (keep) {
            struct slot *s = keep;
            keep = s->next;
            s->next = srv->parked;
            srv->parked = s;
        }
        srv->n_parked += kept;
    }
    pthread_mutex_unlock(&srv->park_lock);
    free(answers);
    return NULL;
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
            if (park(srv, s, &pk) == 0)
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
        reply(srv, s, out);
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
    if ((rv = nng_pipe_notify(srv->sock, NNG_PIPE_EV_ADD_PRE, on_pipe_add, srv)) != 0 ||
        (rv = nng_pipe_notify(srv->sock, NNG_PIPE_EV_REM_POST, on_pipe_rem, srv)) != 0) {
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
    if (pthread_create(&srv->notifier, NULL, notifier_main, srv) != 0) {
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
 * on it is never torn down (see drop_marked). So the connections are ended
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

    /* 2. Every connection is dropped (see drop_marked): the workers take
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
        drop_marked(srv, spent >= 700);
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
        logf_("stopping: %d connection%s still open in nng%s; leaving the socket to the exit",
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
