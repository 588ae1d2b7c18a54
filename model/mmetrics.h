/* mmetrics — the model server's own metrics: counter, gauge and histogram
 * families with labels, thread-safe, rendered as Prometheus text format
 * (clean under `promtool check metrics`) for GET /metrics and as JSON for
 * the model plugin's ABI-2 metrics2() (GET /metrics?format=json), so the
 * plugin needs no Prometheus text parser. */
#ifndef FERRY_MODEL_MMETRICS_H
#define FERRY_MODEL_MMETRICS_H

#include <stddef.h>

struct mm;
struct mm_family;

enum mm_type { MM_COUNTER, MM_GAUGE, MM_HISTOGRAM };

/* Label sets per family; observations of a new one past it are dropped and
 * counted in ferry_model_metrics_dropped_total (every family's bounds are
 * the ABI-2 sample's: 8 label keys, 32 buckets, values of 127 bytes). */
#define MM_SERIES_MAX 256u

int mm_new(struct mm **out);
void mm_free(struct mm *m);
/* label_keys: NULL-terminated; buckets: histogram upper bounds (increasing,
 * +Inf implied), else NULL (a histogram then gets Prometheus' default
 * buckets, 0.005 to 10). Families are created at start-up. FERRY_E_INVALID
 * (a bad name, key or bound), FERRY_E_LIMIT (past 8 keys, 32 buckets or 64
 * families), FERRY_E_EXISTS (a sample name another family already uses). */
int mm_family(struct mm *m, const char *name, const char *help, enum mm_type type,
              const char *const *label_keys, const double *buckets, size_t n_buckets,
              struct mm_family **out);
/* label_values: one per key, in order. Counter: add v; gauge: set v;
 * histogram: observe v. Any thread. Dropped (and counted): the wrong call
 * for the family's type, a value that is not finite or a negative add, a
 * NULL value, a new label set past MM_SERIES_MAX or with a value that is not
 * UTF-8 or over 127 bytes. */
void mm_add(struct mm_family *f, const char *const *label_values, double v);
void mm_set(struct mm_family *f, const char *const *label_values, double v);
void mm_observe(struct mm_family *f, const char *const *label_values, double v);
/* malloc'd text; NULL when out of memory.
 * Prometheus: HELP and TYPE per family (in creation order), then its label
 * sets (in first-seen order); histograms as _bucket{le} (cumulative, +Inf
 * last), _sum, _count; ferry_model_metrics_dropped_total last.
 * JSON: {"families": [{"name", "type": "counter"|"gauge"|"histogram", "help",
 *   "label_keys": [...], "series": [{"labels": {KEY: VALUE, ...}, "value",
 *   histogram only: "count", "sum", "buckets": [{"le", "count"}, ...]}]}]}
 * with the dropped counter as the last family. Each series maps onto one
 * struct ferry_sample: value (a histogram's sum, as the sample has it),
 * count, buckets cumulative and without +Inf (which is the count). */
char *mm_render_prometheus(struct mm *m);
char *mm_render_json(struct mm *m);

#endif
