/* Kernels across an agent restart (docs/notebooks.md, "Kernels and agent
 * restarts"). A kernel is a process in its own session with a connection
 * file in its private folder; neither needs the agent. What a later agent
 * needs to take them back is where they are: each notebook run keeps an
 * index, DIR/.ferry/kernels.json (0600, no secret in it: the HMAC key stays
 * in the kernel's own connection file), rewritten on every change. The
 * run's plugin_state names the file; adopt() reads it. */
#include "kernel_int.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KDIR_PREFIX "/tmp/ferry-kernel-"

uint64_t kproc_start(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* After "(comm)": state is field 3, starttime field 22. */
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    p++;
    char state = 0;
    unsigned long long start = 0;
    int field = 2;
    for (char *tok = strtok(p, " "); tok; tok = strtok(NULL, " ")) {
        field++;
        if (field == 3)
            state = tok[0];
        if (field == 22) {
            start = strtoull(tok, NULL, 10);
            break;
        }
    }
    return state == 'Z' || state == 'X' ? 0 : start;
}

int kproc_alive(const struct kernel *k)
{
    if (k->pid <= 0)
        return 0;
    uint64_t st = kproc_start(k->pid);
    return st != 0 && (k->proc_start == 0 || st == k->proc_start);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    remove(path);
    return 0;
}

void kdir_remove(const char *dir)
{
    /* Only a kernel folder this plugin makes: the index is a file a later
     * process reads back, so a path in it is checked before it is used. */
    if (dir && strncmp(dir, KDIR_PREFIX, strlen(KDIR_PREFIX)) == 0 &&
        !strchr(dir + strlen(KDIR_PREFIX), '/'))
        nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

int kstate_save(const struct ferry_host *h, struct nb_run *nr)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < nr->n; i++) {
        const struct kernel *k = &nr->k[i];
        json_array_append_new(
            a, json_pack("{s:s, s:s, s:i, s:I, s:s, s:s, s:i, s:I, s:I, s:i}", "id", k->id,
                         "owner", k->owner, "pid", (int)k->pid, "proc_start",
                         (json_int_t)k->proc_start, "dir", k->dir, "ip", k->ip, "shell_port",
                         k->shell_port, "idle_ms", (json_int_t)k->idle_ms, "started_ms",
                         (json_int_t)k->started_ms, "restarts", (int)k->restarts));
    }
    json_t *doc = a ? json_pack("{s:i, s:o}", "format", 1, "kernels", a) : NULL;
    char *text = doc ? json_dumps(doc, JSON_INDENT(1)) : NULL;
    json_decref(doc);
    if (!text)
        return -ENOMEM;
    char tmp[sizeof nr->index + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", nr->index);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t len = strlen(text);
    int rc = fd < 0 ? -errno : 0;
    if (rc == 0 && write(fd, text, len) != (ssize_t)len)
        rc = -EIO;
    if (fd >= 0 && close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, nr->index) < 0)
        rc = -errno;
    free(text);
    if (rc < 0) {
        unlink(tmp);
        h->log(h->ctx, FERRY_LOG_WARN,
               "notebook %s: cannot write %s (its kernels would not be adopted after an agent "
               "restart): %s",
               nr->name, nr->index, strerror(-rc));
    }
    return rc;
}

static int hex_id(const char *s)
{
    if (!s || strlen(s) != 2 * KERNEL_ID_BYTES)
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

int kstate_load(const struct ferry_host *h, struct nb_run *nr)
{
    json_error_t e;
    json_t *doc = json_load_file(nr->index, 0, &e);
    if (!doc)
        return -ENOENT;
    json_t *a = json_object_get(doc, "kernels");
    size_t i;
    json_t *v;
    nr->n = 0;
    json_array_foreach(a, i, v)
    {
        const char *id = json_string_value(json_object_get(v, "id"));
        const char *owner = json_string_value(json_object_get(v, "owner"));
        const char *dir = json_string_value(json_object_get(v, "dir"));
        const char *ip = json_string_value(json_object_get(v, "ip"));
        if (nr->n >= KERNELS_MAX || !hex_id(id) || !owner || !dir || !ip ||
            strncmp(dir, KDIR_PREFIX, strlen(KDIR_PREFIX)) != 0 ||
            strchr(dir + strlen(KDIR_PREFIX), '/') || strlen(dir) >= sizeof nr->k[0].dir ||
            strlen(owner) >= sizeof nr->k[0].owner || strlen(ip) >= sizeof nr->k[0].ip) {
            h->log(h->ctx, FERRY_LOG_WARN, "notebook %s: %s: entry %zu skipped (malformed)",
                   nr->name, nr->index, i);
            continue;
        }
        struct kernel *k = &nr->k[nr->n++];
        memset(k, 0, sizeof *k);
        snprintf(k->id, sizeof k->id, "%s", id);
        snprintf(k->owner, sizeof k->owner, "%s", owner);
        snprintf(k->dir, sizeof k->dir, "%s", dir);
        snprintf(k->ip, sizeof k->ip, "%s", ip);
        k->pid = (pid_t)json_integer_value(json_object_get(v, "pid"));
        k->proc_start = (uint64_t)json_integer_value(json_object_get(v, "proc_start"));
        k->shell_port = (int)json_integer_value(json_object_get(v, "shell_port"));
        k->idle_ms = (uint64_t)json_integer_value(json_object_get(v, "idle_ms"));
        k->started_ms = (uint64_t)json_integer_value(json_object_get(v, "started_ms"));
        k->restarts = (unsigned)json_integer_value(json_object_get(v, "restarts"));
        k->adopted = 1;
    }
    json_decref(doc);
    return 0;
}

/* A fresh start of the holder: kernels an earlier holder left (the agent
 * was down when it ended) are ended, for nothing refers to them now. */
void kernel_attach(struct nb_state *s, const struct ferry_workload *w, struct ferry_run *run)
{
    struct nb_run *nr = kernel_run_new(s, w, run);
    if (!nr)
        return;
    pthread_mutex_lock(&nr->lock);
    if (kstate_load(s->host, nr) == 0) {
        for (size_t i = 0; i < nr->n; i++) {
            s->host->log(s->host->ctx, FERRY_LOG_INFO,
                         "notebook %s: kernel %s of an earlier run ended", nr->name, nr->k[i].id);
            kernel_end(&nr->k[i]);
        }
        nr->n = 0;
        unlink(nr->index);
    }
    pthread_mutex_unlock(&nr->lock);
}

int kernel_adopt(struct nb_state *s, const struct ferry_workload *w, struct ferry_run *run)
{
    struct nb_run *nr = kernel_run_new(s, w, run);
    if (!nr)
        return -ENOMEM;
    pthread_mutex_lock(&nr->lock);
    if (kstate_load(s->host, nr) == 0) {
        for (size_t i = 0; i < nr->n; i++) {
            struct kernel *k = &nr->k[i];
            char conn[128];
            snprintf(conn, sizeof conn, "%s/kernel.json", k->dir);
            if (access(conn, R_OK) != 0) {
                /* Its connection file is gone: no client could reach it. */
                s->host->log(s->host->ctx, FERRY_LOG_WARN,
                             "notebook %s: kernel %s has no connection file any more; ended",
                             nr->name, k->id);
                kernel_end(k);
                nr->k[i--] = nr->k[--nr->n];
            } else if (kproc_alive(k)) {
                s->host->log(s->host->ctx, FERRY_LOG_INFO,
                             "notebook %s: kernel %s adopted (pid %d)", nr->name, k->id,
                             (int)k->pid);
            } else {
                /* It died while no agent watched: back with the same
                 * connection info, as the watcher would have done. */
                k->pid = 0;
                k->adopted = 0;
                k->restarts++;
                int rc = kernel_exec(nr, k);
                s->host->log(s->host->ctx, rc < 0 ? FERRY_LOG_ERROR : FERRY_LOG_WARN,
                             "notebook %s: kernel %s ended while the agent was away; %s",
                             nr->name, k->id,
                             rc < 0 ? "cannot restart it" : "restarted with the same connection info");
            }
        }
        kstate_save(s->host, nr);
    }
    pthread_mutex_unlock(&nr->lock);
    return 0;
}
