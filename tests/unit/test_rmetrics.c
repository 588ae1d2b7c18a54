/* The registry's metrics store: what an agent sends is checked again (bad
 * samples refused and counted, bad or repeated run entries skipped, at
 * most 64 samples per run), each host's set replaces its last, and
 * ListMetrics filters by name and host. */
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
#include "metricwire.h"
#include "rmetrics.h"
#include "scratch.h"

struct fx {
    char *dir;
    struct db db;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f || scratch_setup((void **)&f->dir, "test_rmetrics") < 0)
        return -1;
    char path[4200];
    snprintf(path, sizeof path, "%s/registry.db", f->dir);
    if (db_open(&f->db, path) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    db_close(&f->db);
    void *d = f->dir;
    free(f);
    return scratch_teardown(&d);
}

/* Test messages live in static storage: no free_unpacked. */
#define NM 70
static Ferry__Wire__Metric metric_store[4][NM];
static Ferry__Wire__Metric *metric_ptrs[4][NM];
static char names[4][NM][16];

static Ferry__Wire__WorkloadMetrics *workload(int slot, const char *name, const char *version, size_t n)
{
    static Ferry__Wire__WorkloadMetrics w[4];
    ferry__wire__workload_metrics__init(&w[slot]);
    w[slot].name = (char *)name;
    w[slot].version = (char *)version;
    for (size_t i = 0; i < n; i++) {
        ferry__wire__metric__init(&metric_store[slot][i]);
        snprintf(names[slot][i], sizeof names[slot][i], "m_%zu", i);
        metric_store[slot][i].name = names[slot][i];
        metric_store[slot][i].value = (double)i;
        metric_ptrs[slot][i] = &metric_store[slot][i];
    }
    w[slot].metrics = metric_ptrs[slot];
    w[slot].n_metrics = n;
    return &w[slot];
}

static void list(struct fx *f, const char *name, const char *host, struct rmetrics_scratch *s,
                 Ferry__Wire__Response *resp, int want_rc)
{
    Ferry__Wire__ListMetrics q;
    ferry__wire__list_metrics__init(&q);
    q.name = (char *)name;
    q.host = (char *)(host ? host : "");
    ferry__wire__response__init(resp);
    memset(s, 0, sizeof *s);
    assert_int_equal(rmetrics_list(&f->db, &q, resp, s), want_rc);
}

static void test_store_and_list(void **state)
{
    struct fx *f = *state;
    Ferry__Wire__WorkloadMetrics *ws[4];
    ws[0] = workload(0, "web", "1.0", 3);
    metric_store[0][1].name = (char *)"bad name"; /* refused */
    ws[1] = workload(1, "Bad Name", "1.0", 1);   /* skipped */
    ws[2] = workload(2, "web", "1.0", 1);        /* repeated: skipped */
    ws[3] = workload(3, "api", "2", NM);         /* 64 kept */
    Ferry__Wire__ReportBody body;
    ferry__wire__report_body__init(&body);
    body.host = (char *)"h1";
    body.metrics = ws;
    body.n_metrics = 4;
    assert_int_equal(rmetrics_store_report(&f->db, "h1", &body, 1000), 0);

    struct rmetrics_scratch s;
    Ferry__Wire__Response resp;
    list(f, "web", NULL, &s, &resp, 0);
    assert_int_equal(resp.body_case, FERRY__WIRE__RESPONSE__BODY_METRICS);
    assert_int_equal(resp.metrics->n_entries, 1);
    const Ferry__Wire__HostMetrics *e = resp.metrics->entries[0];
    assert_string_equal(e->host, "h1");
    assert_int_equal(e->received_ms, 1000);
    assert_int_equal(e->refused, 1);
    assert_int_equal(e->workload->n_metrics, 2);
    assert_string_equal(e->workload->metrics[0]->name, "m_0");
    assert_string_equal(e->workload->metrics[1]->name, "m_2");
    rmetrics_scratch_free(&s);

    /* The same values again (a heartbeat between collections): nothing is
     * written, so they keep the time they were first stored. */
    assert_int_equal(rmetrics_store_report(&f->db, "h1", &body, 1500), 0);
    list(f, "web", NULL, &s, &resp, 0);
    assert_int_equal(resp.metrics->entries[0]->received_ms, 1000);
    rmetrics_scratch_free(&s);
    ws[0]->collected_ms = 1400; /* a new collection */
    assert_int_equal(rmetrics_store_report(&f->db, "h1", &body, 1600), 0);
    list(f, "web", NULL, &s, &resp, 0);
    assert_int_equal(resp.metrics->entries[0]->received_ms, 1600);
    assert_int_equal(resp.metrics->entries[0]->workload->collected_ms, 1400);
    rmetrics_scratch_free(&s);

    list(f, "api", NULL, &s, &resp, 0);
    assert_int_equal(resp.metrics->n_entries, 1);
    assert_int_equal(resp.metrics->entries[0]->workload->n_metrics, FERRY_METRIC_SAMPLES_MAX);
    assert_int_equal(resp.metrics->entries[0]->refused, NM - FERRY_METRIC_SAMPLES_MAX);
    rmetrics_scratch_free(&s);

    /* Another host's report adds to the picture; --host filters. */
    ws[0] = workload(0, "web", "1.1", 1);
    body.metrics = ws;
    body.n_metrics = 1;
    assert_int_equal(rmetrics_store_report(&f->db, "h2", &body, 2000), 0);
    list(f, "web", NULL, &s, &resp, 0);
    assert_int_equal(resp.metrics->n_entries, 2);
    assert_string_equal(resp.metrics->entries[1]->host, "h2");
    assert_string_equal(resp.metrics->entries[1]->workload->version, "1.1");
    rmetrics_scratch_free(&s);
    list(f, "web", "h2", &s, &resp, 0);
    assert_int_equal(resp.metrics->n_entries, 1);
    rmetrics_scratch_free(&s);
    list(f, "web", "h3", &s, &resp, 0);
    assert_int_equal(resp.metrics->n_entries, 0);
    rmetrics_scratch_free(&s);

    /* A host's next report replaces its set: web went from h1. */
    body.n_metrics = 0;
    assert_int_equal(rmetrics_store_report(&f->db, "h1", &body, 3000), 0);
    list(f, "web", NULL, &s, &resp, 0);
    assert_int_equal(resp.metrics->n_entries, 1);
    assert_string_equal(resp.metrics->entries[0]->host, "h2");
    rmetrics_scratch_free(&s);
    list(f, "api", NULL, &s, &resp, 0);
    assert_int_equal(resp.metrics->n_entries, 0);
    rmetrics_scratch_free(&s);

    err_clear();
    list(f, "Not A Name", NULL, &s, &resp, FERRY_E_INVALID);
    assert_string_equal(err_detail(), "metrics: 'Not A Name' is not a workload name");
    rmetrics_scratch_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_store_and_list, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
