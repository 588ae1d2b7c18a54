/* The governance policy file (policy.h): one table per mapping, walked over
 * libyaml's document tree so every error names its line. */
#include "policy.h"
#include "error.h"
#include "fsutil.h"
#include "selector.h"
#include "wire.pb-c.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

struct pctx {
    yaml_document_t *doc;
    const char *file;
    policy_pub_fn pub;
    void *arg;
};

static size_t line_of(const yaml_node_t *n) { return n->start_mark.line + 1; }
static const char *text_of(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

static int fail(const struct pctx *c, const yaml_node_t *n, const char *path, const char *fmt,
                ...) FY_PRINTF(4, 5);
static int fail(const struct pctx *c, const yaml_node_t *n, const char *path, const char *fmt,
                ...)
{
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (path[0])
        return err_set(FERRY_E_SPEC, "%s:%zu: key '%s': %s", c->file, n ? line_of(n) : 1, path,
                       reason);
    return err_set(FERRY_E_SPEC, "%s:%zu: %s", c->file, n ? line_of(n) : 1, reason);
}

static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = text_of(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null");
}

/* A non-empty string scalar copied into dst (at most cap-1 bytes). */
static int str_into(const struct pctx *c, const yaml_node_t *v, const char *path, char *dst,
                    size_t cap)
{
    if (v->type != YAML_SCALAR_NODE || is_null(v) || !v->data.scalar.length)
        return fail(c, v, path, "expected a non-empty string");
    if (memchr(v->data.scalar.value, 0, v->data.scalar.length))
        return fail(c, v, path, "contains a NUL character");
    if (v->data.scalar.length >= cap)
        return fail(c, v, path, "longer than %zu bytes", cap - 1);
    memcpy(dst, v->data.scalar.value, v->data.scalar.length);
    dst[v->data.scalar.length] = '\0';
    return 0;
}

static size_t seq_len(const yaml_node_t *v)
{
    return (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
}

static const yaml_node_t *seq_at(const struct pctx *c, const yaml_node_t *v, size_t i)
{
    return yaml_document_get_node(c->doc, v->data.sequence.items.start[i]);
}

/* ---- the schema ------------------------------------------------------------ */

enum ptype { P_STR, P_CHOICE, P_BITS, P_LIST, P_UINT, P_BOOL, P_METRICS, P_PROVENANCE };

struct pfield {
    const char *key;
    enum ptype type;
    bool required;
    size_t offset, cap;        /* P_STR: char[cap]; P_LIST: char[POLICY_LIST_MAX][cap] */
    size_t count_offset;       /* P_LIST */
    const char *const *choices; /* P_BITS: bit i is choices[i] */
};

struct pschema {
    const struct pfield *fields;
    size_t n;
};

#define AT(base, off, type) ((type *)((char *)(base) + (off)))
#define F_STR(k, req, T, m) {k, P_STR, req, offsetof(T, m), sizeof(((T *)0)->m), 0, NULL}

static const char *const role_names[] = {"admin", "publisher", "approver", "privacy", "operator",
                                         NULL};
static const char *const kind_names[] = {"app", "model", "notebook", NULL};

static const struct pfield key_fields[] = {
    F_STR("name", true, struct policy_key, name),
    F_STR("pub", true, struct policy_key, path),
    {"roles", P_BITS, true, offsetof(struct policy_key, roles), 0, 0, role_names},
    {"kinds", P_BITS, false, offsetof(struct policy_key, kinds), 0, 0, kind_names},
};
static const struct pfield env_fields[] = {
    F_STR("name", true, struct policy_env, name),
    F_STR("selector", true, struct policy_env, selector),
    F_STR("channel", true, struct policy_env, channel),
};
static const struct pfield rule_fields[] = {
    {"kind", P_CHOICE, true, offsetof(struct policy_rule, kind), 16, 0, kind_names},
    F_STR("channel", true, struct policy_rule, channel),
    {"approvals", P_UINT, false, offsetof(struct policy_rule, approvals), 0, 0, NULL},
    {"privacy_review", P_BOOL, false, offsetof(struct policy_rule, privacy_review), 0, 0, NULL},
    {"card", P_LIST, false, offsetof(struct policy_rule, card), POLICY_TEXT_MAX,
     offsetof(struct policy_rule, n_card), NULL},
    {"metrics", P_METRICS, false, 0, 0, 0, NULL},
    {"provenance", P_PROVENANCE, false, 0, 0, 0, NULL},
};
static const struct pschema key_schema = {key_fields, sizeof key_fields / sizeof *key_fields};
static const struct pschema env_schema = {env_fields, sizeof env_fields / sizeof *env_fields};
static const struct pschema rule_schema = {rule_fields, sizeof rule_fields / sizeof *rule_fields};

static int parse_op(const char *s, struct policy_metric *m)
{
    static const struct {
        const char *t;
        enum policy_op op;
    } ops[] = {{">=", OP_GE}, {"<=", OP_LE}, {"==", OP_EQ}, {">", OP_GT}, {"<", OP_LT}};
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
        size_t n = strlen(ops[i].t);
        if (strncmp(s, ops[i].t, n) == 0) {
            const char *num = s + n;
            while (*num == ' ')
                num++;
            char *end = NULL;
            double d = strtod(num, &end);
            if (end == num || *end || d != d)
                return -1;
            m->op = ops[i].op;
            m->threshold = d;
            snprintf(m->text, sizeof m->text, "%s %s", ops[i].t, num);
            return 0;
        }
    }
    return -1;
}

static int parse_field(const struct pctx *c, const struct pfield *f, const yaml_node_t *v,
                       const char *path, void *obj)
{
    switch (f->type) {
    case P_STR:
        return str_into(c, v, path, AT(obj, f->offset, char), f->cap);
    case P_CHOICE: {
        char item[64];
        int rc = str_into(c, v, path, item, sizeof item);
        if (rc < 0)
            return rc;
        for (size_t i = 0; f->choices[i]; i++)
            if (strcmp(item, f->choices[i]) == 0) {
                snprintf(AT(obj, f->offset, char), f->cap, "%s", item);
                return 0;
            }
        return fail(c, v, path, "'%s' is not one of app, model, notebook", item);
    }
    case P_BITS: {
        char item[64];
        if (v->type != YAML_SEQUENCE_NODE || seq_len(v) == 0)
            return fail(c, v, path, "expected a non-empty list");
        unsigned bits = 0;
        for (size_t k = 0; k < seq_len(v); k++) {
            const yaml_node_t *it = seq_at(c, v, k);
            int rc = str_into(c, it, path, item, sizeof item);
            if (rc < 0)
                return rc;
            size_t i = 0;
            while (f->choices[i] && strcmp(item, f->choices[i]) != 0)
                i++;
            if (!f->choices[i]) {
                char list[128] = "";
                for (size_t j = 0; f->choices[j]; j++)
                    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                             j ? ", " : "", f->choices[j]);
                return fail(c, it, path, "'%s' is not one of %s", item, list);
            }
            bits |= 1u << i;
        }
        *AT(obj, f->offset, unsigned) = bits;
        return 0;
    }
    case P_LIST: {
        if (v->type != YAML_SEQUENCE_NODE)
            return fail(c, v, path, "expected a list of strings");
        if (seq_len(v) > POLICY_LIST_MAX)
            return fail(c, v, path, "more than %d items", POLICY_LIST_MAX);
        size_t *n = AT(obj, f->count_offset, size_t);
        char(*arr)[POLICY_TEXT_MAX] = (char(*)[POLICY_TEXT_MAX])AT(obj, f->offset, char);
        for (size_t k = 0; k < seq_len(v); k++) {
            int rc = str_into(c, seq_at(c, v, k), path, arr[k], f->cap);
            if (rc < 0)
                return rc;
        }
        *n = seq_len(v);
        return 0;
    }
    case P_UINT: {
        char t[16];
        int rc = str_into(c, v, path, t, sizeof t);
        if (rc < 0)
            return rc;
        char *end = NULL;
        unsigned long n = strtoul(t, &end, 10);
        if (v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || *end || t[0] == '-' ||
            n > POLICY_KEYS_MAX)
            return fail(c, v, path, "expected an integer from 0 to %d", POLICY_KEYS_MAX);
        *AT(obj, f->offset, unsigned) = (unsigned)n;
        return 0;
    }
    case P_BOOL: {
        char t[8];
        int rc = str_into(c, v, path, t, sizeof t);
        if (rc < 0)
            return rc;
        if (v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
            (strcmp(t, "true") && strcmp(t, "false")))
            return fail(c, v, path, "expected true or false");
        *AT(obj, f->offset, int) = strcmp(t, "true") == 0;
        return 0;
    }
    case P_METRICS: {
        struct policy_rule *r = obj;
        if (v->type != YAML_MAPPING_NODE)
            return fail(c, v, path, "expected a mapping like {accuracy: \">= 0.9\"}");
        for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top;
             p++) {
            const yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
            const yaml_node_t *val = yaml_document_get_node(c->doc, p->value);
            if (r->n_metrics == POLICY_LIST_MAX)
                return fail(c, k, path, "more than %d metrics", POLICY_LIST_MAX);
            struct policy_metric *m = &r->metrics[r->n_metrics];
            int rc = str_into(c, k, path, m->name, sizeof m->name);
            char sub[256], t[64];
            snprintf(sub, sizeof sub, "%.120s.%.64s", path, m->name);
            if (rc == 0)
                rc = str_into(c, val, sub, t, sizeof t);
            if (rc < 0)
                return rc;
            for (size_t i = 0; i < r->n_metrics; i++)
                if (strcmp(r->metrics[i].name, m->name) == 0)
                    return fail(c, k, sub, "duplicate key");
            if (parse_op(t, m) < 0)
                return fail(c, val, sub, "expected a comparison like \">= 0.9\" (>=, >, <=, <, ==)");
            r->n_metrics++;
        }
        return 0;
    }
    case P_PROVENANCE: {
        struct policy_rule *r = obj;
        if (v->type != YAML_MAPPING_NODE)
            return fail(c, v, path, "expected a mapping like {builder: \"https://ci/builder\"}");
        for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top;
             p++) {
            const yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
            char key[64], sub[256];
            int rc = str_into(c, k, path, key, sizeof key);
            if (rc < 0)
                return rc;
            snprintf(sub, sizeof sub, "%.120s.%.63s", path, key);
            if (strcmp(key, "builder") != 0)
                return fail(c, k, sub, "unknown key");
            if ((rc = str_into(c, yaml_document_get_node(c->doc, p->value), sub, r->builder,
                               sizeof r->builder)) < 0)
                return rc;
        }
        if (!r->builder[0])
            return fail(c, v, path, "provenance needs a builder");
        return 0;
    }
    }
    return fail(c, v, path, "unsupported");
}

static int parse_map(const struct pctx *c, const yaml_node_t *map, const char *path,
                     const struct pschema *s, void *obj)
{
    if (map->type != YAML_MAPPING_NODE)
        return fail(c, map, path, "expected a mapping");
    uint32_t seen = 0;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
        char key[64], sub[256];
        if (k->type != YAML_SCALAR_NODE || k->data.scalar.length >= sizeof key)
            return fail(c, k, path, "mapping keys must be short plain strings");
        snprintf(key, sizeof key, "%s", text_of(k));
        snprintf(sub, sizeof sub, "%.120s%s%.63s", path, path[0] ? "." : "", key);
        size_t i = 0;
        while (i < s->n && strcmp(s->fields[i].key, key) != 0)
            i++;
        if (i == s->n)
            return fail(c, k, sub, "unknown key");
        if (seen & (1u << i))
            return fail(c, k, sub, "duplicate key");
        seen |= 1u << i;
        int rc = parse_field(c, &s->fields[i], v, sub, obj);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < s->n; i++)
        if (s->fields[i].required && !(seen & (1u << i))) {
            char sub[256];
            snprintf(sub, sizeof sub, "%.120s%s%.63s", path, path[0] ? "." : "", s->fields[i].key);
            return fail(c, map, sub, "required key is missing");
        }
    return 0;
}

/* A top-level list of mappings, each parsed by schema into an element. */
static int parse_list(const struct pctx *c, const yaml_node_t *v, const char *key,
                      const struct pschema *s, void *arr, size_t elem, size_t max, size_t *n)
{
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(c, v, key, "expected a list");
    if (seq_len(v) > max)
        return fail(c, v, key, "more than %zu entries", max);
    for (size_t i = 0; i < seq_len(v); i++) {
        char path[64];
        snprintf(path, sizeof path, "%s[%zu]", key, i);
        int rc = parse_map(c, seq_at(c, v, i), path, s, (char *)arr + i * elem);
        if (rc < 0)
            return rc;
    }
    *n = seq_len(v);
    return 0;
}

static const yaml_node_t *find_key(const struct pctx *c, const yaml_node_t *map, const char *key,
                                   const yaml_node_t **knode)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        if (k->type == YAML_SCALAR_NODE && strcmp(text_of(k), key) == 0) {
            if (knode)
                *knode = k;
            return yaml_document_get_node(c->doc, p->value);
        }
    }
    return NULL;
}

/* Cross-entry rules: names unique, channels declared, keys readable. */
static int check_policy(const struct pctx *c, const yaml_node_t *root, struct policy *p)
{
    const yaml_node_t *kn = find_key(c, root, "keys", NULL);
    for (size_t i = 0; i < p->n_keys; i++) {
        struct policy_key *k = &p->keys[i];
        const yaml_node_t *at = kn ? seq_at(c, kn, i) : root;
        char path[64];
        snprintf(path, sizeof path, "keys[%zu].pub", i);
        int rc = c->pub(c->arg, k->path, &k->pub);
        if (rc < 0) {
            char why[600];
            snprintf(why, sizeof why, "%s", err_message(rc));
            return fail(c, at, path, "%s", why);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(p->keys[j].name, k->name) == 0)
                return fail(c, at, path, "key name '%s' is used twice", k->name);
            if (strcmp(p->keys[j].pub.id, k->pub.id) == 0)
                return fail(c, at, path, "key %s is listed twice (%s and %s)", k->pub.id,
                            p->keys[j].name, k->name);
        }
        snprintf(k->pub.name, sizeof k->pub.name, "%s", k->name);
    }
    const yaml_node_t *en = find_key(c, root, "environments", NULL);
    for (size_t i = 0; i < p->n_envs; i++) {
        struct policy_env *e = &p->envs[i];
        const yaml_node_t *at = en ? seq_at(c, en, i) : root;
        char path[64];
        snprintf(path, sizeof path, "environments[%zu]", i);
        struct label_set sel;
        if (labels_parse(e->selector, &sel) < 0 || sel.n == 0)
            return fail(c, at, path, "selector '%s' is not like env=prod", e->selector);
        labels_format(&sel, e->selector, sizeof e->selector);
        if (!policy_has_channel(p, e->channel))
            return fail(c, at, path, "channel '%s' is not in channels", e->channel);
    }
    const yaml_node_t *rn = find_key(c, root, "rules", NULL);
    for (size_t i = 0; i < p->n_rules; i++) {
        struct policy_rule *r = &p->rules[i];
        const yaml_node_t *at = rn ? seq_at(c, rn, i) : root;
        char path[64];
        snprintf(path, sizeof path, "rules[%zu]", i);
        if (!policy_has_channel(p, r->channel))
            return fail(c, at, path, "channel '%s' is not in channels", r->channel);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(p->rules[j].kind, r->kind) && !strcmp(p->rules[j].channel, r->channel))
                return fail(c, at, path, "a second rule for kind %s on channel %s", r->kind,
                            r->channel);
    }
    return 0;
}

static void digest_policy(const char *text, size_t len, struct policy *p)
{
    struct hasher h;
    uint64_t n = len;
    hasher_init(&h);
    hasher_update(&h, "ferry-policy-v1", 15);
    hasher_update(&h, &n, sizeof n);
    hasher_update(&h, text, len);
    for (size_t i = 0; i < p->n_keys; i++)
        hasher_update(&h, p->keys[i].pub.pk, sizeof p->keys[i].pub.pk);
    hasher_final(&h, &p->digest);
}

int policy_parse(const char *display, const char *text, size_t len, policy_pub_fn pub,
                 void *arg, struct policy *out)
{
    const char *file = display ? display : "policy.yaml";
    if (len > POLICY_MAX_BYTES)
        return err_set(FERRY_E_LIMIT, "%s: %zu bytes, more than the 256 KiB allowed", file, len);
    memset(out, 0, sizeof *out);
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        return -ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        int rc = err_set(FERRY_E_SPEC, "%s:%zu: %s", file, parser.problem_mark.line + 1,
                         parser.problem ? parser.problem : "not valid YAML");
        yaml_parser_delete(&parser);
        return rc;
    }
    yaml_parser_delete(&parser);
    struct pctx c = {&doc, file, pub, arg};
    int rc = 0;
    const yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || root->type != YAML_MAPPING_NODE) {
        rc = fail(&c, root, "", "the top level must be a mapping (keys, channels, ...)");
        goto out;
    }
    uint32_t seen = 0;
    static const char *const tops[] = {"keys", "channels", "environments", "rules"};
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top;
         pr++) {
        const yaml_node_t *k = yaml_document_get_node(&doc, pr->key);
        const yaml_node_t *v = yaml_document_get_node(&doc, pr->value);
        const char *key = k->type == YAML_SCALAR_NODE ? text_of(k) : "";
        size_t i = 0;
        while (i < 4 && strcmp(key, tops[i]) != 0)
            i++;
        if (i == 4) {
            rc = fail(&c, k, key, "unknown key");
            goto out;
        }
        if (seen & (1u << i)) {
            rc = fail(&c, k, key, "duplicate key");
            goto out;
        }
        seen |= 1u << i;
        if (i == 0)
            rc = parse_list(&c, v, key, &key_schema, out->keys, sizeof out->keys[0],
                            POLICY_KEYS_MAX, &out->n_keys);
        else if (i == 2)
            rc = parse_list(&c, v, key, &env_schema, out->envs, sizeof out->envs[0],
                            POLICY_ENVS_MAX, &out->n_envs);
        else if (i == 3)
            rc = parse_list(&c, v, key, &rule_schema, out->rules, sizeof out->rules[0],
                            POLICY_RULES_MAX, &out->n_rules);
        else {
            if (v->type != YAML_SEQUENCE_NODE || seq_len(v) > POLICY_CHANNELS_MAX) {
                rc = fail(&c, v, key, "expected a list of at most %d channel names",
                          POLICY_CHANNELS_MAX);
                goto out;
            }
            for (size_t j = 0; j < seq_len(v) && rc == 0; j++) {
                rc = str_into(&c, seq_at(&c, v, j), key, out->channels[j],
                              sizeof out->channels[j]);
                for (size_t q = 0; rc == 0 && q < j; q++)
                    if (strcmp(out->channels[q], out->channels[j]) == 0)
                        rc = fail(&c, seq_at(&c, v, j), key, "channel '%s' is listed twice",
                                  out->channels[j]);
            }
            out->n_channels = seq_len(v);
        }
        if (rc < 0)
            goto out;
    }
    if (!(seen & 1u)) {
        rc = fail(&c, root, "keys", "required key is missing");
        goto out;
    }
    if ((rc = check_policy(&c, root, out)) < 0)
        goto out;
    int admin = 0;
    for (size_t i = 0; i < out->n_keys; i++)
        admin |= (out->keys[i].roles & ROLE_ADMIN) != 0;
    if (!admin)
        rc = fail(&c, root, "keys", "no key holds the admin role");
    else
        digest_policy(text, len, out);
out:
    yaml_document_delete(&doc);
    return rc;
}

/* Public keys named relative to the policy's folder. */
static int pub_from_dir(void *arg, const char *path, struct key_public *out)
{
    const char *dir = arg;
    char full[4096];
    if (path[0] == '/')
        snprintf(full, sizeof full, "%s", path);
    else
        snprintf(full, sizeof full, "%s/%s", dir, path);
    return key_load_public(full, out);
}

int policy_load_file(const char *path, struct policy *out, uint8_t **text, size_t *len)
{
    uint8_t *buf = NULL;
    size_t n = 0;
    int rc = fs_read_file(path, POLICY_MAX_BYTES, &buf, &n);
    if (rc < 0)
        return rc;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    rc = policy_parse(path, (const char *)buf, n, pub_from_dir, dir, out);
    if (rc == 0 && text) {
        *text = buf;
        *len = n;
    } else {
        free(buf);
    }
    return rc;
}

struct served {
    const struct policy_served_key *keys;
    size_t n;
};

static int pub_from_served(void *arg, const char *path, struct key_public *out)
{
    const struct served *s = arg;
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->keys[i].path, path) == 0)
            return key_parse_public(path, s->keys[i].text, out);
    return err_set(FERRY_E_NOTFOUND, "the registry did not send key file %s", path);
}

int policy_parse_served(const char *text, size_t len, const struct policy_served_key *keys,
                        size_t n, struct policy *out)
{
    struct served s = {keys, n};
    return policy_parse("policy (as served)", text, len, pub_from_served, &s, out);
}

/* ---- signatures ---------------------------------------------------------------- */

int policy_sign(const struct policy *p, const struct key_secret *k, char *out, size_t cap)
{
    uint8_t sig[crypto_sign_BYTES];
    key_sign(k, p->digest.b, DIGEST_LEN, sig);
    char hex[2 * crypto_sign_BYTES + 1];
    sodium_bin2hex(hex, sizeof hex, sig, sizeof sig);
    if ((size_t)snprintf(out, cap, "%s %s %s\n", POLICY_SIG_PURPOSE, k->pub.id, hex) >= cap)
        return err_set(FERRY_E_LIMIT, "policy signature: buffer too small");
    return 0;
}

int policy_verify(const struct policy *p, const char *sig, const struct trust *anchors,
                  char signer[KEY_ID_LEN + 1])
{
    char purpose[32], id[KEY_ID_LEN + 2], hex[2 * crypto_sign_BYTES + 2];
    if (!sig || sscanf(sig, "%31s %17s %129s", purpose, id, hex) != 3 ||
        strcmp(purpose, POLICY_SIG_PURPOSE) != 0 || strlen(id) != KEY_ID_LEN ||
        strlen(hex) != 2 * crypto_sign_BYTES)
        return err_set(FERRY_E_SIGNATURE, "policy signature: not a ferry policy signature "
                                          "(expected '%s KEYID HEX')", POLICY_SIG_PURPOSE);
    const struct policy_key *k = policy_key_find(p, id);
    if (!k || !(k->roles & ROLE_ADMIN))
        return err_set(FERRY_E_UNTRUSTED,
                       "policy signed by key %s%s%s%s, which the policy does not name as admin",
                       id, k ? " (" : "", k ? k->name : "", k ? ")" : "");
    if (k->revoked)
        return err_set(FERRY_E_UNTRUSTED, "policy signed by key %s (%s), which is revoked", id,
                       k->name);
    if (anchors && !trust_find(anchors, id))
        return err_set(FERRY_E_UNTRUSTED,
                       "policy signed by key %s (%s), which is not a trusted admin key", id,
                       k->name);
    uint8_t raw[crypto_sign_BYTES];
    size_t rawlen = 0;
    if (sodium_hex2bin(raw, sizeof raw, hex, strlen(hex), NULL, &rawlen, NULL) != 0 ||
        rawlen != sizeof raw ||
        key_verify(k->pub.pk, p->digest.b, DIGEST_LEN, raw, sizeof raw) != 0)
        return err_set(FERRY_E_SIGNATURE,
                       "policy signature by key %s (%s) does not match the policy and its keys",
                       id, k->name);
    if (signer)
        snprintf(signer, KEY_ID_LEN + 1, "%s", id);
    return 0;
}

int policy_revocation_verify(const struct policy *p, const struct trust *anchors,
                             const uint8_t *body, size_t blen, const char *signer,
                             const uint8_t *sig, size_t siglen, char key_id[KEY_ID_LEN + 1])
{
    const struct policy_key *admin = policy_key_find(p, signer);
    if (!admin || !(admin->roles & ROLE_ADMIN))
        return err_set(FERRY_E_UNTRUSTED, "revocation signed by key %s, not an admin",
                       signer ? signer : "?");
    if (anchors && !trust_find(anchors, signer))
        return err_set(FERRY_E_UNTRUSTED, "revocation signed by key %s, not a trusted admin",
                       signer);
    if (key_verify(admin->pub.pk, body, blen, sig, siglen) != 0)
        return err_set(FERRY_E_SIGNATURE, "revocation signature by key %s does not verify",
                       signer);
    Ferry__Wire__GovBody *b = ferry__wire__gov_body__unpack(NULL, blen, body);
    int rc = 0;
    if (!b || !b->purpose || strcmp(b->purpose, "ferry-gov-v1") != 0 || !b->action ||
        strcmp(b->action, "revoke") != 0 || !b->key_id || strlen(b->key_id) != KEY_ID_LEN)
        rc = err_set(FERRY_E_INVALID, "not a revocation");
    else
        snprintf(key_id, KEY_ID_LEN + 1, "%s", b->key_id);
    if (b)
        ferry__wire__gov_body__free_unpacked(b, NULL);
    return rc;
}

/* ---- questions ------------------------------------------------------------------ */

const struct policy_key *policy_key_find(const struct policy *p, const char *key_id)
{
    for (size_t i = 0; key_id && i < p->n_keys; i++)
        if (strcmp(p->keys[i].pub.id, key_id) == 0)
            return &p->keys[i];
    return NULL;
}

int policy_revoke(struct policy *p, const char *key_id)
{
    struct policy_key *k = (struct policy_key *)policy_key_find(p, key_id);
    if (!k)
        return err_set(FERRY_E_NOTFOUND, "key %s is not in the policy", key_id);
    k->revoked = 1;
    return 0;
}

const char *policy_role_name(unsigned role)
{
    for (size_t i = 0; role_names[i]; i++)
        if (role == 1u << i)
            return role_names[i];
    return "?";
}

unsigned policy_kind_bit(const char *kind)
{
    for (size_t i = 0; kind && kind_names[i]; i++)
        if (strcmp(kind, kind_names[i]) == 0)
            return 1u << i;
    return 0;
}

int policy_allows(const struct policy *p, const char *key_id, unsigned role, const char *kind,
                  const char *what)
{
    const struct policy_key *k = policy_key_find(p, key_id);
    if (!k)
        return err_set(FERRY_E_UNTRUSTED, "%s refused: key %s is not in the policy", what,
                       key_id);
    if (k->revoked)
        return err_set(FERRY_E_UNTRUSTED, "%s refused: key %s (%s) is revoked", what, key_id,
                       k->name);
    if (!(k->roles & role))
        return err_set(FERRY_E_UNTRUSTED, "%s refused: key %s (%s) does not hold the %s role",
                       what, key_id, k->name, policy_role_name(role));
    if (kind && role == ROLE_PUBLISHER && k->kinds && !(k->kinds & policy_kind_bit(kind)))
        return err_set(FERRY_E_UNTRUSTED, "%s refused: key %s (%s) may not publish kind %s",
                       what, key_id, k->name, kind);
    return 0;
}

const char *policy_channel_for_labels(const struct policy *p, const char *labels)
{
    struct label_set host, sel;
    if (labels_parse(labels ? labels : "", &host) < 0)
        host.n = 0;
    for (size_t i = 0; i < p->n_envs; i++)
        if (labels_parse(p->envs[i].selector, &sel) == 0 && selector_matches(&sel, &host))
            return p->envs[i].channel;
    return NULL;
}

int policy_has_channel(const struct policy *p, const char *channel)
{
    for (size_t i = 0; channel && i < p->n_channels; i++)
        if (strcmp(p->channels[i], channel) == 0)
            return 1;
    return 0;
}

int policy_trust(const struct policy *p, struct trust *out)
{
    trust_init(out);
    if (!p->n_keys)
        return 0;
    out->keys = calloc(p->n_keys, sizeof *out->keys);
    if (!out->keys)
        return -ENOMEM;
    for (size_t i = 0; i < p->n_keys; i++)
        out->keys[out->n++] = p->keys[i].pub;
    return 0;
}
