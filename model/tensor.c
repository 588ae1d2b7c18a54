#include "tensor.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    size_t size;
} dtypes[DT_COUNT] = {
    [DT_BOOL] = {"BOOL", 1},     [DT_UINT8] = {"UINT8", 1},   [DT_UINT16] = {"UINT16", 2},
    [DT_UINT32] = {"UINT32", 4}, [DT_UINT64] = {"UINT64", 8}, [DT_INT8] = {"INT8", 1},
    [DT_INT16] = {"INT16", 2},   [DT_INT32] = {"INT32", 4},   [DT_INT64] = {"INT64", 8},
    [DT_FP16] = {"FP16", 2},     [DT_FP32] = {"FP32", 4},     [DT_FP64] = {"FP64", 8},
    [DT_BYTES] = {"BYTES", 0},
};

const char *dtype_name(enum dtype t)
{
    return (unsigned)t < DT_COUNT ? dtypes[t].name : NULL;
}

int dtype_parse(const char *s, enum dtype *out)
{
    for (unsigned i = 0; s && i < DT_COUNT; i++)
        if (strcmp(s, dtypes[i].name) == 0) {
            *out = (enum dtype)i;
            return 0;
        }
    return err_set(FERRY_E_INVALID, "unknown datatype '%s'", s ? s : "");
}

size_t dtype_size(enum dtype t)
{
    return (unsigned)t < DT_COUNT ? dtypes[t].size : 0;
}

void tensor_fini(struct tensor *t)
{
    if (!t)
        return;
    free(t->data);
    memset(t, 0, sizeof *t);
}
