/* ferry action NAME VERB [REQUEST]: a request addressed to a running
 * workload that its plugin answers (ABI 2's action(); a notebook's kernel
 * verbs, a plugin's own diagnostics). Signed by the operator key, carried
 * to the host on its poll channel like `ferry logs`, answered on its report
 * channel; the plugin's JSON answer is printed. docs/cli.md ("ferry action"). */
#include "action.h"
#include "cli.h"
#include "client.h"
#include "clock.h"
#include "error.h"
#include "fsutil.h"
#include "key.h"
#include "spec.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACTION_DEFAULT_TIMEOUT_MS 30000
#define ACTION_MAX_TIMEOUT_MS 240000 /* an action lives at most 5 minutes */

/* REQUEST: JSON text, "-" for stdin, or "@FILE"; it must be one JSON object. */
static int read_request(const char *arg, char **out)
{
    char *text = NULL;
    if (!arg) {
        text = strdup("{}");
    } else if (strcmp(arg, "-") == 0 || arg[0] == '@') {
        FILE *f = strcmp(arg, "-") == 0 ? stdin : fopen(arg + 1, "re");
        if (!f)
            return err_set(-errno, "action: cannot read %s: %s", arg + 1, strerror(errno));
        text = malloc(ACTION_REQUEST_MAX + 1);
        size_t n = text ? fread(text, 1, ACTION_REQUEST_MAX + 1, f) : 0;
        if (f != stdin)
            fclose(f);
        if (!text)
            return -ENOMEM;
        if (n > ACTION_REQUEST_MAX) {
            free(text);
            return err_set(FERRY_E_LIMIT, "action: the request is over %u bytes", ACTION_REQUEST_MAX);
        }
        text[n] = '\0';
    } else {
        text = strdup(arg);
    }
    if (!text)
        return -ENOMEM;
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    int ok = json_is_object(j);
    json_decref(j);
    if (!ok) {
        free(text);
        return err_set(FERRY_E_INVALID, "action: the request is not a JSON object (%s)",
                       j ? "another JSON value" : e.text);
    }
    *out = text;
    return 0;
}

/* --host, or the one online host running name. */
static int pick_host(struct cli_opts *o, const char *name, char *host, size_t cap)
{
    Ferry__Wire__Response *r = NULL;
    int rc = fetch_hosts(o, &r);
    if (rc < 0)
        return rc;
    size_t found = 0;
    int known = 0;
    const Ferry__Wire__HostInfo *hit = NULL;
    for (size_t i = 0; i < r->hosts->n_hosts; i++) {
        const Ferry__Wire__HostInfo *h = r->hosts->hosts[i];
        if (o->host && strcmp(h->name, o->host) != 0)
            continue;
        known = 1;
        int runs = 0;
        for (size_t k = 0; k < h->n_workloads; k++)
            runs |= strcmp(h->workloads[k]->name, name) == 0;
        if (!runs)
            continue;
        if (!h->online) {
            rc = err_set(FERRY_E_TRANSPORT, "host %s is offline: cannot reach %s there", h->name,
                         name);
            continue;
        }
        found++;
        hit = h;
    }
    if (found == 1)
        snprintf(host, cap, "%s", hit->name), rc = 0;
    else if (found > 1)
        rc = err_set(FERRY_E_INVALID, "%s runs on %zu hosts: choose one with --host", name, found);
    else if (rc == 0 && o->host && !known)
        rc = err_set(FERRY_E_NOTFOUND, "host %s is not known to the registry", o->host);
    else if (rc == 0)
        rc = err_set(FERRY_E_NOTFOUND, o->host ? "workload %s does not run on host %s"
                                               : "unknown workload %s: no host reports it",
                     name, o->host);
    client_response_free(r);
    return rc;
}

int cli_action(int argc, char **argv)
{
    struct cli_opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_KEY, OPT_HOST, OPT_TIMEOUT, 0};
    int rc = cli_parse_opts("action", argc, argv, &o, allowed);
    if (rc)
        return rc;
    if (argc - optind < 2 || argc - optind > 3)
        return cli_usage("action", "expected NAME VERB [REQUEST]");
    const char *name = argv[optind], *verb = argv[optind + 1];
    const char *request_arg = argc - optind == 3 ? argv[optind + 2] : NULL;
    if (!spec_name_ok(name))
        return cli_fail(err_set(FERRY_E_INVALID, "action: '%s' is not a valid workload name", name));
    if (!action_verb_ok(verb))
        return cli_fail(err_set(FERRY_E_INVALID, "action: '%s' is not a valid verb", verb));
    if (o.host && !spec_name_ok(o.host))
        return cli_fail(err_set(FERRY_E_INVALID, "action: '%s' is not a valid host name", o.host));
    uint64_t timeout_ms = o.timeout_ms ? o.timeout_ms : ACTION_DEFAULT_TIMEOUT_MS;
    if (timeout_ms > ACTION_MAX_TIMEOUT_MS)
        return cli_usage("action", "--timeout: at most 240s (an action lives 5 minutes)");
    if (!o.key || !*o.key)
        return cli_usage("action", "no operator key: give --key FILE.key or set FERRY_KEY");
    char *request = NULL;
    if ((rc = read_request(request_arg, &request)) < 0)
        return cli_fail(rc);
    char host[72];
    struct key_secret k;
    if ((rc = pick_host(&o, name, host, sizeof host)) < 0 || (rc = key_load_secret(o.key, &k)) < 0) {
        free(request);
        return cli_fail(rc);
    }
    struct client c;
    if ((rc = client_open(&c, o.registry)) < 0) {
        free(request);
        key_secret_wipe(&k);
        return cli_fail(rc);
    }
    uint8_t id[ACTION_ID_LEN];
    Ferry__Wire__Response *resp = NULL;
    int timeout_s = (int)((timeout_ms + 999) / 1000);
    rc = cli_action_submit(&c, &k, host, name, verb, request, (uint32_t)timeout_ms + 5000,
                           ACTIONS_WAIT_HINT_MS, id, &resp);
    free(request);
    key_secret_wipe(&k);
    if (rc == 0)
        rc = cli_action_await(&c, host, id, clock_mono_ms() + timeout_ms, timeout_s, &resp);
    if (rc == 0) {
        const Ferry__Wire__ActionReplyBody *b = resp->action_result->reply;
        if (b->code != FERRY__WIRE__CODE__OK)
            rc = err_set(wire_error_of(b->code), "host %s: %s", host,
                         b->error && *b->error ? b->error : "the action failed");
        else if (b->data.len) {
            fwrite(b->data.data, 1, b->data.len, stdout);
            if (b->data.data[b->data.len - 1] != '\n')
                putchar('\n');
        }
    }
    client_response_free(resp);
    client_close(&c);
    return rc < 0 ? cli_fail(rc) : 0;
}
