/* The model server's metrics: the exact Prometheus text (HELP/TYPE, label
 * escaping, cumulative histogram buckets with +Inf, _sum, _count), checked
 * by Debian's promtool (which is also shown to reject a broken exposition),
 * the JSON that the model plugin forwards (every series turns into an ABI-2
 * sample that libferry's own checker accepts), the bounds (256 label sets,
 * refused values, all counted as dropped), bad family definitions, and
 * exact totals under concurrent observers and renderers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "error.h"
#include "metricwire.h"
#include "mmetrics.h"
#include "scratch.h"

#define PROMTOOL "/usr/bin/promtool"

static const char *const k_mvpo[] = {"model", "version", "protocol", "outcome", NULL};
static const char *const k_mvp[] = {"model", "version", "protocol", NULL};
static const char *const k_mv[] = {"model", "version", NULL};
static const char *const k_mvi[] = {"model", "version", "input", NULL};

static struct mm *registry(void)
{
    struct mm *m = NULL;
    assert_int_equal(mm_new(&m), 0);
    return m;
}

static struct mm_family *family(struct mm *m, const char *name, enum mm_type t, const char *const *keys,
                                const double *b, size_t nb)
{
    struct mm_family *f = NULL;
    int rc = mm_family(m, name, "help text", t, keys, b, nb, &f);
    if (rc != 0)
        fail_msg("mm_family %s: %s", name, err_message(rc));
    return f;
}

/* ---- the exact text ---- */

static void test_text_exact(void **state)
{
    struct mm *m = registry();
    struct mm_family *c = family(m, "ferry_model_requests_total", MM_COUNTER, k_mvpo, NULL, 0);
    struct mm_family *g = family(m, "ferry_model_workers_ready", MM_GAUGE, k_mv, NULL, 0);
    const double b[] = {0.1, 1, 10};
    struct mm_family *h = family(m, "ferry_model_compute_seconds", MM_HISTOGRAM, k_mv, b, 3);
    const char *ok[] = {"iris", "1.0.0", "v2", "ok"};
    const char *bad[] = {"iris", "1.0.0", "mlflow", "bad_request"};
    mm_add(c, ok, 1);
    mm_add(c, ok, 2);
    mm_add(c, bad, 1);
    mm_set(g, ok, 3);
    mm_set(g, ok, 2);
    mm_observe(h, ok, 0.05);
    mm_observe(h, ok, 0.1); /* le is "less or equal": this one is in le="0.1" */
    mm_observe(h, ok, 5);
    mm_observe(h, ok, 50);
    char *text = mm_render_prometheus(m);
    assert_non_null(text);
    const char *want =
        "# HELP ferry_model_requests_total help text\n"
        "# TYPE ferry_model_requests_total counter\n"
        "ferry_model_requests_total{model=\"iris\",version=\"1.0.0\",protocol=\"v2\",outcome=\"ok\"} 3\n"
        "ferry_model_requests_total{model=\"iris\",version=\"1.0.0\",protocol=\"mlflow\",outcome=\"bad_request\"} 1\n"
        "# HELP ferry_model_workers_ready help text\n"
        "# TYPE ferry_model_workers_ready gauge\n"
        "ferry_model_workers_ready{model=\"iris\",version=\"1.0.0\"} 2\n"
        "# HELP ferry_model_compute_seconds help text\n"
        "# TYPE ferry_model_compute_seconds histogram\n"
        "ferry_model_compute_seconds_bucket{model=\"iris\",version=\"1.0.0\",le=\"0.1\"} 2\n"
        "ferry_model_compute_seconds_bucket{model=\"iris\",version=\"1.0.0\",le=\"1\"} 2\n"
        "ferry_model_compute_seconds_bucket{model=\"iris\",version=\"1.0.0\",le=\"10\"} 3\n"
        "ferry_model_compute_seconds_bucket{model=\"iris\",version=\"1.0.0\",le=\"+Inf\"} 4\n"
        "ferry_model_compute_seconds_sum{model=\"iris\",version=\"1.0.0\"} 55.15\n"
        "ferry_model_compute_seconds_count{model=\"iris\",version=\"1.0.0\"} 4\n"
        "# HELP ferry_model_metrics_dropped_total ";
    if (strncmp(text, want, strlen(want)) != 0)
        fail_msg("got:\n%s\nwant (prefix):\n%s", text, want);
    assert_non_null(strstr(text, "# TYPE ferry_model_metrics_dropped_total counter\n"
                                 "ferry_model_metrics_dropped_total 0\n"));
    free(text);
    mm_free(m);
}

static void test_escaping(void **state)
{
    struct mm *m = registry();
    struct mm_family *f = NULL;
    assert_int_equal(mm_family(m, "esc", "a \\ backslash\nand a \"quote\"", MM_GAUGE,
                               (const char *const[]){"v", NULL}, NULL, 0, &f),
                     0);
    mm_set(f, (const char *const[]){"a\\b\"c\nd"}, 1);
    char *text = mm_render_prometheus(m);
    /* HELP escapes backslash and newline only; a label value also the quote. */
    assert_non_null(strstr(text, "# HELP esc a \\\\ backslash\\nand a \"quote\"\n"));
    assert_non_null(strstr(text, "esc{v=\"a\\\\b\\\"c\\nd\"} 1\n"));
    free(text);
    mm_free(m);
}

static int promtool(const char *dir, const char *text, char *out, size_t outlen);

static void test_number_format(void **state)
{
    struct mm *m = registry();
    struct mm_family *f = family(m, "num", MM_GAUGE, (const char *const[]){"i", NULL}, NULL, 0);
    const double v[] = {0.1, 1.0 / 3, 1e-300, 123456789012345678.0, -2.5, 0, 5e-324, 1.7976931348623157e308};
    char label[8][4];
    for (int i = 0; i < 8; i++) {
        snprintf(label[i], sizeof label[i], "%d", i);
        mm_set(f, (const char *const[]){label[i]}, v[i]);
    }
    char *text = mm_render_prometheus(m);
    assert_non_null(strstr(text, "num{i=\"0\"} 0.1\n"));
    assert_non_null(strstr(text, "num{i=\"4\"} -2.5\n"));
    assert_non_null(strstr(text, "num{i=\"5\"} 0\n"));
    /* Every value reads back as the same double. */
    for (int i = 0; i < 8; i++) {
        char key[32];
        snprintf(key, sizeof key, "num{i=\"%d\"} ", i);
        const char *p = strstr(text, key);
        assert_non_null(p);
        assert_true(strtod(p + strlen(key), NULL) == v[i]);
    }
    /* And promtool reads every one of them. */
    char out[4096];
    int rc = promtool(*state, text, out, sizeof out);
    if (rc != 0 || out[0])
        fail_msg("promtool check metrics: exit %d, output:\n%s\non:\n%s", rc, out, text);
    free(text);
    mm_free(m);
}

/* ---- promtool ---- */

/* promtool check metrics < text: its exit status; its output in out. */
static int promtool(const char *dir, const char *text, char *out, size_t outlen)
{
    char in_path[4200], out_path[4200], cmd[9000];
    snprintf(in_path, sizeof in_path, "%s/metrics.txt", dir);
    snprintf(out_path, sizeof out_path, "%s/promtool.out", dir);
    FILE *fp = fopen(in_path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
    snprintf(cmd, sizeof cmd, "%s check metrics < '%s' > '%s' 2>&1", PROMTOOL, in_path, out_path);
    int st = system(cmd);
    assert_true(st != -1 && WIFEXITED(st));
    fp = fopen(out_path, "r");
    assert_non_null(fp);
    size_t n = fread(out, 1, outlen - 1, fp);
    out[n] = 0;
    fclose(fp);
    return WEXITSTATUS(st);
}

/* Every family the model server has (MODEL.md's names), every type,
 * label values that need escaping, histograms with and without their own
 * buckets, and a family with no series yet. */
static struct mm *full_registry(void)
{
    struct mm *m = registry();
    const double dur[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
    const double rows[] = {1, 2, 4, 8, 16, 32, 64, 128};
    struct mm_family *req = family(m, "ferry_model_requests_total", MM_COUNTER, k_mvpo, NULL, 0);
    struct mm_family *dr = family(m, "ferry_model_request_duration_seconds", MM_HISTOGRAM, k_mvp, dur, 14);
    struct mm_family *q = family(m, "ferry_model_queue_seconds", MM_HISTOGRAM, k_mv, dur, 14);
    struct mm_family *cs = family(m, "ferry_model_compute_seconds", MM_HISTOGRAM, k_mv, NULL, 0);
    struct mm_family *bs = family(m, "ferry_model_batch_size", MM_HISTOGRAM, k_mv, rows, 8);
    struct mm_family *rs = family(m, "ferry_model_worker_restarts_total", MM_COUNTER, k_mv, NULL, 0);
    struct mm_family *wr = family(m, "ferry_model_workers_ready", MM_GAUGE, k_mv, NULL, 0);
    struct mm_family *psi = family(m, "ferry_model_drift_psi", MM_GAUGE, k_mvi, NULL, 0);
    family(m, "ferry_model_unused_total", MM_COUNTER, k_mv, NULL, 0);
    family(m, "ferry_model_idle_seconds", MM_HISTOGRAM, NULL, NULL, 0); /* no labels, never observed */
    const char *outcomes[] = {"ok", "bad_request", "not_found", "error", "unavailable"};
    const char *model = "ir\"is\\ \n\xc3\xa9"; /* quote, backslash, newline, UTF-8 */
    for (int p = 0; p < 2; p++)
        for (int o = 0; o < 5; o++)
            mm_add(req, (const char *const[]){model, "1.0.0", p ? "mlflow" : "v2", outcomes[o]}, o + 1);
    for (int i = 0; i < 200; i++) {
        double s = (i % 37) * 0.0007;
        mm_observe(dr, (const char *const[]){model, "1.0.0", i % 2 ? "mlflow" : "v2"}, s);
        mm_observe(q, (const char *const[]){model, "1.0.0"}, s / 3);
        mm_observe(cs, (const char *const[]){model, "1.0.0"}, s * 2);
        mm_observe(bs, (const char *const[]){model, "1.0.0"}, 1 + i % 40);
    }
    mm_add(rs, (const char *const[]){model, "1.0.0"}, 1);
    mm_set(wr, (const char *const[]){model, "1.0.0"}, 2);
    mm_set(psi, (const char *const[]){model, "1.0.0", "sepal_length"}, 0.0123);
    mm_set(psi, (const char *const[]){model, "1.0.0", "petal \"width\""}, 0.31);
    return m;
}

static void test_promtool_accepts(void **state)
{
    struct mm *m = full_registry();
    char *text = mm_render_prometheus(m);
    assert_non_null(text);
    assert_non_null(strstr(text, "model=\"ir\\\"is\\\\ \\n\xc3\xa9\""));
    assert_non_null(strstr(text, "le=\"+Inf\""));
    char out[8192];
    int rc = promtool(*state, text, out, sizeof out);
    if (rc != 0 || out[0])
        fail_msg("promtool check metrics: exit %d, output:\n%s\non:\n%s", rc, out, text);
    free(text);
    mm_free(m);
}

static void test_promtool_rejects_broken(void **state)
{
    struct mm *m = full_registry();
    char *text = mm_render_prometheus(m);
    /* The same exposition with its first HELP line given twice. */
    const char *eol = strchr(text, '\n');
    assert_non_null(eol);
    size_t l1 = (size_t)(eol - text) + 1;
    char *broken = malloc(strlen(text) + l1 + 1);
    memcpy(broken, text, l1);
    strcpy(broken + l1, text);
    char out[8192];
    int rc = promtool(*state, broken, out, sizeof out);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(out, "HELP"));
    /* And a counter without _total: a lint problem, printed. */
    rc = promtool(*state, "# HELP bad_counter x\n# TYPE bad_counter counter\nbad_counter 1\n", out, sizeof out);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(out, "should have \"_total\" suffix"));
    free(broken);
    free(text);
    mm_free(m);
}

/* ---- JSON, and the ABI-2 samples the plugin makes of it ---- */

static void test_json_shape(void **state)
{
    struct mm *m = registry();
    const double b[] = {1, 2, 4};
    struct mm_family *c = family(m, "ferry_model_requests_total", MM_COUNTER, k_mvpo, NULL, 0);
    struct mm_family *h = family(m, "ferry_model_batch_size", MM_HISTOGRAM, k_mv, b, 3);
    struct mm_family *g = family(m, "ferry_model_drift_psi", MM_GAUGE, k_mvi, NULL, 0);
    mm_add(c, (const char *const[]){"iris", "1", "v2", "ok"}, 7);
    for (int i = 1; i <= 5; i++)
        mm_observe(h, (const char *const[]){"iris", "1"}, i); /* 1 | 2 | 3,4 | 5 */
    mm_set(g, (const char *const[]){"iris", "1", "sepal \"w\""}, 0.25);
    mm_add(c, (const char *const[]){"iris", "1", "v2", NULL}, 1); /* dropped */

    char *text = mm_render_json(m);
    assert_non_null(text);
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    if (!root)
        fail_msg("not JSON: %s: %s", jerr.text, text);
    json_t *fams = json_object_get(root, "families");
    assert_true(json_is_array(fams));
    assert_int_equal(json_array_size(fams), 4);

    json_t *f0 = json_array_get(fams, 0);
    assert_string_equal(json_string_value(json_object_get(f0, "name")), "ferry_model_requests_total");
    assert_string_equal(json_string_value(json_object_get(f0, "type")), "counter");
    assert_int_equal(json_array_size(json_object_get(f0, "label_keys")), 4);
    json_t *s0 = json_array_get(json_object_get(f0, "series"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(s0, "labels"), "outcome")), "ok");
    assert_true(json_number_value(json_object_get(s0, "value")) == 7);
    assert_null(json_object_get(s0, "buckets"));

    json_t *f1 = json_array_get(fams, 1);
    assert_string_equal(json_string_value(json_object_get(f1, "type")), "histogram");
    json_t *s1 = json_array_get(json_object_get(f1, "series"), 0);
    assert_int_equal(json_integer_value(json_object_get(s1, "count")), 5);
    assert_true(json_number_value(json_object_get(s1, "sum")) == 15);
    assert_true(json_number_value(json_object_get(s1, "value")) == 15);
    json_t *bk = json_object_get(s1, "buckets");
    assert_int_equal(json_array_size(bk), 3); /* +Inf is the count */
    const int cum[] = {1, 2, 4};
    for (size_t i = 0; i < 3; i++) {
        json_t *e = json_array_get(bk, i);
        assert_true(json_number_value(json_object_get(e, "le")) == b[i]);
        assert_int_equal(json_integer_value(json_object_get(e, "count")), cum[i]);
    }

    json_t *f2 = json_array_get(fams, 2);
    json_t *s2 = json_array_get(json_object_get(f2, "series"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(s2, "labels"), "input")), "sepal \"w\"");
    assert_true(json_number_value(json_object_get(s2, "value")) == 0.25);

    json_t *f3 = json_array_get(fams, 3);
    assert_string_equal(json_string_value(json_object_get(f3, "name")), "ferry_model_metrics_dropped_total");
    assert_true(json_number_value(json_object_get(json_array_get(json_object_get(f3, "series"), 0), "value")) == 1);
    json_decref(root);
    free(text);
    mm_free(m);
}

/* What the model plugin's metrics2() does with the JSON: each series as a
 * struct ferry_sample, which libferry's checker (the agent's) must take.
 * Returns the samples made; *refused counts those the checker refused (no
 * cmocka assertion here: renderer threads call it too). */
static size_t forward_all(const char *text, size_t *refused)
{
    *refused = 0;
    json_t *root = json_loads(text, 0, NULL);
    if (!root) {
        (*refused)++;
        return 0;
    }
    size_t n = 0, i, j;
    json_t *fam, *se;
    json_array_foreach(json_object_get(root, "families"), i, fam) {
        const char *type = json_string_value(json_object_get(fam, "type"));
        json_array_foreach(json_object_get(fam, "series"), j, se) {
            const char *labels[2 * FERRY_METRIC_LABELS_MAX + 1];
            size_t nl = 0;
            const char *k;
            json_t *v;
            json_object_foreach(json_object_get(se, "labels"), k, v) {
                labels[nl++] = k;
                labels[nl++] = json_string_value(v);
            }
            labels[nl] = NULL;
            double le[FERRY_METRIC_BUCKETS_MAX];
            uint64_t cnt[FERRY_METRIC_BUCKETS_MAX];
            size_t nb = 0, b;
            json_t *e;
            json_array_foreach(json_object_get(se, "buckets"), b, e) {
                le[nb] = json_number_value(json_object_get(e, "le"));
                cnt[nb++] = (uint64_t)json_integer_value(json_object_get(e, "count"));
            }
            struct ferry_sample s = {
                .struct_size = sizeof s,
                .type = type && strcmp(type, "counter") == 0 ? FERRY_METRIC_COUNTER
                        : type && strcmp(type, "gauge") == 0 ? FERRY_METRIC_GAUGE
                                                             : FERRY_METRIC_HISTOGRAM,
                .name = json_string_value(json_object_get(fam, "name")),
                .labels = labels,
                .value = json_number_value(json_object_get(se, "value")),
                .count = (uint64_t)json_integer_value(json_object_get(se, "count")),
                .n_buckets = (uint32_t)nb,
                .bucket_le = le,
                .bucket_count = cnt,
            };
            Ferry__Wire__Metric *w = NULL;
            if (metric_from_sample(&s, &w) != 0)
                (*refused)++;
            metric_free(w);
            n++;
        }
    }
    json_decref(root);
    return n;
}

static void test_json_forwards_as_samples(void **state)
{
    struct mm *m = full_registry();
    char *text = mm_render_json(m);
    assert_non_null(text);
    /* 10 requests + 2 duration + queue + compute + batch + restarts + ready
     * + 2 psi + the idle histogram + the dropped counter. */
    size_t refused;
    assert_int_equal(forward_all(text, &refused), 21);
    if (refused)
        fail_msg("%zu samples refused: %s (%s)", refused, err_detail(), text);
    free(text);
    mm_free(m);
}

/* ---- bounds ---- */

static uint64_t dropped(struct mm *m)
{
    char *text = mm_render_prometheus(m);
    const char *p = strstr(text, "\nferry_model_metrics_dropped_total ");
    assert_non_null(p);
    uint64_t n = strtoull(p + strlen("\nferry_model_metrics_dropped_total "), NULL, 10);
    free(text);
    return n;
}

static size_t count_lines(const char *text, const char *prefix)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, prefix)); p++)
        if (p == text || p[-1] == '\n')
            n++;
    return n;
}

static void test_series_bound(void **state)
{
    struct mm *m = registry();
    struct mm_family *f = family(m, "many_total", MM_COUNTER, (const char *const[]){"i", NULL}, NULL, 0);
    char v[16];
    for (unsigned i = 0; i < MM_SERIES_MAX + 10; i++) {
        snprintf(v, sizeof v, "%u", i);
        mm_add(f, (const char *const[]){v}, 1);
    }
    assert_int_equal(dropped(m), 10);
    /* A label set already held still counts once the family is full. */
    mm_add(f, (const char *const[]){"0"}, 1);
    char *text = mm_render_prometheus(m);
    assert_int_equal(count_lines(text, "many_total{"), MM_SERIES_MAX);
    assert_non_null(strstr(text, "many_total{i=\"0\"} 2\n"));
    assert_null(strstr(text, "many_total{i=\"256\"}"));
    free(text);
    assert_int_equal(dropped(m), 10);
    mm_free(m);
}

static void test_refused_values(void **state)
{
    struct mm *m = registry();
    struct mm_family *c = family(m, "c_total", MM_COUNTER, (const char *const[]){"k", NULL}, NULL, 0);
    struct mm_family *g = family(m, "g", MM_GAUGE, NULL, NULL, 0);
    struct mm_family *h = family(m, "h", MM_HISTOGRAM, NULL, NULL, 0);
    char longv[200];
    memset(longv, 'x', sizeof longv - 1);
    longv[sizeof longv - 1] = 0;
    mm_add(c, (const char *const[]){"a"}, -1);                 /* a counter only goes up */
    mm_add(c, (const char *const[]){"a"}, NAN);
    mm_add(c, (const char *const[]){"\xff\xfe"}, 1);           /* not UTF-8 */
    mm_add(c, (const char *const[]){longv}, 1);                /* over 127 bytes */
    mm_add(c, (const char *const[]){NULL}, 1);
    mm_add(c, NULL, 1);
    mm_set(g, NULL, INFINITY);
    mm_observe(h, NULL, NAN);
    mm_set(c, (const char *const[]){"a"}, 1);                  /* not a gauge */
    mm_observe(g, NULL, 1);                                    /* not a histogram */
    mm_add(NULL, NULL, 1);                                     /* nothing to count it in */
    assert_int_equal(dropped(m), 10);
    char *text = mm_render_prometheus(m);
    assert_null(strstr(text, "c_total{"));
    /* Families without labels show their one series from the start. */
    assert_non_null(strstr(text, "\ng 0\n"));
    assert_non_null(strstr(text, "\nh_count 0\n"));
    assert_non_null(strstr(text, "\nh_bucket{le=\"+Inf\"} 0\n"));
    free(text);
    /* The largest value allowed is taken. */
    longv[127] = 0;
    mm_add(c, (const char *const[]){longv}, 1);
    mm_set(g, NULL, -1); /* a gauge may go below zero */
    mm_observe(h, NULL, -1);
    text = mm_render_prometheus(m);
    assert_non_null(strstr(text, "\ng -1\n"));
    assert_non_null(strstr(text, "h_bucket{le=\"0.005\"} 1\n")); /* the default buckets */
    assert_non_null(strstr(text, "h_bucket{le=\"10\"} 1\n"));
    assert_int_equal(count_lines(text, "c_total{"), 1);
    free(text);
    assert_int_equal(dropped(m), 10);
    mm_free(m);
}

static void expect_refused(struct mm *m, int code, const char *name, enum mm_type t, const char *const *keys,
                           const double *b, size_t nb, const char *detail)
{
    struct mm_family *f = NULL;
    int rc = mm_family(m, name, "x", t, keys, b, nb, &f);
    if (rc != code)
        fail_msg("mm_family %s: %d (%s), expected %d", name ? name : "(null)", rc, err_message(rc), code);
    if (!strstr(err_detail(), detail))
        fail_msg("mm_family %s: detail '%s' lacks '%s'", name ? name : "(null)", err_detail(), detail);
    assert_null(f);
}

static void test_bad_families(void **state)
{
    struct mm *m = registry();
    const double inc[] = {1, 2}, flat[] = {1, 1}, inf[] = {1, INFINITY};
    double many[FERRY_METRIC_BUCKETS_MAX + 1];
    for (int i = 0; i <= FERRY_METRIC_BUCKETS_MAX; i++)
        many[i] = i;
    expect_refused(m, FERRY_E_INVALID, "9lives", MM_GAUGE, NULL, NULL, 0, "a name must match");
    expect_refused(m, FERRY_E_INVALID, "with-dash", MM_GAUGE, NULL, NULL, 0, "a name must match");
    expect_refused(m, FERRY_E_INVALID, NULL, MM_GAUGE, NULL, NULL, 0, "a name must match");
    expect_refused(m, FERRY_E_INVALID, "k", MM_GAUGE, (const char *const[]){"__x", NULL}, NULL, 0, "label key '__x'");
    expect_refused(m, FERRY_E_INVALID, "k", MM_GAUGE, (const char *const[]){"a b", NULL}, NULL, 0, "label key 'a b'");
    expect_refused(m, FERRY_E_INVALID, "k", MM_GAUGE, (const char *const[]){"a", "a", NULL}, NULL, 0, "given twice");
    expect_refused(m, FERRY_E_INVALID, "k", MM_HISTOGRAM, (const char *const[]){"le", NULL}, NULL, 0, "'le'");
    expect_refused(m, FERRY_E_LIMIT, "k", MM_GAUGE,
                   (const char *const[]){"a", "b", "c", "d", "e", "f", "g", "h", "i", NULL}, NULL, 0,
                   "more than 8 label keys");
    expect_refused(m, FERRY_E_INVALID, "k", MM_GAUGE, NULL, inc, 2, "only a histogram");
    expect_refused(m, FERRY_E_INVALID, "k", MM_HISTOGRAM, NULL, flat, 2, "increasing");
    expect_refused(m, FERRY_E_INVALID, "k", MM_HISTOGRAM, NULL, inf, 2, "finite");
    expect_refused(m, FERRY_E_LIMIT, "k", MM_HISTOGRAM, NULL, many, FERRY_METRIC_BUCKETS_MAX + 1, "buckets");
    expect_refused(m, FERRY_E_INVALID, "k", (enum mm_type)7, NULL, NULL, 0, "unknown type");
    expect_refused(m, FERRY_E_EXISTS, "ferry_model_metrics_dropped_total", MM_COUNTER, NULL, NULL, 0, "own");
    family(m, "lat_seconds", MM_HISTOGRAM, NULL, inc, 2);
    expect_refused(m, FERRY_E_EXISTS, "lat_seconds", MM_GAUGE, NULL, NULL, 0, "clashes");
    expect_refused(m, FERRY_E_EXISTS, "lat_seconds_count", MM_COUNTER, NULL, NULL, 0, "clashes");
    expect_refused(m, FERRY_E_EXISTS, "lat_seconds_bucket", MM_GAUGE, NULL, NULL, 0, "clashes");
    family(m, "x_sum", MM_GAUGE, NULL, NULL, 0);
    expect_refused(m, FERRY_E_EXISTS, "x", MM_HISTOGRAM, NULL, NULL, 0, "clashes");
    /* Exactly 8 keys and 32 buckets are fine. */
    family(m, "eight", MM_HISTOGRAM, (const char *const[]){"a", "b", "c", "d", "e", "f", "g", "h", NULL}, many,
           FERRY_METRIC_BUCKETS_MAX);
    /* At most 64 families. */
    struct mm *m64 = registry();
    for (int i = 0; i < 64; i++) {
        char name[16];
        snprintf(name, sizeof name, "f%d", i);
        family(m64, name, MM_GAUGE, NULL, NULL, 0);
    }
    expect_refused(m64, FERRY_E_LIMIT, "one_more", MM_GAUGE, NULL, NULL, 0, "more than 64 families");
    mm_free(m64);
    /* Nothing refused reached the exposition. */
    char *text = mm_render_prometheus(m);
    assert_int_equal(count_lines(text, "# TYPE "), 4);
    free(text);
    mm_free(m);
}

/* ---- threads ---- */

struct worker_arg {
    struct mm *m;
    struct mm_family *c, *h, *g;
    int id;
    int bad;
};

#define PER_THREAD 50000

static void *observer(void *p)
{
    struct worker_arg *a = p;
    char model[8];
    snprintf(model, sizeof model, "m%d", a->id % 2);
    for (int i = 0; i < PER_THREAD; i++) {
        mm_add(a->c, (const char *const[]){model, "1"}, 1);
        mm_observe(a->h, (const char *const[]){model, "1"}, (i % 4) * 0.5);
        mm_set(a->g, (const char *const[]){model, "1"}, i);
    }
    return NULL;
}

/* Renders while the observers run; every histogram it catches mid-update
 * must still be a valid sample (cumulative buckets, none above the count). */
static void *renderer(void *p)
{
    struct worker_arg *a = p;
    for (int i = 0; i < 50; i++) {
        char *t = mm_render_prometheus(a->m);
        char *j = mm_render_json(a->m);
        size_t refused = 0;
        if (!t || !j)
            a->bad++;
        else if (forward_all(j, &refused) == 0 || refused)
            a->bad++;
        free(t);
        free(j);
    }
    return NULL;
}

static void test_threads(void **state)
{
    struct mm *m = registry();
    const double b[] = {0, 0.5, 1};
    struct worker_arg a = {.m = m,
                           .c = family(m, "t_total", MM_COUNTER, k_mv, NULL, 0),
                           .h = family(m, "t_seconds", MM_HISTOGRAM, k_mv, b, 3),
                           .g = family(m, "t_gauge", MM_GAUGE, k_mv, NULL, 0)};
    struct worker_arg args[4];
    pthread_t th[5];
    for (int i = 0; i < 4; i++) {
        args[i] = a;
        args[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, observer, &args[i]), 0);
    }
    assert_int_equal(pthread_create(&th[4], NULL, renderer, &a), 0);
    for (int i = 0; i < 5; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(a.bad, 0);
    char *text = mm_render_prometheus(m);
    /* Two threads per label set, every observation counted. */
    char want[256];
    snprintf(want, sizeof want, "t_total{model=\"m0\",version=\"1\"} %d\n", 2 * PER_THREAD);
    assert_non_null(strstr(text, want));
    snprintf(want, sizeof want, "t_seconds_count{model=\"m1\",version=\"1\"} %d\n", 2 * PER_THREAD);
    assert_non_null(strstr(text, want));
    /* (i % 4) * 0.5 is 0, 0.5, 1, 1.5 in turn: a quarter each. */
    snprintf(want, sizeof want, "t_seconds_bucket{model=\"m1\",version=\"1\",le=\"0.5\"} %d\n", PER_THREAD);
    assert_non_null(strstr(text, want));
    snprintf(want, sizeof want, "t_seconds_sum{model=\"m1\",version=\"1\"} %d\n", 2 * (PER_THREAD / 4) * 3);
    assert_non_null(strstr(text, want));
    snprintf(want, sizeof want, "t_gauge{model=\"m0\",version=\"1\"} %d\n", PER_THREAD - 1);
    assert_non_null(strstr(text, want));
    free(text);
    assert_int_equal(dropped(m), 0);
    mm_free(m);
}

/* Threads adding the same new label sets at once (in opposite orders):
 * each set is made once, the 256 first are kept, the rest dropped. */
struct creator_arg {
    struct mm_family *f;
    int reverse;
};

#define CREATED ((int)MM_SERIES_MAX + 44)

static void *creator(void *p)
{
    struct creator_arg *a = p;
    char v[16];
    for (int r = 0; r < 20; r++)
        for (int i = 0; i < CREATED; i++) {
            snprintf(v, sizeof v, "s%d", a->reverse ? CREATED - 1 - i : i);
            mm_add(a->f, (const char *const[]){v}, 1);
        }
    return NULL;
}

static void test_threads_new_series(void **state)
{
    struct mm *m = registry();
    struct mm_family *f = family(m, "n_total", MM_COUNTER, (const char *const[]){"s", NULL}, NULL, 0);
    struct creator_arg args[4] = {{f, 0}, {f, 1}, {f, 0}, {f, 1}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, creator, &args[i]), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    char *text = mm_render_prometheus(m);
    assert_int_equal(count_lines(text, "n_total{"), MM_SERIES_MAX);
    /* Every kept set has all 4 x 20 additions; the dropped ones are counted. */
    uint64_t kept = 0;
    for (const char *p = text; (p = strstr(p, "\nn_total{")); p++) {
        const char *sp = strchr(p + 1, ' ');
        assert_int_equal(strtoull(sp + 1, NULL, 10), 80);
        kept++;
    }
    assert_int_equal(kept, MM_SERIES_MAX);
    free(text);
    assert_int_equal(dropped(m), 80 * (CREATED - MM_SERIES_MAX));
    mm_free(m);
}

static int setup(void **state) { return scratch_setup(state, "test_mmetrics"); }
static int teardown(void **state) { return scratch_teardown(state); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_exact),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test_setup_teardown(test_number_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promtool_accepts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promtool_rejects_broken, setup, teardown),
        cmocka_unit_test(test_json_shape),
        cmocka_unit_test(test_json_forwards_as_samples),
        cmocka_unit_test(test_series_bound),
        cmocka_unit_test(test_refused_values),
        cmocka_unit_test(test_bad_families),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_threads_new_series),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
