#include "pool.h"
#include "error.h"
#include "wframe.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define STOP_GRACE_MS 3000
#define BACKOFF_MAX_MS 5000
/* A worker that served this long before dying restarts at once. */
#define HEALTHY_MS 5000

enum wstate { W_STARTING, W_IDLE, W_BUSY, W_BACKOFF, W_DONE };

struct pool_worker {
    struct pool *pool;
    pthread_t thread;
    int thread_ok;
    enum wstate state;
    pid_t pid;      /* set while the process exists unreaped: safe to kill */
    int fd;         /* our end of the socket pair; -1 when none */
    unsigned sending; /* pool_send calls writing fd: it must not be closed */
    int claimed;      /* acquired, pool_send or pool_release not yet called */
    pool_answer_fn fn;
    void *arg;
};

struct pool {
    char *python, *worker_py, *dir, *config_json;
    unsigned n;
    struct pool_worker *w;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
    uint64_t restarts;
    unsigned loaded;        /* 1 once the first worker loaded the model */
    int start_failed;
    char start_err[512];
    unsigned threads_done;
    char *signature;        /* the first worker's inferred inputs (JSON), or NULL */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void deadline_ts(struct timespec *ts, uint64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static int cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
    return -rc;
}

/* ------------------------------------------------------------ processes */

/* The child starts with default signal dispositions and an empty mask,
 * whatever the server's threads block. */
static int spawn_attr(posix_spawnattr_t *attr)
{
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    int rc = posix_spawnattr_init(attr);
    if (rc)
        return -rc;
    posix_spawnattr_setsigmask(attr, &none);
    posix_spawnattr_setsigdefault(attr, &all);
    posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    return 0;
}

/* python -s -B worker.py MODE DIR CONFIG with child_in/child_out as its
 * stdin/stdout (child_in -1: /dev/null). Every descriptor of ours is
 * CLOEXEC, so the worker inherits only these and stderr. */
static int spawn_worker(const char *python, const char *worker_py, const char *mode,
                        const char *dir, const char *cfg, int child_in, int child_out, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc)
        return err_set(-rc, "posix_spawn: %s", strerror(rc));
    if (child_in >= 0)
        rc = posix_spawn_file_actions_adddup2(&fa, child_in, 0);
    else
        rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (!rc)
        rc = posix_spawn_file_actions_adddup2(&fa, child_out, 1);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    /* Belt and braces: even a descriptor someone else in the server opened
     * without CLOEXEC (a listening socket) never reaches the model's code. */
    if (!rc)
        rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
    if (rc) {
        posix_spawn_file_actions_destroy(&fa);
        return err_set(-rc, "posix_spawn: %s", strerror(rc));
    }
    int arc = spawn_attr(&attr);
    if (arc < 0) {
        posix_spawn_file_actions_destroy(&fa);
        return err_set(arc, "posix_spawn: %s", strerror(-arc));
    }
    char *argv[] = {(char *)python, "-s", "-B", (char *)worker_py, (char *)mode,
                    (char *)dir, (char *)cfg, NULL};
    rc = posix_spawn(pid, python, &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc)
        return err_set(-rc, "cannot run %s: %s", python, strerror(rc));
    return 0;
}

static void describe_exit(const siginfo_t *si, char *buf, size_t cap)
{
    if (si->si_code == CLD_EXITED)
        snprintf(buf, cap, "worker exited (status %d)", si->si_status);
    else if (si->si_code == CLD_KILLED || si->si_code == CLD_DUMPED)
        snprintf(buf, cap, "worker exited (signal %d)", si->si_status);
    else
        snprintf(buf, cap, "worker exited");
}

/* ------------------------------------------------------------ worker thread */

/* Run one answer callback, without the lock held. */
static void answer(pool_answer_fn fn, void *arg, int status, struct infer_result *res,
                   const char *msg)
{
    if (fn)
        fn(arg, status, res, msg);
}

/* Serve until the worker goes away; why says how, when the server decided
 * it (a malformed answer). */
static void serve_loop(struct pool_worker *w, int fd, char *why, size_t why_cap)
{
    struct pool *p = w->pool;
    for (;;) {
        int kind;
        uint8_t *body;
        size_t len;
        int rc = wframe_read(fd, &kind, &body, &len);
        if (rc == -1)
            return;
        pthread_mutex_lock(&p->mu);
        /* An answer can overtake pool_send's return from sendmsg: wait for
         * it, so the requests' buffers (freed by the answer) are not still
         * held by the sender (ASan reads them after the call returns). */
        while (w->sending)
            pthread_cond_wait(&p->cv, &p->mu);
        pool_answer_fn fn = w->fn;
        void *arg = w->arg;
        w->fn = NULL;
        pthread_mutex_unlock(&p->mu);
        if (rc < 0 || !fn || (kind != K_OUT && kind != K_ERROR)) {
            if (rc == 0)
                free(body);
            snprintf(why, why_cap, "worker sent a malformed answer");
            answer(fn, arg, 500, NULL, why);
            return;
        }
        struct infer_result res;
        if (kind == K_OUT && wframe_parse_outputs(body, len, &res) < 0) {
            free(body);
            snprintf(why, why_cap, "worker sent a malformed answer");
            answer(fn, arg, 500, NULL, why);
            return;
        }
        /* The answer is ours now: the worker can take the next batch while
         * this one is split and rendered. */
        pthread_mutex_lock(&p->mu);
        if (w->state == W_BUSY)
            w->state = W_IDLE;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        if (kind == K_ERROR)
            answer(fn, arg, 500, NULL, len ? (const char *)body : "the model failed");
        else
            answer(fn, arg, 200, &res, NULL);
        free(body);
    }
}

/* Kill (harmless when it is already exiting: the status stays its own),
 * wait without reaping, forget the pid, then reap: a pid is only ever
 * signalled while it is still ours. */
static void reap(struct pool_worker *w, pid_t pid, char *msg, size_t cap)
{
    struct pool *p = w->pool;
    kill(pid, SIGKILL);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int rc;
    do
        rc = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT);
    while (rc < 0 && errno == EINTR);
    pthread_mutex_lock(&p->mu);
    w->pid = 0;
    pthread_mutex_unlock(&p->mu);
    if (rc == 0) {
        waitpid(pid, NULL, 0);
        describe_exit(&si, msg, cap);
    } else {
        snprintf(msg, cap, "worker exited");
    }
}

static void *worker_main(void *arg)
{
    struct pool_worker *w = arg;
    struct pool *p = w->pool;
    /* The first worker loads the model alone, and the others once it has:
     * importing numpy and scikit-learn is CPU-bound, so N workers loading
     * at once on few cores each take about N times as long, and the
     * endpoint (ready with one worker) would wait for all of them. A
     * model that cannot load fails in the first; the others then never
     * start. A later worker that fails to load is restarted as after a
     * crash. */
    int first = w == &p->w[0];
    if (!first) {
        pthread_mutex_lock(&p->mu);
        while (!p->stopping && !p->start_failed && p->loaded == 0)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stopping || p->start_failed) {
            w->state = W_DONE;
            p->threads_done++;
            pthread_cond_broadcast(&p->cv);
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        pthread_mutex_unlock(&p->mu);
    }
    unsigned quick = 0;
    for (;;) {
        char why[512] = "";
        int sv[2] = {-1, -1};
        pid_t pid = 0;
        int ready = 0;
        uint64_t t_ready = 0;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
            snprintf(why, sizeof why, "socketpair: %s", strerror(errno));
        } else if (spawn_worker(p->python, p->worker_py, "serve", p->dir, p->config_json, sv[1],
                                sv[1], &pid) < 0) {
            snprintf(why, sizeof why, "%s", err_detail());
            pid = 0;
        }
        if (sv[1] >= 0)
            close(sv[1]);
        if (pid > 0) {
            pthread_mutex_lock(&p->mu);
            w->pid = pid;
            w->fd = sv[0];
            if (p->stopping)
                shutdown(sv[0], SHUT_WR);
            pthread_mutex_unlock(&p->mu);
            int kind;
            uint8_t *body = NULL;
            size_t len;
            int rc = wframe_read(sv[0], &kind, &body, &len);
            if (rc == 0 && kind == K_READY) {
                ready = 1;
                /* A model that declared no inputs: what the estimator
                 * takes, as the first worker to load says. */
                pthread_mutex_lock(&p->mu);
                if (body && len && !p->signature)
                    p->signature = strndup((const char *)body, len);
                pthread_mutex_unlock(&p->mu);
            } else if (rc == 0 && kind == K_ERROR) {
                snprintf(why, sizeof why, "%s", body);
            } else if (rc == -2 || rc == 0) {
                snprintf(why, sizeof why, "worker sent a malformed frame before loading");
            }
            free(body);
        }
        if (ready) {
            pthread_mutex_lock(&p->mu);
            w->state = W_IDLE;
            if (first)
                p->loaded++;
            pthread_cond_broadcast(&p->cv);
            pthread_mutex_unlock(&p->mu);
            t_ready = now_ms();
            serve_loop(w, sv[0], why, sizeof why);
        }
        /* The worker is gone or is going: reap it, then fail what it held. */
        char exitmsg[128] = "worker exited";
        if (pid > 0)
            reap(w, pid, exitmsg, sizeof exitmsg);
        if (!why[0])
            snprintf(why, sizeof why, "%s%s", exitmsg, ready ? "" : " before loading the model");
        pthread_mutex_lock(&p->mu);
        /* A claim in progress ends in pool_send (whose batch then fails
         * here, with how the worker exited) or pool_release: wait for it, so
         * the batch never lands on the next incarnation or nowhere. */
        while (w->sending || w->claimed)
            pthread_cond_wait(&p->cv, &p->mu);
        if (sv[0] >= 0)
            close(sv[0]);
        w->fd = -1;
        pool_answer_fn fn = w->fn;
        void *fnarg = w->arg;
        w->fn = NULL;
        int stopping = p->stopping;
        uint64_t delay = 0;
        if (ready && now_ms() - t_ready >= HEALTHY_MS)
            quick = 0;
        if (quick)
            delay = quick >= 7 ? BACKOFF_MAX_MS : 100u << (quick - 1);
        if (delay > BACKOFF_MAX_MS)
            delay = BACKOFF_MAX_MS;
        quick++;
        int done = stopping || (first && !ready);
        w->state = done ? W_DONE : delay ? W_BACKOFF : W_STARTING;
        if (first && !ready && !p->start_failed) {
            p->start_failed = 1;
            snprintf(p->start_err, sizeof p->start_err, "%s", why);
        }
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        answer(fn, fnarg, stopping ? 503 : 500, NULL, stopping ? "the model server is stopping" : why);
        if (done)
            break;
        first = 0;
        pthread_mutex_lock(&p->mu);
        if (delay) {
            struct timespec ts;
            deadline_ts(&ts, delay);
            while (!p->stopping && pthread_cond_timedwait(&p->cv, &p->mu, &ts) != ETIMEDOUT)
                ;
        }
        int stop = p->stopping;
        if (!stop) {
            p->restarts++;
            w->state = W_STARTING;
        } else {
            w->state = W_DONE;
        }
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        if (stop)
            break;
        fprintf(stderr, "ferry-model-server: restarting a model worker: %s\n", why);
    }
    pthread_mutex_lock(&p->mu);
    w->state = W_DONE;
    p->threads_done++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ------------------------------------------------------------ public */

static void stop_within(struct pool *p, uint64_t grace_ms);

static void pool_free(struct pool *p)
{
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->w);
    free(p->python);
    free(p->worker_py);
    free(p->dir);
    free(p->config_json);
    free(p->signature);
    free(p);
}

int pool_start(const struct pool_opts *o, struct pool **out)
{
    *out = NULL;
    if (!o->workers || !o->python || !o->worker_py || !o->dir || !o->config_json)
        return err_set(FERRY_E_INVALID, "model workers: incomplete options");
    if (access(o->python, X_OK) < 0)
        return err_set(-errno, "python %s: %s", o->python, strerror(errno));
    if (access(o->worker_py, R_OK) < 0)
        return err_set(-errno, "worker %s: %s", o->worker_py, strerror(errno));
    struct pool *p = calloc(1, sizeof *p);
    if (!p)
        return err_set(-ENOMEM, "model workers: out of memory");
    p->n = o->workers;
    p->w = calloc(p->n, sizeof *p->w);
    p->python = strdup(o->python);
    p->worker_py = strdup(o->worker_py);
    p->dir = strdup(o->dir);
    p->config_json = strdup(o->config_json);
    if (!p->w || !p->python || !p->worker_py || !p->dir || !p->config_json) {
        free(p->w);
        free(p->python);
        free(p->worker_py);
        free(p->dir);
        free(p->config_json);
        free(p);
        return err_set(-ENOMEM, "model workers: out of memory");
    }
    pthread_mutex_init(&p->mu, NULL);
    cond_init_mono(&p->cv);
    unsigned started = 0;
    for (unsigned i = 0; i < p->n; i++) {
        struct pool_worker *w = &p->w[i];
        w->pool = p;
        w->fd = -1;
        w->state = W_STARTING;
        int rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc) {
            pthread_mutex_lock(&p->mu);
            p->start_failed = 1;
            snprintf(p->start_err, sizeof p->start_err, "pthread_create: %s", strerror(rc));
            p->threads_done += p->n - i;
            pthread_mutex_unlock(&p->mu);
            for (unsigned j = i; j < p->n; j++)
                p->w[j].state = W_DONE;
            break;
        }
        w->thread_ok = 1;
        started++;
    }
    pthread_mutex_lock(&p->mu);
    while (!p->start_failed && p->loaded == 0)
        pthread_cond_wait(&p->cv, &p->mu);
    int failed = p->start_failed;
    char msg[sizeof p->start_err];
    snprintf(msg, sizeof msg, "%s", p->start_err);
    pthread_mutex_unlock(&p->mu);
    if (failed) {
        stop_within(p, 0);
        return err_set(FERRY_E_INVALID, "model worker: %s", msg);
    }
    *out = p;
    return 0;
}

static struct pool_worker *claim_idle(struct pool *p)
{
    for (unsigned i = 0; i < p->n; i++)
        if (p->w[i].state == W_IDLE) {
            p->w[i].state = W_BUSY;
            p->w[i].claimed = 1;
            return &p->w[i];
        }
    return NULL;
}

struct pool_worker *pool_acquire(struct pool *p)
{
    pthread_mutex_lock(&p->mu);
    struct pool_worker *w = NULL;
    while (!p->stopping && !(w = claim_idle(p))) {
        int coming = 0;
        for (unsigned i = 0; i < p->n; i++)
            if (p->w[i].state == W_STARTING || p->w[i].state == W_BUSY)
                coming = 1;
        if (!coming)
            break;
        pthread_cond_wait(&p->cv, &p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return w;
}

struct pool_worker *pool_try_acquire(struct pool *p)
{
    pthread_mutex_lock(&p->mu);
    struct pool_worker *w = p->stopping ? NULL : claim_idle(p);
    pthread_mutex_unlock(&p->mu);
    return w;
}

void pool_send(struct pool_worker *w, const struct pool_input *in, size_t n, pool_answer_fn fn,
               void *arg)
{
    struct pool *p = w->pool;
    pthread_mutex_lock(&p->mu);
    w->fn = fn;
    w->arg = arg;
    w->claimed = 0;
    int fd = w->fd;
    pid_t pid = w->pid;
    w->sending++;
    pthread_mutex_unlock(&p->mu);
    int rc = fd >= 0 ? wframe_send_batch(fd, in, n) : -EPIPE;
    pthread_mutex_lock(&p->mu);
    w->sending--;
    /* A worker that cannot take the batch is ended; its thread fails the
     * batch with the reason it finds (normally: how the worker exited). */
    if (rc < 0 && w->pid == pid && pid > 0)
        kill(pid, SIGKILL);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void pool_release(struct pool_worker *w)
{
    struct pool *p = w->pool;
    pthread_mutex_lock(&p->mu);
    w->claimed = 0;
    if (w->state == W_BUSY)
        w->state = W_IDLE;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void pool_cancel(struct pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    for (unsigned i = 0; i < p->n; i++)
        if (p->w[i].fd >= 0)
            shutdown(p->w[i].fd, SHUT_WR);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

const char *pool_signature(struct pool *p)
{
    pthread_mutex_lock(&p->mu);
    const char *sig = p->signature; /* set before pool_start returns, then fixed */
    pthread_mutex_unlock(&p->mu);
    return sig;
}

unsigned pool_ready(struct pool *p)
{
    pthread_mutex_lock(&p->mu);
    unsigned r = 0;
    for (unsigned i = 0; i < p->n; i++)
        r += p->w[i].state == W_IDLE || p->w[i].state == W_BUSY;
    pthread_mutex_unlock(&p->mu);
    return r;
}

uint64_t pool_restarts(struct pool *p)
{
    pthread_mutex_lock(&p->mu);
    uint64_t r = p->restarts;
    pthread_mutex_unlock(&p->mu);
    return r;
}

/* grace_ms: how long the workers have to finish and exit before they are
 * killed. */
static void stop_within(struct pool *p, uint64_t grace_ms)
{
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    for (unsigned i = 0; i < p->n; i++)
        if (p->w[i].fd >= 0)
            shutdown(p->w[i].fd, SHUT_WR);
    pthread_cond_broadcast(&p->cv);
    struct timespec ts;
    deadline_ts(&ts, grace_ms);
    int killed = 0;
    while (p->threads_done < p->n) {
        if (!killed && pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT) {
            for (unsigned i = 0; i < p->n; i++)
                if (p->w[i].pid > 0)
                    kill(p->w[i].pid, SIGKILL);
            killed = 1;
        } else if (killed) {
            pthread_cond_wait(&p->cv, &p->mu);
        }
    }
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->n; i++)
        if (p->w[i].thread_ok)
            pthread_join(p->w[i].thread, NULL);
    pool_free(p);
}

void pool_stop(struct pool *p)
{
    if (p)
        stop_within(p, STOP_GRACE_MS);
}

int pool_run_once(const char *python, const char *worker_py, const char *mode, const char *dir,
                  const char *config_json, size_t max, char **out)
{
    *out = NULL;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return err_set(-errno, "pipe: %s", strerror(errno));
    pid_t pid;
    int rc = spawn_worker(python, worker_py, mode, dir, config_json, -1, fds[1], &pid);
    close(fds[1]);
    if (rc < 0) {
        close(fds[0]);
        return rc;
    }
    char *buf = malloc(max + 1);
    size_t len = 0;
    int too_big = 0;
    for (;;) {
        char tmp[4096];
        ssize_t n = read(fds[0], tmp, sizeof tmp);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (buf && len + (size_t)n <= max) {
            memcpy(buf + len, tmp, (size_t)n);
            len += (size_t)n;
        } else {
            too_big = 1;
        }
    }
    close(fds[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (!buf)
        return err_set(-ENOMEM, "%s %s: out of memory", worker_py, mode);
    buf[len] = 0;
    if (too_big) {
        free(buf);
        return err_set(FERRY_E_LIMIT, "%s %s: more than %zu bytes of output", worker_py, mode, max);
    }
    *out = buf;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    if (WIFSIGNALED(st))
        return err_set(FERRY_E_INVALID, "%s %s: killed by signal %d", worker_py, mode,
                       WTERMSIG(st));
    return err_set(FERRY_E_INVALID, "%s %s: exit status %d", worker_py, mode, WEXITSTATUS(st));
}
