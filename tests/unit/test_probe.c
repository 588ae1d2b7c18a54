/* Probes: HTTP GET against a real server started here (python3 -m
 * http.server on 127.0.0.1), and commands run with a deadline whose whole
 * process group is killed and whose leader is always reaped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "error.h"
#include "probe.h"

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void scratch(char *dir, size_t sz, const char *tag)
{
    const char *base = getenv("FERRY_TEST_TMP");
    if (!base || !*base)
        base = "/tmp";
    assert_int_equal(fs_mkdir_p(base, 0755), 0);
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/test_probe.%s.XXXXXX", base, tag);
    assert_non_null(mkdtemp(tmpl));
    /* The shell's $PWD is the resolved path; compare against the same. */
    assert_non_null(realpath(tmpl, dir));
    (void)sz;
}

/* A loopback TCP socket on a kernel-chosen port; listening or not. */
static int tcp_socket(int listening, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    if (listening)
        assert_int_equal(listen(fd, 8), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static void assert_no_children(void)
{
    int st;
    assert_int_equal(waitpid(-1, &st, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

/* Live (not zombie) processes whose process group is pgid. */
static int live_in_group(pid_t pgid)
{
    DIR *d = opendir("/proc");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], buf[1024];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        /* comm may hold anything, so parse from its closing paren. */
        char *p = strrchr(buf, ')');
        char state;
        int ppid, pgrp;
        if (p && sscanf(p + 1, " %c %d %d", &state, &ppid, &pgrp) == 3 && pgrp == pgid && state != 'Z' &&
            state != 'X')
            n++;
    }
    closedir(d);
    return n;
}

static void assert_group_gone(pid_t pgid)
{
    /* SIGKILL is delivered asynchronously; give it a moment, not forever. */
    uint64_t deadline = now_ms() + 3000;
    while (live_in_group(pgid) > 0 && now_ms() < deadline)
        pause_ms(10);
    assert_int_equal(live_in_group(pgid), 0);
}

static pid_t read_pid(const char *file)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(fs_read_file(file, 64, &buf, &len), 0);
    char s[65] = {0};
    memcpy(s, buf, len);
    free(buf);
    pid_t pid = (pid_t)atoi(s);
    assert_true(pid > 1);
    return pid;
}

/* ---- HTTP server fixture ---- */

struct server {
    char dir[PATH_MAX];
    pid_t pid;
    int port;
    int out; /* the server's stdout, kept open: python writes the banner's
              * newline separately, and a closed pipe would kill it */
};

static int start_server(void **state)
{
    struct server *s = calloc(1, sizeof *s);
    assert_non_null(s);
    scratch(s->dir, sizeof s->dir, "http");
    char file[PATH_MAX + 16];
    snprintf(file, sizeof file, "%s/hello.txt", s->dir);
    assert_int_equal(fs_write_file_atomic(file, "hello\n", 6, 0644), 0);

    /* Port 0 and read back the one it got: no window for another process
     * to take a port we picked. */
    int pfd[2];
    assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        setpgid(0, 0);
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(pfd[1], 1);
        dup2(null, 2);
        execlp("python3", "python3", "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", s->dir,
               (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    char out[512] = {0};
    size_t used = 0;
    uint64_t deadline = now_ms() + 15000;
    char *p = NULL;
    while (!(p = strstr(out, " port ")) || !strchr(p + 6, ' ')) {
        uint64_t now = now_ms();
        if (now >= deadline || used >= sizeof out - 1)
            break;
        struct pollfd pl = {.fd = pfd[0], .events = POLLIN};
        if (poll(&pl, 1, (int)(deadline - now)) <= 0)
            break;
        ssize_t r = read(pfd[0], out + used, sizeof out - 1 - used);
        if (r <= 0)
            break;
        used += (size_t)r;
    }
    s->out = pfd[0];
    if (!p) {
        close(s->out);
        kill(-s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        fail_msg("python3 -m http.server did not start: \"%s\"", out);
    }
    s->port = atoi(p + 6);
    assert_true(s->port > 0);

    /* Listening is announced before serve_forever; wait until it answers. */
    int status = 0, rc;
    while ((rc = probe_http_get(s->port, "/hello.txt", 1000, &status)) != 0 && now_ms() < deadline)
        pause_ms(20);
    if (rc != 0)
        fail_msg("http server on port %d never answered: %s", s->port, err_message(rc));
    *state = s;
    return 0;
}

static int stop_server(void **state)
{
    struct server *s = *state;
    kill(-s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    close(s->out);
    int rc = fs_rm_rf(s->dir);
    free(s);
    return rc == 0 ? 0 : -1;
}

/* ---- http_get ---- */

static void test_http_status(void **state)
{
    struct server *s = *state;
    int status = 0;
    assert_int_equal(probe_http_get(s->port, "/hello.txt", 2000, &status), 0);
    assert_int_equal(status, 200);
    status = 0;
    assert_int_equal(probe_http_get(s->port, "/missing", 2000, &status), 0);
    assert_int_equal(status, 404);
    status = 0;
    assert_int_equal(probe_http_get(s->port, "/hello.txt?x=1&y=%20", 2000, &status), 0);
    assert_int_equal(status, 200);
}

struct par {
    int port;
    int ok;
};

static void *par_probe(void *arg)
{
    struct par *p = arg;
    p->ok = 1;
    for (int i = 0; i < 10; i++) {
        int status = 0;
        if (probe_http_get(p->port, (i & 1) ? "/hello.txt" : "/nope", 5000, &status) != 0 ||
            status != ((i & 1) ? 200 : 404))
            p->ok = 0;
        const char *const argv[] = {"sh", "-c", "exit 5", NULL};
        int ex = -1;
        if (probe_run_command(argv, NULL, NULL, 5000, &ex) != 0 || ex != 5)
            p->ok = 0;
    }
    return NULL;
}

static void test_parallel_probes(void **state)
{
    struct server *s = *state;
    pthread_t t[4];
    struct par p[4];
    for (int i = 0; i < 4; i++) {
        p[i].port = s->port;
        assert_int_equal(pthread_create(&t[i], NULL, par_probe, &p[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_true(p[i].ok);
    }
}

static void test_http_refused(void **state)
{
    (void)state;
    /* Bound but not listening: the port is ours, and connecting is refused. */
    int port;
    int fd = tcp_socket(0, &port);
    int status = -1;
    assert_int_equal(probe_http_get(port, "/healthz", 1000, &status), -ECONNREFUSED);
    assert_int_equal(status, -1);
    close(fd);
}

static void test_http_timeout(void **state)
{
    (void)state;
    /* Listening, so the connection completes, but nobody ever answers. */
    int port;
    int fd = tcp_socket(1, &port);
    int status = -1;
    uint64_t t0 = now_ms();
    assert_int_equal(probe_http_get(port, "/healthz", 300, &status), -ETIMEDOUT);
    uint64_t took = now_ms() - t0;
    assert_true(took >= 250 && took < 2000);
    assert_int_equal(status, -1);
    close(fd);
}

static void test_http_bad_args(void **state)
{
    (void)state;
    int status;
    assert_int_equal(probe_http_get(0, "/", 100, &status), -EINVAL);
    assert_int_equal(probe_http_get(70000, "/", 100, &status), -EINVAL);
    assert_int_equal(probe_http_get(8080, "healthz", 100, &status), -EINVAL);
    assert_int_equal(probe_http_get(8080, "/a b", 100, &status), -EINVAL);
    assert_int_equal(probe_http_get(8080, "/a\r\nX-Evil: 1", 100, &status), -EINVAL);
    assert_int_equal(probe_http_get(8080, "/", 0, &status), -EINVAL);
}

/* ---- run_command ---- */

static const char *const path_env[] = {"PATH=/usr/bin:/bin", NULL};

static int run(const char *const *argv, const char *const *env, const char *cwd, int timeout_ms)
{
    int status = -1;
    int rc = probe_run_command(argv, env, cwd, timeout_ms, &status);
    assert_no_children();
    return rc < 0 ? rc : status;
}

static void test_run_exit_codes(void **state)
{
    (void)state;
    const char *const t[] = {"true", NULL};
    const char *const f[] = {"false", NULL};
    const char *const three[] = {"sh", "-c", "exit 3", NULL};
    const char *const killed[] = {"sh", "-c", "kill -9 $$", NULL};
    const char *const abs[] = {"/bin/sh", "-c", "exit 0", NULL};
    const char *const missing[] = {"ferry-no-such-command", NULL};
    assert_int_equal(run(t, path_env, NULL, 5000), 0);
    assert_int_equal(run(f, path_env, NULL, 5000), 1);
    assert_int_equal(run(three, path_env, NULL, 5000), 3);
    assert_int_equal(run(killed, path_env, NULL, 5000), 128 + SIGKILL);
    assert_int_equal(run(abs, NULL, NULL, 5000), 0);
    /* No PATH in env: the default one still finds true. */
    assert_int_equal(run(t, NULL, NULL, 5000), 0);

    int status = -1;
    assert_int_equal(probe_run_command(missing, path_env, NULL, 5000, &status), -ENOENT);
    assert_int_equal(status, -1);
    const char *const empty[] = {NULL};
    assert_int_equal(probe_run_command(empty, path_env, NULL, 5000, &status), -EINVAL);
    assert_int_equal(probe_run_command(t, path_env, NULL, 0, &status), -EINVAL);
    assert_no_children();
}

static void test_run_env_cwd(void **state)
{
    (void)state;
    char dir[PATH_MAX];
    scratch(dir, sizeof dir, "cmd");
    char want_pwd[PATH_MAX + 8];
    snprintf(want_pwd, sizeof want_pwd, "W=%s", dir);
    setenv("FERRY_PROBE_LEAK", "1", 1);

    /* Exactly env: X and W arrive, the agent's own variables do not. */
    const char *const env[] = {"X=y", want_pwd, "PATH=/usr/bin:/bin", NULL};
    const char *const check[] = {
        "sh", "-c", "test \"$X\" = y && test \"$PWD\" = \"$W\" && test -z \"$FERRY_PROBE_LEAK\"", NULL};
    assert_int_equal(run(check, env, dir, 5000), 0);
    const char *const wrong[] = {"sh", "-c", "test \"$X\" = n", NULL};
    assert_int_equal(run(wrong, env, dir, 5000), 1);

    /* A relative argv[0] is the workload's own script, found from cwd. */
    char script[PATH_MAX + 32];
    snprintf(script, sizeof script, "%s/bin", dir);
    assert_int_equal(fs_mkdir_p(script, 0755), 0);
    snprintf(script, sizeof script, "%s/bin/check.sh", dir);
    const char body[] = "#!/bin/sh\nexit 4\n";
    assert_int_equal(fs_write_file_atomic(script, body, sizeof body - 1, 0755), 0);
    const char *const rel[] = {"bin/check.sh", NULL};
    assert_int_equal(run(rel, env, dir, 5000), 4);

    /* stdin/stdout/stderr are /dev/null, and the test's own fds stay here. */
    int leak = open("/dev/null", O_RDONLY); /* no O_CLOEXEC on purpose */
    assert_true(leak > 2);
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "for n in 0 1 2; do test \"$(readlink /proc/$$/fd/$n)\" = /dev/null || exit 1; done;"
             " test ! -e /proc/$$/fd/%d",
             leak);
    const char *const fds[] = {"sh", "-c", cmd, NULL};
    assert_int_equal(run(fds, env, dir, 5000), 0);
    close(leak);

    unsetenv("FERRY_PROBE_LEAK");
    assert_int_equal(fs_rm_rf(dir), 0);
}

static void test_run_timeout_kills_group(void **state)
{
    (void)state;
    char dir[PATH_MAX];
    scratch(dir, sizeof dir, "timeout");
    char pidfile[PATH_MAX + 8];
    snprintf(pidfile, sizeof pidfile, "%s/pid", dir);
    char cmd[PATH_MAX + 64];
    /* sleep runs as a child of sh (the trailing true stops sh from exec'ing
     * it), so killing only the leader would leave it behind. */
    snprintf(cmd, sizeof cmd, "echo $$ > '%s'; sleep 30; true", pidfile);
    const char *const argv[] = {"sh", "-c", cmd, NULL};

    uint64_t t0 = now_ms();
    int status = -1;
    assert_int_equal(probe_run_command(argv, path_env, dir, 200, &status), -ETIMEDOUT);
    uint64_t took = now_ms() - t0;
    assert_true(took >= 200 && took < 2000);
    assert_int_equal(status, -1);
    assert_no_children();
    pid_t pgid = read_pid(pidfile);
    assert_group_gone(pgid);

    /* A command that exits on its own does not leave its background work
     * running either. */
    snprintf(cmd, sizeof cmd, "echo $$ > '%s'; sleep 30 & exit 0", pidfile);
    t0 = now_ms();
    assert_int_equal(run(argv, path_env, dir, 10000), 0);
    assert_true(now_ms() - t0 < 2000);
    assert_group_gone(read_pid(pidfile));

    assert_int_equal(fs_rm_rf(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_http_status, start_server, stop_server),
        cmocka_unit_test_setup_teardown(test_parallel_probes, start_server, stop_server),
        cmocka_unit_test(test_http_refused),
        cmocka_unit_test(test_http_timeout),
        cmocka_unit_test(test_http_bad_args),
        cmocka_unit_test(test_run_exit_codes),
        cmocka_unit_test(test_run_env_cwd),
        cmocka_unit_test(test_run_timeout_kills_group),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
