/* The dashboard's asset rules (registry/http_page.c): which names are
 * assets, their content types, and reading one from the directory without
 * leaving it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "http_page.h"
#include "scratch.h"

static void put(const char *dir, const char *name, const char *text)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_names(void **state)
{
    (void)state;
    const char *good[] = {"index.html", "dashboard.js", "uPlot.iife.min.js", "uPlot.min.css",
                          "favicon.svg", "a_b-c.json", "x.txt", "logo.png"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (http_page_name_ok(good[i]) != 0)
            fail_msg("refused '%s'", good[i]);
    const char *bad[] = {"", ".", "..", "../registry.db", "..js", "a..js", "/etc/passwd",
                         "web/dashboard.js", ".hidden.js", "registry.db", "noext", "a.JS",
                         "a.js ", "a\\b.js", "a%2fb.js", "a.js\n", "a.exe", "index.html~"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (http_page_name_ok(bad[i]) == 0)
            fail_msg("accepted '%s'", bad[i]);
    char longname[200];
    memset(longname, 'a', sizeof longname);
    strcpy(longname + 150, ".js");
    assert_int_not_equal(http_page_name_ok(longname), 0);
}

static void test_types(void **state)
{
    (void)state;
    assert_string_equal(http_page_content_type("index.html"), "text/html; charset=utf-8");
    assert_string_equal(http_page_content_type("a.js"), "text/javascript; charset=utf-8");
    assert_string_equal(http_page_content_type("a.css"), "text/css; charset=utf-8");
    assert_string_equal(http_page_content_type("a.svg"), "image/svg+xml");
    assert_null(http_page_content_type("a.db"));
    assert_null(http_page_content_type("noext"));
}

static void test_read(void **state)
{
    const char *dir = *state;
    char web[4200], outside[4200], link[4300], sub[4300];
    snprintf(web, sizeof web, "%s/web", dir);
    assert_int_equal(mkdir(web, 0755), 0);
    put(web, "index.html", "<!doctype html>");
    put(web, "dashboard.js", "1;");
    put(dir, "secret.js", "secret");
    snprintf(outside, sizeof outside, "%s/secret.js", dir);
    snprintf(link, sizeof link, "%s/planted.js", web);
    assert_int_equal(symlink(outside, link), 0);
    snprintf(sub, sizeof sub, "%s/dir.js", web);
    assert_int_equal(mkdir(sub, 0755), 0);

    struct http_page *p = NULL;
    assert_int_equal(http_page_open(web, &p), 0);
    assert_non_null(http_page_dir(p));
    char *body = NULL;
    size_t len = 0;
    const char *ct = NULL;
    assert_int_equal(http_page_read(p, "dashboard.js", &body, &len, &ct), 0);
    assert_int_equal(len, 2);
    assert_memory_equal(body, "1;", 2);
    assert_string_equal(ct, "text/javascript; charset=utf-8");
    free(body);
    /* A symlink to a file outside, a directory, a missing file, a climb. */
    const char *refused[] = {"planted.js", "dir.js", "missing.js", "../secret.js"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        err_clear();
        body = NULL;
        int rc = http_page_read(p, refused[i], &body, &len, &ct);
        if (rc != FERRY_E_NOTFOUND)
            fail_msg("'%s': got %d, want FERRY_E_NOTFOUND", refused[i], rc);
        assert_null(body);
        assert_non_null(strstr(err_detail(), "no asset named"));
    }
    http_page_close(p);

    /* --http-assets must hold an index.html: one line naming the directory. */
    err_clear();
    assert_int_equal(http_page_open(dir, &p), FERRY_E_INVALID);
    assert_null(p);
    assert_non_null(strstr(err_detail(), "no index.html there"));
    assert_null(strchr(err_detail(), '\n'));
}

/* Without --http-assets and nothing beside the binary (a unit test's), the
 * page still opens: / then answers 404 saying where it looked. */
static void test_not_found_anywhere(void **state)
{
    (void)state;
    struct http_page *p = NULL;
    assert_int_equal(http_page_open(NULL, &p), 0);
    assert_non_null(p);
    if (!http_page_dir(p)) {
        char *body = NULL;
        size_t len = 0;
        const char *ct = NULL;
        err_clear();
        assert_int_equal(http_page_read(p, "index.html", &body, &len, &ct), FERRY_E_NOTFOUND);
        assert_non_null(strstr(err_detail(), "--http-assets"));
    }
    http_page_close(p);
}

static int setup(void **state) { return scratch_setup(state, "http_page"); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_types),
        cmocka_unit_test_setup_teardown(test_read, setup, scratch_teardown),
        cmocka_unit_test(test_not_found_anywhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
