/* Rule evaluation (docs/governance.md): may this artifact reach this
 * channel under this policy? A pure function of its inputs, shared by the
 * registry (promote, deploy, policy check) and every agent (its own
 * environment), so both refuse for the same reasons in the same words.
 *
 * Also the extra signatures that governance adds to an artifact's list: an
 * approval (over the manifest digest and a role) and a provenance statement
 * (over the digest and the statement), told apart by Signature.role. */
#ifndef FERRY_LIB_GOVRULES_H
#define FERRY_LIB_GOVRULES_H

#include "hash.h"
#include "key.h"
#include "manifest.pb-c.h"
#include "policy.h"

#include <stddef.h>

#define GOV_MISSING_MAX 16
#define GOV_REASON_MAX 240

enum gov_card { GOV_CARD_UNKNOWN, GOV_CARD_ABSENT, GOV_CARD_TEXT };

struct gov_subject {
    const Ferry__Spec *spec;          /* name, version, kind, model.pii, model.metrics */
    const struct digest *digest;      /* of the manifest bytes */
    const Ferry__SignatureList *sigs; /* the artifact's list */
    enum gov_card card;               /* UNKNOWN: the card is not checked here */
    const char *card_text;
    size_t card_len;
};

struct gov_result {
    int allowed;
    size_t n;
    char missing[GOV_MISSING_MAX][GOV_REASON_MAX];
};

/* The rule of policy p for s's kind on channel applies (none: allowed). */
void gov_evaluate(const struct policy *p, const char *channel, const struct gov_subject *s,
                  struct gov_result *out);
/* "a; b; c". */
void gov_result_join(const struct gov_result *r, char *out, size_t cap);
/* The rule for kind on channel, or NULL. */
const struct policy_rule *gov_rule_for(const struct policy *p, const char *kind,
                                       const char *channel);

/* A new Signature (free with ferry__signature__free_unpacked) of role
 * ("approver" or "privacy") over d, by k. */
int gov_sign_approval(const struct key_secret *k, const struct digest *d, const char *role,
                      Ferry__Signature **out);
/* A provenance statement ("builder=ID,commit=SHA,repo=URL") over d, by k. */
int gov_sign_provenance(const struct key_secret *k, const struct digest *d,
                        const char *statement, Ferry__Signature **out);
/* 0 when s (an approval or provenance) is valid for d: its public key is
 * its key id's, and the signature covers d, the role (and the statement). */
int gov_verify_extra(const Ferry__Signature *s, const struct digest *d);
/* The value of field in a statement "k=v,k=v" (copied into out), or -1. */
int gov_statement_get(const char *statement, const char *field, char *out, size_t cap);
/* Checks a --provenance value: k=v pairs, builder present. */
int gov_statement_check(const char *statement);

#endif
