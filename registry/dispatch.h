/* The registry's one dispatch table: each request body case, the area that
 * serves it and its handler. Handlers share one signature; the table is
 * checked against the protobuf descriptor of Request when the registry
 * starts, so a request type without a handler (or with two) stops the
 * start instead of surfacing as "no known body" at run time. */
#ifndef FERRY_REGISTRY_DISPATCH_H
#define FERRY_REGISTRY_DISPATCH_H

#include "wire.pb-c.h"

#include <stddef.h>

struct registry;
struct request_scratch;

/* 0, PARK (a poll that should wait; registry_int.h) or a negative code with
 * err_set detail. What resp points to lives in rs until it is packed. */
typedef int (*request_handler)(struct registry *r, const Ferry__Wire__Request *req,
                               Ferry__Wire__Response *resp, struct request_scratch *rs);

struct dispatch_entry {
    Ferry__Wire__Request__BodyCase body_case;
    const char *area; /* "publish", "fleet", "queries", "actions" */
    const char *name; /* the oneof field's name in wire.proto */
    request_handler handler;
};

/* publish.c */
int on_offer(struct registry *, const Ferry__Wire__Request *, Ferry__Wire__Response *,
             struct request_scratch *);
int on_put_chunk(struct registry *, const Ferry__Wire__Request *, Ferry__Wire__Response *,
                 struct request_scratch *);
int on_commit(struct registry *, const Ferry__Wire__Request *, Ferry__Wire__Response *,
              struct request_scratch *);
/* fleet_handlers.c */
int on_deploy(struct registry *, const Ferry__Wire__Request *, Ferry__Wire__Response *,
              struct request_scratch *);
int on_register(struct registry *, const Ferry__Wire__Request *, Ferry__Wire__Response *,
                struct request_scratch *);
int on_report(struct registry *, const Ferry__Wire__Request *, Ferry__Wire__Response *,
              struct request_scratch *);
int on_poll(struct registry *, const Ferry__Wire__Request *, Ferry__Wire__Response *,
            struct request_scratch *);
int on_accept_host(struct registry *, const Ferry__Wire__Request *, Ferry__Wire__Response *,
                   struct request_scratch *);
int on_remove_host(struct registry *, const Ferry__Wire__Request *, Ferry__Wire__Response *,
                   struct request_scratch *);
/* query_handlers.c */
int on_ping(struct registry *, const Ferry__Wire__Request *, Ferry__Wire__Response *,
            struct request_scratch *);
int on_get_manifest(struct registry *, const Ferry__Wire__Request *, Ferry__Wire__Response *,
                    struct request_scratch *);
int on_get_chunk(struct registry *, const Ferry__Wire__Request *, Ferry__Wire__Response *,
                 struct request_scratch *);
int on_list_versions(struct registry *, const Ferry__Wire__Request *, Ferry__Wire__Response *,
                     struct request_scratch *);
int on_stats(struct registry *, const Ferry__Wire__Request *, Ferry__Wire__Response *,
             struct request_scratch *);
int on_list_hosts(struct registry *, const Ferry__Wire__Request *, Ferry__Wire__Response *,
                  struct request_scratch *);
int on_list_events(struct registry *, const Ferry__Wire__Request *, Ferry__Wire__Response *,
                   struct request_scratch *);
int on_list_deployments(struct registry *, const Ferry__Wire__Request *,
                        Ferry__Wire__Response *, struct request_scratch *);
int on_list_history(struct registry *, const Ferry__Wire__Request *, Ferry__Wire__Response *,
                    struct request_scratch *);
int on_list_metrics(struct registry *, const Ferry__Wire__Request *, Ferry__Wire__Response *,
                    struct request_scratch *);
/* query_handlers.c: the audit log */
int on_list_audit(struct registry *, const Ferry__Wire__Request *, Ferry__Wire__Response *,
                  struct request_scratch *);
/* gov.c: governance (approve, promote, revoke; policy, channels, check) */
int on_gov(struct registry *, const Ferry__Wire__Request *, Ferry__Wire__Response *,
           struct request_scratch *);
int on_gov_query(struct registry *, const Ferry__Wire__Request *, Ferry__Wire__Response *,
                 struct request_scratch *);
/* action_handlers.c */
int on_action_submit(struct registry *, const Ferry__Wire__Request *, Ferry__Wire__Response *,
                     struct request_scratch *);
int on_action_await(struct registry *, const Ferry__Wire__Request *, Ferry__Wire__Response *,
                    struct request_scratch *);
int on_action_reply(struct registry *, const Ferry__Wire__Request *, Ferry__Wire__Response *,
                    struct request_scratch *);

/* The table the registry serves with. */
extern const struct dispatch_entry dispatch_table[];
extern const size_t dispatch_table_len;

/* FERRY_E_INVALID, the detail naming the first fault, unless every body
 * case of Request's oneof (from its protobuf descriptor) has exactly one
 * row, every row has a handler, and no row names a case the descriptor
 * lacks. */
int dispatch_check_table(const struct dispatch_entry *table, size_t n);
/* dispatch_check_table on dispatch_table; run by registry_start. */
int dispatch_check(void);
/* The row serving body_case, or NULL. */
const struct dispatch_entry *dispatch_find(Ferry__Wire__Request__BodyCase body_case);
/* Serves req through its row; FERRY_E_PROTOCOL for a body no row serves. */
int dispatch(struct registry *r, const Ferry__Wire__Request *req, Ferry__Wire__Response *resp,
             struct request_scratch *rs);

/* runs.c: notebook runs */
int on_run_report(struct registry *, const Ferry__Wire__Request *, Ferry__Wire__Response *,
                  struct request_scratch *);
int on_list_runs(struct registry *, const Ferry__Wire__Request *, Ferry__Wire__Response *,
                 struct request_scratch *);

#endif
