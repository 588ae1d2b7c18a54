/* Notebook run reports and queries (runs.h). A report is believed only when
 * it is signed by the key its host enrolled with, is fresh, and stays
 * within bounds; the notebook bytes go into the content-addressed store
 * only after all of that, and only for a run this host owns. */
#include "registry_int.h"
#include "rlog.h"
#include "dispatch.h"
#include "clock.h"
#include "error.h"
#include "runrec.h"
#include "spec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The checks before anything is stored; *row gets the record to keep. */
static int report_check(struct registry *r, const Ferry__Wire__RunReport *rep,
                        const Ferry__Wire__RunReportBody *b, struct db_run *row)
{
    const char *host = spec_name_ok(b->host) ? b->host : "?";
    char what[128];
    snprintf(what, sizeof what, "run report from %s", host);
    struct db_host_auth auth;
    int rc = db_host_get(&r->db, host, &auth);
    if (rc == FERRY_E_NOTFOUND)
        return err_set(rc, "%s: host is not enrolled", what);
    if (rc < 0)
        return rc;
    if (key_verify(auth.key, rep->body.data, rep->body.len, rep->signature.data,
                   rep->signature.len) < 0)
        return err_set(FERRY_E_SIGNATURE, "%s: not signed by its host key", what);
    if ((rc = hosts_time_check("run report", host, b->sent_ms, clock_unix_ms())) < 0)
        return rc;
    const Ferry__Wire__RunRecord *run = b->run;
    if ((rc = runrec_check(what, run)) < 0)
        return rc;
    if (run->host && run->host[0] && strcmp(run->host, host) != 0)
        return err_set(FERRY_E_INVALID, "%s: run %s names another host", what, run->id);
    struct digest d;
    uint8_t *sigs = NULL;
    size_t sigs_len = 0;
    rc = db_get_version(&r->db, run->name, run->version, &d, &sigs, &sigs_len);
    free(sigs);
    if (rc == FERRY_E_NOTFOUND)
        return err_set(rc, "%s: run %s: no artifact %s@%s", what, run->id, run->name,
                       run->version);
    if (rc < 0)
        return rc;
    int running = strcmp(run->status, "running") == 0;
    if (b->notebook.len && running)
        return err_set(FERRY_E_INVALID, "%s: run %s: a running run has no notebook yet", what,
                       run->id);
    if (b->notebook.len > RUN_NOTEBOOK_MAX)
        return err_set(FERRY_E_LIMIT, "%s: run %s: notebook of %zu bytes, at most %u", what,
                       run->id, b->notebook.len, RUN_NOTEBOOK_MAX);
    memset(row, 0, sizeof *row);
    if (b->notebook.len) {
        digest_of(b->notebook.data, b->notebook.len, &row->notebook);
        struct digest claimed;
        if (run->notebook_digest.len &&
            (digest_from_bytes(run->notebook_digest.data, run->notebook_digest.len, &claimed) < 0 ||
             !digest_equal(&claimed, &row->notebook)))
            return err_set(FERRY_E_DIGEST, "%s: run %s: the notebook does not match its digest",
                           what, run->id);
        row->has_notebook = 1;
        row->notebook_size = b->notebook.len;
    }
    snprintf(row->id, sizeof row->id, "%s", run->id);
    snprintf(row->name, sizeof row->name, "%s", run->name);
    snprintf(row->version, sizeof row->version, "%s", run->version);
    snprintf(row->host, sizeof row->host, "%s", host);
    snprintf(row->status, sizeof row->status, "%s", run->status);
    snprintf(row->error, sizeof row->error, "%s", run->error ? run->error : "");
    snprintf(row->note, sizeof row->note, "%s", run->note ? run->note : "");
    row->started_ms = (int64_t)run->started_ms;
    row->duration_ms = (int64_t)run->duration_ms;
    row->updated_ms = (int64_t)clock_unix_ms();
    return 0;
}

int on_run_report(struct registry *r, const Ferry__Wire__Request *req,
                  Ferry__Wire__Response *resp, struct request_scratch *rs)
{
    (void)resp;
    (void)rs;
    const Ferry__Wire__RunReport *rep = req->run_report;
    /* The size first: a huge body is not even decoded. */
    if (rep->body.len > RUN_BODY_MAX)
        return err_set(FERRY_E_LIMIT, "run report: %zu bytes, at most %u", rep->body.len,
                       RUN_BODY_MAX);
    Ferry__Wire__RunReportBody *b =
        ferry__wire__run_report_body__unpack(NULL, rep->body.len, rep->body.data);
    if (!b)
        return err_set(FERRY_E_PROTOCOL, "run report: malformed body");
    struct db_run *row = calloc(1, sizeof *row);
    int rc = row ? report_check(r, rep, b, row) : -ENOMEM;
    /* Another host's run is refused before its bytes reach the store. */
    struct db_run *have = NULL;
    size_t n = 0;
    if (rc == 0 && db_run_list(&r->db, NULL, row->id, 1, &have, &n) == 0 && n == 1 &&
        strcmp(have[0].host, row->host) != 0)
        rc = FERRY_E_EXISTS;
    free(have);
    if (rc == 0 && row->has_notebook) {
        struct digest got;
        rc = store_put(&r->store, b->notebook.data, b->notebook.len, &got);
        if (rc < 0)
            rc = err_set(rc, "run report from %s: run %s: cannot store the notebook: %s",
                         row->host, row->id, err_message(rc));
    }
    int kept = 0;
    if (rc == 0)
        rc = db_run_put(&r->db, row, &kept);
    if (rc == FERRY_E_EXISTS)
        rc = err_set(rc, "run report from %s: run %s belongs to another host", row->host, row->id);
    if (rc < 0)
        registry_log("%s", err_detail());
    free(row);
    ferry__wire__run_report_body__free_unpacked(b, NULL);
    return rc;
}

void runs_scratch_free(struct runs_scratch *s)
{
    free(s->rows);
    free(s->recs);
    free(s->ptrs);
    free(s->digests);
    memset(s, 0, sizeof *s);
}

int on_list_runs(struct registry *r, const Ferry__Wire__Request *req,
                 Ferry__Wire__Response *resp, struct request_scratch *rs)
{
    const Ferry__Wire__ListRuns *q = req->list_runs;
    struct runs_scratch *s = &rs->runs;
    const char *name = q->name && q->name[0] ? q->name : NULL;
    const char *id = q->id && q->id[0] ? q->id : NULL;
    if ((name && id) || (!name && !id))
        return err_set(FERRY_E_INVALID, "runs: give a workload name or a run id");
    if (name && !spec_name_ok(name))
        return err_set(FERRY_E_INVALID, "runs: '%.80s' is not a workload name", name);
    if (id && !runrec_id_ok(id))
        return err_set(FERRY_E_INVALID, "runs: '%.80s' is not a run id (%d hex characters)", id,
                       RUN_ID_LEN);
    size_t limit = q->limit ? q->limit : 100;
    if (limit > RUN_LIST_MAX)
        limit = RUN_LIST_MAX;
    int rc = db_run_list(&r->db, name, id, limit, &s->rows, &s->n);
    if (rc == FERRY_E_NOTFOUND)
        return err_set(rc, "run %s: no such run", id);
    if (rc < 0)
        return rc;
    s->recs = calloc(s->n ? s->n : 1, sizeof *s->recs);
    s->ptrs = calloc(s->n ? s->n : 1, sizeof *s->ptrs);
    s->digests = calloc(s->n ? s->n : 1, sizeof *s->digests);
    if (!s->recs || !s->ptrs || !s->digests)
        return -ENOMEM;
    for (size_t i = 0; i < s->n; i++) {
        struct db_run *row = &s->rows[i];
        Ferry__Wire__RunRecord *x = &s->recs[i];
        ferry__wire__run_record__init(x);
        x->id = row->id;
        x->name = row->name;
        x->version = row->version;
        x->host = row->host;
        x->status = row->status;
        x->started_ms = (uint64_t)row->started_ms;
        x->duration_ms = (uint64_t)row->duration_ms;
        x->error = row->error;
        x->note = row->note;
        if (row->has_notebook) {
            memcpy(s->digests[i], row->notebook.b, DIGEST_LEN);
            x->notebook_digest = (ProtobufCBinaryData){DIGEST_LEN, s->digests[i]};
            x->notebook_size = row->notebook_size;
        }
        s->ptrs[i] = x;
    }
    ferry__wire__run_list__init(&s->list);
    s->list.runs = s->ptrs;
    s->list.n_runs = s->n;
    resp->body_case = FERRY__WIRE__RESPONSE__BODY_RUNS;
    resp->runs = &s->list;
    (void)r;
    return 0;
}
