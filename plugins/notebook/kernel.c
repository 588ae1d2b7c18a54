/* Jupyter kernels beside a notebook workload's run, through actions:
 *
 *  kernel-start {"idle_ms"?}  -> {"id", "sealed"}  idle_ms: cull after this
 *                                long without execution (default 1 h, 0 never)   a new ipykernel in the
 *                                workload's directory; "sealed" is the
 *                                connection file, crypto_box_seal'ed to the
 *                                requester's key (base64)
 *  kernel-stop  {"id"}        -> {"id", "stopped": true}
 *  kernel-interrupt {"id"}    -> {"id", "interrupted": true}  SIGINT
 *  kernel-restart {"id"}      -> {"id", "restarted": true}    same connection info
 *  kernel-list  {}            -> {"kernels": [...]}
 *
 * The agent adds "requester" (the key id that signed the action) and
 * "requester_key" (its Ed25519 public key, hex, from the agent's own trust)
 * to every request, so the kernel's connection info is sealed to the key
 * that asked and only that key may stop it, and "requester_operator"
 * (whether the agent counts that key as an operator, who may act on any
 * kernel: docs/notebooks.md). The HMAC key is made here and
 * leaves this process only inside the sealed box and in the 0600
 * connection file the kernel reads: the registry carries ciphertext.
 *
 * Refusals are answered as {"error": "..."} with a 0 return: the host
 * turns a negative return into a generic message, and these errors must
 * name the kernel and the reason. */
#include <ferry/ferry.h>
#include <ferry/plugin.h>

#include "kernel_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define KERNEL_HMAC_BYTES 32
#define KERNEL_STOP_WAIT_MS 3000
#define KERNEL_READY_MS 30000
#define KERNEL_IDLE_DEFAULT_MS (3600u * 1000)
#define KERNEL_IDLE_MAX_MS (30ull * 86400 * 1000)

/* An IPython startup file (the kernel's HOME is its private folder) that
 * marks each execution in HOME/activity: "busy" while a cell runs, "idle"
 * after, the file's mtime the moment. Idle culling reads it: a kernel is
 * idle when no cell ran for idle_ms, and never while one runs. */
static const char activity_py[] =
    "import os\n"
    "def _ferry_mark(state):\n"
    "    p = os.path.join(os.environ['HOME'], 'activity')\n"
    "    with open(p + '.tmp', 'w') as f:\n"
    "        f.write(state)\n"
    "    os.replace(p + '.tmp', p)\n"
    "get_ipython().events.register('pre_execute', lambda: _ferry_mark('busy'))\n"
    "get_ipython().events.register('post_execute', lambda: _ferry_mark('idle'))\n";

/* Every notebook run's kernels, for the watcher thread that restarts a
 * kernel that died (same connection file: clients reconnect unchanged). */
struct kernel_table {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct nb_run *runs;
    int quit;
    pthread_t watcher;
    const struct ferry_host *host;
};

#define WATCH_INTERVAL_MS 300


static uint64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The last execution's time (Unix ms; the start when none ran) and
 * whether a cell runs now. */
static uint64_t kernel_last_activity(const struct kernel *k, int *busy)
{
    char path[96], state[8] = "";
    snprintf(path, sizeof path, "%s/activity", k->dir);
    struct stat st;
    *busy = 0;
    if (stat(path, &st) < 0)
        return k->started_ms;
    FILE *f = fopen(path, "re");
    if (f) {
        *busy = fgets(state, sizeof state, f) && strncmp(state, "busy", 4) == 0;
        fclose(f);
    }
    uint64_t t = (uint64_t)st.st_mtim.tv_sec * 1000u + (uint64_t)st.st_mtim.tv_nsec / 1000000u;
    return t > k->started_ms ? t : k->started_ms;
}

/* Reap and restart, with the same connection file, each kernel whose
 * process ended without kernel-stop. This thread is the only reaper of a
 * live kernel, so the others test liveness with kill(pid, 0). */
static void watch_run(struct kernel_table *t, struct nb_run *nr)
{
    /* A kernel-start may hold the run for seconds: look again next round
     * rather than keep the table (and so the agent's loop) waiting. */
    if (pthread_mutex_trylock(&nr->lock) != 0)
        return;
    uint64_t now = unix_ms();
    for (size_t i = 0; i < nr->n; i++) {
        struct kernel *k = &nr->k[i];
        int busy;
        uint64_t last = kernel_last_activity(k, &busy);
        if (k->idle_ms && !busy && now > last && now - last >= k->idle_ms) {
            t->host->log(t->host->ctx, FERRY_LOG_INFO,
                         "notebook %s: kernel %s culled after %llu ms without execution",
                         nr->name, k->id, (unsigned long long)(now - last));
            kernel_end(k);
            nr->k[i--] = nr->k[--nr->n];
            kstate_save(t->host, nr);
            continue;
        }
        int st = 0;
        char code[32];
        if (k->adopted) {
            /* Started by an earlier agent: not our child, no status. */
            if (kproc_alive(k))
                continue;
            snprintf(code, sizeof code, "unknown");
        } else {
            if (k->pid <= 0 || waitpid(k->pid, &st, WNOHANG) != k->pid)
                continue;
            snprintf(code, sizeof code, "%d", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
        }
        k->pid = 0;
        k->restarts++;
        int rc = kernel_exec(nr, k);
        t->host->log(t->host->ctx, rc < 0 ? FERRY_LOG_ERROR : FERRY_LOG_WARN,
                     "notebook %s: kernel %s ended (status %s); %s (restart %u)", nr->name, k->id,
                     code, rc < 0 ? "cannot restart it" : "restarted with the same connection info",
                     k->restarts);
        kstate_save(t->host, nr);
    }
    pthread_mutex_unlock(&nr->lock);
}

static void *watcher(void *arg)
{
    struct kernel_table *t = arg;
    pthread_mutex_lock(&t->lock);
    while (!t->quit) {
        for (struct nb_run *nr = t->runs; nr; nr = nr->next)
            watch_run(t, nr);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += WATCH_INTERVAL_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&t->wake, &t->lock, &until);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

int kernel_init(struct nb_state *s)
{
    if (sodium_init() < 0)
        return -EIO;
    struct kernel_table *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->wake, NULL);
    t->host = s->host;
    if (pthread_create(&t->watcher, NULL, watcher, t) != 0) {
        free(t);
        return -EAGAIN;
    }
    s->kernels = t;
    return 0;
}

static void run_free(struct nb_run *nr);

/* The agent is exiting: it leaves workloads running, and their kernels
 * with them. Each run's index (kernstate.c) is already up to date, so the
 * next agent adopts them; only this instance's memory goes. */
void kernel_fini(struct nb_state *s)
{
    struct kernel_table *t = s->kernels;
    pthread_mutex_lock(&t->lock);
    t->quit = 1;
    pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->watcher, NULL);
    while (t->runs) {
        struct nb_run *nr = t->runs;
        t->runs = nr->next;
        pthread_mutex_lock(&nr->lock);
        nr->n = 0; /* left running */
        pthread_mutex_unlock(&nr->lock);
        run_free(nr);
    }
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->wake);
    free(t);
}

static char **env_copy(const char *const *env)
{
    size_t n = 0;
    while (env && env[n])
        n++;
    char **c = calloc(n + 1, sizeof *c);
    for (size_t i = 0; c && i < n; i++)
        if (!(c[i] = strdup(env[i]))) {
            while (i)
                free(c[--i]);
            free(c);
            return NULL;
        }
    return c;
}

struct nb_run *kernel_run_new(struct nb_state *s, const struct ferry_workload *w,
                              struct ferry_run *run)
{
    struct nb_run *nr = calloc(1, sizeof *nr);
    if (!nr || !(nr->name = strdup(w->name)) || !(nr->version = strdup(w->version)) ||
        !(nr->dir = strdup(w->dir)) || !(nr->env = env_copy(w->env))) {
        if (nr) {
            free(nr->name);
            free(nr->version);
            free(nr->dir);
        }
        free(nr);
        s->host->log(s->host->ctx, FERRY_LOG_ERROR, "notebook %s: out of memory", w->name);
        return NULL;
    }
    snprintf(nr->index, sizeof nr->index, "%s/.ferry/kernels.json", w->dir);
    pthread_mutex_init(&nr->lock, NULL);
    /* plugin_state names the index, so the run says where its kernels
     * are written down (adopt() finds it from the workload's directory). */
    if (run->struct_size >= offsetof(struct ferry_run, plugin_state) + FERRY_PLUGIN_STATE_MAX)
        snprintf(run->plugin_state, sizeof run->plugin_state, "%s", nr->index);
    run->plugin_data = nr;
    pthread_mutex_lock(&s->kernels->lock);
    nr->next = s->kernels->runs;
    s->kernels->runs = nr;
    pthread_mutex_unlock(&s->kernels->lock);
    return nr;
}

/* End a kernel's process group and reap it. */
static void kernel_kill(struct kernel *k)
{
    if (k->pid > 0 && k->adopted) {
        /* Not our child: watch the pid go rather than reap it. */
        if (kproc_alive(k)) {
            kill(-k->pid, SIGTERM);
            for (int waited = 0; waited < KERNEL_STOP_WAIT_MS && kproc_alive(k); waited += 20) {
                struct timespec ts = {0, 20 * 1000000L};
                nanosleep(&ts, NULL);
            }
            if (kproc_alive(k))
                kill(-k->pid, SIGKILL);
        }
        k->pid = 0;
        k->adopted = 0;
        return;
    }
    if (k->pid > 0) {
        kill(-k->pid, SIGTERM);
        int st;
        for (int waited = 0; waited < KERNEL_STOP_WAIT_MS; waited += 20) {
            pid_t r = waitpid(k->pid, &st, WNOHANG);
            if (r == k->pid || (r < 0 && errno == ECHILD))
                goto gone;
            struct timespec ts = {0, 20 * 1000000L};
            nanosleep(&ts, NULL);
        }
        kill(-k->pid, SIGKILL);
        waitpid(k->pid, &st, 0);
    }
gone:
    k->pid = 0;
}

/* End a kernel and remove its folder (the connection file with the HMAC
 * key goes with it). */
void kernel_end(struct kernel *k)
{
    kernel_kill(k);
    if (k->dir[0])
        kdir_remove(k->dir);
    memset(k, 0, sizeof *k);
}

static void run_free(struct nb_run *nr)
{
    pthread_mutex_lock(&nr->lock);
    /* Called on the agent's loop: all kernels are asked at once, so the
     * wait is one grace period, not one per kernel. */
    for (size_t i = 0; i < nr->n; i++)
        if (nr->k[i].pid > 0 && (!nr->k[i].adopted || kproc_alive(&nr->k[i])))
            kill(-nr->k[i].pid, SIGTERM);
    for (size_t i = 0; i < nr->n; i++)
        kernel_end(&nr->k[i]);
    nr->n = 0;
    pthread_mutex_unlock(&nr->lock);
    pthread_mutex_destroy(&nr->lock);
    free(nr->name);
    free(nr->version);
    free(nr->dir);
    for (size_t i = 0; nr->env && nr->env[i]; i++)
        free(nr->env[i]);
    free(nr->env);
    free(nr);
}

void kernel_stop_all(struct nb_state *s, struct ferry_run *run)
{
    struct nb_run *nr = run->plugin_data;
    if (!nr)
        return;
    pthread_mutex_lock(&s->kernels->lock);
    for (struct nb_run **p = &s->kernels->runs; *p; p = &(*p)->next)
        if (*p == nr) {
            *p = nr->next;
            break;
        }
    pthread_mutex_unlock(&s->kernels->lock);
    unlink(nr->index); /* its kernels end now: nothing to adopt later */
    run_free(nr);
    run->plugin_data = NULL;
}

static int answer(struct ferry_reply *reply, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text)
        return -ENOMEM;
    int rc = reply->set(reply, text, strlen(text));
    free(text);
    return rc;
}

static int refuse(struct ferry_reply *reply, const char *fmt, const char *arg)
{
    char msg[256];
    snprintf(msg, sizeof msg, fmt, arg);
    return answer(reply, json_pack("{s:s}", "error", msg));
}

/* n fresh TCP ports on ip: bound to port 0 and released, as Jupyter's own
 * launchers do; the kernel binds them a moment later. */
static int fresh_ports(const char *ip, int *ports, int n)
{
    int fds[8], rc = 0;
    for (int i = 0; i < n; i++)
        fds[i] = -1;
    for (int i = 0; i < n && rc == 0; i++) {
        struct sockaddr_in a = {.sin_family = AF_INET};
        socklen_t len = sizeof a;
        if (inet_pton(AF_INET, ip, &a.sin_addr) != 1)
            return -EINVAL;
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&a, sizeof a) < 0 ||
            getsockname(fds[i], (struct sockaddr *)&a, &len) < 0)
            rc = -errno;
        else
            ports[i] = ntohs(a.sin_port);
    }
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return rc;
}

/* The address kernels listen on: the agent's --advertise when it is an
 * IPv4 address, else loopback. */
static const char *kernel_ip(void)
{
    const char *a = getenv("FERRY_ADVERTISE");
    struct in_addr x;
    return a && inet_pton(AF_INET, a, &x) == 1 ? a : "127.0.0.1";
}

static int seal_b64(const char *hexkey, const char *plain, size_t len, char **out)
{
    uint8_t edpk[crypto_sign_PUBLICKEYBYTES], xpk[crypto_box_PUBLICKEYBYTES];
    size_t got = 0;
    if (!hexkey || strlen(hexkey) != 2 * sizeof edpk ||
        sodium_hex2bin(edpk, sizeof edpk, hexkey, strlen(hexkey), NULL, &got, NULL) != 0 ||
        got != sizeof edpk || crypto_sign_ed25519_pk_to_curve25519(xpk, edpk) != 0)
        return -EINVAL;
    size_t clen = crypto_box_SEALBYTES + len;
    uint8_t *c = malloc(clen);
    size_t blen = sodium_base64_ENCODED_LEN(clen, sodium_base64_VARIANT_ORIGINAL);
    char *b = malloc(blen);
    if (!c || !b) {
        free(c);
        free(b);
        return -ENOMEM;
    }
    crypto_box_seal(c, (const uint8_t *)plain, len, xpk);
    sodium_bin2base64(b, blen, c, clen, sodium_base64_VARIANT_ORIGINAL);
    free(c);
    *out = b;
    return 0;
}

/* Write the connection file (0600 in a fresh 0700 folder) and start
 * python3 -m ipykernel_launcher -f FILE in the workload's directory, in
 * its own session, its output to kernel.log beside the file. */
static int kernel_spawn(struct nb_run *nr, struct kernel *k, const char *conn, size_t conn_len)
{
    snprintf(k->dir, sizeof k->dir, "/tmp/ferry-kernel-XXXXXX");
    if (!mkdtemp(k->dir)) {
        k->dir[0] = '\0';
        return -errno;
    }
    char file[256];
    snprintf(file, sizeof file, "%s/kernel.json", k->dir);
    int fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    ssize_t w = write(fd, conn, conn_len);
    int rc = w == (ssize_t)conn_len && close(fd) == 0 ? 0 : -EIO;
    if (w != (ssize_t)conn_len)
        close(fd);
    if (rc < 0)
        return rc;
    char sdir[160];
    const char *parts[] = {"/.ipython", "/.ipython/profile_default",
                           "/.ipython/profile_default/startup", NULL};
    for (int i = 0; parts[i]; i++) {
        snprintf(sdir, sizeof sdir, "%s%s", k->dir, parts[i]);
        if (mkdir(sdir, 0700) < 0)
            return -errno;
    }
    snprintf(file, sizeof file, "%s/00-ferry-activity.py", sdir);
    fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    w = write(fd, activity_py, sizeof activity_py - 1);
    rc = w == (ssize_t)(sizeof activity_py - 1) && close(fd) == 0 ? 0 : -EIO;
    if (w != (ssize_t)(sizeof activity_py - 1))
        close(fd);
    if (rc < 0)
        return rc;
    return kernel_exec(nr, k);
}

/* Start python3 -m ipykernel_launcher -f DIR/kernel.json in the
 * workload's directory (again, after a crash or a restart). */
int kernel_exec(struct nb_run *nr, struct kernel *k)
{
    char file[128], log[128], home[128], rt[160];
    snprintf(file, sizeof file, "%s/kernel.json", k->dir);
    snprintf(log, sizeof log, "%s/kernel.log", k->dir);
    snprintf(home, sizeof home, "HOME=%s", k->dir);
    snprintf(rt, sizeof rt, "JUPYTER_RUNTIME_DIR=%s", k->dir);
    const char *py = nb_python();
    char *const argv[] = {(char *)py, "-m", "ipykernel_launcher", "-f", file, NULL};
    /* The plugin's own four, then run.env and notebook.env (the registry
     * refused PATH, HOME and JUPYTER_RUNTIME_DIR in notebook.env). */
    size_t n = 0;
    while (nr->env && nr->env[n])
        n++;
    char **env = calloc(n + 5, sizeof *env);
    if (!env)
        return -ENOMEM;
    env[0] = "PATH=/usr/local/bin:/usr/bin:/bin";
    env[1] = home;
    env[2] = rt;
    env[3] = "PYTHONUNBUFFERED=1";
    for (size_t i = 0; i < n; i++)
        env[4 + i] = nr->env[i];
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_addchdir_np(&fa, nr->dir);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    pid_t pid;
    int rc = -posix_spawn(&pid, py, &fa, &at, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    free(env);
    if (rc == 0) {
        k->pid = pid;
        k->adopted = 0;
        k->proc_start = kproc_start(pid);
    }
    (void)environ;
    return rc;
}

/* Until the kernel accepts connections on its shell port (so a client
 * that connects at once finds it), the process dies, or the deadline. */
static int kernel_wait_ready(const struct kernel *k)
{
    for (int waited = 0; waited < KERNEL_READY_MS; waited += 50) {
        if (kill(k->pid, 0) < 0 || waitpid(k->pid, NULL, WNOHANG) == k->pid)
            return -ECHILD;
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)k->shell_port)};
        inet_pton(AF_INET, k->ip, &a.sin_addr);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        if (fd >= 0)
            close(fd);
        if (ok)
            return 0;
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return -ETIMEDOUT;
}

static int do_start(struct nb_state *s, struct nb_run *nr, json_t *req, struct ferry_reply *reply)
{
    const char *owner = json_string_value(json_object_get(req, "requester"));
    const char *pk = json_string_value(json_object_get(req, "requester_key"));
    if (!owner || !pk)
        return refuse(reply, "kernel start: %s", "the request carries no requester key");
    if (nr->n >= KERNELS_MAX)
        return refuse(reply, "kernel start: %s already runs the most kernels it may (16)",
                      nr->name);
    struct kernel *k = &nr->k[nr->n];
    memset(k, 0, sizeof *k);
    uint8_t idb[KERNEL_ID_BYTES], hmac[KERNEL_HMAC_BYTES];
    char hmac_hex[2 * KERNEL_HMAC_BYTES + 1];
    randombytes_buf(idb, sizeof idb);
    sodium_bin2hex(k->id, sizeof k->id, idb, sizeof idb);
    randombytes_buf(hmac, sizeof hmac);
    sodium_bin2hex(hmac_hex, sizeof hmac_hex, hmac, sizeof hmac);
    sodium_memzero(hmac, sizeof hmac);
    snprintf(k->owner, sizeof k->owner, "%s", owner);
    json_t *idle = json_object_get(req, "idle_ms");
    k->idle_ms = KERNEL_IDLE_DEFAULT_MS;
    if (idle && (!json_is_integer(idle) || json_integer_value(idle) < 0 ||
                 (uint64_t)json_integer_value(idle) > KERNEL_IDLE_MAX_MS))
        return refuse(reply, "kernel start: %s", "idle_ms must be an integer from 0 to 30 days");
    if (idle)
        k->idle_ms = (uint64_t)json_integer_value(idle);
    const char *ip = kernel_ip();
    int ports[5];
    int rc = fresh_ports(ip, ports, 5);
    json_t *c = rc < 0 ? NULL
                       : json_pack("{s:i, s:i, s:i, s:i, s:i, s:s, s:s, s:s, s:s, s:s}",
                                   "shell_port", ports[0], "iopub_port", ports[1], "stdin_port",
                                   ports[2], "control_port", ports[3], "hb_port", ports[4], "ip",
                                   ip, "key", hmac_hex, "transport", "tcp", "signature_scheme",
                                   "hmac-sha256", "kernel_name", "python3");
    sodium_memzero(hmac_hex, sizeof hmac_hex);
    char *conn = c ? json_dumps(c, JSON_INDENT(1)) : NULL;
    json_decref(c);
    if (rc < 0 || !conn) {
        free(conn);
        return refuse(reply, "kernel start: no free ports on %s", ip);
    }
    size_t conn_len = strlen(conn);
    snprintf(k->ip, sizeof k->ip, "%s", ip);
    k->shell_port = ports[0];
    char *sealed = NULL;
    if ((rc = seal_b64(pk, conn, conn_len, &sealed)) < 0) {
        sodium_memzero(conn, conn_len);
        free(conn);
        return refuse(reply, "kernel start: %s", "the requester's key is malformed");
    }
    rc = kernel_spawn(nr, k, conn, conn_len);
    sodium_memzero(conn, conn_len);
    free(conn);
    if (rc == 0)
        rc = kernel_wait_ready(k);
    if (rc < 0) {
        free(sealed);
        kernel_end(k);
        s->host->log(s->host->ctx, FERRY_LOG_ERROR, "notebook %s: cannot start a kernel: %s",
                     nr->name, strerror(-rc));
        return refuse(reply, "kernel start: cannot start %s -m ipykernel_launcher", nb_python());
    }
    k->started_ms = unix_ms();
    nr->n++;
    kstate_save(s->host, nr);
    s->host->log(s->host->ctx, FERRY_LOG_INFO, "notebook %s: kernel %s started (pid %d) for key %s",
                 nr->name, k->id, (int)k->pid, k->owner);
    rc = answer(reply, json_pack("{s:s, s:s, s:s, s:s}", "id", k->id, "sealed", sealed, "name",
                                 nr->name, "version", nr->version));
    free(sealed);
    return rc;
}

static struct kernel *find(struct nb_run *nr, const char *id)
{
    for (size_t i = 0; id && i < nr->n; i++)
        if (strcmp(nr->k[i].id, id) == 0)
            return &nr->k[i];
    return NULL;
}

/* verb is stop, interrupt or restart. */
static int do_control(struct nb_state *s, struct nb_run *nr, const char *verb, json_t *req,
                      struct ferry_reply *reply)
{
    const char *id = json_string_value(json_object_get(req, "id"));
    const char *who = json_string_value(json_object_get(req, "requester"));
    /* Set by the agent over whatever the request said (agent/actions.c). */
    int op = json_is_true(json_object_get(req, "requester_operator"));
    struct kernel *k = find(nr, id);
    if (!k)
        return refuse(reply, "kernel %s: no such kernel", id ? id : "(none)");
    int own = who && strcmp(who, k->owner) == 0;
    if (!own && !op) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "kernel %%s: only the key that started it or an operator may %s it", verb);
        return refuse(reply, msg, id);
    }
    if (!own)
        s->host->log(s->host->ctx, FERRY_LOG_INFO,
                     "notebook %s: kernel %s (started by key %s): %s by operator key %s",
                     nr->name, k->id, k->owner, verb, who ? who : "?");
    if (strcmp(verb, "interrupt") == 0) {
        /* ipykernel's interrupt_mode "signal": SIGINT to the kernel alone. */
        if (k->pid <= 0 || !kproc_alive(k) || kill(k->pid, SIGINT) < 0)
            return refuse(reply, "kernel %s: it is not running", id);
        return answer(reply, json_pack("{s:s, s:b}", "id", k->id, "interrupted", 1));
    }
    if (strcmp(verb, "restart") == 0) {
        kernel_kill(k);
        k->restarts++;
        int xrc = kernel_exec(nr, k);
        kstate_save(s->host, nr);
        if (xrc < 0 || kernel_wait_ready(k) < 0)
            return refuse(reply, "kernel %s: cannot start it again", id);
        s->host->log(s->host->ctx, FERRY_LOG_INFO, "notebook %s: kernel %s restarted", nr->name,
                     k->id);
        return answer(reply, json_pack("{s:s, s:b}", "id", k->id, "restarted", 1));
    }
    char kid[sizeof k->id];
    snprintf(kid, sizeof kid, "%s", k->id);
    kernel_end(k);
    *k = nr->k[--nr->n];
    kstate_save(s->host, nr);
    s->host->log(s->host->ctx, FERRY_LOG_INFO, "notebook %s: kernel %s stopped", nr->name, kid);
    return answer(reply, json_pack("{s:s, s:b}", "id", kid, "stopped", 1));
}

static const char *kernel_state(const struct kernel *k, int busy)
{
    return !kproc_alive(k) ? "dead" : busy ? "busy" : "idle";
}

static int do_list(struct nb_run *nr, struct ferry_reply *reply)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < nr->n; i++) {
        struct kernel *k = &nr->k[i];
        int alive = kproc_alive(k), busy;
        uint64_t last = kernel_last_activity(k, &busy);
        json_array_append_new(
            a, json_pack("{s:s, s:s, s:s, s:I, s:I, s:b, s:i, s:s, s:s}", "id", k->id, "name",
                         nr->name, "version", nr->version, "started", (json_int_t)k->started_ms,
                         "last_activity", (json_int_t)last, "alive", alive, "restarts",
                         (int)k->restarts, "state", kernel_state(k, busy), "owner", k->owner));
    }
    return answer(reply, json_pack("{s:o}", "kernels", a));
}

/* Each kernel as four samples labelled kernel="ID" (docs/notebooks.md,
 * "Kernels in ferry status"): the agent turns them into the kernels of
 * the workload's report (agent/kernelreport.c), and they are ordinary
 * metrics for anything else that reads them. 16 kernels x 4 fit the
 * host's 64 samples per run. */
int kernel_metrics(struct nb_state *s, struct ferry_run *run, struct ferry_metric_sink *sink)
{
    (void)s;
    struct nb_run *nr = run->plugin_data;
    if (!nr)
        return 0;
    pthread_mutex_lock(&nr->lock);
    for (size_t i = 0; i < nr->n; i++) {
        const struct kernel *k = &nr->k[i];
        int busy;
        uint64_t last = kernel_last_activity(k, &busy);
        const char *info_labels[] = {"kernel", k->id, "state", kernel_state(k, busy), "owner",
                                     k->owner, NULL};
        const char *id_label[] = {"kernel", k->id, NULL};
        struct ferry_sample smp[4] = {
            {.name = "notebook_kernel_info", .type = FERRY_METRIC_GAUGE, .labels = info_labels,
             .value = 1},
            {.name = "notebook_kernel_start_time_seconds", .type = FERRY_METRIC_GAUGE,
             .labels = id_label, .value = (double)k->started_ms / 1000.0},
            {.name = "notebook_kernel_last_activity_seconds", .type = FERRY_METRIC_GAUGE,
             .labels = id_label, .value = (double)last / 1000.0},
            {.name = "notebook_kernel_restarts_total", .type = FERRY_METRIC_COUNTER,
             .labels = id_label, .value = (double)k->restarts},
        };
        for (int j = 0; j < 4; j++) {
            smp[j].struct_size = sizeof smp[j];
            sink->add(sink, &smp[j]);
        }
    }
    pthread_mutex_unlock(&nr->lock);
    return 0;
}

int kernel_action(struct nb_state *s, struct ferry_run *run, const char *verb,
                  const char *request_json, struct ferry_reply *reply)
{
    struct nb_run *nr = run->plugin_data;
    if (!nr)
        return -EIO;
    json_t *req = json_loads(request_json, 0, NULL);
    if (!json_is_object(req)) {
        json_decref(req);
        return -EINVAL;
    }
    int rc;
    pthread_mutex_lock(&nr->lock);
    if (strcmp(verb, "start") == 0)
        rc = do_start(s, nr, req, reply);
    else if (strcmp(verb, "stop") == 0 || strcmp(verb, "interrupt") == 0 ||
             strcmp(verb, "restart") == 0)
        rc = do_control(s, nr, verb, req, reply);
    else if (strcmp(verb, "list") == 0)
        rc = do_list(nr, reply);
    else
        rc = -ENOTSUP;
    pthread_mutex_unlock(&nr->lock);
    json_decref(req);
    return rc;
}
