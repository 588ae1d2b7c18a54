/* The OCI image JSON readers on bytes alone (the fuzz target drives the
 * same functions), and the oci plugin's kind section. The readers on real
 * image files are tests/unit/test_ociimage.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "ocijson.h"

/* The JSON readers alone (as the fuzz target drives them). */
static void test_readers(void **state)
{
    (void)state;
    struct oci_desc d;
    int nested = 0;
    const char *ix = "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
                     "\"digest\":\"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\",\"size\":5}]}";
    assert_int_equal(oci_parse_index((const uint8_t *)ix, strlen(ix), NULL, &d, &nested), 0);
    assert_true(nested);
    const char *dup = "{\"schemaVersion\":2,\"schemaVersion\":2}";
    assert_int_equal(oci_parse_index((const uint8_t *)dup, strlen(dup), NULL, &d, &nested), FERRY_E_INVALID);
    const char *arr = "[1]";
    struct oci_manifest m;
    assert_int_equal(oci_parse_manifest((const uint8_t *)arr, 3, &m), FERRY_E_INVALID);
    assert_string_equal(err_detail(), "manifest: expected a JSON object");
    const char *win = "{\"os\":\"windows\"}";
    assert_int_equal(oci_parse_config((const uint8_t *)win, strlen(win), 0, NULL), FERRY_E_INVALID);
    assert_string_equal(err_detail(), "config: os is 'windows'; only linux images run");
    assert_true(oci_digest_ok("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
    assert_false(oci_digest_ok("sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"));
    assert_false(oci_digest_ok("sha256:0123"));
}

/* The plugin's kind section: as written plus the resolved image. */
static void test_kind_json(void **state)
{
    (void)state;
    Ferry__OciSpec oci;
    ferry__oci_spec__init(&oci);
    Ferry__OciLayer l, *lv[1] = {&l};
    ferry__oci_layer__init(&l);
    l.file = "oci/blobs/sha256/ab";
    l.digest = "sha256:ab";
    l.media_type = "application/vnd.oci.image.layer.v1.tar";
    l.size = 7;
    oci.layers = lv;
    oci.n_layers = 1;
    oci.config_file = "oci/blobs/sha256/cd";
    oci.config_digest = "sha256:cd";
    char *out = NULL;
    assert_int_equal(oci_kind_json(&oci, "{\"image\":\"x\"}", &out), 0);
    assert_string_equal(out, "{\"image\":\"x\",\"layers\":[{\"file\":\"oci/blobs/sha256/ab\","
                             "\"digest\":\"sha256:ab\",\"media_type\":\"application/vnd.oci.image.layer.v1.tar\","
                             "\"size\":7}],\"config_file\":\"oci/blobs/sha256/cd\",\"config_digest\":\"sha256:cd\"}");
    free(out);
}

/* Layouts, manifests and configs refused with their reason. */
static void test_refusals(void **state)
{
    (void)state;
    static const struct {
        int which; /* 0 layout, 1 index, 2 manifest, 3 config, 4 docker */
        const char *doc, *detail;
    } cases[] = {
        {0, "{\"imageLayoutVersion\":\"2.0.0\"}", "oci-layout: imageLayoutVersion is not 1.0.0"},
        {1, "{\"schemaVersion\":2,\"manifests\":[]}", "index: no manifests"},
        {1, "{\"schemaVersion\":2,\"mediaType\":\"text/plain\",\"manifests\":[]}",
         "index: unsupported media type 'text/plain'"},
        {1, "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
            "\"digest\":\"sha256:abc\",\"size\":1}]}",
         "index: manifests[0]: digest 'sha256:abc' is not sha256:<64 hex digits>"},
        {1, "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
            "\"digest\":\"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\",\"size\":-1}]}",
         "index: manifests[0]: size is not a non-negative integer"},
        {1, "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\","
            "\"digest\":\"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\",\"size\":1}]}",
         "index: manifests[0]: unsupported media type 'application/vnd.oci.image.layer.v1.tar'"},
        {2, "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/json\",\"digest\":"
            "\"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\",\"size\":2},\"layers\":[]}",
         "manifest: config: unsupported media type 'application/json'"},
        {2, "{\"schemaVersion\":2,\"layers\":[]}", "manifest: config: expected a descriptor object"},
        {3, "{\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"md5:x\"]}}",
         "config: rootfs.diff_ids[0] is not a sha256 digest"},
        {3, "{\"config\":[1]}", "config: config is not an object"},
        {4, "{}", "manifest.json: expected a list of images"},
        {4, "[{\"Config\":\"c.json\",\"Layers\":[\"/etc/passwd\"]}]",
         "manifest.json: Layers[0] '/etc/passwd' is not a safe relative path"},
        {4, "[{\"Config\":\"c.json\",\"Layers\":\"0/layer.tar\"}]", "manifest.json: Layers is not a list"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const uint8_t *b = (const uint8_t *)cases[i].doc;
        size_t n = strlen(cases[i].doc);
        struct oci_desc d;
        struct oci_manifest m;
        struct oci_docker dk;
        int nested, rc;
        err_clear();
        switch (cases[i].which) {
        case 0: rc = oci_parse_layout(b, n); break;
        case 1: rc = oci_parse_index(b, n, NULL, &d, &nested); break;
        case 2: rc = oci_parse_manifest(b, n, &m); break;
        case 3: rc = oci_parse_config(b, n, 1, NULL); break;
        default: rc = oci_parse_docker(b, n, &dk); break;
        }
        if (rc >= 0 || strcmp(err_detail(), cases[i].detail) != 0)
            fail_msg("case %zu: rc %d, '%s', expected '%s'", i, rc, err_detail(), cases[i].detail);
    }
    /* a layer count over the cap, refused before any layer is read */
    size_t cap = 512 + (OCI_LAYERS_MAX + 1) * 3;
    char *big = malloc(cap);
    size_t used = (size_t)snprintf(
        big, cap,
        "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
        "\"digest\":\"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\",\"size\":2},"
        "\"layers\":[");
    for (unsigned i = 0; i <= OCI_LAYERS_MAX; i++)
        used += (size_t)snprintf(big + used, cap - used, "%s{}", i ? "," : "");
    used += (size_t)snprintf(big + used, cap - used, "]}");
    struct oci_manifest m;
    assert_int_equal(oci_parse_manifest((const uint8_t *)big, used, &m), FERRY_E_LIMIT);
    assert_string_equal(err_detail(), "manifest: 257 layers, more than 256");
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readers),
        cmocka_unit_test(test_kind_json),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
