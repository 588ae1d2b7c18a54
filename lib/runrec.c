/* Run record checks (runrec.h). */
#include "runrec.h"
#include "error.h"
#include "hash.h"
#include "spec.h"

#include <string.h>

int runrec_id_ok(const char *id)
{
    if (!id || strlen(id) != RUN_ID_LEN)
        return 0;
    for (const char *p = id; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

int runrec_status_ok(const char *status)
{
    return status && (strcmp(status, "running") == 0 || strcmp(status, "succeeded") == 0 ||
                      strcmp(status, "failed") == 0);
}

/* One line of printable text, at most max bytes. */
static int line_ok(const char *s, size_t max)
{
    if (!s)
        return 1;
    size_t n = strlen(s);
    if (n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

int runrec_check(const char *what, const Ferry__Wire__RunRecord *r)
{
    if (!r)
        return err_set(FERRY_E_INVALID, "%s: no run record", what);
    if (!runrec_id_ok(r->id))
        return err_set(FERRY_E_INVALID, "%s: the run id must be %d lowercase hex characters", what,
                       RUN_ID_LEN);
    if (!r->name || !spec_name_ok(r->name))
        return err_set(FERRY_E_INVALID, "%s: run %s: bad workload name", what, r->id);
    if (!r->version || !spec_version_ok(r->version))
        return err_set(FERRY_E_INVALID, "%s: run %s: bad version", what, r->id);
    if (!runrec_status_ok(r->status))
        return err_set(FERRY_E_INVALID, "%s: run %s: status must be running, succeeded or failed",
                       what, r->id);
    if (!line_ok(r->error, RUN_ERROR_MAX))
        return err_set(FERRY_E_INVALID, "%s: run %s: the error must be one line of at most %u bytes",
                       what, r->id, RUN_ERROR_MAX);
    if (!line_ok(r->note, RUN_NOTE_MAX))
        return err_set(FERRY_E_INVALID, "%s: run %s: the note must be one line of at most %u bytes",
                       what, r->id, RUN_NOTE_MAX);
    if (r->notebook_digest.len != 0 && r->notebook_digest.len != DIGEST_LEN)
        return err_set(FERRY_E_INVALID, "%s: run %s: the notebook digest must be %d bytes", what,
                       r->id, DIGEST_LEN);
    if (r->notebook_size > RUN_NOTEBOOK_MAX)
        return err_set(FERRY_E_LIMIT, "%s: run %s: notebook of %llu bytes, at most %u", what, r->id,
                       (unsigned long long)r->notebook_size, RUN_NOTEBOOK_MAX);
    return 0;
}
