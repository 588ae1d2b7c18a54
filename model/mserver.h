/* mserver — the model server's routes and wiring: the HTTP front end
 * (httpd.h) routes V2 (v2.h), MLflow (mlflow.h), health and metrics;
 * inference requests are parsed and checked here, ride the batcher to the
 * Python workers, are measured (mmetrics.h) and fed to drift (drift.h).
 *
 * Two steps so the endpoint is live while the model loads: mserver_start
 * binds the port (GET /v2/health/live answers, ready is 503), mserver_load
 * bins the drift reference and starts the workers (ready once one has
 * loaded). Errors: 0 or a negative code with err_detail() one line. */
#ifndef FERRY_MODEL_MSERVER_H
#define FERRY_MODEL_MSERVER_H

#include <stddef.h>

struct mserver;

struct mserver_opts {
    const char *dir;        /* the workload's folder (the model's files) */
    const char *addr;       /* "127.0.0.1" */
    int port;               /* 0: any free port */
    const char *spec_json;  /* the whole spec as JSON (modelcfg.h) */
    const char *python;     /* the interpreter for the workers */
    const char *worker_py;  /* path of worker.py */
    unsigned http_threads;  /* 0: the adapter's default */
};

/* Parse the spec, create the metrics and start serving HTTP. */
int mserver_start(const struct mserver_opts *o, struct mserver **out);
/* The port bound. */
int mserver_port(const struct mserver *s);
/* The drift reference (if any), then the workers; blocks until loaded. */
int mserver_load(struct mserver *s);
/* Refuse new requests (503), fail what the batcher holds with 503, stop
 * the workers and HTTP, free. */
void mserver_stop(struct mserver *s);

#endif
