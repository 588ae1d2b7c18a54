/* Helpers the verbs in cli/ share (defined in main.c), and the verbs that
 * live in their own files. */
#ifndef FERRY_CLI_CLI_H
#define FERRY_CLI_CLI_H

#include "action.h"
#include "client.h"
#include "key.h"
#include "wire.pb-c.h"

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#define EXIT_USAGE 2
#define EXIT_TIMEOUT 3 /* status --wait / deploy --wait ran out of time */

/* The options every verb in main.c and its neighbours parse. */
struct cli_opts {
    const char *registry;
    const char *key;
    const char *dir;
    const char *out;
    const char *to;
    const char *wait;
    const char *host;
    uint32_t limit;
    uint64_t timeout_ms;
    int json;
    int verbose;
    struct trust trust;
    int trust_given;
    /* governance (cli/gov.c) */
    const char *channel;
    const char *role;
    const char *provenance;
};

enum { OPT_REGISTRY = 256, OPT_KEY, OPT_TRUST, OPT_DIR, OPT_OUT, OPT_JSON, OPT_VERBOSE, OPT_TO,
       OPT_WAIT, OPT_TIMEOUT, OPT_HOST, OPT_LIMIT,
       OPT_CHANNEL = 300, OPT_ROLE, OPT_PROVENANCE };

/* Parse options for verb; positional arguments are left in argv[optind..].
 * allowed lists the option ids verb takes (0-terminated). Returns 0, or the
 * exit code after printing the one-line error. */
int cli_parse_opts(const char *verb, int argc, char **argv, struct cli_opts *o,
                   const int *allowed);
/* "ferry: <detail>" on stderr; returns 1. */
int cli_fail(int rc);
/* "ferry VERB: msg (see 'ferry help VERB')"; returns EXIT_USAGE. */
int cli_usage(const char *verb, const char *msg);
int connect_registry(struct cli_opts *o, struct client *c);
/* One request, expecting a reply body of kind want. */
int cli_call(struct cli_opts *o, Ferry__Wire__Request *req, Ferry__Wire__Response **out,
             Ferry__Wire__Response__BodyCase want);
/* The same for a registry URL given directly. */
int cli_call_url(const char *url, Ferry__Wire__Request *req, Ferry__Wire__Response **out,
                 Ferry__Wire__Response__BodyCase want);
/* The fleet (ListHosts). */
int fetch_hosts(struct cli_opts *o, Ferry__Wire__Response **out);
void print_status(const Ferry__Wire__HostList *hl, int as_json);
/* A workload's endpoint, "http://ADDR:PORT" ("" without a port). */
void workload_address(const Ferry__Wire__WorkloadReport *w, char *out, size_t cap);
/* Print a JSON document (and consume it). */
void cli_print_json(json_t *doc);

json_t *labels_json(const Ferry__Wire__HostInfo *h);
/* "k=v,k=v", or "-" without labels. */
void labels_text(const Ferry__Wire__HostInfo *h, char *out, size_t cap);
/* ISO 8601 UTC, or "-" for 0. */
void iso_ms(uint64_t ms, char *out, size_t cap);

/* Usage text (cli/usage.c): every verb, or one (-1 when unknown). */
void cli_help_all(FILE *f);
int cli_help_verb(const char *verb, FILE *f);

/* ferry hosts [accept|token|rm] (cli/hosts.c). */
int cli_hosts(int argc, char **argv);
/* Actions (cli/actioncall.c): sign verb for workload on host and submit it,
 * letting the registry wait up to wait_ms for the reply; id gets the
 * action's id. Then, until resp holds the host's reply or the monotonic
 * deadline passes (FERRY_E_TRANSPORT naming host and timeout_s). */
#define ACTIONS_WAIT_HINT_MS 2000 /* the registry waits at most this long per request */
int cli_action_submit(struct client *c, const struct key_secret *k, const char *host,
                      const char *workload, const char *verb, const char *request_json,
                      uint32_t ttl_ms, uint32_t wait_ms, uint8_t id[ACTION_ID_LEN],
                      Ferry__Wire__Response **resp);
int cli_action_await(struct client *c, const char *host, const uint8_t id[ACTION_ID_LEN],
                     uint64_t deadline, int timeout_s, Ferry__Wire__Response **resp);
/* ferry action NAME VERB (cli/action.c). */
int cli_action(int argc, char **argv);
/* ferry kernel start|stop|list (cli/kernel.c). */
int cli_kernel(int argc, char **argv);
/* ferry run NAME@VERSION --to SEL [--param K=V] [--wait]; ferry runs NAME
 * [--json] | get ID [-o FILE] (cli/runs.c). */
int cli_run(int argc, char **argv);
int cli_runs(int argc, char **argv);
/* ferry kernelspec install (cli/kernelspec.c). */
int cli_kernelspec(int argc, char **argv);
/* ferry status: a notebook workload's kernels, as the agent reported them
 * (cli/kernel.c): a JSON array, and table lines under the workload's. */
json_t *kernels_status_json(const Ferry__Wire__HostInfo *h, const Ferry__Wire__WorkloadReport *w);
void kernels_status_print(const Ferry__Wire__WorkloadReport *w);
/* ferry predict NAME --json FILE (cli/predict.c). */
int cli_predict(int argc, char **argv);
/* ferry logs NAME (cli/logs.c). */
int cli_logs(int argc, char **argv);

/* ferry deploy, undeploy, rollback (cli/deploy.c). */
int cli_deploy(int argc, char **argv);
int cli_undeploy(int argc, char **argv);
int cli_rollback(int argc, char **argv);
/* ferry deployments, history (cli/deployments.c). */
int cli_deployments(int argc, char **argv);
int cli_history(int argc, char **argv);
/* The signed decisions for name (ListHistory), oldest first. */
int cli_fetch_history(struct cli_opts *o, const char *name, Ferry__Wire__Response **out);

/* status --wait (cli/wait.c): until name@version runs (a job: succeeded)
 * on every online host selector matches (NULL: every online host whose
 * desired state has it). Returns the exit code: 0 done, 1 failed, rolled
 * back or nothing to wait for, EXIT_TIMEOUT at timeout_ms. The outcome is
 * one line on stderr unless 0; on a terminal the hosts still waited for
 * are shown while waiting. show_status: print the status table at 0. */
/* deploy --wait, before the record is sent: remember the ends hosts
 * reported for name@version, so that the wait does not take them for the
 * new deploy's outcome. */
void cli_wait_baseline(struct cli_opts *o, const char *name, const char *version);
int cli_wait(struct cli_opts *o, const char *name, const char *version, const char *selector,
             uint64_t timeout_ms, int show_status);
/* Online enrolled hosts in hl whose labels match selector (canonical text). */
int cli_hosts_matching(const Ferry__Wire__HostList *hl, const char *selector,
                       const Ferry__Wire__HostInfo **out, size_t cap);
/* Governance (cli/gov.c): policy sign|show|check, approve, promote,
 * channels, keys revoke. */
int cli_policy(int argc, char **argv);
int cli_approve(int argc, char **argv);
int cli_promote(int argc, char **argv);
int cli_channels(int argc, char **argv);
int cli_keys(int argc, char **argv);
/* The version channel of name points at (and its digest). */
int cli_channel_version(struct cli_opts *o, const char *name, const char *channel,
                        char *version, size_t cap, uint8_t digest[32]);
/* ferry inspect NAME@VERSION [--trust P] [--json] (cli/inspect.c). */
int cli_inspect(int argc, char **argv);
/* ferry metrics NAME [--host H] [--json] (cli/metrics.c). */
int cli_metrics(int argc, char **argv);
/* audit.c */
int cli_audit(int argc, char **argv);

#endif
