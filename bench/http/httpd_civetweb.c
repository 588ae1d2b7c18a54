/* httpd (model/httpd.h) on civetweb, for the HTTP library comparison only
 * (bench/http.sh, docs/http-server.md); not linked into ferry.
 *
 * civetweb runs one worker thread per connection and expects the response
 * to be written before begin_request returns. A parked request therefore
 * keeps its worker thread blocked on a condition variable until
 * httpd_respond (from any thread) hands over the answer, which the worker
 * then writes. It meets the contract, at one thread per parked request. */
#include "httpd.h"

#include <civetweb.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"

struct hreq {
    struct httpd_request pub;
    struct httpd *h;
    int answered;
    int status;
    char *ctype;
    char *out;
    size_t out_len;
    pthread_cond_t cv;
    struct hreq *prev, *next; /* h->waiters while the worker waits */
};

struct httpd {
    struct mg_context *ctx;
    httpd_handler_fn handler;
    void *hctx;
    size_t max_body;
    int port;
    pthread_mutex_t mu;
    int stopping;
    struct hreq *waiters; /* workers blocked on a parked request */
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void write_answer(struct mg_connection *conn, int status, const char *ctype, const char *body,
                         size_t len)
{
    char cl[32];
    snprintf(cl, sizeof cl, "%zu", len);
    mg_response_header_start(conn, status);
    mg_response_header_add(conn, "Content-Type", ctype ? ctype : "application/json", -1);
    mg_response_header_add(conn, "Content-Length", cl, -1);
    mg_response_header_send(conn);
    if (len)
        mg_write(conn, body, len);
}

static int on_request(struct mg_connection *conn)
{
    struct httpd *h = mg_get_user_data(mg_get_context(conn));
    const struct mg_request_info *ri = mg_get_request_info(conn);
    struct hreq r;
    memset(&r, 0, sizeof r);
    r.h = h;
    pthread_cond_init(&r.cv, NULL);
    const char *ct = mg_get_header(conn, "Content-Type");
    r.pub.method = ri->request_method;
    r.pub.path = ri->local_uri ? ri->local_uri : ri->request_uri;
    r.pub.query = ri->query_string ? ri->query_string : "";
    r.pub.content_type = ct ? ct : "";

    char *body = NULL;
    size_t len = 0, cap = 0;
    int too_large = ri->content_length > 0 && (unsigned long long)ri->content_length > h->max_body;
    char chunk[16384];
    for (;;) {
        int n = mg_read(conn, chunk, sizeof chunk);
        if (n <= 0)
            break;
        if (too_large)
            continue;
        if (len + (size_t)n > h->max_body) {
            too_large = 1;
            free(body);
            body = NULL;
            len = cap = 0;
            continue;
        }
        if (len + (size_t)n + 1 > cap) {
            size_t nc = cap ? cap * 2 : 4096;
            while (nc < len + (size_t)n + 1)
                nc *= 2;
            char *nb = realloc(body, nc);
            if (!nb) {
                free(body);
                mg_send_http_error(conn, 500, "out of memory");
                return 500;
            }
            body = nb;
            cap = nc;
        }
        memcpy(body + len, chunk, (size_t)n);
        len += (size_t)n;
        body[len] = '\0';
    }
    r.pub.body = too_large ? NULL : body;
    r.pub.body_len = too_large ? 0 : len;
    r.pub.body_too_large = too_large;
    r.pub.arrived_ns = mono_ns();

    h->handler(h->hctx, &r.pub);

    pthread_mutex_lock(&h->mu);
    r.next = h->waiters;
    if (h->waiters)
        h->waiters->prev = &r;
    h->waiters = &r;
    while (!r.answered && !h->stopping)
        pthread_cond_wait(&r.cv, &h->mu);
    if (!r.answered) {
        r.answered = 1;
        r.status = 503;
        r.out = strdup("{\"error\": \"server stopping\"}");
        r.out_len = r.out ? strlen(r.out) : 0;
    }
    if (r.prev)
        r.prev->next = r.next;
    else
        h->waiters = r.next;
    if (r.next)
        r.next->prev = r.prev;
    pthread_mutex_unlock(&h->mu);

    write_answer(conn, r.status, r.ctype, r.out, r.out_len);
    int st = r.status;
    free(r.out);
    free(r.ctype);
    free(body);
    pthread_cond_destroy(&r.cv);
    return st;
}

int httpd_respond(struct httpd_request *req, int status, const char *content_type,
                  const char *body, size_t len)
{
    struct hreq *r = (struct hreq *)req;
    struct httpd *h = r->h;
    char *out = malloc(len + 1);
    char *ct = content_type ? strdup(content_type) : NULL;
    if (!out || (content_type && !ct)) {
        free(out);
        free(ct);
        return err_set(-ENOMEM, "httpd: out of memory");
    }
    if (len)
        memcpy(out, body, len);
    pthread_mutex_lock(&h->mu);
    if (r->answered) {
        pthread_mutex_unlock(&h->mu);
        free(out);
        free(ct);
        return err_set(FERRY_E_INVALID, "httpd: request answered twice");
    }
    r->answered = 1;
    r->status = status;
    r->out = out;
    r->out_len = len;
    r->ctype = ct;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&h->mu);
    return 0;
}

static int on_log(const struct mg_connection *conn, const char *msg)
{
    (void)conn;
    (void)msg;
    return 1;
}

int httpd_start(const struct httpd_config *cfg, struct httpd **out)
{
    *out = NULL;
    struct httpd *h = calloc(1, sizeof *h);
    if (!h)
        return err_set(-ENOMEM, "httpd: out of memory");
    h->handler = cfg->handler;
    h->hctx = cfg->ctx;
    h->max_body = cfg->max_body;
    pthread_mutex_init(&h->mu, NULL);
    char ports[128], threads[16];
    snprintf(ports, sizeof ports, "%s:%d", cfg->addr ? cfg->addr : "127.0.0.1", cfg->port);
    /* civetweb serves one connection per thread: its own default is 50. */
    snprintf(threads, sizeof threads, "%u", cfg->threads ? cfg->threads : 50);
    const char *opts[] = {"listening_ports", ports, "num_threads", threads,
                          "enable_keep_alive", "yes", "request_timeout_ms", "60000",
                          /* without it, header and body writes meet Nagle and
                           * delayed ACKs: 40 ms per request */
                          "tcp_nodelay", "1", NULL};
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.begin_request = on_request;
    cb.log_message = on_log;
    mg_init_library(0);
    h->ctx = mg_start(&cb, h, opts);
    if (!h->ctx) {
        free(h);
        return err_set(-EADDRINUSE, "httpd: civetweb cannot listen on %s", ports);
    }
    struct mg_server_port sp[4];
    int n = mg_get_server_ports(h->ctx, 4, sp);
    h->port = n > 0 ? sp[0].port : cfg->port;
    *out = h;
    return 0;
}

int httpd_port(const struct httpd *h)
{
    return h->port;
}

void httpd_stop(struct httpd *h)
{
    /* Every blocked worker answers its own request 503; mg_stop joins. */
    pthread_mutex_lock(&h->mu);
    h->stopping = 1;
    for (struct hreq *r = h->waiters; r; r = r->next)
        pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&h->mu);
    mg_stop(h->ctx);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
