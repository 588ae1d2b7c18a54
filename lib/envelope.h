/* Desired-state envelopes: the registry signs, with its own key, the set of
 * signed deploy records one host should hold, with a version that only
 * grows and an expiry, naming every record (and its manifest) by digest.
 * The agent verifies it before it looks at a record (docs/security.md,
 * "Desired-state envelopes"). Pure: no clock, no files; the caller gives
 * the time and what it last applied. */
#ifndef FERRY_LIB_ENVELOPE_H
#define FERRY_LIB_ENVELOPE_H

#include "hash.h"
#include "key.h"
#include "manifest.pb-c.h"
#include "wire.pb-c.h"

#include <stddef.h>
#include <stdint.h>

#define ENVELOPE_PURPOSE "ferry-desired-v1"
/* The words an expired envelope is refused (and a frozen host reported) with. */
#define ENVELOPE_EXPIRED "desired state expired"

/* What a host's records (and the channel pins sent with them) are compared
 * by to decide whether the set changed. */
void envelope_content_digest(Ferry__SignedRecord *const *recs, size_t n,
                             Ferry__Wire__ChannelPin *const *pins, size_t n_pins,
                             struct digest *out);

/* The signed envelope for host over recs (decoded, parallel, in recs'
 * order) and the channel pins sent with them. *out is freed with
 * envelope_free. */
int envelope_sign(const char *host, uint64_t version, uint64_t issued_ms, uint64_t expires_ms,
                  Ferry__SignedRecord *const *recs, Ferry__DeployRecord *const *decoded, size_t n,
                  Ferry__Wire__ChannelPin *const *pins, size_t n_pins,
                  const struct key_secret *k, Ferry__Wire__SignedEnvelope **out);
void envelope_free(Ferry__Wire__SignedEnvelope *e);

/* What a host holds: the newest envelope it applied (version 0: none). */
struct envelope_held {
    uint64_t version;
    uint64_t expires_ms;
    struct digest body;   /* digest of its encoded body */
};

enum envelope_refusal {
    ENVELOPE_OK = 0,
    ENVELOPE_MALFORMED,   /* missing, undecodable, wrong purpose or host */
    ENVELOPE_UNTRUSTED,   /* signed by another key than the registry's */
    ENVELOPE_BAD_SIGNATURE,
    ENVELOPE_EXPIRED_NOW, /* now is at or past its expiry */
    ENVELOPE_ROLLBACK,    /* older than the one held, or the same version with other content */
    ENVELOPE_MISMATCH,    /* the records or pins are not the ones it names (mix-and-match) */
};

struct envelope_verdict {
    enum envelope_refusal refusal;
    uint64_t version, issued_ms, expires_ms;
    struct digest body;
};

/* Verify se (may be NULL) for host against the registry's public key,
 * what is held, and now_ms, and that recs are exactly the records it
 * names, in its order, each naming the name, version and manifest digest
 * the envelope gives, and pins exactly the pins it covers. 0, or a negative code with err_set detail (one line
 * naming the version and the reason) and out->refusal saying which check
 * failed. */
int envelope_verify(const Ferry__Wire__SignedEnvelope *se, const struct key_public *registry,
                    const char *host, Ferry__SignedRecord *const *recs, size_t n,
                    Ferry__Wire__ChannelPin *const *pins, size_t n_pins,
                    const struct envelope_held *held, uint64_t now_ms,
                    struct envelope_verdict *out);

#endif
