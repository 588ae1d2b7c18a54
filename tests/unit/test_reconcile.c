/* The reconciler's decisions: a record applies only when its signed selector
 * matches the host's own labels; a record for other hosts stops nothing; the
 * record this host applied stops what runs once its selector no longer
 * matches; older records are replays; a run whose record is gone is kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "reconcile.h"

static Ferry__DeployRecord record(const char *name, const char *version, const char *selector,
                                  uint64_t issued_ms, int undeploy)
{
    Ferry__DeployRecord r = FERRY__DEPLOY_RECORD__INIT;
    r.name = (char *)name;
    r.version = (char *)version;
    r.selector = (char *)selector;
    r.issued_ms = issued_ms;
    r.undeploy = undeploy;
    return r;
}

static struct label_set labels(const char *text)
{
    struct label_set l;
    assert_int_equal(labels_parse(text, &l), 0);
    return l;
}

static void test_matching_record_applies(void **state)
{
    (void)state;
    struct label_set host = labels("env=prod,zone=a");
    char why[512] = "x";
    Ferry__DeployRecord r = record("web", "1.0", "env=prod", 100, 0);
    assert_int_equal(reconcile_judge(&r, &host, 0, NULL, why, sizeof why), RC_APPLY);
    assert_string_equal(why, "");
    /* The same decision again (the next poll), and a newer one. */
    assert_int_equal(reconcile_judge(&r, &host, 100, &r, why, sizeof why), RC_APPLY);
    assert_int_equal(reconcile_judge(&r, &host, 99, NULL, why, sizeof why), RC_APPLY);
    /* Every label of the selector must be the host's: a subset matches. */
    Ferry__DeployRecord both = record("web", "1.0", "env=prod,zone=a", 100, 0);
    assert_int_equal(reconcile_judge(&both, &host, 0, NULL, why, sizeof why), RC_APPLY);
    /* A selector that does not parse (records are checked to be canonical
     * on decoding, so this is defence in depth) matches nothing. */
    Ferry__DeployRecord bad = record("web", "1.0", "env", 100, 0);
    assert_int_equal(reconcile_judge(&bad, &host, 0, NULL, why, sizeof why), RC_NOT_FOR_HOST);
}

static void test_record_for_other_hosts(void **state)
{
    (void)state;
    struct label_set host = labels("env=prod");
    char why[512];
    /* What the registry says does not matter: the signed selector does. */
    Ferry__DeployRecord r = record("web", "2.0", "env=canary", 200, 0);
    assert_int_equal(reconcile_judge(&r, &host, 0, NULL, why, sizeof why), RC_NOT_FOR_HOST);
    assert_string_equal(why,
                        "deployment of web@2.0 is signed for env=canary; this host's labels (env=prod) do not match");
    /* A newer record of a name this host runs, signed for others, stops nothing. */
    Ferry__DeployRecord held = record("web", "1.0", "env=prod", 100, 0);
    assert_int_equal(reconcile_judge(&r, &host, 100, &held, why, sizeof why), RC_NOT_FOR_HOST);
    /* Nor does an undeploy signed for others. */
    Ferry__DeployRecord u = record("web", "", "env=canary", 300, 1);
    assert_int_equal(reconcile_judge(&u, &host, 100, &held, why, sizeof why), RC_NOT_FOR_HOST);
    assert_string_equal(why,
                        "undeploy of web is signed for env=canary; this host's labels (env=prod) do not match");
    /* A selector with a label the host lacks. */
    Ferry__DeployRecord more = record("web", "2.0", "env=prod,gpu=true", 200, 0);
    assert_int_equal(reconcile_judge(&more, &host, 0, NULL, why, sizeof why), RC_NOT_FOR_HOST);
    /* A host without labels matches only the empty selector. */
    struct label_set none;
    memset(&none, 0, sizeof none);
    assert_int_equal(reconcile_judge(&r, &none, 0, NULL, why, sizeof why), RC_NOT_FOR_HOST);
    assert_non_null(strstr(why, "this host's labels (none)"));
}

static void test_applied_record_no_longer_matches(void **state)
{
    (void)state;
    /* Applied while the host was env=canary; it now runs with env=prod. */
    struct label_set host = labels("env=prod");
    char why[512];
    Ferry__DeployRecord held = record("web", "1.0", "env=canary", 100, 0);
    Ferry__DeployRecord same = held;
    assert_int_equal(reconcile_judge(&same, &host, 100, &held, why, sizeof why), RC_UNMATCHED);
    assert_string_equal(why,
                        "deployment of web@1.0 is signed for env=canary; this host's labels (env=prod) no longer match");
    /* Another record of the same name and selector, but another decision
     * (time), is not the one this host applied. */
    Ferry__DeployRecord other = record("web", "1.1", "env=canary", 150, 0);
    assert_int_equal(reconcile_judge(&other, &host, 100, &held, why, sizeof why), RC_NOT_FOR_HOST);
    /* Nor one of the same time for another selector. */
    Ferry__DeployRecord sel = record("web", "1.0", "env=test", 100, 0);
    assert_int_equal(reconcile_judge(&sel, &host, 100, &held, why, sizeof why), RC_NOT_FOR_HOST);
}

static void test_older_is_a_replay(void **state)
{
    (void)state;
    struct label_set host = labels("env=prod");
    char why[512];
    Ferry__DeployRecord old = record("web", "1.0", "env=prod", 100, 0);
    assert_int_equal(reconcile_judge(&old, &host, 200, NULL, why, sizeof why), RC_OLDER);
    assert_string_equal(why, "older deployment of web (issued 100, applied 200): not rolling back");
    /* An older undeploy does not stop a newer deployment either. */
    Ferry__DeployRecord u = record("web", "", "env=prod", 150, 1);
    assert_int_equal(reconcile_judge(&u, &host, 200, NULL, why, sizeof why), RC_OLDER);
}

static void test_existing_runs(void **state)
{
    (void)state;
    Ferry__DeployRecord r = record("web", "1.0", "env=prod", 100, 0);
    assert_int_equal(reconcile_existing("running", 100, 0, &r), RC_LEAVE);
    assert_int_equal(reconcile_existing("fetching", 90, 0, &r), RC_LEAVE);
    assert_int_equal(reconcile_existing("starting", 90, 0, &r), RC_LEAVE);
    /* Failed for this very decision: not retried in a loop. */
    assert_int_equal(reconcile_existing("failed", 100, 0, &r), RC_LEAVE);
    assert_int_equal(reconcile_existing("rolled_back", 100, 0, &r), RC_LEAVE);
    /* A new decision for a failed or stopped version starts it afresh. */
    assert_int_equal(reconcile_existing("failed", 90, 0, &r), RC_RESTART);
    assert_int_equal(reconcile_existing("rolled_back", 90, 0, &r), RC_RESTART);
    assert_int_equal(reconcile_existing("stopped", 100, 0, &r), RC_RESTART);
    assert_int_equal(reconcile_existing("running", 90, 1, &r), RC_WAIT);
    /* A job that succeeded runs again only for a new decision; a scheduled
     * one is on its way. */
    assert_int_equal(reconcile_existing("succeeded", 100, 0, &r), RC_LEAVE);
    assert_int_equal(reconcile_existing("succeeded", 90, 0, &r), RC_RESTART);
    assert_int_equal(reconcile_existing("scheduled", 90, 0, &r), RC_LEAVE);
}

static void test_states_and_listing(void **state)
{
    (void)state;
    const char *finals[] = {"failed", "rolled_back", "stopped"};
    const char *unfinished[] = {"pending", "fetching", "verifying"};
    assert_true(reconcile_state_final("succeeded"));
    assert_false(reconcile_state_final("scheduled"));
    assert_false(reconcile_state_live("scheduled"));
    assert_false(reconcile_state_unfinished("scheduled"));
    const char *live[] = {"starting", "running", "unhealthy"};
    for (int i = 0; i < 3; i++) {
        assert_true(reconcile_state_final(finals[i]));
        assert_false(reconcile_state_unfinished(finals[i]));
        assert_false(reconcile_state_live(finals[i]));
        assert_true(reconcile_state_unfinished(unfinished[i]));
        assert_false(reconcile_state_final(unfinished[i]));
        assert_false(reconcile_state_live(unfinished[i]));
        assert_true(reconcile_state_live(live[i]));
        assert_false(reconcile_state_final(live[i]));
    }
    const char *names[] = {"api", "web"};
    assert_true(reconcile_listed(names, 2, "web"));
    assert_false(reconcile_listed(names, 2, "we"));
    assert_false(reconcile_listed(names, 0, "web"));
    assert_string_equal(RECONCILE_KEPT_REASON, "not in desired state; kept until a signed undeploy");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matching_record_applies),
        cmocka_unit_test(test_record_for_other_hosts),
        cmocka_unit_test(test_applied_record_no_longer_matches),
        cmocka_unit_test(test_older_is_a_replay),
        cmocka_unit_test(test_existing_runs),
        cmocka_unit_test(test_states_and_listing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
