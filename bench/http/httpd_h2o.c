/* httpd (model/httpd.h) on h2o 2.2 with its own event loop (libh2o-evloop),
 * for the HTTP library comparison only (bench/http.sh,
 * docs/http-server.md); not linked into ferry.
 *
 * One event loop per thread, each with its own SO_REUSEPORT listener on the
 * same port. h2o objects may only be touched on their loop's thread, so an
 * answer from another thread is stored and a message is posted to the loop
 * (h2o_multithread_send_message wakes it), whose receiver sends it. A
 * request torn down by h2o while parked (client gone) is noticed through a
 * dispose hook on its memory pool; the answer that comes later is dropped.
 *
 * Deviation from the contract: h2o 2.2 buffers the whole body before the
 * handler runs and answers 413 itself past max_request_entity_size, so the
 * handler never sees body_too_large. */
#define H2O_USE_EPOLL 1
#include "httpd.h"

#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <h2o.h>
#include <h2o/multithread.h>

#include "error.h"

#define MAX_THREADS 16

enum { S_HANDLING, S_PARKED, S_ANSWERED, S_DONE };

struct loop;

struct hreq {
    struct httpd_request pub;
    h2o_multithread_message_t msg; /* posted to the loop when answered */
    struct loop *l;
    h2o_req_t *req;                /* NULL once h2o disposed it */
    int state;
    int refs;                      /* the h2o request + the answer */
    int status;
    char *ctype, *out;
    size_t out_len;
    char *method, *path, *query, *ctype_in, *body;
    h2o_linklist_t parked;         /* l->parked while S_PARKED */
};

struct loop {
    struct httpd *h;
    pthread_t thread;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t answers, stopper;
    h2o_multithread_message_t stop_msg;
    h2o_socket_t *listener;
    int fd;
    int exit;
    h2o_linklist_t parked;
};

struct httpd {
    h2o_globalconf_t config;
    httpd_handler_fn handler;
    void *hctx;
    size_t max_body;
    int port;
    unsigned n;
    struct loop loops[MAX_THREADS];
    pthread_mutex_t mu;
    pthread_barrier_t ready;
};

static __thread struct hreq *tl_handling;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static char *dupn(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        if (n)
            memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static void hreq_unref(struct hreq *r) /* with h->mu held */
{
    if (--r->refs > 0)
        return;
    free(r->ctype);
    free(r->out);
    free(r->method);
    free(r->path);
    free(r->query);
    free(r->ctype_in);
    free(r->body);
    free(r);
}

static void send_answer(h2o_req_t *req, int status, const char *ctype, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = status == 200 ? "OK" : "-";
    const char *ct = ctype ? ctype : "application/json";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ct, strlen(ct));
    h2o_send_inline(req, body, len);
}

/* Pool dispose hook: h2o is done with the request. */
static void on_dispose(void *p)
{
    struct hreq *r = *(struct hreq **)p;
    struct httpd *h = r->l->h;
    pthread_mutex_lock(&h->mu);
    r->req = NULL;
    if (r->state == S_PARKED)
        h2o_linklist_unlink(&r->parked);
    hreq_unref(r);
    pthread_mutex_unlock(&h->mu);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct loop *l = H2O_STRUCT_FROM_MEMBER(struct loop, ctx, req->conn->ctx);
    struct httpd *h = l->h;
    struct hreq *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    r->l = l;
    r->req = req;
    r->refs = 2;
    struct hreq **slot = h2o_mem_alloc_shared(&req->pool, sizeof *slot, on_dispose);
    *slot = r;
    size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    r->method = dupn(req->method.base, req->method.len);
    r->path = dupn(req->path_normalized.base, req->path_normalized.len);
    r->query = req->query_at != SIZE_MAX ? dupn(req->path.base + plen + 1, req->path.len - plen - 1)
                                         : dupn("", 0);
    ssize_t ci = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    r->ctype_in = ci >= 0 ? dupn(req->headers.entries[ci].value.base, req->headers.entries[ci].value.len)
                          : dupn("", 0);
    r->body = req->entity.base ? dupn(req->entity.base, req->entity.len) : NULL;
    r->pub.method = r->method;
    r->pub.path = r->path;
    r->pub.query = r->query;
    r->pub.content_type = r->ctype_in;
    r->pub.body = r->body;
    r->pub.body_len = r->body ? req->entity.len : 0;
    r->pub.arrived_ns = mono_ns();
    r->state = S_HANDLING;

    tl_handling = r;
    h->handler(h->hctx, &r->pub);
    tl_handling = NULL;

    pthread_mutex_lock(&h->mu);
    if (r->state == S_ANSWERED) { /* answered inline */
        r->state = S_DONE;
        pthread_mutex_unlock(&h->mu);
        send_answer(req, r->status, r->ctype, r->out, r->out_len);
        pthread_mutex_lock(&h->mu);
        hreq_unref(r);
    } else if (r->state == S_HANDLING) {
        r->state = S_PARKED;
        h2o_linklist_insert(&l->parked, &r->parked);
    } /* else: answered from another thread already; the message will send it */
    pthread_mutex_unlock(&h->mu);
    return 0;
}

static void deliver(struct hreq *r)
{
    struct httpd *h = r->l->h;
    pthread_mutex_lock(&h->mu);
    h2o_req_t *req = r->req;
    if (r->state == S_PARKED)
        h2o_linklist_unlink(&r->parked);
    r->state = S_DONE;
    pthread_mutex_unlock(&h->mu);
    if (req) /* loop thread: req cannot go away under us */
        send_answer(req, r->status, r->ctype, r->out, r->out_len);
    pthread_mutex_lock(&h->mu);
    hreq_unref(r);
    pthread_mutex_unlock(&h->mu);
}

static void on_answers(h2o_multithread_receiver_t *recv, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        deliver(H2O_STRUCT_FROM_MEMBER(struct hreq, msg, m));
    }
}

static void on_stop(h2o_multithread_receiver_t *recv, h2o_linklist_t *messages)
{
    struct loop *l = H2O_STRUCT_FROM_MEMBER(struct loop, stopper, recv);
    while (!h2o_linklist_is_empty(messages))
        h2o_linklist_unlink(messages->next);
    struct httpd *h = l->h;
    for (;;) {
        pthread_mutex_lock(&h->mu);
        if (h2o_linklist_is_empty(&l->parked)) {
            pthread_mutex_unlock(&h->mu);
            break;
        }
        struct hreq *r = H2O_STRUCT_FROM_MEMBER(struct hreq, parked, l->parked.next);
        r->status = 503;
        r->out = strdup("{\"error\": \"server stopping\"}");
        r->out_len = r->out ? strlen(r->out) : 0;
        /* deliver drops the answer side's reference: like any answer, the
         * request is gone for the caller after this. */
        pthread_mutex_unlock(&h->mu);
        deliver(r);
    }
    l->exit = 1;
}

int httpd_respond(struct httpd_request *req, int status, const char *content_type,
                  const char *body, size_t len)
{
    struct hreq *r = (struct hreq *)req;
    struct httpd *h = r->l->h;
    char *out = dupn(body ? body : "", len);
    char *ct = content_type ? strdup(content_type) : NULL;
    pthread_mutex_lock(&h->mu);
    if (r->state != S_HANDLING && r->state != S_PARKED) {
        pthread_mutex_unlock(&h->mu);
        free(out);
        free(ct);
        return err_set(FERRY_E_INVALID, "httpd: request answered twice");
    }
    r->status = status;
    r->out = out;
    r->out_len = out ? len : 0;
    r->ctype = ct;
    int inline_ = tl_handling == r;
    if (inline_)
        r->state = S_ANSWERED;
    else if (r->state == S_HANDLING)
        r->state = S_DONE; /* on_req must not park it; the message sends it */
    pthread_mutex_unlock(&h->mu);
    if (!inline_)
        h2o_multithread_send_message(&r->l->answers, &r->msg);
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err)
        return;
    struct loop *l = listener->data;
    h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
    if (sock)
        h2o_accept(&l->accept, sock);
}

static void *loop_main(void *arg)
{
    struct loop *l = arg;
    struct httpd *h = l->h;
    h2o_context_init(&l->ctx, h2o_evloop_create(), &h->config);
    l->accept.ctx = &l->ctx;
    l->accept.hosts = h->config.hosts;
    h2o_linklist_init_anchor(&l->parked);
    l->queue = h2o_multithread_create_queue(l->ctx.loop);
    h2o_multithread_register_receiver(l->queue, &l->answers, on_answers);
    h2o_multithread_register_receiver(l->queue, &l->stopper, on_stop);
    l->listener = h2o_evloop_socket_create(l->ctx.loop, l->fd, H2O_SOCKET_FLAG_DONT_READ);
    l->listener->data = l;
    h2o_socket_read_start(l->listener, on_accept);
    pthread_barrier_wait(&h->ready);
    while (!l->exit)
        h2o_evloop_run(l->ctx.loop, INT32_MAX);
    /* Flush what was just queued (the 503s), bounded. */
    for (int i = 0; i < 20; i++)
        h2o_evloop_run(l->ctx.loop, 10);
    h2o_socket_read_stop(l->listener);
    h2o_socket_close(l->listener);
    return NULL;
}

static int listen_fd(const char *addr, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
        return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, SOMAXCONN) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int httpd_start(const struct httpd_config *cfg, struct httpd **out)
{
    *out = NULL;
    struct httpd *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    h->handler = cfg->handler;
    h->hctx = cfg->ctx;
    h->max_body = cfg->max_body;
    pthread_mutex_init(&h->mu, NULL);
    unsigned n = cfg->threads;
    if (n == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c < 1 ? 1 : (unsigned)c;
    }
    if (n > MAX_THREADS)
        n = MAX_THREADS;
    h->n = n;
    h2o_config_init(&h->config);
    h->config.max_request_entity_size = cfg->max_body;
    h2o_hostconf_t *host = h2o_config_register_host(&h->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    const char *addr = cfg->addr ? cfg->addr : "127.0.0.1";
    int port = cfg->port;
    for (unsigned i = 0; i < n; i++) {
        struct loop *l = &h->loops[i];
        l->h = h;
        int fd = listen_fd(addr, port);
        if (fd < 0)
            return err_set(fd, "httpd: h2o cannot listen on %s:%d", addr, port);
        if (port == 0) {
            struct sockaddr_in sa;
            socklen_t sl = sizeof sa;
            getsockname(fd, (struct sockaddr *)&sa, &sl);
            port = ntohs(sa.sin_port);
        }
        l->fd = fd;
    }
    h->port = port;
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *hd = h2o_create_handler(path, sizeof *hd);
    hd->on_req = on_req;
    /* Each loop thread builds its own loop, context, queue and listener:
     * h2o takes socket buffers from a per-thread recycling list and gives
     * them back to the list they came from, so sockets created on this
     * thread and read on a loop thread would share one unlocked list. */
    pthread_barrier_init(&h->ready, NULL, n + 1);
    for (unsigned i = 0; i < n; i++)
        if (pthread_create(&h->loops[i].thread, NULL, loop_main, &h->loops[i]) != 0)
            return err_set(-EAGAIN, "httpd: cannot start h2o loop thread");
    pthread_barrier_wait(&h->ready);
    *out = h;
    return 0;
}

int httpd_port(const struct httpd *h)
{
    return h->port;
}

void httpd_stop(struct httpd *h)
{
    for (unsigned i = 0; i < h->n; i++)
        h2o_multithread_send_message(&h->loops[i].stopper, &h->loops[i].stop_msg);
    for (unsigned i = 0; i < h->n; i++)
        pthread_join(h->loops[i].thread, NULL);
    /* The loops and contexts are left to process exit: this adapter only
     * lives for one benchmark run. */
}
