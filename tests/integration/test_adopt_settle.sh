#!/usr/bin/env bash
# An app with the default health check (alive for health.settle, 1 s) that
# the agent re-adopts after a restart has been alive all along: it is not
# made to settle again (three "settling" probes would count as failures and
# restart a healthy process). The probes after the adoption are healthy,
# and the process keeps its pid.
source "$(dirname "$0")/lib.sh"

make_key ops
start_registry reg "$T/reg" --trust "$T/ops.pub"
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
start_agent h1 "$T/h1" --label env=edge --trust "$T/ops.pub" --verbose

mkdir -p "$T/idle"
cat > "$T/idle/ferry.yaml" <<'YAML'
name: idle
version: "1"
kind: app
runtime: exec
run:
  command: ["/bin/sleep", "600"]
YAML
"$FERRY" publish "$T/idle" >/dev/null
"$FERRY" deploy idle@1 --to env=edge >/dev/null
"$FERRY" status --wait idle@1 --timeout 30 >/dev/null || fail "idle@1 did not start"
pid=$(workload_field h1 idle 1 pid)

stop_and_wait "$AGENT_PID" 30 "agent h1" || fail "the agent did not stop cleanly"
kill -0 "$pid" || fail "the workload died with the agent"
: > "$T/agent-h1.log"
start_agent h1 "$T/h1" --label env=edge --trust "$T/ops.pub" --verbose
wait_until 10 grep -q "idle@1: re-adopted pid $pid" "$T/agent-h1.log" || fail "idle@1 was not re-adopted"
healthy_probes() { [ "$(grep -c 'idle@1: probe: healthy' "$T/agent-h1.log")" -ge 3 ]; }
wait_until 30 healthy_probes || fail "no three healthy probes after the adoption: $(grep 'idle@1' "$T/agent-h1.log")"
! grep -q 'idle@1: probe: unhealthy' "$T/agent-h1.log" || fail "an adopted process was probed unhealthy: $(grep 'idle@1: probe' "$T/agent-h1.log" | head -3)"
[ "$(workload_field h1 idle 1 pid)" = "$pid" ] || fail "the adopted process was replaced"
workload_state_is h1 idle 1 running || fail "idle@1 is $(workload_field h1 idle 1 state)"
[ "$(workload_field h1 idle 1 restarts)" = 0 ] || fail "restarts: $(workload_field h1 idle 1 restarts)"
pass "a re-adopted app with the alive check is healthy at once and keeps its pid"
