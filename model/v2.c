#include "v2.h"

#include "opensig.h"
#include "tjson.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FERRY_VERSION
#define FERRY_VERSION "0.0.0"
#endif

/* Elements one request may carry: far above what a body under the cap can
 * hold (each element is at least two bytes of JSON), so this only stops a
 * shape product from overflowing before the data length is compared. */
#define V2_ELEMENTS_MAX (1ull << 40)

static void shape_text(int rank, const int64_t *shape, char *buf, size_t cap)
{
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < rank && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%" PRId64, i ? "," : "", shape[i]);
    if (o < cap)
        snprintf(buf + o, cap - o, "]");
}

static void input_names(const struct model_cfg *c, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < c->n_inputs && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? ", " : "", c->inputs[i].name);
}

static int find_input(const struct model_cfg *c, const char *name)
{
    for (size_t i = 0; i < c->n_inputs; i++)
        if (strcmp(c->inputs[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* "parameters" wherever the specification allows it: an object of string,
 * number or boolean values. Server-specific parameters are none, so they
 * are read and ignored, but their form is checked. */
static int check_parameters(const json_t *p, const char *where, char *errbuf, size_t cap)
{
    if (!p)
        return 0;
    if (!json_is_object(p))
        return infer_refuse(errbuf, cap, "%s'parameters' is not an object", where);
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)p, k, v) {
        if (!json_is_string(v) && !json_is_number(v) && !json_is_boolean(v))
            return infer_refuse(errbuf, cap, "%sparameter '%s' is not a string, number or boolean",
                          where, k);
    }
    return 0;
}

/* One request input against the signature entry it names. */
static int parse_input(const struct model_cfg *c, const json_t *in, size_t pos,
                       struct infer_req *out, int *seen, char *errbuf, size_t cap)
{
    if (!json_is_object(in))
        return infer_refuse(errbuf, cap, "inputs[%zu] is not an object", pos);
    const json_t *jname = json_object_get(in, "name");
    if (!json_is_string(jname))
        return infer_refuse(errbuf, cap, "inputs[%zu]: 'name' is missing or not a string", pos);
    const char *name = json_string_value(jname);
    int k = find_input(c, name);
    if (k < 0) {
        char names[512];
        input_names(c, names, sizeof names);
        return infer_refuse(errbuf, cap, "input '%.64s': unknown input (the model takes %s)", name,
                      names);
    }
    if (seen[k])
        return infer_refuse(errbuf, cap, "input '%s': given twice", name);
    seen[k] = 1;
    const struct model_io *sig = &c->inputs[k];

    const json_t *jdt = json_object_get(in, "datatype");
    if (!json_is_string(jdt))
        return infer_refuse(errbuf, cap, "input '%s': 'datatype' is missing or not a string", name);
    enum dtype dt;
    if (dtype_parse(json_string_value(jdt), &dt) < 0)
        return infer_refuse(errbuf, cap, "input '%s': unknown datatype '%.32s'", name,
                      json_string_value(jdt));
    if (dt != sig->dtype)
        return infer_refuse(errbuf, cap, "input '%s': datatype %s, the model takes %s", name,
                      dtype_name(dt), dtype_name(sig->dtype));

    const json_t *jshape = json_object_get(in, "shape");
    if (!json_is_array(jshape))
        return infer_refuse(errbuf, cap, "input '%s': 'shape' is missing or not a list", name);
    char want[160], got[160];
    shape_text(sig->rank, sig->shape, want, sizeof want);
    size_t rank = json_array_size(jshape);
    if (rank != (size_t)sig->rank)
        return infer_refuse(errbuf, cap, "input '%s': shape has %zu dimensions, the model takes %s",
                      name, rank, want);
    struct tensor *t = &out->inputs[k];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dt;
    t->rank = (int)rank;
    uint64_t n = 1;
    for (size_t d = 0; d < rank; d++) {
        const json_t *dim = json_array_get(jshape, d);
        if (!json_is_integer(dim) || json_integer_value(dim) < 0)
            return infer_refuse(errbuf, cap, "input '%s': shape dimension %zu is not a whole number",
                          name, d);
        t->shape[d] = (int64_t)json_integer_value(dim);
    }
    shape_text(t->rank, t->shape, got, sizeof got);
    for (size_t d = 0; d < rank; d++) {
        if (sig->shape[d] != -1 && t->shape[d] != sig->shape[d])
            return infer_refuse(errbuf, cap, "input '%s': shape %s does not match the model's %s",
                          name, got, want);
        if (t->shape[d] != 0 && n > V2_ELEMENTS_MAX / (uint64_t)t->shape[d])
            return infer_refuse(errbuf, cap, "input '%s': shape %s is too large", name, got);
        n *= (uint64_t)t->shape[d];
    }
    if (t->shape[0] == 0)
        return infer_refuse(errbuf, cap, "input '%s': shape %s has no rows", name, got);
    t->n = (size_t)n;

    int rc = check_parameters(json_object_get(in, "parameters"), "", errbuf, cap);
    if (rc) {
        char inner[256];
        snprintf(inner, sizeof inner, "%s", errbuf);
        return infer_refuse(errbuf, cap, "input '%s': %s", name, inner);
    }
    const json_t *data = json_object_get(in, "data");
    if (!data)
        return infer_refuse(errbuf, cap, "input '%s': 'data' is missing", name);
    char why[320];
    if (tjson_fill(t, data, 0, why, sizeof why) < 0)
        return infer_refuse(errbuf, cap, "input '%s': %s", name, why);
    return 0;
}

static int parse_outputs(const struct model_cfg *c, const json_t *outs, struct infer_req *out,
                         char *errbuf, size_t cap)
{
    if (!outs)
        return 0;
    if (!json_is_array(outs))
        return infer_refuse(errbuf, cap, "'outputs' is not a list");
    if (json_array_size(outs) > MODEL_IO_MAX)
        return infer_refuse(errbuf, cap, "'outputs' asks for more than %d outputs", MODEL_IO_MAX);
    size_t i;
    const json_t *o;
    json_array_foreach(outs, i, o) {
        const json_t *jn = json_is_object(o) ? json_object_get(o, "name") : NULL;
        if (!json_is_string(jn))
            return infer_refuse(errbuf, cap, "outputs[%zu]: 'name' is missing or not a string", i);
        const char *name = json_string_value(jn);
        if (json_string_length(jn) >= TENSOR_NAME_MAX)
            return infer_refuse(errbuf, cap, "output '%.64s...': unknown output", name);
        if (c->n_outputs) {
            size_t k;
            for (k = 0; k < c->n_outputs; k++)
                if (strcmp(c->outputs[k].name, name) == 0)
                    break;
            if (k == c->n_outputs) {
                char names[512];
                size_t w = 0;
                names[0] = '\0';
                for (size_t j = 0; j < c->n_outputs && w < sizeof names; j++)
                    w += (size_t)snprintf(names + w, sizeof names - w, "%s%s", j ? ", " : "",
                                          c->outputs[j].name);
                return infer_refuse(errbuf, cap, "output '%s': unknown output (the model gives %s)",
                              name, names);
            }
        }
        for (size_t j = 0; j < out->n_requested; j++)
            if (strcmp(out->requested[j], name) == 0)
                return infer_refuse(errbuf, cap, "output '%s': asked for twice", name);
        char where[TENSOR_NAME_MAX + 16];
        snprintf(where, sizeof where, "output '%s': ", name);
        int rc = check_parameters(json_object_get(o, "parameters"), where, errbuf, cap);
        if (rc)
            return rc;
        snprintf(out->requested[out->n_requested++], TENSOR_NAME_MAX, "%s", name);
    }
    return 0;
}

static int parse_infer(const struct model_cfg *c, const char *body, size_t len,
                       struct infer_req *out, char *errbuf, size_t errcap)
{
    memset(out, 0, sizeof *out);
    out->protocol = PROTO_V2;
    if (!body || len == 0)
        return infer_refuse(errbuf, errcap, "the request body is empty (an inference request object)");
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return infer_refuse(errbuf, errcap, "malformed JSON at line %d column %d: %s", jerr.line,
                      jerr.column, jerr.text);
    int rc = 0;
    int seen[MODEL_IO_MAX] = {0};
    if (!json_is_object(root)) {
        rc = infer_refuse(errbuf, errcap, "the request body is not a JSON object");
        goto out;
    }
    const json_t *id = json_object_get(root, "id");
    if (id && !json_is_string(id)) {
        rc = infer_refuse(errbuf, errcap, "'id' is not a string");
        goto out;
    }
    if ((rc = check_parameters(json_object_get(root, "parameters"), "", errbuf, errcap)))
        goto out;
    const json_t *inputs = json_object_get(root, "inputs");
    if (!json_is_array(inputs)) {
        rc = infer_refuse(errbuf, errcap, inputs ? "'inputs' is not a list" : "'inputs' is missing");
        goto out;
    }
    size_t i;
    const json_t *in;
    json_array_foreach(inputs, i, in) {
        if ((rc = parse_input(c, in, i, out, seen, errbuf, errcap)))
            goto out;
    }
    out->n_inputs = c->n_inputs;
    for (size_t k = 0; k < c->n_inputs; k++)
        if (!seen[k]) {
            rc = infer_refuse(errbuf, errcap, "input '%s': missing (%s, shape [...], data)",
                        c->inputs[k].name, dtype_name(c->inputs[k].dtype));
            goto out;
        }
    out->rows = (size_t)out->inputs[0].shape[0];
    for (size_t k = 1; k < c->n_inputs; k++)
        if ((size_t)out->inputs[k].shape[0] != out->rows) {
            rc = infer_refuse(errbuf, errcap,
                        "input '%s': %" PRId64 " rows (first dimension), input '%s' has %zu",
                        c->inputs[k].name, out->inputs[k].shape[0], c->inputs[0].name,
                        out->rows);
            goto out;
        }
    if ((rc = parse_outputs(c, json_object_get(root, "outputs"), out, errbuf, errcap)))
        goto out;
    if (id && !(out->id = strdup(json_string_value(id)))) {
        rc = infer_refuse(errbuf, errcap, "out of memory");
        goto out;
    }
out:
    json_decref(root);
    if (rc) {
        /* Inputs parsed before the refusal are freed; seen marks them. */
        out->n_inputs = c->n_inputs;
        infer_req_fini(out);
        out->protocol = PROTO_V2;
    }
    return rc;
}

int v2_parse_infer(const struct model_cfg *c, const char *body, size_t len,
                   struct infer_req *out, char *errbuf, size_t errcap)
{
    if (!opensig_open(c))
        return parse_infer(c, body, len, out, errbuf, errcap);
    /* No declared inputs: the request's own, checked against themselves. */
    memset(out, 0, sizeof *out);
    out->protocol = PROTO_V2;
    struct model_cfg *sig = malloc(sizeof *sig);
    if (!sig)
        return infer_refuse(errbuf, errcap, "out of memory");
    int rc = opensig_v2(c, body, len, sig, errbuf, errcap);
    if (rc == 0)
        rc = parse_infer(sig, body, len, out, errbuf, errcap);
    free(sig);
    return rc;
}

static char *dump(json_t *j)
{
    if (!j)
        return NULL;
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

static json_t *tensor_meta(const struct model_io *io)
{
    json_t *shape = json_array();
    for (int d = 0; shape && d < io->rank; d++)
        json_array_append_new(shape, json_integer(io->shape[d]));
    return json_pack("{s:s, s:s, s:o}", "name", io->name, "datatype", dtype_name(io->dtype),
                     "shape", shape);
}

static int requested(const struct infer_req *req, const char *name)
{
    if (req->n_requested == 0)
        return 1;
    for (size_t i = 0; i < req->n_requested; i++)
        if (strcmp(req->requested[i], name) == 0)
            return 1;
    return 0;
}

char *v2_render_infer(const struct model_cfg *c, const struct infer_req *req,
                      const struct infer_result *res)
{
    json_t *outs = json_array();
    if (!outs)
        return NULL;
    for (size_t i = 0; i < res->n_outputs; i++) {
        const struct tensor *t = &res->outputs[i];
        if (!requested(req, t->name))
            continue;
        json_t *shape = json_array();
        for (int d = 0; shape && d < t->rank; d++)
            json_array_append_new(shape, json_integer(t->shape[d]));
        json_t *o = json_pack("{s:s, s:o, s:s, s:o}", "name", t->name, "shape", shape,
                              "datatype", dtype_name(t->dtype) ? dtype_name(t->dtype) : "BYTES",
                              "data", tjson_flat(t));
        if (!o || json_array_append_new(outs, o) < 0) {
            json_decref(outs);
            return NULL;
        }
    }
    json_t *r = json_pack("{s:s, s:s}", "model_name", c->name, "model_version", c->version);
    if (!r) {
        json_decref(outs);
        return NULL;
    }
    if (req->id)
        json_object_set_new(r, "id", json_string(req->id));
    json_object_set_new(r, "outputs", outs);
    return dump(r);
}

char *v2_render_server_metadata(void)
{
    return dump(json_pack("{s:s, s:s, s:[]}", "name", "ferry", "version", FERRY_VERSION,
                          "extensions"));
}

char *v2_render_model_metadata(const struct model_cfg *c)
{
    json_t *ins = json_array(), *outs = json_array();
    for (size_t i = 0; ins && i < c->n_inputs; i++)
        json_array_append_new(ins, tensor_meta(&c->inputs[i]));
    for (size_t i = 0; outs && i < c->n_outputs; i++)
        json_array_append_new(outs, tensor_meta(&c->outputs[i]));
    /* Platform names are "<project>_<format>" in the specification. */
    const char *platform = c->format == MODEL_SKLEARN ? "sklearn_joblib" : "python_ferry";
    return dump(json_pack("{s:s, s:[s], s:s, s:o, s:o}", "name", c->name, "versions",
                          c->version, "platform", platform, "inputs", ins, "outputs", outs));
}

char *v2_render_error(const char *msg)
{
    if (!msg)
        msg = "error";
    json_t *s = json_string(msg);
    if (!s) {
        /* A name cut short inside a UTF-8 sequence: keep the ASCII. */
        char *copy = strdup(msg);
        if (!copy)
            return NULL;
        for (char *p = copy; *p; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
        s = json_string(copy);
        free(copy);
    }
    return dump(json_pack("{s:o}", "error", s));
}
