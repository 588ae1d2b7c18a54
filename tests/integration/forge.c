/* ferry-forge: crafts well-formed but hostile fleet messages, for the
 * enrollment tests. Each mode sends one request (or --repeat N of them) and
 * exits 0 on an OK reply; a refusal prints "forge: <registry's reason>" on
 * stderr (one line) and exits 1.
 *   ferry-forge URL poll HOST [--key FILE.key] [--sent-ms MS] [--known N] [--wait-ms MS]
 *       a poll for HOST: unsigned without --key, else signed by that key
 *   ferry-forge URL hello HOST FILE.key [--sent-ms MS] [--token FILE]
 *                                       [--label K=V]... [--label-raw K V]
 *       a hello signed by FILE.key (labels are sent as given, unchecked)
 *   ferry-forge URL report HOST FILE.key [--sent-ms MS] [--workloads N]
 *                                        [--events N] [--pad BYTES] [--repeat N]
 *                                        [--metrics N] [--hostile-metrics]
 *       a report signed by FILE.key: N workloads, N events, a reason of BYTES;
 *       --metrics: N gauges m_0.. for forged-0@1.0; --hostile-metrics adds
 *       five bad samples to them and run entries a registry must skip
 *   ferry-forge URL offer DIR FILE.key SIZE [--path FROM TO]...
 *       the manifest of DIR, its first file's size claimed to be SIZE (- for
 *       its real size), signed; --path renames file FROM to TO in it first,
 *       for paths no filesystem can hold (a beside a/b, ferry.yaml/x);
 *       --write PREFIX writes PREFIX.manifest and PREFIX.sigs instead of
 *       sending them and prints the manifest's digest (for a registry
 *       database edited behind its back) */
#include "clock.h"
#include "error.h"
#include "hash.h"
#include "jointoken.h"
#include "key.h"
#include "manifest.h"
#include "wire.h"

#include <nng/protocol/reqrep0/req.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static nng_socket sock;

static int call(const Ferry__Wire__Request *req)
{
    size_t n = ferry__wire__request__get_packed_size(req);
    nng_msg *m;
    if (nng_msg_alloc(&m, n) != 0)
        return 1;
    ferry__wire__request__pack(req, nng_msg_body(m));
    if (nng_sendmsg(sock, m, 0) != 0) {
        nng_msg_free(m);
        fprintf(stderr, "forge: not sent\n");
        return 1;
    }
    if (nng_recvmsg(sock, &m, 0) != 0) {
        fprintf(stderr, "forge: no reply\n");
        return 1;
    }
    Ferry__Wire__Response *r =
        ferry__wire__response__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
    nng_msg_free(m);
    if (!r) {
        fprintf(stderr, "forge: undecodable reply\n");
        return 1;
    }
    int ok = r->code == FERRY__WIRE__CODE__OK;
    if (!ok)
        fprintf(stderr, "forge: %s\n", r->error);
    ferry__wire__response__free_unpacked(r, NULL);
    return ok ? 0 : 1;
}

/* Pack msg, sign it with k: *body and sig filled. */
static uint8_t *sign_msg(const ProtobufCMessage *msg, const struct key_secret *k, size_t *len,
                         uint8_t sig[crypto_sign_BYTES])
{
    *len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(*len ? *len : 1);
    protobuf_c_message_pack(msg, buf);
    key_sign(k, buf, *len, sig);
    return buf;
}

static const char *opt(int argc, char **argv, const char *name)
{
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

static uint64_t opt_u64(int argc, char **argv, const char *name, uint64_t dflt)
{
    const char *v = opt(argc, argv, name);
    return v ? strtoull(v, NULL, 10) : dflt;
}

static int load_key(const char *path, struct key_secret *k)
{
    int rc = key_load_secret(path, k);
    if (rc < 0)
        fprintf(stderr, "forge: %s\n", err_message(rc));
    return rc;
}

static int mode_poll(const char *host, int argc, char **argv)
{
    Ferry__Wire__Request req;
    Ferry__Wire__Poll poll;
    Ferry__Wire__PollBody body;
    ferry__wire__request__init(&req);
    ferry__wire__poll__init(&poll);
    ferry__wire__poll_body__init(&body);
    poll.host = body.host = (char *)host;
    poll.known_serial = body.known_serial = opt_u64(argc, argv, "--known", 0);
    poll.wait_ms = body.wait_ms = (uint32_t)opt_u64(argc, argv, "--wait-ms", 0);
    req.body_case = FERRY__WIRE__REQUEST__BODY_POLL;
    req.poll = &poll;
    const char *keyfile = opt(argc, argv, "--key");
    uint8_t sig[crypto_sign_BYTES], *buf = NULL;
    if (keyfile) {
        struct key_secret k;
        if (load_key(keyfile, &k) < 0)
            return 1;
        body.sent_ms = opt_u64(argc, argv, "--sent-ms", clock_unix_ms());
        size_t n;
        buf = sign_msg(&body.base, &k, &n, sig);
        poll.body = (ProtobufCBinaryData){n, buf};
        poll.signature = (ProtobufCBinaryData){sizeof sig, sig};
    }
    int rc = call(&req);
    free(buf);
    return rc;
}

static int mode_hello(const char *host, const char *keyfile, int argc, char **argv)
{
    struct key_secret k;
    if (load_key(keyfile, &k) < 0)
        return 1;
    Ferry__Wire__HostHello hello;
    ferry__wire__host_hello__init(&hello);
    Ferry__Wire__Label lv[64], *lp[64];
    size_t nl = 0;
    for (int i = 0; i < argc && nl < 64; i++) {
        if (strcmp(argv[i], "--label") == 0 && i + 1 < argc) {
            char *kv = argv[++i], *eq = strchr(kv, '=');
            if (!eq)
                continue;
            *eq = '\0';
            ferry__wire__label__init(&lv[nl]);
            lv[nl].key = kv;
            lv[nl].value = eq + 1;
            lp[nl] = &lv[nl];
            nl++;
        } else if (strcmp(argv[i], "--label-raw") == 0 && i + 2 < argc) {
            ferry__wire__label__init(&lv[nl]);
            lv[nl].key = argv[i + 1];
            lv[nl].value = argv[i + 2];
            lp[nl] = &lv[nl];
            nl++;
            i += 2;
        }
    }
    hello.name = (char *)host;
    hello.labels = lp;
    hello.n_labels = nl;
    hello.host_key = (ProtobufCBinaryData){sizeof k.pub.pk, k.pub.pk};
    hello.sent_ms = opt_u64(argc, argv, "--sent-ms", clock_unix_ms());
    uint8_t *tok = NULL;
    size_t tlen = 0;
    const char *tokfile = opt(argc, argv, "--token");
    if (tokfile) {
        int rc = jointoken_load(tokfile, &tok, &tlen);
        if (rc < 0) {
            fprintf(stderr, "forge: %s\n", err_message(rc));
            return 1;
        }
        hello.join_token = (ProtobufCBinaryData){tlen, tok};
    }
    uint8_t sig[crypto_sign_BYTES];
    size_t n;
    uint8_t *buf = sign_msg(&hello.base, &k, &n, sig);
    Ferry__Wire__Register reg;
    ferry__wire__register__init(&reg);
    reg.hello = (ProtobufCBinaryData){n, buf};
    reg.signature = (ProtobufCBinaryData){sizeof sig, sig};
    Ferry__Wire__Request req;
    ferry__wire__request__init(&req);
    req.body_case = FERRY__WIRE__REQUEST__BODY_REGISTER;
    req.register_ = &reg;
    int rc = call(&req);
    free(buf);
    free(tok);
    return rc;
}

static int mode_report(const char *host, const char *keyfile, int argc, char **argv)
{
    struct key_secret k;
    if (load_key(keyfile, &k) < 0)
        return 1;
    size_t nw = opt_u64(argc, argv, "--workloads", 1), ne = opt_u64(argc, argv, "--events", 0);
    size_t pad = opt_u64(argc, argv, "--pad", 0), repeat = opt_u64(argc, argv, "--repeat", 1);
    char *reason = calloc(1, pad + 16);
    memset(reason, 'x', pad);
    size_t nmax = (nw > ne ? nw : ne) + 1;
    Ferry__Wire__WorkloadReport *w = calloc(nmax, sizeof *w), **wp = calloc(nmax, sizeof *wp);
    char (*names)[32] = calloc(nmax, sizeof *names);
    for (size_t i = 0; i < nmax; i++) {
        ferry__wire__workload_report__init(&w[i]);
        snprintf(names[i], sizeof names[i], "forged-%zu", i);
        w[i].name = names[i];
        w[i].version = "1.0";
        w[i].state = "running";
        w[i].reason = reason;
        w[i].since_ms = clock_unix_ms();
        wp[i] = &w[i];
    }
    /* Metrics for forged-0@1.0: N good gauges, then (hostile) a NaN, a bad
     * name, nine labels, buckets going down and a negative counter, plus a
     * run entry with a bad name and a repeated one. */
    size_t nm = opt_u64(argc, argv, "--metrics", 0);
    int hostile = 0;
    for (int i = 0; i < argc; i++)
        hostile |= strcmp(argv[i], "--hostile-metrics") == 0;
    size_t total = nm + (hostile ? 5 : 0);
    Ferry__Wire__Metric *mv = calloc(total + 1, sizeof *mv), **mp = calloc(total + 1, sizeof *mp);
    char (*mnames)[32] = calloc(total + 1, sizeof *mnames);
    static Ferry__Wire__Label lab[9], *labp[9];
    static Ferry__Wire__MetricBucket bk[2], *bkp[2];
    static char lkeys[9][8];
    for (size_t i = 0; i < total; i++) {
        ferry__wire__metric__init(&mv[i]);
        snprintf(mnames[i], sizeof mnames[i], "m_%zu", i);
        mv[i].name = mnames[i];
        mv[i].value = (double)i;
        mp[i] = &mv[i];
    }
    if (hostile) {
        mv[nm].value = 0.0 / 0.0;
        mv[nm + 1].name = "9 bad name";
        for (int i = 0; i < 9; i++) {
            ferry__wire__label__init(&lab[i]);
            snprintf(lkeys[i], sizeof lkeys[i], "k%d", i);
            lab[i].key = lkeys[i];
            lab[i].value = "v";
            labp[i] = &lab[i];
        }
        mv[nm + 2].labels = labp;
        mv[nm + 2].n_labels = 9;
        for (int i = 0; i < 2; i++) {
            ferry__wire__metric_bucket__init(&bk[i]);
            bk[i].le = 1.0 - i * 0.5;
            bk[i].count = 1;
            bkp[i] = &bk[i];
        }
        mv[nm + 3].type = FERRY__WIRE__METRIC_TYPE__METRIC_HISTOGRAM;
        mv[nm + 3].count = 2;
        mv[nm + 3].buckets = bkp;
        mv[nm + 3].n_buckets = 2;
        mv[nm + 4].type = FERRY__WIRE__METRIC_TYPE__METRIC_COUNTER;
        mv[nm + 4].value = -1;
    }
    Ferry__Wire__WorkloadMetrics wm[3], *wmp[3];
    for (int i = 0; i < 3; i++) {
        ferry__wire__workload_metrics__init(&wm[i]);
        wm[i].name = i == 1 ? "Bad Name" : "forged-0";
        wm[i].version = "1.0";
        wm[i].collected_ms = clock_unix_ms();
        wm[i].metrics = mp;
        wm[i].n_metrics = total;
        wmp[i] = &wm[i];
    }
    uint64_t sent = opt_u64(argc, argv, "--sent-ms", clock_unix_ms());
    int rc = 0;
    for (size_t r = 0; r < repeat && rc == 0; r++) {
        Ferry__Wire__ReportBody body;
        ferry__wire__report_body__init(&body);
        body.host = (char *)host;
        body.sent_ms = sent + r;
        body.workloads = wp;
        body.n_workloads = nw;
        body.events = wp;
        body.n_events = ne;
        body.metrics = wmp;
        body.n_metrics = total ? (hostile ? 3 : 1) : 0;
        uint8_t sig[crypto_sign_BYTES];
        size_t n;
        uint8_t *buf = sign_msg(&body.base, &k, &n, sig);
        Ferry__Wire__Report rep;
        ferry__wire__report__init(&rep);
        rep.body = (ProtobufCBinaryData){n, buf};
        rep.signature = (ProtobufCBinaryData){sizeof sig, sig};
        Ferry__Wire__Request req;
        ferry__wire__request__init(&req);
        req.body_case = FERRY__WIRE__REQUEST__BODY_REPORT;
        req.report = &rep;
        rc = call(&req);
        free(buf);
    }
    free(reason);
    free(w);
    free(wp);
    free(names);
    free(mv);
    free(mp);
    free(mnames);
    return rc;
}

static int write_bytes(const char *prefix, const char *ext, const uint8_t *b, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s.%s", prefix, ext);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "forge: %s: cannot write\n", path);
        return 1;
    }
    return 0;
}

static int write_forged(const char *prefix, const uint8_t *mb, size_t ml,
                        const Ferry__SignatureList *sigs)
{
    uint8_t *sb = NULL;
    size_t sl = 0;
    if (signatures_encode(sigs, &sb, &sl) < 0 || write_bytes(prefix, "manifest", mb, ml) ||
        write_bytes(prefix, "sigs", sb, sl))
        return 1;
    struct digest d;
    char hex[DIGEST_HEX_LEN + 1];
    digest_of(mb, ml, &d);
    digest_hex(&d, hex);
    printf("%s\n", hex);
    free(sb);
    return 0;
}

static int by_path(const void *a, const void *b)
{
    return strcmp((*(Ferry__File *const *)a)->path, (*(Ferry__File *const *)b)->path);
}

static int mode_offer(const char *dir, const char *keyfile, const char *size, int argc,
                      char **argv)
{
    struct key_secret k;
    if (load_key(keyfile, &k) < 0)
        return 1;
    Ferry__Manifest *m = NULL;
    int rc = manifest_build(dir, &m);
    if (rc < 0 || m->n_files == 0) {
        fprintf(stderr, "forge: %s: %s\n", dir, rc < 0 ? err_message(rc) : "no files");
        return 1;
    }
    if (strcmp(size, "-") != 0)
        m->files[0]->size = strtoull(size, NULL, 10);
    const char *write_to = NULL;
    for (int i = 0; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--write") == 0) {
            write_to = argv[i + 1];
            continue;
        }
        if (strcmp(argv[i], "--path") != 0 || i + 2 >= argc) {
            fprintf(stderr, "forge: offer: unknown or incomplete option %s\n", argv[i]);
            return 2;
        }
        const char *from = argv[++i], *to = argv[i + 1];
        size_t j = 0;
        while (j < m->n_files && strcmp(m->files[j]->path, from) != 0)
            j++;
        if (j == m->n_files) {
            fprintf(stderr, "forge: %s: no file %s\n", dir, from);
            return 2;
        }
        free(m->files[j]->path);
        m->files[j]->path = strdup(to);
    }
    /* Manifests list their files in path order. */
    qsort(m->files, m->n_files, sizeof *m->files, by_path);
    uint8_t *buf = NULL;
    size_t len = 0;
    Ferry__SignatureList *sigs = NULL;
    if (manifest_encode(m, &buf, &len) < 0 || manifest_sign(buf, len, &k, &sigs) < 0)
        return 1;
    if (write_to)
        return write_forged(write_to, buf, len, sigs);
    Ferry__Wire__Offer offer;
    ferry__wire__offer__init(&offer);
    offer.manifest = (ProtobufCBinaryData){len, buf};
    offer.signatures = sigs;
    Ferry__Wire__Request req;
    ferry__wire__request__init(&req);
    req.body_case = FERRY__WIRE__REQUEST__BODY_OFFER;
    req.offer = &offer;
    rc = call(&req);
    signatures_free(sigs);
    free(buf);
    manifest_free(m);
    return rc;
}

static int run(int argc, char **argv)
{
    if (argc < 4 || sodium_init() < 0) {
        fprintf(stderr, "usage: ferry-forge URL poll|hello|report|offer ... (see forge.c)\n");
        return 2;
    }
    const char *url = argv[1], *mode = argv[2];
    if (nng_req0_open(&sock) != 0 || nng_dial(sock, url, NULL, 0) != 0) {
        fprintf(stderr, "forge: cannot reach %s\n", url);
        return 1;
    }
    nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 10000);
    nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, 10000);
    nng_socket_set_ms(sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, WIRE_MAX_MSG);
    if (strcmp(mode, "poll") == 0)
        return mode_poll(argv[3], argc - 4, argv + 4);
    if (strcmp(mode, "hello") == 0 && argc >= 5)
        return mode_hello(argv[3], argv[4], argc - 5, argv + 5);
    if (strcmp(mode, "report") == 0 && argc >= 5)
        return mode_report(argv[3], argv[4], argc - 5, argv + 5);
    if (strcmp(mode, "offer") == 0 && argc >= 6)
        return mode_offer(argv[3], argv[4], argv[5], argc - 6, argv + 6);
    fprintf(stderr, "forge: unknown or incomplete mode %s\n", mode);
    return 2;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    int rc = run(argc, argv);
    fflush(stdout);
    fflush(stderr);
    _exit(rc); /* no socket teardown: the process is done */
}
