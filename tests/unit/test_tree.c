/* A workload tree verified against its signed manifest before every start:
 * any edit (bytes, size, mode, an added, removed or replaced entry, a
 * symlink, ferry.yaml) is found and named; the agent's own .ferry/ folder is
 * not content. And the manifest itself: signed by a trusted key, the digest
 * the record pins, the name and version asked for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fsutil.h"
#include "manifest.h"
#include "scratch.h"
#include "tree.h"

#define SPEC_YAML "name: app\nversion: \"1\"\nkind: app\nruntime: exec\nrun: {command: [\"./run\"]}\n"

static int setup_tmp(void **state) { return scratch_setup(state, "test_tree"); }
static int teardown_tmp(void **state) { return scratch_teardown(state); }

static void put(const char *root, const char *rel, const char *data, mode_t mode)
{
    char path[4200], dir[4200], base[1024];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    fs_split(path, dir, sizeof dir, base, sizeof base);
    assert_int_equal(fs_mkdir_p(dir, 0755), 0);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    assert_true(fd >= 0);
    assert_int_equal(fs_write_all(fd, data, strlen(data)), 0);
    assert_int_equal(fchmod(fd, mode), 0);
    assert_int_equal(close(fd), 0);
}

/* A tree as materialization leaves it, and its manifest. */
static Ferry__Manifest *make_tree(const char *root, char *dir, size_t cap)
{
    snprintf(dir, cap, "%s/tree", root);
    put(dir, "ferry.yaml", SPEC_YAML, 0644);
    put(dir, "run", "#!/bin/sh\necho hi\n", 0755);
    put(dir, "lib/data.txt", "data\n", 0644);
    put(dir, "lib/deep/more.txt", "more\n", 0644);
    put(dir, "empty", "", 0644);
    Ferry__Manifest *m = NULL;
    if (manifest_build(dir, &m) != 0)
        fail_msg("manifest_build: %s", err_detail());
    return m;
}

static void expect_ok(const char *dir, const Ferry__Manifest *m)
{
    err_clear();
    if (tree_verify(dir, m) != 0)
        fail_msg("refused an intact tree: %s", err_detail());
}

static void expect_differs(const char *dir, const Ferry__Manifest *m, const char *detail)
{
    err_clear();
    int rc = tree_verify(dir, m);
    if (rc != FERRY_E_DIGEST)
        fail_msg("want FERRY_E_DIGEST for '%s', got %d (%s)", detail, rc, err_detail());
    if (!strstr(err_detail(), detail))
        fail_msg("detail '%s' does not say '%s'", err_detail(), detail);
}

static void test_intact_and_agent_folder(void **state)
{
    char dir[4096], path[4300];
    Ferry__Manifest *m = make_tree(*state, dir, sizeof dir);
    expect_ok(dir, m);
    /* Logs in the agent's folder are not content. */
    put(dir, ".ferry/stdout.log", "output\n", 0644);
    expect_ok(dir, m);
    /* But that folder may not be a way out of the tree. */
    snprintf(path, sizeof path, "%s/.ferry", dir);
    assert_int_equal(fs_rm_rf(path), 0);
    assert_int_equal(symlink("/tmp", path), 0);
    expect_differs(dir, m, "'.ferry' is not the agent's folder");
    manifest_free(m);
}

static void test_edits_are_found(void **state)
{
    char dir[4096], path[4300];
    Ferry__Manifest *m = make_tree(*state, dir, sizeof dir);

    /* Same size, other bytes. */
    put(dir, "run", "#!/bin/sh\necho HI\n", 0755);
    expect_differs(dir, m, "'run' does not match its digest");
    put(dir, "run", "#!/bin/sh\necho hi\n", 0755);
    expect_ok(dir, m);

    put(dir, "lib/data.txt", "data and more\n", 0644);
    expect_differs(dir, m, "'lib/data.txt' is 14 bytes, not 5");
    put(dir, "lib/data.txt", "data\n", 0644);

    snprintf(path, sizeof path, "%s/lib/data.txt", dir);
    assert_int_equal(chmod(path, 0755), 0);
    expect_differs(dir, m, "'lib/data.txt' has mode 0755, not 0644");
    assert_int_equal(chmod(path, 04644), 0);
    expect_differs(dir, m, "has mode 4644");
    assert_int_equal(chmod(path, 0644), 0);

    put(dir, "ferry.yaml", "name: app\nversion: \"1\"\nkind: app\nruntime: exec\nrun: {command: [\"./evil\"]}\n",
        0644);
    expect_differs(dir, m, "'ferry.yaml'");
    put(dir, "ferry.yaml", SPEC_YAML, 0644);
    expect_ok(dir, m);
    manifest_free(m);
}

static void test_added_removed_replaced(void **state)
{
    char dir[4096], path[4300];
    Ferry__Manifest *m = make_tree(*state, dir, sizeof dir);

    put(dir, "sitecustomize.py", "import os\n", 0644);
    expect_differs(dir, m, "'sitecustomize.py' is a file the manifest does not have");
    snprintf(path, sizeof path, "%s/sitecustomize.py", dir);
    assert_int_equal(unlink(path), 0);

    put(dir, "http/server.py", "x\n", 0644);
    expect_differs(dir, m, "'http' is a folder the manifest does not have");
    snprintf(path, sizeof path, "%s/http", dir);
    assert_int_equal(fs_rm_rf(path), 0);

    snprintf(path, sizeof path, "%s/lib/deep/more.txt", dir);
    assert_int_equal(unlink(path), 0);
    expect_differs(dir, m, "'lib/deep/more.txt' is missing");
    put(dir, "lib/deep/more.txt", "more\n", 0644);
    expect_ok(dir, m);

    /* A symlink in place of a file, even to the right bytes. */
    char other[4300];
    snprintf(other, sizeof other, "%s/copy", (const char *)*state);
    put(*state, "copy", "#!/bin/sh\necho hi\n", 0755);
    snprintf(path, sizeof path, "%s/run", dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(symlink(other, path), 0);
    expect_differs(dir, m, "'run' is a symbolic link");
    assert_int_equal(unlink(path), 0);
    put(dir, "run", "#!/bin/sh\necho hi\n", 0755);

    /* A folder on a file's path replaced by a symlink to a copy of it. */
    char lib[4300], elsewhere[4300];
    snprintf(lib, sizeof lib, "%s/lib", dir);
    snprintf(elsewhere, sizeof elsewhere, "%s/elsewhere", (const char *)*state);
    assert_int_equal(rename(lib, elsewhere), 0);
    assert_int_equal(symlink(elsewhere, lib), 0);
    expect_differs(dir, m, "'lib' is a symbolic link");
    assert_int_equal(unlink(lib), 0);
    assert_int_equal(rename(elsewhere, lib), 0);

    /* A FIFO where a file was. */
    snprintf(path, sizeof path, "%s/empty", dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkfifo(path, 0644), 0);
    expect_differs(dir, m, "'empty' is not a regular file");
    assert_int_equal(unlink(path), 0);
    put(dir, "empty", "", 0644);
    expect_ok(dir, m);

    /* No tree at all. */
    snprintf(path, sizeof path, "%s/nothing", (const char *)*state);
    assert_int_equal(tree_verify(path, m), FERRY_E_NOTFOUND);
    manifest_free(m);
}

static void test_manifest_check(void **state)
{
    const char *root = *state;
    char dir[4096], keyp[4200], pub[4200];
    Ferry__Manifest *m = make_tree(root, dir, sizeof dir);
    uint8_t *mb = NULL, *sb = NULL;
    size_t ml = 0, sl = 0;
    assert_int_equal(manifest_encode(m, &mb, &ml), 0);
    manifest_free(m);

    assert_int_equal(key_generate(root, "ops", NULL), 0);
    assert_int_equal(key_generate(root, "other", NULL), 0);
    struct key_secret ops, other;
    snprintf(keyp, sizeof keyp, "%s/ops.key", root);
    assert_int_equal(key_load_secret(keyp, &ops), 0);
    snprintf(keyp, sizeof keyp, "%s/other.key", root);
    assert_int_equal(key_load_secret(keyp, &other), 0);
    struct trust t;
    trust_init(&t);
    snprintf(pub, sizeof pub, "%s/ops.pub", root);
    assert_int_equal(trust_add_file(&t, pub), 0);

    Ferry__SignatureList *sigs = NULL;
    assert_int_equal(manifest_sign(mb, ml, &ops, &sigs), 0);
    assert_int_equal(signatures_encode(sigs, &sb, &sl), 0);
    signatures_free(sigs);
    struct digest d;
    digest_of(mb, ml, &d);

    Ferry__Manifest *out = NULL;
    assert_int_equal(tree_manifest_check(mb, ml, sb, sl, &t, &d, "app", "1", &out), 0);
    assert_string_equal(out->spec->runtime, "exec");
    manifest_free(out);

    /* Another digest pinned. */
    struct digest wrong = d;
    wrong.b[0] ^= 1;
    err_clear();
    assert_int_equal(tree_manifest_check(mb, ml, sb, sl, &t, &wrong, "app", "1", &out),
                     FERRY_E_DIGEST);
    assert_non_null(strstr(err_detail(), "is not the one deployed"));
    /* Asked for as another version. */
    assert_int_equal(tree_manifest_check(mb, ml, sb, sl, &t, &d, "app", "2", &out), FERRY_E_INVALID);
    /* Signed by a key this host does not trust. */
    free(sb);
    assert_int_equal(manifest_sign(mb, ml, &other, &sigs), 0);
    assert_int_equal(signatures_encode(sigs, &sb, &sl), 0);
    signatures_free(sigs);
    err_clear();
    assert_int_equal(tree_manifest_check(mb, ml, sb, sl, &t, &d, "app", "1", &out), FERRY_E_UNTRUSTED);
    assert_non_null(strstr(err_detail(), "app@1: manifest signed by untrusted key"));

    key_secret_wipe(&ops);
    key_secret_wipe(&other);
    trust_fini(&t);
    free(mb);
    free(sb);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_intact_and_agent_folder, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_edits_are_found, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_added_removed_replaced, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_manifest_check, setup_tmp, teardown_tmp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
