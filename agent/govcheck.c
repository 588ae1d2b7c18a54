/* The agent's own governance check (govcheck.h). */
#include "govcheck.h"
#include "error.h"
#include "fsutil.h"
#include "govrules.h"
#include "manifest.h"
#include "selector.h"
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CARD_MAX (1u << 20)

/* Verify one GovReply (from the registry or the cache) into *p. */
static int verify_reply(const Ferry__Wire__GovReply *g, const struct trust *admins,
                        struct policy *p)
{
    if (!g->has_policy)
        return err_set(FERRY_E_UNTRUSTED, "the registry serves no policy, and this agent "
                                          "(--trust-admin) runs nothing without one");
    struct policy_served_key keys[POLICY_KEYS_MAX];
    size_t nk = g->n_keys < POLICY_KEYS_MAX ? g->n_keys : POLICY_KEYS_MAX;
    for (size_t i = 0; i < nk; i++)
        keys[i] = (struct policy_served_key){g->keys[i]->path ? g->keys[i]->path : "",
                                             g->keys[i]->text ? g->keys[i]->text : ""};
    int rc = policy_parse_served((const char *)g->policy.data, g->policy.len, keys, nk, p);
    if (rc == 0)
        rc = policy_verify(p, g->signature, admins, NULL);
    for (size_t i = 0; rc == 0 && i < g->n_revoked; i++) {
        const Ferry__Wire__SignedGov *sg = g->revoked[i];
        char id[KEY_ID_LEN + 1];
        /* A revocation this agent cannot verify is not applied. */
        if (policy_revocation_verify(p, admins, sg->body.data, sg->body.len, sg->key_id,
                                     sg->signature.data, sg->signature.len, id) == 0)
            policy_revoke(p, id);
    }
    return rc;
}

static int fetch(struct client *c, Ferry__Wire__Response **out)
{
    Ferry__Wire__Request req;
    Ferry__Wire__GovQuery q;
    ferry__wire__request__init(&req);
    ferry__wire__gov_query__init(&q);
    q.what = (char *)"policy";
    req.body_case = FERRY__WIRE__REQUEST__BODY_GOV_QUERY;
    req.gov_query = &q;
    int rc = client_call(c, &req, out);
    if (rc == 0 && (*out)->body_case != FERRY__WIRE__RESPONSE__BODY_GOV) {
        client_response_free(*out);
        *out = NULL;
        rc = err_set(FERRY_E_PROTOCOL, "registry sent an unexpected reply");
    }
    return rc;
}

/* Write the verified reply beside the agent's state, atomically. */
static void cache_put(const char *path, const Ferry__Wire__GovReply *g)
{
    size_t len = ferry__wire__gov_reply__get_packed_size(g);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return;
    ferry__wire__gov_reply__pack(g, buf);
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(buf, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (f)
        ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0)
        unlink(tmp);
    free(buf);
}

int govcheck_policy(struct client *c, const struct trust *admins, const char *cache_path,
                    struct policy **out)
{
    struct policy *p = malloc(sizeof *p);
    if (!p)
        return -ENOMEM;
    Ferry__Wire__Response *r = NULL;
    int rc = c ? fetch(c, &r) : err_set(FERRY_E_TRANSPORT, "registry not reachable");
    if (rc == 0) {
        if ((rc = verify_reply(r->gov, admins, p)) == 0 && cache_path)
            cache_put(cache_path, r->gov);
        client_response_free(r);
    } else if (rc == FERRY_E_TRANSPORT || rc == -ETIMEDOUT || rc == FERRY_E_PROTOCOL) {
        /* Offline: the last policy this agent verified, verified again. */
        uint8_t *buf = NULL;
        size_t len = 0;
        char why[300];
        snprintf(why, sizeof why, "%s", err_message(rc));
        rc = cache_path ? fs_read_file(cache_path, 4u << 20, &buf, &len) : FERRY_E_NOTFOUND;
        Ferry__Wire__GovReply *g = rc == 0 ? ferry__wire__gov_reply__unpack(NULL, len, buf) : NULL;
        if (g)
            rc = verify_reply(g, admins, p);
        else
            rc = err_set(FERRY_E_UNTRUSTED, "cannot fetch the policy (%s) and none is held", why);
        if (g)
            ferry__wire__gov_reply__free_unpacked(g, NULL);
        free(buf);
    }
    if (rc < 0) {
        char why[800];
        snprintf(why, sizeof why, "%s", err_detail());
        free(p);
        return err_set(rc, "policy not verified: %s", why);
    }
    *out = p;
    return 0;
}

/* The publisher's own signature must be by a key the policy lets publish
 * this kind and has not revoked: a revoked key's publishes stop here too,
 * on every host, not only at the registry. Writes the reason into why. */
static int publisher_ok(const struct policy *p, const Ferry__Spec *spec,
                        const Ferry__SignatureList *sl, const uint8_t *mbytes, size_t mlen,
                        char *why, size_t cap)
{
    snprintf(why, cap, "no publisher signature by a key of the policy");
    for (size_t i = 0; sl && i < sl->n_signatures; i++) {
        const Ferry__Signature *s = sl->signatures[i];
        if (s->role && s->role[0])
            continue;
        const struct policy_key *k = policy_key_find(p, s->key_id);
        if (!k || key_verify(k->pub.pk, mbytes, mlen, s->signature.data, s->signature.len) != 0)
            continue;
        if (policy_allows(p, k->pub.id, ROLE_PUBLISHER, spec->kind, "publish") == 0)
            return 1;
        snprintf(why, cap, "%s", err_detail());
    }
    return 0;
}

int govcheck_artifact(const struct policy *p, const char *labels, const uint8_t *mbytes,
                      size_t mlen, const uint8_t *sigs, size_t slen, const char *dir)
{
    const struct policy_env *env = NULL;
    struct label_set host, sel;
    if (labels_parse(labels ? labels : "", &host) < 0)
        host.n = 0;
    for (size_t i = 0; !env && i < p->n_envs; i++)
        if (labels_parse(p->envs[i].selector, &sel) == 0 && selector_matches(&sel, &host))
            env = &p->envs[i];
    Ferry__Manifest *m = NULL;
    Ferry__SignatureList *sl = NULL;
    uint8_t *card = NULL;
    int rc = manifest_decode(mbytes, mlen, &m);
    if (rc == 0)
        rc = signatures_decode(sigs, slen, &sl);
    if (rc < 0) {
        manifest_free(m);
        return rc;
    }
    struct digest d;
    digest_of(mbytes, mlen, &d);
    struct gov_subject s = {.spec = m->spec, .digest = &d, .sigs = sl, .card = GOV_CARD_UNKNOWN};
    if (dir) {
        const char *cp = m->spec->model ? m->spec->model->card : NULL;
        s.card = GOV_CARD_ABSENT;
        if (cp && cp[0]) {
            char path[4400];
            size_t len = 0;
            snprintf(path, sizeof path, "%s/%s", dir, cp);
            if (fs_read_file(path, CARD_MAX, &card, &len) == 0) {
                s.card = GOV_CARD_TEXT;
                s.card_text = (const char *)card;
                s.card_len = len;
            }
        }
    }
    struct gov_result res = {.allowed = 1};
    char pubwhy[400];
    /* In no environment no channel's rules apply; the publisher check does. */
    if (env)
        gov_evaluate(p, env->channel, &s, &res);
    if (!publisher_ok(p, m->spec, sl, mbytes, mlen, pubwhy, sizeof pubwhy)) {
        rc = err_set(FERRY_E_UNTRUSTED, "%s@%s refused by the policy: %s", m->spec->name,
                     m->spec->version, pubwhy);
    } else if (!res.allowed) {
        char why[1200];
        gov_result_join(&res, why, sizeof why);
        rc = err_set(FERRY_E_UNTRUSTED, "%s@%s refused by the policy of environment %s "
                     "(channel %s): %s", m->spec->name, m->spec->version, env->name,
                     env->channel, why);
    }
    free(card);
    signatures_free(sl);
    manifest_free(m);
    return rc;
}
