#include "filewriter.h"
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <stdlib.h>

#define QUEUE_LEN 8
#define DIRECT_ALIGN 4096
#define BOUNCE_BYTES (4u << 20)

struct job {
    int fd;
    int direct; /* fd has O_DIRECT: write through the aligned bounce buffer */
    uint64_t off;
    const uint8_t *data;
    size_t len;
    void *owner;
    file_writer_release_fn release;
};

struct file_writer {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    struct job q[QUEUE_LEN];
    size_t head, count;
    int busy;     /* the thread is writing a job it took off the queue */
    int error;    /* first error since the last flush */
    int stopping;
    uint8_t *bounce; /* aligned, for O_DIRECT writes */
};

static void *writer_main(void *arg)
{
    struct file_writer *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (w->count == 0 && !w->stopping)
            pthread_cond_wait(&w->changed, &w->lock);
        if (w->count == 0 && w->stopping)
            break;
        struct job j = w->q[w->head];
        w->head = (w->head + 1) % QUEUE_LEN;
        w->count--;
        w->busy = 1;
        int skip = w->error != 0;
        pthread_mutex_unlock(&w->lock);

        int rc = 0;
        if (!skip && j.direct) {
            memcpy(w->bounce, j.data, j.len);
            rc = fs_pwrite_all(j.fd, w->bounce, j.len, j.off);
        } else if (!skip) {
            rc = fs_pwrite_all(j.fd, j.data, j.len, j.off);
#ifdef SYNC_FILE_RANGE_WRITE
            /* Start write-back now so the final fsync has little left. */
            if (rc == 0)
                sync_file_range(j.fd, (off_t)j.off, (off_t)j.len, SYNC_FILE_RANGE_WRITE);
#endif
        }
        if (j.release)
            j.release(j.owner);

        pthread_mutex_lock(&w->lock);
        if (rc < 0 && w->error == 0)
            w->error = rc;
        w->busy = 0;
        pthread_cond_broadcast(&w->changed);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int file_writer_new(struct file_writer **out)
{
    struct file_writer *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    if (posix_memalign((void **)&w->bounce, DIRECT_ALIGN, BOUNCE_BYTES) != 0) {
        free(w);
        return -ENOMEM;
    }
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->changed, NULL);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        free(w->bounce);
        pthread_cond_destroy(&w->changed);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return -EAGAIN;
    }
    *out = w;
    return 0;
}

int file_writer_submit(struct file_writer *w, int fd, int direct, uint64_t off,
                       const uint8_t *data, size_t len, void *owner,
                       file_writer_release_fn release)
{
    pthread_mutex_lock(&w->lock);
    while (w->count == QUEUE_LEN && w->error == 0)
        pthread_cond_wait(&w->changed, &w->lock);
    int rc = w->error;
    if (rc == 0) {
        w->q[(w->head + w->count) % QUEUE_LEN] = (struct job){fd, direct, off, data, len, owner, release};
        w->count++;
        pthread_cond_broadcast(&w->changed);
    }
    pthread_mutex_unlock(&w->lock);
    if (rc < 0 && release)
        release(owner);
    return rc;
}

int file_writer_flush(struct file_writer *w)
{
    pthread_mutex_lock(&w->lock);
    while (w->count > 0 || w->busy)
        pthread_cond_wait(&w->changed, &w->lock);
    int rc = w->error;
    w->error = 0;
    pthread_mutex_unlock(&w->lock);
    return rc;
}

void file_writer_free(struct file_writer *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = 1;
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->changed);
    pthread_mutex_destroy(&w->lock);
    free(w->bounce);
    free(w);
}

int file_writer_direct_ok(uint64_t off, size_t len)
{
    return off % DIRECT_ALIGN == 0 && len % DIRECT_ALIGN == 0 && len <= BOUNCE_BYTES;
}
