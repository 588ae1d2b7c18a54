/* Rule evaluation as a pure function (lib/govrules.c): each rule refused
 * with its reason and allowed once met; one key counts once; a revoked key,
 * a key without the role and a signature over another digest do not count;
 * provenance by builder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "govrules.h"
#include "govtest.h"
#include "spec.h"

/* k0 admin, k1 ci (publisher), k2/k3 approvers, k4 privacy, k5 nobody. */
static const char *const text =
    "keys:\n"
    "  - {name: admin, pub: k0.pub, roles: [admin]}\n"
    "  - {name: ci,    pub: k1.pub, roles: [publisher, operator]}\n"
    "  - {name: r1,    pub: k2.pub, roles: [approver]}\n"
    "  - {name: r2,    pub: k3.pub, roles: [approver]}\n"
    "  - {name: dpo,   pub: k4.pub, roles: [privacy]}\n"
    "channels: [dev, prod]\n"
    "rules:\n"
    "  - kind: model\n"
    "    channel: prod\n"
    "    approvals: 2\n"
    "    privacy_review: true\n"
    "    card: [Intended use, Limitations]\n"
    "    metrics: {accuracy: \">= 0.9\", loss: \"< 0.2\"}\n"
    "  - kind: app\n"
    "    channel: prod\n"
    "    provenance: {builder: \"https://ci.example/builder\"}\n";

static struct policy *P;

/* A subject under construction. */
struct subj {
    Ferry__Spec spec;
    Ferry__ModelSpec model;
    Ferry__ModelSpec__MetricsEntry me[4], *mp[4];
    Ferry__SignatureList sl;
    Ferry__Signature *sigs[16];
    struct digest d;
    struct gov_subject s;
};

static void subj_init(struct subj *x, const char *kind, int pii)
{
    memset(x, 0, sizeof *x);
    ferry__spec__init(&x->spec);
    ferry__model_spec__init(&x->model);
    ferry__signature_list__init(&x->sl);
    x->spec.name = (char *)"iris";
    x->spec.version = (char *)"1.0.0";
    x->spec.kind = (char *)kind;
    x->spec.model = &x->model;
    x->model.pii = pii;
    x->model.metrics = x->mp;
    x->sl.signatures = x->sigs;
    digest_of("manifest bytes", 14, &x->d);
    x->s.spec = &x->spec;
    x->s.digest = &x->d;
    x->s.sigs = &x->sl;
    x->s.card = GOV_CARD_UNKNOWN;
}

static void metric(struct subj *x, const char *name, double v)
{
    size_t i = x->model.n_metrics++;
    ferry__model_spec__metrics_entry__init(&x->me[i]);
    x->me[i].key = (char *)name;
    x->me[i].value = v;
    x->mp[i] = &x->me[i];
}

static void approve(struct subj *x, int key, const char *role)
{
    Ferry__Signature *s = NULL;
    assert_int_equal(gov_sign_approval(&gt_keys[key], &x->d, role, &s), 0);
    x->sigs[x->sl.n_signatures++] = s;
}

static void provenance(struct subj *x, int key, const char *statement)
{
    Ferry__Signature *s = NULL;
    assert_int_equal(gov_sign_provenance(&gt_keys[key], &x->d, statement, &s), 0);
    x->sigs[x->sl.n_signatures++] = s;
}

static void subj_free(struct subj *x)
{
    for (size_t i = 0; i < x->sl.n_signatures; i++)
        ferry__signature__free_unpacked(x->sigs[i], NULL);
}

static void expect(struct subj *x, const char *channel, const char *want)
{
    struct gov_result r;
    char got[2000];
    gov_evaluate(P, channel, &x->s, &r);
    gov_result_join(&r, got, sizeof got);
    if (strcmp(got, want) != 0 || r.allowed != !want[0])
        fail_msg("got '%s' (allowed %d), want '%s'", got, r.allowed, want);
}

/* Everything the model rule asks for, card included. */
static const char card_ok[] = "# Iris\n\n## Intended use\ntext\n\n### limitations ##\nmore\n";

static void model_ok(struct subj *x)
{
    subj_init(x, "model", 1);
    metric(x, "accuracy", 0.94);
    metric(x, "loss", 0.1);
    approve(x, 2, "approver");
    approve(x, 3, "approver");
    approve(x, 4, "privacy");
    x->s.card = GOV_CARD_TEXT;
    x->s.card_text = card_ok;
    x->s.card_len = strlen(card_ok);
}

static void no_rule_allows(void **state)
{
    (void)state;
    struct subj x;
    subj_init(&x, "model", 1);
    expect(&x, "dev", "");
    subj_init(&x, "notebook", 0);
    expect(&x, "prod", "");
}

static void every_rule_met_allows(void **state)
{
    (void)state;
    struct subj x;
    model_ok(&x);
    expect(&x, "prod", "");
    subj_free(&x);
}

static void approvals_count_distinct_keys(void **state)
{
    (void)state;
    struct subj x;
    model_ok(&x);
    subj_free(&x);
    model_ok(&x);
    /* Drop r2's approval: one short. */
    ferry__signature__free_unpacked(x.sigs[1], NULL);
    x.sigs[1] = x.sigs[2];
    x.sl.n_signatures = 2;
    expect(&x, "prod", "needs 1 more approval");
    /* r1 again: still one key. */
    approve(&x, 2, "approver");
    approve(&x, 2, "approver");
    expect(&x, "prod", "needs 1 more approval");
    /* A key without the approver role (the privacy officer, the publisher,
     * one the policy does not name) does not count. */
    approve(&x, 4, "approver");
    approve(&x, 1, "approver");
    approve(&x, 5, "approver");
    expect(&x, "prod", "needs 1 more approval");
    /* r2 over another manifest does not count. */
    struct digest other;
    digest_of("other", 5, &other);
    Ferry__Signature *s = NULL;
    assert_int_equal(gov_sign_approval(&gt_keys[3], &other, "approver", &s), 0);
    x.sigs[x.sl.n_signatures++] = s;
    expect(&x, "prod", "needs 1 more approval");
    approve(&x, 3, "approver");
    expect(&x, "prod", "");
    /* Revoked: r2's approval no longer counts. */
    assert_int_equal(policy_revoke(P, gt_keys[3].pub.id), 0);
    expect(&x, "prod", "needs 1 more approval");
    P->keys[3].revoked = 0;
    subj_free(&x);
    subj_init(&x, "model", 0);
    metric(&x, "accuracy", 0.94);
    metric(&x, "loss", 0.1);
    expect(&x, "prod", "needs 2 more approvals");
}

static void privacy_review_only_for_pii(void **state)
{
    (void)state;
    struct subj x;
    model_ok(&x);
    x.sl.n_signatures = 2; /* without the privacy review (freed below) */
    expect(&x, "prod", "pii: true needs a privacy review");
    /* An approver's "privacy" approval is not a privacy review. */
    Ferry__Signature *keep = x.sigs[2];
    approve(&x, 2, "privacy");
    expect(&x, "prod", "pii: true needs a privacy review");
    ferry__signature__free_unpacked(x.sigs[2], NULL);
    x.sigs[2] = keep;
    x.sl.n_signatures = 2;
    x.model.pii = 0;
    expect(&x, "prod", "");
    x.sl.n_signatures = 3;
    subj_free(&x);
}

static void card_headings(void **state)
{
    (void)state;
    struct subj x;
    model_ok(&x);
    const char *partial = "Intended use\n## Intended use\n#Limitations\n";
    x.s.card_text = partial;
    x.s.card_len = strlen(partial);
    expect(&x, "prod", "model card lacks 'Limitations'");
    x.s.card_text = "";
    x.s.card_len = 0;
    expect(&x, "prod", "model card lacks 'Intended use'; model card lacks 'Limitations'");
    x.s.card = GOV_CARD_ABSENT;
    expect(&x, "prod", "model card is missing");
    x.s.card = GOV_CARD_UNKNOWN; /* not checked before the tree exists */
    expect(&x, "prod", "");
    subj_free(&x);
}

static void metric_thresholds(void **state)
{
    (void)state;
    struct subj x;
    model_ok(&x);
    x.me[0].value = 0.85;
    expect(&x, "prod", "metric accuracy is 0.85, needs >= 0.9");
    x.me[0].value = 0.9;
    expect(&x, "prod", "");
    x.me[1].value = 0.2;
    expect(&x, "prod", "metric loss is 0.2, needs < 0.2");
    x.model.n_metrics = 1;
    expect(&x, "prod", "metric loss is missing (needs < 0.2)");
    subj_free(&x);
}

static void provenance_builder(void **state)
{
    (void)state;
    struct subj x;
    subj_init(&x, "app", 0);
    expect(&x, "prod", "needs provenance from builder https://ci.example/builder");
    provenance(&x, 1, "builder=https://other.example,commit=abc");
    expect(&x, "prod",
           "provenance builder is https://other.example, needs https://ci.example/builder");
    subj_free(&x);
    subj_init(&x, "app", 0);
    /* A statement by a key that is no publisher does not count. */
    provenance(&x, 2, "builder=https://ci.example/builder,commit=abc");
    expect(&x, "prod", "needs provenance from builder https://ci.example/builder");
    provenance(&x, 1, "builder=https://ci.example/builder,commit=abc,repo=https://git/x");
    expect(&x, "prod", "");
    /* Tampered statement: no longer verifies. */
    free(x.sigs[1]->statement);
    x.sigs[1]->statement = strdup("builder=https://ci.example/builder,commit=evil");
    expect(&x, "prod", "needs provenance from builder https://ci.example/builder");
    subj_free(&x);
    assert_int_equal(gov_statement_check("commit=abc"), FERRY_E_INVALID);
    assert_int_equal(gov_statement_check("builder=x,=y"), FERRY_E_INVALID);
    assert_int_equal(gov_statement_check("builder=x,commit=y"), 0);
}

/* model.metrics in ferry.yaml: the figures rules compare against. */
static void metrics_from_ferry_yaml(void **state)
{
    (void)state;
    const char *y = "name: iris\nversion: 1.0.0\nkind: model\nruntime: exec\n"
                    "run: {command: [./x]}\nmodel:\n  pii: false\n"
                    "  metrics: {accuracy: 0.94, auc: 0.97, loss: 1e-1}\n";
    Ferry__Spec *spec = NULL;
    if (spec_parse("ferry.yaml", y, strlen(y), &spec) != 0)
        fail_msg("%s", err_detail());
    assert_int_equal(spec->model->n_metrics, 3);
    assert_string_equal(spec->model->metrics[1]->key, "auc");
    assert_true(spec->model->metrics[2]->value == 0.1);
    struct subj x;
    subj_init(&x, "model", 0);
    x.s.spec = spec;
    approve(&x, 2, "approver");
    approve(&x, 3, "approver");
    expect(&x, "prod", "");
    subj_free(&x);
    spec_free(spec);
    static const char *const bad[] = {
        "  metrics: {accuracy: high}\n", "  metrics: {accuracy: \"0.9\"}\n",
        "  metrics: [0.9]\n", "  metrics: {a: 1, a: 2}\n"};
    for (size_t i = 0; i < 4; i++) {
        char doc[400];
        snprintf(doc, sizeof doc, "name: iris\nversion: 1.0.0\nkind: model\nruntime: exec\n"
                                  "run: {command: [./x]}\nmodel:\n%s", bad[i]);
        spec = NULL;
        assert_int_equal(spec_parse("ferry.yaml", doc, strlen(doc), &spec), FERRY_E_SPEC);
        assert_non_null(strstr(err_detail(), "ferry.yaml:7: key 'model.metrics"));
    }
}

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
        cmocka_unit_test(no_rule_allows),
        cmocka_unit_test(every_rule_met_allows),
        cmocka_unit_test(approvals_count_distinct_keys),
        cmocka_unit_test(privacy_review_only_for_pii),
        cmocka_unit_test(card_headings),
        cmocka_unit_test(metric_thresholds),
        cmocka_unit_test(provenance_builder),
        cmocka_unit_test(metrics_from_ferry_yaml),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(P);
    return rc;
}
