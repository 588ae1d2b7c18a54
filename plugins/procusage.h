/* procusage — what a run's processes use, read from /proc: every process
 * in the main process's session or process group (the host starts the
 * main process as a session leader, so its children stay in the session
 * unless they leave it on purpose). Shared by the plugins that report
 * process_resident_memory_bytes and process_cpu_seconds_total. */
#ifndef FERRY_PLUGINS_PROCUSAGE_H
#define FERRY_PLUGINS_PROCUSAGE_H

#include <stdint.h>

struct usage {
    uint64_t rss_pages;
    uint64_t cpu_ticks;
    unsigned procs;
};

struct ferry_metric_sink;

void run_usage(int leader, struct usage *u);
/* process_resident_memory_bytes, process_cpu_seconds_total and
 * process_count of the run led by leader, through sink; 0 when nothing
 * runs. The sink's first refusal is returned. */
int usage_report(int leader, struct ferry_metric_sink *sink);

#endif
