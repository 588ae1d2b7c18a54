#include "probe.h"
#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


#include "error.h"
#include "httpc.h"

#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"
#define PROBE_BODY_MAX (1u << 20) /* a health page larger than this fails the probe */

int probe_http_get(int port, const char *path, int timeout_ms, int *status)
{
    if (port <= 0 || port > 65535 || timeout_ms <= 0 || !status || !path || path[0] != '/')
        return err_set(-EINVAL, "http probe: bad port, path or timeout");
    size_t plen = strlen(path);
    if (plen > 2048)
        return err_set(-EINVAL, "http probe: path longer than 2048 bytes");
    /* The path goes into the request line: no spaces, no CR/LF smuggling. */
    for (size_t i = 0; i < plen; i++)
        if ((unsigned char)path[i] <= 0x20 || (unsigned char)path[i] >= 0x7f)
            return err_set(-EINVAL, "http probe: path has a space or control character");

    char url[2100];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    /* One deadline for the whole probe (lib/httpc); the body is read and
     * dropped: a probe only asks for the status. */
    struct httpc_reply rep;
    int rc = httpc_request("GET", url, NULL, NULL, 0, timeout_ms, PROBE_BODY_MAX, &rep);
    if (rc < 0)
        return err_set(rc, "GET %s: %s", url, httpc_strerror(rc));
    *status = rep.status;
    httpc_reply_free(&rep);
    return 0;
}

/* Where argv0 runs from: absolute or relative to cwd when it has a slash,
 * else the first executable along env's PATH. The lookup happens here
 * rather than in the child so it uses the child's PATH, not the agent's. */
static int resolve(const char *argv0, const char *const *env, const char *cwd, char *out, size_t outsz)
{
    int w;
    if (strchr(argv0, '/')) {
        if (argv0[0] == '/' || !cwd)
            w = snprintf(out, outsz, "%s", argv0);
        else
            w = snprintf(out, outsz, "%s/%s", cwd, argv0);
        return w < 0 || (size_t)w >= outsz ? -ENAMETOOLONG : 0;
    }
    const char *pathv = DEFAULT_PATH;
    for (const char *const *e = env; e && *e; e++)
        if (strncmp(*e, "PATH=", 5) == 0) {
            pathv = *e + 5;
            break;
        }
    for (const char *d = pathv;; d++) {
        size_t dl = strcspn(d, ":");
        /* An empty entry means the current directory, as in the shell. */
        const char *dir = dl ? d : ".";
        int dirlen = dl ? (int)dl : 1;
        if (dir[0] != '/' && cwd)
            w = snprintf(out, outsz, "%s/%.*s/%s", cwd, dirlen, dir, argv0);
        else
            w = snprintf(out, outsz, "%.*s/%s", dirlen, dir, argv0);
        struct stat st;
        if (w > 0 && (size_t)w < outsz && stat(out, &st) == 0 && S_ISREG(st.st_mode) &&
            access(out, X_OK) == 0)
            return 0;
        d += dl;
        if (!*d)
            break;
    }
    return -ENOENT;
}

/* Wait until pid exits without reaping it, so its process group id cannot
 * be reused before we kill the group. 1 exited, 0 deadline passed. */
static int wait_exit(pid_t pid, uint64_t deadline, int *err)
{
    int pidfd = -1;
#ifdef SYS_pidfd_open
    pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif
    int exited = 0;
    *err = 0;
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0) {
            if (errno == EINTR)
                continue;
            *err = -errno;
            break;
        }
        if (si.si_pid == pid) {
            exited = 1;
            break;
        }
        uint64_t now = clock_mono_ms();
        if (now >= deadline)
            break;
        uint64_t left = deadline - now;
        if (pidfd >= 0) {
            struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
            poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
        } else {
            /* Kernels before 5.3: poll the child's state. */
            struct timespec ts = {0, (long)(left < 10 ? left : 10) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    if (pidfd >= 0)
        close(pidfd);
    return exited;
}

int probe_run_command(const char *const *argv, const char *const *env, const char *cwd, int timeout_ms,
                      int *exit_status)
{
    if (!argv || !argv[0] || !argv[0][0] || timeout_ms <= 0 || !exit_status)
        return err_set(-EINVAL, "run_command: empty command or bad timeout");
    static const char *const no_env[] = {NULL};
    if (!env)
        env = no_env;
    char path[PATH_MAX];
    int rc = resolve(argv[0], env, cwd, path, sizeof path);
    if (rc < 0)
        return err_set(rc, "run_command %s: %s", argv[0], rc == -ENOENT ? "not found" : strerror(-rc));

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    /* Belt and braces: an fd of the agent's opened without O_CLOEXEC must
     * not reach a health command. */
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
    if (cwd)
        posix_spawn_file_actions_addchdir_np(&fa, cwd);
    /* Own process group, so the whole tree can be killed; and none of the
     * agent's signal mask or handlers (libuv blocks and catches some). */
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);

    uint64_t deadline = clock_mono_ms() + (uint64_t)timeout_ms;
    pid_t pid;
    rc = posix_spawn(&pid, path, &fa, &attr, (char *const *)argv, (char *const *)env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0)
        return err_set(-rc, "run_command %s: %s", path, strerror(rc));

    int werr;
    int exited = wait_exit(pid, deadline, &werr);
    /* Timed out: everything goes. Exited: whatever it left behind in its
     * group goes too, or every probe would leak a process. The leader is not
     * reaped yet, so the group id is still ours (unless waiting failed, and
     * then it may not be). */
    if (werr == 0)
        kill(-pid, SIGKILL);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0) {
        if (errno != EINTR) {
            if (werr == 0)
                werr = -errno;
            break;
        }
    }
    if (werr < 0)
        return err_set(werr, "run_command %s: wait: %s", path, strerror(-werr));
    if (!exited)
        return err_set(-ETIMEDOUT, "run_command %s: timed out after %d ms", path, timeout_ms);
    if (WIFEXITED(ws))
        *exit_status = WEXITSTATUS(ws);
    else if (WIFSIGNALED(ws))
        *exit_status = 128 + WTERMSIG(ws);
    else
        *exit_status = 255;
    return 0;
}
