/* One HTTP request with nng's HTTP client (see httpc.h). */
#include "httpc.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int from_nng(int rv)
{
    if (rv & NNG_ESYSERR)
        return -(rv & ~NNG_ESYSERR);
    switch (rv) {
    case NNG_ETIMEDOUT: return -ETIMEDOUT;
    case NNG_ECONNREFUSED: return -ECONNREFUSED;
    case NNG_ECONNRESET:
    case NNG_ECONNSHUT:
    case NNG_ECLOSED: return -ECONNRESET;
    case NNG_ECONNABORTED: return -ECONNABORTED;
    case NNG_EUNREACHABLE: return -EHOSTUNREACH;
    case NNG_EADDRINVAL:
    case NNG_EINVAL: return -EINVAL;
    case NNG_ENOMEM: return -ENOMEM;
    case NNG_EMSGSIZE: return -EMSGSIZE;
    case NNG_EPROTO: return -EPROTO;
    default: return -EIO;
    }
}

const char *httpc_strerror(int rc)
{
    switch (rc) {
    case -ECONNREFUSED: return "connection refused";
    case -ETIMEDOUT: return "timed out";
    case -ECONNRESET: return "connection reset";
    case -EMSGSIZE: return "reply too large";
    case -EPROTO: return "not an HTTP reply";
    case -EINVAL: return "bad URL";
    default: return rc < 0 ? strerror(-rc) : "error";
    }
}

void httpc_reply_free(struct httpc_reply *r)
{
    if (!r)
        return;
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

/* What remains of the deadline, as an nng timeout; 0 when it has passed. */
static nng_duration left(uint64_t deadline)
{
    uint64_t now = mono_ms();
    return now >= deadline ? 0 : (nng_duration)(deadline - now);
}

int httpc_request(const char *method, const char *url, const char *content_type,
                  const void *body, size_t body_len, int timeout_ms, size_t max_body,
                  struct httpc_reply *out)
{
    if (!method || !url || !out || timeout_ms <= 0 || (body_len && !body) ||
        strncmp(url, "http://", 7) != 0)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    uint64_t deadline = mono_ms() + (uint64_t)timeout_ms;
    nng_url *u = NULL;
    nng_http_client *cli = NULL;
    nng_aio *aio = NULL;
    nng_http_req *req = NULL;
    nng_http_res *res = NULL;
    nng_http_conn *conn = NULL;
    int rv;
    if ((rv = nng_url_parse(&u, url)) != 0 || (rv = nng_http_client_alloc(&cli, u)) != 0 ||
        (rv = nng_aio_alloc(&aio, NULL, NULL)) != 0 || (rv = nng_http_req_alloc(&req, u)) != 0 ||
        (rv = nng_http_res_alloc(&res)) != 0 || (rv = nng_http_req_set_method(req, method)) != 0)
        goto out;
    if (content_type && (rv = nng_http_req_set_header(req, "Content-Type", content_type)) != 0)
        goto out;
    if (body_len && (rv = nng_http_req_set_data(req, body, body_len)) != 0)
        goto out;

    nng_aio_set_timeout(aio, left(deadline));
    nng_http_client_connect(cli, aio);
    nng_aio_wait(aio);
    if ((rv = nng_aio_result(aio)) != 0)
        goto out;
    conn = nng_aio_get_output(aio, 0);
    nng_duration rest = left(deadline);
    if (rest == 0) {
        rv = NNG_ETIMEDOUT;
        goto out;
    }
    nng_aio_set_timeout(aio, rest);
    nng_http_conn_transact(conn, req, res, aio);
    nng_aio_wait(aio);
    if ((rv = nng_aio_result(aio)) != 0)
        goto out;
    void *data = NULL;
    size_t len = 0;
    nng_http_res_get_data(res, &data, &len);
    if (len > max_body) {
        rv = NNG_EMSGSIZE;
        goto out;
    }
    if (!(out->body = malloc(len + 1))) {
        rv = NNG_ENOMEM;
        goto out;
    }
    if (len)
        memcpy(out->body, data, len);
    out->body[len] = '\0';
    out->len = len;
    out->status = (int)nng_http_res_get_status(res);
    const char *ct = nng_http_res_get_header(res, "Content-Type");
    snprintf(out->content_type, sizeof out->content_type, "%s", ct ? ct : "");

out:
    if (conn)
        nng_http_conn_close(conn);
    if (aio)
        nng_aio_free(aio);
    if (res)
        nng_http_res_free(res);
    if (req)
        nng_http_req_free(req);
    if (cli)
        nng_http_client_free(cli);
    if (u)
        nng_url_free(u);
    return rv == 0 ? 0 : from_nng(rv);
}
