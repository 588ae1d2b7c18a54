/* ferry-registry: argument parsing and signals only; the engine is
 * registry.c. */
#include "error.h"
#include "key.h"
#include "registry.h"
#include "server.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <errno.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ferry-registry --data DIR [--listen URL] [--trust FILE.pub ...]\n"
            "                      [--workers N] [--host-ttl SECONDS] [--tls-cert FILE.pem]\n"
            "                      [--max-conns N] [--max-conns-per-peer N]\n"
            "                      [--idle-timeout SECONDS]\n"
            "  Serves artifacts in the foreground until SIGTERM or SIGINT.\n"
            "  --listen defaults to tcp://127.0.0.1:7400; port 0 picks a free port.\n"
            "  --host-ttl: a host unheard of this long is shown offline (default 15).\n"
            "  --tls-cert: certificate and key (one PEM file) for a tls+tcp:// --listen.\n"
            "  --max-conns: connections at once, in total (default %d).\n"
            "  --max-conns-per-peer: connections at once from one address (default %d).\n"
            "  --idle-timeout: a connection with no request and no waiting poll this\n"
            "    long is closed (default %d).\n",
            SERVER_DEFAULT_MAX_CONNS, SERVER_DEFAULT_MAX_CONNS_PER_PEER,
            SERVER_DEFAULT_IDLE_TIMEOUT_MS / 1000);
}

/* Last resort only: the stop is bounded by construction (server.c ends
 * every context and connection before nng_close; docs/architecture.md says
 * why that order matters with nng 1.5.2). Should it still hang, everything
 * is durable by then (SQLite FULL, blobs fsync'd): say so as an error and
 * leave with a failure status, so the hang is seen rather than hidden. */
#define STOP_GRACE_S 5

static void *stop_watchdog(void *arg)
{
    (void)arg;
    struct timespec t = {STOP_GRACE_S, 0};
    nanosleep(&t, NULL);
    fprintf(stderr, "ferry-registry: error: shutdown did not finish in %ds; exiting anyway\n",
            STOP_GRACE_S);
    _exit(1);
    return NULL;
}

/* A whole number in [min, max], or a usage error: "5abc" is not 5. */
static int parse_int(const char *flag, const char *val, long min, long max, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(val, &end, 10);
    if (errno || end == val || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "ferry-registry: %s %s: expected a whole number from %ld to %ld\n", flag,
                val, min, max);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv)
{
    /* Chunk buffers are about 1 MiB: keep them on the heap for reuse rather
     * than mapping and faulting in fresh pages for every chunk. */
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 128 << 20);
    if (sodium_init() < 0) {
        fputs("ferry-registry: libsodium failed to initialise\n", stderr);
        return 1;
    }
    const char *data = NULL, *listen = NULL;
    int workers = 0, host_ttl_s = 0, max_conns = 0, max_per_peer = 0, idle_s = 0;
    const char *tls_cert = NULL;
    struct trust trust;
    trust_init(&trust);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (!val) {
            fprintf(stderr, "ferry-registry: %s: needs a value or is unknown\n", a);
            usage(stderr);
            return 2;
        }
        if (strcmp(a, "--data") == 0)
            data = val;
        else if (strcmp(a, "--listen") == 0)
            listen = val;
        else if (strcmp(a, "--workers") == 0) {
            if (parse_int(a, val, 1, 256, &workers) < 0)
                return 2;
        } else if (strcmp(a, "--tls-cert") == 0)
            tls_cert = val;
        else if (strcmp(a, "--host-ttl") == 0) {
            if (parse_int(a, val, 1, 86400, &host_ttl_s) < 0)
                return 2;
        } else if (strcmp(a, "--max-conns") == 0) {
            if (parse_int(a, val, 1, 1000000, &max_conns) < 0)
                return 2;
        } else if (strcmp(a, "--max-conns-per-peer") == 0) {
            if (parse_int(a, val, 1, 1000000, &max_per_peer) < 0)
                return 2;
        } else if (strcmp(a, "--idle-timeout") == 0) {
            if (parse_int(a, val, 1, 86400, &idle_s) < 0)
                return 2;
        } else if (strcmp(a, "--trust") == 0) {
            int rc = trust_add_file(&trust, val);
            if (rc < 0) {
                fprintf(stderr, "ferry-registry: --trust %s\n", err_message(rc));
                return 1;
            }
        } else {
            fprintf(stderr, "ferry-registry: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (!data) {
        fprintf(stderr, "ferry-registry: --data DIR is required\n");
        usage(stderr);
        return 2;
    }

    /* Block the stop signals before any thread starts, so only sigwait
     * below sees them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct registry_config cfg = {
        .data_dir = data,
        .listen_url = listen,
        .trust = &trust,
        .workers = workers,
        .host_ttl_ms = host_ttl_s * 1000,
        .tls_cert_key = tls_cert,
        .max_conns = max_conns,
        .max_conns_per_peer = max_per_peer,
        .idle_timeout_ms = idle_s * 1000,
    };
    struct registry *reg = NULL;
    int rc = registry_start(&cfg, &reg);
    if (rc < 0) {
        fprintf(stderr, "ferry-registry: %s\n", err_message(rc));
        trust_fini(&trust);
        return 1;
    }
    fprintf(stderr, "ferry-registry: listening on %s (data %s, %zu trusted key%s)\n",
            registry_url(reg), data, trust.n, trust.n == 1 ? "" : "s");
    for (size_t i = 0; i < trust.n; i++)
        fprintf(stderr, "ferry-registry: trusting key %s %s\n", trust.keys[i].id,
                trust.keys[i].name);
    fflush(stderr);

    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "ferry-registry: %s received, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    pthread_t watchdog;
    if (pthread_create(&watchdog, NULL, stop_watchdog, NULL) == 0)
        pthread_detach(watchdog);
    registry_stop(reg);
    trust_fini(&trust);
    return 0;
}
