/* status --wait and deploy --wait: poll the fleet until name@version runs
 * on every online host in scope, one of them gives up on it, or the time
 * runs out. docs/cli.md ("Waiting") states the exit codes. */
#include "cli.h"
#include "error.h"
#include "selector.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WAIT_SCOPE_MAX 4096

int cli_hosts_matching(const Ferry__Wire__HostList *hl, const char *selector,
                       const Ferry__Wire__HostInfo **out, size_t cap)
{
    struct label_set sel = {.n = 0}; /* empty: every host */
    if (selector && *selector && labels_parse(selector, &sel) < 0)
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < hl->n_hosts && n < cap; i++) {
        const Ferry__Wire__HostInfo *h = hl->hosts[i];
        if (!h->online || (h->status && strcmp(h->status, "pending") == 0))
            continue;
        struct label_set have = {.n = 0};
        for (size_t l = 0; l < h->n_labels; l++) {
            char kv[2 * LABEL_TEXT_MAX + 2];
            snprintf(kv, sizeof kv, "%s=%s", h->labels[l]->key, h->labels[l]->value);
            labels_add(&have, kv);
        }
        if (selector_matches(&sel, &have))
            out[n++] = h;
    }
    return (int)n;
}

static int desires(const Ferry__Wire__HostInfo *h, const char *name, const char *version)
{
    for (size_t k = 0; k < h->n_desired; k++)
        if (strcmp(h->desired[k]->name, name) == 0 && strcmp(h->desired[k]->version, version) == 0)
            return 1;
    return 0;
}

static const Ferry__Wire__WorkloadReport *report_of(const Ferry__Wire__HostInfo *h,
                                                    const char *name, const char *version)
{
    for (size_t k = 0; k < h->n_workloads; k++)
        if (strcmp(h->workloads[k]->name, name) == 0 &&
            strcmp(h->workloads[k]->version, version) == 0)
            return h->workloads[k];
    return NULL;
}

enum { W_WAIT, W_DONE, W_FAILED, W_NONE };

/* deploy --wait: the ends (failed, rolled_back, succeeded) hosts reported
 * for name@version before the new record was sent. The same end, with the
 * same since, is what the host said about an earlier decision, not this
 * one: a re-deploy of a job that succeeded, or of a version that failed,
 * makes the host run it again, and the wait is for that run. */
static struct {
    char host[LABEL_TEXT_MAX + 1];
    char state[16];
    uint64_t since_ms;
} before[WAIT_SCOPE_MAX];
static size_t n_before;

static int is_end(const char *st)
{
    return strcmp(st, "failed") == 0 || strcmp(st, "rolled_back") == 0 ||
           strcmp(st, "succeeded") == 0;
}

void cli_wait_baseline(struct cli_opts *o, const char *name, const char *version)
{
    Ferry__Wire__Response *r = NULL;
    n_before = 0;
    if (fetch_hosts(o, &r) < 0)
        return; /* nothing known: every report counts */
    const Ferry__Wire__HostList *hl = r->hosts;
    for (size_t i = 0; i < hl->n_hosts && n_before < WAIT_SCOPE_MAX; i++) {
        const Ferry__Wire__HostInfo *h = hl->hosts[i];
        for (size_t k = 0; k < h->n_workloads && n_before < WAIT_SCOPE_MAX; k++) {
            const Ferry__Wire__WorkloadReport *w = h->workloads[k];
            if (strcmp(w->name, name) != 0 || strcmp(w->version, version) != 0 ||
                !is_end(w->state))
                continue;
            snprintf(before[n_before].host, sizeof before[n_before].host, "%s", h->name);
            snprintf(before[n_before].state, sizeof before[n_before].state, "%s", w->state);
            before[n_before].since_ms = w->since_ms;
            n_before++;
        }
    }
    client_response_free(r);
}

static int from_before(const char *host, const Ferry__Wire__WorkloadReport *w)
{
    for (size_t i = 0; i < n_before; i++)
        if (before[i].since_ms == w->since_ms && strcmp(before[i].host, host) == 0 &&
            strcmp(before[i].state, w->state) == 0)
            return 1;
    return 0;
}

/* One look at the fleet. pending: the hosts still waited for, "h1 (fetching), ...";
 * *undesired: no --to, hosts are online, but none is meant to run it (yet). */
static int check(const Ferry__Wire__HostList *hl, const char *name, const char *version,
                 const char *selector, char *pending, size_t pcap, int *undesired)
{
    static const Ferry__Wire__HostInfo *scope[WAIT_SCOPE_MAX];
    size_t n = 0;
    *undesired = 0;
    pending[0] = '\0';
    if (selector) {
        n = (size_t)cli_hosts_matching(hl, selector, scope, WAIT_SCOPE_MAX);
        if (n == 0) {
            err_set(FERRY_E_NOTFOUND, "no online host matches %s: nothing to wait for",
                    selector[0] ? selector : "(any)");
            return W_NONE;
        }
    } else {
        /* Without a selector the scope is every online host: none online
         * ends the wait at once. Of those, the hosts whose desired state has
         * it are waited for; while there are none (not deployed, or not
         * yet), the wait goes on to the timeout. */
        size_t all = (size_t)cli_hosts_matching(hl, "", scope, WAIT_SCOPE_MAX);
        if (all == 0) {
            err_set(FERRY_E_NOTFOUND, "no online host: nothing to wait for");
            return W_NONE;
        }
        for (size_t i = 0; i < all; i++)
            if (desires(scope[i], name, version))
                scope[n++] = scope[i];
        if (n == 0) {
            *undesired = 1;
            return W_WAIT;
        }
    }
    size_t used = 0, waiting = 0;
    for (size_t i = 0; i < n; i++) {
        const Ferry__Wire__HostInfo *h = scope[i];
        const Ferry__Wire__WorkloadReport *w = report_of(h, name, version);
        const char *st = w ? w->state : "pending";
        if (w && from_before(h->name, w)) {
            /* Not yet about this deploy: wait for the host to take it up. */
            waiting++;
            if (used < pcap) {
                int k = snprintf(pending + used, pcap - used, "%s%s (%s before this deploy)",
                                 used ? ", " : "", h->name, st);
                if (k > 0)
                    used += (size_t)k;
            }
            continue;
        }
        if (strcmp(st, "failed") == 0 || strcmp(st, "rolled_back") == 0) {
            err_set(FERRY_E_REMOTE, "host %s: %s@%s %s: %s", h->name, name, version, st,
                    w->reason && *w->reason ? w->reason : "no reason");
            return W_FAILED;
        }
        /* Done: a service running; a job that succeeded, or a scheduled job
         * waiting for its next run (a job that runs is still on its way). */
        int job = w && w->mode && strcmp(w->mode, "job") == 0;
        if (job ? strcmp(st, "succeeded") == 0 || strcmp(st, "scheduled") == 0
                : strcmp(st, "running") == 0 || strcmp(st, "succeeded") == 0)
            continue;
        waiting++;
        if (used < pcap) {
            int k = snprintf(pending + used, pcap - used, "%s%s (%s%s%.80s)", used ? ", " : "",
                             h->name, st, w && w->reason && *w->reason ? ": " : "",
                             w && w->reason ? w->reason : "");
            if (k > 0)
                used += (size_t)k;
        }
    }
    return waiting == 0 ? W_DONE : W_WAIT;
}

static uint64_t since_ms(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)(now.tv_sec - start->tv_sec) * 1000 +
           (uint64_t)((now.tv_nsec - start->tv_nsec) / 1000000);
}

int cli_wait(struct cli_opts *o, const char *name, const char *version, const char *selector,
             uint64_t timeout_ms, int show_status)
{
    /* Progress only for a person watching: nothing extra in logs or pipes. */
    int tty = isatty(STDERR_FILENO);
    char pending[1024] = "", shown_line[1024] = "";
    int undesired = 0;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        Ferry__Wire__Response *r = NULL;
        /* A registry that is briefly unreachable is waited for too. */
        int rc = fetch_hosts(o, &r);
        if (rc == 0) {
            int st = check(r->hosts, name, version, selector, pending, sizeof pending,
                           &undesired);
            if (undesired)
                snprintf(pending, sizeof pending,
                         "no online host has %.80s@%.80s as its desired state", name, version);
            if (st != W_WAIT) {
                if (tty && shown_line[0])
                    fputs("\r\033[K", stderr);
                if (st == W_DONE && show_status)
                    print_status(r->hosts, o->json);
                client_response_free(r);
                if (st == W_DONE)
                    return 0;
                fprintf(stderr, "ferry: %s\n", err_detail());
                return 1;
            }
            client_response_free(r);
        } else {
            undesired = 0;
            snprintf(pending, sizeof pending, "%s", err_message(rc));
        }
        uint64_t waited = since_ms(&start);
        if (tty && strcmp(pending, shown_line) != 0) {
            fprintf(stderr, "\r\033[Kwaiting for %s@%s%s%.200s", name, version,
                    undesired ? ": " : " on ", pending);
            fflush(stderr);
            snprintf(shown_line, sizeof shown_line, "%s", pending);
        }
        if (waited >= timeout_ms) {
            if (tty && shown_line[0])
                fputs("\r\033[K", stderr);
            char shown[32];
            if (timeout_ms % 1000 == 0)
                snprintf(shown, sizeof shown, "%llus", (unsigned long long)(timeout_ms / 1000));
            else
                snprintf(shown, sizeof shown, "%llums", (unsigned long long)timeout_ms);
            fprintf(stderr, "ferry: timed out after %s waiting for %s@%s: %s%s\n", shown, name,
                    version, undesired ? "" : "still waiting for ", pending);
            return EXIT_TIMEOUT;
        }
        struct timespec pause = {0, 100 * 1000000};
        nanosleep(&pause, NULL); /* the poll interval, not a wait for a condition */
    }
}
