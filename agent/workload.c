#include "workload.h"
#include "error.h"
#include "specjson.h"
#include "ocijson.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char **strv_from(char **items, size_t n)
{
    const char **v = calloc(n + 1, sizeof *v);
    if (v)
        for (size_t i = 0; i < n; i++)
            v[i] = items[i];
    return v;
}

/* A notebook that names its .ipynb is run to completion by the notebook
 * plugin (docs/notebooks.md): the agent supervises it as a job, with
 * notebook.schedule as its schedule. A notebook without one is a kernel
 * environment, a service. */
static bool notebook_run(const Ferry__Spec *spec)
{
    return spec->notebook && spec->notebook->notebook && *spec->notebook->notebook;
}

void workload_fini(struct ferry_workload *w)
{
    free((void *)w->command);
    free((void *)w->env);
    free((void *)w->health_command);
    free((void *)w->spec_json);
    free((void *)w->kind_json);
    memset(w, 0, sizeof *w);
}

int workload_build(const Ferry__Spec *spec, const char *name, const char *version,
                   const char *dir, uint32_t stop_timeout_ms, struct ferry_workload *w,
                   struct sup_policy *pol)
{
    workload_fini(w);
    w->struct_size = sizeof *w;
    w->name = name;
    w->version = version;
    w->kind = spec->kind;
    w->runtime = spec->runtime;
    w->dir = dir;
    const Ferry__Run *run = spec->run;
    w->command = run ? strv_from(run->command, run->n_command) : strv_from(NULL, 0);
    /* run.env, then notebook.env (docs/notebooks.md): the notebook plugin
     * hands both to its holder, its kernels and its runs. A name in both
     * takes notebook.env's value. */
    const Ferry__NotebookSpec *nb = spec->notebook;
    size_t nrun = run ? run->n_env : 0, nnb = nb ? nb->n_env : 0;
    Ferry__EnvVar **ev = calloc(nrun + nnb + 1, sizeof *ev);
    size_t nenv = 0;
    for (size_t i = 0; ev && i < nrun; i++) {
        bool over = false;
        for (size_t j = 0; j < nnb && !over; j++)
            over = strcmp(run->env[i]->name, nb->env[j]->name) == 0;
        if (!over)
            ev[nenv++] = run->env[i];
    }
    for (size_t j = 0; ev && j < nnb; j++)
        ev[nenv++] = nb->env[j];
    /* One block: the pointer array, then the "K=V" strings it points to. */
    size_t bytes = (nenv + 1) * sizeof(char *);
    for (size_t i = 0; i < nenv; i++)
        bytes += strlen(ev[i]->name) + strlen(ev[i]->value) + 2;
    char **envs = ev ? malloc(bytes) : NULL;
    if (!w->command || !envs) {
        free(envs);
        free(ev);
        workload_fini(w);
        return -ENOMEM;
    }
    char *p = (char *)(envs + nenv + 1);
    for (size_t i = 0; i < nenv; i++) {
        int n = sprintf(p, "%s=%s", ev[i]->name, ev[i]->value);
        envs[i] = p;
        p += n + 1;
    }
    free(ev);
    envs[nenv] = NULL;
    w->env = (const char *const *)envs;
    const Ferry__Health *h = spec->health;
    sup_policy_default(pol);
    pol->stop_timeout_ms = stop_timeout_ms;
    pol->job = (run && run->mode && strcmp(run->mode, "job") == 0) || notebook_run(spec);
    if (h) {
        if (h->http && h->http->path && *h->http->path) {
            w->health_http_path = h->http->path;
            w->health_http_status = h->http->status ? (int)h->http->status : 200;
        }
        if (h->n_command > 0) {
            w->health_command = strv_from(h->command, h->n_command);
            if (!w->health_command) {
                workload_fini(w);
                return -ENOMEM;
            }
        }
        w->health_settle_ms = h->settle_ms;
        w->health_deadline_ms = h->deadline_ms;
        w->health_interval_ms = h->interval_ms;
        if (h->deadline_ms)
            pol->health_deadline_ms = h->deadline_ms;
    } else {
        w->health_settle_ms = 1000; /* no check given: alive for a second */
    }
    if (!w->health_deadline_ms)
        w->health_deadline_ms = pol->health_deadline_ms;
    return 0;
}

int workload_job(const Ferry__Spec *spec, struct run_job *job)
{
    memset(job, 0, sizeof *job);
    const Ferry__Run *run = spec->run;
    job->job = run && run->mode && strcmp(run->mode, "job") == 0;
    job->retries = job->job ? run->retries : 0;
    const char *sched = spec->schedule;
    if (notebook_run(spec)) {
        job->job = true;
        sched = spec->notebook->schedule;
    }
    if (job->job && sched && *sched) {
        char why[256];
        if (schedule_parse(sched, &job->sched, why, sizeof why) < 0)
            return err_set(FERRY_E_SPEC, "schedule: %s", why);
        job->has_schedule = true;
    }
    return 0;
}

/* runtime oci, after oci_kind_json added the layers and the config: the
 * overrides as the signed Spec.oci holds them (over what ferry.yaml wrote)
 * and `resources:` in numbers, so the plugin reads one object and parses
 * no sizes. */
static int oci_resolved(const Ferry__Spec *spec, char **kj)
{
    const Ferry__OciSpec *o = spec->oci;
    json_error_t e;
    json_t *obj = json_loads(*kj ? *kj : "{}", 0, &e);
    if (!json_is_object(obj)) {
        json_decref(obj);
        obj = json_object();
    }
    /* What ferry.yaml wrote stays as written; Spec.oci fills in only what
     * it lacks (it is the same values, parsed). */
    if (o->n_command > 0 && !json_object_get(obj, "command")) {
        json_t *cmd = json_array();
        for (size_t i = 0; i < o->n_command; i++)
            json_array_append_new(cmd, json_string(o->command[i]));
        json_object_set_new(obj, "command", cmd);
    }
    if (o->n_env > 0 && !json_object_get(obj, "env")) {
        json_t *env = json_object();
        for (size_t i = 0; i < o->n_env; i++)
            json_object_set_new(env, o->env[i]->name, json_string(o->env[i]->value));
        json_object_set_new(obj, "env", env);
    }
    if (o->workdir && *o->workdir && !json_object_get(obj, "workdir"))
        json_object_set_new(obj, "workdir", json_string(o->workdir));
    if (o->user && *o->user && !json_object_get(obj, "user"))
        json_object_set_new(obj, "user", json_string(o->user));
    if (o->network && strcmp(o->network, "none") == 0 && !json_object_get(obj, "network"))
        json_object_set_new(obj, "network", json_string(o->network));
    if (o->readonly_rootfs && !json_object_get(obj, "readonly_rootfs"))
        json_object_set_new(obj, "readonly_rootfs", json_true());
    if (spec->resources)
        json_object_set_new(obj, "resources",
                            json_pack("{s:I,s:I,s:I}", "memory_bytes",
                                      (json_int_t)spec->resources->memory_bytes, "pids",
                                      (json_int_t)spec->resources->pids, "cpu_millis",
                                      (json_int_t)spec->resources->cpu_millis));
    char *out = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);
    if (!out)
        return -ENOMEM;
    free(*kj);
    *kj = out;
    return 0;
}

int workload_attach_json(struct ferry_workload *w, const Ferry__Manifest *m)
{
    char *sj = NULL, *kj = NULL;
    int rc = 0;
    if (m && m->spec_yaml.len > 0) {
        rc = specjson_from_yaml("ferry.yaml", (const char *)m->spec_yaml.data, m->spec_yaml.len, &sj, &kj);
    } else {
        /* A manifest without ferry.yaml bytes: plugins still get objects. */
        sj = strdup("{}");
        kj = strdup("{}");
        rc = sj && kj ? 0 : -ENOMEM;
    }
    if (rc == 0 && m && m->spec && m->spec->oci) {
        /* runtime oci: the layers publish resolved travel in the signed Spec. */
        char *full = NULL;
        rc = oci_kind_json(m->spec->oci, kj, &full);
        free(kj);
        kj = full;
        if (rc == 0)
            rc = oci_resolved(m->spec, &kj);
    }
    if (rc < 0) {
        free(sj);
        free(kj);
        return rc;
    }
    free((void *)w->spec_json);
    free((void *)w->kind_json);
    w->spec_json = sj;
    w->kind_json = kj;
    return 0;
}
