/* The model server's request bodies, as an attacker sends them to a model
 * endpoint: Open Inference Protocol (V2) infer requests and MLflow
 * /invocations bodies, parsed and checked against a signature, and the
 * response rendered for what passes. Input: one byte choosing the protocol
 * and the signature (iris as four 1-D columns with a BYTES fifth, or one
 * 2-D input), then the body (NUL-terminated, as the HTTP front end hands
 * it over). */
#include "infer.h"
#include "mlflow.h"
#include "modelcfg.h"
#include "v2.h"

#include <stdlib.h>
#include <string.h>

static const char columns_spec[] =
    "{\"name\":\"iris\",\"version\":\"1\",\"model\":{\"format\":\"python\",\"entry\":\"s.py:M\","
    "\"inputs\":[{\"name\":\"a\",\"datatype\":\"FP64\",\"shape\":[-1]},"
    "{\"name\":\"b\",\"datatype\":\"INT32\",\"shape\":[-1]},"
    "{\"name\":\"c\",\"datatype\":\"BOOL\",\"shape\":[-1]},"
    "{\"name\":\"d\",\"datatype\":\"FP16\",\"shape\":[-1]},"
    "{\"name\":\"e\",\"datatype\":\"BYTES\",\"shape\":[-1]}],"
    "\"outputs\":[{\"name\":\"y\",\"datatype\":\"INT64\",\"shape\":[-1]}]}}";
static const char matrix_spec[] =
    "{\"name\":\"irismx\",\"version\":\"2\",\"model\":{\"format\":\"sklearn\",\"file\":\"m\","
    "\"inputs\":[{\"name\":\"features\",\"datatype\":\"FP32\",\"shape\":[-1,4]}]}}";

/* What passed must be what the signature says. */
static void check(const struct model_cfg *c, const struct infer_req *r)
{
    if (r->n_inputs != c->n_inputs)
        abort();
    for (size_t i = 0; i < r->n_inputs; i++) {
        const struct tensor *t = &r->inputs[i];
        if (t->dtype != c->inputs[i].dtype || t->rank != c->inputs[i].rank)
            abort();
        if (t->rank < 1 || (size_t)t->shape[0] != r->rows)
            abort();
        size_t n = 1;
        for (int d = 0; d < t->rank; d++)
            n *= (size_t)t->shape[d];
        if (n != t->n)
            abort();
        if (dtype_size(t->dtype) && t->nbytes != t->n * dtype_size(t->dtype))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct model_cfg cols, mx;
    static int ready;
    if (!ready) {
        if (model_cfg_parse(columns_spec, &cols) < 0 || model_cfg_parse(matrix_spec, &mx) < 0)
            abort();
        ready = 1;
    }
    if (size < 1)
        return 0;
    const struct model_cfg *c = data[0] & 1 ? &mx : &cols;
    int mlflow = (data[0] >> 1) & 1;
    char *body = malloc(size);
    if (!body)
        abort();
    memcpy(body, data + 1, size - 1);
    body[size - 1] = '\0';
    struct infer_req req;
    memset(&req, 0, sizeof req);
    char err[512];
    int st = mlflow ? mlflow_parse(c, "application/json", body, size - 1, &req, err, sizeof err)
                    : v2_parse_infer(c, body, size - 1, &req, err, sizeof err);
    if (st == 0) {
        check(c, &req);
        /* Echo the inputs as outputs: the renderers meet every datatype. */
        struct infer_result res;
        memset(&res, 0, sizeof res);
        res.n_outputs = 1;
        res.outputs[0] = req.inputs[0];
        res.outputs[0].data = malloc(req.inputs[0].nbytes ? req.inputs[0].nbytes : 1);
        if (!res.outputs[0].data)
            abort();
        memcpy(res.outputs[0].data, req.inputs[0].data, req.inputs[0].nbytes);
        char *out = mlflow ? mlflow_render(c, &req, &res) : v2_render_infer(c, &req, &res);
        free(out);
        infer_result_fini(&res);
        infer_req_fini(&req);
    } else if (st != 400 && st != 404 && st != 413 && st != 415) {
        abort();
    } else if (!memchr(err, '\0', sizeof err) || !err[0]) {
        abort(); /* every refusal names its reason */
    }
    free(body);
    return 0;
}
