/* Join tokens: make, text form, verify (trusted key, signature, expiry,
 * labels), and strict loading. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "jointoken.h"
#include "scratch.h"

static void make_key(struct key_secret *k, const char *name)
{
    crypto_sign_keypair(k->pub.pk, k->sk);
    key_id_of(k->pub.pk, k->pub.id);
    snprintf(k->pub.name, sizeof k->pub.name, "%s", name);
}

static const uint64_t NOW = 1796000000000ull;

static char *make_token(const struct key_secret *k, const char *labels, uint64_t ttl)
{
    struct label_set ls = {.n = 0};
    if (labels)
        assert_int_equal(labels_parse(labels, &ls), 0);
    char *text = NULL;
    assert_int_equal(jointoken_make(k, &ls, NOW, ttl, &text), 0);
    return text;
}

static int verify_text(const char *text, const struct trust *t, uint64_t now,
                       struct join_claims *c)
{
    uint8_t *b = NULL;
    size_t n = 0;
    int rc = jointoken_from_text(text, &b, &n);
    if (rc == 0)
        rc = jointoken_verify(b, n, t, now, 300000, c);
    free(b);
    return rc;
}

static void test_roundtrip(void **state)
{
    (void)state;
    struct key_secret ops;
    make_key(&ops, "ops");
    struct trust t = {.keys = &ops.pub, .n = 1};
    char *text = make_token(&ops, "env=prod,zone=a", 3600000);
    assert_int_equal(strncmp(text, JOIN_TOKEN_PREFIX, strlen(JOIN_TOKEN_PREFIX)), 0);
    assert_null(strchr(text, '\n'));
    struct join_claims c;
    assert_int_equal(verify_text(text, &t, NOW + 1000, &c), 0);
    assert_int_equal(c.labels.n, 2);
    assert_string_equal(labels_get(&c.labels, "env"), "prod");
    assert_string_equal(labels_get(&c.labels, "zone"), "a");
    assert_int_equal(c.expires_ms, NOW + 3600000);
    assert_string_equal(c.signer, ops.pub.id);
    /* Surrounding whitespace (a file with a newline) is fine. */
    char padded[4096];
    snprintf(padded, sizeof padded, "  %s\n", text);
    assert_int_equal(verify_text(padded, &t, NOW, &c), 0);
    /* Two tokens with the same claims differ (nonce). */
    char *again = make_token(&ops, "env=prod,zone=a", 3600000);
    assert_string_not_equal(text, again);
    free(again);
    free(text);
}

static void test_refusals(void **state)
{
    (void)state;
    struct key_secret ops, mallory;
    make_key(&ops, "ops");
    make_key(&mallory, "mallory");
    struct trust t = {.keys = &ops.pub, .n = 1};
    struct join_claims c;
    char *text = make_token(&ops, NULL, 60000);

    assert_int_equal(verify_text(text, &t, NOW + 60000, &c), FERRY_E_UNTRUSTED);
    assert_non_null(strstr(err_detail(), "join token: expired at"));
    assert_int_equal(verify_text(text, &t, NOW - 400000, &c), FERRY_E_INVALID);
    assert_non_null(strstr(err_detail(), "in the future"));

    char *evil = make_token(&mallory, NULL, 60000);
    assert_int_equal(verify_text(evil, &t, NOW, &c), FERRY_E_UNTRUSTED);
    assert_non_null(strstr(err_detail(), mallory.pub.id));
    assert_non_null(strstr(err_detail(), "not trusted"));

    /* A token re-signed by mallory but naming ops's key id: bad signature.
     * Flip one byte of the signed token's bytes instead: same outcome. */
    uint8_t *b = NULL;
    size_t n = 0;
    assert_int_equal(jointoken_from_text(text, &b, &n), 0);
    b[n / 3] ^= 0x01;
    int rc = jointoken_verify(b, n, &t, NOW, 300000, &c);
    assert_true(rc == FERRY_E_SIGNATURE || rc == FERRY_E_INVALID || rc == FERRY_E_UNTRUSTED);
    free(b);

    assert_int_equal(verify_text("ferry-join-v1:!!!", &t, NOW, &c), FERRY_E_INVALID);
    assert_int_equal(verify_text("hello", &t, NOW, &c), FERRY_E_INVALID);
    assert_int_equal(verify_text("ferry-join-v1:", &t, NOW, &c), FERRY_E_INVALID);

    char *out = NULL;
    struct label_set none = {.n = 0};
    assert_int_equal(jointoken_make(&ops, &none, NOW, 0, &out), FERRY_E_INVALID);
    assert_int_equal(jointoken_make(&ops, &none, NOW, JOIN_TOKEN_MAX_TTL_MS + 1, &out),
                     FERRY_E_INVALID);
    free(evil);
    free(text);
}

static int setup(void **state) { return scratch_setup(state, "test_jointoken"); }
static int teardown(void **state) { return scratch_teardown(state); }

static void test_load(void **state)
{
    const char *dir = *state;
    struct key_secret ops;
    make_key(&ops, "ops");
    char *text = make_token(&ops, "env=x", 60000);
    char path[4200];
    snprintf(path, sizeof path, "%s/tok", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "%s\n", text);
    fclose(f);
    uint8_t *b = NULL;
    size_t n = 0;
    assert_int_equal(jointoken_load(path, &b, &n), 0);
    assert_true(n > 0);
    free(b);

    snprintf(path, sizeof path, "%s/fifo", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(jointoken_load(path, &b, &n), FERRY_E_INVALID);
    assert_non_null(strstr(err_detail(), "not a regular file"));

    snprintf(path, sizeof path, "%s/big", dir);
    f = fopen(path, "w");
    for (int i = 0; i < JOIN_TOKEN_TEXT_MAX + 10; i++)
        fputc('a', f);
    fclose(f);
    assert_int_equal(jointoken_load(path, &b, &n), FERRY_E_LIMIT);

    snprintf(path, sizeof path, "%s/missing", dir);
    assert_true(jointoken_load(path, &b, &n) < 0);
    free(text);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test_setup_teardown(test_load, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
