/* Bundles: the writer round-trips and is reproducible; the reader refuses
 * every hostile archive we can think of, says which entry and why, and never
 * creates anything outside its staging directory. */
#include "bundle.h"
#include "error.h"
#include "hash.h"
#include "pathsafe.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cmocka.h>

static char g_root[1024]; /* scratch for this run */
static char g_evil[64];       /* a name no one else would create */
static char g_evil_hex[DIGEST_HEX_LEN + 1]; /* a blob name no one else would create */
static unsigned g_seq;

/* ---- scratch ----------------------------------------------------------- */

static int mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    return mkdir(buf, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_rf(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int group_setup(void **state)
{
    (void)state;
    const char *base = getenv("FERRY_TEST_TMP");
    if (base && *base) {
        if (mkdir_p(base) < 0)
            return -1;
        snprintf(g_root, sizeof g_root, "%s/test_bundle.XXXXXX", base);
    } else {
        snprintf(g_root, sizeof g_root, "/tmp/ferry-test_bundle.XXXXXX");
    }
    if (!mkdtemp(g_root))
        return -1;
    const char *suffix = strrchr(g_root, '.') + 1;
    snprintf(g_evil, sizeof g_evil, "ferry-evil-%ld-%s", (long)getpid(), suffix);
    struct digest d;
    digest_of(g_evil, strlen(g_evil), &d);
    digest_hex(&d, g_evil_hex);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    rm_rf(g_root);
    return 0;
}

/* A fresh path under the scratch root. */
static void scratch_path(char *out, size_t cap, const char *stem)
{
    snprintf(out, cap, "%s/%s.%u", g_root, stem, ++g_seq);
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Whole file into a malloc'd buffer. */
static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    uint8_t *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void assert_file_equals(const char *path, const void *data, size_t len)
{
    size_t n;
    uint8_t *got = slurp(path, &n);
    assert_int_equal(n, len);
    assert_memory_equal(got, data, len);
    free(got);
}

static int entry_count(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void pattern(uint8_t *buf, size_t len, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (uint8_t)x;
    }
}

/* ---- building archives with libarchive's writer ------------------------ */

enum { F_NONE, F_GZIP, F_ZSTD };

static struct archive *tb_open(const char *path, int filter)
{
    struct archive *a = archive_write_new();
    assert_non_null(a);
    assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    if (filter == F_GZIP)
        assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
    else if (filter == F_ZSTD)
        assert_int_equal(archive_write_add_filter_zstd(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    return a;
}

struct ent {
    const char *name;
    unsigned type; /* AE_IF*; 0 means AE_IFREG */
    unsigned perm; /* 0 means 0644 / 0755 */
    const char *data;
    size_t len;
    const char *symlink;
    const char *hardlink;
};

static void tb_add(struct archive *a, const struct ent *x)
{
    struct archive_entry *e = archive_entry_new();
    assert_non_null(e);
    unsigned type = x->type ? x->type : AE_IFREG;
    archive_entry_copy_pathname(e, x->name);
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, x->perm ? x->perm : (type == AE_IFDIR ? 0755 : 0644));
    archive_entry_set_mtime(e, 0, 0);
    if (type == AE_IFREG && !x->hardlink)
        archive_entry_set_size(e, (la_int64_t)x->len);
    else
        archive_entry_set_size(e, 0);
    if (x->symlink)
        archive_entry_copy_symlink(e, x->symlink);
    if (x->hardlink)
        archive_entry_copy_hardlink(e, x->hardlink);
    if (type == AE_IFCHR || type == AE_IFBLK)
        archive_entry_set_rdev(e, makedev(1, 3));
    assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
    if (type == AE_IFREG && !x->hardlink && x->len > 0)
        assert_int_equal(archive_write_data(a, x->data, x->len), (la_ssize_t)x->len);
    archive_entry_free(e);
}

static void tb_close(struct archive *a)
{
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    assert_int_equal(archive_write_free(a), ARCHIVE_OK);
}

static void make_tar(const char *path, int filter, const struct ent *ents, size_t n)
{
    struct archive *a = tb_open(path, filter);
    for (size_t i = 0; i < n; i++)
        tb_add(a, &ents[i]);
    tb_close(a);
}

#define MANIFEST_ENT {.name = "manifest.pb", .data = "m", .len = 1}
#define SIGS_ENT {.name = "signatures.pb", .data = "s", .len = 1}

/* ---- the refusal harness ----------------------------------------------- */

static int walk_bad;
static int walk_check(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path;
    (void)ftw;
    if (flag != FTW_F && flag != FTW_D && flag != FTW_DP)
        walk_bad++;
    else if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode))
        walk_bad++;
    else if (st->st_mode & (S_ISUID | S_ISGID | S_ISVTX))
        walk_bad++;
    return 0;
}

static void assert_no_evil(void)
{
    char p[PATH_MAX];
    struct stat st;
    snprintf(p, sizeof p, "/tmp/%s", g_evil);
    assert_int_equal(lstat(p, &st), -1);
    snprintf(p, sizeof p, "/tmp/%s", g_evil_hex);
    assert_int_equal(lstat(p, &st), -1);
    snprintf(p, sizeof p, "../%s", g_evil); /* relative to the cwd */
    assert_int_equal(lstat(p, &st), -1);
    snprintf(p, sizeof p, "%s/%s", g_root, g_evil);
    assert_int_equal(lstat(p, &st), -1);
}

/* Extracts `tar` into a staging dir under a fresh parent and checks: the
 * code; a one-line detail naming the bundle, the entry (when given) and the
 * reason; the parent holds only the staging dir; the staging dir holds only
 * plain files and directories; nothing named evil appeared anywhere. */
static void expect_refused(const char *tar, const struct bundle_limits *lim, int code,
                           const char *entry, const char *reason)
{
    char parent[2048], staging[PATH_MAX];
    scratch_path(parent, sizeof parent, "case");
    assert_int_equal(mkdir(parent, 0755), 0);
    snprintf(staging, sizeof staging, "%s/staging", parent);
    assert_int_equal(mkdir(staging, 0755), 0);

    err_clear();
    int rc = bundle_extract(tar, staging, lim);
    const char *d = err_detail();
    char want[PATH_MAX + 16];
    snprintf(want, sizeof want, "entry '%s'", entry ? entry : "");
    if (rc != code || (entry && !strstr(d, want)) || (reason && !strstr(d, reason)))
        print_error("bundle_extract(%s) = %d, detail: %s\n", tar, rc, d);
    assert_int_equal(rc, code);
    assert_null(strchr(d, '\n'));
    assert_int_equal(strncmp(d, tar, strlen(tar)), 0);
    if (entry)
        assert_non_null(strstr(d, want));
    if (reason)
        assert_non_null(strstr(d, reason));

    assert_int_equal(entry_count(parent), 1);
    struct stat st;
    assert_int_equal(lstat(staging, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    walk_bad = 0;
    assert_int_equal(nftw(staging, walk_check, 16, FTW_PHYS), 0);
    assert_int_equal(walk_bad, 0);
    assert_no_evil();
    rm_rf(parent);
}

/* ---- writer ------------------------------------------------------------ */

static void write_sample(const char *path, const uint8_t *blob, size_t blob_len,
                         char hex[DIGEST_HEX_LEN + 1])
{
    struct digest d;
    digest_of(blob, blob_len, &d);
    digest_hex(&d, hex);
    char name[DIGEST_HEX_LEN + 8];
    snprintf(name, sizeof name, "blobs/%s", hex);

    struct bundle_writer *w = NULL;
    assert_int_equal(bundle_writer_open(path, &w), 0);
    assert_int_equal(bundle_writer_add(w, "manifest.pb", "manifest-bytes", 14), 0);
    assert_int_equal(bundle_writer_add(w, "signatures.pb", "sig\0bytes", 9), 0);
    assert_int_equal(bundle_writer_begin(w, name, blob_len), 0);
    for (size_t off = 0; off < blob_len; off += 7777) {
        size_t n = blob_len - off < 7777 ? blob_len - off : 7777;
        assert_int_equal(bundle_writer_write(w, blob + off, n), 0);
    }
    assert_int_equal(bundle_writer_end(w), 0);
    assert_int_equal(bundle_writer_close(w), 0);
}

static void test_roundtrip(void **state)
{
    (void)state;
    size_t blob_len = 300000;
    uint8_t *blob = malloc(blob_len);
    assert_non_null(blob);
    pattern(blob, blob_len, 7);
    char tar[PATH_MAX], hex[DIGEST_HEX_LEN + 1];
    scratch_path(tar, sizeof tar, "roundtrip.tar");
    write_sample(tar, blob, blob_len, hex);

    char staging[PATH_MAX], p[PATH_MAX * 2];
    scratch_path(staging, sizeof staging, "staging");
    assert_int_equal(mkdir(staging, 0755), 0);
    err_clear();
    assert_int_equal(bundle_extract(tar, staging, NULL), 0);

    snprintf(p, sizeof p, "%s/manifest.pb", staging);
    assert_file_equals(p, "manifest-bytes", 14);
    snprintf(p, sizeof p, "%s/signatures.pb", staging);
    assert_file_equals(p, "sig\0bytes", 9);
    snprintf(p, sizeof p, "%s/blobs/%s", staging, hex);
    assert_file_equals(p, blob, blob_len);
    struct stat st;
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & ~0644 & 07777, 0);
    assert_int_equal(entry_count(staging), 3);
    snprintf(p, sizeof p, "%s/blobs", staging);
    assert_int_equal(entry_count(p), 1);

    /* The temp file is gone: only the bundle and the staging dir remain
     * among this test's paths. */
    char tmp_prefix[PATH_MAX + 8];
    snprintf(tmp_prefix, sizeof tmp_prefix, "%s.tmp", strrchr(tar, '/') + 1);
    DIR *dir = opendir(g_root);
    assert_non_null(dir);
    struct dirent *de;
    while ((de = readdir(dir)) != NULL)
        assert_int_not_equal(strncmp(de->d_name, tmp_prefix, strlen(tmp_prefix)), 0);
    closedir(dir);

    rm_rf(staging);
    unlink(tar);
    free(blob);
}

/* Same input, same bytes; and every header carries the fixed metadata. */
static void test_writer_reproducible(void **state)
{
    (void)state;
    uint8_t blob[5000];
    pattern(blob, sizeof blob, 3);
    char a[PATH_MAX], b[PATH_MAX], hex[DIGEST_HEX_LEN + 1];
    scratch_path(a, sizeof a, "repro-a.tar");
    scratch_path(b, sizeof b, "repro-b.tar");
    write_sample(a, blob, sizeof blob, hex);
    sleep(1); /* a clock leaking into mtime would now differ */
    write_sample(b, blob, sizeof blob, hex);
    size_t na, nb;
    uint8_t *ba = slurp(a, &na), *bb = slurp(b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(ba, bb, na);
    free(ba);
    free(bb);

    struct archive *r = archive_read_new();
    archive_read_support_format_tar(r);
    assert_int_equal(archive_read_open_filename(r, a, 10240), ARCHIVE_OK);
    struct archive_entry *e;
    int n = 0, dirs = 0;
    while (archive_read_next_header(r, &e) == ARCHIVE_OK) {
        n++;
        assert_int_equal(archive_entry_mtime(e), 0);
        assert_int_equal(archive_entry_uid(e), 0);
        assert_int_equal(archive_entry_gid(e), 0);
        if (archive_entry_filetype(e) == AE_IFDIR) {
            dirs++;
            assert_string_equal(archive_entry_pathname(e), "blobs/");
            assert_int_equal(archive_entry_perm(e), 0755);
        } else {
            assert_int_equal(archive_entry_filetype(e), AE_IFREG);
            assert_int_equal(archive_entry_perm(e), 0644);
        }
    }
    assert_int_equal(n, 4);
    assert_int_equal(dirs, 1);
    archive_read_free(r);
    unlink(a);
    unlink(b);
}

static void assert_no_output(const char *tar)
{
    struct stat st;
    assert_int_equal(lstat(tar, &st), -1);
    char tmp_prefix[PATH_MAX + 8];
    snprintf(tmp_prefix, sizeof tmp_prefix, "%s.tmp", strrchr(tar, '/') + 1);
    DIR *dir = opendir(g_root);
    assert_non_null(dir);
    struct dirent *de;
    while ((de = readdir(dir)) != NULL)
        assert_int_not_equal(strncmp(de->d_name, tmp_prefix, strlen(tmp_prefix)), 0);
    closedir(dir);
}

static void test_writer_refuses_long_member(void **state)
{
    (void)state;
    char tar[PATH_MAX];
    scratch_path(tar, sizeof tar, "long.tar");
    struct bundle_writer *w = NULL;
    assert_int_equal(bundle_writer_open(tar, &w), 0);
    assert_int_equal(bundle_writer_add(w, "manifest.pb", "m", 1), 0);
    assert_int_equal(bundle_writer_begin(w, "signatures.pb", 4), 0);
    assert_int_equal(bundle_writer_write(w, "abc", 3), 0);
    err_clear();
    assert_int_equal(bundle_writer_write(w, "de", 2), FERRY_E_ARCHIVE);
    assert_non_null(strstr(err_detail(), "signatures.pb"));
    assert_non_null(strstr(err_detail(), "more than"));
    /* The writer stays failed: it cannot be talked into a good close. */
    assert_int_equal(bundle_writer_write(w, "d", 1), FERRY_E_ARCHIVE);
    assert_int_equal(bundle_writer_end(w), FERRY_E_ARCHIVE);
    assert_int_equal(bundle_writer_close(w), FERRY_E_ARCHIVE);
    assert_non_null(strstr(err_detail(), "more than"));
    assert_no_output(tar);
}

static void test_writer_refuses_short_member(void **state)
{
    (void)state;
    char tar[PATH_MAX];
    scratch_path(tar, sizeof tar, "short.tar");
    struct bundle_writer *w = NULL;
    assert_int_equal(bundle_writer_open(tar, &w), 0);
    assert_int_equal(bundle_writer_begin(w, "manifest.pb", 10), 0);
    assert_int_equal(bundle_writer_write(w, "12345", 5), 0);
    err_clear();
    assert_int_equal(bundle_writer_end(w), FERRY_E_ARCHIVE);
    assert_non_null(strstr(err_detail(), "manifest.pb"));
    assert_non_null(strstr(err_detail(), "fewer than"));
    assert_int_equal(bundle_writer_close(w), FERRY_E_ARCHIVE);
    assert_no_output(tar);

    /* Closing with a member still open is the same mistake. */
    scratch_path(tar, sizeof tar, "open.tar");
    assert_int_equal(bundle_writer_open(tar, &w), 0);
    assert_int_equal(bundle_writer_begin(w, "manifest.pb", 10), 0);
    assert_int_equal(bundle_writer_close(w), FERRY_E_ARCHIVE);
    assert_no_output(tar);
}

static void test_writer_refuses_names(void **state)
{
    (void)state;
    const char *bad[] = {"notes.txt", "../manifest.pb", "/manifest.pb", "blobs",
                         "blobs/abc",
                         "blobs/ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char tar[PATH_MAX];
        scratch_path(tar, sizeof tar, "badname.tar");
        struct bundle_writer *w = NULL;
        assert_int_equal(bundle_writer_open(tar, &w), 0);
        err_clear();
        assert_int_equal(bundle_writer_add(w, bad[i], "x", 1), FERRY_E_INVALID);
        assert_non_null(strstr(err_detail(), bad[i]));
        assert_int_not_equal(bundle_writer_close(w), 0);
        assert_no_output(tar);
    }
    /* A duplicate would make a bundle the reader refuses. */
    char tar[PATH_MAX];
    scratch_path(tar, sizeof tar, "dupname.tar");
    struct bundle_writer *w = NULL;
    assert_int_equal(bundle_writer_open(tar, &w), 0);
    assert_int_equal(bundle_writer_add(w, "manifest.pb", "x", 1), 0);
    assert_int_equal(bundle_writer_add(w, "manifest.pb", "y", 1), FERRY_E_INVALID);
    bundle_writer_abort(w);
    assert_no_output(tar);
}

static void test_writer_abort_removes_file(void **state)
{
    (void)state;
    char tar[PATH_MAX];
    scratch_path(tar, sizeof tar, "abort.tar");
    struct bundle_writer *w = NULL;
    assert_int_equal(bundle_writer_open(tar, &w), 0);
    assert_int_equal(bundle_writer_add(w, "manifest.pb", "m", 1), 0);
    bundle_writer_abort(w);
    assert_no_output(tar);

    /* A directory that does not exist: an error naming the path. */
    char missing[PATH_MAX + 16];
    scratch_path(missing, sizeof missing, "nodir");
    strcat(missing, "/x.tar");
    err_clear();
    assert_int_equal(bundle_writer_open(missing, &w), -ENOENT);
    assert_non_null(strstr(err_detail(), missing));
}

/* ---- reader: accepted inputs ------------------------------------------- */

static void extract_ok(const char *tar, const char *hex, const char *blob, size_t len)
{
    char staging[PATH_MAX], p[PATH_MAX * 2];
    scratch_path(staging, sizeof staging, "staging");
    assert_int_equal(mkdir(staging, 0755), 0);
    err_clear();
    int rc = bundle_extract(tar, staging, NULL);
    if (rc != 0)
        print_error("%s: %d %s\n", tar, rc, err_detail());
    assert_int_equal(rc, 0);
    snprintf(p, sizeof p, "%s/blobs/%s", staging, hex);
    assert_file_equals(p, blob, len);
    rm_rf(staging);
}

static void test_compressed_bundles(void **state)
{
    (void)state;
    char name[80];
    snprintf(name, sizeof name, "blobs/%s", g_evil_hex);
    /* blobs/<hex> before blobs/: the parent is created on the way. */
    const struct ent ents[] = {
        MANIFEST_ENT, SIGS_ENT,
        {.name = name, .data = "blob data", .len = 9},
        {.name = "blobs/", .type = AE_IFDIR},
    };
    char tar[PATH_MAX];
    scratch_path(tar, sizeof tar, "plain.tar");
    make_tar(tar, F_NONE, ents, 4);
    extract_ok(tar, g_evil_hex, "blob data", 9);
    scratch_path(tar, sizeof tar, "gzip.tar.gz");
    make_tar(tar, F_GZIP, ents, 4);
    extract_ok(tar, g_evil_hex, "blob data", 9);
    scratch_path(tar, sizeof tar, "zstd.tar.zst");
    make_tar(tar, F_ZSTD, ents, 4);
    extract_ok(tar, g_evil_hex, "blob data", 9);
}

/* ---- reader: hostile inputs -------------------------------------------- */

static void test_refuses_dotdot(void **state)
{
    (void)state;
    char name[128], tar[PATH_MAX];
    snprintf(name, sizeof name, "../%s", g_evil);
    const struct ent ents[] = {MANIFEST_ENT, {.name = name, .data = "x", .len = 1}};
    scratch_path(tar, sizeof tar, "dotdot.tar");
    make_tar(tar, F_NONE, ents, 2);
    expect_refused(tar, NULL, FERRY_E_UNSAFE_PATH, name, "'.' or '..' component");

    snprintf(name, sizeof name, "blobs/../../%s", g_evil);
    const struct ent ents2[] = {{.name = name, .data = "x", .len = 1}};
    scratch_path(tar, sizeof tar, "dotdot2.tar");
    make_tar(tar, F_NONE, ents2, 1);
    expect_refused(tar, NULL, FERRY_E_UNSAFE_PATH, name, "'.' or '..' component");
}

static void test_refuses_absolute(void **state)
{
    (void)state;
    char name[128], tar[PATH_MAX];
    snprintf(name, sizeof name, "/tmp/%s", g_evil);
    const struct ent ents[] = {{.name = name, .data = "x", .len = 1}, MANIFEST_ENT, SIGS_ENT};
    scratch_path(tar, sizeof tar, "absolute.tar");
    make_tar(tar, F_NONE, ents, 3);
    expect_refused(tar, NULL, FERRY_E_UNSAFE_PATH, name, "absolute path");
}

static void test_refuses_symlink_escape(void **state)
{
    (void)state;
    char name[80], tar[PATH_MAX];
    snprintf(name, sizeof name, "blobs/%s", g_evil_hex);
    const struct ent ents[] = {
        MANIFEST_ENT,
        {.name = "blobs", .type = AE_IFLNK, .perm = 0777, .symlink = "/tmp"},
        {.name = name, .data = "through the link", .len = 16},
    };
    scratch_path(tar, sizeof tar, "symlink.tar");
    make_tar(tar, F_NONE, ents, 3);
    expect_refused(tar, NULL, FERRY_E_UNSAFE_ENTRY, "blobs", "symlink not allowed");

    /* A symlink with an allowed member name, too. */
    const struct ent ents2[] = {
        {.name = "manifest.pb", .type = AE_IFLNK, .perm = 0777, .symlink = "/etc/passwd"},
    };
    scratch_path(tar, sizeof tar, "symlink2.tar");
    make_tar(tar, F_NONE, ents2, 1);
    expect_refused(tar, NULL, FERRY_E_UNSAFE_ENTRY, "manifest.pb", "symlink not allowed");
}

static void test_refuses_hardlink(void **state)
{
    (void)state;
    struct stat before, after;
    assert_int_equal(stat("/etc/passwd", &before), 0);
    char name[80], tar[PATH_MAX];
    snprintf(name, sizeof name, "blobs/%s", g_evil_hex);
    const struct ent ents[] = {MANIFEST_ENT, {.name = name, .hardlink = "/etc/passwd"}};
    scratch_path(tar, sizeof tar, "hardlink.tar");
    make_tar(tar, F_NONE, ents, 2);
    expect_refused(tar, NULL, FERRY_E_UNSAFE_ENTRY, name, "hardlink not allowed");
    assert_int_equal(stat("/etc/passwd", &after), 0);
    assert_int_equal(before.st_nlink, after.st_nlink);

    /* Within the bundle is no better. */
    const struct ent ents2[] = {MANIFEST_ENT, {.name = "signatures.pb", .hardlink = "manifest.pb"}};
    scratch_path(tar, sizeof tar, "hardlink2.tar");
    make_tar(tar, F_NONE, ents2, 2);
    expect_refused(tar, NULL, FERRY_E_UNSAFE_ENTRY, "signatures.pb", "hardlink not allowed");
}

static void test_refuses_device(void **state)
{
    (void)state;
    char tar[PATH_MAX];
    const struct ent ents[] = {{.name = "manifest.pb", .type = AE_IFCHR, .perm = 0666}};
    scratch_path(tar, sizeof tar, "chardev.tar");
    make_tar(tar, F_NONE, ents, 1);
    expect_refused(tar, NULL, FERRY_E_UNSAFE_ENTRY, "manifest.pb", "character device not allowed");

    const struct ent ents2[] = {{.name = "signatures.pb", .type = AE_IFBLK, .perm = 0666}};
    scratch_path(tar, sizeof tar, "blockdev.tar");
    make_tar(tar, F_NONE, ents2, 1);
    expect_refused(tar, NULL, FERRY_E_UNSAFE_ENTRY, "signatures.pb", "block device not allowed");
}

static void test_refuses_fifo(void **state)
{
    (void)state;
    char tar[PATH_MAX];
    const struct ent ents[] = {MANIFEST_ENT, {.name = "signatures.pb", .type = AE_IFIFO}};
    scratch_path(tar, sizeof tar, "fifo.tar");
    make_tar(tar, F_NONE, ents, 2);
    expect_refused(tar, NULL, FERRY_E_UNSAFE_ENTRY, "signatures.pb", "FIFO not allowed");
}

static void test_refuses_mode_bits(void **state)
{
    (void)state;
    char tar[PATH_MAX];
    const struct ent ents[] = {{.name = "manifest.pb", .perm = 04755, .data = "#!", .len = 2}};
    scratch_path(tar, sizeof tar, "setuid.tar");
    make_tar(tar, F_NONE, ents, 1);
    expect_refused(tar, NULL, FERRY_E_UNSAFE_ENTRY, "manifest.pb", "setuid bit not allowed");

    const struct ent ents2[] = {MANIFEST_ENT, {.name = "signatures.pb", .perm = 02755}};
    scratch_path(tar, sizeof tar, "setgid.tar");
    make_tar(tar, F_NONE, ents2, 2);
    expect_refused(tar, NULL, FERRY_E_UNSAFE_ENTRY, "signatures.pb", "setgid bit not allowed");

    const struct ent ents3[] = {{.name = "blobs/", .type = AE_IFDIR, .perm = 01777}};
    scratch_path(tar, sizeof tar, "sticky.tar");
    make_tar(tar, F_NONE, ents3, 1);
    expect_refused(tar, NULL, FERRY_E_UNSAFE_ENTRY, "blobs/", "sticky bit not allowed");
}

static void test_refuses_layout(void **state)
{
    (void)state;
    char tar[PATH_MAX];
    const struct ent ents[] = {MANIFEST_ENT, {.name = "notes.txt", .data = "hi", .len = 2}};
    scratch_path(tar, sizeof tar, "unknown.tar");
    make_tar(tar, F_NONE, ents, 2);
    expect_refused(tar, NULL, FERRY_E_UNSAFE_ENTRY, "notes.txt", "not a bundle member name");

    const struct ent ents2[] = {{.name = "blobs", .data = "not a dir", .len = 9}};
    scratch_path(tar, sizeof tar, "blobsfile.tar");
    make_tar(tar, F_NONE, ents2, 1);
    expect_refused(tar, NULL, FERRY_E_UNSAFE_ENTRY, "blobs", "must be a directory");

    const struct ent ents3[] = {{.name = "manifest.pb/", .type = AE_IFDIR}};
    scratch_path(tar, sizeof tar, "manifestdir.tar");
    make_tar(tar, F_NONE, ents3, 1);
    expect_refused(tar, NULL, FERRY_E_UNSAFE_ENTRY, "manifest.pb/", "must be a regular file");

    const struct ent ents4[] = {
        {.name = "blobs/ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789",
         .data = "x", .len = 1}};
    scratch_path(tar, sizeof tar, "upperhex.tar");
    make_tar(tar, F_NONE, ents4, 1);
    expect_refused(tar, NULL, FERRY_E_UNSAFE_ENTRY, ents4[0].name, "not a bundle member name");

    const struct ent ents5[] = {{.name = "./manifest.pb", .data = "x", .len = 1}};
    scratch_path(tar, sizeof tar, "dotslash.tar");
    make_tar(tar, F_NONE, ents5, 1);
    expect_refused(tar, NULL, FERRY_E_UNSAFE_PATH, "./manifest.pb", "'.' or '..' component");

    /* A control byte: refused, and the detail stays one printable line. */
    const struct ent ents6[] = {{.name = "manifest.pb\nFAKE", .data = "x", .len = 1}};
    scratch_path(tar, sizeof tar, "newline.tar");
    make_tar(tar, F_NONE, ents6, 1);
    expect_refused(tar, NULL, FERRY_E_UNSAFE_PATH, "manifest.pb\\x0aFAKE", "control character");
}

static void test_refuses_duplicate(void **state)
{
    (void)state;
    char tar[PATH_MAX];
    const struct ent ents[] = {
        MANIFEST_ENT, SIGS_ENT, {.name = "manifest.pb", .data = "second", .len = 6}};
    scratch_path(tar, sizeof tar, "dup.tar");
    make_tar(tar, F_NONE, ents, 3);
    expect_refused(tar, NULL, FERRY_E_UNSAFE_ENTRY, "manifest.pb", "duplicate entry");

    const struct ent ents2[] = {MANIFEST_ENT, SIGS_ENT,
        {.name = "blobs/", .type = AE_IFDIR}, {.name = "blobs", .type = AE_IFDIR}};
    scratch_path(tar, sizeof tar, "dupdir.tar");
    make_tar(tar, F_NONE, ents2, 4);
    /* libarchive writes both as "blobs/"; one trailing '/' is stripped. */
    expect_refused(tar, NULL, FERRY_E_UNSAFE_ENTRY, "blobs/", "duplicate entry");
}

static void test_refuses_too_many_entries(void **state)
{
    (void)state;
    char tar[PATH_MAX], name[80];
    snprintf(name, sizeof name, "blobs/%s", g_evil_hex);
    const struct ent ents[] = {
        MANIFEST_ENT, SIGS_ENT, {.name = "blobs/", .type = AE_IFDIR},
        {.name = name, .data = "x", .len = 1}};
    scratch_path(tar, sizeof tar, "many.tar");
    make_tar(tar, F_NONE, ents, 4);
    struct bundle_limits lim;
    bundle_limits_default(&lim);
    lim.max_entries = 3;
    expect_refused(tar, &lim, FERRY_E_LIMIT, name, "more than 3 entries");
    lim.max_entries = 4;
    char staging[PATH_MAX];
    scratch_path(staging, sizeof staging, "staging");
    assert_int_equal(mkdir(staging, 0755), 0);
    assert_int_equal(bundle_extract(tar, staging, &lim), 0);
    rm_rf(staging);
}

static void test_refuses_big_entry(void **state)
{
    (void)state;
    static char big[3000];
    memset(big, 'b', sizeof big);
    char tar[PATH_MAX];
    const struct ent ents[] = {{.name = "manifest.pb", .data = big, .len = 2000}, SIGS_ENT};
    scratch_path(tar, sizeof tar, "bigentry.tar");
    make_tar(tar, F_NONE, ents, 2);
    struct bundle_limits lim;
    bundle_limits_default(&lim);
    lim.max_entry_bytes = 1999;
    expect_refused(tar, &lim, FERRY_E_LIMIT, "manifest.pb", "entry limit");
}

static void test_refuses_total(void **state)
{
    (void)state;
    static char big[1000];
    memset(big, 't', sizeof big);
    char tar[PATH_MAX];
    const struct ent ents[] = {{.name = "manifest.pb", .data = big, .len = 1000},
                               {.name = "signatures.pb", .data = big, .len = 1000}};
    scratch_path(tar, sizeof tar, "total.tar");
    make_tar(tar, F_NONE, ents, 2);
    struct bundle_limits lim;
    bundle_limits_default(&lim);
    lim.max_total_bytes = 1999;
    lim.max_entry_bytes = 1000;
    expect_refused(tar, &lim, FERRY_E_LIMIT, "signatures.pb", "total limit");
}

static void test_refuses_truncated(void **state)
{
    (void)state;
    uint8_t blob[20000];
    pattern(blob, sizeof blob, 11);
    char tar[PATH_MAX], hex[DIGEST_HEX_LEN + 1];
    scratch_path(tar, sizeof tar, "truncated.tar");
    write_sample(tar, blob, sizeof blob, hex);
    /* manifest (1024) + signatures (1024) + blobs/ (512) + blob header (512)
     * + part of the blob's data. */
    assert_int_equal(truncate(tar, 3072 + 5000), 0);
    char name[80];
    snprintf(name, sizeof name, "blobs/%s", hex);
    expect_refused(tar, NULL, FERRY_E_ARCHIVE, name, "Truncated");

    /* Cut inside a header. */
    scratch_path(tar, sizeof tar, "truncated2.tar");
    write_sample(tar, blob, sizeof blob, hex);
    assert_int_equal(truncate(tar, 1024 + 200), 0);
    expect_refused(tar, NULL, FERRY_E_ARCHIVE, NULL, "runcated");
}

static void test_refuses_garbage(void **state)
{
    (void)state;
    uint8_t junk[8192];
    pattern(junk, sizeof junk, 99);
    junk[0] = 'J'; /* not a gzip or zstd magic by chance */
    char tar[PATH_MAX];
    scratch_path(tar, sizeof tar, "garbage.tar");
    write_bytes(tar, junk, sizeof junk);
    expect_refused(tar, NULL, FERRY_E_ARCHIVE, NULL, "Unrecognized archive format");

    /* gzip of garbage */
    uint8_t gz[64] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    memcpy(gz + 10, junk, sizeof gz - 10);
    scratch_path(tar, sizeof tar, "garbage.tar.gz");
    write_bytes(tar, gz, sizeof gz);
    expect_refused(tar, NULL, FERRY_E_ARCHIVE, NULL, NULL);
}

/* Another archive format carrying the right names is still not a bundle. */
static void test_refuses_other_formats(void **state)
{
    (void)state;
    char tar[PATH_MAX];
    scratch_path(tar, sizeof tar, "bundle.cpio");
    struct archive *a = archive_write_new();
    assert_int_equal(archive_write_set_format_cpio_newc(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_filename(a, tar), ARCHIVE_OK);
    const struct ent m = MANIFEST_ENT, s = SIGS_ENT;
    tb_add(a, &m);
    tb_add(a, &s);
    tb_close(a);
    expect_refused(tar, NULL, FERRY_E_ARCHIVE, NULL, NULL);

    scratch_path(tar, sizeof tar, "bundle.zip");
    a = archive_write_new();
    assert_int_equal(archive_write_set_format_zip(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_filename(a, tar), ARCHIVE_OK);
    tb_add(a, &m);
    tb_add(a, &s);
    tb_close(a);
    expect_refused(tar, NULL, FERRY_E_ARCHIVE, NULL, NULL);
}

static void test_missing_members(void **state)
{
    (void)state;
    char tar[PATH_MAX];
    /* A tar with no entries at all. */
    scratch_path(tar, sizeof tar, "noentries.tar");
    make_tar(tar, F_NONE, NULL, 0);
    expect_refused(tar, NULL, FERRY_E_ARCHIVE, NULL, "no manifest.pb");

    const struct ent ents2[] = {MANIFEST_ENT};
    scratch_path(tar, sizeof tar, "nosigs.tar");
    make_tar(tar, F_NONE, ents2, 1);
    expect_refused(tar, NULL, FERRY_E_ARCHIVE, NULL, "no signatures.pb");

    scratch_path(tar, sizeof tar, "empty.tar");
    write_bytes(tar, "", 0);
    expect_refused(tar, NULL, FERRY_E_ARCHIVE, NULL, NULL);
}

static void test_staging_must_be_empty_dir(void **state)
{
    (void)state;
    char tar[PATH_MAX], staging[PATH_MAX], p[PATH_MAX * 2];
    const struct ent ents[] = {MANIFEST_ENT, SIGS_ENT};
    scratch_path(tar, sizeof tar, "ok.tar");
    make_tar(tar, F_NONE, ents, 2);

    scratch_path(staging, sizeof staging, "staging");
    assert_int_equal(mkdir(staging, 0755), 0);
    snprintf(p, sizeof p, "%s/manifest.pb", staging);
    write_bytes(p, "old", 3);
    err_clear();
    assert_int_equal(bundle_extract(tar, staging, NULL), -EEXIST);
    assert_non_null(strstr(err_detail(), staging));
    assert_file_equals(p, "old", 3);
    rm_rf(staging);

    scratch_path(staging, sizeof staging, "notadir");
    write_bytes(staging, "", 0);
    assert_int_equal(bundle_extract(tar, staging, NULL), -ENOTDIR);
    unlink(staging);

    scratch_path(staging, sizeof staging, "missing");
    assert_int_equal(bundle_extract(tar, staging, NULL), -ENOENT);

    /* A bundle that does not exist. */
    scratch_path(staging, sizeof staging, "staging");
    assert_int_equal(mkdir(staging, 0755), 0);
    scratch_path(p, sizeof p, "nosuch.tar");
    err_clear();
    assert_int_equal(bundle_extract(p, staging, NULL), -ENOENT);
    assert_non_null(strstr(err_detail(), p));
    rm_rf(staging);
}

static void test_limits_env(void **state)
{
    (void)state;
    struct bundle_limits l;
    unsetenv("FERRY_BUNDLE_MAX_ENTRIES");
    unsetenv("FERRY_BUNDLE_MAX_BYTES");
    bundle_limits_default(&l);
    assert_int_equal(l.max_entries, 100000);
    assert_true(l.max_total_bytes == (64ull << 30));
    assert_true(l.max_entry_bytes == (16ull << 30));

    setenv("FERRY_BUNDLE_MAX_ENTRIES", "100", 1);
    setenv("FERRY_BUNDLE_MAX_BYTES", "1048576", 1);
    bundle_limits_default(&l);
    assert_int_equal(l.max_entries, 100);
    assert_int_equal(l.max_total_bytes, 1048576);
    assert_int_equal(l.max_entry_bytes, 1048576);

    /* A bad value is an error naming the variable, not a silent default. */
    setenv("FERRY_BUNDLE_MAX_ENTRIES", "12abc", 1);
    err_clear();
    assert_int_equal(bundle_limits_default(&l), FERRY_E_INVALID);
    assert_non_null(strstr(err_detail(), "FERRY_BUNDLE_MAX_ENTRIES '12abc'"));
    assert_int_equal(l.max_entries, 100000);
    setenv("FERRY_BUNDLE_MAX_ENTRIES", "100", 1);
    setenv("FERRY_BUNDLE_MAX_BYTES", "-5", 1);
    assert_int_equal(bundle_limits_default(&l), FERRY_E_INVALID);
    assert_non_null(strstr(err_detail(), "FERRY_BUNDLE_MAX_BYTES"));
    assert_int_equal(l.max_entries, 100000);
    assert_true(l.max_total_bytes == (64ull << 30));

    /* They only lower the caps: a larger value is refused, never applied. */
    setenv("FERRY_BUNDLE_MAX_ENTRIES", "100001", 1);
    unsetenv("FERRY_BUNDLE_MAX_BYTES");
    err_clear();
    assert_int_equal(bundle_limits_default(&l), FERRY_E_INVALID);
    assert_non_null(strstr(err_detail(), "can only lower"));
    assert_int_equal(l.max_entries, 100000);
    unsetenv("FERRY_BUNDLE_MAX_ENTRIES");
    setenv("FERRY_BUNDLE_MAX_BYTES", "68719476737", 1); /* 64 GiB + 1 */
    assert_int_equal(bundle_limits_default(&l), FERRY_E_INVALID);
    assert_true(l.max_total_bytes == (64ull << 30));
    assert_true(l.max_entry_bytes == (16ull << 30));
    /* and bundle_extract with the defaults refuses to start */
    char tar[PATH_MAX], staging[PATH_MAX];
    const struct ent ents[] = {MANIFEST_ENT, SIGS_ENT};
    scratch_path(tar, sizeof tar, "env.tar");
    make_tar(tar, F_NONE, ents, 2);
    scratch_path(staging, sizeof staging, "staging");
    assert_int_equal(mkdir(staging, 0755), 0);
    assert_int_equal(bundle_extract(tar, staging, NULL), FERRY_E_INVALID);
    assert_int_equal(entry_count(staging), 0);
    rm_rf(staging);
    unsetenv("FERRY_BUNDLE_MAX_ENTRIES");
    unsetenv("FERRY_BUNDLE_MAX_BYTES");
}

/* ---- order and verification ------------------------------------------- */

static void test_refuses_out_of_order(void **state)
{
    (void)state;
    char tar[PATH_MAX], name[80];
    snprintf(name, sizeof name, "blobs/%s", g_evil_hex);
    const struct ent blob_first[] = {
        {.name = name, .data = "x", .len = 1}, MANIFEST_ENT, SIGS_ENT};
    scratch_path(tar, sizeof tar, "blobfirst.tar");
    make_tar(tar, F_NONE, blob_first, 3);
    expect_refused(tar, NULL, FERRY_E_UNSAFE_ENTRY, name, "out of order");

    const struct ent dir_first[] = {{.name = "blobs/", .type = AE_IFDIR}, MANIFEST_ENT, SIGS_ENT};
    scratch_path(tar, sizeof tar, "dirfirst.tar");
    make_tar(tar, F_NONE, dir_first, 3);
    expect_refused(tar, NULL, FERRY_E_UNSAFE_ENTRY, "blobs", "out of order");

    const struct ent sigs_first[] = {SIGS_ENT, MANIFEST_ENT};
    scratch_path(tar, sizeof tar, "sigsfirst.tar");
    make_tar(tar, F_NONE, sigs_first, 2);
    expect_refused(tar, NULL, FERRY_E_UNSAFE_ENTRY, "signatures.pb", "out of order");

    const struct ent blob_second[] = {MANIFEST_ENT, {.name = name, .data = "x", .len = 1},
                                      SIGS_ENT};
    scratch_path(tar, sizeof tar, "blobsecond.tar");
    make_tar(tar, F_NONE, blob_second, 3);
    expect_refused(tar, NULL, FERRY_E_UNSAFE_ENTRY, name, "out of order");
}

static void test_writer_orders_heads(void **state)
{
    (void)state;
    char tar[PATH_MAX], name[80];
    snprintf(name, sizeof name, "blobs/%s", g_evil_hex);
    struct bundle_writer *w = NULL;
    scratch_path(tar, sizeof tar, "wblobfirst.tar");
    assert_int_equal(bundle_writer_open(tar, &w), 0);
    err_clear();
    assert_int_equal(bundle_writer_add(w, name, "x", 1), FERRY_E_INVALID);
    assert_non_null(strstr(err_detail(), "out of order"));
    assert_int_not_equal(bundle_writer_close(w), 0);
    assert_no_output(tar);

    scratch_path(tar, sizeof tar, "wsigsfirst.tar");
    assert_int_equal(bundle_writer_open(tar, &w), 0);
    assert_int_equal(bundle_writer_add(w, "signatures.pb", "s", 1), FERRY_E_INVALID);
    bundle_writer_abort(w);
    assert_no_output(tar);

    /* A bundle without its signed part is never finished. */
    scratch_path(tar, sizeof tar, "wmanifestonly.tar");
    assert_int_equal(bundle_writer_open(tar, &w), 0);
    assert_int_equal(bundle_writer_add(w, "manifest.pb", "m", 1), 0);
    err_clear();
    assert_int_equal(bundle_writer_close(w), FERRY_E_ARCHIVE);
    assert_non_null(strstr(err_detail(), "signatures.pb"));
    assert_no_output(tar);
}

/* A verifier for the tests: checks it sees the heads (and is called once,
 * before any blob), then plans what `want` lists. */
struct vplan {
    int calls;
    int fail;               /* return this instead */
    const char *mbytes, *sbytes;
    size_t mlen, slen;
    struct bundle_blob want[4];
    size_t n_want;
    uint64_t carried;
    const char *staging;    /* must hold nothing yet when called */
};

static int test_verify(void *arg, const uint8_t *m, size_t mlen, const uint8_t *sg, size_t slen,
                       struct bundle_plan *plan)
{
    struct vplan *v = arg;
    v->calls++;
    assert_int_equal(mlen, v->mlen);
    assert_memory_equal(m, v->mbytes, mlen);
    assert_int_equal(slen, v->slen);
    assert_memory_equal(sg, v->sbytes, slen);
    if (v->staging)
        assert_int_equal(entry_count(v->staging), 0); /* nothing written before this */
    if (v->fail)
        return err_set(v->fail, "test verifier refused it");
    plan->blobs = calloc(v->n_want ? v->n_want : 1, sizeof *plan->blobs);
    assert_non_null(plan->blobs);
    memcpy(plan->blobs, v->want, v->n_want * sizeof *v->want);
    plan->n = v->n_want;
    plan->carried = v->carried;
    return 0;
}

static uint64_t tree_bytes_total;
static int tree_bytes_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path;
    (void)ftw;
    if (flag == FTW_F)
        tree_bytes_total += (uint64_t)st->st_size;
    return 0;
}

static uint64_t tree_bytes(const char *dir)
{
    tree_bytes_total = 0;
    assert_int_equal(nftw(dir, tree_bytes_one, 16, FTW_PHYS), 0);
    return tree_bytes_total;
}

static void blob_of(const void *data, size_t len, char name[80], struct bundle_blob *b)
{
    struct digest d;
    digest_of(data, len, &d);
    digest_hex(&d, b->hex);
    b->size = len;
    snprintf(name, 80, "blobs/%s", b->hex);
}

/* Only the planned blobs are written; the heads stay in memory; a blob the
 * plan does not name is skipped. */
static void test_verified_extracts_only_planned(void **state)
{
    (void)state;
    static uint8_t a[70000], b[50000];
    pattern(a, sizeof a, 21);
    pattern(b, sizeof b, 22);
    char na[80], nb[80];
    struct vplan v = {.mbytes = "m", .mlen = 1, .sbytes = "s", .slen = 1};
    blob_of(a, sizeof a, na, &v.want[0]);
    struct bundle_blob bb;
    blob_of(b, sizeof b, nb, &bb);
    v.n_want = 1;
    v.carried = sizeof a; /* the manifest names a only */
    const struct ent ents[] = {MANIFEST_ENT, SIGS_ENT, {.name = "blobs/", .type = AE_IFDIR},
                               {.name = nb, .data = (const char *)b, .len = sizeof b},
                               {.name = na, .data = (const char *)a, .len = sizeof a}};
    char tar[PATH_MAX], staging[PATH_MAX], p[PATH_MAX * 2];
    scratch_path(tar, sizeof tar, "planned.tar.gz");
    make_tar(tar, F_GZIP, ents, 5);
    scratch_path(staging, sizeof staging, "staging");
    assert_int_equal(mkdir(staging, 0755), 0);
    v.staging = staging;
    err_clear();
    int rc = bundle_extract_verified(tar, staging, NULL, test_verify, &v);
    if (rc != 0)
        print_error("%d %s\n", rc, err_detail());
    assert_int_equal(rc, 0);
    assert_int_equal(v.calls, 1);
    snprintf(p, sizeof p, "%s/blobs/%s", staging, v.want[0].hex);
    assert_file_equals(p, a, sizeof a);
    assert_int_equal(entry_count(staging), 1); /* blobs/ only: no manifest.pb on disk */
    snprintf(p, sizeof p, "%s/blobs", staging);
    assert_int_equal(entry_count(p), 1);
    assert_int_equal(tree_bytes(staging), sizeof a);
    rm_rf(staging);

    /* A plan that names nothing (the destination has it all): nothing is
     * written at all. */
    v.n_want = 0;
    v.calls = 0;
    assert_int_equal(mkdir(staging, 0755), 0);
    assert_int_equal(bundle_extract_verified(tar, staging, NULL, test_verify, &v), 0);
    assert_int_equal(v.calls, 1);
    assert_int_equal(tree_bytes(staging), 0);
    rm_rf(staging);

    /* A planned blob the bundle lacks is the caller's to notice: the
     * extraction itself succeeds without it. */
    v.n_want = 1;
    v.want[0] = bb;
    v.want[0].hex[0] = v.want[0].hex[0] == '0' ? '1' : '0';
    assert_int_equal(mkdir(staging, 0755), 0);
    assert_int_equal(bundle_extract_verified(tar, staging, NULL, test_verify, &v), 0);
    assert_int_equal(tree_bytes(staging), 0);
    rm_rf(staging);
}

/* The verifier's refusal stops everything before a blob is read. */
static void test_verified_refusal_writes_nothing(void **state)
{
    (void)state;
    static uint8_t a[10000];
    pattern(a, sizeof a, 23);
    char na[80];
    struct vplan v = {.mbytes = "m", .mlen = 1, .sbytes = "s", .slen = 1,
                      .fail = FERRY_E_UNTRUSTED};
    blob_of(a, sizeof a, na, &v.want[0]);
    const struct ent ents[] = {MANIFEST_ENT, SIGS_ENT,
                               {.name = na, .data = (const char *)a, .len = sizeof a}};
    char tar[PATH_MAX], staging[PATH_MAX];
    scratch_path(tar, sizeof tar, "refusedsig.tar");
    make_tar(tar, F_NONE, ents, 3);
    scratch_path(staging, sizeof staging, "staging");
    assert_int_equal(mkdir(staging, 0755), 0);
    v.staging = staging;
    err_clear();
    assert_int_equal(bundle_extract_verified(tar, staging, NULL, test_verify, &v),
                     FERRY_E_UNTRUSTED);
    assert_string_equal(err_detail(), "test verifier refused it");
    assert_int_equal(entry_count(staging), 0);
    rm_rf(staging);
}

/* A gzip that expands far past its manifest: the header of a planned blob
 * declares 32 MiB where the signed size is 1000 bytes. Refused at the header,
 * before a byte is written; and an unplanned one that large is refused as
 * more than the bundle may carry, without being read. */
static void test_verified_bomb(void **state)
{
    (void)state;
    size_t big = 32u << 20;
    char *zeros = calloc(1, big);
    assert_non_null(zeros);
    char name[80];
    struct vplan v = {.mbytes = "m", .mlen = 1, .sbytes = "s", .slen = 1, .n_want = 1,
                      .carried = 1000};
    blob_of(zeros, 1000, name, &v.want[0]); /* the "signed" blob: 1000 zeros */
    const struct ent ents[] = {MANIFEST_ENT, SIGS_ENT, {.name = "blobs/", .type = AE_IFDIR},
                               {.name = name, .data = zeros, .len = big}};
    char tar[PATH_MAX], staging[PATH_MAX];
    scratch_path(tar, sizeof tar, "bomb.tar.gz");
    make_tar(tar, F_GZIP, ents, 4);
    struct stat st;
    assert_int_equal(stat(tar, &st), 0);
    assert_true((uint64_t)st.st_size < big / 100); /* it is a bomb */
    scratch_path(staging, sizeof staging, "staging");
    assert_int_equal(mkdir(staging, 0755), 0);
    v.staging = staging;
    err_clear();
    assert_int_equal(bundle_extract_verified(tar, staging, NULL, test_verify, &v),
                     FERRY_E_LIMIT);
    assert_non_null(strstr(err_detail(), name));
    assert_non_null(strstr(err_detail(), "33554432 bytes, but the signed manifest says 1000"));
    assert_int_equal(tree_bytes(staging), 0);
    rm_rf(staging);

    /* Not planned at all: more than the manifest accounts for. */
    v.want[0].hex[0] = v.want[0].hex[0] == '0' ? '1' : '0';
    assert_int_equal(mkdir(staging, 0755), 0);
    err_clear();
    assert_int_equal(bundle_extract_verified(tar, staging, NULL, test_verify, &v),
                     FERRY_E_LIMIT);
    assert_non_null(strstr(err_detail(), "carries more than its manifest accounts for"));
    assert_int_equal(tree_bytes(staging), 0);
    rm_rf(staging);

    /* Shape-only extraction has no plan: the caps are all it has. */
    struct bundle_limits lim;
    assert_int_equal(bundle_limits_default(&lim), 0);
    lim.max_total_bytes = 1u << 20;
    lim.max_entry_bytes = 1u << 20;
    expect_refused(tar, &lim, FERRY_E_LIMIT, name, "entry limit");
    free(zeros);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_writer_reproducible),
        cmocka_unit_test(test_writer_refuses_long_member),
        cmocka_unit_test(test_writer_refuses_short_member),
        cmocka_unit_test(test_writer_refuses_names),
        cmocka_unit_test(test_writer_abort_removes_file),
        cmocka_unit_test(test_compressed_bundles),
        cmocka_unit_test(test_refuses_dotdot),
        cmocka_unit_test(test_refuses_absolute),
        cmocka_unit_test(test_refuses_symlink_escape),
        cmocka_unit_test(test_refuses_hardlink),
        cmocka_unit_test(test_refuses_device),
        cmocka_unit_test(test_refuses_fifo),
        cmocka_unit_test(test_refuses_mode_bits),
        cmocka_unit_test(test_refuses_layout),
        cmocka_unit_test(test_refuses_duplicate),
        cmocka_unit_test(test_refuses_too_many_entries),
        cmocka_unit_test(test_refuses_big_entry),
        cmocka_unit_test(test_refuses_total),
        cmocka_unit_test(test_refuses_truncated),
        cmocka_unit_test(test_refuses_garbage),
        cmocka_unit_test(test_refuses_other_formats),
        cmocka_unit_test(test_missing_members),
        cmocka_unit_test(test_staging_must_be_empty_dir),
        cmocka_unit_test(test_limits_env),
        cmocka_unit_test(test_refuses_out_of_order),
        cmocka_unit_test(test_writer_orders_heads),
        cmocka_unit_test(test_verified_extracts_only_planned),
        cmocka_unit_test(test_verified_refusal_writes_nothing),
        cmocka_unit_test(test_verified_bomb),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
