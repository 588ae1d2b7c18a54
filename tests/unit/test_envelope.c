/* Desired-state envelopes as a pure module: sign, then every refusal the
 * agent relies on (untrusted key, bad signature, other host, expiry,
 * rollback, same version with other content, mix-and-match). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "error.h"
#include "record.h"

#define NOW 1700000000000ull
#define TTL 60000ull

struct fixture {
    struct key_secret reg, op, other;
    Ferry__SignedRecord *srs[2];
    Ferry__DeployRecord *recs[2];
};

static void seed(uint8_t fill, struct key_secret *k)
{
    uint8_t s[crypto_sign_SEEDBYTES];
    memset(s, fill, sizeof s);
    memset(k, 0, sizeof *k);
    crypto_sign_seed_keypair(k->pub.pk, k->sk, s);
    key_id_of(k->pub.pk, k->pub.id);
}

static Ferry__SignedRecord *deploy(const struct key_secret *k, const char *name,
                                   const char *version, uint8_t d0)
{
    uint8_t digest[DIGEST_LEN] = {d0};
    Ferry__DeployRecord rec = FERRY__DEPLOY_RECORD__INIT;
    rec.name = (char *)name;
    rec.version = (char *)version;
    rec.selector = "env=prod";
    rec.issued_ms = NOW - 1000;
    rec.manifest_digest.data = digest;
    rec.manifest_digest.len = sizeof digest;
    Ferry__SignedRecord *sr = NULL;
    assert_int_equal(record_sign(&rec, k, &sr), 0);
    return sr;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    seed(0x41, &f->reg);
    seed(0x42, &f->op);
    seed(0x43, &f->other);
    f->srs[0] = deploy(&f->op, "api", "1.0", 1);
    f->srs[1] = deploy(&f->op, "iris", "2.0", 2);
    for (int i = 0; i < 2; i++)
        assert_int_equal(record_decode(f->srs[i]->record.data, f->srs[i]->record.len, &f->recs[i]), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 2; i++) {
        signed_record_free(f->srs[i]);
        record_free(f->recs[i]);
    }
    free(f);
    return 0;
}

static Ferry__Wire__SignedEnvelope *make(struct fixture *f, const struct key_secret *k,
                                         const char *host, uint64_t version)
{
    Ferry__Wire__SignedEnvelope *se = NULL;
    assert_int_equal(envelope_sign(host, version, NOW, NOW + TTL, f->srs, f->recs, 2, NULL, 0, k, &se), 0);
    return se;
}

static void test_accepts_and_reports(void **state)
{
    struct fixture *f = *state;
    Ferry__Wire__SignedEnvelope *se = make(f, &f->reg, "h1", 7);
    struct envelope_verdict v;
    struct envelope_held none = {0};
    assert_int_equal(envelope_verify(se, &f->reg.pub, "h1", f->srs, 2, NULL, 0, &none, NOW, &v), 0);
    assert_int_equal(v.refusal, ENVELOPE_OK);
    assert_int_equal(v.version, 7);
    assert_int_equal(v.expires_ms, NOW + TTL);
    assert_memory_equal(se->registry_key.data, f->reg.pub.pk, 32);
    /* The same envelope again (each poll answer carries it) is fine. */
    struct envelope_held held = {7, NOW + TTL, v.body};
    assert_int_equal(envelope_verify(se, &f->reg.pub, "h1", f->srs, 2, NULL, 0, &held, NOW + 5, &v), 0);
    envelope_free(se);
}

static void test_untrusted_and_bad_signature(void **state)
{
    struct fixture *f = *state;
    struct envelope_verdict v;
    Ferry__Wire__SignedEnvelope *se = make(f, &f->other, "h1", 1);
    assert_int_equal(envelope_verify(se, &f->reg.pub, "h1", f->srs, 2, NULL, 0, NULL, NOW, &v),
                     FERRY_E_UNTRUSTED);
    assert_int_equal(v.refusal, ENVELOPE_UNTRUSTED);
    assert_non_null(strstr(err_detail(), "not the trusted"));
    envelope_free(se);

    se = make(f, &f->reg, "h1", 1);
    se->body.data[se->body.len - 1] ^= 1;
    assert_int_equal(envelope_verify(se, &f->reg.pub, "h1", f->srs, 2, NULL, 0, NULL, NOW, &v),
                     FERRY_E_SIGNATURE);
    assert_int_equal(v.refusal, ENVELOPE_BAD_SIGNATURE);
    envelope_free(se);

    assert_true(envelope_verify(NULL, &f->reg.pub, "h1", f->srs, 2, NULL, 0, NULL, NOW, &v) < 0);
    assert_int_equal(v.refusal, ENVELOPE_MALFORMED);
    assert_non_null(strstr(err_detail(), "not in a signed envelope"));
}

static void test_other_host(void **state)
{
    struct fixture *f = *state;
    struct envelope_verdict v;
    Ferry__Wire__SignedEnvelope *se = make(f, &f->reg, "h2", 1);
    assert_true(envelope_verify(se, &f->reg.pub, "h1", f->srs, 2, NULL, 0, NULL, NOW, &v) < 0);
    assert_int_equal(v.refusal, ENVELOPE_MALFORMED);
    assert_non_null(strstr(err_detail(), "for host 'h2'"));
    envelope_free(se);
}

static void test_expired(void **state)
{
    struct fixture *f = *state;
    struct envelope_verdict v;
    Ferry__Wire__SignedEnvelope *se = make(f, &f->reg, "h1", 3);
    assert_int_equal(envelope_verify(se, &f->reg.pub, "h1", f->srs, 2, NULL, 0, NULL, NOW + TTL - 1, &v), 0);
    assert_true(envelope_verify(se, &f->reg.pub, "h1", f->srs, 2, NULL, 0, NULL, NOW + TTL, &v) < 0);
    assert_int_equal(v.refusal, ENVELOPE_EXPIRED_NOW);
    assert_non_null(strstr(err_detail(), "desired state expired: version 3 expired at "));
    envelope_free(se);
}

static void test_rollback(void **state)
{
    struct fixture *f = *state;
    struct envelope_verdict v;
    Ferry__Wire__SignedEnvelope *old = make(f, &f->reg, "h1", 4);
    struct envelope_held held = {5, NOW + TTL, {{0}}};
    assert_true(envelope_verify(old, &f->reg.pub, "h1", f->srs, 2, NULL, 0, &held, NOW, &v) < 0);
    assert_int_equal(v.refusal, ENVELOPE_ROLLBACK);
    assert_non_null(strstr(err_detail(), "version 4 refused: older than version 5"));
    envelope_free(old);
    /* Version 5 again, but not the body applied as 5. */
    Ferry__Wire__SignedEnvelope *same = make(f, &f->reg, "h1", 5);
    assert_true(envelope_verify(same, &f->reg.pub, "h1", f->srs, 2, NULL, 0, &held, NOW, &v) < 0);
    assert_int_equal(v.refusal, ENVELOPE_ROLLBACK);
    assert_non_null(strstr(err_detail(), "applied with other content"));
    envelope_free(same);
    /* Older and expired as well: refused as the rollback it is. */
    old = make(f, &f->reg, "h1", 4);
    assert_true(envelope_verify(old, &f->reg.pub, "h1", f->srs, 2, NULL, 0, &held, NOW + TTL, &v) < 0);
    assert_int_equal(v.refusal, ENVELOPE_ROLLBACK);
    envelope_free(old);
    /* A newer version passes. */
    Ferry__Wire__SignedEnvelope *next = make(f, &f->reg, "h1", 6);
    assert_int_equal(envelope_verify(next, &f->reg.pub, "h1", f->srs, 2, NULL, 0, &held, NOW, &v), 0);
    envelope_free(next);
}

static void test_mix_and_match(void **state)
{
    struct fixture *f = *state;
    struct envelope_verdict v;
    Ferry__Wire__SignedEnvelope *se = make(f, &f->reg, "h1", 1);
    /* Another validly signed record for iris (another version) in place of
     * the one the envelope names. */
    Ferry__SignedRecord *swapped[2] = {f->srs[0], deploy(&f->op, "iris", "1.0", 9)};
    assert_int_equal(envelope_verify(se, &f->reg.pub, "h1", swapped, 2, NULL, 0, NULL, NOW, &v),
                     FERRY_E_DIGEST);
    assert_int_equal(v.refusal, ENVELOPE_MISMATCH);
    assert_non_null(strstr(err_detail(), "the record for iris@2.0 is not the one it names"));
    signed_record_free(swapped[1]);
    /* Records left out, or in another order. */
    assert_true(envelope_verify(se, &f->reg.pub, "h1", f->srs, 1, NULL, 0, NULL, NOW, &v) < 0);
    assert_int_equal(v.refusal, ENVELOPE_MISMATCH);
    Ferry__SignedRecord *reordered[2] = {f->srs[1], f->srs[0]};
    assert_true(envelope_verify(se, &f->reg.pub, "h1", reordered, 2, NULL, 0, NULL, NOW, &v) < 0);
    assert_int_equal(v.refusal, ENVELOPE_MISMATCH);
    envelope_free(se);
}

static void test_pins_covered(void **state)
{
    struct fixture *f = *state;
    struct envelope_verdict v;
    Ferry__Wire__ChannelPin pin = FERRY__WIRE__CHANNEL_PIN__INIT;
    pin.name = "iris";
    pin.channel = "prod";
    pin.version = "2.0";
    Ferry__Wire__ChannelPin *pins[1] = {&pin};
    Ferry__Wire__SignedEnvelope *se = NULL;
    assert_int_equal(envelope_sign("h1", 1, NOW, NOW + TTL, f->srs, f->recs, 2, pins, 1, &f->reg,
                                   &se),
                     0);
    assert_int_equal(envelope_verify(se, &f->reg.pub, "h1", f->srs, 2, pins, 1, NULL, NOW, &v), 0);
    /* The pin moved on the way, or left out. */
    pin.version = "1.0";
    assert_true(envelope_verify(se, &f->reg.pub, "h1", f->srs, 2, pins, 1, NULL, NOW, &v) < 0);
    assert_int_equal(v.refusal, ENVELOPE_MISMATCH);
    assert_non_null(strstr(err_detail(), "the channel pins are not the ones it names"));
    assert_true(envelope_verify(se, &f->reg.pub, "h1", f->srs, 2, NULL, 0, NULL, NOW, &v) < 0);
    assert_int_equal(v.refusal, ENVELOPE_MISMATCH);
    envelope_free(se);
    /* A pin added to an envelope that covers none. */
    se = make(f, &f->reg, "h1", 2);
    assert_true(envelope_verify(se, &f->reg.pub, "h1", f->srs, 2, pins, 1, NULL, NOW, &v) < 0);
    assert_int_equal(v.refusal, ENVELOPE_MISMATCH);
    envelope_free(se);
}

static void test_content_digest(void **state)
{
    struct fixture *f = *state;
    struct digest a, b, c;
    envelope_content_digest(f->srs, 2, NULL, 0, &a);
    envelope_content_digest(f->srs, 2, NULL, 0, &b);
    envelope_content_digest(f->srs, 1, NULL, 0, &c);
    assert_true(digest_equal(&a, &b));
    assert_false(digest_equal(&a, &c));
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_and_reports),
        cmocka_unit_test(test_untrusted_and_bad_signature),
        cmocka_unit_test(test_other_host),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_rollback),
        cmocka_unit_test(test_mix_and_match),
        cmocka_unit_test(test_pins_covered),
        cmocka_unit_test(test_content_digest),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
