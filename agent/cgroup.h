/* One cgroup per run, for ferry.yaml's `resources:` limits.
 *
 * The run's cgroup is <base>/ferry/<agent>/<name>@<version>, where <base> is
 * the agent's own cgroup in each hierarchy (so a limit set on the agent's
 * service also bounds its workloads). With cgroup v2 (a unified hierarchy at
 * /sys/fs/cgroup with cgroup.controllers) that is one folder; with v1 it is
 * one folder in each of the memory, pids and cpu hierarchies the run's
 * limits need. The name joins name and version with '@', which neither may
 * contain, so two runs never share a folder.
 *
 * The folder is created with its limits before the process starts, the
 * process is placed in it before it execs (by the ferry-spawn helper, see
 * confine.h), and it is removed when the main process ends. Everything the
 * exit side needs (the limit, the out-of-memory count) is read back from the
 * folder itself, so a run adopted after an agent restart is cleaned up the
 * same way.
 *
 * FERRY_CGROUP_ROOT, when set, replaces /sys/fs/cgroup (and the agent's own
 * cgroup is then taken as the root): for hosts that mount cgroups elsewhere,
 * and for tests. */
#ifndef FERRY_AGENT_CGROUP_H
#define FERRY_AGENT_CGROUP_H

#include <stddef.h>
#include <stdint.h>

#define CG_PATH_MAX 1024

enum cg_version { CG_NONE = 0, CG_V1 = 1, CG_V2 = 2 };
enum cg_ctrl { CG_MEMORY, CG_PIDS, CG_CPU, CG_NCTRL };

struct cg_limits {
    uint64_t memory_bytes; /* 0: none */
    uint32_t pids;         /* 0: none */
    uint32_t cpu_millis;   /* thousandths of a core; 0: none */
};

/* Where one run's cgroup lives. v2: dir[0] only. v1: one folder per
 * controller; "" for a hierarchy that is not mounted. */
struct cg_run {
    enum cg_version version;
    char dir[CG_NCTRL][CG_PATH_MAX];
};

/* ---- pure --------------------------------------------------------------- */

const char *cg_ctrl_name(enum cg_ctrl c);

/* The path of the process's cgroup for `ctrl` in /proc/self/cgroup's text:
 * v1 lines "N:memory:/a/b" (controller lists like "cpu,cpuacct" match each
 * name), v2 the line "0::/a/b" (ctrl ignored). "/" when it is the root.
 * Returns 0, or -ENOENT when no line names it. */
int cg_own_path(const char *proc_cgroup, enum cg_version v, const char *ctrl, char *out,
                size_t cap);

/* "ferry/<agent>/<name>@<version>". Characters of the agent's name other
 * than A-Z a-z 0-9 . _ - become '_' (and a name of only dots is "_"), so it
 * stays one path component. -ENAMETOOLONG if it does not fit. */
int cg_leaf(const char *agent, const char *name, const char *version, char *out, size_t cap);

/* CFS bandwidth for `millis` thousandths of a core: quota per 100 ms period. */
void cg_cpu_quota(uint32_t millis, uint64_t *quota_us, uint64_t *period_us);

/* A size as ferry.yaml writes it: "64Mi", "1Gi", "12Ki", else bytes. */
void cg_format_size(uint64_t bytes, char *out, size_t cap);

/* The number after `key` in "key value" lines (memory.events,
 * memory.oom_control, memory.stat). -1 when the key is not there. */
int64_t cg_read_key(const char *text, const char *key);

/* The exit reason, knowing the cgroup's out-of-memory kills and limit: a
 * main process killed by SIGKILL with kills counted is "killed: out of
 * memory (limit 64Mi)"; other kills are added to the usual reason. Returns 1
 * when out of memory was involved (out rewritten), else 0 (out is the plain
 * "killed by signal N" / "exited with status N", or "exited" for a status
 * below 0, which is unknown). */
int cg_exit_reason(int64_t status, int sig, int64_t oom_kills, uint64_t limit, char *out,
                   size_t cap);

/* ---- file system -------------------------------------------------------- */

/* Find this host's cgroup layout and the folders a run of agent/name/version
 * uses. With `need` (limits to be set) each needed controller must be there,
 * else -EOPNOTSUPP with a reason; without, whatever is mounted. */
int cg_locate(const char *agent, const char *name, const char *version,
              const struct cg_limits *need, struct cg_run *out);

/* Create the folders of cg and write the limits. A folder left from an
 * earlier start is emptied and removed first; any failure removes what was
 * made and returns an error whose detail names the file and the reason. */
int cg_create(const struct cg_run *cg, const struct cg_limits *lim);

/* The cgroup.procs files a process writes its pid to, to join the run's
 * cgroup: up to CG_NCTRL paths into files[]; returns how many. */
int cg_procs_files(const struct cg_run *cg, char files[CG_NCTRL][CG_PATH_MAX]);

/* Kill whatever is still in the run's folders and remove them (and the
 * agent's folder when it is left empty). Missing folders are success. */
int cg_remove(const struct cg_run *cg);

/* The main process of a run ended (status and sig as libuv gives them):
 * when it had a cgroup, put the out-of-memory reason into detail (see
 * cg_exit_reason) and remove the cgroup. Returns 1 when detail changed. */
int cg_run_exited(const char *agent, const char *name, const char *version, int64_t status,
                  int sig, char *detail, size_t cap);

#endif
