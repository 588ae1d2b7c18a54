/* Join tokens: an operator-signed permission for new hosts to enroll with a
 * registry without a manual `ferry hosts accept`. The text form is one line,
 * "ferry-join-v1:<base64url of a SignedJoinToken>". A token is a bearer
 * secret: whoever holds it may enroll hosts until it expires (it is reusable
 * within its TTL). Its labels are labels an enrolling host must carry. */
#ifndef FERRY_LIB_JOINTOKEN_H
#define FERRY_LIB_JOINTOKEN_H

#include "key.h"
#include "selector.h"

#include <stddef.h>
#include <stdint.h>

#define JOIN_TOKEN_PREFIX "ferry-join-v1:"
#define JOIN_TOKEN_PURPOSE "ferry-join-v1"
#define JOIN_TOKEN_DEFAULT_TTL_MS (60ull * 60 * 1000)        /* 1 hour */
#define JOIN_TOKEN_MAX_TTL_MS (30ull * 24 * 60 * 60 * 1000)  /* 30 days */
#define JOIN_TOKEN_TEXT_MAX 8192

struct join_claims {
    struct label_set labels;    /* the host must carry each of these */
    uint64_t issued_ms, expires_ms;
    char signer[KEY_ID_LEN + 1];
};

/* Sign a token valid from now_ms for ttl_ms; *text is malloc'd, one line
 * without a newline. */
int jointoken_make(const struct key_secret *k, const struct label_set *labels, uint64_t now_ms,
                   uint64_t ttl_ms, char **text);
/* The encoded SignedJoinToken inside text (surrounding whitespace ignored);
 * *bytes is malloc'd. */
int jointoken_from_text(const char *text, uint8_t **bytes, size_t *len);
/* Read a token file (a regular file, opened without blocking, at most
 * JOIN_TOKEN_TEXT_MAX bytes) into encoded bytes. */
int jointoken_load(const char *path, uint8_t **bytes, size_t *len);
/* Verify encoded bytes: signed by a key in t (its own copy of the key), well
 * formed, issued no later than now_ms + skew_ms, not expired at now_ms. */
int jointoken_verify(const uint8_t *bytes, size_t len, const struct trust *t, uint64_t now_ms,
                     uint64_t skew_ms, struct join_claims *out);

#endif
