#include "reqstats.h"
#include "wire.h"

static const char *const outcome_names[REQSTATS_OUTCOMES] = {
    "ok", "parked", "protocol", "invalid", "not_found", "exists",
    "untrusted", "signature", "digest", "limit", "internal"};

void reqstats_count(struct reqstats *s, int body_case, int rc)
{
    int t = body_case > 0 && body_case < REQSTATS_TYPES ? body_case : 0;
    int o = 0;
    if (rc > 0) {
        o = 1;
    } else if (rc < 0) {
        int code = (int)wire_code_of(rc);
        o = code >= 1 && code <= 9 ? code + 1 : REQSTATS_OUTCOMES - 1;
    }
    atomic_fetch_add_explicit(&s->n[t][o], 1, memory_order_relaxed);
}

const char *reqstats_outcome_name(int outcome)
{
    return outcome >= 0 && outcome < REQSTATS_OUTCOMES ? outcome_names[outcome] : NULL;
}

uint64_t reqstats_get(const struct reqstats *s, int body_case, int outcome)
{
    if (body_case < 0 || body_case >= REQSTATS_TYPES || outcome < 0 || outcome >= REQSTATS_OUTCOMES)
        return 0;
    return atomic_load_explicit(&((struct reqstats *)s)->n[body_case][outcome], memory_order_relaxed);
}
