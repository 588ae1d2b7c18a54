/* ferry-agent: argument parsing only; the engine is agent.c. */
#include "agent.h"
#include "alog.h"
#include "error.h"
#include "jointoken.h"
#include "metrics.h"
#include "numparse.h"

#include <arpa/inet.h>
#include <malloc.h>
#include <nng/nng.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Without --plugins: the installed folder, else one next to this binary
 * (an install under another prefix, or the build tree). */
static const char *default_plugins_dir(void)
{
    static char found[4200];
    struct stat st;
    if (stat(FERRY_PLUGIN_DIR, &st) == 0 && S_ISDIR(st.st_mode))
        return FERRY_PLUGIN_DIR;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        const char *rel[] = {"../lib/ferry/plugins", "../plugins"};
        for (size_t i = 0; i < 2; i++) {
            snprintf(found, sizeof found, "%s/%s", exe, rel[i]);
            if (stat(found, &st) == 0 && S_ISDIR(st.st_mode))
                return found;
        }
    }
    return FERRY_PLUGIN_DIR;
}

/* The HOST of a registry URL: an IPv4 or IPv6 address, or a host name made
 * of dot-separated labels (letters, digits, '-' and '_' inside, 1-63 bytes
 * each, 253 in all) whose last label is not all digits, so that a mistyped
 * address such as 999.1.1.1 is refused rather than looked up forever. */
static int registry_host_ok(const char *h)
{
    char buf[256];
    size_t n = strlen(h);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') { /* nng may keep the brackets */
        if (n - 2 >= sizeof buf)
            return 0;
        memcpy(buf, h + 1, n - 2);
        buf[n - 2] = '\0';
        h = buf;
        n -= 2;
    }
    struct in6_addr a6;
    struct in_addr a4;
    if (inet_pton(AF_INET, h, &a4) == 1 || inet_pton(AF_INET6, h, &a6) == 1)
        return 1;
    if (n == 0 || n > 253)
        return 0;
    size_t start = 0;
    int all_digits = 1;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || h[i] == '.') {
            size_t len = i - start;
            if (len == 0 || len > 63 || h[start] == '-' || h[i - 1] == '-')
                return 0;
            if (i == n && all_digits)
                return 0;
            start = i + 1;
            all_digits = 1;
            continue;
        }
        char c = h[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
        if (c < '0' || c > '9')
            all_digits = 0;
    }
    return 1;
}

/* A registry URL the agent can dial: tcp://HOST:PORT, tls+tcp://HOST:PORT
 * (tcp4/tcp6 variants too) or ipc://PATH. Checked at start so a typo stops
 * the agent with one line instead of retrying forever. */
static int registry_url_check(const char *url)
{
    static const char *const schemes[] = {"tcp", "tcp4", "tcp6", "tls+tcp", "tls+tcp4",
                                          "tls+tcp6", "ipc"};
    nng_url *u = NULL;
    if (nng_url_parse(&u, url) != 0)
        return err_set(FERRY_E_INVALID, "'%s': not a URL (expected tcp://HOST:PORT)", url);
    int known = 0;
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
        known |= strcmp(u->u_scheme, schemes[i]) == 0;
    int rc = 0;
    if (!known) {
        rc = err_set(FERRY_E_INVALID,
                     "'%s': scheme '%s' is not supported (tcp://, tls+tcp:// or ipc://)", url,
                     u->u_scheme);
    } else if (strcmp(u->u_scheme, "ipc") == 0) {
        if (!u->u_path || !*u->u_path)
            rc = err_set(FERRY_E_INVALID, "'%s': ipc:// needs a path", url);
    } else {
        char *end = NULL;
        unsigned long port = u->u_port && *u->u_port ? strtoul(u->u_port, &end, 10) : 0;
        if (!u->u_hostname || !*u->u_hostname)
            rc = err_set(FERRY_E_INVALID, "'%s': no host (expected %s://HOST:PORT)", url,
                         u->u_scheme);
        else if (!registry_host_ok(u->u_hostname))
            rc = err_set(FERRY_E_INVALID, "'%s': '%s' is not a host name or an IP address", url,
                         u->u_hostname);
        else if (port == 0 || port > 65535 || (end && *end) ||
                 (u->u_path && *u->u_path && strcmp(u->u_path, "/") != 0))
            rc = err_set(FERRY_E_INVALID, "'%s': expected %s://HOST:PORT with a port 1-65535",
                         url, u->u_scheme);
    }
    nng_url_free(u);
    return rc;
}

/* Host names and IP addresses: letters, digits, '.', '-', ':' (IPv6). */
static int advertise_ok(const char *a)
{
    size_t n = strlen(a);
    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((a[i] >= 'a' && a[i] <= 'z') || (a[i] >= 'A' && a[i] <= 'Z') ||
              (a[i] >= '0' && a[i] <= '9') || a[i] == '.' || a[i] == '-' || a[i] == ':'))
            return 0;
    return 1;
}

static void usage(FILE *f)
{
    fputs("usage: ferry-agent --registry URL --state DIR [--name NAME] [--label KEY=VALUE ...]\n"
          "                   [--trust FILE.pub ...] [--trust-admin FILE.pub ...]\n"
          "                   [--operator FILE.pub ...]\n"
          "                   [--trust-logs FILE.pub ...]\n"
          "                   [--plugins DIR] [--join-token FILE]\n"
          "                   [--advertise ADDR] [--metrics-interval DURATION] [--verbose]\n"
          "                   [--trust-registry FILE.pub]\n"
          "                   [--oci-runtime PATH] [--oci-root DIR]\n"
          "                   [--version]\n"
          "  Runs in the foreground; SIGTERM or SIGINT stop the agent and leave the\n"
          "  workloads running. --plugins defaults to " FERRY_PLUGIN_DIR ".\n"
          "  --join-token: a token from 'ferry hosts token' that enrolls this host.\n"
          "  --advertise: the address workloads are reached at (default 127.0.0.1).\n"
          "  --metrics-interval: how often plugins are asked for metrics (1s to 1h,\n"
          "  default 10s).\n"
          "  --trust-registry: the registry's key (its DATA/registry.pub); without it the\n"
          "  first key seen is pinned in STATE/registry.pub and any other refused.\n"
          "  --trust-admin: verify the registry's governance policy against these admin\n"
          "  keys, and its rules for this host's environment, before running anything.\n"
          "  --operator: without a policy, a key that may act on kernels other keys\n"
          "  started (with a policy: its operators that are not limited to kinds).\n"
          "  --trust-logs: keys that may read workload output (the logs action) and do\n"
          "  nothing else; for a registry whose dashboard shows log tails\n"
          "  (ferry-registry --http-logs-key).\n"
          "  --oci-runtime: the OCI runtime containers run under (default runc on PATH).\n"
          "  --oci-root: its state folder (runc --root; default STATE/oci, absolute).\n",
          f);
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0) {
        fputs("ferry-agent: libsodium failed to initialise\n", stderr);
        return 1;
    }
    /* Small footprint: chunk buffers are reused, and the heap is trimmed. */
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    mallopt(M_ARENA_MAX, 2);
    struct agent_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.plugins_dir = default_plugins_dir();
    struct trust trust;
    trust_init(&trust);
    cfg.trust = &trust;
    static struct trust admins; /* --trust-admin (governance) */
    trust_init(&admins);
    static struct trust operators; /* --operator (plugin verbs, without a policy) */
    trust_init(&operators);
    static struct trust trust_logs; /* --trust-logs */
    trust_init(&trust_logs);
    cfg.trust_logs = &trust_logs;
    static char hostname[72];
    static struct key_public registry_key;
    uint8_t *token = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--version") == 0) {
            printf("ferry-agent %s\n", FERRY_VERSION);
            return 0;
        }
        if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            alog_set_level(FERRY_LOG_DEBUG);
            continue;
        }
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!val) {
            fprintf(stderr, "ferry-agent: %s: needs a value or is unknown\n", a);
            usage(stderr);
            return 2;
        }
        int rc = 0;
        if (strcmp(a, "--registry") == 0)
            cfg.registry_url = val;
        else if (strcmp(a, "--state") == 0)
            cfg.state_dir = val;
        else if (strcmp(a, "--name") == 0)
            cfg.name = val;
        else if (strcmp(a, "--plugins") == 0)
            cfg.plugins_dir = val;
        else if (strcmp(a, "--advertise") == 0) {
            if (!advertise_ok(val)) {
                fprintf(stderr, "ferry-agent: --advertise '%s': expected a host name or an IP "
                                "address\n", val);
                return 2;
            }
            cfg.advertise = val;
            /* Plugins that open ports themselves (notebook kernels) read it. */
            setenv("FERRY_ADVERTISE", val, 1);
        }
        else if (strcmp(a, "--oci-runtime") == 0)
            setenv("FERRY_OCI_RUNTIME", val, 1); /* read by the oci plugin */
        else if (strcmp(a, "--oci-root") == 0) {
            if (val[0] != '/') {
                fprintf(stderr, "ferry-agent: --oci-root '%s': must be an absolute path\n", val);
                return 2;
            }
            setenv("FERRY_OCI_ROOT", val, 1);
        }
        else if (strcmp(a, "--label") == 0)
            rc = labels_add(&cfg.labels, val);
        else if (strcmp(a, "--trust") == 0)
            rc = trust_add_file(&trust, val);
        else if (strcmp(a, "--trust-registry") == 0) {
            if ((rc = key_load_public(val, &registry_key)) == 0)
                cfg.trust_registry = &registry_key;
        } else if (strcmp(a, "--operator") == 0) {
            rc = trust_add_file(&operators, val);
            cfg.operators = &operators;
        } else if (strcmp(a, "--trust-logs") == 0) {
            rc = trust_add_file(&trust_logs, val);
        } else if (strcmp(a, "--trust-admin") == 0) {
            rc = trust_add_file(&admins, val);
            cfg.admins = &admins;
        }
        else if (strcmp(a, "--metrics-interval") == 0) {
            uint64_t ms = 0;
            if (num_parse_duration_ms("--metrics-interval", val, 1000, METRICS_MIN_INTERVAL_MS,
                                      METRICS_MAX_INTERVAL_MS, &ms) < 0) {
                fprintf(stderr, "ferry-agent: %s\n", err_detail());
                return 2;
            }
            cfg.metrics_interval_ms = (uint32_t)ms;
        } else if (strcmp(a, "--join-token") == 0) {
            free(token);
            token = NULL;
            if ((rc = jointoken_load(val, &token, &cfg.join_token_len)) < 0) {
                fprintf(stderr, "ferry-agent: --join-token %s\n", err_message(rc));
                return 2;
            }
            cfg.join_token = token;
        } else {
            fprintf(stderr, "ferry-agent: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        if (rc < 0) {
            fprintf(stderr, "ferry-agent: %s %s: %s\n", a, val, err_message(rc));
            return 2;
        }
        i++;
    }
    if (!cfg.registry_url || !cfg.state_dir) {
        fprintf(stderr, "ferry-agent: --registry URL and --state DIR are required\n");
        usage(stderr);
        return 2;
    }
    if (registry_url_check(cfg.registry_url) < 0) {
        fprintf(stderr, "ferry-agent: --registry %s\n", err_detail());
        trust_fini(&trust);
        free(token);
        return 2;
    }
    /* The oci plugin's runtime state lives with the agent's by default, so
     * an agent finds its containers again after a restart and never
     * touches another's. */
    if (!getenv("FERRY_OCI_ROOT") || !getenv("FERRY_OCI_ROOT")[0]) {
        char cwd[4096] = "", oci_root[8400];
        if (cfg.state_dir[0] == '/' || getcwd(cwd, sizeof cwd)) {
            snprintf(oci_root, sizeof oci_root, "%s%s%s/oci", cfg.state_dir[0] == '/' ? "" : cwd,
                     cfg.state_dir[0] == '/' ? "" : "/", cfg.state_dir);
            setenv("FERRY_OCI_ROOT", oci_root, 1);
        }
    }
    if (!cfg.name) {
        if (gethostname(hostname, sizeof hostname - 1) < 0)
            snprintf(hostname, sizeof hostname, "host");
        cfg.name = hostname;
    }
    uint64_t hb = 0, cap = 0, timeout = 0;
    /* FERRY_TIMEOUT_MS is read by every registry client: checked here so a
     * bad value stops the agent at start rather than failing each call. */
    if (num_env_u64("FERRY_AGENT_HEARTBEAT_MS", 0, 1, 86400000, &hb) < 0 ||
        num_env_u64("FERRY_AGENT_LOG_CAP", 0, 1, UINT64_MAX, &cap) < 0 ||
        num_env_u64("FERRY_TIMEOUT_MS", 60000, 1, INT32_MAX, &timeout) < 0) {
        fprintf(stderr, "ferry-agent: %s\n", err_detail());
        trust_fini(&trust);
        return 2;
    }
    cfg.heartbeat_ms = (uint32_t)hb; /* 0: the default */
    cfg.log_cap_bytes = cap;
    signal(SIGPIPE, SIG_IGN);
    int rc = agent_run(&cfg);
    trust_fini(&trust);
    trust_fini(&admins);
    trust_fini(&operators);
    free(token);
    if (rc < 0) {
        fprintf(stderr, "ferry-agent: %s\n", err_message(rc));
        return 1;
    }
    return 0;
}
