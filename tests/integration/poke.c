/* ferry-poke: sends hostile or plain messages to a registry, for tests.
 *   ferry-poke URL ping            a well-formed Ping; exit 0 on an OK reply
 *   ferry-poke URL garbage N       N random bytes as one request
 *   ferry-poke URL truncated       a valid Offer request cut in half
 *   ferry-poke URL oversized       a message over the registry's size cap
 *   ferry-poke HOST:PORT rawtcp N  N random bytes on a plain TCP connection
 * Prints the reply's code and error text (or "no reply"). Exit 0 when the
 * exchange went as the mode expects: an error reply for hostile requests,
 * or no reply at all when the registry drops the message. */
#include "wire.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <nng/protocol/reqrep0/req.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The socket is never closed: the process exits right after, and closing a
 * socket that is still pushing an oversized message the peer refused can
 * wait on nng's send machinery. */
static int exchange(const char *url, const void *data, size_t len, int expect_ok)
{
    nng_socket s;
    nng_msg *m;
    if (nng_req0_open(&s) != 0 || nng_dial(s, url, NULL, 0) != 0) {
        fprintf(stderr, "poke: cannot reach %s\n", url);
        return 1;
    }
    /* Bounded both ways: an oversized message makes the registry drop the
     * connection, and REQ would otherwise resend it forever. */
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 3000);
    nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 3000);
    nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, WIRE_MAX_MSG);
    nng_msg_alloc(&m, 0);
    nng_msg_append(m, data, len);
    int sv = nng_sendmsg(s, m, 0);
    if (sv != 0) {
        nng_msg_free(m);
        printf("not sent (%s)\n", nng_strerror(sv));
        return expect_ok ? 1 : 0;
    }
    int rv = nng_recvmsg(s, &m, 0);
    if (rv != 0) {
        printf("no reply (%s)\n", nng_strerror(rv));
        return expect_ok ? 1 : 0;
    }
    Ferry__Wire__Response *r =
        ferry__wire__response__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
    nng_msg_free(m);
    if (!r) {
        printf("undecodable reply\n");
        return 1;
    }
    printf("code %d: %s\n", r->code, r->error);
    int ok = expect_ok ? r->code == FERRY__WIRE__CODE__OK : r->code != FERRY__WIRE__CODE__OK;
    ferry__wire__response__free_unpacked(r, NULL);
    return ok ? 0 : 1;
}

static int rawtcp(const char *hostport, size_t n)
{
    char host[64];
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof host)
        return 1;
    snprintf(host, sizeof host, "%.*s", (int)(colon - hostport), hostport);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    inet_pton(AF_INET, host, &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        fprintf(stderr, "poke: cannot connect to %s\n", hostport);
        return 1;
    }
    uint8_t *buf = malloc(n);
    randombytes_buf(buf, n);
    ssize_t w = write(fd, buf, n);
    (void)w;
    /* Read until the registry hangs up on us (or a short while passes). */
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char sink[256];
    while (read(fd, sink, sizeof sink) > 0)
        ;
    close(fd);
    free(buf);
    printf("sent %zu raw bytes\n", n);
    return 0;
}

static int run(int argc, char **argv);

int main(int argc, char **argv)
{
    int rc = run(argc, argv);
    fflush(stdout);
    _exit(rc);
}

static int run(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc < 3 || sodium_init() < 0) {
        fprintf(stderr, "usage: ferry-poke URL ping|garbage N|truncated|oversized\n"
                        "       ferry-poke HOST:PORT rawtcp N\n");
        return 2;
    }
    const char *url = argv[1], *mode = argv[2];
    size_t n = argc > 3 ? (size_t)strtoull(argv[3], NULL, 10) : 4096;
    if (strcmp(mode, "ping") == 0) {
        Ferry__Wire__Request req;
        Ferry__Wire__Ping ping;
        ferry__wire__request__init(&req);
        ferry__wire__ping__init(&ping);
        req.body_case = FERRY__WIRE__REQUEST__BODY_PING;
        req.ping = &ping;
        uint8_t buf[64];
        size_t len = ferry__wire__request__pack(&req, buf);
        return exchange(url, buf, len, 1);
    }
    if (strcmp(mode, "garbage") == 0) {
        uint8_t *buf = malloc(n);
        randombytes_buf(buf, n);
        /* Wire type 7 does not exist, so the bytes can never happen to form
         * a valid request and the check cannot flake. */
        if (n > 0)
            buf[0] = 0xff;
        int rc = exchange(url, buf, n, 0);
        free(buf);
        return rc;
    }
    if (strcmp(mode, "truncated") == 0) {
        Ferry__Wire__Request req;
        Ferry__Wire__Offer offer;
        ferry__wire__request__init(&req);
        ferry__wire__offer__init(&offer);
        uint8_t fake[512];
        memset(fake, 0x5a, sizeof fake);
        offer.manifest.data = fake;
        offer.manifest.len = sizeof fake;
        req.body_case = FERRY__WIRE__REQUEST__BODY_OFFER;
        req.offer = &offer;
        uint8_t buf[1024];
        size_t len = ferry__wire__request__pack(&req, buf);
        return exchange(url, buf, len / 2, 0);
    }
    if (strcmp(mode, "oversized") == 0) {
        size_t big = WIRE_MAX_MSG + 4096;
        uint8_t *buf = calloc(1, big);
        int rc = exchange(url, buf, big, 0);
        free(buf);
        return rc;
    }
    if (strcmp(mode, "rawtcp") == 0)
        return rawtcp(url, n);
    fprintf(stderr, "poke: unknown mode %s\n", mode);
    return 2;
}
