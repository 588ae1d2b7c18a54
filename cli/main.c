/* ferry: the command line. Thin: each verb parses its options and calls
 * libferry; errors are printed as one line, "ferry: <detail>". */
#include "artifact.h"
#include "cli.h"
#include "client.h"
#include "clock.h"
#include "error.h"
#include "key.h"
#include "numparse.h"
#include "record.h"
#include "selector.h"
#include "spec.h"

#include <getopt.h>
#include <malloc.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXIT_USAGE 2

struct opts {
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
};

static int fail(int rc)
{
    fprintf(stderr, "ferry: %s\n", err_message(rc));
    return 1;
}

static int usage_error(const char *verb, const char *msg)
{
    fprintf(stderr, "ferry %s: %s (see 'ferry help')\n", verb, msg);
    return EXIT_USAGE;
}

enum { OPT_REGISTRY = 256, OPT_KEY, OPT_TRUST, OPT_DIR, OPT_OUT, OPT_JSON, OPT_VERBOSE, OPT_TO,
       OPT_WAIT, OPT_TIMEOUT, OPT_HOST, OPT_LIMIT };

static const struct option long_opts[] = {
    {"registry", required_argument, NULL, OPT_REGISTRY},
    {"key", required_argument, NULL, OPT_KEY},
    {"trust", required_argument, NULL, OPT_TRUST},
    {"dir", required_argument, NULL, OPT_DIR},
    {"out", required_argument, NULL, OPT_OUT},
    {"json", no_argument, NULL, OPT_JSON},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {"to", required_argument, NULL, OPT_TO},
    {"wait", required_argument, NULL, OPT_WAIT},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"host", required_argument, NULL, OPT_HOST},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {NULL, 0, NULL, 0},
};

static int parse_opts_inner(const char *verb, int argc, char **argv, struct opts *o,
                            const int *allowed);

/* Parse options for verb; positional arguments are left in argv[optind..].
 * `allowed` lists the option ids this verb takes. On failure nothing is left
 * to free. */
static int parse_opts(const char *verb, int argc, char **argv, struct opts *o,
                      const int *allowed)
{
    int rc = parse_opts_inner(verb, argc, argv, o, allowed);
    if (rc != 0)
        trust_fini(&o->trust);
    return rc;
}

static int parse_opts_inner(const char *verb, int argc, char **argv, struct opts *o,
                            const int *allowed)
{
    memset(o, 0, sizeof *o);
    trust_init(&o->trust);
    o->registry = getenv("FERRY_REGISTRY");
    o->key = getenv("FERRY_KEY");
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "o:v", long_opts, NULL)) != -1) {
        if (c == 'o')
            c = OPT_OUT;
        if (c == 'v')
            c = OPT_VERBOSE;
        int ok = 0;
        for (const int *a = allowed; *a; a++)
            ok |= (*a == c);
        if (c == '?' || c == ':' || !ok) {
            char msg[200];
            snprintf(msg, sizeof msg, "unknown or incomplete option '%s'", argv[optind - 1]);
            return usage_error(verb, msg);
        }
        switch (c) {
        case OPT_REGISTRY: o->registry = optarg; break;
        case OPT_KEY: o->key = optarg; break;
        case OPT_DIR: o->dir = optarg; break;
        case OPT_OUT: o->out = optarg; break;
        case OPT_JSON: o->json = 1; break;
        case OPT_VERBOSE: o->verbose = 1; break;
        case OPT_TO: o->to = optarg; break;
        case OPT_WAIT: o->wait = optarg; break;
        case OPT_HOST: o->host = optarg; break;
        case OPT_LIMIT: {
            uint64_t v = 0;
            if (num_parse_u64("--limit", optarg, 1, UINT32_MAX, &v) < 0)
                return usage_error(verb, err_detail());
            o->limit = (uint32_t)v;
            break;
        }
        case OPT_TIMEOUT:
            /* Bare digits are seconds, as this flag has always taken. */
            if (num_parse_duration_ms("--timeout", optarg, 1000, 1, 7ull * 86400 * 1000,
                                      &o->timeout_ms) < 0)
                return usage_error(verb, err_detail());
            break;
        case OPT_TRUST: {
            int rc = trust_add_file(&o->trust, optarg);
            if (rc < 0) {
                fail(rc);
                return 1;
            }
            o->trust_given = 1;
            break;
        }
        }
    }
    if (!o->trust_given) {
        const char *env = getenv("FERRY_TRUST");
        if (env && *env) {
            int rc = trust_add_list(&o->trust, env);
            if (rc < 0) {
                fail(rc);
                return 1;
            }
        }
    }
    if (!o->registry || !*o->registry)
        o->registry = WIRE_DEFAULT_URL;
    return 0;
}

static int connect_registry(struct opts *o, struct client *c)
{
    return client_open(c, o->registry);
}

static int cmd_keygen(int argc, char **argv)
{
    struct opts o;
    static const int allowed[] = {OPT_DIR, 0};
    int rc = parse_opts("keygen", argc, argv, &o, allowed);
    if (rc)
        return rc;
    if (optind + 1 != argc)
        return usage_error("keygen", "expected exactly one NAME");
    struct key_public pub;
    rc = key_generate(o.dir ? o.dir : ".", argv[optind], &pub);
    if (rc < 0)
        return fail(rc);
    printf("%s %s\n", pub.name, pub.id);
    return 0;
}

static void print_summary(const char *verb, const struct transfer_result *r)
{
    fprintf(stderr, "ferry: %s %s@%s: %s%zu of %zu blobs uploaded (%llu bytes)\n", verb, r->name,
            r->version, r->already_published ? "already published, " : "", r->blobs_uploaded,
            r->blobs_total, (unsigned long long)r->bytes_uploaded);
}

static int cmd_publish(int argc, char **argv)
{
    struct opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_KEY, OPT_VERBOSE, 0};
    int rc = parse_opts("publish", argc, argv, &o, allowed);
    if (rc)
        return rc;
    if (optind + 1 != argc)
        return usage_error("publish", "expected exactly one DIR");
    if (!o.key || !*o.key)
        return usage_error("publish", "no signing key: give --key FILE.key or set FERRY_KEY");
    struct key_secret k;
    if ((rc = key_load_secret(o.key, &k)) < 0)
        return fail(rc);
    struct client c;
    struct transfer_result res;
    if ((rc = connect_registry(&o, &c)) < 0) {
        key_secret_wipe(&k);
        return fail(rc);
    }
    rc = artifact_publish(&c, argv[optind], &k, 1, &res);
    key_secret_wipe(&k);
    client_close(&c);
    if (rc < 0)
        return fail(rc);
    if (o.verbose)
        print_summary("publish", &res);
    printf("%s@%s %s\n", res.name, res.version, res.digest_hex);
    return 0;
}

/* pull and export: NAME@VERSION out of the registry into o.out. */
static int fetch_verb(const char *verb, const char *out_usage, int argc, char **argv, int export)
{
    struct opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_TRUST, OPT_OUT, 0};
    int rc = parse_opts(verb, argc, argv, &o, allowed);
    if (rc)
        return rc;
    if (optind + 1 != argc)
        return usage_error(verb, "expected exactly one NAME@VERSION");
    if (!o.out)
        return usage_error(verb, out_usage);
    char name[72], version[72];
    if ((rc = artifact_ref_parse(argv[optind], name, sizeof name, version, sizeof version)) < 0)
        return fail(rc);
    struct client c;
    struct transfer_result res;
    if ((rc = connect_registry(&o, &c)) < 0) {
        trust_fini(&o.trust);
        return fail(rc);
    }
    if (export)
        rc = artifact_export(&c, name, version, o.out, &o.trust, &res);
    else
        rc = artifact_pull(&c, name, version, o.out, &o.trust, 1, &res);
    client_close(&c);
    trust_fini(&o.trust);
    if (rc < 0)
        return fail(rc);
    printf("%s@%s %s\n", res.name, res.version, res.digest_hex);
    return 0;
}

static int cmd_pull(int argc, char **argv)
{
    return fetch_verb("pull", "--out DIR is required", argc, argv, 0);
}

static int cmd_export(int argc, char **argv)
{
    return fetch_verb("export", "-o FILE.tar is required", argc, argv, 1);
}

static int cmd_import(int argc, char **argv)
{
    struct opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_TRUST, OPT_VERBOSE, 0};
    int rc = parse_opts("import", argc, argv, &o, allowed);
    if (rc)
        return rc;
    if (optind + 1 != argc)
        return usage_error("import", "expected exactly one FILE.tar");
    struct client c;
    struct transfer_result res;
    if ((rc = connect_registry(&o, &c)) < 0) {
        trust_fini(&o.trust);
        return fail(rc);
    }
    rc = artifact_import(&c, argv[optind], &o.trust, 1, &res);
    client_close(&c);
    trust_fini(&o.trust);
    if (rc < 0)
        return fail(rc);
    if (o.verbose)
        print_summary("import", &res);
    printf("%s@%s %s\n", res.name, res.version, res.digest_hex);
    return 0;
}

static void iso_time(int64_t t, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int cmd_versions(int argc, char **argv)
{
    struct opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_JSON, 0};
    int rc = parse_opts("versions", argc, argv, &o, allowed);
    if (rc)
        return rc;
    if (optind + 1 != argc)
        return usage_error("versions", "expected exactly one NAME");
    const char *name = argv[optind];
    struct client c;
    if ((rc = connect_registry(&o, &c)) < 0)
        return fail(rc);
    Ferry__Wire__Request req;
    Ferry__Wire__ListVersions lv;
    ferry__wire__request__init(&req);
    ferry__wire__list_versions__init(&lv);
    lv.name = (char *)name;
    req.body_case = FERRY__WIRE__REQUEST__BODY_LIST_VERSIONS;
    req.list_versions = &lv;
    Ferry__Wire__Response *r = NULL;
    rc = client_call(&c, &req, &r);
    client_close(&c);
    if (rc < 0)
        return fail(rc);
    if (r->body_case != FERRY__WIRE__RESPONSE__BODY_VERSIONS) {
        client_response_free(r);
        return fail(err_set(FERRY_E_PROTOCOL, "registry sent an unexpected reply"));
    }
    const Ferry__Wire__VersionList *vl = r->versions;
    json_t *arr = o.json ? json_array() : NULL;
    if (!o.json && vl->n_versions > 0)
        printf("%-16s %-64s %-16s %s\n", "VERSION", "DIGEST", "PUBLISHER", "PUBLISHED");
    for (size_t i = 0; i < vl->n_versions; i++) {
        const Ferry__Wire__VersionInfo *v = vl->versions[i];
        char hex[DIGEST_HEX_LEN + 1] = "", when[32];
        struct digest d;
        if (digest_from_bytes(v->manifest_digest.data, v->manifest_digest.len, &d) == 0)
            digest_hex(&d, hex);
        iso_time(v->published_unix, when, sizeof when);
        if (o.json)
            json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "version",
                                                 v->version, "digest", hex, "publisher",
                                                 v->publisher, "published", when,
                                                 "published_unix", (json_int_t)v->published_unix,
                                                 "kind", v->kind));
        else
            printf("%-16s %-64s %-16s %s\n", v->version, hex, v->publisher, when);
    }
    if (o.json) {
        json_t *obj = json_pack("{s:s, s:o}", "name", name, "versions", arr);
        char *text = json_dumps(obj, JSON_INDENT(2));
        puts(text);
        free(text);
        json_decref(obj);
    }
    if (!o.json && vl->n_versions == 0)
        fprintf(stderr, "ferry: %s: no versions published\n", name);
    client_response_free(r);
    return 0;
}

static int cmd_stats(int argc, char **argv)
{
    struct opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_JSON, 0};
    int rc = parse_opts("stats", argc, argv, &o, allowed);
    if (rc)
        return rc;
    struct client c;
    if ((rc = connect_registry(&o, &c)) < 0)
        return fail(rc);
    Ferry__Wire__Request req;
    Ferry__Wire__Stats st;
    ferry__wire__request__init(&req);
    ferry__wire__stats__init(&st);
    req.body_case = FERRY__WIRE__REQUEST__BODY_STATS;
    req.stats = &st;
    Ferry__Wire__Response *r = NULL;
    rc = client_call(&c, &req, &r);
    client_close(&c);
    if (rc < 0)
        return fail(rc);
    if (r->body_case != FERRY__WIRE__RESPONSE__BODY_STATS) {
        client_response_free(r);
        return fail(err_set(FERRY_E_PROTOCOL, "registry sent an unexpected reply"));
    }
    const Ferry__Wire__StatsReply *s = r->stats;
    json_t *obj = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "requests",
                            (json_int_t)s->requests, "bad_requests", (json_int_t)s->bad_requests,
                            "blobs_received", (json_int_t)s->blobs_received,
                            "blob_bytes_received", (json_int_t)s->blob_bytes_received,
                            "chunks_served", (json_int_t)s->chunks_served, "publishes",
                            (json_int_t)s->publishes, "publishes_refused",
                            (json_int_t)s->publishes_refused);
    if (o.json) {
        char *text = json_dumps(obj, JSON_INDENT(2));
        puts(text);
        free(text);
    } else {
        const char *k;
        json_t *v;
        json_object_foreach(obj, k, v) printf("%-20s %lld\n", k, (long long)json_integer_value(v));
    }
    json_decref(obj);
    client_response_free(r);
    return 0;
}


/* ---- deployments and the fleet ------------------------------------------- */

/* Sign rec with the operator key and send it. */
static int send_record(struct opts *o, Ferry__DeployRecord *rec, struct client *c)
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
    rc = client_call(c, &req, &r);
    client_response_free(r);
    signed_record_free(sr);
    return rc;
}

static int cmd_deploy_or_undeploy(int argc, char **argv, int undeploy)
{
    const char *verb = undeploy ? "undeploy" : "deploy";
    struct opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_KEY, OPT_TO, 0};
    int rc = parse_opts(verb, argc, argv, &o, allowed);
    if (rc)
        return rc;
    if (optind + 1 != argc)
        return usage_error(verb, undeploy ? "expected exactly one NAME"
                                          : "expected exactly one NAME@VERSION");
    if (!o.to)
        return usage_error(verb, "--to SELECTOR is required (e.g. --to env=prod)");
    struct label_set sel;
    if ((rc = labels_parse(o.to, &sel)) < 0)
        return fail(rc);
    char selector[2048], name[72] = "", version[72] = "";
    labels_format(&sel, selector, sizeof selector);
    if (undeploy) {
        if (!spec_name_ok(argv[optind]))
            return fail(err_set(FERRY_E_INVALID, "'%s': invalid name", argv[optind]));
        snprintf(name, sizeof name, "%s", argv[optind]);
    } else if ((rc = artifact_ref_parse(argv[optind], name, sizeof name, version,
                                        sizeof version)) < 0) {
        return fail(rc);
    }
    struct client c;
    if ((rc = connect_registry(&o, &c)) < 0)
        return fail(rc);
    Ferry__DeployRecord rec;
    ferry__deploy_record__init(&rec);
    rec.name = name;
    rec.version = version;
    rec.selector = selector;
    rec.undeploy = undeploy;
    rec.issued_ms = (uint64_t)(int64_t)clock_unix_ms();
    Ferry__Wire__Response *mr = NULL;
    if (!undeploy) {
        /* Pin the exact artifact the operator means. */
        Ferry__Wire__Request req;
        Ferry__Wire__GetManifest gm;
        ferry__wire__request__init(&req);
        ferry__wire__get_manifest__init(&gm);
        gm.name = name;
        gm.version = version;
        req.body_case = FERRY__WIRE__REQUEST__BODY_GET_MANIFEST;
        req.get_manifest = &gm;
        rc = client_call(&c, &req, &mr);
        if (rc == 0 && mr->body_case != FERRY__WIRE__RESPONSE__BODY_MANIFEST)
            rc = err_set(FERRY_E_PROTOCOL, "registry sent an unexpected reply");
        if (rc == 0)
            rec.manifest_digest = mr->manifest->manifest_digest;
    }
    if (rc == 0)
        rc = send_record(&o, &rec, &c);
    client_response_free(mr);
    client_close(&c);
    if (rc < 0)
        return fail(rc);
    if (undeploy)
        printf("undeployed %s from %s\n", name, selector);
    else
        printf("deployed %s@%s to %s\n", name, version, selector);
    return 0;
}

static int cmd_deploy(int argc, char **argv) { return cmd_deploy_or_undeploy(argc, argv, 0); }
static int cmd_undeploy(int argc, char **argv) { return cmd_deploy_or_undeploy(argc, argv, 1); }

static int fetch_hosts(struct opts *o, Ferry__Wire__Response **out)
{
    struct client c;
    int rc = connect_registry(o, &c);
    if (rc < 0)
        return rc;
    Ferry__Wire__Request req;
    Ferry__Wire__ListHosts lh;
    ferry__wire__request__init(&req);
    ferry__wire__list_hosts__init(&lh);
    req.body_case = FERRY__WIRE__REQUEST__BODY_LIST_HOSTS;
    req.list_hosts = &lh;
    rc = client_call(&c, &req, out);
    client_close(&c);
    if (rc == 0 && (*out)->body_case != FERRY__WIRE__RESPONSE__BODY_HOSTS) {
        client_response_free(*out);
        rc = err_set(FERRY_E_PROTOCOL, "registry sent an unexpected reply");
    }
    return rc;
}

json_t *labels_json(const Ferry__Wire__HostInfo *h)
{
    json_t *o = json_object();
    for (size_t i = 0; i < h->n_labels; i++)
        json_object_set_new(o, h->labels[i]->key, json_string(h->labels[i]->value));
    return o;
}

void labels_text(const Ferry__Wire__HostInfo *h, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < h->n_labels && used < cap; i++) {
        int n = snprintf(out + used, cap - used, "%s%s=%s", i ? "," : "", h->labels[i]->key,
                         h->labels[i]->value);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    if (!out[0])
        snprintf(out, cap, "-");
}

void iso_ms(uint64_t ms, char *out, size_t cap)
{
    if (ms == 0) {
        snprintf(out, cap, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void print_status(const Ferry__Wire__HostList *hl, int as_json)
{
    if (as_json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < hl->n_hosts; i++) {
            const Ferry__Wire__HostInfo *h = hl->hosts[i];
            json_t *wl = json_array();
            for (size_t k = 0; k < h->n_workloads; k++) {
                const Ferry__Wire__WorkloadReport *w = h->workloads[k];
                char since[32];
                iso_ms(w->since_ms, since, sizeof since);
                json_array_append_new(
                    wl, json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:I, s:i, s:i, s:I}", "name",
                                  w->name, "version", w->version, "state", w->state, "reason",
                                  w->reason, "restarts", (int)w->restarts, "since", since,
                                  "since_ms", (json_int_t)w->since_ms, "pid", (int)w->pid, "port",
                                  (int)w->port, "rss_bytes", (json_int_t)w->rss_bytes));
            }
            char seen[32];
            iso_ms(h->last_seen_ms, seen, sizeof seen);
            json_array_append_new(arr, json_pack("{s:s, s:o, s:b, s:s, s:o}", "name", h->name,
                                                 "labels", labels_json(h), "online", h->online,
                                                 "last_seen", seen, "workloads", wl));
        }
        json_t *doc = json_pack("{s:o}", "hosts", arr);
        char *text = json_dumps(doc, JSON_INDENT(2));
        puts(text);
        free(text);
        json_decref(doc);
        return;
    }
    printf("%-16s %-16s %-12s %-12s %-21s %-8s %s\n", "HOST", "WORKLOAD", "VERSION", "STATE",
           "SINCE", "RESTARTS", "REASON");
    for (size_t i = 0; i < hl->n_hosts; i++) {
        const Ferry__Wire__HostInfo *h = hl->hosts[i];
        char host[48];
        snprintf(host, sizeof host, "%s%s", h->name,
                 strcmp(h->status, "pending") == 0 ? " (pending)" : h->online ? "" : " (off)");
        if (h->n_workloads == 0)
            printf("%-16s %-16s\n", host, "-");
        for (size_t k = 0; k < h->n_workloads; k++) {
            const Ferry__Wire__WorkloadReport *w = h->workloads[k];
            char since[32];
            iso_ms(w->since_ms, since, sizeof since);
            printf("%-16s %-16s %-12s %-12s %-21s %-8u %s\n", host, w->name, w->version, w->state,
                   since, w->restarts, w->reason && *w->reason ? w->reason : "-");
        }
    }
}

/* One look at the fleet for status --wait: 1 done, 0 keep waiting, <0 failed
 * (with detail). */
static int wait_check(const Ferry__Wire__HostList *hl, const char *name, const char *version,
                      char *pending, size_t pcap)
{
    int matching = 0, ready = 0;
    pending[0] = '\0';
    for (size_t i = 0; i < hl->n_hosts; i++) {
        const Ferry__Wire__HostInfo *h = hl->hosts[i];
        int wants = 0;
        for (size_t k = 0; k < h->n_desired; k++)
            if (strcmp(h->desired[k]->name, name) == 0 &&
                strcmp(h->desired[k]->version, version) == 0)
                wants = 1;
        if (!wants || !h->online)
            continue;
        matching++;
        const Ferry__Wire__WorkloadReport *mine = NULL;
        for (size_t k = 0; k < h->n_workloads; k++)
            if (strcmp(h->workloads[k]->name, name) == 0 &&
                strcmp(h->workloads[k]->version, version) == 0)
                mine = h->workloads[k];
        if (mine && (strcmp(mine->state, "failed") == 0 ||
                     strcmp(mine->state, "rolled_back") == 0))
            return err_set(FERRY_E_REMOTE, "host %s: %s@%s %s: %s", h->name, name, version,
                           mine->state, mine->reason && *mine->reason ? mine->reason : "no reason");
        if (mine && strcmp(mine->state, "running") == 0)
            ready++;
        else if (!pending[0])
            snprintf(pending, pcap, "host %s is %s%s%s", h->name, mine ? mine->state : "pending",
                     mine && mine->reason && *mine->reason ? ": " : "",
                     mine && mine->reason ? mine->reason : "");
    }
    if (matching == 0)
        snprintf(pending, pcap, "no online host has %s@%s as its desired state", name, version);
    return matching > 0 && ready == matching;
}

static int cmd_status(int argc, char **argv)
{
    struct opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_JSON, OPT_WAIT, OPT_TIMEOUT, 0};
    int rc = parse_opts("status", argc, argv, &o, allowed);
    if (rc)
        return rc;
    if (optind != argc)
        return usage_error("status", "takes no arguments");
    Ferry__Wire__Response *r = NULL;
    if (!o.wait) {
        if ((rc = fetch_hosts(&o, &r)) < 0)
            return fail(rc);
        print_status(r->hosts, o.json);
        client_response_free(r);
        return 0;
    }
    char name[72], version[72], pending[512] = "";
    if ((rc = artifact_ref_parse(o.wait, name, sizeof name, version, sizeof version)) < 0)
        return fail(rc);
    uint64_t timeout_ms = o.timeout_ms ? o.timeout_ms : 300 * 1000;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        /* A registry that is briefly unreachable is waited for too. */
        rc = fetch_hosts(&o, &r);
        if (rc == 0) {
            rc = wait_check(r->hosts, name, version, pending, sizeof pending);
            if (rc != 0) {
                if (rc > 0)
                    print_status(r->hosts, o.json);
                client_response_free(r);
                return rc > 0 ? 0 : fail(rc);
            }
            client_response_free(r);
        } else {
            snprintf(pending, sizeof pending, "%s", err_message(rc));
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        uint64_t waited_ms = (uint64_t)(now.tv_sec - start.tv_sec) * 1000 +
                             (uint64_t)((now.tv_nsec - start.tv_nsec) / 1000000);
        if (waited_ms >= timeout_ms) {
            char shown[32];
            if (timeout_ms % 1000 == 0)
                snprintf(shown, sizeof shown, "%llus", (unsigned long long)(timeout_ms / 1000));
            else
                snprintf(shown, sizeof shown, "%llums", (unsigned long long)timeout_ms);
            return fail(err_set(FERRY_E_REMOTE, "timed out after %s waiting for %s@%s: %s",
                                shown, name, version, pending));
        }
        struct timespec pause = {0, 100 * 1000000};
        nanosleep(&pause, NULL); /* the poll interval, not a wait for a condition */
    }
}

static int cmd_events(int argc, char **argv)
{
    struct opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_JSON, OPT_HOST, OPT_LIMIT, 0};
    int rc = parse_opts("events", argc, argv, &o, allowed);
    if (rc)
        return rc;
    if (optind != argc)
        return usage_error("events", "takes no arguments");
    struct client c;
    if ((rc = connect_registry(&o, &c)) < 0)
        return fail(rc);
    Ferry__Wire__Request req;
    Ferry__Wire__ListEvents le;
    ferry__wire__request__init(&req);
    ferry__wire__list_events__init(&le);
    le.host = (char *)(o.host ? o.host : "");
    le.limit = o.limit;
    req.body_case = FERRY__WIRE__REQUEST__BODY_LIST_EVENTS;
    req.list_events = &le;
    Ferry__Wire__Response *r = NULL;
    rc = client_call(&c, &req, &r);
    client_close(&c);
    if (rc == 0 && r->body_case != FERRY__WIRE__RESPONSE__BODY_EVENTS) {
        client_response_free(r);
        rc = err_set(FERRY_E_PROTOCOL, "registry sent an unexpected reply");
    }
    if (rc < 0)
        return fail(rc);
    const Ferry__Wire__EventList *el = r->events;
    json_t *arr = o.json ? json_array() : NULL;
    if (!o.json)
        printf("%-21s %-16s %-16s %-12s %-12s %s\n", "TIME", "HOST", "WORKLOAD", "VERSION",
               "STATE", "REASON");
    for (size_t i = 0; i < el->n_events; i++) {
        const Ferry__Wire__Event *e = el->events[i];
        const Ferry__Wire__WorkloadReport *w = e->change;
        char when[32];
        iso_ms(w->since_ms, when, sizeof when);
        if (o.json)
            json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:i}",
                                                 "time", when, "host", e->host, "name", w->name,
                                                 "version", w->version, "state", w->state,
                                                 "reason", w->reason, "time_ms",
                                                 (json_int_t)w->since_ms, "restarts",
                                                 (int)w->restarts));
        else
            printf("%-21s %-16s %-16s %-12s %-12s %s\n", when, e->host, w->name, w->version,
                   w->state, w->reason && *w->reason ? w->reason : "-");
    }
    if (o.json) {
        json_t *doc = json_pack("{s:o}", "events", arr);
        char *text = json_dumps(doc, JSON_INDENT(2));
        puts(text);
        free(text);
        json_decref(doc);
    }
    client_response_free(r);
    return 0;
}

static void help(FILE *f)
{
    fputs("usage: ferry COMMAND [options]\n"
          "\n"
          "  keygen NAME [--dir D]                      create NAME.key (0600) and NAME.pub\n"
          "  publish DIR [--registry URL] [--key K]     sign and upload DIR (needs ferry.yaml)\n"
          "  pull NAME@VERSION --out DIR [--trust P]... fetch, verify and materialize\n"
          "  export NAME@VERSION -o FILE.tar            write an air-gap bundle\n"
          "  import FILE.tar                            verify a bundle and upload it\n"
          "  versions NAME [--json]                     list published versions\n"
          "  stats [--json]                             registry counters\n"
          "  deploy NAME@VERSION --to K=V[,K=V] [--key K]  run it on matching hosts\n"
          "  undeploy NAME --to K=V[,K=V] [--key K]     stop it there\n"
          "  hosts [--json]                             hosts, labels, online, pending\n"
          "  hosts accept NAME [--key-id ID] [--replace] [--key K]  enroll a pending host\n"
          "  hosts token [--label K=V]... [--ttl D] [--key K] [-o FILE]  a join token\n"
          "  status [--json]                            workloads per host\n"
          "  status --wait NAME@VERSION [--timeout D]   until running (0) or failed (1)\n"
          "  events [--host H] [--limit N] [--json]     workload state changes, newest last\n"
          "  logs NAME [--host H] [--tail N] [--stderr] [--follow] [--timeout S] [--key K]\n"
          "                                             a workload's output, read from its hosts\n"
          "\n"
          "Environment: FERRY_REGISTRY (--registry), FERRY_KEY (--key),\n"
          "FERRY_TRUST (colon-separated .pub files, --trust).\n"
          "Exit status: 0 success, 1 failure, 2 usage error.\n",
          f);
}

struct verb {
    const char *name;
    int (*run)(int argc, char **argv);
};

static const struct verb verbs[] = {
    {"keygen", cmd_keygen},   {"publish", cmd_publish},   {"pull", cmd_pull},
    {"export", cmd_export},   {"import", cmd_import},     {"versions", cmd_versions},
    {"stats", cmd_stats},     {"deploy", cmd_deploy},     {"undeploy", cmd_undeploy},
    {"hosts", cli_hosts},     {"status", cmd_status},     {"events", cmd_events},
    {"logs", cli_logs},
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        help(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        help(stdout);
        return 0;
    }
    /* Chunk buffers are about 1 MiB: keep them on the heap for reuse rather
     * than mapping and faulting in fresh pages for every chunk. */
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 128 << 20);
    if (sodium_init() < 0) {
        fputs("ferry: libsodium failed to initialise\n", stderr);
        return 1;
    }
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (strcmp(argv[1], verbs[i].name) == 0)
            return verbs[i].run(argc - 1, argv + 1);
    fprintf(stderr, "ferry: unknown command '%s' (see 'ferry help')\n", argv[1]);
    return EXIT_USAGE;
}
