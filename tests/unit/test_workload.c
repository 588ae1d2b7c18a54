/* What a workload's spec says about supervision and running to completion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "error.h"
#include "workload.h"

static void test_job_from_spec(void **state)
{
    (void)state;
    Ferry__Spec spec = FERRY__SPEC__INIT;
    Ferry__Run run = FERRY__RUN__INIT;
    struct run_job job;

    /* No run section, or mode "" / service: a service. */
    assert_int_equal(workload_job(&spec, &job), 0);
    assert_false(job.job);
    spec.run = &run;
    run.retries = 4; /* refused at publish for a service; ignored here */
    assert_int_equal(workload_job(&spec, &job), 0);
    assert_false(job.job);
    assert_int_equal(job.retries, 0);
    run.mode = "service";
    spec.schedule = "@every 5s";
    assert_int_equal(workload_job(&spec, &job), 0);
    assert_false(job.job);
    assert_false(job.has_schedule);

    run.mode = "job";
    assert_int_equal(workload_job(&spec, &job), 0);
    assert_true(job.job);
    assert_int_equal(job.retries, 4);
    assert_true(job.has_schedule);
    assert_int_equal(job.sched.every_ms, 5000);
    spec.schedule = "";
    assert_int_equal(workload_job(&spec, &job), 0);
    assert_false(job.has_schedule);

    /* A schedule the registry would have refused is refused here too. */
    spec.schedule = "99 * * * *";
    assert_int_equal(workload_job(&spec, &job), FERRY_E_SPEC);
    assert_string_equal(err_detail(), "schedule: minute field '99': 99 is out of range 0-59");
}

static void test_policy_for_a_job(void **state)
{
    (void)state;
    Ferry__Spec spec = FERRY__SPEC__INIT;
    Ferry__Run run = FERRY__RUN__INIT;
    char *cmd[] = {"./job.sh"};
    run.command = cmd;
    run.n_command = 1;
    run.mode = "job";
    spec.run = &run;
    spec.kind = "app";
    spec.runtime = "exec";
    struct ferry_workload w;
    memset(&w, 0, sizeof w);
    struct sup_policy pol;
    assert_int_equal(workload_build(&spec, "j", "1", "/tmp", 5000, &w, &pol), 0);
    assert_string_equal(w.command[0], "./job.sh");
    assert_true(pol.job); /* no deadline, an exit is not a crash */
    assert_int_equal(pol.stop_timeout_ms, 5000);
    run.mode = "";
    assert_int_equal(workload_build(&spec, "j", "1", "/tmp", 5000, &w, &pol), 0);
    assert_false(pol.job);
    workload_fini(&w);
}

/* A notebook that names its .ipynb runs to completion on notebook.schedule;
 * one without is a kernel environment, a service. */
static void test_notebook_run_is_a_job(void **state)
{
    (void)state;
    Ferry__Spec spec = FERRY__SPEC__INIT;
    Ferry__NotebookSpec nb = FERRY__NOTEBOOK_SPEC__INIT;
    spec.kind = "notebook";
    spec.runtime = "notebook";
    spec.notebook = &nb;
    struct run_job job;
    struct ferry_workload w;
    memset(&w, 0, sizeof w);
    struct sup_policy pol;
    assert_int_equal(workload_job(&spec, &job), 0);
    assert_false(job.job);
    assert_int_equal(workload_build(&spec, "n", "1", "/tmp", 5000, &w, &pol), 0);
    assert_false(pol.job);
    nb.notebook = "r.ipynb";
    nb.schedule = "@every 5s";
    assert_int_equal(workload_job(&spec, &job), 0);
    assert_true(job.job);
    assert_int_equal(job.retries, 0);
    assert_true(job.has_schedule);
    assert_int_equal(job.sched.every_ms, 5000);
    assert_int_equal(workload_build(&spec, "n", "1", "/tmp", 5000, &w, &pol), 0);
    assert_true(pol.job);
    nb.schedule = "";
    assert_int_equal(workload_job(&spec, &job), 0);
    assert_true(job.job);
    assert_false(job.has_schedule);
    workload_fini(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_from_spec),
        cmocka_unit_test(test_policy_for_a_job),
        cmocka_unit_test(test_notebook_run_is_a_job),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
