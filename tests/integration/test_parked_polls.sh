#!/usr/bin/env bash
# Thousands of long polls parked by a client that never reads (raw TCP, see
# poke.c) must not delay anyone: a deploy reaches every listening agent
# (three of them) within a second of `ferry deploy` returning, three times,
# each with a fresh flood of parked polls, and other requests keep being
# answered. The attacker is
# a compromised enrolled host (its polls are signed, so they park), with a
# host identity per connection; unsigned polls are refused at once.
source "$(dirname "$0")/lib.sh"

# make_sleep_app DIR NAME VERSION: an app that stays up (healthy after 1 s).
make_sleep_app() {
  mkdir -p "$1"
  printf 'name: %s\nversion: "%s"\nkind: app\nruntime: exec\nrun:\n  command: ["./run.sh"]\n' "$2" "$3" \
    > "$1/ferry.yaml"
  printf '#!/bin/sh\nexec sleep 100000\n' > "$1/run.sh"
  chmod 755 "$1/run.sh"
}

make_key ops
start_registry reg "$T/reg" --trust "$T/ops.pub"
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
# Three listening agents: the deploy must reach every one of them in time.
AGENTS=(h1 h2 h3)
for h in "${AGENTS[@]}"; do
  start_agent "$h" "$T/$h" --label env=park --trust "$T/ops.pub"
done
for v in 1.0 2.0 3.0; do
  make_sleep_app "$T/app$v" parked "$v"
  timeout 60 "$FERRY" publish "$T/app$v" >/dev/null || fail "publish parked@$v"
done
# A large blob: each attacking connection first asks for a chunk of it and
# never reads, so the registry's side of that connection is stuck sending
# when its parked polls are answered, and every answer backs up there.
mkdir -p "$T/big"
printf 'name: big\nversion: "1"\nkind: model\nruntime: model\nmodel: {format: sklearn, file: weights.bin, inputs: [{name: x, datatype: FP64, shape: [-1]}]}\n' > "$T/big/ferry.yaml"
head -c $((4 * 1048576)) /dev/urandom > "$T/big/weights.bin"
timeout 60 "$FERRY" publish "$T/big" >/dev/null || fail "publish big@1"

# Each agent's own poll is parked once it has fetched its (empty) state.
for h in "${AGENTS[@]}"; do
  wait_until 10 grep -q 'registry .* reachable' "$T/agent-$h.log" || fail "agent $h never reached the registry"
done

# Two attacking peers, 40 connections each, each connection its own
# enrolled host with the agent's labels: the deploy changes their desired
# state too, so every parked poll is answered at once, into connections
# that never read.
enroll_attackers evila 40 --label env=park
HOSTS_A=$ATTACK_HOSTS KEYS_A=$ATTACK_KEYS
enroll_attackers evilb 40 --label env=park
HOSTS_B=$ATTACK_HOSTS KEYS_B=$ATTACK_KEYS

ATTACKERS=()
for v in 1.0 2.0 3.0; do
  # 2 peers x 40 connections x 63 polls = 5040 polls for h1 that wait (they
  # carry the current serial), from other addresses than the agent's.
  for p in "${ATTACKERS[@]:-}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  ATTACKERS=()
  for from in 127.0.0.2 127.0.0.3; do
    if [ $from = 127.0.0.2 ]; then hosts=$HOSTS_A keys=$KEYS_A; else hosts=$HOSTS_B keys=$KEYS_B; fi
    "$FERRY_POKE" "127.0.0.1:$REG_PORT" stall-polls "$hosts" 63 40 --key "$keys" --busy big@1 \
      --from "$from" > "$T/polls$v-$from.out" 2>&1 &
    ATTACKERS+=($!)
    PIDS+=($!)
  done
  for from in 127.0.0.2 127.0.0.3; do
    out="$T/polls$v-$from.out"
    wait_until 30 grep -q '^stalling' "$out" || fail "attacker did not start: $(cat "$out")"
    grep -q 'stalling: 40 connections, 2520 Poll' "$out" || fail "attacker: $(cat "$out")"
  done
  # Let the registry take them all in (each is parked, so nothing answers).
  wait_until 10 timeout 5 "$FERRY" versions parked >/dev/null || fail "versions during the flood"
  # The same polls unsigned, for the real agent's name and its serial (what
  # would park): refused at once, every one, none parked. A deadline check.
  serial=$(sed -n 's/.*(serial \([0-9]*\)).*/\1/p' "$T/polls$v-127.0.0.2.out")
  [ -n "$serial" ] || fail "no serial in $(cat "$T/polls$v-127.0.0.2.out")"
  out=$(timeout 20 "$FERRY_POKE" "127.0.0.1:$REG_PORT" unsigned-polls h1 63 "$serial" --from 127.0.0.4) \
    || fail "unsigned polls were not all refused: $out"
  grep -q 'refused 63 of 63, slowest reply after [0-9]* ms: poll for h1: not signed by its host key' <<<"$out" \
    || fail "unsigned polls: $out"
  ms=$(echo "$out" | sed -n 's/.* after \([0-9]*\) ms.*/\1/p')
  [ "$ms" -lt 1000 ] || fail "an unsigned poll was refused only after ${ms} ms (limit 1000)"

  timeout 20 "$FERRY" deploy "parked@$v" --to env=park >/dev/null || fail "deploy parked@$v"
  t0=$(date +%s%N)
  # A deadline check (the task demands the bound): an agent has the new
  # desired state when it logs the new version's first state change. The
  # last of the three to get it counts.
  for h in "${AGENTS[@]}"; do
    if ! wait_until 5 grep -q "parked@$v \(fetching\|verifying\|starting\|running\)" "$T/agent-$h.log"; then
      fail "parked@$v never reached agent $h"
    fi
  done
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  [ "$ms" -lt 1000 ] || fail "parked@$v reached the last of ${#AGENTS[@]} agents ${ms} ms after the deploy (limit 1000)"
  echo "  parked@$v reached all ${#AGENTS[@]} agents within ${ms} ms after ferry deploy returned, 5040 polls parked"
  # On the real agents (the attacking hosts are online too, but never run anything).
  for h in "${AGENTS[@]}"; do
    wait_until 30 workload_state_is "$h" parked "$v" running || fail "parked@$v does not run on $h"
  done
done
pass "a deploy reaches all three listening agents within 1 s while 5040 signed polls of a non-reading client are parked"
pass "63 unsigned polls for h1 with its serial are all refused within 1 s, none parked"

pass "each version runs on every agent"
grep -Eq 'dropping a connection (that does not read its replies|with too many unread replies) from 127\.0\.0\.[23]' \
  "$T/reg.log" || fail "the registry did not drop the non-reading poller"
pass "the registry dropped the non-reading poller's connections"
