/* The registry's transport: an nng REP socket served by worker threads,
 * with replies sent asynchronously under a deadline, long polls parked
 * without holding a thread, and connection caps per peer and in total.
 * What a request means is the handler's business (registry.c); this module
 * only moves messages and keeps one client from stopping the others. */
#ifndef FERRY_REGISTRY_SERVER_H
#define FERRY_REGISTRY_SERVER_H

#include <nng/nng.h>
#include <stdint.h>

#define SERVER_DEFAULT_MAX_CONNS 1000
#define SERVER_DEFAULT_MAX_CONNS_PER_PEER 256
#define SERVER_DEFAULT_IDLE_TIMEOUT_MS 120000
/* A reply not taken by the peer's connection within this long means the
 * peer does not read: its connection is dropped. */
#define SERVER_SEND_TIMEOUT_MS 1000
/* Per connection: polls parked at once, and replies waiting to be sent.
 * The ferry client keeps at most 4 requests outstanding and one poll. */
#define SERVER_PARKED_PER_CONN 64
#define SERVER_REPLIES_PER_CONN 8
#define SERVER_POLL_WAIT_MAX_MS 60000

/* What a poll that should wait says; filled by the handler's serve. */
struct server_park {
    char host[72];
    uint64_t known_serial;
    uint32_t wait_ms;
};

struct server_handler {
    void *arg;
    /* One request to one reply. A poll with nothing new returns NULL and
     * fills park->host (never both). Runs on a worker thread. */
    nng_msg *(*serve)(void *arg, nng_msg *in, struct server_park *park);
    /* The reply to a waiting poll for host now, and the serial it carries.
     * Negative when the reply is an error (send it all the same). Runs on
     * a worker or the notifier thread. */
    int (*desired)(void *arg, const char *host, uint64_t *serial, nng_msg **reply);
};

struct server_config {
    const char *listen_url;
    const char *tls_cert_key;
    int workers;
    int max_conns;          /* 0: default */
    int max_conns_per_peer; /* 0: default */
    int idle_timeout_ms;    /* 0: default */
};

struct server;

int server_start(const struct server_config *cfg, const struct server_handler *h,
                 struct server **out);
/* The URL actually listened on (with the chosen port). */
const char *server_url(const struct server *s);
/* Desired states may have changed: re-check every parked poll. */
void server_wake(struct server *s);
/* Stops listening, drops every connection, waits for the threads, frees s.
 * Bounded: nothing here waits on a peer. */
void server_stop(struct server *s);

#endif
