/* ferry inspect NAME@VERSION [--trust P]... [--json]: what a published
 * artifact is, read from its manifest: name, version, kind, runtime, the
 * files, and for runtime oci the image's layers and config as publish
 * resolved them, and the signature list as the registry has it (the
 * publisher's, approvals, provenance statements). With trusted keys (--trust
 * or FERRY_TRUST) the publisher's signature is checked first. */
#include "artifact.h"
#include "artifact_internal.h"
#include "cli.h"
#include "error.h"
#include "govrules.h"
#include "key.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *oci_json(const Ferry__OciSpec *o)
{
    json_t *ls = json_array();
    for (size_t i = 0; i < o->n_layers; i++)
        json_array_append_new(ls, json_pack("{s:s, s:s, s:I, s:s}", "digest", o->layers[i]->digest,
                                            "media_type", o->layers[i]->media_type, "size",
                                            (json_int_t)o->layers[i]->size, "file",
                                            o->layers[i]->file));
    return json_pack("{s:s, s:s, s:s, s:o}", "image", o->image, "config_digest", o->config_digest,
                     "config_file", o->config_file, "layers", ls);
}

/* Whether one signature of the list verifies: the publisher's over the
 * manifest bytes, an approval or provenance over the digest and its role
 * (govrules). Whether its key is trusted or holds the role is not judged
 * here: that is --trust's and the policy's (ferry policy check). */
static int sig_valid(const Ferry__Signature *sg, const struct fetched *f)
{
    if (sg->role && sg->role[0])
        return gov_verify_extra(sg, &f->digest) == 0;
    char id[KEY_ID_LEN + 1];
    if (!sg->key_id || sg->public_key.len != crypto_sign_PUBLICKEYBYTES)
        return 0;
    key_id_of(sg->public_key.data, id);
    return strcmp(id, sg->key_id) == 0 &&
           key_verify(sg->public_key.data, f->mbytes, f->mlen, sg->signature.data,
                      sg->signature.len) == 0;
}

static const char *sig_role(const Ferry__Signature *sg)
{
    return sg->role && sg->role[0] ? sg->role : "publisher";
}

int cli_inspect(int argc, char **argv)
{
    struct cli_opts o;
    static const int allowed[] = {OPT_REGISTRY, OPT_TRUST, OPT_JSON, 0};
    int rc = cli_parse_opts("inspect", argc, argv, &o, allowed);
    if (rc)
        return rc;
    if (optind + 1 != argc)
        return cli_usage("inspect", "expected exactly one NAME@VERSION");
    char name[72], version[72];
    if ((rc = artifact_ref_parse(argv[optind], name, sizeof name, version, sizeof version)) < 0)
        return cli_fail(rc);
    struct client c;
    if ((rc = connect_registry(&o, &c)) < 0) {
        trust_fini(&o.trust);
        return cli_fail(rc);
    }
    struct fetched f;
    rc = artifact_fetch_manifest(&c, name, version, &o.trust, &f);
    client_close(&c);
    trust_fini(&o.trust);
    if (rc < 0)
        return cli_fail(rc);
    const Ferry__Manifest *m = f.m;
    const Ferry__Spec *s = m->spec;
    char hex[DIGEST_HEX_LEN + 1];
    digest_hex(&f.digest, hex);
    if (o.json) {
        json_t *files = json_array();
        for (size_t i = 0; i < m->n_files; i++)
            json_array_append_new(files, json_pack("{s:s, s:I, s:b}", "path", m->files[i]->path,
                                                   "size", (json_int_t)m->files[i]->size,
                                                   "executable", m->files[i]->executable));
        json_t *obj = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:o}", "name", s->name, "version",
                                s->version, "digest", hex, "kind", s->kind, "runtime", s->runtime,
                                "bytes", (json_int_t)manifest_total_bytes(m), "files", files);
        if (s->oci)
            json_object_set_new(obj, "oci", oci_json(s->oci));
        json_t *sigs = json_array();
        const Ferry__SignatureList *sl = f.resp->manifest->signatures;
        for (size_t i = 0; sl && i < sl->n_signatures; i++) {
            const Ferry__Signature *sg = sl->signatures[i];
            json_t *one = json_pack("{s:s, s:s, s:b}", "key_id", sg->key_id ? sg->key_id : "",
                                    "role", sig_role(sg), "valid", sig_valid(sg, &f));
            if (sg->statement && sg->statement[0])
                json_object_set_new(one, "statement", json_string(sg->statement));
            json_array_append_new(sigs, one);
        }
        json_object_set_new(obj, "signatures", sigs);
        char *text = json_dumps(obj, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        puts(text);
        free(text);
        json_decref(obj);
    } else {
        printf("%s@%s %s\nkind %s, runtime %s, %zu files, %llu bytes\n", s->name, s->version, hex,
               s->kind, s->runtime, m->n_files, (unsigned long long)manifest_total_bytes(m));
        if (s->oci) {
            printf("image %s\nconfig %s\n", s->oci->image, s->oci->config_digest);
            for (size_t i = 0; i < s->oci->n_layers; i++)
                printf("layer %zu %s %llu %s\n", i, s->oci->layers[i]->digest,
                       (unsigned long long)s->oci->layers[i]->size, s->oci->layers[i]->media_type);
        }
        const Ferry__SignatureList *sl = f.resp->manifest->signatures;
        for (size_t i = 0; sl && i < sl->n_signatures; i++) {
            const Ferry__Signature *sg = sl->signatures[i];
            int st = sg->statement && sg->statement[0];
            printf("signature %s %s%s%s%s\n", sg->key_id ? sg->key_id : "?", sig_role(sg),
                   st ? " " : "", st ? sg->statement : "", sig_valid(sg, &f) ? "" : " INVALID");
        }
    }
    fetched_free(&f);
    return 0;
}
