/* ferry logs: a workload's output, read from its host(s) through the
 * registry. Each read is an action (lib/action.h) signed by the operator
 * key; the host answers it on its own channel (it opens no port). With
 * --follow the CLI asks again every half second from the cursor the last
 * answer gave. docs/cli.md ("ferry logs"). */
#include "action.h"
#include "cli.h"
#include "client.h"
#include "clock.h"
#include "error.h"
#include "key.h"
#include "numparse.h"
#include "spec.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXIT_USAGE 2
#define LOGS_DEFAULT_TAIL 100
#define LOGS_DEFAULT_TIMEOUT_S 10
#define LOGS_MAX_TIMEOUT_S 240          /* an action lives at most 5 minutes */
#define LOGS_FOLLOW_INTERVAL_MS 500
#define LOGS_PARTIAL_MAX (64u << 10)     /* an unfinished line held back while following */
#define LOGS_HOSTS_MAX 256

struct logs_opts {
    const char *registry, *key, *host;
    uint64_t tail;
    int stderr_stream, follow, timeout_s;
};

/* One host being read. */
struct target {
    char name[72];
    uint64_t offset;
    char rotation[64];
    char *partial;   /* follow: the start of a line not finished yet */
    size_t partial_len;
    uint8_t id[ACTION_ID_LEN];
    int submitted, failed;
};

static volatile sig_atomic_t stop_requested;
static void on_stop(int sig) { (void)sig; stop_requested = 1; }

enum { L_REGISTRY = 256, L_KEY, L_HOST, L_TAIL, L_STDERR, L_FOLLOW, L_TIMEOUT };

static int parse(int argc, char **argv, struct logs_opts *o)
{
    static const struct option opts[] = {
        {"registry", required_argument, NULL, L_REGISTRY},
        {"key", required_argument, NULL, L_KEY},
        {"host", required_argument, NULL, L_HOST},
        {"tail", required_argument, NULL, L_TAIL},
        {"stderr", no_argument, NULL, L_STDERR},
        {"follow", no_argument, NULL, L_FOLLOW},
        {"timeout", required_argument, NULL, L_TIMEOUT},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->registry = getenv("FERRY_REGISTRY");
    o->key = getenv("FERRY_KEY");
    o->tail = LOGS_DEFAULT_TAIL;
    o->timeout_s = LOGS_DEFAULT_TIMEOUT_S;
    optind = 1;
    opterr = 0;
    int c;
    char msg[200];
    while ((c = getopt_long(argc, argv, "f", opts, NULL)) != -1) {
        uint64_t v;
        switch (c) {
        case L_REGISTRY: o->registry = optarg; break;
        case L_KEY: o->key = optarg; break;
        case L_HOST: o->host = optarg; break;
        case L_STDERR: o->stderr_stream = 1; break;
        case 'f':
        case L_FOLLOW: o->follow = 1; break;
        case L_TAIL:
            if (num_parse_u64("--tail", optarg, 1, ACTION_LOGS_TAIL_MAX, &o->tail) < 0) {
                snprintf(msg, sizeof msg, "--tail '%.40s': expected a number of lines from 1 to %d",
                         optarg, ACTION_LOGS_TAIL_MAX);
                return cli_usage("logs", msg);
            }
            break;
        case L_TIMEOUT:
            /* Seconds, or a duration with its unit (500ms is too short). */
            if (num_parse_duration_ms("--timeout", optarg, 1000, 1000,
                                      LOGS_MAX_TIMEOUT_S * 1000ull, &v) < 0) {
                snprintf(msg, sizeof msg, "--timeout '%.40s': expected 1 to %d seconds (e.g. 30, 30s, 2m)",
                         optarg, LOGS_MAX_TIMEOUT_S);
                return cli_usage("logs", msg);
            }
            o->timeout_s = (int)(v / 1000);
            break;
        default:
            snprintf(msg, sizeof msg, "unknown or incomplete option '%s'", argv[optind - 1]);
            return cli_usage("logs", msg);
        }
    }
    if (!o->registry || !*o->registry)
        o->registry = WIRE_DEFAULT_URL;
    return 0;
}

static int runs_here(const Ferry__Wire__HostInfo *h, const char *name)
{
    for (size_t i = 0; i < h->n_workloads; i++)
        if (strcmp(h->workloads[i]->name, name) == 0)
            return 1;
    return 0;
}

/* The hosts to ask: --host, or every host reporting name. A host that is
 * offline is an error (one line each); so is no host at all. */
static int pick_targets(struct client *c, const struct logs_opts *o, const char *name,
                        struct target **out, size_t *n_out, int *offline)
{
    Ferry__Wire__Request req;
    Ferry__Wire__ListHosts lh;
    ferry__wire__request__init(&req);
    ferry__wire__list_hosts__init(&lh);
    req.body_case = FERRY__WIRE__REQUEST__BODY_LIST_HOSTS;
    req.list_hosts = &lh;
    Ferry__Wire__Response *r = NULL;
    int rc = client_call(c, &req, &r);
    if (rc == 0 && r->body_case != FERRY__WIRE__RESPONSE__BODY_HOSTS)
        rc = err_set(FERRY_E_PROTOCOL, "registry sent an unexpected reply");
    if (rc < 0) {
        client_response_free(r);
        return rc;
    }
    const Ferry__Wire__HostList *hl = r->hosts;
    struct target *t = calloc(hl->n_hosts ? hl->n_hosts : 1, sizeof *t);
    if (!t) {
        client_response_free(r);
        return -ENOMEM;
    }
    size_t n = 0, skipped = 0;
    int known_host = 0;
    rc = 0;
    for (size_t i = 0; i < hl->n_hosts; i++) {
        const Ferry__Wire__HostInfo *h = hl->hosts[i];
        if (o->host && strcmp(h->name, o->host) != 0)
            continue;
        if (o->host)
            known_host = 1;
        if (!runs_here(h, name)) {
            if (o->host)
                rc = err_set(FERRY_E_NOTFOUND, "workload %s does not run on host %s", name,
                             h->name);
            continue;
        }
        if (!h->online) {
            char when[32];
            iso_ms(h->last_seen_ms, when, sizeof when);
            fprintf(stderr, "ferry: host %s is offline (last seen %s): cannot read %s's output there\n",
                    h->name, when, name);
            (*offline)++;
            continue;
        }
        if (n == LOGS_HOSTS_MAX) {
            skipped++;
            continue;
        }
        snprintf(t[n++].name, sizeof t[0].name, "%s", h->name);
    }
    if (skipped)
        fprintf(stderr, "ferry: %s runs on %zu more hosts than the %d asked; use --host\n", name,
                skipped, LOGS_HOSTS_MAX);
    if (rc == 0 && o->host && !known_host)
        rc = err_set(FERRY_E_NOTFOUND, "host %s is not known to the registry", o->host);
    if (rc == 0 && n == 0 && *offline == 0)
        rc = err_set(FERRY_E_NOTFOUND, "unknown workload %s: no host reports it", name);
    client_response_free(r);
    if (rc < 0) {
        free(t);
        return rc;
    }
    *out = t;
    *n_out = n;
    return 0;
}

/* The request of one read: a tail first, then from the cursor. */
static char *request_json(const struct logs_opts *o, const struct target *t, int from_cursor)
{
    json_t *j = json_pack("{s:s}", "stream", o->stderr_stream ? "stderr" : "stdout");
    if (!j)
        return NULL;
    if (from_cursor) {
        json_object_set_new(j, "offset", json_integer((json_int_t)t->offset));
        json_object_set_new(j, "rotation", json_string(t->rotation));
    } else {
        json_object_set_new(j, "tail", json_integer((json_int_t)o->tail));
    }
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return text;
}

static int submit(struct client *c, const struct key_secret *k, const char *name,
                  const struct logs_opts *o, struct target *t, int from_cursor, uint32_t wait_ms,
                  Ferry__Wire__Response **resp)
{
    char *req_json = request_json(o, t, from_cursor);
    if (!req_json)
        return -ENOMEM;
    int rc = cli_action_submit(c, k, t->name, name, "logs", req_json,
                               (uint32_t)(o->timeout_s + 5) * 1000, wait_ms, t->id, resp);
    free(req_json);
    return rc;
}

/* Print data, each line prefixed with "HOST | " when prefix is set. An
 * unfinished last line is held back while following, ended otherwise. */
static void print_lines(struct target *t, const uint8_t *data, size_t len, int prefix, int hold)
{
    char *buf = NULL;
    size_t n = 0;
    if (t->partial_len) {
        buf = malloc(t->partial_len + len);
        if (!buf)
            return;
        memcpy(buf, t->partial, t->partial_len);
        if (len)
            memcpy(buf + t->partial_len, data, len);
        n = t->partial_len + len;
        free(t->partial);
        t->partial = NULL;
        t->partial_len = 0;
        data = (const uint8_t *)buf;
        len = n;
    }
    size_t i = 0;
    while (i < len) {
        const uint8_t *nl = memchr(data + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - data) : len;
        if (!nl && hold && len - i < LOGS_PARTIAL_MAX) {
            t->partial = malloc(len - i);
            if (t->partial) {
                memcpy(t->partial, data + i, len - i);
                t->partial_len = len - i;
            }
            break;
        }
        if (prefix)
            printf("%s | ", t->name);
        fwrite(data + i, 1, end - i, stdout);
        fputc('\n', stdout);
        i = end + 1;
    }
    fflush(stdout);
    free(buf);
}

/* Take a host's reply: print its lines and keep its cursor. */
static int take_reply(struct target *t, const Ferry__Wire__ActionReplyBody *b, int prefix,
                      int hold)
{
    if (b->code != FERRY__WIRE__CODE__OK)
        return err_set(wire_error_of(b->code), "host %s: %s", t->name,
                       b->error && *b->error ? b->error : "the action failed");
    json_error_t e;
    json_t *j = json_loads(b->reply_json ? b->reply_json : "", 0, &e);
    json_t *off = json_object_get(j, "offset"), *rot = json_object_get(j, "rotation");
    if (!json_is_integer(off) || !json_is_string(rot)) {
        json_decref(j);
        return err_set(FERRY_E_PROTOCOL, "host %s: a logs reply without a cursor", t->name);
    }
    t->offset = (uint64_t)json_integer_value(off);
    snprintf(t->rotation, sizeof t->rotation, "%s", json_string_value(rot));
    if (json_is_true(json_object_get(j, "truncated")) && hold)
        fprintf(stderr, "ferry: host %s: output came faster than it could be read; older lines "
                        "were skipped\n",
                t->name);
    json_decref(j);
    print_lines(t, b->data.data, b->data.len, prefix, hold);
    return 0;
}

/* One read of every target that has not failed. Returns how many failed
 * in this round. */
static int round_all(struct client *c, const struct key_secret *k, const char *name,
                     const struct logs_opts *o, struct target *t, size_t n, int from_cursor,
                     int prefix)
{
    int failed = 0;
    uint64_t deadline = clock_mono_ms() + (uint64_t)o->timeout_s * 1000;
    Ferry__Wire__Response **resp = calloc(n ? n : 1, sizeof *resp);
    if (!resp)
        return (int)n;
    /* Ask every host first (one waits: the usual single host is then one
     * exchange), then collect, so hosts work at the same time. */
    for (size_t i = 0; i < n; i++) {
        t[i].submitted = 0;
        if (t[i].failed)
            continue;
        int rc = submit(c, k, name, o, &t[i], from_cursor, n == 1 ? ACTIONS_WAIT_HINT_MS : 0,
                        &resp[i]);
        if (rc < 0) {
            cli_fail(rc);
            t[i].failed = 1;
            failed++;
            continue;
        }
        t[i].submitted = 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!t[i].submitted)
            continue;
        int rc = cli_action_await(c, t[i].name, t[i].id, deadline, o->timeout_s, &resp[i]);
        if (rc == 0)
            rc = take_reply(&t[i], resp[i]->action_result->reply, prefix, o->follow);
        if (rc < 0) {
            cli_fail(rc);
            t[i].failed = 1;
            failed++;
        }
        client_response_free(resp[i]);
    }
    free(resp);
    return failed;
}

int cli_logs(int argc, char **argv)
{
    struct logs_opts o;
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc;
    if (optind + 1 != argc)
        return cli_usage("logs", "expected exactly one workload NAME");
    const char *name = argv[optind];
    if (!spec_name_ok(name))
        return cli_fail(err_set(FERRY_E_INVALID, "logs: '%s' is not a valid workload name", name));
    if (o.host && !spec_name_ok(o.host))
        return cli_fail(err_set(FERRY_E_INVALID, "logs: '%s' is not a valid host name", o.host));
    if (!o.key || !*o.key)
        return cli_usage("logs", "no operator key: give --key FILE.key or set FERRY_KEY");
    struct key_secret k;
    if ((rc = key_load_secret(o.key, &k)) < 0)
        return cli_fail(rc);
    struct client c;
    if ((rc = client_open(&c, o.registry)) < 0) {
        key_secret_wipe(&k);
        return cli_fail(rc);
    }
    struct target *t = NULL;
    size_t n = 0;
    int offline = 0;
    rc = pick_targets(&c, &o, name, &t, &n, &offline);
    if (rc < 0) {
        client_close(&c);
        key_secret_wipe(&k);
        return cli_fail(rc);
    }
    int prefix = o.host == NULL;
    int failed = n ? round_all(&c, &k, name, &o, t, n, 0, prefix) : 0;
    if (o.follow && (size_t)failed < n) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_stop;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        while (!stop_requested && (size_t)failed < n) {
            struct timespec ts = {0, LOGS_FOLLOW_INTERVAL_MS * 1000000L};
            nanosleep(&ts, NULL); /* a signal cuts it short */
            if (stop_requested)
                break;
            failed += round_all(&c, &k, name, &o, t, n, 1, prefix);
        }
        /* What was held back of an unfinished line is output too. */
        for (size_t i = 0; i < n; i++)
            if (t[i].partial_len)
                print_lines(&t[i], NULL, 0, prefix, 0);
    }
    for (size_t i = 0; i < n; i++)
        free(t[i].partial);
    free(t);
    client_close(&c);
    key_secret_wipe(&k);
    return failed || offline ? 1 : 0;
}
