/* A notebook run's notebook_kernel_* samples become its report's kernels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "kernelreport.h"

struct sample {
    Ferry__Wire__Metric m;
    Ferry__Wire__Label l[3];
    Ferry__Wire__Label *lp[3];
};

static void set(struct sample *s, const char *name, double v, const char *k1, const char *v1,
                const char *k2, const char *v2, const char *k3, const char *v3)
{
    ferry__wire__metric__init(&s->m);
    s->m.name = (char *)name;
    s->m.value = v;
    const char *kv[][2] = {{k1, v1}, {k2, v2}, {k3, v3}};
    for (int i = 0; i < 3 && kv[i][0]; i++) {
        ferry__wire__label__init(&s->l[i]);
        s->l[i].key = (char *)kv[i][0];
        s->l[i].value = (char *)kv[i][1];
        s->lp[i] = &s->l[i];
        s->m.n_labels++;
    }
    s->m.labels = s->lp;
}

static void test_kernels_from_samples(void **state)
{
    (void)state;
    static struct sample s[8];
    set(&s[0], "notebook_kernel_info", 1, "kernel", "aaaa", "state", "idle", "owner", "k1");
    set(&s[1], "notebook_kernel_start_time_seconds", 1796133512.25, "kernel", "aaaa", 0, 0, 0, 0);
    set(&s[2], "notebook_kernel_last_activity_seconds", 1796133520.5, "kernel", "aaaa", 0, 0, 0, 0);
    set(&s[3], "notebook_kernel_restarts_total", 2, "kernel", "aaaa", 0, 0, 0, 0);
    set(&s[4], "notebook_kernel_info", 1, "kernel", "bbbb", "state", "busy", 0, 0);
    /* Not a kernel's: another metric, a sample for a kernel with no info. */
    set(&s[5], "process_cpu_seconds_total", 3, 0, 0, 0, 0, 0, 0);
    set(&s[6], "notebook_kernel_restarts_total", 9, "kernel", "cccc", 0, 0, 0, 0);
    set(&s[7], "notebook_kernel_info", 1, "state", "idle", 0, 0, 0, 0); /* no kernel label */
    Ferry__Wire__Metric *mp[8];
    for (int i = 0; i < 8; i++)
        mp[i] = &s[i].m;
    Ferry__Wire__WorkloadMetrics wm = FERRY__WIRE__WORKLOAD_METRICS__INIT;
    wm.metrics = mp;
    wm.n_metrics = 8;
    Ferry__Wire__WorkloadReport w = FERRY__WIRE__WORKLOAD_REPORT__INIT;
    assert_int_equal(kernelreport_fill(&wm, &w), 2);
    assert_int_equal(w.n_kernels, 2);
    assert_string_equal(w.kernels[0]->id, "aaaa");
    assert_string_equal(w.kernels[0]->state, "idle");
    assert_string_equal(w.kernels[0]->owner, "k1");
    assert_int_equal(w.kernels[0]->started_ms, 1796133512250ull);
    assert_int_equal(w.kernels[0]->last_activity_ms, 1796133520500ull);
    assert_int_equal(w.kernels[0]->restarts, 2);
    assert_string_equal(w.kernels[1]->id, "bbbb");
    assert_string_equal(w.kernels[1]->state, "busy");
    assert_string_equal(w.kernels[1]->owner, "");
    assert_int_equal(w.kernels[1]->restarts, 0);
    /* It packs: what the report carries. */
    size_t len = ferry__wire__workload_report__get_packed_size(&w);
    assert_true(len > 0);
    kernelreport_done(&w);
    assert_null(w.kernels);
    assert_int_equal(w.n_kernels, 0);

    /* No metrics, or none of a kernel: no kernels, nothing allocated. */
    assert_int_equal(kernelreport_fill(NULL, &w), 0);
    assert_null(w.kernels);
    wm.n_metrics = 1;
    wm.metrics = &mp[5];
    assert_int_equal(kernelreport_fill(&wm, &w), 0);
    assert_null(w.kernels);
}

static void test_at_most_sixteen(void **state)
{
    (void)state;
    static struct sample s[20];
    static char ids[20][8];
    Ferry__Wire__Metric *mp[20];
    for (int i = 0; i < 20; i++) {
        snprintf(ids[i], sizeof ids[i], "k%02d", i);
        set(&s[i], "notebook_kernel_info", 1, "kernel", ids[i], "state", "idle", 0, 0);
        mp[i] = &s[i].m;
    }
    Ferry__Wire__WorkloadMetrics wm = FERRY__WIRE__WORKLOAD_METRICS__INIT;
    wm.metrics = mp;
    wm.n_metrics = 20;
    Ferry__Wire__WorkloadReport w = FERRY__WIRE__WORKLOAD_REPORT__INIT;
    assert_int_equal(kernelreport_fill(&wm, &w), KERNELREPORT_MAX);
    kernelreport_done(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernels_from_samples),
        cmocka_unit_test(test_at_most_sixteen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
