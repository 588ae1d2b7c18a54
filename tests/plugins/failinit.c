/* Well-formed, but init refuses (say, its runtime binary is missing). */
#include <ferry/plugin.h>

#include <errno.h>

static int fail_init(void **state, const struct ferry_host *host)
{
    (void)state;
    (void)host;
    return -EACCES;
}
static int fail_start(void *s, const struct ferry_workload *w, struct ferry_run *r)
{
    (void)s, (void)w, (void)r;
    return -ENOSYS;
}
static int fail_stop(void *s, struct ferry_run *r, int t)
{
    (void)s, (void)r, (void)t;
    return -ENOSYS;
}
static int fail_health(void *s, const struct ferry_workload *w, struct ferry_run *r, struct ferry_health *o)
{
    (void)s, (void)w, (void)r, (void)o;
    return -ENOSYS;
}
static int fail_metrics(void *s, struct ferry_run *r, struct ferry_metrics *o)
{
    (void)s, (void)r, (void)o;
    return -ENOSYS;
}
static void fail_fini(void *s) { (void)s; }

static const struct ferry_plugin plugin = {
    .magic = FERRY_PLUGIN_MAGIC,
    .struct_size = sizeof(struct ferry_plugin),
    .abi = FERRY_PLUGIN_ABI,
    .name = "failinit",
    .runtimes = "failinit",
    .init = fail_init,
    .start = fail_start,
    .stop = fail_stop,
    .health = fail_health,
    .metrics = fail_metrics,
    .fini = fail_fini,
};

__attribute__((visibility("default"))) const struct ferry_plugin *ferry_plugin_entry(void) { return &plugin; }
