/* ferry-poke: sends hostile or plain messages to a registry, for tests.
 *   ferry-poke URL ping            a well-formed Ping; exit 0 on an OK reply
 *   ferry-poke URL garbage N       N random bytes as one request
 *   ferry-poke URL truncated       a valid Offer request cut in half
 *   ferry-poke URL oversized       a message over the registry's size cap
 *   ferry-poke HOST:PORT rawtcp N  N random bytes on a plain TCP connection
 * Prints the reply's code and error text (or "no reply"). Exit 0 when the
 * exchange went as the mode expects: an error reply for hostile requests,
 * or no reply at all when the registry drops the message.
 *
 * Clients that never read (raw TCP speaking the SP protocol, not an nng
 * socket: nng would read the replies into its own queues):
 *   ferry-poke HOST:PORT stall-chunks NAME@VERSION N CONNS [--from ADDR]
 *       CONNS connections, each sending N pipelined GetChunk requests for
 *       the largest blob of NAME@VERSION
 *   ferry-poke HOST:PORT stall-polls HOSTNAME N CONNS [--busy NAME@VERSION] [--from ADDR]
 *       CONNS connections, each sending N Polls for HOSTNAME that wait
 *       (they carry the host's current serial); with --busy, each first
 *       asks for a chunk of NAME@VERSION's largest blob, so that the
 *       registry's side of the connection is stuck sending when the polls
 *       are answered
 *   Both print "stalling ..." once everything is sent, then hold their
 *   connections, never reading, until killed.
 *   ferry-poke HOST:PORT conns N SECONDS [--from ADDR]
 *       N connections that do the SP handshake and then stay silent; prints
 *       "open K closed M" whenever the registry closes one, for SECONDS.
 * --from binds the connections to a local address (e.g. 127.0.0.2), so a
 * test can be another peer than the client it protects. */
#include "wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <time.h>
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

/* ---- clients that never read ------------------------------------------------ */

/* One request over an nng socket, reply kept (for what the raw modes need
 * to know first). NULL on failure. */
static Ferry__Wire__Response *ask(const char *url, const Ferry__Wire__Request *req)
{
    nng_socket s;
    nng_msg *m = NULL;
    if (nng_req0_open(&s) != 0 || nng_dial(s, url, NULL, 0) != 0)
        return NULL;
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 5000);
    nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 5000);
    nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, WIRE_MAX_MSG);
    if (wire_pack_request(req, &m) != 0)
        return NULL;
    if (nng_sendmsg(s, m, 0) != 0) {
        nng_msg_free(m);
        return NULL;
    }
    if (nng_recvmsg(s, &m, 0) != 0)
        return NULL;
    Ferry__Wire__Response *r =
        ferry__wire__response__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
    nng_msg_free(m);
    nng_close(s);
    return r;
}

/* The one place a Poll is built: how a poll is authenticated may change. */
static Ferry__Wire__Request *poll_request(const char *host, uint64_t known_serial,
                                          uint32_t wait_ms)
{
    Ferry__Wire__Request *req = calloc(1, sizeof *req);
    Ferry__Wire__Poll *poll = calloc(1, sizeof *poll);
    if (!req || !poll)
        exit(1);
    ferry__wire__request__init(req);
    ferry__wire__poll__init(poll);
    poll->host = (char *)host;
    poll->known_serial = known_serial;
    poll->wait_ms = wait_ms;
    req->body_case = FERRY__WIRE__REQUEST__BODY_POLL;
    req->poll = poll;
    return req;
}

static void request_free(Ferry__Wire__Request *req)
{
    free(req->poll);
    free(req);
}

static int write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* A TCP connection that has done the SP handshake as a REQ0 peer, with a
 * small receive buffer so that unread replies back up at the registry.
 * Handshake (nng src/sp/transport/tcp/tcp.c): each side sends 0x00 'S' 'P'
 * 0x00, its 16-bit protocol number big-endian (REQ0 is 0x30, REP0 0x31),
 * then two zero bytes. -1 when the registry refused or closed it. */
static int sp_connect(const char *hostport, const char *from)
{
    char host[64];
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof host)
        return -1;
    snprintf(host, sizeof host, "%.*s", (int)(colon - hostport), hostport);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct timeval tv = {3, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (from) {
        struct sockaddr_in local = {.sin_family = AF_INET};
        if (inet_pton(AF_INET, from, &local.sin_addr) != 1 ||
            bind(fd, (struct sockaddr *)&local, sizeof local) < 0) {
            fprintf(stderr, "poke: cannot bind to %s\n", from);
            exit(1);
        }
    }
    static const uint8_t hello[8] = {0x00, 'S', 'P', 0x00, 0x00, 0x30, 0x00, 0x00};
    uint8_t theirs[8];
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || write_all(fd, hello, 8) < 0 ||
        recv(fd, theirs, 8, MSG_WAITALL) != 8 || memcmp(theirs, "\0SP\0\0\x31\0\0", 8) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One SP message as REQ frames it: a 64-bit big-endian length, then the
 * request id (4 bytes, top bit set: the end of the backtrace), then the
 * request itself. */
static int sp_send_request(int fd, uint32_t id, const Ferry__Wire__Request *req)
{
    size_t len = ferry__wire__request__get_packed_size(req);
    uint8_t *buf = malloc(12 + len);
    if (!buf)
        return -1;
    uint64_t total = 4 + len;
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)(total >> (56 - 8 * i));
    id |= 0x80000000u;
    buf[8] = (uint8_t)(id >> 24);
    buf[9] = (uint8_t)(id >> 16);
    buf[10] = (uint8_t)(id >> 8);
    buf[11] = (uint8_t)id;
    ferry__wire__request__pack(req, buf + 12);
    int rc = write_all(fd, buf, 12 + len);
    free(buf);
    return rc;
}

static void hold_forever(void)
{
    for (;;)
        pause();
}

static char *url_of(const char *hostport)
{
    static char url[128];
    snprintf(url, sizeof url, "tcp://%s", hostport);
    return url;
}

static int stall(const char *hostport, const Ferry__Wire__Request *first,
                 const Ferry__Wire__Request *req, long n, long conns, const char *from,
                 const char *what)
{
    int *fds = calloc((size_t)conns, sizeof *fds);
    long sent = 0, open_ = 0;
    for (long c = 0; c < conns; c++) {
        fds[c] = sp_connect(hostport, from);
        if (fds[c] < 0)
            continue;
        open_++;
        if (first && sp_send_request(fds[c], (uint32_t)(c * (n + 1) + n + 1), first) < 0)
            continue;
        for (long i = 0; i < n; i++) {
            if (sp_send_request(fds[c], (uint32_t)(c * (n + 1) + i + 1), req) < 0)
                break;
            sent++;
        }
    }
    printf("stalling: %ld connections, %ld %s requests sent, never reading\n", open_, sent, what);
    fflush(stdout);
    hold_forever();
    return 0;
}

/* A GetChunk request for the first MiB of ref's largest blob (built into
 * static storage: one per run). NULL when ref has no manifest. */
static Ferry__Wire__Request *chunk_request(const char *hostport, const char *ref)
{
    char name[128];
    const char *at = strchr(ref, '@');
    if (!at || (size_t)(at - ref) >= sizeof name)
        return NULL;
    snprintf(name, sizeof name, "%.*s", (int)(at - ref), ref);
    Ferry__Wire__Request req;
    Ferry__Wire__GetManifest gm;
    ferry__wire__request__init(&req);
    ferry__wire__get_manifest__init(&gm);
    gm.name = name;
    gm.version = (char *)at + 1;
    req.body_case = FERRY__WIRE__REQUEST__BODY_GET_MANIFEST;
    req.get_manifest = &gm;
    Ferry__Wire__Response *r = ask(url_of(hostport), &req);
    Ferry__Manifest *m = NULL;
    if (!r || r->body_case != FERRY__WIRE__RESPONSE__BODY_MANIFEST ||
        manifest_decode(r->manifest->manifest.data, r->manifest->manifest.len, &m) < 0 ||
        m->n_files == 0) {
        fprintf(stderr, "poke: no manifest for %s\n", ref);
        return NULL;
    }
    size_t big = 0;
    for (size_t i = 1; i < m->n_files; i++)
        if (m->files[i]->size > m->files[big]->size)
            big = i;
    static Ferry__Wire__GetChunk gc;
    static Ferry__Wire__Request creq;
    ferry__wire__get_chunk__init(&gc);
    gc.digest = m->files[big]->digest; /* m is kept for the process's life */
    gc.offset = 0;
    gc.length = WIRE_CHUNK;
    ferry__wire__request__init(&creq);
    creq.body_case = FERRY__WIRE__REQUEST__BODY_GET_CHUNK;
    creq.get_chunk = &gc;
    return &creq;
}

static int stall_chunks(const char *hostport, const char *ref, long n, long conns,
                        const char *from)
{
    Ferry__Wire__Request *creq = chunk_request(hostport, ref);
    if (!creq)
        return 1;
    return stall(hostport, NULL, creq, n, conns, from, "GetChunk");
}

static int stall_polls(const char *hostport, const char *host, long n, long conns,
                       const char *busy, const char *from)
{
    Ferry__Wire__Request *first = NULL;
    if (busy && !(first = chunk_request(hostport, busy)))
        return 1;
    /* Learn the host's serial, so the polls wait instead of being answered. */
    Ferry__Wire__Request *now = poll_request(host, 0, 0);
    Ferry__Wire__Response *r = ask(url_of(hostport), now);
    request_free(now);
    if (!r || r->body_case != FERRY__WIRE__RESPONSE__BODY_DESIRED) {
        fprintf(stderr, "poke: poll for %s: %s\n", host, r && r->error ? r->error : "no reply");
        return 1;
    }
    Ferry__Wire__Request *wait = poll_request(host, r->desired->serial, 60000);
    return stall(hostport, first, wait, n, conns, from, "Poll");
}

static int hold_conns(const char *hostport, long n, long seconds, const char *from)
{
    struct pollfd *p = calloc((size_t)n, sizeof *p);
    long open_ = 0, closed = 0;
    for (long i = 0; i < n; i++) {
        p[i].fd = sp_connect(hostport, from);
        p[i].events = POLLIN | POLLRDHUP;
        if (p[i].fd < 0)
            closed++;
        else
            open_++;
    }
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    printf("open %ld closed %ld\n", open_, closed);
    fflush(stdout);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        long ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        if (ms >= seconds * 1000 || open_ == 0)
            break;
        if (poll(p, (nfds_t)n, (int)(seconds * 1000 - ms)) <= 0)
            continue;
        for (long i = 0; i < n; i++) {
            if (p[i].fd < 0 || !p[i].revents)
                continue;
            char sink[64];
            if (recv(p[i].fd, sink, sizeof sink, MSG_DONTWAIT) > 0)
                continue; /* nothing is ever sent to a silent REQ peer, but be safe */
            close(p[i].fd);
            p[i].fd = -1;
            open_--;
            closed++;
            clock_gettime(CLOCK_MONOTONIC, &t);
            ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
            printf("open %ld closed %ld (after %ld ms)\n", open_, closed, ms);
            fflush(stdout);
        }
    }
    return 0;
}

static long number(const char *s)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 0) {
        fprintf(stderr, "poke: %s: not a number\n", s);
        exit(2);
    }
    return v;
}

static int raw_mode(int argc, char **argv)
{
    const char *from = NULL, *busy = NULL;
    while (argc >= 5 && argv[argc - 2][0] == '-') {
        if (strcmp(argv[argc - 2], "--from") == 0)
            from = argv[argc - 1];
        else if (strcmp(argv[argc - 2], "--busy") == 0)
            busy = argv[argc - 1];
        else
            break;
        argc -= 2;
    }
    const char *hostport = argv[1], *mode = argv[2];
    if (strcmp(mode, "stall-chunks") == 0 && argc == 6)
        return stall_chunks(hostport, argv[3], number(argv[4]), number(argv[5]), from);
    if (strcmp(mode, "stall-polls") == 0 && argc == 6)
        return stall_polls(hostport, argv[3], number(argv[4]), number(argv[5]), busy, from);
    if (strcmp(mode, "conns") == 0 && argc == 5)
        return hold_conns(hostport, number(argv[3]), number(argv[4]), from);
    fprintf(stderr, "poke: %s: wrong arguments\n", mode);
    return 2;
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
                        "       ferry-poke HOST:PORT rawtcp N\n"
                        "       ferry-poke HOST:PORT stall-chunks NAME@VERSION N CONNS [--from ADDR]\n"
                        "       ferry-poke HOST:PORT stall-polls HOSTNAME N CONNS [--busy NAME@VERSION] [--from ADDR]\n"
                        "       ferry-poke HOST:PORT conns N SECONDS [--from ADDR]\n");
        return 2;
    }
    const char *url = argv[1], *mode = argv[2];
    if (strcmp(mode, "stall-chunks") == 0 || strcmp(mode, "stall-polls") == 0 ||
        strcmp(mode, "conns") == 0)
        return raw_mode(argc, argv);
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
