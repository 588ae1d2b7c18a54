#include "plugincall.h"
#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VERB_MAX 64
#define REQUEST_MAX (64u << 10)

struct call {
    uv_work_t work;
    const struct plugin_slot *s;
    struct ferry_run *run;
    int is_action, status, rc;
    char verb[VERB_MAX];
    char *request;
    char *reply;
    size_t reply_len;
    char detail[512];
    plugincall_done_fn done;
    void *arg;
};

static void call_work(uv_work_t *w)
{
    struct call *c = w->data;
    err_clear();
    if (c->is_action)
        c->rc = pluginhost_action(c->s, c->run, c->verb, c->request, &c->reply, &c->reply_len);
    else
        c->rc = pluginhost_exited(c->s, c->run, c->status);
    snprintf(c->detail, sizeof c->detail, "%s", c->rc < 0 ? err_detail() : "");
}

static void call_after(uv_work_t *w, int status)
{
    struct call *c = w->data;
    if (status < 0 && c->rc == 0)
        c->rc = status; /* cancelled: the plugin was not called */
    c->done(c->arg, c->rc, c->reply, c->reply_len, c->detail);
    free(c->request);
    free(c);
}

static int queue(uv_loop_t *loop, struct call *c)
{
    c->work.data = c;
    int rc = uv_queue_work(loop, &c->work, call_work, call_after);
    if (rc < 0) {
        free(c->request);
        free(c);
        return err_set(rc, "cannot queue a plugin call: %s", uv_strerror(rc));
    }
    return 0;
}

int plugincall_exited(uv_loop_t *loop, const struct plugin_slot *s, struct ferry_run *run, int status,
                      plugincall_done_fn done, void *arg)
{
    if (!loop || !s || !run || !done)
        return err_set(-EINVAL, "plugincall_exited: NULL argument");
    struct call *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->s = s;
    c->run = run;
    c->status = status;
    c->done = done;
    c->arg = arg;
    return queue(loop, c);
}

int plugincall_action(uv_loop_t *loop, const struct plugin_slot *s, struct ferry_run *run, const char *verb,
                      const char *request_json, plugincall_done_fn done, void *arg)
{
    if (!loop || !s || !run || !verb || !done)
        return err_set(-EINVAL, "plugincall_action: NULL argument");
    size_t vl = strlen(verb);
    if (vl == 0 || vl >= VERB_MAX)
        return err_set(FERRY_E_INVALID, "action verb must be 1-%d bytes", VERB_MAX - 1);
    const char *req = request_json ? request_json : "{}";
    size_t rl = strlen(req);
    if (rl > REQUEST_MAX)
        return err_set(FERRY_E_LIMIT, "action %s: request of %zu bytes, at most %u", verb, rl, REQUEST_MAX);
    struct call *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    if (!(c->request = strdup(req))) {
        free(c);
        return -ENOMEM;
    }
    memcpy(c->verb, verb, vl + 1);
    c->s = s;
    c->run = run;
    c->is_action = 1;
    c->done = done;
    c->arg = arg;
    return queue(loop, c);
}
