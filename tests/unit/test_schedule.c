/* Cron and @every schedules: parsing, refusals with their reason, and the
 * next fire time across hour, day, month and year ends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "schedule.h"

/* "2026-12-31 23:59" UTC -> Unix ms */
static uint64_t at(const char *when)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    assert_non_null(strptime(when, "%Y-%m-%d %H:%M", &tm));
    return (uint64_t)timegm(&tm) * 1000;
}

static const char *fmt(uint64_t ms, char *buf, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%d %H:%M", &tm);
    return buf;
}

/* schedule expr, after -> the expected next fire */
static void expect_next(const char *expr, const char *after, const char *want)
{
    struct schedule s;
    char why[256], got[32];
    if (schedule_parse(expr, &s, why, sizeof why) != 0)
        fail_msg("'%s' refused: %s", expr, why);
    uint64_t next = 0;
    assert_int_equal(schedule_next(&s, at(after), &next), 0);
    if (next != at(want))
        fail_msg("'%s' after %s: got %s, want %s", expr, after, fmt(next, got, sizeof got), want);
}

static void test_next_fire(void **state)
{
    (void)state;
    /* Strictly after: the current minute does not count. */
    expect_next("* * * * *", "2026-12-01 09:00", "2026-12-01 09:01");
    expect_next("30 * * * *", "2026-12-01 09:30", "2026-12-01 10:30");
    expect_next("30 * * * *", "2026-12-01 09:29", "2026-12-01 09:30");
    /* Day, month and year ends. */
    expect_next("0 0 * * *", "2026-12-31 23:59", "2027-01-01 00:00");
    expect_next("15 3 1 * *", "2026-01-31 04:00", "2026-02-01 03:15");
    expect_next("0 12 31 * *", "2026-04-01 00:00", "2026-05-31 12:00"); /* April has 30 */
    expect_next("0 0 1 1 *", "2026-06-15 10:00", "2027-01-01 00:00");
    /* Leap days. */
    expect_next("0 0 29 2 *", "2025-03-01 00:00", "2028-02-29 00:00");
    expect_next("0 0 29 2 *", "2096-03-01 00:00", "2104-02-29 00:00"); /* 2100 is not leap */
    /* Day of week: 2026-12-01 is a Tuesday. 0 and 7 are Sunday. */
    expect_next("0 9 * * 1", "2026-12-01 10:00", "2026-12-07 09:00");
    expect_next("0 9 * * 0", "2026-12-01 10:00", "2026-12-06 09:00");
    expect_next("0 9 * * 7", "2026-12-01 10:00", "2026-12-06 09:00");
    expect_next("0 9 * * 1-5", "2026-12-04 10:00", "2026-12-07 09:00"); /* Fri -> Mon */
    /* Both days restricted: either one fires. 2026-12-13 is a Sunday. */
    expect_next("0 0 13 * 5", "2026-12-01 00:00", "2026-12-04 00:00");
    expect_next("0 0 13 * 0", "2026-12-01 00:00", "2026-12-06 00:00");
    expect_next("0 0 2 * 0", "2026-12-01 00:00", "2026-12-02 00:00");
    /* With "*" in one of them, the other alone decides. */
    expect_next("0 0 13 * *", "2026-12-01 00:00", "2026-12-13 00:00");
    expect_next("0 0 */10 * 1", "2026-12-01 00:00", "2026-12-21 00:00"); /* both: 1,11,21,31 and Monday */
    /* Steps, ranges, lists. */
    expect_next("*/15 * * * *", "2026-12-01 09:46", "2026-12-01 10:00");
    expect_next("*/15 * * * *", "2026-12-01 09:44", "2026-12-01 09:45");
    expect_next("10-20/5 * * * *", "2026-12-01 09:16", "2026-12-01 09:20");
    expect_next("10-20/5 * * * *", "2026-12-01 09:20", "2026-12-01 10:10");
    expect_next("5/20 * * * *", "2026-12-01 09:46", "2026-12-01 10:05");
    expect_next("0 8,12,18 * * *", "2026-12-01 12:00", "2026-12-01 18:00");
    expect_next("0 0 1 */3 *", "2026-02-10 00:00", "2026-04-01 00:00");
}

static void expect_refused(const char *expr, const char *want)
{
    struct schedule s;
    char why[256];
    assert_int_equal(schedule_parse(expr, &s, why, sizeof why), FERRY_E_INVALID);
    if (!strstr(why, want))
        fail_msg("'%s': reason '%s' does not say '%s'", expr ? expr : "(null)", why, want);
}

static void test_refused(void **state)
{
    (void)state;
    expect_refused("", "empty schedule");
    expect_refused(NULL, "empty schedule");
    expect_refused("* * * *", "expected 5 fields");
    expect_refused("* * * * * *", "expected 5 fields");
    expect_refused("75 * * * *", "minute field '75': 75 is out of range 0-59");
    expect_refused("* 24 * * *", "hour field '24': 24 is out of range 0-23");
    expect_refused("* * 0 * *", "day-of-month field '0': 0 is out of range 1-31");
    expect_refused("* * * 13 *", "month field '13': 13 is out of range 1-12");
    expect_refused("* * * * 8", "day-of-week field '8': 8 is out of range 0-7");
    expect_refused("*/0 * * * *", "minute field '*/0': a step of 0");
    expect_refused("20-10 * * * *", "range 20-10 goes backwards");
    expect_refused("a * * * *", "minute field 'a': expected *");
    expect_refused("1,,2 * * * *", "minute field '1,,2'");
    expect_refused("1- * * * *", "minute field '1-'");
    expect_refused("* * * JAN *", "month field 'JAN'");
    expect_refused("0 0 31 2 *", "never fires");
    expect_refused("0 0 30,31 2 *", "never fires");
    expect_refused("@daily", "the only @ form is @every");
    expect_refused("@every", "@every '': expected a duration");
    expect_refused("@every soon", "@every 'soon': expected a duration");
    expect_refused("@every 0s", "must be from 1s to 366d");
    expect_refused("@every 400d", "must be from 1s to 366d");
    char big[300];
    memset(big, '1', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    expect_refused(big, "longer than");
}

static void test_every(void **state)
{
    (void)state;
    struct schedule s;
    char why[128];
    assert_int_equal(schedule_parse("@every 30s", &s, why, sizeof why), 0);
    assert_int_equal(s.every_ms, 30000);
    uint64_t next;
    assert_int_equal(schedule_next(&s, 1234567, &next), 0);
    assert_int_equal(next, 1234567 + 30000);
    assert_int_equal(schedule_parse("@every 2h", &s, why, sizeof why), 0);
    assert_int_equal(s.every_ms, 7200000);
    assert_int_equal(schedule_next(&s, UINT64_MAX - 5, &next), FERRY_E_NOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_next_fire),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_every),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
