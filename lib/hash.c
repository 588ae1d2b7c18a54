#include "hash.h"
#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_BUF (1u << 20)

void hasher_init(struct hasher *h)
{
    crypto_generichash_init(&h->st, NULL, 0, DIGEST_LEN);
}

void hasher_update(struct hasher *h, const void *data, size_t len)
{
    crypto_generichash_update(&h->st, data, len);
}

void hasher_final(struct hasher *h, struct digest *out)
{
    crypto_generichash_final(&h->st, out->b, DIGEST_LEN);
}

void digest_of(const void *data, size_t len, struct digest *out)
{
    crypto_generichash(out->b, DIGEST_LEN, data, len, NULL, 0);
}

int hasher_update_fd(struct hasher *h, int fd, uint64_t len)
{
    uint8_t *buf = malloc(READ_BUF);
    if (!buf)
        return -ENOMEM;
    uint64_t done = 0;
    int rc = 0;
    while (done < len) {
        size_t want = len - done < READ_BUF ? (size_t)(len - done) : READ_BUF;
        ssize_t n = pread(fd, buf, want, (off_t)done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        if (n == 0) {
            rc = -EIO; /* file shorter than promised */
            break;
        }
        hasher_update(h, buf, (size_t)n);
        done += (uint64_t)n;
    }
    free(buf);
    return rc;
}

int digest_file(const char *path, struct digest *out, uint64_t *size_out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return err_set(-errno, "%s: %s", path, strerror(errno));
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    uint8_t *buf = malloc(READ_BUF);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    struct hasher h;
    hasher_init(&h);
    uint64_t total = 0;
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf, READ_BUF);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = err_set(-errno, "%s: %s", path, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        hasher_update(&h, buf, (size_t)n);
        total += (uint64_t)n;
    }
    free(buf);
    close(fd);
    if (rc == 0) {
        hasher_final(&h, out);
        if (size_out)
            *size_out = total;
    }
    return rc;
}

void digest_hex(const struct digest *d, char out[DIGEST_HEX_LEN + 1])
{
    sodium_bin2hex(out, DIGEST_HEX_LEN + 1, d->b, DIGEST_LEN);
}

int digest_parse(const char *hex, struct digest *out)
{
    size_t bin_len = 0;
    struct digest tmp;
    if (strlen(hex) != DIGEST_HEX_LEN)
        return FERRY_E_INVALID;
    for (const char *p = hex; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return FERRY_E_INVALID;
    if (sodium_hex2bin(tmp.b, DIGEST_LEN, hex, DIGEST_HEX_LEN, NULL, &bin_len, NULL) != 0 ||
        bin_len != DIGEST_LEN)
        return FERRY_E_INVALID;
    *out = tmp;
    return 0;
}

int digest_from_bytes(const uint8_t *b, size_t len, struct digest *out)
{
    if (len != DIGEST_LEN)
        return FERRY_E_INVALID;
    memcpy(out->b, b, DIGEST_LEN);
    return 0;
}

int digest_equal(const struct digest *a, const struct digest *b)
{
    return sodium_memcmp(a->b, b->b, DIGEST_LEN) == 0;
}
