/* mlflow: the four JSON forms of MLflow's /invocations onto the model's
 * signature (columns by name, a 2-D input by position, named tensors),
 * the content-type rule (415), every refusal (400 naming the column or
 * input), and the predictions document. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlflow.h"
#include "modelcfg.h"

static struct model_cfg cols, mx, tens, one;

static int setup(void **state)
{
    (void)state;
    const char *a = "{\"name\":\"iris\",\"version\":\"1\",\"model\":{\"format\":\"sklearn\","
                    "\"file\":\"m\",\"inputs\":["
                    "{\"name\":\"a\",\"datatype\":\"FP64\",\"shape\":[-1]},"
                    "{\"name\":\"b\",\"datatype\":\"INT32\",\"shape\":[-1]}]}}";
    const char *b = "{\"name\":\"mx\",\"version\":\"1\",\"model\":{\"format\":\"sklearn\","
                    "\"file\":\"m\",\"inputs\":["
                    "{\"name\":\"x\",\"datatype\":\"FP64\",\"shape\":[-1,3]}]}}";
    const char *t = "{\"name\":\"t\",\"version\":\"1\",\"model\":{\"format\":\"python\","
                    "\"entry\":\"s.py:M\",\"inputs\":["
                    "{\"name\":\"img\",\"datatype\":\"UINT8\",\"shape\":[-1,2,2]},"
                    "{\"name\":\"tag\",\"datatype\":\"BYTES\",\"shape\":[-1]}]}}";
    const char *o = "{\"name\":\"o\",\"version\":\"1\",\"model\":{\"format\":\"python\","
                    "\"entry\":\"s.py:M\",\"inputs\":["
                    "{\"name\":\"v\",\"datatype\":\"FP64\",\"shape\":[-1]}]}}";
    if (model_cfg_parse(a, &cols) || model_cfg_parse(b, &mx) || model_cfg_parse(t, &tens) ||
        model_cfg_parse(o, &one))
        return -1;
    return 0;
}

static const char *JSON = "application/json";

static void parse_ok(const struct model_cfg *c, const char *ct, const char *body,
                     struct infer_req *r)
{
    char err[512] = "";
    int st = mlflow_parse(c, ct, body, strlen(body), r, err, sizeof err);
    if (st != 0)
        fail_msg("%s: status %d '%s'", body, st, err);
    assert_int_equal(r->protocol, PROTO_MLFLOW);
}

static void refused(const struct model_cfg *c, const char *ct, const char *body, int status,
                    const char *want)
{
    struct infer_req r;
    char err[512] = "";
    int st = mlflow_parse(c, ct, body, strlen(body), &r, err, sizeof err);
    if (st != status)
        fail_msg("%s: status %d (%s), expected %d", body, st, err, status);
    if (!strstr(err, want))
        fail_msg("%s: message '%s' lacks '%s'", body, err, want);
    assert_int_equal(r.n_inputs, 0);
}

static double f64(const struct tensor *t, size_t i)
{
    double v;
    memcpy(&v, t->data + i * 8, 8);
    return v;
}

static int32_t i32(const struct tensor *t, size_t i)
{
    int32_t v;
    memcpy(&v, t->data + i * 4, 4);
    return v;
}

/* Every form that means the rows (1.5, 7) and (2.5, 8) of the columns model. */
static void test_columns_forms(void **state)
{
    (void)state;
    const char *bodies[] = {
        "{\"dataframe_split\":{\"columns\":[\"a\",\"b\"],\"data\":[[1.5,7],[2.5,8]]}}",
        "{\"dataframe_split\":{\"columns\":[\"b\",\"a\"],\"data\":[[7,1.5],[8,2.5]],"
        "\"index\":[0,1]}}",
        "{\"dataframe_split\":{\"data\":[[1.5,7],[2.5,8]]}}",
        "{\"dataframe_records\":[{\"a\":1.5,\"b\":7},{\"b\":8,\"a\":2.5}]}",
        "{\"instances\":[{\"a\":1.5,\"b\":7},{\"a\":2.5,\"b\":8}]}",
        "{\"instances\":[[1.5,7],[2.5,8]]}",
        "{\"inputs\":{\"a\":[1.5,2.5],\"b\":[7,8]},\"params\":{}}",
        "{\"inputs\":[[1.5,7],[2.5,8]]}",
    };
    const char *cts[] = {"application/json", "application/json; charset=utf-8",
                         "Application/JSON;charset=\"UTF-8\"", " application/json ; charset=utf8"};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        struct infer_req r;
        parse_ok(&cols, cts[i % 4], bodies[i], &r);
        assert_int_equal(r.n_inputs, 2);
        assert_int_equal(r.rows, 2);
        assert_string_equal(r.inputs[0].name, "a");
        assert_int_equal(r.inputs[0].shape[0], 2);
        assert_true(f64(&r.inputs[0], 0) == 1.5 && f64(&r.inputs[0], 1) == 2.5);
        assert_int_equal(r.inputs[1].dtype, DT_INT32);
        assert_int_equal(i32(&r.inputs[1], 0), 7);
        assert_int_equal(i32(&r.inputs[1], 1), 8);
        infer_req_fini(&r);
    }
    /* A missing value in a float column is NaN, as pandas reads it. */
    struct infer_req r;
    parse_ok(&cols, JSON, "{\"dataframe_records\":[{\"a\":null,\"b\":1}]}", &r);
    assert_true(isnan(f64(&r.inputs[0], 0)));
    infer_req_fini(&r);
}

static void test_matrix_and_tensors(void **state)
{
    (void)state;
    const char *bodies[] = {
        "{\"dataframe_split\":{\"columns\":[\"p\",\"q\",\"r\"],\"data\":[[1,2,3],[4,5,6]]}}",
        "{\"dataframe_split\":{\"data\":[[1,2,3],[4,5,6]]}}",
        "{\"dataframe_records\":[{\"p\":1,\"q\":2,\"r\":3},{\"r\":6,\"q\":5,\"p\":4}]}",
        "{\"instances\":[[1,2,3],[4,5,6]]}",
        "{\"instances\":[{\"x\":[1,2,3]},{\"x\":[4,5,6]}]}",
        "{\"inputs\":[[1,2,3],[4,5,6]]}",
        "{\"inputs\":{\"x\":[[1,2,3],[4,5,6]]}}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        struct infer_req r;
        parse_ok(&mx, JSON, bodies[i], &r);
        assert_int_equal(r.rows, 2);
        assert_int_equal(r.inputs[0].rank, 2);
        assert_int_equal(r.inputs[0].shape[1], 3);
        for (size_t e = 0; e < 6; e++)
            assert_true(f64(&r.inputs[0], e) == (double)(e + 1));
        infer_req_fini(&r);
    }
    struct infer_req r;
    parse_ok(&tens, JSON,
             "{\"inputs\":{\"img\":[[[1,2],[3,4]],[[5,6],[7,8]]],\"tag\":[\"p\",\"q\"]}}", &r);
    assert_int_equal(r.rows, 2);
    assert_int_equal(r.inputs[0].n, 8);
    assert_int_equal(r.inputs[0].data[7], 8);
    assert_int_equal(r.inputs[1].nbytes, 10);
    infer_req_fini(&r);
    parse_ok(&tens, JSON,
             "{\"instances\":[{\"img\":[[1,2],[3,4]],\"tag\":\"p\"},"
             "{\"img\":[[5,6],[7,8]],\"tag\":\"q\"}]}",
             &r);
    assert_int_equal(r.inputs[0].data[4], 5);
    infer_req_fini(&r);
    parse_ok(&one, JSON, "{\"instances\":[1,2,3]}", &r);
    assert_int_equal(r.rows, 3);
    assert_true(f64(&r.inputs[0], 2) == 3.0);
    infer_req_fini(&r);
}

static void test_refusals(void **state)
{
    (void)state;
    const char *ok = "{\"instances\":[[1,2]]}";
    refused(&cols, "text/csv", ok, 415, "Content-Type 'text/csv' is not supported");
    refused(&cols, "", ok, 415, "no Content-Type");
    refused(&cols, NULL, ok, 415, "no Content-Type");
    refused(&cols, "application/jsonx", ok, 415, "is not supported");
    refused(&cols, "application/json; charset=latin-1", ok, 415,
            "charset 'latin-1' is not supported");
    refused(&cols, JSON, "{\"instances\":", 400, "malformed JSON");
    refused(&cols, JSON, "", 400, "empty");
    refused(&cols, JSON, "[1]", 400, "not a JSON object");
    refused(&cols, JSON, "{}", 400, "none of dataframe_split");
    refused(&cols, JSON, "{\"rows\":[]}", 400, "unknown key 'rows'");
    refused(&cols, JSON, "{\"instances\":[[1,2]],\"inputs\":[[1,2]]}", 400,
            "both instances and inputs");
    refused(&cols, JSON, "{\"instances\":[[1,2]],\"params\":3}", 400, "params is not an object");
    refused(&cols, JSON, "{\"dataframe_split\":{\"columns\":[\"a\",\"c\"],\"data\":[[1,2]]}}",
            400, "column 'c': unknown column (the model takes a, b)");
    refused(&cols, JSON, "{\"dataframe_split\":{\"columns\":[\"a\"],\"data\":[[1]]}}", 400,
            "column 'b' is missing");
    refused(&cols, JSON, "{\"dataframe_split\":{\"columns\":[\"a\",\"a\"],\"data\":[[1,2]]}}",
            400, "column 'a' given twice");
    refused(&cols, JSON, "{\"dataframe_split\":{\"columns\":[\"a\",\"b\"]}}", 400,
            "dataframe_split.data is missing");
    refused(&cols, JSON, "{\"dataframe_split\":{\"data\":[[1,2],[3]]}}", 400,
            "dataframe_split.data[1]: wrong number of values, the model takes 2 columns");
    refused(&cols, JSON, "{\"dataframe_split\":{\"data\":[[1,2]],\"extra\":1}}", 400,
            "dataframe_split: unknown key 'extra'");
    refused(&cols, JSON, "{\"dataframe_split\":[]}", 400, "dataframe_split is not an object");
    refused(&cols, JSON, "{\"dataframe_records\":[{\"a\":1}]}", 400,
            "dataframe_records[0]: column 'b' is missing");
    refused(&cols, JSON, "{\"dataframe_records\":[{\"a\":1,\"b\":2,\"c\":3}]}", 400,
            "dataframe_records[0]: column 'c': unknown column");
    refused(&cols, JSON, "{\"dataframe_records\":[{\"a\":1,\"b\":2},3]}", 400,
            "dataframe_records[1] is not an object");
    refused(&cols, JSON, "{\"dataframe_records\":[]}", 400, "column 'a': no rows");
    refused(&cols, JSON, "{\"dataframe_records\":[{\"a\":\"x\",\"b\":2}]}", 400,
            "column 'a': element 0: \"x\" is not a number (FP64)");
    refused(&cols, JSON, "{\"dataframe_records\":[{\"a\":1,\"b\":3000000000}]}", 400,
            "column 'b': element 0: 3000000000 is out of range for INT32");
    refused(&cols, JSON, "{\"dataframe_records\":[{\"a\":1,\"b\":null}]}", 400,
            "column 'b': element 0: null is not an integer (INT32)");
    refused(&cols, JSON, "{\"inputs\":{\"a\":[1,2],\"b\":[1]}}", 400,
            "column 'b': 1 rows, column 'a' has 2");
    refused(&cols, JSON, "{\"inputs\":{\"a\":[1]}}", 400, "input 'b': missing");
    refused(&cols, JSON, "{\"inputs\":{\"a\":[1],\"b\":[1],\"z\":[1]}}", 400,
            "input 'z': unknown input");
    refused(&cols, JSON, "{\"inputs\":{\"a\":1,\"b\":[1]}}", 400, "input 'a': not a list");
    refused(&cols, JSON, "{\"inputs\":3}", 400, "inputs is not an object");
    refused(&cols, JSON, "{\"instances\":{}}", 400, "instances is not a list");
    refused(&cols, JSON, "{\"instances\":[[1,2,3]]}", 400,
            "instances[0]: wrong number of values, the model takes 2 columns");
    refused(&cols, JSON, "{\"inputs\":{\"a\":[[1],[2,3]],\"b\":[1,2]}}", 400,
            "column 'a': nested data is not rectangular");

    refused(&mx, JSON, "{\"dataframe_split\":{\"columns\":[\"p\",\"q\"],\"data\":[[1,2]]}}", 400,
            "dataframe_split: 2 columns, the model's input 'x' takes 3");
    refused(&mx, JSON, "{\"instances\":[[1,2,3],[4,5]]}", 400,
            "input 'x': nested data is not rectangular: a list of 2 where the first at depth 2 has 3");
    refused(&mx, JSON, "{\"instances\":[1,2,3]}", 400, "input 'x': row 0 is not a list");
    refused(&mx, JSON, "{\"dataframe_records\":[{\"p\":1,\"q\":2,\"r\":3},{\"p\":1,\"q\":2}]}",
            400, "dataframe_records[1]: 2 columns, dataframe_records[0] has 3");
    refused(&mx, JSON, "{\"dataframe_records\":[{\"p\":1,\"q\":2,\"r\":3},{\"p\":1,\"q\":2,\"s\":3}]}",
            400, "dataframe_records[1]: column 'r' is missing");
    refused(&mx, JSON, "{\"inputs\":{\"x\":[[1,2,3],[4,5,6,7]]}}", 400,
            "input 'x': nested data is not rectangular");

    refused(&tens, JSON, "{\"dataframe_split\":{\"data\":[[1,2]]}}", 400,
            "dataframe_split needs a tabular model");
    refused(&tens, JSON, "{\"dataframe_records\":[{\"img\":1}]}", 400,
            "dataframe_records needs a tabular model");
    refused(&tens, JSON, "{\"instances\":[[1,2]]}", 400,
            "instances as a list of rows needs a model with one input");
    refused(&tens, JSON, "{\"instances\":[{\"img\":[[1,2],[3,4]]}]}", 400,
            "instances[0]: input 'tag' is missing");
    refused(&tens, JSON, "{\"inputs\":{\"img\":[[[1,2],[3,4]]],\"tag\":[7]}}", 400,
            "input 'tag': element 0: 7 is not a string (BYTES)");
    refused(&tens, JSON, "{\"inputs\":{\"img\":[[[1,2],[3,400]]],\"tag\":[\"a\"]}}", 400,
            "input 'img': element 3: 400 is out of range for UINT8");
}

static json_t *rendered(char *text)
{
    assert_non_null(text);
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    free(text);
    return j;
}

static void set_tensor(struct tensor *t, const char *name, enum dtype dt, int rank,
                       const int64_t *shape, const void *data, size_t nbytes)
{
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dt;
    t->rank = rank;
    t->n = 1;
    for (int d = 0; d < rank; d++) {
        t->shape[d] = shape[d];
        t->n *= (size_t)shape[d];
    }
    t->data = malloc(nbytes);
    memcpy(t->data, data, nbytes);
    t->nbytes = nbytes;
}

static void test_render(void **state)
{
    (void)state;
    struct infer_req req = {0};
    struct infer_result res = {0};
    int64_t lab[3] = {0, 1, 2};
    int64_t s3[] = {3};
    set_tensor(&res.outputs[0], "species", DT_INT64, 1, s3, lab, sizeof lab);
    res.n_outputs = 1;
    json_t *j = rendered(mlflow_render(&cols, &req, &res));
    json_t *p = json_object_get(j, "predictions");
    assert_true(json_is_array(p));
    assert_int_equal(json_array_size(p), 3);
    assert_int_equal(json_integer_value(json_array_get(p, 2)), 2);
    json_decref(j);

    /* A 2-D output: a list of rows; several outputs: a dict of them. */
    double proba[4] = {0.25, 0.75, 1, 0};
    int64_t s22[] = {2, 2};
    set_tensor(&res.outputs[1], "proba", DT_FP64, 2, s22, proba, sizeof proba);
    res.n_outputs = 2;
    j = rendered(mlflow_render(&cols, &req, &res));
    p = json_object_get(j, "predictions");
    assert_true(json_is_object(p));
    json_t *pr = json_object_get(p, "proba");
    assert_int_equal(json_array_size(pr), 2);
    assert_true(json_real_value(json_array_get(json_array_get(pr, 0), 1)) == 0.75);
    assert_int_equal(json_array_size(json_object_get(p, "species")), 3);
    json_decref(j);

    struct infer_result only = {0};
    only.outputs[0] = res.outputs[1];
    only.n_outputs = 1;
    j = rendered(mlflow_render(&cols, &req, &only));
    p = json_object_get(j, "predictions");
    assert_int_equal(json_array_size(p), 2);
    assert_true(json_is_array(json_array_get(p, 0)));
    json_decref(j);
    infer_result_fini(&res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_columns_forms),
        cmocka_unit_test(test_matrix_and_tensors),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_render),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
