/* The reconciler's decisions, as pure functions: which signed record applies
 * to this host, what a record means for the runs of its name, and what
 * happens to a run whose record is no longer in the desired state. No I/O,
 * no clock: agent.c feeds what it knows (the verified record, the host's own
 * labels, what it applied before) and performs the verdict.
 *
 * The rule they encode (docs/security.md, "What the agent acts on"): the
 * agent acts only on signed data and its own configuration. The registry
 * chooses which records it sends, but never which ones apply: a record's
 * signed selector is matched against the labels the agent was started with,
 * and a workload stops only because of a signed record. */
#ifndef FERRY_AGENT_RECONCILE_H
#define FERRY_AGENT_RECONCILE_H

#include "manifest.pb-c.h"
#include "selector.h"

#include <stddef.h>
#include <stdint.h>

/* The status reason of a run whose record left the desired state. */
#define RECONCILE_KEPT_REASON "not in desired state; kept until a signed undeploy"

enum rc_verdict {
    RC_APPLY,        /* for this host, and not older than what it applied: apply */
    RC_OLDER,        /* for this host, but older than a decision applied: a replay, ignore */
    RC_NOT_FOR_HOST, /* signed for other labels: never applied, and it stops nothing */
    RC_UNMATCHED,    /* the very record this host applied, and its signed selector no
                      * longer matches the host's labels: stop what runs under it */
};

/* Judge one verified record. host: the agent's own labels (--label).
 * applied_ms: the newest issued_ms applied for rec->name (0 when none).
 * held: the record of that name the agent holds in its local state (decoded
 * from what it verified and stored; NULL when none). why gets a one-line
 * reason for every verdict but RC_APPLY. */
enum rc_verdict reconcile_judge(const Ferry__DeployRecord *rec, const struct label_set *host,
                                uint64_t applied_ms, const Ferry__DeployRecord *held, char *why,
                                size_t cap);

/* What a deploy record means for an existing run of the same name@version. */
enum rc_existing {
    RC_LEAVE,   /* running or on its way, or already failed (or, a job, succeeded)
                 * for this very decision */
    RC_RESTART, /* failed, succeeded or stopped, and this is a new decision: afresh */
    RC_WAIT,    /* being retired; the next resync starts it again */
};
enum rc_existing reconcile_existing(const char *state, uint64_t run_issued_ms, int retired,
                                    const Ferry__DeployRecord *rec);

/* 1 for a reported state that ended (failed, rolled_back, stopped, succeeded). */
int reconcile_state_final(const char *state);
/* 1 for a state in which work was under way before a process was started
 * (pending, fetching, verifying): an agent restarted in it resumes it. */
int reconcile_state_unfinished(const char *state);
/* 1 for a state with a process (starting, running, unhealthy). */
int reconcile_state_live(const char *state);

/* 1 when name is among names[0..n). */
int reconcile_listed(const char *const *names, size_t n, const char *name);

#endif
