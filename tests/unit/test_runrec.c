/* Notebook run record bounds (lib/runrec.c): what a host may report. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "error.h"
#include "runrec.h"

static Ferry__Wire__RunRecord good(void)
{
    Ferry__Wire__RunRecord r;
    ferry__wire__run_record__init(&r);
    r.id = "0123456789abcdef";
    r.name = "report";
    r.version = "1.2";
    r.status = "failed";
    r.error = "cell 3: ValueError: boom";
    return r;
}

static void test_ids_and_status(void **state)
{
    (void)state;
    assert_true(runrec_id_ok("0123456789abcdef"));
    assert_false(runrec_id_ok("0123456789ABCDEF"));
    assert_false(runrec_id_ok("0123456789abcde"));
    assert_false(runrec_id_ok("0123456789abcdefa"));
    assert_false(runrec_id_ok("../../../etc/pas"));
    assert_false(runrec_id_ok(NULL));
    assert_true(runrec_status_ok("running"));
    assert_true(runrec_status_ok("succeeded"));
    assert_true(runrec_status_ok("failed"));
    assert_false(runrec_status_ok("done"));
    assert_false(runrec_status_ok(""));
    assert_false(runrec_status_ok(NULL));
}

static void test_check(void **state)
{
    (void)state;
    Ferry__Wire__RunRecord r = good();
    assert_int_equal(runrec_check("t", &r), 0);
    assert_int_equal(runrec_check("t", NULL), FERRY_E_INVALID);

    r = good();
    r.name = "Bad Name";
    assert_int_equal(runrec_check("t", &r), FERRY_E_INVALID);
    assert_non_null(strstr(err_detail(), "bad workload name"));

    r = good();
    r.status = "weird";
    assert_int_equal(runrec_check("t", &r), FERRY_E_INVALID);

    r = good();
    r.error = "two\nlines";
    assert_int_equal(runrec_check("t", &r), FERRY_E_INVALID);
    assert_non_null(strstr(err_detail(), "one line"));

    static char big[RUN_ERROR_MAX + 2];
    memset(big, 'x', sizeof big - 1);
    r = good();
    r.error = big;
    assert_int_equal(runrec_check("t", &r), FERRY_E_INVALID);

    uint8_t d[5] = {0};
    r = good();
    r.notebook_digest = (ProtobufCBinaryData){sizeof d, d};
    assert_int_equal(runrec_check("t", &r), FERRY_E_INVALID);

    r = good();
    r.notebook_size = (uint64_t)RUN_NOTEBOOK_MAX + 1;
    assert_int_equal(runrec_check("t", &r), FERRY_E_LIMIT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_and_status),
        cmocka_unit_test(test_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
