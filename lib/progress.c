#include "progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void human(double bytes, char *out, size_t cap)
{
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024.0 && u < 4) {
        bytes /= 1024.0;
        u++;
    }
    snprintf(out, cap, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
}

static void draw(struct progress *p, double now)
{
    char done[32], total[32], rate[32];
    double secs = now - p->started;
    human((double)p->done, done, sizeof done);
    human((double)p->total, total, sizeof total);
    human(secs > 0 ? (double)p->done / secs : 0, rate, sizeof rate);
    fprintf(stderr, "\r%s: %s / %s  %s/s   ", p->label, done, total, rate);
    fflush(stderr);
    p->last_print = now;
}

void progress_init(struct progress *p, const char *label, uint64_t total, int enabled)
{
    p->enabled = enabled && isatty(STDERR_FILENO);
    p->label = label;
    p->total = total;
    p->done = 0;
    p->started = now_seconds();
    p->last_print = 0;
}

void progress_add(struct progress *p, uint64_t n)
{
    p->done += n;
    if (!p->enabled)
        return;
    double now = now_seconds();
    if (now - p->last_print >= 0.1)
        draw(p, now);
}

void progress_finish(struct progress *p)
{
    if (!p->enabled)
        return;
    draw(p, now_seconds());
    fputc('\n', stderr);
}
