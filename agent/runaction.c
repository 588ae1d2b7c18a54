/* Plugin verbs: an action addressed to a running workload that the agent
 * does not answer itself (agent/actions.c serves `logs`) goes to the run's
 * plugin through ABI 2's action(), off the loop (agent/plugincall.c), and
 * its answer back to the registry as the action's reply. The run is pinned
 * (work_pending) until the plugin returns, as it is for a probe. */
#include "agent_int.h"
#include "alog.h"
#include "error.h"
#include "metrics.h"
#include "plugincall.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pending_action {
    struct run *r;
    struct agent_actions *aa;
    uint8_t id[ACTION_ID_LEN];
    char verb[64];
};

static void on_plugin_answer(void *arg, int rc, char *reply_json, size_t reply_len, const char *detail)
{
    struct pending_action *p = arg;
    struct run *r = p->r;
    /* A link gone meanwhile (the agent is stopping) took the actions module
     * with it: there is no one left to answer. */
    if (r->a->link) {
        if (rc < 0)
            rc = err_set(rc == -ENOTSUP ? FERRY_E_NOTFOUND : rc, "action %s for %s: %s", p->verb,
                         r->name, detail && detail[0] ? detail : err_message(rc));
        /* The plugin's JSON rides as the reply's data (up to FERRY_REPLY_MAX);
         * reply_json says whose answer it is. */
        json_t *h = json_pack("{s:s, s:s, s:s}", "verb", p->verb, "version", r->version, "plugin",
                              r->plugin->name);
        char *head = h ? json_dumps(h, JSON_COMPACT) : NULL;
        json_decref(h);
        if (rc == 0 && !head)
            rc = -ENOMEM;
        agent_actions_answer(p->aa, p->id, rc, rc == 0 ? head : NULL, (const uint8_t *)reply_json,
                             rc == 0 ? reply_len : 0);
        free(head);
    }
    free(reply_json);
    /* The host keeps what the plugin left in plugin_state after action(). */
    if (!r->closing)
        persist_run(r);
    /* An action may change what the plugin reports (a kernel started or
     * stopped): measure now, so the next report shows it. */
    if (!r->closing && r->a->metrics)
        metrics_kick(r->a->metrics);
    r->work_pending--;
    free(p);
    run_release(r);
}

/* A service answers while it runs. A job's workload stays deployed between
 * its runs (scheduled, succeeded, failed), so its plugin is asked then too:
 * `ferry run` starts a notebook run now (plugins/notebook/runs.c). */
static int answers_actions(const struct run *r)
{
    if (!r->plugin)
        return 0;
    if (r->lc.state == RUN_RUNNING)
        return 1;
    return r->lc.job.job && r->wl.dir &&
           (r->lc.state == RUN_SCHEDULED || r->lc.state == RUN_SUCCEEDED ||
            r->lc.state == RUN_FAILED);
}

/* The request gains the workload it is addressed to, as this agent knows
 * it (over anything the request said): "workload" with name, version,
 * dir, section (the kind's section of the signed ferry.yaml) and env
 * (run.env). A plugin that acts on a job between its runs has no other
 * way to learn them. NULL on memory trouble. */
static char *with_workload(const struct run *r, const char *request_json)
{
    json_t *j = json_loads(request_json ? request_json : "{}", 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        j = json_object();
    }
    json_t *env = json_array();
    for (size_t i = 0; r->wl.env && r->wl.env[i]; i++)
        json_array_append_new(env, json_string(r->wl.env[i]));
    json_t *sec = r->wl.kind_json ? json_loads(r->wl.kind_json, 0, NULL) : NULL;
    json_t *w = json_pack("{s:s, s:s, s:s, s:o, s:o}", "name", r->name, "version", r->version,
                          "dir", r->wl.dir ? r->wl.dir : r->dir, "section",
                          sec ? sec : json_object(), "env", env ? env : json_array());
    char *out = NULL;
    if (j && w && json_object_set_new(j, "workload", w) == 0)
        out = json_dumps(j, JSON_COMPACT);
    else
        json_decref(w);
    json_decref(j);
    return out;
}

int run_action_start(void *arg, struct agent_actions *aa, const uint8_t id[ACTION_ID_LEN],
                     const char *workload, const char *verb, const char *request_json)
{
    struct agent *a = arg;
    struct run *pick = NULL;
    for (struct run *r = a->runs; r; r = r->next)
        if (strcmp(r->name, workload) == 0 && answers_actions(r))
            pick = r;
    if (!pick)
        return err_set(FERRY_E_NOTFOUND, "action %s: workload %s is not running on host %s", verb,
                       workload, a->cfg->name);
    if (pick->plugin->abi < 2 || !pick->plugin->p.action)
        return err_set(FERRY_E_NOTFOUND, "action %s: plugin %s of %s answers no actions", verb,
                       pick->plugin->name, workload);
    struct pending_action *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->r = pick;
    p->aa = aa;
    memcpy(p->id, id, ACTION_ID_LEN);
    snprintf(p->verb, sizeof p->verb, "%s", verb);
    char *req = with_workload(pick, request_json);
    if (!req) {
        free(p);
        return -ENOMEM;
    }
    pick->work_pending++;
    int rc = plugincall_action(&a->loop, pick->plugin, &pick->frun, verb, req, on_plugin_answer,
                               p);
    free(req);
    if (rc < 0) {
        pick->work_pending--;
        free(p);
        return rc;
    }
    return 0;
}
