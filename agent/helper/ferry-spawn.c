/* ferry-spawn: the step between the agent's fork and a confined workload's
 * exec (see agent/confine.h). Run by the agent as root:
 *
 *   ferry-spawn [--cgroup PROCS_FILE]... [--user UID:GID:G1,G2,...] -- EXE ARG...
 *
 * It joins each cgroup (writing its own pid), then takes the groups, gid and
 * uid, then execs EXE with the arguments (EXE is also argv[0]) and the
 * environment it was given. EXE without a '/' is looked up in that
 * environment's PATH, as uv_spawn does for a workload spawned directly, so
 * `command: [sh, -c, ...]` means the same with or without resources/run.user. The order matters: cgroup.procs is writable by
 * root only, and nothing of the workload runs before both are done. Any
 * failure is one line on stderr (the run's stderr.log) and exit 126, and the
 * workload never starts. Deliberately tiny: no ferry library, no allocation. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_GROUPS 64

extern char **environ;

static void die(const char *what, const char *arg, int err)
{
    if (err)
        fprintf(stderr, "ferry-spawn: %s %s: %s\n", what, arg, strerror(err));
    else
        fprintf(stderr, "ferry-spawn: %s %s\n", what, arg);
    _exit(126);
}

static unsigned long number(const char **p, const char *whole)
{
    char *end;
    if (**p < '0' || **p > '9')
        die("bad --user value", whole, 0);
    errno = 0;
    unsigned long v = strtoul(*p, &end, 10);
    if (errno || v > 0xfffffffeul)
        die("bad --user value", whole, 0);
    *p = end;
    return v;
}

static void join_cgroup(const char *file)
{
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    int fd = open(file, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        die("cannot open", file, errno);
    if (write(fd, pid, (size_t)n) != n)
        die("cannot join the cgroup of", file, errno);
    close(fd);
}

static void become(const char *ids)
{
    const char *p = ids;
    uid_t uid = (uid_t)number(&p, ids);
    if (*p++ != ':')
        die("bad --user value", ids, 0);
    gid_t gid = (gid_t)number(&p, ids);
    if (*p++ != ':')
        die("bad --user value", ids, 0);
    gid_t groups[MAX_GROUPS];
    size_t n = 0;
    while (*p) {
        if (n == MAX_GROUPS)
            die("too many groups in", ids, 0);
        groups[n++] = (gid_t)number(&p, ids);
        if (*p == ',')
            p++;
        else if (*p)
            die("bad --user value", ids, 0);
    }
    if (setgroups(n, groups) < 0)
        die("setgroups for", ids, errno);
    if (setgid(gid) < 0)
        die("setgid for", ids, errno);
    if (setuid(uid) < 0)
        die("setuid for", ids, errno);
    /* A uid that could go back to root would make the switch pointless. */
    if (uid != 0 && (setuid(0) == 0 || geteuid() != uid || getegid() != gid))
        die("could not drop root for", ids, 0);
}

int main(int argc, char **argv)
{
    int i = 1;
    const char *user = NULL;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (i + 1 >= argc)
            die("missing value for", argv[i], 0);
        if (strcmp(argv[i], "--cgroup") == 0)
            join_cgroup(argv[++i]);
        else if (strcmp(argv[i], "--user") == 0)
            user = argv[++i];
        else
            die("unknown option", argv[i], 0);
    }
    if (i >= argc)
        die("usage:", "ferry-spawn [--cgroup FILE]... [--user UID:GID:GROUPS] -- EXE ARG...",
            0);
    if (user)
        become(user);
    /* execvp reads PATH from environ, the workload's environment; the lookup
     * runs after the switch, with the workload's own permissions. */
    execvp(argv[i], argv + i);
    die("cannot run", argv[i], errno);
    return 126;
}
