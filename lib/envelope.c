/* Desired-state envelopes: signing and the agent's check (envelope.h). */
#include "envelope.h"
#include "error.h"
#include "record.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void record_digest(const Ferry__SignedRecord *sr, struct digest *out)
{
    size_t len = ferry__signed_record__get_packed_size(sr);
    uint8_t stack[1024];
    uint8_t *buf = len <= sizeof stack ? stack : malloc(len);
    if (!buf) {
        memset(out, 0, sizeof *out); /* matches no real record: refused, never accepted */
        return;
    }
    ferry__signed_record__pack(sr, buf);
    digest_of(buf, len, out);
    if (buf != stack)
        free(buf);
}

/* 0 without pins (nothing to cover), else 1 with *out over each encoded pin. */
static int pins_digest(Ferry__Wire__ChannelPin *const *pins, size_t n, struct digest *out)
{
    if (n == 0)
        return 0;
    struct hasher h;
    hasher_init(&h);
    for (size_t i = 0; i < n; i++) {
        size_t len = ferry__wire__channel_pin__get_packed_size(pins[i]);
        uint8_t stack[512], *buf = len <= sizeof stack ? stack : malloc(len);
        if (!buf) {
            memset(out, 0, sizeof *out);
            return 1;
        }
        ferry__wire__channel_pin__pack(pins[i], buf);
        uint8_t lb[8];
        for (int k = 0; k < 8; k++)
            lb[k] = (uint8_t)((uint64_t)len >> (56 - 8 * k));
        hasher_update(&h, lb, sizeof lb); /* length-prefixed: pins cannot run together */
        hasher_update(&h, buf, len);
        if (buf != stack)
            free(buf);
    }
    hasher_final(&h, out);
    return 1;
}

void envelope_content_digest(Ferry__SignedRecord *const *recs, size_t n,
                             Ferry__Wire__ChannelPin *const *pins, size_t n_pins,
                             struct digest *out)
{
    struct hasher h;
    hasher_init(&h);
    hasher_update(&h, ENVELOPE_PURPOSE, sizeof ENVELOPE_PURPOSE);
    for (size_t i = 0; i < n; i++) {
        struct digest d;
        record_digest(recs[i], &d);
        hasher_update(&h, d.b, DIGEST_LEN);
    }
    struct digest pd;
    if (pins_digest(pins, n_pins, &pd))
        hasher_update(&h, pd.b, DIGEST_LEN);
    hasher_final(&h, out);
}

int envelope_sign(const char *host, uint64_t version, uint64_t issued_ms, uint64_t expires_ms,
                  Ferry__SignedRecord *const *recs, Ferry__DeployRecord *const *decoded, size_t n,
                  Ferry__Wire__ChannelPin *const *pins, size_t n_pins,
                  const struct key_secret *k, Ferry__Wire__SignedEnvelope **out)
{
    Ferry__Wire__EnvelopeBody b;
    ferry__wire__envelope_body__init(&b);
    b.purpose = (char *)ENVELOPE_PURPOSE;
    b.host = (char *)host;
    b.version = version;
    b.issued_ms = issued_ms;
    b.expires_ms = expires_ms;
    Ferry__Wire__EnvelopeEntry *ents = calloc(n ? n : 1, sizeof *ents);
    Ferry__Wire__EnvelopeEntry **ptrs = calloc(n ? n : 1, sizeof *ptrs);
    struct digest *dg = calloc(n ? n : 1, sizeof *dg);
    Ferry__Wire__SignedEnvelope *se = calloc(1, sizeof *se);
    int rc = ents && ptrs && dg && se ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        ferry__wire__envelope_entry__init(&ents[i]);
        ents[i].name = decoded[i]->name;
        ents[i].version = decoded[i]->version;
        ents[i].manifest_digest = decoded[i]->manifest_digest;
        record_digest(recs[i], &dg[i]);
        ents[i].record_digest.data = dg[i].b;
        ents[i].record_digest.len = DIGEST_LEN;
        ptrs[i] = &ents[i];
    }
    b.entries = ptrs;
    b.n_entries = n;
    struct digest pd;
    if (pins_digest(pins, n_pins, &pd)) {
        b.pins_digest.data = pd.b;
        b.pins_digest.len = DIGEST_LEN;
    }
    if (rc == 0) {
        ferry__wire__signed_envelope__init(se);
        size_t len = ferry__wire__envelope_body__get_packed_size(&b);
        se->body.data = malloc(len ? len : 1);
        se->signature.data = malloc(crypto_sign_BYTES);
        se->key_id = malloc(KEY_ID_LEN + 1);
        se->registry_key.data = malloc(crypto_sign_PUBLICKEYBYTES);
        if (!se->body.data || !se->signature.data || !se->key_id || !se->registry_key.data)
            rc = -ENOMEM;
        if (rc == 0) {
            se->body.len = ferry__wire__envelope_body__pack(&b, se->body.data);
            key_sign(k, se->body.data, se->body.len, se->signature.data);
            se->signature.len = crypto_sign_BYTES;
            memcpy(se->key_id, k->pub.id, KEY_ID_LEN + 1);
            memcpy(se->registry_key.data, k->pub.pk, crypto_sign_PUBLICKEYBYTES);
            se->registry_key.len = crypto_sign_PUBLICKEYBYTES;
        }
    }
    free(ents);
    free(ptrs);
    free(dg);
    if (rc < 0) {
        envelope_free(se);
        return rc;
    }
    *out = se;
    return 0;
}

void envelope_free(Ferry__Wire__SignedEnvelope *e)
{
    if (!e)
        return;
    free(e->body.data);
    free(e->signature.data);
    free(e->key_id);
    free(e->registry_key.data);
    free(e);
}

static int refuse(struct envelope_verdict *out, enum envelope_refusal why, int code,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int refuse(struct envelope_verdict *out, enum envelope_refusal why, int code,
                  const char *fmt, ...)
{
    char line[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    out->refusal = why;
    return err_set(code, "%s", line);
}

static void utc(uint64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int bytes_equal(const ProtobufCBinaryData *a, const ProtobufCBinaryData *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* recs must be exactly the records body names, in its order, and pins
 * the pins it covers. */
static int check_entries(const Ferry__Wire__EnvelopeBody *b, Ferry__SignedRecord *const *recs,
                         size_t n, Ferry__Wire__ChannelPin *const *pins, size_t n_pins,
                         struct envelope_verdict *out)
{
    struct digest pd;
    int have = pins_digest(pins, n_pins, &pd);
    if (have ? b->pins_digest.len != DIGEST_LEN || memcmp(b->pins_digest.data, pd.b, DIGEST_LEN)
             : b->pins_digest.len != 0)
        return refuse(out, ENVELOPE_MISMATCH, FERRY_E_DIGEST,
                      "desired state version %llu: the channel pins are not the ones it names "
                      "(mix-and-match)",
                      (unsigned long long)b->version);
    if (b->n_entries != n)
        return refuse(out, ENVELOPE_MISMATCH, FERRY_E_INVALID,
                      "desired state version %llu names %zu records, %zu came with it",
                      (unsigned long long)b->version, b->n_entries, n);
    for (size_t i = 0; i < n; i++) {
        const Ferry__Wire__EnvelopeEntry *e = b->entries[i];
        struct digest d;
        record_digest(recs[i], &d);
        Ferry__DeployRecord *rec = NULL;
        int same = e->record_digest.len == DIGEST_LEN &&
                   memcmp(e->record_digest.data, d.b, DIGEST_LEN) == 0 &&
                   record_decode(recs[i]->record.data, recs[i]->record.len, &rec) == 0 &&
                   strcmp(rec->name, e->name) == 0 && strcmp(rec->version, e->version) == 0 &&
                   bytes_equal(&rec->manifest_digest, &e->manifest_digest);
        record_free(rec);
        if (!same)
            return refuse(out, ENVELOPE_MISMATCH, FERRY_E_DIGEST,
                          "desired state version %llu: the record for %s%s%s is not the one it "
                          "names (mix-and-match)",
                          (unsigned long long)b->version, e->name, e->version[0] ? "@" : "",
                          e->version);
    }
    return 0;
}

int envelope_verify(const Ferry__Wire__SignedEnvelope *se, const struct key_public *registry,
                    const char *host, Ferry__SignedRecord *const *recs, size_t n,
                    Ferry__Wire__ChannelPin *const *pins, size_t n_pins,
                    const struct envelope_held *held, uint64_t now_ms,
                    struct envelope_verdict *out)
{
    memset(out, 0, sizeof *out);
    if (!se || se->body.len == 0)
        return refuse(out, ENVELOPE_MALFORMED, FERRY_E_INVALID,
                      "desired state refused: it is not in a signed envelope");
    if (!se->key_id || strcmp(se->key_id, registry->id) != 0)
        return refuse(out, ENVELOPE_UNTRUSTED, FERRY_E_UNTRUSTED,
                      "desired state refused: signed by registry key %s, not the trusted %s",
                      se->key_id && se->key_id[0] ? se->key_id : "(none)", registry->id);
    if (key_verify(registry->pk, se->body.data, se->body.len, se->signature.data,
                   se->signature.len) < 0)
        return refuse(out, ENVELOPE_BAD_SIGNATURE, FERRY_E_SIGNATURE,
                      "desired state refused: the envelope's signature by registry key %s is "
                      "not valid",
                      registry->id);
    Ferry__Wire__EnvelopeBody *b =
        ferry__wire__envelope_body__unpack(NULL, se->body.len, se->body.data);
    int rc = 0;
    if (!b || !b->purpose || strcmp(b->purpose, ENVELOPE_PURPOSE) != 0)
        rc = refuse(out, ENVELOPE_MALFORMED, FERRY_E_INVALID,
                    "desired state refused: the envelope is not a desired-state envelope");
    else if (strcmp(b->host, host) != 0)
        rc = refuse(out, ENVELOPE_MALFORMED, FERRY_E_INVALID,
                    "desired state version %llu refused: it is for host '%s', not this one",
                    (unsigned long long)b->version, b->host);
    if (rc < 0)
        goto out;
    out->version = b->version;
    out->issued_ms = b->issued_ms;
    out->expires_ms = b->expires_ms;
    digest_of(se->body.data, se->body.len, &out->body);
    /* Rollback first: an older envelope is a replay whatever its expiry. */
    if (held && b->version < held->version) {
        rc = refuse(out, ENVELOPE_ROLLBACK, FERRY_E_INVALID,
                    "desired state version %llu refused: older than version %llu, already "
                    "applied (a replay or rollback)",
                    (unsigned long long)b->version, (unsigned long long)held->version);
    } else if (held && b->version == held->version && !digest_equal(&out->body, &held->body)) {
        rc = refuse(out, ENVELOPE_ROLLBACK, FERRY_E_INVALID,
                    "desired state version %llu refused: version %llu was applied with other "
                    "content",
                    (unsigned long long)b->version, (unsigned long long)held->version);
    } else if (now_ms >= b->expires_ms) {
        char when[32];
        utc(b->expires_ms, when);
        rc = refuse(out, ENVELOPE_EXPIRED_NOW, FERRY_E_INVALID,
                    ENVELOPE_EXPIRED ": version %llu expired at %s",
                    (unsigned long long)b->version, when);
    } else {
        rc = check_entries(b, recs, n, pins, n_pins, out);
    }
out:
    if (b)
        ferry__wire__envelope_body__free_unpacked(b, NULL);
    return rc;
}
