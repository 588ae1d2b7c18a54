/* Shared by the fuzz targets and the seed generator: fixed test keys, so a
 * seed signed by the generator verifies in the target, and scratch
 * directories that are removed again. Test code only; never linked into
 * ferry's programs. */
#ifndef FERRY_TESTS_FUZZ_COMMON_H
#define FERRY_TESTS_FUZZ_COMMON_H

#include "key.h"
#include "manifest.pb-c.h"

#include <stddef.h>
#include <stdint.h>

/* Publisher (operator) key and host key, each derived from a fixed seed
 * with crypto_sign_seed_keypair: the same on every run and every machine. */
void fuzz_publisher_key(struct key_secret *out);
void fuzz_host_key(struct key_secret *out);
/* A trust set holding only the publisher key (trust_fini frees it). */
void fuzz_trust(struct trust *out);

/* The host the fuzz targets act as, with its labels. */
#define FUZZ_HOST "fuzz-host"
#define FUZZ_HOST_LABELS "env=prod,zone=a"

/* A fresh directory under $FERRY_FUZZ_TMP, else /dev/shm (tmpfs keeps the
 * registry's fsyncs cheap), else /tmp. Exits on failure: a harness that
 * cannot make a scratch dir has nothing to test. */
void fuzz_scratch_dir(const char *tag, char *out, size_t cap);

/* A new one-signature list by the publisher key over buf (free with
 * signatures_free), or NULL when out of memory. */
Ferry__SignatureList *fuzz_sign_manifest(const uint8_t *buf, size_t len);

#endif
