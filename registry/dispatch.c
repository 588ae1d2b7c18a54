/* The dispatch table (dispatch.h) and its start-up check. */
#include "dispatch.h"
#include "error.h"

#include <string.h>

#define ROW(CASE, area, name) {FERRY__WIRE__REQUEST__BODY_##CASE, area, #name, on_##name}

/* Ordered as the oneof in wire.proto. A new request type adds one row
 * here; the check at start refuses a build that forgot it. */
const struct dispatch_entry dispatch_table[] = {
    ROW(PING, "queries", ping),
    ROW(OFFER, "publish", offer),
    ROW(PUT_CHUNK, "publish", put_chunk),
    ROW(COMMIT, "publish", commit),
    ROW(GET_MANIFEST, "queries", get_manifest),
    ROW(GET_CHUNK, "queries", get_chunk),
    ROW(LIST_VERSIONS, "queries", list_versions),
    ROW(STATS, "queries", stats),
    ROW(DEPLOY, "fleet", deploy),
    ROW(REGISTER, "fleet", register),
    ROW(POLL, "fleet", poll),
    ROW(REPORT, "fleet", report),
    ROW(LIST_HOSTS, "queries", list_hosts),
    ROW(LIST_EVENTS, "queries", list_events),
    ROW(ACCEPT_HOST, "fleet", accept_host),
    ROW(REMOVE_HOST, "fleet", remove_host),
    ROW(LIST_DEPLOYMENTS, "queries", list_deployments),
    ROW(LIST_HISTORY, "queries", list_history),
    ROW(LIST_METRICS, "queries", list_metrics),
    ROW(LIST_AUDIT, "queries", list_audit),
    ROW(GOV, "fleet", gov),
    ROW(GOV_QUERY, "queries", gov_query),
    ROW(ACTION_SUBMIT, "actions", action_submit),
    ROW(ACTION_AWAIT, "actions", action_await),
    ROW(ACTION_REPLY, "actions", action_reply),
    ROW(RUN_REPORT, "fleet", run_report),
    ROW(LIST_RUNS, "queries", list_runs),
};
const size_t dispatch_table_len = sizeof dispatch_table / sizeof dispatch_table[0];

/* The descriptor's field for a oneof case (its field number), or NULL. */
static const ProtobufCFieldDescriptor *oneof_field(unsigned id)
{
    const ProtobufCMessageDescriptor *d = &ferry__wire__request__descriptor;
    for (unsigned i = 0; i < d->n_fields; i++)
        if (d->fields[i].id == id && (d->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
            return &d->fields[i];
    return NULL;
}

int dispatch_check_table(const struct dispatch_entry *table, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct dispatch_entry *e = &table[i];
        if (!oneof_field((unsigned)e->body_case))
            return err_set(FERRY_E_INVALID, "dispatch table: row '%s' names body case %d, "
                           "which Request does not have", e->name ? e->name : "?",
                           (int)e->body_case);
        if (!e->handler || !e->area || !e->name)
            return err_set(FERRY_E_INVALID, "dispatch table: row '%s' lacks a handler, area or "
                           "name", e->name ? e->name : "?");
    }
    const ProtobufCMessageDescriptor *d = &ferry__wire__request__descriptor;
    for (unsigned f = 0; f < d->n_fields; f++) {
        if (!(d->fields[f].flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
            continue;
        size_t rows = 0;
        for (size_t i = 0; i < n; i++)
            rows += (unsigned)table[i].body_case == d->fields[f].id;
        if (rows != 1)
            return err_set(FERRY_E_INVALID, "dispatch table: request '%s' (case %u) has %zu "
                           "handlers; it needs exactly one", d->fields[f].name,
                           d->fields[f].id, rows);
    }
    return 0;
}

int dispatch_check(void) { return dispatch_check_table(dispatch_table, dispatch_table_len); }

const struct dispatch_entry *dispatch_find(Ferry__Wire__Request__BodyCase body_case)
{
    for (size_t i = 0; i < dispatch_table_len; i++)
        if (dispatch_table[i].body_case == body_case)
            return &dispatch_table[i];
    return NULL;
}

int dispatch(struct registry *r, const Ferry__Wire__Request *req, Ferry__Wire__Response *resp,
             struct request_scratch *rs)
{
    const struct dispatch_entry *e =
        req->body_case == FERRY__WIRE__REQUEST__BODY__NOT_SET ? NULL : dispatch_find(req->body_case);
    if (!e)
        return err_set(FERRY_E_PROTOCOL, "request has no known body");
    return e->handler(r, req, resp, rs);
}
