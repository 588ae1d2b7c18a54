/* The registry wire protocol: one protobuf Request per nng REQ message, one
 * Response per REP message (proto/wire.proto). */
#ifndef FERRY_LIB_WIRE_H
#define FERRY_LIB_WIRE_H

#include "wire.pb-c.h"

#include <nng/nng.h>

#define WIRE_CHUNK (1u << 20)            /* blob bytes per chunk message */
#define WIRE_MAX_MSG (WIRE_CHUNK + (64u << 10) + MANIFEST_MAX_BYTES)
#define WIRE_DEFAULT_URL "tcp://127.0.0.1:7400"

#include "manifest.h"

/* Encode a Request or Response into a new nng message. */
int wire_pack_request(const Ferry__Wire__Request *req, nng_msg **out);
int wire_pack_response(const Ferry__Wire__Response *resp, nng_msg **out);

/* Map between ferry error codes and wire codes. */
Ferry__Wire__Code wire_code_of(int err);
int wire_error_of(Ferry__Wire__Code code);

/* Make the nng error readable: "tcp://...: connection refused". */
int wire_nng_error(int nng_rv, const char *url);

#endif
