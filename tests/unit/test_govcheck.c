/* The agent's own governance check (agent/govcheck.c): the policy verified
 * from the agent's cache against its own admin keys (revocations applied
 * only when an admin it trusts signed them), and an artifact checked for its
 * environment: rules, the card from the tree, and the publisher's key
 * (revoked, or not allowed the kind: refused on every host). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "fsutil.h"
#include "govcheck.h"
#include "govrules.h"
#include "govtest.h"
#include "manifest.h"
#include "scratch.h"
#include "wire.pb-c.h"

/* k0 admin, k1 ci (publisher of every kind), k2 ds (notebooks only),
 * k3 reviewer, k6 another admin the agent does not trust. */
static const char *const text =
    "keys:\n"
    "  - {name: admin,    pub: k0.pub, roles: [admin]}\n"
    "  - {name: ci,       pub: k1.pub, roles: [publisher, operator]}\n"
    "  - {name: ds,       pub: k2.pub, roles: [publisher], kinds: [notebook]}\n"
    "  - {name: reviewer, pub: k3.pub, roles: [approver]}\n"
    "  - {name: admin2,   pub: k6.pub, roles: [admin]}\n"
    "channels: [dev, prod]\n"
    "environments:\n"
    "  - {name: prod, selector: \"env=prod\", channel: prod}\n"
    "rules:\n"
    "  - kind: model\n"
    "    channel: prod\n"
    "    approvals: 1\n"
    "    card: [Limitations]\n";

static struct policy *P;
static uint8_t *mb, *sb;
static size_t ml, sl;

/* A model manifest signed by key pub_key, approved by approver (-1: not). */
static void artifact(int pub_key, int approver)
{
    free(mb);
    free(sb);
    Ferry__Manifest m;
    Ferry__Spec spec;
    Ferry__ModelSpec ms;
    ferry__manifest__init(&m);
    ferry__spec__init(&spec);
    ferry__model_spec__init(&ms);
    spec.name = (char *)"iris";
    spec.version = (char *)"1.0.0";
    spec.kind = (char *)"model";
    spec.runtime = (char *)"exec";
    ms.card = (char *)"CARD.md";
    spec.model = &ms;
    m.format = MANIFEST_FORMAT;
    m.spec = &spec;
    Ferry__SignatureList *sigs = NULL;
    assert_int_equal(manifest_encode(&m, &mb, &ml), 0);
    assert_int_equal(manifest_sign(mb, ml, &gt_keys[pub_key], &sigs), 0);
    if (approver >= 0) {
        struct digest d;
        digest_of(mb, ml, &d);
        Ferry__Signature *a = NULL;
        assert_int_equal(gov_sign_approval(&gt_keys[approver], &d, "approver", &a), 0);
        sigs->signatures = realloc(sigs->signatures, 2 * sizeof *sigs->signatures);
        sigs->signatures[sigs->n_signatures++] = a;
    }
    assert_int_equal(signatures_encode(sigs, &sb, &sl), 0);
    signatures_free(sigs);
}

static void expect(const char *labels, const char *dir, const char *want)
{
    int rc = govcheck_artifact(P, labels, mb, ml, sb, sl, dir);
    if (!want[0]) {
        if (rc != 0)
            fail_msg("refused: %s", err_detail());
        return;
    }
    assert_int_equal(rc, FERRY_E_UNTRUSTED);
    if (strcmp(err_detail(), want) != 0)
        fail_msg("got '%s', want '%s'", err_detail(), want);
}

static void rules_of_the_environment(void **state)
{
    (void)state;
    artifact(1, 3);
    expect("env=prod", NULL, "");
    artifact(1, -1);
    expect("env=prod", NULL,
           "iris@1.0.0 refused by the policy of environment prod (channel prod): needs 1 more "
           "approval");
    expect("env=dev", NULL, "");   /* in no environment */
    expect("", NULL, "");
}

static void card_from_the_tree(void **state)
{
    const char *dir = *state;
    char path[4200];
    snprintf(path, sizeof path, "%s/CARD.md", dir);
    artifact(1, 3);
    expect("env=prod", dir,
           "iris@1.0.0 refused by the policy of environment prod (channel prod): model card is "
           "missing");
    const char *lacking = "# Intended use\n";
    assert_int_equal(fs_write_file_atomic(path, lacking, strlen(lacking), 0644), 0);
    expect("env=prod", dir,
           "iris@1.0.0 refused by the policy of environment prod (channel prod): model card "
           "lacks 'Limitations'");
    const char *ok = "# Intended use\n## Limitations\n";
    assert_int_equal(fs_write_file_atomic(path, ok, strlen(ok), 0644), 0);
    expect("env=prod", dir, "");
}

static void publisher_kinds_and_revocation(void **state)
{
    (void)state;
    char want[300];
    artifact(2, 3);
    snprintf(want, sizeof want, "iris@1.0.0 refused by the policy: publish refused: key %s (ds) "
             "may not publish kind model", gt_keys[2].pub.id);
    expect("env=dev", NULL, want);
    artifact(5, 3);
    expect("env=prod", NULL, "iris@1.0.0 refused by the policy: no publisher signature by a key "
                             "of the policy");
    artifact(1, 3);
    assert_int_equal(policy_revoke(P, gt_keys[1].pub.id), 0);
    snprintf(want, sizeof want, "iris@1.0.0 refused by the policy: publish refused: key %s (ci) "
             "is revoked", gt_keys[1].pub.id);
    expect("env=dev", NULL, want);
    P->keys[1].revoked = 0;
    /* A revoked approver's approval no longer counts. */
    assert_int_equal(policy_revoke(P, gt_keys[3].pub.id), 0);
    expect("env=prod", NULL,
           "iris@1.0.0 refused by the policy of environment prod (channel prod): needs 1 more "
           "approval");
    P->keys[3].revoked = 0;
}

/* The cache file: a GovReply as the registry serves it. */
static void write_cache(const char *path, const char *sig, const Ferry__Wire__SignedGov *rev)
{
    Ferry__Wire__GovReply g;
    ferry__wire__gov_reply__init(&g);
    Ferry__Wire__PolicyKeyFile kf[GT_KEYS], *kfp[GT_KEYS];
    char lines[GT_KEYS][160], paths[GT_KEYS][16];
    for (int i = 0; i < GT_KEYS; i++) {
        char b64[64];
        sodium_bin2base64(b64, sizeof b64, gt_keys[i].pub.pk, sizeof gt_keys[i].pub.pk,
                          sodium_base64_VARIANT_ORIGINAL);
        snprintf(lines[i], sizeof lines[i], "ferry-ed25519 %s k%d", b64, i);
        snprintf(paths[i], sizeof paths[i], "k%d.pub", i);
        ferry__wire__policy_key_file__init(&kf[i]);
        kf[i].path = paths[i];
        kf[i].text = lines[i];
        kfp[i] = &kf[i];
    }
    Ferry__Wire__SignedGov *revs[1] = {(Ferry__Wire__SignedGov *)rev};
    g.has_policy = 1;
    g.policy = (ProtobufCBinaryData){strlen(text), (uint8_t *)text};
    g.signature = (char *)sig;
    g.keys = kfp;
    g.n_keys = GT_KEYS;
    g.revoked = rev ? revs : NULL;
    g.n_revoked = rev ? 1 : 0;
    size_t len = ferry__wire__gov_reply__get_packed_size(&g);
    uint8_t *buf = malloc(len);
    ferry__wire__gov_reply__pack(&g, buf);
    assert_int_equal(fs_write_file_atomic(path, buf, len, 0644), 0);
    free(buf);
}

/* A revocation of key `victim` signed by `admin`. */
static Ferry__Wire__SignedGov *revocation(int admin, int victim, uint8_t *body, size_t *blen,
                                          uint8_t sig[crypto_sign_BYTES])
{
    Ferry__Wire__GovBody b;
    ferry__wire__gov_body__init(&b);
    b.purpose = (char *)"ferry-gov-v1";
    b.action = (char *)"revoke";
    b.key_id = gt_keys[victim].pub.id;
    *blen = ferry__wire__gov_body__pack(&b, body);
    key_sign(&gt_keys[admin], body, *blen, sig);
    static Ferry__Wire__SignedGov sg;
    ferry__wire__signed_gov__init(&sg);
    sg.body = (ProtobufCBinaryData){*blen, body};
    sg.key_id = gt_keys[admin].pub.id;
    sg.signature = (ProtobufCBinaryData){crypto_sign_BYTES, sig};
    return &sg;
}

static void policy_from_the_cache(void **state)
{
    const char *dir = *state;
    char cache[4200], sig[300];
    snprintf(cache, sizeof cache, "%s/policy.bin", dir);
    struct trust admins = {&gt_keys[0].pub, 1}, other = {&gt_keys[5].pub, 1};
    struct policy *vp = NULL;
    unlink(cache);
    assert_int_equal(govcheck_policy(NULL, &admins, cache, &vp), FERRY_E_UNTRUSTED);
    assert_non_null(strstr(err_detail(), "policy not verified: cannot fetch the policy"));
    assert_int_equal(policy_sign(P, &gt_keys[0], sig, sizeof sig), 0);
    write_cache(cache, sig, NULL);
    assert_int_equal(govcheck_policy(NULL, &admins, cache, &vp), 0);
    assert_int_equal(vp->n_keys, 5);
    free(vp);
    assert_int_equal(govcheck_policy(NULL, &other, cache, &vp), FERRY_E_UNTRUSTED);
    assert_non_null(strstr(err_detail(), "policy not verified: policy signed by key"));
    assert_non_null(strstr(err_detail(), "(admin), which is not a trusted admin key"));
    /* Signed by a key the policy does not name as admin (ci, a publisher):
     * refused even by an agent that takes ci.pub as an admin key. */
    struct trust ci_as_admin = {&gt_keys[1].pub, 1};
    char bad[300];
    assert_int_equal(policy_sign(P, &gt_keys[1], bad, sizeof bad), 0);
    write_cache(cache, bad, NULL);
    assert_int_equal(govcheck_policy(NULL, &ci_as_admin, cache, &vp), FERRY_E_UNTRUSTED);
    assert_non_null(strstr(err_detail(), "policy not verified: policy signed by key"));
    assert_non_null(strstr(err_detail(), "(ci), which the policy does not name as admin"));
    assert_int_equal(govcheck_policy(NULL, &admins, cache, &vp), FERRY_E_UNTRUSTED);
    write_cache(cache, sig, NULL);
    /* A revocation signed by the trusted admin is applied; one signed by
     * an admin this agent does not trust is not. */
    uint8_t body[200], rsig[crypto_sign_BYTES];
    size_t blen = 0;
    write_cache(cache, sig, revocation(0, 3, body, &blen, rsig));
    assert_int_equal(govcheck_policy(NULL, &admins, cache, &vp), 0);
    assert_true(vp->keys[3].revoked);
    free(vp);
    write_cache(cache, sig, revocation(6, 3, body, &blen, rsig));
    assert_int_equal(govcheck_policy(NULL, &admins, cache, &vp), 0);
    assert_false(vp->keys[3].revoked);
    free(vp);
}

static int setup(void **state) { return scratch_setup(state, "test_govcheck"); }
static int teardown(void **state) { return scratch_teardown(state); }

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    gt_make_keys();
    P = malloc(sizeof *P);
    if (gt_parse(text, P) != 0) {
        fprintf(stderr, "policy: %s\n", err_detail());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rules_of_the_environment),
        cmocka_unit_test(card_from_the_tree),
        cmocka_unit_test(publisher_kinds_and_revocation),
        cmocka_unit_test(policy_from_the_cache),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    free(mb);
    free(sb);
    free(P);
    return rc;
}
