/* ferry predict NAME [--host HOST] --json FILE|- [--mlflow]: one request to
 * a running model endpoint. The registry says where NAME runs (the address
 * `ferry status` shows); the body goes, as written, to the endpoint's Open
 * Inference Protocol route /v2/models/NAME/infer, or with --mlflow to
 * MLflow's /invocations; the answer is printed as it came. docs/cli.md
 * ("ferry predict"). */
#include "cli.h"
#include "error.h"
#include "httpc.h"
#include "numparse.h"
#include "spec.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREDICT_BODY_MAX (16u << 20)   /* the server's own cap (model/modelcfg.h) */
#define PREDICT_REPLY_MAX (64u << 20)
#define PREDICT_TIMEOUT_DEFAULT_MS 30000
#define PREDICT_TIMEOUT_MAX_MS (10u * 60u * 1000u)

enum { P_REGISTRY = 256, P_HOST, P_JSON, P_MLFLOW, P_TIMEOUT };

struct predict_opts {
    const char *registry, *host, *json, *name;
    int mlflow;
    uint64_t timeout_ms;
};

static int usage(const char *msg) { return cli_usage("predict", msg); }

static int parse(int argc, char **argv, struct predict_opts *o)
{
    static const struct option opts[] = {
        {"registry", required_argument, NULL, P_REGISTRY},
        {"host", required_argument, NULL, P_HOST},
        {"json", required_argument, NULL, P_JSON},
        {"mlflow", no_argument, NULL, P_MLFLOW},
        {"timeout", required_argument, NULL, P_TIMEOUT},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->registry = getenv("FERRY_REGISTRY");
    o->timeout_ms = PREDICT_TIMEOUT_DEFAULT_MS;
    optind = 1;
    opterr = 0;
    int c;
    char msg[200];
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case P_REGISTRY: o->registry = optarg; break;
        case P_HOST: o->host = optarg; break;
        case P_JSON: o->json = optarg; break;
        case P_MLFLOW: o->mlflow = 1; break;
        case P_TIMEOUT:
            if (num_parse_duration_ms("--timeout", optarg, 1000, 1, PREDICT_TIMEOUT_MAX_MS,
                                      &o->timeout_ms) < 0) {
                snprintf(msg, sizeof msg, "--timeout '%.40s': expected a duration up to 10m "
                                          "(e.g. 500ms, 30s)", optarg);
                return usage(msg);
            }
            break;
        default:
            snprintf(msg, sizeof msg, "unknown or incomplete option '%s'", argv[optind - 1]);
            return usage(msg);
        }
    }
    if (optind != argc - 1)
        return usage(optind == argc ? "expected the model's NAME" : "expected one NAME");
    o->name = argv[optind];
    if (!spec_name_ok(o->name)) {
        snprintf(msg, sizeof msg, "'%.64s' is not an artifact name", o->name);
        return usage(msg);
    }
    if (!o->json)
        return usage("--json FILE (or - for standard input) is required");
    if (o->host && !*o->host)
        return usage("--host must not be empty");
    if (!o->registry || !*o->registry)
        o->registry = WIRE_DEFAULT_URL;
    return 0;
}

/* The request body: FILE or standard input, at most the server's cap. */
static int read_body(const char *path, char **out, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        return err_set(-errno, "%s: %s", path, strerror(errno));
    size_t cap = 64 << 10, n = 0;
    char *buf = malloc(cap);
    int rc = buf ? 0 : -ENOMEM;
    while (rc == 0) {
        if (n == cap) {
            char *g = cap > PREDICT_BODY_MAX ? NULL : realloc(buf, cap * 2);
            if (!g) {
                rc = cap > PREDICT_BODY_MAX
                         ? err_set(FERRY_E_LIMIT, "%s: more than the 16 MiB a request may carry",
                                   path)
                         : -ENOMEM;
                break;
            }
            buf = g;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) {
            if (ferror(f))
                rc = err_set(-EIO, "%s: read error", path);
            break;
        }
    }
    if (rc == 0 && n > PREDICT_BODY_MAX)
        rc = err_set(FERRY_E_LIMIT, "%s: more than the 16 MiB a request may carry", path);
    if (rc == 0 && n == 0)
        rc = err_set(FERRY_E_INVALID, "%s: empty; expected a JSON request body", path);
    if (f != stdin)
        fclose(f);
    if (rc < 0) {
        free(buf);
        return rc == -ENOMEM ? err_set(rc, "out of memory reading %s", path) : rc;
    }
    *out = buf;
    *len = n;
    return 0;
}

/* Where NAME runs: the first online host (or --host) reporting it running
 * with a port, as "http://ADDR:PORT" in url and the host in host. */
static int find_endpoint(const struct predict_opts *o, char *url, size_t cap, char *host,
                         size_t hcap)
{
    struct cli_opts co;
    memset(&co, 0, sizeof co);
    co.registry = o->registry;
    Ferry__Wire__Response *r = NULL;
    int rc = fetch_hosts(&co, &r);
    if (rc < 0)
        return rc;
    const Ferry__Wire__HostList *hl = r->hosts;
    int host_seen = 0;
    char elsewhere[160] = "";
    rc = FERRY_E_NOTFOUND;
    for (size_t pass = 0; pass < 2 && rc != 0; pass++) {
        /* Online hosts first; an offline host's last report may be stale. */
        for (size_t i = 0; i < hl->n_hosts && rc != 0; i++) {
            const Ferry__Wire__HostInfo *h = hl->hosts[i];
            if (o->host && strcmp(h->name, o->host) != 0)
                continue;
            host_seen = 1;
            if ((pass == 0) != (h->online != 0))
                continue;
            for (size_t k = 0; k < h->n_workloads && rc != 0; k++) {
                const Ferry__Wire__WorkloadReport *w = h->workloads[k];
                if (strcmp(w->name, o->name) != 0)
                    continue;
                if (strcmp(w->state, "running") != 0 || w->port <= 0) {
                    snprintf(elsewhere, sizeof elsewhere, "%.40s on %.64s", w->state, h->name);
                    continue;
                }
                workload_address(w, url, cap);
                snprintf(host, hcap, "%s", h->name);
                rc = 0;
            }
        }
    }
    client_response_free(r);
    if (rc == 0)
        return 0;
    if (o->host && !host_seen)
        return err_set(FERRY_E_NOTFOUND, "no host named '%s'", o->host);
    if (elsewhere[0])
        return err_set(FERRY_E_NOTFOUND, "%s is not running (%s)", o->name, elsewhere);
    if (o->host)
        return err_set(FERRY_E_NOTFOUND, "%s does not run on %s", o->name, o->host);
    return err_set(FERRY_E_NOTFOUND, "%s runs on no host (see ferry status)", o->name);
}

/* The server's own words: {"error": "..."} as the V2 and MLflow routes
 * answer, else the body's first line. */
static void error_line(const struct httpc_reply *rep, char *out, size_t cap)
{
    json_t *j = json_loadb(rep->body, rep->len, 0, NULL);
    json_t *e = json_object_get(j, "error");
    if (!json_is_string(e))
        e = json_object_get(j, "message"); /* MLflow's error shape */
    if (json_is_string(e)) {
        snprintf(out, cap, "%s", json_string_value(e));
    } else {
        size_t n = strcspn(rep->body, "\r\n");
        snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), rep->body);
    }
    json_decref(j);
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = ' ';
}

int cli_predict(int argc, char **argv)
{
    struct predict_opts o;
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc;
    char *body = NULL;
    size_t len = 0;
    if ((rc = read_body(o.json, &body, &len)) < 0)
        return cli_fail(rc);
    char base[300] = "", host[128] = "";
    if ((rc = find_endpoint(&o, base, sizeof base, host, sizeof host)) < 0) {
        free(body);
        return cli_fail(rc);
    }
    char url[600];
    if (o.mlflow)
        snprintf(url, sizeof url, "%s/invocations", base);
    else
        snprintf(url, sizeof url, "%s/v2/models/%s/infer", base, o.name);
    struct httpc_reply rep;
    rc = httpc_request("POST", url, "application/json", body, len, (int)o.timeout_ms,
                       PREDICT_REPLY_MAX, &rep);
    free(body);
    if (rc < 0) {
        fprintf(stderr, "ferry: predict %s on %s: POST %s: %s\n", o.name, host, url,
                httpc_strerror(rc));
        return 1;
    }
    int ok = rep.status >= 200 && rep.status < 300;
    if (ok) {
        fwrite(rep.body, 1, rep.len, stdout);
        if (rep.len == 0 || rep.body[rep.len - 1] != '\n')
            putchar('\n');
    } else {
        char why[512];
        error_line(&rep, why, sizeof why);
        fprintf(stderr, "ferry: predict %s on %s: HTTP %d: %s\n", o.name, host, rep.status,
                why[0] ? why : "(no message)");
    }
    httpc_reply_free(&rep);
    return ok ? 0 : 1;
}
