/* TLS for remote connections (nng's tls+tcp:// transport, mbedTLS inside
 * nng). A URL decides: tcp:// is plain (for loopback), tls+tcp:// is TLS. */
#ifndef FERRY_LIB_TLS_H
#define FERRY_LIB_TLS_H

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

int tls_url(const char *url);
/* Client side: the CA file from FERRY_TLS_CA (required), the server name
 * from FERRY_TLS_SERVER_NAME or else the URL's host. */
int tls_client_config(const char *url, nng_tls_config **out);
/* Server side: one PEM file with the certificate (chain) and its key. */
int tls_server_config(const char *cert_key_file, nng_tls_config **out);

#endif
