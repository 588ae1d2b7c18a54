/* Error detail: every failing call returns a negative code (see ferry.h) and
 * may leave one line of detail, naming the thing and the reason, in a
 * thread-local buffer. Callers print err_detail() when it is set, else
 * ferry_strerror(code). */
#ifndef FERRY_LIB_ERROR_H
#define FERRY_LIB_ERROR_H

#include <ferry/ferry.h>

#if defined(__GNUC__)
#define FY_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define FY_PRINTF(a, b)
#endif

/* Record a detail line and return code, so `return err_set(...)` reads well. */
int err_set(int code, const char *fmt, ...) FY_PRINTF(2, 3);
/* The detail of the last err_set on this thread, or "" if cleared. */
const char *err_detail(void);
void err_clear(void);
/* The detail if set, else ferry_strerror(code). */
const char *err_message(int code);

#endif
