#include "infer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void infer_req_fini(struct infer_req *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_inputs; i++)
        tensor_fini(&r->inputs[i]);
    free(r->id);
    memset(r, 0, sizeof *r);
}

void infer_result_fini(struct infer_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_outputs; i++)
        tensor_fini(&r->outputs[i]);
    memset(r, 0, sizeof *r);
}

int infer_refuse(char *errbuf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, cap, fmt, ap);
    va_end(ap);
    return 400;
}
