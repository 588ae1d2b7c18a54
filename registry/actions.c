#include "actions.h"
#include "rlog.h"
#include "clock.h"
#include "error.h"
#include "hosts.h"
#include "spec.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* E_SPENT: the answer left with its requester. The id stays until the
 * action's own expiry so a replay of it is still refused here, whenever it
 * comes; a spent entry holds no bytes and yields its slot when the table
 * is otherwise full (the agent keeps its own record of ids it ran). */
enum { E_FREE, E_QUEUED, E_DELIVERED, E_ANSWERED, E_SPENT };

struct entry {
    int state;
    uint64_t seq;          /* queue order */
    char host[72];
    uint8_t id[ACTION_ID_LEN];
    uint64_t expires_ms;
    uint8_t *action;       /* encoded SignedAction */
    size_t action_len;
    uint8_t *reply;        /* encoded ActionReplyBody */
    size_t reply_len;
};

struct actions {
    pthread_mutex_t lock;
    pthread_cond_t answered;
    struct entry v[ACTIONS_MAX];
    uint64_t next_seq;
    size_t reply_bytes;
    size_t n_queued;   /* entries not handed out yet: most polls find none */
    int waiters;
    void (*wake)(void *);
    void *wake_arg;
};

int actions_new(void (*wake)(void *arg), void *arg, struct actions **out)
{
    struct actions *a = calloc(1, sizeof *a);
    if (!a)
        return -ENOMEM;
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->answered, NULL);
    a->wake = wake;
    a->wake_arg = arg;
    *out = a;
    return 0;
}

static void entry_clear(struct actions *a, struct entry *e)
{
    if (e->state == E_QUEUED)
        a->n_queued--;
    free(e->action);
    free(e->reply);
    a->reply_bytes -= e->reply_len;
    memset(e, 0, sizeof *e);
}

void actions_free(struct actions *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < ACTIONS_MAX; i++)
        if (a->v[i].state != E_FREE)
            entry_clear(a, &a->v[i]);
    pthread_cond_destroy(&a->answered);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

/* ---- the table ------------------------------------------------------------------ */

/* Caller holds lock. */
static void expire(struct actions *a, uint64_t now_ms)
{
    for (size_t i = 0; i < ACTIONS_MAX; i++)
        if (a->v[i].state != E_FREE && a->v[i].expires_ms <= now_ms)
            entry_clear(a, &a->v[i]);
}

/* Caller holds lock. The answer has been taken: keep only the id. */
static void spend(struct actions *a, struct entry *e)
{
    free(e->action);
    free(e->reply);
    a->reply_bytes -= e->reply_len;
    e->action = e->reply = NULL;
    e->action_len = e->reply_len = 0;
    e->state = E_SPENT;
}

static struct entry *find(struct actions *a, const uint8_t id[ACTION_ID_LEN])
{
    for (size_t i = 0; i < ACTIONS_MAX; i++)
        if (a->v[i].state != E_FREE && memcmp(a->v[i].id, id, ACTION_ID_LEN) == 0)
            return &a->v[i];
    return NULL;
}

static size_t count_locked(struct actions *a, const char *host)
{
    size_t n = 0;
    for (size_t i = 0; i < ACTIONS_MAX; i++)
        if (a->v[i].state != E_FREE && a->v[i].state != E_SPENT &&
            (!host || strcmp(a->v[i].host, host) == 0))
            n++;
    return n;
}

int actions_queue_at(struct actions *a, const char *host, const uint8_t id[ACTION_ID_LEN],
                     const uint8_t *signed_action, size_t len, uint64_t expires_ms,
                     uint64_t now_ms)
{
    if (strlen(host) >= sizeof a->v[0].host)
        return err_set(FERRY_E_INVALID, "action: host name too long");
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, signed_action, len);
    pthread_mutex_lock(&a->lock);
    expire(a, now_ms);
    int rc = 0;
    struct entry *slot = NULL;
    if (find(a, id))
        rc = err_set(FERRY_E_EXISTS, "action for %s refused: its id was used already (replayed?)",
                     host);
    else if (count_locked(a, host) >= ACTIONS_PER_HOST)
        rc = err_set(FERRY_E_LIMIT,
                     "action for %s refused: %d actions are already waiting for this host",
                     host, ACTIONS_PER_HOST);
    for (size_t i = 0; rc == 0 && !slot && i < ACTIONS_MAX; i++)
        if (a->v[i].state == E_FREE)
            slot = &a->v[i];
    for (size_t i = 0; rc == 0 && !slot && i < ACTIONS_MAX; i++)
        if (a->v[i].state == E_SPENT)
            slot = &a->v[i];
    if (slot && slot->state == E_SPENT)
        memset(slot, 0, sizeof *slot);
    if (rc == 0 && !slot)
        rc = err_set(FERRY_E_LIMIT, "action for %s refused: the registry holds %d actions already",
                     host, ACTIONS_MAX);
    if (rc == 0) {
        slot->state = E_QUEUED;
        a->n_queued++;
        slot->seq = a->next_seq++;
        snprintf(slot->host, sizeof slot->host, "%s", host);
        memcpy(slot->id, id, ACTION_ID_LEN);
        slot->expires_ms = expires_ms;
        slot->action = copy;
        slot->action_len = len;
        copy = NULL;
    }
    pthread_mutex_unlock(&a->lock);
    free(copy);
    if (rc == 0 && a->wake)
        a->wake(a->wake_arg);
    return rc;
}

int actions_pending_at(struct actions *a, const char *host, uint64_t now_ms)
{
    int found = 0;
    pthread_mutex_lock(&a->lock);
    for (size_t i = 0; a->n_queued && i < ACTIONS_MAX && !found; i++) {
        const struct entry *e = &a->v[i];
        found = e->state == E_QUEUED && e->expires_ms > now_ms && strcmp(e->host, host) == 0;
    }
    pthread_mutex_unlock(&a->lock);
    return found;
}

int actions_pending(struct actions *a, const char *host)
{
    return actions_pending_at(a, host, clock_unix_ms());
}

size_t actions_take_at(struct actions *a, const char *host, uint64_t now_ms,
                       Ferry__Wire__SignedAction **out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&a->lock);
    expire(a, now_ms);
    while (n < max && a->n_queued) {
        struct entry *oldest = NULL;
        for (size_t i = 0; i < ACTIONS_MAX; i++) {
            struct entry *e = &a->v[i];
            if (e->state == E_QUEUED && strcmp(e->host, host) == 0 &&
                (!oldest || e->seq < oldest->seq))
                oldest = e;
        }
        if (!oldest)
            break;
        Ferry__Wire__SignedAction *sa =
            ferry__wire__signed_action__unpack(NULL, oldest->action_len, oldest->action);
        if (!sa)
            break; /* out of memory: it stays queued for the next poll */
        oldest->state = E_DELIVERED;
        a->n_queued--;
        out[n++] = sa;
    }
    pthread_mutex_unlock(&a->lock);
    return n;
}

int actions_answer_at(struct actions *a, const char *host, const uint8_t id[ACTION_ID_LEN],
                      const uint8_t *reply, size_t len, uint64_t now_ms)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, reply, len);
    pthread_mutex_lock(&a->lock);
    expire(a, now_ms);
    struct entry *e = find(a, id);
    int rc = 0;
    /* Only the host the action was handed to may answer it, once. */
    if (!e || strcmp(e->host, host) != 0 || e->state == E_QUEUED)
        rc = err_set(FERRY_E_NOTFOUND, "action reply from %s: no such action is waiting for it",
                     host);
    else if (e->state == E_ANSWERED || e->state == E_SPENT)
        rc = err_set(FERRY_E_EXISTS, "action reply from %s: answered already", host);
    else if (a->reply_bytes + len > ACTIONS_REPLY_BYTES_MAX)
        rc = err_set(FERRY_E_LIMIT,
                     "action reply from %s: the registry holds %u bytes of replies already",
                     host, ACTIONS_REPLY_BYTES_MAX);
    if (rc == 0) {
        e->state = E_ANSWERED;
        e->reply = copy;
        e->reply_len = len;
        a->reply_bytes += len;
        copy = NULL;
        pthread_cond_broadcast(&a->answered);
    }
    pthread_mutex_unlock(&a->lock);
    free(copy);
    return rc;
}

int actions_result_at(struct actions *a, const uint8_t id[ACTION_ID_LEN], uint64_t now_ms,
                      uint8_t **reply, size_t *len)
{
    pthread_mutex_lock(&a->lock);
    expire(a, now_ms);
    struct entry *e = find(a, id);
    int rc = 1;
    if (!e) {
        rc = err_set(FERRY_E_NOTFOUND, "action: unknown, or expired before its host answered");
    } else if (e->state == E_SPENT) {
        rc = err_set(FERRY_E_NOTFOUND, "action: its answer was collected already");
    } else if (e->state == E_ANSWERED) {
        *reply = e->reply;
        *len = e->reply_len;
        a->reply_bytes -= e->reply_len;
        e->reply = NULL;
        e->reply_len = 0;
        spend(a, e);
        rc = 0;
    }
    pthread_mutex_unlock(&a->lock);
    return rc;
}

size_t actions_count(struct actions *a, const char *host)
{
    pthread_mutex_lock(&a->lock);
    size_t n = count_locked(a, host);
    pthread_mutex_unlock(&a->lock);
    return n;
}

/* Wait until id is answered (or gone), at most wait_ms, and only while
 * fewer than ACTIONS_WAITERS_MAX requests wait: a waiting request holds a
 * registry worker. */
static void wait_answer(struct actions *a, const uint8_t id[ACTION_ID_LEN], uint32_t wait_ms)
{
    if (wait_ms == 0)
        return;
    if (wait_ms > ACTIONS_WAIT_MAX_MS)
        wait_ms = ACTIONS_WAIT_MAX_MS;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += wait_ms / 1000;
    ts.tv_nsec += (long)(wait_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&a->lock);
    if (a->waiters < ACTIONS_WAITERS_MAX) {
        a->waiters++;
        for (;;) {
            struct entry *e = find(a, id);
            if (!e || e->state == E_ANSWERED || e->state == E_SPENT)
                break;
            if (pthread_cond_timedwait(&a->answered, &a->lock, &ts) != 0)
                break;
        }
        a->waiters--;
    }
    pthread_mutex_unlock(&a->lock);
}

/* ---- poll answers ------------------------------------------------------------------ */

void actions_attach(struct actions *a, const char *host, Ferry__Wire__Response *resp,
                    struct actions_batch *b)
{
    b->n = actions_take_at(a, host, clock_unix_ms(), b->v, ACTIONS_PER_HOST);
    resp->actions = b->v;
    resp->n_actions = b->n;
}

void actions_batch_free(struct actions_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        ferry__wire__signed_action__free_unpacked(b->v[i], NULL);
    b->n = 0;
}

/* ---- request handlers ----------------------------------------------------------- */

void actions_scratch_free(struct actions_scratch *s)
{
    if (s->reply)
        ferry__wire__action_reply_body__free_unpacked(s->reply, NULL);
    s->reply = NULL;
}

/* The ActionResult for id: done with the host's reply, or not yet. */
static int result_response(struct actions *a, const uint8_t id[ACTION_ID_LEN],
                           Ferry__Wire__Response *resp, struct actions_scratch *s)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    int rc = actions_result_at(a, id, clock_unix_ms(), &bytes, &len);
    if (rc < 0)
        return rc;
    ferry__wire__action_result__init(&s->result);
    memcpy(s->id, id, ACTION_ID_LEN);
    s->result.id = (ProtobufCBinaryData){ACTION_ID_LEN, s->id};
    if (rc == 0) {
        s->reply = ferry__wire__action_reply_body__unpack(NULL, len, bytes);
        free(bytes);
        if (!s->reply)
            return err_set(FERRY_E_STORE, "action: the stored reply does not decode");
        s->result.done = 1;
        s->result.reply = s->reply;
    }
    resp->body_case = FERRY__WIRE__RESPONSE__BODY_ACTION_RESULT;
    resp->action_result = &s->result;
    return 0;
}

int actions_submit(struct actions *a, struct db *db, const struct trust *trust,
                   const Ferry__Wire__ActionSubmit *req, Ferry__Wire__Response *resp,
                   struct actions_scratch *s)
{
    if (!req->action)
        return err_set(FERRY_E_UNTRUSTED, "action refused: it is not signed");
    Ferry__Wire__ActionBody *b = NULL;
    uint64_t now = clock_unix_ms();
    char signer[KEY_ID_LEN + 1];
    int rc = action_verify(req->action, trust, now, &b, signer);
    if (rc < 0) {
        registry_log("%s", err_detail());
        return rc;
    }
    struct db_host_auth auth;
    rc = db_host_get(db, b->host, &auth);
    if (rc == FERRY_E_NOTFOUND)
        rc = err_set(rc, "action %s for %s refused: host '%s' is not enrolled", b->verb,
                     b->workload, b->host);
    size_t len = ferry__wire__signed_action__get_packed_size(req->action);
    uint8_t *bytes = rc == 0 ? malloc(len ? len : 1) : NULL;
    if (rc == 0 && !bytes)
        rc = -ENOMEM;
    if (rc == 0) {
        ferry__wire__signed_action__pack(req->action, bytes);
        rc = actions_queue_at(a, b->host, b->id.data, bytes, len, b->expires_ms, now);
    }
    free(bytes);
    uint8_t id[ACTION_ID_LEN];
    if (rc == 0)
        memcpy(id, b->id.data, ACTION_ID_LEN);
    action_body_free(b);
    if (rc < 0)
        return rc;
    wait_answer(a, id, req->wait_ms);
    return result_response(a, id, resp, s);
}

int actions_await(struct actions *a, const Ferry__Wire__ActionAwait *req,
                  Ferry__Wire__Response *resp, struct actions_scratch *s)
{
    if (req->id.len != ACTION_ID_LEN)
        return err_set(FERRY_E_INVALID, "action: the id must be %d bytes", ACTION_ID_LEN);
    wait_answer(a, req->id.data, req->wait_ms);
    return result_response(a, req->id.data, resp, s);
}

int actions_reply(struct actions *a, struct db *db, const Ferry__Wire__ActionReply *rep)
{
    /* The size first: a huge body is not even decoded. */
    if (rep->body.len > ACTION_REPLY_MAX_BYTES)
        return err_set(FERRY_E_LIMIT, "action reply: %zu bytes, at most %u", rep->body.len,
                       ACTION_REPLY_MAX_BYTES);
    Ferry__Wire__ActionReplyBody *b =
        ferry__wire__action_reply_body__unpack(NULL, rep->body.len, rep->body.data);
    if (!b)
        return err_set(FERRY_E_PROTOCOL, "action reply: malformed body");
    const char *host = spec_name_ok(b->host) ? b->host : "?";
    struct db_host_auth auth;
    int rc = db_host_get(db, host, &auth);
    if (rc == FERRY_E_NOTFOUND)
        rc = err_set(rc, "action reply from %s: host is not enrolled", host);
    if (rc == 0 && key_verify(auth.key, rep->body.data, rep->body.len, rep->signature.data,
                              rep->signature.len) < 0)
        rc = err_set(FERRY_E_SIGNATURE, "action reply from %s: not signed by its host key", host);
    if (rc == 0)
        rc = action_reply_check(host, rep->body.len, b);
    if (rc == 0)
        rc = hosts_time_check("action reply", host, b->sent_ms, clock_unix_ms());
    if (rc == 0)
        rc = actions_answer_at(a, host, b->id.data, rep->body.data, rep->body.len,
                               clock_unix_ms());
    if (rc < 0)
        registry_log("%s", err_detail());
    ferry__wire__action_reply_body__free_unpacked(b, NULL);
    return rc;
}
