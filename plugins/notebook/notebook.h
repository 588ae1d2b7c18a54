/* The notebook plugin's shared state (notebook.c is the entry; kernel.c
 * the Jupyter kernels; runs.c the scheduled runs). */
#ifndef FERRY_PLUGIN_NOTEBOOK_H
#define FERRY_PLUGIN_NOTEBOOK_H

#include <ferry/plugin.h>

#include <stdbool.h>

struct kernel_table;

struct nb_state {
    const struct ferry_host *host;
    struct kernel_table *kernels;
};

/* Debian's /usr/bin/python3 unless FERRY_PYTHON says otherwise. */
const char *nb_python(void);

int kernel_init(struct nb_state *s);
void kernel_fini(struct nb_state *s);
/* The workload's run started: kernels of it start in w->dir. */
void kernel_attach(struct nb_state *s, const struct ferry_workload *w, struct ferry_run *run);
/* After an agent restart: the kernels the run's index names are taken
 * back (kernstate.c), not restarted. */
int kernel_adopt(struct nb_state *s, const struct ferry_workload *w, struct ferry_run *run);
/* Each kernel as notebook_kernel_* samples (ABI-2 metrics2). */
int kernel_metrics(struct nb_state *s, struct ferry_run *run, struct ferry_metric_sink *sink);
/* The run stops: its kernels end with it. */
void kernel_stop_all(struct nb_state *s, struct ferry_run *run);
/* verb without its "kernel-" prefix: start, stop, list. */
int kernel_action(struct nb_state *s, struct ferry_run *run, const char *verb,
                  const char *request_json, struct ferry_reply *reply);

/* runs.c: a workload whose notebook section names its .ipynb is a run
 * (a job the agent supervises); start() spawns the runner for it. */
bool nbrun_wanted(const struct ferry_workload *w);
int nbrun_start(struct nb_state *s, const struct ferry_workload *w, struct ferry_run *run);
/* The action notebook-run: one run now, with the request's parameters. */
int nbrun_action(struct nb_state *s, const char *request_json, struct ferry_reply *reply);
/* A job run's runner ended: its record ends failed if it did not say. */
void nbrun_exited(struct ferry_run *run, int status);
/* Before the plugin goes: the watchers of on-demand runs leave. */
void nbrun_fini(void);

#endif
