/* Batcher and worker pool against real Python workers: Debian's python3
 * (or $FERRY_PYTHON) with scikit-learn, worker.py from the build tree. The
 * group setup trains an iris classifier and writes its in-process
 * predictions next to model.joblib, so served answers are compared with
 * what scikit-learn itself says. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "batcher.h"
#include "error.h"
#include "fsutil.h"
#include "scratch.h"

#ifndef FERRY_MODEL_WORKER_PY
#error "FERRY_MODEL_WORKER_PY: the path of worker.py in the build tree"
#endif

#define ROWS 150
#define WAIT_MS 20000

static const char *dir_of(void **state)
{
    return *state;
}

static const char *python(void)
{
    const char *p = getenv("FERRY_PYTHON");
    return p && *p ? p : "/usr/bin/python3";
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void *read_bin(const char *dir, const char *name, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    void *buf = malloc(len);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, len, f), len);
    fclose(f);
    return buf;
}

static const char train_py[] =
    "import sys, joblib\n"
    "from sklearn.datasets import load_iris\n"
    "from sklearn.linear_model import LogisticRegression\n"
    "d = sys.argv[1]\n"
    "X, y = load_iris(return_X_y=True)\n"
    "m = LogisticRegression(max_iter=1000).fit(X, y)\n"
    "joblib.dump(m, d + '/model.joblib')\n"
    "X.astype('<f8').tofile(d + '/X.bin')\n"
    "m.predict(X).astype('<i8').tofile(d + '/pred.bin')\n"
    "m.predict_proba(X).astype('<f8').tofile(d + '/proba.bin')\n"
    /* A pipeline fitted on a DataFrame, selecting columns by name. */
    "import numpy as np, pandas as pd\n"
    "from sklearn.compose import make_column_transformer\n"
    "from sklearn.pipeline import make_pipeline\n"
    "from sklearn.preprocessing import OneHotEncoder, StandardScaler\n"
    "df = pd.DataFrame({'plan': ['a', 'b', 'a', 'c'] * 10, 'tenure': np.arange(40.0),\n"
    "                   'y': [0, 1] * 20})\n"
    "p = make_pipeline(make_column_transformer(\n"
    "    (OneHotEncoder(handle_unknown='ignore'), ['plan']), (StandardScaler(), ['tenure'])),\n"
    "    LogisticRegression()).fit(df[['plan', 'tenure']], df['y'])\n"
    "joblib.dump(p, d + '/pipe.joblib')\n"
    "q = pd.DataFrame({'plan': ['a', 'c', 'b'], 'tenure': [1.0, 30.0, 12.0]})\n"
    "p.predict_proba(q).astype('<f8').tofile(d + '/pipe.bin')\n";

/* x: FP64 rows, s: optional BYTES. Marker values make it fail on purpose. */
static const char serve_py[] =
    "import os, time\n"
    "class Model:\n"
    "    def load(self, d):\n"
    "        print('loading from', d)  # goes to stderr, not into the protocol\n"
    "        self.calls = 0\n"
    "    def predict(self, inputs):\n"
    "        x = inputs['x']\n"
    "        if (x == -999).any():\n"
    "            raise ValueError('marker input refused')\n"
    "        if (x == -9).any():\n"
    "            os.kill(os.getpid(), 9)\n"
    "        if (x == -3).any():\n"
    "            os._exit(3)\n"
    "        if (x == -5).any():\n"
    "            time.sleep(0.5)\n"
    "        if (x == -7).any():\n"
    "            return {'y': x[:1]}\n"
    "        if (x == -8).any():\n"
    "            return {'y' * 64: x}\n"
    "        out = {'y': x}\n"
    "        if 's' in inputs:\n"
    "            out['t'] = inputs['s']\n"
    "        return out\n";

/* Loads once; every later load fails (the marker file exists), so after
 * its first death the worker crash-loops. */
static const char once_py[] =
    "import os\n"
    "class Model:\n"
    "    def load(self, d):\n"
    "        marker = os.path.join(d, 'once.marker')\n"
    "        if os.path.exists(marker):\n"
    "            raise RuntimeError('loaded once already')\n"
    "        open(marker, 'w').close()\n"
    "    def predict(self, inputs):\n"
    "        os._exit(1)\n";

/* Declared outputs: y is declared INT64 but the model answers floats for
 * -1 (refused), ints otherwise (cast). */
static const char cast_py[] =
    "import numpy as np\n"
    "class Model:\n"
    "    def predict(self, inputs):\n"
    "        x = inputs['x']\n"
    "        if (x == -1).any():\n"
    "            return {'y': x * 1.5}\n"
    "        return {'y': x.astype(np.int32), 'extra': x}\n";

/* A stand-in for worker.py that speaks the framing badly, to show the
 * server checks every answer: ROGUE_MODE picks the lie. */
static const char rogue_py[] =
    "import os, struct, sys\n"
    "mode = os.environ.get('ROGUE_MODE', '')\n"
    "def readn(n):\n"
    "    b = b''\n"
    "    while len(b) < n:\n"
    "        c = os.read(0, n - len(b))\n"
    "        if not c:\n"
    "            sys.exit(0)\n"
    "        b += c\n"
    "    return b\n"
    "def frame(kind, body):\n"
    "    os.write(1, struct.pack('<IB3x', len(body), ord(kind)) + body)\n"
    "def tensor(dt, shape, nbytes, data):\n"
    "    return struct.pack('<BBH4xQ', dt, len(shape), 1, nbytes) + \\\n"
    "        struct.pack('<%dq' % len(shape), *shape) + b'y' + b'\\0' * 7 + data\n"
    "frame('R', b'')\n"
    "while True:\n"
    "    n, k = struct.unpack('<IB3x', readn(8))\n"
    "    readn(n)\n"
    "    count = struct.pack('<I4x', 1)\n"
    "    if mode == 'dtype':\n"
    "        frame('O', count + tensor(99, [1], 8, b'\\0' * 8))\n"
    "    elif mode == 'short':\n"
    "        frame('O', count + tensor(11, [100], 800, b'\\0' * 8))\n"
    "    elif mode == 'bytes':\n"
    "        frame('O', count + tensor(12, [1], 8, struct.pack('<I', 1000) + b'abcd'))\n"
    "    elif mode == 'kind':\n"
    "        frame('X', b'')\n"
    "    else:\n"
    "        os.write(1, struct.pack('<IB3x', 0xffffffff, ord('O')))\n";

/* For each x, whether the worker has descriptor x open. */
static const char fds_py[] =
    "import os\n"
    "import numpy as np\n"
    "class Model:\n"
    "    def predict(self, inputs):\n"
    "        return {'open': np.array([os.path.exists('/proc/self/fd/%d' % int(v))\n"
    "                                  for v in inputs['x']])}\n";

static const char badload_py[] =
    "class Model:\n"
    "    def load(self, d):\n"
    "        raise RuntimeError('weights are missing')\n"
    "    def predict(self, inputs):\n"
    "        return inputs\n";

static int group_setup(void **state)
{
    if (scratch_setup(state, "batcher") < 0)
        return -1;
    const char *dir = *state;
    write_file(dir, "train.py", train_py);
    write_file(dir, "serve.py", serve_py);
    write_file(dir, "badload.py", badload_py);
    write_file(dir, "once.py", once_py);
    write_file(dir, "cast.py", cast_py);
    write_file(dir, "rogue.py", rogue_py);
    write_file(dir, "fds.py", fds_py);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' '%s/train.py' '%s'", python(), dir, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "training the iris model failed: %s\n", cmd);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ helpers */

static struct model_io io1(const char *name, enum dtype dt, int rank, int64_t d1)
{
    struct model_io io;
    memset(&io, 0, sizeof io);
    snprintf(io.name, sizeof io.name, "%s", name);
    io.dtype = dt;
    io.rank = rank;
    io.shape[0] = -1;
    io.shape[1] = d1;
    return io;
}

static void iris_cfg(struct model_cfg *c, const char *method)
{
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "iris");
    snprintf(c->version, sizeof c->version, "1.0.0");
    c->format = MODEL_SKLEARN;
    snprintf(c->file, sizeof c->file, "model.joblib");
    snprintf(c->method, sizeof c->method, "%s", method);
    const char *names[] = {"sepal_length", "sepal_width", "petal_length", "petal_width"};
    for (int i = 0; i < 4; i++)
        c->inputs[i] = io1(names[i], DT_FP64, 1, 0);
    c->n_inputs = 4;
    c->workers = 2;
    c->max_batch = 1;
}

static void python_cfg(struct model_cfg *c, const char *entry, int with_bytes)
{
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "echo");
    snprintf(c->version, sizeof c->version, "1");
    c->format = MODEL_PYTHON;
    snprintf(c->entry, sizeof c->entry, "%s", entry);
    c->inputs[0] = io1("x", DT_FP64, 1, 0);
    c->n_inputs = 1;
    if (with_bytes)
        c->inputs[c->n_inputs++] = io1("s", DT_BYTES, 1, 0);
    c->workers = 1;
    c->max_batch = 1;
}

static void start_ok(const struct model_cfg *c, const char *dir, struct batcher **b)
{
    int rc = batcher_start(c, dir, python(), FERRY_MODEL_WORKER_PY, b);
    if (rc < 0)
        fail_msg("batcher_start: %s", err_message(rc));
}

static void tensor_fp64(struct tensor *t, const char *name, const double *v, size_t n)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = DT_FP64;
    t->rank = 1;
    t->shape[0] = (int64_t)n;
    t->n = n;
    t->nbytes = n * 8;
    t->data = malloc(t->nbytes ? t->nbytes : 1);
    assert_non_null(t->data);
    memcpy(t->data, v, t->nbytes);
}

static void tensor_strings(struct tensor *t, const char *name, const char **v, size_t n)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = DT_BYTES;
    t->rank = 1;
    t->shape[0] = (int64_t)n;
    t->n = n;
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += 4 + strlen(v[i]);
    t->data = malloc(len + 1);
    assert_non_null(t->data);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t l = (uint32_t)strlen(v[i]);
        memcpy(t->data + off, &l, 4);
        memcpy(t->data + off + 4, v[i], l);
        off += 4 + l;
    }
    t->nbytes = len;
}

/* The iris rows [from, from+n) as a request: one 1-D tensor per feature. */
static void iris_req(struct infer_req *r, const double *X, size_t from, size_t n)
{
    memset(r, 0, sizeof *r);
    const char *names[] = {"sepal_length", "sepal_width", "petal_length", "petal_width"};
    double col[ROWS];
    for (int f = 0; f < 4; f++) {
        for (size_t i = 0; i < n; i++)
            col[i] = X[(from + i) * 4 + (size_t)f];
        tensor_fp64(&r->inputs[f], names[f], col, n);
    }
    r->n_inputs = 4;
    r->rows = n;
}

/* One request's answer, waited for with a deadline. */
struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, calls, status;
    struct infer_result res;
    char msg[512];
    struct batch_timing t;
};

static void waiter_init(struct waiter *w)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
}

static void waiter_fini(struct waiter *w)
{
    infer_result_fini(&w->res);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}

static void on_done(void *arg, int status, struct infer_result *res, const char *msg,
                    const struct batch_timing *t)
{
    struct waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->calls++;
    w->done = 1;
    w->status = status;
    if (res)
        w->res = *res;
    snprintf(w->msg, sizeof w->msg, "%s", msg ? msg : "");
    w->t = *t;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static int waiter_wait(struct waiter *w, unsigned ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->mu);
    int rc = 0;
    while (!w->done && rc == 0)
        rc = pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    int done = w->done;
    pthread_mutex_unlock(&w->mu);
    return done ? 0 : -ETIMEDOUT;
}

/* Submit and wait; returns the status. */
static int run(struct batcher *b, const struct infer_req *r, struct waiter *w)
{
    waiter_init(w);
    int rc = batcher_submit(b, r, on_done, w);
    if (rc < 0)
        fail_msg("batcher_submit: %s", err_message(rc));
    if (waiter_wait(w, WAIT_MS) < 0)
        fail_msg("no answer within %d ms", WAIT_MS);
    return w->status;
}

static int run_x(struct batcher *b, const double *x, size_t n, struct waiter *w,
                 struct infer_req *r)
{
    memset(r, 0, sizeof *r);
    tensor_fp64(&r->inputs[0], "x", x, n);
    r->n_inputs = 1;
    r->rows = n;
    return run(b, r, w);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int wait_ready(struct batcher *b, unsigned want, unsigned ms)
{
    uint64_t until = mono_ms() + ms;
    while (batcher_ready_workers(b) < want) {
        if (mono_ms() > until)
            return -1;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static int wait_restarts(struct batcher *b, uint64_t want, unsigned ms)
{
    uint64_t until = mono_ms() + ms;
    while (batcher_worker_restarts(b) < want) {
        if (mono_ms() > until)
            return -1;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static const struct tensor *output(const struct infer_result *res, const char *name)
{
    for (size_t i = 0; i < res->n_outputs; i++)
        if (strcmp(res->outputs[i].name, name) == 0)
            return &res->outputs[i];
    fail_msg("no output '%s'", name);
    return NULL;
}

/* ------------------------------------------------------------ sklearn */

static void test_sklearn_predict_matches_in_process(void **state)
{
    const char *dir = dir_of(state);
    double *X = read_bin(dir, "X.bin", ROWS * 4 * 8);
    int64_t *pred = read_bin(dir, "pred.bin", ROWS * 8);
    struct model_cfg c;
    iris_cfg(&c, "predict");
    c.outputs[0] = io1("species", DT_INT64, 1, 0);
    c.n_outputs = 1;
    struct batcher *b;
    start_ok(&c, dir, &b);
    /* Ready with the first worker; the second loads after it. */
    assert_true(batcher_ready_workers(b) >= 1);
    assert_int_equal(wait_ready(b, 2, 30000), 0);

    /* One row at a time... */
    for (size_t i = 0; i < ROWS; i++) {
        struct infer_req r;
        struct waiter w;
        iris_req(&r, X, i, 1);
        assert_int_equal(run(b, &r, &w), 200);
        const struct tensor *t = output(&w.res, "species");
        assert_int_equal(t->dtype, DT_INT64);
        assert_int_equal(t->rank, 1);
        assert_int_equal(t->shape[0], 1);
        int64_t got;
        memcpy(&got, t->data, 8);
        assert_int_equal(got, pred[i]);
        assert_int_equal(w.t.batch_rows, 1);
        assert_int_equal(w.t.batch_requests, 1);
        assert_int_equal(w.calls, 1);
        waiter_fini(&w);
        infer_req_fini(&r);
    }
    /* ... and all of them in one request. */
    struct infer_req r;
    struct waiter w;
    iris_req(&r, X, 0, ROWS);
    assert_int_equal(run(b, &r, &w), 200);
    const struct tensor *t = output(&w.res, "species");
    assert_int_equal(t->shape[0], ROWS);
    assert_memory_equal(t->data, pred, ROWS * 8);
    waiter_fini(&w);
    infer_req_fini(&r);
    assert_int_equal(batcher_worker_restarts(b), 0);
    batcher_stop(b);
    free(X);
    free(pred);
}

static void test_sklearn_predict_proba_is_2d(void **state)
{
    const char *dir = dir_of(state);
    double *X = read_bin(dir, "X.bin", ROWS * 4 * 8);
    double *proba = read_bin(dir, "proba.bin", ROWS * 3 * 8);
    struct model_cfg c;
    iris_cfg(&c, "predict_proba");
    c.workers = 1;
    struct batcher *b;
    start_ok(&c, dir, &b);
    struct infer_req r;
    struct waiter w;
    iris_req(&r, X, 10, 40);
    assert_int_equal(run(b, &r, &w), 200);
    /* Undeclared outputs are named after the method. */
    const struct tensor *t = output(&w.res, "predict_proba");
    assert_int_equal(t->dtype, DT_FP64);
    assert_int_equal(t->rank, 2);
    assert_int_equal(t->shape[0], 40);
    assert_int_equal(t->shape[1], 3);
    const double *got = (const double *)t->data;
    for (size_t i = 0; i < 40 * 3; i++)
        assert_true(fabs(got[i] - proba[10 * 3 + i]) < 1e-9);
    waiter_fini(&w);
    infer_req_fini(&r);
    batcher_stop(b);
    free(X);
    free(proba);
}

/* A single 2-D input is the other sklearn form. */
static void test_sklearn_single_2d_input(void **state)
{
    const char *dir = dir_of(state);
    double *X = read_bin(dir, "X.bin", ROWS * 4 * 8);
    int64_t *pred = read_bin(dir, "pred.bin", ROWS * 8);
    struct model_cfg c;
    iris_cfg(&c, "predict");
    c.inputs[0] = io1("features", DT_FP64, 2, 4);
    c.n_inputs = 1;
    c.workers = 1;
    struct batcher *b;
    start_ok(&c, dir, &b);
    struct infer_req r;
    memset(&r, 0, sizeof r);
    tensor_fp64(&r.inputs[0], "features", X, ROWS * 4);
    r.inputs[0].rank = 2;
    r.inputs[0].shape[0] = ROWS;
    r.inputs[0].shape[1] = 4;
    r.n_inputs = 1;
    r.rows = ROWS;
    struct waiter w;
    assert_int_equal(run(b, &r, &w), 200);
    const struct tensor *t = output(&w.res, "predict");
    assert_int_equal(t->dtype, DT_INT64);
    assert_memory_equal(t->data, pred, ROWS * 8);
    waiter_fini(&w);
    infer_req_fini(&r);
    batcher_stop(b);
    free(X);
    free(pred);
}

/* An estimator fitted on a DataFrame gets one, its columns taken from the
 * inputs by name (declared here in another order), strings as str. */
static void test_sklearn_dataframe_pipeline(void **state)
{
    const char *dir = dir_of(state);
    double *want = read_bin(dir, "pipe.bin", 3 * 2 * 8);
    struct model_cfg c;
    iris_cfg(&c, "predict_proba");
    snprintf(c.file, sizeof c.file, "pipe.joblib");
    c.inputs[0] = io1("tenure", DT_FP64, 1, 0);
    c.inputs[1] = io1("plan", DT_BYTES, 1, 0);
    c.n_inputs = 2;
    c.workers = 1;
    struct batcher *b;
    start_ok(&c, dir, &b);
    struct infer_req r;
    memset(&r, 0, sizeof r);
    double tenure[] = {1, 30, 12};
    const char *plan[] = {"a", "c", "b"};
    tensor_fp64(&r.inputs[0], "tenure", tenure, 3);
    tensor_strings(&r.inputs[1], "plan", plan, 3);
    r.n_inputs = 2;
    r.rows = 3;
    struct waiter w;
    assert_int_equal(run(b, &r, &w), 200);
    const struct tensor *t = output(&w.res, "predict_proba");
    assert_int_equal(t->rank, 2);
    assert_int_equal(t->shape[1], 2);
    for (int i = 0; i < 6; i++)
        assert_true(fabs(((const double *)t->data)[i] - want[i]) < 1e-9);
    waiter_fini(&w);
    infer_req_fini(&r);
    batcher_stop(b);
    free(want);
}

static void test_missing_model_file_fails_start(void **state)
{
    struct model_cfg c;
    iris_cfg(&c, "predict");
    snprintf(c.file, sizeof c.file, "nope.joblib");
    c.workers = 1;
    struct batcher *b = NULL;
    int rc = batcher_start(&c, dir_of(state), python(), FERRY_MODEL_WORKER_PY, &b);
    assert_true(rc < 0);
    assert_null(b);
    const char *msg = err_message(rc);
    assert_non_null(strstr(msg, "nope.joblib"));
    assert_null(strchr(msg, '\n'));
}

static void test_wrong_method_and_bad_load_fail_start(void **state)
{
    struct model_cfg c;
    iris_cfg(&c, "transform_me");
    c.workers = 1;
    struct batcher *b = NULL;
    int rc = batcher_start(&c, dir_of(state), python(), FERRY_MODEL_WORKER_PY, &b);
    assert_true(rc < 0);
    assert_non_null(strstr(err_message(rc), "no method 'transform_me'"));

    python_cfg(&c, "badload.py:Model", 0);
    rc = batcher_start(&c, dir_of(state), python(), FERRY_MODEL_WORKER_PY, &b);
    assert_true(rc < 0);
    assert_non_null(strstr(err_message(rc), "RuntimeError: weights are missing"));

    python_cfg(&c, "serve.py:Nope", 0);
    rc = batcher_start(&c, dir_of(state), python(), FERRY_MODEL_WORKER_PY, &b);
    assert_true(rc < 0);
    assert_non_null(strstr(err_message(rc), "serve.py has no class 'Nope'"));

    /* An interpreter without numpy (Debian's, without site-packages). */
    char nonumpy[4096], script[4200];
    snprintf(nonumpy, sizeof nonumpy, "%s/nonumpy.sh", dir_of(state));
    snprintf(script, sizeof script, "#!/bin/sh\nexec '%s' -S \"$@\"\n", python());
    write_file(dir_of(state), "nonumpy.sh", script);
    assert_int_equal(chmod(nonumpy, 0755), 0);
    python_cfg(&c, "serve.py:Model", 0);
    rc = batcher_start(&c, dir_of(state), nonumpy, FERRY_MODEL_WORKER_PY, &b);
    assert_true(rc < 0);
    assert_non_null(strstr(err_message(rc), "cannot import numpy"));

    rc = batcher_start(&c, dir_of(state), "/nonexistent/python3", FERRY_MODEL_WORKER_PY, &b);
    assert_true(rc < 0);
    assert_non_null(strstr(err_message(rc), "/nonexistent/python3"));
}

/* ------------------------------------------------------------ python */

static void test_python_model_raises_then_keeps_serving(void **state)
{
    struct model_cfg c;
    python_cfg(&c, "serve.py:Model", 0);
    struct batcher *b;
    start_ok(&c, dir_of(state), &b);
    struct infer_req r;
    struct waiter w;
    double bad[] = {1, -999};
    assert_int_equal(run_x(b, bad, 2, &w, &r), 500);
    assert_string_equal(w.msg, "ValueError: marker input refused");
    waiter_fini(&w);
    infer_req_fini(&r);

    double good[] = {1.5, 2.5, 3.5};
    assert_int_equal(run_x(b, good, 3, &w, &r), 200);
    const struct tensor *t = output(&w.res, "y");
    assert_int_equal(t->dtype, DT_FP64);
    assert_int_equal(t->shape[0], 3);
    assert_memory_equal(t->data, good, sizeof good);
    waiter_fini(&w);
    infer_req_fini(&r);

    /* Wrong output rows: an error for that request, not a crash. */
    double short_[] = {-7, 1, 2};
    assert_int_equal(run_x(b, short_, 3, &w, &r), 500);
    assert_non_null(strstr(w.msg, "output 'y' has 1 rows for 3 input rows"));
    waiter_fini(&w);
    infer_req_fini(&r);

    /* An output the protocol cannot carry: an error, not a dead worker. */
    double longname[] = {-8};
    assert_int_equal(run_x(b, longname, 1, &w, &r), 500);
    assert_non_null(strstr(w.msg, "is empty or longer than 63 bytes"));
    waiter_fini(&w);
    infer_req_fini(&r);

    assert_int_equal(batcher_worker_restarts(b), 0);
    assert_int_equal(batcher_ready_workers(b), 1);
    batcher_stop(b);
}

static void test_python_worker_dies_is_restarted(void **state)
{
    struct model_cfg c;
    python_cfg(&c, "serve.py:Model", 0);
    struct batcher *b;
    start_ok(&c, dir_of(state), &b);
    struct infer_req r;
    struct waiter w;

    double kill9[] = {-9};
    assert_int_equal(run_x(b, kill9, 1, &w, &r), 500);
    assert_string_equal(w.msg, "worker exited (signal 9)");
    waiter_fini(&w);
    infer_req_fini(&r);
    assert_int_equal(wait_ready(b, 1, WAIT_MS), 0);
    assert_int_equal(batcher_worker_restarts(b), 1);

    double good[] = {4, 5};
    assert_int_equal(run_x(b, good, 2, &w, &r), 200);
    assert_memory_equal(output(&w.res, "y")->data, good, sizeof good);
    waiter_fini(&w);
    infer_req_fini(&r);

    double exit3[] = {-3};
    assert_int_equal(run_x(b, exit3, 1, &w, &r), 500);
    assert_string_equal(w.msg, "worker exited (status 3)");
    waiter_fini(&w);
    infer_req_fini(&r);
    assert_int_equal(wait_ready(b, 1, WAIT_MS), 0);
    assert_int_equal(batcher_worker_restarts(b), 2);

    assert_int_equal(run_x(b, good, 2, &w, &r), 200);
    waiter_fini(&w);
    infer_req_fini(&r);
    batcher_stop(b);
}

/* A model that keeps dying is restarted with a growing delay, not in a
 * tight loop; stopping it while it waits is prompt. */
static void test_crash_loop_backs_off(void **state)
{
    struct model_cfg c;
    python_cfg(&c, "once.py:Model", 0);
    struct batcher *b;
    start_ok(&c, dir_of(state), &b);
    struct infer_req r;
    struct waiter w;
    double x[] = {1};
    uint64_t t0 = mono_ms();
    assert_int_equal(run_x(b, x, 1, &w, &r), 500);
    assert_string_equal(w.msg, "worker exited (status 1)");
    waiter_fini(&w);
    infer_req_fini(&r);
    /* Restarts 1.. come after 0, 0.1, 0.2, 0.4 and 0.8 s of backoff. */
    assert_int_equal(wait_restarts(b, 5, WAIT_MS), 0);
    assert_true(mono_ms() - t0 >= 1500);
    assert_int_equal(batcher_ready_workers(b), 0);
    /* No worker will come: a request is answered 503, not held forever. */
    assert_int_equal(run_x(b, x, 1, &w, &r), 503);
    assert_non_null(strstr(w.msg, "no model worker is running"));
    waiter_fini(&w);
    infer_req_fini(&r);
    uint64_t t1 = mono_ms();
    batcher_stop(b);
    assert_true(mono_ms() - t1 < 3000);
}

/* Declared outputs are taken by name and cast to the declared datatype;
 * a cast that would lose the kind is an error for that request. */
static void test_declared_outputs_cast(void **state)
{
    struct model_cfg c;
    python_cfg(&c, "cast.py:Model", 0);
    c.outputs[0] = io1("y", DT_INT64, 1, 0);
    c.n_outputs = 1;
    struct batcher *b;
    start_ok(&c, dir_of(state), &b);
    struct infer_req r;
    struct waiter w;
    double x[] = {2, 3};
    assert_int_equal(run_x(b, x, 2, &w, &r), 200);
    assert_int_equal(w.res.n_outputs, 1);
    const struct tensor *t = output(&w.res, "y");
    assert_int_equal(t->dtype, DT_INT64);
    int64_t want[] = {2, 3};
    assert_memory_equal(t->data, want, sizeof want);
    waiter_fini(&w);
    infer_req_fini(&r);
    double bad[] = {-1};
    assert_int_equal(run_x(b, bad, 1, &w, &r), 500);
    assert_string_equal(w.msg, "output 'y' is float64, declared INT64");
    waiter_fini(&w);
    infer_req_fini(&r);
    batcher_stop(b);
}

/* Answers that break the framing fail the request with 500 and the worker
 * is replaced; the server never trusts a length or a datatype it is sent. */
static void test_malformed_answers_are_refused(void **state)
{
    char rogue[4096];
    snprintf(rogue, sizeof rogue, "%s/rogue.py", dir_of(state));
    const char *modes[] = {"dtype", "short", "bytes", "kind", "huge"};
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        setenv("ROGUE_MODE", modes[m], 1);
        struct model_cfg c;
        python_cfg(&c, "serve.py:Model", 0);
        struct batcher *b;
        int rc = batcher_start(&c, dir_of(state), python(), rogue, &b);
        if (rc < 0)
            fail_msg("batcher_start: %s", err_message(rc));
        struct infer_req r;
        struct waiter w;
        double x[] = {1};
        assert_int_equal(run_x(b, x, 1, &w, &r), 500);
        assert_string_equal(w.msg, "worker sent a malformed answer");
        waiter_fini(&w);
        infer_req_fini(&r);
        assert_int_equal(wait_restarts(b, 1, WAIT_MS), 0);
        batcher_stop(b);
    }
    unsetenv("ROGUE_MODE");
}

/* The worker gets stdin, stdout and stderr of the server's descriptors and
 * nothing else, even one opened without O_CLOEXEC. */
static void test_worker_inherits_no_descriptors(void **state)
{
    /* High enough not to be one the worker opens itself. */
    int fd = open("/dev/null", O_RDONLY);
    assert_true(fd > 2);
    int leak = dup2(fd, 200);
    assert_int_equal(leak, 200);
    close(fd);
    struct model_cfg c;
    python_cfg(&c, "fds.py:Model", 0);
    struct batcher *b;
    start_ok(&c, dir_of(state), &b);
    struct infer_req r;
    struct waiter w;
    double x[] = {2, (double)leak};
    assert_int_equal(run_x(b, x, 2, &w, &r), 200);
    const struct tensor *t = output(&w.res, "open");
    assert_int_equal(t->dtype, DT_BOOL);
    assert_int_equal(t->data[0], 1);
    assert_int_equal(t->data[1], 0);
    waiter_fini(&w);
    infer_req_fini(&r);
    batcher_stop(b);
    close(leak);
}

/* ------------------------------------------------------------ batching */

#define THREADS 8
#define PER_THREAD 25

struct client {
    struct batcher *b;
    int id;
    int ok;
    unsigned max_requests;
};

static void *client_main(void *arg)
{
    struct client *cl = arg;
    cl->ok = 1;
    for (int i = 0; i < PER_THREAD; i++) {
        size_t n = 1 + (size_t)(i % 3);
        double x[3];
        for (size_t k = 0; k < n; k++)
            x[k] = cl->id * 1000 + i * 10 + (double)k;
        struct infer_req r;
        memset(&r, 0, sizeof r);
        tensor_fp64(&r.inputs[0], "x", x, n);
        r.n_inputs = 1;
        r.rows = n;
        struct waiter w;
        waiter_init(&w);
        if (batcher_submit(cl->b, &r, on_done, &w) < 0 || waiter_wait(&w, WAIT_MS) < 0 ||
            w.status != 200 || w.calls != 1) {
            cl->ok = 0;
        } else {
            const struct tensor *t = NULL;
            for (size_t o = 0; o < w.res.n_outputs; o++)
                if (!strcmp(w.res.outputs[o].name, "y"))
                    t = &w.res.outputs[o];
            /* Each request gets exactly its own rows back. */
            if (!t || t->shape[0] != (int64_t)n || memcmp(t->data, x, n * 8) != 0)
                cl->ok = 0;
            if (w.t.batch_requests > cl->max_requests)
                cl->max_requests = w.t.batch_requests;
            if (w.t.batch_rows > 32)
                cl->ok = 0;
        }
        waiter_fini(&w);
        infer_req_fini(&r);
    }
    return NULL;
}

static void test_concurrent_requests_are_batched(void **state)
{
    struct model_cfg c;
    python_cfg(&c, "serve.py:Model", 0);
    c.max_batch = 32;
    c.max_delay_us = 20000;
    struct batcher *b;
    start_ok(&c, dir_of(state), &b);
    pthread_t th[THREADS];
    struct client cl[THREADS];
    for (int i = 0; i < THREADS; i++) {
        cl[i] = (struct client){b, i + 1, 0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, client_main, &cl[i]), 0);
    }
    unsigned most = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_true(cl[i].ok);
        if (cl[i].max_requests > most)
            most = cl[i].max_requests;
    }
    assert_true(most > 1);
    batcher_stop(b);
}

/* BYTES inputs are concatenated and split back by rows too. */
static void test_bytes_batched_and_split(void **state)
{
    struct model_cfg c;
    python_cfg(&c, "serve.py:Model", 1);
    c.max_batch = 32;
    c.max_delay_us = 200000;
    struct batcher *b;
    start_ok(&c, dir_of(state), &b);
    struct infer_req r1, r2;
    memset(&r1, 0, sizeof r1);
    memset(&r2, 0, sizeof r2);
    double x1[] = {1, 2}, x2[] = {3};
    const char *s1[] = {"héllo", ""}, *s2[] = {"world, again"};
    tensor_fp64(&r1.inputs[0], "x", x1, 2);
    tensor_strings(&r1.inputs[1], "s", s1, 2);
    r1.n_inputs = 2;
    r1.rows = 2;
    tensor_fp64(&r2.inputs[0], "x", x2, 1);
    tensor_strings(&r2.inputs[1], "s", s2, 1);
    r2.n_inputs = 2;
    r2.rows = 1;
    struct waiter w1, w2;
    waiter_init(&w1);
    waiter_init(&w2);
    assert_int_equal(batcher_submit(b, &r1, on_done, &w1), 0);
    assert_int_equal(batcher_submit(b, &r2, on_done, &w2), 0);
    assert_int_equal(waiter_wait(&w1, WAIT_MS), 0);
    assert_int_equal(waiter_wait(&w2, WAIT_MS), 0);
    assert_int_equal(w1.status, 200);
    assert_int_equal(w2.status, 200);
    const struct tensor *t1 = output(&w1.res, "t"), *t2 = output(&w2.res, "t");
    assert_int_equal(t1->dtype, DT_BYTES);
    assert_int_equal(t1->n, 2);
    assert_int_equal(t1->nbytes, r1.inputs[1].nbytes);
    assert_memory_equal(t1->data, r1.inputs[1].data, t1->nbytes);
    assert_int_equal(t2->n, 1);
    assert_int_equal(t2->nbytes, r2.inputs[1].nbytes);
    assert_memory_equal(t2->data, r2.inputs[1].data, t2->nbytes);
    assert_memory_equal(output(&w2.res, "y")->data, x2, 8);
    waiter_fini(&w1);
    waiter_fini(&w2);
    infer_req_fini(&r1);
    infer_req_fini(&r2);
    batcher_stop(b);
}

/* A request larger than max_batch goes alone, whole. */
static void test_oversized_request_goes_alone(void **state)
{
    struct model_cfg c;
    python_cfg(&c, "serve.py:Model", 0);
    c.max_batch = 4;
    c.max_delay_us = 1000;
    struct batcher *b;
    start_ok(&c, dir_of(state), &b);
    double x[10];
    for (int i = 0; i < 10; i++)
        x[i] = i;
    struct infer_req r;
    struct waiter w;
    assert_int_equal(run_x(b, x, 10, &w, &r), 200);
    assert_int_equal(w.t.batch_rows, 10);
    assert_int_equal(w.t.batch_requests, 1);
    assert_memory_equal(output(&w.res, "y")->data, x, sizeof x);
    waiter_fini(&w);
    infer_req_fini(&r);
    batcher_stop(b);
}

/* Stopping answers every request exactly once: in flight (the worker's
 * answer or 503) and queued (503); later submits are refused. */
static void test_stop_answers_everything_once(void **state)
{
    struct model_cfg c;
    python_cfg(&c, "serve.py:Model", 0);
    struct batcher *b;
    start_ok(&c, dir_of(state), &b);
    struct infer_req r[3];
    struct waiter w[3];
    double slow[] = {-5}, x[] = {1};
    for (int i = 0; i < 3; i++) {
        memset(&r[i], 0, sizeof r[i]);
        tensor_fp64(&r[i].inputs[0], "x", i == 0 ? slow : x, 1);
        r[i].n_inputs = 1;
        r[i].rows = 1;
        waiter_init(&w[i]);
        assert_int_equal(batcher_submit(b, &r[i], on_done, &w[i]), 0);
    }
    batcher_stop(b);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(w[i].calls, 1);
        assert_true(w[i].status == 200 || w[i].status == 503);
        waiter_fini(&w[i]);
        infer_req_fini(&r[i]);
    }
}

/* ------------------------------------------------------------ reference bins */

static void test_reference_bins(void **state)
{
    const char *dir = dir_of(state);
    /* a: 1..100 (deciles 10.9, 20.8, ... 90.1, ten rows a bin); b: a
     * constant (every cut point 5; bin i holds edges[i-1] < x <= edges[i],
     * so every row is in the first bin). */
    char csv[8192];
    size_t off = (size_t)snprintf(csv, sizeof csv, "label,a,b\n");
    for (int i = 1; i <= 100; i++)
        off += (size_t)snprintf(csv + off, sizeof csv - off, "x%d,%d,5\n", i, 101 - i);
    write_file(dir, "reference.csv", csv);
    struct model_cfg c;
    python_cfg(&c, "serve.py:Model", 0);
    c.inputs[0] = io1("a", DT_FP64, 1, 0);
    c.inputs[1] = io1("b", DT_FP32, 1, 0);
    c.inputs[2] = io1("label", DT_BYTES, 1, 0);
    c.n_inputs = 3;
    snprintf(c.reference, sizeof c.reference, "reference.csv");
    double edges[MODEL_IO_MAX][9], expected[MODEL_IO_MAX][10];
    char names[MODEL_IO_MAX][TENSOR_NAME_MAX];
    size_t n = 99;
    int rc = batcher_reference_bins(&c, dir, python(), FERRY_MODEL_WORKER_PY, edges, expected,
                                    names, &n);
    if (rc < 0)
        fail_msg("batcher_reference_bins: %s", err_message(rc));
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "a");
    assert_string_equal(names[1], "b");
    for (int k = 0; k < 9; k++) {
        assert_true(fabs(edges[0][k] - (1 + 99.0 * (k + 1) / 10)) < 1e-9);
        assert_true(fabs(edges[1][k] - 5) < 1e-12);
    }
    for (int k = 0; k < 10; k++) {
        assert_true(fabs(expected[0][k] - 0.1) < 1e-12);
        assert_true(fabs(expected[1][k] - (k == 0 ? 1.0 : 0.0)) < 1e-12);
    }

    /* A single 2-D input: its columns, named by the header. */
    write_file(dir, "reference.csv", "p,q\n1,10\n2,20\n3,30\n4,40\n5,50\n6,60\n7,70\n8,80\n9,90\n10,100\n11,110\n");
    struct model_cfg c2;
    python_cfg(&c2, "serve.py:Model", 0);
    c2.inputs[0] = io1("features", DT_FP64, 2, 2);
    snprintf(c2.reference, sizeof c2.reference, "reference.csv");
    rc = batcher_reference_bins(&c2, dir, python(), FERRY_MODEL_WORKER_PY, edges, expected, names,
                                &n);
    if (rc < 0)
        fail_msg("batcher_reference_bins: %s", err_message(rc));
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "p");
    assert_string_equal(names[1], "q");
    assert_true(fabs(edges[0][0] - 2) < 1e-9);
    assert_true(fabs(edges[1][8] - 100) < 1e-9);
    /* 11 rows: one at or below each cut point 2..10, one above the last. */
    assert_true(fabs(expected[0][0] - 2.0 / 11) < 1e-12);
    assert_true(fabs(expected[1][9] - 1.0 / 11) < 1e-12);
    c2.inputs[0] = io1("features", DT_FP64, 2, 3);
    rc = batcher_reference_bins(&c2, dir, python(), FERRY_MODEL_WORKER_PY, edges, expected, names,
                                &n);
    assert_true(rc < 0);
    assert_string_equal(err_message(rc), "reference.csv: 2 columns, input 'features' has 3");

    /* A missing column and a cell that is not a number: errors naming the
     * file and the reason. */
    write_file(dir, "reference.csv", "label,a\nx,1\n");
    rc = batcher_reference_bins(&c, dir, python(), FERRY_MODEL_WORKER_PY, edges, expected, names,
                                &n);
    assert_true(rc < 0);
    assert_string_equal(err_message(rc), "reference.csv: no column 'b'");
    write_file(dir, "reference.csv", "a,b\n1,2\n3,oops\n");
    rc = batcher_reference_bins(&c, dir, python(), FERRY_MODEL_WORKER_PY, edges, expected, names,
                                &n);
    assert_true(rc < 0);
    assert_string_equal(err_message(rc), "reference.csv:3: column 'b': 'oops' is not a number");
    snprintf(c.reference, sizeof c.reference, "absent.csv");
    rc = batcher_reference_bins(&c, dir, python(), FERRY_MODEL_WORKER_PY, edges, expected, names,
                                &n);
    assert_true(rc < 0);
    assert_non_null(strstr(err_message(rc), "absent.csv"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sklearn_predict_matches_in_process),
        cmocka_unit_test(test_sklearn_predict_proba_is_2d),
        cmocka_unit_test(test_sklearn_single_2d_input),
        cmocka_unit_test(test_sklearn_dataframe_pipeline),
        cmocka_unit_test(test_missing_model_file_fails_start),
        cmocka_unit_test(test_wrong_method_and_bad_load_fail_start),
        cmocka_unit_test(test_python_model_raises_then_keeps_serving),
        cmocka_unit_test(test_python_worker_dies_is_restarted),
        cmocka_unit_test(test_crash_loop_backs_off),
        cmocka_unit_test(test_declared_outputs_cast),
        cmocka_unit_test(test_malformed_answers_are_refused),
        cmocka_unit_test(test_worker_inherits_no_descriptors),
        cmocka_unit_test(test_concurrent_requests_are_batched),
        cmocka_unit_test(test_bytes_batched_and_split),
        cmocka_unit_test(test_oversized_request_goes_alone),
        cmocka_unit_test(test_stop_answers_everything_once),
        cmocka_unit_test(test_reference_bins),
    };
    return cmocka_run_group_tests(tests, group_setup, scratch_teardown);
}
