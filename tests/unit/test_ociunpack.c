/* The oci plugin's unpacker (plugins/oci/unpack.c) on layers crafted here
 * with libarchive's writer: order, whiteouts, compression, and hostile
 * entries refused or neutralised with nothing written outside the rootfs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "scratch.h"
#include "unpack.h"

enum { F_FILE, F_DIR, F_LINK, F_HARD, F_CHR, F_FIFO };

struct ent {
    int type;
    const char *name;
    const char *arg; /* file data, symlink target or hard link target */
    int mode;
};

enum { Z_NONE, Z_GZIP, Z_ZSTD };

/* Write a tar of ents to path; fill digest with its "sha256:HEX". */
static void make_layer(const char *path, int z, const struct ent *ents, size_t n, char digest[72])
{
    struct archive *a = archive_write_new();
    assert_non_null(a);
    assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    if (z == Z_GZIP)
        assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
    else if (z == Z_ZSTD)
        assert_int_equal(archive_write_add_filter_zstd(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, ents[i].name);
        archive_entry_set_uid(e, 0);
        archive_entry_set_gid(e, 0);
        int mode = ents[i].mode ? ents[i].mode : (ents[i].type == F_DIR ? 0755 : 0644);
        archive_entry_set_perm(e, (mode_t)mode);
        size_t len = 0;
        switch (ents[i].type) {
        case F_FILE:
            archive_entry_set_filetype(e, AE_IFREG);
            len = strlen(ents[i].arg ? ents[i].arg : "");
            archive_entry_set_size(e, (la_int64_t)len);
            break;
        case F_DIR: archive_entry_set_filetype(e, AE_IFDIR); break;
        case F_LINK:
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_symlink(e, ents[i].arg);
            break;
        case F_HARD:
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_hardlink(e, ents[i].arg);
            archive_entry_set_size(e, 0);
            break;
        case F_CHR:
            archive_entry_set_filetype(e, AE_IFCHR);
            archive_entry_set_rdevmajor(e, 1);
            archive_entry_set_rdevminor(e, 3);
            break;
        case F_FIFO: archive_entry_set_filetype(e, AE_IFIFO); break;
        }
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        if (len)
            assert_int_equal(archive_write_data(a, ents[i].arg, len), (la_ssize_t)len);
        archive_entry_free(e);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);

    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    unsigned char buf[4096];
    size_t r;
    while ((r = fread(buf, 1, sizeof buf, f)) > 0)
        crypto_hash_sha256_update(&h, buf, r);
    fclose(f);
    unsigned char out[32];
    crypto_hash_sha256_final(&h, out);
    strcpy(digest, "sha256:");
    sodium_bin2hex(digest + 7, 65, out, 32);
}

static const char *P(const char *dir, const char *rel)
{
    static char bufs[4][4096];
    static int k;
    k = (k + 1) % 4;
    if ((size_t)snprintf(bufs[k], sizeof bufs[k], "%s/%s", dir, rel) >= sizeof bufs[k])
        fail_msg("path too long");
    return bufs[k];
}

static char *slurp(const char *path)
{
    static char buf[4096];
    int fd = open(path, O_RDONLY | O_NOFOLLOW);
    if (fd < 0)
        return NULL;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n < 0 ? 0 : n] = '\0';
    return buf;
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Entries in a folder (0 when it is empty). */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

/* A canary folder beside the rootfs with one file: hostile layers must
 * leave both exactly as they were. */
static void canary_make(const char *dir)
{
    mkdir(P(dir, "canary"), 0755);
    FILE *f = fopen(P(dir, "canary/secret"), "w");
    assert_non_null(f);
    fputs("host secret\n", f);
    fclose(f);
}

static void canary_check(const char *dir)
{
    assert_int_equal(count_entries(P(dir, "canary")), 1);
    assert_string_equal(slurp(P(dir, "canary/secret")), "host secret\n");
}

static void opts(struct unpack_opts *o)
{
    unsetenv("FERRY_OCI_MAX_ENTRIES");
    unsetenv("FERRY_OCI_MAX_BYTES");
    unsetenv("FERRY_OCI_ALLOW_SETID");
    assert_int_equal(unpack_opts_default(o), 0);
}

static void test_layers_in_order(void **state)
{
    const char *dir = *state;
    char d1[72], d2[72];
    const struct ent l1[] = {
        {F_DIR, "./", NULL, 0755},
        {F_DIR, "./bin/", NULL, 0755},
        {F_FILE, "./bin/tool", "#!/bin/sh\n", 04755},
        {F_FILE, "etc/motd", "one\n", 0},
        {F_LINK, "bin/sh", "tool", 0},
        {F_HARD, "bin/tool2", "./bin/tool", 0},
        {F_CHR, "dev/null", NULL, 0666},
        {F_FIFO, "run/fifo", NULL, 0600},
        {F_FILE, "deep/er/file", "made parents\n", 0},
    };
    const struct ent l2[] = {
        {F_FILE, "etc/motd", "two\n", 0},
        {F_DIR, "etc", NULL, 0700},
    };
    make_layer(P(dir, "l1.tar.gz"), Z_GZIP, l1, sizeof l1 / sizeof *l1, d1);
    make_layer(P(dir, "l2.tar.zst"), Z_ZSTD, l2, sizeof l2 / sizeof *l2, d2);
    char p1[4096], p2[4096];
    snprintf(p1, sizeof p1, "%s", P(dir, "l1.tar.gz"));
    snprintf(p2, sizeof p2, "%s", P(dir, "l2.tar.zst"));
    struct unpack_layer layers[] = {{p1, d1}, {p2, d2}};
    struct unpack_opts o;
    opts(&o);
    struct unpack_stats st;
    char root[4096];
    snprintf(root, sizeof root, "%s/rootfs", dir);
    int rc = unpack_rootfs(root, layers, 2, &o, &st);
    if (rc != 0)
        fail_msg("unpack: %d %s", rc, err_detail());
    assert_string_equal(slurp(P(root, "etc/motd")), "two\n");
    assert_string_equal(slurp(P(root, "deep/er/file")), "made parents\n");
    struct stat s;
    assert_int_equal(lstat(P(root, "bin/tool"), &s), 0);
    assert_int_equal(s.st_mode & 07777, 0755); /* setuid dropped */
    assert_int_equal(st.setid_dropped, 1);
    assert_int_equal(lstat(P(root, "etc"), &s), 0);
    assert_int_equal(s.st_mode & 07777, 0700);
    char link[64];
    ssize_t n = readlink(P(root, "bin/sh"), link, sizeof link - 1);
    assert_true(n > 0);
    link[n] = '\0';
    assert_string_equal(link, "tool");
    struct stat a, b;
    assert_int_equal(lstat(P(root, "bin/tool"), &a), 0);
    assert_int_equal(lstat(P(root, "bin/tool2"), &b), 0);
    assert_true(a.st_ino == b.st_ino);
    assert_false(exists(P(root, "dev/null")));
    assert_int_equal(st.devices_skipped, 1);
    assert_int_equal(lstat(P(root, "run/fifo"), &s), 0);
    assert_true(S_ISFIFO(s.st_mode));
    assert_true(exists(P(dir, "rootfs" UNPACK_MARKER)));
    assert_false(exists(P(dir, "rootfs.partial")));

    /* Once per version: the marker says it is done. */
    assert_int_equal(unpack_rootfs(root, layers, 2, &o, &st), 1);
    /* setuid kept when allowed. */
    unpack_rm_rf(root);
    unlink(P(dir, "rootfs" UNPACK_MARKER));
    o.allow_setid = 1;
    rc = unpack_rootfs(root, layers, 2, &o, &st);
    if (rc != 0)
        fail_msg("unpack again: %d %s", rc, err_detail());
    assert_int_equal(lstat(P(root, "bin/tool"), &s), 0);
    assert_int_equal(s.st_mode & 07777, 04755);
}

static void test_whiteouts(void **state)
{
    const char *dir = *state;
    char d1[72], d2[72];
    const struct ent l1[] = {
        {F_FILE, "a/x", "x", 0},      {F_FILE, "a/y", "y", 0},
        {F_FILE, "b/z", "z", 0},      {F_FILE, "b/sub/deep", "d", 0},
        {F_FILE, "c/keep", "k", 0},   {F_DIR, "gone/", NULL, 0},
        {F_FILE, "gone/inner", "i", 0},
    };
    /* The opaque marker comes after b's new entries: they stay. */
    const struct ent l2[] = {
        {F_FILE, "a/.wh.x", "", 0},
        {F_FILE, "b/new", "n", 0},
        {F_FILE, "b/sub/mine", "m", 0},
        {F_FILE, "b/.wh..wh..opq", "", 0},
        {F_FILE, ".wh.gone", "", 0},
        {F_FILE, "c/.wh.missing", "", 0},
    };
    make_layer(P(dir, "w1.tar"), Z_NONE, l1, sizeof l1 / sizeof *l1, d1);
    make_layer(P(dir, "w2.tar"), Z_NONE, l2, sizeof l2 / sizeof *l2, d2);
    char p1[4096], p2[4096];
    snprintf(p1, sizeof p1, "%s", P(dir, "w1.tar"));
    snprintf(p2, sizeof p2, "%s", P(dir, "w2.tar"));
    struct unpack_layer layers[] = {{p1, d1}, {p2, d2}};
    struct unpack_opts o;
    opts(&o);
    struct unpack_stats st;
    char root[4096];
    snprintf(root, sizeof root, "%s/wroot", dir);
    int rc = unpack_rootfs(root, layers, 2, &o, &st);
    if (rc != 0)
        fail_msg("unpack: %d %s", rc, err_detail());
    assert_false(exists(P(root, "a/x")));
    assert_true(exists(P(root, "a/y")));
    assert_false(exists(P(root, "a/.wh.x")));
    assert_false(exists(P(root, "b/z")));
    assert_false(exists(P(root, "b/sub/deep")));
    assert_true(exists(P(root, "b/new")));
    assert_true(exists(P(root, "b/sub/mine")));
    assert_false(exists(P(root, "b/.wh..wh..opq")));
    assert_false(exists(P(root, "gone")));
    assert_true(exists(P(root, "c/keep")));
    assert_int_equal(st.whiteouts, 4);
}

/* One hostile layer over a base layer; expect refusal (want < 0) or
 * success, and the canary intact either way. */
static int hostile(const char *dir, const char *tag, const struct ent *ents, size_t n)
{
    char base_d[72], d[72], path[4096], base[4096], root[4096];
    const struct ent b[] = {{F_DIR, "x/", NULL, 0}, {F_FILE, "x/here", "h", 0}};
    snprintf(base, sizeof base, "%s/%s-base.tar", dir, tag);
    snprintf(path, sizeof path, "%s/%s.tar", dir, tag);
    snprintf(root, sizeof root, "%s/%s-root", dir, tag);
    make_layer(base, Z_NONE, b, 2, base_d);
    make_layer(path, Z_NONE, ents, n, d);
    struct unpack_layer layers[] = {{base, base_d}, {path, d}};
    struct unpack_opts o;
    opts(&o);
    struct unpack_stats st;
    err_clear();
    int rc = unpack_rootfs(root, layers, 2, &o, &st);
    canary_check(dir);
    if (rc < 0) {
        /* Refused: one line naming the layer and the entry, nothing left. */
        assert_non_null(strstr(err_detail(), "layer 2"));
        assert_null(strchr(err_detail(), '\n'));
        assert_false(exists(root));
        char partial[4200];
        snprintf(partial, sizeof partial, "%s.partial", root);
        assert_false(exists(partial));
    }
    return rc;
}

static void test_hostile(void **state)
{
    const char *dir = *state;
    canary_make(dir);
    char abs_canary[4096], abs_secret[4096], root[4096];

    snprintf(abs_canary, sizeof abs_canary, "%s/canary", dir);
    snprintf(abs_secret, sizeof abs_secret, "%s/canary/secret", dir);

    /* ../ entries */
    const struct ent dotdot[] = {{F_FILE, "../canary/evil", "pwned", 0}};
    assert_int_equal(hostile(dir, "dotdot", dotdot, 1), FERRY_E_UNSAFE_PATH);
    assert_non_null(strstr(err_detail(), "'..'"));
    const struct ent mid[] = {{F_FILE, "x/../../canary/evil", "pwned", 0}};
    assert_int_equal(hostile(dir, "mid", mid, 1), FERRY_E_UNSAFE_PATH);

    /* An absolute symlink, then a file through it: it lands inside. */
    const struct ent abs[] = {{F_LINK, "esc", abs_canary, 0}, {F_FILE, "esc/evil", "pwned", 0}};
    int rc = hostile(dir, "abs", abs, 2);
    if (rc == 0) {
        snprintf(root, sizeof root, "%s/abs-root", dir);
        char inside[8300];
        snprintf(inside, sizeof inside, "%s%s/evil", root, abs_canary);
        assert_true(exists(inside));
    }
    /* ... and one to a folder of the image: followed inside the rootfs. */
    const struct ent absin[] = {{F_LINK, "l", "/x", 0}, {F_FILE, "l/through", "ok", 0}};
    assert_int_equal(hostile(dir, "absin", absin, 2), 0);
    snprintf(root, sizeof root, "%s/absin-root", dir);
    assert_string_equal(slurp(P(root, "x/through")), "ok");

    /* A relative symlink climbing out: clamped at the rootfs. */
    const struct ent up[] = {{F_LINK, "up", "../../../../../../../..", 0},
                             {F_FILE, "up/canary/evil", "pwned", 0}};
    assert_int_equal(hostile(dir, "up", up, 2), 0);
    snprintf(root, sizeof root, "%s/up-root", dir);
    assert_true(exists(P(root, "canary/evil")));

    /* A hard link to a host path. */
    const struct ent hl[] = {{F_HARD, "stolen", abs_secret, 0}};
    assert_int_equal(hostile(dir, "hl", hl, 1), FERRY_E_UNSAFE_ENTRY);
    assert_non_null(strstr(err_detail(), "hard link"));
    const struct ent hl2[] = {{F_HARD, "stolen", "../canary/secret", 0}};
    assert_true(hostile(dir, "hl2", hl2, 1) < 0);
    /* ... and through a symlink that points out. */
    const struct ent hl3[] = {{F_LINK, "out", abs_canary, 0}, {F_HARD, "stolen", "out/secret", 0}};
    assert_int_equal(hostile(dir, "hl3", hl3, 2), FERRY_E_UNSAFE_ENTRY);

    /* A device node: skipped. */
    const struct ent dev[] = {{F_CHR, "x/mem", NULL, 0666}};
    assert_int_equal(hostile(dir, "dev", dev, 1), 0);
    snprintf(root, sizeof root, "%s/dev-root", dir);
    assert_false(exists(P(root, "x/mem")));

    /* Whiteouts naming a path outside the rootfs. */
    const struct ent wh[] = {{F_FILE, "../.wh.canary", "", 0}};
    assert_int_equal(hostile(dir, "wh", wh, 1), FERRY_E_UNSAFE_PATH);
    const struct ent wh2[] = {{F_LINK, "up", "../../../../..", 0}, {F_FILE, "up/.wh.canary", "", 0}};
    assert_int_equal(hostile(dir, "wh2", wh2, 2), 0);
    const struct ent wh3[] = {{F_LINK, "c", abs_canary, 0}, {F_FILE, "c/.wh.secret", "", 0}};
    hostile(dir, "wh3", wh3, 2);
    const struct ent wh4[] = {{F_LINK, "c", abs_canary, 0}, {F_FILE, "c/.wh..wh..opq", "", 0}};
    hostile(dir, "wh4", wh4, 2);
    const struct ent wh5[] = {{F_FILE, "x/.wh...", "", 0}};
    assert_int_equal(hostile(dir, "wh5", wh5, 1), FERRY_E_UNSAFE_PATH);

    /* A file over an earlier symlink replaces the link, not its target. */
    const struct ent over[] = {{F_LINK, "s", abs_secret, 0}, {F_FILE, "s", "pwned", 0}};
    assert_int_equal(hostile(dir, "over", over, 2), 0);
    snprintf(root, sizeof root, "%s/over-root", dir);
    assert_string_equal(slurp(P(root, "s")), "pwned");
    const struct ent overdir[] = {{F_LINK, "d", abs_canary, 0}, {F_DIR, "d/", NULL, 0},
                                  {F_FILE, "d/evil", "pwned", 0}};
    assert_int_equal(hostile(dir, "overdir", overdir, 3), 0);
    canary_check(dir);
}

static void test_digest_and_caps(void **state)
{
    const char *dir = *state;
    char d[72];
    const struct ent l[] = {{F_FILE, "a", "aaaa", 0}, {F_FILE, "b", "bbbb", 0}, {F_FILE, "c", "cccc", 0}};
    make_layer(P(dir, "c.tar"), Z_GZIP, l, 3, d);
    struct unpack_opts o;
    opts(&o);
    struct unpack_stats st;
    char root[4096], bad[72];
    snprintf(root, sizeof root, "%s/croot", dir);
    /* A digest that does not match: refused before anything is unpacked. */
    snprintf(bad, sizeof bad, "%s", d);
    bad[10] = bad[10] == '0' ? '1' : '0';
    char cp[4096];
    snprintf(cp, sizeof cp, "%s", P(dir, "c.tar"));
    struct unpack_layer wrong[] = {{cp, bad}};
    err_clear();
    assert_int_equal(unpack_rootfs(root, wrong, 1, &o, &st), FERRY_E_DIGEST);
    assert_non_null(strstr(err_detail(), "layer 1"));
    assert_non_null(strstr(err_detail(), "sha256"));
    assert_false(exists(root));
    assert_false(exists(P(dir, "croot.partial")));

    struct unpack_layer good[] = {{cp, d}};
    setenv("FERRY_OCI_MAX_ENTRIES", "2", 1);
    assert_int_equal(unpack_opts_default(&o), 0);
    assert_int_equal(o.max_entries, 2);
    assert_int_equal(unpack_rootfs(root, good, 1, &o, &st), FERRY_E_LIMIT);
    assert_non_null(strstr(err_detail(), "more than 2 entries"));
    assert_false(exists(root));
    unsetenv("FERRY_OCI_MAX_ENTRIES");
    setenv("FERRY_OCI_MAX_BYTES", "10", 1);
    assert_int_equal(unpack_opts_default(&o), 0);
    assert_int_equal(unpack_rootfs(root, good, 1, &o, &st), FERRY_E_LIMIT);
    assert_false(exists(root));
    setenv("FERRY_OCI_MAX_BYTES", "lots", 1);
    assert_int_equal(unpack_opts_default(&o), FERRY_E_INVALID);
    assert_non_null(strstr(err_detail(), "FERRY_OCI_MAX_BYTES"));
    unsetenv("FERRY_OCI_MAX_BYTES");
    /* Not a tar at all. */
    FILE *f = fopen(P(dir, "junk"), "w");
    fputs("this is not a tar archive, not even close............................", f);
    fclose(f);
    char jd[72];
    const struct ent none[] = {{F_FILE, "x", "x", 0}};
    make_layer(P(dir, "ok.tar"), Z_NONE, none, 1, jd);
    rename(P(dir, "junk"), P(dir, "ok.tar"));
    char jp[4096];
    snprintf(jp, sizeof jp, "%s", P(dir, "ok.tar"));
    struct unpack_layer junk[] = {{jp, jd}};
    assert_int_equal(unpack_rootfs(root, junk, 1, &o, &st), FERRY_E_DIGEST);
}

static int setup(void **state) { return scratch_setup(state, "ociunpack"); }

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_layers_in_order, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_whiteouts, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_hostile, setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_digest_and_caps, setup, scratch_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
