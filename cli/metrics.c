/* ferry metrics NAME [--host HOST] [--json] [--registry URL]: the newest
 * metrics each host reported for NAME, with their labels. The JSON shape
 * is documented in docs/cli.md ("ferry metrics"). */
#include "cli.h"
#include "client.h"
#include "error.h"
#include "metricwire.h"
#include "spec.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(const char *msg) { return cli_usage("metrics", msg); }

/* Whole numbers (bytes, counts) in full, the rest with six digits. */
static void number(double v, char *out, size_t cap)
{
    if (isfinite(v) && v == floor(v) && fabs(v) < 1e15)
        snprintf(out, cap, "%.0f", v);
    else
        snprintf(out, cap, "%.6g", v);
}

static void labels_of(const Ferry__Wire__Metric *m, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < m->n_labels && used < cap; i++) {
        int n = snprintf(out + used, cap - used, "%s%s=%s", i ? "," : "", m->labels[i]->key,
                         m->labels[i]->value ? m->labels[i]->value : "");
        if (n < 0)
            break;
        used += (size_t)n;
    }
    if (!out[0])
        snprintf(out, cap, "-");
}

static void value_of(const Ferry__Wire__Metric *m, char *out, size_t cap)
{
    char v[64];
    number(m->value, v, sizeof v);
    if (m->type != FERRY__WIRE__METRIC_TYPE__METRIC_HISTOGRAM) {
        snprintf(out, cap, "%s", v);
        return;
    }
    size_t used = 0;
    int n = snprintf(out, cap, "count=%llu sum=%s", (unsigned long long)m->count, v);
    used = n > 0 ? (size_t)n : 0;
    for (size_t i = 0; i < m->n_buckets && used < cap; i++) {
        char le[64];
        number(m->buckets[i]->le, le, sizeof le);
        n = snprintf(out + used, cap - used, " le%s=%llu", le, (unsigned long long)m->buckets[i]->count);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

static const char *label(const Ferry__Wire__Metric *m, const char *key)
{
    for (size_t i = 0; i < m->n_labels; i++)
        if (m->labels[i]->key && strcmp(m->labels[i]->key, key) == 0)
            return m->labels[i]->value;
    return NULL;
}

/* A model's drift warning, as ferry status carries it (the model plugin's
 * rule, plugins/model/model.c): once the server has served a whole window,
 * every input whose PSI is over the model's alert. From the server's own
 * gauges, so it needs nothing the metrics do not say. */
static void print_drift(const Ferry__Wire__HostMetrics *e)
{
    const Ferry__Wire__WorkloadMetrics *w = e->workload;
    double rows = 0, window = -1, alert = -1;
    for (size_t k = 0; k < w->n_metrics; k++) {
        const Ferry__Wire__Metric *m = w->metrics[k];
        if (strcmp(m->name, "ferry_model_drift_window_rows") == 0 && m->value > rows)
            rows = m->value;
        else if (strcmp(m->name, "ferry_model_drift_window_size") == 0)
            window = m->value;
        else if (strcmp(m->name, "ferry_model_drift_alert") == 0)
            alert = m->value;
    }
    if (window <= 0 || alert <= 0 || rows < window)
        return;
    for (size_t k = 0; k < w->n_metrics; k++) {
        const Ferry__Wire__Metric *m = w->metrics[k];
        const char *input = label(m, "input");
        if (strcmp(m->name, "ferry_model_drift_psi") != 0 || !input || !isfinite(m->value) ||
            m->value <= alert)
            continue;
        printf("%-16s %-12s warning: drift: %.64s psi %.2f > %g\n", e->host, w->version, input,
               m->value, alert);
    }
}

static void print_text(const Ferry__Wire__MetricsList *l)
{
    printf("%-16s %-12s %-36s %-9s %-16s %s\n", "HOST", "VERSION", "METRIC", "TYPE", "VALUE", "LABELS");
    for (size_t i = 0; i < l->n_entries; i++) {
        const Ferry__Wire__HostMetrics *e = l->entries[i];
        const Ferry__Wire__WorkloadMetrics *w = e->workload;
        if (!w)
            continue;
        for (size_t k = 0; k < w->n_metrics; k++) {
            const Ferry__Wire__Metric *m = w->metrics[k];
            char value[1024], labels[1200];
            value_of(m, value, sizeof value);
            labels_of(m, labels, sizeof labels);
            printf("%-16s %-12s %-36s %-9s %-16s %s\n", e->host, w->version, m->name, metric_type_name(m->type),
                   value, labels);
        }
        if (w->n_metrics == 0)
            printf("%-16s %-12s %-36s %-9s %-16s %s\n", e->host, w->version, "(none)", "-", "-", "-");
        print_drift(e);
        char when[40];
        iso_ms(w->collected_ms, when, sizeof when);
        if (w->dropped || e->refused)
            printf("%-16s %-12s (collected %s; %u samples dropped by the agent, %u refused by the registry)\n",
                   e->host, w->version, when, w->dropped, e->refused);
    }
}

static json_t *to_json(const Ferry__Wire__MetricsList *l)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < l->n_entries; i++) {
        const Ferry__Wire__HostMetrics *e = l->entries[i];
        if (!e->workload)
            continue;
        json_t *o = metricwire_json(e->workload);
        if (!o)
            continue;
        json_object_set_new(o, "host", json_string(e->host ? e->host : ""));
        json_object_set_new(o, "received_ms", json_integer((json_int_t)e->received_ms));
        json_object_set_new(o, "refused", json_integer((json_int_t)e->refused));
        json_array_append_new(arr, o);
    }
    return json_pack("{s:o}", "metrics", arr);
}

int cli_metrics(int argc, char **argv)
{
    enum { M_REGISTRY = 256, M_JSON, M_HOST };
    static const struct option opts[] = {
        {"registry", required_argument, NULL, M_REGISTRY},
        {"json", no_argument, NULL, M_JSON},
        {"host", required_argument, NULL, M_HOST},
        {NULL, 0, NULL, 0},
    };
    const char *registry = getenv("FERRY_REGISTRY"), *host = NULL;
    int json = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case M_REGISTRY: registry = optarg; break;
        case M_JSON: json = 1; break;
        case M_HOST: host = optarg; break;
        default: {
            char msg[200];
            snprintf(msg, sizeof msg, "unknown or incomplete option '%s'", argv[optind - 1]);
            return usage(msg);
        }
        }
    }
    if (optind != argc - 1)
        return usage("expected exactly one NAME");
    const char *name = argv[optind];
    if (!spec_name_ok(name)) {
        fprintf(stderr, "ferry metrics: '%.80s' is not a workload name\n", name);
        return EXIT_USAGE;
    }
    if (!registry || !*registry)
        registry = WIRE_DEFAULT_URL;

    Ferry__Wire__Request req;
    Ferry__Wire__ListMetrics lm;
    ferry__wire__request__init(&req);
    ferry__wire__list_metrics__init(&lm);
    lm.name = (char *)name;
    lm.host = (char *)(host ? host : "");
    req.body_case = FERRY__WIRE__REQUEST__BODY_LIST_METRICS;
    req.list_metrics = &lm;
    struct client cl;
    Ferry__Wire__Response *r = NULL;
    int rc = client_open(&cl, registry);
    if (rc == 0) {
        rc = client_call(&cl, &req, &r);
        client_close(&cl);
    }
    if (rc == 0 && (r->body_case != FERRY__WIRE__RESPONSE__BODY_METRICS || !r->metrics)) {
        client_response_free(r);
        rc = err_set(FERRY_E_PROTOCOL, "registry sent an unexpected reply (is it older than this ferry?)");
    }
    if (rc < 0)
        return cli_fail(rc);
    const Ferry__Wire__MetricsList *l = r->metrics;
    if (json) {
        json_t *doc = to_json(l);
        char *text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
        if (text)
            puts(text);
        free(text);
        json_decref(doc);
    } else if (l->n_entries) {
        print_text(l);
    }
    if (l->n_entries == 0) {
        if (host)
            fprintf(stderr, "ferry: no metrics from host %s for %s\n", host, name);
        else
            fprintf(stderr, "ferry: no host reported metrics for %s\n", name);
        rc = 1;
    }
    client_response_free(r);
    return rc < 0 ? 1 : rc;
}
