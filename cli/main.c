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



int cli_fail(int rc)
{
    fprintf(stderr, "ferry: %s\n", err_message(rc));
    return 1;
}

int cli_usage(const char *verb, const char *msg)
{
    /* `ferry help` takes one COMMAND: for "hosts token" point at
     * `ferry help hosts`, which has the subcommand's usage. */
    int word = (int)strcspn(verb, " ");
    fprintf(stderr, "ferry %s: %s (see 'ferry help %.*s')\n", verb, msg, word, verb);
    return EXIT_USAGE;
}


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
    {"channel", required_argument, NULL, OPT_CHANNEL},
    {"role", required_argument, NULL, OPT_ROLE},
    {"provenance", required_argument, NULL, OPT_PROVENANCE},
    {NULL, 0, NULL, 0},
};

static int parse_opts_inner(const char *verb, int argc, char **argv, struct cli_opts *o,
                            const int *allowed);

/* Parse options for verb; positional arguments are left in argv[optind..].
 * `allowed` lists the option ids this verb takes. On failure nothing is left
 * to free. */
int cli_parse_opts(const char *verb, int argc, char **argv, struct cli_opts *o,
                      const int *allowed)
{
    int rc = parse_opts_inner(verb, argc, argv, o, allowed);
    if (rc != 0)
        trust_fini(&o->trust);
    return rc;
}

static int parse_opts_inner(const char *verb, int argc, char **argv, struct cli_opts *o,
                            const int *allowed)
{
    memset(o, 0, sizeof *o);
    trust_init(&o->trust);
    o->registry = getenv("FERRY_REGISTRY");
    o->key = getenv("FERRY_KEY");
    optind = 1;
    opterr = 0;
    int c, li = -1;
    while ((c = getopt_long(argc, argv, "o:v", long_opts, &li)) != -1) {
        if (c == 'o')
            c = OPT_OUT;
        if (c == 'v')
            c = OPT_VERBOSE;
        int ok = 0;
        for (const int *a = allowed; *a; a++)
            ok |= (*a == c);
        if (c == '?' || c == ':' || !ok) {
            char msg[200];
            /* A known option this verb does not take may have eaten the next
             * word as its value (`rollback --wait --to`): name the option
             * itself, not argv[optind - 1]. */
            if (c != '?' && c != ':' && li >= 0)
                snprintf(msg, sizeof msg, "unknown or incomplete option '--%s'",
                         long_opts[li].name);
            else
                snprintf(msg, sizeof msg, "unknown or incomplete option '%s'", argv[optind - 1]);
            return cli_usage(verb, msg);
        }
        li = -1;
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
        case OPT_CHANNEL: o->channel = optarg; break;
        case OPT_ROLE: o->role = optarg; break;
        case OPT_PROVENANCE: o->provenance = optarg; break;
        case OPT_LIMIT: {
            uint64_t v = 0;
            if (num_parse_u64("--limit", optarg, 1, UINT32_MAX, &v) < 0)
                return cli_usage(verb, err_detail());
            o->limit = (uint32_t)v;
            break;
        }
        case OPT_TIMEOUT:
            /* Bare digits are seconds, as this flag has always taken. */
            if (num_parse_duration_ms("--timeout", optarg, 1000, 1, 7ull * 86400 * 1000,
                                      &o->timeout_ms) < 0)
                return cli_usage(verb, err_detail());
            break;
        case OPT_TRUST: {
            int rc = trust_add_file(&o->trust, optarg);
            if (rc < 0) {
                cli_fail(rc);
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
                cli_fail(rc);
                return 1;
            }
        }
    }
    if (!o->registry || !*o->registry)
        o->registry = WIRE_DEFAULT_URL;
    return 0;
}

int connect_registry(struct cli_opts *o, struct client *c)
{
    return client_open(c, o->registry);
}

int cli_call(struct cli_opts *o, Ferry__Wire__Request *req, Ferry__Wire__Response **out,
             Ferry__Wire__Response__BodyCase want)
{
    return cli_call_url(o->registry, req, out, want);
}

int cli_call_url(const char *url, Ferry__Wire__Request *req, Ferry__Wire__Response **out,
                 Ferry__Wire__Response__BodyCase want)
{
    struct client c;
    int rc = client_open(&c, url);
    if (rc < 0)
        return rc;
    rc = client_call(&c, req, out);
    client_close(&c);
    if (rc == 0 && (*out)->body_case != want) {
        client_response_free(*out);
        *out = NULL;
        rc = err_set(FERRY_E_PROTOCOL, "registry sent an unexpected reply");
    }
    return rc;
}

void cli_print_json(json_t *doc)
{
    char *text = json_dumps(doc, JSON_INDENT(2));
    if (text)
        puts(text);
    free(text);
    json_decref(doc);
}

static int cmd_keygen(int argc, char **argv)
{
    struct cli_opts o;
    static const int allowed[] = {OPT_DIR, 0};
    int rc = cli_parse_opts("keygen", argc, argv, &o, allowed);
    if (rc)
        return rc;
    if (optind + 1 != argc)
        return cli_usage("keygen", "expected exactly one NAME");
    struct key_public pub;
    rc = key_generate(o.dir ? o.dir : ".", argv[optind], &pub);
    if (rc < 0)
        return cli_fail(rc);
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
    struct cli_opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_KEY, OPT_VERBOSE, OPT_PROVENANCE, 0};
    int rc = cli_parse_opts("publish", argc, argv, &o, allowed);
    if (rc)
        return rc;
    if (optind + 1 != argc)
        return cli_usage("publish", "expected exactly one DIR");
    if (!o.key || !*o.key)
        return cli_usage("publish", "no signing key: give --key FILE.key or set FERRY_KEY");
    struct key_secret k;
    if ((rc = key_load_secret(o.key, &k)) < 0)
        return cli_fail(rc);
    struct client c;
    struct transfer_result res;
    if ((rc = connect_registry(&o, &c)) < 0) {
        key_secret_wipe(&k);
        return cli_fail(rc);
    }
    rc = artifact_publish_ex(&c, argv[optind], &k, 1, o.provenance, &res);
    key_secret_wipe(&k);
    client_close(&c);
    if (rc < 0)
        return cli_fail(rc);
    if (o.verbose)
        print_summary("publish", &res);
    printf("%s@%s %s\n", res.name, res.version, res.digest_hex);
    return 0;
}

/* pull and export: NAME@VERSION out of the registry into o.out. */
static int fetch_verb(const char *verb, const char *out_usage, int argc, char **argv, int export)
{
    struct cli_opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_TRUST, OPT_OUT, 0};
    int rc = cli_parse_opts(verb, argc, argv, &o, allowed);
    if (rc)
        return rc;
    if (optind + 1 != argc)
        return cli_usage(verb, "expected exactly one NAME@VERSION");
    if (!o.out)
        return cli_usage(verb, out_usage);
    char name[72], version[72];
    if ((rc = artifact_ref_parse(argv[optind], name, sizeof name, version, sizeof version)) < 0)
        return cli_fail(rc);
    struct client c;
    struct transfer_result res;
    if ((rc = connect_registry(&o, &c)) < 0) {
        trust_fini(&o.trust);
        return cli_fail(rc);
    }
    if (export)
        rc = artifact_export(&c, name, version, o.out, &o.trust, &res);
    else
        rc = artifact_pull(&c, name, version, o.out, &o.trust, 1, &res);
    client_close(&c);
    trust_fini(&o.trust);
    if (rc < 0)
        return cli_fail(rc);
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
    struct cli_opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_TRUST, OPT_VERBOSE, 0};
    int rc = cli_parse_opts("import", argc, argv, &o, allowed);
    if (rc)
        return rc;
    if (optind + 1 != argc)
        return cli_usage("import", "expected exactly one FILE.tar");
    struct client c;
    struct transfer_result res;
    if ((rc = connect_registry(&o, &c)) < 0) {
        trust_fini(&o.trust);
        return cli_fail(rc);
    }
    rc = artifact_import(&c, argv[optind], &o.trust, 1, &res);
    client_close(&c);
    trust_fini(&o.trust);
    if (rc < 0)
        return cli_fail(rc);
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
    struct cli_opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_JSON, 0};
    int rc = cli_parse_opts("versions", argc, argv, &o, allowed);
    if (rc)
        return rc;
    if (optind + 1 != argc)
        return cli_usage("versions", "expected exactly one NAME");
    const char *name = argv[optind];
    struct client c;
    if ((rc = connect_registry(&o, &c)) < 0)
        return cli_fail(rc);
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
        return cli_fail(rc);
    if (r->body_case != FERRY__WIRE__RESPONSE__BODY_VERSIONS) {
        client_response_free(r);
        return cli_fail(err_set(FERRY_E_PROTOCOL, "registry sent an unexpected reply"));
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
    struct cli_opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_JSON, 0};
    int rc = cli_parse_opts("stats", argc, argv, &o, allowed);
    if (rc)
        return rc;
    struct client c;
    if ((rc = connect_registry(&o, &c)) < 0)
        return cli_fail(rc);
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
        return cli_fail(rc);
    if (r->body_case != FERRY__WIRE__RESPONSE__BODY_STATS) {
        client_response_free(r);
        return cli_fail(err_set(FERRY_E_PROTOCOL, "registry sent an unexpected reply"));
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


int fetch_hosts(struct cli_opts *o, Ferry__Wire__Response **out)
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

/* http://ADDR:PORT of a workload with a port ("" without one); an agent from
 * before --advertise reports no address: its workloads are on loopback. */
void workload_address(const Ferry__Wire__WorkloadReport *w, char *out, size_t cap)
{
    out[0] = '\0';
    if (w->port <= 0)
        return;
    const char *a = w->address && *w->address ? w->address : "127.0.0.1";
    snprintf(out, cap, strchr(a, ':') ? "http://[%s]:%d" : "http://%s:%d", a, (int)w->port);
}

void print_status(const Ferry__Wire__HostList *hl, int as_json)
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
                char addr[300];
                workload_address(w, addr, sizeof addr);
                json_t *wj = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:I, s:i, s:i, s:I, s:s}",
                                  "name", w->name, "version", w->version, "state", w->state,
                                  "reason", w->reason, "restarts", (int)w->restarts, "since",
                                  since, "since_ms", (json_int_t)w->since_ms, "pid", (int)w->pid,
                                  "port", (int)w->port, "rss_bytes", (json_int_t)w->rss_bytes,
                                  "address", addr);
                /* Added fields (docs/notebooks.md): "kind", and a notebook's "kernels". */
                if (wj && w->kind && *w->kind)
                    json_object_set_new(wj, "kind", json_string(w->kind));
                if (wj && w->kind && strcmp(w->kind, "notebook") == 0)
                    json_object_set_new(wj, "kernels", kernels_status_json(h, w));
                json_array_append_new(wl, wj);
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
    printf("%-16s %-16s %-12s %-12s %-21s %-8s %-24s %s\n", "HOST", "WORKLOAD", "VERSION",
           "STATE", "SINCE", "RESTARTS", "ADDRESS", "REASON");
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
            char addr[300];
            workload_address(w, addr, sizeof addr);
            printf("%-16s %-16s %-12s %-12s %-21s %-8u %-24s %s\n", host, w->name, w->version,
                   w->state, since, w->restarts, addr[0] ? addr : "-",
                   w->reason && *w->reason ? w->reason : "-");
            kernels_status_print(w);
        }
    }
}

static int cmd_status(int argc, char **argv)
{
    struct cli_opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_JSON, OPT_WAIT, OPT_TIMEOUT, OPT_TO, 0};
    int rc = cli_parse_opts("status", argc, argv, &o, allowed);
    if (rc)
        return rc;
    if (optind != argc)
        return cli_usage("status", "takes no arguments");
    if ((o.to || o.timeout_ms) && !o.wait)
        return cli_usage("status", "--to and --timeout go with --wait NAME@VERSION");
    Ferry__Wire__Response *r = NULL;
    if (!o.wait) {
        if ((rc = fetch_hosts(&o, &r)) < 0)
            return cli_fail(rc);
        print_status(r->hosts, o.json);
        client_response_free(r);
        return 0;
    }
    char name[72], version[72], selector[2048] = "";
    if ((rc = artifact_ref_parse(o.wait, name, sizeof name, version, sizeof version)) < 0)
        return cli_fail(rc);
    if (o.to) {
        struct label_set sel;
        if ((rc = labels_parse(o.to, &sel)) < 0)
            return cli_usage("status", err_message(rc));
        labels_format(&sel, selector, sizeof selector);
    }
    return cli_wait(&o, name, version, o.to ? selector : NULL,
                    o.timeout_ms ? o.timeout_ms : 300 * 1000, 1);
}

static int cmd_events(int argc, char **argv)
{
    struct cli_opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_JSON, OPT_HOST, OPT_LIMIT, 0};
    int rc = cli_parse_opts("events", argc, argv, &o, allowed);
    if (rc)
        return rc;
    if (optind != argc)
        return cli_usage("events", "takes no arguments");
    struct client c;
    if ((rc = connect_registry(&o, &c)) < 0)
        return cli_fail(rc);
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
        return cli_fail(rc);
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

struct verb {
    const char *name;
    int (*run)(int argc, char **argv);
};

static const struct verb verbs[] = {
    {"keygen", cmd_keygen},   {"publish", cmd_publish},   {"pull", cmd_pull},
    {"export", cmd_export},   {"import", cmd_import},     {"versions", cmd_versions},
    {"stats", cmd_stats},     {"deploy", cli_deploy},     {"undeploy", cli_undeploy},
    {"hosts", cli_hosts},     {"status", cmd_status},     {"events", cmd_events},
    {"rollback", cli_rollback}, {"deployments", cli_deployments}, {"history", cli_history},
    {"logs", cli_logs},       {"action", cli_action},   {"kernel", cli_kernel},
    {"kernelspec", cli_kernelspec},
    {"metrics", cli_metrics},
    {"run", cli_run},         {"runs", cli_runs},
    {"predict", cli_predict},
    {"audit", cli_audit},
    {"policy", cli_policy},   {"approve", cli_approve},   {"promote", cli_promote},
    {"channels", cli_channels}, {"keys", cli_keys},
    {"inspect", cli_inspect},
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        cli_help_all(stderr);
        return EXIT_USAGE;
    }
    /* VERB --help (anywhere among its arguments): that verb's usage. Before
     * anything else, so that `ferry version --help` is usage too. */
    if (strcmp(argv[1], "help") != 0 && argv[1][0] != '-')
        for (int i = 2; i < argc; i++)
            if ((strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) &&
                cli_help_verb(argv[1], stdout) == 0)
                return 0;
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("ferry %s\n", FERRY_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        if (argc == 2 || strcmp(argv[1], "help") != 0) {
            cli_help_all(stdout);
            return 0;
        }
        if (argc > 3)
            return cli_usage("help", "expected at most one COMMAND");
        /* `ferry help --help`: the usage of help itself. */
        const char *verb = strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0
                               ? "help"
                               : argv[2];
        if (cli_help_verb(verb, stdout) < 0) {
            fprintf(stderr, "ferry: unknown command '%s' (see 'ferry help')\n", argv[2]);
            return EXIT_USAGE;
        }
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
