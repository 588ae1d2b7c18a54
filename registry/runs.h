/* Notebook runs in the registry (docs/notebooks.md, "Runs in the
 * registry"): hosts report each run signed by their host key, with the
 * executed notebook once it ended; the CLI lists them and downloads the
 * notebook as a blob by digest. */
#ifndef FERRY_REGISTRY_RUNS_H
#define FERRY_REGISTRY_RUNS_H

#include "db.h"
#include "wire.pb-c.h"

/* What a RunList reply points into; free with runs_scratch_free. */
struct runs_scratch {
    struct db_run *rows;
    size_t n;
    Ferry__Wire__RunRecord *recs;
    Ferry__Wire__RunRecord **ptrs;
    uint8_t (*digests)[32];
    Ferry__Wire__RunList list;
};
void runs_scratch_free(struct runs_scratch *s);

#endif
