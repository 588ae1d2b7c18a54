/* A well-formed plugin whose constructor leaves a trace: it creates the
 * file named by $FERRY_TEST_MARKER as soon as the library is loaded, before
 * the host has looked at anything of it. A test that refuses it must find
 * no marker, which proves the refusal came before dlopen. */
#include <ferry/plugin.h>

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((constructor)) static void leave_marker(void)
{
    const char *path = getenv("FERRY_TEST_MARKER");
    if (!path || !*path)
        return;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
        (void)!write(fd, "loaded\n", 7);
        close(fd);
    }
}

static int m_init(void **state, const struct ferry_host *host)
{
    (void)host;
    *state = NULL;
    return 0;
}

static int m_start(void *state, const struct ferry_workload *w, struct ferry_run *run)
{
    (void)state;
    (void)w;
    (void)run;
    return -1;
}

static int m_stop(void *state, struct ferry_run *run, int timeout_ms)
{
    (void)state;
    (void)run;
    (void)timeout_ms;
    return 0;
}

static int m_health(void *state, const struct ferry_workload *w, struct ferry_run *run,
                    struct ferry_health *out)
{
    (void)state;
    (void)w;
    (void)run;
    out->healthy = 0;
    return 0;
}

static int m_metrics(void *state, struct ferry_run *run, struct ferry_metrics *out)
{
    (void)state;
    (void)run;
    out->count = 0;
    return 0;
}

static void m_fini(void *state) { (void)state; }

static const struct ferry_plugin marker = {
    .magic = FERRY_PLUGIN_MAGIC,
    .struct_size = sizeof(struct ferry_plugin),
    .abi = FERRY_PLUGIN_ABI,
    .name = "marker",
    .runtimes = "marker",
    .init = m_init,
    .start = m_start,
    .stop = m_stop,
    .health = m_health,
    .metrics = m_metrics,
    .fini = m_fini,
};

__attribute__((visibility("default"))) const struct ferry_plugin *ferry_plugin_entry(void)
{
    return &marker;
}
