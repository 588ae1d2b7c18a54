#include "rlog.h"

#include <stdarg.h>
#include <stdio.h>

void registry_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ferry-registry: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
