/* batcher — requests that arrive together go to a worker together: up to
 * max_batch rows or max_delay after the first, whichever comes first,
 * concatenated along the first dimension, and the outputs split back per
 * request. Owns the worker pool (pool.h). */
#ifndef FERRY_MODEL_BATCHER_H
#define FERRY_MODEL_BATCHER_H

#include "infer.h"
#include "modelcfg.h"

#include <stdint.h>

struct batcher;

/* How a request fared, for metrics. */
struct batch_timing {
    uint64_t queue_ns;    /* submit -> handed to a worker */
    uint64_t compute_ns;  /* handed to a worker -> its answer */
    unsigned batch_rows;  /* rows in the batch it rode in */
    unsigned batch_requests;
};

/* status: 200 with res filled (the callee's to infer_result_fini), or 500
 * (the model raised: msg is its error text; a worker died: msg says so),
 * or 503 (shutting down). Called on a batcher thread, exactly once. */
typedef void (*batcher_done_fn)(void *arg, int status, struct infer_result *res,
                                const char *msg, const struct batch_timing *t);

/* Start cfg->workers Python workers for the model in dir (python: the
 * interpreter, e.g. /usr/bin/python3 or $FERRY_PYTHON; worker_py: the path
 * of worker.py). Returns once the first worker has loaded the model (the
 * others load after it: pool.h), or an error naming why it could not (the
 * model's own traceback's last line). */
int batcher_start(const struct model_cfg *cfg, const char *dir, const char *python,
                  const char *worker_py, struct batcher **out);
/* Any thread. req stays the caller's and must live until done runs. 0, or
 * an error and done is never called: -ESHUTDOWN once batcher_stop began,
 * FERRY_E_INVALID for a req whose inputs do not all have req->rows rows.
 * While every worker waits out its restart backoff, queued requests fail
 * with 503. */
int batcher_submit(struct batcher *b, const struct infer_req *req, batcher_done_fn done,
                   void *arg);
/* A sklearn model without declared inputs: {"inputs": [...]} as the fitted
 * estimator takes them, else NULL (pool.h pool_signature). */
const char *batcher_signature(struct batcher *b);
/* Workers alive and loaded now (readiness: > 0). */
unsigned batcher_ready_workers(struct batcher *b);
/* Workers restarted after dying, since start. */
uint64_t batcher_worker_restarts(struct batcher *b);
/* Fail what is queued with 503; a batch a worker holds is answered if the
 * worker finishes it within the stop grace period (3 s), else 503. Stop the
 * workers, free. No batcher_submit may run concurrently or after. */
void batcher_stop(struct batcher *b);

/* Drift support: run worker.py once to bin the reference CSV (a header row
 * of input names) into 10 bins from its deciles, for every 1-D numeric
 * input (or each column of a single 2-D input). Fills edges (9 inner cut
 * points per input, non-decreasing) and expected (10 fractions per input;
 * bin i holds edges[i-1] < x <= edges[i], bins 0 and 9 open), arrays with
 * room for one feature per input, or for a single 2-D input one per column
 * (shape[1]; MODEL_IO_MAX when that is -1). Names: the 1-D inputs' names,
 * or the CSV's header names for the columns of a 2-D input.
 * 0, or an error naming the file and the reason. */
int batcher_reference_bins(const struct model_cfg *cfg, const char *dir, const char *python,
                           const char *worker_py, double edges[][9], double expected[][10],
                           char names[][TENSOR_NAME_MAX], size_t *n_features);

#endif
