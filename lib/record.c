#include "record.h"
#include "error.h"
#include "hash.h"
#include "manifest.h"
#include "selector.h"
#include "spec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int record_sign(const Ferry__DeployRecord *r, const struct key_secret *k,
                Ferry__SignedRecord **out)
{
    size_t n = ferry__deploy_record__get_packed_size(r);
    Ferry__SignedRecord *sr = malloc(sizeof *sr);
    Ferry__Signature *sig = malloc(sizeof *sig);
    uint8_t *bytes = malloc(n ? n : 1);
    uint8_t *pk = malloc(crypto_sign_PUBLICKEYBYTES);
    uint8_t *sb = malloc(crypto_sign_BYTES);
    char *id = strdup(k->pub.id);
    if (!sr || !sig || !bytes || !pk || !sb || !id) {
        free(sr), free(sig), free(bytes), free(pk), free(sb), free(id);
        return -ENOMEM;
    }
    ferry__signed_record__init(sr);
    ferry__signature__init(sig);
    ferry__deploy_record__pack(r, bytes);
    key_sign(k, bytes, n, sb);
    memcpy(pk, k->pub.pk, crypto_sign_PUBLICKEYBYTES);
    sig->key_id = id;
    sig->public_key.data = pk;
    sig->public_key.len = crypto_sign_PUBLICKEYBYTES;
    sig->signature.data = sb;
    sig->signature.len = crypto_sign_BYTES;
    sr->record.data = bytes;
    sr->record.len = n;
    sr->signature = sig;
    *out = sr;
    return 0;
}

int record_decode(const uint8_t *buf, size_t len, Ferry__DeployRecord **out)
{
    Ferry__DeployRecord *r = ferry__deploy_record__unpack(NULL, len, buf);
    if (!r)
        return err_set(FERRY_E_PROTOCOL, "deploy record: not a valid encoded record");
    int rc = 0;
    struct label_set sel;
    char canon[4096];
    if (!spec_name_ok(r->name))
        rc = err_set(FERRY_E_INVALID, "deploy record: invalid name");
    else if (!r->undeploy && (!spec_version_ok(r->version) || r->manifest_digest.len != DIGEST_LEN))
        rc = err_set(FERRY_E_INVALID, "deploy record for %s: invalid version or digest", r->name);
    else if (r->undeploy && r->rollback)
        rc = err_set(FERRY_E_INVALID, "deploy record for %s: an undeploy cannot be a rollback",
                     r->name);
    else if (labels_parse(r->selector, &sel) < 0)
        rc = err_set(FERRY_E_INVALID, "deploy record for %s: invalid selector", r->name);
    if (rc == 0) {
        labels_format(&sel, canon, sizeof canon);
        if (strcmp(canon, r->selector) != 0)
            rc = err_set(FERRY_E_INVALID, "deploy record for %s: selector not canonical", r->name);
    }
    if (rc < 0) {
        ferry__deploy_record__free_unpacked(r, NULL);
        return rc;
    }
    *out = r;
    return 0;
}

int record_verify(const Ferry__SignedRecord *sr, const struct trust *t, Ferry__DeployRecord **out,
                  char signer[KEY_ID_LEN + 1])
{
    if (!sr || !sr->signature)
        return err_set(FERRY_E_UNTRUSTED, "deploy record is not signed");
    /* The registry and the agent both keep the record re-encoded: it must
     * read back. */
    int rc = pb_refuse_field_zero(&sr->base, "deploy record");
    if (rc < 0)
        return rc;
    const Ferry__Signature *s = sr->signature;
    const char *id = s->key_id ? s->key_id : "";
    const struct key_public *k = trust_find(t, id);
    Ferry__DeployRecord *r = NULL;
    rc = record_decode(sr->record.data, sr->record.len, &r);
    if (rc < 0)
        return rc;
    if (!k)
        rc = err_set(FERRY_E_UNTRUSTED, "deployment of %s%s%s signed by untrusted key %.16s",
                     r->name, r->undeploy ? "" : "@", r->version, id);
    else if (key_verify(k->pk, sr->record.data, sr->record.len, s->signature.data,
                        s->signature.len) < 0)
        rc = err_set(FERRY_E_SIGNATURE, "deployment of %s: signature by key %s does not verify",
                     r->name, k->id);
    if (rc < 0) {
        record_free(r);
        return rc;
    }
    if (signer)
        memcpy(signer, k->id, KEY_ID_LEN + 1);
    *out = r;
    return 0;
}

void record_free(Ferry__DeployRecord *r)
{
    if (r)
        ferry__deploy_record__free_unpacked(r, NULL);
}

void signed_record_free(Ferry__SignedRecord *sr)
{
    if (sr)
        ferry__signed_record__free_unpacked(sr, NULL);
}
