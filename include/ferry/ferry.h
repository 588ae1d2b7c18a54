/*
 * ferry.h — the stable client surface of libferry: error codes and the few
 * calls other programs need. Everything else in libferry is internal.
 *
 * Error rule (as libuv): functions return 0 on success and a negative code on
 * failure; system errors are -errno, ferry's own codes are below
 * FERRY_E_BASE so they never collide with errno values. Out parameters are
 * left untouched on failure.
 */
#ifndef FERRY_FERRY_H
#define FERRY_FERRY_H

#ifdef __cplusplus
extern "C" {
#endif

#define FERRY_VERSION_MAJOR 0
#define FERRY_VERSION_MINOR 1
#define FERRY_VERSION_PATCH 0

enum ferry_error {
    FERRY_OK = 0,
    FERRY_E_BASE = -4000,
    FERRY_E_INVALID = -4001,     /* malformed input (bad name, bad field) */
    FERRY_E_SPEC = -4002,        /* ferry.yaml does not follow the schema */
    FERRY_E_DIGEST = -4003,      /* content does not match its digest */
    FERRY_E_SIGNATURE = -4004,   /* signature invalid */
    FERRY_E_UNTRUSTED = -4005,   /* signed, but by no trusted key */
    FERRY_E_KEYPERM = -4006,     /* secret key readable by group or others */
    FERRY_E_KEYFORMAT = -4007,   /* key file is not a ferry key */
    FERRY_E_UNSAFE_PATH = -4008, /* path escapes, is absolute or hostile */
    FERRY_E_UNSAFE_ENTRY = -4009,/* archive entry of a forbidden type or mode */
    FERRY_E_LIMIT = -4010,       /* a size or count cap was exceeded */
    FERRY_E_EXISTS = -4011,      /* version already published, other content */
    FERRY_E_NOTFOUND = -4012,    /* no such artifact, version or blob */
    FERRY_E_PROTOCOL = -4013,    /* malformed or unexpected message */
    FERRY_E_REMOTE = -4014,      /* the registry reported an error */
    FERRY_E_TRANSPORT = -4015,   /* the registry could not be reached */
    FERRY_E_STORE = -4016,       /* metadata store failure */
    FERRY_E_NOKEYS = -4017,      /* no trusted keys were given */
    FERRY_E_ARCHIVE = -4018,     /* bundle could not be read or written */
};

/* Text for any code this library returns, ferry's own or -errno. */
const char *ferry_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif
