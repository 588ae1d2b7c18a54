/* Blocking probes the agent lends to plugins through struct ferry_host
 * (http_get, run_command). Thread-safe: they keep no shared state, so health
 * checks of different runs may probe in parallel from any thread. */
#ifndef FERRY_AGENT_PROBE_H
#define FERRY_AGENT_PROBE_H

/* GET http://127.0.0.1:port/path within timeout_ms; *status gets the HTTP
 * status (any status is success here, judging it is the caller's business).
 * -ECONNREFUSED when nothing listens, -ETIMEDOUT past the deadline, -EINVAL
 * for a bad port or a path that is not "/..." of printable characters. */
int probe_http_get(int port, const char *path, int timeout_ms, int *status);

/* Run argv with exactly env ("K=V", NULL-terminated; NULL means empty) in cwd
 * (NULL: the agent's), stdin/stdout/stderr on /dev/null, in its own process
 * group. argv[0] without a slash is looked up in env's PATH (default
 * /usr/local/bin:/usr/bin:/bin); a relative one is resolved against cwd.
 * *exit_status gets the exit code, or 128+signal. Whatever the command left
 * running in its process group is killed when it ends. Past timeout_ms the
 * whole group is killed and -ETIMEDOUT returned. The child is always reaped. */
int probe_run_command(const char *const *argv, const char *const *env, const char *cwd, int timeout_ms,
                      int *exit_status);

#endif
