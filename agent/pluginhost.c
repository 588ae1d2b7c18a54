#include "pluginhost.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alog.h"
#include <jansson.h>

#include "error.h"

#define END_OF(type, member) (offsetof(type, member) + sizeof(((type *)0)->member))
/* What each ABI version's table holds: an ABI-1 plugin must declare at least
 * up to fini, an ABI-2 one up to metrics2. Fields a newer header appends
 * after them are simply not read. */
#define PLUGIN_PREFIX END_OF(struct ferry_plugin, fini)
#define PLUGIN_PREFIX_V2 END_OF(struct ferry_plugin, metrics2)
/* Far beyond anything this ABI version will grow to: a bigger struct_size is
 * garbage, not a future plugin. */
#define PLUGIN_SIZE_MAX 4096u

static int refuse(const char *path, const char *fmt, ...) FY_PRINTF(2, 3);
static int refuse(const char *path, const char *fmt, ...)
{
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    alog(FERRY_LOG_ERROR, "plugin %s refused: %s", path, reason);
    return FERRY_E_INVALID;
}

/* Next space-separated token of s: its start (NULL at the end) and length. */
static const char *next_token(const char *s, size_t *len)
{
    while (*s == ' ' || *s == '\t')
        s++;
    if (!*s)
        return NULL;
    size_t n = 0;
    while (s[n] && s[n] != ' ' && s[n] != '\t')
        n++;
    *len = n;
    return s;
}

static const struct plugin_slot *find_n(const struct plugin_set *set, const char *runtime, size_t rlen)
{
    for (size_t i = 0; i < set->n; i++) {
        const char *t = set->v[i].runtimes;
        size_t len;
        while ((t = next_token(t, &len)) != NULL) {
            if (len == rlen && memcmp(t, runtime, len) == 0)
                return &set->v[i];
            t += len;
        }
    }
    return NULL;
}

const struct plugin_slot *pluginhost_find(const struct plugin_set *set, const char *runtime)
{
    if (!set || !runtime || !*runtime)
        return NULL;
    return find_n(set, runtime, strlen(runtime));
}

/* Which of runtimes earlier plugins already serve, as "exec (exec from
 * /x/exec.so), ..." in out; returns how many runtimes stay for this one. */
static int unclaimed_runtimes(const struct plugin_set *set, const char *runtimes, char *out, size_t outsz)
{
    int free_n = 0;
    size_t used = 0;
    out[0] = '\0';
    const char *t = runtimes;
    size_t len;
    while ((t = next_token(t, &len)) != NULL) {
        const struct plugin_slot *owner = find_n(set, t, len);
        if (!owner) {
            free_n++;
        } else if (used < outsz) {
            int w = snprintf(out + used, outsz - used, "%s%.*s (%s from %s)", used ? ", " : "", (int)len,
                             t, owner->name, owner->path);
            used += w > 0 ? (size_t)w : 0;
        }
        t += len;
    }
    return free_n;
}

/* Who may change what the agent loads: root and the agent's own user. Why
 * st is not fit to trust, in why; 0 when it is. A sticky directory (such as
 * /tmp) is writable by others but lets no one else replace what root or the
 * agent put there, so it passes where sticky_ok. */
static int untrusted_why(const struct stat *st, int sticky_ok, char *why, size_t cap)
{
    unsigned mode = (unsigned)(st->st_mode & 07777);
    if (st->st_uid != 0 && st->st_uid != geteuid()) {
        snprintf(why, cap, "owned by uid %u, not root or the agent's user (uid %u)",
                 (unsigned)st->st_uid, (unsigned)geteuid());
        return 1;
    }
    if (sticky_ok && S_ISDIR(st->st_mode) && (st->st_mode & S_ISVTX))
        return 0;
    if (st->st_mode & S_IWOTH) {
        snprintf(why, cap, "writable by others (mode %04o)", mode);
        return 1;
    }
    if (st->st_mode & S_IWGRP) {
        snprintf(why, cap, "writable by its group (mode %04o)", mode);
        return 1;
    }
    return 0;
}

/* The file at real (no symlinks in it) and every directory above it up to
 * stop (inclusive), or up to / when real is not under stop. */
static int check_chain(const char *shown, const char *real, const char *stop, int is_link)
{
    char why[160];
    struct stat st;
    if (stat(real, &st) != 0)
        return refuse(shown, "%s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        return refuse(shown, "%snot a regular file", is_link ? "symlink to " : "");
    if (untrusted_why(&st, 0, why, sizeof why)) {
        if (is_link)
            return refuse(shown, "symlink to %s, which is %s", real, why);
        /* Anyone who can write the file can run code as the agent. */
        return refuse(shown, "%s", why);
    }
    size_t slen = strlen(stop);
    int under = strncmp(real, stop, slen) == 0 && real[slen] == '/';
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", real);
    for (;;) {
        char *slash = strrchr(dir, '/');
        if (!slash)
            break;
        if (slash == dir)
            slash[1] = '\0'; /* "/" itself */
        else
            *slash = '\0';
        if (stat(dir, &st) != 0)
            return refuse(shown, "folder %s: %s", dir, strerror(errno));
        /* Above the plugins folder is the operator's business; outside it
         * (a symlink's target) the whole chain must hold. */
        if (untrusted_why(&st, !under, why, sizeof why))
            return refuse(shown, "%sfolder %s is %s", is_link ? "symlink target's " : "", dir,
                          why);
        if ((under && strcmp(dir, stop) == 0) || strcmp(dir, "/") == 0)
            break;
    }
    return 0;
}

/* Before dlopen, which runs the library's constructors: the file, and every
 * folder above it up to the plugins folder, is owned by root or the agent's
 * user and writable by no one else; a symlink's target passes the same
 * test. */
static int check_trusted(const char *path, const char *dir)
{
    char realdir[PATH_MAX], real[PATH_MAX];
    if (!realpath(dir, realdir))
        return refuse(path, "folder %s: %s", dir, strerror(errno));
    struct stat lst;
    if (lstat(path, &lst) != 0)
        return refuse(path, "%s", strerror(errno));
    int is_link = S_ISLNK(lst.st_mode);
    if (!realpath(path, real))
        return refuse(path, "%s%s", is_link ? "symlink target: " : "", strerror(errno));
    if (is_link) {
        /* The plugins folder itself decides who could have placed the link. */
        char why[160];
        struct stat dst;
        if (stat(realdir, &dst) != 0)
            return refuse(path, "folder %s: %s", realdir, strerror(errno));
        if (untrusted_why(&dst, 0, why, sizeof why))
            return refuse(path, "folder %s is %s", realdir, why);
    }
    return check_chain(path, real, realdir, is_link);
}

static int load_one(struct plugin_set *set, const char *dir, const char *path,
                    const struct ferry_host *host)
{
    int crc = check_trusted(path, dir);
    if (crc < 0)
        return crc;

    dlerror();
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *e = dlerror();
        return refuse(path, "dlopen failed: %s", e ? e : "unknown error");
    }
    int rc;
    void *sym = dlsym(dl, "ferry_plugin_entry");
    if (!sym) {
        rc = refuse(path, "no symbol ferry_plugin_entry");
        goto fail;
    }
    ferry_plugin_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry); /* object to function pointer, as POSIX allows */

    /* Until magic and struct_size check out, the table may be anything: read
     * it a field at a time and never past what it says it holds. */
    const unsigned char *raw = (const unsigned char *)entry();
    if (!raw) {
        rc = refuse(path, "ferry_plugin_entry returned NULL");
        goto fail;
    }
    uint32_t magic, size;
    memcpy(&magic, raw + offsetof(struct ferry_plugin, magic), sizeof magic);
    if (magic != FERRY_PLUGIN_MAGIC) {
        rc = refuse(path, "wrong magic 0x%08x (expected 0x%08x)", magic, FERRY_PLUGIN_MAGIC);
        goto fail;
    }
    memcpy(&size, raw + offsetof(struct ferry_plugin, struct_size), sizeof size);
    if (size < PLUGIN_PREFIX) {
        rc = refuse(path, "struct_size %u too small (need at least %zu)", size, (size_t)PLUGIN_PREFIX);
        goto fail;
    }
    if (size > PLUGIN_SIZE_MAX) {
        rc = refuse(path, "struct_size %u implausibly large (limit %u)", size, PLUGIN_SIZE_MAX);
        goto fail;
    }
    uint32_t abi;
    memcpy(&abi, raw + offsetof(struct ferry_plugin, abi), sizeof abi);
    if (abi < FERRY_PLUGIN_ABI_MIN || abi > FERRY_PLUGIN_ABI) {
        rc = refuse(path, "abi %u (host speaks %u to %u)", abi, FERRY_PLUGIN_ABI_MIN, FERRY_PLUGIN_ABI);
        goto fail;
    }
    if (abi >= 2 && size < PLUGIN_PREFIX_V2) {
        rc = refuse(path, "abi %u but struct_size %u is smaller than ABI 2's table (%zu)", abi, size,
                    (size_t)PLUGIN_PREFIX_V2);
        goto fail;
    }
    /* Only the prefix its ABI defines: whatever an ABI-1 table has after
     * fini is not ABI-2 fields, and stays zero here. */
    size_t known = abi >= 2 ? sizeof(struct ferry_plugin) : PLUGIN_PREFIX;
    struct ferry_plugin p;
    memset(&p, 0, sizeof p);
    memcpy(&p, raw, size < known ? size : known);
    if (!p.name || !p.runtimes) {
        rc = refuse(path, "%s is NULL", !p.name ? "name" : "runtimes");
        goto fail;
    }
    size_t nlen = strnlen(p.name, PLUGIN_NAME_MAX);
    if (nlen == 0 || nlen == PLUGIN_NAME_MAX) {
        rc = refuse(path, "name is empty or longer than %d bytes", PLUGIN_NAME_MAX - 1);
        goto fail;
    }
    size_t rlen = strnlen(p.runtimes, PLUGIN_RUNTIMES_MAX);
    size_t tlen;
    if (rlen == PLUGIN_RUNTIMES_MAX) {
        rc = refuse(path, "runtimes longer than %d bytes", PLUGIN_RUNTIMES_MAX - 1);
        goto fail;
    }
    if (!next_token(p.runtimes, &tlen)) {
        rc = refuse(path, "serves no runtime (runtimes is empty)");
        goto fail;
    }
    /* ABI 1 has no optional ops; from ABI 2 on, metrics and the new ones
     * may be NULL (the host then does without). */
    const char *missing = !p.init                 ? "init"
                          : !p.start              ? "start"
                          : !p.stop               ? "stop"
                          : !p.health             ? "health"
                          : !p.metrics && abi < 2 ? "metrics"
                          : !p.fini               ? "fini"
                                                  : NULL;
    if (missing) {
        rc = refuse(path, "function %s is NULL", missing);
        goto fail;
    }

    char claimed[512];
    int free_n = unclaimed_runtimes(set, p.runtimes, claimed, sizeof claimed);
    if (free_n == 0) {
        /* Not initialised at all: it would serve nothing. */
        alog(FERRY_LOG_WARN, "plugin %s skipped: runtimes already served: %s", path, claimed);
        rc = FERRY_E_EXISTS;
        goto fail;
    }
    if (claimed[0])
        alog(FERRY_LOG_WARN, "plugin %s: runtimes already served, the first loaded wins: %s", path, claimed);

    /* set->v holds one slot per candidate file, so this never reallocates. */
    struct plugin_slot *s = &set->v[set->n];
    memset(s, 0, sizeof *s);
    memcpy(s->name, p.name, nlen);
    memcpy(s->runtimes, p.runtimes, rlen);
    snprintf(s->path, sizeof s->path, "%s", path);

    /* The host table speaks the plugin's version: an ABI-1 plugin that
     * checks host->abi == FERRY_PLUGIN_ABI (as its header told it) still
     * finds 1. Its prefix is the same in both versions. */
    s->host = *host;
    s->host.abi = abi;
    s->abi = abi;
    void *state = NULL;
    rc = p.init(&state, &s->host);
    if (rc != 0) {
        if (rc < 0)
            refuse(path, "init failed: %s", ferry_strerror(rc));
        else
            refuse(path, "init failed: returned %d", rc);
        rc = FERRY_E_INVALID;
        goto fail;
    }
    /* Keep nothing pointing into the plugin's memory that we can copy. */
    p.name = s->name;
    p.runtimes = s->runtimes;
    s->p = p;
    s->dl = dl;
    s->state = state;
    set->n++;
    alog(FERRY_LOG_INFO, "plugin %s loaded from %s (runtimes: %s), abi %u", s->name, path, s->runtimes, abi);
    return 0;

fail:
    dlclose(dl);
    return rc;
}

static int is_candidate(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    /* Hidden files are editor and package-manager leftovers, not plugins. */
    return d->d_name[0] != '.' && n > 3 && strcmp(d->d_name + n - 3, ".so") == 0;
}

/* Byte order, not the locale's collation: load order decides which plugin
 * wins a runtime, so it must not depend on LANG. */
static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

int pluginhost_load_dir(struct plugin_set *set, const char *dir, const struct ferry_host *host)
{
    if (!set || !dir || !host)
        return err_set(-EINVAL, "pluginhost_load_dir: NULL argument");
    if (set->v || set->n)
        return err_set(-EINVAL, "pluginhost_load_dir: plugin set already loaded");
    struct dirent **names = NULL;
    int count = scandir(dir, &names, is_candidate, by_name);
    if (count < 0) {
        int e = errno;
        return err_set(-e, "plugin dir %s: %s", dir, strerror(e));
    }
    int rc = 0;
    if (count > 0) {
        set->v = calloc((size_t)count, sizeof *set->v);
        if (!set->v)
            rc = err_set(-ENOMEM, "plugin dir %s: out of memory", dir);
    }
    for (int i = 0; i < count; i++) {
        if (rc == 0) {
            char path[sizeof set->v[0].path];
            int w = snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
            if (w < 0 || (size_t)w >= sizeof path)
                refuse(names[i]->d_name, "path too long in %s", dir);
            else
                load_one(set, dir, path, host);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

void pluginhost_unload_all(struct plugin_set *set)
{
    if (!set)
        return;
    /* Reverse order, like destructors: a later plugin may lean on an earlier
     * one's process-wide setup. */
    for (size_t i = set->n; i-- > 0;) {
        struct plugin_slot *s = &set->v[i];
        s->p.fini(s->state);
        dlclose(s->dl);
    }
    free(set->v);
    set->v = NULL;
    set->n = 0;
}

/* ---- ABI-2 calls ---------------------------------------------------------------- */

int pluginhost_exited(const struct plugin_slot *s, struct ferry_run *run, int status)
{
    if (!s || !run || s->abi < 2 || !s->p.exited)
        return 0;
    return s->p.exited(s->state, run, status);
}

int pluginhost_adopt(const struct plugin_slot *s, const struct ferry_workload *w, struct ferry_run *run)
{
    if (!s || !run || s->abi < 2 || !s->p.adopt)
        return 0;
    return s->p.adopt(s->state, w, run);
}

struct reply_buf {
    struct ferry_reply r; /* first, so the plugin's pointer is ours */
    char *json;
    size_t len;
};

static int reply_set(struct ferry_reply *reply, const char *json, size_t len)
{
    struct reply_buf *b = (struct reply_buf *)(void *)reply;
    if (!json)
        return FERRY_E_INVALID;
    if (len > reply->max_bytes)
        return FERRY_E_LIMIT;
    json_error_t e;
    json_t *j = json_loadb(json, len, JSON_DECODE_ANY, &e);
    if (!j)
        return FERRY_E_INVALID;
    json_decref(j);
    char *copy = malloc(len + 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, json, len);
    copy[len] = '\0';
    free(b->json);
    b->json = copy;
    b->len = len;
    return 0;
}

int pluginhost_action(const struct plugin_slot *s, struct ferry_run *run, const char *verb,
                      const char *request_json, char **reply_json, size_t *reply_len)
{
    *reply_json = NULL;
    *reply_len = 0;
    if (!s || !run || !verb)
        return -EINVAL;
    if (s->abi < 2 || !s->p.action)
        return err_set(-ENOTSUP, "plugin %s answers no actions", s->name);
    struct reply_buf b;
    memset(&b, 0, sizeof b);
    b.r.struct_size = sizeof b.r;
    b.r.set = reply_set;
    b.r.max_bytes = FERRY_REPLY_MAX;
    int rc = s->p.action(s->state, run, verb, request_json ? request_json : "{}", &b.r);
    if (rc == -ENOTSUP)
        rc = err_set(rc, "plugin %s does not know the action '%s'", s->name, verb);
    *reply_json = b.json;
    *reply_len = b.len;
    return rc;
}
