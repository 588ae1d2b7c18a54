/* httpd on GNU libmicrohttpd (chosen by measurement: docs/http-server.md),
 * shared by the model server and the registry (lib/CMakeLists.txt: ferry_httpd).
 *
 * The daemon runs a pool of epoll threads (MHD_USE_INTERNAL_POLLING_THREAD
 * with MHD_OPTION_THREAD_POOL_SIZE), each owning its connections. A
 * request's state (struct hreq) is created by the URI log callback, the one
 * place MHD shows the raw URI (so the raw query survives), and freed by the
 * completion notifier. The body arrives in chunks to the access handler;
 * past max_body the chunks are consumed but dropped.
 *
 * Parking: when the handler returns without answering, the connection is
 * suspended (MHD_suspend_connection, allowed only from the access handler,
 * which is where we are). httpd_respond from another thread stores the
 * answer and resumes it; MHD then calls the access handler again, which
 * queues the stored answer. One mutex per daemon orders "handler returned,
 * suspend" against "respond, resume", so a resume never precedes its
 * suspend; it also guards the list of parked requests httpd_stop answers. */
#include "httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "error.h"

/* How long httpd_stop waits for the 503s of parked requests to be written
 * before it closes their connections anyway. */
#define STOP_DRAIN_MS 2000
/* Idle keep-alive connections are closed after this many seconds. */
#define IDLE_TIMEOUT_S 60

enum hstate {
    H_READING = 0, /* headers or body still arriving */
    H_HANDLING,    /* the handler is running, inline on an MHD thread */
    H_PARKED,      /* the handler returned unanswered: connection suspended */
    H_ANSWERED,    /* an answer is stored, not yet queued */
    H_QUEUED,      /* handed to MHD */
};

struct hreq {
    struct httpd_request pub; /* first: httpd_respond casts back */
    struct httpd *h;
    struct MHD_Connection *conn;
    enum hstate state;
    int stop_answered;        /* answered 503 by httpd_stop: counted in h->draining */
    char *method, *path, *query, *ctype;
    char *body;
    size_t cap;
    int status;
    struct MHD_Response *resp;
    struct hreq *prev, *next; /* h->parked while H_PARKED */
};

struct httpd {
    struct MHD_Daemon *d;
    httpd_handler_fn handler;
    void *ctx;
    size_t max_body;
    int port;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct hreq *parked;
    int stopping;
    unsigned draining; /* parked requests answered by stop, not yet completed */
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void hreq_free(struct hreq *r)
{
    if (!r)
        return;
    if (r->resp)
        MHD_destroy_response(r->resp);
    free(r->method);
    free(r->path);
    free(r->query);
    free(r->ctype);
    free(r->body);
    free(r);
}

static void park_unlink(struct httpd *h, struct hreq *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else if (h->parked == r)
        h->parked = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

static struct MHD_Response *make_response(const char *ctype, const char *body, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)(body ? body : ""), MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return NULL;
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                ctype ? ctype : "application/json") != MHD_YES) {
        MHD_destroy_response(resp);
        return NULL;
    }
    return resp;
}

/* Queue r's stored answer; called on r's MHD thread with h->mu held. */
static enum MHD_Result queue_answer(struct hreq *r)
{
    enum MHD_Result ok = MHD_NO;
    if (r->resp)
        ok = MHD_queue_response(r->conn, (unsigned)r->status, r->resp);
    if (r->resp) {
        MHD_destroy_response(r->resp); /* MHD keeps its own reference */
        r->resp = NULL;
    }
    r->state = H_QUEUED;
    return ok; /* MHD_NO closes the connection (allocation failure) */
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct httpd *h = cls;
    struct hreq *r = calloc(1, sizeof *r);
    if (!r)
        return NULL; /* the access handler answers 500 without state */
    r->h = h;
    r->conn = conn;
    const char *q = uri ? strchr(uri, '?') : NULL;
    r->query = strdup(q ? q + 1 : "");
    if (!r->query) {
        free(r);
        return NULL;
    }
    return r;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct httpd *h = cls;
    struct hreq *r = *con_cls;
    *con_cls = NULL;
    if (!r)
        return;
    pthread_mutex_lock(&h->mu);
    if (r->state == H_PARKED || r->state == H_ANSWERED)
        park_unlink(h, r); /* only reached when MHD itself tears down */
    if (r->stop_answered && h->draining > 0) {
        h->draining--;
        pthread_cond_broadcast(&h->cv);
    }
    pthread_mutex_unlock(&h->mu);
    hreq_free(r);
}

static enum MHD_Result answer_now(struct MHD_Connection *conn, unsigned status, const char *body)
{
    struct MHD_Response *resp = make_response(NULL, body, strlen(body));
    if (!resp)
        return MHD_NO;
    enum MHD_Result ok = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ok;
}

static int fill_request(struct hreq *r, struct MHD_Connection *conn, const char *url,
                        const char *method)
{
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    r->method = strdup(method);
    r->path = strdup(url);
    r->ctype = strdup(ct ? ct : "");
    if (!r->method || !r->path || !r->ctype)
        return -ENOMEM;
    r->pub.method = r->method;
    r->pub.path = r->path;
    r->pub.query = r->query;
    r->pub.content_type = r->ctype;
    return 0;
}

static int append_body(struct hreq *r, const char *data, size_t n)
{
    if (r->pub.body_too_large)
        return 0;
    if (n > r->h->max_body || r->pub.body_len > r->h->max_body - n) {
        /* Past the cap: drop what was kept, count nothing more. */
        free(r->body);
        r->body = NULL;
        r->cap = 0;
        r->pub.body_len = 0;
        r->pub.body_too_large = 1;
        return 0;
    }
    size_t need = r->pub.body_len + n + 1;
    if (need > r->cap) {
        size_t cap = r->cap ? r->cap : 1024;
        while (cap < need)
            cap = cap > (SIZE_MAX / 2) ? need : cap * 2;
        char *nb = realloc(r->body, cap);
        if (!nb)
            return -ENOMEM;
        r->body = nb;
        r->cap = cap;
    }
    memcpy(r->body + r->pub.body_len, data, n);
    r->pub.body_len += n;
    r->body[r->pub.body_len] = '\0';
    return 0;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    struct httpd *h = cls;
    struct hreq *r = *con_cls;
    if (!r)
        return answer_now(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "{\"error\": \"out of memory\"}");

    if (r->state == H_READING) {
        if (!r->method) { /* first call: headers are complete */
            if (fill_request(r, conn, url, method) != 0)
                return answer_now(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                  "{\"error\": \"out of memory\"}");
            /* A declared length over the cap is known now; the body is still
             * read (and dropped) so the handler sees a complete request. */
            const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                         MHD_HTTP_HEADER_CONTENT_LENGTH);
            if (cl) {
                char *end = NULL;
                errno = 0;
                unsigned long long v = strtoull(cl, &end, 10);
                if (errno == 0 && end != cl && (uint64_t)v > h->max_body)
                    r->pub.body_too_large = 1;
            }
            return MHD_YES;
        }
        if (*upload_data_size > 0) {
            if (append_body(r, upload_data, *upload_data_size) != 0)
                return MHD_NO;
            *upload_data_size = 0;
            return MHD_YES;
        }
        /* Final call: the whole request is in. */
        r->pub.body = r->pub.body_too_large ? NULL : r->body;
        if (r->pub.body_too_large)
            r->pub.body_len = 0;
        r->pub.arrived_ns = mono_ns();
        pthread_mutex_lock(&h->mu);
        r->state = H_HANDLING;
        pthread_mutex_unlock(&h->mu);

        h->handler(h->ctx, &r->pub);

        pthread_mutex_lock(&h->mu);
        enum MHD_Result ok = MHD_YES;
        if (r->state == H_ANSWERED) {
            ok = queue_answer(r);
        } else if (h->stopping) {
            /* Parking now would outlive the daemon: answer instead. The
             * handler's later httpd_respond must not come (see httpd_stop). */
            r->status = 503;
            r->resp = make_response(NULL, "{\"error\": \"server stopping\"}", 28);
            ok = queue_answer(r);
        } else {
            r->state = H_PARKED;
            r->next = h->parked;
            if (h->parked)
                h->parked->prev = r;
            h->parked = r;
            MHD_suspend_connection(conn);
        }
        pthread_mutex_unlock(&h->mu);
        return ok;
    }

    /* Called again after a resume: queue what httpd_respond stored. */
    pthread_mutex_lock(&h->mu);
    enum MHD_Result ok = MHD_YES;
    if (r->state == H_ANSWERED)
        ok = queue_answer(r);
    pthread_mutex_unlock(&h->mu);
    return ok;
}

int httpd_respond(struct httpd_request *req, int status, const char *content_type,
                  const char *body, size_t len)
{
    return httpd_respond_with(req, status, content_type, NULL, NULL, body, len);
}

int httpd_respond_with(struct httpd_request *req, int status, const char *content_type,
                       const char *header, const char *value, const char *body, size_t len)
{
    if (!req)
        return err_set(FERRY_E_INVALID, "httpd: respond without a request");
    struct hreq *r = (struct hreq *)req;
    struct httpd *h = r->h;
    if (status < 100 || status > 999)
        status = 500;
    /* Build outside the lock: copying a large body should not stall others. */
    struct MHD_Response *resp = make_response(content_type, body, len);
    if (resp && header && value && MHD_add_response_header(resp, header, value) != MHD_YES) {
        MHD_destroy_response(resp);
        resp = NULL;
    }
    pthread_mutex_lock(&h->mu);
    if (r->state != H_HANDLING && r->state != H_PARKED) {
        pthread_mutex_unlock(&h->mu);
        if (resp)
            MHD_destroy_response(resp);
        return err_set(FERRY_E_INVALID, "httpd: request answered twice");
    }
    r->status = status;
    r->resp = resp; /* NULL: queue_answer closes the connection */
    if (r->state == H_PARKED) {
        park_unlink(h, r);
        r->state = H_ANSWERED;
        /* After this r belongs to its MHD thread, which needs h->mu to
         * queue it: nothing here touches r once the lock is released. */
        MHD_resume_connection(r->conn);
    } else {
        r->state = H_ANSWERED;
    }
    pthread_mutex_unlock(&h->mu);
    return resp ? 0 : err_set(-ENOMEM, "httpd: no memory for a %zu-byte answer", len);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    (void)fmt;
    (void)ap; /* MHD's own log lines (malformed requests, resets) are noise */
}

int httpd_start(const struct httpd_config *cfg, struct httpd **out)
{
    *out = NULL;
    if (!cfg || !cfg->handler)
        return err_set(FERRY_E_INVALID, "httpd: no handler");
    if (cfg->port < 0 || cfg->port > 65535)
        return err_set(FERRY_E_INVALID, "httpd: port %d out of range", cfg->port);
    const char *addr = cfg->addr && *cfg->addr ? cfg->addr : "127.0.0.1";
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_TURBO | MHD_USE_ERROR_LOG;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)cfg->port);
    } else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)cfg->port);
        flags |= MHD_USE_IPv6;
    } else {
        return err_set(FERRY_E_INVALID, "httpd: address '%s' is not a numeric IPv4 or IPv6 address",
                       addr);
    }
    unsigned threads = cfg->threads;
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n < 1 ? 1 : n > 8 ? 8 : (unsigned)n;
    }

    /* Only the caps the caller set; the rest keep the library's defaults. */
    struct MHD_OptionItem caps[4];
    size_t nc = 0;
    if (cfg->max_conns)
        caps[nc++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, cfg->max_conns, NULL};
    if (cfg->max_conns_per_ip)
        caps[nc++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                                             cfg->max_conns_per_ip, NULL};
    if (cfg->conn_memory)
        caps[nc++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                             (intptr_t)cfg->conn_memory, NULL};
    caps[nc] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

    struct httpd *h = calloc(1, sizeof *h);
    if (!h)
        return err_set(-ENOMEM, "httpd: out of memory");
    h->handler = cfg->handler;
    h->ctx = cfg->ctx;
    h->max_body = cfg->max_body;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);

    h->d = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_access, h,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_URI_LOG_CALLBACK, on_uri, h,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                            MHD_OPTION_THREAD_POOL_SIZE, threads,
                            MHD_OPTION_CONNECTION_TIMEOUT,
                            cfg->idle_timeout_s ? cfg->idle_timeout_s : (unsigned)IDLE_TIMEOUT_S,
                            MHD_OPTION_ARRAY, caps,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                            MHD_OPTION_END);
    if (!h->d) {
        int e = errno ? errno : EADDRINUSE;
        pthread_mutex_destroy(&h->mu);
        pthread_cond_destroy(&h->cv);
        free(h);
        return err_set(-e, "httpd: cannot listen on %s port %d: %s", addr, cfg->port, strerror(e));
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : cfg->port;
    *out = h;
    return 0;
}

const char *httpd_header(const struct httpd_request *req, const char *name)
{
    if (!req || !name)
        return NULL;
    const struct hreq *r = (const struct hreq *)req;
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *httpd_arg(const struct httpd_request *req, const char *name)
{
    if (!req || !name)
        return NULL;
    const struct hreq *r = (const struct hreq *)req;
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

int httpd_port(const struct httpd *h)
{
    return h ? h->port : -1;
}

void httpd_stop(struct httpd *h)
{
    if (!h)
        return;
    /* Stop accepting first, so no new request parks while we drain. */
    MHD_socket lsock = MHD_quiesce_daemon(h->d);
    pthread_mutex_lock(&h->mu);
    h->stopping = 1;
    while (h->parked) {
        struct hreq *r = h->parked;
        park_unlink(h, r);
        r->status = 503;
        r->resp = make_response(NULL, "{\"error\": \"server stopping\"}", 28);
        r->state = H_ANSWERED;
        r->stop_answered = 1;
        h->draining++;
        MHD_resume_connection(r->conn);
    }
    /* Give the 503s a bounded time to be written; a client that never
     * reads does not hold the stop up. */
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += STOP_DRAIN_MS / 1000;
    dl.tv_nsec += (long)(STOP_DRAIN_MS % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    while (h->draining > 0)
        if (pthread_cond_timedwait(&h->cv, &h->mu, &dl) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&h->mu);
    MHD_stop_daemon(h->d);
    if (lsock != MHD_INVALID_SOCKET)
        close(lsock);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
}
