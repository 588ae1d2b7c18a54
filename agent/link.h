/* The agent's link to the registry. Two threads of its own, each with its
 * own nng socket: a poller (register, then long-poll the desired state) and
 * a reporter (state snapshots and change events, plus a jittered
 * heartbeat). Neither touches loop state: the desired state is handed to
 * the loop through a uv_async and a one-slot mailbox. Actions (requests to
 * a workload) come with poll answers and their signed replies go out on
 * the reporter's socket. The agent dials out only; it listens on no port. */
#ifndef FERRY_AGENT_LINK_H
#define FERRY_AGENT_LINK_H

#include "actions.h"
#include "key.h"
#include "selector.h"
#include "wire.pb-c.h"

#include <uv.h>

struct link_config {
    const char *url;
    const char *host;
    const struct label_set *labels;
    const struct key_secret *host_key;
    uint32_t poll_wait_ms;      /* long-poll length (the periodic resync), default 20000 */
    uint32_t heartbeat_ms;      /* default 5000, jittered by +-20% */
    const uint8_t *join_token;  /* encoded SignedJoinToken sent with every hello, may be NULL */
    const struct plugin_set *plugins; /* reported in every hello (the first LINK_PLUGINS_MAX); may be NULL */
    size_t join_token_len;
    /* Actions addressed to this host's workloads (agent/actions.c) arrive
     * with poll answers; their replies leave on the report channel. Without
     * a lookup, actions are not served. */
    const struct trust *trust;               /* operator keys that may sign actions */
    const struct trust *trust_logs;          /* keys that may sign logs actions only; may be NULL */
    agent_actions_lookup_fn action_lookup;   /* called on the loop thread */
    void *action_lookup_arg;
    agent_actions_verb_fn action_verb;       /* other verbs (plugins); may be NULL */
    void *action_verb_arg;
    /* Who counts as an operator for plugin verbs (agent/actions.h). */
    const struct trust *operators;           /* --operator, may be NULL */
    const struct trust *admins;              /* --trust-admin, may be NULL */
    const char *policy_cache;                /* the verified policy's cache file */
};

struct link;
struct plugin_set;

/* Plugins, and runtimes per plugin, a hello reports (the registry's bound). */
#define LINK_PLUGINS_MAX 32

/* Called on the loop thread; takes ownership of ds
 * (ferry__wire__desired_state__free_unpacked). */
typedef void (*link_desired_fn)(void *arg, Ferry__Wire__DesiredState *ds);

int link_start(uv_loop_t *loop, const struct link_config *cfg, link_desired_fn on_desired,
               void *arg, struct link **out);
/* The current picture (encoded ReportBody with workloads); sent soon. */
void link_set_snapshot(struct link *l, const uint8_t *body, size_t len);
/* A state change, queued (bounded) until the registry has it. */
void link_add_event(struct link *l, const Ferry__Wire__WorkloadReport *ev);
/* 1 while the last exchange with the registry succeeded. */
int link_online(struct link *l);
/* Stop both threads (interrupting a long poll) and free l. Loop thread. */
void link_stop(struct link *l);

#endif
