/* opensig: a format python model without declared inputs takes the inputs
 * each request names, through both protocols, and a request is still
 * checked against itself (data length against shape, one row count, the
 * values' datatypes) with the parsers' messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "infer.h"
#include "mlflow.h"
#include "modelcfg.h"
#include "opensig.h"
#include "v2.h"

static struct model_cfg open_cfg, closed_cfg;

static int setup(void **state)
{
    (void)state;
    if (model_cfg_parse("{\"name\":\"free\",\"version\":\"1\",\"model\":{\"format\":\"python\","
                        "\"entry\":\"s.py:M\"}}",
                        &open_cfg) ||
        model_cfg_parse("{\"name\":\"fixed\",\"version\":\"1\",\"model\":{\"format\":\"python\","
                        "\"entry\":\"s.py:M\",\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP64\","
                        "\"shape\":[-1]}]}}",
                        &closed_cfg))
        return -1;
    return 0;
}

static void test_open_or_not(void **state)
{
    (void)state;
    assert_true(opensig_open(&open_cfg));
    assert_false(opensig_open(&closed_cfg));
}

static void v2_refused(const char *body, const char *want)
{
    struct infer_req r;
    char err[512] = "";
    int st = v2_parse_infer(&open_cfg, body, strlen(body), &r, err, sizeof err);
    if (st != 400)
        fail_msg("%s: status %d, expected 400 (%s)", body, st, err);
    if (!strstr(err, want))
        fail_msg("%s: message '%s' lacks '%s'", body, err, want);
    assert_int_equal(r.n_inputs, 0);
}

static void test_v2(void **state)
{
    (void)state;
    struct infer_req r;
    char err[512] = "";
    const char *body = "{\"id\":\"a\",\"inputs\":["
                       "{\"name\":\"img\",\"shape\":[2,2],\"datatype\":\"UINT8\",\"data\":[[1,2],[3,4]]},"
                       "{\"name\":\"tag\",\"shape\":[2],\"datatype\":\"BYTES\",\"data\":[\"p\",\"q\"]}]}";
    assert_int_equal(v2_parse_infer(&open_cfg, body, strlen(body), &r, err, sizeof err), 0);
    assert_int_equal(r.n_inputs, 2);
    assert_int_equal(r.rows, 2);
    assert_string_equal(r.inputs[0].name, "img");
    assert_int_equal(r.inputs[0].dtype, DT_UINT8);
    assert_int_equal(r.inputs[0].rank, 2);
    assert_int_equal(r.inputs[0].data[3], 4);
    assert_string_equal(r.inputs[1].name, "tag");
    assert_int_equal(r.inputs[1].dtype, DT_BYTES);
    assert_string_equal(r.id, "a");
    infer_req_fini(&r);
    assert_int_equal(open_cfg.n_inputs, 0); /* the configuration stays open */

    v2_refused("{\"inputs\": [", "malformed JSON");
    v2_refused("{\"id\":\"x\"}", "'inputs' is missing");
    v2_refused("{\"inputs\":[]}", "'inputs' is empty");
    v2_refused("{\"inputs\":[{\"shape\":[1],\"datatype\":\"FP64\",\"data\":[1]}]}",
               "inputs[0]: 'name' is missing");
    v2_refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP64\",\"data\":[1]}]}",
               "input 'x': data has 1 elements, shape [2] needs 2");
    v2_refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP65\",\"data\":[1]}]}",
               "input 'x': unknown datatype 'FP65'");
    v2_refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"INT8\",\"data\":[300]}]}",
               "input 'x': element 0");
    v2_refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP64\",\"data\":[1]},"
               "{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP64\",\"data\":[1]}]}",
               "input 'x': given twice");
    v2_refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP64\",\"data\":[1]},"
               "{\"name\":\"y\",\"shape\":[2],\"datatype\":\"FP64\",\"data\":[1,2]}]}",
               "input 'y': 2 rows (first dimension), input 'x' has 1");
    v2_refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[],\"datatype\":\"FP64\",\"data\":[]}]}",
               "input 'x': shape [] has no rows");
    char longname[200];
    snprintf(longname, sizeof longname,
             "{\"inputs\":[{\"name\":\"%070d\",\"shape\":[1],\"datatype\":\"FP64\",\"data\":[1]}]}",
             0);
    v2_refused(longname, "a name is at most 63 bytes");
}

static void test_mlflow(void **state)
{
    (void)state;
    struct infer_req r;
    char err[512] = "";
    const char *split = "{\"dataframe_split\":{\"columns\":[\"a\",\"s\",\"b\"],"
                        "\"data\":[[1,\"u\",true],[2.5,\"v\",false]]}}";
    assert_int_equal(mlflow_parse(&open_cfg, "application/json", split, strlen(split), &r, err,
                                  sizeof err),
                     0);
    assert_int_equal(r.n_inputs, 3);
    assert_int_equal(r.rows, 2);
    assert_int_equal(r.inputs[0].dtype, DT_FP64);
    assert_int_equal(r.inputs[1].dtype, DT_BYTES);
    assert_int_equal(r.inputs[2].dtype, DT_BOOL);
    infer_req_fini(&r);

    const char *records = "{\"dataframe_records\":[{\"a\":1,\"b\":2},{\"a\":3,\"b\":4}]}";
    assert_int_equal(mlflow_parse(&open_cfg, "application/json; charset=utf-8", records,
                                  strlen(records), &r, err, sizeof err),
                     0);
    assert_int_equal(r.n_inputs, 2);
    assert_string_equal(r.inputs[1].name, "b");
    infer_req_fini(&r);

    const char *rows = "{\"instances\":[[1,2,3],[4,5,6]]}";
    assert_int_equal(mlflow_parse(&open_cfg, "application/json", rows, strlen(rows), &r, err,
                                  sizeof err),
                     0);
    assert_int_equal(r.n_inputs, 1);
    assert_string_equal(r.inputs[0].name, "input-0");
    assert_int_equal(r.inputs[0].rank, 2);
    assert_int_equal(r.inputs[0].shape[1], 3);
    infer_req_fini(&r);

    const char *cols = "{\"inputs\":{\"x\":[1,2],\"m\":[[1,2],[3,4]]}}";
    assert_int_equal(mlflow_parse(&open_cfg, "application/json", cols, strlen(cols), &r, err,
                                  sizeof err),
                     0);
    assert_int_equal(r.n_inputs, 2);
    assert_int_equal(r.inputs[1].rank, 2);
    infer_req_fini(&r);

    /* A content type before anything else; then the body's own faults. */
    assert_int_equal(mlflow_parse(&open_cfg, "text/csv", rows, strlen(rows), &r, err, sizeof err),
                     415);
    const char *empty = "{\"instances\":[]}";
    assert_int_equal(mlflow_parse(&open_cfg, "application/json", empty, strlen(empty), &r, err,
                                  sizeof err),
                     400);
    assert_non_null(strstr(err, "no rows"));
    const char *ragged = "{\"dataframe_records\":[{\"a\":1,\"b\":2},{\"a\":3}]}";
    assert_int_equal(mlflow_parse(&open_cfg, "application/json", ragged, strlen(ragged), &r, err,
                                  sizeof err),
                     400);
    assert_non_null(strstr(err, "dataframe_records[1]: column 'b' is missing"));
    const char *bad = "{\"dataframe_split\": ";
    assert_int_equal(mlflow_parse(&open_cfg, "application/json", bad, strlen(bad), &r, err,
                                  sizeof err),
                     400);
    assert_non_null(strstr(err, "malformed JSON"));
    assert_int_equal(r.n_inputs, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_or_not),
        cmocka_unit_test(test_v2),
        cmocka_unit_test(test_mlflow),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
