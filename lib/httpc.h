/* httpc — one HTTP/1.1 request over nng's HTTP client, with one deadline
 * for the whole exchange. Used by `ferry predict` (lib) and by the model
 * plugin (compiled into it: it depends on nng and libc only, not on the
 * rest of libferry, since plugins do not link the agent's library). */
#ifndef FERRY_LIB_HTTPC_H
#define FERRY_LIB_HTTPC_H

#include <stddef.h>

struct httpc_reply {
    int status;          /* HTTP status */
    char *body;          /* malloc'd, NUL-terminated (the body may hold NULs) */
    size_t len;
    char content_type[128];
};

/* method "GET" or "POST"; url "http://HOST:PORT/PATH"; body/content_type
 * only for POST (content_type NULL: none sent). A reply body over max_body
 * bytes is refused. 0 and *out filled (free with httpc_reply_free), or a
 * negative errno: -ECONNREFUSED, -ETIMEDOUT, -ECONNRESET, -EMSGSIZE (body
 * too big), -EPROTO (not HTTP), -EINVAL (bad URL or arguments), -ENOMEM.
 * Blocking. */
int httpc_request(const char *method, const char *url, const char *content_type,
                  const void *body, size_t body_len, int timeout_ms, size_t max_body,
                  struct httpc_reply *out);
void httpc_reply_free(struct httpc_reply *r);
/* A short text for httpc_request's codes. */
const char *httpc_strerror(int rc);

#endif
