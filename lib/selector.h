/* Host labels and selectors: "env=prod,gpu=true". A selector matches a host
 * when every key=value in it is among the host's labels. */
#ifndef FERRY_LIB_SELECTOR_H
#define FERRY_LIB_SELECTOR_H

#include <stddef.h>

#define LABEL_MAX 32
#define LABEL_TEXT_MAX 64

struct label {
    char key[LABEL_TEXT_MAX + 1];
    char value[LABEL_TEXT_MAX + 1];
};

struct label_set {
    struct label v[LABEL_MAX];
    size_t n;
};

/* Parse "k=v[,k=v]" (keys and values: letters, digits, '.', '_', '-', '/').
 * Keys are unique; the set is sorted by key. */
int labels_parse(const char *text, struct label_set *out);
/* Add one "k=v" (replacing an existing key), keeping the set sorted. */
int labels_add(struct label_set *s, const char *kv);
/* "k=v,k=v" in key order. */
void labels_format(const struct label_set *s, char *out, size_t cap);
const char *labels_get(const struct label_set *s, const char *key);
/* 1 when every label of selector is in host. */
int selector_matches(const struct label_set *selector, const struct label_set *host);

#endif
