/* v2: Open Inference Protocol request parsing against the signature (every
 * refusal is a 400 naming the input and the reason), flat and nested data,
 * every datatype's conversion and range, and the response documents. */
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

#include "error.h"
#include "modelcfg.h"
#include "v2.h"

static struct model_cfg iris, matrix, kinds;

static int setup(void **state)
{
    (void)state;
    const char *a = "{\"name\":\"iris\",\"version\":\"1.0.0\",\"model\":{\"format\":\"sklearn\","
                    "\"file\":\"m\",\"inputs\":["
                    "{\"name\":\"sl\",\"datatype\":\"FP64\",\"shape\":[-1]},"
                    "{\"name\":\"sw\",\"datatype\":\"FP64\",\"shape\":[-1]}],"
                    "\"outputs\":[{\"name\":\"species\",\"datatype\":\"INT64\",\"shape\":[-1]}]}}";
    const char *b = "{\"name\":\"mx\",\"version\":\"2\",\"model\":{\"format\":\"sklearn\","
                    "\"file\":\"m\",\"inputs\":["
                    "{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[-1,3]}]}}";
    /* One input per datatype, for the conversions. */
    char c[4096];
    size_t o = (size_t)snprintf(c, sizeof c, "{\"name\":\"k\",\"version\":\"1\",\"model\":{"
                                             "\"format\":\"python\",\"entry\":\"s.py:M\","
                                             "\"inputs\":[");
    for (int t = 0; t < DT_COUNT; t++)
        o += (size_t)snprintf(c + o, sizeof c - o,
                              "%s{\"name\":\"%s\",\"datatype\":\"%s\",\"shape\":[-1]}",
                              t ? "," : "", dtype_name((enum dtype)t), dtype_name((enum dtype)t));
    snprintf(c + o, sizeof c - o, "]}}");
    if (model_cfg_parse(a, &iris) || model_cfg_parse(b, &matrix) || model_cfg_parse(c, &kinds))
        return -1;
    return 0;
}

static double f64(const struct tensor *t, size_t i)
{
    double v;
    memcpy(&v, t->data + i * 8, 8);
    return v;
}

static void refused(const struct model_cfg *c, const char *body, const char *want)
{
    struct infer_req r;
    char err[512] = "";
    int st = v2_parse_infer(c, body, strlen(body), &r, err, sizeof err);
    if (st != 400)
        fail_msg("%s: status %d, expected 400 (%s)", body, st, err);
    if (!strstr(err, want))
        fail_msg("%s: message '%s' lacks '%s'", body, err, want);
    assert_int_equal(r.n_inputs, 0); /* nothing left behind */
    assert_null(r.id);
}

static void test_flat_and_nested(void **state)
{
    (void)state;
    struct infer_req r;
    char err[512];
    const char *body =
        "{\"id\":\"42\",\"parameters\":{\"p\":1},\"inputs\":["
        "{\"name\":\"sw\",\"shape\":[2],\"datatype\":\"FP64\",\"data\":[3.5,3]},"
        "{\"name\":\"sl\",\"shape\":[2],\"datatype\":\"FP64\",\"data\":[5.1,4.9],"
        "\"parameters\":{\"content_type\":\"np\"}}],"
        "\"outputs\":[{\"name\":\"species\"}]}";
    assert_int_equal(v2_parse_infer(&iris, body, strlen(body), &r, err, sizeof err), 0);
    assert_int_equal(r.protocol, PROTO_V2);
    assert_string_equal(r.id, "42");
    assert_int_equal(r.n_inputs, 2);
    assert_int_equal(r.rows, 2);
    /* Signature order, whatever the request's order. */
    assert_string_equal(r.inputs[0].name, "sl");
    assert_true(f64(&r.inputs[0], 0) == 5.1 && f64(&r.inputs[0], 1) == 4.9);
    assert_true(f64(&r.inputs[1], 0) == 3.5 && f64(&r.inputs[1], 1) == 3.0);
    assert_int_equal(r.inputs[0].nbytes, 16);
    assert_int_equal(r.n_requested, 1);
    assert_string_equal(r.requested[0], "species");
    infer_req_fini(&r);

    /* The same matrix flat and nested gives the same bytes. */
    const char *flat = "{\"inputs\":[{\"name\":\"x\",\"shape\":[2,3],\"datatype\":\"FP32\","
                       "\"data\":[1,2,3,4,5,6.5]}]}";
    const char *nested = "{\"inputs\":[{\"name\":\"x\",\"shape\":[2,3],\"datatype\":\"FP32\","
                         "\"data\":[[1,2,3],[4,5,6.5]]}]}";
    struct infer_req a, b;
    assert_int_equal(v2_parse_infer(&matrix, flat, strlen(flat), &a, err, sizeof err), 0);
    assert_int_equal(v2_parse_infer(&matrix, nested, strlen(nested), &b, err, sizeof err), 0);
    assert_int_equal(a.inputs[0].nbytes, 24);
    assert_int_equal(b.inputs[0].nbytes, 24);
    assert_memory_equal(a.inputs[0].data, b.inputs[0].data, 24);
    float last;
    memcpy(&last, a.inputs[0].data + 20, 4);
    assert_true(last == 6.5f);
    assert_int_equal(a.rows, 2);
    assert_null(a.id);
    infer_req_fini(&a);
    infer_req_fini(&b);

    /* Another regular nesting of the same values (numpy reshapes it). */
    const char *deep = "{\"inputs\":[{\"name\":\"sl\",\"shape\":[2],\"datatype\":\"FP64\","
                       "\"data\":[[5.1],[4.9]]},{\"name\":\"sw\",\"shape\":[2],"
                       "\"datatype\":\"FP64\",\"data\":[3.5,3]}]}";
    assert_int_equal(v2_parse_infer(&iris, deep, strlen(deep), &a, err, sizeof err), 0);
    assert_true(f64(&a.inputs[0], 0) == 5.1 && f64(&a.inputs[0], 1) == 4.9);
    infer_req_fini(&a);
}

static void test_refusals(void **state)
{
    (void)state;
    refused(&iris, "{\"inputs\":[", "malformed JSON");
    refused(&iris, "", "empty");
    refused(&iris, "[1,2]", "not a JSON object");
    refused(&iris, "{}", "'inputs' is missing");
    refused(&iris, "{\"inputs\":{}}", "'inputs' is not a list");
    refused(&iris, "{\"id\":42,\"inputs\":[]}", "'id' is not a string");
    refused(&iris, "{\"parameters\":[],\"inputs\":[]}", "'parameters' is not an object");
    refused(&iris,
            "{\"inputs\":[{\"name\":\"sl\",\"shape\":[1],\"datatype\":\"FP64\",\"data\":[1]}]}",
            "input 'sw': missing");
    refused(&iris,
            "{\"inputs\":[{\"name\":\"sl\",\"shape\":[1],\"datatype\":\"FP64\",\"data\":[1]},"
            "{\"name\":\"sw\",\"shape\":[1],\"datatype\":\"FP64\",\"data\":[1]},"
            "{\"name\":\"colour\",\"shape\":[1],\"datatype\":\"FP64\",\"data\":[1]}]}",
            "input 'colour': unknown input (the model takes sl, sw)");
    refused(&iris,
            "{\"inputs\":[{\"name\":\"sl\",\"shape\":[1],\"datatype\":\"FP64\",\"data\":[1]},"
            "{\"name\":\"sl\",\"shape\":[1],\"datatype\":\"FP64\",\"data\":[1]}]}",
            "input 'sl': given twice");
    refused(&iris, "{\"inputs\":[3]}", "inputs[0] is not an object");
    refused(&iris, "{\"inputs\":[{\"shape\":[1],\"datatype\":\"FP64\",\"data\":[1]}]}",
            "inputs[0]: 'name' is missing");
    refused(&iris, "{\"inputs\":[{\"name\":\"sl\",\"shape\":[1],\"datatype\":\"FP32\","
                   "\"data\":[1]}]}",
            "input 'sl': datatype FP32, the model takes FP64");
    refused(&iris, "{\"inputs\":[{\"name\":\"sl\",\"shape\":[1],\"datatype\":\"DOUBLE\","
                   "\"data\":[1]}]}",
            "input 'sl': unknown datatype 'DOUBLE'");
    refused(&iris, "{\"inputs\":[{\"name\":\"sl\",\"shape\":[1],\"data\":[1]}]}",
            "input 'sl': 'datatype' is missing");
    refused(&iris, "{\"inputs\":[{\"name\":\"sl\",\"datatype\":\"FP64\",\"data\":[1]}]}",
            "input 'sl': 'shape' is missing");
    refused(&iris, "{\"inputs\":[{\"name\":\"sl\",\"shape\":[1,1],\"datatype\":\"FP64\","
                   "\"data\":[1]}]}",
            "input 'sl': shape has 2 dimensions, the model takes [-1]");
    refused(&iris, "{\"inputs\":[{\"name\":\"sl\",\"shape\":[-2],\"datatype\":\"FP64\","
                   "\"data\":[1]}]}",
            "input 'sl': shape dimension 0 is not a whole number");
    refused(&iris, "{\"inputs\":[{\"name\":\"sl\",\"shape\":[0],\"datatype\":\"FP64\","
                   "\"data\":[]}]}",
            "input 'sl': shape [0] has no rows");
    refused(&iris, "{\"inputs\":[{\"name\":\"sl\",\"shape\":[1],\"datatype\":\"FP64\"}]}",
            "input 'sl': 'data' is missing");
    refused(&iris, "{\"inputs\":[{\"name\":\"sl\",\"shape\":[3],\"datatype\":\"FP64\","
                   "\"data\":[1,2]}]}",
            "input 'sl': data has 2 elements, shape [3] needs 3");
    refused(&iris, "{\"inputs\":[{\"name\":\"sl\",\"shape\":[2],\"datatype\":\"FP64\","
                   "\"data\":[1,\"x\"]}]}",
            "input 'sl': element 1: \"x\" is not a number (FP64)");
    refused(&iris, "{\"inputs\":[{\"name\":\"sl\",\"shape\":[3],\"datatype\":\"FP64\","
                   "\"data\":[[1],[2,3]]}]}",
            "input 'sl': nested data is not rectangular: a list of 2 where the first at depth 2 has 1");
    refused(&iris, "{\"inputs\":[{\"name\":\"sl\",\"shape\":[2],\"datatype\":\"FP64\","
                   "\"data\":[1,[2]]}]}",
            "input 'sl': nested data is not rectangular: values and lists mixed at depth 1");
    refused(&iris, "{\"inputs\":[{\"name\":\"sl\",\"shape\":[1],\"datatype\":\"FP64\","
                   "\"data\":1}]}",
            "input 'sl': data is not a list");
    refused(&iris, "{\"inputs\":[{\"name\":\"sl\",\"shape\":[1],\"datatype\":\"FP64\","
                   "\"data\":[1],\"parameters\":3}]}",
            "input 'sl': 'parameters' is not an object");
    refused(&iris,
            "{\"inputs\":[{\"name\":\"sl\",\"shape\":[2],\"datatype\":\"FP64\",\"data\":[1,2]},"
            "{\"name\":\"sw\",\"shape\":[3],\"datatype\":\"FP64\",\"data\":[1,2,3]}]}",
            "input 'sw': 3 rows (first dimension), input 'sl' has 2");
    refused(&iris,
            "{\"inputs\":[{\"name\":\"sl\",\"shape\":[1],\"datatype\":\"FP64\",\"data\":[1]},"
            "{\"name\":\"sw\",\"shape\":[1],\"datatype\":\"FP64\",\"data\":[1]}],"
            "\"outputs\":[{\"name\":\"colour\"}]}",
            "output 'colour': unknown output (the model gives species)");
    refused(&iris,
            "{\"inputs\":[{\"name\":\"sl\",\"shape\":[1],\"datatype\":\"FP64\",\"data\":[1]},"
            "{\"name\":\"sw\",\"shape\":[1],\"datatype\":\"FP64\",\"data\":[1]}],"
            "\"outputs\":[{\"name\":\"species\"},{\"name\":\"species\"}]}",
            "output 'species': asked for twice");
    refused(&iris,
            "{\"inputs\":[{\"name\":\"sl\",\"shape\":[1],\"datatype\":\"FP64\",\"data\":[1]},"
            "{\"name\":\"sw\",\"shape\":[1],\"datatype\":\"FP64\",\"data\":[1]}],"
            "\"outputs\":{}}",
            "'outputs' is not a list");
    refused(&iris, "{\"inputs\":[],\"inputs\":[]}", "malformed JSON");

    /* Shapes against a fixed dimension, and nested data that does not fit. */
    refused(&matrix, "{\"inputs\":[{\"name\":\"x\",\"shape\":[2,4],\"datatype\":\"FP32\","
                     "\"data\":[1,2,3,4,5,6,7,8]}]}",
            "input 'x': shape [2,4] does not match the model's [-1,3]");
    refused(&matrix, "{\"inputs\":[{\"name\":\"x\",\"shape\":[2,3],\"datatype\":\"FP32\","
                     "\"data\":[[1,2,3],[4,5]]}]}",
            "input 'x': nested data is not rectangular");
    refused(&matrix, "{\"inputs\":[{\"name\":\"x\",\"shape\":[2,3],\"datatype\":\"FP32\","
                     "\"data\":[[1,2,3]]}]}",
            "input 'x': data has 3 elements, shape [2,3] needs 6");
    refused(&matrix, "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,3],\"datatype\":\"FP32\","
                     "\"data\":[[1,2,[3]]]}]}",
            "input 'x': nested data is not rectangular: values and lists mixed at depth 2");
    refused(&matrix, "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,3],\"datatype\":\"FP32\","
                     "\"data\":[1e39,0,0]}]}",
            "input 'x': element 0: 1e+39 is out of range for FP32");
    refused(&matrix, "{\"inputs\":[{\"name\":\"x\",\"shape\":[4294967296,4294967296],"
                     "\"datatype\":\"FP32\",\"data\":[]}]}",
            "does not match");
}

/* One element of one datatype: accepted with these bytes, or refused. */
static void one(const char *dt, const char *value, const void *bytes, size_t len,
                const char *refusal)
{
    char body[2048], err[512] = "";
    size_t o = (size_t)snprintf(body, sizeof body, "{\"inputs\":[");
    for (int t = 0; t < DT_COUNT; t++) {
        const char *name = dtype_name((enum dtype)t);
        const char *v = strcmp(name, dt) == 0 ? value
                        : t == DT_BOOL        ? "true"
                        : t == DT_BYTES       ? "\"s\""
                                              : "1";
        o += (size_t)snprintf(body + o, sizeof body - o,
                              "%s{\"name\":\"%s\",\"datatype\":\"%s\",\"shape\":[1],\"data\":[%s]}",
                              t ? "," : "", name, name, v);
    }
    snprintf(body + o, sizeof body - o, "]}");
    struct infer_req r;
    int st = v2_parse_infer(&kinds, body, strlen(body), &r, err, sizeof err);
    if (refusal) {
        if (st != 400 || !strstr(err, refusal))
            fail_msg("%s %s: status %d '%s', expected 400 '%s'", dt, value, st, err, refusal);
        return;
    }
    if (st != 0)
        fail_msg("%s %s: status %d '%s'", dt, value, st, err);
    enum dtype t;
    assert_int_equal(dtype_parse(dt, &t), 0);
    assert_int_equal(r.inputs[t].nbytes, len);
    assert_memory_equal(r.inputs[t].data, bytes, len);
    infer_req_fini(&r);
}

static void test_datatypes(void **state)
{
    (void)state;
    uint8_t u8 = 255, b1 = 1;
    int8_t i8 = -128;
    uint16_t u16 = 65535;
    int16_t i16 = -32768;
    uint32_t u32 = 4294967295u;
    int32_t i32 = -2147483647 - 1;
    int64_t i64 = INT64_MIN;
    uint64_t u64 = 9007199254740993ull;
    float f32 = 0.5f;
    double f64v = -2.25;
    uint16_t h1 = 0x3c00, hmax = 0x7bff, hsub = 0x0001, hneg = 0xc000;
    one("BOOL", "true", &b1, 1, NULL);
    one("BOOL", "1", NULL, 0, "input 'BOOL': element 0: 1 is not a boolean (BOOL)");
    one("UINT8", "255", &u8, 1, NULL);
    one("UINT8", "300", NULL, 0, "input 'UINT8': element 0: 300 is out of range for UINT8");
    one("UINT8", "-1", NULL, 0, "-1 is out of range for UINT8");
    one("UINT8", "1.5", NULL, 0, "input 'UINT8': element 0: 1.5 is not an integer (UINT8)");
    one("INT8", "-128", &i8, 1, NULL);
    one("INT8", "128", NULL, 0, "128 is out of range for INT8");
    one("UINT16", "65535", &u16, 2, NULL);
    one("UINT16", "65536", NULL, 0, "65536 is out of range for UINT16");
    one("INT16", "-32768", &i16, 2, NULL);
    one("INT16", "-32769", NULL, 0, "is out of range for INT16");
    one("UINT32", "4294967295", &u32, 4, NULL);
    one("UINT32", "4294967296", NULL, 0, "is out of range for UINT32");
    one("INT32", "-2147483648", &i32, 4, NULL);
    one("INT32", "2147483648", NULL, 0, "is out of range for INT32");
    one("INT64", "-9223372036854775808", &i64, 8, NULL);
    one("INT64", "\"7\"", NULL, 0, "element 0: \"7\" is not an integer (INT64)");
    one("UINT64", "9007199254740993", &u64, 8, NULL);
    one("UINT64", "-5", NULL, 0, "-5 is out of range for UINT64");
    one("FP16", "1", &h1, 2, NULL);
    one("FP16", "65504", &hmax, 2, NULL);
    one("FP16", "-2.0", &hneg, 2, NULL);
    one("FP16", "5.960464477539063e-08", &hsub, 2, NULL);
    one("FP16", "70000", NULL, 0, "70000 is out of range for FP16");
    one("FP32", "0.5", &f32, 4, NULL);
    one("FP32", "null", NULL, 0, "null is not a number (FP32)");
    one("FP64", "-2.25", &f64v, 8, NULL);
    one("FP64", "false", NULL, 0, "false is not a number (FP64)");
    const uint8_t hello[] = {5, 0, 0, 0, 'h', 'e', 'l', 'l', 'o'};
    one("BYTES", "\"hello\"", hello, sizeof hello, NULL);
    one("BYTES", "5", NULL, 0, "input 'BYTES': element 0: 5 is not a string (BYTES)");
}

static json_t *render(char *text)
{
    assert_non_null(text);
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j)
        fail_msg("not JSON: %s", text);
    free(text);
    return j;
}

static void test_render(void **state)
{
    (void)state;
    struct infer_req req;
    char err[256];
    const char *body =
        "{\"id\":\"abc\",\"inputs\":["
        "{\"name\":\"sl\",\"shape\":[2],\"datatype\":\"FP64\",\"data\":[1,2]},"
        "{\"name\":\"sw\",\"shape\":[2],\"datatype\":\"FP64\",\"data\":[1,2]}]}";
    assert_int_equal(v2_parse_infer(&iris, body, strlen(body), &req, err, sizeof err), 0);
    struct infer_result res = {0};
    res.n_outputs = 2;
    struct tensor *s = &res.outputs[0];
    snprintf(s->name, sizeof s->name, "species");
    s->dtype = DT_INT64;
    s->rank = 1;
    s->shape[0] = 2;
    s->n = 2;
    s->nbytes = 16;
    s->data = malloc(16);
    int64_t v[2] = {0, 2};
    memcpy(s->data, v, 16);
    struct tensor *p = &res.outputs[1];
    snprintf(p->name, sizeof p->name, "label");
    p->dtype = DT_BYTES;
    p->rank = 1;
    p->shape[0] = 2;
    p->n = 2;
    const uint8_t lab[] = {1, 0, 0, 0, 'a', 2, 0, 0, 0, 'b', 'c'};
    p->nbytes = sizeof lab;
    p->data = malloc(sizeof lab);
    memcpy(p->data, lab, sizeof lab);

    json_t *j = render(v2_render_infer(&iris, &req, &res));
    assert_string_equal(json_string_value(json_object_get(j, "model_name")), "iris");
    assert_string_equal(json_string_value(json_object_get(j, "model_version")), "1.0.0");
    assert_string_equal(json_string_value(json_object_get(j, "id")), "abc");
    json_t *outs = json_object_get(j, "outputs");
    assert_int_equal(json_array_size(outs), 2);
    json_t *o0 = json_array_get(outs, 0);
    assert_string_equal(json_string_value(json_object_get(o0, "name")), "species");
    assert_string_equal(json_string_value(json_object_get(o0, "datatype")), "INT64");
    assert_int_equal(json_integer_value(json_array_get(json_object_get(o0, "shape"), 0)), 2);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(o0, "data"), 1)), 2);
    json_t *o1 = json_array_get(outs, 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(o1, "data"), 1)), "bc");
    json_decref(j);

    /* Only the outputs asked for; no id when none was given. */
    free(req.id);
    req.id = NULL;
    req.n_requested = 1;
    snprintf(req.requested[0], TENSOR_NAME_MAX, "label");
    j = render(v2_render_infer(&iris, &req, &res));
    assert_null(json_object_get(j, "id"));
    assert_int_equal(json_array_size(json_object_get(j, "outputs")), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(j, "outputs"), 0), "name")),
        "label");
    json_decref(j);
    infer_result_fini(&res);
    infer_req_fini(&req);

    j = render(v2_render_server_metadata());
    assert_string_equal(json_string_value(json_object_get(j, "name")), "ferry");
    assert_string_equal(json_string_value(json_object_get(j, "version")), FERRY_VERSION);
    assert_true(json_is_array(json_object_get(j, "extensions")));
    assert_int_equal(json_array_size(json_object_get(j, "extensions")), 0);
    json_decref(j);

    j = render(v2_render_model_metadata(&matrix));
    assert_string_equal(json_string_value(json_object_get(j, "name")), "mx");
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "versions"), 0)), "2");
    assert_string_equal(json_string_value(json_object_get(j, "platform")), "sklearn_joblib");
    json_t *in0 = json_array_get(json_object_get(j, "inputs"), 0);
    assert_string_equal(json_string_value(json_object_get(in0, "datatype")), "FP32");
    assert_int_equal(json_integer_value(json_array_get(json_object_get(in0, "shape"), 0)), -1);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(in0, "shape"), 1)), 3);
    assert_true(json_is_array(json_object_get(j, "outputs")));
    json_decref(j);

    j = render(v2_render_error("input 'x': missing"));
    assert_string_equal(json_string_value(json_object_get(j, "error")), "input 'x': missing");
    json_decref(j);
    j = render(v2_render_error("cut \xc3"));
    assert_string_equal(json_string_value(json_object_get(j, "error")), "cut ?");
    json_decref(j);
}

/* FP32 and FP16 outputs are written as the shortest decimal that reads
 * back as the same value: 0.1 comes back as 0.1, not 0.10000000149011612. */
static void test_render_narrow(void **state)
{
    (void)state;
    struct infer_req req;
    memset(&req, 0, sizeof req);
    struct infer_result res;
    memset(&res, 0, sizeof res);
    res.n_outputs = 2;
    struct tensor *f = &res.outputs[0];
    snprintf(f->name, sizeof f->name, "f");
    f->dtype = DT_FP32;
    f->rank = 1;
    f->shape[0] = 4;
    f->n = 4;
    const float fv[] = {0.1f, 1e-7f, 3.4e38f, -2.25f};
    f->nbytes = sizeof fv;
    f->data = malloc(sizeof fv);
    memcpy(f->data, fv, sizeof fv);
    struct tensor *h = &res.outputs[1];
    snprintf(h->name, sizeof h->name, "h");
    h->dtype = DT_FP16;
    h->rank = 1;
    h->shape[0] = 2;
    h->n = 2;
    const uint16_t hv[] = {0x2E66 /* nearest to 0.1 */, 0x7BFF /* 65504 */};
    h->nbytes = sizeof hv;
    h->data = malloc(sizeof hv);
    memcpy(h->data, hv, sizeof hv);
    json_t *j = render(v2_render_infer(&iris, &req, &res));
    json_t *fd = json_object_get(json_array_get(json_object_get(j, "outputs"), 0), "data");
    assert_true(json_real_value(json_array_get(fd, 0)) == 0.1);
    assert_true(json_real_value(json_array_get(fd, 1)) == 1e-7);
    assert_true(json_real_value(json_array_get(fd, 2)) == 3.4e38);
    assert_true(json_real_value(json_array_get(fd, 3)) == -2.25);
    json_t *hd = json_object_get(json_array_get(json_object_get(j, "outputs"), 1), "data");
    assert_true(json_real_value(json_array_get(hd, 0)) == 0.1);
    /* 65500 reads back as FP16's 65504 (numpy prints float16(65504) so). */
    assert_true(json_real_value(json_array_get(hd, 1)) == 65500.0);
    json_decref(j);
    infer_result_fini(&res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flat_and_nested),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_datatypes),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_render_narrow),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
