/* Governance in the registry (gov.h). */
#include "gov.h"
#include "rlog.h"
#include "audit.h"
#include "clock.h"
#include "dispatch.h"
#include "error.h"
#include "fsutil.h"
#include "manifest.h"
#include "registry_int.h"
#include "spec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CARD_MAX (1u << 20)

struct regpolicy {
    pthread_rwlock_t lock;
    struct policy pol;              /* revocations applied */
    uint8_t *text;
    size_t len;
    char sig[300];
    char key_text[POLICY_KEYS_MAX][160]; /* each key file's line, as served */
    struct trust trust;             /* every key the policy names */
    pthread_mutex_t approve_lock;   /* one read-modify-write of a signature list at a time */
};

/* ---- start ------------------------------------------------------------------ */

static int revocation_check(const struct policy *p, const struct trust *anchors,
                            const Ferry__Wire__SignedGov *sg, char key_id[KEY_ID_LEN + 1])
{
    return policy_revocation_verify(p, anchors && anchors->n ? anchors : NULL, sg->body.data,
                                    sg->body.len, sg->key_id, sg->signature.data,
                                    sg->signature.len, key_id);
}

static int apply_stored_revocations(struct registry *r, struct regpolicy *g,
                                    const struct trust *anchors)
{
    struct db_revocation *v = NULL;
    size_t n = 0;
    int rc = db_revoke_list(&r->db, &v, &n);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        Ferry__Wire__SignedGov *sg = ferry__wire__signed_gov__unpack(NULL, v[i].len, v[i].stmt);
        char id[KEY_ID_LEN + 1];
        if (sg && revocation_check(&g->pol, anchors, sg, id) == 0)
            policy_revoke(&g->pol, id);
        if (sg)
            ferry__wire__signed_gov__free_unpacked(sg, NULL);
    }
    db_revoke_list_free(v, n);
    return 0;
}

/* The file, its signature and its key files, into *out; nothing else is
 * touched. signer receives the admin key id whose signature counts. */
static int load(const char *path, const struct trust *anchors, struct regpolicy **out,
                char signer[KEY_ID_LEN + 1])
{
    struct regpolicy *g = calloc(1, sizeof *g);
    if (!g)
        return -ENOMEM;
    int rc = policy_load_file(path, &g->pol, &g->text, &g->len);
    char sigpath[4200];
    snprintf(sigpath, sizeof sigpath, "%s.sig", path);
    uint8_t *sig = NULL;
    size_t slen = 0;
    if (rc == 0 && (rc = fs_read_file(sigpath, sizeof g->sig - 1, &sig, &slen)) < 0) {
        char why[600];
        snprintf(why, sizeof why, "%s", err_message(rc));
        rc = err_set(FERRY_E_SIGNATURE, "policy %s is not signed (%s); sign it with 'ferry "
                                        "policy sign %s --key admin.key'", path, why, path);
    }
    if (rc == 0) {
        memcpy(g->sig, sig, slen);
        g->sig[slen] = '\0';
        rc = policy_verify(&g->pol, g->sig, anchors && anchors->n ? anchors : NULL, signer);
        if (rc < 0) {
            char why[600];
            snprintf(why, sizeof why, "%s", err_detail());
            rc = err_set(rc, "policy %s refused: %s", path, why);
        }
    }
    free(sig);
    /* The key files as agents will get them: one line each. */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    for (size_t i = 0; rc == 0 && i < g->pol.n_keys; i++) {
        char full[4500];
        const char *kp = g->pol.keys[i].path;
        snprintf(full, sizeof full, "%s%s%s", kp[0] == '/' ? "" : dir, kp[0] == '/' ? "" : "/", kp);
        uint8_t *t = NULL;
        size_t tl = 0;
        if ((rc = fs_read_file(full, sizeof g->key_text[i] - 1, &t, &tl)) == 0) {
            memcpy(g->key_text[i], t, tl);
            g->key_text[i][tl] = '\0';
            char *nl = strchr(g->key_text[i], '\n');
            if (nl)
                *nl = '\0';
        }
        free(t);
    }
    if (rc < 0) {
        gov_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

int gov_check(const char *path, const struct trust *anchors)
{
    struct regpolicy *g = NULL;
    char signer[KEY_ID_LEN + 1] = "";
    int rc = load(path, anchors, &g, signer);
    gov_free(g);
    return rc;
}

int gov_start(struct registry *r, const char *path, const struct trust *anchors)
{
    struct regpolicy *g = NULL;
    char signer[KEY_ID_LEN + 1] = "";
    int rc = load(path, anchors, &g, signer);
    if (rc < 0)
        return rc;
    if ((rc = apply_stored_revocations(r, g, anchors)) == 0)
        rc = policy_trust(&g->pol, &g->trust);
    if (rc < 0) {
        gov_free(g);
        return rc;
    }
    pthread_rwlock_init(&g->lock, NULL);
    pthread_mutex_init(&g->approve_lock, NULL);
    r->gov = g;
    r->trust = &g->trust;
    char hex[DIGEST_HEX_LEN + 1];
    digest_hex(&g->pol.digest, hex);
    registry_log("policy %s (digest %.16s): %zu keys, %zu channels, %zu environments, %zu rules", path,
          hex, g->pol.n_keys, g->pol.n_channels, g->pol.n_envs, g->pol.n_rules);
    if (!anchors || !anchors->n)
        registry_log("policy %s: signed by its own admin key %s; no --trust-admin anchors it (give "
              "--trust-admin ADMIN.pub so an edited policy with another admin is refused)",
              path, signer);
    /* The entry names the admin key whose signature made the policy count.
     * A restart with the same policy is no change: only a policy whose
     * digest differs from the last one logged gets an entry. */
    struct audit_entry last;
    if (db_audit_last(&r->db, "policy", &last) != 0 || strcmp(last.detail, hex) != 0)
        audit_append(&r->db, signer, AUDIT_ROLE_ADMIN, "policy", hex);
    return 0;
}

void gov_free(struct regpolicy *g)
{
    if (!g)
        return;
    free(g->text);
    trust_fini(&g->trust);
    free(g);
}

/* ---- checks ----------------------------------------------------------------- */

int gov_operators_now(struct registry *r, struct trust *out)
{
    struct regpolicy *g = r->gov;
    trust_init(out);
    size_t cap = g ? g->pol.n_keys : r->trust ? r->trust->n : 0;
    if (!(out->keys = calloc(cap ? cap : 1, sizeof *out->keys)))
        return -ENOMEM;
    if (!g) {
        for (size_t i = 0; i < cap; i++)
            out->keys[out->n++] = r->trust->keys[i];
        return 0;
    }
    /* Read under the lock handle_revoke writes under: what was revoked a
     * moment ago is not in the copy. */
    pthread_rwlock_rdlock(&g->lock);
    for (size_t i = 0; i < g->pol.n_keys; i++)
        if ((g->pol.keys[i].roles & ROLE_OPERATOR) && !g->pol.keys[i].revoked)
            out->keys[out->n++] = g->pol.keys[i].pub;
    pthread_rwlock_unlock(&g->lock);
    return 0;
}

int gov_operator_gate(struct registry *r, const char *signer, const char *what)
{
    struct regpolicy *g = r->gov;
    if (!g || !signer)
        return 0;
    pthread_rwlock_rdlock(&g->lock);
    int rc = policy_key_find(&g->pol, signer)
                 ? policy_allows(&g->pol, signer, ROLE_OPERATOR, NULL, what)
                 : 0;
    pthread_rwlock_unlock(&g->lock);
    return rc;
}

int gov_allows(struct registry *r, const char *key_id, unsigned role, const char *kind,
               const char *what)
{
    struct regpolicy *g = r->gov;
    if (!g)
        return 0;
    pthread_rwlock_rdlock(&g->lock);
    int rc = policy_allows(&g->pol, key_id, role, kind, what);
    pthread_rwlock_unlock(&g->lock);
    return rc;
}

/* The card's text from the blob store, when the manifest names one. */
static void card_of(struct registry *r, const Ferry__Manifest *m, struct gov_subject *s,
                    uint8_t **buf)
{
    s->card = GOV_CARD_ABSENT;
    const char *card = m->spec->model ? m->spec->model->card : NULL;
    for (size_t i = 0; card && card[0] && i < m->n_files; i++) {
        if (strcmp(m->files[i]->path, card) != 0)
            continue;
        struct digest d;
        size_t len = 0;
        if (digest_from_bytes(m->files[i]->digest.data, m->files[i]->digest.len, &d) == 0 &&
            store_read_all(&r->store, &d, CARD_MAX, buf, &len) == 0) {
            s->card = GOV_CARD_TEXT;
            s->card_text = (const char *)*buf;
            s->card_len = len;
        }
    }
}

/* Evaluate name@version against channel's rules. *digest receives its
 * manifest digest. */
static int evaluate(struct registry *r, const char *name, const char *version,
                    const char *channel, struct gov_result *res, struct digest *digest)
{
    uint8_t *sbytes = NULL, *mbytes = NULL, *card = NULL;
    size_t slen = 0, mlen = 0;
    Ferry__SignatureList *sl = NULL;
    Ferry__Manifest *m = NULL;
    int rc = db_get_version(&r->db, name, version, digest, &sbytes, &slen);
    if (rc == 0)
        rc = signatures_decode(sbytes, slen, &sl);
    if (rc == 0)
        rc = store_read_all(&r->store, digest, MANIFEST_MAX_BYTES, &mbytes, &mlen);
    if (rc == 0)
        rc = manifest_decode(mbytes, mlen, &m);
    if (rc == 0) {
        struct gov_subject s = {.spec = m->spec, .digest = digest, .sigs = sl};
        card_of(r, m, &s, &card);
        if (r->gov) {
            pthread_rwlock_rdlock(&r->gov->lock);
            gov_evaluate(&r->gov->pol, channel, &s, res);
            pthread_rwlock_unlock(&r->gov->lock);
        } else {
            memset(res, 0, sizeof *res);
            res->allowed = 1;
        }
    }
    free(card);
    manifest_free(m);
    free(mbytes);
    signatures_free(sl);
    free(sbytes);
    return rc;
}

/* 1 when some host could match both selectors (no key with two values). */
static int compatible(const char *a, const char *b)
{
    struct label_set sa, sb;
    if (labels_parse(a, &sa) < 0 || labels_parse(b, &sb) < 0)
        return 1;
    for (size_t i = 0; i < sa.n; i++) {
        const char *v = labels_get(&sb, sa.v[i].key);
        if (v && strcmp(v, sa.v[i].value) != 0)
            return 0;
    }
    return 1;
}

static int channel_get(struct registry *r, const char *name, const char *channel,
                       struct db_channel *out)
{
    struct db_channel *v = NULL;
    size_t n = 0;
    int rc = db_channel_list(&r->db, name, &v, &n);
    if (rc < 0)
        return rc;
    rc = FERRY_E_NOTFOUND;
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].channel, channel) == 0) {
            *out = v[i];
            rc = 0;
        }
    free(v);
    return rc;
}

int gov_check_deploy(struct registry *r, const Ferry__DeployRecord *rec)
{
    struct regpolicy *g = r->gov;
    if (rec->channel && rec->channel[0]) {
        if (g && !policy_has_channel(&g->pol, rec->channel))
            return err_set(FERRY_E_INVALID, "deploy %s --channel %s: the policy has no channel %s",
                           rec->name, rec->channel, rec->channel);
        struct db_channel c;
        int rc = channel_get(r, rec->name, rec->channel, &c);
        if (rc == FERRY_E_NOTFOUND)
            return err_set(FERRY_E_NOTFOUND, "deploy %s --channel %s: channel %s of %s points "
                           "at no version; promote one first", rec->name, rec->channel,
                           rec->channel, rec->name);
        if (rc < 0)
            return rc;
        if (strcmp(c.version, rec->version) != 0)
            return err_set(FERRY_E_INVALID, "deploy %s --channel %s: the record names %s but "
                           "the channel points at %s", rec->name, rec->channel, rec->version,
                           c.version);
        return 0;
    }
    if (!g || rec->undeploy)
        return 0;
    /* A plain deploy: every environment whose hosts it may reach. */
    for (size_t i = 0; i < g->pol.n_envs; i++) {
        const struct policy_env *e = &g->pol.envs[i];
        if (!compatible(e->selector, rec->selector))
            continue;
        struct gov_result res;
        struct digest d;
        int rc = evaluate(r, rec->name, rec->version, e->channel, &res, &d);
        if (rc < 0)
            return rc;
        if (!res.allowed) {
            char why[1000];
            gov_result_join(&res, why, sizeof why);
            return err_set(FERRY_E_UNTRUSTED, "deploy %s@%s to %s refused: %s (environment %s "
                           "follows the rules of channel %s)", rec->name, rec->version,
                           rec->selector, why, e->name, e->channel);
        }
    }
    return 0;
}

/* ---- signed changes ------------------------------------------------------- */

static const char *role_of_sig(const char *role, unsigned *bit)
{
    if (role && strcmp(role, "privacy") == 0) {
        *bit = ROLE_PRIVACY;
        return AUDIT_ROLE_PRIVACY;
    }
    *bit = ROLE_APPROVER;
    return AUDIT_ROLE_APPROVER;
}

static int handle_approve(struct registry *r, const Ferry__Wire__Gov *g, struct gov_scratch *s)
{
    const Ferry__Signature *a = g->approval;
    if (!g->name || !spec_name_ok(g->name) || !g->version || !spec_version_ok(g->version))
        return err_set(FERRY_E_INVALID, "approve: invalid name or version");
    if (!a->role || (strcmp(a->role, "approver") != 0 && strcmp(a->role, "privacy") != 0))
        return err_set(FERRY_E_INVALID, "approve: role must be approver or privacy");
    if (!a->key_id || !trust_find(r->trust, a->key_id))
        return err_set(FERRY_E_UNTRUSTED, "approve %s@%s refused: key %s is not trusted",
                       g->name, g->version, a->key_id ? a->key_id : "?");
    unsigned bit;
    const char *role = role_of_sig(a->role, &bit);
    char what[200];
    snprintf(what, sizeof what, "approve %s@%s as %s", g->name, g->version, a->role);
    int rc = gov_allows(r, a->key_id, bit, NULL, what);
    if (rc < 0)
        return rc;
    pthread_mutex_t *lk = r->gov ? &r->gov->approve_lock : NULL;
    if (lk)
        pthread_mutex_lock(lk);
    struct digest d;
    uint8_t *sbytes = NULL, *out = NULL;
    size_t slen = 0, olen = 0;
    Ferry__SignatureList *sl = NULL;
    int already = 0;
    rc = db_get_version(&r->db, g->name, g->version, &d, &sbytes, &slen);
    if (rc == 0 && gov_verify_extra(a, &d) < 0) {
        char why[600];
        snprintf(why, sizeof why, "%s", err_detail());
        rc = err_set(FERRY_E_SIGNATURE, "approve %s@%s refused: %s", g->name, g->version, why);
    }
    if (rc == 0)
        rc = signatures_decode(sbytes, slen, &sl);
    for (size_t i = 0; rc == 0 && i < sl->n_signatures; i++)
        already |= sl->signatures[i]->role && strcmp(sl->signatures[i]->role, a->role) == 0 &&
                   strcmp(sl->signatures[i]->key_id, a->key_id) == 0;
    if (rc == 0 && !already) {
        if (sl->n_signatures >= SIGNATURES_MAX) {
            rc = err_set(FERRY_E_LIMIT, "approve %s@%s: the signature list is full (%u)", g->name,
                         g->version, SIGNATURES_MAX);
        } else {
            Ferry__Signature **nv =
                realloc(sl->signatures, (sl->n_signatures + 1) * sizeof *nv);
            if (!nv) {
                rc = -ENOMEM;
            } else {
                sl->signatures = nv;
                /* Borrowed for the encoding only; taken back before the free. */
                nv[sl->n_signatures++] = (Ferry__Signature *)a;
                rc = signatures_encode(sl, &out, &olen);
                sl->n_signatures--;
            }
        }
        if (rc == 0)
            rc = db_version_set_sigs(&r->db, g->name, g->version, out, olen);
    }
    if (lk)
        pthread_mutex_unlock(lk);
    if (rc == 0) {
        char detail[200];
        snprintf(detail, sizeof detail, "%s@%s (%s)", g->name, g->version, a->role);
        if (!already)
            audit_append(&r->db, a->key_id, role, "approve", detail);
        snprintf(s->summary, sizeof s->summary, "%s %s@%s as %s with key %s",
                 already ? "already approved" : "approved", g->name, g->version, a->role,
                 a->key_id);
        registry_log("%s", s->summary);
    }
    signatures_free(sl);
    free(sbytes);
    free(out);
    return rc;
}

static int handle_promote(struct registry *r, const Ferry__Wire__GovBody *b, const char *signer,
                          struct gov_scratch *s)
{
    if (!b->name || !spec_name_ok(b->name) || !b->version || !spec_version_ok(b->version) ||
        !b->channel || !spec_name_ok(b->channel))
        return err_set(FERRY_E_INVALID, "promote: invalid name, version or channel");
    char what[200];
    snprintf(what, sizeof what, "promote %s@%s to %s", b->name, b->version, b->channel);
    int rc = gov_allows(r, signer, ROLE_OPERATOR, NULL, what);
    if (rc < 0)
        return rc;
    if (r->gov && !policy_has_channel(&r->gov->pol, b->channel))
        return err_set(FERRY_E_INVALID, "%s refused: the policy has no channel %s", what,
                       b->channel);
    struct gov_result res;
    struct digest d;
    if ((rc = evaluate(r, b->name, b->version, b->channel, &res, &d)) < 0)
        return rc;
    if (!res.allowed) {
        char why[1000];
        gov_result_join(&res, why, sizeof why);
        return err_set(FERRY_E_UNTRUSTED, "%s refused: %s", what, why);
    }
    struct db_channel c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "%s", b->name);
    snprintf(c.channel, sizeof c.channel, "%s", b->channel);
    snprintf(c.version, sizeof c.version, "%s", b->version);
    snprintf(c.key_id, sizeof c.key_id, "%s", signer);
    c.digest = d;
    c.set_ms = (int64_t)b->sent_ms;
    if ((rc = db_channel_set(&r->db, &c)) < 0)
        return rc;
    char detail[200];
    snprintf(detail, sizeof detail, "%s@%s to %s", b->name, b->version, b->channel);
    audit_append(&r->db, signer, AUDIT_ROLE_OPERATOR, "promote", detail);
    snprintf(s->summary, sizeof s->summary, "promoted %s@%s to %s", b->name, b->version,
             b->channel);
    registry_log("%s by key %s", s->summary, signer);
    if (r->server)
        server_wake(r->server);
    return 0;
}

static int handle_revoke(struct registry *r, const Ferry__Wire__SignedGov *sg,
                         const Ferry__Wire__GovBody *b, const char *signer,
                         struct gov_scratch *s)
{
    struct regpolicy *g = r->gov;
    if (!g)
        return err_set(FERRY_E_INVALID, "revoke: this registry has no policy (start it with "
                                        "--policy FILE)");
    int rc = gov_allows(r, signer, ROLE_ADMIN, NULL, "revoke");
    if (rc < 0)
        return rc;
    if (!b->key_id || !policy_key_find(&g->pol, b->key_id))
        return err_set(FERRY_E_NOTFOUND, "revoke: key %s is not in the policy",
                       b->key_id ? b->key_id : "?");
    /* A key revoked before stays revoked by that first statement (the store
     * keeps it): a second revoke changes nothing, so it is answered as such
     * and is no audit entry, as a second approval by one key is not. */
    pthread_rwlock_rdlock(&g->lock);
    const struct policy_key *was = policy_key_find(&g->pol, b->key_id);
    int already = was && was->revoked;
    if (already)
        snprintf(s->summary, sizeof s->summary, "already revoked key %s (%s)", b->key_id,
                 was->name);
    pthread_rwlock_unlock(&g->lock);
    if (already)
        return 0;
    size_t len = ferry__wire__signed_gov__get_packed_size(sg);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return -ENOMEM;
    ferry__wire__signed_gov__pack(sg, buf);
    rc = db_revoke_put(&r->db, b->key_id, buf, len);
    free(buf);
    if (rc < 0)
        return rc;
    pthread_rwlock_wrlock(&g->lock);
    const struct policy_key *k = policy_key_find(&g->pol, b->key_id);
    policy_revoke(&g->pol, b->key_id);
    char name[POLICY_NAME_MAX + 1];
    snprintf(name, sizeof name, "%s", k ? k->name : "?");
    pthread_rwlock_unlock(&g->lock);
    char detail[160];
    snprintf(detail, sizeof detail, "key %s (%s)", b->key_id, name);
    audit_append(&r->db, signer, AUDIT_ROLE_ADMIN, "revoke", detail);
    snprintf(s->summary, sizeof s->summary, "revoked key %s (%s)", b->key_id, name);
    registry_log("%s by key %s", s->summary, signer);
    if (r->server)
        server_wake(r->server);
    return 0;
}

static int reply(Ferry__Wire__Response *resp, struct gov_scratch *s)
{
    if (!s->reply.base.descriptor)
        ferry__wire__gov_reply__init(&s->reply);
    s->reply.summary = s->summary;
    resp->body_case = FERRY__WIRE__RESPONSE__BODY_GOV;
    resp->gov = &s->reply;
    return 0;
}

int gov_handle(struct registry *r, const Ferry__Wire__Gov *g, Ferry__Wire__Response *resp,
               struct gov_scratch *s)
{
    ferry__wire__gov_reply__init(&s->reply);
    s->reply.has_policy = r->gov != NULL;
    if (g->approval) {
        int rc = handle_approve(r, g, s);
        return rc < 0 ? rc : reply(resp, s);
    }
    const Ferry__Wire__SignedGov *sg = g->signed_;
    if (!sg || !sg->key_id)
        return err_set(FERRY_E_UNTRUSTED, "governance request is not signed");
    const struct key_public *k = trust_find(r->trust, sg->key_id);
    if (!k)
        return err_set(FERRY_E_UNTRUSTED, "governance request signed by untrusted key %s",
                       sg->key_id);
    if (key_verify(k->pk, sg->body.data, sg->body.len, sg->signature.data, sg->signature.len))
        return err_set(FERRY_E_SIGNATURE, "governance request signature by key %s does not "
                                          "verify", sg->key_id);
    Ferry__Wire__GovBody *b = ferry__wire__gov_body__unpack(NULL, sg->body.len, sg->body.data);
    if (!b)
        return err_set(FERRY_E_PROTOCOL, "governance request: malformed body");
    int rc;
    if (!b->purpose || strcmp(b->purpose, GOV_PURPOSE) != 0)
        rc = err_set(FERRY_E_INVALID, "governance request: wrong purpose");
    else if (b->action && strcmp(b->action, "promote") == 0)
        rc = handle_promote(r, b, k->id, s);
    else if (b->action && strcmp(b->action, "revoke") == 0)
        rc = handle_revoke(r, sg, b, k->id, s);
    else
        rc = err_set(FERRY_E_INVALID, "governance request: unknown action '%s'",
                     b->action ? b->action : "");
    ferry__wire__gov_body__free_unpacked(b, NULL);
    return rc < 0 ? rc : reply(resp, s);
}

/* ---- questions -------------------------------------------------------------- */

static int reply_policy(struct registry *r, struct gov_scratch *s)
{
    struct regpolicy *g = r->gov;
    if (!g)
        return 0;
    s->reply.policy = (ProtobufCBinaryData){g->len, g->text};
    s->reply.signature = g->sig;
    size_t n = g->pol.n_keys;
    s->files = calloc(n ? n : 1, sizeof *s->files);
    s->file_ptrs = calloc(n ? n : 1, sizeof *s->file_ptrs);
    if (!s->files || !s->file_ptrs)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        ferry__wire__policy_key_file__init(&s->files[i]);
        s->files[i].path = g->pol.keys[i].path;
        s->files[i].text = g->key_text[i];
        s->file_ptrs[i] = &s->files[i];
    }
    s->reply.keys = s->file_ptrs;
    s->reply.n_keys = n;
    struct db_revocation *v = NULL;
    size_t nv = 0;
    int rc = db_revoke_list(&r->db, &v, &nv);
    if (rc < 0)
        return rc;
    s->revoked = calloc(nv ? nv : 1, sizeof *s->revoked);
    for (size_t i = 0; s->revoked && i < nv; i++) {
        Ferry__Wire__SignedGov *sg = ferry__wire__signed_gov__unpack(NULL, v[i].len, v[i].stmt);
        if (sg)
            s->revoked[s->n_revoked++] = sg;
    }
    db_revoke_list_free(v, nv);
    if (!s->revoked)
        return -ENOMEM;
    s->reply.revoked = s->revoked;
    s->reply.n_revoked = s->n_revoked;
    return 0;
}

static int reply_channels(struct registry *r, const char *name, struct gov_scratch *s)
{
    size_t n = 0;
    int rc = db_channel_list(&r->db, name, &s->chans, &n);
    if (rc < 0)
        return rc;
    s->pins = calloc(n ? n : 1, sizeof *s->pins);
    s->pin_ptrs = calloc(n ? n : 1, sizeof *s->pin_ptrs);
    s->digests = malloc((n ? n : 1) * DIGEST_LEN);
    if (!s->pins || !s->pin_ptrs || !s->digests)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        Ferry__Wire__ChannelPin *p = &s->pins[i];
        ferry__wire__channel_pin__init(p);
        p->name = s->chans[i].name;
        p->channel = s->chans[i].channel;
        p->version = s->chans[i].version;
        memcpy(s->digests + i * DIGEST_LEN, s->chans[i].digest.b, DIGEST_LEN);
        p->manifest_digest = (ProtobufCBinaryData){DIGEST_LEN, s->digests + i * DIGEST_LEN};
        p->promoted_ms = (uint64_t)s->chans[i].set_ms;
        s->pin_ptrs[i] = p;
    }
    s->reply.channels = s->pin_ptrs;
    s->reply.n_channels = n;
    return 0;
}

int gov_query(struct registry *r, const Ferry__Wire__GovQuery *q, Ferry__Wire__Response *resp,
              struct gov_scratch *s)
{
    ferry__wire__gov_reply__init(&s->reply);
    s->reply.has_policy = r->gov != NULL;
    const char *what = q->what ? q->what : "";
    int rc = 0;
    if (strcmp(what, "policy") == 0) {
        rc = reply_policy(r, s);
    } else if (strcmp(what, "channels") == 0) {
        if (!q->name || !spec_name_ok(q->name))
            return err_set(FERRY_E_INVALID, "channels: invalid name");
        rc = reply_channels(r, q->name, s);
    } else if (strcmp(what, "check") == 0) {
        if (!q->name || !spec_name_ok(q->name) || !q->version || !spec_version_ok(q->version) ||
            !q->channel || !spec_name_ok(q->channel))
            return err_set(FERRY_E_INVALID, "policy check: invalid name, version or channel");
        if (r->gov && !policy_has_channel(&r->gov->pol, q->channel))
            return err_set(FERRY_E_INVALID, "policy check: the policy has no channel %s",
                           q->channel);
        struct gov_result res;
        struct digest d;
        if ((rc = evaluate(r, q->name, q->version, q->channel, &res, &d)) < 0)
            return rc;
        s->reply.allowed = res.allowed;
        s->missing = calloc(res.n ? res.n : 1, sizeof *s->missing);
        for (size_t i = 0; s->missing && i < res.n; i++)
            if ((s->missing[i] = strdup(res.missing[i])))
                s->n_missing++;
        if (!s->missing)
            return -ENOMEM;
        s->reply.missing = s->missing;
        s->reply.n_missing = s->n_missing;
    } else {
        return err_set(FERRY_E_INVALID, "governance query: unknown question '%s'", what);
    }
    return rc < 0 ? rc : reply(resp, s);
}

void gov_scratch_free(struct gov_scratch *s)
{
    free(s->files);
    free(s->file_ptrs);
    for (size_t i = 0; i < s->n_revoked; i++)
        ferry__wire__signed_gov__free_unpacked(s->revoked[i], NULL);
    free(s->revoked);
    free(s->pins);
    free(s->pin_ptrs);
    free(s->chans);
    free(s->digests);
    for (size_t i = 0; i < s->n_missing; i++)
        free(s->missing[i]);
    free(s->missing);
    memset(s, 0, sizeof *s);
}

/* ---- entries (dispatch.c) ---------------------------------------------------- */

int on_gov(struct registry *r, const Ferry__Wire__Request *req, Ferry__Wire__Response *resp,
           struct request_scratch *rs)
{
    return gov_handle(r, req->gov, resp, &rs->gov);
}

int on_gov_query(struct registry *r, const Ferry__Wire__Request *req,
                 Ferry__Wire__Response *resp, struct request_scratch *rs)
{
    return gov_query(r, req->gov_query, resp, &rs->gov);
}
