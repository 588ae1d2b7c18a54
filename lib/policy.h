/* The governance policy (docs/governance.md): which keys hold which roles,
 * the channels, the environments (a host selector and the channel whose
 * rules apply there) and the rules per kind and channel. One YAML file,
 * signed by an admin key; parsed here with libyaml, file:line errors as in
 * ferry.yaml. Fixed-size so a copy can travel to a worker thread by value.
 *
 * What is signed is not the YAML alone: the policy names its keys by file,
 * so the digest covers the text and every key it names, in order. A party
 * that receives the text with different key files computes another digest
 * and the signature fails. */
#ifndef FERRY_LIB_POLICY_H
#define FERRY_LIB_POLICY_H

#include "hash.h"
#include "key.h"

#include <stddef.h>
#include <stdint.h>

#define POLICY_MAX_BYTES (256u << 10)
#define POLICY_KEYS_MAX 64
#define POLICY_CHANNELS_MAX 16
#define POLICY_ENVS_MAX 16
#define POLICY_RULES_MAX 32
#define POLICY_LIST_MAX 16
#define POLICY_NAME_MAX 64
#define POLICY_TEXT_MAX 128
#define POLICY_PATH_MAX 256
#define POLICY_SEL_MAX 512
#define POLICY_SIG_PURPOSE "ferry-policy-sig-v1"

enum policy_role {
    ROLE_ADMIN = 1u << 0,
    ROLE_PUBLISHER = 1u << 1,
    ROLE_APPROVER = 1u << 2,
    ROLE_PRIVACY = 1u << 3,
    ROLE_OPERATOR = 1u << 4,
};

enum policy_kind { KIND_APP = 1u << 0, KIND_MODEL = 1u << 1, KIND_NOTEBOOK = 1u << 2 };

struct policy_key {
    char name[POLICY_NAME_MAX + 1];
    char path[POLICY_PATH_MAX];
    struct key_public pub;
    unsigned roles;
    unsigned kinds; /* 0: every kind */
    int revoked;    /* by a signed revocation (policy_revoke) */
};

struct policy_env {
    char name[POLICY_NAME_MAX + 1];
    char selector[POLICY_SEL_MAX]; /* canonical "k=v,k=v" */
    char channel[POLICY_NAME_MAX + 1];
};

enum policy_op { OP_GE, OP_GT, OP_LE, OP_LT, OP_EQ };

struct policy_metric {
    char name[POLICY_NAME_MAX + 1];
    enum policy_op op;
    double threshold;
    char text[32]; /* as written: ">= 0.9" */
};

struct policy_rule {
    char kind[16];
    char channel[POLICY_NAME_MAX + 1];
    unsigned approvals;
    int privacy_review;
    size_t n_card;
    char card[POLICY_LIST_MAX][POLICY_TEXT_MAX];
    size_t n_metrics;
    struct policy_metric metrics[POLICY_LIST_MAX];
    char builder[POLICY_PATH_MAX]; /* provenance.builder, or "" */
};

struct policy {
    size_t n_keys, n_channels, n_envs, n_rules;
    struct policy_key keys[POLICY_KEYS_MAX];
    char channels[POLICY_CHANNELS_MAX][POLICY_NAME_MAX + 1];
    struct policy_env envs[POLICY_ENVS_MAX];
    struct policy_rule rules[POLICY_RULES_MAX];
    struct digest digest; /* what the admin signs */
};

/* Finds the public key a policy names by path (relative to the policy
 * file); 0 or a negative code with the detail set. */
typedef int (*policy_pub_fn)(void *arg, const char *path, struct key_public *out);

/* Parse text (display names the file in messages). Unknown keys, missing
 * required keys, a channel or role not declared: FERRY_E_SPEC with
 * "FILE:LINE: key 'PATH': reason". */
int policy_parse(const char *display, const char *text, size_t len, policy_pub_fn pub,
                 void *arg, struct policy *out);
/* Read path and parse it, public keys read relative to its folder. *text
 * (may be NULL) receives the bytes (malloc'd). */
int policy_load_file(const char *path, struct policy *out, uint8_t **text, size_t *len);

/* A policy as a registry serves it: the text and each key file's line by
 * the path the text names it with. */
struct policy_served_key {
    const char *path, *text;
};
int policy_parse_served(const char *text, size_t len, const struct policy_served_key *keys,
                        size_t n, struct policy *out);

/* The .sig text for p: "ferry-policy-sig-v1 KEYID HEX\n". */
int policy_sign(const struct policy *p, const struct key_secret *k, char *out, size_t cap);
/* 0 when sig is a valid signature of p by a key p names with role admin
 * and, when anchors is not NULL, one of anchors. signer (may be NULL)
 * receives its key id. FERRY_E_UNTRUSTED / FERRY_E_SIGNATURE name the key. */
int policy_verify(const struct policy *p, const char *sig, const struct trust *anchors,
                  char signer[KEY_ID_LEN + 1]);

/* A signed revocation (SignedGov fields): its body is a GovBody with action
 * revoke, signed by an admin of p that (when anchors is not NULL) is one of
 * anchors. On 0, key_id is the key it revokes. */
int policy_revocation_verify(const struct policy *p, const struct trust *anchors,
                             const uint8_t *body, size_t blen, const char *signer,
                             const uint8_t *sig, size_t siglen, char key_id[KEY_ID_LEN + 1]);

const struct policy_key *policy_key_find(const struct policy *p, const char *key_id);
/* Marks key_id revoked; FERRY_E_NOTFOUND when the policy does not name it. */
int policy_revoke(struct policy *p, const char *key_id);
/* 0 when key_id is named, not revoked, holds role and (for kind, may be
 * NULL) may act on that kind; else FERRY_E_UNTRUSTED naming what. */
int policy_allows(const struct policy *p, const char *key_id, unsigned role, const char *kind,
                  const char *what);
/* The channel whose rules apply on a host with these canonical labels,
 * or NULL when it is in no environment. */
const char *policy_channel_for_labels(const struct policy *p, const char *labels);
int policy_has_channel(const struct policy *p, const char *channel);
const char *policy_role_name(unsigned role);
unsigned policy_kind_bit(const char *kind);

/* Every key id named (for a trust set). */
int policy_trust(const struct policy *p, struct trust *out);

#endif
