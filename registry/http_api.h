/* What the JSON API's files share (http_api.c, http_series.c). */
#ifndef FERRY_REGISTRY_HTTP_API_H
#define FERRY_REGISTRY_HTTP_API_H

#include "http.h"
#include "wire.pb-c.h"

#include <jansson.h>
#include <stdint.h>

/* A whole-number query parameter in [min, max]; def when absent. 400 with
 * the parameter named otherwise. */
int api_arg_u64(const struct http_call *c, const char *name, uint64_t min, uint64_t max,
                uint64_t def, uint64_t *out);
/* FERRY_E_INVALID naming param unless v is a valid name. */
int api_name_arg(const char *param, const char *v);
json_t *api_workload_json(const Ferry__Wire__WorkloadReport *w);

/* GET /api/v1/metrics/{name} (http_series.c). */
int api_metrics(const struct http_call *c, struct http_reply *out);

#endif
