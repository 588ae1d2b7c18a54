/* ferry: the command line. Thin: each verb parses its options and calls
 * libferry; errors are printed as one line, "ferry: <detail>". */
#include "artifact.h"
#include "client.h"
#include "error.h"
#include "key.h"

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

enum { OPT_REGISTRY = 256, OPT_KEY, OPT_TRUST, OPT_DIR, OPT_OUT, OPT_JSON, OPT_VERBOSE };

static const struct option long_opts[] = {
    {"registry", required_argument, NULL, OPT_REGISTRY},
    {"key", required_argument, NULL, OPT_KEY},
    {"trust", required_argument, NULL, OPT_TRUST},
    {"dir", required_argument, NULL, OPT_DIR},
    {"out", required_argument, NULL, OPT_OUT},
    {"json", no_argument, NULL, OPT_JSON},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {NULL, 0, NULL, 0},
};

/* Parse options for verb; positional arguments are left in argv[optind..].
 * `allowed` lists the option ids this verb takes. */
static int parse_opts(const char *verb, int argc, char **argv, struct opts *o,
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

static int cmd_pull(int argc, char **argv)
{
    struct opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_TRUST, OPT_OUT, 0};
    int rc = parse_opts("pull", argc, argv, &o, allowed);
    if (rc)
        return rc;
    if (optind + 1 != argc)
        return usage_error("pull", "expected exactly one NAME@VERSION");
    if (!o.out)
        return usage_error("pull", "--out DIR is required");
    char name[72], version[72];
    if ((rc = artifact_ref_parse(argv[optind], name, sizeof name, version, sizeof version)) < 0)
        return fail(rc);
    struct client c;
    struct transfer_result res;
    if ((rc = connect_registry(&o, &c)) < 0) {
        trust_fini(&o.trust);
        return fail(rc);
    }
    rc = artifact_pull(&c, name, version, o.out, &o.trust, 1, &res);
    client_close(&c);
    trust_fini(&o.trust);
    if (rc < 0)
        return fail(rc);
    printf("%s@%s %s\n", res.name, res.version, res.digest_hex);
    return 0;
}

static int cmd_export(int argc, char **argv)
{
    struct opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_TRUST, OPT_OUT, 0};
    int rc = parse_opts("export", argc, argv, &o, allowed);
    if (rc)
        return rc;
    if (optind + 1 != argc)
        return usage_error("export", "expected exactly one NAME@VERSION");
    if (!o.out)
        return usage_error("export", "-o FILE.tar is required");
    char name[72], version[72];
    if ((rc = artifact_ref_parse(argv[optind], name, sizeof name, version, sizeof version)) < 0)
        return fail(rc);
    struct client c;
    struct transfer_result res;
    if ((rc = connect_registry(&o, &c)) < 0) {
        trust_fini(&o.trust);
        return fail(rc);
    }
    rc = artifact_export(&c, name, version, o.out, &o.trust, &res);
    client_close(&c);
    trust_fini(&o.trust);
    if (rc < 0)
        return fail(rc);
    printf("%s@%s %s\n", res.name, res.version, res.digest_hex);
    return 0;
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
    {"stats", cmd_stats},
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
