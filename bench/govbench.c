/* ferry-govbench: the governance benchmarks' C half (bench/gov.sh).
 *   ferry-govbench envelope [ROUNDS] [RECORDS]
 *       envelope verification as the agent does it (signature, expiry,
 *       rollback, every record named), median of ROUNDS (default 1000) with
 *       RECORDS records (default 10), against baselines timed in the same
 *       run: one signed deploy record verified (record_verify, one Ed25519
 *       verification), and the RECORDS record verifications the agent does
 *       anyway
 *   ferry-govbench auditfill DATA_DIR N
 *       writes N chained audit entries into DATA_DIR/registry.db in one
 *       transaction, hashed exactly as the registry hashes them */
#include "auditchain.h"
#include "db.h"
#include "envelope.h"
#include "error.h"
#include "record.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp);
    return v[n / 2];
}

static int bench_envelope(size_t rounds, size_t nrec)
{
    struct key_secret reg, op;
    crypto_sign_keypair(reg.pub.pk, reg.sk);
    key_id_of(reg.pub.pk, reg.pub.id);
    crypto_sign_keypair(op.pub.pk, op.sk);
    key_id_of(op.pub.pk, op.pub.id);
    struct trust t = {&op.pub, 1};
    Ferry__SignedRecord **srs = calloc(nrec, sizeof *srs);
    Ferry__DeployRecord **recs = calloc(nrec, sizeof *recs);
    char names[64][16];
    for (size_t i = 0; i < nrec && i < 64; i++) {
        uint8_t digest[DIGEST_LEN];
        randombytes_buf(digest, sizeof digest);
        snprintf(names[i], sizeof names[i], "app%zu", i);
        Ferry__DeployRecord r = FERRY__DEPLOY_RECORD__INIT;
        r.name = names[i];
        r.version = "1.2.3";
        r.selector = "env=prod,zone=a";
        r.issued_ms = 1700000000000ull + i;
        r.manifest_digest.data = digest;
        r.manifest_digest.len = sizeof digest;
        if (record_sign(&r, &op, &srs[i]) < 0 ||
            record_decode(srs[i]->record.data, srs[i]->record.len, &recs[i]) < 0)
            return 1;
    }
    uint64_t now = 1700000000000ull;
    Ferry__Wire__SignedEnvelope *se = NULL;
    if (envelope_sign("h1", 42, now, now + 86400000, srs, recs, nrec, NULL, 0, &reg, &se) < 0)
        return 1;
    struct envelope_held held = {41, now + 1000, {{0}}};
    double *env = calloc(rounds, sizeof *env), *one = calloc(rounds, sizeof *one),
           *all = calloc(rounds, sizeof *all);
    /* Interleaved, so a noisy neighbour hits all three alike. */
    for (size_t k = 0; k < rounds; k++) {
        struct envelope_verdict v;
        double t0 = now_us();
        if (envelope_verify(se, &reg.pub, "h1", srs, nrec, NULL, 0, &held, now + 5, &v) < 0) {
            fprintf(stderr, "govbench: %s\n", err_detail());
            return 1;
        }
        double t1 = now_us();
        Ferry__DeployRecord *out = NULL;
        if (record_verify(srs[0], &t, &out, NULL) < 0)
            return 1;
        record_free(out);
        double t2 = now_us();
        for (size_t i = 0; i < nrec; i++) {
            if (record_verify(srs[i], &t, &out, NULL) < 0)
                return 1;
            record_free(out);
        }
        double t3 = now_us();
        env[k] = t1 - t0;
        one[k] = t2 - t1;
        all[k] = t3 - t2;
    }
    double me = median(env, rounds), mo = median(one, rounds), ma = median(all, rounds);
    printf("%-58s %10s %8s\n", "measurement (median of rounds)", "us", "ratio");
    printf("%-58s %10.1f %8s\n", "one deploy record verified (baseline: one Ed25519 verify)", mo,
           "1.00");
    char what[80];
    snprintf(what, sizeof what, "the %zu record verifications the agent does anyway", nrec);
    printf("%-58s %10.1f %8.2f\n", what, ma, ma / mo);
    snprintf(what, sizeof what, "envelope verification, %zu records (new, per poll answer)", nrec);
    printf("%-58s %10.1f %8.2f\n", what, me, me / mo);
    printf("%-58s %10s %8.2f\n", "  envelope / the record verifications", "", me / ma);
    printf("rounds: %zu\n", rounds);
    envelope_free(se);
    for (size_t i = 0; i < nrec; i++) {
        signed_record_free(srs[i]);
        record_free(recs[i]);
    }
    free(srs);
    free(recs);
    free(env);
    free(one);
    free(all);
    return 0;
}

static int audit_fill(const char *dir, long n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/registry.db", dir);
    struct db db;
    /* Opening through the store creates and migrates the schema. */
    if (db_open(&db, path) < 0) {
        fprintf(stderr, "govbench: %s\n", err_detail());
        return 1;
    }
    db_close(&db);
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_open(path, &h) != SQLITE_OK ||
        sqlite3_exec(h, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(h,
                           "INSERT INTO audit(seq, time_unix, actor, role, action, subject,"
                           " prev_hash, hash, format) VALUES(?,?,?,?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "govbench: %s\n", sqlite3_errmsg(h));
        return 1;
    }
    struct digest prev = {{0}};
    static const char *whats[] = {"publish", "deploy", "approve", "promote", "undeploy"};
    for (long i = 0; i < n; i++) {
        struct audit_entry e;
        memset(&e, 0, sizeof e);
        e.seq = (uint64_t)i + 1;
        e.time_unix = 1700000000 + i;
        e.format = AUDIT_FORMAT;
        snprintf(e.key_id, sizeof e.key_id, "5e7f50cb9db8f836");
        snprintf(e.role, sizeof e.role, "operator");
        snprintf(e.what, sizeof e.what, "%s", whats[i % 5]);
        snprintf(e.detail, sizeof e.detail, "app%ld@1.%ld.0 to env=prod,zone=a", i % 97, i);
        e.prev_hash = prev;
        audit_entry_hash(&e, &prev, &e.hash);
        prev = e.hash;
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, (sqlite3_int64)e.seq);
        sqlite3_bind_int64(st, 2, e.time_unix);
        sqlite3_bind_text(st, 3, e.key_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, e.role, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, e.what, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, e.detail, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 7, e.prev_hash.b, DIGEST_LEN, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 8, e.hash.b, DIGEST_LEN, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 9, e.format);
        if (sqlite3_step(st) != SQLITE_DONE) {
            fprintf(stderr, "govbench: %s\n", sqlite3_errmsg(h));
            return 1;
        }
    }
    sqlite3_finalize(st);
    if (sqlite3_exec(h, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "govbench: %s\n", sqlite3_errmsg(h));
        return 1;
    }
    sqlite3_close(h);
    return 0;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0)
        return 1;
    if (argc >= 2 && strcmp(argv[1], "envelope") == 0) {
        size_t rounds = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
        size_t nrec = argc > 3 ? strtoul(argv[3], NULL, 10) : 10;
        if (rounds == 0 || nrec == 0 || nrec > 64)
            return 2;
        return bench_envelope(rounds, nrec);
    }
    if (argc == 4 && strcmp(argv[1], "auditfill") == 0)
        return audit_fill(argv[2], strtol(argv[3], NULL, 10));
    fprintf(stderr, "usage: ferry-govbench envelope [ROUNDS] [RECORDS] | auditfill DIR N\n");
    return 2;
}
