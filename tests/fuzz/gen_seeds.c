/* Writes the seed corpora for the fuzz targets into OUT/<target>/: valid
 * inputs of every kind, made with libferry's own encoders and signed with
 * the fixed fuzz keys. Run by the build; nothing here is committed.
 *
 *   fuzz-gen-seeds OUT */
#include "bundle.h"
#include "error.h"
#include "fsutil.h"
#include "fuzz_common.h"
#include "fuzz_samples.h"
#include "manifest.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *out_root;

static void put(const char *target, const char *name, const void *buf, size_t len)
{
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/%s", out_root, target);
    if (fs_mkdir_p(dir, 0755) < 0) {
        fprintf(stderr, "fuzz-gen-seeds: %s: cannot create\n", dir);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (fs_write_file_atomic(path, buf, len, 0644) < 0) {
        fprintf(stderr, "fuzz-gen-seeds: %s: %s\n", path, err_detail());
        exit(1);
    }
}

static void put_wire(void *arg, const char *name, const uint8_t *buf, size_t len)
{
    put((const char *)arg, name, buf, len);
}

/* The manifest target's framing: 4-byte LE manifest length, manifest, list. */
static void put_manifest(const char *name, const uint8_t *m, size_t mlen, const uint8_t *s,
                         size_t slen)
{
    uint8_t *buf = malloc(4 + mlen + slen);
    if (!buf)
        exit(1);
    buf[0] = (uint8_t)mlen, buf[1] = (uint8_t)(mlen >> 8), buf[2] = (uint8_t)(mlen >> 16),
    buf[3] = (uint8_t)(mlen >> 24);
    if (mlen)
        memcpy(buf + 4, m, mlen);
    if (slen)
        memcpy(buf + 4 + mlen, s, slen);
    put("manifest", name, buf, 4 + mlen + slen);
    free(buf);
}

/* Regression seeds: protobuf-c accepts an over-long field-0 tag (80 00 00
 * appended) but cannot read back what it re-encodes from it; ferry now
 * refuses such signature lists and signed records on receipt. */
static uint8_t *with_field_zero(const uint8_t *buf, size_t len)
{
    uint8_t *b = malloc(len + 3);
    if (!b)
        exit(1);
    if (len)
        memcpy(b, buf, len);
    memcpy(b + len, "\x80\x00\x00", 3);
    return b;
}

static void put_desired(void *arg, const char *name, const uint8_t *buf, size_t len)
{
    (void)arg;
    put("desired", name, buf, len);
    if (strcmp(name, "deploy") != 0)
        return;
    /* DesiredState{serial, records: [SignedRecord + field 0]}: re-frame the
     * one record (a 1-byte tag and a 1- or 2-byte length). */
    size_t i = 0;
    if (i < len && buf[i] == 0x08)
        for (i++; i < len && (buf[i++] & 0x80);)
            ;
    if (i + 2 >= len || buf[i] != 0x12)
        return;
    size_t rl = buf[i + 1] & 0x7f, hdr = 2;
    if (buf[i + 1] & 0x80) {
        rl |= (size_t)buf[i + 2] << 7;
        hdr = 3;
    }
    if (i + hdr + rl != len || rl + 3 >= 1u << 14)
        return;
    uint8_t *rec = with_field_zero(buf + i + hdr, rl);
    uint8_t *out = malloc(len + 6);
    if (!out)
        exit(1);
    memcpy(out, buf, i);
    size_t o = i, nl = rl + 3;
    out[o++] = 0x12;
    if (nl < 0x80) {
        out[o++] = (uint8_t)nl;
    } else {
        out[o++] = (uint8_t)(nl | 0x80);
        out[o++] = (uint8_t)(nl >> 7);
    }
    memcpy(out + o, rec, nl);
    put("desired", "field-zero", out, o + nl);
    free(out);
    free(rec);
}

static void manifests(const struct fuzz_artifact *a, const struct fuzz_artifact *model)
{
    put_manifest("signed", a->mbytes, a->mlen, a->sbytes, a->slen);
    put_manifest("signed-model", model->mbytes, model->mlen, model->sbytes, model->slen);
    put_manifest("unsigned", a->mbytes, a->mlen, NULL, 0);
    uint8_t *fz = with_field_zero(a->sbytes, a->slen);
    put_manifest("field-zero", a->mbytes, a->mlen, fz, a->slen + 3);
    free(fz);
    /* Two signatures: an untrusted key's first, then the trusted one. */
    Ferry__SignatureList *sigs = NULL;
    if (signatures_decode(a->sbytes, a->slen, &sigs) < 0)
        exit(1);
    struct key_secret other;
    fuzz_host_key(&other);
    Ferry__SignatureList *theirs = NULL;
    if (manifest_sign(a->mbytes, a->mlen, &other, &theirs) < 0)
        exit(1);
    Ferry__Signature *two[] = {theirs->signatures[0], sigs->signatures[0]};
    Ferry__SignatureList both = FERRY__SIGNATURE_LIST__INIT;
    both.signatures = two;
    both.n_signatures = 2;
    uint8_t *enc = NULL;
    size_t elen = 0;
    if (signatures_encode(&both, &enc, &elen) < 0)
        exit(1);
    put_manifest("two-signatures", a->mbytes, a->mlen, enc, elen);
    free(enc);
    /* The trusted key's signature over other bytes. */
    put_manifest("bad-signature", model->mbytes, model->mlen, a->sbytes, a->slen);
    signatures_free(theirs);
    signatures_free(sigs);
    key_secret_wipe(&other);
}

static void bundles(const struct fuzz_artifact *a)
{
    char dir[4096], tar[4200], gz[4200];
    fuzz_scratch_dir("seed-bundle", dir, sizeof dir);
    snprintf(tar, sizeof tar, "%s/plain.tar", dir);
    snprintf(gz, sizeof gz, "%s/bundle.tar.gz", dir);
    struct bundle_writer *w = NULL;
    int rc = bundle_writer_open(tar, &w);
    if (rc == 0)
        rc = bundle_writer_add(w, "manifest.pb", a->mbytes, a->mlen);
    if (rc == 0)
        rc = bundle_writer_add(w, "signatures.pb", a->sbytes, a->slen);
    for (size_t i = 0; rc == 0 && i < a->m->n_files && i < FUZZ_SAMPLE_FILES; i++) {
        struct digest d;
        char hex[DIGEST_HEX_LEN + 1], member[80];
        digest_from_bytes(a->m->files[i]->digest.data, a->m->files[i]->digest.len, &d);
        digest_hex(&d, hex);
        snprintf(member, sizeof member, "blobs/%s", hex);
        rc = bundle_writer_add(w, member, a->blob[i], a->blob_len[i]);
    }
    if (rc == 0)
        rc = bundle_writer_close(w);
    else if (w)
        bundle_writer_abort(w);
    uint8_t *bytes = NULL;
    size_t len = 0;
    if (rc == 0)
        rc = fs_read_file(tar, 1u << 20, &bytes, &len);
    if (rc < 0) {
        fprintf(stderr, "fuzz-gen-seeds: bundle: %s\n", err_message(rc));
        exit(1);
    }
    put("bundle", "plain.tar", bytes, len);

    /* The same tar, gzip-compressed, as `ferry import` also accepts. */
    struct archive *ar = archive_write_new();
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "bundle.tar");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_size(e, (la_int64_t)len);
    if (!ar || !e || archive_write_set_format_raw(ar) != ARCHIVE_OK ||
        archive_write_add_filter_gzip(ar) != ARCHIVE_OK ||
        archive_write_open_filename(ar, gz) != ARCHIVE_OK ||
        archive_write_header(ar, e) != ARCHIVE_OK ||
        archive_write_data(ar, bytes, len) != (la_ssize_t)len ||
        archive_write_close(ar) != ARCHIVE_OK) {
        fprintf(stderr, "fuzz-gen-seeds: gzip: %s\n", ar ? archive_error_string(ar) : "?");
        exit(1);
    }
    archive_entry_free(e);
    archive_write_free(ar);
    free(bytes);
    if (fs_read_file(gz, 1u << 20, &bytes, &len) < 0)
        exit(1);
    put("bundle", "bundle.tar.gz", bytes, len);
    free(bytes);
    fs_rm_rf(dir);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fputs("usage: fuzz-gen-seeds OUT\n", stderr);
        return 2;
    }
    out_root = argv[1];
    struct fuzz_artifact app, model;
    fuzz_artifact_make(fuzz_spec_samples[0], &app);
    fuzz_artifact_make(fuzz_spec_samples[1], &model);

    for (size_t i = 0; i < fuzz_n_spec_samples; i++) {
        char name[32];
        snprintf(name, sizeof name, "sample-%zu.yaml", i);
        put("spec", name, fuzz_spec_samples[i], strlen(fuzz_spec_samples[i]));
    }
    /* The governance policy (target_policy.c): the documented example. */
    static const char policy[] =
        "keys:\n"
        "  - {name: admin,    pub: k0.pub, roles: [admin]}\n"
        "  - {name: ci,       pub: k1.pub, roles: [publisher, operator]}\n"
        "  - {name: ds,       pub: k2.pub, roles: [publisher], kinds: [model, notebook]}\n"
        "  - {name: reviewer, pub: k3.pub, roles: [approver]}\n"
        "channels: [dev, staging, prod]\n"
        "environments:\n"
        "  - {name: prod, selector: \"env=prod\", channel: prod}\n"
        "rules:\n"
        "  - kind: model\n"
        "    channel: prod\n"
        "    approvals: 1\n"
        "    privacy_review: true\n"
        "    card: [Intended use, Limitations]\n"
        "    metrics: {accuracy: \">= 0.9\"}\n"
        "  - kind: app\n"
        "    channel: prod\n"
        "    provenance: {builder: \"https://ci.example/builder\"}\n";
    put("policy", "example.yaml", policy, sizeof policy - 1);
    /* OCI image JSON (target_ocijson.c): the first byte picks the reader,
     * 0 index, 1 manifest, 2 config, 3 docker save's manifest.json. */
#define OCI_HEX "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    static const char *const oci_docs[] = {
        "\x00{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
        "\"digest\":\"sha256:" OCI_HEX "\",\"size\":349,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"},"
        "\"annotations\":{\"org.opencontainers.image.ref.name\":\"latest\"}}]}",
        "\x01{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":"
        "{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:" OCI_HEX "\",\"size\":421},"
        "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:" OCI_HEX "\","
        "\"size\":1084096},{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+zstd\",\"digest\":\"sha256:" OCI_HEX "\",\"size\":7}]}",
        "\x02{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[\"PATH=/bin\"],\"Cmd\":[\"/bin/sh\"]},"
        "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:" OCI_HEX "\"]}}",
        "\x03[{\"Config\":\"" OCI_HEX ".json\",\"RepoTags\":[\"busybox:latest\"],\"Layers\":[\"0/layer.tar\",\"1/layer.tar\"]}]",
    };
    for (size_t i = 0; i < sizeof oci_docs / sizeof *oci_docs; i++) {
        char name[32];
        snprintf(name, sizeof name, "doc-%zu.json", i);
        /* the first byte is 0 for the index: count it in explicitly */
        put("ocijson", name, oci_docs[i], strlen(oci_docs[i] + 1) + 1);
    }
    /* Model endpoint bodies (target_infer.c): the first byte picks the
     * protocol (bit 1: MLflow) and the signature (bit 0: one 2-D input). */
    static const char *const infer_bodies[] = {
        ("\x00{\"id\":\"r1\",\"inputs\":[{\"name\":\"a\",\"shape\":[2],\"datatype\":\"FP64\",\"data\":[1.5,2]},"
        "{\"name\":\"b\",\"shape\":[2],\"datatype\":\"INT32\",\"data\":[1,-2]},"
        "{\"name\":\"c\",\"shape\":[2],\"datatype\":\"BOOL\",\"data\":[true,false]},"
        "{\"name\":\"d\",\"shape\":[2],\"datatype\":\"FP16\",\"data\":[0.5,65504]},"
        "{\"name\":\"e\",\"shape\":[2],\"datatype\":\"BYTES\",\"data\":[\"x\",\"yz\"]}],"
        "\"outputs\":[{\"name\":\"y\"}]}"),
        ("\x01{\"inputs\":[{\"name\":\"features\",\"shape\":[2,4],\"datatype\":\"FP32\","
        "\"data\":[[5.1,3.5,1.4,0.2],[6.2,2.9,4.3,1.3]]}]}"),
        "\x03{\"dataframe_split\":{\"columns\":[\"a\",\"b\",\"c\",\"d\"],\"data\":[[1,2,3,4]]}}",
        "\x02{\"dataframe_records\":[{\"a\":1,\"b\":2,\"c\":true,\"d\":0.5,\"e\":\"s\"}]}",
        "\x03{\"instances\":[[1,2,3,4],[5,6,7,8]]}",
        "\x02{\"inputs\":{\"a\":[1],\"b\":[2],\"c\":[false],\"d\":[1],\"e\":[\"t\"]}}",
    };
    for (size_t i = 0; i < sizeof infer_bodies / sizeof infer_bodies[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "body-%zu", i);
        /* The first byte may be NUL: its length comes from the rest. */
        put("infer", name, infer_bodies[i], 1 + strlen(infer_bodies[i] + 1));
    }
    manifests(&app, &model);
    fuzz_requests(&app, put_wire, "wire");
    fuzz_desired_states(&app, put_desired, NULL);
    bundles(&app);

    fuzz_artifact_free(&app);
    fuzz_artifact_free(&model);
    return 0;
}
