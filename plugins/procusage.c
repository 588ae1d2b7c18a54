/* Process usage from /proc (see procusage.h). */
#include "procusage.h"

#include <ferry/plugin.h>

#include <dirent.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>

/* Fields 5 (pgrp), 6 (session), 14-17 (utime, stime, and cutime, cstime:
 * children it waited for, so CPU time does not vanish when a child exits)
 * and 24 (rss) of /proc/PID/stat; the command name (field 2) may hold
 * spaces and ')'. */
static int read_stat(const char *pid, long *pgrp, long *sid, uint64_t *ticks, uint64_t *rss)
{
    char path[300], buf[1024];
    snprintf(path, sizeof path, "/proc/%.256s/stat", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    char state;
    long ppid;
    unsigned long long skip, utime, stime, rsspages;
    long long cutime, cstime, lskip;
    /* 3 state, 4 ppid, 5 pgrp, 6 session, 7-13, 14 utime, 15 stime,
     * 16 cutime, 17 cstime, 18-21, 22 starttime, 23 vsize, 24 rss */
    if (sscanf(p + 1, " %c %ld %ld %ld %llu %llu %llu %llu %llu %llu %llu %llu %llu %lld %lld %lld %lld %lld %lld %llu %llu %llu",
               &state, &ppid, pgrp, sid, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &utime, &stime, &cutime,
               &cstime, &lskip, &lskip, &lskip, &lskip, &skip, &skip, &rsspages) != 22)
        return -1;
    if (state == 'Z')
        rsspages = 0; /* a zombie holds no memory; its CPU time still counts */
    *ticks = utime + stime + (uint64_t)(cutime > 0 ? cutime : 0) + (uint64_t)(cstime > 0 ? cstime : 0);
    *rss = rsspages;
    return 0;
}

void run_usage(int leader, struct usage *u)
{
    memset(u, 0, sizeof *u);
    DIR *d = opendir("/proc");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        long pgrp, sid;
        uint64_t ticks, rss;
        if (read_stat(e->d_name, &pgrp, &sid, &ticks, &rss) < 0)
            continue; /* gone meanwhile */
        if (sid != leader && pgrp != leader)
            continue;
        u->rss_pages += rss;
        u->cpu_ticks += ticks;
        u->procs++;
    }
    closedir(d);
}


int usage_report(int leader, struct ferry_metric_sink *sink)
{
    if (leader <= 0)
        return 0;
    struct usage u;
    run_usage(leader, &u);
    if (u.procs == 0)
        return 0; /* nothing running to measure */
    long page = sysconf(_SC_PAGESIZE), hz = sysconf(_SC_CLK_TCK);
    struct ferry_sample rss = {.struct_size = sizeof rss, .type = FERRY_METRIC_GAUGE,
                               .name = "process_resident_memory_bytes",
                               .value = (double)u.rss_pages * (double)(page > 0 ? page : 4096)};
    struct ferry_sample cpu = {.struct_size = sizeof cpu, .type = FERRY_METRIC_COUNTER,
                               .name = "process_cpu_seconds_total",
                               .value = (double)u.cpu_ticks / (double)(hz > 0 ? hz : 100)};
    struct ferry_sample procs = {.struct_size = sizeof procs, .type = FERRY_METRIC_GAUGE,
                                 .name = "process_count", .value = u.procs};
    int rc = sink->add(sink, &rss);
    if (rc == 0)
        rc = sink->add(sink, &cpu);
    if (rc == 0)
        rc = sink->add(sink, &procs);
    return rc;
}
