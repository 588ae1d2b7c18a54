/* modelcfg — what the model server serves, read from the workload's spec
 * as JSON (ABI 2 spec_json; docs/manifest.md "model"). The agent checked
 * the spec against ferry's schema before it signed anything was run, so a
 * failure here means a spec the server cannot serve (an error line, exit 2). */
#ifndef FERRY_MODEL_MODELCFG_H
#define FERRY_MODEL_MODELCFG_H

#include "tensor.h"

#include <stddef.h>
#include <stdint.h>

#define MODEL_IO_MAX 64
#define MODEL_BODY_MAX_DEFAULT (16u << 20)

enum model_format { MODEL_SKLEARN, MODEL_PYTHON };

/* One signature entry; shape[i] == -1 means any size in that dimension. */
struct model_io {
    char name[TENSOR_NAME_MAX];
    enum dtype dtype;
    int rank;
    int64_t shape[TENSOR_RANK_MAX];
};

struct model_cfg {
    char name[128];
    char version[72];
    enum model_format format;
    char file[256];       /* sklearn: the estimator, relative to dir */
    char entry[256];      /* python: FILE:CLASS */
    char method[32];      /* sklearn: predict | predict_proba */
    struct model_io inputs[MODEL_IO_MAX];
    size_t n_inputs;      /* 0 only for sklearn before the estimator said (model_cfg_set_inputs) */
    struct model_io outputs[MODEL_IO_MAX];
    size_t n_outputs;     /* 0: the model's outputs are not declared */
    char reference[256];  /* "" when none: no drift */
    unsigned workers;     /* >= 1 */
    unsigned max_batch;   /* 1: no batching */
    uint64_t max_delay_us;
    unsigned drift_window;
    double drift_alert;
    size_t max_body;
};

/* spec_json: the whole spec as one JSON object (name, version, model {...}).
 * 0, or FERRY_E_SPEC with err_detail() "model.KEY: reason". */
int model_cfg_parse(const char *spec_json, struct model_cfg *out);
/* A sklearn model that declared no inputs (n_inputs 0): take them from the
 * loaded estimator's signature, {"inputs": [{name, datatype, shape}]}
 * (batcher_signature). 0, or FERRY_E_SPEC with c untouched. */
int model_cfg_set_inputs(struct model_cfg *c, const char *json);

#endif
