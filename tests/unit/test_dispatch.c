/* The registry's dispatch table: every Request oneof case in the generated
 * protobuf descriptor has exactly one handler, and the start-up check
 * refuses a table that is missing one, has two, or names a case Request
 * does not have. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "dispatch.h"
#include "error.h"

static int is_area(const char *a)
{
    return strcmp(a, "publish") == 0 || strcmp(a, "fleet") == 0 || strcmp(a, "queries") == 0 ||
           strcmp(a, "actions") == 0;
}

/* Walks the descriptor itself, so a case added to wire.proto without a row
 * fails here even before the registry is started. */
static void test_every_oneof_case_has_one_handler(void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *d = &ferry__wire__request__descriptor;
    size_t cases = 0;
    for (unsigned f = 0; f < d->n_fields; f++) {
        if (!(d->fields[f].flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
            continue;
        cases++;
        size_t rows = 0;
        for (size_t i = 0; i < dispatch_table_len; i++)
            if ((unsigned)dispatch_table[i].body_case == d->fields[f].id)
                rows++;
        if (rows != 1)
            fail_msg("request '%s' has %zu handlers", d->fields[f].name, rows);
        const struct dispatch_entry *e = dispatch_find((int)d->fields[f].id);
        assert_non_null(e);
        assert_non_null(e->handler);
        assert_string_equal(e->name, d->fields[f].name);
        if (!is_area(e->area))
            fail_msg("request '%s' is in unknown area '%s'", e->name, e->area);
    }
    assert_true(cases > 0);
    assert_int_equal(dispatch_table_len, cases);
    assert_int_equal(dispatch_check(), 0);
}

static void test_missing_row_refused(void **state)
{
    (void)state;
    struct dispatch_entry t[64];
    assert_true(dispatch_table_len <= 64);
    /* Drop the poll row. */
    size_t n = 0;
    for (size_t i = 0; i < dispatch_table_len; i++)
        if (dispatch_table[i].body_case != FERRY__WIRE__REQUEST__BODY_POLL)
            t[n++] = dispatch_table[i];
    assert_int_equal(n, dispatch_table_len - 1);
    assert_int_equal(dispatch_check_table(t, n), FERRY_E_INVALID);
    assert_non_null(strstr(err_detail(), "request 'poll' (case 11) has 0 handlers"));
}

static void test_duplicate_row_refused(void **state)
{
    (void)state;
    struct dispatch_entry t[65];
    memcpy(t, dispatch_table, dispatch_table_len * sizeof t[0]);
    t[dispatch_table_len] = t[0];
    assert_int_equal(dispatch_check_table(t, dispatch_table_len + 1), FERRY_E_INVALID);
    assert_non_null(strstr(err_detail(), "has 2 handlers; it needs exactly one"));
}

static void test_bad_rows_refused(void **state)
{
    (void)state;
    struct dispatch_entry t[64];
    memcpy(t, dispatch_table, dispatch_table_len * sizeof t[0]);
    t[3].handler = NULL;
    assert_int_equal(dispatch_check_table(t, dispatch_table_len), FERRY_E_INVALID);
    assert_non_null(strstr(err_detail(), "lacks a handler"));

    memcpy(t, dispatch_table, dispatch_table_len * sizeof t[0]);
    t[3].body_case = (Ferry__Wire__Request__BodyCase)999;
    assert_int_equal(dispatch_check_table(t, dispatch_table_len), FERRY_E_INVALID);
    assert_non_null(strstr(err_detail(), "names body case 999, which Request does not have"));

    memcpy(t, dispatch_table, dispatch_table_len * sizeof t[0]);
    t[0].body_case = FERRY__WIRE__REQUEST__BODY__NOT_SET;
    assert_int_equal(dispatch_check_table(t, dispatch_table_len), FERRY_E_INVALID);
}

/* A request with no body (or one this build does not know) is a protocol
 * error, not a crash: no handler runs. */
static void test_unknown_body(void **state)
{
    (void)state;
    Ferry__Wire__Request req;
    ferry__wire__request__init(&req);
    Ferry__Wire__Response resp;
    ferry__wire__response__init(&resp);
    assert_int_equal(dispatch(NULL, &req, &resp, NULL), FERRY_E_PROTOCOL);
    assert_non_null(strstr(err_detail(), "request has no known body"));
    req.body_case = (Ferry__Wire__Request__BodyCase)999;
    assert_int_equal(dispatch(NULL, &req, &resp, NULL), FERRY_E_PROTOCOL);
    assert_null(dispatch_find((Ferry__Wire__Request__BodyCase)999));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_oneof_case_has_one_handler),
        cmocka_unit_test(test_missing_row_refused),
        cmocka_unit_test(test_duplicate_row_refused),
        cmocka_unit_test(test_bad_rows_refused),
        cmocka_unit_test(test_unknown_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
