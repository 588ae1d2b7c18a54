#include "kernelreport.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *label(const Ferry__Wire__Metric *s, const char *key)
{
    for (size_t i = 0; i < s->n_labels; i++)
        if (s->labels[i]->key && strcmp(s->labels[i]->key, key) == 0)
            return s->labels[i]->value;
    return NULL;
}

static uint64_t as_ms(double seconds)
{
    return seconds > 0 ? (uint64_t)(seconds * 1000.0 + 0.5) : 0;
}

int kernelreport_fill(const Ferry__Wire__WorkloadMetrics *m, Ferry__Wire__WorkloadReport *w)
{
    w->kernels = NULL;
    w->n_kernels = 0;
    if (!m)
        return 0;
    /* One block: the pointer array, then the records. */
    void *block = calloc(KERNELREPORT_MAX, sizeof(Ferry__Wire__KernelReport *) +
                                               sizeof(Ferry__Wire__KernelReport));
    if (!block)
        return -ENOMEM;
    Ferry__Wire__KernelReport **ptrs = block;
    Ferry__Wire__KernelReport *recs = (void *)(ptrs + KERNELREPORT_MAX);
    size_t n = 0;
    /* notebook_kernel_info names a kernel (and its state and owner); the
     * other samples add to the kernel their label names. */
    for (size_t i = 0; i < m->n_metrics && n < KERNELREPORT_MAX; i++) {
        const Ferry__Wire__Metric *s = m->metrics[i];
        const char *id = label(s, "kernel");
        if (!s->name || strcmp(s->name, "notebook_kernel_info") != 0 || !id)
            continue;
        Ferry__Wire__KernelReport *k = &recs[n];
        ferry__wire__kernel_report__init(k);
        k->id = (char *)id;
        const char *st = label(s, "state"), *owner = label(s, "owner");
        k->state = (char *)(st ? st : "");
        k->owner = (char *)(owner ? owner : "");
        ptrs[n++] = k;
    }
    for (size_t i = 0; i < m->n_metrics; i++) {
        const Ferry__Wire__Metric *s = m->metrics[i];
        const char *id = label(s, "kernel");
        if (!s->name || !id)
            continue;
        for (size_t j = 0; j < n; j++) {
            if (strcmp(ptrs[j]->id, id) != 0)
                continue;
            if (strcmp(s->name, "notebook_kernel_start_time_seconds") == 0)
                ptrs[j]->started_ms = as_ms(s->value);
            else if (strcmp(s->name, "notebook_kernel_last_activity_seconds") == 0)
                ptrs[j]->last_activity_ms = as_ms(s->value);
            else if (strcmp(s->name, "notebook_kernel_restarts_total") == 0)
                ptrs[j]->restarts = s->value > 0 ? (uint32_t)s->value : 0;
        }
    }
    if (n == 0) {
        free(block);
        return 0;
    }
    w->kernels = ptrs;
    w->n_kernels = n;
    return (int)n;
}

void kernelreport_done(Ferry__Wire__WorkloadReport *w)
{
    free(w->kernels);
    w->kernels = NULL;
    w->n_kernels = 0;
}
