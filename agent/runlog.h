/* A run's output: stdout and stderr go to files in the run's tree, under
 * .ferry/, capped in size by the agent's maintenance timer. */
#ifndef FERRY_AGENT_RUNLOG_H
#define FERRY_AGENT_RUNLOG_H

#include <stddef.h>
#include <stdint.h>

/* Open DIR/.ferry/NAME for appending (created 0644); a descriptor or -1. */
int runlog_open(const char *dir, const char *name);
/* When DIR/.ferry/NAME is larger than cap: copy it to NAME.1, then empty it. */
void runlog_cap(const char *dir, const char *name, uint64_t cap);
/* The last non-empty line of DIR/.ferry/NAME (read from its last 511
 * bytes) into out; -ENOENT when there is none. */
int runlog_last_line(const char *dir, const char *name, char *out, size_t outsz);

#endif
