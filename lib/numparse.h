/* Strict numbers from flags and the environment: the whole text must be the
 * number (no sign, no spaces, no trailing characters, no overflow) and fall
 * in [min, max]. atoi's "5abc" -> 5 and "abc" -> 0 are what this replaces:
 * a bad value is an error with one line naming the flag or variable, never a
 * silent default. Every failure returns FERRY_E_INVALID with err_detail()
 * "WHAT 'TEXT': REASON" (WHAT is the flag or variable name given). */
#ifndef FERRY_LIB_NUMPARSE_H
#define FERRY_LIB_NUMPARSE_H

#include <stdint.h>

/* A decimal unsigned integer. */
int num_parse_u64(const char *what, const char *text, uint64_t min, uint64_t max,
                  uint64_t *out);

/* A duration: digits with a unit, one of ms, s, m, h, d ("500ms", "30s",
 * "5m", "2h", "7d"), or bare digits, read in unit_ms (1000 for a flag that
 * has always taken seconds). Result in milliseconds, in [min_ms, max_ms]. */
int num_parse_duration_ms(const char *what, const char *text, uint64_t unit_ms,
                          uint64_t min_ms, uint64_t max_ms, uint64_t *out_ms);

/* A byte size: digits, optionally followed by K, M, G or T (powers of 1024;
 * "KiB", "MiB", ... and a trailing "B" are accepted too). */
int num_parse_size(const char *what, const char *text, uint64_t min, uint64_t max,
                   uint64_t *out);

/* An environment variable holding a decimal integer: unset or empty gives
 * dflt (returns 0); set to anything not in [min, max] is an error naming the
 * variable. */
int num_env_u64(const char *var, uint64_t dflt, uint64_t min, uint64_t max, uint64_t *out);

#endif
