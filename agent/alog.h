/* The agent's log: one line per event on stderr, "ferry-agent: LEVEL: ...". */
#ifndef FERRY_AGENT_ALOG_H
#define FERRY_AGENT_ALOG_H

#include <ferry/plugin.h>
#include <stdarg.h>

void alog(int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void alogv(int level, const char *fmt, va_list ap);
/* Messages above this level are dropped (default FERRY_LOG_INFO). */
void alog_set_level(int level);
/* Send lines to sink instead of stderr (NULL restores stderr), so tests can
 * assert on what was logged. The sink runs under the log lock, one call per
 * line, line without the trailing newline; it must not call alog. */
typedef void (*alog_sink_fn)(int level, const char *line, void *arg);
void alog_set_sink(alog_sink_fn sink, void *arg);

#endif
