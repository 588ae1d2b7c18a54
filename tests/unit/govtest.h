/* Shared by the governance unit tests (test_policy.c, test_govrules.c):
 * keys made in memory, and a policy parsed with them. */
#ifndef FERRY_TESTS_GOVTEST_H
#define FERRY_TESTS_GOVTEST_H

#include "key.h"
#include "policy.h"

#include <string.h>

#define GT_KEYS 8
/* Key i is named by the path "k<i>.pub" in a policy text. */
static struct key_secret gt_keys[GT_KEYS];

static void gt_make_keys(void)
{
    for (int i = 0; i < GT_KEYS; i++) {
        memset(&gt_keys[i], 0, sizeof gt_keys[i]);
        crypto_sign_keypair(gt_keys[i].pub.pk, gt_keys[i].sk);
        key_id_of(gt_keys[i].pub.pk, gt_keys[i].pub.id);
    }
}

static int gt_pub(void *arg, const char *path, struct key_public *out)
{
    (void)arg;
    int i = -1;
    if (sscanf(path, "k%d.pub", &i) == 1 && i >= 0 && i < GT_KEYS) {
        *out = gt_keys[i].pub;
        return 0;
    }
    return err_set(FERRY_E_NOTFOUND, "%s: no such key", path);
}

static int gt_parse(const char *text, struct policy *p)
{
    return policy_parse("policy.yaml", text, strlen(text), gt_pub, NULL, p);
}

#endif
