/* One agent per state directory: an exclusive lock on STATE/agent.lock,
 * held for the agent's lifetime (docs/agent.md). Two agents on one state
 * would adopt the same processes, write the same database and pinned
 * registry key, and each tell the registry a different story for one host. */
#ifndef FERRY_AGENT_STATELOCK_H
#define FERRY_AGENT_STATELOCK_H

/* Takes the lock on dir/agent.lock (created 0600, close-on-exec, so no
 * workload inherits it) and writes this process's pid into it. Returns the
 * descriptor, which holds the lock until it is closed or the process ends,
 * or a negative code: FERRY_E_EXISTS naming the holder's pid when another
 * process holds it. */
int statelock_take(const char *dir);

#endif
