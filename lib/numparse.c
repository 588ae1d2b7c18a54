#include "numparse.h"
#include "error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Leading digits of text into *v; returns the count (0: none) or -1 on
 * overflow. No sign, no spaces: strtoull would take both. */
static int digits(const char *text, uint64_t *v)
{
    uint64_t n = 0;
    int i = 0;
    for (; text[i] >= '0' && text[i] <= '9'; i++) {
        unsigned d = (unsigned)(text[i] - '0');
        if (n > (UINT64_MAX - d) / 10)
            return -1;
        n = n * 10 + d;
    }
    *v = n;
    return i;
}

static int bad(const char *what, const char *text, const char *why)
{
    /* The text comes from the user: show a bounded, printable copy. */
    char shown[80];
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p && o + 5 < sizeof shown; p++)
        shown[o++] = (*p >= 0x20 && *p < 0x7f) ? (char)*p : '?';
    shown[o] = '\0';
    return err_set(FERRY_E_INVALID, "%s '%s': %s", what, shown, why);
}

static int range(const char *what, const char *text, uint64_t v, uint64_t min, uint64_t max,
                 const char *unit)
{
    if (v >= min && v <= max)
        return 0;
    char why[160];
    snprintf(why, sizeof why, "must be from %llu to %llu%s", (unsigned long long)min,
             (unsigned long long)max, unit);
    return bad(what, text, why);
}

int num_parse_u64(const char *what, const char *text, uint64_t min, uint64_t max,
                  uint64_t *out)
{
    uint64_t v = 0;
    int n = text ? digits(text, &v) : 0;
    if (n < 0)
        return bad(what, text, "number too large");
    if (n == 0 || text[n] != '\0')
        return bad(what, text ? text : "", "not a whole number");
    int rc = range(what, text, v, min, max, "");
    if (rc == 0)
        *out = v;
    return rc;
}

/* A bound as the flag takes it, in the largest unit it is a whole number of
 * (2000 -> "2s", 31622400000 -> "366d"), so the line says the range the
 * docs give rather than a count of milliseconds. */
static void duration_text(uint64_t ms, char *out, size_t cap)
{
    static const struct {
        const char *suffix;
        uint64_t ms;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (ms && ms % units[i].ms == 0) {
            snprintf(out, cap, "%llu%s", (unsigned long long)(ms / units[i].ms), units[i].suffix);
            return;
        }
    snprintf(out, cap, "%llums", (unsigned long long)ms);
}

int num_parse_duration_ms(const char *what, const char *text, uint64_t unit_ms,
                          uint64_t min_ms, uint64_t max_ms, uint64_t *out_ms)
{
    static const struct {
        const char *suffix;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    uint64_t v = 0;
    int n = text ? digits(text, &v) : 0;
    if (n < 0)
        return bad(what, text, "number too large");
    if (n == 0)
        return bad(what, text ? text : "", "not a duration (e.g. 500ms, 30s, 5m, 2h)");
    uint64_t mul = 0;
    if (text[n] == '\0')
        mul = unit_ms;
    for (size_t i = 0; !mul && i < sizeof units / sizeof units[0]; i++)
        if (strcmp(text + n, units[i].suffix) == 0)
            mul = units[i].ms;
    if (!mul)
        return bad(what, text, "not a duration (e.g. 500ms, 30s, 5m, 2h)");
    if (v > UINT64_MAX / mul)
        return bad(what, text, "duration too long");
    v *= mul;
    char why[160];
    if (v < min_ms || v > max_ms) {
        char lo[32], hi[32];
        duration_text(min_ms, lo, sizeof lo);
        duration_text(max_ms, hi, sizeof hi);
        snprintf(why, sizeof why, "must be from %s to %s", lo, hi);
        return bad(what, text, why);
    }
    *out_ms = v;
    return 0;
}

int num_parse_size(const char *what, const char *text, uint64_t min, uint64_t max,
                   uint64_t *out)
{
    uint64_t v = 0;
    int n = text ? digits(text, &v) : 0;
    if (n < 0)
        return bad(what, text, "number too large");
    if (n == 0)
        return bad(what, text ? text : "", "not a size (e.g. 4096, 512M, 64G)");
    const char *s = text + n;
    unsigned shift = 0;
    switch (*s) {
    case 'K': shift = 10; break;
    case 'M': shift = 20; break;
    case 'G': shift = 30; break;
    case 'T': shift = 40; break;
    default: break;
    }
    if (shift) {
        s++;
        if (strcmp(s, "iB") == 0 || strcmp(s, "B") == 0)
            s += strlen(s);
    } else if (strcmp(s, "B") == 0) {
        s++;
    }
    if (*s != '\0')
        return bad(what, text, "not a size (e.g. 4096, 512M, 64G)");
    if (shift && v > (UINT64_MAX >> shift))
        return bad(what, text, "size too large");
    v <<= shift;
    int rc = range(what, text, v, min, max, " bytes");
    if (rc == 0)
        *out = v;
    return rc;
}

int num_env_u64(const char *var, uint64_t dflt, uint64_t min, uint64_t max, uint64_t *out)
{
    const char *v = getenv(var);
    if (!v || !*v) {
        *out = dflt;
        return 0;
    }
    return num_parse_u64(var, v, min, max, out);
}
