/* Internal to the registry's transport (server.c, conns.c, poll.c): the
 * state they share. Nothing outside registry/server*.c, conns.c and poll.c
 * includes it; the interface is server.h. */
#ifndef FERRY_REGISTRY_SERVER_INT_H
#define FERRY_REGISTRY_SERVER_INT_H

#include "error.h"
#include "server.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdint.h>

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
/* A connection being dropped is shut down once no request came from it for
 * this long (conns.c says why). */
#define DROP_QUIET_MS 100

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
    int forgotten;      /* connections nng never released (see conns_forget_dead) */
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

/* "ferry-registry: ..." on stderr. */

/* server.c. Callers of the _locked ones hold srv->lock. */
void server_slot_put_locked(struct server *srv, struct slot *s);
/* Send out as s's reply without waiting (or give it up, see server.c). */
void server_reply(struct server *srv, struct slot *s, nng_msg *out);
/* Free idle slots beyond a few (not from an nng callback). */
void server_slots_trim(struct server *srv);

/* conns.c: the connection table, caps, idle and dropped connections. */
void conn_note_locked(struct note *n, const char *what, const char *peer);
struct conn **conn_slot(struct server *srv, uint32_t id);
struct conn *conn_find(struct server *srv, uint32_t id);
void conn_mark_drop_locked(struct server *srv, struct conn *c);
int conns_drop_marked(struct server *srv, int force);
void conns_forget_dead(struct server *srv);
int conns_reap_idle(struct server *srv, int64_t now);
void conns_on_pipe_add(nng_pipe p, nng_pipe_ev ev, void *arg);
void conns_on_pipe_rem(nng_pipe p, nng_pipe_ev ev, void *arg);

/* poll.c: parked long polls and the notifier thread. */
int server_park_poll(struct server *srv, struct slot *s, const struct server_park *p);
void *server_notifier_main(void *arg);

#endif
