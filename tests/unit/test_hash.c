/* BLAKE2b-256 digests: known vectors, streaming, files, hex. */
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
#include <unistd.h>

#include "error.h"
#include "fsutil.h"
#include "scratch.h"
#include "hash.h"

/* python3: hashlib.blake2b(b'', digest_size=32) and b'abc'. */
#define VEC_EMPTY "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"
#define VEC_ABC "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319"

/* ---- scratch directory per test ---- */

static int setup_tmp(void **state) { return scratch_setup(state, "test_hash"); }

static int teardown_tmp(void **state) { return scratch_teardown(state); }

/* Deterministic, non-repeating-looking bytes. */
static uint8_t *pattern(size_t len)
{
    uint8_t *b = malloc(len ? len : 1);
    assert_non_null(b);
    uint32_t x = 0x12345678u;
    for (size_t i = 0; i < len; i++) {
        x = x * 1664525u + 1013904223u;
        b[i] = (uint8_t)(x >> 24);
    }
    return b;
}

static void write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(fs_write_all(fd, data, len), 0);
    assert_int_equal(close(fd), 0);
}

static void assert_digest_hex(const struct digest *d, const char *want)
{
    char hex[DIGEST_HEX_LEN + 1];
    digest_hex(d, hex);
    assert_string_equal(hex, want);
}

/* ---- tests ---- */

static void test_known_vectors(void **state)
{
    (void)state;
    struct digest d;
    digest_of("", 0, &d);
    assert_digest_hex(&d, VEC_EMPTY);
    digest_of("abc", 3, &d);
    assert_digest_hex(&d, VEC_ABC);

    /* The streaming API gives the same vectors. */
    struct hasher h;
    hasher_init(&h);
    hasher_final(&h, &d);
    assert_digest_hex(&d, VEC_EMPTY);
    hasher_init(&h);
    hasher_update(&h, "abc", 3);
    hasher_final(&h, &d);
    assert_digest_hex(&d, VEC_ABC);
}

static void test_streaming_uneven_pieces(void **state)
{
    (void)state;
    const size_t len = 300007;
    uint8_t *data = pattern(len);
    struct digest one, streamed;
    digest_of(data, len, &one);

    /* Pieces of 0, 1, 2, ... 127 bytes (crossing the 128-byte block size at
     * every alignment), then odd large ones, then the rest. */
    struct hasher h;
    hasher_init(&h);
    size_t off = 0;
    for (size_t n = 0; n < 128; n++) {
        hasher_update(&h, data + off, n);
        off += n;
    }
    const size_t big[] = {1, 4093, 65537, 129, 100003};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        hasher_update(&h, data + off, big[i]);
        off += big[i];
    }
    assert_true(off < len);
    hasher_update(&h, data + off, len - off);
    hasher_final(&h, &streamed);
    assert_true(digest_equal(&one, &streamed));
    assert_memory_equal(one.b, streamed.b, DIGEST_LEN);

    /* A missing byte is a different digest. */
    struct digest shorter;
    digest_of(data, len - 1, &shorter);
    assert_false(digest_equal(&one, &shorter));
    free(data);
}

static void test_digest_file(void **state)
{
    const char *dir = *state;
    char path[4096];
    /* 3 MiB + a bit: several 1 MiB read buffers plus a partial one. */
    const size_t len = (3u << 20) + 12345;
    uint8_t *data = pattern(len);
    snprintf(path, sizeof path, "%s/big.bin", dir);
    write_file(path, data, len);

    struct digest want, got;
    uint64_t size = 0;
    digest_of(data, len, &want);
    assert_int_equal(digest_file(path, &got, &size), 0);
    assert_true(digest_equal(&want, &got));
    assert_int_equal(size, len);

    /* size_out may be NULL. */
    memset(&got, 0, sizeof got);
    assert_int_equal(digest_file(path, &got, NULL), 0);
    assert_true(digest_equal(&want, &got));

    /* An empty file is the empty vector, size 0. */
    snprintf(path, sizeof path, "%s/empty", dir);
    write_file(path, "", 0);
    size = 99;
    assert_int_equal(digest_file(path, &got, &size), 0);
    assert_digest_hex(&got, VEC_EMPTY);
    assert_int_equal(size, 0);
    free(data);
}

static void test_digest_file_errors(void **state)
{
    const char *dir = *state;
    char path[4096], link[4096];
    struct digest d, untouched;
    memset(&untouched, 0xAA, sizeof untouched);
    uint64_t size = 77;

    snprintf(path, sizeof path, "%s/missing", dir);
    d = untouched;
    err_clear();
    assert_int_equal(digest_file(path, &d, &size), -ENOENT);
    assert_non_null(strstr(err_detail(), path));
    assert_memory_equal(&d, &untouched, sizeof d);
    assert_int_equal(size, 77);

    /* A symlink is not followed. */
    snprintf(path, sizeof path, "%s/target", dir);
    write_file(path, "abc", 3);
    snprintf(link, sizeof link, "%s/link", dir);
    assert_int_equal(symlink(path, link), 0);
    err_clear();
    assert_int_equal(digest_file(link, &d, &size), -ELOOP);
    assert_non_null(strstr(err_detail(), link));
    assert_memory_equal(&d, &untouched, sizeof d);
}

static void test_hex_round_trip(void **state)
{
    (void)state;
    struct digest d, back;
    for (int i = 0; i < DIGEST_LEN; i++)
        d.b[i] = (uint8_t)(i * 9 + 0xa0);
    char hex[DIGEST_HEX_LEN + 1];
    digest_hex(&d, hex);
    assert_int_equal(strlen(hex), DIGEST_HEX_LEN);
    assert_memory_equal(hex, "a0a9b2bbc4cdd6dfe8f1fa030c151e27", 32);
    for (const char *p = hex; *p; p++)
        assert_true((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));
    assert_int_equal(digest_parse(hex, &back), 0);
    assert_true(digest_equal(&d, &back));

    assert_int_equal(digest_parse(VEC_ABC, &back), 0);
    struct digest abc;
    digest_of("abc", 3, &abc);
    assert_true(digest_equal(&abc, &back));
    assert_false(digest_equal(&d, &back));

    /* digest_from_bytes takes exactly 32 bytes. */
    assert_int_equal(digest_from_bytes(d.b, DIGEST_LEN, &back), 0);
    assert_true(digest_equal(&d, &back));
    assert_int_equal(digest_from_bytes(d.b, DIGEST_LEN - 1, &back), FERRY_E_INVALID);
    assert_int_equal(digest_from_bytes(d.b, DIGEST_LEN + 1, &back), FERRY_E_INVALID);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    const char *bad[8];
    size_t nbad = 0;

    static char shorter[DIGEST_HEX_LEN], longer[DIGEST_HEX_LEN + 2], upper[DIGEST_HEX_LEN + 1],
        nonhex[DIGEST_HEX_LEN + 1], space[DIGEST_HEX_LEN + 1];
    memcpy(shorter, VEC_ABC, DIGEST_HEX_LEN - 1);
    shorter[DIGEST_HEX_LEN - 1] = '\0';
    snprintf(longer, sizeof longer, "%s0", VEC_ABC);
    memcpy(upper, VEC_ABC, sizeof upper);
    upper[0] = 'B'; /* "bd..." -> "Bd..." */
    memcpy(nonhex, VEC_ABC, sizeof nonhex);
    nonhex[10] = 'g';
    memcpy(space, VEC_ABC, sizeof space);
    space[63] = ' ';
    bad[nbad++] = "";
    bad[nbad++] = shorter;
    bad[nbad++] = longer;
    bad[nbad++] = upper;
    bad[nbad++] = nonhex;
    bad[nbad++] = space;

    struct digest untouched, d;
    memset(&untouched, 0x5c, sizeof untouched);
    for (size_t i = 0; i < nbad; i++) {
        d = untouched;
        if (digest_parse(bad[i], &d) != FERRY_E_INVALID)
            fail_msg("digest_parse accepted '%s'", bad[i]);
        assert_memory_equal(&d, &untouched, sizeof d);
    }
    /* The whole vector in upper case is refused too. */
    char all_upper[DIGEST_HEX_LEN + 1];
    for (size_t i = 0; i <= DIGEST_HEX_LEN; i++)
        all_upper[i] = (char)((VEC_ABC[i] >= 'a' && VEC_ABC[i] <= 'f') ? VEC_ABC[i] - 32
                                                                         : VEC_ABC[i]);
    assert_int_equal(digest_parse(all_upper, &d), FERRY_E_INVALID);
    /* Sanity: the unmodified vector parses. */
    assert_int_equal(digest_parse(VEC_ABC, &d), 0);
}

static void test_update_fd_prefix(void **state)
{
    const char *dir = *state;
    char path[4096];
    const size_t len = (1u << 20) + 100; /* longer than one read buffer */
    uint8_t *data = pattern(len);
    snprintf(path, sizeof path, "%s/f.bin", dir);
    write_file(path, data, len);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    /* The fd's position does not matter: hashing starts at offset 0. */
    assert_true(lseek(fd, 777, SEEK_SET) == 777);

    const uint64_t prefixes[] = {0, 1, 4096, (1u << 20) + 7, len};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        struct hasher h;
        struct digest got, want;
        hasher_init(&h);
        assert_int_equal(hasher_update_fd(&h, fd, prefixes[i]), 0);
        hasher_final(&h, &got);
        digest_of(data, (size_t)prefixes[i], &want);
        if (!digest_equal(&got, &want))
            fail_msg("prefix %llu hashed wrong", (unsigned long long)prefixes[i]);
    }

    /* It continues a running hash: "abc" then a prefix of the file. */
    struct hasher h;
    struct digest got, want;
    hasher_init(&h);
    hasher_update(&h, "abc", 3);
    assert_int_equal(hasher_update_fd(&h, fd, 1000), 0);
    hasher_final(&h, &got);
    uint8_t *joined = malloc(1003);
    assert_non_null(joined);
    memcpy(joined, "abc", 3);
    memcpy(joined + 3, data, 1000);
    digest_of(joined, 1003, &want);
    assert_true(digest_equal(&got, &want));
    free(joined);

    /* Asking for more bytes than the file has is an error. */
    hasher_init(&h);
    assert_int_equal(hasher_update_fd(&h, fd, len + 1), -EIO);

    close(fd);
    free(data);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_vectors),
        cmocka_unit_test(test_streaming_uneven_pieces),
        cmocka_unit_test_setup_teardown(test_digest_file, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_digest_file_errors, setup_tmp, teardown_tmp),
        cmocka_unit_test(test_hex_round_trip),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test_setup_teardown(test_update_fd_prefix, setup_tmp, teardown_tmp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
