/* The manifest and its signature list, as the registry (Offer), the agent
 * and the CLI (pull, import) take them: decode the list, verify the manifest
 * bytes against a trust set, decode and validate the manifest.
 *
 * Input: a 4-byte little-endian length N, then N bytes of encoded manifest,
 * then an encoded SignatureList. Each input is also checked once more with
 * the manifest re-signed by the fixed publisher key, so a mutated manifest
 * still gets past the signature, as a malicious but trusted publisher's
 * would. */
#include "error.h"
#include "fuzz_common.h"
#include "manifest.h"
#include "spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct trust trust;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_trust(&trust);
    return 0;
}

static void check_manifest(const uint8_t *mbytes, size_t mlen)
{
    Ferry__Manifest *m = NULL;
    if (manifest_decode(mbytes, mlen, &m) < 0)
        return;
    (void)manifest_total_bytes(m);
    /* No round-trip check here: ferry never re-encodes a manifest (the
     * signed bytes are stored and served as they are), and protobuf-c does
     * not re-encode every message it accepts (an over-long encoding of
     * field number 0 is skipped as unknown on decode and written back as
     * a plain 0 tag, which it then refuses). */
    /* The spec text travels inside the manifest and is parsed on the far side. */
    if (m->spec_yaml.len > 0) {
        Ferry__Spec *spec = NULL;
        if (spec_parse("manifest/ferry.yaml", (const char *)m->spec_yaml.data, m->spec_yaml.len,
                       &spec) == 0)
            spec_free(spec);
    }
    manifest_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    size_t n = (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 |
               (size_t)data[3] << 24;
    if (n > size - 4)
        n = size - 4;
    /* Own copies, exactly sized, so a read past either part is caught. */
    uint8_t *mbytes = malloc(n ? n : 1), *sbytes = malloc(size - 4 - n ? size - 4 - n : 1);
    if (!mbytes || !sbytes)
        abort();
    memcpy(mbytes, data + 4, n);
    memcpy(sbytes, data + 4 + n, size - 4 - n);
    size_t slen = size - 4 - n;

    char signer[KEY_ID_LEN + 1];
    Ferry__SignatureList *sigs = NULL;
    if (signatures_decode(sbytes, slen, &sigs) == 0) {
        if (manifest_verify(mbytes, n, sigs, &trust, signer) == 0)
            check_manifest(mbytes, n);
        uint8_t *enc = NULL;
        size_t elen = 0;
        if (signatures_encode(sigs, &enc, &elen) == 0) {
            Ferry__SignatureList *again = NULL;
            if (signatures_decode(enc, elen, &again) < 0) {
                fprintf(stderr, "re-encoded signature list does not decode: %s\n", err_detail());
                abort();
            }
            signatures_free(again);
            free(enc);
        }
        signatures_free(sigs);
    }

    Ferry__SignatureList *ours = fuzz_sign_manifest(mbytes, n);
    if (!ours)
        abort();
    if (manifest_verify(mbytes, n, ours, &trust, signer) != 0) {
        fprintf(stderr, "a manifest signed by the trusted key does not verify: %s\n",
                err_detail());
        abort();
    }
    if (strcmp(signer, trust.keys[0].id) != 0)
        abort();
    check_manifest(mbytes, n);
    signatures_free(ours);
    free(mbytes);
    free(sbytes);
    return 0;
}
