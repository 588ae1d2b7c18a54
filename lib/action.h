/* Actions: a request addressed to one workload on one host (`ferry logs`,
 * later kernels and notebook runs), signed by an operator key, carried by
 * the registry to the host on its poll channel and answered by the host
 * with a reply signed by its host key. This module holds what the three
 * parties share: the bounds, signing, and the checks of a signed action.
 * docs/security.md ("Actions") states the rules. */
#ifndef FERRY_LIB_ACTION_H
#define FERRY_LIB_ACTION_H

#include "key.h"
#include "wire.pb-c.h"

#include <stddef.h>
#include <stdint.h>

#define ACTION_PURPOSE "ferry-action-v1"
#define ACTION_ID_LEN 16
#define ACTION_VERB_MAX 32                  /* [a-z0-9-], first a letter */
#define ACTION_REQUEST_MAX 4096u            /* request_json bytes */
#define ACTION_REPLY_JSON_MAX 16384u        /* reply_json bytes */
#define ACTION_REPLY_DATA_MAX (256u << 10)  /* reply data bytes */
#define ACTION_ERROR_MAX 1024u
/* An encoded ActionReplyBody: the parts above and a little framing. */
#define ACTION_REPLY_MAX_BYTES (ACTION_REPLY_DATA_MAX + ACTION_REPLY_JSON_MAX + 4096u)
/* An encoded SignedAction. */
#define ACTION_SIGNED_MAX_BYTES (ACTION_REQUEST_MAX + 1024u)
/* How long an action may live, and how far its issue time may be from the
 * checker's clock. */
#define ACTION_TTL_MAX_MS (5u * 60 * 1000)
#define ACTION_CLOCK_WINDOW_MS (5u * 60 * 1000)

/* The logs verb: lines a tail may ask for. */
#define ACTION_LOGS_TAIL_MAX 10000

/* Sign a new action: a fresh random id, issued now_ms, expiring ttl_ms
 * later. *out is freed with action_signed_free; id (may be NULL) gets the
 * id. */
int action_sign(const struct key_secret *k, const char *host, const char *workload,
                const char *verb, const char *request_json, uint64_t now_ms, uint32_t ttl_ms,
                Ferry__Wire__SignedAction **out, uint8_t id[ACTION_ID_LEN]);
void action_signed_free(Ferry__Wire__SignedAction *sa);

/* Check a signed action against trust at now_ms: a key in trust signed
 * exactly these bytes, the body is well formed and within bounds, and it
 * is neither expired nor issued too far from now. *out is freed with
 * action_body_free; signer (may be NULL) gets the key id. Errors name the
 * action ("action logs for web on h1") and the reason. */
int action_verify(const Ferry__Wire__SignedAction *sa, const struct trust *trust, uint64_t now_ms,
                  Ferry__Wire__ActionBody **out, char signer[KEY_ID_LEN + 1]);
void action_body_free(Ferry__Wire__ActionBody *b);

/* 0 when a reply body's parts are within the bounds above. */
int action_reply_check(const char *host, size_t body_len, const Ferry__Wire__ActionReplyBody *b);

/* 1 when verb is a well-formed verb name. */
int action_verb_ok(const char *verb);
/* The id as 32 hex characters (for logs and errors). */
void action_id_hex(const uint8_t *id, size_t len, char out[2 * ACTION_ID_LEN + 1]);

#endif
