#include "key.h"
#include "error.h"
#include "fsutil.h"
#include "hash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET_TAG "ferry-secret-ed25519"
#define PUBLIC_TAG "ferry-ed25519"
#define KEYFILE_MAX 1024

void key_id_of(const uint8_t pk[crypto_sign_PUBLICKEYBYTES], char id[KEY_ID_LEN + 1])
{
    struct digest d;
    digest_of(pk, crypto_sign_PUBLICKEYBYTES, &d);
    sodium_bin2hex(id, KEY_ID_LEN + 1, d.b, KEY_ID_LEN / 2);
}

static int name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > KEY_NAME_MAX)
        return 0;
    for (const char *p = name; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return name[0] != '.';
}

static int write_all(int fd, const char *s, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, s, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        s += n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_new_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return err_set(-errno, "%s: %s", path, strerror(errno));
    /* umask may have widened nothing but could narrow; set exactly. */
    int rc = fchmod(fd, mode) < 0 ? -errno : 0;
    if (rc == 0)
        rc = write_all(fd, text, strlen(text));
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    close(fd);
    if (rc < 0) {
        unlink(path);
        return err_set(rc, "%s: %s", path, strerror(-rc));
    }
    return 0;
}

int key_generate(const char *dir, const char *name, struct key_public *out)
{
    if (!name_ok(name))
        return err_set(FERRY_E_INVALID,
                       "key name '%s': use 1-64 letters, digits, '-', '_' or '.'", name);
    struct key_secret k;
    crypto_sign_keypair(k.pub.pk, k.sk);
    key_id_of(k.pub.pk, k.pub.id);
    snprintf(k.pub.name, sizeof k.pub.name, "%s", name);

    char b64s[sodium_base64_ENCODED_LEN(crypto_sign_SECRETKEYBYTES,
                                        sodium_base64_VARIANT_ORIGINAL)];
    char b64p[sodium_base64_ENCODED_LEN(crypto_sign_PUBLICKEYBYTES,
                                        sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(b64s, sizeof b64s, k.sk, sizeof k.sk, sodium_base64_VARIANT_ORIGINAL);
    sodium_bin2base64(b64p, sizeof b64p, k.pub.pk, sizeof k.pub.pk,
                      sodium_base64_VARIANT_ORIGINAL);

    char keypath[4096], pubpath[4096], text[512];
    snprintf(keypath, sizeof keypath, "%s/%s.key", dir, name);
    snprintf(pubpath, sizeof pubpath, "%s/%s.pub", dir, name);

    struct stat st;
    if (lstat(keypath, &st) == 0)
        return err_set(-EEXIST, "%s: already exists; refusing to overwrite a key", keypath);
    if (lstat(pubpath, &st) == 0)
        return err_set(-EEXIST, "%s: already exists; refusing to overwrite a key", pubpath);

    snprintf(text, sizeof text, "%s %s %s\n", SECRET_TAG, b64s, name);
    int rc = write_new_file(keypath, text, 0600);
    sodium_memzero(text, sizeof text);
    sodium_memzero(b64s, sizeof b64s);
    if (rc < 0) {
        key_secret_wipe(&k);
        return rc;
    }
    snprintf(text, sizeof text, "%s %s %s\n", PUBLIC_TAG, b64p, name);
    rc = write_new_file(pubpath, text, 0644);
    if (rc < 0) {
        unlink(keypath);
        key_secret_wipe(&k);
        return rc;
    }
    if (out)
        *out = k.pub;
    key_secret_wipe(&k);
    return 0;
}

/* Reads a small key file into buf (NUL-terminated). A FIFO or a device is
 * refused at once (fs_open_regular), never waited on. */
static int read_key_file(const char *path, char *buf, size_t cap, int secret)
{
    struct stat st;
    int fd = fs_open_regular(path, &st);
    if (fd == FERRY_E_INVALID)
        return FERRY_E_KEYFORMAT; /* not a regular file: the detail says which */
    if (fd < 0)
        return fd;
    if (secret && (st.st_mode & 077)) {
        close(fd);
        return err_set(FERRY_E_KEYPERM,
                       "%s: secret key is accessible by group or others (mode %03o); "
                       "run chmod 600 on it",
                       path, (unsigned)(st.st_mode & 0777));
    }
    if ((uint64_t)st.st_size >= cap) {
        close(fd);
        return err_set(FERRY_E_KEYFORMAT, "%s: not a ferry key file (over %zu bytes)", path,
                       cap - 1);
    }
    size_t n = 0;
    int rc = fs_read_fd(fd, path, cap - 1, (uint8_t *)buf, &n);
    close(fd);
    if (rc < 0)
        return rc;
    buf[n] = '\0';
    return 0;
}

/* Parses "TAG BASE64 [NAME]" into bin (exactly bin_len bytes) and name. */
static int parse_key_line(const char *path, char *text, const char *tag, uint8_t *bin,
                          size_t bin_len, char name[KEY_NAME_MAX + 1])
{
    char *save = NULL;
    char *t = strtok_r(text, " \t\r\n", &save);
    char *b64 = strtok_r(NULL, " \t\r\n", &save);
    char *nm = strtok_r(NULL, " \t\r\n", &save);
    size_t got = 0;
    if (!t || strcmp(t, tag) != 0 || !b64 ||
        sodium_base642bin(bin, bin_len, b64, strlen(b64), NULL, &got, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        got != bin_len)
        return err_set(FERRY_E_KEYFORMAT, "%s: not a ferry %s key", path,
                       strcmp(tag, SECRET_TAG) == 0 ? "secret" : "public");
    snprintf(name, KEY_NAME_MAX + 1, "%s", nm && name_ok(nm) ? nm : "");
    return 0;
}

int key_load_secret(const char *path, struct key_secret *out)
{
    char text[KEYFILE_MAX];
    struct key_secret k;
    int rc = read_key_file(path, text, sizeof text, 1);
    if (rc == 0)
        rc = parse_key_line(path, text, SECRET_TAG, k.sk, sizeof k.sk, k.pub.name);
    sodium_memzero(text, sizeof text);
    if (rc < 0)
        return rc;
    crypto_sign_ed25519_sk_to_pk(k.pub.pk, k.sk);
    key_id_of(k.pub.pk, k.pub.id);
    *out = k;
    key_secret_wipe(&k);
    return 0;
}

int key_load_public(const char *path, struct key_public *out)
{
    char text[KEYFILE_MAX];
    struct key_public k;
    int rc = read_key_file(path, text, sizeof text, 0);
    if (rc == 0)
        rc = parse_key_line(path, text, PUBLIC_TAG, k.pk, sizeof k.pk, k.name);
    if (rc < 0)
        return rc;
    key_id_of(k.pk, k.id);
    *out = k;
    return 0;
}

/* A public key line received over the wire (the governance policy's key
 * files, served by the registry); what names it in messages. */
int key_parse_public(const char *what, const char *line, struct key_public *out)
{
    char text[KEYFILE_MAX];
    if (strlen(line) >= sizeof text)
        return err_set(FERRY_E_KEYFORMAT, "%s: not a ferry public key", what);
    snprintf(text, sizeof text, "%s", line);
    struct key_public k;
    int rc = parse_key_line(what, text, PUBLIC_TAG, k.pk, sizeof k.pk, k.name);
    if (rc < 0)
        return rc;
    key_id_of(k.pk, k.id);
    *out = k;
    return 0;
}

void key_secret_wipe(struct key_secret *k) { sodium_memzero(k, sizeof *k); }

void trust_init(struct trust *t)
{
    t->keys = NULL;
    t->n = 0;
}

void trust_fini(struct trust *t)
{
    free(t->keys);
    trust_init(t);
}

int trust_add_file(struct trust *t, const char *path)
{
    struct key_public k;
    int rc = key_load_public(path, &k);
    if (rc < 0)
        return rc;
    if (trust_find(t, k.id))
        return 0;
    struct key_public *grown = realloc(t->keys, (t->n + 1) * sizeof *grown);
    if (!grown)
        return -ENOMEM;
    grown[t->n++] = k;
    t->keys = grown;
    return 0;
}

int trust_add_list(struct trust *t, const char *colon_list)
{
    char *copy = strdup(colon_list);
    if (!copy)
        return -ENOMEM;
    int rc = 0;
    char *save = NULL;
    for (char *p = strtok_r(copy, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
        if (*p == '\0')
            continue;
        rc = trust_add_file(t, p);
        if (rc < 0)
            break;
    }
    free(copy);
    return rc;
}

const struct key_public *trust_find(const struct trust *t, const char *id)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->keys[i].id, id) == 0)
            return &t->keys[i];
    return NULL;
}

void key_sign(const struct key_secret *k, const uint8_t *msg, size_t len,
              uint8_t sig[crypto_sign_BYTES])
{
    crypto_sign_detached(sig, NULL, msg, len, k->sk);
}

int key_verify(const uint8_t pk[crypto_sign_PUBLICKEYBYTES], const uint8_t *msg, size_t len,
               const uint8_t *sig, size_t sig_len)
{
    if (sig_len != crypto_sign_BYTES)
        return FERRY_E_SIGNATURE;
    return crypto_sign_verify_detached(sig, msg, len, pk) == 0 ? 0 : FERRY_E_SIGNATURE;
}

int key_write_public(const char *path, const struct key_public *k)
{
    char b64p[sodium_base64_ENCODED_LEN(crypto_sign_PUBLICKEYBYTES,
                                        sodium_base64_VARIANT_ORIGINAL)];
    char text[512];
    sodium_bin2base64(b64p, sizeof b64p, k->pk, sizeof k->pk, sodium_base64_VARIANT_ORIGINAL);
    snprintf(text, sizeof text, "%s %s %s\n", PUBLIC_TAG, b64p, k->name[0] ? k->name : "key");
    return write_new_file(path, text, 0644);
}
