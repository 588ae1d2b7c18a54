/* ferry kernel start|stop|interrupt|restart|list|open: Jupyter kernels on hosts, through the
 * action path (cli/actioncall.c) to a notebook workload's plugin
 * (plugins/notebook/kernel.c). The connection info comes back sealed to
 * this key (crypto_box_seal to the X25519 form of its Ed25519 public key)
 * and is opened here with its secret key: the registry only carries
 * ciphertext. docs/notebooks.md ("Kernels"), docs/cli.md. */
#include "action.h"
#include "cli.h"
#include "client.h"
#include "clock.h"
#include "error.h"
#include "key.h"
#include "numparse.h"
#include "selector.h"
#include "spec.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KERNEL_TIMEOUT_MS 60000
#define KERNEL_HOSTS_MAX 256

/* One verb to one host's workload; *out gets the plugin's JSON answer, or
 * the error it answered with as a failure naming the host. */
static int kernel_call(struct cli_opts *o, const struct key_secret *k, const char *host,
                       const char *workload, const char *verb, const char *request, json_t **out)
{
    struct client c;
    int rc = client_open(&c, o->registry);
    if (rc < 0)
        return rc;
    uint64_t timeout_ms = o->timeout_ms ? o->timeout_ms : KERNEL_TIMEOUT_MS;
    uint8_t id[ACTION_ID_LEN];
    Ferry__Wire__Response *resp = NULL;
    rc = cli_action_submit(&c, k, host, workload, verb, request, (uint32_t)timeout_ms + 5000,
                           ACTIONS_WAIT_HINT_MS, id, &resp);
    if (rc == 0)
        rc = cli_action_await(&c, host, id, clock_mono_ms() + timeout_ms,
                              (int)((timeout_ms + 999) / 1000), &resp);
    *out = NULL;
    if (rc == 0) {
        const Ferry__Wire__ActionReplyBody *b = resp->action_result->reply;
        json_t *j = NULL;
        if (b->code != FERRY__WIRE__CODE__OK)
            rc = err_set(wire_error_of(b->code), "host %s: %s", host,
                         b->error && *b->error ? b->error : "the action failed");
        else if (!(j = json_loadb((const char *)b->data.data, b->data.len, 0, NULL)) ||
                 !json_is_object(j))
            rc = err_set(FERRY_E_PROTOCOL, "host %s: the kernel answer is not a JSON object", host);
        else if (json_is_string(json_object_get(j, "error")))
            rc = err_set(FERRY_E_REMOTE, "host %s: %s", host,
                         json_string_value(json_object_get(j, "error")));
        if (rc == 0)
            *out = j;
        else
            json_decref(j);
    }
    client_response_free(resp);
    client_close(&c);
    return rc;
}

/* Open the sealed connection info with k and write it to path, 0600. */
static int open_sealed(const struct key_secret *k, const char *b64, const char *path)
{
    size_t blen = strlen(b64), clen = 0;
    uint8_t *c = malloc(blen + 1);
    if (!c)
        return -ENOMEM;
    if (sodium_base642bin(c, blen, b64, blen, NULL, &clen, NULL, sodium_base64_VARIANT_ORIGINAL) !=
            0 ||
        clen <= crypto_box_SEALBYTES) {
        free(c);
        return err_set(FERRY_E_PROTOCOL, "kernel: the sealed connection info is malformed");
    }
    uint8_t xpk[crypto_box_PUBLICKEYBYTES], xsk[crypto_box_SECRETKEYBYTES];
    size_t plen = clen - crypto_box_SEALBYTES;
    uint8_t *plain = sodium_malloc(plen);
    int rc = 0;
    if (!plain)
        rc = -ENOMEM;
    else if (crypto_sign_ed25519_pk_to_curve25519(xpk, k->pub.pk) != 0 ||
             crypto_sign_ed25519_sk_to_curve25519(xsk, k->sk) != 0 ||
             crypto_box_seal_open(plain, c, clen, xpk, xsk) != 0)
        rc = err_set(FERRY_E_SIGNATURE, "kernel: the connection info was not sealed to key %s",
                     k->pub.id);
    sodium_memzero(xsk, sizeof xsk);
    free(c);
    if (rc == 0) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 || fchmod(fd, 0600) < 0 || write(fd, plain, plen) != (ssize_t)plen)
            rc = err_set(-errno, "kernel: cannot write %s: %s", path, strerror(errno));
        if (fd >= 0 && close(fd) < 0 && rc == 0)
            rc = err_set(-errno, "kernel: cannot write %s: %s", path, strerror(errno));
    }
    if (plain)
        sodium_free(plain);
    return rc;
}

static int load_key(struct cli_opts *o, const char *verb, struct key_secret *k)
{
    if (!o->key || !*o->key)
        return cli_usage(verb, "no key: give --key FILE.key or set FERRY_KEY");
    int rc = key_load_secret(o->key, k);
    return rc < 0 ? cli_fail(rc) : 0;
}

static int kernel_start(struct cli_opts *o, const char *ref, const char *idle)
{
    char name[128];
    const char *at = strchr(ref, '@');
    if (!at || (size_t)(at - ref) >= sizeof name)
        return cli_usage("kernel", "expected NAME@VERSION");
    snprintf(name, sizeof name, "%.*s", (int)(at - ref), ref);
    const char *version = at + 1;
    if (!spec_name_ok(name) || !*version)
        return cli_fail(err_set(FERRY_E_INVALID, "kernel start: '%s' is not NAME@VERSION", ref));
    if (!o->to)
        return cli_usage("kernel", "start needs --to SELECTOR");
    uint64_t idle_ms = 0;
    int prc = idle ? num_parse_duration_ms("--idle", idle, 1000, 0, 30ull * 86400 * 1000, &idle_ms)
                   : 0;
    if (prc < 0)
        return cli_fail(prc);
    struct label_set sel;
    char selector[2048];
    int rc = labels_parse(o->to, &sel);
    if (rc < 0)
        return cli_fail(rc);
    labels_format(&sel, selector, sizeof selector);
    struct key_secret k;
    if ((rc = load_key(o, "kernel", &k)) != 0)
        return rc;
    Ferry__Wire__Response *r = NULL;
    if ((rc = fetch_hosts(o, &r)) < 0) {
        key_secret_wipe(&k);
        return cli_fail(rc);
    }
    static const Ferry__Wire__HostInfo *match[KERNEL_HOSTS_MAX];
    int n = cli_hosts_matching(r->hosts, selector, match, KERNEL_HOSTS_MAX);
    const Ferry__Wire__HostInfo *pick = NULL;
    for (int i = 0; i < n && !pick; i++)
        for (size_t w = 0; w < match[i]->n_workloads; w++) {
            const Ferry__Wire__WorkloadReport *wr = match[i]->workloads[w];
            if (strcmp(wr->name, name) == 0 && strcmp(wr->version, version) == 0 &&
                strcmp(wr->state, "running") == 0)
                pick = match[i];
        }
    char host[128] = "";
    if (pick)
        snprintf(host, sizeof host, "%s", pick->name);
    client_response_free(r);
    if (!pick) {
        key_secret_wipe(&k);
        return cli_fail(err_set(FERRY_E_NOTFOUND,
                                "kernel start: no online host matching %s runs %s@%s", selector,
                                name, version));
    }
    json_t *ans = NULL;
    char req[64] = "{}";
    if (idle)
        snprintf(req, sizeof req, "{\"idle_ms\": %llu}", (unsigned long long)idle_ms);
    rc = kernel_call(o, &k, host, name, "kernel-start", req, &ans);
    const char *id = json_string_value(json_object_get(ans, "id"));
    const char *sealed = json_string_value(json_object_get(ans, "sealed"));
    if (rc == 0 && (!id || !sealed || !spec_name_ok(id)))
        rc = err_set(FERRY_E_PROTOCOL, "host %s: the kernel answer has no id or connection info",
                     host);
    char path[4096];
    if (rc == 0) {
        snprintf(path, sizeof path, "%s", o->out ? o->out : "");
        if (!o->out)
            snprintf(path, sizeof path, "kernel-%s.json", id);
        rc = open_sealed(&k, sealed, path);
    }
    key_secret_wipe(&k);
    if (rc == 0)
        printf("%s\n", id);
    json_decref(ans);
    return rc < 0 ? cli_fail(rc) : 0;
}

/* Every running workload on every online host that answers kernel-list
 * (only notebook workloads do): their kernels, each with its host. */
static int kernel_collect(struct cli_opts *o, const struct key_secret *k, json_t *all)
{
    Ferry__Wire__Response *r = NULL;
    int rc = fetch_hosts(o, &r);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < r->hosts->n_hosts; i++) {
        const Ferry__Wire__HostInfo *h = r->hosts->hosts[i];
        if (!h->online)
            continue;
        for (size_t w = 0; w < h->n_workloads; w++) {
            if (strcmp(h->workloads[w]->state, "running") != 0)
                continue;
            json_t *ans = NULL;
            if (kernel_call(o, k, h->name, h->workloads[w]->name, "kernel-list", "{}", &ans) < 0)
                continue; /* not a notebook workload */
            json_t *ks = json_object_get(ans, "kernels"), *x;
            size_t idx;
            json_array_foreach(ks, idx, x)
            {
                json_object_set_new(x, "host", json_string(h->name));
                json_array_append(all, x);
            }
            json_decref(ans);
        }
    }
    err_clear();
    client_response_free(r);
    return 0;
}

static int kernel_list(struct cli_opts *o)
{
    struct key_secret k;
    int rc = load_key(o, "kernel", &k);
    if (rc != 0)
        return rc;
    json_t *all = json_array();
    rc = kernel_collect(o, &k, all);
    key_secret_wipe(&k);
    if (rc < 0) {
        json_decref(all);
        return cli_fail(rc);
    }
    if (o->json) {
        json_t *doc = json_pack("{s:o}", "kernels", all);
        json_dumpf(doc, stdout, JSON_COMPACT);
        putchar('\n');
        json_decref(doc);
        return 0;
    }
    printf("%-16s  %-20s  %-12s  %s\n", "ID", "NAME@VERSION", "HOST", "ALIVE");
    size_t i;
    json_t *x;
    json_array_foreach(all, i, x)
    {
        char ref[256];
        snprintf(ref, sizeof ref, "%s@%s", json_string_value(json_object_get(x, "name")),
                 json_string_value(json_object_get(x, "version")));
        printf("%-16s  %-20s  %-12s  %s\n", json_string_value(json_object_get(x, "id")), ref,
               json_string_value(json_object_get(x, "host")),
               json_is_true(json_object_get(x, "alive")) ? "yes" : "no");
    }
    json_decref(all);
    return 0;
}

/* stop, interrupt or restart ID: find its host, then ask it. */
static int kernel_control(struct cli_opts *o, const char *verb, const char *id)
{
    if (!spec_name_ok(id))
        return cli_fail(err_set(FERRY_E_INVALID, "kernel %s: '%s' is not a kernel id", verb, id));
    struct key_secret k;
    int rc = load_key(o, "kernel", &k);
    if (rc != 0)
        return rc;
    json_t *all = json_array(), *x, *hit = NULL;
    size_t i;
    rc = kernel_collect(o, &k, all);
    json_array_foreach(all, i, x)
    {
        if (strcmp(json_string_value(json_object_get(x, "id")), id) == 0)
            hit = x;
    }
    if (rc == 0 && !hit)
        rc = err_set(FERRY_E_NOTFOUND, "kernel %s: no host runs such a kernel", id);
    if (rc == 0) {
        json_t *req = json_pack("{s:s}", "id", id), *ans = NULL;
        char *text = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        char full[32];
        snprintf(full, sizeof full, "kernel-%s", verb);
        rc = text ? kernel_call(o, &k, json_string_value(json_object_get(hit, "host")),
                                json_string_value(json_object_get(hit, "name")), full, text, &ans)
                  : -ENOMEM;
        free(text);
        json_decref(ans);
    }
    key_secret_wipe(&k);
    json_decref(all);
    if (rc == 0)
        printf("kernel %s %s\n", id,
               strcmp(verb, "stop") == 0 ? "stopped"
               : strcmp(verb, "interrupt") == 0 ? "interrupted" : "restarted");
    return rc < 0 ? cli_fail(rc) : 0;
}

/* kernel open SEALED [-o conn.json]: the sealed text of a kernel-start
 * answer got some other way (`ferry action NAME kernel-start`), opened with
 * the key. */
static int kernel_open(struct cli_opts *o, const char *file)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = fopen(file, "re");
    if (!f)
        return cli_fail(err_set(-errno, "kernel open: cannot read %s: %s", file, strerror(errno)));
    text = calloc(1, 1u << 16);
    len = text ? fread(text, 1, (1u << 16) - 1, f) : 0;
    fclose(f);
    if (!text)
        return cli_fail(-ENOMEM);
    while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
        text[--len] = '\0';
    struct key_secret k;
    int rc = load_key(o, "kernel", &k);
    if (rc != 0) {
        free(text);
        return rc;
    }
    rc = open_sealed(&k, text, o->out ? o->out : "kernel.json");
    key_secret_wipe(&k);
    free(text);
    return rc < 0 ? cli_fail(rc) : 0;
}

int cli_kernel(int argc, char **argv)
{
    /* --idle is this verb's alone: taken out before the shared options. */
    const char *idle = NULL;
    int kept = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--idle") == 0 && i + 1 < argc) {
            idle = argv[++i];
            continue;
        }
        if (strncmp(argv[i], "--idle=", 7) == 0) {
            idle = argv[i] + 7;
            continue;
        }
        argv[kept++] = argv[i];
    }
    argc = kept;
    struct cli_opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_KEY, OPT_TO, OPT_OUT, OPT_JSON, OPT_TIMEOUT, 0};
    int rc = cli_parse_opts("kernel", argc, argv, &o, allowed);
    if (rc)
        return rc;
    int n = argc - optind;
    const char *sub = n > 0 ? argv[optind] : "";
    if (strcmp(sub, "start") == 0 && n == 2)
        return kernel_start(&o, argv[optind + 1], idle);
    if ((strcmp(sub, "stop") == 0 || strcmp(sub, "interrupt") == 0 ||
         strcmp(sub, "restart") == 0) && n == 2)
        return kernel_control(&o, sub, argv[optind + 1]);
    if (strcmp(sub, "open") == 0 && n == 2)
        return kernel_open(&o, argv[optind + 1]);
    if (strcmp(sub, "list") == 0 && n == 1)
        return kernel_list(&o);
    return cli_usage("kernel", "expected start NAME@VERSION --to SELECTOR, stop|interrupt|restart ID, list or open SEALED");
}

/* ---- kernels in ferry status ---------------------------------------------- */

json_t *kernels_status_json(const Ferry__Wire__HostInfo *h, const Ferry__Wire__WorkloadReport *w)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < w->n_kernels; i++) {
        const Ferry__Wire__KernelReport *k = w->kernels[i];
        json_array_append_new(
            a, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:i}", "id", k->id, "name",
                         w->name, "version", w->version, "host", h->name, "state", k->state,
                         "owner", k->owner, "started", (json_int_t)k->started_ms,
                         "last_activity", (json_int_t)k->last_activity_ms, "restarts",
                         (int)k->restarts));
    }
    return a;
}

/* One line per kernel under its workload's, the host column left blank so
 * a line that starts with a host name is still a workload. */
void kernels_status_print(const Ferry__Wire__WorkloadReport *w)
{
    for (size_t i = 0; i < w->n_kernels; i++) {
        const Ferry__Wire__KernelReport *k = w->kernels[i];
        char last[32];
        iso_ms(k->last_activity_ms, last, sizeof last);
        printf("%-16s   kernel %s  %-5s  key %s  restarts %u  last activity %s\n", "", k->id,
               k->state, k->owner, k->restarts, last);
    }
}
