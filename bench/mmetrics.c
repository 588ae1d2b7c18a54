/* The model server's metrics on its hot path (docs/benchmarks.md, "Model
 * server metrics"): mm_add, mm_set and mm_observe as each request makes
 * them, alone and from two threads on the same series, against an atomic
 * add on one counter (uncontended, then contended) measured in the same
 * run; mm_render_prometheus and mm_render_json of the server's families
 * against formatting the same sample lines with one snprintf each.
 * Each figure is the median of ROUNDS interleaved rounds, in CPU time. */
#include "mmetrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROUNDS 7

/* The calling thread's CPU time: the figures leave out the time the
 * thread was not running, so other work on the machine moves them less
 * than it moves wall time. */
static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* ---- the hot path ---- */

static atomic_uint_fast64_t counter;
static volatile double sink_d;
static struct mm_family *f_counter, *f_gauge, *f_hist;
static const char *const lv4[] = {"iris", "1.0.0", "v2", "ok"};
static const char *const lv3[] = {"iris", "1.0.0", "v2"};
static const char *const lv2[] = {"iris", "1.0.0"};

enum op { OP_ATOMIC, OP_ADD, OP_SET, OP_OBSERVE, OP_COUNT };
static const char *const op_name[OP_COUNT] = {
    "atomic add (baseline)",
    "mm_add, counter, 4 labels",
    "mm_set, gauge, 2 labels",
    "mm_observe, histogram, 3 labels, 14 buckets",
};

static void run_op(enum op op, long n)
{
    switch (op) {
    case OP_ATOMIC:
        for (long i = 0; i < n; i++)
            atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed);
        break;
    case OP_ADD:
        for (long i = 0; i < n; i++)
            mm_add(f_counter, lv4, 1);
        break;
    case OP_SET:
        for (long i = 0; i < n; i++)
            mm_set(f_gauge, lv2, (double)i);
        break;
    case OP_OBSERVE:
        for (long i = 0; i < n; i++)
            mm_observe(f_hist, lv3, (double)(i & 1023) * 1e-5);
        break;
    default: break;
    }
}

struct thr {
    enum op op;
    long n;
    pthread_barrier_t *go;
    double cpu_ns;
};

static void *thr_main(void *p)
{
    struct thr *t = p;
    pthread_barrier_wait(t->go);
    double t0 = now_ns();
    run_op(t->op, t->n);
    t->cpu_ns = now_ns() - t0;
    return NULL;
}

/* CPU ns per operation with `threads` threads doing n each at once: the
 * threads' CPU time over all their operations (with two, the time lost to
 * the shared cache line is in it). */
static double measure(enum op op, int threads, long n)
{
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)threads);
    pthread_t th[8];
    struct thr t[8];
    for (int i = 0; i < threads; i++) {
        t[i] = (struct thr){op, n, &go, 0};
        pthread_create(&th[i], NULL, thr_main, &t[i]);
    }
    double cpu = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        cpu += t[i].cpu_ns;
    }
    pthread_barrier_destroy(&go);
    return cpu / ((double)n * threads);
}

/* ---- rendering ---- */

/* The families server.c creates, with the label sets a busy server has:
 * both protocols and every outcome, and `inputs` drift gauges. */
static struct mm *server_registry(int inputs, size_t *lines)
{
    struct mm *m = NULL;
    if (mm_new(&m) < 0)
        exit(1);
    const double dur[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                          0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};
    const double rows[] = {1, 2, 4, 8, 16, 32, 64, 128};
    static const char *const k_mvpo[] = {"model", "version", "protocol", "outcome", NULL};
    static const char *const k_mvp[] = {"model", "version", "protocol", NULL};
    static const char *const k_mv[] = {"model", "version", NULL};
    static const char *const k_mvi[] = {"model", "version", "input", NULL};
    struct mm_family *req, *dr, *q, *c, *b, *rs, *wr, *psi;
    int rc = mm_family(m, "ferry_model_requests_total", "h", MM_COUNTER, k_mvpo, NULL, 0, &req);
    rc |= mm_family(m, "ferry_model_request_duration_seconds", "h", MM_HISTOGRAM, k_mvp, dur, 14, &dr);
    rc |= mm_family(m, "ferry_model_queue_seconds", "h", MM_HISTOGRAM, k_mv, dur, 14, &q);
    rc |= mm_family(m, "ferry_model_compute_seconds", "h", MM_HISTOGRAM, k_mv, dur, 14, &c);
    rc |= mm_family(m, "ferry_model_batch_size", "h", MM_HISTOGRAM, k_mv, rows, 8, &b);
    rc |= mm_family(m, "ferry_model_worker_restarts_total", "h", MM_COUNTER, k_mv, NULL, 0, &rs);
    rc |= mm_family(m, "ferry_model_workers_ready", "h", MM_GAUGE, k_mv, NULL, 0, &wr);
    rc |= mm_family(m, "ferry_model_drift_psi", "h", MM_GAUGE, k_mvi, NULL, 0, &psi);
    if (rc)
        exit(1);
    const char *outcomes[] = {"ok", "bad_request", "not_found", "error", "unavailable"};
    const char *protos[] = {"v2", "mlflow"};
    size_t n = 0;
    for (int p = 0; p < 2; p++) {
        for (int o = 0; o < 5; o++, n++)
            mm_add(req, (const char *const[]){"iris", "1.0.0", protos[p], outcomes[o]}, 1000 + o);
        for (int i = 0; i < 100; i++)
            mm_observe(dr, (const char *const[]){"iris", "1.0.0", protos[p]}, i * 1e-4);
        n += 15 + 2;
    }
    for (int i = 0; i < 100; i++) {
        mm_observe(q, lv2, i * 1e-5);
        mm_observe(c, lv2, i * 1e-4);
        mm_observe(b, lv2, 1 + i % 32);
    }
    n += 2 * (15 + 2) + (9 + 2);
    mm_add(rs, lv2, 1);
    mm_set(wr, lv2, 2);
    n += 2;
    for (int i = 0; i < inputs; i++, n++) {
        char name[32];
        snprintf(name, sizeof name, "feature_%d", i);
        mm_set(psi, (const char *const[]){"iris", "1.0.0", name}, 0.01 * i);
    }
    *lines = n + 1; /* and the dropped counter */
    return m;
}

/* The floor: the same number of sample lines, one snprintf each, into one
 * buffer, without locks, escaping or a snapshot. */
static size_t format_floor(size_t lines, char *buf, size_t cap)
{
    size_t used = 0;
    for (size_t i = 0; i < lines && used < cap; i++) {
        int n = snprintf(buf + used, cap - used,
                         "ferry_model_request_duration_seconds_bucket{model=\"%s\",version=\"%s\","
                         "protocol=\"%s\",le=\"%g\"} %.17g\n",
                         "iris", "1.0.0", "v2", 0.0025, (double)(i * 7));
        used += n > 0 ? (size_t)n : 0;
    }
    return used;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    if (n < 1000)
        n = 1000;
    struct mm *m = NULL;
    if (mm_new(&m) < 0)
        return 1;
    const double dur[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                          0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};
    static const char *const k4[] = {"model", "version", "protocol", "outcome", NULL};
    static const char *const k3[] = {"model", "version", "protocol", NULL};
    static const char *const k2[] = {"model", "version", NULL};
    if (mm_family(m, "c_total", "h", MM_COUNTER, k4, NULL, 0, &f_counter) ||
        mm_family(m, "g", "h", MM_GAUGE, k2, NULL, 0, &f_gauge) ||
        mm_family(m, "h_seconds", "h", MM_HISTOGRAM, k3, dur, 14, &f_hist))
        return 1;

    double one[OP_COUNT][ROUNDS], two[OP_COUNT][ROUNDS];
    for (int r = 0; r < ROUNDS; r++)
        for (int op = 0; op < OP_COUNT; op++) {
            one[op][r] = measure((enum op)op, 1, n);
            two[op][r] = measure((enum op)op, 2, n / 2);
        }
    double m1[OP_COUNT], m2[OP_COUNT];
    for (int op = 0; op < OP_COUNT; op++) {
        m1[op] = median(one[op], ROUNDS);
        m2[op] = median(two[op], ROUNDS);
    }
    printf("\nmodel server metrics (bench/mmetrics.c), median of %d rounds, %ld operations each\n", ROUNDS, n);
    printf("%-46s %10s %8s %12s %8s\n", "operation", "1 thread", "ratio", "2 threads", "ratio");
    printf("%-46s %10s %8s %12s %8s\n", "", "CPU ns/op", "", "CPU ns/op", "");
    for (int op = 0; op < OP_COUNT; op++)
        printf("%-46s %10.1f %8.1f %12.1f %8.1f\n", op_name[op], m1[op], m1[op] / m1[OP_ATOMIC], m2[op],
               m2[op] / m2[OP_ATOMIC]);

    /* Rendering the server's registry: 8 inputs (iris-like) and 64. */
    printf("\n%-46s %10s %8s %10s %8s\n", "render (server's families)", "CPU us", "ratio", "bytes", "lines");
    const int inputs[] = {8, 64};
    for (int k = 0; k < 2; k++) {
        size_t lines = 0;
        struct mm *sm = server_registry(inputs[k], &lines);
        size_t cap = 1u << 20;
        char *buf = malloc(cap);
        double floor_us[ROUNDS], text_us[ROUNDS], json_us[ROUNDS];
        size_t text_len = 0, json_len = 0, floor_len = 0;
        for (int r = 0; r < ROUNDS; r++) {
            const int reps = 200;
            double t0 = now_ns();
            for (int i = 0; i < reps; i++)
                floor_len = format_floor(lines, buf, cap);
            double t1 = now_ns();
            for (int i = 0; i < reps; i++) {
                char *t = mm_render_prometheus(sm);
                text_len = strlen(t);
                free(t);
            }
            double t2 = now_ns();
            for (int i = 0; i < reps; i++) {
                char *j = mm_render_json(sm);
                json_len = strlen(j);
                free(j);
            }
            double t3 = now_ns();
            floor_us[r] = (t1 - t0) / reps / 1e3;
            text_us[r] = (t2 - t1) / reps / 1e3;
            json_us[r] = (t3 - t2) / reps / 1e3;
        }
        double fl = median(floor_us, ROUNDS), tx = median(text_us, ROUNDS), js = median(json_us, ROUNDS);
        char label[64];
        snprintf(label, sizeof label, "snprintf per line (baseline), %d inputs", inputs[k]);
        printf("%-46s %10.1f %8.2f %10zu %8zu\n", label, fl, 1.0, floor_len, lines);
        printf("%-46s %10.1f %8.2f %10zu %8zu\n", "  mm_render_prometheus", tx, tx / fl, text_len, lines);
        printf("%-46s %10.1f %8.2f %10zu %8s\n", "  mm_render_json", js, js / fl, json_len, "");
        free(buf);
        mm_free(sm);
    }
    sink_d = (double)atomic_load(&counter);
    mm_free(m);
    return 0;
}
