/* /metrics for the registry's HTTP side: gathers a snapshot (its counters,
 * the hosts and their newest reports, every run's newest metrics) and
 * renders it with prom.c. The rendered text is kept for HTTP_PROM_CACHE_MS
 * and handed to every scrape in that time, so a burst of scrapers (or a
 * dashboard that polls) costs one rendering, not one each; a scrape
 * therefore sees values at most that old (docs/api.md). */
#ifndef FERRY_REGISTRY_HTTP_PROM_H
#define FERRY_REGISTRY_HTTP_PROM_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_PROM_CACHE_MS 1000
/* name@version -> kind, kept across renderings (a version's kind never
 * changes); emptied when full. */
#define HTTP_PROM_KINDS 4096

struct db;
struct registry;
struct prom_kind;

struct prom_state {
    pthread_mutex_t lock;
    char *text;          /* the last rendering, NUL-terminated */
    size_t len;
    uint64_t at_mono_ms; /* when it was rendered */
    double last_render_s, last_render_cpu_s;
    struct prom_kind *kinds; /* HTTP_PROM_KINDS slots */
    size_t n_kinds;
    double start_time_s;
};

int prom_state_init(struct prom_state *p);
void prom_state_free(struct prom_state *p);

/* The /metrics text as of at most cache_ms ago (0: rendered now), read
 * through db when it is rendered, as a malloc'd copy. 0 or a negative
 * code. */
int http_prom_text(struct registry *r, struct db *db, int cache_ms, char **text, size_t *len);

#endif
