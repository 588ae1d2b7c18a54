/* A well-formed plugin that records what the host did for the test. Its
 * start() asks the host to spawn, so the test can see the host table
 * reached it intact. */
#include <ferry/plugin.h>

#include <errno.h>
#include <stdlib.h>

struct good_state {
    const struct ferry_host *host;
};

static int good_init(void **state, const struct ferry_host *host)
{
    if (!host || host->magic != FERRY_HOST_MAGIC)
        return -EINVAL;
    struct good_state *s = malloc(sizeof *s);
    if (!s)
        return -ENOMEM;
    s->host = host;
    *state = s;
    return 0;
}

static int good_start(void *state, const struct ferry_workload *w, struct ferry_run *run)
{
    struct good_state *s = state;
    return s->host->spawn(s->host->ctx, run, w->command, w->env, w->dir);
}

static int good_stop(void *state, struct ferry_run *run, int timeout_ms)
{
    struct good_state *s = state;
    (void)timeout_ms;
    return s->host->signal(s->host->ctx, run, 15);
}

static int good_health(void *state, const struct ferry_workload *w, struct ferry_run *run,
                       struct ferry_health *out)
{
    (void)state;
    (void)w;
    (void)run;
    out->healthy = 1;
    out->reason[0] = '\0';
    return 0;
}

static int good_metrics(void *state, struct ferry_run *run, struct ferry_metrics *out)
{
    (void)state;
    (void)run;
    out->count = 0;
    return 0;
}

static void good_fini(void *state) { free(state); }

static const struct ferry_plugin good = {
    .magic = FERRY_PLUGIN_MAGIC,
    .struct_size = sizeof(struct ferry_plugin),
    .abi = FERRY_PLUGIN_ABI,
    .name = "good",
    .runtimes = "good  test",
    .init = good_init,
    .start = good_start,
    .stop = good_stop,
    .health = good_health,
    .metrics = good_metrics,
    .fini = good_fini,
};

__attribute__((visibility("default"))) const struct ferry_plugin *ferry_plugin_entry(void) { return &good; }
