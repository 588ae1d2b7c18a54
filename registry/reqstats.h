/* Requests served, by request type (the Request oneof's field number) and
 * outcome: one relaxed atomic add per request, read by /metrics
 * (http_prom.c). Types past REQSTATS_TYPES are counted under type 0. */
#ifndef FERRY_REGISTRY_REQSTATS_H
#define FERRY_REGISTRY_REQSTATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define REQSTATS_TYPES 128
/* ok, parked, then the wire codes PROTOCOL (1) to INTERNAL (9). */
#define REQSTATS_OUTCOMES 11

struct reqstats {
    _Atomic uint64_t n[REQSTATS_TYPES][REQSTATS_OUTCOMES];
};

/* rc as the dispatch returned it: 0, PARK (1) or a negative code. */
void reqstats_count(struct reqstats *s, int body_case, int rc);
/* "ok", "parked", "invalid", ...; NULL past the last. */
const char *reqstats_outcome_name(int outcome);
uint64_t reqstats_get(const struct reqstats *s, int body_case, int outcome);

#endif
