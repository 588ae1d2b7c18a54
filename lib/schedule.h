/* When a scheduled job runs next: a 5-field cron expression (UTC) or
 * "@every DURATION". Pure: no clock, no I/O; the caller passes the time.
 *
 * Cron fields: minute (0-59) hour (0-23) day-of-month (1-31) month (1-12)
 * day-of-week (0-7, 0 and 7 are Sunday). Each is "*", a number, a range
 * "A-B", a step "* / N" or "A-B/N" (written without the spaces), or a
 * comma-separated list of those. As in the classic cron, when both
 * day-of-month and day-of-week are restricted, a day matching either one
 * fires; when one of them starts with "*", a day must match both (so a plain
 * "*" leaves the other one to decide).
 * Names (JAN, MON) and the @daily family are not accepted. */
#ifndef FERRY_LIB_SCHEDULE_H
#define FERRY_LIB_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#define SCHEDULE_TEXT_MAX 128
/* @every bounds: at least a second, at most a year. */
#define SCHEDULE_EVERY_MIN_MS 1000ull
#define SCHEDULE_EVERY_MAX_MS (366ull * 86400000ull)

struct schedule {
    uint64_t every_ms; /* non-zero: "@every"; the cron fields are unused */
    uint64_t minute;   /* bit m set: fires at minute m */
    uint32_t hour;     /* bits 0-23 */
    uint32_t dom;      /* bits 1-31 */
    uint32_t month;    /* bits 1-12 */
    uint32_t dow;      /* bits 0-6, Sunday 0 */
    int dom_any, dow_any; /* the field was "*" (for the either-day rule) */
};

/* Parse text. Returns 0, or FERRY_E_INVALID with a one-line reason in why
 * (e.g. "minute field '75': 75 is out of range 0-59"). An expression that
 * can never fire ("0 0 31 2 *") is refused too. */
int schedule_parse(const char *text, struct schedule *out, char *why, size_t cap);

/* The first fire time strictly after after_ms (Unix ms, UTC). For cron the
 * result is on a whole minute; for @every it is after_ms + the interval.
 * Returns 0, or FERRY_E_NOTFOUND when nothing fires within the next ten
 * years (cannot happen for a schedule schedule_parse accepted, except past
 * the year 9999). */
int schedule_next(const struct schedule *s, uint64_t after_ms, uint64_t *next_ms);

#endif
