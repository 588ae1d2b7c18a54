#!/usr/bin/env bash
# A compromised registry (its database edited behind its back) cannot make an
# agent run a record signed for other hosts, nor stop a workload by dropping
# its record: the agent decides from the signed selector and its own labels,
# and stops a workload only because of a signed record.
source "$(dirname "$0")/lib.sh"

make_key ops
start_registry reg "$T/reg" --trust "$T/ops.pub"
url=$REG_URL
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
start_agent h1 "$T/h1" --label env=prod --trust "$T/ops.pub"
kept='not in desired state; kept until a signed undeploy'
kept_reported() { [ "$(workload_field h1 web 1.0 reason)" = "$kept" ] && workload_state_is h1 web 1.0 running; }

make_web_app "$T/web1" web 1.0
make_web_app "$T/web2" web 2.0
"$FERRY" publish "$T/web1" >/dev/null
"$FERRY" publish "$T/web2" >/dev/null
"$FERRY" deploy web@1.0 --to env=prod >/dev/null
"$FERRY" status --wait web@1.0 --timeout 30 >/dev/null || fail "web@1.0 did not start"
pid=$(workload_field h1 web 1.0 pid)
port=$(workload_field h1 web 1.0 port)
# A canary deployment: signed for env=canary, so never served to h1.
"$FERRY" deploy web@2.0 --to env=canary >/dev/null
[ "$(sqlite3 "$T/reg/registry.db" "SELECT count(*) FROM deployments WHERE name='web'")" = 2 ] \
  || fail "expected the prod and the canary deployment in the registry"

# --- the registry's selector column edited: the canary record served to prod
stop_and_wait "$REG_PID" 30 "the registry" || true
sqlite3 "$T/reg/registry.db" "DELETE FROM deployments WHERE name='web' AND selector='env=prod';
  UPDATE deployments SET selector='env=prod' WHERE name='web' AND selector='env=canary'"
start_registry_at reg2 "$T/reg" "$url" --trust "$T/ops.pub"

why='deployment of web@2.0 is signed for env=canary; this host.s labels \(env=prod\) do not match'
wait_until 30 grep -Eq "refusing deployment of web: $why" "$T/agent-h1.log" \
  || fail "the agent did not refuse the record signed for env=canary"
wait_until 15 workload_state_is h1 web 2.0 failed || fail "web@2.0 is not shown failed"
workload_field h1 web 2.0 reason | grep -Eq "^$why$" || fail "reason: $(workload_field h1 web 2.0 reason)"
[ ! -e "$T/h1/workloads/web/2.0" ] || fail "the record for env=canary was materialized on env=prod"
runs_with_env "$T" "MESSAGE=web 1.0" || fail "cannot see web@1.0 running (the check below would prove nothing)"
! runs_with_env "$T" "MESSAGE=web 2.0" || fail "web@2.0 runs on env=prod"
# ...and web@1.0, whose record the registry dropped, keeps running, and says so.
wait_until 15 kept_reported || fail "web@1.0: $(workload_field h1 web 1.0 state) / $(workload_field h1 web 1.0 reason)"
workload_state_is h1 web 1.0 running || fail "web@1.0 is not running"
[ "$(workload_field h1 web 1.0 pid)" = "$pid" ] || fail "web@1.0 was restarted"
[ "$(answer "$port")" = "web 1.0" ] || fail "web@1.0 stopped answering"
pass "a record signed for env=canary served to env=prod is refused and never runs; the dropped web@1.0 keeps running"

# --- every record deleted: the workload keeps running, across an agent restart too
stop_and_wait "$REG_PID" 30 "the registry" || true
sqlite3 "$T/reg/registry.db" "DELETE FROM deployments"
start_registry_at reg3 "$T/reg" "$url" --trust "$T/ops.pub"
kill -9 "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true
start_agent h1 "$T/h1" --label env=prod --trust "$T/ops.pub"
wait_until 15 grep -q "web@1.0: re-adopted pid $pid" "$T/agent-h1.log" || fail "web@1.0 was not re-adopted"
wait_until 20 kept_reported || fail "after the restart, web@1.0: $(workload_field h1 web 1.0 state) / $(workload_field h1 web 1.0 reason)"
kill -0 "$pid" || fail "web@1.0 died"
[ "$(answer "$port")" = "web 1.0" ] || fail "web@1.0 stopped answering"
pass "with every record deleted from the registry the workload keeps running, also after an agent restart ($kept)"

# --- a signed record still stops it: the host's labels changed under its applied record
stop_and_wait "$AGENT_PID" 30 "the agent" || true
start_agent h1 "$T/h1" --label env=staging --trust "$T/ops.pub"
wait_until 20 bash -c "! kill -0 $pid 2>/dev/null" || fail "web@1.0 still runs on a host no longer env=prod"
grep -Eq "stopping web: deployment of web@1.0 is signed for env=prod; this host.s labels \(env=staging\) no longer match" \
  "$T/agent-h1.log" || fail "no line saying why web@1.0 was stopped"
pass "a workload whose signed selector no longer matches the host's own labels is stopped"

# --- and a signed undeploy stops a kept workload
stop_and_wait "$AGENT_PID" 30 "the agent" || true
start_agent h1 "$T/h1" --label env=prod --trust "$T/ops.pub"
"$FERRY" deploy web@1.0 --to env=prod >/dev/null
"$FERRY" status --wait web@1.0 --timeout 30 >/dev/null || fail "web@1.0 did not start again"
pid=$(workload_field h1 web 1.0 pid)
stop_and_wait "$REG_PID" 30 "the registry" || true
sqlite3 "$T/reg/registry.db" "DELETE FROM deployments"
start_registry_at reg4 "$T/reg" "$url" --trust "$T/ops.pub"
wait_until 20 kept_reported || fail "web@1.0 was not kept"
"$FERRY" undeploy web --to env=prod >/dev/null
wait_until 20 bash -c "! kill -0 $pid 2>/dev/null" || fail "a signed undeploy did not stop the kept web@1.0"
pass "a signed undeploy stops a kept workload"
