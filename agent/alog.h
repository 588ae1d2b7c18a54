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

#endif
