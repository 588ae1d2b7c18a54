/* ferry-agent's engine: one libuv loop that owns everything in the process.
 * It reconciles the desired state (signed deploy records from the registry,
 * persisted locally) with what runs, through plugins, and reports back.
 * main.c parses arguments and calls agent_run. */
#ifndef FERRY_AGENT_AGENT_H
#define FERRY_AGENT_AGENT_H

#include "key.h"
#include "selector.h"

struct agent_config {
    const char *registry_url;
    const char *state_dir;
    const char *name;
    const char *plugins_dir;
    struct label_set labels;
    const struct trust *trust;   /* verifies artifacts and deploy records */
    const struct trust *admins;  /* --trust-admin: verifies the policy; NULL: no policy check */
    /* --operator: without a policy, the keys that may act on what another
     * key started through a plugin (a kernel); NULL: none. */
    const struct trust *operators;
    const struct trust *trust_logs; /* --trust-logs: keys that may sign logs actions and nothing else */
    uint32_t poll_wait_ms;       /* 0: default */
    uint32_t heartbeat_ms;       /* 0: default */
    uint64_t log_cap_bytes;      /* per stream; 0: default 1 MiB */
    const char *advertise;       /* address workloads are reached at; NULL: 127.0.0.1 */
    uint32_t metrics_interval_ms; /* --metrics-interval; 0: default 10 s (agent/metrics.h) */
    const uint8_t *join_token;   /* encoded SignedJoinToken (--join-token), may be NULL */
    size_t join_token_len;
    const struct key_public *trust_registry; /* --trust-registry; NULL: pin the first key seen */
};

/* Runs until SIGTERM or SIGINT, which leave the workloads running. */
int agent_run(const struct agent_config *cfg);

#endif
