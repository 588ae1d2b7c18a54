/* Milliseconds: wall clock (for times people read and records carry) and
 * monotonic (for deadlines and intervals). */
#ifndef FERRY_LIB_CLOCK_H
#define FERRY_LIB_CLOCK_H

#include <stdint.h>

uint64_t clock_unix_ms(void);
uint64_t clock_mono_ms(void);

#endif
