/* Kernels in the host's report (docs/notebooks.md, "Kernels in ferry
 * status"): the notebook plugin describes each of its Jupyter kernels in
 * its ABI-2 metrics as notebook_kernel_* samples labelled kernel="ID";
 * here a notebook run's newest samples become the KernelReport list of its
 * WorkloadReport. So the plugin ABI needs nothing new, and Prometheus-side
 * consumers of the metrics see the same kernels. Pure, unit-tested. */
#ifndef FERRY_AGENT_KERNELREPORT_H
#define FERRY_AGENT_KERNELREPORT_H

#include "wire.pb-c.h"

#define KERNELREPORT_MAX 16 /* the plugin's own bound per workload */

/* Fill w->kernels from m's samples (m may be NULL: none). The arrays are
 * malloc'd; w's strings borrow from m, so pack w before m changes.
 * Returns the number of kernels, or -ENOMEM. */
int kernelreport_fill(const Ferry__Wire__WorkloadMetrics *m, Ferry__Wire__WorkloadReport *w);
void kernelreport_done(Ferry__Wire__WorkloadReport *w);

#endif
