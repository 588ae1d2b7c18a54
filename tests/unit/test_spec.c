/* ferry.yaml parsing: the fields land where the manifest expects them, and
 * every refusal names file, line and key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "spec.h"

/* Lines 1-6 of a valid app; tests append the line under test as line 7. */
#define BASE                                                                                   \
    "name: hello\n"                                                                            \
    "version: 1.0.0\n"                                                                         \
    "kind: app\n"                                                                              \
    "runtime: exec\n"                                                                          \
    "run:\n"                                                                                   \
    "  command: [./hello]\n"

static Ferry__Spec *parse_ok(const char *text)
{
    Ferry__Spec *spec = NULL;
    int rc = spec_parse("t.yaml", text, strlen(text), &spec);
    if (rc != 0)
        fail_msg("unexpected failure %d: %s", rc, err_detail());
    assert_non_null(spec);
    return spec;
}

/* The call fails with `code`, leaves *out alone and sets exactly `detail`. */
static void expect_error(const char *text, size_t len, int code, const char *detail)
{
    static Ferry__Spec untouched;
    Ferry__Spec *spec = &untouched;
    err_clear();
    int rc = spec_parse("t.yaml", text, len, &spec);
    assert_int_equal(rc, code);
    assert_ptr_equal(spec, &untouched);
    assert_string_equal(err_detail(), detail);
    assert_null(strchr(err_detail(), '\n'));
}

#define EXPECT_SPEC_ERROR(text, detail) expect_error((text), strlen(text), FERRY_E_SPEC, (detail))

static void test_full_app(void **state)
{
    (void)state;
    Ferry__Spec *s = parse_ok("# the hello service\n"
                              "name: hello\n"
                              "version: 1.2.0-rc.1\n"
                              "kind: app\n"
                              "runtime: exec\n"
                              "description: says hello\n"
                              "run:\n"
                              "  command: [./bin/hello, --port, \"8080\"]\n"
                              "  env:\n"
                              "    GREETING: hi there\n"
                              "    _N1: 5\n"
                              "health:\n"
                              "  http: {path: /healthz, status: 204}\n"
                              "  settle: 500ms\n"
                              "  deadline: 2m\n"
                              "  interval: 250ms\n"
                              "labels:\n"
                              "  team: edge\n"
                              "  tier: \"1\"\n");
    assert_string_equal(s->name, "hello");
    assert_string_equal(s->version, "1.2.0-rc.1");
    assert_string_equal(s->kind, "app");
    assert_string_equal(s->runtime, "exec");
    assert_string_equal(s->description, "says hello");
    assert_non_null(s->run);
    assert_int_equal(s->run->n_command, 3);
    assert_string_equal(s->run->command[0], "./bin/hello");
    assert_string_equal(s->run->command[1], "--port");
    assert_string_equal(s->run->command[2], "8080");
    assert_int_equal(s->run->n_env, 2);
    assert_string_equal(s->run->env[0]->name, "GREETING");
    assert_string_equal(s->run->env[0]->value, "hi there");
    assert_string_equal(s->run->env[1]->name, "_N1");
    assert_string_equal(s->run->env[1]->value, "5");
    assert_non_null(s->health);
    assert_non_null(s->health->http);
    assert_string_equal(s->health->http->path, "/healthz");
    assert_int_equal(s->health->http->status, 204);
    assert_int_equal(s->health->n_command, 0);
    assert_int_equal(s->health->settle_ms, 500);
    assert_int_equal(s->health->deadline_ms, 120000);
    assert_int_equal(s->health->interval_ms, 250);
    assert_int_equal(s->n_labels, 2);
    assert_string_equal(s->labels[0]->name, "team");
    assert_string_equal(s->labels[0]->value, "edge");
    assert_string_equal(s->labels[1]->name, "tier");
    assert_string_equal(s->labels[1]->value, "1");
    assert_null(s->model);
    assert_null(s->notebook);

    /* What publish does with it: encode, decode, same fields. */
    size_t n = ferry__spec__get_packed_size(s);
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    ferry__spec__pack(s, buf);
    Ferry__Spec *back = ferry__spec__unpack(NULL, n, buf);
    assert_non_null(back);
    assert_string_equal(back->run->command[2], "8080");
    assert_int_equal(back->health->deadline_ms, 120000);
    assert_string_equal(back->labels[1]->value, "1");
    ferry__spec__free_unpacked(back, NULL);
    free(buf);
    spec_free(s);
}

/* Lines 1-5 of a model served by runtime model; tests append from line 6. */
#define MBASE "name: iris\nversion: 1.0.0\nkind: model\nruntime: model\nmodel:\n"
/* sklearn, the estimator file and one input: lines 6-8. SK0 without the input. */
#define SK0 "  format: sklearn\n  file: model.joblib\n"
#define SK SK0 "  inputs: [{name: x, datatype: FP64, shape: [-1]}]\n"

static void test_model(void **state)
{
    (void)state;
    Ferry__Spec *s = parse_ok("name: iris\n"
                              "version: 3\n"
                              "kind: model\n"
                              "runtime: model\n"
                              "model:\n"
                              "  format: sklearn\n"
                              "  file: model.joblib\n"
                              "  method: predict_proba\n"
                              "  inputs:\n"
                              "    - {name: sepal_length, datatype: FP64, shape: [-1]}\n"
                              "    - {name: petal_width,  datatype: FP32, shape: [-1]}\n"
                              "  outputs:\n"
                              "    - name: species\n"
                              "      datatype: INT64\n"
                              "      shape: [-1]\n"
                              "  card: docs/MODEL_CARD.md\n"
                              "  pii: true\n"
                              "  reference: data/reference.csv\n"
                              "  workers: 2\n"
                              "  batching: {max_batch: 32, max_delay: 2ms}\n"
                              "  drift: {window: 1000, alert: 0.25}\n");
    assert_string_equal(s->version, "3");
    assert_null(s->run);    /* run is only required for apps */
    assert_null(s->health); /* a model needs no health: the plugin's readiness is the check */
    const Ferry__ModelSpec *m = s->model;
    assert_non_null(m);
    assert_string_equal(m->format, "sklearn");
    assert_string_equal(m->file, "model.joblib");
    assert_string_equal(m->method, "predict_proba");
    assert_int_equal(m->n_inputs, 2);
    assert_string_equal(m->inputs[0]->name, "sepal_length");
    assert_string_equal(m->inputs[0]->datatype, "FP64");
    assert_int_equal(m->inputs[0]->n_shape, 1);
    assert_int_equal(m->inputs[0]->shape[0], -1);
    assert_string_equal(m->inputs[1]->datatype, "FP32");
    assert_int_equal(m->inputs[1]->n_shape, 1);
    assert_int_equal(m->n_outputs, 1);
    assert_string_equal(m->outputs[0]->name, "species");
    assert_string_equal(m->outputs[0]->datatype, "INT64");
    assert_string_equal(m->card, "docs/MODEL_CARD.md");
    assert_true(m->pii);
    assert_string_equal(m->reference, "data/reference.csv");
    assert_int_equal(m->workers, 2);
    assert_int_equal(m->batching->max_batch, 32);
    assert_int_equal(m->batching->max_delay_us, 2000);
    assert_int_equal(m->drift->window, 1000);
    assert_true(m->drift->alert > 0.2499 && m->drift->alert < 0.2501);

    /* Through the manifest's encoding and back. */
    size_t n = ferry__spec__get_packed_size(s);
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    ferry__spec__pack(s, buf);
    Ferry__Spec *back = ferry__spec__unpack(NULL, n, buf);
    assert_non_null(back);
    assert_int_equal(back->model->inputs[0]->shape[0], -1);
    assert_string_equal(back->model->outputs[0]->name, "species");
    ferry__spec__free_unpacked(back, NULL);
    free(buf);
    spec_free(s);

    /* The other sklearn form: one 2-D input of whole rows. */
    s = parse_ok(MBASE SK0 "  inputs: [{name: rows, datatype: FP64, shape: [-1, 4]}]\n");
    assert_int_equal(s->model->inputs[0]->n_shape, 2);
    assert_int_equal(s->model->inputs[0]->shape[1], 4);
    spec_free(s);

    /* Defaults: method predict, one worker, no batching, no drift. */
    s = parse_ok(MBASE SK);
    assert_string_equal(s->model->method, "predict");
    assert_int_equal(s->model->workers, 1);
    assert_null(s->model->batching);
    assert_null(s->model->drift);
    assert_int_equal(s->model->n_inputs, 1);
    assert_int_equal(s->model->n_outputs, 0);
    assert_false(s->model->pii);
    spec_free(s);
    s = parse_ok(MBASE SK "  reference: ref.csv\n  drift: {}\n  batching: {max_batch: 8}\n");
    assert_int_equal(s->model->drift->window, 1000);
    assert_true(s->model->drift->alert > 0.199 && s->model->drift->alert < 0.201);
    assert_int_equal(s->model->batching->max_delay_us, 0);
    assert_int_equal(s->model->max_body, 0);
    spec_free(s);

    /* python: FILE:CLASS. */
    s = parse_ok(MBASE "  format: python\n  entry: src/serve.py:Model_2\n"
                       "  inputs: [{name: text, datatype: BYTES, shape: [-1]}]\n"
                       "  batching: {max_batch: 4, max_delay: 500us}\n  max_body: 64Mi\n");
    assert_int_equal(s->model->batching->max_delay_us, 500);
    assert_int_equal(s->model->max_body, 64u << 20);
    assert_string_equal(s->model->entry, "src/serve.py:Model_2");
    assert_string_equal(s->model->method, "");
    spec_free(s);

    /* Another runtime serving a kind model takes the descriptive keys. */
    s = parse_ok("name: m\nversion: '1'\nkind: model\nruntime: exec\nrun: {command: [./m]}\n"
                 "model:\n  card: CARD.md\n  pii: False\n"
                 "  inputs: [{name: x, datatype: BYTES, shape: [-1]}]\n");
    assert_false(s->model->pii);
    assert_string_equal(s->model->inputs[0]->datatype, "BYTES");
    spec_free(s);
}

/* Every model refusal names the file, the line and the key. */
static void test_model_refusals(void **state)
{
    (void)state;
    /* runtime model: the format and where the model is. */
    EXPECT_SPEC_ERROR("name: iris\nversion: 1\nkind: model\nruntime: model\n",
                      "t.yaml:1: key 'model': required key is missing (runtime model needs a "
                      "model section: format and file or entry)");
    EXPECT_SPEC_ERROR(MBASE "  file: model.joblib\n",
                      "t.yaml:6: key 'model.format': required key is missing (sklearn or python)");
    EXPECT_SPEC_ERROR(MBASE "  format: onnx\n",
                      "t.yaml:6: key 'model.format': must be one of sklearn, python");
    EXPECT_SPEC_ERROR(MBASE "  format: sklearn\n",
                      "t.yaml:6: key 'model.file': required key is missing (format sklearn "
                      "loads an estimator file)");
    EXPECT_SPEC_ERROR(MBASE "  format: python\n",
                      "t.yaml:6: key 'model.entry': required key is missing (format python "
                      "needs FILE:CLASS)");
    {
        /* The example as written: file, entry and method side by
         * side; the format says which is read. */
        const char *both = MBASE SK "  entry: serve.py:Model\n  method: predict\n";
        Ferry__Spec *sp = NULL;
        assert_int_equal(spec_parse("t.yaml", both, strlen(both), &sp), 0);
        assert_string_equal(sp->model->entry, "serve.py:Model");
        spec_free(sp);
        const char *py = MBASE "  format: python\n  entry: s.py:M\n  file: m.joblib\n"
                               "  method: predict\n";
        assert_int_equal(spec_parse("t.yaml", py, strlen(py), &sp), 0);
        spec_free(sp);
    }
    /* ... but still checked for form. */
    EXPECT_SPEC_ERROR(MBASE SK "  entry: serve.py\n",
                      "t.yaml:9: key 'model.entry': expected FILE:CLASS like serve.py:Model (a "
                      ".py file inside the artifact and a Python class name)");
    EXPECT_SPEC_ERROR(MBASE SK "  method: transform\n",
                      "t.yaml:9: key 'model.method': must be one of predict, predict_proba");
    /* Paths stay inside the artifact. */
    EXPECT_SPEC_ERROR(MBASE "  format: sklearn\n  file: ../model.joblib\n",
                      "t.yaml:7: key 'model.file': must be a relative path inside the artifact "
                      "(no leading '/', no '.' or '..', no backslash)");
    EXPECT_SPEC_ERROR(MBASE SK "  card: /etc/passwd\n",
                      "t.yaml:9: key 'model.card': must be a relative path inside the artifact "
                      "(no leading '/', no '.' or '..', no backslash)");
    EXPECT_SPEC_ERROR(MBASE SK "  reference: a/./b.csv\n",
                      "t.yaml:9: key 'model.reference': must be a relative path inside the "
                      "artifact (no leading '/', no '.' or '..', no backslash)");
    static const char *const bad_entries[] = {"serve.py", "serve.py:", ":Model", "serve.txt:M",
                                              "../serve.py:Model", "serve.py:1Model",
                                              "serve.py:Mo-del", "/abs/s.py:M"};
    for (size_t i = 0; i < sizeof bad_entries / sizeof *bad_entries; i++) {
        char text[256], want[300];
        snprintf(text, sizeof text, MBASE "  format: python\n  entry: \"%s\"\n", bad_entries[i]);
        snprintf(want, sizeof want, "t.yaml:7: key 'model.entry': expected FILE:CLASS like "
                                    "serve.py:Model (a .py file inside the artifact and a "
                                    "Python class name)");
        EXPECT_SPEC_ERROR(text, want);
    }
    /* Tensors. */
    EXPECT_SPEC_ERROR(MBASE SK0 "  inputs: [a, b]\n",
                      "t.yaml:8: key 'model.inputs[0]': expected a mapping like {name: x, "
                      "datatype: FP64, shape: [-1]}");
    EXPECT_SPEC_ERROR(MBASE SK0 "  inputs: {name: a}\n",
                      "t.yaml:8: key 'model.inputs': expected a list of mappings");
    EXPECT_SPEC_ERROR(MBASE SK0 "  inputs: []\n",
                      "t.yaml:8: key 'model.inputs': must not be an empty list");
    EXPECT_SPEC_ERROR(MBASE SK0 "  inputs:\n    - {name: a, datatype: FP64}\n",
                      "t.yaml:9: key 'model.inputs[0].shape': required key is missing");
    EXPECT_SPEC_ERROR(MBASE SK0 "  inputs:\n    - {name: a, datatype: FP64, shape: [-1]}\n"
                      "    - {name: b, datatype: FLOAT, shape: [-1]}\n",
                      "t.yaml:10: key 'model.inputs[1].datatype': must be one of BOOL, UINT8, "
                      "UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES");
    EXPECT_SPEC_ERROR(MBASE SK0 "  inputs:\n    - {name: a, datatype: FP64, shape: [-1]}\n"
                      "    - {name: a, datatype: FP32, shape: [-1]}\n",
                      "t.yaml:10: key 'model.inputs[1].name': duplicate name 'a' (also inputs[0])");
    EXPECT_SPEC_ERROR(MBASE SK "  outputs:\n    - {name: y, datatype: FP64, shape: [-1]}\n"
                      "    - {name: y, datatype: FP64, shape: [-1]}\n",
                      "t.yaml:11: key 'model.outputs[1].name': duplicate name 'y' (also outputs[0])");
    EXPECT_SPEC_ERROR(MBASE SK0 "  inputs: [{name: a, datatype: FP64, shape: [-1], unit: cm}]\n",
                      "t.yaml:8: key 'model.inputs[0].unit': unknown key");
    EXPECT_SPEC_ERROR(MBASE SK0 "  inputs: [{name: 'a b', datatype: FP64, shape: [-1]}]\n",
                      "t.yaml:8: key 'model.inputs[0].name': must be 1-63 characters of A-Z a-z "
                      "0-9 _ . -, not starting with '.' or '-'");
    static const char *const bad_shapes[] = {"[]", "-1", "[-2]", "[1.5]", "['3']", "[x]",
                                             "[2147483648]", "[1, 2, 3, 4, 5, 6, 7, 8, 9]"};
    for (size_t i = 0; i < sizeof bad_shapes / sizeof *bad_shapes; i++) {
        char text[256];
        snprintf(text, sizeof text, MBASE SK0 "  inputs: [{name: a, datatype: FP64, shape: %s}]\n",
                 bad_shapes[i]);
        Ferry__Spec *sp = NULL;
        err_clear();
        assert_int_equal(spec_parse("t.yaml", text, strlen(text), &sp), FERRY_E_SPEC);
        assert_non_null(strstr(err_detail(), "t.yaml:8: key 'model.inputs[0].shape': "));
    }
    /* runtime model checks requests against declared inputs, in a form
     * scikit-learn takes; a sklearn estimator may leave them to the fitted
     * estimator (only format and file are required), a python model not. */
    {
        const char *min = MBASE SK0;
        Ferry__Spec *sp = NULL;
        assert_int_equal(spec_parse("t.yaml", min, strlen(min), &sp), 0);
        assert_int_equal(sp->model->n_inputs, 0);
        assert_string_equal(sp->model->method, "predict");
        spec_free(sp);
    }
    {
        /* Only format and entry are required for python too: the server
         * then takes the inputs each request names. */
        const char *min = MBASE "  format: python\n  entry: serve.py:Model\n";
        Ferry__Spec *sp = NULL;
        assert_int_equal(spec_parse("t.yaml", min, strlen(min), &sp), 0);
        assert_int_equal(sp->model->n_inputs, 0);
        spec_free(sp);
    }
    EXPECT_SPEC_ERROR(MBASE "  format: python\n  entry: serve.py:Model\n  reference: r.csv\n",
                      "t.yaml:8: key 'model.reference': needs model.inputs with format python "
                      "(drift is measured per declared input)");
    EXPECT_SPEC_ERROR(MBASE SK0 "  inputs:\n    - {name: a, datatype: FP64, shape: [-1]}\n"
                      "    - {name: b, datatype: FP64, shape: [-1, 2]}\n",
                      "t.yaml:9: key 'model.inputs': format sklearn takes 1-D inputs (one per "
                      "feature column, shape [-1]) or a single 2-D input (shape [-1, N])");
    EXPECT_SPEC_ERROR(MBASE SK0 "  inputs: [{name: a, datatype: BYTES, shape: [-1, 3]}]\n",
                      "t.yaml:8: key 'model.inputs': a 2-D sklearn input cannot be BYTES");
    EXPECT_SPEC_ERROR(MBASE SK "  batching: {max_batch: 4, max_delay: 20000000us}\n",
                      "t.yaml:9: key 'model.batching.max_delay': must be at most 10s");
    EXPECT_SPEC_ERROR(MBASE SK "  batching: {max_batch: 4, max_delay: 5xus}\n",
                      "t.yaml:9: key 'model.batching.max_delay': expected a duration like "
                      "500us, 2ms or 1s");
    EXPECT_SPEC_ERROR(MBASE SK "  max_body: 2Gi\n",
                      "t.yaml:9: key 'model.max_body': must be at most 1Gi");
    EXPECT_SPEC_ERROR(MBASE SK "  max_body: 1K\n",
                      "t.yaml:9: key 'model.max_body': must be at least 1Mi");
    /* Numbers. */
    EXPECT_SPEC_ERROR(MBASE SK "  workers: 0\n",
                      "t.yaml:9: key 'model.workers': expected an integer from 1 to 256");
    EXPECT_SPEC_ERROR(MBASE SK "  workers: two\n",
                      "t.yaml:9: key 'model.workers': expected an integer from 1 to 256");
    EXPECT_SPEC_ERROR(MBASE SK "  batching: {max_delay: 2ms}\n",
                      "t.yaml:9: key 'model.batching.max_batch': required key is missing");
    EXPECT_SPEC_ERROR(MBASE SK "  batching: {max_batch: 0}\n",
                      "t.yaml:9: key 'model.batching.max_batch': expected an integer from 1 to 4096");
    EXPECT_SPEC_ERROR(MBASE SK "  batching: {max_batch: 4, max_delay: 2 ms}\n",
                      "t.yaml:9: key 'model.batching.max_delay': expected a duration like "
                      "500us, 2ms or 1s");
    EXPECT_SPEC_ERROR(MBASE SK "  batching: {max_batch: 4, max_delay: 11s}\n",
                      "t.yaml:9: key 'model.batching.max_delay': must be at most 10s");
    EXPECT_SPEC_ERROR(MBASE SK "  batching: 32\n",
                      "t.yaml:9: key 'model.batching': expected a mapping");
    EXPECT_SPEC_ERROR(MBASE SK "  reference: r.csv\n  drift: {alert: 0}\n",
                      "t.yaml:10: key 'model.drift.alert': expected a number greater than zero, "
                      "like 0.2");
    EXPECT_SPEC_ERROR(MBASE SK "  reference: r.csv\n  drift: {alert: '0.2'}\n",
                      "t.yaml:10: key 'model.drift.alert': expected a number greater than zero, "
                      "like 0.2");
    EXPECT_SPEC_ERROR(MBASE SK "  reference: r.csv\n  drift: {alert: .inf}\n",
                      "t.yaml:10: key 'model.drift.alert': expected a number greater than zero, "
                      "like 0.2");
    EXPECT_SPEC_ERROR(MBASE SK "  reference: r.csv\n  drift: {window: 5}\n",
                      "t.yaml:10: key 'model.drift.window': expected an integer from 10 to 10000000");
    EXPECT_SPEC_ERROR(MBASE SK "  drift: {alert: 0.2}\n",
                      "t.yaml:9: key 'model.drift': needs model.reference (the training inputs "
                      "drift is measured against)");
    EXPECT_SPEC_ERROR(MBASE SK "  pii: yes\n", "t.yaml:9: key 'model.pii': expected true or false");
    EXPECT_SPEC_ERROR(MBASE SK "  framework: onnx\n",
                      "t.yaml:9: key 'model.framework': unknown key");
    EXPECT_SPEC_ERROR(MBASE SK "  file: other.joblib\n",
                      "t.yaml:9: key 'model.file': duplicate key");
    /* Serving keys are runtime model's; the section is a model's. */
    EXPECT_SPEC_ERROR("name: m\nversion: 1\nkind: model\nruntime: exec\nrun: {command: [./m]}\n"
                      "model:\n  card: C.md\n  workers: 2\n",
                      "t.yaml:8: key 'model.workers': applies to runtime model only (this is "
                      "runtime exec)");
    EXPECT_SPEC_ERROR("name: m\nversion: 1\nkind: model\nruntime: exec\nrun: {command: [./m]}\n"
                      "model: {format: sklearn, file: m.joblib}\n",
                      "t.yaml:6: key 'model.format': applies to runtime model only (this is "
                      "runtime exec)");
    EXPECT_SPEC_ERROR(BASE "model: {pii: true}\n",
                      "t.yaml:7: key 'model': a section for kind or runtime model, but this is "
                      "kind app, runtime exec");
}

static void test_notebook(void **state)
{
    (void)state;
    Ferry__Spec *s = parse_ok("name: weekly-report\n"
                              "version: 2024.06.1\n"
                              "kind: notebook\n"
                              "runtime: notebook\n"
                              "notebook:\n"
                              "  kernel: python3\n"
                              "  notebook: report.ipynb\n"
                              "  schedule: \"0 6 * * 1\"\n");
    assert_non_null(s->notebook);
    assert_string_equal(s->notebook->kernel, "python3");
    assert_string_equal(s->notebook->notebook, "report.ipynb");
    assert_string_equal(s->notebook->schedule, "0 6 * * 1");
    spec_free(s);

    /* A run's settings: parameters of any YAML type, a timeout. */
#define NB "name: r\nversion: 1\nkind: notebook\nruntime: notebook\nnotebook:\n"
    s = parse_ok(NB "  notebook: r.ipynb\n  schedule: \"@every 5s\"\n"
                 "  parameters: {region: eu, n: 3, deep: {a: [1, 2]}}\n  timeout: 90s\n");
    assert_int_equal(s->notebook->timeout_ms, 90000);
    assert_string_equal(s->notebook->schedule, "@every 5s");
    spec_free(s);
    EXPECT_SPEC_ERROR(NB "  notebook: r.ipynb\n  parameters: {2x: 1}\n",
                      "t.yaml:7: key 'notebook.parameters.2x': a parameter name is a Python "
                      "identifier (letters, digits, _)");
    EXPECT_SPEC_ERROR(NB "  notebook: r.ipynb\n  parameters: x\n",
                      "t.yaml:7: key 'notebook.parameters': expected a mapping");
    EXPECT_SPEC_ERROR(NB "  notebook: r.ipynb\n  timeout: 0s\n",
                      "t.yaml:7: key 'notebook.timeout': must be greater than zero");
    EXPECT_SPEC_ERROR(NB "  notebook: r.ipynb\n  schedule: \"@every 0s\"\n",
                      "t.yaml:7: key 'notebook.schedule': @every '0s': must be from 1s to 366d");
    EXPECT_SPEC_ERROR(NB "  kernel: python3\n  timeout: 1m\n",
                      "t.yaml:7: key 'notebook.timeout': needs notebook.notebook (the .ipynb "
                      "to run)");
    /* notebook.env: as run.env, without the names the plugin sets itself;
     * kernels and runs alike, so no notebook.notebook is needed. */
    s = parse_ok(NB "  env: {A_1: x, N: 4}\n");
    assert_int_equal(s->notebook->n_env, 2);
    assert_string_equal(s->notebook->env[0]->name, "A_1");
    assert_string_equal(s->notebook->env[0]->value, "x");
    assert_string_equal(s->notebook->env[1]->value, "4");
    spec_free(s);
    EXPECT_SPEC_ERROR(NB "  env: {HOME: /root}\n",
                      "t.yaml:6: key 'notebook.env.HOME': PATH, HOME and JUPYTER_RUNTIME_DIR are "
                      "set by the notebook plugin");
    EXPECT_SPEC_ERROR(NB "  env: {JUPYTER_RUNTIME_DIR: /x}\n",
                      "t.yaml:6: key 'notebook.env.JUPYTER_RUNTIME_DIR': PATH, HOME and "
                      "JUPYTER_RUNTIME_DIR are set by the notebook plugin");
    EXPECT_SPEC_ERROR(NB "  env: {a-b: x}\n",
                      "t.yaml:6: key 'notebook.env.a-b': variable names must match "
                      "[A-Za-z_][A-Za-z0-9_]*");
#undef NB
}

static void test_version_scalars(void **state)
{
    (void)state;
    /* Unquoted numbers are taken as written, not as numbers. */
    static const struct {
        const char *yaml, *want;
    } cases[] = {{"1.0", "1.0"}, {"2", "2"}, {"1.10", "1.10"}, {"'1.0'", "1.0"},
                 {"\"0.9+build.7\"", "0.9+build.7"}, {"!!str 1.0", "1.0"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char text[256];
        snprintf(text, sizeof text,
                 "name: v\nversion: %s\nkind: app\nruntime: exec\nrun: {command: [x]}\n",
                 cases[i].yaml);
        Ferry__Spec *s = parse_ok(text);
        assert_string_equal(s->version, cases[i].want);
        spec_free(s);
    }
}

static void test_health_defaults_and_durations(void **state)
{
    (void)state;
    Ferry__Spec *s = parse_ok(BASE "health:\n  http: {path: /}\n");
    assert_int_equal(s->health->http->status, 200);
    assert_int_equal(s->health->deadline_ms, 30000);
    assert_int_equal(s->health->interval_ms, 1000);
    assert_int_equal(s->health->settle_ms, 0);
    spec_free(s);

    s = parse_ok(BASE "health:\n  command: [curl, -fs, localhost]\n  deadline: 10\n"
                      "  settle: 1h\n  interval: 24h\n");
    assert_null(s->health->http);
    assert_int_equal(s->health->n_command, 3);
    assert_string_equal(s->health->command[1], "-fs");
    assert_int_equal(s->health->deadline_ms, 10000); /* bare number: seconds */
    assert_int_equal(s->health->settle_ms, 3600000);
    assert_int_equal(s->health->interval_ms, 86400000);
    spec_free(s);

    EXPECT_SPEC_ERROR(BASE "health: {deadline: 25h}\n",
                      "t.yaml:7: key 'health.deadline': must be at most 24h");
    EXPECT_SPEC_ERROR(BASE "health: {settle: 99999999999999999999s}\n",
                      "t.yaml:7: key 'health.settle': must be at most 24h");
    EXPECT_SPEC_ERROR(BASE "health: {interval: 0}\n",
                      "t.yaml:7: key 'health.interval': must be greater than zero");
    EXPECT_SPEC_ERROR(BASE "health:\n  deadline: 10 s\n",
                      "t.yaml:8: key 'health.deadline': expected a duration like 500ms, "
                      "10s, 2m, 1h or a number of seconds");
    EXPECT_SPEC_ERROR(BASE "health:\n  deadline: 1.5s\n",
                      "t.yaml:8: key 'health.deadline': expected a duration like 500ms, "
                      "10s, 2m, 1h or a number of seconds");
}

static void test_missing_keys(void **state)
{
    (void)state;
    EXPECT_SPEC_ERROR("name: hello\nkind: app\nruntime: exec\nrun: {command: [x]}\n",
                      "t.yaml:1: key 'version': required key is missing");
    EXPECT_SPEC_ERROR("name: hello\nversion: 1\nkind: app\nruntime: exec\n",
                      "t.yaml:1: key 'run': required key is missing (kind app needs a run "
                      "command)");
    EXPECT_SPEC_ERROR("name: hello\nversion: 1\nkind: app\nruntime: exec\nrun:\n"
                      "  env: {A: b}\n",
                      "t.yaml:6: key 'run.command': required key is missing");
    EXPECT_SPEC_ERROR(BASE "health:\n  http:\n    status: 200\n",
                      "t.yaml:9: key 'health.http.path': required key is missing");
}

static void test_unknown_keys(void **state)
{
    (void)state;
    EXPECT_SPEC_ERROR("name: hello\nversion: 1\ncolour: blue\n",
                      "t.yaml:3: key 'colour': unknown key");
    EXPECT_SPEC_ERROR(BASE "health:\n  htp: {path: /}\n",
                      "t.yaml:8: key 'health.htp': unknown key");
    EXPECT_SPEC_ERROR(MBASE SK "  size: 3\n", "t.yaml:9: key 'model.size': unknown key");
    /* A hostile key is shown on one line and cut short. */
    EXPECT_SPEC_ERROR("\"a\\nb\": 1\n", "t.yaml:1: key 'a?b': unknown key");
    char text[400];
    memset(text, 'k', 200);
    strcpy(text + 200, ": 1\n");
    err_clear();
    Ferry__Spec *s = NULL;
    assert_int_equal(spec_parse("t.yaml", text, strlen(text), &s), FERRY_E_SPEC);
    assert_non_null(strstr(err_detail(), "kkk...': unknown key"));
    assert_true(strlen(err_detail()) < 120);
}

static void test_bad_values(void **state)
{
    (void)state;
    EXPECT_SPEC_ERROR("name: hello\nkind: apps\n",
                      "t.yaml:2: key 'kind': must be one of app, model, notebook");
    EXPECT_SPEC_ERROR("name: hello\nversion: 1\nkind: app\nruntime: docker\n",
                      "t.yaml:4: key 'runtime': must be one of exec, oci, model, notebook");
    EXPECT_SPEC_ERROR("name: Hello\n",
                      "t.yaml:1: key 'name': must be 1-64 characters of a-z 0-9 . _ -, "
                      "starting with a letter or digit");
    EXPECT_SPEC_ERROR("name: -x\n",
                      "t.yaml:1: key 'name': must be 1-64 characters of a-z 0-9 . _ -, "
                      "starting with a letter or digit");
    EXPECT_SPEC_ERROR("name: x\nversion: v 1\n",
                      "t.yaml:2: key 'version': must be 1-64 characters of A-Z a-z 0-9 . _ "
                      "+ -, starting with a letter or digit");
    EXPECT_SPEC_ERROR("name: x\nversion:\n", "t.yaml:2: key 'version': expected a string");
    EXPECT_SPEC_ERROR("name: [x]\n", "t.yaml:1: key 'name': expected a string");
    EXPECT_SPEC_ERROR("name: \"a\\0b\"\n", "t.yaml:1: key 'name': contains a NUL character");
    EXPECT_SPEC_ERROR(BASE "health: {http: {path: healthz}}\n",
                      "t.yaml:7: key 'health.http.path': must start with '/'");
    EXPECT_SPEC_ERROR(BASE "health: {http: {path: \"/a b\"}}\n",
                      "t.yaml:7: key 'health.http.path': must not contain spaces or control "
                      "characters");
    EXPECT_SPEC_ERROR(BASE "health: {http: {path: /, status: 600}}\n",
                      "t.yaml:7: key 'health.http.status': expected an integer from 100 to 599");
    EXPECT_SPEC_ERROR(BASE "health: {http: {path: /, status: 99}}\n",
                      "t.yaml:7: key 'health.http.status': expected an integer from 100 to 599");
    EXPECT_SPEC_ERROR(BASE "health: {http: {path: /, status: \"200\"}}\n",
                      "t.yaml:7: key 'health.http.status': expected an integer from 100 to 599");
    EXPECT_SPEC_ERROR(BASE "health:\n  http: {path: /}\n  command: [true]\n",
                      "t.yaml:8: key 'health': give either http or command, not both");
    EXPECT_SPEC_ERROR(MBASE SK "  card: \"\"\n",
                      "t.yaml:9: key 'model.card': must be a relative path inside the artifact "
                      "(no leading '/', no '.' or '..', no backslash)");
}

#define JOB                                                                                    \
    "name: hello\n"                                                                            \
    "version: 1.0.0\n"                                                                         \
    "kind: app\n"                                                                              \
    "runtime: exec\n"                                                                          \
    "run:\n"                                                                                   \
    "  command: [./hello]\n"                                                                   \
    "  mode: job\n"

static void test_jobs(void **state)
{
    (void)state;
    Ferry__Spec *s = parse_ok(BASE);
    assert_string_equal(s->run->mode, ""); /* a service; the encoding stays as before */
    assert_int_equal(s->run->retries, 0);
    assert_string_equal(s->schedule, "");
    spec_free(s);
    s = parse_ok(JOB "  retries: 2\nschedule: \"*/5 * * * 1-5\"\n");
    assert_string_equal(s->run->mode, "job");
    assert_int_equal(s->run->retries, 2);
    assert_string_equal(s->schedule, "*/5 * * * 1-5");
    spec_free(s);
    s = parse_ok(JOB "schedule: \"@every 30s\"\n");
    assert_string_equal(s->schedule, "@every 30s");
    spec_free(s);
    s = parse_ok(BASE "  mode: service\n");
    assert_string_equal(s->run->mode, "service");
    spec_free(s);

    EXPECT_SPEC_ERROR(BASE "  mode: batch\n", "t.yaml:7: key 'run.mode': must be one of service, job");
    EXPECT_SPEC_ERROR(BASE "  retries: 3\n",
                      "t.yaml:7: key 'run.retries': applies to run.mode job only (a service is "
                      "restarted whenever it exits)");
    EXPECT_SPEC_ERROR(JOB "  retries: -1\n",
                      "t.yaml:8: key 'run.retries': expected an integer from 0 to 1000");
    EXPECT_SPEC_ERROR(BASE "schedule: \"@every 30s\"\n",
                      "t.yaml:7: key 'schedule': a schedule needs run.mode: job (a service runs "
                      "all the time)");
    EXPECT_SPEC_ERROR("name: hello\nversion: 1.0.0\nkind: model\nruntime: model\n"
                      "schedule: \"0 * * * *\"\n",
                      "t.yaml:5: key 'schedule': a schedule needs run.mode: job (a service runs "
                      "all the time)");
    EXPECT_SPEC_ERROR(JOB "schedule: \"61 * * * *\"\n",
                      "t.yaml:8: key 'schedule': minute field '61': 61 is out of range 0-59");
    EXPECT_SPEC_ERROR(JOB "schedule: \"* * *\"\n",
                      "t.yaml:8: key 'schedule': '* * *': expected 5 fields (minute hour "
                      "day-of-month month day-of-week) or @every DURATION");
    EXPECT_SPEC_ERROR(JOB "schedule: \"@every 0s\"\n",
                      "t.yaml:8: key 'schedule': @every '0s': must be from 1s to 366d");
}

static void test_resources_and_user(void **state)
{
    (void)state;
    Ferry__Spec *s = parse_ok(BASE "  user: nobody\n"
                                   "resources: {memory: 256Mi, pids: 128, cpu: 0.5}\n");
    assert_string_equal(s->run->user, "nobody");
    assert_non_null(s->resources);
    assert_int_equal(s->resources->memory_bytes, 256ull << 20);
    assert_int_equal(s->resources->pids, 128);
    assert_int_equal(s->resources->cpu_millis, 500);
    spec_free(s);

    static const struct {
        const char *text;
        uint64_t bytes;
    } sizes[] = {{"1048576", 1048576}, {"2Ki", 0}, {"64Mi", 64ull << 20}, {"1Gi", 1ull << 30},
                 {"500M", 500000000ull}, {"2G", 2000000000ull}, {"4000K", 4000000}};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        char text[256];
        snprintf(text, sizeof text, BASE "resources: {memory: %s}\n", sizes[i].text);
        if (!sizes[i].bytes) {
            EXPECT_SPEC_ERROR(text, "t.yaml:7: key 'resources.memory': must be at least 1Mi");
            continue;
        }
        s = parse_ok(text);
        assert_int_equal(s->resources->memory_bytes, sizes[i].bytes);
        assert_int_equal(s->resources->pids, 0);
        assert_int_equal(s->resources->cpu_millis, 0);
        spec_free(s);
    }
    static const struct {
        const char *text;
        uint32_t millis;
    } cpus[] = {{"1", 1000}, {"2.25", 2250}, {"0.001", 1}, {"1024", 1024000}, {"0.5", 500}};
    for (size_t i = 0; i < sizeof cpus / sizeof *cpus; i++) {
        char text[256];
        snprintf(text, sizeof text, BASE "resources: {cpu: %s}\n", cpus[i].text);
        s = parse_ok(text);
        assert_int_equal(s->resources->cpu_millis, cpus[i].millis);
        spec_free(s);
    }

    const char *size_bad = "expected a size like 256Mi, 1Gi, 500M or a number of bytes";
    const char *bad_sizes[] = {"256MB", "256mi", "256 Mi", "1.5Gi", "-1Mi", "Mi", "1Ti", "0x10"};
    for (size_t i = 0; i < sizeof bad_sizes / sizeof *bad_sizes; i++) {
        char text[256], want[256];
        snprintf(text, sizeof text, BASE "resources:\n  memory: \"%s\"\n", bad_sizes[i]);
        snprintf(want, sizeof want, "t.yaml:8: key 'resources.memory': %s", size_bad);
        EXPECT_SPEC_ERROR(text, want);
    }
    EXPECT_SPEC_ERROR(BASE "resources: {memory: 2048Gi}\n",
                      "t.yaml:7: key 'resources.memory': must be at most 1Ti");
    EXPECT_SPEC_ERROR(BASE "resources: {memory: 99999999999999999999999}\n",
                      "t.yaml:7: key 'resources.memory': must be at most 1Ti");
    EXPECT_SPEC_ERROR(BASE "resources: {memory: [1]}\n",
                      "t.yaml:7: key 'resources.memory': expected a size like 256Mi, 1Gi, 500M "
                      "or a number of bytes");

    const char *cpu_bad = "expected a number of cores like 0.5, 1 or 2.25";
    const char *bad_cpus[] = {"-1", ".5", "1.", "1e3", "500m", "1_5", "\"0.5\"", "0.5 "};
    for (size_t i = 0; i < sizeof bad_cpus / sizeof *bad_cpus; i++) {
        char text[256], want[256];
        snprintf(text, sizeof text, BASE "resources: {cpu: %s}\n", bad_cpus[i]);
        snprintf(want, sizeof want, "t.yaml:7: key 'resources.cpu': %s", cpu_bad);
        if (strcmp(bad_cpus[i], "0.5 ") == 0) /* YAML trims it: a valid 0.5 */
            continue;
        EXPECT_SPEC_ERROR(text, want);
    }
    EXPECT_SPEC_ERROR(BASE "resources: {cpu: 0}\n",
                      "t.yaml:7: key 'resources.cpu': must be greater than zero");
    EXPECT_SPEC_ERROR(BASE "resources: {cpu: 0.000}\n",
                      "t.yaml:7: key 'resources.cpu': must be greater than zero");
    EXPECT_SPEC_ERROR(BASE "resources: {cpu: 0.0005}\n",
                      "t.yaml:7: key 'resources.cpu': at most three decimal places (thousandths "
                      "of a core)");
    EXPECT_SPEC_ERROR(BASE "resources: {cpu: 1025}\n",
                      "t.yaml:7: key 'resources.cpu': must be at most 1024 cores");
    EXPECT_SPEC_ERROR(BASE "resources: {pids: 0}\n",
                      "t.yaml:7: key 'resources.pids': expected an integer from 1 to 4194304");
    EXPECT_SPEC_ERROR(BASE "resources: {pids: \"8\"}\n",
                      "t.yaml:7: key 'resources.pids': expected an integer from 1 to 4194304");
    EXPECT_SPEC_ERROR(BASE "resources: {}\n",
                      "t.yaml:7: key 'resources': give at least one of memory, pids, cpu");
    EXPECT_SPEC_ERROR(BASE "resources: {disk: 1Gi}\n",
                      "t.yaml:7: key 'resources.disk': unknown key");
    EXPECT_SPEC_ERROR(BASE "resources: 256Mi\n", "t.yaml:7: key 'resources': expected a mapping");
    EXPECT_SPEC_ERROR(BASE "resources:\n  memory: 1Gi\n  memory: 2Gi\n",
                      "t.yaml:9: key 'resources.memory': duplicate key");

    const char *user_bad = "must be a user name of 1-32 characters of A-Z a-z 0-9 . _ -, not "
                           "starting with '-'";
    const char *bad_users[] = {"-x", "a b", "a:b", "root/x", "\"\"",
                               "abcdefghijklmnopqrstuvwxyz0123456"};
    for (size_t i = 0; i < sizeof bad_users / sizeof *bad_users; i++) {
        char text[256], want[256];
        snprintf(text, sizeof text, BASE "  user: %s\n", bad_users[i]);
        snprintf(want, sizeof want, "t.yaml:7: key 'run.user': %s", user_bad);
        EXPECT_SPEC_ERROR(text, want);
    }
    EXPECT_SPEC_ERROR(BASE "  user: 65534\n",
                      "t.yaml:7: key 'run.user': must be a user name, not a number");
    EXPECT_SPEC_ERROR(BASE "  user: [nobody]\n", "t.yaml:7: key 'run.user': expected a string");
}

static void test_wrong_types(void **state)
{
    (void)state;
    EXPECT_SPEC_ERROR("name: hello\nversion: 1\nkind: app\nruntime: exec\nrun:\n  command: 5\n",
                      "t.yaml:6: key 'run.command': expected a list of strings, not a single "
                      "value");
    EXPECT_SPEC_ERROR("name: h\nversion: 1\nkind: app\nruntime: exec\nrun:\n"
                      "  command: ./hello --port 8080\n",
                      "t.yaml:6: key 'run.command': expected a list of strings, not a single "
                      "value");
    EXPECT_SPEC_ERROR("name: h\nversion: 1\nkind: app\nruntime: exec\nrun:\n"
                      "  command: {a: b}\n",
                      "t.yaml:6: key 'run.command': expected a list of strings");
    EXPECT_SPEC_ERROR("name: h\nversion: 1\nkind: app\nruntime: exec\nrun:\n"
                      "  command:\n    - ./x\n    - [nested]\n",
                      "t.yaml:8: key 'run.command': expected a list of strings");
    EXPECT_SPEC_ERROR("name: h\nversion: 1\nkind: app\nruntime: exec\nrun:\n"
                      "  command:\n    - ./x\n    - ''\n",
                      "t.yaml:8: key 'run.command': list items must not be empty");
    EXPECT_SPEC_ERROR("name: h\nversion: 1\nkind: app\nruntime: exec\nrun: {command: []}\n",
                      "t.yaml:5: key 'run.command': must not be an empty list");
    EXPECT_SPEC_ERROR(BASE "model:\n  pii: maybe\n", "t.yaml:8: key 'model.pii': expected true or false");
    EXPECT_SPEC_ERROR(BASE "model:\n  pii: yes\n", "t.yaml:8: key 'model.pii': expected true or false");
    EXPECT_SPEC_ERROR(BASE "model:\n  pii: \"true\"\n",
                      "t.yaml:8: key 'model.pii': expected true or false");
    EXPECT_SPEC_ERROR(BASE "health: [http]\n", "t.yaml:7: key 'health': expected a mapping");
    EXPECT_SPEC_ERROR(BASE "health:\n", "t.yaml:7: key 'health': expected a mapping");
    EXPECT_SPEC_ERROR(BASE "labels: [a, b]\n",
                      "t.yaml:7: key 'labels': expected a mapping of strings");
    EXPECT_SPEC_ERROR(BASE "labels:\n  team: {x: 1}\n",
                      "t.yaml:8: key 'labels.team': expected a string");
    EXPECT_SPEC_ERROR(BASE "labels: {'': x}\n", "t.yaml:7: key 'labels.\"\"': label names must not be empty");
    EXPECT_SPEC_ERROR(BASE "[a]: 1\n", "t.yaml:7: mapping keys must be plain strings");
}

static void test_env_rules(void **state)
{
    (void)state;
    EXPECT_SPEC_ERROR("name: h\nversion: 1\nkind: app\nruntime: exec\nrun:\n"
                      "  command: [x]\n  env:\n    1BAD: x\n",
                      "t.yaml:8: key 'run.env.1BAD': variable names must match "
                      "[A-Za-z_][A-Za-z0-9_]*");
    EXPECT_SPEC_ERROR("name: h\nversion: 1\nkind: app\nruntime: exec\nrun:\n"
                      "  command: [x]\n  env:\n    A-B: x\n",
                      "t.yaml:8: key 'run.env.A-B': variable names must match "
                      "[A-Za-z_][A-Za-z0-9_]*");
    EXPECT_SPEC_ERROR("name: h\nversion: 1\nkind: app\nruntime: exec\nrun:\n"
                      "  command: [x]\n  env:\n    A: x\n    A: y\n",
                      "t.yaml:9: key 'run.env.A': duplicate key");
    EXPECT_SPEC_ERROR("name: h\nversion: 1\nkind: app\nruntime: exec\nrun:\n"
                      "  command: [x]\n  env:\n    A:\n",
                      "t.yaml:8: key 'run.env.A': expected a string");
    /* An empty value must be written as one. */
    Ferry__Spec *s = parse_ok(BASE "  env: {EMPTY: \"\"}\n");
    assert_int_equal(s->run->n_env, 1);
    assert_string_equal(s->run->env[0]->value, "");
    spec_free(s);
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    EXPECT_SPEC_ERROR("name: a\nversion: 1\nname: b\n", "t.yaml:3: key 'name': duplicate key");
    EXPECT_SPEC_ERROR(BASE "health:\n  deadline: 5s\n  deadline: 6s\n",
                      "t.yaml:9: key 'health.deadline': duplicate key");
    EXPECT_SPEC_ERROR(BASE "labels: {a: 1, a: 2}\n", "t.yaml:7: key 'labels.a': duplicate key");
    EXPECT_SPEC_ERROR(BASE "run: {command: [y]}\n", "t.yaml:7: key 'run': duplicate key");
}

static void test_document_shape(void **state)
{
    (void)state;
    EXPECT_SPEC_ERROR("", "t.yaml:1: the document is empty");
    EXPECT_SPEC_ERROR("# only a comment\n\n", "t.yaml:1: the document is empty");
    EXPECT_SPEC_ERROR("---\n", "t.yaml:1: the document is empty");
    EXPECT_SPEC_ERROR("- name\n- version\n",
                      "t.yaml:1: the top level must be a mapping of keys (name: ..., ...)");
    EXPECT_SPEC_ERROR("\n\nhello\n",
                      "t.yaml:3: the top level must be a mapping of keys (name: ..., ...)");
    EXPECT_SPEC_ERROR(BASE "---\nname: again\n", "t.yaml:7: only one YAML document is allowed");
}

static void test_yaml_syntax(void **state)
{
    (void)state;
    EXPECT_SPEC_ERROR("name: hello\nversion: 1\nrun: [a, b\n",
                      "t.yaml:4: did not find expected ',' or ']'");
    EXPECT_SPEC_ERROR("name: hello\n  version: 1\n",
                      "t.yaml:2: mapping values are not allowed in this context");
    EXPECT_SPEC_ERROR("name: hello\nversion: \"1\xff\"\n", "t.yaml:2: invalid leading UTF-8 octet");
    /* A NUL byte in the text itself is refused by the reader. */
    static const char nul[] = "name: hello\nversion: 1\0\n";
    expect_error(nul, sizeof nul - 1, FERRY_E_SPEC, "t.yaml:2: control characters are not allowed");
}

static void test_aliases_anchors_tags(void **state)
{
    (void)state;
    EXPECT_SPEC_ERROR("name: &n hello\nversion: *n\n",
                      "t.yaml:1: YAML anchors (&name) are not allowed");
    /* The classic billion laughs, cut down: refused before any expansion. */
    EXPECT_SPEC_ERROR("a: &a [x, x, x, x, x, x, x, x, x]\n"
                      "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                      "c: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n",
                      "t.yaml:1: YAML anchors (&name) are not allowed");
    EXPECT_SPEC_ERROR("name: hello\nversion: *v\n", "t.yaml:2: YAML aliases (*name) are not allowed");
    EXPECT_SPEC_ERROR("name: !secret hello\n", "t.yaml:1: tag '!secret' is not allowed");
    EXPECT_SPEC_ERROR("name: !!python/object:os.system hello\n",
                      "t.yaml:1: tag 'tag:yaml.org,2002:python/object:os.system' is not allowed");
    EXPECT_SPEC_ERROR("name: hello\nrun: !!set {a, b}\n",
                      "t.yaml:2: tag 'tag:yaml.org,2002:set' is not allowed");
    /* Standard tags are fine where they fit the type. */
    Ferry__Spec *s = parse_ok("name: m\nversion: 1\nkind: model\nruntime: exec\n"
                              "run: {command: [./m]}\n"
                              "model: !!map {pii: !!bool true, inputs: !!seq [!!map {name: !!str a,"
                              " datatype: FP64, shape: [!!int -1]}]}\n"
                              "health: {http: {path: /, status: !!int \"201\"}}\n");
    assert_true(s->model->pii);
    assert_string_equal(s->model->inputs[0]->name, "a");
    assert_int_equal(s->health->http->status, 201);
    spec_free(s);
    EXPECT_SPEC_ERROR(MBASE SK "  pii: !!int 1\n", "t.yaml:9: key 'model.pii': expected true or false");
    EXPECT_SPEC_ERROR(BASE "description: !!null x\n", "t.yaml:7: key 'description': expected a string");
}

static void test_limits(void **state)
{
    (void)state;
    size_t len = 1024 * 1024 + 1;
    char *big = malloc(len);
    assert_non_null(big);
    memset(big, '#', len);
    expect_error(big, len, FERRY_E_LIMIT, "t.yaml: 1048577 bytes, more than the 1 MiB allowed");

    /* Exactly 1 MiB is read (a comment, then a valid spec). */
    static const char tail[] = "\n" BASE;
    memcpy(big + (len - 1) - (sizeof tail - 1), tail, sizeof tail - 1);
    Ferry__Spec *s = NULL;
    assert_int_equal(spec_parse("t.yaml", big, len - 1, &s), 0);
    assert_string_equal(s->name, "hello");
    spec_free(s);

    /* Deep nesting is refused early: libyaml would be slow on it, not just
     * the schema. A megabyte of '[' must fail fast, not hang. */
    memset(big, '[', len - 1);
    expect_error(big, len - 1, FERRY_E_SPEC, "t.yaml:1: nested more than 16 levels deep");

    /* Many env entries are capped. */
    size_t cap = 64 + 2000 * 16;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t used = (size_t)snprintf(text, cap, "%s  env:\n", BASE);
    for (int i = 0; i < 1025; i++)
        used += (size_t)snprintf(text + used, cap - used, "    V%d: x\n", i);
    expect_error(text, used, FERRY_E_LIMIT, "t.yaml:8: key 'run.env': more than 1024 entries");
    free(text);
    free(big);
}

static void test_names(void **state)
{
    (void)state;
    assert_true(spec_name_ok("hello"));
    assert_true(spec_name_ok("0day.svc_a-b"));
    assert_false(spec_name_ok(""));
    assert_false(spec_name_ok(NULL));
    assert_false(spec_name_ok(".hidden"));
    assert_false(spec_name_ok("_x"));
    assert_false(spec_name_ok("Hello"));
    assert_false(spec_name_ok("a/b"));
    assert_false(spec_name_ok("a b"));
    char n[80];
    memset(n, 'a', 64);
    n[64] = '\0';
    assert_true(spec_name_ok(n));
    n[64] = 'a';
    n[65] = '\0';
    assert_false(spec_name_ok(n));

    assert_true(spec_version_ok("1.0"));
    assert_true(spec_version_ok("1.0.0-RC1+build.5"));
    assert_true(spec_version_ok("v2"));
    assert_false(spec_version_ok(""));
    assert_false(spec_version_ok(NULL));
    assert_false(spec_version_ok("+1"));
    assert_false(spec_version_ok("1.0/2"));
    assert_false(spec_version_ok("1 0"));
    assert_true(spec_version_ok(n + 1));
    assert_false(spec_version_ok(n));
}

static char *tmp_path(const char *name)
{
    const char *base = getenv("FERRY_TEST_TMP");
    if (!base || !*base)
        base = "/tmp";
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/spec-XXXXXX", base);
    (void)mkdir(base, 0700);
    assert_non_null(mkdtemp(dir));
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void remove_tmp(char *path)
{
    unlink(path);
    *strrchr(path, '/') = '\0';
    rmdir(path);
    free(path);
}

static void test_parse_file(void **state)
{
    (void)state;
    char *path = tmp_path("ferry.yaml");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(BASE "colour: red\n", f);
    fclose(f);

    Ferry__Spec *s = NULL;
    err_clear();
    assert_int_equal(spec_parse_file(path, &s), FERRY_E_SPEC);
    assert_null(s);
    char want[4200];
    snprintf(want, sizeof want, "%s:7: key 'colour': unknown key", path);
    assert_string_equal(err_detail(), want);

    f = fopen(path, "w");
    assert_non_null(f);
    fputs(BASE, f);
    fclose(f);
    assert_int_equal(spec_parse_file(path, &s), 0);
    assert_string_equal(s->run->command[0], "./hello");
    spec_free(s);

    f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 1024 * 64 + 1; i++)
        fputs("# comment line.\n", f); /* 16 bytes each: just over 1 MiB */
    fclose(f);
    s = NULL;
    assert_int_equal(spec_parse_file(path, &s), FERRY_E_LIMIT);
    assert_null(s);
    remove_tmp(path);

    char *missing = tmp_path("nope.yaml");
    err_clear();
    assert_int_equal(spec_parse_file(missing, &s), -ENOENT);
    snprintf(want, sizeof want, "%s: %s", missing, strerror(ENOENT));
    assert_string_equal(err_detail(), want);
    remove_tmp(missing);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_app),
        cmocka_unit_test(test_model),
        cmocka_unit_test(test_model_refusals),
        cmocka_unit_test(test_notebook),
        cmocka_unit_test(test_version_scalars),
        cmocka_unit_test(test_health_defaults_and_durations),
        cmocka_unit_test(test_missing_keys),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_resources_and_user),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_env_rules),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_document_shape),
        cmocka_unit_test(test_yaml_syntax),
        cmocka_unit_test(test_aliases_anchors_tags),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_jobs),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_parse_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
