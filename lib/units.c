#include "units.h"
#include "error.h"

#include <stddef.h>

/* Digits, then at most one unit character from units (scales[i] for
 * units[i]); nothing else. */
static int parse_scaled(const char *text, const char *what, const char *units,
                        const uint64_t *scales, uint64_t unitless, uint64_t *out)
{
    const char *p = text;
    uint64_t v = 0;
    if (!text || *p < '0' || *p > '9')
        return err_set(FERRY_E_INVALID, "%s '%s': expected a number", what, text ? text : "");
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return err_set(FERRY_E_INVALID, "%s '%s': too large", what, text);
        v = v * 10 + (uint64_t)(*p - '0');
    }
    uint64_t scale = unitless;
    if (*p) {
        const char *u = units;
        while (*u && *u != *p)
            u++;
        if (!*u || p[1] != '\0')
            return err_set(FERRY_E_INVALID, "%s '%s': unknown unit (use a number, or one of %s)",
                           what, text, units);
        scale = scales[u - units];
    }
    if (scale && v > UINT64_MAX / scale)
        return err_set(FERRY_E_INVALID, "%s '%s': too large", what, text);
    *out = v * scale;
    return 0;
}

int units_parse_size(const char *text, uint64_t *bytes)
{
    static const uint64_t scales[] = {1ull << 10, 1ull << 20, 1ull << 30, 1ull << 40};
    return parse_scaled(text, "size", "KMGT", scales, 1, bytes);
}

int units_parse_duration(const char *text, uint64_t *ms)
{
    static const uint64_t scales[] = {1000, 60000, 3600000, 86400000};
    return parse_scaled(text, "duration", "smhd", scales, 1000, ms);
}
