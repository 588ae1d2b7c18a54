/* The registry's HTTP side (registry/http.c) in-process: --http parsing,
 * what counts as loopback, the token rules, and a registry started with
 * its HTTP side answering on real sockets (routes, 404, 405, 401). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "http.h"
#include "key.h"
#include "registry.h"
#include "scratch.h"

static void test_parse_listen(void **state)
{
    (void)state;
    char a[64];
    int port = -1;
    assert_int_equal(http_parse_listen("127.0.0.1:7480", a, sizeof a, &port), 0);
    assert_string_equal(a, "127.0.0.1");
    assert_int_equal(port, 7480);
    assert_int_equal(http_parse_listen("[::1]:0", a, sizeof a, &port), 0);
    assert_string_equal(a, "::1");
    assert_int_equal(port, 0);
    const char *bad[] = {"7480", ":7480", "127.0.0.1:", "127.0.0.1:x", "127.0.0.1:-1",
                         "127.0.0.1:65536", "127.0.0.1:+80", "localhost:80", "::1:80",
                         "[::1:80", "1.2.3:80", "127.0.0.1:80 "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = http_parse_listen(bad[i], a, sizeof a, &port);
        if (rc != FERRY_E_INVALID)
            fail_msg("'%s' was taken (%d)", bad[i], rc);
        assert_non_null(strstr(err_detail(), "--http '"));
    }
}

static void test_loopback(void **state)
{
    (void)state;
    assert_int_equal(http_addr_is_loopback("127.0.0.1"), 0);
    assert_int_equal(http_addr_is_loopback("127.255.0.9"), 0);
    assert_int_equal(http_addr_is_loopback("::1"), 0);
    assert_int_equal(http_addr_is_loopback("0.0.0.0"), -1);
    assert_int_equal(http_addr_is_loopback("128.0.0.1"), -1);
    assert_int_equal(http_addr_is_loopback("10.0.0.1"), -1);
    assert_int_equal(http_addr_is_loopback("::"), -1);
    assert_int_equal(http_addr_is_loopback("::ffff:127.0.0.1"), -1); /* mapped: not taken */
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_config_check(void **state)
{
    (void)state;
    void *dir = NULL;
    assert_int_equal(scratch_setup(&dir, "test_http"), 0);
    char tok[4200], bad[4200], two[4200];
    snprintf(tok, sizeof tok, "%s/tok", (char *)dir);
    snprintf(bad, sizeof bad, "%s/bad", (char *)dir);
    snprintf(two, sizeof two, "%s/two", (char *)dir);
    write_file(tok, "0123456789abcdef-token\n");
    int off = -1;
    struct http_config c = {.listen = "off"};
    assert_int_equal(http_config_check(&c, &off), 0);
    assert_int_equal(off, 1);
    c.listen = NULL;
    assert_int_equal(http_config_check(&c, &off), 0);
    assert_int_equal(off, 1);
    c.listen = "127.0.0.1:0";
    assert_int_equal(http_config_check(&c, &off), 0);
    assert_int_equal(off, 0);
    c.listen = "0.0.0.0:0";
    assert_int_equal(http_config_check(&c, &off), FERRY_E_INVALID);
    assert_string_equal(err_detail(),
                        "--http 0.0.0.0:0: not a loopback address, so --http-token FILE is required");
    c.token_file = tok;
    assert_int_equal(http_config_check(&c, &off), 0);
    const char *bads[] = {"short\n", "has a space in the middle\n", "0123456789abcdef\n\nmore\n", ""};
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
        write_file(bad, bads[i]);
        c.token_file = bad;
        assert_int_equal(http_config_check(&c, &off), FERRY_E_INVALID);
        assert_non_null(strstr(err_detail(), "must be one line of 16 to 512"));
    }
    write_file(two, "0123456789abcdef\r\n"); /* CRLF is one line end */
    c.token_file = two;
    assert_int_equal(http_config_check(&c, &off), 0);
    c.listen = "off";
    assert_int_equal(http_config_check(&c, &off), FERRY_E_INVALID);
    assert_int_equal(scratch_teardown(&dir), 0);
}

/* A raw HTTP/1.0 exchange; the status code, and the body into body. */
static int http_raw(int port, const char *request, char *body, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(write(fd, request, strlen(request)), (ssize_t)strlen(request));
    char buf[65536];
    size_t n = 0;
    ssize_t k;
    while (n < sizeof buf - 1 && (k = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)k;
    buf[n] = '\0';
    close(fd);
    int status = 0;
    sscanf(buf, "HTTP/1.%*d %d", &status);
    const char *b = strstr(buf, "\r\n\r\n");
    snprintf(body, cap, "%s", b ? b + 4 : "");
    return status;
}

static void test_registry_serves(void **state)
{
    (void)state;
    void *dir = NULL;
    assert_int_equal(scratch_setup(&dir, "test_http"), 0);
    char tok[4200];
    snprintf(tok, sizeof tok, "%s/tok", (char *)dir);
    write_file(tok, "0123456789abcdef-token\n");
    struct trust trust;
    trust_init(&trust);
    struct registry_config cfg = {
        .data_dir = dir,
        .listen_url = "tcp://127.0.0.1:0",
        .trust = &trust,
        .http_listen = "127.0.0.1:0",
        .http_token_file = tok,
    };
    struct registry *r = NULL;
    assert_int_equal(registry_start(&cfg, &r), 0);
    const char *url = registry_http_url(r);
    assert_non_null(url);
    int port = atoi(strrchr(url, ':') + 1);
    assert_true(port > 0);
    char body[65536];
    const char *auth = "Authorization: Bearer 0123456789abcdef-token\r\n";
    char req[1024];
    assert_int_equal(http_raw(port, "GET /api/v1/hosts HTTP/1.0\r\n\r\n", body, sizeof body), 401);
    assert_non_null(strstr(body, "\"error\""));
    assert_int_equal(http_raw(port, "GET /api/v1/hosts HTTP/1.0\r\nAuthorization: Bearer 0123456789abcdef-tokeN\r\n\r\n",
                              body, sizeof body),
                     401);
    snprintf(req, sizeof req, "GET /api/v1/hosts HTTP/1.0\r\n%s\r\n", auth);
    assert_int_equal(http_raw(port, req, body, sizeof body), 200);
    assert_string_equal(body, "{\"hosts\":[]}");
    snprintf(req, sizeof req, "GET /api/v1/nope HTTP/1.0\r\n%s\r\n", auth);
    assert_int_equal(http_raw(port, req, body, sizeof body), 404);
    snprintf(req, sizeof req, "DELETE /api/v1/hosts HTTP/1.0\r\n%s\r\n", auth);
    assert_int_equal(http_raw(port, req, body, sizeof body), 405);
    snprintf(req, sizeof req, "GET /api/v1/events?limit=x HTTP/1.0\r\n%s\r\n", auth);
    assert_int_equal(http_raw(port, req, body, sizeof body), 400);
    assert_string_equal(body, "{\"error\":\"limit 'x': not a whole number\"}");
    snprintf(req, sizeof req, "GET /api/v1/artifacts/none HTTP/1.0\r\n%s\r\n", auth);
    assert_int_equal(http_raw(port, req, body, sizeof body), 404);
    registry_stop(r);

    /* Off: no HTTP side at all. */
    cfg.http_listen = "off";
    cfg.http_token_file = NULL;
    assert_int_equal(registry_start(&cfg, &r), 0);
    assert_null(registry_http_url(r));
    registry_stop(r);
    trust_fini(&trust);
    assert_int_equal(scratch_teardown(&dir), 0);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_listen),
        cmocka_unit_test(test_loopback),
        cmocka_unit_test(test_config_check),
        cmocka_unit_test(test_registry_serves),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
