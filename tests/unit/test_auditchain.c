/* The audit chain: canonical hashing, and the walk that names the first
 * entry out of place (edited, reordered, missing, wrong previous hash). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "auditchain.h"
#include "error.h"

#define N 5

static void build(struct audit_entry *v)
{
    struct digest prev = {{0}};
    for (int i = 0; i < N; i++) {
        memset(&v[i], 0, sizeof v[i]);
        v[i].seq = (uint64_t)i + 1;
        v[i].time_unix = 1700000000 + i;
        v[i].format = AUDIT_FORMAT;
        snprintf(v[i].key_id, sizeof v[i].key_id, "k%d", i);
        snprintf(v[i].role, sizeof v[i].role, "operator");
        snprintf(v[i].what, sizeof v[i].what, "deploy");
        snprintf(v[i].detail, sizeof v[i].detail, "app@%d.0 to env=prod", i);
        v[i].prev_hash = prev;
        audit_entry_hash(&v[i], &prev, &v[i].hash);
        prev = v[i].hash;
    }
}

/* seq of the first bad entry, 0 when the chain holds. */
static uint64_t walk(const struct audit_entry *v, size_t n, char *why, size_t cap)
{
    struct audit_cursor c;
    audit_cursor_init(&c);
    for (size_t i = 0; i < n; i++)
        if (audit_cursor_step(&c, &v[i], why, cap) < 0)
            return v[i].seq;
    return 0;
}

static void test_intact(void **state)
{
    (void)state;
    struct audit_entry v[N];
    char why[3000];
    build(v);
    assert_int_equal(walk(v, N, why, sizeof why), 0);
}

static void test_edited_field(void **state)
{
    (void)state;
    struct audit_entry v[N];
    char why[3000];
    build(v);
    snprintf(v[2].role, sizeof v[2].role, "admin");
    assert_int_equal(walk(v, N, why, sizeof why), 3);
    assert_non_null(strstr(why, "audit entry 3 (deploy app@2.0 to env=prod) does not match: its content"));
}

static void test_fields_do_not_run_together(void **state)
{
    (void)state;
    struct audit_entry a[N], b[N];
    build(a);
    build(b);
    /* "ab"+"c" and "a"+"bc" must hash differently. */
    snprintf(a[0].role, sizeof a[0].role, "ab");
    snprintf(a[0].what, sizeof a[0].what, "c");
    snprintf(b[0].role, sizeof b[0].role, "a");
    snprintf(b[0].what, sizeof b[0].what, "bc");
    struct digest z = {{0}}, ha, hb;
    audit_entry_hash(&a[0], &z, &ha);
    audit_entry_hash(&b[0], &z, &hb);
    assert_false(digest_equal(&ha, &hb));
}

static void test_deleted_and_reordered(void **state)
{
    (void)state;
    struct audit_entry v[N], w[N];
    char why[3000];
    build(v);
    /* drop entry 2 */
    w[0] = v[0];
    memcpy(&w[1], &v[2], sizeof v[0] * (N - 2));
    assert_int_equal(walk(w, N - 1, why, sizeof why), 3);
    assert_non_null(strstr(why, "entries before it are missing"));
    /* drop the first: the next names a previous hash nobody has */
    assert_int_equal(walk(&v[1], N - 1, why, sizeof why), 2);
    /* swap 3 and 4 */
    memcpy(w, v, sizeof v);
    w[2] = v[3];
    w[3] = v[2];
    assert_int_equal(walk(w, N, why, sizeof why), 4);
    assert_non_null(strstr(why, "out of order") ? strstr(why, "out of order")
                                                 : strstr(why, "missing"));
}

static void test_rehashed_without_prev(void **state)
{
    (void)state;
    struct audit_entry v[N];
    char why[3000];
    build(v);
    /* An edit with the entry's own hash recomputed still breaks the next. */
    snprintf(v[1].detail, sizeof v[1].detail, "app@9.9 to env=prod");
    audit_entry_hash(&v[1], &v[1].prev_hash, &v[1].hash);
    assert_int_equal(walk(v, N, why, sizeof why), 3);
    assert_non_null(strstr(why, "its previous hash is not the hash of the entry before it"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_intact),
        cmocka_unit_test(test_edited_field),
        cmocka_unit_test(test_fields_do_not_run_together),
        cmocka_unit_test(test_deleted_and_reordered),
        cmocka_unit_test(test_rehashed_without_prev),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
