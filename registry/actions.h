/* Actions in the registry: requests addressed to one workload on one host
 * (docs/architecture.md, "Actions"). An operator's signed action is checked
 * and queued for its host; the host's next poll answer carries it (a parked
 * poll of that host is woken); the host's signed reply is kept until the
 * requester collects it. Everything is bounded: actions per host, actions
 * in all, reply bytes in all, and each entry expires with its action. The
 * table lives in memory: a registry restart forgets queued actions, and
 * their requesters time out. */
#ifndef FERRY_REGISTRY_ACTIONS_H
#define FERRY_REGISTRY_ACTIONS_H

#include "action.h"
#include "db.h"
#include "key.h"
#include "wire.pb-c.h"

#include <stddef.h>
#include <stdint.h>

#define ACTIONS_PER_HOST 16          /* queued or awaiting a reply, per host */
#define ACTIONS_MAX 512              /* in the whole table */
#define ACTIONS_REPLY_BYTES_MAX (32u << 20) /* replies held, all hosts */
#define ACTIONS_WAITERS_MAX 4        /* requests that may wait for a reply at once */
#define ACTIONS_WAIT_MAX_MS 2000u    /* one such wait */

struct actions;

/* wake(arg) is called, without any lock of this module held, when an
 * action is queued: the poll parking code then asks actions_pending. */
int actions_new(void (*wake)(void *arg), void *arg, struct actions **out);
void actions_free(struct actions *a);

/* ---- the table (times given, for the unit tests) ---------------------------- */

/* Queue an encoded SignedAction for host. FERRY_E_EXISTS for a known id,
 * FERRY_E_LIMIT when host already has ACTIONS_PER_HOST or the table is
 * full. Expired entries are dropped first. */
int actions_queue_at(struct actions *a, const char *host, const uint8_t id[ACTION_ID_LEN],
                     const uint8_t *signed_action, size_t len, uint64_t expires_ms,
                     uint64_t now_ms);
/* 1 when host has a queued action not yet handed out. */
int actions_pending_at(struct actions *a, const char *host, uint64_t now_ms);
/* Hand out host's queued actions, oldest first, at most max: each becomes a
 * decoded SignedAction in out[] (ferry__wire__signed_action__free_unpacked).
 * Returns how many. */
size_t actions_take_at(struct actions *a, const char *host, uint64_t now_ms,
                       Ferry__Wire__SignedAction **out, size_t max);
/* Keep host's encoded reply for id. FERRY_E_NOTFOUND when no action with
 * that id was handed to host (or it expired), FERRY_E_EXISTS when it was
 * answered already, FERRY_E_LIMIT when the replies held would pass
 * ACTIONS_REPLY_BYTES_MAX. */
int actions_answer_at(struct actions *a, const char *host, const uint8_t id[ACTION_ID_LEN],
                      const uint8_t *reply, size_t len, uint64_t now_ms);
/* The reply for id, which leaves the table: 0 and *reply (malloc'd), 1 when
 * not answered yet, FERRY_E_NOTFOUND when unknown or expired. */
int actions_result_at(struct actions *a, const uint8_t id[ACTION_ID_LEN], uint64_t now_ms,
                      uint8_t **reply, size_t *len);
/* Entries held (any state), all hosts or one. */
size_t actions_count(struct actions *a, const char *host);

/* ---- for the poll parking code ---------------------------------------------- */

/* actions_pending_at, now. Cheap (memory only): the parking code may ask
 * for every parked poll whenever it wakes. */
int actions_pending(struct actions *a, const char *host);

/* What a poll answer's actions point into. */
struct actions_batch {
    Ferry__Wire__SignedAction *v[ACTIONS_PER_HOST];
    size_t n;
};
/* Put host's queued actions into resp->actions (they count as handed out). */
void actions_attach(struct actions *a, const char *host, Ferry__Wire__Response *resp,
                    struct actions_batch *b);
void actions_batch_free(struct actions_batch *b);

/* ---- request handlers ----------------------------------------------------------- */

/* What an ActionResult response points into. */
struct actions_scratch {
    Ferry__Wire__ActionResult result;
    uint8_t id[ACTION_ID_LEN];
    Ferry__Wire__ActionReplyBody *reply;
};
void actions_scratch_free(struct actions_scratch *s);

/* ActionSubmit: signed by a key in trust, for an enrolled host; queued,
 * then waits (bounded) for the reply. */
int actions_submit(struct actions *a, struct db *db, const struct trust *trust,
                   const Ferry__Wire__ActionSubmit *req, Ferry__Wire__Response *resp,
                   struct actions_scratch *s);
/* ActionAwait: the reply, waiting for it (bounded). */
int actions_await(struct actions *a, const Ferry__Wire__ActionAwait *req,
                  Ferry__Wire__Response *resp, struct actions_scratch *s);
/* ActionReply: from the host the action went to, signed by its key. */
int actions_reply(struct actions *a, struct db *db, const Ferry__Wire__ActionReply *rep);

#endif
