/* The JSON API under /api/v1/ (docs/api.md): read-only views of the
 * metadata, through the HTTP side's own read-only connections. */
#include "http.h"
#include "error.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static int api_index(const struct http_call *c, struct http_reply *out)
{
    (void)c;
    return http_json(out, 200,
                     json_pack("{s:s,s:[s,s,s,s,s,s,s,s]}", "version", FERRY_VERSION, "endpoints",
                               "hosts", "workloads", "artifacts", "artifacts/{name}",
                               "deployments", "events", "metrics/{name}", "audit"));
}

const struct http_route http_api_routes[] = {
    {"GET", "/api/v1", 0, api_index},
    {"GET", "/api/v1/", 0, api_index},
    {NULL, NULL, 0, NULL},
};
