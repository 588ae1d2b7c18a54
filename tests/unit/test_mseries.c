/* Metric time series (registry/mseries.c, db_sqlite_series.c): buckets and
 * tiers, aggregation within a bucket, a resent run adding nothing, pruning
 * past each tier's age on insert, history surviving a reopen, and reads
 * through a read-only connection while the writer writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "error.h"
#include "mseries.h"
#include "rmetrics.h"
#include "dbscratch.h"

#define MIN_MS 60000LL
#define HOUR_MS (60 * MIN_MS)
/* A fixed "now", aligned to a minute, so the buckets are known. */
#define NOW (1800000000000LL)

static void test_buckets_and_tiers(void **state)
{
    (void)state;
    assert_int_equal(mseries_bucket(NOW + 9999, 10), NOW);
    assert_int_equal(mseries_bucket(NOW + 10000, 10), NOW + 10000);
    assert_int_equal(mseries_bucket(NOW + 59999, 60), NOW);
    assert_int_equal(mseries_bucket(-1, 10), -10000); /* floor, not toward zero */
    /* The finest tier that still holds since. */
    assert_int_equal(mseries_tier_for(NOW - HOUR_MS, NOW)->res_s, 10);
    assert_int_equal(mseries_tier_for(NOW - 6 * HOUR_MS, NOW)->res_s, 10);
    assert_int_equal(mseries_tier_for(NOW - 6 * HOUR_MS - 1, NOW)->res_s, 60);
    assert_int_equal(mseries_tier_for(NOW - 30 * 24 * HOUR_MS, NOW)->res_s, 60);
    assert_int_equal(mseries_cutoff(&mseries_tiers[0], NOW), NOW - 6 * HOUR_MS);
    assert_int_equal(mseries_cutoff(&mseries_tiers[1], NOW), NOW - 7 * 24 * HOUR_MS);
}

static void test_points_from_metrics(void **state)
{
    (void)state;
    Ferry__Wire__Label lab = FERRY__WIRE__LABEL__INIT;
    lab.key = "input";
    lab.value = "x";
    Ferry__Wire__Label *labs[] = {&lab};
    Ferry__Wire__Metric g = FERRY__WIRE__METRIC__INIT, h = FERRY__WIRE__METRIC__INIT,
                        bad = FERRY__WIRE__METRIC__INIT;
    g.name = "drift";
    g.type = FERRY__WIRE__METRIC_TYPE__METRIC_GAUGE;
    g.labels = labs;
    g.n_labels = 1;
    g.value = 0.5;
    h.name = "latency_seconds";
    h.type = FERRY__WIRE__METRIC_TYPE__METRIC_HISTOGRAM;
    h.value = 2.5;
    h.count = 10;
    bad.name = "9bad name";
    Ferry__Wire__Metric *ms[] = {&g, &bad, &h};
    Ferry__Wire__WorkloadMetrics w = FERRY__WIRE__WORKLOAD_METRICS__INIT;
    w.name = "m";
    w.version = "1";
    w.metrics = ms;
    w.n_metrics = 3;
    struct db_series_run r;
    assert_int_equal(mseries_points(&w, NULL, NOW, &r), 0);
    assert_int_equal(r.n, 3); /* the malformed one is left out; a histogram is two */
    assert_string_equal(r.points[0].series, "drift{input=\"x\"}");
    assert_string_equal(r.points[1].series, "latency_seconds_sum");
    assert_true(r.points[1].value == 2.5);
    assert_string_equal(r.points[2].series, "latency_seconds_count");
    assert_true(r.points[2].value == 10.0);
    mseries_run_free(&r);

    /* At most MSERIES_MAX_PER_RUN series from one run. */
    Ferry__Wire__Metric many[40];
    Ferry__Wire__Metric *mp[40];
    char names[40][16];
    for (int i = 0; i < 40; i++) {
        ferry__wire__metric__init(&many[i]);
        snprintf(names[i], sizeof names[i], "m_%d", i);
        many[i].name = names[i];
        mp[i] = &many[i];
    }
    w.metrics = mp;
    w.n_metrics = 40;
    assert_int_equal(mseries_points(&w, NULL, NOW, &r), 0);
    assert_int_equal(r.n, MSERIES_MAX_PER_RUN);
    mseries_run_free(&r);
}

/* A histogram with bounds 0.1, 0.5, 1 and these cumulative counts. */
struct hist {
    Ferry__Wire__Metric m;
    Ferry__Wire__MetricBucket b[3];
    Ferry__Wire__MetricBucket *bp[3];
};

static void hist_init(struct hist *h, uint64_t c0, uint64_t c1, uint64_t c2, uint64_t count)
{
    static const double le[3] = {0.1, 0.5, 1.0};
    const uint64_t c[3] = {c0, c1, c2};
    ferry__wire__metric__init(&h->m);
    h->m.name = "latency_seconds";
    h->m.type = FERRY__WIRE__METRIC_TYPE__METRIC_HISTOGRAM;
    h->m.count = count;
    for (int i = 0; i < 3; i++) {
        ferry__wire__metric_bucket__init(&h->b[i]);
        h->b[i].le = le[i];
        h->b[i].count = c[i];
        h->bp[i] = &h->b[i];
    }
    h->m.buckets = h->bp;
    h->m.n_buckets = 3;
}

static void test_quantiles_between_reports(void **state)
{
    (void)state;
    struct hist prev, cur;
    hist_init(&prev, 10, 20, 30, 30);
    hist_init(&cur, 10, 70, 130, 130); /* since prev: 0, 50, 50 in the three buckets */
    double v = -1;
    assert_int_equal(mseries_quantile(&cur.m, &prev.m, 0.5, &v), 0);
    assert_true(v > 0.4999 && v < 0.5001);
    assert_int_equal(mseries_quantile(&cur.m, &prev.m, 0.99, &v), 0);
    assert_true(v > 0.9899 && v < 0.9901);
    assert_int_equal(mseries_quantile(&cur.m, &prev.m, 0.25, &v), 0);
    assert_true(v > 0.2999 && v < 0.3001); /* a quarter: halfway into (0.1, 0.5] */
    /* Observations past the largest bound: that bound. */
    hist_init(&cur, 10, 70, 130, 230);
    assert_int_equal(mseries_quantile(&cur.m, &prev.m, 0.99, &v), 0);
    assert_true(v == 1.0);
    /* Nothing new, a reset, other bounds: no quantile. */
    assert_int_equal(mseries_quantile(&prev.m, &prev.m, 0.5, &v), -1);
    hist_init(&cur, 1, 2, 3, 3);
    assert_int_equal(mseries_quantile(&cur.m, &prev.m, 0.5, &v), -1);
    hist_init(&cur, 10, 70, 130, 130);
    cur.b[1].le = 0.6;
    assert_int_equal(mseries_quantile(&cur.m, &prev.m, 0.5, &v), -1);

    /* Through mseries_points: NAME:p50 and NAME:p99 gauges with the labels. */
    Ferry__Wire__Label lab = FERRY__WIRE__LABEL__INIT;
    lab.key = "protocol";
    lab.value = "v2";
    Ferry__Wire__Label *labs[] = {&lab};
    hist_init(&cur, 10, 70, 130, 130);
    cur.m.labels = prev.m.labels = labs;
    cur.m.n_labels = prev.m.n_labels = 1;
    Ferry__Wire__Metric *mc[] = {&cur.m}, *mp[] = {&prev.m};
    Ferry__Wire__WorkloadMetrics w = FERRY__WIRE__WORKLOAD_METRICS__INIT, pw = FERRY__WIRE__WORKLOAD_METRICS__INIT;
    w.name = pw.name = "m";
    w.version = pw.version = "1";
    w.metrics = mc;
    w.n_metrics = 1;
    pw.metrics = mp;
    pw.n_metrics = 1;
    struct db_series_run r;
    assert_int_equal(mseries_points(&w, &pw, NOW, &r), 0);
    assert_int_equal(r.n, 4);
    assert_string_equal(r.points[0].series, "latency_seconds_sum{protocol=\"v2\"}");
    assert_string_equal(r.points[2].series, "latency_seconds:p50{protocol=\"v2\"}");
    assert_int_equal(r.points[2].type, FERRY__WIRE__METRIC_TYPE__METRIC_GAUGE);
    assert_true(r.points[2].value > 0.4999 && r.points[2].value < 0.5001);
    assert_string_equal(r.points[3].series, "latency_seconds:p99{protocol=\"v2\"}");
    mseries_run_free(&r);
    /* Other labels are another histogram: no quantiles from it. */
    Ferry__Wire__Label other = FERRY__WIRE__LABEL__INIT;
    other.key = "protocol";
    other.value = "mlflow";
    Ferry__Wire__Label *olabs[] = {&other};
    prev.m.labels = olabs;
    assert_int_equal(mseries_points(&w, &pw, NOW, &r), 0);
    assert_int_equal(r.n, 2);
    mseries_run_free(&r);
}

/* One run of one gauge "g" with value v at t. */
static void add_one(struct db *db, const char *host, int64_t t, double v, int64_t now)
{
    struct db_series_point p = {.type = FERRY__WIRE__METRIC_TYPE__METRIC_GAUGE, .value = v};
    snprintf(p.series, sizeof p.series, "g");
    struct db_series_run r = {.t_ms = t, .points = &p, .n = 1};
    snprintf(r.name, sizeof r.name, "app");
    snprintf(r.version, sizeof r.version, "1.0");
    assert_int_equal(db_series_add(db, host, &r, 1, now), 0);
}

static size_t query(struct db *db, int res, int64_t since, struct db_series_row **rows)
{
    size_t n = 0;
    assert_int_equal(db_series_query(db, "app", NULL, NULL, res, since, 100000, rows, &n), 0);
    return n;
}

static void test_aggregate_and_dedupe(void **state)
{
    struct db_fixture *f = *state;
    add_one(&f->db, "h1", NOW + 1000, 4, NOW + 1000);
    add_one(&f->db, "h1", NOW + 5000, 2, NOW + 5000);
    add_one(&f->db, "h1", NOW + 5000, 100, NOW + 6000); /* resent: not newer, ignored */
    add_one(&f->db, "h1", NOW + 3000, 100, NOW + 6000); /* older than stored: ignored */
    add_one(&f->db, "h1", NOW + 12000, 9, NOW + 12000);
    struct db_series_row *rows = NULL;
    size_t n = query(&f->db, 10, NOW - MIN_MS, &rows);
    assert_int_equal(n, 2);
    assert_int_equal(rows[0].bucket_ms, NOW);
    assert_int_equal(rows[0].count, 2);
    assert_true(rows[0].sum == 6 && rows[0].min == 2 && rows[0].max == 4 && rows[0].last == 2);
    assert_int_equal(rows[1].bucket_ms, NOW + 10000);
    assert_true(rows[1].last == 9);
    free(rows);
    /* The minute tier has all three in one bucket. */
    n = query(&f->db, 60, NOW - MIN_MS, &rows);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].count, 3);
    assert_true(rows[0].max == 9 && rows[0].last == 9);
    free(rows);
    /* host and series filters. */
    add_one(&f->db, "h2", NOW + 1000, 1, NOW + 1000);
    assert_int_equal(db_series_query(&f->db, "app", "h2", "g", 10, 0, 100, &rows, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].host, "h2");
    free(rows);
    assert_int_equal(db_series_query(&f->db, "app", NULL, "nope", 10, 0, 100, &rows, &n), 0);
    assert_int_equal(n, 0);
    free(rows);
}

static void test_prune_on_insert(void **state)
{
    struct db_fixture *f = *state;
    /* Each fresh when written (a run's samples only move forward). */
    int64_t older = NOW - 7 * 24 * HOUR_MS - 3 * HOUR_MS, old = NOW - 7 * HOUR_MS;
    add_one(&f->db, "h1", older, 1, older);
    add_one(&f->db, "h1", old, 1, old);
    struct db_series_row *rows = NULL;
    assert_int_equal(query(&f->db, 10, 0, &rows), 1);
    free(rows);
    assert_int_equal(query(&f->db, 60, 0, &rows), 2);
    free(rows);
    /* A sample now prunes the 10 s buckets past 6 h and the 1 min ones past 7 d. */
    add_one(&f->db, "h1", NOW, 1, NOW);
    size_t n = query(&f->db, 10, 0, &rows);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].bucket_ms, NOW);
    free(rows);
    n = query(&f->db, 60, 0, &rows);
    assert_int_equal(n, 2); /* 7 h ago and now; 7 days 3 h ago is gone */
    assert_int_equal(rows[0].bucket_ms, mseries_bucket(old, 60));
    free(rows);
    /* A sample older than a tier keeps never lands in it. */
    add_one(&f->db, "h9", NOW - 7 * HOUR_MS, 1, NOW);
    assert_int_equal(db_series_query(&f->db, "app", "h9", NULL, 10, 0, 100, &rows, &n), 0);
    assert_int_equal(n, 0);
    free(rows);
    assert_int_equal(db_series_query(&f->db, "app", "h9", NULL, 60, 0, 100, &rows, &n), 0);
    assert_int_equal(n, 1);
    free(rows);
}

static void test_survives_reopen_and_reader(void **state)
{
    struct db_fixture *f = *state;
    for (int i = 0; i < 30; i++)
        add_one(&f->db, "h1", NOW + i * 10000, i, NOW + i * 10000);
    db_close(&f->db);
    assert_int_equal(db_open(&f->db, f->path), 0);
    struct db_series_row *rows = NULL;
    assert_int_equal(query(&f->db, 10, NOW, &rows), 30);
    free(rows);
    /* A read-only connection sees what the writer commits, and cannot write. */
    struct db reader;
    assert_int_equal(db_open_reader(&reader, f->path), 0);
    size_t n = 0;
    assert_int_equal(db_series_query(&reader, "app", NULL, NULL, 10, NOW, 1000, &rows, &n), 0);
    assert_int_equal(n, 30);
    free(rows);
    add_one(&f->db, "h1", NOW + 300000, 1, NOW + 300000);
    assert_int_equal(db_series_query(&reader, "app", NULL, NULL, 10, NOW, 1000, &rows, &n), 0);
    assert_int_equal(n, 31);
    free(rows);
    struct db_series_point p = {.value = 1};
    snprintf(p.series, sizeof p.series, "g");
    struct db_series_run r = {.t_ms = NOW + 400000, .points = &p, .n = 1};
    snprintf(r.name, sizeof r.name, "app");
    assert_int_equal(db_series_add(&reader, "h1", &r, 1, NOW + 400000), FERRY_E_STORE);
    db_close(&reader);
}

static void test_events_after(void **state)
{
    struct db_fixture *f = *state;
    const uint8_t a[] = {1}, b[] = {2}, c[] = {3};
    const uint8_t *ch[] = {a, b, c};
    size_t lens[] = {1, 1, 1};
    assert_int_equal(db_events_add(&f->db, "h1", ch, lens, 3), 0);
    struct db_event *ev = NULL;
    size_t n = 0;
    assert_int_equal(db_events_after(&f->db, 0, 10, &ev, &n), 0);
    assert_int_equal(n, 3);
    uint64_t first = ev[0].seq;
    assert_true(ev[1].seq > first && ev[2].seq > ev[1].seq && ev[2].change[0] == 3);
    db_events_free(ev, n);
    assert_int_equal(db_events_after(&f->db, first, 10, &ev, &n), 0);
    assert_int_equal(n, 2);
    db_events_free(ev, n);
    /* UINT64_MAX: the newest ones, still oldest first. */
    assert_int_equal(db_events_after(&f->db, UINT64_MAX, 2, &ev, &n), 0);
    assert_int_equal(n, 2);
    assert_true(ev[0].change[0] == 2 && ev[1].change[0] == 3);
    db_events_free(ev, n);
}

/* Two reports through rmetrics_store_report: the second one's histogram
 * quantiles come from the differences with the first, stored beside the
 * newest metrics. */
static void test_report_quantiles(void **state)
{
    struct db_fixture *f = *state;
    struct hist h;
    Ferry__Wire__Metric *mp[] = {&h.m};
    Ferry__Wire__WorkloadMetrics w = FERRY__WIRE__WORKLOAD_METRICS__INIT;
    Ferry__Wire__WorkloadMetrics *wp[] = {&w};
    w.name = "app";
    w.version = "1.0";
    w.metrics = mp;
    w.n_metrics = 1;
    Ferry__Wire__ReportBody body = FERRY__WIRE__REPORT_BODY__INIT;
    body.host = "h1";
    body.metrics = wp;
    body.n_metrics = 1;
    hist_init(&h, 10, 20, 30, 30);
    w.collected_ms = (uint64_t)NOW;
    assert_int_equal(rmetrics_store_report(&f->db, "h1", &body, NOW), 0);
    hist_init(&h, 10, 70, 130, 130);
    w.collected_ms = (uint64_t)NOW + 10000;
    assert_int_equal(rmetrics_store_report(&f->db, "h1", &body, NOW + 10000), 0);
    struct db_series_row *rows = NULL;
    size_t n = 0;
    assert_int_equal(db_series_query(&f->db, "app", "h1", "latency_seconds:p50", 10, 0, 100, &rows, &n), 0);
    assert_int_equal(n, 1); /* none from the first report: nothing to compare with */
    assert_int_equal(rows[0].bucket_ms, NOW + 10000);
    assert_true(rows[0].last > 0.4999 && rows[0].last < 0.5001);
    free(rows);
    assert_int_equal(db_series_query(&f->db, "app", "h1", "latency_seconds:p99", 10, 0, 100, &rows, &n), 0);
    assert_int_equal(n, 1);
    assert_true(rows[0].last > 0.9899 && rows[0].last < 0.9901);
    free(rows);
    assert_int_equal(db_series_query(&f->db, "app", "h1", "latency_seconds_count", 10, 0, 100, &rows, &n), 0);
    assert_int_equal(n, 2);
    assert_true(rows[1].last == 130);
    free(rows);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets_and_tiers),
        cmocka_unit_test(test_points_from_metrics),
        cmocka_unit_test(test_quantiles_between_reports),
        DB_FIXTURE_TEST(test_aggregate_and_dedupe),
        DB_FIXTURE_TEST(test_prune_on_insert),
        DB_FIXTURE_TEST(test_survives_reopen_and_reader),
        DB_FIXTURE_TEST(test_events_after),
        DB_FIXTURE_TEST(test_report_quantiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
