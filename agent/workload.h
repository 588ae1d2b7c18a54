/* What a plugin is told about a workload, built from the runtime spec of the
 * signed manifest (never from a ferry.yaml read back from the tree), and the
 * supervision policy that spec asks for. */
#ifndef FERRY_AGENT_WORKLOAD_H
#define FERRY_AGENT_WORKLOAD_H

#include "manifest.pb-c.h"
#include "supervisor.h"

#include <ferry/plugin.h>

/* Fill w (name, version, dir are borrowed; the spec must outlive w) and pol.
 * stop_timeout_ms goes into pol as is. Free with workload_fini. */
int workload_build(const Ferry__Spec *spec, const char *name, const char *version,
                   const char *dir, uint32_t stop_timeout_ms, struct ferry_workload *w,
                   struct sup_policy *pol);
/* ABI 2: spec_json and kind_json from the signed ferry.yaml the manifest
 * carries (lib/specjson.h); call after workload_build. They are "{}" for a
 * manifest without ferry.yaml bytes. Freed by workload_fini. */
int workload_attach_json(struct ferry_workload *w, const Ferry__Manifest *m);
/* Free what workload_build allocated; w is zeroed. */
void workload_fini(struct ferry_workload *w);

#endif
