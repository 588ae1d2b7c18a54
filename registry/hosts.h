/* Hosts are enrolled, not self-declared: registration (hello), operator
 * accepts, join tokens, and the checks on every request a host signs
 * (polls, reports). Nothing a host that is not enrolled sends is stored,
 * except a bounded list of pending hellos for operators to accept.
 * docs/security.md ("Enrollment") states the rules and the bounds. */
#ifndef FERRY_REGISTRY_HOSTS_H
#define FERRY_REGISTRY_HOSTS_H

#include "db.h"
#include "key.h"
#include "selector.h"
#include "wire.pb-c.h"

#include <stddef.h>
#include <stdint.h>

/* A hello, report or poll whose send time is further than this from the
 * registry's clock is refused. */
#define HOSTS_CLOCK_WINDOW_MS (5u * 60 * 1000)
/* What one host can store. */
#define HOSTS_REPORT_MAX_BYTES (256u << 10)   /* encoded report body */
#define HOSTS_REPORT_MAX_WORKLOADS 256u       /* workloads in one snapshot */
#define HOSTS_REPORT_MAX_EVENTS 256u          /* state changes in one report */
#define HOSTS_LABELS_TEXT_MAX 2047u           /* canonical "k=v,k=v" */
#define HOSTS_PLUGINS_MAX 32u                 /* plugins in a hello, runtimes per plugin */

/* The labels of a hello as a canonical set and text, or the reason they are
 * refused: more than LABEL_MAX, a key or value outside 1..LABEL_TEXT_MAX of
 * the allowed characters, a key twice, or a canonical text longer than
 * HOSTS_LABELS_TEXT_MAX. Nothing is truncated. */
int hosts_labels_check(const char *host, Ferry__Wire__Label *const *labels, size_t n,
                       struct label_set *out, char *text, size_t cap);
/* 0 when a report body of body_len bytes decoded as b is within bounds. */
int hosts_report_check(const char *host, size_t body_len, const Ferry__Wire__ReportBody *b);
/* 0 when sent_ms is within HOSTS_CLOCK_WINDOW_MS of now_ms. */
int hosts_time_check(const char *what, const char *host, uint64_t sent_ms, uint64_t now_ms);

/* Register: enrolled hosts refresh their labels; a valid join token
 * enrolls a new host; anything else is refused (a pending entry is kept for
 * the operator). trust holds the operator keys that sign join tokens. */
int hosts_register(struct db *db, const struct trust *trust, const Ferry__Wire__Register *reg);
/* Report: signed by the enrolled host's key, fresh and within bounds. */
int hosts_report(struct db *db, const Ferry__Wire__Report *rep);
/* Poll: 0 (and the host's liveness refreshed) only for a fresh poll signed
 * by the enrolled host's key; FERRY_E_NOTFOUND for a host not enrolled. */
int hosts_poll_auth(struct db *db, const Ferry__Wire__Poll *p);

/* What an accept reply points into. */
struct hosts_accept_reply {
    Ferry__Wire__AcceptReply reply;
    char name[72];
    char key_id[KEY_ID_LEN + 1];
};
/* `ferry hosts accept`: signed by a key in trust; enrolls a pending key. */
int hosts_accept(struct db *db, const struct trust *trust, const Ferry__Wire__AcceptHost *a,
                 Ferry__Wire__Response *resp, struct hosts_accept_reply *out);

/* The plugins a hello reports: at most HOSTS_PLUGINS_MAX, each with at most
 * as many runtimes, names of 1..63 letters, digits, '.', '_', '-'. */
int hosts_plugins_check(const Ferry__Wire__HostHello *hello);

/* `ferry hosts rm`: signed by a key in trust; forgets a host that has been
 * offline (unheard of for host_ttl_ms), refuses an online one. */
int hosts_remove(struct db *db, const struct trust *trust, int host_ttl_ms,
                 const Ferry__Wire__RemoveHost *rm);

#endif
