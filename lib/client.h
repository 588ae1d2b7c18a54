/* Registry client: an nng REQ socket with a few contexts so blob chunks can
 * be in flight while earlier ones are hashed and written. Not thread-safe:
 * one thread drives a client. */
#ifndef FERRY_LIB_CLIENT_H
#define FERRY_LIB_CLIENT_H

#include "hash.h"
#include "progress.h"
#include "wire.h"

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#define CLIENT_SLOTS 4

struct client_slot {
    nng_ctx ctx;
    nng_aio *aio;
};

struct client {
    nng_socket sock;
    char url[512];
    int timeout_ms;
    nng_mtx *mtx;
    int lost; /* the connection went away: fail fast instead of waiting */
    uintptr_t live_id; /* how nng's pipe callback finds this client */
    struct client_slot slots[CLIENT_SLOTS];
};

/* Dials url (blocking, so an unreachable registry fails at once). */
int client_open(struct client *c, const char *url);
void client_close(struct client *c);

/* One exchange. A non-OK response becomes its error code with the
 * registry's text as detail. *resp is freed with client_response_free. */
int client_call(struct client *c, const Ferry__Wire__Request *req,
                Ferry__Wire__Response **resp);
void client_response_free(Ferry__Wire__Response *r);

/* Receives blob bytes [offset, size) in order and hands them to sink. The
 * sink owns chunk (free it with client_response_free, now or later); data
 * points into it. */
typedef int (*client_sink_fn)(void *arg, Ferry__Wire__Response *chunk, const uint8_t *data,
                              size_t len);
int client_fetch_blob(struct client *c, const struct digest *d, uint64_t size, uint64_t offset,
                      client_sink_fn sink, void *arg, struct progress *prog);

/* Sends blob bytes [offset, size) in order, several chunks in flight.
 * source fills buf with len bytes found at off. *sent counts bytes sent. */
typedef int (*client_source_fn)(void *arg, uint64_t off, uint8_t *buf, size_t len);
int client_push_blob(struct client *c, const struct digest *d, uint64_t size, uint64_t offset,
                     client_source_fn source, void *arg, struct progress *prog,
                     uint64_t *sent);

#endif
