/* Actions on the agent: requests addressed to one of its workloads
 * (`ferry logs`, later plugin verbs through ABI 2's action()). They arrive
 * with the registry's poll answers (the agent still listens on no port),
 * are checked here against the agent's own trusted keys (an operator key
 * signed exactly this action, for this host, not expired, not seen before),
 * are carried out on the loop thread, and leave as replies the link signs
 * with the host key and sends on its report channel. docs/security.md
 * ("Actions"). */
#ifndef FERRY_AGENT_ACTIONS_H
#define FERRY_AGENT_ACTIONS_H

#include "action.h"
#include "key.h"
#include "wire.pb-c.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define AGENT_ACTIONS_INBOX_MAX 32     /* verified, waiting for the loop */
#define AGENT_ACTIONS_OUTBOX_MAX 32    /* replies waiting for the link */
#define AGENT_ACTIONS_SEEN_MAX 512     /* ids remembered until they expire */
#define LOGS_TAIL_DEFAULT 100
#define LOGS_TAIL_MAX ACTION_LOGS_TAIL_MAX
#define LOGS_MAX_BYTES (ACTION_REPLY_DATA_MAX - 1024u)

/* Loop thread: the directory and version of the run of workload an action
 * should address (the one running, else the newest). FERRY_E_NOTFOUND when
 * no run of workload is on this host. */
typedef int (*agent_actions_lookup_fn)(void *arg, const char *workload, char *dir, size_t dir_cap,
                                       char *version, size_t version_cap);

struct agent_actions;

/* Loop thread: a verb this module does not serve itself (a plugin's, through
 * ABI 2's action(), which may block and so runs off the loop). Return 0 once
 * it is started: the answer follows through agent_actions_answer() with the
 * same id, exactly once. Or return a negative code with err_set detail
 * (FERRY_E_NOTFOUND: no such workload or verb here) to be answered with it
 * at once. */
typedef int (*agent_actions_verb_fn)(void *arg, struct agent_actions *aa,
                                     const uint8_t id[ACTION_ID_LEN], const char *workload,
                                     const char *verb, const char *request_json);

struct agent_actions_config {
    const char *host;
    const struct trust *trust;
    /* Keys whose signature is taken on a logs action and on nothing else
     * (--trust-logs: a dashboard's registry reads output with one, and can
     * sign no other verb nor a deploy); NULL or empty: none. */
    const struct trust *trust_logs;
    agent_actions_lookup_fn lookup;
    void *lookup_arg;
    agent_actions_verb_fn other_verb;  /* may be NULL: only logs is served */
    void *other_verb_arg;
    /* Any thread, no lock of this module held: a reply is ready. */
    void (*reply_ready)(void *arg);
    void *reply_arg;
    /* A plugin verb's request says whether its signer is an operator
     * ("requester_operator"): with admins (a policy this agent verifies),
     * a key the policy cached in policy_cache gives the operator role for
     * every kind (no `kinds` list) and has not revoked; without, a key of
     * operators. Either may be NULL. docs/notebooks.md. */
    const struct trust *operators;
    const struct trust *admins;
    const char *policy_cache;
};

int agent_actions_new(uv_loop_t *loop, const struct agent_actions_config *cfg,
                      struct agent_actions **out);
/* Any thread: an action from a poll answer (copied). Refusals become
 * replies at once; accepted actions go to the loop. */
void agent_actions_receive(struct agent_actions *aa, const Ferry__Wire__SignedAction *sa);
/* Any thread: the oldest reply waiting, as an ActionReplyBody (free with
 * ferry__wire__action_reply_body__free_unpacked); NULL when none. */
Ferry__Wire__ActionReplyBody *agent_actions_next_reply(struct agent_actions *aa);
/* Any thread: the answer to an action a verb callback started (rc 0 with
 * json, a JSON object text or NULL, and data; or a negative code with
 * err_set detail). The same bounds as every reply apply: an answer over
 * them becomes an error. Not after agent_actions_close. */
void agent_actions_answer(struct agent_actions *aa, const uint8_t id[ACTION_ID_LEN], int rc,
                          const char *json, const uint8_t *data, size_t len);
/* Loop thread, after the link's threads stopped: close and free. */
void agent_actions_close(struct agent_actions *aa);

/* ---- the logs verb (pure file work, unit-tested) ---------------------------- */

struct logs_request {
    int stderr_stream;       /* 0: stdout.log, 1: stderr.log */
    uint32_t tail;           /* last lines, when not following */
    int has_offset;          /* follow: bytes after offset of the current file */
    uint64_t offset;
    char rotation[64];       /* the rotated file as it was at offset */
};
/* Parse a logs request JSON object; unknown keys are refused. */
int logs_request_parse(const char *json, struct logs_request *out);

struct logs_result {
    uint8_t *data;           /* malloc'd */
    size_t len;
    uint64_t offset;         /* the next cursor in the current file */
    char rotation[64];
    int truncated;           /* older bytes were left out to stay within bounds */
};
/* Read dir/.ferry/{stdout,stderr}.log (and the rotated .1) as req asks,
 * at most max_bytes. */
int logs_read(const char *dir, const struct logs_request *req, size_t max_bytes,
              struct logs_result *out);

#endif
