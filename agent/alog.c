#include "alog.h"

#include <pthread.h>
#include <stdio.h>
#include <time.h>

static int max_level = FERRY_LOG_INFO;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static alog_sink_fn sink_fn;
static void *sink_arg;

void alog_set_level(int level) { max_level = level; }

void alog_set_sink(alog_sink_fn sink, void *arg)
{
    pthread_mutex_lock(&lock);
    sink_fn = sink;
    sink_arg = arg;
    pthread_mutex_unlock(&lock);
}

void alogv(int level, const char *fmt, va_list ap)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    if (level > max_level)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%H:%M:%S", &tm);
    /* One write per line so lines from threads never interleave. */
    char line[2048];
    int n = snprintf(line, sizeof line, "%s.%03ld ferry-agent: %s: ", when, ts.tv_nsec / 1000000,
                     names[level < 0 ? 0 : level > 3 ? 3 : level]);
    if (n > 0 && n < (int)sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    pthread_mutex_lock(&lock);
    if (sink_fn) {
        sink_fn(level, line, sink_arg);
    } else {
        fprintf(stderr, "%s\n", line);
        fflush(stderr);
    }
    pthread_mutex_unlock(&lock);
}

void alog(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    alogv(level, fmt, ap);
    va_end(ap);
}
