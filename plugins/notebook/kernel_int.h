/* The kernels' shared structures: kernel.c (the verbs, the watcher),
 * kernstate.c (the index file that lets a later agent adopt them). */
#ifndef FERRY_PLUGIN_NOTEBOOK_KERNEL_INT_H
#define FERRY_PLUGIN_NOTEBOOK_KERNEL_INT_H

#include "notebook.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#define KERNELS_MAX 16 /* per workload run */
#define KERNEL_ID_BYTES 8

struct kernel {
    char id[2 * KERNEL_ID_BYTES + 1];
    unsigned restarts; /* by the watcher after a crash, and by kernel-restart */
    char owner[64];
    pid_t pid;
    uint64_t proc_start; /* /proc/PID/stat starttime: a reused pid is not ours */
    int adopted;         /* started by an earlier agent: not our child */
    char dir[64];        /* private 0700 folder: connection file, HOME */
    char ip[64];
    int shell_port;
    uint64_t idle_ms;    /* culled after this long without execution; 0: never */
    uint64_t started_ms; /* Unix ms */
};

/* plugin_data of a notebook run. */
struct nb_run {
    struct nb_run *next; /* in the table, under its lock */
    pthread_mutex_t lock;
    char *name, *version, *dir;
    char **env; /* run.env + notebook.env, "K=V", NULL-terminated */
    char index[512]; /* DIR/.ferry/kernels.json */
    struct kernel k[KERNELS_MAX];
    size_t n;
};

/* kernel.c */
/* A run's kernel table, registered with the watcher, its plugin_state
 * naming the index; NULL when out of memory (logged). */
struct nb_run *kernel_run_new(struct nb_state *s, const struct ferry_workload *w,
                              struct ferry_run *run);
/* Start k's ipykernel from its folder's connection file (again). */
int kernel_exec(struct nb_run *nr, struct kernel *k);
/* End k's process group, remove its folder, clear k. */
void kernel_end(struct kernel *k);

/* kernstate.c (kernel_attach and kernel_adopt of notebook.h too) */
/* starttime of pid (clock ticks since boot), 0 when it is gone. */
uint64_t kproc_start(pid_t pid);
/* 1 while k's process lives (the same process, not a reused pid). */
int kproc_alive(const struct kernel *k);
/* Write nr's kernels to nr->index (0600, atomically); call with nr->lock. */
int kstate_save(const struct ferry_host *h, struct nb_run *nr);
/* Read nr->index into nr->k (entries that do not hold up are skipped). */
int kstate_load(const struct ferry_host *h, struct nb_run *nr);
/* Remove a kernel's private folder. */
void kdir_remove(const char *dir);

#endif
