/* Cron and @every schedules: parsing and the next fire time. See schedule.h. */
#include "schedule.h"
#include "error.h"
#include "numparse.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define MINUTE_MS 60000ull
#define DAY_S 86400
/* The search for the next fire walks at most this far; ten years cover
 * every leap-day pattern (2100 is not a leap year, but it is 8 years from
 * the previous one). */
#define HORIZON_DAYS (366 * 10)

struct field_desc {
    const char *name;
    unsigned lo, hi;
};

static const struct field_desc fields[5] = {
    {"minute", 0, 59}, {"hour", 0, 23}, {"day-of-month", 1, 31},
    {"month", 1, 12},  {"day-of-week", 0, 7},
};

/* A decimal number at *p, at most 3 digits; advances *p. */
static int number(const char **p, unsigned *out)
{
    unsigned v = 0, n = 0;
    while (**p >= '0' && **p <= '9' && n < 4) {
        v = v * 10 + (unsigned)(**p - '0');
        (*p)++;
        n++;
    }
    *out = v;
    return n > 0 && n < 4 ? 0 : -1;
}

/* One field: a comma list of "*", "N", "A-B", each with an optional "/S". */
static int parse_field(const char *text, const struct field_desc *fd, uint64_t *bits,
                       int *any, char *why, size_t cap)
{
    *bits = 0;
    *any = text[0] == '*'; /* as classic cron: a step over "*" counts as unrestricted */
    const char *p = text;
    for (;;) {
        unsigned lo, hi, step = 1;
        int star = 0;
        if (*p == '*') {
            star = 1;
            lo = fd->lo;
            hi = fd->hi;
            p++;
        } else if (number(&p, &lo) == 0) {
            hi = lo;
            if (*p == '-') {
                p++;
                if (number(&p, &hi) < 0)
                    goto syntax;
            }
        } else {
            goto syntax;
        }
        if (*p == '/') {
            p++;
            if (number(&p, &step) < 0)
                goto syntax;
            if (step == 0) {
                snprintf(why, cap, "%s field '%s': a step of 0", fd->name, text);
                return FERRY_E_INVALID;
            }
            if (!star && hi == lo)
                hi = fd->hi; /* "5/15": from 5 to the end, every 15 */
        }
        if (lo < fd->lo || lo > fd->hi || hi < fd->lo || hi > fd->hi) {
            snprintf(why, cap, "%s field '%s': %u is out of range %u-%u", fd->name, text,
                     lo < fd->lo || lo > fd->hi ? lo : hi, fd->lo, fd->hi);
            return FERRY_E_INVALID;
        }
        if (hi < lo) {
            snprintf(why, cap, "%s field '%s': range %u-%u goes backwards", fd->name, text, lo,
                     hi);
            return FERRY_E_INVALID;
        }
        for (unsigned v = lo; v <= hi; v += step)
            *bits |= 1ull << v;
        if (*p == '\0')
            return 0;
        if (*p != ',')
            goto syntax;
        p++;
    }
syntax:
    snprintf(why, cap,
             "%s field '%s': expected *, a number, a range A-B, a step */N or a list of them",
             fd->name, text);
    return FERRY_E_INVALID;
}

static int parse_every(const char *arg, struct schedule *out, char *why, size_t cap)
{
    uint64_t ms = 0;
    while (*arg == ' ')
        arg++;
    if (!*arg || num_parse_duration_ms("@every", arg, 1000, 0, UINT64_MAX, &ms) < 0) {
        snprintf(why, cap, "@every '%s': expected a duration like 30s, 5m, 2h or 1d", arg);
        return FERRY_E_INVALID;
    }
    if (ms < SCHEDULE_EVERY_MIN_MS || ms > SCHEDULE_EVERY_MAX_MS) {
        snprintf(why, cap, "@every '%s': must be from 1s to 366d", arg);
        return FERRY_E_INVALID;
    }
    out->every_ms = ms;
    return 0;
}

int schedule_parse(const char *text, struct schedule *out, char *why, size_t cap)
{
    char buf[SCHEDULE_TEXT_MAX + 1];
    memset(out, 0, sizeof *out);
    if (cap)
        why[0] = '\0';
    if (!text || !*text) {
        snprintf(why, cap, "empty schedule");
        return FERRY_E_INVALID;
    }
    if (strlen(text) > SCHEDULE_TEXT_MAX) {
        snprintf(why, cap, "schedule longer than %d characters", SCHEDULE_TEXT_MAX);
        return FERRY_E_INVALID;
    }
    if (strncmp(text, "@every", 6) == 0 && (text[6] == ' ' || text[6] == '\0'))
        return parse_every(text + 6, out, why, cap);
    if (text[0] == '@') {
        snprintf(why, cap, "'%s': the only @ form is @every DURATION", text);
        return FERRY_E_INVALID;
    }
    snprintf(buf, sizeof buf, "%s", text);
    char *parts[6];
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, " \t", &save); tok;
         tok = strtok_r(NULL, " \t", &save)) {
        if (n == 5) {
            n++;
            break;
        }
        parts[n++] = tok;
    }
    if (n != 5) {
        snprintf(why, cap,
                 "'%s': expected 5 fields (minute hour day-of-month month day-of-week) or "
                 "@every DURATION",
                 text);
        return FERRY_E_INVALID;
    }
    uint64_t bits[5];
    int any[5];
    for (int i = 0; i < 5; i++) {
        int rc = parse_field(parts[i], &fields[i], &bits[i], &any[i], why, cap);
        if (rc < 0)
            return rc;
    }
    out->minute = bits[0];
    out->hour = (uint32_t)bits[1];
    out->dom = (uint32_t)bits[2];
    out->month = (uint32_t)bits[3];
    out->dow = (uint32_t)(bits[4] & 0x7f) | (uint32_t)((bits[4] >> 7) & 1); /* 7 is Sunday */
    out->dom_any = any[2];
    out->dow_any = any[4];
    /* Refuse what never fires: from a leap year's start, ten years see every
     * date that exists. */
    uint64_t probe;
    if (schedule_next(out, 946684800000ull /* 2000-01-01 */, &probe) < 0) {
        snprintf(why, cap, "'%s': never fires (no such date)", text);
        return FERRY_E_INVALID;
    }
    return 0;
}

static int day_matches(const struct schedule *s, const struct tm *t)
{
    int dom = (s->dom >> t->tm_mday) & 1, dow = (s->dow >> t->tm_wday) & 1;
    if (s->dom_any || s->dow_any)
        return dom && dow; /* the "*" one matches every day */
    return dom || dow;
}

int schedule_next(const struct schedule *s, uint64_t after_ms, uint64_t *next_ms)
{
    if (s->every_ms) {
        if (after_ms > UINT64_MAX - s->every_ms)
            return err_set(FERRY_E_NOTFOUND, "schedule: no time after %llu",
                           (unsigned long long)after_ms);
        *next_ms = after_ms + s->every_ms;
        return 0;
    }
    /* The next whole minute strictly after. */
    time_t t = (time_t)(after_ms / MINUTE_MS + 1) * 60;
    struct tm tm;
    for (int days = 0; days <= HORIZON_DAYS;) {
        if (!gmtime_r(&t, &tm) || tm.tm_year > 9999 - 1900)
            break;
        if (!((s->month >> (tm.tm_mon + 1)) & 1) || !day_matches(s, &tm)) {
            /* Next day, 00:00. */
            t = t - (tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec) + DAY_S;
            days++;
            continue;
        }
        if (!((s->hour >> tm.tm_hour) & 1)) {
            t = t - (tm.tm_min * 60 + tm.tm_sec) + 3600; /* next hour, :00 */
            continue;
        }
        if (!((s->minute >> tm.tm_min) & 1)) {
            t += 60 - tm.tm_sec;
            continue;
        }
        *next_ms = (uint64_t)t * 1000;
        return 0;
    }
    return err_set(FERRY_E_NOTFOUND, "schedule: nothing fires within ten years");
}
