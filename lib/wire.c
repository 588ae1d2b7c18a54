#include "wire.h"
#include "error.h"

#include <errno.h>

int wire_pack_request(const Ferry__Wire__Request *req, nng_msg **out)
{
    size_t n = ferry__wire__request__get_packed_size(req);
    nng_msg *m;
    if (nng_msg_alloc(&m, n) != 0)
        return -ENOMEM;
    ferry__wire__request__pack(req, nng_msg_body(m));
    *out = m;
    return 0;
}

int wire_pack_response(const Ferry__Wire__Response *resp, nng_msg **out)
{
    size_t n = ferry__wire__response__get_packed_size(resp);
    nng_msg *m;
    if (nng_msg_alloc(&m, n) != 0)
        return -ENOMEM;
    ferry__wire__response__pack(resp, nng_msg_body(m));
    *out = m;
    return 0;
}

Ferry__Wire__Code wire_code_of(int err)
{
    switch (err) {
    case 0: return FERRY__WIRE__CODE__OK;
    case FERRY_E_PROTOCOL: return FERRY__WIRE__CODE__PROTOCOL;
    case FERRY_E_INVALID:
    case FERRY_E_UNSAFE_PATH:
    case FERRY_E_SPEC: return FERRY__WIRE__CODE__INVALID;
    case FERRY_E_NOTFOUND: return FERRY__WIRE__CODE__NOT_FOUND;
    case FERRY_E_EXISTS: return FERRY__WIRE__CODE__EXISTS;
    case FERRY_E_UNTRUSTED: return FERRY__WIRE__CODE__UNTRUSTED;
    case FERRY_E_SIGNATURE: return FERRY__WIRE__CODE__SIGNATURE;
    case FERRY_E_DIGEST: return FERRY__WIRE__CODE__DIGEST;
    case FERRY_E_LIMIT: return FERRY__WIRE__CODE__LIMIT;
    default: return FERRY__WIRE__CODE__INTERNAL;
    }
}

int wire_error_of(Ferry__Wire__Code code)
{
    switch (code) {
    case FERRY__WIRE__CODE__OK: return 0;
    case FERRY__WIRE__CODE__PROTOCOL: return FERRY_E_PROTOCOL;
    case FERRY__WIRE__CODE__INVALID: return FERRY_E_INVALID;
    case FERRY__WIRE__CODE__NOT_FOUND: return FERRY_E_NOTFOUND;
    case FERRY__WIRE__CODE__EXISTS: return FERRY_E_EXISTS;
    case FERRY__WIRE__CODE__UNTRUSTED: return FERRY_E_UNTRUSTED;
    case FERRY__WIRE__CODE__SIGNATURE: return FERRY_E_SIGNATURE;
    case FERRY__WIRE__CODE__DIGEST: return FERRY_E_DIGEST;
    case FERRY__WIRE__CODE__LIMIT: return FERRY_E_LIMIT;
    default: return FERRY_E_REMOTE;
    }
}

int wire_nng_error(int nng_rv, const char *url)
{
    if (nng_rv == NNG_ETIMEDOUT)
        return err_set(FERRY_E_TRANSPORT, "registry %s: timed out", url);
    if (nng_rv == NNG_ECANCELED || nng_rv == NNG_ECLOSED)
        return err_set(FERRY_E_TRANSPORT, "registry %s: connection lost", url);
    if (nng_rv == NNG_ECRYPTO || nng_rv == NNG_EPEERAUTH)
        return err_set(FERRY_E_TRANSPORT,
                       "registry %s: TLS handshake failed: certificate not signed by "
                       "FERRY_TLS_CA, or not issued for the server name",
                       url);
    return err_set(FERRY_E_TRANSPORT, "registry %s: %s", url, nng_strerror(nng_rv));
}
