/* ABI-2 calls that may block, run on libuv's thread pool with the result
 * handed back on the loop: exited() (a `runc delete`) and action() (a
 * request to a workload, such as `logs` or a kernel's). The run's lifecycle
 * decides when to call them; this only moves the blocking part off the
 * loop.
 *
 * Ownership: slot and run must stay valid until done runs (the agent pins
 * the run, as it does for probes). verb and request_json are copied. As in
 * libuv, a call that fails to start (negative return) never calls done. */
#ifndef FERRY_AGENT_PLUGINCALL_H
#define FERRY_AGENT_PLUGINCALL_H

#include "pluginhost.h"

#include <uv.h>

/* rc is the plugin's result (0 when it lacks the op; -ENOTSUP for an
 * action it does not answer); reply_json is the action's reply (malloc'd,
 * NULL when none), now the callee's to free; detail is err_detail() of the
 * pool thread, "" when none. */
typedef void (*plugincall_done_fn)(void *arg, int rc, char *reply_json, size_t reply_len, const char *detail);

int plugincall_exited(uv_loop_t *loop, const struct plugin_slot *s, struct ferry_run *run, int status,
                      plugincall_done_fn done, void *arg);
int plugincall_action(uv_loop_t *loop, const struct plugin_slot *s, struct ferry_run *run, const char *verb,
                      const char *request_json, plugincall_done_fn done, void *arg);

#endif
