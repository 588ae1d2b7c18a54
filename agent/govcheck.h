/* What an agent started with --trust-admin verifies itself before it runs
 * anything (docs/governance.md, "What the agent verifies"): the policy the
 * registry serves, signed by one of its own admin keys, with the signed
 * revocations applied; then, for the environment this host's labels put it
 * in, the rules of that environment's channel against the artifact's own
 * manifest and signature list. A registry that sends an unapproved model
 * to a prod host gets it refused here, with what is missing named.
 *
 * Blocking; safe on a pool thread (touches no agent state). */
#ifndef FERRY_AGENT_GOVCHECK_H
#define FERRY_AGENT_GOVCHECK_H

#include "client.h"
#include "key.h"
#include "policy.h"

#include <stddef.h>
#include <stdint.h>

/* The policy, fetched with c (NULL: not reachable) and verified against
 * admins; the verified reply is kept in cache_path and used from there
 * when the registry cannot be asked. *out is malloc'd. Errors start with
 * "policy not verified: ". */
int govcheck_policy(struct client *c, const struct trust *admins, const char *cache_path,
                    struct policy **out);

/* 0 when the artifact may run on a host with these labels under p: its
 * publisher signature is by a key the policy lets publish its kind and has
 * not revoked, and its environment's channel has no rule for its kind, or
 * every rule is met (a host in no environment: the publisher check only).
 * dir NULL: before the tree exists (the card is checked once it does).
 * Else FERRY_E_UNTRUSTED: "NAME@VERSION refused by the policy of
 * environment E (channel C): what is missing". */
int govcheck_artifact(const struct policy *p, const char *labels, const uint8_t *mbytes,
                      size_t mlen, const uint8_t *sigs, size_t slen, const char *dir);

#endif
