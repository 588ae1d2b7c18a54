/* tjson — tensors to and from JSON values, shared by the two protocols
 * (v2.c, mlflow.c): one element's conversion with its range check, a whole
 * tensor from flat or nested ("natural", row-major) data, and a tensor back
 * as a flat list or as a list of rows.
 *
 * Fill functions return 0, or -1 with why holding the reason without the
 * tensor's name ("element 3: 300 is out of range for UINT8"), so the caller
 * can put the input's name in front. */
#ifndef FERRY_MODEL_TJSON_H
#define FERRY_MODEL_TJSON_H

#include "tensor.h"

#include <jansson.h>
#include <stddef.h>

/* JSON null reads as NaN for FP16/FP32/FP64 (MLflow's missing value). */
#define TJSON_NULL_NAN 1

/* Fill t->data/nbytes from data. t->name, dtype, rank, shape and n (the
 * product of shape) are set by the caller. data is a flat list of n
 * elements or a rectangular nesting of n elements, read row-major: the
 * natural form of shape, or any other regular nesting of as many values.
 * On failure t->data is freed. */
int tjson_fill(struct tensor *t, const json_t *data, int flags, char *why, size_t whycap);

/* The elements as one flat list (V2 "data"); non-finite floats are null. */
json_t *tjson_flat(const struct tensor *t);
/* rank 1: a list of values; rank > 1: a list of rows, each nested as
 * shape[1:] (MLflow "predictions"). */
json_t *tjson_rows(const struct tensor *t);

/* A short description of a JSON value for messages: "300", "\"abc\"" (up
 * to 20 characters), "true", "null", "a list", "an object". */
void tjson_describe(const json_t *v, char *buf, size_t cap);

#endif
