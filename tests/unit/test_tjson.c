/* tjson: how output tensors are rendered as V2 JSON data, in particular the
 * values JSON cannot hold as they are (docs/models.md, "V2 requests"): a
 * BYTES value that is not UTF-8 and a float that is not finite become null,
 * a UINT64 above INT64_MAX the nearest double; everything else is exact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor.h"
#include "tjson.h"

static char *render(enum dtype dt, int rank, const int64_t *shape, size_t n, const void *data,
                    size_t nbytes, int rows)
{
    struct tensor t;
    memset(&t, 0, sizeof t);
    strcpy(t.name, "out");
    t.dtype = dt;
    t.rank = rank;
    memcpy(t.shape, shape, (size_t)rank * sizeof *shape);
    t.n = n;
    t.nbytes = nbytes;
    t.data = malloc(nbytes ? nbytes : 1);
    assert_non_null(t.data);
    memcpy(t.data, data, nbytes);
    json_t *j = rows ? tjson_rows(&t) : tjson_flat(&t);
    assert_non_null(j);
    char *s = json_dumps(j, JSON_COMPACT) /* as the server writes answers */;
    json_decref(j);
    tensor_fini(&t);
    return s;
}

static void bytes_not_utf8_is_null(void **state)
{
    (void)state;
    /* "ok", then 0xff 0xfe (not UTF-8), then "é" (UTF-8) */
    const uint8_t b[] = {2, 0, 0, 0, 'o', 'k', 2, 0, 0, 0, 0xff, 0xfe, 2, 0, 0, 0, 0xc3, 0xa9};
    int64_t shape[] = {3};
    char *s = render(DT_BYTES, 1, shape, 3, b, sizeof b, 0);
    assert_string_equal(s, "[\"ok\",null,\"\xc3\xa9\"]");
    free(s);
}

static void floats_not_finite_are_null(void **state)
{
    (void)state;
    double d[] = {1.5, NAN, INFINITY, -INFINITY};
    int64_t shape[] = {2, 2};
    char *s = render(DT_FP64, 2, shape, 4, d, sizeof d, 0);
    assert_string_equal(s, "[1.5,null,null,null]");
    free(s);
    s = render(DT_FP64, 2, shape, 4, d, sizeof d, 1); /* rows: nested by the first dimension */
    assert_string_equal(s, "[[1.5,null],[null,null]]");
    free(s);
    float f[] = {0.1f, NAN};
    int64_t two[] = {2};
    s = render(DT_FP32, 1, two, 2, f, sizeof f, 0);
    /* FP32 0.1 reads back as the double 0.1 a client sent, not as the
     * double nearest the float (0.10000000149011612) */
    json_t *j = json_loads(s, 0, NULL);
    assert_non_null(j);
    assert_true(json_real_value(json_array_get(j, 0)) == 0.1);
    assert_true(json_is_null(json_array_get(j, 1)));
    json_decref(j);
    free(s);
}

static void integers_exact_uint64_above_int64_max_a_double(void **state)
{
    (void)state;
    uint64_t u[] = {UINT64_MAX, (uint64_t)INT64_MAX, 0};
    int64_t shape[] = {3};
    char *s = render(DT_UINT64, 1, shape, 3, u, sizeof u, 0);
    json_t *j = json_loads(s, 0, NULL);
    assert_non_null(j);
    assert_true(json_is_real(json_array_get(j, 0)));
    assert_true(json_real_value(json_array_get(j, 0)) == 18446744073709551616.0);
    assert_true(json_is_integer(json_array_get(j, 1)));
    assert_true(json_integer_value(json_array_get(j, 1)) == INT64_MAX);
    assert_true(json_integer_value(json_array_get(j, 2)) == 0);
    json_decref(j);
    free(s);
    int64_t i[] = {INT64_MIN, -1};
    int64_t two[] = {2};
    s = render(DT_INT64, 1, two, 2, i, sizeof i, 0);
    assert_string_equal(s, "[-9223372036854775808,-1]");
    free(s);
    uint8_t bo[] = {1, 0};
    s = render(DT_BOOL, 1, two, 2, bo, sizeof bo, 0);
    assert_string_equal(s, "[true,false]");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bytes_not_utf8_is_null),
        cmocka_unit_test(floats_not_finite_are_null),
        cmocka_unit_test(integers_exact_uint64_above_int64_max_a_double),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
