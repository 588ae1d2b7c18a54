/* Action requests: an operator's request to one running workload, its
 * await, and the host's reply (the queue itself is actions.c). */
#include "registry_int.h"
#include "dispatch.h"

int on_action_submit(struct registry *r, const Ferry__Wire__Request *req,
                     Ferry__Wire__Response *resp, struct request_scratch *rs)
{
    return actions_submit(r->actions, &r->db, gov_operators(r), req->action_submit, resp, &rs->action);
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
