/* The registry's connections: the table fed by nng's pipe events, the caps
 * checked when a connection arrives, idle connections, and dropping the
 * ones that do not read without tripping nng 1.5.2 (see below). */
#include "server_int.h"
#include "rlog.h"
#include "clock.h"

#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Caller holds srv->lock. Logs at most once a second per kind. */
void conn_note_locked(struct note *n, const char *what, const char *peer)
{
    int64_t now = (int64_t)clock_mono_ms();
    if (n->last_ms && now - n->last_ms < 1000) {
        n->suppressed++;
        return;
    }
    if (n->suppressed)
        registry_log("%s %s (and %u more in the last %lld ms)", what, peer, n->suppressed,
              (long long)(now - n->last_ms));
    else
        registry_log("%s %s", what, peer);
    n->last_ms = now;
    n->suppressed = 0;
}

/* ---- connections ----------------------------------------------------------- */

/* Caller holds srv->lock. */
struct conn **conn_slot(struct server *srv, uint32_t id)
{
    struct conn **c = &srv->conns[id % CONN_BUCKETS];
    while (*c && (*c)->id != id)
        c = &(*c)->next;
    return c;
}

struct conn *conn_find(struct server *srv, uint32_t id)
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
void conns_forget_dead(struct server *srv)
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
        registry_log("error: %d closed connection%s not released by nng (its pipe teardown is stuck); "
              "no longer counted", forgot, forgot == 1 ? "" : "s");
    pthread_mutex_unlock(&srv->lock);
    free(k);
}

/* Caller holds srv->lock: have the notifier drop c. */
void conn_mark_drop_locked(struct server *srv, struct conn *c)
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
int conns_drop_marked(struct server *srv, int force)
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
void conns_on_pipe_add(nng_pipe p, nng_pipe_ev ev, void *arg)
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
            conn_note_locked(note, what, peer);
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

void conns_on_pipe_rem(nng_pipe p, nng_pipe_ev ev, void *arg)
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

/* Connections idle longer than the timeout are closed. A parked poll or a
 * reply being sent counts as activity: an agent's long poll is not idle. */
int conns_reap_idle(struct server *srv, int64_t now)
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
                conn_note_locked(&srv->note_idle, "closing an idle connection from", c->peer);
                c->drop = 1;
                marked = 1;
            }
        }
    pthread_mutex_unlock(&srv->lock);
    return marked ? conns_drop_marked(srv, 0) : 0;
}
