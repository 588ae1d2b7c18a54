/* Long polls: a poll with nothing new waits here, holding a slot but no
 * thread, until its host's desired state changes or its wait runs out. The
 * notifier thread answers them (asynchronously) and also runs the periodic
 * connection chores (idle, dropped, forgotten connections; spare slots). */
#include "server_int.h"
#include "clock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Set s aside until its host's desired state changes or its wait ends.
 * -1: not parked (stopping, connection gone, or it has too many parked). */
int server_park_poll(struct server *srv, struct slot *s, const struct server_park *p)
{
    pthread_mutex_lock(&srv->lock);
    struct conn *c = conn_find(srv, s->pipe);
    int ok = c && !srv->stopping && c->parked < SERVER_PARKED_PER_CONN;
    if (ok)
        c->parked++;
    pthread_mutex_unlock(&srv->lock);
    if (!ok)
        return -1;
    snprintf(s->host, sizeof s->host, "%s", p->host);
    s->known_serial = p->known_serial;
    uint32_t wait = p->wait_ms > SERVER_POLL_WAIT_MAX_MS ? SERVER_POLL_WAIT_MAX_MS : p->wait_ms;
    s->deadline_ms = (int64_t)clock_mono_ms() + wait;
    pthread_mutex_lock(&srv->park_lock);
    /* Checked again under this lock: server_stop collects the parked list
     * under it, and a poll added after that would never be released. */
    if (srv->park_stopping) {
        pthread_mutex_unlock(&srv->park_lock);
        pthread_mutex_lock(&srv->lock);
        if ((c = conn_find(srv, s->pipe)))
            c->parked--;
        pthread_mutex_unlock(&srv->lock);
        return -1;
    }
    s->next = srv->parked;
    srv->parked = s;
    srv->n_parked++;
    pthread_cond_signal(&srv->park_wake);
    pthread_mutex_unlock(&srv->park_lock);
    return 0;
}

void server_wake(struct server *srv)
{
    pthread_mutex_lock(&srv->park_lock);
    srv->park_dirty = 1;
    pthread_cond_signal(&srv->park_wake);
    pthread_mutex_unlock(&srv->park_lock);
}

/* The current answer for one host, computed once per notifier pass however
 * many polls wait on that host. */
struct host_answer {
    char host[72];
    int rc;
    uint64_t serial;
    nng_msg *msg;
    struct host_answer *next;
};

#define ANSWER_BUCKETS 256

static unsigned host_hash(const char *s)
{
    unsigned h = 5381;
    while (*s)
        h = h * 33 + (unsigned char)*s++;
    return h % ANSWER_BUCKETS;
}

static struct host_answer *answer_for(struct server *srv, struct host_answer **tab,
                                      const char *host)
{
    struct host_answer **a = &tab[host_hash(host)];
    for (; *a; a = &(*a)->next)
        if (strcmp((*a)->host, host) == 0)
            return *a;
    struct host_answer *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    snprintf(n->host, sizeof n->host, "%s", host);
    err_clear();
    n->rc = srv->h.desired(srv->h.arg, host, &n->serial, &n->msg);
    *a = n;
    return n;
}

static void answers_free(struct host_answer **tab)
{
    for (int b = 0; b < ANSWER_BUCKETS; b++)
        while (tab[b]) {
            struct host_answer *a = tab[b];
            tab[b] = a->next;
            if (a->msg)
                nng_msg_free(a->msg);
            free(a);
        }
}


static int64_t next_deadline(struct server *srv, int64_t now, int fast)
{
    int64_t next = now + (fast ? 50 : 250); /* the reaper's and trimmer's tick */
    for (struct slot *s = srv->parked; s; s = s->next)
        if (s->deadline_ms < next)
            next = s->deadline_ms;
    return next;
}

void *server_notifier_main(void *arg)
{
    struct server *srv = arg;
    struct host_answer **answers = calloc(ANSWER_BUCKETS, sizeof *answers);
    int64_t last_reap = 0, last_gc = (int64_t)clock_mono_ms();
    int dropping = 0; /* connections marked but not yet quiet */
    pthread_mutex_lock(&srv->park_lock);
    while (!srv->park_stopping) {
        int64_t now = (int64_t)clock_mono_ms();
        if (now - last_reap >= (dropping || srv->drops_pending ? 50 : 250)) {
            srv->drops_pending = 0;
            pthread_mutex_unlock(&srv->park_lock);
            dropping = conns_reap_idle(srv, now);
            server_slots_trim(srv);
            if (now - last_gc >= 2000) {
                conns_forget_dead(srv);
                last_gc = now;
            }
            last_reap = now;
            pthread_mutex_lock(&srv->park_lock);
            continue;
        }
        int64_t next = next_deadline(srv, now, dropping || srv->drops_pending);
        if (!srv->park_dirty && !srv->park_gone && next > now) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t wait = next - now;
            ts.tv_sec += wait / 1000;
            ts.tv_nsec += (wait % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&srv->park_wake, &srv->park_lock, &ts);
            continue;
        }
        int dirty = srv->park_dirty, gone = srv->park_gone;
        srv->park_dirty = srv->park_gone = 0;
        struct slot *all = srv->parked;
        srv->parked = NULL;
        srv->n_parked = 0;
        pthread_mutex_unlock(&srv->park_lock);

        /* Decide outside the park lock (answers read the database), once
         * per distinct host; sending is asynchronous, so a peer that does
         * not read delays nobody. */
        struct slot *keep = NULL;
        int kept = 0;
        now = (int64_t)clock_mono_ms();
        while (all) {
            struct slot *s = all;
            all = s->next;
            if (gone) {
                pthread_mutex_lock(&srv->lock);
                int alive = conn_find(srv, s->pipe) != NULL;
                if (!alive)
                    server_slot_put_locked(srv, s);
                pthread_mutex_unlock(&srv->lock);
                if (!alive)
                    continue;
            }
            struct host_answer *a = NULL;
            int answer = s->deadline_ms <= now;
            if (!answer && dirty) {
                a = answers ? answer_for(srv, answers, s->host) : NULL;
                answer = !a || a->rc < 0 || a->serial != s->known_serial;
            }
            if (!answer) {
                s->next = keep;
                keep = s;
                kept++;
                continue;
            }
            if (!a && answers)
                a = answer_for(srv, answers, s->host);
            nng_msg *out = NULL;
            if (a && a->msg && nng_msg_dup(&out, a->msg) != 0)
                out = NULL;
            pthread_mutex_lock(&srv->lock);
            struct conn *c = conn_find(srv, s->pipe);
            if (c)
                c->parked--;
            if (!out)
                server_slot_put_locked(srv, s);
            pthread_mutex_unlock(&srv->lock);
            if (out)
                server_reply(srv, s, out);
        }
        if (answers)
            answers_free(answers);
        pthread_mutex_lock(&srv->park_lock);
        while (keep) {
            struct slot *s = keep;
            keep = s->next;
            s->next = srv->parked;
            srv->parked = s;
        }
        srv->n_parked += kept;
    }
    pthread_mutex_unlock(&srv->park_lock);
    free(answers);
    return NULL;
}
