/* Limits and identity for a workload's process: see confine.h. */
#include "confine.h"
#include "error.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HELPER_NAME "ferry-spawn"
#define ID_TEXT_MAX (24 * 66)

int confine_user_lookup(const char *user, struct confine_user *out)
{
    memset(out, 0, sizeof *out);
    if (geteuid() != 0)
        return err_set(-EPERM,
                       "run.user '%s': the agent runs as uid %u and only an agent running as "
                       "root can start a workload as another user",
                       user, (unsigned)geteuid());
    struct passwd pw, *found = NULL;
    char buf[4096];
    int rc = getpwnam_r(user, &pw, buf, sizeof buf, &found);
    if (rc != 0)
        return err_set(-rc, "run.user '%s': looking the user up: %s", user, strerror(rc));
    if (!found)
        return err_set(-ENOENT, "run.user '%s': no such user on this host", user);
    out->uid = pw.pw_uid;
    out->gid = pw.pw_gid;
    int n = (int)(sizeof out->groups / sizeof *out->groups);
    if (getgrouplist(user, pw.pw_gid, out->groups, &n) < 0)
        return err_set(-E2BIG, "run.user '%s': in more than %zu groups", user,
                       sizeof out->groups / sizeof *out->groups);
    out->n_groups = n;
    return 0;
}

static bool in_groups(const struct confine_user *u, gid_t g)
{
    if (g == u->gid)
        return true;
    for (int i = 0; i < u->n_groups; i++)
        if (u->groups[i] == g)
            return true;
    return false;
}

/* The classic permission check, done for another user: the first class
 * that matches (owner, group, other) decides. Root needs no check. */
int confine_user_can_reach(const struct confine_user *u, const char *dir)
{
    if (u->uid == 0)
        return 0;
    char path[PATH_MAX];
    if (!realpath(dir, path))
        return err_set(-errno, "%s: %s", dir, strerror(errno));
    size_t len = strlen(path);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char saved = path[i];
        path[i] = '\0';
        struct stat st;
        if (stat(path, &st) < 0)
            return err_set(-errno, "%s: %s", path, strerror(errno));
        mode_t bit = st.st_uid == u->uid ? S_IXUSR : in_groups(u, st.st_gid) ? S_IXGRP : S_IXOTH;
        if (!(st.st_mode & bit))
            return err_set(-EACCES, "%s is not searchable by uid %u", path, (unsigned)u->uid);
        path[i] = saved;
    }
    return 0;
}

void confine_limits(const Ferry__Spec *spec, struct cg_limits *out)
{
    memset(out, 0, sizeof *out);
    if (spec && spec->resources) {
        out->memory_bytes = spec->resources->memory_bytes;
        out->pids = spec->resources->pids;
        out->cpu_millis = spec->resources->cpu_millis;
    }
}

int confine_helper_path(char *out, size_t cap)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    const char *candidates[2] = {NULL, FERRY_SPAWN_HELPER};
    char beside[PATH_MAX + 32];
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(beside, sizeof beside, "%s/" HELPER_NAME, exe);
            candidates[0] = beside;
        }
    }
    for (int i = 0; i < 2; i++) {
        struct stat st;
        if (!candidates[i] || stat(candidates[i], &st) < 0)
            continue;
        /* Run as root: it must be as trusted as the agent itself. */
        if (!S_ISREG(st.st_mode) || (st.st_uid != 0 && st.st_uid != geteuid()) ||
            (st.st_mode & (S_IWGRP | S_IWOTH)))
            return err_set(-EPERM, "%s: must be a regular file that only root can change",
                           candidates[i]);
        if ((size_t)snprintf(out, cap, "%s", candidates[i]) >= cap)
            return -ENAMETOOLONG;
        return 0;
    }
    return err_set(-ENOENT, "the spawn helper " HELPER_NAME " is not installed (looked in %s "
                            "and %s)",
                   candidates[0] ? candidates[0] : "the agent's folder", FERRY_SPAWN_HELPER);
}

/* One malloc holds the vector and its strings, so confine_done frees once. */
struct plan_mem {
    char helper[PATH_MAX];
    char files[CG_NCTRL][CG_PATH_MAX];
    char ids[ID_TEXT_MAX];
    struct cg_run cg;
    char *argv[];
};

int confine_prepare(struct confine_plan *p, const Ferry__Spec *spec, const char *agent,
                    const char *name, const char *version, const char *exe,
                    const char *const *argv, const char *cwd)
{
    memset(p, 0, sizeof *p);
    struct cg_limits lim;
    confine_limits(spec, &lim);
    const char *user = spec && spec->run && spec->run->user && spec->run->user[0]
                           ? spec->run->user
                           : NULL;
    bool limited = lim.memory_bytes || lim.pids || lim.cpu_millis;
    if (!limited && !user)
        return 0;

    size_t argc = 0;
    while (argv[argc])
        argc++;
    /* helper, 2 per cgroup file, --user IDS, --, exe, argv[1..], NULL */
    size_t slots = 1 + 2 * CG_NCTRL + 2 + 1 + argc + 1;
    struct plan_mem *m = calloc(1, sizeof *m + slots * sizeof(char *));
    if (!m)
        return err_set(-ENOMEM, "out of memory preparing the spawn");
    int rc = confine_helper_path(m->helper, sizeof m->helper);
    struct confine_user u;
    if (rc == 0 && user && (rc = confine_user_lookup(user, &u)) == 0 &&
        (rc = confine_user_can_reach(&u, cwd)) < 0) {
        char why[600];
        snprintf(why, sizeof why, "%s", err_detail());
        rc = err_set(rc, "run.user '%s' cannot reach the workload's files: %s (make it "
                         "searchable, e.g. chmod o+x)",
                     user, why);
    }
    int nfiles = 0;
    if (rc == 0 && limited) {
        if ((rc = cg_locate(agent, name, version, &lim, &m->cg)) == 0 &&
            (rc = cg_create(&m->cg, &lim)) == 0) {
            p->cg = &m->cg;
            nfiles = cg_procs_files(&m->cg, m->files);
        }
    }
    if (rc < 0) {
        free(m);
        return rc;
    }
    size_t k = 0;
    m->argv[k++] = m->helper;
    for (int i = 0; i < nfiles; i++) {
        m->argv[k++] = "--cgroup";
        m->argv[k++] = m->files[i];
    }
    if (user) {
        int w = snprintf(m->ids, sizeof m->ids, "%u:%u:", (unsigned)u.uid, (unsigned)u.gid);
        for (int i = 0; i < u.n_groups && w > 0 && (size_t)w < sizeof m->ids; i++)
            w += snprintf(m->ids + w, sizeof m->ids - (size_t)w, "%s%u", i ? "," : "",
                          (unsigned)u.groups[i]);
        m->argv[k++] = "--user";
        m->argv[k++] = m->ids;
    }
    m->argv[k++] = "--";
    m->argv[k++] = (char *)exe;
    for (size_t i = 1; i < argc; i++)
        m->argv[k++] = (char *)argv[i];
    m->argv[k] = NULL;
    p->file = m->helper;
    p->argv = m->argv;
    return 0;
}

void confine_done(struct confine_plan *p, int spawn_rc)
{
    if (!p->file)
        return;
    if (spawn_rc < 0 && p->cg)
        cg_remove(p->cg);
    struct plan_mem *m = (struct plan_mem *)((char *)p->argv - offsetof(struct plan_mem, argv));
    free(m);
    memset(p, 0, sizeof *p);
}
