#include "tree.h"
#include "artifact.h"
#include "artifact_internal.h" /* artifact_fetch_manifest: the manifest alone */
#include "error.h"
#include "fsutil.h"
#include "govcheck.h"
#include "pathsafe.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- verifying a tree ------------------------------------------------------ */

struct walk {
    const Ferry__Manifest *m;
    unsigned char *seen; /* per manifest file */
};

static int differs(const char *rel, const char *how)
{
    return err_set(FERRY_E_DIGEST, "tree differs from its manifest: '%.300s' %s", rel, how);
}

/* Index of the manifest file at rel, or -1 (paths are sorted). */
static long find_file(const Ferry__Manifest *m, const char *rel)
{
    size_t lo = 0, hi = m->n_files;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(m->files[mid]->path, rel);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* 1 when some manifest path lies under the folder rel. */
static int is_folder_of_some(const Ferry__Manifest *m, const char *rel)
{
    char prefix[PATH_REL_MAX + 2];
    size_t plen = (size_t)snprintf(prefix, sizeof prefix, "%s/", rel);
    if (plen >= sizeof prefix)
        return 0;
    size_t lo = 0, hi = m->n_files;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(m->files[mid]->path, prefix) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < m->n_files && strncmp(m->files[lo]->path, prefix, plen) == 0;
}

/* fd's content is want bytes with digest d, and its mode is mode. */
static int check_file(int fd, const char *rel, uint64_t size, const uint8_t *digest,
                      const uint8_t *bytes, unsigned mode)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return err_set(-errno, "%s: %s", rel, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return differs(rel, "is not a regular file");
    if ((unsigned)(st.st_mode & 07777) != mode) {
        char how[64];
        snprintf(how, sizeof how, "has mode %04o, not %04o", (unsigned)(st.st_mode & 07777), mode);
        return differs(rel, how);
    }
    if ((uint64_t)st.st_size != size) {
        char how[96];
        snprintf(how, sizeof how, "is %llu bytes, not %llu", (unsigned long long)st.st_size,
                 (unsigned long long)size);
        return differs(rel, how);
    }
    struct hasher h;
    hasher_init(&h);
    int rc = hasher_update_fd(&h, fd, size);
    if (rc < 0)
        return err_set(rc, "%s: %s", rel, strerror(-rc));
    struct digest got, want;
    hasher_final(&h, &got);
    if (bytes)
        digest_of(bytes, size, &want);
    else
        memcpy(want.b, digest, DIGEST_LEN);
    if (!digest_equal(&got, &want))
        return differs(rel, "does not match its digest");
    return 0;
}

static int walk_dir(struct walk *w, int dfd, const char *rel, int depth)
{
    if (depth > PATH_DEPTH_MAX)
        return differs(rel, "is too deep");
    int dup_fd = dup(dfd);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (!d) {
        if (dup_fd >= 0)
            close(dup_fd);
        return err_set(-errno, "%s: %s", rel[0] ? rel : ".", strerror(errno));
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char child[PATH_REL_MAX + 300];
        if (snprintf(child, sizeof child, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name) >=
            (int)sizeof child) {
            rc = differs(rel, "holds a name too long for any manifest");
            break;
        }
        struct stat st;
        if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            rc = err_set(-errno, "%s: %s", child, strerror(errno));
            break;
        }
        int top = rel[0] == '\0';
        if (top && strcmp(e->d_name, PATH_AGENT_DIR) == 0) {
            /* The agent's own folder (logs): not the workload's content, but
             * it must not be a way out of the tree either. */
            if (!S_ISDIR(st.st_mode))
                rc = differs(child, "is not the agent's folder");
            continue;
        }
        if (S_ISLNK(st.st_mode)) {
            rc = differs(child, "is a symbolic link");
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            if (!is_folder_of_some(w->m, child)) {
                rc = differs(child, "is a folder the manifest does not have");
                break;
            }
            int sub = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                rc = err_set(-errno, "%s: %s", child, strerror(errno));
                break;
            }
            rc = walk_dir(w, sub, child, depth + 1);
            close(sub);
            continue;
        }
        const Ferry__Manifest *m = w->m;
        int spec = top && strcmp(e->d_name, MANIFEST_SPEC_FILE) == 0;
        long idx = spec ? -1 : find_file(m, child);
        if (!spec && idx < 0) {
            rc = differs(child, S_ISREG(st.st_mode) ? "is a file the manifest does not have"
                                                    : "is not a regular file");
            break;
        }
        if (!S_ISREG(st.st_mode)) {
            rc = differs(child, "is not a regular file");
            break;
        }
        /* O_NONBLOCK: should it have become a FIFO since fstatat, open does
         * not hang; check_file's fstat then refuses it. */
        int fd = openat(dfd, e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) {
            rc = err_set(-errno, "%s: %s", child, strerror(errno));
            break;
        }
        if (spec) {
            rc = check_file(fd, child, m->spec_yaml.len, NULL, m->spec_yaml.data,
                            m->spec_yaml_executable ? 0755 : 0644);
        } else {
            const Ferry__File *f = m->files[idx];
            rc = check_file(fd, child, f->size, f->digest.data, NULL, f->executable ? 0755 : 0644);
            w->seen[idx] = 1;
        }
        close(fd);
    }
    closedir(d);
    return rc;
}

int tree_verify(const char *dir, const Ferry__Manifest *m)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return err_set(errno == ENOENT ? FERRY_E_NOTFOUND : -errno, "%s: %s", dir,
                       strerror(errno));
    struct walk w = {m, calloc(m->n_files ? m->n_files : 1, 1)};
    if (!w.seen) {
        close(dfd);
        return -ENOMEM;
    }
    int rc = walk_dir(&w, dfd, "", 0);
    close(dfd);
    for (size_t i = 0; rc == 0 && i < m->n_files; i++)
        if (!w.seen[i])
            rc = differs(m->files[i]->path, "is missing");
    if (rc == 0) {
        /* ferry.yaml is written by materialization, so it must be there. */
        char path[4200];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, MANIFEST_SPEC_FILE);
        if (lstat(path, &st) < 0)
            rc = differs(MANIFEST_SPEC_FILE, "is missing");
    }
    free(w.seen);
    return rc;
}

/* ---- the manifest ---------------------------------------------------------- */

int tree_manifest_check(const uint8_t *mbytes, size_t mlen, const uint8_t *sigs, size_t slen,
                        const struct trust *t, const struct digest *pinned, const char *name,
                        const char *version, Ferry__Manifest **out)
{
    struct digest d;
    digest_of(mbytes, mlen, &d);
    if (!digest_equal(&d, pinned)) {
        char hex[DIGEST_HEX_LEN + 1];
        digest_hex(&d, hex);
        return err_set(FERRY_E_DIGEST, "%s@%s: manifest digest %.16s is not the one deployed",
                       name, version, hex);
    }
    Ferry__SignatureList *sl = NULL;
    int rc = signatures_decode(sigs, slen, &sl);
    if (rc == 0)
        rc = manifest_verify(mbytes, mlen, sl, t, NULL);
    signatures_free(sl);
    if (rc < 0) {
        char why[900];
        snprintf(why, sizeof why, "%s", err_detail());
        return err_set(rc, "%s@%s: %s", name, version, why);
    }
    Ferry__Manifest *m = NULL;
    if ((rc = manifest_decode(mbytes, mlen, &m)) < 0)
        return rc;
    if (strcmp(m->spec->name, name) != 0 || strcmp(m->spec->version, version) != 0) {
        rc = err_set(FERRY_E_INVALID, "%s@%s: the manifest is that of %s@%s", name, version,
                     m->spec->name, m->spec->version);
        manifest_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

/* ---- the job ----------------------------------------------------------------- */

/* The manifest from the registry, checked; its bytes kept in j. */
static int fetch_manifest(struct tree_job *j, struct client *c)
{
    struct fetched f;
    int rc = artifact_fetch_manifest(c, j->name, j->version, j->trust, &f);
    if (rc < 0)
        return rc;
    uint8_t *sigs = NULL;
    size_t slen = 0;
    rc = signatures_encode(f.resp->manifest->signatures, &sigs, &slen);
    uint8_t *mb = rc == 0 ? malloc(f.mlen ? f.mlen : 1) : NULL;
    if (rc == 0 && !mb)
        rc = -ENOMEM;
    if (rc == 0) {
        memcpy(mb, f.mbytes, f.mlen);
        j->mbytes = mb;
        j->mlen = f.mlen;
        j->sigs = sigs;
        j->slen = slen;
        j->fetched = 1;
    } else {
        free(sigs);
    }
    fetched_free(&f);
    return rc;
}

/* Governance: the policy (from the registry, else as last verified) and,
 * when the registry answers, the signature list as it is now, since
 * approvals are added after publishing. */
static int gov_prepare(struct tree_job *j, struct client *cl, int *have_client,
                       struct policy **pol)
{
    if (!*have_client && client_open(cl, j->url) == 0)
        *have_client = 1;
    int rc = govcheck_policy(*have_client ? cl : NULL, j->admins, j->policy_cache, pol);
    if (rc < 0 || !*have_client || !j->mbytes)
        return rc;
    uint8_t *mb = j->mbytes, *sb = j->sigs;
    size_t ml = j->mlen, sl = j->slen;
    j->mbytes = j->sigs = NULL;
    if (fetch_manifest(j, cl) == 0) {
        free(mb);
        free(sb);
    } else {
        j->mbytes = mb, j->sigs = sb, j->mlen = ml, j->slen = sl;
    }
    err_clear();
    return 0;
}

void tree_job_run(struct tree_job *j)
{
    err_clear();
    struct client cl;
    struct policy *pol = NULL;
    int have_client = 0, rc = 0;
    if (j->admins)
        rc = gov_prepare(j, &cl, &have_client, &pol);
    if (rc == 0 && !j->mbytes) {
        if (have_client || (rc = client_open(&cl, j->url)) == 0) {
            have_client = 1;
            rc = fetch_manifest(j, &cl);
        }
    }
    if (rc == 0)
        rc = tree_manifest_check(j->mbytes, j->mlen, j->sigs, j->slen, j->trust, &j->digest,
                                 j->name, j->version, &j->m);
    /* Before a single blob is fetched: who deployed it (the agent's own
     * check of a revocation or a missing operator role, whatever the
     * registry let through), then everything but the card. */
    if (rc == 0 && pol && j->deployer[0]) {
        char what[200];
        snprintf(what, sizeof what, "deploy of %s@%s", j->name, j->version);
        rc = policy_allows(pol, j->deployer, ROLE_OPERATOR, NULL, what);
    }
    if (rc == 0 && pol)
        rc = govcheck_artifact(pol, j->labels, j->mbytes, j->mlen, j->sigs, j->slen, NULL);
    struct stat st;
    char parent[4096], base[1024], logs[4200], aside[4096 + 1100];
    fs_split(j->dir, parent, sizeof parent, base, sizeof base);
    snprintf(logs, sizeof logs, "%s/%s", j->dir, PATH_AGENT_DIR);
    snprintf(aside, sizeof aside, "%s/.%s.ferry-logs", parent, base);
    if (rc == 0 && lstat(j->dir, &st) == 0) {
        rc = tree_verify(j->dir, j->m);
        if (rc == 0)
            goto done;
        /* Whatever is there is not what was signed: it goes, and the
         * version is materialized again from verified bytes. The agent's
         * own folder (the workload's logs) is kept aside meanwhile. */
        snprintf(j->note, sizeof j->note, "%s", err_message(rc));
        if (lstat(logs, &st) == 0 && S_ISDIR(st.st_mode)) {
            fs_rm_rf(aside);
            rename(logs, aside);
        }
        rc = fs_rm_rf(j->dir);
        if (rc < 0)
            rc = err_set(rc, "%s: %s", j->dir, strerror(-rc));
    }
    if (rc == 0) {
        fs_mkdir_p(parent, 0755);
        /* Without a registry, all of it may still be in the cache. */
        if (!have_client && client_open(&cl, j->url) == 0)
            have_client = 1;
        err_clear();
        struct pull_options po = {.cache_dir = j->cache, .expect_digest = &j->digest};
        struct transfer_result res;
        rc = artifact_materialize(have_client ? &cl : NULL, j->m, &j->digest, j->dir, &po, &res);
        if (rc == 0 && lstat(aside, &st) == 0 && rename(aside, logs) < 0)
            fs_rm_rf(aside);
        if (rc < 0 && strncmp(err_detail(), j->name, strlen(j->name)) != 0) {
            /* The reason as `ferry pull` gives it. */
            char why[900];
            snprintf(why, sizeof why, "%s", err_message(rc));
            err_set(rc, "pull %s@%s: %s", j->name, j->version, why);
        }
    }
done:
    /* The card is read from the verified tree, before anything starts. */
    if (rc == 0 && pol)
        rc = govcheck_artifact(pol, j->labels, j->mbytes, j->mlen, j->sigs, j->slen, j->dir);
    free(pol);
    if (have_client)
        client_close(&cl);
    j->rc = rc;
    if (rc < 0)
        snprintf(j->error, sizeof j->error, "%s", err_message(rc));
}

void tree_job_free(struct tree_job *j)
{
    if (!j)
        return;
    free(j->mbytes);
    free(j->sigs);
    manifest_free(j->m);
    free(j);
}
