/* Reading OCI images at publish: layouts, tars and docker save archives
 * crafted here byte by byte, each refusal with its one line, and nothing
 * left behind by a refused tar. */
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
#include "fsutil.h"
#include "hash.h"
#include "manifest.h"
#include "ociimage.h"
#include "scratch.h"
#include "spec.h"

static int setup_tmp(void **state)
{
    int rc = scratch_setup(state, "test_ociimage");
    if (rc == 0) {
        /* tar images are staged under TMPDIR: keep them in the scratch
         * directory so a test can see that nothing is left. */
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s/tmp", (char *)*state);
        fs_mkdir_p(tmp, 0700);
        setenv("TMPDIR", tmp, 1);
    }
    return rc;
}

static int teardown_tmp(void **state) { return scratch_teardown(state); }

/* ---- crafting images ---- */

static void put(const char *path, const void *data, size_t len)
{
    char dir[4096], base[1024];
    fs_split(path, dir, sizeof dir, base, sizeof base);
    assert_int_equal(fs_mkdir_p(dir, 0755), 0);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(fs_write_all(fd, data, len), 0);
    assert_int_equal(close(fd), 0);
}

static void sha256_of(const void *data, size_t len, char out[OCI_DIGEST_MAX])
{
    uint8_t h[crypto_hash_sha256_BYTES];
    char hex[65];
    crypto_hash_sha256(h, data, len);
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    snprintf(out, OCI_DIGEST_MAX, "sha256:%s", hex);
}

/* Store data as a blob of the layout at dir; digest gets its name. */
static void blob(const char *dir, const void *data, size_t len, char digest[OCI_DIGEST_MAX])
{
    char path[4400];
    sha256_of(data, len, digest);
    snprintf(path, sizeof path, "%s/blobs/sha256/%s", dir, digest + 7);
    put(path, data, len);
}

enum { COMP_NONE, COMP_GZIP, COMP_ZSTD };

/* A one-file tar layer; *diff gets the sha256 of the uncompressed tar. */
static size_t layer(int comp, const char *name, uint8_t *buf, size_t cap,
                    char diff[OCI_DIGEST_MAX])
{
    size_t used = 0;
    for (int pass = 0; pass < 2; pass++) {
        struct archive *a = archive_write_new();
        archive_write_set_format_pax_restricted(a);
        if (pass == 1 && comp == COMP_GZIP)
            archive_write_add_filter_gzip(a);
        if (pass == 1 && comp == COMP_ZSTD)
            assert_int_equal(archive_write_add_filter_zstd(a), ARCHIVE_OK);
        archive_write_set_bytes_in_last_block(a, 1);
        assert_int_equal(archive_write_open_memory(a, buf, cap, &used), ARCHIVE_OK);
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, name);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, 3);
        archive_entry_set_mtime(e, 1, 0);
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        assert_int_equal(archive_write_data(a, "hi\n", 3), 3);
        archive_entry_free(e);
        assert_int_equal(archive_write_close(a), ARCHIVE_OK);
        archive_write_free(a);
        if (pass == 0)
            sha256_of(buf, used, diff); /* the uncompressed tar */
        if (comp == COMP_NONE)
            break;
    }
    return used;
}

static const char *const comp_types[] = {"application/vnd.oci.image.layer.v1.tar",
                                         "application/vnd.oci.image.layer.v1.tar+gzip",
                                         "application/vnd.oci.image.layer.v1.tar+zstd"};

struct image {
    char layer[3][OCI_DIGEST_MAX];
    char diff[3][OCI_DIGEST_MAX];
    size_t layer_size[3];
    size_t n;
    char config[OCI_DIGEST_MAX];
    char manifest[OCI_DIGEST_MAX];
    size_t manifest_size;
};

/* The layers' blobs, a config naming their diff_ids, a manifest (layer
 * media types from types[], or the compression's), no index. */
static void make_manifest(const char *dir, const int *comps, size_t n, const char *const *types,
                          const char *tag, struct image *img)
{
    static uint8_t buf[1 << 16];
    char text[8192], ids[1024] = "", ls[4096] = "";
    memset(img, 0, sizeof *img);
    img->n = n;
    for (size_t i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s-%zu.txt", tag, i);
        size_t len = layer(comps[i], name, buf, sizeof buf, img->diff[i]);
        blob(dir, buf, len, img->layer[i]);
        img->layer_size[i] = len;
        snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "%s\"%s\"", i ? "," : "",
                 img->diff[i]);
        snprintf(ls + strlen(ls), sizeof ls - strlen(ls),
                 "%s{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu}", i ? "," : "",
                 types ? types[i] : comp_types[comps[i]], img->layer[i], len);
    }
    snprintf(text, sizeof text,
             "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Cmd\":[\"/bin/sh\"]},"
             "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[%s]}}",
             ids);
    blob(dir, text, strlen(text), img->config);
    size_t clen = strlen(text);
    snprintf(text, sizeof text,
             "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
             "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
             "\"digest\":\"%s\",\"size\":%zu},\"layers\":[%s]}",
             img->config, clen, ls);
    blob(dir, text, strlen(text), img->manifest);
    img->manifest_size = strlen(text);
}

static void put_text(const char *dir, const char *name, const char *text)
{
    char path[8400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    put(path, text, strlen(text));
}

static void make_index(const char *dir, const struct image *img)
{
    char text[1024];
    snprintf(text, sizeof text,
             "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":"
             "\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"%s\",\"size\":%zu,"
             "\"annotations\":{\"org.opencontainers.image.ref.name\":\"latest\"}}]}",
             img->manifest, img->manifest_size);
    put_text(dir, "index.json", text);
    put_text(dir, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
}

/* An image layout at state/NAME with one gzip layer. */
static void simple_layout(const char *dir, struct image *img)
{
    static const int comps[] = {COMP_GZIP};
    make_manifest(dir, comps, 1, NULL, "a", img);
    make_index(dir, img);
}

static void path_in(char *out, size_t cap, void **state, const char *name)
{
    snprintf(out, cap, "%s/%s", (char *)*state, name);
}

/* Resolve image (a path relative to the scratch dir) into a fresh OciSpec. */
static int resolve(void **state, const char *image, Ferry__OciSpec *oci, struct oci_image *img)
{
    ferry__oci_spec__init(oci);
    oci->image = strdup(image);
    err_clear();
    return oci_image_resolve((char *)*state, oci, img);
}

static void oci_done(Ferry__OciSpec *oci)
{
    for (size_t i = 0; i < oci->n_layers; i++)
        ferry__oci_layer__free_unpacked(oci->layers[i], NULL);
    free(oci->layers);
    free(oci->image);
    if (oci->config_file != protobuf_c_empty_string)
        free(oci->config_file);
    if (oci->config_digest != protobuf_c_empty_string)
        free(oci->config_digest);
}

static void expect_refused(void **state, const char *image, const char *detail)
{
    Ferry__OciSpec oci;
    struct oci_image img;
    int rc = resolve(state, image, &oci, &img);
    if (rc == 0)
        fail_msg("%s: accepted, expected '%s'", image, detail);
    if (!strstr(err_detail(), detail))
        fail_msg("%s: '%s' does not contain '%s'", image, err_detail(), detail);
    assert_int_equal(oci.n_layers, 0);
    assert_int_equal(img.n_blobs, 0);
    assert_null(img.staging);
    oci_done(&oci);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d)
        closedir(d);
    return n;
}

static void tar_dir(const char *dir, const char *tar)
{
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "tar -C '%s' -cf '%s' .", dir, tar);
    assert_int_equal(system(cmd), 0);
}

/* ---- tests ---- */

static void test_layout(void **state)
{
    char dir[4200];
    path_in(dir, sizeof dir, state, "good");
    static const int comps[] = {COMP_GZIP, COMP_ZSTD, COMP_NONE};
    struct image im;
    make_manifest(dir, comps, 3, NULL, "g", &im);
    make_index(dir, &im);
    Ferry__OciSpec oci;
    struct oci_image img;
    assert_int_equal(resolve(state, "good", &oci, &img), 0);
    assert_int_equal(oci.n_layers, 3);
    for (size_t i = 0; i < 3; i++) {
        char want[200];
        snprintf(want, sizeof want, "oci/blobs/sha256/%s", im.layer[i] + 7);
        assert_string_equal(oci.layers[i]->file, want);
        assert_string_equal(oci.layers[i]->digest, im.layer[i]);
        assert_string_equal(oci.layers[i]->media_type, comp_types[comps[i]]);
        assert_int_equal(oci.layers[i]->size, im.layer_size[i]);
    }
    assert_string_equal(oci.config_digest, im.config);
    assert_string_equal(oci.config_file, img.blobs[0].rel);
    /* config and three layers, each with its bytes and BLAKE2b digest */
    assert_int_equal(img.n_blobs, 4);
    assert_null(img.staging);
    for (size_t i = 0; i < img.n_blobs; i++) {
        struct digest d;
        uint64_t size;
        assert_int_equal(digest_file(img.blobs[i].src, &d, &size), 0);
        assert_true(digest_equal(&d, &img.blobs[i].blake));
        assert_int_equal(size, img.blobs[i].size);
    }
    oci_image_free(&img);
    oci_done(&oci);
}

/* The same layout as a tar (as skopeo's oci-archive), staged and removed. */
static void test_layout_tar(void **state)
{
    char dir[4200], tar[4200], tmp[4200];
    path_in(dir, sizeof dir, state, "tarsrc");
    path_in(tar, sizeof tar, state, "image.tar");
    path_in(tmp, sizeof tmp, state, "tmp");
    struct image im;
    simple_layout(dir, &im);
    tar_dir(dir, tar);
    Ferry__OciSpec oci;
    struct oci_image img;
    assert_int_equal(resolve(state, "image.tar", &oci, &img), 0);
    assert_int_equal(oci.n_layers, 1);
    assert_string_equal(oci.layers[0]->digest, im.layer[0]);
    assert_non_null(img.staging);
    assert_int_equal(strncmp(img.blobs[1].src, img.staging, strlen(img.staging)), 0);
    assert_int_equal(count_entries(tmp), 1);
    oci_image_free(&img);
    assert_int_equal(count_entries(tmp), 0);
    oci_done(&oci);
}

/* docker save: manifest.json, CONFIGHEX.json, N/layer.tar uncompressed. */
static void make_docker(const char *dir, int break_diff, int drop_layer)
{
    static uint8_t buf[1 << 16];
    char diff[OCI_DIGEST_MAX], cfgd[OCI_DIGEST_MAX], text[2048], path[4300];
    size_t len = layer(COMP_NONE, "d.txt", buf, sizeof buf, diff);
    if (!drop_layer) {
        snprintf(path, sizeof path, "%s/0/layer.tar", dir);
        put(path, buf, len);
    }
    snprintf(text, sizeof text,
             "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{},"
             "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}",
             break_diff ? "sha256:0000000000000000000000000000000000000000000000000000000000000000"
                        : diff);
    sha256_of(text, strlen(text), cfgd);
    snprintf(path, sizeof path, "%s/%s.json", dir, cfgd + 7);
    put(path, text, strlen(text));
    snprintf(text, sizeof text,
             "[{\"Config\":\"%s.json\",\"RepoTags\":[\"x:1\"],\"Layers\":[\"0/layer.tar\"]}]",
             cfgd + 7);
    put_text(dir, "manifest.json", text);
}

static void test_docker_save(void **state)
{
    char dir[4200], tar[4200];
    path_in(dir, sizeof dir, state, "dsrc");
    path_in(tar, sizeof tar, state, "docker.tar");
    make_docker(dir, 0, 0);
    tar_dir(dir, tar);
    Ferry__OciSpec oci;
    struct oci_image img;
    assert_int_equal(resolve(state, "docker.tar", &oci, &img), 0);
    assert_int_equal(oci.n_layers, 1);
    assert_string_equal(oci.layers[0]->media_type, "application/vnd.docker.image.rootfs.diff.tar");
    assert_true(oci_digest_ok(oci.layers[0]->digest));
    oci_image_free(&img);
    oci_done(&oci);

    path_in(dir, sizeof dir, state, "dbad");
    make_docker(dir, 1, 0);
    expect_refused(state, "dbad", "layer '0/layer.tar' named by manifest.json: sha256 does not "
                                  "match the config's diff_id");
    path_in(dir, sizeof dir, state, "dmiss");
    make_docker(dir, 0, 1);
    expect_refused(state, "dmiss", "oci.image 'dmiss': layer '0/layer.tar' named by "
                                   "manifest.json: missing from the image");
    path_in(dir, sizeof dir, state, "dtwo");
    make_docker(dir, 0, 0);
    put_text(dir, "manifest.json", "[{\"Config\":\"a.json\",\"Layers\":[]},{\"Config\":\"b.json\",\"Layers\":[]}]");
    expect_refused(state, "dtwo", "manifest.json: 2 images in the archive; save one");
    put_text(dir, "manifest.json", "[{\"Config\":\"../x.json\",\"Layers\":[]}]");
    expect_refused(state, "dtwo", "manifest.json: Config '../x.json' is not a safe relative path");
}

/* Several manifests: the linux/amd64 one. */
static void test_index_platforms(void **state)
{
    char dir[4200], text[2048];
    path_in(dir, sizeof dir, state, "multi");
    static const int comps[] = {COMP_GZIP};
    struct image arm, amd;
    make_manifest(dir, comps, 1, NULL, "arm", &arm);
    make_manifest(dir, comps, 1, NULL, "amd", &amd);
    const char *mt = "application/vnd.oci.image.manifest.v1+json";
    snprintf(text, sizeof text,
             "{\"schemaVersion\":2,\"manifests\":["
             "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\"}},"
             "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}",
             mt, arm.manifest, arm.manifest_size, mt, amd.manifest, amd.manifest_size);
    put_text(dir, "index.json", text);
    put_text(dir, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
    Ferry__OciSpec oci;
    struct oci_image img;
    assert_int_equal(resolve(state, "multi", &oci, &img), 0);
    assert_string_equal(oci.layers[0]->digest, amd.layer[0]);
    oci_image_free(&img);
    oci_done(&oci);

    /* a nested index (the chosen entry is an index itself) */
    char inner[OCI_DIGEST_MAX];
    blob(dir, text, strlen(text), inner);
    size_t inner_len = strlen(text);
    snprintf(text, sizeof text,
             "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":"
             "\"application/vnd.oci.image.index.v1+json\",\"digest\":\"%s\",\"size\":%zu}]}",
             inner, inner_len);
    put_text(dir, "index.json", text);
    assert_int_equal(resolve(state, "multi", &oci, &img), 0);
    assert_string_equal(oci.layers[0]->digest, amd.layer[0]);
    oci_image_free(&img);
    oci_done(&oci);

    snprintf(text, sizeof text,
             "{\"schemaVersion\":2,\"manifests\":["
             "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\"}},"
             "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu}]}",
             mt, arm.manifest, arm.manifest_size, mt, amd.manifest, amd.manifest_size);
    put_text(dir, "index.json", text);
    expect_refused(state, "multi", "oci.image 'multi': index: 2 manifests and none for linux/amd64");
}

/* A layout with several tags (umoci's image:tag): oci.tag picks one. */
static void test_tags(void **state)
{
    char dir[4200], text[2048];
    path_in(dir, sizeof dir, state, "tags");
    static const int comps[] = {COMP_GZIP};
    struct image v1, v2;
    make_manifest(dir, comps, 1, NULL, "v1", &v1);
    make_manifest(dir, comps, 1, NULL, "v2", &v2);
    const char *mt = "application/vnd.oci.image.manifest.v1+json";
    snprintf(text, sizeof text,
             "{\"schemaVersion\":2,\"manifests\":["
             "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu,\"annotations\":{\"org.opencontainers.image.ref.name\":\"v1\"}},"
             "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu,\"annotations\":{\"org.opencontainers.image.ref.name\":\"v2\"}}]}",
             mt, v1.manifest, v1.manifest_size, mt, v2.manifest, v2.manifest_size);
    put_text(dir, "index.json", text);
    put_text(dir, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
    expect_refused(state, "tags", "index: 2 manifests and none for linux/amd64");
    Ferry__OciSpec oci;
    struct oci_image img;
    ferry__oci_spec__init(&oci);
    oci.image = strdup("tags");
    oci.tag = strdup("v2");
    assert_int_equal(oci_image_resolve((char *)*state, &oci, &img), 0);
    assert_string_equal(oci.layers[0]->digest, v2.layer[0]);
    oci_image_free(&img);
    free(oci.tag);
    oci_done(&oci);
    ferry__oci_spec__init(&oci);
    oci.image = strdup("tags");
    oci.tag = strdup("v3");
    assert_true(oci_image_resolve((char *)*state, &oci, &img) < 0);
    assert_string_equal(err_detail(), "oci.image 'tags': index: no manifest tagged 'v3'");
    free(oci.tag);
    oci_done(&oci);
}

static void test_refusals(void **state)
{
    char dir[4200], path[4400], text[4096];
    struct image im;

    path_in(dir, sizeof dir, state, "missing");
    simple_layout(dir, &im);
    snprintf(path, sizeof path, "%s/blobs/sha256/%.64s", dir, im.layer[0] + 7);
    assert_int_equal(unlink(path), 0);
    snprintf(text, sizeof text, "oci.image 'missing': layer %.19s…: missing from the image",
             im.layer[0]);
    expect_refused(state, "missing", text);

    path_in(dir, sizeof dir, state, "tampered");
    simple_layout(dir, &im);
    snprintf(path, sizeof path, "%s/blobs/sha256/%.64s", dir, im.layer[0] + 7);
    put(path, "\x1f\x8b not the layer", 16);
    snprintf(text, sizeof text, "oci.image 'tampered': layer %.19s…: sha256 does not match",
             im.layer[0]);
    expect_refused(state, "tampered", text);

    path_in(dir, sizeof dir, state, "bzip");
    static const int comps[] = {COMP_GZIP};
    static const char *const bz[] = {"application/vnd.oci.image.layer.v1.tar+bzip2"};
    make_manifest(dir, comps, 1, bz, "b", &im);
    make_index(dir, &im);
    expect_refused(state, "bzip", ": unsupported media type 'application/vnd.oci.image.layer.v1.tar+bzip2'");

    path_in(dir, sizeof dir, state, "liar");
    static const char *const gz_says_plain[] = {"application/vnd.oci.image.layer.v1.tar"};
    make_manifest(dir, comps, 1, gz_says_plain, "l", &im);
    make_index(dir, &im);
    expect_refused(state, "liar", ": the media type says an uncompressed tar, but it is gzip");

    path_in(dir, sizeof dir, state, "badjson");
    simple_layout(dir, &im);
    put_text(dir, "index.json", "{\"schemaVersion\":2,");
    expect_refused(state, "badjson", "oci.image 'badjson': index: not valid JSON");
    put_text(dir, "index.json", "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":"
                                "\"application/vnd.oci.image.manifest.v1+json\",\"digest\":"
                                "\"sha512:abc\",\"size\":1}]}");
    expect_refused(state, "badjson", "index: manifests[0]: digest 'sha512:abc': unsupported algorithm");
    put_text(dir, "index.json", "{\"schemaVersion\":1,\"manifests\":[]}");
    expect_refused(state, "badjson", "index: schemaVersion is not 2");

    /* oversized JSON: refused by its size, before it is parsed */
    char *big = malloc(OCI_JSON_MAX + 2);
    memset(big, ' ', OCI_JSON_MAX + 1);
    big[0] = '{';
    big[OCI_JSON_MAX] = '}';
    big[OCI_JSON_MAX + 1] = 0;
    put_text(dir, "index.json", big);
    free(big);
    expect_refused(state, "badjson", "index.json: 4194305 bytes, more than the 4194304 allowed");

    /* a manifest whose layers are not a list: stored under its own digest */
    path_in(dir, sizeof dir, state, "badman");
    simple_layout(dir, &im);
    char cfg[200];
    snprintf(cfg, sizeof cfg, "%s", im.config);
    snprintf(text, sizeof text,
             "{\"schemaVersion\":2,\"config\":{\"mediaType\":"
             "\"application/vnd.oci.image.config.v1+json\",\"digest\":\"%s\",\"size\":1},"
             "\"layers\":{}}",
             cfg);
    char md[OCI_DIGEST_MAX];
    blob(dir, text, strlen(text), md);
    im.manifest_size = strlen(text);
    snprintf(im.manifest, sizeof im.manifest, "%s", md);
    make_index(dir, &im);
    expect_refused(state, "badman", "manifest: layers is not a list");

    /* a config that does not agree with the manifest */
    path_in(dir, sizeof dir, state, "badcfg");
    simple_layout(dir, &im);
    const char *c2 = "{\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
    char cd[OCI_DIGEST_MAX];
    blob(dir, c2, strlen(c2), cd);
    snprintf(text, sizeof text,
             "{\"schemaVersion\":2,\"config\":{\"mediaType\":"
             "\"application/vnd.oci.image.config.v1+json\",\"digest\":\"%s\",\"size\":%zu},"
             "\"layers\":[{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu}]}",
             cd, strlen(c2), comp_types[COMP_GZIP], im.layer[0], im.layer_size[0]);
    blob(dir, text, strlen(text), md);
    im.manifest_size = strlen(text);
    snprintf(im.manifest, sizeof im.manifest, "%s", md);
    make_index(dir, &im);
    expect_refused(state, "badcfg", "config: rootfs.diff_ids has 0 entries for 1 layers");

    path_in(dir, sizeof dir, state, "nolayout");
    simple_layout(dir, &im);
    snprintf(path, sizeof path, "%s/oci-layout", dir);
    unlink(path);
    expect_refused(state, "nolayout", "not an OCI image layout (no oci-layout file)");
    expect_refused(state, "nothere", "oci.image 'nothere': No such file or directory");
    path_in(dir, sizeof dir, state, "empty");
    fs_mkdir_p(dir, 0755);
    expect_refused(state, "empty", "neither an OCI image layout (no index.json) nor a docker save");
}

/* A tar with an entry that climbs out: refused, and staging is gone. */
static void test_hostile_tar(void **state)
{
    char tar[4200], tmp[4200];
    path_in(tar, sizeof tar, state, "evil.tar");
    path_in(tmp, sizeof tmp, state, "tmp");
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    assert_int_equal(archive_write_open_filename(a, tar), ARCHIVE_OK);
    const char *names[] = {"index.json", "../escape"};
    for (int i = 0; i < 2; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, names[i]);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, 2);
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        archive_write_data(a, "{}", 2);
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
    expect_refused(state, "evil.tar", "oci.image 'evil.tar': entry '../escape': not a safe relative path");
    assert_int_equal(count_entries(tmp), 0);
    char esc[4200];
    path_in(esc, sizeof esc, state, "escape");
    assert_int_equal(access(esc, F_OK), -1);

    char notar[4200];
    path_in(notar, sizeof notar, state, "notar");
    put(notar, "plain text, no archive", 22);
    expect_refused(state, "notar", "oci.image 'notar': ");
    assert_int_equal(count_entries(tmp), 0);
}

/* Publish's view: the layers are files of the manifest, the image itself
 * is not, and a bad image fails the build naming the image. */
static void test_manifest_build(void **state)
{
    char dir[4200], img[4300], yaml[4300];
    path_in(dir, sizeof dir, state, "app");
    snprintf(img, sizeof img, "%s/image", dir);
    struct image im;
    simple_layout(img, &im);
    snprintf(yaml, sizeof yaml, "%s/ferry.yaml", dir);
    const char *spec = "name: web\nversion: \"1\"\nkind: app\nruntime: oci\noci:\n  image: image/\n";
    put(yaml, spec, strlen(spec));
    Ferry__Manifest *m = NULL;
    err_clear();
    int rc = manifest_build(dir, &m);
    if (rc < 0)
        fail_msg("manifest_build: %s", err_detail());
    assert_int_equal(m->n_files, 2);
    for (size_t i = 0; i < m->n_files; i++)
        assert_int_equal(strncmp(m->files[i]->path, "oci/blobs/sha256/", 17), 0);
    assert_int_equal(m->spec->oci->n_layers, 1);
    assert_string_equal(m->spec->oci->layers[0]->digest, im.layer[0]);
    uint8_t *buf;
    size_t len;
    assert_int_equal(manifest_encode(m, &buf, &len), 0);
    Ferry__Manifest *d = NULL;
    assert_int_equal(manifest_decode(buf, len, &d), 0);
    assert_string_equal(d->spec->oci->config_digest, im.config);
    manifest_free(d);
    /* a manifest naming a layer file it does not carry is refused */
    free(m->spec->oci->layers[0]->file);
    m->spec->oci->layers[0]->file = strdup("oci/blobs/sha256/gone");
    free(buf);
    assert_int_equal(manifest_encode(m, &buf, &len), 0);
    assert_int_equal(manifest_decode(buf, len, &d), FERRY_E_INVALID);
    assert_string_equal(err_detail(), "manifest: image file 'oci/blobs/sha256/gone' is not in the artifact");
    free(buf);
    manifest_free(m);

    char path[4500];
    snprintf(path, sizeof path, "%s/blobs/sha256/%.64s", img, im.layer[0] + 7);
    unlink(path);
    assert_true(manifest_build(dir, &m) < 0);
    char want[300];
    snprintf(want, sizeof want, "oci.image 'image/': layer %.19s…: missing from the image", im.layer[0]);
    assert_string_equal(err_detail(), want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_layout, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_layout_tar, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_docker_save, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_index_platforms, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_tags, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_refusals, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_hostile_tar, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_manifest_build, setup_tmp, teardown_tmp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
