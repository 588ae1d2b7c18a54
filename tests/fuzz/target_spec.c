/* ferry.yaml, as `ferry publish` parses it from an author's tree and the
 * far side parses the copy carried in a manifest. Input: the YAML text. */
#include "spec.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exactly sized copy without a terminating NUL: spec_parse takes a
     * length, so reading past it is a bug ASan reports. */
    char *text = malloc(size ? size : 1);
    if (!text)
        abort();
    memcpy(text, data, size);
    Ferry__Spec *spec = NULL;
    if (spec_parse("fuzz/ferry.yaml", text, size, &spec) == 0) {
        /* What parses must carry a valid name and version. */
        if (!spec_name_ok(spec->name) || !spec_version_ok(spec->version))
            abort();
        spec_free(spec);
    }
    free(text);
    return 0;
}
