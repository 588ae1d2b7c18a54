#include "action.h"
#include "error.h"
#include "spec.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int action_verb_ok(const char *verb)
{
    size_t n = verb ? strlen(verb) : 0;
    if (n == 0 || n > ACTION_VERB_MAX || verb[0] < 'a' || verb[0] > 'z')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = verb[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return 0;
    }
    return 1;
}

void action_id_hex(const uint8_t *id, size_t len, char out[2 * ACTION_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    size_t n = len < ACTION_ID_LEN ? len : ACTION_ID_LEN;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[id[i] >> 4];
        out[2 * i + 1] = hex[id[i] & 15];
    }
    out[2 * n] = '\0';
}

/* request_json must be one JSON object: the host hands it to a verb (and
 * later to a plugin) that should never see anything else. */
static int json_object_ok(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &e);
    int ok = j && json_is_object(j);
    json_decref(j);
    return ok;
}

int action_sign(const struct key_secret *k, const char *host, const char *workload,
                const char *verb, const char *request_json, uint64_t now_ms, uint32_t ttl_ms,
                Ferry__Wire__SignedAction **out, uint8_t id[ACTION_ID_LEN])
{
    if (!spec_name_ok(host) || !spec_name_ok(workload) || !action_verb_ok(verb))
        return err_set(FERRY_E_INVALID, "action: invalid host, workload or verb name");
    if (strlen(request_json) > ACTION_REQUEST_MAX || !json_object_ok(request_json))
        return err_set(FERRY_E_INVALID, "action %s: the request must be a JSON object of at most %u bytes",
                       verb, ACTION_REQUEST_MAX);
    if (ttl_ms == 0 || ttl_ms > ACTION_TTL_MAX_MS)
        ttl_ms = ACTION_TTL_MAX_MS;
    uint8_t rid[ACTION_ID_LEN];
    randombytes_buf(rid, sizeof rid);
    Ferry__Wire__ActionBody b;
    ferry__wire__action_body__init(&b);
    b.purpose = ACTION_PURPOSE;
    b.id = (ProtobufCBinaryData){sizeof rid, rid};
    b.host = (char *)host;
    b.workload = (char *)workload;
    b.verb = (char *)verb;
    b.request_json = (char *)request_json;
    b.issued_ms = now_ms;
    b.expires_ms = now_ms + ttl_ms;
    size_t n = ferry__wire__action_body__get_packed_size(&b);
    Ferry__Wire__SignedAction *sa = malloc(sizeof *sa);
    uint8_t *bytes = malloc(n ? n : 1), *sig = malloc(crypto_sign_BYTES);
    char *kid = strdup(k->pub.id);
    if (!sa || !bytes || !sig || !kid) {
        free(sa), free(bytes), free(sig), free(kid);
        return -ENOMEM;
    }
    ferry__wire__action_body__pack(&b, bytes);
    key_sign(k, bytes, n, sig);
    ferry__wire__signed_action__init(sa);
    sa->body = (ProtobufCBinaryData){n, bytes};
    sa->key_id = kid;
    sa->signature = (ProtobufCBinaryData){crypto_sign_BYTES, sig};
    if (id)
        memcpy(id, rid, sizeof rid);
    *out = sa;
    return 0;
}

void action_signed_free(Ferry__Wire__SignedAction *sa)
{
    if (!sa)
        return;
    free(sa->body.data);
    free(sa->key_id);
    free(sa->signature.data);
    free(sa);
}

/* The body's own checks, after the signature. */
static int body_check(const Ferry__Wire__ActionBody *b, uint64_t now_ms)
{
    if (!b->purpose || strcmp(b->purpose, ACTION_PURPOSE) != 0)
        return err_set(FERRY_E_INVALID, "action: not a ferry action (purpose '%.40s')",
                       b->purpose ? b->purpose : "");
    if (b->id.len != ACTION_ID_LEN)
        return err_set(FERRY_E_INVALID, "action: the id must be %d bytes", ACTION_ID_LEN);
    if (!spec_name_ok(b->host) || !spec_name_ok(b->workload))
        return err_set(FERRY_E_INVALID, "action: invalid host or workload name");
    if (!action_verb_ok(b->verb))
        return err_set(FERRY_E_INVALID, "action for %s on %s: invalid verb", b->workload, b->host);
    const char *req = b->request_json ? b->request_json : "";
    if (strlen(req) > ACTION_REQUEST_MAX)
        return err_set(FERRY_E_LIMIT, "action %s for %s on %s: request of %zu bytes, at most %u",
                       b->verb, b->workload, b->host, strlen(req), ACTION_REQUEST_MAX);
    if (!json_object_ok(req))
        return err_set(FERRY_E_INVALID, "action %s for %s on %s: the request is not a JSON object",
                       b->verb, b->workload, b->host);
    if (b->expires_ms <= b->issued_ms || b->expires_ms - b->issued_ms > ACTION_TTL_MAX_MS)
        return err_set(FERRY_E_INVALID,
                       "action %s for %s on %s: lifetime must be more than 0 and at most %u s",
                       b->verb, b->workload, b->host, ACTION_TTL_MAX_MS / 1000);
    if (now_ms >= b->expires_ms)
        return err_set(FERRY_E_INVALID, "action %s for %s on %s: expired", b->verb, b->workload,
                       b->host);
    if (b->issued_ms > now_ms + ACTION_CLOCK_WINDOW_MS)
        return err_set(FERRY_E_INVALID,
                       "action %s for %s on %s: issued in the future (a clock to fix)", b->verb,
                       b->workload, b->host);
    return 0;
}

int action_verify(const Ferry__Wire__SignedAction *sa, const struct trust *trust, uint64_t now_ms,
                  Ferry__Wire__ActionBody **out, char signer[KEY_ID_LEN + 1])
{
    if (!sa || sa->body.len == 0 || sa->signature.len == 0)
        return err_set(FERRY_E_UNTRUSTED, "action refused: it is not signed");
    if (sa->body.len > ACTION_SIGNED_MAX_BYTES)
        return err_set(FERRY_E_LIMIT, "action refused: %zu bytes, at most %u", sa->body.len,
                       ACTION_SIGNED_MAX_BYTES);
    Ferry__Wire__ActionBody *b =
        ferry__wire__action_body__unpack(NULL, sa->body.len, sa->body.data);
    if (!b)
        return err_set(FERRY_E_PROTOCOL, "action refused: malformed body");
    const char *id = sa->key_id ? sa->key_id : "";
    const struct key_public *k = trust_find(trust, id);
    int rc = 0;
    /* The names in errors come from an unverified body: bound them. */
    const char *verb = action_verb_ok(b->verb) ? b->verb : "?";
    const char *wl = spec_name_ok(b->workload) ? b->workload : "?";
    const char *host = spec_name_ok(b->host) ? b->host : "?";
    if (!k)
        rc = err_set(FERRY_E_UNTRUSTED,
                     "action %s for %s on %s refused: signed by key %.16s, which is not trusted",
                     verb, wl, host, id);
    else if (key_verify(k->pk, sa->body.data, sa->body.len, sa->signature.data,
                        sa->signature.len) < 0)
        rc = err_set(FERRY_E_SIGNATURE,
                     "action %s for %s on %s refused: the signature by key %s does not verify",
                     verb, wl, host, k->id);
    else
        rc = body_check(b, now_ms);
    if (rc < 0) {
        ferry__wire__action_body__free_unpacked(b, NULL);
        return rc;
    }
    if (signer)
        memcpy(signer, k->id, KEY_ID_LEN + 1);
    *out = b;
    return 0;
}

void action_body_free(Ferry__Wire__ActionBody *b)
{
    if (b)
        ferry__wire__action_body__free_unpacked(b, NULL);
}

int action_reply_check(const char *host, size_t body_len, const Ferry__Wire__ActionReplyBody *b)
{
    if (body_len > ACTION_REPLY_MAX_BYTES)
        return err_set(FERRY_E_LIMIT, "action reply from %s: %zu bytes, at most %u", host,
                       body_len, ACTION_REPLY_MAX_BYTES);
    if (b->id.len != ACTION_ID_LEN)
        return err_set(FERRY_E_INVALID, "action reply from %s: the id must be %d bytes", host,
                       ACTION_ID_LEN);
    if (b->data.len > ACTION_REPLY_DATA_MAX)
        return err_set(FERRY_E_LIMIT, "action reply from %s: %zu data bytes, at most %u", host,
                       b->data.len, ACTION_REPLY_DATA_MAX);
    if (b->reply_json && strlen(b->reply_json) > ACTION_REPLY_JSON_MAX)
        return err_set(FERRY_E_LIMIT, "action reply from %s: reply of %zu bytes, at most %u",
                       host, strlen(b->reply_json), ACTION_REPLY_JSON_MAX);
    if (b->error && strlen(b->error) > ACTION_ERROR_MAX)
        return err_set(FERRY_E_LIMIT, "action reply from %s: error text over %u bytes", host,
                       ACTION_ERROR_MAX);
    return 0;
}
