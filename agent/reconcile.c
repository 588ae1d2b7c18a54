#include "reconcile.h"

#include <stdio.h>
#include <string.h>

static int matches(const char *selector, const struct label_set *host)
{
    struct label_set sel;
    /* A record's selector was checked to parse when it was decoded; one
     * that does not parse now matches nothing. */
    return labels_parse(selector, &sel) == 0 && selector_matches(&sel, host);
}

enum rc_verdict reconcile_judge(const Ferry__DeployRecord *rec, const struct label_set *host,
                                uint64_t applied_ms, const Ferry__DeployRecord *held, char *why,
                                size_t cap)
{
    char labels[2048];
    if (!matches(rec->selector, host)) {
        labels_format(host, labels, sizeof labels);
        /* Only the record this host applied (the same signed decision: name,
         * time and selector) can take back what runs under it; any other
         * record signed for other hosts says nothing about this one. */
        int ours = held && strcmp(held->name, rec->name) == 0 &&
                   held->issued_ms == rec->issued_ms && strcmp(held->selector, rec->selector) == 0 &&
                   held->undeploy == rec->undeploy;
        snprintf(why, cap, "%s of %s%s%s is signed for %s; this host's labels (%s) %s",
                 rec->undeploy ? "undeploy" : "deployment", rec->name, rec->undeploy ? "" : "@",
                 rec->undeploy ? "" : rec->version, rec->selector,
                 labels[0] ? labels : "none", ours ? "no longer match" : "do not match");
        return ours ? RC_UNMATCHED : RC_NOT_FOR_HOST;
    }
    if (rec->issued_ms < applied_ms) {
        snprintf(why, cap, "older deployment of %s (issued %llu, applied %llu): not rolling back",
                 rec->name, (unsigned long long)rec->issued_ms, (unsigned long long)applied_ms);
        return RC_OLDER;
    }
    if (cap)
        why[0] = '\0';
    return RC_APPLY;
}

int reconcile_state_final(const char *state)
{
    return strcmp(state, "failed") == 0 || strcmp(state, "rolled_back") == 0 ||
           strcmp(state, "stopped") == 0 || strcmp(state, "succeeded") == 0;
}

int reconcile_state_unfinished(const char *state)
{
    return strcmp(state, "pending") == 0 || strcmp(state, "fetching") == 0 ||
           strcmp(state, "verifying") == 0;
}

int reconcile_state_live(const char *state)
{
    return strcmp(state, "starting") == 0 || strcmp(state, "running") == 0 ||
           strcmp(state, "unhealthy") == 0;
}

enum rc_existing reconcile_existing(const char *state, uint64_t run_issued_ms, int retired,
                                    const Ferry__DeployRecord *rec)
{
    if (retired)
        return RC_WAIT;
    /* A job that ended is not run again for the decision that ran it. */
    int failed = strcmp(state, "failed") == 0 || strcmp(state, "rolled_back") == 0 ||
                 strcmp(state, "succeeded") == 0;
    int stopped = strcmp(state, "stopped") == 0;
    if (!failed && !stopped)
        return RC_LEAVE;
    if (failed && run_issued_ms == rec->issued_ms)
        return RC_LEAVE; /* not retried in a loop */
    return RC_RESTART;
}

int reconcile_listed(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return 1;
    return 0;
}
