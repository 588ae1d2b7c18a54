#include "mmetrics.h"
#include "error.h"
#include "metricwire.h"

#include <ferry/plugin.h>
#include <jansson.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every bound is the ABI-2 sample's, so whatever a family holds can be
 * forwarded through the model plugin's metrics2() sink unchanged. */
#define MM_LABELS_MAX FERRY_METRIC_LABELS_MAX
#define MM_BUCKETS_MAX FERRY_METRIC_BUCKETS_MAX
/* Open addressing at most half full: a probe is short. */
#define MM_SLOTS 512u
#define MM_FAMILIES_MAX 64u
#define MM_DROPPED_NAME "ferry_model_metrics_dropped_total"
#define MM_DROPPED_HELP                                                                                          \
    "Observations the model server's metrics dropped: label sets past 256 per family, values that are not "  \
    "finite numbers (or negative for a counter), label values that are not UTF-8 or longer than 127 bytes."

_Static_assert(MM_SERIES_MAX == 256 && FERRY_METRIC_LABEL_VALUE_MAX == 127, "MM_DROPPED_HELP states both");
_Static_assert(2 * MM_SERIES_MAX <= MM_SLOTS && MM_SLOTS <= 65535, "slots hold index + 1 in a uint16_t");

/* Prometheus' default buckets, for a histogram created without its own. */
static const double default_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

/* Observations update a series with atomics only; the family's lock is
 * taken to add a label set, never to update one. A histogram keeps no
 * count of its own: the count is the sum of its buckets, so a renderer
 * racing observers still sees cumulative buckets no larger than the count
 * (as the ABI-2 sample must have them); the sum may trail by the
 * observations in flight. */
struct mm_series {
    uint64_t hash;
    char *values[MM_LABELS_MAX];  /* into one allocation after the struct */
    _Atomic uint64_t value;       /* a double's bits: counter, gauge; histogram: the sum */
    _Atomic uint64_t *buckets;    /* histogram: n_buckets + 1 (+Inf), not cumulative */
};

struct mm_family {
    struct mm *owner;
    char *name;
    char *help;
    enum mm_type type;
    size_t n_keys;
    char *keys[MM_LABELS_MAX];
    size_t n_buckets;
    double buckets[MM_BUCKETS_MAX];

    /* Taken only to add a label set. series[i] is set before n_series and
     * the slot naming it are published (release), and never changes nor is
     * freed until mm_free, so observers probing the slots and renderers
     * reading n_series (acquire) need no lock. */
    pthread_mutex_t lock;
    atomic_size_t n_series;
    struct mm_series *series[MM_SERIES_MAX];
    _Atomic uint16_t slots[MM_SLOTS]; /* index + 1 into series, 0 = empty */
};

struct mm {
    pthread_mutex_t lock; /* the family list */
    struct mm_family *families[MM_FAMILIES_MAX];
    size_t n_families;
    atomic_uint_fast64_t dropped;
};

int mm_new(struct mm **out)
{
    struct mm *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return -ENOMEM;
    }
    atomic_init(&m->dropped, 0);
    *out = m;
    return 0;
}

static void family_free(struct mm_family *f)
{
    if (!f)
        return;
    size_t n = atomic_load(&f->n_series);
    for (size_t i = 0; i < n; i++)
        free(f->series[i]);
    for (size_t i = 0; i < f->n_keys; i++)
        free(f->keys[i]);
    free(f->name);
    free(f->help);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

void mm_free(struct mm *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_families; i++)
        family_free(m->families[i]);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* The sample names a family's text exposition uses. */
static size_t exposed_names(const char *name, enum mm_type type, char out[4][FERRY_METRIC_NAME_MAX + 16])
{
    if (type != MM_HISTOGRAM) {
        snprintf(out[0], sizeof out[0], "%s", name);
        return 1;
    }
    snprintf(out[0], sizeof out[0], "%s", name);
    snprintf(out[1], sizeof out[1], "%s_bucket", name);
    snprintf(out[2], sizeof out[2], "%s_sum", name);
    snprintf(out[3], sizeof out[3], "%s_count", name);
    return 4;
}

static int names_clash(const char *name1, enum mm_type type1, const char *name, enum mm_type type)
{
    char a[4][FERRY_METRIC_NAME_MAX + 16], b[4][FERRY_METRIC_NAME_MAX + 16];
    size_t na = exposed_names(name1, type1, a), nb = exposed_names(name, type, b);
    for (size_t i = 0; i < na; i++)
        for (size_t j = 0; j < nb; j++)
            if (strcmp(a[i], b[j]) == 0)
                return 1;
    return 0;
}

static int help_ok(const char *help)
{
    json_t *j = json_string(help);
    if (!j)
        return 0;
    json_decref(j);
    return 1;
}

static uint64_t labels_hash(const struct mm_family *f, const char *const *values);
static struct mm_series *series_get(struct mm_family *f, uint64_t h, const char *const *values);

int mm_family(struct mm *m, const char *name, const char *help, enum mm_type type,
              const char *const *label_keys, const double *buckets, size_t n_buckets,
              struct mm_family **out)
{
    if (!m || !out)
        return err_set(FERRY_E_INVALID, "metrics: no registry");
    if (!name || !metric_name_ok(name))
        return err_set(FERRY_E_INVALID, "metric '%s': a name must match [a-zA-Z_:][a-zA-Z0-9_:]* and be 1-%d bytes",
                       name ? name : "", FERRY_METRIC_NAME_MAX);
    if (type != MM_COUNTER && type != MM_GAUGE && type != MM_HISTOGRAM)
        return err_set(FERRY_E_INVALID, "metric %s: unknown type %d", name, (int)type);
    if (!help || !help_ok(help))
        return err_set(FERRY_E_INVALID, "metric %s: help must be UTF-8 text", name);
    size_t nk = 0;
    while (label_keys && label_keys[nk]) {
        if (nk == MM_LABELS_MAX)
            return err_set(FERRY_E_LIMIT, "metric %s: more than %d label keys", name, MM_LABELS_MAX);
        const char *k = label_keys[nk];
        if (!metric_label_key_ok(k))
            return err_set(FERRY_E_INVALID,
                           "metric %s: label key '%s' must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __",
                           name, k);
        if (type == MM_HISTOGRAM && strcmp(k, "le") == 0)
            return err_set(FERRY_E_INVALID, "metric %s: a histogram cannot have a label 'le'", name);
        for (size_t j = 0; j < nk; j++)
            if (strcmp(label_keys[j], k) == 0)
                return err_set(FERRY_E_INVALID, "metric %s: label key '%s' given twice", name, k);
        nk++;
    }
    if (type != MM_HISTOGRAM && (buckets || n_buckets))
        return err_set(FERRY_E_INVALID, "metric %s: only a histogram has buckets", name);
    if (type == MM_HISTOGRAM && (!buckets || n_buckets == 0)) {
        buckets = default_buckets;
        n_buckets = sizeof default_buckets / sizeof default_buckets[0];
    }
    if (n_buckets > MM_BUCKETS_MAX)
        return err_set(FERRY_E_LIMIT, "metric %s: %zu buckets, at most %d", name, n_buckets, MM_BUCKETS_MAX);
    for (size_t i = 0; i < n_buckets; i++)
        if (!isfinite(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1])))
            return err_set(FERRY_E_INVALID, "metric %s: bucket bounds must be finite and increasing", name);

    struct mm_family *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    if (pthread_mutex_init(&f->lock, NULL) != 0) {
        free(f);
        return -ENOMEM;
    }
    f->owner = m;
    f->type = type;
    atomic_init(&f->n_series, 0);
    for (size_t i = 0; i < MM_SLOTS; i++)
        atomic_init(&f->slots[i], 0);
    f->name = strdup(name);
    f->help = strdup(help);
    int oom = !f->name || !f->help;
    for (size_t i = 0; i < nk; i++) {
        f->keys[i] = strdup(label_keys[i]);
        oom |= !f->keys[i];
        f->n_keys = i + 1;
    }
    if (oom) {
        family_free(f);
        return -ENOMEM;
    }
    f->n_buckets = n_buckets;
    if (n_buckets)
        memcpy(f->buckets, buckets, n_buckets * sizeof buckets[0]);
    /* A family without labels has its one series from the start, so it
     * shows 0 before anything is observed, as a scraper expects. */
    if (nk == 0 && !series_get(f, labels_hash(f, NULL), NULL)) {
        family_free(f);
        return -ENOMEM;
    }

    pthread_mutex_lock(&m->lock);
    int rc = 0;
    if (m->n_families == MM_FAMILIES_MAX)
        rc = err_set(FERRY_E_LIMIT, "metric %s: more than %u families", name, MM_FAMILIES_MAX);
    if (rc == 0 && names_clash(MM_DROPPED_NAME, MM_COUNTER, name, type))
        rc = err_set(FERRY_E_EXISTS, "metric %s: the name is the registry's own", name);
    for (size_t i = 0; rc == 0 && i < m->n_families; i++)
        if (names_clash(m->families[i]->name, m->families[i]->type, name, type))
            rc = err_set(FERRY_E_EXISTS, "metric %s: clashes with the family %s", name, m->families[i]->name);
    if (rc == 0)
        m->families[m->n_families++] = f;
    pthread_mutex_unlock(&m->lock);
    if (rc < 0) {
        family_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

/* ---- the hot path ---- */

static void drop(struct mm_family *f)
{
    atomic_fetch_add_explicit(&f->owner->dropped, 1, memory_order_relaxed);
}

/* FNV-1a over the values, each followed by a 0xff byte (never in UTF-8),
 * so ("ab","c") and ("a","bc") differ. */
static uint64_t labels_hash(const struct mm_family *f, const char *const *values)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < f->n_keys; i++) {
        for (const unsigned char *p = (const unsigned char *)values[i]; *p; p++)
            h = (h ^ *p) * 1099511628211ull;
        h = (h ^ 0xffu) * 1099511628211ull;
    }
    return h;
}

static int values_ok(const struct mm_family *f, const char *const *values)
{
    if (f->n_keys && !values)
        return 0;
    for (size_t i = 0; i < f->n_keys; i++)
        if (!values[i])
            return 0;
    return 1;
}

static int series_matches(const struct mm_family *f, const struct mm_series *s, uint64_t h,
                          const char *const *values)
{
    if (s->hash != h)
        return 0;
    for (size_t i = 0; i < f->n_keys; i++)
        if (strcmp(s->values[i], values[i]) != 0)
            return 0;
    return 1;
}

/* A new label set: checked here, once, not on every observation. */
static struct mm_series *series_new(const struct mm_family *f, uint64_t h, const char *const *values)
{
    size_t len[MM_LABELS_MAX], total = 0;
    for (size_t i = 0; i < f->n_keys; i++) {
        len[i] = strlen(values[i]);
        if (len[i] > FERRY_METRIC_LABEL_VALUE_MAX)
            return NULL;
        json_t *j = json_stringn(values[i], len[i]);
        if (!j)
            return NULL; /* not UTF-8 */
        json_decref(j);
        total += len[i] + 1;
    }
    size_t nb = f->type == MM_HISTOGRAM ? f->n_buckets + 1 : 0;
    struct mm_series *s = calloc(1, sizeof *s + nb * sizeof(_Atomic uint64_t) + total);
    if (!s)
        return NULL;
    s->hash = h;
    atomic_init(&s->value, 0); /* the bits of +0.0 */
    s->buckets = nb ? (_Atomic uint64_t *)(s + 1) : NULL;
    for (size_t i = 0; i < nb; i++)
        atomic_init(&s->buckets[i], 0);
    char *p = (char *)(s + 1) + nb * sizeof(_Atomic uint64_t);
    for (size_t i = 0; i < f->n_keys; i++) {
        memcpy(p, values[i], len[i] + 1);
        s->values[i] = p;
        p += len[i] + 1;
    }
    return s;
}

/* The series for values, or NULL with *empty the slot where it would go.
 * Any thread, no lock: slots only ever go from empty to set. */
static struct mm_series *series_find(struct mm_family *f, uint64_t h, const char *const *values, size_t *empty)
{
    size_t slot = (size_t)(h & (MM_SLOTS - 1));
    /* At most MM_SERIES_MAX of the MM_SLOTS are set: an empty one comes. */
    for (;;) {
        uint16_t idx = atomic_load_explicit(&f->slots[slot], memory_order_acquire);
        if (idx == 0) {
            *empty = slot;
            return NULL;
        }
        struct mm_series *s = f->series[idx - 1];
        if (series_matches(f, s, h, values))
            return s;
        slot = (slot + 1) & (MM_SLOTS - 1);
    }
}

/* The series for values, created if new; NULL when the family is full or
 * the values are refused. */
static struct mm_series *series_get(struct mm_family *f, uint64_t h, const char *const *values)
{
    size_t slot;
    struct mm_series *s = series_find(f, h, values, &slot);
    if (s)
        return s;
    pthread_mutex_lock(&f->lock);
    /* Another thread may have added it meanwhile: look again, under the
     * lock that every addition holds. */
    s = series_find(f, h, values, &slot);
    size_t n = atomic_load_explicit(&f->n_series, memory_order_relaxed);
    if (!s && n < MM_SERIES_MAX && (s = series_new(f, h, values))) {
        f->series[n] = s;
        atomic_store_explicit(&f->n_series, n + 1, memory_order_release);
        atomic_store_explicit(&f->slots[slot], (uint16_t)(n + 1), memory_order_release);
    }
    pthread_mutex_unlock(&f->lock);
    return s;
}

static uint64_t bits_of(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

static double double_of(uint64_t u)
{
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static void add_double(_Atomic uint64_t *a, double v)
{
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(a, &old, bits_of(double_of(old) + v), memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

static void update(struct mm_family *f, enum mm_type want, const char *const *values, double v)
{
    if (!f)
        return;
    /* JSON cannot carry NaN or infinities, and a counter only goes up. */
    if (f->type != want || !isfinite(v) || (want == MM_COUNTER && v < 0) || !values_ok(f, values)) {
        drop(f);
        return;
    }
    uint64_t h = labels_hash(f, values);
    size_t b = 0;
    if (want == MM_HISTOGRAM) {
        /* The first bound >= v (le is "less or equal"); n_buckets: +Inf. */
        size_t lo = 0, hi = f->n_buckets;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (v <= f->buckets[mid])
                hi = mid;
            else
                lo = mid + 1;
        }
        b = lo;
    }
    struct mm_series *s = series_get(f, h, values);
    if (!s) {
        drop(f);
        return;
    }
    switch (want) {
    case MM_COUNTER: add_double(&s->value, v); break;
    case MM_GAUGE: atomic_store_explicit(&s->value, bits_of(v), memory_order_relaxed); break;
    case MM_HISTOGRAM:
        atomic_fetch_add_explicit(&s->buckets[b], 1, memory_order_relaxed);
        add_double(&s->value, v);
        break;
    }
}

void mm_add(struct mm_family *f, const char *const *label_values, double v)
{
    update(f, MM_COUNTER, label_values, v);
}

void mm_set(struct mm_family *f, const char *const *label_values, double v)
{
    update(f, MM_GAUGE, label_values, v);
}

void mm_observe(struct mm_family *f, const char *const *label_values, double v)
{
    update(f, MM_HISTOGRAM, label_values, v);
}

/* ---- rendering ---- */

/* A family's numbers read at once (without its lock), formatted after. */
struct snap {
    size_t n;
    struct mm_series **series;
    double *value;
    uint64_t *count;
    uint64_t *buckets; /* n * (n_buckets + 1), cumulative */
};

static void snap_fini(struct snap *s)
{
    free(s->series);
    free(s->value);
    free(s->count);
    free(s->buckets);
}

static int snap_take(struct mm_family *f, struct snap *sn)
{
    memset(sn, 0, sizeof *sn);
    size_t nb = f->n_buckets + 1;
    sn->series = malloc(MM_SERIES_MAX * sizeof *sn->series);
    sn->value = malloc(MM_SERIES_MAX * sizeof *sn->value);
    sn->count = malloc(MM_SERIES_MAX * sizeof *sn->count);
    sn->buckets = f->type == MM_HISTOGRAM ? malloc(MM_SERIES_MAX * nb * sizeof *sn->buckets) : NULL;
    if (!sn->series || !sn->value || !sn->count || (f->type == MM_HISTOGRAM && !sn->buckets)) {
        snap_fini(sn);
        return -ENOMEM;
    }
    sn->n = atomic_load_explicit(&f->n_series, memory_order_acquire);
    for (size_t i = 0; i < sn->n; i++) {
        struct mm_series *s = f->series[i];
        sn->series[i] = s;
        sn->value[i] = double_of(atomic_load_explicit(&s->value, memory_order_relaxed));
        sn->count[i] = 0;
        if (f->type != MM_HISTOGRAM)
            continue;
        /* Cumulative as read; the count is the last (+Inf) bucket. */
        uint64_t cum = 0;
        for (size_t b = 0; b < nb; b++) {
            cum += atomic_load_explicit(&s->buckets[b], memory_order_relaxed);
            sn->buckets[i * nb + b] = cum;
        }
        sn->count[i] = cum;
    }
    return 0;
}

/* The shortest of %.15g/%.16g/%.17g that reads back as the same double:
 * Go's ParseFloat (promtool, Prometheus) reads every one of them. */
static void fmt_double(char *buf, size_t len, double v)
{
    if (isinf(v)) {
        snprintf(buf, len, "%s", v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (isnan(v)) {
        snprintf(buf, len, "NaN");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* HELP text escapes backslash and newline; label values also the quote. */
static void put_escaped(FILE *out, const char *s, int quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", out);
        else if (*s == '\n')
            fputs("\\n", out);
        else if (quote && *s == '"')
            fputs("\\\"", out);
        else
            fputc(*s, out);
    }
}

static void put_labels(FILE *out, const struct mm_family *f, const struct mm_series *s, const char *le)
{
    if (f->n_keys == 0 && !le)
        return;
    fputc('{', out);
    for (size_t i = 0; i < f->n_keys; i++) {
        fprintf(out, "%s%s=\"", i ? "," : "", f->keys[i]);
        put_escaped(out, s->values[i], 1);
        fputc('"', out);
    }
    if (le)
        fprintf(out, "%sle=\"%s\"", f->n_keys ? "," : "", le);
    fputc('}', out);
}

static const char *type_name(enum mm_type t)
{
    switch (t) {
    case MM_COUNTER: return "counter";
    case MM_GAUGE: return "gauge";
    case MM_HISTOGRAM: return "histogram";
    }
    return "untyped";
}

static int render_family_text(FILE *out, struct mm_family *f)
{
    struct snap sn;
    int rc = snap_take(f, &sn);
    if (rc < 0)
        return rc;
    fprintf(out, "# HELP %s ", f->name);
    put_escaped(out, f->help, 0);
    fprintf(out, "\n# TYPE %s %s\n", f->name, type_name(f->type));
    char num[40], le[40];
    size_t nb = f->n_buckets + 1;
    for (size_t i = 0; i < sn.n; i++) {
        const struct mm_series *s = sn.series[i];
        if (f->type != MM_HISTOGRAM) {
            fputs(f->name, out);
            put_labels(out, f, s, NULL);
            fmt_double(num, sizeof num, sn.value[i]);
            fprintf(out, " %s\n", num);
            continue;
        }
        for (size_t b = 0; b < nb; b++) {
            if (b < f->n_buckets)
                fmt_double(le, sizeof le, f->buckets[b]);
            else
                snprintf(le, sizeof le, "+Inf");
            fprintf(out, "%s_bucket", f->name);
            put_labels(out, f, s, le);
            fprintf(out, " %llu\n", (unsigned long long)sn.buckets[i * nb + b]);
        }
        fprintf(out, "%s_sum", f->name);
        put_labels(out, f, s, NULL);
        fmt_double(num, sizeof num, sn.value[i]);
        fprintf(out, " %s\n", num);
        fprintf(out, "%s_count", f->name);
        put_labels(out, f, s, NULL);
        fprintf(out, " %llu\n", (unsigned long long)sn.count[i]);
    }
    snap_fini(&sn);
    return 0;
}

/* The families as they are now; the list only grows, never shrinks. */
static size_t families_now(struct mm *m, struct mm_family **out)
{
    pthread_mutex_lock(&m->lock);
    size_t n = m->n_families;
    memcpy(out, m->families, n * sizeof *out);
    pthread_mutex_unlock(&m->lock);
    return n;
}

char *mm_render_prometheus(struct mm *m)
{
    if (!m)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    if (!out)
        return NULL;
    struct mm_family *fams[MM_FAMILIES_MAX];
    size_t n = families_now(m, fams);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = render_family_text(out, fams[i]);
    fprintf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", MM_DROPPED_NAME, MM_DROPPED_HELP, MM_DROPPED_NAME,
            MM_DROPPED_NAME,
            (unsigned long long)atomic_load_explicit(&m->dropped, memory_order_relaxed));
    if (fclose(out) != 0 || rc < 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* ---- JSON: one object per family, as the ABI-2 sink takes samples ---- */

static int jset(json_t *o, const char *k, json_t *v)
{
    return v ? json_object_set_new(o, k, v) : -1;
}

static json_t *family_json(struct mm_family *f)
{
    struct snap sn;
    if (snap_take(f, &sn) < 0)
        return NULL;
    json_t *o = json_object(), *keys = json_array(), *series = json_array();
    int bad = !o || !keys || !series;
    bad |= jset(o, "name", json_string(f->name)) < 0;
    bad |= jset(o, "type", json_string(type_name(f->type))) < 0;
    bad |= jset(o, "help", json_string(f->help)) < 0;
    for (size_t i = 0; !bad && i < f->n_keys; i++)
        bad |= json_array_append_new(keys, json_string(f->keys[i])) < 0;
    size_t nb = f->n_buckets + 1;
    for (size_t i = 0; !bad && i < sn.n; i++) {
        const struct mm_series *s = sn.series[i];
        json_t *e = json_object(), *labels = json_object();
        bad |= !e || !labels;
        for (size_t k = 0; !bad && k < f->n_keys; k++)
            bad |= jset(labels, f->keys[k], json_string(s->values[k])) < 0;
        bad |= jset(e, "labels", labels) < 0;
        labels = NULL;
        /* value: a histogram's is its sum, as struct ferry_sample has it. */
        bad |= jset(e, "value", json_real(sn.value[i])) < 0;
        if (f->type == MM_HISTOGRAM) {
            bad |= jset(e, "count", json_integer((json_int_t)sn.count[i])) < 0;
            bad |= jset(e, "sum", json_real(sn.value[i])) < 0;
            json_t *bk = json_array();
            bad |= !bk;
            /* The +Inf bucket is the count: left out, as in ferry_sample. */
            for (size_t b = 0; !bad && b < f->n_buckets; b++) {
                json_t *one = json_object();
                bad |= !one;
                bad |= !bad && jset(one, "le", json_real(f->buckets[b])) < 0;
                bad |= !bad && jset(one, "count", json_integer((json_int_t)sn.buckets[i * nb + b])) < 0;
                bad |= !one || json_array_append_new(bk, one) < 0;
            }
            bad |= jset(e, "buckets", bk) < 0;
        }
        bad |= !e || json_array_append_new(series, e) < 0;
    }
    snap_fini(&sn);
    bad |= jset(o, "label_keys", keys) < 0;
    keys = NULL;
    bad |= jset(o, "series", series) < 0;
    series = NULL;
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

char *mm_render_json(struct mm *m)
{
    if (!m)
        return NULL;
    struct mm_family *fams[MM_FAMILIES_MAX];
    size_t n = families_now(m, fams);
    json_t *root = json_object(), *arr = json_array();
    int bad = !root || !arr;
    for (size_t i = 0; !bad && i < n; i++)
        bad |= json_array_append_new(arr, family_json(fams[i])) < 0;
    /* The registry's own counter, as a family like the others. */
    uint64_t dropped = atomic_load_explicit(&m->dropped, memory_order_relaxed);
    if (!bad) {
        json_t *d = json_pack("{s:s, s:s, s:s, s:[], s:[{s:{}, s:f}]}", "name", MM_DROPPED_NAME, "type",
                              "counter", "help", MM_DROPPED_HELP,
                              "label_keys", "series", "labels", "value", (double)dropped);
        bad |= json_array_append_new(arr, d) < 0;
    }
    bad |= jset(root, "families", arr) < 0;
    arr = NULL;
    char *text = bad ? NULL : json_dumps(root, JSON_COMPACT);
    json_decref(root);
    json_decref(arr);
    return text;
}
