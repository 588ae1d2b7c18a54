/* The registry's /metrics text (prom.c): escaping and numbers; the
 * registry's families and the fleet gauges; workload samples under their
 * host/workload/version/kind labels with HELP and TYPE once per family;
 * clashing labels, types, reserved names, histogram series names and
 * repeated series; and the whole text of a hostile snapshot accepted by
 * `promtool check metrics` (Debian's prometheus package, required). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "prom.h"
#include "scratch.h"

/* ---- building samples (static storage, no free) ---- */

#define MAXM 16
struct run_fx {
    Ferry__Wire__WorkloadMetrics w;
    Ferry__Wire__Metric m[MAXM];
    Ferry__Wire__Metric *mp[MAXM];
    Ferry__Wire__Label l[MAXM][4];
    Ferry__Wire__Label *lp[MAXM][4];
    Ferry__Wire__MetricBucket b[MAXM][4];
    Ferry__Wire__MetricBucket *bp[MAXM][4];
};

static void run_init(struct run_fx *r, const char *name, const char *version)
{
    memset(r, 0, sizeof *r);
    ferry__wire__workload_metrics__init(&r->w);
    r->w.name = (char *)name;
    r->w.version = (char *)version;
    r->w.metrics = r->mp;
}

/* add(r, name, type, value, "k", "v", ..., NULL) */
static Ferry__Wire__Metric *add(struct run_fx *r, const char *name, int type, double value, ...)
{
    size_t i = r->w.n_metrics++;
    Ferry__Wire__Metric *m = &r->m[i];
    ferry__wire__metric__init(m);
    m->name = (char *)name;
    m->type = (Ferry__Wire__MetricType)type;
    m->value = value;
    m->labels = r->lp[i];
    va_list ap;
    va_start(ap, value);
    const char *k;
    while ((k = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);
        Ferry__Wire__Label *l = &r->l[i][m->n_labels];
        ferry__wire__label__init(l);
        l->key = (char *)k;
        l->value = (char *)v;
        r->lp[i][m->n_labels++] = l;
    }
    va_end(ap);
    r->mp[i] = m;
    return m;
}

static void bucket(struct run_fx *r, Ferry__Wire__Metric *m, double le, uint64_t count)
{
    size_t i = (size_t)(m - r->m);
    Ferry__Wire__MetricBucket *b = &r->b[i][m->n_buckets];
    ferry__wire__metric_bucket__init(b);
    b->le = le;
    b->count = count;
    r->bp[i][m->n_buckets++] = b;
    m->buckets = r->bp[i];
}

enum { G = FERRY__WIRE__METRIC_TYPE__METRIC_GAUGE, C = FERRY__WIRE__METRIC_TYPE__METRIC_COUNTER,
       H = FERRY__WIRE__METRIC_TYPE__METRIC_HISTOGRAM };

static char *render(const struct prom_snapshot *s, size_t *skipped)
{
    struct prom_buf b = {0};
    assert_int_equal(prom_render(s, &b, skipped), 0);
    assert_non_null(b.p);
    return b.p;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void has_line(const char *text, const char *line)
{
    char want[1024];
    snprintf(want, sizeof want, "\n%s\n", line);
    if (!strstr(text, want))
        fail_msg("missing line: %s\n--- text:\n%s", line, text);
}

static void lacks(const char *text, const char *what)
{
    if (strstr(text, what))
        fail_msg("unexpected '%s' in:\n%s", what, text);
}

/* ---- tests ---- */

static void test_escape_and_numbers(void **state)
{
    (void)state;
    struct prom_buf b = {0};
    prom_escape(&b, "a\"b\\c\nd");
    assert_string_equal(b.p, "a\\\"b\\\\c\\nd");
    prom_buf_free(&b);
    prom_escape(&b, "plain ünïcode");
    assert_string_equal(b.p, "plain ünïcode");
    prom_buf_free(&b);

    char t[32];
    prom_double(t, 1);
    assert_string_equal(t, "1");
    prom_double(t, 0);
    assert_string_equal(t, "0");
    prom_double(t, -3);
    assert_string_equal(t, "-3");
    prom_double(t, 0.25);
    assert_string_equal(t, "0.25");
    prom_double(t, 0.1);
    assert_string_equal(t, "0.1");
    prom_double(t, 1e300);
    assert_true(strtod(t, NULL) == 1e300);
    double third = 1.0 / 3.0;
    prom_double(t, third);
    assert_true(strtod(t, NULL) == third);
    prom_double(t, 1764590000123.0 / 1000.0);
    assert_string_equal(t, "1764590000.123");
}

static const struct prom_request_count reqs[] = {
    {"report", "ok", 12}, {"deploy", "ok", 2}, {"deploy", "untrusted", 1}};
static const struct prom_host hosts[] = {
    {"web1", 0, 1, 1764590000000}, {"web2", 0, 0, 1764580000000}, {"new1", 1, 0, 1764590000000}};
static const struct prom_workload wls[] = {
    {"web1", "shop", "1.2", "app", "running", 0},
    {"web1", "churn", "3", "model", "running", 2},
    {"web2", "shop", "1.1", "app", "failed", 5},
};

static void test_registry_and_fleet(void **state)
{
    (void)state;
    struct prom_snapshot s = {
        .reg = {.start_time_s = 1764580000.5, .malformed = 3, .blobs_received = 4,
                .blob_bytes_received = 4096, .chunks_served = 9, .publishes = 2,
                .publishes_refused = 1, .deploys = 2, .deploys_refused = 1,
                .resident_bytes = 1 << 20, .last_render_s = 0.002, .requests = reqs,
                .n_requests = 3},
        .hosts = hosts, .n_hosts = 3, .workloads = wls, .n_workloads = 3};
    char *t = render(&s, NULL);
    assert_true(strncmp(t, "# HELP ferry_registry_start_time_seconds ", 41) == 0);
    has_line(t, "# TYPE ferry_registry_requests_total counter");
    has_line(t, "ferry_registry_requests_total{type=\"report\",outcome=\"ok\"} 12");
    has_line(t, "ferry_registry_requests_total{type=\"deploy\",outcome=\"untrusted\"} 1");
    has_line(t, "ferry_registry_malformed_requests_total 3");
    has_line(t, "ferry_registry_blob_received_bytes_total 4096");
    has_line(t, "ferry_registry_publishes_refused_total 1");
    has_line(t, "ferry_registry_deploys_total 2");
    has_line(t, "ferry_registry_deploys_refused_total 1");
    has_line(t, "ferry_registry_resident_memory_bytes 1048576");
    has_line(t, "ferry_registry_metrics_render_seconds 0.002");
    has_line(t, "ferry_hosts{state=\"online\"} 1");
    has_line(t, "ferry_hosts{state=\"offline\"} 1");
    has_line(t, "ferry_hosts{state=\"pending\"} 1");
    has_line(t, "ferry_host_online{host=\"web1\"} 1");
    has_line(t, "ferry_host_online{host=\"web2\"} 0");
    lacks(t, "host=\"new1\""); /* a pending host is not in the fleet yet */
    has_line(t, "ferry_host_last_seen_timestamp_seconds{host=\"web2\"} 1764580000");
    has_line(t, "ferry_workloads{kind=\"app\",state=\"running\"} 1");
    has_line(t, "ferry_workloads{kind=\"model\",state=\"running\"} 1");
    has_line(t, "ferry_workloads{kind=\"app\",state=\"failed\"} 1");
    has_line(t, "ferry_workload_state{host=\"web2\",workload=\"shop\",version=\"1.1\","
                "kind=\"app\",state=\"failed\"} 1");
    has_line(t, "ferry_workload_restarts_total{host=\"web1\",workload=\"churn\",version=\"3\","
                "kind=\"model\"} 2");
    assert_int_equal(count(t, "# TYPE ferry_workloads "), 1);
    assert_int_equal(count(t, "# TYPE ferry_workload_state "), 1);
    free(t);
}

static struct run_fx ra, rb, rc_;

/* Three runs whose samples clash in every way the renderer handles. */
static void hostile_runs(struct prom_run runs[3])
{
    run_init(&ra, "shop", "1.2");
    add(&ra, "process_resident_memory_bytes", G, 1234567, NULL);
    add(&ra, "process_cpu_seconds_total", C, 1.5, NULL);
    add(&ra, "jobs_done", C, 7, NULL);                              /* gets _total */
    add(&ra, "ferry_registry_requests_total", C, 1, NULL);          /* reserved */
    add(&ra, "ferry_workloads", G, 1, NULL);                        /* reserved */
    add(&ra, "queue_depth", G, 3, "version", "1.2", NULL);          /* same value: dropped */
    add(&ra, "queue_depth", G, 4, "version", "9", "queue", "q\"1\\\n", NULL); /* exported_version */
    add(&ra, "queue_depth", G, 5, "version", "1.2", NULL);          /* repeats the first */
    add(&ra, "odd", G, 1, "le", "x", "host", "other", "exported_host", "mine", NULL);
    Ferry__Wire__Metric *h = add(&ra, "latency_seconds", H, 2.5, "model", "shop", NULL);
    h->count = 10;
    bucket(&ra, h, 0.1, 3);
    bucket(&ra, h, 0.5, 8);
    bucket(&ra, h, 1, 9);
    add(&ra, "latency_seconds_count", G, 1, NULL);                  /* gets _value */
    add(&ra, "process_count", G, 2, NULL);                          /* gets _value */

    run_init(&rb, "churn", "3");
    add(&rb, "queue_depth", H, 1, NULL)->count = 1;                 /* other type: skipped */
    add(&rb, "ferry_model_drift_psi", G, 0.31, "model", "churn", "version", "3", "input", "tenure", NULL);
    add(&rb, "ferry_model_drift_psi", G, 0.05, "model", "churn", "version", "3", "input", "age", NULL);
    add(&rb, "jobs_done_total", C, 2, NULL);                        /* same family as jobs_done */

    run_init(&rc_, "shop", "1.1");
    add(&rc_, "queue_depth", G, 6, NULL);

    runs[0] = (struct prom_run){"web1", "shop", "1.2", "app", 1764590000000, &ra.w};
    runs[1] = (struct prom_run){"web1", "churn", "3", "model", 1764590001000, &rb.w};
    runs[2] = (struct prom_run){"web2", "shop", "1.1", "app", 1764590002000, &rc_.w};
}

static void test_workload_metrics(void **state)
{
    (void)state;
    struct prom_run runs[3];
    hostile_runs(runs);
    struct prom_snapshot s = {.hosts = hosts, .n_hosts = 3, .workloads = wls, .n_workloads = 3,
                              .runs = runs, .n_runs = 3};
    size_t skipped = 99;
    char *t = render(&s, &skipped);
    /* reserved x2, repeated series, type clash */
    assert_int_equal(skipped, 4);

    const char *web1shop = "host=\"web1\",workload=\"shop\",version=\"1.2\",kind=\"app\"";
    char want[512];
    snprintf(want, sizeof want, "process_resident_memory_bytes{%s} 1234567", web1shop);
    has_line(t, want);
    has_line(t, "# TYPE process_cpu_seconds_total counter");
    snprintf(want, sizeof want, "process_cpu_seconds_total{%s} 1.5", web1shop);
    has_line(t, want);
    /* jobs_done became jobs_done_total, one family with churn's own */
    assert_int_equal(count(t, "# TYPE jobs_done_total counter"), 1);
    lacks(t, "jobs_done{");
    snprintf(want, sizeof want, "jobs_done_total{%s} 7", web1shop);
    has_line(t, want);
    has_line(t, "jobs_done_total{host=\"web1\",workload=\"churn\",version=\"3\",kind=\"model\"} 2");
    /* reserved names stay the registry's */
    assert_int_equal(count(t, "ferry_registry_requests_total{host="), 0);
    assert_int_equal(count(t, "# TYPE ferry_workloads "), 1);
    lacks(t, "ferry_workloads{host=");
    /* label clashes */
    assert_int_equal(count(t, "# TYPE queue_depth gauge"), 1);
    snprintf(want, sizeof want, "queue_depth{%s} 3", web1shop);
    has_line(t, want);
    snprintf(want, sizeof want,
             "queue_depth{%s,exported_version=\"9\",queue=\"q\\\"1\\\\\\n\"} 4", web1shop);
    has_line(t, want);
    snprintf(want, sizeof want, "queue_depth{%s} 5", web1shop);
    lacks(t, want);
    lacks(t, "workload=\"churn\",version=\"3\",kind=\"model\",le="); /* a histogram: skipped */
    has_line(t, "queue_depth{host=\"web2\",workload=\"shop\",version=\"1.1\",kind=\"app\"} 6");
    /* le renamed; host clashes and exported_host is the sample's own: dropped */
    snprintf(want, sizeof want, "odd{%s,exported_le=\"x\",exported_host=\"mine\"} 1", web1shop);
    has_line(t, want);
    /* histogram */
    has_line(t, "# TYPE latency_seconds histogram");
    snprintf(want, sizeof want, "latency_seconds_bucket{%s,model=\"shop\",le=\"0.1\"} 3", web1shop);
    has_line(t, want);
    snprintf(want, sizeof want, "latency_seconds_bucket{%s,model=\"shop\",le=\"+Inf\"} 10", web1shop);
    has_line(t, want);
    snprintf(want, sizeof want, "latency_seconds_sum{%s,model=\"shop\"} 2.5", web1shop);
    has_line(t, want);
    snprintf(want, sizeof want, "latency_seconds_count{%s,model=\"shop\"} 10", web1shop);
    has_line(t, want);
    lacks(t, "latency_seconds_count gauge");
    snprintf(want, sizeof want, "latency_seconds_count_value{%s} 1", web1shop);
    has_line(t, want);
    snprintf(want, sizeof want, "process_count_value{%s} 2", web1shop);
    has_line(t, want);
    has_line(t, "# TYPE process_count_value gauge");
    /* the model's own version label repeats the workload's: dropped */
    has_line(t, "ferry_model_drift_psi{host=\"web1\",workload=\"churn\",version=\"3\","
                "kind=\"model\",model=\"churn\",input=\"tenure\"} 0.31");
    has_line(t, "ferry_workload_metrics_received_timestamp_seconds{host=\"web2\","
                "workload=\"shop\",version=\"1.1\",kind=\"app\"} 1764590002");
    /* HELP and TYPE once for every family */
    const char *p = t;
    while ((p = strstr(p, "# TYPE ")) != NULL) {
        p += 7;
        const char *sp = strchr(p, ' ');
        char name[128], needle[160];
        snprintf(name, sizeof name, "%.*s", (int)(sp - p), p);
        snprintf(needle, sizeof needle, "# TYPE %s ", name);
        assert_int_equal(count(t, needle), 1);
        snprintf(needle, sizeof needle, "# HELP %s ", name);
        assert_int_equal(count(t, needle), 1);
    }
    free(t);
}

/* The whole hostile text through promtool: it parses it and finds nothing
 * to lint. promtool is a build dependency of the tests (Debian's
 * prometheus package): missing, the test fails rather than skips. */
static void test_promtool_accepts(void **state)
{
    (void)state;
    struct prom_run runs[3];
    hostile_runs(runs);
    struct prom_snapshot s = {
        .reg = {.start_time_s = 1764580000.5, .requests = reqs, .n_requests = 3,
                .resident_bytes = 4096},
        .hosts = hosts, .n_hosts = 3, .workloads = wls, .n_workloads = 3, .runs = runs,
        .n_runs = 3};
    char *t = render(&s, NULL);
    void *dir = NULL;
    assert_int_equal(scratch_setup(&dir, "test_prom"), 0);
    char path[4200], cmd[8600];
    snprintf(path, sizeof path, "%s/metrics.txt", (char *)dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(t, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s' > '%s.out' 2>&1", path, path);
    int st = system(cmd);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char out[4096] = "";
        snprintf(cmd, sizeof cmd, "%s.out", path);
        FILE *o = fopen(cmd, "r");
        size_t n = o ? fread(out, 1, sizeof out - 1, o) : 0;
        out[n] = '\0';
        if (o)
            fclose(o);
        fail_msg("promtool check metrics failed (status %d): %s\n--- text:\n%s", st, out, t);
    }
    free(t);
    assert_int_equal(scratch_teardown(&dir), 0);
}

static void test_empty_fleet(void **state)
{
    (void)state;
    struct prom_snapshot s = {0};
    size_t skipped = 7;
    char *t = render(&s, &skipped);
    assert_int_equal(skipped, 0);
    has_line(t, "ferry_hosts{state=\"online\"} 0");
    lacks(t, "ferry_registry_resident_memory_bytes"); /* not known: left out */
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_and_numbers),
        cmocka_unit_test(test_registry_and_fleet),
        cmocka_unit_test(test_workload_metrics),
        cmocka_unit_test(test_promtool_accepts),
        cmocka_unit_test(test_empty_fleet),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
