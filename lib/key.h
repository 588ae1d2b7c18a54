/* Ed25519 keys. A secret key file is readable by its owner alone (checked on
 * every load, as ssh does); a public key is one line of text. A key id is
 * derived from the public key so it cannot be chosen independently of it. */
#ifndef FERRY_LIB_KEY_H
#define FERRY_LIB_KEY_H

#include <sodium.h>
#include <stddef.h>
#include <stdint.h>

#define KEY_ID_LEN 16 /* hex characters */
#define KEY_NAME_MAX 64

struct key_public {
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    char id[KEY_ID_LEN + 1];
    char name[KEY_NAME_MAX + 1];
};

struct key_secret {
    struct key_public pub;
    uint8_t sk[crypto_sign_SECRETKEYBYTES];
};

/* The set of keys a party trusts. Caller owns; trust_fini frees. */
struct trust {
    struct key_public *keys;
    size_t n;
};

void key_id_of(const uint8_t pk[crypto_sign_PUBLICKEYBYTES], char id[KEY_ID_LEN + 1]);

/* Writes DIR/NAME.key (0600, created exclusively) and DIR/NAME.pub. */
int key_generate(const char *dir, const char *name, struct key_public *out);
int key_load_secret(const char *path, struct key_secret *out);
int key_load_public(const char *path, struct key_public *out);
/* Writes k as a public key file at path (created exclusively, 0644). */
int key_write_public(const char *path, const struct key_public *k);
/* The text of a public key file (one line), e.g. as a registry serves it. */
int key_parse_public(const char *what, const char *line, struct key_public *out);
void key_secret_wipe(struct key_secret *k);

void trust_init(struct trust *t);
void trust_fini(struct trust *t);
int trust_add_file(struct trust *t, const char *path);
/* Adds each path of a colon-separated list. */
int trust_add_list(struct trust *t, const char *colon_list);
const struct key_public *trust_find(const struct trust *t, const char *id);

/* Detached Ed25519 over msg. */
void key_sign(const struct key_secret *k, const uint8_t *msg, size_t len,
              uint8_t sig[crypto_sign_BYTES]);
int key_verify(const uint8_t pk[crypto_sign_PUBLICKEYBYTES], const uint8_t *msg, size_t len,
               const uint8_t *sig, size_t sig_len);

#endif
