/* ferry run NAME@VERSION --to SELECTOR [--param K=V ...] [--wait]: one
 * notebook run now, through the action path (cli/actioncall.c) to the
 * notebook plugin's notebook-run (plugins/notebook/runs.c); ferry runs NAME
 * [--json] and ferry runs get ID -o FILE: the run records hosts reported to
 * the registry, and an executed notebook, its digest checked here.
 * docs/notebooks.md ("Runs in the registry"), docs/cli.md. */
#include "cli.h"
#include "client.h"
#include "clock.h"
#include "error.h"
#include "hash.h"
#include "key.h"
#include "runrec.h"
#include "selector.h"
#include "spec.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RUN_ACTION_TIMEOUT_MS 60000
#define RUN_HOSTS_MAX 256
#define RUN_PARAMS_MAX 64
#define RUN_WAIT_POLL_MS 500

/* K=V: K a Python identifier; V as JSON when it is JSON text (10, 0.5,
 * true, null, "007", [1, 2]), else the text itself as a string. */
static int param_parse(const char *arg, json_t *params)
{
    const char *eq = strchr(arg, '=');
    char key[72];
    if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof key)
        return err_set(FERRY_E_INVALID, "run: --param '%.80s': expected NAME=VALUE", arg);
    snprintf(key, sizeof key, "%.*s", (int)(eq - arg), arg);
    int ok = isalpha((unsigned char)key[0]) || key[0] == '_';
    for (const char *p = key; *p; p++)
        ok &= isalnum((unsigned char)*p) || *p == '_';
    if (!ok || strlen(key) > 64)
        return err_set(FERRY_E_INVALID, "run: --param '%.80s': '%s' is not a Python identifier",
                       arg, key);
    const char *text = eq + 1;
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    if (!v)
        v = json_string(text);
    if (!v)
        return err_set(FERRY_E_INVALID, "run: --param '%.80s': the value is not UTF-8 text", arg);
    json_object_set_new(params, key, v);
    return 0;
}

static int split_ref(const char *verb, const char *ref, char *name, size_t cap,
                     const char **version)
{
    const char *at = strchr(ref, '@');
    if (!at || (size_t)(at - ref) >= cap)
        return err_set(FERRY_E_INVALID, "%s: '%s' is not NAME@VERSION", verb, ref);
    snprintf(name, cap, "%.*s", (int)(at - ref), ref);
    *version = at + 1;
    if (!spec_name_ok(name) || !spec_version_ok(*version))
        return err_set(FERRY_E_INVALID, "%s: '%s' is not NAME@VERSION", verb, ref);
    return 0;
}

/* The artifact must exist before any host is asked. */
static int version_exists(struct cli_opts *o, const char *name, const char *version)
{
    Ferry__Wire__Request req;
    Ferry__Wire__ListVersions lv;
    ferry__wire__request__init(&req);
    ferry__wire__list_versions__init(&lv);
    lv.name = (char *)name;
    req.body_case = FERRY__WIRE__REQUEST__BODY_LIST_VERSIONS;
    req.list_versions = &lv;
    Ferry__Wire__Response *r = NULL;
    int rc = cli_call(o, &req, &r, FERRY__WIRE__RESPONSE__BODY_VERSIONS);
    if (rc < 0)
        return rc;
    int found = 0;
    for (size_t i = 0; i < r->versions->n_versions; i++)
        found |= strcmp(r->versions->versions[i]->version, version) == 0;
    client_response_free(r);
    return found ? 0 : err_set(FERRY_E_NOTFOUND, "run: no artifact %s@%s in the registry", name,
                               version);
}

/* A host matching selector whose NAME@VERSION is deployed and can take a
 * run: running, or a job between runs. */
static int pick_host(struct cli_opts *o, const char *selector, const char *name,
                     const char *version, char *host, size_t cap)
{
    Ferry__Wire__Response *r = NULL;
    int rc = fetch_hosts(o, &r);
    if (rc < 0)
        return rc;
    static const Ferry__Wire__HostInfo *match[RUN_HOSTS_MAX];
    int n = cli_hosts_matching(r->hosts, selector, match, RUN_HOSTS_MAX);
    static const char *const ready[] = {"running", "scheduled", "succeeded", "failed", NULL};
    host[0] = '\0';
    for (int i = 0; i < n && !host[0]; i++)
        for (size_t w = 0; w < match[i]->n_workloads && !host[0]; w++) {
            const Ferry__Wire__WorkloadReport *wr = match[i]->workloads[w];
            if (strcmp(wr->name, name) != 0 || strcmp(wr->version, version) != 0)
                continue;
            for (const char *const *s = ready; *s; s++)
                if (strcmp(wr->state, *s) == 0)
                    snprintf(host, cap, "%s", match[i]->name);
        }
    client_response_free(r);
    if (!host[0])
        return err_set(FERRY_E_NOTFOUND, "run: no online host matching %s has %s@%s deployed",
                       selector, name, version);
    return 0;
}

/* The action notebook-run on host; *id gets the run's id. */
static int start_run(struct cli_opts *o, const struct key_secret *k, const char *host,
                     const char *name, const char *request, char *id, size_t cap)
{
    struct client c;
    int rc = client_open(&c, o->registry);
    if (rc < 0)
        return rc;
    uint64_t timeout_ms = RUN_ACTION_TIMEOUT_MS;
    uint8_t aid[ACTION_ID_LEN];
    Ferry__Wire__Response *resp = NULL;
    rc = cli_action_submit(&c, k, host, name, "notebook-run", request,
                           (uint32_t)timeout_ms + 5000, ACTIONS_WAIT_HINT_MS, aid, &resp);
    if (rc == 0)
        rc = cli_action_await(&c, host, aid, clock_mono_ms() + timeout_ms,
                              (int)(timeout_ms / 1000), &resp);
    if (rc == 0) {
        const Ferry__Wire__ActionReplyBody *b = resp->action_result->reply;
        json_t *j = NULL;
        const char *got;
        if (b->code != FERRY__WIRE__CODE__OK)
            rc = err_set(wire_error_of(b->code), "host %s: %s", host,
                         b->error && *b->error ? b->error : "the action failed");
        else if (!(j = json_loadb((const char *)b->data.data, b->data.len, 0, NULL)) ||
                 !json_is_object(j))
            rc = err_set(FERRY_E_PROTOCOL, "host %s: the run answer is not a JSON object", host);
        else if (json_is_string(json_object_get(j, "error")))
            rc = err_set(FERRY_E_REMOTE, "host %s: %s", host,
                         json_string_value(json_object_get(j, "error")));
        else if (!runrec_id_ok(got = json_string_value(json_object_get(j, "id"))))
            rc = err_set(FERRY_E_PROTOCOL, "host %s: the run answer has no run id", host);
        else
            snprintf(id, cap, "%s", got);
        json_decref(j);
    }
    client_response_free(resp);
    client_close(&c);
    return rc;
}

/* ListRuns by name or by id. */
static int list_runs(struct cli_opts *o, const char *name, const char *id, uint32_t limit,
                     Ferry__Wire__Response **out)
{
    Ferry__Wire__Request req;
    Ferry__Wire__ListRuns lr;
    ferry__wire__request__init(&req);
    ferry__wire__list_runs__init(&lr);
    lr.name = (char *)(name ? name : "");
    lr.id = (char *)(id ? id : "");
    lr.limit = limit;
    req.body_case = FERRY__WIRE__REQUEST__BODY_LIST_RUNS;
    req.list_runs = &lr;
    return cli_call(o, &req, out, FERRY__WIRE__RESPONSE__BODY_RUNS);
}

/* Until run id ended: 0 succeeded, 1 failed (its error on stderr),
 * EXIT_TIMEOUT at the deadline, or a failure's exit code. */
static int wait_run(struct cli_opts *o, const char *id)
{
    uint64_t deadline = o->timeout_ms ? clock_mono_ms() + o->timeout_ms : 0;
    for (;;) {
        Ferry__Wire__Response *r = NULL;
        int rc = list_runs(o, NULL, id, 1, &r);
        if (rc == 0 && r->runs->n_runs == 1) {
            const Ferry__Wire__RunRecord *x = r->runs->runs[0];
            int done = strcmp(x->status, "running") != 0;
            int ok = strcmp(x->status, "succeeded") == 0;
            if (done && ok)
                fprintf(stderr, "run %s succeeded in %llu ms on host %s\n", id,
                        (unsigned long long)x->duration_ms, x->host);
            else if (done)
                fprintf(stderr, "ferry: run %s failed on host %s: %s\n", id, x->host,
                        x->error && *x->error ? x->error : "(no reason given)");
            client_response_free(r);
            if (done)
                return ok ? 0 : 1;
        } else {
            client_response_free(r);
            /* Not reported yet: the host sends it within a second or so. */
            if (rc < 0 && rc != FERRY_E_NOTFOUND)
                return cli_fail(rc);
        }
        if (deadline && clock_mono_ms() >= deadline) {
            fprintf(stderr, "ferry: run %s: still running after %llu s\n", id,
                    (unsigned long long)(o->timeout_ms / 1000));
            return EXIT_TIMEOUT;
        }
        struct timespec ts = {0, RUN_WAIT_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int cli_run(int argc, char **argv)
{
    /* --param and the flag --wait are this verb's alone: taken out before
     * the shared options (whose --wait takes a value). */
    json_t *params = json_object();
    int wait = 0, kept = 0, rc = 0;
    for (int i = 0; i < argc; i++) {
        const char *p = NULL;
        if (strcmp(argv[i], "--param") == 0) {
            if (i + 1 >= argc) {
                json_decref(params);
                return cli_usage("run", "--param needs NAME=VALUE");
            }
            p = argv[++i];
        } else if (strncmp(argv[i], "--param=", 8) == 0) {
            p = argv[i] + 8;
        } else if (strcmp(argv[i], "--wait") == 0) {
            wait = 1;
            continue;
        }
        if (p) {
            if (rc == 0 && json_object_size(params) >= RUN_PARAMS_MAX)
                rc = err_set(FERRY_E_LIMIT, "run: at most %d --param", RUN_PARAMS_MAX);
            if (rc == 0)
                rc = param_parse(p, params);
            continue;
        }
        argv[kept++] = argv[i];
    }
    argc = kept;
    if (rc < 0) {
        json_decref(params);
        fprintf(stderr, "ferry: %s\n", err_message(rc));
        return EXIT_USAGE;
    }
    struct cli_opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_KEY, OPT_TO, OPT_TIMEOUT, 0};
    if ((rc = cli_parse_opts("run", argc, argv, &o, allowed)) != 0) {
        json_decref(params);
        return rc;
    }
    if (argc - optind != 1) {
        json_decref(params);
        return cli_usage("run", "expected NAME@VERSION --to SELECTOR");
    }
    char name[72], host[128], id[RUN_ID_LEN + 1] = "", selector[2048];
    const char *version = NULL;
    struct label_set sel;
    struct key_secret k;
    int have_key = 0;
    json_t *req = NULL;
    char *text = NULL;
    if ((rc = split_ref("run", argv[optind], name, sizeof name, &version)) < 0)
        goto out;
    if (!o.to) {
        json_decref(params);
        return cli_usage("run", "needs --to SELECTOR");
    }
    if (!o.key || !*o.key) {
        json_decref(params);
        return cli_usage("run", "no key: give --key FILE.key or set FERRY_KEY");
    }
    if ((rc = labels_parse(o.to, &sel)) < 0)
        goto out;
    labels_format(&sel, selector, sizeof selector);
    if ((rc = key_load_secret(o.key, &k)) < 0)
        goto out;
    have_key = 1;
    if ((rc = version_exists(&o, name, version)) < 0 ||
        (rc = pick_host(&o, selector, name, version, host, sizeof host)) < 0)
        goto out;
    req = json_pack("{s:O}", "parameters", params);
    text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    if (!text) {
        rc = -ENOMEM;
        goto out;
    }
    if (strlen(text) > ACTION_REQUEST_MAX) {
        rc = err_set(FERRY_E_LIMIT, "run: the parameters are %zu bytes of JSON, at most %u",
                     strlen(text), ACTION_REQUEST_MAX);
        goto out;
    }
    rc = start_run(&o, &k, host, name, text, id, sizeof id);
out:
    if (have_key)
        key_secret_wipe(&k);
    free(text);
    json_decref(req);
    json_decref(params);
    if (rc < 0)
        return cli_fail(rc);
    printf("%s\n", id);
    fflush(stdout);
    return wait ? wait_run(&o, id) : 0;
}

static json_t *run_json(const Ferry__Wire__RunRecord *x)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "id", x->id, "name", x->name,
                     "version", x->version, "host", x->host, "status", x->status, "started",
                     (json_int_t)x->started_ms, "duration_ms", (json_int_t)x->duration_ms,
                     "error", x->error ? x->error : "");
}

static int runs_list(struct cli_opts *o, const char *name)
{
    if (!spec_name_ok(name))
        return cli_fail(err_set(FERRY_E_INVALID, "runs: '%s' is not a workload name", name));
    Ferry__Wire__Response *r = NULL;
    int rc = list_runs(o, name, NULL, o->limit, &r);
    if (rc < 0)
        return cli_fail(rc);
    const Ferry__Wire__RunList *l = r->runs;
    if (o->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < l->n_runs; i++)
            json_array_append_new(arr, run_json(l->runs[i]));
        json_t *doc = json_pack("{s:o}", "runs", arr);
        json_dumpf(doc, stdout, JSON_COMPACT);
        putchar('\n');
        json_decref(doc);
    } else {
        printf("%-16s  %-20s  %-12s  %-9s  %-20s  %10s  %s\n", "ID", "NAME@VERSION", "HOST",
               "STATUS", "STARTED", "DURATION", "ERROR");
        for (size_t i = 0; i < l->n_runs; i++) {
            const Ferry__Wire__RunRecord *x = l->runs[i];
            char ref[160], started[32], dur[32];
            snprintf(ref, sizeof ref, "%s@%s", x->name, x->version);
            iso_ms(x->started_ms, started, sizeof started);
            snprintf(dur, sizeof dur, "%.1fs", (double)x->duration_ms / 1000);
            printf("%-16s  %-20s  %-12s  %-9s  %-20s  %10s  %s\n", x->id, ref, x->host, x->status,
                   started, strcmp(x->status, "running") == 0 ? "-" : dur,
                   x->error && *x->error ? x->error : "-");
        }
    }
    client_response_free(r);
    return 0;
}

struct nb_sink {
    struct hasher h;
    FILE *f;
};

static int sink_nb(void *arg, Ferry__Wire__Response *chunk, const uint8_t *data, size_t len)
{
    struct nb_sink *s = arg;
    hasher_update(&s->h, data, len);
    int rc = fwrite(data, 1, len, s->f) == len ? 0 : -EIO;
    client_response_free(chunk);
    return rc;
}

static int runs_get(struct cli_opts *o, const char *id)
{
    if (!runrec_id_ok(id))
        return cli_fail(err_set(FERRY_E_INVALID, "runs get: '%s' is not a run id (%d hex characters)",
                                id, RUN_ID_LEN));
    Ferry__Wire__Response *r = NULL;
    int rc = list_runs(o, NULL, id, 1, &r);
    if (rc < 0)
        return cli_fail(rc);
    const Ferry__Wire__RunRecord *x = r->runs->n_runs == 1 ? r->runs->runs[0] : NULL;
    struct digest want;
    if (!x)
        rc = err_set(FERRY_E_NOTFOUND, "run %s: no such run", id);
    else if (x->notebook_digest.len == 0)
        rc = err_set(FERRY_E_NOTFOUND, "run %s: no executed notebook in the registry (%s)", id,
                     strcmp(x->status, "running") == 0 ? "the run is still running"
                     : x->note && *x->note               ? x->note
                                                         : "the host sent none");
    else if (digest_from_bytes(x->notebook_digest.data, x->notebook_digest.len, &want) < 0)
        rc = err_set(FERRY_E_PROTOCOL, "run %s: the registry sent a malformed digest", id);
    uint64_t size = x ? x->notebook_size : 0;
    client_response_free(r);
    if (rc < 0)
        return cli_fail(rc);
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s", o->out ? o->out : "");
    if (!o->out)
        snprintf(path, sizeof path, "run-%s.ipynb", id);
    snprintf(tmp, sizeof tmp, "%s.part", path);
    struct nb_sink s;
    hasher_init(&s.h);
    s.f = fopen(tmp, "wbe");
    if (!s.f)
        return cli_fail(err_set(-errno, "runs get: cannot write %s: %s", tmp, strerror(errno)));
    struct client c;
    rc = client_open(&c, o->registry);
    if (rc == 0) {
        rc = client_fetch_blob(&c, &want, size, 0, sink_nb, &s, NULL);
        client_close(&c);
    }
    if (fclose(s.f) != 0 && rc == 0)
        rc = err_set(-EIO, "runs get: cannot write %s", tmp);
    struct digest got;
    hasher_final(&s.h, &got);
    /* The registry is not trusted with the bytes: they must be the ones
     * the host reported (the digest in the run record). */
    if (rc == 0 && !digest_equal(&got, &want))
        rc = err_set(FERRY_E_DIGEST, "run %s: the notebook the registry sent does not match its "
                     "digest", id);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = err_set(-errno, "runs get: cannot write %s: %s", path, strerror(errno));
    if (rc < 0) {
        unlink(tmp);
        return cli_fail(rc);
    }
    printf("%s\n", path);
    return 0;
}

int cli_runs(int argc, char **argv)
{
    struct cli_opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_JSON, OPT_OUT, OPT_LIMIT, 0};
    int rc = cli_parse_opts("runs", argc, argv, &o, allowed);
    if (rc)
        return rc;
    int n = argc - optind;
    if (n == 2 && strcmp(argv[optind], "get") == 0)
        return runs_get(&o, argv[optind + 1]);
    if (n == 1)
        return runs_list(&o, argv[optind]);
    return cli_usage("runs", "expected NAME or get RUN_ID [-o FILE]");
}
