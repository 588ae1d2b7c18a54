/* Content-addressed blob store: put/read, chunked uploads with resume, and
 * refusal of bytes that do not match their digest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fsutil.h"
#include "hash.h"
#include "store.h"

/* ---- scratch store per test ---- */

struct fixture {
    char dir[4096];
    struct store s;
};

static int setup_store(void **state)
{
    const char *base = getenv("FERRY_TEST_TMP");
    if (!base || !*base)
        base = "/tmp";
    if (fs_mkdir_p(base, 0755) < 0)
        return -1;
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "%s/test_store.XXXXXX", base);
    if (!mkdtemp(f->dir) || store_open(&f->s, f->dir) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown_store(void **state)
{
    struct fixture *f = *state;
    store_close(&f->s);
    int rc = fs_rm_rf(f->dir);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* ---- helpers ---- */

static uint8_t *pattern(size_t len, uint32_t seed)
{
    uint8_t *b = malloc(len ? len : 1);
    assert_non_null(b);
    uint32_t x = seed;
    for (size_t i = 0; i < len; i++) {
        x = x * 1664525u + 1013904223u;
        b[i] = (uint8_t)(x >> 24);
    }
    return b;
}

static void partial_file(const struct fixture *f, const struct digest *d, char *out, size_t cap)
{
    char hex[DIGEST_HEX_LEN + 1];
    digest_hex(d, hex);
    int n = snprintf(out, cap, "%s/tmp/%s.part", f->dir, hex);
    assert_true(n > 0 && (size_t)n < cap);
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void assert_stored(const struct store *s, const struct digest *d, const uint8_t *data,
                          size_t len)
{
    uint64_t size = 0;
    assert_int_equal(store_has(s, d, &size), 0);
    assert_int_equal(size, len);
    uint8_t *got = NULL;
    size_t got_len = 0;
    assert_int_equal(store_read_all(s, d, len + 16, &got, &got_len), 0);
    assert_int_equal(got_len, len);
    assert_memory_equal(got, data, len);
    free(got);
}

static void write_ok(struct store *s, const struct digest *d, uint64_t size, uint64_t off,
                     const uint8_t *data, size_t len, uint64_t want_next, int want_complete)
{
    uint64_t next = 12345;
    int complete = -1;
    int rc = store_partial_write(s, d, size, off, data, len, &next, &complete);
    if (rc != 0)
        fail_msg("chunk at %llu: %d %s", (unsigned long long)off, rc, err_detail());
    assert_int_equal(next, want_next);
    assert_int_equal(complete, want_complete);
}

/* ---- tests ---- */

static void test_put_read(void **state)
{
    struct fixture *f = *state;
    const size_t len = 200003;
    uint8_t *data = pattern(len, 1);
    struct digest want, d;
    digest_of(data, len, &want);

    assert_int_equal(store_has(&f->s, &want, NULL), FERRY_E_NOTFOUND);
    uint8_t *buf = NULL;
    size_t got = 0;
    assert_int_equal(store_read_all(&f->s, &want, len, &buf, &got), FERRY_E_NOTFOUND);

    assert_int_equal(store_put(&f->s, data, len, &d), 0);
    assert_true(digest_equal(&d, &want));
    assert_stored(&f->s, &d, data, len);

    /* Laid out as ROOT/blobs/<2 hex>/<64 hex>. */
    char hex[DIGEST_HEX_LEN + 1], path[4096], want_path[4200];
    digest_hex(&d, hex);
    store_blob_path(&f->s, &d, path, sizeof path);
    snprintf(want_path, sizeof want_path, "%s/blobs/%.2s/%s", f->dir, hex, hex);
    assert_string_equal(path, want_path);
    assert_true(exists(path));

    /* A second put of the same bytes is a no-op. */
    assert_int_equal(store_put(&f->s, data, len, &d), 0);
    assert_true(digest_equal(&d, &want));
    assert_stored(&f->s, &d, data, len);

    /* Ranged reads, including past the end. */
    uint8_t part[100];
    size_t n = 0;
    assert_int_equal(store_read(&f->s, &d, 1000, part, sizeof part, &n), 0);
    assert_int_equal(n, sizeof part);
    assert_memory_equal(part, data + 1000, sizeof part);
    assert_int_equal(store_read(&f->s, &d, len - 10, part, sizeof part, &n), 0);
    assert_int_equal(n, 10);
    assert_memory_equal(part, data + len - 10, 10);

    /* A cap smaller than the blob is refused. */
    buf = NULL;
    assert_int_equal(store_read_all(&f->s, &d, len - 1, &buf, &got), FERRY_E_LIMIT);
    assert_null(buf);

    /* The empty blob. */
    struct digest empty;
    assert_int_equal(store_put(&f->s, "", 0, &empty), 0);
    assert_stored(&f->s, &empty, (const uint8_t *)"", 0);
    free(data);
}

static void test_chunked_upload(void **state)
{
    struct fixture *f = *state;
    const size_t len = 100000;
    uint8_t *data = pattern(len, 2);
    struct digest d;
    digest_of(data, len, &d);
    const size_t c1 = 33333, c2 = 40000, c3 = len - c1 - c2;

    assert_int_equal(store_partial_size(&f->s, &d), 0);
    write_ok(&f->s, &d, len, 0, data, c1, c1, 0);
    assert_int_equal(store_has(&f->s, &d, NULL), FERRY_E_NOTFOUND);
    assert_int_equal(store_partial_size(&f->s, &d), c1);

    write_ok(&f->s, &d, len, c1, data + c1, c2, c1 + c2, 0);
    assert_int_equal(store_has(&f->s, &d, NULL), FERRY_E_NOTFOUND);
    assert_int_equal(store_partial_size(&f->s, &d), c1 + c2);

    write_ok(&f->s, &d, len, c1 + c2, data + c1 + c2, c3, len, 1);
    assert_stored(&f->s, &d, data, len);

    /* The partial file is gone once published. */
    char part[4300];
    partial_file(f, &d, part, sizeof part);
    assert_false(exists(part));
    assert_int_equal(store_partial_size(&f->s, &d), 0);

    /* A chunk for a blob that is already stored: nothing more to take. */
    write_ok(&f->s, &d, len, 0, data, 10, len, 1);
    assert_stored(&f->s, &d, data, len);
    free(data);
}

/* An empty PutChunk arrives with no buffer at all (protobuf-c leaves the
 * data pointer NULL); found by fuzz_wire, UBSan flagged the memcpy. */
static void test_empty_chunk_without_buffer(void **state)
{
    struct fixture *f = *state;
    const size_t len = 4096;
    uint8_t *data = pattern(len, 7);
    struct digest d;
    digest_of(data, len, &d);
    write_ok(&f->s, &d, len, 0, NULL, 0, 0, 0);
    write_ok(&f->s, &d, len, 0, data, 512, 512, 0);
    write_ok(&f->s, &d, len, 512, NULL, 0, 512, 0);
    write_ok(&f->s, &d, len, 512, data + 512, len - 512, len, 1);
    assert_stored(&f->s, &d, data, len);
    free(data);
}

static void test_wrong_offset(void **state)
{
    struct fixture *f = *state;
    const size_t len = 5000;
    uint8_t *data = pattern(len, 3);
    struct digest d;
    digest_of(data, len, &d);
    uint64_t next = 0;
    int complete = -1;

    /* First chunk must start at 0. */
    err_clear();
    assert_int_equal(store_partial_write(&f->s, &d, len, 100, data + 100, 100, &next, &complete),
                     FERRY_E_INVALID);
    assert_int_equal(next, 0);
    assert_non_null(strstr(err_detail(), "offset"));

    write_ok(&f->s, &d, len, 0, data, 1000, 1000, 0);
    /* Ahead of, and behind, the bytes received. */
    assert_int_equal(
        store_partial_write(&f->s, &d, len, 1500, data + 1500, 100, &next, &complete),
        FERRY_E_INVALID);
    assert_int_equal(next, 1000);
    assert_int_equal(store_partial_write(&f->s, &d, len, 500, data + 500, 500, &next, &complete),
                     FERRY_E_INVALID);
    assert_int_equal(next, 1000);
    /* The refused chunks wrote nothing. */
    assert_int_equal(store_partial_size(&f->s, &d), 1000);

    /* The upload goes on from the right offset and completes intact. */
    write_ok(&f->s, &d, len, 1000, data + 1000, len - 1000, len, 1);
    assert_stored(&f->s, &d, data, len);
    free(data);
}

/* The .part file vanishes under a running upload (say, a tmp cleanup): the
 * store goes by the bytes on disk, not its stale running hash. */
static void test_partial_removed(void **state)
{
    struct fixture *f = *state;
    const size_t len = 9000;
    uint8_t *data = pattern(len, 9);
    struct digest d;
    digest_of(data, len, &d);
    write_ok(&f->s, &d, len, 0, data, 3000, 3000, 0);
    char part[4300];
    partial_file(f, &d, part, sizeof part);
    assert_int_equal(unlink(part), 0);
    assert_int_equal(store_partial_size(&f->s, &d), 0);

    uint64_t next = 99;
    int complete = -1;
    assert_int_equal(store_partial_write(&f->s, &d, len, 3000, data + 3000, 100, &next, &complete),
                     FERRY_E_INVALID);
    assert_int_equal(next, 0);
    write_ok(&f->s, &d, len, 0, data, 5000, 5000, 0);
    write_ok(&f->s, &d, len, 5000, data + 5000, len - 5000, len, 1);
    assert_stored(&f->s, &d, data, len);
    free(data);
}

static void test_resume_after_restart(void **state)
{
    struct fixture *f = *state;
    const size_t len = (2u << 20) + 777; /* over a MiB: rehash reads several buffers */
    uint8_t *data = pattern(len, 4);
    struct digest d;
    digest_of(data, len, &d);
    const size_t first = (1u << 20) + 5;

    write_ok(&f->s, &d, len, 0, data, first, first, 0);
    /* Restart: the in-memory running hash is lost. */
    store_close(&f->s);
    assert_int_equal(store_open(&f->s, f->dir), 0);

    uint64_t off = store_partial_size(&f->s, &d);
    assert_int_equal(off, first);
    assert_int_equal(store_has(&f->s, &d, NULL), FERRY_E_NOTFOUND);
    /* Offset 0 again is refused: the store remembers the bytes on disk. */
    uint64_t next = 0;
    int complete = -1;
    assert_int_equal(store_partial_write(&f->s, &d, len, 0, data, 10, &next, &complete),
                     FERRY_E_INVALID);
    assert_int_equal(next, first);

    write_ok(&f->s, &d, len, off, data + off, 1000, off + 1000, 0);
    off += 1000;
    /* Restart again, in the middle. */
    store_close(&f->s);
    assert_int_equal(store_open(&f->s, f->dir), 0);
    assert_int_equal(store_partial_size(&f->s, &d), off);
    write_ok(&f->s, &d, len, off, data + off, len - off, len, 1);
    assert_stored(&f->s, &d, data, len);
    free(data);
}

static void test_digest_mismatch(void **state)
{
    struct fixture *f = *state;
    const size_t len = 30000;
    uint8_t *data = pattern(len, 5);
    struct digest d;
    digest_of(data, len, &d);
    uint8_t *evil = pattern(len, 5);
    evil[len - 1] ^= 1; /* the very last byte differs */

    write_ok(&f->s, &d, len, 0, evil, 10000, 10000, 0);
    uint64_t next = 99;
    int complete = -1;
    err_clear();
    assert_int_equal(
        store_partial_write(&f->s, &d, len, 10000, evil + 10000, len - 10000, &next, &complete),
        FERRY_E_DIGEST);
    assert_true(err_detail()[0] != '\0');
    assert_int_equal(next, 0);

    /* Nothing under the digest, and the partial file is gone. */
    assert_int_equal(store_has(&f->s, &d, NULL), FERRY_E_NOTFOUND);
    char blob[4096], part[4300];
    store_blob_path(&f->s, &d, blob, sizeof blob);
    assert_false(exists(blob));
    partial_file(f, &d, part, sizeof part);
    assert_false(exists(part));
    assert_int_equal(store_partial_size(&f->s, &d), 0);

    /* The right bytes afterwards are accepted from offset 0. */
    write_ok(&f->s, &d, len, 0, data, len, len, 1);
    assert_stored(&f->s, &d, data, len);

    /* Also in one single chunk, and with a different length. */
    struct digest d2;
    digest_of("abc", 3, &d2);
    assert_int_equal(store_partial_write(&f->s, &d2, 3, 0, "abd", 3, &next, &complete),
                     FERRY_E_DIGEST);
    assert_int_equal(store_has(&f->s, &d2, NULL), FERRY_E_NOTFOUND);
    assert_int_equal(store_partial_write(&f->s, &d2, 2, 0, "ab", 2, &next, &complete),
                     FERRY_E_DIGEST);
    assert_int_equal(store_has(&f->s, &d2, NULL), FERRY_E_NOTFOUND);
    free(data);
    free(evil);
}

static void test_chunk_past_size(void **state)
{
    struct fixture *f = *state;
    const size_t len = 4096;
    uint8_t *data = pattern(len + 100, 6);
    struct digest d;
    digest_of(data, len, &d);
    uint64_t next = 0;
    int complete = -1;

    /* More than the whole blob in the first chunk. */
    err_clear();
    assert_int_equal(store_partial_write(&f->s, &d, len, 0, data, len + 1, &next, &complete),
                     FERRY_E_LIMIT);
    assert_true(err_detail()[0] != '\0');
    assert_int_equal(store_partial_size(&f->s, &d), 0);

    /* A later chunk that runs past the end. */
    write_ok(&f->s, &d, len, 0, data, 4000, 4000, 0);
    assert_int_equal(store_partial_write(&f->s, &d, len, 4000, data + 4000, 100, &next, &complete),
                     FERRY_E_LIMIT);
    assert_int_equal(store_partial_size(&f->s, &d), 4000);
    assert_int_equal(store_has(&f->s, &d, NULL), FERRY_E_NOTFOUND);

    /* The upload is still usable with the right chunk. */
    write_ok(&f->s, &d, len, 4000, data + 4000, 96, len, 1);
    assert_stored(&f->s, &d, data, len);
    free(data);
}

/* A crash after the last byte was written but before the blob was published
 * leaves a complete .part file: a resume at offset == size with no bytes
 * verifies and publishes it; a complete but corrupt one is refused. */
static void test_resume_complete_partial(void **state)
{
    struct fixture *f = *state;
    const size_t len = 7000;
    uint8_t *data = pattern(len, 7);
    struct digest d;
    digest_of(data, len, &d);
    char part[4300];
    partial_file(f, &d, part, sizeof part);
    assert_int_equal(fs_write_file_atomic(part, data, len, 0644), 0);

    store_close(&f->s);
    assert_int_equal(store_open(&f->s, f->dir), 0);
    assert_int_equal(store_partial_size(&f->s, &d), len);
    assert_int_equal(store_has(&f->s, &d, NULL), FERRY_E_NOTFOUND);
    write_ok(&f->s, &d, len, len, data, 0, len, 1);
    assert_stored(&f->s, &d, data, len);
    assert_false(exists(part));

    /* The same, with a flipped byte on disk. */
    uint8_t *other = pattern(len, 8);
    struct digest d2;
    digest_of(other, len, &d2);
    partial_file(f, &d2, part, sizeof part);
    other[0] ^= 1;
    assert_int_equal(fs_write_file_atomic(part, other, len, 0644), 0);
    uint64_t next = 99;
    int complete = -1;
    assert_int_equal(store_partial_write(&f->s, &d2, len, len, other, 0, &next, &complete),
                     FERRY_E_DIGEST);
    assert_int_equal(store_has(&f->s, &d2, NULL), FERRY_E_NOTFOUND);
    assert_false(exists(part));
    free(other);
    free(data);
}

/* While one upload's hash is rebuilt from a large partial file (after a
 * restart), another upload runs to completion: the store's lock is not held
 * across the re-hash. The re-hash hook holds the first writer inside the
 * re-hash until the second upload is done, or 10 s pass; with the lock held
 * there, the second upload could only finish after those 10 s. */
struct rehash_race {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int rehashing, other_done, other_done_during_rehash;
    struct store *s;
    const struct digest *d;
    const uint8_t *data;
    size_t len, first;
    int rc;
};

static void deadline_in(struct timespec *ts, int s)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += s;
}

static void hold_rehash(void *arg, const struct digest *d, uint64_t bytes)
{
    (void)d;
    (void)bytes;
    struct rehash_race *x = arg;
    struct timespec ts;
    deadline_in(&ts, 10);
    pthread_mutex_lock(&x->mu);
    x->rehashing = 1;
    pthread_cond_broadcast(&x->cv);
    while (!x->other_done)
        if (pthread_cond_timedwait(&x->cv, &x->mu, &ts) == ETIMEDOUT)
            break;
    x->other_done_during_rehash = x->other_done;
    x->rehashing = 0;
    pthread_mutex_unlock(&x->mu);
}

static void *finish_big(void *arg)
{
    struct rehash_race *x = arg;
    uint64_t next = 0;
    int complete = 0;
    x->rc = store_partial_write(x->s, x->d, x->len, x->first, x->data + x->first,
                                x->len - x->first, &next, &complete);
    if (x->rc == 0 && !complete)
        x->rc = -1;
    return NULL;
}

static void test_rehash_does_not_block_others(void **state)
{
    struct fixture *f = *state;
    const size_t len = 8u << 20, first = 6u << 20;
    uint8_t *big = pattern(len, 21), *small = pattern(300000, 22);
    struct digest db, ds;
    digest_of(big, len, &db);
    digest_of(small, 300000, &ds);
    write_ok(&f->s, &db, len, 0, big, first, first, 0);
    /* Restart: the running hash of the big upload is lost. */
    store_close(&f->s);
    assert_int_equal(store_open(&f->s, f->dir), 0);

    struct rehash_race x = {.s = &f->s, .d = &db, .data = big, .len = len, .first = first};
    pthread_mutex_init(&x.mu, NULL);
    pthread_cond_init(&x.cv, NULL);
    f->s.rehash_hook = hold_rehash;
    f->s.hook_arg = &x;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, finish_big, &x), 0);
    struct timespec ts;
    deadline_in(&ts, 10);
    pthread_mutex_lock(&x.mu);
    while (!x.rehashing)
        if (pthread_cond_timedwait(&x.cv, &x.mu, &ts) == ETIMEDOUT)
            break;
    int was_rehashing = x.rehashing;
    pthread_mutex_unlock(&x.mu);
    assert_true(was_rehashing);

    /* The other upload, in two chunks, while the big one is held. */
    f->s.rehash_hook = NULL; /* only the big upload is held */
    write_ok(&f->s, &ds, 300000, 0, small, 100000, 100000, 0);
    write_ok(&f->s, &ds, 300000, 100000, small + 100000, 200000, 300000, 1);
    pthread_mutex_lock(&x.mu);
    x.other_done = 1;
    pthread_cond_broadcast(&x.cv);
    pthread_mutex_unlock(&x.mu);

    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(x.other_done_during_rehash);
    assert_int_equal(x.rc, 0);
    assert_stored(&f->s, &db, big, len);
    assert_stored(&f->s, &ds, small, 300000);
    pthread_cond_destroy(&x.cv);
    pthread_mutex_destroy(&x.mu);
    free(big);
    free(small);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_read, setup_store, teardown_store),
        cmocka_unit_test_setup_teardown(test_chunked_upload, setup_store, teardown_store),
        cmocka_unit_test_setup_teardown(test_wrong_offset, setup_store, teardown_store),
        cmocka_unit_test_setup_teardown(test_empty_chunk_without_buffer, setup_store,
                                        teardown_store),
        cmocka_unit_test_setup_teardown(test_partial_removed, setup_store, teardown_store),
        cmocka_unit_test_setup_teardown(test_resume_after_restart, setup_store, teardown_store),
        cmocka_unit_test_setup_teardown(test_resume_complete_partial, setup_store,
                                        teardown_store),
        cmocka_unit_test_setup_teardown(test_digest_mismatch, setup_store, teardown_store),
        cmocka_unit_test_setup_teardown(test_chunk_past_size, setup_store, teardown_store),
        cmocka_unit_test_setup_teardown(test_rehash_does_not_block_others, setup_store,
                                        teardown_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
