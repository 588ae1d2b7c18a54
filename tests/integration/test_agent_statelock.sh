#!/usr/bin/env bash
# One agent per --state: a second agent on a state directory in use stops at
# once with one line naming the holder's pid, and touches nothing there (two
# agents on one state would adopt the same processes, write the same
# database and envelope guard, and flap the host at the registry). The lock
# dies with the agent and no workload inherits it: after kill -9 the next
# agent on that state starts and adopts the workload still running.
source "$(dirname "$0")/lib.sh"

make_key ops
start_registry reg "$T/reg" --trust "$T/ops.pub"
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
start_agent h1 "$T/h1" --label env=edge --trust "$T/ops.pub"
first=$AGENT_PID
make_web_app "$T/web1" web 1.0
"$FERRY" publish "$T/web1" >/dev/null
"$FERRY" deploy web@1.0 --to env=edge >/dev/null
"$FERRY" status --wait web@1.0 --timeout 30 >/dev/null || fail "web@1.0 did not start"
pid=$(workload_field h1 web 1.0 pid)

before=$(stat -c %Y.%s "$T/h1/agent.db")
rc=0
out=$(timeout 10 "$FERRY_AGENT_BIN" --registry "$REG_URL" --state "$T/h1" --name h1 --label env=edge \
  --plugins "$FERRY_PLUGINS" --trust "$T/ops.pub" 2>&1 >/dev/null) || rc=$?
[ $rc -eq 1 ] || fail "a second agent on a state in use exited $rc, not 1: $out"
# One error line, and nothing before it.
[ "$out" = "ferry-agent: --state $T/h1 is in use by another ferry-agent (pid $first); one agent per state directory" ] \
  || fail "a second agent on a state in use said: $out"
[ "$(stat -c %Y.%s "$T/h1/agent.db")" = "$before" ] || fail "the refused agent wrote the database"
kill -0 "$first" || fail "the first agent died"
pass "a second agent on a state directory in use is refused with one line naming the holder"

kill -9 "$first"
wait "$first" 2>/dev/null || true
kill -0 "$pid" || fail "the workload died with its agent"
start_agent h1 "$T/h1" --label env=edge --trust "$T/ops.pub"
wait_until 10 grep -q "web@1.0: re-adopted pid $pid" "$T/agent-h1.log" \
  || fail "the next agent did not adopt the workload: $(tail -5 "$T/agent-h1.log")"
pass "the lock ends with its agent (no workload holds it): the next agent starts and adopts"
