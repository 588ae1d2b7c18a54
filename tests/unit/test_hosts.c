/* The registry's per-host bounds and checks (registry/hosts.c) and the
 * offer limits (registry/offerlimits.c): pure functions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "hosts.h"
#include "offerlimits.h"

static int check(size_t n, char keys[][80], char vals[][80], char *text, size_t cap)
{
    Ferry__Wire__Label lv[64], *lp[64];
    for (size_t i = 0; i < n; i++) {
        ferry__wire__label__init(&lv[i]);
        lv[i].key = keys[i];
        lv[i].value = vals[i];
        lp[i] = &lv[i];
    }
    struct label_set s;
    return hosts_labels_check("h", lp, n, &s, text, cap);
}

static void test_labels(void **state)
{
    (void)state;
    char keys[64][80], vals[64][80], text[HOSTS_LABELS_TEXT_MAX + 1];
    snprintf(keys[0], 80, "zone");
    snprintf(vals[0], 80, "a");
    snprintf(keys[1], 80, "env");
    snprintf(vals[1], 80, "prod");
    assert_int_equal(check(2, keys, vals, text, sizeof text), 0);
    assert_string_equal(text, "env=prod,zone=a");
    assert_int_equal(check(0, keys, vals, text, sizeof text), 0);
    assert_string_equal(text, "");

    /* 64 bytes fit, 65 do not: refused, not truncated. */
    memset(vals[0], 'v', 64);
    vals[0][64] = '\0';
    assert_int_equal(check(1, keys, vals, text, sizeof text), 0);
    vals[0][64] = 'v';
    vals[0][65] = '\0';
    assert_int_equal(check(1, keys, vals, text, sizeof text), FERRY_E_LIMIT);
    assert_non_null(strstr(err_detail(), "at most 64 bytes"));

    snprintf(vals[0], 80, "bad value");
    assert_int_equal(check(1, keys, vals, text, sizeof text), FERRY_E_INVALID);
    snprintf(keys[1], 80, "zone");
    snprintf(vals[0], 80, "a");
    assert_int_equal(check(2, keys, vals, text, sizeof text), FERRY_E_INVALID);
    assert_non_null(strstr(err_detail(), "given twice"));

    for (size_t i = 0; i < 33; i++) {
        snprintf(keys[i], 80, "k%zu", i);
        snprintf(vals[i], 80, "v");
    }
    assert_int_equal(check(32, keys, vals, text, sizeof text), 0);
    assert_int_equal(check(33, keys, vals, text, sizeof text), FERRY_E_LIMIT);
    assert_non_null(strstr(err_detail(), "33 labels, at most 32"));

    /* 32 labels of 64+64 bytes do not fit the canonical text. */
    for (size_t i = 0; i < 32; i++) {
        memset(keys[i], 'k', 64);
        snprintf(keys[i], 80, "%02zu", i);
        keys[i][2] = 'k';
        memset(keys[i] + 2, 'k', 62);
        keys[i][64] = '\0';
        memset(vals[i], 'v', 64);
        vals[i][64] = '\0';
    }
    assert_int_equal(check(32, keys, vals, text, sizeof text), FERRY_E_LIMIT);
    assert_non_null(strstr(err_detail(), "at most 2047"));
}

static void test_reports(void **state)
{
    (void)state;
    Ferry__Wire__ReportBody b;
    ferry__wire__report_body__init(&b);
    assert_int_equal(hosts_report_check("h", 100, &b), 0);
    assert_int_equal(hosts_report_check("h", HOSTS_REPORT_MAX_BYTES, &b), 0);
    assert_int_equal(hosts_report_check("h", HOSTS_REPORT_MAX_BYTES + 1, &b), FERRY_E_LIMIT);
    assert_int_equal(hosts_report_check("h", HOSTS_REPORT_MAX_BYTES + 1, NULL), FERRY_E_LIMIT);
    static Ferry__Wire__WorkloadReport one, *many[HOSTS_REPORT_MAX_WORKLOADS + 1];
    ferry__wire__workload_report__init(&one);
    for (size_t i = 0; i <= HOSTS_REPORT_MAX_WORKLOADS; i++)
        many[i] = &one;
    b.workloads = many;
    b.n_workloads = HOSTS_REPORT_MAX_WORKLOADS;
    assert_int_equal(hosts_report_check("h", 100, &b), 0);
    b.n_workloads++;
    assert_int_equal(hosts_report_check("h", 100, &b), FERRY_E_LIMIT);
    b.n_workloads = 0;
    b.n_events = HOSTS_REPORT_MAX_EVENTS + 1;
    assert_int_equal(hosts_report_check("h", 100, &b), FERRY_E_LIMIT);
    assert_non_null(strstr(err_detail(), "state changes"));

    /* A state change carrying a field-0 tag (80 00 00) would be stored
     * re-encoded and never read back: refused whole. */
    b.n_events = 0;
    Ferry__Wire__WorkloadReport w;
    ferry__wire__workload_report__init(&w);
    w.name = "web";
    uint8_t good[64], bad[67];
    size_t n = ferry__wire__workload_report__pack(&w, good);
    memcpy(bad, good, n);
    memcpy(bad + n, "\x80\x00\x00", 3);
    Ferry__Wire__WorkloadReport *poisoned = ferry__wire__workload_report__unpack(NULL, n + 3, bad);
    assert_non_null(poisoned);
    Ferry__Wire__WorkloadReport *ev[1] = {poisoned};
    b.events = ev;
    b.n_events = 1;
    assert_int_equal(hosts_report_check("h", 100, &b), FERRY_E_PROTOCOL);
    assert_non_null(strstr(err_detail(), "report from h"));
    ferry__wire__workload_report__free_unpacked(poisoned, NULL);
    Ferry__Wire__WorkloadReport *clean = ferry__wire__workload_report__unpack(NULL, n, good);
    ev[0] = clean;
    assert_int_equal(hosts_report_check("h", 100, &b), 0);
    ferry__wire__workload_report__free_unpacked(clean, NULL);
}

static void test_clock_window(void **state)
{
    (void)state;
    uint64_t now = 1796000000000ull;
    assert_int_equal(hosts_time_check("report", "h", now, now), 0);
    assert_int_equal(hosts_time_check("report", "h", now - HOSTS_CLOCK_WINDOW_MS, now), 0);
    assert_int_equal(hosts_time_check("report", "h", now + HOSTS_CLOCK_WINDOW_MS, now), 0);
    assert_int_equal(hosts_time_check("report", "h", now - HOSTS_CLOCK_WINDOW_MS - 1, now),
                     FERRY_E_INVALID);
    assert_int_equal(hosts_time_check("report", "h", now + HOSTS_CLOCK_WINDOW_MS + 1, now),
                     FERRY_E_INVALID);
    assert_int_equal(hosts_time_check("report", "h", 0, now), FERRY_E_INVALID);
}

static void test_offer_limits(void **state)
{
    (void)state;
    Ferry__Manifest m;
    Ferry__Spec spec;
    Ferry__File f1, f2, *fp[2] = {&f1, &f2};
    ferry__manifest__init(&m);
    ferry__spec__init(&spec);
    ferry__file__init(&f1);
    ferry__file__init(&f2);
    spec.name = "app";
    spec.version = "1.0";
    f1.path = "a";
    f1.size = 100;
    f2.path = "b";
    f2.size = 5000;
    m.spec = &spec;
    m.files = fp;
    m.n_files = 2;
    assert_int_equal(offer_limits_check(&m, 5000, 5100, 5100), 0);
    assert_int_equal(offer_limits_check(&m, 4999, 0, 0), FERRY_E_LIMIT);
    assert_non_null(strstr(err_detail(), "b is 5000 bytes, over this registry's --max-blob-size of 4999"));
    assert_int_equal(offer_limits_check(&m, 5000, 5101, 5100), FERRY_E_LIMIT);
    assert_non_null(strstr(err_detail(), "needs 5101 bytes"));
    assert_int_equal(offer_limits_check(&m, REGISTRY_DEFAULT_MAX_BLOB_SIZE, 0, 0), 0);
}

/* The plugins a hello reports: bounded counts, plain names only. */
static void test_plugins(void **state)
{
    (void)state;
    char *rts[40];
    for (int i = 0; i < 40; i++)
        rts[i] = "exec";
    Ferry__Wire__PluginInfo p;
    ferry__wire__plugin_info__init(&p);
    p.name = "exec";
    p.runtimes = rts;
    p.n_runtimes = 1;
    Ferry__Wire__PluginInfo *pp[40];
    for (int i = 0; i < 40; i++)
        pp[i] = &p;
    Ferry__Wire__HostHello h;
    ferry__wire__host_hello__init(&h);
    h.name = "h1";
    h.plugins = pp;
    h.n_plugins = 1;
    assert_int_equal(hosts_plugins_check(&h), 0);
    h.n_plugins = 0;
    assert_int_equal(hosts_plugins_check(&h), 0);
    h.n_plugins = HOSTS_PLUGINS_MAX + 1;
    assert_int_equal(hosts_plugins_check(&h), FERRY_E_LIMIT);
    assert_non_null(strstr(err_detail(), "at most 32"));
    h.n_plugins = 1;
    p.n_runtimes = HOSTS_PLUGINS_MAX + 1;
    assert_int_equal(hosts_plugins_check(&h), FERRY_E_LIMIT);
    p.n_runtimes = 1;
    p.name = "ex ec";
    assert_int_equal(hosts_plugins_check(&h), FERRY_E_INVALID);
    assert_non_null(strstr(err_detail(), "plugin name 'ex ec' is not valid"));
    p.name = "exec";
    rts[0] = "";
    assert_int_equal(hosts_plugins_check(&h), FERRY_E_INVALID);
    assert_non_null(strstr(err_detail(), "runtime '' is not valid"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_reports),
        cmocka_unit_test(test_clock_window),
        cmocka_unit_test(test_offer_limits),
        cmocka_unit_test(test_plugins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
