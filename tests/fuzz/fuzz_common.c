#include "fuzz_common.h"
#include "manifest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void key_from_seed(uint8_t fill, const char *name, struct key_secret *out)
{
    uint8_t seed[crypto_sign_SEEDBYTES];
    memset(out, 0, sizeof *out);
    memset(seed, fill, sizeof seed);
    if (sodium_init() < 0) {
        fputs("fuzz: sodium_init failed\n", stderr);
        abort();
    }
    crypto_sign_seed_keypair(out->pub.pk, out->sk, seed);
    key_id_of(out->pub.pk, out->pub.id);
    snprintf(out->pub.name, sizeof out->pub.name, "%s", name);
}

void fuzz_publisher_key(struct key_secret *out) { key_from_seed(0x46, "fuzz-publisher", out); }

void fuzz_host_key(struct key_secret *out) { key_from_seed(0x48, "fuzz-host", out); }

void fuzz_trust(struct trust *out)
{
    struct key_secret k;
    fuzz_publisher_key(&k);
    trust_init(out);
    out->keys = malloc(sizeof *out->keys);
    if (!out->keys)
        abort();
    out->keys[0] = k.pub;
    out->n = 1;
    key_secret_wipe(&k);
}

void fuzz_scratch_dir(const char *tag, char *out, size_t cap)
{
    const char *base = getenv("FERRY_FUZZ_TMP");
    struct stat st;
    if (!base || !*base)
        base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0
                   ? "/dev/shm"
                   : "/tmp";
    snprintf(out, cap, "%s/ferry-fuzz-%s.XXXXXX", base, tag);
    if (!mkdtemp(out)) {
        fprintf(stderr, "fuzz: %s: %s\n", out, strerror(errno));
        exit(1);
    }
}

Ferry__SignatureList *fuzz_sign_manifest(const uint8_t *buf, size_t len)
{
    struct key_secret k;
    Ferry__SignatureList *sigs = NULL;
    fuzz_publisher_key(&k);
    if (manifest_sign(buf, len, &k, &sigs) < 0)
        sigs = NULL;
    key_secret_wipe(&k);
    return sigs;
}
