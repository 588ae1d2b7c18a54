/* Actions from the CLI (lib/action.h): sign one for a host's workload,
 * hand it to the registry, and wait for the host's reply, which comes back
 * on the host's own channel. Shared by `ferry logs` and `ferry action`. */
#include "action.h"
#include "cli.h"
#include "client.h"
#include "clock.h"
#include "error.h"

#include <errno.h>
#include <time.h>

int cli_action_submit(struct client *c, const struct key_secret *k, const char *host,
                      const char *workload, const char *verb, const char *request_json,
                      uint32_t ttl_ms, uint32_t wait_ms, uint8_t id[ACTION_ID_LEN],
                      Ferry__Wire__Response **resp)
{
    Ferry__Wire__SignedAction *sa = NULL;
    int rc = action_sign(k, host, workload, verb, request_json, clock_unix_ms(), ttl_ms, &sa, id);
    if (rc < 0)
        return rc;
    Ferry__Wire__Request req;
    Ferry__Wire__ActionSubmit as;
    ferry__wire__request__init(&req);
    ferry__wire__action_submit__init(&as);
    as.action = sa;
    as.wait_ms = wait_ms;
    req.body_case = FERRY__WIRE__REQUEST__BODY_ACTION_SUBMIT;
    req.action_submit = &as;
    rc = client_call(c, &req, resp);
    action_signed_free(sa);
    if (rc == 0 && (*resp)->body_case != FERRY__WIRE__RESPONSE__BODY_ACTION_RESULT) {
        client_response_free(*resp);
        *resp = NULL;
        rc = err_set(FERRY_E_PROTOCOL, "registry sent an unexpected reply");
    }
    return rc;
}

/* Until the host's reply is in, or the deadline (monotonic ms). */
int cli_action_await(struct client *c, const char *host, const uint8_t id[ACTION_ID_LEN],
                     uint64_t deadline, int timeout_s, Ferry__Wire__Response **resp)
{
    for (;;) {
        if (*resp && (*resp)->action_result->done)
            return 0;
        client_response_free(*resp);
        *resp = NULL;
        uint64_t now = clock_mono_ms();
        if (now >= deadline)
            return err_set(FERRY_E_TRANSPORT,
                           "host %s did not answer within %d s (is its agent running?)", host,
                           timeout_s);
        uint64_t left = deadline - now;
        Ferry__Wire__Request req;
        Ferry__Wire__ActionAwait aw;
        ferry__wire__request__init(&req);
        ferry__wire__action_await__init(&aw);
        aw.id = (ProtobufCBinaryData){ACTION_ID_LEN, (uint8_t *)id};
        aw.wait_ms = (uint32_t)(left < ACTION_TTL_MAX_MS ? left : ACTION_TTL_MAX_MS);
        req.body_case = FERRY__WIRE__REQUEST__BODY_ACTION_AWAIT;
        req.action_await = &aw;
        uint64_t t0 = clock_mono_ms();
        int rc = client_call(c, &req, resp);
        if (rc == 0 && (*resp)->body_case != FERRY__WIRE__RESPONSE__BODY_ACTION_RESULT)
            rc = err_set(FERRY_E_PROTOCOL, "registry sent an unexpected reply");
        if (rc < 0)
            return rc;
        /* The registry lets only a few requests wait at once; the others
         * are answered at once and ask again shortly. */
        if (!(*resp)->action_result->done && clock_mono_ms() - t0 < 50) {
            struct timespec ts = {0, 50 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
}

