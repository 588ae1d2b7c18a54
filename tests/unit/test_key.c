/* Ed25519 keys: files and modes, sign/verify, permission checks, trust lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fsutil.h"
#include "scratch.h"
#include "key.h"

/* ---- scratch directory per test ---- */

static int setup_tmp(void **state) { return scratch_setup(state, "test_key"); }

static int teardown_tmp(void **state) { return scratch_teardown(state); }

static void key_paths(const char *dir, const char *name, char *key, char *pub)
{
    snprintf(key, 4096, "%s/%s.key", dir, name);
    snprintf(pub, 4096, "%s/%s.pub", dir, name);
}

static void generate_ok(const char *dir, const char *name, struct key_public *out)
{
    int rc = key_generate(dir, name, out);
    if (rc != 0)
        fail_msg("key_generate %s: %d %s", name, rc, err_detail());
}

static int is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return s[n] == '\0';
}

static uint8_t *slurp(const char *path, size_t *len)
{
    uint8_t *buf = NULL;
    assert_int_equal(fs_read_file(path, 1 << 16, &buf, len), 0);
    return buf;
}

/* ---- tests ---- */

static void test_generate_files_and_modes(void **state)
{
    const char *dir = *state;
    char key[4096], pub[4096];
    key_paths(dir, "alice", key, pub);

    /* A restrictive umask must not change the public key's mode, and a
     * permissive one must not widen the secret key's. */
    mode_t old = umask(077);
    struct key_public kp;
    generate_ok(dir, "alice", &kp);
    umask(000);
    char key2[4096], pub2[4096];
    key_paths(dir, "bob", key2, pub2);
    generate_ok(dir, "bob", NULL);
    umask(old);

    const char *secrets[] = {key, key2}, *publics[] = {pub, pub2};
    for (int i = 0; i < 2; i++) {
        struct stat st;
        assert_int_equal(lstat(secrets[i], &st), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(lstat(publics[i], &st), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0644);
    }

    assert_string_equal(kp.name, "alice");
    assert_int_equal(strlen(kp.id), KEY_ID_LEN);
    assert_true(is_lower_hex(kp.id, KEY_ID_LEN));

    /* The public key file is one line of text. */
    size_t len;
    uint8_t *text = slurp(pub, &len);
    assert_true(len > 0);
    assert_int_equal(text[len - 1], '\n');
    assert_ptr_equal(memchr(text, '\n', len), text + len - 1);
    free(text);
}

static void test_key_id_stable(void **state)
{
    const char *dir = *state;
    char key[4096], pub[4096];
    key_paths(dir, "k", key, pub);
    struct key_public gen, loaded_pub;
    struct key_secret sec;
    generate_ok(dir, "k", &gen);
    assert_int_equal(key_load_public(pub, &loaded_pub), 0);
    assert_int_equal(key_load_secret(key, &sec), 0);

    assert_int_equal(strlen(gen.id), KEY_ID_LEN);
    assert_true(is_lower_hex(gen.id, KEY_ID_LEN));
    assert_string_equal(loaded_pub.id, gen.id);
    assert_string_equal(sec.pub.id, gen.id);
    assert_memory_equal(loaded_pub.pk, gen.pk, sizeof gen.pk);
    assert_memory_equal(sec.pub.pk, gen.pk, sizeof gen.pk);
    assert_string_equal(loaded_pub.name, "k");
    assert_string_equal(sec.pub.name, "k");

    /* The id is derived from the public key, and only from it. */
    char id[KEY_ID_LEN + 1];
    key_id_of(gen.pk, id);
    assert_string_equal(id, gen.id);
    uint8_t other[crypto_sign_PUBLICKEYBYTES];
    memcpy(other, gen.pk, sizeof other);
    other[0] ^= 1;
    key_id_of(other, id);
    assert_string_not_equal(id, gen.id);

    /* Loading again gives the same id. */
    struct key_public again;
    assert_int_equal(key_load_public(pub, &again), 0);
    assert_string_equal(again.id, gen.id);

    /* Two generated keys differ. */
    struct key_public second;
    generate_ok(dir, "k2", &second);
    assert_string_not_equal(second.id, gen.id);
    key_secret_wipe(&sec);
}

static void test_sign_verify(void **state)
{
    const char *dir = *state;
    char key[4096], pub[4096];
    key_paths(dir, "signer", key, pub);
    generate_ok(dir, "signer", NULL);
    generate_ok(dir, "other", NULL);
    struct key_secret sk;
    struct key_public pk, other;
    assert_int_equal(key_load_secret(key, &sk), 0);
    assert_int_equal(key_load_public(pub, &pk), 0);
    char opub[4096];
    snprintf(opub, sizeof opub, "%s/other.pub", dir);
    assert_int_equal(key_load_public(opub, &other), 0);

    uint8_t msg[300];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i * 7);
    uint8_t sig[crypto_sign_BYTES];
    key_sign(&sk, msg, sizeof msg, sig);
    assert_int_equal(key_verify(pk.pk, msg, sizeof msg, sig, sizeof sig), 0);

    /* A flipped message byte, anywhere. */
    const size_t at[] = {0, 150, sizeof msg - 1};
    for (size_t i = 0; i < 3; i++) {
        msg[at[i]] ^= 0x01;
        assert_int_equal(key_verify(pk.pk, msg, sizeof msg, sig, sizeof sig),
                         FERRY_E_SIGNATURE);
        msg[at[i]] ^= 0x01;
    }
    /* A shorter message. */
    assert_int_equal(key_verify(pk.pk, msg, sizeof msg - 1, sig, sizeof sig), FERRY_E_SIGNATURE);
    /* A flipped signature byte, in R and in S. */
    const size_t sat[] = {0, 40, crypto_sign_BYTES - 1};
    for (size_t i = 0; i < 3; i++) {
        sig[sat[i]] ^= 0x80;
        assert_int_equal(key_verify(pk.pk, msg, sizeof msg, sig, sizeof sig),
                         FERRY_E_SIGNATURE);
        sig[sat[i]] ^= 0x80;
    }
    /* Wrong signature length, wrong key. */
    assert_int_equal(key_verify(pk.pk, msg, sizeof msg, sig, sizeof sig - 1), FERRY_E_SIGNATURE);
    assert_int_equal(key_verify(other.pk, msg, sizeof msg, sig, sizeof sig), FERRY_E_SIGNATURE);
    /* Unchanged again: still good (the flips were undone). */
    assert_int_equal(key_verify(pk.pk, msg, sizeof msg, sig, sizeof sig), 0);
    key_secret_wipe(&sk);
}

static void test_secret_permissions(void **state)
{
    const char *dir = *state;
    char key[4096], pub[4096];
    key_paths(dir, "perm", key, pub);
    generate_ok(dir, "perm", NULL);

    const mode_t refused[] = {0640, 0604, 0644, 0660, 0601};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        assert_int_equal(chmod(key, refused[i]), 0);
        struct key_secret k;
        memset(&k, 0x33, sizeof k);
        struct key_secret untouched = k;
        err_clear();
        int rc = key_load_secret(key, &k);
        if (rc != FERRY_E_KEYPERM)
            fail_msg("mode %03o: got %d, want FERRY_E_KEYPERM", (unsigned)refused[i], rc);
        assert_non_null(strstr(err_detail(), key));
        assert_null(strchr(err_detail(), '\n'));
        assert_memory_equal(&k, &untouched, sizeof k);
    }
    /* 0400 is fine (owner only). */
    assert_int_equal(chmod(key, 0400), 0);
    struct key_secret k;
    assert_int_equal(key_load_secret(key, &k), 0);
    key_secret_wipe(&k);
    assert_int_equal(chmod(key, 0600), 0);
    assert_int_equal(key_load_secret(key, &k), 0);
    key_secret_wipe(&k);
}

static void test_wrong_key_kind(void **state)
{
    const char *dir = *state;
    char key[4096], pub[4096];
    key_paths(dir, "kind", key, pub);
    generate_ok(dir, "kind", NULL);

    /* A public key file given as a secret key (made owner-only so that the
     * permission check is not what refuses it). */
    assert_int_equal(chmod(pub, 0600), 0);
    struct key_secret sk;
    err_clear();
    assert_int_equal(key_load_secret(pub, &sk), FERRY_E_KEYFORMAT);
    assert_non_null(strstr(err_detail(), pub));

    /* And the other way round. */
    struct key_public pk;
    err_clear();
    assert_int_equal(key_load_public(key, &pk), FERRY_E_KEYFORMAT);
    assert_non_null(strstr(err_detail(), key));

    /* Garbage and truncated keys. */
    char bad[4096];
    snprintf(bad, sizeof bad, "%s/bad.pub", dir);
    assert_int_equal(fs_write_file_atomic(bad, "ferry-ed25519 AAAA x\n", 21, 0644), 0);
    assert_int_equal(key_load_public(bad, &pk), FERRY_E_KEYFORMAT);
    assert_int_equal(fs_write_file_atomic(bad, "", 0, 0644), 0);
    assert_int_equal(key_load_public(bad, &pk), FERRY_E_KEYFORMAT);

    /* A directory is not a key. */
    assert_int_equal(key_load_public(dir, &pk), FERRY_E_KEYFORMAT);
    /* A missing file. */
    snprintf(bad, sizeof bad, "%s/none.key", dir);
    err_clear();
    assert_int_equal(key_load_secret(bad, &sk), -ENOENT);
    assert_non_null(strstr(err_detail(), bad));
}

static void test_generate_refuses_overwrite(void **state)
{
    const char *dir = *state;
    char key[4096], pub[4096];
    key_paths(dir, "once", key, pub);
    struct key_public first;
    generate_ok(dir, "once", &first);
    size_t klen, plen;
    uint8_t *ktext = slurp(key, &klen), *ptext = slurp(pub, &plen);

    err_clear();
    assert_int_equal(key_generate(dir, "once", NULL), -EEXIST);
    assert_non_null(strstr(err_detail(), key));

    /* Both files are unchanged. */
    size_t len;
    uint8_t *now = slurp(key, &len);
    assert_int_equal(len, klen);
    assert_memory_equal(now, ktext, len);
    free(now);
    now = slurp(pub, &len);
    assert_int_equal(len, plen);
    assert_memory_equal(now, ptext, len);
    free(now);
    free(ktext);
    free(ptext);

    /* An existing .pub alone also blocks it, and no .key is left behind. */
    char lone_key[4096], lone_pub[4096];
    key_paths(dir, "lone", lone_key, lone_pub);
    assert_int_equal(fs_write_file_atomic(lone_pub, "x\n", 2, 0644), 0);
    assert_int_equal(key_generate(dir, "lone", NULL), -EEXIST);
    struct stat st;
    assert_int_equal(lstat(lone_key, &st), -1);
    assert_int_equal(errno, ENOENT);
}

static void test_generate_refuses_bad_names(void **state)
{
    const char *dir = *state;
    const char *bad[] = {"", "../evil", "a/b", ".hidden", "sp ace", "nl\n",
                         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err_clear();
        if (key_generate(dir, bad[i], NULL) != FERRY_E_INVALID)
            fail_msg("key name '%s' accepted", bad[i]);
    }
    /* Nothing was written anywhere near. */
    char path[4096];
    snprintf(path, sizeof path, "%s/../evil.key", dir);
    struct stat st;
    assert_int_equal(lstat(path, &st), -1);
    /* 64 characters is the limit, and is fine. */
    generate_ok(dir, "x123456789x123456789x123456789x123456789x123456789x123456789_-.4", NULL);
}

static void test_trust_list(void **state)
{
    const char *dir = *state;
    char ka[4096], pa[4096], kb[4096], pb[4096], kc[4096], pc[4096];
    key_paths(dir, "a", ka, pa);
    key_paths(dir, "b", kb, pb);
    key_paths(dir, "c", kc, pc);
    struct key_public a, b, c;
    generate_ok(dir, "a", &a);
    generate_ok(dir, "b", &b);
    generate_ok(dir, "c", &c);

    struct trust t;
    trust_init(&t);
    assert_null(trust_find(&t, a.id));

    char list[3 * 4096 + 16];
    /* Empty elements are skipped; a repeated key is added once. */
    snprintf(list, sizeof list, ":%s::%s:%s:", pa, pb, pa);
    assert_int_equal(trust_add_list(&t, list), 0);
    assert_int_equal(t.n, 2);
    const struct key_public *fa = trust_find(&t, a.id), *fb = trust_find(&t, b.id);
    assert_non_null(fa);
    assert_non_null(fb);
    assert_memory_equal(fa->pk, a.pk, sizeof a.pk);
    assert_memory_equal(fb->pk, b.pk, sizeof b.pk);
    assert_string_equal(fa->name, "a");
    assert_null(trust_find(&t, c.id));
    assert_null(trust_find(&t, ""));
    assert_null(trust_find(&t, "0000000000000000"));

    /* A missing file in the list is an error naming it. */
    char missing[4096];
    snprintf(missing, sizeof missing, "%s/missing.pub", dir);
    snprintf(list, sizeof list, "%s:%s", pc, missing);
    err_clear();
    assert_int_equal(trust_add_list(&t, list), -ENOENT);
    assert_non_null(strstr(err_detail(), missing));

    /* A secret key is not a trust entry. */
    struct trust t2;
    trust_init(&t2);
    assert_int_equal(trust_add_list(&t2, ka), FERRY_E_KEYFORMAT);
    assert_int_equal(t2.n, 0);
    trust_fini(&t2);

    trust_fini(&t);
    assert_int_equal(t.n, 0);
    assert_null(t.keys);
    assert_null(trust_find(&t, a.id));
}

/* A FIFO or a device named as a key or trust file is refused at once, with
 * the file and the reason; nothing waits for a writer that never comes. If
 * the open blocked, this test would hang (ctest's timeout fails it). */
static void test_fifo_and_device_refused(void **state)
{
    const char *dir = *state;
    char fifo[4096];
    snprintf(fifo, sizeof fifo, "%s/pipe.key", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    struct key_secret sk;
    struct key_public pk;
    err_clear();
    assert_int_equal(key_load_secret(fifo, &sk), FERRY_E_KEYFORMAT);
    assert_non_null(strstr(err_detail(), fifo));
    assert_non_null(strstr(err_detail(), "not a regular file (a FIFO)"));
    err_clear();
    assert_int_equal(key_load_public(fifo, &pk), FERRY_E_KEYFORMAT);
    assert_non_null(strstr(err_detail(), "a FIFO"));

    struct trust t;
    trust_init(&t);
    err_clear();
    assert_int_equal(trust_add_file(&t, fifo), FERRY_E_KEYFORMAT);
    assert_non_null(strstr(err_detail(), fifo));
    err_clear();
    assert_int_equal(trust_add_list(&t, fifo), FERRY_E_KEYFORMAT);
    assert_int_equal(t.n, 0);
    trust_fini(&t);

    err_clear();
    assert_int_equal(key_load_public("/dev/null", &pk), FERRY_E_KEYFORMAT);
    assert_non_null(strstr(err_detail(), "/dev/null: not a regular file (a character device)"));
    err_clear();
    assert_int_equal(key_load_secret("/dev/zero", &sk), FERRY_E_KEYFORMAT);
    assert_non_null(strstr(err_detail(), "a character device"));

    /* The same helper serves every small file a user names. */
    uint8_t *buf = NULL;
    size_t len = 0;
    err_clear();
    assert_int_equal(fs_read_file(fifo, 4096, &buf, &len), FERRY_E_INVALID);
    assert_non_null(strstr(err_detail(), "a FIFO"));
}

/* An oversized file is not read into the key buffer in pieces. */
static void test_oversized_key_refused(void **state)
{
    const char *dir = *state;
    char big[4096];
    snprintf(big, sizeof big, "%s/big.pub", dir);
    char text[4000];
    memset(text, 'A', sizeof text);
    assert_int_equal(fs_write_file_atomic(big, text, sizeof text, 0644), 0);
    struct key_public pk;
    err_clear();
    assert_int_equal(key_load_public(big, &pk), FERRY_E_KEYFORMAT);
    assert_non_null(strstr(err_detail(), big));
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_generate_files_and_modes, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_key_id_stable, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_sign_verify, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_secret_permissions, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_wrong_key_kind, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_generate_refuses_overwrite, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_generate_refuses_bad_names, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_trust_list, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_fifo_and_device_refused, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_oversized_key_refused, setup_tmp, teardown_tmp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
