/* pool — the model's Python worker processes (worker.py), children of the
 * server in its session, each fed one batch at a time over a socket pair on
 * its stdin/stdout (framing: wframe.h, worker.py's docstring, docs/models.md
 * "Workers"). One thread per worker starts it, reads its answers, reaps it
 * when it dies, fails the batch it held and restarts it with a backoff, so
 * a model that always crashes does not spin. */
#ifndef FERRY_MODEL_POOL_H
#define FERRY_MODEL_POOL_H

#include "infer.h"
#include "tensor.h"

#include <stddef.h>
#include <stdint.h>

struct pool;
struct pool_worker;

struct pool_opts {
    const char *python;      /* the interpreter */
    const char *worker_py;   /* worker.py */
    const char *dir;         /* the model directory */
    const char *config_json; /* the model section for worker.py */
    unsigned workers;
};

/* One input tensor of a batch: the bytes of several requests' tensors,
 * concatenated along the first dimension without being copied. */
struct pool_seg {
    const void *data;
    size_t len;
};
struct pool_input {
    const char *name;
    enum dtype dtype;
    int rank;
    int64_t shape[TENSOR_RANK_MAX];  /* shape[0]: the batch's rows */
    const struct pool_seg *segs;
    size_t n_segs;
};

/* status 200: out holds the whole batch's outputs, each with shape[0] ==
 * the batch's rows (the callee owns it; infer_result_fini); 500: the model
 * raised or the worker died or misbehaved, msg says which; 503: the pool is
 * stopping. Called once, on the worker's thread. */
typedef void (*pool_answer_fn)(void *arg, int status, struct infer_result *out, const char *msg);

/* Start the workers and wait until the first has loaded the model (the
 * others start loading then, one CPU-bound import not competing with the
 * rest; pool_ready counts them as they come). On a failure of the first,
 * an error whose detail is the worker's reason (worker.py's last line),
 * nothing left running. */
int pool_start(const struct pool_opts *o, struct pool **out);
/* Claim an idle worker, waiting for one. NULL when the pool stops, or when
 * no worker is serving or starting (all are in their restart backoff). */
struct pool_worker *pool_acquire(struct pool *p);
/* Claim an idle worker if one is idle now, else NULL. */
struct pool_worker *pool_try_acquire(struct pool *p);
/* Send a batch to a claimed worker; fn runs once with its answer (possibly
 * before pool_send returns). The worker is idle again after fn. */
void pool_send(struct pool_worker *w, const struct pool_input *in, size_t n, pool_answer_fn fn,
               void *arg);
/* Give back a claimed worker without sending it anything. */
void pool_release(struct pool_worker *w);
/* Begin stopping: pool_acquire returns NULL from now on and the workers
 * see EOF; pool_stop still has to be called. */
void pool_cancel(struct pool *p);
/* For a sklearn model that declared no inputs: {"inputs": [...]} as the
 * fitted estimator takes them (the first worker's ready frame), else NULL.
 * Fixed once pool_start returned. */
const char *pool_signature(struct pool *p);
/* Workers loaded and serving (idle or busy). */
unsigned pool_ready(struct pool *p);
/* Restarts after a worker died, since start. */
uint64_t pool_restarts(struct pool *p);
/* Stop the workers: each sees EOF on its stdin, answers the batch it holds
 * if it finishes within the grace period (else it is killed and the batch
 * fails with 503), and exits; join the threads, free. */
void pool_stop(struct pool *p);

/* Run `python worker_py MODE dir config_json` once and collect its stdout
 * (at most max bytes, NUL-terminated, malloc'd). 0 when it exited 0; on a
 * non-zero exit, FERRY_E_INVALID with *out still set (worker.py prints its
 * error as JSON there). */
int pool_run_once(const char *python, const char *worker_py, const char *mode, const char *dir,
                  const char *config_json, size_t max, char **out);

#endif
