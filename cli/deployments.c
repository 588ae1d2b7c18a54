/* ferry deployments and ferry history: what the registry's signed records
 * say is deployed, and every decision about a name, with the key that
 * signed each. */
#include "cli.h"
#include "error.h"
#include "spec.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_fetch_history(struct cli_opts *o, const char *name, Ferry__Wire__Response **out)
{
    Ferry__Wire__Request req;
    Ferry__Wire__ListHistory lh;
    ferry__wire__request__init(&req);
    ferry__wire__list_history__init(&lh);
    lh.name = (char *)name;
    req.body_case = FERRY__WIRE__REQUEST__BODY_LIST_HISTORY;
    req.list_history = &lh;
    return cli_call(o, &req, out, FERRY__WIRE__RESPONSE__BODY_DEPLOYMENTS);
}

/* with_action: history rows (deploy | undeploy | rollback). */
static void print_list(const Ferry__Wire__DeploymentList *dl, const char *key, int as_json,
                       int with_action)
{
    if (as_json) {
        /* Exactly the keys docs/cli.md names: scripts compare them as a set. */
        json_t *arr = json_array();
        for (size_t i = 0; i < dl->n_entries; i++) {
            const Ferry__Wire__DeploymentEntry *e = dl->entries[i];
            char when[32];
            iso_ms(e->issued_ms, when, sizeof when);
            json_t *row = json_object();
            if (with_action)
                json_object_set_new(row, "action", json_string(e->action));
            json_object_set_new(row, "name", json_string(e->name));
            json_object_set_new(row, "version", json_string(e->version));
            json_object_set_new(row, "selector", json_string(e->selector));
            json_object_set_new(row, "key_id", json_string(e->key_id));
            json_object_set_new(row, "time", json_string(when));
            json_array_append_new(arr, row);
        }
        cli_print_json(json_pack("{s:o}", key, arr));
        return;
    }
    if (with_action)
        printf("%-21s %-9s %-16s %-12s %-24s %s\n", "TIME", "ACTION", "NAME", "VERSION",
               "SELECTOR", "KEY ID");
    else
        printf("%-16s %-12s %-24s %-17s %s\n", "NAME", "VERSION", "SELECTOR", "KEY ID",
               "DEPLOYED");
    for (size_t i = 0; i < dl->n_entries; i++) {
        const Ferry__Wire__DeploymentEntry *e = dl->entries[i];
        char when[32];
        iso_ms(e->issued_ms, when, sizeof when);
        const char *v = e->version && *e->version ? e->version : "-";
        if (with_action)
            printf("%-21s %-9s %-16s %-12s %-24s %s\n", when, e->action, e->name, v, e->selector,
                   e->key_id);
        else
            printf("%-16s %-12s %-24s %-17s %s\n", e->name, v, e->selector, e->key_id, when);
    }
}

int cli_deployments(int argc, char **argv)
{
    struct cli_opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_JSON, 0};
    int rc = cli_parse_opts("deployments", argc, argv, &o, allowed);
    if (rc)
        return rc;
    if (optind != argc)
        return cli_usage("deployments", "takes no arguments");
    Ferry__Wire__Request req;
    Ferry__Wire__ListDeployments ld;
    ferry__wire__request__init(&req);
    ferry__wire__list_deployments__init(&ld);
    req.body_case = FERRY__WIRE__REQUEST__BODY_LIST_DEPLOYMENTS;
    req.list_deployments = &ld;
    Ferry__Wire__Response *r = NULL;
    if ((rc = cli_call(&o, &req, &r, FERRY__WIRE__RESPONSE__BODY_DEPLOYMENTS)) < 0)
        return cli_fail(rc);
    print_list(r->deployments, "deployments", o.json, 0);
    client_response_free(r);
    return 0;
}

int cli_history(int argc, char **argv)
{
    struct cli_opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_JSON, 0};
    int rc = cli_parse_opts("history", argc, argv, &o, allowed);
    if (rc)
        return rc;
    if (optind + 1 != argc)
        return cli_usage("history", "expected exactly one NAME");
    const char *name = argv[optind];
    if (!spec_name_ok(name))
        return cli_fail(err_set(FERRY_E_INVALID, "'%s': invalid name", name));
    Ferry__Wire__Response *r = NULL;
    if ((rc = cli_fetch_history(&o, name, &r)) < 0)
        return cli_fail(rc);
    print_list(r->deployments, "history", o.json, 1);
    if (!o.json && r->deployments->n_entries == 0)
        fprintf(stderr, "ferry: %s: never deployed\n", name);
    client_response_free(r);
    return 0;
}
