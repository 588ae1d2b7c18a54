#include "store.h"
#include "error.h"
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* How long a chunk that arrived early waits for the ones before it. */
#define STORE_ORDER_WAIT_S 3
#define STORE_DIRECT_ALIGN 4096
#define STORE_BOUNCE_BYTES (4u << 20)

struct store_upload {
    struct digest digest;
    uint64_t received;
    struct hasher hash;
    struct store_upload *next;
};

int store_open(struct store *s, const char *root)
{
    char path[4096];
    if (snprintf(s->root, sizeof s->root, "%s", root) >= (int)sizeof s->root)
        return err_set(-ENAMETOOLONG, "%s: path too long", root);
    int rc;
    snprintf(path, sizeof path, "%s/blobs", root);
    if ((rc = fs_mkdir_p(path, 0755)) < 0)
        return err_set(rc, "%s: %s", path, strerror(-rc));
    snprintf(path, sizeof path, "%s/tmp", root);
    if ((rc = fs_mkdir_p(path, 0755)) < 0)
        return err_set(rc, "%s: %s", path, strerror(-rc));
    if (posix_memalign((void **)&s->bounce, STORE_DIRECT_ALIGN, STORE_BOUNCE_BYTES) != 0)
        s->bounce = NULL; /* buffered writes only */
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->progressed, NULL);
    s->uploads = NULL;
    return 0;
}

void store_close(struct store *s)
{
    while (s->uploads) {
        struct store_upload *u = s->uploads;
        s->uploads = u->next;
        free(u);
    }
    pthread_cond_destroy(&s->progressed);
    pthread_mutex_destroy(&s->lock);
    free(s->bounce);
    s->bounce = NULL;
}

static void blob_dir(const struct store *s, const char *hex, char *out, size_t cap)
{
    snprintf(out, cap, "%s/blobs/%.2s", s->root, hex);
}

void store_blob_path(const struct store *s, const struct digest *d, char *out, size_t cap)
{
    char hex[DIGEST_HEX_LEN + 1];
    digest_hex(d, hex);
    snprintf(out, cap, "%s/blobs/%.2s/%s", s->root, hex, hex);
}

static void partial_path(const struct store *s, const struct digest *d, char *out, size_t cap)
{
    char hex[DIGEST_HEX_LEN + 1];
    digest_hex(d, hex);
    snprintf(out, cap, "%s/tmp/%s.part", s->root, hex);
}

int store_has(const struct store *s, const struct digest *d, uint64_t *size)
{
    char path[4096];
    struct stat st;
    store_blob_path(s, d, path, sizeof path);
    if (stat(path, &st) < 0)
        return errno == ENOENT ? FERRY_E_NOTFOUND : -errno;
    if (size)
        *size = (uint64_t)st.st_size;
    return 0;
}

uint64_t store_partial_size(struct store *s, const struct digest *d)
{
    char path[4096];
    struct stat st;
    partial_path(s, d, path, sizeof path);
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static struct store_upload **find_upload(struct store *s, const struct digest *d)
{
    for (struct store_upload **p = &s->uploads; *p; p = &(*p)->next)
        if (digest_equal(&(*p)->digest, d))
            return p;
    return NULL;
}

static void drop_upload(struct store *s, const struct digest *d)
{
    struct store_upload **p = find_upload(s, d);
    if (p) {
        struct store_upload *u = *p;
        *p = u->next;
        free(u);
    }
}

/* Move a verified temporary file under its digest, durably. */
static int publish_file(struct store *s, const char *tmp, const struct digest *d)
{
    char hex[DIGEST_HEX_LEN + 1], dir[4096], final[4096];
    digest_hex(d, hex);
    blob_dir(s, hex, dir, sizeof dir);
    int rc = fs_mkdir_p(dir, 0755);
    if (rc < 0)
        return err_set(rc, "%s: %s", dir, strerror(-rc));
    store_blob_path(s, d, final, sizeof final);
    if (rename(tmp, final) < 0)
        return err_set(-errno, "%s: %s", final, strerror(errno));
    if ((rc = fs_fsync_dir(dir)) < 0)
        return err_set(rc, "%s: %s", dir, strerror(-rc));
    return 0;
}

/* Aligned chunks go around the page cache (O_DIRECT through an aligned
 * bounce buffer): a blob being received is not read again soon, and on a
 * VM the page-cache copy costs more than the disk. Anything else, or a
 * file system without O_DIRECT, takes the buffered path. */
static int write_chunk(struct store *s, int fd, const char *path, const void *data, size_t len,
                       uint64_t offset)
{
    if (len == 0)
        return 0; /* an empty chunk may come with no buffer at all */
    if (s->bounce && len <= STORE_BOUNCE_BYTES && len % STORE_DIRECT_ALIGN == 0 &&
        offset % STORE_DIRECT_ALIGN == 0) {
        int dfd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_DIRECT);
        if (dfd >= 0) {
            memcpy(s->bounce, data, len);
            int rc = fs_pwrite_all(dfd, s->bounce, len, offset);
            close(dfd);
            if (rc != -EINVAL)
                return rc;
        }
    }
    return fs_pwrite_all(fd, data, len, offset);
}

int store_partial_write(struct store *s, const struct digest *d, uint64_t size, uint64_t offset,
                        const void *data, size_t len, uint64_t *next_offset, int *complete)
{
    char path[4096], hex[DIGEST_HEX_LEN + 1];
    digest_hex(d, hex);
    partial_path(s, d, path, sizeof path);

    pthread_mutex_lock(&s->lock);
    int rc = 0, fd = -1;
    struct store_upload *u = NULL;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += STORE_ORDER_WAIT_S;
    for (;;) {
        if (store_has(s, d, NULL) == 0) {
            /* Someone else finished it meanwhile: nothing more to take. */
            *next_offset = size;
            *complete = 1;
            goto out;
        }
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0) {
            rc = err_set(-errno, "%s: %s", path, strerror(errno));
            goto out;
        }
        struct stat st;
        if (fstat(fd, &st) < 0) {
            rc = -errno;
            goto out;
        }
        uint64_t have = (uint64_t)st.st_size;
        struct store_upload **slot = find_upload(s, d);
        if (!slot || (*slot)->received != have) {
            /* No running hash for this file (restart, or a stale one):
             * rebuild it from the bytes on disk. */
            drop_upload(s, d);
            u = calloc(1, sizeof *u);
            if (!u) {
                rc = -ENOMEM;
                goto out;
            }
            u->digest = *d;
            hasher_init(&u->hash);
            if (have > size) {
                if (ftruncate(fd, 0) < 0) {
                    free(u);
                    rc = -errno;
                    goto out;
                }
                have = 0;
            }
            if ((rc = hasher_update_fd(&u->hash, fd, have)) < 0) {
                free(u);
                goto out;
            }
            u->received = have;
            u->next = s->uploads;
            s->uploads = u;
            slot = &s->uploads;
        }
        u = *slot;
        if (offset <= u->received)
            break;
        /* A pipelining client's later chunk overtook an earlier one on
         * another worker: wait (bounded) for the earlier one to land. */
        close(fd);
        fd = -1;
        if (pthread_cond_timedwait(&s->progressed, &s->lock, &deadline) == ETIMEDOUT) {
            struct store_upload **cur = find_upload(s, d);
            u = cur ? *cur : NULL;
            rc = err_set(FERRY_E_INVALID, "blob %.16s: chunk at offset %llu, expected %llu", hex,
                         (unsigned long long)offset,
                         (unsigned long long)(u ? u->received : 0));
            *next_offset = u ? u->received : 0;
            goto out;
        }
    }
    if (offset != u->received) {
        rc = err_set(FERRY_E_INVALID, "blob %.16s: chunk at offset %llu, expected %llu", hex,
                     (unsigned long long)offset, (unsigned long long)u->received);
        *next_offset = u->received;
        goto out;
    }
    if (offset + len > size) {
        rc = err_set(FERRY_E_LIMIT, "blob %.16s: chunk runs past the blob's size %llu", hex,
                     (unsigned long long)size);
        goto out;
    }
    if ((rc = write_chunk(s, fd, path, data, len, offset)) < 0) {
        err_set(rc, "%s: %s", path, strerror(-rc));
        goto out;
    }
    hasher_update(&u->hash, data, len);
    u->received += len;
    *next_offset = u->received;
    *complete = 0;
    if (u->received == size) {
        struct digest got;
        hasher_final(&u->hash, &got);
        drop_upload(s, d);
        if (!digest_equal(&got, d)) {
            unlink(path);
            rc = err_set(FERRY_E_DIGEST, "blob %.16s: received bytes do not match the digest",
                         hex);
            *next_offset = 0;
            goto out;
        }
        if (fsync(fd) < 0) {
            rc = -errno;
            goto out;
        }
        if ((rc = publish_file(s, path, d)) < 0)
            goto out;
        *complete = 1;
    }
out:
    if (fd >= 0)
        close(fd);
    pthread_cond_broadcast(&s->progressed);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int store_put(struct store *s, const void *data, size_t len, struct digest *out)
{
    struct digest d;
    digest_of(data, len, &d);
    if (store_has(s, &d, NULL) == 0) {
        if (out)
            *out = d;
        return 0;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/tmp/put.XXXXXX", s->root);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return err_set(-errno, "%s: %s", tmp, strerror(errno));
    int rc = fs_write_all(fd, data, len);
    if (rc == 0 && fchmod(fd, 0644) < 0)
        rc = -errno;
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    close(fd);
    if (rc == 0) {
        pthread_mutex_lock(&s->lock);
        rc = publish_file(s, tmp, &d);
        pthread_mutex_unlock(&s->lock);
    }
    if (rc < 0) {
        unlink(tmp);
        return rc;
    }
    if (out)
        *out = d;
    return 0;
}

int store_read(const struct store *s, const struct digest *d, uint64_t offset, void *buf,
               size_t len, size_t *got)
{
    char path[4096];
    store_blob_path(s, d, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? FERRY_E_NOTFOUND : -errno;
    size_t done = 0;
    int rc = 0;
    while (done < len) {
        ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, (off_t)(offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    close(fd);
    if (rc == 0)
        *got = done;
    return rc;
}

int store_read_all(const struct store *s, const struct digest *d, size_t cap, uint8_t **buf,
                   size_t *len)
{
    char path[4096];
    store_blob_path(s, d, path, sizeof path);
    int rc = fs_read_file(path, cap, buf, len);
    if (rc == -ENOENT)
        return FERRY_E_NOTFOUND;
    return rc;
}
