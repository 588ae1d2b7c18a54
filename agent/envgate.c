/* The agent's desired-state gate (envgate.h). */
#include "envgate.h"
#include "alog.h"
#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *held_schema =
    "CREATE TABLE IF NOT EXISTS envelope_held("
    "  id INTEGER PRIMARY KEY CHECK(id = 1), version INTEGER NOT NULL,"
    "  expires_ms INTEGER NOT NULL, body BLOB NOT NULL)";

static int held_load(struct localdb *db, struct envelope_held *h)
{
    memset(h, 0, sizeof *h);
    if (sqlite3_exec(db->h, held_schema, NULL, NULL, NULL) != SQLITE_OK)
        return err_set(FERRY_E_STORE, "agent state: %s", sqlite3_errmsg(db->h));
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db->h, "SELECT version, expires_ms, body FROM envelope_held", -1, &st,
                           NULL) != SQLITE_OK)
        return err_set(FERRY_E_STORE, "agent state: %s", sqlite3_errmsg(db->h));
    if (sqlite3_step(st) == SQLITE_ROW) {
        h->version = (uint64_t)sqlite3_column_int64(st, 0);
        h->expires_ms = (uint64_t)sqlite3_column_int64(st, 1);
        if (sqlite3_column_bytes(st, 2) == DIGEST_LEN)
            memcpy(h->body.b, sqlite3_column_blob(st, 2), DIGEST_LEN);
    }
    sqlite3_finalize(st);
    return 0;
}

static int held_save(struct localdb *db, const struct envelope_held *h)
{
    sqlite3_stmt *st = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2(db->h,
                           "INSERT OR REPLACE INTO envelope_held(id, version, expires_ms, body)"
                           " VALUES(1, ?, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK)
        return err_set(FERRY_E_STORE, "agent state: %s", sqlite3_errmsg(db->h));
    sqlite3_bind_int64(st, 1, (sqlite3_int64)h->version);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)h->expires_ms);
    sqlite3_bind_blob(st, 3, h->body.b, DIGEST_LEN, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = err_set(FERRY_E_STORE, "agent state: %s", sqlite3_errmsg(db->h));
    sqlite3_finalize(st);
    return rc;
}

int envgate_open(struct envgate *g, struct localdb *db, const char *state_dir,
                 const struct key_public *flag_key)
{
    memset(g, 0, sizeof *g);
    snprintf(g->pin_path, sizeof g->pin_path, "%s/registry.pub", state_dir);
    if (flag_key) {
        g->registry = *flag_key;
        g->have_key = g->flag_key = 1;
    } else if (access(g->pin_path, F_OK) == 0) {
        int rc = key_load_public(g->pin_path, &g->registry);
        if (rc < 0)
            return rc;
        g->have_key = 1;
    }
    return held_load(db, &g->held);
}

static void refused(struct envgate *g, int rc)
{
    const char *why = err_message(rc);
    if (strcmp(g->last_refusal, why) != 0)
        alog(FERRY_LOG_ERROR, "%s", why);
    snprintf(g->last_refusal, sizeof g->last_refusal, "%s", why);
}

int envgate_check(struct envgate *g, struct localdb *db, const char *host,
                  const Ferry__Wire__DesiredState *ds, uint64_t now_ms)
{
    const Ferry__Wire__SignedEnvelope *se = ds->envelope;
    struct key_public first;
    const struct key_public *k = &g->registry;
    int pinning = 0;
    if (!g->have_key) {
        /* Trust on first use, as ssh does: the key the first envelope names,
         * once that envelope verifies under it. */
        if (!se || se->registry_key.len != crypto_sign_PUBLICKEYBYTES) {
            int rc = err_set(FERRY_E_INVALID,
                             "desired state refused: it is not in a signed envelope");
            refused(g, rc);
            return rc;
        }
        memset(&first, 0, sizeof first);
        memcpy(first.pk, se->registry_key.data, crypto_sign_PUBLICKEYBYTES);
        key_id_of(first.pk, first.id);
        snprintf(first.name, sizeof first.name, "registry");
        k = &first;
        pinning = 1;
    }
    struct envelope_verdict v;
    int rc = envelope_verify(se, k, host, ds->records, ds->n_records, ds->pins, ds->n_pins,
                             &g->held, now_ms, &v);
    if (rc < 0) {
        refused(g, rc);
        return rc;
    }
    if (pinning) {
        if ((rc = key_write_public(g->pin_path, &first)) < 0) {
            refused(g, rc);
            return rc;
        }
        g->registry = first;
        g->have_key = 1;
        alog(FERRY_LOG_WARN,
             "pinned registry key %s on first sight (%s): desired state signed by any other "
             "key is refused from now on; give --trust-registry to choose the key instead",
             first.id, g->pin_path);
    }
    if (v.version != g->held.version || v.expires_ms != g->held.expires_ms) {
        struct envelope_held h = {v.version, v.expires_ms, v.body};
        if ((rc = held_save(db, &h)) < 0) {
            refused(g, rc);
            return rc;
        }
        g->held = h;
    }
    if (g->frozen)
        alog(FERRY_LOG_INFO, "desired state fresh again (version %llu)",
             (unsigned long long)v.version);
    g->frozen = 0;
    g->last_refusal[0] = '\0';
    return 0;
}

int envgate_tick(struct envgate *g, uint64_t now_ms)
{
    if (g->held.version && !g->frozen && now_ms >= g->held.expires_ms) {
        g->frozen = 1;
        alog(FERRY_LOG_ERROR,
             ENVELOPE_EXPIRED ": version %llu ran out and no fresh one came; keeping the "
                              "workloads as they are until one does",
             (unsigned long long)g->held.version);
    }
    return g->frozen;
}
