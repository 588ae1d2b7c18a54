/* The dashboard's log tail through the logs action (http_logs.h). */
#include "http_logs.h"
#include "action.h"
#include "clock.h"
#include "error.h"
#include "http.h"
#include "httpd.h"
#include "key.h"
#include "registry_int.h"
#include "spec.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct logs_job {
    struct httpd_request *req;
    int head;
    char name[72], host[72];
    char stream[8];
    unsigned lines;
};

struct http_logs {
    struct registry *reg;
    struct key_secret key;
    struct trust trust; /* the key's public half alone */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int started, stopping;
    struct logs_job q[HTTP_LOGS_QUEUE];
    size_t n;
};

int http_logs_check_key(const char *key_file)
{
    struct key_secret k;
    int rc = key_load_secret(key_file, &k);
    key_secret_wipe(&k);
    if (rc < 0)
        return err_set(rc, "--http-logs-key %s: %s", key_file, err_message(rc));
    return 0;
}

static void respond_json(struct httpd_request *req, int head, int status, json_t *v)
{
    char *text = v ? json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(v);
    if (!text) {
        httpd_respond(req, 500, "application/json", "{\"error\":\"out of memory\"}", 25);
        return;
    }
    httpd_respond(req, status, "application/json", head ? "" : text, head ? 0 : strlen(text));
    free(text);
}

static void respond_error(struct httpd_request *req, int head, int status, const char *msg)
{
    respond_json(req, head, status, json_pack("{s:s}", "error", msg));
}

/* Log bytes as a JSON string: bytes that are not UTF-8 become '?'. */
static json_t *text_json(const uint8_t *data, size_t len)
{
    json_t *s = json_stringn((const char *)data, len);
    if (s)
        return s;
    char *copy = malloc(len + 1);
    if (!copy)
        return NULL;
    for (size_t i = 0; i < len; i++)
        copy[i] = data[i] < 0x80 && (data[i] >= 0x20 || data[i] == '\n' || data[i] == '\t')
                      ? (char)data[i]
                      : '?';
    s = json_stringn(copy, len);
    free(copy);
    return s;
}

/* Sign, queue, wait: the host's reply in *out (0), or a status and a line. */
static void run_job(struct http_logs *l, struct logs_job *j)
{
    char req_json[96];
    snprintf(req_json, sizeof req_json, "{\"stream\":\"%s\",\"tail\":%u}", j->stream, j->lines);
    Ferry__Wire__SignedAction *sa = NULL;
    uint8_t id[ACTION_ID_LEN];
    err_clear();
    int rc = action_sign(&l->key, j->host, j->name, "logs", req_json, clock_unix_ms(),
                         HTTP_LOGS_DEADLINE_MS + 5000, &sa, id);
    if (rc < 0) {
        respond_error(j->req, j->head, 500, err_message(rc));
        return;
    }
    Ferry__Wire__ActionSubmit as;
    ferry__wire__action_submit__init(&as);
    as.action = sa;
    as.wait_ms = 500;
    Ferry__Wire__Response resp;
    ferry__wire__response__init(&resp);
    struct actions_scratch s;
    memset(&s, 0, sizeof s);
    rc = actions_submit(l->reg->actions, &l->reg->db, &l->trust, &as, &resp, &s);
    action_signed_free(sa);
    uint64_t deadline = clock_mono_ms() + HTTP_LOGS_DEADLINE_MS;
    /* Short waits, so a stopping registry is not held up by a host. */
    while (rc == 0 && !s.result.done && clock_mono_ms() < deadline) {
        pthread_mutex_lock(&l->mu);
        int stopping = l->stopping;
        pthread_mutex_unlock(&l->mu);
        if (stopping)
            break;
        actions_scratch_free(&s);
        memset(&s, 0, sizeof s);
        ferry__wire__response__init(&resp);
        Ferry__Wire__ActionAwait aw;
        ferry__wire__action_await__init(&aw);
        aw.id = (ProtobufCBinaryData){ACTION_ID_LEN, id};
        aw.wait_ms = 500;
        rc = actions_await(l->reg->actions, &aw, &resp, &s);
    }
    if (rc < 0) {
        int status = rc == FERRY_E_NOTFOUND ? 404 : rc == FERRY_E_LIMIT ? 503 : 502;
        respond_error(j->req, j->head, status, err_message(rc));
    } else if (!s.result.done || !s.result.reply) {
        char msg[200];
        snprintf(msg, sizeof msg, "host %s did not answer within %d s (is its agent running?)",
                 j->host, HTTP_LOGS_DEADLINE_MS / 1000);
        respond_error(j->req, j->head, 504, msg);
    } else if (s.result.reply->code != FERRY__WIRE__CODE__OK) {
        char msg[1200];
        snprintf(msg, sizeof msg, "host %s: %s", j->host,
                 s.result.reply->error && *s.result.reply->error ? s.result.reply->error
                                                                 : "the logs action failed");
        respond_error(j->req, j->head, 502, msg);
    } else {
        const Ferry__Wire__ActionReplyBody *b = s.result.reply;
        json_t *rj = json_loads(b->reply_json ? b->reply_json : "{}", 0, NULL);
        json_t *doc = json_pack("{s:s,s:s,s:s,s:I,s:o,s:b}", "host", j->host, "name", j->name,
                                "stream", j->stream, "lines", (json_int_t)j->lines, "text",
                                text_json(b->data.data, b->data.len), "truncated",
                                json_is_true(json_object_get(rj, "truncated")));
        json_decref(rj);
        respond_json(j->req, j->head, doc ? 200 : 500, doc);
    }
    actions_scratch_free(&s);
}

static void *worker(void *arg)
{
    struct http_logs *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stopping && l->n == 0)
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->stopping)
            break;
        struct logs_job j = l->q[0];
        memmove(l->q, l->q + 1, (l->n - 1) * sizeof l->q[0]);
        l->n--;
        pthread_mutex_unlock(&l->mu);
        run_job(l, &j);
        pthread_mutex_lock(&l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int http_logs_open(const char *key_file, struct registry *reg, struct http_logs **out)
{
    *out = NULL;
    if (!key_file)
        return 0;
    struct http_logs *l = calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    int rc = key_load_secret(key_file, &l->key);
    if (rc < 0) {
        rc = err_set(rc, "--http-logs-key %s: %s", key_file, err_message(rc));
        free(l);
        return rc;
    }
    l->reg = reg;
    l->trust.keys = &l->key.pub;
    l->trust.n = 1;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    if ((rc = pthread_create(&l->thread, NULL, worker, l)) != 0) {
        rc = err_set(-rc, "the log tail's thread: %s", strerror(rc));
        key_secret_wipe(&l->key);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
        free(l);
        return rc;
    }
    l->started = 1;
    *out = l;
    return 0;
}

void http_logs_stop(struct http_logs *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    l->stopping = 1;
    for (size_t i = 0; i < l->n; i++)
        respond_error(l->q[i].req, l->q[i].head, 503, "the registry is stopping");
    l->n = 0;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    if (l->started)
        pthread_join(l->thread, NULL);
    l->started = 0;
}

void http_logs_close(struct http_logs *l)
{
    if (!l)
        return;
    http_logs_stop(l);
    key_secret_wipe(&l->key);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
}

static int arg_lines(const struct http_call *c, unsigned *out)
{
    const char *v = http_arg(c, "lines");
    *out = HTTP_LOGS_DEFAULT_LINES;
    if (!v)
        return 0;
    unsigned x = 0;
    size_t n = strlen(v);
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9' || i >= 5)
            goto bad;
        x = x * 10 + (unsigned)(v[i] - '0');
    }
    if (n == 0 || x < 1 || x > HTTP_LOGS_MAX_LINES)
        goto bad;
    *out = x;
    return 0;
bad:
    return err_set(FERRY_E_INVALID, "lines '%.40s': must be a whole number from 1 to %d", v,
                   HTTP_LOGS_MAX_LINES);
}

static int route_logs(const struct http_call *c, struct http_reply *out)
{
    const char *name = c->tail;
    if (!spec_name_ok(name))
        return err_set(FERRY_E_INVALID, "name '%.80s': not a valid workload name", name);
    struct http_logs *l = http_server_logs(c->srv);
    if (!l)
        return err_set(FERRY_E_NOTFOUND,
                       "this registry reads no logs for the page (start it with --http-logs-key "
                       "FILE, docs/dashboard.md); run: ferry logs %s", name);
    const char *host = http_arg(c, "host");
    if (!host || !spec_name_ok(host))
        return err_set(FERRY_E_INVALID, "host '%.80s': a valid host name is required",
                       host ? host : "");
    const char *stream = http_arg(c, "stream");
    if (stream && strcmp(stream, "stdout") != 0 && strcmp(stream, "stderr") != 0)
        return err_set(FERRY_E_INVALID, "stream '%.40s': stdout or stderr", stream);
    unsigned lines = 0;
    int rc = arg_lines(c, &lines);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&l->mu);
    if (l->stopping || l->n >= HTTP_LOGS_QUEUE) {
        pthread_mutex_unlock(&l->mu);
        return err_set(-EBUSY, "%d log reads are waiting already; try again", HTTP_LOGS_QUEUE);
    }
    struct logs_job *j = &l->q[l->n++];
    memset(j, 0, sizeof *j);
    j->req = c->req;
    j->head = strcmp(c->method, "HEAD") == 0;
    snprintf(j->name, sizeof j->name, "%s", name);
    snprintf(j->host, sizeof j->host, "%s", host);
    snprintf(j->stream, sizeof j->stream, "%s", stream ? stream : "stdout");
    j->lines = lines;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    out->taken = 1;
    return 0;
}

const struct http_route http_logs_routes[] = {
    {"GET", "/api/v1/logs/", 1, route_logs},
    {NULL, NULL, 0, NULL},
};
