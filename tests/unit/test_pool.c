/* The worker pool on its own, with real Python processes: claiming and
 * giving back workers, one-shot runs and their limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "pool.h"
#include "scratch.h"

#ifndef FERRY_MODEL_WORKER_PY
#error "FERRY_MODEL_WORKER_PY: the path of worker.py in the build tree"
#endif

static const char *python(void)
{
    const char *p = getenv("FERRY_PYTHON");
    return p && *p ? p : "/usr/bin/python3";
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
    if (scratch_setup(state, "pool") < 0)
        return -1;
    const char *dir = *state;
    write_file(dir, "echo.py",
               "class Model:\n"
               "    def predict(self, inputs):\n"
               "        return inputs\n");
    /* Stand-ins for worker.py in one-shot mode. */
    write_file(dir, "chatty.py", "import sys\nsys.stdout.write('x' * (2 << 20))\n");
    write_file(dir, "fails.py", "import sys\nprint('{\"error\": \"no\"}')\nsys.exit(4)\n");
    write_file(dir, "killed.py", "import os\nos.kill(os.getpid(), 9)\n");
    /* A slow load that logs when it begins and ends (O_APPEND: one write
     * per line, whole). */
    write_file(dir, "slow.py",
               "import os, time\n"
               "class Model:\n"
               "    def _log(self, d, what):\n"
               "        fd = os.open(os.path.join(d, 'loads.log'), os.O_WRONLY | os.O_APPEND | os.O_CREAT)\n"
               "        os.write(fd, ('%s %d\\n' % (what, os.getpid())).encode())\n"
               "        os.close(fd)\n"
               "    def load(self, d):\n"
               "        self._log(d, 'begin')\n"
               "        time.sleep(0.3)\n"
               "        self._log(d, 'end')\n"
               "    def predict(self, inputs):\n"
               "        return inputs\n");
    return 0;
}

static const char echo_cfg[] =
    "{\"format\":\"python\",\"entry\":\"echo.py:Model\","
    "\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP64\",\"shape\":[-1]}],\"outputs\":[]}";

/* Claimed workers are not handed out twice; a released one is. */
static void test_acquire_and_release(void **state)
{
    struct pool_opts o = {python(), FERRY_MODEL_WORKER_PY, *state, echo_cfg, 2};
    struct pool *p;
    int rc = pool_start(&o, &p);
    if (rc < 0)
        fail_msg("pool_start: %s", err_message(rc));
    /* Ready once the first worker loaded; the second loads after it. */
    assert_true(pool_ready(p) >= 1);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (pool_ready(p) < 2) {
        struct timespec now, nap = {0, 10 * 1000 * 1000};
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec > 30)
            fail_msg("the second worker did not load within 30 s");
        nanosleep(&nap, NULL);
    }
    assert_int_equal(pool_ready(p), 2);
    struct pool_worker *a = pool_acquire(p), *b = pool_try_acquire(p);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(a != b);
    assert_null(pool_try_acquire(p));
    pool_release(b);
    struct pool_worker *c = pool_try_acquire(p);
    assert_true(c == b);
    pool_release(a);
    pool_release(c);
    assert_int_equal(pool_ready(p), 2);
    assert_int_equal(pool_restarts(p), 0);
    /* After cancel nothing is handed out. */
    pool_cancel(p);
    assert_null(pool_acquire(p));
    assert_null(pool_try_acquire(p));
    pool_stop(p);
}

static void test_run_once_limits_and_failures(void **state)
{
    const char *dir = *state;
    char script[4096];
    char *out = NULL;

    snprintf(script, sizeof script, "%s/chatty.py", dir);
    int rc = pool_run_once(python(), script, "bins", dir, "{}", 1 << 20, &out);
    assert_int_equal(rc, FERRY_E_LIMIT);
    assert_null(out);
    assert_non_null(strstr(err_message(rc), "more than 1048576 bytes of output"));

    snprintf(script, sizeof script, "%s/fails.py", dir);
    rc = pool_run_once(python(), script, "bins", dir, "{}", 1 << 20, &out);
    assert_int_equal(rc, FERRY_E_INVALID);
    assert_non_null(out);
    assert_string_equal(out, "{\"error\": \"no\"}\n");
    assert_non_null(strstr(err_message(rc), "exit status 4"));
    free(out);

    snprintf(script, sizeof script, "%s/killed.py", dir);
    rc = pool_run_once(python(), script, "bins", dir, "{}", 1 << 20, &out);
    assert_int_equal(rc, FERRY_E_INVALID);
    assert_non_null(strstr(err_message(rc), "killed by signal 9"));
    free(out);

    rc = pool_run_once("/nonexistent/python3", script, "bins", dir, "{}", 1 << 20, &out);
    assert_true(rc < 0);
    assert_null(out);
    assert_non_null(strstr(err_message(rc), "/nonexistent/python3"));
}

/* The first worker loads alone: pool_start returns once it has, and the
 * others begin loading only then, one after the first's end. */
static void test_first_worker_loads_alone(void **state)
{
    const char *dir = *state;
    char log[4096];
    snprintf(log, sizeof log, "%s/loads.log", dir);
    unlink(log);
    static const char cfg[] = "{\"format\":\"python\",\"entry\":\"slow.py:Model\","
                              "\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP64\","
                              "\"shape\":[-1]}],\"outputs\":[]}";
    struct pool_opts o = {python(), FERRY_MODEL_WORKER_PY, dir, cfg, 3};
    struct pool *p;
    int rc = pool_start(&o, &p);
    if (rc < 0)
        fail_msg("pool_start: %s", err_message(rc));
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (pool_ready(p) < 3) {
        struct timespec now, nap = {0, 10 * 1000 * 1000};
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec > 30)
            fail_msg("the other workers did not load within 30 s");
        nanosleep(&nap, NULL);
    }
    pool_cancel(p);
    pool_stop(p);
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    char line[128], what[6][16];
    int pid[6], n = 0;
    while (n < 6 && fgets(line, sizeof line, f))
        if (sscanf(line, "%15s %d", what[n], &pid[n]) == 2)
            n++;
    fclose(f);
    assert_int_equal(n, 6);
    /* The first load ends before any other begins. */
    assert_string_equal(what[0], "begin");
    assert_string_equal(what[1], "end");
    assert_int_equal(pid[0], pid[1]);
    for (int i = 2; i < 6; i++)
        assert_int_not_equal(pid[i], pid[0]);
}

/* Bad options are refused before anything starts. */
static void test_start_refuses_bad_options(void **state)
{
    struct pool *p = NULL;
    struct pool_opts o = {python(), "/nonexistent/worker.py", *state, echo_cfg, 1};
    int rc = pool_start(&o, &p);
    assert_true(rc < 0);
    assert_null(p);
    assert_non_null(strstr(err_message(rc), "/nonexistent/worker.py"));
    o.worker_py = FERRY_MODEL_WORKER_PY;
    o.workers = 0;
    assert_int_equal(pool_start(&o, &p), FERRY_E_INVALID);
    assert_null(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acquire_and_release),
        cmocka_unit_test(test_first_worker_loads_alone),
        cmocka_unit_test(test_run_once_limits_and_failures),
        cmocka_unit_test(test_start_refuses_bad_options),
    };
    return cmocka_run_group_tests(tests, setup, scratch_teardown);
}
