/* Starting a workload inside its limits and as its user.
 *
 * libuv's uv_spawn has no hook between fork and exec, and its setuid option
 * drops supplementary groups. So a run with `resources:` or `run.user:` is
 * spawned through ferry-spawn, a small helper the agent starts as root in
 * place of the workload: it writes its own pid into the run's cgroup.procs
 * files, sets groups, gid and uid, then execs the workload. The pid libuv
 * reports and reaps is the workload's (exec keeps it), and no instruction of
 * the workload runs outside its cgroup or as root. Runs without either key
 * are spawned directly, as before.
 *
 * Everything that can be refused (no cgroups, not root, no such user, a
 * folder the user cannot reach) is checked here, before the spawn, so the
 * run fails with a reason rather than an exit status from the helper. */
#ifndef FERRY_AGENT_CONFINE_H
#define FERRY_AGENT_CONFINE_H

#include "cgroup.h"
#include "manifest.pb-c.h"

#include <sys/types.h>

struct confine_plan {
    /* Non-NULL when the spawn goes through the helper: the program and the
     * argument vector to give uv_spawn instead of the workload's. */
    const char *file;
    char **argv;
    struct cg_run *cg; /* the run's cgroup, created; NULL without resources */
};

/* The identity run.user names, resolved on this host. */
struct confine_user {
    uid_t uid;
    gid_t gid;
    gid_t groups[64];
    int n_groups;
};

/* Resolve `user` (the agent must be root). Errors name run.user and say why. */
int confine_user_lookup(const char *user, struct confine_user *out);

/* Whether uid/gid/groups may search every folder from / down to dir. */
int confine_user_can_reach(const struct confine_user *u, const char *dir);

/* Limits from the spec's resources (all zero without). */
void confine_limits(const Ferry__Spec *spec, struct cg_limits *out);

/* Prepare the spawn of exe with argv (argv[0] is replaced by exe) in cwd for
 * the run agent/name/version. Without resources or run.user the plan is
 * empty (file NULL) and nothing was done. */
int confine_prepare(struct confine_plan *p, const Ferry__Spec *spec, const char *agent,
                    const char *name, const char *version, const char *exe,
                    const char *const *argv, const char *cwd);

/* After uv_spawn: a failed spawn (rc < 0) removes the cgroup. Frees the plan. */
void confine_done(struct confine_plan *p, int spawn_rc);

/* The helper's path: next to the running binary (the build tree, or an
 * install that keeps them together), else FERRY_SPAWN_HELPER. It must be a
 * regular file that only root (or the agent's user) can change. */
int confine_helper_path(char *out, size_t cap);

#endif
