/* opensig — the signature of a request to a model that declared none.
 *
 * A format: python model may leave model.inputs out (docs/manifest.md
 * "model": only format and entry are required). Its server then takes the
 * inputs each request names: this module reads them off the request
 * (names, datatypes, shapes with the first dimension open) into a copy of
 * the configuration, and the usual parsers (v2.c, mlflow.c) check the
 * request against that copy, so a request still agrees with itself (data
 * length against shape, one row count, datatypes of the values) before it
 * reaches the model. */
#ifndef FERRY_MODEL_OPENSIG_H
#define FERRY_MODEL_OPENSIG_H

#include "modelcfg.h"

#include <stddef.h>

/* Whether c serves whatever inputs a request names. */
int opensig_open(const struct model_cfg *c);

/* From a V2 inference request / an MLflow scoring body: *out is c with the
 * request's inputs as its signature. 0, or 400 with errbuf set when the
 * request cannot name a signature (what is malformed otherwise is left to
 * the parser, which says it better). */
int opensig_v2(const struct model_cfg *c, const char *body, size_t len, struct model_cfg *out,
               char *errbuf, size_t cap);
int opensig_mlflow(const struct model_cfg *c, const char *body, size_t len,
                   struct model_cfg *out, char *errbuf, size_t cap);

#endif
