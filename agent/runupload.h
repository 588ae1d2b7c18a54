/* Notebook runs to the registry (docs/notebooks.md, "Runs in the
 * registry"). The notebook plugin writes each run's record
 * (.ferry/runs/STAMP.json) and executed notebook (STAMP.ipynb) in the
 * workload's folder; a thread of its own here finds them there and reports
 * each run to the registry, signed by the host key: once when it starts
 * (running) and once when it ended, with the notebook. STAMP.sent records
 * which version of the record the registry has ("refused ..." after a
 * refusal, tried again a minute later), so an agent restart sends nothing
 * twice. It reads only
 * files and touches no loop state. */
#ifndef FERRY_AGENT_RUNUPLOAD_H
#define FERRY_AGENT_RUNUPLOAD_H

#include "key.h"

#include <stdint.h>

struct runupload;

/* Scan workloads_dir every interval_ms (default 1000). */
int runupload_start(const char *url, const char *host, const struct key_secret *host_key,
                    const char *workloads_dir, uint32_t interval_ms, struct runupload **out);
/* One pass now, on the calling thread (tests); 0 or the first error. */
int runupload_scan(struct runupload *u);
/* Stop the thread and free u (NULL is fine). */
void runupload_stop(struct runupload *u);

#endif
