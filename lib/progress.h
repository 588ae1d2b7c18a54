/* Transfer progress on stderr, only when stderr is a terminal. */
#ifndef FERRY_LIB_PROGRESS_H
#define FERRY_LIB_PROGRESS_H

#include <stdint.h>

struct progress {
    int enabled;
    const char *label;
    uint64_t total;
    uint64_t done;
    double started;
    double last_print;
};

double now_seconds(void);
/* enabled is forced off when stderr is not a terminal. */
void progress_init(struct progress *p, const char *label, uint64_t total, int enabled);
void progress_add(struct progress *p, uint64_t n);
void progress_finish(struct progress *p);

#endif
