/* Signed deploy records: sign, verify against a trust set, and refusal of
 * records that would not survive being stored re-encoded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "hash.h"
#include "record.h"

static void seed_key(uint8_t fill, struct key_secret *k, struct trust *t)
{
    uint8_t seed[crypto_sign_SEEDBYTES];
    memset(seed, fill, sizeof seed);
    memset(k, 0, sizeof *k);
    crypto_sign_seed_keypair(k->pub.pk, k->sk, seed);
    key_id_of(k->pub.pk, k->pub.id);
    trust_init(t);
    t->keys = malloc(sizeof *t->keys);
    assert_non_null(t->keys);
    t->keys[0] = k->pub;
    t->n = 1;
}

static Ferry__SignedRecord *sign_deploy(const struct key_secret *k)
{
    uint8_t digest[DIGEST_LEN] = {1, 2, 3};
    Ferry__DeployRecord rec = FERRY__DEPLOY_RECORD__INIT;
    rec.name = "hello";
    rec.version = "1.0.0";
    rec.selector = "env=prod";
    rec.issued_ms = 1700000000000ull;
    rec.manifest_digest.data = digest;
    rec.manifest_digest.len = sizeof digest;
    Ferry__SignedRecord *sr = NULL;
    assert_int_equal(record_sign(&rec, k, &sr), 0);
    return sr;
}

static void test_sign_verify(void **state)
{
    (void)state;
    struct key_secret k, other;
    struct trust t, t_other;
    seed_key(0x31, &k, &t);
    seed_key(0x32, &other, &t_other);
    Ferry__SignedRecord *sr = sign_deploy(&k);
    Ferry__DeployRecord *rec = NULL;
    char signer[KEY_ID_LEN + 1] = "";
    assert_int_equal(record_verify(sr, &t, &rec, signer), 0);
    assert_string_equal(rec->name, "hello");
    assert_string_equal(rec->selector, "env=prod");
    assert_string_equal(signer, k.pub.id);
    record_free(rec);
    assert_int_equal(record_verify(sr, &t_other, &rec, NULL), FERRY_E_UNTRUSTED);
    sr->record.data[sr->record.len - 1] ^= 1;
    assert_int_equal(record_verify(sr, &t, &rec, NULL), FERRY_E_SIGNATURE);
    signed_record_free(sr);
    trust_fini(&t);
    trust_fini(&t_other);
}

/* From a fuzz_manifest finding, reproduced by fuzz_desired's round-trip
 * check (seed desired/field-zero): a SignedRecord carrying an over-long field-0 tag
 * (80 00) verified, but the registry (handle_deploy) and the agent (its
 * local database) keep it re-encoded, and protobuf-c writes that tag back
 * as a plain 0 it then refuses: a deploy accepted, audited, and never
 * served. Refused when verified now. */
static void test_field_zero_refused(void **state)
{
    (void)state;
    struct key_secret k;
    struct trust t;
    seed_key(0x33, &k, &t);
    Ferry__SignedRecord *sr = sign_deploy(&k);
    size_t len = ferry__signed_record__get_packed_size(sr);
    uint8_t *buf = malloc(len + 3);
    assert_non_null(buf);
    ferry__signed_record__pack(sr, buf);
    memcpy(buf + len, "\x80\x00\x00", 3);
    signed_record_free(sr);

    Ferry__SignedRecord *bad = ferry__signed_record__unpack(NULL, len + 3, buf);
    assert_non_null(bad);
    Ferry__DeployRecord *rec = NULL;
    err_clear();
    assert_int_equal(record_verify(bad, &t, &rec, NULL), FERRY_E_PROTOCOL);
    assert_non_null(strstr(err_detail(), "field number 0"));
    signed_record_free(bad);

    /* The control: the same bytes without the tail verify. */
    Ferry__SignedRecord *good = ferry__signed_record__unpack(NULL, len, buf);
    assert_non_null(good);
    assert_int_equal(record_verify(good, &t, &rec, NULL), 0);
    record_free(rec);
    signed_record_free(good);
    free(buf);
    trust_fini(&t);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_verify),
        cmocka_unit_test(test_field_zero_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
