/* The signed desired state turned into run events. The registry decides
 * which records it sends; what they mean for this host is decided from
 * their signatures and this host's own labels (reconcile.c), and a name the
 * registry stops sending is not an undeploy. */
#include "agent_int.h"
#include "alog.h"
#include "clock.h"
#include "error.h"
#include "reconcile.h"
#include "record.h"
#include "spec.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void stop_all_of(struct agent *a, const char *name, const char *why)
{
    for (struct run *r = a->runs, *next; r; r = next) {
        next = r->next;
        if (strcmp(r->name, name) == 0)
            run_feed(r, RUN_EV_STOP, why, 0, 0);
    }
    publish_snapshot(a);
}

static int ended_badly(const struct run *r)
{
    return r->lc.state == RUN_FAILED || r->lc.state == RUN_ROLLED_BACK;
}

/* Make name's runs match one verified record. */
static void reconcile_record(struct agent *a, const Ferry__DeployRecord *rec, const char *signer)
{
    if (rec->undeploy) {
        stop_all_of(a, rec->name, "undeployed");
        return;
    }
    /* A newer decision supersedes the failed attempts of other versions made
     * under older ones: a healthy re-deploy of the running version leaves no
     * rolled_back behind. */
    for (struct run *o = a->runs, *next; o; o = next) {
        next = o->next;
        if (strcmp(o->name, rec->name) == 0 && strcmp(o->version, rec->version) != 0 &&
            ended_badly(o) && o->issued_ms < rec->issued_ms)
            run_feed(o, RUN_EV_SUPERSEDED, "superseded by a newer deployment", 0, 0);
    }
    struct run *r = find_run(a, rec->name, rec->version);
    if (r && reconcile_existing(run_state_name(r->lc.state), r->issued_ms,
                                r->lc.state == RUN_STOPPING, rec) != RC_RESTART)
        return; /* on its way (in or out), running, or ended for this very decision */
    if (r) {
        /* A new decision for a version that ended: afresh, in the tree it
         * already has once that is verified again. */
        run_signal(r, SIGKILL);
        run_forget(r, 0);
    }
    int others = 0;
    for (struct run *o = a->runs; o; o = o->next)
        if (strcmp(o->name, rec->name) == 0 && o->lc.state != RUN_STOPPING && !ended_badly(o))
            others = 1;
    r = run_new(a, rec->name, rec->version, rec->issued_ms, others);
    if (!r)
        return;
    digest_from_bytes(rec->manifest_digest.data, rec->manifest_digest.len, &r->digest);
    r->has_digest = 1;
    snprintf(r->deployer, sizeof r->deployer, "%s", signer ? signer : "");
    persist_run(r);
    run_feed(r, RUN_EV_BEGIN, NULL, 0, tree_present(r));
}

/* A record that cannot be applied is shown as a failed run of what it asked
 * for, with the reason, and nothing is started or stopped. */
static void refuse_record(struct agent *a, const Ferry__DeployRecord *rec, const char *why)
{
    if (strcmp(a->last_refusal, why) != 0)
        alog(FERRY_LOG_ERROR, "refusing deployment of %s: %s", rec->name, why);
    snprintf(a->last_refusal, sizeof a->last_refusal, "%s", why);
    if (!rec->undeploy && !find_run(a, rec->name, rec->version)) {
        struct run *r = run_new(a, rec->name, rec->version, rec->issued_ms, 0);
        if (r)
            run_feed(r, RUN_EV_REFUSED, why, 0, 0);
    }
}

/* The record of name this host holds (it verified and applied it). */
static Ferry__DeployRecord *held_record(struct agent *a, const char *name)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    Ferry__DeployRecord *rec = NULL;
    if (localdb_desired_get(&a->db, name, &buf, &len) == 0) {
        Ferry__SignedRecord *sr = ferry__signed_record__unpack(NULL, len, buf);
        if (sr && record_decode(sr->record.data, sr->record.len, &rec) < 0)
            rec = NULL;
        signed_record_free(sr);
    }
    free(buf);
    return rec;
}

static void remember_record(struct agent *a, const Ferry__SignedRecord *sr,
                            const Ferry__DeployRecord *rec)
{
    localdb_set_applied(&a->db, rec->name, rec->issued_ms);
    size_t len = ferry__signed_record__get_packed_size(sr);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf) {
        ferry__signed_record__pack(sr, buf);
        localdb_desired_put(&a->db, rec->name, rec->issued_ms, buf, len);
        free(buf);
    }
}

/* Runs whose name the registry no longer sends keep running, and say so. */
static void mark_listed(struct agent *a, const char *const *listed, size_t nlisted)
{
    for (struct run *r = a->runs, *next; r; r = next) {
        next = r->next;
        int unlisted = !reconcile_listed(listed, nlisted, r->name);
        if (unlisted && !r->lc.unlisted && r->lc.state != RUN_STOPPING &&
            !reconcile_state_final(run_state_name(r->lc.state)))
            alog(FERRY_LOG_WARN, "%s@%s: %s", r->name, r->version, RECONCILE_KEPT_REASON);
        run_feed(r, unlisted ? RUN_EV_UNLISTED : RUN_EV_LISTED, NULL, 0, 0);
    }
}

/* A record that follows a channel: the version the channel points at now,
 * as the registry says (registry/fleet.c). The agent's own policy check
 * (govcheck.h) decides whether that version may run here; the follow
 * record's signature says only that the operator chose the channel. The
 * decision's time is the later of the two, so a newer promotion counts as
 * a newer decision and an older pointer as an older one. */
static void follow_channel(struct agent *a, Ferry__DeployRecord *rec)
{
    if (rec->undeploy || !rec->channel || !rec->channel[0])
        return;
    for (size_t i = 0; i < a->n_pins; i++) {
        const Ferry__Wire__ChannelPin *p = a->pins[i];
        if (!p->name || strcmp(p->name, rec->name) != 0 || !p->channel ||
            strcmp(p->channel, rec->channel) != 0 || !spec_version_ok(p->version) ||
            p->manifest_digest.len != DIGEST_LEN)
            continue;
        char *v = strdup(p->version);
        uint8_t *d = malloc(DIGEST_LEN);
        if (!v || !d) {
            free(v), free(d);
            return;
        }
        free(rec->version);
        rec->version = v;
        free(rec->manifest_digest.data);
        memcpy(d, p->manifest_digest.data, DIGEST_LEN);
        rec->manifest_digest.data = d;
        rec->manifest_digest.len = DIGEST_LEN;
        if (p->promoted_ms > rec->issued_ms)
            rec->issued_ms = p->promoted_ms;
        return;
    }
}

void apply_desired(struct agent *a, Ferry__SignedRecord **recs, size_t n, int from_registry)
{
    const char **listed = calloc(n ? n : 1, sizeof *listed);
    Ferry__DeployRecord **decoded = calloc(n ? n : 1, sizeof *decoded);
    size_t nlisted = 0;
    for (size_t k = 0; listed && decoded && k < n; k++) {
        Ferry__DeployRecord *rec = NULL;
        char why[700], signer[KEY_ID_LEN + 1] = "";
        int rc = record_verify(recs[k], a->cfg->trust, &rec, signer);
        if (rc < 0) {
            snprintf(why, sizeof why, "%s", err_message(rc));
            if (record_decode(recs[k]->record.data, recs[k]->record.len, &rec) == 0)
                refuse_record(a, rec, why);
            record_free(rec);
            continue;
        }
        follow_channel(a, rec);
        Ferry__DeployRecord *held = held_record(a, rec->name);
        enum rc_verdict v = reconcile_judge(rec, &a->cfg->labels, localdb_applied(&a->db, rec->name),
                                            held, why, sizeof why);
        record_free(held);
        if (v == RC_NOT_FOR_HOST) {
            refuse_record(a, rec, why);
        } else if (v == RC_UNMATCHED) {
            alog(FERRY_LOG_WARN, "stopping %s: %s", rec->name, why);
            localdb_desired_delete(&a->db, rec->name);
            stop_all_of(a, rec->name, why);
        } else if (v == RC_OLDER) {
            /* Signed, but older than a decision already applied: a replay
             * or a rollback attempt. Keep what we have. */
            alog(FERRY_LOG_WARN, "ignoring an %s", why);
            listed[nlisted++] = rec->name;
        } else {
            if (rec->issued_ms > localdb_applied(&a->db, rec->name))
                remember_record(a, recs[k], rec);
            reconcile_record(a, rec, signer);
            listed[nlisted++] = rec->name;
        }
        decoded[k] = rec;
    }
    if (from_registry && listed)
        mark_listed(a, listed, nlisted);
    for (size_t k = 0; decoded && k < n; k++)
        record_free(decoded[k]);
    free(decoded);
    free(listed);
}

void on_desired(void *arg, Ferry__Wire__DesiredState *ds)
{
    struct agent *a = arg;
    /* Nothing in it is looked at before its envelope verifies. */
    if (!a->stopping && envgate_check(&a->gate, &a->db, a->cfg->name, ds, clock_unix_ms()) == 0) {
        a->pins = ds->pins;
        a->n_pins = ds->n_pins;
        apply_desired(a, ds->records, ds->n_records, 1);
        a->pins = NULL;
        a->n_pins = 0;
    } else if (!a->stopping) {
        envgate_tick(&a->gate, clock_unix_ms());
    }
    publish_snapshot(a);
    ferry__wire__desired_state__free_unpacked(ds, NULL);
}
