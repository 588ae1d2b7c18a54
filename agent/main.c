/* ferry-agent: argument parsing only; the engine is agent.c. */
#include "agent.h"
#include "alog.h"
#include "error.h"
#include "jointoken.h"
#include "numparse.h"

#include <malloc.h>
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

static void usage(FILE *f)
{
    fputs("usage: ferry-agent --registry URL --state DIR [--name NAME] [--label KEY=VALUE ...]\n"
          "                   [--trust FILE.pub ...] [--plugins DIR] [--join-token FILE]\n"
          "                   [--verbose]\n"
          "  Runs in the foreground; SIGTERM or SIGINT stop the agent and leave the\n"
          "  workloads running. --plugins defaults to " FERRY_PLUGIN_DIR ".\n"
          "  --join-token: a token from 'ferry hosts token' that enrolls this host.\n",
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
    static char hostname[72];
    uint8_t *token = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
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
        else if (strcmp(a, "--label") == 0)
            rc = labels_add(&cfg.labels, val);
        else if (strcmp(a, "--trust") == 0)
            rc = trust_add_file(&trust, val);
        else if (strcmp(a, "--join-token") == 0) {
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
    if (trust.n == 0)
        fprintf(stderr, "ferry-agent: warning: no --trust keys: every deployment will be refused\n");
    signal(SIGPIPE, SIG_IGN);
    int rc = agent_run(&cfg);
    trust_fini(&trust);
    free(token);
    if (rc < 0) {
        fprintf(stderr, "ferry-agent: %s\n", err_message(rc));
        return 1;
    }
    return 0;
}
