/* Path safety for hostile relative paths (manifest paths, archive entries). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "pathsafe.h"

static void accept(const char *rel)
{
    err_clear();
    int rc = path_check(rel);
    if (rc != 0)
        fail_msg("refused '%s' (%d): %s", rel, rc, err_detail());
}

static void refuse(const char *rel, const char *what)
{
    err_clear();
    int rc = path_check(rel);
    if (rc != FERRY_E_UNSAFE_PATH)
        fail_msg("%s: got %d, want FERRY_E_UNSAFE_PATH", what, rc);
    if (err_detail()[0] == '\0')
        fail_msg("%s: no detail", what);
    /* The detail is one line, even when the path holds a newline. */
    if (strchr(err_detail(), '\n') || strchr(err_detail(), '\r'))
        fail_msg("%s: detail is not one line: %s", what, err_detail());
}

/* n copies of c, NUL-terminated, malloc'd. */
static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* depth components "d/d/.../d". */
static char *deep(size_t depth)
{
    char *s = malloc(depth * 2);
    assert_non_null(s);
    for (size_t i = 0; i < depth; i++) {
        s[2 * i] = 'd';
        s[2 * i + 1] = '/';
    }
    s[depth * 2 - 1] = '\0';
    return s;
}

/* A path of exactly len bytes: 200-byte components, the last one longer
 * (at most 255), so that only the total length can be at fault. */
static char *long_path(size_t len)
{
    char *s = repeat('p', len);
    size_t last = 0;
    for (size_t i = 200; i + 201 < len; i += 201)
        s[last = i] = '/';
    assert_true(len - last - 1 <= PATH_COMPONENT_MAX);
    assert_true(s[len - 1] != '/');
    return s;
}

static void test_accepts(void **state)
{
    (void)state;
    accept("a");
    accept("a/b.c");
    accept("dir/.hidden");
    accept(".hidden");
    accept("..a");
    accept("a..b");
    accept("a/b..");
    accept("...");
    accept("a/.../b");
    accept("bin/run.sh");
    accept("sp ace/ü-utf8.txt");
}

static void test_refuses(void **state)
{
    (void)state;
    refuse("", "empty");
    refuse("/abs", "absolute");
    refuse("/", "root");
    refuse("..", "dotdot alone");
    refuse(".", "dot alone");
    refuse("../x", "leading dotdot");
    refuse("a/../b", "inner dotdot");
    refuse("a/..", "trailing dotdot");
    refuse("a//b", "empty component");
    refuse("a/./b", "dot component");
    refuse("./a", "leading dot");
    refuse("a/", "trailing slash");
    refuse("a\\b", "backslash");
    refuse("..\\x", "backslash dotdot");
    refuse("x\ny", "newline");
    refuse("x\ry", "carriage return");
    refuse("x\ty", "tab");
    refuse("x\x1by", "escape");
    refuse("x\x7fy", "DEL");
}

static void test_component_length(void **state)
{
    (void)state;
    char *c255 = repeat('c', 255), *c256 = repeat('c', 256);
    accept(c255);
    refuse(c256, "256-byte component");
    char buf[600];
    snprintf(buf, sizeof buf, "a/%s/b", c256);
    refuse(buf, "256-byte inner component");
    snprintf(buf, sizeof buf, "a/%s", c255);
    accept(buf);
    free(c255);
    free(c256);
}

static void test_depth(void **state)
{
    (void)state;
    char *d32 = deep(32), *d33 = deep(33);
    accept(d32);
    refuse(d33, "33 components");
    free(d32);
    free(d33);
}

static void test_total_length(void **state)
{
    (void)state;
    char *ok = long_path(1024), *over = long_path(1025);
    assert_int_equal(strlen(ok), 1024);
    accept(ok);
    refuse(over, "1025 bytes");
    char *huge = repeat('h', 100000);
    refuse(huge, "100000 bytes");
    free(ok);
    free(over);
    free(huge);
}

static void test_detail_names_path(void **state)
{
    (void)state;
    err_clear();
    assert_int_equal(path_check("a/../etc/passwd"), FERRY_E_UNSAFE_PATH);
    assert_non_null(strstr(err_detail(), "a/../etc/passwd"));
    err_clear();
    assert_int_equal(path_check("/etc/shadow"), FERRY_E_UNSAFE_PATH);
    assert_non_null(strstr(err_detail(), "/etc/shadow"));
}

/* What a workload tree cannot hold, on top of path_check. */
static void test_workload_paths(void **state)
{
    (void)state;
    const char *bad[] = {".ferry", ".ferry/stdout.log", ".ferry/a/b", "ferry.yaml/x", "../x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err_clear();
        if (path_check_workload(bad[i], "ferry.yaml") != FERRY_E_UNSAFE_PATH)
            fail_msg("accepted '%s'", bad[i]);
        char named[64];
        snprintf(named, sizeof named, "'%s'", bad[i]);
        if (!strstr(err_detail(), named))
            fail_msg("detail '%s' does not name %s", err_detail(), named);
    }
    const char *good[] = {".ferryx", "x/.ferry/y", "ferry.yaml.d/x", "ferry.yamlx", "a/ferry.yaml/b"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        err_clear();
        if (path_check_workload(good[i], "ferry.yaml") != 0)
            fail_msg("refused '%s': %s", good[i], err_detail());
    }
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_refuses),
        cmocka_unit_test(test_component_length),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_total_length),
        cmocka_unit_test(test_detail_names_path),
        cmocka_unit_test(test_workload_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
