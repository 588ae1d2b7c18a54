/* The governance policy parser (lib/policy.c): the issue's schema, errors
 * with file:line, signatures by admins only, roles and kinds, revocation,
 * environments by labels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "govtest.h"
#include "policy.h"

static const char *const example =
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
    "    approvals: 1                  # distinct approver keys\n"
    "    privacy_review: true\n"
    "    card: [Intended use, Limitations]\n"
    "    metrics: {accuracy: \">= 0.9\"}\n"
    "  - kind: app\n"
    "    channel: prod\n"
    "    provenance: {builder: \"https://ci.example/builder\"}\n";

static struct policy *P;

static void parses_the_issue_example(void **state)
{
    (void)state;
    int rc = gt_parse(example, P);
    if (rc != 0)
        fail_msg("parse: %s", err_detail());
    assert_int_equal(P->n_keys, 5);
    assert_int_equal(P->keys[1].roles, ROLE_PUBLISHER | ROLE_OPERATOR);
    assert_int_equal(P->keys[2].kinds, KIND_MODEL | KIND_NOTEBOOK);
    assert_int_equal(P->keys[0].kinds, 0);
    assert_string_equal(P->keys[3].pub.id, gt_keys[3].pub.id);
    assert_int_equal(P->n_channels, 3);
    assert_string_equal(P->channels[2], "prod");
    assert_int_equal(P->n_envs, 2);
    assert_string_equal(P->envs[0].selector, "env=prod");
    assert_int_equal(P->n_rules, 2);
    const struct policy_rule *r = &P->rules[0];
    assert_string_equal(r->kind, "model");
    assert_int_equal(r->approvals, 1);
    assert_true(r->privacy_review);
    assert_int_equal(r->n_card, 2);
    assert_string_equal(r->card[1], "Limitations");
    assert_int_equal(r->n_metrics, 1);
    assert_string_equal(r->metrics[0].name, "accuracy");
    assert_int_equal(r->metrics[0].op, OP_GE);
    assert_true(r->metrics[0].threshold == 0.9);
    assert_string_equal(P->rules[1].builder, "https://ci.example/builder");
}

/* text with `line` replacing the example's line number n (1-based). */
static char *with_line(int n, const char *line)
{
    char *out = calloc(1, strlen(example) + strlen(line) + 2);
    const char *p = example;
    for (int i = 1; *p; i++) {
        const char *e = strchr(p, '\n');
        size_t len = (size_t)(e - p) + 1;
        if (i == n) {
            strcat(out, line);
            strcat(out, "\n");
        } else {
            strncat(out, p, len);
        }
        p += len;
    }
    return out;
}

static void refused(int n, const char *line, const char *want)
{
    char *text = with_line(n, line);
    int rc = gt_parse(text, P);
    free(text);
    assert_int_equal(rc, FERRY_E_SPEC);
    if (!strstr(err_detail(), want))
        fail_msg("line %d '%s': got '%s', want '%s'", n, line, err_detail(), want);
}

static void errors_name_file_line_and_key(void **state)
{
    (void)state;
    refused(7, "channels: [dev, staging, prod]\nowner: me", "policy.yaml:8: key 'owner': unknown key");
    refused(15, "    privacy: true", "policy.yaml:15: key 'rules[0].privacy': unknown key");
    refused(2, "  - {name: admin, pub: k0.pub, roles: [admin, boss]}",
            "policy.yaml:2: key 'keys[0].roles': 'boss' is not one of admin, publisher");
    refused(3, "  - {name: ci, pub: k1.pub, roles: [publisher], kinds: [job]}",
            "key 'keys[1].kinds': 'job' is not one of app, model, notebook");
    refused(9, "  - {name: prod, selector: \"env=prod\", channel: live}",
            "policy.yaml:9: key 'environments[0]': channel 'live' is not in channels");
    refused(13, "    channel: qa", "key 'rules[0]': channel 'qa' is not in channels");
    refused(17, "    metrics: {accuracy: \"about 0.9\"}",
            "policy.yaml:17: key 'rules[0].metrics.accuracy': expected a comparison");
    refused(12, "  - kind: job", "policy.yaml:12: key 'rules[0].kind': 'job' is not one of");
    refused(4, "  - {name: ds, roles: [publisher]}", "key 'keys[2].pub': required key is missing");
    refused(4, "  - {name: ds, pub: k9.pub, roles: [publisher]}", "key 'keys[2].pub': k9.pub: no such key");
    refused(4, "  - {name: ci, pub: k2.pub, roles: [publisher]}", "key name 'ci' is used twice");
    refused(4, "  - {name: ds, pub: k1.pub, roles: [publisher]}", "is listed twice (ci and ds)");
    refused(14, "    approvals: many", "key 'rules[0].approvals': expected an integer");
    refused(2, "  - {name: admin, pub: k0.pub, roles: [operator]}", "no key holds the admin role");
    refused(18, "  - kind: model", "a second rule for kind model on channel prod");
    assert_int_equal(gt_parse("keys: [\n", P), FERRY_E_SPEC);
    assert_non_null(strstr(err_detail(), "policy.yaml:"));
}

static void signed_by_admins_only(void **state)
{
    (void)state;
    assert_int_equal(gt_parse(example, P), 0);
    char sig[300], signer[KEY_ID_LEN + 1];
    assert_int_equal(policy_sign(P, &gt_keys[0], sig, sizeof sig), 0);
    assert_int_equal(policy_verify(P, sig, NULL, signer), 0);
    assert_string_equal(signer, gt_keys[0].pub.id);
    /* anchored: the admin must be among the anchors */
    struct trust t = {&gt_keys[0].pub, 1}, other = {&gt_keys[5].pub, 1};
    assert_int_equal(policy_verify(P, sig, &t, NULL), 0);
    assert_int_equal(policy_verify(P, sig, &other, NULL), FERRY_E_UNTRUSTED);
    assert_non_null(strstr(err_detail(), "which is not a trusted admin key"));
    /* a key the policy names, but not as admin */
    assert_int_equal(policy_sign(P, &gt_keys[1], sig, sizeof sig), 0);
    assert_int_equal(policy_verify(P, sig, NULL, NULL), FERRY_E_UNTRUSTED);
    assert_non_null(strstr(err_detail(), "(ci), which the policy does not name as admin"));
    /* the text changed after signing */
    assert_int_equal(policy_sign(P, &gt_keys[0], sig, sizeof sig), 0);
    char *edited = with_line(14, "    approvals: 0");
    assert_int_equal(gt_parse(edited, P), 0);
    free(edited);
    assert_int_equal(policy_verify(P, sig, NULL, NULL), FERRY_E_SIGNATURE);
    /* the same text with another key behind a path: another digest */
    assert_int_equal(gt_parse(example, P), 0);
    struct digest before = P->digest;
    struct key_public saved = gt_keys[3].pub;
    crypto_sign_keypair(gt_keys[3].pub.pk, gt_keys[3].sk);
    key_id_of(gt_keys[3].pub.pk, gt_keys[3].pub.id);
    assert_int_equal(gt_parse(example, P), 0);
    assert_false(digest_equal(&before, &P->digest));
    gt_keys[3].pub = saved;
    assert_int_equal(policy_verify(P, "garbage", NULL, NULL), FERRY_E_SIGNATURE);
}

static void roles_kinds_and_revocation(void **state)
{
    (void)state;
    assert_int_equal(gt_parse(example, P), 0);
    const char *ds = gt_keys[2].pub.id;
    assert_int_equal(policy_allows(P, ds, ROLE_PUBLISHER, "model", "publish"), 0);
    assert_int_equal(policy_allows(P, ds, ROLE_PUBLISHER, "app", "publish"), FERRY_E_UNTRUSTED);
    assert_non_null(strstr(err_detail(), "(ds) may not publish kind app"));
    assert_int_equal(policy_allows(P, ds, ROLE_OPERATOR, NULL, "deploy"), FERRY_E_UNTRUSTED);
    assert_non_null(strstr(err_detail(), "does not hold the operator role"));
    assert_int_equal(policy_allows(P, gt_keys[1].pub.id, ROLE_PUBLISHER, "app", "publish"), 0);
    assert_int_equal(policy_allows(P, gt_keys[6].pub.id, ROLE_PUBLISHER, "app", "publish"),
                     FERRY_E_UNTRUSTED);
    assert_non_null(strstr(err_detail(), "is not in the policy"));
    assert_int_equal(policy_revoke(P, ds), 0);
    assert_int_equal(policy_allows(P, ds, ROLE_PUBLISHER, "model", "publish"), FERRY_E_UNTRUSTED);
    assert_non_null(strstr(err_detail(), "(ds) is revoked"));
    assert_int_equal(policy_revoke(P, gt_keys[6].pub.id), FERRY_E_NOTFOUND);
}

static void environments_by_labels(void **state)
{
    (void)state;
    assert_int_equal(gt_parse(example, P), 0);
    assert_string_equal(policy_channel_for_labels(P, "env=prod,gpu=true"), "prod");
    assert_string_equal(policy_channel_for_labels(P, "env=dev"), "dev");
    assert_null(policy_channel_for_labels(P, "env=qa"));
    assert_null(policy_channel_for_labels(P, ""));
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    gt_make_keys();
    P = malloc(sizeof *P);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_the_issue_example),
        cmocka_unit_test(errors_name_file_line_and_key),
        cmocka_unit_test(signed_by_admins_only),
        cmocka_unit_test(roles_kinds_and_revocation),
        cmocka_unit_test(environments_by_labels),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(P);
    return rc;
}
