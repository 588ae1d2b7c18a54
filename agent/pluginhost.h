/* Loading plugins: every *.so in a directory is checked to be the agent's
 * own (the file and every folder above it up to the plugins folder owned by
 * root or the agent's user and writable by no one else; a symlink's target
 * passes the same test) before it is dlopen'd, since dlopen runs its
 * constructors. Then it is validated against
 * the ABI in <ferry/plugin.h> before anything else of it is trusted, copied
 * into host-owned memory and initialised. A refused plugin costs one error
 * line in the log; the agent keeps running with the others. */
#ifndef FERRY_AGENT_PLUGINHOST_H
#define FERRY_AGENT_PLUGINHOST_H

#include <ferry/plugin.h>
#include <stddef.h>

#define PLUGIN_NAME_MAX 64
#define PLUGIN_RUNTIMES_MAX 256

struct plugin_slot {
    void *dl;
    /* The host's copy of the plugin's table: only the prefix the plugin
     * declared, the rest zero. name and runtimes point into this slot. */
    struct ferry_plugin p;
    uint32_t abi; /* the plugin's ABI version (1 or 2) */
    struct ferry_host host; /* the table handed to p.init, abi set to the plugin's */
    void *state; /* from p.init */
    char name[PLUGIN_NAME_MAX];
    char runtimes[PLUGIN_RUNTIMES_MAX];
    char path[4096];
};

/* Zero-initialise before pluginhost_load_dir. Slots never move once loaded,
 * so pointers from pluginhost_find stay valid until unload_all. */
struct plugin_set {
    struct plugin_slot *v;
    size_t n;
};

/* Load every *.so in dir, in byte order of their names. host must outlive
 * the set. Returns 0 even when plugins were refused (set->n says how many
 * loaded); a negative code only if dir cannot be read or set is not empty. */
int pluginhost_load_dir(struct plugin_set *set, const char *dir, const struct ferry_host *host);

/* The plugin serving runtime, or NULL. When two plugins claim a runtime the
 * first loaded wins. */
const struct plugin_slot *pluginhost_find(const struct plugin_set *set, const char *runtime);

/* ABI-2 operations, safe to call for any slot: for a plugin that lacks the
 * op (ABI 1, or NULL) exited and adopt return 0 and do nothing, action
 * returns -ENOTSUP.
 *
 * exited: the main process ended with status (exit code, 128+signal, or
 * -1 when unknown);
 * call before any restart. May block briefly: call it off the loop.
 * adopt: after an agent restart, for a live process; run->plugin_state
 * holds what the host persisted. A negative return: restart the run.
 * action: *reply_json (malloc'd, NUL-terminated, valid JSON, or NULL when
 * the plugin set none) is the caller's to free, whatever the result. May
 * block: call it off the loop. */
int pluginhost_exited(const struct plugin_slot *s, struct ferry_run *run, int status);
int pluginhost_adopt(const struct plugin_slot *s, const struct ferry_workload *w, struct ferry_run *run);
int pluginhost_action(const struct plugin_slot *s, struct ferry_run *run, const char *verb,
                      const char *request_json, char **reply_json, size_t *reply_len);

/* fini and dlclose every plugin, last loaded first; the set is empty after. */
void pluginhost_unload_all(struct plugin_set *set);

#endif
