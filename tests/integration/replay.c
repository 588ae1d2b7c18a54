/* ferry-replay: a registry that replays a captured desired state, for the
 * envelope tests (a compromised registry or network answering with an old
 * or expired envelope).
 *   ferry-replay capture URL HOST FILE.key OUT
 *       one poll for HOST signed by FILE.key (the host's own key); the
 *       registry's whole answer (its signed envelope included) goes to OUT
 *   ferry-replay serve URL FILE
 *       listens on URL; every poll is answered with FILE's bytes, every
 *       other request with an empty OK; runs until killed */
#include "clock.h"
#include "error.h"
#include "key.h"
#include "wire.h"

#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int capture(const char *url, const char *host, const char *keyfile, const char *out)
{
    struct key_secret k;
    int rc = key_load_secret(keyfile, &k);
    if (rc < 0) {
        fprintf(stderr, "replay: %s\n", err_message(rc));
        return 1;
    }
    Ferry__Wire__PollBody body;
    ferry__wire__poll_body__init(&body);
    body.host = (char *)host;
    body.sent_ms = clock_unix_ms();
    size_t n = ferry__wire__poll_body__get_packed_size(&body);
    uint8_t *buf = malloc(n ? n : 1), sig[crypto_sign_BYTES];
    ferry__wire__poll_body__pack(&body, buf);
    key_sign(&k, buf, n, sig);
    Ferry__Wire__Poll poll;
    ferry__wire__poll__init(&poll);
    poll.host = (char *)host;
    poll.body = (ProtobufCBinaryData){n, buf};
    poll.signature = (ProtobufCBinaryData){sizeof sig, sig};
    Ferry__Wire__Request req;
    ferry__wire__request__init(&req);
    req.body_case = FERRY__WIRE__REQUEST__BODY_POLL;
    req.poll = &poll;

    nng_socket s;
    nng_msg *m = NULL;
    size_t len = ferry__wire__request__get_packed_size(&req);
    if (nng_req0_open(&s) != 0 || nng_dial(s, url, NULL, 0) != 0 ||
        nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 20000) != 0 || nng_msg_alloc(&m, len) != 0) {
        fprintf(stderr, "replay: cannot reach %s\n", url);
        return 1;
    }
    ferry__wire__request__pack(&req, nng_msg_body(m));
    free(buf);
    if (nng_sendmsg(s, m, 0) != 0 || nng_recvmsg(s, &m, 0) != 0) {
        fprintf(stderr, "replay: no answer from %s\n", url);
        return 1;
    }
    Ferry__Wire__Response *r =
        ferry__wire__response__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
    if (!r || r->code != FERRY__WIRE__CODE__OK || !r->desired || !r->desired->envelope) {
        fprintf(stderr, "replay: the answer is not a desired state in an envelope: %s\n",
                r && r->error ? r->error : "undecodable");
        return 1;
    }
    ferry__wire__response__free_unpacked(r, NULL);
    FILE *f = fopen(out, "wb");
    if (!f || fwrite(nng_msg_body(m), 1, nng_msg_len(m), f) != nng_msg_len(m) || fclose(f) != 0) {
        fprintf(stderr, "replay: %s: cannot write\n", out);
        return 1;
    }
    nng_msg_free(m);
    nng_close(s);
    return 0;
}

static int serve(const char *url, const char *file)
{
    FILE *f = fopen(file, "rb");
    static uint8_t answer[WIRE_MAX_MSG > (1 << 20) ? 1 << 20 : WIRE_MAX_MSG];
    size_t alen = f ? fread(answer, 1, sizeof answer, f) : 0;
    if (!f || alen == 0) {
        fprintf(stderr, "replay: %s: cannot read\n", file);
        return 1;
    }
    fclose(f);
    nng_socket s;
    if (nng_rep0_open(&s) != 0 || nng_listen(s, url, NULL, 0) != 0) {
        fprintf(stderr, "replay: cannot listen on %s\n", url);
        return 1;
    }
    fprintf(stderr, "replay: serving on %s\n", url);
    uint8_t ok[16];
    Ferry__Wire__Response empty;
    ferry__wire__response__init(&empty);
    size_t oklen = ferry__wire__response__pack(&empty, ok);
    for (;;) {
        nng_msg *m = NULL;
        if (nng_recvmsg(s, &m, 0) != 0)
            continue;
        Ferry__Wire__Request *req =
            ferry__wire__request__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
        int is_poll = req && req->body_case == FERRY__WIRE__REQUEST__BODY_POLL;
        if (req)
            ferry__wire__request__free_unpacked(req, NULL);
        nng_msg_clear(m);
        nng_msg_append(m, is_poll ? answer : ok, is_poll ? alen : oklen);
        if (nng_sendmsg(s, m, 0) != 0)
            nng_msg_free(m);
    }
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0)
        return 1;
    if (argc == 6 && strcmp(argv[1], "capture") == 0)
        return capture(argv[2], argv[3], argv[4], argv[5]);
    if (argc == 4 && strcmp(argv[1], "serve") == 0)
        return serve(argv[2], argv[3]);
    fprintf(stderr, "usage: ferry-replay capture URL HOST FILE.key OUT | serve URL FILE\n");
    return 2;
}
