#!/usr/bin/env bash
# A registry that replays an older, validly signed deployment (a compromised
# registry, or a restored backup) must not roll an agent back.
source "$(dirname "$0")/lib.sh"

make_key ops
start_registry reg "$T/reg" --trust "$T/ops.pub"
url=$REG_URL
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
start_agent h1 "$T/h1" --label env=prod --trust "$T/ops.pub"

make_web_app "$T/v1" web 1.0
make_web_app "$T/v2" web 2.0
"$FERRY" publish "$T/v1" >/dev/null
"$FERRY" publish "$T/v2" >/dev/null
"$FERRY" deploy web@1.0 --to env=prod >/dev/null
"$FERRY" status --wait web@1.0 --timeout 30 >/dev/null || fail "web@1.0"
old_record=$(sqlite3 "$T/reg/registry.db" "SELECT hex(signed_record) || ' ' || issued_ms FROM deployments WHERE name='web'")
"$FERRY" deploy web@2.0 --to env=prod >/dev/null
"$FERRY" status --wait web@2.0 --timeout 30 >/dev/null || fail "web@2.0"

# Put the old signed record back behind the registry's back.
stop_and_wait "$REG_PID" 30 "the registry" || true
sqlite3 "$T/reg/registry.db" \
  "UPDATE deployments SET signed_record = X'${old_record% *}', issued_ms = ${old_record#* } WHERE name='web'"
start_registry_at reg2 "$T/reg" "$url" --trust "$T/ops.pub"

wait_until 30 grep -q 'ignoring an older deployment of web' "$T/agent-h1.log" \
  || fail "the agent did not notice the replayed deployment"
workload_state_is h1 web 2.0 running || fail "web@2.0 is no longer running"
! workload_field h1 web 1.0 state >/dev/null 2>&1 || fail "web@1.0 came back"
[ "$(answer "$(workload_field h1 web 2.0 port)")" = "web 2.0" ] || fail "web@2.0 does not answer"
pass "a replayed older deployment is ignored: no rollback"

# The same agent restarted still refuses it (the guard is persisted).
stop_and_wait "$AGENT_PID" 30 "the agent" || true
start_agent h1 "$T/h1" --label env=prod --trust "$T/ops.pub"
wait_until 30 bash -c "[ \$(grep -c 'ignoring an older deployment of web' '$T/agent-h1.log') -ge 2 ]" \
  || fail "a restarted agent did not refuse the replay"
workload_state_is h1 web 2.0 running || fail "web@2.0 after agent restart"
pass "the rollback guard survives an agent restart"
