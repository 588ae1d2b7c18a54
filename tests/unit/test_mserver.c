/* mserver: the model server's routes in-process over real sockets. Before
 * the workers load, the endpoint is live but not ready and inference is 503
 * (bad requests are still 400: they are checked first); after mserver_load
 * with a real Python worker it serves; mserver_stop answers and frees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "scratch.h"
#include "mserver.h"

#ifndef FERRY_MODEL_WORKER_PY
#error "FERRY_MODEL_WORKER_PY: the path of worker.py in the build tree"
#endif

#define DEADLINE_MS 10000

static const char *SPEC =
    "{\"name\":\"echo\",\"version\":\"1\",\"model\":{\"format\":\"python\","
    "\"entry\":\"serve.py:Model\",\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP64\","
    "\"shape\":[-1]}],\"outputs\":[{\"name\":\"y\",\"datatype\":\"FP64\",\"shape\":[-1]}]}}";
static const char *GOOD =
    "{\"id\":\"a\",\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP64\",\"data\":[1,2]}]}";

static const char *python(void)
{
    const char *p = getenv("FERRY_PYTHON");
    return p && *p ? p : "/usr/bin/python3";
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct answer {
    int status;
    char body[16384];
};

/* One request on its own connection (Connection: close), read to the end. */
static void http(int port, const char *method, const char *path, const char *ctype,
                 const char *body, struct answer *a)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    char req[8192];
    size_t bl = body ? strlen(body) : 0;
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s%s%s"
                     "Content-Length: %zu\r\n\r\n%s",
                     method, path, ctype ? "Content-Type: " : "", ctype ? ctype : "",
                     ctype ? "\r\n" : "", bl, body ? body : "");
    assert_true(n > 0 && (size_t)n < sizeof req);
    assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    char buf[20000];
    size_t got = 0;
    uint64_t end = now_ms() + DEADLINE_MS;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        uint64_t now = now_ms();
        assert_true(now < end);
        int r = poll(&p, 1, (int)(end - now));
        if (r < 0 && errno == EINTR)
            continue;
        assert_true(r > 0);
        ssize_t k = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (k < 0 && errno == EINTR)
            continue;
        assert_true(k >= 0);
        if (k == 0)
            break;
        got += (size_t)k;
        assert_true(got < sizeof buf - 1);
    }
    close(fd);
    buf[got] = '\0';
    assert_int_equal(sscanf(buf, "HTTP/1.1 %d", &a->status), 1);
    const char *b = strstr(buf, "\r\n\r\n");
    assert_non_null(b);
    snprintf(a->body, sizeof a->body, "%s", b + 4);
}

static void expect(int port, const char *method, const char *path, const char *ctype,
                   const char *body, int status, const char *want)
{
    struct answer a;
    http(port, method, path, ctype, body, &a);
    if (a.status != status || (want && !strstr(a.body, want)))
        fail_msg("%s %s: %d '%s', expected %d '%s'", method, path, a.status, a.body, status,
                 want ? want : "");
}

static struct mserver *start(const char *dir)
{
    char worker[4096];
    snprintf(worker, sizeof worker, "%s", FERRY_MODEL_WORKER_PY);
    struct mserver_opts o = {
        .dir = dir,
        .addr = "127.0.0.1",
        .port = 0,
        .spec_json = SPEC,
        .python = python(),
        .worker_py = worker,
    };
    struct mserver *s = NULL;
    int rc = mserver_start(&o, &s);
    if (rc < 0)
        fail_msg("mserver_start: %s", err_message(rc));
    assert_true(mserver_port(s) > 0);
    return s;
}

static void test_before_load(void **state)
{
    struct mserver *s = start(*state);
    int port = mserver_port(s);
    expect(port, "GET", "/v2/health/live", NULL, NULL, 200, "\"live\":true");
    expect(port, "GET", "/v2/health/ready", NULL, NULL, 503, "\"ready\":false");
    expect(port, "GET", "/v2/models/echo/ready", NULL, NULL, 503, "\"ready\":false");
    expect(port, "GET", "/ping", NULL, NULL, 503, NULL);
    expect(port, "GET", "/v2", NULL, NULL, 200, "\"name\":\"ferry\"");
    expect(port, "GET", "/v2/models/echo", NULL, NULL, 200, "\"platform\":\"python_ferry\"");
    expect(port, "POST", "/v2/models/echo/infer", "application/json", GOOD, 503,
           "the model is still loading");
    expect(port, "POST", "/v2/models/echo/infer", "application/json", "{\"inputs\":[]}", 400,
           "input 'x': missing");
    expect(port, "POST", "/invocations", "application/json", "{\"instances\":[1,2]}", 503,
           "still loading");
    expect(port, "POST", "/invocations", "text/plain", "{\"instances\":[1,2]}", 415,
           "Content-Type 'text/plain' is not supported");
    expect(port, "POST", "/metrics", NULL, NULL, 405, "method POST is not allowed on /metrics");
    expect(port, "GET", "/v2/models/echo/versions/1/nowhere", NULL, NULL, 404, "no route");
    expect(port, "GET", "/v2/models/", NULL, NULL, 404, "no model named");
    struct answer a;
    http(port, "GET", "/metrics", NULL, NULL, &a);
    assert_int_equal(a.status, 200);
    assert_non_null(strstr(a.body, "ferry_model_workers_ready{model=\"echo\",version=\"1\"} 0"));
    assert_non_null(strstr(a.body, "ferry_model_requests_total{model=\"echo\",version=\"1\","
                                   "protocol=\"v2\",outcome=\"unavailable\"} 1"));
    assert_non_null(strstr(a.body, "ferry_model_requests_total{model=\"echo\",version=\"1\","
                                   "protocol=\"mlflow\",outcome=\"bad_request\"} 1"));
    http(port, "GET", "/metrics?format=json", NULL, NULL, &a);
    assert_int_equal(a.status, 200);
    json_t *j = json_loads(a.body, 0, NULL);
    assert_non_null(j);
    assert_true(json_is_array(json_object_get(j, "families")));
    json_decref(j);
    mserver_stop(s);
}

static void test_serving(void **state)
{
    const char *dir = *state;
    char path[4096];
    snprintf(path, sizeof path, "%s/serve.py", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("class Model:\n    def predict(self, inputs):\n        return {\"y\": inputs[\"x\"] + 1}\n",
          f);
    fclose(f);
    struct mserver *s = start(dir);
    int port = mserver_port(s);
    int rc = mserver_load(s);
    if (rc < 0)
        fail_msg("mserver_load: %s", err_message(rc));
    expect(port, "GET", "/v2/health/ready", NULL, NULL, 200, "\"ready\":true");
    expect(port, "GET", "/v2/models/echo/versions/1/ready", NULL, NULL, 200, "\"ready\":true");
    expect(port, "GET", "/health", NULL, NULL, 200, NULL);
    expect(port, "POST", "/v2/models/echo/versions/1/infer", "application/json", GOOD, 200,
           "{\"model_name\":\"echo\",\"model_version\":\"1\",\"id\":\"a\",\"outputs\":[{\"name\":"
           "\"y\",\"shape\":[2],\"datatype\":\"FP64\",\"data\":[2.0,3.0]}]}");
    expect(port, "POST", "/invocations", "application/json; charset=utf-8",
           "{\"inputs\":{\"x\":[5]}}", 200, "{\"predictions\":[6.0]}");
    expect(port, "POST", "/v2/models/echo/versions/2/infer", "application/json", GOOD, 404,
           "model 'echo' has no version '2' (this server serves 1)");
    expect(port, "POST", "/v2/models/other/infer", "application/json", GOOD, 404,
           "model 'other' is not served here (this server serves 'echo')");
    expect(port, "GET", "/v2/models/echo/infer", NULL, NULL, 405, "use POST");
    mserver_stop(s);
}

static int setup(void **state)
{
    return scratch_setup(state, "server");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_before_load),
        cmocka_unit_test(test_serving),
    };
    return cmocka_run_group_tests(tests, setup, scratch_teardown);
}
