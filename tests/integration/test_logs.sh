#!/usr/bin/env bash
# ferry logs: a workload's output read from its hosts through the registry,
# as signed actions the agents answer on their own channel.
source "$(dirname "$0")/lib.sh"
FERRY_ACTFORGE="$FERRY_BIN/tests/ferry-actforge"

make_key ops
make_key other     # trusted by the registry, not by the agents
make_key mallory   # trusted by nobody
# A short host TTL and heartbeat, so that a killed agent is soon offline.
export FERRY_AGENT_HEARTBEAT_MS=500
start_registry reg "$T/reg" --trust "$T/ops.pub" --trust "$T/other.pub" --host-ttl 3
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
start_agent h1 "$T/h1" --label env=test --trust "$T/ops.pub"
start_agent h2 "$T/h2" --label env=test --trust "$T/ops.pub"
H2_PID=$AGENT_PID

# An app that writes 150 numbered lines on stdout, two on stderr (the
# first names its directory, so each host's output is its own), then a
# line for every trigger file that appears.
mkdir -p "$T/talker"
cat > "$T/talker/ferry.yaml" <<'YAML'
name: talker
version: "1"
kind: app
runtime: exec
run:
  command: ["./talk.sh"]
YAML
cat > "$T/talker/talk.sh" <<'SH'
#!/bin/sh
echo "err in $PWD" >&2
i=1
while [ $i -le 150 ]; do echo "out line $i"; i=$((i + 1)); done
echo "err line 2" >&2
while :; do
  if [ -e trigger ]; then echo "late line $(cat trigger)"; rm -f trigger; fi
  sleep 0.05
done
SH
chmod +x "$T/talker/talk.sh"
"$FERRY" publish "$T/talker" >/dev/null
"$FERRY" deploy talker@1 --to env=test >/dev/null
"$FERRY" status --wait talker@1 --timeout 30 >/dev/null || fail "talker did not start"
has_150() { "$FERRY" logs talker --host "$1" --tail 1 | grep -qx 'out line 150'; }
wait_until 10 has_150 h1 || fail "h1's talker did not write its lines"
wait_until 10 has_150 h2 || fail "h2's talker did not write its lines"

# --- logs shows the lines the app wrote; the default tail is 100 lines
out=$("$FERRY" logs talker --host h1)
[ "$(echo "$out" | wc -l)" -eq 100 ] || fail "default tail: $(echo "$out" | wc -l) lines"
[ "$(echo "$out" | head -n 1)" = "out line 51" ] || fail "default tail starts with: $(echo "$out" | head -n 1)"
[ "$(echo "$out" | tail -n 1)" = "out line 150" ] || fail "default tail ends with: $(echo "$out" | tail -n 1)"
pass "logs --host h1 shows the app's last 100 stdout lines"

# --- --tail limits them
out=$("$FERRY" logs talker --host h1 --tail 3)
[ "$out" = "$(printf 'out line 148\nout line 149\nout line 150')" ] || fail "--tail 3 gave: $out"
out=$("$FERRY" logs talker --host h1 --tail 10000)
[ "$(echo "$out" | wc -l)" -eq 150 ] || fail "--tail 10000 gave $(echo "$out" | wc -l) lines, want all 150"
pass "--tail N limits the lines (and asks for no more than there are)"

# --- --stderr switches stream; --host picks the host
out=$("$FERRY" logs talker --host h2 --stderr)
[ "$out" = "$(printf 'err in %s\nerr line 2' "$T/h2/workloads/talker/1")" ] || fail "--stderr --host h2 gave: $out"
pass "--stderr shows the stderr lines, --host h2 shows h2's"

# --- without --host every host running it is asked, lines prefixed
out=$("$FERRY" logs talker --stderr --tail 1)
[ "$(echo "$out" | sort)" = "$(printf 'h1 | err line 2\nh2 | err line 2')" ] || fail "both hosts: $out"
out=$("$FERRY" logs talker --stderr)
grep -qx "h1 | err in $T/h1/workloads/talker/1" <<<"$out" || fail "no h1 line in: $out"
grep -qx "h2 | err in $T/h2/workloads/talker/1" <<<"$out" || fail "no h2 line in: $out"
pass "without --host both agents answer, each line prefixed with its host"

# --- --follow shows a line written after it started, until interrupted
"$FERRY" logs talker --host h1 --tail 2 --follow > "$T/follow.out" 2> "$T/follow.err" &
FOLLOW_PID=$!
PIDS+=("$FOLLOW_PID")
wait_until 10 grep -qx 'out line 150' "$T/follow.out" || fail "--follow printed no tail: $(cat "$T/follow.out" "$T/follow.err")"
echo one > "$T/h1/workloads/talker/1/trigger"
wait_until 10 grep -qx 'late line one' "$T/follow.out" || fail "--follow missed a new line: $(cat "$T/follow.out" "$T/follow.err")"
echo two > "$T/h1/workloads/talker/1/trigger"
wait_until 10 grep -qx 'late line two' "$T/follow.out" || fail "--follow missed a second line"
kill -INT "$FOLLOW_PID"
rc=0; wait "$FOLLOW_PID" || rc=$?
[ $rc -eq 0 ] || fail "--follow exited $rc after Ctrl-C: $(cat "$T/follow.err")"
[ "$(grep -c . "$T/follow.out")" -eq 4 ] || fail "--follow printed: $(cat "$T/follow.out")"
pass "--follow shows lines written after it started and ends at Ctrl-C"

# --- bad input: one line, non-zero
expect_fail "--tail '0': expected a number of lines from 1 to 10000" "$FERRY" logs talker --tail 0
expect_fail "--tail '5x'" "$FERRY" logs talker --tail 5x
expect_fail "--tail '10001'" "$FERRY" logs talker --tail 10001
expect_fail "--tail '-3'" "$FERRY" logs talker --tail -3
expect_fail "--timeout '0': expected 1 to 240 seconds" "$FERRY" logs talker --timeout 0
expect_fail "--timeout '5 s'" "$FERRY" logs talker --timeout "5 s"
expect_fail "unknown workload nope: no host reports it" "$FERRY" logs nope
expect_fail "host h9 is not known to the registry" "$FERRY" logs talker --host h9
make_app "$T/other" quiet 1
"$FERRY" publish "$T/other" >/dev/null
"$FERRY" deploy quiet@1 --to env=none >/dev/null
expect_fail "unknown workload quiet: no host reports it" "$FERRY" logs quiet
expect_fail "workload quiet does not run on host h1" "$FERRY" logs quiet --host h1
expect_fail "no operator key" env -u FERRY_KEY "$FERRY" logs talker
expect_fail "expected exactly one workload NAME" "$FERRY" logs
pass "bad arguments, an unknown workload and an unknown host get one-line errors"

# --- unsigned or wrongly signed actions are refused by the registry...
expect_fail "action refused: it is not signed" "$FERRY_ACTFORGE" "$REG_URL" unsigned h1 talker
expect_fail "signed by key [0-9a-f]+, which is not trusted" "$FERRY" logs talker --host h1 --key "$T/mallory.key"
expect_fail "the signature by key [0-9a-f]+ does not verify" "$FERRY_ACTFORGE" "$REG_URL" tampered h1 talker "$T/ops.key"
expect_fail "its id was used already" "$FERRY_ACTFORGE" "$REG_URL" replay h1 talker "$T/ops.key"
expect_fail "action reply from h1: not signed by its host key" "$FERRY_ACTFORGE" "$REG_URL" reply h1
expect_fail "action reply from h1: not signed by its host key" "$FERRY_ACTFORGE" "$REG_URL" reply h1 "$T/ops.key"
# ...and by the agent, which checks against its own trusted keys.
expect_fail "host h1: action logs for talker on h1 refused: signed by key [0-9a-f]+, which is not trusted" \
    "$FERRY" logs talker --host h1 --key "$T/other.key"
grep -q "action logs for talker on h1 refused" "$T/agent-h1.log" || fail "the agent did not log its refusal"
out=$("$FERRY" logs talker --host h1 --tail 1 2>&1) || true
[ "$out" = "late line two" ] || fail "logs after the refusals: $out"
pass "unsigned, untrusted, tampered and replayed actions are refused by the registry; the agent refuses a key it does not trust"

# --- log rotation: --follow loses and repeats nothing across it, and a
# tail reads the rotated file too (h3 caps its log files at 1500 bytes)
FERRY_AGENT_LOG_CAP=1500 start_agent h3 "$T/h3" --label env=rot --trust "$T/ops.pub"
mkdir -p "$T/rotor"
cat > "$T/rotor/ferry.yaml" <<'YAML'
name: rotor
version: "1"
kind: app
runtime: exec
run:
  command: ["./burst.sh"]
YAML
cat > "$T/rotor/burst.sh" <<'SH'
#!/bin/sh
echo "first line"
while :; do
  if [ -e burst ]; then
    tag=$(cat burst); rm -f burst
    i=1; while [ $i -le 100 ]; do echo "$tag line $i, padded so that the log grows fast"; i=$((i + 1)); done
  fi
  sleep 0.05
done
SH
chmod +x "$T/rotor/burst.sh"
"$FERRY" publish "$T/rotor" >/dev/null
"$FERRY" deploy rotor@1 --to env=rot >/dev/null
"$FERRY" status --wait rotor@1 --timeout 30 >/dev/null || fail "rotor did not start"
RD="$T/h3/workloads/rotor/1"
wait_until 10 grep -q 'first line' "$RD/.ferry/stdout.log" || fail "rotor wrote nothing"
"$FERRY" logs rotor --host h3 --follow > "$T/rot.out" 2> "$T/rot.err" &
ROT_PID=$!
PIDS+=("$ROT_PID")
wait_until 10 grep -qx 'first line' "$T/rot.out" || fail "rotor --follow printed no tail"
LOG="$RD/.ferry/stdout.log"
# A burst of 5 KB is rotated within the agent's 2 s maintenance; once the
# current file is under the cap again and holds or has passed the burst's
# last line, nothing changes any more.
settled() {
  grep -q "^$1 line" "$LOG.1" 2>/dev/null && grep -q "^$1 line 100," "$LOG.1" "$LOG" 2>/dev/null &&
    [ "$(stat -c %s "$LOG")" -le 1500 ]
}
echo a > "$RD/burst"
wait_until 10 settled a || fail "the agent did not rotate rotor's log"
echo b > "$RD/burst"
wait_until 10 settled b || fail "the agent did not rotate rotor's log a second time"
wait_until 10 grep -q '^b line 100,' "$T/rot.out" || fail "--follow missed lines across a rotation: $(tail -n 3 "$T/rot.out")"
kill -INT "$ROT_PID"
wait "$ROT_PID" || fail "--follow exited non-zero: $(cat "$T/rot.err")"
{ echo "first line"; for t in a b; do for i in $(seq 100); do echo "$t line $i, padded so that the log grows fast"; done; done; } > "$T/rot.want"
cmp -s "$T/rot.want" "$T/rot.out" || fail "--follow across rotations: $(diff "$T/rot.want" "$T/rot.out" | head -n 5)"
out=$("$FERRY" logs rotor --host h3 --tail 150)
[ "$out" = "$(cat "$LOG.1" "$LOG" | tail -n 150)" ] || fail "the tail after a rotation: $(echo "$out" | head -n 2)"
grep -qxF "$(tail -n 1 "$LOG.1")" <<<"$out" || fail "the tail did not reach into the rotated file"
pass "--follow shows every line once across two rotations; a tail reads the rotated file"

# --- a workload on an offline host: a clear error, non-zero
kill -9 "$H2_PID"
h2_offline() { "$FERRY" hosts --json | python3 -c "
import json, sys
sys.exit(0 if any(h['name'] == 'h2' and not h['online'] for h in json.load(sys.stdin)['hosts']) else 1)"; }
wait_until 20 h2_offline || fail "h2 is still online after kill -9"
expect_fail "host h2 is offline \(last seen [0-9T:Z-]+\): cannot read talker's output there" \
    "$FERRY" logs talker --host h2
rc=0; out=$("$FERRY" logs talker --tail 1 2>"$T/err") || rc=$?
[ $rc -eq 1 ] || fail "logs with one host offline exited $rc"
[ "$out" = "h1 | late line two" ] || fail "the online host's lines: $out"
grep -q "host h2 is offline" "$T/err" || fail "no error for the offline host: $(cat "$T/err")"
pass "an offline host gets a one-line error and a non-zero exit; the online one still answers"

# --- bounds: actions queued per host, the size of a host's reply
"$FERRY_ACTFORGE" "$REG_URL" flood h2 talker "$T/ops.key" 16 || fail "16 actions for h2 were not queued"
expect_fail "action for h2 refused: 16 actions are already waiting for this host" \
    "$FERRY_ACTFORGE" "$REG_URL" flood h2 talker "$T/ops.key" 1
# Even signed by the host's own key, a reply over the bounds is refused.
expect_fail "action reply from h1: 270000 data bytes, at most 262144" \
    "$FERRY_ACTFORGE" "$REG_URL" reply h1 "$T/h1/host.key" 270000
expect_fail "action reply: [0-9]+ bytes, at most 282624" \
    "$FERRY_ACTFORGE" "$REG_URL" reply h1 "$T/h1/host.key" 300000
[ "$("$FERRY" logs talker --host h1 --tail 1)" = "late line two" ] || fail "h1 is not served after the floods"
pass "a host's queue is bounded; a reply over the size bounds is refused, even signed by the host"
