/* ferry-registry: argument parsing and signals only; the engine is
 * registry.c. */
#include "error.h"
#include "http.h"
#include "key.h"
#include "numparse.h"
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
            "                      [--workers N] [--host-ttl DURATION] [--tls-cert FILE.pem]\n"
            "                      [--max-blob-size SIZE] [--max-conns N]\n"
            "                      [--max-conns-per-peer N] [--idle-timeout DURATION]\n"
            "                      [--desired-ttl DURATION]\n"
            "                      [--policy FILE [--trust-admin FILE.pub ...]]\n"
            "                      [--http ADDR:PORT|off] [--http-token FILE]\n"
            "                      [--http-assets DIR] [--http-logs-key FILE]\n"
            "                      [--version]\n"
            "  Serves artifacts in the foreground until SIGTERM or SIGINT.\n"
            "  --listen defaults to tcp://127.0.0.1:7400; port 0 picks a free port.\n"
            "  --host-ttl: a host unheard of this long is shown offline (default 15s;\n"
            "    bare digits are seconds, or 500ms, 30s, 5m, 2h).\n"
            "  --tls-cert: certificate and key (one PEM file) for a tls+tcp:// --listen.\n"
            "  --max-blob-size: largest file a publish may claim, bytes or with K, M, G, T\n"
            "    (powers of 1024; default 64G).\n"
            "  --max-conns: connections at once, in total (default %d).\n"
            "  --max-conns-per-peer: connections at once from one address (default %d).\n"
            "  --idle-timeout: a connection with no request and no waiting poll this\n"
            "    long is closed (default %ds).\n"
            "  --desired-ttl: how long a host's signed desired state is valid (default 24h;\n"
            "    at least 2s); a fresh one goes out once half of it has passed.\n"
            "  --policy: the governance policy (docs/governance.md); FILE.sig beside it\n"
            "    must be signed by a key the policy names as admin and, with\n"
            "    --trust-admin, that is one of those (without it the policy's own admins\n"
            "    anchor it). Without --policy every trusted key may do everything.\n"
            "  --http: the read-only HTTP side (dashboard, /api/v1, /metrics; default\n"
            "    %s; port 0 picks a free port; off: none). An address other than\n"
            "    loopback needs --http-token FILE (one line); requests must then carry\n"
            "    Authorization: Bearer TOKEN.\n"
            "  --http-assets: the dashboard's files (index.html and its assets); default:\n"
            "    web/ beside this binary, else ../share/ferry/web from it.\n"
            "  --http-logs-key: a key the agents take for logs actions only (their\n"
            "    --trust-logs); the dashboard then shows log tails (docs/dashboard.md).\n",
            SERVER_DEFAULT_MAX_CONNS, SERVER_DEFAULT_MAX_CONNS_PER_PEER,
            SERVER_DEFAULT_IDLE_TIMEOUT_MS / 1000, HTTP_DEFAULT_LISTEN);
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

/* Strict numbers (numparse): "5abc" is a usage error, never 5. */
static int int_flag(const char *flag, const char *val, uint64_t min, uint64_t max, int *out)
{
    uint64_t v = 0;
    if (num_parse_u64(flag, val, min, max, &v) < 0) {
        fprintf(stderr, "ferry-registry: %s\n", err_detail());
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* A duration flag; bare digits are seconds, as these flags have always taken. */
static int ms_flag(const char *flag, const char *val, uint64_t max_ms, int *out)
{
    uint64_t v = 0;
    if (num_parse_duration_ms(flag, val, 1000, 1, max_ms, &v) < 0) {
        fprintf(stderr, "ferry-registry: %s\n", err_detail());
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
    uint64_t desired_ttl_ms = 0;
    int workers = 0, host_ttl_ms = 0, max_conns = 0, max_per_peer = 0, idle_ms = 0;
    const char *tls_cert = NULL;
    uint64_t max_blob_size = 0;
    struct trust trust, admins;
    trust_init(&trust);
    trust_init(&admins);
    const char *policy = NULL;
    const char *http_listen = HTTP_DEFAULT_LISTEN, *http_token = NULL, *http_assets = NULL,
               *http_logs_key = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--version") == 0) {
            printf("ferry-registry %s\n", FERRY_VERSION);
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
            if (int_flag(a, val, 1, 256, &workers) < 0)
                return 2;
        } else if (strcmp(a, "--host-ttl") == 0) {
            if (ms_flag(a, val, 86400000, &host_ttl_ms) < 0)
                return 2;
        } else if (strcmp(a, "--tls-cert") == 0) {
            tls_cert = val;
        } else if (strcmp(a, "--max-blob-size") == 0) {
            if (num_parse_size(a, val, 1, UINT64_MAX, &max_blob_size) < 0) {
                fprintf(stderr, "ferry-registry: %s\n", err_detail());
                return 2;
            }
        } else if (strcmp(a, "--max-conns") == 0) {
            if (int_flag(a, val, 1, 1000000, &max_conns) < 0)
                return 2;
        } else if (strcmp(a, "--max-conns-per-peer") == 0) {
            if (int_flag(a, val, 1, 1000000, &max_per_peer) < 0)
                return 2;
        } else if (strcmp(a, "--idle-timeout") == 0) {
            if (ms_flag(a, val, 86400000, &idle_ms) < 0)
                return 2;
        } else if (strcmp(a, "--desired-ttl") == 0) {
            if (num_parse_duration_ms(a, val, 1000, 2000, 366ULL * 86400000, &desired_ttl_ms) <
                0) {
                fprintf(stderr, "ferry-registry: %s\n", err_detail());
                return 2;
            }
        } else if (strcmp(a, "--http") == 0) {
            http_listen = val;
        } else if (strcmp(a, "--http-token") == 0) {
            http_token = val;
        } else if (strcmp(a, "--http-logs-key") == 0) {
            http_logs_key = val;
        } else if (strcmp(a, "--http-assets") == 0) {
            http_assets = val;
        } else if (strcmp(a, "--policy") == 0) {
            policy = val;
        } else if (strcmp(a, "--trust-admin") == 0) {
            int rc = trust_add_file(&admins, val);
            if (rc < 0) {
                fprintf(stderr, "ferry-registry: --trust-admin %s\n", err_message(rc));
                return 1;
            }
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
        .policy_path = policy,
        .admin_anchors = admins.n ? &admins : NULL,
        .workers = workers,
        .host_ttl_ms = host_ttl_ms,
        .tls_cert_key = tls_cert,
        .max_blob_size = max_blob_size,
        .max_conns = max_conns,
        .max_conns_per_peer = max_per_peer,
        .idle_timeout_ms = idle_ms,
        .desired_ttl_ms = (int64_t)desired_ttl_ms,
        .http_listen = http_listen,
        .http_token_file = http_token,
        .http_assets = http_assets,
        .http_logs_key = http_logs_key,
    };
    struct registry *reg = NULL;
    int rc = registry_start(&cfg, &reg);
    if (rc < 0) {
        fprintf(stderr, "ferry-registry: %s\n", err_message(rc));
        trust_fini(&trust);
        trust_fini(&admins);
        return 1;
    }
    /* With a policy the keys that may act are the policy's (its own line
     * above counts them); --trust then only anchors its admin, so "0 trusted
     * keys" would read as a registry that refuses everything. */
    if (policy)
        fprintf(stderr, "ferry-registry: listening on %s (data %s, keys from policy %s)\n",
                registry_url(reg), data, policy);
    else
        fprintf(stderr, "ferry-registry: listening on %s (data %s, %zu trusted key%s)\n",
                registry_url(reg), data, trust.n, trust.n == 1 ? "" : "s");
    for (size_t i = 0; i < trust.n; i++)
        fprintf(stderr, "ferry-registry: trusting key %s %s\n", trust.keys[i].id,
                trust.keys[i].name);
    if (registry_http_url(reg))
        fprintf(stderr, "ferry-registry: http listening on %s%s\n", registry_http_url(reg),
                http_token ? " (bearer token required)" : "");
    fflush(stderr);

    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "ferry-registry: %s received, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    pthread_t watchdog;
    if (pthread_create(&watchdog, NULL, stop_watchdog, NULL) == 0)
        pthread_detach(watchdog);
    registry_stop(reg);
    trust_fini(&trust);
    trust_fini(&admins);
    return 0;
}
