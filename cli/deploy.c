/* ferry deploy, undeploy and rollback: sign a DeployRecord with the
 * operator key and hand it to the registry; then say how many online hosts
 * it reaches, and warn about what looks wrong (no host, no plugin). */
#include "artifact.h"
#include "cli.h"
#include "clock.h"
#include "error.h"
#include "key.h"
#include "manifest.pb-c.h"
#include "record.h"
#include "selector.h"
#include "spec.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MATCH_MAX 4096

/* Sign rec with the operator key and send it. */
static int send_record(struct cli_opts *o, Ferry__DeployRecord *rec)
{
    if (!o->key || !*o->key)
        return err_set(FERRY_E_INVALID, "no signing key: give --key FILE.key or set FERRY_KEY");
    struct key_secret k;
    int rc = key_load_secret(o->key, &k);
    if (rc < 0)
        return rc;
    Ferry__SignedRecord *sr = NULL;
    rc = record_sign(rec, &k, &sr);
    key_secret_wipe(&k);
    if (rc < 0)
        return rc;
    Ferry__Wire__Request req;
    Ferry__Wire__Deploy dep;
    ferry__wire__request__init(&req);
    ferry__wire__deploy__init(&dep);
    dep.signed_ = sr;
    req.body_case = FERRY__WIRE__REQUEST__BODY_DEPLOY;
    req.deploy = &dep;
    Ferry__Wire__Response *r = NULL;
    rc = cli_call(o, &req, &r, FERRY__WIRE__RESPONSE__BODY__NOT_SET);
    client_response_free(r);
    signed_record_free(sr);
    return rc;
}

/* The published manifest's digest (pins the exact artifact) and runtime. */
static int manifest_of(struct cli_opts *o, const char *name, const char *version,
                       uint8_t digest[DIGEST_LEN], char *runtime, size_t rcap)
{
    Ferry__Wire__Request req;
    Ferry__Wire__GetManifest gm;
    ferry__wire__request__init(&req);
    ferry__wire__get_manifest__init(&gm);
    gm.name = (char *)name;
    gm.version = (char *)version;
    req.body_case = FERRY__WIRE__REQUEST__BODY_GET_MANIFEST;
    req.get_manifest = &gm;
    Ferry__Wire__Response *r = NULL;
    int rc = cli_call(o, &req, &r, FERRY__WIRE__RESPONSE__BODY_MANIFEST);
    if (rc < 0)
        return rc;
    if (r->manifest->manifest_digest.len != DIGEST_LEN) {
        client_response_free(r);
        return err_set(FERRY_E_PROTOCOL, "registry sent a manifest digest of the wrong size");
    }
    memcpy(digest, r->manifest->manifest_digest.data, DIGEST_LEN);
    runtime[0] = '\0';
    /* Only for the plugin warning: the agents verify the manifest. */
    Ferry__Manifest *m =
        ferry__manifest__unpack(NULL, r->manifest->manifest.len, r->manifest->manifest.data);
    if (m && m->spec && m->spec->runtime)
        snprintf(runtime, rcap, "%s", m->spec->runtime);
    if (m)
        ferry__manifest__free_unpacked(m, NULL);
    client_response_free(r);
    return 0;
}

static int serves(const Ferry__Wire__HostInfo *h, const char *runtime)
{
    for (size_t i = 0; i < h->n_plugins; i++)
        for (size_t k = 0; k < h->plugins[i]->n_runtimes; k++)
            if (strcmp(h->plugins[i]->runtimes[k], runtime) == 0)
                return 1;
    return 0;
}

/* After a deploy: the matching online hosts, and the warnings. */
static void report_reach(struct cli_opts *o, const char *verb, const char *selector,
                         const char *runtime)
{
    Ferry__Wire__Response *r = NULL;
    int rc = fetch_hosts(o, &r);
    if (rc < 0) {
        fprintf(stderr, "ferry: warning: cannot count the matching hosts: %s\n", err_message(rc));
        return;
    }
    static const Ferry__Wire__HostInfo *match[MATCH_MAX];
    int n = cli_hosts_matching(r->hosts, selector, match, MATCH_MAX);
    printf("%d online host%s match%s %s\n", n, n == 1 ? "" : "s", n == 1 ? "es" : "",
           selector);
    if (n == 0)
        fprintf(stderr, "ferry: warning: no online host matches %s; the %s is recorded and "
                        "applies when one comes online\n",
                selector, verb);
    if (runtime && runtime[0]) {
        /* Any matching host, online or not: what plugins did it report?
         * With no host matching at all, the warning above is the one line:
         * there is no host to be missing a plugin. */
        struct label_set sel = {.n = 0};
        labels_parse(selector, &sel);
        int served = 0, matched = 0;
        for (size_t i = 0; i < r->hosts->n_hosts && !served; i++) {
            const Ferry__Wire__HostInfo *h = r->hosts->hosts[i];
            struct label_set have = {.n = 0};
            for (size_t l = 0; l < h->n_labels; l++) {
                char kv[2 * LABEL_TEXT_MAX + 2];
                snprintf(kv, sizeof kv, "%s=%s", h->labels[l]->key, h->labels[l]->value);
                labels_add(&have, kv);
            }
            if (selector_matches(&sel, &have)) {
                matched++;
                served = serves(h, runtime);
            }
        }
        if (matched && !served)
            fprintf(stderr, "ferry: warning: no host matching %s reports a plugin for runtime "
                            "'%s': the plugin may be missing on hosts\n",
                    selector, runtime);
    }
    client_response_free(r);
}

/* argv without the bare "--wait" flag (status takes --wait NAME@VERSION,
 * deploy takes it alone); *wait = 1 when it was there. */
static char **strip_wait(int argc, char **argv, int *wait, int *out_argc)
{
    char **v = calloc((size_t)argc + 1, sizeof *v);
    if (!v)
        return NULL;
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (i > 0 && strcmp(argv[i], "--wait") == 0) {
            *wait = 1;
            continue;
        }
        v[n++] = argv[i];
    }
    *out_argc = n;
    return v;
}

enum kind { K_DEPLOY, K_UNDEPLOY, K_ROLLBACK };

/* The label sets (and names, when names is not NULL) of the enrolled hosts
 * selector matches (online or not). */
static size_t hosts_under(struct cli_opts *o, const char *selector, struct label_set *out,
                          char (*names)[LABEL_TEXT_MAX + 1], size_t cap)
{
    Ferry__Wire__Response *r = NULL;
    if (fetch_hosts(o, &r) < 0)
        return 0;
    struct label_set sel = {.n = 0};
    labels_parse(selector, &sel);
    size_t n = 0;
    for (size_t i = 0; i < r->hosts->n_hosts && n < cap; i++) {
        const Ferry__Wire__HostInfo *h = r->hosts->hosts[i];
        if (h->status && strcmp(h->status, "pending") == 0)
            continue;
        out[n].n = 0;
        for (size_t l = 0; l < h->n_labels; l++) {
            char kv[2 * LABEL_TEXT_MAX + 2];
            snprintf(kv, sizeof kv, "%s=%s", h->labels[l]->key, h->labels[l]->value);
            labels_add(&out[n], kv);
        }
        if (selector_matches(&sel, &out[n])) {
            if (names)
                snprintf(names[n], LABEL_TEXT_MAX + 1, "%s", h->name);
            n++;
        }
    }
    client_response_free(r);
    return n;
}

/* An earlier decision counts for "there" when it has the same selector, or
 * its selector reaches one of the hosts selector matches now. */
static int reaches(const char *entry_sel, const char *selector, const struct label_set *hosts,
                   size_t n)
{
    if (strcmp(entry_sel, selector) == 0)
        return 1;
    struct label_set es = {.n = 0};
    if (labels_parse(entry_sel, &es) < 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (selector_matches(&es, &hosts[i]))
            return 1;
    return 0;
}

/* The workload state changes the registry keeps for one host (the newest
 * 1000), or NULL when it cannot say. */
static Ferry__Wire__Response *host_events(struct cli_opts *o, const char *host)
{
    struct client c;
    if (connect_registry(o, &c) < 0)
        return NULL;
    Ferry__Wire__Request req;
    Ferry__Wire__ListEvents le;
    ferry__wire__request__init(&req);
    ferry__wire__list_events__init(&le);
    le.host = (char *)host;
    le.limit = 1000;
    req.body_case = FERRY__WIRE__REQUEST__BODY_LIST_EVENTS;
    req.list_events = &le;
    Ferry__Wire__Response *r = NULL;
    int rc = client_call(&c, &req, &r);
    client_close(&c);
    if (rc < 0)
        return NULL;
    if (r->body_case != FERRY__WIRE__RESPONSE__BODY_EVENTS) {
        client_response_free(r);
        return NULL;
    }
    return r;
}

/* "The version that ran there before": a version the hosts in scope
 * reported failed or rolled_back, and never running, succeeded or scheduled,
 * never ran there (a failed rollout that a re-deploy of the current version
 * followed), so rolling back to it would bring back a known failure. Without
 * such evidence (no events for it, or pushed out of the 1000 kept per host)
 * the history alone decides. */
static int never_ran(Ferry__Wire__Response *const *ev, size_t nh, const char *name,
                     const char *version)
{
    int failed = 0;
    for (size_t h = 0; h < nh; h++) {
        if (!ev[h])
            continue;
        const Ferry__Wire__EventList *el = ev[h]->events;
        for (size_t i = 0; i < el->n_events; i++) {
            const Ferry__Wire__WorkloadReport *w = el->events[i]->change;
            if (!w || strcmp(w->name, name) != 0 || strcmp(w->version, version) != 0)
                continue;
            if (strcmp(w->state, "running") == 0 || strcmp(w->state, "succeeded") == 0 ||
                strcmp(w->state, "scheduled") == 0)
                return 0;
            if (strcmp(w->state, "failed") == 0 || strcmp(w->state, "rolled_back") == 0)
                failed = 1;
        }
    }
    return failed;
}

/* The version to go back to: in name's history, before the current
 * decision for selector, the newest deploy (or rollback) that reached the
 * same hosts, of a version other than the current one. */
static int pick_previous(struct cli_opts *o, const char *name, const char *selector,
                         char *version, size_t cap, char *current, size_t ccap)
{
    Ferry__Wire__Response *r = NULL;
    int rc = cli_fetch_history(o, name, &r);
    if (rc < 0)
        return rc;
    const Ferry__Wire__DeploymentList *dl = r->deployments;
    ssize_t cur = -1;
    for (size_t i = dl->n_entries; i-- > 0;)
        if (strcmp(dl->entries[i]->selector, selector) == 0) {
            cur = (ssize_t)i;
            break;
        }
    if (cur < 0) {
        client_response_free(r);
        return err_set(FERRY_E_NOTFOUND, "rollback %s: it was never deployed to %s", name,
                       selector);
    }
    const Ferry__Wire__DeploymentEntry *c = dl->entries[cur];
    if (strcmp(c->action, "undeploy") == 0) {
        client_response_free(r);
        return err_set(FERRY_E_INVALID,
                       "rollback %s: it is undeployed from %s; deploy a version instead", name,
                       selector);
    }
    snprintf(current, ccap, "%s", c->version);
    version[0] = '\0';
    static struct label_set hosts[256];
    static char names[256][LABEL_TEXT_MAX + 1];
    static Ferry__Wire__Response *ev[256];
    size_t nh = hosts_under(o, selector, hosts, names, sizeof hosts / sizeof hosts[0]);
    for (size_t h = 0; h < nh; h++)
        ev[h] = host_events(o, names[h]);
    for (ssize_t i = cur - 1; i >= 0 && !version[0]; i--) {
        const Ferry__Wire__DeploymentEntry *e = dl->entries[i];
        if (strcmp(e->action, "undeploy") != 0 && strcmp(e->version, c->version) != 0 &&
            reaches(e->selector, selector, hosts, nh) && !never_ran(ev, nh, name, e->version))
            snprintf(version, cap, "%s", e->version);
    }
    for (size_t h = 0; h < nh; h++)
        if (ev[h])
            client_response_free(ev[h]);
    client_response_free(r);
    if (!version[0])
        return err_set(FERRY_E_NOTFOUND,
                       "rollback %s on %s: no version ran there before %s", name, selector,
                       current);
    return 0;
}

static int run(int argc0, char **argv0, enum kind kind)
{
    static const char *const verbs[] = {"deploy", "undeploy", "rollback"};
    const char *verb = verbs[kind];
    int wait = 0, argc = 0;
    char **argv = kind == K_DEPLOY ? strip_wait(argc0, argv0, &wait, &argc) : argv0;
    if (!argv)
        return cli_fail(-ENOMEM);
    if (kind != K_DEPLOY)
        argc = argc0;
    struct cli_opts o;
    static const int allowed_deploy[] = {OPT_REGISTRY, OPT_KEY, OPT_TO, OPT_TIMEOUT, OPT_CHANNEL,
                                         0};
    static const int allowed_other[] = {OPT_REGISTRY, OPT_KEY, OPT_TO, 0};
    int rc = cli_parse_opts(verb, argc, argv, &o, kind == K_DEPLOY ? allowed_deploy : allowed_other);
    const char *ref = rc == 0 && optind + 1 == argc ? argv[optind] : NULL;
    if (argv != argv0)
        free(argv);
    if (rc)
        return rc;
    if (!ref)
        return cli_usage(verb, kind == K_DEPLOY ? "expected exactly one NAME@VERSION"
                                                : "expected exactly one NAME");
    if (!o.to)
        return cli_usage(verb, "--to SELECTOR is required (e.g. --to env=prod)");
    if (o.timeout_ms && !wait)
        return cli_usage(verb, "--timeout goes with --wait");
    struct label_set sel;
    if ((rc = labels_parse(o.to, &sel)) < 0)
        return cli_fail(rc);
    char selector[2048], name[72] = "", version[72] = "", current[72] = "", runtime[64] = "";
    labels_format(&sel, selector, sizeof selector);
    uint8_t chan_digest[DIGEST_LEN];
    if (kind == K_DEPLOY && o.channel) {
        /* Hosts follow the channel: the record names it, and the version it
         * points at now (docs/governance.md, "Channels"). */
        if (!spec_name_ok(ref))
            return cli_usage(verb, "with --channel, give NAME (the channel picks the version)");
        snprintf(name, sizeof name, "%s", ref);
        if ((rc = cli_channel_version(&o, name, o.channel, version, sizeof version,
                                      chan_digest)) < 0)
            return cli_fail(rc);
    } else if (kind == K_DEPLOY) {
        if ((rc = artifact_ref_parse(ref, name, sizeof name, version, sizeof version)) < 0)
            return cli_fail(rc);
    } else {
        if (!spec_name_ok(ref))
            return cli_fail(err_set(FERRY_E_INVALID, "'%s': invalid name", ref));
        snprintf(name, sizeof name, "%s", ref);
    }
    if (kind == K_ROLLBACK &&
        (rc = pick_previous(&o, name, selector, version, sizeof version, current,
                            sizeof current)) < 0)
        return cli_fail(rc);
    uint8_t digest[DIGEST_LEN];
    Ferry__DeployRecord rec;
    ferry__deploy_record__init(&rec);
    rec.name = name;
    rec.version = version;
    rec.selector = selector;
    rec.undeploy = kind == K_UNDEPLOY;
    rec.rollback = kind == K_ROLLBACK;
    rec.issued_ms = (uint64_t)(int64_t)clock_unix_ms();
    rec.channel = kind == K_DEPLOY && o.channel ? (char *)o.channel : (char *)"";
    if (kind != K_UNDEPLOY) {
        if ((rc = manifest_of(&o, name, version, digest, runtime, sizeof runtime)) < 0)
            return cli_fail(rc);
        rec.manifest_digest = (ProtobufCBinaryData){DIGEST_LEN, digest};
    }
    if (wait)
        cli_wait_baseline(&o, name, version);
    if ((rc = send_record(&o, &rec)) < 0)
        return cli_fail(rc);
    if (kind == K_UNDEPLOY)
        printf("undeployed %s from %s\n", name, selector);
    else if (kind == K_ROLLBACK)
        printf("rolled back %s on %s from %s to %s (deployed %s@%s)\n", name, selector, current,
               version, name, version);
    else if (o.channel)
        printf("deployed %s (channel %s, now %s) to %s\n", name, o.channel, version, selector);
    else
        printf("deployed %s@%s to %s\n", name, version, selector);
    report_reach(&o, kind == K_UNDEPLOY ? "undeploy" : "deployment", selector,
                 kind == K_UNDEPLOY ? NULL : runtime);
    fflush(stdout);
    if (wait)
        return cli_wait(&o, name, version, selector, o.timeout_ms ? o.timeout_ms : 300 * 1000,
                        0);
    return 0;
}

int cli_deploy(int argc, char **argv) { return run(argc, argv, K_DEPLOY); }
int cli_undeploy(int argc, char **argv) { return run(argc, argv, K_UNDEPLOY); }
int cli_rollback(int argc, char **argv) { return run(argc, argv, K_ROLLBACK); }
