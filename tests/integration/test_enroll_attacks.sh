#!/usr/bin/env bash
# Requests crafted against enrolled hosts: only a request signed by a host's
# key refreshes its liveness; huge, stale or far-future reports and hellos
# are refused and status keeps working; one host flooding events does not
# push out another host's.
source "$(dirname "$0")/lib.sh"

make_key ops
make_key mallory
start_registry reg "$T/reg" --trust "$T/ops.pub" --host-ttl 2
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
make_web_app "$T/web" web 1.0
"$FERRY" publish "$T/web" >/dev/null
"$FERRY" deploy web@1.0 --to env=test >/dev/null
start_agent h1 "$T/h1" --label env=test --trust "$T/ops.pub"
h1_pid=$AGENT_PID
start_agent h2 "$T/h2" --label env=test --trust "$T/ops.pub"
h2_pid=$AGENT_PID
"$FERRY" status --wait web@1.0 --timeout 30 >/dev/null || fail "web does not run"

online_is() { [ "$("$FERRY" hosts --json | python3 -c "
import json, sys
print([h['online'] for h in json.load(sys.stdin)['hosts'] if h['name'] == sys.argv[1]][0])" "$1")" = "$2" ]; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
events_of() { "$FERRY" events --host "$1" --limit 10000 --json | python3 -c "
import json, sys
ev = json.load(sys.stdin)['events']
print(len(ev), ev[0]['time_ms'] if ev else 0, ev[0]['state'] if ev else '-')"; }

# --- an unsigned poll does not make an offline host online
kill -9 "$h2_pid"
wait_until 10 online_is h2 False || fail "h2 did not go offline"
deadline=$(( $(date +%s) + 3 ))
while [ "$(date +%s)" -lt "$deadline" ]; do
  expect_fail "poll for h2: not signed by its host key" "$FERRY_FORGE" "$REG_URL" poll h2
  expect_fail "poll for h2: not signed by its host key" "$FERRY_FORGE" "$REG_URL" poll h2 --key "$T/mallory.key"
  expect_fail "poll for h2: not newer than the last one seen \(replayed\?\)" \
    "$FERRY_FORGE" "$REG_URL" poll h2 --key "$T/h2/host.key" --sent-ms "$(( $(now_ms) - 60000 ))"
  expect_fail "poll from h2: sent at .*more than 300 s apart" \
    "$FERRY_FORGE" "$REG_URL" poll h2 --key "$T/h2/host.key" --sent-ms "$(( $(now_ms) + 600000 ))"
  online_is h2 False || fail "a poll not signed (freshly) by h2's key made it online"
done
# the check can see it: a fresh poll signed by h2's own key does
"$FERRY_FORGE" "$REG_URL" poll h2 --key "$T/h2/host.key" || fail "a signed poll was refused"
online_is h2 True || fail "a signed poll did not refresh liveness"
pass "unsigned, wrongly signed, stale and far-future polls leave an offline host offline"

# --- a huge or replayed report is refused, and ferry status keeps working
before=$("$FERRY" status --json)
expect_fail "report: [0-9]+ bytes, at most 262144" \
  "$FERRY_FORGE" "$REG_URL" report h1 "$T/h1/host.key" --pad 300000
expect_fail "report from h1: 300 workloads, at most 256" \
  "$FERRY_FORGE" "$REG_URL" report h1 "$T/h1/host.key" --workloads 300
expect_fail "report from h1: 257 state changes, at most 256" \
  "$FERRY_FORGE" "$REG_URL" report h1 "$T/h1/host.key" --events 257
expect_fail "report from h1: not newer than the last one seen \(replayed\?\)" \
  "$FERRY_FORGE" "$REG_URL" report h1 "$T/h1/host.key" --sent-ms "$(( $(now_ms) - 60000 ))"
expect_fail "report from h1: sent at .*more than 300 s apart" \
  "$FERRY_FORGE" "$REG_URL" report h1 "$T/h1/host.key" --sent-ms "$(( $(now_ms) - 3600000 ))"
expect_fail "report from h1: sent at .*more than 300 s apart" \
  "$FERRY_FORGE" "$REG_URL" report h1 "$T/h1/host.key" --sent-ms "$(( $(now_ms) + 3600000 ))"
expect_fail "report from h1: not signed by its host key" \
  "$FERRY_FORGE" "$REG_URL" report h1 "$T/mallory.key"
expect_fail "register h1: hello is not newer than the last one seen \(replayed\?\)" \
  "$FERRY_FORGE" "$REG_URL" hello h1 "$T/h1/host.key" --label env=test --sent-ms "$(( $(now_ms) - 60000 ))"
expect_fail "hello from h1: sent at .*more than 300 s apart" \
  "$FERRY_FORGE" "$REG_URL" hello h1 "$T/h1/host.key" --label env=test --sent-ms "$(( $(now_ms) + 3600000 ))"
"$FERRY" status | grep -Eq "^h1 +web +1.0 +running" || fail "status after refused reports: $("$FERRY" status)"
workload_state_is h1 web 1.0 running || fail "h1's snapshot was replaced"
grep -q forged < <("$FERRY" status --json) && fail "a refused report's workloads are shown"
# the agent still reports after all of that (its sends are newer)
seen=$("$FERRY" hosts --json | python3 -c "import json,sys; print([h['last_seen_ms'] for h in json.load(sys.stdin)['hosts'] if h['name']=='h1'][0])")
wait_until 15 bash -c "[ \"\$('$FERRY' hosts --json | python3 -c 'import json,sys; print([h[\"last_seen_ms\"] for h in json.load(sys.stdin)[\"hosts\"] if h[\"name\"]==\"h1\"][0])')\" -gt $seen ]" \
  || fail "h1's own reports stopped being accepted"
pass "huge, oversized, replayed, far-off and wrongly signed reports and hellos are refused; status works"

# --- an agent restart still works (its new hello and reports are newer)
kill -TERM "$h1_pid"
wait_until 10 bash -c "! kill -0 $h1_pid 2>/dev/null" || fail "h1 did not stop"
: > "$T/agent-h1.log"
start_agent h1 "$T/h1" --label env=test --trust "$T/ops.pub"
h1_pid=$AGENT_PID
wait_until 10 grep -q "registered with .* as h1" "$T/agent-h1.log" || fail "restarted h1 not registered: $(cat "$T/agent-h1.log")"
grep -q "refused" "$T/agent-h1.log" && fail "restarted h1 was refused: $(cat "$T/agent-h1.log")"
wait_until 10 online_is h1 True || fail "restarted h1 not online"
pass "a restarted agent registers and reports again"

# --- a host flooding events does not remove another host's events
"$FERRY_FORGE" "$REG_URL" hello flood "$T/mallory.key" --label env=flood --token "$LIB_JOIN_TOKEN" \
  || fail "flood host could not enroll"
read -r n1 first1 _ < <(events_of h1)
[ "$n1" -ge 1 ] || fail "h1 has no events to lose"
"$FERRY_FORGE" "$REG_URL" report flood "$T/mallory.key" --events 256 --repeat 41 || fail "flood reports refused"
read -r nf _ _ < <(events_of flood)
[ "$nf" = 1000 ] || fail "flood host keeps $nf events, expected its bound of 1000"
read -r n1b first1b _ < <(events_of h1)
[ "$n1b" -ge "$n1" ] && [ "$first1b" = "$first1" ] || fail "h1's events were evicted: $n1 -> $n1b ($first1 -> $first1b)"
"$FERRY" events --limit 5 >/dev/null || fail "events after a flood"
pass "10496 events from one host keep its newest 1000; another host's $n1 events stay"
