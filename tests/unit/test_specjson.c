/* ferry.yaml -> JSON for plugins: the mapping of scalars, ferry's text
 * fields staying text, the kind section chosen by runtime then kind, opaque
 * sections accepted (and checked), and refusals shared with spec_parse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "spec.h"
#include "specjson.h"

static void convert(const char *yaml, char **spec, char **kind)
{
    err_clear();
    int rc = specjson_from_yaml("t.yaml", yaml, strlen(yaml), spec, kind);
    if (rc != 0)
        fail_msg("unexpected failure %d: %s", rc, err_detail());
}

static void test_app_types(void **state)
{
    (void)state;
    char *spec = NULL, *kind = NULL;
    convert("name: hello\n"
            "version: 1.0\n" /* text in ferry's schema, though it reads as a number */
            "kind: app\n"
            "runtime: exec\n"
            "run:\n"
            "  command: [./serve, '8080', 42]\n"
            "  env: {PORT_HINT: 8080, DEBUG: true}\n"
            "health:\n"
            "  deadline: 10s\n"
            "  settle: 2\n"
            "labels: {tier: 1}\n",
            &spec, &kind);
    assert_string_equal(spec, "{\"name\":\"hello\",\"version\":\"1.0\",\"kind\":\"app\",\"runtime\":\"exec\","
                              "\"run\":{\"command\":[\"./serve\",\"8080\",\"42\"],"
                              "\"env\":{\"PORT_HINT\":\"8080\",\"DEBUG\":\"true\"}},"
                              "\"health\":{\"deadline\":\"10s\",\"settle\":2},\"labels\":{\"tier\":\"1\"}}");
    assert_string_equal(kind, "{}"); /* no exec: or app: section */
    free(spec);
    free(kind);
}

static void test_model_section(void **state)
{
    (void)state;
    char *spec = NULL, *kind = NULL;
    convert("name: iris\nversion: 1.0.0\nkind: model\nruntime: model\n"
            "model:\n  format: sklearn\n  file: model.joblib\n  card: CARD.md\n  pii: false\n"
            "  inputs:\n    - {name: '7', datatype: FP64, shape: [-1, 4]}\n"
            "  outputs: [{name: species, datatype: INT64, shape: [-1]}]\n"
            "  reference: reference.csv\n  workers: 2\n"
            "  batching: {max_batch: 32, max_delay: 2ms}\n  drift: {window: 1000, alert: 0.2}\n",
            &spec, &kind);
    /* Names and datatypes stay text, dimensions and counts are numbers. */
    assert_string_equal(kind, "{\"format\":\"sklearn\",\"file\":\"model.joblib\",\"card\":\"CARD.md\","
                              "\"pii\":false,\"inputs\":[{\"name\":\"7\",\"datatype\":\"FP64\","
                              "\"shape\":[-1,4]}],\"outputs\":[{\"name\":\"species\",\"datatype\":"
                              "\"INT64\",\"shape\":[-1]}],\"reference\":\"reference.csv\","
                              "\"workers\":2,\"batching\":{\"max_batch\":32,\"max_delay\":\"2ms\"},"
                              "\"drift\":{\"window\":1000,\"alert\":0.20000000000000001}}");
    assert_non_null(strstr(spec, "\"model\":{\"format\":\"sklearn\""));
    free(spec);
    free(kind);
    /* Refused by the schema first, with its line. */
    json_t *j = NULL;
    const char *bad = "name: iris\nversion: 1\nkind: model\nruntime: model\nmodel:\n"
                      "  format: sklearn\n  file: m.joblib\n"
                      "  inputs: [{name: a, datatype: FP64, shape: [-1]}, "
                      "{name: a, datatype: FP64, shape: [-1]}]\n";
    err_clear();
    assert_int_equal(specjson_tree("t.yaml", bad, strlen(bad), &j), FERRY_E_SPEC);
    assert_null(j);
    assert_string_equal(err_detail(), "t.yaml:8: key 'model.inputs[1].name': duplicate name 'a' "
                                      "(also inputs[0])");
}

/* oci: ferry's own schema; the plugin gets the section as written, with
 * what the schema reads as text kept text. */
static void test_oci_section(void **state)
{
    (void)state;
    char *spec = NULL, *kind = NULL;
    const char *yaml = "name: web\nversion: 2.0.0\nkind: app\nruntime: oci\n"
                       "oci:\n"
                       "  image: build/web.tar\n"
                       "  command: [/bin/httpd, -f, -p, 8080]\n"
                       "  env: {MODE: 1, ON: yes}\n"
                       "  workdir: /srv\n"
                       "  user: 1000:1000\n"
                       "  ports: [8080]\n"
                       "  network: none\n"
                       "  readonly_rootfs: true\n";
    convert(yaml, &spec, &kind);
    assert_string_equal(kind, "{\"image\":\"build/web.tar\",\"command\":[\"/bin/httpd\",\"-f\","
                              "\"-p\",\"8080\"],\"env\":{\"MODE\":\"1\",\"ON\":\"yes\"},"
                              "\"workdir\":\"/srv\",\"user\":\"1000:1000\",\"ports\":[\"8080\"],"
                              "\"network\":\"none\",\"readonly_rootfs\":true}");
    free(spec);
    free(kind);
    Ferry__Spec *s = NULL;
    assert_int_equal(spec_parse("t.yaml", yaml, strlen(yaml), &s), 0);
    assert_string_equal(s->runtime, "oci");
    assert_non_null(s->oci);
    assert_string_equal(s->oci->image, "build/web.tar");
    assert_int_equal(s->oci->n_command, 4);
    assert_string_equal(s->oci->network, "none");
    assert_true(s->oci->readonly_rootfs);
    spec_free(s);
}

static void expect_refused(const char *yaml, const char *detail)
{
    char *spec = (char *)"untouched", *kind = (char *)"untouched";
    err_clear();
    assert_int_equal(specjson_from_yaml("t.yaml", yaml, strlen(yaml), &spec, &kind), FERRY_E_SPEC);
    assert_string_equal(spec, "untouched");
    assert_string_equal(kind, "untouched");
    assert_string_equal(err_detail(), detail);
}

#define APP_OCI "name: web\nversion: 2.0.0\nkind: app\nruntime: oci\nrun: {command: [/bin/web]}\n"

static void test_refusals(void **state)
{
    (void)state;
    expect_refused(APP_OCI "oci: [a, b]\n", "t.yaml:6: key 'oci': expected a mapping");
    expect_refused(APP_OCI "oci:\n  image: a\n  image: b\n", "t.yaml:8: key 'oci.image': duplicate key");
    expect_refused(APP_OCI "oci:\n  image: a\n  replicas: 2\n", "t.yaml:8: key 'oci.replicas': unknown key");
    expect_refused(APP_OCI "oci:\n  image: &x a\n  user: *x\n", "t.yaml:7: YAML anchors (&name) are not allowed");
    expect_refused("name: web\nversion: 2.0.0\nkind: app\nruntime: exec\nrun: {command: [x]}\noci: {image: a}\n",
                   "t.yaml:6: key 'oci': a section for runtime oci, but this is runtime exec");
    /* Keys ferry knows stay checked: a typo in model: is still refused. */
    expect_refused("name: m\nversion: 1\nkind: model\nruntime: model\nmodel: {framwork: x}\n",
                   "t.yaml:5: key 'model.framwork': unknown key");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_app_types),
        cmocka_unit_test(test_model_section),
        cmocka_unit_test(test_oci_section),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
