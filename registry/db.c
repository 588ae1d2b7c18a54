/* The metadata store's front: registration of store implementations and the
 * db_* calls, each a thin call through the open store's ops table. Handlers
 * keep calling db_*; which store answers is decided once, at open. */
#include "db.h"
#include "error.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define DB_STORES_MAX 8

static pthread_mutex_t stores_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct db_ops *stores[DB_STORES_MAX] = {&db_sqlite_ops};
static size_t n_stores = 1;

int db_ops_check(const struct db_ops *ops)
{
    if (!ops)
        return err_set(FERRY_E_INVALID, "metadata store: no operations table");
    if (!ops->name || !ops->name[0])
        return err_set(FERRY_E_INVALID, "metadata store: operations table has no name");
    /* Each required operation, by the name the error shows. */
    const struct {
        const char *what;
        int present;
    } req[] = {
#define OP(f) {#f, ops->f != NULL}
        OP(open),           OP(open_reader),    OP(close),          OP(add_version),     OP(get_version),
        OP(list_versions),  OP(host_get),        OP(host_touch),
        OP(host_enroll),    OP(pending_put),    OP(pending_for),     OP(host_labels),
        OP(host_list),      OP(deployment_put), OP(deployment_list), OP(events_add),
        OP(events_list),    OP(history_list),   OP(host_set_plugins), OP(host_remove),
        OP(metrics_replace), OP(metrics_same),  OP(metrics_list),    OP(host_polls_save),
        OP(audit_append),   OP(audit_list),     OP(envelope_current),
        OP(version_set_sigs), OP(channel_set),  OP(channel_list),    OP(revoke_put),
        OP(revoke_list),    OP(run_put),        OP(run_list),
        OP(series_add),     OP(series_query),   OP(artifact_names),  OP(events_after),
        OP(audit_last),
#undef OP
    };
    for (size_t i = 0; i < sizeof req / sizeof req[0]; i++)
        if (!req[i].present)
            return err_set(FERRY_E_INVALID, "metadata store '%s': required operation '%s' is missing",
                           ops->name, req[i].what);
    return 0;
}

int db_register(const struct db_ops *ops)
{
    int rc = db_ops_check(ops);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&stores_lock);
    for (size_t i = 0; rc == 0 && i < n_stores; i++)
        if (strcmp(stores[i]->name, ops->name) == 0)
            rc = err_set(FERRY_E_EXISTS, "metadata store '%s' is already registered", ops->name);
    if (rc == 0 && n_stores == DB_STORES_MAX)
        rc = err_set(FERRY_E_LIMIT, "metadata store '%s': no room for more than %d stores",
                     ops->name, DB_STORES_MAX);
    if (rc == 0)
        stores[n_stores++] = ops;
    pthread_mutex_unlock(&stores_lock);
    return rc;
}

int db_open_store(struct db *db, const char *store, const char *location)
{
    const struct db_ops *ops = NULL;
    pthread_mutex_lock(&stores_lock);
    for (size_t i = 0; !ops && i < n_stores; i++)
        if (strcmp(stores[i]->name, store) == 0)
            ops = stores[i];
    pthread_mutex_unlock(&stores_lock);
    if (!ops)
        return err_set(FERRY_E_NOTFOUND, "metadata store '%s' is not known", store);
    /* The built-in table is checked here too: it was never registered. */
    int rc = db_ops_check(ops);
    if (rc < 0)
        return rc;
    void *impl = NULL;
    if ((rc = ops->open(location, &impl)) < 0)
        return rc;
    db->ops = ops;
    db->impl = impl;
    return 0;
}

int db_open(struct db *db, const char *path) { return db_open_store(db, "sqlite", path); }

int db_open_reader(struct db *db, const char *path)
{
    void *impl = NULL;
    int rc = db_sqlite_ops.open_reader(path, &impl);
    if (rc < 0)
        return rc;
    db->ops = &db_sqlite_ops;
    db->impl = impl;
    return 0;
}

void db_close(struct db *db)
{
    if (db->ops)
        db->ops->close(db->impl);
    db->ops = NULL;
    db->impl = NULL;
}

/* ---- calls through the table (contracts in db.h) --------------------------- */

int db_add_version(struct db *db, const char *name, const char *version, const char *kind,
                   const struct digest *manifest_digest, const char *publisher,
                   const uint8_t *sigs, size_t sigs_len, int *already)
{
    return db->ops->add_version(db->impl, name, version, kind, manifest_digest, publisher, sigs,
                                sigs_len, already);
}

int db_get_version(struct db *db, const char *name, const char *version, struct digest *digest,
                   uint8_t **sigs, size_t *sigs_len)
{
    return db->ops->get_version(db->impl, name, version, digest, sigs, sigs_len);
}

int db_list_versions(struct db *db, const char *name, struct db_version **out, size_t *n)
{
    return db->ops->list_versions(db->impl, name, out, n);
}

int db_host_get(struct db *db, const char *name, struct db_host_auth *out)
{
    return db->ops->host_get(db->impl, name, out);
}

int db_host_touch(struct db *db, enum db_touch kind, const char *name, const uint8_t key[32],
                  int64_t sent_ms, int64_t now_ms, const char *labels, const uint8_t *report,
                  size_t report_len)
{
    return db->ops->host_touch(db->impl, kind, name, key, sent_ms, now_ms, labels, report,
                               report_len);
}

int db_host_enroll(struct db *db, const char *name, const uint8_t key[32], const char *labels,
                   const char *required_labels, int64_t hello_ms, int64_t accepted_ms,
                   int64_t seen_ms, int replace, int *replaced)
{
    return db->ops->host_enroll(db->impl, name, key, labels, required_labels, hello_ms,
                                accepted_ms, seen_ms, replace, replaced);
}

int db_pending_put(struct db *db, const char *name, const uint8_t key[32], const char *labels,
                   int64_t now_ms, int *is_new)
{
    return db->ops->pending_put(db->impl, name, key, labels, now_ms, is_new);
}

int db_pending_for(struct db *db, const char *name, struct db_pending **out, size_t *n)
{
    return db->ops->pending_for(db->impl, name, out, n);
}

int db_host_labels(struct db *db, const char *name, char *labels, size_t cap)
{
    return db->ops->host_labels(db->impl, name, labels, cap);
}

int db_host_list(struct db *db, struct db_host **out, size_t *n)
{
    return db->ops->host_list(db->impl, out, n);
}

int db_deployment_put(struct db *db, const char *name, const char *selector, int64_t issued_ms,
                      const uint8_t *signed_record, size_t len)
{
    return db->ops->deployment_put(db->impl, name, selector, issued_ms, signed_record, len);
}

int db_deployment_list(struct db *db, struct db_deployment **out, size_t *n)
{
    return db->ops->deployment_list(db->impl, out, n);
}

int db_events_add(struct db *db, const char *host, const uint8_t *const *changes,
                  const size_t *lens, size_t n)
{
    return db->ops->events_add(db->impl, host, changes, lens, n);
}

int db_events_list(struct db *db, const char *host, size_t limit, struct db_event **out,
                   size_t *n)
{
    return db->ops->events_list(db->impl, host, limit, out, n);
}

int db_history_list(struct db *db, const char *name, struct db_deployment **out, size_t *n)
{
    return db->ops->history_list(db->impl, name, out, n);
}

int db_host_set_plugins(struct db *db, const char *name, const uint8_t *plugins, size_t len)
{
    return db->ops->host_set_plugins(db->impl, name, plugins, len);
}

int db_host_remove(struct db *db, const char *name)
{
    return db->ops->host_remove(db->impl, name);
}

int db_metrics_replace(struct db *db, const char *host, const struct db_metrics_row *rows, size_t n)
{
    return db->ops->metrics_replace(db->impl, host, rows, n);
}

int db_metrics_same(struct db *db, const char *host, const struct db_metrics_row *rows, size_t n)
{
    return db->ops->metrics_same(db->impl, host, rows, n);
}

int db_metrics_list(struct db *db, const char *name, struct db_metrics_row **out, size_t *n)
{
    return db->ops->metrics_list(db->impl, name, out, n);
}

int db_host_polls_save(struct db *db, const struct db_poll_mark *m, size_t n)
{
    return db->ops->host_polls_save(db->impl, m, n);
}

/* ---- results: plain memory, the same for every store ---------------------- */

void db_host_list_free(struct db_host *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].report);
        free(v[i].plugins);
    }
    free(v);
}

void db_deployment_list_free(struct db_deployment *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].signed_record);
    free(v);
}

void db_events_free(struct db_event *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].change);
    free(v);
}

void db_metrics_free(struct db_metrics_row *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i].body);
    free(v);
}

int db_audit_append(struct db *db, const char *key_id, const char *role, const char *what,
                    const char *detail)
{
    return db->ops->audit_append(db->impl, key_id, role, what, detail);
}

int db_audit_list(struct db *db, uint64_t after_seq, size_t limit, struct audit_entry **out,
                  size_t *n)
{
    return db->ops->audit_list(db->impl, after_seq, limit, out, n);
}

int db_audit_last(struct db *db, const char *what, struct audit_entry *out)
{
    return db->ops->audit_last(db->impl, what, out);
}

int db_envelope_current(struct db *db, const char *host, const struct digest *content,
                        int64_t now_ms, int64_t ttl_ms, struct db_envelope *out)
{
    return db->ops->envelope_current(db->impl, host, content, now_ms, ttl_ms, out);
}

/* ---- governance ---- */

int db_version_set_sigs(struct db *db, const char *name, const char *version,
                        const uint8_t *sigs, size_t len)
{
    return db->ops->version_set_sigs(db->impl, name, version, sigs, len);
}

int db_channel_set(struct db *db, const struct db_channel *c)
{
    return db->ops->channel_set(db->impl, c);
}

int db_channel_list(struct db *db, const char *name, struct db_channel **out, size_t *n)
{
    return db->ops->channel_list(db->impl, name, out, n);
}

int db_revoke_put(struct db *db, const char *key_id, const uint8_t *stmt, size_t len)
{
    return db->ops->revoke_put(db->impl, key_id, stmt, len);
}

int db_revoke_list(struct db *db, struct db_revocation **out, size_t *n)
{
    return db->ops->revoke_list(db->impl, out, n);
}

void db_revoke_list_free(struct db_revocation *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i].stmt);
    free(v);
}

/* ---- notebook runs ---- */

int db_run_put(struct db *db, const struct db_run *r, int *kept)
{
    return db->ops->run_put(db->impl, r, kept);
}

int db_run_list(struct db *db, const char *name, const char *id, size_t limit,
                struct db_run **out, size_t *n)
{
    return db->ops->run_list(db->impl, name, id, limit, out, n);
}

/* ---- the HTTP side's reads and metric series ---- */

int db_artifact_names(struct db *db, struct db_name **out, size_t *n)
{
    return db->ops->artifact_names(db->impl, out, n);
}

int db_events_after(struct db *db, uint64_t after_seq, size_t limit, struct db_event **out,
                    size_t *n)
{
    return db->ops->events_after(db->impl, after_seq, limit, out, n);
}

int db_series_add(struct db *db, const char *host, const struct db_series_run *runs, size_t n,
                  int64_t now_ms)
{
    return db->ops->series_add(db->impl, host, runs, n, now_ms);
}

int db_series_query(struct db *db, const char *name, const char *host, const char *series,
                    int res_s, int64_t since_ms, size_t limit, struct db_series_row **out,
                    size_t *n)
{
    return db->ops->series_query(db->impl, name, host, series, res_s, since_ms, limit, out, n);
}
