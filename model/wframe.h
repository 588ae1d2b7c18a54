/* wframe — the framing between ferry-model-server and worker.py (docs/
 * models.md "Workers", worker.py's docstring): 8-byte frame headers, tensor
 * lists with 8-aligned data. Reading checks every field, since a worker
 * runs the user's code and may send anything. */
#ifndef FERRY_MODEL_WFRAME_H
#define FERRY_MODEL_WFRAME_H

#include "infer.h"
#include "pool.h"

#include <stddef.h>
#include <stdint.h>

/* Frame kinds. */
#define K_READY 'R'  /* worker: the model is loaded */
#define K_INFER 'I'  /* server: a batch of input tensors */
#define K_OUT 'O'    /* worker: the output tensors */
#define K_ERROR 'E'  /* worker: UTF-8 error text */

/* One frame: 0 with kind and a malloc'd NUL-terminated body, -1 on EOF or
 * a read error, -2 on a frame this side will not take. */
int wframe_read(int fd, int *kind, uint8_t **body, size_t *len);
/* An 'O' body into tensors (each data malloc'd); -1 when malformed. */
int wframe_parse_outputs(const uint8_t *b, size_t len, struct infer_result *res);
/* Write an 'I' frame of these inputs, each the concatenation of its
 * segments, with one sendmsg per IOV_MAX pieces and no SIGPIPE. 0 or
 * -errno. */
int wframe_send_batch(int fd, const struct pool_input *in, size_t n);

#endif
