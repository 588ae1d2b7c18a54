#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char detail[1024];

int err_set(int code, const char *fmt, ...)
{
    /* Formatted apart, then copied: callers may pass err_detail() (or
     * err_message()) as an argument to prefix it, and vsnprintf into the
     * buffer it reads from is undefined. */
    char buf[sizeof detail];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    memcpy(detail, buf, sizeof detail);
    return code;
}

const char *err_detail(void) { return detail; }

void err_clear(void) { detail[0] = '\0'; }

const char *err_message(int code)
{
    return detail[0] ? detail : ferry_strerror(code);
}

const char *ferry_strerror(int err)
{
    switch (err) {
    case FERRY_OK: return "success";
    case FERRY_E_INVALID: return "invalid input";
    case FERRY_E_SPEC: return "ferry.yaml does not follow the schema";
    case FERRY_E_DIGEST: return "content does not match its digest";
    case FERRY_E_SIGNATURE: return "signature is invalid";
    case FERRY_E_UNTRUSTED: return "not signed by a trusted key";
    case FERRY_E_KEYPERM: return "secret key is readable by group or others";
    case FERRY_E_KEYFORMAT: return "not a ferry key file";
    case FERRY_E_UNSAFE_PATH: return "unsafe path";
    case FERRY_E_UNSAFE_ENTRY: return "forbidden archive entry";
    case FERRY_E_LIMIT: return "size or count limit exceeded";
    case FERRY_E_EXISTS: return "version already published with other content";
    case FERRY_E_NOTFOUND: return "not found";
    case FERRY_E_PROTOCOL: return "malformed or unexpected message";
    case FERRY_E_REMOTE: return "registry reported an error";
    case FERRY_E_TRANSPORT: return "registry unreachable";
    case FERRY_E_STORE: return "metadata store failure";
    case FERRY_E_NOKEYS: return "no trusted keys given";
    case FERRY_E_ARCHIVE: return "bundle could not be read or written";
    default:
        if (err < 0 && err > FERRY_E_BASE)
            return strerror(-err);
        return "unknown error";
    }
}
