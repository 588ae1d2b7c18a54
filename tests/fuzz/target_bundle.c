/* The bundle reader, as `ferry import` runs it: the bytes are written to a
 * scratch file, extracted into a fresh staging dir with bundle_extract, and
 * what came out is read the way the import does before it uploads
 * anything: manifest.pb and signatures.pb decoded, the manifest verified
 * against a trust set and validated, each blob it names hashed and compared.
 * Both the file and the staging dir are removed after every input.
 *
 * Input: the bundle file (tar, optionally gzip or zstd compressed). */
#include "bundle.h"
#include "error.h"
#include "fsutil.h"
#include "fuzz_common.h"
#include "manifest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct trust trust;
static char scratch[4096];
static struct bundle_limits lim;

static void cleanup(void)
{
    fs_rm_rf(scratch);
    trust_fini(&trust);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_trust(&trust);
    fuzz_scratch_dir("bundle", scratch, sizeof scratch);
    atexit(cleanup);
    /* Small caps: a tiny compressed input can claim or expand to a lot,
     * and the fuzzer should spend its time in the reader, not on disk. */
    bundle_limits_default(&lim);
    lim.max_entries = 64;
    lim.max_total_bytes = 4u << 20;
    lim.max_entry_bytes = 4u << 20;
    return 0;
}

static void read_staging(const char *staging)
{
    char path[4200];
    uint8_t *mbytes = NULL, *sbytes = NULL;
    size_t mlen = 0, slen = 0;
    Ferry__SignatureList *sigs = NULL;
    Ferry__Manifest *m = NULL;

    snprintf(path, sizeof path, "%s/manifest.pb", staging);
    int rc = fs_read_file(path, MANIFEST_MAX_BYTES, &mbytes, &mlen);
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/signatures.pb", staging);
        rc = fs_read_file(path, 1u << 20, &sbytes, &slen);
    }
    if (rc == 0 && signatures_decode(sbytes, slen, &sigs) == 0)
        (void)manifest_verify(mbytes, mlen, sigs, &trust, NULL);
    /* Go on whatever the signature said: an import without --trust does,
     * and the decoder must hold either way. */
    if (rc == 0 && manifest_decode(mbytes, mlen, &m) == 0) {
        for (size_t i = 0; i < m->n_files; i++) {
            struct digest want, got;
            char hex[DIGEST_HEX_LEN + 1];
            uint64_t size = 0;
            digest_from_bytes(m->files[i]->digest.data, m->files[i]->digest.len, &want);
            digest_hex(&want, hex);
            snprintf(path, sizeof path, "%s/blobs/%s", staging, hex);
            if (digest_file(path, &got, &size) == 0)
                (void)(digest_equal(&want, &got) && size == m->files[i]->size);
        }
    }
    manifest_free(m);
    signatures_free(sigs);
    free(mbytes);
    free(sbytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char file[4200], staging[4200];
    snprintf(file, sizeof file, "%s/in.bundle", scratch);
    snprintf(staging, sizeof staging, "%s/staging", scratch);
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || fs_write_all(fd, data, size) < 0 || close(fd) < 0) {
        fprintf(stderr, "fuzz_bundle: %s: %s\n", file, strerror(errno));
        abort();
    }
    if (mkdir(staging, 0700) < 0) {
        fprintf(stderr, "fuzz_bundle: %s: %s\n", staging, strerror(errno));
        abort();
    }
    if (bundle_extract(file, staging, &lim) == 0)
        read_staging(staging);
    /* Nothing may land outside the staging dir, whatever the archive says:
     * once both are removed the scratch dir is empty again. */
    if (fs_rm_rf(staging) < 0 || unlink(file) < 0)
        abort();
    DIR *d = opendir(scratch);
    if (!d)
        abort();
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            fprintf(stderr, "fuzz_bundle: '%s' was written outside the staging dir\n",
                    e->d_name);
            abort();
        }
    closedir(d);
    return 0;
}
