/* The registry's HTTP side: a read-only server (GET and HEAD only) for the
 * dashboard, the JSON API and Prometheus, on lib/httpd.h. Loopback by
 * default; any other address needs a bearer token (docs/security.md,
 * "The HTTP side"). Requests are routed through tables of
 * (method, path or prefix, handler); each area keeps its own table in its
 * own file (http_api.c: /api/v1/..., http_prom.c: /metrics, http_page.c: the
 * page) and http.c lists the tables.
 *
 * Handlers run on the HTTP library's threads, never on the registry's
 * workers. They read the metadata through their own read-only connections
 * (http_reader), so a slow page never holds the lock the registry's
 * requests need. */
#ifndef FERRY_REGISTRY_HTTP_H
#define FERRY_REGISTRY_HTTP_H

#include "db.h"
#include "httpd.h"

#include <stddef.h>
#include <stdint.h>

#define HTTP_DEFAULT_LISTEN "127.0.0.1:7480"
/* Caps (docs/security.md): connections at once, in total and per address,
 * and the buffer a request line and its headers must fit (past it: 414 or
 * 431 from the library, the connection closed). */
#define HTTP_MAX_CONNS 256
#define HTTP_MAX_CONNS_PER_IP 64
#define HTTP_CONN_MEMORY (32u * 1024)
#define HTTP_IDLE_TIMEOUT_S 30
/* A token file: one line, at least this many bytes of it. */
#define HTTP_TOKEN_MIN 16
#define HTTP_TOKEN_MAX 512

struct registry;
struct http_server;

struct http_config {
    const char *listen;     /* "ADDR:PORT", "[V6]:PORT"; NULL or "off": no server */
    const char *token_file; /* --http-token FILE; NULL: no token */
    const char *data_dir;   /* where registry.db is */
    unsigned threads;       /* 0: 2 */
    const char *assets_dir; /* --http-assets DIR; NULL: beside the binary (http_page.h) */
    int host_ttl_ms;        /* when a host counts as offline, for the stream (http_stream.h) */
    const char *logs_key;   /* --http-logs-key FILE: the log tail (http_logs.h); NULL: off */
};

/* One request as a route's handler sees it. */
struct http_call {
    struct registry *reg;
    struct http_server *srv;
    struct httpd_request *req;
    const char *method;     /* "GET" or "HEAD" (a HEAD is answered as a GET, without the body) */
    const char *path;       /* decoded, without the query */
    const char *tail;       /* for a prefix route: what follows the prefix */
};

/* What a handler answers. body is malloc'd (freed by http.c) or NULL for
 * an empty one; content_type NULL means application/json. A handler that
 * answers the request itself (httpd_respond, e.g. a stream) sets taken. */
struct http_reply {
    int status;
    const char *content_type;
    char *body;
    size_t len;
    int taken;
};

/* 0 with *out filled, or a negative code with err_set detail: the answer
 * is then {"error": "<detail>"} with 400 for FERRY_E_INVALID, 404 for
 * FERRY_E_NOTFOUND, 413/503 for FERRY_E_LIMIT/-EBUSY, else 500. */
typedef int (*http_handler_fn)(const struct http_call *c, struct http_reply *out);

struct http_route {
    const char *method; /* "GET" (a GET route also answers HEAD) */
    const char *path;   /* exact, or with prefix set every path starting with it */
    int prefix;
    http_handler_fn fn;
};
/* Each table ends with an entry whose path is NULL. */
extern const struct http_route http_api_routes[]; /* http_api.c */
extern const struct http_route http_page_routes[];   /* http_page.c: / and /assets/ */
extern const struct http_route http_stream_routes[]; /* http_stream.c: /api/v1/stream */
extern const struct http_route http_logs_routes[];   /* http_logs.c: /api/v1/logs/NAME */
/* The page's assets and the stream's state, for their handlers. */
struct http_page *http_server_page(const struct http_server *s);
struct http_stream *http_server_stream(const struct http_server *s);
struct http_logs *http_server_logs(const struct http_server *s);
extern const struct http_route http_prom_routes[]; /* http_prom.c: /metrics */

/* Checks cfg (address, loopback or token) without binding anything: the
 * registry calls it before it opens its stores so a bad --http fails with
 * one line and nothing started. *off = 1 when cfg turns the server off. */
int http_config_check(const struct http_config *cfg, int *off);
/* Binds and serves; *out NULL (and 0) when cfg->listen is NULL or "off". */
int http_start(const struct http_config *cfg, struct registry *reg, struct http_server **out);
/* "http://ADDR:PORT" with the port actually bound. */
const char *http_url(const struct http_server *s);
int http_port(const struct http_server *s);
void http_stop(struct http_server *s);

/* A read-only metadata connection for the calling handler; give it back
 * with http_reader_put. NULL (err_set) when none could be had in time. */
struct db *http_reader_get(struct http_server *s);
void http_reader_put(struct http_server *s, struct db *db);

/* A decoded query argument, or NULL when absent. */
const char *http_arg(const struct http_call *c, const char *name);

/* Helpers for JSON handlers: out gets the compact encoding of v (which is
 * released). */
struct json_t;
int http_json(struct http_reply *out, int status, struct json_t *v);

/* 0 when addr is a loopback address (127.0.0.0/8 or ::1). */
int http_addr_is_loopback(const char *addr);
/* Splits "ADDR:PORT" / "[V6]:PORT" into a numeric address and a port. */
int http_parse_listen(const char *listen, char *addr, size_t cap, int *port);

#endif
