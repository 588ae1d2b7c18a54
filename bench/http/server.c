/* The HTTP library benchmark's server: one program, linked once per
 * candidate adapter of model/httpd.h (bench/http.sh, docs/http-server.md),
 * so every library is driven through the same interface with the same
 * handler. The handler answers a small JSON naming the body's length,
 * either inline (--mode inline) or from a separate responder thread after
 * the handler returned (--mode thread: the request is parked, as a batch
 * would park it).
 *   ferry-httpbench-LIB --mode inline|thread [--port N] [--threads N]
 * Prints "port N" once listening; SIGTERM or SIGINT stops it. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "httpd.h"

struct queue {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct httpd_request **items;
    size_t head, tail, cap;
    int stop;
};

static struct queue Q = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
static int thread_mode;

static void answer(struct httpd_request *req)
{
    char out[128];
    int n;
    if (req->body_too_large)
        n = snprintf(out, sizeof out, "{\"error\": \"body too large\"}");
    else
        n = snprintf(out, sizeof out, "{\"ok\": true, \"path\": \"%s\", \"len\": %zu}", req->path,
                     req->body_len);
    httpd_respond(req, req->body_too_large ? 400 : 200, NULL, out, (size_t)n);
}

static void handler(void *ctx, struct httpd_request *req)
{
    (void)ctx;
    if (!thread_mode) {
        answer(req);
        return;
    }
    pthread_mutex_lock(&Q.mu);
    if (Q.tail - Q.head == Q.cap) { /* grow the ring */
        size_t nc = Q.cap ? Q.cap * 2 : 1024;
        struct httpd_request **ni = malloc(nc * sizeof *ni);
        if (!ni) {
            pthread_mutex_unlock(&Q.mu);
            answer(req);
            return;
        }
        for (size_t i = Q.head; i < Q.tail; i++)
            ni[i - Q.head] = Q.items[i % Q.cap];
        free(Q.items);
        Q.items = ni;
        Q.tail -= Q.head;
        Q.head = 0;
        Q.cap = nc;
    }
    Q.items[Q.tail++ % Q.cap] = req;
    pthread_cond_signal(&Q.cv);
    pthread_mutex_unlock(&Q.mu);
}

static void *responder(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&Q.mu);
    for (;;) {
        while (Q.head == Q.tail && !Q.stop)
            pthread_cond_wait(&Q.cv, &Q.mu);
        if (Q.head == Q.tail)
            break;
        struct httpd_request *req = Q.items[Q.head++ % Q.cap];
        pthread_mutex_unlock(&Q.mu);
        answer(req);
        pthread_mutex_lock(&Q.mu);
    }
    pthread_mutex_unlock(&Q.mu);
    return NULL;
}

int main(int argc, char **argv)
{
    int port = 0;
    unsigned threads = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mode") && i + 1 < argc) {
            i++;
            if (!strcmp(argv[i], "thread"))
                thread_mode = 1;
            else if (strcmp(argv[i], "inline") != 0) {
                fprintf(stderr, "httpbench: --mode must be inline or thread\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "--port") && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            threads = (unsigned)atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: %s --mode inline|thread [--port N] [--threads N]\n", argv[0]);
            return 2;
        }
    }
    /* Library threads inherit this mask; main waits for the signal. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    pthread_t rt;
    if (thread_mode && pthread_create(&rt, NULL, responder, NULL) != 0)
        return 1;
    struct httpd_config cfg = {.addr = "127.0.0.1", .port = port, .max_body = 16u << 20,
                               .threads = threads, .handler = handler};
    struct httpd *h = NULL;
    int rc = httpd_start(&cfg, &h);
    if (rc != 0) {
        fprintf(stderr, "httpbench: %s\n", err_message(rc));
        return 1;
    }
    printf("port %d\n", httpd_port(h));
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    httpd_stop(h);
    if (thread_mode) {
        pthread_mutex_lock(&Q.mu);
        Q.stop = 1;
        pthread_cond_broadcast(&Q.cv);
        pthread_mutex_unlock(&Q.mu);
        pthread_join(rt, NULL);
    }
    return 0;
}
