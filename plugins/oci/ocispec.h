/* The OCI runtime spec (config.json of a runc bundle) for one run.
 *
 * The process comes from the image config (Entrypoint + Cmd, Env,
 * WorkingDir, User), with the `oci:` section's overrides over it (command
 * replaces Entrypoint + Cmd; env is merged over Env; workdir; user), then
 * the workload's own environment and what the host decides (PORT,
 * FERRY_WORKLOAD, FERRY_VERSION) last. The container gets its own pid,
 * mount, ipc and uts namespaces, and its own network namespace only with
 * `network: none` (else it shares the host's, where PORT was allocated);
 * no new privileges; a capability set narrower than Docker's default; the
 * usual mounts (proc, a tmpfs /dev, devpts, shm, mqueue, sysfs read-only);
 * `resources:` as cgroup limits; the root read-only when asked. */
#ifndef FERRY_PLUGINS_OCI_OCISPEC_H
#define FERRY_PLUGINS_OCI_OCISPEC_H

#include <stddef.h>
#include <stdint.h>

struct ocispec_in {
    const char *image_config; /* the image config JSON text, or NULL */
    size_t image_config_len;
    const char *oci_json;     /* the oci section: command, env, workdir, user, network,
                               * readonly_rootfs, resources {memory_bytes, pids, cpu_millis} */
    const char *const *env;   /* "K=V", NULL-terminated: the workload's, host's last */
    const char *rootfs;       /* absolute path of the root file system */
    const char *hostname;
    const char *annotation;   /* "name@version", or NULL */
};

/* The process as the image and the overrides say (for health commands run
 * through `runc exec` too). env and args are NULL-terminated, malloc'd. */
struct ocispec_process {
    char **args;
    char **env;
    char *cwd;
    uint32_t uid, gid;
    char *user; /* as written, for details */
};
void ocispec_process_free(struct ocispec_process *p);

/* Resolve the process. A user name is looked up in the rootfs's
 * /etc/passwd (and a group name in /etc/group), read inside the rootfs
 * only. Errors: FERRY_E_INVALID / FERRY_E_SPEC with one line (no command,
 * a relative workdir, an unknown user, a bad config). */
int ocispec_process(const struct ocispec_in *in, struct ocispec_process *out);

/* The whole config.json text (malloc'd) for in. */
int ocispec_build(const struct ocispec_in *in, char **json_out);

/* The capabilities every container gets (NULL-terminated). */
extern const char *const ocispec_caps[];

#endif
