/* confine.c: run.user resolution and its refusals, the reachability check
 * done for another user, and the helper lookup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "confine.h"
#include "error.h"
#include "fsutil.h"

static void test_lookup(void **state)
{
    (void)state;
    struct passwd *pw = getpwnam("nobody");
    if (geteuid() != 0 || !pw) {
        print_message("needs root and a 'nobody' user\n");
        skip();
    }
    struct confine_user u;
    assert_int_equal(confine_user_lookup("nobody", &u), 0);
    assert_int_equal(u.uid, pw->pw_uid);
    assert_int_equal(u.gid, pw->pw_gid);
    assert_true(u.n_groups >= 1);

    err_clear();
    assert_int_equal(confine_user_lookup("no-such-user-ferry", &u), -ENOENT);
    assert_string_equal(err_detail(), "run.user 'no-such-user-ferry': no such user on this host");
}

/* An agent that is not root is refused, whatever the user. */
static void test_not_root(void **state)
{
    (void)state;
    struct passwd *pw = getpwnam("nobody");
    if (geteuid() != 0 || !pw) {
        print_message("needs root and a 'nobody' user to become another uid\n");
        skip();
    }
    uid_t uid = pw->pw_uid;
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        if (setgid(pw->pw_gid) < 0 || setuid(uid) < 0)
            _exit(2);
        struct confine_user u;
        if (confine_user_lookup("nobody", &u) != -EPERM)
            _exit(3);
        char want[256];
        snprintf(want, sizeof want,
                 "run.user 'nobody': the agent runs as uid %u and only an agent running as "
                 "root can start a workload as another user",
                 (unsigned)uid);
        _exit(strcmp(err_detail(), want) == 0 ? 0 : 4);
    }
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_can_reach(void **state)
{
    (void)state;
    /* Under /tmp (1777), not the build's scratch folder: every folder above
     * the one under test must be searchable by others for the check to
     * reach it, and a build folder need not be. */
    char dir[64] = "/tmp/ferry-confine.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char inner[4200], tree[4300];
    snprintf(inner, sizeof inner, "%s/state", dir);
    snprintf(tree, sizeof tree, "%s/workloads/web/1", inner);
    assert_int_equal(fs_mkdir_p(tree, 0755), 0);
    assert_int_equal(chmod(dir, 0755), 0);
    assert_int_equal(chmod(inner, 0700), 0);
    struct confine_user u = {.uid = 4242, .gid = 4242, .n_groups = 0};
    err_clear();
    assert_int_equal(confine_user_can_reach(&u, tree), -EACCES);
    char real[4096], want[4400];
    assert_non_null(realpath(inner, real));
    snprintf(want, sizeof want, "%s is not searchable by uid 4242", real);
    assert_string_equal(err_detail(), want);

    assert_int_equal(chmod(inner, 0711), 0);
    assert_int_equal(confine_user_can_reach(&u, tree), 0);
    /* group search only: reachable by a member, not by others */
    assert_int_equal(chmod(inner, 0710), 0);
    if (geteuid() == 0) {
        assert_int_equal(chown(inner, 0, 4343), 0);
        assert_int_equal(confine_user_can_reach(&u, tree), -EACCES);
        u.groups[0] = 4343;
        u.n_groups = 1;
        assert_int_equal(confine_user_can_reach(&u, tree), 0);
        /* the owner class decides for the owner, even when others may */
        assert_int_equal(chown(inner, 4242, 4343), 0);
        assert_int_equal(chmod(inner, 0611), 0);
        assert_int_equal(confine_user_can_reach(&u, tree), -EACCES);
    }
    struct confine_user root = {.uid = 0};
    assert_int_equal(confine_user_can_reach(&root, tree), 0);
    assert_int_equal(fs_rm_rf(dir), 0);
}

static void test_prepare(void **state)
{
    (void)state;
    /* Nothing to confine: no plan, nothing done. */
    Ferry__Spec spec = FERRY__SPEC__INIT;
    Ferry__Run run = FERRY__RUN__INIT;
    spec.run = &run;
    const char *argv[] = {"./app", "--flag", NULL};
    struct confine_plan p;
    assert_int_equal(confine_prepare(&p, &spec, "h1", "web", "1", "/t/app", argv, "/"), 0);
    assert_null(p.file);
    confine_done(&p, 0);

    struct cg_limits lim;
    Ferry__Resources res = FERRY__RESOURCES__INIT;
    res.memory_bytes = 1 << 26;
    res.cpu_millis = 500;
    spec.resources = &res;
    confine_limits(&spec, &lim);
    assert_int_equal(lim.memory_bytes, 1 << 26);
    assert_int_equal(lim.pids, 0);
    assert_int_equal(lim.cpu_millis, 500);

    /* The test binary has no ferry-spawn beside it and none is installed
     * under the build's prefix: refused, naming the helper. */
    char helper[4096];
    struct stat st;
    if (stat(FERRY_SPAWN_HELPER, &st) == 0)
        skip();
    err_clear();
    assert_int_equal(confine_helper_path(helper, sizeof helper), -ENOENT);
    assert_non_null(strstr(err_detail(), "the spawn helper ferry-spawn is not installed"));
    run.user = "nobody";
    spec.resources = NULL;
    assert_int_equal(confine_prepare(&p, &spec, "h1", "web", "1", "/t/app", argv, "/"), -ENOENT);
    assert_null(p.file);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_not_root),
        cmocka_unit_test(test_can_reach),
        cmocka_unit_test(test_prepare),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
