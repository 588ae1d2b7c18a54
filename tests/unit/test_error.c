/* err_set: the detail line every failure carries. */
#include "error.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static void test_set_and_read(void **state)
{
    (void)state;
    err_clear();
    assert_int_equal(err_set(-ENOENT, "%s: %s", "a.key", "No such file"), -ENOENT);
    assert_string_equal(err_detail(), "a.key: No such file");
    assert_string_equal(err_message(-ENOENT), "a.key: No such file");
}

/* The usual way to add context: the detail itself as an argument. It must
 * come out whole, not overwritten while being read. */
static void test_prefix_with_own_detail(void **state)
{
    (void)state;
    err_set(FERRY_E_INVALID, "%s: not a regular file (a FIFO)", "/tmp/p.key");
    int rc = err_set(FERRY_E_INVALID, "--http-logs-key: %s", err_message(FERRY_E_INVALID));
    assert_int_equal(rc, FERRY_E_INVALID);
    assert_string_equal(err_detail(), "--http-logs-key: /tmp/p.key: not a regular file (a FIFO)");
    err_set(-EIO, "x");
    err_set(-EIO, "%s %s %s", err_detail(), err_detail(), err_detail());
    assert_string_equal(err_detail(), "x x x");
}

/* Too long for the buffer: cut, still terminated. */
static void test_long_detail_is_cut(void **state)
{
    (void)state;
    char big[3000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    err_set(-EIO, "%s", big);
    size_t n = strlen(err_detail());
    assert_true(n > 0 && n < sizeof big - 1);
    err_set(-EIO, "p: %s", err_detail());
    assert_int_equal(strncmp(err_detail(), "p: aaa", 6), 0);
    assert_int_equal(strlen(err_detail()), n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_and_read),
        cmocka_unit_test(test_prefix_with_own_detail),
        cmocka_unit_test(test_long_detail_is_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
