/* Manifests: build from a tree, encode/decode of untrusted bytes, signatures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fsutil.h"
#include "scratch.h"
#include "hash.h"
#include "key.h"
#include "manifest.h"

#define SPEC_YAML                                                                              \
    "name: hello\n"                                                                            \
    "version: 1.0.0\n"                                                                         \
    "kind: app\n"                                                                              \
    "runtime: exec\n"                                                                          \
    "run: {command: [\"./run\"]}\n"

/* ---- scratch directory per test ---- */

static int setup_tmp(void **state) { return scratch_setup(state, "test_manifest"); }

static int teardown_tmp(void **state) { return scratch_teardown(state); }

/* ---- helpers ---- */

/* out = a "/" b, refusing truncation. */
static void join(char *out, size_t cap, const char *a, const char *b)
{
    int n = snprintf(out, cap, "%s/%s", a, b);
    assert_true(n > 0 && (size_t)n < cap);
}

static void put_file(const char *root, const char *rel, const void *data, size_t len,
                     mode_t mode)
{
    char path[4096], dir[4096], base[1024];
    join(path, sizeof path, root, rel);
    fs_split(path, dir, sizeof dir, base, sizeof base);
    assert_int_equal(fs_mkdir_p(dir, 0755), 0);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    assert_true(fd >= 0);
    assert_int_equal(fs_write_all(fd, data, len), 0);
    assert_int_equal(fchmod(fd, mode), 0);
    assert_int_equal(close(fd), 0);
}

/* The fixture tree: ROOT/src with ferry.yaml, an executable, a nested file,
 * an empty file and names whose order differs from walk order. */
/* ferry.yaml is carried as spec_yaml, never as a file entry. */
static const char *const fixture_paths[] = {"empty", "lib.txt", "lib/nested/data.txt", "run"};
#define FIXTURE_N 4

static void make_fixture(const char *root, char *src, size_t cap)
{
    join(src, cap, root, "src");
    put_file(src, "ferry.yaml", SPEC_YAML, strlen(SPEC_YAML), 0644);
    put_file(src, "run", "#!/bin/sh\necho hello\n", 21, 0755);
    put_file(src, "lib/nested/data.txt", "nested data\n", 12, 0644);
    put_file(src, "lib.txt", "sorted before lib/\n", 19, 0644);
    put_file(src, "empty", "", 0, 0644);
}

static Ferry__Manifest *build_ok(const char *dir)
{
    Ferry__Manifest *m = NULL;
    int rc = manifest_build(dir, &m);
    if (rc != 0)
        fail_msg("manifest_build %s: %d %s", dir, rc, err_detail());
    assert_non_null(m);
    return m;
}

static void encode_ok(const Ferry__Manifest *m, uint8_t **buf, size_t *len)
{
    int rc = manifest_encode(m, buf, len);
    if (rc != 0)
        fail_msg("manifest_encode: %d %s", rc, err_detail());
}

/* Generate DIR/NAME.{key,pub}; load the secret into *sk. */
static void make_key(const char *dir, const char *name, struct key_secret *sk, char *pub,
                     size_t cap)
{
    char key[4096];
    assert_int_equal(fs_mkdir_p(dir, 0700), 0);
    assert_int_equal(key_generate(dir, name, NULL), 0);
    snprintf(key, sizeof key, "%s/%s.key", dir, name);
    snprintf(pub, cap, "%s/%s.pub", dir, name);
    assert_int_equal(key_load_secret(key, sk), 0);
}

/* A manifest built from parts, packed with ferry__manifest__pack. */
struct hand {
    uint32_t format;
    int no_spec;
    const char *name;
    const char *paths[4];
    size_t n;
    size_t digest_len;
};

static uint8_t *pack_hand(const struct hand *h, size_t *len)
{
    Ferry__Spec spec = FERRY__SPEC__INIT;
    spec.name = (char *)(h->name ? h->name : "hello");
    spec.version = "1.0.0";
    spec.kind = "app";
    spec.runtime = "exec";
    uint8_t digest[64];
    memset(digest, 0xab, sizeof digest);
    Ferry__File files[4], *fp[4];
    for (size_t i = 0; i < h->n; i++) {
        ferry__file__init(&files[i]);
        files[i].path = (char *)h->paths[i];
        files[i].size = 3;
        files[i].digest.data = digest;
        files[i].digest.len = h->digest_len;
        fp[i] = &files[i];
    }
    Ferry__Manifest m = FERRY__MANIFEST__INIT;
    m.format = h->format;
    m.spec = h->no_spec ? NULL : &spec;
    m.files = fp;
    m.n_files = h->n;
    *len = ferry__manifest__get_packed_size(&m);
    uint8_t *buf = malloc(*len ? *len : 1);
    assert_non_null(buf);
    assert_int_equal(ferry__manifest__pack(&m, buf), *len);
    return buf;
}

static void expect_decode_error(const uint8_t *buf, size_t len, int code, const char *what)
{
    Ferry__Manifest sentinel;
    Ferry__Manifest *m = &sentinel;
    err_clear();
    int rc = manifest_decode(buf, len, &m);
    if (rc != code) {
        if (rc == 0 && m != &sentinel)
            manifest_free(m);
        fail_msg("%s: got %d, want %d (%s)", what, rc, code, err_detail());
    }
    assert_ptr_equal(m, &sentinel);
    assert_true(err_detail()[0] != '\0');
}

/* ---- tests ---- */

static void test_build(void **state)
{
    const char *root = *state;
    char src[4096];
    make_fixture(root, src, sizeof src);
    Ferry__Manifest *m = build_ok(src);

    assert_int_equal(m->format, MANIFEST_FORMAT);
    assert_non_null(m->spec);
    assert_string_equal(m->spec->name, "hello");
    assert_string_equal(m->spec->version, "1.0.0");
    assert_string_equal(m->spec->kind, "app");
    assert_string_equal(m->spec->runtime, "exec");
    assert_non_null(m->spec->run);
    assert_int_equal(m->spec->run->n_command, 1);
    assert_string_equal(m->spec->run->command[0], "./run");

    assert_int_equal(m->n_files, FIXTURE_N);
    uint64_t total = 0;
    for (size_t i = 0; i < FIXTURE_N; i++) {
        const Ferry__File *f = m->files[i];
        assert_string_equal(f->path, fixture_paths[i]);
        char path[4096];
        join(path, sizeof path, src, f->path);
        struct digest d;
        uint64_t size;
        assert_int_equal(digest_file(path, &d, &size), 0);
        assert_int_equal(f->size, size);
        assert_int_equal(f->digest.len, DIGEST_LEN);
        assert_memory_equal(f->digest.data, d.b, DIGEST_LEN);
        assert_int_equal(f->executable, strcmp(f->path, "run") == 0);
        total += size;
    }
    /* Spot checks that do not depend on digest_file. */
    assert_int_equal(m->files[0]->size, 0);
    assert_int_equal(m->files[2]->size, 12);
    assert_int_equal(m->files[3]->size, 21);
    struct digest empty;
    digest_of("", 0, &empty);
    assert_memory_equal(m->files[0]->digest.data, empty.b, DIGEST_LEN);
    assert_int_equal(manifest_total_bytes(m), total);

    /* ferry.yaml travels as its exact bytes. */
    assert_int_equal(m->spec_yaml.len, strlen(SPEC_YAML));
    assert_memory_equal(m->spec_yaml.data, SPEC_YAML, strlen(SPEC_YAML));
    assert_false(m->spec_yaml_executable);
    manifest_free(m);

    /* A nested ferry.yaml is an ordinary file; an executable top-level one
     * keeps its exec bit. */
    put_file(src, "lib/ferry.yaml", "x: 1\n", 5, 0644);
    char top[4096];
    join(top, sizeof top, src, "ferry.yaml");
    assert_int_equal(chmod(top, 0755), 0);
    m = build_ok(src);
    assert_int_equal(m->n_files, FIXTURE_N + 1);
    assert_string_equal(m->files[2]->path, "lib/ferry.yaml");
    assert_true(m->spec_yaml_executable);
    manifest_free(m);
}

/* The same content encodes to the same bytes (re-publishing is a no-op). */
static void test_build_deterministic(void **state)
{
    const char *root = *state;
    char src[4096];
    make_fixture(root, src, sizeof src);
    Ferry__Manifest *a = build_ok(src);
    uint8_t *b1 = NULL, *b2 = NULL;
    size_t l1 = 0, l2 = 0;
    encode_ok(a, &b1, &l1);
    manifest_free(a);
    /* Touch the files' times: content is what counts. */
    sleep(1);
    put_file(src, "run", "#!/bin/sh\necho hello\n", 21, 0755);
    Ferry__Manifest *b = build_ok(src);
    encode_ok(b, &b2, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(b1, b2, l1);
    free(b2);

    /* One changed byte in one file changes the bytes. */
    put_file(src, "lib/nested/data.txt", "nested dat4\n", 12, 0644);
    manifest_free(b);
    b = build_ok(src);
    encode_ok(b, &b2, &l2);
    assert_true(l1 != l2 || memcmp(b1, b2, l1) != 0);
    manifest_free(b);
    free(b1);
    free(b2);
}

static void test_encode_decode(void **state)
{
    const char *root = *state;
    char src[4096];
    make_fixture(root, src, sizeof src);
    Ferry__Manifest *m = build_ok(src);
    uint8_t *b1 = NULL, *b2 = NULL;
    size_t l1 = 0, l2 = 0;
    encode_ok(m, &b1, &l1);
    assert_true(l1 > 0);

    Ferry__Manifest *d = NULL;
    assert_int_equal(manifest_decode(b1, l1, &d), 0);
    assert_non_null(d);
    encode_ok(d, &b2, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(b1, b2, l1);

    assert_int_equal(d->format, m->format);
    assert_int_equal(d->spec_yaml.len, m->spec_yaml.len);
    assert_memory_equal(d->spec_yaml.data, m->spec_yaml.data, m->spec_yaml.len);
    assert_int_equal(d->spec_yaml_executable, m->spec_yaml_executable);
    assert_string_equal(d->spec->name, m->spec->name);
    assert_string_equal(d->spec->version, m->spec->version);
    assert_string_equal(d->spec->kind, m->spec->kind);
    assert_string_equal(d->spec->run->command[0], "./run");
    assert_int_equal(d->n_files, m->n_files);
    for (size_t i = 0; i < m->n_files; i++) {
        assert_string_equal(d->files[i]->path, m->files[i]->path);
        assert_int_equal(d->files[i]->size, m->files[i]->size);
        assert_int_equal(d->files[i]->executable, m->files[i]->executable);
        assert_int_equal(d->files[i]->digest.len, DIGEST_LEN);
        assert_memory_equal(d->files[i]->digest.data, m->files[i]->digest.data, DIGEST_LEN);
    }
    free(b1);
    free(b2);
    manifest_free(d);
    manifest_free(m);
}

static void test_sign_verify(void **state)
{
    const char *root = *state;
    char src[4096], keys[4096], pub[4096], opub[4096];
    make_fixture(root, src, sizeof src);
    join(keys, sizeof keys, root, "keys");
    struct key_secret sk, other;
    make_key(keys, "publisher", &sk, pub, sizeof pub);
    make_key(keys, "other", &other, opub, sizeof opub);

    Ferry__Manifest *m = build_ok(src);
    uint8_t *buf = NULL;
    size_t len = 0;
    encode_ok(m, &buf, &len);
    manifest_free(m);

    Ferry__SignatureList *sigs = NULL;
    assert_int_equal(manifest_sign(buf, len, &sk, &sigs), 0);
    assert_int_equal(sigs->n_signatures, 1);
    assert_string_equal(sigs->signatures[0]->key_id, sk.pub.id);

    struct trust t;
    trust_init(&t);
    assert_int_equal(trust_add_file(&t, pub), 0);
    char signer[KEY_ID_LEN + 1] = "";
    assert_int_equal(manifest_verify(buf, len, sigs, &t, signer), 0);
    assert_string_equal(signer, sk.pub.id);
    assert_int_equal(manifest_verify(buf, len, sigs, &t, NULL), 0);

    /* Through the wire encoding of the signature list too. */
    uint8_t *sbuf = NULL;
    size_t slen = 0;
    assert_int_equal(signatures_encode(sigs, &sbuf, &slen), 0);
    Ferry__SignatureList *back = NULL;
    assert_int_equal(signatures_decode(sbuf, slen, &back), 0);
    memset(signer, 0, sizeof signer);
    assert_int_equal(manifest_verify(buf, len, back, &t, signer), 0);
    assert_string_equal(signer, sk.pub.id);
    signatures_free(back);
    free(sbuf);

    /* A flipped byte anywhere in the manifest. */
    const size_t at[] = {0, len / 2, len - 1};
    for (size_t i = 0; i < 3; i++) {
        buf[at[i]] ^= 0x20;
        err_clear();
        assert_int_equal(manifest_verify(buf, len, sigs, &t, NULL), FERRY_E_SIGNATURE);
        assert_true(err_detail()[0] != '\0');
        buf[at[i]] ^= 0x20;
    }
    /* A flipped signature byte. */
    sigs->signatures[0]->signature.data[5] ^= 1;
    assert_int_equal(manifest_verify(buf, len, sigs, &t, NULL), FERRY_E_SIGNATURE);
    sigs->signatures[0]->signature.data[5] ^= 1;
    assert_int_equal(manifest_verify(buf, len, sigs, &t, NULL), 0);

    trust_fini(&t);
    signatures_free(sigs);
    free(buf);
    key_secret_wipe(&sk);
    key_secret_wipe(&other);
}

static void test_untrusted(void **state)
{
    const char *root = *state;
    char src[4096], keys[4096], pub[4096], opub[4096];
    make_fixture(root, src, sizeof src);
    join(keys, sizeof keys, root, "keys");
    struct key_secret sk, other;
    make_key(keys, "publisher", &sk, pub, sizeof pub);
    make_key(keys, "other", &other, opub, sizeof opub);

    Ferry__Manifest *m = build_ok(src);
    uint8_t *buf = NULL;
    size_t len = 0;
    encode_ok(m, &buf, &len);
    manifest_free(m);
    Ferry__SignatureList *sigs = NULL;
    assert_int_equal(manifest_sign(buf, len, &sk, &sigs), 0);

    /* Empty trust. */
    struct trust t;
    trust_init(&t);
    char signer[KEY_ID_LEN + 1] = "untouched";
    err_clear();
    assert_int_equal(manifest_verify(buf, len, sigs, &t, signer), FERRY_E_UNTRUSTED);
    assert_non_null(strstr(err_detail(), sk.pub.id));
    assert_string_equal(signer, "untouched");

    /* Trust holding only another key. */
    assert_int_equal(trust_add_file(&t, opub), 0);
    err_clear();
    assert_int_equal(manifest_verify(buf, len, sigs, &t, signer), FERRY_E_UNTRUSTED);
    assert_non_null(strstr(err_detail(), sk.pub.id));
    assert_string_equal(signer, "untouched");

    /* No signatures at all. */
    Ferry__SignatureList none = FERRY__SIGNATURE_LIST__INIT;
    assert_int_equal(manifest_verify(buf, len, &none, &t, NULL), FERRY_E_UNTRUSTED);
    assert_int_equal(manifest_verify(buf, len, NULL, &t, NULL), FERRY_E_UNTRUSTED);

    trust_fini(&t);
    signatures_free(sigs);
    free(buf);
    key_secret_wipe(&sk);
    key_secret_wipe(&other);
}

/* The key id in a signature is only a hint: a signature by an attacker's key
 * that claims a trusted key id (and carries the attacker's public key) is
 * refused; a list with an untrusted and a trusted signature is accepted. */
static void test_forged_and_multiple(void **state)
{
    const char *root = *state;
    char src[4096], keys[4096], pub[4096], opub[4096];
    make_fixture(root, src, sizeof src);
    join(keys, sizeof keys, root, "keys");
    struct key_secret sk, evil;
    make_key(keys, "publisher", &sk, pub, sizeof pub);
    make_key(keys, "evil", &evil, opub, sizeof opub);
    struct trust t;
    trust_init(&t);
    assert_int_equal(trust_add_file(&t, pub), 0);

    Ferry__Manifest *m = build_ok(src);
    uint8_t *buf = NULL;
    size_t len = 0;
    encode_ok(m, &buf, &len);
    manifest_free(m);

    Ferry__SignatureList *forged = NULL;
    assert_int_equal(manifest_sign(buf, len, &evil, &forged), 0);
    free(forged->signatures[0]->key_id);
    forged->signatures[0]->key_id = strdup(sk.pub.id);
    assert_non_null(forged->signatures[0]->key_id);
    assert_int_equal(manifest_verify(buf, len, forged, &t, NULL), FERRY_E_SIGNATURE);

    /* Untrusted first, trusted second: repeated fields concatenate. */
    Ferry__SignatureList *good = NULL, *bad = NULL, *both = NULL;
    assert_int_equal(manifest_sign(buf, len, &sk, &good), 0);
    assert_int_equal(manifest_sign(buf, len, &evil, &bad), 0);
    uint8_t *e1 = NULL, *e2 = NULL;
    size_t n1 = 0, n2 = 0;
    assert_int_equal(signatures_encode(bad, &e1, &n1), 0);
    assert_int_equal(signatures_encode(good, &e2, &n2), 0);
    uint8_t *cat = malloc(n1 + n2);
    assert_non_null(cat);
    memcpy(cat, e1, n1);
    memcpy(cat + n1, e2, n2);
    assert_int_equal(signatures_decode(cat, n1 + n2, &both), 0);
    assert_int_equal(both->n_signatures, 2);
    char signer[KEY_ID_LEN + 1] = "";
    assert_int_equal(manifest_verify(buf, len, both, &t, signer), 0);
    assert_string_equal(signer, sk.pub.id);

    /* Garbage is not a signature list. */
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff};
    Ferry__SignatureList *j = NULL;
    assert_int_equal(signatures_decode(junk, sizeof junk, &j), FERRY_E_PROTOCOL);
    assert_null(j);

    free(cat);
    free(e1);
    free(e2);
    signatures_free(both);
    signatures_free(good);
    signatures_free(bad);
    signatures_free(forged);
    trust_fini(&t);
    free(buf);
    key_secret_wipe(&sk);
    key_secret_wipe(&evil);
}

static void test_decode_refuses(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf;

    /* The control: a hand-made valid manifest decodes. */
    struct hand ok = {.format = 1, .paths = {"a", "b/c", "b0"}, .n = 3, .digest_len = 32};
    buf = pack_hand(&ok, &len);
    Ferry__Manifest *m = NULL;
    assert_int_equal(manifest_decode(buf, len, &m), 0);
    assert_int_equal(m->n_files, 3);
    assert_string_equal(m->files[1]->path, "b/c");
    manifest_free(m);
    /* ...and cut short by one byte, it does not. */
    expect_decode_error(buf, len - 1, FERRY_E_PROTOCOL, "truncated");
    free(buf);

    const uint8_t garbage1[] = "this is not a manifest";
    expect_decode_error(garbage1, sizeof garbage1 - 1, FERRY_E_PROTOCOL, "text");
    const uint8_t garbage2[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00};
    expect_decode_error(garbage2, sizeof garbage2, FERRY_E_PROTOCOL, "huge length");

    const struct {
        struct hand h;
        int code;
        const char *what;
    } cases[] = {
        {{.format = 1, .paths = {"../x"}, .n = 1, .digest_len = 32}, FERRY_E_UNSAFE_PATH,
         "dotdot path"},
        {{.format = 1, .paths = {"a", "/etc/passwd"}, .n = 2, .digest_len = 32},
         FERRY_E_UNSAFE_PATH, "absolute path"},
        {{.format = 1, .paths = {"b", "a"}, .n = 2, .digest_len = 32}, FERRY_E_INVALID,
         "unsorted"},
        {{.format = 1, .paths = {"a", "a"}, .n = 2, .digest_len = 32}, FERRY_E_INVALID,
         "duplicate"},
        {{.format = 1, .paths = {"a"}, .n = 1, .digest_len = 31}, FERRY_E_INVALID,
         "31-byte digest"},
        {{.format = 1, .paths = {"a"}, .n = 1, .digest_len = 33}, FERRY_E_INVALID,
         "33-byte digest"},
        {{.format = 1, .paths = {"a"}, .n = 1, .digest_len = 0}, FERRY_E_INVALID,
         "no digest"},
        {{.format = 1, .paths = {"a", "ferry.yaml"}, .n = 2, .digest_len = 32},
         FERRY_E_INVALID, "ferry.yaml as a file"},
        {{.format = 2, .paths = {"a"}, .n = 1, .digest_len = 32}, FERRY_E_INVALID,
         "format 2"},
        {{.format = 1, .no_spec = 1, .paths = {"a"}, .n = 1, .digest_len = 32},
         FERRY_E_INVALID, "no spec"},
        {{.format = 1, .name = "../evil", .paths = {"a"}, .n = 1, .digest_len = 32},
         FERRY_E_INVALID, "bad name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf = pack_hand(&cases[i].h, &len);
        expect_decode_error(buf, len, cases[i].code, cases[i].what);
        free(buf);
    }
}

/* Paths a workload tree cannot hold: under the agent's own folder, under the
 * spec file, or under another file. Each refusal names the path. */
static void test_decode_refuses_tree_collisions(void **state)
{
    (void)state;
    const struct {
        struct hand h;
        const char *named;
    } cases[] = {
        {{.format = 1, .paths = {".ferry/stdout.log"}, .n = 1, .digest_len = 32}, "'.ferry/stdout.log'"},
        {{.format = 1, .paths = {".ferry"}, .n = 1, .digest_len = 32}, "'.ferry'"},
        {{.format = 1, .paths = {".ferry/x/y", "a"}, .n = 2, .digest_len = 32}, "'.ferry/x/y'"},
        {{.format = 1, .paths = {"ferry.yaml/x"}, .n = 1, .digest_len = 32}, "'ferry.yaml/x'"},
        {{.format = 1, .paths = {"a", "a/b"}, .n = 2, .digest_len = 32}, "'a/b'"},
        /* '-' and '.' sort between "a" and "a/": not adjacent, still found. */
        {{.format = 1, .paths = {"a", "a-x", "a.y", "a/b"}, .n = 4, .digest_len = 32}, "'a/b'"},
        {{.format = 1, .paths = {"d/a", "d/a/b/c"}, .n = 2, .digest_len = 32}, "'d/a/b/c'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        uint8_t *buf = pack_hand(&cases[i].h, &len);
        expect_decode_error(buf, len, FERRY_E_UNSAFE_PATH, cases[i].named);
        if (!strstr(err_detail(), cases[i].named))
            fail_msg("detail '%s' does not name %s", err_detail(), cases[i].named);
        free(buf);
    }
    /* Neighbours that only look alike are fine. */
    struct hand ok = {.format = 1, .paths = {".ferryx", "a", "a-x/b", "ferry.yaml.bak"},
                      .n = 4, .digest_len = 32};
    size_t len;
    uint8_t *buf = pack_hand(&ok, &len);
    Ferry__Manifest *m = NULL;
    err_clear();
    if (manifest_decode(buf, len, &m) != 0)
        fail_msg("refused look-alike paths: %s", err_detail());
    manifest_free(m);
    free(buf);
}

/* A key from a fixed seed, without files. */
static void seed_key(uint8_t fill, struct key_secret *k, struct trust *t)
{
    uint8_t seed[crypto_sign_SEEDBYTES];
    memset(seed, fill, sizeof seed);
    memset(k, 0, sizeof *k);
    crypto_sign_seed_keypair(k->pub.pk, k->sk, seed);
    key_id_of(k->pub.pk, k->pub.id);
    trust_init(t);
    t->keys = malloc(sizeof *t->keys);
    assert_non_null(t->keys);
    t->keys[0] = k->pub;
    t->n = 1;
}

/* From a fuzz_manifest finding: protobuf-c takes an over-long field-0 tag
 * (80 00) as an unknown field and writes it back as a plain 0 tag it then
 * refuses. The registry stores an Offer's signature list re-encoded, so
 * such a list made a published version nobody could pull. Refused on
 * receipt now, whether the list comes encoded or decoded. */
static void test_signatures_field_zero(void **state)
{
    (void)state;
    struct key_secret k;
    struct trust t;
    seed_key(0x51, &k, &t);
    const uint8_t manifest[] = "manifest bytes";
    Ferry__SignatureList *sigs = NULL;
    assert_int_equal(manifest_sign(manifest, sizeof manifest, &k, &sigs), 0);
    uint8_t *enc = NULL;
    size_t len = 0;
    assert_int_equal(signatures_encode(sigs, &enc, &len), 0);
    signatures_free(sigs);

    /* In the list itself: 80 00 00 (field 0, varint 0) appended. */
    uint8_t *bad = malloc(len + 3);
    assert_non_null(bad);
    memcpy(bad, enc, len);
    memcpy(bad + len, "\x80\x00\x00", 3);
    err_clear();
    assert_int_equal(signatures_decode(bad, len + 3, &sigs), FERRY_E_PROTOCOL);
    assert_non_null(strstr(err_detail(), "field number 0"));
    Ferry__SignatureList *raw = ferry__signature_list__unpack(NULL, len + 3, bad);
    assert_non_null(raw);
    assert_int_equal(manifest_verify(manifest, sizeof manifest, raw, &t, NULL),
                     FERRY_E_PROTOCOL);
    ferry__signature_list__free_unpacked(raw, NULL);

    /* In the signature inside it: list = 0a LEN signature. */
    assert_true(enc[0] == 0x0a && enc[1] < 0x7d && (size_t)enc[1] + 2 == len);
    memcpy(bad, enc, len);
    memcpy(bad + len, "\x80\x00\x00", 3);
    bad[1] = (uint8_t)(enc[1] + 3);
    raw = ferry__signature_list__unpack(NULL, len + 3, bad);
    assert_non_null(raw);
    assert_int_equal(manifest_verify(manifest, sizeof manifest, raw, &t, NULL),
                     FERRY_E_PROTOCOL);
    ferry__signature_list__free_unpacked(raw, NULL);
    assert_int_equal(signatures_decode(bad, len + 3, &sigs), FERRY_E_PROTOCOL);

    /* The control: the clean list verifies. */
    assert_int_equal(signatures_decode(enc, len, &sigs), 0);
    assert_int_equal(manifest_verify(manifest, sizeof manifest, sigs, &t, NULL), 0);
    signatures_free(sigs);
    free(bad);
    free(enc);
    trust_fini(&t);
    key_secret_wipe(&k);
}

static void test_build_refuses(void **state)
{
    const char *root = *state;
    char src[4096], path[4096];
    Ferry__Manifest sentinel, *m = &sentinel;

    /* No ferry.yaml. */
    join(src, sizeof src, root, "bare");
    put_file(src, "run", "x", 1, 0755);
    err_clear();
    assert_int_equal(manifest_build(src, &m), -ENOENT);
    assert_non_null(strstr(err_detail(), "ferry.yaml"));
    assert_ptr_equal(m, &sentinel);

    /* A directory that does not exist, and a file that is not one. */
    join(path, sizeof path, root, "nowhere");
    assert_int_equal(manifest_build(path, &m), -ENOENT);
    join(path, sizeof path, root, "bare/run");
    assert_int_equal(manifest_build(path, &m), -ENOTDIR);

    /* A symlink inside the tree, even to a file inside the tree. */
    make_fixture(root, src, sizeof src);
    join(path, sizeof path, src, "lib/nested/link");
    assert_int_equal(symlink("data.txt", path), 0);
    err_clear();
    assert_int_equal(manifest_build(src, &m), FERRY_E_UNSAFE_ENTRY);
    assert_non_null(strstr(err_detail(), "lib/nested/link"));
    assert_ptr_equal(m, &sentinel);
    assert_int_equal(unlink(path), 0);

    /* A FIFO. */
    join(path, sizeof path, src, "pipe");
    assert_int_equal(mkfifo(path, 0644), 0);
    err_clear();
    assert_int_equal(manifest_build(src, &m), FERRY_E_UNSAFE_ENTRY);
    assert_non_null(strstr(err_detail(), "pipe"));
    assert_ptr_equal(m, &sentinel);
    assert_int_equal(unlink(path), 0);

    /* A ferry.yaml that is a symlink. */
    char spec[4096];
    join(spec, sizeof spec, src, "ferry.yaml");
    join(path, sizeof path, root, "real.yaml");
    put_file(root, "real.yaml", SPEC_YAML, strlen(SPEC_YAML), 0644);
    assert_int_equal(unlink(spec), 0);
    assert_int_equal(symlink(path, spec), 0);
    err_clear();
    assert_int_equal(manifest_build(src, &m), FERRY_E_UNSAFE_ENTRY);
    assert_non_null(strstr(err_detail(), "ferry.yaml"));
    assert_ptr_equal(m, &sentinel);
    assert_int_equal(unlink(spec), 0);

    /* A ferry.yaml that does not follow the schema. */
    put_file(src, "ferry.yaml", "name: hello\n", 12, 0644);
    err_clear();
    assert_int_equal(manifest_build(src, &m), FERRY_E_SPEC);
    assert_non_null(strstr(err_detail(), "ferry.yaml"));
    assert_ptr_equal(m, &sentinel);

    /* Restored, the same tree builds. */
    put_file(src, "ferry.yaml", SPEC_YAML, strlen(SPEC_YAML), 0644);

    /* The agent's own folder cannot be published. */
    put_file(src, ".ferry/stdout.log", "x", 1, 0644);
    err_clear();
    assert_int_equal(manifest_build(src, &m), FERRY_E_UNSAFE_PATH);
    assert_non_null(strstr(err_detail(), "'.ferry/stdout.log'"));
    assert_ptr_equal(m, &sentinel);
    join(path, sizeof path, src, ".ferry");
    assert_int_equal(fs_rm_rf(path), 0);

    m = build_ok(src);
    assert_int_equal(m->n_files, FIXTURE_N);
    manifest_free(m);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_build, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_build_deterministic, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_encode_decode, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_sign_verify, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_untrusted, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_forged_and_multiple, setup_tmp, teardown_tmp),
        cmocka_unit_test(test_decode_refuses),
        cmocka_unit_test(test_decode_refuses_tree_collisions),
        cmocka_unit_test(test_signatures_field_zero),
        cmocka_unit_test_setup_teardown(test_build_refuses, setup_tmp, teardown_tmp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
