/* The agent's local state: a plugin's private text for a run (ABI 2
 * plugin_state) is stored with the run, survives the run's own updates and
 * a reopen, is bounded, and goes with the run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "localdb.h"
#include "scratch.h"

static int setup(void **state) { return scratch_setup(state, "test_localdb"); }
static int teardown(void **state) { return scratch_teardown(state); }

static void put_run(struct localdb *db, const char *state)
{
    struct localdb_run r;
    memset(&r, 0, sizeof r);
    snprintf(r.name, sizeof r.name, "web");
    snprintf(r.version, sizeof r.version, "1.0.0");
    snprintf(r.state, sizeof r.state, "%s", state);
    r.pid = 123;
    snprintf(r.plugin_state, sizeof r.plugin_state, "ignored by run_put");
    assert_int_equal(localdb_run_put(db, &r), 0);
}

static void test_plugin_state(void **state)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/agent.db", (const char *)*state);
    struct localdb db;
    assert_int_equal(localdb_open(&db, path), 0);
    char buf[LOCALDB_PLUGIN_STATE_MAX];

    /* No run, no state. */
    assert_int_equal(localdb_run_state_put(&db, "web", "1.0.0", "x"), FERRY_E_NOTFOUND);
    assert_int_equal(localdb_run_state_get(&db, "web", "1.0.0", buf, sizeof buf), FERRY_E_NOTFOUND);

    put_run(&db, "starting");
    assert_int_equal(localdb_run_state_get(&db, "web", "1.0.0", buf, sizeof buf), 0);
    assert_string_equal(buf, "");
    assert_int_equal(localdb_run_state_put(&db, "web", "1.0.0", "container=abc123"), 0);
    /* The run's own updates leave it alone. */
    put_run(&db, "running");
    assert_int_equal(localdb_run_state_get(&db, "web", "1.0.0", buf, sizeof buf), 0);
    assert_string_equal(buf, "container=abc123");

    /* Bounded: 511 bytes fit, 512 do not, and nothing changes. */
    char big[LOCALDB_PLUGIN_STATE_MAX + 1];
    memset(big, 'a', sizeof big);
    big[LOCALDB_PLUGIN_STATE_MAX - 1] = '\0';
    assert_int_equal(localdb_run_state_put(&db, "web", "1.0.0", big), 0);
    big[LOCALDB_PLUGIN_STATE_MAX - 1] = 'a';
    big[LOCALDB_PLUGIN_STATE_MAX] = '\0';
    assert_int_equal(localdb_run_state_put(&db, "web", "1.0.0", big), FERRY_E_LIMIT);
    assert_int_equal(localdb_run_state_get(&db, "web", "1.0.0", buf, sizeof buf), 0);
    assert_int_equal(strlen(buf), LOCALDB_PLUGIN_STATE_MAX - 1);
    assert_int_equal(localdb_run_state_put(&db, "web", "1.0.0", "container=abc123"), 0);
    localdb_close(&db);

    /* After a restart, the run list carries it. */
    assert_int_equal(localdb_open(&db, path), 0);
    struct localdb_run *runs = NULL;
    size_t n = 0;
    assert_int_equal(localdb_run_list(&db, &runs, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(runs[0].state, "running");
    assert_string_equal(runs[0].plugin_state, "container=abc123");
    free(runs);

    /* Deleting the run deletes it; a new run of the same version starts empty. */
    assert_int_equal(localdb_run_delete(&db, "web", "1.0.0"), 0);
    put_run(&db, "starting");
    assert_int_equal(localdb_run_state_get(&db, "web", "1.0.0", buf, sizeof buf), 0);
    assert_string_equal(buf, "");
    localdb_close(&db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plugin_state, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
