#include "hosts.h"
#include "rlog.h"
#include "audit.h"
#include "rmetrics.h"
#include "clock.h"
#include "error.h"
#include "jointoken.h"
#include "liveness.h"
#include "manifest.h"
#include "spec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void iso(uint64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- pure checks ------------------------------------------------------------ */

int hosts_labels_check(const char *host, Ferry__Wire__Label *const *labels, size_t n,
                       struct label_set *out, char *text, size_t cap)
{
    struct label_set s = {.n = 0};
    if (n > LABEL_MAX)
        return err_set(FERRY_E_LIMIT, "register %s: %zu labels, at most %d", host, n, LABEL_MAX);
    for (size_t i = 0; i < n; i++) {
        const char *k = labels[i]->key ? labels[i]->key : "";
        const char *v = labels[i]->value ? labels[i]->value : "";
        size_t kl = strlen(k), vl = strlen(v);
        if (kl > LABEL_TEXT_MAX || vl > LABEL_TEXT_MAX)
            return err_set(FERRY_E_LIMIT,
                           "register %s: label '%.40s%s': keys and values are at most %d bytes",
                           host, k, kl > 40 ? "..." : "", LABEL_TEXT_MAX);
        if (labels_get(&s, k))
            return err_set(FERRY_E_INVALID, "register %s: label key '%s' given twice", host, k);
        char kv[2 * LABEL_TEXT_MAX + 2];
        snprintf(kv, sizeof kv, "%s=%s", k, v);
        int rc = labels_add(&s, kv);
        if (rc < 0) {
            char why[300];
            snprintf(why, sizeof why, "%s", err_detail());
            return err_set(rc, "register %s: %s", host, why);
        }
    }
    /* Measure before formatting: the stored text must hold every label. */
    size_t need = 0;
    for (size_t i = 0; i < s.n; i++)
        need += (i ? 1 : 0) + strlen(s.v[i].key) + 1 + strlen(s.v[i].value);
    if (need > HOSTS_LABELS_TEXT_MAX || need >= cap)
        return err_set(FERRY_E_LIMIT, "register %s: labels take %zu bytes as text, at most %u",
                       host, need, HOSTS_LABELS_TEXT_MAX);
    labels_format(&s, text, cap);
    *out = s;
    return 0;
}

int hosts_report_check(const char *host, size_t body_len, const Ferry__Wire__ReportBody *b)
{
    if (body_len > HOSTS_REPORT_MAX_BYTES)
        return err_set(FERRY_E_LIMIT, "report from %s: %zu bytes, at most %u", host, body_len,
                       HOSTS_REPORT_MAX_BYTES);
    if (b && b->n_workloads > HOSTS_REPORT_MAX_WORKLOADS)
        return err_set(FERRY_E_LIMIT, "report from %s: %zu workloads, at most %u", host,
                       b->n_workloads, HOSTS_REPORT_MAX_WORKLOADS);
    if (b && b->n_events > HOSTS_REPORT_MAX_EVENTS)
        return err_set(FERRY_E_LIMIT, "report from %s: %zu state changes, at most %u", host,
                       b->n_events, HOSTS_REPORT_MAX_EVENTS);
    /* Each state change is stored re-encoded: one that protobuf-c could not
     * read back (a field-0 tag) would vanish from `ferry events`. */
    if (b) {
        char what[128];
        snprintf(what, sizeof what, "report from %s", host);
        return pb_refuse_field_zero(&b->base, what);
    }
    return 0;
}

int hosts_time_check(const char *what, const char *host, uint64_t sent_ms, uint64_t now_ms)
{
    uint64_t d = sent_ms > now_ms ? sent_ms - now_ms : now_ms - sent_ms;
    if (d <= HOSTS_CLOCK_WINDOW_MS)
        return 0;
    char sent[32], now[32];
    iso(sent_ms, sent, sizeof sent);
    iso(now_ms, now, sizeof now);
    return err_set(FERRY_E_INVALID,
                   "%s from %s: sent at %s, the registry's clock says %s (more than %u s apart: "
                   "a replay, or a clock to fix)",
                   what, host, sent, now, HOSTS_CLOCK_WINDOW_MS / 1000);
}

/* ---- register ----------------------------------------------------------------- */

/* Plugin and runtime names a hello may carry: what plugin.h allows. */
static int plugin_word_ok(const char *w)
{
    size_t n = w ? strlen(w) : 0;
    if (n == 0 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((w[i] >= 'a' && w[i] <= 'z') || (w[i] >= 'A' && w[i] <= 'Z') ||
              (w[i] >= '0' && w[i] <= '9') || w[i] == '-' || w[i] == '_' || w[i] == '.'))
            return 0;
    return 1;
}

int hosts_plugins_check(const Ferry__Wire__HostHello *hello)
{
    if (hello->n_plugins > HOSTS_PLUGINS_MAX)
        return err_set(FERRY_E_LIMIT, "register %s: %zu plugins, at most %u", hello->name,
                       hello->n_plugins, HOSTS_PLUGINS_MAX);
    for (size_t i = 0; i < hello->n_plugins; i++) {
        const Ferry__Wire__PluginInfo *p = hello->plugins[i];
        if (!plugin_word_ok(p->name))
            return err_set(FERRY_E_INVALID, "register %s: plugin name '%.40s' is not valid",
                           hello->name, p->name ? p->name : "");
        if (p->n_runtimes > HOSTS_PLUGINS_MAX)
            return err_set(FERRY_E_LIMIT, "register %s: plugin %s: %zu runtimes, at most %u",
                           hello->name, p->name, p->n_runtimes, HOSTS_PLUGINS_MAX);
        for (size_t k = 0; k < p->n_runtimes; k++)
            if (!plugin_word_ok(p->runtimes[k]))
                return err_set(FERRY_E_INVALID,
                               "register %s: plugin %s: runtime '%.40s' is not valid",
                               hello->name, p->name, p->runtimes[k] ? p->runtimes[k] : "");
    }
    return 0;
}

/* The checked plugin list of an enrolled host's hello, kept for ferry hosts
 * and the deploy warning. */
static int store_plugins(struct db *db, const Ferry__Wire__HostHello *hello)
{
    Ferry__Wire__PluginList pl;
    ferry__wire__plugin_list__init(&pl);
    pl.plugins = hello->plugins;
    pl.n_plugins = hello->n_plugins;
    size_t n = ferry__wire__plugin_list__get_packed_size(&pl);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return -ENOMEM;
    ferry__wire__plugin_list__pack(&pl, buf);
    int rc = db_host_set_plugins(db, hello->name, buf, n);
    free(buf);
    return rc;
}

/* Every label of required ("k=v,..." text, may be empty) is among have. */
static int carries(const char *host, const struct label_set *have, const struct label_set *req,
                   const char *why)
{
    for (size_t i = 0; i < req->n; i++) {
        const char *v = labels_get(have, req->v[i].key);
        if (!v || strcmp(v, req->v[i].value) != 0)
            return err_set(FERRY_E_UNTRUSTED, "register %s: the host must carry label %s=%s (%s)",
                           host, req->v[i].key, req->v[i].value, why);
    }
    return 0;
}

static int register_enrolled(struct db *db, const Ferry__Wire__HostHello *hello,
                             const struct db_host_auth *auth, const struct label_set *labels,
                             const char *text, int64_t now)
{
    struct label_set req = {.n = 0};
    if (auth->required_labels[0] && labels_parse(auth->required_labels, &req) < 0)
        req.n = 0;
    int rc = carries(hello->name, labels, &req, "its join token said so");
    if (rc < 0)
        return rc;
    rc = db_host_touch(db, DB_TOUCH_HELLO, hello->name, hello->host_key.data,
                       (int64_t)hello->sent_ms, now, text, NULL, 0);
    if (rc == FERRY_E_INVALID)
        return err_set(FERRY_E_INVALID,
                       "register %s: hello is not newer than the last one seen (replayed?)",
                       hello->name);
    return rc;
}

/* A hello the registry will not serve yet: remember it for the operator
 * (bounded), then refuse with what is needed. */
static int register_pending(struct db *db, const Ferry__Wire__HostHello *hello, const char *text,
                            int64_t now, int rc_in)
{
    int is_new = 0;
    char why[600];
    snprintf(why, sizeof why, "%s", err_detail());
    if (db_pending_put(db, hello->name, hello->host_key.data, text, now, &is_new) == 0 && is_new)
        registry_log("pending: %s", why);
    return err_set(rc_in, "%s", why);
}

int hosts_register(struct db *db, const struct trust *trust, const Ferry__Wire__Register *reg)
{
    Ferry__Wire__HostHello *hello =
        ferry__wire__host_hello__unpack(NULL, reg->hello.len, reg->hello.data);
    if (!hello)
        return err_set(FERRY_E_PROTOCOL, "register: malformed hello");
    int64_t now = (int64_t)clock_unix_ms();
    struct label_set labels = {.n = 0};
    char text[HOSTS_LABELS_TEXT_MAX + 1] = "", id[KEY_ID_LEN + 1] = "";
    int rc = 0;
    if (!hello->name || !spec_name_ok(hello->name))
        rc = err_set(FERRY_E_INVALID, "register: invalid host name");
    else if (hello->host_key.len != crypto_sign_PUBLICKEYBYTES ||
             key_verify(hello->host_key.data, reg->hello.data, reg->hello.len, reg->signature.data,
                        reg->signature.len) < 0)
        rc = err_set(FERRY_E_SIGNATURE, "register %s: hello not signed by its host key",
                     hello->name);
    if (rc == 0)
        rc = hosts_labels_check(hello->name, hello->labels, hello->n_labels, &labels, text,
                                sizeof text);
    if (rc == 0)
        rc = hosts_time_check("hello", hello->name, hello->sent_ms, (uint64_t)now);
    if (rc == 0)
        rc = hosts_plugins_check(hello);
    if (rc < 0)
        goto out;
    key_id_of(hello->host_key.data, id);

    struct db_host_auth auth;
    rc = db_host_get(db, hello->name, &auth);
    if (rc == 0 && memcmp(auth.key, hello->host_key.data, 32) == 0) {
        rc = register_enrolled(db, hello, &auth, &labels, text, now);
        goto out;
    }
    if (rc == 0) {
        char enrolled_id[KEY_ID_LEN + 1];
        key_id_of(auth.key, enrolled_id);
        rc = err_set(FERRY_E_EXISTS,
                     "host %s is enrolled with another host key (%s, this one is %s); an "
                     "operator can re-key it: ferry hosts accept %s --replace",
                     hello->name, enrolled_id, id, hello->name);
        rc = register_pending(db, hello, text, now, rc);
        goto out;
    }
    if (rc != FERRY_E_NOTFOUND)
        goto out;
    if (hello->join_token.len == 0) {
        rc = err_set(FERRY_E_UNTRUSTED,
                     "host %s (key %s) is not enrolled: an operator must run 'ferry hosts "
                     "accept %s', or start the agent with --join-token",
                     hello->name, id, hello->name);
        rc = register_pending(db, hello, text, now, rc);
        goto out;
    }
    struct join_claims claims;
    rc = jointoken_verify(hello->join_token.data, hello->join_token.len, trust, (uint64_t)now,
                          HOSTS_CLOCK_WINDOW_MS, &claims);
    if (rc == 0)
        rc = carries(hello->name, &labels, &claims.labels, "its join token requires it");
    if (rc < 0) {
        char why[600];
        snprintf(why, sizeof why, "%s", err_detail());
        rc = err_set(rc, "host %s (key %s): %s", hello->name, id, why);
        rc = register_pending(db, hello, text, now, rc);
        goto out;
    }
    char required[HOSTS_LABELS_TEXT_MAX + 1] = "";
    labels_format(&claims.labels, required, sizeof required);
    int replaced = 0;
    rc = db_host_enroll(db, hello->name, hello->host_key.data, text, required,
                        (int64_t)hello->sent_ms, 0, now, 0, &replaced);
    if (rc == 0) {
        char subject[160];
        snprintf(subject, sizeof subject, "%s key %s (join token)", hello->name, id);
        audit_append(db, claims.signer, AUDIT_ROLE_OPERATOR, "enroll-host", subject);
        registry_log("host %s (key %s) enrolled with a join token signed by key %s", hello->name, id,
              claims.signer);
    }
out:
    if (rc == 0)
        rc = store_plugins(db, hello);
    if (rc == 0)
        registry_log("host %s registered (%s)", hello->name, text);
    ferry__wire__host_hello__free_unpacked(hello, NULL);
    return rc;
}

/* ---- report ------------------------------------------------------------------ */

static int store_events(struct db *db, const Ferry__Wire__ReportBody *body)
{
    /* Keep each change on its own, re-encoded: the snapshot replaces the
     * last one, the changes accumulate. */
    size_t n = body->n_events;
    uint8_t **bufs = calloc(n, sizeof *bufs);
    size_t *lens = calloc(n, sizeof *lens);
    int rc = bufs && lens ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        lens[i] = ferry__wire__workload_report__get_packed_size(body->events[i]);
        bufs[i] = malloc(lens[i] ? lens[i] : 1);
        if (!bufs[i])
            rc = -ENOMEM;
        else
            ferry__wire__workload_report__pack(body->events[i], bufs[i]);
    }
    if (rc == 0)
        rc = db_events_add(db, body->host, (const uint8_t *const *)bufs, lens, n);
    for (size_t i = 0; bufs && i < n; i++)
        free(bufs[i]);
    free(bufs);
    free(lens);
    return rc;
}

int hosts_report(struct db *db, const Ferry__Wire__Report *rep)
{
    /* The size first: a huge body is not even decoded (so its host is
     * not known yet). */
    if (rep->body.len > HOSTS_REPORT_MAX_BYTES)
        return err_set(FERRY_E_LIMIT, "report: %zu bytes, at most %u", rep->body.len,
                       HOSTS_REPORT_MAX_BYTES);
    int rc;
    Ferry__Wire__ReportBody *body =
        ferry__wire__report_body__unpack(NULL, rep->body.len, rep->body.data);
    if (!body)
        return err_set(FERRY_E_PROTOCOL, "report: malformed body");
    const char *host = body->host && *body->host ? body->host : "?";
    int64_t now = (int64_t)clock_unix_ms();
    struct db_host_auth auth;
    rc = db_host_get(db, host, &auth);
    if (rc == FERRY_E_NOTFOUND)
        rc = err_set(rc, "report from %s: host is not enrolled", host);
    if (rc == 0 &&
        key_verify(auth.key, rep->body.data, rep->body.len, rep->signature.data,
                   rep->signature.len) < 0)
        rc = err_set(FERRY_E_SIGNATURE, "report from %s: not signed by its host key", host);
    if (rc == 0)
        rc = hosts_report_check(host, rep->body.len, body);
    if (rc == 0)
        rc = hosts_time_check("report", host, body->sent_ms, (uint64_t)now);
    uint8_t *snap = NULL;
    size_t snap_len = 0;
    if (rc == 0) {
        /* The stored snapshot is the picture alone; changes go to events,
         * metrics to their own table. */
        Ferry__Wire__WorkloadReport **ev = body->events;
        size_t n_ev = body->n_events;
        Ferry__Wire__WorkloadMetrics **mv = body->metrics;
        size_t n_mv = body->n_metrics;
        body->events = NULL;
        body->n_events = 0;
        body->metrics = NULL;
        body->n_metrics = 0;
        snap_len = ferry__wire__report_body__get_packed_size(body);
        snap = malloc(snap_len ? snap_len : 1);
        if (snap)
            ferry__wire__report_body__pack(body, snap);
        body->events = ev;
        body->n_events = n_ev;
        body->metrics = mv;
        body->n_metrics = n_mv;
        rc = snap ? 0 : -ENOMEM;
    }
    if (rc == 0) {
        rc = db_host_touch(db, DB_TOUCH_REPORT, host, auth.key, (int64_t)body->sent_ms, now,
                           NULL, snap, snap_len);
        if (rc == FERRY_E_INVALID)
            rc = err_set(rc, "report from %s: not newer than the last one seen (replayed?)",
                         host);
    }
    if (rc == 0 && body->n_events > 0)
        rc = store_events(db, body);
    if (rc == 0)
        rc = rmetrics_store_report(db, host, body, now);
    if (rc == 0 && body->events_dropped)
        registry_log("host %s dropped %u state changes while the registry was away", host,
              body->events_dropped);
    free(snap);
    ferry__wire__report_body__free_unpacked(body, NULL);
    return rc;
}

/* ---- poll --------------------------------------------------------------------- */

int hosts_poll_auth(struct db *db, struct liveness *lv, const Ferry__Wire__Poll *p)
{
    const char *host = p->host && *p->host ? p->host : "?";
    if (p->body.len == 0 || p->signature.len == 0)
        return err_set(FERRY_E_SIGNATURE, "poll for %s: not signed by its host key", host);
    Ferry__Wire__PollBody *b = ferry__wire__poll_body__unpack(NULL, p->body.len, p->body.data);
    if (!b)
        return err_set(FERRY_E_PROTOCOL, "poll for %s: malformed body", host);
    int64_t now = (int64_t)clock_unix_ms();
    int rc = 0;
    /* The parking code reads the outer fields: they must be the signed ones. */
    if (!b->host || strcmp(b->host, host) != 0 || b->known_serial != p->known_serial ||
        b->wait_ms != p->wait_ms)
        rc = err_set(FERRY_E_INVALID, "poll for %s: the signed body says otherwise", host);
    struct db_host_auth auth;
    if (rc == 0 && (rc = db_host_get(db, host, &auth)) == FERRY_E_NOTFOUND)
        rc = err_set(rc, "host '%s' is not enrolled", host);
    if (rc == 0 && key_verify(auth.key, p->body.data, p->body.len, p->signature.data,
                              p->signature.len) < 0)
        rc = err_set(FERRY_E_SIGNATURE, "poll for %s: not signed by its host key", host);
    if (rc == 0)
        rc = hosts_time_check("poll", host, b->sent_ms, (uint64_t)now);
    if (rc == 0) {
        /* In memory: a poll costs no database write (liveness.h). */
        rc = liveness_poll(lv, host, auth.key, auth.poll_ms, (int64_t)b->sent_ms, now);
        if (rc == FERRY_E_INVALID)
            rc = err_set(rc, "poll for %s: not newer than the last one seen (replayed?)", host);
    }
    ferry__wire__poll_body__free_unpacked(b, NULL);
    return rc;
}

/* ---- accept -------------------------------------------------------------------- */

int hosts_accept(struct db *db, struct liveness *lv, const struct trust *trust,
                 const Ferry__Wire__AcceptHost *a, Ferry__Wire__Response *resp,
                 struct hosts_accept_reply *out)
{
    const struct key_public *k = a->signer ? trust_find(trust, a->signer) : NULL;
    if (!k)
        return err_set(FERRY_E_UNTRUSTED, "accept refused: signed by key %.16s, which is not trusted",
                       a->signer ? a->signer : "?");
    if (key_verify(k->pk, a->body.data, a->body.len, a->signature.data, a->signature.len) < 0)
        return err_set(FERRY_E_SIGNATURE, "accept refused: bad signature for key %s", k->id);
    Ferry__Wire__AcceptBody *b = ferry__wire__accept_body__unpack(NULL, a->body.len, a->body.data);
    if (!b)
        return err_set(FERRY_E_PROTOCOL, "accept: malformed body");
    int64_t now = (int64_t)clock_unix_ms();
    struct db_pending *pend = NULL;
    size_t np = 0;
    int rc = 0;
    if (!b->name || !spec_name_ok(b->name))
        rc = err_set(FERRY_E_INVALID, "accept: invalid host name");
    if (rc == 0)
        rc = hosts_time_check("accept", b->name, b->sent_ms, (uint64_t)now);
    if (rc == 0)
        rc = db_pending_for(db, b->name, &pend, &np);
    const struct db_pending *pick = NULL;
    char id[KEY_ID_LEN + 1] = "";
    for (size_t i = 0; rc == 0 && i < np; i++) {
        key_id_of(pend[i].key, id);
        if (b->key_id && *b->key_id && strcmp(b->key_id, id) != 0)
            continue;
        if (pick) {
            rc = err_set(FERRY_E_INVALID,
                         "accept %s: more than one key asks for this name; give --key-id "
                         "(see ferry hosts)",
                         b->name);
            break;
        }
        pick = &pend[i];
    }
    if (rc == 0 && !pick) {
        struct db_host_auth auth;
        int enrolled = db_host_get(db, b->name, &auth) == 0;
        if (enrolled)
            key_id_of(auth.key, id);
        if (enrolled && (!b->key_id || !*b->key_id || strcmp(id, b->key_id) == 0))
            rc = err_set(FERRY_E_EXISTS, "accept %s: already enrolled (key %s)", b->name, id);
        else
            rc = err_set(FERRY_E_NOTFOUND,
                         "accept %s: no pending request%s%s from this host (is its agent "
                         "running against this registry?)",
                         b->name, b->key_id && *b->key_id ? " with key " : "",
                         b->key_id && *b->key_id ? b->key_id : "");
    }
    int replaced = 0;
    if (rc == 0) {
        key_id_of(pick->key, id);
        /* Last seen: its last signed hello, not the operator's accept. */
        rc = db_host_enroll(db, b->name, pick->key, pick->labels, "", 0, (int64_t)b->sent_ms,
                            pick->last_seen_ms, b->replace, &replaced);
    }
    if (rc == 0 && replaced)
        liveness_forget(lv, b->name); /* the old key's poll marks go too */
    if (rc == 0) {
        char subject[160];
        snprintf(subject, sizeof subject, "%s key %s%s", b->name, id, replaced ? " (re-keyed)" : "");
        audit_append(db, k->id, AUDIT_ROLE_OPERATOR, "accept-host", subject);
        registry_log("host %s (key %s) %s by key %s", b->name, id, replaced ? "re-keyed" : "accepted",
              k->id);
        ferry__wire__accept_reply__init(&out->reply);
        snprintf(out->name, sizeof out->name, "%s", b->name);
        snprintf(out->key_id, sizeof out->key_id, "%s", id);
        out->reply.name = out->name;
        out->reply.key_id = out->key_id;
        out->reply.replaced = replaced;
        resp->body_case = FERRY__WIRE__RESPONSE__BODY_ACCEPTED;
        resp->accepted = &out->reply;
    }
    free(pend);
    ferry__wire__accept_body__free_unpacked(b, NULL);
    return rc;
}

/* ---- remove ---------------------------------------------------------------------- */

int hosts_remove(struct db *db, struct liveness *lv, const struct trust *trust, int host_ttl_ms,
                 const Ferry__Wire__RemoveHost *rm)
{
    const struct key_public *k = rm->signer ? trust_find(trust, rm->signer) : NULL;
    if (!k)
        return err_set(FERRY_E_UNTRUSTED, "hosts rm refused: signed by key %.16s, which is not "
                                          "trusted",
                       rm->signer ? rm->signer : "?");
    if (key_verify(k->pk, rm->body.data, rm->body.len, rm->signature.data, rm->signature.len) < 0)
        return err_set(FERRY_E_SIGNATURE, "hosts rm refused: bad signature for key %s", k->id);
    Ferry__Wire__RemoveHostBody *b =
        ferry__wire__remove_host_body__unpack(NULL, rm->body.len, rm->body.data);
    if (!b)
        return err_set(FERRY_E_PROTOCOL, "hosts rm: malformed body");
    int64_t now = (int64_t)clock_unix_ms();
    int rc = 0;
    if (!b->name || !spec_name_ok(b->name))
        rc = err_set(FERRY_E_INVALID, "hosts rm: invalid host name");
    if (rc == 0)
        rc = hosts_time_check("hosts rm", b->name, b->sent_ms, (uint64_t)now);
    struct db_host *hosts = NULL;
    size_t n = 0;
    if (rc == 0)
        rc = db_host_list(db, &hosts, &n);
    if (rc == 0)
        liveness_overlay(lv, hosts, n);
    /* A host still talking to the registry would only come back: refuse,
     * so the operator stops its agent first. */
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (!hosts[i].pending && strcmp(hosts[i].name, b->name) == 0 &&
            now - hosts[i].last_seen_ms <= host_ttl_ms)
            rc = err_set(FERRY_E_INVALID,
                         "hosts rm %s: the host is online (stop its agent first, then wait "
                         "until ferry hosts shows it offline)",
                         b->name);
    db_host_list_free(hosts, n);
    if (rc == 0)
        rc = db_host_remove(db, b->name);
    if (rc == 0)
        liveness_forget(lv, b->name);
    if (rc == 0) {
        audit_append(db, k->id, AUDIT_ROLE_OPERATOR, "remove-host", b->name);
        registry_log("host %s removed by key %s", b->name, k->id);
    }
    ferry__wire__remove_host_body__free_unpacked(b, NULL);
    return rc;
}
