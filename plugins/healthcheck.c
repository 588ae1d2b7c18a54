#include "healthcheck.h"

#include <ferry/ferry.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* An HTTP check never waits longer than this, whatever the interval. */
#define HTTP_TIMEOUT_MAX_MS 2000

const char *health_why(int rc, char *buf, size_t sz)
{
    switch (rc) {
    case -ECONNREFUSED: return "connection refused";
    case -ETIMEDOUT: return "timed out";
    case -ECONNRESET: return "connection reset";
    case -ENOENT: return "not found";
    default:
        if (rc < 0 && rc > FERRY_E_BASE)
            snprintf(buf, sz, "%s", strerror(-rc));
        else
            snprintf(buf, sz, "error %d", rc);
        return buf;
    }
}

int health_alive_http(const struct ferry_host *h, const struct ferry_workload *w,
                      struct ferry_run *run, struct ferry_health *out)
{
    out->healthy = 0;
    out->reason[0] = '\0';
    if (!h->alive(h->ctx, run)) {
        snprintf(out->reason, sizeof out->reason, "process exited");
        return 1;
    }
    if (!w->health_http_path)
        return 0;
    int timeout = w->health_interval_ms && w->health_interval_ms < HTTP_TIMEOUT_MAX_MS
                      ? (int)w->health_interval_ms
                      : HTTP_TIMEOUT_MAX_MS;
    int status = 0;
    char buf[128];
    int rc = h->http_get(h->ctx, run->port, w->health_http_path, timeout, &status);
    if (rc < 0)
        snprintf(out->reason, sizeof out->reason, "GET %s: %s", w->health_http_path,
                 health_why(rc, buf, sizeof buf));
    else if (status != w->health_http_status)
        snprintf(out->reason, sizeof out->reason, "GET %s: status %d, want %d", w->health_http_path,
                 status, w->health_http_status);
    else
        out->healthy = 1;
    return 1;
}

void health_command_result(int rc, int status, int timeout_ms, struct ferry_health *out)
{
    char buf[128];
    if (rc == -ETIMEDOUT)
        snprintf(out->reason, sizeof out->reason, "health command timed out after %d ms", timeout_ms);
    else if (rc < 0)
        snprintf(out->reason, sizeof out->reason, "health command: %s", health_why(rc, buf, sizeof buf));
    else if (status != 0)
        snprintf(out->reason, sizeof out->reason, "health command exited %d", status);
    else
        out->healthy = 1;
}
