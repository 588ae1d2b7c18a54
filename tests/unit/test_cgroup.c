/* cgroup.c: the pure path and limit computations, a v2 layout on a scratch
 * folder, and (when this host has them and we are root) real v1/v2 cgroups
 * created, joined, read back and removed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "error.h"
#include "scratch.h"

static void test_own_path(void **state)
{
    (void)state;
    const char *v1 = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/abc\n"
                     "2:cpu,cpuacct:/svc/x\n0::/\n";
    char out[256];
    assert_int_equal(cg_own_path(v1, CG_V1, "memory", out, sizeof out), 0);
    assert_string_equal(out, "/process_api/abc");
    assert_int_equal(cg_own_path(v1, CG_V1, "pids", out, sizeof out), 0);
    assert_string_equal(out, "/");
    assert_int_equal(cg_own_path(v1, CG_V1, "cpu", out, sizeof out), 0);
    assert_string_equal(out, "/svc/x");
    assert_int_equal(cg_own_path(v1, CG_V1, "cpuacct", out, sizeof out), 0);
    assert_int_equal(cg_own_path(v1, CG_V1, "cpuset", out, sizeof out), -ENOENT);
    /* "systemd" is not "name=systemd", and no prefix matches */
    assert_int_equal(cg_own_path(v1, CG_V1, "systemd", out, sizeof out), -ENOENT);
    assert_int_equal(cg_own_path(v1, CG_V1, "mem", out, sizeof out), -ENOENT);

    const char *v2 = "0::/system.slice/ferry-agent.service\n";
    assert_int_equal(cg_own_path(v2, CG_V2, NULL, out, sizeof out), 0);
    assert_string_equal(out, "/system.slice/ferry-agent.service");
    assert_int_equal(cg_own_path(v1, CG_V2, NULL, out, sizeof out), 0);
    assert_string_equal(out, "/");
    assert_int_equal(cg_own_path("4:memory:/a\n", CG_V2, NULL, out, sizeof out), -ENOENT);
    assert_int_equal(cg_own_path("", CG_V1, "memory", out, sizeof out), -ENOENT);
    assert_int_equal(cg_own_path("4:memory:relative\n", CG_V1, "memory", out, sizeof out),
                     -EINVAL);
    assert_int_equal(cg_own_path(v1, CG_V1, "memory", out, 4), -ENAMETOOLONG);
}

static void test_leaf(void **state)
{
    (void)state;
    char out[256];
    assert_int_equal(cg_leaf("h1", "web", "1.0", out, sizeof out), 0);
    assert_string_equal(out, "ferry/h1/web@1.0");
    /* name-version pairs that would meet under '-' stay apart */
    char other[256];
    assert_int_equal(cg_leaf("h1", "a-b", "1", out, sizeof out), 0);
    assert_int_equal(cg_leaf("h1", "a", "b-1", other, sizeof other), 0);
    assert_string_not_equal(out, other);
    assert_int_equal(cg_leaf("host/../x y", "w", "1", out, sizeof out), 0);
    assert_string_equal(out, "ferry/host_.._x_y/w@1");
    assert_int_equal(cg_leaf("..", "w", "1", out, sizeof out), 0);
    assert_string_equal(out, "ferry/_/w@1");
    assert_int_equal(cg_leaf("", "w", "1", out, sizeof out), 0);
    assert_string_equal(out, "ferry/_/w@1");
    assert_int_equal(cg_leaf("h1", "web", "1.0", out, 10), -ENAMETOOLONG);
}

static void test_cpu_and_sizes(void **state)
{
    (void)state;
    uint64_t q, p;
    cg_cpu_quota(500, &q, &p);
    assert_int_equal(q, 50000);
    assert_int_equal(p, 100000);
    cg_cpu_quota(2250, &q, &p);
    assert_int_equal(q, 225000);
    cg_cpu_quota(1, &q, &p); /* 0.1 ms would be under the kernel's 1 ms floor */
    assert_int_equal(q, 1000);

    char s[32];
    cg_format_size(64ull << 20, s, sizeof s);
    assert_string_equal(s, "64Mi");
    cg_format_size(2ull << 30, s, sizeof s);
    assert_string_equal(s, "2Gi");
    cg_format_size(1536ull << 10, s, sizeof s);
    assert_string_equal(s, "1536Ki");
    cg_format_size(500000000, s, sizeof s);
    assert_string_equal(s, "500000000");
    cg_format_size(499998720, s, sizeof s); /* 500M rounded down to pages */
    assert_string_equal(s, "488280Ki");
}

static void test_read_key(void **state)
{
    (void)state;
    const char *v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
    assert_int_equal(cg_read_key(v1, "oom_kill"), 3);
    assert_int_equal(cg_read_key(v1, "under_oom"), 0);
    assert_int_equal(cg_read_key(v1, "oom"), -1);
    const char *v2 = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
    assert_int_equal(cg_read_key(v2, "oom_kill"), 1);
    assert_int_equal(cg_read_key(v2, "max"), 12);
    assert_int_equal(cg_read_key("oom_kill x\n", "oom_kill"), -1);
    assert_int_equal(cg_read_key("oom_kill 4", "oom_kill"), 4);
    assert_int_equal(cg_read_key("", "oom_kill"), -1);
}

static void test_exit_reason(void **state)
{
    (void)state;
    char out[128];
    assert_int_equal(cg_exit_reason(0, SIGKILL, 1, 64ull << 20, out, sizeof out), 1);
    assert_string_equal(out, "killed: out of memory (limit 64Mi)");
    assert_int_equal(cg_exit_reason(1, 0, 2, 32ull << 20, out, sizeof out), 1);
    assert_string_equal(out, "exited with status 1 after 2 out-of-memory kills (limit 32Mi)");
    assert_int_equal(cg_exit_reason(0, SIGTERM, 1, 32ull << 20, out, sizeof out), 1);
    assert_string_equal(out, "killed by signal 15 after 1 out-of-memory kill (limit 32Mi)");
    /* a SIGKILL with no OOM kill counted is an ordinary kill */
    assert_int_equal(cg_exit_reason(0, SIGKILL, 0, 32ull << 20, out, sizeof out), 0);
    assert_string_equal(out, "killed by signal 9");
    assert_int_equal(cg_exit_reason(-1, 0, 1, 32ull << 20, out, sizeof out), 1);
    assert_string_equal(out, "exited after 1 out-of-memory kill (limit 32Mi)");
    assert_int_equal(cg_exit_reason(3, 0, -1, 0, out, sizeof out), 0);
    assert_string_equal(out, "exited with status 3");
}

static char *slurp(const char *dir, const char *file)
{
    static char buf[256];
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void touch(const char *dir, const char *file, const char *text)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A v2 layout on a scratch folder: the controllers are checked against
 * cgroup.controllers and delegated at every level down to the run's. */
static void test_v2_layout_on_scratch(void **state)
{
    const char *root = *state;
    char path[2048];
    setenv("FERRY_CGROUP_ROOT", root, 1);
    touch(root, "cgroup.controllers", "cpuset cpu io memory\n");
    touch(root, "cgroup.subtree_control", "");
    snprintf(path, sizeof path, "%s/ferry/h1", root);
    assert_int_equal(fs_mkdir_p(path, 0755), 0);
    snprintf(path, sizeof path, "%s/ferry", root);
    touch(path, "cgroup.subtree_control", "");
    snprintf(path, sizeof path, "%s/ferry/h1", root);
    touch(path, "cgroup.subtree_control", "");

    struct cg_run cg;
    struct cg_limits pids = {.pids = 8};
    err_clear();
    assert_int_equal(cg_locate("h1", "web", "1", &pids, &cg), -EOPNOTSUPP);
    char want[4400];
    snprintf(want, sizeof want,
             "resources.pids: the cgroup v2 pids controller is not available in %s "
             "(cgroup.controllers)",
             root);
    assert_string_equal(err_detail(), want);

    struct cg_limits mem = {.memory_bytes = 64ull << 20};
    assert_int_equal(cg_locate("h1", "web", "1", &mem, &cg), 0);
    assert_int_equal(cg.version, CG_V2);
    snprintf(want, sizeof want, "%s/ferry/h1/web@1", root);
    assert_string_equal(cg.dir[0], want);
    char files[CG_NCTRL][CG_PATH_MAX];
    assert_int_equal(cg_procs_files(&cg, files), 1);
    snprintf(want, sizeof want, "%s/ferry/h1/web@1/cgroup.procs", root);
    assert_string_equal(files[0], want);

    /* A scratch folder has no memory.max: the write fails, is named, and
     * the run's folder is gone again. */
    err_clear();
    assert_true(cg_create(&cg, &mem) < 0);
    snprintf(want, sizeof want,
             "resources.memory: writing %s/ferry/h1/web@1/memory.max: No such file or directory",
             root);
    assert_string_equal(err_detail(), want);
    struct stat st;
    assert_int_equal(stat(cg.dir[0], &st), -1);
    assert_string_equal(slurp(root, "cgroup.subtree_control"), "+memory");
    snprintf(path, sizeof path, "%s/ferry", root);
    assert_string_equal(slurp(path, "cgroup.subtree_control"), "+memory");
    snprintf(path, sizeof path, "%s/ferry/h1", root);
    assert_string_equal(slurp(path, "cgroup.subtree_control"), "+memory");
    unsetenv("FERRY_CGROUP_ROOT");
}

static void test_missing_cgroups(void **state)
{
    const char *root = *state;
    char path[2048];
    snprintf(path, sizeof path, "%s/none", root);
    setenv("FERRY_CGROUP_ROOT", path, 1);
    struct cg_run cg;
    struct cg_limits cpu = {.cpu_millis = 500};
    err_clear();
    assert_int_equal(cg_locate("h1", "web", "1", &cpu, &cg), -EOPNOTSUPP);
    char want[4400];
    snprintf(want, sizeof want,
             "resources.cpu: this host has no cgroup v2 hierarchy at %s and no cgroup v1 cpu "
             "controller mounted at %s/cpu",
             path, path);
    assert_string_equal(err_detail(), want);
    setenv("FERRY_CGROUP_ROOT", "sys/fs/cgroup", 1);
    err_clear();
    assert_int_equal(cg_locate("h1", "web", "1", &cpu, &cg), -EINVAL);
    assert_string_equal(err_detail(), "FERRY_CGROUP_ROOT 'sys/fs/cgroup': must be an absolute path");
    setenv("FERRY_CGROUP_ROOT", path, 1);
    /* Without limits to set, nothing is needed and nothing is found. */
    assert_int_equal(cg_locate("h1", "web", "1", NULL, &cg), 0);
    assert_int_equal(cg.version, CG_NONE);
    char detail[64] = "exited with status 0";
    assert_int_equal(cg_run_exited("h1", "web", "1", 0, 0, detail, sizeof detail), 0);
    assert_string_equal(detail, "exited with status 0");
    unsetenv("FERRY_CGROUP_ROOT");
}

/* The host's real cgroups: created with limits that read back, joined by a
 * child the way ferry-spawn joins, and removed with the child killed. */
static void test_real_cgroups(void **state)
{
    (void)state;
    unsetenv("FERRY_CGROUP_ROOT");
    struct cg_limits lim = {.memory_bytes = 64ull << 20, .pids = 20, .cpu_millis = 250};
    struct cg_run cg;
    char agent[64];
    snprintf(agent, sizeof agent, "unit-%d", (int)getpid());
    if (geteuid() != 0 || cg_locate(agent, "web", "1", &lim, &cg) < 0) {
        print_message("no writable memory, pids and cpu cgroups here (%s)\n", err_detail());
        skip();
    }
    assert_int_equal(cg_create(&cg, &lim), 0);
    const char *mem = cg.dir[cg.version == CG_V2 ? 0 : CG_MEMORY];
    const char *pids = cg.dir[cg.version == CG_V2 ? 0 : CG_PIDS];
    const char *cpu = cg.dir[cg.version == CG_V2 ? 0 : CG_CPU];
    if (cg.version == CG_V2) {
        assert_string_equal(slurp(mem, "memory.max"), "67108864\n");
        assert_string_equal(slurp(cpu, "cpu.max"), "25000 100000\n");
    } else {
        assert_string_equal(slurp(mem, "memory.limit_in_bytes"), "67108864\n");
        assert_string_equal(slurp(cpu, "cpu.cfs_quota_us"), "25000\n");
        assert_string_equal(slurp(cpu, "cpu.cfs_period_us"), "100000\n");
    }
    assert_string_equal(slurp(pids, "pids.max"), "20\n");

    char files[CG_NCTRL][CG_PATH_MAX];
    int n = cg_procs_files(&cg, files);
    assert_int_equal(n, cg.version == CG_V2 ? 1 : 3);
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        for (int i = 0; i < n; i++) {
            FILE *f = fopen(files[i], "w");
            if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0)
                _exit(3);
        }
        if (write(ready[1], "j", 1) != 1)
            _exit(4);
        pause();
        _exit(0);
    }
    close(ready[1]);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    char want[32];
    snprintf(want, sizeof want, "%d\n", (int)child);
    assert_string_equal(slurp(pids, "cgroup.procs"), want);

    /* Creating again while it is in use: the leftover is killed first. */
    assert_int_equal(cg_create(&cg, &lim), 0);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    char detail[96] = "exited with status 0";
    assert_int_equal(cg_run_exited(agent, "web", "1", 0, 0, detail, sizeof detail), 0);
    assert_string_equal(detail, "exited with status 0");
    struct stat st;
    for (int i = 0; i < CG_NCTRL; i++) {
        if (!cg.dir[i][0])
            continue;
        assert_int_equal(stat(cg.dir[i], &st), -1);
        char parent[CG_PATH_MAX];
        snprintf(parent, sizeof parent, "%s", cg.dir[i]);
        *strrchr(parent, '/') = '\0';
        assert_int_equal(stat(parent, &st), -1); /* the agent's folder went too */
        *strrchr(parent, '/') = '\0';
        rmdir(parent); /* "ferry": the test's own clean-up */
    }
}

static int setup(void **state) { return scratch_setup(state, "cgroup"); }
static int teardown(void **state) { return scratch_teardown(state); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_own_path),
        cmocka_unit_test(test_leaf),
        cmocka_unit_test(test_cpu_and_sizes),
        cmocka_unit_test(test_read_key),
        cmocka_unit_test(test_exit_reason),
        cmocka_unit_test_setup_teardown(test_v2_layout_on_scratch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_cgroups, setup, teardown),
        cmocka_unit_test(test_real_cgroups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
