#include "tls.h"
#include "error.h"
#include "fsutil.h"

#include <unistd.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tls_url(const char *url) { return url && strncmp(url, "tls+tcp://", 10) == 0; }

int tls_client_config(const char *url, nng_tls_config **out)
{
    const char *ca = getenv("FERRY_TLS_CA");
    if (!ca || !*ca)
        return err_set(FERRY_E_INVALID,
                       "registry %s: TLS needs the CA certificate: set FERRY_TLS_CA", url);
    char name[256];
    const char *override = getenv("FERRY_TLS_SERVER_NAME");
    if (override && *override) {
        snprintf(name, sizeof name, "%s", override);
    } else {
        /* tls+tcp://HOST:PORT */
        const char *host = url + 10, *colon = strrchr(host, ':');
        size_t n = colon ? (size_t)(colon - host) : strlen(host);
        snprintf(name, sizeof name, "%.*s", (int)n, host);
    }
    /* nng opens the file itself: check first that a read cannot block. */
    int fd = fs_open_regular(ca, NULL);
    if (fd < 0) {
        char why[900];
        snprintf(why, sizeof why, "%s", err_detail());
        return err_set(fd, "FERRY_TLS_CA %s", why);
    }
    close(fd);
    nng_tls_config *cfg = NULL;
    int rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT);
    if (rv == 0)
        rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED);
    if (rv == 0 && (rv = nng_tls_config_ca_file(cfg, ca)) != 0) {
        nng_tls_config_free(cfg);
        return err_set(FERRY_E_INVALID, "FERRY_TLS_CA %s: %s", ca, nng_strerror(rv));
    }
    if (rv == 0)
        rv = nng_tls_config_server_name(cfg, name);
    if (rv != 0) {
        if (cfg)
            nng_tls_config_free(cfg);
        return err_set(FERRY_E_TRANSPORT, "registry %s: TLS: %s", url, nng_strerror(rv));
    }
    *out = cfg;
    return 0;
}

int tls_server_config(const char *cert_key_file, nng_tls_config **out)
{
    int fd = fs_open_regular(cert_key_file, NULL);
    if (fd < 0)
        return fd;
    close(fd);
    nng_tls_config *cfg = NULL;
    int rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_SERVER);
    if (rv == 0 && (rv = nng_tls_config_cert_key_file(cfg, cert_key_file, NULL)) != 0) {
        nng_tls_config_free(cfg);
        return err_set(FERRY_E_INVALID, "%s: not a PEM certificate with its key: %s",
                       cert_key_file, nng_strerror(rv));
    }
    if (rv != 0)
        return err_set(FERRY_E_TRANSPORT, "TLS: %s", nng_strerror(rv));
    *out = cfg;
    return 0;
}
