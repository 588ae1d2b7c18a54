/* What the agent asks the system about processes and ports. */
#ifndef FERRY_AGENT_PROCINFO_H
#define FERRY_AGENT_PROCINFO_H

#include <stdint.h>

/* starttime (field 22) of /proc/PID/stat, 0 when gone or a zombie: with the
 * pid it names one process for the life of the machine. */
uint64_t proc_start_time(int pid);
/* Resident set size in bytes, 0 when unknown. */
uint64_t proc_rss(int pid);
/* A TCP port free on 127.0.0.1 right now, or a negative errno. */
int free_port(void);

#endif
