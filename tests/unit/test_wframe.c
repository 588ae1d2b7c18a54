/* The worker framing: a batch as written, answers as read, and every
 * prefix and single-byte corruption of an answer either parses into
 * consistent tensors or is refused (under SANITIZE=1, without a read out
 * of bounds). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wframe.h"

static size_t put(uint8_t *b, size_t off, const void *p, size_t n)
{
    memcpy(b + off, p, n);
    return off + n;
}

static size_t put_u32(uint8_t *b, size_t off, uint32_t v)
{
    return put(b, off, &v, 4);
}

static size_t put_u64(uint8_t *b, size_t off, uint64_t v)
{
    return put(b, off, &v, 8);
}

/* Tensor header, shape and padded name. */
static size_t put_head(uint8_t *b, size_t off, unsigned dt, const int64_t *shape, int rank,
                       const char *name, uint64_t nbytes)
{
    uint8_t h[16] = {0};
    size_t nlen = strlen(name);
    h[0] = (uint8_t)dt;
    h[1] = (uint8_t)rank;
    h[2] = (uint8_t)nlen;
    memcpy(h + 8, &nbytes, 8);
    off = put(b, off, h, 16);
    for (int d = 0; d < rank; d++)
        off = put_u64(b, off, (uint64_t)shape[d]);
    uint8_t name8[64] = {0};
    memcpy(name8, name, nlen);
    return put(b, off, name8, (nlen + 7) & ~(size_t)7);
}

/* An 'O' body: y FP64 [3] and s BYTES [2] {"ab", ""}. */
static size_t sample(uint8_t *b)
{
    size_t off = put_u32(b, 0, 2);
    off = put_u32(b, off, 0);
    int64_t s3[] = {3}, s2[] = {2};
    off = put_head(b, off, DT_FP64, s3, 1, "y", 24);
    double y[] = {1.5, -2, 3};
    off = put(b, off, y, sizeof y);
    off = put_head(b, off, DT_BYTES, s2, 1, "s", 10);
    off = put_u32(b, off, 2);
    off = put(b, off, "ab", 2);
    off = put_u32(b, off, 0);
    uint8_t pad[6] = {0};
    return put(b, off, pad, sizeof pad);
}

static void check_consistent(const struct infer_result *r)
{
    assert_true(r->n_outputs <= MODEL_IO_MAX);
    for (size_t i = 0; i < r->n_outputs; i++) {
        const struct tensor *t = &r->outputs[i];
        assert_true(strlen(t->name) > 0 && strlen(t->name) < TENSOR_NAME_MAX);
        assert_true(t->dtype < DT_COUNT);
        assert_true(t->rank >= 0 && t->rank <= TENSOR_RANK_MAX);
        size_t n = 1;
        for (int d = 0; d < t->rank; d++)
            n *= (size_t)t->shape[d];
        assert_int_equal(n, t->n);
        if (t->dtype != DT_BYTES) {
            assert_int_equal(t->nbytes, t->n * dtype_size(t->dtype));
        } else {
            size_t off = 0;
            for (size_t e = 0; e < t->n; e++) {
                uint32_t l;
                assert_true(off + 4 <= t->nbytes);
                memcpy(&l, t->data + off, 4);
                off += 4 + l;
                assert_true(off <= t->nbytes);
            }
            assert_int_equal(off, t->nbytes);
        }
    }
}

static void test_answer_parses(void **state)
{
    uint8_t b[512];
    size_t len = sample(b);
    struct infer_result r;
    assert_int_equal(wframe_parse_outputs(b, len, &r), 0);
    assert_int_equal(r.n_outputs, 2);
    assert_string_equal(r.outputs[0].name, "y");
    assert_int_equal(r.outputs[0].dtype, DT_FP64);
    assert_int_equal(r.outputs[0].shape[0], 3);
    double y[] = {1.5, -2, 3};
    assert_memory_equal(r.outputs[0].data, y, sizeof y);
    assert_string_equal(r.outputs[1].name, "s");
    assert_int_equal(r.outputs[1].dtype, DT_BYTES);
    assert_int_equal(r.outputs[1].n, 2);
    assert_int_equal(r.outputs[1].nbytes, 10);
    check_consistent(&r);
    infer_result_fini(&r);
}

static void test_every_prefix_is_refused(void **state)
{
    uint8_t b[512];
    size_t len = sample(b);
    for (size_t cut = 0; cut < len; cut++) {
        /* Exactly cut bytes, on the heap, so ASan sees a read past them. */
        uint8_t *p = malloc(cut ? cut : 1);
        memcpy(p, b, cut);
        struct infer_result r;
        assert_int_equal(wframe_parse_outputs(p, cut, &r), -1);
        assert_int_equal(r.n_outputs, 0);
        free(p);
    }
}

static void test_corruptions_parse_consistently_or_fail(void **state)
{
    uint8_t b[512];
    size_t len = sample(b);
    const uint8_t values[] = {0x00, 0x01, 0x07, 0x08, 0x0c, 0x0d, 0x40, 0x7f, 0x80, 0xff};
    for (size_t i = 0; i < len; i++)
        for (size_t v = 0; v < sizeof values; v++) {
            uint8_t *p = malloc(len);
            memcpy(p, b, len);
            p[i] = values[v];
            struct infer_result r;
            if (wframe_parse_outputs(p, len, &r) == 0) {
                check_consistent(&r);
                infer_result_fini(&r);
            }
            free(p);
        }
}

static void test_read_refuses_bad_headers(void **state)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int kind;
    uint8_t *body;
    size_t len;
    /* A good one. */
    uint8_t f[12] = {4, 0, 0, 0, 'E', 0, 0, 0, 'o', 'o', 'p', 's'};
    assert_int_equal(write(sv[1], f, sizeof f), (ssize_t)sizeof f);
    assert_int_equal(wframe_read(sv[0], &kind, &body, &len), 0);
    assert_int_equal(kind, 'E');
    assert_int_equal(len, 4);
    assert_string_equal((char *)body, "oops");
    free(body);
    /* Reserved bytes set. */
    uint8_t r[8] = {0, 0, 0, 0, 'O', 1, 0, 0};
    assert_int_equal(write(sv[1], r, sizeof r), (ssize_t)sizeof r);
    assert_int_equal(wframe_read(sv[0], &kind, &body, &len), -2);
    /* Longer than any answer may be. */
    uint8_t h[8] = {0xff, 0xff, 0xff, 0xff, 'O', 0, 0, 0};
    assert_int_equal(write(sv[1], h, sizeof h), (ssize_t)sizeof h);
    assert_int_equal(wframe_read(sv[0], &kind, &body, &len), -2);
    /* End of file mid-frame. */
    uint8_t t[10] = {100, 0, 0, 0, 'O', 0, 0, 0, 1, 2};
    assert_int_equal(write(sv[1], t, sizeof t), (ssize_t)sizeof t);
    close(sv[1]);
    assert_int_equal(wframe_read(sv[0], &kind, &body, &len), -1);
    close(sv[0]);
}

/* A batch of two requests' rows goes out as one frame, their bytes
 * concatenated, every data block 8-aligned. */
static void test_batch_layout(void **state)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    double a[] = {1, 2}, c[] = {3};
    struct pool_seg segs[] = {{a, sizeof a}, {c, sizeof c}};
    struct pool_seg bsegs[] = {{"\1\0\0\0x", 5}, {"\0\0\0\0", 4}, {"\2\0\0\0yz", 6}};
    struct pool_input in[2];
    memset(in, 0, sizeof in);
    in[0].name = "x";
    in[0].dtype = DT_FP64;
    in[0].rank = 1;
    in[0].shape[0] = 3;
    in[0].segs = segs;
    in[0].n_segs = 2;
    in[1].name = "strings";
    in[1].dtype = DT_BYTES;
    in[1].rank = 1;
    in[1].shape[0] = 3;
    in[1].segs = bsegs;
    in[1].n_segs = 3;
    assert_int_equal(wframe_send_batch(sv[1], in, 2), 0);
    int kind;
    uint8_t *body;
    size_t len;
    assert_int_equal(wframe_read(sv[0], &kind, &body, &len), 0);
    assert_int_equal(kind, 'I');
    /* count 8 + x: 16 + 8 + 8 (name) + 24 + strings: 16 + 8 + 8 + 16 (15 padded) */
    assert_int_equal(len, 8 + 56 + 48);
    assert_int_equal(body[0], 2);
    assert_int_equal(body[8], DT_FP64);
    assert_int_equal(body[9], 1);
    assert_int_equal(body[10], 1);
    assert_memory_equal(body + 32, "x\0\0\0\0\0\0\0", 8);
    double all[] = {1, 2, 3};
    assert_memory_equal(body + 40, all, sizeof all);
    assert_int_equal(body[64], DT_BYTES);
    assert_int_equal(body[66], 7);
    uint64_t nbytes;
    memcpy(&nbytes, body + 72, 8);
    assert_int_equal(nbytes, 15);
    assert_memory_equal(body + 88, "strings\0", 8);
    assert_memory_equal(body + 96, "\1\0\0\0x\0\0\0\0\2\0\0\0yz\0", 16);
    free(body);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answer_parses),
        cmocka_unit_test(test_every_prefix_is_refused),
        cmocka_unit_test(test_corruptions_parse_consistently_or_fail),
        cmocka_unit_test(test_read_refuses_bad_headers),
        cmocka_unit_test(test_batch_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
