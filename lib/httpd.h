/* httpd — ferry's HTTP server (the model server's front end and the
 * registry's dashboard side), one small interface over the HTTP server
 * library ferry chose by measurement (docs/http-server.md). Nothing outside
 * httpd.c sees the library.
 *
 * Contract:
 *  - The handler is called once per complete request (headers and body
 *    read), on one of the library's threads.
 *  - The handler, or any thread later, answers with httpd_respond exactly
 *    once. Until then req and everything it points to stay valid; after
 *    it, they are gone. A handler may return before answering (the
 *    request is parked, e.g. waiting for a batch).
 *  - A body over max_body is not buffered: the handler is called with
 *    body_too_large set, body NULL, and must still answer (400).
 *  - Errors: 0 or a negative code (-errno or FERRY_E_*), err_set detail. */
#ifndef FERRY_HTTPD_H
#define FERRY_HTTPD_H

#include <stddef.h>
#include <stdint.h>

struct httpd;

struct httpd_request {
    const char *method;       /* "GET", "POST", ... */
    const char *path;         /* decoded path without the query, "/v2/models/iris" */
    const char *query;        /* raw query after '?', "" when none */
    const char *content_type; /* Content-Type header, "" when absent */
    const char *body;         /* NUL-terminated copy of the body; NULL when none or too large */
    size_t body_len;
    int body_too_large;       /* the body was over max_body and was discarded */
    uint64_t arrived_ns;      /* CLOCK_MONOTONIC when the request was complete */
};

typedef void (*httpd_handler_fn)(void *ctx, struct httpd_request *req);

struct httpd_config {
    const char *addr;         /* "127.0.0.1", "0.0.0.0" */
    int port;                 /* 0: any free port (see httpd_port) */
    size_t max_body;          /* bytes */
    unsigned threads;         /* library worker threads; 0: the adapter's default */
    unsigned max_conns;       /* connections at once; 0: the library's default */
    unsigned max_conns_per_ip; /* connections at once from one address; 0: no limit */
    size_t conn_memory;       /* per-connection buffer for the request line and
                                 headers (a longer URL gets 414/431); 0: default */
    unsigned idle_timeout_s;  /* idle connections closed after this; 0: 60 s */
    httpd_handler_fn handler;
    void *ctx;
};

int httpd_start(const struct httpd_config *cfg, struct httpd **out);
/* The port actually bound. */
int httpd_port(const struct httpd *h);
/* A request header (case-insensitive name), or NULL when absent. Only
 * from inside the handler, before it answers or returns. */
const char *httpd_header(const struct httpd_request *req, const char *name);
/* A query argument, percent-decoded by the library, or NULL when absent
 * (the first when given twice). Same lifetime rule as httpd_header. */
const char *httpd_arg(const struct httpd_request *req, const char *name);
/* Any thread, exactly once per request. body is copied; content_type
 * NULL means "application/json". */
int httpd_respond(struct httpd_request *req, int status, const char *content_type,
                  const char *body, size_t len);
/* httpd_respond with one more header (name and value; NULL: none), e.g.
 * Allow on a 405 or WWW-Authenticate on a 401. */
int httpd_respond_with(struct httpd_request *req, int status, const char *content_type,
                       const char *header, const char *value, const char *body, size_t len);
/* Stop accepting, answer parked requests with 503, join the threads, free. */
void httpd_stop(struct httpd *h);

#endif
