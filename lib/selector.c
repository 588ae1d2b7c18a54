#include "selector.h"
#include "error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int token_ok(const char *s, size_t n)
{
    if (n == 0 || n > LABEL_TEXT_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '/'))
            return 0;
    }
    return 1;
}

int labels_add(struct label_set *s, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq)
        return err_set(FERRY_E_INVALID, "label '%.80s': expected KEY=VALUE", kv);
    size_t klen = (size_t)(eq - kv), vlen = strlen(eq + 1);
    if (!token_ok(kv, klen) || !token_ok(eq + 1, vlen))
        return err_set(FERRY_E_INVALID,
                       "label '%.80s': keys and values are 1-%d of letters, digits, '.', '_', "
                       "'-', '/'",
                       kv, LABEL_TEXT_MAX);
    struct label l;
    memcpy(l.key, kv, klen);
    l.key[klen] = '\0';
    memcpy(l.value, eq + 1, vlen + 1);
    size_t i = 0;
    while (i < s->n && strcmp(s->v[i].key, l.key) < 0)
        i++;
    if (i < s->n && strcmp(s->v[i].key, l.key) == 0) {
        s->v[i] = l;
        return 0;
    }
    if (s->n == LABEL_MAX)
        return err_set(FERRY_E_LIMIT, "more than %d labels", LABEL_MAX);
    memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof s->v[0]);
    s->v[i] = l;
    s->n++;
    return 0;
}

int labels_parse(const char *text, struct label_set *out)
{
    struct label_set s = {.n = 0};
    char buf[4096];
    if (!text || !*text)
        return err_set(FERRY_E_INVALID, "selector is empty: expected KEY=VALUE[,KEY=VALUE]");
    if (snprintf(buf, sizeof buf, "%s", text) >= (int)sizeof buf)
        return err_set(FERRY_E_LIMIT, "selector too long");
    char *save = NULL;
    for (char *part = strtok_r(buf, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
        for (size_t i = 0; i < s.n; i++) {
            size_t kl = strlen(s.v[i].key);
            if (strncmp(part, s.v[i].key, kl) == 0 && part[kl] == '=')
                return err_set(FERRY_E_INVALID, "selector '%.200s': key '%s' given twice", text,
                               s.v[i].key);
        }
        int rc = labels_add(&s, part);
        if (rc < 0)
            return rc;
    }
    if (s.n == 0)
        return err_set(FERRY_E_INVALID, "selector is empty: expected KEY=VALUE[,KEY=VALUE]");
    *out = s;
    return 0;
}

void labels_format(const struct label_set *s, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < s->n && used < cap; i++) {
        int n = snprintf(out + used, cap - used, "%s%s=%s", i ? "," : "", s->v[i].key,
                         s->v[i].value);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

const char *labels_get(const struct label_set *s, const char *key)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i].key, key) == 0)
            return s->v[i].value;
    return NULL;
}

int selector_matches(const struct label_set *selector, const struct label_set *host)
{
    for (size_t i = 0; i < selector->n; i++) {
        const char *v = labels_get(host, selector->v[i].key);
        if (!v || strcmp(v, selector->v[i].value) != 0)
            return 0;
    }
    return 1;
}
