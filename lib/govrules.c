/* Rule evaluation and governance signatures (govrules.h). */
#include "govrules.h"
#include "error.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define APPROVAL_PURPOSE "ferry-approval-v1"
#define PROVENANCE_PURPOSE "ferry-provenance-v1"
#define STATEMENT_MAX 1024
#define SIGNATURES_MAX_GOV 64

static void add(struct gov_result *r, const char *fmt, ...) FY_PRINTF(2, 3);
static void add(struct gov_result *r, const char *fmt, ...)
{
    r->allowed = 0;
    if (r->n == GOV_MISSING_MAX)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->missing[r->n++], GOV_REASON_MAX, fmt, ap);
    va_end(ap);
}

const struct policy_rule *gov_rule_for(const struct policy *p, const char *kind,
                                       const char *channel)
{
    for (size_t i = 0; kind && channel && i < p->n_rules; i++)
        if (strcmp(p->rules[i].kind, kind) == 0 && strcmp(p->rules[i].channel, channel) == 0)
            return &p->rules[i];
    return NULL;
}

/* The bytes an approval or provenance signature covers. */
static size_t message_of(const char *role, const char *statement, const struct digest *d,
                         uint8_t *buf, size_t cap)
{
    int prov = strcmp(role, "provenance") == 0;
    const char *purpose = prov ? PROVENANCE_PURPOSE : APPROVAL_PURPOSE;
    size_t n = 0, pl = strlen(purpose) + 1, rl = strlen(role) + 1;
    size_t sl = prov && statement ? strlen(statement) : 0;
    if (pl + rl + DIGEST_LEN + sl > cap)
        return 0;
    memcpy(buf + n, purpose, pl), n += pl;
    memcpy(buf + n, role, rl), n += rl;
    memcpy(buf + n, d->b, DIGEST_LEN), n += DIGEST_LEN;
    memcpy(buf + n, statement ? statement : "", sl), n += sl;
    return n;
}

static int sign_extra(const struct key_secret *k, const struct digest *d, const char *role,
                      const char *statement, Ferry__Signature **out)
{
    uint8_t msg[STATEMENT_MAX + 128];
    size_t n = message_of(role, statement, d, msg, sizeof msg);
    if (!n)
        return err_set(FERRY_E_LIMIT, "provenance statement longer than %d bytes", STATEMENT_MAX);
    Ferry__Signature *s = malloc(sizeof *s);
    uint8_t *pk = malloc(crypto_sign_PUBLICKEYBYTES), *sig = malloc(crypto_sign_BYTES);
    char *id = strdup(k->pub.id), *r = strdup(role), *st = strdup(statement ? statement : "");
    if (!s || !pk || !sig || !id || !r || !st) {
        free(s), free(pk), free(sig), free(id), free(r), free(st);
        return -ENOMEM;
    }
    ferry__signature__init(s);
    memcpy(pk, k->pub.pk, crypto_sign_PUBLICKEYBYTES);
    key_sign(k, msg, n, sig);
    s->key_id = id;
    s->public_key = (ProtobufCBinaryData){crypto_sign_PUBLICKEYBYTES, pk};
    s->signature = (ProtobufCBinaryData){crypto_sign_BYTES, sig};
    s->role = r;
    s->statement = st;
    *out = s;
    return 0;
}

int gov_sign_approval(const struct key_secret *k, const struct digest *d, const char *role,
                      Ferry__Signature **out)
{
    if (strcmp(role, "approver") != 0 && strcmp(role, "privacy") != 0)
        return err_set(FERRY_E_INVALID, "role '%s': an approval is by approver or privacy", role);
    return sign_extra(k, d, role, NULL, out);
}

int gov_sign_provenance(const struct key_secret *k, const struct digest *d,
                        const char *statement, Ferry__Signature **out)
{
    int rc = gov_statement_check(statement);
    return rc < 0 ? rc : sign_extra(k, d, "provenance", statement, out);
}

int gov_verify_extra(const Ferry__Signature *s, const struct digest *d)
{
    if (!s->role || !s->role[0] || !s->key_id ||
        s->public_key.len != crypto_sign_PUBLICKEYBYTES)
        return err_set(FERRY_E_SIGNATURE, "not an approval or provenance signature");
    char id[KEY_ID_LEN + 1];
    key_id_of(s->public_key.data, id);
    if (strcmp(id, s->key_id) != 0)
        return err_set(FERRY_E_SIGNATURE, "signature names key %.16s but carries key %s",
                       s->key_id, id);
    uint8_t msg[STATEMENT_MAX + 128];
    size_t n = message_of(s->role, s->statement, d, msg, sizeof msg);
    if (!n || key_verify(s->public_key.data, msg, n, s->signature.data, s->signature.len) != 0)
        return err_set(FERRY_E_SIGNATURE, "%s signature by key %s does not verify", s->role, id);
    return 0;
}

int gov_statement_get(const char *statement, const char *field, char *out, size_t cap)
{
    size_t fl = strlen(field);
    for (const char *p = statement; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > fl && strncmp(p, field, fl) == 0 && p[fl] == '=') {
            size_t vl = len - fl - 1;
            if (vl >= cap)
                vl = cap - 1;
            memcpy(out, p + fl + 1, vl);
            out[vl] = '\0';
            return 0;
        }
        p = end ? end + 1 : NULL;
    }
    return -1;
}

int gov_statement_check(const char *statement)
{
    if (!statement || strlen(statement) > STATEMENT_MAX)
        return err_set(FERRY_E_INVALID, "--provenance: at most %d bytes", STATEMENT_MAX);
    for (const char *p = statement; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (!eq || eq == p || eq == p + len - 1)
            return err_set(FERRY_E_INVALID, "--provenance '%.200s': expected KEY=VALUE[,KEY=VALUE]",
                           statement);
        for (const char *q = p; q < p + len; q++)
            if ((unsigned char)*q < 0x20)
                return err_set(FERRY_E_INVALID, "--provenance: control character");
        p = end ? end + 1 : p + len;
    }
    char b[8];
    if (gov_statement_get(statement, "builder", b, sizeof b) < 0)
        return err_set(FERRY_E_INVALID, "--provenance '%.200s': builder=ID is required", statement);
    return 0;
}

/* Distinct keys that hold role in p, are not revoked, and signed a valid
 * approval of that role over d. One key counts once (TUF's thresholds). */
static unsigned count_approvals(const struct policy *p, const struct gov_subject *s,
                                const char *role, unsigned role_bit)
{
    const char *seen[SIGNATURES_MAX_GOV];
    unsigned n = 0;
    for (size_t i = 0; s->sigs && i < s->sigs->n_signatures; i++) {
        const Ferry__Signature *g = s->sigs->signatures[i];
        if (!g->role || strcmp(g->role, role) != 0)
            continue;
        const struct policy_key *k = policy_key_find(p, g->key_id);
        if (!k || k->revoked || !(k->roles & role_bit) || gov_verify_extra(g, s->digest) < 0)
            continue;
        int dup = 0;
        for (unsigned j = 0; j < n; j++)
            dup |= strcmp(seen[j], g->key_id) == 0;
        if (!dup && n < SIGNATURES_MAX_GOV)
            seen[n++] = g->key_id;
    }
    return n;
}

/* 1 when text has a Markdown heading (ATX: '#'s, a space, the text) equal
 * to want, ignoring case and surrounding spaces. */
static int has_heading(const char *text, size_t len, const char *want)
{
    size_t wl = strlen(want);
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && text[e] != '\n')
            e++;
        size_t j = i;
        while (j < e && j - i < 3 && text[j] == ' ')
            j++;
        size_t hashes = 0;
        while (j < e && text[j] == '#')
            j++, hashes++;
        if (hashes >= 1 && hashes <= 6 && j < e && (text[j] == ' ' || text[j] == '\t')) {
            while (j < e && (text[j] == ' ' || text[j] == '\t'))
                j++;
            size_t k = e;
            while (k > j && (text[k - 1] == ' ' || text[k - 1] == '\t' || text[k - 1] == '\r' ||
                             text[k - 1] == '#'))
                k--;
            if (k - j == wl && strncasecmp(text + j, want, wl) == 0)
                return 1;
        }
        i = e + 1;
    }
    return 0;
}

static int metric_ok(enum policy_op op, double v, double t)
{
    switch (op) {
    case OP_GE: return v >= t;
    case OP_GT: return v > t;
    case OP_LE: return v <= t;
    case OP_LT: return v < t;
    case OP_EQ: return v == t;
    }
    return 0;
}

void gov_evaluate(const struct policy *p, const char *channel, const struct gov_subject *s,
                  struct gov_result *out)
{
    memset(out, 0, sizeof *out);
    out->allowed = 1;
    const Ferry__Spec *spec = s->spec;
    const struct policy_rule *r = gov_rule_for(p, spec ? spec->kind : NULL, channel);
    if (!r)
        return;
    const Ferry__ModelSpec *m = spec->model;
    if (r->approvals) {
        unsigned have = count_approvals(p, s, "approver", ROLE_APPROVER);
        if (have < r->approvals) {
            unsigned need = r->approvals - have;
            add(out, "needs %u more approval%s", need, need == 1 ? "" : "s");
        }
    }
    if (r->n_card && s->card != GOV_CARD_UNKNOWN) {
        if (s->card == GOV_CARD_ABSENT) {
            add(out, "model card is missing");
        } else {
            for (size_t i = 0; i < r->n_card; i++)
                if (!has_heading(s->card_text, s->card_len, r->card[i]))
                    add(out, "model card lacks '%s'", r->card[i]);
        }
    }
    if (r->privacy_review && m && m->pii && count_approvals(p, s, "privacy", ROLE_PRIVACY) == 0)
        add(out, "pii: true needs a privacy review");
    for (size_t i = 0; i < r->n_metrics; i++) {
        const struct policy_metric *pm = &r->metrics[i];
        const Ferry__ModelSpec__MetricsEntry *e = NULL;
        for (size_t j = 0; m && j < m->n_metrics; j++)
            if (strcmp(m->metrics[j]->key, pm->name) == 0)
                e = m->metrics[j];
        if (!e)
            add(out, "metric %s is missing (needs %s)", pm->name, pm->text);
        else if (!metric_ok(pm->op, e->value, pm->threshold))
            add(out, "metric %s is %g, needs %s", pm->name, e->value, pm->text);
    }
    if (r->builder[0]) {
        char builder[POLICY_PATH_MAX] = "";
        int found = 0;
        for (size_t i = 0; s->sigs && i < s->sigs->n_signatures; i++) {
            const Ferry__Signature *g = s->sigs->signatures[i];
            if (!g->role || strcmp(g->role, "provenance") != 0)
                continue;
            const struct policy_key *k = policy_key_find(p, g->key_id);
            if (!k || k->revoked || !(k->roles & ROLE_PUBLISHER) ||
                gov_verify_extra(g, s->digest) < 0)
                continue;
            found = 1;
            if (gov_statement_get(g->statement, "builder", builder, sizeof builder) == 0 &&
                strcmp(builder, r->builder) == 0)
                found = 2;
        }
        if (found == 0)
            add(out, "needs provenance from builder %s", r->builder);
        else if (found == 1)
            add(out, "provenance builder is %s, needs %s", builder[0] ? builder : "none",
                r->builder);
    }
}

void gov_result_join(const struct gov_result *r, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < r->n && used + 1 < cap; i++) {
        int w = snprintf(out + used, cap - used, "%s%s", i ? "; " : "", r->missing[i]);
        used = w < 0 || (size_t)w >= cap - used ? cap - 1 : used + (size_t)w;
    }
}
