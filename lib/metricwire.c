#include "metricwire.h"
#include "error.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAMPLE_NEED (offsetof(struct ferry_sample, bucket_count) + sizeof(((struct ferry_sample *)0)->bucket_count))

static int name_chars(const char *s, size_t max, int colon)
{
    if (!s || !*s || strlen(s) > max)
        return 0;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':') ||
                 (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

int metric_name_ok(const char *s) { return name_chars(s, FERRY_METRIC_NAME_MAX, 1); }

int metric_label_key_ok(const char *s)
{
    /* "__" names are reserved for the system, as Prometheus has it. */
    return name_chars(s, FERRY_METRIC_LABEL_KEY_MAX, 0) && strncmp(s, "__", 2) != 0;
}

/* jansson checks the UTF-8: no hand-written decoder. */
static int utf8_ok(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    if (!j)
        return 0;
    json_decref(j);
    return 1;
}

const char *metric_type_name(int type)
{
    switch (type) {
    case FERRY__WIRE__METRIC_TYPE__METRIC_GAUGE: return "gauge";
    case FERRY__WIRE__METRIC_TYPE__METRIC_COUNTER: return "counter";
    case FERRY__WIRE__METRIC_TYPE__METRIC_HISTOGRAM: return "histogram";
    default: return "unknown";
    }
}


int metric_check(const Ferry__Wire__Metric *m)
{
    if (!metric_name_ok(m->name))
        return err_set(FERRY_E_INVALID, "metric name must match [a-zA-Z_:][a-zA-Z0-9_:]* and be 1-%d bytes",
                       FERRY_METRIC_NAME_MAX);
    if (m->type != FERRY__WIRE__METRIC_TYPE__METRIC_GAUGE && m->type != FERRY__WIRE__METRIC_TYPE__METRIC_COUNTER &&
        m->type != FERRY__WIRE__METRIC_TYPE__METRIC_HISTOGRAM)
        return err_set(FERRY_E_INVALID, "metric %s: unknown type %d", m->name, (int)m->type);
    if (!isfinite(m->value))
        return err_set(FERRY_E_INVALID, "metric %s: value is not a finite number", m->name);
    if (m->type == FERRY__WIRE__METRIC_TYPE__METRIC_COUNTER && m->value < 0)
        return err_set(FERRY_E_INVALID, "metric %s: a counter cannot be negative", m->name);
    if (m->n_labels > FERRY_METRIC_LABELS_MAX)
        return err_set(FERRY_E_LIMIT, "metric %s: %zu labels, at most %d", m->name, m->n_labels,
                       FERRY_METRIC_LABELS_MAX);
    for (size_t i = 0; i < m->n_labels; i++) {
        const Ferry__Wire__Label *l = m->labels[i];
        if (!metric_label_key_ok(l->key))
            return err_set(FERRY_E_INVALID,
                           "metric %s: label keys must match [a-zA-Z_][a-zA-Z0-9_]*, be 1-%d bytes and not "
                           "start with __",
                           m->name, FERRY_METRIC_LABEL_KEY_MAX);
        size_t vl = l->value ? strlen(l->value) : 0;
        if (vl > FERRY_METRIC_LABEL_VALUE_MAX)
            return err_set(FERRY_E_LIMIT, "metric %s: label %s: value of %zu bytes, at most %d", m->name, l->key,
                           vl, FERRY_METRIC_LABEL_VALUE_MAX);
        if (!utf8_ok(l->value ? l->value : "", vl))
            return err_set(FERRY_E_INVALID, "metric %s: label %s: value is not UTF-8", m->name, l->key);
        for (size_t j = 0; j < i; j++)
            if (strcmp(m->labels[j]->key, l->key) == 0)
                return err_set(FERRY_E_INVALID, "metric %s: label %s given twice", m->name, l->key);
    }
    if (m->type != FERRY__WIRE__METRIC_TYPE__METRIC_HISTOGRAM) {
        if (m->n_buckets || m->count)
            return err_set(FERRY_E_INVALID, "metric %s: only a histogram has buckets and a count", m->name);
        return 0;
    }
    if (m->n_buckets > FERRY_METRIC_BUCKETS_MAX)
        return err_set(FERRY_E_LIMIT, "metric %s: %zu buckets, at most %d", m->name, m->n_buckets,
                       FERRY_METRIC_BUCKETS_MAX);
    for (size_t i = 0; i < m->n_buckets; i++) {
        const Ferry__Wire__MetricBucket *b = m->buckets[i];
        if (!isfinite(b->le) || (i > 0 && !(b->le > m->buckets[i - 1]->le)))
            return err_set(FERRY_E_INVALID, "metric %s: bucket bounds must be finite and increasing", m->name);
        if ((i > 0 && b->count < m->buckets[i - 1]->count) || b->count > m->count)
            return err_set(FERRY_E_INVALID,
                           "metric %s: bucket counts must be cumulative and at most the count", m->name);
    }
    return 0;
}

void metric_free(Ferry__Wire__Metric *m)
{
    if (m)
        ferry__wire__metric__free_unpacked(m, NULL);
}

static int no_memory(void) { return err_set(-ENOMEM, "out of memory building metrics"); }

int metric_from_sample(const struct ferry_sample *s, Ferry__Wire__Metric **out)
{
    if (!s || s->struct_size < SAMPLE_NEED)
        return err_set(FERRY_E_INVALID, "metric sample: struct_size %u, need at least %zu", s ? s->struct_size : 0,
                       (size_t)SAMPLE_NEED);
    if (!s->name || !metric_name_ok(s->name))
        return err_set(FERRY_E_INVALID, "metric name must match [a-zA-Z_:][a-zA-Z0-9_:]* and be 1-%d bytes",
                       FERRY_METRIC_NAME_MAX);
    size_t nl = 0;
    while (s->labels && s->labels[nl] && nl <= 2 * FERRY_METRIC_LABELS_MAX)
        nl++;
    if (nl > 2 * FERRY_METRIC_LABELS_MAX)
        return err_set(FERRY_E_LIMIT, "metric %s: more than %d labels", s->name, FERRY_METRIC_LABELS_MAX);
    if (nl % 2)
        return err_set(FERRY_E_INVALID, "metric %s: label %s has no value", s->name, s->labels[nl - 1]);
    if (s->type == FERRY_METRIC_HISTOGRAM && s->n_buckets > FERRY_METRIC_BUCKETS_MAX)
        return err_set(FERRY_E_LIMIT, "metric %s: %u buckets, at most %d", s->name, s->n_buckets,
                       FERRY_METRIC_BUCKETS_MAX);
    if (s->type == FERRY_METRIC_HISTOGRAM && s->n_buckets && (!s->bucket_le || !s->bucket_count))
        return err_set(FERRY_E_INVALID, "metric %s: buckets without bounds or counts", s->name);
    /* Key lengths before copying, so nothing unbounded is duplicated. */
    for (size_t i = 0; i < nl; i++)
        if (strnlen(s->labels[i], 256) > (i % 2 ? FERRY_METRIC_LABEL_VALUE_MAX : FERRY_METRIC_LABEL_KEY_MAX))
            return err_set(FERRY_E_LIMIT, "metric %s: label %s longer than %d bytes", s->name, i % 2 ? "value" : "key",
                           i % 2 ? FERRY_METRIC_LABEL_VALUE_MAX : FERRY_METRIC_LABEL_KEY_MAX);

    Ferry__Wire__Metric *m = malloc(sizeof *m);
    if (!m)
        return no_memory();
    ferry__wire__metric__init(m);
    int rc = 0;
    if (!(m->name = strdup(s->name)))
        rc = no_memory();
    m->type = s->type == FERRY_METRIC_COUNTER     ? FERRY__WIRE__METRIC_TYPE__METRIC_COUNTER
              : s->type == FERRY_METRIC_HISTOGRAM ? FERRY__WIRE__METRIC_TYPE__METRIC_HISTOGRAM
              : s->type == FERRY_METRIC_GAUGE     ? FERRY__WIRE__METRIC_TYPE__METRIC_GAUGE
                                                  : (Ferry__Wire__MetricType)99; /* refused by the check */
    m->value = s->value;
    if (rc == 0 && nl) {
        m->labels = calloc(nl / 2, sizeof *m->labels);
        if (!m->labels)
            rc = no_memory();
        for (size_t i = 0; rc == 0 && i < nl / 2; i++) {
            Ferry__Wire__Label *l = malloc(sizeof *l);
            if (!l) {
                rc = no_memory();
                break;
            }
            ferry__wire__label__init(l);
            m->labels[m->n_labels++] = l;
            if (!(l->key = strdup(s->labels[2 * i])) || !(l->value = strdup(s->labels[2 * i + 1])))
                rc = no_memory();
        }
    }
    if (rc == 0 && s->type == FERRY_METRIC_HISTOGRAM) {
        m->count = s->count;
        if (s->n_buckets && !(m->buckets = calloc(s->n_buckets, sizeof *m->buckets)))
            rc = no_memory();
        for (uint32_t i = 0; rc == 0 && i < s->n_buckets; i++) {
            Ferry__Wire__MetricBucket *b = malloc(sizeof *b);
            if (!b) {
                rc = no_memory();
                break;
            }
            ferry__wire__metric_bucket__init(b);
            b->le = s->bucket_le[i];
            b->count = s->bucket_count[i];
            m->buckets[m->n_buckets++] = b;
        }
    }
    if (rc == 0)
        rc = metric_check(m);
    if (rc < 0) {
        metric_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int metric_from_v1(const struct ferry_metric *v, Ferry__Wire__Metric **out)
{
    char name[sizeof v->name + 1];
    memcpy(name, v->name, sizeof v->name);
    name[sizeof v->name] = '\0'; /* a plugin may fill all 64 bytes */
    struct ferry_sample s = {.struct_size = sizeof s, .type = FERRY_METRIC_GAUGE, .name = name, .value = v->value};
    return metric_from_sample(&s, out);
}

int metricwire_fill_body(Ferry__Wire__ReportBody *body, Ferry__Wire__WorkloadMetrics *const *runs, size_t n)
{
    body->metrics = NULL;
    body->n_metrics = 0;
    body->metrics_dropped = 0;
    if (n == 0)
        return 0;
    Ferry__Wire__WorkloadMetrics **v = calloc(n, sizeof *v);
    if (!v)
        return no_memory();
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        /* Its encoded size plus the field's tag and length. */
        size_t sz = ferry__wire__workload_metrics__get_packed_size(runs[i]) + 6;
        if (body->n_metrics >= METRICS_REPORT_MAX_RUNS || used + sz > METRICS_REPORT_MAX_BYTES) {
            body->metrics_dropped++;
            continue;
        }
        used += sz;
        v[body->n_metrics++] = runs[i];
    }
    body->metrics = v;
    return 0;
}

json_t *metricwire_json(const Ferry__Wire__WorkloadMetrics *w)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < w->n_metrics; i++) {
        const Ferry__Wire__Metric *m = w->metrics[i];
        json_t *labels = json_object();
        for (size_t k = 0; labels && k < m->n_labels; k++)
            json_object_set_new(labels, m->labels[k]->key, json_string(m->labels[k]->value ? m->labels[k]->value : ""));
        json_t *o = json_pack("{s:s, s:s, s:o, s:f}", "name", m->name ? m->name : "", "type",
                              metric_type_name(m->type), "labels", labels ? labels : json_object(), "value",
                              isfinite(m->value) ? m->value : 0.0);
        if (o && m->type == FERRY__WIRE__METRIC_TYPE__METRIC_HISTOGRAM) {
            json_t *b = json_array();
            for (size_t k = 0; b && k < m->n_buckets; k++)
                json_array_append_new(b, json_pack("{s:f, s:I}", "le", m->buckets[k]->le, "count",
                                                   (json_int_t)m->buckets[k]->count));
            json_object_set_new(o, "count", json_integer((json_int_t)m->count));
            json_object_set_new(o, "buckets", b ? b : json_array());
        }
        if (o)
            json_array_append_new(arr, o);
    }
    return json_pack("{s:s, s:s, s:I, s:I, s:o}", "name", w->name ? w->name : "", "version",
                     w->version ? w->version : "", "collected_ms", (json_int_t)w->collected_ms, "dropped",
                     (json_int_t)w->dropped, "metrics", arr ? arr : json_array());
}
