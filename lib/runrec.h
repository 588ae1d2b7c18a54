/* Notebook run records (proto/wire.proto, RunRecord): the bounds and checks
 * the agent (which reports runs), the registry (which keeps them) and the
 * CLI (which shows them) share. docs/notebooks.md, "Runs in the registry". */
#ifndef FERRY_LIB_RUNREC_H
#define FERRY_LIB_RUNREC_H

#include "wire.pb-c.h"

#include <stddef.h>

#define RUN_ID_LEN 16                  /* hex characters */
#define RUN_NOTEBOOK_MAX (8u << 20)    /* executed notebook bytes in one report */
#define RUN_ERROR_MAX 1024             /* bytes of the one-line error */
#define RUN_NOTE_MAX 256
#define RUN_BODY_MAX (RUN_NOTEBOOK_MAX + (16u << 10)) /* a whole encoded RunReportBody */
#define RUN_LIST_MAX 1000              /* runs in one RunList */

/* 1 when id is RUN_ID_LEN lowercase hex characters. */
int runrec_id_ok(const char *id);
/* 1 for running, succeeded, failed. */
int runrec_status_ok(const char *status);
/* 0 when every field of r is within bounds (id, name, version, host,
 * status, error and note one line each); else FERRY_E_INVALID naming the
 * field. what prefixes the detail ("run report from h1"). */
int runrec_check(const char *what, const Ferry__Wire__RunRecord *r);

#endif
