#include "batcher.h"
#include "error.h"
#include "pool.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* worker.py bins prints a few hundred bytes per feature. */
#define BINS_OUTPUT_MAX (1u << 20)

struct pending {
    const struct infer_req *req;
    batcher_done_fn done;
    void *arg;
    uint64_t t_submit;
    struct pending *next;
};

struct batch {
    struct batcher *b;
    size_t n, rows;
    uint64_t t_send;
    struct pending *items[];
};

struct batcher {
    struct model_cfg cfg;
    struct pool *pool;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct pending *head, *tail;
    size_t queued_rows;
    int stopping;
    unsigned direct_sends;  /* submits sending on their own thread right now */
    unsigned in_flight;     /* batches sent and not answered yet */
    pthread_t thread;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------ worker config */

static json_t *io_json(const struct model_io *io, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        json_t *shape = json_array();
        for (int d = 0; shape && d < io[i].rank; d++)
            json_array_append_new(shape, json_integer(io[i].shape[d]));
        json_array_append_new(arr, json_pack("{s:s, s:s, s:o}", "name", io[i].name, "datatype",
                                             dtype_name(io[i].dtype), "shape",
                                             shape ? shape : json_null()));
    }
    return arr;
}

/* The model section as worker.py reads it (its CONFIG_JSON argument). */
static char *worker_config(const struct model_cfg *cfg)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o}", "format",
                          cfg->format == MODEL_PYTHON ? "python" : "sklearn", "file", cfg->file,
                          "entry", cfg->entry, "method", cfg->method[0] ? cfg->method : "predict",
                          "reference", cfg->reference, "inputs",
                          io_json(cfg->inputs, cfg->n_inputs), "outputs",
                          io_json(cfg->outputs, cfg->n_outputs));
    if (!o)
        return NULL;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* ------------------------------------------------------------ answers */

static void fail_one(struct pending *it, int status, const char *msg, const struct batch_timing *t)
{
    struct batch_timing zero = {0, 0, 0, 0};
    if (!t) {
        zero.queue_ns = now_ns() - it->t_submit;
        t = &zero;
    }
    it->done(it->arg, status, NULL, msg, t);
    free(it);
}

/* Fail a detached list (no lock held). */
static void fail_list(struct pending *it, int status, const char *msg)
{
    while (it) {
        struct pending *next = it->next;
        fail_one(it, status, msg, NULL);
        it = next;
    }
}

/* Rows [r0, r0+rows) of a batch output into out (its own copy). */
static int slice(const struct tensor *in, size_t total_rows, const size_t *row_off, size_t r0,
                 size_t rows, struct tensor *out)
{
    memset(out, 0, sizeof *out);
    memcpy(out->name, in->name, sizeof out->name);
    out->dtype = in->dtype;
    out->rank = in->rank;
    memcpy(out->shape, in->shape, sizeof out->shape);
    out->shape[0] = (int64_t)rows;
    size_t per_row = total_rows ? in->n / total_rows : 0;
    out->n = per_row * rows;
    size_t from, len;
    if (in->dtype == DT_BYTES) {
        from = row_off[r0];
        len = row_off[r0 + rows] - from;
    } else {
        size_t row_bytes = total_rows ? in->nbytes / total_rows : 0;
        from = row_bytes * r0;
        len = row_bytes * rows;
    }
    out->nbytes = len;
    out->data = malloc(len ? len : 1);
    if (!out->data)
        return -ENOMEM;
    memcpy(out->data, in->data + from, len);
    return 0;
}

/* Byte offset of each row start (and the end) of a BYTES tensor: the pool
 * checked the element lengths fill the data exactly. */
static size_t *bytes_rows(const struct tensor *t, size_t rows)
{
    size_t *off = malloc((rows + 1) * sizeof *off);
    if (!off)
        return NULL;
    size_t per_row = rows ? t->n / rows : 0, pos = 0;
    for (size_t r = 0; r < rows; r++) {
        off[r] = pos;
        for (size_t e = 0; e < per_row; e++) {
            uint32_t l;
            memcpy(&l, t->data + pos, 4);
            pos += 4 + l;
        }
    }
    off[rows] = pos;
    return off;
}

static int split(struct batch *bt, struct infer_result *res, const struct batch_timing *t)
{
    size_t *offs[MODEL_IO_MAX] = {0};
    struct infer_result *parts = calloc(bt->n, sizeof *parts);
    int rc = parts ? 0 : -ENOMEM;
    for (size_t o = 0; !rc && o < res->n_outputs; o++)
        if (res->outputs[o].dtype == DT_BYTES && !(offs[o] = bytes_rows(&res->outputs[o], bt->rows)))
            rc = -ENOMEM;
    size_t r0 = 0;
    for (size_t k = 0; !rc && k < bt->n; k++) {
        size_t rows = bt->items[k]->req->rows;
        for (size_t o = 0; !rc && o < res->n_outputs; o++) {
            rc = slice(&res->outputs[o], bt->rows, offs[o], r0, rows, &parts[k].outputs[o]);
            if (!rc)
                parts[k].n_outputs++;
        }
        r0 += rows;
    }
    for (size_t o = 0; o < MODEL_IO_MAX; o++)
        free(offs[o]);
    if (rc) {
        for (size_t k = 0; parts && k < bt->n; k++)
            infer_result_fini(&parts[k]);
        free(parts);
        return rc;
    }
    for (size_t k = 0; k < bt->n; k++) {
        struct pending *it = bt->items[k];
        struct batch_timing tk = *t;
        tk.queue_ns = bt->t_send - it->t_submit;
        it->done(it->arg, 200, &parts[k], NULL, &tk);
        free(it);
    }
    free(parts);
    return 0;
}

/* A batch is out of the workers' hands: a dispatcher holding a partial
 * batch back stops waiting once nothing is in flight. */
static void batch_landed(struct batcher *b)
{
    pthread_mutex_lock(&b->mu);
    if (--b->in_flight == 0)
        pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

/* The pool's answer for a whole batch, on the worker's thread. */
static void on_answer(void *arg, int status, struct infer_result *res, const char *msg)
{
    struct batch *bt = arg;
    struct batch_timing t = {0, now_ns() - bt->t_send, (unsigned)bt->rows, (unsigned)bt->n};
    char why[256];
    if (status == 200) {
        for (size_t o = 0; o < res->n_outputs; o++) {
            const struct tensor *out = &res->outputs[o];
            if (out->rank < 1 || (size_t)out->shape[0] != bt->rows) {
                snprintf(why, sizeof why, "model output '%s' has %lld rows for %zu input rows",
                         out->name, out->rank < 1 ? 0LL : (long long)out->shape[0], bt->rows);
                infer_result_fini(res);
                status = 500;
                msg = why;
                break;
            }
        }
    }
    if (status == 200 && bt->n == 1) {
        t.queue_ns = bt->t_send - bt->items[0]->t_submit;
        bt->items[0]->done(bt->items[0]->arg, 200, res, NULL, &t);
        free(bt->items[0]);
    } else if (status == 200) {
        if (split(bt, res, &t) < 0) {
            for (size_t k = 0; k < bt->n; k++) {
                t.queue_ns = bt->t_send - bt->items[k]->t_submit;
                fail_one(bt->items[k], 500, "out of memory splitting a batch", &t);
            }
        }
        infer_result_fini(res);
    } else {
        for (size_t k = 0; k < bt->n; k++) {
            t.queue_ns = bt->t_send - bt->items[k]->t_submit;
            fail_one(bt->items[k], status, msg ? msg : "the model failed", &t);
        }
    }
    struct batcher *b = bt->b;
    free(bt);
    batch_landed(b);
}

/* ------------------------------------------------------------ sending */

/* Concatenate the batch's inputs along the first dimension (by reference:
 * the pool writes every request's bytes in turn) and hand it to w. */
static void send_batch(struct batcher *b, struct pool_worker *w, struct batch *bt)
{
    const struct infer_req *r0 = bt->items[0]->req;
    size_t ni = r0->n_inputs;
    pthread_mutex_lock(&b->mu);
    b->in_flight++;
    pthread_mutex_unlock(&b->mu);
    struct pool_input *in = calloc(ni ? ni : 1, sizeof *in);
    struct pool_seg *segs = calloc(ni * bt->n + 1, sizeof *segs);
    if (!in || !segs) {
        free(in);
        free(segs);
        pool_release(w);
        for (size_t k = 0; k < bt->n; k++)
            fail_one(bt->items[k], 500, "out of memory sending a batch", NULL);
        free(bt);
        batch_landed(b);
        return;
    }
    for (size_t i = 0; i < ni; i++) {
        const struct tensor *t = &r0->inputs[i];
        in[i].name = t->name;
        in[i].dtype = t->dtype;
        in[i].rank = t->rank;
        memcpy(in[i].shape, t->shape, sizeof in[i].shape);
        in[i].shape[0] = (int64_t)bt->rows;
        in[i].segs = segs + i * bt->n;
        in[i].n_segs = bt->n;
        for (size_t k = 0; k < bt->n; k++)
            segs[i * bt->n + k] = (struct pool_seg){bt->items[k]->req->inputs[i].data,
                                                    bt->items[k]->req->inputs[i].nbytes};
    }
    bt->t_send = now_ns();
    /* bt may be answered and freed before pool_send returns. */
    pool_send(w, in, ni, on_answer, bt);
    free(in);
    free(segs);
}

/* Requests ride together only if every input agrees beyond the first
 * dimension. */
static int compatible(const struct infer_req *a, const struct infer_req *c)
{
    if (a->n_inputs != c->n_inputs)
        return 0;
    for (size_t i = 0; i < a->n_inputs; i++) {
        const struct tensor *x = &a->inputs[i], *y = &c->inputs[i];
        /* Names too: a model without declared inputs takes each
         * request's own, in the request's order. */
        if (x->dtype != y->dtype || x->rank != y->rank || strcmp(x->name, y->name) != 0)
            return 0;
        for (int d = 1; d < x->rank; d++)
            if (x->shape[d] != y->shape[d])
                return 0;
    }
    return 1;
}

/* Detach the next batch from the queue (lock held; queue non-empty). */
static struct batch *take_batch(struct batcher *b)
{
    size_t cap = b->cfg.max_batch > 1 ? b->cfg.max_batch : 1, n = 0, rows = 0;
    for (struct pending *it = b->head; it; it = it->next) {
        if (n && (rows + it->req->rows > cap || !compatible(b->head->req, it->req)))
            break;
        rows += it->req->rows;
        n++;
        if (rows >= cap)
            break;
    }
    struct batch *bt = malloc(sizeof *bt + n * sizeof bt->items[0]);
    if (!bt)
        return NULL;
    bt->b = b;
    bt->n = n;
    bt->rows = rows;
    for (size_t k = 0; k < n; k++) {
        struct pending *it = b->head;
        b->head = it->next;
        it->next = NULL;
        bt->items[k] = it;
        b->queued_rows -= it->req->rows;
    }
    if (!b->head)
        b->tail = NULL;
    return bt;
}

static void *dispatch_main(void *arg)
{
    struct batcher *b = arg;
    int wait_full = b->cfg.max_batch > 1 && b->cfg.max_delay_us > 0;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->stopping && !b->head)
            pthread_cond_wait(&b->cv, &b->mu);
        if (b->stopping)
            break;
        if (wait_full) {
            /* Up to max_delay after the first queued request, unless the
             * batch fills first, or every worker is idle: with nothing in
             * flight, no one else is known to be coming, and waiting would
             * only add the delay to a lone request. Under load the workers
             * are busy and batches fill while they are. */
            uint64_t due = b->head->t_submit + b->cfg.max_delay_us * 1000u;
            struct timespec ts = {(time_t)(due / 1000000000u), (long)(due % 1000000000u)};
            while (!b->stopping && b->in_flight > 0 && b->queued_rows < b->cfg.max_batch &&
                   now_ns() < due)
                pthread_cond_timedwait(&b->cv, &b->mu, &ts);
            if (b->stopping)
                break;
        }
        pthread_mutex_unlock(&b->mu);
        struct pool_worker *w = pool_acquire(b->pool);
        pthread_mutex_lock(&b->mu);
        if (!w) {
            if (b->stopping)
                break;
            /* Every worker is waiting out its restart backoff. */
            struct pending *list = b->head;
            b->head = b->tail = NULL;
            b->queued_rows = 0;
            pthread_mutex_unlock(&b->mu);
            fail_list(list, 503, "no model worker is running (restarting after a crash)");
            pthread_mutex_lock(&b->mu);
            continue;
        }
        struct batch *bt = b->head ? take_batch(b) : NULL;
        pthread_mutex_unlock(&b->mu);
        if (bt)
            send_batch(b, w, bt);
        else
            pool_release(w);
        pthread_mutex_lock(&b->mu);
    }
    struct pending *list = b->head;
    b->head = b->tail = NULL;
    b->queued_rows = 0;
    pthread_mutex_unlock(&b->mu);
    fail_list(list, 503, "the model server is stopping");
    return NULL;
}

/* ------------------------------------------------------------ public */

int batcher_start(const struct model_cfg *cfg, const char *dir, const char *python,
                  const char *worker_py, struct batcher **out)
{
    *out = NULL;
    struct batcher *b = calloc(1, sizeof *b);
    if (!b)
        return err_set(-ENOMEM, "batcher: out of memory");
    b->cfg = *cfg;
    if (!b->cfg.workers)
        b->cfg.workers = 1;
    char *cj = worker_config(cfg);
    if (!cj) {
        free(b);
        return err_set(-ENOMEM, "batcher: out of memory");
    }
    struct pool_opts o = {python, worker_py, dir, cj, b->cfg.workers};
    int rc = pool_start(&o, &b->pool);
    free(cj);
    if (rc < 0) {
        free(b);
        return rc;
    }
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cv, &ca);
    pthread_condattr_destroy(&ca);
    rc = pthread_create(&b->thread, NULL, dispatch_main, b);
    if (rc) {
        pool_stop(b->pool);
        pthread_mutex_destroy(&b->mu);
        pthread_cond_destroy(&b->cv);
        free(b);
        return err_set(-rc, "batcher: pthread_create: %s", strerror(rc));
    }
    *out = b;
    return 0;
}

int batcher_submit(struct batcher *b, const struct infer_req *req, batcher_done_fn done,
                   void *arg)
{
    if (!req->n_inputs)
        return err_set(FERRY_E_INVALID, "batcher: a request without inputs");
    for (size_t i = 0; i < req->n_inputs; i++)
        if (req->inputs[i].rank < 1 || (size_t)req->inputs[i].shape[0] != req->rows)
            return err_set(FERRY_E_INVALID, "batcher: input '%s' does not have %zu rows",
                           req->inputs[i].name, req->rows);
    struct pending *it = calloc(1, sizeof *it);
    if (!it)
        return err_set(-ENOMEM, "batcher: out of memory");
    it->req = req;
    it->done = done;
    it->arg = arg;
    it->t_submit = now_ns();
    pthread_mutex_lock(&b->mu);
    if (b->stopping) {
        pthread_mutex_unlock(&b->mu);
        free(it);
        return err_set(-ESHUTDOWN, "the model server is stopping");
    }
    /* Without a delay to wait out, a request that finds a worker idle and
     * nobody ahead of it goes straight there from this thread, saving the
     * dispatcher's wake-up. */
    if (!b->head && (b->cfg.max_batch <= 1 || !b->cfg.max_delay_us)) {
        struct pool_worker *w = pool_try_acquire(b->pool);
        if (w) {
            struct batch *bt = malloc(sizeof *bt + sizeof bt->items[0]);
            if (bt) {
                b->direct_sends++;
                pthread_mutex_unlock(&b->mu);
                bt->b = b;
                bt->n = 1;
                bt->rows = req->rows;
                bt->items[0] = it;
                send_batch(b, w, bt);
                pthread_mutex_lock(&b->mu);
                b->direct_sends--;
                pthread_cond_broadcast(&b->cv);
                pthread_mutex_unlock(&b->mu);
                return 0;
            }
            pool_release(w);
        }
    }
    if (b->tail)
        b->tail->next = it;
    else
        b->head = it;
    b->tail = it;
    b->queued_rows += req->rows;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return 0;
}

const char *batcher_signature(struct batcher *b)
{
    return pool_signature(b->pool);
}

unsigned batcher_ready_workers(struct batcher *b)
{
    return pool_ready(b->pool);
}

uint64_t batcher_worker_restarts(struct batcher *b)
{
    return pool_restarts(b->pool);
}

void batcher_stop(struct batcher *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    b->stopping = 1;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    /* Wake a dispatcher waiting for a worker, then let it fail the queue. */
    pool_cancel(b->pool);
    pthread_join(b->thread, NULL);
    pthread_mutex_lock(&b->mu);
    while (b->direct_sends)
        pthread_cond_wait(&b->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
    pool_stop(b->pool);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b);
}

/* ------------------------------------------------------------ drift bins */

int batcher_reference_bins(const struct model_cfg *cfg, const char *dir, const char *python,
                           const char *worker_py, double edges[][9], double expected[][10],
                           char names[][TENSOR_NAME_MAX], size_t *n_features)
{
    *n_features = 0;
    if (!cfg->reference[0])
        return err_set(FERRY_E_INVALID, "model.reference: not set");
    char *cj = worker_config(cfg);
    if (!cj)
        return err_set(-ENOMEM, "batcher: out of memory");
    char *out = NULL;
    int rc = pool_run_once(python, worker_py, "bins", dir, cj, BINS_OUTPUT_MAX, &out);
    free(cj);
    if (!out)
        return rc;
    char detail[512];
    snprintf(detail, sizeof detail, "%s", rc < 0 ? err_detail() : "");
    json_error_t je;
    json_t *root = json_loads(out, 0, &je);
    free(out);
    if (!root)
        return err_set(FERRY_E_INVALID, "%s: %s", cfg->reference,
                       rc < 0 ? detail : "the worker printed no JSON");
    const char *err = json_string_value(json_object_get(root, "error"));
    if (err || rc < 0) {
        rc = err_set(FERRY_E_INVALID, "%s", err ? err : detail);
        json_decref(root);
        return rc;
    }
    /* The room the caller has (batcher.h). */
    size_t room = cfg->n_inputs;
    if (cfg->n_inputs == 1 && cfg->inputs[0].rank == 2)
        room = cfg->inputs[0].shape[1] > 0 ? (size_t)cfg->inputs[0].shape[1] : MODEL_IO_MAX;
    json_t *feats = json_object_get(root, "features");
    if (!json_is_array(feats) || json_array_size(feats) > room) {
        json_decref(root);
        return err_set(FERRY_E_INVALID, "%s: more than %zu feature columns", cfg->reference,
                       room);
    }
    size_t n = json_array_size(feats);
    for (size_t i = 0; i < n; i++) {
        json_t *f = json_array_get(feats, i);
        const char *name = json_string_value(json_object_get(f, "name"));
        json_t *e = json_object_get(f, "edges"), *x = json_object_get(f, "expected");
        if (!name || strlen(name) >= TENSOR_NAME_MAX || json_array_size(e) != 9 ||
            json_array_size(x) != 10) {
            json_decref(root);
            return err_set(FERRY_E_INVALID, "%s: feature %zu: malformed bins", cfg->reference, i);
        }
        snprintf(names[i], TENSOR_NAME_MAX, "%s", name);
        for (size_t k = 0; k < 9; k++)
            edges[i][k] = json_number_value(json_array_get(e, k));
        for (size_t k = 0; k < 10; k++)
            expected[i][k] = json_number_value(json_array_get(x, k));
    }
    *n_features = n;
    json_decref(root);
    return 0;
}
