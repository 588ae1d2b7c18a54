/* The runtime spec writer: see ocispec.h. */
#include "ocispec.h"
#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define ID_FILE_MAX (1u << 20)
#define CFS_PERIOD_US 100000u

/* Docker's default set less NET_RAW, MKNOD, AUDIT_WRITE and SETFCAP: what
 * a service needs to drop root or bind a low port, nothing to craft
 * packets, make devices or give files capabilities. */
const char *const ocispec_caps[] = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", NULL,
};

/* ---- environment lists ---- */

struct strv {
    char **v;
    size_t n, cap;
};

static int strv_push(struct strv *s, const char *str)
{
    if (s->n + 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        char **g = realloc(s->v, cap * sizeof *g);
        if (!g)
            return -ENOMEM;
        s->v = g;
        s->cap = cap;
    }
    if (!(s->v[s->n] = strdup(str)))
        return -ENOMEM;
    s->v[++s->n] = NULL;
    return 0;
}

static void strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* Set "K=V": a later value of a key replaces the earlier in place. */
static int env_set(struct strv *s, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv)
        return err_set(FERRY_E_INVALID, "environment entry '%.80s' is not K=V", kv);
    size_t kl = (size_t)(eq - kv) + 1;
    for (size_t i = 0; i < s->n; i++)
        if (strncmp(s->v[i], kv, kl) == 0) {
            char *d = strdup(kv);
            if (!d)
                return -ENOMEM;
            free(s->v[i]);
            s->v[i] = d;
            return 0;
        }
    return strv_push(s, kv);
}

static int env_from_json(struct strv *s, json_t *env, const char *where)
{
    if (!env)
        return 0;
    if (json_is_array(env)) {
        size_t i;
        json_t *v;
        json_array_foreach(env, i, v) {
            if (!json_is_string(v))
                return err_set(FERRY_E_SPEC, "%s: each entry must be a string K=V", where);
            int rc = env_set(s, json_string_value(v));
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    if (json_is_object(env)) {
        const char *k;
        json_t *v;
        json_object_foreach(env, k, v) {
            char num[64];
            const char *val = json_is_string(v) ? json_string_value(v) : NULL;
            if (json_is_integer(v)) {
                snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
                val = num;
            } else if (json_is_boolean(v)) {
                val = json_is_true(v) ? "true" : "false";
            }
            if (!val)
                return err_set(FERRY_E_SPEC, "%s.%s: must be a string", where, k);
            size_t n = strlen(k) + strlen(val) + 2;
            char *kv = malloc(n);
            if (!kv)
                return -ENOMEM;
            snprintf(kv, n, "%s=%s", k, val);
            int rc = env_set(s, kv);
            free(kv);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    return err_set(FERRY_E_SPEC, "%s: must be a list or a mapping", where);
}

static int args_from_json(struct strv *s, json_t *arr, const char *where)
{
    if (!arr || json_is_null(arr))
        return 0;
    if (json_is_string(arr)) /* a shell form, as Docker runs it */
        return strv_push(s, "/bin/sh") || strv_push(s, "-c") || strv_push(s, json_string_value(arr))
                   ? -ENOMEM
                   : 0;
    if (!json_is_array(arr))
        return err_set(FERRY_E_SPEC, "%s: must be a list of strings", where);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        if (!json_is_string(v))
            return err_set(FERRY_E_SPEC, "%s: must be a list of strings", where);
        if (strv_push(s, json_string_value(v)) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* ---- users, looked up inside the rootfs ---- */

static char *read_in_root(const char *rootfs, const char *rel)
{
    int root = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return NULL;
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = O_RDONLY | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    long fd = syscall(SYS_openat2, root, rel, &how, sizeof how);
    if (fd < 0 && errno == ENOSYS) /* no openat2: only a plain file, no symlinks */
        fd = openat(root, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    close(root);
    if (fd < 0)
        return NULL;
    char *buf = malloc(ID_FILE_MAX + 1);
    size_t len = 0;
    while (buf && len < ID_FILE_MAX) {
        ssize_t n = read((int)fd, buf + len, ID_FILE_MAX - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close((int)fd);
    if (buf)
        buf[len] = '\0';
    return buf;
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* In passwd/group text: the line whose field 0 (by_name) or field 2 (by
 * id) is key; fields 2 and 3 as numbers. 0 when found. */
static int id_lookup(const char *text, const char *key, bool by_name, unsigned long *f2,
                     unsigned long *f3)
{
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char buf[1024];
        if (len < sizeof buf) {
            memcpy(buf, line, len);
            buf[len] = '\0';
            char *fields[4] = {0};
            char *p = buf;
            for (int i = 0; i < 4 && p; i++) {
                fields[i] = p;
                p = strchr(p, ':');
                if (p)
                    *p++ = '\0';
            }
            if (fields[2] && all_digits(fields[2]) &&
                strcmp(by_name ? fields[0] : fields[2], key) == 0) {
                *f2 = strtoul(fields[2], NULL, 10);
                if (f3)
                    *f3 = fields[3] ? strtoul(fields[3], NULL, 10) : 0;
                return 0;
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    return -ENOENT;
}

static int resolve_user(const char *rootfs, const char *user, uint32_t *uid, uint32_t *gid)
{
    *uid = 0;
    *gid = 0;
    if (!user || !*user)
        return 0;
    char u[256], g[256] = "";
    snprintf(u, sizeof u, "%s", user);
    char *colon = strchr(u, ':');
    if (colon) {
        *colon = '\0';
        snprintf(g, sizeof g, "%s", colon + 1);
    }
    if (!*u)
        return err_set(FERRY_E_SPEC, "user '%s': no user", user);
    char *passwd = read_in_root(rootfs, "etc/passwd");
    unsigned long id = 0, pgid = 0;
    int rc = 0;
    if (all_digits(u)) {
        id = strtoul(u, NULL, 10);
        unsigned long dummy;
        if (!passwd || id_lookup(passwd, u, false, &dummy, &pgid) < 0)
            pgid = 0;
    } else if (!passwd || id_lookup(passwd, u, true, &id, &pgid) < 0) {
        rc = err_set(FERRY_E_SPEC, "user '%s': no such user in the image's /etc/passwd", user);
    }
    free(passwd);
    if (rc < 0)
        return rc;
    if (id > UINT32_MAX - 1)
        return err_set(FERRY_E_SPEC, "user '%s': uid out of range", user);
    *uid = (uint32_t)id;
    *gid = (uint32_t)pgid;
    if (*g) {
        unsigned long gid_n = 0;
        if (all_digits(g)) {
            gid_n = strtoul(g, NULL, 10);
        } else {
            char *group = read_in_root(rootfs, "etc/group");
            int found = group && id_lookup(group, g, true, &gid_n, NULL) == 0;
            free(group);
            if (!found)
                return err_set(FERRY_E_SPEC, "user '%s': no such group in the image's /etc/group",
                               user);
        }
        if (gid_n > UINT32_MAX - 1)
            return err_set(FERRY_E_SPEC, "user '%s': gid out of range", user);
        *gid = (uint32_t)gid_n;
    }
    return 0;
}

/* ---- the process ---- */

void ocispec_process_free(struct ocispec_process *p)
{
    strv_free(p->args);
    strv_free(p->env);
    free(p->cwd);
    free(p->user);
    memset(p, 0, sizeof *p);
}

static const char *str_or(json_t *o, const char *key, const char *fallback)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) && json_string_value(v)[0] ? json_string_value(v) : fallback;
}

int ocispec_process(const struct ocispec_in *in, struct ocispec_process *out)
{
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    json_t *cfg = NULL, *oci = NULL;
    if (in->image_config) {
        cfg = json_loadb(in->image_config, in->image_config_len, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(cfg)) {
            json_decref(cfg);
            return err_set(FERRY_E_SPEC, "image config: not a JSON object (%s)", jerr.text);
        }
    }
    oci = json_loads(in->oci_json ? in->oci_json : "{}", 0, &jerr);
    if (!json_is_object(oci)) {
        json_decref(cfg);
        json_decref(oci);
        return err_set(FERRY_E_SPEC, "oci section: not a JSON object");
    }
    json_t *conf = json_object_get(cfg, "config"); /* may be absent: all defaults */
    if (conf && !json_is_object(conf))
        conf = NULL;
    struct strv args = {0}, env = {0};
    int rc = 0;
    json_t *cmd = json_object_get(oci, "command");
    if (cmd && json_is_array(cmd) && json_array_size(cmd) > 0) {
        rc = args_from_json(&args, cmd, "oci.command");
    } else {
        rc = args_from_json(&args, json_object_get(conf, "Entrypoint"), "image Entrypoint");
        if (rc == 0)
            rc = args_from_json(&args, json_object_get(conf, "Cmd"), "image Cmd");
    }
    if (rc == 0 && args.n == 0)
        rc = err_set(FERRY_E_SPEC, "no command: the image has no Entrypoint or Cmd and oci.command "
                                   "is not set");
    if (rc == 0)
        rc = env_set(&env, DEFAULT_PATH);
    if (rc == 0)
        rc = env_from_json(&env, json_object_get(conf, "Env"), "image Env");
    if (rc == 0)
        rc = env_from_json(&env, json_object_get(oci, "env"), "oci.env");
    for (size_t i = 0; rc == 0 && in->env && in->env[i]; i++)
        rc = env_set(&env, in->env[i]);
    const char *cwd = str_or(oci, "workdir", str_or(conf, "WorkingDir", "/"));
    if (rc == 0 && cwd[0] != '/')
        rc = err_set(FERRY_E_SPEC, "workdir '%s': must be an absolute path", cwd);
    const char *user = str_or(oci, "user", str_or(conf, "User", ""));
    if (rc == 0)
        rc = resolve_user(in->rootfs, user, &out->uid, &out->gid);
    if (rc == 0 && (!(out->cwd = strdup(cwd)) || !(out->user = strdup(user))))
        rc = -ENOMEM;
    json_decref(cfg);
    json_decref(oci);
    if (rc < 0) {
        strv_free(args.v);
        strv_free(env.v);
        free(out->cwd);
        free(out->user);
        memset(out, 0, sizeof *out);
        return rc;
    }
    out->args = args.v;
    out->env = env.v;
    return 0;
}

/* ---- the document ---- */

static json_t *str_array(const char *const *v)
{
    json_t *a = json_array();
    for (size_t i = 0; a && v && v[i]; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *mount(const char *dest, const char *type, const char *source, const char *const *opts)
{
    return json_pack("{s:s,s:s,s:s,s:o}", "destination", dest, "type", type, "source", source,
                     "options", str_array(opts));
}

static json_t *mounts(void)
{
    static const char *const proc[] = {"nosuid", "noexec", "nodev", NULL};
    static const char *const dev[] = {"nosuid", "strictatime", "mode=755", "size=65536k", NULL};
    static const char *const pts[] = {"nosuid", "noexec", "newinstance", "ptmxmode=0666",
                                      "mode=0620", NULL};
    static const char *const shm[] = {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k", NULL};
    static const char *const mq[] = {"nosuid", "noexec", "nodev", NULL};
    static const char *const sys[] = {"nosuid", "noexec", "nodev", "ro", NULL};
    json_t *m = json_array();
    json_array_append_new(m, mount("/proc", "proc", "proc", proc));
    json_array_append_new(m, mount("/dev", "tmpfs", "tmpfs", dev));
    json_array_append_new(m, mount("/dev/pts", "devpts", "devpts", pts));
    json_array_append_new(m, mount("/dev/shm", "tmpfs", "shm", shm));
    json_array_append_new(m, mount("/dev/mqueue", "mqueue", "mqueue", mq));
    json_array_append_new(m, mount("/sys", "sysfs", "sysfs", sys));
    return m;
}

static json_t *namespaces(bool own_net)
{
    static const char *const base[] = {"pid", "mount", "ipc", "uts", NULL};
    json_t *a = json_array();
    for (size_t i = 0; base[i]; i++)
        json_array_append_new(a, json_pack("{s:s}", "type", base[i]));
    if (own_net)
        json_array_append_new(a, json_pack("{s:s}", "type", "network"));
    return a;
}

static json_t *resources(json_t *res)
{
    json_t *r = json_object();
    /* Nothing but what the runtime itself needs from /dev. */
    json_object_set_new(r, "devices", json_pack("[{s:b,s:s}]", "allow", 0, "access", "rwm"));
    json_t *mem = json_object_get(res, "memory_bytes"), *pids = json_object_get(res, "pids"),
           *cpu = json_object_get(res, "cpu_millis");
    if (json_is_integer(mem) && json_integer_value(mem) > 0) {
        json_int_t b = json_integer_value(mem);
        /* swap equal to the limit: no swap beyond it. */
        json_object_set_new(r, "memory", json_pack("{s:I,s:I}", "limit", b, "swap", b));
    }
    if (json_is_integer(pids) && json_integer_value(pids) > 0)
        json_object_set_new(r, "pids", json_pack("{s:I}", "limit", json_integer_value(pids)));
    if (json_is_integer(cpu) && json_integer_value(cpu) > 0) {
        json_int_t q = json_integer_value(cpu) * CFS_PERIOD_US / 1000;
        json_object_set_new(r, "cpu", json_pack("{s:I,s:I}", "quota", q < 1000 ? 1000 : q, "period",
                                                (json_int_t)CFS_PERIOD_US));
    }
    return r;
}

int ocispec_build(const struct ocispec_in *in, char **json_out)
{
    *json_out = NULL;
    struct ocispec_process p;
    int rc = ocispec_process(in, &p);
    if (rc < 0)
        return rc;
    json_error_t jerr;
    json_t *oci = json_loads(in->oci_json ? in->oci_json : "{}", 0, &jerr);
    const char *network = str_or(oci, "network", "host");
    if (strcmp(network, "host") != 0 && strcmp(network, "none") != 0) {
        rc = err_set(FERRY_E_SPEC, "oci.network '%.64s': must be host or none", network);
        json_decref(oci);
        ocispec_process_free(&p);
        return rc;
    }
    bool ro = json_is_true(json_object_get(oci, "readonly_rootfs"));
    json_t *caps = str_array(ocispec_caps);
    json_t *process = json_pack(
        "{s:b,s:{s:I,s:I},s:o,s:o,s:s,s:{s:O,s:O,s:O,s:[]},s:b,s:[{s:s,s:I,s:I}]}", "terminal", 0,
        "user", "uid", (json_int_t)p.uid, "gid", (json_int_t)p.gid, "args",
        str_array((const char *const *)p.args), "env", str_array((const char *const *)p.env), "cwd",
        p.cwd, "capabilities", "bounding", caps, "effective", caps, "permitted", caps, "ambient",
        "noNewPrivileges", 1, "rlimits", "type", "RLIMIT_NOFILE", "hard", (json_int_t)1024, "soft",
        (json_int_t)1024);
    json_decref(caps);
    static const char *const masked[] = {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                                         "/proc/latency_stats", "/proc/timer_list",
                                         "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                                         "/proc/scsi", NULL};
    static const char *const ronly[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                        "/proc/sysrq-trigger", NULL};
    json_t *linux_ = json_pack("{s:o,s:o,s:o,s:o}", "namespaces", namespaces(strcmp(network, "none") == 0),
                               "resources", resources(json_object_get(oci, "resources")),
                               "maskedPaths", str_array(masked), "readonlyPaths", str_array(ronly));
    json_t *doc = json_pack("{s:s,s:o,s:{s:s,s:b},s:s,s:o,s:o}", "ociVersion", "1.0.2", "process",
                            process, "root", "path", in->rootfs, "readonly", ro, "hostname",
                            in->hostname ? in->hostname : "ferry", "mounts", mounts(), "linux",
                            linux_);
    if (doc && in->annotation)
        json_object_set_new(doc, "annotations", json_pack("{s:s}", "org.ferry.workload", in->annotation));
    json_decref(oci);
    ocispec_process_free(&p);
    if (!doc)
        return err_set(-ENOMEM, "runtime spec: out of memory");
    *json_out = json_dumps(doc, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(doc);
    return *json_out ? 0 : -ENOMEM;
}
