/* Metrics collection: the sink's checks and bounds (each refusal counted,
 * nothing over a bound kept), ABI-1 values as gauges, the report budget,
 * and the periodic pass on a real libuv loop handing runs back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "error.h"
#include "metrics.h"
#include "metricwire.h"

static int add_rcs[128];
static int n_add_rcs;

static int add(struct ferry_metric_sink *sink, const struct ferry_sample *s)
{
    int rc = sink->add(sink, s);
    if (n_add_rcs < 128)
        add_rcs[n_add_rcs++] = rc;
    return rc;
}

/* One good sample of each type, then one breaking each rule. */
static int rules_metrics2(void *state, struct ferry_run *run, struct ferry_metric_sink *sink)
{
    (void)state;
    (void)run;
    const char *const labels[] = {"path", "/v2/models", "code", "200", NULL};
    struct ferry_sample g = {.struct_size = sizeof g, .type = FERRY_METRIC_GAUGE, .name = "queue_depth", .value = 3};
    struct ferry_sample c = {.struct_size = sizeof c, .type = FERRY_METRIC_COUNTER, .name = "requests_total",
                             .labels = labels, .value = 12};
    static const double le[] = {0.01, 0.1, 1};
    static const uint64_t counts[] = {2, 5, 9};
    struct ferry_sample h = {.struct_size = sizeof h, .type = FERRY_METRIC_HISTOGRAM, .name = "latency_seconds",
                             .value = 2.5, .count = 10, .n_buckets = 3, .bucket_le = le, .bucket_count = counts};
    add(sink, &g); /* 0 */
    add(sink, &c); /* 1 */
    add(sink, &h); /* 2 */

    struct ferry_sample bad = g;
    bad.name = "9lives";
    add(sink, &bad); /* 3: name */
    bad = g;
    bad.value = NAN;
    add(sink, &bad); /* 4: not finite */
    const char *const odd[] = {"k", NULL};
    bad = g;
    bad.labels = odd;
    add(sink, &bad); /* 5: key without value */
    const char *const many[] = {"a", "1", "b", "1", "c", "1", "d", "1", "e", "1", "f", "1", "g", "1", "h", "1",
                                "i", "1", NULL};
    bad = g;
    bad.labels = many;
    add(sink, &bad); /* 6: 9 labels */
    const char *const dup[] = {"a", "1", "a", "2", NULL};
    bad = g;
    bad.labels = dup;
    add(sink, &bad); /* 7: twice */
    char longv[200];
    memset(longv, 'v', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    const char *const lv[] = {"a", longv, NULL};
    bad = g;
    bad.labels = lv;
    add(sink, &bad); /* 8: value too long */
    const char *const nonutf[] = {"a", "\xff\xfe", NULL};
    bad = g;
    bad.labels = nonutf;
    add(sink, &bad); /* 9: not UTF-8 */
    static const double down[] = {1, 0.5};
    static const uint64_t cc[] = {1, 2};
    bad = h;
    bad.n_buckets = 2;
    bad.bucket_le = down;
    bad.bucket_count = cc;
    add(sink, &bad); /* 10: bounds not increasing */
    bad = h;
    bad.count = 4; /* fewer than the last bucket */
    add(sink, &bad); /* 11 */
    bad = h;
    bad.n_buckets = 40;
    add(sink, &bad); /* 12: too many buckets */
    bad = c;
    bad.value = -1;
    add(sink, &bad); /* 13: negative counter */
    bad = g;
    bad.struct_size = 8;
    add(sink, &bad); /* 14: struct too small */
    bad = g;
    bad.type = 7;
    add(sink, &bad); /* 15: unknown type */
    return 0;
}

static void test_sink_rules(void **state)
{
    (void)state;
    struct plugin_slot slot;
    memset(&slot, 0, sizeof slot);
    slot.abi = 2;
    snprintf(slot.name, sizeof slot.name, "t");
    slot.p.metrics2 = rules_metrics2;
    struct ferry_run run = {.struct_size = sizeof run, .pid = 1};
    Ferry__Wire__WorkloadMetrics *wm = NULL;
    n_add_rcs = 0;
    assert_int_equal(metrics_collect_run(&slot, &run, "web", "1.0.0", 1234, &wm), 0);
    assert_non_null(wm);
    assert_string_equal(wm->name, "web");
    assert_string_equal(wm->version, "1.0.0");
    assert_int_equal(wm->collected_ms, 1234);
    assert_int_equal(wm->n_metrics, 3);
    assert_int_equal(wm->dropped, 13);
    assert_int_equal(n_add_rcs, 16);
    for (int i = 0; i < 3; i++)
        assert_int_equal(add_rcs[i], 0);
    const int want[] = {FERRY_E_INVALID, FERRY_E_INVALID, FERRY_E_INVALID, FERRY_E_LIMIT, FERRY_E_INVALID,
                        FERRY_E_LIMIT,   FERRY_E_INVALID, FERRY_E_INVALID, FERRY_E_INVALID, FERRY_E_LIMIT,
                        FERRY_E_INVALID, FERRY_E_INVALID, FERRY_E_INVALID};
    for (int i = 0; i < 13; i++)
        if (add_rcs[3 + i] != want[i])
            fail_msg("sample %d: rc %d, want %d", 3 + i, add_rcs[3 + i], want[i]);

    assert_string_equal(wm->metrics[1]->name, "requests_total");
    assert_int_equal(wm->metrics[1]->type, FERRY__WIRE__METRIC_TYPE__METRIC_COUNTER);
    assert_int_equal(wm->metrics[1]->n_labels, 2);
    assert_string_equal(wm->metrics[1]->labels[0]->key, "path");
    assert_string_equal(wm->metrics[1]->labels[0]->value, "/v2/models");
    const Ferry__Wire__Metric *h = wm->metrics[2];
    assert_int_equal(h->type, FERRY__WIRE__METRIC_TYPE__METRIC_HISTOGRAM);
    assert_int_equal(h->count, 10);
    assert_int_equal(h->n_buckets, 3);
    assert_true(h->buckets[2]->le == 1.0);
    assert_int_equal(h->buckets[2]->count, 9);

    /* The JSON shape `ferry metrics --json` prints per workload. */
    json_t *j = metricwire_json(wm);
    char *text = json_dumps(j, JSON_COMPACT);
    assert_non_null(strstr(text, "{\"name\":\"requests_total\",\"type\":\"counter\",\"labels\":{\"path\":"
                                 "\"/v2/models\",\"code\":\"200\"},\"value\":12.0}"));
    assert_non_null(strstr(text, "\"count\":10,\"buckets\":[{\"le\":0.01,\"count\":2}"));
    assert_non_null(strstr(text, "\"dropped\":13"));
    free(text);
    json_decref(j);
    ferry__wire__workload_metrics__free_unpacked(wm, NULL);
}

/* More samples than a run may have: the first 64 stay, the rest are
 * refused with FERRY_E_LIMIT and counted. */
static int flood_metrics2(void *state, struct ferry_run *run, struct ferry_metric_sink *sink)
{
    (void)state;
    (void)run;
    for (int i = 0; i < 100; i++) {
        char name[32];
        snprintf(name, sizeof name, "m_%d", i);
        struct ferry_sample g = {.struct_size = sizeof g, .type = FERRY_METRIC_GAUGE, .name = name, .value = i};
        add(sink, &g);
    }
    return 0;
}

/* Big samples: the run's byte budget ends it before the count does. */
static int heavy_metrics2(void *state, struct ferry_run *run, struct ferry_metric_sink *sink)
{
    (void)state;
    (void)run;
    char v[FERRY_METRIC_LABEL_VALUE_MAX + 1];
    memset(v, 'x', sizeof v - 1);
    v[sizeof v - 1] = '\0';
    const char *const labels[] = {"a", v, "b", v, "c", v, "d", v, "e", v, "f", v, "g", v, "h", v, NULL};
    for (int i = 0; i < 60; i++) {
        struct ferry_sample g = {.struct_size = sizeof g, .type = FERRY_METRIC_GAUGE, .name = "wide",
                                 .labels = labels, .value = i};
        add(sink, &g);
    }
    return 0;
}

static void test_bounds(void **state)
{
    (void)state;
    struct plugin_slot slot;
    memset(&slot, 0, sizeof slot);
    slot.abi = 2;
    slot.p.metrics2 = flood_metrics2;
    struct ferry_run run = {.struct_size = sizeof run, .pid = 1};
    Ferry__Wire__WorkloadMetrics *wm = NULL;
    n_add_rcs = 0;
    assert_int_equal(metrics_collect_run(&slot, &run, "a", "1", 1, &wm), 0);
    assert_int_equal(wm->n_metrics, FERRY_METRIC_SAMPLES_MAX);
    assert_int_equal(wm->dropped, 100 - FERRY_METRIC_SAMPLES_MAX);
    assert_int_equal(add_rcs[FERRY_METRIC_SAMPLES_MAX], FERRY_E_LIMIT);
    ferry__wire__workload_metrics__free_unpacked(wm, NULL);

    slot.p.metrics2 = heavy_metrics2;
    assert_int_equal(metrics_collect_run(&slot, &run, "a", "1", 1, &wm), 0);
    assert_true(wm->n_metrics < 60);
    assert_int_equal(wm->n_metrics + wm->dropped, 60);
    assert_true(ferry__wire__workload_metrics__get_packed_size(wm) <= METRICS_RUN_MAX_BYTES + 64);

    /* A report takes runs until its budget is spent; the rest are counted. */
    Ferry__Wire__WorkloadMetrics *runs[8];
    for (int i = 0; i < 8; i++)
        runs[i] = wm;
    Ferry__Wire__ReportBody body;
    ferry__wire__report_body__init(&body);
    assert_int_equal(metricwire_fill_body(&body, runs, 8), 0);
    assert_true(body.n_metrics >= 3 && body.n_metrics < 8);
    assert_int_equal(body.n_metrics + body.metrics_dropped, 8);
    size_t total = 0;
    for (size_t i = 0; i < body.n_metrics; i++)
        total += ferry__wire__workload_metrics__get_packed_size(body.metrics[i]) + 6;
    assert_true(total <= METRICS_REPORT_MAX_BYTES);
    free(body.metrics);
    ferry__wire__workload_metrics__free_unpacked(wm, NULL);
}

/* ABI 1: untyped values become gauges; past FERRY_METRICS_MAX and bad
 * names are counted as dropped. */
static int v1_metrics(void *state, struct ferry_run *run, struct ferry_metrics *out)
{
    (void)state;
    (void)run;
    out->count = 40; /* claims more than the array holds */
    for (int i = 0; i < FERRY_METRICS_MAX; i++) {
        snprintf(out->items[i].name, sizeof out->items[i].name, "v1_%d", i);
        out->items[i].value = i;
    }
    memset(out->items[1].name, 'x', sizeof out->items[1].name); /* no NUL: cut, still a name */
    snprintf(out->items[2].name, sizeof out->items[2].name, "bad name");
    return 0;
}

static void test_abi1_values(void **state)
{
    (void)state;
    struct plugin_slot slot;
    memset(&slot, 0, sizeof slot);
    slot.abi = 1;
    slot.p.metrics = v1_metrics;
    struct ferry_run run = {.struct_size = sizeof run, .pid = 1};
    Ferry__Wire__WorkloadMetrics *wm = NULL;
    assert_int_equal(metrics_collect_run(&slot, &run, "a", "1", 1, &wm), 0);
    /* 64 'x' is longer than a name may be: dropped, as is "bad name". */
    assert_int_equal(wm->n_metrics, FERRY_METRICS_MAX - 2);
    assert_int_equal(wm->dropped, 2 + (40 - FERRY_METRICS_MAX));
    assert_string_equal(wm->metrics[0]->name, "v1_0");
    assert_int_equal(wm->metrics[0]->type, FERRY__WIRE__METRIC_TYPE__METRIC_GAUGE);
    assert_int_equal(wm->metrics[0]->n_labels, 0);
    ferry__wire__workload_metrics__free_unpacked(wm, NULL);

    /* A plugin with neither: no values, no error. */
    slot.p.metrics = NULL;
    assert_int_equal(metrics_collect_run(&slot, &run, "a", "1", 1, &wm), 0);
    assert_int_equal(wm->n_metrics, 0);
    ferry__wire__workload_metrics__free_unpacked(wm, NULL);
}

/* What the registry checks again on receipt (it trusts no agent). */
static void test_wire_check(void **state)
{
    (void)state;
    Ferry__Wire__Metric m;
    ferry__wire__metric__init(&m);
    m.name = (char *)"ok_name";
    assert_int_equal(metric_check(&m), 0);
    m.name = (char *)"";
    assert_int_equal(metric_check(&m), FERRY_E_INVALID);
    m.name = (char *)"ok";
    m.type = 5;
    assert_int_equal(metric_check(&m), FERRY_E_INVALID);
    m.type = FERRY__WIRE__METRIC_TYPE__METRIC_GAUGE;
    m.count = 3; /* only histograms count */
    assert_int_equal(metric_check(&m), FERRY_E_INVALID);
    m.count = 0;
    Ferry__Wire__Label l;
    ferry__wire__label__init(&l);
    l.key = (char *)"__reserved";
    l.value = (char *)"v";
    Ferry__Wire__Label *lp = &l;
    m.labels = &lp;
    m.n_labels = 1;
    assert_int_equal(metric_check(&m), FERRY_E_INVALID);
    l.key = (char *)"fine";
    assert_int_equal(metric_check(&m), 0);
    m.n_labels = 9;
    assert_int_equal(metric_check(&m), FERRY_E_LIMIT);
}

/* ---- the periodic pass on a real loop ---- */

struct hooks_state {
    struct plugin_slot slot;
    struct ferry_run run;
    size_t n_runs; /* how many runs the agent has; 0: one */
    int listed, released, updated;
    uv_loop_t *loop;
    struct metrics *m;
};

static size_t h_list(void *arg, struct metrics_run *out, size_t cap)
{
    struct hooks_state *h = arg;
    size_t want = h->n_runs ? h->n_runs : 1, n = want < cap ? want : cap;
    for (size_t i = 0; i < n; i++) {
        snprintf(out[i].name, sizeof out[i].name, "web%s%zu", i ? "-" : "", i);
        if (i == 0)
            snprintf(out[i].name, sizeof out[i].name, "web");
        snprintf(out[i].version, sizeof out[i].version, "2.0.0");
        out[i].plugin = &h->slot;
        out[i].run = &h->run;
        out[i].token = h;
        h->listed++;
    }
    return n;
}

static void h_release(void *arg, const struct metrics_run *r)
{
    struct hooks_state *h = arg;
    assert_ptr_equal(r->token, h);
    h->released++;
}

static void h_updated(void *arg)
{
    struct hooks_state *h = arg;
    h->updated++;
    if (h->updated == 2)
        uv_stop(h->loop);
}

static void on_deadline(uv_timer_t *t) { uv_stop(t->loop); }

/* More runs than a first small pass holds: every one is measured, and
 * every run lent is handed back. */
static void test_many_runs(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct hooks_state h;
    memset(&h, 0, sizeof h);
    h.loop = &loop;
    h.n_runs = 40;
    h.slot.abi = 2;
    h.slot.p.metrics2 = rules_metrics2;
    h.run.struct_size = sizeof h.run;
    struct metrics_hooks hooks = {.list = h_list, .release = h_release, .updated = h_updated};
    struct metrics *m = NULL;
    assert_int_equal(metrics_start(&loop, 3600 * 1000, &hooks, &h, &m), 0);
    h.updated = 1; /* stop the loop at the first update */
    metrics_kick(m);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(h.updated, 2);
    assert_int_equal(h.listed, h.released);
    assert_non_null(metrics_get(m, "web", "2.0.0"));
    assert_non_null(metrics_get(m, "web-39", "2.0.0"));
    metrics_stop(m);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_periodic_pass(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct hooks_state h;
    memset(&h, 0, sizeof h);
    h.loop = &loop;
    h.slot.abi = 2;
    h.slot.p.metrics2 = rules_metrics2;
    h.run.struct_size = sizeof h.run;
    struct metrics_hooks hooks = {.list = h_list, .release = h_release, .updated = h_updated};
    struct metrics *m = NULL;
    assert_int_equal(metrics_start(&loop, 500, &hooks, &h, &m), -EINVAL); /* under a second */
    assert_int_equal(metrics_start(&loop, 1000, &hooks, &h, &m), 0);
    metrics_kick(m); /* the first at once, the second at the tick */
    uv_timer_t deadline;
    uv_timer_init(&loop, &deadline);
    uv_timer_start(&deadline, on_deadline, 10000, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(h.updated, 2);
    assert_int_equal(h.listed, h.released);
    const Ferry__Wire__WorkloadMetrics *got = metrics_get(m, "web", "2.0.0");
    assert_non_null(got);
    assert_int_equal(got->n_metrics, 3);
    assert_null(metrics_get(m, "web", "1.0.0"));

    Ferry__Wire__ReportBody body;
    ferry__wire__report_body__init(&body);
    assert_int_equal(metrics_fill_body(m, &body), 0);
    assert_int_equal(body.n_metrics, 1);
    assert_ptr_equal(body.metrics[0], got);
    /* Round trip through the wire. */
    size_t len = ferry__wire__report_body__get_packed_size(&body);
    uint8_t *buf = malloc(len);
    ferry__wire__report_body__pack(&body, buf);
    metrics_body_done(&body);
    Ferry__Wire__ReportBody *back = ferry__wire__report_body__unpack(NULL, len, buf);
    assert_non_null(back);
    assert_int_equal(back->n_metrics, 1);
    assert_string_equal(back->metrics[0]->metrics[2]->name, "latency_seconds");
    ferry__wire__report_body__free_unpacked(back, NULL);
    free(buf);

    metrics_kick(m);   /* in flight when stopped: it still hands the run back */
    metrics_stop(m);
    uv_timer_stop(&deadline);
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(h.listed, h.released);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sink_rules),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_abi1_values),
        cmocka_unit_test(test_wire_check),
        cmocka_unit_test(test_periodic_pass),
        cmocka_unit_test(test_many_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
