/* infer — one inference request and its result as the server carries them
 * between the protocol parsers, the batcher and the workers. */
#ifndef FERRY_MODEL_INFER_H
#define FERRY_MODEL_INFER_H

#include "modelcfg.h"
#include "tensor.h"

enum infer_protocol { PROTO_V2, PROTO_MLFLOW };

struct infer_req {
    enum infer_protocol protocol;
    char *id;                               /* V2 "id", echoed; NULL when absent */
    /* Every signature input, in signature order, checked against it. */
    struct tensor inputs[MODEL_IO_MAX];
    size_t n_inputs;
    size_t rows;                            /* the shared first dimension */
    /* V2 "outputs": the names asked for; 0 means all. */
    char requested[MODEL_IO_MAX][TENSOR_NAME_MAX];
    size_t n_requested;
    /* MLflow: how the caller wants predictions shaped (mlflow.c's business). */
    int mlflow_shape;
};

struct infer_result {
    /* Each output's first dimension equals the request's rows. */
    struct tensor outputs[MODEL_IO_MAX];
    size_t n_outputs;
};

void infer_req_fini(struct infer_req *r);
/* A request the parsers refuse: the reason into errbuf, and 400 (the HTTP
 * status every such refusal gets). */
int infer_refuse(char *errbuf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void infer_result_fini(struct infer_result *r);

#endif
