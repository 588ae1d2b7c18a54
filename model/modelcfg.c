#include "modelcfg.h"

#include "error.h"
#include "numparse.h"
#include "spec.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Bounds the server enforces on what the schema lets through: one line
 * each, naming the key, so a bad spec never gets as far as a worker. */
#define WORKERS_MAX 256 /* as the manifest allows (lib/spec.c) */
#define MAX_BATCH_MAX 65536
#define MAX_DELAY_US_MAX (10ull * 1000 * 1000)
#define DRIFT_WINDOW_MAX 10000000u
#define BODY_MAX_MAX (1ull << 30)

static int bad(const char *key, const char *fmt, ...) FY_PRINTF(2, 3);
static int bad(const char *key, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return err_set(FERRY_E_SPEC, "model.%s: %s", key, why);
}

static int get_string(const json_t *obj, const char *jkey, const char *key, char *dst,
                      size_t cap, int required)
{
    const json_t *v = json_object_get(obj, jkey);
    if (!v || json_is_null(v)) {
        if (required)
            return bad(key, "required");
        return 0;
    }
    if (!json_is_string(v))
        return bad(key, "must be a string");
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len == 0)
        return bad(key, "must not be empty");
    if (len >= cap || strlen(s) != len)
        return bad(key, "longer than the server takes or holds a NUL");
    memcpy(dst, s, len + 1);
    return 0;
}

/* A whole number in [min, max]; JSON integers only ("2" as text is refused:
 * the YAML reader already made numbers of what the author wrote as one). */
static int get_uint(const json_t *obj, const char *jkey, const char *key, uint64_t min,
                    uint64_t max, uint64_t *out)
{
    const json_t *v = json_object_get(obj, jkey);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v))
        return bad(key, "must be a whole number");
    json_int_t n = json_integer_value(v);
    if (n < 0 || (uint64_t)n < min || (uint64_t)n > max) {
        char why[96];
        snprintf(why, sizeof why, "%lld is not from %llu to %llu", (long long)n,
                 (unsigned long long)min, (unsigned long long)max);
        return bad(key, "%s", why);
    }
    *out = (uint64_t)n;
    return 0;
}

/* "500us", "2ms", "1s" or bare digits of seconds (text as the YAML author
 * wrote it, read as ferry.yaml reads it), or a JSON number of milliseconds,
 * into microseconds. */
static int get_duration_us(const json_t *obj, const char *jkey, const char *key, uint64_t *out)
{
    const json_t *v = json_object_get(obj, jkey);
    if (!v || json_is_null(v))
        return 0;
    uint64_t us;
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        if (n < 0 || (uint64_t)n > MAX_DELAY_US_MAX / 1000)
            return bad(key, "must be from 0 to 10s");
        us = (uint64_t)n * 1000;
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = strlen(s);
        char qkey[96];
        snprintf(qkey, sizeof qkey, "model.%s", key);
        int rc;
        if (len > 2 && strcmp(s + len - 2, "us") == 0) {
            char digits[32];
            if (len - 2 >= sizeof digits)
                return bad(key, "'%s' is not a duration", s);
            memcpy(digits, s, len - 2);
            digits[len - 2] = '\0';
            rc = num_parse_u64(qkey, digits, 0, MAX_DELAY_US_MAX, &us);
        } else {
            uint64_t ms;
            rc = num_parse_duration_ms(qkey, s, 1000, 0, MAX_DELAY_US_MAX / 1000, &ms);
            us = ms * 1000;
        }
        if (rc < 0)
            return bad(key, "'%s' is not a duration from 0 to 10s (500us, 2ms, 1s)", s);
    } else {
        return bad(key, "must be a duration such as 2ms or 500us");
    }
    if (us > MAX_DELAY_US_MAX)
        return bad(key, "must be from 0 to 10s");
    *out = us;
    return 0;
}

static int parse_io(const json_t *arr, const char *what, struct model_io *ios, size_t *n)
{
    *n = 0;
    if (!arr || json_is_null(arr))
        return 0;
    if (!json_is_array(arr))
        return bad(what, "must be a list of {name, datatype, shape}");
    if (json_array_size(arr) > MODEL_IO_MAX)
        return err_set(FERRY_E_SPEC, "model.%s: more than %d entries", what, MODEL_IO_MAX);
    size_t i;
    const json_t *e;
    json_array_foreach(arr, i, e) {
        char key[96];
        struct model_io *io = &ios[i];
        memset(io, 0, sizeof *io);
        if (!json_is_object(e)) {
            snprintf(key, sizeof key, "%s[%zu]", what, i);
            return bad(key, "must be a mapping {name, datatype, shape}");
        }
        snprintf(key, sizeof key, "%s[%zu].name", what, i);
        int rc = get_string(e, "name", key, io->name, sizeof io->name, 1);
        if (rc < 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(ios[j].name, io->name) == 0)
                return bad(key, "'%s' is declared twice", io->name);
        snprintf(key, sizeof key, "%s[%zu].datatype", what, i);
        const json_t *dt = json_object_get(e, "datatype");
        if (!json_is_string(dt))
            return bad(key, "required, one of the V2 datatypes (FP64, INT64, BOOL, BYTES, ...)");
        if (dtype_parse(json_string_value(dt), &io->dtype) < 0)
            return bad(key, "unknown datatype '%s'", json_string_value(dt));
        snprintf(key, sizeof key, "%s[%zu].shape", what, i);
        const json_t *sh = json_object_get(e, "shape");
        if (!json_is_array(sh) || json_array_size(sh) == 0)
            return bad(key, "required, a list of dimensions such as [-1] or [-1, 4]");
        if (json_array_size(sh) > TENSOR_RANK_MAX)
            return err_set(FERRY_E_SPEC, "model.%s: more than %d dimensions", key,
                           TENSOR_RANK_MAX);
        size_t d;
        const json_t *dim;
        json_array_foreach(sh, d, dim) {
            if (!json_is_integer(dim) || json_integer_value(dim) < -1 ||
                json_integer_value(dim) == 0)
                return bad(key, "each dimension is a positive size or -1 (any)");
            io->shape[d] = (int64_t)json_integer_value(dim);
        }
        io->rank = (int)json_array_size(sh);
        (*n)++;
    }
    return 0;
}

/* The two forms a scikit-learn estimator takes: one 1-D input per feature
 * column, or a single 2-D input (not BYTES). None declared: inferred later. */
static int sklearn_inputs_ok(const struct model_cfg *c)
{
    if (c->format != MODEL_SKLEARN || c->n_inputs == 0)
        return 0;
    int columns = 1;
    for (size_t i = 0; i < c->n_inputs; i++)
        if (c->inputs[i].rank != 1)
            columns = 0;
    int matrix = c->n_inputs == 1 && c->inputs[0].rank == 2;
    if (!columns && !matrix)
        return bad("inputs", "sklearn takes 1-D inputs (one per feature column, shape [-1]) or a "
                             "single 2-D input (shape [-1, N])");
    if (matrix && c->inputs[0].dtype == DT_BYTES)
        return bad("inputs", "a 2-D sklearn input cannot be BYTES");
    return 0;
}

int model_cfg_set_inputs(struct model_cfg *c, const char *json)
{
    json_error_t e;
    json_t *j = json_loads(json ? json : "", 0, &e);
    struct model_io ios[MODEL_IO_MAX];
    size_t n = 0;
    int rc = json_is_object(j) ? parse_io(json_object_get(j, "inputs"), "inputs", ios, &n)
                               : bad("inputs", "the worker's signature is not a JSON object");
    json_decref(j);
    if (rc == 0 && n == 0)
        rc = bad("inputs", "the worker named no inputs");
    if (rc < 0)
        return rc;
    struct model_cfg next = *c;
    memcpy(next.inputs, ios, sizeof ios);
    next.n_inputs = n;
    if ((rc = sklearn_inputs_ok(&next)) < 0)
        return rc;
    memcpy(c->inputs, ios, sizeof ios);
    c->n_inputs = n;
    return 0;
}

static int parse_model(const json_t *m, struct model_cfg *c)
{
    const json_t *fmt = json_object_get(m, "format");
    int rc;
    if (!fmt || json_is_null(fmt))
        return bad("format", "required, sklearn or python");
    if (!json_is_string(fmt))
        return bad("format", "must be sklearn or python");
    if (strcmp(json_string_value(fmt), "sklearn") == 0)
        c->format = MODEL_SKLEARN;
    else if (strcmp(json_string_value(fmt), "python") == 0)
        c->format = MODEL_PYTHON;
    else
        return bad("format", "'%s' is not sklearn or python", json_string_value(fmt));

    if (c->format == MODEL_SKLEARN) {
        if ((rc = get_string(m, "file", "file", c->file, sizeof c->file, 1)) < 0)
            return rc;
    } else {
        if ((rc = get_string(m, "entry", "entry", c->entry, sizeof c->entry, 1)) < 0)
            return rc;
        const char *colon = strrchr(c->entry, ':');
        if (!colon || colon == c->entry || colon[1] == '\0')
            return bad("entry", "'%s' is not FILE:CLASS (serve.py:Model)", c->entry);
    }

    strcpy(c->method, "predict");
    if ((rc = get_string(m, "method", "method", c->method, sizeof c->method, 0)) < 0)
        return rc;
    if (c->format == MODEL_SKLEARN && strcmp(c->method, "predict") != 0 &&
        strcmp(c->method, "predict_proba") != 0)
        return bad("method", "'%s' is not predict or predict_proba", c->method);

    if ((rc = parse_io(json_object_get(m, "inputs"), "inputs", c->inputs, &c->n_inputs)) < 0)
        return rc;
    if ((rc = parse_io(json_object_get(m, "outputs"), "outputs", c->outputs, &c->n_outputs)) < 0)
        return rc;
    /* Requests are checked against the inputs before they reach the model.
     * A sklearn estimator that was not told them says itself what it takes
     * once loaded (model_cfg_set_inputs); a python model that was not takes
     * the inputs each request names (opensig.h). */
    if ((rc = sklearn_inputs_ok(c)) < 0)
        return rc;

    if ((rc = get_string(m, "reference", "reference", c->reference, sizeof c->reference, 0)) < 0)
        return rc;
    if (c->reference[0] && c->format == MODEL_PYTHON && c->n_inputs == 0)
        return bad("reference", "needs model.inputs with format python (drift is measured per "
                                "declared input)");

    uint64_t v = 1;
    if ((rc = get_uint(m, "workers", "workers", 1, WORKERS_MAX, &v)) < 0)
        return rc;
    c->workers = (unsigned)v;

    const json_t *b = json_object_get(m, "batching");
    c->max_batch = 1;
    c->max_delay_us = 0;
    if (b && !json_is_null(b)) {
        if (!json_is_object(b))
            return bad("batching", "must be a mapping {max_batch, max_delay}");
        v = 1;
        if ((rc = get_uint(b, "max_batch", "batching.max_batch", 1, MAX_BATCH_MAX, &v)) < 0)
            return rc;
        c->max_batch = (unsigned)v;
        if ((rc = get_duration_us(b, "max_delay", "batching.max_delay", &c->max_delay_us)) < 0)
            return rc;
    }

    const json_t *d = json_object_get(m, "drift");
    c->drift_window = 1000;
    c->drift_alert = 0.2;
    if (d && !json_is_null(d)) {
        if (!json_is_object(d))
            return bad("drift", "must be a mapping {window, alert}");
        v = c->drift_window;
        if ((rc = get_uint(d, "window", "drift.window", 1, DRIFT_WINDOW_MAX, &v)) < 0)
            return rc;
        c->drift_window = (unsigned)v;
        const json_t *a = json_object_get(d, "alert");
        if (a && !json_is_null(a)) {
            if (!json_is_number(a) || !(json_number_value(a) > 0) ||
                !isfinite(json_number_value(a)))
                return bad("drift.alert", "must be a number above 0 (a PSI such as 0.2)");
            c->drift_alert = json_number_value(a);
        }
    }

    c->max_body = MODEL_BODY_MAX_DEFAULT;
    const json_t *mb = json_object_get(m, "max_body");
    if (mb && !json_is_null(mb)) {
        uint64_t bytes = 0;
        if (json_is_integer(mb)) {
            if ((rc = get_uint(m, "max_body", "max_body", 1024, BODY_MAX_MAX, &bytes)) < 0)
                return rc;
        } else if (json_is_string(mb)) {
            /* As ferry.yaml writes it (the plugin passes the YAML's text:
             * 16Mi, 1Gi, 500M = 500000000), else the flags' form (16MiB). */
            const char *text = json_string_value(mb);
            if ((spec_size_parse(text, &bytes) != NULL &&
                 num_parse_size("model.max_body", text, 0, UINT64_MAX, &bytes) < 0) ||
                bytes < 1024 || bytes > BODY_MAX_MAX)
                return bad("max_body", "'%s' is not a size from 1Ki to 1Gi (like 16Mi)", text);
        } else {
            return bad("max_body", "must be a size such as 16Mi");
        }
        c->max_body = (size_t)bytes;
    }
    return 0;
}

int model_cfg_parse(const char *spec_json, struct model_cfg *out)
{
    memset(out, 0, sizeof *out);
    if (!spec_json)
        return err_set(FERRY_E_SPEC, "spec: missing");
    json_error_t jerr;
    json_t *root = json_loads(spec_json, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return err_set(FERRY_E_SPEC, "spec: not JSON: %s", jerr.text);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = err_set(FERRY_E_SPEC, "spec: not a JSON object");
        goto out;
    }
    const json_t *name = json_object_get(root, "name");
    const json_t *version = json_object_get(root, "version");
    if (!json_is_string(name) || json_string_length(name) == 0 ||
        json_string_length(name) >= sizeof out->name) {
        rc = err_set(FERRY_E_SPEC, "name: required, a string up to %zu bytes",
                     sizeof out->name - 1);
        goto out;
    }
    if (!json_is_string(version) || json_string_length(version) == 0 ||
        json_string_length(version) >= sizeof out->version) {
        rc = err_set(FERRY_E_SPEC, "version: required, a string up to %zu bytes",
                     sizeof out->version - 1);
        goto out;
    }
    memcpy(out->name, json_string_value(name), json_string_length(name) + 1);
    memcpy(out->version, json_string_value(version), json_string_length(version) + 1);
    const json_t *m = json_object_get(root, "model");
    if (!json_is_object(m)) {
        rc = err_set(FERRY_E_SPEC, "model: required, a mapping with format and file or entry");
        goto out;
    }
    rc = parse_model(m, out);
out:
    json_decref(root);
    if (rc < 0) {
        char keep[512];
        snprintf(keep, sizeof keep, "%s", err_detail());
        memset(out, 0, sizeof *out);
        err_set(rc, "%s", keep);
    }
    return rc;
}
