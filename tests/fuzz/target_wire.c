/* Every wire request as the registry dispatches it, against a real registry
 * engine in-process on a scratch data dir (registry_handle runs the same
 * serve_one path a worker runs, minus the socket).
 *
 * Input: one encoded ferry.wire.Request, sent as is. When it decodes, it is
 * sent a second time with its signatures made good by the fixed keys (an
 * Offer's manifest by the publisher key, a Deploy's record by the publisher
 * key, a Register's hello and a Report's body by the host key), so mutated
 * contents reach the code behind the signature checks. At start the
 * registry is given an artifact, a host and a deployment, so reads, polls
 * and reports meet real state. */
#include "error.h"
#include "fsutil.h"
#include "fuzz_common.h"
#include "fuzz_samples.h"
#include "manifest.h"
#include "registry.h"
#include "wire.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct trust trust;
static struct key_secret publisher, host;
static struct registry *reg;
static char data_dir[4096];

static void send_one(const uint8_t *buf, size_t len)
{
    uint8_t *resp = NULL;
    size_t rlen = 0;
    if (registry_handle(reg, buf, len, &resp, &rlen) < 0)
        return;
    if (resp) {
        /* Whatever came in, what goes out is a well-formed response. */
        Ferry__Wire__Response *r = ferry__wire__response__unpack(NULL, rlen, resp);
        if (!r) {
            fprintf(stderr, "registry answered with bytes that are not a Response\n");
            abort();
        }
        if (r->code != FERRY__WIRE__CODE__OK && (!r->error || !*r->error)) {
            fprintf(stderr, "error response (code %d) without a reason\n", (int)r->code);
            abort();
        }
        ferry__wire__response__free_unpacked(r, NULL);
    }
    free(resp);
}

static void replay(void *arg, const char *name, const uint8_t *buf, size_t len)
{
    (void)arg, (void)name;
    send_one(buf, len);
}

static void cleanup(void)
{
    if (reg)
        registry_stop(reg);
    reg = NULL;
    fs_rm_rf(data_dir);
    trust_fini(&trust);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_trust(&trust);
    fuzz_publisher_key(&publisher);
    fuzz_host_key(&host);
    fuzz_scratch_dir("registry", data_dir, sizeof data_dir);
    struct registry_config cfg = {
        .data_dir = data_dir,
        .listen_url = "tcp://127.0.0.1:0",
        .trust = &trust,
        .workers = 1,
    };
    int rc = registry_start(&cfg, &reg);
    if (rc < 0) {
        fprintf(stderr, "fuzz_wire: registry_start: %s\n", err_message(rc));
        exit(1);
    }
    atexit(cleanup);
    struct fuzz_artifact a;
    fuzz_artifact_make(fuzz_spec_samples[0], &a);
    fuzz_requests(&a, replay, NULL);
    fuzz_artifact_free(&a);
    return 0;
}

/* Re-pack req and send it. */
static void send_request(const Ferry__Wire__Request *req)
{
    size_t n = ferry__wire__request__get_packed_size(req);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        abort();
    ferry__wire__request__pack(req, buf);
    send_one(buf, n);
    free(buf);
}

/* Send req again with good signatures. Every field swapped in is put back
 * before the caller frees the unpacked request. */
static void send_resigned(Ferry__Wire__Request *req)
{
    uint8_t sig[crypto_sign_BYTES];
    switch (req->body_case) {
    case FERRY__WIRE__REQUEST__BODY_OFFER: {
        Ferry__SignatureList *mine =
            fuzz_sign_manifest(req->offer->manifest.data, req->offer->manifest.len);
        if (!mine)
            abort();
        Ferry__SignatureList *theirs = req->offer->signatures;
        req->offer->signatures = mine;
        send_request(req);
        req->offer->signatures = theirs;
        signatures_free(mine);
        break;
    }
    case FERRY__WIRE__REQUEST__BODY_DEPLOY: {
        Ferry__SignedRecord *sr = req->deploy->signed_, mine;
        if (!sr)
            return;
        Ferry__Signature s;
        ferry__signature__init(&s);
        key_sign(&publisher, sr->record.data, sr->record.len, sig);
        s.key_id = publisher.pub.id;
        s.public_key.data = publisher.pub.pk;
        s.public_key.len = sizeof publisher.pub.pk;
        s.signature.data = sig;
        s.signature.len = sizeof sig;
        mine = *sr;
        mine.signature = &s;
        req->deploy->signed_ = &mine;
        send_request(req);
        req->deploy->signed_ = sr;
        break;
    }
    case FERRY__WIRE__REQUEST__BODY_REGISTER: {
        /* The hello must carry the host key it is signed with. */
        Ferry__Wire__Register *r = req->register_;
        Ferry__Wire__HostHello *hello =
            ferry__wire__host_hello__unpack(NULL, r->hello.len, r->hello.data);
        if (!hello)
            return;
        ProtobufCBinaryData their_key = hello->host_key, their_hello = r->hello,
                            their_sig = r->signature;
        hello->host_key.data = host.pub.pk;
        hello->host_key.len = sizeof host.pub.pk;
        size_t n = ferry__wire__host_hello__get_packed_size(hello);
        uint8_t *hb = malloc(n ? n : 1);
        if (!hb)
            abort();
        ferry__wire__host_hello__pack(hello, hb);
        hello->host_key = their_key;
        ferry__wire__host_hello__free_unpacked(hello, NULL);
        key_sign(&host, hb, n, sig);
        r->hello.data = hb;
        r->hello.len = n;
        r->signature.data = sig;
        r->signature.len = sizeof sig;
        send_request(req);
        r->hello = their_hello;
        r->signature = their_sig;
        free(hb);
        break;
    }
    case FERRY__WIRE__REQUEST__BODY_REPORT: {
        Ferry__Wire__Report *r = req->report;
        ProtobufCBinaryData their_sig = r->signature;
        key_sign(&host, r->body.data, r->body.len, sig);
        r->signature.data = sig;
        r->signature.len = sizeof sig;
        send_request(req);
        r->signature = their_sig;
        break;
    }
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    send_one(data, size);
    Ferry__Wire__Request *req = ferry__wire__request__unpack(NULL, size, data);
    if (!req)
        return 0;
    send_resigned(req);
    ferry__wire__request__free_unpacked(req, NULL);
    return 0;
}
