/* The registry's side of governance (docs/governance.md): the signed
 * policy it was started with, roles checked on every signed request,
 * approvals, channels (promote), revocations, and the questions `ferry
 * policy show|check` and `ferry channels` ask. Without --policy every
 * trusted key may do everything, as before. Internal to registry/. */
#ifndef FERRY_REGISTRY_GOV_H
#define FERRY_REGISTRY_GOV_H

#include "db.h"
#include "govrules.h"
#include "manifest.pb-c.h"
#include "policy.h"
#include "wire.pb-c.h"

struct registry;
struct regpolicy;

/* Load path, check path.sig: signed by a key the policy names as admin,
 * and (when anchors holds keys: --trust-admin) one of anchors. Refused with the
 * reason otherwise; r->trust becomes the policy's keys. */
int gov_start(struct registry *r, const char *path, const struct trust *anchors);
/* gov_start's checks alone, so a policy that will be refused is refused
 * before anything is created in the data directory. */
int gov_check(const char *path, const struct trust *anchors);
void gov_free(struct regpolicy *g);

/* The keys that may enroll, accept and remove hosts and send actions: a
 * copy, taken now, of the policy's operators that are not revoked (a
 * revocation counts from the moment it is stored, not from the next
 * start), or of every trusted key without a policy. trust_fini it. */
int gov_operators_now(struct registry *r, struct trust *out);
/* With a policy, 0 when signer is not one of its keys (the caller's trust
 * check refuses it as untrusted) or holds the operator role and is not
 * revoked; else the refusal naming why ("WHAT refused: key ID (NAME) is
 * revoked"). 0 without a policy. */
int gov_operator_gate(struct registry *r, const char *signer, const char *what);
/* 0 without a policy; else policy_allows under the lock. */
int gov_allows(struct registry *r, const char *key_id, unsigned role, const char *kind,
               const char *what);
/* A verified deploy record, before it is stored: a channel record names a
 * channel the policy has and the version it points at; a plain deploy
 * passes the rules of every environment its selector may reach. */
int gov_check_deploy(struct registry *r, const Ferry__DeployRecord *rec);

/* What one governance reply points into. */
struct gov_scratch {
    Ferry__Wire__GovReply reply;
    Ferry__Wire__PolicyKeyFile *files, **file_ptrs;
    Ferry__Wire__SignedGov **revoked;
    size_t n_revoked;
    Ferry__Wire__ChannelPin *pins, **pin_ptrs;
    struct db_channel *chans;
    char **missing;
    size_t n_missing;
    char summary[1200];
    uint8_t *digests; /* DIGEST_LEN per pin */
};
void gov_scratch_free(struct gov_scratch *s);

int gov_handle(struct registry *r, const Ferry__Wire__Gov *g, Ferry__Wire__Response *resp,
               struct gov_scratch *s);
int gov_query(struct registry *r, const Ferry__Wire__GovQuery *q, Ferry__Wire__Response *resp,
              struct gov_scratch *s);

/* The canonical message a SignedGov's signature covers is its body. */
#define GOV_PURPOSE "ferry-gov-v1"

#endif
