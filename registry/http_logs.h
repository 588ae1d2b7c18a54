/* GET /api/v1/logs/NAME?host=H&lines=N&stream=stdout|stderr: a workload's
 * log tail for the dashboard, read through the logs action with a key the
 * operator gave the registry for that alone (--http-logs-key FILE). Agents
 * take that key's signature on logs actions and nothing else
 * (ferry-agent --trust-logs), so holding it lets the registry read output,
 * never deploy nor run another verb (docs/dashboard.md, "Log tail";
 * docs/security.md, "The dashboard and logs").
 *
 * Without the key the route answers 404 saying how to enable it. With it,
 * a request is parked and handed to one thread of this module, which signs
 * the action, queues it as ActionSubmit would, and waits for the host's
 * reply at most HTTP_LOGS_DEADLINE_MS; at most HTTP_LOGS_QUEUE requests
 * wait for that thread, one more gets 503. */
#ifndef FERRY_REGISTRY_HTTP_LOGS_H
#define FERRY_REGISTRY_HTTP_LOGS_H

#define HTTP_LOGS_QUEUE 4
#define HTTP_LOGS_DEADLINE_MS 10000
#define HTTP_LOGS_DEFAULT_LINES 100
#define HTTP_LOGS_MAX_LINES 1000

struct http_logs;
struct registry;

/* key_file NULL: the route says logs are off. Checks the key (a ferry
 * secret key, not readable by group or others). */
int http_logs_open(const char *key_file, struct registry *reg, struct http_logs **out);
/* Load and check key_file only (for the start-up checks). */
int http_logs_check_key(const char *key_file);
/* Answers what waits with 503 and joins the thread: before the HTTP
 * library stops. */
void http_logs_stop(struct http_logs *l);
void http_logs_close(struct http_logs *l);

#endif
