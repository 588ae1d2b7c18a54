/* modelcfg: the workload's spec (as the agent hands it over in JSON) into
 * what the model server serves; defaults, each refusal with the key named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "error.h"
#include "modelcfg.h"

static const char *iris_inputs =
    "\"inputs\":[{\"name\":\"sepal_length\",\"datatype\":\"FP64\",\"shape\":[-1]},"
    "{\"name\":\"sepal_width\",\"datatype\":\"FP64\",\"shape\":[-1]},"
    "{\"name\":\"petal_length\",\"datatype\":\"FP64\",\"shape\":[-1]},"
    "{\"name\":\"petal_width\",\"datatype\":\"FP64\",\"shape\":[-1]}]";

/* A spec around a model section: "model":{MODEL}. */
static int parse_model(const char *model, struct model_cfg *c)
{
    char buf[8192];
    snprintf(buf, sizeof buf, "{\"name\":\"iris\",\"version\":\"1.0.0\",\"kind\":\"model\","
                              "\"runtime\":\"model\",\"model\":{%s}}",
             model);
    return model_cfg_parse(buf, c);
}

static void refused(const char *model, const char *want)
{
    struct model_cfg c;
    err_clear();
    int rc = parse_model(model, &c);
    if (rc != FERRY_E_SPEC)
        fail_msg("'%s' gave %d, expected FERRY_E_SPEC", model, rc);
    if (!strstr(err_detail(), want))
        fail_msg("'%s': detail '%s' lacks '%s'", model, err_detail(), want);
    assert_null(strchr(err_detail(), '\n'));
}

static void test_defaults(void **state)
{
    (void)state;
    struct model_cfg c;
    char m[4096];
    snprintf(m, sizeof m, "\"format\":\"sklearn\",\"file\":\"model.joblib\",%s", iris_inputs);
    assert_int_equal(parse_model(m, &c), 0);
    assert_string_equal(c.name, "iris");
    assert_string_equal(c.version, "1.0.0");
    assert_int_equal(c.format, MODEL_SKLEARN);
    assert_string_equal(c.file, "model.joblib");
    assert_string_equal(c.method, "predict");
    assert_int_equal(c.n_inputs, 4);
    assert_string_equal(c.inputs[2].name, "petal_length");
    assert_int_equal(c.inputs[2].dtype, DT_FP64);
    assert_int_equal(c.inputs[2].rank, 1);
    assert_int_equal(c.inputs[2].shape[0], -1);
    assert_int_equal(c.n_outputs, 0);
    assert_string_equal(c.reference, "");
    assert_int_equal(c.workers, 1);
    assert_int_equal(c.max_batch, 1);
    assert_int_equal(c.max_delay_us, 0);
    assert_int_equal(c.drift_window, 1000);
    assert_true(c.drift_alert == 0.2);
    assert_int_equal(c.max_body, MODEL_BODY_MAX_DEFAULT);
}

static void test_full(void **state)
{
    (void)state;
    struct model_cfg c;
    char m[4096];
    snprintf(m, sizeof m,
             "\"format\":\"sklearn\",\"file\":\"m.pkl\",\"method\":\"predict_proba\",%s,"
             "\"outputs\":[{\"name\":\"proba\",\"datatype\":\"FP64\",\"shape\":[-1,3]}],"
             "\"card\":\"CARD.md\",\"pii\":false,\"reference\":\"reference.csv\","
             "\"workers\":2,\"batching\":{\"max_batch\":32,\"max_delay\":\"2ms\"},"
             "\"drift\":{\"window\":500,\"alert\":0.3},\"max_body\":\"1MiB\"",
             iris_inputs);
    assert_int_equal(parse_model(m, &c), 0);
    assert_string_equal(c.method, "predict_proba");
    assert_int_equal(c.n_outputs, 1);
    assert_int_equal(c.outputs[0].rank, 2);
    assert_int_equal(c.outputs[0].shape[1], 3);
    assert_string_equal(c.reference, "reference.csv");
    assert_int_equal(c.workers, 2);
    assert_int_equal(c.max_batch, 32);
    assert_int_equal(c.max_delay_us, 2000);
    assert_int_equal(c.drift_window, 500);
    assert_true(c.drift_alert == 0.3);
    assert_int_equal(c.max_body, 1u << 20);

    /* Microseconds, seconds, and a JSON number read as milliseconds; bare
     * digits in the text ferry.yaml gave (max_delay: 5) are seconds, as
     * ferry publish read them. */
    const struct {
        const char *delay;
        uint64_t us;
    } delays[] = {{"\"500us\"", 500}, {"\"1s\"", 1000000}, {"5", 5000}, {"\"0ms\"", 0},
                  {"\"5\"", 5000000}, {"\"10\"", 10000000}, {"\"0\"", 0}};
    for (size_t i = 0; i < sizeof delays / sizeof delays[0]; i++) {
        snprintf(m, sizeof m,
                 "\"format\":\"sklearn\",\"file\":\"m\",%s,"
                 "\"batching\":{\"max_batch\":4,\"max_delay\":%s}",
                 iris_inputs, delays[i].delay);
        assert_int_equal(parse_model(m, &c), 0);
        assert_int_equal(c.max_delay_us, delays[i].us);
    }
    /* As many workers as ferry.yaml allows. */
    snprintf(m, sizeof m, "\"format\":\"sklearn\",\"file\":\"m\",%s,\"workers\":256", iris_inputs);
    assert_int_equal(parse_model(m, &c), 0);
    assert_int_equal(c.workers, 256);
    /* max_body as a plain number of bytes. */
    snprintf(m, sizeof m, "\"format\":\"sklearn\",\"file\":\"m\",%s,\"max_body\":4096",
             iris_inputs);
    assert_int_equal(parse_model(m, &c), 0);
    assert_int_equal(c.max_body, 4096);
    /* max_body as ferry.yaml writes it (docs/manifest.md: 1Mi to 1Gi), the
     * text the model plugin passes on; and the flags' 16MiB form. */
    const struct {
        const char *text;
        size_t bytes;
    } sizes[] = {{"\"1Mi\"", 1u << 20}, {"\"16Mi\"", 16u << 20}, {"\"1Gi\"", 1u << 30},
                 {"\"2048Ki\"", 2u << 20}, {"\"500M\"", 500000000u}, {"\"3000000\"", 3000000u},
                 {"\"16MiB\"", 16u << 20}, {"\"64K\"", 64000u}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        snprintf(m, sizeof m, "\"format\":\"sklearn\",\"file\":\"m\",%s,\"max_body\":%s",
                 iris_inputs, sizes[i].text);
        assert_int_equal(parse_model(m, &c), 0);
        assert_int_equal(c.max_body, sizes[i].bytes);
    }
}

static void test_python_and_matrix(void **state)
{
    (void)state;
    struct model_cfg c;
    assert_int_equal(parse_model("\"format\":\"python\",\"entry\":\"serve.py:Model\","
                                 "\"inputs\":[{\"name\":\"x\",\"datatype\":\"BYTES\","
                                 "\"shape\":[-1]},{\"name\":\"img\",\"datatype\":\"UINT8\","
                                 "\"shape\":[-1,2,2]}]",
                                 &c),
                     0);
    assert_int_equal(c.format, MODEL_PYTHON);
    assert_string_equal(c.entry, "serve.py:Model");
    assert_int_equal(c.inputs[0].dtype, DT_BYTES);
    assert_int_equal(c.inputs[1].rank, 3);
    assert_int_equal(parse_model("\"format\":\"sklearn\",\"file\":\"m\",\"inputs\":[{\"name\":"
                                 "\"x\",\"datatype\":\"FP32\",\"shape\":[-1,4]}]",
                                 &c),
                     0);
    assert_int_equal(c.inputs[0].shape[1], 4);
}

static void test_refusals(void **state)
{
    (void)state;
    char m[4096];
    refused("\"file\":\"m\",\"inputs\":[]", "model.format: required");
    refused("\"format\":\"onnx\",\"file\":\"m\"", "model.format: 'onnx' is not sklearn or python");
    refused("\"format\":3", "model.format: must be");
    refused("\"format\":\"sklearn\"", "model.file: required");
    refused("\"format\":\"python\",\"file\":\"m\"", "model.entry: required");
    refused("\"format\":\"python\",\"entry\":\"serve.py\"", "model.entry: 'serve.py' is not FILE:CLASS");
    refused("\"format\":\"sklearn\",\"file\":\"\"", "model.file: must not be empty");
    /* python without inputs: served with each request's own; no drift. */
    {
        struct model_cfg c;
        assert_int_equal(parse_model("\"format\":\"python\",\"entry\":\"serve.py:Model\"", &c), 0);
        assert_int_equal(c.n_inputs, 0);
    }
    refused("\"format\":\"python\",\"entry\":\"serve.py:Model\",\"reference\":\"r.csv\"",
            "model.reference: needs model.inputs with format python");
    /* sklearn without inputs: the loaded estimator names them. */
    {
        struct model_cfg c;
        assert_int_equal(parse_model("\"format\":\"sklearn\",\"file\":\"m\"", &c), 0);
        assert_int_equal(c.n_inputs, 0);
        assert_int_equal(model_cfg_set_inputs(&c, "{\"inputs\":[{\"name\":\"input-0\",\"datatype\":\"FP64\",\"shape\":[-1,4]}]}"), 0);
        assert_int_equal(c.n_inputs, 1);
        assert_int_equal(c.inputs[0].rank, 2);
        assert_int_equal(c.inputs[0].shape[1], 4);
        /* A form scikit-learn does not take, or no inputs: refused, c untouched. */
        struct model_cfg d;
        assert_int_equal(parse_model("\"format\":\"sklearn\",\"file\":\"m\"", &d), 0);
        assert_int_equal(model_cfg_set_inputs(&d, "{\"inputs\":[{\"name\":\"a\",\"datatype\":\"FP64\",\"shape\":[-1,2]},{\"name\":\"b\",\"datatype\":\"FP64\",\"shape\":[-1]}]}"), FERRY_E_SPEC);
        assert_int_equal(d.n_inputs, 0);
        assert_int_equal(model_cfg_set_inputs(&d, "{\"inputs\":[]}"), FERRY_E_SPEC);
        assert_int_equal(model_cfg_set_inputs(&d, "not json"), FERRY_E_SPEC);
        assert_int_equal(d.n_inputs, 0);
    }
    snprintf(m, sizeof m, "\"format\":\"sklearn\",\"file\":\"m\",\"method\":\"transform\",%s",
             iris_inputs);
    refused(m, "model.method: 'transform' is not predict or predict_proba");
    refused("\"format\":\"sklearn\",\"file\":\"m\",\"inputs\":{}", "model.inputs: must be a list");
    refused("\"format\":\"sklearn\",\"file\":\"m\",\"inputs\":[3]", "model.inputs[0]: must be a mapping");
    refused("\"format\":\"sklearn\",\"file\":\"m\",\"inputs\":[{\"datatype\":\"FP64\",\"shape\":[-1]}]",
            "model.inputs[0].name: required");
    refused("\"format\":\"sklearn\",\"file\":\"m\",\"inputs\":[{\"name\":\"a\",\"shape\":[-1]}]",
            "model.inputs[0].datatype: required");
    refused("\"format\":\"sklearn\",\"file\":\"m\",\"inputs\":[{\"name\":\"a\",\"datatype\":"
            "\"FLOAT\",\"shape\":[-1]}]",
            "model.inputs[0].datatype: unknown datatype 'FLOAT'");
    refused("\"format\":\"sklearn\",\"file\":\"m\",\"inputs\":[{\"name\":\"a\",\"datatype\":"
            "\"FP64\"}]",
            "model.inputs[0].shape: required");
    refused("\"format\":\"sklearn\",\"file\":\"m\",\"inputs\":[{\"name\":\"a\",\"datatype\":"
            "\"FP64\",\"shape\":[0]}]",
            "model.inputs[0].shape: each dimension");
    refused("\"format\":\"sklearn\",\"file\":\"m\",\"inputs\":[{\"name\":\"a\",\"datatype\":"
            "\"FP64\",\"shape\":[-1]},{\"name\":\"a\",\"datatype\":\"FP64\",\"shape\":[-1]}]",
            "model.inputs[1].name: 'a' is declared twice");
    refused("\"format\":\"sklearn\",\"file\":\"m\",\"inputs\":[{\"name\":\"a\",\"datatype\":"
            "\"FP64\",\"shape\":[-1,2]},{\"name\":\"b\",\"datatype\":\"FP64\",\"shape\":[-1]}]",
            "model.inputs: sklearn takes 1-D inputs");
    refused("\"format\":\"sklearn\",\"file\":\"m\",\"inputs\":[{\"name\":\"a\",\"datatype\":"
            "\"FP64\",\"shape\":[-1]}],\"outputs\":[{\"name\":\"y\",\"datatype\":\"FP64\"}]",
            "model.outputs[0].shape: required");

    const char *tail[][2] = {
        {"\"workers\":0", "model.workers: 0 is not from 1 to 256"},
        {"\"workers\":257", "model.workers: 257 is not from 1 to 256"},
        {"\"batching\":{\"max_batch\":4,\"max_delay\":\"11\"}",
         "model.batching.max_delay: '11' is not"},
        {"\"workers\":\"2\"", "model.workers: must be a whole number"},
        {"\"workers\":1.5", "model.workers: must be a whole number"},
        {"\"batching\":[]", "model.batching: must be a mapping"},
        {"\"batching\":{\"max_batch\":0}", "model.batching.max_batch: 0 is not from 1"},
        {"\"batching\":{\"max_delay\":\"2x\"}", "model.batching.max_delay: '2x' is not a duration"},
        {"\"batching\":{\"max_delay\":\"us\"}", "model.batching.max_delay: 'us' is not a duration"},
        {"\"batching\":{\"max_delay\":\"-5us\"}", "model.batching.max_delay: '-5us' is not"},
        {"\"batching\":{\"max_delay\":\"11s\"}", "model.batching.max_delay: '11s' is not"},
        {"\"batching\":{\"max_delay\":true}", "model.batching.max_delay: must be a duration"},
        {"\"drift\":{\"window\":0}", "model.drift.window: 0 is not from 1"},
        {"\"drift\":{\"alert\":0}", "model.drift.alert: must be a number above 0"},
        {"\"drift\":{\"alert\":\"high\"}", "model.drift.alert: must be a number above 0"},
        {"\"max_body\":\"lots\"", "model.max_body: 'lots' is not a size"},
        {"\"max_body\":10", "model.max_body: 10 is not from 1024"},
        {"\"max_body\":\"2Gi\"", "model.max_body: '2Gi' is not a size from 1Ki to 1Gi"},
        {"\"max_body\":\"1k\"", "model.max_body: '1k' is not a size"},
        {"\"max_body\":\"16 Mi\"", "model.max_body: '16 Mi' is not a size"},
        {"\"reference\":5", "model.reference: must be a string"},
    };
    for (size_t i = 0; i < sizeof tail / sizeof tail[0]; i++) {
        snprintf(m, sizeof m, "\"format\":\"sklearn\",\"file\":\"m\",%s,%s", iris_inputs,
                 tail[i][0]);
        refused(m, tail[i][1]);
    }
}

static void test_spec_level(void **state)
{
    (void)state;
    struct model_cfg c;
    err_clear();
    assert_int_equal(model_cfg_parse("{not json", &c), FERRY_E_SPEC);
    assert_non_null(strstr(err_detail(), "spec: not JSON"));
    assert_int_equal(model_cfg_parse("[1]", &c), FERRY_E_SPEC);
    assert_int_equal(model_cfg_parse("{\"version\":\"1\",\"model\":{}}", &c), FERRY_E_SPEC);
    assert_non_null(strstr(err_detail(), "name: required"));
    assert_int_equal(model_cfg_parse("{\"name\":\"a\",\"model\":{}}", &c), FERRY_E_SPEC);
    assert_non_null(strstr(err_detail(), "version: required"));
    assert_int_equal(model_cfg_parse("{\"name\":\"a\",\"version\":\"1\"}", &c), FERRY_E_SPEC);
    assert_non_null(strstr(err_detail(), "model: required"));
    assert_int_equal(model_cfg_parse(NULL, &c), FERRY_E_SPEC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_python_and_matrix),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_spec_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
