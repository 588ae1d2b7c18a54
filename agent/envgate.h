/* The agent's gate for desired state: every DesiredState must come in an
 * envelope signed by the registry's key (--trust-registry, else the key
 * pinned in STATE/registry.pub on first sight), not older than the newest
 * applied, not expired, and naming exactly the records it carries. When
 * the newest envelope held expires, the host freezes: it keeps running
 * what it has and reports and logs "desired state expired" until a fresh
 * envelope arrives (docs/security.md, "Desired-state envelopes"). */
#ifndef FERRY_AGENT_ENVGATE_H
#define FERRY_AGENT_ENVGATE_H

#include "envelope.h"
#include "key.h"
#include "localdb.h"
#include "wire.pb-c.h"

struct envgate {
    struct key_public registry; /* valid when have_key */
    int have_key;
    int flag_key;               /* from --trust-registry: never pinned */
    char pin_path[4200];
    struct envelope_held held;  /* persisted in the agent's database */
    int frozen;
    char last_refusal[600];     /* logged once, not at every poll */
};

/* flag_key: --trust-registry's key, or NULL to pin. Loads what the state
 * directory holds (a pinned key, the newest envelope applied). */
int envgate_open(struct envgate *g, struct localdb *db, const char *state_dir,
                 const struct key_public *flag_key);
/* 0 when ds may be applied (the held envelope moves on), else a negative
 * code, logged once per distinct reason. */
int envgate_check(struct envgate *g, struct localdb *db, const char *host,
                  const Ferry__Wire__DesiredState *ds, uint64_t now_ms);
/* Freezes (logged once) when the held envelope has expired by now_ms; 1
 * while frozen. */
int envgate_tick(struct envgate *g, uint64_t now_ms);

#endif
