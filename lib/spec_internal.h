/* Shared by spec.c and the modules that add a section's schema to it
 * (spec_oci.c): the table types the walk reads, and the two helpers a
 * section's cross-key rules need. Not for use outside lib/spec*.c. */
#ifndef FERRY_LIB_SPEC_INTERNAL_H
#define FERRY_LIB_SPEC_INTERNAL_H

#include "error.h"
#include "manifest.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#define KEYPATH_MAX 256

/* A rule returns NULL when the text is fine, else the reason. */
typedef const char *(*rule_fn)(const char *s);

struct ctx {
    yaml_document_t *doc;
    const char *file;
};

enum ftype {
    F_STRING,   /* char *, checked by `rule` */
    F_CHOICE,   /* char *, one of `choices` */
    F_STRLIST,  /* n_ + char **, items non-empty */
    F_STRMAP,   /* n_ + Ferry__EnvVar **, names checked by `rule` */
    F_BOOL,     /* protobuf_c_boolean */
    F_UINT,     /* uint32_t in [min, max] */
    F_DURATION, /* uint32_t milliseconds in [min, 24h] */
    F_MAPPING,  /* a nested message described by `sub` */
    F_SIZE,     /* uint64_t bytes */
    F_CPU,      /* uint32_t thousandths of a core */
    F_OPAQUE,   /* a mapping ferry has no schema for: checked, not stored */
    F_MSGLIST,  /* n_ + sub-message **: a list of mappings described by `sub` */
    F_INTLIST,  /* n_ + int64_t *: dimensions, each -1 or 0..INT32_MAX */
    F_NUMBER,   /* double, finite and greater than zero */
    F_MICROS,   /* uint32_t microseconds: a duration, or digits and "us" */
    F_NUMMAP,   /* model.metrics: n_metrics + metrics entries, name -> number */
};

struct schema;

struct field {
    const char *key;
    enum ftype type;
    bool required;
    bool nonempty;       /* F_STRLIST, F_MSGLIST, F_INTLIST: at least one item */
    size_t offset;       /* the member in the message */
    size_t count_offset; /* F_STRLIST, F_STRMAP: the n_ member */
    rule_fn rule;
    const char *const *choices; /* NULL-terminated */
    uint32_t min, max;   /* F_UINT, F_DURATION: the value; lists: max items */
    const struct schema *sub;
};

struct schema {
    const struct field *fields;
    size_t n_fields;
    size_t size;             /* of the message */
    void (*init)(void *msg); /* protobuf-c init plus ferry's defaults */
    /* Rules across keys, run once every key of the mapping is read. */
    int (*finish)(const struct ctx *c, const yaml_node_t *map, const char *path, void *msg);
};

#define MEMBER(type, m) offsetof(type, m)
#define COUNT(type, m) offsetof(type, n_##m)
#define FIELDS(a) (a), sizeof(a) / sizeof *(a)
/* Keys seen in a mapping are tracked in a 32-bit mask. */
#define FITS(a) _Static_assert(sizeof(a) / sizeof *(a) <= 32, #a " has too many keys")

/* "<file>:<line>: key '<path>': <reason>" (FERRY_E_SPEC at node's line). */
int spec_fail(const struct ctx *c, const yaml_node_t *node, const char *path, const char *fmt,
              ...) FY_PRINTF(4, 5);
/* The value node of key in a mapping, or NULL. */
const yaml_node_t *spec_value_of(const struct ctx *c, const yaml_node_t *map, const char *key);

/* spec_oci.c: the oci: section, and its rules across the spec. */
extern const struct schema spec_oci_schema;
int spec_oci_rules(const struct ctx *c, const yaml_node_t *root, const Ferry__Spec *s);

#endif
