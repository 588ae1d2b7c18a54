/* The tree of one version on this host, checked against its signed manifest
 * every time it is about to be started: a tree edited on disk never runs.
 *
 * tree_verify is the check. tree_job is the whole of getting a version ready
 * to start, run on the thread pool: the manifest (held locally, or fetched)
 * verified against the trusted keys and the digest the signed deploy record
 * pins, then the tree verified, or materialized afresh from the blob cache
 * and the registry when it is missing or differs. */
#ifndef FERRY_AGENT_TREE_H
#define FERRY_AGENT_TREE_H

#include "hash.h"
#include "key.h"
#include "manifest.h"

#include <stddef.h>
#include <stdint.h>

/* 0 when dir holds exactly what m says: every file (regular, same bytes,
 * mode 0755 or 0644 by its exec bit), ferry.yaml as the manifest carries it,
 * the folders on their paths, and nothing else but the agent's own .ferry/
 * folder. No symbolic link anywhere. Else FERRY_E_DIGEST with a detail
 * naming the first path that differs and how. */
int tree_verify(const char *dir, const Ferry__Manifest *m);

/* Check a manifest from local state or the registry: signed by a key in t,
 * its digest the one pinned, and of name@version. *out is decoded. */
int tree_manifest_check(const uint8_t *mbytes, size_t mlen, const uint8_t *sigs, size_t slen,
                        const struct trust *t, const struct digest *pinned, const char *name,
                        const char *version, Ferry__Manifest **out);

struct tree_job {
    /* in */
    char url[512];                     /* the registry, for what is not held */
    char name[72], version[72];
    char dir[4096], cache[4096];
    struct digest digest;              /* pinned by the signed record */
    const struct trust *trust;
    uint8_t *mbytes, *sigs;            /* the held manifest, or NULL: fetch it */
    size_t mlen, slen;
    /* Governance (govcheck.h): with admins, the policy is verified and its
     * rules for this host's environment checked before anything is
     * fetched, and the card once the tree is there. */
    const struct trust *admins;        /* --trust-admin, or NULL */
    char deployer[KEY_ID_LEN + 1];     /* who signed the deploy record; "" unknown */
    char labels[2048];                 /* this host's, canonical */
    char policy_cache[4200];
    /* out */
    Ferry__Manifest *m;                /* verified; the caller takes it */
    int fetched;                       /* mbytes/sigs came from the registry: keep them */
    char note[600];                    /* why the tree was materialized afresh, or "" */
    int rc;
    char error[1024];
};

/* Blocking: fills the out fields. Safe on a pool thread (touches no agent
 * state). */
void tree_job_run(struct tree_job *j);
/* Frees what the job still owns (mbytes, sigs, an untaken m) and j. */
void tree_job_free(struct tree_job *j);

#endif
