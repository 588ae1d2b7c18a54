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

int drift_new(size_t n_features, const char names[][TENSOR_NAME_MAX], const double edges[][9],
              const double expected[][10], unsigned window, struct drift **out);
/* Feed the rows of a request that was served (its numeric inputs). */
void drift_observe(struct drift *d, const struct infer_req *req);
/* PSI of feature i over the rows in the window; 0 while it is empty. */
double drift_psi(struct drift *d, size_t i);
size_t drift_features(const struct drift *d);
const char *drift_feature_name(const struct drift *d, size_t i);
void drift_free(struct drift *d);

#endif
