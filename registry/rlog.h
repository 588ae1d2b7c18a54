/* rlog — the registry's log lines: "ferry-registry: ..." on stderr, one
 * line per call, for every part of the engine. */
#ifndef FERRY_REGISTRY_RLOG_H
#define FERRY_REGISTRY_RLOG_H

#include "error.h"

void registry_log(const char *fmt, ...) FY_PRINTF(1, 2);

#endif
