/* Strict numbers: everything atoi would have half-read is refused, with the
 * flag and the text in one line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "numparse.h"

static void refused(int rc, const char *what, const char *text)
{
    assert_int_equal(rc, FERRY_E_INVALID);
    char want[200];
    snprintf(want, sizeof want, "%s '%s': ", what, text);
    if (strncmp(err_detail(), want, strlen(want)) != 0)
        fail_msg("detail '%s' does not start with '%s'", err_detail(), want);
    assert_null(strchr(err_detail(), '\n'));
}

static void test_u64(void **state)
{
    (void)state;
    uint64_t v = 99;
    assert_int_equal(num_parse_u64("--limit", "5", 1, 10, &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(num_parse_u64("--limit", "0", 0, 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(num_parse_u64("--n", "18446744073709551615", 0, UINT64_MAX, &v), 0);
    assert_true(v == UINT64_MAX);

    const char *bad[] = {"5abc", "abc", "", " 5", "5 ", "+5", "-5", "0x10", "5.0", "1e3",
                         "18446744073709551616", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = 42;
        err_clear();
        refused(num_parse_u64("--limit", bad[i], 0, UINT64_MAX, &v), "--limit", bad[i]);
        assert_int_equal(v, 42); /* untouched on failure */
    }
    err_clear();
    refused(num_parse_u64("--limit", "0", 1, 10, &v), "--limit", "0");
    assert_non_null(strstr(err_detail(), "from 1 to 10"));
    refused(num_parse_u64("--limit", "11", 1, 10, &v), "--limit", "11");
    refused(num_parse_u64("--limit", NULL, 1, 10, &v), "--limit", "");
}

static void test_duration(void **state)
{
    (void)state;
    uint64_t ms = 0;
    assert_int_equal(num_parse_duration_ms("--t", "500ms", 1000, 0, UINT64_MAX, &ms), 0);
    assert_int_equal(ms, 500);
    assert_int_equal(num_parse_duration_ms("--t", "30s", 1000, 0, UINT64_MAX, &ms), 0);
    assert_int_equal(ms, 30000);
    assert_int_equal(num_parse_duration_ms("--t", "5m", 1000, 0, UINT64_MAX, &ms), 0);
    assert_int_equal(ms, 300000);
    assert_int_equal(num_parse_duration_ms("--t", "2h", 1000, 0, UINT64_MAX, &ms), 0);
    assert_int_equal(ms, 7200000);
    assert_int_equal(num_parse_duration_ms("--t", "7d", 1000, 0, UINT64_MAX, &ms), 0);
    assert_int_equal(ms, 7ull * 86400000);
    /* Bare digits take the caller's unit. */
    assert_int_equal(num_parse_duration_ms("--t", "15", 1000, 0, UINT64_MAX, &ms), 0);
    assert_int_equal(ms, 15000);
    assert_int_equal(num_parse_duration_ms("--t", "15", 1, 0, UINT64_MAX, &ms), 0);
    assert_int_equal(ms, 15);

    const char *bad[] = {"", "s", "5x", "5 s", "5S", "5sec", "-5s", "1.5h", "5ms5", "5hm",
                         "99999999999999999999d", "18446744073709551615d"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err_clear();
        refused(num_parse_duration_ms("--ttl", bad[i], 1000, 0, UINT64_MAX, &ms), "--ttl",
                bad[i]);
    }
    refused(num_parse_duration_ms("--ttl", "999ms", 1000, 1000, 5000, &ms), "--ttl", "999ms");
    refused(num_parse_duration_ms("--ttl", "6s", 1000, 1000, 5000, &ms), "--ttl", "6s");
    /* The range is given in the units the flag takes, as the docs give it. */
    refused(num_parse_duration_ms("--desired-ttl", "1s", 1000, 2000, 366ull * 86400000, &ms),
            "--desired-ttl", "1s");
    assert_string_equal(err_detail(), "--desired-ttl '1s': must be from 2s to 366d");
    refused(num_parse_duration_ms("--t", "1ms", 1000, 1500, 90 * 60000, &ms), "--t", "1ms");
    assert_string_equal(err_detail(), "--t '1ms': must be from 1500ms to 90m");
}

static void test_size(void **state)
{
    (void)state;
    uint64_t v = 0;
    assert_int_equal(num_parse_size("--max", "4096", 0, UINT64_MAX, &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(num_parse_size("--max", "512M", 0, UINT64_MAX, &v), 0);
    assert_int_equal(v, 512ull << 20);
    assert_int_equal(num_parse_size("--max", "64GiB", 0, UINT64_MAX, &v), 0);
    assert_int_equal(v, 64ull << 30);
    assert_int_equal(num_parse_size("--max", "2KB", 0, UINT64_MAX, &v), 0);
    assert_int_equal(v, 2048);
    assert_int_equal(num_parse_size("--max", "7B", 0, UINT64_MAX, &v), 0);
    assert_int_equal(v, 7);
    const char *bad[] = {"", "G", "5g", "5Gb", "5 G", "5GiBx", "-1", "16777216T"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err_clear();
        refused(num_parse_size("--max", bad[i], 0, UINT64_MAX, &v), "--max", bad[i]);
    }
    refused(num_parse_size("--max", "2G", 0, 1ull << 30, &v), "--max", "2G");
}

static void test_env(void **state)
{
    (void)state;
    uint64_t v = 0;
    unsetenv("FERRY_TEST_NUM");
    assert_int_equal(num_env_u64("FERRY_TEST_NUM", 77, 1, 100, &v), 0);
    assert_int_equal(v, 77);
    setenv("FERRY_TEST_NUM", "", 1);
    assert_int_equal(num_env_u64("FERRY_TEST_NUM", 77, 1, 100, &v), 0);
    assert_int_equal(v, 77);
    setenv("FERRY_TEST_NUM", "12", 1);
    assert_int_equal(num_env_u64("FERRY_TEST_NUM", 77, 1, 100, &v), 0);
    assert_int_equal(v, 12);
    /* Not a silent default: an error naming the variable. */
    setenv("FERRY_TEST_NUM", "12ms", 1);
    refused(num_env_u64("FERRY_TEST_NUM", 77, 1, 100, &v), "FERRY_TEST_NUM", "12ms");
    setenv("FERRY_TEST_NUM", "0", 1);
    refused(num_env_u64("FERRY_TEST_NUM", 77, 1, 100, &v), "FERRY_TEST_NUM", "0");
    unsetenv("FERRY_TEST_NUM");
}

/* A hostile value is shown bounded and printable. */
static void test_shown_bounded(void **state)
{
    (void)state;
    char text[600];
    memset(text, 'x', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    text[3] = '\n';
    uint64_t v;
    err_clear();
    assert_int_equal(num_parse_u64("--limit", text, 0, 10, &v), FERRY_E_INVALID);
    assert_null(strchr(err_detail(), '\n'));
    assert_true(strlen(err_detail()) < 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_u64),      cmocka_unit_test(test_duration),
        cmocka_unit_test(test_size),     cmocka_unit_test(test_env),
        cmocka_unit_test(test_shown_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
