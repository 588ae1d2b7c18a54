/* An ABI-2 plugin that uses every ABI-2 field and leaves a journal of what
 * the host did, one line per call, in $FERRY_TEST_ABI2_LOG (when set):
 *   start NAME kind=KIND_JSON spec_has_name=0|1
 *   exited STATUS state=PLUGIN_STATE
 *   adopt pid=PID state=PLUGIN_STATE
 * Its plugin_state is "name=NAME" and is all it needs after an agent
 * restart. metrics2 gives a labelled counter, a gauge and a histogram;
 * action answers "echo". */
#include <ferry/plugin.h>

#if FERRY_PLUGIN_ABI != 2
#error "abi2.c must be built against the ABI-2 header"
#endif

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct v2_run {
    struct v2_run *next;
    char name[72];
    unsigned collections;
};

/* Runs the agent still holds when it exits are not stop()ped (their
 * processes keep running): fini frees their plugin_data. Only the loop
 * thread links and unlinks. */
struct v2_state {
    const struct ferry_host *host;
    struct v2_run *runs;
};

static struct v2_state *the_state;

static void journal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void journal(const char *fmt, ...)
{
    const char *path = getenv("FERRY_TEST_ABI2_LOG");
    if (!path || !*path)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
        (void)!write(fd, line, (size_t)n);
        close(fd);
    }
}

static int v2_init(void **state, const struct ferry_host *host)
{
    if (!host || host->magic != FERRY_HOST_MAGIC || host->abi != 2)
        return -EINVAL;
    struct v2_state *s = malloc(sizeof *s);
    if (!s)
        return -ENOMEM;
    s->host = host;
    s->runs = NULL;
    the_state = s;
    *state = s;
    return 0;
}

static int run_ok(const struct ferry_run *run)
{
    return run && run->struct_size >= offsetof(struct ferry_run, plugin_state) + FERRY_PLUGIN_STATE_MAX;
}

static struct v2_run *attach(struct ferry_run *run, const char *name)
{
    struct v2_run *d = run->plugin_data;
    if (!d) {
        if (!(d = run->plugin_data = calloc(1, sizeof *d)))
            return NULL;
        d->next = the_state->runs;
        the_state->runs = d;
    }
    snprintf(d->name, sizeof d->name, "%s", name);
    snprintf(run->plugin_state, sizeof run->plugin_state, "name=%s", name);
    return d;
}

static int v2_start(void *state, const struct ferry_workload *w, struct ferry_run *run)
{
    struct v2_state *s = state;
    if (!run_ok(run) || w->struct_size < offsetof(struct ferry_workload, kind_json) + sizeof w->kind_json)
        return -EINVAL;
    if (!attach(run, w->name))
        return -ENOMEM;
    journal("start %s kind=%s spec_has_name=%d", w->name, w->kind_json ? w->kind_json : "(null)",
            w->spec_json && strstr(w->spec_json, "\"name\"") != NULL);
    return s->host->spawn(s->host->ctx, run, w->command, w->env, w->dir);
}

static int v2_stop(void *state, struct ferry_run *run, int timeout_ms)
{
    struct v2_state *s = state;
    (void)timeout_ms;
    int rc = s->host->signal(s->host->ctx, run, 15);
    for (struct v2_run **p = &s->runs; *p; p = &(*p)->next)
        if (*p == run->plugin_data) {
            *p = (*p)->next;
            break;
        }
    free(run->plugin_data);
    run->plugin_data = NULL;
    return rc == -ESRCH ? 0 : rc;
}

static int v2_health(void *state, const struct ferry_workload *w, struct ferry_run *run,
                     struct ferry_health *out)
{
    struct v2_state *s = state;
    (void)w;
    out->healthy = s->host->alive(s->host->ctx, run);
    snprintf(out->reason, sizeof out->reason, "%s", out->healthy ? "" : "process exited");
    return 0;
}

static void v2_fini(void *state)
{
    struct v2_state *s = state;
    while (s->runs) {
        struct v2_run *d = s->runs;
        s->runs = d->next;
        free(d);
    }
    free(s);
}

static int v2_exited(void *state, struct ferry_run *run, int status)
{
    (void)state;
    journal("exited %d state=%s", status, run_ok(run) ? run->plugin_state : "?");
    return 0;
}

static int v2_adopt(void *state, const struct ferry_workload *w, struct ferry_run *run)
{
    (void)state;
    if (!run_ok(run) || strncmp(run->plugin_state, "name=", 5) != 0)
        return -EINVAL; /* nothing to find it by: let the host restart it */
    journal("adopt pid=%d state=%s", run->pid, run->plugin_state);
    return attach(run, w && w->name ? w->name : run->plugin_state + 5) ? 0 : -ENOMEM;
}

static int v2_action(void *state, struct ferry_run *run, const char *verb, const char *request_json,
                     struct ferry_reply *reply)
{
    (void)state;
    if (strcmp(verb, "echo") != 0)
        return -ENOTSUP;
    char buf[4096];
    int n = snprintf(buf, sizeof buf, "{\"verb\":\"echo\",\"pid\":%d,\"request\":%s}", run->pid, request_json);
    if (n < 0 || (size_t)n >= sizeof buf)
        return -E2BIG;
    return reply->set(reply, buf, (size_t)n);
}

static int v2_metrics2(void *state, struct ferry_run *run, struct ferry_metric_sink *sink)
{
    (void)state;
    struct v2_run *d = run->plugin_data;
    const char *name = d ? d->name : "?";
    if (d)
        d->collections++;
    const char *const labels[] = {"plugin", "abi2", "workload", name, NULL};
    struct ferry_sample c = {.struct_size = sizeof c, .type = FERRY_METRIC_COUNTER,
                             .name = "abi2_collections_total", .labels = labels,
                             .value = d ? d->collections : 0};
    int rc = sink->add(sink, &c);
    struct ferry_sample g = {.struct_size = sizeof g, .type = FERRY_METRIC_GAUGE, .name = "abi2_port",
                             .value = run->port};
    if (rc == 0)
        rc = sink->add(sink, &g);
    static const double le[] = {0.1, 0.5, 1.0};
    static const uint64_t counts[] = {1, 2, 3};
    struct ferry_sample h = {.struct_size = sizeof h, .type = FERRY_METRIC_HISTOGRAM,
                             .name = "abi2_request_seconds", .value = 1.25, .count = 4,
                             .n_buckets = 3, .bucket_le = le, .bucket_count = counts};
    if (rc == 0)
        rc = sink->add(sink, &h);
    return rc;
}

static const struct ferry_plugin plugin = {
    .magic = FERRY_PLUGIN_MAGIC,
    .struct_size = sizeof(struct ferry_plugin),
    .abi = FERRY_PLUGIN_ABI,
    .name = "abi2",
    .runtimes = "abi2 oci", /* oci: a runtime with an opaque section, for the integration test */
    .init = v2_init,
    .start = v2_start,
    .stop = v2_stop,
    .health = v2_health,
    .metrics = NULL, /* optional from ABI 2 on: metrics2 says more */
    .fini = v2_fini,
    .exited = v2_exited,
    .adopt = v2_adopt,
    .action = v2_action,
    .metrics2 = v2_metrics2,
};

__attribute__((visibility("default"))) const struct ferry_plugin *ferry_plugin_entry(void) { return &plugin; }
