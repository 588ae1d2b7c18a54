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

/* The lock guards the list and each entry's received/known/busy. The
 * writer that set busy owns the entry's hash and file until it clears busy,
 * and does its disk work (re-hashing, writing, fsync) without the lock, so
 * one large upload never stalls another. */
struct store_upload {
    struct digest digest;
    uint64_t received;
    int known; /* received and hash match the file; else rebuilt from disk */
    int busy;  /* a writer owns the entry; others wait on progressed */
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
    s->rehash_hook = NULL;
    s->hook_arg = NULL;
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
 * bounce buffer, one per write since writers run in parallel): a blob being
 * received is not read again soon, and on a VM the page-cache copy costs
 * more than the disk. Anything else, or a file system without O_DIRECT,
 * takes the buffered path. */
static int write_chunk(int fd, const char *path, const void *data, size_t len, uint64_t offset)
{
    if (len == 0)
        return 0; /* an empty chunk may come with no buffer at all */
    if (len <= STORE_BOUNCE_BYTES && len % STORE_DIRECT_ALIGN == 0 &&
        offset % STORE_DIRECT_ALIGN == 0) {
        uint8_t *bounce = NULL;
        int dfd = -1;
        if (posix_memalign((void **)&bounce, STORE_DIRECT_ALIGN, len) == 0)
            dfd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_DIRECT);
        if (dfd >= 0) {
            memcpy(bounce, data, len);
            int rc = fs_pwrite_all(dfd, bounce, len, offset);
            close(dfd);
            if (rc != -EINVAL) {
                free(bounce);
                return rc;
            }
        }
        free(bounce);
    }
    return fs_pwrite_all(fd, data, len, offset);
}

/* Caller holds s->lock: the entry for d, created (unknown) if missing. */
static struct store_upload *upload_for(struct store *s, const struct digest *d)
{
    struct store_upload **slot = find_upload(s, d);
    if (slot)
        return *slot;
    struct store_upload *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    u->digest = *d;
    u->next = s->uploads;
    s->uploads = u;
    return u;
}

int store_partial_write(struct store *s, const struct digest *d, uint64_t size, uint64_t offset,
                        const void *data, size_t len, uint64_t *next_offset, int *complete)
{
    char path[4096], hex[DIGEST_HEX_LEN + 1];
    digest_hex(d, hex);
    partial_path(s, d, path, sizeof path);

    int rc = 0, fd = -1, done = 0;
    uint64_t received = 0;
    int known = 0;
    struct store_upload *u = NULL;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += STORE_ORDER_WAIT_S;
    *complete = 0;

    pthread_mutex_lock(&s->lock);
    for (;;) {
        /* Wait (bounded) until nobody else writes this blob and, when its
         * progress is known, until the bytes before this chunk have landed:
         * a pipelining client's later chunk may overtake an earlier one on
         * another worker. */
        for (;;) {
            if (store_has(s, d, NULL) == 0) {
                /* Someone else finished it meanwhile: nothing more to take. */
                *next_offset = size;
                *complete = 1;
                pthread_mutex_unlock(&s->lock);
                return 0;
            }
            if (!(u = upload_for(s, d))) {
                pthread_mutex_unlock(&s->lock);
                return -ENOMEM;
            }
            if (!u->busy && (!u->known || offset <= u->received))
                break;
            if (pthread_cond_timedwait(&s->progressed, &s->lock, &deadline) == ETIMEDOUT) {
                struct store_upload **cur = find_upload(s, d);
                uint64_t expected = cur && (*cur)->known ? (*cur)->received : 0;
                *next_offset = expected;
                pthread_mutex_unlock(&s->lock);
                return err_set(FERRY_E_INVALID, "blob %.16s: chunk at offset %llu, expected %llu",
                               hex, (unsigned long long)offset, (unsigned long long)expected);
            }
        }
        u->busy = 1;
        received = u->received;
        known = u->known;
        pthread_mutex_unlock(&s->lock);

        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0) {
            rc = err_set(-errno, "%s: %s", path, strerror(errno));
            goto release;
        }
        struct stat st;
        if (fstat(fd, &st) < 0) {
            rc = -errno;
            goto release;
        }
        uint64_t have = (uint64_t)st.st_size;
        if (!known || received != have) {
            /* No running hash for this file (restart, or a stale one):
             * rebuild it from the bytes on disk, outside the lock. */
            known = 0;
            if (s->rehash_hook)
                s->rehash_hook(s->hook_arg, d, have);
            hasher_init(&u->hash);
            if (have > size) {
                if (ftruncate(fd, 0) < 0) {
                    rc = -errno;
                    goto release;
                }
                have = 0;
            }
            if ((rc = hasher_update_fd(&u->hash, fd, have)) < 0)
                goto release;
            received = have;
            known = 1;
        }
        if (offset <= received)
            break;
        /* Still early: publish what is now known and wait for the rest. */
        close(fd);
        fd = -1;
        pthread_mutex_lock(&s->lock);
        u->received = received;
        u->known = known;
        u->busy = 0;
        pthread_cond_broadcast(&s->progressed);
    }
    if (offset != received) {
        rc = err_set(FERRY_E_INVALID, "blob %.16s: chunk at offset %llu, expected %llu", hex,
                     (unsigned long long)offset, (unsigned long long)received);
        *next_offset = received;
        goto release;
    }
    if (offset + len > size) {
        rc = err_set(FERRY_E_LIMIT, "blob %.16s: chunk runs past the blob's size %llu", hex,
                     (unsigned long long)size);
        goto release;
    }
    if ((rc = write_chunk(fd, path, data, len, offset)) < 0) {
        known = 0; /* the file may hold part of the chunk now */
        err_set(rc, "%s: %s", path, strerror(-rc));
        goto release;
    }
    hasher_update(&u->hash, data, len);
    received += len;
    *next_offset = received;
    if (received == size) {
        struct digest got;
        hasher_final(&u->hash, &got);
        done = 1;
        if (!digest_equal(&got, d)) {
            unlink(path);
            rc = err_set(FERRY_E_DIGEST, "blob %.16s: received bytes do not match the digest",
                         hex);
            *next_offset = 0;
            goto release;
        }
        if (fsync(fd) < 0) {
            rc = -errno;
            goto release;
        }
        if ((rc = publish_file(s, path, d)) < 0)
            goto release;
        *complete = 1;
    }
release:
    if (fd >= 0)
        close(fd);
    pthread_mutex_lock(&s->lock);
    if (done) {
        drop_upload(s, d);
    } else {
        u->received = received;
        u->known = known;
        u->busy = 0;
    }
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
