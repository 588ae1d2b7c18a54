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

/* run.env then notebook.env in the workload's env; a name in both takes
 * notebook.env's value and appears once. */
static void test_notebook_env_joins_run_env(void **state)
{
    (void)state;
    Ferry__Spec spec = FERRY__SPEC__INIT;
    Ferry__Run run = FERRY__RUN__INIT;
    Ferry__NotebookSpec nb = FERRY__NOTEBOOK_SPEC__INIT;
    Ferry__EnvVar r1 = FERRY__ENV_VAR__INIT, r2 = FERRY__ENV_VAR__INIT, n1 = FERRY__ENV_VAR__INIT,
                  n2 = FERRY__ENV_VAR__INIT;
    r1.name = "ONLY_RUN", r1.value = "a";
    r2.name = "BOTH", r2.value = "run";
    n1.name = "BOTH", n1.value = "notebook";
    n2.name = "ONLY_NB", n2.value = "b";
    Ferry__EnvVar *rv[] = {&r1, &r2}, *nv[] = {&n1, &n2};
    static char *cmd[] = {"python3"};
    run.command = cmd, run.n_command = 1;
    run.env = rv, run.n_env = 2;
    nb.env = nv, nb.n_env = 2;
    spec.kind = "notebook";
    spec.runtime = "notebook";
    spec.run = &run;
    spec.notebook = &nb;
    struct ferry_workload w;
    memset(&w, 0, sizeof w);
    struct sup_policy pol;
    assert_int_equal(workload_build(&spec, "n", "1", "/tmp", 5000, &w, &pol), 0);
    assert_string_equal(w.env[0], "ONLY_RUN=a");
    assert_string_equal(w.env[1], "BOTH=notebook");
    assert_string_equal(w.env[2], "ONLY_NB=b");
    assert_null(w.env[3]);
    /* Without a run section: notebook.env alone. */
    spec.run = NULL;
    assert_int_equal(workload_build(&spec, "n", "1", "/tmp", 5000, &w, &pol), 0);
    assert_string_equal(w.env[0], "BOTH=notebook");
    assert_string_equal(w.env[1], "ONLY_NB=b");
    assert_null(w.env[2]);
    /* An app: run.env as before. */
    spec.run = &run;
    spec.notebook = NULL;
    spec.kind = "app";
    assert_int_equal(workload_build(&spec, "n", "1", "/tmp", 5000, &w, &pol), 0);
    assert_string_equal(w.env[0], "ONLY_RUN=a");
    assert_string_equal(w.env[1], "BOTH=run");
    assert_null(w.env[2]);
    workload_fini(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_from_spec),
        cmocka_unit_test(test_policy_for_a_job),
        cmocka_unit_test(test_notebook_run_is_a_job),
        cmocka_unit_test(test_notebook_env_joins_run_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
