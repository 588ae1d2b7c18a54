/* Drift: the population stability index per input over the last `window`
 * rows. Rows drawn from the reference distribution (a fixed-seed generator)
 * keep PSI under 0.1, shifted rows push it over 0.2, the window slides (old
 * rows leave it), the value is the formula's (with its 1e-4 floor), bins
 * follow edges[i-1] < x <= edges[i], every numeric datatype is read as a
 * double from 1-D inputs or the columns of a single 2-D input, bad
 * references are refused, and two observing threads lose no row. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drift.h"
#include "error.h"

/* This cmocka compares floats only. */
#define assert_near(a, b, eps)                                                                                     \
    do {                                                                                                           \
        double a_ = (a), b_ = (b);                                                                                 \
        if (!(fabs(a_ - b_) <= (eps)))                                                                             \
            fail_msg("%.17g is not %.17g", a_, b_);                                                                \
    } while (0)

/* ---- a deterministic generator ---- */

static uint64_t rng_state;

static void rng_seed(uint64_t s) { rng_state = s ? s : 1; }

/* xorshift64*: uniform in (0, 1). */
static double uniform(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    uint64_t x = rng_state * 2685821657736338717ull;
    return ((double)(x >> 11) + 0.5) / 9007199254740992.0;
}

static double normal(void)
{
    return sqrt(-2 * log(uniform())) * cos(6.283185307179586 * uniform());
}

/* ---- references ---- */

/* Uniform (0, 1): deciles 0.1 .. 0.9. */
static void ref_uniform(double edges[9], double expected[10])
{
    for (int i = 0; i < 9; i++)
        edges[i] = (i + 1) / 10.0;
    for (int i = 0; i < 10; i++)
        expected[i] = 0.1;
}

/* Standard normal deciles. */
static void ref_normal(double edges[9], double expected[10])
{
    static const double z[9] = {-1.2815515655446004, -0.8416212335729143, -0.5244005127080407,
                                -0.2533471031357997, 0, 0.2533471031357997,
                                0.5244005127080407,  0.8416212335729143,  1.2815515655446004};
    memcpy(edges, z, sizeof z);
    for (int i = 0; i < 10; i++)
        expected[i] = 0.1;
}

/* ---- requests ---- */

static struct infer_req *req_new(size_t rows)
{
    struct infer_req *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->rows = rows;
    return r;
}

static struct tensor *req_input(struct infer_req *r, const char *name, enum dtype dt, int rank, int64_t cols)
{
    struct tensor *t = &r->inputs[r->n_inputs++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dt;
    t->rank = rank;
    t->shape[0] = (int64_t)r->rows;
    if (rank == 2)
        t->shape[1] = cols;
    t->n = r->rows * (size_t)(rank == 2 ? cols : 1);
    size_t es = dt == DT_BYTES ? 5 : dtype_size(dt);
    t->nbytes = t->n * es;
    t->data = calloc(t->n ? t->n : 1, es);
    assert_non_null(t->data);
    return t;
}

static void put_f64(struct tensor *t, size_t i, double v) { memcpy(t->data + i * 8, &v, 8); }

static void req_free(struct infer_req *r)
{
    infer_req_fini(r);
    free(r);
}

#define NF 4
static const char iris[NF][TENSOR_NAME_MAX] = {"sepal_length", "sepal_width", "petal_length", "petal_width"};

/* Four features: two uniform, two normal. */
static struct drift *iris_drift(unsigned window)
{
    double edges[NF][9], expected[NF][10];
    ref_uniform(edges[0], expected[0]);
    ref_uniform(edges[1], expected[1]);
    ref_normal(edges[2], expected[2]);
    ref_normal(edges[3], expected[3]);
    struct drift *d = NULL;
    int rc = drift_new(NF, iris, edges, expected, window, &d);
    if (rc != 0)
        fail_msg("drift_new: %s", err_message(rc));
    assert_int_equal(drift_features(d), NF);
    assert_string_equal(drift_feature_name(d, 2), "petal_length");
    assert_null(drift_feature_name(d, NF));
    return d;
}

/* Feed rows in requests of 1 to 32 rows; shift[f] is added to feature f. */
static void feed(struct drift *d, size_t total, const double shift[NF])
{
    size_t done = 0;
    while (done < total) {
        size_t rows = 1 + (size_t)(uniform() * 32);
        if (rows > total - done)
            rows = total - done;
        struct infer_req *r = req_new(rows);
        struct tensor *t[NF];
        for (int f = 0; f < NF; f++)
            t[f] = req_input(r, iris[f], DT_FP64, 1, 0);
        for (size_t i = 0; i < rows; i++) {
            put_f64(t[0], i, uniform() + shift[0]);
            put_f64(t[1], i, uniform() + shift[1]);
            put_f64(t[2], i, normal() + shift[2]);
            put_f64(t[3], i, normal() + shift[3]);
        }
        drift_observe(d, r);
        req_free(r);
        done += rows;
    }
}

static void test_reference_rows_stay_low(void **state)
{
    static const double none[NF] = {0};
    for (uint64_t seed = 1; seed <= 5; seed++) {
        rng_seed(seed);
        struct drift *d = iris_drift(1000);
        for (int f = 0; f < NF; f++)
            assert_true(drift_psi(d, f) == 0); /* empty window */
        feed(d, 5000, none);
        for (int f = 0; f < NF; f++) {
            double psi = drift_psi(d, f);
            if (!(psi >= 0 && psi < 0.1))
                fail_msg("seed %llu, %s: psi %g from reference rows", (unsigned long long)seed, iris[f], psi);
        }
        drift_free(d);
    }
}

static void test_shifted_rows_go_high(void **state)
{
    rng_seed(42);
    struct drift *d = iris_drift(1000);
    /* Half a unit on a uniform feature, one standard deviation on a normal
     * one; the other two stay as the reference. */
    const double shift[NF] = {0.5, 0, 1.0, 0};
    feed(d, 3000, shift);
    assert_true(drift_psi(d, 0) > 0.2);
    assert_true(drift_psi(d, 2) > 0.2);
    assert_true(drift_psi(d, 1) < 0.1);
    assert_true(drift_psi(d, 3) < 0.1);
    drift_free(d);
}

static void test_window_slides(void **state)
{
    static const double none[NF] = {0}, shift[NF] = {0.5, 0.5, 1, 1};
    rng_seed(7);
    struct drift *d = iris_drift(500);
    assert_int_equal(drift_rows(d), 0);
    feed(d, 200, shift);
    assert_int_equal(drift_rows(d), 200); /* filling */
    feed(d, 300, shift);
    assert_int_equal(drift_rows(d), 500);
    for (int f = 0; f < NF; f++)
        assert_true(drift_psi(d, f) > 0.2);
    /* A window's worth of reference rows: every shifted row has left. */
    feed(d, 500, none);
    for (int f = 0; f < NF; f++) {
        double psi = drift_psi(d, f);
        if (!(psi < 0.1))
            fail_msg("%s: psi %g after the window slid past the shifted rows", iris[f], psi);
    }
    /* One request larger than the window: only its last rows count. */
    struct infer_req *r = req_new(2000);
    struct tensor *t[NF];
    for (int f = 0; f < NF; f++)
        t[f] = req_input(r, iris[f], DT_FP64, 1, 0);
    for (size_t i = 0; i < 2000; i++)
        for (int f = 0; f < NF; f++)
            put_f64(t[f], i, i < 1500 ? 100.0 : (f < 2 ? uniform() : normal()));
    drift_observe(d, r);
    req_free(r);
    assert_int_equal(drift_rows(d), 500); /* full stays full */
    for (int f = 0; f < NF; f++)
        assert_true(drift_psi(d, f) < 0.1);
    drift_free(d);
}

/* One feature, uniform reference; feed the given values. */
static struct drift *one_feature(unsigned window, const double expected_in[10])
{
    const char names[1][TENSOR_NAME_MAX] = {"x"};
    double edges[1][9], expected[1][10];
    ref_uniform(edges[0], expected[0]);
    if (expected_in)
        memcpy(expected[0], expected_in, sizeof expected[0]);
    struct drift *d = NULL;
    assert_int_equal(drift_new(1, names, edges, expected, window, &d), 0);
    return d;
}

static void feed_values(struct drift *d, const double *v, size_t n)
{
    struct infer_req *r = req_new(n);
    struct tensor *t = req_input(r, "x", DT_FP64, 1, 0);
    for (size_t i = 0; i < n; i++)
        put_f64(t, i, v[i]);
    drift_observe(d, r);
    req_free(r);
}

/* The formula with its floor, for a and e given. */
static double psi_of(const double a[10], const double e[10])
{
    double s = 0;
    for (int i = 0; i < 10; i++) {
        double x = a[i] < 1e-4 ? 1e-4 : a[i], y = e[i] < 1e-4 ? 1e-4 : e[i];
        s += (x - y) * log(x / y);
    }
    return s;
}

static void test_exact_value(void **state)
{
    struct drift *d = one_feature(10, NULL);
    const double e[10] = {0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1};
    /* 4 rows in bin 0, 6 in bin 5. */
    const double v[10] = {0.05, 0.01, 0.1, -3, 0.55, 0.6, 0.51, 0.58, 0.52, 0.53};
    feed_values(d, v, 10);
    const double a1[10] = {0.4, 0, 0, 0, 0, 0.6, 0, 0, 0, 0};
    assert_near(drift_psi(d, 0), psi_of(a1, e), 1e-12);
    /* An empty bin the reference gives 10 %: (1e-4 - 0.1) ln(1e-3) each. */
    assert_near(psi_of(a1, e), 0.3 * log(4) + 0.5 * log(6) + 8 * (1e-4 - 0.1) * log(1e-3), 1e-12);
    /* Five rows in bin 9 push the five oldest (four of bin 0, one of bin 5) out. */
    const double w[5] = {0.95, 1, 2, 1e9, INFINITY};
    feed_values(d, w, 5);
    const double a2[10] = {0, 0, 0, 0, 0, 0.5, 0, 0, 0, 0.5};
    assert_near(drift_psi(d, 0), psi_of(a2, e), 1e-12);
    drift_free(d);

    /* Exactly the reference's fractions: 0. */
    d = one_feature(10, NULL);
    const double each[10] = {0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95};
    feed_values(d, each, 10);
    assert_true(drift_psi(d, 0) == 0);
    assert_true(drift_psi(d, 1) == 0); /* no such feature */
    drift_free(d);
}

/* bin_of through the PSI: with the reference all in bin k, a value lands in
 * bin k exactly when the PSI stays 0. */
static int lands_in(double x, int k)
{
    double e[10] = {0};
    e[k] = 1;
    struct drift *d = one_feature(1, e);
    feed_values(d, &x, 1);
    double psi = drift_psi(d, 0);
    drift_free(d);
    return psi == 0;
}

static void test_bins(void **state)
{
    const struct {
        double x;
        int bin;
    } cases[] = {
        {-INFINITY, 0}, {-1e300, 0}, {0, 0}, {0.1, 0},      /* x <= edges[0]: bin 0 */
        {0.1000001, 1}, {0.2, 1},    {0.5, 4}, {0.50001, 5}, /* edges[i-1] < x <= edges[i] */
        {0.9, 8},       {0.9000001, 9}, {1e300, 9}, {INFINITY, 9},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (!lands_in(cases[i].x, cases[i].bin))
            fail_msg("%g is not in bin %d", cases[i].x, cases[i].bin);
        int other = cases[i].bin == 9 ? 8 : cases[i].bin + 1;
        assert_false(lands_in(cases[i].x, other));
    }
    /* NaN is no value: the window stays empty. */
    struct drift *d = one_feature(4, NULL);
    double nan = NAN;
    feed_values(d, &nan, 1);
    assert_true(drift_psi(d, 0) == 0);
    drift_free(d);
}

/* ---- datatypes ---- */

static void put_as(struct tensor *t, size_t i, double v)
{
    uint8_t *p = t->data + i * dtype_size(t->dtype);
    switch (t->dtype) {
#define PUT(type)                                                                                                  \
    do {                                                                                                           \
        type x = (type)v;                                                                                          \
        memcpy(p, &x, sizeof x);                                                                                   \
    } while (0)
    case DT_BOOL: *p = v != 0; break;
    case DT_UINT8: PUT(uint8_t); break;
    case DT_UINT16: PUT(uint16_t); break;
    case DT_UINT32: PUT(uint32_t); break;
    case DT_UINT64: PUT(uint64_t); break;
    case DT_INT8: PUT(int8_t); break;
    case DT_INT16: PUT(int16_t); break;
    case DT_INT32: PUT(int32_t); break;
    case DT_INT64: PUT(int64_t); break;
    case DT_FP32: PUT(float); break;
    case DT_FP64: PUT(double); break;
    default: fail_msg("put_as: %d", (int)t->dtype);
#undef PUT
    }
}

/* Features whose edges are the integers 1..9 (bin k holds k-1 < x <= k),
 * so integer values 0..12 spread over every bin. */
static struct drift *int_drift(size_t nf, const char names[][TENSOR_NAME_MAX], unsigned window)
{
    double edges[8][9], expected[8][10];
    for (size_t f = 0; f < nf; f++) {
        for (int i = 0; i < 9; i++)
            edges[f][i] = i + 1;
        for (int i = 0; i < 10; i++)
            expected[f][i] = 0.1;
    }
    struct drift *d = NULL;
    assert_int_equal(drift_new(nf, names, edges, expected, window, &d), 0);
    return d;
}

static const double int_values[] = {0, 1, 2, 2, 3, 5, 5, 5, 7, 9, 12, 11, 1, 0, 4};
#define NV (sizeof int_values / sizeof int_values[0])

static void test_datatypes(void **state)
{
    const char names[1][TENSOR_NAME_MAX] = {"x"};
    struct drift *ref = int_drift(1, names, 100);
    feed_values(ref, int_values, NV);
    double want = drift_psi(ref, 0);
    assert_true(want > 0);
    drift_free(ref);
    const enum dtype types[] = {DT_UINT8, DT_UINT16, DT_UINT32, DT_UINT64, DT_INT8, DT_INT16,
                                DT_INT32, DT_INT64, DT_FP32, DT_FP64};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        struct drift *d = int_drift(1, names, 100);
        struct infer_req *r = req_new(NV);
        struct tensor *t = req_input(r, "x", types[k], 1, 0);
        for (size_t i = 0; i < NV; i++)
            put_as(t, i, int_values[i]);
        drift_observe(d, r);
        req_free(r);
        if (drift_psi(d, 0) != want)
            fail_msg("%s: psi %.17g, as FP64 %.17g", dtype_name(types[k]), drift_psi(d, 0), want);
        drift_free(d);
    }
    /* A negative INT64 reads as negative (bin 0), not as a huge unsigned (bin 9). */
    struct drift *d = int_drift(1, names, 100);
    struct infer_req *r = req_new(2);
    struct tensor *t = req_input(r, "x", DT_INT64, 1, 0);
    int64_t neg = -5;
    memcpy(t->data, &neg, 8);
    t = req_input(r, "unused", DT_UINT64, 1, 0);
    drift_observe(d, r);
    req_free(r);
    const double a_neg[2] = {-5, -5};
    struct drift *dn = int_drift(1, names, 100);
    feed_values(dn, a_neg, 1);
    /* (the second INT64 row is 0: bin 0 too) */
    assert_near(drift_psi(d, 0), drift_psi(dn, 0), 1e-12);
    drift_free(d);
    drift_free(dn);

    /* BOOL: with every edge at 0.5, false is in bin 0 and true in bin 9. */
    const char bn[1][TENSOR_NAME_MAX] = {"flag"};
    double edges[1][9] = {{0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5}};
    double expected[1][10] = {{0.5, 0, 0, 0, 0, 0, 0, 0, 0, 0.5}};
    struct drift *db = NULL;
    assert_int_equal(drift_new(1, bn, edges, expected, 10, &db), 0);
    r = req_new(4);
    t = req_input(r, "flag", DT_BOOL, 1, 0);
    t->data[1] = 1;
    t->data[3] = 1;
    drift_observe(db, r);
    req_free(r);
    assert_true(drift_psi(db, 0) == 0); /* half and half, as the reference */
    drift_free(db);
}

static void test_fp16(void **state)
{
    /* binary16: 0.5, 1.5, 2.5 (subnormal 2^-24 ~ 6e-8 and -0 are bin 0),
     * 65504 (the largest), +Inf, 8.0, 3.0. */
    const uint16_t h[] = {0x3800, 0x3e00, 0x4100, 0x0001, 0x8000, 0x7bff, 0x7c00, 0x4800, 0x4200};
    const double as_double[] = {0.5, 1.5, 2.5, 5.9604644775390625e-08, -0.0, 65504, INFINITY, 8, 3};
    const size_t n = sizeof h / sizeof h[0];
    const char names[1][TENSOR_NAME_MAX] = {"x"};
    struct drift *want = int_drift(1, names, 100), *d = int_drift(1, names, 100);
    feed_values(want, as_double, n);
    struct infer_req *r = req_new(n);
    struct tensor *t = req_input(r, "x", DT_FP16, 1, 0);
    memcpy(t->data, h, sizeof h);
    drift_observe(d, r);
    req_free(r);
    assert_true(drift_psi(want, 0) > 0);
    assert_true(drift_psi(d, 0) == drift_psi(want, 0));
    drift_free(want);
    drift_free(d);
    /* A half NaN (0x7e00) is no value. */
    d = int_drift(1, names, 100);
    r = req_new(1);
    t = req_input(r, "x", DT_FP16, 1, 0);
    const uint16_t hn = 0x7e00;
    memcpy(t->data, &hn, 2);
    drift_observe(d, r);
    req_free(r);
    assert_true(drift_psi(d, 0) == 0);
    drift_free(d);
}

/* Three features a, b, c from the columns of one [rows, 3] input, and from
 * a [rows, 1] input per name. */
static void test_2d_input(void **state)
{
    const char names[3][TENSOR_NAME_MAX] = {"a", "b", "c"};
    double edges[3][9], expected[3][10];
    for (int f = 0; f < 3; f++) {
        for (int i = 0; i < 9; i++)
            edges[f][i] = i + 1;
        memset(expected[f], 0, sizeof expected[f]);
    }
    expected[0][0] = 1; /* a: all in bin 0 */
    expected[1][5] = 1; /* b: bin 5 */
    expected[2][9] = 1; /* c: bin 9 */
    const enum dtype types[] = {DT_FP32, DT_FP64, DT_INT32};
    for (size_t k = 0; k < 3; k++) {
        struct drift *d = NULL;
        assert_int_equal(drift_new(3, names, edges, expected, 50, &d), 0);
        struct infer_req *r = req_new(20);
        struct tensor *t = req_input(r, "features", types[k], 2, 3);
        for (size_t i = 0; i < 20; i++) {
            put_as(t, i * 3 + 0, 0);
            put_as(t, i * 3 + 1, 6);
            put_as(t, i * 3 + 2, 30);
        }
        drift_observe(d, r);
        req_free(r);
        for (int f = 0; f < 3; f++)
            if (drift_psi(d, f) != 0)
                fail_msg("%s column %s: psi %g, the columns are not the features", dtype_name(types[k]), names[f],
                         drift_psi(d, f));
        /* Columns swapped: every feature drifts. */
        r = req_new(20);
        t = req_input(r, "features", types[k], 2, 3);
        for (size_t i = 0; i < 20; i++) {
            put_as(t, i * 3 + 0, 30);
            put_as(t, i * 3 + 1, 0);
            put_as(t, i * 3 + 2, 6);
        }
        drift_observe(d, r);
        req_free(r);
        for (int f = 0; f < 3; f++)
            assert_true(drift_psi(d, f) > 0.2);
        drift_free(d);
    }
    /* [rows, 1] inputs by name, one of them absent: the others count. */
    struct drift *d = NULL;
    assert_int_equal(drift_new(3, names, edges, expected, 50, &d), 0);
    struct infer_req *r = req_new(5);
    struct tensor *a = req_input(r, "a", DT_FP64, 2, 1);
    struct tensor *c = req_input(r, "c", DT_FP64, 1, 0);
    req_input(r, "b", DT_BYTES, 1, 0); /* no number in it */
    for (size_t i = 0; i < 5; i++) {
        put_f64(a, i, 0);
        put_f64(c, i, 50);
    }
    drift_observe(d, r);
    req_free(r);
    assert_true(drift_psi(d, 0) == 0);
    assert_true(drift_psi(d, 1) == 0); /* nothing seen */
    assert_true(drift_psi(d, 2) == 0);
    /* Then b alone, far from its bin: b drifts, a and c keep their rows. */
    r = req_new(5);
    struct tensor *b = req_input(r, "b", DT_FP64, 1, 0);
    for (size_t i = 0; i < 5; i++)
        put_f64(b, i, 0);
    drift_observe(d, r);
    req_free(r);
    assert_true(drift_psi(d, 0) == 0);
    assert_true(drift_psi(d, 1) > 0.2);
    assert_true(drift_psi(d, 2) == 0);
    /* A request that matches nothing (a 2-D input of the wrong width, an
     * unknown name) changes nothing. */
    r = req_new(5);
    req_input(r, "features", DT_FP64, 2, 2);
    req_input(r, "other", DT_FP64, 1, 0);
    drift_observe(d, r);
    req_free(r);
    assert_true(drift_psi(d, 0) == 0 && drift_psi(d, 2) == 0);
    drift_observe(d, NULL);
    drift_observe(NULL, NULL);
    drift_free(d);
}

static void expect_bad(size_t nf, const char names[][TENSOR_NAME_MAX], const double edges[][9],
                       const double expected[][10], unsigned window, int code, const char *detail)
{
    struct drift *d = NULL;
    int rc = drift_new(nf, names, edges, expected, window, &d);
    if (rc != code || !strstr(err_detail(), detail))
        fail_msg("drift_new: %d '%s', expected %d '%s'", rc, err_detail(), code, detail);
    assert_null(d);
}

static void test_bad_reference(void **state)
{
    char names[2][TENSOR_NAME_MAX] = {"x", "y"};
    double edges[2][9], expected[2][10];
    ref_uniform(edges[0], expected[0]);
    ref_uniform(edges[1], expected[1]);
    expect_bad(2, names, edges, expected, 0, FERRY_E_INVALID, "window 0");
    expect_bad(2, names, edges, expected, DRIFT_WINDOW_MAX + 1, FERRY_E_INVALID, "window");
    expect_bad(0, names, edges, expected, 10, FERRY_E_INVALID, "0 inputs");
    /* The ring is a byte per input and row: 10 million rows of 8 inputs are too many. */
    {
        char n8[8][TENSOR_NAME_MAX];
        double e8[8][9], x8[8][10];
        for (int f = 0; f < 8; f++) {
            snprintf(n8[f], sizeof n8[f], "f%d", f);
            ref_uniform(e8[f], x8[f]);
        }
        expect_bad(8, n8, e8, x8, DRIFT_WINDOW_MAX, FERRY_E_LIMIT, "is over 67108864 bytes");
        struct drift *big = NULL;
        assert_int_equal(drift_new(6, n8, e8, x8, DRIFT_WINDOW_MAX, &big), 0);
        drift_free(big);
    }
    edges[1][4] = 0.01;
    expect_bad(2, names, edges, expected, 10, FERRY_E_INVALID, "input y: the reference's bin edges");
    edges[1][4] = NAN;
    expect_bad(2, names, edges, expected, 10, FERRY_E_INVALID, "input y: the reference's bin edges");
    ref_uniform(edges[1], expected[1]);
    expected[0][3] = -0.1;
    expect_bad(2, names, edges, expected, 10, FERRY_E_INVALID, "input x: a reference fraction");
    expected[0][3] = 0.05;
    expect_bad(2, names, edges, expected, 10, FERRY_E_INVALID, "input x: the reference fractions sum to 0.95");
    expected[0][3] = 0.1;
    names[1][0] = 0;
    expect_bad(2, names, edges, expected, 10, FERRY_E_INVALID, "input 1: the name is empty");
    memset(names[1], 'n', TENSOR_NAME_MAX);
    expect_bad(2, names, edges, expected, 10, FERRY_E_INVALID, "input 1: the name is empty or longer");
    /* Tied deciles (a discrete input) are fine: the tied bins are empty. */
    snprintf(names[1], TENSOR_NAME_MAX, "y");
    for (int i = 0; i < 9; i++)
        edges[1][i] = i < 5 ? 0 : 1;
    struct drift *d = NULL;
    assert_int_equal(drift_new(2, names, edges, expected, 10, &d), 0);
    drift_free(d);
}

/* ---- threads ---- */

struct obs_arg {
    struct drift *d;
    double value;
};

#define ROUNDS 2000
#define ROWS 5

static void *observer(void *p)
{
    struct obs_arg *a = p;
    for (int i = 0; i < ROUNDS; i++) {
        struct infer_req *r = req_new(ROWS);
        struct tensor *t = req_input(r, "x", DT_FP64, 1, 0);
        for (size_t k = 0; k < ROWS; k++)
            put_f64(t, k, a->value);
        drift_observe(a->d, r);
        req_free(r);
    }
    return NULL;
}

static void *reader(void *p)
{
    struct obs_arg *a = p;
    for (int i = 0; i < ROUNDS; i++) {
        double psi = drift_psi(a->d, 0);
        assert_true(isfinite(psi) && psi >= 0);
    }
    return NULL;
}

static void test_threads(void **state)
{
    /* The window holds every row both threads send: whatever the
     * interleaving, half are in bin 0 and half in bin 9 at the end. */
    struct drift *d = one_feature(2 * ROUNDS * ROWS, NULL);
    struct obs_arg lo = {d, 0.05}, hi = {d, 0.95};
    pthread_t t[3];
    assert_int_equal(pthread_create(&t[0], NULL, observer, &lo), 0);
    assert_int_equal(pthread_create(&t[1], NULL, observer, &hi), 0);
    assert_int_equal(pthread_create(&t[2], NULL, reader, &lo), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    const double a[10] = {0.5, 0, 0, 0, 0, 0, 0, 0, 0, 0.5};
    const double e[10] = {0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1};
    assert_near(drift_psi(d, 0), psi_of(a, e), 1e-12);
    drift_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_rows_stay_low),
        cmocka_unit_test(test_shifted_rows_go_high),
        cmocka_unit_test(test_window_slides),
        cmocka_unit_test(test_exact_value),
        cmocka_unit_test(test_bins),
        cmocka_unit_test(test_datatypes),
        cmocka_unit_test(test_fp16),
        cmocka_unit_test(test_2d_input),
        cmocka_unit_test(test_bad_reference),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
