/* Action requests: an operator's request to one running workload, its
 * await, and the host's reply (the queue itself is actions.c). */
#include "registry_int.h"
#include "dispatch.h"

int on_action_submit(struct registry *r, const Ferry__Wire__Request *req,
                     Ferry__Wire__Response *resp, struct request_scratch *rs)
{
    const Ferry__Wire__ActionSubmit *as = req->action_submit;
    struct trust ops = {NULL, 0};
    int rc = gov_operator_gate(r, as->action ? as->action->key_id : NULL, "action");
    if (rc == 0)
        rc = gov_operators_now(r, &ops);
    if (rc == 0)
        rc = actions_submit(r->actions, &r->db, &ops, as, resp, &rs->action);
    trust_fini(&ops);
    return rc;
}

int on_action_await(struct registry *r, const Ferry__Wire__Request *req,
                    Ferry__Wire__Response *resp, struct request_scratch *rs)
{
    return actions_await(r->actions, req->action_await, resp, &rs->action);
}

int on_action_reply(struct registry *r, const Ferry__Wire__Request *req,
                    Ferry__Wire__Response *resp, struct request_scratch *rs)
{
    (void)resp;
    (void)rs;
    return actions_reply(r->actions, &r->db, req->action_reply);
}
