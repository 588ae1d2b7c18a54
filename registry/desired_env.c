/* The registry's own key and the envelope each host's desired state goes
 * out in (lib/envelope.h; docs/security.md, "Desired-state envelopes"). */
#include "registry_int.h"
#include "clock.h"
#include "envelope.h"
#include "error.h"
#include "fsutil.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int registry_key_load(const char *data_dir, struct key_secret *out, int *created)
{
    char path[4096];
    *created = 0;
    /* As the blob store would make it (parents too), before the key goes in. */
    int mrc = fs_mkdir_p(data_dir, 0755);
    if (mrc < 0)
        return err_set(mrc, "%s: %s", data_dir, strerror(-mrc));
    snprintf(path, sizeof path, "%s/registry.key", data_dir);
    if (access(path, F_OK) < 0 && errno == ENOENT) {
        int rc = key_generate(data_dir, "registry", NULL);
        if (rc < 0)
            return rc;
        *created = 1;
    }
    return key_load_secret(path, out);
}

int desired_envelope_attach(struct registry *r, const char *host, struct desired *d,
                            Ferry__Wire__DesiredState *ds, struct scratch *s)
{
    struct digest content;
    envelope_content_digest(d->signed_records, d->n, d->pins, d->n_pins, &content);
    struct db_envelope env;
    int rc = db_envelope_current(&r->db, host, &content, (int64_t)clock_unix_ms(),
                                 r->desired_ttl_ms, &env);
    if (rc < 0)
        return rc;
    envelope_free(s->envelope);
    s->envelope = NULL;
    rc = envelope_sign(host, env.version, (uint64_t)env.issued_ms, (uint64_t)env.expires_ms,
                       d->signed_records, d->records, d->n, d->pins, d->n_pins, &r->self_key,
                       &s->envelope);
    if (rc < 0)
        return rc;
    ds->envelope = s->envelope;
    /* The same records in a refreshed envelope are news to a waiting host. */
    d->serial ^= env.version * 0x9E3779B97F4A7C15ULL;
    if (d->serial == 0)
        d->serial = 1;
    ds->serial = d->serial;
    return 0;
}
