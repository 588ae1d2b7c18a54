/* ferry-model-server: argument parsing and signals only; the server is
 * model/mserver.c. Spawned by the model plugin (MODEL.md, docs/models.md):
 *   ferry-model-server --dir DIR --port PORT --addr ADDR --spec-json JSON
 *                      [--python PATH]
 * A configuration it cannot serve: one line on stderr, exit 2. SIGTERM or
 * SIGINT: a clean stop (in-flight requests answered 503), exit 0. */
#include "error.h"
#include "numparse.h"
#include "mserver.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPEC_JSON_MAX (128u << 10)
#define PROG "ferry-model-server"

static int wake[2] = {-1, -1}; /* self-pipe: 'T' a signal, 'L' loading ended */

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    char c = 'T';
    ssize_t w = write(wake[1], &c, 1);
    (void)w;
    errno = saved;
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, PROG ": error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    return 2;
}

static const char USAGE[] =
    "usage: " PROG " --dir DIR --port PORT [--addr ADDR] --spec-json JSON [--python PATH]\n";

struct loader {
    struct mserver *s;
    int rc;
    char err[512];
};

static void *load_thread(void *arg)
{
    struct loader *l = arg;
    l->rc = mserver_load(l->s);
    if (l->rc < 0)
        snprintf(l->err, sizeof l->err, "%s", err_message(l->rc));
    char c = 'L';
    ssize_t w = write(wake[1], &c, 1);
    (void)w;
    return NULL;
}

/* The folder of this executable, where worker.py lives too. */
static int worker_path(char *out, size_t cap)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return -1;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    if ((size_t)snprintf(out, cap, "%s/worker.py", self) >= cap)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *addr = "127.0.0.1", *spec = NULL, *port_text = NULL;
    const char *python = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--version") == 0) {
            printf(PROG " %s\n", FERRY_VERSION);
            return 0;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(USAGE, stdout);
            return 0;
        }
        const char **slot = strcmp(a, "--dir") == 0         ? &dir
                            : strcmp(a, "--port") == 0      ? &port_text
                            : strcmp(a, "--addr") == 0      ? &addr
                            : strcmp(a, "--spec-json") == 0 ? &spec
                            : strcmp(a, "--python") == 0    ? &python
                                                            : NULL;
        if (!slot)
            return usage_error("unknown argument '%s' (see --help)", a);
        if (i + 1 >= argc)
            return usage_error("%s needs a value", a);
        *slot = argv[++i];
    }
    if (!dir)
        return usage_error("--dir is required%s", "");
    if (!port_text)
        return usage_error("--port is required%s", "");
    if (!spec)
        return usage_error("--spec-json is required%s", "");
    uint64_t port;
    if (num_parse_u64("--port", port_text, 0, 65535, &port) < 0)
        return usage_error("%s", err_detail());
    if (strlen(spec) > SPEC_JSON_MAX)
        return usage_error("--spec-json is over %s", "128 KiB");
    if (!*addr)
        return usage_error("--addr is empty%s", "");
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return usage_error("--dir '%s' is not a directory", dir);
    if (!python) {
        python = getenv("FERRY_PYTHON");
        if (!python || !*python)
            python = "/usr/bin/python3";
    }
    if (access(python, X_OK) < 0)
        return usage_error("--python '%s' is not an executable (set --python or FERRY_PYTHON)",
                           python);
    char worker_py[PATH_MAX];
    if (worker_path(worker_py, sizeof worker_py) < 0 || access(worker_py, R_OK) < 0)
        return usage_error("worker.py is missing next to %s", PROG);

    if (pipe2(wake, O_CLOEXEC) < 0)
        return usage_error("pipe: %s", strerror(errno));
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct mserver_opts o = {
        .dir = dir,
        .addr = addr,
        .port = (int)port,
        .spec_json = spec,
        .python = python,
        .worker_py = worker_py,
    };
    struct mserver *s = NULL;
    int rc = mserver_start(&o, &s);
    if (rc < 0)
        return usage_error("%s", err_message(rc));
    fprintf(stderr, PROG ": listening on %s:%d\n", addr, mserver_port(s));

    struct loader l = {.s = s};
    pthread_t loader;
    if (pthread_create(&loader, NULL, load_thread, &l) != 0) {
        mserver_stop(s);
        return usage_error("cannot start the loader: %s", strerror(errno));
    }
    int loading = 1, code = 0;
    for (;;) {
        char c;
        ssize_t n = read(wake[0], &c, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (c == 'L') {
            loading = 0;
            pthread_join(loader, NULL);
            if (l.rc < 0) {
                fprintf(stderr, PROG ": error: %s\n", l.err);
                code = 2;
                break;
            }
            fprintf(stderr, PROG ": ready\n");
            continue;
        }
        /* A stop while the workers still load: the loader cannot be
         * interrupted; the workers see their pipes close when we exit. */
        if (loading) {
            fprintf(stderr, PROG ": stopped while loading\n");
            _exit(0);
        }
        break;
    }
    mserver_stop(s);
    if (code == 0)
        fprintf(stderr, PROG ": stopped\n");
    return code;
}
