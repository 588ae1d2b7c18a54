/* Policy evaluation per deploy on the agent (bench/policy.sh): what an
 * agent with --trust-admin adds to each deploy, timed in-process, median of
 * N runs, against the manifest signature check it does anyway (baseline),
 * in the same run.
 *   ferry-policybench N DIR
 * DIR is scratch (the agent's policy cache is written there). */
#include "error.h"
#include "govcheck.h"
#include "govrules.h"
#include "manifest.h"
#include "policy.h"
#include "wire.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEYS 6

static struct key_secret keys[KEYS];

static int pub(void *arg, const char *path, struct key_public *out)
{
    (void)arg;
    int i = -1;
    if (sscanf(path, "k%d.pub", &i) != 1 || i < 0 || i >= KEYS)
        return err_set(FERRY_E_NOTFOUND, "%s", path);
    *out = keys[i].pub;
    return 0;
}

static const char *const text =
    "keys:\n"
    "  - {name: admin,    pub: k0.pub, roles: [admin]}\n"
    "  - {name: ci,       pub: k1.pub, roles: [publisher, operator]}\n"
    "  - {name: ds,       pub: k2.pub, roles: [publisher], kinds: [model, notebook]}\n"
    "  - {name: reviewer, pub: k3.pub, roles: [approver]}\n"
    "  - {name: dpo,      pub: k4.pub, roles: [privacy]}\n"
    "channels: [dev, staging, prod]\n"
    "environments:\n"
    "  - {name: prod, selector: \"env=prod\", channel: prod}\n"
    "  - {name: dev,  selector: \"env=dev\",  channel: dev}\n"
    "rules:\n"
    "  - kind: model\n"
    "    channel: prod\n"
    "    approvals: 1\n"
    "    privacy_review: true\n"
    "    card: [Intended use, Limitations]\n"
    "    metrics: {accuracy: \">= 0.9\"}\n"
    "  - kind: app\n"
    "    channel: prod\n"
    "    provenance: {builder: \"https://ci.example/builder\"}\n";

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    return v[n / 2];
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "policybench: %s: %s\n", what, err_message(rc));
    exit(1);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    const char *dir = argc > 2 ? argv[2] : "/tmp";
    if (n < 1 || sodium_init() < 0)
        return 2;
    for (int i = 0; i < KEYS; i++) {
        crypto_sign_keypair(keys[i].pub.pk, keys[i].sk);
        key_id_of(keys[i].pub.pk, keys[i].pub.id);
    }
    static struct policy p;
    int rc = policy_parse("bench", text, strlen(text), pub, NULL, &p);
    if (rc < 0)
        die("policy", rc);
    char sig[300];
    policy_sign(&p, &keys[0], sig, sizeof sig);

    /* A model's manifest (100 files) with publisher, approval and privacy
     * signatures, as the agent receives it. */
    Ferry__Manifest m;
    Ferry__Spec spec;
    Ferry__ModelSpec ms;
    Ferry__ModelSpec__MetricsEntry me, *mep = &me;
    ferry__manifest__init(&m);
    ferry__spec__init(&spec);
    ferry__model_spec__init(&ms);
    ferry__model_spec__metrics_entry__init(&me);
    me.key = (char *)"accuracy";
    me.value = 0.94;
    ms.card = (char *)"CARD.md";
    ms.pii = 1;
    ms.metrics = &mep;
    ms.n_metrics = 1;
    spec.name = (char *)"iris";
    spec.version = (char *)"1.2.0";
    spec.kind = (char *)"model";
    spec.runtime = (char *)"exec";
    spec.model = &ms;
    m.format = MANIFEST_FORMAT;
    m.spec = &spec;
    enum { FILES = 100 };
    Ferry__File files[FILES], *fp[FILES];
    char names[FILES][32];
    uint8_t dg[FILES][DIGEST_LEN];
    for (int i = 0; i < FILES; i++) {
        ferry__file__init(&files[i]);
        snprintf(names[i], sizeof names[i], "f%03d.bin", i);
        randombytes_buf(dg[i], DIGEST_LEN);
        files[i].path = names[i];
        files[i].size = 1000;
        files[i].digest = (ProtobufCBinaryData){DIGEST_LEN, dg[i]};
        fp[i] = &files[i];
    }
    m.files = fp;
    m.n_files = FILES;
    uint8_t *mb = NULL, *sb = NULL;
    size_t ml = 0, sl = 0;
    Ferry__SignatureList *sigs = NULL;
    if ((rc = manifest_encode(&m, &mb, &ml)) < 0 || (rc = manifest_sign(mb, ml, &keys[2], &sigs)) < 0)
        die("manifest", rc);
    struct digest d;
    digest_of(mb, ml, &d);
    Ferry__Signature *a1 = NULL, *a2 = NULL;
    gov_sign_approval(&keys[3], &d, "approver", &a1);
    gov_sign_approval(&keys[4], &d, "privacy", &a2);
    sigs->signatures = realloc(sigs->signatures, 3 * sizeof *sigs->signatures);
    sigs->signatures[1] = a1;
    sigs->signatures[2] = a2;
    sigs->n_signatures = 3;
    signatures_encode(sigs, &sb, &sl);
    struct trust publishers = {&keys[2].pub, 1}, admins = {&keys[0].pub, 1};

    /* The agent's policy cache: the reply as the registry serves it. */
    Ferry__Wire__GovReply g;
    ferry__wire__gov_reply__init(&g);
    Ferry__Wire__PolicyKeyFile kf[KEYS], *kfp[KEYS];
    char lines[KEYS][160], paths[KEYS][16];
    for (int i = 0; i < 5; i++) {
        char b64[64];
        sodium_bin2base64(b64, sizeof b64, keys[i].pub.pk, sizeof keys[i].pub.pk,
                          sodium_base64_VARIANT_ORIGINAL);
        snprintf(lines[i], sizeof lines[i], "ferry-ed25519 %s k%d", b64, i);
        snprintf(paths[i], sizeof paths[i], "k%d.pub", i);
        ferry__wire__policy_key_file__init(&kf[i]);
        kf[i].path = paths[i];
        kf[i].text = lines[i];
        kfp[i] = &kf[i];
    }
    g.has_policy = 1;
    g.policy = (ProtobufCBinaryData){strlen(text), (uint8_t *)text};
    g.signature = sig;
    g.keys = kfp;
    g.n_keys = 5;
    char cache[4096];
    snprintf(cache, sizeof cache, "%s/policy.bin", dir);
    {
        size_t len = ferry__wire__gov_reply__get_packed_size(&g);
        uint8_t *buf = malloc(len);
        ferry__wire__gov_reply__pack(&g, buf);
        FILE *f = fopen(cache, "wb");
        if (!f || fwrite(buf, 1, len, f) != len)
            die("cache", -5);
        fclose(f);
        free(buf);
    }

    double *base = malloc((size_t)n * sizeof *base), *eval = malloc((size_t)n * sizeof *eval),
           *full = malloc((size_t)n * sizeof *full);
    for (int i = 0; i < n; i++) {
        /* Interleaved, so drift hits all three alike. */
        double t0 = now_us();
        if ((rc = manifest_verify(mb, ml, sigs, &publishers, NULL)) < 0)
            die("manifest_verify", rc);
        double t1 = now_us();
        if ((rc = govcheck_artifact(&p, "env=prod", mb, ml, sb, sl, NULL)) < 0)
            die("govcheck_artifact", rc);
        double t2 = now_us();
        struct policy *vp = NULL;
        if ((rc = govcheck_policy(NULL, &admins, cache, &vp)) < 0)
            die("govcheck_policy", rc);
        rc = govcheck_artifact(vp, "env=prod", mb, ml, sb, sl, NULL);
        free(vp);
        if (rc < 0)
            die("govcheck_artifact", rc);
        double t3 = now_us();
        base[i] = t1 - t0;
        eval[i] = t2 - t1;
        full[i] = t3 - t2;
    }
    double b = median(base, n), e = median(eval, n), f = median(full, n);
    printf("%-64s %10s %8s\n", "measurement (median of N)", "us", "ratio");
    printf("%-64s %10.1f %8s\n", "manifest signature check, 100 files (baseline)", b, "1.00");
    printf("%-64s %10.1f %8.2f\n", "rules of env=prod: decode, 2 approvals verified, metrics", e,
           e / b);
    printf("%-64s %10.1f %8.2f\n", "policy verified from the agent's cache + rules (per deploy)", f,
           f / b);
    printf("(N = %d)\n", n);
    free(base), free(eval), free(full);
    return 0;
}
