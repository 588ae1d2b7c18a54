/* Strict parsing of sizes and durations given on command lines: the whole
 * text must be a number with an optional unit, or it is refused (no "5abc"
 * read as 5, no silent overflow). */
#ifndef FERRY_LIB_UNITS_H
#define FERRY_LIB_UNITS_H

#include <stdint.h>

/* "65536", "512K", "64M", "64G", "2T" (powers of 1024). */
int units_parse_size(const char *text, uint64_t *bytes);
/* "90" or "90s", "30m", "12h", "7d": in milliseconds. */
int units_parse_duration(const char *text, uint64_t *ms);

#endif
