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
 *   ferry-poke HOST:PORT stall-polls HOST[,HOST...] N CONNS --key FILE.key[,FILE.key...]
 *                                    [--busy NAME@VERSION] [--from ADDR]
 *       CONNS connections, each sending N Polls that wait (they carry the
 *       host's current serial), sent round robin over the connections; the
 *       j-th poll sent is the j-th HOST's (modulo their number), signed by
 *       that host's key (enrolled hosts: the attacker is a compromised
 *       host), each poll of a host with a send time newer than the last.
 *       Give a few times more hosts than the registry has workers, or some
 *       polls are checked out of order and refused as replays.
 *       With --busy, each connection first asks for a chunk of
 *       NAME@VERSION's largest blob, so that the registry's side of it is
 *       stuck sending when the polls are answered. "stalling" ends with
 *       "(serial S)", the first host's serial.
 *   Both print "stalling ..." once everything is sent, a second later
 *   "after 1 s: A connections with replies, C closed, S silent" (peeked at,
 *   not read), then hold their connections, never reading, until killed.
 *   ferry-poke HOST:PORT unsigned-polls HOSTNAME N SERIAL [--from ADDR]
 *       one connection sending N unsigned Polls for HOSTNAME that would
 *       wait (known serial SERIAL, 60 s), four at a time, reading each
 *       four's replies (5 s at most); prints "refused K of N, slowest reply
 *       after MS ms: ERROR" and exits 0 when every one was refused (none
 *       parked).
 *   ferry-poke HOST:PORT conns N SECONDS [--from ADDR]
 *       N connections that do the SP handshake and then stay silent; prints
 *       "open K closed M" whenever the registry closes one, for SECONDS.
 * --from binds the connections to a local address (e.g. 127.0.0.2), so a
 * test can be another peer than the client it protects. */
#include "clock.h"
#include "error.h"
#include "key.h"
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

/* The one place a Poll is built: unsigned when k is NULL, else its fields
 * in a PollBody signed by k with send time sent_ms. The result lives in
 * static storage until the next call. */
static Ferry__Wire__Request *poll_request(const char *host, uint64_t known_serial,
                                          uint32_t wait_ms, const struct key_secret *k,
                                          uint64_t sent_ms)
{
    static Ferry__Wire__Request req;
    static Ferry__Wire__Poll poll;
    static Ferry__Wire__PollBody body;
    static uint8_t buf[256], sig[crypto_sign_BYTES];
    ferry__wire__request__init(&req);
    ferry__wire__poll__init(&poll);
    poll.host = (char *)host;
    poll.known_serial = known_serial;
    poll.wait_ms = wait_ms;
    if (k) {
        ferry__wire__poll_body__init(&body);
        body.host = (char *)host;
        body.known_serial = known_serial;
        body.wait_ms = wait_ms;
        body.sent_ms = sent_ms;
        size_t n = ferry__wire__poll_body__get_packed_size(&body);
        if (n > sizeof buf)
            exit(1);
        ferry__wire__poll_body__pack(&body, buf);
        key_sign(k, buf, n, sig);
        poll.body = (ProtobufCBinaryData){n, buf};
        poll.signature = (ProtobufCBinaryData){sizeof sig, sig};
    }
    req.body_case = FERRY__WIRE__REQUEST__BODY_POLL;
    req.poll = &poll;
    return &req;
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

/* What the stalling modes send: the next request to pipeline on connection
 * conn (valid until the next call). */
typedef const Ferry__Wire__Request *(*next_request_fn)(void *ctx, long conn);

static int stall(const char *hostport, const Ferry__Wire__Request *first, next_request_fn next,
                 void *ctx, long n, long conns, const char *from, const char *what,
                 const char *tail)
{
    int *fds = calloc((size_t)conns, sizeof *fds);
    long sent = 0, open_ = 0;
    for (long c = 0; c < conns; c++) {
        fds[c] = sp_connect(hostport, from);
        if (fds[c] < 0)
            continue;
        open_++;
        if (first && sp_send_request(fds[c], (uint32_t)(c * (n + 1) + n + 1), first) < 0) {
            close(fds[c]);
            fds[c] = -1;
        }
    }
    /* Round robin over the connections: the registry takes one request per
     * connection in turn, so signed polls arrive in the order of their send
     * times (each must be newer than the last one the registry saw). */
    for (long i = 0; i < n; i++)
        for (long c = 0; c < conns; c++) {
            if (fds[c] < 0)
                continue;
            if (sp_send_request(fds[c], (uint32_t)(c * (n + 1) + i + 1), next(ctx, c)) < 0) {
                close(fds[c]);
                fds[c] = -1;
                continue;
            }
            sent++;
        }
    printf("stalling: %ld connections, %ld %s requests sent, never reading%s\n", open_, sent,
           what, tail ? tail : "");
    fflush(stdout);
    /* A second later, look (without reading) at what came back: a parked
     * poll sends nothing, an answer or a refusal does. */
    struct timespec second = {1, 0};
    while (nanosleep(&second, &second) < 0 && errno == EINTR)
        ;
    long answered = 0, closed = 0, silent = 0;
    char example[200] = "";
    for (long c = 0; c < conns; c++) {
        if (fds[c] < 0)
            continue;
        uint8_t b[2048];
        ssize_t k = recv(fds[c], b, sizeof b, MSG_PEEK | MSG_DONTWAIT);
        if (k > 0 && !example[0] && k >= 12) {
            /* Say what the first reply was: length, request id, response. */
            uint64_t len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | b[i];
            Ferry__Wire__Response *r =
                len >= 4 && len - 4 <= (uint64_t)(k - 12)
                    ? ferry__wire__response__unpack(NULL, (size_t)len - 4, b + 12)
                    : NULL;
            snprintf(example, sizeof example, " (first: %s)",
                     r ? (r->error && *r->error ? r->error : "an answer") : "a large reply");
            if (r)
                ferry__wire__response__free_unpacked(r, NULL);
        }
        if (k > 0)
            answered++;
        else if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            closed++;
        else
            silent++;
    }
    printf("after 1 s: %ld connections with replies, %ld closed, %ld silent%s\n", answered, closed,
           silent, example);
    fflush(stdout);
    hold_forever();
    return 0;
}

static const Ferry__Wire__Request *same_request(void *ctx, long conn)
{
    (void)conn;
    return ctx;
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
    return stall(hostport, NULL, same_request, creq, n, conns, from, "GetChunk", NULL);
}

/* The signed polls of one host, each newer than the last. */
struct poll_seq {
    char host[72];
    struct key_secret key;
    uint64_t serial, sent_ms;
};

/* The identities a flood polls as, in turn: the j-th poll sent is
 * seq[j % n]'s. The registry checks up to a worker per request at once, so
 * two polls of one host that close together could be checked in either
 * order, and the later-sent one checked first makes the other a replay. */
struct poll_flood {
    struct poll_seq *seq;
    size_t n, next;
};

static const Ferry__Wire__Request *next_poll(void *ctx, long conn)
{
    (void)conn;
    struct poll_flood *f = ctx;
    struct poll_seq *q = &f->seq[f->next++ % f->n];
    return poll_request(q->host, q->serial, 60000, &q->key, ++q->sent_ms);
}

static int load_key(const char *path, struct key_secret *k)
{
    int rc = key_load_secret(path, k);
    if (rc < 0)
        fprintf(stderr, "poke: %s\n", err_message(rc));
    return rc;
}

/* Learn the host's serial with one signed poll that does not wait, and a
 * send time the registry takes as newer than any it has seen from this
 * host (an earlier run may have used times ahead of the clock: try later
 * ones, staying well inside the registry's 5 minute window). */
static int poll_probe(const char *hostport, struct poll_seq *q)
{
    uint64_t now = clock_unix_ms();
    const char *why = "no reply";
    for (uint64_t ahead = 0; ahead <= 128000; ahead = ahead ? ahead * 2 : 1000) {
        Ferry__Wire__Response *r =
            ask(url_of(hostport), poll_request(q->host, 0, 0, &q->key, now + ahead));
        if (r && r->body_case == FERRY__WIRE__RESPONSE__BODY_DESIRED) {
            q->serial = r->desired->serial;
            q->sent_ms = now + ahead;
            return 0;
        }
        why = r && r->error ? r->error : "no reply";
        if (!r || !strstr(why, "not newer than the last one seen"))
            break;
    }
    fprintf(stderr, "poke: poll for %s: %s\n", q->host, why);
    return -1;
}

/* One item of a comma-separated list: the i-th, into out. */
static int list_item(const char *list, size_t i, char *out, size_t cap)
{
    const char *p = list;
    for (; i > 0; i--) {
        p = strchr(p, ',');
        if (!p)
            return -1;
        p++;
    }
    size_t len = strcspn(p, ",");
    if (len == 0 || len >= cap)
        return -1;
    snprintf(out, cap, "%.*s", (int)len, p);
    return 0;
}

static size_t list_len(const char *list)
{
    size_t n = 1;
    for (const char *p = list; (p = strchr(p, ',')); p++)
        n++;
    return n;
}

static int stall_polls(const char *hostport, const char *hosts, long n, long conns,
                       const char *keyfiles, const char *busy, const char *from)
{
    if (!keyfiles) {
        fprintf(stderr, "poke: stall-polls needs --key FILE.key (the host's key)\n");
        return 2;
    }
    size_t nh = list_len(hosts);
    if (list_len(keyfiles) != nh) {
        fprintf(stderr, "poke: stall-polls: %zu hosts but %zu keys\n", nh, list_len(keyfiles));
        return 2;
    }
    static struct poll_flood f;
    f.seq = calloc(nh, sizeof *f.seq);
    f.n = nh;
    for (size_t i = 0; i < nh; i++) {
        char path[4096];
        if (list_item(hosts, i, f.seq[i].host, sizeof f.seq[i].host) < 0 ||
            list_item(keyfiles, i, path, sizeof path) < 0) {
            fprintf(stderr, "poke: stall-polls: empty or too long item %zu\n", i + 1);
            return 2;
        }
        if (load_key(path, &f.seq[i].key) < 0)
            return 1;
    }
    const Ferry__Wire__Request *first = NULL;
    if (busy && !(first = chunk_request(hostport, busy)))
        return 1;
    /* Learn each host's serial, so the polls wait instead of being answered. */
    for (size_t i = 0; i < nh; i++)
        if (poll_probe(hostport, &f.seq[i]) < 0)
            return 1;
    char tail[64];
    snprintf(tail, sizeof tail, " (serial %llu)", (unsigned long long)f.seq[0].serial);
    return stall(hostport, first, next_poll, &f, n, conns, from, "Poll", tail);
}

/* Read one SP reply (length, request id, body) from fd. NULL on a closed
 * or silent connection. */
static Ferry__Wire__Response *sp_read_reply(int fd)
{
    uint8_t hdr[12];
    if (recv(fd, hdr, sizeof hdr, MSG_WAITALL) != (ssize_t)sizeof hdr)
        return NULL;
    uint64_t total = 0;
    for (int i = 0; i < 8; i++)
        total = total << 8 | hdr[i];
    if (total < 4 || total > WIRE_MAX_MSG)
        return NULL;
    size_t len = (size_t)total - 4;
    uint8_t *buf = malloc(len ? len : 1);
    Ferry__Wire__Response *r = NULL;
    if (buf && (len == 0 || recv(fd, buf, len, MSG_WAITALL) == (ssize_t)len))
        r = ferry__wire__response__unpack(NULL, len, buf);
    free(buf);
    return r;
}

static long ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static int unsigned_polls(const char *hostport, const char *host, long n, uint64_t serial,
                          const char *from)
{
    int fd = sp_connect(hostport, from);
    if (fd < 0) {
        fprintf(stderr, "poke: cannot connect to %s\n", hostport);
        return 1;
    }
    /* A parked poll would stay silent for a minute: wait 5 s at most. */
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    /* A few at a time: more unread replies than the registry queues per
     * connection would get this client dropped as one that does not read. */
    enum { WINDOW = 4 };
    long refused = 0, slowest = 0, i = 0;
    char first[300] = "no reply";
    while (i < n) {
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        long w = 0;
        for (; w < WINDOW && i + w < n; w++)
            if (sp_send_request(fd, (uint32_t)(i + w + 1),
                                poll_request(host, serial, 60000, NULL, 0)) < 0)
                break;
        long got = 0;
        for (; got < w; got++) {
            Ferry__Wire__Response *r = sp_read_reply(fd);
            if (!r)
                break;
            if (r->code != FERRY__WIRE__CODE__OK && refused++ == 0)
                snprintf(first, sizeof first, "%s", r->error ? r->error : "?");
            ferry__wire__response__free_unpacked(r, NULL);
        }
        long ms = ms_since(&t0);
        if (ms > slowest)
            slowest = ms;
        if (got < w || w == 0)
            break;
        i += w;
    }
    printf("refused %ld of %ld, slowest reply after %ld ms: %s\n", refused, n, slowest, first);
    close(fd);
    return refused == n ? 0 : 1;
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

static uint64_t number_u64(const char *s)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || *s == '-' || errno) {
        fprintf(stderr, "poke: %s: not a number\n", s);
        exit(2);
    }
    return (uint64_t)v;
}

static int raw_mode(int argc, char **argv)
{
    const char *from = NULL, *busy = NULL, *key = NULL;
    while (argc >= 5 && argv[argc - 2][0] == '-') {
        if (strcmp(argv[argc - 2], "--from") == 0)
            from = argv[argc - 1];
        else if (strcmp(argv[argc - 2], "--busy") == 0)
            busy = argv[argc - 1];
        else if (strcmp(argv[argc - 2], "--key") == 0)
            key = argv[argc - 1];
        else
            break;
        argc -= 2;
    }
    const char *hostport = argv[1], *mode = argv[2];
    if (strcmp(mode, "stall-chunks") == 0 && argc == 6)
        return stall_chunks(hostport, argv[3], number(argv[4]), number(argv[5]), from);
    if (strcmp(mode, "stall-polls") == 0 && argc == 6)
        return stall_polls(hostport, argv[3], number(argv[4]), number(argv[5]), key, busy, from);
    if (strcmp(mode, "unsigned-polls") == 0 && argc == 6)
        return unsigned_polls(hostport, argv[3], number(argv[4]), number_u64(argv[5]), from);
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
                        "       ferry-poke HOST:PORT stall-polls HOSTNAME N CONNS --key FILE.key [--busy NAME@VERSION] [--from ADDR]\n"
                        "       ferry-poke HOST:PORT unsigned-polls HOSTNAME N SERIAL [--from ADDR]\n"
                        "       ferry-poke HOST:PORT conns N SECONDS [--from ADDR]\n");
        return 2;
    }
    const char *url = argv[1], *mode = argv[2];
    if (strcmp(mode, "stall-chunks") == 0 || strcmp(mode, "stall-polls") == 0 ||
        strcmp(mode, "unsigned-polls") == 0 || strcmp(mode, "conns") == 0)
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
