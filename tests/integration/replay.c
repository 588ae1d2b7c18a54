/* ferry-replay: a registry that replays a captured desired state, for the
 * envelope tests (a compromised registry or network answering with an old
 * or expired envelope).
 *   ferry-replay capture URL HOST FILE.key OUT
 *       one poll for HOST signed by FILE.key (the host's own key); the
 *       registry's whole answer (its signed envelope included) goes to OUT
 *   ferry-replay policy URL FILE.sig OUT
 *       the registry's answer to a policy query, its signature line
 *       replaced by FILE.sig's (a policy signed by another key), to OUT
 *   ferry-replay serve URL FILE [POLICY]
 *       listens on URL; every poll is answered with FILE's bytes, every
 *       policy query with POLICY's (when given), every other request with
 *       an empty OK; runs until killed */
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

static int resign_policy(const char *url, const char *sigfile, const char *out)
{
    char sig[400];
    FILE *f = fopen(sigfile, "r");
    size_t n = f ? fread(sig, 1, sizeof sig - 1, f) : 0;
    if (f)
        fclose(f);
    if (n == 0) {
        fprintf(stderr, "replay: %s: cannot read\n", sigfile);
        return 1;
    }
    sig[n] = '\0';
    Ferry__Wire__GovQuery q;
    ferry__wire__gov_query__init(&q);
    q.what = (char *)"policy";
    Ferry__Wire__Request req;
    ferry__wire__request__init(&req);
    req.body_case = FERRY__WIRE__REQUEST__BODY_GOV_QUERY;
    req.gov_query = &q;
    nng_socket s;
    nng_msg *m = NULL;
    size_t len = ferry__wire__request__get_packed_size(&req);
    if (nng_req0_open(&s) != 0 || nng_dial(s, url, NULL, 0) != 0 ||
        nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 20000) != 0 || nng_msg_alloc(&m, len) != 0) {
        fprintf(stderr, "replay: cannot reach %s\n", url);
        return 1;
    }
    ferry__wire__request__pack(&req, nng_msg_body(m));
    if (nng_sendmsg(s, m, 0) != 0 || nng_recvmsg(s, &m, 0) != 0) {
        fprintf(stderr, "replay: no answer from %s\n", url);
        return 1;
    }
    Ferry__Wire__Response *r =
        ferry__wire__response__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
    nng_msg_free(m);
    nng_close(s);
    if (!r || r->code != FERRY__WIRE__CODE__OK || !r->gov || !r->gov->has_policy) {
        fprintf(stderr, "replay: the answer is not a policy\n");
        return 1;
    }
    char *was = r->gov->signature;
    r->gov->signature = sig;
    size_t olen = ferry__wire__response__get_packed_size(r);
    uint8_t *buf = malloc(olen ? olen : 1);
    ferry__wire__response__pack(r, buf);
    r->gov->signature = was;
    ferry__wire__response__free_unpacked(r, NULL);
    f = fopen(out, "wb");
    int ok = buf && f && fwrite(buf, 1, olen, f) == olen;
    if (f)
        ok = fclose(f) == 0 && ok;
    free(buf);
    if (!ok) {
        fprintf(stderr, "replay: %s: cannot write\n", out);
        return 1;
    }
    return 0;
}

/* The whole of file into buf (at most cap bytes); 0 when unreadable. */
static size_t slurp(const char *file, uint8_t *buf, size_t cap)
{
    FILE *f = fopen(file, "rb");
    size_t n = f ? fread(buf, 1, cap, f) : 0;
    if (f)
        fclose(f);
    if (n == 0)
        fprintf(stderr, "replay: %s: cannot read\n", file);
    return n;
}

static int serve(const char *url, const char *file, const char *policy)
{
    static uint8_t answer[WIRE_MAX_MSG > (1 << 20) ? 1 << 20 : WIRE_MAX_MSG];
    static uint8_t pol[1 << 20];
    size_t alen = slurp(file, answer, sizeof answer);
    size_t plen = policy ? slurp(policy, pol, sizeof pol) : 0;
    if (alen == 0 || (policy && plen == 0))
        return 1;
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
        int is_policy = plen && req && req->body_case == FERRY__WIRE__REQUEST__BODY_GOV_QUERY &&
                        req->gov_query->what && strcmp(req->gov_query->what, "policy") == 0;
        if (req)
            ferry__wire__request__free_unpacked(req, NULL);
        nng_msg_clear(m);
        if (is_poll)
            nng_msg_append(m, answer, alen);
        else if (is_policy)
            nng_msg_append(m, pol, plen);
        else
            nng_msg_append(m, ok, oklen);
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
    if (argc == 5 && strcmp(argv[1], "policy") == 0)
        return resign_policy(argv[2], argv[3], argv[4]);
    if ((argc == 4 || argc == 5) && strcmp(argv[1], "serve") == 0)
        return serve(argv[2], argv[3], argc == 5 ? argv[4] : NULL);
    fprintf(stderr, "usage: ferry-replay capture URL HOST FILE.key OUT | policy URL FILE.sig OUT"
                    " | serve URL FILE [POLICY]\n");
    return 2;
}
