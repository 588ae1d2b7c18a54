#!/usr/bin/env bash
# The agent without its registry, and across its own restarts; plugins that
# must be refused.
source "$(dirname "$0")/lib.sh"

make_key ops
start_registry reg "$T/reg" --trust "$T/ops.pub" --host-ttl 3
url=$REG_URL
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"

# A plugins folder with the real exec plugin and a .so with a wrong magic.
mkdir -p "$T/plugins"
cp "$FERRY_PLUGINS/exec.so" "$T/plugins/"
cp "$FERRY_BIN/test-plugins/badmagic.so" "$T/plugins/"
FERRY_PLUGINS="$T/plugins"
FERRY_AGENT_LOG_CAP=65536 start_agent h1 "$T/h1" --label env=edge --trust "$T/ops.pub"

# --- the bad plugin is refused with one clear line; exec still works
wait_until 5 grep -q "plugin $T/plugins/badmagic.so refused: wrong magic" "$T/agent-h1.log" \
  || fail "no refusal line for the bad plugin"
[ "$(grep -c 'badmagic.so' "$T/agent-h1.log")" -eq 1 ] || fail "more than one line about the bad plugin"
make_web_app "$T/web1" web 1.0
"$FERRY" publish "$T/web1" >/dev/null
"$FERRY" deploy web@1.0 --to env=edge >/dev/null
"$FERRY" status --wait web@1.0 --timeout 30 >/dev/null || fail "web@1.0 did not start"
port=$(workload_field h1 web 1.0 port)
pid=$(workload_field h1 web 1.0 pid)
pass "a plugin with a wrong magic is refused; exec works"

# --- stdout and stderr go to size-capped files
mkdir -p "$T/chatty"
cat > "$T/chatty/ferry.yaml" <<'YAML'
name: chatty
version: "1"
kind: app
runtime: exec
run:
  command: ["/bin/sh", "-c", "while :; do head -c 4096 /dev/zero | tr '\\0' x; echo; echo err >&2; sleep 0.01; done"]
YAML
"$FERRY" publish "$T/chatty" >/dev/null
"$FERRY" deploy chatty@1 --to env=edge >/dev/null
"$FERRY" status --wait chatty@1 --timeout 30 >/dev/null || fail "chatty did not start"
logs="$T/h1/workloads/chatty/1/.ferry"
wait_until 30 test -s "$logs/stdout.log.1" || fail "stdout.log was never rotated"
# The cap is checked every 2 s and the app writes at most ~400 KiB/s, so
# neither file can be far over the 64 KiB cap.
size=$(stat -c %s "$logs/stdout.log")
[ "$size" -le $((65536 + 2 * 1024 * 1024)) ] || fail "stdout.log grew to $size bytes"
size=$(stat -c %s "$logs/stdout.log.1")
[ "$size" -le $((65536 + 2 * 1024 * 1024)) ] || fail "stdout.log.1 is $size bytes"
grep -q err "$logs/stderr.log" || fail "stderr not captured"
"$FERRY" undeploy chatty --to env=edge >/dev/null
pass "workload output goes to size-capped log files"

# --- registry stopped: the app keeps answering; restarted: deploys apply
stop_and_wait "$REG_PID" 30 "the registry" || true
wait_until 10 grep -q 'unreachable; workloads keep running' "$T/agent-h1.log" || fail "agent did not notice"
[ "$(answer "$port")" = "web 1.0" ] || fail "web stopped answering without the registry"
kill -0 "$pid" || fail "web died without the registry"
# A crash during the outage is handled locally and reported afterwards.
kill -9 "$pid"
running_again() { [ "$(grep -c 'web@1.0 running' "$T/agent-h1.log")" -ge 2 ]; }
wait_until 20 running_again || fail "web was not restarted while the registry was away"
start_registry_at reg2 "$T/reg" "$url" --trust "$T/ops.pub" --host-ttl 3
online() { "$FERRY" hosts --json | python3 -c "import json,sys; sys.exit(0 if json.load(sys.stdin)['hosts'][0]['online'] else 1)"; }
wait_until 20 online || fail "agent did not come back online"
# The end of the outage is logged once the registry takes the agent's hello,
# not only when a (parked) poll is answered.
back() { [ "$(grep -c "registry $url reachable\$" "$T/agent-h1.log")" -ge 2 ]; }
wait_until 3 back || fail "the end of the outage was not logged: $(grep reachable "$T/agent-h1.log")"
caught_up() { [ "$(workload_field h1 web 1.0 restarts)" -ge 1 ] && [ "$(workload_field h1 web 1.0 pid)" != "$pid" ]; }
wait_until 20 caught_up || fail "the restart during the outage was not reported"
"$FERRY" events --host h1 --json | python3 -c "
import json, sys
ev = [e for e in json.load(sys.stdin)['events'] if e['name'] == 'web' and e['version'] == '1.0']
assert any('signal 9' in e['reason'] for e in ev), ev
assert ev[-1]['state'] == 'running', ev[-1]" || fail "the changes during the outage are not in ferry events"
make_web_app "$T/web2" web 2.0
"$FERRY" publish "$T/web2" >/dev/null
"$FERRY" deploy web@2.0 --to env=edge >/dev/null
"$FERRY" status --wait web@2.0 --timeout 30 >/dev/null || fail "deploy after reconnect not applied"
port=$(workload_field h1 web 2.0 port)
[ "$(answer "$port")" = "web 2.0" ] || fail "web@2.0 does not answer"
pass "the app survives a registry outage, its restart meanwhile is reported later, and a deploy after it applies"

# --- kill -9 of the agent, restart: the workload keeps its pid
pid=$(workload_field h1 web 2.0 pid)
kill -9 "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true
kill -0 "$pid" || fail "the workload died with the agent"
start_agent h1 "$T/h1" --label env=edge --trust "$T/ops.pub"
wait_until 10 grep -q "web@2.0: re-adopted pid $pid" "$T/agent-h1.log" || fail "agent did not re-adopt $pid"
reported_again() { [ "$(workload_field h1 web 2.0 pid)" = "$pid" ] && workload_state_is h1 web 2.0 running; }
wait_until 15 reported_again || fail "status after restart: pid $(workload_field h1 web 2.0 pid)"
[ "$(answer "$port")" = "web 2.0" ] || fail "web@2.0 stopped answering"
# ...and it is still supervised: a kill -9 now is noticed and restarted.
kill -9 "$pid"
restarted() { workload_state_is h1 web 2.0 running && [ "$(workload_field h1 web 2.0 pid)" != "$pid" ]; }
wait_until 20 restarted || fail "an adopted workload was not restarted after it died"
pass "an agent restart re-adopts the workload (pid $pid unchanged), and keeps supervising it"

# --- SIGTERM stops the agent and leaves the workload running
pid=$(workload_field h1 web 2.0 pid)
stop_and_wait "$AGENT_PID" 30 "the agent" || fail "agent exit status $? on SIGTERM"
kill -0 "$pid" || fail "SIGTERM to the agent stopped the workload"
pass "SIGTERM stops the agent, not the workloads"

# --- started while the registry is down, it runs what its state says
stop_and_wait "$REG_PID" 30 "the registry" || true
kill -9 "$pid"
wait_until 10 bash -c "! kill -0 $pid 2>/dev/null" || fail "could not stop the workload"
start_agent h1 "$T/h1" --label env=edge --trust "$T/ops.pub"
wait_until 20 answer "$port" || wait_until 20 bash -c "grep -q 'web@2.0 running' '$T/agent-h1.log'" \
  || fail "agent without registry did not start web@2.0"
grep -q 'web@2.0: not running any more; starting it' "$T/agent-h1.log" || fail "no restart line"
pass "an agent started without its registry runs what its local state says"
