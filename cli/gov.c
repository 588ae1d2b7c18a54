/* Governance verbs (docs/governance.md, docs/cli.md): policy sign|show|
 * check, approve, promote, channels, keys revoke. Signing happens here, with
 * the user's key; the registry checks roles and rules, and so do agents. */
#include "artifact.h"
#include "cli.h"
#include "clock.h"
#include "error.h"
#include "govrules.h"
#include "key.h"
#include "manifest.h"
#include "policy.h"
#include "spec.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GOV_PURPOSE "ferry-gov-v1"

static int need_key(const char *verb, struct cli_opts *o, struct key_secret *k)
{
    if (!o->key || !*o->key)
        return cli_usage(verb, "no signing key: give --key FILE.key or set FERRY_KEY");
    int rc = key_load_secret(o->key, k);
    return rc < 0 ? cli_fail(rc) : 0;
}

/* NAME@VERSION given on the command line: a malformed one is a bad argument,
 * so a usage error (exit 2), as docs/cli.md says for every governance verb. */
static int ref_arg(const char *verb, const char *ref, char *name, size_t ncap, char *version,
                   size_t vcap)
{
    int rc = artifact_ref_parse(ref, name, ncap, version, vcap);
    return rc < 0 ? cli_usage(verb, err_message(rc)) : 0;
}

static int call_gov(struct cli_opts *o, Ferry__Wire__Request *req, Ferry__Wire__Response **r)
{
    return cli_call(o, req, r, FERRY__WIRE__RESPONSE__BODY_GOV);
}

static int query(struct cli_opts *o, const char *what, const char *name, const char *version,
                 const char *channel, Ferry__Wire__Response **r)
{
    Ferry__Wire__Request req;
    Ferry__Wire__GovQuery q;
    ferry__wire__request__init(&req);
    ferry__wire__gov_query__init(&q);
    q.what = (char *)what;
    q.name = (char *)(name ? name : "");
    q.version = (char *)(version ? version : "");
    q.channel = (char *)(channel ? channel : "");
    req.body_case = FERRY__WIRE__REQUEST__BODY_GOV_QUERY;
    req.gov_query = &q;
    return call_gov(o, &req, r);
}

/* Sign body with k and send it as a Gov request. */
static int send_signed(struct cli_opts *o, const struct key_secret *k, Ferry__Wire__GovBody *b,
                       Ferry__Wire__Response **r)
{
    b->purpose = (char *)GOV_PURPOSE;
    b->sent_ms = (uint64_t)(int64_t)clock_unix_ms();
    size_t len = ferry__wire__gov_body__get_packed_size(b);
    uint8_t *buf = malloc(len ? len : 1), sig[crypto_sign_BYTES];
    if (!buf)
        return -ENOMEM;
    ferry__wire__gov_body__pack(b, buf);
    key_sign(k, buf, len, sig);
    Ferry__Wire__SignedGov sg;
    Ferry__Wire__Gov g;
    Ferry__Wire__Request req;
    ferry__wire__signed_gov__init(&sg);
    ferry__wire__gov__init(&g);
    ferry__wire__request__init(&req);
    sg.body = (ProtobufCBinaryData){len, buf};
    sg.key_id = (char *)k->pub.id;
    sg.signature = (ProtobufCBinaryData){sizeof sig, sig};
    g.signed_ = &sg;
    req.body_case = FERRY__WIRE__REQUEST__BODY_GOV;
    req.gov = &g;
    int rc = call_gov(o, &req, r);
    free(buf);
    return rc;
}

/* ---- policy ------------------------------------------------------------------ */

static int policy_sign_file(const char *file, struct cli_opts *o)
{
    struct key_secret k;
    int rc = need_key("policy sign", o, &k);
    if (rc)
        return rc;
    struct policy *p = malloc(sizeof *p);
    if (!p) {
        key_secret_wipe(&k);
        return cli_fail(-ENOMEM);
    }
    char sig[400], path[4200];
    rc = policy_load_file(file, p, NULL, NULL);
    if (rc == 0) {
        /* Signing is an admin's act; the signature is still written (it is
         * plain Ed25519), but registries and agents will refuse it. */
        const struct policy_key *pk = policy_key_find(p, k.pub.id);
        if (!pk || !(pk->roles & ROLE_ADMIN))
            fprintf(stderr, "ferry: warning: key %s is not an admin key of %s: registries and "
                            "agents will refuse this signature\n", k.pub.id, file);
    }
    if (rc == 0)
        rc = policy_sign(p, &k, sig, sizeof sig);
    /* The id outlives the wipe of the secret: the line below names it. */
    char signer[KEY_ID_LEN + 1];
    snprintf(signer, sizeof signer, "%s", k.pub.id);
    key_secret_wipe(&k);
    if (rc == 0) {
        snprintf(path, sizeof path, "%s.sig", file);
        char tmp[4300];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        FILE *f = fopen(tmp, "w");
        if (!f || fputs(sig, f) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
            rc = err_set(-errno, "%s: %s", tmp, strerror(errno));
            if (f)
                fclose(f);
            unlink(tmp);
        } else if (fclose(f) != 0 || rename(tmp, path) != 0) {
            rc = err_set(-errno, "%s: %s", path, strerror(errno));
            unlink(tmp);
        }
    }
    if (rc == 0) {
        char hex[DIGEST_HEX_LEN + 1];
        digest_hex(&p->digest, hex);
        printf("signed %s (digest %.16s, %zu keys) with key %s: wrote %s\n", file, hex,
               p->n_keys, signer, path);
    }
    free(p);
    return rc < 0 ? cli_fail(rc) : 0;
}

static void roles_text(unsigned roles, char *out, size_t cap)
{
    static const unsigned all[] = {ROLE_ADMIN, ROLE_PUBLISHER, ROLE_APPROVER, ROLE_PRIVACY,
                                   ROLE_OPERATOR};
    out[0] = '\0';
    for (size_t i = 0; i < 5; i++)
        if (roles & all[i])
            snprintf(out + strlen(out), cap - strlen(out), "%s%s", out[0] ? "," : "",
                     policy_role_name(all[i]));
}

static const char *const kind_list[] = {"app", "model", "notebook"};

/* The kinds a publisher key is limited to ("model,notebook"), "" when the
 * policy gives it none (it may publish every kind). */
static void kinds_text(unsigned kinds, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = 0; i < 3; i++)
        if (kinds & policy_kind_bit(kind_list[i]))
            snprintf(out + strlen(out), cap - strlen(out), "%s%s", out[0] ? "," : "",
                     kind_list[i]);
}

static int policy_show(struct cli_opts *o)
{
    Ferry__Wire__Response *r = NULL;
    int rc = query(o, "policy", NULL, NULL, NULL, &r);
    if (rc < 0)
        return cli_fail(rc);
    const Ferry__Wire__GovReply *g = r->gov;
    if (!g->has_policy) {
        if (o->json)
            cli_print_json(json_pack("{s:b}", "policy", 0));
        else
            printf("this registry has no policy: every trusted key may do everything\n");
        client_response_free(r);
        return 0;
    }
    struct policy *p = malloc(sizeof *p);
    struct policy_served_key served[POLICY_KEYS_MAX];
    size_t nk = g->n_keys < POLICY_KEYS_MAX ? g->n_keys : POLICY_KEYS_MAX;
    for (size_t i = 0; i < nk; i++)
        served[i] = (struct policy_served_key){g->keys[i]->path, g->keys[i]->text};
    rc = p ? policy_parse_served((const char *)g->policy.data, g->policy.len, served, nk, p)
           : -ENOMEM;
    if (rc < 0) {
        free(p);
        client_response_free(r);
        return cli_fail(rc);
    }
    char signer[KEY_ID_LEN + 1] = "";
    int verified = policy_verify(p, g->signature, NULL, signer) == 0;
    char hex[DIGEST_HEX_LEN + 1];
    digest_hex(&p->digest, hex);
    /* Revoked keys, as the registry lists them. */
    for (size_t i = 0; i < g->n_revoked; i++) {
        Ferry__Wire__GovBody *b = ferry__wire__gov_body__unpack(NULL, g->revoked[i]->body.len,
                                                                g->revoked[i]->body.data);
        if (b && b->key_id)
            policy_revoke(p, b->key_id);
        if (b)
            ferry__wire__gov_body__free_unpacked(b, NULL);
    }
    if (o->json) {
        json_t *keys = json_array(), *envs = json_array(), *rules = json_array(),
               *chans = json_array();
        for (size_t i = 0; i < p->n_keys; i++) {
            char roles[100];
            roles_text(p->keys[i].roles, roles, sizeof roles);
            json_t *k = json_pack("{s:s,s:s,s:s,s:b}", "name", p->keys[i].name, "key_id",
                                  p->keys[i].pub.id, "roles", roles, "revoked",
                                  p->keys[i].revoked);
            /* Only a key the policy limits carries "kinds", as in the YAML. */
            if (p->keys[i].kinds) {
                json_t *kl = json_array();
                for (size_t j = 0; j < 3; j++)
                    if (p->keys[i].kinds & policy_kind_bit(kind_list[j]))
                        json_array_append_new(kl, json_string(kind_list[j]));
                json_object_set_new(k, "kinds", kl);
            }
            json_array_append_new(keys, k);
        }
        for (size_t i = 0; i < p->n_channels; i++)
            json_array_append_new(chans, json_string(p->channels[i]));
        for (size_t i = 0; i < p->n_envs; i++)
            json_array_append_new(envs, json_pack("{s:s,s:s,s:s}", "name", p->envs[i].name,
                                                  "selector", p->envs[i].selector, "channel",
                                                  p->envs[i].channel));
        for (size_t i = 0; i < p->n_rules; i++) {
            const struct policy_rule *ru = &p->rules[i];
            json_t *card = json_array(), *metrics = json_object();
            for (size_t j = 0; j < ru->n_card; j++)
                json_array_append_new(card, json_string(ru->card[j]));
            for (size_t j = 0; j < ru->n_metrics; j++)
                json_object_set_new(metrics, ru->metrics[j].name, json_string(ru->metrics[j].text));
            json_array_append_new(rules, json_pack("{s:s,s:s,s:i,s:b,s:o,s:o,s:s}", "kind",
                                                   ru->kind, "channel", ru->channel, "approvals",
                                                   (int)ru->approvals, "privacy_review",
                                                   ru->privacy_review, "card", card, "metrics",
                                                   metrics, "provenance_builder", ru->builder));
        }
        cli_print_json(json_pack("{s:b,s:s,s:s,s:b,s:o,s:o,s:o,s:o}", "policy", 1, "digest", hex,
                                 "signed_by", signer, "signature_valid", verified, "keys", keys,
                                 "channels", chans, "environments", envs, "rules", rules));
    } else {
        printf("policy %.16s signed by key %s (%s)\n", hex, signer[0] ? signer : "?",
               verified ? "signature valid" : "SIGNATURE INVALID");
        printf("keys:\n");
        for (size_t i = 0; i < p->n_keys; i++) {
            char roles[100];
            char kinds[40];
            roles_text(p->keys[i].roles, roles, sizeof roles);
            kinds_text(p->keys[i].kinds, kinds, sizeof kinds);
            printf("  %-12s %s  %s%s%s%s%s\n", p->keys[i].name, p->keys[i].pub.id, roles,
                   kinds[0] ? " (kinds " : "", kinds, kinds[0] ? ")" : "",
                   p->keys[i].revoked ? "  REVOKED" : "");
        }
        printf("channels:");
        for (size_t i = 0; i < p->n_channels; i++)
            printf(" %s", p->channels[i]);
        printf("\nenvironments:\n");
        for (size_t i = 0; i < p->n_envs; i++)
            printf("  %-12s %s -> channel %s\n", p->envs[i].name, p->envs[i].selector,
                   p->envs[i].channel);
        printf("rules:\n");
        for (size_t i = 0; i < p->n_rules; i++) {
            const struct policy_rule *ru = &p->rules[i];
            printf("  %s on %s:", ru->kind, ru->channel);
            if (ru->approvals)
                printf(" approvals %u;", ru->approvals);
            if (ru->privacy_review)
                printf(" privacy review when pii;");
            for (size_t j = 0; j < ru->n_card; j++)
                printf(" card '%s';", ru->card[j]);
            for (size_t j = 0; j < ru->n_metrics; j++)
                printf(" %s %s;", ru->metrics[j].name, ru->metrics[j].text);
            if (ru->builder[0])
                printf(" provenance builder %s;", ru->builder);
            printf("\n");
        }
    }
    free(p);
    client_response_free(r);
    return 0;
}

static int policy_check(struct cli_opts *o, const char *ref)
{
    char name[72], version[72];
    int rc = ref_arg("policy check", ref, name, sizeof name, version, sizeof version);
    if (rc)
        return rc;
    if (!o->channel)
        return cli_usage("policy check", "--channel CH is required");
    Ferry__Wire__Response *r = NULL;
    if ((rc = query(o, "check", name, version, o->channel, &r)) < 0)
        return cli_fail(rc);
    const Ferry__Wire__GovReply *g = r->gov;
    int allowed = g->allowed;
    if (o->json) {
        json_t *m = json_array();
        for (size_t i = 0; i < g->n_missing; i++)
            json_array_append_new(m, json_string(g->missing[i]));
        cli_print_json(json_pack("{s:s,s:s,s:b,s:o}", "artifact", ref, "channel", o->channel,
                                 "allowed", allowed, "missing", m));
    } else if (allowed) {
        printf("%s may go to %s\n", ref, o->channel);
    } else {
        printf("%s may not go to %s:", ref, o->channel);
        for (size_t i = 0; i < g->n_missing; i++)
            printf("%s %s", i ? ";" : "", g->missing[i]);
        printf("\n");
    }
    client_response_free(r);
    return allowed ? 0 : 1;
}

int cli_policy(int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "";
    struct cli_opts o;
    static const int sign_opts[] = {OPT_KEY, 0};
    static const int show_opts[] = {OPT_REGISTRY, OPT_JSON, 0};
    static const int check_opts[] = {OPT_REGISTRY, OPT_JSON, OPT_CHANNEL, 0};
    if (strcmp(sub, "sign") == 0) {
        int rc = cli_parse_opts("policy sign", argc - 1, argv + 1, &o, sign_opts);
        if (rc)
            return rc;
        if (optind + 1 != argc - 1)
            return cli_usage("policy sign", "expected exactly one FILE");
        return policy_sign_file(argv[1 + optind], &o);
    }
    if (strcmp(sub, "show") == 0) {
        int rc = cli_parse_opts("policy show", argc - 1, argv + 1, &o, show_opts);
        if (rc)
            return rc;
        if (optind != argc - 1)
            return cli_usage("policy show", "takes no arguments");
        return policy_show(&o);
    }
    if (strcmp(sub, "check") == 0) {
        int rc = cli_parse_opts("policy check", argc - 1, argv + 1, &o, check_opts);
        if (rc)
            return rc;
        if (optind + 1 != argc - 1)
            return cli_usage("policy check", "expected exactly one NAME@VERSION");
        return policy_check(&o, argv[1 + optind]);
    }
    return cli_usage("policy", "expected sign FILE, show or check NAME@VERSION --channel CH");
}

/* ---- approve, promote ------------------------------------------------------- */

/* name@version's manifest digest, checked against the manifest's bytes and
 * its name and version: an approval must cover exactly what was asked. */
static int digest_of_version(struct cli_opts *o, const char *name, const char *version,
                             struct digest *d)
{
    Ferry__Wire__Request req;
    Ferry__Wire__GetManifest gm;
    ferry__wire__request__init(&req);
    ferry__wire__get_manifest__init(&gm);
    gm.name = (char *)name;
    gm.version = (char *)version;
    req.body_case = FERRY__WIRE__REQUEST__BODY_GET_MANIFEST;
    req.get_manifest = &gm;
    Ferry__Wire__Response *r = NULL;
    int rc = cli_call(o, &req, &r, FERRY__WIRE__RESPONSE__BODY_MANIFEST);
    if (rc < 0)
        return rc;
    Ferry__Manifest *m = NULL;
    digest_of(r->manifest->manifest.data, r->manifest->manifest.len, d);
    rc = manifest_decode(r->manifest->manifest.data, r->manifest->manifest.len, &m);
    if (rc == 0 && (strcmp(m->spec->name, name) != 0 || strcmp(m->spec->version, version) != 0))
        rc = err_set(FERRY_E_INVALID, "%s@%s: the registry sent the manifest of %s@%s", name,
                     version, m->spec->name, m->spec->version);
    manifest_free(m);
    client_response_free(r);
    return rc;
}

int cli_approve(int argc, char **argv)
{
    struct cli_opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_KEY, OPT_ROLE, 0};
    int rc = cli_parse_opts("approve", argc, argv, &o, allowed);
    if (rc)
        return rc;
    if (optind + 1 != argc)
        return cli_usage("approve", "expected exactly one NAME@VERSION");
    const char *role = o.role ? o.role : "approver";
    if (strcmp(role, "approver") != 0 && strcmp(role, "privacy") != 0)
        return cli_usage("approve", "--role is approver or privacy");
    char name[72], version[72];
    if ((rc = ref_arg("approve", argv[optind], name, sizeof name, version, sizeof version)))
        return rc;
    struct key_secret k;
    if ((rc = need_key("approve", &o, &k)))
        return rc;
    struct digest d;
    Ferry__Signature *sig = NULL;
    if ((rc = digest_of_version(&o, name, version, &d)) == 0)
        rc = gov_sign_approval(&k, &d, role, &sig);
    key_secret_wipe(&k);
    if (rc < 0)
        return cli_fail(rc);
    Ferry__Wire__Gov g;
    Ferry__Wire__Request req;
    ferry__wire__gov__init(&g);
    ferry__wire__request__init(&req);
    g.name = name;
    g.version = version;
    g.approval = sig;
    req.body_case = FERRY__WIRE__REQUEST__BODY_GOV;
    req.gov = &g;
    Ferry__Wire__Response *r = NULL;
    rc = call_gov(&o, &req, &r);
    ferry__signature__free_unpacked(sig, NULL);
    if (rc < 0)
        return cli_fail(rc);
    printf("%s\n", r->gov->summary);
    client_response_free(r);
    return 0;
}

int cli_promote(int argc, char **argv)
{
    struct cli_opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_KEY, OPT_CHANNEL, 0};
    int rc = cli_parse_opts("promote", argc, argv, &o, allowed);
    if (rc)
        return rc;
    if (optind + 1 != argc)
        return cli_usage("promote", "expected exactly one NAME@VERSION");
    if (!o.channel)
        return cli_usage("promote", "--channel CH is required");
    char name[72], version[72];
    if ((rc = ref_arg("promote", argv[optind], name, sizeof name, version, sizeof version)))
        return rc;
    if (!spec_name_ok(o.channel)) {
        char why[160];
        snprintf(why, sizeof why, "--channel '%.64s': invalid channel name", o.channel);
        return cli_usage("promote", why);
    }
    struct key_secret k;
    if ((rc = need_key("promote", &o, &k)))
        return rc;
    Ferry__Wire__GovBody b;
    ferry__wire__gov_body__init(&b);
    b.action = (char *)"promote";
    b.name = name;
    b.version = version;
    b.channel = (char *)o.channel;
    Ferry__Wire__Response *r = NULL;
    rc = send_signed(&o, &k, &b, &r);
    key_secret_wipe(&k);
    if (rc < 0)
        return cli_fail(rc);
    printf("%s\n", r->gov->summary);
    client_response_free(r);
    return 0;
}

/* ---- channels ---------------------------------------------------------------- */

int cli_channel_version(struct cli_opts *o, const char *name, const char *channel,
                        char *version, size_t cap, uint8_t digest[DIGEST_LEN])
{
    Ferry__Wire__Response *r = NULL;
    int rc = query(o, "channels", name, NULL, NULL, &r);
    if (rc < 0)
        return rc;
    rc = err_set(FERRY_E_NOTFOUND, "channel %s of %s points at no version; promote one first "
                                   "(ferry promote %s@VERSION --channel %s)", channel, name, name,
                 channel);
    for (size_t i = 0; i < r->gov->n_channels; i++) {
        const Ferry__Wire__ChannelPin *p = r->gov->channels[i];
        if (strcmp(p->channel, channel) == 0 && p->manifest_digest.len == DIGEST_LEN) {
            snprintf(version, cap, "%s", p->version);
            memcpy(digest, p->manifest_digest.data, DIGEST_LEN);
            err_clear();
            rc = 0;
        }
    }
    client_response_free(r);
    return rc;
}

int cli_channels(int argc, char **argv)
{
    struct cli_opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_JSON, 0};
    int rc = cli_parse_opts("channels", argc, argv, &o, allowed);
    if (rc)
        return rc;
    if (optind + 1 != argc)
        return cli_usage("channels", "expected exactly one NAME");
    const char *name = argv[optind];
    if (!spec_name_ok(name)) {
        char why[160];
        snprintf(why, sizeof why, "'%.64s': invalid name", name);
        return cli_usage("channels", why);
    }
    Ferry__Wire__Response *r = NULL;
    if ((rc = query(&o, "channels", name, NULL, NULL, &r)) < 0)
        return cli_fail(rc);
    const Ferry__Wire__GovReply *g = r->gov;
    if (o.json) {
        json_t *ch = json_object();
        for (size_t i = 0; i < g->n_channels; i++)
            json_object_set_new(ch, g->channels[i]->channel, json_string(g->channels[i]->version));
        /* One line, as docs/governance.md shows it ({"channels": {"prod":
         * "1.2.0"}}): a pointer map is small, and a script can compare it. */
        json_t *doc = json_pack("{s:o}", "channels", ch);
        char *text = doc ? json_dumps(doc, 0) : NULL;
        json_decref(doc);
        if (!text) {
            client_response_free(r);
            return cli_fail(-ENOMEM);
        }
        puts(text);
        free(text);
    } else if (g->n_channels == 0) {
        printf("%s: no channel points at a version\n", name);
    } else {
        printf("%-12s %-16s %s\n", "CHANNEL", "VERSION", "PROMOTED");
        for (size_t i = 0; i < g->n_channels; i++) {
            char when[40];
            iso_ms(g->channels[i]->promoted_ms, when, sizeof when);
            printf("%-12s %-16s %s\n", g->channels[i]->channel, g->channels[i]->version, when);
        }
    }
    client_response_free(r);
    return 0;
}

/* ---- keys revoke ---------------------------------------------------------------- */

int cli_keys(int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "";
    if (strcmp(sub, "revoke") != 0)
        return cli_usage("keys", "expected revoke KEYID --key admin.key");
    struct cli_opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_KEY, 0};
    int rc = cli_parse_opts("keys revoke", argc - 1, argv + 1, &o, allowed);
    if (rc)
        return rc;
    if (optind + 1 != argc - 1)
        return cli_usage("keys revoke", "expected exactly one KEYID");
    const char *id = argv[1 + optind];
    if (strlen(id) != KEY_ID_LEN || strspn(id, "0123456789abcdef") != KEY_ID_LEN) {
        char why[160];
        snprintf(why, sizeof why, "'%.64s': a key id is %d hex characters", id, KEY_ID_LEN);
        return cli_usage("keys revoke", why);
    }
    struct key_secret k;
    if ((rc = need_key("keys revoke", &o, &k)))
        return rc;
    Ferry__Wire__GovBody b;
    ferry__wire__gov_body__init(&b);
    b.action = (char *)"revoke";
    b.key_id = (char *)id;
    Ferry__Wire__Response *r = NULL;
    rc = send_signed(&o, &k, &b, &r);
    key_secret_wipe(&k);
    if (rc < 0)
        return cli_fail(rc);
    printf("%s\n", r->gov->summary);
    client_response_free(r);
    return 0;
}
