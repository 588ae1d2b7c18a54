#include "liveness.h"
#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One enrolled host that polled. Entries are made only for polls whose
 * signature verified against an enrolled key, so there are at most as many
 * as enrolled hosts. */
struct liveness_entry {
    char name[72];
    uint8_t key[32];
    int64_t poll_ms; /* newest poll send time seen: the replay mark */
    int64_t seen_ms; /* when that poll was seen */
    int dirty;       /* moved since the last write */
    struct liveness_entry *next;
};

static unsigned bucket_of(const char *s)
{
    unsigned h = 5381;
    while (*s)
        h = h * 33 + (unsigned char)*s++;
    return h % LIVENESS_BUCKETS;
}

/* Caller holds lv->lock. */
static struct liveness_entry **find(struct liveness *lv, const char *host)
{
    struct liveness_entry **e = &lv->buckets[bucket_of(host)];
    while (*e && strcmp((*e)->name, host) != 0)
        e = &(*e)->next;
    return e;
}

int liveness_poll(struct liveness *lv, const char *host, const uint8_t key[32],
                  int64_t db_poll_ms, int64_t sent_ms, int64_t now_ms)
{
    if (strlen(host) >= sizeof ((struct liveness_entry *)0)->name)
        return FERRY_E_INVALID;
    pthread_mutex_lock(&lv->lock);
    struct liveness_entry **slot = find(lv, host), *e = *slot;
    if (e && memcmp(e->key, key, 32) != 0) {
        /* Re-keyed since (liveness_forget normally saw to it): the old
         * key's marks are not this key's. */
        memcpy(e->key, key, 32);
        e->poll_ms = e->seen_ms = 0;
        e->dirty = 0;
    }
    if (!e) {
        e = calloc(1, sizeof *e);
        if (!e) {
            pthread_mutex_unlock(&lv->lock);
            return -ENOMEM;
        }
        snprintf(e->name, sizeof e->name, "%s", host);
        memcpy(e->key, key, 32);
        *slot = e;
    }
    if (db_poll_ms > e->poll_ms)
        e->poll_ms = db_poll_ms;
    int rc = FERRY_E_INVALID;
    if (sent_ms > e->poll_ms) {
        e->poll_ms = sent_ms;
        if (now_ms > e->seen_ms)
            e->seen_ms = now_ms;
        e->dirty = 1;
        rc = 0;
    }
    pthread_mutex_unlock(&lv->lock);
    return rc;
}

void liveness_overlay(struct liveness *lv, struct db_host *v, size_t n)
{
    pthread_mutex_lock(&lv->lock);
    for (size_t i = 0; i < n; i++) {
        if (v[i].pending)
            continue;
        struct liveness_entry *e = *find(lv, v[i].name);
        if (e && memcmp(e->key, v[i].key, 32) == 0 && e->seen_ms > v[i].last_seen_ms)
            v[i].last_seen_ms = e->seen_ms;
    }
    pthread_mutex_unlock(&lv->lock);
}

void liveness_forget(struct liveness *lv, const char *host)
{
    pthread_mutex_lock(&lv->lock);
    struct liveness_entry **slot = find(lv, host), *e = *slot;
    if (e) {
        *slot = e->next;
        free(e);
    }
    pthread_mutex_unlock(&lv->lock);
}

int liveness_flush(struct liveness *lv)
{
    /* Copy what moved under the table's lock, write it without: polls are
     * never held up by the write. */
    pthread_mutex_lock(&lv->lock);
    size_t n = 0, cap = 0;
    struct db_poll_mark *m = NULL;
    int rc = 0;
    for (int b = 0; b < LIVENESS_BUCKETS && rc == 0; b++)
        for (struct liveness_entry *e = lv->buckets[b]; e; e = e->next) {
            if (!e->dirty)
                continue;
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                struct db_poll_mark *g = realloc(m, ncap * sizeof *m);
                if (!g) {
                    rc = -ENOMEM;
                    break;
                }
                m = g;
                cap = ncap;
            }
            snprintf(m[n].name, sizeof m[n].name, "%s", e->name);
            memcpy(m[n].key, e->key, 32);
            m[n].poll_ms = e->poll_ms;
            m[n].seen_ms = e->seen_ms;
            e->dirty = 0;
            n++;
        }
    pthread_mutex_unlock(&lv->lock);
    if (rc == 0)
        rc = db_host_polls_save(lv->db, m, n);
    if (rc < 0) {
        /* Try again next time: mark them moved again. */
        pthread_mutex_lock(&lv->lock);
        for (size_t i = 0; i < n; i++) {
            struct liveness_entry *e = *find(lv, m[i].name);
            if (e)
                e->dirty = 1;
        }
        pthread_mutex_unlock(&lv->lock);
    }
    free(m);
    return rc;
}

static void *flusher_main(void *arg)
{
    struct liveness *lv = arg;
    int failing = 0;
    pthread_mutex_lock(&lv->lock);
    while (!lv->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += LIVENESS_FLUSH_MS / 1000;
        ts.tv_nsec += (LIVENESS_FLUSH_MS % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&lv->wake, &lv->lock, &ts);
        if (lv->stopping)
            break;
        pthread_mutex_unlock(&lv->lock);
        int rc = liveness_flush(lv);
        if (rc < 0 && !failing)
            fprintf(stderr, "ferry-registry: error: writing hosts' poll marks: %s\n",
                    err_message(rc));
        failing = rc < 0;
        pthread_mutex_lock(&lv->lock);
    }
    pthread_mutex_unlock(&lv->lock);
    return NULL;
}

int liveness_start(struct liveness *lv, struct db *db)
{
    memset(lv, 0, sizeof *lv);
    lv->db = db;
    pthread_mutex_init(&lv->lock, NULL);
    pthread_cond_init(&lv->wake, NULL);
    if (pthread_create(&lv->flusher, NULL, flusher_main, lv) != 0) {
        pthread_cond_destroy(&lv->wake);
        pthread_mutex_destroy(&lv->lock);
        return err_set(-EAGAIN, "could not start the poll mark writer");
    }
    lv->started = 1;
    return 0;
}

void liveness_stop(struct liveness *lv)
{
    if (!lv->started)
        return;
    pthread_mutex_lock(&lv->lock);
    lv->stopping = 1;
    pthread_cond_signal(&lv->wake);
    pthread_mutex_unlock(&lv->lock);
    pthread_join(lv->flusher, NULL);
    int rc = liveness_flush(lv);
    if (rc < 0)
        fprintf(stderr, "ferry-registry: error: writing hosts' poll marks at stop: %s\n",
                err_message(rc));
    for (int b = 0; b < LIVENESS_BUCKETS; b++)
        while (lv->buckets[b]) {
            struct liveness_entry *e = lv->buckets[b];
            lv->buckets[b] = e->next;
            free(e);
        }
    pthread_cond_destroy(&lv->wake);
    pthread_mutex_destroy(&lv->lock);
    lv->started = 0;
}
