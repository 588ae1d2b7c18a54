/* GET /api/v1/metrics/{name}?host=&series=&since=&resolution=: a
 * workload's metric history (mseries.h) as time series, for charts. */
#include "http_api.h"
#include "clock.h"
#include "error.h"
#include "mseries.h"
#include "numparse.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* At most this many buckets in one answer; past it, "truncated": true. */
#define SERIES_MAX_POINTS 20000

/* since: unix ms (bare digits), or a duration back from now ("15m", "6h",
 * "7d"); default the last hour. */
static int since_arg(const struct http_call *c, int64_t now, int64_t *out)
{
    const char *v = http_arg(c, "since");
    if (!v) {
        *out = now - 3600 * 1000;
        return 0;
    }
    size_t digits = strspn(v, "0123456789");
    uint64_t x = 0;
    if (*v && v[digits] == '\0') {
        int rc = num_parse_u64("since", v, 0, (uint64_t)now, &x);
        if (rc < 0)
            return rc;
        *out = (int64_t)x;
        return 0;
    }
    int rc = num_parse_duration_ms("since", v, 1000, 1, 366ULL * 86400000, &x);
    if (rc < 0)
        return err_set(FERRY_E_INVALID, "since '%.40s': not unix milliseconds nor a duration (15m, 6h, 7d)", v);
    *out = now - (int64_t)x;
    return 0;
}

static json_t *point_json(const struct db_series_row *r)
{
    /* A gauge's bucket is its mean; a counter's (and a histogram's parts)
     * its last value, which is what a rate is computed from. */
    double v = r->type == FERRY__WIRE__METRIC_TYPE__METRIC_GAUGE && r->count > 0
                   ? r->sum / (double)r->count
                   : r->last;
    return json_pack("[I,f,f,f]", (json_int_t)r->bucket_ms, v, r->min, r->max);
}

static const char *type_name(int t)
{
    switch (t) {
    case FERRY__WIRE__METRIC_TYPE__METRIC_COUNTER:
        return "counter";
    case FERRY__WIRE__METRIC_TYPE__METRIC_HISTOGRAM:
        return "histogram";
    default:
        return "gauge";
    }
}

int api_metrics(const struct http_call *c, struct http_reply *out)
{
    const char *name = c->tail;
    const char *host = http_arg(c, "host");
    const char *series = http_arg(c, "series");
    int64_t now = (int64_t)clock_unix_ms(), since = 0;
    uint64_t res = 0;
    int rc = api_name_arg("name", name);
    if (rc == 0 && host)
        rc = api_name_arg("host", host);
    if (rc == 0 && series && (!*series || strlen(series) >= MSERIES_NAME_MAX))
        rc = err_set(FERRY_E_INVALID, "series: must be 1 to %d bytes", MSERIES_NAME_MAX - 1);
    if (rc == 0)
        rc = since_arg(c, now, &since);
    if (rc == 0)
        rc = api_arg_u64(c, "resolution", 1, 86400, 0, &res);
    if (rc < 0)
        return rc;
    const struct mseries_tier *tier = mseries_tier_for(since, now);
    if (res) {
        tier = NULL;
        for (int i = 0; i < MSERIES_TIERS; i++)
            if ((uint64_t)mseries_tiers[i].res_s == res)
                tier = &mseries_tiers[i];
        if (!tier)
            return err_set(FERRY_E_INVALID, "resolution '%llu': kept at %d or %d seconds only",
                           (unsigned long long)res, mseries_tiers[0].res_s, mseries_tiers[1].res_s);
    }
    struct db *db = http_reader_get(c->srv);
    if (!db)
        return -EBUSY;
    struct db_version *v = NULL;
    size_t nv = 0;
    struct db_series_row *rows = NULL;
    size_t n = 0;
    rc = db_list_versions(db, name, &v, &nv);
    free(v);
    if (rc == 0)
        rc = db_series_query(db, name, host, series, tier->res_s, mseries_bucket(since, tier->res_s),
                             SERIES_MAX_POINTS + 1, &rows, &n);
    http_reader_put(c->srv, db);
    if (rc == 0 && nv == 0 && n == 0)
        rc = err_set(FERRY_E_NOTFOUND, "metrics '%s': no such workload", name);
    if (rc < 0) {
        free(rows);
        return rc;
    }
    int truncated = n > SERIES_MAX_POINTS;
    if (truncated)
        n = SERIES_MAX_POINTS;
    json_t *arr = json_array();
    json_t *cur = NULL, *pts = NULL;
    for (size_t i = 0; arr && i < n; i++) {
        const struct db_series_row *r = &rows[i];
        if (!cur || strcmp(r->host, rows[i - 1].host) != 0 ||
            strcmp(r->version, rows[i - 1].version) != 0 || strcmp(r->series, rows[i - 1].series) != 0) {
            pts = json_array();
            cur = json_pack("{s:s,s:s,s:s,s:s,s:o}", "host", r->host, "version", r->version, "series",
                            r->series, "type", type_name(r->type), "points", pts ? pts : json_array());
            if (!cur)
                break;
            json_array_append_new(arr, cur);
        }
        json_array_append_new(pts, point_json(r));
    }
    free(rows);
    return http_json(out, 200,
                     json_pack("{s:s,s:i,s:I,s:I,s:b,s:o}", "name", name, "resolution_s", tier->res_s,
                               "since_ms", (json_int_t)since, "now_ms", (json_int_t)now, "truncated",
                               truncated, "series", arr ? arr : json_array()));
}
