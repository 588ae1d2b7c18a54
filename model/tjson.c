#include "tjson.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FP16_MAX 65504.0

static int whyf(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int whyf(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return -1;
}

void tjson_describe(const json_t *v, char *buf, size_t cap)
{
    switch (json_typeof(v)) {
    case JSON_INTEGER:
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL: {
        /* The shortest text that reads back as the same double. */
        double x = json_real_value(v);
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, cap, "%.*g", prec, x);
            if (strtod(buf, NULL) == x)
                break;
        }
        break;
    }
    case JSON_STRING:
        if (json_string_length(v) > 20)
            snprintf(buf, cap, "\"%.20s...\"", json_string_value(v));
        else
            snprintf(buf, cap, "\"%s\"", json_string_value(v));
        break;
    case JSON_TRUE:
        snprintf(buf, cap, "true");
        break;
    case JSON_FALSE:
        snprintf(buf, cap, "false");
        break;
    case JSON_NULL:
        snprintf(buf, cap, "null");
        break;
    case JSON_ARRAY:
        snprintf(buf, cap, "a list");
        break;
    default:
        snprintf(buf, cap, "an object");
        break;
    }
}

/* IEEE binary16 from a double, round to nearest even (through float; the
 * double rounding cannot matter at binary16's 11 bits of precision except
 * at exact ties of float, which are not ties of half). */
static uint16_t half_from(double d)
{
    float f = (float)d;
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t fexp = (x >> 23) & 0xffu;
    uint32_t mant = x & 0x7fffffu;
    if (fexp == 0xff)
        return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u : 0));
    int32_t exp = (int32_t)fexp - 127 + 15;
    if (exp >= 31)
        return (uint16_t)(sign | 0x7c00u);
    if (exp <= 0) {
        if (exp < -10)
            return (uint16_t)sign;
        mant |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t h = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (h & 1)))
            h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = sign | ((uint32_t)exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
        h++;
    return (uint16_t)h;
}

static double half_to(uint16_t h)
{
    int e = (h >> 10) & 0x1f;
    int m = h & 0x3ff;
    double v;
    if (e == 0)
        v = ldexp(m, -24);
    else if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexp(m | 0x400, e - 25);
    return (h & 0x8000) ? -v : v;
}

/* The output buffer: fixed-size elements at known offsets, BYTES growing. */
struct sink {
    uint8_t *p;
    size_t len, cap;
};

static int sink_reserve(struct sink *s, size_t more)
{
    if (more > SIZE_MAX - s->len)
        return -1;
    if (s->len + more <= s->cap)
        return 0;
    size_t cap = s->cap ? s->cap : 256;
    while (cap < s->len + more)
        cap = cap > SIZE_MAX / 2 ? s->len + more : cap * 2;
    uint8_t *p = realloc(s->p, cap);
    if (!p)
        return -1;
    s->p = p;
    s->cap = cap;
    return 0;
}

static int put_elem(enum dtype dt, const json_t *v, int flags, struct sink *s, size_t idx,
                    char *why, size_t cap)
{
    char d[64];
    if (dt == DT_BYTES) {
        if (!json_is_string(v)) {
            tjson_describe(v, d, sizeof d);
            return whyf(why, cap, "element %zu: %s is not a string (BYTES)", idx, d);
        }
        size_t len = json_string_length(v);
        if (len > UINT32_MAX)
            return whyf(why, cap, "element %zu: longer than 4 GiB", idx);
        if (sink_reserve(s, 4 + len) < 0)
            return whyf(why, cap, "out of memory");
        uint32_t l32 = (uint32_t)len;
        memcpy(s->p + s->len, &l32, 4);
        memcpy(s->p + s->len + 4, json_string_value(v), len);
        s->len += 4 + len;
        return 0;
    }
    size_t sz = dtype_size(dt);
    uint8_t *dst = s->p + idx * sz;
    if (dt == DT_BOOL) {
        if (!json_is_boolean(v)) {
            tjson_describe(v, d, sizeof d);
            return whyf(why, cap, "element %zu: %s is not a boolean (BOOL)", idx, d);
        }
        *dst = json_is_true(v) ? 1 : 0;
        return 0;
    }
    if (dt == DT_FP16 || dt == DT_FP32 || dt == DT_FP64) {
        double x;
        if (json_is_null(v) && (flags & TJSON_NULL_NAN))
            x = NAN;
        else if (json_is_number(v))
            x = json_number_value(v);
        else {
            tjson_describe(v, d, sizeof d);
            return whyf(why, cap, "element %zu: %s is not a number (%s)", idx, d,
                        dtype_name(dt));
        }
        double lim = dt == DT_FP16 ? FP16_MAX : dt == DT_FP32 ? (double)FLT_MAX : DBL_MAX;
        if (isfinite(x) && fabs(x) > lim) {
            tjson_describe(v, d, sizeof d);
            return whyf(why, cap, "element %zu: %s is out of range for %s", idx, d,
                        dtype_name(dt));
        }
        if (dt == DT_FP64) {
            memcpy(dst, &x, 8);
        } else if (dt == DT_FP32) {
            float f = (float)x;
            memcpy(dst, &f, 4);
        } else {
            uint16_t h = half_from(x);
            memcpy(dst, &h, 2);
        }
        return 0;
    }
    /* Integers: JSON integers only (1.5 or "1" would be a silent guess). */
    if (!json_is_integer(v)) {
        tjson_describe(v, d, sizeof d);
        return whyf(why, cap, "element %zu: %s is not an integer (%s)", idx, d, dtype_name(dt));
    }
    json_int_t n = json_integer_value(v);
    long long lo, hi;
    switch (dt) {
    case DT_UINT8: lo = 0; hi = UINT8_MAX; break;
    case DT_UINT16: lo = 0; hi = UINT16_MAX; break;
    case DT_UINT32: lo = 0; hi = UINT32_MAX; break;
    case DT_UINT64: lo = 0; hi = INT64_MAX; break; /* jansson reads up to INT64_MAX */
    case DT_INT8: lo = INT8_MIN; hi = INT8_MAX; break;
    case DT_INT16: lo = INT16_MIN; hi = INT16_MAX; break;
    case DT_INT32: lo = INT32_MIN; hi = INT32_MAX; break;
    default: lo = INT64_MIN; hi = INT64_MAX; break;
    }
    if (n < lo || n > hi)
        return whyf(why, cap, "element %zu: %lld is out of range for %s", idx, (long long)n,
                    dtype_name(dt));
    switch (sz) {
    case 1: { uint8_t u = (uint8_t)n; memcpy(dst, &u, 1); break; }
    case 2: { uint16_t u = (uint16_t)n; memcpy(dst, &u, 2); break; }
    case 4: { uint32_t u = (uint32_t)n; memcpy(dst, &u, 4); break; }
    default: { int64_t u = (int64_t)n; memcpy(dst, &u, 8); break; }
    }
    return 0;
}

static void shape_text(const struct tensor *t, char *buf, size_t cap)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, cap - o, "[");
    for (int i = 0; i < t->rank && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%" PRId64, i ? "," : "", t->shape[i]);
    if (o < cap)
        snprintf(buf + o, cap - o, "]");
}

/* Nested data must be rectangular (every list at one depth as long as the
 * first, values only at the deepest level), as numpy reads it; its element
 * count is then compared with the shape's. This accepts the natural form
 * ([[1,2],[3,4]] for [2,2]) and the flat one, and also other regular
 * nestings of the same elements ([[5.1],[4.9]] for [2]), as the reference
 * servers do (they reshape what they read). */
#define NEST_MAX 32

struct nest {
    size_t len[NEST_MAX]; /* length of the lists at each depth, once seen */
    int seen[NEST_MAX];
    int leaf_depth;       /* -1 until the first value */
    size_t count;
};

static int measure(const json_t *v, int depth, struct nest *ns, char *why, size_t cap)
{
    if (!json_is_array(v)) {
        if (ns->leaf_depth < 0)
            ns->leaf_depth = depth;
        else if (ns->leaf_depth != depth)
            return whyf(why, cap,
                        "nested data is not rectangular: values and lists mixed at depth %d",
                        depth < ns->leaf_depth ? depth : ns->leaf_depth);
        ns->count++;
        return 0;
    }
    if (depth >= NEST_MAX)
        return whyf(why, cap, "nested data deeper than %d lists", NEST_MAX);
    size_t n = json_array_size(v);
    if (!ns->seen[depth]) {
        ns->seen[depth] = 1;
        ns->len[depth] = n;
    } else if (ns->len[depth] != n) {
        return whyf(why, cap,
                    "nested data is not rectangular: a list of %zu where the first at depth %d "
                    "has %zu",
                    n, depth + 1, ns->len[depth]);
    }
    if (ns->leaf_depth >= 0 && depth >= ns->leaf_depth)
        return whyf(why, cap, "nested data is not rectangular: values and lists mixed at depth %d",
                    depth);
    size_t i;
    const json_t *e;
    json_array_foreach(v, i, e) {
        if (measure(e, depth + 1, ns, why, cap) < 0)
            return -1;
    }
    return 0;
}

static int put_all(const struct tensor *t, const json_t *v, int flags, struct sink *s,
                   size_t *idx, char *why, size_t cap)
{
    if (!json_is_array(v))
        return put_elem(t->dtype, v, flags, s, (*idx)++, why, cap);
    size_t i;
    const json_t *e;
    json_array_foreach(v, i, e) {
        if (put_all(t, e, flags, s, idx, why, cap) < 0)
            return -1;
    }
    return 0;
}

int tjson_fill(struct tensor *t, const json_t *data, int flags, char *why, size_t whycap)
{
    t->data = NULL;
    t->nbytes = 0;
    if (!json_is_array(data))
        return whyf(why, whycap, "data is not a list");
    struct nest ns;
    memset(&ns, 0, sizeof ns);
    ns.leaf_depth = -1;
    if (measure(data, 0, &ns, why, whycap) < 0)
        return -1;
    if (ns.count != t->n) {
        char sh[160];
        shape_text(t, sh, sizeof sh);
        return whyf(why, whycap, "data has %zu elements, shape %s needs %zu", ns.count, sh,
                    t->n);
    }
    struct sink s = {0};
    size_t fixed = dtype_size(t->dtype);
    if (fixed) {
        if (t->n > SIZE_MAX / fixed || sink_reserve(&s, t->n ? t->n * fixed : 1) < 0)
            return whyf(why, whycap, "out of memory");
        s.len = t->n * fixed;
    }
    size_t idx = 0;
    if (put_all(t, data, flags, &s, &idx, why, whycap) < 0) {
        free(s.p);
        return -1;
    }
    if (!s.p)
        s.p = malloc(1); /* an empty BYTES tensor still owns a buffer */
    if (!s.p)
        return whyf(why, whycap, "out of memory");
    t->data = s.p;
    t->nbytes = s.len;
    return 0;
}

/* Elements one after the other (BYTES are variable length). */
struct cursor {
    const struct tensor *t;
    size_t i, off;
};

/* An FP32 or FP16 value as the shortest decimal that reads back as the
 * same value of its datatype: 0.1 sent as FP32 comes back as 0.1, not as
 * the double nearest to the float (0.10000000149011612), so a client
 * comparing with what it sent, or with what numpy prints, sees the same
 * number. */
static json_t *narrow_real(double x, int half)
{
    if (!isfinite(x))
        return json_null();
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, x);
        double back = strtod(buf, NULL);
        /* half_from saturates: a decimal past FP16's range is not it */
        if (half ? fabs(back) <= FP16_MAX && half_from(back) == half_from(x)
                 : (double)(float)back == x)
            return json_real(back);
    }
    return json_real(x);
}

static json_t *next_elem(struct cursor *c)
{
    const struct tensor *t = c->t;
    if (t->dtype == DT_BYTES) {
        uint32_t len = 0;
        if (c->off + 4 > t->nbytes)
            return json_null();
        memcpy(&len, t->data + c->off, 4);
        c->off += 4;
        if (len > t->nbytes - c->off) {
            c->off = t->nbytes;
            return json_null();
        }
        json_t *s = json_stringn((const char *)t->data + c->off, len);
        c->off += len;
        c->i++;
        return s ? s : json_null(); /* not UTF-8: no JSON string can carry it */
    }
    size_t sz = dtype_size(t->dtype);
    size_t at = c->i++ * sz;
    if (at + sz > t->nbytes)
        return json_null();
    const uint8_t *p = t->data + at;
    double x;
    switch (t->dtype) {
    case DT_BOOL: return json_boolean(*p != 0);
    case DT_UINT8: return json_integer(*p);
    case DT_INT8: return json_integer((int8_t)*p);
    case DT_UINT16: { uint16_t v; memcpy(&v, p, 2); return json_integer(v); }
    case DT_INT16: { int16_t v; memcpy(&v, p, 2); return json_integer(v); }
    case DT_UINT32: { uint32_t v; memcpy(&v, p, 4); return json_integer(v); }
    case DT_INT32: { int32_t v; memcpy(&v, p, 4); return json_integer(v); }
    case DT_INT64: { int64_t v; memcpy(&v, p, 8); return json_integer(v); }
    case DT_UINT64: {
        uint64_t v;
        memcpy(&v, p, 8);
        /* jansson's integers are signed: beyond that, the nearest double. */
        return v <= INT64_MAX ? json_integer((json_int_t)v) : json_real((double)v);
    }
    case DT_FP16: { uint16_t v; memcpy(&v, p, 2); return narrow_real(half_to(v), 1); }
    case DT_FP32: { float v; memcpy(&v, p, 4); return narrow_real(v, 0); }
    default: memcpy(&x, p, 8); break;
    }
    return isfinite(x) ? json_real(x) : json_null();
}

static json_t *build(struct cursor *c, int depth)
{
    const struct tensor *t = c->t;
    json_t *a = json_array();
    if (!a)
        return NULL;
    int64_t len = depth < 0 ? (int64_t)t->n : t->shape[depth];
    for (int64_t i = 0; i < len; i++) {
        json_t *e = (depth >= 0 && depth + 1 < t->rank) ? build(c, depth + 1) : next_elem(c);
        if (!e || json_array_append_new(a, e) < 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

json_t *tjson_flat(const struct tensor *t)
{
    struct cursor c = {t, 0, 0};
    return build(&c, -1);
}

json_t *tjson_rows(const struct tensor *t)
{
    struct cursor c = {t, 0, 0};
    return t->rank <= 1 ? build(&c, -1) : build(&c, 0);
}
