/* ferry-actforge: hostile action messages for the logs tests. Each mode
 * sends one or two requests and exits 0 on OK replies; a refusal prints
 * "actforge: <registry's reason>" on stderr (one line) and exits 1.
 *   ferry-actforge URL unsigned HOST WORKLOAD
 *       an action with no signature
 *   ferry-actforge URL tampered HOST WORKLOAD FILE.key
 *       signed by FILE.key, then one byte of the signed body changed
 *   ferry-actforge URL replay HOST WORKLOAD FILE.key
 *       a properly signed action submitted twice (the second is the test)
 *   ferry-actforge URL flood HOST WORKLOAD FILE.key N
 *       N properly signed actions, each with its own id, not waiting
 *   ferry-actforge URL reply HOST [FILE.key [DATA_BYTES]]
 *       a reply to an action never asked, signed by FILE.key (else unsigned),
 *       carrying DATA_BYTES bytes of data */
#include "action.h"
#include "clock.h"
#include "key.h"
#include "wire.h"

#include <nng/protocol/reqrep0/req.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nng_socket sock;

static int call(const Ferry__Wire__Request *req)
{
    nng_msg *m;
    if (wire_pack_request(req, &m) != 0 || nng_sendmsg(sock, m, 0) != 0) {
        fprintf(stderr, "actforge: not sent\n");
        return 1;
    }
    if (nng_recvmsg(sock, &m, 0) != 0) {
        fprintf(stderr, "actforge: no reply\n");
        return 1;
    }
    Ferry__Wire__Response *r =
        ferry__wire__response__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
    nng_msg_free(m);
    if (!r) {
        fprintf(stderr, "actforge: undecodable reply\n");
        return 1;
    }
    int ok = r->code == FERRY__WIRE__CODE__OK;
    if (!ok)
        fprintf(stderr, "actforge: %s\n", r->error);
    ferry__wire__response__free_unpacked(r, NULL);
    return ok ? 0 : 1;
}

static int submit(Ferry__Wire__SignedAction *sa)
{
    Ferry__Wire__Request req;
    Ferry__Wire__ActionSubmit as;
    ferry__wire__request__init(&req);
    ferry__wire__action_submit__init(&as);
    as.action = sa;
    req.body_case = FERRY__WIRE__REQUEST__BODY_ACTION_SUBMIT;
    req.action_submit = &as;
    return call(&req);
}

int main(int argc, char **argv)
{
    if (argc < 4 || sodium_init() < 0) {
        fprintf(stderr, "usage: ferry-actforge URL unsigned|tampered|replay|reply HOST ...\n");
        return 2;
    }
    const char *url = argv[1], *mode = argv[2], *host = argv[3];
    if (nng_req0_open(&sock) != 0 || nng_dial(sock, url, NULL, 0) != 0) {
        fprintf(stderr, "actforge: cannot dial %s\n", url);
        return 1;
    }
    nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 10000);
    struct key_secret k;
    const char *keyfile = strcmp(mode, "reply") == 0 ? (argc > 4 ? argv[4] : NULL)
                                                      : (argc > 5 ? argv[5] : NULL);
    if (keyfile && key_load_secret(keyfile, &k) < 0) {
        fprintf(stderr, "actforge: cannot load %s\n", keyfile);
        return 1;
    }
    if (strcmp(mode, "reply") == 0) {
        uint8_t id[ACTION_ID_LEN];
        randombytes_buf(id, sizeof id);
        Ferry__Wire__ActionReplyBody b;
        ferry__wire__action_reply_body__init(&b);
        b.host = (char *)host;
        b.id = (ProtobufCBinaryData){sizeof id, id};
        b.reply_json = "{}";
        b.sent_ms = clock_unix_ms();
        size_t pad = argc > 5 ? (size_t)strtoul(argv[5], NULL, 10) : 0;
        uint8_t *data = calloc(1, pad ? pad : 1);
        b.data = (ProtobufCBinaryData){pad, data};
        uint8_t *buf = malloc(ferry__wire__action_reply_body__get_packed_size(&b));
        uint8_t sig[crypto_sign_BYTES] = {0};
        if (!data || !buf)
            return 1;
        size_t n = ferry__wire__action_reply_body__pack(&b, buf);
        if (keyfile)
            key_sign(&k, buf, n, sig);
        Ferry__Wire__ActionReply ar;
        ferry__wire__action_reply__init(&ar);
        ar.body = (ProtobufCBinaryData){n, buf};
        ar.signature = (ProtobufCBinaryData){keyfile ? sizeof sig : 0, sig};
        Ferry__Wire__Request req;
        ferry__wire__request__init(&req);
        req.body_case = FERRY__WIRE__REQUEST__BODY_ACTION_REPLY;
        req.action_reply = &ar;
        int rc = call(&req);
        free(data);
        free(buf);
        return rc;
    }
    if (argc < 5)
        return 2;
    const char *workload = argv[4];
    if (strcmp(mode, "unsigned") == 0) {
        uint8_t id[ACTION_ID_LEN];
        randombytes_buf(id, sizeof id);
        Ferry__Wire__ActionBody b;
        ferry__wire__action_body__init(&b);
        b.purpose = ACTION_PURPOSE;
        b.id = (ProtobufCBinaryData){sizeof id, id};
        b.host = (char *)host;
        b.workload = (char *)workload;
        b.verb = "logs";
        b.request_json = "{}";
        b.issued_ms = clock_unix_ms();
        b.expires_ms = b.issued_ms + 60000;
        uint8_t buf[512];
        size_t n = ferry__wire__action_body__pack(&b, buf);
        Ferry__Wire__SignedAction sa;
        ferry__wire__signed_action__init(&sa);
        sa.body = (ProtobufCBinaryData){n, buf};
        return submit(&sa);
    }
    if (!keyfile)
        return 2;
    Ferry__Wire__SignedAction *sa = NULL;
    if (action_sign(&k, host, workload, "logs", "{\"tail\":1}", clock_unix_ms(), 60000, &sa,
                    NULL) < 0) {
        fprintf(stderr, "actforge: cannot sign\n");
        return 1;
    }
    int rc;
    if (strcmp(mode, "tampered") == 0) {
        /* The last bytes are the expiry: a longer life than was signed. */
        sa->body.data[sa->body.len - 1] ^= 0x01;
        rc = submit(sa);
    } else if (strcmp(mode, "flood") == 0) {
        unsigned long n = argc > 6 ? strtoul(argv[6], NULL, 10) : 1;
        rc = submit(sa);
        for (unsigned long i = 1; rc == 0 && i < n; i++) {
            action_signed_free(sa);
            sa = NULL;
            if (action_sign(&k, host, workload, "logs", "{\"tail\":1}", clock_unix_ms(), 60000,
                            &sa, NULL) < 0)
                return 1;
            rc = submit(sa);
        }
    } else if (strcmp(mode, "replay") == 0) {
        rc = submit(sa);
        if (rc == 0)
            rc = submit(sa);
    } else {
        rc = 2;
    }
    action_signed_free(sa);
    return rc;
}
