/* The registry's HTTP server: configuration checks, the bearer token, the
 * route tables, and the pool of read-only metadata connections. */
#include "http.h"
#include "http_page.h"
#include "http_stream.h"
#include "http_logs.h"
#include "error.h"
#include "fsutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Every area's table; a table is added with one line here (and its file
 * in registry/CMakeLists.txt). The lines are apart so that areas added
 * on different branches merge without touching each other. */
static const struct http_route *const route_tables[] = {
    http_api_routes,
    /* /metrics (http_prom.c) goes below. */
    http_prom_routes,

    /* the page, its assets and the stream (http_page.c) go below. */
    http_page_routes,
    http_stream_routes,
    http_logs_routes,

    NULL,
};

/* How long a handler waits for a free reader before answering 503. */
#define READER_WAIT_MS 5000

struct reader {
    struct db db;
    int busy;
};

struct http_server {
    struct httpd *httpd;
    struct registry *reg;
    char url[128];
    int have_token;
    unsigned char token_hash[crypto_generichash_BYTES];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct reader *readers;
    unsigned n_readers;
    struct http_page *page;     /* http_page.c */
    struct http_stream *stream; /* http_stream.c */
    struct http_logs *logs;     /* http_logs.c, NULL without --http-logs-key */
};

struct http_page *http_server_page(const struct http_server *s) { return s->page; }
struct http_stream *http_server_stream(const struct http_server *s) { return s->stream; }
struct http_logs *http_server_logs(const struct http_server *s) { return s->logs; }

int http_parse_listen(const char *listen, char *addr, size_t cap, int *port)
{
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen)
        return err_set(FERRY_E_INVALID, "--http '%.100s': not ADDR:PORT (or off)", listen);
    const char *a = listen;
    size_t alen = (size_t)(colon - listen);
    if (a[0] == '[') {
        if (alen < 3 || a[alen - 1] != ']')
            return err_set(FERRY_E_INVALID, "--http '%.100s': not [ADDR]:PORT", listen);
        a++;
        alen -= 2;
    } else if (memchr(a, ':', alen)) {
        /* "::1:80" could be read two ways: an IPv6 address takes brackets. */
        return err_set(FERRY_E_INVALID, "--http '%.100s': an IPv6 address goes in brackets, [ADDR]:PORT",
                       listen);
    }
    if (alen >= cap)
        return err_set(FERRY_E_INVALID, "--http '%.100s': address too long", listen);
    memcpy(addr, a, alen);
    addr[alen] = '\0';
    const char *p = colon + 1;
    char *end = NULL;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (!*p || *end || errno || v < 0 || v > 65535 || (*p < '0' || *p > '9'))
        return err_set(FERRY_E_INVALID, "--http '%.100s': port must be 0 to 65535", listen);
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, addr, buf) != 1 && inet_pton(AF_INET6, addr, buf) != 1)
        return err_set(FERRY_E_INVALID,
                       "--http '%.100s': '%s' is not a numeric IPv4 or IPv6 address", listen, addr);
    *port = (int)v;
    return 0;
}

int http_addr_is_loopback(const char *addr)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, addr, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127 ? 0 : -1;
    if (inet_pton(AF_INET6, addr, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) ? 0 : -1;
    return -1;
}

static int is_off(const char *listen) { return !listen || strcmp(listen, "off") == 0; }

/* The file's bytes; every error names the flag. A secret, held to the
 * rule for secret keys (lib/key.c): not for the group or others to read. */
static int token_read(const char *path, uint8_t **data, size_t *len)
{
    struct stat st;
    int fd = fs_open_regular(path, &st);
    if (fd < 0) {
        char why[512]; /* err_message points into the buffer err_set writes */
        snprintf(why, sizeof why, "%s", err_message(fd));
        return err_set(fd, "--http-token: %s", why);
    }
    int rc = 0;
    *data = NULL;
    if (st.st_mode & 077)
        rc = err_set(FERRY_E_KEYPERM,
                     "--http-token %s: accessible by group or others (mode %03o); run chmod 600 on it",
                     path, (unsigned)(st.st_mode & 0777));
    else if ((uint64_t)st.st_size > HTTP_TOKEN_MAX + 2)
        rc = err_set(FERRY_E_INVALID, "--http-token %s: more than %d bytes", path, HTTP_TOKEN_MAX + 2);
    else if (!(*data = malloc((size_t)st.st_size + 1)))
        rc = err_set(-ENOMEM, "--http-token %s: out of memory", path);
    else if ((rc = fs_read_fd(fd, path, (size_t)st.st_size, *data, len)) < 0) {
        char why[512];
        snprintf(why, sizeof why, "%s", err_message(rc));
        rc = err_set(rc, "--http-token: %s", why);
    }
    close(fd);
    if (rc < 0) {
        free(*data);
        *data = NULL;
    }
    return rc;
}

/* The token: the file's first line without its line end, at least
 * HTTP_TOKEN_MIN bytes of printable ASCII (it travels in a header). Only
 * its hash is kept, so the compare below is over equal lengths. */
static int token_load(const char *path, unsigned char hash[crypto_generichash_BYTES])
{
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = token_read(path, &data, &len);
    if (rc < 0)
        return rc;
    size_t n = 0;
    while (n < len && data[n] != '\n' && data[n] != '\r')
        n++;
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        bad |= data[i] < 0x21 || data[i] > 0x7e;
    size_t rest = n;
    while (rest < len && (data[rest] == '\n' || data[rest] == '\r'))
        rest++;
    if (n < HTTP_TOKEN_MIN || n > HTTP_TOKEN_MAX || bad || rest != len) {
        sodium_memzero(data, len);
        free(data);
        return err_set(FERRY_E_INVALID,
                       "--http-token %s: must be one line of %d to %d printable characters without spaces",
                       path, HTTP_TOKEN_MIN, HTTP_TOKEN_MAX);
    }
    crypto_generichash(hash, crypto_generichash_BYTES, data, n, NULL, 0);
    sodium_memzero(data, len);
    free(data);
    return 0;
}

int http_config_check(const struct http_config *cfg, int *off)
{
    *off = is_off(cfg->listen);
    if (*off) {
        if (cfg->token_file && cfg->listen)
            return err_set(FERRY_E_INVALID, "--http-token: the HTTP server is off (--http off)");
        return 0;
    }
    char addr[64];
    int port = 0;
    int rc = http_parse_listen(cfg->listen, addr, sizeof addr, &port);
    if (rc < 0)
        return rc;
    if (cfg->assets_dir) {
        struct http_page *p = NULL;
        if ((rc = http_page_open(cfg->assets_dir, &p)) < 0)
            return rc;
        http_page_close(p);
    }
    if (cfg->logs_key && (rc = http_logs_check_key(cfg->logs_key)) < 0)
        return rc;
    if (cfg->token_file) {
        unsigned char h[crypto_generichash_BYTES];
        return token_load(cfg->token_file, h);
    }
    if (http_addr_is_loopback(addr) < 0)
        return err_set(FERRY_E_INVALID,
                       "--http %s: not a loopback address, so --http-token FILE is required",
                       cfg->listen);
    return 0;
}

/* ---- readers ---- */

struct db *http_reader_get(struct http_server *s)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += READER_WAIT_MS / 1000;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        for (unsigned i = 0; i < s->n_readers; i++)
            if (!s->readers[i].busy) {
                s->readers[i].busy = 1;
                pthread_mutex_unlock(&s->mu);
                return &s->readers[i].db;
            }
        if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&s->mu);
    err_set(-EBUSY, "every metadata reader is busy; try again");
    return NULL;
}

void http_reader_put(struct http_server *s, struct db *db)
{
    if (!db)
        return;
    pthread_mutex_lock(&s->mu);
    for (unsigned i = 0; i < s->n_readers; i++)
        if (&s->readers[i].db == db)
            s->readers[i].busy = 0;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---- answering ---- */

int http_json(struct http_reply *out, int status, json_t *v)
{
    if (!v)
        return -ENOMEM;
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(v);
    if (!text)
        return -ENOMEM;
    out->status = status;
    out->content_type = "application/json";
    out->body = text;
    out->len = strlen(text);
    return 0;
}

const char *http_arg(const struct http_call *c, const char *name)
{
    return httpd_arg(c->req, name);
}

/* A HEAD gets the GET's answer: the library sends its headers (with the
 * length) and leaves the body out. */
static void answer(struct httpd_request *req, int status, const char *ctype, const char *body,
                   size_t len, int head)
{
    (void)head;
    httpd_respond(req, status, ctype, body, len);
}

static void answer_error(struct httpd_request *req, int status, const char *msg, int head)
{
    (void)head;
    json_t *v = json_pack("{s:s}", "error", msg);
    char *text = v ? json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(v);
    /* What RFC 9110 asks of these two: the methods there are, the scheme
     * that is wanted. */
    const char *hn = status == 405 ? "Allow" : status == 401 ? "WWW-Authenticate" : NULL;
    const char *hv = status == 405 ? "GET, HEAD" : "Bearer realm=\"ferry\"";
    if (text)
        httpd_respond_with(req, status, "application/json", hn, hv, text, strlen(text));
    else
        httpd_respond(req, 500, "application/json", "{\"error\":\"out of memory\"}", 25);
    free(text);
}

static int status_of(int rc)
{
    switch (rc) {
    case FERRY_E_INVALID:
        return 400;
    case FERRY_E_NOTFOUND:
        return 404;
    case FERRY_E_LIMIT:
        return 413;
    case -EBUSY:
        return 503;
    default:
        return 500;
    }
}

/* The Authorization header must be "Bearer TOKEN"; compared through the
 * hashes (equal lengths, sodium_memcmp's constant time). */
static int authorized(struct http_server *s, struct httpd_request *req)
{
    if (!s->have_token)
        return 1;
    const char *h = httpd_header(req, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7) != 0)
        return 0;
    const char *t = h + 7;
    size_t n = strlen(t);
    if (n > HTTP_TOKEN_MAX)
        return 0;
    unsigned char got[crypto_generichash_BYTES];
    crypto_generichash(got, sizeof got, (const unsigned char *)t, n, NULL, 0);
    return sodium_memcmp(got, s->token_hash, sizeof got) == 0;
}

static const struct http_route *find_route(const char *path, int *path_known)
{
    *path_known = 0;
    for (size_t t = 0; route_tables[t]; t++)
        for (const struct http_route *r = route_tables[t]; r->path; r++) {
            int hit = r->prefix ? strncmp(path, r->path, strlen(r->path)) == 0
                                : strcmp(path, r->path) == 0;
            if (hit) {
                *path_known = 1;
                return r;
            }
        }
    return NULL;
}

static void on_request(void *ctx, struct httpd_request *req)
{
    struct http_server *s = ctx;
    int head = strcmp(req->method, "HEAD") == 0;
    if (!authorized(s, req)) {
        answer_error(req, 401, "missing or wrong bearer token (Authorization: Bearer TOKEN)", head);
        return;
    }
    int known = 0;
    const struct http_route *r = find_route(req->path, &known);
    if (!r) {
        answer_error(req, 404, "no such path", head);
        return;
    }
    if (strcmp(req->method, "GET") != 0 && !head) {
        answer_error(req, 405, "read-only: only GET and HEAD are allowed", 0);
        return;
    }
    struct http_call c = {
        .reg = s->reg,
        .srv = s,
        .req = req,
        .method = req->method,
        .path = req->path,
        .tail = r->prefix ? req->path + strlen(r->path) : "",
    };
    struct http_reply out = {0};
    err_clear();
    int rc = r->fn(&c, &out);
    if (rc < 0) {
        free(out.body);
        answer_error(req, status_of(rc), err_message(rc), head);
        return;
    }
    if (!out.taken)
        answer(req, out.status ? out.status : 200, out.content_type, out.body ? out.body : "",
               out.body ? out.len : 0, head);
    free(out.body);
}

/* ---- start and stop ---- */

static void readers_close(struct http_server *s)
{
    for (unsigned i = 0; s->readers && i < s->n_readers; i++)
        if (s->readers[i].db.impl)
            db_close(&s->readers[i].db);
    free(s->readers);
    s->readers = NULL;
}

int http_start(const struct http_config *cfg, struct registry *reg, struct http_server **out)
{
    *out = NULL;
    int off = 0;
    int rc = http_config_check(cfg, &off);
    if (rc < 0 || off)
        return rc;
    char addr[64];
    int port = 0;
    if ((rc = http_parse_listen(cfg->listen, addr, sizeof addr, &port)) < 0)
        return rc;
    struct http_server *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->reg = reg;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (cfg->token_file) {
        if ((rc = token_load(cfg->token_file, s->token_hash)) < 0)
            goto fail;
        s->have_token = 1;
    }
    unsigned threads = cfg->threads ? cfg->threads : 2;
    /* One reader per library thread: a handler never waits for another. */
    s->n_readers = threads;
    s->readers = calloc(threads, sizeof *s->readers);
    if (!s->readers) {
        rc = -ENOMEM;
        goto fail;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/registry.db", cfg->data_dir);
    for (unsigned i = 0; i < threads; i++)
        if ((rc = db_open_reader(&s->readers[i].db, path)) < 0)
            goto fail;
    if ((rc = http_page_open(cfg->assets_dir, &s->page)) < 0)
        goto fail;
    if ((rc = http_stream_open(cfg->data_dir, reg, cfg->host_ttl_ms, &s->stream)) < 0)
        goto fail;
    if ((rc = http_logs_open(cfg->logs_key, reg, &s->logs)) < 0)
        goto fail;
    struct httpd_config hc = {
        .addr = addr,
        .port = port,
        .max_body = 0,
        .threads = threads,
        .max_conns = HTTP_MAX_CONNS,
        .max_conns_per_ip = HTTP_MAX_CONNS_PER_IP,
        .conn_memory = HTTP_CONN_MEMORY,
        .idle_timeout_s = HTTP_IDLE_TIMEOUT_S,
        .handler = on_request,
        .ctx = s,
    };
    if ((rc = httpd_start(&hc, &s->httpd)) < 0) {
        char why[512]; /* err_message points into the buffer err_set writes */
        snprintf(why, sizeof why, "%s", err_message(rc));
        rc = err_set(rc, "--http %s: %s", cfg->listen, why);
        goto fail;
    }
    int v6 = strchr(addr, ':') != NULL;
    snprintf(s->url, sizeof s->url, v6 ? "http://[%s]:%d" : "http://%s:%d", addr,
             httpd_port(s->httpd));
    *out = s;
    return 0;
fail:
    http_logs_close(s->logs);
    http_stream_close(s->stream);
    http_page_close(s->page);
    readers_close(s);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    sodium_memzero(s->token_hash, sizeof s->token_hash);
    free(s);
    return rc;
}

const char *http_url(const struct http_server *s) { return s ? s->url : ""; }

int http_port(const struct http_server *s) { return s ? httpd_port(s->httpd) : 0; }

void http_stop(struct http_server *s)
{
    if (!s)
        return;
    /* The stream first: it answers its parked waiters, which httpd_stop
     * would otherwise free under it. */
    http_stream_stop(s->stream);
    http_logs_stop(s->logs);
    httpd_stop(s->httpd);
    http_logs_close(s->logs);
    http_stream_close(s->stream);
    http_page_close(s->page);
    readers_close(s);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    sodium_memzero(s->token_hash, sizeof s->token_hash);
    free(s);
}
