/* ferry-runforge: one notebook run report (RunReport) as a host would send
 * it, or as an attacker might, for the run tests. Exit 0 on an OK reply; a
 * refusal prints "runforge: <registry's reason>" on stderr (one line) and
 * exits 1.
 *   ferry-runforge URL HOST FILE.key NAME VERSION ID STATUS
 *       [--notebook FILE] [--notebook-bytes N] [--wrong-digest] [--error TEXT]
 *       [--sent-ms MS]
 * signs with FILE.key; --notebook-bytes sends N bytes of filler as the
 * notebook; --wrong-digest claims a digest the bytes do not have. */
#include "clock.h"
#include "error.h"
#include "hash.h"
#include "key.h"
#include "wire.h"

#include <nng/protocol/reqrep0/req.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int run(int argc, char **argv)
{
    if (argc < 8 || sodium_init() < 0) {
        fprintf(stderr, "usage: ferry-runforge URL HOST FILE.key NAME VERSION ID STATUS [...]\n");
        return 2;
    }
    struct key_secret k;
    if (key_load_secret(argv[3], &k) < 0) {
        fprintf(stderr, "runforge: %s\n", err_message(-1));
        return 2;
    }
    uint8_t *nb = NULL;
    size_t nblen = 0;
    int wrong = 0;
    const char *error = "";
    uint64_t sent = clock_unix_ms();
    for (int i = 8; i < argc; i++) {
        if (strcmp(argv[i], "--notebook") == 0 && i + 1 < argc) {
            FILE *f = fopen(argv[++i], "rb");
            if (!f)
                return 2;
            nb = malloc(16u << 20);
            nblen = fread(nb, 1, 16u << 20, f);
            fclose(f);
        } else if (strcmp(argv[i], "--notebook-bytes") == 0 && i + 1 < argc) {
            nblen = strtoull(argv[++i], NULL, 10);
            nb = malloc(nblen ? nblen : 1);
            memset(nb, '{', nblen);
        } else if (strcmp(argv[i], "--wrong-digest") == 0) {
            wrong = 1;
        } else if (strcmp(argv[i], "--error") == 0 && i + 1 < argc) {
            error = argv[++i];
        } else if (strcmp(argv[i], "--sent-ms") == 0 && i + 1 < argc) {
            sent = strtoull(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "runforge: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    Ferry__Wire__RunRecord rec;
    Ferry__Wire__RunReportBody b;
    ferry__wire__run_record__init(&rec);
    ferry__wire__run_report_body__init(&b);
    rec.id = argv[6];
    rec.name = argv[4];
    rec.version = argv[5];
    rec.host = argv[2];
    rec.status = argv[7];
    rec.started_ms = clock_unix_ms();
    rec.duration_ms = 1;
    rec.error = (char *)error;
    struct digest d;
    if (nb) {
        digest_of(nb, nblen, &d);
        if (wrong)
            d.b[0] ^= 1;
        rec.notebook_digest = (ProtobufCBinaryData){DIGEST_LEN, d.b};
        rec.notebook_size = nblen;
        b.notebook = (ProtobufCBinaryData){nblen, nb};
    }
    b.host = argv[2];
    b.sent_ms = sent;
    b.run = &rec;
    size_t n = ferry__wire__run_report_body__get_packed_size(&b);
    uint8_t *buf = malloc(n ? n : 1);
    ferry__wire__run_report_body__pack(&b, buf);
    uint8_t sig[crypto_sign_BYTES];
    key_sign(&k, buf, n, sig);
    Ferry__Wire__Request req;
    Ferry__Wire__RunReport rep;
    ferry__wire__request__init(&req);
    ferry__wire__run_report__init(&rep);
    rep.body = (ProtobufCBinaryData){n, buf};
    rep.signature = (ProtobufCBinaryData){sizeof sig, sig};
    req.body_case = FERRY__WIRE__REQUEST__BODY_RUN_REPORT;
    req.run_report = &rep;

    nng_socket sock;
    if (nng_req0_open(&sock) != 0 || nng_dial(sock, argv[1], NULL, 0) != 0) {
        fprintf(stderr, "runforge: cannot reach %s\n", argv[1]);
        return 1;
    }
    nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 10000);
    nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, 10000);
    nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, WIRE_MAX_MSG);
    size_t rn = ferry__wire__request__get_packed_size(&req);
    nng_msg *m;
    if (nng_msg_alloc(&m, rn) != 0)
        return 1;
    ferry__wire__request__pack(&req, nng_msg_body(m));
    if (nng_sendmsg(sock, m, 0) != 0 || nng_recvmsg(sock, &m, 0) != 0) {
        fprintf(stderr, "runforge: no reply\n");
        return 1;
    }
    Ferry__Wire__Response *r = ferry__wire__response__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
    nng_msg_free(m);
    if (!r) {
        fprintf(stderr, "runforge: undecodable reply\n");
        return 1;
    }
    int ok = r->code == FERRY__WIRE__CODE__OK;
    if (!ok)
        fprintf(stderr, "runforge: %s\n", r->error);
    ferry__wire__response__free_unpacked(r, NULL);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    int rc = run(argc, argv);
    fflush(stdout);
    fflush(stderr);
    _exit(rc);
}
