/* mlflow — MLflow's scoring protocol for POST /invocations: the JSON forms
 * dataframe_split, dataframe_records, instances and inputs, mapped onto the
 * model's V2 signature; answers {"predictions": [...]}. Same return rules
 * as v2.h (0, or an HTTP status with errbuf). content_type is checked here:
 * anything but application/json (charset utf-8 allowed) is 415. */
#ifndef FERRY_MODEL_MLFLOW_H
#define FERRY_MODEL_MLFLOW_H

#include "infer.h"
#include "modelcfg.h"

#include <stddef.h>

int mlflow_parse(const struct model_cfg *c, const char *content_type, const char *body,
                 size_t len, struct infer_req *out, char *errbuf, size_t errcap);
char *mlflow_render(const struct model_cfg *c, const struct infer_req *req,
                    const struct infer_result *res);

#endif
