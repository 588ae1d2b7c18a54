/* GET /api/v1/stream, the page's long poll (http_stream.h).
 *
 * Waiters are parked requests of the HTTP library (lib/httpd.h: a handler
 * may return unanswered and any thread answers later, exactly once). The
 * watcher thread owns answering them: under s->mu a waiter is either in
 * the table or answered, never both, so each is answered once. */
#include "http_stream.h"
#include "db.h"
#include "error.h"
#include "http.h"
#include "httpd.h"
#include "wire.pb-c.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct waiter {
    struct httpd_request *req;
    int head;
    int64_t deadline_ms;
};

struct http_stream {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int thread_started, stopping;
    pthread_mutex_t db_mu; /* one fingerprint at a time on db */
    struct db db;          /* the watcher's own read-only connection */
    int db_open;
    int host_ttl_ms;
    uint64_t seq;
    unsigned char fp[crypto_generichash_BYTES];
    int have_fp;
    int fresh; /* fp is being kept current by the watcher's ticks */
    int64_t last_request_ms;
    struct waiter w[HTTP_STREAM_MAX_WAITERS];
    size_t n;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void hash_str(crypto_generichash_state *h, const char *v)
{
    const char *s = v ? v : "";
    /* With its terminator, so "ab"+"c" and "a"+"bc" differ. */
    crypto_generichash_update(h, (const unsigned char *)s, strlen(s) + 1);
}

static void hash_u64(crypto_generichash_state *h, uint64_t v)
{
    crypto_generichash_update(h, (const unsigned char *)&v, sizeof v);
}

/* What the page shows that can change, hashed; the metrics are left out
 * (they move at every collection and the page draws them on its own
 * clock). Called with s->mu not held: it reads the metadata. */
static int fingerprint(struct http_stream *s, unsigned char out[crypto_generichash_BYTES])
{
    struct db_host *hosts = NULL;
    size_t nh = 0;
    int rc = db_host_list(&s->db, &hosts, &nh);
    if (rc < 0)
        return rc;
    struct db_deployment *deps = NULL;
    size_t nd = 0;
    if ((rc = db_deployment_list(&s->db, &deps, &nd)) < 0) {
        db_host_list_free(hosts, nh);
        return rc;
    }
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, crypto_generichash_BYTES);
    int64_t now = now_ms();
    for (size_t i = 0; i < nh; i++) {
        const struct db_host *dh = &hosts[i];
        hash_str(&h, dh->name);
        hash_u64(&h, (uint64_t)dh->pending);
        hash_u64(&h, (uint64_t)(!dh->pending && now - dh->last_seen_ms <= s->host_ttl_ms));
        hash_str(&h, dh->labels);
        hash_u64(&h, dh->plugins_len);
        if (dh->plugins_len)
            crypto_generichash_update(&h, dh->plugins, dh->plugins_len);
        Ferry__Wire__ReportBody *b =
            dh->report ? ferry__wire__report_body__unpack(NULL, dh->report_len, dh->report) : NULL;
        for (size_t j = 0; b && j < b->n_workloads; j++) {
            const Ferry__Wire__WorkloadReport *w = b->workloads[j];
            hash_str(&h, w->name);
            hash_str(&h, w->version);
            hash_str(&h, w->state);
            hash_str(&h, w->reason);
            hash_u64(&h, w->restarts);
            hash_u64(&h, w->since_ms);
            hash_str(&h, w->address);
            hash_str(&h, w->mode);
        }
        if (b)
            ferry__wire__report_body__free_unpacked(b, NULL);
        hash_str(&h, "\x1e"); /* end of host */
    }
    for (size_t i = 0; i < nd; i++) {
        hash_str(&h, deps[i].name);
        hash_str(&h, deps[i].selector);
        hash_u64(&h, (uint64_t)deps[i].issued_ms);
    }
    crypto_generichash_final(&h, out, crypto_generichash_BYTES);
    db_host_list_free(hosts, nh);
    db_deployment_list_free(deps, nd);
    return 0;
}

/* Hash now; seq moves when the hash differs from the last one. Takes and
 * gives back s->mu around the read. */
static void refresh_locked(struct http_stream *s)
{
    unsigned char fp[crypto_generichash_BYTES];
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_lock(&s->db_mu);
    int rc = fingerprint(s, fp);
    pthread_mutex_unlock(&s->db_mu);
    pthread_mutex_lock(&s->mu);
    if (rc < 0)
        return; /* a busy store: the next tick tries again */
    if (s->have_fp && memcmp(fp, s->fp, sizeof fp) != 0)
        s->seq++;
    memcpy(s->fp, fp, sizeof fp);
    s->have_fp = 1;
    s->fresh = 1;
}

static void respond_seq(struct httpd_request *req, int head, uint64_t seq, int changed)
{
    char body[96];
    int n = snprintf(body, sizeof body, "{\"seq\":%llu,\"changed\":%s}",
                     (unsigned long long)seq, changed ? "true" : "false");
    /* Never cached: a proxy must not answer a poll from an old one. */
    httpd_respond(req, 200, "application/json", head ? "" : body, head ? 0 : (size_t)n);
}

/* Answer the waiters whose seq moved or whose time is up (all of them
 * when all is set); under s->mu. */
static void answer_waiters_locked(struct http_stream *s, uint64_t seq_before, int all)
{
    int64_t now = mono_ms();
    size_t keep = 0;
    for (size_t i = 0; i < s->n; i++) {
        struct waiter *w = &s->w[i];
        int changed = s->seq != seq_before;
        if (all || changed || now >= w->deadline_ms)
            respond_seq(w->req, w->head, s->seq, changed);
        else
            s->w[keep++] = *w;
    }
    s->n = keep;
}

static void *watcher(void *arg)
{
    struct http_stream *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        int idle = s->n == 0 && mono_ms() - s->last_request_ms > HTTP_STREAM_IDLE_MS;
        if (idle) {
            /* Nobody watches: stop hashing. The next request hashes once
             * before it answers, against the hash kept from before the
             * gap, so a change made meanwhile still moves seq. */
            s->fresh = 0;
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        dl.tv_nsec += HTTP_STREAM_TICK_MS * 1000000L;
        dl.tv_sec += dl.tv_nsec / 1000000000L;
        dl.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&s->cv, &s->mu, &dl);
        if (s->stopping)
            break;
        uint64_t before = s->seq;
        refresh_locked(s);
        answer_waiters_locked(s, before, 0);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int http_stream_open(const char *data_dir, struct registry *reg, int host_ttl_ms,
                     struct http_stream **out)
{
    (void)reg;
    *out = NULL;
    struct http_stream *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->db_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    s->host_ttl_ms = host_ttl_ms;
    s->last_request_ms = mono_ms() - HTTP_STREAM_IDLE_MS - 1;
    char path[4096];
    snprintf(path, sizeof path, "%s/registry.db", data_dir);
    int rc = db_open_reader(&s->db, path);
    if (rc < 0)
        goto fail;
    s->db_open = 1;
    if ((rc = pthread_create(&s->thread, NULL, watcher, s)) != 0) {
        rc = err_set(-rc, "the stream's watcher thread: %s", strerror(rc));
        goto fail;
    }
    s->thread_started = 1;
    *out = s;
    return 0;
fail:
    if (s->db_open)
        db_close(&s->db);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->db_mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    return rc;
}

void http_stream_stop(struct http_stream *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    answer_waiters_locked(s, s->seq, 1);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->thread_started)
        pthread_join(s->thread, NULL);
    s->thread_started = 0;
}

void http_stream_close(struct http_stream *s)
{
    if (!s)
        return;
    http_stream_stop(s);
    if (s->db_open)
        db_close(&s->db);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->db_mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

uint64_t http_stream_seq(struct http_stream *s)
{
    pthread_mutex_lock(&s->mu);
    if (!s->fresh)
        refresh_locked(s);
    uint64_t v = s->seq;
    pthread_mutex_unlock(&s->mu);
    return v;
}

/* A decimal argument from lo to hi; FERRY_E_INVALID naming it otherwise. */
static int arg_u64(const struct http_call *c, const char *name, uint64_t lo, uint64_t hi,
                   int *present, uint64_t *out)
{
    const char *v = http_arg(c, name);
    *present = v != NULL;
    if (!v)
        return 0;
    uint64_t x = 0;
    int digits = 0;
    for (const char *p = v; *p; p++, digits++) {
        if (*p < '0' || *p > '9' || digits >= 19)
            return err_set(FERRY_E_INVALID, "%s '%.40s': must be a whole number from %llu to %llu",
                           name, v, (unsigned long long)lo, (unsigned long long)hi);
        x = x * 10 + (uint64_t)(*p - '0');
    }
    if (!digits || x < lo || x > hi)
        return err_set(FERRY_E_INVALID, "%s '%.40s': must be a whole number from %llu to %llu",
                       name, v, (unsigned long long)lo, (unsigned long long)hi);
    *out = x;
    return 0;
}

static int route_stream(const struct http_call *c, struct http_reply *out)
{
    struct http_stream *s = http_server_stream(c->srv);
    if (!s)
        return err_set(FERRY_E_NOTFOUND, "the stream is off");
    int has_since = 0, has_timeout = 0;
    uint64_t since = 0, timeout_s = HTTP_STREAM_DEFAULT_TIMEOUT_S;
    int rc = arg_u64(c, "since", 0, UINT64_MAX / 2, &has_since, &since);
    if (rc < 0)
        return rc;
    if ((rc = arg_u64(c, "timeout", 1, HTTP_STREAM_MAX_TIMEOUT_S, &has_timeout, &timeout_s)) < 0)
        return rc;
    int head = strcmp(c->method, "HEAD") == 0;
    pthread_mutex_lock(&s->mu);
    s->last_request_ms = mono_ms();
    if (!s->fresh)
        refresh_locked(s);
    if (!has_since || since != s->seq) {
        uint64_t seq = s->seq;
        pthread_mutex_unlock(&s->mu);
        return http_json(out, 200, json_pack("{s:I,s:b}", "seq", (json_int_t)seq, "changed",
                                              has_since));
    }
    if (s->stopping || s->n >= HTTP_STREAM_MAX_WAITERS) {
        pthread_mutex_unlock(&s->mu);
        return err_set(-EBUSY, "%d streams are waiting already (the most at once); poll the "
                       "API instead", HTTP_STREAM_MAX_WAITERS);
    }
    s->w[s->n++] = (struct waiter){
        .req = c->req,
        .head = head,
        .deadline_ms = mono_ms() + (int64_t)timeout_s * 1000,
    };
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    out->taken = 1;
    return 0;
}

const struct http_route http_stream_routes[] = {
    {"GET", "/api/v1/stream", 0, route_stream},
    {NULL, NULL, 0, NULL},
};
