#include "drift.h"
#include "error.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A feature's bin in the ring; MISSING when the row had no usable value for
 * it (the input absent, BYTES, NaN): such rows do not count for that
 * feature, so its fractions are over the rows that had one. */
#define MISSING 0xffu
/* Rows binned outside the lock at a time: the stack buffer's size. */
#define CHUNK_BYTES 16384u

struct drift {
    pthread_mutex_t lock;
    size_t nf;
    char (*names)[TENSOR_NAME_MAX];
    double (*edges)[9];
    double (*expected)[10];
    unsigned window;
    /* The last `window` rows, one bin byte per feature; head is the slot the
     * next row takes (the oldest once the ring is full). counts and present
     * follow the ring, so a PSI costs 10 steps, not a pass over the window. */
    uint8_t *ring;
    size_t head;
    size_t filled;
    uint32_t (*counts)[10];
    uint32_t *present;
};

void drift_free(struct drift *d)
{
    if (!d)
        return;
    pthread_mutex_destroy(&d->lock);
    free(d->names);
    free(d->edges);
    free(d->expected);
    free(d->ring);
    free(d->counts);
    free(d->present);
    free(d);
}

static int check_feature(const char *name, const double edges[9], const double expected[10])
{
    for (int i = 0; i < 9; i++)
        if (!isfinite(edges[i]) || (i > 0 && edges[i] < edges[i - 1]))
            return err_set(FERRY_E_INVALID, "drift: input %s: the reference's bin edges are not finite and increasing",
                           name);
    double sum = 0;
    for (int i = 0; i < 10; i++) {
        if (!isfinite(expected[i]) || expected[i] < 0 || expected[i] > 1)
            return err_set(FERRY_E_INVALID, "drift: input %s: a reference fraction is not in [0, 1]", name);
        sum += expected[i];
    }
    /* Fractions of a count, rounded: they sum to 1 up to rounding. */
    if (fabs(sum - 1) > 1e-6)
        return err_set(FERRY_E_INVALID, "drift: input %s: the reference fractions sum to %g, not 1", name, sum);
    return 0;
}

int drift_new(size_t n_features, const char names[][TENSOR_NAME_MAX], const double edges[][9],
              const double expected[][10], unsigned window, struct drift **out)
{
    if (!out || !names || !edges || !expected)
        return err_set(FERRY_E_INVALID, "drift: no reference");
    if (n_features == 0 || n_features > DRIFT_FEATURES_MAX)
        return err_set(FERRY_E_INVALID, "drift: %zu inputs, expected 1 to %u", n_features, DRIFT_FEATURES_MAX);
    if (window == 0 || window > DRIFT_WINDOW_MAX)
        return err_set(FERRY_E_INVALID, "drift: window %u, expected 1 to %u rows", window, DRIFT_WINDOW_MAX);
    if ((uint64_t)window * n_features > DRIFT_RING_BYTES_MAX)
        return err_set(FERRY_E_LIMIT, "drift: a window of %u rows of %zu inputs is over %u bytes", window, n_features,
                       DRIFT_RING_BYTES_MAX);
    for (size_t i = 0; i < n_features; i++) {
        size_t len = strnlen(names[i], TENSOR_NAME_MAX);
        if (len == 0 || len == TENSOR_NAME_MAX)
            return err_set(FERRY_E_INVALID, "drift: input %zu: the name is empty or longer than %d bytes", i,
                           TENSOR_NAME_MAX - 1);
        int rc = check_feature(names[i], edges[i], expected[i]);
        if (rc < 0)
            return rc;
    }
    struct drift *d = calloc(1, sizeof *d);
    if (!d)
        return -ENOMEM;
    if (pthread_mutex_init(&d->lock, NULL) != 0) {
        free(d);
        return -ENOMEM;
    }
    d->nf = n_features;
    d->window = window;
    d->names = malloc(n_features * sizeof *d->names);
    d->edges = malloc(n_features * sizeof *d->edges);
    d->expected = malloc(n_features * sizeof *d->expected);
    d->ring = malloc((size_t)window * n_features);
    d->counts = calloc(n_features, sizeof *d->counts);
    d->present = calloc(n_features, sizeof *d->present);
    if (!d->names || !d->edges || !d->expected || !d->ring || !d->counts || !d->present) {
        drift_free(d);
        return -ENOMEM;
    }
    memcpy(d->names, names, n_features * sizeof *d->names);
    memcpy(d->edges, edges, n_features * sizeof *d->edges);
    memcpy(d->expected, expected, n_features * sizeof *d->expected);
    *out = d;
    return 0;
}

size_t drift_features(const struct drift *d)
{
    return d ? d->nf : 0;
}

const char *drift_feature_name(const struct drift *d, size_t i)
{
    return d && i < d->nf ? d->names[i] : NULL;
}

/* ---- reading values ---- */

/* IEEE binary16 to double. */
static double half_to_double(uint16_t h)
{
    int sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    double v;
    if (exp == 0)
        v = ldexp(mant, -24); /* zero and subnormals */
    else if (exp == 31)
        v = mant ? NAN : INFINITY;
    else
        v = ldexp(mant + 1024, exp - 25);
    return sign ? -v : v;
}

/* Element i of t as a double (memcpy: tensor bytes need not be aligned);
 * NaN for what has no number (BYTES). */
static double element(const struct tensor *t, size_t i)
{
    const uint8_t *p = t->data + i * dtype_size(t->dtype);
    switch (t->dtype) {
#define AS(type)                                                                                                   \
    do {                                                                                                           \
        type x;                                                                                                    \
        memcpy(&x, p, sizeof x);                                                                                   \
        return (double)x;                                                                                          \
    } while (0)
    case DT_BOOL: return *p ? 1.0 : 0.0;
    case DT_UINT8: AS(uint8_t);
    case DT_UINT16: AS(uint16_t);
    case DT_UINT32: AS(uint32_t);
    case DT_UINT64: AS(uint64_t);
    case DT_INT8: AS(int8_t);
    case DT_INT16: AS(int16_t);
    case DT_INT32: AS(int32_t);
    case DT_INT64: AS(int64_t);
    case DT_FP32: AS(float);
    case DT_FP64: AS(double);
    case DT_FP16: {
        uint16_t h;
        memcpy(&h, p, sizeof h);
        return half_to_double(h);
    }
#undef AS
    default: return NAN;
    }
}

/* Bin i holds edges[i-1] < x <= edges[i]; bin 0 and bin 9 are open. */
static uint8_t bin_of(const double edges[9], double x)
{
    if (isnan(x))
        return MISSING;
    uint8_t lo = 0, hi = 9;
    while (lo < hi) {
        uint8_t mid = (uint8_t)((lo + hi) / 2);
        if (x <= edges[mid])
            hi = mid;
        else
            lo = (uint8_t)(mid + 1);
    }
    return lo;
}

/* Where a feature's values are in a request: element row * stride + col of t. */
struct source {
    const struct tensor *t;
    size_t stride;
    size_t col;
};

static int numeric(const struct tensor *t)
{
    return t->dtype != DT_BYTES && dtype_size(t->dtype) > 0 && t->data;
}

/* Each feature is the 1-D input (or [rows, 1]) of its name; failing every
 * name, a single 2-D input [rows, n_features] gives one feature per column.
 * Returns how many features have a source. */
static size_t sources(const struct drift *d, const struct infer_req *req, size_t rows, struct source *src)
{
    size_t found = 0;
    for (size_t f = 0; f < d->nf; f++) {
        src[f].t = NULL;
        for (size_t k = 0; k < req->n_inputs; k++) {
            const struct tensor *t = &req->inputs[k];
            if (strcmp(t->name, d->names[f]) != 0 || !numeric(t) || t->n != rows)
                continue;
            if (t->rank == 1 || (t->rank == 2 && t->shape[1] == 1)) {
                src[f] = (struct source){t, 1, 0};
                found++;
            }
            break;
        }
    }
    if (found)
        return found;
    const struct tensor *two = NULL;
    for (size_t k = 0; k < req->n_inputs; k++) {
        const struct tensor *t = &req->inputs[k];
        if (t->rank == 2 && numeric(t) && t->shape[1] == (int64_t)d->nf && t->n == rows * d->nf) {
            if (two)
                return 0; /* which one would it be? */
            two = t;
        }
    }
    if (!two)
        return 0;
    for (size_t f = 0; f < d->nf; f++)
        src[f] = (struct source){two, d->nf, f};
    return d->nf;
}

void drift_observe(struct drift *d, const struct infer_req *req)
{
    if (!d || !req || req->rows == 0)
        return;
    size_t rows = req->rows;
    struct source *src = malloc(d->nf * sizeof *src);
    if (!src)
        return;
    if (sources(d, req, rows, src) == 0) {
        free(src);
        return;
    }
    /* Only the last `window` rows can still be in the window afterwards. */
    size_t first = rows > d->window ? rows - d->window : 0;
    size_t chunk = CHUNK_BYTES / d->nf;
    if (chunk == 0)
        chunk = 1;
    uint8_t buf[CHUNK_BYTES];
    for (size_t r0 = first; r0 < rows; r0 += chunk) {
        size_t n = rows - r0 < chunk ? rows - r0 : chunk;
        for (size_t r = 0; r < n; r++)
            for (size_t f = 0; f < d->nf; f++)
                buf[r * d->nf + f] = src[f].t ? bin_of(d->edges[f], element(src[f].t, (r0 + r) * src[f].stride + src[f].col))
                                              : (uint8_t)MISSING;
        pthread_mutex_lock(&d->lock);
        for (size_t r = 0; r < n; r++) {
            uint8_t *slot = d->ring + d->head * d->nf;
            if (d->filled == d->window)
                for (size_t f = 0; f < d->nf; f++)
                    if (slot[f] != MISSING) {
                        d->counts[f][slot[f]]--;
                        d->present[f]--;
                    }
            memcpy(slot, buf + r * d->nf, d->nf);
            for (size_t f = 0; f < d->nf; f++)
                if (slot[f] != MISSING) {
                    d->counts[f][slot[f]]++;
                    d->present[f]++;
                }
            d->head = (d->head + 1) % d->window;
            if (d->filled < d->window)
                d->filled++;
        }
        pthread_mutex_unlock(&d->lock);
    }
    free(src);
}

size_t drift_rows(struct drift *d)
{
    if (!d)
        return 0;
    pthread_mutex_lock(&d->lock);
    size_t n = d->filled;
    pthread_mutex_unlock(&d->lock);
    return n;
}

double drift_psi(struct drift *d, size_t i)
{
    if (!d || i >= d->nf)
        return 0;
    uint32_t counts[10], total;
    pthread_mutex_lock(&d->lock);
    memcpy(counts, d->counts[i], sizeof counts);
    total = d->present[i];
    pthread_mutex_unlock(&d->lock);
    if (total == 0)
        return 0;
    double psi = 0;
    for (int b = 0; b < 10; b++) {
        double a = (double)counts[b] / total, e = d->expected[i][b];
        /* An empty bin would make ln(a / e) infinite: both sides are floored. */
        if (a < DRIFT_EPSILON)
            a = DRIFT_EPSILON;
        if (e < DRIFT_EPSILON)
            e = DRIFT_EPSILON;
        psi += (a - e) * log(a / e);
    }
    return psi;
}
