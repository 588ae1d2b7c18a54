/* httpd: the model server's HTTP front end on real sockets (127.0.0.1, a
 * kernel-chosen port), driven by a raw socket client so malformed requests
 * can be sent too. Covers what reaches the handler, answers from another
 * thread after the handler returned (also to a client that hung up, and to
 * many parked at once), the body cap, malformed HTTP, and httpd_stop
 * answering a parked request with 503. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "httpd.h"

#define DEADLINE_MS 5000

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* What the handler saw, copied before it answers. */
struct seen {
    pthread_mutex_t mu;
    int calls;
    char method[16], path[256], query[256], ctype[128];
    char body[512];
    size_t body_len;
    int body_null, too_large;
    uint64_t arrived_ns;
    pthread_t thread;
    /* parking */
    struct httpd_request *parked;
    int handler_returned;
};

static struct seen S = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void copy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "(null)");
}

static void handler(void *ctx, struct httpd_request *req)
{
    (void)ctx;
    pthread_mutex_lock(&S.mu);
    S.calls++;
    copy(S.method, sizeof S.method, req->method);
    copy(S.path, sizeof S.path, req->path);
    copy(S.query, sizeof S.query, req->query);
    copy(S.ctype, sizeof S.ctype, req->content_type);
    S.body_null = req->body == NULL;
    S.body_len = req->body_len;
    S.too_large = req->body_too_large;
    S.arrived_ns = req->arrived_ns;
    S.thread = pthread_self();
    if (req->body)
        snprintf(S.body, sizeof S.body, "%.*s", (int)req->body_len, req->body);
    else
        S.body[0] = '\0';
    int park = strcmp(req->path, "/park") == 0;
    if (park) {
        S.parked = req;
        S.handler_returned = 0;
    }
    pthread_mutex_unlock(&S.mu);

    if (park) {
        pthread_mutex_lock(&S.mu);
        S.handler_returned = 1; /* from here on, req is only the test's to answer */
        pthread_mutex_unlock(&S.mu);
        return;
    }
    if (req->body_too_large) {
        const char *m = "{\"error\": \"body too large\"}";
        assert_int_equal(httpd_respond(req, 400, NULL, m, strlen(m)), 0);
        return;
    }
    char out[512];
    int n = snprintf(out, sizeof out, "{\"path\": \"%s\", \"len\": %zu}", req->path, req->body_len);
    assert_int_equal(httpd_respond(req, 200, NULL, out, (size_t)n), 0);
}

static struct httpd *start(size_t max_body)
{
    pthread_mutex_lock(&S.mu);
    S.calls = 0;
    S.parked = NULL;
    S.handler_returned = 0;
    pthread_mutex_unlock(&S.mu);
    struct httpd_config cfg = {
        .addr = "127.0.0.1", .port = 0, .max_body = max_body, .threads = 2, .handler = handler,
    };
    struct httpd *h = NULL;
    assert_int_equal(httpd_start(&cfg, &h), 0);
    assert_non_null(h);
    assert_true(httpd_port(h) > 0);
    return h;
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static void send_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        assert_true(w > 0);
        buf += w;
        n -= (size_t)w;
    }
}

/* Read until the server closes (requests carry Connection: close) or the
 * deadline passes; returns the bytes read, NUL-terminated in buf. */
static size_t read_all(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    uint64_t end = now_ms() + DEADLINE_MS;
    while (got + 1 < cap) {
        uint64_t now = now_ms();
        if (now >= end)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pr = poll(&p, 1, (int)(end - now));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            break;
        ssize_t r = recv(fd, buf + got, cap - 1 - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    return got;
}

static int status_of(const char *resp)
{
    int st = 0;
    if (sscanf(resp, "HTTP/1.%*d %d", &st) != 1)
        return -1;
    return st;
}

/* One request on its own connection; the answer in buf, its status returned. */
static int roundtrip(int port, const char *raw, size_t rawlen, char *buf, size_t cap)
{
    int fd = dial(port);
    send_all(fd, raw, rawlen);
    read_all(fd, buf, cap);
    close(fd);
    return status_of(buf);
}

static int get_ok(int port)
{
    char buf[4096];
    const char *rq = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    return roundtrip(port, rq, strlen(rq), buf, sizeof buf);
}

/* Wait (bounded) until the handler has parked a request and returned. */
static struct httpd_request *wait_parked(void)
{
    uint64_t end = now_ms() + DEADLINE_MS;
    for (;;) {
        pthread_mutex_lock(&S.mu);
        struct httpd_request *r = S.handler_returned ? S.parked : NULL;
        pthread_mutex_unlock(&S.mu);
        if (r || now_ms() >= end)
            return r;
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
}

static void test_get_routing(void **state)
{
    (void)state;
    struct httpd *h = start(1 << 20);
    char buf[4096];
    const char *rq = "GET /v2/models/iris%20x/ready?format=json&a=1 HTTP/1.1\r\nHost: x\r\n"
                     "Connection: close\r\n\r\n";
    assert_int_equal(roundtrip(httpd_port(h), rq, strlen(rq), buf, sizeof buf), 200);
    assert_non_null(strstr(buf, "application/json"));
    assert_non_null(strstr(buf, "{\"path\": \"/v2/models/iris x/ready\", \"len\": 0}"));
    pthread_mutex_lock(&S.mu);
    assert_int_equal(S.calls, 1);
    assert_string_equal(S.method, "GET");
    assert_string_equal(S.path, "/v2/models/iris x/ready"); /* decoded */
    assert_string_equal(S.query, "format=json&a=1");         /* raw */
    assert_string_equal(S.ctype, "");
    assert_true(S.body_null);
    assert_int_equal(S.body_len, 0);
    assert_int_equal(S.too_large, 0);
    assert_true(S.arrived_ns > 0);
    assert_false(pthread_equal(S.thread, pthread_self())); /* a library thread */
    pthread_mutex_unlock(&S.mu);
    httpd_stop(h);
}

static void test_post_body(void **state)
{
    (void)state;
    struct httpd *h = start(1 << 20);
    char buf[4096], rq[1024];
    const char *body = "{\"inputs\": [{\"name\": \"x\", \"shape\": [1], \"datatype\": \"FP64\", \"data\": [1.5]}]}";
    int n = snprintf(rq, sizeof rq,
                     "POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json; "
                     "charset=utf-8\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     strlen(body), body);
    assert_int_equal(roundtrip(httpd_port(h), rq, (size_t)n, buf, sizeof buf), 200);
    pthread_mutex_lock(&S.mu);
    assert_string_equal(S.method, "POST");
    assert_string_equal(S.path, "/v2/models/iris/infer");
    assert_string_equal(S.query, "");
    assert_string_equal(S.ctype, "application/json; charset=utf-8");
    assert_false(S.body_null);
    assert_int_equal(S.body_len, strlen(body));
    assert_string_equal(S.body, body);
    pthread_mutex_unlock(&S.mu);

    /* A chunked body is reassembled the same way. */
    const char *chunked = "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                          "5\r\n{\"a\":\r\n3\r\n 1}\r\n0\r\n\r\n";
    assert_int_equal(roundtrip(httpd_port(h), chunked, strlen(chunked), buf, sizeof buf), 200);
    pthread_mutex_lock(&S.mu);
    assert_string_equal(S.path, "/invocations");
    assert_string_equal(S.body, "{\"a\": 1}");
    assert_int_equal(S.body_len, 8);
    pthread_mutex_unlock(&S.mu);
    httpd_stop(h);
}

struct answerer {
    struct httpd_request *req;
    int rc;
};

static void *answer_later(void *arg)
{
    struct answerer *a = arg;
    const char *m = "{\"late\": true}";
    a->rc = httpd_respond(a->req, 201, "application/x-test", m, strlen(m));
    return NULL;
}

static void test_reply_from_another_thread(void **state)
{
    (void)state;
    struct httpd *h = start(1 << 20);
    int fd = dial(httpd_port(h));
    const char *rq = "GET /park HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    send_all(fd, rq, strlen(rq));
    struct httpd_request *req = wait_parked();
    assert_non_null(req); /* the handler returned without answering */
    /* Nothing has been answered yet. */
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 0), 0);
    /* The request stays valid after the handler returned. */
    assert_string_equal(req->path, "/park");
    struct answerer a = {.req = req, .rc = -1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, answer_later, &a), 0);
    pthread_join(t, NULL);
    assert_int_equal(a.rc, 0);
    char buf[4096];
    read_all(fd, buf, sizeof buf);
    close(fd);
    assert_int_equal(status_of(buf), 201);
    assert_non_null(strstr(buf, "application/x-test"));
    assert_non_null(strstr(buf, "{\"late\": true}"));
    assert_int_equal(get_ok(httpd_port(h)), 200);
    httpd_stop(h);
}

/* The client hangs up while its request is parked: the late answer is
 * accepted and dropped, nothing is freed twice (ASan), and the server keeps
 * serving. */
static void test_client_gone_while_parked(void **state)
{
    (void)state;
    struct httpd *h = start(1 << 20);
    int fd = dial(httpd_port(h));
    const char *rq = "GET /park HTTP/1.1\r\nHost: x\r\n\r\n";
    send_all(fd, rq, strlen(rq));
    struct httpd_request *req = wait_parked();
    assert_non_null(req);
    close(fd);
    assert_int_equal(get_ok(httpd_port(h)), 200);
    struct answerer a = {.req = req, .rc = -1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, answer_later, &a), 0);
    pthread_join(t, NULL);
    assert_int_equal(a.rc, 0);
    assert_int_equal(get_ok(httpd_port(h)), 200);
    httpd_stop(h);
}

/* Many requests parked at once on keep-alive connections, answered in
 * reverse order from another thread: each gets its own answer. */
#define MANY 16
static void test_many_parked(void **state)
{
    (void)state;
    struct httpd *h = start(1 << 20);
    int fds[MANY];
    struct httpd_request *reqs[MANY];
    for (int i = 0; i < MANY; i++) {
        fds[i] = dial(httpd_port(h));
        char rq[128];
        int n = snprintf(rq, sizeof rq, "GET /park HTTP/1.1\r\nHost: x\r\nX-N: %d\r\n\r\n", i);
        pthread_mutex_lock(&S.mu);
        S.parked = NULL;
        S.handler_returned = 0;
        pthread_mutex_unlock(&S.mu);
        send_all(fds[i], rq, (size_t)n);
        reqs[i] = wait_parked();
        assert_non_null(reqs[i]);
    }
    for (int i = MANY - 1; i >= 0; i--) {
        char body[32];
        int n = snprintf(body, sizeof body, "{\"n\": %d}", i);
        assert_int_equal(httpd_respond(reqs[i], 200, NULL, body, (size_t)n), 0);
    }
    for (int i = 0; i < MANY; i++) {
        char buf[1024], want[32];
        /* Keep-alive: read until this answer's body has arrived. */
        size_t got = 0;
        snprintf(want, sizeof want, "{\"n\": %d}", i);
        uint64_t end = now_ms() + DEADLINE_MS;
        buf[0] = '\0';
        while (!strstr(buf, want) && now_ms() < end && got + 1 < sizeof buf) {
            struct pollfd p = {.fd = fds[i], .events = POLLIN};
            if (poll(&p, 1, 100) <= 0)
                continue;
            ssize_t r = recv(fds[i], buf + got, sizeof buf - 1 - got, 0);
            if (r <= 0)
                break;
            got += (size_t)r;
            buf[got] = '\0';
        }
        assert_int_equal(status_of(buf), 200);
        assert_non_null(strstr(buf, want));
        close(fds[i]);
    }
    httpd_stop(h);
}

static void test_body_too_large(void **state)
{
    (void)state;
    struct httpd *h = start(1024);
    size_t blen = 64 * 1024;
    char *rq = malloc(blen + 512);
    assert_non_null(rq);
    int hl = snprintf(rq, 512,
                      "POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      blen);
    memset(rq + hl, 'a', blen);
    char buf[4096];
    assert_int_equal(roundtrip(httpd_port(h), rq, (size_t)hl + blen, buf, sizeof buf), 400);
    assert_non_null(strstr(buf, "body too large"));
    pthread_mutex_lock(&S.mu);
    assert_int_equal(S.calls, 1);
    assert_true(S.too_large);
    assert_true(S.body_null);
    assert_int_equal(S.body_len, 0);
    pthread_mutex_unlock(&S.mu);

    /* Chunked, so the size is only known while reading. */
    int cl = snprintf(rq, 512,
                      "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                      "%zx\r\n",
                      (size_t)2000);
    memset(rq + cl, 'b', 2000);
    memcpy(rq + cl + 2000, "\r\n0\r\n\r\n", 7);
    assert_int_equal(roundtrip(httpd_port(h), rq, (size_t)cl + 2007, buf, sizeof buf), 400);
    pthread_mutex_lock(&S.mu);
    assert_true(S.too_large);
    assert_true(S.body_null);
    pthread_mutex_unlock(&S.mu);

    /* Exactly the cap is fine; and the server keeps serving. */
    hl = snprintf(rq, 512,
                  "POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 1024\r\nConnection: close\r\n\r\n");
    memset(rq + hl, 'c', 1024);
    assert_int_equal(roundtrip(httpd_port(h), rq, (size_t)hl + 1024, buf, sizeof buf), 200);
    pthread_mutex_lock(&S.mu);
    assert_false(S.too_large);
    assert_int_equal(S.body_len, 1024);
    pthread_mutex_unlock(&S.mu);
    free(rq);
    assert_int_equal(get_ok(httpd_port(h)), 200);
    httpd_stop(h);
}

static void test_malformed(void **state)
{
    (void)state;
    struct httpd *h = start(1 << 20);
    const char *bad[] = {
        "THIS IS NOT HTTP\r\n\r\n",
        "GET /x HTTP/1.1\r\nHost: x\r\nContent-Length: banana\r\n\r\n",
        "GET /x HTTP/1.1\r\nNoColonHere\r\n\r\n",
        "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char buf[4096];
        int st = roundtrip(httpd_port(h), bad[i], strlen(bad[i]), buf, sizeof buf);
        assert_int_equal(st, 400);
        assert_int_equal(get_ok(httpd_port(h)), 200);
    }
    /* A client that connects and closes mid-headers is harmless too. */
    int fd = dial(httpd_port(h));
    send_all(fd, "GET /x HT", 9);
    close(fd);
    assert_int_equal(get_ok(httpd_port(h)), 200);
    httpd_stop(h);
}

static void test_stop_answers_parked(void **state)
{
    (void)state;
    struct httpd *h = start(1 << 20);
    int fd = dial(httpd_port(h));
    const char *rq = "GET /park HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    send_all(fd, rq, strlen(rq));
    assert_non_null(wait_parked());
    uint64_t t0 = now_ms();
    httpd_stop(h); /* returns: the threads are joined */
    assert_true(now_ms() - t0 < DEADLINE_MS);
    char buf[4096];
    read_all(fd, buf, sizeof buf);
    close(fd);
    assert_int_equal(status_of(buf), 503);
}

static void test_bad_config(void **state)
{
    (void)state;
    struct httpd *h = NULL;
    struct httpd_config cfg = {.addr = "not-an-address", .port = 0, .max_body = 1, .handler = handler};
    assert_true(httpd_start(&cfg, &h) < 0);
    assert_null(h);
    cfg.addr = "127.0.0.1";
    cfg.port = 70000;
    assert_true(httpd_start(&cfg, &h) < 0);
    /* A port already in use. */
    struct httpd *a = start(1);
    cfg.port = httpd_port(a);
    assert_true(httpd_start(&cfg, &h) < 0);
    assert_null(h);
    httpd_stop(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_routing),
        cmocka_unit_test(test_post_body),
        cmocka_unit_test(test_reply_from_another_thread),
        cmocka_unit_test(test_client_gone_while_parked),
        cmocka_unit_test(test_many_parked),
        cmocka_unit_test(test_body_too_large),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_stop_answers_parked),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
