/* The governance policy file (lib/policy.c), as the registry reads it at
 * start and every agent parses the copy the registry serves. Input: the
 * YAML text. Key files "k0.pub" .. "k7.pub" resolve to fixed keys. */
#include "error.h"
#include "policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int pub(void *arg, const char *path, struct key_public *out)
{
    (void)arg;
    int i = -1;
    if (sscanf(path, "k%d.pub", &i) != 1 || i < 0 || i > 7)
        return err_set(FERRY_E_NOTFOUND, "%s: no such key", path);
    memset(out, 0, sizeof *out);
    memset(out->pk, i + 1, sizeof out->pk);
    key_id_of(out->pk, out->id);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct policy p;
    char *text = malloc(size ? size : 1);
    if (!text)
        abort();
    memcpy(text, data, size);
    if (policy_parse("fuzz/policy.yaml", text, size, pub, NULL, &p) == 0) {
        /* What parses has an admin, and every environment and rule names a
         * declared channel. */
        int admin = 0;
        for (size_t i = 0; i < p.n_keys; i++)
            admin |= (p.keys[i].roles & ROLE_ADMIN) != 0;
        if (!admin)
            abort();
        for (size_t i = 0; i < p.n_envs; i++)
            if (!policy_has_channel(&p, p.envs[i].channel))
                abort();
        for (size_t i = 0; i < p.n_rules; i++)
            if (!policy_has_channel(&p, p.rules[i].channel))
                abort();
    }
    free(text);
    return 0;
}
