#include "fuzz_samples.h"
#include "govrules.h"
#include "fsutil.h"
#include "fuzz_common.h"
#include "error.h"
#include "manifest.h"
#include "record.h"
#include "wire.pb-c.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *const fuzz_spec_samples[] = {
    "name: hello\nversion: 1.0.0\nkind: app\nruntime: exec\n"
    "description: a tiny app\n"
    "run:\n  command: [\"./serve.sh\", \"--port\", \"8080\"]\n"
    "  env:\n    GREETING: hello\n    MODE: \"fast\"\n"
    "health:\n  http:\n    path: /\n    status: 200\n  settle: 2s\n  deadline: 10s\n"
    "  interval: 500ms\n"
    "labels:\n  team: data\n",
    "name: churn-model\nversion: 0.1.0\nkind: model\nruntime: model\n"
    "model:\n  format: sklearn\n  file: data/weights.json\n  card: CARD.md\n  pii: false\n"
    "  inputs: [{name: tenure_months, datatype: FP64, shape: [-1]}]\n"
    "  outputs: [{name: churn, datatype: INT64, shape: [-1]}]\n"
    "  workers: 2\n  batching: {max_batch: 8, max_delay: 500us}\n",
    "name: churn-notebook\nversion: 0.1.0-rc.1+build.7\nkind: notebook\nruntime: notebook\n"
    "notebook:\n  kernel: python3\n  notebook: explore.ipynb\n  schedule: \"0 6 * * *\"\n",
    "# flow and block forms, anchors and quoting\n"
    "{name: 'flow', version: \"2.0\", kind: app, runtime: exec,\n"
    " run: {command: [sh, -c, 'echo hi'], env: {A: &a x, B: *a}},\n"
    " health: {command: [\"true\"], deadline: 1m}}\n",
    "name: broken\nversion: 1\nkind: app\nruntime: exec\nrun:\n  command: ./not-a-list\n",
    "---\nname: twice\nversion: 1.0.0\n---\nname: again\n",
};
const size_t fuzz_n_spec_samples = sizeof fuzz_spec_samples / sizeof fuzz_spec_samples[0];

static void die(const char *what, int rc)
{
    fprintf(stderr, "fuzz samples: %s: %s\n", what, err_message(rc));
    exit(1);
}

static void write_file(const char *dir, const char *rel, const char *text, int exec)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    fs_mkdir_p(path, 0755);
    *slash = '/';
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, exec ? 0755 : 0644);
    if (fd < 0 || fs_write_all(fd, text, strlen(text)) < 0)
        die(path, fd < 0 ? -1 : -2);
    close(fd);
}

void fuzz_artifact_make(const char *yaml, struct fuzz_artifact *a)
{
    static const char *const rel[FUZZ_SAMPLE_FILES] = {"CARD.md", "data/weights.json",
                                                       "serve.sh"};
    static const char *const text[FUZZ_SAMPLE_FILES] = {
        "# Card\nA toy.\n", "{\"w\": [0.5, -1.25]}\n", "#!/bin/sh\nexec echo hello\n"};
    memset(a, 0, sizeof *a);
    fuzz_scratch_dir("artifact", a->dir, sizeof a->dir);
    write_file(a->dir, "ferry.yaml", yaml, 0);
    for (int i = 0; i < FUZZ_SAMPLE_FILES; i++) {
        write_file(a->dir, rel[i], text[i], i == 2);
        a->blob[i] = text[i];
        a->blob_len[i] = strlen(text[i]);
    }
    int rc = manifest_build(a->dir, &a->m);
    if (rc < 0)
        die("manifest_build", rc);
    if ((rc = manifest_encode(a->m, &a->mbytes, &a->mlen)) < 0)
        die("manifest_encode", rc);
    Ferry__SignatureList *sigs = fuzz_sign_manifest(a->mbytes, a->mlen);
    if (!sigs || signatures_encode(sigs, &a->sbytes, &a->slen) < 0)
        die("signing", -1);
    signatures_free(sigs);
    digest_of(a->mbytes, a->mlen, &a->mdigest);
}

void fuzz_artifact_free(struct fuzz_artifact *a)
{
    fs_rm_rf(a->dir);
    manifest_free(a->m);
    free(a->mbytes);
    free(a->sbytes);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void emit_request(fuzz_emit_fn emit, void *arg, const char *name,
                         const Ferry__Wire__Request *req)
{
    size_t n = ferry__wire__request__get_packed_size(req);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        die("emit", -1);
    ferry__wire__request__pack(req, buf);
    emit(arg, name, buf, n);
    free(buf);
}

static Ferry__SignedRecord *signed_record(const struct fuzz_artifact *a, const char *selector,
                                          int undeploy, uint64_t issued)
{
    Ferry__DeployRecord rec;
    ferry__deploy_record__init(&rec);
    rec.name = a->m->spec->name;
    rec.version = undeploy ? "" : a->m->spec->version;
    rec.selector = (char *)selector;
    rec.undeploy = undeploy;
    rec.issued_ms = issued;
    if (!undeploy) {
        rec.manifest_digest.data = (uint8_t *)a->mdigest.b;
        rec.manifest_digest.len = DIGEST_LEN;
    }
    struct key_secret k;
    fuzz_publisher_key(&k);
    Ferry__SignedRecord *sr = NULL;
    int rc = record_sign(&rec, &k, &sr);
    key_secret_wipe(&k);
    if (rc < 0)
        die("record_sign", rc);
    return sr;
}

/* A signed wrapper (Register, Report): body bytes and the host key's
 * signature over them. */
static void host_sign(const uint8_t *body, size_t len, uint8_t sig[crypto_sign_BYTES])
{
    struct key_secret k;
    fuzz_host_key(&k);
    key_sign(&k, body, len, sig);
    key_secret_wipe(&k);
}

void fuzz_requests(const struct fuzz_artifact *a, fuzz_emit_fn emit, void *arg)
{
    Ferry__Wire__Request req;
    char name[64];

    Ferry__Wire__Ping ping = FERRY__WIRE__PING__INIT;
    ferry__wire__request__init(&req);
    req.body_case = FERRY__WIRE__REQUEST__BODY_PING;
    req.ping = &ping;
    emit_request(emit, arg, "ping", &req);

    Ferry__SignatureList *sigs = NULL;
    if (signatures_decode(a->sbytes, a->slen, &sigs) < 0)
        die("signatures", -1);
    Ferry__Wire__Offer offer = FERRY__WIRE__OFFER__INIT;
    offer.manifest.data = a->mbytes;
    offer.manifest.len = a->mlen;
    offer.signatures = sigs;
    ferry__wire__request__init(&req);
    req.body_case = FERRY__WIRE__REQUEST__BODY_OFFER;
    req.offer = &offer;
    emit_request(emit, arg, "offer", &req);
    signatures_free(sigs);

    /* An empty chunk carries no buffer at all (a NULL data pointer); first,
     * while the blob is still missing, so the store really takes it. */
    Ferry__Wire__PutChunk empty = FERRY__WIRE__PUT_CHUNK__INIT;
    empty.digest = a->m->files[0]->digest;
    ferry__wire__request__init(&req);
    req.body_case = FERRY__WIRE__REQUEST__BODY_PUT_CHUNK;
    req.put_chunk = &empty;
    emit_request(emit, arg, "put_chunk-empty", &req);

    /* Blobs in manifest order: the manifest sorts by path, as do we. */
    for (size_t i = 0; i < a->m->n_files && i < FUZZ_SAMPLE_FILES; i++) {
        Ferry__Wire__PutChunk pc = FERRY__WIRE__PUT_CHUNK__INIT;
        pc.digest = a->m->files[i]->digest;
        pc.offset = 0;
        pc.data.data = (uint8_t *)a->blob[i];
        pc.data.len = a->blob_len[i];
        ferry__wire__request__init(&req);
        req.body_case = FERRY__WIRE__REQUEST__BODY_PUT_CHUNK;
        req.put_chunk = &pc;
        snprintf(name, sizeof name, "put_chunk-%zu", i);
        emit_request(emit, arg, name, &req);
    }

    Ferry__Wire__Commit commit = FERRY__WIRE__COMMIT__INIT;
    commit.manifest_digest.data = (uint8_t *)a->mdigest.b;
    commit.manifest_digest.len = DIGEST_LEN;
    ferry__wire__request__init(&req);
    req.body_case = FERRY__WIRE__REQUEST__BODY_COMMIT;
    req.commit = &commit;
    emit_request(emit, arg, "commit", &req);

    Ferry__Wire__GetManifest gm = FERRY__WIRE__GET_MANIFEST__INIT;
    gm.name = a->m->spec->name;
    gm.version = a->m->spec->version;
    ferry__wire__request__init(&req);
    req.body_case = FERRY__WIRE__REQUEST__BODY_GET_MANIFEST;
    req.get_manifest = &gm;
    emit_request(emit, arg, "get_manifest", &req);

    Ferry__Wire__GetChunk gc = FERRY__WIRE__GET_CHUNK__INIT;
    gc.digest = a->m->files[0]->digest;
    gc.offset = 1;
    gc.length = 4;
    ferry__wire__request__init(&req);
    req.body_case = FERRY__WIRE__REQUEST__BODY_GET_CHUNK;
    req.get_chunk = &gc;
    emit_request(emit, arg, "get_chunk", &req);

    Ferry__Wire__ListVersions lv = FERRY__WIRE__LIST_VERSIONS__INIT;
    lv.name = a->m->spec->name;
    ferry__wire__request__init(&req);
    req.body_case = FERRY__WIRE__REQUEST__BODY_LIST_VERSIONS;
    req.list_versions = &lv;
    emit_request(emit, arg, "list_versions", &req);

    Ferry__Wire__Stats st = FERRY__WIRE__STATS__INIT;
    ferry__wire__request__init(&req);
    req.body_case = FERRY__WIRE__REQUEST__BODY_STATS;
    req.stats = &st;
    emit_request(emit, arg, "stats", &req);

    /* The host says hello, signed by its own key. */
    struct key_secret hk;
    fuzz_host_key(&hk);
    Ferry__Wire__Label l1 = FERRY__WIRE__LABEL__INIT, l2 = FERRY__WIRE__LABEL__INIT;
    l1.key = "env", l1.value = "prod";
    l2.key = "zone", l2.value = "a";
    Ferry__Wire__Label *labels[] = {&l1, &l2};
    Ferry__Wire__HostHello hello = FERRY__WIRE__HOST_HELLO__INIT;
    hello.name = FUZZ_HOST;
    hello.labels = labels;
    hello.n_labels = 2;
    hello.host_key.data = hk.pub.pk;
    hello.host_key.len = sizeof hk.pub.pk;
    hello.sent_ms = now_ms();
    size_t hlen = ferry__wire__host_hello__get_packed_size(&hello);
    uint8_t *hbytes = malloc(hlen ? hlen : 1), hsig[crypto_sign_BYTES];
    if (!hbytes)
        die("hello", -1);
    ferry__wire__host_hello__pack(&hello, hbytes);
    host_sign(hbytes, hlen, hsig);
    key_secret_wipe(&hk);
    Ferry__Wire__Register reg = FERRY__WIRE__REGISTER__INIT;
    reg.hello.data = hbytes;
    reg.hello.len = hlen;
    reg.signature.data = hsig;
    reg.signature.len = sizeof hsig;
    ferry__wire__request__init(&req);
    req.body_case = FERRY__WIRE__REQUEST__BODY_REGISTER;
    req.register_ = &reg;
    emit_request(emit, arg, "register", &req);
    free(hbytes);

    uint64_t t = now_ms();
    struct {
        const char *name, *selector;
        int undeploy;
    } deploys[] = {{"deploy", FUZZ_HOST_LABELS, 0},
                   {"deploy-other", "env=canary", 0},
                   {"undeploy", "env=prod", 1}};
    for (size_t i = 0; i < sizeof deploys / sizeof deploys[0]; i++) {
        Ferry__SignedRecord *sr = signed_record(a, deploys[i].selector, deploys[i].undeploy,
                                                t + i);
        Ferry__Wire__Deploy dep = FERRY__WIRE__DEPLOY__INIT;
        dep.signed_ = sr;
        ferry__wire__request__init(&req);
        req.body_case = FERRY__WIRE__REQUEST__BODY_DEPLOY;
        req.deploy = &dep;
        emit_request(emit, arg, deploys[i].name, &req);
        signed_record_free(sr);
    }

    /* A report: the whole picture plus two changes, signed by the host. */
    Ferry__Wire__WorkloadReport w = FERRY__WIRE__WORKLOAD_REPORT__INIT, e1, e2;
    w.name = a->m->spec->name;
    w.version = a->m->spec->version;
    w.state = "running";
    w.reason = "healthy";
    w.since_ms = t;
    w.pid = 4242;
    w.rss_bytes = 1 << 20;
    w.port = 8080;
    e1 = w;
    e1.state = "starting";
    e1.reason = "";
    e2 = w;
    e2.restarts = 1;
    Ferry__Wire__WorkloadReport *ws[] = {&w}, *es[] = {&e1, &e2};
    Ferry__Wire__ReportBody body = FERRY__WIRE__REPORT_BODY__INIT;
    body.host = FUZZ_HOST;
    body.sent_ms = t;
    body.workloads = ws;
    body.n_workloads = 1;
    body.events = es;
    body.n_events = 2;
    body.events_dropped = 1;
    size_t blen = ferry__wire__report_body__get_packed_size(&body);
    uint8_t *bbytes = malloc(blen ? blen : 1), bsig[crypto_sign_BYTES];
    if (!bbytes)
        die("report", -1);
    ferry__wire__report_body__pack(&body, bbytes);
    host_sign(bbytes, blen, bsig);
    Ferry__Wire__Report rep = FERRY__WIRE__REPORT__INIT;
    rep.body.data = bbytes;
    rep.body.len = blen;
    rep.signature.data = bsig;
    rep.signature.len = sizeof bsig;
    ferry__wire__request__init(&req);
    req.body_case = FERRY__WIRE__REQUEST__BODY_REPORT;
    req.report = &rep;
    emit_request(emit, arg, "report", &req);
    free(bbytes);

    /* An immediate poll, and one that would wait (a long poll). */
    Ferry__Wire__Poll poll = FERRY__WIRE__POLL__INIT;
    poll.host = FUZZ_HOST;
    ferry__wire__request__init(&req);
    req.body_case = FERRY__WIRE__REQUEST__BODY_POLL;
    req.poll = &poll;
    emit_request(emit, arg, "poll", &req);
    poll.wait_ms = 30000;
    poll.known_serial = 1;
    emit_request(emit, arg, "poll-wait", &req);

    Ferry__Wire__ListHosts lh = FERRY__WIRE__LIST_HOSTS__INIT;
    ferry__wire__request__init(&req);
    req.body_case = FERRY__WIRE__REQUEST__BODY_LIST_HOSTS;
    req.list_hosts = &lh;
    emit_request(emit, arg, "list_hosts", &req);

    Ferry__Wire__ListEvents le = FERRY__WIRE__LIST_EVENTS__INIT;
    le.host = FUZZ_HOST;
    le.limit = 5;
    ferry__wire__request__init(&req);
    req.body_case = FERRY__WIRE__REQUEST__BODY_LIST_EVENTS;
    req.list_events = &le;
    emit_request(emit, arg, "list_events", &req);

    /* Governance: the three questions, and an approval of the artifact by
     * the publisher key (valid, for a registry without a policy). */
    static const char *const questions[] = {"policy", "channels", "check"};
    for (size_t i = 0; i < 3; i++) {
        Ferry__Wire__GovQuery gq = FERRY__WIRE__GOV_QUERY__INIT;
        gq.what = (char *)questions[i];
        gq.name = a->m->spec->name;
        gq.version = a->m->spec->version;
        gq.channel = (char *)"prod";
        ferry__wire__request__init(&req);
        req.body_case = FERRY__WIRE__REQUEST__BODY_GOV_QUERY;
        req.gov_query = &gq;
        snprintf(name, sizeof name, "gov_query-%s", questions[i]);
        emit_request(emit, arg, name, &req);
    }
    {
        struct key_secret k;
        fuzz_publisher_key(&k);
        Ferry__Signature *ap = NULL;
        int rc = gov_sign_approval(&k, &a->mdigest, "approver", &ap);
        key_secret_wipe(&k);
        if (rc < 0)
            die("gov_sign_approval", rc);
        Ferry__Wire__Gov g = FERRY__WIRE__GOV__INIT;
        g.name = a->m->spec->name;
        g.version = a->m->spec->version;
        g.approval = ap;
        ferry__wire__request__init(&req);
        req.body_case = FERRY__WIRE__REQUEST__BODY_GOV;
        req.gov = &g;
        emit_request(emit, arg, "gov-approve", &req);
        ferry__signature__free_unpacked(ap, NULL);
    }

    ferry__wire__request__init(&req);
    emit_request(emit, arg, "empty", &req);
}

static void emit_desired(fuzz_emit_fn emit, void *arg, const char *name,
                         Ferry__SignedRecord **recs, size_t n, uint64_t serial)
{
    Ferry__Wire__DesiredState ds = FERRY__WIRE__DESIRED_STATE__INIT;
    ds.serial = serial;
    ds.records = recs;
    ds.n_records = n;
    size_t len = ferry__wire__desired_state__get_packed_size(&ds);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        die("desired", -1);
    ferry__wire__desired_state__pack(&ds, buf);
    emit(arg, name, buf, len);
    free(buf);
}

void fuzz_desired_states(const struct fuzz_artifact *a, fuzz_emit_fn emit, void *arg)
{
    uint64_t t = now_ms();
    Ferry__SignedRecord *dep = signed_record(a, FUZZ_HOST_LABELS, 0, t);
    Ferry__SignedRecord *other = signed_record(a, "env=canary", 0, t + 1);
    Ferry__SignedRecord *undep = signed_record(a, "env=prod", 1, t + 2);
    Ferry__SignedRecord *recs[] = {dep, other, undep};
    emit_desired(emit, arg, "deploy", recs, 1, 1);
    emit_desired(emit, arg, "three", recs, 3, 7);
    emit_desired(emit, arg, "empty", NULL, 0, 0);
    /* The same deploy with its signature removed. */
    Ferry__Signature *sig = dep->signature;
    dep->signature = NULL;
    emit_desired(emit, arg, "unsigned", recs, 1, 2);
    dep->signature = sig;
    signed_record_free(dep);
    signed_record_free(other);
    signed_record_free(undep);
}
