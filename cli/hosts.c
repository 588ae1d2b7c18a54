/* ferry hosts: the fleet's hosts, and enrollment (accept a pending host,
 * make a join token). docs/cli.md and docs/security.md ("Enrollment"). */
#include "cli.h"
#include "client.h"
#include "clock.h"
#include "error.h"
#include "jointoken.h"
#include "key.h"
#include "selector.h"
#include "spec.h"
#include "numparse.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


struct hosts_opts {
    const char *registry, *key, *out, *key_id;
    int json, replace, have_ttl;
    uint64_t ttl_ms;
    struct label_set labels;
};

enum { H_REGISTRY = 256, H_JSON, H_KEY, H_LABEL, H_TTL, H_OUT, H_REPLACE, H_KEY_ID };

/* allowed: the option ids verb takes, 0-terminated. */
static int parse(const char *verb, int argc, char **argv, const int *allowed, struct hosts_opts *o)
{
    static const struct option opts[] = {
        {"registry", required_argument, NULL, H_REGISTRY},
        {"json", no_argument, NULL, H_JSON},
        {"key", required_argument, NULL, H_KEY},
        {"label", required_argument, NULL, H_LABEL},
        {"ttl", required_argument, NULL, H_TTL},
        {"out", required_argument, NULL, H_OUT},
        {"replace", no_argument, NULL, H_REPLACE},
        {"key-id", required_argument, NULL, H_KEY_ID},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->registry = getenv("FERRY_REGISTRY");
    o->key = getenv("FERRY_KEY");
    o->ttl_ms = JOIN_TOKEN_DEFAULT_TTL_MS;
    optind = 1;
    opterr = 0;
    int c, li = -1;
    while ((c = getopt_long(argc, argv, "o:", opts, &li)) != -1) {
        if (c == 'o')
            c = H_OUT;
        int ok = 0;
        for (const int *a = allowed; *a; a++)
            ok |= *a == c;
        if (c == '?' || c == ':' || !ok) {
            char msg[200];
            /* Name a known option this subcommand does not take, not the
             * word it took as its value. */
            if (c != '?' && c != ':' && li >= 0)
                snprintf(msg, sizeof msg, "unknown or incomplete option '--%s'", opts[li].name);
            else
                snprintf(msg, sizeof msg, "unknown or incomplete option '%s'", argv[optind - 1]);
            return cli_usage(verb, msg);
        }
        li = -1;
        switch (c) {
        case H_REGISTRY: o->registry = optarg; break;
        case H_JSON: o->json = 1; break;
        case H_KEY: o->key = optarg; break;
        case H_OUT: o->out = optarg; break;
        case H_REPLACE: o->replace = 1; break;
        case H_KEY_ID: o->key_id = optarg; break;
        case H_LABEL: {
            struct label_set before = o->labels;
            int rc = labels_add(&o->labels, optarg);
            if (rc < 0)
                return cli_usage(verb, err_message(rc));
            if (o->labels.n == before.n)
                return cli_usage(verb, "a label key is given twice");
            break;
        }
        case H_TTL:
            if (num_parse_duration_ms("--ttl", optarg, 1000, 1000, JOIN_TOKEN_MAX_TTL_MS,
                                      &o->ttl_ms) < 0) {
                char msg[200];
                snprintf(msg, sizeof msg,
                         "--ttl '%s': expected a duration from 1s to 30d (e.g. 90s, 30m, 12h, 7d)",
                         optarg);
                return cli_usage(verb, msg);
            }
            break;
        }
    }
    if (!o->registry || !*o->registry)
        o->registry = WIRE_DEFAULT_URL;
    return 0;
}

/* "exec(exec) model(model,onnx)", or "-" when the host reported none. */
static void plugins_text(const Ferry__Wire__HostInfo *h, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < h->n_plugins && used < cap; i++) {
        int n = snprintf(out + used, cap - used, "%s%s(", i ? " " : "", h->plugins[i]->name);
        for (size_t k = 0; n > 0 && k < h->plugins[i]->n_runtimes && used + (size_t)n < cap; k++) {
            int m = snprintf(out + used + n, cap - used - (size_t)n, "%s%s", k ? "," : "",
                             h->plugins[i]->runtimes[k]);
            n = m < 0 ? -1 : n + m;
        }
        if (n < 0 || used + (size_t)n >= cap)
            break;
        used += (size_t)n;
        used += (size_t)snprintf(out + used, cap - used, ")");
    }
    if (!out[0])
        snprintf(out, cap, "-");
}

static int hosts_list(int argc, char **argv)
{
    struct hosts_opts o;
    static const int allowed[] = {H_REGISTRY, H_JSON, 0};
    int rc = parse("hosts", argc, argv, allowed, &o);
    if (rc)
        return rc;
    if (optind != argc)
        return cli_usage("hosts", "expected no arguments, 'accept NAME', 'rm NAME' or 'token'");
    Ferry__Wire__Request req;
    Ferry__Wire__ListHosts lh;
    ferry__wire__request__init(&req);
    ferry__wire__list_hosts__init(&lh);
    req.body_case = FERRY__WIRE__REQUEST__BODY_LIST_HOSTS;
    req.list_hosts = &lh;
    Ferry__Wire__Response *r = NULL;
    if ((rc = cli_call_url(o.registry, &req, &r, FERRY__WIRE__RESPONSE__BODY_HOSTS)) < 0)
        return cli_fail(rc);
    const Ferry__Wire__HostList *hl = r->hosts;
    if (o.json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < hl->n_hosts; i++) {
            const Ferry__Wire__HostInfo *h = hl->hosts[i];
            char when[32];
            iso_ms(h->last_seen_ms, when, sizeof when);
            json_t *plugins = json_array();
            for (size_t p = 0; p < h->n_plugins; p++) {
                json_t *rts = json_array();
                for (size_t k = 0; k < h->plugins[p]->n_runtimes; k++)
                    json_array_append_new(rts, json_string(h->plugins[p]->runtimes[k]));
                json_array_append_new(plugins, json_pack("{s:s, s:o}", "name",
                                                         h->plugins[p]->name, "runtimes", rts));
            }
            json_array_append_new(
                arr, json_pack("{s:s, s:s, s:o, s:b, s:s, s:I, s:s, s:o, s:b}", "name", h->name,
                               "status", h->status && *h->status ? h->status : "enrolled",
                               "labels", labels_json(h), "online", h->online, "last_seen", when,
                               "last_seen_ms", (json_int_t)h->last_seen_ms, "key_id", h->key_id,
                               "plugins", plugins, "verifies_policy", h->verifies_policy));
            /* The envelope the host holds (docs/security.md). */
            json_t *row = json_array_get(arr, json_array_size(arr) - 1);
            json_object_set_new(row, "desired_state",
                                json_string(h->desired_state && *h->desired_state
                                                ? h->desired_state
                                                : h->envelope_version ? "fresh" : "none"));
            json_object_set_new(row, "envelope_version",
                                json_integer((json_int_t)h->envelope_version));
            json_object_set_new(row, "envelope_expires_ms",
                                json_integer((json_int_t)h->envelope_expires_ms));
        }
        json_t *doc = json_pack("{s:o}", "hosts", arr);
        char *text = json_dumps(doc, JSON_INDENT(2));
        puts(text);
        free(text);
        json_decref(doc);
    } else {
        printf("%-20s %-9s %-7s %-21s %-17s %-24s %-24s %s\n", "HOST", "STATUS", "ONLINE",
               "LAST SEEN", "KEY ID", "LABELS", "PLUGINS", "POLICY");
        for (size_t i = 0; i < hl->n_hosts; i++) {
            const Ferry__Wire__HostInfo *h = hl->hosts[i];
            char when[32], labels[2100], plugins[1024];
            iso_ms(h->last_seen_ms, when, sizeof when);
            labels_text(h, labels, sizeof labels);
            plugins_text(h, plugins, sizeof plugins);
            /* POLICY: whether the agent verifies the signed policy itself
             * (--trust-admin), as its last signed report says. */
            printf("%-20s %-9s %-7s %-21s %-17s %-24s %-24s %s\n", h->name,
                   h->status && *h->status ? h->status : "enrolled", h->online ? "yes" : "no",
                   when, h->key_id, labels, plugins,
                   h->verifies_policy ? "verified" : "not verified");
        }
        for (size_t i = 0; i < hl->n_hosts; i++)
            if (hl->hosts[i]->desired_state && strcmp(hl->hosts[i]->desired_state, "expired") == 0)
                printf("%s: desired state expired (version %llu): running what it has\n",
                       hl->hosts[i]->name, (unsigned long long)hl->hosts[i]->envelope_version);
    }
    client_response_free(r);
    return 0;
}

static int hosts_accept(int argc, char **argv)
{
    struct hosts_opts o;
    static const int allowed[] = {H_REGISTRY, H_KEY, H_REPLACE, H_KEY_ID, 0};
    int rc = parse("hosts accept", argc, argv, allowed, &o);
    if (rc)
        return rc;
    if (optind + 1 != argc)
        return cli_usage("hosts accept", "expected exactly one host NAME");
    const char *name = argv[optind];
    if (!spec_name_ok(name))
        return cli_fail(err_set(FERRY_E_INVALID, "hosts accept: '%s' is not a valid host name", name));
    if (!o.key)
        return cli_usage("hosts accept", "no operator key: give --key FILE.key or set FERRY_KEY");
    struct key_secret k;
    if ((rc = key_load_secret(o.key, &k)) < 0)
        return cli_fail(rc);
    Ferry__Wire__AcceptBody body;
    ferry__wire__accept_body__init(&body);
    body.name = (char *)name;
    body.key_id = (char *)(o.key_id ? o.key_id : "");
    body.replace = o.replace;
    body.sent_ms = clock_unix_ms();
    size_t n = ferry__wire__accept_body__get_packed_size(&body);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        key_secret_wipe(&k);
        return cli_fail(-ENOMEM);
    }
    ferry__wire__accept_body__pack(&body, buf);
    uint8_t sig[crypto_sign_BYTES];
    key_sign(&k, buf, n, sig);
    Ferry__Wire__AcceptHost ah;
    ferry__wire__accept_host__init(&ah);
    ah.body = (ProtobufCBinaryData){n, buf};
    ah.signer = k.pub.id;
    ah.signature = (ProtobufCBinaryData){sizeof sig, sig};
    Ferry__Wire__Request req;
    ferry__wire__request__init(&req);
    req.body_case = FERRY__WIRE__REQUEST__BODY_ACCEPT_HOST;
    req.accept_host = &ah;
    Ferry__Wire__Response *r = NULL;
    rc = cli_call_url(o.registry, &req, &r, FERRY__WIRE__RESPONSE__BODY_ACCEPTED);
    free(buf);
    key_secret_wipe(&k);
    if (rc < 0)
        return cli_fail(rc);
    printf("%s %s (key %s)\n", r->accepted->replaced ? "re-keyed" : "accepted", r->accepted->name,
           r->accepted->key_id);
    client_response_free(r);
    return 0;
}

static int write_private(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return err_set(-errno, "%s: %s", path, strerror(errno));
    size_t len = strlen(text);
    int rc = fchmod(fd, 0600) < 0 ? -errno : 0;
    while (rc == 0 && len > 0) {
        ssize_t w = write(fd, text, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rc = -errno;
            break;
        }
        text += w;
        len -= (size_t)w;
    }
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc < 0) {
        unlink(path);
        return err_set(rc, "%s: %s", path, strerror(-rc));
    }
    return 0;
}

static int hosts_token(int argc, char **argv)
{
    struct hosts_opts o;
    static const int allowed[] = {H_KEY, H_LABEL, H_TTL, H_OUT, 0};
    int rc = parse("hosts token", argc, argv, allowed, &o);
    if (rc)
        return rc;
    if (optind != argc)
        return cli_usage("hosts token", "takes no arguments");
    if (!o.key)
        return cli_usage("hosts token", "no operator key: give --key FILE.key or set FERRY_KEY");
    struct key_secret k;
    if ((rc = key_load_secret(o.key, &k)) < 0)
        return cli_fail(rc);
    char *text = NULL;
    uint64_t now = clock_unix_ms();
    rc = jointoken_make(&k, &o.labels, now, o.ttl_ms, &text);
    char id[KEY_ID_LEN + 1];
    snprintf(id, sizeof id, "%s", k.pub.id);
    key_secret_wipe(&k);
    if (rc < 0)
        return cli_fail(rc);
    size_t len = strlen(text);
    char *line = malloc(len + 2);
    if (!line) {
        free(text);
        return cli_fail(-ENOMEM);
    }
    memcpy(line, text, len);
    memcpy(line + len, "\n", 2);
    free(text);
    if (o.out)
        rc = write_private(o.out, line);
    else
        fputs(line, stdout);
    free(line);
    if (rc < 0)
        return cli_fail(rc);
    char until[32];
    iso_ms(now + o.ttl_ms, until, sizeof until);
    fprintf(stderr, "ferry: join token signed by key %s, valid until %s; anyone holding it can "
                    "enroll hosts until then\n",
            id, until);
    return 0;
}

static int hosts_rm(int argc, char **argv)
{
    struct hosts_opts o;
    static const int allowed[] = {H_REGISTRY, H_KEY, 0};
    int rc = parse("hosts rm", argc, argv, allowed, &o);
    if (rc)
        return rc;
    if (optind + 1 != argc)
        return cli_usage("hosts rm", "expected exactly one host NAME");
    const char *name = argv[optind];
    if (!spec_name_ok(name))
        return cli_fail(err_set(FERRY_E_INVALID, "hosts rm: '%s' is not a valid host name", name));
    if (!o.key)
        return cli_usage("hosts rm", "no operator key: give --key FILE.key or set FERRY_KEY");
    struct key_secret k;
    if ((rc = key_load_secret(o.key, &k)) < 0)
        return cli_fail(rc);
    Ferry__Wire__RemoveHostBody body;
    ferry__wire__remove_host_body__init(&body);
    body.name = (char *)name;
    body.sent_ms = clock_unix_ms();
    size_t n = ferry__wire__remove_host_body__get_packed_size(&body);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        key_secret_wipe(&k);
        return cli_fail(-ENOMEM);
    }
    ferry__wire__remove_host_body__pack(&body, buf);
    uint8_t sig[crypto_sign_BYTES];
    key_sign(&k, buf, n, sig);
    Ferry__Wire__RemoveHost rm;
    ferry__wire__remove_host__init(&rm);
    rm.body = (ProtobufCBinaryData){n, buf};
    rm.signer = k.pub.id;
    rm.signature = (ProtobufCBinaryData){sizeof sig, sig};
    Ferry__Wire__Request req;
    ferry__wire__request__init(&req);
    req.body_case = FERRY__WIRE__REQUEST__BODY_REMOVE_HOST;
    req.remove_host = &rm;
    Ferry__Wire__Response *r = NULL;
    rc = cli_call_url(o.registry, &req, &r, FERRY__WIRE__RESPONSE__BODY__NOT_SET);
    free(buf);
    key_secret_wipe(&k);
    if (rc < 0)
        return cli_fail(rc);
    client_response_free(r);
    printf("removed host %s\n", name);
    return 0;
}

int cli_hosts(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "rm") == 0)
        return hosts_rm(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "accept") == 0)
        return hosts_accept(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "token") == 0)
        return hosts_token(argc - 1, argv + 1);
    return hosts_list(argc, argv);
}
