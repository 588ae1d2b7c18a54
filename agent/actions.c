#include "actions.h"
#include "alog.h"
#include "clock.h"
#include "error.h"
#include "govcheck.h"
#include "spec.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct seen {
    uint8_t id[ACTION_ID_LEN];
    uint64_t expires_ms; /* 0: free */
};

struct outgoing {
    uint8_t *body; /* encoded ActionReplyBody */
    size_t len;
};

struct agent_actions {
    struct agent_actions_config cfg;
    char host[72];
    uv_async_t async;
    pthread_mutex_t lock;
    struct seen seen[AGENT_ACTIONS_SEEN_MAX];
    Ferry__Wire__ActionBody *inbox[AGENT_ACTIONS_INBOX_MAX];
    size_t n_inbox;
    struct outgoing outbox[AGENT_ACTIONS_OUTBOX_MAX];
    size_t n_outbox;
};

/* ---- replies -------------------------------------------------------------------- */

/* Queue a reply for the link. The error text, JSON and data are copied. */
static void reply(struct agent_actions *aa, const uint8_t *id, int rc, const char *json,
                  const uint8_t *data, size_t len)
{
    Ferry__Wire__ActionReplyBody b;
    ferry__wire__action_reply_body__init(&b);
    char err[ACTION_ERROR_MAX];
    b.host = aa->host;
    b.id = (ProtobufCBinaryData){ACTION_ID_LEN, (uint8_t *)id};
    b.code = wire_code_of(rc);
    if (rc < 0) {
        snprintf(err, sizeof err, "%s", err_message(rc));
        b.error = err;
    }
    b.reply_json = (char *)(json ? json : "");
    b.data = (ProtobufCBinaryData){len, (uint8_t *)data};
    size_t n = ferry__wire__action_reply_body__get_packed_size(&b);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return;
    ferry__wire__action_reply_body__pack(&b, buf);
    int queued = 0;
    pthread_mutex_lock(&aa->lock);
    if (aa->n_outbox < AGENT_ACTIONS_OUTBOX_MAX) {
        aa->outbox[aa->n_outbox++] = (struct outgoing){buf, n};
        queued = 1;
    }
    pthread_mutex_unlock(&aa->lock);
    if (!queued) {
        free(buf);
        alog(FERRY_LOG_WARN, "action reply dropped: %d replies already wait for the registry",
             AGENT_ACTIONS_OUTBOX_MAX);
        return;
    }
    if (aa->cfg.reply_ready)
        aa->cfg.reply_ready(aa->cfg.reply_arg);
}

Ferry__Wire__ActionReplyBody *agent_actions_next_reply(struct agent_actions *aa)
{
    struct outgoing o = {0};
    pthread_mutex_lock(&aa->lock);
    if (aa->n_outbox > 0) {
        o = aa->outbox[0];
        memmove(aa->outbox, aa->outbox + 1, (aa->n_outbox - 1) * sizeof aa->outbox[0]);
        aa->n_outbox--;
    }
    pthread_mutex_unlock(&aa->lock);
    if (!o.body)
        return NULL;
    Ferry__Wire__ActionReplyBody *b = ferry__wire__action_reply_body__unpack(NULL, o.len, o.body);
    free(o.body);
    return b;
}

/* ---- the logs verb ------------------------------------------------------------------ */

int logs_request_parse(const char *text, struct logs_request *out)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &e);
    struct logs_request r = {.tail = LOGS_TAIL_DEFAULT};
    int rc = j && json_is_object(j) ? 0 : err_set(FERRY_E_INVALID, "logs: the request is not a JSON object");
    const char *k;
    json_t *v;
    if (rc == 0) {
        json_object_foreach(j, k, v) {
            if (strcmp(k, "stream") == 0 && json_is_string(v) &&
                (strcmp(json_string_value(v), "stdout") == 0 ||
                 strcmp(json_string_value(v), "stderr") == 0)) {
                r.stderr_stream = strcmp(json_string_value(v), "stderr") == 0;
            } else if (strcmp(k, "tail") == 0 && json_is_integer(v) && json_integer_value(v) >= 1 &&
                       json_integer_value(v) <= LOGS_TAIL_MAX) {
                r.tail = (uint32_t)json_integer_value(v);
            } else if (strcmp(k, "offset") == 0 && json_is_integer(v) && json_integer_value(v) >= 0) {
                r.has_offset = 1;
                r.offset = (uint64_t)json_integer_value(v);
            } else if (strcmp(k, "rotation") == 0 && json_is_string(v) &&
                       strlen(json_string_value(v)) < sizeof r.rotation) {
                snprintf(r.rotation, sizeof r.rotation, "%s", json_string_value(v));
            } else {
                rc = err_set(FERRY_E_INVALID,
                             "logs: '%.40s' is not a valid field here (stream stdout|stderr, tail "
                             "1..%d, offset >= 0, rotation)",
                             k, LOGS_TAIL_MAX);
                break;
            }
        }
    }
    json_decref(j);
    if (rc == 0)
        *out = r;
    return rc;
}

struct buf {
    uint8_t *p;
    size_t len, cap;
};

/* Append bytes [from, to) of the open file fd. */
static int buf_read(struct buf *b, int fd, uint64_t from, uint64_t to)
{
    if (to <= from)
        return 0;
    size_t want = (size_t)(to - from);
    if (b->len + want > b->cap) {
        size_t cap = b->len + want;
        uint8_t *p = realloc(b->p, cap ? cap : 1);
        if (!p)
            return -ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    while (want > 0) {
        ssize_t n = pread(fd, b->p + b->len, want, (off_t)from);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break; /* the file shrank meanwhile: take what there was */
        b->len += (size_t)n;
        from += (uint64_t)n;
        want -= (size_t)n;
    }
    return 0;
}

struct logfile {
    int fd;          /* -1 when absent */
    uint64_t size;
    char ident[64];  /* of the rotated file: changes when a rotation rewrites it */
};

static void logfile_open(struct logfile *f, const char *path, int rotated)
{
    f->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    f->size = 0;
    snprintf(f->ident, sizeof f->ident, "none");
    struct stat st;
    if (f->fd >= 0 && (fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode))) {
        close(f->fd);
        f->fd = -1;
    }
    if (f->fd < 0)
        return;
    f->size = (uint64_t)st.st_size;
    if (rotated)
        snprintf(f->ident, sizeof f->ident, "%llu:%lld.%09ld", (unsigned long long)st.st_size,
                 (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec);
}

/* Where the last n lines of p[0..len) start; *whole = 0 when fewer were
 * found. */
static size_t last_lines(const uint8_t *p, size_t len, uint32_t n, int *whole)
{
    size_t end = len;
    if (end > 0 && p[end - 1] == '\n')
        end--;
    uint32_t seen = 0;
    for (size_t i = end; i > 0; i--)
        if (p[i - 1] == '\n' && ++seen == n) {
            *whole = 1;
            return i;
        }
    *whole = 0;
    return 0;
}

static int read_tail(const struct logfile *cur, const struct logfile *old, uint32_t n,
                     size_t max, struct buf *b, int *truncated)
{
    uint64_t take = cur->size < max ? cur->size : max;
    int rc = cur->fd >= 0 ? buf_read(b, cur->fd, cur->size - take, cur->size) : 0;
    int mid = cur->size > take, whole = 0;
    size_t start = rc == 0 ? last_lines(b->p, b->len, n, &whole) : 0;
    if (rc == 0 && !whole && !mid && old->fd >= 0 && b->len < max) {
        /* Not enough lines since the last rotation: the older ones first. */
        struct buf ob = {0};
        uint64_t otake = old->size < max - b->len ? old->size : max - b->len;
        rc = buf_read(&ob, old->fd, old->size - otake, old->size);
        if (rc == 0) {
            uint8_t *joined = realloc(ob.p, ob.len + b->len + 1);
            if (!joined) {
                rc = -ENOMEM;
            } else {
                if (b->len)
                    memcpy(joined + ob.len, b->p, b->len);
                free(b->p);
                b->p = joined;
                b->len += ob.len;
                b->cap = b->len + 1;
                ob.p = NULL;
                mid = old->size > otake;
                start = last_lines(b->p, b->len, n, &whole);
            }
        }
        free(ob.p);
    }
    if (rc < 0)
        return rc;
    if (!whole && mid) {
        /* The bound cut the oldest line: drop what is left of it. */
        const uint8_t *nl = memchr(b->p, '\n', b->len);
        start = nl ? (size_t)(nl - b->p) + 1 : 0;
        *truncated = 1;
    }
    if (start > 0)
        memmove(b->p, b->p + start, b->len - start);
    b->len -= start;
    return 0;
}

struct range {
    int fd;
    uint64_t from, to;
};

static int read_follow(const struct logfile *cur, const struct logfile *old,
                       const struct logs_request *req, size_t max, struct buf *b, int *truncated)
{
    /* Up to two ranges: the rest of the rotated file (when a rotation came
     * since the cursor), then the current file. */
    struct range r[2];
    int nr = 0;
    if (req->rotation[0] && strcmp(req->rotation, old->ident) != 0 && old->fd >= 0) {
        if (req->offset < old->size)
            r[nr++] = (struct range){old->fd, req->offset, old->size};
        r[nr++] = (struct range){cur->fd, 0, cur->size};
    } else if (req->offset > cur->size) {
        r[nr++] = (struct range){cur->fd, 0, cur->size}; /* rotated, not yet seen as such */
    } else {
        r[nr++] = (struct range){cur->fd, req->offset, cur->size};
    }
    uint64_t total = 0;
    for (int i = 0; i < nr; i++)
        total += r[i].to - r[i].from;
    uint64_t skip = total > max ? total - max : 0;
    *truncated = skip > 0;
    for (int i = 0; i < nr; i++) {
        uint64_t span = r[i].to - r[i].from, s = skip < span ? skip : span;
        skip -= s;
        if (r[i].fd < 0)
            continue;
        int rc = buf_read(b, r[i].fd, r[i].from + s, r[i].to);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int logs_read(const char *dir, const struct logs_request *req, size_t max_bytes,
              struct logs_result *out)
{
    const char *name = req->stderr_stream ? "stderr.log" : "stdout.log";
    char path[4300], rot[4310];
    snprintf(path, sizeof path, "%s/.ferry/%s", dir, name);
    snprintf(rot, sizeof rot, "%s.1", path);
    struct logfile cur, old;
    logfile_open(&cur, path, 0);
    logfile_open(&old, rot, 1);
    struct buf b = {0};
    int truncated = 0;
    int rc = req->has_offset ? read_follow(&cur, &old, req, max_bytes, &b, &truncated)
                             : read_tail(&cur, &old, req->tail, max_bytes, &b, &truncated);
    if (rc == 0) {
        out->data = b.p;
        out->len = b.len;
        out->offset = cur.size;
        snprintf(out->rotation, sizeof out->rotation, "%s", old.ident);
        out->truncated = truncated;
    } else {
        free(b.p);
        rc = err_set(rc, "logs: %s: %s", path, strerror(-rc));
    }
    if (cur.fd >= 0)
        close(cur.fd);
    if (old.fd >= 0)
        close(old.fd);
    return rc;
}

static void do_logs(struct agent_actions *aa, const Ferry__Wire__ActionBody *b)
{
    struct logs_request req;
    char dir[4096], version[72];
    int rc = logs_request_parse(b->request_json ? b->request_json : "{}", &req);
    if (rc == 0) {
        rc = aa->cfg.lookup(aa->cfg.lookup_arg, b->workload, dir, sizeof dir, version,
                            sizeof version);
        if (rc == FERRY_E_NOTFOUND)
            rc = err_set(rc, "workload %s does not run on host %s", b->workload, aa->host);
    }
    struct logs_result res = {0};
    if (rc == 0)
        rc = logs_read(dir, &req, LOGS_MAX_BYTES, &res);
    if (rc < 0) {
        reply(aa, b->id.data, rc, NULL, NULL, 0);
        return;
    }
    json_t *j = json_pack("{s:s, s:s, s:I, s:s, s:b}", "version", version, "stream",
                          req.stderr_stream ? "stderr" : "stdout", "offset",
                          (json_int_t)res.offset, "rotation", res.rotation, "truncated",
                          res.truncated);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text)
        reply(aa, b->id.data, 0, text, res.data, res.len);
    else
        reply(aa, b->id.data, -ENOMEM, NULL, NULL, 0);
    free(text);
    free(res.data);
}

void agent_actions_answer(struct agent_actions *aa, const uint8_t id[ACTION_ID_LEN], int rc,
                          const char *json, const uint8_t *data, size_t len)
{
    /* The plugin's answer goes out under the same bounds as any reply. */
    if (rc == 0 && (len > ACTION_REPLY_DATA_MAX || (json && strlen(json) > ACTION_REPLY_JSON_MAX)))
        rc = err_set(FERRY_E_LIMIT, "the answer is over the reply bounds (%u bytes of JSON, %u of data)",
                     (unsigned)ACTION_REPLY_JSON_MAX, (unsigned)ACTION_REPLY_DATA_MAX);
    reply(aa, id, rc, rc == 0 ? json : NULL, rc == 0 ? data : NULL, rc == 0 ? len : 0);
}

/* Any other verb: the plugin's, through the host's callback, which answers
 * later through agent_actions_answer. */
static void do_other(struct agent_actions *aa, const Ferry__Wire__ActionBody *b)
{
    int rc = aa->cfg.other_verb
                 ? aa->cfg.other_verb(aa->cfg.other_verb_arg, aa, b->id.data, b->workload, b->verb,
                                      b->request_json ? b->request_json : "{}")
                 : err_set(FERRY_E_NOTFOUND, "action %s: no such verb on host %s", b->verb,
                           aa->host);
    if (rc < 0)
        reply(aa, b->id.data, rc, NULL, NULL, 0);
}

/* ---- receiving ------------------------------------------------------------------- */

/* Remember id until expires_ms; FERRY_E_EXISTS when seen already,
 * FERRY_E_LIMIT when every slot holds an id that has not expired. */
static int seen_add(struct agent_actions *aa, const uint8_t *id, uint64_t expires_ms,
                    uint64_t now)
{
    struct seen *slot = NULL;
    for (size_t i = 0; i < AGENT_ACTIONS_SEEN_MAX; i++) {
        struct seen *s = &aa->seen[i];
        if (s->expires_ms > now && memcmp(s->id, id, ACTION_ID_LEN) == 0)
            return err_set(FERRY_E_EXISTS, "action refused: its id was used already (replayed?)");
        if (!slot && s->expires_ms <= now)
            slot = s;
    }
    if (!slot)
        return err_set(FERRY_E_LIMIT, "action refused: %d actions in the last minutes already",
                       AGENT_ACTIONS_SEEN_MAX);
    memcpy(slot->id, id, ACTION_ID_LEN);
    slot->expires_ms = expires_ms;
    return 0;
}

/* A plugin verb's request gains who signed it: "requester" (the key id)
 * and "requester_key" (its public key, hex, from this agent's trust), set
 * here over whatever the request said, so a plugin can seal an answer to
 * the asker and keep what one key started from another (kernels). */
/* docs/notebooks.md, "Who may act on a kernel". With a policy the agent
 * verifies, the policy decides (as last verified and cached: no registry
 * call on this path); a key limited to some kinds is a data scientist's,
 * which holds the operator role only to reach its own workloads. */
static bool is_operator(struct agent_actions *aa, const char *signer)
{
    if (aa->cfg.admins && aa->cfg.policy_cache) {
        struct policy *pol = NULL;
        bool yes = false;
        if (govcheck_policy(NULL, aa->cfg.admins, aa->cfg.policy_cache, &pol) == 0) {
            const struct policy_key *k = policy_key_find(pol, signer);
            yes = k && !k->revoked && (k->roles & ROLE_OPERATOR) && k->kinds == 0;
        }
        free(pol);
        return yes;
    }
    return aa->cfg.operators && trust_find(aa->cfg.operators, signer) != NULL;
}

static int add_requester(struct agent_actions *aa, Ferry__Wire__ActionBody *b, const char *signer)
{
    const struct key_public *k = trust_find(aa->cfg.trust, signer);
    json_t *j = json_loads(b->request_json ? b->request_json : "{}", 0, NULL);
    if (!k || !json_is_object(j)) {
        json_decref(j);
        return err_set(FERRY_E_INVALID, "action %s: the request is not a JSON object", b->verb);
    }
    char hex[2 * sizeof k->pk + 1];
    sodium_bin2hex(hex, sizeof hex, k->pk, sizeof k->pk);
    json_object_set_new(j, "requester", json_string(signer));
    json_object_set_new(j, "requester_key", json_string(hex));
    json_object_set_new(j, "requester_operator", json_boolean(is_operator(aa, signer)));
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!text)
        return -ENOMEM;
    /* An absent field points at protobuf-c's shared empty default. */
    if (b->request_json && b->request_json[0])
        free(b->request_json);
    b->request_json = text;
    return 0;
}

void agent_actions_receive(struct agent_actions *aa, const Ferry__Wire__SignedAction *sa)
{
    /* The id, unverified, only to address a refusal to whoever asked. */
    Ferry__Wire__ActionBody *raw =
        sa->body.len <= ACTION_SIGNED_MAX_BYTES
            ? ferry__wire__action_body__unpack(NULL, sa->body.len, sa->body.data)
            : NULL;
    if (!raw || raw->id.len != ACTION_ID_LEN) {
        alog(FERRY_LOG_WARN, "action dropped: malformed");
        if (raw)
            ferry__wire__action_body__free_unpacked(raw, NULL);
        return;
    }
    uint8_t id[ACTION_ID_LEN];
    memcpy(id, raw->id.data, ACTION_ID_LEN);
    ferry__wire__action_body__free_unpacked(raw, NULL);

    uint64_t now = clock_unix_ms();
    Ferry__Wire__ActionBody *b = NULL;
    char signer[KEY_ID_LEN + 1] = "";
    int rc = action_verify(sa, aa->cfg.trust, now, &b, signer);
    if (rc == FERRY_E_UNTRUSTED && aa->cfg.trust_logs && aa->cfg.trust_logs->n) {
        /* Not an operator's: a logs-only key may still have signed it. */
        char detail[512];
        snprintf(detail, sizeof detail, "%s", err_detail());
        int rc2 = action_verify(sa, aa->cfg.trust_logs, now, &b, signer);
        if (rc2 == 0 && strcmp(b->verb, "logs") != 0) {
            rc = err_set(FERRY_E_UNTRUSTED,
                         "action %s for %s on %s refused: key %s may sign logs actions only",
                         b->verb, b->workload, b->host, signer);
            action_body_free(b);
            b = NULL;
        } else if (rc2 == 0) {
            rc = 0;
        } else if (rc2 != FERRY_E_UNTRUSTED) {
            rc = rc2; /* a logs key's action, but tampered, expired or malformed */
        } else {
            rc = err_set(FERRY_E_UNTRUSTED, "%s", detail);
        }
    }
    if (rc == 0 && strcmp(b->verb, "logs") != 0)
        rc = add_requester(aa, b, signer);
    if (rc == 0 && strcmp(b->host, aa->host) != 0)
        rc = err_set(FERRY_E_INVALID, "action refused: addressed to host %s, this is %s", b->host,
                     aa->host);
    if (rc == 0) {
        pthread_mutex_lock(&aa->lock);
        rc = seen_add(aa, id, b->expires_ms, now);
        if (rc == 0 && aa->n_inbox >= AGENT_ACTIONS_INBOX_MAX)
            rc = err_set(FERRY_E_LIMIT, "action refused: %d actions are already waiting on %s",
                         AGENT_ACTIONS_INBOX_MAX, aa->host);
        if (rc == 0) {
            aa->inbox[aa->n_inbox++] = b;
            b = NULL;
        }
        pthread_mutex_unlock(&aa->lock);
    }
    if (rc < 0) {
        alog(FERRY_LOG_WARN, "%s", err_message(rc));
        reply(aa, id, rc, NULL, NULL, 0);
        action_body_free(b);
        return;
    }
    uv_async_send(&aa->async);
}

/* Loop thread: carry out what was received. */
static void on_async(uv_async_t *h)
{
    struct agent_actions *aa = h->data;
    for (;;) {
        Ferry__Wire__ActionBody *b = NULL;
        pthread_mutex_lock(&aa->lock);
        if (aa->n_inbox > 0) {
            b = aa->inbox[0];
            memmove(aa->inbox, aa->inbox + 1, (aa->n_inbox - 1) * sizeof aa->inbox[0]);
            aa->n_inbox--;
        }
        pthread_mutex_unlock(&aa->lock);
        if (!b)
            break;
        err_clear();
        if (clock_unix_ms() >= b->expires_ms)
            reply(aa, b->id.data, err_set(FERRY_E_INVALID, "action expired before it ran"), NULL,
                  NULL, 0);
        else if (strcmp(b->verb, "logs") == 0)
            do_logs(aa, b);
        else
            do_other(aa, b);
        action_body_free(b);
    }
}

int agent_actions_new(uv_loop_t *loop, const struct agent_actions_config *cfg,
                      struct agent_actions **out)
{
    struct agent_actions *aa = calloc(1, sizeof *aa);
    if (!aa)
        return -ENOMEM;
    aa->cfg = *cfg;
    snprintf(aa->host, sizeof aa->host, "%s", cfg->host);
    pthread_mutex_init(&aa->lock, NULL);
    if (uv_async_init(loop, &aa->async, on_async) != 0) {
        pthread_mutex_destroy(&aa->lock);
        free(aa);
        return err_set(-EIO, "actions: cannot set up the loop handle");
    }
    aa->async.data = aa;
    *out = aa;
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    struct agent_actions *aa = h->data;
    for (size_t i = 0; i < aa->n_inbox; i++)
        action_body_free(aa->inbox[i]);
    for (size_t i = 0; i < aa->n_outbox; i++)
        free(aa->outbox[i].body);
    pthread_mutex_destroy(&aa->lock);
    free(aa);
}

void agent_actions_close(struct agent_actions *aa)
{
    if (aa)
        uv_close((uv_handle_t *)&aa->async, on_closed);
}
