/* Fleet requests: signed deploys, host hello/report/poll, and the
 * operator's accept and remove of hosts. */
#include "registry_int.h"
#include "rlog.h"
#include "dispatch.h"
#include "error.h"
#include "record.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void wake_pollers(struct registry *r)
{
    if (r->server)
        server_wake(r->server);
}

static int handle_deploy(struct registry *r, const Ferry__Wire__Deploy *d)
{
    char signer[KEY_ID_LEN + 1];
    Ferry__DeployRecord *rec = NULL;
    if (!d->signed_)
        return err_set(FERRY_E_UNTRUSTED, "deploy refused: request is not signed");
    int rc = record_verify(d->signed_, r->trust, &rec, signer);
    if (rc < 0) {
        char why[900];
        snprintf(why, sizeof why, "%s", err_detail());
        return err_set(rc, "deploy refused: %s", why);
    }
    /* Governance: an operator key, and what the policy lets reach there. */
    char what[200];
    snprintf(what, sizeof what, "%s %s", queries_action(rec), rec->name);
    rc = gov_allows(r, signer, ROLE_OPERATOR, NULL, what);
    if (rc == 0)
        rc = gov_check_deploy(r, rec);
    if (rc < 0) {
        record_free(rec);
        return rc;
    }
    if (!rec->undeploy) {
        struct digest have;
        uint8_t *sigs = NULL;
        size_t slen = 0;
        rc = db_get_version(&r->db, rec->name, rec->version, &have, &sigs, &slen);
        free(sigs);
        if (rc == 0 && memcmp(have.b, rec->manifest_digest.data, DIGEST_LEN) != 0)
            rc = err_set(FERRY_E_INVALID, "deploy %s@%s: the signed digest is not this version's",
                         rec->name, rec->version);
    }
    size_t len = ferry__signed_record__get_packed_size(d->signed_);
    uint8_t *bytes = rc == 0 ? malloc(len ? len : 1) : NULL;
    if (rc == 0 && !bytes)
        rc = -ENOMEM;
    if (rc == 0) {
        ferry__signed_record__pack(d->signed_, bytes);
        rc = db_deployment_put(&r->db, rec->name, rec->selector, (int64_t)rec->issued_ms, bytes,
                               len);
    }
    if (rc == 0) {
        char subject[256];
        snprintf(subject, sizeof subject, "%s%s%s to %s", rec->name, rec->undeploy ? "" : "@",
                 rec->undeploy ? "" : rec->version, rec->selector);
        audit_append(&r->db, signer, AUDIT_ROLE_OPERATOR, queries_action(rec), subject);
        registry_log("%s %s by key %s", queries_action(rec), subject, signer);
        wake_pollers(r);
    }
    free(bytes);
    record_free(rec);
    return rc;
}

/* Labels of a registered host. */
static int host_labels(struct registry *r, const char *host, struct label_set *out)
{
    char text[2048];
    int rc = db_host_labels(&r->db, host, text, sizeof text);
    if (rc < 0)
        return rc;
    out->n = 0;
    return text[0] ? labels_parse(text, out) : 0;
}

/* The desired-state response for host (pointing into *d). */
int fleet_desired_response(struct registry *r, const char *host, struct desired *d,
                           Ferry__Wire__Response *resp, struct scratch *s)
{
    struct label_set labels;
    int rc = host_labels(r, host, &labels);
    if (rc == 0)
        rc = fleet_desired_for(&r->db, &labels, d);
    if (rc < 0)
        return rc;
    Ferry__Wire__DesiredState *ds = keep(s, malloc(sizeof *ds));
    if (!ds)
        return -ENOMEM;
    ferry__wire__desired_state__init(ds);
    ds->serial = d->serial;
    ds->records = d->signed_records;
    ds->n_records = d->n;
    ds->pins = d->pins;
    ds->n_pins = d->n_pins;
    if ((rc = desired_envelope_attach(r, host, d, ds, s)) < 0)
        return rc;
    resp->body_case = FERRY__WIRE__RESPONSE__BODY_DESIRED;
    resp->desired = ds;
    /* Every poll answer carries the actions queued for the host. */
    actions_attach(r->actions, host, resp, &s->batch);
    return 0;
}

/* ---- entries (dispatch.c) -------------------------------------------------- */

int on_deploy(struct registry *r, const Ferry__Wire__Request *req, Ferry__Wire__Response *resp,
              struct request_scratch *rs)
{
    (void)resp;
    (void)rs;
    return handle_deploy(r, req->deploy);
}

int on_register(struct registry *r, const Ferry__Wire__Request *req,
                Ferry__Wire__Response *resp, struct request_scratch *rs)
{
    (void)resp;
    (void)rs;
    /* Join tokens count only while their operator key is not revoked. */
    struct trust ops = {NULL, 0};
    int rc = gov_operators_now(r, &ops);
    if (rc == 0)
        rc = hosts_register(&r->db, &ops, req->register_);
    trust_fini(&ops);
    return rc;
}

int on_report(struct registry *r, const Ferry__Wire__Request *req, Ferry__Wire__Response *resp,
              struct request_scratch *rs)
{
    (void)resp;
    (void)rs;
    return hosts_report(&r->db, req->report);
}

int on_accept_host(struct registry *r, const Ferry__Wire__Request *req,
                   Ferry__Wire__Response *resp, struct request_scratch *rs)
{
    struct trust ops = {NULL, 0};
    int rc = gov_operator_gate(r, req->accept_host->signer, "hosts accept");
    if (rc == 0)
        rc = gov_operators_now(r, &ops);
    if (rc == 0)
        rc = hosts_accept(&r->db, &r->live, &ops, req->accept_host, resp, &rs->accept);
    trust_fini(&ops);
    return rc;
}

int on_remove_host(struct registry *r, const Ferry__Wire__Request *req,
                   Ferry__Wire__Response *resp, struct request_scratch *rs)
{
    (void)resp;
    (void)rs;
    struct trust ops = {NULL, 0};
    int rc = gov_operator_gate(r, req->remove_host->signer, "hosts rm");
    if (rc == 0)
        rc = gov_operators_now(r, &ops);
    if (rc == 0)
        rc = hosts_remove(&r->db, &r->live, &ops, r->host_ttl_ms, req->remove_host);
    trust_fini(&ops);
    return rc;
}

/* PARK when nothing changed for a poll that may wait: the transport keeps
 * it and answers later with poll_answer (registry.c). */
int on_poll(struct registry *r, const Ferry__Wire__Request *req, Ferry__Wire__Response *resp,
            struct request_scratch *rs)
{
    const Ferry__Wire__Poll *p = req->poll;
    int rc = hosts_poll_auth(&r->db, &r->live, p);
    if (rc == 0)
        rc = fleet_desired_response(r, p->host, &rs->desired, resp, &rs->s);
    if (rc == 0 && p->wait_ms > 0 && rs->desired.serial == p->known_serial &&
        resp->n_actions == 0)
        return PARK;
    return rc;
}
