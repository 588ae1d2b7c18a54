/* tensor — Open Inference Protocol (V2) datatypes and one tensor's bytes,
 * the currency between the protocol parsers (v2.c, mlflow.c), the batcher
 * and the Python workers. */
#ifndef FERRY_MODEL_TENSOR_H
#define FERRY_MODEL_TENSOR_H

#include <stddef.h>
#include <stdint.h>

enum dtype {
    DT_BOOL, DT_UINT8, DT_UINT16, DT_UINT32, DT_UINT64,
    DT_INT8, DT_INT16, DT_INT32, DT_INT64,
    DT_FP16, DT_FP32, DT_FP64, DT_BYTES,
    DT_COUNT
};

#define TENSOR_RANK_MAX 8
#define TENSOR_NAME_MAX 64    /* bytes including the NUL */

/* "FP64" ... ; NULL for an unknown value. */
const char *dtype_name(enum dtype t);
/* The exact V2 spelling ("FP64"); FERRY_E_INVALID otherwise. */
int dtype_parse(const char *s, enum dtype *out);
/* Bytes per element; 0 for BYTES. */
size_t dtype_size(enum dtype t);

/* Fixed-size datatypes: n elements, each dtype_size bytes, host byte order
 * (little-endian here), row-major; BOOL is one byte 0/1; FP16 is IEEE
 * binary16. BYTES: n elements, each a uint32 length then that many bytes,
 * concatenated (Triton's layout). */
struct tensor {
    char name[TENSOR_NAME_MAX];
    enum dtype dtype;
    int rank;
    int64_t shape[TENSOR_RANK_MAX];
    size_t n;          /* elements: the product of shape */
    uint8_t *data;     /* malloc'd */
    size_t nbytes;
};

void tensor_fini(struct tensor *t);

#endif
