#include "mlflow.h"

#include "opensig.h"
#include "tjson.h"

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* How the request's columns map onto the signature. */
enum sigform {
    SIG_COLUMNS, /* every input 1-D: one input per column, by name */
    SIG_MATRIX,  /* one 2-D input: the columns are its second dimension, by position */
    SIG_TENSORS, /* anything else: only named tensors ({name: rows}) map onto it */
};

static const char *FORMS = "dataframe_split, dataframe_records, instances or inputs";

static enum sigform sig_form(const struct model_cfg *c)
{
    int columns = 1;
    for (size_t i = 0; i < c->n_inputs; i++)
        if (c->inputs[i].rank != 1)
            columns = 0;
    if (columns)
        return SIG_COLUMNS;
    if (c->n_inputs == 1 && c->inputs[0].rank == 2)
        return SIG_MATRIX;
    return SIG_TENSORS;
}

static int find_input(const struct model_cfg *c, const char *name)
{
    for (size_t i = 0; i < c->n_inputs; i++)
        if (strcmp(c->inputs[i].name, name) == 0)
            return (int)i;
    return -1;
}

static void input_names(const struct model_cfg *c, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < c->n_inputs && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? ", " : "", c->inputs[i].name);
}

static int unknown_column(const struct model_cfg *c, const char *where, const char *name,
                          char *errbuf, size_t cap)
{
    char names[512];
    input_names(c, names, sizeof names);
    return infer_refuse(errbuf, cap, "%scolumn '%.64s': unknown column (the model takes %s)", where,
                  name, names);
}

/* application/json, with charset utf-8 if a charset is named; MLflow's
 * text/csv is not served. Parameters other than charset are ignored. */
static int check_content_type(const char *ct, char *errbuf, size_t cap)
{
    const char *want = "application/json";
    if (!ct || !*ct)
        return snprintf(errbuf, cap, "no Content-Type: /invocations takes %s", want), 415;
    const char *p = ct;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t wl = strlen(want);
    const char *end = p + strcspn(p, ";");
    const char *te = end;
    while (te > p && (te[-1] == ' ' || te[-1] == '\t'))
        te--;
    if ((size_t)(te - p) != wl || strncasecmp(p, want, wl) != 0)
        return snprintf(errbuf, cap, "Content-Type '%.80s' is not supported: /invocations takes %s",
                        ct, want),
               415;
    while (*end == ';') {
        const char *q = end + 1;
        end = q + strcspn(q, ";");
        while (*q == ' ' || *q == '\t')
            q++;
        const char *eq = memchr(q, '=', (size_t)(end - q));
        if (!eq)
            continue;
        const char *ke = eq;
        while (ke > q && (ke[-1] == ' ' || ke[-1] == '\t'))
            ke--;
        if ((size_t)(ke - q) != 7 || strncasecmp(q, "charset", 7) != 0)
            continue;
        const char *v = eq + 1, *ve = end;
        while (v < ve && (*v == ' ' || *v == '\t' || *v == '"'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t' || ve[-1] == '"'))
            ve--;
        if (!((ve - v == 5 && strncasecmp(v, "utf-8", 5) == 0) ||
              (ve - v == 4 && strncasecmp(v, "utf8", 4) == 0)))
            return snprintf(errbuf, cap, "charset '%.*s' is not supported: use utf-8",
                            (int)(ve - v > 40 ? 40 : ve - v), v),
                   415;
    }
    return 0;
}

/* cols: for each signature input (by index), the JSON list of its rows. */
struct cols {
    json_t *rows[MODEL_IO_MAX];
};

static int cols_init(struct cols *k, size_t n)
{
    memset(k, 0, sizeof *k);
    for (size_t i = 0; i < n; i++)
        if (!(k->rows[i] = json_array()))
            return -1;
    return 0;
}

static void cols_fini(struct cols *k)
{
    for (size_t i = 0; i < MODEL_IO_MAX; i++)
        json_decref(k->rows[i]);
}

static int append(struct cols *k, size_t i, json_t *v, char *errbuf, size_t cap)
{
    if (json_array_append(k->rows[i], v) < 0)
        return infer_refuse(errbuf, cap, "out of memory");
    return 0;
}

/* Rows given as lists of values, one per column in cols order (indices of
 * signature inputs). For the matrix form the row is the input's row. */
static int rows_by_position(const struct model_cfg *c, enum sigform f, const json_t *rows,
                            const int *colmap, size_t ncols, const char *where, struct cols *k,
                            char *errbuf, size_t cap)
{
    size_t r;
    const json_t *row;
    json_array_foreach(rows, r, row) {
        if (f == SIG_MATRIX) {
            int64_t n = c->inputs[0].shape[1];
            if (!json_is_array(row))
                return infer_refuse(errbuf, cap, "%s[%zu] is not a list of values", where, r);
            if ((n != -1 && (int64_t)json_array_size(row) != n) ||
                (ncols && json_array_size(row) != ncols))
                return infer_refuse(errbuf, cap, "%s[%zu]: %zu values, the model takes %" PRId64,
                              where, r, json_array_size(row),
                              n != -1 ? n : (int64_t)ncols);
            if (append(k, 0, (json_t *)row, errbuf, cap))
                return 400;
            continue;
        }
        if (!json_is_array(row) || json_array_size(row) != ncols)
            return infer_refuse(errbuf, cap, "%s[%zu]: %s, the model takes %zu columns", where, r,
                          json_is_array(row) ? "wrong number of values" : "not a list of values",
                          ncols);
        for (size_t j = 0; j < ncols; j++)
            if (append(k, (size_t)colmap[j], json_array_get(row, j), errbuf, cap))
                return 400;
    }
    return 0;
}

/* Rows given as objects {column: value}. */
static int rows_by_name(const struct model_cfg *c, enum sigform f, const json_t *rows,
                        const char *where, struct cols *k, char *errbuf, size_t cap)
{
    size_t r;
    const json_t *rec;
    const json_t *first = json_array_get(rows, 0);
    json_array_foreach(rows, r, rec) {
        if (!json_is_object(rec))
            return infer_refuse(errbuf, cap, "%s[%zu] is not an object {column: value}", where, r);
        char at[64];
        snprintf(at, sizeof at, "%s[%zu]: ", where, r);
        if (f == SIG_MATRIX) {
            /* The record's columns, in the first record's order. */
            int64_t n = c->inputs[0].shape[1];
            size_t nk = json_object_size(first);
            if (json_object_size(rec) != nk)
                return infer_refuse(errbuf, cap, "%s%zu columns, %s[0] has %zu", at,
                              json_object_size(rec), where, nk);
            if (n != -1 && (int64_t)nk != n)
                return infer_refuse(errbuf, cap, "%s%zu columns, the model takes %" PRId64, at, nk, n);
            json_t *row = json_array();
            const char *key;
            const json_t *v0;
            json_object_foreach((json_t *)first, key, v0) {
                const json_t *v = json_object_get(rec, key);
                if (!v) {
                    json_decref(row);
                    return infer_refuse(errbuf, cap, "%scolumn '%.64s' is missing", at, key);
                }
                json_array_append(row, (json_t *)v);
            }
            int rc = append(k, 0, row, errbuf, cap);
            json_decref(row);
            if (rc)
                return rc;
            continue;
        }
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)rec, key, v) {
            if (find_input(c, key) < 0)
                return unknown_column(c, at, key, errbuf, cap);
        }
        for (size_t i = 0; i < c->n_inputs; i++) {
            const json_t *val = json_object_get(rec, c->inputs[i].name);
            if (!val)
                return infer_refuse(errbuf, cap, "%s%s '%s' is missing", at,
                              f == SIG_COLUMNS ? "column" : "input", c->inputs[i].name);
            if (append(k, i, (json_t *)val, errbuf, cap))
                return 400;
        }
    }
    return 0;
}

static int tabular_only(enum sigform f, const char *form, char *errbuf, size_t cap)
{
    if (f != SIG_TENSORS)
        return 0;
    return infer_refuse(errbuf, cap,
                  "%s needs a tabular model (1-D inputs or one 2-D input): send "
                  "{\"inputs\": {name: rows}}",
                  form);
}

static int form_split(const struct model_cfg *c, enum sigform f, const json_t *v, struct cols *k,
                      char *errbuf, size_t cap)
{
    if (tabular_only(f, "dataframe_split", errbuf, cap))
        return 400;
    if (!json_is_object(v))
        return infer_refuse(errbuf, cap, "dataframe_split is not an object {columns, data}");
    const char *key;
    const json_t *x;
    json_object_foreach((json_t *)v, key, x) {
        if (strcmp(key, "columns") && strcmp(key, "data") && strcmp(key, "index"))
            return infer_refuse(errbuf, cap, "dataframe_split: unknown key '%.64s' (columns, data, index)",
                          key);
    }
    const json_t *columns = json_object_get(v, "columns");
    const json_t *data = json_object_get(v, "data");
    if (!json_is_array(data))
        return infer_refuse(errbuf, cap, "dataframe_split.data is %s",
                      data ? "not a list of rows" : "missing");
    int colmap[MODEL_IO_MAX];
    size_t ncols = 0;
    if (columns && !json_is_array(columns))
        return infer_refuse(errbuf, cap, "dataframe_split.columns is not a list of names");
    if (f == SIG_COLUMNS) {
        if (columns) {
            int seen[MODEL_IO_MAX] = {0};
            if (json_array_size(columns) > MODEL_IO_MAX)
                return infer_refuse(errbuf, cap, "dataframe_split.columns: more than %d columns",
                              MODEL_IO_MAX);
            size_t j;
            const json_t *name;
            json_array_foreach(columns, j, name) {
                if (!json_is_string(name))
                    return infer_refuse(errbuf, cap, "dataframe_split.columns[%zu] is not a string",
                                  j);
                int i = find_input(c, json_string_value(name));
                if (i < 0)
                    return unknown_column(c, "dataframe_split: ", json_string_value(name),
                                          errbuf, cap);
                if (seen[i])
                    return infer_refuse(errbuf, cap, "dataframe_split: column '%s' given twice",
                                  c->inputs[i].name);
                seen[i] = 1;
                colmap[ncols++] = i;
            }
            for (size_t i = 0; i < c->n_inputs; i++)
                if (!seen[i])
                    return infer_refuse(errbuf, cap, "dataframe_split: column '%s' is missing",
                                  c->inputs[i].name);
        } else {
            for (size_t i = 0; i < c->n_inputs; i++)
                colmap[ncols++] = (int)i;
        }
    } else if (columns) {
        size_t j;
        const json_t *name;
        json_array_foreach(columns, j, name) {
            if (!json_is_string(name))
                return infer_refuse(errbuf, cap, "dataframe_split.columns[%zu] is not a string", j);
        }
        ncols = json_array_size(columns);
        int64_t n = c->inputs[0].shape[1];
        if (n != -1 && (int64_t)ncols != n)
            return infer_refuse(errbuf, cap,
                          "dataframe_split: %zu columns, the model's input '%s' takes %" PRId64,
                          ncols, c->inputs[0].name, n);
    }
    return rows_by_position(c, f, data, colmap, ncols, "dataframe_split.data", k, errbuf, cap);
}

/* instances / inputs as a list: rows of objects, rows of values, or (one
 * input) the input's rows themselves. */
static int form_list(const struct model_cfg *c, enum sigform f, const char *form, const json_t *v,
                     struct cols *k, char *errbuf, size_t cap)
{
    if (json_array_size(v) > 0 && json_is_object(json_array_get(v, 0))) {
        if (f == SIG_MATRIX) {
            /* {"x": [..row..]} per instance names the input, else the
             * keys are columns as in dataframe_records. */
            const json_t *o = json_array_get(v, 0);
            if (json_object_size(o) == 1 && json_object_get(o, c->inputs[0].name))
                return rows_by_name(c, SIG_TENSORS, v, form, k, errbuf, cap);
        }
        return rows_by_name(c, f, v, form, k, errbuf, cap);
    }
    if (c->n_inputs == 1) {
        if (json_array_extend(k->rows[0], (json_t *)v) < 0)
            return infer_refuse(errbuf, cap, "out of memory");
        return 0;
    }
    if (f != SIG_COLUMNS)
        return infer_refuse(errbuf, cap,
                      "%s as a list of rows needs a model with one input or 1-D inputs: send "
                      "{\"inputs\": {name: rows}}",
                      form);
    int colmap[MODEL_IO_MAX];
    for (size_t i = 0; i < c->n_inputs; i++)
        colmap[i] = (int)i;
    return rows_by_position(c, f, v, colmap, c->n_inputs, form, k, errbuf, cap);
}

static int form_inputs(const struct model_cfg *c, enum sigform f, const json_t *v, struct cols *k,
                       char *errbuf, size_t cap)
{
    if (json_is_array(v))
        return form_list(c, f, "inputs", v, k, errbuf, cap);
    if (!json_is_object(v))
        return infer_refuse(errbuf, cap, "inputs is not an object {name: rows} or a list of rows");
    const char *key;
    const json_t *x;
    json_object_foreach((json_t *)v, key, x) {
        if (find_input(c, key) < 0) {
            char names[512];
            input_names(c, names, sizeof names);
            return infer_refuse(errbuf, cap, "input '%.64s': unknown input (the model takes %s)", key,
                          names);
        }
    }
    for (size_t i = 0; i < c->n_inputs; i++) {
        const json_t *rows = json_object_get(v, c->inputs[i].name);
        if (!rows)
            return infer_refuse(errbuf, cap, "input '%s': missing", c->inputs[i].name);
        if (!json_is_array(rows))
            return infer_refuse(errbuf, cap, "input '%s': not a list of rows", c->inputs[i].name);
        if (json_array_extend(k->rows[i], (json_t *)rows) < 0)
            return infer_refuse(errbuf, cap, "out of memory");
    }
    return 0;
}

/* The rows of each input into its tensor: shape [rows, sig dims...] with
 * any -1 taken from the first row. */
static int to_tensors(const struct model_cfg *c, enum sigform f, struct cols *k,
                      struct infer_req *out, char *errbuf, size_t cap)
{
    const char *what = f == SIG_COLUMNS ? "column" : "input";
    for (size_t i = 0; i < c->n_inputs; i++) {
        const struct model_io *sig = &c->inputs[i];
        const json_t *rows = k->rows[i];
        size_t n_rows = json_array_size(rows);
        if (n_rows == 0)
            return infer_refuse(errbuf, cap, "%s '%s': no rows", what, sig->name);
        if (i > 0 && n_rows != out->rows)
            return infer_refuse(errbuf, cap, "%s '%s': %zu rows, %s '%s' has %zu", what, sig->name,
                          n_rows, what, c->inputs[0].name, out->rows);
        out->rows = n_rows;
        struct tensor *t = &out->inputs[i];
        snprintf(t->name, sizeof t->name, "%s", sig->name);
        t->dtype = sig->dtype;
        t->rank = sig->rank;
        t->shape[0] = (int64_t)n_rows;
        uint64_t n = n_rows;
        const json_t *probe = json_array_get(rows, 0);
        for (int d = 1; d < sig->rank; d++) {
            if (!json_is_array(probe) || json_array_size(probe) == 0)
                return infer_refuse(errbuf, cap, "%s '%s': row 0 is not a list as the shape needs",
                              what, sig->name);
            t->shape[d] = sig->shape[d] != -1 ? sig->shape[d] : (int64_t)json_array_size(probe);
            probe = json_array_get(probe, 0);
            if (n > (1ull << 40) / (uint64_t)t->shape[d])
                return infer_refuse(errbuf, cap, "%s '%s': too large", what, sig->name);
            n *= (uint64_t)t->shape[d];
        }
        t->n = (size_t)n;
        char why[320];
        if (tjson_fill(t, rows, TJSON_NULL_NAN, why, sizeof why) < 0)
            return infer_refuse(errbuf, cap, "%s '%s': %s", what, sig->name, why);
    }
    out->n_inputs = c->n_inputs;
    return 0;
}

static int parse(const struct model_cfg *c, const char *content_type, const char *body,
                 size_t len, struct infer_req *out, char *errbuf, size_t errcap)
{
    memset(out, 0, sizeof *out);
    out->protocol = PROTO_MLFLOW;
    int rc = check_content_type(content_type, errbuf, errcap);
    if (rc)
        return rc;
    if (!body || len == 0)
        return infer_refuse(errbuf, errcap, "the request body is empty (one of %s)", FORMS);
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return infer_refuse(errbuf, errcap, "malformed JSON at line %d column %d: %s", jerr.line,
                      jerr.column, jerr.text);
    struct cols k;
    if (cols_init(&k, c->n_inputs) < 0) {
        json_decref(root);
        cols_fini(&k);
        return infer_refuse(errbuf, errcap, "out of memory");
    }
    enum sigform f = sig_form(c);
    const char *form = NULL;
    const json_t *val = NULL;
    if (!json_is_object(root)) {
        rc = infer_refuse(errbuf, errcap, "the request body is not a JSON object (one of %s)", FORMS);
        goto out;
    }
    const char *key;
    json_t *x;
    json_object_foreach(root, key, x) {
        if (strcmp(key, "params") == 0) {
            /* MLflow passes params to a model that declares them; ours
             * declare none, so they are checked for form and ignored. */
            if (!json_is_object(x)) {
                rc = infer_refuse(errbuf, errcap, "params is not an object");
                goto out;
            }
            continue;
        }
        if (strcmp(key, "dataframe_split") && strcmp(key, "dataframe_records") &&
            strcmp(key, "instances") && strcmp(key, "inputs")) {
            rc = infer_refuse(errbuf, errcap, "unknown key '%.64s' (the body has one of %s)", key,
                        FORMS);
            goto out;
        }
        if (form) {
            rc = infer_refuse(errbuf, errcap, "both %s and %s: give exactly one of %s", form, key,
                        FORMS);
            goto out;
        }
        form = key;
        val = x;
    }
    if (!form) {
        rc = infer_refuse(errbuf, errcap, "the body has none of %s", FORMS);
        goto out;
    }
    if (strcmp(form, "dataframe_split") == 0) {
        rc = form_split(c, f, val, &k, errbuf, errcap);
    } else if (strcmp(form, "dataframe_records") == 0) {
        if (!(rc = tabular_only(f, form, errbuf, errcap))) {
            if (!json_is_array(val))
                rc = infer_refuse(errbuf, errcap, "dataframe_records is not a list of objects");
            else if (json_array_size(val) > 0 && !json_is_object(json_array_get(val, 0)))
                rc = infer_refuse(errbuf, errcap, "dataframe_records[0] is not an object {column: value}");
            else
                rc = rows_by_name(c, f, val, form, &k, errbuf, errcap);
        }
    } else if (strcmp(form, "instances") == 0) {
        rc = json_is_array(val) ? form_list(c, f, form, val, &k, errbuf, errcap)
                                : infer_refuse(errbuf, errcap, "instances is not a list");
    } else {
        rc = form_inputs(c, f, val, &k, errbuf, errcap);
    }
    if (!rc)
        rc = to_tensors(c, f, &k, out, errbuf, errcap);
out:
    cols_fini(&k);
    json_decref(root);
    if (rc) {
        out->n_inputs = c->n_inputs;
        infer_req_fini(out);
        out->protocol = PROTO_MLFLOW;
    }
    return rc;
}

int mlflow_parse(const struct model_cfg *c, const char *content_type, const char *body,
                 size_t len, struct infer_req *out, char *errbuf, size_t errcap)
{
    if (!opensig_open(c))
        return parse(c, content_type, body, len, out, errbuf, errcap);
    /* No declared inputs: the columns the body names, checked against
     * themselves (a content type is refused before anything is read). */
    memset(out, 0, sizeof *out);
    out->protocol = PROTO_MLFLOW;
    int rc = check_content_type(content_type, errbuf, errcap);
    if (rc)
        return rc;
    struct model_cfg *sig = malloc(sizeof *sig);
    if (!sig)
        return infer_refuse(errbuf, errcap, "out of memory");
    rc = opensig_mlflow(c, body, len, sig, errbuf, errcap);
    if (rc == 0)
        rc = parse(sig, content_type, body, len, out, errbuf, errcap);
    free(sig);
    return rc;
}

char *mlflow_render(const struct model_cfg *c, const struct infer_req *req,
                    const struct infer_result *res)
{
    (void)c;
    (void)req;
    json_t *pred;
    if (res->n_outputs == 1) {
        pred = tjson_rows(&res->outputs[0]);
    } else {
        pred = json_object();
        for (size_t i = 0; pred && i < res->n_outputs; i++) {
            json_t *rows = tjson_rows(&res->outputs[i]);
            if (!rows || json_object_set_new(pred, res->outputs[i].name, rows) < 0) {
                json_decref(pred);
                pred = NULL;
            }
        }
    }
    if (!pred)
        return NULL;
    json_t *r = json_pack("{s:o}", "predictions", pred);
    if (!r)
        return NULL;
    char *s = json_dumps(r, JSON_COMPACT);
    json_decref(r);
    return s;
}
