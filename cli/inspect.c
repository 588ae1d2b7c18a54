/* ferry inspect NAME@VERSION [--trust P]... [--json]: what a published
 * artifact is, read from its manifest: name, version, kind, runtime, the
 * files, and for runtime oci the image's layers and config as publish
 * resolved them. With trusted keys (--trust or FERRY_TRUST) the signature
 * is checked first. */
#include "artifact.h"
#include "artifact_internal.h"
#include "cli.h"
#include "error.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

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
    }
    fetched_free(&f);
    return 0;
}
