/* drift — the population stability index of each feature over the last
 * `window` rows served, against the reference's bins (batcher.h
 * batcher_reference_bins). PSI = sum over bins of (a - e) * ln(a / e),
 * a and e floored at a small epsilon so an empty bin stays finite.
 * Thread-safe. */
#ifndef FERRY_MODEL_DRIFT_H
#define FERRY_MODEL_DRIFT_H

#include "infer.h"
#include "tensor.h"

#include <stddef.h>

struct drift;

/* Both fractions of a bin are floored at this before the logarithm: an
 * empty bin then adds a large but finite term (about 0.69 for a bin the
 * reference gives 10 %), and two empty bins add nothing. */
#define DRIFT_EPSILON 1e-4
#define DRIFT_FEATURES_MAX 1024u
#define DRIFT_WINDOW_MAX 10000000u
#define DRIFT_RING_BYTES_MAX (64u << 20) /* window * features: one byte per value */

/* Bin i of feature f holds edges[f][i-1] < x <= edges[f][i] (bin 0 and bin
 * 9 open); expected[f] are the reference's fractions (summing to 1), edges
 * finite and non-decreasing (tied deciles leave an empty bin). Copies
 * everything. FERRY_E_INVALID or FERRY_E_LIMIT with a line naming the input. */
int drift_new(size_t n_features, const char names[][TENSOR_NAME_MAX], const double edges[][9],
              const double expected[][10], unsigned window, struct drift **out);
/* Feed the rows of a request that was served (its numeric inputs). Each
 * feature is read from the 1-D input of its name (or one shaped [rows, 1]);
 * when no input has a feature's name, a single 2-D input [rows, features]
 * gives one feature per column, in order (the reference header's names).
 * Every numeric datatype counts as a double; BYTES, NaN and inputs absent
 * leave that feature's value out of that row. Keeps the last `window`
 * rows only. */
void drift_observe(struct drift *d, const struct infer_req *req);
/* PSI of feature i over the rows in the window; 0 while it is empty. */
double drift_psi(struct drift *d, size_t i);
size_t drift_features(const struct drift *d);
/* Rows in the window now (at most window): a PSI over a window not yet full
 * compares a handful of rows with ten bins and reads as drift. */
size_t drift_rows(struct drift *d);
const char *drift_feature_name(const struct drift *d, size_t i);
void drift_free(struct drift *d);

#endif
