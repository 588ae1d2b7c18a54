/* The oci plugin's runtime spec writer (plugins/oci/ocispec.c): the
 * process from the image config and the overrides, namespaces, limits,
 * capabilities and mounts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "ocispec.h"
#include "scratch.h"

static const char *IMAGE =
    "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{"
    "\"Entrypoint\":[\"/bin/busybox\"],\"Cmd\":[\"httpd\",\"-f\"],"
    "\"Env\":[\"PATH=/bin\",\"GREETING=image\",\"KEEP=1\"],"
    "\"WorkingDir\":\"/srv\",\"User\":\"www\"}}";

static void write_file(const char *dir, const char *rel, const char *text)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    if (scratch_setup(state, "ocispec") < 0)
        return -1;
    const char *dir = *state;
    char etc[4200];
    snprintf(etc, sizeof etc, "%s/etc", dir);
    mkdir(etc, 0755);
    write_file(dir, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\nwww:x:33:34:www:/srv:/bin/false\n");
    write_file(dir, "etc/group", "root:x:0:\nweb:x:82:\n");
    return 0;
}

static json_t *build(const char *rootfs, const char *image, const char *oci, const char *const *env)
{
    struct ocispec_in in = {
        .image_config = image, .image_config_len = image ? strlen(image) : 0, .oci_json = oci,
        .env = env, .rootfs = rootfs, .hostname = "web", .annotation = "web@1",
    };
    char *doc = NULL;
    int rc = ocispec_build(&in, &doc);
    if (rc < 0)
        fail_msg("build: %d %s", rc, err_detail());
    json_error_t e;
    json_t *j = json_loads(doc, 0, &e);
    free(doc);
    assert_non_null(j);
    return j;
}

static const char *env_of(json_t *doc, const char *key)
{
    json_t *env = json_object_get(json_object_get(doc, "process"), "env");
    size_t i, kl = strlen(key);
    json_t *v;
    json_array_foreach(env, i, v) {
        const char *s = json_string_value(v);
        if (strncmp(s, key, kl) == 0 && s[kl] == '=')
            return s + kl + 1;
    }
    return NULL;
}

static int has_ns(json_t *doc, const char *type)
{
    json_t *ns = json_object_get(json_object_get(doc, "linux"), "namespaces");
    size_t i;
    json_t *v;
    json_array_foreach(ns, i, v)
        if (strcmp(json_string_value(json_object_get(v, "type")), type) == 0)
            return 1;
    return 0;
}

static void test_image_defaults(void **state)
{
    const char *dir = *state;
    const char *env[] = {"GREETING=workload", "PORT=8080", NULL};
    json_t *d = build(dir, IMAGE, "{}", env);
    json_t *p = json_object_get(d, "process");
    json_t *args = json_object_get(p, "args");
    assert_int_equal(json_array_size(args), 3);
    assert_string_equal(json_string_value(json_array_get(args, 0)), "/bin/busybox");
    assert_string_equal(json_string_value(json_array_get(args, 2)), "-f");
    assert_string_equal(env_of(d, "PATH"), "/bin");
    assert_string_equal(env_of(d, "GREETING"), "workload"); /* the workload's over the image's */
    assert_string_equal(env_of(d, "KEEP"), "1");
    assert_string_equal(env_of(d, "PORT"), "8080");
    assert_string_equal(json_string_value(json_object_get(p, "cwd")), "/srv");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "user"), "uid")), 33);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "user"), "gid")), 34);
    assert_true(json_is_false(json_object_get(p, "terminal")));
    assert_true(json_is_true(json_object_get(p, "noNewPrivileges")));
    /* pid, mount, ipc, uts; the host's network by default */
    assert_true(has_ns(d, "pid") && has_ns(d, "mount") && has_ns(d, "ipc") && has_ns(d, "uts"));
    assert_false(has_ns(d, "network"));
    assert_false(has_ns(d, "user"));
    /* capabilities: no more than Docker's default, never SYS_ADMIN */
    static const char *const docker[] = {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER",
                                         "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID",
                                         "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                                         "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE", NULL};
    json_t *caps = json_object_get(p, "capabilities");
    const char *sets[] = {"bounding", "effective", "permitted"};
    for (int s = 0; s < 3; s++) {
        json_t *set = json_object_get(caps, sets[s]);
        assert_true(json_array_size(set) > 0);
        size_t i;
        json_t *c;
        json_array_foreach(set, i, c) {
            int found = 0;
            for (int k = 0; docker[k]; k++)
                found |= strcmp(docker[k], json_string_value(c)) == 0;
            if (!found)
                fail_msg("%s has %s, not in Docker's default set", sets[s], json_string_value(c));
        }
    }
    assert_int_equal(json_array_size(json_object_get(caps, "ambient")), 0);
    /* mounts */
    const char *want[] = {"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"};
    json_t *m = json_object_get(d, "mounts");
    assert_int_equal(json_array_size(m), 6);
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(m, i), "destination")), want[i]);
    json_t *sysopts = json_object_get(json_array_get(m, 5), "options");
    int ro = 0;
    for (size_t i = 0; i < json_array_size(sysopts); i++)
        ro |= strcmp(json_string_value(json_array_get(sysopts, i)), "ro") == 0;
    assert_true(ro);
    json_t *root = json_object_get(d, "root");
    assert_string_equal(json_string_value(json_object_get(root, "path")), dir);
    assert_true(json_is_false(json_object_get(root, "readonly")));
    assert_string_equal(json_string_value(json_object_get(d, "hostname")), "web");
    json_t *res = json_object_get(json_object_get(d, "linux"), "resources");
    assert_null(json_object_get(res, "memory"));
    json_decref(d);
}

static void test_overrides(void **state)
{
    const char *dir = *state;
    const char *oci = "{\"command\":[\"/bin/sh\",\"-c\",\"echo hi\"],\"env\":{\"GREETING\":\"oci\","
                      "\"EXTRA\":\"x\"},\"workdir\":\"/tmp\",\"user\":\"1000:web\",\"network\":\"none\","
                      "\"readonly_rootfs\":true,\"resources\":{\"memory_bytes\":33554432,\"pids\":16,"
                      "\"cpu_millis\":500}}";
    json_t *d = build(dir, IMAGE, oci, NULL);
    json_t *p = json_object_get(d, "process");
    json_t *args = json_object_get(p, "args");
    assert_int_equal(json_array_size(args), 3);
    assert_string_equal(json_string_value(json_array_get(args, 0)), "/bin/sh");
    assert_string_equal(env_of(d, "GREETING"), "oci");
    assert_string_equal(env_of(d, "EXTRA"), "x");
    assert_string_equal(json_string_value(json_object_get(p, "cwd")), "/tmp");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "user"), "uid")), 1000);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "user"), "gid")), 82);
    assert_true(has_ns(d, "network"));
    assert_true(json_is_true(json_object_get(json_object_get(d, "root"), "readonly")));
    json_t *res = json_object_get(json_object_get(d, "linux"), "resources");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "memory"), "limit")), 33554432);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "memory"), "swap")), 33554432);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "pids"), "limit")), 16);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "cpu"), "quota")), 50000);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "cpu"), "period")), 100000);
    json_decref(d);

    /* No image config at all: the command must come from the section. */
    d = build(dir, NULL, "{\"command\":[\"/bin/true\"]}", NULL);
    assert_string_equal(json_string_value(json_object_get(json_object_get(d, "process"), "cwd")), "/");
    assert_string_equal(env_of(d, "PATH"), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    json_decref(d);
}

static void refused(const char *rootfs, const char *image, const char *oci, const char *want)
{
    struct ocispec_in in = {.image_config = image, .image_config_len = image ? strlen(image) : 0,
                            .oci_json = oci, .rootfs = rootfs};
    char *doc = NULL;
    err_clear();
    int rc = ocispec_build(&in, &doc);
    if (rc >= 0)
        fail_msg("accepted %s", oci);
    assert_null(doc);
    if (!strstr(err_detail(), want))
        fail_msg("detail '%s' does not say '%s'", err_detail(), want);
}

static void test_refusals(void **state)
{
    const char *dir = *state;
    refused(dir, "{\"config\":{}}", "{}", "no command");
    refused(dir, IMAGE, "{\"workdir\":\"srv\"}", "must be an absolute path");
    refused(dir, IMAGE, "{\"user\":\"nobody\"}", "no such user");
    refused(dir, IMAGE, "{\"user\":\"0:nogroup\"}", "no such group");
    refused(dir, IMAGE, "{\"network\":\"bridge\"}", "must be host or none");
    refused(dir, "[1]", "{}", "image config");
    refused(dir, IMAGE, "{\"env\":[\"NOEQUALS\"]}", "is not K=V");
    /* passwd is read inside the rootfs: a symlink to the host's stays in. */
    char sub[4200], etc[4300];
    snprintf(sub, sizeof sub, "%s/jail", dir);
    mkdir(sub, 0755);
    snprintf(etc, sizeof etc, "%s/etc", sub);
    mkdir(etc, 0755);
    char link[4400];
    snprintf(link, sizeof link, "%s/passwd", etc);
    assert_int_equal(symlink("/etc/passwd", link), 0);
    refused(sub, IMAGE, "{\"user\":\"root\"}", "no such user");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image_defaults),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, scratch_teardown);
}
