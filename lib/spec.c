/* ferry.yaml -> Ferry__Spec.
 *
 * The text goes through libyaml twice. A first pass over the event stream
 * refuses what the schema never needs and what makes YAML dangerous or
 * ambiguous (anchors and aliases, non-standard tags, several documents) and
 * reports syntax errors. The second pass loads the document tree, so every
 * node carries its line, and walks it with one static table per mapping.
 *
 * Every string and array is allocated with plain malloc and hung on the
 * message as soon as it exists: protobuf-c's default allocator is
 * malloc/free, so ferry__spec__free_unpacked() releases a half-built Spec on
 * any error path, and spec_free() releases a finished one. */
#include "spec.h"
#include "spec_internal.h"
#include "error.h"
#include "fsutil.h"
#include "pathsafe.h"
#include "schedule.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#define SPEC_NAME_MAX 64
#define DURATION_MAX_MS (24u * 60u * 60u * 1000u)
/* env and labels are checked for duplicates pairwise; the cap keeps that
 * cheap and no real artifact comes close. */
#define MAP_ENTRIES_MAX 1024
#define HTTP_PATH_MAX 1024
#define KEY_SHOWN_MAX 64
/* The schema nests four levels deep. libyaml's scanner does work in the
 * nesting depth for every token, so a megabyte of '[' would take minutes;
 * stopping at a small depth in the first pass keeps that linear. */
#define NESTING_MAX 16

/* ---- messages ---------------------------------------------------------- */

/* Copy s into dst for a one-line message: control characters become '?' and
 * long text is cut at a UTF-8 boundary and marked with "...". */
static void shown(char *dst, size_t cap, const char *s, size_t len)
{
    size_t limit = cap - 4 < KEY_SHOWN_MAX ? cap - 4 : KEY_SHOWN_MAX;
    bool cut = len > limit;
    if (cut) {
        len = limit;
        while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
            len--;
    }
    size_t i;
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        dst[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    if (cut)
        memcpy(dst + i, "...", 3), i += 3;
    dst[i] = '\0';
}

/* parent + "." + key, the dotted path used in messages. */
static void join(char *dst, size_t cap, const char *parent, const char *key, size_t keylen)
{
    char k[KEY_SHOWN_MAX + 4];
    if (keylen == 0)
        strcpy(k, "\"\""); /* an empty key, shown as written */
    else
        shown(k, sizeof k, key, keylen);
    if (parent[0])
        snprintf(dst, cap, "%s.%s", parent, k);
    else
        snprintf(dst, cap, "%s", k);
}

/* "<file>:<line>: key '<path>': <reason>", or without the key part when the
 * problem is the document itself (path ""). */
static int fail_at(const struct ctx *c, int code, size_t line, const char *path,
                   const char *fmt, ...) FY_PRINTF(5, 6);
static int fail_at(const struct ctx *c, int code, size_t line, const char *path,
                   const char *fmt, ...)
{
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (path[0])
        return err_set(code, "%s:%zu: key '%s': %s", c->file, line, path, reason);
    return err_set(code, "%s:%zu: %s", c->file, line, reason);
}

static size_t line_of(const yaml_node_t *n) { return n->start_mark.line + 1; }

#define fail(c, node, path, ...) fail_at((c), FERRY_E_SPEC, line_of(node), (path), __VA_ARGS__)

int spec_fail(const struct ctx *c, const yaml_node_t *node, const char *path, const char *fmt,
              ...)
{
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    return fail(c, node, path, "%s", reason);
}

/* The value node of key in a mapping (for the line of a cross-key rule). */
static const yaml_node_t *value_of(const struct ctx *c, const yaml_node_t *map, const char *key)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        if (k && k->type == YAML_SCALAR_NODE && k->data.scalar.length == strlen(key) &&
            memcmp(k->data.scalar.value, key, k->data.scalar.length) == 0)
            return yaml_document_get_node(c->doc, p->value);
    }
    return NULL;
}

const yaml_node_t *spec_value_of(const struct ctx *c, const yaml_node_t *map, const char *key)
{
    return value_of(c, map, key);
}

static int no_memory(void) { return err_set(-ENOMEM, "out of memory reading ferry.yaml"); }

/* libyaml's own message. Reader errors (bad UTF-8, control characters) carry
 * a byte offset instead of a mark, so count the lines up to it. */
static int yaml_failure(const char *file, const char *text, size_t len, const yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR)
        return no_memory();
    size_t line = p->problem_mark.line + 1;
    if (p->error == YAML_READER_ERROR) {
        size_t end = p->problem_offset < len ? p->problem_offset : len;
        line = 1;
        for (size_t i = 0; i < end; i++)
            line += text[i] == '\n';
    }
    return err_set(FERRY_E_SPEC, "%s:%zu: %s", file, line,
                   p->problem ? p->problem : "not valid YAML");
}

/* ---- first pass: what the schema never needs --------------------------- */

static bool tag_allowed(const char *tag, yaml_event_type_t type)
{
    /* No tag, or the non-specific "!", means the ordinary type. */
    if (!tag || strcmp(tag, "!") == 0)
        return true;
    if (type == YAML_SEQUENCE_START_EVENT)
        return strcmp(tag, YAML_SEQ_TAG) == 0;
    if (type == YAML_MAPPING_START_EVENT)
        return strcmp(tag, YAML_MAP_TAG) == 0;
    static const char *const scalar_tags[] = {YAML_STR_TAG, YAML_INT_TAG, YAML_BOOL_TAG,
                                              YAML_FLOAT_TAG, YAML_NULL_TAG};
    for (size_t i = 0; i < sizeof scalar_tags / sizeof *scalar_tags; i++)
        if (strcmp(tag, scalar_tags[i]) == 0)
            return true;
    return false;
}

/* Aliases are refused outright: the loaded tree shares aliased nodes, and a
 * walk over a "billion laughs" document would expand them. Anchors are
 * refused with them since an anchor is only there to be aliased. */
static int screen(const struct ctx *c, const char *text, size_t len)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return no_memory();
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int rc = 0, docs = 0, depth = 0;
    bool done = false;
    while (rc == 0 && !done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = yaml_failure(c->file, text, len, &p);
            break;
        }
        size_t line = ev.start_mark.line + 1;
        const char *anchor = NULL, *tag = NULL;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1)
                rc = fail_at(c, FERRY_E_SPEC, line, "", "only one YAML document is allowed");
            break;
        case YAML_ALIAS_EVENT:
            rc = fail_at(c, FERRY_E_SPEC, line, "", "YAML aliases (*name) are not allowed");
            break;
        case YAML_SCALAR_EVENT:
            anchor = (const char *)ev.data.scalar.anchor;
            tag = (const char *)ev.data.scalar.tag;
            break;
        case YAML_SEQUENCE_START_EVENT:
            anchor = (const char *)ev.data.sequence_start.anchor;
            tag = (const char *)ev.data.sequence_start.tag;
            depth++;
            break;
        case YAML_MAPPING_START_EVENT:
            anchor = (const char *)ev.data.mapping_start.anchor;
            tag = (const char *)ev.data.mapping_start.tag;
            depth++;
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            depth--;
            break;
        default:
            break;
        }
        if (rc == 0 && depth > NESTING_MAX)
            rc = fail_at(c, FERRY_E_SPEC, line, "", "nested more than %d levels deep",
                         NESTING_MAX);
        if (rc == 0 && anchor)
            rc = fail_at(c, FERRY_E_SPEC, line, "", "YAML anchors (&name) are not allowed");
        if (rc == 0 && !tag_allowed(tag, ev.type)) {
            char t[KEY_SHOWN_MAX + 4];
            shown(t, sizeof t, tag, strlen(tag));
            rc = fail_at(c, FERRY_E_SPEC, line, "", "tag '%s' is not allowed", t);
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    return rc;
}

/* ---- scalars ----------------------------------------------------------- */

static bool has_tag(const yaml_node_t *n, const char *tag)
{
    return n->tag && strcmp((const char *)n->tag, tag) == 0;
}

static const char *text_of(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

/* YAML's null: an empty or ~/null plain scalar, or an explicit !!null. */
static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE)
        return false;
    if (has_tag(n, YAML_NULL_TAG))
        return true;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = text_of(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

/* A non-null scalar without NUL bytes; C strings could not carry the rest.
 * The text is taken as written, so `version: 1.0` is the string "1.0". */
static int scalar(const struct ctx *c, const yaml_node_t *n, const char *path, const char *want)
{
    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return fail(c, n, path, "expected %s", want);
    if (memchr(n->data.scalar.value, 0, n->data.scalar.length))
        return fail(c, n, path, "contains a NUL character");
    return 0;
}

static char *dup_text(const yaml_node_t *n)
{
    size_t len = n->data.scalar.length;
    char *s = malloc(len + 1);
    if (s) {
        memcpy(s, n->data.scalar.value, len);
        s[len] = '\0';
    }
    return s;
}

/* ---- value rules -------------------------------------------------------- */

static const char *rule_name(const char *s)
{
    return spec_name_ok(s) ? NULL
                           : "must be 1-64 characters of a-z 0-9 . _ -, starting with a "
                             "letter or digit";
}

static const char *rule_version(const char *s)
{
    return spec_version_ok(s) ? NULL
                              : "must be 1-64 characters of A-Z a-z 0-9 . _ + -, starting "
                                "with a letter or digit";
}

static const char *rule_nonempty(const char *s) { return *s ? NULL : "must not be empty"; }

static const char *rule_schedule(const char *s)
{
    static _Thread_local char why[256];
    struct schedule sched;
    return schedule_parse(s, &sched, why, sizeof why) == 0 ? NULL : why;
}

static const char *rule_label_name(const char *s)
{
    return *s ? NULL : "label names must not be empty";
}

static const char *rule_http_path(const char *s)
{
    if (s[0] != '/')
        return "must start with '/'";
    if (strlen(s) > HTTP_PATH_MAX)
        return "is longer than 1024 characters";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p == 0x7f)
            return "must not contain spaces or control characters";
    return NULL;
}

static bool alpha_(int ch) { return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_'; }
static bool digit(int ch) { return ch >= '0' && ch <= '9'; }

static const char *rule_env_name(const char *s)
{
    bool ok = alpha_((unsigned char)s[0]);
    for (size_t i = 1; ok && s[i]; i++)
        ok = alpha_((unsigned char)s[i]) || digit((unsigned char)s[i]);
    return ok ? NULL : "variable names must match [A-Za-z_][A-Za-z0-9_]*";
}

/* notebook.env: as run.env, but the notebook plugin sets PATH, HOME (a
 * kernel's private folder) and JUPYTER_RUNTIME_DIR itself; a value there
 * would be silently overridden, so it is refused. */
static const char *rule_nb_env_name(const char *s)
{
    static const char *const own[] = {"PATH", "HOME", "JUPYTER_RUNTIME_DIR", NULL};
    for (size_t i = 0; own[i]; i++)
        if (strcmp(s, own[i]) == 0)
            return "PATH, HOME and JUPYTER_RUNTIME_DIR are set by the notebook plugin";
    return rule_env_name(s);
}

/* A file of the artifact, named as the manifest names it (lib/pathsafe):
 * publish then checks that it is there. */
static const char *rule_relpath(const char *s)
{
    return path_check(s) == 0 ? NULL
                              : "must be a relative path inside the artifact (no leading '/', "
                                "no '.' or '..', no backslash)";
}

#define TENSOR_NAME_LEN_MAX 63

/* Tensor names travel in URLs' bodies, metric labels and the reference
 * CSV's header: kept to what reads the same in all of them. */
static const char *rule_tensor_name(const char *s)
{
    size_t n = strlen(s);
    bool ok = n >= 1 && n <= TENSOR_NAME_LEN_MAX && s[0] != '.' && s[0] != '-';
    for (size_t i = 0; ok && i < n; i++)
        ok = alpha_((unsigned char)s[i]) || digit((unsigned char)s[i]) || s[i] == '.' ||
             s[i] == '-';
    return ok ? NULL
              : "must be 1-63 characters of A-Z a-z 0-9 _ . -, not starting with '.' or '-'";
}

/* python: "serve.py:Model", a .py file of the artifact and a class name. */
static const char *rule_entry(const char *s)
{
    static const char *const bad = "expected FILE:CLASS like serve.py:Model (a .py file "
                                   "inside the artifact and a Python class name)";
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || !colon[1])
        return bad;
    size_t flen = (size_t)(colon - s);
    char file[PATH_REL_MAX + 1];
    if (flen > PATH_REL_MAX || flen < 4 || memcmp(colon - 3, ".py", 3) != 0)
        return bad;
    memcpy(file, s, flen);
    file[flen] = '\0';
    if (path_check(file) < 0)
        return bad;
    const char *cls = colon + 1;
    bool ok = alpha_((unsigned char)cls[0]) && strlen(cls) <= 128;
    for (size_t i = 1; ok && cls[i]; i++)
        ok = alpha_((unsigned char)cls[i]) || digit((unsigned char)cls[i]);
    return ok ? NULL : bad;
}

/* "500ms", "10s", "2m", "1h", or a bare number of seconds. */
static const char *parse_duration(const char *s, uint32_t *ms)
{
    static const char *const bad = "expected a duration like 500ms, 10s, 2m, 1h or a "
                                   "number of seconds";
    uint64_t v = 0;
    size_t i = 0;
    for (; digit((unsigned char)s[i]); i++) {
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > DURATION_MAX_MS)
            return "must be at most 24h";
    }
    if (i == 0)
        return bad;
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    for (size_t u = 0; u < sizeof units / sizeof *units; u++) {
        if (strcmp(s + i, units[u].unit) == 0) {
            v *= units[u].ms;
            if (v > DURATION_MAX_MS)
                return "must be at most 24h";
            *ms = (uint32_t)v;
            return NULL;
        }
    }
    return bad;
}

/* Login names as useradd takes them: 1-32 of A-Z a-z 0-9 . _ -, not
 * starting with '-' (which would read as an option) and not all digits
 * (which would read as a uid). */
static const char *rule_user(const char *s)
{
    size_t n = strlen(s);
    bool ok = n >= 1 && n <= 32 && s[0] != '-', all_digits = true;
    for (size_t i = 0; ok && i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        ok = alpha_(ch) || digit(ch) || ch == '.' || ch == '-';
        all_digits = all_digits && digit(ch);
    }
    if (ok && all_digits)
        return "must be a user name, not a number";
    return ok ? NULL
              : "must be a user name of 1-32 characters of A-Z a-z 0-9 . _ -, not starting "
                "with '-'";
}

#define SIZE_MIN_BYTES (1ull << 20)
#define SIZE_MAX_BYTES (1ull << 40)
#define CPU_MAX_CORES 1024u

/* A byte size as Kubernetes writes them: digits and an optional unit, Ki Mi
 * Gi (powers of 1024) or K M G (powers of 1000). Nothing else: no spaces, no
 * fractions, no "MB", no lower-case "m" (which Kubernetes reads as milli). */
static const char *parse_size(const char *s, uint64_t *out)
{
    const char *why = spec_size_parse(s, out);
    if (!why && *out < SIZE_MIN_BYTES)
        return "must be at least 1Mi";
    return why;
}

const char *spec_size_parse(const char *s, uint64_t *out)
{
    static const char *const bad = "expected a size like 256Mi, 1Gi, 500M or a number of bytes";
    static const struct {
        const char *unit;
        uint64_t mul;
    } units[] = {{"", 1},
                 {"K", 1000ull}, {"M", 1000000ull}, {"G", 1000000000ull},
                 {"Ki", 1ull << 10}, {"Mi", 1ull << 20}, {"Gi", 1ull << 30}};
    uint64_t v = 0;
    size_t i = 0;
    for (; digit((unsigned char)s[i]); i++) {
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > SIZE_MAX_BYTES)
            return "must be at most 1Ti";
    }
    if (i == 0)
        return bad;
    for (size_t u = 0; u < sizeof units / sizeof *units; u++) {
        if (strcmp(s + i, units[u].unit) == 0) {
            if (v > SIZE_MAX_BYTES / units[u].mul)
                return "must be at most 1Ti";
            v *= units[u].mul;
            *out = v;
            return NULL;
        }
    }
    return bad;
}

/* Cores as a positive decimal with at most three places ("0.5", "2",
 * "1.25"), kept in thousandths. */
static const char *parse_cpu(const char *s, uint32_t *millis)
{
    static const char *const bad = "expected a number of cores like 0.5, 1 or 2.25";
    uint64_t whole = 0, frac = 0;
    size_t i = 0, places = 0;
    for (; digit((unsigned char)s[i]); i++) {
        whole = whole * 10 + (uint64_t)(s[i] - '0');
        if (whole > CPU_MAX_CORES)
            return "must be at most 1024 cores";
    }
    if (i == 0)
        return bad;
    if (s[i] == '.') {
        for (i++; digit((unsigned char)s[i]); i++, places++) {
            if (places == 3)
                return "at most three decimal places (thousandths of a core)";
            frac = frac * 10 + (uint64_t)(s[i] - '0');
        }
        if (places == 0)
            return bad;
    }
    if (s[i])
        return bad;
    while (places < 3)
        frac *= 10, places++;
    uint64_t v = whole * 1000 + frac;
    if (v == 0)
        return "must be greater than zero";
    if (v > CPU_MAX_CORES * 1000ull)
        return "must be at most 1024 cores";
    *millis = (uint32_t)v;
    return NULL;
}

/* ---- schema ------------------------------------------------------------- */


static const char *const kinds[] = {"app", "model", "notebook", NULL};
static const char *const runtimes[] = {"exec", "oci", "model", "notebook", NULL};

static void http_init(void *m)
{
    ferry__http_check__init(m);
    ((Ferry__HttpCheck *)m)->status = 200;
}

static const struct field http_fields[] = {
    {.key = "path", .type = F_STRING, .required = true,
     .offset = MEMBER(Ferry__HttpCheck, path), .rule = rule_http_path},
    {.key = "status", .type = F_UINT, .offset = MEMBER(Ferry__HttpCheck, status),
     .min = 100, .max = 599},
};
FITS(http_fields);
static const struct schema http_schema = {FIELDS(http_fields), sizeof(Ferry__HttpCheck),
                                          http_init, NULL};

static void health_init(void *m)
{
    Ferry__Health *h = m;
    ferry__health__init(h);
    h->deadline_ms = 30000;
    h->interval_ms = 1000;
}

/* A health check either polls HTTP or runs a command; settle alone means
 * "alive this long is healthy". */
static int health_finish(const struct ctx *c, const yaml_node_t *map, const char *path,
                         void *msg)
{
    const Ferry__Health *h = msg;
    if (h->http && h->n_command)
        return fail(c, map, path, "give either http or command, not both");
    return 0;
}

static const struct field health_fields[] = {
    {.key = "http", .type = F_MAPPING, .offset = MEMBER(Ferry__Health, http),
     .sub = &http_schema},
    {.key = "command", .type = F_STRLIST, .nonempty = true,
     .offset = MEMBER(Ferry__Health, command), .count_offset = COUNT(Ferry__Health, command)},
    {.key = "settle", .type = F_DURATION, .offset = MEMBER(Ferry__Health, settle_ms)},
    {.key = "deadline", .type = F_DURATION, .offset = MEMBER(Ferry__Health, deadline_ms),
     .min = 1},
    {.key = "interval", .type = F_DURATION, .offset = MEMBER(Ferry__Health, interval_ms),
     .min = 1},
};
FITS(health_fields);
static const struct schema health_schema = {FIELDS(health_fields), sizeof(Ferry__Health),
                                            health_init, health_finish};

static void run_init(void *m) { ferry__run__init(m); }

static const char *const run_modes[] = {"service", "job", NULL};

/* Retries restart a job after a failed run; a service restarts anyway. */
static int run_finish(const struct ctx *c, const yaml_node_t *map, const char *path, void *msg)
{
    const Ferry__Run *r = msg;
    const yaml_node_t *v = value_of(c, map, "retries");
    if (v && strcmp(r->mode, "job") != 0)
        return fail(c, v, "run.retries", "applies to run.mode job only (a service is restarted "
                                         "whenever it exits)");
    return 0;
}

static const struct field run_fields[] = {
    {.key = "command", .type = F_STRLIST, .required = true, .nonempty = true,
     .offset = MEMBER(Ferry__Run, command), .count_offset = COUNT(Ferry__Run, command)},
    {.key = "env", .type = F_STRMAP, .offset = MEMBER(Ferry__Run, env),
     .count_offset = COUNT(Ferry__Run, env), .rule = rule_env_name},
    {.key = "mode", .type = F_CHOICE, .offset = MEMBER(Ferry__Run, mode), .choices = run_modes},
    {.key = "retries", .type = F_UINT, .offset = MEMBER(Ferry__Run, retries), .min = 0,
     .max = 1000},
    {.key = "user", .type = F_STRING, .offset = MEMBER(Ferry__Run, user), .rule = rule_user},
};
FITS(run_fields);
static const struct schema run_schema = {FIELDS(run_fields), sizeof(Ferry__Run), run_init,
                                         run_finish};

static const char *const model_formats[] = {"sklearn", "python", NULL};
static const char *const model_methods[] = {"predict", "predict_proba", NULL};
/* The Open Inference Protocol's tensor datatypes. */
static const char *const model_datatypes[] = {"BOOL",  "UINT8", "UINT16", "UINT32", "UINT64",
                                              "INT8",  "INT16", "INT32",  "INT64",  "FP16",
                                              "FP32",  "FP64",  "BYTES",  NULL};
#define MODEL_TENSORS_MAX 64 /* inputs or outputs; the server's MODEL_IO_MAX */
#define MODEL_RANK_MAX 8     /* the server's TENSOR_RANK_MAX */
#define MODEL_WORKERS_MAX 256
#define MODEL_BATCH_MAX 4096
#define MODEL_DELAY_MAX_US 10000000u
#define MODEL_BODY_MAX (1ull << 30)
#define MODEL_WINDOW_MAX 10000000

static void tensor_init(void *m) { ferry__tensor_spec__init(m); }

static const struct field tensor_fields[] = {
    {.key = "name", .type = F_STRING, .required = true, .offset = MEMBER(Ferry__TensorSpec, name),
     .rule = rule_tensor_name},
    {.key = "datatype", .type = F_CHOICE, .required = true,
     .offset = MEMBER(Ferry__TensorSpec, datatype), .choices = model_datatypes},
    {.key = "shape", .type = F_INTLIST, .required = true, .nonempty = true,
     .offset = MEMBER(Ferry__TensorSpec, shape), .count_offset = COUNT(Ferry__TensorSpec, shape),
     .max = MODEL_RANK_MAX},
};
FITS(tensor_fields);
static const struct schema tensor_schema = {FIELDS(tensor_fields), sizeof(Ferry__TensorSpec),
                                            tensor_init, NULL};

static void batching_init(void *m) { ferry__batching__init(m); }

static const struct field batching_fields[] = {
    {.key = "max_batch", .type = F_UINT, .required = true,
     .offset = MEMBER(Ferry__Batching, max_batch), .min = 1, .max = MODEL_BATCH_MAX},
    /* A delay beyond a few seconds is a latency no client waits for. */
    {.key = "max_delay", .type = F_MICROS, .offset = MEMBER(Ferry__Batching, max_delay_us),
     .max = MODEL_DELAY_MAX_US},
};
FITS(batching_fields);
static const struct schema batching_schema = {FIELDS(batching_fields), sizeof(Ferry__Batching),
                                              batching_init, NULL};

static void drift_init(void *m)
{
    Ferry__Drift *d = m;
    ferry__drift__init(d);
    d->window = 1000;
    d->alert = 0.2;
}

static const struct field drift_fields[] = {
    {.key = "window", .type = F_UINT, .offset = MEMBER(Ferry__Drift, window), .min = 10,
     .max = MODEL_WINDOW_MAX},
    {.key = "alert", .type = F_NUMBER, .offset = MEMBER(Ferry__Drift, alert)},
};
FITS(drift_fields);
static const struct schema drift_schema = {FIELDS(drift_fields), sizeof(Ferry__Drift), drift_init,
                                           NULL};

static void model_init(void *m)
{
    Ferry__ModelSpec *ms = m;
    ferry__model_spec__init(ms);
    ms->workers = 1;
}

/* Tensors are found by name: each name once per list. */
static int tensors_unique(const struct ctx *c, const yaml_node_t *map, const char *key,
                          Ferry__TensorSpec *const *t, size_t n)
{
    const yaml_node_t *list = value_of(c, map, key);
    for (size_t i = 1; list && i < n; i++) {
        for (size_t k = 0; k < i; k++) {
            if (strcmp(t[i]->name, t[k]->name) != 0)
                continue;
            const yaml_node_t *item = yaml_document_get_node(
                c->doc, list->data.sequence.items.start[i]);
            char sub[KEYPATH_MAX];
            snprintf(sub, sizeof sub, "model.%s[%zu].name", key, i);
            return fail(c, item, sub, "duplicate name '%s' (also %s[%zu])", t[i]->name, key, k);
        }
    }
    return 0;
}

static int model_finish(const struct ctx *c, const yaml_node_t *map, const char *path,
                        void *msg)
{
    (void)path;
    const Ferry__ModelSpec *m = msg;
    int rc = tensors_unique(c, map, "inputs", m->inputs, m->n_inputs);
    if (rc == 0)
        rc = tensors_unique(c, map, "outputs", m->outputs, m->n_outputs);
    const yaml_node_t *v = value_of(c, map, "drift");
    if (rc == 0 && v && !m->reference[0])
        rc = fail(c, v, "model.drift", "needs model.reference (the training inputs drift is "
                                       "measured against)");
    return rc;
}

static const struct field model_fields[] = {
    {.key = "format", .type = F_CHOICE, .offset = MEMBER(Ferry__ModelSpec, format),
     .choices = model_formats},
    {.key = "file", .type = F_STRING, .offset = MEMBER(Ferry__ModelSpec, file),
     .rule = rule_relpath},
    {.key = "entry", .type = F_STRING, .offset = MEMBER(Ferry__ModelSpec, entry),
     .rule = rule_entry},
    {.key = "method", .type = F_CHOICE, .offset = MEMBER(Ferry__ModelSpec, method),
     .choices = model_methods},
    {.key = "inputs", .type = F_MSGLIST, .nonempty = true,
     .offset = MEMBER(Ferry__ModelSpec, inputs), .count_offset = COUNT(Ferry__ModelSpec, inputs),
     .max = MODEL_TENSORS_MAX, .sub = &tensor_schema},
    {.key = "outputs", .type = F_MSGLIST, .nonempty = true,
     .offset = MEMBER(Ferry__ModelSpec, outputs),
     .count_offset = COUNT(Ferry__ModelSpec, outputs), .max = MODEL_TENSORS_MAX,
     .sub = &tensor_schema},
    {.key = "card", .type = F_STRING, .offset = MEMBER(Ferry__ModelSpec, card),
     .rule = rule_relpath},
    {.key = "pii", .type = F_BOOL, .offset = MEMBER(Ferry__ModelSpec, pii)},
    {.key = "reference", .type = F_STRING, .offset = MEMBER(Ferry__ModelSpec, reference),
     .rule = rule_relpath},
    {.key = "workers", .type = F_UINT, .offset = MEMBER(Ferry__ModelSpec, workers), .min = 1,
     .max = MODEL_WORKERS_MAX},
    {.key = "batching", .type = F_MAPPING, .offset = MEMBER(Ferry__ModelSpec, batching),
     .sub = &batching_schema},
    {.key = "drift", .type = F_MAPPING, .offset = MEMBER(Ferry__ModelSpec, drift),
     .sub = &drift_schema},
    {.key = "max_body", .type = F_SIZE, .offset = MEMBER(Ferry__ModelSpec, max_body)},
    /* Governance: figures the policy's metric thresholds compare against. */
    {.key = "metrics", .type = F_NUMMAP},
};
FITS(model_fields);
static const struct schema model_schema = {FIELDS(model_fields), sizeof(Ferry__ModelSpec),
                                           model_init, model_finish};

/* What only runtime model reads: another runtime serving a kind model
 * takes the descriptive keys (card, pii, inputs, outputs) alone. */
static const char *const model_serving_keys[] = {"format",   "file",    "entry",
                                                 "method",   "reference", "workers",
                                                 "batching", "drift",   "max_body", NULL};

/* runtime model: the format says what the server loads, and from where. */
static int model_rules(const struct ctx *c, const yaml_node_t *root, const Ferry__Spec *s)
{
    const yaml_node_t *mnode = value_of(c, root, "model");
    bool serves = strcmp(s->runtime, "model") == 0;
    if (!s->model) {
        if (serves)
            return fail(c, root, "model", "required key is missing (runtime model needs a "
                                          "model section: format and file or entry)");
        return 0;
    }
    if (strcmp(s->kind, "model") != 0 && !serves)
        return fail(c, mnode, "model", "a section for kind or runtime model, but this is kind "
                                       "%s, runtime %s", s->kind, s->runtime);
    const Ferry__ModelSpec *m = s->model;
    if (!serves) {
        for (size_t i = 0; model_serving_keys[i]; i++) {
            const yaml_node_t *v = value_of(c, mnode, model_serving_keys[i]);
            char sub[KEYPATH_MAX];
            snprintf(sub, sizeof sub, "model.%s", model_serving_keys[i]);
            if (v)
                return fail(c, v, sub, "applies to runtime model only (this is runtime %s)",
                            s->runtime);
        }
        return 0;
    }
    if (!m->format[0])
        return fail(c, mnode, "model.format", "required key is missing (sklearn or python)");
    bool sk = strcmp(m->format, "sklearn") == 0;
    const yaml_node_t *file = value_of(c, mnode, "file"), *entry = value_of(c, mnode, "entry"),
                      *method = value_of(c, mnode, "method");
    if (sk && !file)
        return fail(c, mnode, "model.file", "required key is missing (format sklearn loads "
                                            "an estimator file)");
    /* The other format's keys (the example carries file, entry
     * and method side by side) are checked for form and otherwise not
     * read: the format says which one the server loads. */
    (void)method;
    if (!sk && !entry)
        return fail(c, mnode, "model.entry", "required key is missing (format python needs "
                                             "FILE:CLASS)");
    /* Requests are checked against the signature before they reach the
     * model. A sklearn estimator may leave it to the fitted estimator,
     * which names it once loaded; a python model that declares none takes
     * the inputs each request names, so drift has nothing to bin. */
    if (!m->n_inputs && !sk && m->reference && *m->reference)
        return fail(c, value_of(c, mnode, "reference"), "model.reference",
                    "needs model.inputs with format python (drift is measured per declared "
                    "input)");
    const yaml_node_t *inputs = value_of(c, mnode, "inputs");
    bool columns = true;
    for (size_t i = 0; i < m->n_inputs; i++)
        columns = columns && m->inputs[i]->n_shape == 1;
    bool matrix = m->n_inputs == 1 && m->inputs[0]->n_shape == 2;
    if (sk && !columns && !matrix)
        return fail(c, inputs, "model.inputs", "format sklearn takes 1-D inputs (one per "
                                               "feature column, shape [-1]) or a single 2-D "
                                               "input (shape [-1, N])");
    if (sk && matrix && strcmp(m->inputs[0]->datatype, "BYTES") == 0)
        return fail(c, inputs, "model.inputs", "a 2-D sklearn input cannot be BYTES");
    const yaml_node_t *mb = value_of(c, mnode, "max_body");
    if (mb && m->max_body > MODEL_BODY_MAX)
        return fail(c, mb, "model.max_body", "must be at most 1Gi");
    if (sk && !m->method[0]) { /* unset: the default; an empty one is refused */
        char *d = strdup("predict");
        if (!d)
            return no_memory();
        s->model->method = d;
    }
    return 0;
}

static void notebook_init(void *m) { ferry__notebook_spec__init(m); }

static const struct field notebook_fields[] = {
    {.key = "kernel", .type = F_STRING, .offset = MEMBER(Ferry__NotebookSpec, kernel),
     .rule = rule_nonempty},
    {.key = "notebook", .type = F_STRING, .offset = MEMBER(Ferry__NotebookSpec, notebook),
     .rule = rule_nonempty},
    {.key = "schedule", .type = F_STRING, .offset = MEMBER(Ferry__NotebookSpec, schedule),
     .rule = rule_schedule},
    /* Values keep their YAML types; the plugin reads them from kind_json. */
    {.key = "parameters", .type = F_OPAQUE},
    {.key = "timeout", .type = F_DURATION, .offset = MEMBER(Ferry__NotebookSpec, timeout_ms),
     .min = 1},
    {.key = "env", .type = F_STRMAP, .offset = MEMBER(Ferry__NotebookSpec, env),
     .count_offset = COUNT(Ferry__NotebookSpec, env), .rule = rule_nb_env_name},
};
FITS(notebook_fields);

/* A run's settings mean nothing without the notebook to run, and a
 * parameter becomes a Python assignment, so its name must be one. */
static int notebook_finish(const struct ctx *c, const yaml_node_t *map, const char *path,
                           void *msg)
{
    static const char *const run_keys[] = {"parameters", "schedule", "timeout", NULL};
    char sub[KEYPATH_MAX];
    for (size_t i = 0; run_keys[i] && !((Ferry__NotebookSpec *)msg)->notebook[0]; i++) {
        const yaml_node_t *v = value_of(c, map, run_keys[i]);
        snprintf(sub, sizeof sub, "%s.%s", path, run_keys[i]);
        if (v)
            return fail(c, v, sub, "needs %s.notebook (the .ipynb to run)", path);
    }
    const yaml_node_t *pm = value_of(c, map, "parameters");
    for (yaml_node_pair_t *p = pm ? pm->data.mapping.pairs.start : NULL;
         p && p < pm->data.mapping.pairs.top; p++) {
        const char *k = text_of(yaml_document_get_node(c->doc, p->key));
        bool ok = (isalpha((unsigned char)*k) || *k == '_');
        for (const char *q = k; ok && *q; q++)
            ok = isalnum((unsigned char)*q) || *q == '_';
        snprintf(sub, sizeof sub, "%s.parameters.%.64s", path, k);
        if (!ok)
            return fail(c, yaml_document_get_node(c->doc, p->key), sub,
                        "a parameter name is a Python identifier (letters, digits, _)");
    }
    return 0;
}
static const struct schema notebook_schema = {FIELDS(notebook_fields), sizeof(Ferry__NotebookSpec),
                                              notebook_init, notebook_finish};

static void resources_init(void *m) { ferry__resources__init(m); }

/* An empty mapping would read as "limited" while limiting nothing. */
static int resources_finish(const struct ctx *c, const yaml_node_t *map, const char *path,
                            void *msg)
{
    const Ferry__Resources *r = msg;
    if (!r->memory_bytes && !r->pids && !r->cpu_millis)
        return fail(c, map, path, "give at least one of memory, pids, cpu");
    return 0;
}

static const struct field resources_fields[] = {
    {.key = "memory", .type = F_SIZE, .offset = MEMBER(Ferry__Resources, memory_bytes)},
    {.key = "pids", .type = F_UINT, .offset = MEMBER(Ferry__Resources, pids), .min = 1,
     .max = 4194304},
    {.key = "cpu", .type = F_CPU, .offset = MEMBER(Ferry__Resources, cpu_millis)},
};
FITS(resources_fields);
static const struct schema resources_schema = {FIELDS(resources_fields),
                                               sizeof(Ferry__Resources), resources_init,
                                               resources_finish};

static void spec_init(void *m) { ferry__spec__init(m); }

/* Top-level sections named after a runtime ferry itself has no schema for:
 * accepted as any mapping, carried in the signed ferry.yaml, and handed to
 * the plugin as JSON (ABI 2 kind_json). A new runtime's section is one
 * entry here and in spec_fields, and no ABI change. */
static const char *const opaque_sections[] = {NULL};

/* An app is a process ferry starts, so it must say how. A schedule starts
 * runs that end, so only a job has one. */
static int spec_finish(const struct ctx *c, const yaml_node_t *map, const char *path, void *msg)
{
    const Ferry__Spec *s = msg;
    /* An image carries its own command. */
    if (strcmp(s->kind, "app") == 0 && !s->run && strcmp(s->runtime, "oci") != 0)
        return fail(c, map, "run", "required key is missing (kind app needs a run command)");
    const yaml_node_t *v = value_of(c, map, "schedule");
    if (v && !(s->run && strcmp(s->run->mode, "job") == 0))
        return fail(c, v, "schedule", "a schedule needs run.mode: job (a service runs all the "
                                      "time)");
    int rc = model_rules(c, map, s);
    if (rc == 0)
        rc = spec_oci_rules(c, map, s);
    if (rc < 0)
        return rc;
    /* A section without a schema is the plugin's: only the one for this
     * artifact's own runtime or kind makes sense. */
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        for (size_t i = 0; opaque_sections[i]; i++)
            if (strcmp(text_of(k), opaque_sections[i]) == 0 && strcmp(s->runtime, opaque_sections[i]) != 0 &&
                strcmp(s->kind, opaque_sections[i]) != 0)
                return fail(c, k, opaque_sections[i], "a section for runtime or kind %s, but this is kind %s, runtime %s",
                            opaque_sections[i], s->kind, s->runtime);
    }
    return 0;
}

static const struct field spec_fields[] = {
    {.key = "name", .type = F_STRING, .required = true, .offset = MEMBER(Ferry__Spec, name),
     .rule = rule_name},
    {.key = "version", .type = F_STRING, .required = true,
     .offset = MEMBER(Ferry__Spec, version), .rule = rule_version},
    {.key = "kind", .type = F_CHOICE, .required = true, .offset = MEMBER(Ferry__Spec, kind),
     .choices = kinds},
    {.key = "runtime", .type = F_CHOICE, .required = true,
     .offset = MEMBER(Ferry__Spec, runtime), .choices = runtimes},
    {.key = "description", .type = F_STRING, .offset = MEMBER(Ferry__Spec, description)},
    {.key = "run", .type = F_MAPPING, .offset = MEMBER(Ferry__Spec, run), .sub = &run_schema},
    {.key = "health", .type = F_MAPPING, .offset = MEMBER(Ferry__Spec, health),
     .sub = &health_schema},
    {.key = "labels", .type = F_STRMAP, .offset = MEMBER(Ferry__Spec, labels),
     .count_offset = COUNT(Ferry__Spec, labels), .rule = rule_label_name},
    {.key = "model", .type = F_MAPPING, .offset = MEMBER(Ferry__Spec, model),
     .sub = &model_schema},
    {.key = "notebook", .type = F_MAPPING, .offset = MEMBER(Ferry__Spec, notebook),
     .sub = &notebook_schema},
    {.key = "schedule", .type = F_STRING, .offset = MEMBER(Ferry__Spec, schedule),
     .rule = rule_schedule},
    {.key = "resources", .type = F_MAPPING, .offset = MEMBER(Ferry__Spec, resources),
     .sub = &resources_schema},
    {.key = "oci", .type = F_MAPPING, .offset = MEMBER(Ferry__Spec, oci),
     .sub = &spec_oci_schema},
};
FITS(spec_fields);
static const struct schema spec_schema = {FIELDS(spec_fields), sizeof(Ferry__Spec), spec_init,
                                          spec_finish};

/* ---- the walk ----------------------------------------------------------- */

#define AT(msg, off, type) ((type *)(void *)((char *)(msg) + (off)))

static int parse_mapping(const struct ctx *c, const yaml_node_t *map, const char *path,
                         const struct schema *s, void *msg);

static int key_of(const struct ctx *c, const yaml_node_t *k, const char *path)
{
    if (k->type != YAML_SCALAR_NODE || is_null(k) ||
        memchr(k->data.scalar.value, 0, k->data.scalar.length))
        return fail(c, k, path, "mapping keys must be plain strings");
    return 0;
}

static int parse_string(const struct ctx *c, const struct field *f, const yaml_node_t *v,
                        const char *path, void *msg)
{
    int rc = scalar(c, v, path, "a string");
    if (rc < 0)
        return rc;
    const char *why = f->rule ? f->rule(text_of(v)) : NULL;
    if (why)
        return fail(c, v, path, "%s", why);
    char *s = dup_text(v);
    if (!s)
        return no_memory();
    *AT(msg, f->offset, char *) = s;
    return 0;
}

static int parse_choice(const struct ctx *c, const struct field *f, const yaml_node_t *v,
                        const char *path, void *msg)
{
    int rc = scalar(c, v, path, "a string");
    if (rc < 0)
        return rc;
    char list[128] = "";
    for (size_t i = 0; f->choices[i]; i++) {
        if (strcmp(text_of(v), f->choices[i]) == 0) {
            char *s = dup_text(v);
            if (!s)
                return no_memory();
            *AT(msg, f->offset, char *) = s;
            return 0;
        }
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", f->choices[i]);
    }
    return fail(c, v, path, "must be one of %s", list);
}

static int parse_strlist(const struct ctx *c, const struct field *f, const yaml_node_t *v,
                         const char *path, void *msg)
{
    /* A single string is never split into words: argv is what the author
     * wrote, item by item. */
    if (v->type == YAML_SCALAR_NODE && !is_null(v))
        return fail(c, v, path, "expected a list of strings, not a single value");
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(c, v, path, "expected a list of strings");
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n == 0 && f->nonempty)
        return fail(c, v, path, "must not be an empty list");
    if (n == 0)
        return 0;
    char **arr = calloc(n, sizeof *arr);
    if (!arr)
        return no_memory();
    size_t *count = AT(msg, f->count_offset, size_t);
    *AT(msg, f->offset, char **) = arr;
    *count = 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        const yaml_node_t *item = yaml_document_get_node(c->doc, *it);
        if (item->type != YAML_SCALAR_NODE || is_null(item))
            return fail(c, item, path, "expected a list of strings");
        int rc = scalar(c, item, path, "a string");
        if (rc < 0)
            return rc;
        if (!*text_of(item))
            return fail(c, item, path, "list items must not be empty");
        if (!(arr[*count] = dup_text(item)))
            return no_memory();
        (*count)++;
    }
    return 0;
}

static int parse_strmap(const struct ctx *c, const struct field *f, const yaml_node_t *v,
                        const char *path, void *msg)
{
    if (v->type != YAML_MAPPING_NODE)
        return fail(c, v, path, "expected a mapping of strings");
    size_t n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
    if (n > MAP_ENTRIES_MAX)
        return fail_at(c, FERRY_E_LIMIT, line_of(v), path, "more than %d entries",
                       MAP_ENTRIES_MAX);
    if (n == 0)
        return 0;
    Ferry__EnvVar **arr = calloc(n, sizeof *arr);
    if (!arr)
        return no_memory();
    size_t *count = AT(msg, f->count_offset, size_t);
    *AT(msg, f->offset, Ferry__EnvVar **) = arr;
    *count = 0;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        const yaml_node_t *val = yaml_document_get_node(c->doc, p->value);
        int rc = key_of(c, k, path);
        if (rc < 0)
            return rc;
        char sub[KEYPATH_MAX];
        join(sub, sizeof sub, path, text_of(k), k->data.scalar.length);
        const char *why = f->rule ? f->rule(text_of(k)) : NULL;
        if (why)
            return fail(c, k, sub, "%s", why);
        for (size_t i = 0; i < *count; i++)
            if (strcmp(arr[i]->name, text_of(k)) == 0)
                return fail(c, k, sub, "duplicate key");
        if ((rc = scalar(c, val, sub, "a string")) < 0)
            return rc;
        Ferry__EnvVar *e = malloc(sizeof *e);
        if (!e)
            return no_memory();
        ferry__env_var__init(e);
        arr[(*count)++] = e;
        if (!(e->name = dup_text(k)) || !(e->value = dup_text(val)))
            return no_memory();
    }
    return 0;
}

/* Only plain true/false (in YAML 1.2's three spellings): "yes", "on" and a
 * quoted "true" are refused rather than guessed at. */
static int parse_bool(const struct ctx *c, const struct field *f, const yaml_node_t *v,
                      const char *path, void *msg)
{
    static const char *const truths[] = {"true", "True", "TRUE"};
    static const char *const falsities[] = {"false", "False", "FALSE"};
    if (v->type != YAML_SCALAR_NODE || is_null(v) ||
        (v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE && !has_tag(v, YAML_BOOL_TAG)) ||
        !(has_tag(v, YAML_STR_TAG) || has_tag(v, YAML_BOOL_TAG)))
        return fail(c, v, path, "expected true or false");
    for (size_t i = 0; i < 3; i++) {
        if (strcmp(text_of(v), truths[i]) == 0) {
            *AT(msg, f->offset, protobuf_c_boolean) = 1;
            return 0;
        }
        if (strcmp(text_of(v), falsities[i]) == 0) {
            *AT(msg, f->offset, protobuf_c_boolean) = 0;
            return 0;
        }
    }
    return fail(c, v, path, "expected true or false");
}

static int parse_uint(const struct ctx *c, const struct field *f, const yaml_node_t *v,
                      const char *path, void *msg)
{
    bool ok = v->type == YAML_SCALAR_NODE && !is_null(v) &&
              (has_tag(v, YAML_STR_TAG) || has_tag(v, YAML_INT_TAG)) &&
              (v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE || has_tag(v, YAML_INT_TAG));
    uint64_t n = 0;
    const char *s = ok ? text_of(v) : "";
    ok = ok && *s;
    for (; ok && *s; s++) {
        ok = digit((unsigned char)*s);
        n = n * 10 + (uint64_t)(*s - '0');
        ok = ok && n <= f->max;
    }
    if (!ok || n < f->min)
        return fail(c, v, path, "expected an integer from %u to %u", (unsigned)f->min,
                    (unsigned)f->max);
    *AT(msg, f->offset, uint32_t) = (uint32_t)n;
    return 0;
}

static int parse_duration_field(const struct ctx *c, const struct field *f,
                                const yaml_node_t *v, const char *path, void *msg)
{
    int rc = scalar(c, v, path, "a duration like 500ms, 10s, 2m, 1h or a number of seconds");
    if (rc < 0)
        return rc;
    uint32_t ms = 0;
    const char *why = parse_duration(text_of(v), &ms);
    if (!why && ms < f->min)
        why = "must be greater than zero";
    if (why)
        return fail(c, v, path, "%s", why);
    *AT(msg, f->offset, uint32_t) = ms;
    return 0;
}

static int parse_nested(const struct ctx *c, const struct field *f, const yaml_node_t *v,
                        const char *path, void *msg)
{
    if (v->type != YAML_MAPPING_NODE)
        return fail(c, v, path, "expected a mapping");
    void *sub = malloc(f->sub->size);
    if (!sub)
        return no_memory();
    f->sub->init(sub);
    /* Attached before it is filled, so an error frees it with the rest. */
    *AT(msg, f->offset, void *) = sub;
    return parse_mapping(c, v, path, f->sub, sub);
}

static int parse_size_field(const struct ctx *c, const struct field *f, const yaml_node_t *v,
                            const char *path, void *msg)
{
    int rc = scalar(c, v, path, "a size like 256Mi, 1Gi, 500M or a number of bytes");
    if (rc < 0)
        return rc;
    uint64_t bytes = 0;
    const char *why = parse_size(text_of(v), &bytes);
    if (why)
        return fail(c, v, path, "%s", why);
    *AT(msg, f->offset, uint64_t) = bytes;
    return 0;
}

/* A plain number as YAML writes one: a quoted "0.5" is refused, as quoted
 * integers are. */
static int parse_cpu_field(const struct ctx *c, const struct field *f, const yaml_node_t *v,
                           const char *path, void *msg)
{
    bool plain = v->type == YAML_SCALAR_NODE && !is_null(v) &&
                 (has_tag(v, YAML_STR_TAG) || has_tag(v, YAML_INT_TAG) ||
                  has_tag(v, YAML_FLOAT_TAG)) &&
                 (v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE || !has_tag(v, YAML_STR_TAG));
    if (!plain)
        return fail(c, v, path, "expected a number of cores like 0.5, 1 or 2.25");
    uint32_t millis = 0;
    const char *why = parse_cpu(text_of(v), &millis);
    if (why)
        return fail(c, v, path, "%s", why);
    *AT(msg, f->offset, uint32_t) = millis;
    return 0;
}

/* Any YAML the first pass let through, as long as it maps to JSON: keys
 * are plain non-empty strings, once per mapping, and no scalar holds NUL. */
static int check_opaque_node(const struct ctx *c, const yaml_node_t *v, const char *path)
{
    char sub[KEYPATH_MAX];
    if (v->type == YAML_SCALAR_NODE) {
        if (memchr(v->data.scalar.value, 0, v->data.scalar.length))
            return fail(c, v, path, "contains a NUL character");
        return 0;
    }
    if (v->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
            int rc = check_opaque_node(c, yaml_document_get_node(c->doc, *it), path);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    size_t n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
    if (n > MAP_ENTRIES_MAX)
        return fail_at(c, FERRY_E_LIMIT, line_of(v), path, "more than %d entries", MAP_ENTRIES_MAX);
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        int rc = key_of(c, k, path);
        if (rc < 0)
            return rc;
        join(sub, sizeof sub, path, text_of(k), k->data.scalar.length);
        for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < p; q++)
            if (strcmp(text_of(yaml_document_get_node(c->doc, q->key)), text_of(k)) == 0)
                return fail(c, k, sub, "duplicate key");
        if ((rc = check_opaque_node(c, yaml_document_get_node(c->doc, p->value), sub)) < 0)
            return rc;
    }
    return 0;
}

static int parse_opaque(const struct ctx *c, const struct field *f, const yaml_node_t *v,
                        const char *path, void *msg)
{
    (void)f;
    (void)msg;
    if (v->type != YAML_MAPPING_NODE)
        return fail(c, v, path, "expected a mapping");
    return check_opaque_node(c, v, path);
}

/* A list of mappings, each a message of `sub`: model.inputs, model.outputs. */
static int parse_msglist(const struct ctx *c, const struct field *f, const yaml_node_t *v,
                         const char *path, void *msg)
{
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(c, v, path, "expected a list of mappings");
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n == 0 && f->nonempty)
        return fail(c, v, path, "must not be an empty list");
    if (n > f->max)
        return fail_at(c, FERRY_E_LIMIT, line_of(v), path, "more than %u items",
                       (unsigned)f->max);
    if (n == 0)
        return 0;
    void **arr = calloc(n, sizeof *arr);
    if (!arr)
        return no_memory();
    size_t *count = AT(msg, f->count_offset, size_t);
    *AT(msg, f->offset, void **) = arr;
    *count = 0;
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *item = yaml_document_get_node(c->doc, v->data.sequence.items.start[i]);
        char sub[KEYPATH_MAX];
        snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        if (item->type != YAML_MAPPING_NODE)
            return fail(c, item, sub, "expected a mapping like {name: x, datatype: FP64, "
                                      "shape: [-1]}");
        if (!(arr[i] = malloc(f->sub->size)))
            return no_memory();
        f->sub->init(arr[i]);
        (*count)++; /* attached before it is filled, as parse_nested does */
        int rc = parse_mapping(c, item, sub, f->sub, arr[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* model.metrics (governance): metric names to plain numbers. */
static int parse_nummap(const struct ctx *c, const struct field *f, const yaml_node_t *v,
                        const char *path, void *msg)
{
    (void)f;
    Ferry__ModelSpec *ms = msg;
    if (v->type != YAML_MAPPING_NODE)
        return fail(c, v, path, "expected a mapping of metric names to numbers");
    size_t n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
    if (n > 64)
        return fail_at(c, FERRY_E_LIMIT, line_of(v), path, "more than 64 metrics");
    if (n == 0)
        return 0;
    if (!(ms->metrics = calloc(n, sizeof *ms->metrics)))
        return no_memory();
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        const yaml_node_t *val = yaml_document_get_node(c->doc, p->value);
        int rc = key_of(c, k, path);
        if (rc < 0)
            return rc;
        char sub[KEYPATH_MAX];
        join(sub, sizeof sub, path, text_of(k), k->data.scalar.length);
        for (size_t i = 0; i < ms->n_metrics; i++)
            if (strcmp(ms->metrics[i]->key, text_of(k)) == 0)
                return fail(c, k, sub, "duplicate key");
        bool plain = val->type == YAML_SCALAR_NODE && !is_null(val) &&
                     val->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        char *end = NULL;
        double d = plain ? strtod(text_of(val), &end) : 0;
        if (!plain || !end || end == text_of(val) || *end || d != d)
            return fail(c, val, sub, "expected a number like 0.94");
        Ferry__ModelSpec__MetricsEntry *e = malloc(sizeof *e);
        if (!e)
            return no_memory();
        ferry__model_spec__metrics_entry__init(e);
        ms->metrics[ms->n_metrics++] = e;
        if (!(e->key = dup_text(k)))
            return no_memory();
        e->value = d;
    }
    return 0;
}

#define DIM_MAX 2147483647ll

/* Tensor dimensions: plain integers, -1 meaning any size. */
static int parse_intlist(const struct ctx *c, const struct field *f, const yaml_node_t *v,
                         const char *path, void *msg)
{
    static const char *const want = "expected a list of dimensions (integers from 0, or -1 "
                                    "for any size), like [-1] or [-1, 4]";
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(c, v, path, "%s", want);
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n == 0 && f->nonempty)
        return fail(c, v, path, "must not be an empty list");
    if (n > f->max)
        return fail(c, v, path, "more than %u dimensions", (unsigned)f->max);
    if (n == 0)
        return 0;
    int64_t *arr = calloc(n, sizeof *arr);
    if (!arr)
        return no_memory();
    *AT(msg, f->offset, int64_t *) = arr;
    size_t *count = AT(msg, f->count_offset, size_t);
    *count = n;
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *d = yaml_document_get_node(c->doc, v->data.sequence.items.start[i]);
        bool ok = d->type == YAML_SCALAR_NODE && !is_null(d) &&
                  (has_tag(d, YAML_STR_TAG) || has_tag(d, YAML_INT_TAG)) &&
                  (d->data.scalar.style == YAML_PLAIN_SCALAR_STYLE || has_tag(d, YAML_INT_TAG));
        const char *s = ok ? text_of(d) : "";
        int64_t val = 0;
        if (ok && strcmp(s, "-1") == 0) {
            val = -1;
        } else {
            ok = ok && *s;
            for (; ok && *s; s++) {
                ok = digit((unsigned char)*s);
                val = val * 10 + (*s - '0');
                ok = ok && val <= DIM_MAX;
            }
        }
        if (!ok)
            return fail(c, d, path, "%s", want);
        arr[i] = val;
    }
    return 0;
}

/* A plain positive number: 0.2, 1, 1e-3. */
static int parse_number(const struct ctx *c, const struct field *f, const yaml_node_t *v,
                        const char *path, void *msg)
{
    bool plain = v->type == YAML_SCALAR_NODE && !is_null(v) &&
                 (has_tag(v, YAML_STR_TAG) || has_tag(v, YAML_INT_TAG) ||
                  has_tag(v, YAML_FLOAT_TAG)) &&
                 (v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE || !has_tag(v, YAML_STR_TAG));
    const char *s = plain ? text_of(v) : "";
    bool ok = plain && *s && (digit((unsigned char)*s) || *s == '.');
    char *end = NULL;
    double d = ok ? strtod(s, &end) : 0;
    ok = ok && end && *end == '\0' && isfinite(d) && d > 0;
    if (!ok)
        return fail(c, v, path, "expected a number greater than zero, like 0.2");
    *AT(msg, f->offset, double) = d;
    return 0;
}

/* Batching delays are shorter than a millisecond as often as not: "500us",
 * or any duration ("2ms", "1s"), in microseconds up to f->max. */
static int parse_micros(const struct ctx *c, const struct field *f, const yaml_node_t *v,
                        const char *path, void *msg)
{
    static const char *const want = "expected a duration like 500us, 2ms or 1s";
    int rc = scalar(c, v, path, "a duration like 500us, 2ms or 1s");
    if (rc < 0)
        return rc;
    const char *s = text_of(v);
    size_t n = strlen(s);
    uint64_t us = 0;
    if (n > 2 && strcmp(s + n - 2, "us") == 0) {
        size_t i = 0;
        for (; i < n - 2 && digit((unsigned char)s[i]); i++) {
            us = us * 10 + (uint64_t)(s[i] - '0');
            if (us > f->max)
                break;
        }
        if (i < n - 2 && us <= f->max)
            return fail(c, v, path, "%s", want);
    } else {
        uint32_t ms = 0;
        if (parse_duration(s, &ms))
            return fail(c, v, path, "%s", want);
        us = (uint64_t)ms * 1000;
    }
    if (us > f->max)
        return fail(c, v, path, "must be at most %us", (unsigned)(f->max / 1000000));
    *AT(msg, f->offset, uint32_t) = (uint32_t)us;
    return 0;
}

typedef int (*parse_fn)(const struct ctx *, const struct field *, const yaml_node_t *,
                        const char *, void *);

static const parse_fn parsers[] = {
    [F_STRING] = parse_string, [F_CHOICE] = parse_choice,
    [F_STRLIST] = parse_strlist, [F_STRMAP] = parse_strmap,
    [F_BOOL] = parse_bool, [F_UINT] = parse_uint,
    [F_DURATION] = parse_duration_field, [F_MAPPING] = parse_nested,
    [F_SIZE] = parse_size_field, [F_CPU] = parse_cpu_field,
    [F_OPAQUE] = parse_opaque,
    [F_MSGLIST] = parse_msglist, [F_INTLIST] = parse_intlist,
    [F_NUMBER] = parse_number, [F_MICROS] = parse_micros,
    [F_NUMMAP] = parse_nummap,
};

static int parse_mapping(const struct ctx *c, const yaml_node_t *map, const char *path,
                         const struct schema *s, void *msg)
{
    uint32_t seen = 0;
    char sub[KEYPATH_MAX];
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
        int rc = key_of(c, k, path);
        if (rc < 0)
            return rc;
        join(sub, sizeof sub, path, text_of(k), k->data.scalar.length);
        size_t i = 0;
        while (i < s->n_fields && strcmp(s->fields[i].key, text_of(k)) != 0)
            i++;
        if (i == s->n_fields)
            return fail(c, k, sub, "unknown key");
        if (seen & (1u << i))
            return fail(c, k, sub, "duplicate key");
        seen |= 1u << i;
        if ((rc = parsers[s->fields[i].type](c, &s->fields[i], v, sub, msg)) < 0)
            return rc;
    }
    for (size_t i = 0; i < s->n_fields; i++) {
        if (s->fields[i].required && !(seen & (1u << i))) {
            const char *key = s->fields[i].key;
            join(sub, sizeof sub, path, key, strlen(key));
            return fail(c, map, sub, "required key is missing");
        }
    }
    return s->finish ? s->finish(c, map, path, msg) : 0;
}

/* ---- public ------------------------------------------------------------- */

int spec_parse(const char *display_path, const char *text, size_t len, Ferry__Spec **out)
{
    const char *file = display_path ? display_path : "ferry.yaml";
    if (!out || (!text && len))
        return err_set(FERRY_E_INVALID, "%s: no text to parse", file);
    if (len > SPEC_MAX_BYTES)
        return err_set(FERRY_E_LIMIT, "%s: %zu bytes, more than the 1 MiB allowed", file, len);
    if (!text)
        text = "";

    yaml_document_t doc;
    struct ctx c = {&doc, file};
    int rc = screen(&c, text, len);
    if (rc < 0)
        return rc;

    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return no_memory();
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) { /* libyaml frees doc itself */
        rc = yaml_failure(file, text, len, &parser);
        yaml_parser_delete(&parser);
        return rc;
    }
    yaml_parser_delete(&parser);

    Ferry__Spec *spec = NULL;
    const yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || is_null(root)) {
        rc = fail_at(&c, FERRY_E_SPEC, 1, "", "the document is empty");
    } else if (root->type != YAML_MAPPING_NODE) {
        rc = fail(&c, root, "", "the top level must be a mapping of keys (name: ..., ...)");
    } else if (!(spec = malloc(sizeof *spec))) {
        rc = no_memory();
    } else {
        ferry__spec__init(spec);
        rc = parse_mapping(&c, root, "", &spec_schema, spec);
    }
    yaml_document_delete(&doc);
    if (rc < 0) {
        spec_free(spec);
        return rc;
    }
    *out = spec;
    return 0;
}

int spec_parse_file(const char *path, Ferry__Spec **out)
{
    int fd = fs_open_regular(path, NULL);
    if (fd < 0)
        return fd;
    /* Read at most one byte past the cap: enough to know it is too big. */
    size_t cap = SPEC_MAX_BYTES + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return no_memory();
    }
    int rc = 0;
    while (len < cap) {
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = err_set(-errno, "%s: %s", path, strerror(errno));
            break;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    if (rc == 0)
        rc = spec_parse(path, buf, len, out);
    free(buf);
    return rc;
}

void spec_free(Ferry__Spec *spec)
{
    if (spec)
        ferry__spec__free_unpacked(spec, NULL);
}

int spec_name_ok(const char *name)
{
    if (!name)
        return 0;
    size_t n = strlen(name);
    if (n == 0 || n > SPEC_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        bool alnum = (ch >= 'a' && ch <= 'z') || digit((unsigned char)ch);
        if (!alnum && (i == 0 || (ch != '.' && ch != '_' && ch != '-')))
            return 0;
    }
    return 1;
}

int spec_version_ok(const char *version)
{
    if (!version)
        return 0;
    size_t n = strlen(version);
    if (n == 0 || n > SPEC_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = version[i];
        bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                     digit((unsigned char)ch);
        if (!alnum && (i == 0 || (ch != '.' && ch != '_' && ch != '+' && ch != '-')))
            return 0;
    }
    return 1;
}
