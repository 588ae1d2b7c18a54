/* Plugin loading: a good plugin loads and serves its runtimes; each broken
 * one is refused with one error line naming the file and the reason, and
 * does not stop the others. Also the real exec plugin, driven through a fake
 * host table. */
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
#include <time.h>
#include <unistd.h>

#include "alog.h"
#include "fsutil.h"
#include "metrics.h"
#include "pluginhost.h"
#include "procinfo.h"

#ifndef TEST_PLUGIN_DIR
#error "TEST_PLUGIN_DIR must name the directory of the test plugins"
#endif
#ifndef FERRY_PLUGIN_BUILD_DIR
#error "FERRY_PLUGIN_BUILD_DIR must name the directory of the built plugins"
#endif

/* ---- captured log ---- */

#define MAX_LINES 64
static struct {
    int level[MAX_LINES];
    char line[MAX_LINES][1024];
    int n;
} logbuf;

static void capture(int level, const char *line, void *arg)
{
    (void)arg;
    if (logbuf.n < MAX_LINES) {
        logbuf.level[logbuf.n] = level;
        snprintf(logbuf.line[logbuf.n], sizeof logbuf.line[0], "%s", line);
        logbuf.n++;
    }
}

static int count_lines(int level, const char *needle)
{
    int c = 0;
    for (int i = 0; i < logbuf.n; i++)
        if ((level < 0 || logbuf.level[i] == level) && strstr(logbuf.line[i], needle))
            c++;
    return c;
}

static void dump_log(void)
{
    for (int i = 0; i < logbuf.n; i++)
        print_message("  log[%d]: %s\n", i, logbuf.line[i]);
}

#define assert_logged(level, needle)                                                                     \
    do {                                                                                                 \
        if (count_lines(level, needle) != 1) {                                                           \
            dump_log();                                                                                  \
            fail_msg("expected exactly one log line containing \"%s\"", needle);                         \
        }                                                                                                \
    } while (0)

/* ---- fake host ---- */

struct fake {
    int spawns, signals, last_sig;
    int alive;
    char env[32][256];
    int nenv;
    char argv0[256];
    char cwd[256];
    int http_rc, http_status, http_port, http_timeout;
    char http_path[256];
    int cmd_rc, cmd_status, cmds;
    char cmd_env_port[64];
};
static struct fake fk;

static void fake_log(void *ctx, int level, const char *fmt, ...)
{
    (void)ctx;
    va_list ap;
    va_start(ap, fmt);
    alogv(level, fmt, ap);
    va_end(ap);
}

static int fake_spawn(void *ctx, struct ferry_run *run, const char *const *argv, const char *const *env,
                      const char *cwd)
{
    (void)ctx;
    fk.spawns++;
    snprintf(fk.argv0, sizeof fk.argv0, "%s", argv && argv[0] ? argv[0] : "");
    snprintf(fk.cwd, sizeof fk.cwd, "%s", cwd ? cwd : "");
    fk.nenv = 0;
    for (const char *const *e = env; e && *e && fk.nenv < 32; e++)
        snprintf(fk.env[fk.nenv++], sizeof fk.env[0], "%s", *e);
    run->pid = 4242;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    run->started_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    fk.alive = 1;
    return 0;
}

static int fake_signal(void *ctx, struct ferry_run *run, int sig)
{
    (void)ctx;
    (void)run;
    fk.signals++;
    fk.last_sig = sig;
    return 0;
}

static int fake_alive(void *ctx, const struct ferry_run *run)
{
    (void)ctx;
    (void)run;
    return fk.alive;
}

static int fake_http_get(void *ctx, int port, const char *path, int timeout_ms, int *status)
{
    (void)ctx;
    fk.http_port = port;
    fk.http_timeout = timeout_ms;
    snprintf(fk.http_path, sizeof fk.http_path, "%s", path);
    if (fk.http_rc == 0)
        *status = fk.http_status;
    return fk.http_rc;
}

static int fake_run_command(void *ctx, const char *const *argv, const char *const *env, const char *cwd,
                            int timeout_ms, int *exit_status)
{
    (void)ctx;
    (void)argv;
    (void)cwd;
    (void)timeout_ms;
    fk.cmds++;
    fk.cmd_env_port[0] = '\0';
    for (const char *const *e = env; e && *e; e++)
        if (strncmp(*e, "PORT=", 5) == 0)
            snprintf(fk.cmd_env_port, sizeof fk.cmd_env_port, "%s", *e);
    if (fk.cmd_rc == 0)
        *exit_status = fk.cmd_status;
    return fk.cmd_rc;
}

static const struct ferry_host host = {
    .magic = FERRY_HOST_MAGIC,
    .struct_size = sizeof(struct ferry_host),
    .abi = FERRY_PLUGIN_ABI,
    .ctx = &fk,
    .log = fake_log,
    .spawn = fake_spawn,
    .signal = fake_signal,
    .alive = fake_alive,
    .http_get = fake_http_get,
    .run_command = fake_run_command,
};

static int setup(void **state)
{
    (void)state;
    memset(&logbuf, 0, sizeof logbuf);
    memset(&fk, 0, sizeof fk);
    alog_set_sink(capture, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    alog_set_sink(NULL, NULL);
    return 0;
}

/* A scratch directory under FERRY_TEST_TMP. */
static void scratch(char *dir, size_t sz, const char *tag)
{
    const char *base = getenv("FERRY_TEST_TMP");
    if (!base || !*base)
        base = "/tmp";
    assert_int_equal(fs_mkdir_p(base, 0755), 0);
    snprintf(dir, sz, "%s/test_pluginhost.%s.XXXXXX", base, tag);
    assert_non_null(mkdtemp(dir));
}

static void copy_file(const char *from, const char *to, mode_t mode)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(fs_read_file(from, 64u << 20, &buf, &len), 0);
    assert_int_equal(fs_write_file_atomic(to, buf, len, mode), 0);
    free(buf);
    /* chmod, since the umask may have taken bits the test needs. */
    assert_int_equal(chmod(to, mode), 0);
}

/* ---- tests ---- */

static void test_good_and_bad(void **state)
{
    (void)state;
    struct plugin_set set = {0};
    assert_int_equal(pluginhost_load_dir(&set, TEST_PLUGIN_DIR, &host), 0);
    assert_int_equal(set.n, 1);

    char want[1024];
    snprintf(want, sizeof want,
             "plugin " TEST_PLUGIN_DIR "/badmagic.so refused: wrong magic 0xdeadbeef (expected 0x46525901)");
    assert_logged(FERRY_LOG_ERROR, want);
    assert_logged(FERRY_LOG_ERROR, "plugin " TEST_PLUGIN_DIR "/nosymbol.so refused: no symbol ferry_plugin_entry");
    assert_logged(FERRY_LOG_ERROR, "plugin " TEST_PLUGIN_DIR "/smallsize.so refused: struct_size 8 too small");
    assert_logged(FERRY_LOG_ERROR, "plugin " TEST_PLUGIN_DIR "/failinit.so refused: init failed: Permission denied");
    assert_logged(FERRY_LOG_INFO, "plugin good loaded from " TEST_PLUGIN_DIR "/good.so (runtimes: good  test)");
    /* One line per refusal, nothing else at error level. */
    assert_int_equal(count_lines(FERRY_LOG_ERROR, ""), 4);

    const struct plugin_slot *g = pluginhost_find(&set, "good");
    assert_non_null(g);
    assert_ptr_equal(pluginhost_find(&set, "test"), g);
    assert_null(pluginhost_find(&set, "goo"));
    assert_null(pluginhost_find(&set, "good test"));
    assert_null(pluginhost_find(&set, ""));
    assert_null(pluginhost_find(&set, "failinit"));
    assert_null(pluginhost_find(&set, "badmagic"));
    assert_string_equal(g->p.name, "good");
    assert_string_equal(g->p.runtimes, "good  test");
    assert_string_equal(g->path, TEST_PLUGIN_DIR "/good.so");

    /* It still works after its neighbours were refused. */
    const char *const argv[] = {"bin/app", NULL};
    const char *const env[] = {"A=1", NULL};
    struct ferry_workload w = {.struct_size = sizeof w, .name = "app", .version = "1.0.0", .dir = "/w",
                               .command = argv, .env = env};
    struct ferry_run run = {.struct_size = sizeof run, .port = 4000};
    assert_int_equal(g->p.start(g->state, &w, &run), 0);
    assert_int_equal(fk.spawns, 1);
    assert_int_equal(run.pid, 4242);
    assert_string_equal(fk.argv0, "bin/app");
    struct ferry_health h = {.struct_size = sizeof h};
    assert_int_equal(g->p.health(g->state, &w, &run, &h), 0);
    assert_int_equal(h.healthy, 1);
    assert_int_equal(g->p.stop(g->state, &run, 1000), 0);
    assert_int_equal(fk.last_sig, 15);

    pluginhost_unload_all(&set);
    assert_int_equal(set.n, 0);
    assert_null(set.v);
}

static void test_missing_dir(void **state)
{
    (void)state;
    struct plugin_set set = {0};
    assert_int_equal(pluginhost_load_dir(&set, TEST_PLUGIN_DIR "/no-such-dir", &host), -ENOENT);
    assert_int_equal(set.n, 0);
    pluginhost_unload_all(&set);
}

static void test_empty_dir_and_reuse(void **state)
{
    (void)state;
    char dir[4096];
    scratch(dir, sizeof dir, "empty");
    struct plugin_set set = {0};
    assert_int_equal(pluginhost_load_dir(&set, dir, &host), 0);
    assert_int_equal(set.n, 0);
    assert_null(pluginhost_find(&set, "exec"));
    pluginhost_unload_all(&set);

    /* A loaded set must be unloaded before it is loaded again. */
    assert_int_equal(pluginhost_load_dir(&set, TEST_PLUGIN_DIR, &host), 0);
    assert_int_equal(pluginhost_load_dir(&set, TEST_PLUGIN_DIR, &host), -EINVAL);
    pluginhost_unload_all(&set);
    assert_int_equal(fs_rm_rf(dir), 0);
}

static void test_duplicate_runtime_first_wins(void **state)
{
    (void)state;
    char dir[4096], a[4200], b[4200], c[4200], notso[4200];
    scratch(dir, sizeof dir, "dup");
    snprintf(a, sizeof a, "%s/a.so", dir);
    snprintf(b, sizeof b, "%s/b.so", dir);
    snprintf(c, sizeof c, "%s/c.so", dir);
    snprintf(notso, sizeof notso, "%s/good.so.bak", dir);
    copy_file(TEST_PLUGIN_DIR "/good.so", a, 0755);
    copy_file(TEST_PLUGIN_DIR "/good.so", b, 0755);
    copy_file(TEST_PLUGIN_DIR "/good.so", c, 0757);
    copy_file(TEST_PLUGIN_DIR "/badmagic.so", notso, 0755);

    struct plugin_set set = {0};
    assert_int_equal(pluginhost_load_dir(&set, dir, &host), 0);
    assert_int_equal(set.n, 1);
    const struct plugin_slot *g = pluginhost_find(&set, "good");
    assert_non_null(g);
    assert_string_equal(g->path, a);

    char want[16384];
    snprintf(want, sizeof want, "plugin %s skipped: runtimes already served: good (good from %s), test (good from %s)",
             b, a, a);
    assert_logged(FERRY_LOG_WARN, want);
    snprintf(want, sizeof want, "plugin %s refused: writable by others (mode 0757)", c);
    assert_logged(FERRY_LOG_ERROR, want);
    /* Only *.so names are candidates. */
    assert_int_equal(count_lines(-1, "good.so.bak"), 0);
    assert_int_equal(count_lines(FERRY_LOG_ERROR, ""), 1);

    pluginhost_unload_all(&set);
    assert_int_equal(fs_rm_rf(dir), 0);
}

/* ---- who may have written what is loaded ---- */

#ifndef MARKER_PLUGIN
#error "MARKER_PLUGIN must name the plugin whose constructor writes a marker"
#endif

/* A plugins folder holding one copy of marker.so, and the marker path its
 * constructor would create if it were ever loaded. */
struct marker_case {
    char root[4096], plugins[4200], so[4300], marker[4300];
};

static void marker_case(struct marker_case *c, const char *tag)
{
    scratch(c->root, sizeof c->root, tag);
    snprintf(c->plugins, sizeof c->plugins, "%s/plugins", c->root);
    snprintf(c->so, sizeof c->so, "%s/marker.so", c->plugins);
    snprintf(c->marker, sizeof c->marker, "%s/loaded", c->root);
    assert_int_equal(mkdir(c->plugins, 0755), 0);
    assert_int_equal(chmod(c->plugins, 0755), 0);
    copy_file(MARKER_PLUGIN, c->so, 0755);
    setenv("FERRY_TEST_MARKER", c->marker, 1);
}

/* Load c's folder and expect marker.so refused before dlopen with reason. */
static void expect_refused_unloaded(struct marker_case *c, const char *reason)
{
    memset(&logbuf, 0, sizeof logbuf);
    struct plugin_set set = {0};
    assert_int_equal(pluginhost_load_dir(&set, c->plugins, &host), 0);
    assert_int_equal(set.n, 0);
    assert_null(pluginhost_find(&set, "marker"));
    char want[16384];
    snprintf(want, sizeof want, "plugin %s refused: %s", c->so, reason);
    assert_logged(FERRY_LOG_ERROR, want);
    assert_int_equal(count_lines(FERRY_LOG_ERROR, ""), 1);
    struct stat st;
    if (stat(c->marker, &st) == 0)
        fail_msg("the constructor of a refused plugin ran (%s exists)", c->marker);
    pluginhost_unload_all(&set);
}

static void marker_done(struct marker_case *c)
{
    unsetenv("FERRY_TEST_MARKER");
    assert_int_equal(fs_rm_rf(c->root), 0);
}

static void test_trusted_control(void **state)
{
    (void)state;
    /* The control: with nothing wrong it loads, and its constructor runs. */
    struct marker_case c;
    marker_case(&c, "control");
    struct plugin_set set = {0};
    assert_int_equal(pluginhost_load_dir(&set, c.plugins, &host), 0);
    assert_int_equal(set.n, 1);
    assert_non_null(pluginhost_find(&set, "marker"));
    struct stat st;
    assert_int_equal(stat(c.marker, &st), 0);
    pluginhost_unload_all(&set);
    marker_done(&c);
}

static void test_refuses_group_writable(void **state)
{
    (void)state;
    struct marker_case c;
    marker_case(&c, "groupw");
    assert_int_equal(chmod(c.so, 0775), 0);
    expect_refused_unloaded(&c, "writable by its group (mode 0775)");
    assert_int_equal(chmod(c.so, 0757), 0);
    expect_refused_unloaded(&c, "writable by others (mode 0757)");
    marker_done(&c);
}

static void test_refuses_other_owner(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip(); /* only root can give a file away */
    struct marker_case c;
    marker_case(&c, "owner");
    assert_int_equal(chown(c.so, 65534, 65534), 0);
    expect_refused_unloaded(&c, "owned by uid 65534, not root or the agent's user (uid 0)");
    /* A folder owned by someone else is as bad: they can swap the file. */
    assert_int_equal(chown(c.so, 0, 0), 0);
    assert_int_equal(chown(c.plugins, 65534, 65534), 0);
    char want[8192];
    snprintf(want, sizeof want, "folder %s is owned by uid 65534, not root or the agent's user (uid 0)",
             c.plugins);
    expect_refused_unloaded(&c, want);
    marker_done(&c);
}

static void test_refuses_writable_folder(void **state)
{
    (void)state;
    struct marker_case c;
    marker_case(&c, "worldw");
    char want[8192];
    assert_int_equal(chmod(c.plugins, 0777), 0);
    snprintf(want, sizeof want, "folder %s is writable by others (mode 0777)", c.plugins);
    expect_refused_unloaded(&c, want);
    /* Sticky does not help inside the plugins folder. */
    assert_int_equal(chmod(c.plugins, 01777), 0);
    snprintf(want, sizeof want, "folder %s is writable by others (mode 1777)", c.plugins);
    expect_refused_unloaded(&c, want);
    assert_int_equal(chmod(c.plugins, 0775), 0);
    snprintf(want, sizeof want, "folder %s is writable by its group (mode 0775)", c.plugins);
    expect_refused_unloaded(&c, want);
    assert_int_equal(chmod(c.plugins, 0755), 0);
    marker_done(&c);
}

static void test_refuses_symlink_to_failing_file(void **state)
{
    (void)state;
    struct marker_case c;
    marker_case(&c, "link");
    /* The real file lives in a folder of its own (inside the plugins
     * folder, so that the folders above it are this test's; a target
     * outside is checked up to /, see test_plugin_trust.sh); a link points
     * at it. */
    char outside[4300], target[4400];
    snprintf(outside, sizeof outside, "%s/store", c.plugins);
    snprintf(target, sizeof target, "%s/marker.so", outside);
    assert_int_equal(mkdir(outside, 0755), 0);
    assert_int_equal(chmod(outside, 0755), 0);
    assert_int_equal(rename(c.so, target), 0);
    assert_int_equal(symlink(target, c.so), 0);

    char want[16384];
    assert_int_equal(chmod(target, 0775), 0);
    snprintf(want, sizeof want, "symlink to %s, which is writable by its group (mode 0775)", target);
    expect_refused_unloaded(&c, want);
    assert_int_equal(chmod(target, 0755), 0);
    assert_int_equal(chmod(outside, 0777), 0);
    snprintf(want, sizeof want, "symlink target's folder %s is writable by others (mode 0777)",
             outside);
    expect_refused_unloaded(&c, want);
    if (geteuid() == 0) {
        assert_int_equal(chmod(outside, 0755), 0);
        assert_int_equal(chown(target, 65534, 65534), 0);
        snprintf(want, sizeof want,
                 "symlink to %s, which is owned by uid 65534, not root or the agent's user (uid 0)",
                 target);
        expect_refused_unloaded(&c, want);
        assert_int_equal(chown(target, 0, 0), 0);
    }

    /* Once the target passes, the link loads: the refusals were the test. */
    assert_int_equal(chmod(outside, 0755), 0);
    memset(&logbuf, 0, sizeof logbuf);
    struct plugin_set set = {0};
    assert_int_equal(pluginhost_load_dir(&set, c.plugins, &host), 0);
    assert_int_equal(set.n, 1);
    struct stat st;
    assert_int_equal(stat(c.marker, &st), 0);
    pluginhost_unload_all(&set);
    marker_done(&c);
}

/* ---- the exec plugin ---- */

static const char *env_get(const char *key)
{
    size_t kl = strlen(key);
    const char *found = NULL;
    for (int i = 0; i < fk.nenv; i++)
        if (strncmp(fk.env[i], key, kl) == 0 && fk.env[i][kl] == '=') {
            if (found)
                fail_msg("%s is set twice in the environment", key);
            found = fk.env[i] + kl + 1;
        }
    return found;
}

static void test_exec_plugin(void **state)
{
    (void)state;
    struct plugin_set set = {0};
    assert_int_equal(pluginhost_load_dir(&set, FERRY_PLUGIN_BUILD_DIR, &host), 0);
    const struct plugin_slot *x = pluginhost_find(&set, "exec");
    assert_non_null(x);
    assert_string_equal(x->p.name, "exec");
    assert_string_equal(x->p.runtimes, "exec");
    assert_logged(FERRY_LOG_INFO, "plugin exec loaded from " FERRY_PLUGIN_BUILD_DIR "/exec.so (runtimes: exec)");

    /* start: the workload's env plus what the host decides; the workload
     * cannot override PORT, but may set its own PATH. */
    const char *const argv[] = {"bin/server", "--flag", NULL};
    const char *const env[] = {"GREETING=hi", "PORT=1", "PATH=/opt/app/bin", NULL};
    struct ferry_workload w = {.struct_size = sizeof w, .name = "web", .version = "2.1.0", .runtime = "exec",
                               .dir = "/srv/workloads/web/2.1.0", .command = argv, .env = env,
                               .health_interval_ms = 5000};
    struct ferry_run run = {.struct_size = sizeof run, .port = 31337};
    assert_int_equal(x->p.start(x->state, &w, &run), 0);
    assert_int_equal(fk.spawns, 1);
    assert_string_equal(fk.argv0, "bin/server");
    assert_string_equal(fk.cwd, "/srv/workloads/web/2.1.0");
    assert_string_equal(env_get("GREETING"), "hi");
    assert_string_equal(env_get("PORT"), "31337");
    assert_string_equal(env_get("FERRY_WORKLOAD"), "web");
    assert_string_equal(env_get("FERRY_VERSION"), "2.1.0");
    assert_string_equal(env_get("PATH"), "/opt/app/bin");
    if (getenv("HOME"))
        assert_string_equal(env_get("HOME"), getenv("HOME"));

    /* Without PATH in the workload, the agent's is inherited. */
    const char *const env2[] = {NULL};
    w.env = env2;
    assert_int_equal(x->p.start(x->state, &w, &run), 0);
    const char *agent_path = getenv("PATH");
    assert_string_equal(env_get("PATH"), agent_path && *agent_path ? agent_path : "/usr/local/bin:/usr/bin:/bin");

    /* A malformed env entry is refused, not passed on. */
    const char *const env3[] = {"NOEQUALS", NULL};
    w.env = env3;
    assert_int_equal(x->p.start(x->state, &w, &run), -EINVAL);
    assert_int_equal(fk.spawns, 2);
    w.env = env;

    struct ferry_health h = {.struct_size = sizeof h};

    /* HTTP check */
    w.health_http_path = "/healthz";
    w.health_http_status = 200;
    fk.http_status = 503;
    assert_int_equal(x->p.health(x->state, &w, &run, &h), 0);
    assert_int_equal(h.healthy, 0);
    assert_string_equal(h.reason, "GET /healthz: status 503, want 200");
    assert_int_equal(fk.http_port, 31337);
    assert_string_equal(fk.http_path, "/healthz");
    assert_int_equal(fk.http_timeout, 2000);
    fk.http_rc = -ECONNREFUSED;
    assert_int_equal(x->p.health(x->state, &w, &run, &h), 0);
    assert_int_equal(h.healthy, 0);
    assert_string_equal(h.reason, "GET /healthz: connection refused");
    fk.http_rc = 0;
    fk.http_status = 200;
    w.health_interval_ms = 500;
    assert_int_equal(x->p.health(x->state, &w, &run, &h), 0);
    assert_int_equal(h.healthy, 1);
    assert_int_equal(fk.http_timeout, 500);
    fk.alive = 0;
    assert_int_equal(x->p.health(x->state, &w, &run, &h), 0);
    assert_int_equal(h.healthy, 0);
    assert_string_equal(h.reason, "process exited");
    fk.alive = 1;
    w.health_http_path = NULL;

    /* Command check */
    const char *const hc[] = {"bin/check", NULL};
    w.health_command = hc;
    fk.cmd_status = 3;
    assert_int_equal(x->p.health(x->state, &w, &run, &h), 0);
    assert_int_equal(h.healthy, 0);
    assert_string_equal(h.reason, "health command exited 3");
    assert_string_equal(fk.cmd_env_port, "PORT=31337");
    fk.cmd_status = 0;
    assert_int_equal(x->p.health(x->state, &w, &run, &h), 0);
    assert_int_equal(h.healthy, 1);
    fk.cmd_rc = -ETIMEDOUT;
    assert_int_equal(x->p.health(x->state, &w, &run, &h), 0);
    assert_int_equal(h.healthy, 0);
    assert_string_equal(h.reason, "health command timed out after 500 ms");
    w.health_command = NULL;

    /* Process-alive check */
    w.health_settle_ms = 3600 * 1000;
    assert_int_equal(x->p.health(x->state, &w, &run, &h), 0);
    assert_int_equal(h.healthy, 0);
    assert_string_equal(h.reason, "settling");
    w.health_settle_ms = 0;
    assert_int_equal(x->p.health(x->state, &w, &run, &h), 0);
    assert_int_equal(h.healthy, 1);
    fk.alive = 0;
    assert_int_equal(x->p.health(x->state, &w, &run, &h), 0);
    assert_int_equal(h.healthy, 0);
    assert_string_equal(h.reason, "process exited");

    struct ferry_metrics m = {.struct_size = sizeof m, .count = 7};
    assert_int_equal(x->p.metrics(x->state, &run, &m), 0);
    assert_int_equal(m.count, 0);

    /* ABI 2 metrics: what the run's session uses, summed over /proc. A
     * child that leads its own session stands in for a run's main process
     * (the test's own session may be led by a process outside this pid
     * namespace, where getsid() answers 0). */
    assert_non_null(x->p.metrics2);
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t leader = fork();
    assert_true(leader >= 0);
    if (leader == 0) {
        close(ready[0]);
        if (setsid() < 0)
            _exit(1);
        (void)!write(ready[1], "x", 1);
        for (;;)
            pause();
    }
    close(ready[1]);
    char got;
    assert_int_equal(read(ready[0], &got, 1), 1);
    close(ready[0]);
    struct ferry_run mine = {.struct_size = sizeof mine, .pid = (int)leader};
    Ferry__Wire__WorkloadMetrics *wm = NULL;
    assert_int_equal(metrics_collect_run(x, &mine, "web", "2.1.0", 1, &wm), 0);
    assert_int_equal(wm->dropped, 0);
    double rss = -1, cpu = -1, procs = -1;
    for (size_t i = 0; i < wm->n_metrics; i++) {
        const Ferry__Wire__Metric *mm = wm->metrics[i];
        if (strcmp(mm->name, "process_resident_memory_bytes") == 0 && mm->type == FERRY__WIRE__METRIC_TYPE__METRIC_GAUGE)
            rss = mm->value;
        if (strcmp(mm->name, "process_cpu_seconds_total") == 0 && mm->type == FERRY__WIRE__METRIC_TYPE__METRIC_COUNTER)
            cpu = mm->value;
        if (strcmp(mm->name, "process_count") == 0)
            procs = mm->value;
    }
    /* At least the leader, which holds memory. (Its exact size is not
     * compared: /proc/PID/stat and statm may lag each other by a few pages.) */
    kill(leader, SIGKILL);
    waitpid(leader, NULL, 0);
    assert_true(procs >= 1);
    assert_true(rss > 0);
    assert_true(cpu >= 0);
    ferry__wire__workload_metrics__free_unpacked(wm, NULL);
    /* No process: no samples, no error. */
    struct ferry_run none = {.struct_size = sizeof none, .pid = 0};
    assert_int_equal(metrics_collect_run(x, &none, "web", "2.1.0", 1, &wm), 0);
    assert_int_equal(wm->n_metrics, 0);
    ferry__wire__workload_metrics__free_unpacked(wm, NULL);

    run.plugin_data = malloc(16); /* stop frees whatever the plugin kept there */
    assert_int_equal(x->p.stop(x->state, &run, 5000), 0);
    assert_int_equal(fk.last_sig, SIGTERM);
    assert_null(run.plugin_data);

    pluginhost_unload_all(&set);
}

static void test_exec_refuses_bad_host(void **state)
{
    (void)state;
    struct ferry_host bad = host;
    bad.magic = 0;
    struct plugin_set set = {0};
    assert_int_equal(pluginhost_load_dir(&set, FERRY_PLUGIN_BUILD_DIR, &bad), 0);
    assert_null(pluginhost_find(&set, "exec"));
    assert_logged(FERRY_LOG_ERROR, "exec.so refused: init failed: Invalid argument");
    pluginhost_unload_all(&set);
}

#ifndef ABI_PLUGIN_DIR
#error "ABI_PLUGIN_DIR must name the directory of the ABI test plugins"
#endif

/* An ABI-1 plugin (built against the verbatim old header) and an ABI-2 one
 * load side by side; one that claims ABI 2 with an ABI-1-sized table is
 * refused with one line. Each gets a host table that speaks its version. */
static void test_abi_versions(void **state)
{
    (void)state;
    struct plugin_set set = {0};
    assert_int_equal(pluginhost_load_dir(&set, ABI_PLUGIN_DIR, &host), 0);
    assert_int_equal(set.n, 2);
    assert_logged(FERRY_LOG_ERROR, "plugin " ABI_PLUGIN_DIR "/abi2short.so refused: abi 2 but struct_size");
    assert_int_equal(count_lines(FERRY_LOG_ERROR, ""), 1);
    assert_logged(FERRY_LOG_INFO, "plugin abi1 loaded from " ABI_PLUGIN_DIR "/abi1.so (runtimes: abi1 notebook), abi 1");
    assert_logged(FERRY_LOG_INFO, "plugin abi2 loaded from " ABI_PLUGIN_DIR "/abi2.so (runtimes: abi2 oci), abi 2");
    assert_null(pluginhost_find(&set, "abi2short"));

    const struct plugin_slot *v1 = pluginhost_find(&set, "abi1");
    const struct plugin_slot *v2 = pluginhost_find(&set, "abi2");
    assert_non_null(v1);
    assert_non_null(v2);
    assert_int_equal(v1->abi, 1);
    assert_int_equal(v2->abi, 2);
    /* abi1.so's init refuses a host whose abi is not 1: it got one. */
    assert_int_equal(v1->host.abi, 1);
    assert_int_equal(v2->host.abi, 2);
    /* Nothing past ABI 1's table was read from the old plugin. */
    assert_null(v1->p.exited);
    assert_null(v1->p.adopt);
    assert_null(v1->p.action);
    assert_null(v1->p.metrics2);
    assert_non_null(v2->p.metrics2);
    assert_null(v2->p.metrics); /* optional from ABI 2 on */

    const char *const argv[] = {"bin/app", NULL};
    const char *const env[] = {NULL};
    struct ferry_workload w = {.struct_size = sizeof w, .name = "app", .version = "1.0.0", .dir = "/w",
                               .command = argv, .env = env, .spec_json = "{\"name\":\"app\"}",
                               .kind_json = "{\"x\":1}"};
    /* The old plugin runs, through the prefix it knows. */
    struct ferry_run r1 = {.struct_size = sizeof r1, .port = 4001};
    assert_int_equal(v1->p.start(v1->state, &w, &r1), 0);
    assert_int_equal(fk.spawns, 1);
    struct ferry_metrics m = {.struct_size = sizeof m};
    assert_int_equal(v1->p.metrics(v1->state, &r1, &m), 0);
    assert_int_equal(m.count, 1);
    assert_string_equal(m.items[0].name, "abi1_port");
    /* The ABI-2 wrappers do nothing for it, or say it cannot. */
    assert_int_equal(pluginhost_exited(v1, &r1, 0), 0);
    assert_int_equal(pluginhost_adopt(v1, &w, &r1), 0);
    char *reply = NULL;
    size_t rlen = 0;
    assert_int_equal(pluginhost_action(v1, &r1, "echo", "{}", &reply, &rlen), -ENOTSUP);
    assert_null(reply);

    /* The new one sets plugin_state and answers actions. */
    struct ferry_run r2 = {.struct_size = sizeof r2, .port = 4002};
    assert_int_equal(v2->p.start(v2->state, &w, &r2), 0);
    assert_string_equal(r2.plugin_state, "name=app");
    assert_int_equal(pluginhost_action(v2, &r2, "echo", "{\"a\":[1,2]}", &reply, &rlen), 0);
    assert_non_null(reply);
    assert_non_null(strstr(reply, "\"request\":{\"a\":[1,2]}"));
    assert_int_equal(rlen, strlen(reply));
    free(reply);
    assert_int_equal(pluginhost_action(v2, &r2, "frobnicate", "{}", &reply, &rlen), -ENOTSUP);
    assert_null(reply);
    assert_int_equal(pluginhost_exited(v2, &r2, 3), 0);
    struct ferry_run r3 = {.struct_size = sizeof r3, .pid = 77};
    assert_true(pluginhost_adopt(v2, &w, &r3) < 0); /* no state to find it by */
    snprintf(r3.plugin_state, sizeof r3.plugin_state, "name=app");
    assert_int_equal(pluginhost_adopt(v2, &w, &r3), 0);
    assert_non_null(r3.plugin_data);
    assert_int_equal(v2->p.stop(v2->state, &r3, 1000), 0);
    assert_int_equal(v2->p.stop(v2->state, &r2, 1000), 0);
    assert_int_equal(v1->p.stop(v1->state, &r1, 1000), 0);
    pluginhost_unload_all(&set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good_and_bad, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_dir_and_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_runtime_first_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trusted_control, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_group_writable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_other_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_writable_folder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_symlink_to_failing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exec_plugin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exec_refuses_bad_host, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abi_versions, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
