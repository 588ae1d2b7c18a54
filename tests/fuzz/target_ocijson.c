/* The JSON of an OCI image as `ferry publish` reads it from an author's
 * image (lib/ocijson.c): index.json, the image manifest, the config and
 * docker save's manifest.json. Input: one byte picking the reader (mod 4),
 * then the document. */
#include "ocijson.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* An exactly sized copy: the readers take a length, so reading past it
     * is a bug ASan reports. */
    size_t len = size - 1;
    uint8_t *doc = malloc(len ? len : 1);
    if (!doc)
        abort();
    memcpy(doc, data + 1, len);
    switch (data[0] % 4) {
    case 0: {
        struct oci_desc d;
        int nested = 0;
        if (oci_parse_index(doc, len, len % 2 ? "latest" : NULL, &d, &nested) == 0 &&
            !oci_digest_ok(d.digest))
            abort();
        break;
    }
    case 1: {
        struct oci_manifest m;
        if (oci_parse_manifest(doc, len, &m) == 0) {
            /* What parses names only checked digests. */
            if (!oci_digest_ok(m.config.digest) || m.n_layers > OCI_LAYERS_MAX)
                abort();
            for (size_t i = 0; i < m.n_layers; i++)
                if (!oci_digest_ok(m.layers[i].digest))
                    abort();
            oci_manifest_free(&m);
        }
        break;
    }
    case 2: {
        char(*ids)[OCI_DIGEST_MAX] = NULL;
        size_t n = len % 3;
        if (oci_parse_config(doc, len, n, &ids) == 0 && ids)
            for (size_t i = 0; i < n; i++)
                if (!oci_digest_ok(ids[i]))
                    abort();
        free(ids);
        break;
    }
    default: {
        struct oci_docker d;
        if (oci_parse_docker(doc, len, &d) == 0)
            oci_docker_free(&d);
        break;
    }
    }
    free(doc);
    return 0;
}
