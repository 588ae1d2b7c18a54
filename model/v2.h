/* v2 — the Open Inference Protocol (KServe V2) REST bodies: parse and check
 * an infer request against the model's signature, render responses and the
 * metadata documents. No I/O: mserver.c routes, this speaks the protocol.
 *
 * Parse functions return 0, or an HTTP status (400, 404, 413) with errbuf
 * holding the message for {"error": "..."}, naming the input and the reason.
 * Render functions return malloc'd JSON text (NULL on ENOMEM). */
#ifndef FERRY_MODEL_V2_H
#define FERRY_MODEL_V2_H

#include "infer.h"
#include "modelcfg.h"

#include <stddef.h>

int v2_parse_infer(const struct model_cfg *c, const char *body, size_t len,
                   struct infer_req *out, char *errbuf, size_t errcap);

char *v2_render_infer(const struct model_cfg *c, const struct infer_req *req,
                      const struct infer_result *res);
/* GET /v2 */
char *v2_render_server_metadata(void);
/* GET /v2/models/{name}[/versions/{version}] */
char *v2_render_model_metadata(const struct model_cfg *c);
/* {"error": msg} */
char *v2_render_error(const char *msg);

#endif
