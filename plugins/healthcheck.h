/* healthcheck — the parts of a health check that every process-running
 * plugin (exec, oci) does the same way: a dead process is never healthy,
 * whatever answers on its port; an HTTP check is a GET of the workload's
 * path on the run's port, bounded by its interval (at most 2 s). */
#ifndef FERRY_PLUGINS_HEALTHCHECK_H
#define FERRY_PLUGINS_HEALTHCHECK_H

#include "ferry/plugin.h"

#include <stddef.h>

/* Short words for the common probe failures, strerror for the rest. */
const char *health_why(int rc, char *buf, size_t sz);

/* Fills out for a run whose process has exited, or for a workload with an
 * HTTP check, and returns 1; returns 0 when neither applies (the caller
 * goes on with its own checks). out->healthy and out->reason are reset
 * first. */
int health_alive_http(const struct ferry_host *h, const struct ferry_workload *w,
                      struct ferry_run *run, struct ferry_health *out);

/* Fills out from a health command's outcome: rc from the host's
 * run_command (-ETIMEDOUT after timeout_ms), status its exit status. */
void health_command_result(int rc, int status, int timeout_ms, struct ferry_health *out);

#endif
