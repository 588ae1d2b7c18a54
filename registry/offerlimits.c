#include "offerlimits.h"
#include "error.h"
#include "hash.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

int offer_limits_check(const Ferry__Manifest *m, uint64_t max_blob, uint64_t need,
                       uint64_t free_bytes)
{
    const char *name = m->spec && m->spec->name ? m->spec->name : "?";
    const char *version = m->spec && m->spec->version ? m->spec->version : "?";
    for (size_t i = 0; i < m->n_files; i++)
        if (m->files[i]->size > max_blob)
            return err_set(FERRY_E_LIMIT,
                           "publish refused: %s@%s: %s is %llu bytes, over this registry's "
                           "--max-blob-size of %llu",
                           name, version, m->files[i]->path,
                           (unsigned long long)m->files[i]->size, (unsigned long long)max_blob);
    if (need > free_bytes)
        return err_set(FERRY_E_LIMIT,
                       "publish refused: %s@%s needs %llu bytes of storage, the registry has "
                       "%llu free",
                       name, version, (unsigned long long)need, (unsigned long long)free_bytes);
    return 0;
}

int offer_limits_check_store(struct store *st, const Ferry__Manifest *m, uint64_t max_blob)
{
    /* Sizes first: a claim over the limit is refused without a look at the
     * disk. */
    int rc = offer_limits_check(m, max_blob, 0, 0);
    if (rc < 0)
        return rc;
    struct digest *seen = calloc(m->n_files ? m->n_files : 1, sizeof *seen);
    if (!seen)
        return -ENOMEM;
    size_t n_seen = 0;
    uint64_t need = 0;
    for (size_t i = 0; i < m->n_files; i++) {
        struct digest d;
        if (digest_from_bytes(m->files[i]->digest.data, m->files[i]->digest.len, &d) < 0)
            continue;
        size_t j = 0;
        while (j < n_seen && !digest_equal(&seen[j], &d))
            j++;
        if (j < n_seen)
            continue;
        seen[n_seen++] = d;
        uint64_t have = 0, size = m->files[i]->size;
        if (store_has(st, &d, &have) == 0 && have == size)
            continue;
        uint64_t part = store_partial_size(st, &d);
        uint64_t add = part < size ? size - part : 0;
        need = need > UINT64_MAX - add ? UINT64_MAX : need + add;
    }
    free(seen);
    struct statvfs vfs;
    if (statvfs(st->root, &vfs) < 0)
        return err_set(-errno, "%s: %s", st->root, strerror(errno));
    uint64_t free_bytes = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
    return offer_limits_check(m, max_blob, need, free_bytes);
}
