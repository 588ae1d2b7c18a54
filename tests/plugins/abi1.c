/* A plugin built against the ABI-1 header kept verbatim in
 * tests/plugins/abi1/ferry/plugin.h: what a third party compiled before
 * ABI 2 existed. It must load and run unchanged. Like the exec plugin of
 * that time it insists on host->abi == FERRY_PLUGIN_ABI (1 in its header),
 * and it reports one untyped metric. */
#include <ferry/plugin.h>

#if FERRY_PLUGIN_ABI != 1
#error "abi1.c must be built against the ABI-1 header"
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct v1_state {
    const struct ferry_host *host;
};

static int v1_init(void **state, const struct ferry_host *host)
{
    if (!host || host->magic != FERRY_HOST_MAGIC || host->abi != FERRY_PLUGIN_ABI ||
        host->struct_size < sizeof(struct ferry_host))
        return -EINVAL;
    struct v1_state *s = malloc(sizeof *s);
    if (!s)
        return -ENOMEM;
    s->host = host;
    *state = s;
    return 0;
}

static int v1_start(void *state, const struct ferry_workload *w, struct ferry_run *run)
{
    struct v1_state *s = state;
    return s->host->spawn(s->host->ctx, run, w->command, w->env, w->dir);
}

static int v1_stop(void *state, struct ferry_run *run, int timeout_ms)
{
    struct v1_state *s = state;
    (void)timeout_ms;
    int rc = s->host->signal(s->host->ctx, run, 15);
    return rc == -ESRCH ? 0 : rc;
}

static int v1_health(void *state, const struct ferry_workload *w, struct ferry_run *run,
                     struct ferry_health *out)
{
    struct v1_state *s = state;
    (void)w;
    out->healthy = s->host->alive(s->host->ctx, run);
    snprintf(out->reason, sizeof out->reason, "%s", out->healthy ? "" : "process exited");
    return 0;
}

static int v1_metrics(void *state, struct ferry_run *run, struct ferry_metrics *out)
{
    (void)state;
    if (out->struct_size < sizeof *out)
        return -EINVAL;
    out->count = 1;
    snprintf(out->items[0].name, sizeof out->items[0].name, "abi1_port");
    out->items[0].value = run->port;
    return 0;
}

static void v1_fini(void *state) { free(state); }

static const struct ferry_plugin plugin = {
    .magic = FERRY_PLUGIN_MAGIC,
    .struct_size = sizeof(struct ferry_plugin),
    .abi = FERRY_PLUGIN_ABI,
    .name = "abi1",
    .runtimes = "abi1 notebook", /* notebook: a runtime ferry.yaml accepts, for the integration test */
    .init = v1_init,
    .start = v1_start,
    .stop = v1_stop,
    .health = v1_health,
    .metrics = v1_metrics,
    .fini = v1_fini,
};

__attribute__((visibility("default"))) const struct ferry_plugin *ferry_plugin_entry(void) { return &plugin; }
