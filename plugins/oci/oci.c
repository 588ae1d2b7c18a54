/* The oci plugin: a workload is an OCI image run under runc.
 *
 * start() unpacks the image's layers once per version into
 * VERSION/.ferry/oci/rootfs (unpack.h), writes a bundle per run
 * (VERSION/.ferry/oci/ID/config.json, ocispec.h) and has the host spawn
 * `runc run --keep` in the foreground: runc stays the run's main process,
 * forwards signals to the container and exits with its status, so the host
 * supervises, restarts and adopts it like any process, and the container's
 * stdout and stderr are the run's log files (runc hands its own descriptors
 * through). exited() reads why the container ended (an out-of-memory kill
 * in its cgroup) and deletes it; stop() is `runc kill TERM`, the host's
 * KILL after the timeout ends runc, and exited() then deletes the
 * container (`runc delete --force` kills what is left). adopt() finds the
 * container again through `runc state`.
 *
 * Configuration (set by ferry-agent's --oci-runtime and --oci-root):
 * FERRY_OCI_RUNTIME, the runtime binary (default `runc` on PATH), and
 * FERRY_OCI_ROOT, its state folder (runc --root). */
#include <ferry/ferry.h>
#include <ferry/plugin.h>

#include "error.h"
#include "ocispec.h"
#include "pathsafe.h"
#include "healthcheck.h"
#include "procusage.h"
#include "unpack.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define NEED(type, last) (offsetof(type, last) + sizeof(((type *)0)->last))
#define DEFAULT_ROOT "/run/ferry-oci"
#define RUNTIME_TIMEOUT_MS 10000
#define COMMAND_TIMEOUT_DEFAULT_MS 5000
#define CONFIG_MAX (4u << 20)
#define OUT_MAX 65536
#define ID_MAX 128

struct oci_state {
    const struct ferry_host *host;
    char runtime[PATH_MAX];
    char root[PATH_MAX];
};

/* A run keeps nothing in plugin_data: the container's id and state folder
 * are its plugin_state (JSON), fixed while it runs, so probes, metrics and
 * the loop read the same text without sharing memory that stop() frees. */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- running the runtime ---- */

/* Run argv (argv[0] absolute), capture up to OUT_MAX bytes of its stdout
 * (and stderr, into err when given), wait at most timeout_ms. Returns the
 * exit status (128+signal), or a negative code. */
static int run_capture(char *const argv[], int timeout_ms, char **out, char *err, size_t errcap)
{
    if (out)
        *out = NULL;
    if (err && errcap)
        err[0] = '\0';
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(pe, O_CLOEXEC) < 0) {
        close(po[0]);
        close(po[1]);
        return -errno;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, po[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
    char *env[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, &at, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(po[1]);
    close(pe[1]);
    if (rc != 0) {
        close(po[0]);
        close(pe[0]);
        return -rc;
    }
    char *buf = malloc(OUT_MAX + 1);
    size_t len = 0, elen = 0;
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    int open_fds = 2, timed_out = 0;
    struct pollfd pf[2] = {{.fd = po[0], .events = POLLIN}, {.fd = pe[0], .events = POLLIN}};
    while (open_fds > 0) {
        uint64_t now = now_ms();
        if (now >= deadline) {
            timed_out = 1;
            break;
        }
        int n = poll(pf, 2, (int)(deadline - now));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            continue;
        for (int i = 0; i < 2; i++) {
            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char tmp[4096];
            ssize_t r = read(pf[i].fd, tmp, sizeof tmp);
            if (r <= 0) {
                close(pf[i].fd);
                pf[i].fd = -1;
                open_fds--;
                continue;
            }
            if (i == 0 && buf && len < OUT_MAX) {
                size_t k = (size_t)r < OUT_MAX - len ? (size_t)r : OUT_MAX - len;
                memcpy(buf + len, tmp, k);
                len += k;
            } else if (i == 1 && err && elen + 1 < errcap) {
                size_t k = (size_t)r < errcap - 1 - elen ? (size_t)r : errcap - 1 - elen;
                memcpy(err + elen, tmp, k);
                elen += k;
                err[elen] = '\0';
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (pf[i].fd >= 0)
            close(pf[i].fd);
    if (timed_out)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (err) /* one line: runc's logrus text ends in a newline */
        for (char *p = err; *p; p++)
            if (*p == '\n' || *p == '\r')
                *p = *(p + 1) ? ' ' : '\0';
    if (buf)
        buf[len] = '\0';
    if (out)
        *out = buf;
    else
        free(buf);
    if (timed_out)
        return -ETIMEDOUT;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* runtime --root ROOT VERB ARGS... */
static int runtime(const struct oci_state *s, const char *root, const char *const *args, char **out,
                   char *err, size_t errcap)
{
    char *argv[16];
    size_t k = 0;
    argv[k++] = (char *)s->runtime;
    argv[k++] = "--root";
    argv[k++] = (char *)root;
    for (size_t i = 0; args[i] && k < 15; i++)
        argv[k++] = (char *)args[i];
    argv[k] = NULL;
    return run_capture(argv, RUNTIME_TIMEOUT_MS, out, err, errcap);
}

/* Start argv and do not wait for it: a child that exits at once leaves a
 * grandchild nobody needs to reap (the host's loop must not block). */
static void runtime_detached(const struct oci_state *s, const char *root, const char *verb,
                             const char *id, const char *arg)
{
    char *argv[] = {(char *)s->runtime, "--root", (char *)root, (char *)verb, (char *)id,
                    (char *)arg, NULL};
    pid_t pid = fork();
    if (pid == 0) {
        if (fork() == 0) {
            int null = open("/dev/null", O_RDWR);
            if (null >= 0) {
                dup2(null, 0);
                dup2(null, 1);
                dup2(null, 2);
            }
            execv(argv[0], argv);
            _exit(127);
        }
        _exit(0);
    }
    if (pid > 0)
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
}

/* ---- init ---- */

static int find_on_path(const char *name, char *out, size_t cap)
{
    if (strchr(name, '/')) {
        if (access(name, X_OK) < 0)
            return -errno;
        return realpath(name, out) ? 0 : -errno;
    }
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path && *path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char cand[PATH_MAX];
        if ((size_t)snprintf(cand, sizeof cand, "%s/%s", d, name) >= sizeof cand)
            continue;
        if (access(cand, X_OK) == 0) {
            snprintf(out, cap, "%s", cand);
            return 0;
        }
    }
    return -ENOENT;
}

static int oci_init(void **state, const struct ferry_host *host)
{
    if (!host || host->magic != FERRY_HOST_MAGIC || host->abi != FERRY_PLUGIN_ABI ||
        host->struct_size < NEED(struct ferry_host, run_command) || !host->spawn || !host->signal ||
        !host->alive || !host->http_get || !host->run_command || !host->log)
        return -EINVAL;
    struct oci_state *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->host = host;
    const char *rt = getenv("FERRY_OCI_RUNTIME");
    if (!rt || !*rt)
        rt = "runc";
    if (find_on_path(rt, s->runtime, sizeof s->runtime) < 0) {
        /* Not fatal: the host keeps serving other runtimes, and each start
         * says what is missing. */
        host->log(host->ctx, FERRY_LOG_WARN, "oci: runtime '%s' not found (--oci-runtime)", rt);
        snprintf(s->runtime, sizeof s->runtime, "%s", rt);
    }
    const char *root = getenv("FERRY_OCI_ROOT");
    snprintf(s->root, sizeof s->root, "%s", root && *root ? root : DEFAULT_ROOT);
    *state = s;
    return 0;
}

static void oci_fini(void *state) { free(state); }

/* ---- plugin_state: {"id":..,"root":..} ---- */

static int state_put(struct ferry_run *run, const char *id, const char *root)
{
    json_t *o = json_pack("{s:s,s:s}", "id", id, "root", root);
    char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!txt)
        return -ENOMEM;
    int fits = strlen(txt) < sizeof run->plugin_state;
    if (fits)
        snprintf(run->plugin_state, sizeof run->plugin_state, "%s", txt);
    free(txt);
    return fits ? 0 : -ENAMETOOLONG;
}

static int state_get(const struct ferry_run *run, char *id, size_t idcap, char *root, size_t rootcap)
{
    json_error_t e;
    json_t *o = json_loads(run->plugin_state, 0, &e);
    const char *i = json_string_value(json_object_get(o, "id"));
    const char *r = json_string_value(json_object_get(o, "root"));
    int rc = i && r && *i && *r ? 0 : -ENOENT;
    if (rc == 0) {
        snprintf(id, idcap, "%s", i);
        snprintf(root, rootcap, "%s", r);
    }
    json_decref(o);
    return rc;
}

/* ---- containers ---- */

/* The container id's stem for name@version: runc ids are [A-Za-z0-9_.+-]. */
static void id_stem(const struct ferry_workload *w, char *out, size_t cap)
{
    char raw[ID_MAX];
    snprintf(raw, sizeof raw, "ferry-%s-%s-", w->name ? w->name : "", w->version ? w->version : "");
    size_t i = 0;
    for (; raw[i] && i < cap - 1 && i < 96; i++) {
        char c = raw[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.' || c == '-';
        out[i] = ok ? c : '_';
    }
    out[i] = '\0';
}

/* 1 when id is stem followed by a run's number (hex) and nothing else:
 * "ferry-web-1-" must not match web-1@x's "ferry-web-1-x-1a2b". */
static int is_run_of(const char *id, const char *stem)
{
    size_t n = strlen(stem);
    if (strncmp(id, stem, n) != 0 || !id[n])
        return 0;
    for (const char *p = id + n; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

/* Containers of this name@version that an earlier run left (an agent that
 * was not there when one ended): deleted before a new one starts. */
static void sweep(const struct oci_state *s, const char *stem)
{
    const char *args[] = {"list", "--format", "json", NULL};
    char *out = NULL;
    if (runtime(s, s->root, args, &out, NULL, 0) != 0 || !out) {
        free(out);
        return;
    }
    json_error_t e;
    json_t *list = json_loads(out, 0, &e);
    free(out);
    size_t i;
    json_t *c;
    json_array_foreach(list, i, c) {
        const char *id = json_string_value(json_object_get(c, "id"));
        if (id && is_run_of(id, stem)) {
            const char *del[] = {"delete", "--force", id, NULL};
            runtime(s, s->root, del, NULL, NULL, 0);
            s->host->log(s->host->ctx, FERRY_LOG_INFO, "oci: deleted container %s left by an earlier run", id);
        }
    }
    json_decref(list);
}

/* The memory cgroup the runtime made for the container, from its state
 * file (runc's state.json names its cgroup folders). */
static int memory_cgroup(const char *root, const char *id, char *out, size_t cap, int *v2)
{
    char path[PATH_MAX + ID_MAX + 32];
    snprintf(path, sizeof path, "%s/%s/state.json", root, id);
    json_error_t e;
    json_t *st = json_load_file(path, 0, &e);
    json_t *paths = json_object_get(st, "cgroup_paths");
    const char *mem = json_string_value(json_object_get(paths, "memory"));
    *v2 = 0;
    if (!mem) {
        mem = json_string_value(json_object_get(paths, ""));
        *v2 = 1;
    }
    int rc = mem && *mem ? 0 : -ENOENT;
    if (rc == 0)
        snprintf(out, cap, "%s", mem);
    json_decref(st);
    return rc;
}

static long long read_key(const char *file, const char *key)
{
    FILE *f = fopen(file, "re");
    if (!f)
        return -1;
    char line[256];
    long long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ' ') {
            v = strtoll(line + kl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static void format_size(unsigned long long b, char *out, size_t cap)
{
    static const struct {
        const char *u;
        unsigned sh;
    } units[] = {{"Gi", 30}, {"Mi", 20}, {"Ki", 10}};
    for (size_t i = 0; i < 3; i++) {
        unsigned long long m = 1ull << units[i].sh;
        if (b >= m && b % m == 0) {
            snprintf(out, cap, "%llu%s", b / m, units[i].u);
            return;
        }
    }
    snprintf(out, cap, "%llu", b);
}

/* "killed: out of memory (limit 32Mi)" when the container's cgroup counted
 * an out-of-memory kill, else "". */
static void oom_reason(const char *root, const char *id, char *out, size_t cap)
{
    out[0] = '\0';
    char dir[PATH_MAX], file[PATH_MAX + 32];
    int v2;
    if (memory_cgroup(root, id, dir, sizeof dir, &v2) < 0)
        return;
    snprintf(file, sizeof file, "%s/%s", dir, v2 ? "memory.events" : "memory.oom_control");
    long long kills = read_key(file, "oom_kill");
    if (kills <= 0)
        return;
    snprintf(file, sizeof file, "%s/%s", dir, v2 ? "memory.max" : "memory.limit_in_bytes");
    char lim[32] = "?";
    FILE *f = fopen(file, "re");
    unsigned long long b;
    if (f && fscanf(f, "%llu", &b) == 1)
        format_size(b, lim, sizeof lim);
    if (f)
        fclose(f);
    snprintf(out, cap, "killed: out of memory (limit %s)", lim);
}

/* ---- start ---- */

static char *read_file(const char *path, size_t max, size_t *len)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    char *buf = NULL;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size <= max &&
        (buf = malloc((size_t)st.st_size + 1))) {
        ssize_t n = read(fd, buf, (size_t)st.st_size);
        if (n != st.st_size) {
            free(buf);
            buf = NULL;
        } else {
            buf[n] = '\0';
            *len = (size_t)n;
        }
    }
    close(fd);
    return buf;
}

static int write_text(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text);
    int rc = write(fd, text, len) == (ssize_t)len ? 0 : -EIO;
    close(fd);
    return rc;
}

static int workload_ok(const struct ferry_workload *w)
{
    return w && w->struct_size >= NEED(struct ferry_workload, kind_json);
}

static int run_ok(const struct ferry_run *run)
{
    return run && run->struct_size >= NEED(struct ferry_run, plugin_state);
}

/* The run's environment inside the container: run.env, then what the host
 * decides (PORT, FERRY_WORKLOAD, FERRY_VERSION). */
static char **run_env(const struct ferry_workload *w, const struct ferry_run *run)
{
    size_t n = 0;
    for (const char *const *e = w->env; e && *e; e++)
        n++;
    char **v = calloc(n + 4, sizeof *v);
    if (!v)
        return NULL;
    size_t k = 0;
    for (const char *const *e = w->env; e && *e; e++)
        if (strncmp(*e, "PORT=", 5) != 0 && strncmp(*e, "FERRY_WORKLOAD=", 15) != 0 &&
            strncmp(*e, "FERRY_VERSION=", 14) != 0)
            v[k++] = strdup(*e);
    if (asprintf(&v[k++], "PORT=%d", run->port) < 0 ||
        asprintf(&v[k++], "FERRY_WORKLOAD=%s", w->name ? w->name : "") < 0 ||
        asprintf(&v[k++], "FERRY_VERSION=%s", w->version ? w->version : "") < 0)
        v[k - 1] = NULL;
    for (size_t i = 0; i < k; i++)
        if (!v[i]) {
            for (size_t j = 0; j < k; j++)
                free(v[j]);
            free(v);
            return NULL;
        }
    return v;
}

static void env_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* Layers and config from the oci section (the agent puts the signed
 * manifest's resolution of the image there), as paths in the tree. */
static int image_layers(const char *dir, json_t *oci, struct unpack_layer **out, size_t *n,
                        char ***paths)
{
    json_t *layers = json_object_get(oci, "layers");
    if (!json_is_array(layers) || json_array_size(layers) == 0)
        return err_set(FERRY_E_SPEC, "the oci section names no layers (was the artifact published "
                                     "by a ferry that reads images?)");
    size_t k = json_array_size(layers);
    struct unpack_layer *l = calloc(k, sizeof *l);
    char **p = calloc(k + 1, sizeof *p);
    if (!l || !p) {
        free(l);
        free(p);
        return -ENOMEM;
    }
    for (size_t i = 0; i < k; i++) {
        json_t *e = json_array_get(layers, i);
        const char *file = json_string_value(json_object_get(e, "file"));
        const char *digest = json_string_value(json_object_get(e, "digest"));
        if (!file || !digest || path_check(file) < 0 || asprintf(&p[i], "%s/%s", dir, file) < 0) {
            for (size_t j = 0; j < i; j++)
                free(p[j]);
            free(l);
            free(p);
            return err_set(FERRY_E_SPEC, "oci layer %zu: no safe file or no digest", i + 1);
        }
        l[i].path = p[i];
        l[i].digest = digest;
    }
    *out = l;
    *n = k;
    *paths = p;
    return 0;
}

static int prepare_bundle(struct oci_state *s, const struct ferry_workload *w, struct ferry_run *run,
                          const char *id, char *bundle, size_t bcap)
{
    const struct ferry_host *h = s->host;
    char dir[PATH_MAX];
    if (!realpath(w->dir, dir))
        return err_set(-errno, "%s: %s", w->dir, strerror(errno));
    json_error_t je;
    json_t *oci = json_loads(w->kind_json ? w->kind_json : "{}", 0, &je);
    if (!json_is_object(oci)) {
        json_decref(oci);
        return err_set(FERRY_E_SPEC, "the oci section is not an object");
    }
    char base[PATH_MAX + 32], rootfs[PATH_MAX + 64];
    snprintf(base, sizeof base, "%s/" PATH_AGENT_DIR "/oci", dir);
    snprintf(rootfs, sizeof rootfs, "%s/rootfs", base);
    char agentdir[PATH_MAX + 16];
    snprintf(agentdir, sizeof agentdir, "%s/" PATH_AGENT_DIR, dir);
    mkdir(agentdir, 0755);
    mkdir(base, 0711);

    struct unpack_layer *layers = NULL;
    char **paths = NULL;
    size_t n = 0;
    int rc = image_layers(dir, oci, &layers, &n, &paths);
    struct unpack_opts o;
    if (rc == 0)
        rc = unpack_opts_default(&o);
    struct unpack_stats st;
    if (rc == 0) {
        uint64_t t0 = now_ms();
        rc = unpack_rootfs(rootfs, layers, n, &o, &st);
        if (rc == 0)
            h->log(h->ctx, FERRY_LOG_INFO,
                   "oci %s@%s: unpacked %zu layer%s in %llu ms: %llu entries, %llu bytes; %llu "
                   "device node%s skipped, %llu setuid/setgid bit%s dropped, %llu whiteout%s",
                   w->name, w->version, n, n == 1 ? "" : "s", (unsigned long long)(now_ms() - t0),
                   (unsigned long long)st.entries, (unsigned long long)st.bytes,
                   (unsigned long long)st.devices_skipped, st.devices_skipped == 1 ? "" : "s",
                   (unsigned long long)st.setid_dropped, st.setid_dropped == 1 ? "" : "s",
                   (unsigned long long)st.whiteouts, st.whiteouts == 1 ? "" : "s");
        if (rc > 0)
            rc = 0;
    }
    for (size_t i = 0; paths && paths[i]; i++)
        free(paths[i]);
    free(paths);
    free(layers);

    char *config = NULL;
    size_t clen = 0;
    const char *cfile = json_string_value(json_object_get(oci, "config_file"));
    if (rc == 0 && cfile && *cfile) {
        char cpath[PATH_MAX + 1100];
        if (path_check(cfile) < 0)
            rc = err_set(FERRY_E_SPEC, "oci config_file '%.100s' is not a safe path", cfile);
        snprintf(cpath, sizeof cpath, "%s/%s", dir, cfile);
        if (rc == 0 && !(config = read_file(cpath, CONFIG_MAX, &clen)))
            rc = err_set(FERRY_E_SPEC, "image config %s: cannot be read", cfile);
        const char *cd = json_string_value(json_object_get(oci, "config_digest"));
        if (rc == 0 && cd && *cd)
            rc = unpack_check_digest(cpath, cd);
    }
    char **env = rc == 0 ? run_env(w, run) : NULL;
    if (rc == 0 && !env)
        rc = -ENOMEM;
    char annotation[160];
    snprintf(annotation, sizeof annotation, "%s@%s", w->name, w->version);
    struct ocispec_in in = {
        .image_config = config, .image_config_len = clen, .oci_json = w->kind_json,
        .env = (const char *const *)env, .rootfs = rootfs, .hostname = w->name,
        .annotation = annotation,
    };
    char *doc = NULL;
    if (rc == 0)
        rc = ocispec_build(&in, &doc);
    env_free(env);
    free(config);
    json_decref(oci);
    if (rc == 0) {
        snprintf(bundle, bcap, "%s/%s", base, id);
        unpack_rm_rf(bundle);
        char cfgpath[PATH_MAX + 400];
        snprintf(cfgpath, sizeof cfgpath, "%s/config.json", bundle);
        if (mkdir(bundle, 0700) < 0 || write_text(cfgpath, doc) < 0)
            rc = err_set(-EIO, "%s: cannot write the runtime spec", cfgpath);
    }
    free(doc);
    return rc;
}

/* Bundles of earlier runs of this version (not the one starting). */
static void remove_old_bundles(const char *dir, const char *stem, const char *keep)
{
    char base[PATH_MAX + 32];
    snprintf(base, sizeof base, "%s/" PATH_AGENT_DIR "/oci", dir);
    DIR *d = opendir(base);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        if (!is_run_of(e->d_name, stem) || strcmp(e->d_name, keep) == 0)
            continue;
        char p[PATH_MAX + 300];
        snprintf(p, sizeof p, "%s/%s", base, e->d_name);
        unpack_rm_rf(p);
    }
    closedir(d);
}

static int oci_start(void *state, const struct ferry_workload *w, struct ferry_run *run)
{
    struct oci_state *s = state;
    const struct ferry_host *h = s->host;
    if (!workload_ok(w) || !run_ok(run))
        return -EINVAL;
    err_clear();
    if (access(s->runtime, X_OK) < 0) {
        int e = errno;
        h->log(h->ctx, FERRY_LOG_ERROR, "oci %s@%s: runtime %s: %s", w->name, w->version, s->runtime,
               strerror(e));
        if (run->struct_size >= NEED(struct ferry_run, exit_reason))
            snprintf(run->exit_reason, sizeof run->exit_reason,
                     "the OCI runtime %.160s: %s (ferry-agent --oci-runtime)", s->runtime, strerror(e));
        return -ENOENT;
    }
    char stem[ID_MAX], id[ID_MAX + 24];
    id_stem(w, stem, sizeof stem);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(id, sizeof id, "%s%llx", stem,
             (unsigned long long)ts.tv_sec * 1000ull + (unsigned long long)ts.tv_nsec / 1000000ull);
    sweep(s, stem);
    char bundle[PATH_MAX + 200];
    int rc = prepare_bundle(s, w, run, id, bundle, sizeof bundle);
    if (rc < 0) {
        h->log(h->ctx, FERRY_LOG_ERROR, "oci %s@%s: %s", w->name, w->version, err_message(rc));
        if (run->struct_size >= NEED(struct ferry_run, exit_reason))
            snprintf(run->exit_reason, sizeof run->exit_reason, "%s", err_message(rc));
        return rc;
    }
    char dir[PATH_MAX];
    if (realpath(w->dir, dir))
        remove_old_bundles(dir, stem, id);
    if ((rc = state_put(run, id, s->root)) < 0)
        return rc;
    mkdir(s->root, 0700);
    /* --keep: the container stays (stopped) after it ends, so exited() can
     * read its cgroup's out-of-memory count before deleting it. */
    const char *argv[] = {s->runtime, "--root", s->root, "run", "--keep", "--bundle", bundle, id, NULL};
    const char *env[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    rc = h->spawn(h->ctx, run, argv, env, bundle);
    if (rc < 0)
        run->plugin_state[0] = '\0';
    return rc;
}

/* ---- stop, exit, adopt ---- */

static int oci_stop(void *state, struct ferry_run *run, int timeout_ms)
{
    struct oci_state *s = state;
    if (!run_ok(run))
        return -EINVAL;
    (void)timeout_ms; /* the host KILLs runc after it; exited() deletes the container */
    char id[ID_MAX], root[PATH_MAX];
    if (state_get(run, id, sizeof id, root, sizeof root) == 0)
        runtime_detached(s, root, "kill", id, "TERM");
    else
        s->host->signal(s->host->ctx, run, SIGTERM); /* runc forwards it */
    return 0;
}

static int oci_exited(void *state, struct ferry_run *run, int status)
{
    struct oci_state *s = state;
    if (!run_ok(run))
        return -EINVAL;
    char id[ID_MAX], root[PATH_MAX];
    if (state_get(run, id, sizeof id, root, sizeof root) < 0)
        return 0;
    char why[200];
    oom_reason(root, id, why, sizeof why);
    if (why[0]) {
        s->host->log(s->host->ctx, FERRY_LOG_WARN, "oci container %s: %s", id, why);
        if (run->struct_size >= NEED(struct ferry_run, exit_reason))
            snprintf(run->exit_reason, sizeof run->exit_reason, "%s", why);
    }
    const char *del[] = {"delete", "--force", id, NULL};
    char err[256];
    int rc = runtime(s, root, del, NULL, err, sizeof err);
    if (rc != 0)
        s->host->log(s->host->ctx, FERRY_LOG_WARN, "oci container %s: delete: %s", id,
                     err[0] ? err : strerror(rc < 0 ? -rc : EIO));
    (void)status;
    run->plugin_state[0] = '\0';
    return 0;
}

/* The container's state as runc reports it: status and init pid. */
static int container_state(const struct oci_state *s, const char *root, const char *id, char *status,
                           size_t cap, int *pid)
{
    const char *args[] = {"state", id, NULL};
    char *out = NULL;
    int rc = runtime(s, root, args, &out, NULL, 0);
    if (rc != 0 || !out) {
        free(out);
        return rc < 0 ? rc : -ESRCH;
    }
    json_error_t e;
    json_t *o = json_loads(out, 0, &e);
    free(out);
    const char *st = json_string_value(json_object_get(o, "status"));
    json_t *p = json_object_get(o, "pid");
    rc = st ? 0 : -ESRCH;
    if (st) {
        snprintf(status, cap, "%s", st);
        *pid = json_is_integer(p) ? (int)json_integer_value(p) : 0;
    }
    json_decref(o);
    return rc;
}

static int oci_adopt(void *state, const struct ferry_workload *w, struct ferry_run *run)
{
    struct oci_state *s = state;
    if (!run_ok(run))
        return -EINVAL;
    char id[ID_MAX], root[PATH_MAX], status[32];
    int pid = 0;
    if (state_get(run, id, sizeof id, root, sizeof root) < 0)
        return -ENOENT;
    int rc = container_state(s, root, id, status, sizeof status, &pid);
    if (rc < 0 || strcmp(status, "running") != 0 || pid <= 0) {
        s->host->log(s->host->ctx, FERRY_LOG_WARN, "oci %s@%s: container %s is %s", w ? w->name : "?",
                     w ? w->version : "?", id, rc < 0 ? "gone" : status);
        return -ESRCH;
    }
    s->host->log(s->host->ctx, FERRY_LOG_INFO, "oci %s@%s: container %s (pid %d) adopted",
                 w ? w->name : "?", w ? w->version : "?", id, pid);
    return 0;
}

/* ---- health and metrics ---- */

static int ctr_pid(struct oci_state *s, struct ferry_run *run)
{
    char id[ID_MAX], root[PATH_MAX], status[32];
    int pid = 0;
    if (state_get(run, id, sizeof id, root, sizeof root) < 0 ||
        container_state(s, root, id, status, sizeof status, &pid) < 0 || strcmp(status, "running") != 0)
        return 0;
    return pid;
}

static int oci_health(void *state, const struct ferry_workload *w, struct ferry_run *run,
                      struct ferry_health *out)
{
    struct oci_state *s = state;
    const struct ferry_host *h = s->host;
    if (!workload_ok(w) || !run_ok(run) || !out || out->struct_size < NEED(struct ferry_health, reason))
        return -EINVAL;
    if (health_alive_http(h, w, run, out))
        return 0;
    if (w->health_command && w->health_command[0]) {
        /* Inside the container, with its environment (runc exec takes the
         * container's process settings). */
        char id[ID_MAX], root[PATH_MAX];
        if (state_get(run, id, sizeof id, root, sizeof root) < 0) {
            snprintf(out->reason, sizeof out->reason, "no container yet");
            return 0;
        }
        size_t n = 0;
        while (w->health_command[n])
            n++;
        const char **argv = calloc(n + 6, sizeof *argv);
        if (!argv)
            return -ENOMEM;
        size_t k = 0;
        argv[k++] = s->runtime;
        argv[k++] = "--root";
        argv[k++] = root;
        argv[k++] = "exec";
        argv[k++] = id;
        for (size_t i = 0; i < n; i++)
            argv[k++] = w->health_command[i];
        argv[k] = NULL;
        int timeout = w->health_interval_ms ? (int)w->health_interval_ms : COMMAND_TIMEOUT_DEFAULT_MS;
        const char *env[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL};
        int status = 0;
        int rc = h->run_command(h->ctx, argv, env, "/", timeout, &status);
        free(argv);
        health_command_result(rc, status, timeout, out);
        return 0;
    }
    uint64_t now = now_ms();
    if (now >= run->started_ms && now - run->started_ms >= w->health_settle_ms)
        out->healthy = 1;
    else
        snprintf(out->reason, sizeof out->reason, "settling");
    return 0;
}

static int oci_metrics2(void *state, struct ferry_run *run, struct ferry_metric_sink *sink)
{
    if (!run_ok(run) || !sink || sink->struct_size < NEED(struct ferry_metric_sink, add) || !sink->add)
        return -EINVAL;
    /* The container's init leads its own session. */
    int pid = ctr_pid(state, run);
    return usage_report(pid > 0 ? pid : run->pid, sink);
}

static const struct ferry_plugin oci_plugin = {
    .magic = FERRY_PLUGIN_MAGIC,
    .struct_size = sizeof(struct ferry_plugin),
    .abi = FERRY_PLUGIN_ABI,
    .name = "oci",
    .runtimes = "oci",
    .init = oci_init,
    .start = oci_start,
    .stop = oci_stop,
    .health = oci_health,
    .fini = oci_fini,
    .exited = oci_exited,
    .adopt = oci_adopt,
    .metrics2 = oci_metrics2,
};

__attribute__((visibility("default"))) const struct ferry_plugin *ferry_plugin_entry(void)
{
    return &oci_plugin;
}
