/* GET /api/v1/stream: the page's live updates as a long poll
 * (docs/dashboard.md, docs/api.md "Live updates").
 *
 * The registry keeps one change counter, seq, that moves when what the
 * page shows changes: a host's enrollment, labels, plugins or online
 * status, a workload's version, state, reason, restarts or address, a
 * deployment. A watcher thread finds that out by hashing those fields
 * from the metadata every HTTP_STREAM_TICK_MS while someone is watching,
 * so no code path of the registry has to remember to announce a change.
 *
 * A request with ?since=SEQ equal to the current seq waits (its
 * connection parked, no thread held) until seq moves or ?timeout=
 * seconds pass (default 25); any other request is answered at once with
 * {"seq": N, "changed": bool}. At most HTTP_STREAM_MAX_WAITERS wait at
 * once; one more gets 503. */
#ifndef FERRY_REGISTRY_HTTP_STREAM_H
#define FERRY_REGISTRY_HTTP_STREAM_H

#include <stdint.h>

#define HTTP_STREAM_TICK_MS 250
#define HTTP_STREAM_MAX_WAITERS 32
#define HTTP_STREAM_DEFAULT_TIMEOUT_S 25
#define HTTP_STREAM_MAX_TIMEOUT_S 60
/* The watcher stops hashing this long after the last stream request. */
#define HTTP_STREAM_IDLE_MS 60000

struct http_stream;
struct registry;

/* data_dir: where registry.db is (the watcher opens its own reader). */
int http_stream_open(const char *data_dir, struct registry *reg, int host_ttl_ms,
                     struct http_stream **out);
/* Answers every waiter (with the current seq), joins the watcher and
 * refuses new waiters (503): call before the HTTP library stops, which
 * frees parked requests. */
void http_stream_stop(struct http_stream *s);
/* Stops (when not yet) and frees; after the HTTP library stopped. */
void http_stream_close(struct http_stream *s);
/* The current seq (hashing once first if the watcher is idle). */
uint64_t http_stream_seq(struct http_stream *s);


#endif
