#!/usr/bin/env bash
# Desired state in signed envelopes: the registry's own key, pinning on
# first sight, a replayed older envelope refused, an expired one refused
# and the freeze (workloads keep running, "desired state expired" logged and
# reported), fresh envelopes well before expiry, a key other than the pinned
# one refused.
source "$(dirname "$0")/lib.sh"
FERRY_REPLAY="$FERRY_BIN/tests/ferry-replay"

make_key ops
make_key other
# Envelopes live 6 s here (reissued after 3 s): expiry is reached by waiting
# for it, with no clock tricks.
start_registry reg "$T/reg" --trust "$T/ops.pub" --desired-ttl 6s
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
grep -q "created its own key" "$T/reg.log" || fail "the registry did not say it created its key"
[ -f "$T/reg/registry.key" ] && [ -f "$T/reg/registry.pub" ] || fail "no DATA/registry.key and .pub"
[ "$(stat -c %a "$T/reg/registry.key")" = 600 ] || fail "registry.key is not 0600"
# Bad flags: one line, exit 2, nothing started.
expect_fail "^ferry-registry: --desired-ttl '1s': must be from 2s to 366d$" "$FERRY_REGISTRY_BIN" --data "$T/reg-bad" --desired-ttl 1s
expect_fail "^ferry-registry: --desired-ttl 'soon': " "$FERRY_REGISTRY_BIN" --data "$T/reg-bad" --desired-ttl soon
[ ! -e "$T/reg-bad" ] || fail "a refused --desired-ttl created the data directory"
expect_fail "^ferry-agent: --trust-registry $T/nope.pub: " "$FERRY_AGENT_BIN" --registry "$REG_URL" \
  --state "$T/bad-agent" --trust-registry "$T/nope.pub"
start_agent h1 "$T/h1" --label env=test --trust "$T/ops.pub"
H1_PID=$AGENT_PID
# h2 trusts another registry key: it must refuse everything it is sent.
start_agent h2 "$T/h2" --label env=test --trust "$T/ops.pub" --trust-registry "$T/other.pub"

for v in 1.0 2.0; do
  make_app "$T/app$v" app "$v"
  printf '#!/bin/sh\nexec sleep 1000\n' > "$T/app$v/run.sh"
  # A command check: h1 is restarted below and re-adopts the process (an
  # adopted process under the default alive-for-1s check is restarted by
  # the agent's supervisor, which is not what this test is about).
  printf 'health:\n  command: ["/bin/true"]\n  interval: 200ms\n' >> "$T/app$v/ferry.yaml"
  "$FERRY" publish "$T/app$v" >/dev/null
done

"$FERRY" deploy app@1.0 --to env=test >/dev/null
wait_until 30 workload_state_is h1 app 1.0 running || fail "app@1.0 does not run on h1"
# --- pinning: the first key seen is written to the state dir, with one warning
wait_until 10 test -f "$T/h1/registry.pub" || fail "h1 pinned no registry key"
[ "$(cut -d' ' -f2 "$T/h1/registry.pub")" = "$(cut -d' ' -f2 "$T/reg/registry.pub")" ] \
  || fail "h1 pinned another key than the registry's"
[ "$(grep -c 'pinned registry key' "$T/agent-h1.log")" = 1 ] || fail "not exactly one pinning warning"
pass "the registry's own key is created on first start and pinned by h1 with one warning"

# --- --trust-registry with another key: refused, nothing runs, nothing pinned
wait_until 20 grep -q 'desired state refused: signed by registry key .*, not the trusted' "$T/agent-h2.log" \
  || fail "h2 did not refuse an envelope signed by an untrusted registry key"
[ ! -e "$T/h2/registry.pub" ] || fail "h2 pinned a key although --trust-registry was given"
! workload_field h2 app 1.0 state >/dev/null 2>&1 || fail "h2 runs app@1.0 from an untrusted envelope"
pass "an agent with --trust-registry refuses an envelope signed by another key"

# --- --trust-registry with the registry's own key: taken, and nothing pinned
start_agent h3 "$T/h3" --label env=other --trust "$T/ops.pub" --trust-registry "$T/reg/registry.pub"
H3_PID=$AGENT_PID
h3_fresh() { "$FERRY" hosts --json | python3 -c "
import json, sys
h = [h for h in json.load(sys.stdin)['hosts'] if h['name'] == 'h3'][0]
assert h['desired_state'] == 'fresh' and h['envelope_version'] > 0, h"; }
wait_until 20 h3_fresh || fail "h3 did not apply an envelope signed by the key it was given: $(tail -3 "$T/agent-h3.log")"
[ ! -e "$T/h3/registry.pub" ] && ! grep -q 'pinned registry key' "$T/agent-h3.log" \
  || fail "h3 pinned a key although --trust-registry was given"
kill -TERM "$H3_PID"; wait "$H3_PID" 2>/dev/null || true
pass "an agent with --trust-registry REGISTRY.pub applies the registry's envelopes and pins nothing"

# --- capture h1's current envelope, then move on to app@2.0
# (retried: a poll h1 itself sends in the same millisecond makes the
# registry refuse the capture's as not newer)
wait_until 10 "$FERRY_REPLAY" capture "$REG_URL" h1 "$T/h1/host.key" "$T/old.bin" || fail "capture failed"
"$FERRY" deploy app@2.0 --to env=test >/dev/null
wait_until 30 workload_state_is h1 app 2.0 running || fail "app@2.0 does not run on h1"
run_pid() { sqlite3 -readonly "$T/h1/agent.db" "SELECT pid FROM runs WHERE name='app' AND version='$1'"; }
pid2=$(run_pid 2.0)
[ -n "$pid2" ] && kill -0 "$pid2" || fail "no live pid for app@2.0"

# --- refreshed well before expiry: with nothing changed, the connected host
# is sent new envelope versions, each before the one it holds runs out (6 s,
# reissued after 3 s), so over more than a lifetime it never freezes
env_of() { "$FERRY" hosts --json | python3 -c "
import json, sys
h = [h for h in json.load(sys.stdin)['hosts'] if h['name'] == 'h1'][0]
print(h['envelope_version'], h['envelope_expires_ms'], h['desired_state'])"; }
read -r v0 e0 s0 <<<"$(env_of)"
[ "$s0" = fresh ] || fail "h1's desired state is $s0 before the refresh check"
seen=0 last=$v0 states=fresh
refreshed_twice() { # (runs in this shell: wait_until calls it directly)
  local v e st; read -r v e st <<<"$(env_of)"
  [ "$st" = fresh ] || states="$states $st"
  if [ "$v" -gt "$last" ]; then seen=$((seen + 1)); last=$v; fi
  [ "$seen" -ge 2 ] && [ "$e" -gt "$e0" ]
}
wait_until 30 refreshed_twice || fail "h1 was not sent two fresh envelopes within 30 s (versions $v0 -> $last)"
[ "$states" = fresh ] || fail "h1's desired state was not fresh throughout: $states"
! grep -q 'desired state expired' "$T/agent-h1.log" || fail "h1 froze while connected: $(grep 'desired state expired' "$T/agent-h1.log")"
[ "$(run_pid 2.0)" = "$pid2" ] || fail "a refresh restarted app@2.0"
pass "a connected host gets fresh envelopes before its own run out, and never freezes"

# --- mix-and-match: the registry's database points app@3.0 at app@1.0's
# manifest and signatures; the envelope and record name that digest, and
# the signatures verify, but the manifest is another version's, so h1
# refuses it and app@2.0 keeps running
make_app "$T/app3.0" app 3.0
"$FERRY" publish "$T/app3.0" >/dev/null
sqlite3 "$T/reg/registry.db" "UPDATE artifacts SET
  manifest_digest=(SELECT manifest_digest FROM artifacts WHERE name='app' AND version='1.0'),
  signatures=(SELECT signatures FROM artifacts WHERE name='app' AND version='1.0')
  WHERE name='app' AND version='3.0'"
"$FERRY" deploy app@3.0 --to env=test >/dev/null
wait_until 30 grep -Eq 'app@3.0: (registry sent the manifest of|the manifest is that of) app@1.0' "$T/agent-h1.log" \
  || fail "h1 did not refuse a manifest for another version than the one named"
wait_until 10 workload_state_is h1 app 3.0 failed || fail "app@3.0 is not failed: $(workload_field h1 app 3.0 state)"
kill -0 "$pid2" || fail "app@2.0 stopped because of the mix-and-match"
"$FERRY" deploy app@2.0 --to env=test >/dev/null
wait_until 20 workload_state_is h1 app 2.0 running || fail "app@2.0 is not running after its re-deploy"
pass "a manifest for another version than the envelope names is refused (mix-and-match)"

# Log lines are counted, so a wait sees only what happens after it began.
count() { grep -c -- "$1" "$T/agent-h1.log" || true; }
more_than() { [ "$(count "$2")" -gt "$1" ]; }

# --- a registry that replays the older envelope: refused as a rollback
# (whether or not it has expired by then: the rollback check comes first)
kill -TERM "$REG_PID"; wait "$REG_PID" 2>/dev/null || true
"$FERRY_REPLAY" serve "$REG_URL" "$T/old.bin" 2>"$T/replay.log" &
REPLAY_PID=$!; PIDS+=("$REPLAY_PID")
wait_until 10 grep -q 'serving on' "$T/replay.log" || fail "replay did not start: $(cat "$T/replay.log")"
wait_until 40 grep -q 'desired state version [0-9]* refused: older than version [0-9]*, already applied' \
  "$T/agent-h1.log" || fail "h1 did not refuse the replayed older envelope"
kill -0 "$pid2" || fail "app@2.0 stopped after the replay"
[ "$(run_pid 1.0)" = "" ] || fail "the replay brought app@1.0 back"
pass "a replayed older envelope is refused and app@2.0 keeps running"

# --- an envelope that is not older but expired: with h1 stopped (so it
# cannot move past it), capture the registry's current envelope, stop the
# registry, replay it and start h1 again. Whether h1 first takes it (newer,
# still valid) or not, once it has run out it is refused as expired and the
# host freezes; the workload keeps its process throughout.
kill -TERM "$REPLAY_PID"; wait "$REPLAY_PID" 2>/dev/null || true
start_registry_at reg2 "$T/reg" "$REG_URL" --trust "$T/ops.pub" --desired-ttl 6s
kill -TERM "$H1_PID"; wait "$H1_PID" 2>/dev/null || true
wait_until 10 "$FERRY_REPLAY" capture "$REG_URL" h1 "$T/h1/host.key" "$T/cur.bin" || fail "capture failed"
kill -TERM "$REG_PID"; wait "$REG_PID" 2>/dev/null || true
"$FERRY_REPLAY" serve "$REG_URL" "$T/cur.bin" 2>"$T/replay2.log" &
REPLAY_PID=$!; PIDS+=("$REPLAY_PID")
wait_until 10 grep -q 'serving on' "$T/replay2.log" || fail "replay did not start: $(cat "$T/replay2.log")"
expired0=$(count 'desired state expired: version [0-9]* expired at')
ranout0=$(count 'desired state expired: version [0-9]* ran out')
start_agent h1 "$T/h1" --label env=test --trust "$T/ops.pub"
wait_until 30 more_than "$expired0" 'desired state expired: version [0-9]* expired at' \
  || fail "the expired replayed envelope was not refused as expired"
wait_until 30 more_than "$ranout0" 'desired state expired: version [0-9]* ran out' \
  || fail "h1 did not freeze when its envelope ran out"
kill -0 "$pid2" || fail "app@2.0 stopped when the desired state expired"
[ "$(run_pid 2.0)" = "$pid2" ] || fail "app@2.0 was restarted during the freeze"
pass "an expired envelope is refused with 'desired state expired' and the workloads keep running"

# --- the real registry again: a fresh envelope ends the freeze
fresh0=$(count 'desired state fresh again')
kill -TERM "$REPLAY_PID"; wait "$REPLAY_PID" 2>/dev/null || true
start_registry_at reg3 "$T/reg" "$REG_URL" --trust "$T/ops.pub" --desired-ttl 6s
wait_until 30 more_than "$fresh0" 'desired state fresh again' || fail "the freeze did not end"
fresh() { "$FERRY" hosts --json | python3 -c "
import json, sys
h = [h for h in json.load(sys.stdin)['hosts'] if h['name'] == 'h1'][0]
assert h['desired_state'] == sys.argv[1] and h['envelope_version'] > 0, h" "$1"; }
wait_until 20 fresh fresh || fail "hosts --json does not show h1's desired state as fresh"
kill -0 "$pid2" || fail "app@2.0 stopped"
pass "a fresh envelope from the registry ends the freeze"

# --- a registry with another key (its key replaced): refused after the pin;
# the held envelope runs out and the freeze is reported through the registry
kill -TERM "$REG_PID"; wait "$REG_PID" 2>/dev/null || true
mv "$T/reg/registry.key" "$T/reg/registry.key.old"; mv "$T/reg/registry.pub" "$T/reg/registry.pub.old"
start_registry_at reg4 "$T/reg" "$REG_URL" --trust "$T/ops.pub" --desired-ttl 6s
wait_until 30 grep -q "desired state refused: signed by registry key .*, not the trusted $(grep -o 'pinned registry key [0-9a-f]*' "$T/agent-h1.log" | awk '{print $4}')" \
  "$T/agent-h1.log" || fail "h1 accepted a registry key other than the pinned one"
wait_until 30 fresh expired || fail "hosts --json does not report h1's desired state as expired"
"$FERRY" hosts | grep -q '^h1: desired state expired (version [0-9]*): running what it has' \
  || fail "ferry hosts does not say h1's desired state expired"
kill -0 "$pid2" || fail "app@2.0 stopped under a registry with another key"
pass "a registry key other than the pinned one is refused; the freeze is reported by ferry hosts"
