/* Strict sizes and durations: whole text or refused, no overflow. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "error.h"
#include "units.h"

static void test_sizes(void **state)
{
    (void)state;
    uint64_t v = 0;
    assert_int_equal(units_parse_size("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(units_parse_size("1048576", &v), 0);
    assert_int_equal(v, 1048576);
    assert_int_equal(units_parse_size("512K", &v), 0);
    assert_int_equal(v, 512ull << 10);
    assert_int_equal(units_parse_size("512M", &v), 0);
    assert_int_equal(v, 512ull << 20);
    assert_int_equal(units_parse_size("64G", &v), 0);
    assert_int_equal(v, 64ull << 30);
    assert_int_equal(units_parse_size("2T", &v), 0);
    assert_int_equal(v, 2ull << 40);
    assert_int_equal(units_parse_size("18446744073709551615", &v), 0);
    assert_true(v == UINT64_MAX);
    const char *bad[] = {"", "5abc", "abc", "-1", " 5", "5 ", "5GG", "5G1", "5g", "1P",
                         "18446744073709551616", "16777216T", "0x10", "+5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (units_parse_size(bad[i], &v) != FERRY_E_INVALID)
            fail_msg("size '%s' was accepted", bad[i]);
    assert_int_equal(units_parse_size(NULL, &v), FERRY_E_INVALID);
}

static void test_durations(void **state)
{
    (void)state;
    uint64_t v = 0;
    assert_int_equal(units_parse_duration("90", &v), 0);
    assert_int_equal(v, 90000);
    assert_int_equal(units_parse_duration("90s", &v), 0);
    assert_int_equal(v, 90000);
    assert_int_equal(units_parse_duration("30m", &v), 0);
    assert_int_equal(v, 1800000);
    assert_int_equal(units_parse_duration("12h", &v), 0);
    assert_int_equal(v, 43200000);
    assert_int_equal(units_parse_duration("7d", &v), 0);
    assert_int_equal(v, 604800000);
    const char *bad[] = {"", "5abc", "1.5h", "h", "1hm", "1H", "10ms", "99999999999999999999d"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (units_parse_duration(bad[i], &v) != FERRY_E_INVALID)
            fail_msg("duration '%s' was accepted", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_durations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
