#include "link.h"
#include "alog.h"
#include "client.h"
#include "clock.h"
#include "error.h"
#include "pluginhost.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EVENTS_MAX 256
#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 5000

struct link {
    struct link_config cfg;
    char url[512], host[72];
    struct label_set labels;
    struct key_secret key;
    uint8_t *join_token;
    size_t join_token_len;
    /* Send times of signed requests only go up (the registry refuses one
     * not newer than the last it saw), one sequence per kind. */
    uint64_t hello_last_ms, poll_last_ms, report_last_ms, reply_last_ms;
    char last_refusal[600];   /* logged once until it changes */

    uv_async_t async;
    link_desired_fn on_desired;
    void *arg;

    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stopping;
    int online;
    int registered;
    Ferry__Wire__DesiredState *mailbox; /* latest desired state for the loop */
    uint8_t *snapshot;
    size_t snapshot_len;
    int snapshot_dirty;
    Ferry__Wire__WorkloadReport *events[EVENTS_MAX];
    size_t n_events;
    uint32_t events_dropped;
    struct agent_actions *actions; /* NULL: actions are not served */
    int replies_ready;             /* action replies wait to be sent */

    struct client poller, reporter;
    int poller_open, reporter_open;
    pthread_t poll_thread, report_thread;
};

/* Thousands of hosts must not reconnect or report in step: +-20%. */
static uint32_t jitter(uint32_t ms)
{
    uint32_t spread = ms / 5;
    return ms - spread + (spread ? randombytes_uniform(2 * spread + 1) : 0);
}

/* Sleep up to ms, or until the link stops. Caller holds lock. Returns
 * stopping. */
static int nap(struct link *l, uint32_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    if (!l->stopping)
        pthread_cond_timedwait(&l->wake, &l->lock, &ts);
    return l->stopping;
}

/* The wall clock, but strictly after the last value handed out. */
static uint64_t fresh_ms(uint64_t *last)
{
    uint64_t now = clock_unix_ms();
    if (now <= *last)
        now = *last + 1;
    *last = now;
    return now;
}

/* online starts unknown (-1), so an outage from the start is logged too:
 * once per outage, with the reason (why the last transport error). */
static void set_online(struct link *l, int online, const char *why)
{
    /* Transport errors name the registry already: say it once. */
    char prefix[600];
    snprintf(prefix, sizeof prefix, "registry %s: ", l->url);
    if (why && strncmp(why, prefix, strlen(prefix)) == 0)
        why += strlen(prefix);
    pthread_mutex_lock(&l->lock);
    if (l->online != online && (online || why))
        alog(online ? FERRY_LOG_INFO : FERRY_LOG_WARN, "registry %s %s%s%s", l->url,
             online ? "reachable" : "unreachable; workloads keep running", why ? ": " : "",
             why ? why : "");
    if (online || why)
        l->online = online;
    pthread_mutex_unlock(&l->lock);
}

enum signed_kind { SEND_REPORT, SEND_REGISTER, SEND_ACTION_REPLY };

/* Encode body, sign the bytes with the host key and send them as a
 * Register (hello), a Report or an ActionReply: the registry checks the
 * signature against the host key before it believes a word. */
static int send_signed(struct link *l, struct client *c, const ProtobufCMessage *body,
                       enum signed_kind kind)
{
    size_t n = protobuf_c_message_get_packed_size(body);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return -ENOMEM;
    protobuf_c_message_pack(body, buf);
    uint8_t sig[crypto_sign_BYTES];
    key_sign(&l->key, buf, n, sig);
    Ferry__Wire__Request req;
    Ferry__Wire__Register reg;
    Ferry__Wire__Report rep;
    Ferry__Wire__ActionReply ar;
    ferry__wire__request__init(&req);
    if (kind == SEND_ACTION_REPLY) {
        ferry__wire__action_reply__init(&ar);
        ar.body = (ProtobufCBinaryData){n, buf};
        ar.signature = (ProtobufCBinaryData){sizeof sig, sig};
        req.body_case = FERRY__WIRE__REQUEST__BODY_ACTION_REPLY;
        req.action_reply = &ar;
    } else if (kind == SEND_REGISTER) {
        ferry__wire__register__init(&reg);
        reg.hello = (ProtobufCBinaryData){n, buf};
        reg.signature = (ProtobufCBinaryData){sizeof sig, sig};
        req.body_case = FERRY__WIRE__REQUEST__BODY_REGISTER;
        req.register_ = &reg;
    } else {
        ferry__wire__report__init(&rep);
        rep.body = (ProtobufCBinaryData){n, buf};
        rep.signature = (ProtobufCBinaryData){sizeof sig, sig};
        req.body_case = FERRY__WIRE__REQUEST__BODY_REPORT;
        req.report = &rep;
    }
    Ferry__Wire__Response *r = NULL;
    int rc = client_call(c, &req, &r);
    client_response_free(r);
    free(buf);
    return rc;
}

static int do_register(struct link *l, struct client *c)
{
    Ferry__Wire__HostHello hello;
    ferry__wire__host_hello__init(&hello);
    Ferry__Wire__Label lv[LABEL_MAX], *lp[LABEL_MAX];
    for (size_t i = 0; i < l->labels.n; i++) {
        ferry__wire__label__init(&lv[i]);
        lv[i].key = l->labels.v[i].key;
        lv[i].value = l->labels.v[i].value;
        lp[i] = &lv[i];
    }
    hello.name = l->host;
    hello.labels = lp;
    hello.n_labels = l->labels.n;
    hello.host_key.data = l->key.pub.pk;
    hello.host_key.len = sizeof l->key.pub.pk;
    hello.sent_ms = fresh_ms(&l->hello_last_ms);
    if (l->join_token) {
        hello.join_token.data = l->join_token;
        hello.join_token.len = l->join_token_len;
    }
    /* The loaded plugins, so operators see what can run here. */
    Ferry__Wire__PluginInfo pv[LINK_PLUGINS_MAX], *pp[LINK_PLUGINS_MAX];
    char rt[LINK_PLUGINS_MAX][PLUGIN_RUNTIMES_MAX];
    char *rp[LINK_PLUGINS_MAX][LINK_PLUGINS_MAX];
    size_t np = l->cfg.plugins ? l->cfg.plugins->n : 0;
    for (size_t i = 0; i < np && i < LINK_PLUGINS_MAX; i++) {
        const struct plugin_slot *ps = &l->cfg.plugins->v[i];
        ferry__wire__plugin_info__init(&pv[i]);
        pv[i].name = (char *)ps->name;
        snprintf(rt[i], sizeof rt[i], "%s", ps->runtimes);
        char *save = NULL;
        for (char *t = strtok_r(rt[i], " ", &save); t && pv[i].n_runtimes < LINK_PLUGINS_MAX;
             t = strtok_r(NULL, " ", &save))
            rp[i][pv[i].n_runtimes++] = t;
        pv[i].runtimes = rp[i];
        pp[hello.n_plugins++] = &pv[i];
    }
    hello.plugins = pp;
    int rc = send_signed(l, c, &hello.base, SEND_REGISTER);
    if (rc < 0 && rc != FERRY_E_TRANSPORT && rc != -ENOMEM) {
        /* Refused (not enrolled, name taken, bad token, clock): say why at
         * the default level, once per reason, and keep asking. */
        const char *why = err_message(rc);
        if (strcmp(why, l->last_refusal) != 0) {
            alog(FERRY_LOG_WARN, "registry refused registration of %s: %s", l->host, why);
            snprintf(l->last_refusal, sizeof l->last_refusal, "%s", why);
        }
    } else if (rc == 0) {
        l->last_refusal[0] = '\0';
    }
    return rc;
}

/* One long poll, its fields signed by the host key so that only this host
 * refreshes its liveness. */
static int do_poll(struct link *l, uint64_t known, Ferry__Wire__Response **r)
{
    Ferry__Wire__PollBody body;
    ferry__wire__poll_body__init(&body);
    body.host = l->host;
    body.known_serial = known;
    body.wait_ms = jitter(l->cfg.poll_wait_ms);
    body.sent_ms = fresh_ms(&l->poll_last_ms);
    size_t n = ferry__wire__poll_body__get_packed_size(&body);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return -ENOMEM;
    ferry__wire__poll_body__pack(&body, buf);
    uint8_t sig[crypto_sign_BYTES];
    key_sign(&l->key, buf, n, sig);
    Ferry__Wire__Request req;
    Ferry__Wire__Poll poll;
    ferry__wire__request__init(&req);
    ferry__wire__poll__init(&poll);
    poll.host = l->host;
    poll.known_serial = known;
    poll.wait_ms = body.wait_ms;
    poll.body = (ProtobufCBinaryData){n, buf};
    poll.signature = (ProtobufCBinaryData){sizeof sig, sig};
    req.body_case = FERRY__WIRE__REQUEST__BODY_POLL;
    req.poll = &poll;
    int rc = client_call(&l->poller, &req, r);
    free(buf);
    return rc;
}

static void *poll_main(void *arg)
{
    struct link *l = arg;
    uint64_t known = 0;
    int delivered = 0; /* a desired state went to the loop already */
    uint32_t backoff = BACKOFF_MIN_MS;
    for (;;) {
        pthread_mutex_lock(&l->lock);
        int stop = l->stopping;
        pthread_mutex_unlock(&l->lock);
        if (stop)
            break;
        int rc = 0;
        if (!l->poller_open) {
            rc = client_open(&l->poller, l->url);
            if (rc == 0) {
                l->poller.timeout_ms = (int)l->cfg.poll_wait_ms + 15000;
                pthread_mutex_lock(&l->lock);
                l->poller_open = !l->stopping;
                stop = l->stopping;
                pthread_mutex_unlock(&l->lock);
                if (stop) {
                    client_close(&l->poller);
                    break;
                }
            }
        }
        if (rc == 0 && !l->registered) {
            rc = do_register(l, &l->poller);
            if (rc == 0) {
                pthread_mutex_lock(&l->lock);
                l->registered = 1;
                l->snapshot_dirty = 1; /* tell the registry what runs here now */
                pthread_cond_broadcast(&l->wake);
                pthread_mutex_unlock(&l->lock);
                alog(FERRY_LOG_INFO, "registered with %s as %s (host key %s)", l->url, l->host,
                     l->key.pub.id);
                /* An accepted hello ends an outage: the next poll may be
                 * parked for a whole resync (~20 s) before it answers. */
                set_online(l, 1, NULL);
            }
        }
        Ferry__Wire__Response *r = NULL;
        if (rc == 0)
            rc = do_poll(l, known, &r);
        if (rc == 0 && r->body_case == FERRY__WIRE__RESPONSE__BODY_DESIRED) {
            set_online(l, 1, NULL);
            backoff = BACKOFF_MIN_MS;
            /* Actions ride on poll answers; refusals and results come back
             * as replies on the report channel. An answer that came early
             * only for them carries nothing new for the loop: `ferry logs
             * --follow` must not make the agent reconcile twice a second. */
            for (size_t i = 0; l->actions && i < r->n_actions; i++)
                agent_actions_receive(l->actions, r->actions[i]);
            int same = delivered && r->desired->serial == known;
            known = r->desired->serial;
            delivered = 1;
            if (same && r->n_actions > 0) {
                client_response_free(r);
                continue;
            }
            /* Move the desired state out of the response into the mailbox. */
            Ferry__Wire__DesiredState *ds = r->desired;
            r->desired = NULL;
            r->body_case = FERRY__WIRE__RESPONSE__BODY__NOT_SET;
            pthread_mutex_lock(&l->lock);
            if (l->mailbox)
                ferry__wire__desired_state__free_unpacked(l->mailbox, NULL);
            l->mailbox = ds;
            pthread_mutex_unlock(&l->lock);
            uv_async_send(&l->async);
            client_response_free(r);
            continue;
        }
        client_response_free(r);
        if (rc == FERRY_E_NOTFOUND) {
            l->registered = 0; /* the registry forgot us: say hello again */
            continue;
        }
        /* Transport trouble (or a refusal): start over after a backoff. */
        pthread_mutex_lock(&l->lock);
        stop = l->stopping;
        pthread_mutex_unlock(&l->lock);
        if (stop)
            break;
        alog(FERRY_LOG_DEBUG, "poll: %s", err_message(rc));
        /* A refusal is logged where it happens; only transport trouble is an outage. */
        set_online(l, 0, rc == FERRY_E_TRANSPORT ? err_message(rc) : NULL);
        if (l->poller_open) {
            pthread_mutex_lock(&l->lock);
            l->poller_open = 0;
            pthread_mutex_unlock(&l->lock);
            client_close(&l->poller);
        }
        l->registered = 0;
        pthread_mutex_lock(&l->lock);
        nap(l, jitter(backoff));
        pthread_mutex_unlock(&l->lock);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    if (l->poller_open)
        client_close(&l->poller);
    l->poller_open = 0;
    return NULL;
}

/* Build, sign and send one report from the snapshot and queued events.
 * Events go back to the queue's head if sending fails. */
static int send_report(struct link *l)
{
    pthread_mutex_lock(&l->lock);
    Ferry__Wire__ReportBody *body =
        l->snapshot ? ferry__wire__report_body__unpack(NULL, l->snapshot_len, l->snapshot) : NULL;
    size_t n_ev = l->n_events;
    Ferry__Wire__WorkloadReport *evs[EVENTS_MAX];
    memcpy(evs, l->events, n_ev * sizeof evs[0]);
    uint32_t dropped = l->events_dropped;
    l->n_events = 0;
    l->events_dropped = 0;
    l->snapshot_dirty = 0;
    pthread_mutex_unlock(&l->lock);

    Ferry__Wire__ReportBody empty;
    ferry__wire__report_body__init(&empty);
    Ferry__Wire__ReportBody *b = body ? body : &empty;
    Ferry__Wire__WorkloadReport **saved_events = b->events;
    size_t saved_n = b->n_events;
    b->host = b == &empty ? l->host : b->host;
    b->sent_ms = fresh_ms(&l->report_last_ms);
    b->events = evs;
    b->n_events = n_ev;
    b->events_dropped = dropped;
    int rc = send_signed(l, &l->reporter, &b->base, SEND_REPORT);
    b->events = saved_events;
    b->n_events = saved_n;
    if (body)
        ferry__wire__report_body__free_unpacked(body, NULL);

    pthread_mutex_lock(&l->lock);
    if (rc < 0) {
        /* Put the unsent events back in front of newer ones, within bounds. */
        size_t room = EVENTS_MAX - l->n_events;
        size_t keep = n_ev < room ? n_ev : room;
        size_t lose = n_ev - keep;
        for (size_t i = 0; i < lose; i++)
            ferry__wire__workload_report__free_unpacked(evs[i], NULL);
        memmove(&l->events[keep], l->events, l->n_events * sizeof l->events[0]);
        memcpy(l->events, evs + lose, keep * sizeof evs[0]);
        l->n_events += keep;
        l->events_dropped += dropped + (uint32_t)lose;
        l->snapshot_dirty = 1;
    } else {
        for (size_t i = 0; i < n_ev; i++)
            ferry__wire__workload_report__free_unpacked(evs[i], NULL);
    }
    pthread_mutex_unlock(&l->lock);
    return rc;
}

/* Send every action reply waiting, each signed by the host key. A reply
 * the registry refuses is dropped (its requester times out), and so is the
 * one in flight when the transport fails; the rest wait for the next try. */
static int send_replies(struct link *l)
{
    Ferry__Wire__ActionReplyBody *b;
    while ((b = agent_actions_next_reply(l->actions)) != NULL) {
        b->sent_ms = fresh_ms(&l->reply_last_ms);
        int rc = send_signed(l, &l->reporter, &b->base, SEND_ACTION_REPLY);
        ferry__wire__action_reply_body__free_unpacked(b, NULL);
        if (rc == FERRY_E_TRANSPORT)
            return rc;
        if (rc < 0)
            alog(FERRY_LOG_DEBUG, "action reply: %s", err_message(rc));
    }
    return 0;
}

static void replies_ready(void *arg)
{
    struct link *l = arg;
    pthread_mutex_lock(&l->lock);
    l->replies_ready = 1;
    pthread_cond_broadcast(&l->wake);
    pthread_mutex_unlock(&l->lock);
}

static void *report_main(void *arg)
{
    struct link *l = arg;
    uint32_t backoff = BACKOFF_MIN_MS;
    uint64_t next_beat = clock_mono_ms();
    pthread_mutex_lock(&l->lock);
    while (!l->stopping) {
        uint64_t now = clock_mono_ms();
        int replies = l->replies_ready;
        if (!(l->snapshot_dirty && l->registered) && !replies && now < next_beat) {
            nap(l, (uint32_t)(next_beat - now));
            continue;
        }
        if (!l->registered) {
            nap(l, 100); /* the poller registers first */
            continue;
        }
        int report = l->snapshot_dirty || now >= next_beat;
        l->replies_ready = 0;
        pthread_mutex_unlock(&l->lock);
        int rc = 0;
        if (!l->reporter_open) {
            rc = client_open(&l->reporter, l->url);
            if (rc == 0) {
                pthread_mutex_lock(&l->lock);
                l->reporter_open = 1;
                pthread_mutex_unlock(&l->lock);
            }
        }
        /* Replies first: someone waits for them. */
        if (rc == 0 && replies && l->actions)
            rc = send_replies(l);
        if (rc == 0 && report)
            rc = send_report(l);
        pthread_mutex_lock(&l->lock);
        if (rc < 0 && replies)
            l->replies_ready = 1; /* those not sent stay queued */
        if (rc == 0) {
            backoff = BACKOFF_MIN_MS;
            if (report)
                next_beat = clock_mono_ms() + jitter(l->cfg.heartbeat_ms);
            continue;
        }
        if (l->reporter_open && rc != FERRY_E_NOTFOUND) {
            l->reporter_open = 0;
            pthread_mutex_unlock(&l->lock);
            client_close(&l->reporter);
            pthread_mutex_lock(&l->lock);
        }
        nap(l, jitter(backoff));
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    pthread_mutex_unlock(&l->lock);
    if (l->reporter_open)
        client_close(&l->reporter);
    l->reporter_open = 0;
    return NULL;
}

static void on_async(uv_async_t *a)
{
    struct link *l = a->data;
    pthread_mutex_lock(&l->lock);
    Ferry__Wire__DesiredState *ds = l->mailbox;
    l->mailbox = NULL;
    pthread_mutex_unlock(&l->lock);
    if (ds)
        l->on_desired(l->arg, ds);
}

int link_start(uv_loop_t *loop, const struct link_config *cfg, link_desired_fn on_desired,
               void *arg, struct link **out)
{
    struct link *l = calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    l->cfg = *cfg;
    l->online = -1;
    if (!l->cfg.poll_wait_ms)
        l->cfg.poll_wait_ms = 20000;
    if (!l->cfg.heartbeat_ms)
        l->cfg.heartbeat_ms = 5000;
    snprintf(l->url, sizeof l->url, "%s", cfg->url);
    snprintf(l->host, sizeof l->host, "%s", cfg->host);
    l->labels = *cfg->labels;
    l->key = *cfg->host_key;
    if (cfg->join_token && cfg->join_token_len) {
        l->join_token = malloc(cfg->join_token_len);
        if (l->join_token) {
            memcpy(l->join_token, cfg->join_token, cfg->join_token_len);
            l->join_token_len = cfg->join_token_len;
        }
    }
    l->on_desired = on_desired;
    l->arg = arg;
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->wake, NULL);
    if (cfg->action_lookup) {
        struct agent_actions_config ac = {
            .host = cfg->host,
            .trust = cfg->trust,
            .trust_logs = cfg->trust_logs,
            .lookup = cfg->action_lookup,
            .lookup_arg = cfg->action_lookup_arg,
            .other_verb = cfg->action_verb,
            .other_verb_arg = cfg->action_verb_arg,
            .reply_ready = replies_ready,
            .reply_arg = l,
            .operators = cfg->operators,
            .admins = cfg->admins,
            .policy_cache = cfg->policy_cache,
        };
        if (agent_actions_new(loop, &ac, &l->actions) < 0)
            alog(FERRY_LOG_WARN, "actions are not served: %s", err_detail());
    }
    uv_async_init(loop, &l->async, on_async);
    l->async.data = l;
    if (pthread_create(&l->poll_thread, NULL, poll_main, l) != 0 ||
        pthread_create(&l->report_thread, NULL, report_main, l) != 0) {
        alog(FERRY_LOG_ERROR, "cannot start the registry link threads");
        abort(); /* no partial state to unwind safely with a thread running */
    }
    *out = l;
    return 0;
}

void link_set_snapshot(struct link *l, const uint8_t *body, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return;
    memcpy(copy, body, len);
    pthread_mutex_lock(&l->lock);
    free(l->snapshot);
    l->snapshot = copy;
    l->snapshot_len = len;
    l->snapshot_dirty = 1;
    pthread_cond_broadcast(&l->wake);
    pthread_mutex_unlock(&l->lock);
}

void link_add_event(struct link *l, const Ferry__Wire__WorkloadReport *ev)
{
    size_t n = ferry__wire__workload_report__get_packed_size(ev);
    uint8_t buf[1024];
    if (n > sizeof buf)
        return;
    ferry__wire__workload_report__pack(ev, buf);
    Ferry__Wire__WorkloadReport *copy = ferry__wire__workload_report__unpack(NULL, n, buf);
    if (!copy)
        return;
    pthread_mutex_lock(&l->lock);
    if (l->n_events == EVENTS_MAX) {
        /* Bounded: the oldest change goes, and the count says so. */
        ferry__wire__workload_report__free_unpacked(l->events[0], NULL);
        memmove(l->events, l->events + 1, (EVENTS_MAX - 1) * sizeof l->events[0]);
        l->n_events--;
        l->events_dropped++;
    }
    l->events[l->n_events++] = copy;
    pthread_mutex_unlock(&l->lock);
}

int link_online(struct link *l)
{
    pthread_mutex_lock(&l->lock);
    int on = l->online == 1;
    pthread_mutex_unlock(&l->lock);
    return on;
}

static void free_link(uv_handle_t *h)
{
    struct link *l = h->data;
    if (l->mailbox)
        ferry__wire__desired_state__free_unpacked(l->mailbox, NULL);
    for (size_t i = 0; i < l->n_events; i++)
        ferry__wire__workload_report__free_unpacked(l->events[i], NULL);
    free(l->snapshot);
    free(l->join_token);
    key_secret_wipe(&l->key);
    pthread_cond_destroy(&l->wake);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

/* nng 1.5.2 can wait forever in nng_close when a connection is torn down
 * while a reply is arriving on it (docs/architecture.md, "Stopping"). The
 * agent must stop all the same: the sockets are closed on a thread of their
 * own, and the link threads get a bounded time to leave. Everything the
 * agent keeps is in agent.db by then, so leaving a stuck close to the
 * process exit loses nothing. */
#define LINK_STOP_GRACE_MS 3000

struct closing {
    nng_socket socks[2];
    int n;
};

static void *close_sockets(void *arg)
{
    struct closing *c = arg;
    for (int i = 0; i < c->n; i++)
        nng_close(c->socks[i]);
    free(c);
    return NULL;
}

static int join_within(pthread_t t, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return pthread_timedjoin_np(t, NULL, &ts);
}

void link_stop(struct link *l)
{
    struct closing *c = calloc(1, sizeof *c);
    pthread_mutex_lock(&l->lock);
    l->stopping = 1;
    pthread_cond_broadcast(&l->wake);
    /* Interrupt a long poll or a send in progress. */
    if (c && l->poller_open)
        c->socks[c->n++] = l->poller.sock;
    if (c && l->reporter_open)
        c->socks[c->n++] = l->reporter.sock;
    pthread_mutex_unlock(&l->lock);
    pthread_t closer;
    if (c && pthread_create(&closer, NULL, close_sockets, c) == 0)
        pthread_detach(closer);
    else
        free(c); /* the threads still see stopping at their next step */
    int stuck = join_within(l->poll_thread, LINK_STOP_GRACE_MS) != 0;
    stuck |= join_within(l->report_thread, LINK_STOP_GRACE_MS) != 0;
    if (stuck) {
        alog(FERRY_LOG_ERROR, "the connection to %s did not close within %d ms (nng); "
                              "exiting without waiting for it",
             l->url, LINK_STOP_GRACE_MS);
        /* A link thread may still use l: it is left to the process exit. */
        uv_close((uv_handle_t *)&l->async, NULL);
        return;
    }
    agent_actions_close(l->actions);
    l->actions = NULL;
    uv_close((uv_handle_t *)&l->async, free_link);
}
