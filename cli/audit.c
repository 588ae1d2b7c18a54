/* ferry audit [--json] [--verify]: the registry's audit log, paged through
 * ListAudit; --verify recomputes the hash chain here, from the entries'
 * own fields (lib/auditchain.h), and names the first that does not match. */
#include "cli.h"
#include "auditchain.h"
#include "error.h"
#include "wire.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(const char *msg)
{
    fprintf(stderr, "ferry audit: %s (see 'ferry help audit')\n", msg);
    return EXIT_USAGE;
}

/* The wire entry as the chain sees it; FERRY_E_PROTOCOL for a hash that is
 * not a digest (checked as a mismatch by the caller). */
static int to_entry(const Ferry__Wire__AuditEntry *w, struct audit_entry *e)
{
    memset(e, 0, sizeof *e);
    e->seq = w->seq;
    e->time_unix = w->time_unix;
    e->format = (int)w->format;
    snprintf(e->key_id, sizeof e->key_id, "%s", w->key_id);
    snprintf(e->role, sizeof e->role, "%s", w->role);
    snprintf(e->what, sizeof e->what, "%s", w->what);
    snprintf(e->detail, sizeof e->detail, "%s", w->detail);
    int a = digest_from_bytes(w->prev_hash.data, w->prev_hash.len, &e->prev_hash);
    int b = digest_from_bytes(w->hash.data, w->hash.len, &e->hash);
    return a < 0 || b < 0 ? FERRY_E_PROTOCOL : 0;
}

static json_t *entry_json(const struct audit_entry *e)
{
    char when[32], prev[DIGEST_HEX_LEN + 1], hash[DIGEST_HEX_LEN + 1];
    iso_ms((uint64_t)e->time_unix * 1000, when, sizeof when);
    digest_hex(&e->prev_hash, prev);
    digest_hex(&e->hash, hash);
    return json_pack("{s:I, s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:s}", "seq", (json_int_t)e->seq,
                     "time", when, "time_unix", (json_int_t)e->time_unix, "key_id", e->key_id,
                     "role", e->role, "what", e->what, "detail", e->detail, "prev_hash", prev,
                     "hash", hash);
}

int cli_audit(int argc, char **argv)
{
    enum { A_REGISTRY = 256, A_JSON, A_VERIFY };
    static const struct option opts[] = {
        {"registry", required_argument, NULL, A_REGISTRY},
        {"json", no_argument, NULL, A_JSON},
        {"verify", no_argument, NULL, A_VERIFY},
        {NULL, 0, NULL, 0},
    };
    const char *registry = getenv("FERRY_REGISTRY");
    int json = 0, verify = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case A_REGISTRY: registry = optarg; break;
        case A_JSON: json = 1; break;
        case A_VERIFY: verify = 1; break;
        default: {
            char msg[200];
            snprintf(msg, sizeof msg, "unknown or incomplete option '%s'", argv[optind - 1]);
            return usage(msg);
        }
        }
    }
    if (optind != argc)
        return usage("takes no arguments");
    if (!registry || !*registry)
        registry = WIRE_DEFAULT_URL;

    struct audit_cursor cur;
    audit_cursor_init(&cur);
    json_t *arr = json && !verify ? json_array() : NULL;
    if (!json && !verify)
        printf("%-6s %-21s %-17s %-10s %-12s %-40s %s\n", "SEQ", "TIME", "KEY ID", "ROLE", "WHAT",
               "DETAIL", "HASH");
    uint64_t after = 0;
    int more = 1, rc = 0;
    char why[2600] = "";
    uint64_t bad_seq = 0;
    struct audit_entry e;
    while (more && rc == 0 && !why[0]) {
        Ferry__Wire__Request req;
        Ferry__Wire__ListAudit la;
        ferry__wire__request__init(&req);
        ferry__wire__list_audit__init(&la);
        la.after_seq = after;
        req.body_case = FERRY__WIRE__REQUEST__BODY_LIST_AUDIT;
        req.list_audit = &la;
        Ferry__Wire__Response *r = NULL;
        if ((rc = cli_call_url(registry, &req, &r, FERRY__WIRE__RESPONSE__BODY_AUDIT)) < 0)
            break;
        const Ferry__Wire__AuditList *al = r->audit;
        more = al->more && al->n_entries > 0;
        for (size_t i = 0; i < al->n_entries && !why[0]; i++) {
            int bad = to_entry(al->entries[i], &e) < 0;
            after = e.seq;
            if (verify) {
                if (bad)
                    snprintf(why, sizeof why, "audit entry %llu does not match: its hash is "
                                              "not a digest", (unsigned long long)e.seq);
                else
                    (void)audit_cursor_step(&cur, &e, why, sizeof why);
                if (why[0])
                    bad_seq = e.seq;
            } else if (arr) {
                json_array_append_new(arr, entry_json(&e));
            } else {
                char when[32], hash[DIGEST_HEX_LEN + 1];
                iso_ms((uint64_t)e.time_unix * 1000, when, sizeof when);
                digest_hex(&e.hash, hash);
                printf("%-6llu %-21s %-17s %-10s %-12s %-40s %.16s\n", (unsigned long long)e.seq,
                       when, e.key_id, e.role[0] ? e.role : "-", e.what, e.detail, hash);
            }
        }
        client_response_free(r);
    }
    if (rc < 0) {
        json_decref(arr);
        return cli_fail(rc);
    }
    if (arr) {
        cli_print_json(json_pack("{s:o}", "entries", arr));
        return 0;
    }
    if (!verify)
        return 0;
    char head[DIGEST_HEX_LEN + 1];
    digest_hex(&cur.prev, head);
    if (json) {
        json_t *doc = json_pack("{s:b, s:I}", "verified", !why[0], "entries",
                                (json_int_t)cur.checked);
        if (why[0])
            json_object_set_new(doc, "first_bad",
                                json_pack("{s:I, s:s}", "seq", (json_int_t)bad_seq, "reason",
                                          why));
        else
            json_object_set_new(doc, "head", json_string(head));
        cli_print_json(doc);
    } else if (why[0]) {
        fprintf(stderr, "ferry: %s\n", why);
    } else {
        printf("audit log verified: %llu entries, head %s\n", (unsigned long long)cur.checked,
               head);
    }
    return why[0] ? 1 : 0;
}
