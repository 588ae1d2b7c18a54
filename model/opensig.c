#include "opensig.h"

#include "infer.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

int opensig_open(const struct model_cfg *c)
{
    return c->format == MODEL_PYTHON && c->n_inputs == 0;
}

static int find(const struct model_cfg *c, const char *name)
{
    for (size_t i = 0; i < c->n_inputs; i++)
        if (strcmp(c->inputs[i].name, name) == 0)
            return 1;
    return 0;
}

/* One more input named name; a name seen before is left to the parser
 * (which answers "given twice" or reads the value again). */
static int add(struct model_cfg *c, const char *name, enum dtype dt, int rank,
               const int64_t *shape, char *errbuf, size_t cap)
{
    if (strlen(name) >= TENSOR_NAME_MAX)
        return infer_refuse(errbuf, cap, "input '%.32s...': a name is at most %d bytes", name,
                      TENSOR_NAME_MAX - 1);
    if (find(c, name))
        return 0;
    if (c->n_inputs >= MODEL_IO_MAX)
        return infer_refuse(errbuf, cap, "more than %d inputs", MODEL_IO_MAX);
    struct model_io *io = &c->inputs[c->n_inputs++];
    memset(io, 0, sizeof *io);
    snprintf(io->name, sizeof io->name, "%s", name);
    io->dtype = dt;
    io->rank = rank;
    for (int d = 0; d < rank; d++)
        io->shape[d] = shape ? shape[d] : -1;
    io->shape[0] = -1;
    return 0;
}

static json_t *load(const char *body, size_t len)
{
    if (!body || len == 0)
        return NULL;
    return json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
}

int opensig_v2(const struct model_cfg *c, const char *body, size_t len, struct model_cfg *out,
               char *errbuf, size_t cap)
{
    memcpy(out, c, sizeof *out);
    out->n_inputs = 0;
    json_t *root = load(body, len);
    const json_t *inputs = json_object_get(root, "inputs");
    int rc = 0;
    if (json_is_array(inputs) && json_array_size(inputs) == 0)
        rc = infer_refuse(errbuf, cap, "'inputs' is empty (the model takes the inputs a request names)");
    size_t i;
    const json_t *in;
    json_array_foreach(inputs, i, in) {
        if (rc)
            break;
        const json_t *jn = json_object_get(in, "name");
        if (!json_is_string(jn))
            continue;
        /* A datatype or shape the parser will refuse is taken as given:
         * the parser names the input and what is wrong with it. */
        enum dtype dt = DT_FP64;
        const json_t *jdt = json_object_get(in, "datatype");
        if (json_is_string(jdt))
            dtype_parse(json_string_value(jdt), &dt);
        const json_t *js = json_object_get(in, "shape");
        int64_t shape[TENSOR_RANK_MAX];
        int rank = 1;
        if (json_is_array(js) && json_array_size(js) >= 1 &&
            json_array_size(js) <= TENSOR_RANK_MAX) {
            rank = (int)json_array_size(js);
            for (int d = 0; d < rank; d++) {
                const json_t *x = json_array_get(js, (size_t)d);
                shape[d] = json_is_integer(x) && json_integer_value(x) >= 0
                               ? (int64_t)json_integer_value(x)
                               : -1;
            }
        } else if (json_is_array(js)) {
            rank = json_array_size(js) == 0 ? 1 : TENSOR_RANK_MAX;
            for (int d = 0; d < rank; d++)
                shape[d] = -1;
            if (json_array_size(js) == 0) {
                rc = infer_refuse(errbuf, cap, "input '%.64s': shape [] has no rows",
                            json_string_value(jn));
                break;
            }
            rc = infer_refuse(errbuf, cap, "input '%.64s': shape has %zu dimensions, at most %d",
                        json_string_value(jn), json_array_size(js), TENSOR_RANK_MAX);
            break;
        } else {
            shape[0] = -1;
        }
        rc = add(out, json_string_value(jn), dt, rank, shape, errbuf, cap);
    }
    json_decref(root);
    return rc;
}

/* A column's datatype from its first value: strings are BYTES, booleans
 * BOOL, anything else FP64 (what pandas would make of mixed numbers). */
static enum dtype kind_of(const json_t *v)
{
    if (json_is_string(v))
        return DT_BYTES;
    if (json_is_boolean(v))
        return DT_BOOL;
    return DT_FP64;
}

static int columns_of_object(struct model_cfg *out, const json_t *o, char *errbuf, size_t cap)
{
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        /* {"inputs": {name: rows}}: the column's first row. */
        const json_t *first = json_is_array(v) ? json_array_get(v, 0) : v;
        int rank = 1;
        int64_t shape[TENSOR_RANK_MAX] = {-1};
        const json_t *probe = first;
        if (json_is_array(v))
            while (json_is_array(probe) && rank < TENSOR_RANK_MAX) {
                shape[rank++] = -1;
                probe = json_array_get(probe, 0);
            }
        int rc = add(out, k, kind_of(json_is_array(v) ? probe : v), json_is_array(v) ? rank : 1,
                     shape, errbuf, cap);
        if (rc)
            return rc;
    }
    return 0;
}

/* A list of rows: objects name the columns, anything else is one input,
 * "input-0", of whole rows. */
static int columns_of_rows(struct model_cfg *out, const json_t *rows, char *errbuf, size_t cap)
{
    const json_t *r0 = json_array_get(rows, 0);
    if (!r0)
        return 0;
    if (json_is_object(r0))
        return columns_of_object(out, r0, errbuf, cap);
    int rank = 1;
    int64_t shape[TENSOR_RANK_MAX] = {-1};
    const json_t *probe = r0;
    while (json_is_array(probe) && rank < TENSOR_RANK_MAX) {
        shape[rank++] = -1;
        probe = json_array_get(probe, 0);
    }
    return add(out, "input-0", kind_of(probe), rank, shape, errbuf, cap);
}

int opensig_mlflow(const struct model_cfg *c, const char *body, size_t len,
                   struct model_cfg *out, char *errbuf, size_t cap)
{
    memcpy(out, c, sizeof *out);
    out->n_inputs = 0;
    json_t *root = load(body, len);
    int rc = 0;
    const json_t *v;
    if ((v = json_object_get(root, "dataframe_split"))) {
        const json_t *cols = json_object_get(v, "columns");
        const json_t *data = json_object_get(v, "data");
        const json_t *r0 = json_array_get(data, 0);
        if (json_is_array(cols)) {
            size_t j;
            const json_t *name;
            json_array_foreach(cols, j, name) {
                if (!json_is_string(name))
                    continue; /* the parser says which */
                const json_t *x = json_array_get(r0, j);
                if ((rc = add(out, json_string_value(name), kind_of(x), 1, NULL, errbuf, cap)))
                    break;
            }
        } else if (json_is_array(r0)) {
            int64_t shape[2] = {-1, -1};
            rc = add(out, "input-0", kind_of(json_array_get(r0, 0)), 2, shape, errbuf, cap);
        }
    } else if ((v = json_object_get(root, "dataframe_records"))) {
        if (json_is_object(json_array_get(v, 0)))
            rc = columns_of_object(out, json_array_get(v, 0), errbuf, cap);
    } else if ((v = json_object_get(root, "instances"))) {
        rc = columns_of_rows(out, v, errbuf, cap);
    } else if ((v = json_object_get(root, "inputs"))) {
        rc = json_is_object(v) ? columns_of_object(out, v, errbuf, cap)
                               : columns_of_rows(out, v, errbuf, cap);
    }
    if (!rc && root && json_is_object(root) && out->n_inputs == 0 &&
        (json_object_get(root, "dataframe_split") || json_object_get(root, "dataframe_records") ||
         json_object_get(root, "instances") || json_object_get(root, "inputs")))
        rc = infer_refuse(errbuf, cap, "no rows to take the model's inputs from");
    json_decref(root);
    return rc;
}
