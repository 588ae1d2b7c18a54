/* One cgroup per run: see cgroup.h for the layout and the rules. */
#include "cgroup.h"
#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CG_DEFAULT_ROOT "/sys/fs/cgroup"
#define CFS_PERIOD_US 100000u
/* Leftover processes get SIGKILL; the folder can go once they are gone,
 * which takes a few milliseconds. The wait is bounded, on the loop: a
 * folder that outlasts it is removed at the next start instead. */
#define REMOVE_TRIES 50
#define REMOVE_PAUSE_NS 4000000L
#define SMALL_FILE 4096

static const char *const ctrl_names[CG_NCTRL] = {"memory", "pids", "cpu"};

const char *cg_ctrl_name(enum cg_ctrl c) { return c < CG_NCTRL ? ctrl_names[c] : "?"; }

/* ---- pure --------------------------------------------------------------- */

static bool list_has(const char *list, size_t len, const char *name)
{
    size_t n = strlen(name);
    const char *p = list, *end = list + len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        size_t item = comma ? (size_t)(comma - p) : (size_t)(end - p);
        if (item == n && memcmp(p, name, n) == 0)
            return true;
        p += item + 1;
    }
    return false;
}

int cg_own_path(const char *text, enum cg_version v, const char *ctrl, char *out, size_t cap)
{
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        const char *c1 = memchr(line, ':', len);
        const char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - line)) : NULL;
        if (c2) {
            const char *list = c1 + 1;
            size_t list_len = (size_t)(c2 - list);
            bool match = v == CG_V2 ? (list_len == 0 && c1 - line == 1 && line[0] == '0')
                                    : list_len > 0 && list_has(list, list_len, ctrl);
            if (match) {
                size_t plen = len - (size_t)(c2 + 1 - line);
                if (plen == 0 || c2[1] != '/')
                    return -EINVAL;
                if (plen + 1 > cap)
                    return -ENAMETOOLONG;
                memcpy(out, c2 + 1, plen);
                out[plen] = '\0';
                return 0;
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    return -ENOENT;
}

int cg_leaf(const char *agent, const char *name, const char *version, char *out, size_t cap)
{
    char safe[128];
    size_t n = 0;
    bool dots_only = true;
    for (const char *p = agent; *p && n < sizeof safe - 1; p++) {
        char ch = *p;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        safe[n++] = ok ? ch : '_';
        dots_only = dots_only && ch == '.';
    }
    safe[n] = '\0';
    if (n == 0 || dots_only)
        strcpy(safe, "_");
    int w = snprintf(out, cap, "ferry/%s/%s@%s", safe, name, version);
    return w < 0 || (size_t)w >= cap ? -ENAMETOOLONG : 0;
}

void cg_cpu_quota(uint32_t millis, uint64_t *quota_us, uint64_t *period_us)
{
    *period_us = CFS_PERIOD_US;
    /* The kernel's floor for a quota is 1 ms. */
    uint64_t q = (uint64_t)millis * CFS_PERIOD_US / 1000u;
    *quota_us = q < 1000 ? 1000 : q;
}

void cg_format_size(uint64_t bytes, char *out, size_t cap)
{
    static const struct {
        const char *unit;
        unsigned shift;
    } units[] = {{"Gi", 30}, {"Mi", 20}, {"Ki", 10}};
    for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
        uint64_t m = 1ull << units[i].shift;
        if (bytes >= m && bytes % m == 0) {
            snprintf(out, cap, "%" PRIu64 "%s", bytes / m, units[i].unit);
            return;
        }
    }
    snprintf(out, cap, "%" PRIu64, bytes);
}

int64_t cg_read_key(const char *text, const char *key)
{
    size_t klen = strlen(key);
    for (const char *line = text; line && *line;) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
            char *end;
            errno = 0;
            long long v = strtoll(line + klen + 1, &end, 10);
            if (errno == 0 && end != line + klen + 1 && v >= 0 && (*end == '\n' || !*end))
                return v;
            return -1;
        }
        const char *nl = strchr(line, '\n');
        line = nl ? nl + 1 : NULL;
    }
    return -1;
}

int cg_exit_reason(int64_t status, int sig, int64_t oom_kills, uint64_t limit, char *out,
                   size_t cap)
{
    char lim[32];
    cg_format_size(limit, lim, sizeof lim);
    if (oom_kills > 0 && sig == SIGKILL) {
        snprintf(out, cap, "killed: out of memory (limit %s)", lim);
        return 1;
    }
    char plain[64];
    if (sig)
        snprintf(plain, sizeof plain, "killed by signal %d", sig);
    else if (status < 0) /* an adopted process: its status is not ours to read */
        snprintf(plain, sizeof plain, "exited");
    else
        snprintf(plain, sizeof plain, "exited with status %lld", (long long)status);
    if (oom_kills > 0) {
        snprintf(out, cap, "%s after %lld out-of-memory kill%s (limit %s)", plain,
                 (long long)oom_kills, oom_kills == 1 ? "" : "s", lim);
        return 1;
    }
    snprintf(out, cap, "%s", plain);
    return 0;
}

/* ---- file system -------------------------------------------------------- */

static int read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = 0;
    while (len < cap - 1) {
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    return (int)len;
}

/* Control files are written with one write(2): the kernel takes the value
 * from that call, and reports a refused value as its error. */
static int write_file(const char *dir, const char *file, const char *value)
{
    char path[CG_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(-errno, "writing %s: %s", path, strerror(errno));
    size_t len = strlen(value);
    ssize_t w = write(fd, value, len);
    int e = errno;
    close(fd);
    if (w < 0)
        return err_set(-e, "writing '%s' to %s: %s", value, path, strerror(e));
    if ((size_t)w != len)
        return err_set(-EIO, "writing '%s' to %s: short write", value, path);
    return 0;
}

/* err_set with the current detail behind a prefix: the detail is copied
 * first, since err_set writes the buffer err_detail() points into. */
static int with_prefix(int rc, const char *prefix)
{
    char detail[600];
    snprintf(detail, sizeof detail, "%s", err_detail());
    return err_set(rc, "%s: %s", prefix, detail);
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int join_path(char *out, size_t cap, const char *a, const char *b, const char *c)
{
    /* Avoid "//" when the own cgroup is the root "/". */
    if (strcmp(b, "/") == 0)
        b = "";
    int w = snprintf(out, cap, "%s%s/%s", a, b, c);
    return w < 0 || (size_t)w >= cap ? err_set(-ENAMETOOLONG, "cgroup path too long: %s%s/%s",
                                                a, b, c)
                                      : 0;
}

static bool wanted(const struct cg_limits *need, enum cg_ctrl c)
{
    if (!need)
        return true;
    switch (c) {
    case CG_MEMORY: return need->memory_bytes != 0;
    case CG_PIDS: return need->pids != 0;
    case CG_CPU: return need->cpu_millis != 0;
    default: return false;
    }
}

static const char *limit_key(enum cg_ctrl c)
{
    static const char *const keys[CG_NCTRL] = {"memory", "pids", "cpu"};
    return keys[c];
}

int cg_locate(const char *agent, const char *name, const char *version,
              const struct cg_limits *need, struct cg_run *out)
{
    memset(out, 0, sizeof *out);
    const char *env = getenv("FERRY_CGROUP_ROOT");
    const char *root = env && *env ? env : CG_DEFAULT_ROOT;
    bool own_is_root = env && *env;
    if (own_is_root && env[0] != '/')
        return err_set(-EINVAL, "FERRY_CGROUP_ROOT '%s': must be an absolute path", env);
    char leaf[CG_PATH_MAX];
    int rc = cg_leaf(agent, name, version, leaf, sizeof leaf);
    if (rc < 0)
        return err_set(rc, "cgroup name for %s@%s is too long", name, version);
    char self[SMALL_FILE] = "";
    if (!own_is_root && read_small("/proc/self/cgroup", self, sizeof self) < 0)
        self[0] = '\0';

    char probe[CG_PATH_MAX + 64], own[CG_PATH_MAX];
    snprintf(probe, sizeof probe, "%s/cgroup.controllers", root);
    if (exists(probe)) {
        out->version = CG_V2;
        if (own_is_root || cg_own_path(self, CG_V2, NULL, own, sizeof own) < 0)
            strcpy(own, "/");
        char base[CG_PATH_MAX];
        if (join_path(base, sizeof base, root, own, "") < 0)
            return -ENAMETOOLONG;
        base[strlen(base) - 1] = '\0'; /* the trailing '/' */
        if (!is_dir(base)) /* a cgroup namespace shows its own root as "/" */
            snprintf(base, sizeof base, "%s", root);
        char avail[SMALL_FILE] = "";
        snprintf(probe, sizeof probe, "%s/cgroup.controllers", base);
        read_small(probe, avail, sizeof avail);
        for (enum cg_ctrl c = 0; need && c < CG_NCTRL; c++) {
            if (!wanted(need, c))
                continue;
            char *nl;
            while ((nl = strchr(avail, '\n')))
                *nl = ' ';
            bool found = false;
            for (char *tok = avail, *end; *tok; tok = end) {
                while (*tok == ' ')
                    tok++;
                end = tok + strcspn(tok, " ");
                if ((size_t)(end - tok) == strlen(ctrl_names[c]) &&
                    strncmp(tok, ctrl_names[c], (size_t)(end - tok)) == 0)
                    found = true;
            }
            if (!found)
                return err_set(-EOPNOTSUPP,
                               "resources.%s: the cgroup v2 %s controller is not available in "
                               "%s (cgroup.controllers)",
                               limit_key(c), ctrl_names[c], base);
        }
        if (join_path(out->dir[0], sizeof out->dir[0], base, "/", leaf) < 0)
            return -ENAMETOOLONG;
        return 0;
    }

    out->version = CG_V1;
    bool any = false;
    for (enum cg_ctrl c = 0; c < CG_NCTRL; c++) {
        char mount[CG_PATH_MAX];
        snprintf(mount, sizeof mount, "%s/%s", root, ctrl_names[c]);
        snprintf(probe, sizeof probe, "%s/cgroup.procs", mount);
        if (!exists(probe)) {
            if (need && wanted(need, c))
                return err_set(-EOPNOTSUPP,
                               "resources.%s: this host has no cgroup v2 hierarchy at %s and "
                               "no cgroup v1 %s controller mounted at %s",
                               limit_key(c), root, ctrl_names[c], mount);
            continue;
        }
        if (need && !wanted(need, c))
            continue;
        any = true;
        if (own_is_root || cg_own_path(self, CG_V1, ctrl_names[c], own, sizeof own) < 0)
            strcpy(own, "/");
        char base[CG_PATH_MAX];
        if (join_path(base, sizeof base, mount, own, "") < 0)
            return -ENAMETOOLONG;
        base[strlen(base) - 1] = '\0';
        /* A container may see its own cgroup as the mount's root while
         * /proc/self/cgroup names the host's path for it. */
        if (!is_dir(base))
            snprintf(base, sizeof base, "%s", mount);
        if (join_path(out->dir[c], sizeof out->dir[c], base, "/", leaf) < 0)
            return -ENAMETOOLONG;
    }
    if (!any && need)
        return err_set(-EOPNOTSUPP, "resources: this host has no usable cgroups at %s", root);
    if (!any)
        out->version = CG_NONE;
    return 0;
}

/* mkdir each missing component of `dir` below `from` (which exists). With
 * v2, each parent's subtree_control delegates the controllers first. */
static int make_dirs(const char *from, const char *dir, const char *v2_enable)
{
    char path[CG_PATH_MAX];
    snprintf(path, sizeof path, "%s", dir);
    size_t start = strlen(from);
    for (size_t i = start + 1; ; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char saved = path[i];
        path[i] = '\0';
        if (v2_enable) {
            /* The parent of this component: everything before its '/'. */
            char parent[CG_PATH_MAX];
            snprintf(parent, sizeof parent, "%s", path);
            *strrchr(parent, '/') = '\0';
            for (const char *tok = v2_enable; *tok;) {
                char one[32];
                size_t n = strcspn(tok, " ");
                snprintf(one, sizeof one, "+%.*s", (int)n, tok);
                int rc = write_file(parent, "cgroup.subtree_control", one);
                if (rc < 0)
                    return err_set(rc, "resources: cannot delegate the %.*s controller below "
                                       "%s: %s",
                                   (int)n, tok, parent, strerror(-rc));
                tok += n;
                while (*tok == ' ')
                    tok++;
            }
        }
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
            return err_set(-errno, "resources: cannot create cgroup %s: %s", path,
                           strerror(errno));
        path[i] = saved;
        if (!saved)
            break;
    }
    return 0;
}

/* The folder below which ferry's tree starts: dir minus "/ferry/A/N@V". */
static void ferry_base(const char *dir, char *out, size_t cap)
{
    snprintf(out, cap, "%s", dir);
    for (int i = 0; i < 3; i++) {
        char *slash = strrchr(out, '/');
        if (slash)
            *slash = '\0';
    }
}

static int kill_members(const char *dir)
{
    char path[CG_PATH_MAX + 64], buf[SMALL_FILE * 4];
    snprintf(path, sizeof path, "%s/cgroup.procs", dir);
    int n = read_small(path, buf, sizeof buf);
    if (n <= 0)
        return 0;
    int count = 0;
    for (char *p = buf; *p;) {
        char *end;
        long pid = strtol(p, &end, 10);
        if (end == p)
            break;
        if (pid > 1) {
            kill((pid_t)pid, SIGKILL);
            count++;
        }
        p = end;
        while (*p == '\n')
            p++;
    }
    return count;
}

static int remove_dir(const char *dir)
{
    if (!is_dir(dir))
        return 0;
    for (int i = 0; i < REMOVE_TRIES; i++) {
        char kill_file[CG_PATH_MAX + 64];
        snprintf(kill_file, sizeof kill_file, "%s/cgroup.kill", dir);
        if (!exists(kill_file) || write_file(dir, "cgroup.kill", "1") < 0)
            kill_members(dir);
        if (rmdir(dir) == 0 || errno == ENOENT)
            break;
        if (errno != EBUSY && errno != ENOTEMPTY)
            return err_set(-errno, "removing cgroup %s: %s", dir, strerror(errno));
        if (i == REMOVE_TRIES - 1)
            return err_set(-EBUSY, "cgroup %s is still in use by processes of an earlier start",
                           dir);
        struct timespec ts = {0, REMOVE_PAUSE_NS};
        nanosleep(&ts, NULL);
    }
    /* The agent's own folder goes when its last run's does; "ferry" stays,
     * since another agent on the host may be creating below it. */
    char parent[CG_PATH_MAX];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash) {
        *slash = '\0';
        rmdir(parent); /* fails while other runs have folders: that is fine */
    }
    return 0;
}

int cg_remove(const struct cg_run *cg)
{
    int first = 0;
    for (enum cg_ctrl c = 0; c < CG_NCTRL; c++) {
        if (!cg->dir[c][0])
            continue;
        int rc = remove_dir(cg->dir[c]);
        if (rc < 0 && first == 0)
            first = rc;
    }
    return first;
}

static int set_limits_v1(const struct cg_run *cg, const struct cg_limits *lim)
{
    char v[64];
    int rc = 0;
    if (lim->memory_bytes && cg->dir[CG_MEMORY][0]) {
        snprintf(v, sizeof v, "%" PRIu64, lim->memory_bytes);
        rc = write_file(cg->dir[CG_MEMORY], "memory.limit_in_bytes", v);
        /* With swap, memory alone would be spilled rather than limited. */
        char memsw[CG_PATH_MAX + 64];
        snprintf(memsw, sizeof memsw, "%s/memory.memsw.limit_in_bytes", cg->dir[CG_MEMORY]);
        if (rc == 0 && exists(memsw))
            rc = write_file(cg->dir[CG_MEMORY], "memory.memsw.limit_in_bytes", v);
        if (rc < 0)
            return with_prefix(rc, "resources.memory");
    }
    if (lim->pids && cg->dir[CG_PIDS][0]) {
        snprintf(v, sizeof v, "%u", lim->pids);
        if ((rc = write_file(cg->dir[CG_PIDS], "pids.max", v)) < 0)
            return with_prefix(rc, "resources.pids");
    }
    if (lim->cpu_millis && cg->dir[CG_CPU][0]) {
        uint64_t quota, period;
        cg_cpu_quota(lim->cpu_millis, &quota, &period);
        snprintf(v, sizeof v, "%" PRIu64, period);
        rc = write_file(cg->dir[CG_CPU], "cpu.cfs_period_us", v);
        snprintf(v, sizeof v, "%" PRIu64, quota);
        if (rc == 0)
            rc = write_file(cg->dir[CG_CPU], "cpu.cfs_quota_us", v);
        if (rc < 0)
            return with_prefix(rc, "resources.cpu");
    }
    return 0;
}

static int set_limits_v2(const struct cg_run *cg, const struct cg_limits *lim)
{
    const char *dir = cg->dir[0];
    char v[64];
    int rc = 0;
    if (lim->memory_bytes) {
        snprintf(v, sizeof v, "%" PRIu64, lim->memory_bytes);
        rc = write_file(dir, "memory.max", v);
        char swap[CG_PATH_MAX + 64];
        snprintf(swap, sizeof swap, "%s/memory.swap.max", dir);
        if (rc == 0 && exists(swap))
            rc = write_file(dir, "memory.swap.max", "0");
        if (rc < 0)
            return with_prefix(rc, "resources.memory");
    }
    if (lim->pids) {
        snprintf(v, sizeof v, "%u", lim->pids);
        if ((rc = write_file(dir, "pids.max", v)) < 0)
            return with_prefix(rc, "resources.pids");
    }
    if (lim->cpu_millis) {
        uint64_t quota, period;
        cg_cpu_quota(lim->cpu_millis, &quota, &period);
        snprintf(v, sizeof v, "%" PRIu64 " %" PRIu64, quota, period);
        if ((rc = write_file(dir, "cpu.max", v)) < 0)
            return with_prefix(rc, "resources.cpu");
    }
    return 0;
}

int cg_create(const struct cg_run *cg, const struct cg_limits *lim)
{
    int rc = cg_remove(cg); /* a folder an earlier start left behind */
    if (rc < 0)
        return rc;
    char enable[64] = "";
    if (cg->version == CG_V2)
        snprintf(enable, sizeof enable, "%s%s%s", lim->memory_bytes ? "memory " : "",
                 lim->pids ? "pids " : "", lim->cpu_millis ? "cpu" : "");
    for (enum cg_ctrl c = 0; rc == 0 && c < CG_NCTRL; c++) {
        if (!cg->dir[c][0])
            continue;
        char base[CG_PATH_MAX];
        ferry_base(cg->dir[c], base, sizeof base);
        rc = make_dirs(base, cg->dir[c], cg->version == CG_V2 ? enable : NULL);
    }
    if (rc == 0)
        rc = cg->version == CG_V2 ? set_limits_v2(cg, lim) : set_limits_v1(cg, lim);
    if (rc < 0) {
        char detail[600];
        snprintf(detail, sizeof detail, "%s", err_detail());
        cg_remove(cg);
        return err_set(rc, "%s", detail);
    }
    return 0;
}

int cg_procs_files(const struct cg_run *cg, char files[CG_NCTRL][CG_PATH_MAX])
{
    int n = 0;
    for (enum cg_ctrl c = 0; c < CG_NCTRL; c++) {
        if (!cg->dir[c][0])
            continue;
        int w = snprintf(files[n], CG_PATH_MAX, "%s/cgroup.procs", cg->dir[c]);
        if (w > 0 && (size_t)w < CG_PATH_MAX)
            n++;
    }
    return n;
}

int cg_run_exited(const char *agent, const char *name, const char *version, int64_t status,
                  int sig, char *detail, size_t cap)
{
    struct cg_run cg;
    if (cg_locate(agent, name, version, NULL, &cg) < 0 || cg.version == CG_NONE)
        return 0;
    bool any = false;
    for (enum cg_ctrl c = 0; c < CG_NCTRL; c++)
        any = any || (cg.dir[c][0] && is_dir(cg.dir[c]));
    if (!any)
        return 0;
    int changed = 0;
    const char *mem = cg.dir[cg.version == CG_V2 ? 0 : CG_MEMORY];
    char path[CG_PATH_MAX + 64], buf[SMALL_FILE];
    if (mem[0] && is_dir(mem)) {
        int64_t kills = -1;
        uint64_t limit = 0;
        if (cg.version == CG_V2) {
            snprintf(path, sizeof path, "%s/memory.events", mem);
            if (read_small(path, buf, sizeof buf) > 0)
                kills = cg_read_key(buf, "oom_kill");
            snprintf(path, sizeof path, "%s/memory.max", mem);
        } else {
            snprintf(path, sizeof path, "%s/memory.oom_control", mem);
            if (read_small(path, buf, sizeof buf) > 0)
                kills = cg_read_key(buf, "oom_kill");
            /* Kernels before 4.13 have no oom_kill count: hitting the limit
             * (failcnt) and dying of SIGKILL is then taken as the OOM kill. */
            if (kills < 0) {
                snprintf(path, sizeof path, "%s/memory.failcnt", mem);
                if (read_small(path, buf, sizeof buf) > 0 && strtoll(buf, NULL, 10) > 0 &&
                    sig == SIGKILL)
                    kills = 1;
            }
            snprintf(path, sizeof path, "%s/memory.limit_in_bytes", mem);
        }
        if (read_small(path, buf, sizeof buf) > 0)
            limit = strtoull(buf, NULL, 10);
        if (kills > 0)
            changed = cg_exit_reason(status, sig, kills, limit, detail, cap);
    }
    cg_remove(&cg);
    return changed;
}
